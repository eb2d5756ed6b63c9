//! Dense and sparse kernels of the fast CPU engine: f32, row-major, rayon-parallel, with
//! faer's GEMM on row-major views.

use faer::mat::{MatMut, MatRef};
use faer::{Accum, Par};
use nalgebra_sparse::CsrMatrix;
use rayon::prelude::*;

/// A row-major `[rows, cols]` f32 matrix: row r is entity r.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Dense {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Dense {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self { rows, cols, data: vec![0.0; rows * cols] }
    }

    /// Makes this `[rows, cols]`, keeping the allocation (contents unspecified).
    pub fn reshape(&mut self, rows: usize, cols: usize) {
        self.data.resize(rows * cols, 0.0);
        (self.rows, self.cols) = (rows, cols);
    }

    pub fn from_fn(rows: usize, cols: usize, f: impl Fn(usize, usize) -> f32) -> Self {
        let mut d = Self::zeros(rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                d.data[r * cols + c] = f(r, c);
            }
        }
        d
    }

    /// From an f64 faer matrix (the reference's parameters).
    pub fn from_mat(m: &faer::Mat<f64>) -> Self {
        Self::from_fn(m.nrows(), m.ncols(), |r, c| m[(r, c)] as f32)
    }

    /// To an f64 faer matrix.
    pub fn to_mat(&self) -> faer::Mat<f64> {
        faer::Mat::from_fn(self.rows, self.cols, |r, c| self.data[r * self.cols + c] as f64)
    }

    #[inline]
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    #[inline]
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        &mut self.data[r * self.cols..(r + 1) * self.cols]
    }

    pub fn view(&self) -> MatRef<'_, f32> {
        MatRef::from_row_major_slice(&self.data, self.rows, self.cols)
    }

    pub fn view_mut(&mut self) -> MatMut<'_, f32> {
        MatMut::from_row_major_slice_mut(&mut self.data, self.rows, self.cols)
    }

    /// Rows `[start, end)` as a new matrix.
    pub fn rows_range(&self, start: usize, end: usize) -> Dense {
        Dense { rows: end - start, cols: self.cols, data: self.data[start * self.cols..end * self.cols].to_vec() }
    }

    /// Rows stacked: `[a; b]`.
    pub fn vcat(a: &Dense, b: &Dense) -> Dense {
        assert_eq!(a.cols, b.cols);
        let mut data = a.data.clone();
        data.extend_from_slice(&b.data);
        Dense { rows: a.rows + b.rows, cols: a.cols, data }
    }

    /// Columns side by side: `[a, b]`.
    pub fn hcat(a: &Dense, b: &Dense) -> Dense {
        assert_eq!(a.rows, b.rows);
        let cols = a.cols + b.cols;
        let mut d = Dense::zeros(a.rows, cols);
        d.data.par_chunks_mut(cols.max(1)).enumerate().for_each(|(r, out)| {
            out[..a.cols].copy_from_slice(a.row(r));
            out[a.cols..].copy_from_slice(b.row(r));
        });
        d
    }

    /// Inverse of [`Dense::hcat`].
    pub fn hsplit(&self, ca: usize) -> (Dense, Dense) {
        let a = Dense::from_fn(self.rows, ca, |r, c| self.data[r * self.cols + c]);
        let b = Dense::from_fn(self.rows, self.cols - ca, |r, c| self.data[r * self.cols + ca + c]);
        (a, b)
    }

    /// `self += other`.
    pub fn add_assign(&mut self, other: &Dense) {
        assert_eq!((self.rows, self.cols), (other.rows, other.cols), "add_assign shape");
        self.data.par_iter_mut().zip(&other.data).for_each(|(a, b)| *a += b);
    }

    /// `self += s · other`.
    pub fn axpy(&mut self, s: f32, other: &Dense) {
        assert_eq!((self.rows, self.cols), (other.rows, other.cols), "axpy shape");
        self.data.par_iter_mut().zip(&other.data).for_each(|(a, b)| *a += s * b);
    }

    pub fn scale(&mut self, s: f32) {
        self.data.par_iter_mut().for_each(|a| *a *= s);
    }

    /// Adds the `[1, c]` bias to every row.
    pub fn add_row_bias(&mut self, b: &Dense) {
        let cols = self.cols;
        self.data.par_chunks_mut(cols.max(1)).for_each(|row| row.iter_mut().zip(&b.data).for_each(|(x, y)| *x += y));
    }

    /// Column sums `[1, c]` (f64 accumulation).
    pub fn col_sums(&self) -> Dense {
        let mut acc = vec![0.0f64; self.cols];
        for r in 0..self.rows {
            for (a, &v) in acc.iter_mut().zip(self.row(r)) {
                *a += v as f64;
            }
        }
        Dense { rows: 1, cols: self.cols, data: acc.into_iter().map(|v| v as f32).collect() }
    }

    /// Squared Frobenius norm; fixed chunks summed in order, so the result does not depend on
    /// how rayon schedules the work.
    pub fn sq_norm(&self) -> f64 {
        let parts: Vec<f64> =
            self.data.par_chunks(1 << 14).map(|c| c.iter().map(|&v| (v as f64) * (v as f64)).sum()).collect();
        parts.iter().sum()
    }
}

/// Dot product with f64 accumulation: these are short (d = 64) and off the hot GEMM path, and
/// the extra precision keeps scores, norms and S̃'s gradients at f32 rounding of the result.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut s = 0.0f64;
    for (x, y) in a.iter().zip(b) {
        s += *x as f64 * *y as f64;
    }
    s as f32
}

/// In place, the adjoint of row normalisation `y = x / max(‖x‖, 1e-12)` (`norms` already
/// floored): `dx = (dy − (dy·y) y)/‖x‖`, and `dy/1e-12` for a row at the floor, where y does not
/// depend on the direction of x.
pub fn unit_rows_backward(y: &Dense, norms: &[f32], dy: &mut Dense) {
    let c = y.cols.max(1);
    dy.data.par_chunks_mut(c).enumerate().for_each(|(i, d)| {
        let yi = y.row(i);
        let radial = if norms[i] > 1e-12 { dot(d, yi) } else { 0.0 };
        d.iter_mut().zip(yi).for_each(|(a, b)| *a = (*a - radial * b) / norms[i]);
    });
}

/// Parallelism for a product of `flops` multiply-adds: tiny products stay on one thread,
/// since a rayon barrier costs more than they do.
fn par_for(flops: usize) -> Par {
    if flops < 1 << 18 {
        Par::Seq
    } else {
        Par::rayon(0)
    }
}

/// `dst (=|+=) alpha · op(a) · op(b)` with `op` an optional transpose.
pub fn gemm(dst: &mut Dense, accumulate: bool, a: &Dense, ta: bool, b: &Dense, tb: bool, alpha: f32) {
    let av = if ta { a.view().transpose() } else { a.view() };
    let bv = if tb { b.view().transpose() } else { b.view() };
    assert_eq!(av.ncols(), bv.nrows(), "gemm inner dimension");
    assert_eq!((dst.rows, dst.cols), (av.nrows(), bv.ncols()), "gemm output shape");
    let flops = av.nrows() * av.ncols() * bv.ncols();
    let accum = if accumulate { Accum::Add } else { Accum::Replace };
    faer::linalg::matmul::matmul(dst.view_mut(), accum, av, bv, alpha, par_for(flops));
}

/// Rows per chunk of [`mm_tn_tall`].
const TALL_CHUNK: usize = 2048;

/// `aᵀ · b` for tall `a` `[n, p]` and `b` `[n, q]` with small p, q (weight gradients such as
/// `(Â H)ᵀ dZ`): faer parallelises a `[p, q]` output poorly when n is large, so the rows are
/// split into fixed chunks, each multiplied on one thread, and the partial products summed in
/// chunk order, which also keeps the result independent of the schedule.
pub fn mm_tn_tall(a: &Dense, b: &Dense) -> Dense {
    assert_eq!(a.rows, b.rows, "mm_tn_tall: row mismatch");
    if a.rows <= TALL_CHUNK {
        return mm(a, true, b, false);
    }
    let (p, q) = (a.cols, b.cols);
    let parts: Vec<Dense> = (0..a.rows.div_ceil(TALL_CHUNK))
        .into_par_iter()
        .map(|c| {
            let (s, e) = (c * TALL_CHUNK, ((c + 1) * TALL_CHUNK).min(a.rows));
            let av = MatRef::from_row_major_slice(&a.data[s * p..e * p], e - s, p);
            let bv = MatRef::from_row_major_slice(&b.data[s * q..e * q], e - s, q);
            let mut d = Dense::zeros(p, q);
            faer::linalg::matmul::matmul(d.view_mut(), Accum::Replace, av.transpose(), bv, 1.0f32, Par::Seq);
            d
        })
        .collect();
    let mut out = Dense::zeros(p, q);
    for part in &parts {
        for (o, v) in out.data.iter_mut().zip(&part.data) {
            *o += v;
        }
    }
    out
}

/// `op(a) · op(b)` as a new matrix.
pub fn mm(a: &Dense, ta: bool, b: &Dense, tb: bool) -> Dense {
    let rows = if ta { a.cols } else { a.rows };
    let cols = if tb { b.rows } else { b.cols };
    let mut d = Dense::zeros(rows, cols);
    gemm(&mut d, false, a, ta, b, tb, 1.0);
    d
}

/// A CSR matrix with f32 values and u32 column indices.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Csr {
    pub rows: usize,
    pub cols: usize,
    pub offsets: Vec<usize>,
    pub idx: Vec<u32>,
    pub vals: Vec<f32>,
}

impl Csr {
    pub fn from_nalgebra(m: &CsrMatrix<f64>) -> Self {
        Self {
            rows: m.nrows(),
            cols: m.ncols(),
            offsets: m.row_offsets().to_vec(),
            idx: m.col_indices().iter().map(|&c| c as u32).collect(),
            vals: m.values().iter().map(|&v| v as f32).collect(),
        }
    }

    pub fn to_nalgebra(&self) -> CsrMatrix<f64> {
        CsrMatrix::try_from_csr_data(
            self.rows,
            self.cols,
            self.offsets.clone(),
            self.idx.iter().map(|&c| c as usize).collect(),
            self.vals.iter().map(|&v| v as f64).collect(),
        )
        .expect("valid CSR")
    }

    pub fn nnz(&self) -> usize {
        self.idx.len()
    }

    #[inline]
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (s, e) = (self.offsets[r], self.offsets[r + 1]);
        (&self.idx[s..e], &self.vals[s..e])
    }

    /// The transpose, with a permutation `perm[e_t] = e` from its entries to ours.
    pub fn transpose_with_perm(&self) -> (Csr, Vec<usize>) {
        let mut counts = vec![0usize; self.cols + 1];
        for &c in &self.idx {
            counts[c as usize + 1] += 1;
        }
        for k in 0..self.cols {
            counts[k + 1] += counts[k];
        }
        let offsets = counts.clone();
        let mut next = counts;
        let mut idx = vec![0u32; self.nnz()];
        let mut vals = vec![0f32; self.nnz()];
        let mut perm = vec![0usize; self.nnz()];
        for r in 0..self.rows {
            for e in self.offsets[r]..self.offsets[r + 1] {
                let c = self.idx[e] as usize;
                let pos = next[c];
                next[c] += 1;
                idx[pos] = r as u32;
                vals[pos] = self.vals[e];
                perm[pos] = e;
            }
        }
        (Csr { rows: self.cols, cols: self.rows, offsets, idx, vals }, perm)
    }

    pub fn transpose(&self) -> Csr {
        self.transpose_with_perm().0
    }

    /// `self · x`, `[r, k] x [k, c] -> [r, c]`, parallel over output rows (no atomics, so
    /// deterministic for any thread count).
    pub fn spmm(&self, x: &Dense) -> Dense {
        self.spmm_fused(x, None, None)
    }

    /// `self · x + s · add` (`add` `[r, c]`) in one pass over the output: the backward of a
    /// mean readout adds its share of `dE` to every layer's product. Each entry is the same
    /// sum in the same order as `spmm` followed by `+= s · add`, so the result is identical.
    pub fn spmm_plus(&self, x: &Dense, s: f32, add: &Dense) -> Dense {
        self.spmm_fused(x, Some((s, add)), None)
    }

    /// `self · x`, also added into `acc` (`[r, c]`) row by row while the row is in cache: a
    /// mean readout's running sum of the layers.
    pub fn spmm_accumulate(&self, x: &Dense, acc: &mut Dense) -> Dense {
        self.spmm_fused(x, None, Some(acc))
    }

    fn spmm_fused(&self, x: &Dense, add: Option<(f32, &Dense)>, acc: Option<&mut Dense>) -> Dense {
        assert_eq!(self.cols, x.rows, "spmm inner dimension");
        let c = x.cols;
        if c == 0 {
            return Dense::zeros(self.rows, 0);
        }
        if let Some((_, a)) = add {
            assert_eq!((a.rows, a.cols), (self.rows, c), "spmm_plus shape");
        }
        if let Some(a) = &acc {
            assert_eq!((a.rows, a.cols), (self.rows, c), "spmm_accumulate shape");
        }
        // Blocks of rows, not single rows: interaction graphs after DropEdge have one or two
        // entries per row, where a task per row cost more than its arithmetic.
        const BLOCK: usize = 64;
        let n = self.rows * c;
        // Not zeroed first (a `[M+N, d]` memset per product was 5% of a FREEDOM epoch):
        // `spmm_rows` writes every entry.
        let mut data: Vec<f32> = Vec::with_capacity(n);
        let finish = |b: usize, o: &mut [std::mem::MaybeUninit<f32>], acc: Option<&mut [f32]>| {
            super::simd::spmm_rows(&self.offsets, &self.idx, &self.vals, &x.data, c, b * BLOCK, o);
            // SAFETY: `spmm_rows` wrote every entry of `o`.
            let o = unsafe { super::simd::assume_init(o) };
            if let Some((s, add)) = add {
                let a = &add.data[b * BLOCK * c..][..o.len()];
                o.iter_mut().zip(a).for_each(|(o, a)| *o += s * a);
            }
            if let Some(acc) = acc {
                acc.iter_mut().zip(o.iter()).for_each(|(a, o)| *a += o);
            }
        };
        let chunks = data.spare_capacity_mut()[..n].par_chunks_mut(c * BLOCK).enumerate();
        match acc {
            Some(acc) => chunks.zip(acc.data.par_chunks_mut(c * BLOCK)).for_each(|((b, o), a)| finish(b, o, Some(a))),
            None => chunks.for_each(|(b, o)| finish(b, o, None)),
        }
        // SAFETY: the chunks cover all `n` entries and each was written above.
        unsafe { data.set_len(n) };
        Dense { rows: self.rows, cols: c, data }
    }
}

/// `tanh` for f32 by Eigen's rational approximation (`ptanh_float`): a few ulp of error,
/// vectorisable, and several times faster than `f32::tanh`, which matters because RCA
/// evaluates it on every entry of every `[block, M+N]` correlation block.
#[inline]
#[allow(clippy::excessive_precision)] // Eigen's published coefficients, kept digit for digit.
pub fn fast_tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    let small = x.abs() < 0.0004;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let mut p = -2.760_768_5e-16f32;
    p = p * x2 + 2.000_187_9e-13;
    p = p * x2 - 8.604_671_5e-11;
    p = p * x2 + 5.122_297e-8;
    p = p * x2 + 1.485_722_4e-5;
    p = p * x2 + 6.372_619_3e-4;
    p = p * x2 + 4.893_524_6e-3;
    p *= x;
    let mut q = 1.198_258_4e-6f32;
    q = q * x2 + 1.185_347_1e-4;
    q = q * x2 + 2.268_434_6e-3;
    q = q * x2 + 4.893_525_2e-3;
    // A select, not an early return, so the loop over a block vectorises.
    if small {
        x
    } else {
        p / q
    }
}

/// `e^x` in f32 without libm: `2^k · e^g` with `k = round(x log2 e)` and `g = x − k ln 2` in
/// [−0.35, 0.35], `e^g` by its degree-7 Taylor polynomial (truncation below 1e-8). Branch-free,
/// so the attention's softmax loops vectorise. Inputs are clamped to [−87, 88] (the f32 range);
/// relative error within 3e-7 of `f32::exp` (tested).
#[inline]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by adding 1.5·2^23: the integer lands in the low mantissa bits, so k is
    // read off the bits without a float-to-int cast (which would not vectorise).
    let kf = x * LOG2E + MAGIC;
    let k_int = kf.to_bits() as i32 - MAGIC.to_bits() as i32;
    let k = kf - MAGIC;
    let g = (x - k * LN2_HI) - k * LN2_LO;
    let p = 1.0
        + g * (1.0
            + g * (0.5
                + g * (1.0 / 6.0 + g * (1.0 / 24.0 + g * (1.0 / 120.0 + g * (1.0 / 720.0 + g * (1.0 / 5040.0)))))));
    p * f32::from_bits(((k_int + 127) as u32) << 23)
}
