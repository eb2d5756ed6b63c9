//! Recursive Cross-Modal Attention (RCA): Eq. (7)-(13) and Algorithm 1, literally.
//!
//! Notation: X^m `[M+N, d_f]` the modality matrices of Eq. (6), E `[M+N, 2 d_f]` their
//! concatenation, W_tr `[2 d_f, d_j]` and b_tr `[1, d_j]` the joint transform, W_m `[d_j, d_f]`
//! the modality anchors, C^m `[M+N, M+N]` the correlation matrix (materialised: this is the
//! small-graph oracle), W_a^m and W_f^m `[d_f, d_f]` the refinement and residual weights.
//! Algorithm 1 lists one Θ for all rounds, so the R rounds share their parameters.

use crate::dense::{add, add_assign, add_row_bias, col_sums, hcat, hsplit, map, min_abs, mm, mm_nt, mm_tn, zip};
use faer::Mat;

/// The RCA parameters Θ of Algorithm 1; index 0 is the visual modality v, 1 the textual t.
#[derive(Clone, Copy, Debug)]
pub struct RcaParams<'a> {
    pub w_tr: &'a Mat<f64>,
    pub b_tr: &'a Mat<f64>,
    pub w_m: [&'a Mat<f64>; 2],
    pub w_a: [&'a Mat<f64>; 2],
    pub w_f: [&'a Mat<f64>; 2],
    /// s in Eq. (11): `F = ReLU(s · C X W_a)`; 1 for the literal equation, 1/(M+N) for the mean.
    pub scale: f64,
}

/// Gradients of [`RcaParams`], same shapes.
#[derive(Clone, Debug)]
pub struct RcaGrads {
    pub w_tr: Mat<f64>,
    pub b_tr: Mat<f64>,
    pub w_m: [Mat<f64>; 2],
    pub w_a: [Mat<f64>; 2],
    pub w_f: [Mat<f64>; 2],
}

impl RcaGrads {
    fn zeros_like(p: &RcaParams) -> Self {
        let z = |m: &Mat<f64>| Mat::zeros(m.nrows(), m.ncols());
        Self {
            w_tr: z(p.w_tr),
            b_tr: z(p.b_tr),
            w_m: [z(p.w_m[0]), z(p.w_m[1])],
            w_a: [z(p.w_a[0]), z(p.w_a[1])],
            w_f: [z(p.w_f[0]), z(p.w_f[1])],
        }
    }
}

/// Eq. (7): joint features `E = [X^v; X^t]` (columns), `[M+N, d_f] x 2 -> [M+N, 2 d_f]`.
pub fn joint_features(xv: &Mat<f64>, xt: &Mat<f64>) -> Mat<f64> {
    hcat(xv, xt)
}

/// Backward of [`joint_features`]: `(dX^v, dX^t)`.
pub fn joint_features_backward(d_e: &Mat<f64>, dv: usize) -> (Mat<f64>, Mat<f64>) {
    hsplit(d_e, dv)
}

/// Eq. (8): `E' = E W_tr + b_tr`, `[M+N, 2 d_f] -> [M+N, d_j]`.
pub fn joint_transform(e: &Mat<f64>, w_tr: &Mat<f64>, b_tr: &Mat<f64>) -> Mat<f64> {
    add_row_bias(&mm(e, w_tr), b_tr)
}

/// Backward of [`joint_transform`]: `(dE, dW_tr, db_tr)`.
pub fn joint_transform_backward(e: &Mat<f64>, w_tr: &Mat<f64>, d_ep: &Mat<f64>) -> (Mat<f64>, Mat<f64>, Mat<f64>) {
    (mm_nt(d_ep, w_tr), mm_tn(e, d_ep), col_sums(d_ep))
}

/// Eq. (9): modality anchors `P^m = E' W_m`, `[M+N, d_j] -> [M+N, d_f]`.
pub fn modality_anchors(ep: &Mat<f64>, w_m: &Mat<f64>) -> Mat<f64> {
    mm(ep, w_m)
}

/// Backward of [`modality_anchors`]: `(dE', dW_m)`.
pub fn modality_anchors_backward(ep: &Mat<f64>, w_m: &Mat<f64>, d_p: &Mat<f64>) -> (Mat<f64>, Mat<f64>) {
    (mm_nt(d_p, w_m), mm_tn(ep, d_p))
}

/// Eq. (10): correlation `C^m = tanh(X^m (P^m)ᵀ)`, `[M+N, d_f] x [M+N, d_f] -> [M+N, M+N]`.
pub fn correlation(x: &Mat<f64>, p: &Mat<f64>) -> Mat<f64> {
    map(&mm_nt(x, p), f64::tanh)
}

/// Backward of [`correlation`] given its output `c`: `(dX^m, dP^m)`.
pub fn correlation_backward(x: &Mat<f64>, p: &Mat<f64>, c: &Mat<f64>, d_c: &Mat<f64>) -> (Mat<f64>, Mat<f64>) {
    let dq = zip(d_c, c, |g, t| g * (1.0 - t * t));
    (mm(&dq, p), mm_tn(&dq, x))
}

/// Eq. (11): refinement `F^m = ReLU(s · C^m X^m W_a^m)`, `-> [M+N, d_f]`, with `s` the
/// configured scale (1 is the equation as printed). Also returns the pre-activation, which the
/// backward and the kink margin need.
pub fn refine(c: &Mat<f64>, x: &Mat<f64>, w_a: &Mat<f64>, s: f64) -> (Mat<f64>, Mat<f64>) {
    let pre = mm(&crate::dense::scale(&mm(c, x), s), w_a);
    (map(&pre, |v| v.max(0.0)), pre)
}

/// Backward of [`refine`]: `(dC^m, dX^m, dW_a^m)`.
pub fn refine_backward(
    c: &Mat<f64>,
    x: &Mat<f64>,
    w_a: &Mat<f64>,
    s: f64,
    pre: &Mat<f64>,
    d_f: &Mat<f64>,
) -> (Mat<f64>, Mat<f64>, Mat<f64>) {
    let d_pre = zip(d_f, pre, |g, v| if v > 0.0 { g } else { 0.0 });
    let g = crate::dense::scale(&mm(c, x), s);
    let d_cx = crate::dense::scale(&mm_nt(&d_pre, w_a), s);
    (mm_nt(&d_cx, x), mm_tn(c, &d_cx), mm_tn(&g, &d_pre))
}

/// Eq. (12): residual update `(X^m)' = F^m + X^m W_f^m`, `-> [M+N, d_f]`.
pub fn residual_update(f: &Mat<f64>, x: &Mat<f64>, w_f: &Mat<f64>) -> Mat<f64> {
    add(f, &mm(x, w_f))
}

/// Backward of [`residual_update`]: `(dF, dX^m, dW_f^m)`.
pub fn residual_update_backward(x: &Mat<f64>, w_f: &Mat<f64>, d_out: &Mat<f64>) -> (Mat<f64>, Mat<f64>, Mat<f64>) {
    (d_out.clone(), mm_nt(d_out, w_f), mm_tn(x, d_out))
}

/// Values of one round saved for the backward.
#[derive(Clone, Debug)]
pub struct RoundCache {
    /// `X^{v(r-1)}`, `X^{t(r-1)}`.
    pub x: [Mat<f64>; 2],
    pub e: Mat<f64>,
    pub ep: Mat<f64>,
    pub p: [Mat<f64>; 2],
    pub c: [Mat<f64>; 2],
    pub pre: [Mat<f64>; 2],
}

/// One round of Algorithm 1 (lines 4-11): both modalities read the previous round's X.
pub fn rca_round(xv: &Mat<f64>, xt: &Mat<f64>, th: &RcaParams) -> ([Mat<f64>; 2], RoundCache) {
    let e = joint_features(xv, xt);
    let ep = joint_transform(&e, th.w_tr, th.b_tr);
    let xs = [xv, xt];
    let mut outs = Vec::with_capacity(2);
    let (mut ps, mut cs, mut pres) = (Vec::new(), Vec::new(), Vec::new());
    for m in 0..2 {
        let p = modality_anchors(&ep, th.w_m[m]);
        let c = correlation(xs[m], &p);
        let (f, pre) = refine(&c, xs[m], th.w_a[m], th.scale);
        outs.push(residual_update(&f, xs[m], th.w_f[m]));
        ps.push(p);
        cs.push(c);
        pres.push(pre);
    }
    let arr = |mut v: Vec<Mat<f64>>| -> [Mat<f64>; 2] {
        let b = v.pop().unwrap();
        let a = v.pop().unwrap();
        [a, b]
    };
    let cache = RoundCache { x: [xv.clone(), xt.clone()], e, ep, p: arr(ps), c: arr(cs), pre: arr(pres) };
    (arr(outs), cache)
}

/// Backward of [`rca_round`]: accumulates parameter gradients into `g`, returns `(dX^v, dX^t)`
/// of the round's inputs.
pub fn rca_round_backward(
    th: &RcaParams,
    cache: &RoundCache,
    d_out: &[Mat<f64>; 2],
    g: &mut RcaGrads,
) -> [Mat<f64>; 2] {
    let mut dx =
        [Mat::zeros(cache.x[0].nrows(), cache.x[0].ncols()), Mat::zeros(cache.x[1].nrows(), cache.x[1].ncols())];
    let mut d_ep = Mat::zeros(cache.ep.nrows(), cache.ep.ncols());
    for m in 0..2 {
        let x = &cache.x[m];
        let (d_f, dx_res, dw_f) = residual_update_backward(x, th.w_f[m], &d_out[m]);
        add_assign(&mut dx[m], &dx_res);
        add_assign(&mut g.w_f[m], &dw_f);
        let (d_c, dx_ref, dw_a) = refine_backward(&cache.c[m], x, th.w_a[m], th.scale, &cache.pre[m], &d_f);
        add_assign(&mut dx[m], &dx_ref);
        add_assign(&mut g.w_a[m], &dw_a);
        let (dx_cor, d_p) = correlation_backward(x, &cache.p[m], &cache.c[m], &d_c);
        add_assign(&mut dx[m], &dx_cor);
        let (d_ep_m, dw_m) = modality_anchors_backward(&cache.ep, th.w_m[m], &d_p);
        add_assign(&mut d_ep, &d_ep_m);
        add_assign(&mut g.w_m[m], &dw_m);
    }
    let (d_e, dw_tr, db_tr) = joint_transform_backward(&cache.e, th.w_tr, &d_ep);
    add_assign(&mut g.w_tr, &dw_tr);
    add_assign(&mut g.b_tr, &db_tr);
    let (dv, dt) = joint_features_backward(&d_e, cache.x[0].ncols());
    add_assign(&mut dx[0], &dv);
    add_assign(&mut dx[1], &dt);
    dx
}

/// Values of all R rounds.
#[derive(Clone, Debug)]
pub struct RcaCache {
    pub rounds: Vec<RoundCache>,
}

/// Eq. (13) after R rounds of Algorithm 1: `X_att = [X^{v(R)}; X^{t(R)}]` (columns),
/// `[M+N, d_f] x 2 -> [M+N, 2 d_f]`. R = 0 returns the concatenated inputs.
pub fn rca(xv0: &Mat<f64>, xt0: &Mat<f64>, th: &RcaParams, rounds: usize) -> (Mat<f64>, RcaCache) {
    let mut x = [xv0.clone(), xt0.clone()];
    let mut caches = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let (next, cache) = rca_round(&x[0], &x[1], th);
        caches.push(cache);
        x = next;
    }
    (hcat(&x[0], &x[1]), RcaCache { rounds: caches })
}

/// Backward of [`rca`]: `(dX^{v(0)}, dX^{t(0)}, parameter gradients)`.
pub fn rca_backward(th: &RcaParams, cache: &RcaCache, d_xatt: &Mat<f64>, dv: usize) -> (Mat<f64>, Mat<f64>, RcaGrads) {
    let mut g = RcaGrads::zeros_like(th);
    let (a, b) = hsplit(d_xatt, dv);
    let mut d = [a, b];
    for cache in cache.rounds.iter().rev() {
        d = rca_round_backward(th, cache, &d, &mut g);
    }
    let [a, b] = d;
    (a, b, g)
}

/// Smallest |pre-activation| of Eq. (11) over all rounds: the distance to a ReLU kink.
pub fn kink_margin(cache: &RcaCache) -> f64 {
    cache.rounds.iter().flat_map(|r| r.pre.iter()).map(min_abs).fold(f64::INFINITY, f64::min)
}
