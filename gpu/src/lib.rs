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
    #[error("cuBLAS is not available: {0}")]
    NoCublas(String),
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub count: usize,
    pub name: String,
}

thread_local! {
    /// Set while this thread runs a [`guarded`] probe: its expected panics print nothing.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once per process, a panic hook that is silent on a thread inside [`guarded`] and
/// otherwise defers to the hook it replaced. Swapping the process-wide hook around each probe
/// (as before) let one thread of a parallel test harness restore another's silent hook, after
/// which later failures printed nothing.
fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info)
            }
        }));
    });
}

/// Runs `f`, turning a panic (cudarc's reaction to a missing library) into an error message.
/// Only this thread is quietened, and only while `f` runs: a panic elsewhere still reaches the
/// hook that was installed before the first call.
pub fn guarded<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T, String> {
    install_quiet_hook();
    let was = QUIET.with(|q| q.replace(true));
    let r = std::panic::catch_unwind(f);
    QUIET.with(|q| q.set(was));
    r.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// Where to look for the CUDA libraries, for error messages.
pub const LIBRARY_HINT: &str = "put the folder holding it on LD_LIBRARY_PATH: the CUDA toolkit's \
    (/usr/local/cuda/lib64, /usr/local/cuda/targets/x86_64-linux/lib), the driver's (/usr/local/nvidia/lib64), \
    or a Python environment's site-packages/nvidia/<library>/lib (cu13/lib for CUDA 13 wheels)";

/// Finds a CUDA driver and at least one device, without panicking when there is none. Probed
/// once per process; later calls return the first answer.
pub fn probe_device() -> Result<DeviceInfo, GpuError> {
    static PROBE: std::sync::OnceLock<Result<DeviceInfo, String>> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| probe_device_now().map_err(|e| e.to_string()))
        .clone()
        .map_err(|msg| GpuError::NoDevice(msg.strip_prefix("no CUDA device found: ").unwrap_or(&msg).to_string()))
}

/// Whether cuBLAS can be loaded: cudarc panics inside `CudaBlas::new` when it cannot.
pub fn cublas_available() -> Result<(), GpuError> {
    // SAFETY: only tries to dlopen the cuBLAS library by its candidate names.
    match guarded(|| unsafe { cudarc::cublas::sys::is_culib_present() }) {
        Ok(true) => Ok(()),
        Ok(false) => {
            Err(GpuError::NoCublas(format!("libcublas.so.13 (or libcublas.so) could not be loaded; {LIBRARY_HINT}")))
        }
        Err(p) => Err(GpuError::NoCublas(format!("loading libcublas panicked: {p}; {LIBRARY_HINT}"))),
    }
}

fn probe_device_now() -> Result<DeviceInfo, GpuError> {
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
        Ok(false) => Err(GpuError::NoNvrtc(format!(
            "libnvrtc.so could not be loaded (it comes with the CUDA toolkit, or pip install \
             'nvidia-cuda-nvrtc==13.0.*'); {LIBRARY_HINT}"
        ))),
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

/// [`compile_all`], once per process: every later device (a TF32 one beside an FP32 one, the
/// variants of `crane verify`) loads the same PTX instead of compiling again.
pub fn compiled_kernels() -> Result<&'static [(&'static str, Ptx)], GpuError> {
    static PTX: std::sync::OnceLock<Result<Vec<(&'static str, Ptx)>, String>> = std::sync::OnceLock::new();
    match PTX.get_or_init(|| compile_all().map_err(|e| e.to_string())) {
        Ok(v) => Ok(v),
        Err(msg) => Err(GpuError::NoNvrtc(format!("kernel compilation failed earlier in this process: {msg}"))),
    }
}
