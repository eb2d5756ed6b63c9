//! The GPU engine: CRANE's training step written in the ops of [`crane_gpu::device::Device`],
//! so the same code runs on an NVIDIA GPU ([`crane_gpu::cuda::CudaDevice`]: cuBLAS + NVRTC
//! kernels) and, for tests on machines without one, on [`crane_gpu::device::HostDevice`].
//!
//! Every parameter, gradient and Adam moment lives on the device for the whole run; per batch
//! the host uploads only the triplets (and their scatter segmentation), and downloads the
//! per-triplet loss terms (`[B]`) and the regulariser's row norms.
//!
//! Implemented: Eq. (2)-(4) (with or without `W^(l)` and σ, readout mean/last, DropEdge via
//! the edge mask); the learned item graph, Eq. (5)-(14) (projections, the four profile
//! aggregations (max and attention on the host, O(nnz·d_f)), RCA in row blocks, every fusion
//! variant, the kNN in row blocks with a device top-k) and FREEDOM's frozen raw-feature graph
//! (built once on the host); Eq. (15)-(17) with dual or late fusion; BPR (Eq. 18), InfoNCE
//! (Eq. 19), FREEDOM's modality terms, the three regularisers (Eq. 20 and MMRec's), Adam,
//! scoring and the evaluator's masked top-K (on the device: `[users, K]` comes down, not
//! `[users, N]`), and the authors' attention (crane-code) in query-row blocks.
//!
//! Laid out as the CPU engine (`cpu/`), one file per stage, each holding the
//! `impl GpuEngine` block of its stage and its device functions: `interaction_graph.rs`
//! (Eq. 2-4), `user_profiles.rs` (projection, Eq. 5-6), `rca.rs` (Eq. 7-13), `item_graph.rs`
//! (Eq. 14-16 and the learned graph's pipeline), `attention.rs` (crane-code's attention),
//! `losses.rs` (Eq. 18-20), and `ops.rs` (device matrices and helpers, as `cpu/ops.rs`). This
//! file holds the struct, its construction, the training step that chains the stages with the
//! fusion of Eq. (17), Adam, and scoring, as `cpu/mod.rs` does.

// Device buffers are a generic associated type (`D::Buf<f32>`), which makes tuples of them
// "complex" to clippy; naming each tuple would not make the code clearer. Applies to the
// stage modules too.
#![allow(clippy::type_complexity)]

mod attention;
mod interaction_graph;
mod item_graph;
mod losses;
mod ops;
mod rca;
mod user_profiles;

use super::cpu::distinct;
use super::cpu::item_graph::KnnGraph;
use super::cpu::ops::{Csr, Dense};
use super::{AdamIdle, Engine, ModelInputs, OptimiserState, StageTimes};
use crate::error::{CraneError, Result};
use crate::sampling::Triplet;
use crane_gpu::device::{DevCsr, Device};
use crane_reference::config::{Aggregation, ItemGraphInput, ItemGraphSource};
use crane_reference::losses::LossTerms;
use crane_reference::{ModelConfig, Params};
use nalgebra_sparse::CsrMatrix;
use ops::{dev_err, failed, upload_cpu_csr, Mat};
use std::collections::HashMap;
use std::time::Instant;

/// Bytes per `[block, ·]` buffer of RCA, the kNN and the attention on a device: larger than
/// the CPU engine's 64 MB, since device memory is plentiful and the per-row top-k (one warp
/// per row) wants many rows per launch (≈ 4,000 per block at the Electronics shape).
pub const GPU_BLOCK_BYTES: usize = 1 << 30;
/// Largest k the device top-k ranks (its per-lane lists are k long); larger k rank on the host.
const MAX_DEVICE_TOPK: usize = 64;

/// Why `adam_idle = skip` is refused here: its all-zero test per tensor would be a new device
/// reduction, and no GPU has run one yet.
pub const SKIP_ON_GPU: &str =
    "`skip` is implemented on the CPU and reference engines only; the GPU engine steps every tensor (`step`)";

pub struct GpuEngine<D: Device> {
    dev: D,
    cfg: ModelConfig,
    m: usize,
    n: usize,
    d: usize,
    a64: CsrMatrix<f64>,
    mask: Vec<f64>,
    adj: DevCsr<D>,
    template: Params,
    index: HashMap<String, usize>,
    /// `(rows, cols)` of each tensor, in [`Params::tensors`] order.
    shapes: Vec<(usize, usize)>,
    p: Vec<D::Buf<f32>>,
    g: Vec<D::Buf<f32>>,
    m1: Vec<D::Buf<f32>>,
    m2: Vec<D::Buf<f32>>,
    step: u64,
    /// The held item graph: S̃ and S̃ᵀ `[N, N]` on the device, S̃ on the host (with what the
    /// backward of Eq. 14 needs).
    graph: Option<(DevCsr<D>, DevCsr<D>, CsrMatrix<f64>, KnnGraph)>,
    /// A and Aᵀ (unnormalised interactions) for `h_u = A h_i` (Eq. 16) and the profiles (Eq. 5).
    inter: Option<(DevCsr<D>, DevCsr<D>)>,
    /// `1/|N_u|` (0 without items), for average profiles.
    inv_degree: Vec<f32>,
    /// A and Aᵀ on the host, for max and attention profiles (computed on the host: O(nnz·d_f)).
    a_host: Option<(Csr, Csr)>,
    block_bytes: usize,
    /// Raw features `[N, d_m]` on the device (when a term needs them) and their widths.
    feats: [Option<Mat<D::Buf<f32>>>; 2],
    widths: [usize; 2],
    /// Scoring tables after [`Engine::prepare_scoring`]: pairs `(z_u [M, d], z_i [N, d])`
    /// whose dot products add up to the score (one pair, or e and h without dual fusion).
    z: Vec<(D::Buf<f32>, D::Buf<f32>)>,
    times: StageTimes,
}

impl<D: Device> GpuEngine<D> {
    /// `[users.len(), N]` scores on the device (the sum over the score parts of [`Self::z`]).
    fn device_scores(&self, users: &[u32]) -> crane_gpu::device::R<D::Buf<f32>> {
        assert!(!self.z.is_empty(), "prepare_scoring before score_block");
        let (b, d, n) = (users.len(), self.d, self.n);
        let rows = self.dev.upload(users)?;
        let mut s = self.dev.zeros(b * n)?;
        for (k, (zu, zi)) in self.z.iter().enumerate() {
            let mut g = self.dev.zeros(b * d)?;
            self.dev.gather_rows(&mut g, zu, &rows, d)?;
            let beta = if k == 0 { 0.0 } else { 1.0 };
            self.dev.gemm(&mut s, b, n, d, &g, false, zi, true, 1.0, beta)?;
        }
        Ok(s)
    }

    pub fn new(dev: D, inputs: &ModelInputs, cfg: &ModelConfig, params: &Params) -> Result<Self> {
        cfg.validate(inputs.n_items)?;
        let params = &super::with_features(params, inputs, cfg);
        let a64 = inputs.interaction_matrix()?;
        let mask = vec![1.0; a64.nnz()];
        let adj = Self::upload_adjacency(&dev, &a64, &mask, cfg)?;
        let names: Vec<String> = params.tensors().into_iter().map(|(n, _)| n).collect();
        let index = names.iter().cloned().enumerate().map(|(k, n)| (n, k)).collect();
        let shapes: Vec<(usize, usize)> = params.tensors().iter().map(|(_, t)| (t.nrows(), t.ncols())).collect();
        let zeros = |dev: &D| -> Result<Vec<D::Buf<f32>>> {
            shapes.iter().map(|&(r, c)| dev.zeros(r * c).map_err(dev_err)).collect()
        };
        let (g, m1, m2) = (zeros(&dev)?, zeros(&dev)?, zeros(&dev)?);
        let host_feat = |m: usize| match inputs.features[m] {
            Some(f) => Dense { rows: f.rows, cols: f.cols, data: f.data.clone() },
            None => Dense::zeros(inputs.n_items, 0),
        };
        let widths = inputs.widths();
        let mut graph = None;
        let mut inter = None;
        let mut feats = [None, None];
        if cfg.item_graph {
            if let ItemGraphSource::RawFeatures { image_weight } = cfg.item_graph_source {
                // Frozen and parameter-free: built once, on the host, by the CPU engine's
                // streaming kNN (never [N, N]); only its products run on the device.
                let hf = [host_feat(0), host_feat(1)];
                let block = super::cpu::rca::block_rows(inputs.n_items, super::cpu::DEFAULT_BLOCK_BYTES);
                let kg = super::cpu::item_graph::raw_feature_graph(&hf, cfg.knn_k, image_weight, block)?;
                let host = kg.s.to_nalgebra();
                graph = Some((upload_cpu_csr(&dev, &kg.s, None)?, upload_cpu_csr(&dev, &kg.s_t, None)?, host, kg));
            }
            if let ItemGraphSource::Files { .. } = cfg.item_graph_source {
                // Frozen and given (read from kNN files): held as the raw-feature graph is.
                let g = inputs.fixed_item_graph.ok_or_else(|| {
                    CraneError::config("model.item_graph_source", "files: the kNN files were not read")
                })?;
                let kg = super::cpu::item_graph::frozen_graph(g);
                let host = kg.s.to_nalgebra();
                graph = Some((upload_cpu_csr(&dev, &kg.s, None)?, upload_cpu_csr(&dev, &kg.s_t, None)?, host, kg));
            }
            if cfg.user_semantic || cfg.item_graph_source == ItemGraphSource::Learned {
                let a = Csr::from_nalgebra(&a64);
                inter = Some((upload_cpu_csr(&dev, &a, None)?, upload_cpu_csr(&dev, &a.transpose(), None)?));
            }
        }
        let learned = cfg.item_graph && cfg.item_graph_source == ItemGraphSource::Learned;
        if cfg.modality_bpr > 0.0 || learned || (cfg.item_graph && cfg.item_graph_input == ItemGraphInput::Attention) {
            for (m, slot) in feats.iter_mut().enumerate() {
                if let Some(f) = inputs.features[m] {
                    *slot = Some(Mat { b: dev.upload(&f.data).map_err(dev_err)?, rows: f.rows, cols: f.cols });
                }
            }
        }
        let inv_degree = (0..inputs.n_users)
            .map(|u| {
                let deg = a64.row_offsets()[u + 1] - a64.row_offsets()[u];
                if deg > 0 {
                    1.0 / deg as f32
                } else {
                    0.0
                }
            })
            .collect();
        let a_host = (learned && matches!(cfg.aggregation, Aggregation::Max | Aggregation::Attention)).then(|| {
            let a = Csr::from_nalgebra(&a64);
            let a_t = a.transpose();
            (a, a_t)
        });
        let mut e = Self {
            a_host,
            inv_degree,
            block_bytes: GPU_BLOCK_BYTES,
            d: cfg.embedding_dim,
            m: inputs.n_users,
            n: inputs.n_items,
            cfg: cfg.clone(),
            a64,
            mask,
            adj,
            // Filled tensor by tensor on export: the tables need no second copy here.
            template: params.without_features(),
            index,
            shapes,
            p: Vec::new(),
            g,
            m1,
            m2,
            step: 0,
            graph,
            inter,
            feats,
            widths,
            z: Vec::new(),
            times: StageTimes::default(),
            dev,
        };
        e.p = e.upload_params(params)?;
        e.sync_trained_features()?;
        Ok(e)
    }

    /// With `train_features`, copies the trained tables (parameters `features.v`/`.t`) over the
    /// device features every term reads (`feats`): after init, each Adam step and each
    /// `set_params`, so the forward always sees the current tables.
    fn sync_trained_features(&mut self) -> Result<()> {
        if !self.cfg.train_features {
            return Ok(());
        }
        for (m, name) in crate::engine::cpu::FEATURES.iter().enumerate() {
            let k = self.ix(name);
            let len = self.shapes[k].0 * self.shapes[k].1;
            if let Some(f) = self.feats[m].as_mut() {
                self.dev.copy_at(&mut f.b, 0, &self.p[k], 0, len).map_err(dev_err)?;
            }
        }
        Ok(())
    }

    fn upload_params(&self, p: &Params) -> Result<Vec<D::Buf<f32>>> {
        p.tensors()
            .iter()
            .map(|(_, t)| {
                let host: Vec<f32> = (0..t.nrows())
                    .flat_map(|i| (0..t.ncols()).map(move |j| (i, j)))
                    .map(|(i, j)| t[(i, j)] as f32)
                    .collect();
                self.dev.upload(&host).map_err(dev_err)
            })
            .collect()
    }

    /// Device tensors as f64 `Params` in the reference's layout.
    fn export(&self, ts: &[D::Buf<f32>]) -> Result<Params> {
        let mut out = self.template.clone();
        for (((_, dst), src), &(r, c)) in out.tensors_mut().into_iter().zip(ts).zip(&self.shapes) {
            let host = self.dev.download(src).map_err(dev_err)?;
            *dst = faer::Mat::from_fn(r, c, |i, j| host[i * c + j] as f64);
        }
        Ok(out)
    }

    fn ix(&self, name: &str) -> usize {
        self.index[name]
    }

    fn zeros(&self, n: usize) -> Result<D::Buf<f32>> {
        self.dev.zeros(n).map_err(dev_err)
    }

    fn sync(&self) -> Result<()> {
        self.dev.synchronize().map_err(dev_err)
    }

    /// Sets the memory per RCA/kNN block (smaller blocks: less memory, more passes).
    pub fn with_block_bytes(mut self, bytes: usize) -> Self {
        self.block_bytes = bytes.max(1);
        self
    }

    /// A parameter as a device matrix of its shape (a copy: parameters are small next to the
    /// `[M+N, ·]` activations).
    fn pmat(&self, name: &str) -> Result<Mat<D::Buf<f32>>> {
        let k = self.ix(name);
        let (rows, cols) = self.shapes[k];
        let mut b = self.zeros(rows * cols)?;
        self.dev.copy_at(&mut b, 0, &self.p[k], 0, rows * cols).map_err(dev_err)?;
        Ok(Mat { b, rows, cols })
    }

    /// Adds a device matrix into the gradient of `name`.
    fn add_grad(&mut self, name: &str, g: &D::Buf<f32>) -> Result<()> {
        let k = self.ix(name);
        let len = self.shapes[k].0 * self.shapes[k].1;
        self.dev.axpy_at(&mut self.g[k], 0, g, 0, len, 1.0).map_err(dev_err)
    }

    /// A device matrix on the host.
    fn to_host(&self, x: &Mat<D::Buf<f32>>) -> Result<Dense> {
        let data = self.dev.download(&x.b).map_err(dev_err)?;
        Ok(Dense { rows: x.rows, cols: x.cols, data })
    }
}

impl<D: Device + 'static> Engine for GpuEngine<D> {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn set_edge_mask(&mut self, mask: &[f64]) -> Result<()> {
        if mask.len() != self.a64.nnz() {
            return Err(CraneError::Invalid(format!("edge mask has {} entries, A has {}", mask.len(), self.a64.nnz())));
        }
        self.mask = mask.to_vec();
        self.adj = Self::upload_adjacency(&self.dev, &self.a64, &self.mask, &self.cfg)?;
        Ok(())
    }

    fn loss_and_grads(&mut self, batch: &[Triplet], learn_graph: bool) -> Result<LossTerms> {
        if batch.is_empty() {
            return Err(CraneError::Invalid("empty batch".into()));
        }
        let (m, n, d) = (self.m, self.n, self.d);
        let cfg = &self.cfg;
        let learn = learn_graph && cfg.item_graph && cfg.item_graph_source == ItemGraphSource::Learned;
        if cfg.item_graph && self.graph.is_none() && !learn {
            self.rebuild_item_graph()?;
        }
        for g in &mut self.g {
            self.dev.fill_zero(g).map_err(dev_err)?;
        }
        let t0 = Instant::now();
        let cache = self.gcn()?;
        let e = &cache.e;
        let tg = Instant::now();
        let mut fcache = None;
        if learn {
            let (kg, fc) = self.build_graph()?;
            self.hold_graph(kg)?;
            fcache = Some(fc);
        }
        self.sync()?;
        let tg = tg.elapsed();
        let sem = match self.graph.is_some() {
            true => Some(self.semantic(e)?),
            false => None,
        };
        let h = sem.as_ref().map(|s| &s.full);
        self.sync()?;
        let t1 = Instant::now();
        let mu = m as u32;
        let u: Vec<u32> = batch.iter().map(|t| t.0).collect();
        let i: Vec<u32> = batch.iter().map(|t| mu + t.1).collect();
        let j: Vec<u32> = batch.iter().map(|t| mu + t.2).collect();
        let mut d_e = self.zeros((m + n) * d)?;
        let mut d_h = match &h {
            Some(_) => Some(self.zeros((m + n) * d)?),
            None => None,
        };
        let l_bpr = match (&h, self.cfg.dual_fusion) {
            (None, dual) => {
                // Without an item graph, late fusion adds BPR of the semantic branch, whose
                // tables are zero: softplus(0) per triplet, no gradient.
                let late = if dual { 0.0 } else { crane_reference::losses::softplus(0.0) };
                self.bpr(e, &mut d_e, &u, &i, &j, 1.0)? + late
            }
            // Eq. (17): z = e + h, and d_z flows to both branches.
            (Some(h), true) => {
                let mut z = self.zeros((m + n) * d)?;
                self.dev.copy_at(&mut z, 0, e, 0, (m + n) * d).map_err(dev_err)?;
                self.dev.axpy_at(&mut z, 0, h, 0, (m + n) * d, 1.0).map_err(dev_err)?;
                let l = self.bpr(&z, &mut d_e, &u, &i, &j, 1.0)?;
                let dh = d_h.as_mut().expect("d_h exists with h");
                self.dev.copy_at(dh, 0, &d_e, 0, (m + n) * d).map_err(dev_err)?;
                l
            }
            (Some(h), false) => {
                let dh = d_h.as_mut().expect("d_h exists with h");
                self.bpr(e, &mut d_e, &u, &i, &j, 1.0)? + self.bpr(h, dh, &u, &i, &j, 1.0)?
            }
        };
        let modality =
            if self.cfg.modality_bpr > 0.0 { self.modality_bpr(e, h, &mut d_e, d_h.as_mut(), batch)? } else { 0.0 };
        // Eq. (19) on the batch's distinct users and positive items.
        let (mut l_clu, mut l_cli, mut beta) = (0.0, 0.0, 0.0);
        if let (Some(h), Some(dh), true) = (&h, d_h.as_mut(), self.cfg.uses_contrastive()) {
            beta = self.cfg.beta;
            let users = distinct(batch.iter().map(|t| t.0));
            let items = distinct(batch.iter().map(|t| mu + t.1));
            l_clu = self.info_nce(e, h, &users, &mut d_e, dh)?;
            l_cli = self.info_nce(e, h, &items, &mut d_e, dh)?;
        }
        let items = |v: &[u32]| -> Vec<u32> { v.iter().map(|x| x - mu).collect() };
        let sq = self.regularise(&u, &items(&i), &items(&j))?;
        let mut terms = crane_reference::losses::total_loss(l_bpr, l_clu, l_cli, sq, beta, self.cfg.lambda);
        terms.modality = modality;
        for (name, v) in terms.named() {
            if !v.is_finite() {
                return Err(CraneError::Invalid(format!("non-finite loss: term {name} is {v}")));
            }
        }
        self.sync()?;
        let t2 = Instant::now();
        let mut tgb = std::time::Duration::ZERO;
        if let Some(dh) = &d_h {
            let nnz = self.graph.as_ref().map_or(0, |g| g.3.s.nnz());
            let mut d_vals = fcache.as_ref().map(|_| vec![0f32; nnz]);
            let sem = sem.as_ref().expect("d_h exists with the semantic branch");
            self.semantic_backward(dh, sem, &mut d_e, d_vals.as_mut())?;
            if let (Some(fc), Some(dv)) = (&fcache, &d_vals) {
                let t = Instant::now();
                self.build_graph_backward(fc, dv)?;
                self.sync()?;
                tgb = t.elapsed();
            }
        }
        self.gcn_backward(&cache, &d_e)?;
        self.sync()?;
        self.times.propagation += (t1 - t0) + t2.elapsed() - tg - tgb;
        self.times.rca_graph += tg + tgb;
        self.times.losses += t2 - t1;
        Ok(terms)
    }

    fn rebuild_item_graph(&mut self) -> Result<()> {
        // A frozen raw-feature graph was built at construction.
        if !self.cfg.item_graph || self.cfg.item_graph_source != ItemGraphSource::Learned {
            return Ok(());
        }
        let t = Instant::now();
        let (kg, _) = self.build_graph()?;
        self.hold_graph(kg)?;
        self.sync()?;
        self.times.rca_graph += t.elapsed();
        Ok(())
    }

    fn adam_step(&mut self, lr: f64, idle: AdamIdle) -> Result<()> {
        if idle == AdamIdle::Skip {
            return Err(CraneError::config("adam_idle", SKIP_ON_GPU));
        }
        let t = Instant::now();
        self.step += 1;
        let s = crane_gpu::device::AdamConsts::new(lr, self.step);
        for k in 0..self.p.len() {
            if self.shapes[k].0 * self.shapes[k].1 == 0 {
                continue;
            }
            self.dev
                .adam(&mut self.p[k], &self.g[k], &mut self.m1[k], &mut self.m2[k], s)
                .map_err(failed("Adam step"))?;
        }
        self.sync_trained_features()?;
        self.dev.synchronize().map_err(failed("Adam step"))?;
        self.times.optimiser += t.elapsed();
        Ok(())
    }

    fn optimiser_state(&self) -> OptimiserState {
        let ex =
            |t: &[D::Buf<f32>]| self.export(t).unwrap_or_else(|e| panic!("GPU download of Adam's moments failed: {e}"));
        OptimiserState { step: self.step, m: ex(&self.m1), v: ex(&self.m2), skipped: Default::default() }
    }

    fn set_optimiser_state(&mut self, s: &OptimiserState) -> Result<()> {
        if !s.skipped.is_empty() {
            return Err(CraneError::config("adam_idle", SKIP_ON_GPU));
        }
        let m1 = self.upload_params(&s.m).map_err(failed("upload of Adam's moments"))?;
        let m2 = self.upload_params(&s.v).map_err(failed("upload of Adam's moments"))?;
        (self.step, self.m1, self.m2) = (s.step, m1, m2);
        Ok(())
    }

    fn params(&self) -> Params {
        self.export(&self.p).unwrap_or_else(|e| panic!("GPU download of the parameters failed: {e}"))
    }

    fn grads(&self) -> Params {
        self.export(&self.g).unwrap_or_else(|e| panic!("GPU download of the gradients failed: {e}"))
    }

    fn set_params(&mut self, p: &Params) -> Result<()> {
        self.p = self.upload_params(p).map_err(failed("upload of the parameters"))?;
        self.sync_trained_features()
    }

    fn item_graph(&self) -> Option<CsrMatrix<f64>> {
        self.graph.as_ref().map(|g| g.2.clone())
    }

    fn prepare_scoring(&mut self) -> Result<()> {
        let t = Instant::now();
        if self.cfg.item_graph && self.graph.is_none() {
            self.rebuild_item_graph()?;
        }
        let saved = std::mem::take(&mut self.mask);
        self.set_edge_mask(&vec![1.0; self.a64.nnz()])?;
        let e = self.gcn()?.e;
        self.set_edge_mask(&saved)?;
        let h = if self.graph.is_some() { Some(self.semantic(&e)?.full) } else { None };
        let (m, n, d) = (self.m, self.n, self.d);
        let split = |x: &D::Buf<f32>| -> Result<(D::Buf<f32>, D::Buf<f32>)> {
            let (mut zu, mut zi) = (self.zeros(m * d)?, self.zeros(n * d)?);
            self.dev.copy_at(&mut zu, 0, x, 0, m * d).map_err(dev_err)?;
            self.dev.copy_at(&mut zi, 0, x, m * d, n * d).map_err(dev_err)?;
            Ok((zu, zi))
        };
        self.z = match h {
            None => vec![split(&e)?],
            Some(h) if self.cfg.dual_fusion => {
                let mut z = e;
                self.dev.axpy_at(&mut z, 0, &h, 0, (m + n) * d, 1.0).map_err(dev_err)?;
                vec![split(&z)?]
            }
            // Late fusion: the score is e_u·e_i + h_u·h_i.
            Some(h) => vec![split(&e)?, split(&h)?],
        };
        self.sync()?;
        self.times.scoring += t.elapsed();
        Ok(())
    }

    fn score_block(&self, users: &[u32], out: &mut [f32]) -> Result<()> {
        let run = || -> crane_gpu::device::R<Vec<f32>> {
            let s = self.device_scores(users)?;
            self.dev.download(&s)
        };
        let s = run().map_err(failed("scoring"))?;
        out[..s.len()].copy_from_slice(&s);
        Ok(())
    }

    fn rank_block(
        &self,
        users: &[u32],
        mask: crate::eval::Mask<'_>,
        n_items: usize,
        k: usize,
    ) -> Result<Vec<Vec<u32>>> {
        if k > MAX_DEVICE_TOPK || n_items != self.n {
            return super::rank_on_host(self, users, mask, n_items, k);
        }
        let run = || -> crane_gpu::device::R<Vec<u32>> {
            let s = self.device_scores(users)?;
            // The users' training items and the absent ids as a CSR over the block's rows.
            let mut offsets = Vec::with_capacity(users.len() + 1);
            offsets.push(0i64);
            let mut idx = Vec::new();
            for &u in users {
                if mask.absent.is_empty() {
                    idx.extend_from_slice(&mask.train[u as usize]);
                } else {
                    idx.extend(mask.merged(u));
                }
                offsets.push(idx.len() as i64);
            }
            let m = crane_gpu::device::upload_csr(&self.dev, &offsets, &idx, &[])?;
            let mut ti = self.dev.zeros::<u32>(users.len() * k)?;
            let mut tv = self.dev.zeros::<f32>(users.len() * k)?;
            self.dev.row_topk(&mut ti, &mut tv, &s, users.len(), self.n, k, Some(&m))?;
            self.dev.download(&ti)
        };
        let top = run().map_err(failed("ranking"))?;
        // Padding (u32::MAX) marks users with fewer than k unmasked items.
        Ok(top
            .chunks(k.max(1))
            .take(users.len())
            .map(|r| r.iter().copied().filter(|&i| i != u32::MAX).collect())
            .collect())
    }

    fn times(&self) -> &StageTimes {
        &self.times
    }

    fn reset_times(&mut self) {
        self.times = StageTimes::default();
    }
}
