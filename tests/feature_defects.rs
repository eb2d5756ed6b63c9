//! Feature files with zero rows (SPEC.md, Eq. 14): reported at load, and every model trains on
//! them. `case_08_*` replays `../shared/cases/integrity/08-zero-feature-row` (item 3 has an
//! all-zero image row), which used to stop FREEDOM with "Eq. (14): item 3 has a zero feature
//! row"; where the shared folder is absent it prints `SKIP` and returns.

mod common;
use common::Scratch;
use crane::config::{dataset_preset, resolve};
use crane::data::npy::{write_features, FeatureMatrix};
use crane::data::{inter, load_dataset, LoadOptions};
use crane::train::train;
use std::path::Path;

fn scratch(tag: &str) -> Scratch {
    common::scratch(&format!("feature-defects-{tag}"))
}

/// Trains `preset` for one epoch with k = 2 (as the case's `run.sh`) and checks finite metrics.
fn trains_to_finite_metrics(ds: &crane::data::Dataset, preset: &str) {
    let sets = [format!("model_preset={preset}"), "model.knn_k=2".into(), "epochs=1".into()];
    let cfg = resolve(dataset_preset("tiny").unwrap(), "tiny", &sets).unwrap();
    let run = train(ds, &cfg, None, false).unwrap_or_else(|e| panic!("{preset}: {e}"));
    for m in [&run.valid, &run.test] {
        for v in m.recall.iter().chain(&m.ndcg).chain(&m.precision).chain(&m.map) {
            assert!(v.is_finite() && (0.0..=1.0).contains(v), "{preset}: metric {v}");
        }
    }
    assert!(run.history.iter().all(|h| h.loss.is_finite()), "{preset}: a non-finite loss");
}

#[test]
fn case_08_zero_image_row_is_reported_and_every_model_trains() {
    let test = "case_08_zero_image_row_is_reported_and_every_model_trains";
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cases/integrity/08-zero-feature-row");
    if !case.is_dir() {
        println!("SKIP {test}: {} absent", case.display());
        return;
    }
    let dir = scratch("case08");
    for e in std::fs::read_dir(case.join("data")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    if !dir.join("image_feat.npy").is_file() {
        let made = std::process::Command::new("python3").arg(case.join("make_npy.py")).arg(&dir).status();
        if !made.as_ref().is_ok_and(|s| s.success()) {
            println!("SKIP {test}: python3 could not run make_npy.py ({made:?})");
            return;
        }
    }
    let ds = load_dataset(&dir, &LoadOptions::default()).unwrap();
    let w: Vec<&String> = ds.warnings.iter().filter(|w| w.starts_with("image_feat.npy")).collect();
    assert_eq!(w.len(), 1, "{:?}", ds.warnings);
    assert!(w[0].contains("1 all-zero row(s) (items 3)") && w[0].contains("never a kNN neighbour"), "{}", w[0]);
    assert!(!ds.warnings.iter().any(|w| w.starts_with("text_feat.npy")), "{:?}", ds.warnings);
    let st = ds.stats();
    assert_eq!(st.visual_defects.map(|d| d.zero_rows), Some(1));
    assert_eq!(st.textual_defects.map(|d| d.zero_rows), Some(0));
    assert!(st.to_string().contains("image features 6 x 4 (1 zero row, 0 duplicate rows)"), "{st}");
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["visual_defects"]["zero_rows"], 1, "{json}");
    for preset in ["freedom", "crane"] {
        trains_to_finite_metrics(&ds, preset);
    }
}

/// The same without the shared folder: a generated dataset whose image file has a zero row and a
/// group of duplicates, and whose text file has a zero row for the same item (an item with no
/// features at all: isolated in FREEDOM's graph).
#[test]
fn zero_and_duplicate_rows_are_reported_and_freedom_and_crane_train() {
    let dir = scratch("generated");
    let (users, items) = (12u64, 10usize);
    let mut rows = Vec::new();
    for u in 0..users {
        for k in 0..5u64 {
            rows.push((u, (u * 3 + k * 2) % items as u64, [0, 0, 0, 1, 2][k as usize]));
        }
    }
    std::fs::write(dir.join("generated.inter"), inter::format_inter(&rows)).unwrap();
    let feat = |cols: usize, f: &dyn Fn(usize, usize) -> f32| FeatureMatrix {
        rows: items,
        cols,
        data: (0..items * cols).map(|e| f(e / cols, e % cols)).collect(),
    };
    let image = feat(6, &|i, c| match i {
        4 => 0.0,
        7 | 9 => 0.5 + c as f32,
        _ => ((i * 6 + c) as f32 * 1.7).sin(),
    });
    let text = feat(5, &|i, c| if i == 4 { 0.0 } else { ((i * 5 + c) as f32 * 0.9).cos() });
    write_features(&dir.join("image_feat.npy"), &image).unwrap();
    write_features(&dir.join("text_feat.npy"), &text).unwrap();
    let ds = load_dataset(&dir, &LoadOptions::default()).unwrap();
    let has = |s: &str| ds.warnings.iter().any(|w| w.contains(s));
    assert!(has("image_feat.npy: 1 all-zero row(s) (items 4)"), "{:?}", ds.warnings);
    assert!(has("text_feat.npy: 1 all-zero row(s) (items 4)"), "{:?}", ds.warnings);
    assert!(has("image_feat.npy: 2 row(s) in 1 group(s) of exact duplicates (e.g. items 7, 9)"), "{:?}", ds.warnings);
    let st = ds.stats();
    assert_eq!(st.visual_defects.map(|d| (d.zero_rows, d.duplicate_rows, d.duplicate_groups)), Some((1, 2, 1)));
    for preset in ["freedom", "crane"] {
        trains_to_finite_metrics(&ds, preset);
    }
}
