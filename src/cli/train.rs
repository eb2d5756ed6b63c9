//! `crane train`: train a model and report validation and test metrics.

use super::{check_memory, prepare, TrainArgs};
use crane::error::{CraneError, Result};
use std::path::Path;

pub fn run(args: TrainArgs) -> Result<()> {
    let p = prepare(&args)?;
    let (ds, cfg) = (&p.ds, &p.cfg);
    let out = args.out.clone().unwrap_or_else(|| super::default_train_out(&p.name, cfg));
    let st = ds.stats();
    let modalities = ds.present_modalities();
    eprintln!(
        "{} ({}): {} users, {} items, {} train interactions; features: {}{}",
        ds.name,
        ds.layout,
        st.users,
        st.items - st.absent_item_ids,
        st.train,
        if modalities.is_empty() { "none".to_string() } else { modalities.join(", ") },
        if p.synthetic {
            " (GENERATED synthetic data and features)".to_string()
        } else {
            ds.generated_features.as_ref().map_or(String::new(), |_| " (GENERATED features)".to_string())
        }
    );
    eprintln!("modalities: {}", ds.modalities_used());
    let threads = rayon::current_num_threads();
    let plural = if threads == 1 { "" } else { "s" };
    eprintln!("model {} on the {:?} engine, {threads} thread{plural}", cfg.model_preset, cfg.engine);
    refuse_earlier_run(&out, &args)?;
    check_memory(ds, cfg, args.memory_budget)?;
    let _lock = crane::train::lock_run_dir(ds, cfg, &out)?;
    if args.overwrite {
        remove_earlier_run(&out)?;
    }
    let report = crane::train::Reporter::new(!args.no_progress);
    let r = crane::train::train_locked(ds, cfg, Some(&out), &report, args.resume, None)?;
    println!(
        "best epoch {} of {} ({:.2}s per epoch, peak memory {:.0} MB; selected on validation {})",
        r.best_epoch, r.epochs_run, r.seconds_per_epoch, r.peak_memory_mb, cfg.valid_metric
    );
    println!("valid      {}", r.valid.summary());
    println!("test       {}", r.test.summary());
    println!("popularity {}  (test, for reference)", r.popularity_test.summary());
    println!("results in {}", out.join("results.json").display());
    Ok(())
}

/// Nothing already written is lost by accident: a folder holding an earlier run (its
/// results.json or state.safetensors) is only trained into with --resume or --overwrite.
fn refuse_earlier_run(out: &Path, args: &TrainArgs) -> Result<()> {
    if args.resume || args.overwrite {
        return Ok(());
    }
    match ["results.json", "state.safetensors"].iter().map(|f| out.join(f)).find(|f| f.exists()) {
        Some(f) => Err(CraneError::file(
            &f,
            "belongs to an earlier run in this folder; pass --resume to continue it, --overwrite to train again \
             from scratch (replacing its files), or another --out",
        )),
        None => Ok(()),
    }
}

/// `--overwrite`: the earlier run's files go before training starts (under the run's lock), so
/// a new run that fails part-way never leaves the old results beside its own manifest.
fn remove_earlier_run(out: &Path) -> Result<()> {
    let entries = std::fs::read_dir(out).map_err(|e| CraneError::io(out, "read", e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let earlier = matches!(
            name.as_str(),
            "results.json" | "state.safetensors" | "checkpoint.safetensors" | "history.jsonl" | "history.csv"
        ) || (name.starts_with("results-") && name.ends_with("-epochs.json"));
        if earlier {
            std::fs::remove_file(entry.path()).map_err(|e| CraneError::io(&entry.path(), "remove", e))?;
        }
    }
    Ok(())
}
