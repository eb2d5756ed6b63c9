//! Detects the real Amazon Baby interactions beside the repository, so the tests that need them
//! are reported as ignored (with the reason) rather than passed when they are absent.

fn main() {
    git_commit();
    cuda_driver();
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    for (cfg, file) in [
        ("real_baby_data", "../shared/data/baby/baby.inter"),
        ("real_lattice_data", "../shared/data/amazon-baby/train.json"),
    ] {
        let path = std::path::Path::new(&manifest).join(file);
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-changed={}", path.display());
        if path.is_file() {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}

/// The commit the binary is built from (for run manifests), `-dirty` with local changes.
fn git_commit() {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(head) = run(&["rev-parse", "HEAD"]) {
        let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        println!("cargo::rustc-env=CRANE_GIT_COMMIT={head}{}", if dirty { "-dirty" } else { "" });
    }
    println!("cargo::rerun-if-changed=.git/HEAD");
    println!("cargo::rerun-if-changed=.git/index");
}

/// Sets `cfg(cuda_driver_present)` when a CUDA driver library is on the loader's usual paths,
/// so the GPU engine's device tests are reported as ignored (with the reason) where there is none.
fn cuda_driver() {
    println!("cargo::rustc-check-cfg=cfg(cuda_driver_present)");
    println!("cargo::rerun-if-env-changed=LD_LIBRARY_PATH");
    let mut dirs: Vec<std::path::PathBuf> = std::env::var("LD_LIBRARY_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|s| !s.is_empty())
        .map(Into::into)
        .collect();
    dirs.extend(
        ["/usr/lib/x86_64-linux-gnu", "/usr/local/cuda/lib64", "/usr/lib64", "/usr/lib", "/usr/lib/wsl/lib"]
            .map(Into::into),
    );
    let found = dirs.iter().any(|d| {
        std::fs::read_dir(d)
            .map(|it| it.flatten().any(|e| e.file_name().to_string_lossy().starts_with("libcuda.so")))
            .unwrap_or(false)
    });
    if found {
        println!("cargo::rustc-cfg=cuda_driver_present");
    }
}
