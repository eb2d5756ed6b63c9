//! One engine interface (forward + backward, Adam, scoring) with implementations:
//! [`reference::ReferenceEngine`] (the f64 oracle, small graphs only) and [`cpu::CpuEngine`]
//! (f32, rayon, blocked), and [`gpu::GpuEngine`] (the same trait over the ops of a CUDA device,
//! or of the host for tests).

pub mod cpu;
pub mod gpu;
pub mod reference;

use crate::data::npy::FeatureMatrix;
use crate::error::{CraneError, Result};
use crate::sampling::Triplet;
use crane_reference::losses::LossTerms;
use crane_reference::{ModelConfig, Params};
use nalgebra_sparse::CsrMatrix;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// When the item graph S̃ (Eq. 14) is rebuilt from the current parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GraphRefresh {
    /// Built with gradient at each epoch's first batch, held fixed for the rest (LATTICE).
    #[default]
    EveryEpoch,
    /// Built with gradient at every batch: the exact gradient of the stated loss.
    EveryStep,
    /// Built with gradient at every n-th batch of an epoch (batches 0, n, 2n, ...), held in
    /// between: `every_n_steps = 1` is `every_step`, n ≥ batches per epoch is `every_epoch`.
    /// TOML: `refresh = { every_n_steps = 8 }`.
    EveryNSteps(usize),
    /// Built once from the initial parameters, never updated.
    Frozen,
}

/// What Adam does with a tensor whose gradient in a step is exactly zero everywhere: config
/// `adam_idle`. Such a tensor is one the batch's loss does not read: with `refresh =
/// every_epoch` RCA's weights and the modality projections on every batch but an epoch's first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AdamIdle {
    /// Stepped like every other tensor: its moments decay and it goes on moving on momentum
    /// (PyTorch's Adam after `zero_grad(set_to_none=False)`; crane's behaviour before the switch).
    #[default]
    Step,
    /// Left as it is: no update, moments kept, its own step count (bias correction) not
    /// advanced. PyTorch ≥ 2's default `zero_grad()` sets gradients to `None`, and `Adam` skips a
    /// tensor the loss did not reach. (A tensor the loss reads whose gradient is exactly zero
    /// everywhere is skipped here, stepped with a zero gradient by PyTorch.)
    Skip,
}

/// What a model is built from.
pub struct ModelInputs<'a> {
    pub n_users: usize,
    pub n_items: usize,
    /// Training interactions (dense ids).
    pub train: &'a [(u32, u32)],
    /// `[visual, textual]` raw features `[N, d_m]`; absent ones are `[N, 0]`.
    pub features: [Option<&'a FeatureMatrix>; 2],
    /// The frozen item graph of `item_graph_source = { files = .. }`, built from the kNN
    /// files (`data::knn_files::KnnFiles::fused_graph`): every engine takes it where it would
    /// build FREEDOM's raw-feature graph. `None` for the other sources.
    pub fixed_item_graph: Option<&'a CsrMatrix<f64>>,
}

impl ModelInputs<'_> {
    /// A `[M, N]` as the reference's CSR (sorted by user, then item: the edge-mask order).
    pub fn interaction_matrix(&self) -> Result<CsrMatrix<f64>> {
        let pairs: Vec<(usize, usize)> = self.train.iter().map(|&(u, i)| (u as usize, i as usize)).collect();
        Ok(crane_reference::interaction_graph::interaction_matrix(self.n_users, self.n_items, &pairs)?)
    }

    /// Feature widths, 0 for an absent modality.
    pub fn widths(&self) -> [usize; 2] {
        [self.features[0].map_or(0, |f| f.cols), self.features[1].map_or(0, |f| f.cols)]
    }

    /// Refuses configurations that need a missing feature file.
    pub fn check(&self, cfg: &ModelConfig) -> Result<()> {
        use crane_reference::config::Fusion;
        if !cfg.item_graph {
            return Ok(());
        }
        if let crane_reference::config::ItemGraphSource::Files { dir, .. } = &cfg.item_graph_source {
            match self.fixed_item_graph {
                None => {
                    return Err(CraneError::config(
                        "model.item_graph_source",
                        format!("files: the graph of `{dir}` was not read (load the data with its item_graph_dir)"),
                    ))
                }
                Some(g) if g.nrows() != self.n_items || g.ncols() != self.n_items => {
                    return Err(CraneError::config(
                        "model.item_graph_source",
                        format!("the file graph is {} x {}, the data has {} items", g.nrows(), g.ncols(), self.n_items),
                    ))
                }
                Some(_) => {}
            }
            // The graph is given: features are read only by the terms that project them, each
            // over the modalities present (the attention needs one at least).
            if cfg.item_graph_input != crane_reference::config::ItemGraphInput::Attention
                || self.features.iter().any(Option::is_some)
            {
                return Ok(());
            }
        }
        let need: &[usize] = match cfg.fusion {
            Fusion::Visual => &[0],
            Fusion::Text => &[1],
            _ => &[0, 1],
        };
        for &m in need {
            if self.features[m].is_none() {
                let file = crate::data::MODALITIES[m].1;
                return Err(CraneError::config(
                    "fusion",
                    format!(
                        "{:?} needs {file}, which is absent (use fusion = \"visual\"/\"text\" or item_graph = false)",
                        cfg.fusion
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The parameters an engine starts from: `params` with, under `train_features`, the raw
/// feature tables attached from `inputs` (f64 copies `[N, d_m]`) unless they already are (a
/// resumed run; then, as without the switch, `params` itself, not a copy). Every engine calls
/// it, so all three train the same parameter set.
pub fn with_features<'a>(params: &'a Params, inputs: &ModelInputs, cfg: &ModelConfig) -> std::borrow::Cow<'a, Params> {
    if !params.needs_features(cfg) {
        return std::borrow::Cow::Borrowed(params);
    }
    let mat = |m: usize| match inputs.features[m] {
        Some(f) => faer::Mat::from_fn(f.rows, f.cols, |i, j| f.data[i * f.cols + j] as f64),
        None => faer::Mat::zeros(inputs.n_items, 0),
    };
    let mut p = params.clone();
    p.attach_features_owned(cfg, [mat(0), mat(1)]);
    std::borrow::Cow::Owned(p)
}

/// One tensor of [`HostTables`]: its name, `[rows, cols]` and the row-major values of the
/// parameter, Adam's first and its second moment.
pub type HostTable<'a> = (String, [usize; 2], [&'a [f32]; 3]);

/// See [`Engine::host_tables`].
pub struct HostTables<'a> {
    pub step: u64,
    /// Per tensor (the order of `tensors`): the steps it sat out under [`AdamIdle::Skip`].
    pub skipped: &'a [u64],
    pub tensors: Vec<HostTable<'a>>,
}

/// [`HostTable`], writable.
pub type HostTableMut<'a> = (String, [usize; 2], [&'a mut [f32]; 3]);

/// See [`Engine::host_tables_mut`]: the tables of [`HostTables`], writable, and the step count.
pub struct HostTablesMut<'a> {
    pub step: &'a mut u64,
    /// See [`HostTables::skipped`].
    pub skipped: &'a mut [u64],
    pub tensors: Vec<HostTableMut<'a>>,
}

/// Wall time per stage, summed since the last reset.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StageTimes {
    pub rca_graph: Duration,
    pub propagation: Duration,
    pub losses: Duration,
    pub optimiser: Duration,
    pub scoring: Duration,
}

/// Adam's state, in the reference's layout (f64).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimiserState {
    pub step: u64,
    pub m: Params,
    pub v: Params,
    /// Steps each tensor sat out under [`AdamIdle::Skip`], by tensor name (absent: none); its
    /// own bias-correction step is `step` minus these.
    pub skipped: std::collections::BTreeMap<String, u64>,
}

impl OptimiserState {
    /// Refuses a state in which a tensor sat out more steps than were taken (its own step count
    /// would be negative).
    pub fn check_skipped(&self) -> Result<()> {
        match self.skipped.iter().find(|(_, &n)| n > self.step) {
            Some((name, n)) => Err(CraneError::Invalid(format!(
                "Adam state: tensor `{name}` sat out {n} steps, more than the {} taken",
                self.step
            ))),
            None => Ok(()),
        }
    }
}

/// The interface every engine implements.
pub trait Engine {
    fn name(&self) -> &'static str;
    /// Ã of Eq. (2): one value per training interaction, in A's CSR order (1 kept, 0 dropped).
    fn set_edge_mask(&mut self, mask: &[f64]) -> Result<()>;
    /// Loss terms of one batch; the gradient of the total loss is kept for [`Engine::adam_step`].
    /// With `learn_graph`, S̃ is built from the current parameters with gradient and then held;
    /// otherwise the held S̃ is used (built without gradient if there is none yet).
    fn loss_and_grads(&mut self, batch: &[Triplet], learn_graph: bool) -> Result<LossTerms>;
    /// Rebuilds the held S̃ from the current parameters, without gradient.
    fn rebuild_item_graph(&mut self) -> Result<()>;
    /// One Adam step with the kept gradient, which it consumes: [`Engine::grads`] is defined
    /// from a `loss_and_grads` to the next `adam_step` (the CPU engine clears each gradient
    /// inside the update). `idle` says what happens to a tensor with no gradient ([`AdamIdle`]).
    /// Errs where the device does (GPU engine).
    fn adam_step(&mut self, lr: f64, idle: AdamIdle) -> Result<()>;
    /// Adam's state: steps taken and the two moment estimates (zeros before the first step).
    /// Panics where a device download fails (GPU engine), as [`Engine::params`] does.
    fn optimiser_state(&self) -> OptimiserState;
    fn set_optimiser_state(&mut self, s: &OptimiserState) -> Result<()>;
    /// Parameters and gradients in the reference's layout (f64). Panic where a device download
    /// fails (GPU engine): they are read in many places, a device error there is fatal anyway.
    fn params(&self) -> Params;
    fn grads(&self) -> Params;
    /// The parameters and Adam's two moments as the engine's own row-major f32 host tables,
    /// by name, when it holds them so (the CPU engine; `None` for the reference's f64 and the
    /// GPU's device tables): checkpoints are then written from them without an f64 copy of
    /// every table (at FREEDOM on Baby, 0.8 GB of copies and ~2 s per epoch).
    fn host_tables(&self) -> Option<HostTables<'_>> {
        None
    }
    /// [`Engine::host_tables`], writable: a resumed run's state is read from the file straight
    /// into them (`checkpoint::StateFile::restore`), with no f64 copy.
    fn host_tables_mut(&mut self) -> Option<HostTablesMut<'_>> {
        None
    }
    /// Overwrites the parameters (resets nothing else).
    fn set_params(&mut self, p: &Params) -> Result<()>;
    /// The held S̃, if any.
    fn item_graph(&self) -> Option<CsrMatrix<f64>>;
    /// Computes z on the full graph (no DropEdge) with the held S̃, for scoring.
    fn prepare_scoring(&mut self) -> Result<()>;
    /// `out[k, i] = z_u · z_i` for `users[k]`, `[users.len(), N]`.
    fn score_block(&self, users: &[u32], out: &mut [f32]) -> Result<()>;
    /// The items' scoring table z_i after [`Engine::prepare_scoring`], as (columns, row-major
    /// `[N, columns]` values), for inspection (`crane plot embeddings`); `None` where the engine
    /// does not keep it on the host.
    fn item_table(&self) -> Option<(usize, Vec<f32>)> {
        None
    }
    /// The `k` best items of each of `users` outside `mask` (its training items and the absent
    /// ids), best first, ties to the smaller id: the order of [`crate::eval::top_k`]. The
    /// default scores on the host; an engine whose scores live elsewhere ranks them there and
    /// returns only the lists (the GPU engine: `[users, k]` instead of `[users, N]` downloaded).
    fn rank_block(
        &self,
        users: &[u32],
        mask: crate::eval::Mask<'_>,
        n_items: usize,
        k: usize,
    ) -> Result<Vec<Vec<u32>>> {
        rank_on_host(self, users, mask, n_items, k)
    }
    fn times(&self) -> &StageTimes;
    fn reset_times(&mut self);
}

/// [`Engine::rank_block`] through [`Engine::score_block`] and [`crate::eval::top_k`].
pub fn rank_on_host<E: Engine + ?Sized>(
    engine: &E,
    users: &[u32],
    mask: crate::eval::Mask<'_>,
    n_items: usize,
    k: usize,
) -> Result<Vec<Vec<u32>>> {
    use rayon::prelude::*;
    let mut scores = vec![0.0f32; users.len() * n_items];
    engine.score_block(users, &mut scores)?;
    Ok(users
        .par_iter()
        .zip(scores.par_chunks(n_items.max(1)))
        .map(|(&u, s)| {
            let (t, a) = mask.user(u);
            crate::eval::top_k_outside(s, t, a, k)
        })
        .collect())
}
