//! Training configuration: serde structs whose defaults are the paper's Table 3 (Baby), dataset
//! presets shipped as TOML (`presets/*.toml`, embedded in the binary), model presets for the
//! baselines, and `--set key=value` overrides of any field.

use crate::engine::{AdamIdle, GraphRefresh};
use crate::error::{CraneError, Result};
use crane_reference::ModelConfig;
use serde::{Deserialize, Serialize};

/// Which engine trains the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// The fast f32 CPU engine.
    #[default]
    Cpu,
    /// The f64 reference (tiny graphs only).
    Reference,
    /// The GPU engine on CUDA device 0 (every preset; unverified on hardware so far).
    Gpu,
    /// The GPU engine's code with its ops run on the CPU: for testing it without a GPU (slow).
    GpuHost,
}

/// Everything a training run needs besides the data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// `crane` (the paper), `bpr` (BPR-MF), `lightgcn` or `freedom`; see [`model_preset`].
    pub model_preset: String,
    pub lr: f64,
    pub epochs: usize,
    pub batch_size: usize,
    /// Epochs without improvement of the validation metric before stopping.
    pub patience: usize,
    /// The validation metric that selects the best epoch and stops early, `name@K` with name
    /// `recall`, `ndcg`, `precision` or `map` (MMRec's `valid_metric`); K must be in `ks`.
    pub valid_metric: String,
    pub seed: u64,
    pub refresh: GraphRefresh,
    /// What Adam does with a tensor the batch's loss does not reach (`step`, the default, or
    /// `skip` as PyTorch ≥ 2's `zero_grad()` makes it): [`AdamIdle`].
    pub adam_idle: AdamIdle,
    pub engine: EngineKind,
    /// Cut-offs of the metrics.
    pub ks: Vec<usize>,
    /// Users scored at once during evaluation.
    pub eval_block: usize,
    /// MB per `[block, M+N]` buffer of RCA and the kNN (CPU engine): smaller uses less memory.
    pub block_mb: usize,
    /// Fewest rows of an RCA `[block, M+N]` block (CPU engine), whatever `block_mb` gives: at
    /// Electronics (M+N = 255,404) 64 MB alone gives 65-row blocks, too thin for the block GEMMs
    /// to run fast (docs/BENCHMARKS.md: 39-row blocks 1.6x slower than 633-row ones at Baby;
    /// the measured Electronics epoch used 262-row blocks). 0 leaves `block_mb` alone.
    pub min_block_rows: usize,
    /// Query rows per task of crane-code's fused attention (CPU engine): each task walks all
    /// keys in tiles of `attention::KEY_TILE`, holding two `[rows, tile]` f32 tiles (in L2 at
    /// 128 rows). 0 derives the rows from `block_mb` as RCA does (2,379 rows at Baby, which
    /// suited the earlier `[rows, N]` buffers least: docs/BENCHMARKS.md).
    pub attention_block_rows: usize,
    /// Compare validation Recall@20 rounded to 4 decimals (MMRec's convention).
    pub round_metric: bool,
    /// GPU engine: cuBLAS products on TF32 tensor cores (inputs rounded to 10-bit mantissas;
    /// checked by `crane verify --gpu --tf32` with its own, looser tolerances). Off by default.
    pub tf32: bool,
    /// The modality names (`image`, `text`, `audio`) whose `<name>_feat.npy` play the visual
    /// and textual roles, in that order (`presets/tiktok.toml`: image and audio). The same
    /// names pick the kNN files of `model.item_graph_source = { files = .. }`.
    pub modalities: Vec<String>,
    pub model: ModelConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model_preset: "crane".into(),
            lr: 1e-4,
            epochs: 250,
            batch_size: 1024,
            patience: 5,
            valid_metric: "recall@20".into(),
            seed: 2024,
            refresh: GraphRefresh::EveryEpoch,
            adam_idle: AdamIdle::Step,
            engine: EngineKind::Cpu,
            ks: crate::eval::DEFAULT_KS.to_vec(),
            eval_block: 1024,
            round_metric: false,
            block_mb: 64,
            min_block_rows: 256,
            attention_block_rows: 128,
            tf32: false,
            modalities: crate::data::DEFAULT_MODALITIES.map(String::from).to_vec(),
            model: ModelConfig::default(),
        }
    }
}

/// The TOML of a shipped dataset preset.
pub fn dataset_preset(name: &str) -> Result<&'static str> {
    Ok(match name {
        "baby" => include_str!("../presets/baby.toml"),
        "sports" => include_str!("../presets/sports.toml"),
        "clothing" => include_str!("../presets/clothing.toml"),
        "electronics" => include_str!("../presets/electronics.toml"),
        "tiny" => include_str!("../presets/tiny.toml"),
        "tiktok" => include_str!("../presets/tiktok.toml"),
        other => {
            return Err(CraneError::config(
                "--dataset",
                format!(
                "no preset `{other}`; expected baby, sports, clothing, electronics, tiny or tiktok (or pass --config)"
            ),
            ))
        }
    })
}

/// Model presets: TOML fragments laid over the dataset preset (before any `--set`), so every
/// baseline is a set of switches of the same model and any of its values can still be
/// overridden. `presets/models/*.toml` say where each value comes from.
pub const MODEL_PRESETS: [&str; 5] = ["crane", "bpr", "lightgcn", "freedom", "crane-code"];

/// The TOML fragment of a model preset.
pub fn model_preset(name: &str) -> Result<&'static str> {
    Ok(match name {
        "crane" => include_str!("../presets/models/crane.toml"),
        "bpr" => include_str!("../presets/models/bpr.toml"),
        "lightgcn" => include_str!("../presets/models/lightgcn.toml"),
        "freedom" => include_str!("../presets/models/freedom.toml"),
        "crane-code" => include_str!("../presets/models/crane-code.toml"),
        other => {
            return Err(CraneError::config(
                "model_preset",
                format!("`{other}` is not one of {}", MODEL_PRESETS.join(", ")),
            ))
        }
    })
}

/// Lays `top` over `base`, table by table (values of `top` win).
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Sets a dotted key (`model.knn_k`) in a TOML table; the value is parsed as TOML, or taken as
/// a string when it does not parse (`refresh=every_step`).
pub fn set_key(root: &mut toml::Table, key: &str, value: &str) -> Result<()> {
    let parsed: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut t) => t.remove("v").unwrap(),
        Err(_) => toml::Value::String(value.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut table = root;
    for p in &parts[..parts.len() - 1] {
        table = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| CraneError::config(key, format!("`{p}` is not a table")))?;
    }
    table.insert(parts[parts.len() - 1].to_string(), parsed);
    Ok(())
}

/// Builds the config: defaults, then the preset or file TOML, then each `key=value`.
pub fn resolve(base_toml: &str, source: &str, sets: &[String]) -> Result<TrainConfig> {
    let mut table: toml::Table =
        toml::from_str(base_toml).map_err(|e| CraneError::config(source, format!("invalid TOML: {e}")))?;
    let apply_sets = |table: &mut toml::Table| -> Result<()> {
        for s in sets {
            let (k, v) =
                s.split_once('=').ok_or_else(|| CraneError::config("--set", format!("`{s}` is not key=value")))?;
            set_key(table, k.trim(), v.trim())?;
        }
        Ok(())
    };
    // The preset named after the overrides, laid under them.
    let mut probe = table.clone();
    apply_sets(&mut probe)?;
    let name = match probe.get("model_preset") {
        None => "crane".to_string(),
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => return Err(CraneError::config("model_preset", format!("expected a name, got {other}"))),
    };
    let fragment: toml::Table = toml::from_str(model_preset(&name)?).expect("shipped model presets are valid TOML");
    merge(&mut table, fragment);
    apply_sets(&mut table)?;
    // The path names the key at fault (`lr`, `model.knn_k`), not just the preset or file.
    let cfg: TrainConfig = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let mut msg = e.inner().message().to_string();
        if path == "ks" {
            msg.push_str(" (a list of cut-offs: --set 'ks=[10,20]')");
        }
        if let Some(near) = misplaced(&path, &msg).or_else(|| did_you_mean(&msg)) {
            msg = format!("{msg}; did you mean `{near}`?");
        }
        // A config file is named beside the key; a preset needs no naming.
        let preset = dataset_preset(source.trim_start_matches("preset ")).is_ok();
        let at = match (path.as_str(), preset) {
            ("." | "", _) => source.to_string(),
            (_, true) => path,
            (_, false) => format!("{path} (in {source})"),
        };
        CraneError::config(&at, msg)
    })?;
    for (field, n) in [
        ("batch_size", cfg.batch_size),
        ("epochs", cfg.epochs),
        ("eval_block", cfg.eval_block),
        ("block_mb", cfg.block_mb),
    ] {
        if n == 0 {
            return Err(CraneError::config(field, "must be at least 1"));
        }
    }
    if cfg.ks.is_empty() {
        return Err(CraneError::config("ks", "needs at least one cut-off, e.g. [10, 20]"));
    }
    cfg.valid_metric_parts()?;
    if cfg.refresh == GraphRefresh::EveryNSteps(0) {
        return Err(CraneError::config("refresh", "every_n_steps must be at least 1"));
    }
    if cfg.adam_idle == AdamIdle::Skip && matches!(cfg.engine, EngineKind::Gpu | EngineKind::GpuHost) {
        return Err(CraneError::config("adam_idle", crate::engine::gpu::SKIP_ON_GPU));
    }
    crate::data::parse_modalities(&cfg.modalities)?;
    if !(cfg.lr > 0.0 && cfg.lr.is_finite()) {
        return Err(CraneError::config("lr", format!("must be a positive number, got {}", cfg.lr)));
    }
    // A switch that would silently do nothing is refused rather than ignored.
    if cfg.tf32 && cfg.engine != EngineKind::Gpu {
        return Err(CraneError::config("tf32", "applies to engine = \"gpu\" only (cuBLAS on tensor cores)"));
    }
    Ok(cfg)
}

/// The settings in which `was` and `now` differ, as `key: was → now` (dotted keys, at most
/// five, then a count), for refusals of a folder made with other settings.
pub fn differences(was: &TrainConfig, now: &TrainConfig) -> String {
    // The top level and `model` are flattened; any other value (an enum such as
    // `refresh = { every_n_steps = 18 }`) is shown whole, strings without quotes.
    fn flat(v: &serde_json::Value) -> Vec<(String, String)> {
        let show = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
        let mut out = Vec::new();
        for (k, v) in v.as_object().into_iter().flatten() {
            match (k.as_str(), v.as_object()) {
                ("model", Some(m)) => out.extend(m.iter().map(|(mk, mv)| (format!("model.{mk}"), show(mv)))),
                _ => out.push((k.clone(), show(v))),
            }
        }
        out
    }
    let a = flat(&serde_json::to_value(was).expect("config serialises"));
    let b = flat(&serde_json::to_value(now).expect("config serialises"));
    let get = |list: &[(String, String)], k: &str| {
        list.iter().find(|(key, _)| key == k).map_or("(absent)".to_string(), |(_, v)| v.clone())
    };
    let mut keys: Vec<&String> = a.iter().chain(&b).map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| get(&a, k) != get(&b, k))
        .map(|k| format!("{k}: {} → {}", get(&a, k), get(&b, k)))
        .collect();
    match diffs.len() {
        0 => "no setting differs".to_string(),
        n if n > 5 => format!("{} and {} more", diffs[..5].join(", "), n - 5),
        _ => diffs.join(", "),
    }
}

/// An unknown key that is a setting at the other level (`rounds` for `model.rounds`,
/// `model.epochs` for `epochs`): the key as it should be written.
fn misplaced(path: &str, msg: &str) -> Option<String> {
    let given = msg.strip_prefix("unknown field `")?.split('`').next()?;
    // serde_path_to_error's path ends with the unknown key itself.
    let at = path.rsplit_once('.').map_or("", |(parent, _)| parent);
    let keys = |v: serde_json::Value| -> Vec<String> { v.as_object().map_or(vec![], |m| m.keys().cloned().collect()) };
    let top = keys(serde_json::to_value(TrainConfig::default()).expect("config serialises"));
    let model = keys(serde_json::to_value(crane_reference::config::ModelConfig::default()).expect("serialises"));
    match at {
        "model" if top.iter().any(|k| k == given) => Some(given.to_string()),
        "" if model.iter().any(|k| k == given) => Some(format!("model.{given}")),
        _ => None,
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown variant"), the listed
/// name closest to `x` when it is close (Jaro-Winkler similarity ≥ 0.8, `strsim`).
fn did_you_mean(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `").or_else(|| msg.strip_prefix("unknown variant `"))?;
    let (given, rest) = rest.split_once('`')?;
    let (_, listed) = rest.split_once("expected")?;
    listed
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// The metric names of [`crate::eval::Metrics`].
pub const METRIC_NAMES: [&str; 4] = ["recall", "ndcg", "precision", "map"];

impl TrainConfig {
    /// The load options this config asks for besides the split: the `modalities` (named
    /// explicitly unless the default) and the kNN graph folder of
    /// `model.item_graph_source = { files = .. }`.
    pub fn data_options(&self) -> Result<(Option<[String; 2]>, Option<std::path::PathBuf>)> {
        let names = crate::data::parse_modalities(&self.modalities)?;
        let named = (names != crate::data::DEFAULT_MODALITIES.map(String::from)).then_some(names);
        let dir = match &self.model.item_graph_source {
            crane_reference::config::ItemGraphSource::Files { dir, .. } if self.model.item_graph => {
                Some(std::path::PathBuf::from(dir))
            }
            _ => None,
        };
        Ok((named, dir))
    }

    /// `valid_metric` as (name, K), refused when malformed or when K is not in `ks` (early
    /// stopping would otherwise watch a metric that is never computed).
    pub fn valid_metric_parts(&self) -> Result<(&str, usize)> {
        let bad = |why: String| CraneError::config("valid_metric", why);
        let (name, k) = self
            .valid_metric
            .split_once('@')
            .ok_or_else(|| bad(format!("`{}` is not name@K (e.g. recall@20)", self.valid_metric)))?;
        if !METRIC_NAMES.contains(&name) {
            return Err(bad(format!("`{name}` is not one of {}", METRIC_NAMES.join(", "))));
        }
        let k: usize = k.parse().map_err(|_| bad(format!("`{k}` in `{}` is not a cut-off K", self.valid_metric)))?;
        if !self.ks.contains(&k) {
            return Err(bad(format!(
                "{} needs K = {k} among the cut-offs ks = {:?}; add it to ks or choose another metric",
                self.valid_metric, self.ks
            )));
        }
        Ok((name, k))
    }
}
