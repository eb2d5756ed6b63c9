//! Generated feature vectors consistent with a real item kNN graph (`crane synth --features-for
//! DIR --kind graph --graphs GRAPHS`).
//!
//! The real Amazon Baby feature vectors are not available, but their top-10 cosine neighbours are
//! (`amazon-baby/real-item-graphs/`: per modality, `{m}_knn_indices.npy` int64 `[N, k]` and
//! `{m}_knn_similarity.npy`). This module makes vectors whose own cosine top-k lists reproduce
//! those lists as closely as it can, so that a model building a kNN graph from raw features (or
//! projecting them) sees the real neighbourhood structure. They are still generated vectors:
//! every report must say "real item graph, generated feature vectors".
//!
//! Method: unit vectors `x̂_i ∈ R^d` (d = 64) fitted by full-batch Adam to a softmax
//! (InfoNCE-style) objective over all items: for each item i, the probability mass of
//! `softmax_j(x̂_i·x̂_j / τ)` (j ≠ i) on its real neighbours `N(i)` is maximised,
//! `L = −Σ_i (1/|N(i)|) Σ_{j∈N(i)} log p_ij`. The `[N, N]` similarities are recomputed every
//! step (7,050² at Baby: 0.2 GB, two GEMMs). Then `x̂ Qᵀ` with `Q` `[D, d]` having orthonormal
//! columns lifts them to the file's width D (4,096 image, 384 text) without changing any
//! cosine. The measured top-k overlap (self included on both sides, as MMRec's lists are) is
//! returned and recorded in `features.json`.

use super::npy::FeatureMatrix;
use crate::engine::cpu::ops::{gemm, Dense};
use crate::error::{CraneError, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Width of the fitted vectors before they are lifted to the file's width.
pub const FIT_DIM: usize = 64;

/// Temperature of the fitting softmax.
const TAU: f32 = 0.1;

/// One modality's kNN lists: `idx[i * k..][..k]` are item i's neighbours, most similar first.
#[derive(Clone, Debug)]
pub struct KnnLists {
    pub n: usize,
    pub k: usize,
    pub idx: Vec<u32>,
}

/// Reads `{modality}_knn_indices.npy` from `dir` (int64 `[n_items, k]`), refusing a wrong
/// shape or an id out of range with the file's name.
pub fn read_knn(dir: &Path, modality: &str, n_items: usize) -> Result<KnnLists> {
    let path = dir.join(format!("{modality}_knn_indices.npy"));
    let bytes = std::fs::read(&path).map_err(|e| CraneError::io(&path, "read", e))?;
    let npy =
        npyz::NpyFile::new(&bytes[..]).map_err(|e| CraneError::file(&path, format!("corrupt npy header: {e}")))?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 || shape[0] as usize != n_items || shape[1] == 0 {
        return Err(CraneError::file(&path, format!("shape {shape:?}, expected [{n_items}, k] (one row per item)")));
    }
    let k = shape[1] as usize;
    let raw: Vec<i64> = npy.into_vec().map_err(|e| CraneError::file(&path, format!("expected int64 item ids: {e}")))?;
    let mut idx = Vec::with_capacity(raw.len());
    for (p, &v) in raw.iter().enumerate() {
        if v < 0 || v as usize >= n_items {
            return Err(CraneError::file(
                &path,
                format!("row {}, column {}: item id {v} is outside 0..{n_items}", p / k, p % k),
            ));
        }
        idx.push(v as u32);
    }
    Ok(KnnLists { n: n_items, k, idx })
}

/// The file width of a modality's generated features: the paper's 4,096 (image) and 384
/// (text); 128 otherwise (TikTok's audio width).
pub fn width_of(modality: &str) -> usize {
    match modality {
        "image" => 4096,
        "text" => 384,
        _ => 128,
    }
}

/// Row-normalises `x` in place and returns the norms (for the backward).
fn normalise(x: &Dense) -> (Dense, Vec<f32>) {
    let mut y = x.clone();
    let norms: Vec<f32> = (0..x.rows)
        .map(|r| {
            let row = y.row_mut(r);
            let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= n);
            n
        })
        .collect();
    (y, norms)
}

/// Fits unit vectors `[n, FIT_DIM]` to `lists` (see the module doc); `iters` Adam steps.
pub fn fit(lists: &KnnLists, seed: u64, iters: usize) -> Dense {
    let (n, d) = (lists.n, FIT_DIM);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Dense::from_fn(n, d, |_, _| 0.0);
    x.data.iter_mut().for_each(|v| *v = super::synth::gauss(&mut rng) as f32);
    // The real neighbours of each item, self excluded, deduplicated.
    let targets: Vec<Vec<u32>> = (0..n)
        .map(|i| {
            let mut t: Vec<u32> =
                lists.idx[i * lists.k..(i + 1) * lists.k].iter().copied().filter(|&j| j as usize != i).collect();
            t.sort_unstable();
            t.dedup();
            t
        })
        .collect();
    let (mut m1, mut m2) = (vec![0f32; n * d], vec![0f32; n * d]);
    let (b1, b2, lr) = (0.9f32, 0.999f32, 0.05f32);
    let mut s = Dense::zeros(n, n);
    for step in 1..=iters {
        let (xh, norms) = normalise(&x);
        gemm(&mut s, false, &xh, false, &xh, true, 1.0 / TAU);
        // G = P − T row by row (self excluded from the softmax), the loss's gradient in S.
        use rayon::prelude::*;
        s.data.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
            row[i] = f32::NEG_INFINITY;
            let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut z = 0.0f32;
            row.iter_mut().for_each(|v| {
                *v = (*v - mx).exp();
                z += *v;
            });
            row.iter_mut().for_each(|v| *v /= z);
            let t = &targets[i];
            if !t.is_empty() {
                let w = 1.0 / t.len() as f32;
                t.iter().for_each(|&j| row[j as usize] -= w);
            }
        });
        // dX̂ = (G + Gᵀ) X̂ / τ.
        let mut dxh = Dense::zeros(n, d);
        gemm(&mut dxh, false, &s, false, &xh, false, 1.0 / TAU);
        gemm(&mut dxh, true, &s, true, &xh, false, 1.0 / TAU);
        crate::engine::cpu::ops::unit_rows_backward(&xh, &norms, &mut dxh);
        let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        for ((p, g), (a, b)) in x.data.iter_mut().zip(&dxh.data).zip(m1.iter_mut().zip(m2.iter_mut())) {
            *a = b1 * *a + (1.0 - b1) * g;
            *b = b2 * *b + (1.0 - b2) * g * g;
            *p -= lr * (*a / c1) / ((*b / c2).sqrt() + 1e-8);
        }
    }
    normalise(&x).0
}

/// Mean fraction of each item's real top-k found in the top-k of `x`'s cosines (self included
/// on both sides, ties to the smaller id).
pub fn overlap(x: &Dense, lists: &KnnLists) -> f64 {
    use rayon::prelude::*;
    let (xh, _) = normalise(x);
    let (n, k) = (lists.n, lists.k);
    let mut total = 0.0;
    // Row blocks: the GEMM parallelises inside (never inside a rayon loop), the top-k per row.
    for start in (0..n).step_by(512) {
        let block = xh.rows_range(start, (start + 512).min(n));
        let mut s = Dense::zeros(block.rows, n);
        gemm(&mut s, false, &block, false, &xh, true, 1.0);
        total += s
            .data
            .par_chunks(n)
            .enumerate()
            .map(|(r, row)| {
                let i = start + r;
                let top = crate::eval::top_k(row, &[], k);
                let real = &lists.idx[i * k..(i + 1) * k];
                top.iter().filter(|j| real.contains(j)).count() as f64 / k as f64
            })
            .sum::<f64>();
    }
    total / n as f64
}

/// `x̂ Qᵀ` with `Q` `[width, FIT_DIM]` of orthonormal columns (a seeded Gaussian matrix,
/// Gram-Schmidt orthonormalised): the fitted vectors at the file's width, every cosine kept.
pub fn lift(x: &Dense, width: usize, seed: u64) -> FeatureMatrix {
    let d = x.cols;
    assert!(width >= d, "the file width {width} is at least the fitted width {d}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x11f7);
    // Columns of Q as rows of `q` [d, width].
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(d);
    while q.len() < d {
        let mut v: Vec<f64> = (0..width).map(|_| super::synth::gauss(&mut rng)).collect();
        for u in &q {
            let p: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= p * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-6 {
            v.iter_mut().for_each(|a| *a /= norm);
            q.push(v);
        }
    }
    let qt = Dense::from_fn(d, width, |r, c| q[r][c] as f32);
    let (xh, _) = normalise(x);
    let mut out = Dense::zeros(x.rows, width);
    gemm(&mut out, false, &xh, false, &qt, false, 1.0);
    FeatureMatrix { rows: x.rows, cols: width, data: out.data }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four clusters of five items, each item's lists: itself then its cluster.
    fn clusters() -> KnnLists {
        let (n, k) = (20, 5);
        let mut idx = Vec::new();
        for i in 0..n {
            let c = i / 5;
            idx.push(i as u32);
            idx.extend((0..5).map(|m| (c * 5 + m) as u32).filter(|&j| j as usize != i));
        }
        KnnLists { n, k, idx }
    }

    #[test]
    fn fitted_vectors_reproduce_a_clustered_graph_and_lifting_keeps_every_cosine() {
        let lists = clusters();
        let x = fit(&lists, 7, 150);
        assert_eq!(overlap(&x, &lists), 1.0, "four well-separated clusters are reproduced exactly");
        let random = Dense::from_fn(20, FIT_DIM, |i, j| ((i * 31 + j * 17) % 13) as f32 - 6.0);
        assert!(overlap(&random, &lists) < 0.6, "an unfitted matrix does not reproduce them");
        let lifted = lift(&x, 384, 1);
        assert_eq!((lifted.rows, lifted.cols), (20, 384));
        let (xh, _) = normalise(&x);
        for (a, b) in [(0, 1), (0, 7), (13, 19)] {
            let c0: f32 = xh.row(a).iter().zip(xh.row(b)).map(|(p, q)| p * q).sum();
            let (ra, rb) = (lifted.row(a), lifted.row(b));
            let c1: f32 = ra.iter().zip(rb).map(|(p, q)| p * q).sum::<f32>()
                / (ra.iter().map(|v| v * v).sum::<f32>().sqrt() * rb.iter().map(|v| v * v).sum::<f32>().sqrt());
            assert!((c0 - c1).abs() < 1e-5, "cosine ({a},{b}) {c0} vs {c1} after lifting");
        }
    }
}
