//! Checkpoints: the parameters as f32 safetensors, with the resolved training config, the
//! epoch, the dataset name and the data fingerprint ([`crate::fingerprint`]) in the metadata.
//! Written atomically.

use crate::config::TrainConfig;
use crate::error::{CraneError, Result};
use crate::fingerprint::DataFingerprint;
use crate::io::write_atomic;
use crane_reference::Params;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
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

/// Writes `params` (as f32) and `meta` to `path`.
pub fn save(path: &Path, params: &Params, meta: &CheckpointMeta) -> Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            let mut b = Vec::with_capacity(t.nrows() * t.ncols() * 4);
            for i in 0..t.nrows() {
                for j in 0..t.ncols() {
                    b.extend_from_slice(&(t[(i, j)] as f32).to_le_bytes());
                }
            }
            (name, vec![t.nrows(), t.ncols()], b)
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).expect("consistent tensor view")))
        .collect();
    let mut info = HashMap::new();
    info.insert("config".to_string(), serde_json::to_string(&meta.config).expect("config serialises"));
    info.insert("epoch".to_string(), meta.epoch.to_string());
    info.insert("dataset".to_string(), meta.dataset.clone());
    if let Some(fp) = &meta.data {
        info.insert("data_fingerprint".to_string(), fp.to_json());
    }
    info.insert("format".to_string(), "crane-checkpoint-1".to_string());
    let data = safetensors::serialize(views, Some(info))
        .map_err(|e| CraneError::file(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, |w| w.write_all(&data))
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

/// Everything needed to continue a run: parameters and Adam's moments, exactly (F32 tensors
/// from the f32 engines, F64 from the reference: [`state_bytes`]), the step count, and the
/// loop's own state as JSON.
pub fn save_state(
    path: &Path,
    opt: &crate::engine::OptimiserState,
    params: &Params,
    config: &TrainConfig,
    data: &DataFingerprint,
    epoch: usize,
    loop_state: &str,
) -> Result<()> {
    let mut bytes: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = Vec::new();
    for (prefix, p) in [("param", params), ("adam_m", &opt.m), ("adam_v", &opt.v)] {
        for (name, t) in p.tensors() {
            let (dtype, b) = state_bytes(t);
            bytes.push((format!("{prefix}/{name}"), vec![t.nrows(), t.ncols()], dtype, b));
        }
    }
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, s, d, b)| (n.clone(), TensorView::new(*d, s.clone(), b).expect("consistent tensor view")))
        .collect();
    let mut info = HashMap::new();
    info.insert("config".to_string(), serde_json::to_string(config).expect("config serialises"));
    info.insert("epoch".to_string(), epoch.to_string());
    info.insert("adam_step".to_string(), opt.step.to_string());
    info.insert("loop".to_string(), loop_state.to_string());
    info.insert("data_fingerprint".to_string(), data.to_json());
    info.insert("format".to_string(), "crane-state-1".to_string());
    let data = safetensors::serialize(views, Some(info))
        .map_err(|e| CraneError::file(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, |w| w.write_all(&data))
}

/// A state tensor's row-major little-endian bytes: F32 when every value is an f32 (the CPU and
/// GPU engines' values, so nothing is lost and the file is half the size; Baby's FREEDOM state
/// is 400 MB instead of 800), else F64 (the reference engine's). Rows are read in blocks of 64
/// from the column-major matrix, so that the transposition stays in cache.
fn state_bytes(t: &faer::Mat<f64>) -> (Dtype, Vec<u8>) {
    let (rows, cols) = (t.nrows(), t.ncols());
    let exact = (0..cols).all(|j| t.col_as_slice(j).iter().all(|&v| v as f32 as f64 == v || v.is_nan()));
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
