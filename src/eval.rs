//! Full-ranking evaluation: every item scored for every evaluated user, the user's training
//! items masked, top-K taken, and Recall, NDCG, Precision and MAP at each K.
//!
//! Definitions (../shared/notes/protocol.md), with P the user's held-out items and
//! `hit_k` = 1 if rank k holds an item of P:
//! - Recall@K = hits / |P|
//! - NDCG@K = DCG / IDCG, DCG = Σ_{k≤K} hit_k / log2(k+1), IDCG = Σ_{k≤min(|P|,K)} 1 / log2(k+1)
//! - Precision@K = hits / K
//! - MAP@K = (1 / min(|P|, K)) Σ_{k≤K} Precision@k · hit_k
//!
//! each averaged over users with at least one held-out item. Ties in score are broken by the
//! smaller item id; NaN scores rank last. Scoring runs in user blocks, so the full
//! `[users, items]` score matrix is never held in memory.

use rayon::prelude::*;
use std::collections::BTreeMap;

/// The default cut-offs.
pub const DEFAULT_KS: [usize; 4] = [5, 10, 20, 50];

/// Metric values at each K.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    pub ks: Vec<usize>,
    pub recall: Vec<f64>,
    pub ndcg: Vec<f64>,
    pub precision: Vec<f64>,
    pub map: Vec<f64>,
    /// Users evaluated (those with at least one held-out item).
    pub users: usize,
}

impl Metrics {
    /// The value of `name` ("recall", "ndcg", "precision", "map") at `k`.
    pub fn get(&self, name: &str, k: usize) -> Option<f64> {
        let idx = self.ks.iter().position(|&x| x == k)?;
        match name {
            "recall" => Some(self.recall[idx]),
            "ndcg" => Some(self.ndcg[idx]),
            "precision" => Some(self.precision[idx]),
            "map" => Some(self.map[idx]),
            _ => None,
        }
    }

    /// `{"recall@20": 0.1, ...}` for logs and JSON.
    pub fn to_map(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        for (k, &kk) in self.ks.iter().enumerate() {
            m.insert(format!("recall@{kk}"), self.recall[k]);
            m.insert(format!("ndcg@{kk}"), self.ndcg[k]);
            m.insert(format!("precision@{kk}"), self.precision[k]);
            m.insert(format!("map@{kk}"), self.map[k]);
        }
        m
    }

    /// One line: `R@10 0.0512 R@20 0.0803 N@10 ... N@20 ...` for the Ks present.
    /// Without K = 10 or 20 among the cut-offs, every K is shown.
    pub fn summary(&self) -> String {
        let mut s = Vec::new();
        let usual = self.ks.iter().any(|&k| k == 10 || k == 20);
        for (name, v) in [("R", &self.recall), ("N", &self.ndcg)] {
            for (k, &kk) in self.ks.iter().enumerate() {
                if !usual || kk == 10 || kk == 20 {
                    s.push(format!("{name}@{kk} {:.4}", v[k]));
                }
            }
        }
        s.join(" ")
    }
}

/// Users to evaluate and their held-out items.
#[derive(Clone, Debug)]
pub struct EvalSet {
    pub users: Vec<u32>,
    /// Sorted held-out items of `users[k]`.
    pub heldout: Vec<Vec<u32>>,
}

impl EvalSet {
    /// Groups held-out pairs by user; users without held-out items are skipped.
    pub fn from_pairs(n_users: usize, pairs: &[(u32, u32)]) -> Self {
        let grouped = crate::data::group(n_users, pairs);
        let (users, heldout) =
            grouped.into_iter().enumerate().filter(|(_, v)| !v.is_empty()).map(|(u, v)| (u as u32, v)).unzip();
        Self { users, heldout }
    }
}

/// What ranking skips: each user's training items (`train[u]`, sorted) and the ids that are no
/// item (`absent`, sorted: [`crate::data::Dataset::absent_items`]), which no user is ever offered.
#[derive(Clone, Copy, Debug)]
pub struct Mask<'a> {
    pub train: &'a [Vec<u32>],
    pub absent: &'a [u32],
}

impl<'a> Mask<'a> {
    pub fn new(train: &'a [Vec<u32>], absent: &'a [u32]) -> Self {
        Self { train, absent }
    }

    /// Training items only (every id is an item).
    pub fn train_only(train: &'a [Vec<u32>]) -> Self {
        Self { train, absent: &[] }
    }

    /// User `u`'s two sorted skip lists.
    pub fn user(&self, u: u32) -> (&'a [u32], &'a [u32]) {
        (&self.train[u as usize], self.absent)
    }

    /// User `u`'s skip lists merged into one sorted list.
    pub fn merged(&self, u: u32) -> Vec<u32> {
        let (a, b) = self.user(u);
        let mut m = Vec::with_capacity(a.len() + b.len());
        m.extend_from_slice(a);
        m.extend_from_slice(b);
        m.sort_unstable();
        m.dedup();
        m
    }
}

/// Score key: higher is better, NaN lowest.
#[inline]
fn key(s: f32) -> f32 {
    if s.is_nan() {
        f32::NEG_INFINITY
    } else {
        s
    }
}

/// `a` ranks before `b`: higher score, then smaller item id.
#[inline]
fn before(a: (f32, u32), b: (f32, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// The top `k` items of one user's `scores` `[N]`, best first, skipping the sorted `masked`
/// items. Fewer than k if fewer items are left.
pub fn top_k(scores: &[f32], masked: &[u32], k: usize) -> Vec<u32> {
    top_k_outside(scores, masked, &[], k)
}

/// [`top_k`] skipping the items of two sorted lists (a user's training items and the absent
/// ids of [`Mask`]).
pub fn top_k_outside(scores: &[f32], masked: &[u32], absent: &[u32], k: usize) -> Vec<u32> {
    // A sorted buffer of the best k so far; an insertion sort is fast for k ≤ 50 because most
    // items fail the comparison with the current k-th.
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    let (mut mi, mut ai) = (0, 0);
    for (i, &s) in scores.iter().enumerate() {
        let i = i as u32;
        while mi < masked.len() && masked[mi] < i {
            mi += 1;
        }
        while ai < absent.len() && absent[ai] < i {
            ai += 1;
        }
        if (mi < masked.len() && masked[mi] == i) || (ai < absent.len() && absent[ai] == i) {
            continue;
        }
        let c = (key(s), i);
        if best.len() == k {
            if k == 0 || !before(c, best[k - 1]) {
                continue;
            }
            best.pop();
        }
        let pos = best.partition_point(|&b| before(b, c));
        best.insert(pos, c);
    }
    best.into_iter().map(|(_, i)| i).collect()
}

/// Per-user metric sums at each K from one ranking (best first) and the sorted held-out set.
fn accumulate(ranking: &[u32], heldout: &[u32], ks: &[usize], acc: &mut [[f64; 4]]) {
    let p = heldout.len() as f64;
    let mut hits = 0.0;
    let mut dcg = 0.0;
    let mut ap = 0.0;
    let mut next = 0;
    let kmax = *ks.iter().max().unwrap_or(&0);
    for rank in 1..=kmax {
        if let Some(&item) = ranking.get(rank - 1) {
            if heldout.binary_search(&item).is_ok() {
                hits += 1.0;
                dcg += 1.0 / ((rank + 1) as f64).log2();
                ap += hits / rank as f64;
            }
        }
        while next < ks.len() && ks[next] == rank {
            let k = rank as f64;
            let ideal: f64 = (1..=heldout.len().min(rank)).map(|r| 1.0 / ((r + 1) as f64).log2()).sum();
            acc[next][0] += hits / p;
            acc[next][1] += dcg / ideal;
            acc[next][2] += hits / k;
            acc[next][3] += ap / p.min(k);
            next += 1;
        }
    }
}

/// Metrics from precomputed rankings (`rankings[k]` for `set.users[k]`, best first, at least
/// max(ks) long unless fewer items exist).
pub fn metrics_from_rankings(rankings: &[Vec<u32>], set: &EvalSet, ks: &[usize]) -> Metrics {
    let mut sorted_ks = ks.to_vec();
    sorted_ks.sort_unstable();
    sorted_ks.dedup();
    // Per-user values in parallel, summed in user order: the same result for any schedule.
    let per_user: Vec<Vec<[f64; 4]>> = rankings
        .par_iter()
        .zip(&set.heldout)
        .map(|(r, h)| {
            let mut acc = vec![[0.0; 4]; sorted_ks.len()];
            accumulate(r, h, &sorted_ks, &mut acc);
            acc
        })
        .collect();
    let mut acc = vec![[0.0; 4]; sorted_ks.len()];
    for u in &per_user {
        for (x, y) in acc.iter_mut().zip(u) {
            for t in 0..4 {
                x[t] += y[t];
            }
        }
    }
    let n = set.users.len().max(1) as f64;
    let col = |t: usize| acc.iter().map(|a| a[t] / n).collect();
    Metrics { ks: sorted_ks, recall: col(0), ndcg: col(1), precision: col(2), map: col(3), users: set.users.len() }
}

/// Ranks every user of `set`: `score_block(users, out)` fills `out` `[users.len(), n_items]`
/// (row-major) with scores; training items and absent ids (`mask`) are excluded; returns the
/// top `k` of each user. Memory: one `[block, n_items]` buffer.
pub fn rank_users(
    set: &EvalSet,
    mask: Mask<'_>,
    n_items: usize,
    k: usize,
    block: usize,
    mut score_block: impl FnMut(&[u32], &mut [f32]),
) -> Vec<Vec<u32>> {
    let block = block.max(1);
    let mut out = Vec::with_capacity(set.users.len());
    let mut buf = vec![0.0f32; block * n_items];
    for users in set.users.chunks(block) {
        let scores = &mut buf[..users.len() * n_items];
        score_block(users, scores);
        let ranked: Vec<Vec<u32>> = users
            .par_iter()
            .zip(scores.par_chunks(n_items))
            .map(|(&u, s)| {
                let (t, a) = mask.user(u);
                top_k_outside(s, t, a, k)
            })
            .collect();
        out.extend(ranked);
    }
    out
}

/// [`rank_users`] with an engine's own ranking ([`crate::engine::Engine::rank_block`]): the
/// users of `set` in blocks of `block`, the top `k` of each outside `mask`; the engine's
/// error (a failed device op) if any.
pub fn rank_users_with(
    set: &EvalSet,
    mask: Mask<'_>,
    n_items: usize,
    k: usize,
    block: usize,
    engine: &dyn crate::engine::Engine,
) -> crate::error::Result<Vec<Vec<u32>>> {
    let mut out = Vec::with_capacity(set.users.len());
    for users in set.users.chunks(block.max(1)) {
        out.extend(engine.rank_block(users, mask, n_items, k)?);
    }
    Ok(out)
}

/// [`rank_users_with`] then [`metrics_from_rankings`]: how training and `crane eval` evaluate.
pub fn evaluate_engine(
    set: &EvalSet,
    mask: Mask<'_>,
    n_items: usize,
    ks: &[usize],
    block: usize,
    engine: &dyn crate::engine::Engine,
) -> crate::error::Result<Metrics> {
    let kmax = *ks.iter().max().unwrap_or(&20);
    Ok(metrics_from_rankings(&rank_users_with(set, mask, n_items, kmax, block, engine)?, set, ks))
}

/// MMRec's `save_recommended_topk` layout: a header `id top_1 ... top_K`, then one line per
/// user with the original user id and the top-K item ids, tab-separated. `user` and `item`
/// give the original ids (reviewer ids and ASINs when the dataset has mapping files). A user
/// with fewer than K candidates left gets empty trailing fields (see [`short_rankings`]).
pub fn topk_tsv(
    users: &[u32],
    rankings: &[Vec<u32>],
    user: impl Fn(u32) -> String,
    item: impl Fn(u32) -> String,
    k: usize,
) -> String {
    let mut s = String::from("id");
    for r in 1..=k {
        s.push_str(&format!("\ttop_{r}"));
    }
    s.push('\n');
    for (&u, r) in users.iter().zip(rankings) {
        s.push_str(&user(u));
        for &i in r.iter().take(k) {
            s.push('\t');
            s.push_str(&item(i));
        }
        // Fewer than k candidates left: empty fields keep every row as wide as the header.
        for _ in r.len().min(k)..k {
            s.push('\t');
        }
        s.push('\n');
    }
    s
}

/// How many of `rankings` are shorter than `k` (users with fewer than k candidates left).
pub fn short_rankings(rankings: &[Vec<u32>], k: usize) -> usize {
    rankings.iter().filter(|r| r.len() < k).count()
}

/// [`rank_users`] then [`metrics_from_rankings`].
pub fn evaluate(
    set: &EvalSet,
    mask: Mask<'_>,
    n_items: usize,
    ks: &[usize],
    block: usize,
    score_block: impl FnMut(&[u32], &mut [f32]),
) -> Metrics {
    let kmax = *ks.iter().max().unwrap_or(&20);
    let rankings = rank_users(set, mask, n_items, kmax, block, score_block);
    metrics_from_rankings(&rankings, set, ks)
}
