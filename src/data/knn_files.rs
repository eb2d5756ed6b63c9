//! Per-modality item kNN files (`ItemGraphSource::Files`): `<dir>/<name>_knn_indices.npy`
//! (int64 or int32 `[N, K]`) and `<dir>/<name>_knn_similarity.npy` (float32/64 `[N, K]`), with
//! `<name>` the dataset's modality name (`image`, `text`, `audio`). Row i lists item i's K
//! nearest items by decreasing similarity, the item itself included (MMRec's top-k); the format
//! of `amazon-baby/real-item-graphs/`. Read and validated at load; the graph models use is
//! built from the indices alone ([`KnnFiles::fused_graph`], FREEDOM's construction).

use crate::error::{CraneError, Result};
use nalgebra_sparse::CsrMatrix;
use std::path::{Path, PathBuf};

/// A neighbour's similarity may exceed the one before it by this much (float rounding of
/// recovered cosines: the real Baby files have steps up to 1.2e-7).
pub const SORT_TOLERANCE: f32 = 1e-6;

/// The validated index lists of the two modalities, visual role first.
#[derive(Clone, Debug)]
pub struct KnnFiles {
    /// The folder read.
    pub dir: PathBuf,
    /// Modality names (`image`, `text`, `audio`), visual role first.
    pub names: [String; 2],
    /// K: the files' width.
    pub width: usize,
    /// Row i = item i's K neighbours, in file order.
    pub lists: [Vec<Vec<usize>>; 2],
    /// The four files read: indices then similarity, per modality.
    pub files: Vec<PathBuf>,
}

/// The index and similarity file names of a modality.
pub fn file_names(modality: &str) -> [String; 2] {
    [format!("{modality}_knn_indices.npy"), format!("{modality}_knn_similarity.npy")]
}

fn read_indices(path: &Path) -> Result<(usize, usize, Vec<i64>)> {
    let bytes = std::fs::read(path).map_err(|e| CraneError::io(path, "read", e))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| CraneError::file(path, format!("corrupt npy header: {e}")))?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 {
        return Err(CraneError::file(path, format!("expected a 2-D array [items, k], found shape {shape:?}")));
    }
    if npy.order() == npyz::Order::Fortran {
        return Err(CraneError::file(path, "Fortran order: expected C order"));
    }
    let (rows, cols) = (shape[0] as usize, shape[1] as usize);
    let size = match npy.dtype() {
        npyz::DType::Plain(ts) if ts.type_char() == npyz::TypeChar::Int => ts.size_field(),
        other => return Err(CraneError::file(path, format!("wrong dtype {other:?}: expected int64 or int32"))),
    };
    let bad = |e: std::io::Error| CraneError::file(path, format!("cannot read {rows} x {cols} ids: {e}"));
    let flat: Vec<i64> = match size {
        8 => npy.into_vec::<i64>().map_err(bad)?,
        4 => npy.into_vec::<i32>().map_err(bad)?.into_iter().map(i64::from).collect(),
        s => return Err(CraneError::file(path, format!("wrong dtype: {s}-byte integers, expected int64 or int32"))),
    };
    if flat.len() != rows * cols {
        return Err(CraneError::file(path, format!("holds {} values, shape {rows} x {cols}", flat.len())));
    }
    Ok((rows, cols, flat))
}

impl KnnFiles {
    /// Reads and validates `<dir>/<name>_knn_{indices,similarity}.npy` for both modalities:
    /// `[n_items, K]` each, both files of a modality the same shape and both modalities the same
    /// K, ids in `0..n_items`, finite similarities, rows non-increasing (to [`SORT_TOLERANCE`]).
    /// Every error names the file (and the row). `field` names the config value in errors.
    pub fn read(dir: &Path, names: &[String; 2], n_items: usize, field: &str) -> Result<Self> {
        if !dir.is_dir() {
            return Err(CraneError::file(dir, format!("not a folder (the kNN graph folder of `{field}`)")));
        }
        let mut lists: [Vec<Vec<usize>>; 2] = [Vec::new(), Vec::new()];
        let mut files = Vec::new();
        let mut width = None;
        for (m, name) in names.iter().enumerate() {
            let [ip, sp] = file_names(name).map(|f| dir.join(f));
            for p in [&ip, &sp] {
                if !p.is_file() {
                    return Err(CraneError::file(
                        p,
                        format!("missing: `{field}` reads modality `{name}` from {}", dir.display()),
                    ));
                }
            }
            let (rows, k, ids) = read_indices(&ip)?;
            let sim = super::npy::read_features(&sp)?; // refuses NaN and inf, naming row and column
            if rows != n_items {
                return Err(CraneError::file(&ip, format!("has {rows} rows, expected one per item: {n_items}")));
            }
            if (sim.rows, sim.cols) != (rows, k) {
                return Err(CraneError::file(
                    &sp,
                    format!(
                        "has shape [{}, {}], its index file {} has [{rows}, {k}]",
                        sim.rows,
                        sim.cols,
                        ip.display()
                    ),
                ));
            }
            if k == 0 {
                return Err(CraneError::file(&ip, "has no columns (k = 0)"));
            }
            if let Some(w) = width.filter(|&w| w != k) {
                return Err(CraneError::file(&ip, format!("has k = {k} columns, the other modality's file has {w}")));
            }
            width = Some(k);
            let mut rows_out = Vec::with_capacity(rows);
            for i in 0..rows {
                let row = &ids[i * k..(i + 1) * k];
                if let Some((c, &j)) = row.iter().enumerate().find(|(_, &j)| j < 0 || j as usize >= n_items) {
                    return Err(CraneError::file(
                        &ip,
                        format!("row {i}, column {c}: item id {j} outside 0..{n_items}"),
                    ));
                }
                let s = sim.row(i);
                if let Some(c) = (1..k).find(|&c| s[c] > s[c - 1] + SORT_TOLERANCE) {
                    return Err(CraneError::file(
                        &sp,
                        format!(
                            "row {i} is not sorted by decreasing similarity: column {c} has {} after {}",
                            s[c],
                            s[c - 1]
                        ),
                    ));
                }
                rows_out.push(row.iter().map(|&j| j as usize).collect());
            }
            lists[m] = rows_out;
            files.push(ip);
            files.push(sp);
        }
        Ok(Self { dir: dir.to_path_buf(), names: names.clone(), width: width.unwrap_or(0), lists, files })
    }

    /// FREEDOM's frozen fused graph from the first `k` columns: `image_weight / k` at (i, j)
    /// for each j of the visual-role list of row i, `(1 − image_weight) / k` for the textual
    /// role's, coinciding entries summed (row-stochastic). `crane_reference::item_graph::
    /// fixed_knn_graph` does the arithmetic; the engines get this CSR unchanged.
    pub fn fused_graph(&self, k: usize, image_weight: f64) -> Result<CsrMatrix<f64>> {
        if k == 0 || k > self.width {
            return Err(CraneError::config(
                "model.knn_k",
                format!(
                    "must be in 1..={} (the width of the kNN files in {}), got {k}",
                    self.width,
                    self.dir.display()
                ),
            ));
        }
        let n = self.lists[0].len();
        let lists = [(&self.lists[0][..], image_weight), (&self.lists[1][..], 1.0 - image_weight)];
        Ok(crane_reference::item_graph::fixed_knn_graph(n, &lists, k)?)
    }
}
