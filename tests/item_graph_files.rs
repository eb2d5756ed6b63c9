//! Issue 20 parts 1 and 2: modalities by name, and FREEDOM's frozen item graph read from
//! per-modality kNN files (`ItemGraphSource::Files`, `data::knn_files`).

mod common;
use common::Scratch;
use crane::data::knn_files::KnnFiles;
use crane::data::npy::{write_features, FeatureMatrix};
use crane::data::{load_dataset, parse_modalities, LoadOptions};
use npyz::WriterBuilder;
use std::path::{Path, PathBuf};

const REAL: &str = "../shared/data/amazon-baby/real-item-graphs";

fn tmp(name: &str) -> Scratch {
    common::scratch(&format!("igf-{name}"))
}

fn write_ids(path: &Path, rows: usize, cols: usize, ids: &[i64]) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut w =
        npyz::WriteOptions::new().default_dtype().shape(&[rows as u64, cols as u64]).writer(&mut f).begin_nd().unwrap();
    w.extend(ids.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn write_sims(path: &Path, rows: usize, cols: usize, data: Vec<f32>) {
    write_features(path, &FeatureMatrix { rows, cols, data }).unwrap();
}

const IMAGE: [i64; 12] = [0, 1, 2, 1, 0, 3, 2, 3, 1, 3, 2, 0];
const TEXT: [i64; 12] = [0, 2, 3, 1, 2, 0, 2, 0, 1, 3, 1, 2];

/// The hand-made fixture: 4 items, K = 3, both modalities, rows by decreasing similarity.
fn fixture(dir: &Path, names: [&str; 2]) {
    for (name, ids) in names.iter().zip([IMAGE, TEXT]) {
        write_ids(&dir.join(format!("{name}_knn_indices.npy")), 4, 3, &ids);
        write_sims(&dir.join(format!("{name}_knn_similarity.npy")), 4, 3, [1.0, 0.8, 0.5].repeat(4));
    }
}

fn names(a: &str, b: &str) -> [String; 2] {
    [a.to_string(), b.to_string()]
}

#[test]
fn fixture_graph_matches_the_hand_written_csr() {
    let dir = tmp("fixture");
    fixture(&dir, ["image", "text"]);
    let f = KnnFiles::read(&dir, &names("image", "text"), 4, "test").unwrap();
    assert_eq!(f.width, 3);
    // k = 2, image weight 0.25: image entries 0.25/2 = 0.125, text entries 0.75/2 = 0.375.
    let g = f.fused_graph(2, 0.25).unwrap();
    assert_eq!(g.row_offsets(), &[0, 3, 6, 9, 12]);
    assert_eq!(g.col_indices(), &[0, 1, 2, 0, 1, 2, 0, 2, 3, 1, 2, 3]);
    assert_eq!(g.values(), &[0.5, 0.125, 0.375, 0.125, 0.5, 0.375, 0.375, 0.5, 0.125, 0.375, 0.125, 0.5]);
    // k = 1: only the first column, the item itself in both: the identity.
    let g = f.fused_graph(1, 0.25).unwrap();
    assert_eq!(g.col_indices(), &[0, 1, 2, 3]);
    assert_eq!(g.values(), &[1.0; 4]);
    // k = 3, image weight 1: the image lists alone, 1/3 each.
    let g = f.fused_graph(3, 1.0).unwrap();
    assert_eq!(g.col_indices(), &[0, 1, 2, 0, 1, 3, 1, 2, 3, 0, 2, 3]);
    assert!(g.values().iter().all(|&v| v == 1.0 / 3.0));
    // k beyond the files' width is refused, naming the field.
    let e = f.fused_graph(4, 0.1).unwrap_err().to_string();
    assert!(e.contains("knn_k") && e.contains("1..=3"), "{e}");
    // The textual role follows the modality names: audio files.
    let dir2 = tmp("fixture-audio");
    fixture(&dir2, ["image", "audio"]);
    let a = KnnFiles::read(&dir2, &names("image", "audio"), 4, "test").unwrap();
    assert_eq!(a.fused_graph(2, 0.25).unwrap(), f.fused_graph(2, 0.25).unwrap());
    let e = KnnFiles::read(&dir2, &names("image", "text"), 4, "model.item_graph_source").unwrap_err().to_string();
    assert!(e.contains("text_knn_indices.npy") && e.contains("model.item_graph_source"), "{e}");
}

#[test]
fn validation_errors_name_the_file_and_row() {
    let check = |tag: &str, break_it: &dyn Fn(&Path), file: &str, want: &[&str]| {
        let dir = tmp(tag);
        fixture(&dir, ["image", "text"]);
        break_it(&dir);
        let e = KnnFiles::read(&dir, &names("image", "text"), 4, "test").unwrap_err().to_string();
        assert!(e.contains(file), "{tag}: {e}");
        for w in want {
            assert!(e.contains(w), "{tag}: `{w}` missing from: {e}");
        }
    };
    check(
        "shape",
        &|d| write_sims(&d.join("text_knn_similarity.npy"), 4, 2, [1.0, 0.5].repeat(4)),
        "text_knn_similarity.npy",
        &["shape [4, 2]"],
    );
    check(
        "rows",
        &|d| write_ids(&d.join("image_knn_indices.npy"), 3, 3, &IMAGE[..9]),
        "image_knn_indices.npy",
        &["3 rows", "4"],
    );
    let mut out = IMAGE;
    out[7] = 4;
    check(
        "range",
        &|d| write_ids(&d.join("image_knn_indices.npy"), 4, 3, &out),
        "image_knn_indices.npy",
        &["row 2", "column 1", "item id 4", "0..4"],
    );
    let mut neg = TEXT;
    neg[11] = -1;
    check(
        "negative",
        &|d| write_ids(&d.join("text_knn_indices.npy"), 4, 3, &neg),
        "text_knn_indices.npy",
        &["row 3", "item id -1"],
    );
    let mut nan = [1.0f32, 0.8, 0.5].repeat(4);
    nan[4] = f32::NAN;
    check(
        "nan",
        &|d| write_sims(&d.join("image_knn_similarity.npy"), 4, 3, nan.clone()),
        "image_knn_similarity.npy",
        &["row 1"],
    );
    let mut unsorted = [1.0f32, 0.8, 0.5].repeat(4);
    unsorted[11] = 0.9;
    check(
        "unsorted",
        &|d| write_sims(&d.join("text_knn_similarity.npy"), 4, 3, unsorted.clone()),
        "text_knn_similarity.npy",
        &["row 3", "decreasing similarity"],
    );
    check(
        "missing",
        &|d| std::fs::remove_file(d.join("text_knn_similarity.npy")).unwrap(),
        "text_knn_similarity.npy",
        &["missing", "test"],
    );
}

#[test]
fn real_baby_graph_matches_the_readme_construction() {
    let dir = Path::new(REAL);
    if !dir.join("image_knn_indices.npy").is_file() {
        println!("SKIP real_baby_graph_matches_the_readme_construction: {REAL} is absent");
        return;
    }
    let f = KnnFiles::read(dir, &names("image", "text"), 7050, "test").unwrap();
    assert_eq!(f.width, 10);
    let g = f.fused_graph(10, 0.1).unwrap();
    assert_eq!(g.nnz(), 126_598, "distinct non-zeros at k = 10");
    for i in 0..7050 {
        let row = g.row(i);
        let (cols, vals) = (row.col_indices(), row.values());
        let sum: f64 = vals.iter().sum();
        assert!((sum - 1.0).abs() < 1e-12, "row {i} sums to {sum}");
        for (&j, &v) in cols.iter().zip(vals) {
            let want = 0.01 * f.lists[0][i].contains(&j) as u8 as f64 + 0.09 * f.lists[1][i].contains(&j) as u8 as f64;
            assert!((v - want).abs() < 1e-15, "({i}, {j}): {v}, expected {want}");
            assert!([0.01f32, 0.09, 0.1].contains(&(v as f32)), "({i}, {j}): {v} as f32");
        }
    }
    // Some entries of each kind exist.
    for want in [0.01f32, 0.09, 0.1] {
        assert!(g.values().iter().any(|&v| v as f32 == want), "no entry {want}");
    }
    // k = 5, image weight 0.5: still row-stochastic.
    let g5 = f.fused_graph(5, 0.5).unwrap();
    for i in 0..7050 {
        let sum: f64 = g5.row(i).values().iter().sum();
        assert!((sum - 1.0).abs() < 1e-12, "k = 5 row {i} sums to {sum}");
    }
}

const INTER: &str = "userID\titemID\trating\ttimestamp\tx_label\n0\t0\t1\t0\t0\n0\t1\t1\t0\t0\n0\t2\t1\t0\t1\n0\t3\t1\t0\t2\n1\t1\t1\t0\t0\n1\t2\t1\t0\t0\n1\t3\t1\t0\t1\n1\t0\t1\t0\t2\n2\t2\t1\t0\t0\n2\t3\t1\t0\t0\n2\t0\t1\t0\t1\n2\t1\t1\t0\t2\n";

/// The dataset folder `ds` (its name is the dataset's) inside a scratch folder, which removes
/// both when dropped.
fn dataset_dir(tag: &str) -> (Scratch, PathBuf) {
    let root = tmp(tag);
    let dir = root.join("ds");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ds.inter"), INTER).unwrap();
    write_sims(&dir.join("image_feat.npy"), 4, 3, (0..12).map(|v| v as f32 + 1.0).collect());
    write_sims(&dir.join("audio_feat.npy"), 4, 2, (0..8).map(|v| v as f32 + 1.0).collect());
    (root, dir)
}

#[test]
fn modalities_pick_the_feature_files_and_reach_the_fingerprint() {
    let (_root, dir) = dataset_dir("modalities");
    // Default: image and text, text absent: loads, with a warning pointing at the audio file.
    let ds = load_dataset(&dir, &LoadOptions::default()).unwrap();
    assert!(ds.features[1].is_none());
    assert_eq!(ds.feature_files_found, vec!["image_feat.npy", "audio_feat.npy"]);
    assert!(ds.warnings.iter().any(|w| w.contains("audio_feat.npy") && w.contains("modalities")), "{:?}", ds.warnings);
    // Named: image and audio.
    let opts = LoadOptions { modalities: Some(names("image", "audio")), ..LoadOptions::default() };
    let ds = load_dataset(&dir, &opts).unwrap();
    assert_eq!(ds.features[1].as_ref().map(|f| f.cols), Some(2));
    assert!(ds.files.iter().any(|p| p.ends_with("audio_feat.npy")));
    assert!(ds.fingerprint.files.iter().any(|f| f.name == "audio_feat.npy"));
    assert_eq!(ds.fingerprint.modalities, names("image", "audio"));
    assert!(ds.modalities_used().contains("audio_feat.npy (textual)"), "{}", ds.modalities_used());
    let st = ds.stats().to_string();
    assert!(st.contains("text_feat.npy absent") && st.contains("audio_feat.npy found"), "{st}");
    // The fingerprint reloads the same files, and tells the default pair apart.
    let again = load_dataset(&dir, &ds.fingerprint.load_options()).unwrap();
    assert_eq!(again.fingerprint, ds.fingerprint);
    let plain = load_dataset(&dir, &LoadOptions::default()).unwrap();
    assert!(ds.fingerprint.difference(&plain.fingerprint).is_some());
    // A named file that is missing, and an unknown name, name the file and the field.
    let opts = LoadOptions { modalities: Some(names("image", "text")), ..LoadOptions::default() };
    let e = load_dataset(&dir, &opts).unwrap_err().to_string();
    assert!(e.contains("text_feat.npy") && e.contains("modalities"), "{e}");
    let e = parse_modalities(&["image".into(), "video".into()]).unwrap_err().to_string();
    assert!(e.contains("video_feat.npy") && e.contains("modalities"), "{e}");
    assert!(parse_modalities(&["image".into(), "image".into()]).is_err());
    // The config value: default image, text; the tiktok preset names image and audio.
    let cfg = crane::config::resolve("", "test", &[]).unwrap();
    assert_eq!(cfg.modalities, vec!["image", "text"]);
    let tiktok = crane::config::dataset_preset("tiktok").unwrap();
    let cfg = crane::config::resolve(tiktok, "preset tiktok", &[]).unwrap();
    assert_eq!(cfg.data_options().unwrap().0, Some(names("image", "audio")));
    let e = crane::config::resolve("modalities = [\"image\", \"smell\"]", "test", &[]).unwrap_err().to_string();
    assert!(e.contains("modalities") && e.contains("smell_feat.npy"), "{e}");
}

#[test]
fn item_graph_dir_is_read_relative_to_the_dataset_and_fingerprinted() {
    let (_root, dir) = dataset_dir("graphdir");
    std::fs::create_dir_all(dir.join("graphs")).unwrap();
    fixture(&dir.join("graphs"), ["image", "audio"]);
    let cfg = crane::config::resolve(
        "modalities = [\"image\", \"audio\"]",
        "test",
        &[
            "model_preset=freedom".into(),
            "model.knn_k=2".into(),
            "model.item_graph_source={ files = { dir = \"graphs\", image_weight = 0.25 } }".into(),
        ],
    )
    .unwrap();
    let (modalities, item_graph_dir) = cfg.data_options().unwrap();
    assert_eq!(item_graph_dir, Some(PathBuf::from("graphs")));
    let opts = LoadOptions { modalities, item_graph_dir, ..LoadOptions::default() };
    let ds = load_dataset(&dir, &opts).unwrap();
    let names: Vec<&str> = ds.fingerprint.files.iter().map(|f| f.name.as_str()).collect();
    for f in ["graphs/image_knn_indices.npy", "graphs/audio_knn_similarity.npy"] {
        assert!(names.contains(&f), "{f} not in {names:?}");
    }
    assert_eq!(ds.fingerprint.item_graph_dir.as_deref(), Some("graphs"));
    let g = crane::train::file_item_graph(&ds, &cfg.model).unwrap().unwrap();
    assert_eq!(g.values()[..3], [0.5, 0.125, 0.375]);
    // The same data reloaded from the fingerprint, as `crane eval` does.
    let again = load_dataset(&dir, &ds.fingerprint.load_options()).unwrap();
    assert_eq!(again.fingerprint, ds.fingerprint);
    // A short epoch of the FREEDOM preset with the file graph, on the CPU engine.
    let mut cfg = cfg;
    cfg.epochs = 1;
    cfg.batch_size = 4;
    let r = crane::train::train_with(&ds, &cfg, None, false, false, None).unwrap();
    assert_eq!(r.epochs_run, 1);
}

/// `crane compare` with the file graph set for one model only (`--set freedom:model.
/// item_graph_source={ files = .. }`) reads the kNN files with the data; two models naming
/// different folders are refused before anything trains.
#[test]
fn compare_reads_the_knn_files_a_models_own_settings_name() {
    let (_root, dir) = dataset_dir("compare-scoped");
    for g in ["graphs", "graphs2"] {
        std::fs::create_dir_all(dir.join(g)).unwrap();
        fixture(&dir.join(g), ["image", "audio"]);
    }
    let out = dir.parent().unwrap().join("out");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_crane"))
            .args(["compare", "--no-progress", "--dataset", "tiny", "--seeds", "1", "--data-dir"])
            .arg(&dir)
            .arg("--out")
            .arg(&out)
            .args(["--set", "modalities=[\"image\", \"audio\"]", "--set", "epochs=1", "--set", "batch_size=4"])
            .args(extra)
            .output()
            .unwrap()
    };
    let graph = |model: &str, g: &str| {
        format!("{model}:model.item_graph_source={{ files = {{ dir = \"{g}\", image_weight = 0.25 }} }}")
    };
    let o = run(&["--models", "bpr,freedom", "--set", "freedom:model.knn_k=2", "--set", &graph("freedom", "graphs")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest = std::fs::read_to_string(out.join("freedom/seed-9/manifest.json")).unwrap();
    assert!(manifest.contains("graphs/image_knn_indices.npy"), "the file graph is in the run's fingerprint");
    let o = run(&[
        "--models",
        "freedom,crane-code",
        "--set",
        &graph("freedom", "graphs"),
        "--set",
        &graph("crane-code", "graphs2"),
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("separate runs") && e.contains("graphs2"), "{e}");
}

/// With the graph given by files, FREEDOM needs no second feature file: its modality terms run
/// over the modalities present (here the image features only; no text file in the folder).
#[test]
fn a_file_graph_needs_only_the_feature_files_present() {
    let (_root, dir) = dataset_dir("one-modality");
    std::fs::create_dir_all(dir.join("graphs")).unwrap();
    fixture(&dir.join("graphs"), ["image", "text"]);
    let cfg = crane::config::resolve(
        "",
        "test",
        &[
            "model_preset=freedom".into(),
            "model.knn_k=2".into(),
            "model.item_graph_source={ files = { dir = \"graphs\", image_weight = 0.25 } }".into(),
            "epochs=1".into(),
            "batch_size=4".into(),
        ],
    )
    .unwrap();
    let (modalities, item_graph_dir) = cfg.data_options().unwrap();
    let ds = load_dataset(&dir, &LoadOptions { modalities, item_graph_dir, ..LoadOptions::default() }).unwrap();
    assert!(ds.features[0].is_some() && ds.features[1].is_none());
    let r = crane::train::train_with(&ds, &cfg, None, false, false, None).unwrap();
    assert_eq!(r.epochs_run, 1);
    assert!(r.history[0].modality > 0.0, "the image modality term ran");
}
