//! The GPU engine: CRANE's training step written in the ops of [`crane_gpu::device::Device`],
//! so the same code runs on an NVIDIA GPU ([`crane_gpu::cuda::CudaDevice`]: cuBLAS + NVRTC
//! kernels) and, for tests on machines without one, on [`crane_gpu::device::HostDevice`].
//!
//! Every parameter, gradient and Adam moment lives on the device for the whole run; per batch
//! the host uploads only the triplets (and their scatter segmentation), and downloads the
//! per-triplet loss terms (`[B]`) and the regulariser's row norms.
//!
//! Implemented so far (the first slice of the GPU issue): the interaction-graph side, which is
//! BPR-MF and LightGCN and the ablation "w/o item graph" (Eq. 2-4 with or without `W^(l)` and
//! σ, readout mean/last, DropEdge via the edge mask), BPR (Eq. 18), the three regularisers
//! (Eq. 20 and MMRec's), Adam and scoring. Configurations that need the item graph (RCA,
//! kNN, Eq. 5-16, FREEDOM's frozen graph, the authors' attention) or modality BPR are refused
//! by [`GpuEngine::supports`] with the reason; they run on the CPU engine.

use super::{Engine, ModelInputs, OptimiserState, StageTimes};
use crate::error::{CraneError, Result};
use crate::sampling::Triplet;
use crane_gpu::device::{upload_csr, upload_segments, DevCsr, Device};
use crane_reference::config::{Readout, Regularisation, Sigma};
use crane_reference::losses::LossTerms;
use crane_reference::{ModelConfig, Params};
use nalgebra_sparse::CsrMatrix;
use std::collections::HashMap;
use std::time::Instant;

fn dev_err(e: crane_gpu::GpuError) -> CraneError {
    CraneError::Invalid(e.to_string())
}

/// The GCN forward's output `e` and what its backward needs: `Â H^(l)` and the
/// pre-activation per layer.
struct Gcn<B> {
    e: B,
    ah: Vec<B>,
    z: Vec<B>,
}

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
    /// Scoring tables `z_u [M, d]`, `z_i [N, d]` after [`Engine::prepare_scoring`].
    z: Option<(D::Buf<f32>, D::Buf<f32>)>,
    times: StageTimes,
}

impl<D: Device> GpuEngine<D> {
    /// Whether the GPU engine implements `cfg`; the error says what is missing.
    pub fn supports(cfg: &ModelConfig) -> std::result::Result<(), String> {
        if cfg.item_graph {
            return Err(
                "the item graph (Eq. 5-16) is not implemented on the GPU yet: set model.item_graph = false or use the \
                 CPU engine"
                    .into(),
            );
        }
        if cfg.modality_bpr > 0.0 {
            return Err("modality BPR terms are not implemented on the GPU yet".into());
        }
        Ok(())
    }

    pub fn new(dev: D, inputs: &ModelInputs, cfg: &ModelConfig, params: &Params) -> Result<Self> {
        Self::supports(cfg).map_err(|why| CraneError::config("engine", format!("gpu: {why}")))?;
        cfg.validate(inputs.n_items)?;
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
        let mut e = Self {
            d: cfg.embedding_dim,
            m: inputs.n_users,
            n: inputs.n_items,
            cfg: cfg.clone(),
            a64,
            mask,
            adj,
            template: params.clone(),
            index,
            shapes,
            p: Vec::new(),
            g,
            m1,
            m2,
            step: 0,
            z: None,
            times: StageTimes::default(),
            dev,
        };
        e.p = e.upload_params(params)?;
        Ok(e)
    }

    /// Â of Eq. (2) under `mask`, computed on the host (O(nnz)) and uploaded as f32 CSR.
    fn upload_adjacency(dev: &D, a: &CsrMatrix<f64>, mask: &[f64], cfg: &ModelConfig) -> Result<DevCsr<D>> {
        let adj = crane_reference::interaction_graph::normalized_adjacency(a, mask, cfg.degree_source);
        let offsets: Vec<i64> = adj.row_offsets().iter().map(|&o| o as i64).collect();
        let idx: Vec<u32> = adj.col_indices().iter().map(|&c| c as u32).collect();
        let vals: Vec<f32> = adj.values().iter().map(|&v| v as f32).collect();
        upload_csr(dev, &offsets, &idx, &vals).map_err(dev_err)
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

    /// Eq. (3)-(4): `e [M+N, d]` from `H^(0) = [E_U; E_I]` on the current Â.
    fn gcn(&self) -> Result<Gcn<D::Buf<f32>>> {
        let (dev, d, rows) = (&self.dev, self.d, self.m + self.n);
        let len = rows * d;
        let mut h = self.zeros(len)?;
        dev.copy_at(&mut h, 0, &self.p[self.ix("user_emb")], 0, self.m * d).map_err(dev_err)?;
        dev.copy_at(&mut h, self.m * d, &self.p[self.ix("item_emb")], 0, self.n * d).map_err(dev_err)?;
        let mut sum = self.zeros(len)?;
        dev.copy_at(&mut sum, 0, &h, 0, len).map_err(dev_err)?;
        let (mut ahs, mut zs) = (Vec::new(), Vec::new());
        for l in 0..self.cfg.ui_layers {
            let mut ah = self.zeros(len)?;
            dev.spmm(&mut ah, &self.adj, &h, d).map_err(dev_err)?;
            let mut z = self.zeros(len)?;
            if self.cfg.gcn_weights {
                let w = &self.p[self.ix(&format!("w_gcn.{l}"))];
                dev.gemm(&mut z, rows, d, d, &ah, false, w, false, 1.0, 0.0).map_err(dev_err)?;
            } else {
                dev.copy_at(&mut z, 0, &ah, 0, len).map_err(dev_err)?;
            }
            match self.cfg.sigma {
                Sigma::Identity => dev.copy_at(&mut h, 0, &z, 0, len).map_err(dev_err)?,
                Sigma::LeakyRelu(s) => dev.leaky_relu(&mut h, &z, s as f32).map_err(dev_err)?,
            }
            dev.axpy_at(&mut sum, 0, &h, 0, len, 1.0).map_err(dev_err)?;
            ahs.push(ah);
            zs.push(z);
        }
        let e = match self.cfg.readout {
            Readout::Mean => {
                dev.scale(&mut sum, 1.0 / (self.cfg.ui_layers as f32 + 1.0)).map_err(dev_err)?;
                sum
            }
            Readout::Last => h,
        };
        Ok(Gcn { e, ah: ahs, z: zs })
    }

    /// Backward of [`GpuEngine::gcn`]: adds `dE_U`, `dE_I` and `dW^(l)` into the gradients.
    fn gcn_backward(&mut self, cache: &Gcn<D::Buf<f32>>, d_e: &D::Buf<f32>) -> Result<()> {
        let (d, rows) = (self.d, self.m + self.n);
        let len = rows * d;
        let layers = self.cfg.ui_layers;
        let share = match self.cfg.readout {
            Readout::Mean => 1.0 / (layers as f32 + 1.0),
            Readout::Last => 0.0,
        };
        let mut dh = self.zeros(len)?;
        // dH^(L) gets the readout's share of d_e (all of it for `last`).
        let top = if self.cfg.readout == Readout::Last { 1.0 } else { share };
        self.dev.axpy_at(&mut dh, 0, d_e, 0, len, top).map_err(dev_err)?;
        for l in (0..layers).rev() {
            let mut dz = self.zeros(len)?;
            match self.cfg.sigma {
                Sigma::Identity => self.dev.copy_at(&mut dz, 0, &dh, 0, len),
                Sigma::LeakyRelu(s) => self.dev.leaky_relu_backward(&mut dz, &cache.z[l], &dh, s as f32),
            }
            .map_err(dev_err)?;
            let mut d_ah = self.zeros(len)?;
            if self.cfg.gcn_weights {
                let kw = self.ix(&format!("w_gcn.{l}"));
                // dW^(l) = (Â H^(l))ᵀ dZ: [d, M+N] x [M+N, d], accumulated into the gradient.
                self.dev
                    .gemm(&mut self.g[kw], d, d, rows, &cache.ah[l], true, &dz, false, 1.0, 1.0)
                    .map_err(dev_err)?;
                self.dev.gemm(&mut d_ah, rows, d, d, &dz, false, &self.p[kw], true, 1.0, 0.0).map_err(dev_err)?;
            } else {
                self.dev.copy_at(&mut d_ah, 0, &dz, 0, len).map_err(dev_err)?;
            }
            // Â is symmetric: its backward is the forward product.
            self.dev.spmm(&mut dh, &self.adj, &d_ah, d).map_err(dev_err)?;
            if share > 0.0 {
                self.dev.axpy_at(&mut dh, 0, d_e, 0, len, share).map_err(dev_err)?;
            }
        }
        let (ue, ie) = (self.ix("user_emb"), self.ix("item_emb"));
        let (m, n) = (self.m, self.n);
        self.dev.axpy_at(&mut self.g[ue], 0, &dh, 0, m * d, 1.0).map_err(dev_err)?;
        self.dev.axpy_at(&mut self.g[ie], 0, &dh, m * d, n * d, 1.0).map_err(dev_err)?;
        Ok(())
    }

    /// Eq. (18) on `e`: the mean BPR loss, with `d_e` accumulated. Items are rows `M + i`.
    fn bpr(&self, e: &D::Buf<f32>, d_e: &mut D::Buf<f32>, u: &[u32], i: &[u32], j: &[u32]) -> Result<f64> {
        let (dev, d, b) = (&self.dev, self.d, u.len());
        let up = |x: &[u32]| dev.upload(x).map_err(dev_err);
        let (bu, bi, bj) = (up(u)?, up(i)?, up(j)?);
        let (mut loss, mut coef) = (self.zeros(b)?, self.zeros(b)?);
        dev.bpr_terms(&mut loss, &mut coef, e, e, &bu, &bi, &bj, d).map_err(dev_err)?;
        let (mut gu, mut gi, mut gj) = (self.zeros(b * d)?, self.zeros(b * d)?, self.zeros(b * d)?);
        dev.gather_rows(&mut gu, e, &bu, d).map_err(dev_err)?;
        dev.gather_rows(&mut gi, e, &bi, d).map_err(dev_err)?;
        dev.gather_rows(&mut gj, e, &bj, d).map_err(dev_err)?;
        // d z_u = c (z_j − z_i), d z_i = −c z_u, d z_j = c z_u with c = σ(ŷ_uj − ŷ_ui) / B.
        dev.axpy_at(&mut gj, 0, &gi, 0, b * d, -1.0).map_err(dev_err)?;
        dev.scale_rows(&mut gj, &coef, d).map_err(dev_err)?;
        let seg = |rows: &[u32]| upload_segments(dev, rows).map_err(dev_err);
        dev.scatter_add_rows(d_e, &gj, &seg(u)?, d).map_err(dev_err)?;
        dev.scale_rows(&mut gu, &coef, d).map_err(dev_err)?;
        dev.scatter_add_rows(d_e, &gu, &seg(j)?, d).map_err(dev_err)?;
        dev.scale(&mut gu, -1.0).map_err(dev_err)?;
        dev.scatter_add_rows(d_e, &gu, &seg(i)?, d).map_err(dev_err)?;
        let terms = dev.download(&loss).map_err(dev_err)?;
        Ok(terms.iter().map(|&v| v as f64).sum::<f64>() / b as f64)
    }

    /// The regulariser's squared norm term (Eq. 20 or MMRec's), with `λ ·` its gradient added.
    fn regularise(&mut self, u: &[u32], i: &[u32], j: &[u32]) -> Result<f64> {
        let (d, b, lam) = (self.d, u.len(), self.cfg.lambda);
        let (ue, ie) = (self.ix("user_emb"), self.ix("item_emb"));
        if self.cfg.regularisation == Regularisation::AllParameters {
            let mut sq = 0.0;
            for k in 0..self.p.len() {
                let (r, c) = self.shapes[k];
                if r * c == 0 {
                    continue;
                }
                let mut norms = self.zeros(r)?;
                self.dev.row_sq_norms(&mut norms, &self.p[k], c).map_err(dev_err)?;
                sq += self.dev.download(&norms).map_err(dev_err)?.iter().map(|&v| v as f64).sum::<f64>();
                self.dev.axpy_at(&mut self.g[k], 0, &self.p[k], 0, r * c, 2.0 * lam as f32).map_err(dev_err)?;
            }
            return Ok(sq);
        }
        // Per set (users, positives, negatives): the rows, their squared norm, and the table.
        let mut rows = Vec::new();
        let mut sums = [0.0f64; 3];
        for (s, (ids, k)) in [(u, ue), (i, ie), (j, ie)].into_iter().enumerate() {
            let bi = self.dev.upload(ids).map_err(dev_err)?;
            let mut g = self.zeros(b * d)?;
            self.dev.gather_rows(&mut g, &self.p[k], &bi, d).map_err(dev_err)?;
            let mut norms = self.zeros(b)?;
            self.dev.row_sq_norms(&mut norms, &g, d).map_err(dev_err)?;
            sums[s] = self.dev.download(&norms).map_err(dev_err)?.iter().map(|&v| v as f64).sum();
            rows.push((ids, k, g));
        }
        let bf = b as f64;
        let (sq, factors) = match self.cfg.regularisation {
            Regularisation::BatchEmbeddings => (sums.iter().sum::<f64>() / bf, [2.0 * lam / bf; 3]),
            _ => (
                sums.iter().map(|v| v.sqrt()).sum::<f64>() / bf,
                sums.map(|v| if v > 0.0 { lam / (bf * v.sqrt()) } else { 0.0 }),
            ),
        };
        for ((ids, k, mut g), f) in rows.into_iter().zip(factors) {
            self.dev.scale(&mut g, f as f32).map_err(dev_err)?;
            let seg = upload_segments(&self.dev, ids).map_err(dev_err)?;
            self.dev.scatter_add_rows(&mut self.g[k], &g, &seg, d).map_err(dev_err)?;
        }
        Ok(sq)
    }

    fn sync(&self) -> Result<()> {
        self.dev.synchronize().map_err(dev_err)
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

    fn loss_and_grads(&mut self, batch: &[Triplet], _learn_graph: bool) -> Result<LossTerms> {
        if batch.is_empty() {
            return Err(CraneError::Invalid("empty batch".into()));
        }
        let t0 = Instant::now();
        let cache = self.gcn()?;
        let e = &cache.e;
        self.sync()?;
        let t1 = Instant::now();
        let m = self.m as u32;
        let u: Vec<u32> = batch.iter().map(|t| t.0).collect();
        let i: Vec<u32> = batch.iter().map(|t| m + t.1).collect();
        let j: Vec<u32> = batch.iter().map(|t| m + t.2).collect();
        let mut d_e = self.zeros((self.m + self.n) * self.d)?;
        let mut l_bpr = self.bpr(e, &mut d_e, &u, &i, &j)?;
        if !self.cfg.dual_fusion {
            // Late fusion adds BPR of the semantic branch, whose tables are zero without an
            // item graph: softplus(0) per triplet, no gradient.
            l_bpr += crane_reference::losses::softplus(0.0);
        }
        for g in &mut self.g {
            self.dev.fill_zero(g).map_err(dev_err)?;
        }
        let items = |v: &[u32]| -> Vec<u32> { v.iter().map(|x| x - m).collect() };
        let sq = self.regularise(&u, &items(&i), &items(&j))?;
        let terms = crane_reference::losses::total_loss(l_bpr, 0.0, 0.0, sq, 0.0, self.cfg.lambda);
        for (name, v) in terms.named() {
            if !v.is_finite() {
                return Err(CraneError::Invalid(format!("non-finite loss: term {name} is {v}")));
            }
        }
        self.sync()?;
        let t2 = Instant::now();
        self.gcn_backward(&cache, &d_e)?;
        self.sync()?;
        self.times.propagation += (t1 - t0) + t2.elapsed();
        self.times.losses += t2 - t1;
        Ok(terms)
    }

    fn rebuild_item_graph(&mut self) -> Result<()> {
        Ok(())
    }

    fn adam_step(&mut self, lr: f64) {
        let t = Instant::now();
        self.step += 1;
        let (b1, b2) = (0.9f64, 0.999f64);
        let c1 = (1.0 - b1.powi(self.step as i32)) as f32;
        let c2 = (1.0 - b2.powi(self.step as i32)) as f32;
        for k in 0..self.p.len() {
            if self.shapes[k].0 * self.shapes[k].1 == 0 {
                continue;
            }
            let r = self.dev.adam(
                &mut self.p[k],
                &self.g[k],
                &mut self.m1[k],
                &mut self.m2[k],
                lr as f32,
                b1 as f32,
                b2 as f32,
                1e-8,
                c1,
                c2,
            );
            r.unwrap_or_else(|e| panic!("GPU Adam step failed: {e}"));
        }
        self.dev.synchronize().unwrap_or_else(|e| panic!("GPU Adam step failed: {e}"));
        self.times.optimiser += t.elapsed();
    }

    fn optimiser_state(&self) -> OptimiserState {
        let ex = |t: &[D::Buf<f32>]| self.export(t).unwrap_or_else(|e| panic!("GPU download failed: {e}"));
        OptimiserState { step: self.step, m: ex(&self.m1), v: ex(&self.m2) }
    }

    fn set_optimiser_state(&mut self, s: &OptimiserState) {
        self.step = s.step;
        self.m1 = self.upload_params(&s.m).unwrap_or_else(|e| panic!("GPU upload failed: {e}"));
        self.m2 = self.upload_params(&s.v).unwrap_or_else(|e| panic!("GPU upload failed: {e}"));
    }

    fn params(&self) -> Params {
        self.export(&self.p).unwrap_or_else(|e| panic!("GPU download failed: {e}"))
    }

    fn grads(&self) -> Params {
        self.export(&self.g).unwrap_or_else(|e| panic!("GPU download failed: {e}"))
    }

    fn set_params(&mut self, p: &Params) {
        self.p = self.upload_params(p).unwrap_or_else(|e| panic!("GPU upload failed: {e}"));
    }

    fn item_graph(&self) -> Option<CsrMatrix<f64>> {
        None
    }

    fn prepare_scoring(&mut self) -> Result<()> {
        let t = Instant::now();
        let saved = std::mem::take(&mut self.mask);
        self.set_edge_mask(&vec![1.0; self.a64.nnz()])?;
        let e = self.gcn()?.e;
        self.set_edge_mask(&saved)?;
        let d = self.d;
        let (mut zu, mut zi) = (self.zeros(self.m * d)?, self.zeros(self.n * d)?);
        self.dev.copy_at(&mut zu, 0, &e, 0, self.m * d).map_err(dev_err)?;
        self.dev.copy_at(&mut zi, 0, &e, self.m * d, self.n * d).map_err(dev_err)?;
        self.sync()?;
        self.z = Some((zu, zi));
        self.times.scoring += t.elapsed();
        Ok(())
    }

    fn score_block(&self, users: &[u32], out: &mut [f32]) {
        let (zu, zi) = self.z.as_ref().expect("prepare_scoring before score_block");
        let run = || -> crane_gpu::device::R<Vec<f32>> {
            let (b, d, n) = (users.len(), self.d, self.n);
            let rows = self.dev.upload(users)?;
            let mut g = self.dev.zeros(b * d)?;
            self.dev.gather_rows(&mut g, zu, &rows, d)?;
            let mut s = self.dev.zeros(b * n)?;
            self.dev.gemm(&mut s, b, n, d, &g, false, zi, true, 1.0, 0.0)?;
            self.dev.download(&s)
        };
        let s = run().unwrap_or_else(|e| panic!("GPU scoring failed: {e}"));
        out[..s.len()].copy_from_slice(&s);
    }

    fn times(&self) -> &StageTimes {
        &self.times
    }

    fn reset_times(&mut self) {
        self.times = StageTimes::default();
    }
}
