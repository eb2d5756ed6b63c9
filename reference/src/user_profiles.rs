//! User modality profiles: the projection of raw features (Fig. 3) and Eq. (5)-(6).
//!
//! Notation: x_i^m `[d_m]` the raw feature of item i in modality m ∈ {v, t} (d_v = 4096 image,
//! d_t = 384 text in the real data), P_m `[d_m, d_f]` and p_m `[1, d_f]` the projection to the
//! shared width d_f, X̂_I^m `[N, d_f]` the projected item features, X_U^m `[M, d_f]` the user
//! profiles, X^m `[M+N, d_f]` both stacked.
//!
//! Projection comes first, aggregation second: the paper's Eq. (5) sums raw features, and for
//! the sum `(A X) P = A (X P)` so the two orders agree up to the bias term (`d_u p_m`); working
//! in projected space never builds a `[M, 4096]` matrix.

use crate::config::Aggregation;
use crate::dense::{add_row_bias, col_sums, mm, mm_tn, row_cols, row_dot, vcat, vsplit};
use crate::interaction_graph::{aggregate, aggregate_backward};
use faer::Mat;
use nalgebra_sparse::CsrMatrix;

/// Fig. 3 "dimension reduction": `X̂ = X P + 1 p`, `[N, d_m] x [d_m, d_f] -> [N, d_f]`.
pub fn project(x: &Mat<f64>, p: &Mat<f64>, bias: &Mat<f64>) -> Mat<f64> {
    add_row_bias(&mm(x, p), bias)
}

/// Backward of [`project`]: `(dP [d_m, d_f], dp [1, d_f])`; raw features are constants.
pub fn project_backward(x: &Mat<f64>, d_out: &Mat<f64>) -> (Mat<f64>, Mat<f64>) {
    (mm_tn(x, d_out), col_sums(d_out))
}

/// What the backward of [`user_profiles`] needs.
#[derive(Clone, Debug)]
pub enum ProfileCache {
    Sum,
    Average {
        inv_degree: Vec<f64>,
    },
    /// `argmax[u][c]`: the item attaining the maximum of column c for user u.
    Max {
        argmax: Vec<Vec<usize>>,
    },
    /// Attention weights α_ui in the CSR order of A.
    Attention {
        alpha: Vec<f64>,
    },
}

/// Eq. (5): `x_u^m = Σ_{i ∈ N(u)} x_i^m` (and the Table 6 variants), `[N, d_f] -> [M, d_f]`.
/// A user without training items gets a zero profile under every variant.
///
/// `att` is the `[d_f, 1]` scoring vector of the attention variant (ignored otherwise).
pub fn user_profiles(a: &CsrMatrix<f64>, xi: &Mat<f64>, agg: Aggregation, att: &Mat<f64>) -> (Mat<f64>, ProfileCache) {
    let (m, c) = (a.nrows(), xi.ncols());
    match agg {
        Aggregation::Sum => (aggregate(a, xi), ProfileCache::Sum),
        Aggregation::Average => {
            let inv: Vec<f64> =
                (0..m).map(|u| a.row(u).nnz()).map(|d| if d > 0 { 1.0 / d as f64 } else { 0.0 }).collect();
            let s = aggregate(a, xi);
            (Mat::from_fn(m, c, |u, j| inv[u] * s[(u, j)]), ProfileCache::Average { inv_degree: inv })
        }
        Aggregation::Max => {
            let mut out = Mat::zeros(m, c);
            let mut argmax = vec![Vec::new(); m];
            for u in 0..m {
                let items = row_cols(a, u).to_vec();
                if items.is_empty() {
                    continue;
                }
                for j in 0..c {
                    let best = *items.iter().max_by(|&&x, &&y| xi[(x, j)].total_cmp(&xi[(y, j)])).unwrap();
                    out[(u, j)] = xi[(best, j)];
                    argmax[u].push(best);
                }
            }
            (out, ProfileCache::Max { argmax })
        }
        Aggregation::Attention => {
            let mut out = Mat::zeros(m, c);
            let mut alpha = Vec::with_capacity(a.nnz());
            for u in 0..m {
                let items = row_cols(a, u);
                let scores: Vec<f64> = items.iter().map(|&i| (0..c).map(|j| xi[(i, j)] * att[(j, 0)]).sum()).collect();
                let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let ex: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
                let z: f64 = ex.iter().sum();
                for (k, &i) in items.iter().enumerate() {
                    let w = ex[k] / z;
                    alpha.push(w);
                    for j in 0..c {
                        out[(u, j)] += w * xi[(i, j)];
                    }
                }
            }
            (out, ProfileCache::Attention { alpha })
        }
    }
}

/// Backward of [`user_profiles`]: `(dX̂_I [N, d_f], d_att [d_f, 1])`.
pub fn user_profiles_backward(
    a: &CsrMatrix<f64>,
    xi: &Mat<f64>,
    att: &Mat<f64>,
    cache: &ProfileCache,
    d_xu: &Mat<f64>,
) -> (Mat<f64>, Mat<f64>) {
    let (n, c) = (xi.nrows(), xi.ncols());
    let mut d_att = Mat::zeros(att.nrows(), att.ncols());
    let d_xi = match cache {
        ProfileCache::Sum => aggregate_backward(a, d_xu),
        ProfileCache::Average { inv_degree } => {
            let scaled = Mat::from_fn(d_xu.nrows(), c, |u, j| inv_degree[u] * d_xu[(u, j)]);
            aggregate_backward(a, &scaled)
        }
        ProfileCache::Max { argmax } => {
            let mut d = Mat::zeros(n, c);
            for (u, arg) in argmax.iter().enumerate() {
                for (j, &i) in arg.iter().enumerate() {
                    d[(i, j)] += d_xu[(u, j)];
                }
            }
            d
        }
        ProfileCache::Attention { alpha } => {
            let mut d = Mat::zeros(n, c);
            let offsets = a.row_offsets();
            for u in 0..a.nrows() {
                let items = row_cols(a, u);
                let al = &alpha[offsets[u]..offsets[u + 1]];
                // dα_ui = dx_u · x_i; softmax backward gives the score gradient.
                let dal: Vec<f64> = items.iter().map(|&i| row_dot(d_xu, u, xi, i)).collect();
                let mean: f64 = al.iter().zip(&dal).map(|(x, y)| x * y).sum();
                for (k, &i) in items.iter().enumerate() {
                    let ds = al[k] * (dal[k] - mean);
                    for j in 0..c {
                        d[(i, j)] += al[k] * d_xu[(u, j)] + ds * att[(j, 0)];
                        d_att[(j, 0)] += ds * xi[(i, j)];
                    }
                }
            }
            d
        }
    };
    (d_xi, d_att)
}

/// Smallest gap between the largest and second-largest candidate of each max: the distance
/// to the max-pooling kink (infinity for other variants).
pub fn max_pool_margin(a: &CsrMatrix<f64>, xi: &Mat<f64>, agg: Aggregation) -> f64 {
    if agg != Aggregation::Max {
        return f64::INFINITY;
    }
    let mut margin = f64::INFINITY;
    for u in 0..a.nrows() {
        let items = row_cols(a, u);
        if items.len() < 2 {
            continue;
        }
        for j in 0..xi.ncols() {
            let mut v: Vec<f64> = items.iter().map(|&i| xi[(i, j)]).collect();
            v.sort_by(|x, y| y.total_cmp(x));
            margin = margin.min(v[0] - v[1]);
        }
    }
    margin
}

/// Eq. (6): `X^m = [X_U^m; X_I^m]`, `[M, d_f] / [N, d_f] -> [M+N, d_f]`.
pub fn stack_entities(xu: &Mat<f64>, xi: &Mat<f64>) -> Mat<f64> {
    vcat(xu, xi)
}

/// Backward of [`stack_entities`]: splits `dX^m` into `(dX_U [M, d_f], dX_I [N, d_f])`.
pub fn stack_entities_backward(d_x: &Mat<f64>, m: usize) -> (Mat<f64>, Mat<f64>) {
    vsplit(d_x, m)
}
