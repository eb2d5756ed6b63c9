//! The `crane` command line.

use clap::{Parser, Subcommand};
use crane::data::{self, synth, LoadOptions};
use crane::error::{CraneError, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "crane", version, about = "CRANE multimodal recommendation: data, training, evaluation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic MMRec-layout dataset with the shape of a paper dataset.
    /// With --features-for: write generated feature files for an existing interaction set.
    Synth {
        /// tiny, baby, sports, clothing or electronics.
        #[arg(long, required_unless_present = "features_for", conflicts_with = "features_for")]
        like: Option<String>,
        /// Multiply users, items and interactions by this factor.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        #[arg(long, default_value_t = 2024)]
        seed: u64,
        /// A dataset folder (either layout): write image_feat.npy (n_items x 4096) and
        /// text_feat.npy (n_items x 384) for its items instead of a whole dataset.
        #[arg(long)]
        features_for: Option<PathBuf>,
        /// With --features-for: `random` (no signal, a control) or `planted` (signal from the
        /// training split only).
        #[arg(long, default_value = "planted")]
        kind: String,
        /// Output folder (created); files are `<like>.inter`, `image_feat.npy`, `text_feat.npy`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Train a model and report validation and test metrics (results.json, history.csv).
    Train(TrainArgs),
    /// Time one training epoch split by stage, evaluation, and peak memory.
    Bench(TrainArgs),
    /// Evaluate a checkpoint on validation and test; optionally export each test user's top-K.
    Eval {
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        /// Write the top-K list of every test user (original ids) to this TSV.
        #[arg(long)]
        export_topk: Option<PathBuf>,
        #[arg(short, long, default_value_t = 20)]
        k: usize,
    },
    /// Top-k items for one user (original id) from a checkpoint, training items excluded.
    Recommend {
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        /// The user's original id: the number in the .inter file, or its name in user2id.json.
        #[arg(long)]
        user: String,
        #[arg(short, long, default_value_t = 20)]
        k: usize,
    },
    /// Train several models with several seeds each and write compare.md / compare.csv (mean ±
    /// std over seeds, best marked, CRANE's improvement and a paired t-test). Finished runs are
    /// kept and skipped when run again. `--set MODEL:key=value` applies to one model's runs only
    /// (e.g. `--set bpr:model.lambda=0.1`, its validation-selected grid point).
    Compare {
        #[command(flatten)]
        train: TrainArgs,
        /// Comma-separated model presets.
        #[arg(long, default_value = "bpr,lightgcn,freedom,crane")]
        models: String,
        /// Number of seeds (the first N of 9, 672, 5368, 12784, 2023, then 1, 2, ...).
        #[arg(long, default_value_t = 5)]
        seeds: usize,
        /// Write the report from the runs already finished; train nothing.
        #[arg(long)]
        report_only: bool,
    },
    /// Time one forward + backward of crane-code's blocked attention over N items (random
    /// inputs), with its peak memory beside what the dense released code would hold.
    BenchAttention {
        /// Items (63001 = electronics).
        #[arg(long, default_value_t = 63_001)]
        items: usize,
        #[arg(long, default_value_t = 64)]
        dim: usize,
        #[arg(long, default_value_t = 4)]
        heads: usize,
        /// Query rows per block (default: the config's `attention_block_rows`).
        #[arg(long)]
        block_rows: Option<usize>,
        /// Rows from MB per [rows, N] block instead (the rule RCA's blocks use).
        #[arg(long, conflicts_with = "block_rows")]
        block_mb: Option<usize>,
        /// Keys per tile of the fused kernels.
        #[arg(long, default_value_t = crane::engine::cpu::attention::KEY_TILE)]
        key_tile: usize,
    },
    /// Train every point of a hyper-parameter grid (one seed) and select on validation
    /// Recall@20; writes grid.md and grid.csv. Finished points are kept.
    Grid {
        #[command(flatten)]
        train: TrainArgs,
        /// An axis `key=v1,v2,...` (repeatable), e.g. --grid model.lambda=1e-2,1e-3.
        #[arg(long = "grid", value_name = "KEY=V1,V2")]
        axes: Vec<String>,
    },
    /// Parity run: an engine against the f64 reference on small random graphs for every
    /// variant; prints a table (stage, max abs/rel error, tolerance, pass/fail) and exits
    /// non-zero on any failure. `--gpu` needs a CUDA device.
    Verify {
        /// Verify the GPU engine on CUDA device 0.
        #[arg(long, conflicts_with_all = ["cpu", "gpu_host"])]
        gpu: bool,
        /// Verify the fast CPU engine.
        #[arg(long, conflicts_with = "gpu_host")]
        cpu: bool,
        /// With --gpu: cuBLAS on TF32 tensor cores, checked against the TF32 bounds (looser
        /// than f32's; see `verify::Tolerances::TF32`).
        #[arg(long)]
        tf32: bool,
        /// Verify the GPU engine's code with its ops run on the CPU (no GPU needed; the CUDA
        /// ops themselves are checked only by --gpu).
        #[arg(long)]
        gpu_host: bool,
        /// Number of random graphs per variant.
        #[arg(long, default_value_t = 3)]
        graphs: u64,
    },
    /// Dataset inspection.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(clap::Args, Clone)]
struct TrainArgs {
    /// Dataset folder in the MMRec layout.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Generate (once) and use a synthetic dataset of this shape: tiny, baby, sports, clothing,
    /// electronics. Results on it use generated features.
    #[arg(long)]
    like: Option<String>,
    /// Scale of the synthetic dataset.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Preset name (Table 3): baby, sports, clothing, electronics, tiny. Default: the name of
    /// --like or of the data folder.
    #[arg(long)]
    dataset: Option<String>,
    /// A TOML config instead of the dataset preset.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override any config value, e.g. --set model.knn_k=10 --set model_preset=lightgcn.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Output folder for results.json, history.jsonl, history.csv. Default: runs/<dataset>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Split seed when the file has no x_label: a number or paper1..paper5.
    #[arg(long, default_value = "paper1")]
    split_seed: String,
    /// Drop users with fewer interactions (the paper's preprocessing uses 4).
    #[arg(long, default_value_t = 0)]
    min_user_interactions: usize,
    /// Hide the per-epoch progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Continue the run saved in the output folder (state.safetensors) to the same result.
    #[arg(long)]
    resume: bool,
    /// Refuse to start when the estimated peak memory exceeds this many GB.
    #[arg(long)]
    memory_budget: Option<f64>,
}

/// Prints the memory estimate and refuses a run over the budget.
fn check_memory(ds: &data::Dataset, cfg: &crane::config::TrainConfig, budget_gb: Option<f64>) -> Result<f64> {
    let est = crane::memory::estimate_peak_mb(ds, cfg);
    eprintln!("estimated peak memory {:.0} MB", est);
    crane::memory::check_budget(est, budget_gb, "the run is")?;
    Ok(est)
}

#[derive(Subcommand)]
enum DataCommand {
    /// Users, items, interactions, sparsity, per-split counts and feature shapes (Table 2).
    Stats {
        dir: PathBuf,
        /// Drop users with fewer interactions (the paper's preprocessing uses 4).
        #[arg(long, default_value_t = 0)]
        min_user_interactions: usize,
        /// Split seed when the file has no x_label: a number or paper1..paper5.
        #[arg(long, default_value = "paper1")]
        split_seed: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Convert another layout to the MMRec layout (.inter, mapping files and features copied).
    Import {
        /// The source layout: lattice-json.
        #[arg(long)]
        from: String,
        /// The source folder.
        src: PathBuf,
        /// The output folder; the .inter file is named after it.
        #[arg(long)]
        out: PathBuf,
    },
}

fn split_seed(s: &str) -> Result<u64> {
    data::split::parse_split_seed(s)
        .ok_or_else(|| CraneError::config("--split-seed", format!("`{s}` is neither a number nor paper1..paper5")))
}

/// Resolves the data folder (generating synthetic data for --like) and the config.
fn prepare(args: &TrainArgs) -> Result<(data::Dataset, crane::config::TrainConfig, String, bool)> {
    let p = prepare_with_base(args)?;
    Ok((p.0, p.1, p.2, p.3))
}

/// [`prepare`], also returning the base TOML and its source name (for `compare`).
#[allow(clippy::type_complexity)]
fn prepare_with_base(
    args: &TrainArgs,
) -> Result<(data::Dataset, crane::config::TrainConfig, String, bool, String, String)> {
    // The config is resolved (and refused) before any synthetic data is generated, so a
    // refused `--set` leaves nothing behind.
    let (dir, generate) = match (&args.data_dir, &args.like) {
        (Some(d), None) => (d.clone(), None),
        (None, Some(like)) => {
            let p = synth::preset(like)?.scaled(args.scale)?;
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
    let (text, source) = match &args.config {
        Some(path) => {
            (std::fs::read_to_string(path).map_err(|e| CraneError::io(path, "read", e))?, path.display().to_string())
        }
        None => (crane::config::dataset_preset(&name)?.to_string(), format!("preset {name}")),
    };
    let cfg = crane::config::resolve(&text, &source, &args.sets)?;
    let synthetic = args.like.is_some();
    if let Some(p) = generate {
        eprintln!("generating synthetic `{}` data ({} users, {} items) in {}", p.name, p.users, p.items, dir.display());
        synth::write(&dir, p.name, &synth::generate(&p, 2024))?;
    }
    let opts = LoadOptions {
        split_seed: split_seed(&args.split_seed)?,
        min_user_interactions: args.min_user_interactions,
        load_features: true,
    };
    let ds = data::load_dataset(&dir, &opts)?;
    for w in &ds.warnings {
        eprintln!("warning: {w}");
    }
    Ok((ds, cfg, name, synthetic, text, source))
}

type Loaded = (data::Dataset, Box<dyn crane::engine::Engine>, crane::config::TrainConfig);

/// Loads a checkpoint's config and parameters into an engine ready to score the dataset.
fn engine_from_checkpoint(path: &std::path::Path, dir: &std::path::Path) -> Result<Loaded> {
    let cfg = crane::checkpoint::read_meta(path)?.config;
    let ds = data::load_dataset(dir, &LoadOptions::default())?;
    let mut engine = crane::train::build_engine(&ds, &cfg)?;
    let (params, meta) = crane::checkpoint::load(path, &engine.params())?;
    eprintln!("checkpoint of dataset {} at epoch {}", meta.dataset, meta.epoch);
    engine.set_params(&params);
    engine.rebuild_item_graph()?;
    engine.prepare_scoring()?;
    Ok((ds, engine, cfg))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Eval { checkpoint, data_dir, export_topk, k } => {
            let (ds, engine, cfg) = engine_from_checkpoint(&checkpoint, &data_dir)?;
            let mask = ds.train_by_user();
            let mut ks = cfg.ks.clone();
            if !ks.contains(&k) {
                ks.push(k);
            }
            for (name, pairs) in [("valid", &ds.valid), ("test", &ds.test)] {
                let set = crane::eval::EvalSet::from_pairs(ds.n_users, pairs);
                let kmax = *ks.iter().max().unwrap();
                let rankings =
                    crane::eval::rank_users_with(&set, &mask, ds.n_items, kmax, cfg.eval_block, engine.as_ref());
                let m = crane::eval::metrics_from_rankings(&rankings, &set, &ks);
                println!("{name:<6} {}", m.summary());
                println!("{}", serde_json::to_string(&m.to_map()).expect("metrics serialise"));
                if let (Some(path), "test") = (&export_topk, name) {
                    crane::io::write_string_atomic(
                        path,
                        &crane::eval::topk_tsv(&set.users, &rankings, |u| ds.user_label(u), |i| ds.item_label(i), k),
                    )?;
                    eprintln!("top-{k} lists of {} test users written to {}", set.users.len(), path.display());
                }
            }
            Ok(())
        }
        Command::Recommend { checkpoint, data_dir, user, k } => {
            let (ds, engine, _) = engine_from_checkpoint(&checkpoint, &data_dir)?;
            let u = ds.find_user(&user).ok_or_else(|| {
                CraneError::config("--user", format!("user `{user}` is not in {}", data_dir.display()))
            })? as usize;
            let mut scores = vec![0f32; ds.n_items];
            engine.score_block(&[u as u32], &mut scores);
            let top = crane::eval::top_k(&scores, &ds.train_by_user()[u], k);
            for (rank, &i) in top.iter().enumerate() {
                println!("{}\t{}\t{:.4}", rank + 1, ds.item_label(i), scores[i as usize]);
            }
            Ok(())
        }
        Command::Train(args) => {
            let (ds, cfg, name, synthetic) = prepare(&args)?;
            let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&name));
            let st = ds.stats();
            eprintln!(
                "{} ({}): {} users, {} items, {} train interactions; features: {}{}",
                ds.name,
                ds.layout,
                st.users,
                st.items,
                st.train,
                if ds.present_modalities().is_empty() {
                    "none".to_string()
                } else {
                    ds.present_modalities().join(", ")
                },
                if synthetic {
                    " (GENERATED synthetic data and features)".to_string()
                } else {
                    ds.generated_features.as_ref().map_or(String::new(), |_| " (GENERATED features)".to_string())
                }
            );
            eprintln!(
                "model {} on the {:?} engine, {} threads",
                cfg.model_preset,
                cfg.engine,
                rayon::current_num_threads()
            );
            check_memory(&ds, &cfg, args.memory_budget)?;
            let r = crane::train::train_with(&ds, &cfg, Some(&out), !args.no_progress, args.resume, None)?;
            println!(
                "best epoch {} of {} ({:.2}s per epoch, peak memory {:.0} MB)",
                r.best_epoch, r.epochs_run, r.seconds_per_epoch, r.peak_memory_mb
            );
            println!("valid      {}", r.valid.summary());
            println!("test       {}", r.test.summary());
            println!("popularity {}  (test, for reference)", r.popularity_test.summary());
            println!("results in {}", out.join("results.json").display());
            Ok(())
        }
        Command::Compare { train: args, models, seeds, report_only } => {
            let models: Vec<String> =
                models.split(',').map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect();
            // `MODEL:key=value` sets belong to one model's runs, not to the shared base config.
            let (global_sets, scoped_sets) = crane::compare::split_scoped_sets(&args.sets, &models)?;
            let (ds, _, name, synthetic, base, source) =
                prepare_with_base(&TrainArgs { sets: global_sets, ..args.clone() })?;
            let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("compare-{name}")));
            let seeds: Vec<u64> = crane::compare::DEFAULT_SEEDS.iter().copied().chain(1..).take(seeds).collect();
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            let features = if synthetic {
                "GENERATED synthetic interactions and features (crane synth --like)".to_string()
            } else if let Some(g) = &ds.generated_features {
                format!("real interactions with GENERATED features: {}", g.replace('\n', " "))
            } else if ds.present_modalities().is_empty() {
                "real interactions, no feature files".to_string()
            } else {
                "real interactions and feature files".to_string()
            };
            let spec = crane::compare::CompareSpec {
                base_toml: &base,
                source: &source,
                models: models.clone(),
                seeds: seeds.clone(),
                sets: args.sets.clone(),
                out: out.clone(),
                command: command.clone(),
                report_only,
            };
            // Each model's own estimate (crane-code's attention and CRANE's RCA differ widely).
            let est = crane::compare::memory_estimates(&ds, &spec, args.memory_budget)?;
            let est: Vec<String> = est.iter().map(|(m, mb)| format!("{m} {mb:.0} MB")).collect();
            eprintln!("estimated peak memory per run: {}", est.join(", "));
            let report = crane::train::Reporter {
                bars: !args.no_progress,
                multi: (!args.no_progress).then(indicatif::MultiProgress::new),
                tag: String::new(),
            };
            let rows = crane::compare::run_all(&ds, &spec, &report)?;
            let mut header = vec![
                format!("# Comparison on {} ({})", ds.name, ds.layout),
                String::new(),
                format!("- data: `{}`; {}", ds.dir.display(), features),
                format!(
                    "- {} users, {} items, {} / {} / {} train / valid / test interactions",
                    ds.n_users,
                    ds.n_items,
                    ds.train.len(),
                    ds.valid.len(),
                    ds.test.len()
                ),
                format!(
                    "- models: {}; seeds: {:?}{}",
                    models.join(", "),
                    seeds,
                    if rows.len() < models.len() * seeds.len() {
                        format!(
                            " — PARTIAL: {} of {} runs finished (the seeds column counts each model's)",
                            rows.len(),
                            models.len() * seeds.len()
                        )
                    } else {
                        String::new()
                    }
                ),
                format!(
                    "- crane {} (commit {}); command: `{}`",
                    env!("CARGO_PKG_VERSION"),
                    option_env!("CRANE_GIT_COMMIT").unwrap_or("unknown"),
                    spec.command
                ),
            ];
            if !scoped_sets.is_empty() {
                let list = crane::compare::scoped_sets_summary(&scoped_sets);
                header.push(format!("- per-model settings (over the preset): {list}"));
            }
            crane::compare::write_reports(&out, &rows, &models, &header)?;
            println!("{}", crane::compare::markdown(&rows, &models, &header));
            println!("written: {} and {}", out.join("compare.md").display(), out.join("compare.csv").display());
            Ok(())
        }
        Command::Grid { train: args, axes } => {
            let (ds, cfg, name, _, base, source) = prepare_with_base(&args)?;
            let axes = axes.iter().map(|a| crane::compare::parse_grid_axis(a)).collect::<Result<Vec<_>>>()?;
            if axes.is_empty() {
                return Err(CraneError::config("--grid", "give at least one axis key=v1,v2,..."));
            }
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(format!("grid-{name}-{}", cfg.model_preset)));
            check_memory(&ds, &cfg, args.memory_budget)?;
            let report = crane::train::Reporter::new(!args.no_progress);
            let rows = crane::compare::run_grid(&ds, &base, &source, &args.sets, &axes, &out, &report)?;
            let header = vec![
                format!("# Grid for {} on {} ({})", cfg.model_preset, ds.name, ds.layout),
                String::new(),
                format!(
                    "- data: `{}`{}",
                    ds.dir.display(),
                    ds.generated_features.as_ref().map_or(String::new(), |_| "; GENERATED features".into())
                ),
                format!("- seed {}; command: `{}`", cfg.seed, std::env::args().collect::<Vec<_>>().join(" ")),
            ];
            let md = crane::compare::grid_markdown(&rows, &header);
            crane::io::write_string_atomic(&out.join("grid.md"), &md)?;
            let mut csv = String::from(
                "point,valid_recall@20,test_recall@10,test_recall@20,test_ndcg@10,test_ndcg@20,best_epoch\n",
            );
            for r in &rows {
                let t = |m: &str, k| r.summary.test.get(m, k).unwrap_or(f64::NAN);
                csv.push_str(&format!(
                    "\"{}\",{:.6},{:.6},{:.6},{:.6},{:.6},{}\n",
                    r.point.join(" "),
                    r.summary.valid.get("recall", 20).unwrap_or(f64::NAN),
                    t("recall", 10),
                    t("recall", 20),
                    t("ndcg", 10),
                    t("ndcg", 20),
                    r.summary.best_epoch
                ));
            }
            crane::io::write_string_atomic(&out.join("grid.csv"), &csv)?;
            println!("{md}");
            Ok(())
        }
        Command::Verify { gpu, cpu, gpu_host, tf32, graphs } => {
            if !gpu && !cpu && !gpu_host {
                return Err(CraneError::config("verify", "choose --gpu, --cpu or --gpu-host"));
            }
            // (clap's `requires` is satisfied by a flag's default `false`, so checked here.)
            if tf32 && !gpu {
                return Err(CraneError::config("verify", "--tf32 applies to --gpu only (cuBLAS on tensor cores)"));
            }
            let seeds: Vec<u64> = (1..=graphs.max(1)).collect();
            let rows = if gpu {
                crane::verify::gpu(&seeds, tf32)?
            } else if gpu_host {
                crane::verify::gpu_host(&seeds)?
            } else {
                let make =
                    |i: &crane::engine::ModelInputs, c: &crane_reference::ModelConfig, p: &crane_reference::Params| {
                        Ok(Box::new(crane::engine::cpu::CpuEngine::new(i, c, p)?.with_block_bytes(4 * 16 * 40))
                            as Box<dyn crane::engine::Engine>)
                    };
                crane::verify::run(&make, &seeds)?
            };
            print!("{}", crane::verify::table(&rows));
            let failed = rows.iter().filter(|r| !r.pass()).count();
            println!("{} comparisons, {} failed", rows.len(), failed);
            if failed > 0 {
                return Err(CraneError::Invalid(format!("verify: {failed} comparison(s) out of tolerance or not run")));
            }
            Ok(())
        }
        Command::BenchAttention { items, dim, heads, block_mb, block_rows, key_tile } => {
            use crane::engine::cpu::{attention, ops::Dense};
            if heads == 0 || dim % heads != 0 || items == 0 {
                return Err(CraneError::config("--heads/--dim/--items", "heads must divide dim; items positive"));
            }
            let rnd = |r: usize, c: usize, seed: u64| {
                Dense::from_fn(r, c, |i, j| {
                    (crane::sampling::mix_seed(&[seed, i as u64, j as u64]) % 2001) as f32 / 1000.0 - 1.0
                })
            };
            let x = rnd(items, dim, 1);
            let w: Vec<Dense> = (0..4).map(|k| rnd(dim, dim, 10 + k)).collect();
            let b: Vec<Dense> = (0..4).map(|k| rnd(1, dim, 20 + k)).collect();
            let dy = rnd(items, dim, 3);
            let p = attention::Mha { w: [&w[0], &w[1], &w[2], &w[3]], b: [&b[0], &b[1], &b[2], &b[3]], heads };
            let block = match (block_rows, block_mb) {
                (Some(r), _) => r.max(1),
                (None, Some(mb)) => crane::engine::cpu::rca::block_rows(items, mb << 20),
                (None, None) => crane::config::TrainConfig::default().attention_block_rows,
            };
            let before = crane::train::peak_memory_mb();
            let t0 = std::time::Instant::now();
            let (y, cache) = attention::forward_tiled(&x, &p, block, key_tile);
            let t1 = t0.elapsed();
            let (dx, _, _) = attention::backward_tiled(&p, &cache, &dy, block, key_tile);
            let t2 = t0.elapsed() - t1;
            let dh = (dim / heads) as f64;
            let n = items as f64;
            // Forward: QKᵀ and PV per head; backward: QKᵀ again, dP, dQ, dK, dV.
            let (f_fwd, f_bwd) = (2.0 * 2.0 * n * n * dh * heads as f64, 5.0 * 2.0 * n * n * dh * heads as f64);
            println!(
                "attention over {items} items, d = {dim}, {heads} heads, blocks of {block} query rows, {key_tile} keys per \
                 tile ({:.2} MB of tiles per thread)",
                (2 * block * key_tile.min(items) * 4) as f64 / (1 << 20) as f64
            );
            println!("forward   {:.2} s ({:.1} GFLOP/s)", t1.as_secs_f64(), f_fwd / t1.as_secs_f64() / 1e9);
            println!("backward  {:.2} s ({:.1} GFLOP/s)", t2.as_secs_f64(), f_bwd / t2.as_secs_f64() / 1e9);
            println!(
                "peak memory {:.0} MB (process before: {before:.0} MB); the dense released code holds 8 N^2 floats \
                 per attention copy: {:.1} GB",
                crane::train::peak_memory_mb(),
                8.0 * n * n * 4.0 / 1e9
            );
            println!(
                "checksum {:.6e} {:.6e}",
                y.data.iter().map(|v| *v as f64).sum::<f64>(),
                dx.data.iter().map(|v| *v as f64).sum::<f64>()
            );
            Ok(())
        }
        Command::Bench(args) => {
            let (ds, mut cfg, name, synthetic) = prepare(&args)?;
            cfg.epochs = 1;
            let est = check_memory(&ds, &cfg, args.memory_budget)?;
            let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("bench-{name}")));
            let r = crane::train::train(&ds, &cfg, Some(&out), !args.no_progress)?;
            let h = &r.history[0];
            println!(
                "dataset {} ({} users, {} items){}",
                ds.name,
                ds.n_users,
                ds.n_items,
                if synthetic { ", generated data" } else { "" }
            );
            println!("threads                 {}", r.threads);
            println!("epoch (training)        {:.2} s", h.seconds_train);
            println!("  sampling              {:.2} s", h.seconds_sampling);
            println!("  RCA + item graph      {:.2} s", h.stages.rca_graph.as_secs_f64());
            println!("  propagation (GCN, G_II) {:.2} s", h.stages.propagation.as_secs_f64());
            println!("  losses                {:.2} s", h.stages.losses.as_secs_f64());
            println!("  optimiser             {:.2} s", h.stages.optimiser.as_secs_f64());
            println!(
                "evaluation (validation) {:.2} s (of which z: {:.2} s)",
                h.seconds_eval,
                h.stages.scoring.as_secs_f64()
            );
            println!("peak memory             {:.0} MB (estimated {est:.0} MB)", r.peak_memory_mb);
            let (gf_rca, gf_plain) = {
                let n = ds.n_users + ds.n_items;
                let rows = crane::engine::cpu::rca_block_rows(n, cfg.block_mb << 20, cfg.min_block_rows);
                crane::bench::rca_gflops(n, cfg.model.feature_dim, rows)
            };
            println!("RCA block GEMMs         {gf_rca:.1} GFLOP/s (plain faer matmul of the same shape: {gf_plain:.1} GFLOP/s)");
            Ok(())
        }
        Command::Synth { like: None, seed, features_for: Some(src), kind, out, .. } => {
            let kind = match kind.as_str() {
                "random" => synth::FeatureKind::Random,
                "planted" => synth::FeatureKind::Planted,
                other => return Err(CraneError::config("--kind", format!("`{other}` is not random or planted"))),
            };
            let opts = LoadOptions { load_features: false, ..LoadOptions::default() };
            let ds = data::load_dataset(&src, &opts)?;
            eprintln!("{}: {} ({} items); generating {kind:?} features ...", src.display(), ds.layout, ds.n_items);
            let [v, t] = synth::features_for(&ds, kind, seed);
            std::fs::create_dir_all(&out).map_err(|e| CraneError::io(&out, "create directory", e))?;
            synth::write_marker(
                &out,
                &format!("GENERATED {kind:?} features (seed {seed}) for the interactions of {}", src.display()),
            )?;
            for (file, f) in [("image_feat.npy", &v), ("text_feat.npy", &t)] {
                data::npy::write_features(&out.join(file), f)?;
                eprintln!("wrote {} ({} x {}, generated: {kind:?})", out.join(file).display(), f.rows, f.cols);
            }
            Ok(())
        }
        Command::Synth { like, scale, seed, out, .. } => {
            let like = like.expect("clap requires --like without --features-for");
            let p = synth::preset(&like)?.scaled(scale)?;
            eprintln!("generating {} users, {} items, ~{} interactions ...", p.users, p.items, p.interactions);
            let s = synth::generate(&p, seed);
            synth::write(&out, p.name, &s)?;
            eprintln!("wrote {} ({} interactions)", out.display(), s.rows.len());
            Ok(())
        }
        Command::Data { command: DataCommand::Import { from, src, out } } => {
            if from != "lattice-json" {
                return Err(CraneError::config("--from", format!("`{from}` is not a known layout (lattice-json)")));
            }
            for p in data::lattice::import(&src, &out)? {
                eprintln!("wrote {}", p.display());
            }
            Ok(())
        }
        Command::Data { command: DataCommand::Stats { dir, min_user_interactions, split_seed: seed, json } } => {
            let opts = LoadOptions { min_user_interactions, split_seed: split_seed(&seed)?, load_features: true };
            let ds = data::load_dataset(&dir, &opts)?;
            eprintln!("{}: found the {}", dir.display(), ds.layout);
            for w in &ds.warnings {
                eprintln!("warning: {w}");
            }
            let stats = ds.stats();
            if json {
                println!("{}", serde_json::to_string_pretty(&stats).expect("stats serialise"));
            } else {
                println!("{stats}");
                println!("split          {:?}", ds.split);
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // `crane ... | head` must end quietly when the reader goes away, as Unix tools do, instead of
    // panicking on the failed write (Rust ignores SIGPIPE by default).
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    crane::keep_freed_memory();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
