//! Eq. (14)-(16) on the CPU. The cosine matrix is computed in row blocks with a streaming
//! top-k per row (never `[N, N]` at once); its backward touches only the N·k retained entries.

use super::ops::{dot, Csr, Dense};
use crate::error::{CraneError, Result};
use faer::mat::{MatMut, MatRef};
use faer::{Accum, Par};
use rayon::prelude::*;

/// A row whose norm is at most this is a zero row (`crane_reference::item_graph::MIN_ROW_NORM`):
/// cosine 0 with every item, nobody's kNN neighbour, an empty kNN row of its own.
pub const MIN_ROW_NORM: f32 = 1e-12;

/// Unit rows and norms of `x` `[N, c]`; a zero row's unit row is 0.
pub struct Unit {
    pub y: Dense,
    pub norms: Vec<f32>,
}

impl Unit {
    /// Whether row `i` is a zero row ([`MIN_ROW_NORM`]).
    pub fn is_zero(&self, i: usize) -> bool {
        self.norms[i] <= MIN_ROW_NORM
    }
}

pub fn unit_rows(x: &Dense) -> Result<Unit> {
    let norms: Vec<f32> = (0..x.rows).map(|i| dot(x.row(i), x.row(i)).sqrt()).collect();
    if let Some(i) = norms.iter().position(|v| !v.is_finite()) {
        return Err(CraneError::Invalid(format!("Eq. (14): item {i} has a non-finite row (norm {})", norms[i])));
    }
    let mut y = x.clone();
    y.data.par_chunks_mut(x.cols.max(1)).zip(&norms).for_each(|(r, &n)| {
        if n <= MIN_ROW_NORM {
            r.fill(0.0);
        } else {
            r.iter_mut().for_each(|v| *v /= n);
        }
    });
    Ok(Unit { y, norms })
}

/// The items that take part in the kNN graph: those with a non-zero row in at least one of
/// `units` (for CRANE-A's two, `S_jj = ½‖y_v‖² + ½‖y_t‖² > 0`, as the reference's rule).
pub fn eligible(units: &[&Unit]) -> Vec<bool> {
    let n = units[0].norms.len();
    (0..n).map(|j| units.iter().any(|u| !u.is_zero(j))).collect()
}

/// The kNN graph S̃ `[N, N]` (k entries per row, columns ascending; an ineligible item's row is
/// empty and fewer than k eligible items leave fewer entries) and what its backward needs.
#[derive(Clone, Debug)]
pub struct KnnGraph {
    pub s: Csr,
    /// S̃ᵀ and the map from its entries to S̃'s.
    pub s_t: Csr,
    pub perm: Vec<usize>,
    /// Raw retained similarities (before the clamp) and the clamped row sums.
    pub retained: Vec<f32>,
    pub row_sums: Vec<f32>,
}

/// Eq. (14): `S = Σ_t w_t Y_t Y_tᵀ` (one term: cosine; two terms with w = ½: CRANE-A), top-k
/// per row (ties to the smaller index, as the reference), clamp at 0, row-normalise. Zero rows
/// ([`eligible`]) are masked out of every row's top-k and get an empty row.
pub fn knn(units: &[(&Unit, f32)], k: usize, block: usize) -> Result<KnnGraph> {
    let n = units[0].0.y.rows;
    if k == 0 || k > n {
        return Err(CraneError::config("knn_k", format!("must be in 1..={n}, got {k}")));
    }
    let ok = eligible(&units.iter().map(|u| u.0).collect::<Vec<_>>());
    let masked: Vec<u32> = (0..n as u32).filter(|&j| !ok[j as usize]).collect();
    let block = block.clamp(1, n);
    let mut idx = vec![u32::MAX; n * k];
    let mut raw = vec![0f32; n * k];
    let mut buf = vec![0f32; block * n];
    for s in (0..n).step_by(block) {
        let e = (s + block).min(n);
        let b = e - s;
        for (t, (u, w)) in units.iter().enumerate() {
            let ys = MatRef::from_row_major_slice(&u.y.data[s * u.y.cols..e * u.y.cols], b, u.y.cols);
            let dst = MatMut::from_row_major_slice_mut(&mut buf[..b * n], b, n);
            let acc = if t == 0 { Accum::Replace } else { Accum::Add };
            faer::linalg::matmul::matmul(dst, acc, ys, u.y.view().transpose(), *w, Par::rayon(0));
        }
        idx[s * k..e * k]
            .par_chunks_mut(k)
            .zip(raw[s * k..e * k].par_chunks_mut(k))
            .zip(buf[..b * n].par_chunks(n))
            .for_each(|((ix, rv), row)| {
                let mut top = crate::eval::top_k(row, &masked, k);
                top.sort_unstable();
                for (q, &j) in top.iter().enumerate() {
                    ix[q] = j;
                    rv[q] = row[j as usize];
                }
            });
    }
    from_topk(n, k, idx, raw, &ok)
}

/// The clamp and row normalisation of Eq. (14) on each row's k top similarities `raw`
/// (columns `idx`, ascending within each row), shared by the CPU and GPU engines. Entries
/// whose column is not `eligible` (or `u32::MAX`: a row with fewer candidates than k) are
/// dropped, and an ineligible item's row is empty. An eligible row's largest value is at least
/// its own item's similarity, 1 (½ for CRANE-A), so its sum is positive: no division by 0.
pub fn from_topk(n: usize, k: usize, idx: Vec<u32>, raw: Vec<f32>, eligible: &[bool]) -> Result<KnnGraph> {
    let (mut offsets, mut cols, mut kept) =
        (Vec::with_capacity(n + 1), Vec::with_capacity(n * k), Vec::with_capacity(n * k));
    let mut vals = Vec::with_capacity(n * k);
    let mut row_sums = vec![0f32; n];
    offsets.push(0);
    for i in 0..n {
        if eligible[i] {
            let start = cols.len();
            for q in i * k..(i + 1) * k {
                if eligible.get(idx[q] as usize).copied().unwrap_or(false) {
                    cols.push(idx[q]);
                    kept.push(raw[q]);
                }
            }
            // `max(0)` would turn a NaN into a silent 0 (the sum could never be NaN).
            if kept[start..].iter().any(|v| v.is_nan()) {
                return Err(CraneError::Invalid(format!(
                    "Eq. (14): item {i} has a NaN similarity among its top {k} (non-finite parameters or features)"
                )));
            }
            let sum: f32 = kept[start..].iter().map(|v| v.max(0.0)).sum();
            row_sums[i] = sum;
            vals.extend(kept[start..].iter().map(|v| v.max(0.0) / sum));
        }
        offsets.push(cols.len());
    }
    let s = Csr { rows: n, cols: n, offsets, idx: cols, vals };
    let (s_t, perm) = s.transpose_with_perm();
    Ok(KnnGraph { s, s_t, perm, retained: kept, row_sums })
}

/// FREEDOM's frozen graph from the raw features `[N, d_m]` (see
/// `crane_reference::item_graph::raw_feature_graph`): each modality's top-k cosine index set
/// (the streaming [`knn`]) with every entry `1/k`, weighted `w` (image) and `1 − w` (text);
/// a modality with no columns gives its weight to the other. Never `[N, N]` in memory.
pub fn raw_feature_graph(feats: &[Dense; 2], k: usize, image_weight: f64, block: usize) -> Result<KnnGraph> {
    let n = feats[0].rows;
    let present: Vec<usize> = (0..2).filter(|&m| feats[m].cols > 0).collect();
    if present.is_empty() {
        return Err(CraneError::config(
            "item_graph_source",
            "raw_features needs image or text features; neither is present",
        ));
    }
    let mut rows: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n];
    for &m in &present {
        let w = match (present.len(), m) {
            (1, _) => 1.0,
            (_, 0) => image_weight,
            _ => 1.0 - image_weight,
        };
        let g = knn(&[(&unit_rows(&feats[m])?, 1.0)], k, block)?;
        for (i, row) in rows.iter_mut().enumerate() {
            row.extend(g.s.row(i).0.iter().map(|&j| (j, w / k as f64)));
        }
    }
    let (mut offsets, mut idx, mut vals) = (vec![0], Vec::new(), Vec::new());
    for mut row in rows {
        row.sort_by_key(|e| e.0);
        let mut q = 0;
        while q < row.len() {
            let (j, mut v) = row[q];
            q += 1;
            while q < row.len() && row[q].0 == j {
                v += row[q].1;
                q += 1;
            }
            if v != 0.0 {
                idx.push(j);
                vals.push(v as f32);
            }
        }
        offsets.push(idx.len());
    }
    let s = Csr { rows: n, cols: n, offsets, idx, vals };
    let (s_t, perm) = s.transpose_with_perm();
    Ok(KnnGraph { s, s_t, perm, retained: Vec::new(), row_sums: Vec::new() })
}

/// A frozen, parameter-free graph given as CSR (FREEDOM's graph read from kNN files,
/// `ItemGraphSource::Files`), held as [`raw_feature_graph`] holds its own.
pub fn frozen_graph(s: &nalgebra_sparse::CsrMatrix<f64>) -> KnnGraph {
    let s = Csr::from_nalgebra(s);
    let (s_t, perm) = s.transpose_with_perm();
    KnnGraph { s, s_t, perm, retained: Vec::new(), row_sums: Vec::new() }
}

/// Backward of [`knn`]: the gradient of each input's unit rows, from `dS̃` values.
pub fn knn_backward(g: &KnnGraph, units: &[(&Unit, f32)], d_vals: &[f32]) -> Vec<Dense> {
    let n = g.s.rows;
    let (ds, ds_t) = knn_ds(g, d_vals);
    units
        .iter()
        .map(|(u, w)| {
            let c = u.y.cols;
            let mut dy = Dense::zeros(n, c);
            dy.data.par_chunks_mut(c.max(1)).enumerate().for_each(|(i, out)| {
                // Row i as the left factor (S_ij) and as the right factor (S_ji).
                for e in g.s.offsets[i]..g.s.offsets[i + 1] {
                    let j = g.s.idx[e] as usize;
                    out.iter_mut().zip(u.y.row(j)).for_each(|(o, y)| *o += w * ds[e] * y);
                }
                for e in g.s_t.offsets[i]..g.s_t.offsets[i + 1] {
                    let j = g.s_t.idx[e] as usize;
                    out.iter_mut().zip(u.y.row(j)).for_each(|(o, y)| *o += w * ds_t[e] * y);
                }
            });
            // Through the normalisation y = x/‖x‖. A zero row is in no entry of S̃ or S̃ᵀ, so
            // its dy is 0; it gets no gradient (its similarities are the constant 0).
            super::ops::unit_rows_backward(&u.y, &u.norms, &mut dy);
            for i in (0..n).filter(|&i| u.is_zero(i)) {
                dy.data[i * c..(i + 1) * c].fill(0.0);
            }
            dy
        })
        .collect()
}

/// The backward of Eq. (14)'s clamp and row normalisation: the gradient of the raw retained
/// similarities from `dS̃` values, in S̃'s entry order and in S̃ᵀ's.
pub fn knn_ds(g: &KnnGraph, d_vals: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let ds: Vec<f32> = (0..g.s.rows)
        .into_par_iter()
        .flat_map_iter(|i| {
            let r = g.s.offsets[i]..g.s.offsets[i + 1];
            let mean: f32 = g.s.vals[r.clone()].iter().zip(&d_vals[r.clone()]).map(|(a, b)| a * b).sum();
            r.map(move |e| if g.retained[e] > 0.0 { (d_vals[e] - mean) / g.row_sums[i] } else { 0.0 })
        })
        .collect();
    let ds_t: Vec<f32> = g.perm.iter().map(|&e| ds[e]).collect();
    (ds, ds_t)
}

/// Eq. (15): `h^(l+1) = S̃ h^(l)`; every layer returned.
pub fn propagate(g: &KnnGraph, h0: &Dense, layers: usize) -> Vec<Dense> {
    let mut hs = vec![h0.clone()];
    for _ in 0..layers {
        let next = g.s.spmm(hs.last().unwrap());
        hs.push(next);
    }
    hs
}

/// Backward of [`propagate`]: `(dh^(0), dS̃ values)`; the values only with `graph_grad` (a
/// held or frozen S̃ gets no gradient, and skipping them is most of this backward's time
/// when the features are narrow, as TikTok's).
pub fn propagate_backward(g: &KnnGraph, hs: &[Dense], d_h: &Dense, graph_grad: bool) -> (Dense, Vec<f32>) {
    let mut d_vals = if graph_grad { vec![0f32; g.s.nnz()] } else { Vec::new() };
    let mut d = d_h.clone();
    for l in (0..hs.len() - 1).rev() {
        let prev = &hs[l];
        let dd = &d;
        if graph_grad {
            let add: Vec<f32> = (0..g.s.rows)
                .into_par_iter()
                .flat_map_iter(|i| {
                    (g.s.offsets[i]..g.s.offsets[i + 1]).map(move |e| dot(dd.row(i), prev.row(g.s.idx[e] as usize)))
                })
                .collect();
            d_vals.iter_mut().zip(add).for_each(|(a, b)| *a += b);
        }
        // S̃ᵀ was built with S̃'s values, which never change after `knn`.
        d = g.s_t.spmm(&d);
    }
    (d, d_vals)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eq. (14)'s normalisation of the kept top-k (n = 2, k = 2): a NaN among them is refused
    /// naming the item, not turned into a 0 weight; a finite row is clamped and normalised.
    #[test]
    fn from_topk_normalises_kept_rows_and_refuses_a_nan() {
        let g = from_topk(2, 2, vec![0, 1, 0, 1], vec![1.0, -0.5, 0.25, 0.75], &[true, true]).unwrap();
        assert_eq!((g.s.vals.clone(), g.row_sums.clone()), (vec![1.0, 0.0, 0.25, 0.75], vec![1.0, 1.0]));
        let e = from_topk(2, 2, vec![0, 1, 0, 1], vec![1.0, 0.5, f32::NAN, 1.0], &[true, true]).err().unwrap();
        assert!(e.to_string().contains("item 1 has a NaN similarity"), "{e}");
    }
}
