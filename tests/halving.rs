//! `crane grid --halving`: successive halving over a seeded sample of the grid, selecting on
//! validation only, each rung continuing its points' runs, resumable.

mod common;
use crane::compare::{grid_points, run_halving, Halving};
use crane::config::dataset_preset;
use crane::data::{load_dataset, synth, LoadOptions};
use crane::train::Reporter;

#[test]
fn successive_halving_keeps_the_best_third_continues_their_runs_and_resumes() {
    let base = common::scratch("halving");
    let p = synth::preset("tiny").unwrap();
    synth::write(&base.join("data"), "tiny", &synth::generate(&p, 2024)).unwrap();
    let ds = load_dataset(&base.join("data"), &LoadOptions::default()).unwrap();
    let axes = vec![
        ("model.lambda".to_string(), vec!["1".into(), "0.1".into(), "0.01".into(), "0.001".into()]),
        ("lr".to_string(), vec!["0.01".into(), "0.001".into()]),
    ];
    assert_eq!(grid_points(&axes).len(), 8);
    let h = Halving { sample: Some(6), rungs: vec![1, 2, 4], eta: 3, seed: 5 };
    let sets = vec!["model_preset=bpr".to_string(), "patience=100".to_string()];
    let out = base.join("search");
    let search = || {
        run_halving(&ds, dataset_preset("tiny").unwrap(), "tiny", &sets, &axes, &out, &Reporter::new(false), &h)
            .unwrap()
    };
    let rows = search();
    let rung = |r: usize| rows.iter().filter(|x| x.rung == r).collect::<Vec<_>>();
    assert_eq!((rung(0).len(), rung(1).len(), rung(2).len()), (6, 2, 1), "6 sampled, ceil(6/3) = 2, then 1");
    for r in 0..2 {
        // The kept points are the best by validation Recall@20 (the selection metric), and they
        // are exactly the next rung's points.
        let mut vals: Vec<f64> = rung(r).iter().map(|x| x.summary.valid.get("recall", 20).unwrap()).collect();
        vals.sort_by(|a, b| b.total_cmp(a));
        let kept: Vec<&Vec<String>> = rung(r).iter().filter(|x| x.kept).map(|x| &x.point).collect();
        let worst_kept = rung(r)
            .iter()
            .filter(|x| x.kept)
            .map(|x| x.summary.valid.get("recall", 20).unwrap())
            .fold(f64::INFINITY, f64::min);
        assert!(worst_kept >= vals[kept.len() - 1], "rung {r}: the kept points are the best");
        let next: Vec<&Vec<String>> = rung(r + 1).iter().map(|x| &x.point).collect();
        assert_eq!(kept, next, "rung {r}'s kept points are rung {}'s", r + 1);
    }
    // Continued, not retrained: the selected point's history runs 4 epochs in one folder.
    let winner = rung(2)[0];
    assert!(winner.kept);
    assert_eq!(winner.summary.epochs_run, 4);
    let dir = out.join(winner.point.join(","));
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 4);
    // A dropped point stays at its rung's budget.
    let dropped = rung(0).into_iter().find(|x| !x.kept).unwrap();
    assert_eq!(dropped.summary.epochs_run, 1);
    // A second sitting trains nothing and gives the same search.
    let stamp = std::fs::metadata(dir.join("results.json")).unwrap().modified().unwrap();
    let again = search();
    assert_eq!(std::fs::metadata(dir.join("results.json")).unwrap().modified().unwrap(), stamp, "nothing retrained");
    for e in [1, 2, 4] {
        assert!(dir.join(format!("results-{e}-epochs.json")).is_file(), "the winner's record of the {e}-epoch rung");
    }
    let key = |rows: &[crane::compare::RungRow]| {
        rows.iter().map(|r| (r.rung, r.point.clone(), r.kept, r.summary.epochs_run)).collect::<Vec<_>>()
    };
    assert_eq!(key(&again), key(&rows));
    let md = crane::compare::halving_markdown(&rows, &["# search".into()]);
    assert!(md.contains("## Rung 3 (4 epochs, 1 point)") && md.contains("Selected on validation recall@20"));
}

#[test]
fn halving_shares_its_folders_and_keeps_a_rung_trained_but_not_recorded() {
    let base = common::scratch("halving-shared");
    synth::write(&base.join("data"), "tiny", &synth::generate(&synth::preset("tiny").unwrap(), 7)).unwrap();
    let ds = load_dataset(&base.join("data"), &LoadOptions::default()).unwrap();
    let axes = vec![("model.lambda".to_string(), vec!["1".into(), "0.1".into(), "0.01".into()])];
    let h = Halving { sample: None, rungs: vec![1, 2], eta: 3, seed: 5 };
    let sets = vec!["model_preset=bpr".to_string(), "patience=100".to_string()];
    let out = base.join("search");
    let search = || {
        run_halving(&ds, dataset_preset("tiny").unwrap(), "tiny", &sets, &axes, &out, &Reporter::new(false), &h)
            .unwrap()
    };
    // A point another process holds is put off, then trained when released.
    let held = out.join("model.lambda=1");
    let release = common::hold_run_lock_for(&held, 1000);
    let rows = search();
    release.join().unwrap();
    assert_eq!(rows.iter().filter(|r| r.rung == 0).count(), 3);
    assert_eq!(rows[0].point, vec!["model.lambda=1"], "rung order is grid order");
    assert_eq!(rows[0].summary.epochs_run, 1);
    let recorded = |p: &str| std::fs::metadata(out.join(p).join("results-1-epochs.json")).unwrap().modified().unwrap();
    assert!(recorded("model.lambda=0.1") < recorded("model.lambda=1"), "the free points trained while one was held");
    // A point trained to its rung whose record was never written (the writer was killed between
    // the two) is taken as trained.
    let dropped = rows.iter().find(|r| r.rung == 0 && !r.kept).unwrap();
    let dir = out.join(dropped.point.join(","));
    std::fs::remove_file(dir.join("results-1-epochs.json")).unwrap();
    // A marker in results.json: a retrained run would rewrite it; a kept one is copied with it.
    let results = std::fs::read_to_string(dir.join("results.json")).unwrap();
    let mut marked: serde_json::Value = serde_json::from_str(&results).unwrap();
    marked["peak_memory_mb"] = serde_json::json!(12345.0);
    std::fs::write(dir.join("results.json"), serde_json::to_string(&marked).unwrap()).unwrap();
    let again = search();
    let record = std::fs::read_to_string(dir.join("results-1-epochs.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["peak_memory_mb"], 12345.0, "not retrained: the record is results.json's copy");
    let key = |rows: &[crane::compare::RungRow]| {
        rows.iter().map(|r| (r.rung, r.point.clone(), r.kept, r.summary.epochs_run)).collect::<Vec<_>>()
    };
    assert_eq!(key(&again), key(&rows));
}

#[test]
fn halving_refuses_a_point_trained_past_its_rung() {
    let base = common::scratch("halving-past-rung");
    synth::write(&base.join("data"), "tiny", &synth::generate(&synth::preset("tiny").unwrap(), 3)).unwrap();
    let ds = load_dataset(&base.join("data"), &LoadOptions::default()).unwrap();
    let axes = vec![("model.lambda".to_string(), vec!["0.1".into(), "0.01".into()])];
    let out = base.join("search");
    // A plain grid trained every point 4 epochs into the folder the search then uses.
    let long = vec!["model_preset=bpr".to_string(), "patience=100".to_string(), "epochs=4".to_string()];
    crane::compare::run_grid(&ds, dataset_preset("tiny").unwrap(), "tiny", &long, &axes, &out, &Reporter::new(false))
        .unwrap();
    let h = Halving { sample: None, rungs: vec![2, 3], eta: 2, seed: 5 };
    let sets = vec!["model_preset=bpr".to_string(), "patience=100".to_string()];
    let err = run_halving(&ds, dataset_preset("tiny").unwrap(), "tiny", &sets, &axes, &out, &Reporter::new(false), &h)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already trained 4 epochs, more than epochs = 2"), "{err}");
    assert!(err.contains("model.lambda=0.1"), "names the folder: {err}");
}
