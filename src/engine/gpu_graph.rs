//! The learned item graph of the GPU engine, Eq. (5)-(14) as [`Device`] ops: projections,
//! user profiles (sum, average), RCA (Algorithm 1) with `C^m` in row blocks (never
//! `[M+N, M+N]`), the unit rows of the fused item representation and the kNN similarity in row
//! blocks with a per-row top-k on the device. The N·k retained entries (clamp, row
//! normalisation and their backward) are handled on the host by the CPU engine's functions:
//! O(N·k), next to the O(N²·d) products on the device.

// Device buffers are a generic associated type (`D::Buf<f32>`), which makes tuples of them
// "complex" to clippy; naming each tuple would not make the code clearer.
#![allow(clippy::type_complexity)]

use super::cpu::item_graph::{from_topk, knn_ds, KnnGraph, MIN_ROW_NORM};
use crate::error::{CraneError, Result};
use crane_gpu::device::{upload_csr, DevCsr, Device};

pub(super) fn dev_err(e: crane_gpu::GpuError) -> CraneError {
    CraneError::Invalid(e.to_string())
}

/// Row-major `[rows, cols]` device matrix.
pub(super) struct Mat<B> {
    pub b: B,
    pub rows: usize,
    pub cols: usize,
}

/// Small helpers over a device: every op returns crane's error type.
pub(super) struct Ops<'a, D: Device>(pub &'a D);

impl<D: Device> Ops<'_, D> {
    pub fn zeros(&self, rows: usize, cols: usize) -> Result<Mat<D::Buf<f32>>> {
        Ok(Mat { b: self.0.zeros(rows * cols).map_err(dev_err)?, rows, cols })
    }

    /// Rows `[s, e)` as a new matrix.
    pub fn rows(&self, x: &Mat<D::Buf<f32>>, s: usize, e: usize) -> Result<Mat<D::Buf<f32>>> {
        let mut o = self.zeros(e - s, x.cols)?;
        self.0.copy_at(&mut o.b, 0, &x.b, s * x.cols, (e - s) * x.cols).map_err(dev_err)?;
        Ok(o)
    }

    pub fn copy(&self, x: &Mat<D::Buf<f32>>) -> Result<Mat<D::Buf<f32>>> {
        self.rows(x, 0, x.rows)
    }

    /// `op(a) op(b)` with α, into a new matrix.
    pub fn mm(
        &self,
        a: &Mat<D::Buf<f32>>,
        ta: bool,
        b: &Mat<D::Buf<f32>>,
        tb: bool,
        alpha: f32,
    ) -> Result<Mat<D::Buf<f32>>> {
        let (m, k) = if ta { (a.cols, a.rows) } else { (a.rows, a.cols) };
        let n = if tb { b.rows } else { b.cols };
        let mut c = self.zeros(m, n)?;
        self.0.gemm(&mut c.b, m, n, k, &a.b, ta, &b.b, tb, alpha, 0.0).map_err(dev_err)?;
        Ok(c)
    }

    /// `c += α op(a) op(b)`.
    pub fn mm_add(
        &self,
        c: &mut Mat<D::Buf<f32>>,
        a: &Mat<D::Buf<f32>>,
        ta: bool,
        b: &Mat<D::Buf<f32>>,
        tb: bool,
        alpha: f32,
    ) -> Result<()> {
        let (m, k) = if ta { (a.cols, a.rows) } else { (a.rows, a.cols) };
        let n = if tb { b.rows } else { b.cols };
        self.0.gemm(&mut c.b, m, n, k, &a.b, ta, &b.b, tb, alpha, 1.0).map_err(dev_err)
    }

    /// `y += a x` (same shape).
    pub fn axpy(&self, y: &mut Mat<D::Buf<f32>>, x: &Mat<D::Buf<f32>>, a: f32) -> Result<()> {
        self.0.axpy_at(&mut y.b, 0, &x.b, 0, x.rows * x.cols, a).map_err(dev_err)
    }

    /// Column sums `[1, cols]` added into `g` (f64 accumulation, as the CPU engine's).
    pub fn add_col_sums(&self, g: &mut D::Buf<f32>, x: &Mat<D::Buf<f32>>) -> Result<()> {
        self.0.col_sums_add(g, &x.b, x.cols).map_err(dev_err)
    }

    /// Squared row norms on the host, `[rows]` (accumulated in f64 on the device).
    pub fn row_sq_norms(&self, x: &Mat<D::Buf<f32>>) -> Result<Vec<f32>> {
        let mut o = self.0.zeros(x.rows).map_err(dev_err)?;
        self.0.row_sq_norms(&mut o, &x.b, x.cols).map_err(dev_err)?;
        self.0.download(&o).map_err(dev_err)
    }

    pub fn scale_rows(&self, x: &mut Mat<D::Buf<f32>>, f: &D::Buf<f32>) -> Result<()> {
        self.0.scale_rows(&mut x.b, f, x.cols).map_err(dev_err)
    }

    pub fn upload(&self, v: &[f32]) -> Result<D::Buf<f32>> {
        self.0.upload(v).map_err(dev_err)
    }

    /// Backward of `y = x / ‖x‖` over row-aligned parts sharing one norm, in place on `dy`:
    /// `dx = (dy − y (y·dy)) / ‖x‖`.
    pub fn unit_backward(
        &self,
        ys: &[&Mat<D::Buf<f32>>],
        dys: &mut [Mat<D::Buf<f32>>],
        inv: &D::Buf<f32>,
    ) -> Result<()> {
        let rows = ys[0].rows;
        let mut dot = vec![0f32; rows];
        for (y, dy) in ys.iter().zip(dys.iter()) {
            let mut o = self.0.zeros(rows).map_err(dev_err)?;
            self.0.row_dots(&mut o, &y.b, &dy.b, y.cols).map_err(dev_err)?;
            let v = self.0.download(&o).map_err(dev_err)?;
            dot.iter_mut().zip(v).for_each(|(a, b)| *a += b);
        }
        let dot = self.upload(&dot)?;
        for (y, dy) in ys.iter().zip(dys.iter_mut()) {
            let mut t = self.copy(y)?;
            self.scale_rows(&mut t, &dot)?;
            self.axpy(dy, &t, -1.0)?;
            self.scale_rows(dy, inv)?;
        }
        Ok(())
    }
}

/// Unit rows of row-aligned parts that share one norm (the columns of one matrix split in
/// pieces, e.g. `X_att = [X^v, X^t]`): `(parts / ‖row‖, 1 / ‖row‖)`. A zero row (norm ≤
/// `MIN_ROW_NORM`, as in the CPU engine and the reference) gets `1/‖row‖ = 0`: its unit row is
/// 0, and so is its gradient in [`Ops::unit_backward`]; [`knn`] reads it from there.
pub(super) fn unit_parts<D: Device>(
    o: &Ops<D>,
    parts: &[Mat<D::Buf<f32>>],
) -> Result<(Vec<Mat<D::Buf<f32>>>, D::Buf<f32>)> {
    let rows = parts[0].rows;
    let mut sq = vec![0f64; rows];
    for p in parts {
        sq.iter_mut().zip(o.row_sq_norms(p)?).for_each(|(a, b)| *a += b as f64);
    }
    let mut inv = Vec::with_capacity(rows);
    for (i, v) in sq.iter().enumerate() {
        let norm = v.sqrt() as f32;
        if !norm.is_finite() {
            return Err(CraneError::Invalid(format!("Eq. (14): item {i} has a non-finite row (norm {norm})")));
        }
        inv.push(if norm <= MIN_ROW_NORM { 0.0 } else { 1.0 / norm });
    }
    let inv = o.upload(&inv)?;
    let mut ys = Vec::new();
    for p in parts {
        let mut y = o.copy(p)?;
        o.scale_rows(&mut y, &inv)?;
        ys.push(y);
    }
    Ok((ys, inv))
}

/// One term of Eq. (14): unit parts and their weight.
pub(super) struct DUnit<B> {
    pub ys: Vec<Mat<B>>,
    pub inv: B,
    pub w: f32,
}

/// Eq. (14) forward: `S = Σ_t w_t Y_t Y_tᵀ` in row blocks of `block` rows, top-k per row on the
/// device, clamp and row normalisation on the host. Never `[N, N]`. Zero rows (`1/‖row‖ = 0`
/// in every unit, as the CPU engine's `eligible`) are nobody's neighbour: their columns get
/// −∞ before the top-k (one row-bias add per block), and `from_topk` drops them and their rows.
pub(super) fn knn<D: Device>(o: &Ops<D>, units: &[DUnit<D::Buf<f32>>], k: usize, block: usize) -> Result<KnnGraph> {
    let n = units[0].ys[0].rows;
    if k == 0 || k > n {
        return Err(CraneError::config("knn_k", format!("must be in 1..={n}, got {k}")));
    }
    let mut eligible = vec![false; n];
    for u in units {
        let inv = o.0.download(&u.inv).map_err(dev_err)?;
        eligible.iter_mut().zip(inv).for_each(|(e, v)| *e |= v != 0.0);
    }
    let mask = if eligible.iter().all(|&e| e) {
        None
    } else {
        let bias: Vec<f32> = eligible.iter().map(|&e| if e { 0.0 } else { f32::NEG_INFINITY }).collect();
        Some(o.upload(&bias)?)
    };
    let block = block.clamp(1, n);
    let (mut idx, mut raw) = (Vec::with_capacity(n * k), Vec::with_capacity(n * k));
    for s in (0..n).step_by(block) {
        let e = (s + block).min(n);
        let b = e - s;
        let mut sim = o.zeros(b, n)?;
        for u in units {
            for y in &u.ys {
                let yr = o.rows(y, s, e)?;
                o.mm_add(&mut sim, &yr, false, y, true, u.w)?;
            }
        }
        if let Some(m) = &mask {
            o.0.add_row_bias(&mut sim.b, m, n).map_err(dev_err)?;
        }
        let mut ti = o.0.zeros::<u32>(b * k).map_err(dev_err)?;
        let mut tv = o.0.zeros::<f32>(b * k).map_err(dev_err)?;
        o.0.row_topk(&mut ti, &mut tv, &sim.b, b, n, k, None).map_err(dev_err)?;
        let (ti, tv) = (o.0.download(&ti).map_err(dev_err)?, o.0.download(&tv).map_err(dev_err)?);
        for r in 0..b {
            let mut row: Vec<(u32, f32)> = (0..k).map(|q| (ti[r * k + q], tv[r * k + q])).collect();
            row.sort_unstable_by_key(|e| e.0);
            idx.extend(row.iter().map(|e| e.0));
            raw.extend(row.iter().map(|e| e.1));
        }
    }
    from_topk(n, k, idx, raw, &eligible)
}

/// The pattern of the CPU engine's `Csr` `c` on the device, with `vals` (default: its own).
pub(super) fn upload_cpu_csr<D: Device>(dev: &D, c: &super::cpu::ops::Csr, vals: Option<&[f32]>) -> Result<DevCsr<D>> {
    let offsets: Vec<i64> = c.offsets.iter().map(|&o| o as i64).collect();
    upload_csr(dev, &offsets, &c.idx, vals.unwrap_or(&c.vals)).map_err(dev_err)
}

/// The held graph S̃ and S̃ᵀ on the device.
pub(super) fn upload_graph<D: Device>(dev: &D, g: &KnnGraph) -> Result<(DevCsr<D>, DevCsr<D>)> {
    Ok((upload_cpu_csr(dev, &g.s, None)?, upload_cpu_csr(dev, &g.s_t, None)?))
}

/// Eq. (14) backward: the gradient of every unit's parts (before normalisation) from the
/// gradient of S̃'s values `d_vals` (host, S̃'s entry order).
pub(super) fn knn_backward<D: Device>(
    o: &Ops<D>,
    g: &KnnGraph,
    units: &[DUnit<D::Buf<f32>>],
    d_vals: &[f32],
) -> Result<Vec<Vec<Mat<D::Buf<f32>>>>> {
    let (ds, ds_t) = knn_ds(g, d_vals);
    let (dsm, dstm) = (upload_cpu_csr(o.0, &g.s, Some(&ds))?, upload_cpu_csr(o.0, &g.s_t, Some(&ds_t))?);
    let mut out = Vec::new();
    for u in units {
        let mut dys = Vec::new();
        for y in &u.ys {
            // Row i is the left factor of S_ij and the right factor of S_ji.
            let mut dy = o.zeros(y.rows, y.cols)?;
            o.0.spmm(&mut dy.b, &dsm, &y.b, y.cols).map_err(dev_err)?;
            let mut t = o.zeros(y.rows, y.cols)?;
            o.0.spmm(&mut t.b, &dstm, &y.b, y.cols).map_err(dev_err)?;
            o.axpy(&mut dy, &t, 1.0)?;
            o.0.scale(&mut dy.b, u.w).map_err(dev_err)?;
            dys.push(dy);
        }
        let ys: Vec<&Mat<D::Buf<f32>>> = u.ys.iter().collect();
        o.unit_backward(&ys, &mut dys, &u.inv)?;
        out.push(dys);
    }
    Ok(out)
}

/// The RCA parameters Θ on the device (index 0 visual, 1 textual) and the scale s of Eq. (11).
pub(super) struct Theta<'a, B> {
    pub w_tr: &'a Mat<B>,
    pub b_tr: &'a B,
    pub w_m: [&'a Mat<B>; 2],
    pub w_a: [&'a Mat<B>; 2],
    pub w_f: [&'a Mat<B>; 2],
    pub scale: f32,
}

/// What one round keeps for its backward.
pub(super) struct RoundCache<B> {
    x: [Mat<B>; 2],
    ep: Mat<B>,
    p: [Mat<B>; 2],
    g: [Mat<B>; 2],
    pre: [Mat<B>; 2],
}

/// Gradients of Θ, shaped as Θ.
pub(super) struct ThetaGrads<B> {
    pub w_tr: Mat<B>,
    pub b_tr: B,
    pub w_m: [Mat<B>; 2],
    pub w_a: [Mat<B>; 2],
    pub w_f: [Mat<B>; 2],
}

/// `W_tr`'s rows for the visual and the textual half of `E = [X^v, X^t]`.
fn w_tr_halves<D: Device>(o: &Ops<D>, w_tr: &Mat<D::Buf<f32>>, fv: usize) -> Result<[Mat<D::Buf<f32>>; 2]> {
    Ok([o.rows(w_tr, 0, fv)?, o.rows(w_tr, fv, w_tr.rows)?])
}

/// `G = tanh(X Pᵀ) X` `[T, f]` in row blocks.
fn correlate<D: Device>(
    o: &Ops<D>,
    x: &Mat<D::Buf<f32>>,
    p: &Mat<D::Buf<f32>>,
    block: usize,
) -> Result<Mat<D::Buf<f32>>> {
    let t = x.rows;
    let mut g = o.zeros(t, x.cols)?;
    for s in (0..t).step_by(block.max(1)) {
        let e = (s + block).min(t);
        let xr = o.rows(x, s, e)?;
        let mut c = o.mm(&xr, false, p, true, 1.0)?;
        o.0.tanh(&mut c.b).map_err(dev_err)?;
        let gr = o.mm(&c, false, x, false, 1.0)?;
        o.0.copy_at(&mut g.b, s * x.cols, &gr.b, 0, (e - s) * x.cols).map_err(dev_err)?;
    }
    Ok(g)
}

/// Backward of [`correlate`]: `(dX, dP)` from `dG`, recomputing each block of C.
fn correlate_backward<D: Device>(
    o: &Ops<D>,
    x: &Mat<D::Buf<f32>>,
    p: &Mat<D::Buf<f32>>,
    dg: &Mat<D::Buf<f32>>,
    block: usize,
) -> Result<(Mat<D::Buf<f32>>, Mat<D::Buf<f32>>)> {
    let (t, f) = (x.rows, x.cols);
    let mut dx = o.zeros(t, f)?;
    let mut dp = o.zeros(t, p.cols)?;
    for s in (0..t).step_by(block.max(1)) {
        let e = (s + block).min(t);
        let xr = o.rows(x, s, e)?;
        let mut c = o.mm(&xr, false, p, true, 1.0)?;
        o.0.tanh(&mut c.b).map_err(dev_err)?;
        let dgr = o.rows(dg, s, e)?;
        o.mm_add(&mut dx, &c, true, &dgr, false, 1.0)?;
        let mut dq = o.mm(&dgr, false, x, true, 1.0)?;
        o.0.tanh_backward(&mut dq.b, &c.b).map_err(dev_err)?;
        let dxr = o.mm(&dq, false, p, false, 1.0)?;
        o.0.axpy_at(&mut dx.b, s * f, &dxr.b, 0, (e - s) * f, 1.0).map_err(dev_err)?;
        o.mm_add(&mut dp, &dq, true, &xr, false, 1.0)?;
    }
    Ok((dx, dp))
}

/// One round of Algorithm 1 (Eq. 7-13).
fn round<D: Device>(
    o: &Ops<D>,
    x: [Mat<D::Buf<f32>>; 2],
    th: &Theta<D::Buf<f32>>,
    block: usize,
) -> Result<([Mat<D::Buf<f32>>; 2], RoundCache<D::Buf<f32>>)> {
    let halves = w_tr_halves(o, th.w_tr, x[0].cols)?;
    let mut ep = o.mm(&x[0], false, &halves[0], false, 1.0)?;
    o.mm_add(&mut ep, &x[1], false, &halves[1], false, 1.0)?;
    o.0.add_row_bias(&mut ep.b, th.b_tr, ep.cols).map_err(dev_err)?;
    let mut outs = Vec::new();
    let (mut ps, mut gs, mut pres) = (Vec::new(), Vec::new(), Vec::new());
    for m in 0..2 {
        let p = o.mm(&ep, false, th.w_m[m], false, 1.0)?;
        let mut g = correlate(o, &x[m], &p, block)?;
        o.0.scale(&mut g.b, th.scale).map_err(dev_err)?;
        let pre = o.mm(&g, false, th.w_a[m], false, 1.0)?;
        let mut out = o.mm(&x[m], false, th.w_f[m], false, 1.0)?;
        let mut relu = o.zeros(pre.rows, pre.cols)?;
        o.0.leaky_relu(&mut relu.b, &pre.b, 0.0).map_err(dev_err)?;
        o.axpy(&mut out, &relu, 1.0)?;
        outs.push(out);
        ps.push(p);
        gs.push(g);
        pres.push(pre);
    }
    let two = |mut v: Vec<Mat<D::Buf<f32>>>| -> [Mat<D::Buf<f32>>; 2] {
        let b = v.pop().expect("two");
        [v.pop().expect("two"), b]
    };
    Ok((two(outs), RoundCache { x, ep, p: two(ps), g: two(gs), pre: two(pres) }))
}

/// Backward of [`round`]: accumulates into `gr`, returns the inputs' gradients.
fn round_backward<D: Device>(
    o: &Ops<D>,
    th: &Theta<D::Buf<f32>>,
    c: &RoundCache<D::Buf<f32>>,
    d_out: &[Mat<D::Buf<f32>>; 2],
    gr: &mut ThetaGrads<D::Buf<f32>>,
    block: usize,
) -> Result<[Mat<D::Buf<f32>>; 2]> {
    let mut dx = Vec::new();
    let mut d_ep = o.zeros(c.ep.rows, c.ep.cols)?;
    for m in 0..2 {
        let x = &c.x[m];
        let mut dxm = o.mm(&d_out[m], false, th.w_f[m], true, 1.0)?;
        o.mm_add(&mut gr.w_f[m], x, true, &d_out[m], false, 1.0)?;
        let mut dpre = o.zeros(d_out[m].rows, d_out[m].cols)?;
        o.0.leaky_relu_backward(&mut dpre.b, &c.pre[m].b, &d_out[m].b, 0.0).map_err(dev_err)?;
        o.mm_add(&mut gr.w_a[m], &c.g[m], true, &dpre, false, 1.0)?;
        // G = s · C X is linear in s: scale dG once, then the unscaled blocked backward.
        let dg = o.mm(&dpre, false, th.w_a[m], true, th.scale)?;
        let (dx_c, dp) = correlate_backward(o, x, &c.p[m], &dg, block)?;
        o.axpy(&mut dxm, &dx_c, 1.0)?;
        o.mm_add(&mut d_ep, &dp, false, th.w_m[m], true, 1.0)?;
        o.mm_add(&mut gr.w_m[m], &c.ep, true, &dp, false, 1.0)?;
        dx.push(dxm);
    }
    let fv = c.x[0].cols;
    let halves = w_tr_halves(o, th.w_tr, fv)?;
    for (m, half) in halves.iter().enumerate() {
        let dw = o.mm(&c.x[m], true, &d_ep, false, 1.0)?;
        let off = if m == 0 { 0 } else { fv * d_ep.cols };
        o.0.axpy_at(&mut gr.w_tr.b, off, &dw.b, 0, dw.rows * dw.cols, 1.0).map_err(dev_err)?;
        o.mm_add(&mut dx[m], &d_ep, false, half, true, 1.0)?;
    }
    o.add_col_sums(&mut gr.b_tr, &d_ep)?;
    let t = dx.pop().expect("two");
    Ok([dx.pop().expect("two"), t])
}

/// R rounds (Algorithm 1): the last round's `[X^v, X^t]` and the caches.
pub(super) fn rca_forward<D: Device>(
    o: &Ops<D>,
    x: [Mat<D::Buf<f32>>; 2],
    th: &Theta<D::Buf<f32>>,
    rounds: usize,
    block: usize,
) -> Result<([Mat<D::Buf<f32>>; 2], Vec<RoundCache<D::Buf<f32>>>)> {
    let mut x = x;
    let mut caches = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let (next, c) = round(o, x, th, block)?;
        caches.push(c);
        x = next;
    }
    Ok((x, caches))
}

/// Backward of [`rca_forward`]: the gradients of the round-0 inputs; Θ's into `gr`.
pub(super) fn rca_backward<D: Device>(
    o: &Ops<D>,
    th: &Theta<D::Buf<f32>>,
    caches: &[RoundCache<D::Buf<f32>>],
    d: [Mat<D::Buf<f32>>; 2],
    gr: &mut ThetaGrads<D::Buf<f32>>,
    block: usize,
) -> Result<[Mat<D::Buf<f32>>; 2]> {
    let mut d = d;
    for c in caches.iter().rev() {
        d = round_backward(o, th, c, &d, gr, block)?;
    }
    Ok(d)
}

/// crane-code's multi-head attention parameters: `[W_q, W_k, W_v, W_o]` `[d, d]`, biases `[1, d]`.
pub(super) struct MhaParams<'a, B> {
    pub w: [&'a Mat<B>; 4],
    pub b: [&'a B; 4],
    pub heads: usize,
}

/// What the attention's backward needs: input, Q, K, V, the heads' outputs, and each head's
/// per-row log-sum-exp `[N]`.
pub(super) struct MhaCache<B> {
    x: Mat<B>,
    q: Mat<B>,
    k: Mat<B>,
    v: Mat<B>,
    o: Mat<B>,
    lse: Vec<B>,
}

fn linear<D: Device>(
    o: &Ops<D>,
    x: &Mat<D::Buf<f32>>,
    w: &Mat<D::Buf<f32>>,
    b: &D::Buf<f32>,
) -> Result<Mat<D::Buf<f32>>> {
    let mut y = o.mm(x, false, w, false, 1.0)?;
    o.0.add_row_bias(&mut y.b, b, y.cols).map_err(dev_err)?;
    Ok(y)
}

/// Columns `[h·dh, (h+1)·dh)` of `m` as `[rows, dh]`.
fn head<D: Device>(o: &Ops<D>, m: &Mat<D::Buf<f32>>, h: usize, dh: usize) -> Result<Mat<D::Buf<f32>>> {
    let mut x = o.zeros(m.rows, dh)?;
    o.0.copy_cols(&mut x.b, dh, 0, &m.b, m.cols, h * dh, dh, m.rows).map_err(dev_err)?;
    Ok(x)
}

fn put_head<D: Device>(o: &Ops<D>, dst: &mut Mat<D::Buf<f32>>, src: &Mat<D::Buf<f32>>, h: usize) -> Result<()> {
    let dh = src.cols;
    o.0.copy_cols(&mut dst.b, dst.cols, h * dh, &src.b, dh, 0, dh, src.rows).map_err(dev_err)
}

/// The authors' attention over all N rows, blocked by query rows (`[b, N]` scores at a time,
/// never `[N, N]`): `y = concat_h softmax(Q_h K_hᵀ / √d_h) V_h · W_o + b_o` `[N, d]`.
pub(super) fn mha_forward<D: Device>(
    o: &Ops<D>,
    x: Mat<D::Buf<f32>>,
    p: &MhaParams<D::Buf<f32>>,
    block: usize,
) -> Result<(Mat<D::Buf<f32>>, MhaCache<D::Buf<f32>>)> {
    let (n, d) = (x.rows, x.cols);
    let dh = d / p.heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let block = block.clamp(1, n.max(1));
    let (q, k, v) = (linear(o, &x, p.w[0], p.b[0])?, linear(o, &x, p.w[1], p.b[1])?, linear(o, &x, p.w[2], p.b[2])?);
    let mut out = o.zeros(n, d)?;
    let mut lses = Vec::new();
    for h in 0..p.heads {
        let (qh, kh, vh) = (head(o, &q, h, dh)?, head(o, &k, h, dh)?, head(o, &v, h, dh)?);
        let mut oh = o.zeros(n, dh)?;
        let mut lse = o.0.zeros(n).map_err(dev_err)?;
        for s in (0..n).step_by(block) {
            let e = (s + block).min(n);
            let b = e - s;
            let qb = o.rows(&qh, s, e)?;
            let mut sc = o.mm(&qb, false, &kh, true, scale)?;
            let mut lb = o.0.zeros(b).map_err(dev_err)?;
            o.0.softmax_rows_lse(&mut sc.b, b, n, &mut lb).map_err(dev_err)?;
            o.0.copy_at(&mut lse, s, &lb, 0, b).map_err(dev_err)?;
            let ob = o.mm(&sc, false, &vh, false, 1.0)?;
            o.0.copy_at(&mut oh.b, s * dh, &ob.b, 0, b * dh).map_err(dev_err)?;
        }
        put_head(o, &mut out, &oh, h)?;
        lses.push(lse);
    }
    let y = linear(o, &out, p.w[3], p.b[3])?;
    Ok((y, MhaCache { x, q, k, v, o: out, lse: lses }))
}

/// Backward of [`mha_forward`]: `(dx, [dW_q, dW_k, dW_v, dW_o], [db_q, db_k, db_v, db_o])`,
/// recomputing each block's probabilities from the saved log-sum-exp.
#[allow(clippy::type_complexity)]
pub(super) fn mha_backward<D: Device>(
    o: &Ops<D>,
    p: &MhaParams<D::Buf<f32>>,
    c: &MhaCache<D::Buf<f32>>,
    dy: &Mat<D::Buf<f32>>,
    block: usize,
) -> Result<(Mat<D::Buf<f32>>, [Mat<D::Buf<f32>>; 4], [D::Buf<f32>; 4])> {
    let (n, d) = (c.x.rows, c.x.cols);
    let dh = d / p.heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let block = block.clamp(1, n.max(1));
    let dwo = o.mm(&c.o, true, dy, false, 1.0)?;
    let d_o = o.mm(dy, false, p.w[3], true, 1.0)?;
    let (mut dq, mut dk, mut dv) = (o.zeros(n, d)?, o.zeros(n, d)?, o.zeros(n, d)?);
    for h in 0..p.heads {
        let (qh, kh, vh, doh) =
            (head(o, &c.q, h, dh)?, head(o, &c.k, h, dh)?, head(o, &c.v, h, dh)?, head(o, &d_o, h, dh)?);
        let (mut dqh, mut dkh, mut dvh) = (o.zeros(n, dh)?, o.zeros(n, dh)?, o.zeros(n, dh)?);
        for s in (0..n).step_by(block) {
            let e = (s + block).min(n);
            let b = e - s;
            let qb = o.rows(&qh, s, e)?;
            let dob = o.rows(&doh, s, e)?;
            let mut pm = o.mm(&qb, false, &kh, true, scale)?;
            let mut ds = o.mm(&dob, false, &vh, true, 1.0)?;
            let mut lb = o.0.zeros(b).map_err(dev_err)?;
            o.0.copy_at(&mut lb, 0, &c.lse[h], s, b).map_err(dev_err)?;
            // pm becomes P, ds becomes dS = P ⊙ (dP − D).
            o.0.softmax_rows_backward(&mut pm.b, &mut ds.b, &lb, b, n).map_err(dev_err)?;
            let dqb = o.mm(&ds, false, &kh, false, scale)?;
            o.0.copy_at(&mut dqh.b, s * dh, &dqb.b, 0, b * dh).map_err(dev_err)?;
            o.mm_add(&mut dkh, &ds, true, &qb, false, scale)?;
            o.mm_add(&mut dvh, &pm, true, &dob, false, 1.0)?;
        }
        put_head(o, &mut dq, &dqh, h)?;
        put_head(o, &mut dk, &dkh, h)?;
        put_head(o, &mut dv, &dvh, h)?;
    }
    let mut dx = o.mm(&dq, false, p.w[0], true, 1.0)?;
    o.mm_add(&mut dx, &dk, false, p.w[1], true, 1.0)?;
    o.mm_add(&mut dx, &dv, false, p.w[2], true, 1.0)?;
    let dw = [
        o.mm(&c.x, true, &dq, false, 1.0)?,
        o.mm(&c.x, true, &dk, false, 1.0)?,
        o.mm(&c.x, true, &dv, false, 1.0)?,
        dwo,
    ];
    // The key bias's gradient is zero by structure: a shift of every key adds the same
    // q·b_k to a query's scores, which its softmax ignores (Σ_j dS_ij = 0). Summing dK's
    // rows would only return f32 round-off, so it is left exactly zero.
    // The value bias's gradient is `1ᵀdV = 1ᵀ Pᵀ dO = 1ᵀ dO = db_o W_oᵀ` (softmax rows sum to
    // 1): computed from `db_o`, as the CPU engine does, it keeps its structural smallness
    // instead of summing N rows.
    let col_sums = |g: &Mat<D::Buf<f32>>| -> Result<D::Buf<f32>> {
        let mut b = o.0.zeros(d).map_err(dev_err)?;
        o.add_col_sums(&mut b, g)?;
        Ok(b)
    };
    let (dbq, dbo) = (col_sums(&dq)?, col_sums(dy)?);
    let dbv = o.mm(&bias_row(o, &dbo, d)?, false, p.w[3], true, 1.0)?.b;
    Ok((dx, dw, [dbq, o.0.zeros(d).map_err(dev_err)?, dbv, dbo]))
}

/// A bias `[d]` as a `[1, d]` matrix.
fn bias_row<D: Device>(o: &Ops<D>, b: &D::Buf<f32>, d: usize) -> Result<Mat<D::Buf<f32>>> {
    let mut m = o.zeros(1, d)?;
    o.0.copy_at(&mut m.b, 0, b, 0, d).map_err(dev_err)?;
    Ok(m)
}

/// `1ᵀ dX [1, d_f]`, the column sums of the attention's input gradient, from the bias
/// gradients: `dX = dQ W_qᵀ + dK W_kᵀ + dV W_vᵀ`, so `1ᵀdX = db_q W_qᵀ + db_v W_vᵀ` (`db_k = 0`
/// by structure). Summing dX's N rows instead adds the round-off of the cancelling key and
/// value sums to a gradient (the projection bias's) that is small by structure.
pub(super) fn mha_input_col_sums<D: Device>(
    o: &Ops<D>,
    p: &MhaParams<D::Buf<f32>>,
    db: &[D::Buf<f32>; 4],
) -> Result<Mat<D::Buf<f32>>> {
    let d = p.w[0].cols;
    let mut s = o.mm(&bias_row(o, &db[0], d)?, false, p.w[0], true, 1.0)?;
    o.mm_add(&mut s, &bias_row(o, &db[2], d)?, false, p.w[2], true, 1.0)?;
    Ok(s)
}
