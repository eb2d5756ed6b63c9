//! An estimate of a training run's peak resident memory, printed before training and checked by
//! `--memory-budget`. It counts the large tables the CPU engine holds (features, parameters with
//! Adam's moments, propagation layers, RCA's per-round caches and block buffers, evaluation
//! blocks) from the dataset's shape and the config; the constants are calibrated against
//! measured peaks (`tests/memory.rs` checks two sizes to within 25%).

use crate::config::TrainConfig;
use crate::data::Dataset;
use crane_reference::config::{Fusion, ItemGraphInput, ItemGraphSource};

/// The process before any table: binary, allocator, thread pools.
const BASE_MB: f64 = 30.0;

/// f32-equivalent copies of each raw feature table when `train_features` makes it a parameter,
/// measured (FREEDOM, Baby x 0.3: 264 MB over the frozen run for 36 MB tables, 7.3 copies): the
/// engine's value, gradient and two Adam moments, and the f64 copy (two f32-equivalents) the
/// initial parameters pass through when the engine is built. Checkpoints write the engine's own
/// tables (`Engine::host_tables`), so they add none (22 while they went through f64 exports).
pub const TRAINED_TABLE_COPIES: f64 = 7.5;

/// The same for engines without host f32 tables (GPU, reference), whose checkpoints still go
/// through the f64 exports of the parameters and both moments with their bytes: the measured
/// value from before `Engine::host_tables`.
pub const TRAINED_TABLE_COPIES_EXPORTED: f64 = 22.0;

/// Estimated peak resident memory in MB.
pub fn estimate_peak_mb(ds: &Dataset, cfg: &TrainConfig) -> f64 {
    let m = &cfg.model;
    let (users, items) = (ds.n_users as f64, ds.n_items as f64);
    let ent = users + items;
    let e = ds.train.len() as f64;
    let widths: Vec<f64> = ds.features.iter().map(|f| f.as_ref().map_or(0.0, |f| f.cols as f64)).collect();
    let feat_cols: f64 = widths.iter().sum();
    let d = m.embedding_dim as f64;
    let df = m.feature_dim as f64;
    let layers = m.ui_layers as f64;
    // f32 elements.
    let mut el = 0.0;
    // Features: the dataset's copy and the engine's.
    el += 2.0 * items * feat_cols;
    // Parameters: f32 value, gradient, two Adam moments, plus two f64 copies (the engine's
    // template and the exported parameters), i.e. 8 f32-equivalents.
    let params = ent * d + feat_cols * df + 8.0 * df * df;
    el += 8.0 * params;
    if m.train_features {
        // The raw tables as parameters (`train_features`; at Electronics the image table and its
        // two moments alone are ~3 GB).
        let copies = if cfg.engine == crate::config::EngineKind::Cpu {
            TRAINED_TABLE_COPIES
        } else {
            TRAINED_TABLE_COPIES_EXPORTED
        };
        el += copies * items * feat_cols;
    }
    if m.modality_bpr > 0.0 {
        // FREEDOM's modality terms: each modality's gathered feature rows (at most 2B
        // distinct items) held to the backward, and one reused buffer of their gradient.
        let rows = (2.0 * cfg.batch_size as f64).min(items);
        el += rows * (feat_cols + widths.iter().cloned().fold(0.0, f64::max));
    }
    // Interaction graph: layers, readout and their gradients.
    el += (2.0 * layers + 4.0) * ent * d;
    // Per-batch views and gradients of e and h.
    el += 10.0 * ent * d;
    let learned = m.item_graph && m.item_graph_source == ItemGraphSource::Learned;
    let mut bytes = 0.0;
    if learned {
        if m.fusion == Fusion::Rca {
            // Per round and modality: input, E', anchors, refined rows and gradients.
            el += m.rounds.max(1) as f64 * 2.0 * 6.0 * ent * df;
            // Two [block, M+N] buffers in flight.
            let rows = crate::engine::cpu::rca_block_rows(ent as usize, cfg.block_mb << 20, cfg.min_block_rows);
            bytes += 2.0 * rows as f64 * ent * 4.0;
        } else {
            bytes += 2.0 * (cfg.block_mb as f64 * 1048576.0).min(items * items * 4.0);
        }
        el += 4.0 * items * df * 2.0;
    }
    if m.item_graph && m.item_graph_input == ItemGraphInput::Attention {
        // crane-code's attention per modality: the cache (input, Q, K, V, head outputs) and its
        // gradients; one modality's backward at a time: per-head copies of Q, Qᵀ, Kᵀ, Vᵀ, dOᵀ
        // (K and dO are read in place), the key and value gradients of each group of row
        // blocks, and two `[rows, tile]` tiles per thread.
        use crate::engine::cpu::attention::{GROUPS, KEY_TILE};
        el += 2.0 * 10.0 * items * df;
        el += 5.0 * items * df + 2.0 * GROUPS as f64 * items * df;
        let rows =
            crate::engine::cpu::attention_block_rows(items as usize, cfg.block_mb << 20, cfg.attention_block_rows);
        let tile = KEY_TILE.min(items as usize);
        el += 2.0 * (rayon::current_num_threads() * rows * tile) as f64;
    }
    if m.item_graph {
        // S̃, S̃ᵀ and their caches, h layers.
        el += 6.0 * items * m.knn_k as f64 + (m.ii_layers as f64 + 3.0) * items * d;
    }
    // Evaluation: a [block, N] score buffer and the rankings.
    el += 2.0 * cfg.eval_block as f64 * items;
    // Pairs, CSR copies (f32 + f64 + transposes), sampler state: bytes per training edge.
    bytes += e * 120.0;
    BASE_MB + (4.0 * el + bytes) / 1048576.0
}

/// Refuses an estimate of `est_mb` over `budget_gb` (`--memory-budget`); `what` names it with
/// its verb ("the run is", "crane-code's runs are").
pub fn check_budget(est_mb: f64, budget_gb: Option<f64>, what: &str) -> crate::error::Result<()> {
    match budget_gb {
        Some(b) if est_mb > b * 1024.0 => Err(crate::error::CraneError::config(
            "--memory-budget",
            format!("{what} estimated to need {:.2} GB, over the budget of {b} GB", est_mb / 1024.0),
        )),
        _ => Ok(()),
    }
}

/// The memory the kernel says is available for a new process (`MemAvailable` of
/// `/proc/meminfo`, MB), or `None` where it cannot be read. `CRANE_MEMORY_AVAILABLE_MB`
/// overrides it, so that tests can exercise the refusal on any machine.
pub fn available_mb() -> Option<f64> {
    if let Some(v) = std::env::var("CRANE_MEMORY_AVAILABLE_MB").ok().and_then(|v| v.parse().ok()) {
        return Some(v);
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse::<f64>().ok().map(|kb| kb / 1024.0)
}

/// Refuses an estimate of `est_mb` over the machine's available memory, before anything is
/// allocated (an allocation failure would abort the process without a message). When the item
/// id space is much larger than the number of items, says so: a mistyped id is the usual cause.
pub fn check_available(est_mb: f64, ds: &Dataset, what: &str) -> crate::error::Result<()> {
    let Some(avail) = available_mb() else { return Ok(()) };
    if est_mb <= avail {
        return Ok(());
    }
    let items = ds.n_items - ds.absent_items.len();
    let hint = if ds.n_items > 4 * items.max(1) {
        format!(
            "; the item ids run to {} for {items} items (ids are row indices: max id + 1): is an id mistyped, or \
             should the ids be re-indexed densely?",
            ds.n_items - 1
        )
    } else {
        String::new()
    };
    Err(crate::error::CraneError::Invalid(format!(
        "{what} estimated to need {:.2} GB, more than the {:.2} GB of memory available{hint}",
        est_mb / 1024.0,
        avail / 1024.0
    )))
}
