//! The rehearsal of `scripts/gpu-session.sh` on a machine without a GPU, as CI has: every step
//! fails fast with the "no CUDA device" line, the session still writes its eight files (what
//! the device tool brings back), the summary has a verdict per step and says that no GPU test
//! ran, and the script exits non-zero. The test binaries are stand-ins here (the real ones are
//! release builds made by scripts/build-for-device.sh); `crane` is the real binary.

mod common;
use std::path::Path;
use std::process::Command;

fn stand_in(dir: &Path, name: &str) {
    let p = dir.join(name);
    std::fs::write(
        &p,
        "#!/bin/sh\necho 'test parity_default::gpu_cuda ... FAILED'\necho 'no CUDA device found: stand-in'\n\
         echo 'test result: FAILED. 0 passed; 1 failed; 0 ignored'\nexit 101\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_session_script_fails_fast_without_a_gpu_and_leaves_its_files() {
    if crane_gpu::probe_device().is_ok() {
        eprintln!("SKIP the_session_script_fails_fast_without_a_gpu_and_leaves_its_files: a GPU is here");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = common::scratch("gpu-session");
    let (bin, out) = (tmp.join("bin"), tmp.join("out"));
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_crane"), bin.join("crane")).unwrap();
    for t in ["kernels", "device", "parity"] {
        stand_in(&bin, t);
    }
    let t0 = std::time::Instant::now();
    let o = Command::new("bash")
        .arg(root.join("scripts/gpu-session.sh"))
        .env("OUT", &out)
        .env("BIN", &bin)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("bash runs");
    let secs = t0.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "the rehearsal fails:\n{log}");
    assert!(secs < 60.0, "every step fails fast ({secs:.0} s)");
    let mut files: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    files.sort();
    assert_eq!(
        files,
        ["bench.txt", "env.txt", "session.log", "smi.csv", "summary.txt", "tests.log", "verify-tf32.txt", "verify.txt"]
    );
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    let summary = read("summary.txt");
    for step in ["kernel tests", "device ops", "crane verify --gpu ", "parity tests", "crane bench baby fp32"] {
        assert!(summary.lines().any(|l| l.starts_with(step) && l.contains("FAILED")), "{step}: {summary}");
    }
    assert!(summary.contains("crane bench electronics tf32") && summary.contains("crane verify --gpu --tf32"));
    assert!(summary.contains("NO GPU TEST RAN"), "{summary}");
    assert!(summary.contains("rerun parity_default::gpu_cuda"), "failed parity tests are rerun alone: {summary}");
    for f in ["verify.txt", "verify-tf32.txt", "bench.txt"] {
        assert!(read(f).contains("error: no CUDA device found"), "{f}: {}", read(f));
    }
    assert!(read("env.txt").contains("libcublas.so:"), "the libraries are listed");
}
