//! Detects the real Amazon Baby interactions beside the repository, so the tests that need them
//! are reported as ignored (with the reason) rather than passed when they are absent.

fn main() {
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
