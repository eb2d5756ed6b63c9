//! The attention of the authors' code (`crane-code`), blocked: query rows are processed in
//! blocks of `block` rows, each against all N keys, so memory is O(N · block) instead of the
//! released code's N² per head. The backward recomputes each block's probabilities from the
//! saved log-sum-exp of its rows. Same function as `crane_reference::attention` (tested for
//! parity on small N with every block size, and with the whole model in `tests/parity.rs`).

use super::ops::{gemm, mm, mm_tn_tall, Dense};
use super::simd;
use faer::mat::{MatMut, MatRef};
use faer::{Accum, Par};
use rayon::prelude::*;

/// `[W_q, W_k, W_v, W_o]` `[d, d]`, biases `[1, d]`, head count.
pub struct Mha<'a> {
    pub w: [&'a Dense; 4],
    pub b: [&'a Dense; 4],
    pub heads: usize,
}

/// Saved values: input, Q, K, V, the concatenated head outputs, and the log-sum-exp of every
/// (row, head) `[N, H]`.
pub struct MhaCache {
    x: Dense,
    q: Dense,
    k: Dense,
    v: Dense,
    o: Dense,
    lse: Vec<f32>,
}

fn linear(x: &Dense, w: &Dense, b: &Dense) -> Dense {
    let mut y = mm(x, false, w, false);
    y.add_row_bias(b);
    y
}

fn head(m: &Dense, h: usize, dh: usize) -> Dense {
    Dense::from_fn(m.rows, dh, |i, c| m.data[i * m.cols + h * dh + c])
}

fn put_head(dst: &mut Dense, src: &Dense, h: usize, dh: usize) {
    let cols = dst.cols;
    dst.data
        .par_chunks_mut(cols)
        .zip(src.data.par_chunks(dh))
        .for_each(|(d, s)| d[h * dh..(h + 1) * dh].copy_from_slice(s));
}

/// `scale · Q_b Kᵀ` for query rows `[s, e)` into `buf` `[e−s, N]`.
fn scores(qh: &Dense, kh: &Dense, s: usize, e: usize, scale: f32, buf: &mut [f32]) {
    let n = kh.rows;
    let dh = qh.cols;
    let qv = MatRef::from_row_major_slice(&qh.data[s * dh..e * dh], e - s, dh);
    let dst = MatMut::from_row_major_slice_mut(&mut buf[..(e - s) * n], e - s, n);
    faer::linalg::matmul::matmul(dst, Accum::Replace, qv, kh.view().transpose(), scale, Par::rayon(0));
}

/// Forward: `y` `[N, d]` and the cache.
pub fn forward(x: &Dense, p: &Mha, block: usize) -> (Dense, MhaCache) {
    let (n, d) = (x.rows, x.cols);
    let dh = d / p.heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let (q, k, v) = (linear(x, p.w[0], p.b[0]), linear(x, p.w[1], p.b[1]), linear(x, p.w[2], p.b[2]));
    let block = block.clamp(1, n.max(1));
    let mut o = Dense::zeros(n, d);
    let mut lse = vec![0f32; n * p.heads];
    let mut buf = vec![0f32; block * n];
    for h in 0..p.heads {
        let (qh, kh, vh) = (head(&q, h, dh), head(&k, h, dh), head(&v, h, dh));
        let mut oh = Dense::zeros(n, dh);
        for s in (0..n).step_by(block) {
            let e = (s + block).min(n);
            scores(&qh, &kh, s, e, scale, &mut buf);
            let l: Vec<f32> = buf[..(e - s) * n].par_chunks_mut(n).map(simd::softmax_row).collect();
            for (r, lv) in l.into_iter().enumerate() {
                lse[(s + r) * p.heads + h] = lv;
            }
            let pv = MatRef::from_row_major_slice(&buf[..(e - s) * n], e - s, n);
            let dst = MatMut::from_row_major_slice_mut(&mut oh.data[s * dh..e * dh], e - s, dh);
            faer::linalg::matmul::matmul(dst, Accum::Replace, pv, vh.view(), 1.0, Par::rayon(0));
        }
        put_head(&mut o, &oh, h, dh);
    }
    let y = linear(&o, p.w[3], p.b[3]);
    (y, MhaCache { x: x.clone(), q, k, v, o, lse })
}

/// Backward: `(dx, [dW_q, dW_k, dW_v, dW_o], [db_q, db_k, db_v, db_o])`.
pub fn backward(p: &Mha, c: &MhaCache, dy: &Dense, block: usize) -> (Dense, [Dense; 4], [Dense; 4]) {
    let (n, d) = (c.x.rows, c.x.cols);
    let dh = d / p.heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let block = block.clamp(1, n.max(1));
    let dwo = mm_tn_tall(&c.o, dy);
    let dbo = dy.col_sums();
    let d_o = mm(dy, false, p.w[3], true);
    let (mut dq, mut dk, mut dv) = (Dense::zeros(n, d), Dense::zeros(n, d), Dense::zeros(n, d));
    let mut pbuf = vec![0f32; block * n];
    let mut dbuf = vec![0f32; block * n];
    for h in 0..p.heads {
        let (qh, kh, vh, doh) = (head(&c.q, h, dh), head(&c.k, h, dh), head(&c.v, h, dh), head(&d_o, h, dh));
        let (mut dqh, mut dkh, mut dvh) = (Dense::zeros(n, dh), Dense::zeros(n, dh), Dense::zeros(n, dh));
        for s in (0..n).step_by(block) {
            let e = (s + block).min(n);
            let b = e - s;
            scores(&qh, &kh, s, e, scale, &mut pbuf);
            pbuf[..b * n].par_chunks_mut(n).enumerate().for_each(|(r, row)| {
                simd::exp_shift(row, c.lse[(s + r) * p.heads + h]);
            });
            let do_b = MatRef::from_row_major_slice(&doh.data[s * dh..e * dh], b, dh);
            // dP = dO_b Vᵀ [b, N].
            faer::linalg::matmul::matmul(
                MatMut::from_row_major_slice_mut(&mut dbuf[..b * n], b, n),
                Accum::Replace,
                do_b,
                vh.view().transpose(),
                1.0,
                Par::rayon(0),
            );
            // dS = P ⊙ (dP − D), D_i = Σ_j P_ij dP_ij.
            dbuf[..b * n]
                .par_chunks_mut(n)
                .zip(pbuf[..b * n].par_chunks(n))
                .for_each(|(ds, pr)| simd::softmax_backward_row(ds, pr));
            let ds = MatRef::from_row_major_slice(&dbuf[..b * n], b, n);
            let pm = MatRef::from_row_major_slice(&pbuf[..b * n], b, n);
            let q_b = MatRef::from_row_major_slice(&qh.data[s * dh..e * dh], b, dh);
            faer::linalg::matmul::matmul(
                MatMut::from_row_major_slice_mut(&mut dqh.data[s * dh..e * dh], b, dh),
                Accum::Replace,
                ds,
                kh.view(),
                scale,
                Par::rayon(0),
            );
            faer::linalg::matmul::matmul(dkh.view_mut(), Accum::Add, ds.transpose(), q_b, scale, Par::rayon(0));
            faer::linalg::matmul::matmul(dvh.view_mut(), Accum::Add, pm.transpose(), do_b, 1.0, Par::rayon(0));
        }
        put_head(&mut dq, &dqh, h, dh);
        put_head(&mut dk, &dkh, h, dh);
        put_head(&mut dv, &dvh, h, dh);
    }
    let mut dx = mm(&dq, false, p.w[0], true);
    gemm(&mut dx, true, &dk, false, p.w[1], true, 1.0);
    gemm(&mut dx, true, &dv, false, p.w[2], true, 1.0);
    let dw = [mm_tn_tall(&c.x, &dq), mm_tn_tall(&c.x, &dk), mm_tn_tall(&c.x, &dv), dwo];
    // The key bias's gradient is zero by structure: a shift of every key adds the same q·b_k
    // to a query's scores, which its softmax ignores (Σ_j dS_ij = 0). Summing dK's rows would
    // only return f32 round-off, so it is left exactly zero (as in the GPU engine).
    // The value bias's gradient is `1ᵀdV = 1ᵀ Pᵀ dO = 1ᵀ dO = db_o W_oᵀ` (softmax rows sum to
    // 1): computed from `db_o`, it keeps its structural smallness instead of summing N rows.
    let dbv = mm(&dbo, false, p.w[3], true);
    let db = [dq.col_sums(), Dense::zeros(1, d), dbv, dbo];
    (dx, dw, db)
}

/// `1ᵀ dX` `[1, d_f]`, the column sums of [`backward`]'s input gradient, from its bias
/// gradients: `dX = dQ W_qᵀ + dK W_kᵀ + dV W_vᵀ`, so `1ᵀdX = db_q W_qᵀ + db_v W_vᵀ` (`db_k = 0`).
/// Summing dX's N rows instead returns mostly the round-off of the cancelling key and value
/// sums, for a gradient (the projection bias's) that is small by structure.
pub fn input_col_sums(p: &Mha, db: &[Dense; 4]) -> Dense {
    let mut s = mm(&db[0], false, p.w[0], true);
    gemm(&mut s, true, &db[2], false, p.w[2], true, 1.0);
    s
}
