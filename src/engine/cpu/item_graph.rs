//! Eq. (14)-(16) on the CPU. The cosine matrix is computed in row blocks with a streaming
//! top-k per row (never `[N, N]` at once); its backward touches only the N·k retained entries.

use super::ops::{dot, Csr, Dense};
use crate::error::{CraneError, Result};
use faer::mat::{MatMut, MatRef};
use faer::{Accum, Par};
use rayon::prelude::*;

/// Unit rows and norms of `x` `[N, c]`.
pub struct Unit {
    pub y: Dense,
    pub norms: Vec<f32>,
}

pub fn unit_rows(x: &Dense) -> Result<Unit> {
    let norms: Vec<f32> = (0..x.rows).map(|i| dot(x.row(i), x.row(i)).sqrt()).collect();
    if let Some(i) = norms.iter().position(|&v| v.is_nan() || v <= 1e-12) {
        return Err(CraneError::Invalid(format!("Eq. (14): item {i} has a zero feature row (cosine undefined)")));
    }
    let mut y = x.clone();
    y.data.par_chunks_mut(x.cols).zip(&norms).for_each(|(r, &n)| r.iter_mut().for_each(|v| *v /= n));
    Ok(Unit { y, norms })
}

/// The kNN graph S̃ `[N, N]` (k entries per row, columns ascending) and what its backward needs.
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
/// per row (ties to the smaller index, as the reference), clamp at 0, row-normalise.
pub fn knn(units: &[(&Unit, f32)], k: usize, block: usize) -> Result<KnnGraph> {
    let n = units[0].0.y.rows;
    if k == 0 || k > n {
        return Err(CraneError::config("knn_k", format!("must be in 1..={n}, got {k}")));
    }
    let block = block.clamp(1, n);
    let mut idx = vec![0u32; n * k];
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
                let mut top = crate::eval::top_k(row, &[], k);
                top.sort_unstable();
                for (q, &j) in top.iter().enumerate() {
                    ix[q] = j;
                    rv[q] = row[j as usize];
                }
            });
    }
    from_topk(n, k, idx, raw)
}

/// The clamp and row normalisation of Eq. (14) on each row's k retained similarities `raw`
/// (columns `idx`, ascending within each row), shared by the CPU and GPU engines.
pub fn from_topk(n: usize, k: usize, idx: Vec<u32>, raw: Vec<f32>) -> Result<KnnGraph> {
    let mut vals = vec![0f32; n * k];
    let mut row_sums = vec![0f32; n];
    for i in 0..n {
        let sum: f32 = raw[i * k..(i + 1) * k].iter().map(|v| v.max(0.0)).sum();
        if sum.is_nan() || sum <= 0.0 {
            return Err(CraneError::Invalid(format!(
                "Eq. (14): item {i} has no positive similarity among its top {k}"
            )));
        }
        row_sums[i] = sum;
        for q in 0..k {
            vals[i * k + q] = raw[i * k + q].max(0.0) / sum;
        }
    }
    let s = Csr { rows: n, cols: n, offsets: (0..=n).map(|i| i * k).collect(), idx, vals };
    let (s_t, perm) = s.transpose_with_perm();
    Ok(KnnGraph { s, s_t, perm, retained: raw, row_sums })
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
            // Through the normalisation y = x/‖x‖ (norms > 1e-12, checked by unit_rows).
            super::ops::unit_rows_backward(&u.y, &u.norms, &mut dy);
            dy
        })
        .collect()
}

/// The backward of Eq. (14)'s clamp and row normalisation: the gradient of the raw retained
/// similarities from `dS̃` values, in S̃'s entry order and in S̃ᵀ's.
pub fn knn_ds(g: &KnnGraph, d_vals: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let n = g.s.rows;
    let k = g.s.nnz().checked_div(n).unwrap_or(0);
    let mut ds = vec![0f32; n * k];
    ds.par_chunks_mut(k.max(1)).enumerate().for_each(|(i, out)| {
        let r = i * k..(i + 1) * k;
        let mean: f32 = g.s.vals[r.clone()].iter().zip(&d_vals[r.clone()]).map(|(a, b)| a * b).sum();
        for q in 0..k {
            let e = i * k + q;
            out[q] = if g.retained[e] > 0.0 { (d_vals[e] - mean) / g.row_sums[i] } else { 0.0 };
        }
    });
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

/// Backward of [`propagate`]: `(dh^(0), dS̃ values)`.
pub fn propagate_backward(g: &KnnGraph, hs: &[Dense], d_h: &Dense) -> (Dense, Vec<f32>) {
    let mut d_vals = vec![0f32; g.s.nnz()];
    let mut d = d_h.clone();
    for l in (0..hs.len() - 1).rev() {
        let prev = &hs[l];
        let dd = &d;
        let add: Vec<f32> = (0..g.s.rows)
            .into_par_iter()
            .flat_map_iter(|i| {
                (g.s.offsets[i]..g.s.offsets[i + 1]).map(move |e| dot(dd.row(i), prev.row(g.s.idx[e] as usize)))
            })
            .collect();
        d_vals.iter_mut().zip(add).for_each(|(a, b)| *a += b);
        // S̃ᵀ was built with S̃'s values, which never change after `knn`.
        d = g.s_t.spmm(&d);
    }
    (d, d_vals)
}
