//! Checkpoints: the parameters as f32 safetensors, with the resolved training config, the
//! epoch, the dataset name and the data fingerprint ([`crate::fingerprint`]) in the metadata.
//! Written atomically.

use crate::config::TrainConfig;
use crate::error::{CraneError, Result};
use crate::fingerprint::DataFingerprint;
use crane_reference::Params;
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// What a checkpoint holds besides the parameters.
#[derive(Clone, Debug)]
pub struct CheckpointMeta {
    pub config: TrainConfig,
    pub epoch: usize,
    pub dataset: String,
    /// The data it was trained on; `None` only in checkpoints written before fingerprints
    /// existed, which nothing accepts.
    pub data: Option<DataFingerprint>,
}

/// One tensor to write: `[rows, cols]`, row-major little-endian bytes, borrowed straight from
/// an f32 engine's table where it can be.
pub struct Table<'a> {
    shape: Vec<usize>,
    dtype: Dtype,
    bytes: Cow<'a, [u8]>,
}

impl<'a> Table<'a> {
    /// An f32 engine's own row-major table, without a copy.
    pub fn f32(shape: [usize; 2], values: &'a [f32]) -> Self {
        debug_assert_eq!(shape[0] * shape[1], values.len());
        #[cfg(target_endian = "little")]
        let bytes = Cow::Borrowed(bytemuck::cast_slice(values));
        #[cfg(not(target_endian = "little"))]
        let bytes = Cow::Owned(values.iter().flat_map(|v| v.to_le_bytes()).collect());
        Self { shape: shape.to_vec(), dtype: Dtype::F32, bytes }
    }

    /// An f64 matrix as F32 (`force_f32`, checkpoints) or as [`state_bytes`] chooses.
    fn of_mat(t: &faer::Mat<f64>, force_f32: bool) -> Table<'static> {
        let (dtype, bytes) = state_bytes(t, force_f32);
        Table { shape: vec![t.nrows(), t.ncols()], dtype, bytes: Cow::Owned(bytes) }
    }
}

impl View for &Table<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Writes `tables` and `info` as safetensors to `path`, atomically, without assembling the file
/// in memory first.
fn write_tables(path: &Path, tables: &[(String, Table)], info: HashMap<String, String>) -> Result<()> {
    crate::io::write_atomic_with(path, |tmp| {
        // The crate writes through its own private (0600) temporary file, renamed onto `tmp`
        // (if crane is killed mid-write, that `.tmpXXXXXX` file is left in the run folder);
        // the mode a file created here gets under the user's umask is put back on it after.
        let mode = std::fs::File::create(tmp)?.metadata()?.permissions();
        let views = tables.iter().map(|(n, t)| (n.as_str(), t));
        safetensors::serialize_to_file(views, Some(info), tmp).map_err(std::io::Error::other)?;
        std::fs::set_permissions(tmp, mode)
    })
}

/// The parameters to checkpoint: the engine's own f32 tables where it has them, else its
/// f64 export converted to f32.
pub fn param_tables(engine: &dyn crate::engine::Engine) -> Vec<(String, Table<'_>)> {
    match engine.host_tables() {
        Some(h) => h.tensors.into_iter().map(|(n, shape, [p, ..])| (n, Table::f32(shape, p))).collect(),
        None => engine.params().tensors().into_iter().map(|(n, t)| (n, Table::of_mat(t, true))).collect(),
    }
}

/// Writes the parameters `tables` (F32, from [`param_tables`]) and `meta` to `path`.
pub fn save(path: &Path, tables: &[(String, Table)], meta: &CheckpointMeta) -> Result<()> {
    let mut info = HashMap::new();
    info.insert("config".to_string(), serde_json::to_string(&meta.config).expect("config serialises"));
    info.insert("epoch".to_string(), meta.epoch.to_string());
    info.insert("dataset".to_string(), meta.dataset.clone());
    if let Some(fp) = &meta.data {
        info.insert("data_fingerprint".to_string(), fp.to_json());
    }
    info.insert("format".to_string(), "crane-checkpoint-1".to_string());
    write_tables(path, tables, info)
}

/// [`save`] for parameters in the reference's layout.
pub fn save_params(path: &Path, params: &Params, meta: &CheckpointMeta) -> Result<()> {
    let tables: Vec<_> = params.tensors().into_iter().map(|(n, t)| (n, Table::of_mat(t, true))).collect();
    save(path, &tables, meta)
}

/// The metadata of a checkpoint (config, epoch, dataset), without reading its tensors.
pub fn read_meta(path: &Path) -> Result<CheckpointMeta> {
    let bytes = std::fs::read(path).map_err(|e| CraneError::io(path, "read", e))?;
    meta_of(&bytes, path)
}

fn meta_of(bytes: &[u8], path: &Path) -> Result<CheckpointMeta> {
    let (_, md) = SafeTensors::read_metadata(bytes)
        .map_err(|e| CraneError::file(path, format!("not a crane checkpoint: {e}")))?;
    let info = md.metadata().clone().unwrap_or_default();
    let field =
        |k: &str| info.get(k).cloned().ok_or_else(|| CraneError::file(path, format!("metadata field `{k}` missing")));
    let config: TrainConfig = serde_json::from_str(&field("config")?)
        .map_err(|e| CraneError::file(path, format!("metadata `config`: {e}")))?;
    let epoch = field("epoch")?.parse().map_err(|_| CraneError::file(path, "metadata `epoch` is not a number"))?;
    Ok(CheckpointMeta { config, epoch, dataset: field("dataset")?, data: fingerprint_of(&info, path)? })
}

/// The `data_fingerprint` metadata field, when present.
fn fingerprint_of(info: &HashMap<String, String>, path: &Path) -> Result<Option<DataFingerprint>> {
    info.get("data_fingerprint")
        .map(|s| {
            serde_json::from_str(s).map_err(|e| CraneError::file(path, format!("metadata `data_fingerprint`: {e}")))
        })
        .transpose()
}

/// Refuses an artefact without a fingerprint (written by a crane before fingerprints) or one
/// made from other data than `now`.
pub fn check_data(path: &Path, made_from: Option<&DataFingerprint>, now: &DataFingerprint) -> Result<()> {
    match made_from {
        Some(fp) => fp.check(path, now),
        None => Err(CraneError::file(
            path,
            "has no data fingerprint (written by an older crane), so nothing can tell which data it belongs to; \
             retrain it with this version",
        )),
    }
}

/// Reads a checkpoint; `template` gives the expected tensor names and shapes.
pub fn load(path: &Path, template: &Params) -> Result<(Params, CheckpointMeta)> {
    let bytes = std::fs::read(path).map_err(|e| CraneError::io(path, "read", e))?;
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| CraneError::file(path, format!("not a safetensors file: {e}")))?;
    let meta = meta_of(&bytes, path)?;
    let mut params = template.clone();
    for (name, dst) in params.tensors_mut() {
        let v = st.tensor(&name).map_err(|e| CraneError::file(path, format!("tensor `{name}`: {e}")))?;
        if v.dtype() != Dtype::F32 || v.shape() != [dst.nrows(), dst.ncols()] {
            return Err(CraneError::file(
                path,
                format!(
                    "tensor `{name}` is {:?} {:?}, expected F32 [{}, {}]: the checkpoint belongs to dataset `{}`{}",
                    v.dtype(),
                    v.shape(),
                    dst.nrows(),
                    dst.ncols(),
                    meta.dataset,
                    meta.data
                        .as_ref()
                        .map_or(String::new(), |d| format!(" ({} users, {} items)", d.n_users, d.n_items))
                ),
            ));
        }
        let data = v.data();
        let cols = dst.ncols();
        for i in 0..dst.nrows() {
            for j in 0..cols {
                let k = 4 * (i * cols + j);
                dst[(i, j)] = f32::from_le_bytes([data[k], data[k + 1], data[k + 2], data[k + 3]]) as f64;
            }
        }
    }
    Ok((params, meta))
}

/// Everything needed to continue a run: parameters and Adam's moments, exactly (the f32
/// engines' own tables as F32, the reference's as F64: [`state_bytes`]), the step count, and
/// the loop's own state as JSON.
pub fn save_state(
    path: &Path,
    engine: &dyn crate::engine::Engine,
    config: &TrainConfig,
    data: &DataFingerprint,
    epoch: usize,
    loop_state: &str,
) -> Result<()> {
    const PREFIXES: [&str; 3] = ["param", "adam_m", "adam_v"];
    let (step, tables) = match engine.host_tables() {
        Some(h) => {
            let mut tables = Vec::new();
            for (n, shape, values) in h.tensors {
                for (prefix, v) in PREFIXES.iter().zip(values) {
                    tables.push((format!("{prefix}/{n}"), Table::f32(shape, v)));
                }
            }
            (h.step, tables)
        }
        None => {
            let (params, opt) = (engine.params(), engine.optimiser_state());
            let mut tables = Vec::new();
            for (prefix, p) in PREFIXES.iter().zip([&params, &opt.m, &opt.v]) {
                for (n, t) in p.tensors() {
                    tables.push((format!("{prefix}/{n}"), Table::of_mat(t, false)));
                }
            }
            (opt.step, tables)
        }
    };
    let mut info = HashMap::new();
    info.insert("config".to_string(), serde_json::to_string(config).expect("config serialises"));
    info.insert("epoch".to_string(), epoch.to_string());
    info.insert("adam_step".to_string(), step.to_string());
    info.insert("loop".to_string(), loop_state.to_string());
    info.insert("data_fingerprint".to_string(), data.to_json());
    // 2: tensors may be F32 (1: always F64); the reader takes both.
    info.insert("format".to_string(), "crane-state-2".to_string());
    write_tables(path, &tables, info)
}

/// A state tensor's row-major little-endian bytes: F32 when `force_f32` or every value is an f32
/// (nothing lost), else F64 (the reference engine's). Rows are read in blocks of 64 from the
/// column-major matrix, so that the transposition stays in cache.
fn state_bytes(t: &faer::Mat<f64>, force_f32: bool) -> (Dtype, Vec<u8>) {
    let (rows, cols) = (t.nrows(), t.ncols());
    let exact = force_f32 || (0..cols).all(|j| t.col_as_slice(j).iter().all(|&v| v as f32 as f64 == v || v.is_nan()));
    let width = if exact { 4 } else { 8 };
    let mut b = vec![0u8; rows * cols * width];
    const BLOCK: usize = 64;
    for i0 in (0..rows).step_by(BLOCK) {
        let i1 = (i0 + BLOCK).min(rows);
        for j in 0..cols {
            for (i, &v) in (i0..i1).zip(&t.col_as_slice(j)[i0..i1]) {
                let at = width * (i * cols + j);
                if exact {
                    b[at..at + 4].copy_from_slice(&(v as f32).to_le_bytes());
                } else {
                    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
    (if exact { Dtype::F32 } else { Dtype::F64 }, b)
}

/// A training state read back by [`load_state`].
pub struct TrainState {
    pub params: Params,
    pub opt: crate::engine::OptimiserState,
    pub config: TrainConfig,
    /// The data it was trained on (`None`: written before fingerprints).
    pub data: Option<DataFingerprint>,
    pub epoch: usize,
    pub loop_state: String,
}

/// Reads what [`save_state`] wrote; `template` gives the tensor names and shapes. Refuses, before
/// reading any tensor, a state made from other data than `now` (or with no fingerprint).
pub fn load_state(path: &Path, template: &Params, now: &DataFingerprint) -> Result<TrainState> {
    let bytes = std::fs::read(path).map_err(|e| CraneError::io(path, "read", e))?;
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| CraneError::file(path, format!("not a safetensors file: {e}")))?;
    let (_, md) = SafeTensors::read_metadata(&bytes).map_err(|e| CraneError::file(path, format!("bad header: {e}")))?;
    let info = md.metadata().clone().unwrap_or_default();
    let field =
        |k: &str| info.get(k).cloned().ok_or_else(|| CraneError::file(path, format!("metadata field `{k}` missing")));
    let data = fingerprint_of(&info, path)?;
    check_data(path, data.as_ref(), now)?;
    let config: TrainConfig = serde_json::from_str(&field("config")?)
        .map_err(|e| CraneError::file(path, format!("metadata `config`: {e}")))?;
    let num = |k: &str| -> Result<u64> {
        field(k)?.parse().map_err(|_| CraneError::file(path, format!("metadata `{k}` is not a number")))
    };
    let read = |prefix: &str| -> Result<Params> {
        let mut p = template.clone();
        for (name, dst) in p.tensors_mut() {
            let key = format!("{prefix}/{name}");
            let v = st.tensor(&key).map_err(|e| CraneError::file(path, format!("tensor `{key}`: {e}")))?;
            if !matches!(v.dtype(), Dtype::F64 | Dtype::F32) || v.shape() != [dst.nrows(), dst.ncols()] {
                return Err(CraneError::file(
                    path,
                    format!(
                        "tensor `{key}` is {:?} {:?}, expected F32 or F64 [{}, {}]",
                        v.dtype(),
                        v.shape(),
                        dst.nrows(),
                        dst.ncols()
                    ),
                ));
            }
            let (data, cols) = (v.data(), dst.ncols());
            let f32s = v.dtype() == Dtype::F32;
            for i in 0..dst.nrows() {
                for j in 0..cols {
                    dst[(i, j)] = if f32s {
                        let k = 4 * (i * cols + j);
                        f32::from_le_bytes(data[k..k + 4].try_into().expect("4 bytes")) as f64
                    } else {
                        let k = 8 * (i * cols + j);
                        f64::from_le_bytes(data[k..k + 8].try_into().expect("8 bytes"))
                    };
                }
            }
        }
        Ok(p)
    };
    Ok(TrainState {
        params: read("param")?,
        opt: crate::engine::OptimiserState { step: num("adam_step")?, m: read("adam_m")?, v: read("adam_v")? },
        config,
        data,
        epoch: num("epoch")? as usize,
        loop_state: field("loop")?,
    })
}

/// A checkpoint opened for scoring, with the data it was trained on.
pub struct Opened {
    /// The data, loaded with the checkpoint's own split source and user filter.
    pub ds: crate::data::Dataset,
    /// The engine with the checkpoint's parameters, ready to score (`prepare_scoring` done).
    pub engine: Box<dyn crate::engine::Engine>,
    pub meta: CheckpointMeta,
}

/// Opens `path` on the dataset folder `dir` for `crane eval` and `crane recommend`: the data is
/// loaded with the split seed and user filter the checkpoint was trained with (so its metrics
/// are training's), refused when its fingerprint differs from the checkpoint's (naming the
/// difference) or when the checkpoint has none, and checked against the available memory before
/// the engine is built.
pub fn open_for_scoring(path: &Path, dir: &Path) -> Result<Opened> {
    let meta = read_meta(path)?;
    let Some(made_from) = &meta.data else {
        return Err(CraneError::file(
            path,
            "has no data fingerprint (written by an older crane), so nothing can tell which data or split it \
             belongs to; retrain it with this version",
        ));
    };
    let ds = crate::data::load_dataset(dir, &made_from.load_options())?;
    made_from.check(path, &ds.fingerprint)?;
    let est = crate::memory::estimate_peak_mb(&ds, &meta.config);
    crate::memory::check_available(est, &ds, "scoring with this checkpoint is")?;
    let mut engine = crate::train::build_engine(&ds, &meta.config)?;
    let (params, _) = load(path, &engine.params())?;
    engine.set_params(&params)?;
    engine.rebuild_item_graph()?;
    engine.prepare_scoring()?;
    Ok(Opened { ds, engine, meta })
}
