//! RCA (Eq. 7-13, Algorithm 1) on the device, rounds sharing Θ: the joint features
//! `E = [X^v, X^t]` (Eq. 7, never built: `E W_tr` is the sum of the two halves' products), the
//! joint transform `E' = E W_tr + b_tr` (Eq. 8), the anchors `P^m = E' W_m` (Eq. 9), the
//! correlation `C^m = tanh(X^m (P^m)ᵀ)` (Eq. 10) recomputed in row blocks in both passes (never
//! `[M+N, M+N]`), the refinement `F^m = ReLU(s C^m X^m W_a^m)` (Eq. 11), the residual update
//! (Eq. 12), and the item rows of `X_att` that feed Eq. (14) (Eq. 13). The CPU engine's
//! counterpart is `cpu/rca.rs`.

use super::ops::{dev_err, Mat, Ops};
use super::GpuEngine;
use crate::error::Result;
use crane_gpu::device::Device;

/// The RCA parameters Θ on the device (index 0 visual, 1 textual) and the scale s of Eq. (11).
struct Theta<'a, B> {
    pub w_tr: &'a Mat<B>,
    pub b_tr: &'a B,
    pub w_m: [&'a Mat<B>; 2],
    pub w_a: [&'a Mat<B>; 2],
    pub w_f: [&'a Mat<B>; 2],
    pub scale: f32,
}

/// What one round keeps for its backward. `from`: the first row whose correlation the round
/// computed (see [`forward`]); the rows of `g` and `pre` before it are zeros.
pub(super) struct RoundCache<B> {
    from: usize,
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

/// `G = tanh(X Pᵀ) X` `[T, f]` in row blocks from row `from` on (the rows before it stay zero).
fn correlate<D: Device>(
    o: &Ops<D>,
    x: &Mat<D::Buf<f32>>,
    p: &Mat<D::Buf<f32>>,
    block: usize,
    from: usize,
) -> Result<Mat<D::Buf<f32>>> {
    let t = x.rows;
    let mut g = o.zeros(t, x.cols)?;
    for s in (from.min(t)..t).step_by(block.max(1)) {
        let e = (s + block).min(t);
        let xr = o.rows(x, s, e)?;
        let mut c = o.mm(&xr, false, p, true, 1.0)?;
        o.0.tanh(&mut c.b).map_err(dev_err)?;
        let gr = o.mm(&c, false, x, false, 1.0)?;
        o.0.copy_at(&mut g.b, s * x.cols, &gr.b, 0, (e - s) * x.cols).map_err(dev_err)?;
    }
    Ok(g)
}

/// Backward of [`correlate`]: `(dX, dP)` from `dG`, recomputing each block of C. The blocks
/// before row `from` are skipped: `dG` is zero there (the last round's user rows, which nothing
/// downstream reads), so they would add exactly nothing to any of the four products.
fn correlate_backward<D: Device>(
    o: &Ops<D>,
    x: &Mat<D::Buf<f32>>,
    p: &Mat<D::Buf<f32>>,
    dg: &Mat<D::Buf<f32>>,
    block: usize,
    from: usize,
) -> Result<(Mat<D::Buf<f32>>, Mat<D::Buf<f32>>)> {
    let (t, f) = (x.rows, x.cols);
    let mut dx = o.zeros(t, f)?;
    let mut dp = o.zeros(t, p.cols)?;
    for s in (from.min(t)..t).step_by(block.max(1)) {
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

/// One round of Algorithm 1 (Eq. 7-13); output rows before `from` skip the correlation
/// (Eq. 10-11) and are `X W_f` only, for a round whose rows before `from` nothing reads.
fn round<D: Device>(
    o: &Ops<D>,
    x: [Mat<D::Buf<f32>>; 2],
    th: &Theta<D::Buf<f32>>,
    block: usize,
    from: usize,
) -> Result<([Mat<D::Buf<f32>>; 2], RoundCache<D::Buf<f32>>)> {
    let halves = w_tr_halves(o, th.w_tr, x[0].cols)?;
    let mut ep = o.mm(&x[0], false, &halves[0], false, 1.0)?;
    o.mm_add(&mut ep, &x[1], false, &halves[1], false, 1.0)?;
    o.0.add_row_bias(&mut ep.b, th.b_tr, ep.cols).map_err(dev_err)?;
    let mut outs = Vec::new();
    let (mut ps, mut gs, mut pres) = (Vec::new(), Vec::new(), Vec::new());
    for m in 0..2 {
        let p = o.mm(&ep, false, th.w_m[m], false, 1.0)?;
        let mut g = correlate(o, &x[m], &p, block, from)?;
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
    Ok((two(outs), RoundCache { from, x, ep, p: two(ps), g: two(gs), pre: two(pres) }))
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
        let (dx_c, dp) = correlate_backward(o, x, &c.p[m], &dg, block, c.from)?;
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

/// R rounds (Algorithm 1): the last round's `[X^v, X^t]` and the caches. As in the CPU engine's
/// `rca::forward`, the last round computes the correlation for rows `needed_from..` only (the
/// engine passes M: only the item rows feed Eq. (14)), and its backward skips the same blocks.
fn forward<D: Device>(
    o: &Ops<D>,
    x: [Mat<D::Buf<f32>>; 2],
    th: &Theta<D::Buf<f32>>,
    rounds: usize,
    block: usize,
    needed_from: usize,
) -> Result<([Mat<D::Buf<f32>>; 2], Vec<RoundCache<D::Buf<f32>>>)> {
    let mut x = x;
    let mut caches = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let from = if r + 1 == rounds { needed_from } else { 0 };
        let (next, c) = round(o, x, th, block, from)?;
        caches.push(c);
        x = next;
    }
    Ok((x, caches))
}

/// Backward of [`forward`]: the gradients of the round-0 inputs; Θ's into `gr`.
fn backward<D: Device>(
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

impl<D: Device> GpuEngine<D> {
    fn theta(&self) -> Result<[Mat<D::Buf<f32>>; 8]> {
        Ok([
            self.pmat("w_tr")?,
            self.pmat("b_tr")?,
            self.pmat("w_m.v")?,
            self.pmat("w_m.t")?,
            self.pmat("w_a.v")?,
            self.pmat("w_a.t")?,
            self.pmat("w_f.v")?,
            self.pmat("w_f.t")?,
        ])
    }

    fn theta_view<'a>(&self, t: &'a [Mat<D::Buf<f32>>; 8]) -> Theta<'a, D::Buf<f32>> {
        Theta {
            w_tr: &t[0],
            b_tr: &t[1].b,
            w_m: [&t[2], &t[3]],
            w_a: [&t[4], &t[5]],
            w_f: [&t[6], &t[7]],
            scale: crane_reference::model::rca_scale(&self.cfg, self.m + self.n) as f32,
        }
    }

    /// Algorithm 1 on `[X^v, X^t]` `[M+N, d_f]` each (Eq. 6) with the current Θ: the item rows
    /// of `X_att`'s two halves `[N, d_f]` (Eq. 13) and the rounds' caches.
    pub(super) fn rca(
        &self,
        x0: [Mat<D::Buf<f32>>; 2],
    ) -> Result<([Mat<D::Buf<f32>>; 2], Vec<RoundCache<D::Buf<f32>>>)> {
        let o = Ops(&self.dev);
        let (m, n) = (self.m, self.n);
        let block = crate::engine::cpu::rca::block_rows(m + n, self.block_bytes);
        let t = self.theta()?;
        let th = self.theta_view(&t);
        let (xr, caches) = forward(&o, x0, &th, self.cfg.rounds, block, m)?;
        Ok(([o.rows(&xr[0], m, m + n)?, o.rows(&xr[1], m, m + n)?], caches))
    }

    /// Backward of [`GpuEngine::rca`] from the gradients of the item rows `d_items` (two
    /// `[N, d_f]`): the gradients of `[X^v, X^t]` `[M+N, d_f]` and Θ's.
    pub(super) fn rca_backward(
        &self,
        caches: &[RoundCache<D::Buf<f32>>],
        d_items: Vec<Mat<D::Buf<f32>>>,
    ) -> Result<([Mat<D::Buf<f32>>; 2], ThetaGrads<D::Buf<f32>>)> {
        let o = Ops(&self.dev);
        let (m, n) = (self.m, self.n);
        let mut d = Vec::new();
        for part in d_items {
            let mut x = o.zeros(m + n, part.cols)?;
            self.dev.copy_at(&mut x.b, m * part.cols, &part.b, 0, n * part.cols).map_err(dev_err)?;
            d.push(x);
        }
        let t = self.theta()?;
        let th = self.theta_view(&t);
        let zero = |x: &Mat<D::Buf<f32>>| o.zeros(x.rows, x.cols);
        let mut gr = ThetaGrads {
            w_tr: zero(&t[0])?,
            b_tr: zero(&t[1])?.b,
            w_m: [zero(&t[2])?, zero(&t[3])?],
            w_a: [zero(&t[4])?, zero(&t[5])?],
            w_f: [zero(&t[6])?, zero(&t[7])?],
        };
        let d1 = d.pop().expect("two");
        let block = crate::engine::cpu::rca::block_rows(m + n, self.block_bytes);
        let dx = backward(&o, &th, caches, [d.pop().expect("two"), d1], &mut gr, block)?;
        Ok((dx, gr))
    }

    /// Adds Θ's gradients from [`GpuEngine::rca_backward`] into the parameters' gradients.
    pub(super) fn add_theta_grads(&mut self, gr: &ThetaGrads<D::Buf<f32>>) -> Result<()> {
        for (name, t) in [
            ("w_tr", &gr.w_tr.b),
            ("b_tr", &gr.b_tr),
            ("w_m.v", &gr.w_m[0].b),
            ("w_m.t", &gr.w_m[1].b),
            ("w_a.v", &gr.w_a[0].b),
            ("w_a.t", &gr.w_a[1].b),
            ("w_f.v", &gr.w_f[0].b),
            ("w_f.t", &gr.w_f[1].b),
        ] {
            self.add_grad(name, t)?;
        }
        Ok(())
    }
}
