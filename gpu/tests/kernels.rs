//! Every kernel compiles with NVRTC. CI (`.ci/run`) installs NVRTC 13.0 from PyPI and puts it on
//! LD_LIBRARY_PATH, so these run there; where NVRTC is absent they are reported as ignored.

#[test]
#[cfg_attr(not(nvrtc_present), ignore = "libnvrtc.so not found on LD_LIBRARY_PATH at build time (see .ci/run)")]
fn every_kernel_compiles_with_nvrtc() {
    crane_gpu::nvrtc_available().unwrap_or_else(|e| panic!("{e}"));
    let ptx = crane_gpu::compile_all().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ptx.len(), crane_gpu::KERNELS.len());
    for (file, p) in &ptx {
        let text = p.to_src();
        assert!(
            text.contains(".target sm_90") || text.contains(".target compute_90"),
            "{file}: {}",
            &text[..200.min(text.len())]
        );
        // Every `extern "C" __global__` function of the source is an entry of the PTX.
        let src = crane_gpu::KERNELS.iter().find(|k| k.0 == *file).unwrap().1;
        for name in crane_gpu::kernel_names(src) {
            assert!(text.contains(&format!(".entry {name}(")), "{file}: no entry {name}");
        }
        eprintln!("compiled {file}: {} bytes of PTX", text.len());
    }
}

#[test]
#[cfg_attr(not(nvrtc_present), ignore = "libnvrtc.so not found on LD_LIBRARY_PATH at build time (see .ci/run)")]
fn a_broken_kernel_is_reported_with_the_compiler_log() {
    let e = crane_gpu::compile("broken.cu", "extern \"C\" __global__ void f(float *x) { x[0] = undefined_name; }")
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken.cu") && e.contains("undefined_name"), "{e}");
}

/// On a machine without CUDA (CI) this checks the error path; with a device, the probe.
#[test]
fn no_device_is_an_error_not_a_panic() {
    match crane_gpu::probe_device() {
        Ok(d) => eprintln!("device found: {} ({} devices)", d.name, d.count),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("no CUDA device found:"), "{msg}");
            eprintln!("no device here, as expected on CI: {msg}");
        }
    }
}

#[test]
#[cfg_attr(not(nvrtc_present), ignore = "libnvrtc.so not found on LD_LIBRARY_PATH at build time (see .ci/run)")]
fn kernels_are_compiled_once_per_process() {
    let a = crane_gpu::compiled_kernels().unwrap_or_else(|e| panic!("{e}"));
    let b = crane_gpu::compiled_kernels().unwrap_or_else(|e| panic!("{e}"));
    assert!(std::ptr::eq(a, b), "the second device loads the first compilation's PTX");
    assert_eq!(a.len(), crane_gpu::KERNELS.len());
}

/// cuBLAS is probed like the driver: where it is absent the error names the library and where
/// to put it, instead of cudarc's panic inside `CudaBlas::new`.
#[test]
fn a_missing_cublas_is_an_error_naming_the_library() {
    match crane_gpu::cublas_available() {
        Ok(()) => eprintln!("cuBLAS loads here"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("libcublas") && msg.contains("LD_LIBRARY_PATH"), "{msg}");
        }
    }
    // The device probe answers the same twice (probed once per process).
    let first = crane_gpu::probe_device().map_err(|e| e.to_string());
    assert_eq!(first, crane_gpu::probe_device().map_err(|e| e.to_string()));
}
