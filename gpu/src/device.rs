//! The operations the GPU engine is written in, behind one trait with two implementations:
//! [`crate::cuda::CudaDevice`] (cuBLAS and the NVRTC kernels of `kernels/*.cu`) and
//! [`HostDevice`] (plain Rust, one op = one loop doing what the kernel of the same name does).
//!
//! The engine (crate `crane`, `engine::gpu`) is generic over [`Device`], so its orchestration
//! (shapes, transposes, the order of the passes, the host-side bookkeeping) is tested against
//! the f64 reference on machines without a GPU by running it on [`HostDevice`]. What only a GPU
//! can check is each op's CUDA implementation: `crane verify --gpu` runs the same engine on
//! [`crate::cuda::CudaDevice`].
//!
//! Every matrix is row-major; a buffer holds one matrix (or a vector) and its shape is kept by
//! the caller. Ops that take an offset work on `len` elements starting there.

use crate::GpuError;

/// One Adam step's constants in PyTorch's form (`torch.optim.Adam`, single-tensor path):
/// `m ← m + (1−β1)(g − m)` (its `lerp`), `v ← β2 v + (1−β2) g²`,
/// `p ← p − step_size · m / (√v / c2_sqrt + ε)` with `step_size = lr / (1 − β1ᵗ)` and
/// `c2_sqrt = √(1 − β2ᵗ)`. Both engines use it (the CPU engine as `simd::AdamStep`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConsts {
    pub beta2: f32,
    pub one_minus_beta1: f32,
    pub one_minus_beta2: f32,
    pub eps: f32,
    pub step_size: f32,
    pub c2_sqrt: f32,
}

impl AdamConsts {
    /// The constants of step `t` (1-based) at learning rate `lr`, β = (0.9, 0.999), ε = 1e-8,
    /// computed in f64 as PyTorch passes them (`1 − 0.999` in f32 is 1.3e-5 off).
    pub fn new(lr: f64, t: u64) -> Self {
        let (b1, b2) = (0.9f64, 0.999f64);
        let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        Self {
            beta2: b2 as f32,
            one_minus_beta1: (1.0 - b1) as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            eps: 1e-8,
            step_size: (lr / c1) as f32,
            c2_sqrt: c2.sqrt() as f32,
        }
    }
}

/// Element types that live in device buffers.
pub trait Elem:
    cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Copy + Default + Send + Sync + std::fmt::Debug + 'static
{
}
impl Elem for f32 {}
impl Elem for u32 {}
impl Elem for i32 {}
impl Elem for i64 {}

pub type R<T> = Result<T, GpuError>;

/// A CSR matrix on a device: `offsets [rows + 1]`, `idx [nnz]`, `vals [nnz]`.
pub struct DevCsr<D: Device + ?Sized> {
    pub rows: usize,
    pub offsets: D::Buf<i64>,
    pub idx: D::Buf<u32>,
    pub vals: D::Buf<f32>,
}

/// Destination rows of a scatter, sorted on the host so that the device sums each destination
/// row's contributions in a fixed order (deterministic, no atomics): `order` lists the source
/// rows grouped by destination, `seg[s]..seg[s+1]` is group s.
pub struct DevSegments<D: Device + ?Sized> {
    pub n_src: usize,
    pub n_seg: usize,
    pub rows: D::Buf<u32>,
    pub seg: D::Buf<i32>,
    pub order: D::Buf<i32>,
}

/// Host side of [`DevSegments`]: `(seg, order)` for destination rows `rows`.
pub fn segments(rows: &[u32]) -> (Vec<i32>, Vec<i32>) {
    let mut order: Vec<i32> = (0..rows.len() as i32).collect();
    order.sort_by_key(|&k| (rows[k as usize], k));
    let mut seg = Vec::new();
    for (p, &k) in order.iter().enumerate() {
        if p == 0 || rows[k as usize] != rows[order[p - 1] as usize] {
            seg.push(p as i32);
        }
    }
    seg.push(order.len() as i32);
    (seg, order)
}

/// The ops of the GPU engine. Shapes in the doc comments; `[r, c]` buffers are row-major.
pub trait Device {
    type Buf<T: Elem>;

    /// Device name, for reports and manifests.
    fn name(&self) -> String;
    fn upload<T: Elem>(&self, x: &[T]) -> R<Self::Buf<T>>;
    fn zeros<T: Elem>(&self, n: usize) -> R<Self::Buf<T>>;
    fn download<T: Elem>(&self, x: &Self::Buf<T>) -> R<Vec<T>>;
    fn len<T: Elem>(&self, x: &Self::Buf<T>) -> usize;
    fn fill_zero(&self, x: &mut Self::Buf<f32>) -> R<()>;
    /// `dst[dst_off..][..len] = src[src_off..][..len]`.
    fn copy_at(
        &self,
        dst: &mut Self::Buf<f32>,
        dst_off: usize,
        src: &Self::Buf<f32>,
        src_off: usize,
        len: usize,
    ) -> R<()>;
    /// `y[y_off..][..len] += a · x[x_off..][..len]`.
    #[allow(clippy::too_many_arguments)]
    fn axpy_at(
        &self,
        y: &mut Self::Buf<f32>,
        y_off: usize,
        x: &Self::Buf<f32>,
        x_off: usize,
        len: usize,
        a: f32,
    ) -> R<()>;
    /// `x *= a`.
    fn scale(&self, x: &mut Self::Buf<f32>, a: f32) -> R<()>;
    /// Row-major `C [m, n] = α op(A) op(B) + β C` with `op(A) [m, k]`, `op(B) [k, n]`; `ta`:
    /// A is stored `[k, m]`, `tb`: B is stored `[n, k]`.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        c: &mut Self::Buf<f32>,
        m: usize,
        n: usize,
        k: usize,
        a: &Self::Buf<f32>,
        ta: bool,
        b: &Self::Buf<f32>,
        tb: bool,
        alpha: f32,
        beta: f32,
    ) -> R<()>;
    /// `out [rows, c] = A x` for `A` `[rows, ·]` in CSR and `x [·, c]`.
    fn spmm(&self, out: &mut Self::Buf<f32>, a: &DevCsr<Self>, x: &Self::Buf<f32>, c: usize) -> R<()>;
    /// `y = x` where `x > 0`, `s · x` elsewhere.
    fn leaky_relu(&self, y: &mut Self::Buf<f32>, x: &Self::Buf<f32>, s: f32) -> R<()>;
    /// `dx = dy` where `x > 0`, `s · dy` elsewhere.
    fn leaky_relu_backward(&self, dx: &mut Self::Buf<f32>, x: &Self::Buf<f32>, dy: &Self::Buf<f32>, s: f32) -> R<()>;
    /// `out [n, c] = x[rows[k], :]`.
    fn gather_rows(&self, out: &mut Self::Buf<f32>, x: &Self::Buf<f32>, rows: &Self::Buf<u32>, c: usize) -> R<()>;
    /// `dst[rows[k], :] += src[k, :]` for every k (`src [n_src, c]`).
    fn scatter_add_rows(
        &self,
        dst: &mut Self::Buf<f32>,
        src: &Self::Buf<f32>,
        s: &DevSegments<Self>,
        c: usize,
    ) -> R<()>;
    /// `g[c] += Σ_k x[k, c]` for `x [r, c]`, accumulated in f64.
    fn col_sums_add(&self, g: &mut Self::Buf<f32>, x: &Self::Buf<f32>, c: usize) -> R<()>;
    /// `x[k, :] += b` for `x [r, c]`, `b [c]`.
    fn add_row_bias(&self, x: &mut Self::Buf<f32>, b: &Self::Buf<f32>, c: usize) -> R<()>;
    /// `x[k, :] *= f[k]` for `x [len(f), c]`.
    fn scale_rows(&self, x: &mut Self::Buf<f32>, f: &Self::Buf<f32>, c: usize) -> R<()>;
    /// `out[k] = Σ_c x[k, c]²` for `x [len(out), c]` (accumulated in f64).
    fn row_sq_norms(&self, out: &mut Self::Buf<f32>, x: &Self::Buf<f32>, c: usize) -> R<()>;
    /// Eq. (18) per triplet: `loss[k] = softplus(ŷ_uj − ŷ_ui)`, `coef[k] = σ(ŷ_uj − ŷ_ui) / B`
    /// for `zu [M, d]`, `zi [N, d]` and triplets `(u[k], i[k], j[k])`, dot products in f64.
    #[allow(clippy::too_many_arguments)]
    fn bpr_terms(
        &self,
        loss: &mut Self::Buf<f32>,
        coef: &mut Self::Buf<f32>,
        zu: &Self::Buf<f32>,
        zi: &Self::Buf<f32>,
        u: &Self::Buf<u32>,
        i: &Self::Buf<u32>,
        j: &Self::Buf<u32>,
        d: usize,
    ) -> R<()>;
    /// One Adam step (torch.optim.Adam without weight decay) in PyTorch's form; see
    /// [`AdamConsts`].
    fn adam(
        &self,
        p: &mut Self::Buf<f32>,
        g: &Self::Buf<f32>,
        m: &mut Self::Buf<f32>,
        v: &mut Self::Buf<f32>,
        s: AdamConsts,
    ) -> R<()>;
    /// `x = tanh(x)` in place.
    fn tanh(&self, x: &mut Self::Buf<f32>) -> R<()>;
    /// `dy *= 1 − y²` in place (tanh's backward from its output `y`).
    fn tanh_backward(&self, dy: &mut Self::Buf<f32>, y: &Self::Buf<f32>) -> R<()>;
    /// `out[k] = a[k, :] · b[k, :]` for `a`, `b` `[len(out), c]`.
    fn row_dots(&self, out: &mut Self::Buf<f32>, a: &Self::Buf<f32>, b: &Self::Buf<f32>, c: usize) -> R<()>;
    /// `x[i, i] += a` for `x [n, n]`.
    fn add_diag(&self, x: &mut Self::Buf<f32>, n: usize, a: f32) -> R<()>;
    /// Row softmax of `x [n, n]` in place and `row_loss[i] = −log softmax(x)_ii` (Eq. 19).
    fn softmax_rows_loss(&self, x: &mut Self::Buf<f32>, n: usize, row_loss: &mut Self::Buf<f32>) -> R<()>;
    /// `out[e] = a[r, :] · b[idx[e], :]` for every entry e (row r) of the CSR pattern of `s`.
    fn csr_sddmm(
        &self,
        out: &mut Self::Buf<f32>,
        s: &DevCsr<Self>,
        a: &Self::Buf<f32>,
        b: &Self::Buf<f32>,
        c: usize,
    ) -> R<()>;
    /// The k largest entries of each row of `x [rows, n]`, largest first, ties to the smaller
    /// index, NaN ranked as −∞ (the evaluator's order, `crane::eval::top_k`): `idx [rows, k]`,
    /// `val [rows, k]` (k ≤ 64). Entries listed in `mask` (row r's sorted columns are
    /// `mask.idx[mask.offsets[r]..mask.offsets[r + 1]]`; `mask.vals` is unused) are skipped:
    /// the training items at evaluation. Rows with fewer than k candidates are padded with
    /// index `u32::MAX` and value −∞.
    #[allow(clippy::too_many_arguments)]
    fn row_topk(
        &self,
        idx: &mut Self::Buf<u32>,
        val: &mut Self::Buf<f32>,
        x: &Self::Buf<f32>,
        rows: usize,
        n: usize,
        k: usize,
        mask: Option<&DevCsr<Self>>,
    ) -> R<()>;
    /// `dst[r, dst_off..][..width] = src[r, src_off..][..width]` for `rows` rows of row
    /// lengths `dst_cols`, `src_cols` (one attention head's columns).
    #[allow(clippy::too_many_arguments)]
    fn copy_cols(
        &self,
        dst: &mut Self::Buf<f32>,
        dst_cols: usize,
        dst_off: usize,
        src: &Self::Buf<f32>,
        src_cols: usize,
        src_off: usize,
        width: usize,
        rows: usize,
    ) -> R<()>;
    /// Row softmax of `s [b, n]` in place, with each row's log-sum-exp in `lse [b]`.
    fn softmax_rows_lse(&self, s: &mut Self::Buf<f32>, b: usize, n: usize, lse: &mut Self::Buf<f32>) -> R<()>;
    /// From scores `s [b, n]` and `lse`: `s = P = exp(s − lse)` and `dp = P ⊙ (dp − Σ_j P dp)`.
    fn softmax_rows_backward(
        &self,
        s: &mut Self::Buf<f32>,
        dp: &mut Self::Buf<f32>,
        lse: &Self::Buf<f32>,
        b: usize,
        n: usize,
    ) -> R<()>;
    /// Waits for queued work (timing); a no-op on the host.
    fn synchronize(&self) -> R<()>;
}

/// Uploads a CSR matrix given as host arrays.
pub fn upload_csr<D: Device>(dev: &D, offsets: &[i64], idx: &[u32], vals: &[f32]) -> R<DevCsr<D>> {
    Ok(DevCsr {
        rows: offsets.len().saturating_sub(1),
        offsets: dev.upload(offsets)?,
        idx: dev.upload(idx)?,
        vals: dev.upload(vals)?,
    })
}

/// Uploads the segmentation of destination rows `rows` for [`Device::scatter_add_rows`].
pub fn upload_segments<D: Device>(dev: &D, rows: &[u32]) -> R<DevSegments<D>> {
    let (seg, order) = segments(rows);
    Ok(DevSegments {
        n_src: rows.len(),
        n_seg: seg.len() - 1,
        rows: dev.upload(rows)?,
        seg: dev.upload(&seg)?,
        order: dev.upload(&order)?,
    })
}

/// The host implementation: plain loops in the kernels' arithmetic order. It exists to test
/// the GPU engine's orchestration without a GPU; it is not a fast path.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostDevice;

fn shape(what: &str, got: usize, want: usize) -> R<()> {
    if got == want {
        Ok(())
    } else {
        Err(GpuError::Shape(format!("{what}: {got} elements, expected {want}")))
    }
}

impl Device for HostDevice {
    type Buf<T: Elem> = Vec<T>;

    fn name(&self) -> String {
        "host (the GPU engine's ops run on the CPU, for testing)".into()
    }

    fn upload<T: Elem>(&self, x: &[T]) -> R<Vec<T>> {
        Ok(x.to_vec())
    }

    fn zeros<T: Elem>(&self, n: usize) -> R<Vec<T>> {
        Ok(vec![T::default(); n])
    }

    fn download<T: Elem>(&self, x: &Vec<T>) -> R<Vec<T>> {
        Ok(x.clone())
    }

    fn len<T: Elem>(&self, x: &Vec<T>) -> usize {
        x.len()
    }

    fn fill_zero(&self, x: &mut Vec<f32>) -> R<()> {
        x.iter_mut().for_each(|v| *v = 0.0);
        Ok(())
    }

    fn copy_at(&self, dst: &mut Vec<f32>, dst_off: usize, src: &Vec<f32>, src_off: usize, len: usize) -> R<()> {
        shape("copy_at source", src.len().min(src_off + len), src_off + len)?;
        shape("copy_at destination", dst.len().min(dst_off + len), dst_off + len)?;
        dst[dst_off..dst_off + len].copy_from_slice(&src[src_off..src_off + len]);
        Ok(())
    }

    fn axpy_at(&self, y: &mut Vec<f32>, y_off: usize, x: &Vec<f32>, x_off: usize, len: usize, a: f32) -> R<()> {
        shape("axpy_at x", x.len().min(x_off + len), x_off + len)?;
        shape("axpy_at y", y.len().min(y_off + len), y_off + len)?;
        for (yv, xv) in y[y_off..y_off + len].iter_mut().zip(&x[x_off..x_off + len]) {
            *yv += a * xv;
        }
        Ok(())
    }

    fn scale(&self, x: &mut Vec<f32>, a: f32) -> R<()> {
        x.iter_mut().for_each(|v| *v *= a);
        Ok(())
    }

    fn gemm(
        &self,
        c: &mut Vec<f32>,
        m: usize,
        n: usize,
        k: usize,
        a: &Vec<f32>,
        ta: bool,
        b: &Vec<f32>,
        tb: bool,
        alpha: f32,
        beta: f32,
    ) -> R<()> {
        shape("gemm A", a.len(), m * k)?;
        shape("gemm B", b.len(), k * n)?;
        shape("gemm C", c.len(), m * n)?;
        let at = |r: usize, q: usize| if ta { a[q * m + r] } else { a[r * k + q] };
        let bt = |q: usize, s: usize| if tb { b[s * k + q] } else { b[q * n + s] };
        for r in 0..m {
            for s in 0..n {
                // f64 sums: the host ops check the engine's orchestration; how cuBLAS rounds
                // is checked on a device (`crane verify --gpu`, `cuda_ops_match_the_host_ops`).
                let mut acc = 0.0f64;
                for q in 0..k {
                    acc += at(r, q) as f64 * bt(q, s) as f64;
                }
                let old = if beta == 0.0 { 0.0 } else { beta * c[r * n + s] };
                c[r * n + s] = alpha * acc as f32 + old;
            }
        }
        Ok(())
    }

    fn spmm(&self, out: &mut Vec<f32>, a: &DevCsr<Self>, x: &Vec<f32>, c: usize) -> R<()> {
        shape("spmm output", out.len(), a.rows * c)?;
        for r in 0..a.rows {
            for col in 0..c {
                let mut acc = 0.0f32;
                for e in a.offsets[r] as usize..a.offsets[r + 1] as usize {
                    acc += a.vals[e] * x[a.idx[e] as usize * c + col];
                }
                out[r * c + col] = acc;
            }
        }
        Ok(())
    }

    fn leaky_relu(&self, y: &mut Vec<f32>, x: &Vec<f32>, s: f32) -> R<()> {
        shape("leaky_relu", y.len(), x.len())?;
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = if x > 0.0 { x } else { s * x });
        Ok(())
    }

    fn leaky_relu_backward(&self, dx: &mut Vec<f32>, x: &Vec<f32>, dy: &Vec<f32>, s: f32) -> R<()> {
        shape("leaky_relu_backward", dx.len(), x.len())?;
        shape("leaky_relu_backward dy", dy.len(), x.len())?;
        for ((d, &x), &g) in dx.iter_mut().zip(x).zip(dy) {
            *d = if x > 0.0 { g } else { s * g };
        }
        Ok(())
    }

    fn gather_rows(&self, out: &mut Vec<f32>, x: &Vec<f32>, rows: &Vec<u32>, c: usize) -> R<()> {
        shape("gather_rows output", out.len(), rows.len() * c)?;
        for (k, &r) in rows.iter().enumerate() {
            out[k * c..(k + 1) * c].copy_from_slice(&x[r as usize * c..(r as usize + 1) * c]);
        }
        Ok(())
    }

    fn scatter_add_rows(&self, dst: &mut Vec<f32>, src: &Vec<f32>, s: &DevSegments<Self>, c: usize) -> R<()> {
        shape("scatter_add_rows source", src.len(), s.n_src * c)?;
        for g in 0..s.n_seg {
            let row = s.rows[s.order[s.seg[g] as usize] as usize] as usize;
            for col in 0..c {
                let mut acc = 0.0f32;
                for e in s.seg[g]..s.seg[g + 1] {
                    acc += src[s.order[e as usize] as usize * c + col];
                }
                dst[row * c + col] += acc;
            }
        }
        Ok(())
    }

    fn col_sums_add(&self, g: &mut Vec<f32>, x: &Vec<f32>, c: usize) -> R<()> {
        shape("col_sums_add", g.len(), c)?;
        if c > 0 {
            let mut acc = vec![0f64; c];
            for row in x.chunks(c) {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
            }
            g.iter_mut().zip(acc).for_each(|(g, a)| *g += a as f32);
        }
        Ok(())
    }

    fn add_row_bias(&self, x: &mut Vec<f32>, b: &Vec<f32>, c: usize) -> R<()> {
        shape("add_row_bias bias", b.len(), c)?;
        if c > 0 {
            x.chunks_mut(c).for_each(|row| row.iter_mut().zip(b).for_each(|(v, b)| *v += b));
        }
        Ok(())
    }

    fn scale_rows(&self, x: &mut Vec<f32>, f: &Vec<f32>, c: usize) -> R<()> {
        shape("scale_rows", x.len(), f.len() * c)?;
        for (k, &fk) in f.iter().enumerate() {
            x[k * c..(k + 1) * c].iter_mut().for_each(|v| *v *= fk);
        }
        Ok(())
    }

    fn row_sq_norms(&self, out: &mut Vec<f32>, x: &Vec<f32>, c: usize) -> R<()> {
        shape("row_sq_norms", x.len(), out.len() * c)?;
        for (k, o) in out.iter_mut().enumerate() {
            *o = x[k * c..(k + 1) * c].iter().map(|&v| v as f64 * v as f64).sum::<f64>() as f32;
        }
        Ok(())
    }

    fn bpr_terms(
        &self,
        loss: &mut Vec<f32>,
        coef: &mut Vec<f32>,
        zu: &Vec<f32>,
        zi: &Vec<f32>,
        u: &Vec<u32>,
        i: &Vec<u32>,
        j: &Vec<u32>,
        d: usize,
    ) -> R<()> {
        let b = u.len();
        shape("bpr_terms loss", loss.len(), b)?;
        shape("bpr_terms coef", coef.len(), b)?;
        for k in 0..b {
            fn row(t: &[f32], r: u32, d: usize) -> &[f32] {
                &t[r as usize * d..(r as usize + 1) * d]
            }
            let (pu, pi, pj) = (row(zu, u[k], d), row(zi, i[k], d), row(zi, j[k], d));
            let pos: f64 = pu.iter().zip(pi).map(|(&a, &b)| a as f64 * b as f64).sum();
            let neg: f64 = pu.iter().zip(pj).map(|(&a, &b)| a as f64 * b as f64).sum();
            let x = neg - pos;
            loss[k] = (if x > 0.0 { x + (-x).exp().ln_1p() } else { x.exp().ln_1p() }) as f32;
            let sg = if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { x.exp() / (1.0 + x.exp()) };
            coef[k] = (sg / b as f64) as f32;
        }
        Ok(())
    }

    fn adam(&self, p: &mut Vec<f32>, g: &Vec<f32>, m: &mut Vec<f32>, v: &mut Vec<f32>, s: AdamConsts) -> R<()> {
        shape("adam", g.len(), p.len())?;
        for k in 0..p.len() {
            m[k] += s.one_minus_beta1 * (g[k] - m[k]);
            v[k] = s.beta2 * v[k] + s.one_minus_beta2 * g[k] * g[k];
            p[k] -= s.step_size * (m[k] / (v[k].sqrt() / s.c2_sqrt + s.eps));
        }
        Ok(())
    }

    fn tanh(&self, x: &mut Vec<f32>) -> R<()> {
        x.iter_mut().for_each(|v| *v = v.tanh());
        Ok(())
    }

    fn tanh_backward(&self, dy: &mut Vec<f32>, y: &Vec<f32>) -> R<()> {
        shape("tanh_backward", dy.len(), y.len())?;
        dy.iter_mut().zip(y).for_each(|(d, &y)| *d *= 1.0 - y * y);
        Ok(())
    }

    fn row_dots(&self, out: &mut Vec<f32>, a: &Vec<f32>, b: &Vec<f32>, c: usize) -> R<()> {
        shape("row_dots a", a.len(), out.len() * c)?;
        shape("row_dots b", b.len(), out.len() * c)?;
        for (k, o) in out.iter_mut().enumerate() {
            *o = a[k * c..(k + 1) * c].iter().zip(&b[k * c..(k + 1) * c]).map(|(x, y)| x * y).sum();
        }
        Ok(())
    }

    fn add_diag(&self, x: &mut Vec<f32>, n: usize, a: f32) -> R<()> {
        shape("add_diag", x.len(), n * n)?;
        (0..n).for_each(|i| x[i * n + i] += a);
        Ok(())
    }

    fn softmax_rows_loss(&self, x: &mut Vec<f32>, n: usize, row_loss: &mut Vec<f32>) -> R<()> {
        shape("softmax_rows_loss", x.len(), n * n)?;
        shape("softmax_rows_loss loss", row_loss.len(), n)?;
        for (r, row) in x.chunks_mut(n.max(1)).enumerate().take(n) {
            let mx = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let z: f32 = row.iter().map(|v| (v - mx).exp()).sum();
            row_loss[r] = mx + z.ln() - row[r];
            row.iter_mut().for_each(|v| *v = (*v - mx).exp() / z);
        }
        Ok(())
    }

    fn csr_sddmm(&self, out: &mut Vec<f32>, s: &DevCsr<Self>, a: &Vec<f32>, b: &Vec<f32>, c: usize) -> R<()> {
        shape("csr_sddmm", out.len(), s.idx.len())?;
        for r in 0..s.rows {
            let (start, end) = (s.offsets[r] as usize, s.offsets[r + 1] as usize);
            for (o, &j) in out[start..end].iter_mut().zip(&s.idx[start..end]) {
                let j = j as usize;
                *o = a[r * c..(r + 1) * c].iter().zip(&b[j * c..(j + 1) * c]).map(|(x, y)| x * y).sum();
            }
        }
        Ok(())
    }

    fn row_topk(
        &self,
        idx: &mut Vec<u32>,
        val: &mut Vec<f32>,
        x: &Vec<f32>,
        rows: usize,
        n: usize,
        k: usize,
        mask: Option<&DevCsr<Self>>,
    ) -> R<()> {
        shape("row_topk input", x.len(), rows * n)?;
        shape("row_topk idx", idx.len(), rows * k)?;
        shape("row_topk val", val.len(), rows * k)?;
        if let Some(m) = mask {
            shape("row_topk mask rows", m.rows, rows)?;
        }
        let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
        for r in 0..rows {
            let row = &x[r * n..(r + 1) * n];
            let skip: &[u32] = mask.map_or(&[], |m| &m.idx[m.offsets[r] as usize..m.offsets[r + 1] as usize]);
            let mut order: Vec<u32> = (0..n as u32).filter(|j| skip.binary_search(j).is_err()).collect();
            // Largest first, ties (also −0 = +0, as the kernel's `>`) to the smaller index.
            let cmp = |a: u32, b: u32| key(row[b as usize]).partial_cmp(&key(row[a as usize]));
            order.sort_by(|&a, &b| cmp(a, b).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b)));
            for q in 0..k {
                idx[r * k + q] = order.get(q).copied().unwrap_or(u32::MAX);
                val[r * k + q] = order.get(q).map_or(f32::NEG_INFINITY, |&j| key(row[j as usize]));
            }
        }
        Ok(())
    }

    fn copy_cols(
        &self,
        dst: &mut Vec<f32>,
        dst_cols: usize,
        dst_off: usize,
        src: &Vec<f32>,
        src_cols: usize,
        src_off: usize,
        width: usize,
        rows: usize,
    ) -> R<()> {
        shape("copy_cols source", src.len(), rows * src_cols)?;
        shape("copy_cols destination", dst.len(), rows * dst_cols)?;
        for r in 0..rows {
            dst[r * dst_cols + dst_off..r * dst_cols + dst_off + width]
                .copy_from_slice(&src[r * src_cols + src_off..r * src_cols + src_off + width]);
        }
        Ok(())
    }

    fn softmax_rows_lse(&self, s: &mut Vec<f32>, b: usize, n: usize, lse: &mut Vec<f32>) -> R<()> {
        shape("softmax_rows_lse", s.len(), b * n)?;
        // Sums in f64 (as the kernel's reduction): the row sums of P, recomputed from the lse in
        // the backward, must stay 1 to f32 precision or the biases' structural zeros drift.
        for (r, row) in s.chunks_mut(n.max(1)).enumerate().take(b) {
            let mx = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let z: f64 = row.iter().map(|v| (v - mx).exp() as f64).sum();
            lse[r] = (mx as f64 + z.ln()) as f32;
            row.iter_mut().for_each(|v| *v = ((*v - mx).exp() as f64 / z) as f32);
        }
        Ok(())
    }

    fn softmax_rows_backward(&self, s: &mut Vec<f32>, dp: &mut Vec<f32>, lse: &Vec<f32>, b: usize, n: usize) -> R<()> {
        shape("softmax_rows_backward", s.len(), b * n)?;
        shape("softmax_rows_backward dp", dp.len(), b * n)?;
        for r in 0..b {
            let (srow, drow) = (&mut s[r * n..(r + 1) * n], &mut dp[r * n..(r + 1) * n]);
            srow.iter_mut().for_each(|v| *v = (*v - lse[r]).exp());
            let d = srow.iter().zip(drow.iter()).map(|(p, g)| *p as f64 * *g as f64).sum::<f64>() as f32;
            drow.iter_mut().zip(srow.iter()).for_each(|(g, p)| *g = p * (*g - d));
        }
        Ok(())
    }

    fn synchronize(&self) -> R<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_group_equal_rows_in_source_order() {
        let (seg, order) = segments(&[3, 1, 3, 0, 1]);
        assert_eq!(order, vec![3, 1, 4, 0, 2]);
        assert_eq!(seg, vec![0, 1, 3, 5]);
        let (seg, order) = segments(&[]);
        assert!(order.is_empty());
        assert_eq!(seg, vec![0]);
    }

    #[test]
    fn host_gemm_matches_the_definition_for_every_transpose() {
        let dev = HostDevice;
        let (m, n, k) = (3, 4, 2);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32 - 2.0).collect();
        let b: Vec<f32> = (0..k * n).map(|v| (v as f32) * 0.5).collect();
        let want = |r: usize, s: usize| (0..k).map(|q| a[r * k + q] * b[q * n + s]).sum::<f32>();
        let tr = |x: &[f32], rows: usize, cols: usize| {
            (0..cols).flat_map(|c| (0..rows).map(move |r| (r, c))).map(|(r, c)| x[r * cols + c]).collect::<Vec<_>>()
        };
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let aa = if ta { tr(&a, m, k) } else { a.clone() };
            let bb = if tb { tr(&b, k, n) } else { b.clone() };
            let mut c = vec![1.0; m * n];
            dev.gemm(&mut c, m, n, k, &aa, ta, &bb, tb, 2.0, 0.5).unwrap();
            for r in 0..m {
                for s in 0..n {
                    assert_eq!(c[r * n + s], 2.0 * want(r, s) + 0.5, "ta {ta} tb {tb} ({r}, {s})");
                }
            }
        }
    }

    #[test]
    fn host_scatter_add_sums_duplicates() {
        let dev = HostDevice;
        let s = upload_segments(&dev, &[2, 0, 2]).unwrap();
        let mut dst = vec![0.0; 3 * 2];
        dev.scatter_add_rows(&mut dst, &vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &s, 2).unwrap();
        assert_eq!(dst, vec![3.0, 4.0, 0.0, 0.0, 6.0, 8.0]);
    }
}
