//! The training loop: Adam over shuffled BPR batches, a DropEdge sample per epoch, the item
//! graph refreshed per the configured mode, full-ranking validation after every epoch, early
//! stopping on the validation metric (`valid_metric`, Recall@20 by default) with the test
//! metrics of the best validation epoch. A loss that grows by orders of magnitude is warned
//! about and, past [`EXPLODED`] times its starting value, stops the run with a diagnosis, as a
//! non-finite one does.

use crate::config::{EngineKind, TrainConfig};
use crate::data::Dataset;
use crate::engine::cpu::CpuEngine;
use crate::engine::gpu::GpuEngine;
use crate::engine::reference::ReferenceEngine;
use crate::engine::{Engine, GraphRefresh, ModelInputs, StageTimes};
use crate::error::{CraneError, Result};
use crate::eval::{evaluate, evaluate_engine, EvalSet, Mask, Metrics};
use crate::io::write_string_atomic;
use crate::sampling::{mix_seed, Sampler};
use crane_reference::init::Dims;
use crane_reference::model::sample_edge_mask;
use crane_reference::Params;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// One epoch's record.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub loss: f64,
    pub bpr: f64,
    pub cl_user: f64,
    pub cl_item: f64,
    pub reg: f64,
    /// FREEDOM's weighted modality BPR terms (0 for the other models).
    #[serde(default)]
    pub modality: f64,
    pub valid: std::collections::BTreeMap<String, f64>,
    pub seconds_train: f64,
    pub seconds_eval: f64,
    pub seconds_sampling: f64,
    pub stages: StageTimes,
    pub peak_memory_mb: f64,
    /// How far each parameter tensor has moved from its initialisation after this epoch:
    /// `‖W − W₀‖_F / ‖W₀‖_F` (`‖W‖_F` where `W₀ = 0`, as for biases): whether RCA and the
    /// projections learn at all under a given `refresh` (absent in older histories).
    #[serde(default)]
    pub weight_change: std::collections::BTreeMap<String, f64>,
}

/// The result of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub config: TrainConfig,
    pub dataset: crate::data::DataStats,
    pub engine: String,
    pub threads: usize,
    pub best_epoch: usize,
    pub valid: Metrics,
    pub test: Metrics,
    /// Test metrics of ranking every user's items by training popularity (a floor to beat).
    pub popularity_test: Metrics,
    pub epochs_run: usize,
    pub seconds_per_epoch: f64,
    pub peak_memory_mb: f64,
    pub stopped_early: bool,
    pub history: Vec<EpochLog>,
}

/// Starts a new peak for the run about to begin. [`crate::keep_freed_memory`] makes glibc keep
/// freed blocks resident for reuse, so the resident size never falls after a run ends; a later
/// run in the same process (a seed of `crane compare`) would report the highest peak of any
/// earlier one. Here `malloc_trim(0)` first returns the free pages of every arena to the kernel,
/// then `5` written to `/proc/self/clear_refs` sets `VmHWM` to the resident size now (proc(5)),
/// so [`peak_memory_mb`] measures from this point, with what is still in use (the loaded
/// dataset) included. Returns whether the peak was reset (false where the file is absent or not
/// writable: the peak is then the whole process's).
pub fn reset_peak_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; glibc locks each arena while trimming it.
    unsafe {
        libc::malloc_trim(0);
    }
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident memory of this process in MB (`VmHWM`), 0 where unavailable.
pub fn peak_memory_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Test metrics of the popularity ranking.
pub fn popularity_metrics(ds: &Dataset, ks: &[usize]) -> Metrics {
    let mut pop = vec![0f32; ds.n_items];
    for &(_, i) in &ds.train {
        pop[i as usize] += 1.0;
    }
    let train = ds.train_by_user();
    let set = EvalSet::from_pairs(ds.n_users, &ds.test);
    evaluate(&set, Mask::new(&train, &ds.absent_items), ds.n_items, ks, 1024, |users, out| {
        for k in 0..users.len() {
            out[k * ds.n_items..(k + 1) * ds.n_items].copy_from_slice(&pop);
        }
    })
}

/// The frozen item graph of `item_graph_source = { files = .. }` from the dataset's kNN files
/// (k = `knn_k`), `None` for the other sources; refused when the files were not read.
pub fn file_item_graph(
    ds: &Dataset,
    m: &crane_reference::ModelConfig,
) -> Result<Option<nalgebra_sparse::CsrMatrix<f64>>> {
    use crane_reference::config::ItemGraphSource;
    let ItemGraphSource::Files { dir, image_weight } = &m.item_graph_source else { return Ok(None) };
    if !m.item_graph {
        return Ok(None);
    }
    let files = ds.knn_files.as_ref().ok_or_else(|| {
        CraneError::config(
            "model.item_graph_source",
            format!("files: the kNN files of `{dir}` were not read with the data (LoadOptions::item_graph_dir)"),
        )
    })?;
    Ok(Some(files.fused_graph(m.knn_k, *image_weight)?))
}

/// Builds the configured engine with Xavier-initialised parameters.
pub fn build_engine(ds: &Dataset, cfg: &TrainConfig) -> Result<Box<dyn Engine>> {
    let file_graph = file_item_graph(ds, &cfg.model)?;
    let inputs = ModelInputs {
        n_users: ds.n_users,
        n_items: ds.n_items,
        train: &ds.train,
        features: [ds.features[0].as_ref(), ds.features[1].as_ref()],
        fixed_item_graph: file_graph.as_ref(),
    };
    let [dv, dt] = inputs.widths();
    let params =
        Params::init(&cfg.model, Dims { n_users: ds.n_users, n_items: ds.n_items, d_visual: dv, d_text: dt }, cfg.seed);
    Ok(match cfg.engine {
        EngineKind::Cpu => Box::new(
            CpuEngine::new(&inputs, &cfg.model, &params)?
                .with_block_bytes(cfg.block_mb << 20)
                .with_min_block_rows(cfg.min_block_rows)
                .with_attention_block_rows(cfg.attention_block_rows),
        ),
        EngineKind::Reference => Box::new(ReferenceEngine::new(&inputs, &cfg.model, params)?),
        EngineKind::Gpu => {
            let dev =
                crane_gpu::cuda::CudaDevice::with_tf32(cfg.tf32).map_err(|e| CraneError::Invalid(e.to_string()))?;
            Box::new(GpuEngine::new(dev, &inputs, &cfg.model, &params)?)
        }
        EngineKind::GpuHost => Box::new(GpuEngine::new(crane_gpu::device::HostDevice, &inputs, &cfg.model, &params)?),
    })
}

/// A batch loss this many times the run's starting loss stops training: it has diverged even if
/// it is still finite (a loss of 1e37 would otherwise run to the last epoch).
pub const EXPLODED: f64 = 1e4;

/// Whether `|loss|` is over `times` the run's starting loss `scale`, taken as at least 1e-3 so
/// that a run starting near zero is not flagged for noise.
fn over_start(loss: f64, scale: f64, times: f64) -> bool {
    loss.abs() > times * scale.max(1e-3)
}

/// Whether a batch loss has diverged: over [`EXPLODED`] times the run's starting loss `scale`.
pub fn diverged(loss: f64, scale: f64) -> bool {
    over_start(loss, scale, EXPLODED)
}

/// An epoch's mean loss this many times the starting loss is warned about.
pub const GROWING: f64 = 100.0;

/// Whether an epoch's mean loss is warned about as growing: over [`GROWING`] times the run's
/// starting loss `scale`.
pub fn growing(loss: f64, scale: f64) -> bool {
    over_start(loss, scale, GROWING)
}

/// Model selection on validation (protocol notes, "Training protocol"): after each epoch the
/// watched metric (`valid_metric`, Recall@20 by default), rounded to 4 decimals when
/// `round_metric` (MMRec's rule), must *strictly* beat the best so far to become the selected
/// epoch, whose test metrics are the ones reported; training stops once more than `patience`
/// epochs in a row did not (MMRec: `patience + 1` epochs without an improvement).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Selection {
    /// The best (rounded) score so far; −∞ before the first epoch.
    pub best: f64,
    /// The epoch that scored it.
    pub best_epoch: usize,
    /// Epochs since it (0 right after an improvement).
    pub since: usize,
}

impl Default for Selection {
    fn default() -> Self {
        Self { best: f64::NEG_INFINITY, best_epoch: 0, since: 0 }
    }
}

impl Selection {
    /// The score compared across epochs: `watched`, rounded to 4 decimals if `round`.
    pub fn score(watched: f64, round: bool) -> f64 {
        if round {
            (watched * 1e4).round() / 1e4
        } else {
            watched
        }
    }

    /// Records `epoch`'s score; true if it is the new selected epoch (strictly better: a tie
    /// keeps the earlier epoch).
    pub fn observe(&mut self, epoch: usize, score: f64) -> bool {
        if score > self.best {
            *self = Self { best: score, best_epoch: epoch, since: 0 };
            true
        } else {
            self.since += 1;
            false
        }
    }

    /// More than `patience` epochs in a row without an improvement: stop.
    pub fn exhausted(&self, patience: usize) -> bool {
        self.since > patience
    }
}

/// The loop's state saved with each epoch, for `--resume`.
#[derive(Serialize, serde::Deserialize)]
struct LoopState {
    /// Saved as the three fields `best`, `best_epoch`, `since` (the layout of older states).
    #[serde(flatten)]
    selection: Selection,
    best_valid: Option<Metrics>,
    best_test: Option<Metrics>,
    history: Vec<EpochLog>,
    train_seconds: f64,
    /// The run's first batch loss (the scale of [`EXPLODED`]); absent in older states.
    #[serde(default)]
    loss_scale: Option<f64>,
}

/// Trains on `ds`; writes `history.jsonl`, `history.csv`, `state.safetensors`,
/// `checkpoint.safetensors` and `results.json` into `out` if given.
pub fn train(ds: &Dataset, cfg: &TrainConfig, out: Option<&Path>, progress: bool) -> Result<RunResult> {
    train_with(ds, cfg, out, progress, false, None)
}

/// [`train`], continuing from `out/state.safetensors` when `resume` is set and the file exists:
/// parameters, Adam's state, the early-stopping state and the history are restored, and since
/// batches, negatives and DropEdge masks derive from (seed, epoch), the run ends exactly as an
/// uninterrupted one. `stop_after` ends the call after that many epochs, as a kill would
/// (tests of `--resume` use it).
pub fn train_with(
    ds: &Dataset,
    cfg: &TrainConfig,
    out: Option<&Path>,
    progress: bool,
    resume: bool,
    stop_after: Option<usize>,
) -> Result<RunResult> {
    train_reported(ds, cfg, out, &Reporter::new(progress), resume, stop_after)
}

/// Where a run's progress goes: the terminal (a bar per epoch and a line per epoch), or a
/// multi-bar display shared with an outer loop (`crane compare`), or nowhere.
#[derive(Clone, Default)]
pub struct Reporter {
    pub bars: bool,
    pub multi: Option<indicatif::MultiProgress>,
    /// Prefix of every line (the run's name in a comparison).
    pub tag: String,
}

impl Reporter {
    pub fn new(bars: bool) -> Self {
        Self { bars, multi: None, tag: String::new() }
    }

    pub fn line(&self, s: &str) {
        let s = if self.tag.is_empty() { s.to_string() } else { format!("[{}] {s}", self.tag) };
        match &self.multi {
            Some(m) => {
                let _ = m.println(s);
            }
            None => eprintln!("{s}"),
        }
    }

    fn bar(&self, len: u64) -> Option<indicatif::ProgressBar> {
        if !self.bars {
            return None;
        }
        let b = indicatif::ProgressBar::new(len);
        Some(match &self.multi {
            Some(m) => m.add(b),
            None => b,
        })
    }
}

/// [`train_with`] reporting through `report`; writes `manifest.json` first when `out` is set.
pub fn train_reported(
    ds: &Dataset,
    cfg: &TrainConfig,
    out: Option<&Path>,
    report: &Reporter,
    resume: bool,
    stop_after: Option<usize>,
) -> Result<RunResult> {
    // Taken before anything is built or read from the folder, so that a folder in use is
    // refused first and a resumed state cannot change under this run.
    let _lock = out.map(|dir| lock_run_dir(ds, cfg, dir)).transpose()?;
    train_locked(ds, cfg, out, report, resume, stop_after)
}

/// Creates the run folder `dir` for `cfg` on `ds` and takes its run lock
/// ([`crate::io::RunLock`]), held until the returned value is dropped. Errors: a bad model
/// setting (checked first, so that no folder is made for it); [`CraneError::Busy`] when another
/// process holds the lock.
pub fn lock_run_dir(ds: &Dataset, cfg: &TrainConfig, dir: &Path) -> Result<crate::io::RunLock> {
    cfg.model.validate(ds.n_items)?;
    std::fs::create_dir_all(dir).map_err(|e| CraneError::io(dir, "create directory", e))?;
    crate::io::RunLock::acquire(dir)
}

/// [`train_reported`] for a caller that already holds `out`'s lock ([`lock_run_dir`]), so that
/// it can look at the folder and write beside the run under the same lock (`crane compare`
/// and `crane grid`, which share run folders between processes).
pub fn train_locked(
    ds: &Dataset,
    cfg: &TrainConfig,
    out: Option<&Path>,
    report: &Reporter,
    resume: bool,
    stop_after: Option<usize>,
) -> Result<RunResult> {
    let (metric, metric_k) = cfg.valid_metric_parts()?;
    reset_peak_memory();
    let mut engine = build_engine(ds, cfg)?;
    // W₀ of `weight_change`: the initialisation is a function of the seed, so a resumed run
    // measures from the same point. Trained feature tables are left out (data-sized: a third
    // f64 copy of them would raise the peak; their change is not reported).
    let init = engine.params().without_features();
    let state_path = out.map(|d| d.join("state.safetensors"));
    // Opened and checked (data, config, tensor shapes, loop state) before anything in the folder
    // is rewritten.
    let resumed = match (resume, &state_path) {
        (true, Some(path)) if path.exists() => {
            let st = crate::checkpoint::StateFile::open(path, &ds.fingerprint)?;
            // Only `epochs` and a larger `patience` may differ: a resumed run can be continued
            // further (successive halving's next rung) or given more patience (training does not
            // depend on it, so it ends where an uninterrupted run with that patience ends; a
            // smaller one could not undo the improvements found after it ran out), never with
            // other settings.
            if (TrainConfig { epochs: cfg.epochs, patience: cfg.patience, ..st.config.clone() }) != *cfg
                || cfg.patience < st.config.patience
            {
                return Err(CraneError::file(
                    path,
                    format!(
                        "was written with other settings ({}); resume with the same --config/--set values (only \
                         `epochs` may change, and `patience` may grow)",
                        crate::config::differences(
                            &st.config,
                            &TrainConfig { epochs: st.config.epochs, ..cfg.clone() }
                        )
                    ),
                ));
            }
            // A run is continued, never cut back: a state past the budget would report more
            // epochs than asked for (a halving rung reusing a longer run's folder).
            if st.epoch >= cfg.epochs {
                return Err(CraneError::file(
                    path,
                    format!(
                        "holds a run already trained {} epochs, more than epochs = {} asks for; a resumed run can \
                         only go on: move the folder away or use another --out",
                        st.epoch + 1,
                        cfg.epochs
                    ),
                ));
            }
            st.check_engine(engine.as_ref())?;
            let ls: LoopState =
                serde_json::from_str(&st.loop_state).map_err(|e| CraneError::file(path, format!("loop state: {e}")))?;
            Some((st, ls))
        }
        (true, Some(path)) => {
            report.line(&format!(
                "no resumable state in {}: training from epoch 0",
                path.parent().map_or(String::new(), |p| p.display().to_string())
            ));
            None
        }
        _ => None,
    };
    if let Some(dir) = out {
        let manifest = crate::manifest::Manifest::new(ds, cfg)?;
        write_string_atomic(
            &dir.join("manifest.json"),
            &serde_json::to_string_pretty(&manifest).expect("manifest serialises"),
        )?;
    }
    let user_train = ds.train_by_user();
    let rank_mask = Mask::new(&user_train, &ds.absent_items);
    let sampler = Sampler::new(&ds.train, &user_train)?;
    let valid_set = EvalSet::from_pairs(ds.n_users, &ds.valid);
    let test_set = EvalSet::from_pairs(ds.n_users, &ds.test);
    let a = ModelInputs {
        n_users: ds.n_users,
        n_items: ds.n_items,
        train: &ds.train,
        features: [None, None],
        fixed_item_graph: None,
    }
    .interaction_matrix()?;
    if cfg.refresh == GraphRefresh::Frozen {
        engine.rebuild_item_graph()?;
    }
    let mut history: Vec<EpochLog> = Vec::new();
    let mut sel = Selection::default();
    let (mut best_valid, mut best_test) = (None, None);
    let mut stopped_early = false;
    let mut train_time = Duration::ZERO;
    let mut start = 0;
    let mut resumed_scale = None;
    if let (Some((st, ls)), Some(path)) = (resumed, &state_path) {
        {
            let epoch = st.epoch;
            st.restore(engine.as_mut())?;
            sel = ls.selection;
            (best_valid, best_test, history) = (ls.best_valid, ls.best_test, ls.history);
            resumed_scale = ls.loss_scale;
            train_time = Duration::from_secs_f64(ls.train_seconds);
            start = epoch + 1;
            if sel.exhausted(cfg.patience) {
                stopped_early = true;
                start = cfg.epochs;
            }
            report.line(&format!("resuming after epoch {epoch} from {}", path.display()));
            let ckpt = path.with_file_name("checkpoint.safetensors");
            if !ckpt.exists() {
                report.line(&format!(
                    "warning: {} is missing: the best epoch's parameters are lost, so `crane eval`/`recommend` \
                     will have nothing to load unless a later epoch improves; train again without --resume to \
                     recreate it",
                    ckpt.display()
                ));
            }
        }
    }
    // The scale against which a diverging loss is judged: the run's first batch loss (saved in
    // the state; an older state gives its first epoch's mean).
    let mut loss_scale = resumed_scale.or(history.first().map(|h| h.loss.abs()));
    let mut jsonl: String = history.iter().map(|h| serde_json::to_string(h).expect("log serialises") + "\n").collect();
    let end = stop_after.map_or(cfg.epochs, |n| (start + n).min(cfg.epochs));
    for epoch in start..end {
        engine.reset_times();
        let t0 = Instant::now();
        let mask = sample_edge_mask(&a, cfg.model.drop_edge, mix_seed(&[cfg.seed, epoch as u64, 0xd20b]));
        engine.set_edge_mask(&mask)?;
        let batches = sampler.epoch(cfg.seed, epoch as u64, cfg.batch_size);
        let t_sample = t0.elapsed();
        let bar = report.bar(batches.len() as u64).inspect(|b| {
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {prefix:>3} [{bar:30}] {pos}/{len} loss {msg} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_prefix(epoch.to_string());
        });
        let mut sums = [0.0f64; 6];
        for (b, batch) in batches.iter().enumerate() {
            let learn = match cfg.refresh {
                GraphRefresh::EveryStep => true,
                GraphRefresh::EveryNSteps(n) => b % n == 0,
                GraphRefresh::EveryEpoch => b == 0,
                GraphRefresh::Frozen => false,
            };
            let t = engine.loss_and_grads(batch, learn).map_err(|e| match e {
                CraneError::Invalid(msg) if msg.contains("non-finite") => {
                    CraneError::Invalid(format!("epoch {epoch}, batch {b}: {msg}; lower lr or check the features"))
                }
                other => other,
            })?;
            let scale = *loss_scale.get_or_insert(t.total().abs());
            if diverged(t.total(), scale) {
                return Err(CraneError::Invalid(format!(
                    "epoch {epoch}, batch {b}: the loss diverged: {:.3e} (bpr {:.3e}, cl {:.3e}, reg {:.3e}, mod {:.3e}) \
                     is over {EXPLODED:.0e} times its starting value {scale:.3e}; lower lr (now {}) or raise the \
                     regularisation",
                    t.total(),
                    t.bpr,
                    t.cl_user + t.cl_item,
                    t.reg,
                    t.modality,
                    cfg.lr
                )));
            }
            engine.adam_step(cfg.lr, cfg.adam_idle)?;
            for (s, v) in sums.iter_mut().zip([t.total(), t.bpr, t.cl_user, t.cl_item, t.reg, t.modality]) {
                *s += v;
            }
            if let Some(bar) = &bar {
                bar.set_message(format!("{:.4}", sums[0] / (b + 1) as f64));
                bar.inc(1);
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let t_train = t0.elapsed();
        train_time += t_train;
        let t1 = Instant::now();
        engine.prepare_scoring()?;
        let eng: &dyn Engine = engine.as_ref();
        let valid = evaluate_engine(&valid_set, rank_mask, ds.n_items, &cfg.ks, cfg.eval_block, eng)?;
        let t_eval = t1.elapsed();
        let nb = batches.len() as f64;
        let log = EpochLog {
            epoch,
            loss: sums[0] / nb,
            bpr: sums[1] / nb,
            cl_user: sums[2] / nb,
            cl_item: sums[3] / nb,
            reg: sums[4] / nb,
            modality: sums[5] / nb,
            valid: valid.to_map(),
            seconds_train: t_train.as_secs_f64(),
            seconds_eval: t_eval.as_secs_f64(),
            seconds_sampling: t_sample.as_secs_f64(),
            stages: engine.times().clone(),
            peak_memory_mb: peak_memory_mb(),
            weight_change: weight_change(&init, &engine.params()),
        };
        report.line(&format!(
            "epoch {epoch:>3}  loss {:.4} (bpr {:.4} cl {:.4} reg {:.5} mod {:.4})  valid {}  {:.1}s + eval {:.1}s",
            log.loss,
            log.bpr,
            log.cl_user + log.cl_item,
            log.reg,
            log.modality,
            valid.summary(),
            log.seconds_train,
            log.seconds_eval
        ));
        if let Some(scale) = loss_scale.filter(|&s| growing(log.loss, s)) {
            report.line(&format!(
                "warning: the mean loss {:.3e} is {:.0} times the starting {scale:.3e}: training is diverging (lower lr)",
                log.loss,
                log.loss.abs() / scale.max(1e-3)
            ));
        }
        jsonl.push_str(&serde_json::to_string(&log).expect("log serialises"));
        jsonl.push('\n');
        history.push(log);
        let watched = valid.get(metric, metric_k).expect("valid_metric's K is among ks (checked by resolve)");
        if sel.observe(epoch, Selection::score(watched, cfg.round_metric)) {
            let test = evaluate_engine(&test_set, rank_mask, ds.n_items, &cfg.ks, cfg.eval_block, eng)?;
            best_valid = Some(valid);
            best_test = Some(test);
            if let Some(dir) = out {
                let meta = crate::checkpoint::CheckpointMeta {
                    config: cfg.clone(),
                    epoch,
                    dataset: ds.name.clone(),
                    data: Some(ds.fingerprint.clone()),
                };
                let tables = crate::checkpoint::param_tables(engine.as_ref());
                crate::checkpoint::save(&dir.join("checkpoint.safetensors"), &tables, &meta)?;
            }
        }
        if let Some(dir) = out {
            write_string_atomic(&dir.join("history.jsonl"), &jsonl)?;
            write_string_atomic(&dir.join("history.csv"), &history_csv(&history))?;
            let ls = LoopState {
                selection: sel,
                best_valid: best_valid.clone(),
                best_test: best_test.clone(),
                history: history.clone(),
                train_seconds: train_time.as_secs_f64(),
                loss_scale,
            };
            let ls = serde_json::to_string(&ls).expect("loop state serialises");
            crate::checkpoint::save_state(
                &dir.join("state.safetensors"),
                engine.as_ref(),
                cfg,
                &ds.fingerprint,
                epoch,
                &ls,
            )?;
        }
        if sel.exhausted(cfg.patience) {
            stopped_early = true;
            report
                .line(&format!("early stop: no validation {} improvement for {} epochs", cfg.valid_metric, sel.since));
            break;
        }
    }
    let result = RunResult {
        config: cfg.clone(),
        dataset: ds.stats(),
        engine: engine.name().to_string(),
        threads: rayon::current_num_threads(),
        best_epoch: sel.best_epoch,
        valid: best_valid.expect("at least one epoch"),
        test: best_test.expect("at least one epoch"),
        popularity_test: popularity_metrics(ds, &cfg.ks),
        epochs_run: history.len(),
        seconds_per_epoch: train_time.as_secs_f64() / history.len() as f64,
        peak_memory_mb: peak_memory_mb(),
        stopped_early,
        history,
    };
    if let Some(dir) = out {
        write_string_atomic(
            &dir.join("results.json"),
            &serde_json::to_string_pretty(&result).expect("results serialise"),
        )?;
    }
    Ok(result)
}

/// `‖W − W₀‖_F / ‖W₀‖_F` per tensor (`‖W‖_F` where `‖W₀‖_F = 0`); empty tensors left out.
pub fn weight_change(init: &Params, now: &Params) -> std::collections::BTreeMap<String, f64> {
    init.tensors()
        .into_iter()
        .zip(now.tensors())
        .filter(|((_, w0), _)| w0.nrows() * w0.ncols() > 0)
        .map(|((name, w0), (_, w))| {
            let (mut diff, mut base) = (0.0f64, 0.0f64);
            for j in 0..w0.ncols() {
                for i in 0..w0.nrows() {
                    diff += (w[(i, j)] - w0[(i, j)]).powi(2);
                    base += w0[(i, j)].powi(2);
                }
            }
            let change = if base > 0.0 { (diff / base).sqrt() } else { diff.sqrt() };
            (name, change)
        })
        .collect()
}

fn history_csv(h: &[EpochLog]) -> String {
    let keys: Vec<String> = h.first().map(|l| l.valid.keys().cloned().collect()).unwrap_or_default();
    let mut s = format!(
        "epoch,loss,bpr,cl_user,cl_item,reg,modality,seconds_train,seconds_eval,peak_memory_mb,{}\n",
        keys.join(",")
    );
    for l in h {
        let vals: Vec<String> = keys.iter().map(|k| format!("{:.6}", l.valid[k])).collect();
        s.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.3},{:.3},{:.1},{}\n",
            l.epoch,
            l.loss,
            l.bpr,
            l.cl_user,
            l.cl_item,
            l.reg,
            l.modality,
            l.seconds_train,
            l.seconds_eval,
            l.peak_memory_mb,
            vals.join(",")
        ));
    }
    s
}
