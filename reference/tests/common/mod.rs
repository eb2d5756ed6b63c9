//! Generators shared by the reference tests: seeded, small, and away from kinks.
#![allow(dead_code)]

use crane_reference::config::ModelConfig;
use crane_reference::dense::dot;
use crane_reference::fd;
use crane_reference::init::Dims;
use crane_reference::interaction_graph::interaction_matrix;
use crane_reference::model::{sample_edge_mask, Batch, Graph, Params};
use crane_reference::rca::RcaParams;
use faer::Mat;
use nalgebra_sparse::CsrMatrix;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Inputs closer than this to a kink (ReLU, max, top-k tie, clamp at 0) are rejected: it is
/// 100x the finite-difference step, so a perturbed input never crosses the kink.
pub const KINK_MARGIN: f64 = 1e-3;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn rand_mat(r: usize, c: usize, scale: f64, rng: &mut ChaCha8Rng) -> Mat<f64> {
    fd::random(r, c, scale, rng)
}

/// A random interaction matrix: every user has 1..=max_deg distinct items.
pub fn rand_interactions(m: usize, n: usize, max_deg: usize, rng: &mut ChaCha8Rng) -> CsrMatrix<f64> {
    let mut pairs = Vec::new();
    let mut items: Vec<usize> = (0..n).collect();
    for u in 0..m {
        items.shuffle(rng);
        let deg = rng.random_range(1..=max_deg.min(n));
        pairs.extend(items[..deg].iter().map(|&i| (u, i)));
    }
    interaction_matrix(m, n, &pairs).unwrap()
}

/// `<G, f(x)>` with a fixed random G: turns a matrix-valued function into the scalar whose
/// gradient is the vector-Jacobian product with G.
pub fn probe(g: &Mat<f64>, y: &Mat<f64>) -> f64 {
    dot(g, y)
}

/// A tiny CRANE problem: 7 users, 9 items, d = 4, d_f = 3, R = 2, k = 3, features of widths 6
/// and 5, a Bernoulli-sampled edge mask, and a batch of 6 triplets.
pub fn tiny_case(seed: u64, cfg: &ModelConfig) -> (Params, Batch, Graph) {
    let mut r = rng(seed);
    let (m, n, dv, dt) = (7, 9, 6, 5);
    let a = rand_interactions(m, n, 4, &mut r);
    let features = [rand_mat(n, dv, 1.0, &mut r), rand_mat(n, dt, 1.0, &mut r)];
    let mut g = Graph::new(a, features);
    g.edge_mask = sample_edge_mask(&g.a, cfg.drop_edge, seed ^ 0x5eed);
    let mut params = Params::init(cfg, Dims { n_users: m, n_items: n, d_visual: dv, d_text: dt }, seed.wrapping_add(1));
    params.attach_features(cfg, [&g.features[0], &g.features[1]]);
    let mut triplets = Vec::new();
    for _ in 0..6 {
        let u = r.random_range(0..m);
        let row = crane_reference::dense::row_cols(&g.a, u).to_vec();
        let i = row[r.random_range(0..row.len())];
        let j = loop {
            let j = r.random_range(0..n);
            if !row.contains(&j) {
                break j;
            }
        };
        triplets.push((u, i, j));
    }
    (params, Batch { triplets }, g)
}

/// The tiny configuration of [`tiny_case`].
pub fn tiny_config() -> ModelConfig {
    ModelConfig { embedding_dim: 4, feature_dim: 3, joint_dim: 3, rounds: 2, knn_k: 3, ..ModelConfig::default() }
}

/// Owned RCA parameters Θ of Eq. (7)-(13) (`RcaParams` borrows them), for tests that set or
/// perturb them.
pub struct Theta {
    /// s of Eq. (11).
    pub scale: f64,
    pub w_tr: Mat<f64>,
    pub b_tr: Mat<f64>,
    pub w_m: [Mat<f64>; 2],
    pub w_a: [Mat<f64>; 2],
    pub w_f: [Mat<f64>; 2],
}

impl Theta {
    pub fn view(&self) -> RcaParams<'_> {
        RcaParams {
            w_tr: &self.w_tr,
            b_tr: &self.b_tr,
            w_m: [&self.w_m[0], &self.w_m[1]],
            w_a: [&self.w_a[0], &self.w_a[1]],
            w_f: [&self.w_f[0], &self.w_f[1]],
            scale: self.scale,
        }
    }

    /// Every tensor, mutable, with a name (for per-tensor finite differences).
    pub fn each(&mut self) -> Vec<(&'static str, &mut Mat<f64>)> {
        let [mv, mt] = &mut self.w_m;
        let [av, at] = &mut self.w_a;
        let [fv, ft] = &mut self.w_f;
        vec![
            ("W_tr", &mut self.w_tr),
            ("b_tr", &mut self.b_tr),
            ("W_v", mv),
            ("W_t", mt),
            ("W_a^v", av),
            ("W_a^t", at),
            ("W_f^v", fv),
            ("W_f^t", ft),
        ]
    }
}
