//! Model configuration: every switch of the paper's ablations and variants is a value here.
//!
//! Defaults are the Baby column of the paper's Table 3 (L_UI = 2, L_II = 1, R = 3, k = 15,
//! lr = 1e-4, λ = 1e-3, τ = 0.6, β = 0.8, d = 64) and the decisions recorded in SPEC.md.

use serde::{Deserialize, Serialize};

/// The activation σ of Eq. (3)-(4). The paper names σ but not which; LightGCN-family code uses
/// none, so identity is the default.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sigma {
    #[default]
    Identity,
    /// Leaky ReLU with the given negative slope.
    LeakyRelu(f64),
}

/// How the layers of Eq. (3)-(4) are read out into `e`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Readout {
    /// Mean of layers 0..=L_UI (LightGCN, the authors' code).
    #[default]
    Mean,
    /// The last layer only.
    Last,
}

/// User-profile aggregation of Eq. (5) and its Table 6 variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Eq. (5): sum over the user's training items (the paper's choice).
    #[default]
    Sum,
    /// Mean over the user's training items.
    Average,
    /// Elementwise maximum over the user's training items.
    Max,
    /// `Σ α_ui x_i` with `α_u = softmax_i(x_i · a_m)`, `a_m` a learned `[d_f, 1]` vector.
    Attention,
}

/// What the item-item graph of Eq. (14) is built from (Table 5 "w/o Attention" and Fig. 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// The paper: RCA (Eq. 7-13) on the stacked user and item profiles, then cosine of X_att.
    #[default]
    Rca,
    /// CRANE-C / "w/o Attention": concatenation of the projected features, no RCA.
    Concat,
    /// CRANE-S: elementwise sum of the projected features.
    Sum,
    /// CRANE-V: projected visual features only.
    Visual,
    /// CRANE-T: projected textual features only.
    Text,
    /// CRANE-A: mean of the visual and textual cosine matrices, then top-k.
    AverageGraphs,
}

/// The scale of `C^m X^m` in Eq. (11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RcaScale {
    /// `C X / (M+N)`: a mean over entities, so magnitudes do not grow with the dataset size
    /// or the round. The default: the literal sum saturates tanh after one round and makes the
    /// item graph noise (SPEC.md, Eq. (11)).
    #[default]
    Mean,
    /// `C X` exactly as Eq. (11) writes it.
    None,
}

/// The DropEdge sampler of Eq. (2).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DropEdge {
    /// Eq. (2): each edge kept independently with probability `1/sqrt(d_u d_i)`.
    #[default]
    Bernoulli,
    /// FREEDOM's pruning: keep `floor(E · keep_ratio)` edges sampled without replacement with
    /// weights `1/sqrt(d_u d_i)`.
    Freedom { keep_ratio: f64 },
    /// No dropping (evaluation, and an ablation).
    Off,
    /// Eq. (2) with inverted-dropout rescaling (a crane option, not the paper's): each edge kept
    /// with probability `P_ui = 1/sqrt(d_u d_i)`, as `Bernoulli` draws it, and weighted `1/P_ui`,
    /// so that `E[Ã_ui / P_ui] = 1` and the expected training operator is the scoring one (with
    /// the full graph's degrees).
    BernoulliRescaled,
}

/// Which degrees normalise Eq. (3)-(4) on the sampled graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DegreeSource {
    /// Degrees of the full training graph (the paper's 1/sqrt(d_u d_i) with Ã as a filter).
    #[default]
    FullGraph,
    /// Degrees recounted on the kept edges (FREEDOM's renormalisation).
    KeptGraph,
}

/// The λ‖Θ‖² term of Eq. (20).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Regularisation {
    /// Squared norms of the batch's layer-0 user, positive and negative embedding rows, one
    /// row per triplet, divided by the batch size (MMRec's convention, squared).
    #[default]
    BatchEmbeddings,
    /// MMRec's `EmbLoss` exactly: `(‖U_b‖ + ‖P_b‖ + ‖N_b‖) / B` with **unsquared** Frobenius
    /// norms of the `[B, d]` tables of the batch's layer-0 user, positive and negative rows
    /// (the BPR-MF and LightGCN baselines of Table 4).
    BatchNorms,
    /// Squared Frobenius norm of every parameter tensor.
    AllParameters,
}

/// Where the item-item graph S̃ comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ItemGraphSource {
    /// Eq. (5)-(14): learned from the projected features (through RCA or a fusion variant).
    #[default]
    Learned,
    /// FREEDOM's frozen graph: `S = w·kNN(X_v) + (1−w)·kNN(X_t)` on the **raw** features, each
    /// kNN the top-k cosine neighbours of a row (the item itself included, ties to the smaller
    /// id) with every kept entry `1/k` (FREEDOM's `D^-½ A D^-½` of a k-regular binary graph).
    /// A missing modality gives its weight to the other. No gradient reaches the features.
    RawFeatures { image_weight: f64 },
    /// FREEDOM's frozen graph built from per-modality kNN files instead of raw features
    /// (`<dir>/{image,text,audio}_knn_indices.npy`, int64 `[N, K]`, rows by decreasing
    /// similarity, the item itself included; see `crate::item_graph::fixed_knn_graph`):
    /// `S = w·B_v/k + (1−w)·B_t/k` with `B_m` row i = the first k ids of that file's row i,
    /// coinciding entries summed. The files follow the dataset's modality names (visual role
    /// first); `dir` is resolved against the dataset folder when relative. The model receives
    /// the built graph (`Graph::fixed_item_graph`); the reference cannot read files.
    Files { dir: String, image_weight: f64 },
}

/// h^(0) of Eq. (15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ItemGraphInput {
    /// Eq. (15): `h^(0) = e_i`, the readout of the interaction graph.
    #[default]
    Readout,
    /// `h^(0) = E_I`, the layer-0 item ID embeddings (FREEDOM).
    Embeddings,
    /// `h^(0) = ½(MHA(x̂^v) + MHA(x̂^t))`: one multi-head self-attention over all items with
    /// shared weights, per projected modality, averaged (the authors' released code; see
    /// `attention.rs`). Needs d_f = d.
    Attention,
}

/// How the linear layers are initialised ([`crate::init`]). ID embeddings and RCA's weights are
/// Xavier-uniform either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// Every weight Xavier-uniform, every bias zero (the paper, Section 4.1.3).
    #[default]
    Xavier,
    /// PyTorch's defaults for the layers the peers' code declares without an explicit init:
    /// `nn.Linear(fan_in, fan_out)` draws weight and bias from U(±1/√fan_in) (the projections
    /// `P_m`, `p_m` and the second projections `Q_m`, `q_m`); `nn.MultiheadAttention` draws its
    /// joint `in_proj_weight` `[3 d_f, d_f]` Xavier-uniform (so W_q, W_k, W_v from
    /// U(±√(6 / 4 d_f))), its `out_proj.weight` W_o from U(±1/√d_f), and zero biases. MMRec's
    /// FREEDOM and the authors' code initialise this way.
    TorchDefaults,
}

/// The model's hyper-parameters and variant switches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// d: ID embedding size.
    pub embedding_dim: usize,
    /// d_f: size each modality is projected to before Eq. (5) (Fig. 3 "dimension reduction").
    pub feature_dim: usize,
    /// Width of E' in Eq. (8).
    pub joint_dim: usize,
    /// L_UI: layers of Eq. (3)-(4).
    pub ui_layers: usize,
    /// L_II: layers of Eq. (15).
    pub ii_layers: usize,
    /// R: rounds of Algorithm 1.
    pub rounds: usize,
    /// k: neighbours kept per item in Eq. (14), the item itself included.
    pub knn_k: usize,
    /// τ of Eq. (19).
    pub tau: f64,
    /// β of Eq. (20).
    pub beta: f64,
    /// λ of Eq. (20).
    pub lambda: f64,
    pub sigma: Sigma,
    pub readout: Readout,
    pub aggregation: Aggregation,
    pub fusion: Fusion,
    pub drop_edge: DropEdge,
    pub degree_source: DegreeSource,
    pub regularisation: Regularisation,
    /// Table 5 "w/o Item Graph": when false, h = 0, z = e, and the contrastive terms vanish.
    pub item_graph: bool,
    /// Table 5 "w/o CL": when false, β is ignored.
    pub contrastive: bool,
    /// Scale of `C X` in Eq. (11).
    pub rca_scale: RcaScale,
    /// W^(l) in Eq. (3)-(4); false gives LightGCN's weightless propagation (W = I, no params).
    pub gcn_weights: bool,
    /// Where S̃ comes from (the paper's learned graph, or FREEDOM's frozen raw-feature graph).
    pub item_graph_source: ItemGraphSource,
    /// h^(0) of Eq. (15).
    pub item_graph_input: ItemGraphInput,
    /// Eq. (16): users collect their items' h. False gives `h_u = 0` (FREEDOM).
    pub user_semantic: bool,
    /// Table 5 "w/o Dual Fusion" when false: no z = e + h (Eq. 17); the collaborative and the
    /// semantic branch each get their own BPR term (`BPR(e) + BPR(h)`) and are late-fused at
    /// scoring, `ŷ = e_u·e_i + h_u·h_i`.
    pub dual_fusion: bool,
    /// FREEDOM's λ: weight of the modality BPR terms `BPR(z_u, x̂_i^m, x̂_j^m)` summed over the
    /// modalities present, with `x̂^m = X^m P_m + p_m` the projected features (d_f must equal d).
    pub modality_bpr: f64,
    /// Heads of the attention of `item_graph_input = "attention"` (d_f must divide by it).
    pub attention_heads: usize,
    /// The authors' code's second projection (`CrossModalAttention.visual_proj` /
    /// `textual_proj`): each projected modality `x̂^m` `[N, d_f]` goes through its own
    /// `d_f → d_f` linear layer with bias, `x̂^m Q_m + q_m`, before the attention of
    /// `item_graph_input = "attention"`. Off: the attention takes `x̂^m` itself. Without that
    /// attention it has nothing to project and is ignored.
    pub attention_projection: bool,
    /// The raw feature tables `X^m` `[N, d_m]` are parameters (initialised from the files and
    /// updated by Adam), as MMRec's FREEDOM and the authors' code train them
    /// (`nn.Embedding.from_pretrained(..., freeze=False)`): `dX^m = dX̂^m P_mᵀ`. Off: constants.
    /// A frozen raw-feature graph (`item_graph_source = raw_features`) is built from the
    /// initial tables either way, as both codes build it once at start.
    pub train_features: bool,
    /// Initialisation of the linear layers: the paper's Xavier, or PyTorch's defaults as the
    /// peers' code gets them.
    pub init: Init,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            embedding_dim: 64,
            feature_dim: 64,
            joint_dim: 64,
            ui_layers: 2,
            ii_layers: 1,
            rounds: 3,
            knn_k: 15,
            tau: 0.6,
            beta: 0.8,
            lambda: 1e-3,
            sigma: Sigma::Identity,
            readout: Readout::Mean,
            aggregation: Aggregation::Sum,
            fusion: Fusion::Rca,
            drop_edge: DropEdge::Bernoulli,
            degree_source: DegreeSource::FullGraph,
            regularisation: Regularisation::BatchEmbeddings,
            item_graph: true,
            contrastive: true,
            gcn_weights: true,
            rca_scale: RcaScale::Mean,
            item_graph_source: ItemGraphSource::Learned,
            item_graph_input: ItemGraphInput::Readout,
            user_semantic: true,
            dual_fusion: true,
            modality_bpr: 0.0,
            attention_heads: 4,
            attention_projection: false,
            train_features: false,
            init: Init::Xavier,
        }
    }
}

impl ModelConfig {
    /// Checks the values a user can get wrong; `n_items` bounds k.
    pub fn validate(&self, n_items: usize) -> Result<(), crate::RefError> {
        let bad = |field: &str, why: String| Err(crate::RefError::Config { field: field.into(), why });
        if self.embedding_dim == 0 {
            return bad("embedding_dim", "must be at least 1".into());
        }
        if self.feature_dim == 0 || self.joint_dim == 0 {
            return bad("feature_dim/joint_dim", "must be at least 1".into());
        }
        if self.item_graph && (self.knn_k == 0 || self.knn_k > n_items) {
            return bad("knn_k", format!("must be in 1..={n_items} (the number of items), got {}", self.knn_k));
        }
        if !(self.tau > 0.0 && self.tau.is_finite()) {
            return bad("tau", format!("must be a positive finite number, got {}", self.tau));
        }
        if !(self.beta >= 0.0 && self.lambda >= 0.0) {
            return bad("beta/lambda", "must be non-negative".into());
        }
        if let DropEdge::Freedom { keep_ratio } = self.drop_edge {
            if !(keep_ratio > 0.0 && keep_ratio <= 1.0) {
                return bad("drop_edge.keep_ratio", format!("must be in (0, 1], got {keep_ratio}"));
            }
        }
        if let ItemGraphSource::RawFeatures { image_weight } | ItemGraphSource::Files { image_weight, .. } =
            self.item_graph_source
        {
            if !(0.0..=1.0).contains(&image_weight) {
                return bad("item_graph_source.image_weight", format!("must be in [0, 1], got {image_weight}"));
            }
        }
        if !(self.modality_bpr >= 0.0 && self.modality_bpr.is_finite()) {
            return bad("modality_bpr", format!("must be a non-negative number, got {}", self.modality_bpr));
        }
        if self.modality_bpr > 0.0 && self.feature_dim != self.embedding_dim {
            return bad(
                "modality_bpr",
                format!(
                    "scores projected features against user embeddings, so feature_dim ({}) must equal \
                     embedding_dim ({})",
                    self.feature_dim, self.embedding_dim
                ),
            );
        }
        if self.item_graph_input == ItemGraphInput::Attention {
            if self.feature_dim != self.embedding_dim {
                return bad(
                    "item_graph_input",
                    format!(
                        "attention output is h^(0), so feature_dim ({}) must equal embedding_dim ({})",
                        self.feature_dim, self.embedding_dim
                    ),
                );
            }
            if self.attention_heads == 0 || self.feature_dim % self.attention_heads != 0 {
                return bad(
                    "attention_heads",
                    format!("must divide feature_dim ({}), got {}", self.feature_dim, self.attention_heads),
                );
            }
        }
        if self.uses_contrastive() && !self.user_semantic {
            return bad("user_semantic", "L_CL^U (Eq. 19) needs h_u: turn contrastive off or user_semantic on".into());
        }
        if let Sigma::LeakyRelu(s) = self.sigma {
            if !(0.0..1.0).contains(&s) {
                return bad("sigma.leaky_relu", format!("slope must be in [0, 1), got {s}"));
            }
        }
        Ok(())
    }

    /// Number of W^(l) tensors the parameters hold.
    pub fn n_gcn_weights(&self) -> usize {
        if self.gcn_weights {
            self.ui_layers
        } else {
            0
        }
    }

    /// Whether RCA (Eq. 5-13) is part of the model: the learned item graph with RCA fusion (its
    /// weights W_tr, b_tr, W_m, W_a, W_f exist).
    pub fn uses_rca(&self) -> bool {
        self.item_graph && self.item_graph_source == ItemGraphSource::Learned && self.fusion == Fusion::Rca
    }

    /// Whether the feature projections P_m, p_m are part of the model: some term reads the
    /// projected features (the learned graph, the authors' attention, FREEDOM's modality BPR).
    pub fn uses_projection(&self) -> bool {
        let graph_reads =
            self.item_graph_source == ItemGraphSource::Learned || self.item_graph_input == ItemGraphInput::Attention;
        (self.item_graph && graph_reads) || self.modality_bpr > 0.0
    }

    /// Whether the attention of the authors' code is part of the model (its weights exist).
    pub fn uses_attention(&self) -> bool {
        self.item_graph && self.item_graph_input == ItemGraphInput::Attention
    }

    /// Whether the second projection before the attention is part of the model (its weights exist).
    pub fn uses_attention_projection(&self) -> bool {
        self.attention_projection && self.uses_attention()
    }

    /// Whether the contrastive terms of Eq. (19) take part in the loss.
    pub fn uses_contrastive(&self) -> bool {
        self.contrastive && self.item_graph && self.beta > 0.0
    }
}
