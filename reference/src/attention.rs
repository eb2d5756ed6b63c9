//! The authors' released model (`crane-code`, not a paper equation): one multi-head
//! self-attention with shared weights over **all items**, applied to each projected modality
//! `x̂^m` `[N, d_f]` separately, the two outputs averaged into `h^(0)` `[N, d_f]` before the
//! frozen item graph. As `torch.nn.MultiheadAttention(d_f, H)` with q = k = v = x̂^m:
//! `Q = x W_q + b_q`, `K`, `V` likewise, per head `O_h = softmax(Q_h K_hᵀ / sqrt(d_f/H)) V_h`,
//! `y = [O_1 … O_H] W_o + b_o`. Dense here (the oracle); the CPU engine computes it in row
//! blocks and never holds `[N, N]`.

use crate::dense::{add_row_bias, col_sums, mm, mm_nt, mm_tn};
use faer::Mat;

/// The weights `[W_q, W_k, W_v, W_o]` `[d_f, d_f]` and biases `[1, d_f]`.
pub struct MhaParams<'a> {
    pub w: [&'a Mat<f64>; 4],
    pub b: [&'a Mat<f64>; 4],
    pub heads: usize,
}

/// Saved values of [`mha`].
#[derive(Clone, Debug)]
pub struct MhaCache {
    x: Mat<f64>,
    q: Mat<f64>,
    k: Mat<f64>,
    v: Mat<f64>,
    /// Softmax rows per head `[N, N]`.
    p: Vec<Mat<f64>>,
    o: Mat<f64>,
}

fn cols(m: &Mat<f64>, start: usize, width: usize) -> Mat<f64> {
    Mat::from_fn(m.nrows(), width, |i, j| m[(i, start + j)])
}

/// Row-wise softmax of `s` `[r, c]`.
fn softmax_rows(s: &Mat<f64>) -> Mat<f64> {
    let mut p = s.clone();
    for i in 0..s.nrows() {
        let mx = (0..s.ncols()).map(|j| s[(i, j)]).fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = (0..s.ncols()).map(|j| (s[(i, j)] - mx).exp()).sum();
        for j in 0..s.ncols() {
            p[(i, j)] = (s[(i, j)] - mx).exp() / z;
        }
    }
    p
}

/// Multi-head self-attention of `x` `[N, d_f]`: returns `y` `[N, d_f]` and the cache.
pub fn mha(x: &Mat<f64>, p: &MhaParams) -> (Mat<f64>, MhaCache) {
    let (n, d) = (x.nrows(), x.ncols());
    let dh = d / p.heads;
    let scale = 1.0 / (dh as f64).sqrt();
    let q = add_row_bias(&mm(x, p.w[0]), p.b[0]);
    let k = add_row_bias(&mm(x, p.w[1]), p.b[1]);
    let v = add_row_bias(&mm(x, p.w[2]), p.b[2]);
    let mut o = Mat::zeros(n, d);
    let mut probs = Vec::with_capacity(p.heads);
    for h in 0..p.heads {
        let (qh, kh, vh) = (cols(&q, h * dh, dh), cols(&k, h * dh, dh), cols(&v, h * dh, dh));
        let s = Mat::from_fn(n, n, |i, j| scale * (0..dh).map(|c| qh[(i, c)] * kh[(j, c)]).sum::<f64>());
        let ph = softmax_rows(&s);
        let oh = mm(&ph, &vh);
        for i in 0..n {
            for c in 0..dh {
                o[(i, h * dh + c)] = oh[(i, c)];
            }
        }
        probs.push(ph);
    }
    let y = add_row_bias(&mm(&o, p.w[3]), p.b[3]);
    (y, MhaCache { x: x.clone(), q, k, v, p: probs, o })
}

/// Gradients of [`mha`]: `(dx, [dW_q, dW_k, dW_v, dW_o], [db_q, db_k, db_v, db_o])`.
pub fn mha_backward(p: &MhaParams, c: &MhaCache, dy: &Mat<f64>) -> (Mat<f64>, [Mat<f64>; 4], [Mat<f64>; 4]) {
    let (n, d) = (c.x.nrows(), c.x.ncols());
    let dh = d / p.heads;
    let scale = 1.0 / (dh as f64).sqrt();
    let dwo = mm_tn(&c.o, dy);
    let dbo = col_sums(dy);
    let d_o = mm_nt(dy, p.w[3]);
    let (mut dq, mut dk, mut dv) = (Mat::zeros(n, d), Mat::zeros(n, d), Mat::zeros(n, d));
    for h in 0..p.heads {
        let (qh, kh, vh) = (cols(&c.q, h * dh, dh), cols(&c.k, h * dh, dh), cols(&c.v, h * dh, dh));
        let doh = cols(&d_o, h * dh, dh);
        let ph = &c.p[h];
        let dvh = mm_tn(ph, &doh);
        let dp = mm_nt(&doh, &vh);
        // Softmax backward: dS = P ⊙ (dP − rowsum(dP ⊙ P)).
        let ds = Mat::from_fn(n, n, |i, j| {
            let r: f64 = (0..n).map(|t| dp[(i, t)] * ph[(i, t)]).sum();
            ph[(i, j)] * (dp[(i, j)] - r)
        });
        let dqh = mm(&ds, &kh);
        let dkh = mm_tn(&ds, &qh);
        for i in 0..n {
            for cc in 0..dh {
                dq[(i, h * dh + cc)] = scale * dqh[(i, cc)];
                dk[(i, h * dh + cc)] = scale * dkh[(i, cc)];
                dv[(i, h * dh + cc)] = dvh[(i, cc)];
            }
        }
    }
    let dx = &(&mm_nt(&dq, p.w[0]) + &mm_nt(&dk, p.w[1])) + &mm_nt(&dv, p.w[2]);
    let dw = [mm_tn(&c.x, &dq), mm_tn(&c.x, &dk), mm_tn(&c.x, &dv), dwo];
    let db = [col_sums(&dq), col_sums(&dk), col_sums(&dv), dbo];
    (dx, dw, db)
}
