//! `crane compare`: every model with every seed on one dataset, then a table a paper would
//! print (mean ± std over seeds, the best per column marked, CRANE's improvement over the best
//! baseline and a paired t-test over seeds).
//!
//! Finished runs (a `results.json` whose config matches) are kept and skipped when the
//! command is run again, and an interrupted run resumes from its `state.safetensors`, so a
//! long comparison can span several sittings.

use crate::config::{resolve, TrainConfig};
use crate::data::Dataset;
use crate::error::{CraneError, Result};
use crate::eval::Metrics;
use crate::io::write_string_atomic;
use crate::stats::{mean, paired_t_test, std_dev};
use crate::train::{lock_run_dir, train_locked, Reporter};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The columns of the table: (metric, K).
pub const COLUMNS: [(&str, usize); 4] = [("recall", 10), ("recall", 20), ("ndcg", 10), ("ndcg", 20)];

/// Default training seeds: the paper's five split seeds, reused as training seeds.
pub const DEFAULT_SEEDS: [u64; 5] = [9, 672, 5368, 12784, 2023];

/// What a comparison needs besides the data.
#[derive(Clone)]
pub struct CompareSpec<'a> {
    pub base_toml: &'a str,
    pub source: &'a str,
    pub models: Vec<String>,
    pub seeds: Vec<u64>,
    pub sets: Vec<String>,
    pub out: PathBuf,
    /// The command line, quoted in the report.
    pub command: String,
    /// Only report the runs already finished; train nothing.
    pub report_only: bool,
}

/// The part of `results.json` a comparison reads.
#[derive(Clone, Debug, Deserialize)]
pub struct RunSummary {
    pub config: TrainConfig,
    pub best_epoch: usize,
    pub valid: Metrics,
    pub test: Metrics,
    pub epochs_run: usize,
    pub seconds_per_epoch: f64,
    pub peak_memory_mb: f64,
}

/// One finished run.
#[derive(Clone, Debug)]
pub struct RunRow {
    pub model: String,
    pub seed: u64,
    pub summary: RunSummary,
    /// Whether this invocation trained it (false: kept from an earlier one).
    pub trained_now: bool,
}

/// The run folder of (model, seed).
pub fn run_dir(out: &Path, model: &str, seed: u64) -> PathBuf {
    out.join(model).join(format!("seed-{seed}"))
}

/// `(model, "key=value")` pairs of `--set MODEL:key=value`.
pub type ScopedSets = Vec<(String, String)>;

/// The report header's per-model settings: each model once, its settings in the order given,
/// e.g. ``bpr: `model.lambda=0.1`; lightgcn: `model.ui_layers=4`, `model.lambda=1e-4` ``.
pub fn scoped_sets_summary(scoped: &ScopedSets) -> String {
    let mut models: Vec<&str> = Vec::new();
    for (m, _) in scoped {
        if !models.contains(&m.as_str()) {
            models.push(m);
        }
    }
    let per_model = |m: &str| -> String {
        let sets: Vec<String> = scoped.iter().filter(|(x, _)| x == m).map(|(_, s)| format!("`{s}`")).collect();
        format!("{m}: {}", sets.join(", "))
    };
    models.iter().map(|m| per_model(m)).collect::<Vec<_>>().join("; ")
}

/// Splits `--set` values into those for every model and those scoped to one model
/// (`MODEL:key=value`, e.g. `bpr:model.lambda=0.1`), so each model can run at its own
/// validation-selected grid point. A scope that names no model of `models` is refused: it would
/// silently apply to nothing.
pub fn split_scoped_sets(sets: &[String], models: &[String]) -> Result<(Vec<String>, ScopedSets)> {
    let mut global = Vec::new();
    let mut scoped = Vec::new();
    for s in sets {
        let key = s.split_once('=').map_or(s.as_str(), |(k, _)| k);
        match key.split_once(':') {
            None => global.push(s.clone()),
            Some((model, _)) => {
                let model = model.trim();
                if !models.iter().any(|m| m == model) {
                    return Err(CraneError::config(
                        "--set",
                        format!("`{s}` is scoped to `{model}`, which is not among --models ({})", models.join(",")),
                    ));
                }
                let rest = &s[s.find(':').map_or(0, |i| i + 1)..];
                scoped.push((model.to_string(), rest.trim().to_string()));
            }
        }
    }
    Ok((global, scoped))
}

/// The `--set` list of one run: the global sets, then the preset and seed, then the sets scoped
/// to this model (last, so they win over the preset's values).
fn run_sets(spec: &CompareSpec, model: &str, seed: u64) -> Result<Vec<String>> {
    let (global, scoped) = split_scoped_sets(&spec.sets, &spec.models)?;
    let mut sets = global;
    sets.push(format!("model_preset={model}"));
    sets.push(format!("seed={seed}"));
    sets.extend(scoped.into_iter().filter(|(m, _)| m == model).map(|(_, s)| s));
    Ok(sets)
}

/// Each model's resolved config at the first seed, in `--models` order (the seed is the only
/// difference between a model's runs): what its memory estimate is made from, and resolved
/// before anything trains so that a bad (scoped) setting is refused now, not hours later when
/// its model's turn comes.
pub fn model_configs(spec: &CompareSpec) -> Result<Vec<(String, TrainConfig)>> {
    if spec.models.is_empty() || spec.seeds.is_empty() {
        return Err(CraneError::config("--models/--seeds", "need at least one model and one seed"));
    }
    spec.models
        .iter()
        .map(|m| Ok((m.clone(), resolve(spec.base_toml, spec.source, &run_sets(spec, m, spec.seeds[0])?)?)))
        .collect()
}

/// The peak-memory estimate of each model's runs (`[(model, MB)]`, `--models` order), and an
/// error naming the first model over `budget_gb` if one is.
pub fn memory_estimates(ds: &Dataset, spec: &CompareSpec, budget_gb: Option<f64>) -> Result<Vec<(String, f64)>> {
    let cfgs = model_configs(spec)?;
    // A bad setting is refused before any estimate is printed (it would describe no real run).
    for (_, cfg) in &cfgs {
        cfg.model.validate(ds.n_items)?;
    }
    let est: Vec<(String, f64)> =
        cfgs.into_iter().map(|(m, cfg)| (m, crate::memory::estimate_peak_mb(ds, &cfg))).collect();
    for (m, mb) in &est {
        crate::memory::check_budget(*mb, budget_gb, &format!("{m}'s runs are"))?;
        crate::memory::check_available(*mb, ds, &format!("{m}'s runs are"))?;
    }
    Ok(est)
}

/// Trains what is missing and returns every run, in model then seed order.
pub fn run_all(ds: &Dataset, spec: &CompareSpec, report: &Reporter) -> Result<Vec<RunRow>> {
    model_configs(spec)?;
    let total = (spec.models.len() * spec.seeds.len()) as u64;
    let overall = report.bars.then(|| {
        let b = indicatif::ProgressBar::new(total);
        let b = match &report.multi {
            Some(m) => m.add(b),
            None => b,
        };
        b.set_style(
            indicatif::ProgressStyle::with_template("comparison [{bar:30}] {pos}/{len} runs  {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    });
    let mut jobs = Vec::new();
    for model in &spec.models {
        for &seed in &spec.seeds {
            let cfg = resolve(spec.base_toml, spec.source, &run_sets(spec, model, seed)?)?;
            let dir = run_dir(&spec.out, model, seed);
            let r = Reporter { tag: format!("{model} seed {seed}"), ..report.clone() };
            jobs.push((model.clone(), seed, cfg, dir, r));
        }
    }
    let attempt = |(model, seed, cfg, dir, r): &(String, u64, TrainConfig, PathBuf, Reporter)| {
        if let Some(b) = &overall {
            b.set_message(format!("{model} seed {seed}"));
        }
        if !spec.report_only {
            return run_one(ds, cfg, dir, r).map(Some);
        }
        match read_summary(&dir.join("results.json"))? {
            Some(s) if s.config == *cfg => {
                check_same_data(dir, ds)?;
                Ok(Some((s, false)))
            }
            _ => {
                report.line(&format!("{model} seed {seed}: not finished, left out of the report"));
                if let Some(b) = &overall {
                    b.inc(1);
                }
                Ok(None)
            }
        }
    };
    let label = |j: &(String, u64, TrainConfig, PathBuf, Reporter)| format!("{} seed {}", j.0, j.1);
    let said = |(model, seed, ..): &(String, u64, TrainConfig, PathBuf, Reporter), d: &Option<(RunSummary, bool)>| {
        if let Some(d) = d {
            say_finished(model, *seed, d, report, overall.as_ref());
        }
    };
    let done = share_run_folders(&jobs, report, label, attempt, said)?;
    let rows: Vec<RunRow> = jobs
        .iter()
        .zip(done)
        .filter_map(|((model, seed, ..), d)| {
            d.map(|(summary, trained_now)| RunRow { model: model.clone(), seed: *seed, summary, trained_now })
        })
        .collect();
    if let Some(b) = overall {
        b.finish_and_clear();
    }
    Ok(rows)
}

/// A finished run said on the report and counted on the bar.
fn say_finished(
    model: &str,
    seed: u64,
    (summary, trained_now): &(RunSummary, bool),
    report: &Reporter,
    overall: Option<&indicatif::ProgressBar>,
) {
    report.line(&format!(
        "{model} seed {seed}: test {}  (best epoch {}{})",
        summary.test.summary(),
        summary.best_epoch,
        if *trained_now { "" } else { ", kept from an earlier run" }
    ));
    if let Some(b) = overall {
        b.inc(1);
    }
}

/// Runs every job with `attempt`, in order, sharing their run folders with other processes: a
/// job whose folder another process is training (`run.lock` held: [`CraneError::Busy`]) is put
/// off until the others are done and then waited for (kept when the holder finishes, resumed
/// when it was killed). So two `crane compare` or `crane grid` commands on one `--out` split the
/// runs between them instead of queueing, and each ends with every result. `finished` is called
/// as each job ends; the results come back in job order.
fn share_run_folders<J, T>(
    jobs: &[J],
    report: &Reporter,
    label: impl Fn(&J) -> String,
    mut attempt: impl FnMut(&J) -> Result<T>,
    mut finished: impl FnMut(&J, &T),
) -> Result<Vec<T>> {
    let mut out: Vec<Option<T>> = Vec::with_capacity(jobs.len());
    let mut deferred = Vec::new();
    for (k, job) in jobs.iter().enumerate() {
        match attempt(job) {
            Err(CraneError::Busy { msg, .. }) => {
                report.line(&format!(
                    "{}: {msg}; put off: the other runs first, then this one when it is free",
                    label(job)
                ));
                deferred.push(k);
                out.push(None);
            }
            other => {
                let t = other?;
                finished(job, &t);
                out.push(Some(t));
            }
        }
    }
    // Whichever put-off job comes free first is taken, so one holder that runs long does not
    // keep this process from the others; a pass that finds every one still held sleeps.
    let mut said = vec![false; jobs.len()];
    while !deferred.is_empty() {
        let before = deferred.len();
        let mut still = Vec::new();
        for k in std::mem::take(&mut deferred) {
            match attempt(&jobs[k]) {
                Err(CraneError::Busy { msg, .. }) => {
                    if !std::mem::replace(&mut said[k], true) {
                        report.line(&format!("{}: {msg}; waiting until it is free", label(&jobs[k])));
                    }
                    still.push(k);
                }
                other => {
                    let t = other?;
                    finished(&jobs[k], &t);
                    out[k] = Some(t);
                }
            }
        }
        if still.len() == before {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        deferred = still;
    }
    Ok(out.into_iter().map(|t| t.expect("every job, put off or not, has run")).collect())
}

/// Trains `cfg` into `dir` unless a finished run with the same config is there (then it is
/// kept), resuming an interrupted one. Returns the summary and whether it was trained now.
pub fn run_one(ds: &Dataset, cfg: &TrainConfig, dir: &Path, report: &Reporter) -> Result<(RunSummary, bool)> {
    if let Some(s) = finished_run(ds, cfg, dir)? {
        return Ok((s, false));
    }
    let _lock = lock_run_dir(ds, cfg, dir)?;
    // Looked at again under the lock: another process sharing the folder may have finished it.
    if let Some(s) = finished_run(ds, cfg, dir)? {
        return Ok((s, false));
    }
    // Resume an interrupted run (its state is checked against this data); a new one starts.
    let interrupted = dir.join("state.safetensors").exists();
    train_locked(ds, cfg, Some(dir), report, interrupted, None)?;
    let results = dir.join("results.json");
    let s = read_summary(&results)?.ok_or_else(|| CraneError::file(&results, "not written"))?;
    Ok((s, true))
}

/// The finished run in `dir` when it has `cfg` (and was made from `ds`); none when there is no
/// `results.json`; refused when the finished run has other settings (naming them).
fn finished_run(ds: &Dataset, cfg: &TrainConfig, dir: &Path) -> Result<Option<RunSummary>> {
    let results = dir.join("results.json");
    match read_summary(&results)? {
        Some(s) if s.config == *cfg => check_same_data(dir, ds).map(|()| Some(s)),
        Some(s) => Err(CraneError::file(
            &results,
            format!(
                "was made with other settings than this command asks for ({}); move the folder away or use another \
                 --out",
                crate::config::differences(&s.config, cfg)
            ),
        )),
        None => Ok(None),
    }
}

/// One point of a hyper-parameter grid.
#[derive(Clone, Debug)]
pub struct GridRow {
    /// `key=value` settings of this point.
    pub point: Vec<String>,
    pub summary: RunSummary,
}

/// Parses `key=v1,v2,...` into the key and its values.
pub fn parse_grid_axis(s: &str) -> Result<(String, Vec<String>)> {
    let (k, vs) =
        s.split_once('=').ok_or_else(|| CraneError::config("--grid", format!("`{s}` is not key=v1,v2,...")))?;
    let vals: Vec<String> = vs.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    if vals.is_empty() {
        return Err(CraneError::config("--grid", format!("`{s}` lists no values")));
    }
    Ok((k.trim().to_string(), vals))
}

/// Trains every point of the grid (one seed) and returns them in grid order; finished points
/// are kept. Selection is by validation Recall@20 ([`select_on_validation`]).
pub fn run_grid(
    ds: &Dataset,
    base_toml: &str,
    source: &str,
    sets: &[String],
    axes: &[(String, Vec<String>)],
    out: &Path,
    report: &Reporter,
) -> Result<Vec<GridRow>> {
    let points = grid_points(axes);
    let mut jobs = Vec::new();
    for (n, point) in points.iter().enumerate() {
        let cfg = resolve(base_toml, source, &[sets.to_vec(), point.clone()].concat())?;
        let dir = point_dir(out, point);
        let r = Reporter { tag: format!("grid {}/{} {}", n + 1, points.len(), point.join(" ")), ..report.clone() };
        jobs.push((point.clone(), cfg, dir, r));
    }
    let summaries = share_run_folders(
        &jobs,
        report,
        |(point, ..)| format!("grid point {}", point.join(" ")),
        |(_, cfg, dir, r)| run_one(ds, cfg, dir, r).map(|(s, _)| s),
        |(.., r), s| r.line(&format!("valid {}  test {}", s.valid.summary(), s.test.summary())),
    )?;
    Ok(jobs.into_iter().zip(summaries).map(|((point, ..), summary)| GridRow { point, summary }).collect())
}

/// Index of the point with the best value of its validation metric (`valid_metric`, Recall@20
/// by default; the first on ties).
pub fn select_on_validation(rows: &[GridRow]) -> usize {
    let v = |r: &GridRow| {
        let metric = r.summary.config.valid_metric_parts().ok();
        metric.and_then(|(m, k)| r.summary.valid.get(m, k)).unwrap_or(f64::NEG_INFINITY)
    };
    (0..rows.len()).fold(0, |b, k| if v(&rows[k]) > v(&rows[b]) { k } else { b })
}

/// The grid as Markdown: every point's validation and test metrics, the validation-selected
/// point marked, and (labelled as leaking the test set) what MMRec's test-selection would pick.
pub fn grid_markdown(rows: &[GridRow], header: &[String]) -> String {
    let mut s: String = header.iter().map(|h| format!("{h}\n")).collect();
    s.push_str("\n| point | valid R@20 | test R@10 | test R@20 | test N@10 | test N@20 | best epoch |\n|---|---|---|---|---|---|---|\n");
    let pick = select_on_validation(rows);
    let t = |r: &GridRow, m: &str, k| r.summary.test.get(m, k).unwrap_or(f64::NAN);
    for (k, r) in rows.iter().enumerate() {
        s.push_str(&format!(
            "| {}{} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} |\n",
            r.point.join(" "),
            if k == pick { " **(selected on validation)**" } else { "" },
            r.summary.valid.get("recall", 20).unwrap_or(f64::NAN),
            t(r, "recall", 10),
            t(r, "recall", 20),
            t(r, "ndcg", 10),
            t(r, "ndcg", 20),
            r.summary.best_epoch
        ));
    }
    let leak =
        (0..rows.len()).fold(0, |b, k| if t(&rows[k], "recall", 20) > t(&rows[b], "recall", 20) { k } else { b });
    s.push_str(&format!(
        "\nSelected on validation {}: `{}`. MMRec's search script would pick `{}` (best *test* \
         Recall@20, which leaks the test set; shown for comparison only).\n",
        rows[pick].summary.config.valid_metric,
        rows[pick].point.join(" "),
        rows[leak].point.join(" ")
    ));
    s
}

/// A finished run is kept only for the data it was made from: its `manifest.json` is checked
/// against `ds`'s fingerprint ([`crate::fingerprint::check_manifest`]).
fn check_same_data(dir: &Path, ds: &Dataset) -> Result<()> {
    let manifest = dir.join("manifest.json");
    if !manifest.is_file() {
        return Err(CraneError::file(
            &manifest,
            "missing beside a finished run's results.json: nothing tells which data it was made from; move the run \
             folder away to retrain it",
        ));
    }
    crate::fingerprint::check_manifest(&manifest, &ds.fingerprint)
}

fn read_summary(path: &Path) -> Result<Option<RunSummary>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| CraneError::io(path, "read", e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        CraneError::line(
            path,
            e.line(),
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("results-")) {
                format!(
                    "not a crane results file: {e}; this is a halving rung's record: move the point's folder away \
                     and run the search again (the point is trained again)"
                )
            } else {
                format!(
                    "not a crane results file: {e}; delete it and run the command again: the run is trained again, \
                     or resumed from its state.safetensors when that is there"
                )
            },
        )
    })
}

fn value(r: &RunRow, (metric, k): (&str, usize)) -> f64 {
    r.summary.test.get(metric, k).unwrap_or(f64::NAN)
}

/// Per-run rows: model, seed, best epoch, epochs, seconds per epoch, peak memory, test metrics.
pub fn csv(rows: &[RunRow]) -> String {
    let mut s = String::from("model,seed,best_epoch,epochs_run,seconds_per_epoch,peak_memory_mb");
    for (m, k) in COLUMNS {
        s.push_str(&format!(",{m}@{k}"));
    }
    s.push('\n');
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{:.3},{:.0}",
            r.model,
            r.seed,
            r.summary.best_epoch,
            r.summary.epochs_run,
            r.summary.seconds_per_epoch,
            r.summary.peak_memory_mb
        ));
        for c in COLUMNS {
            s.push_str(&format!(",{:.6}", value(r, c)));
        }
        s.push('\n');
    }
    s
}

/// The comparison table in Markdown. `header` lines go first (dataset, features, command).
/// The target model is `crane` when asked for, else the last model asked for; without a finished
/// run of it there is no improvement row.
pub fn markdown(rows: &[RunRow], models: &[String], header: &[String]) -> String {
    let mut s = String::new();
    for h in header {
        s.push_str(h);
        s.push('\n');
    }
    s.push('\n');
    let vals = |model: &str, c| -> Vec<f64> { rows.iter().filter(|r| r.model == model).map(|r| value(r, c)).collect() };
    // Models without a finished run are named, not tabulated (a partial report).
    let missing: Vec<&String> = models.iter().filter(|m| !rows.iter().any(|r| &r.model == *m)).collect();
    // The model the improvement is reported for: CRANE when asked for, else the last one asked
    // for; chosen before dropping unfinished models, so a partial report never promotes a
    // baseline to it.
    let target = if models.iter().any(|m| m == "crane") {
        "crane".to_string()
    } else {
        models.last().cloned().unwrap_or_default()
    };
    let target_missing = missing.contains(&&target);
    let models: Vec<String> = models.iter().filter(|m| !missing.contains(m)).cloned().collect();
    let models = &models[..];
    let name = |(m, k): (&str, usize)| format!("{}@{k}", if m == "recall" { "Recall" } else { "NDCG" });
    s.push_str("| model | seeds |");
    for c in COLUMNS {
        s.push_str(&format!(" {} |", name(c)));
    }
    s.push_str("\n|---|---|");
    s.push_str(&"---|".repeat(COLUMNS.len()));
    s.push('\n');
    let best: Vec<String> = COLUMNS
        .iter()
        .map(|&c| {
            models.iter().max_by(|a, b| mean(&vals(a, c)).total_cmp(&mean(&vals(b, c)))).cloned().unwrap_or_default()
        })
        .collect();
    for model in models {
        let n = rows.iter().filter(|r| &r.model == model).count();
        s.push_str(&format!("| {model} | {n} |"));
        for (ci, &c) in COLUMNS.iter().enumerate() {
            let v = vals(model, c);
            // One seed has no spread to report: "± 0.0000" would claim one.
            let cell = match v.len() {
                1 => format!("{:.4} (one seed)", v[0]),
                _ => format!("{:.4} ± {:.4}", mean(&v), std_dev(&v)),
            };
            if &best[ci] == model {
                s.push_str(&format!(" **{cell}** |"));
            } else {
                s.push_str(&format!(" {cell} |"));
            }
        }
        s.push('\n');
    }
    let baselines: Vec<&String> = models.iter().filter(|m| **m != target).collect();
    if target_missing {
        s.push_str(&format!("\nNo improvement row yet: {target} has no finished run.\n"));
    } else if !baselines.is_empty() {
        let mut imp = format!("| {target} vs best baseline: improvement | |");
        let mut pv = "| paired t-test over seeds: two-sided p (best baseline) | |".to_string();
        for &c in &COLUMNS {
            let tv = vals(&target, c);
            let b = baselines.iter().max_by(|a, b| mean(&vals(a, c)).total_cmp(&mean(&vals(b, c)))).unwrap();
            let bv = vals(b, c);
            imp.push_str(&format!(" {:+.2}% ({b}) |", 100.0 * (mean(&tv) / mean(&bv) - 1.0)));
            let paired: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.model == target)
                .filter_map(|r| {
                    rows.iter().find(|q| &q.model == *b && q.seed == r.seed).map(|q| (value(r, c), value(q, c)))
                })
                .collect();
            let (x, y): (Vec<f64>, Vec<f64>) = paired.into_iter().unzip();
            let (t, p) = paired_t_test(&x, &y);
            pv.push_str(&format!(" {} (t = {t:.2}, n = {}) |", format_p(p), x.len()));
        }
        s.push_str(&imp);
        s.push('\n');
        s.push_str(&pv);
        s.push('\n');
    }
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|m| m.as_str()).collect();
        s.push_str(&format!("\nNo finished run yet, so not in the table: {}.\n", names.join(", ")));
    }
    s.push_str(
        "\nTest metrics at the best validation epoch of each run (early stopping on validation Recall@20); \
                mean ± sample standard deviation over seeds; bold: best mean per column. The t-test pairs runs \
                with the same seed.\n",
    );
    s.push_str(&runs_markdown(rows));
    s
}

/// Every run as a row (model, seed, best and last epoch, speed, memory, test Recall/NDCG@20),
/// so a reader sees the spread behind each mean without opening `compare.csv`. Seconds per
/// epoch are wall time and include any pause of the run.
fn runs_markdown(rows: &[RunRow]) -> String {
    let mut s = String::from(
        "\n## Runs\n\n| model | seed | best epoch | epochs run | s / epoch | peak MB | Recall@20 | NDCG@20 |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let m = &r.summary;
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {:.0} | {:.4} | {:.4} |\n",
            r.model,
            r.seed,
            m.best_epoch,
            m.epochs_run,
            m.seconds_per_epoch,
            m.peak_memory_mb,
            value(r, ("recall", 20)),
            value(r, ("ndcg", 20))
        ));
    }
    s
}

fn format_p(p: f64) -> String {
    if p.is_nan() {
        "n/a".into()
    } else if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// Writes `compare.csv` and `compare.md` into `out` (atomically).
pub fn write_reports(out: &Path, rows: &[RunRow], models: &[String], header: &[String]) -> Result<()> {
    write_string_atomic(&out.join("compare.csv"), &csv(rows))?;
    write_string_atomic(&out.join("compare.md"), &markdown(rows, models, header))
}

/// One point at one rung of a successive-halving search.
#[derive(Clone, Debug)]
pub struct RungRow {
    /// 0-based rung.
    pub rung: usize,
    /// `key=value` settings of this point.
    pub point: Vec<String>,
    /// The epoch budget of the rung (`epochs`); the run may have stopped earlier.
    pub epochs: usize,
    pub summary: RunSummary,
    /// Whether the point goes on to the next rung (or, at the last rung, is the one selected).
    pub kept: bool,
}

/// What a successive-halving search needs besides the data and the grid.
#[derive(Clone, Debug)]
pub struct Halving {
    /// Grid points drawn (seeded) from the full grid; all of them when `None` or larger.
    pub sample: Option<usize>,
    /// The epoch budget of each rung, increasing.
    pub rungs: Vec<usize>,
    /// Each rung keeps the best `1/eta` of its points (at least one).
    pub eta: usize,
    /// Seed of the sample.
    pub seed: u64,
}

/// A grid point's run folder: its `key=value` settings joined by commas.
fn point_dir(out: &Path, point: &[String]) -> PathBuf {
    out.join(point.join(",").replace(['/', ' '], "_"))
}

/// The points of the full grid, in grid order.
pub fn grid_points(axes: &[(String, Vec<String>)]) -> Vec<Vec<String>> {
    let mut points: Vec<Vec<String>> = vec![Vec::new()];
    for (k, vals) in axes {
        points = points
            .into_iter()
            .flat_map(|p| vals.iter().map(move |v| [p.clone(), vec![format!("{k}={v}")]].concat()))
            .collect();
    }
    points
}

/// The value a point is selected on: its config's `valid_metric` on validation.
fn selection_value(s: &RunSummary) -> f64 {
    s.config.valid_metric_parts().ok().and_then(|(m, k)| s.valid.get(m, k)).unwrap_or(f64::NEG_INFINITY)
}

/// Successive halving over a (seeded) sample of the grid, selecting on validation only: every
/// sampled point trains `rungs[0]` epochs, the best `1/eta` go on to `rungs[1]` epochs
/// (continued from their state, not retrained), and so on; the best point of the last rung is
/// selected. Each point keeps one run folder across rungs, so an interrupted search (or a
/// rerun of the same command) continues where it stopped: a rung already reached is kept.
/// Returns every rung's rows.
#[allow(clippy::too_many_arguments)]
pub fn run_halving(
    ds: &Dataset,
    base_toml: &str,
    source: &str,
    sets: &[String],
    axes: &[(String, Vec<String>)],
    out: &Path,
    report: &Reporter,
    h: &Halving,
) -> Result<Vec<RungRow>> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    if h.rungs.is_empty() || h.rungs.windows(2).any(|w| w[0] >= w[1]) || h.rungs[0] == 0 {
        return Err(CraneError::config(
            "--rungs",
            format!("{:?}: give increasing epoch budgets, e.g. 2,6,18", h.rungs),
        ));
    }
    if h.sample == Some(0) {
        return Err(CraneError::config("--sample", "draw at least one point of the grid"));
    }
    if h.eta < 2 {
        return Err(CraneError::config("--eta", "each rung must keep at most half of its points (eta ≥ 2)"));
    }
    let mut alive = grid_points(axes);
    if let Some(n) = h.sample.filter(|&n| n < alive.len()) {
        alive.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(h.seed));
        alive.truncate(n.max(1));
    }
    let mut rows = Vec::new();
    for (rung, &epochs) in h.rungs.iter().enumerate() {
        let mut jobs = Vec::new();
        for (n, point) in alive.iter().enumerate() {
            let mut point_sets = [sets.to_vec(), point.clone()].concat();
            point_sets.push(format!("epochs={epochs}"));
            let cfg = resolve(base_toml, source, &point_sets)?;
            let dir = point_dir(out, point);
            let tag = format!(
                "rung {}/{} ({epochs} epochs) {}/{} {}",
                rung + 1,
                h.rungs.len(),
                n + 1,
                alive.len(),
                point.join(" ")
            );
            let r = Reporter { tag, ..report.clone() };
            jobs.push((point.clone(), cfg, dir, r));
        }
        let summaries = share_run_folders(
            &jobs,
            report,
            |(point, ..)| format!("rung {} point {}", rung + 1, point.join(" ")),
            |(_, cfg, dir, r)| run_rung(ds, cfg, dir, r),
            |(_, cfg, _, r), s| {
                r.line(&format!(
                    "valid {} (selection: {} {:.4})",
                    s.valid.summary(),
                    cfg.valid_metric,
                    selection_value(s)
                ))
            },
        )?;
        let scored: Vec<(Vec<String>, RunSummary)> =
            jobs.into_iter().zip(summaries).map(|((point, ..), s)| (point, s)).collect();
        // Best first; ties to grid order (a stable sort).
        let mut order: Vec<usize> = (0..scored.len()).collect();
        order.sort_by(|&a, &b| selection_value(&scored[b].1).total_cmp(&selection_value(&scored[a].1)));
        let last = rung + 1 == h.rungs.len();
        let keep = if last { 1 } else { scored.len().div_ceil(h.eta).max(1) };
        let kept: Vec<usize> = order[..keep.min(order.len())].to_vec();
        alive = kept.iter().map(|&k| scored[k].0.clone()).collect();
        for (k, (point, summary)) in scored.into_iter().enumerate() {
            rows.push(RungRow { rung, point, epochs, summary, kept: kept.contains(&k) });
        }
    }
    Ok(rows)
}

/// One point at one rung: the rung's own record (`results-<epochs>-epochs.json`, a copy of
/// `results.json` as the rung ended) when it exists with this rung's config (and data), so a
/// later sitting selects on what each rung saw; otherwise the run is trained, or continued
/// from its state, to `cfg.epochs` (unless its `results.json` already has this rung's config:
/// a writer killed between the two writes), and the record written, both under the run's lock.
fn run_rung(ds: &Dataset, cfg: &TrainConfig, dir: &Path, report: &Reporter) -> Result<RunSummary> {
    let record = dir.join(format!("results-{}-epochs.json", cfg.epochs));
    let recorded = || -> Result<Option<RunSummary>> {
        match read_summary(&record)? {
            Some(s) if s.config == *cfg => check_same_data(dir, ds).map(|()| Some(s)),
            _ => Ok(None),
        }
    };
    // Looked up without the lock first: a process behind another by a rung reads the record
    // while the other trains the folder on.
    if let Some(s) = recorded()? {
        return Ok(s);
    }
    let results = dir.join("results.json");
    // Training and recording happen under one lock, so a process sharing the folder sees a
    // rung either not trained or trained and recorded.
    let _lock = lock_run_dir(ds, cfg, dir)?;
    if let Some(s) = recorded()? {
        return Ok(s);
    }
    // Trained to this rung but not recorded: the writer was killed between the two writes.
    let trained = matches!(read_summary(&results)?, Some(s) if s.config == *cfg);
    if trained {
        check_same_data(dir, ds)?;
    } else {
        train_locked(ds, cfg, Some(dir), report, dir.join("state.safetensors").exists(), None)?;
    }
    let text = std::fs::read_to_string(&results).map_err(|e| CraneError::io(&results, "read", e))?;
    write_string_atomic(&record, &text)?;
    read_summary(&record)?.ok_or_else(|| CraneError::file(&record, "not written"))
}

/// The search as Markdown: one table per rung (every point, its budget, validation and test
/// metrics, whether it went on), then the selected point.
pub fn halving_markdown(rows: &[RungRow], header: &[String]) -> String {
    let mut s: String = header.iter().map(|h| format!("{h}\n")).collect();
    let rungs = rows.iter().map(|r| r.rung).max().map_or(0, |m| m + 1);
    for rung in 0..rungs {
        let of: Vec<&RungRow> = rows.iter().filter(|r| r.rung == rung).collect();
        let metric = of.first().map_or("recall@20".to_string(), |r| r.summary.config.valid_metric.clone());
        s.push_str(&format!(
            "\n## Rung {} ({} epochs, {} point{})\n\n| point | epochs run | valid {metric} | test R@20 | test N@20 | {} |\n|---|---|---|---|---|---|\n",
            rung + 1,
            of.first().map_or(0, |r| r.epochs),
            of.len(),
            if of.len() == 1 { "" } else { "s" },
            if rung + 1 == rungs { "selected" } else { "goes on" }
        ));
        for r in of {
            let t = |m: &str| r.summary.test.get(m, 20).unwrap_or(f64::NAN);
            s.push_str(&format!(
                "| {} | {} | {:.4} | {:.4} | {:.4} | {} |\n",
                r.point.join(" "),
                r.summary.epochs_run,
                selection_value(&r.summary),
                t("recall"),
                t("ndcg"),
                if r.kept { "**yes**" } else { "no" }
            ));
        }
    }
    if let Some(best) = rows.iter().rev().find(|r| r.kept) {
        s.push_str(&format!(
            "\nSelected on validation {}: `{}` (test columns shown for the record; nothing was selected on them).\n",
            best.summary.config.valid_metric,
            best.point.join(" ")
        ));
    }
    s
}
