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
//! aggregations (max and attention on the host, O(nnz·d_f)),
//! RCA in row blocks, every fusion variant, the kNN in row blocks with a device top-k; see
//! [`super::gpu_graph`]) and FREEDOM's frozen raw-feature graph (built once on the host);
//! Eq. (15)-(17) with dual or late fusion; BPR (Eq. 18), InfoNCE (Eq. 19), FREEDOM's modality
//! terms, the three regularisers (Eq. 20 and MMRec's), Adam, scoring and the evaluator's
//! masked top-K (on the device: `[users, K]` comes down, not `[users, N]`), and the authors'
//! attention (crane-code) in query-row blocks.

// Device buffers are a generic associated type (`D::Buf<f32>`), which makes tuples of them
// "complex" to clippy; naming each tuple would not make the code clearer.
#![allow(clippy::type_complexity)]

use super::cpu::item_graph::KnnGraph;
use super::cpu::ops::Dense;
use super::cpu::{distinct, PROJ};
use super::gpu_graph::{self as gg, DUnit, Mat, Ops, RoundCache, Theta, ThetaGrads};
use super::{Engine, ModelInputs, OptimiserState, StageTimes};
use crate::error::{CraneError, Result};
use crate::sampling::Triplet;
use crane_gpu::device::{upload_csr, upload_segments, DevCsr, Device};
use crane_reference::config::{Aggregation, Fusion, ItemGraphInput, ItemGraphSource, Readout, Regularisation, Sigma};
use crane_reference::losses::LossTerms;
use crane_reference::{ModelConfig, Params};
use nalgebra_sparse::CsrMatrix;
use std::collections::HashMap;
use std::time::Instant;

/// Bytes per `[block, ·]` buffer of RCA, the kNN and the attention on a device: larger than
/// the CPU engine's 64 MB, since device memory is plentiful and the per-row top-k (one warp
/// per row) wants many rows per launch (≈ 4,000 per block at the Electronics shape).
pub const GPU_BLOCK_BYTES: usize = 1 << 30;
/// Largest k the device top-k ranks (its per-lane lists are k long); larger k rank on the host.
const MAX_DEVICE_TOPK: usize = 64;

/// Parameter names of the attention vector of Table 6's attention profiles (v, t).
const ATT: [&str; 2] = ["att.v", "att.t"];

use gg::dev_err;

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
    /// The held item graph: S̃ and S̃ᵀ `[N, N]` on the device, S̃ on the host (with what the
    /// backward of Eq. 14 needs).
    graph: Option<(DevCsr<D>, DevCsr<D>, CsrMatrix<f64>, KnnGraph)>,
    /// A and Aᵀ (unnormalised interactions) for `h_u = A h_i` (Eq. 16) and the profiles (Eq. 5).
    inter: Option<(DevCsr<D>, DevCsr<D>)>,
    /// `1/|N_u|` (0 without items), for average profiles.
    inv_degree: Vec<f32>,
    /// A and Aᵀ on the host, for max and attention profiles (computed on the host: O(nnz·d_f)).
    a_host: Option<(super::cpu::ops::Csr, super::cpu::ops::Csr)>,
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
            Some(f) => super::cpu::ops::Dense { rows: f.rows, cols: f.cols, data: f.data.clone() },
            None => super::cpu::ops::Dense::zeros(inputs.n_items, 0),
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
                graph =
                    Some((gg::upload_cpu_csr(&dev, &kg.s, None)?, gg::upload_cpu_csr(&dev, &kg.s_t, None)?, host, kg));
            }
            if cfg.user_semantic || cfg.item_graph_source == ItemGraphSource::Learned {
                let a = super::cpu::ops::Csr::from_nalgebra(&a64);
                inter = Some((gg::upload_cpu_csr(&dev, &a, None)?, gg::upload_cpu_csr(&dev, &a.transpose(), None)?));
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
            let a = super::cpu::ops::Csr::from_nalgebra(&a64);
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
            template: params.clone(),
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

    /// Eq. (18) on the rows of one table `z [R, d]`: the mean BPR loss of triplets
    /// `(u[k], i[k], j[k])` (row indices of `z`), with `w ·` its gradient added to `d_z`.
    #[allow(clippy::too_many_arguments)]
    fn bpr(&self, z: &D::Buf<f32>, d_z: &mut D::Buf<f32>, u: &[u32], i: &[u32], j: &[u32], w: f32) -> Result<f64> {
        let (dev, d, b) = (&self.dev, self.d, u.len());
        let up = |x: &[u32]| dev.upload(x).map_err(dev_err);
        let (bu, bi, bj) = (up(u)?, up(i)?, up(j)?);
        let (mut loss, mut coef) = (self.zeros(b)?, self.zeros(b)?);
        dev.bpr_terms(&mut loss, &mut coef, z, z, &bu, &bi, &bj, d).map_err(dev_err)?;
        if w != 1.0 {
            dev.scale(&mut coef, w).map_err(dev_err)?;
        }
        let (mut gu, mut gi, mut gj) = (self.zeros(b * d)?, self.zeros(b * d)?, self.zeros(b * d)?);
        dev.gather_rows(&mut gu, z, &bu, d).map_err(dev_err)?;
        dev.gather_rows(&mut gi, z, &bi, d).map_err(dev_err)?;
        dev.gather_rows(&mut gj, z, &bj, d).map_err(dev_err)?;
        // d z_u = c (z_j − z_i), d z_i = −c z_u, d z_j = c z_u with c = w σ(ŷ_uj − ŷ_ui) / B.
        dev.axpy_at(&mut gj, 0, &gi, 0, b * d, -1.0).map_err(dev_err)?;
        dev.scale_rows(&mut gj, &coef, d).map_err(dev_err)?;
        let seg = |rows: &[u32]| upload_segments(dev, rows).map_err(dev_err);
        dev.scatter_add_rows(d_z, &gj, &seg(u)?, d).map_err(dev_err)?;
        dev.scale_rows(&mut gu, &coef, d).map_err(dev_err)?;
        dev.scatter_add_rows(d_z, &gu, &seg(j)?, d).map_err(dev_err)?;
        dev.scale(&mut gu, -1.0).map_err(dev_err)?;
        dev.scatter_add_rows(d_z, &gu, &seg(i)?, d).map_err(dev_err)?;
        let terms = dev.download(&loss).map_err(dev_err)?;
        Ok(terms.iter().map(|&v| v as f64).sum::<f64>() / b as f64)
    }

    /// Eq. (15)-(16) on the held graph: `h = [h_u; h_i]` `[M+N, d]` with `h_i = S̃^L h^(0)`,
    /// `h^(0)` the item rows of `e` or `E_I`, and `h_u = A h_i` (zero without user semantics).
    fn semantic(&self, e: &D::Buf<f32>) -> Result<Semantic<D::Buf<f32>>> {
        let (dev, d, m, n) = (&self.dev, self.d, self.m, self.n);
        let (s, _, _, _) = self.graph.as_ref().expect("semantic() needs the item graph");
        let mut h = self.zeros(n * d)?;
        let mut att = Vec::new();
        match self.cfg.item_graph_input {
            ItemGraphInput::Readout => dev.copy_at(&mut h, 0, e, m * d, n * d).map_err(dev_err)?,
            ItemGraphInput::Embeddings => {
                dev.copy_at(&mut h, 0, &self.p[self.ix("item_emb")], 0, n * d).map_err(dev_err)?
            }
            ItemGraphInput::Attention => {
                // The authors' code: the mean over present modalities of the attention of the
                // projected features.
                let o = Ops(&self.dev);
                let present: Vec<usize> = (0..2).filter(|&m| self.widths[m] > 0).collect();
                let t = self.mha_params()?;
                let p = self.mha_view(&t);
                let block = super::cpu::rca::block_rows(n, self.block_bytes);
                for &mm in &present {
                    let (y, c) = gg::mha_forward(&o, self.project(mm)?, &p, block)?;
                    dev.axpy_at(&mut h, 0, &y.b, 0, n * d, 1.0 / present.len() as f32).map_err(dev_err)?;
                    att.push((mm, c));
                }
            }
        }
        let mut hs = Vec::new();
        for _ in 0..self.cfg.ii_layers {
            let mut next = self.zeros(n * d)?;
            dev.spmm(&mut next, s, &h, d).map_err(dev_err)?;
            hs.push(std::mem::replace(&mut h, next));
        }
        let mut full = self.zeros((m + n) * d)?;
        dev.copy_at(&mut full, m * d, &h, 0, n * d).map_err(dev_err)?;
        if let (Some((a, _)), true) = (&self.inter, self.cfg.user_semantic) {
            let mut hu = self.zeros(m * d)?;
            dev.spmm(&mut hu, a, &h, d).map_err(dev_err)?;
            dev.copy_at(&mut full, 0, &hu, 0, m * d).map_err(dev_err)?;
        }
        Ok(Semantic { full, hs, att })
    }

    fn mha_params(&self) -> Result<[Mat<D::Buf<f32>>; 8]> {
        let n = |s: &str| self.pmat(s);
        Ok([
            n("mha.w_q")?,
            n("mha.w_k")?,
            n("mha.w_v")?,
            n("mha.w_o")?,
            n("mha.b_q")?,
            n("mha.b_k")?,
            n("mha.b_v")?,
            n("mha.b_o")?,
        ])
    }

    fn mha_view<'a>(&self, t: &'a [Mat<D::Buf<f32>>; 8]) -> gg::MhaParams<'a, D::Buf<f32>> {
        gg::MhaParams {
            w: [&t[0], &t[1], &t[2], &t[3]],
            b: [&t[4].b, &t[5].b, &t[6].b, &t[7].b],
            heads: self.cfg.attention_heads,
        }
    }

    /// Backward of [`GpuEngine::semantic`] from `d_h [M+N, d]`: into `d_e` (readout input) or
    /// the gradient of `E_I`. The graph is frozen: no gradient for its values.
    fn semantic_backward(
        &mut self,
        d_h: &D::Buf<f32>,
        sem: &Semantic<D::Buf<f32>>,
        d_e: &mut D::Buf<f32>,
        mut d_vals: Option<&mut Vec<f32>>,
    ) -> Result<()> {
        let hs = &sem.hs;
        let (d, m, n) = (self.d, self.m, self.n);
        let mut dh = self.zeros(n * d)?;
        self.dev.copy_at(&mut dh, 0, d_h, m * d, n * d).map_err(dev_err)?;
        if let (Some((_, a_t)), true) = (&self.inter, self.cfg.user_semantic) {
            let mut du = self.zeros(m * d)?;
            self.dev.copy_at(&mut du, 0, d_h, 0, m * d).map_err(dev_err)?;
            let mut add = self.zeros(n * d)?;
            self.dev.spmm(&mut add, a_t, &du, d).map_err(dev_err)?;
            self.dev.axpy_at(&mut dh, 0, &add, 0, n * d, 1.0).map_err(dev_err)?;
        }
        let (s, s_t, _, _) = self.graph.as_ref().expect("semantic_backward() needs the item graph");
        for l in (0..self.cfg.ii_layers).rev() {
            if let Some(dv) = d_vals.as_deref_mut() {
                // dS̃_ij += d h^(l+1)_i · h^(l)_j
                let mut o = self.zeros(dv.len())?;
                self.dev.csr_sddmm(&mut o, s, &dh, &hs[l], d).map_err(dev_err)?;
                let o = self.dev.download(&o).map_err(dev_err)?;
                dv.iter_mut().zip(o).for_each(|(a, b)| *a += b);
            }
            let mut prev = self.zeros(n * d)?;
            self.dev.spmm(&mut prev, s_t, &dh, d).map_err(dev_err)?;
            dh = prev;
        }
        match self.cfg.item_graph_input {
            ItemGraphInput::Readout => self.dev.axpy_at(d_e, m * d, &dh, 0, n * d, 1.0).map_err(dev_err),
            ItemGraphInput::Embeddings => {
                let ie = self.ix("item_emb");
                self.dev.axpy_at(&mut self.g[ie], 0, &dh, 0, n * d, 1.0).map_err(dev_err)
            }
            ItemGraphInput::Attention => {
                let o = Ops(&self.dev);
                let mut dy = o.zeros(n, d)?;
                self.dev.axpy_at(&mut dy.b, 0, &dh, 0, n * d, 1.0 / sem.att.len().max(1) as f32).map_err(dev_err)?;
                let t = self.mha_params()?;
                let p = self.mha_view(&t);
                let block = super::cpu::rca::block_rows(n, self.block_bytes);
                let mut grads = Vec::new();
                for (mm, c) in &sem.att {
                    let (dx, dw, db) = gg::mha_backward(&o, &p, c, &dy, block)?;
                    let dx_sums = gg::mha_input_col_sums(&o, &p, &db)?;
                    grads.push((*mm, (dx, dw, db, dx_sums)));
                }
                for (mm, (dx, dw, db, dx_sums)) in grads {
                    for (k, name) in ["q", "k", "v", "o"].iter().enumerate() {
                        self.add_grad(&format!("mha.w_{name}"), &dw[k].b)?;
                        self.add_grad(&format!("mha.b_{name}"), &db[k])?;
                    }
                    self.add_project_grads(mm, &dx, Some(&dx_sums))?;
                }
                Ok(())
            }
        }
    }

    /// `dP_m += X_mᵀ dX̂`, `dp_m += 1ᵀ dX̂` for every item's row; `col_sums` is `1ᵀ dX̂` when
    /// the caller has it in a better-conditioned form ([`gg::mha_input_col_sums`]).
    fn add_project_grads(
        &mut self,
        mm: usize,
        d: &Mat<D::Buf<f32>>,
        col_sums: Option<&Mat<D::Buf<f32>>>,
    ) -> Result<()> {
        let Some(x) = self.feats[mm].as_ref() else { return Ok(()) };
        let o = Ops(&self.dev);
        let dp = o.mm(x, true, d, false, 1.0)?;
        let db = match col_sums {
            Some(s) => o.copy(s)?.b,
            None => {
                let mut db = self.zeros(d.cols)?;
                o.add_col_sums(&mut db, d)?;
                db
            }
        };
        self.add_grad(PROJ[mm].0, &dp.b)?;
        self.add_grad(PROJ[mm].1, &db)
    }

    /// FREEDOM's modality terms: per present modality, λ_m BPR of `z_u = e_u + h_u` against the
    /// projected features `X_m P_m + p_m` of the batch's positive and negative items
    /// (`[2B, d_m]` rows, never `[N, d_m]`), gradients into `d_e`, `d_h`, `P_m`, `p_m`.
    fn modality_bpr(
        &mut self,
        e: &D::Buf<f32>,
        h: Option<&D::Buf<f32>>,
        d_e: &mut D::Buf<f32>,
        mut d_h: Option<&mut D::Buf<f32>>,
        batch: &[Triplet],
    ) -> Result<f64> {
        let (d, b, w) = (self.d, batch.len(), self.cfg.modality_bpr as f32);
        let users: Vec<u32> = batch.iter().map(|t| t.0).collect();
        let rows: Vec<u32> = batch.iter().map(|t| t.1).chain(batch.iter().map(|t| t.2)).collect();
        let bu = self.dev.upload(&users).map_err(dev_err)?;
        let brows = self.dev.upload(&rows).map_err(dev_err)?;
        // One table [3B, d]: z_u of each triplet, then y of the positives, then of the negatives.
        let mut table = self.zeros(3 * b * d)?;
        let mut zsum = self.zeros(b * d)?;
        self.dev.gather_rows(&mut zsum, e, &bu, d).map_err(dev_err)?;
        if let Some(h) = h {
            let mut hu = self.zeros(b * d)?;
            self.dev.gather_rows(&mut hu, h, &bu, d).map_err(dev_err)?;
            self.dev.axpy_at(&mut zsum, 0, &hu, 0, b * d, 1.0).map_err(dev_err)?;
        }
        self.dev.copy_at(&mut table, 0, &zsum, 0, b * d).map_err(dev_err)?;
        let seg_u = upload_segments(&self.dev, &users).map_err(dev_err)?;
        let idx = |r: std::ops::Range<usize>| r.map(|k| k as u32).collect::<Vec<u32>>();
        let (tu, ti, tj) = (idx(0..b), idx(b..2 * b), idx(2 * b..3 * b));
        let mut total = 0.0;
        for mm in 0..2 {
            let (Some(f), dm) = (self.feats[mm].as_ref(), self.widths[mm]) else { continue };
            let (kp, kb) = (self.ix(PROJ[mm].0), self.ix(PROJ[mm].1));
            let mut x = self.zeros(2 * b * dm)?;
            self.dev.gather_rows(&mut x, &f.b, &brows, dm).map_err(dev_err)?;
            let mut y = self.zeros(2 * b * d)?;
            self.dev.gemm(&mut y, 2 * b, d, dm, &x, false, &self.p[kp], false, 1.0, 0.0).map_err(dev_err)?;
            self.dev.add_row_bias(&mut y, &self.p[kb], d).map_err(dev_err)?;
            self.dev.copy_at(&mut table, b * d, &y, 0, 2 * b * d).map_err(dev_err)?;
            let mut d_table = self.zeros(3 * b * d)?;
            total += self.cfg.modality_bpr * self.bpr(&table, &mut d_table, &tu, &ti, &tj, w)?;
            let mut dz = self.zeros(b * d)?;
            self.dev.copy_at(&mut dz, 0, &d_table, 0, b * d).map_err(dev_err)?;
            self.dev.scatter_add_rows(d_e, &dz, &seg_u, d).map_err(dev_err)?;
            if let Some(dh) = d_h.as_deref_mut() {
                self.dev.scatter_add_rows(dh, &dz, &seg_u, d).map_err(dev_err)?;
            }
            let mut dy = self.zeros(2 * b * d)?;
            self.dev.copy_at(&mut dy, 0, &d_table, b * d, 2 * b * d).map_err(dev_err)?;
            // dP = Xᵀ dY, dp = 1ᵀ dY.
            self.dev.gemm(&mut self.g[kp], dm, d, 2 * b, &x, true, &dy, false, 1.0, 1.0).map_err(dev_err)?;
            // The bias cancels in ŷ_neg − ŷ_pos: dp is zero in exact arithmetic. Summing the
            // positive and the negative halves separately, in the same order, makes it exactly
            // zero here too (dy_neg = −dy_pos bit for bit); one sum over 2B rows would leave
            // round-off that Adam turns into steps of size lr.
            let ones = self.dev.upload(&vec![1.0f32; b]).map_err(dev_err)?;
            let (mut half, mut db) = (self.zeros(b * d)?, self.zeros(d)?);
            for (k, off) in [0, b * d].into_iter().enumerate() {
                self.dev.copy_at(&mut half, 0, &dy, off, b * d).map_err(dev_err)?;
                let beta = if k == 0 { 0.0 } else { 1.0 };
                self.dev.gemm(&mut db, 1, d, b, &ones, false, &half, false, 1.0, beta).map_err(dev_err)?;
            }
            self.dev.axpy_at(&mut self.g[kb], 0, &db, 0, d, 1.0).map_err(dev_err)?;
        }
        Ok(total)
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

    /// `X̂^m = X_m P_m + p_m` `[N, d_f]` for every item.
    fn project(&self, m: usize) -> Result<Mat<D::Buf<f32>>> {
        let o = Ops(&self.dev);
        let (p, b) = (self.pmat(PROJ[m].0)?, self.pmat(PROJ[m].1)?);
        let x = self.feats[m].as_ref().expect("features are on the device for the learned graph");
        let mut y = o.mm(x, false, &p, false, 1.0)?;
        self.dev.add_row_bias(&mut y.b, &b.b, y.cols).map_err(dev_err)?;
        Ok(y)
    }

    /// A device matrix on the host.
    fn to_host(&self, x: &Mat<D::Buf<f32>>) -> Result<Dense> {
        let data = self.dev.download(&x.b).map_err(dev_err)?;
        Ok(Dense { rows: x.rows, cols: x.cols, data })
    }

    /// Keeps `kg` as the held graph (device copies of S̃ and S̃ᵀ).
    fn hold_graph(&mut self, kg: KnnGraph) -> Result<()> {
        let (s, s_t) = gg::upload_graph(&self.dev, &kg)?;
        let host = kg.s.to_nalgebra();
        self.graph = Some((s, s_t, host, kg));
        Ok(())
    }

    fn theta(&self) -> Result<[Mat<D::Buf<f32>>; 8]> {
        Ok([
            self.pmat("w_tr")?,
            self.pmat("b_tr")?,
            self.pmat("w_m.v")?,
            self.pmat("w_m.t")?,
            self.pmat("w_a.v")?,
            self.pmat("w_a.t")?,
            self.pmat("w_f.v")?,
            self.pmat("w_f.t")?,
        ])
    }

    /// Eq. (5)-(14): S̃ from the features and current parameters, with what its backward needs.
    fn build_graph(&self) -> Result<(KnnGraph, GraphCache<D::Buf<f32>>)> {
        let o = Ops(&self.dev);
        let (m, n) = (self.m, self.n);
        let xhat = [self.project(0)?, self.project(1)?];
        let block = super::cpu::rca::block_rows(m + n, self.block_bytes);
        let kblock = super::cpu::rca::block_rows(n, self.block_bytes);
        let mut rca = None;
        let mut profiles = Vec::new();
        let unit = |parts: Vec<Mat<D::Buf<f32>>>, w: f32| -> Result<DUnit<D::Buf<f32>>> {
            let (ys, inv) = gg::unit_parts(&o, &parts)?;
            Ok(DUnit { ys, inv, w })
        };
        let units = match self.cfg.fusion {
            Fusion::Rca => {
                let (a, _) = self.inter.as_ref().expect("A is on the device for the learned graph");
                let mut x0 = Vec::new();
                for (mm, xh) in xhat.iter().enumerate() {
                    // Eq. (5): user profiles in projected space, A X̂ (averaged: D⁻¹ A X̂).
                    let mut xu = o.zeros(m, xh.cols)?;
                    if let Some((ah, _)) = &self.a_host {
                        // Max and attention profiles (Table 6): O(nnz·d_f) on the host.
                        let xi = self.to_host(xh)?;
                        let att = self.to_host(&self.pmat(ATT[mm])?)?;
                        let (xu_h, c) = super::cpu::user_profiles::forward(ah, &xi, self.cfg.aggregation, &att);
                        xu.b = o.upload(&xu_h.data)?;
                        profiles.push((xi, att, c));
                    } else {
                        self.dev.spmm(&mut xu.b, a, &xh.b, xh.cols).map_err(dev_err)?;
                    }
                    if self.cfg.aggregation == Aggregation::Average {
                        o.scale_rows(&mut xu, &o.upload(&self.inv_degree)?)?;
                    }
                    let mut x = o.zeros(m + n, xh.cols)?;
                    self.dev.copy_at(&mut x.b, 0, &xu.b, 0, m * xh.cols).map_err(dev_err)?;
                    self.dev.copy_at(&mut x.b, m * xh.cols, &xh.b, 0, n * xh.cols).map_err(dev_err)?;
                    x0.push(x);
                }
                let t = self.theta()?;
                let th = self.theta_view(&t);
                let x1 = x0.pop().expect("two");
                let (xr, caches) = gg::rca_forward(&o, [x0.pop().expect("two"), x1], &th, self.cfg.rounds, block)?;
                rca = Some(caches);
                vec![unit(vec![o.rows(&xr[0], m, m + n)?, o.rows(&xr[1], m, m + n)?], 1.0)?]
            }
            Fusion::Concat => vec![unit(vec![o.copy(&xhat[0])?, o.copy(&xhat[1])?], 1.0)?],
            Fusion::Sum => {
                let mut s = o.copy(&xhat[0])?;
                o.axpy(&mut s, &xhat[1], 1.0)?;
                vec![unit(vec![s], 1.0)?]
            }
            Fusion::Visual => vec![unit(vec![o.copy(&xhat[0])?], 1.0)?],
            Fusion::Text => vec![unit(vec![o.copy(&xhat[1])?], 1.0)?],
            Fusion::AverageGraphs => vec![unit(vec![o.copy(&xhat[0])?], 0.5)?, unit(vec![o.copy(&xhat[1])?], 0.5)?],
        };
        let kg = gg::knn(&o, &units, self.cfg.knn_k, kblock)?;
        Ok((kg, GraphCache { rca, units, profiles }))
    }

    fn theta_view<'a>(&self, t: &'a [Mat<D::Buf<f32>>; 8]) -> Theta<'a, D::Buf<f32>> {
        Theta {
            w_tr: &t[0],
            b_tr: &t[1].b,
            w_m: [&t[2], &t[3]],
            w_a: [&t[4], &t[5]],
            w_f: [&t[6], &t[7]],
            scale: crane_reference::model::rca_scale(&self.cfg, self.m + self.n) as f32,
        }
    }

    /// Backward of [`GpuEngine::build_graph`] from the gradient of S̃'s values (host).
    fn build_graph_backward(&mut self, fc: &GraphCache<D::Buf<f32>>, d_vals: &[f32]) -> Result<()> {
        let (m, n) = (self.m, self.n);
        let kg = &self.graph.as_ref().expect("the graph being learned is held").3;
        let o = Ops(&self.dev);
        let mut d_units = gg::knn_backward(&o, kg, &fc.units, d_vals)?;
        let f = self.cfg.feature_dim;
        let mut d_xhat = [o.zeros(n, f)?, o.zeros(n, f)?];
        let mut theta_grads = None;
        match self.cfg.fusion {
            Fusion::Rca => {
                let mut parts = d_units.remove(0);
                let mut d = Vec::new();
                for part in parts.drain(..) {
                    let mut x = o.zeros(m + n, part.cols)?;
                    self.dev.copy_at(&mut x.b, m * part.cols, &part.b, 0, n * part.cols).map_err(dev_err)?;
                    d.push(x);
                }
                let t = self.theta()?;
                let th = self.theta_view(&t);
                let zero = |x: &Mat<D::Buf<f32>>| o.zeros(x.rows, x.cols);
                let mut gr = ThetaGrads {
                    w_tr: zero(&t[0])?,
                    b_tr: zero(&t[1])?.b,
                    w_m: [zero(&t[2])?, zero(&t[3])?],
                    w_a: [zero(&t[4])?, zero(&t[5])?],
                    w_f: [zero(&t[6])?, zero(&t[7])?],
                };
                let d1 = d.pop().expect("two");
                let block = super::cpu::rca::block_rows(m + n, self.block_bytes);
                let caches: &[RoundCache<D::Buf<f32>>] = fc.rca.as_deref().expect("RCA caches");
                let dx = gg::rca_backward(&o, &th, caches, [d.pop().expect("two"), d1], &mut gr, block)?;
                let (a, a_t) = self.inter.as_ref().expect("A is on the device for the learned graph");
                let _ = a;
                let mut d_atts = Vec::new();
                for (mm, dxm) in dx.iter().enumerate() {
                    let mut d_xu = o.rows(dxm, 0, m)?;
                    if self.cfg.aggregation == Aggregation::Average {
                        o.scale_rows(&mut d_xu, &o.upload(&self.inv_degree)?)?;
                    }
                    let mut d_prof = o.zeros(n, dxm.cols)?;
                    if let (Some((ah, aht)), Some((xi, att, c))) = (&self.a_host, fc.profiles.get(mm)) {
                        let d_xu_h = self.to_host(&d_xu)?;
                        let (dp, da) = super::cpu::user_profiles::backward(ah, aht, xi, att, c, &d_xu_h);
                        d_prof.b = o.upload(&dp.data)?;
                        d_atts.push((ATT[mm], o.upload(&da.data)?));
                    } else {
                        self.dev.spmm(&mut d_prof.b, a_t, &d_xu.b, dxm.cols).map_err(dev_err)?;
                    }
                    o.axpy(&mut d_xhat[mm], &d_prof, 1.0)?;
                    let d_xi = o.rows(dxm, m, m + n)?;
                    o.axpy(&mut d_xhat[mm], &d_xi, 1.0)?;
                }
                theta_grads = Some((gr, d_atts));
            }
            Fusion::Concat => {
                let mut parts = d_units.remove(0);
                let t = parts.pop().expect("two parts");
                o.axpy(&mut d_xhat[1], &t, 1.0)?;
                o.axpy(&mut d_xhat[0], &parts[0], 1.0)?;
            }
            Fusion::Sum => {
                o.axpy(&mut d_xhat[0], &d_units[0][0], 1.0)?;
                o.axpy(&mut d_xhat[1], &d_units[0][0], 1.0)?;
            }
            Fusion::Visual => o.axpy(&mut d_xhat[0], &d_units[0][0], 1.0)?,
            Fusion::Text => o.axpy(&mut d_xhat[1], &d_units[0][0], 1.0)?,
            Fusion::AverageGraphs => {
                o.axpy(&mut d_xhat[0], &d_units[0][0], 1.0)?;
                o.axpy(&mut d_xhat[1], &d_units[1][0], 1.0)?;
            }
        }
        if let Some((gr, d_atts)) = theta_grads {
            for (name, d) in &d_atts {
                self.add_grad(name, d)?;
            }
            for (name, t) in [
                ("w_tr", &gr.w_tr.b),
                ("b_tr", &gr.b_tr),
                ("w_m.v", &gr.w_m[0].b),
                ("w_m.t", &gr.w_m[1].b),
                ("w_a.v", &gr.w_a[0].b),
                ("w_a.t", &gr.w_a[1].b),
                ("w_f.v", &gr.w_f[0].b),
                ("w_f.t", &gr.w_f[1].b),
            ] {
                self.add_grad(name, t)?;
            }
        }
        for (mm, d) in d_xhat.iter().enumerate() {
            self.add_project_grads(mm, d, None)?;
        }
        Ok(())
    }

    /// Eq. (19) on rows `rows` of the full tables `e`, `h` `[M+N, d]`: the mean InfoNCE loss,
    /// with β times its gradient added to `d_e`, `d_h`.
    fn info_nce(
        &self,
        e: &D::Buf<f32>,
        h: &D::Buf<f32>,
        rows: &[u32],
        d_e: &mut D::Buf<f32>,
        d_h: &mut D::Buf<f32>,
    ) -> Result<f64> {
        let (o, d, k) = (Ops(&self.dev), self.d, rows.len());
        let (tau, g) = (self.cfg.tau as f32, self.cfg.beta as f32);
        let br = self.dev.upload(rows).map_err(dev_err)?;
        let gather = |t: &D::Buf<f32>| -> Result<Mat<D::Buf<f32>>> {
            let mut x = o.zeros(k, d)?;
            self.dev.gather_rows(&mut x.b, t, &br, d).map_err(dev_err)?;
            Ok(x)
        };
        // Unit rows with the norm clamped at 1e-12 (the reference's convention for Eq. 19).
        let unit = |x: Mat<D::Buf<f32>>| -> Result<(Mat<D::Buf<f32>>, D::Buf<f32>)> {
            let inv: Vec<f32> = o.row_sq_norms(&x)?.iter().map(|v| 1.0 / v.sqrt().max(1e-12)).collect();
            let inv = o.upload(&inv)?;
            let mut y = x;
            o.scale_rows(&mut y, &inv)?;
            Ok((y, inv))
        };
        let (ua, inv_a) = unit(gather(e)?)?;
        let (ub, inv_b) = unit(gather(h)?)?;
        let mut p = o.mm(&ua, false, &ub, true, 1.0 / tau)?;
        let mut row_loss = self.zeros(k)?;
        self.dev.softmax_rows_loss(&mut p.b, k, &mut row_loss).map_err(dev_err)?;
        let loss: f64 =
            self.dev.download(&row_loss).map_err(dev_err)?.iter().map(|&v| v as f64).sum::<f64>() / k as f64;
        // dL/dlogits = β (P − I) / k.
        self.dev.scale(&mut p.b, g / k as f32).map_err(dev_err)?;
        self.dev.add_diag(&mut p.b, k, -g / k as f32).map_err(dev_err)?;
        let mut d_ua = o.mm(&p, false, &ub, false, 1.0 / tau)?;
        let mut d_ub = o.mm(&p, true, &ua, false, 1.0 / tau)?;
        o.unit_backward(&[&ua], std::slice::from_mut(&mut d_ua), &inv_a)?;
        o.unit_backward(&[&ub], std::slice::from_mut(&mut d_ub), &inv_b)?;
        let seg = upload_segments(&self.dev, rows).map_err(dev_err)?;
        self.dev.scatter_add_rows(d_e, &d_ua.b, &seg, d).map_err(dev_err)?;
        self.dev.scatter_add_rows(d_h, &d_ub.b, &seg, d).map_err(dev_err)?;
        Ok(loss)
    }
}

/// Eq. (15)-(16) forward: `[h_u; h_i]` `[M+N, d]`, the layers `h^(0..L-1)`, and the attention
/// caches per present modality (`item_graph_input = "attention"`).
struct Semantic<B> {
    full: B,
    hs: Vec<B>,
    att: Vec<(usize, gg::MhaCache<B>)>,
}

/// What the learned graph's forward keeps for its backward.
struct GraphCache<B> {
    rca: Option<Vec<RoundCache<B>>>,
    units: Vec<DUnit<B>>,
    /// Per modality, for host-side (max, attention) profiles: `X̂_I`, the attention vector and
    /// the CPU engine's cache.
    profiles: Vec<(Dense, Dense, super::cpu::user_profiles::ProfileCache)>,
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

    fn score_block(&self, users: &[u32], out: &mut [f32]) {
        let run = || -> crane_gpu::device::R<Vec<f32>> {
            let s = self.device_scores(users)?;
            self.dev.download(&s)
        };
        let s = run().unwrap_or_else(|e| panic!("GPU scoring failed: {e}"));
        out[..s.len()].copy_from_slice(&s);
    }

    fn rank_block(&self, users: &[u32], mask: crate::eval::Mask<'_>, n_items: usize, k: usize) -> Vec<Vec<u32>> {
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
        let top = run().unwrap_or_else(|e| panic!("GPU ranking failed: {e}"));
        // Padding (u32::MAX) marks users with fewer than k unmasked items.
        top.chunks(k.max(1)).take(users.len()).map(|r| r.iter().copied().filter(|&i| i != u32::MAX).collect()).collect()
    }

    fn times(&self) -> &StageTimes {
        &self.times
    }

    fn reset_times(&mut self) {
        self.times = StageTimes::default();
    }
}
