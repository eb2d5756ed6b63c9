//! Checkpoints: the parameters as f32 safetensors, with the resolved training config, the
//! epoch and the dataset name in the metadata. Written atomically.

use crate::config::TrainConfig;
use crate::error::{CraneError, Result};
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
    Ok(CheckpointMeta { config, epoch, dataset: field("dataset")? })
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
                    "tensor `{name}` is {:?} {:?}, expected F32 [{}, {}]",
                    v.dtype(),
                    v.shape(),
                    dst.nrows(),
                    dst.ncols()
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

/// Everything needed to continue a run: parameters and Adam's moments in f64 (exact for both
/// engines), the step count, and the loop's own state as JSON.
pub fn save_state(
    path: &Path,
    opt: &crate::engine::OptimiserState,
    params: &Params,
    config: &TrainConfig,
    epoch: usize,
    loop_state: &str,
) -> Result<()> {
    let mut bytes: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (prefix, p) in [("param", params), ("adam_m", &opt.m), ("adam_v", &opt.v)] {
        for (name, t) in p.tensors() {
            let mut b = Vec::with_capacity(t.nrows() * t.ncols() * 8);
            for i in 0..t.nrows() {
                for j in 0..t.ncols() {
                    b.extend_from_slice(&t[(i, j)].to_le_bytes());
                }
            }
            bytes.push((format!("{prefix}/{name}"), vec![t.nrows(), t.ncols()], b));
        }
    }
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F64, s.clone(), b).expect("consistent tensor view")))
        .collect();
    let mut info = HashMap::new();
    info.insert("config".to_string(), serde_json::to_string(config).expect("config serialises"));
    info.insert("epoch".to_string(), epoch.to_string());
    info.insert("adam_step".to_string(), opt.step.to_string());
    info.insert("loop".to_string(), loop_state.to_string());
    info.insert("format".to_string(), "crane-state-1".to_string());
    let data = safetensors::serialize(views, Some(info))
        .map_err(|e| CraneError::file(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, |w| w.write_all(&data))
}

/// A training state read back by [`load_state`].
pub struct TrainState {
    pub params: Params,
    pub opt: crate::engine::OptimiserState,
    pub config: TrainConfig,
    pub epoch: usize,
    pub loop_state: String,
}

/// Reads what [`save_state`] wrote; `template` gives the tensor names and shapes.
pub fn load_state(path: &Path, template: &Params) -> Result<TrainState> {
    let bytes = std::fs::read(path).map_err(|e| CraneError::io(path, "read", e))?;
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| CraneError::file(path, format!("not a safetensors file: {e}")))?;
    let (_, md) = SafeTensors::read_metadata(&bytes).map_err(|e| CraneError::file(path, format!("bad header: {e}")))?;
    let info = md.metadata().clone().unwrap_or_default();
    let field =
        |k: &str| info.get(k).cloned().ok_or_else(|| CraneError::file(path, format!("metadata field `{k}` missing")));
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
            if v.dtype() != Dtype::F64 || v.shape() != [dst.nrows(), dst.ncols()] {
                return Err(CraneError::file(path, format!("tensor `{key}` has the wrong dtype or shape")));
            }
            let (data, cols) = (v.data(), dst.ncols());
            for i in 0..dst.nrows() {
                for j in 0..cols {
                    let k = 8 * (i * cols + j);
                    dst[(i, j)] = f64::from_le_bytes(data[k..k + 8].try_into().expect("8 bytes"));
                }
            }
        }
        Ok(p)
    };
    Ok(TrainState {
        params: read("param")?,
        opt: crate::engine::OptimiserState { step: num("adam_step")?, m: read("adam_m")?, v: read("adam_v")? },
        config,
        epoch: num("epoch")? as usize,
        loop_state: field("loop")?,
    })
}
