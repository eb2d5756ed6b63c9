//! Finds NVRTC (libnvrtc.so*) on LD_LIBRARY_PATH or the usual library folders, so that the
//! kernel-compile tests are reported as ignored (with the reason) rather than passed where it is
//! absent. CI installs NVRTC 13.0 from PyPI and puts it on LD_LIBRARY_PATH.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(nvrtc_present)");
    println!("cargo::rerun-if-env-changed=LD_LIBRARY_PATH");
    let mut dirs: Vec<std::path::PathBuf> = std::env::var("LD_LIBRARY_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|s| !s.is_empty())
        .map(Into::into)
        .collect();
    dirs.extend(["/usr/lib/x86_64-linux-gnu", "/usr/local/cuda/lib64", "/usr/lib64", "/usr/lib"].map(Into::into));
    dirs.push("/usr/lib/wsl/lib".into());
    let has = |prefix: &str| {
        dirs.iter().any(|d| {
            std::fs::read_dir(d)
                .map(|it| it.flatten().any(|e| e.file_name().to_string_lossy().starts_with(prefix)))
                .unwrap_or(false)
        })
    };
    let found = has("libnvrtc.so");
    // The device tests need the driver library (a GPU machine); elsewhere they are ignored.
    println!("cargo::rustc-check-cfg=cfg(cuda_driver_present)");
    if has("libcuda.so") {
        println!("cargo::rustc-cfg=cuda_driver_present");
    }
    println!("cargo::rerun-if-env-changed=CRANE_REQUIRE_NVRTC");
    if found {
        println!("cargo::rustc-cfg=nvrtc_present");
    } else if std::env::var_os("CRANE_REQUIRE_NVRTC").is_some() {
        panic!(
            "CRANE_REQUIRE_NVRTC is set but no libnvrtc.so* is on LD_LIBRARY_PATH: the kernels would not be compiled"
        );
    }
}
