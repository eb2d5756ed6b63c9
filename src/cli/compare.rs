//! `crane compare`: several models with several seeds each, and the table a paper would print.

use super::{prepare, TrainArgs};
use crane::error::Result;
use std::path::PathBuf;

/// Train several models with several seeds each and write compare.md / compare.csv (mean ± std
/// over seeds, best marked, CRANE's improvement and a paired t-test). Finished runs are kept and
/// skipped when run again (only for the same data: their manifest's data fingerprint is
/// checked). `--set MODEL:key=value` applies to one model's runs only (e.g. `--set
/// bpr:model.lambda=0.1`, its validation-selected grid point).
#[derive(clap::Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// Comma-separated model presets.
    #[arg(long, default_value = "bpr,lightgcn,freedom,crane")]
    pub models: String,
    /// Number of seeds (the first N of 9, 672, 5368, 12784, 2023, then 1, 2, ...).
    #[arg(long, default_value_t = 5)]
    pub seeds: usize,
    /// Write the report from the runs already finished; train nothing.
    #[arg(long)]
    pub report_only: bool,
}

pub fn run(a: CompareArgs) -> Result<()> {
    let CompareArgs { train: args, models, seeds, report_only } = a;
    super::refuse_overwrite(&args, "compare")?;
    let models: Vec<String> = models.split(',').map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect();
    // `MODEL:key=value` sets belong to one model's runs, not to the shared base config.
    let (global_sets, scoped_sets) = crane::compare::split_scoped_sets(&args.sets, &models)?;
    let global = TrainArgs { sets: global_sets, ..args.clone() };
    let mut p = prepare(&global)?;
    // The config source and the run folder name do not depend on the data read.
    let (base, source, name) = (p.base.clone(), p.source.clone(), p.name.clone());
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("compare-{name}")));
    let seeds: Vec<u64> = crane::compare::DEFAULT_SEEDS.iter().copied().chain(1..).take(seeds).collect();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
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
    // A model whose own settings read a kNN folder (`--set freedom:model.item_graph_source=
    // { files = .. }`): the data is read again with it (one folder per comparison).
    if let Some(dir) = graph_dir(&spec)? {
        if p.ds.knn_files.is_none() {
            p = super::prepare_with_graph_dir(&global, Some(dir))?;
        }
    }
    let (ds, synthetic) = (&p.ds, p.synthetic);
    let features = if synthetic {
        "GENERATED synthetic interactions and features (crane synth --like)".to_string()
    } else if let Some(g) = &ds.generated_features {
        // `features.json` says what was generated: a whole synthetic dataset, or features (or
        // feature vectors fitted to a real graph) for another folder's interactions.
        let what = crane::plot::generated_what(g);
        if what.starts_with("synthetic") {
            format!("GENERATED data: {what}")
        } else if what.contains("GENERATED") {
            format!("the folder's interactions; {what}")
        } else {
            format!("the folder's interactions with GENERATED features: {what}")
        }
    } else if ds.present_modalities().is_empty() {
        "real interactions, no feature files".to_string()
    } else {
        "real interactions and feature files".to_string()
    };
    let features = format!("{features}; modalities: {}", ds.modalities_used());
    // Each model's own estimate (crane-code's attention and CRANE's RCA differ widely).
    let est = crane::compare::memory_estimates(ds, &spec, args.memory_budget)?;
    let est: Vec<String> = est.iter().map(|(m, mb)| format!("{m} {mb:.0} MB")).collect();
    eprintln!("estimated peak memory per run: {}", est.join(", "));
    let report = crane::train::Reporter {
        bars: !args.no_progress,
        multi: (!args.no_progress).then(indicatif::MultiProgress::new),
        tag: String::new(),
    };
    let rows = crane::compare::run_all(ds, &spec, &report)?;
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
    // The figures of the report (a failure is a warning: the comparison itself is done).
    super::plot::after_run("the comparison", || crane::plot::compare::plot(&out, None));
    super::plot::after_run("the learning curves", || crane::plot::curves::plot(std::slice::from_ref(&out), None));
    Ok(())
}

/// The kNN folder the compared models' configs read (`None` when none does); an error when two
/// models name different folders.
fn graph_dir(spec: &crane::compare::CompareSpec) -> Result<Option<PathBuf>> {
    let mut found: Option<(String, PathBuf)> = None;
    for (m, cfg) in crane::compare::model_configs(spec)? {
        if let Some(dir) = cfg.data_options()?.1 {
            match &found {
                Some((m0, d0)) if *d0 != dir => {
                    return Err(crane::error::CraneError::config(
                        "model.item_graph_source",
                        format!(
                            "{m0} reads the kNN files of {} and {m} those of {}: compare them in separate runs",
                            d0.display(),
                            dir.display()
                        ),
                    ))
                }
                Some(_) => {}
                None => found = Some((m, dir)),
            }
        }
    }
    Ok(found.map(|f| f.1))
}
