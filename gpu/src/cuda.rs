//! [`Device`] on an NVIDIA GPU: cuBLAS for the dense products, the NVRTC-compiled kernels of
//! `kernels/*.cu` for everything else, one stream (so ops run in the order they are issued).
//!
//! Status: compiled everywhere (cudarc loads the CUDA libraries at run time), but **not yet run
//! on a GPU**: no device was available to the sessions that wrote it. `crane verify --gpu`
//! is the check to run first on a machine with one.

use crate::device::{AdamConsts, DevCsr, DevSegments, Device, Elem, R};
use crate::{probe_device, GpuError};
use cudarc::cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use std::collections::HashMap;
use std::sync::Arc;

/// Threads per block of the elementwise kernels.
const THREADS: u32 = 256;

/// A device buffer and its logical length (CUDA refuses 0-byte allocations, so an empty
/// buffer holds one unused element).
pub struct CudaBuf<T> {
    s: CudaSlice<T>,
    len: usize,
}

/// Cheap to clone: clones share the context, stream, cuBLAS handle and loaded kernels.
#[derive(Clone)]
pub struct CudaDevice {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    funcs: HashMap<String, CudaFunction>,
}

fn drv(e: cudarc::driver::DriverError) -> GpuError {
    GpuError::Driver(e.to_string())
}

/// cudarc panics on an out-of-range slice: check first and return an error.
fn range<T>(what: &str, b: &CudaBuf<T>, off: usize, len: usize) -> R<()> {
    if off + len <= b.len {
        Ok(())
    } else {
        Err(GpuError::Shape(format!("{what}: elements {off}..{} of a buffer of {}", off + len, b.len)))
    }
}

fn cfg_elems(n: usize) -> LaunchConfig {
    let n = n.max(1) as u64;
    LaunchConfig {
        grid_dim: (n.div_ceil(THREADS as u64) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl CudaDevice {
    /// Device 0 with every kernel compiled and loaded; an error (never a panic) without one.
    /// cuBLAS in its default math (full f32 products, no TF32).
    pub fn new() -> R<Self> {
        Self::with_tf32(false)
    }

    /// [`CudaDevice::new`], with cuBLAS's products on TF32 tensor cores when `tf32` (inputs
    /// rounded to 10-bit mantissas, f32 accumulation; the kernels are unaffected).
    pub fn with_tf32(tf32: bool) -> R<Self> {
        let info = probe_device()?;
        // cudarc panics inside `CudaBlas::new` without the library: probe it like the driver.
        crate::cublas_available()?;
        let ctx = CudaContext::new(0).map_err(drv)?;
        keep_pool_memory(&ctx)?;
        // One stream: the per-slice events that order uses across streams are never needed, and
        // recording them cost every allocation (about 100 per batch) an event.
        // SAFETY: every buffer of this device is used on its one stream only.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(|e| GpuError::Driver(format!("cuBLAS: {e}")))?;
        if tf32 {
            use cudarc::cublas::sys::{cublasMath_t, cublasSetMathMode, cublasStatus_t};
            // SAFETY: the handle is valid for the lifetime of `blas`, which owns it.
            let status = unsafe { cublasSetMathMode(*blas.handle(), cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH) };
            if status != cublasStatus_t::CUBLAS_STATUS_SUCCESS {
                return Err(GpuError::Driver(format!("cuBLAS: setting TF32 math failed: {status:?}")));
            }
        }
        let mut funcs = HashMap::new();
        for (file, ptx) in crate::compiled_kernels()? {
            let src = crate::KERNELS.iter().find(|k| k.0 == *file).map(|k| k.1).unwrap_or_default();
            let module = ctx.load_module(ptx.clone()).map_err(drv)?;
            for name in crate::kernel_names(src) {
                funcs.insert(name.to_string(), module.load_function(name).map_err(drv)?);
            }
        }
        Ok(Self { inner: Arc::new(Inner { name: info.name, ctx, stream, blas, funcs }) })
    }

    /// Device memory: the stream pool's high-water mark of memory in use (bytes; the peak a run
    /// needed) and the device's used and total memory now (`cuMemGetInfo`, every process).
    pub fn memory(&self) -> R<DeviceMemory> {
        use cudarc::driver::sys::CUmemPool_attribute as A;
        let ctx = &self.inner.ctx;
        let (free, total) = ctx.mem_get_info().map_err(drv)?;
        let mut peak: u64 = 0;
        if ctx.has_async_alloc() {
            pool_u64(ctx, A::CU_MEMPOOL_ATTR_USED_MEM_HIGH, &mut peak, false)?;
        }
        Ok(DeviceMemory { pool_peak_bytes: peak, used_bytes: (total - free) as u64, total_bytes: total as u64 })
    }

    fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.stream
    }

    fn f(&self, name: &str) -> R<&CudaFunction> {
        self.inner.funcs.get(name).ok_or_else(|| GpuError::Driver(format!("kernel {name} is not loaded")))
    }
}

/// Device memory figures of [`CudaDevice::memory`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceMemory {
    pub pool_peak_bytes: u64,
    pub used_bytes: u64,
    pub total_bytes: u64,
}

/// Sets the device's stream-ordered memory pool to keep freed memory: by default (release
/// threshold 0) it hands freed memory back to the driver at every synchronisation, so each
/// batch's ~100 buffers were real driver allocations again. With the threshold at its maximum
/// the pool is a caching allocator: a batch's buffers reuse the previous batch's memory.
fn keep_pool_memory(ctx: &Arc<CudaContext>) -> R<()> {
    use cudarc::driver::sys::CUmemPool_attribute as A;
    if !ctx.has_async_alloc() {
        return Ok(());
    }
    let mut keep = u64::MAX;
    pool_u64(ctx, A::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &mut keep, true)
}

/// Reads (`write` false) or writes a u64 attribute of the device's current memory pool (the
/// release threshold and the used-memory counters are all u64).
fn pool_u64(ctx: &CudaContext, attr: cudarc::driver::sys::CUmemPool_attribute, value: &mut u64, write: bool) -> R<()> {
    use cudarc::driver::result::{device, mem_pool};
    let ptr = value as *mut u64 as *mut std::ffi::c_void;
    // SAFETY: the device is this context's, and every attribute passed here is a u64 one.
    unsafe {
        let pool = device::get_mem_pool(ctx.cu_device()).map_err(drv)?;
        if write { mem_pool::set_attribute(pool, attr, ptr) } else { mem_pool::get_attribute(pool, attr, ptr) }
            .map_err(drv)
    }
}

macro_rules! launch {
    ($dev:expr, $name:expr, $cfg:expr, $($arg:expr),* $(,)?) => {{
        let f = $dev.f($name)?;
        let mut b = $dev.stream().launch_builder(f);
        $( b.arg($arg); )*
        // SAFETY: every launch passes the kernel's parameters in its declared order and types,
        // with buffers of the sizes the kernel reads (checked by the callers' shapes).
        unsafe { b.launch($cfg) }.map(|_| ()).map_err(drv)
    }};
}

impl Device for CudaDevice {
    type Buf<T: Elem> = CudaBuf<T>;

    fn name(&self) -> String {
        self.inner.name.clone()
    }

    fn upload<T: Elem>(&self, x: &[T]) -> R<CudaBuf<T>> {
        if x.is_empty() {
            return self.zeros(0);
        }
        Ok(CudaBuf { s: self.stream().clone_htod(x).map_err(drv)?, len: x.len() })
    }

    fn zeros<T: Elem>(&self, n: usize) -> R<CudaBuf<T>> {
        Ok(CudaBuf { s: self.stream().alloc_zeros(n.max(1)).map_err(drv)?, len: n })
    }

    fn download<T: Elem>(&self, x: &CudaBuf<T>) -> R<Vec<T>> {
        let mut v = self.stream().clone_dtoh(&x.s).map_err(drv)?;
        v.truncate(x.len);
        Ok(v)
    }

    fn len<T: Elem>(&self, x: &CudaBuf<T>) -> usize {
        x.len
    }

    fn fill_zero(&self, x: &mut CudaBuf<f32>) -> R<()> {
        self.stream().memset_zeros(&mut x.s).map_err(drv)
    }

    fn copy_at(&self, dst: &mut CudaBuf<f32>, dst_off: usize, src: &CudaBuf<f32>, src_off: usize, len: usize) -> R<()> {
        if len == 0 {
            return Ok(());
        }
        range("copy_at source", src, src_off, len)?;
        range("copy_at destination", dst, dst_off, len)?;
        let s = src.s.slice(src_off..src_off + len);
        let mut d = dst.s.slice_mut(dst_off..dst_off + len);
        self.stream().memcpy_dtod(&s, &mut d).map_err(drv)
    }

    fn axpy_at(&self, y: &mut CudaBuf<f32>, y_off: usize, x: &CudaBuf<f32>, x_off: usize, len: usize, a: f32) -> R<()> {
        if len == 0 {
            return Ok(());
        }
        range("axpy_at x", x, x_off, len)?;
        range("axpy_at y", y, y_off, len)?;
        let xv = x.s.slice(x_off..x_off + len);
        let mut yv = y.s.slice_mut(y_off..y_off + len);
        let n = len as i64;
        launch!(self, "axpy", cfg_elems(len), &mut yv, &xv, &a, &n)
    }

    fn scale(&self, x: &mut CudaBuf<f32>, a: f32) -> R<()> {
        let n = x.len as i64;
        launch!(self, "scale", cfg_elems(x.len), &mut x.s, &a, &n)
    }

    fn gemm(
        &self,
        c: &mut CudaBuf<f32>,
        m: usize,
        n: usize,
        k: usize,
        a: &CudaBuf<f32>,
        ta: bool,
        b: &CudaBuf<f32>,
        tb: bool,
        alpha: f32,
        beta: f32,
    ) -> R<()> {
        if m == 0 || n == 0 {
            return Ok(());
        }
        if k == 0 {
            return self.scale(c, beta);
        }
        // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: cuBLAS gets B first.
        let op = |t: bool| if t { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N };
        let cfg = GemmConfig {
            transa: op(tb),
            transb: op(ta),
            m: n as i32,
            n: m as i32,
            k: k as i32,
            alpha,
            lda: if tb { k } else { n } as i32,
            ldb: if ta { m } else { k } as i32,
            beta,
            ldc: n as i32,
        };
        // SAFETY: the buffers hold [k, n] / [n, k], [m, k] / [k, m] and [m, n] elements.
        unsafe { self.inner.blas.gemm(cfg, &b.s, &a.s, &mut c.s) }
            .map_err(|e| GpuError::Driver(format!("cuBLAS sgemm: {e}")))
    }

    fn spmm(&self, out: &mut CudaBuf<f32>, a: &DevCsr<Self>, x: &CudaBuf<f32>, c: usize) -> R<()> {
        if a.rows == 0 || c == 0 {
            return Ok(());
        }
        let (rows, cols) = (a.rows as i32, c as i32);
        // One warp per output row.
        let cfg = cfg_elems(a.rows * 32);
        launch!(self, "csr_spmm", cfg, &mut out.s, &a.offsets.s, &a.idx.s, &a.vals.s, &x.s, &rows, &cols)
    }

    fn leaky_relu(&self, y: &mut CudaBuf<f32>, x: &CudaBuf<f32>, s: f32) -> R<()> {
        let n = x.len as i64;
        launch!(self, "leaky_relu", cfg_elems(x.len), &mut y.s, &x.s, &s, &n)
    }

    fn leaky_relu_backward(&self, dx: &mut CudaBuf<f32>, x: &CudaBuf<f32>, dy: &CudaBuf<f32>, s: f32) -> R<()> {
        let n = x.len as i64;
        launch!(self, "leaky_relu_backward", cfg_elems(x.len), &mut dx.s, &x.s, &dy.s, &s, &n)
    }

    fn gather_rows(&self, out: &mut CudaBuf<f32>, x: &CudaBuf<f32>, rows: &CudaBuf<u32>, c: usize) -> R<()> {
        if rows.len == 0 || c == 0 {
            return Ok(());
        }
        let (n, cc) = (rows.len as i32, c as i32);
        launch!(self, "gather_rows", cfg_elems(rows.len * c), &mut out.s, &x.s, &rows.s, &n, &cc)
    }

    fn scatter_add_rows(&self, dst: &mut CudaBuf<f32>, src: &CudaBuf<f32>, s: &DevSegments<Self>, c: usize) -> R<()> {
        if s.n_seg == 0 || c == 0 {
            return Ok(());
        }
        let (n_seg, cc) = (s.n_seg as i32, c as i32);
        launch!(
            self,
            "segment_scatter_add",
            cfg_elems(s.n_seg * c),
            &mut dst.s,
            &src.s,
            &s.rows.s,
            &s.seg.s,
            &s.order.s,
            &n_seg,
            &cc
        )
    }

    fn col_sums_add(&self, g: &mut CudaBuf<f32>, x: &CudaBuf<f32>, c: usize) -> R<()> {
        if c == 0 {
            return Ok(());
        }
        let (r, cc) = ((x.len / c) as i64, c as i32);
        launch!(self, "col_sums_add", cfg_elems(c), &mut g.s, &x.s, &r, &cc)
    }

    fn add_row_bias(&self, x: &mut CudaBuf<f32>, b: &CudaBuf<f32>, c: usize) -> R<()> {
        if x.len == 0 || c == 0 {
            return Ok(());
        }
        let (r, cc) = ((x.len / c) as i64, c as i32);
        launch!(self, "add_row_bias", cfg_elems(x.len), &mut x.s, &b.s, &r, &cc)
    }

    fn scale_rows(&self, x: &mut CudaBuf<f32>, f: &CudaBuf<f32>, c: usize) -> R<()> {
        let (r, cc) = (f.len as i64, c as i32);
        launch!(self, "scale_rows", cfg_elems(f.len * c), &mut x.s, &f.s, &r, &cc)
    }

    fn row_sq_norms(&self, out: &mut CudaBuf<f32>, x: &CudaBuf<f32>, c: usize) -> R<()> {
        let (r, cc) = (out.len as i64, c as i32);
        launch!(self, "row_sq_norms", cfg_elems(out.len), &mut out.s, &x.s, &r, &cc)
    }

    fn bpr_terms(
        &self,
        loss: &mut CudaBuf<f32>,
        coef: &mut CudaBuf<f32>,
        zu: &CudaBuf<f32>,
        zi: &CudaBuf<f32>,
        u: &CudaBuf<u32>,
        i: &CudaBuf<u32>,
        j: &CudaBuf<u32>,
        d: usize,
    ) -> R<()> {
        if u.len == 0 {
            return Ok(());
        }
        let (b, dd) = (u.len as i32, d as i32);
        launch!(self, "bpr_terms", cfg_elems(u.len), &zu.s, &zi.s, &u.s, &i.s, &j.s, &b, &dd, &mut loss.s, &mut coef.s)
    }

    fn adam(
        &self,
        p: &mut CudaBuf<f32>,
        g: &CudaBuf<f32>,
        m: &mut CudaBuf<f32>,
        v: &mut CudaBuf<f32>,
        s: AdamConsts,
    ) -> R<()> {
        let n = p.len as i64;
        launch!(
            self,
            "adam_step",
            cfg_elems(p.len),
            &mut p.s,
            &g.s,
            &mut m.s,
            &mut v.s,
            &s.beta2,
            &s.one_minus_beta1,
            &s.one_minus_beta2,
            &s.eps,
            &s.step_size,
            &s.c2_sqrt,
            &n
        )
    }

    fn tanh(&self, x: &mut CudaBuf<f32>) -> R<()> {
        let n = x.len as i64;
        launch!(self, "tanh_inplace", cfg_elems(x.len), &mut x.s, &n)
    }

    fn tanh_backward(&self, dy: &mut CudaBuf<f32>, y: &CudaBuf<f32>) -> R<()> {
        let n = y.len as i64;
        launch!(self, "tanh_backward", cfg_elems(y.len), &mut dy.s, &y.s, &n)
    }

    fn row_dots(&self, out: &mut CudaBuf<f32>, a: &CudaBuf<f32>, b: &CudaBuf<f32>, c: usize) -> R<()> {
        let (r, cc) = (out.len as i64, c as i32);
        launch!(self, "row_dots", cfg_elems(out.len), &mut out.s, &a.s, &b.s, &r, &cc)
    }

    fn add_diag(&self, x: &mut CudaBuf<f32>, n: usize, a: f32) -> R<()> {
        let nn = n as i32;
        launch!(self, "add_diag", cfg_elems(n), &mut x.s, &a, &nn)
    }

    fn softmax_rows_loss(&self, x: &mut CudaBuf<f32>, n: usize, row_loss: &mut CudaBuf<f32>) -> R<()> {
        if n == 0 {
            return Ok(());
        }
        let nn = n as i32;
        // One block of 256 threads per row (the kernel's shared reduction buffer).
        let cfg = LaunchConfig { grid_dim: (n as u32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        launch!(self, "info_nce_rows", cfg, &mut x.s, &nn, &mut row_loss.s)
    }

    fn csr_sddmm(
        &self,
        out: &mut CudaBuf<f32>,
        s: &DevCsr<Self>,
        a: &CudaBuf<f32>,
        b: &CudaBuf<f32>,
        c: usize,
    ) -> R<()> {
        if out.len == 0 {
            return Ok(());
        }
        let (rows, nnz, cc) = (s.rows as i32, out.len as i64, c as i32);
        launch!(self, "csr_sddmm", cfg_elems(out.len), &mut out.s, &s.offsets.s, &s.idx.s, &a.s, &b.s, &rows, &nnz, &cc)
    }

    fn row_topk(
        &self,
        idx: &mut CudaBuf<u32>,
        val: &mut CudaBuf<f32>,
        x: &CudaBuf<f32>,
        rows: usize,
        n: usize,
        k: usize,
        mask: Option<&DevCsr<Self>>,
    ) -> R<()> {
        if k > 64 {
            return Err(GpuError::Shape(format!("row_topk: k = {k} > 64")));
        }
        if rows == 0 || k == 0 {
            return Ok(());
        }
        range("row_topk input", x, 0, rows * n)?;
        range("row_topk idx", idx, 0, rows * k)?;
        range("row_topk val", val, 0, rows * k)?;
        let (r, nn, kk) = (rows as i32, n as i32, k as i32);
        // One warp per row.
        let cfg = cfg_elems(rows * 32);
        match mask {
            Some(m) => {
                if m.rows != rows {
                    return Err(GpuError::Shape(format!("row_topk: mask has {} rows, scores {rows}", m.rows)));
                }
                range("row_topk mask offsets", &m.offsets, 0, rows + 1)?;
                launch!(self, "row_topk", cfg, &x.s, &r, &nn, &kk, &m.offsets.s, &m.idx.s, &mut idx.s, &mut val.s)
            }
            None => {
                // No mask: null pointers (the kernel tests them).
                let null: u64 = 0;
                launch!(self, "row_topk", cfg, &x.s, &r, &nn, &kk, &null, &null, &mut idx.s, &mut val.s)
            }
        }
    }

    fn copy_cols(
        &self,
        dst: &mut CudaBuf<f32>,
        dst_cols: usize,
        dst_off: usize,
        src: &CudaBuf<f32>,
        src_cols: usize,
        src_off: usize,
        width: usize,
        rows: usize,
    ) -> R<()> {
        if rows * width == 0 {
            return Ok(());
        }
        range("copy_cols source", src, 0, rows * src_cols)?;
        range("copy_cols destination", dst, 0, rows * dst_cols)?;
        let (dc, doff, sc, soff, w, r) =
            (dst_cols as i32, dst_off as i32, src_cols as i32, src_off as i32, width as i32, rows as i64);
        launch!(self, "copy_cols", cfg_elems(rows * width), &mut dst.s, &dc, &doff, &src.s, &sc, &soff, &w, &r)
    }

    fn softmax_rows_lse(&self, s: &mut CudaBuf<f32>, b: usize, n: usize, lse: &mut CudaBuf<f32>) -> R<()> {
        if b == 0 {
            return Ok(());
        }
        let (bb, nn) = (b as i32, n as i32);
        let cfg = LaunchConfig { grid_dim: (b as u32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        launch!(self, "softmax_rows_lse", cfg, &mut s.s, &bb, &nn, &mut lse.s)
    }

    fn softmax_rows_backward(
        &self,
        s: &mut CudaBuf<f32>,
        dp: &mut CudaBuf<f32>,
        lse: &CudaBuf<f32>,
        b: usize,
        n: usize,
    ) -> R<()> {
        if b == 0 {
            return Ok(());
        }
        let (bb, nn) = (b as i32, n as i32);
        let cfg = LaunchConfig { grid_dim: (b as u32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        launch!(self, "softmax_rows_backward", cfg, &mut s.s, &mut dp.s, &lse.s, &bb, &nn)
    }

    fn synchronize(&self) -> R<()> {
        self.stream().synchronize().map_err(drv)
    }
}
