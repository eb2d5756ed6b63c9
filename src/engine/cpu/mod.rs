//! The fast CPU engine: f32, rayon, faer GEMMs, RCA and kNN in row blocks.
//!
//! It computes the same function as `crane_reference::loss_and_grads` (tested for parity
//! on small random graphs, `tests/parity.rs`) without ever materialising an `[M+N, M+N]` or
//! `[N, N]` matrix: RCA's C^m and the item similarities are built one row block at a time.

pub mod interaction_graph;
pub mod item_graph;
pub mod losses;
pub mod ops;
pub mod rca;
pub mod user_profiles;

use super::{Engine, ModelInputs, OptimiserState, StageTimes};
use crate::error::{CraneError, Result};
use crate::sampling::Triplet;
use crane_reference::config::{Fusion, Regularisation};
use crane_reference::losses::LossTerms;
use crane_reference::{ModelConfig, Params};
use item_graph::{KnnGraph, Unit};
use nalgebra_sparse::CsrMatrix;
use ops::{dot, Csr, Dense};
use rayon::prelude::*;
use std::collections::HashMap;
use std::time::Instant;

/// Bytes per `[block, M+N]` buffer of RCA and the kNN (two such buffers are live at once).
pub const DEFAULT_BLOCK_BYTES: usize = 64 << 20;

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
    graph: Option<KnnGraph>,
    block_bytes: usize,
    z: Option<(Dense, Dense)>,
    times: StageTimes,
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
            template: params.clone(),
            index,
            g: zeros.clone(),
            m1: zeros.clone(),
            m2: zeros,
            p,
            step: 0,
            graph: None,
            block_bytes: DEFAULT_BLOCK_BYTES,
            z: None,
            times: StageTimes::default(),
        })
    }

    /// Sets the memory per RCA/kNN block (smaller blocks: less memory, more passes).
    pub fn with_block_bytes(mut self, bytes: usize) -> Self {
        self.block_bytes = bytes.max(1);
        self
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

    /// W^(l) of each layer (identities without `gcn_weights`).
    fn gcn_weights(&self) -> Vec<Dense> {
        let d = self.t("user_emb").cols;
        (0..self.cfg.ui_layers)
            .map(|l| {
                if self.cfg.gcn_weights {
                    self.t(&format!("w_gcn.{l}")).clone()
                } else {
                    Dense::from_fn(d, d, |i, j| if i == j { 1.0 } else { 0.0 })
                }
            })
            .collect()
    }

    /// Eq. (3)-(4) on the current Â.
    fn gcn(&self) -> (Dense, interaction_graph::GcnCache) {
        let h0 = Dense::vcat(self.t("user_emb"), self.t("item_emb"));
        let ws = self.gcn_weights();
        interaction_graph::forward(&self.adj, &h0, &ws, self.cfg.sigma, self.cfg.readout)
    }

    /// Eq. (5)-(14): S̃ from the features and current parameters.
    fn build_graph(&self) -> Result<(KnnGraph, FeatureCache)> {
        let cfg = &self.cfg;
        let xhat = [
            user_profiles::project(&self.feats[0], self.t("proj.v"), self.t("proj_bias.v")),
            user_profiles::project(&self.feats[1], self.t("proj.t"), self.t("proj_bias.t")),
        ];
        let block = rca::block_rows(self.m + self.n, self.block_bytes);
        let kblock = rca::block_rows(self.n, self.block_bytes);
        let (mut profiles, mut rca_cache) = (None, None);
        let units = match cfg.fusion {
            Fusion::Rca => {
                let atts = [self.t("att.v"), self.t("att.t")];
                let (xu0, c0) = user_profiles::forward(&self.a, &xhat[0], cfg.aggregation, atts[0]);
                let (xu1, c1) = user_profiles::forward(&self.a, &xhat[1], cfg.aggregation, atts[1]);
                let x0 = Dense::vcat(&xu0, &xhat[0]);
                let x1 = Dense::vcat(&xu1, &xhat[1]);
                let (xatt, rc) = rca::forward(&x0, &x1, &self.theta(), cfg.rounds, block);
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
                let block = rca::block_rows(self.m + self.n, self.block_bytes);
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
        for (m, (pn, bn)) in [("proj.v", "proj_bias.v"), ("proj.t", "proj_bias.t")].into_iter().enumerate() {
            let (dp, db) = user_profiles::project_backward(&self.feats[m], &d_xhat[m]);
            let (kp, kb) = (self.ix(pn), self.ix(bn));
            self.g[kp].add_assign(&dp);
            self.g[kb].add_assign(&db);
        }
    }

    /// z `[M+N, d]` split into users and items, from e and the held graph.
    fn fuse(&self, e: &Dense, graph: Option<&KnnGraph>) -> (Dense, Dense, Vec<Dense>, Dense) {
        let e_i = e.rows_range(self.m, self.m + self.n);
        let mut zu = e.rows_range(0, self.m);
        let mut zi = e_i.clone();
        let (hs, hu) = match graph {
            Some(g) => {
                let hs = item_graph::propagate(g, &e_i, self.cfg.ii_layers);
                let hu = self.a.spmm(hs.last().unwrap());
                zu.add_assign(&hu);
                zi.add_assign(hs.last().unwrap());
                (hs, hu)
            }
            None => (Vec::new(), Dense::zeros(self.m, e.cols)),
        };
        (zu, zi, hs, hu)
    }
}

fn gather(x: &Dense, rows: &[u32]) -> Dense {
    let mut o = Dense::zeros(rows.len(), x.cols);
    for (k, &r) in rows.iter().enumerate() {
        o.row_mut(k).copy_from_slice(x.row(r as usize));
    }
    o
}

fn scatter_add(dst: &mut Dense, rows: &[u32], src: &Dense) {
    for (k, &r) in rows.iter().enumerate() {
        dst.row_mut(r as usize).iter_mut().zip(src.row(k)).for_each(|(a, b)| *a += b);
    }
}

fn distinct(it: impl Iterator<Item = u32>) -> Vec<u32> {
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
        if cfg.item_graph && self.graph.is_none() && !learn_graph {
            self.rebuild_item_graph()?;
        }
        let (m, n) = (self.m, self.n);
        let t0 = Instant::now();
        let (e, gcn_cache) = self.gcn();
        let t1 = Instant::now();
        let mut fcache = None;
        if cfg.item_graph && learn_graph {
            let (g, fc) = self.build_graph()?;
            self.graph = Some(g);
            fcache = Some(fc);
        }
        let t2 = Instant::now();
        let graph = if cfg.item_graph { self.graph.clone() } else { None };
        let (zu, zi, hs, hu) = self.fuse(&e, graph.as_ref());
        let t3 = Instant::now();

        // Eq. (18)
        let pos: Vec<f32> = batch.iter().map(|&(u, i, _)| dot(zu.row(u as usize), zi.row(i as usize))).collect();
        let neg: Vec<f32> = batch.iter().map(|&(u, _, j)| dot(zu.row(u as usize), zi.row(j as usize))).collect();
        let (l_bpr, dpos, dneg) = losses::bpr(&pos, &neg);
        let d = e.cols;
        let (mut d_zu, mut d_zi) = (Dense::zeros(m, d), Dense::zeros(n, d));
        for (k, &(u, i, j)) in batch.iter().enumerate() {
            let (u, i, j) = (u as usize, i as usize, j as usize);
            for c in 0..d {
                d_zu.data[u * d + c] += dpos[k] * zi.data[i * d + c] + dneg[k] * zi.data[j * d + c];
                d_zi.data[i * d + c] += dpos[k] * zu.data[u * d + c];
                d_zi.data[j * d + c] += dneg[k] * zu.data[u * d + c];
            }
        }
        let (mut d_eu, mut d_ei) = (d_zu.clone(), d_zi.clone());
        let (mut d_hu, mut d_hi) = (d_zu, d_zi);
        // Eq. (19)
        let use_cl = cfg.uses_contrastive();
        let beta = if use_cl { cfg.beta } else { 0.0 };
        let (mut l_clu, mut l_cli) = (0.0, 0.0);
        if use_cl {
            let users = distinct(batch.iter().map(|t| t.0));
            let items = distinct(batch.iter().map(|t| t.1));
            let e_u = e.rows_range(0, m);
            let e_i = e.rows_range(m, m + n);
            let h_i = hs.last().unwrap();
            let (l, da, dh) =
                losses::info_nce(&gather(&e_u, &users), &gather(&hu, &users), cfg.tau as f32, beta as f32);
            l_clu = l;
            scatter_add(&mut d_eu, &users, &da);
            scatter_add(&mut d_hu, &users, &dh);
            let (l, da, dh) =
                losses::info_nce(&gather(&e_i, &items), &gather(h_i, &items), cfg.tau as f32, beta as f32);
            l_cli = l;
            scatter_add(&mut d_ei, &items, &da);
            scatter_add(&mut d_hi, &items, &dh);
        }
        // Eq. (20)
        let (ue, ie) = (self.ix("user_emb"), self.ix("item_emb"));
        let sq = match cfg.regularisation {
            Regularisation::BatchEmbeddings => {
                batch
                    .iter()
                    .map(|&(u, i, j)| {
                        let (pu, pi) = (&self.p[ue], &self.p[ie]);
                        (dot(pu.row(u as usize), pu.row(u as usize))
                            + dot(pi.row(i as usize), pi.row(i as usize))
                            + dot(pi.row(j as usize), pi.row(j as usize))) as f64
                    })
                    .sum::<f64>()
                    / batch.len() as f64
            }
            Regularisation::AllParameters => self.p.iter().map(|t| t.sq_norm()).sum(),
        };
        let terms = crane_reference::losses::total_loss(l_bpr, l_clu, l_cli, sq, beta, cfg.lambda);
        for (name, v) in
            [("bpr", terms.bpr), ("cl_user", terms.cl_user), ("cl_item", terms.cl_item), ("reg", terms.reg)]
        {
            if !v.is_finite() {
                return Err(CraneError::Invalid(format!("non-finite loss: term {name} is {v}")));
            }
        }
        let t4 = Instant::now();

        // Backward.
        for g in &mut self.g {
            g.data.iter_mut().for_each(|v| *v = 0.0);
        }
        if let Some(g) = &graph {
            d_hi.add_assign(&self.a_t.spmm(&d_hu));
            let (d_h0, d_vals) = item_graph::propagate_backward(g, &hs, &d_hi);
            d_ei.add_assign(&d_h0);
            if let Some(fc) = &fcache {
                let t = Instant::now();
                self.build_graph_backward(g, fc, &d_vals);
                self.times.rca_graph += t.elapsed();
            }
        }
        let tb = Instant::now();
        let d_e = Dense::vcat(&d_eu, &d_ei);
        let ws = self.gcn_weights();
        let (d_h0, d_ws) = interaction_graph::backward(&self.adj, &ws, cfg.sigma, cfg.readout, &gcn_cache, &d_e);
        self.g[ue].add_assign(&d_h0.rows_range(0, m));
        self.g[ie].add_assign(&d_h0.rows_range(m, m + n));
        for (l, dw) in d_ws.iter().enumerate().take(cfg.n_gcn_weights()) {
            let k = self.ix(&format!("w_gcn.{l}"));
            self.g[k].add_assign(dw);
        }
        let lam = cfg.lambda as f32;
        match cfg.regularisation {
            Regularisation::BatchEmbeddings => {
                let f = 2.0 * lam / batch.len() as f32;
                // Disjoint fields: read the parameters while writing their gradients.
                let (p, g) = (&self.p, &mut self.g);
                let (pu, pi) = (&p[ue], &p[ie]);
                for &(u, i, j) in batch {
                    for c in 0..d {
                        g[ue].data[u as usize * d + c] += f * pu.data[u as usize * d + c];
                        g[ie].data[i as usize * d + c] += f * pi.data[i as usize * d + c];
                        g[ie].data[j as usize * d + c] += f * pi.data[j as usize * d + c];
                    }
                }
            }
            Regularisation::AllParameters => {
                for (g, p) in self.g.iter_mut().zip(&self.p) {
                    g.axpy(2.0 * lam, p);
                }
            }
        }
        let t5 = Instant::now();
        self.times.propagation += (t1 - t0) + (t3 - t2) + (t5 - tb);
        self.times.rca_graph += t2 - t1;
        self.times.losses += t4 - t3;
        Ok(terms)
    }

    fn rebuild_item_graph(&mut self) -> Result<()> {
        if !self.cfg.item_graph {
            return Ok(());
        }
        let t = Instant::now();
        let (g, _) = self.build_graph()?;
        self.graph = Some(g);
        self.times.rca_graph += t.elapsed();
        Ok(())
    }

    fn adam_step(&mut self, lr: f64) {
        let t = Instant::now();
        self.step += 1;
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f32);
        let c1 = (1.0 - b1.powi(self.step as i32)) as f32;
        let c2 = (1.0 - b2.powi(self.step as i32)) as f32;
        let (b1, b2, lr) = (b1 as f32, b2 as f32, lr as f32);
        for k in 0..self.p.len() {
            let (p, g, m1, m2) = (&mut self.p[k], &self.g[k], &mut self.m1[k], &mut self.m2[k]);
            p.data.par_iter_mut().zip(&g.data).zip(m1.data.par_iter_mut().zip(m2.data.par_iter_mut())).for_each(
                |((p, &g), (m, v))| {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
                },
            );
        }
        self.times.optimiser += t.elapsed();
    }

    fn params(&self) -> Params {
        self.export(&self.p)
    }

    fn optimiser_state(&self) -> OptimiserState {
        OptimiserState { step: self.step, m: self.export(&self.m1), v: self.export(&self.m2) }
    }

    fn set_optimiser_state(&mut self, s: &OptimiserState) {
        self.step = s.step;
        self.m1 = s.m.tensors().into_iter().map(|(_, t)| Dense::from_mat(t)).collect();
        self.m2 = s.v.tensors().into_iter().map(|(_, t)| Dense::from_mat(t)).collect();
    }

    fn grads(&self) -> Params {
        self.export(&self.g)
    }

    fn set_params(&mut self, p: &Params) {
        self.p = p.tensors().into_iter().map(|(_, t)| Dense::from_mat(t)).collect();
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
        let (zu, zi, _, _) = self.fuse(&e, graph.as_ref());
        self.set_edge_mask(&saved)?;
        self.z = Some((zu, zi));
        self.times.scoring += t.elapsed();
        Ok(())
    }

    fn score_block(&self, users: &[u32], out: &mut [f32]) {
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
    }

    fn times(&self) -> &StageTimes {
        &self.times
    }

    fn reset_times(&mut self) {
        self.times = StageTimes::default();
    }
}
