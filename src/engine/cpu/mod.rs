//! The fast CPU engine: f32, rayon, faer GEMMs, RCA and kNN in row blocks.
//!
//! It computes the same function as `crane_reference::loss_and_grads` (tested for parity
//! on small random graphs, `tests/parity.rs`) without ever materialising an `[M+N, M+N]` or
//! `[N, N]` matrix: RCA's C^m and the item similarities are built one row block at a time.

pub mod attention;
pub mod interaction_graph;
pub mod item_graph;
pub mod losses;
pub mod ops;
pub mod rca;
pub mod simd;
pub mod user_profiles;

use super::{AdamIdle, Engine, ModelInputs, OptimiserState, StageTimes};
use crate::error::{CraneError, Result};
use crate::sampling::Triplet;
use crane_reference::config::{Fusion, ItemGraphInput, ItemGraphSource, Regularisation};
use crane_reference::losses::LossTerms;
use crane_reference::{ModelConfig, Params};
use item_graph::{KnnGraph, Unit};
use nalgebra_sparse::CsrMatrix;
use ops::{dot, gemm, mm, mm_tn_tall, Csr, Dense};
use rayon::prelude::*;
use std::collections::HashMap;
use std::time::Instant;

/// Parameter names of the projection `P_m`, `p_m` of each modality (v, t).
pub(super) const PROJ: [(&str, &str); 2] = [("proj.v", "proj_bias.v"), ("proj.t", "proj_bias.t")];
/// Parameter names of the authors' second projection `Q_m`, `q_m` (`attention_projection`).
pub(super) const MHA_PROJ: [(&str, &str); 2] = [("mha_proj.v", "mha_proj_bias.v"), ("mha_proj.t", "mha_proj_bias.t")];
/// Parameter names of the trained raw feature tables (`train_features`).
pub(super) const FEATURES: [&str; 2] = ["features.v", "features.t"];

/// Bytes per `[block, M+N]` buffer of RCA and the kNN (two such buffers are live at once).
pub const DEFAULT_BLOCK_BYTES: usize = 64 << 20;

/// Query rows per task of crane-code's fused attention over `n` items: the setting
/// (`TrainConfig::attention_block_rows`), or when it is 0 the RCA rule for `budget_bytes` per
/// `[rows, n]` block. The memory estimate (`crate::memory`) uses the same rule.
pub fn attention_block_rows(n: usize, budget_bytes: usize, setting: usize) -> usize {
    match setting {
        0 => rca::block_rows(n, budget_bytes),
        r => r.min(n.max(1)),
    }
}

/// Rows per RCA block over `n` entities: about `budget_bytes` per `[b, n]` buffer, but at least
/// `min_rows` (capped at `n`). The memory estimate (`crate::memory`) uses the same rule.
pub fn rca_block_rows(n: usize, budget_bytes: usize, min_rows: usize) -> usize {
    rca::block_rows(n, budget_bytes).max(min_rows.min(n))
}

pub struct CpuEngine {
    cfg: ModelConfig,
    m: usize,
    n: usize,
    a64: CsrMatrix<f64>,
    a: Csr,
    a_t: Csr,
    mask: Vec<f64>,
    adj: Csr,
    feats: [Dense; 2],
    template: Params,
    index: HashMap<String, usize>,
    p: Vec<Dense>,
    g: Vec<Dense>,
    m1: Vec<Dense>,
    m2: Vec<Dense>,
    step: u64,
    /// Per tensor: the steps it sat out under [`AdamIdle::Skip`] (its own step is `step` minus
    /// this).
    skipped: Vec<u64>,
    /// Shared, so that a batch holds it while the engine's other fields change (a clone per
    /// batch copied every S̃ entry).
    graph: Option<std::sync::Arc<KnnGraph>>,
    block_bytes: usize,
    min_block_rows: usize,
    attention_block_rows: usize,
    z: Option<(Dense, Dense)>,
    times: StageTimes,
    /// `g` is all zeros: [`Engine::adam_step`] clears each gradient as it consumes it, so the
    /// next [`Engine::loss_and_grads`] need not (one pass over every table fewer per step).
    grads_zero: bool,
    /// Reused buffers for the modality terms' feature rows and their gradient (`[rows, d_m]`,
    /// ~64 MB at Baby's image width): a fresh allocation of that size is a fresh mmap whose
    /// page faults cost more than the copy.
    scratch: [Dense; 3],
}

/// What the feature branch saved for its backward.
struct FeatureCache {
    xhat: [Dense; 2],
    profiles: Option<[user_profiles::ProfileCache; 2]>,
    rca: Option<Vec<rca::RoundCache>>,
    units: Vec<Unit>,
}

impl CpuEngine {
    pub fn new(inputs: &ModelInputs, cfg: &ModelConfig, params: &Params) -> Result<Self> {
        inputs.check(cfg)?;
        cfg.validate(inputs.n_items)?;
        let params = &super::with_features(params, inputs, cfg);
        let a64 = inputs.interaction_matrix()?;
        let a = Csr::from_nalgebra(&a64);
        let a_t = a.transpose();
        let feat = |m: usize| match inputs.features[m] {
            Some(f) => Dense { rows: f.rows, cols: f.cols, data: f.data.clone() },
            None => Dense::zeros(inputs.n_items, 0),
        };
        let names: Vec<String> = params.tensors().into_iter().map(|(n, _)| n).collect();
        let index = names.iter().cloned().enumerate().map(|(k, n)| (n, k)).collect();
        let p: Vec<Dense> = params.tensors().into_iter().map(|(_, t)| Dense::from_mat(t)).collect();
        let zeros: Vec<Dense> = p.iter().map(|t| Dense::zeros(t.rows, t.cols)).collect();
        let mask = vec![1.0; a64.nnz()];
        let adj = Csr::from_nalgebra(&crane_reference::interaction_graph::normalized_adjacency(
            &a64,
            &mask,
            cfg.degree_source,
        ));
        Ok(Self {
            cfg: cfg.clone(),
            m: inputs.n_users,
            n: inputs.n_items,
            a64,
            a,
            a_t,
            mask,
            adj,
            feats: [feat(0), feat(1)],
            // Filled tensor by tensor on export: the tables need no second copy here.
            template: params.without_features(),
            index,
            g: zeros.clone(),
            m1: zeros.clone(),
            m2: zeros,
            skipped: vec![0; p.len()],
            p,
            step: 0,
            // A graph read from kNN files is frozen and given: held from the start.
            graph: inputs
                .fixed_item_graph
                .filter(|_| cfg.item_graph)
                .map(item_graph::frozen_graph)
                .map(std::sync::Arc::new),
            block_bytes: DEFAULT_BLOCK_BYTES,
            min_block_rows: 0,
            attention_block_rows: 0,
            z: None,
            times: StageTimes::default(),
            grads_zero: true,
            scratch: Default::default(),
        })
    }

    /// Sets the memory per RCA/kNN block (smaller blocks: less memory, more passes).
    pub fn with_block_bytes(mut self, bytes: usize) -> Self {
        self.block_bytes = bytes.max(1);
        self
    }

    /// Sets the fewest rows of an RCA `[block, M+N]` block (`TrainConfig::min_block_rows`).
    pub fn with_min_block_rows(mut self, rows: usize) -> Self {
        self.min_block_rows = rows;
        self
    }

    /// Sets the query rows per block of crane-code's attention (`TrainConfig::attention_block_rows`);
    /// 0 derives them from the block bytes like RCA's.
    pub fn with_attention_block_rows(mut self, rows: usize) -> Self {
        self.attention_block_rows = rows;
        self
    }

    /// Query rows per task of the fused attention.
    fn attention_block_rows(&self) -> usize {
        attention_block_rows(self.n, self.block_bytes, self.attention_block_rows)
    }

    /// Rows per RCA block `[b, M+N]`.
    fn rca_block_rows(&self) -> usize {
        rca_block_rows(self.m + self.n, self.block_bytes, self.min_block_rows)
    }

    /// f32 tensors in [`Params::tensors`] order as f64 `Params`.
    fn export(&self, ts: &[Dense]) -> Params {
        let mut out = self.template.clone();
        for ((_, dst), src) in out.tensors_mut().into_iter().zip(ts) {
            *dst = src.to_mat();
        }
        out
    }

    fn ix(&self, name: &str) -> usize {
        self.index[name]
    }

    fn t(&self, name: &str) -> &Dense {
        &self.p[self.ix(name)]
    }

    fn theta(&self) -> rca::Theta<'_> {
        rca::Theta {
            w_tr: self.t("w_tr"),
            b_tr: self.t("b_tr"),
            w_m: [self.t("w_m.v"), self.t("w_m.t")],
            w_a: [self.t("w_a.v"), self.t("w_a.t")],
            w_f: [self.t("w_f.v"), self.t("w_f.t")],
            scale: crane_reference::model::rca_scale(&self.cfg, self.m + self.n) as f32,
        }
    }

    /// W^(l) of each layer (`None`, the identity, without `gcn_weights`).
    fn gcn_weights(&self) -> Vec<Option<Dense>> {
        (0..self.cfg.ui_layers).map(|l| self.cfg.gcn_weights.then(|| self.t(&format!("w_gcn.{l}")).clone())).collect()
    }

    /// Eq. (3)-(4) on the current Â.
    fn gcn(&self) -> (Dense, interaction_graph::GcnCache) {
        let h0 = Dense::vcat(self.t("user_emb"), self.t("item_emb"));
        let ws = self.gcn_weights();
        interaction_graph::forward(&self.adj, h0, &ws, self.cfg.sigma, self.cfg.readout)
    }

    /// Eq. (5)-(14): S̃ from the features and current parameters.
    fn build_graph(&self) -> Result<(KnnGraph, FeatureCache)> {
        let cfg = &self.cfg;
        let xhat = [self.project(0, self.feat(0)), self.project(1, self.feat(1))];
        let block = self.rca_block_rows();
        let kblock = rca::block_rows(self.n, self.block_bytes);
        let (mut profiles, mut rca_cache) = (None, None);
        let units = match cfg.fusion {
            Fusion::Rca => {
                let atts = [self.t("att.v"), self.t("att.t")];
                let (xu0, c0) = user_profiles::forward(&self.a, &xhat[0], cfg.aggregation, atts[0]);
                let (xu1, c1) = user_profiles::forward(&self.a, &xhat[1], cfg.aggregation, atts[1]);
                let x0 = Dense::vcat(&xu0, &xhat[0]);
                let x1 = Dense::vcat(&xu1, &xhat[1]);
                let (xatt, rc) = rca::forward(&x0, &x1, &self.theta(), cfg.rounds, block, self.m);
                profiles = Some([c0, c1]);
                rca_cache = Some(rc);
                vec![item_graph::unit_rows(&xatt.rows_range(self.m, self.m + self.n))?]
            }
            Fusion::Concat => vec![item_graph::unit_rows(&Dense::hcat(&xhat[0], &xhat[1]))?],
            Fusion::Sum => {
                let mut s = xhat[0].clone();
                s.add_assign(&xhat[1]);
                vec![item_graph::unit_rows(&s)?]
            }
            Fusion::Visual => vec![item_graph::unit_rows(&xhat[0])?],
            Fusion::Text => vec![item_graph::unit_rows(&xhat[1])?],
            Fusion::AverageGraphs => vec![item_graph::unit_rows(&xhat[0])?, item_graph::unit_rows(&xhat[1])?],
        };
        let w = if units.len() == 2 { 0.5 } else { 1.0 };
        let pairs: Vec<(&Unit, f32)> = units.iter().map(|u| (u, w)).collect();
        let g = item_graph::knn(&pairs, cfg.knn_k, kblock)?;
        Ok((g, FeatureCache { xhat, profiles, rca: rca_cache, units }))
    }

    /// Backward of [`CpuEngine::build_graph`] into `self.g`.
    fn build_graph_backward(&mut self, g: &KnnGraph, fc: &FeatureCache, d_vals: &[f32]) {
        let cfg = self.cfg.clone();
        let w = if fc.units.len() == 2 { 0.5 } else { 1.0 };
        let pairs: Vec<(&Unit, f32)> = fc.units.iter().map(|u| (u, w)).collect();
        let d_units = item_graph::knn_backward(g, &pairs, d_vals);
        let mut d_xhat =
            [Dense::zeros(fc.xhat[0].rows, fc.xhat[0].cols), Dense::zeros(fc.xhat[1].rows, fc.xhat[1].cols)];
        match cfg.fusion {
            Fusion::Rca => {
                let block = self.rca_block_rows();
                let d_items = &d_units[0];
                let d_xatt = Dense::vcat(&Dense::zeros(self.m, d_items.cols), d_items);
                let th = self.theta();
                let zero = |name: &str| Dense::zeros(self.t(name).rows, self.t(name).cols);
                let mut gr = rca::ThetaGrads {
                    w_tr: zero("w_tr"),
                    b_tr: zero("b_tr"),
                    w_m: [zero("w_m.v"), zero("w_m.t")],
                    w_a: [zero("w_a.v"), zero("w_a.t")],
                    w_f: [zero("w_f.v"), zero("w_f.t")],
                };
                let (dv, dt) = rca::backward(&th, fc.rca.as_ref().unwrap(), &d_xatt, fc.xhat[0].cols, &mut gr, block);
                for (name, t) in [
                    ("w_tr", &gr.w_tr),
                    ("b_tr", &gr.b_tr),
                    ("w_m.v", &gr.w_m[0]),
                    ("w_m.t", &gr.w_m[1]),
                    ("w_a.v", &gr.w_a[0]),
                    ("w_a.t", &gr.w_a[1]),
                    ("w_f.v", &gr.w_f[0]),
                    ("w_f.t", &gr.w_f[1]),
                ] {
                    let k = self.ix(name);
                    self.g[k].add_assign(t);
                }
                let profiles = fc.profiles.as_ref().unwrap();
                for (m, (d, att)) in [(dv, "att.v"), (dt, "att.t")].into_iter().enumerate() {
                    let d_xu = d.rows_range(0, self.m);
                    let d_xi = d.rows_range(self.m, self.m + self.n);
                    let (d_prof, d_att) =
                        user_profiles::backward(&self.a, &self.a_t, &fc.xhat[m], self.t(att), &profiles[m], &d_xu);
                    d_xhat[m].add_assign(&d_xi);
                    d_xhat[m].add_assign(&d_prof);
                    let k = self.ix(att);
                    self.g[k].add_assign(&d_att);
                }
            }
            Fusion::Concat => {
                let (a, b) = d_units[0].hsplit(fc.xhat[0].cols);
                d_xhat[0].add_assign(&a);
                d_xhat[1].add_assign(&b);
            }
            Fusion::Sum => {
                d_xhat[0].add_assign(&d_units[0]);
                d_xhat[1].add_assign(&d_units[0]);
            }
            Fusion::Visual => d_xhat[0].add_assign(&d_units[0]),
            Fusion::Text => d_xhat[1].add_assign(&d_units[0]),
            Fusion::AverageGraphs => {
                d_xhat[0].add_assign(&d_units[0]);
                d_xhat[1].add_assign(&d_units[1]);
            }
        }
        for (m, d) in d_xhat.iter().enumerate() {
            self.add_project_grads(m, None, d, None);
        }
    }

    /// Modality m's raw features `X^m` `[N, d_m]`: the trained table (`train_features`) or
    /// the data's constants.
    fn feat(&self, m: usize) -> &Dense {
        if self.cfg.train_features {
            self.t(FEATURES[m])
        } else {
            &self.feats[m]
        }
    }

    /// `X̂ = X P_m + p_m` for rows `x` of modality m's raw features.
    fn project(&self, m: usize, x: &Dense) -> Dense {
        user_profiles::project(x, self.t(PROJ[m].0), self.t(PROJ[m].1))
    }

    /// Accumulates the gradients of `P_m`, `p_m` from `dX̂` of the feature rows `x` with ids
    /// `rows` (`None`: every item's row, without copying the features): `dP_m += Xᵀ dX̂`,
    /// `dp_m += 1ᵀ dX̂`, and with trained tables `dX^m[rows] += dX̂ P_mᵀ`. `col_sums` is
    /// `1ᵀ dX̂` when the caller has it in a better-conditioned form ([`attention::input_col_sums`]).
    fn add_project_grads(&mut self, m: usize, x: Option<(&Dense, &[u32])>, d_xhat: &Dense, col_sums: Option<Dense>) {
        let xs = x.map_or(self.feat(m), |(x, _)| x);
        let (dp, db) = match col_sums {
            Some(s) => (mm_tn_tall(xs, d_xhat), s),
            None => user_profiles::project_backward(xs, d_xhat),
        };
        let (kp, kb) = (self.ix(PROJ[m].0), self.ix(PROJ[m].1));
        self.g[kp].add_assign(&dp);
        self.g[kb].add_assign(&db);
        if self.cfg.train_features {
            let k = self.ix(FEATURES[m]);
            let proj = &self.p[kp];
            match x {
                Some((_, rows)) => {
                    let mut d_x = std::mem::take(&mut self.scratch[2]);
                    d_x.reshape(d_xhat.rows, proj.rows);
                    gemm(&mut d_x, false, d_xhat, false, proj, true, 1.0);
                    scatter_add(&mut self.g[k], rows, &d_x);
                    self.scratch[2] = d_x;
                }
                None => gemm(&mut self.g[k], true, d_xhat, false, proj, true, 1.0),
            }
        }
    }

    /// The attention's input for modality m: `X̂^m`, or `X̂^m Q_m + q_m` with the authors'
    /// second projection (`attention_projection`).
    fn attention_in(&self, m: usize, xhat: &Dense) -> Option<Dense> {
        self.cfg
            .uses_attention_projection()
            .then(|| user_profiles::project(xhat, self.t(MHA_PROJ[m].0), self.t(MHA_PROJ[m].1)))
    }

    /// The collaborative (e) and semantic (h, Eq. 15-16) views from e and the held graph.
    fn branches(&self, e: &Dense, graph: Option<&KnnGraph>) -> Branches {
        let eu = e.rows_range(0, self.m);
        let ei = e.rows_range(self.m, self.m + self.n);
        match graph {
            Some(g) => {
                let mut att = None;
                let h0 = match self.cfg.item_graph_input {
                    ItemGraphInput::Readout => ei.clone(),
                    ItemGraphInput::Embeddings => self.t("item_emb").clone(),
                    ItemGraphInput::Attention => {
                        let t = Instant::now();
                        let (h0, caches) = self.attention_input();
                        att = Some((caches, t.elapsed()));
                        h0
                    }
                };
                let hs = item_graph::propagate(g, &h0, self.cfg.ii_layers);
                let hi = hs.last().unwrap().clone();
                let hu = if self.cfg.user_semantic { self.a.spmm(&hi) } else { Dense::zeros(self.m, e.cols) };
                Branches { eu, ei, hs, hu, hi, att }
            }
            None => {
                let (hu, hi) = (Dense::zeros(self.m, e.cols), Dense::zeros(self.n, e.cols));
                Branches { eu, ei, hs: Vec::new(), hu, hi, att: None }
            }
        }
    }

    fn mha(&self) -> attention::Mha<'_> {
        attention::Mha {
            w: [self.t("mha.w_q"), self.t("mha.w_k"), self.t("mha.w_v"), self.t("mha.w_o")],
            b: [self.t("mha.b_q"), self.t("mha.b_k"), self.t("mha.b_v"), self.t("mha.b_o")],
            heads: self.cfg.attention_heads,
        }
    }

    /// h^(0) of the authors' code: the mean over present modalities of the blocked attention
    /// of the projected features `[N, d]`, with the caches of its backward (and X̂^m, which
    /// the second projection's backward needs).
    fn attention_input(&self) -> (Dense, Vec<AttentionCache>) {
        let block = self.attention_block_rows();
        let present: Vec<usize> = (0..2).filter(|&m| self.feats[m].cols > 0).collect();
        let mut h0 = Dense::zeros(self.n, self.cfg.feature_dim);
        let mut caches = Vec::new();
        for &m in &present {
            let xhat = self.project(m, self.feat(m));
            let x2 = self.attention_in(m, &xhat);
            let (y, c) = attention::forward(x2.as_ref().unwrap_or(&xhat), &self.mha(), block);
            h0.axpy(1.0 / present.len() as f32, &y);
            caches.push((m, c, x2.is_some().then_some(xhat)));
        }
        (h0, caches)
    }

    /// The scoring tables: z = e + h (Eq. 17), or [e, h] without dual fusion (late fusion:
    /// the dot product adds the two branches' scores).
    fn scoring_tables(&self, e: &Dense, graph: Option<&KnnGraph>) -> (Dense, Dense) {
        let br = self.branches(e, graph);
        if self.cfg.dual_fusion {
            let (mut zu, mut zi) = (br.eu, br.ei);
            zu.add_assign(&br.hu);
            zi.add_assign(&br.hi);
            (zu, zi)
        } else {
            (Dense::hcat(&br.eu, &br.hu), Dense::hcat(&br.ei, &br.hi))
        }
    }
}

/// Per present modality of the authors' attention: its index, the attention's cache, and X̂^m
/// when the second projection sits between them.
type AttentionCache = (usize, attention::MhaCache, Option<Dense>);

/// e and h split into users and items; `hs` are the layers of Eq. (15) (empty without a graph).
struct Branches {
    eu: Dense,
    ei: Dense,
    hs: Vec<Dense>,
    hu: Dense,
    hi: Dense,
    /// Attention caches per present modality (`item_graph_input = "attention"`) and the time
    /// its forward took (reported with the item graph's stage, as its backward is).
    att: Option<(Vec<AttentionCache>, std::time::Duration)>,
}

/// Eq. (18), one view: the mean BPR loss of the batch's triplets on `xu` `[M, d]`, `xi`
/// `[N, d]`, with its gradient added into `d_xu`, `d_xi`.
fn bpr_view(batch: &[Triplet], xu: &Dense, xi: &Dense, d_xu: &mut Dense, d_xi: &mut Dense) -> f64 {
    let d = xu.cols;
    let pos: Vec<f32> = batch.iter().map(|&(u, i, _)| dot(xu.row(u as usize), xi.row(i as usize))).collect();
    let neg: Vec<f32> = batch.iter().map(|&(u, _, j)| dot(xu.row(u as usize), xi.row(j as usize))).collect();
    let (l, dpos, dneg) = losses::bpr(&pos, &neg);
    for (k, &(u, i, j)) in batch.iter().enumerate() {
        let (u, i, j) = (u as usize, i as usize, j as usize);
        for c in 0..d {
            d_xu.data[u * d + c] += dpos[k] * xi.data[i * d + c] + dneg[k] * xi.data[j * d + c];
            d_xi.data[i * d + c] += dpos[k] * xu.data[u * d + c];
            d_xi.data[j * d + c] += dneg[k] * xu.data[u * d + c];
        }
    }
    l
}

fn gather(x: &Dense, rows: &[u32]) -> Dense {
    let mut o = Dense::default();
    gather_into(&mut o, x, rows);
    o
}

/// [`gather`] into a reused buffer (its allocation kept when large enough).
fn gather_into(o: &mut Dense, x: &Dense, rows: &[u32]) {
    o.reshape(rows.len(), x.cols);
    for (k, &r) in rows.iter().enumerate() {
        o.row_mut(k).copy_from_slice(x.row(r as usize));
    }
}

/// The distinct values of `it` in first-seen order, and each item's index among them.
fn distinct_slots(it: impl Iterator<Item = u32>) -> (Vec<u32>, Vec<usize>) {
    let mut at = HashMap::new();
    let mut rows = Vec::new();
    let slot = it
        .map(|r| {
            *at.entry(r).or_insert_with(|| {
                rows.push(r);
                rows.len() - 1
            })
        })
        .collect();
    (rows, slot)
}

fn scatter_add(dst: &mut Dense, rows: &[u32], src: &Dense) {
    for (k, &r) in rows.iter().enumerate() {
        dst.row_mut(r as usize).iter_mut().zip(src.row(k)).for_each(|(a, b)| *a += b);
    }
}

pub(super) fn distinct(it: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut seen = std::collections::HashSet::new();
    it.filter(|x| seen.insert(*x)).collect()
}

impl Engine for CpuEngine {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn set_edge_mask(&mut self, mask: &[f64]) -> Result<()> {
        if mask.len() != self.a64.nnz() {
            return Err(CraneError::Invalid(format!("edge mask has {} entries, A has {}", mask.len(), self.a64.nnz())));
        }
        self.mask = mask.to_vec();
        self.adj = Csr::from_nalgebra(&crane_reference::interaction_graph::normalized_adjacency(
            &self.a64,
            &self.mask,
            self.cfg.degree_source,
        ));
        Ok(())
    }

    fn loss_and_grads(&mut self, batch: &[Triplet], learn_graph: bool) -> Result<LossTerms> {
        if batch.is_empty() {
            return Err(CraneError::Invalid("empty batch".into()));
        }
        let cfg = self.cfg.clone();
        // A frozen raw-feature graph (FREEDOM) has nothing to learn.
        let learn = learn_graph && cfg.item_graph && cfg.item_graph_source == ItemGraphSource::Learned;
        if cfg.item_graph && self.graph.is_none() && !learn {
            self.rebuild_item_graph()?;
        }
        let (m, n) = (self.m, self.n);
        let t0 = Instant::now();
        let (e, gcn_cache) = self.gcn();
        let t1 = Instant::now();
        let mut fcache = None;
        if learn {
            let (g, fc) = self.build_graph()?;
            self.graph = Some(std::sync::Arc::new(g));
            fcache = Some(fc);
        }
        let t2 = Instant::now();
        let graph = if cfg.item_graph { self.graph.clone() } else { None };
        let br = self.branches(&e, graph.as_deref());
        let t3 = Instant::now();

        // Eq. (18) on z = e + h; without dual fusion, one BPR term per branch. The gradients
        // go straight into the views' tables: d_z reaches e and h alike under dual fusion.
        let d = e.cols;
        let (mut d_eu, mut d_ei) = (Dense::zeros(m, d), Dense::zeros(n, d));
        let (mut d_hu, mut d_hi);
        let mut l_bpr;
        // h_u is 0 without user profiles from the item graph (FREEDOM): then nothing reads
        // d h_u, which stays empty under dual fusion, and z_u = e_u needs no sum.
        let user_h = graph.is_some() && cfg.user_semantic;
        if cfg.dual_fusion {
            // Without an item graph h = 0, so z = e needs no sum.
            let sum = |e: &Dense, h: &Dense| {
                let mut z = e.clone();
                z.add_assign(h);
                z
            };
            let zu = user_h.then(|| sum(&br.eu, &br.hu));
            let zi = graph.as_ref().map(|_| sum(&br.ei, &br.hi));
            let (xu, xi) = (zu.as_ref().unwrap_or(&br.eu), zi.as_ref().unwrap_or(&br.ei));
            l_bpr = bpr_view(batch, xu, xi, &mut d_eu, &mut d_ei);
            d_hu = if user_h { d_eu.clone() } else { Dense::default() };
            d_hi = if graph.is_some() { d_ei.clone() } else { Dense::zeros(n, d) };
        } else {
            (d_hu, d_hi) = (Dense::zeros(m, d), Dense::zeros(n, d));
            l_bpr = bpr_view(batch, &br.eu, &br.ei, &mut d_eu, &mut d_ei);
            l_bpr += bpr_view(batch, &br.hu, &br.hi, &mut d_hu, &mut d_hi);
        }
        // Eq. (19)
        let use_cl = cfg.uses_contrastive();
        let beta = if use_cl { cfg.beta } else { 0.0 };
        let (mut l_clu, mut l_cli) = (0.0, 0.0);
        if use_cl {
            let users = distinct(batch.iter().map(|t| t.0));
            let items = distinct(batch.iter().map(|t| t.1));
            let (l, da, dh) =
                losses::info_nce(&gather(&br.eu, &users), &gather(&br.hu, &users), cfg.tau as f32, beta as f32);
            l_clu = l;
            scatter_add(&mut d_eu, &users, &da);
            if user_h {
                scatter_add(&mut d_hu, &users, &dh);
            }
            let (l, da, dh) =
                losses::info_nce(&gather(&br.ei, &items), &gather(&br.hi, &items), cfg.tau as f32, beta as f32);
            l_cli = l;
            scatter_add(&mut d_ei, &items, &da);
            scatter_add(&mut d_hi, &items, &dh);
        }
        // Eq. (20)
        let (ue, ie) = (self.ix("user_emb"), self.ix("item_emb"));
        let users_b: Vec<u32> = batch.iter().map(|t| t.0).collect();
        let pos_b: Vec<u32> = batch.iter().map(|t| t.1).collect();
        let neg_b: Vec<u32> = batch.iter().map(|t| t.2).collect();
        let table_sq = |t: &Dense, rows: &[u32]| {
            rows.iter().map(|&r| dot(t.row(r as usize), t.row(r as usize)) as f64).sum::<f64>()
        };
        // Eq. (20)'s term is λ · (these): with λ = 0 (FREEDOM's preset) neither it nor its
        // gradient needs them.
        let norms = if cfg.lambda == 0.0 {
            [0.0; 3]
        } else {
            [table_sq(&self.p[ue], &users_b), table_sq(&self.p[ie], &pos_b), table_sq(&self.p[ie], &neg_b)]
        };
        let sq = match cfg.regularisation {
            Regularisation::BatchEmbeddings => norms.iter().sum::<f64>() / batch.len() as f64,
            Regularisation::BatchNorms => norms.iter().map(|v| v.sqrt()).sum::<f64>() / batch.len() as f64,
            Regularisation::AllParameters => self.p.iter().map(|t| t.sq_norm()).sum(),
        };
        let mut terms = crane_reference::losses::total_loss(l_bpr, l_clu, l_cli, sq, beta, cfg.lambda);
        // FREEDOM's modality terms on the batch's rows only: [2B, d_m] features, not [N, d_m].
        let mut modality = Vec::new();
        if cfg.modality_bpr > 0.0 {
            let mut zsum = gather(&br.eu, &users_b);
            if user_h {
                zsum.add_assign(&gather(&br.hu, &users_b));
            }
            let w = cfg.modality_bpr as f32;
            // Each distinct item row is projected once (a batch's 2B positives and negatives
            // hold ~30% repeats); `slot[k]` is triplet row k's place among them.
            let (rows, slot) = distinct_slots(pos_b.iter().chain(&neg_b).copied());
            for mm in (0..2).filter(|&mm| self.feats[mm].cols > 0) {
                let mut x = std::mem::take(&mut self.scratch[mm]);
                gather_into(&mut x, self.feat(mm), &rows);
                let y = self.project(mm, &x);
                let b = batch.len();
                let (yp, yn) = (|k: usize| y.row(slot[k]), |k: usize| y.row(slot[b + k]));
                let pos: Vec<f32> = (0..b).map(|k| dot(zsum.row(k), yp(k))).collect();
                let neg: Vec<f32> = (0..b).map(|k| dot(zsum.row(k), yn(k))).collect();
                let (l, dpos, dneg) = losses::bpr(&pos, &neg);
                terms.modality += cfg.modality_bpr * l;
                let mut dz = Dense::zeros(b, d);
                let mut dy = Dense::zeros(rows.len(), d);
                // 1ᵀ dY summed pair by pair: the bias shifts both scores alike, so BPR cancels
                // it and each pair's two terms cancel exactly (dneg = −dpos); summed over the
                // pre-added rows of dy it would be round-off, which Adam makes steps of ±lr.
                let mut d_bias = Dense::zeros(1, d);
                for (k, dzk) in dz.data.chunks_exact_mut(d).enumerate() {
                    let (zk, ypk, ynk) = (zsum.row(k), yp(k), yn(k));
                    let (sp, sn) = (slot[k] * d, slot[b + k] * d);
                    let (wp, wn) = (w * dpos[k], w * dneg[k]);
                    for c in 0..d {
                        dzk[c] = w * (dpos[k] * ypk[c] + dneg[k] * ynk[c]);
                        let (gp, gn) = (wp * zk[c], wn * zk[c]);
                        dy.data[sp + c] += gp;
                        dy.data[sn + c] += gn;
                        d_bias.data[c] += gp + gn;
                    }
                }
                scatter_add(&mut d_eu, &users_b, &dz);
                if user_h {
                    scatter_add(&mut d_hu, &users_b, &dz);
                }
                modality.push((mm, x, rows.clone(), dy, d_bias));
            }
        }
        for (name, v) in terms.named() {
            if !v.is_finite() {
                return Err(CraneError::Invalid(format!("non-finite loss: term {name} is {v}")));
            }
        }
        let t4 = Instant::now();

        // Backward.
        if !self.grads_zero {
            self.g.iter_mut().for_each(|g| g.data.par_iter_mut().for_each(|v| *v = 0.0));
        }
        self.grads_zero = false;
        for (mm, x, rows, dy, d_bias) in modality {
            self.add_project_grads(mm, Some((&x, &rows)), &dy, Some(d_bias));
            self.scratch[mm] = x;
        }
        let t4b = Instant::now();
        if let Some(g) = &graph {
            let t = Instant::now();
            if cfg.user_semantic {
                d_hi.add_assign(&self.a_t.spmm(&d_hu));
            }
            let (d_h0, d_vals) = item_graph::propagate_backward(g, &br.hs, &d_hi, fcache.is_some());
            self.times.propagation += t.elapsed();
            match cfg.item_graph_input {
                ItemGraphInput::Readout => d_ei.add_assign(&d_h0),
                ItemGraphInput::Embeddings => self.g[ie].add_assign(&d_h0),
                ItemGraphInput::Attention => {
                    let t = Instant::now();
                    let caches = &br.att.as_ref().expect("attention caches").0;
                    let mut d_y = d_h0.clone();
                    d_y.scale(1.0 / caches.len() as f32);
                    let block = self.attention_block_rows();
                    for (m, c, xhat) in caches {
                        let (d_x, dw, db) = attention::backward(&self.mha(), c, &d_y, block);
                        let sums = attention::input_col_sums(&self.mha(), &db);
                        for (k, name) in ["q", "k", "v", "o"].iter().enumerate() {
                            let (kw, kb) = (self.ix(&format!("mha.w_{name}")), self.ix(&format!("mha.b_{name}")));
                            self.g[kw].add_assign(&dw[k]);
                            self.g[kb].add_assign(&db[k]);
                        }
                        match xhat {
                            // The second projection: dQ_m = X̂ᵀ dX₂, dq_m = 1ᵀ dX₂ (the
                            // better-conditioned sums), then dX̂ = dX₂ Q_mᵀ, 1ᵀ dX̂ = (1ᵀ dX₂) Q_mᵀ.
                            Some(xhat) => {
                                let q = self.t(MHA_PROJ[*m].0).clone();
                                let (kq, kqb) = (self.ix(MHA_PROJ[*m].0), self.ix(MHA_PROJ[*m].1));
                                self.g[kq].add_assign(&mm_tn_tall(xhat, &d_x));
                                self.g[kqb].add_assign(&sums);
                                let d_xhat = mm(&d_x, false, &q, true);
                                let sums_xhat = mm(&sums, false, &q, true);
                                self.add_project_grads(*m, None, &d_xhat, Some(sums_xhat));
                            }
                            None => self.add_project_grads(*m, None, &d_x, Some(sums)),
                        }
                    }
                    self.times.rca_graph += t.elapsed();
                }
            }
            if let Some(fc) = &fcache {
                let t = Instant::now();
                self.build_graph_backward(g, fc, &d_vals);
                self.times.rca_graph += t.elapsed();
            }
        }
        let tb = Instant::now();
        let d_e = Dense::vcat(&d_eu, &d_ei);
        let ws = self.gcn_weights();
        let (d_h0, d_ws) = interaction_graph::backward(&self.adj, &ws, cfg.sigma, cfg.readout, &gcn_cache, d_e);
        let (d_user, d_item) = d_h0.data.split_at(m * d);
        self.g[ue].data.par_iter_mut().zip(d_user).for_each(|(g, v)| *g += v);
        self.g[ie].data.par_iter_mut().zip(d_item).for_each(|(g, v)| *g += v);
        for (l, dw) in d_ws.iter().enumerate().take(cfg.n_gcn_weights()) {
            let k = self.ix(&format!("w_gcn.{l}"));
            self.g[k].add_assign(dw);
        }
        let lam = cfg.lambda as f32;
        let batch_rows = |f: [f32; 3], p: &Vec<Dense>, g: &mut Vec<Dense>| {
            let (pu, pi) = (&p[ue], &p[ie]);
            for &(u, i, j) in batch {
                for c in 0..d {
                    g[ue].data[u as usize * d + c] += f[0] * pu.data[u as usize * d + c];
                    g[ie].data[i as usize * d + c] += f[1] * pi.data[i as usize * d + c];
                    g[ie].data[j as usize * d + c] += f[2] * pi.data[j as usize * d + c];
                }
            }
        };
        let b = batch.len() as f32;
        // λ = 0 (FREEDOM's preset) adds exact zeros: skipped.
        match cfg.regularisation {
            _ if lam == 0.0 => {}
            Regularisation::BatchEmbeddings => batch_rows([2.0 * lam / b; 3], &self.p, &mut self.g),
            Regularisation::BatchNorms => {
                let f = norms.map(|v| if v > 0.0 { lam / (b * v.sqrt() as f32) } else { 0.0 });
                batch_rows(f, &self.p, &mut self.g)
            }
            Regularisation::AllParameters => {
                for (g, p) in self.g.iter_mut().zip(&self.p) {
                    g.axpy(2.0 * lam, p);
                }
            }
        }
        let t5 = Instant::now();
        let att_forward = br.att.as_ref().map_or(std::time::Duration::ZERO, |a| a.1);
        self.times.propagation += (t1 - t0) + (t3 - t2).saturating_sub(att_forward) + (t5 - tb);
        self.times.rca_graph += (t2 - t1) + att_forward;
        // The modality terms' backward is theirs.
        self.times.losses += (t4 - t3) + (t4b - t4);
        Ok(terms)
    }

    fn rebuild_item_graph(&mut self) -> Result<()> {
        if !self.cfg.item_graph {
            return Ok(());
        }
        let t = Instant::now();
        let g = match &self.cfg.item_graph_source {
            ItemGraphSource::Learned => self.build_graph()?.0,
            // Frozen: built from the raw features once, whatever the parameters.
            ItemGraphSource::RawFeatures { .. } | ItemGraphSource::Files { .. } if self.graph.is_some() => {
                return Ok(())
            }
            ItemGraphSource::Files { dir, .. } => {
                return Err(CraneError::config("model.item_graph_source", format!("files: `{dir}` was not read")))
            }
            ItemGraphSource::RawFeatures { image_weight } => item_graph::raw_feature_graph(
                &self.feats,
                self.cfg.knn_k,
                *image_weight,
                rca::block_rows(self.n, self.block_bytes),
            )?,
        };
        self.graph = Some(std::sync::Arc::new(g));
        self.times.rca_graph += t.elapsed();
        Ok(())
    }

    fn adam_step(&mut self, lr: f64, idle: AdamIdle) -> Result<()> {
        let t = Instant::now();
        self.step += 1;
        for k in 0..self.p.len() {
            // An idle tensor's gradient is zero, as the next `loss_and_grads` expects.
            if idle == AdamIdle::Skip && self.g[k].data.par_iter().all(|&x| x == 0.0) {
                self.skipped[k] += 1;
                continue;
            }
            let s = simd::AdamStep::new(lr, self.step - self.skipped[k]);
            let (p, g, m1, m2) = (&mut self.p[k], &mut self.g[k], &mut self.m1[k], &mut self.m2[k]);
            // Fixed chunks: parallel, and each one long enough to vectorise.
            const CHUNK: usize = 1 << 14;
            p.data
                .par_chunks_mut(CHUNK)
                .zip(g.data.par_chunks_mut(CHUNK))
                .zip(m1.data.par_chunks_mut(CHUNK).zip(m2.data.par_chunks_mut(CHUNK)))
                .for_each(|((p, g), (m, v))| simd::adam_update(p, g, m, v, s));
        }
        self.grads_zero = true;
        self.times.optimiser += t.elapsed();
        Ok(())
    }

    fn params(&self) -> Params {
        self.export(&self.p)
    }

    fn optimiser_state(&self) -> OptimiserState {
        let skipped = self
            .index
            .iter()
            .filter(|(_, &k)| self.skipped[k] > 0)
            .map(|(n, &k)| (n.clone(), self.skipped[k]))
            .collect();
        OptimiserState { step: self.step, m: self.export(&self.m1), v: self.export(&self.m2), skipped }
    }

    fn set_optimiser_state(&mut self, s: &OptimiserState) -> Result<()> {
        s.check_skipped()?;
        self.step = s.step;
        // `index` names every tensor, so every count is set.
        for (n, &k) in &self.index {
            self.skipped[k] = s.skipped.get(n).copied().unwrap_or(0);
        }
        self.m1 = s.m.tensors().into_iter().map(|(_, t)| Dense::from_mat(t)).collect();
        self.m2 = s.v.tensors().into_iter().map(|(_, t)| Dense::from_mat(t)).collect();
        Ok(())
    }

    fn grads(&self) -> Params {
        self.export(&self.g)
    }

    fn host_tables(&self) -> Option<super::HostTables<'_>> {
        let mut names: Vec<(&String, &usize)> = self.index.iter().collect();
        names.sort_by_key(|(_, &k)| k);
        let tensors = names
            .into_iter()
            .map(|(name, &k)| {
                let t = &self.p[k];
                (name.clone(), [t.rows, t.cols], [&t.data[..], &self.m1[k].data[..], &self.m2[k].data[..]])
            })
            .collect();
        Some(super::HostTables { step: self.step, skipped: &self.skipped, tensors })
    }

    fn host_tables_mut(&mut self) -> Option<super::HostTablesMut<'_>> {
        let mut names = vec![String::new(); self.p.len()];
        for (name, &k) in &self.index {
            names[k] = name.clone();
        }
        let tables = self.p.iter_mut().zip(self.m1.iter_mut().zip(self.m2.iter_mut()));
        let tensors = names
            .into_iter()
            .zip(tables)
            .map(|(name, (p, (m, v)))| (name, [p.rows, p.cols], [&mut p.data[..], &mut m.data[..], &mut v.data[..]]))
            .collect();
        Some(super::HostTablesMut { step: &mut self.step, skipped: &mut self.skipped, tensors })
    }

    fn set_params(&mut self, p: &Params) -> Result<()> {
        self.p = p.tensors().into_iter().map(|(_, t)| Dense::from_mat(t)).collect();
        Ok(())
    }

    fn item_graph(&self) -> Option<CsrMatrix<f64>> {
        self.graph.as_ref().map(|g| g.s.to_nalgebra())
    }

    fn prepare_scoring(&mut self) -> Result<()> {
        let t = Instant::now();
        if self.cfg.item_graph && self.graph.is_none() {
            self.rebuild_item_graph()?;
        }
        let saved = std::mem::take(&mut self.mask);
        self.set_edge_mask(&vec![1.0; self.a64.nnz()])?;
        let (e, _) = self.gcn();
        let graph = if self.cfg.item_graph { self.graph.clone() } else { None };
        let (zu, zi) = self.scoring_tables(&e, graph.as_deref());
        self.set_edge_mask(&saved)?;
        self.z = Some((zu, zi));
        self.times.scoring += t.elapsed();
        Ok(())
    }

    fn item_table(&self) -> Option<(usize, Vec<f32>)> {
        self.z.as_ref().map(|(_, zi)| (zi.cols, zi.data.clone()))
    }

    fn score_block(&self, users: &[u32], out: &mut [f32]) -> Result<()> {
        let (zu, zi) = self.z.as_ref().expect("prepare_scoring before score_block");
        let zb = gather(zu, users);
        let mut dst = faer::mat::MatMut::from_row_major_slice_mut(out, users.len(), self.n);
        faer::linalg::matmul::matmul(
            dst.as_mut(),
            faer::Accum::Replace,
            zb.view(),
            zi.view().transpose(),
            1.0,
            faer::Par::rayon(0),
        );
        Ok(())
    }

    fn times(&self) -> &StageTimes {
        &self.times
    }

    fn reset_times(&mut self) {
        self.times = StageTimes::default();
    }
}
