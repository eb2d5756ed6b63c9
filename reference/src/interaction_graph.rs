//! The user-item interaction graph G_UI: Eq. (1)-(4).
//!
//! Notation: M users, N items, A `[M, N]` the binary training interactions, d_u and d_i the
//! user and item degrees in A, Ã the DropEdge-sampled A, W^(l) `[d, d]` the layer-l weight,
//! σ the activation. Embeddings are rows, so the paper's `W e` is written `e W` here.

use crate::config::{DegreeSource, Readout, Sigma};
use crate::dense::{add_assign, map, mm, mm_nt, scale, spmm, spmm_t, zip};
use crate::RefError;
use faer::Mat;
use nalgebra_sparse::{CooMatrix, CsrMatrix};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Eq. (1): the interaction matrix A `[M, N]`, `A_ui = 1` iff (u, i) is a training pair.
/// Repeated pairs count once.
pub fn interaction_matrix(m: usize, n: usize, pairs: &[(usize, usize)]) -> Result<CsrMatrix<f64>, RefError> {
    let mut coo = CooMatrix::new(m, n);
    let mut sorted: Vec<(usize, usize)> = pairs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    for &(u, i) in &sorted {
        if u >= m || i >= n {
            return Err(RefError::Shape(format!("pair ({u}, {i}) outside a {m} x {n} interaction matrix")));
        }
        coo.push(u, i, 1.0);
    }
    Ok(CsrMatrix::from(&coo))
}

/// Eq. (1) as an operator: `A X`, `[M, N] x [N, c] -> [M, c]`; used by Eq. (5) and Eq. (16).
pub fn aggregate(a: &CsrMatrix<f64>, x: &Mat<f64>) -> Mat<f64> {
    spmm(a, x)
}

/// Backward of [`aggregate`] with respect to `X`: `Aᵀ G`, `[N, c]`.
pub fn aggregate_backward(a: &CsrMatrix<f64>, d_out: &Mat<f64>) -> Mat<f64> {
    spmm_t(a, d_out)
}

/// Degrees `(d_u [M], d_i [N])` of A, counting only edges whose mask value is non-zero.
pub fn degrees(a: &CsrMatrix<f64>, mask: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut du = vec![0.0; a.nrows()];
    let mut di = vec![0.0; a.ncols()];
    for (e, (u, i, _)) in a.triplet_iter().enumerate() {
        if mask[e] != 0.0 {
            du[u] += 1.0;
            di[i] += 1.0;
        }
    }
    (du, di)
}

/// Eq. (2), first line: retention probability `P_ui = 1/sqrt(d_u d_i)` of every edge, in the
/// CSR order of A `[nnz]`.
pub fn retention_probabilities(a: &CsrMatrix<f64>) -> Vec<f64> {
    let (du, di) = degrees(a, &vec![1.0; a.nnz()]);
    a.triplet_iter().map(|(u, i, _)| 1.0 / (du[u] * di[i]).sqrt()).collect()
}

/// Eq. (2), second line: Ã_ui ~ Bernoulli(P_ui), independently per edge, seeded. Returns the
/// mask `[nnz]` (1 kept, 0 dropped) in the CSR order of A.
pub fn drop_edge_bernoulli(a: &CsrMatrix<f64>, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    retention_probabilities(a).into_iter().map(|p| if rng.random::<f64>() < p { 1.0 } else { 0.0 }).collect()
}

/// Eq. (2) with inverted-dropout rescaling: the edges [`drop_edge_bernoulli`] keeps with the same
/// seed, each weighted `1/P_ui` instead of 1, so that every entry of the mask has expectation 1.
/// The mask's values multiply the edges of [`normalized_adjacency`].
pub fn drop_edge_bernoulli_rescaled(a: &CsrMatrix<f64>, seed: u64) -> Vec<f64> {
    let kept = drop_edge_bernoulli(a, seed);
    retention_probabilities(a).into_iter().zip(kept).map(|(p, k)| k / p).collect()
}

/// FREEDOM's variant of Eq. (2): keep exactly `floor(nnz · keep_ratio)` edges, sampled without
/// replacement with weights `P_ui` (Efraimidis-Spirakis keys `U^(1/P)`), seeded.
pub fn drop_edge_freedom(a: &CsrMatrix<f64>, keep_ratio: f64, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let p = retention_probabilities(a);
    let keep = ((a.nnz() as f64) * keep_ratio).floor() as usize;
    let mut keyed: Vec<(f64, usize)> =
        p.iter().enumerate().map(|(e, &w)| (rng.random::<f64>().powf(1.0 / w), e)).collect();
    keyed.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    let mut mask = vec![0.0; a.nnz()];
    for &(_, e) in keyed.iter().take(keep) {
        mask[e] = 1.0;
    }
    mask
}

/// The normalised, sampled bipartite adjacency of Eq. (3)-(4) as one `[M+N, M+N]` matrix
/// `Â = [[0, B], [Bᵀ, 0]]` with `B_ui = Ã_ui / sqrt(d_u d_i)`.
///
/// `degree_source` picks the degrees: those of the full training graph (default) or those
/// recounted on the kept edges. Nodes of degree 0 get no edges, so no division by zero occurs.
pub fn normalized_adjacency(a: &CsrMatrix<f64>, mask: &[f64], degree_source: DegreeSource) -> CsrMatrix<f64> {
    assert_eq!(mask.len(), a.nnz(), "edge mask must have one entry per interaction");
    let full = vec![1.0; a.nnz()];
    let (du, di) = match degree_source {
        DegreeSource::FullGraph => degrees(a, &full),
        DegreeSource::KeptGraph => degrees(a, mask),
    };
    let m = a.nrows();
    let size = m + a.ncols();
    let mut coo = CooMatrix::new(size, size);
    for (e, (u, i, _)) in a.triplet_iter().enumerate() {
        if mask[e] != 0.0 {
            let v = mask[e] / (du[u] * di[i]).sqrt();
            coo.push(u, m + i, v);
            coo.push(m + i, u, v);
        }
    }
    CsrMatrix::from(&coo)
}

/// σ applied elementwise.
pub fn activate(sigma: Sigma, z: &Mat<f64>) -> Mat<f64> {
    match sigma {
        Sigma::Identity => z.clone(),
        Sigma::LeakyRelu(s) => map(z, |x| if x > 0.0 { x } else { s * x }),
    }
}

/// σ'(z) ⊙ g.
fn activate_backward(sigma: Sigma, z: &Mat<f64>, g: &Mat<f64>) -> Mat<f64> {
    match sigma {
        Sigma::Identity => g.clone(),
        Sigma::LeakyRelu(s) => zip(z, g, |x, d| if x > 0.0 { d } else { s * d }),
    }
}

/// Saved values of one layer of Eq. (3)-(4).
#[derive(Clone, Debug)]
pub struct LayerCache {
    /// `Â H^(l)` `[M+N, d]`.
    pub ah: Mat<f64>,
    /// Pre-activation `Â H^(l) W^(l)` `[M+N, d]`.
    pub z: Mat<f64>,
}

/// Eq. (3) (user rows) and Eq. (4) (item rows) in one product over the bipartite graph:
/// `H^(l+1) = σ(Â H^(l) W^(l))`, `[M+N, d] -> [M+N, d]`.
pub fn gcn_layer(adj: &CsrMatrix<f64>, h: &Mat<f64>, w: &Mat<f64>, sigma: Sigma) -> (Mat<f64>, LayerCache) {
    let ah = spmm(adj, h);
    let z = mm(&ah, w);
    (activate(sigma, &z), LayerCache { ah, z })
}

/// Backward of [`gcn_layer`]: returns `(dH^(l) [M+N, d], dW^(l) [d, d])`.
pub fn gcn_layer_backward(
    adj: &CsrMatrix<f64>,
    w: &Mat<f64>,
    sigma: Sigma,
    cache: &LayerCache,
    d_out: &Mat<f64>,
) -> (Mat<f64>, Mat<f64>) {
    let dz = activate_backward(sigma, &cache.z, d_out);
    let dw = crate::dense::mm_tn(&cache.ah, &dz);
    let d_ah = mm_nt(&dz, w);
    (spmm_t(adj, &d_ah), dw)
}

/// Saved values of the whole stack of Eq. (3)-(4).
#[derive(Clone, Debug)]
pub struct GcnCache {
    pub layers: Vec<LayerCache>,
}

/// L_UI layers of Eq. (3)-(4) from `H^(0) = [E_U; E_I]` `[M+N, d]`, then the readout:
/// mean of layers 0..=L_UI or the last one. Returns `e` `[M+N, d]`.
pub fn gcn_forward(
    adj: &CsrMatrix<f64>,
    h0: &Mat<f64>,
    ws: &[Mat<f64>],
    sigma: Sigma,
    readout: Readout,
) -> (Mat<f64>, GcnCache) {
    let mut h = h0.clone();
    let mut sum = h0.clone();
    let mut layers = Vec::with_capacity(ws.len());
    for w in ws {
        let (next, cache) = gcn_layer(adj, &h, w, sigma);
        add_assign(&mut sum, &next);
        layers.push(cache);
        h = next;
    }
    let e = match readout {
        Readout::Mean => scale(&sum, 1.0 / (ws.len() as f64 + 1.0)),
        Readout::Last => h,
    };
    (e, GcnCache { layers })
}

/// Backward of [`gcn_forward`]: returns `(dH^(0) [M+N, d], dW^(l) for each layer)`.
pub fn gcn_backward(
    adj: &CsrMatrix<f64>,
    ws: &[Mat<f64>],
    sigma: Sigma,
    readout: Readout,
    cache: &GcnCache,
    d_e: &Mat<f64>,
) -> (Mat<f64>, Vec<Mat<f64>>) {
    let n_layers = ws.len();
    // Gradient reaching each layer's output directly from the readout.
    let direct = |l: usize| -> Option<Mat<f64>> {
        match readout {
            Readout::Mean => Some(scale(d_e, 1.0 / (n_layers as f64 + 1.0))),
            Readout::Last => (l == n_layers).then(|| d_e.clone()),
        }
    };
    let mut dh = direct(n_layers).unwrap_or_else(|| Mat::zeros(d_e.nrows(), d_e.ncols()));
    let mut dws = vec![Mat::zeros(0, 0); n_layers];
    for l in (0..n_layers).rev() {
        let (d_prev, dw) = gcn_layer_backward(adj, &ws[l], sigma, &cache.layers[l], &dh);
        dws[l] = dw;
        dh = d_prev;
        if let Some(g) = direct(l) {
            add_assign(&mut dh, &g);
        }
    }
    (dh, dws)
}

/// Smallest |pre-activation| over the layers: distance to the kink of a leaky ReLU.
pub fn kink_margin(sigma: Sigma, cache: &GcnCache) -> f64 {
    match sigma {
        Sigma::Identity => f64::INFINITY,
        Sigma::LeakyRelu(_) => cache.layers.iter().map(|l| crate::dense::min_abs(&l.z)).fold(f64::INFINITY, f64::min),
    }
}
