//! RCA (Eq. 7-13, Algorithm 1) in row blocks: `C^m = tanh(X^m (P^m)ᵀ)` is `[M+N, M+N]` and is
//! never held whole. The forward computes `G = C X` one `[b, M+N]` block of C at a time; the
//! backward recomputes each block and applies the four products that involve it:
//!
//! - `dX  += C_Rᵀ dG_R`           (G = C X, wrt X)
//! - `dC_R = dG_R Xᵀ`, `dQ_R = dC_R ⊙ (1 − C_R²)`
//! - `dX_R += dQ_R P`             (Q = X Pᵀ, wrt X)
//! - `dP  += dQ_Rᵀ X_R`           (wrt P)
//!
//! Memory is O((M+N) · b) for the blocks plus O((M+N) · d_f) per saved tensor.

use super::ops::{gemm, mm, mm_tn_tall, Dense};
use super::simd;
use faer::mat::{MatMut, MatRef};
use faer::{Accum, Par};
use rayon::prelude::*;

/// The RCA parameters Θ; index 0 visual, 1 textual.
pub struct Theta<'a> {
    pub w_tr: &'a Dense,
    pub b_tr: &'a Dense,
    pub w_m: [&'a Dense; 2],
    pub w_a: [&'a Dense; 2],
    pub w_f: [&'a Dense; 2],
    /// s of Eq. (11): `G = s · C X`.
    pub scale: f32,
}

/// Gradients of Θ.
pub struct ThetaGrads {
    pub w_tr: Dense,
    pub b_tr: Dense,
    pub w_m: [Dense; 2],
    pub w_a: [Dense; 2],
    pub w_f: [Dense; 2],
}

/// What one round saved for its backward. In a round computed from row `from` > 0 (the last,
/// see [`forward`]), the rows of `g` and `pre` before `from` are zeros, not Eq. (10)-(11)'s
/// values: only the backward reads them, where those rows' upstream gradient is zero.
pub struct RoundCache {
    x: [Dense; 2],
    e: Dense,
    ep: Dense,
    p: [Dense; 2],
    g: [Dense; 2],
    pre: [Dense; 2],
}

/// Rows of C computed at once: about `budget_bytes` per `[b, M+N]` buffer.
pub fn block_rows(n: usize, budget_bytes: usize) -> usize {
    (budget_bytes / (4 * n.max(1))).clamp(16, n.max(16))
}

fn rows_of(d: &Dense, s: usize, e: usize) -> MatRef<'_, f32> {
    MatRef::from_row_major_slice(&d.data[s * d.cols..e * d.cols], e - s, d.cols)
}

fn rows_of_mut(d: &mut Dense, s: usize, e: usize) -> MatMut<'_, f32> {
    let c = d.cols;
    MatMut::from_row_major_slice_mut(&mut d.data[s * c..e * c], e - s, c)
}

/// `C_R = tanh(X_R Pᵀ)` into `buf` `[e - s, n]`.
fn corr_block(x: &Dense, p: &Dense, s: usize, e: usize, buf: &mut [f32]) {
    let n = p.rows;
    let mut q = MatMut::from_row_major_slice_mut(&mut buf[..(e - s) * n], e - s, n);
    faer::linalg::matmul::matmul(
        q.as_mut(),
        Accum::Replace,
        rows_of(x, s, e),
        p.view().transpose(),
        1.0,
        Par::rayon(0),
    );
    buf[..(e - s) * n].par_chunks_mut(4096).for_each(simd::tanh_in_place);
}

/// `G = tanh(X Pᵀ) X`, `[n, f]` (Eq. 10-11 without the scale s), in row blocks; rows before
/// `from` are not computed and stay zero, which makes those rows of [`round`]'s output `X W_f`
/// (see [`forward`]: nothing reads them).
pub fn correlate_blocked(x: &Dense, p: &Dense, block: usize, from: usize) -> Dense {
    let n = x.rows;
    let mut g = Dense::zeros(n, x.cols);
    let mut buf = vec![0.0f32; block.min(n) * n];
    for s in (from.min(n)..n).step_by(block) {
        let e = (s + block).min(n);
        corr_block(x, p, s, e, &mut buf);
        let c = MatRef::from_row_major_slice(&buf[..(e - s) * n], e - s, n);
        faer::linalg::matmul::matmul(rows_of_mut(&mut g, s, e), Accum::Replace, c, x.view(), 1.0, Par::rayon(0));
    }
    g
}

/// Backward of [`correlate_blocked`]: `(dX, dP)` from `dG`.
pub fn correlate_blocked_backward(x: &Dense, p: &Dense, d_g: &Dense, block: usize) -> (Dense, Dense) {
    let n = x.rows;
    let mut dx = Dense::zeros(n, x.cols);
    let mut dp = Dense::zeros(n, p.cols);
    let mut cbuf = vec![0.0f32; block.min(n) * n];
    let mut dbuf = vec![0.0f32; block.min(n) * n];
    for s in (0..n).step_by(block) {
        let e = (s + block).min(n);
        let b = e - s;
        // A block whose rows get no gradient adds exactly nothing to any of the four products:
        // in the last round every user row is such (only the item rows of X_att feed Eq. 14).
        if d_g.data[s * d_g.cols..e * d_g.cols].iter().all(|&v| v == 0.0) {
            continue;
        }
        corr_block(x, p, s, e, &mut cbuf);
        let c = MatRef::from_row_major_slice(&cbuf[..b * n], b, n);
        let dg_r = rows_of(d_g, s, e);
        faer::linalg::matmul::matmul(dx.view_mut(), Accum::Add, c.transpose(), dg_r, 1.0, Par::rayon(0));
        {
            let dc = MatMut::from_row_major_slice_mut(&mut dbuf[..b * n], b, n);
            faer::linalg::matmul::matmul(dc, Accum::Replace, dg_r, x.view().transpose(), 1.0, Par::rayon(0));
        }
        dbuf[..b * n]
            .par_chunks_mut(4096)
            .zip(cbuf[..b * n].par_chunks(4096))
            .for_each(|(d, c)| simd::mul_one_minus_sq(d, c));
        let dq = MatRef::from_row_major_slice(&dbuf[..b * n], b, n);
        faer::linalg::matmul::matmul(rows_of_mut(&mut dx, s, e), Accum::Add, dq, p.view(), 1.0, Par::rayon(0));
        faer::linalg::matmul::matmul(dp.view_mut(), Accum::Add, dq.transpose(), rows_of(x, s, e), 1.0, Par::rayon(0));
    }
    (dx, dp)
}

/// One round of Algorithm 1. Output rows before `from` skip Eq. (10)-(11)'s correlation: they
/// are `X W_f` only (Eq. (12) without F), for a round whose output rows before `from` nothing
/// reads.
pub fn round(xv: &Dense, xt: &Dense, th: &Theta, block: usize, from: usize) -> ([Dense; 2], RoundCache) {
    let e = Dense::hcat(xv, xt);
    let mut ep = mm(&e, false, th.w_tr, false);
    ep.add_row_bias(th.b_tr);
    let xs = [xv, xt];
    let mut outs: Vec<Dense> = Vec::new();
    let (mut ps, mut gs, mut pres) = (Vec::new(), Vec::new(), Vec::new());
    for m in 0..2 {
        let p = mm(&ep, false, th.w_m[m], false);
        let mut g = correlate_blocked(xs[m], &p, block, from);
        g.scale(th.scale);
        let pre = mm(&g, false, th.w_a[m], false);
        let mut out = mm(xs[m], false, th.w_f[m], false);
        out.data.par_iter_mut().zip(&pre.data).for_each(|(o, &v)| *o += v.max(0.0));
        outs.push(out);
        ps.push(p);
        gs.push(g);
        pres.push(pre);
    }
    let two = |mut v: Vec<Dense>| -> [Dense; 2] {
        let b = v.pop().unwrap();
        [v.pop().unwrap(), b]
    };
    let cache = RoundCache { x: [xv.clone(), xt.clone()], e, ep, p: two(ps), g: two(gs), pre: two(pres) };
    (two(outs), cache)
}

/// Backward of one round; accumulates into `gr`, returns the inputs' gradients.
pub fn round_backward(th: &Theta, c: &RoundCache, d_out: &[Dense; 2], gr: &mut ThetaGrads, block: usize) -> [Dense; 2] {
    let mut dx: Vec<Dense> = Vec::with_capacity(2);
    let mut d_ep = Dense::zeros(c.ep.rows, c.ep.cols);
    for m in 0..2 {
        let x = &c.x[m];
        let mut dxm = Dense::zeros(x.rows, x.cols);
        gemm(&mut dxm, false, &d_out[m], false, th.w_f[m], true, 1.0);
        gr.w_f[m].add_assign(&mm_tn_tall(x, &d_out[m]));
        let mut dpre = d_out[m].clone();
        dpre.data.par_iter_mut().zip(&c.pre[m].data).for_each(|(g, &v)| {
            if v <= 0.0 {
                *g = 0.0
            }
        });
        gr.w_a[m].add_assign(&mm_tn_tall(&c.g[m], &dpre));
        let mut dg = Dense::zeros(dpre.rows, th.w_a[m].rows);
        gemm(&mut dg, false, &dpre, false, th.w_a[m], true, 1.0);
        // G = s · C X is linear in s: scale dG once, then the unscaled blocked backward.
        dg.scale(th.scale);
        let (dx_c, dp) = correlate_blocked_backward(x, &c.p[m], &dg, block);
        dxm.add_assign(&dx_c);
        gemm(&mut d_ep, true, &dp, false, th.w_m[m], true, 1.0);
        gr.w_m[m].add_assign(&mm_tn_tall(&c.ep, &dp));
        dx.push(dxm);
    }
    gr.w_tr.add_assign(&mm_tn_tall(&c.e, &d_ep));
    gr.b_tr.add_assign(&d_ep.col_sums());
    let d_e = mm(&d_ep, false, th.w_tr, true);
    let (dv, dt) = d_e.hsplit(c.x[0].cols);
    dx[0].add_assign(&dv);
    dx[1].add_assign(&dt);
    let t = dx.pop().unwrap();
    [dx.pop().unwrap(), t]
}

/// R rounds, then `X_att = [X^{v(R)}, X^{t(R)}]`.
///
/// Only rows `needed_from..` of `X_att` are exact: the last round computes Eq. (10)-(11)'s
/// correlation for those rows alone (the others are `X W_f`). The engine passes M, since only
/// the item rows of X_att feed Eq. (14); user rows still take part as columns of C in every
/// round. On Baby (M = 19,445 of 26,495 rows) this leaves out 73% of the last round's forward
/// products, ~8% of RCA's FLOPs with its backward; 0 gives every row.
pub fn forward(
    xv: &Dense,
    xt: &Dense,
    th: &Theta,
    rounds: usize,
    block: usize,
    needed_from: usize,
) -> (Dense, Vec<RoundCache>) {
    let mut x = [xv.clone(), xt.clone()];
    let mut caches = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let from = if r + 1 == rounds { needed_from } else { 0 };
        let (next, c) = round(&x[0], &x[1], th, block, from);
        caches.push(c);
        x = next;
    }
    (Dense::hcat(&x[0], &x[1]), caches)
}

/// Backward of [`forward`]: `(dX^{v(0)}, dX^{t(0)})`, parameter gradients into `gr`.
pub fn backward(
    th: &Theta,
    caches: &[RoundCache],
    d_xatt: &Dense,
    dv: usize,
    gr: &mut ThetaGrads,
    block: usize,
) -> (Dense, Dense) {
    let (a, b) = d_xatt.hsplit(dv);
    let mut d = [a, b];
    for c in caches.iter().rev() {
        d = round_backward(th, c, &d, gr, block);
    }
    let [a, b] = d;
    (a, b)
}
