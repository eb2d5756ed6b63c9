//! The whole CRANE model: parameters, forward, and `loss_and_grads`.
//!
//! Stages, in the paper's order: G_UI convolution (Eq. 1-4) gives e `[M+N, d]`; the features
//! are projected and aggregated into user profiles (Eq. 5-6), refined by RCA (Eq. 7-13) and
//! turned into the item graph S̃ (Eq. 14); e_I is propagated over S̃ (Eq. 15), users collect
//! their items' h (Eq. 16), z = e + h (Eq. 17), and the batch loss is Eq. (18)-(20).

use crate::config::{DropEdge, Fusion, ItemGraphInput, ItemGraphSource, ModelConfig, Regularisation};
use crate::dense::{add, add_assign, gather_rows, hcat, hsplit, mm_nt, scale, scatter_add_rows, sq_norm, vcat, vsplit};
use crate::interaction_graph::{self as ig};
use crate::item_graph::{self as it, CosineCache, KnnCache};
use crate::losses::{self, LossTerms};
use crate::rca::{self, RcaCache, RcaParams};
use crate::user_profiles::{self as up, ProfileCache};
use crate::RefError;
use faer::Mat;
use nalgebra_sparse::CsrMatrix;

/// Every trainable tensor. Index 0 of a pair is the visual modality v, 1 the textual t.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Layer-0 user ID embeddings E_U `[M, d]`.
    pub user_emb: Mat<f64>,
    /// Layer-0 item ID embeddings E_I `[N, d]`.
    pub item_emb: Mat<f64>,
    /// W^(l) of Eq. (3)-(4), `[d, d]` each, L_UI of them.
    pub w_gcn: Vec<Mat<f64>>,
    /// Feature projections P_m `[d_m, d_f]` (Fig. 3).
    pub proj: [Mat<f64>; 2],
    /// Projection biases p_m `[1, d_f]`.
    pub proj_bias: [Mat<f64>; 2],
    /// W_tr `[2 d_f, d_j]` of Eq. (8).
    pub w_tr: Mat<f64>,
    /// b_tr `[1, d_j]` of Eq. (8).
    pub b_tr: Mat<f64>,
    /// W_m `[d_j, d_f]` of Eq. (9).
    pub w_m: [Mat<f64>; 2],
    /// W_a^m `[d_f, d_f]` of Eq. (11).
    pub w_a: [Mat<f64>; 2],
    /// W_f^m `[d_f, d_f]` of Eq. (12).
    pub w_f: [Mat<f64>; 2],
    /// Attention-aggregation vectors a_m `[d_f, 1]` (Table 6 variant only).
    pub att: [Mat<f64>; 2],
    /// `[W_q, W_k, W_v, W_o]` `[d_f, d_f]` of the authors' attention (`crane-code`; `[0, 0]`
    /// unless `item_graph_input = "attention"`).
    pub mha_w: [Mat<f64>; 4],
    /// `[b_q, b_k, b_v, b_o]` `[1, d_f]` (`[0, 0]` when unused).
    pub mha_b: [Mat<f64>; 4],
    /// The second projection before the attention, `Q_m` `[d_f, d_f]` per modality
    /// (`attention_projection`; `[0, 0]` otherwise).
    pub mha_proj: [Mat<f64>; 2],
    /// Its biases `q_m` `[1, d_f]` (`[0, 0]` when unused).
    pub mha_proj_bias: [Mat<f64>; 2],
    /// The raw feature tables `X^m` `[N, d_m]` when they are trained (`train_features`;
    /// `[0, 0]` otherwise): set from the data by [`Params::attach_features`].
    pub features: [Mat<f64>; 2],
}

/// Names of the attention tensors, in [`Params::tensors`] order.
const MHA_NAMES: [&str; 4] = ["q", "k", "v", "o"];

impl Params {
    /// Named views of every tensor, in a fixed order (init, Adam, checkpoints, tests).
    pub fn tensors(&self) -> Vec<(String, &Mat<f64>)> {
        let mut v: Vec<(String, &Mat<f64>)> =
            vec![("user_emb".into(), &self.user_emb), ("item_emb".into(), &self.item_emb)];
        for (l, w) in self.w_gcn.iter().enumerate() {
            v.push((format!("w_gcn.{l}"), w));
        }
        for (m, name) in ["v", "t"].iter().enumerate() {
            v.push((format!("proj.{name}"), &self.proj[m]));
            v.push((format!("proj_bias.{name}"), &self.proj_bias[m]));
        }
        v.push(("w_tr".into(), &self.w_tr));
        v.push(("b_tr".into(), &self.b_tr));
        for (m, name) in ["v", "t"].iter().enumerate() {
            v.push((format!("w_m.{name}"), &self.w_m[m]));
            v.push((format!("w_a.{name}"), &self.w_a[m]));
            v.push((format!("w_f.{name}"), &self.w_f[m]));
            v.push((format!("att.{name}"), &self.att[m]));
        }
        for (k, name) in MHA_NAMES.iter().enumerate() {
            v.push((format!("mha.w_{name}"), &self.mha_w[k]));
            v.push((format!("mha.b_{name}"), &self.mha_b[k]));
        }
        for (m, name) in ["v", "t"].iter().enumerate() {
            v.push((format!("mha_proj.{name}"), &self.mha_proj[m]));
            v.push((format!("mha_proj_bias.{name}"), &self.mha_proj_bias[m]));
        }
        for (m, name) in ["v", "t"].iter().enumerate() {
            v.push((format!("features.{name}"), &self.features[m]));
        }
        v
    }

    /// Mutable views, same order as [`Params::tensors`].
    pub fn tensors_mut(&mut self) -> Vec<(String, &mut Mat<f64>)> {
        let mut v: Vec<(String, &mut Mat<f64>)> =
            vec![("user_emb".into(), &mut self.user_emb), ("item_emb".into(), &mut self.item_emb)];
        for (l, w) in self.w_gcn.iter_mut().enumerate() {
            v.push((format!("w_gcn.{l}"), w));
        }
        let [pv, pt] = &mut self.proj;
        let [bv, bt] = &mut self.proj_bias;
        v.push(("proj.v".into(), pv));
        v.push(("proj_bias.v".into(), bv));
        v.push(("proj.t".into(), pt));
        v.push(("proj_bias.t".into(), bt));
        v.push(("w_tr".into(), &mut self.w_tr));
        v.push(("b_tr".into(), &mut self.b_tr));
        let [mv, mt] = &mut self.w_m;
        let [av, at] = &mut self.w_a;
        let [fv, ft] = &mut self.w_f;
        let [sv, st] = &mut self.att;
        for (name, wm, wa, wf, a) in [("v", mv, av, fv, sv), ("t", mt, at, ft, st)] {
            v.push((format!("w_m.{name}"), wm));
            v.push((format!("w_a.{name}"), wa));
            v.push((format!("w_f.{name}"), wf));
            v.push((format!("att.{name}"), a));
        }
        for ((w, b), name) in self.mha_w.iter_mut().zip(self.mha_b.iter_mut()).zip(MHA_NAMES) {
            v.push((format!("mha.w_{name}"), w));
            v.push((format!("mha.b_{name}"), b));
        }
        for ((w, b), name) in self.mha_proj.iter_mut().zip(self.mha_proj_bias.iter_mut()).zip(["v", "t"]) {
            v.push((format!("mha_proj.{name}"), w));
            v.push((format!("mha_proj_bias.{name}"), b));
        }
        for (x, name) in self.features.iter_mut().zip(["v", "t"]) {
            v.push((format!("features.{name}"), x));
        }
        v
    }

    /// A zero tensor of every shape (the gradient accumulator).
    pub fn zeros_like(&self) -> Self {
        let z = |m: &Mat<f64>| Mat::zeros(m.nrows(), m.ncols());
        Self {
            user_emb: z(&self.user_emb),
            item_emb: z(&self.item_emb),
            w_gcn: self.w_gcn.iter().map(z).collect(),
            proj: [z(&self.proj[0]), z(&self.proj[1])],
            proj_bias: [z(&self.proj_bias[0]), z(&self.proj_bias[1])],
            w_tr: z(&self.w_tr),
            b_tr: z(&self.b_tr),
            w_m: [z(&self.w_m[0]), z(&self.w_m[1])],
            w_a: [z(&self.w_a[0]), z(&self.w_a[1])],
            w_f: [z(&self.w_f[0]), z(&self.w_f[1])],
            att: [z(&self.att[0]), z(&self.att[1])],
            mha_w: std::array::from_fn(|k| z(&self.mha_w[k])),
            mha_b: std::array::from_fn(|k| z(&self.mha_b[k])),
            mha_proj: std::array::from_fn(|m| z(&self.mha_proj[m])),
            mha_proj_bias: std::array::from_fn(|m| z(&self.mha_proj_bias[m])),
            features: std::array::from_fn(|m| z(&self.features[m])),
        }
    }

    /// With `train_features`, makes the raw feature tables `[N, d_m]` parameters, starting
    /// from the data's values; a no-op when they are already attached (a resumed run keeps
    /// its trained tables) or when the switch is off.
    pub fn attach_features(&mut self, cfg: &ModelConfig, features: [&Mat<f64>; 2]) {
        if self.needs_features(cfg) {
            self.features = [features[0].clone(), features[1].clone()];
        }
    }

    /// [`Params::attach_features`] taking the tables by value (no copy: they can be large).
    pub fn attach_features_owned(&mut self, cfg: &ModelConfig, features: [Mat<f64>; 2]) {
        if self.needs_features(cfg) {
            self.features = features;
        }
    }

    /// Whether `train_features` asks for tables these parameters do not hold yet.
    pub fn needs_features(&self, cfg: &ModelConfig) -> bool {
        cfg.train_features && self.features.iter().all(|f| f.nrows() == 0 && f.ncols() == 0)
    }

    /// A copy without the trained feature tables (`[0, 0]` in their place): the shape
    /// template an engine fills tensor by tensor, without holding a second copy of the tables.
    pub fn without_features(&self) -> Self {
        Self {
            user_emb: self.user_emb.clone(),
            item_emb: self.item_emb.clone(),
            w_gcn: self.w_gcn.clone(),
            proj: self.proj.clone(),
            proj_bias: self.proj_bias.clone(),
            w_tr: self.w_tr.clone(),
            b_tr: self.b_tr.clone(),
            w_m: self.w_m.clone(),
            w_a: self.w_a.clone(),
            w_f: self.w_f.clone(),
            att: self.att.clone(),
            mha_w: self.mha_w.clone(),
            mha_b: self.mha_b.clone(),
            mha_proj: self.mha_proj.clone(),
            mha_proj_bias: self.mha_proj_bias.clone(),
            features: [Mat::zeros(0, 0), Mat::zeros(0, 0)],
        }
    }

    fn mha_params(&self, heads: usize) -> crate::attention::MhaParams<'_> {
        crate::attention::MhaParams {
            w: std::array::from_fn(|k| &self.mha_w[k]),
            b: std::array::from_fn(|k| &self.mha_b[k]),
            heads,
        }
    }

    fn rca_params(&self, scale: f64) -> RcaParams<'_> {
        RcaParams {
            w_tr: &self.w_tr,
            b_tr: &self.b_tr,
            w_m: [&self.w_m[0], &self.w_m[1]],
            w_a: [&self.w_a[0], &self.w_a[1]],
            w_f: [&self.w_f[0], &self.w_f[1]],
            scale,
        }
    }
}

/// s of Eq. (11) for `entities` = M+N rows.
pub fn rca_scale(cfg: &ModelConfig, entities: usize) -> f64 {
    match cfg.rca_scale {
        crate::config::RcaScale::Mean => 1.0 / entities as f64,
        crate::config::RcaScale::None => 1.0,
    }
}

/// The raw features `X^m` `[N, d_m]` the forward uses: the trained tables
/// (`train_features`) or the data's constants.
fn raw_features<'a>(p: &'a Params, g: &'a Graph, cfg: &ModelConfig, m: usize) -> &'a Mat<f64> {
    if cfg.train_features {
        &p.features[m]
    } else {
        &g.features[m]
    }
}

/// `X̂^m = X^m P_m + p_m` `[N, d_f]` (Fig. 3 "dimension reduction").
fn projected(p: &Params, g: &Graph, cfg: &ModelConfig, m: usize) -> Mat<f64> {
    up::project(raw_features(p, g, cfg, m), &p.proj[m], &p.proj_bias[m])
}

/// Backward of [`projected`] for `dX̂^m` `[N, d_f]`: `dP_m`, `dp_m`, and with trained tables
/// `dX^m = dX̂^m P_mᵀ`.
fn projected_backward(p: &Params, g: &Graph, cfg: &ModelConfig, m: usize, d_xhat: &Mat<f64>, gr: &mut Params) {
    let (d_p, d_b) = up::project_backward(raw_features(p, g, cfg, m), d_xhat);
    add_assign(&mut gr.proj[m], &d_p);
    add_assign(&mut gr.proj_bias[m], &d_b);
    if cfg.train_features {
        add_assign(&mut gr.features[m], &mm_nt(d_xhat, &p.proj[m]));
    }
}

/// The fixed inputs of a forward pass.
#[derive(Clone, Debug)]
pub struct Graph {
    /// A `[M, N]`: the training interactions (Eq. 1).
    pub a: CsrMatrix<f64>,
    /// Ã as a mask over A's stored entries `[nnz]`, 1 kept and 0 dropped (Eq. 2).
    pub edge_mask: Vec<f64>,
    /// Raw item features `[N, d_v]` and `[N, d_t]`.
    pub features: [Mat<f64>; 2],
    /// A given S̃ `[N, N]` to use instead of building one from the features (item graph
    /// refreshed once per epoch, or frozen); no gradient reaches the feature branch then.
    pub fixed_item_graph: Option<CsrMatrix<f64>>,
}

impl Graph {
    /// A graph with every edge kept and the item graph built from the features.
    pub fn new(a: CsrMatrix<f64>, features: [Mat<f64>; 2]) -> Self {
        let edge_mask = vec![1.0; a.nnz()];
        Self { a, edge_mask, features, fixed_item_graph: None }
    }

    pub fn n_users(&self) -> usize {
        self.a.nrows()
    }

    pub fn n_items(&self) -> usize {
        self.a.ncols()
    }
}

/// Samples Ã (Eq. 2) with the configured sampler.
pub fn sample_edge_mask(a: &CsrMatrix<f64>, drop: DropEdge, seed: u64) -> Vec<f64> {
    match drop {
        DropEdge::Bernoulli => ig::drop_edge_bernoulli(a, seed),
        DropEdge::BernoulliRescaled => ig::drop_edge_bernoulli_rescaled(a, seed),
        DropEdge::Freedom { keep_ratio } => ig::drop_edge_freedom(a, keep_ratio, seed),
        DropEdge::Off => vec![1.0; a.nnz()],
    }
}

/// The item rows fed to Eq. (14), and how they were made.
#[derive(Clone, Debug)]
enum SimilarityCache {
    One(CosineCache),
    /// CRANE-A: the two cosine matrices are averaged.
    Two(CosineCache, CosineCache),
}

#[derive(Clone, Debug)]
struct FeatureCache {
    xhat: [Mat<f64>; 2],
    /// Profiles and RCA caches (fusion = Rca only).
    rca: Option<([ProfileCache; 2], [Mat<f64>; 2], RcaCache)>,
    sim: SimilarityCache,
    knn: KnnCache,
}

/// Builds S̃ (Eq. 5-14) from the features. Returns S̃, its cache and the kink margin.
fn build_item_graph(p: &Params, g: &Graph, cfg: &ModelConfig) -> Result<(CsrMatrix<f64>, FeatureCache, f64), RefError> {
    let m_users = g.n_users();
    let xhat = [projected(p, g, cfg, 0), projected(p, g, cfg, 1)];
    let mut margin = f64::INFINITY;
    let mut rca_cache = None;
    let single = |x: &Mat<f64>| -> Result<(Mat<f64>, SimilarityCache), RefError> {
        let (s, c) = it::cosine_similarity(x)?;
        Ok((s, SimilarityCache::One(c)))
    };
    let (s, sim) = match cfg.fusion {
        Fusion::Rca => {
            let mut prof = Vec::new();
            let mut stacked = Vec::new();
            for m in 0..2 {
                margin = margin.min(up::max_pool_margin(&g.a, &xhat[m], cfg.aggregation));
                let (xu, pc) = up::user_profiles(&g.a, &xhat[m], cfg.aggregation, &p.att[m]);
                prof.push(pc);
                stacked.push(up::stack_entities(&xu, &xhat[m]));
            }
            let (xatt, rc) = rca::rca(
                &stacked[0],
                &stacked[1],
                &p.rca_params(rca_scale(cfg, g.n_users() + g.n_items())),
                cfg.rounds,
            );
            margin = margin.min(rca::kink_margin(&rc));
            let (_, items) = vsplit(&xatt, m_users);
            let pc1 = prof.pop().unwrap();
            let pc0 = prof.pop().unwrap();
            let s1 = stacked.pop().unwrap();
            let s0 = stacked.pop().unwrap();
            rca_cache = Some(([pc0, pc1], [s0, s1], rc));
            single(&items)?
        }
        Fusion::Concat => single(&hcat(&xhat[0], &xhat[1]))?,
        Fusion::Sum => single(&add(&xhat[0], &xhat[1]))?,
        Fusion::Visual => single(&xhat[0])?,
        Fusion::Text => single(&xhat[1])?,
        Fusion::AverageGraphs => {
            let (sv, cv) = it::cosine_similarity(&xhat[0])?;
            let (st, ct) = it::cosine_similarity(&xhat[1])?;
            (scale(&add(&sv, &st), 0.5), SimilarityCache::Two(cv, ct))
        }
    };
    margin = margin.min(it::knn_margin(&s, cfg.knn_k));
    let (adj, knn) = it::knn_graph(&s, cfg.knn_k)?;
    Ok((adj, FeatureCache { xhat, rca: rca_cache, sim, knn }, margin))
}

/// Backward of [`build_item_graph`] from the gradient of S̃'s values; accumulates into `gr`.
fn build_item_graph_backward(
    p: &Params,
    g: &Graph,
    cfg: &ModelConfig,
    adj: &CsrMatrix<f64>,
    fc: &FeatureCache,
    d_vals: &[f64],
    gr: &mut Params,
) {
    let d_s = it::knn_graph_backward(adj, &fc.knn, d_vals);
    let mut d_xhat =
        [Mat::zeros(fc.xhat[0].nrows(), fc.xhat[0].ncols()), Mat::zeros(fc.xhat[1].nrows(), fc.xhat[1].ncols())];
    match &fc.sim {
        SimilarityCache::Two(cv, ct) => {
            let half = scale(&d_s, 0.5);
            add_assign(&mut d_xhat[0], &it::cosine_similarity_backward(cv, &half));
            add_assign(&mut d_xhat[1], &it::cosine_similarity_backward(ct, &half));
        }
        SimilarityCache::One(c) => {
            let d_x = it::cosine_similarity_backward(c, &d_s);
            match cfg.fusion {
                Fusion::Rca => {
                    let (prof, stacked, rc) = fc.rca.as_ref().expect("RCA cache present for fusion = rca");
                    let m_users = g.n_users();
                    let d_xatt = vcat(&Mat::zeros(m_users, d_x.ncols()), &d_x);
                    let (dv, dt, rg) = rca::rca_backward(
                        &p.rca_params(rca_scale(cfg, g.n_users() + g.n_items())),
                        rc,
                        &d_xatt,
                        stacked[0].ncols(),
                    );
                    add_assign(&mut gr.w_tr, &rg.w_tr);
                    add_assign(&mut gr.b_tr, &rg.b_tr);
                    for m in 0..2 {
                        add_assign(&mut gr.w_m[m], &rg.w_m[m]);
                        add_assign(&mut gr.w_a[m], &rg.w_a[m]);
                        add_assign(&mut gr.w_f[m], &rg.w_f[m]);
                    }
                    for (m, d_stack) in [dv, dt].iter().enumerate() {
                        let (d_xu, d_xi) = up::stack_entities_backward(d_stack, m_users);
                        let (d_xi_prof, d_att) =
                            up::user_profiles_backward(&g.a, &fc.xhat[m], &p.att[m], &prof[m], &d_xu);
                        add_assign(&mut d_xhat[m], &d_xi);
                        add_assign(&mut d_xhat[m], &d_xi_prof);
                        add_assign(&mut gr.att[m], &d_att);
                    }
                }
                Fusion::Concat => {
                    let (a, b) = hsplit(&d_x, fc.xhat[0].ncols());
                    add_assign(&mut d_xhat[0], &a);
                    add_assign(&mut d_xhat[1], &b);
                }
                Fusion::Sum => {
                    add_assign(&mut d_xhat[0], &d_x);
                    add_assign(&mut d_xhat[1], &d_x);
                }
                Fusion::Visual => add_assign(&mut d_xhat[0], &d_x),
                Fusion::Text => add_assign(&mut d_xhat[1], &d_x),
                Fusion::AverageGraphs => unreachable!("two cosine caches"),
            }
        }
    }
    for (m, d) in d_xhat.iter().enumerate() {
        projected_backward(p, g, cfg, m, d, gr);
    }
}

/// Everything the forward computed.
#[derive(Clone, Debug)]
pub struct Forward {
    /// Â `[M+N, M+N]`, the normalised sampled adjacency of Eq. (3)-(4).
    pub adj: CsrMatrix<f64>,
    gcn: ig::GcnCache,
    /// e `[M+N, d]`, the readout of Eq. (3)-(4).
    pub e: Mat<f64>,
    /// S̃ `[N, N]` when the item graph is on.
    pub item_graph: Option<CsrMatrix<f64>>,
    features: Option<FeatureCache>,
    /// Per present modality, the attention cache and its projected input X̂^m
    /// (`item_graph_input = "attention"`).
    attention: Option<Vec<(usize, crate::attention::MhaCache, Mat<f64>)>>,
    /// h^(0..=L_II) of Eq. (15).
    hs: Vec<Mat<f64>>,
    /// h `[M+N, d]`: Eq. (16) user rows over Eq. (15) item rows (zero without item graph).
    pub h: Mat<f64>,
    /// z `[M+N, d]`, Eq. (17); `[M+N, 2d]` = [e, h] without dual fusion (scores add up).
    pub z: Mat<f64>,
    /// Smallest distance of any input to a kink (ReLU, leaky ReLU, max, top-k tie, clamp):
    /// finite-difference checks need it well above their step.
    pub kink_margin: f64,
}

/// W^(l) for each layer: the parameters, or identities when `gcn_weights` is off.
fn gcn_weights(p: &Params, cfg: &ModelConfig) -> Vec<Mat<f64>> {
    if cfg.gcn_weights {
        p.w_gcn.clone()
    } else {
        let d = p.user_emb.ncols();
        (0..cfg.ui_layers).map(|_| Mat::identity(d, d)).collect()
    }
}

/// The forward pass up to z (Eq. 1-17), for training (sampled graph) or scoring.
pub fn forward(p: &Params, g: &Graph, cfg: &ModelConfig) -> Result<Forward, RefError> {
    cfg.validate(g.n_items())?;
    let (m, n) = (g.n_users(), g.n_items());
    let adj = ig::normalized_adjacency(&g.a, &g.edge_mask, cfg.degree_source);
    let h0 = vcat(&p.user_emb, &p.item_emb);
    if p.w_gcn.len() != cfg.n_gcn_weights() {
        return Err(RefError::Shape(format!(
            "config asks for {} GCN weights, params hold {}",
            cfg.n_gcn_weights(),
            p.w_gcn.len()
        )));
    }
    if cfg.train_features {
        for m in 0..2 {
            let (want, got) = (&g.features[m], &p.features[m]);
            if (want.nrows(), want.ncols()) != (got.nrows(), got.ncols()) {
                return Err(RefError::Shape(format!(
                    "train_features: the params hold a {} x {} table for modality {m}, the data {} x {} \
                     (Params::attach_features)",
                    got.nrows(),
                    got.ncols(),
                    want.nrows(),
                    want.ncols()
                )));
            }
        }
    }
    let (e, gcn) = ig::gcn_forward(&adj, &h0, &gcn_weights(p, cfg), cfg.sigma, cfg.readout);
    let mut margin = ig::kink_margin(cfg.sigma, &gcn);
    let d = e.ncols();
    let mut attention = None;
    let (item_graph, features, hs, h) = if cfg.item_graph {
        let (s_tilde, fc) = match (&g.fixed_item_graph, &cfg.item_graph_source) {
            (Some(s), _) => (s.clone(), None),
            (None, ItemGraphSource::RawFeatures { image_weight }) => {
                (it::raw_feature_graph(&g.features, cfg.knn_k, *image_weight)?, None)
            }
            (None, ItemGraphSource::Files { dir, .. }) => {
                return Err(RefError::Config {
                    field: "item_graph_source".into(),
                    why: format!(
                        "files: the graph read from `{dir}` must be given as Graph::fixed_item_graph \
                         (item_graph::fixed_knn_graph)"
                    ),
                })
            }
            (None, ItemGraphSource::Learned) => {
                let (s, fc, mg) = build_item_graph(p, g, cfg)?;
                margin = margin.min(mg);
                (s, Some(fc))
            }
        };
        let h0 = match cfg.item_graph_input {
            ItemGraphInput::Readout => vsplit(&e, m).1,
            ItemGraphInput::Embeddings => p.item_emb.clone(),
            ItemGraphInput::Attention => {
                let mut outs = Vec::new();
                for mm in (0..2).filter(|&mm| g.features[mm].ncols() > 0) {
                    let xhat = projected(p, g, cfg, mm);
                    // The authors' second projection: x̂^m Q_m + q_m, then the attention.
                    let (y, c) = if cfg.uses_attention_projection() {
                        let x2 = up::project(&xhat, &p.mha_proj[mm], &p.mha_proj_bias[mm]);
                        crate::attention::mha(&x2, &p.mha_params(cfg.attention_heads))
                    } else {
                        crate::attention::mha(&xhat, &p.mha_params(cfg.attention_heads))
                    };
                    outs.push((mm, y, c, xhat));
                }
                if outs.is_empty() {
                    return Err(RefError::Config {
                        field: "item_graph_input".into(),
                        why: "attention needs image or text features; neither is present".into(),
                    });
                }
                let w = 1.0 / outs.len() as f64;
                let mut h0 = Mat::zeros(n, d);
                for (_, y, _, _) in &outs {
                    add_assign(&mut h0, &scale(y, w));
                }
                attention = Some(outs.into_iter().map(|(mm, _, c, xhat)| (mm, c, xhat)).collect::<Vec<_>>());
                h0
            }
        };
        let hs = it::propagate(&s_tilde, &h0, cfg.ii_layers);
        let h_items = hs.last().unwrap().clone();
        let h_users = if cfg.user_semantic { it::user_semantic(&g.a, &h_items) } else { Mat::zeros(m, d) };
        (Some(s_tilde), fc, hs, vcat(&h_users, &h_items))
    } else {
        (None, None, Vec::new(), Mat::zeros(m + n, d))
    };
    // Eq. (17), or the late fusion of "w/o Dual Fusion": [e, h]·[e, h] = e_u·e_i + h_u·h_i.
    let z = if cfg.dual_fusion { it::fuse(&e, &h) } else { hcat(&e, &h) };
    Ok(Forward { adj, gcn, e, item_graph, features, attention, hs, h, z, kink_margin: margin })
}

/// A mini-batch of BPR triplets (u, i, j): i a training item of u, j a sampled negative.
#[derive(Clone, Debug)]
pub struct Batch {
    pub triplets: Vec<(usize, usize, usize)>,
}

impl Batch {
    /// Distinct users in order of first appearance (the user batch B of Eq. 19).
    pub fn distinct_users(&self) -> Vec<usize> {
        distinct(self.triplets.iter().map(|t| t.0))
    }

    /// Distinct positive items in order of first appearance (the item batch of L_CL^I).
    pub fn distinct_items(&self) -> Vec<usize> {
        distinct(self.triplets.iter().map(|t| t.1))
    }
}

fn distinct(it: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut seen = std::collections::HashSet::new();
    it.filter(|x| seen.insert(*x)).collect()
}

/// Loss, its terms, and the gradient of the loss for every parameter tensor.
#[derive(Clone, Debug)]
pub struct LossAndGrads {
    pub terms: LossTerms,
    pub loss: f64,
    pub grads: Params,
    pub forward: Forward,
}

/// Eq. (18)-(20) on one batch, and the exact gradient of the total loss with respect to every
/// parameter (through S̃ too, unless `graph.fixed_item_graph` is set).
pub fn loss_and_grads(p: &Params, batch: &Batch, g: &Graph, cfg: &ModelConfig) -> Result<LossAndGrads, RefError> {
    if batch.triplets.is_empty() {
        return Err(RefError::Shape("empty batch".into()));
    }
    let (m, n) = (g.n_users(), g.n_items());
    if let Some(&(u, i, j)) = batch.triplets.iter().find(|&&(u, i, j)| u >= m || i >= n || j >= n) {
        return Err(RefError::Shape(format!("triplet ({u}, {i}, {j}) outside {m} users x {n} items")));
    }
    let fw = forward(p, g, cfg)?;
    let d = fw.e.ncols();
    let (eu, ei) = vsplit(&fw.e, m);
    let (hu, hi) = vsplit(&fw.h, m);
    let pos_pairs: Vec<(usize, usize)> = batch.triplets.iter().map(|t| (t.0, t.1)).collect();
    let neg_pairs: Vec<(usize, usize)> = batch.triplets.iter().map(|t| (t.0, t.2)).collect();
    // Eq. (18) on z = e + h; without dual fusion, one BPR term per branch.
    let views: Vec<(Mat<f64>, Mat<f64>)> = if cfg.dual_fusion {
        vec![(add(&eu, &hu), add(&ei, &hi))]
    } else {
        vec![(eu.clone(), ei.clone()), (hu.clone(), hi.clone())]
    };
    let view_scores: Vec<(Vec<f64>, Vec<f64>)> =
        views.iter().map(|(xu, xi)| (it::scores(xu, xi, &pos_pairs), it::scores(xu, xi, &neg_pairs))).collect();
    let l_bpr: f64 = view_scores.iter().map(|(pos, neg)| losses::bpr(pos, neg)).sum();

    // Eq. (19) on the distinct users and distinct positive items of the batch.
    let users = batch.distinct_users();
    let items = batch.distinct_items();
    let cl = cfg.uses_contrastive().then(|| {
        let (ae, ah) = (gather_rows(&eu, &users), gather_rows(&hu, &users));
        let (be, bh) = (gather_rows(&ei, &items), gather_rows(&hi, &items));
        let (lu, cu) = losses::info_nce(&ae, &ah, cfg.tau);
        let (li, ci) = losses::info_nce(&be, &bh, cfg.tau);
        (lu, cu, ae, ah, li, ci, be, bh)
    });
    let (l_clu, l_cli) = cl.as_ref().map_or((0.0, 0.0), |c| (c.0, c.4));
    let sq = match cfg.regularisation {
        Regularisation::BatchEmbeddings => losses::batch_sq_norm(&p.user_emb, &p.item_emb, &batch.triplets),
        Regularisation::BatchNorms => losses::batch_norms(&p.user_emb, &p.item_emb, &batch.triplets),
        Regularisation::AllParameters => p.tensors().iter().map(|(_, t)| sq_norm(t)).sum(),
    };
    let beta = if cfg.uses_contrastive() { cfg.beta } else { 0.0 };
    let mut terms = losses::total_loss(l_bpr, l_clu, l_cli, sq, beta, cfg.lambda);
    // FREEDOM's modality terms: BPR of the user's z_u = e_u + h_u against projected features.
    let batch_users: Vec<usize> = batch.triplets.iter().map(|t| t.0).collect();
    let batch_pos: Vec<usize> = batch.triplets.iter().map(|t| t.1).collect();
    let batch_neg: Vec<usize> = batch.triplets.iter().map(|t| t.2).collect();
    let zsum_b = gather_rows(&add(&eu, &hu), &batch_users);
    let mut modality = Vec::new();
    if cfg.modality_bpr > 0.0 {
        for mm in (0..2).filter(|&mm| g.features[mm].ncols() > 0) {
            let xhat = projected(p, g, cfg, mm);
            let (yp, yn) = (gather_rows(&xhat, &batch_pos), gather_rows(&xhat, &batch_neg));
            let (l, dx, dyp, dyn_) = losses::bpr_rows(&zsum_b, &yp, &yn, cfg.modality_bpr);
            terms.modality += cfg.modality_bpr * l;
            modality.push((mm, dx, dyp, dyn_));
        }
    }
    for (name, v) in terms.named() {
        if !v.is_finite() {
            return Err(RefError::Numeric(format!("loss term {name} is {v}")));
        }
    }

    // Backward.
    let mut gr = p.zeros_like();
    let (mut d_eu, mut d_ei) = (Mat::zeros(m, d), Mat::zeros(n, d));
    let (mut d_hu, mut d_hi) = (Mat::zeros(m, d), Mat::zeros(n, d));
    for (v, ((xu, xi), (pos, neg))) in views.iter().zip(&view_scores).enumerate() {
        let (mut d_xu, mut d_xi) = (Mat::zeros(m, d), Mat::zeros(n, d));
        let (d_pos, d_neg) = losses::bpr_backward(pos, neg, 1.0);
        it::scores_backward(xu, xi, &pos_pairs, &d_pos, &mut d_xu, &mut d_xi);
        it::scores_backward(xu, xi, &neg_pairs, &d_neg, &mut d_xu, &mut d_xi);
        // Eq. (17): z = e + h sends d_z to both views; a late-fused branch only to its own.
        if cfg.dual_fusion || v == 0 {
            add_assign(&mut d_eu, &d_xu);
            add_assign(&mut d_ei, &d_xi);
        }
        if cfg.dual_fusion || v == 1 {
            add_assign(&mut d_hu, &d_xu);
            add_assign(&mut d_hi, &d_xi);
        }
    }
    for (mm, dx, dyp, dyn_) in &modality {
        scatter_add_rows(&mut d_eu, &batch_users, dx);
        scatter_add_rows(&mut d_hu, &batch_users, dx);
        let mut d_xhat = Mat::zeros(n, d);
        scatter_add_rows(&mut d_xhat, &batch_pos, dyp);
        scatter_add_rows(&mut d_xhat, &batch_neg, dyn_);
        projected_backward(p, g, cfg, *mm, &d_xhat, &mut gr);
    }
    if let Some((_, cu, ae, ah, _, ci, be, bh)) = &cl {
        let (da, dh) = losses::info_nce_backward(ae, ah, cfg.tau, cu, beta);
        scatter_add_rows(&mut d_eu, &users, &da);
        scatter_add_rows(&mut d_hu, &users, &dh);
        let (da, dh) = losses::info_nce_backward(be, bh, cfg.tau, ci, beta);
        scatter_add_rows(&mut d_ei, &items, &da);
        scatter_add_rows(&mut d_hi, &items, &dh);
    }
    if let Some(s_tilde) = &fw.item_graph {
        if cfg.user_semantic {
            add_assign(&mut d_hi, &it::user_semantic_backward(&g.a, &d_hu));
        }
        let (d_h0, d_vals) = it::propagate_backward(s_tilde, &fw.hs, &d_hi);
        match cfg.item_graph_input {
            ItemGraphInput::Readout => add_assign(&mut d_ei, &d_h0),
            ItemGraphInput::Embeddings => add_assign(&mut gr.item_emb, &d_h0),
            ItemGraphInput::Attention => {
                let caches = fw.attention.as_ref().expect("attention cache present");
                let d_y = scale(&d_h0, 1.0 / caches.len() as f64);
                for (mm, c, xhat) in caches {
                    let (d_x, dw, db) = crate::attention::mha_backward(&p.mha_params(cfg.attention_heads), c, &d_y);
                    for k in 0..4 {
                        add_assign(&mut gr.mha_w[k], &dw[k]);
                        add_assign(&mut gr.mha_b[k], &db[k]);
                    }
                    let d_xhat = if cfg.uses_attention_projection() {
                        let (d_q, d_qb) = up::project_backward(xhat, &d_x);
                        add_assign(&mut gr.mha_proj[*mm], &d_q);
                        add_assign(&mut gr.mha_proj_bias[*mm], &d_qb);
                        mm_nt(&d_x, &p.mha_proj[*mm])
                    } else {
                        d_x
                    };
                    projected_backward(p, g, cfg, *mm, &d_xhat, &mut gr);
                }
            }
        }
        if let Some(fc) = &fw.features {
            build_item_graph_backward(p, g, cfg, s_tilde, fc, &d_vals, &mut gr);
        }
    }
    let d_e = vcat(&d_eu, &d_ei);
    let (d_h0, d_ws) = ig::gcn_backward(&fw.adj, &gcn_weights(p, cfg), cfg.sigma, cfg.readout, &fw.gcn, &d_e);
    let (d_user, d_item) = vsplit(&d_h0, m);
    add_assign(&mut gr.user_emb, &d_user);
    add_assign(&mut gr.item_emb, &d_item);
    for (acc, dw) in gr.w_gcn.iter_mut().zip(&d_ws) {
        add_assign(acc, dw);
    }
    match cfg.regularisation {
        Regularisation::BatchEmbeddings => losses::batch_sq_norm_backward(
            &p.user_emb,
            &p.item_emb,
            &batch.triplets,
            cfg.lambda,
            &mut gr.user_emb,
            &mut gr.item_emb,
        ),
        Regularisation::BatchNorms => losses::batch_norms_backward(
            &p.user_emb,
            &p.item_emb,
            &batch.triplets,
            cfg.lambda,
            &mut gr.user_emb,
            &mut gr.item_emb,
        ),
        Regularisation::AllParameters => {
            let twice: Vec<Mat<f64>> = p.tensors().iter().map(|(_, t)| scale(t, 2.0 * cfg.lambda)).collect();
            for ((_, acc), t) in gr.tensors_mut().into_iter().zip(&twice) {
                add_assign(acc, t);
            }
        }
    }
    Ok(LossAndGrads { loss: terms.total(), terms, grads: gr, forward: fw })
}
