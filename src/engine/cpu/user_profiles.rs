//! The projection (Fig. 3) and Eq. (5)-(6) on the CPU, in projected space:
//! `(A X_I) P = A (X_I P)`, so no `[M, 4096]` matrix is ever built.

use super::ops::{dot, mm, mm_tn_tall, Csr, Dense};
use crane_reference::config::Aggregation;
use rayon::prelude::*;

/// `X̂ = X P + 1 p` `[N, d_f]`.
pub fn project(x: &Dense, p: &Dense, b: &Dense) -> Dense {
    let mut o = mm(x, false, p, false);
    o.add_row_bias(b);
    o
}

/// `(dP, dp)`.
pub fn project_backward(x: &Dense, d: &Dense) -> (Dense, Dense) {
    (mm_tn_tall(x, d), d.col_sums())
}

pub enum ProfileCache {
    Sum,
    Average(Vec<f32>),
    /// argmax item per (user, column) `[M, d_f]`, u32::MAX for users without items.
    Max(Vec<u32>),
    /// α in A's CSR order.
    Attention(Vec<f32>),
}

/// Eq. (5) and its Table 6 variants: `[N, d_f] -> [M, d_f]`.
pub fn forward(a: &Csr, xi: &Dense, agg: Aggregation, att: &Dense) -> (Dense, ProfileCache) {
    let c = xi.cols;
    match agg {
        Aggregation::Sum => (a.spmm(xi), ProfileCache::Sum),
        Aggregation::Average => {
            let inv: Vec<f32> = (0..a.rows)
                .map(|u| {
                    let d = a.offsets[u + 1] - a.offsets[u];
                    if d > 0 {
                        1.0 / d as f32
                    } else {
                        0.0
                    }
                })
                .collect();
            let mut s = a.spmm(xi);
            s.data.par_chunks_mut(c.max(1)).zip(&inv).for_each(|(r, &w)| r.iter_mut().for_each(|v| *v *= w));
            (s, ProfileCache::Average(inv))
        }
        Aggregation::Max => {
            let mut out = Dense::zeros(a.rows, c);
            let mut arg = vec![u32::MAX; a.rows * c];
            out.data.par_chunks_mut(c.max(1)).zip(arg.par_chunks_mut(c.max(1))).enumerate().for_each(|(u, (o, g))| {
                let (items, _) = a.row(u);
                for j in 0..c {
                    let mut best: Option<(f32, u32)> = None;
                    for &i in items {
                        let v = xi.row(i as usize)[j];
                        if best.is_none_or(|(b, _)| v > b) {
                            best = Some((v, i));
                        }
                    }
                    if let Some((v, i)) = best {
                        o[j] = v;
                        g[j] = i;
                    }
                }
            });
            (out, ProfileCache::Max(arg))
        }
        Aggregation::Attention => {
            let scores: Vec<f32> = (0..xi.rows).map(|i| dot(xi.row(i), &att.data)).collect();
            let mut alpha = vec![0.0f32; a.nnz()];
            let mut out = Dense::zeros(a.rows, c);
            for u in 0..a.rows {
                let (s, e) = (a.offsets[u], a.offsets[u + 1]);
                if s == e {
                    continue;
                }
                let items = &a.idx[s..e];
                let mx = items.iter().map(|&i| scores[i as usize]).fold(f32::NEG_INFINITY, f32::max);
                let z: f32 = items.iter().map(|&i| (scores[i as usize] - mx).exp()).sum();
                for (k, &i) in items.iter().enumerate() {
                    let w = (scores[i as usize] - mx).exp() / z;
                    alpha[s + k] = w;
                    for (o, x) in out.row_mut(u).iter_mut().zip(xi.row(i as usize)) {
                        *o += w * x;
                    }
                }
            }
            (out, ProfileCache::Attention(alpha))
        }
    }
}

/// `(dX̂_I [N, d_f], d_att [d_f, 1])`; `a_t` is Aᵀ.
pub fn backward(a: &Csr, a_t: &Csr, xi: &Dense, att: &Dense, cache: &ProfileCache, d_xu: &Dense) -> (Dense, Dense) {
    let c = xi.cols;
    let mut d_att = Dense::zeros(att.rows, att.cols);
    let d = match cache {
        ProfileCache::Sum => a_t.spmm(d_xu),
        ProfileCache::Average(inv) => {
            let mut g = d_xu.clone();
            g.data.par_chunks_mut(c.max(1)).zip(inv).for_each(|(r, &w)| r.iter_mut().for_each(|v| *v *= w));
            a_t.spmm(&g)
        }
        ProfileCache::Max(arg) => {
            let mut d = Dense::zeros(xi.rows, c);
            for u in 0..a.rows {
                for j in 0..c {
                    let i = arg[u * c + j];
                    if i != u32::MAX {
                        d.data[i as usize * c + j] += d_xu.data[u * c + j];
                    }
                }
            }
            d
        }
        ProfileCache::Attention(alpha) => {
            let mut d = Dense::zeros(xi.rows, c);
            for u in 0..a.rows {
                let (s, e) = (a.offsets[u], a.offsets[u + 1]);
                let items = &a.idx[s..e];
                let al = &alpha[s..e];
                let dal: Vec<f32> = items.iter().map(|&i| dot(d_xu.row(u), xi.row(i as usize))).collect();
                let mean: f32 = al.iter().zip(&dal).map(|(x, y)| x * y).sum();
                for (k, &i) in items.iter().enumerate() {
                    let ds = al[k] * (dal[k] - mean);
                    let i = i as usize;
                    for j in 0..c {
                        d.data[i * c + j] += al[k] * d_xu.data[u * c + j] + ds * att.data[j];
                        d_att.data[j] += ds * xi.data[i * c + j];
                    }
                }
            }
            d
        }
    };
    (d, d_att)
}
