//! Detects the real Amazon Baby interactions beside the repository, so the test that needs them
//! is reported as ignored (with the reason) rather than passed when they are absent.

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let path = std::path::Path::new(&manifest).join("../shared/data/baby/baby.inter");
    println!("cargo::rustc-check-cfg=cfg(real_baby_data)");
    println!("cargo::rerun-if-changed={}", path.display());
    if path.is_file() {
        println!("cargo::rustc-cfg=real_baby_data");
    }
}
