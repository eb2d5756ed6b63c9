//! Synthetic datasets with the real shapes of the paper's Table 2 and a planted structure.
//!
//! Every item has a latent vector `v_i = c_{k(i)} + 0.6 ε` around one of K cluster centroids.
//! Users prefer two clusters and, within a cluster, items aligned with their own latent
//! vector, weighted by a long-tailed popularity. Features are fixed random linear maps of
//! `v_i` plus noise (image noisier than text, as text dominates on Baby in the paper), so the
//! multimodal signal is real and learnable. About 1% of items get the mean image vector, as
//! items without an image do in the real files (exact cosine ties included).

use super::inter::format_inter;
use super::npy::{write_features, FeatureMatrix};
use super::split::split_user;
use crate::error::{CraneError, Result};
use crate::io::write_string_atomic;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::Path;

/// A dataset shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preset {
    pub name: &'static str,
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
    pub d_visual: usize,
    pub d_text: usize,
}

/// The paper's Table 2, plus `tiny` for the README's first command and the tests.
pub const PRESETS: [Preset; 5] = [
    Preset { name: "tiny", users: 400, items: 250, interactions: 4_000, d_visual: 128, d_text: 48 },
    Preset { name: "baby", users: 19_445, items: 7_050, interactions: 160_792, d_visual: 4096, d_text: 384 },
    Preset { name: "sports", users: 35_598, items: 18_357, interactions: 296_337, d_visual: 4096, d_text: 384 },
    Preset { name: "clothing", users: 39_387, items: 23_033, interactions: 278_677, d_visual: 4096, d_text: 384 },
    Preset { name: "electronics", users: 192_403, items: 63_001, interactions: 1_689_188, d_visual: 4096, d_text: 384 },
];

/// Looks a preset up by name.
pub fn preset(name: &str) -> Result<Preset> {
    PRESETS.iter().find(|p| p.name == name).copied().ok_or_else(|| {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        CraneError::config("--like", format!("unknown preset `{name}`, expected one of {}", names.join(", ")))
    })
}

/// Minimum interactions per user in generated data.
pub const MIN_PER_USER: usize = 5;
const LATENT: usize = 16;

impl Preset {
    /// The shape scaled by `s` (users, items, interactions; feature widths unchanged).
    pub fn scaled(&self, s: f64) -> Result<Preset> {
        if !(s > 0.0 && s.is_finite()) {
            return Err(CraneError::config("--scale", format!("must be a positive number, got {s}")));
        }
        let users = ((self.users as f64 * s).round() as usize).max(2);
        let items = ((self.items as f64 * s).round() as usize).max(2 * MIN_PER_USER);
        let interactions = ((self.interactions as f64 * s).round() as usize).max(users * MIN_PER_USER);
        Ok(Preset { users, items, interactions, ..*self })
    }
}

pub(crate) fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller; 1 - U keeps the logarithm finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The generated interactions `(user, item, x_label)` and item features.
pub struct Synthetic {
    pub rows: Vec<(u64, u64, u8)>,
    pub visual: FeatureMatrix,
    pub textual: FeatureMatrix,
}

/// Generates a dataset of shape `p`, deterministic from `seed`.
pub fn generate(p: &Preset, seed: u64) -> Synthetic {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = (p.items / 30).clamp(8, 400);
    let centroids: Vec<[f64; LATENT]> = (0..k).map(|_| std::array::from_fn(|_| gauss(&mut rng))).collect();
    let cluster: Vec<usize> = (0..p.items).map(|_| rng.random_range(0..k)).collect();
    let latent: Vec<[f64; LATENT]> =
        cluster.iter().map(|&c| std::array::from_fn(|d| centroids[c][d] + 0.6 * gauss(&mut rng))).collect();
    // Long-tailed popularity: a random rank per item, weight rank^-0.8.
    let mut rank: Vec<usize> = (0..p.items).collect();
    rand::seq::SliceRandom::shuffle(&mut rank[..], &mut rng);
    let pop: Vec<f64> = rank.iter().map(|&r| 1.0 / ((r + 1) as f64).powf(0.8)).collect();
    let mut members = vec![Vec::new(); k];
    for (i, &c) in cluster.iter().enumerate() {
        members[c].push(i);
    }
    let global_cum: Vec<f64> = pop
        .iter()
        .scan(0.0, |s, w| {
            *s += w;
            Some(*s)
        })
        .collect();

    // Degrees: at least MIN_PER_USER, geometric extra to reach the target mean.
    let extra_mean = (p.interactions as f64 / p.users as f64 - MIN_PER_USER as f64).max(0.0);
    let q = 1.0 / (1.0 + extra_mean);
    let cap = (p.items / 2).max(MIN_PER_USER);
    let user_seeds: Vec<u64> = (0..p.users).map(|_| rng.random()).collect();
    let per_user: Vec<Vec<u64>> = user_seeds
        .par_iter()
        .map(|&s| {
            let mut r = ChaCha8Rng::seed_from_u64(s);
            let mut extra = 0;
            while r.random::<f64>() > q && extra < cap {
                extra += 1;
            }
            let deg = (MIN_PER_USER + extra).min(cap);
            let favs: Vec<(usize, f64)> = (0..2).map(|_| (r.random_range(0..k), -r.random::<f64>().ln())).collect();
            let fav_total: f64 = favs.iter().map(|f| f.1).sum();
            let mut taste = [0.0; LATENT];
            for &(c, w) in &favs {
                for d in 0..LATENT {
                    taste[d] += w / fav_total * centroids[c][d];
                }
            }
            for t in taste.iter_mut() {
                *t += 0.5 * gauss(&mut r);
            }
            let mut chosen: Vec<u64> = Vec::with_capacity(deg);
            let mut tries = 0;
            while chosen.len() < deg && tries < 50 * deg {
                tries += 1;
                let item = if r.random::<f64>() < 0.85 {
                    let mut x = r.random::<f64>() * fav_total;
                    let mut c = favs[0].0;
                    for &(fc, w) in &favs {
                        c = fc;
                        if x < w {
                            break;
                        }
                        x -= w;
                    }
                    let m = &members[c];
                    if m.is_empty() {
                        continue;
                    }
                    let w: Vec<f64> = m
                        .iter()
                        .map(|&i| pop[i] * (latent[i].iter().zip(&taste).map(|(a, b)| a * b).sum::<f64>() * 0.5).exp())
                        .collect();
                    let total: f64 = w.iter().sum();
                    let mut x = r.random::<f64>() * total;
                    let mut pick = m[m.len() - 1];
                    for (j, &wj) in w.iter().enumerate() {
                        if x < wj {
                            pick = m[j];
                            break;
                        }
                        x -= wj;
                    }
                    pick
                } else {
                    let x = r.random::<f64>() * global_cum[global_cum.len() - 1];
                    global_cum.partition_point(|&c| c <= x).min(p.items - 1)
                } as u64;
                if !chosen.contains(&item) {
                    chosen.push(item);
                }
            }
            chosen
        })
        .collect();
    // Every item occurs at least once, so `max item id + 1` is the item count the features have.
    let mut per_user = per_user;
    let mut used = vec![false; p.items];
    per_user.iter().flatten().for_each(|&i| used[i as usize] = true);
    for (i, _) in used.iter().enumerate().filter(|(_, u)| !**u) {
        let u = rng.random_range(0..p.users);
        per_user[u].push(i as u64);
    }
    let mut rows = Vec::with_capacity(p.interactions);
    for (u, items) in per_user.iter().enumerate() {
        for (&i, l) in items.iter().zip(split_user(items.len(), seed, u as u64)) {
            rows.push((u as u64, i, l));
        }
    }
    let visual = features(&latent, p.d_visual, 1.0, seed ^ 0x1111, 0.01);
    let textual = features(&latent, p.d_text, 0.5, seed ^ 0x2222, 0.0);
    Synthetic { rows, visual, textual }
}

/// `x_i = v_i G + noise · ε`, `G` `[LATENT, dim]` Gaussian; a fraction of rows is replaced by
/// the mean row (items without an image).
fn features(latent: &[[f64; LATENT]], dim: usize, noise: f64, seed: u64, missing: f64) -> FeatureMatrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let g: Vec<f64> = (0..LATENT * dim).map(|_| gauss(&mut rng) / (LATENT as f64).sqrt()).collect();
    let n = latent.len();
    let mut data = vec![0.0f32; n * dim];
    data.par_chunks_mut(dim).enumerate().for_each(|(i, row)| {
        let mut r = ChaCha8Rng::seed_from_u64(seed.wrapping_add(i as u64 + 1));
        for (c, out) in row.iter_mut().enumerate() {
            let mut v = 0.0;
            for d in 0..LATENT {
                v += latent[i][d] * g[d * dim + c];
            }
            *out = (v + noise * gauss(&mut r)) as f32;
        }
    });
    if missing > 0.0 {
        let mean: Vec<f32> =
            (0..dim).map(|c| (0..n).map(|i| data[i * dim + c] as f64).sum::<f64>() as f32 / n as f32).collect();
        for i in 0..n {
            if rng.random::<f64>() < missing {
                data[i * dim..(i + 1) * dim].copy_from_slice(&mean);
            }
        }
    }
    FeatureMatrix { rows: n, cols: dim, data }
}

/// Writes `<out>/<name>.inter`, `image_feat.npy` and `text_feat.npy`.
pub fn write(out: &Path, name: &str, s: &Synthetic) -> Result<()> {
    write_string_atomic(&out.join(format!("{name}.inter")), &format_inter(&s.rows))?;
    write_marker(out, &format!("synthetic `{name}` interactions and features (crane synth --like)"))?;
    write_features(&out.join("image_feat.npy"), &s.visual)?;
    write_features(&out.join("text_feat.npy"), &s.textual)
}

/// What `crane synth --features-for` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureKind {
    /// Gaussian noise: no signal (a control).
    Random,
    /// A rank-`PLANTED_RANK` factorisation of the **training** interactions mapped to each
    /// modality's width by a fixed random matrix, plus noise (text less noisy than image).
    Planted,
}

/// Rank of the training-matrix factorisation behind planted features.
pub const PLANTED_RANK: usize = 32;

/// Image and text features `[n_items, 4096]`, `[n_items, 384]` for an existing dataset.
///
/// `Planted` reads **only** `ds.train`: item factors are the top-`PLANTED_RANK` eigenvectors
/// of `ÃᵀÃ` (Ã the degree-normalised training matrix, by subspace iteration), scaled by
/// their eigenvalues' square roots and standardised; each modality is `F W_m + σ_m ε` with a
/// fixed Gaussian `W_m` and noise `σ_v = 1.0`, `σ_t = 0.5` per unit-variance signal. Items with
/// no training interaction get pure noise, so validation and test never leak into features.
/// Image rows are made non-negative (as CNN activations are), text rows unit-length (as
/// sentence embeddings are).
pub fn features_for(ds: &super::Dataset, kind: FeatureKind, seed: u64) -> [FeatureMatrix; 2] {
    let n = ds.n_items;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut gauss = |rows: usize, cols: usize| -> Vec<f64> { (0..rows * cols).map(|_| gauss(&mut rng)).collect() };
    let widths = [(4096usize, 1.0f64), (384usize, 0.5f64)];
    let factors: Option<Vec<f64>> = match kind {
        FeatureKind::Random => None,
        FeatureKind::Planted => Some(in_fixed_pool(|| train_item_factors(ds, PLANTED_RANK, seed))),
    };
    let mut out = Vec::new();
    for (m, &(d, sigma)) in widths.iter().enumerate() {
        let mut x = gauss(n, d);
        if let Some(f) = &factors {
            let w = gauss(PLANTED_RANK, d);
            let scale = 1.0 / (PLANTED_RANK as f64).sqrt();
            for (fi, row) in f.chunks(PLANTED_RANK).zip(x.chunks_mut(d)) {
                // Items without training interactions keep unit-variance noise only.
                if fi.iter().all(|&v| v == 0.0) {
                    continue;
                }
                row.iter_mut().for_each(|v| *v *= sigma);
                for (&fr, wr) in fi.iter().zip(w.chunks(d)) {
                    row.iter_mut().zip(wr).for_each(|(o, &wv)| *o += scale * fr * wv);
                }
            }
        }
        let mut data: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        for row in data.chunks_mut(d) {
            if m == 0 {
                row.iter_mut().for_each(|v| *v = v.max(0.0));
            } else {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        out.push(FeatureMatrix { rows: n, cols: d, data });
    }
    let t = out.pop().unwrap();
    let v = out.pop().unwrap();
    [v, t]
}

/// Threads of the pool [`train_item_factors`] runs in, whatever the machine has.
///
/// faer's blocked QR splits its work by the calling pool's thread count, and the split changes
/// the round-off: real Baby's planted `image_feat.npy` differed between one thread and two. A
/// fixed pool makes the files the same whatever the thread count (on the same kind of CPU: faer
/// picks its AVX-512 or AVX2 kernels at run time); two is the count every published folder was
/// generated with (the project's 2-core machines), so their bytes stay.
const FACTOR_THREADS: usize = 2;

fn in_fixed_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new().num_threads(FACTOR_THREADS).build() {
        Ok(pool) => pool.install(f),
        Err(e) => {
            eprintln!(
                "warning: no pool of {FACTOR_THREADS} threads ({e}): the planted features' round-off follows this \
                 process's thread count"
            );
            f()
        }
    }
}

/// Standardised item factors `[n_items, rank]` (row-major) from the training pairs only.
fn train_item_factors(ds: &super::Dataset, rank: usize, seed: u64) -> Vec<f64> {
    use faer::Mat;
    let (m, n) = (ds.n_users, ds.n_items);
    let (mut du, mut di) = (vec![0f64; m], vec![0f64; n]);
    for &(u, i) in &ds.train {
        du[u as usize] += 1.0;
        di[i as usize] += 1.0;
    }
    let w: Vec<f64> = ds.train.iter().map(|&(u, i)| 1.0 / (du[u as usize] * di[i as usize]).sqrt()).collect();
    // y = ÃᵀÃ x for x [N, r], through the pair list (no matrix built).
    let apply = |x: &Mat<f64>| -> Mat<f64> {
        let mut ax = Mat::<f64>::zeros(m, x.ncols());
        for (&(u, i), &wv) in ds.train.iter().zip(&w) {
            for c in 0..x.ncols() {
                ax[(u as usize, c)] += wv * x[(i as usize, c)];
            }
        }
        let mut y = Mat::<f64>::zeros(n, x.ncols());
        for (&(u, i), &wv) in ds.train.iter().zip(&w) {
            for c in 0..x.ncols() {
                y[(i as usize, c)] += wv * ax[(u as usize, c)];
            }
        }
        y
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xfac7);
    // Fewer items than the rank: the extra factor columns stay zero.
    let r = rank.min(n);
    let mut q = Mat::<f64>::from_fn(n, r, |_, _| rng.random::<f64>() - 0.5);
    for _ in 0..8 {
        q = apply(&q).qr().compute_thin_Q();
    }
    let y = apply(&q);
    // Column c of ÃᵀÃ q ≈ λ_c q_c: scale by sqrt(λ_c), then standardise over items.
    let mut f = vec![0f64; n * rank];
    for c in 0..r {
        let lam: f64 = (0..n).map(|i| q[(i, c)] * y[(i, c)]).sum::<f64>().max(0.0);
        let col: Vec<f64> = (0..n).map(|i| q[(i, c)] * lam.sqrt()).collect();
        let mean = col.iter().sum::<f64>() / n as f64;
        let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt().max(1e-12);
        for i in 0..n {
            f[i * rank + c] = if di[i] > 0.0 { (col[i] - mean) / sd } else { 0.0 };
        }
    }
    f
}

/// Writes `features.json`, which marks the folder's feature files as generated.
pub fn write_marker(dir: &Path, what: &str) -> Result<()> {
    let v = serde_json::json!({ "generated": true, "what": what });
    write_string_atomic(&dir.join(super::GENERATED_MARKER), &serde_json::to_string_pretty(&v).expect("json"))
}
