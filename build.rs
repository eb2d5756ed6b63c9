//! Detects the real Amazon Baby interactions beside the repository, so the tests that need them
//! are reported as ignored (with the reason) rather than passed when they are absent.

fn main() {
    git_commit();
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
