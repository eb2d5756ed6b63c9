//! The LATTICE JSON layout: detection, messy-input errors, import to the MMRec layout and back,
//! original ids in exports, and features generated for an existing interaction set.

mod common;
use common::Scratch;
use crane::data::{lattice, load_dataset, synth, Layout, LoadOptions};
use std::path::Path;

fn tmpdir(name: &str) -> Scratch {
    common::scratch(&format!("layout-{name}"))
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

/// Three users, five items; item 4 only in test; mapping files present.
fn small_json(name: &str) -> Scratch {
    let d = tmpdir(name);
    write(&d, "train.json", r#"{"0": [0, 1, 2], "1": [1, 3], "2": [0, 2, 3]}"#);
    write(&d, "val.json", r#"{"0": [3], "1": [2], "2": [1]}"#);
    write(&d, "test.json", r#"{"0": [4], "1": [0], "2": [4]}"#);
    write(&d, "user2id.json", r#"{"A1REVIEWER": 0, "B2REVIEWER": 1, "C3REVIEWER": 2}"#);
    write(&d, "item2id.json", r#"{"B00ASIN0": 0, "B00ASIN1": 1, "B00ASIN2": 2, "B00ASIN3": 3, "B00ASIN4": 4}"#);
    d
}

fn load(d: &Path) -> crane::data::Dataset {
    load_dataset(d, &LoadOptions::default()).unwrap()
}

fn err(d: &Path) -> String {
    load_dataset(d, &LoadOptions::default()).unwrap_err().to_string()
}

#[test]
fn json_layout_is_detected_and_keeps_original_ids() {
    let d = small_json("detect");
    let ds = load(&d);
    assert_eq!(ds.layout, Layout::LatticeJson);
    assert_eq!((ds.n_users, ds.n_items, ds.train.len(), ds.valid.len(), ds.test.len()), (3, 5, 8, 3, 3));
    assert_eq!(ds.user_label(1), "B2REVIEWER");
    assert_eq!(ds.item_label(4), "B00ASIN4");
    assert_eq!(ds.find_user("C3REVIEWER"), Some(2));
    assert_eq!(ds.find_user("2"), Some(2));
    assert!(ds.warnings.iter().any(|w| w.contains("1 item(s) occur only in validation or test")), "{:?}", ds.warnings);
    let tsv = crane::eval::topk_tsv(&[1], &[vec![4, 0]], |u| ds.user_label(u), |i| ds.item_label(i), 2);
    assert_eq!(tsv, "id\ttop_1\ttop_2\nB2REVIEWER\tB00ASIN4\tB00ASIN0\n");
}

#[test]
fn import_round_trips_to_the_same_dataset() {
    let d = small_json("roundtrip-src");
    let out_root = tmpdir("roundtrip-out");
    let out = out_root.join("small");
    let written = lattice::import(&d, &out).unwrap();
    assert!(written.iter().any(|p| p.ends_with("small.inter")));
    let (a, b) = (load(&d), load(&out));
    assert_eq!(b.layout, Layout::Mmrec);
    assert_eq!((a.n_users, a.n_items), (b.n_users, b.n_items));
    assert_eq!((&a.train, &a.valid, &a.test), (&b.train, &b.valid, &b.test));
    assert_eq!((&a.user_names, &a.item_names), (&b.user_names, &b.item_names));
}

#[test]
fn messy_json_inputs_are_refused_with_file_and_id() {
    let d = small_json("badkey");
    write(&d, "val.json", r#"{"zero": [3]}"#);
    let e = err(&d);
    assert!(e.contains("val.json") && e.contains("user key `zero`"), "{e}");

    let d = small_json("baditem");
    write(&d, "test.json", r#"{"0": [4, "x"]}"#);
    let e = err(&d);
    assert!(e.contains("test.json") && e.contains("item `\"x\"`"), "{e}");

    let d = small_json("notjson");
    write(&d, "train.json", "{\"0\": [0, 1,\n");
    let e = err(&d);
    assert!(e.contains("train.json:2") && e.contains("expected an object"), "{e}");

    let d = small_json("missing");
    std::fs::remove_file(d.join("val.json")).unwrap();
    let e = err(&d);
    assert!(e.contains("val.json") && e.contains("missing file"), "{e}");

    // The mapping files must agree with the splits.
    let d = small_json("unmapped");
    write(&d, "item2id.json", r#"{"B00ASIN0": 0, "B00ASIN1": 1, "B00ASIN2": 2, "B00ASIN3": 3}"#);
    let e = err(&d);
    assert!(e.contains("item2id.json") && e.contains("item id 4") && e.contains("test.json"), "{e}");

    let d = small_json("dupmap");
    write(&d, "user2id.json", r#"{"A": 0, "B": 1, "C": 1}"#);
    let e = err(&d);
    assert!(e.contains("user2id.json") && e.contains("both map to 1"), "{e}");

    let d = tmpdir("empty");
    let e = err(&d);
    assert!(e.contains("no dataset found"), "{e}");
}

#[test]
fn repeated_interactions_across_splits_keep_the_first() {
    let d = small_json("dup");
    write(&d, "test.json", r#"{"0": [4, 0], "1": [0], "2": [4]}"#);
    let ds = load(&d);
    assert_eq!(ds.test.len(), 3, "(0, 0) is already a training pair");
    assert!(ds.warnings.iter().any(|w| w.contains("duplicate")), "{:?}", ds.warnings);
}

#[test]
fn planted_features_use_the_training_split_only() {
    let d = small_json("feat");
    let a = load(&d);
    let mut b = a.clone();
    // Other validation and test interactions, same training split: identical features.
    b.valid = vec![(0, 4), (1, 4), (2, 3)];
    b.test = vec![(0, 3), (1, 2), (2, 1)];
    for kind in [synth::FeatureKind::Planted, synth::FeatureKind::Random] {
        let fa = synth::features_for(&a, kind, 7);
        let fb = synth::features_for(&b, kind, 7);
        assert_eq!(fa, fb, "{kind:?}");
        assert_eq!((fa[0].rows, fa[0].cols, fa[1].rows, fa[1].cols), (5, 4096, 5, 384));
        assert!(fa[0].data.iter().all(|&v| v >= 0.0), "image rows are non-negative");
    }
    // A changed training split changes planted features.
    let mut c = a.clone();
    c.train.retain(|&p| p != (0, 1));
    assert_ne!(
        synth::features_for(&a, synth::FeatureKind::Planted, 7),
        synth::features_for(&c, synth::FeatureKind::Planted, 7)
    );
}

#[test]
fn planted_features_carry_the_training_signal_and_random_ones_do_not() {
    let p = synth::preset("tiny").unwrap();
    let dir = tmpdir("signal");
    synth::write(&dir, "tiny", &synth::generate(&p, 3)).unwrap();
    let ds = load_dataset(&dir, &LoadOptions { load_features: false, ..LoadOptions::default() }).unwrap();
    let by_user = ds.train_by_user();
    let gap = |kind| {
        let [_, t] = synth::features_for(&ds, kind, 11);
        let cos = |i: u32, j: u32| -> f32 { t.row(i as usize).iter().zip(t.row(j as usize)).map(|(a, b)| a * b).sum() };
        let (mut co, mut n) = (0.0, 0);
        for items in &by_user {
            for w in items.windows(2) {
                co += cos(w[0], w[1]);
                n += 1;
            }
        }
        let rnd: f32 = (0..4000u32).map(|k| cos(k % 250, (k * 7 + 3) % 250)).sum::<f32>() / 4000.0;
        co / n as f32 - rnd
    };
    let (planted, random) = (gap(synth::FeatureKind::Planted), gap(synth::FeatureKind::Random));
    assert!(planted > 0.1, "planted: co-consumed pairs only {planted} more similar than random pairs");
    assert!(random.abs() < 0.02, "random features carry signal: {random}");
}

#[test]
#[cfg_attr(not(real_lattice_data), ignore = "../shared/data/amazon-baby/train.json is absent (checked by build.rs)")]
fn real_amazon_baby_json_matches_table_2_and_the_mmrec_file() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let json = load(&shared.join("amazon-baby"));
    let st = json.stats();
    assert_eq!((st.users, st.items, st.interactions), (19_445, 7_050, 160_792));
    assert_eq!((st.train, st.valid, st.test), (119_674, 20_559, 20_559));
    assert!(
        json.warnings.iter().any(|w| w.starts_with("2 item(s) occur only in validation or test")),
        "{:?}",
        json.warnings
    );
    assert!(json.item_label(0).starts_with('B') || json.item_label(0).chars().all(|c| c.is_ascii_alphanumeric()));
    // The shared .inter is the same split: the same pairs, in either layout.
    let mmrec_file = shared.join("baby");
    if mmrec_file.join("baby.inter").is_file() {
        let m = load(&mmrec_file);
        let sorted = |v: &Vec<(u32, u32)>| {
            let mut v = v.clone();
            v.sort_unstable();
            v
        };
        assert_eq!(sorted(&json.train), sorted(&m.train));
        assert_eq!(sorted(&json.test), sorted(&m.test));
    }
    // Import and reload: identical, with the ASINs kept.
    let out_root = tmpdir("real-import");
    let out = out_root.join("amazon-baby");
    lattice::import(&shared.join("amazon-baby"), &out).unwrap();
    let back = load(&out);
    assert_eq!((&json.train, &json.valid, &json.test), (&back.train, &back.valid, &back.test));
    assert_eq!(json.item_names, back.item_names);
}
