//! The objective: Eq. (18)-(20).
//!
//! Notation: a batch of B triplets (u, i, j) with i a training item of u and j a sampled
//! negative; ŷ the scores of Eq. (17); e and h the collaborative and semantic views; τ the
//! temperature, β the contrastive weight, λ the regularisation weight.

use crate::dense::{row_dot, scale};
use faer::Mat;

/// `log(1 + exp(x))` without overflow.
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// The logistic function σ(x).
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Eq. (18): `L_BPR = mean_b −log σ(ŷ_ui − ŷ_uj)` over the batch (the paper sums; the mean
/// is a constant rescaling that keeps λ and β comparable across batch sizes). `pos`, `neg` `[B]`.
pub fn bpr(pos: &[f64], neg: &[f64]) -> f64 {
    assert_eq!(pos.len(), neg.len());
    let b = pos.len() as f64;
    pos.iter().zip(neg).map(|(p, n)| softplus(n - p)).sum::<f64>() / b
}

/// Backward of [`bpr`] for an upstream gradient `g`: `(dpos [B], dneg [B])`.
pub fn bpr_backward(pos: &[f64], neg: &[f64], g: f64) -> (Vec<f64>, Vec<f64>) {
    let b = pos.len() as f64;
    let dneg: Vec<f64> = pos.iter().zip(neg).map(|(p, n)| g * sigmoid(n - p) / b).collect();
    (dneg.iter().map(|d| -d).collect(), dneg)
}

/// Saved values of [`info_nce`].
#[derive(Clone, Debug)]
pub struct InfoNceCache {
    pub norm_a: Vec<f64>,
    pub norm_b: Vec<f64>,
    /// `softmax` of each row of the logits `[B, B]`.
    pub prob: Mat<f64>,
}

/// Eq. (19): `L_CL = mean_{u ∈ B} −log( exp(sim(a_u, b_u)/τ) / Σ_{u'} exp(sim(a_u, b_u')/τ) )`
/// with cosine `sim`; `a` `[B, d]` is the collaborative view e, `b` `[B, d]` the semantic view h
/// of the batch's distinct users (or distinct positive items for L_CL^I).
pub fn info_nce(a: &Mat<f64>, b: &Mat<f64>, tau: f64) -> (f64, InfoNceCache) {
    let n = a.nrows();
    let norm_a = safe_norms(a);
    let norm_b = safe_norms(b);
    let logits = Mat::from_fn(n, n, |i, j| row_dot(a, i, b, j) / (norm_a[i] * norm_b[j] * tau));
    let mut prob = Mat::zeros(n, n);
    let mut loss = 0.0;
    for i in 0..n {
        let mx = (0..n).map(|j| logits[(i, j)]).fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = (0..n).map(|j| (logits[(i, j)] - mx).exp()).sum();
        for j in 0..n {
            prob[(i, j)] = (logits[(i, j)] - mx).exp() / z;
        }
        loss += mx + z.ln() - logits[(i, i)];
    }
    (loss / n as f64, InfoNceCache { norm_a, norm_b, prob })
}

/// Backward of [`info_nce`] for an upstream gradient `g`: `(da [B, d], db [B, d])`.
pub fn info_nce_backward(a: &Mat<f64>, b: &Mat<f64>, tau: f64, cache: &InfoNceCache, g: f64) -> (Mat<f64>, Mat<f64>) {
    let (n, d) = (a.nrows(), a.ncols());
    // dL/dlogit_ij = (p_ij − δ_ij) / B; logit_ij = ua_i · ub_j / τ with unit rows ua, ub.
    let dl = Mat::from_fn(n, n, |i, j| g * (cache.prob[(i, j)] - if i == j { 1.0 } else { 0.0 }) / n as f64);
    let ua = Mat::from_fn(n, d, |i, c| a[(i, c)] / cache.norm_a[i]);
    let ub = Mat::from_fn(n, d, |i, c| b[(i, c)] / cache.norm_b[i]);
    let d_ua = scale(&(&dl * &ub), 1.0 / tau);
    let d_ub = scale(&(dl.transpose() * &ua), 1.0 / tau);
    (unit_backward(&ua, &cache.norm_a, &d_ua), unit_backward(&ub, &cache.norm_b, &d_ub))
}

/// Below this norm a row is divided by `NORM_EPS` instead of its norm, as `F.normalize` does:
/// a zero row (a user whose edges were all dropped, under last-layer readout) then has
/// similarity 0 with everything instead of NaN.
pub const NORM_EPS: f64 = 1e-12;

/// `max(‖x_i‖, NORM_EPS)` for every row `[B]`.
fn safe_norms(x: &Mat<f64>) -> Vec<f64> {
    (0..x.nrows()).map(|i| row_dot(x, i, x, i).sqrt().max(NORM_EPS)).collect()
}

/// Adjoint of row normalisation `y = x/max(‖x‖, ε)`: `dx = (dy − (dy·y) y)/‖x‖` above ε and
/// `dy/ε` below it.
fn unit_backward(y: &Mat<f64>, norms: &[f64], dy: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(y.nrows(), y.ncols(), |i, c| {
        let radial = if norms[i] > NORM_EPS { row_dot(dy, i, y, i) * y[(i, c)] } else { 0.0 };
        (dy[(i, c)] - radial) / norms[i]
    })
}

/// The terms of Eq. (20), each already weighted as it enters the total.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossTerms {
    pub bpr: f64,
    /// β L_CL^U.
    pub cl_user: f64,
    /// β L_CL^I.
    pub cl_item: f64,
    /// λ ‖Θ‖².
    pub reg: f64,
    /// FREEDOM's weighted modality BPR terms (`modality_bpr` · Σ_m BPR(z_u, x̂^m)); 0 for CRANE.
    pub modality: f64,
}

impl LossTerms {
    /// Eq. (20): `L = L_BPR + β (L_CL^U + L_CL^I) + λ ‖Θ‖²`, plus the modality terms of the
    /// FREEDOM baseline (zero in the paper's model).
    pub fn total(&self) -> f64 {
        self.bpr + self.cl_user + self.cl_item + self.reg + self.modality
    }

    /// The terms by name, in the order logs and CSV columns use.
    pub fn named(&self) -> [(&'static str, f64); 5] {
        [
            ("bpr", self.bpr),
            ("cl_user", self.cl_user),
            ("cl_item", self.cl_item),
            ("reg", self.reg),
            ("modality", self.modality),
        ]
    }
}

/// Eq. (20): combines the unweighted terms. Returns the weighted [`LossTerms`].
pub fn total_loss(bpr: f64, cl_user: f64, cl_item: f64, sq_norm: f64, beta: f64, lambda: f64) -> LossTerms {
    LossTerms { bpr, cl_user: beta * cl_user, cl_item: beta * cl_item, reg: lambda * sq_norm, modality: 0.0 }
}

/// MMRec's `EmbLoss`: `(‖U_b‖ + ‖P_b‖ + ‖N_b‖) / B`, unsquared Frobenius norms of the batch's
/// layer-0 user, positive and negative tables `[B, d]` (one row per triplet).
pub fn batch_norms(user_emb: &Mat<f64>, item_emb: &Mat<f64>, triplets: &[(usize, usize, usize)]) -> f64 {
    let sq = |m: &Mat<f64>, pick: &dyn Fn(&(usize, usize, usize)) -> usize| -> f64 {
        triplets.iter().map(|t| row_dot(m, pick(t), m, pick(t))).sum::<f64>()
    };
    let (nu, np, nn) = (sq(user_emb, &|t| t.0).sqrt(), sq(item_emb, &|t| t.1).sqrt(), sq(item_emb, &|t| t.2).sqrt());
    (nu + np + nn) / triplets.len() as f64
}

/// Backward of [`batch_norms`] for an upstream gradient `g`, accumulated into `d_user` and
/// `d_item`. A zero table has no gradient (the norm's subgradient 0 is taken, as torch does).
pub fn batch_norms_backward(
    user_emb: &Mat<f64>,
    item_emb: &Mat<f64>,
    triplets: &[(usize, usize, usize)],
    g: f64,
    d_user: &mut Mat<f64>,
    d_item: &mut Mat<f64>,
) {
    let b = triplets.len() as f64;
    let norm =
        |m: &Mat<f64>, rows: &mut dyn Iterator<Item = usize>| rows.map(|r| row_dot(m, r, m, r)).sum::<f64>().sqrt();
    let nu = norm(user_emb, &mut triplets.iter().map(|t| t.0));
    let np = norm(item_emb, &mut triplets.iter().map(|t| t.1));
    let nn = norm(item_emb, &mut triplets.iter().map(|t| t.2));
    let f = |n: f64| if n > 0.0 { g / (b * n) } else { 0.0 };
    let (fu, fp, fneg) = (f(nu), f(np), f(nn));
    for &(u, i, j) in triplets {
        for c in 0..user_emb.ncols() {
            d_user[(u, c)] += fu * user_emb[(u, c)];
            d_item[(i, c)] += fp * item_emb[(i, c)];
            d_item[(j, c)] += fneg * item_emb[(j, c)];
        }
    }
}

/// BPR with separate user and item tables: `mean_b −log σ(x_u·y_i − x_u·y_j)`, for FREEDOM's
/// modality terms. `x` `[B, d]` holds one user row per triplet, `yp`, `yn` `[B, d]` the
/// positive and negative item rows. Returns the loss and `(dx, dyp, dyn)` scaled by `g`.
pub fn bpr_rows(x: &Mat<f64>, yp: &Mat<f64>, yn: &Mat<f64>, g: f64) -> (f64, Mat<f64>, Mat<f64>, Mat<f64>) {
    let b = x.nrows();
    let pos: Vec<f64> = (0..b).map(|k| row_dot(x, k, yp, k)).collect();
    let neg: Vec<f64> = (0..b).map(|k| row_dot(x, k, yn, k)).collect();
    let (dp, dn) = bpr_backward(&pos, &neg, g);
    let dx = Mat::from_fn(b, x.ncols(), |k, c| dp[k] * yp[(k, c)] + dn[k] * yn[(k, c)]);
    let dyp = Mat::from_fn(b, x.ncols(), |k, c| dp[k] * x[(k, c)]);
    let dyn_ = Mat::from_fn(b, x.ncols(), |k, c| dn[k] * x[(k, c)]);
    (bpr(&pos, &neg), dx, dyp, dyn_)
}

/// The λ‖Θ‖² term's input under the default regularisation: `Σ_b (‖E_u‖² + ‖E_i‖² + ‖E_j‖²) / B`
/// over the batch's layer-0 rows, one row per triplet.
pub fn batch_sq_norm(user_emb: &Mat<f64>, item_emb: &Mat<f64>, triplets: &[(usize, usize, usize)]) -> f64 {
    let s: f64 = triplets
        .iter()
        .map(|&(u, i, j)| {
            row_dot(user_emb, u, user_emb, u) + row_dot(item_emb, i, item_emb, i) + row_dot(item_emb, j, item_emb, j)
        })
        .sum();
    s / triplets.len() as f64
}

/// Backward of [`batch_sq_norm`] for an upstream gradient `g`: accumulates into the
/// embedding gradients.
pub fn batch_sq_norm_backward(
    user_emb: &Mat<f64>,
    item_emb: &Mat<f64>,
    triplets: &[(usize, usize, usize)],
    g: f64,
    d_user: &mut Mat<f64>,
    d_item: &mut Mat<f64>,
) {
    let f = 2.0 * g / triplets.len() as f64;
    for &(u, i, j) in triplets {
        for c in 0..user_emb.ncols() {
            d_user[(u, c)] += f * user_emb[(u, c)];
            d_item[(i, c)] += f * item_emb[(i, c)];
            d_item[(j, c)] += f * item_emb[(j, c)];
        }
    }
}
