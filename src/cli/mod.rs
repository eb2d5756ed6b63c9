//! The subcommands of the `crane` binary, one module each (`crane train` is `train.rs`, ...),
//! each owning its arguments and its one `run` function; what several share is here.

pub mod bench;
pub mod compare;
pub mod data;
pub mod eval;
pub mod grid;
pub mod plot;
pub mod recommend;
pub mod synth;
pub mod train;
pub mod verify;

use crane::config::TrainConfig;
use crane::data::{synth as gen, Dataset, LoadOptions};
use crane::error::{CraneError, Result};
use std::path::PathBuf;

/// The options of every command that trains (`train`, `bench`, `compare`, `grid`).
#[derive(clap::Args, Clone)]
pub struct TrainArgs {
    /// Dataset folder: the MMRec layout (`<name>.inter`) or the LATTICE JSON layout
    /// (`train.json`, `val.json`, `test.json`), with `<modality>_feat.npy` files beside it.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Generate (once) and use a synthetic dataset of this shape: tiny, baby, sports, clothing,
    /// electronics. Results on it use generated features.
    #[arg(long)]
    pub like: Option<String>,
    /// Scale of the synthetic dataset.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Preset name (Table 3): baby, sports, clothing, electronics, tiny, or tiktok (Baby's column
    /// with image and audio). Default: the name of --like or of the data folder, so a folder
    /// named otherwise needs it (or --config).
    #[arg(long)]
    pub dataset: Option<String>,
    /// A TOML config instead of the dataset preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override any config value, e.g. --set model.knn_k=10 --set model_preset=lightgcn.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output folder. `train`: the run's results.json, history.jsonl, history.csv, manifest and
    /// checkpoints (default runs/<dataset>, or runs/<dataset>-<model_preset> for a preset other
    /// than crane). `compare` and `grid`: one run folder per model and
    /// seed (per point) and the report (default runs/compare-<dataset>, runs/grid-<dataset>-<model>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Split seed when the file has no x_label: a number or paper1..paper5.
    #[arg(long, default_value = "paper1")]
    pub split_seed: String,
    /// Drop users with fewer interactions (the paper's preprocessing uses 4).
    #[arg(long, default_value_t = 0)]
    pub min_user_interactions: usize,
    /// Hide the per-epoch progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// `train`: continue the run saved in the output folder (state.safetensors) to the same
    /// result; the state must have been made from the same data. (`compare` and `grid` always
    /// keep finished runs and resume interrupted ones.)
    #[arg(long)]
    pub resume: bool,
    /// `train`: train from scratch into a folder that holds an earlier run, replacing its files
    /// (without it, or --resume, such a folder is refused).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Refuse to start when the estimated peak memory exceeds this many GB (a run over the
    /// machine's available memory is always refused).
    #[arg(long)]
    pub memory_budget: Option<f64>,
}

/// `--overwrite` belongs to `crane train`; elsewhere it is refused rather than ignored
/// (`compare` and `grid` keep finished runs and resume interrupted ones by design, which is also
/// why they accept `--resume` and need it not).
pub fn refuse_overwrite(args: &TrainArgs, command: &str) -> Result<()> {
    if args.overwrite {
        return Err(CraneError::config(
            "--overwrite",
            format!(
                "applies to `crane train`; `crane {command}` keeps finished runs (move a run folder away to train \
                 it again)"
            ),
        ));
    }
    Ok(())
}

/// The default run folder of `crane train`: `runs/<dataset>` for the dataset preset's own
/// model (CRANE), `runs/<dataset>-<model_preset>` for another preset, so that runs of
/// different models do not meet in one folder.
pub fn default_train_out(name: &str, cfg: &TrainConfig) -> PathBuf {
    match cfg.model_preset.as_str() {
        "crane" | "" => PathBuf::from("runs").join(name),
        preset => PathBuf::from("runs").join(format!("{name}-{preset}")),
    }
}

/// What [`prepare`] resolves: the data, the config, the preset's name, whether the data is
/// synthetic, and the base TOML with its source (for `compare` and `grid`).
pub struct Prepared {
    pub ds: Dataset,
    pub cfg: TrainConfig,
    pub name: String,
    pub synthetic: bool,
    pub base: String,
    pub source: String,
}

/// Checks the model settings against the data (a bad one is refused before any estimate is
/// printed: the estimate of an impossible run means nothing), prints the memory estimate and
/// refuses a run over the budget or the available memory.
pub fn check_memory(ds: &Dataset, cfg: &TrainConfig, budget_gb: Option<f64>) -> Result<f64> {
    cfg.model.validate(ds.n_items)?;
    let est = crane::memory::estimate_peak_mb(ds, cfg);
    eprintln!("estimated peak memory {:.0} MB", est);
    crane::memory::check_budget(est, budget_gb, "the run is")?;
    crane::memory::check_available(est, ds, "the run is")?;
    Ok(est)
}

/// `--split-seed`'s value.
pub fn split_seed(s: &str) -> Result<u64> {
    crane::data::split::parse_split_seed(s)
        .ok_or_else(|| CraneError::config("--split-seed", format!("`{s}` is neither a number nor paper1..paper5")))
}

/// Prints a dataset's warnings.
pub fn print_warnings(ds: &Dataset) {
    for w in &ds.warnings {
        eprintln!("warning: {w}");
    }
}

/// Resolves the data folder (generating synthetic data for --like) and the config.
pub fn prepare(args: &TrainArgs) -> Result<Prepared> {
    prepare_with_graph_dir(args, None)
}

/// [`prepare`], reading the kNN files of `graph_dir` with the data whatever the base config
/// says (`compare`: a model's own `--set MODEL:model.item_graph_source={ files = .. }`).
pub fn prepare_with_graph_dir(args: &TrainArgs, graph_dir: Option<PathBuf>) -> Result<Prepared> {
    // The config is resolved (and refused) before any synthetic data is generated, so a
    // refused `--set` leaves nothing behind.
    let (dir, generate) = match (&args.data_dir, &args.like) {
        (Some(d), None) if !d.is_dir() => {
            let what = if d.exists() { "is not a folder" } else { "does not exist" };
            return Err(CraneError::file(
                d,
                format!(
                    "{what}; --data-dir takes a dataset folder (MMRec's `<name>.inter` or crane's \
                     train/val/test.json, with the feature .npy files)"
                ),
            ));
        }
        (Some(d), None) => (d.clone(), None),
        (None, Some(like)) => {
            let p = gen::preset(like)?.scaled(args.scale)?;
            let dir = PathBuf::from("runs/data").join(if args.scale == 1.0 {
                like.clone()
            } else {
                format!("{like}-x{}", args.scale)
            });
            let missing = !dir.join(format!("{}.inter", p.name)).exists();
            (dir, missing.then_some(p))
        }
        (Some(_), Some(_)) => return Err(CraneError::config("--data-dir/--like", "give one of them, not both")),
        (None, None) => {
            return Err(CraneError::config("--data-dir/--like", "give a dataset folder or a synthetic shape"))
        }
    };
    let name = match (&args.dataset, &args.like) {
        (Some(n), _) => n.clone(),
        (None, Some(l)) => l.clone(),
        (None, None) => dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
    };
    let (base, source) = match &args.config {
        Some(path) => {
            (std::fs::read_to_string(path).map_err(|e| CraneError::io(path, "read", e))?, path.display().to_string())
        }
        None => {
            let preset = crane::config::dataset_preset(&name).map_err(|e| match (&args.dataset, &args.like) {
                (None, None) => CraneError::config(
                    "--dataset",
                    format!(
                        "not given, and the data folder's name `{name}` names no preset; pass --dataset baby, \
                         sports, clothing, electronics, tiny or tiktok, or --config FILE"
                    ),
                ),
                _ => e,
            })?;
            (preset.to_string(), format!("preset {name}"))
        }
    };
    let cfg = crane::config::resolve(&base, &source, &args.sets)?;
    if cfg.engine == crane::config::EngineKind::Gpu {
        // Before any data is generated or read: without a device this is the whole answer.
        crane_gpu::probe_device().map_err(|e| CraneError::Invalid(e.to_string()))?;
    }
    let synthetic = args.like.is_some();
    if let Some(p) = generate {
        eprintln!("generating synthetic `{}` data ({} users, {} items) in {}", p.name, p.users, p.items, dir.display());
        gen::write(&dir, p.name, &gen::generate(&p, 2024))?;
    }
    let (modalities, item_graph_dir) = cfg.data_options()?;
    let item_graph_dir = graph_dir.or(item_graph_dir);
    let opts = LoadOptions {
        split_seed: split_seed(&args.split_seed)?,
        min_user_interactions: args.min_user_interactions,
        load_features: true,
        modalities,
        item_graph_dir,
    };
    let ds = crane::data::load_dataset(&dir, &opts)?;
    print_warnings(&ds);
    Ok(Prepared { ds, cfg, name, synthetic, base, source })
}
