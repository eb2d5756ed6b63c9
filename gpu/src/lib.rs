//! # crane-gpu
//!
//! The CUDA side of crane: detection of a driver and device that never panics (cudarc's
//! dynamic loading panics when a library is absent, so each library is probed first), the
//! CUDA kernels of `kernels/*.cu` and their run-time compilation by NVRTC.
//!
//! The GPU engine (crate `crane`, `engine::gpu`) is written against the ops of
//! [`device::Device`]; [`cuda::CudaDevice`] implements them with cuBLAS and these kernels,
//! [`device::HostDevice`] with plain loops so that the engine is tested without a GPU.
//!
//! Status (see the GPU issue's notes and `docs/BENCHMARKS.md`): the kernels compile (tested in
//! CI with NVRTC 13.0 from PyPI), device detection fails cleanly on machines without CUDA, and
//! the engine's orchestration passes the parity tests on [`device::HostDevice`] (every switch
//! but the authors' attention). Nothing here
//! has run on a GPU: no device was available to verify [`cuda::CudaDevice`].

pub mod cuda;
pub mod device;

use cudarc::nvrtc::{CompileOptions, Ptx};

/// Every kernel source, by file name: compiled by NVRTC at run time (and in CI).
pub const KERNELS: [(&str, &str); 5] = [
    ("elementwise.cu", include_str!("../kernels/elementwise.cu")),
    ("sparse.cu", include_str!("../kernels/sparse.cu")),
    ("topk.cu", include_str!("../kernels/topk.cu")),
    ("losses.cu", include_str!("../kernels/losses.cu")),
    ("attention.cu", include_str!("../kernels/attention.cu")),
];

/// The virtual architecture PTX is generated for: Hopper (H100/H200), the lent machines.
pub const ARCH: &str = "compute_90";

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no CUDA device found: {0}")]
    NoDevice(String),
    #[error("NVRTC is not available: {0}")]
    NoNvrtc(String),
    #[error("kernel {file} does not compile:\n{log}")]
    Compile { file: String, log: String },
    #[error("{0}")]
    NotImplemented(&'static str),
    #[error("CUDA: {0}")]
    Driver(String),
    #[error("GPU engine: shape mismatch: {0}")]
    Shape(String),
}

/// The `extern "C" __global__` function names of a kernel source.
pub fn kernel_names(src: &str) -> Vec<&str> {
    src.split("__global__ void ").skip(1).filter_map(|s| s.split('(').next()).map(str::trim).collect()
}

/// What was found on this machine.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub count: usize,
    pub name: String,
}

/// Runs `f`, turning a panic (cudarc's reaction to a missing library) into an error message.
fn guarded<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(f);
    std::panic::set_hook(hook);
    r.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// Finds a CUDA driver and at least one device, without panicking when there is none.
pub fn probe_device() -> Result<DeviceInfo, GpuError> {
    // SAFETY: only tries to dlopen the driver library by its candidate names.
    let present = guarded(|| unsafe { cudarc::driver::sys::is_culib_present() }).unwrap_or(false);
    if !present {
        return Err(GpuError::NoDevice("the CUDA driver library (libcuda.so) could not be loaded".into()));
    }
    let count = guarded(cudarc::driver::CudaContext::device_count)
        .map_err(|p| GpuError::NoDevice(format!("the CUDA driver failed to start: {p}")))?
        .map_err(|e| GpuError::NoDevice(format!("the CUDA driver reports no devices: {e}")))?;
    if count <= 0 {
        return Err(GpuError::NoDevice("the CUDA driver reports 0 devices".into()));
    }
    let ctx = guarded(|| cudarc::driver::CudaContext::new(0))
        .map_err(|p| GpuError::NoDevice(format!("creating a context on device 0 panicked: {p}")))?
        .map_err(|e| GpuError::NoDevice(format!("creating a context on device 0 failed: {e}")))?;
    let name = ctx.name().unwrap_or_else(|_| "unknown device".into());
    Ok(DeviceInfo { count: count as usize, name })
}

/// Whether NVRTC can be loaded (from `LD_LIBRARY_PATH` or the system).
pub fn nvrtc_available() -> Result<(), GpuError> {
    // SAFETY: only tries to dlopen the NVRTC library by its candidate names.
    match guarded(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }) {
        Ok(true) => Ok(()),
        Ok(false) => Err(GpuError::NoNvrtc(
            "libnvrtc.so could not be loaded (pip install 'nvidia-cuda-nvrtc==13.0.*' and add its lib folder to \
             LD_LIBRARY_PATH)"
                .into(),
        )),
        Err(p) => Err(GpuError::NoNvrtc(p)),
    }
}

/// Compiles one kernel source to PTX for [`ARCH`], with fused multiply-add off so that results
/// are as close to the CPU engine's as the hardware allows.
pub fn compile(file: &str, src: &str) -> Result<Ptx, GpuError> {
    nvrtc_available()?;
    let opts = CompileOptions { fmad: Some(false), arch: Some(ARCH), name: Some(file.into()), ..Default::default() };
    let src = src.to_string();
    let name = file.to_string();
    guarded(move || cudarc::nvrtc::compile_ptx_with_opts(src, opts))
        .map_err(GpuError::NoNvrtc)?
        .map_err(|e| GpuError::Compile { file: name, log: format!("{e:?}") })
}

/// Compiles every kernel: `(file, PTX)` pairs.
pub fn compile_all() -> Result<Vec<(&'static str, Ptx)>, GpuError> {
    KERNELS.iter().map(|(f, s)| compile(f, s).map(|p| (*f, p))).collect()
}
