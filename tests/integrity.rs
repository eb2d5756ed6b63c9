//! Data integrity, end to end through the `crane` binary: every artefact is bound to the data it
//! was made from (checkpoints, resumable state, finished runs of `compare`/`grid`), ids that are
//! no items are never ranked, a huge id is refused before anything is allocated, users without
//! training interactions are counted apart, and the smaller defects (validation metric, a
//! diverging loss, short top-K rows).
//!
//! The `case_*` tests replay the inputs in `../shared/cases/integrity/` (from users' reports);
//! where that folder is absent they print `SKIP` and return. The other tests make inputs of the
//! same kinds.

mod common;
use common::Scratch;
use std::path::Path;
use std::process::{Command, Output};

fn crane(args: &[&str], cwd: &Path) -> Output {
    crane_env(args, cwd, &[])
}

fn crane_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crane"));
    c.args(args).current_dir(cwd);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("crane runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Asserts success and returns stdout.
fn ok(o: Output) -> String {
    assert!(o.status.success(), "crane failed:\n{}\n{}", stdout(&o), stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    stdout(&o)
}

/// Asserts a clean failure (exit 1, an `error:` line, no panic) and returns stderr.
fn refused(o: Output) -> String {
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "expected a refusal, got {:?}:\n{}\n{e}", o.status, stdout(&o));
    assert!(e.contains("error:") && !e.contains("panicked"), "{e}");
    e
}

fn scratch(tag: &str) -> Scratch {
    common::scratch(&format!("integrity-{tag}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            copy_dir(&p, &to.join(p.file_name().unwrap()));
        } else {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// A copy of `../shared/cases/integrity/<name>` in a scratch folder, or `None` (after printing
/// SKIP) when the shared cases are not on this machine.
fn case(name: &str, test: &str) -> Option<Scratch> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cases/integrity").join(name);
    if !src.is_dir() {
        eprintln!("SKIP {test}: {} absent", src.display());
        return None;
    }
    let dst = scratch(name);
    copy_dir(&src, &dst);
    Some(dst)
}

/// The `test ...` summary line a command printed.
fn test_line(out: &str) -> String {
    let l = out.lines().find(|l| l.starts_with("test ")).unwrap_or_else(|| panic!("no test line in:\n{out}"));
    l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
}

/// An `.inter` with x_label from (user, item, label) rows.
fn write_inter(dir: &Path, name: &str, rows: &[(u64, u64, u8)]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{name}.inter")), crane::data::inter::format_inter(rows)).unwrap();
}

/// Six users over items 0..12, four training, one validation and one test item each.
fn small_rows() -> Vec<(u64, u64, u8)> {
    let mut rows = Vec::new();
    for u in 0..6u64 {
        for k in 0..6u64 {
            let label = match k {
                4 => 1,
                5 => 2,
                _ => 0,
            };
            rows.push((u, (u + 2 * k) % 12, label));
        }
    }
    rows
}

const BPR2: [&str; 6] = ["--dataset", "tiny", "--set", "model_preset=bpr", "--set", "epochs=2"];

fn train_args<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["train", "--data-dir", data, "--out", out, "--no-progress"];
    a.extend_from_slice(&BPR2);
    a.extend_from_slice(extra);
    a
}

// ---- 1. Saved artefacts are bound to their data ----

#[test]
fn case11_eval_and_recommend_use_the_checkpoints_split_seed_and_filter() {
    let Some(dir) =
        case("11-eval-ignores-split-seed", "case11_eval_and_recommend_use_the_checkpoints_split_seed_and_filter")
    else {
        return;
    };
    for seed in ["paper1", "paper2"] {
        let run = format!("work/{seed}");
        let trained = ok(crane(
            &[
                "train",
                "--data-dir",
                "data",
                "--dataset",
                "tiny",
                "--split-seed",
                seed,
                "--set",
                "model_preset=bpr",
                "--set",
                "lr=0.05",
                "--set",
                "epochs=30",
                "--set",
                "patience=100",
                "--no-progress",
                "--out",
                &run,
            ],
            &dir,
        ));
        let ckpt = format!("{run}/checkpoint.safetensors");
        let evaluated = ok(crane(&["eval", "--checkpoint", &ckpt, "--data-dir", "data"], &dir));
        assert_eq!(test_line(&evaluated), test_line(&trained), "{seed}: eval must reproduce training's test metrics");
    }
    // The filtered run: eval repeats the filter (no shape error) and reproduces training.
    let trained =
        ok(crane(&train_args("data", "work/filtered", &["--min-user-interactions", "6", "--set", "epochs=3"]), &dir));
    let out = crane(&["eval", "--checkpoint", "work/filtered/checkpoint.safetensors", "--data-dir", "data"], &dir);
    assert!(stderr(&out).contains("1 user(s) with fewer than 6 interactions removed"), "{}", stderr(&out));
    assert_eq!(test_line(&ok(out)), test_line(&trained));
    let rec = ok(crane(
        &["recommend", "--checkpoint", "work/filtered/checkpoint.safetensors", "--data-dir", "data", "--user", "1"],
        &dir,
    ));
    assert!(rec.lines().count() >= 5, "{rec}");
}

#[test]
fn case12_a_checkpoint_is_refused_on_other_data_naming_the_difference() {
    let Some(dir) =
        case("12-checkpoint-other-dataset", "case12_a_checkpoint_is_refused_on_other_data_naming_the_difference")
    else {
        return;
    };
    ok(crane(&train_args("shop-a", "work/a", &[]), &dir));
    let ckpt = "work/a/checkpoint.safetensors";
    // Same shape, other interactions: refused, naming both files and both hashes.
    let e = refused(crane(&["eval", "--checkpoint", ckpt, "--data-dir", "shop-b"], &dir));
    assert!(e.contains("shop-a.inter") && e.contains("shop-b.inter") && e.contains("sha256"), "{e}");
    assert!(e.contains("belongs to dataset `shop-a`"), "{e}");
    let e = refused(crane(&["recommend", "--checkpoint", ckpt, "--data-dir", "shop-b", "--user", "3"], &dir));
    assert!(e.contains("was made from other data"), "{e}");
    // Other shape: the error names the dataset and both counts, not a tensor shape.
    let e = refused(crane(&["eval", "--checkpoint", ckpt, "--data-dir", "shop-c"], &dir));
    assert!(e.contains("`shop-a` (10 users") && e.contains("this data has 12 users"), "{e}");
    assert!(!e.contains("tensor `"), "{e}");
    // Its own data still works.
    ok(crane(&["eval", "--checkpoint", ckpt, "--data-dir", "shop-a"], &dir));
}

#[test]
fn case14_resume_refuses_changed_data_and_says_what_it_does() {
    let Some(dir) = case("14-resume-blind-to-data", "case14_resume_refuses_changed_data_and_says_what_it_does") else {
        return;
    };
    std::fs::create_dir_all(dir.join("work/data")).unwrap();
    std::fs::copy(dir.join("data/data.inter"), dir.join("work/data/data.inter")).unwrap();
    let args = |resume: bool| {
        let mut a = train_args("work/data", "work/run", &["--set", "epochs=3"]);
        if resume {
            a.push("--resume");
        }
        a
    };
    ok(crane(&args(false), &dir));
    let manifest = std::fs::read_to_string(dir.join("work/run/manifest.json")).unwrap();
    let results = std::fs::read_to_string(dir.join("work/run/results.json")).unwrap();
    // (a) The data changes: --resume refuses and rewrites nothing.
    std::fs::copy(dir.join("data-v2.inter"), dir.join("work/data/data.inter")).unwrap();
    let e = refused(crane(&args(true), &dir));
    assert!(e.contains("state.safetensors") && e.contains("data.inter differs") && e.contains("sha256"), "{e}");
    assert_eq!(std::fs::read_to_string(dir.join("work/run/manifest.json")).unwrap(), manifest);
    assert_eq!(std::fs::read_to_string(dir.join("work/run/results.json")).unwrap(), results);
    // (b) No state: said, then trained from epoch 0.
    std::fs::copy(dir.join("data/data.inter"), dir.join("work/data/data.inter")).unwrap();
    std::fs::remove_file(dir.join("work/run/state.safetensors")).unwrap();
    let out = crane(&args(true), &dir);
    assert!(stderr(&out).contains("no resumable state in work/run: training from epoch 0"), "{}", stderr(&out));
    ok(out);
    // (c) The checkpoint is gone: resuming warns that eval/recommend will have nothing to load.
    std::fs::remove_file(dir.join("work/run/checkpoint.safetensors")).unwrap();
    let out = crane(&args(true), &dir);
    let e = stderr(&out);
    assert!(e.contains("resuming after epoch") && e.contains("checkpoint.safetensors is missing"), "{e}");
    ok(out);
}

#[test]
fn a_changed_feature_file_or_json_split_refuses_the_checkpoint() {
    let dir = scratch("features-json");
    // JSON layout: the same users and items, one validation list changed after training.
    let d = dir.join("shop");
    std::fs::create_dir_all(&d).unwrap();
    let split = |label: u8| -> String {
        let mut by_user: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
        for (u, i, l) in small_rows() {
            if l == label {
                by_user.entry(u).or_default().push(i);
            }
        }
        let map: serde_json::Map<String, serde_json::Value> =
            by_user.into_iter().map(|(u, v)| (u.to_string(), serde_json::json!(v))).collect();
        serde_json::to_string(&map).unwrap()
    };
    for (label, f) in ["train.json", "val.json", "test.json"].iter().enumerate() {
        std::fs::write(d.join(f), split(label as u8)).unwrap();
    }
    ok(crane(&train_args("shop", "run", &[]), &dir));
    let ckpt = "run/checkpoint.safetensors";
    ok(crane(&["eval", "--checkpoint", ckpt, "--data-dir", "shop"], &dir));
    let val = std::fs::read_to_string(d.join("val.json")).unwrap();
    std::fs::write(d.join("val.json"), val.replacen("[", "[11,", 1)).unwrap();
    let e = refused(crane(&["eval", "--checkpoint", ckpt, "--data-dir", "shop"], &dir));
    assert!(e.contains("val.json differs"), "{e}");
    std::fs::write(d.join("val.json"), val).unwrap();
    // A feature file added after training: the data is no longer what the checkpoint saw.
    crane::data::npy::write_features(
        &d.join("image_feat.npy"),
        &crane::data::npy::FeatureMatrix { rows: 12, cols: 2, data: (0..24).map(|x| x as f32 + 1.0).collect() },
    )
    .unwrap();
    let e = refused(crane(&["eval", "--checkpoint", ckpt, "--data-dir", "shop"], &dir));
    assert!(e.contains("image_feat.npy is read now but was not then"), "{e}");
}

#[test]
fn a_checkpoint_without_a_fingerprint_is_refused() {
    let dir = scratch("old-checkpoint");
    write_inter(&dir.join("data"), "data", &small_rows());
    ok(crane(&train_args("data", "run", &[]), &dir));
    // Rewrite it as an older crane did: the same tensors and metadata, no data fingerprint.
    let path = dir.join("run/checkpoint.safetensors");
    let mut meta = crane::checkpoint::read_meta(&path).unwrap();
    let ds = crane::data::load_dataset(&dir.join("data"), &Default::default()).unwrap();
    let engine = crane::train::build_engine(&ds, &meta.config).unwrap();
    let (params, _) = crane::checkpoint::load(&path, &engine.params()).unwrap();
    meta.data = None;
    crane::checkpoint::save_params(&path, &params, &meta).unwrap();
    let e = refused(crane(&["eval", "--checkpoint", "run/checkpoint.safetensors", "--data-dir", "data"], &dir));
    assert!(e.contains("has no data fingerprint"), "{e}");
}

#[test]
fn compare_and_grid_keep_finished_runs_only_for_the_same_data() {
    let dir = scratch("compare-reuse");
    write_inter(&dir.join("data"), "data", &small_rows());
    let cmp = |extra: &[&str]| {
        let mut a = vec![
            "compare",
            "--data-dir",
            "data",
            "--dataset",
            "tiny",
            "--models",
            "bpr",
            "--seeds",
            "1",
            "--set",
            "epochs=2",
            "--out",
            "cmp",
            "--no-progress",
        ];
        a.extend_from_slice(extra);
        crane(&a, &dir)
    };
    ok(cmp(&[]));
    let again = cmp(&[]);
    assert!(stderr(&again).contains("kept from an earlier run"), "{}", stderr(&again));
    ok(again);
    // A legacy manifest (before fingerprints) is checked by its input hashes and counts.
    let mpath = dir.join("cmp/bpr/seed-9/manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    m.as_object_mut().unwrap().remove("data_fingerprint");
    std::fs::write(&mpath, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    ok(cmp(&["--report-only"]));
    // Other data under the same folder: the finished run is not reused (nor reported).
    let mut rows = small_rows();
    rows[0].1 = 11;
    write_inter(&dir.join("data"), "data", &rows);
    let e = refused(cmp(&[]));
    assert!(e.contains("cmp/bpr/seed-9/manifest.json") && e.contains("other data"), "{e}");
    let e = refused(cmp(&["--report-only"]));
    assert!(e.contains("other data"), "{e}");
    // grid: the same rule for its finished points.
    let grid = |d: &Path| {
        crane(
            &[
                "grid",
                "--data-dir",
                "data",
                "--dataset",
                "tiny",
                "--set",
                "model_preset=bpr",
                "--set",
                "epochs=2",
                "--grid",
                "model.lambda=0.1,0.01",
                "--out",
                "grid",
                "--no-progress",
            ],
            d,
        )
    };
    ok(grid(&dir));
    write_inter(&dir.join("data"), "data", &small_rows());
    let e = refused(grid(&dir));
    assert!(e.contains("grid/model.lambda=0.1/manifest.json") && e.contains("data.inter differs"), "{e}");
}

// ---- 2. Ids are not trusted as array indices ----

#[test]
fn case05_ids_in_no_split_are_never_ranked_recommended_or_exported() {
    let Some(dir) = case("05-gap-item-ids", "case05_ids_in_no_split_are_never_ranked_recommended_or_exported") else {
        return;
    };
    let stats = crane(&["data", "stats", "data"], &dir);
    assert!(stderr(&stats).contains("693 of the 701 item ids"), "{}", stderr(&stats));
    assert!(ok(stats).contains("701 ids, 8 items (693 ids occur in no split"));
    ok(crane(&train_args("data", "work/run", &[]), &dir));
    let real: Vec<String> = (0..8).map(|k| (k * 100).to_string()).collect();
    let out = crane(
        &[
            "eval",
            "--checkpoint",
            "work/run/checkpoint.safetensors",
            "--data-dir",
            "data",
            "-k",
            "5",
            "--export-topk",
            "top.tsv",
        ],
        &dir,
    );
    ok(out);
    let tsv = std::fs::read_to_string(dir.join("top.tsv")).unwrap();
    for row in tsv.lines().skip(1) {
        for id in row.split('\t').skip(1).filter(|f| !f.is_empty()) {
            assert!(real.iter().any(|r| r == id), "exported id {id} occurs in no split: {row}");
        }
    }
    let rec = ok(crane(
        &[
            "recommend",
            "--checkpoint",
            "work/run/checkpoint.safetensors",
            "--data-dir",
            "data",
            "--user",
            "0",
            "-k",
            "5",
        ],
        &dir,
    ));
    for line in rec.lines() {
        let id = line.split('\t').nth(1).unwrap();
        assert!(real.iter().any(|r| r == id), "recommended id {id} occurs in no split");
    }
}

#[test]
fn top_k_rows_shorter_than_k_are_padded_and_said() {
    let dir = scratch("short-topk");
    write_inter(&dir.join("data"), "data", &small_rows());
    ok(crane(&train_args("data", "run", &[]), &dir));
    // 12 items, 4 of them each user's training items: 8 candidates for K = 10.
    let out = crane(
        &[
            "eval",
            "--checkpoint",
            "run/checkpoint.safetensors",
            "--data-dir",
            "data",
            "-k",
            "10",
            "--export-topk",
            "t.tsv",
        ],
        &dir,
    );
    assert!(stderr(&out).contains("6 user(s) have fewer than 10 candidate items"), "{}", stderr(&out));
    ok(out);
    let tsv = std::fs::read_to_string(dir.join("t.tsv")).unwrap();
    for row in tsv.lines() {
        assert_eq!(row.split('\t').count(), 11, "every row as wide as the header: {row:?}");
    }
    let filled: Vec<usize> =
        tsv.lines().skip(1).map(|r| r.split('\t').skip(1).filter(|f| !f.is_empty()).count()).collect();
    assert_eq!(filled, vec![8; 6]);
}

#[test]
fn absent_ids_leave_the_metrics_of_real_items_unchanged() {
    // The same interactions with item ids spread out (i -> 10 i): every gap id is absent, and
    // since gaps are never ranked, the model sees the same candidates and the popularity
    // ranking's metrics are identical.
    let dir = scratch("gaps-metrics");
    write_inter(&dir.join("dense"), "dense", &small_rows());
    let spread: Vec<(u64, u64, u8)> = small_rows().into_iter().map(|(u, i, l)| (u, i * 10, l)).collect();
    write_inter(&dir.join("spread"), "spread", &spread);
    let load = |n: &str| crane::data::load_dataset(&dir.join(n), &Default::default()).unwrap();
    let (a, b) = (load("dense"), load("spread"));
    assert_eq!((a.n_items, a.absent_items.len()), (12, 0));
    assert_eq!((b.n_items, b.absent_items.len()), (111, 99));
    assert!(b.absent_items.iter().all(|i| i % 10 != 0 || *i > 110));
    let ks = [1, 3, 5];
    assert_eq!(crane::train::popularity_metrics(&a, &ks), crane::train::popularity_metrics(&b, &ks));
}

#[test]
fn a_huge_item_id_is_refused_at_load_naming_its_line() {
    let dir = scratch("huge-id");
    let mut rows = small_rows();
    rows[7].1 = 4_000_000_000;
    write_inter(&dir.join("data"), "data", &rows);
    for args in [vec!["data", "stats", "data"], train_args("data", "run", &[])] {
        let e = refused(crane(&args, &dir));
        assert!(e.contains("data.inter:9:") && e.contains("itemID 4000000000"), "{e}");
        assert!(e.contains("distinct items") && e.contains("mistyped"), "{e}");
    }
    // The same rule at any size: with 100 MB available, 200,001 ids (400 MB of tables) are refused.
    rows[7].1 = 200_000;
    write_inter(&dir.join("data"), "data", &rows);
    let e = refused(crane_env(&["data", "stats", "data"], &dir, &[("CRANE_MEMORY_AVAILABLE_MB", "100")]));
    assert!(e.contains("itemID 200000") && e.contains("0.1 GB of memory available"), "{e}");
    ok(crane(&["data", "stats", "data"], &dir));
}

#[test]
fn a_run_over_the_available_memory_is_refused_before_training() {
    let dir = scratch("over-memory");
    write_inter(&dir.join("data"), "data", &small_rows());
    let e = refused(crane_env(&train_args("data", "run", &[]), &dir, &[("CRANE_MEMORY_AVAILABLE_MB", "20")]));
    assert!(e.contains("more than the 0.02 GB of memory available"), "{e}");
    assert!(!dir.join("run/manifest.json").exists(), "nothing written for a refused run");
}

// ---- 3. Users without training interactions ----

#[test]
fn users_without_training_are_counted_apart_and_get_the_popularity_ranking() {
    let dir = scratch("no-train-user");
    let mut rows = small_rows();
    // User 7 has only a validation and a test interaction.
    rows.extend([(7, 3, 1), (7, 4, 2)]);
    write_inter(&dir.join("data"), "data", &rows);
    let stats = crane(&["data", "stats", "data"], &dir);
    assert!(stderr(&stats).contains("1 user(s) have no training interaction (e.g. user 7)"), "{}", stderr(&stats));
    assert!(ok(stats).contains("users          7 (1 without training interactions: not evaluated)"));
    let json: serde_json::Value = serde_json::from_str(&ok(crane(&["data", "stats", "data", "--json"], &dir))).unwrap();
    assert_eq!(json["users_without_training"], 1);
    ok(crane(&train_args("data", "run", &[]), &dir));
    let out = crane(
        &["recommend", "--checkpoint", "run/checkpoint.safetensors", "--data-dir", "data", "--user", "7", "-k", "3"],
        &dir,
    );
    assert!(stderr(&out).contains("user 7 has no training interactions"), "{}", stderr(&out));
    let lines: Vec<Vec<String>> = ok(out).lines().map(|l| l.split('\t').map(String::from).collect()).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l.len() == 4 && l[3] == "popularity"), "{lines:?}");
    // The most popular training item first: item counts from small_rows' training rows.
    let mut counts = std::collections::BTreeMap::new();
    for (_, i, l) in small_rows() {
        if l == 0 {
            *counts.entry(i).or_insert(0) += 1;
        }
    }
    let top = counts.iter().max_by_key(|(i, c)| (**c, std::cmp::Reverse(**i))).unwrap();
    assert_eq!(lines[0][1], top.0.to_string());
    assert_eq!(lines[0][2], top.1.to_string());
}

// ---- Smaller defects ----

#[test]
fn the_validation_metric_is_named_and_must_be_among_ks() {
    let preset = crane::config::dataset_preset("tiny").unwrap();
    let resolve =
        |sets: &[&str]| crane::config::resolve(preset, "tiny", &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(resolve(&[]).unwrap().valid_metric, "recall@20");
    let e = resolve(&["ks=[5, 10]"]).unwrap_err().to_string();
    assert!(e.contains("valid_metric") && e.contains("K = 20") && e.contains("[5, 10]"), "{e}");
    assert!(resolve(&["ks=[5, 10]", "valid_metric=recall@10"]).is_ok());
    for bad in ["recall", "hits@20", "ndcg@x"] {
        let e = resolve(&[&format!("valid_metric={bad}")]).unwrap_err().to_string();
        assert!(e.contains("valid_metric"), "{bad}: {e}");
    }
    // Training selects the best epoch on the named metric, and prints non-empty lines without
    // K = 10 or 20.
    let dir = scratch("valid-metric");
    write_inter(&dir.join("data"), "data", &small_rows());
    let out = ok(crane(
        &train_args(
            "data",
            "run",
            &["--set", "ks=[1, 3]", "--set", "valid_metric=ndcg@3", "--set", "epochs=6", "--set", "lr=0.05"],
        ),
        &dir,
    ));
    assert!(out.contains("selected on validation ndcg@3") && out.contains("R@1 ") && out.contains("N@3 "), "{out}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/results.json")).unwrap()).unwrap();
    let curve: Vec<f64> =
        r["history"].as_array().unwrap().iter().map(|h| h["valid"]["ndcg@3"].as_f64().unwrap()).collect();
    let best = (0..curve.len()).fold(0, |b, k| if curve[k] > curve[b] { k } else { b });
    assert_eq!(r["best_epoch"].as_u64().unwrap() as usize, best, "best epoch by ndcg@3: {curve:?}");
}

#[test]
fn a_diverging_finite_loss_stops_with_a_diagnosis() {
    let dir = scratch("diverging");
    write_inter(&dir.join("data"), "data", &small_rows());
    // Adam at lr 1e6 on BPR-MF: the embeddings leap by ~lr per step and the norm penalty grows
    // as their square, so the loss stays finite while exploding.
    let e = refused(crane(
        &train_args("data", "run", &["--set", "lr=1e6", "--set", "model.lambda=1.0", "--set", "epochs=50"]),
        &dir,
    ));
    assert!(e.contains("the loss diverged") && e.contains("lower lr"), "{e}");
}

/// The divergence rule at its edges: over `EXPLODED` (1e4) times the starting loss, the start
/// taken as at least 1e-3; either sign.
#[test]
fn divergence_is_ten_thousand_times_the_starting_loss() {
    use crane::train::diverged;
    assert!(!diverged(1e4, 1.0) && diverged(1.0001e4, 1.0) && diverged(-1.0001e4, 1.0));
    assert!(!diverged(1e3, 100.0) && !diverged(1e6, 100.0) && diverged(1.01e6, 100.0));
    assert!(!diverged(9.0, 1e-6) && diverged(10.5, 1e-6), "a start near zero counts as 1e-3");
    assert!(!diverged(0.5, 0.69));
    // The warning before it: an epoch's mean loss over GROWING (100) times the start.
    use crane::train::growing;
    assert!(!growing(100.0, 1.0) && growing(100.01, 1.0) && growing(-100.01, 1.0));
    assert!(!growing(1.0, 100.0) && !growing(1e4, 100.0) && growing(1.01e4, 100.0));
    assert!(!growing(0.09, 1e-6) && growing(0.11, 1e-6) && !growing(0.5, 0.69));
}

#[test]
fn a_non_finite_loss_names_the_epoch_and_batch() {
    let dir = scratch("non-finite");
    write_inter(&dir.join("data"), "data", &small_rows());
    // Adam at lr 1e30: the embeddings leap to ~1e30 in one step and the scores overflow f32.
    let e = refused(crane(&train_args("data", "run", &["--set", "lr=1e30", "--set", "epochs=5"]), &dir));
    assert!(e.contains("error: epoch ") && e.contains(", batch 0: non-finite loss") && e.contains("lower lr"), "{e}");
}
