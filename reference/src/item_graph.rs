//! The item-item semantic graph G_II and the final representations: Eq. (14)-(17).
//!
//! Notation: X_att `[N, c]` the item rows of Eq. (13) (or of a Fig. 4 fusion variant), S
//! `[N, N]` the cosine similarities, S̃ `[N, N]` the sparse row-normalised top-k graph (CSR,
//! k entries per row, the item itself included), h `[N, d]` the propagated item embeddings,
//! h_u `[M, d]` the users' semantic profiles, z = e + h `[M+N, d]`.

use crate::dense::{mm, row_dot, spmm, spmm_t};
use crate::interaction_graph::{aggregate, aggregate_backward};
use crate::RefError;
use faer::Mat;
use nalgebra_sparse::CsrMatrix;

/// A row whose norm is at most this is a **zero row** (in practice: all zeros, e.g. an item
/// without a picture). Its cosine with every item, itself included, is defined as 0: its unit
/// row is 0, it is nobody's kNN neighbour and its own kNN row is empty (see [`knn_graph`]).
pub const MIN_ROW_NORM: f64 = 1e-12;

/// Whether a row of this norm is a zero row ([`MIN_ROW_NORM`]).
pub fn is_zero_row(norm: f64) -> bool {
    norm <= MIN_ROW_NORM
}

/// Saved values of [`cosine_similarity`].
#[derive(Clone, Debug)]
pub struct CosineCache {
    /// `‖x_i‖` `[N]`.
    pub norms: Vec<f64>,
    /// Unit rows `y_i = x_i / ‖x_i‖` `[N, c]`; `y_i = 0` for a zero row.
    pub unit: Mat<f64>,
}

/// Eq. (14): `S_ij = x_iᵀ x_j / (‖x_i‖ ‖x_j‖)`, `[N, c] -> [N, N]`. A zero row
/// ([`MIN_ROW_NORM`]) has unit row 0, so its row and column of S are 0 (`S_ii = 0` too, which
/// is how [`knn_graph`] recognises it). A NaN row is an error.
pub fn cosine_similarity(x: &Mat<f64>) -> Result<(Mat<f64>, CosineCache), RefError> {
    let n = x.nrows();
    let norms: Vec<f64> = (0..n).map(|i| row_dot(x, i, x, i).sqrt()).collect();
    if let Some(i) = norms.iter().position(|v| !v.is_finite()) {
        return Err(RefError::Numeric(format!("Eq. (14): row {i} of X_att has norm {} (not finite)", norms[i])));
    }
    let unit = Mat::from_fn(n, x.ncols(), |i, j| if is_zero_row(norms[i]) { 0.0 } else { x[(i, j)] / norms[i] });
    let s = &unit * unit.transpose();
    Ok((s, CosineCache { norms, unit }))
}

/// Backward of [`cosine_similarity`]: `dX` `[N, c]` from `dS` `[N, N]`. A zero row gets no
/// gradient (its similarities are the constant 0), and sends none to the other rows (its unit
/// row is 0).
pub fn cosine_similarity_backward(cache: &CosineCache, d_s: &Mat<f64>) -> Mat<f64> {
    let sym = Mat::from_fn(d_s.nrows(), d_s.ncols(), |i, j| d_s[(i, j)] + d_s[(j, i)]);
    let d_unit = mm(&sym, &cache.unit);
    let y = &cache.unit;
    Mat::from_fn(y.nrows(), y.ncols(), |i, j| {
        if is_zero_row(cache.norms[i]) {
            return 0.0;
        }
        let radial = row_dot(&d_unit, i, y, i);
        (d_unit[(i, j)] - radial * y[(i, j)]) / cache.norms[i]
    })
}

/// FREEDOM's frozen item graph (not a paper equation; the `freedom` baseline):
/// `S = w·B_v/k + (1−w)·B_t/k` with `B_m` the binary top-k cosine graph of the raw features
/// `[N, d_m]` (the item itself included, ties to the smaller id). A modality with no columns
/// is absent and gives its weight to the other. A zero row of a modality (an item without a
/// picture) is a neighbour of no item in that modality and has no neighbours there: the item
/// keeps only the other modality's, so its row sums to that modality's weight (0 when it is
/// zero in both). Returns `[N, N]` in CSR, columns ascending.
pub fn raw_feature_graph(features: &[Mat<f64>; 2], k: usize, image_weight: f64) -> Result<CsrMatrix<f64>, RefError> {
    let n = features[0].nrows();
    if k == 0 || k > n {
        return Err(RefError::Config { field: "knn_k".into(), why: format!("must be in 1..={n}, got {k}") });
    }
    let present: Vec<usize> = (0..2).filter(|&m| features[m].ncols() > 0).collect();
    if present.is_empty() {
        return Err(RefError::Config {
            field: "item_graph_source".into(),
            why: "raw_features needs image or text features; neither is present".into(),
        });
    }
    let weight = |m: usize| match present.len() {
        1 => 1.0,
        _ if m == 0 => image_weight,
        _ => 1.0 - image_weight,
    };
    let mut dense = Mat::<f64>::zeros(n, n);
    for &m in &present {
        let (s, cache) = cosine_similarity(&features[m])?;
        let eligible: Vec<bool> = cache.norms.iter().map(|&v| !is_zero_row(v)).collect();
        for i in (0..n).filter(|&i| eligible[i]) {
            let row: Vec<f64> = (0..n).map(|j| s[(i, j)]).collect();
            for j in top_k(&row, k, &eligible) {
                dense[(i, j)] += weight(m) / k as f64;
            }
        }
    }
    let (mut offsets, mut cols, mut vals) = (vec![0], Vec::new(), Vec::new());
    for i in 0..n {
        for j in 0..n {
            if dense[(i, j)] != 0.0 {
                cols.push(j);
                vals.push(dense[(i, j)]);
            }
        }
        offsets.push(cols.len());
    }
    Ok(CsrMatrix::try_from_csr_data(n, n, offsets, cols, vals).expect("row-major scan gives valid CSR"))
}

/// FREEDOM's frozen fused graph from per-modality neighbour lists (the kNN files of
/// `ItemGraphSource::Files`): for every item i and each modality m with weight `w_m`,
/// `w_m / k` at (i, j) for each j among the first k entries of `lists[m][i]` (the lists go by
/// decreasing similarity, the item itself included), coinciding entries summed. With k-long
/// lists it is row-stochastic when the weights sum to 1. Returns `[N, N]` in CSR, columns
/// ascending. Refuses a list shorter than k or an id outside `0..n`.
pub fn fixed_knn_graph(n: usize, lists: &[(&[Vec<usize>], f64)], k: usize) -> Result<CsrMatrix<f64>, RefError> {
    let bad = |why: String| Err(RefError::Config { field: "knn_k".into(), why });
    if k == 0 {
        return bad("must be at least 1".into());
    }
    let (mut offsets, mut cols, mut vals) = (vec![0], Vec::new(), Vec::new());
    for i in 0..n {
        let mut row: std::collections::BTreeMap<usize, f64> = std::collections::BTreeMap::new();
        for (m, &(l, w)) in lists.iter().enumerate() {
            let Some(r) = l.get(i) else { return bad(format!("list {m} has no row {i}")) };
            if r.len() < k {
                return bad(format!("list {m} row {i} has {} neighbours, fewer than k = {k}", r.len()));
            }
            for &j in &r[..k] {
                if j >= n {
                    return bad(format!("list {m} row {i} names item {j}, outside 0..{n}"));
                }
                *row.entry(j).or_default() += w / k as f64;
            }
        }
        for (j, v) in row {
            if v != 0.0 {
                cols.push(j);
                vals.push(v);
            }
        }
        offsets.push(cols.len());
    }
    Ok(CsrMatrix::try_from_csr_data(n, n, offsets, cols, vals).expect("ascending columns give valid CSR"))
}

/// Saved values of [`knn_graph`].
#[derive(Clone, Debug)]
pub struct KnnCache {
    /// Retained similarities `s_ij` in the CSR order of S̃ `[N k]`.
    pub retained: Vec<f64>,
    /// Row sums of the clamped retained similarities `[N]`.
    pub row_sums: Vec<f64>,
}

/// Top-k indices of one row among the `eligible` columns (fewer when fewer are eligible),
/// largest first, ties broken by the smaller index.
fn top_k(row: &[f64], k: usize, eligible: &[bool]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).filter(|&j| eligible[j]).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// The items that take part in the kNN graph of S: `S_jj > 0`. `S_jj` is 1 for a non-zero row
/// of the cosine input (½ or 1 for CRANE-A's average of two) and 0 for a zero row
/// ([`MIN_ROW_NORM`]), which is in no other item's kNN row and has an empty row of its own.
pub fn knn_eligible(s: &Mat<f64>) -> Vec<bool> {
    (0..s.nrows()).map(|j| s[(j, j)] > 0.0).collect()
}

/// Eq. (14), sparsification: keep the k largest entries of each row of S (the item itself
/// included, since `S_ii = 1`), clamp them at 0, divide by their row sum. Returns S̃ `[N, N]`
/// in CSR with k stored entries per row; the index set is treated as constant. Zero rows
/// ([`knn_eligible`]): an item with `S_jj = 0` is no candidate of any row and its own row is
/// empty (its h of Eq. 15 is 0), so a row keeps k entries only while k items are eligible
/// (fewer otherwise). An eligible row's sum is at least `S_ii > 0`: never a division by 0.
pub fn knn_graph(s: &Mat<f64>, k: usize) -> Result<(CsrMatrix<f64>, KnnCache), RefError> {
    let n = s.nrows();
    if k == 0 || k > n {
        return Err(RefError::Config { field: "knn_k".into(), why: format!("must be in 1..={n}, got {k}") });
    }
    let eligible = knn_eligible(s);
    let (mut offsets, mut cols, mut vals) = (vec![0], Vec::with_capacity(n * k), Vec::with_capacity(n * k));
    let (mut retained, mut row_sums) = (Vec::with_capacity(n * k), Vec::with_capacity(n));
    for i in 0..n {
        if !eligible[i] {
            row_sums.push(0.0);
            offsets.push(cols.len());
            continue;
        }
        let row: Vec<f64> = (0..n).map(|j| s[(i, j)]).collect();
        // A NaN has no rank (and `max(0)` would turn a kept one into a silent 0).
        if row.iter().any(|v| v.is_nan()) {
            return Err(RefError::Numeric(format!("Eq. (14): row {i} of S holds a NaN similarity")));
        }
        let mut keep = top_k(&row, k, &eligible);
        keep.sort_unstable();
        // At least S_ii > 0 or k values as large: positive (the doc comment above).
        let sum: f64 = keep.iter().map(|&j| row[j].max(0.0)).sum();
        for &j in &keep {
            cols.push(j);
            vals.push(row[j].max(0.0) / sum);
            retained.push(row[j]);
        }
        row_sums.push(sum);
        offsets.push(cols.len());
    }
    let adj = CsrMatrix::try_from_csr_data(n, n, offsets, cols, vals).expect("sorted top-k indices form valid CSR");
    Ok((adj, KnnCache { retained, row_sums }))
}

/// Backward of [`knn_graph`]: `dS` `[N, N]` (non-zero only on retained entries) from the
/// gradient of S̃'s stored values `d_vals` `[N k]` (CSR order).
pub fn knn_graph_backward(adj: &CsrMatrix<f64>, cache: &KnnCache, d_vals: &[f64]) -> Mat<f64> {
    let n = adj.nrows();
    let mut d_s = Mat::zeros(n, n);
    let offsets = adj.row_offsets();
    for i in 0..n {
        let range = offsets[i]..offsets[i + 1];
        let vals = &adj.values()[range.clone()];
        let dv = &d_vals[range.clone()];
        let mean: f64 = vals.iter().zip(dv).map(|(a, b)| a * b).sum();
        for (off, e) in range.enumerate() {
            let j = adj.col_indices()[e];
            if cache.retained[e] > 0.0 {
                d_s[(i, j)] += (dv[off] - mean) / cache.row_sums[i];
            }
        }
    }
    d_s
}

/// Distance of S to the kinks of [`knn_graph`]: the smallest gap between the k-th and
/// (k+1)-th value of a row (a tie changes the index set) and the smallest |s_ij| among the
/// retained entries (the clamp at 0), over the eligible items only ([`knn_eligible`]: a zero
/// row's constant zeros are no kink).
pub fn knn_margin(s: &Mat<f64>, k: usize) -> f64 {
    let n = s.nrows();
    let eligible = knn_eligible(s);
    let mut margin = f64::INFINITY;
    for i in (0..n).filter(|&i| eligible[i]) {
        let mut row: Vec<f64> = (0..n).filter(|&j| eligible[j]).map(|j| s[(i, j)]).collect();
        row.sort_by(|a, b| b.total_cmp(a));
        if k < row.len() {
            margin = margin.min(row[k - 1] - row[k]);
        }
        for v in &row[..k.min(row.len())] {
            margin = margin.min(v.abs());
        }
    }
    margin
}

/// Eq. (15): `h^(l+1) = S̃ h^(l)` for L_II layers from `h^(0) = e_I`, `[N, d] -> [N, d]`.
/// Returns every layer `h^(0..=L_II)` (the last is h).
pub fn propagate(adj: &CsrMatrix<f64>, h0: &Mat<f64>, layers: usize) -> Vec<Mat<f64>> {
    let mut hs = vec![h0.clone()];
    for _ in 0..layers {
        let next = spmm(adj, hs.last().unwrap());
        hs.push(next);
    }
    hs
}

/// Backward of [`propagate`]: `(dh^(0) [N, d], dS̃ values [nnz])` from `dh` of the last layer.
pub fn propagate_backward(adj: &CsrMatrix<f64>, hs: &[Mat<f64>], d_h: &Mat<f64>) -> (Mat<f64>, Vec<f64>) {
    let mut d_vals = vec![0.0; adj.nnz()];
    let mut d = d_h.clone();
    for l in (0..hs.len() - 1).rev() {
        let mut e = 0;
        for (i, row) in adj.row_iter().enumerate() {
            for &j in row.col_indices() {
                d_vals[e] += row_dot(&d, i, &hs[l], j);
                e += 1;
            }
        }
        d = spmm_t(adj, &d);
    }
    (d, d_vals)
}

/// Eq. (16): `h_u = Σ_{i ∈ N(u)} h_i` over the training interactions, `[N, d] -> [M, d]`.
pub fn user_semantic(a: &CsrMatrix<f64>, h: &Mat<f64>) -> Mat<f64> {
    aggregate(a, h)
}

/// Backward of [`user_semantic`]: `dh` `[N, d]`.
pub fn user_semantic_backward(a: &CsrMatrix<f64>, d_hu: &Mat<f64>) -> Mat<f64> {
    aggregate_backward(a, d_hu)
}

/// Eq. (17): `z = e + h`, `[M+N, d]`. Its backward passes the gradient to both unchanged.
pub fn fuse(e: &Mat<f64>, h: &Mat<f64>) -> Mat<f64> {
    crate::dense::add(e, h)
}

/// The prediction `ŷ_ui = z_uᵀ z_i` for each `(u, i)`, with `z_u` rows of `zu` `[M, d]` and
/// `z_i` rows of `zi` `[N, d]`.
pub fn scores(zu: &Mat<f64>, zi: &Mat<f64>, pairs: &[(usize, usize)]) -> Vec<f64> {
    pairs.iter().map(|&(u, i)| row_dot(zu, u, zi, i)).collect()
}

/// Backward of [`scores`]: accumulates into `(dz_U, dz_I)`.
pub fn scores_backward(
    zu: &Mat<f64>,
    zi: &Mat<f64>,
    pairs: &[(usize, usize)],
    d_scores: &[f64],
    d_zu: &mut Mat<f64>,
    d_zi: &mut Mat<f64>,
) {
    for (&(u, i), &g) in pairs.iter().zip(d_scores) {
        for c in 0..zu.ncols() {
            d_zu[(u, c)] += g * zi[(i, c)];
            d_zi[(i, c)] += g * zu[(u, c)];
        }
    }
}
