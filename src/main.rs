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
    /// Dataset inspection.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(clap::Args)]
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
    let (dir, synthetic) = match (&args.data_dir, &args.like) {
        (Some(d), None) => (d.clone(), false),
        (None, Some(like)) => {
            let p = synth::preset(like)?.scaled(args.scale)?;
            let dir = PathBuf::from("runs/data").join(if args.scale == 1.0 {
                like.clone()
            } else {
                format!("{like}-x{}", args.scale)
            });
            if !dir.join(format!("{}.inter", p.name)).exists() {
                eprintln!(
                    "generating synthetic `{like}` data ({} users, {} items) in {}",
                    p.users,
                    p.items,
                    dir.display()
                );
                synth::write(&dir, p.name, &synth::generate(&p, 2024))?;
            }
            (dir, true)
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
    let opts = LoadOptions {
        split_seed: split_seed(&args.split_seed)?,
        min_user_interactions: args.min_user_interactions,
        load_features: true,
    };
    let ds = data::load_dataset(&dir, &opts)?;
    for w in &ds.warnings {
        eprintln!("warning: {w}");
    }
    Ok((ds, cfg, name, synthetic))
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
                let rankings = crane::eval::rank_users(&set, &mask, ds.n_items, kmax, cfg.eval_block, |u, o| {
                    engine.score_block(u, o)
                });
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
                if synthetic { " (GENERATED synthetic data and features)" } else { "" }
            );
            eprintln!(
                "model {} on the {:?} engine, {} threads",
                cfg.model_preset,
                cfg.engine,
                rayon::current_num_threads()
            );
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
        Command::Bench(args) => {
            let (ds, mut cfg, name, synthetic) = prepare(&args)?;
            cfg.epochs = 1;
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
            println!("peak memory             {:.0} MB", r.peak_memory_mb);
            let (gf_rca, gf_plain) =
                crane::bench::rca_gflops(ds.n_users + ds.n_items, cfg.model.feature_dim, cfg.block_mb << 20);
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
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
