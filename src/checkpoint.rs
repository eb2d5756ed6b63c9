//! Checkpoints: the parameters as f32 safetensors, with the resolved training config, the
//! epoch, the dataset name and the data fingerprint ([`crate::fingerprint`]) in the metadata.
//! Written atomically.

use crate::config::TrainConfig;
use crate::error::{CraneError, Result};
use crate::fingerprint::DataFingerprint;
use crane_reference::Params;
use safetensors::tensor::{Dtype, Metadata, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
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
    meta_of(&TensorFile::open(path)?.info(), path)
}

fn meta_of(info: &HashMap<String, String>, path: &Path) -> Result<CheckpointMeta> {
    if info.get("format").is_some_and(|f| f.starts_with("crane-state")) {
        return Err(CraneError::file(
            path,
            "is a training state (state.safetensors, what --resume continues), not a checkpoint: pass the \
             checkpoint.safetensors beside it (the best epoch's parameters)",
        ));
    }
    Ok(CheckpointMeta {
        config: config_of(info, path)?,
        epoch: number_of(info, path, "epoch")? as usize,
        dataset: field_of(info, path, "dataset")?,
        data: fingerprint_of(info, path)?,
    })
}

/// A metadata field that must be present.
fn field_of(info: &HashMap<String, String>, path: &Path, k: &str) -> Result<String> {
    info.get(k).cloned().ok_or_else(|| CraneError::file(path, format!("metadata field `{k}` missing")))
}

/// A metadata field holding a whole number.
fn number_of(info: &HashMap<String, String>, path: &Path, k: &str) -> Result<u64> {
    field_of(info, path, k)?.parse().map_err(|_| CraneError::file(path, format!("metadata `{k}` is not a number")))
}

/// The `config` metadata field: the resolved training config.
fn config_of(info: &HashMap<String, String>, path: &Path) -> Result<TrainConfig> {
    serde_json::from_str(&field_of(info, path, "config")?)
        .map_err(|e| CraneError::file(path, format!("metadata `config`: {e}")))
}

/// The `adam_skipped` metadata field (steps each tensor sat out under `adam_idle = skip`, by
/// name; absent: none), each at most the state's `step`.
fn skipped_of(info: &HashMap<String, String>, path: &Path, step: u64) -> Result<BTreeMap<String, u64>> {
    let Some(s) = info.get("adam_skipped") else { return Ok(BTreeMap::new()) };
    let map: BTreeMap<String, u64> = serde_json::from_str(s)
        .map_err(|e| CraneError::file(path, format!("metadata `adam_skipped`: {e}; expected {{\"tensor\": steps}}")))?;
    match map.iter().find(|(_, &n)| n > step) {
        Some((name, n)) => Err(CraneError::file(
            path,
            format!("metadata `adam_skipped`: tensor `{name}` sat out {n} steps, more than the state's {step}"),
        )),
        None => Ok(map),
    }
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
    let mut f = TensorFile::open(path)?;
    let meta = meta_of(&f.info(), path)?;
    check_checkpoint(&f, &shapes_of(template), &meta)?;
    let mut params = template.clone();
    for (name, dst) in params.tensors_mut() {
        f.read_mat(&name, dst)?;
    }
    Ok((params, meta))
}

/// Reads a checkpoint's parameters into `engine` (straight into its f32 host tables where it
/// has them, as [`StateFile::restore`]; else through [`load`]).
pub fn load_into(path: &Path, engine: &mut dyn crate::engine::Engine) -> Result<CheckpointMeta> {
    if let Some(h) = engine.host_tables_mut() {
        let mut f = TensorFile::open(path)?;
        let meta = meta_of(&f.info(), path)?;
        check_checkpoint(&f, &table_shapes(&h.tensors), &meta)?;
        for (name, shape, [p, _, _]) in h.tensors {
            f.read_f32(&name, shape, p)?;
        }
        return Ok(meta);
    }
    let (params, meta) = load(path, &engine.params())?;
    engine.set_params(&params)?;
    Ok(meta)
}

/// A checkpoint holds these tensors as F32; a mismatch names the dataset it belongs to.
fn check_checkpoint(f: &TensorFile, shapes: &[(String, [usize; 2])], meta: &CheckpointMeta) -> Result<()> {
    for (name, shape) in shapes {
        f.check(name, *shape, &[Dtype::F32]).map_err(|m| {
            let counts =
                meta.data.as_ref().map_or(String::new(), |d| format!(" ({} users, {} items)", d.n_users, d.n_items));
            CraneError::file(&f.path, format!("{m}: the checkpoint belongs to dataset `{}`{counts}", meta.dataset))
        })?;
    }
    Ok(())
}

/// The name prefixes of a state's three tables per parameter: the value, Adam's first and
/// second moments.
const STATE_PREFIXES: [&str; 3] = ["param", "adam_m", "adam_v"];

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
    let (step, skipped, tables): (u64, BTreeMap<String, u64>, _) = match engine.host_tables() {
        Some(h) => {
            let mut tables = Vec::new();
            let mut skipped = BTreeMap::new();
            for ((n, shape, values), &k) in h.tensors.into_iter().zip(h.skipped) {
                for (prefix, v) in STATE_PREFIXES.iter().zip(values) {
                    tables.push((format!("{prefix}/{n}"), Table::f32(shape, v)));
                }
                if k > 0 {
                    skipped.insert(n, k);
                }
            }
            (h.step, skipped, tables)
        }
        None => {
            let (params, opt) = (engine.params(), engine.optimiser_state());
            let mut tables = Vec::new();
            for (prefix, p) in STATE_PREFIXES.iter().zip([&params, &opt.m, &opt.v]) {
                for (n, t) in p.tensors() {
                    tables.push((format!("{prefix}/{n}"), Table::of_mat(t, false)));
                }
            }
            (opt.step, opt.skipped, tables)
        }
    };
    let mut info = HashMap::new();
    info.insert("config".to_string(), serde_json::to_string(config).expect("config serialises"));
    info.insert("epoch".to_string(), epoch.to_string());
    info.insert("adam_step".to_string(), step.to_string());
    // Only `adam_idle = skip` writes it: the default's files stay as they were.
    if !skipped.is_empty() {
        info.insert("adam_skipped".to_string(), serde_json::to_string(&skipped).expect("map serialises"));
    }
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
    let mut f = StateFile::open(path, now)?;
    f.check_shapes(&shapes_of(template))?;
    Ok(TrainState {
        params: f.read_params("param", template)?,
        opt: crate::engine::OptimiserState {
            step: f.step,
            m: f.read_params("adam_m", template)?,
            v: f.read_params("adam_v", template)?,
            skipped: f.skipped.clone(),
        },
        config: f.config,
        data: f.data,
        epoch: f.epoch,
        loop_state: f.loop_state,
    })
}

/// The names and `[rows, cols]` of `p`'s tensors.
fn shapes_of(p: &Params) -> Vec<(String, [usize; 2])> {
    p.tensors().into_iter().map(|(n, t)| (n, [t.nrows(), t.ncols()])).collect()
}

/// A safetensors file opened for reading one tensor at a time: the header is parsed at open
/// and the file's length checked against it (a truncated file is refused there); each tensor
/// is then read from the file in blocks, straight into its destination. So neither the file's
/// bytes nor an f64 copy of every table is held (resuming crane-code on Baby, with the feature
/// tables trained, peaked 2,240 MB reading the whole state, 1,306 MB so; a fresh run 1,310 MB).
struct TensorFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    /// Byte offset of the data section: 8 + the header's length.
    data_start: u64,
    md: Metadata,
    /// Values read per block (small in a test, so that tensors span blocks).
    block: usize,
}

impl TensorFile {
    fn open(path: &Path) -> Result<Self> {
        use std::io::Read;
        let bad = |m: String| CraneError::file(path, m);
        let mut file = std::fs::File::open(path).map_err(|e| CraneError::io(path, "open", e))?;
        let len = file.metadata().map_err(|e| CraneError::io(path, "read", e))?.len();
        if len < 8 {
            return Err(bad(format!("not a safetensors file: {len} bytes, shorter than its 8-byte header length")));
        }
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(|e| CraneError::io(path, "read", e))?;
        let n = u64::from_le_bytes(n);
        // safetensors' own bound on a header (100 MB).
        if n > 100_000_000 || 8 + n > len {
            return Err(bad(format!("not a safetensors file: header length {n} for a file of {len} bytes")));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header).map_err(|e| CraneError::io(path, "read", e))?;
        let header =
            std::str::from_utf8(&header).map_err(|_| bad("not a safetensors file: header is not UTF-8".into()))?;
        let md: Metadata =
            serde_json::from_str(header).map_err(|e| bad(format!("not a safetensors file: bad header: {e}")))?;
        // `8 + n <= len` above, so this cannot overflow (the header's own sum can).
        if md.data_len() as u64 != len - 8 - n {
            return Err(bad(format!(
                "is {len} bytes but its header describes {} bytes of tensors after its {} header bytes: truncated or \
                 damaged",
                md.data_len(),
                8 + n
            )));
        }
        Ok(Self { path: path.to_path_buf(), file, data_start: 8 + n, md, block: 1 << 17 })
    }

    /// The string metadata (`__metadata__`).
    fn info(&self) -> HashMap<String, String> {
        self.md.metadata().clone().unwrap_or_default()
    }

    /// Tensor `key`'s dtype and byte range, checked to be one of `dtypes` and `[rows, cols]`.
    fn tensor(&self, key: &str, shape: [usize; 2], dtypes: &[Dtype]) -> Result<(Dtype, (usize, usize))> {
        self.check(key, shape, dtypes).map_err(|m| CraneError::file(&self.path, m))
    }

    /// [`TensorFile::tensor`], the error as a message.
    fn check(
        &self,
        key: &str,
        [rows, cols]: [usize; 2],
        dtypes: &[Dtype],
    ) -> std::result::Result<(Dtype, (usize, usize)), String> {
        let t = self.md.info(key).ok_or_else(|| format!("tensor `{key}` missing"))?;
        if !dtypes.contains(&t.dtype) || t.shape != [rows, cols] {
            let want: Vec<_> = dtypes.iter().map(|d| format!("{d:?}")).collect();
            return Err(format!(
                "tensor `{key}` is {:?} {:?}, expected {} [{rows}, {cols}]",
                t.dtype,
                t.shape,
                want.join(" or ")
            ));
        }
        Ok((t.dtype, t.data_offsets))
    }

    /// Streams tensor `key` (`[rows, cols]`, row-major, F32 or F64) through `put(first index,
    /// values)` in blocks of `self.block` values (128 Ki), converted to f64 (exact for either
    /// width).
    fn stream(&mut self, key: &str, shape: [usize; 2], mut put: impl FnMut(usize, &[f64])) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let (dtype, (start, end)) = self.tensor(key, shape, &[Dtype::F32, Dtype::F64])?;
        let width = if dtype == Dtype::F32 { 4 } else { 8 };
        let path = self.path.clone();
        let io = |e| CraneError::io(&path, "read", e);
        self.file.seek(SeekFrom::Start(self.data_start + start as u64)).map_err(io)?;
        let block = self.block;
        let (mut bytes, mut vals) = (vec![0u8; block * width], Vec::with_capacity(block));
        let (total, mut done) = ((end - start) / width, 0);
        while done < total {
            let n = block.min(total - done);
            self.file.read_exact(&mut bytes[..n * width]).map_err(io)?;
            vals.clear();
            if width == 4 {
                vals.extend(
                    bytes[..n * 4].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4")) as f64),
                );
            } else {
                vals.extend(bytes[..n * 8].chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8"))));
            }
            put(done, &vals);
            done += n;
        }
        Ok(())
    }

    /// Tensor `key` into an f64 matrix.
    fn read_mat(&mut self, key: &str, dst: &mut faer::Mat<f64>) -> Result<()> {
        let cols = dst.ncols();
        self.stream(key, [dst.nrows(), cols], |at, v| {
            for (k, &x) in (at..).zip(v) {
                dst[(k / cols, k % cols)] = x;
            }
        })
    }

    /// Tensor `key` into an f32 engine's row-major table.
    fn read_f32(&mut self, key: &str, shape: [usize; 2], dst: &mut [f32]) -> Result<()> {
        self.stream(key, shape, |at, v| {
            for (d, &x) in dst[at..at + v.len()].iter_mut().zip(v) {
                *d = x as f32;
            }
        })
    }
}

/// A training state file opened for resuming ([`TensorFile`]: the header read and checked at
/// [`StateFile::open`], each tensor read when restored).
pub struct StateFile {
    file: TensorFile,
    pub config: TrainConfig,
    /// The data it was trained on (checked against the data now at open).
    pub data: Option<DataFingerprint>,
    /// The last epoch the state includes.
    pub epoch: usize,
    /// Adam's step count.
    pub step: u64,
    /// Steps each tensor sat out under `adam_idle = skip` (absent: none).
    pub skipped: BTreeMap<String, u64>,
    /// The training loop's own state (JSON).
    pub loop_state: String,
}

impl StateFile {
    /// Opens `path` and reads its metadata; refuses a state made from other data than `now` (or
    /// with no fingerprint), and a file whose length disagrees with its header.
    pub fn open(path: &Path, now: &DataFingerprint) -> Result<Self> {
        let file = TensorFile::open(path)?;
        let info = file.info();
        let data = fingerprint_of(&info, path)?;
        check_data(path, data.as_ref(), now)?;
        let step = number_of(&info, path, "adam_step")?;
        Ok(Self {
            config: config_of(&info, path)?,
            data,
            epoch: number_of(&info, path, "epoch")? as usize,
            step,
            skipped: skipped_of(&info, path, step)?,
            loop_state: field_of(&info, path, "loop")?,
            file,
        })
    }

    /// Checks that the file holds `param/`, `adam_m/` and `adam_v/` tensors of these names and
    /// shapes, as F32 or F64 (so that restoring them cannot fail on the format).
    pub fn check_shapes(&self, shapes: &[(String, [usize; 2])]) -> Result<()> {
        for (name, shape) in shapes {
            for prefix in STATE_PREFIXES {
                self.file.tensor(&format!("{prefix}/{name}"), *shape, &[Dtype::F32, Dtype::F64])?;
            }
        }
        // A count for a tensor the model does not have would be dropped without a word.
        match self.skipped.keys().find(|n| !shapes.iter().any(|(s, _)| s == *n)) {
            Some(n) => Err(CraneError::file(
                &self.file.path,
                format!("metadata `adam_skipped` names tensor `{n}`, which this model does not have"),
            )),
            None => Ok(()),
        }
    }

    /// [`StateFile::check_shapes`] against the engine's tensors (from its host tables where it
    /// has them, without a copy).
    pub fn check_engine(&self, engine: &dyn crate::engine::Engine) -> Result<()> {
        self.check_shapes(&engine_shapes(engine))
    }

    /// The tensors `{prefix}/{name}` for every tensor of `template`, in its layout (f64).
    pub fn read_params(&mut self, prefix: &str, template: &Params) -> Result<Params> {
        let mut p = template.clone();
        for (name, dst) in p.tensors_mut() {
            self.file.read_mat(&format!("{prefix}/{name}"), dst)?;
        }
        Ok(p)
    }

    /// Writes the state into the engine: straight into its f32 host tables where it has them
    /// ([`crate::engine::Engine::host_tables_mut`], no copy of the state), else through an f64
    /// copy ([`crate::engine::Engine::set_params`], `set_optimiser_state`).
    pub fn restore(mut self, engine: &mut dyn crate::engine::Engine) -> Result<()> {
        if let Some(h) = engine.host_tables_mut() {
            self.check_shapes(&table_shapes(&h.tensors))?;
            for ((name, shape, tables), skipped) in h.tensors.into_iter().zip(h.skipped.iter_mut()) {
                for (prefix, dst) in STATE_PREFIXES.iter().zip(tables) {
                    self.file.read_f32(&format!("{prefix}/{name}"), shape, dst)?;
                }
                *skipped = self.skipped.get(&name).copied().unwrap_or(0);
            }
            *h.step = self.step;
            return Ok(());
        }
        let template = engine.params();
        self.check_shapes(&shapes_of(&template))?;
        engine.set_params(&self.read_params("param", &template)?)?;
        let (m, v) = (self.read_params("adam_m", &template)?, self.read_params("adam_v", &template)?);
        engine.set_optimiser_state(&crate::engine::OptimiserState { step: self.step, m, v, skipped: self.skipped })
    }
}

/// The names and `[rows, cols]` of an engine's tensors: from its host tables where it has them
/// (no copy), else from its parameters.
fn engine_shapes(engine: &dyn crate::engine::Engine) -> Vec<(String, [usize; 2])> {
    match engine.host_tables() {
        Some(h) => table_shapes(&h.tensors),
        None => shapes_of(&engine.params()),
    }
}

/// The names and `[rows, cols]` of host tables ([`crate::engine::HostTable`] or its writable
/// form).
fn table_shapes<T>(tensors: &[(String, [usize; 2], T)]) -> Vec<(String, [usize; 2])> {
    tensors.iter().map(|(n, s, _)| (n.clone(), *s)).collect()
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
    load_into(path, engine.as_mut())?;
    engine.rebuild_item_graph()?;
    engine.prepare_scoring()?;
    Ok(Opened { ds, engine, meta })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tensors read in blocks smaller than themselves (3 values; 15 and 14 values per tensor, so
    /// blocks end mid-row and the last one is short) land where a whole read puts them, F32 and
    /// F64 alike.
    #[test]
    fn tensors_read_in_blocks_land_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let a: Vec<f32> = (0..15).map(|k| k as f32 * 0.5 - 3.0).collect();
        let b = faer::Mat::<f64>::from_fn(2, 7, |i, j| (i * 7 + j) as f64 + 0.1);
        let tables = vec![("a".to_string(), Table::f32([3, 5], &a)), ("b".to_string(), Table::of_mat(&b, false))];
        write_tables(&path, &tables, HashMap::new()).unwrap();
        for block in [1, 3, 4, 1 << 17] {
            let mut f = TensorFile::open(&path).unwrap();
            f.block = block;
            let mut got = vec![0f32; 15];
            f.read_f32("a", [3, 5], &mut got).unwrap();
            assert_eq!(got, a, "block {block}");
            let mut m = faer::Mat::<f64>::zeros(2, 7);
            f.read_mat("b", &mut m).unwrap();
            assert_eq!(m, b, "block {block}");
            let mut m = faer::Mat::<f64>::zeros(3, 5);
            f.read_mat("a", &mut m).unwrap();
            assert_eq!(m, faer::Mat::from_fn(3, 5, |i, j| a[i * 5 + j] as f64), "block {block}");
        }
        let e = TensorFile::open(&path).unwrap().tensor("b", [7, 2], &[Dtype::F32]).err().unwrap().to_string();
        assert!(e.contains("t.safetensors") && e.contains("tensor `b` is F64 [2, 7], expected F32 [7, 2]"), "{e}");
        // A folder given for a file: the system's reason, naming it.
        let e = TensorFile::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains(&dir.path().display().to_string()) && !e.contains("safetensors file"), "{e}");
    }

    /// The `adam_skipped` field: absent is none; not a `{name: steps}` map, or a count above
    /// the state's step, is refused naming the file and the field.
    #[test]
    fn adam_skipped_is_read_and_checked() {
        let path = Path::new("run/state.safetensors");
        let info = |v: &str| HashMap::from([("adam_skipped".to_string(), v.to_string())]);
        assert!(skipped_of(&HashMap::new(), path, 5).unwrap().is_empty());
        let map = skipped_of(&info(r#"{"rca.w_tr":4}"#), path, 5).unwrap();
        assert_eq!(map.get("rca.w_tr"), Some(&4));
        let e = skipped_of(&info("[4]"), path, 5).unwrap_err().to_string();
        assert!(e.contains("run/state.safetensors") && e.contains("`adam_skipped`") && e.contains("expected"), "{e}");
        let e = skipped_of(&info(r#"{"rca.w_tr":6}"#), path, 5).unwrap_err().to_string();
        assert!(e.contains("`rca.w_tr` sat out 6 steps, more than the state's 5"), "{e}");
    }
}
