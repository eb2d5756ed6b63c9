//! The `crane` binary end to end on small generated data: synth, stats, train (checkpoint),
//! eval with a top-K export in original ids, recommend, and a clean failure on bad input.

mod common;
use std::path::Path;
use std::process::Command;

fn crane(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crane")).args(args).current_dir(cwd).output().expect("crane runs")
}

#[test]
fn synth_stats_train_eval_recommend() {
    let dir = common::scratch("cli");
    let out = crane(&["synth", "--like", "tiny", "--out", "data/tiny"], &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = crane(&["data", "stats", "data/tiny"], &dir);
    let stats = String::from_utf8_lossy(&out.stdout);
    assert!(stats.contains("users          400") && stats.contains("image features 250 x 128"), "{stats}");

    let out =
        crane(&["train", "--data-dir", "data/tiny", "--dataset", "tiny", "--set", "epochs=3", "--out", "run"], &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("test       R@10"));
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/results.json")).unwrap()).unwrap();
    assert_eq!(results["epochs_run"], 3);
    assert!(dir.join("run/checkpoint.safetensors").exists());

    let out = crane(
        &[
            "eval",
            "--checkpoint",
            "run/checkpoint.safetensors",
            "--data-dir",
            "data/tiny",
            "--export-topk",
            "top.tsv",
            "-k",
            "5",
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tsv = std::fs::read_to_string(dir.join("top.tsv")).unwrap();
    let mut lines = tsv.lines();
    assert_eq!(lines.next().unwrap(), "id\ttop_1\ttop_2\ttop_3\ttop_4\ttop_5");
    let rows: Vec<&str> = lines.collect();
    assert!(rows.len() > 300, "one line per test user");
    assert!(rows.iter().all(|r| r.split('\t').count() == 6));

    let out = crane(
        &[
            "recommend",
            "--checkpoint",
            "run/checkpoint.safetensors",
            "--data-dir",
            "data/tiny",
            "--user",
            "3",
            "-k",
            "4",
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
    let out = crane(
        &["recommend", "--checkpoint", "run/checkpoint.safetensors", "--data-dir", "data/tiny", "--user", "99999"],
        &dir,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("user `99999` is not in"));
    let rec = ["recommend", "--checkpoint", "run/checkpoint.safetensors", "--data-dir", "data/tiny", "--user", "3"];
    let out = crane(&[&rec[..], &["-k", "0"]].concat(), &dir);
    assert!(!out.status.success() && out.stdout.is_empty(), "k = 0 is refused, not answered with nothing");
    // The training state is not a checkpoint, and the message says which file to pass.
    let out = crane(&["eval", "--checkpoint", "run/state.safetensors", "--data-dir", "data/tiny"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a training state") && err.contains("checkpoint.safetensors beside it"), "{err}");
}

#[test]
fn bad_input_exits_nonzero_with_a_named_error_and_no_panic() {
    let dir = common::scratch("cli-bad");
    std::fs::create_dir_all(dir.join("d")).unwrap();
    std::fs::write(dir.join("d/d.inter"), "userID\titemID\trating\ttimestamp\tx_label\n0\t1\t5\t0\t9\n").unwrap();
    let out = crane(&["data", "stats", "d"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("d.inter:2: x_label `9`") && !err.contains("panicked"), "{err}");
    let out = crane(&["train", "--like", "tiny", "--set", "model.knn_k=0", "--out", "knn0"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("knn_k") && !err.contains("estimated peak memory"), "refused before the estimate: {err}");
    let out = crane(&["train", "--like", "tiny", "--set", "model.knn_k=300", "--out", "knn300"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && err.contains("1..=250") && !err.contains("estimated"), "{err}");
    assert!(!dir.join("knn0").exists(), "a refused setting leaves no run folder behind");
    // A missing folder is named as such, not taken for a preset name.
    let out = crane(&["train", "--data-dir", "nope"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && err.contains("nope: does not exist"), "{err}");
    // A folder not named after a preset asks for --dataset.
    let out = crane(&["train", "--data-dir", "d", "--set", "epochs=1"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid --dataset: not given, and the data folder's name `d` names no preset"), "{err}");
}

/// `crane verify --gpu` without a device: non-zero exit, one clear line, no panic. With a
/// device (not on CI) it must still not panic.
#[test]
fn verify_gpu_fails_cleanly_without_a_device() {
    for args in [&["verify", "--gpu"][..], &["verify", "--gpu", "--tf32"]] {
        let out = crane(args, &std::env::temp_dir());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        if crane_gpu::probe_device().is_err() {
            assert!(!out.status.success());
            assert_eq!(err.trim().lines().count(), 1, "{err}");
            assert!(err.starts_with("error: no CUDA device found:"), "{err}");
        }
    }
    // TF32 is a GPU switch: asked for elsewhere it is refused, not ignored.
    let out = crane(&["verify", "--cpu", "--tf32"], &std::env::temp_dir());
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--gpu"));
    // Refused before any synthetic data is generated: nothing is left behind.
    let cwd = common::scratch("cli-tf32");
    let out = crane(&["bench", "--like", "tiny", "--set", "tf32=true"], &cwd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("tf32") && err.contains("engine = \"gpu\""), "{err}");
    assert!(!cwd.join("runs").exists(), "a refused config generated data");
}

/// `crane verify --gpu-host` runs the GPU engine's code on the host: every variant, the
/// authors' attention included, passes every comparison.
#[test]
fn verify_gpu_host_passes_every_variant() {
    let out = crane(&["verify", "--gpu-host", "--graphs", "1"], &std::env::temp_dir());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("case"), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for v in [
        "crane / graph 1",
        "wo_dual_fusion / graph 1",
        "lightgcn / graph 1",
        "bpr_mf / graph 1",
        "freedom / graph 1",
        "crane_code / graph 1",
    ] {
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(v)).collect();
        assert!(rows.len() >= 5, "{v}: {rows:?}");
        assert!(rows.iter().all(|l| l.ends_with("pass")), "{v}: {rows:#?}");
    }
    assert!(!text.contains("not run") && !text.contains("FAIL"), "{text}");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `crane verify --cpu` prints the table for every variant and passes.
#[test]
fn verify_cpu_passes_with_a_table() {
    let out = crane(&["verify", "--cpu", "--graphs", "1"], &std::env::temp_dir());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("case"), "{text}");
    for v in ["crane / graph 1", "wo_dual_fusion / graph 1", "freedom / graph 1", "crane_code / graph 1"] {
        assert!(text.contains(v), "{v} missing");
    }
    assert!(text.contains("params after 3 Adam steps") && text.contains("metrics R/N/P/MAP@5,10"));
    assert!(text.contains(", 0 failed"), "{text}");
}

/// `--resume` tells the user what it found: nothing to resume (and trains from epoch 0), the
/// epoch it continues after, and a missing best checkpoint (whose parameters are then lost).
#[test]
fn resume_reports_what_it_found() {
    let dir = common::scratch("cli-resume");
    let run = |epochs: &str| {
        let out = crane(&["train", "--like", "tiny", "--set", epochs, "--out", "r", "--resume", "--no-progress"], &dir);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        err
    };
    let err = run("epochs=2");
    assert!(err.contains("no resumable state in") && err.contains("training from epoch 0"), "{err}");
    let err = run("epochs=3");
    assert!(err.contains("resuming after epoch 1"), "{err}");
    assert!(!err.contains("is missing"), "{err}");
    std::fs::remove_file(dir.join("r/checkpoint.safetensors")).unwrap();
    let err = run("epochs=4");
    assert!(err.contains("resuming after epoch 2") && err.contains("checkpoint.safetensors is missing"), "{err}");
}

/// The comparison's header says what was generated: a `crane synth --like` folder given by
/// --data-dir is synthetic data throughout, not "real interactions".
#[test]
fn compare_header_names_synthetic_data_as_generated() {
    let dir = common::scratch("cli-compare-header");
    assert!(crane(&["synth", "--like", "tiny", "--out", "data/tiny"], &dir).status.success());
    let args = ["compare", "--data-dir", "data/tiny", "--models", "bpr", "--seeds", "1", "--set", "epochs=1"];
    let out = crane(&[&args[..], &["--out", "cmp", "--no-progress"]].concat(), &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let md = std::fs::read_to_string(dir.join("cmp/compare.md")).unwrap();
    assert!(md.contains("GENERATED data: synthetic `tiny` interactions and features"), "{md}");
    assert!(!md.contains("real interactions") && !md.contains("\"generated\""), "{md}");
}

/// `crane train` never replaces an earlier run by accident: a second run into its folder is
/// refused unless `--resume` or `--overwrite` says which is meant.
#[test]
fn train_refuses_a_folder_with_an_earlier_run_unless_told() {
    let dir = common::scratch("cli-overwrite");
    assert!(crane(&["synth", "--like", "tiny", "--out", "data/tiny"], &dir).status.success());
    let args = ["train", "--data-dir", "data/tiny", "--set", "model_preset=bpr", "--set", "epochs=1", "--out", "run"];
    assert!(crane(&args, &dir).status.success());
    let before = std::fs::read(dir.join("run/results.json")).unwrap();
    let out = crane(&args, &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && err.contains("belongs to an earlier run"), "{err}");
    assert_eq!(std::fs::read(dir.join("run/results.json")).unwrap(), before, "nothing replaced");
    let out = crane(&[&args[..], &["--overwrite"]].concat(), &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // compare keeps finished runs by design: --overwrite there is refused, not ignored.
    let cmp = ["compare", "--data-dir", "data/tiny", "--models", "bpr", "--seeds", "1", "--overwrite"];
    let err = String::from_utf8_lossy(&crane(&cmp, &dir).stderr).to_string();
    assert!(err.contains("invalid --overwrite: applies to `crane train`"), "{err}");
    // Without --out, another preset than CRANE trains into its own folder.
    let out = crane(&["train", "--data-dir", "data/tiny", "--set", "model_preset=bpr", "--set", "epochs=1"], &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.join("runs/tiny-bpr/results.json").is_file());
}
