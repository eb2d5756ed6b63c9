//! `crane compare`, its statistics, and run manifests.

mod common;
use crane::compare::{markdown, run_all, CompareSpec};
use crane::config::dataset_preset;
use crane::data::{load_dataset, synth, LoadOptions};
use crane::stats::{incomplete_beta, ln_gamma, paired_t_test, std_dev, t_two_sided_p};
use crane::train::Reporter;

/// The bundled tiny dataset generated with `seed` into a scratch folder (`<base>/tiny`), loaded.
fn tiny_data(tag: &str, seed: u64) -> (crane::data::Dataset, common::Scratch) {
    let base = common::scratch(tag);
    let data = base.join("tiny");
    synth::write(&data, "tiny", &synth::generate(&synth::preset("tiny").unwrap(), seed)).unwrap();
    (load_dataset(&data, &LoadOptions::default()).unwrap(), base)
}

#[test]
fn student_t_tails_match_tables() {
    // Two-sided critical values from standard t tables.
    for (t, df, p) in [
        (2.776_445, 4.0, 0.05),
        (4.604_095, 4.0, 0.01),
        (8.610_302, 4.0, 0.001),
        (12.706_205, 1.0, 0.05),
        (1.0, 1.0, 0.5),
        (3.169_273, 10.0, 0.01),
        (1.959_964, 1e7, 0.05),
        (0.0, 4.0, 1.0),
    ] {
        let got = t_two_sided_p(t, df);
        assert!((got - p).abs() <= 1e-5 * p.max(1e-3), "t = {t}, df = {df}: {got} vs {p}");
    }
    assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
    assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    // I_x(1, 1) = x; I_x(a, b) = 1 − I_{1−x}(b, a).
    assert!((incomplete_beta(0.3, 1.0, 1.0) - 0.3).abs() < 1e-12);
    assert!((incomplete_beta(0.3, 2.5, 4.0) + incomplete_beta(0.7, 4.0, 2.5) - 1.0).abs() < 1e-12);
}

#[test]
fn paired_t_test_matches_a_hand_computed_case() {
    // d = [0.1, 0.2, 0.3, 0.2, 0.2]: mean 0.2, sd sqrt(0.005), t = 0.2 / (sqrt(0.005)/sqrt(5)) = 6.3246.
    let a = [1.1, 1.2, 1.3, 1.2, 1.2];
    let b = [1.0; 5];
    let (t, p) = paired_t_test(&a, &b);
    assert!((t - 6.324_555).abs() < 1e-5, "{t}");
    // Tail by direct numerical integration of the t(4) density: 0.0031982022.
    assert!((p - 0.003_198_202).abs() < 1e-8, "{p}");
    assert!((std_dev(&[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-15);
    let (t, p) = paired_t_test(&[1.0, 2.0], &[1.0, 2.0]);
    assert!(t.is_nan() && p.is_nan(), "no difference at all: undefined");
    assert_eq!(paired_t_test(&[2.0, 3.0], &[1.0, 2.0]).1, 0.0, "identical non-zero differences");
}

#[test]
fn compare_trains_each_model_and_seed_once_and_reports() {
    let (ds, base) = tiny_data("compare", 5);
    let toml = dataset_preset("tiny").unwrap();
    let models = vec!["lightgcn".to_string(), "crane".to_string()];
    let spec = CompareSpec {
        base_toml: toml,
        source: "tiny",
        models: models.clone(),
        seeds: vec![9, 672],
        sets: vec!["epochs=2".into()],
        out: base.join("cmp"),
        command: "test".into(),
        report_only: false,
    };
    let rows = run_all(&ds, &spec, &Reporter::default()).unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.trained_now));
    for r in &rows {
        let dir = crane::compare::run_dir(&spec.out, &r.model, r.seed);
        assert_eq!(r.summary.config.seed, r.seed);
        // The manifest names every input with its sha256 and says the features are generated.
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
        let inputs = m["inputs"].as_array().unwrap();
        assert!(inputs.iter().any(|f| f["path"].as_str().unwrap().ends_with("tiny.inter")));
        let inter = inputs.iter().find(|f| f["path"].as_str().unwrap().ends_with("tiny.inter")).unwrap();
        let want = crane::manifest::hash_file(&base.join("tiny").join("tiny.inter")).unwrap().sha256;
        assert_eq!(inter["sha256"].as_str().unwrap(), want);
        assert_eq!(want.len(), 64);
        assert!(m["generated_features"].as_str().unwrap().contains("synthetic"));
        assert_eq!(m["seed"].as_u64(), Some(r.seed));
        assert!(m["estimated_peak_mb"].as_f64().unwrap() > 0.0);
    }
    // Seeds change the runs.
    assert_ne!(rows[0].summary.test, rows[1].summary.test);
    // Run again: everything is kept.
    let again = run_all(&ds, &spec, &Reporter::default()).unwrap();
    assert!(again.iter().all(|r| !r.trained_now));
    assert_eq!(
        again.iter().map(|r| r.summary.test.clone()).collect::<Vec<_>>(),
        rows.iter().map(|r| r.summary.test.clone()).collect::<Vec<_>>()
    );
    let md = markdown(&rows, &models, &["# header".to_string()]);
    assert!(md.starts_with("# header"));
    assert!(md.contains("| lightgcn | 2 |") && md.contains("| crane | 2 |"), "{md}");
    assert_eq!(md.matches("**").count(), 8, "one best cell per column:\n{md}");
    assert!(md.contains("crane vs best baseline: improvement") && md.contains("(t = "), "{md}");
    // Every run has its own row under "## Runs", with its best epoch and test Recall@20.
    let runs = &md[md.find("## Runs").expect("runs section")..];
    for r in &rows {
        let prefix = format!("| {} | {} | {} | {} |", r.model, r.seed, r.summary.best_epoch, r.summary.epochs_run);
        let line = runs.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{prefix}\n{runs}"));
        let recall = format!("{:.4}", r.summary.test.get("recall", 20).unwrap());
        assert!(line.contains(&recall), "{line} lacks {recall}");
    }
    assert_eq!(runs.lines().filter(|l| l.starts_with("| lightgcn |") || l.starts_with("| crane |")).count(), 4);
    let with_missing = markdown(&rows, &[models.clone(), vec!["freedom".to_string()]].concat(), &[]);
    assert!(
        with_missing.contains("not in the table: freedom") && !with_missing.contains("| freedom |"),
        "{with_missing}"
    );
    // A partial report without CRANE's runs must not report a baseline's "improvement".
    let baselines_only: Vec<_> = rows.iter().filter(|r| r.model != "crane").cloned().collect();
    let md = markdown(&baselines_only, &models, &[]);
    assert!(
        !md.contains("vs best baseline") && md.contains("No improvement row yet: crane has no finished run"),
        "{md}"
    );
    // A model with one finished seed shows its value and no spread.
    let one_lightgcn: Vec<_> =
        rows.iter().filter(|r| r.model != "lightgcn" || r.seed == rows[0].seed).cloned().collect();
    let md = markdown(&one_lightgcn, &models, &[]);
    let line = md.lines().find(|l| l.starts_with("| lightgcn | 1 |")).expect("lightgcn row");
    assert!(line.contains("(one seed)") && !line.contains('±'), "{line}");
    let csv = crane::compare::csv(&rows);
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.starts_with("model,seed,best_epoch"));
    // Report-only: finished runs are reported, missing ones left out, nothing is trained.
    let partial = CompareSpec { seeds: vec![9, 672, 5368], report_only: true, ..spec.clone() };
    let rows3 = run_all(&ds, &partial, &Reporter::default()).unwrap();
    assert_eq!(rows3.len(), 4);
    assert!(!crane::compare::run_dir(&spec.out, "crane", 5368).exists());
    // A changed config does not silently reuse the old runs.
    let spec2 = CompareSpec { sets: vec!["epochs=3".into()], ..spec };
    let e = run_all(&ds, &spec2, &Reporter::default()).unwrap_err().to_string();
    assert!(e.contains("other settings than this command asks for (epochs: 2 → 3)"), "{e}");
}

#[test]
fn scoped_sets_apply_to_their_model_only() {
    let models = vec!["bpr".to_string(), "lightgcn".to_string()];
    let sets: Vec<String> =
        vec!["epochs=1".into(), "bpr:model.lambda=0.1".into(), " lightgcn : model.ui_layers=3".into()];
    let (global, scoped) = crane::compare::split_scoped_sets(&sets, &models).unwrap();
    assert_eq!(global, vec!["epochs=1".to_string()]);
    assert_eq!(
        scoped,
        vec![
            ("bpr".to_string(), "model.lambda=0.1".to_string()),
            ("lightgcn".to_string(), "model.ui_layers=3".to_string())
        ]
    );
    // The report lists each model once with all its settings.
    let more: Vec<String> =
        vec!["bpr:model.lambda=0.1".into(), "lightgcn:model.ui_layers=4".into(), "lightgcn:model.lambda=1e-4".into()];
    let (_, s3) = crane::compare::split_scoped_sets(&more, &models).unwrap();
    assert_eq!(
        crane::compare::scoped_sets_summary(&s3),
        "bpr: `model.lambda=0.1`; lightgcn: `model.ui_layers=4`, `model.lambda=1e-4`"
    );
    // A scope naming no compared model would silently do nothing: refused, naming it.
    let e =
        crane::compare::split_scoped_sets(&["freedom:model.lambda=0".to_string()], &models).unwrap_err().to_string();
    assert!(e.contains("freedom") && e.contains("--models"), "{e}");

    // Trained: the scoped value reaches bpr's runs and not lightgcn's, and a bad scoped key is
    // refused before anything trains.
    let (ds, base) = tiny_data("compare-scoped", 5);
    let spec = CompareSpec {
        base_toml: dataset_preset("tiny").unwrap(),
        source: "tiny",
        models: models.clone(),
        seeds: vec![9],
        sets: vec!["epochs=1".into(), "bpr:model.lambda=0.1".into()],
        out: base.join("cmp"),
        command: "test".into(),
        report_only: false,
    };
    let bad = CompareSpec { sets: vec!["lightgcn:model.no_such_key=1".into()], ..spec.clone() };
    assert!(run_all(&ds, &bad, &Reporter::default()).is_err());
    assert!(!crane::compare::run_dir(&spec.out, "bpr", 9).exists(), "nothing trained before the refusal");
    let rows = run_all(&ds, &spec, &Reporter::default()).unwrap();
    let lambda = |m: &str| rows.iter().find(|r| r.model == m).unwrap().summary.config.model.lambda;
    assert_eq!(lambda("bpr"), 0.1);
    let unscoped = crane::config::resolve(spec.base_toml, "tiny", &["model_preset=lightgcn".to_string()]).unwrap();
    assert_eq!(lambda("lightgcn"), unscoped.model.lambda);
    assert_ne!(lambda("lightgcn"), 0.1);
}

#[test]
fn grid_selects_on_validation_and_labels_the_test_selected_point() {
    let (ds, base) = tiny_data("grid", 6);
    let axes = vec![
        crane::compare::parse_grid_axis("model.lambda=1e-3, 1e-1").unwrap(),
        crane::compare::parse_grid_axis("model.ui_layers=1,2").unwrap(),
    ];
    assert_eq!(axes[0].1, vec!["1e-3", "1e-1"]);
    let sets = vec!["model_preset=lightgcn".to_string(), "epochs=2".to_string()];
    let rows = crane::compare::run_grid(
        &ds,
        dataset_preset("tiny").unwrap(),
        "tiny",
        &sets,
        &axes,
        &base.join("g"),
        &Reporter::default(),
    )
    .unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[3].point, vec!["model.lambda=1e-1", "model.ui_layers=2"]);
    assert_eq!(rows[3].summary.config.model.lambda, 0.1);
    let pick = crane::compare::select_on_validation(&rows);
    let best = rows.iter().map(|r| r.summary.valid.get("recall", 20).unwrap()).fold(f64::MIN, f64::max);
    assert_eq!(rows[pick].summary.valid.get("recall", 20).unwrap(), best);
    let md = crane::compare::grid_markdown(&rows, &[]);
    assert_eq!(md.matches("(selected on validation)").count(), 1);
    assert!(md.contains("leaks the test set"));
    assert!(crane::compare::parse_grid_axis("model.lambda").is_err());
}

#[test]
fn compare_estimates_memory_per_model_and_names_the_one_over_budget() {
    let (ds, base) = tiny_data("compare-memory", 5);
    let spec = CompareSpec {
        base_toml: dataset_preset("tiny").unwrap(),
        source: "tiny",
        models: vec!["bpr".to_string(), "crane-code".to_string()],
        seeds: vec![9],
        sets: vec!["crane-code:model.knn_k=20".into()],
        out: base.join("cmp"),
        command: "test".into(),
        report_only: false,
    };
    let est = crane::compare::memory_estimates(&ds, &spec, None).unwrap();
    assert_eq!(est.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["bpr", "crane-code"]);
    // Each is the estimate of that model's own resolved config (scoped sets included).
    for (model, mb) in &est {
        let mut sets = vec![format!("model_preset={model}"), "seed=9".to_string()];
        if model == "crane-code" {
            sets.push("model.knn_k=20".into());
        }
        let cfg = crane::config::resolve(spec.base_toml, "tiny", &sets).unwrap();
        assert_eq!(*mb, crane::memory::estimate_peak_mb(&ds, &cfg), "{model}");
    }
    assert!(est[1].1 > est[0].1, "crane-code's attention costs more than BPR-MF: {est:?}");
    // A budget between the two refuses, naming crane-code.
    let gb = (est[0].1 + est[1].1) / 2.0 / 1024.0;
    let e = crane::compare::memory_estimates(&ds, &spec, Some(gb)).unwrap_err().to_string();
    assert!(e.contains("crane-code") && e.contains("over the budget"), "{e}");
    assert!(crane::compare::memory_estimates(&ds, &spec, Some(est[1].1 / 1024.0 + 0.01)).is_ok());
}

/// Two `crane compare` commands on one `--out` share the runs: a run whose folder another
/// process holds (`run.lock`) is put off while the others train, then awaited; when the holder
/// lets go without finishing (killed), this process trains it. Here the holder is a lock held
/// by a thread of this test for a second: the comparison trains seed 672 first, waits, then
/// trains seed 9, and reports both in seed order.
#[test]
fn compare_puts_off_a_run_in_use_and_trains_it_when_free() {
    let (ds, base) = tiny_data("compare-busy", 5);
    let spec = CompareSpec {
        base_toml: dataset_preset("tiny").unwrap(),
        source: "tiny",
        models: vec!["bpr".to_string()],
        seeds: vec![9, 672],
        sets: vec!["epochs=1".into()],
        out: base.join("cmp"),
        command: "test".into(),
        report_only: false,
    };
    let busy = crane::compare::run_dir(&spec.out, "bpr", 9);
    let release = common::hold_run_lock_for(&busy, 1000);
    let rows = run_all(&ds, &spec, &Reporter::default()).unwrap();
    release.join().unwrap();
    assert_eq!(rows.iter().map(|r| r.seed).collect::<Vec<_>>(), vec![9, 672]);
    assert!(rows.iter().all(|r| r.trained_now));
    let finished = |seed| {
        let f = crane::compare::run_dir(&spec.out, "bpr", seed).join("results.json");
        std::fs::metadata(f).unwrap().modified().unwrap()
    };
    assert!(finished(672) < finished(9), "seed 672 trained while seed 9 was held");
}

/// A BPR grid over `model.lambda=<lambdas>` (one epoch a point) while other threads hold the
/// named points' run locks for the given milliseconds, as other processes training them would.
/// Returns the rows and when each point's results.json was written.
fn grid_with_held_points(
    tag: &str,
    lambdas: &str,
    held: &[(&str, u64)],
) -> (Vec<crane::compare::GridRow>, Vec<std::time::SystemTime>) {
    let (ds, base) = tiny_data(tag, 5);
    let axes = vec![crane::compare::parse_grid_axis(&format!("model.lambda={lambdas}")).unwrap()];
    let sets = vec!["model_preset=bpr".to_string(), "epochs=1".to_string()];
    let out = base.join("g");
    let holders: Vec<_> =
        held.iter().map(|(p, ms)| common::hold_run_lock_for(&out.join(format!("model.lambda={p}")), *ms)).collect();
    let rows = crane::compare::run_grid(
        &ds,
        dataset_preset("tiny").unwrap(),
        "tiny",
        &sets,
        &axes,
        &out,
        &Reporter::default(),
    )
    .unwrap();
    holders.into_iter().for_each(|h| h.join().unwrap());
    let written = lambdas
        .split(',')
        .map(|l| std::fs::metadata(out.join(format!("model.lambda={l}/results.json"))).unwrap().modified().unwrap())
        .collect();
    (rows, written)
}

#[test]
fn grid_puts_off_a_point_in_use_and_trains_it_when_free() {
    let (rows, written) = grid_with_held_points("grid-busy", "1e-3,1e-1", &[("1e-3", 1000)]);
    let points: Vec<String> = rows.iter().map(|r| r.point.join(" ")).collect();
    assert_eq!(points, vec!["model.lambda=1e-3", "model.lambda=1e-1"], "grid order kept");
    assert_eq!(rows[0].summary.config.model.lambda, 1e-3);
    assert!(written[1] < written[0], "the free point trained while the other was held");
}

#[test]
fn grid_takes_whichever_put_off_point_comes_free_first() {
    let (rows, written) = grid_with_held_points("grid-busy-order", "1e-3,1e-2,1e-1", &[("1e-3", 6000), ("1e-2", 1000)]);
    assert_eq!(rows.len(), 3);
    assert!(written[1] < written[0], "the point released first trained while the first put-off one was still held");
}
