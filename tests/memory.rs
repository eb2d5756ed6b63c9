//! The peak-memory estimate printed before training, against the peak the process measured
//! (VmHWM) on two dataset sizes, and `--memory-budget` refusing a run over budget. Runs the
//! binary, so that nothing else in the test process counts towards the peak.

mod common;
use std::path::Path;
use std::process::Command;

fn bench(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crane"))
        .args(["bench", "--no-progress", "--dataset", "baby", "--data-dir"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("crane runs")
}

#[test]
fn memory_estimate_is_within_25_percent_of_the_measured_peak_on_two_sizes() {
    let base = common::scratch("memory");
    for scale in [0.15, 0.3] {
        let p = crane::data::synth::preset("baby").unwrap().scaled(scale).unwrap();
        let data = base.join(format!("baby-{scale}"));
        crane::data::synth::write(&data, "baby", &crate_generate(&p)).unwrap();
        let o = bench(&data, &base.join(format!("out-{scale}")), &[]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
        let line = stdout.lines().find(|l| l.starts_with("peak memory")).expect("bench prints the peak");
        let nums: Vec<f64> =
            line.split(|c: char| !c.is_ascii_digit() && c != '.').filter_map(|t| t.parse().ok()).collect();
        let (measured, estimated) = (nums[0], nums[1]);
        let ratio = estimated / measured;
        eprintln!("scale {scale}: measured {measured} MB, estimated {estimated} MB (ratio {ratio:.3})");
        assert!((0.75..=1.25).contains(&ratio), "scale {scale}: {line}");
    }
    // A budget below the estimate is refused before any work.
    let o = bench(&base.join("baby-0.15"), &base.join("out-budget"), &["--memory-budget", "0.01"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("over the budget of 0.01 GB"), "{err}");
}

/// `train_features` (issue 25): the raw tables become parameters. On FREEDOM at Baby x 0.3
/// (4,096 + 384 wide tables) the estimate with the switch on is within 25% of the measured
/// peak, the growth it predicts is within 25% of the measured growth, and it is exactly the
/// per-entry count. (FREEDOM's own estimate without the switch is not what this checks.)
#[test]
fn memory_estimate_counts_trained_feature_tables() {
    let base = common::scratch("memory-tf");
    let p = crane::data::synth::preset("baby").unwrap().scaled(0.3).unwrap();
    let data = base.join("baby-0.3");
    let syn = crate_generate(&p);
    crane::data::synth::write(&data, "baby", &syn).unwrap();
    let (mut measured, mut est) = (Vec::new(), Vec::new());
    for on in [false, true] {
        let set = format!("model.train_features={on}");
        let o = bench(&data, &base.join(format!("out-{on}")), &["--set", "model_preset=freedom", "--set", &set]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
        let line = stdout.lines().find(|l| l.starts_with("peak memory")).expect("bench prints the peak");
        let nums: Vec<f64> =
            line.split(|c: char| !c.is_ascii_digit() && c != '.').filter_map(|t| t.parse().ok()).collect();
        eprintln!("train_features {on}: measured {} MB, estimated {} MB", nums[0], nums[1]);
        measured.push(nums[0]);
        est.push(nums[1]);
    }
    let ratio = est[1] / measured[1];
    assert!(
        (0.75..=1.25).contains(&ratio),
        "with trained tables: estimated {} MB, measured {} MB",
        est[1],
        measured[1]
    );
    let growth = (est[1] - est[0]) / (measured[1] - measured[0]);
    assert!((0.75..=1.25).contains(&growth), "growth: estimated {est:?}, measured {measured:?}");
    let ds = crane::data::load_dataset(&data, &Default::default()).unwrap();
    let cols: usize = ds.features.iter().flatten().map(|f| f.cols).sum();
    let want = crane::memory::TRAINED_TABLE_COPIES * 4.0 * (ds.n_items * cols) as f64 / 1048576.0;
    assert!((est[1] - est[0] - want).abs() < 1.5, "estimates {est:?}: the tables add {want} MB");
}

fn crate_generate(p: &crane::data::synth::Preset) -> crane::data::synth::Synthetic {
    crane::data::synth::generate(p, 2024)
}

#[test]
fn rca_blocks_have_at_least_min_block_rows() {
    use crane::engine::cpu::rca_block_rows;
    // Electronics' M+N: 64 MB alone would give 65-row blocks.
    let n = 192_403 + 63_001;
    assert_eq!(crane::engine::cpu::rca::block_rows(n, 64 << 20), 65);
    assert_eq!(rca_block_rows(n, 64 << 20, 256), 256);
    assert_eq!(rca_block_rows(n, 64 << 20, 0), 65, "0 leaves block_mb alone");
    // Baby's M+N: block_mb already gives more rows, so the minimum changes nothing.
    assert_eq!(rca_block_rows(26_495, 64 << 20, 256), crane::engine::cpu::rca::block_rows(26_495, 64 << 20));
    // Never more rows than entities.
    assert_eq!(rca_block_rows(100, 1, 256), 100);
    // The default config asks for the minimum.
    assert_eq!(crane::config::TrainConfig::default().min_block_rows, 256);
}

/// End to end: in one `crane compare` process, a small model run after a large one reports its
/// own peak, not the large one's (each run resets the peak, `train::reset_peak_memory`). At
/// Baby x 0.15, FREEDOM (4,096-wide feature table) peaks near 290 MB and BPR-MF near 105 MB;
/// without the reset BPR-MF read FREEDOM's peak.
#[test]
fn compare_reports_each_runs_own_peak() {
    if std::fs::OpenOptions::new().write(true).open("/proc/self/clear_refs").is_err() {
        eprintln!("SKIPPED: /proc/self/clear_refs is not writable here; peaks are the whole process's");
        return;
    }
    let base = common::scratch("memory-compare");
    let p = crane::data::synth::preset("baby").unwrap().scaled(0.15).unwrap();
    let data = base.join("baby-0.15");
    crane::data::synth::write(&data, "baby", &crate_generate(&p)).unwrap();
    let out = base.join("cmp");
    let o = Command::new(env!("CARGO_BIN_EXE_crane"))
        .args(["compare", "--no-progress", "--dataset", "baby", "--models", "freedom,bpr", "--seeds", "1"])
        .args(["--set", "epochs=1", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("crane runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    let peak = |model: &str| -> f64 {
        let line = csv.lines().find(|l| l.starts_with(&format!("{model},"))).expect("row of the model");
        line.split(',').nth(5).unwrap().parse().unwrap()
    };
    let (freedom, bpr) = (peak("freedom"), peak("bpr"));
    eprintln!("peak: freedom {freedom} MB, then bpr {bpr} MB");
    assert!(bpr < 0.6 * freedom, "BPR-MF after FREEDOM: {bpr} MB against FREEDOM's {freedom} MB");
}
