//! The whole model: gradient of the total loss wrt every parameter tensor, for every switch
//! that changes the computation, on three tiny random graphs each; init and Adam.

mod common;
use common::*;
use crane_reference::config::*;
use crane_reference::fd::{numeric_grad, rel_error, TOLERANCE};
use crane_reference::init::{xavier_uniform, Adam, Dims};
use crane_reference::model::{forward, loss_and_grads, Params};
use crane_reference::RefError;

/// Seeds of the three tiny graphs each variant is checked on. A seed whose inputs land within
/// KINK_MARGIN of a kink is replaced by the next one (at most 200 tries), never tolerated.
const GRAPH_SEEDS: [u64; 3] = [11, 2024, 777_777];

fn check_model_grads(cfg: &ModelConfig, fixed_graph: bool) {
    check_model_grads_with_zero_rows(cfg, fixed_graph, &[]);
}

/// [`check_model_grads`] with the feature rows `(modality, item)` set to zero (an item without
/// a picture): features are inputs, so every parameter's gradient stays checkable.
fn check_model_grads_with_zero_rows(cfg: &ModelConfig, fixed_graph: bool, zero_rows: &[(usize, usize)]) {
    let mut checked = 0;
    for &base in &GRAPH_SEEDS {
        let mut seed = base;
        let (p, batch, mut g) = loop {
            let (mut p, batch, mut g) = tiny_case(seed, cfg);
            for &(m, i) in zero_rows {
                for c in 0..g.features[m].ncols() {
                    g.features[m][(i, c)] = 0.0;
                }
            }
            if !zero_rows.is_empty() && cfg.item_graph_source == ItemGraphSource::Learned {
                // Init's zero projection bias would make the item's X̂^m row exactly 0, where
                // RCA's ReLU sits on its kink for every perturbation of that bias (pre = C X W_a
                // with C = tanh(0) = 0): a kink of Eq. (11), not of Eq. (14). Training moves the
                // bias off 0 at its first step; so do we. (FREEDOM has no RCA, and its bias
                // gradient is 0 by structure: a non-zero bias would only add round-off to it.)
                for m in 0..2 {
                    let b = &mut p.proj_bias[m];
                    *b = faer::Mat::from_fn(b.nrows(), b.ncols(), |i, j| 0.1 + 0.05 * ((i + 3 * j + m) % 5) as f64);
                }
            }
            if fixed_graph {
                let fw = forward(&p, &g, cfg).unwrap();
                g.fixed_item_graph = fw.item_graph;
            }
            let out = loss_and_grads(&p, &batch, &g, cfg).unwrap();
            if out.forward.kink_margin > KINK_MARGIN {
                break (p, batch, g);
            }
            seed += 1;
            assert!(seed < base + 200, "no kink-free graph near seed {base}");
        };
        let out = loss_and_grads(&p, &batch, &g, cfg).unwrap();
        assert!(out.loss.is_finite());
        let analytic = out.grads.tensors();
        for (k, (name, x0)) in p.tensors().into_iter().enumerate() {
            let numeric = numeric_grad(x0, |v| {
                let mut q = p.clone();
                *q.tensors_mut()[k].1 = v.clone();
                loss_and_grads(&q, &batch, &g, cfg).unwrap().loss
            });
            let structural_zero = name == "mha.b_k"
                || (["mha.b_v", "mha.b_o"].contains(&name.as_str()) && !cfg.uses_contrastive() && cfg.lambda == 0.0);
            if structural_zero {
                // Softmax ignores the key bias (it shifts a whole row of scores by q·b_k); with
                // row-stochastic attention and S, b_v and b_o add one constant vector to every
                // item, which BPR's differences cancel. The gradient is exactly zero, where a
                // relative error would compare two round-offs.
                assert!(crane_reference::dense::max_abs(analytic[k].1) < 1e-14, "seed {seed}: {name} not zero");
                assert!(crane_reference::dense::max_abs(&numeric) < 1e-9, "seed {seed}: numeric {name} not zero");
                continue;
            }
            let err = rel_error(analytic[k].1, &numeric);
            assert!(
                err <= TOLERANCE,
                "seed {seed}, {name}: relative error {err:.3e}\nanalytic {:?}\nnumeric {numeric:?}",
                analytic[k].1
            );
        }
        checked += 1;
        g.fixed_item_graph = None;
    }
    assert_eq!(checked, 3);
}

macro_rules! model_variant {
    ($name:ident, $fixed:expr, $($field:ident : $value:expr),* $(,)?) => {
        #[test]
        fn $name() {
            let cfg = ModelConfig { $($field: $value,)* ..tiny_config() };
            check_model_grads(&cfg, $fixed);
        }
    };
}

model_variant!(model_grad_matches_fd_default, false,);
model_variant!(model_grad_matches_fd_leaky_relu_sigma, false, sigma: Sigma::LeakyRelu(0.2));
model_variant!(model_grad_matches_fd_last_layer_readout, false, readout: Readout::Last);
model_variant!(model_grad_matches_fd_average_profiles, false, aggregation: Aggregation::Average);
model_variant!(model_grad_matches_fd_max_profiles, false, aggregation: Aggregation::Max);
model_variant!(model_grad_matches_fd_attention_profiles, false, aggregation: Aggregation::Attention);
model_variant!(model_grad_matches_fd_fusion_concat_wo_attention, false, fusion: Fusion::Concat);
model_variant!(model_grad_matches_fd_fusion_sum, false, fusion: Fusion::Sum);
model_variant!(model_grad_matches_fd_fusion_visual_only, false, fusion: Fusion::Visual);
model_variant!(model_grad_matches_fd_fusion_text_only, false, fusion: Fusion::Text);
model_variant!(model_grad_matches_fd_fusion_average_graphs, false, fusion: Fusion::AverageGraphs);
model_variant!(model_grad_matches_fd_wo_rca_single_round, false, rounds: 1);
model_variant!(model_grad_matches_fd_wo_item_graph, false, item_graph: false);
model_variant!(model_grad_matches_fd_wo_cl, false, contrastive: false);
model_variant!(model_grad_matches_fd_wo_gcn, false, ui_layers: 0, ii_layers: 0);
model_variant!(model_grad_matches_fd_two_item_layers, false, ii_layers: 2);
model_variant!(model_grad_matches_fd_fixed_item_graph, true,);
model_variant!(model_grad_matches_fd_all_parameter_l2, false, regularisation: Regularisation::AllParameters);
model_variant!(model_grad_matches_fd_freedom_sampler_kept_degrees, false,
    drop_edge: DropEdge::Freedom { keep_ratio: 0.7 }, degree_source: DegreeSource::KeptGraph);
model_variant!(model_grad_matches_fd_no_drop_edge, false, drop_edge: DropEdge::Off);
model_variant!(model_grad_matches_fd_rescaled_drop_edge, false, drop_edge: DropEdge::BernoulliRescaled);
model_variant!(model_grad_matches_fd_weightless_lightgcn_propagation, false, gcn_weights: false);
model_variant!(model_grad_matches_fd_literal_unscaled_rca, false, rca_scale: RcaScale::None);

model_variant!(model_grad_matches_fd_mmrec_unsquared_norm_penalty, false, regularisation: Regularisation::BatchNorms);
model_variant!(model_grad_matches_fd_wo_dual_fusion_late_fusion, false, dual_fusion: false);
model_variant!(model_grad_matches_fd_modality_bpr_on_learned_graph, false, feature_dim: 4, modality_bpr: 0.5);
model_variant!(model_grad_matches_fd_authors_code_attention, false,
    item_graph_source: ItemGraphSource::RawFeatures { image_weight: 0.1 },
    item_graph_input: ItemGraphInput::Attention, attention_heads: 2, user_semantic: false, contrastive: false,
    feature_dim: 4, gcn_weights: false, regularisation: Regularisation::BatchNorms, lambda: 0.0,
    drop_edge: DropEdge::Freedom { keep_ratio: 0.7 }, degree_source: DegreeSource::KeptGraph);
model_variant!(model_grad_matches_fd_freedom_baseline, false,
    item_graph_source: ItemGraphSource::RawFeatures { image_weight: 0.1 },
    item_graph_input: ItemGraphInput::Embeddings, user_semantic: false, contrastive: false,
    feature_dim: 4, modality_bpr: 0.3, gcn_weights: false, regularisation: Regularisation::BatchNorms,
    drop_edge: DropEdge::Freedom { keep_ratio: 0.7 }, degree_source: DegreeSource::KeptGraph);
// Issue 25: the raw feature tables as parameters (`train_features`), and the authors' second
// projection before the attention (`attention_projection`): every entry of X^m, Q_m and q_m is
// checked like any other weight.
model_variant!(model_grad_matches_fd_trained_features, false, train_features: true);
model_variant!(model_grad_matches_fd_trained_features_average_graphs, false, train_features: true,
    fusion: Fusion::AverageGraphs);
model_variant!(model_grad_matches_fd_freedom_trained_features, false,
    item_graph_source: ItemGraphSource::RawFeatures { image_weight: 0.1 },
    item_graph_input: ItemGraphInput::Embeddings, user_semantic: false, contrastive: false,
    feature_dim: 4, modality_bpr: 0.3, gcn_weights: false, regularisation: Regularisation::BatchNorms,
    drop_edge: DropEdge::Freedom { keep_ratio: 0.7 }, degree_source: DegreeSource::KeptGraph, train_features: true);
model_variant!(model_grad_matches_fd_authors_code_two_projections_trained_features, false,
    item_graph_source: ItemGraphSource::RawFeatures { image_weight: 0.1 },
    item_graph_input: ItemGraphInput::Attention, attention_heads: 2, user_semantic: false, contrastive: false,
    feature_dim: 4, gcn_weights: false, regularisation: Regularisation::BatchNorms, lambda: 0.0,
    drop_edge: DropEdge::Freedom { keep_ratio: 0.7 }, degree_source: DegreeSource::KeptGraph,
    attention_projection: true, train_features: true);
model_variant!(model_grad_matches_fd_authors_code_two_projections, false,
    item_graph_source: ItemGraphSource::RawFeatures { image_weight: 0.1 },
    item_graph_input: ItemGraphInput::Attention, attention_heads: 2, user_semantic: false, contrastive: false,
    feature_dim: 4, gcn_weights: false, regularisation: Regularisation::BatchNorms, lambda: 0.0,
    drop_edge: DropEdge::Freedom { keep_ratio: 0.7 }, degree_source: DegreeSource::KeptGraph,
    attention_projection: true);

/// With `train_features` the tables are parameters that start at the data's values and are the
/// forward's only source: moving a table entry changes the loss, moving the data's copy does not
/// (the frozen raw-feature graph aside, which both codes build once from the initial tables).
#[test]
fn model_trained_features_replace_the_data_tables() {
    let cfg = ModelConfig { train_features: true, ..tiny_config() };
    let (p, batch, g) = tiny_case(GRAPH_SEEDS[0], &cfg);
    assert_eq!(p.features[0], g.features[0]);
    assert_eq!(p.features[1], g.features[1]);
    let base = loss_and_grads(&p, &batch, &g, &cfg).unwrap().loss;
    let mut g2 = g.clone();
    g2.features[0][(0, 0)] += 1.0;
    assert_eq!(loss_and_grads(&p, &batch, &g2, &cfg).unwrap().loss, base);
    let mut p2 = p.clone();
    p2.features[0][(0, 0)] += 1.0;
    assert_ne!(loss_and_grads(&p2, &batch, &g, &cfg).unwrap().loss, base);
    // Without the switch there are no table parameters, and a table of the wrong shape is refused.
    let off = tiny_config();
    let (q, _, _) = tiny_case(GRAPH_SEEDS[0], &off);
    assert_eq!((q.features[0].nrows(), q.features[0].ncols()), (0, 0));
    let mut bad = p.clone();
    bad.features[1] = faer::Mat::zeros(2, 2);
    match loss_and_grads(&bad, &batch, &g, &cfg) {
        Err(RefError::Shape(why)) => assert!(why.contains("train_features"), "{why}"),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

/// The second projection draws its weights after every other tensor, so switching it on leaves
/// the other tensors' initial values as they were (runs made before it stay reproducible).
#[test]
fn model_second_projection_keeps_the_other_tensors_initial_values() {
    let base = ModelConfig {
        item_graph_source: ItemGraphSource::RawFeatures { image_weight: 0.1 },
        item_graph_input: ItemGraphInput::Attention,
        attention_heads: 1,
        feature_dim: 4,
        ..tiny_config()
    };
    let dims = Dims { n_users: 7, n_items: 9, d_visual: 6, d_text: 5 };
    let a = Params::init(&base, dims, 5);
    let b = Params::init(&ModelConfig { attention_projection: true, ..base.clone() }, dims, 5);
    for ((na, ta), (nb, tb)) in a.tensors().into_iter().zip(b.tensors()) {
        assert_eq!(na, nb);
        if !na.starts_with("mha_proj") {
            assert_eq!(ta, tb, "{na}");
        }
    }
    assert_eq!((b.mha_proj[0].nrows(), b.mha_proj[0].ncols()), (4, 4));
    assert_eq!((b.mha_proj_bias[1].nrows(), b.mha_proj_bias[1].ncols()), (1, 4));
    assert_eq!((a.mha_proj[0].nrows(), a.mha_proj[0].ncols()), (0, 0));
    // Unused weights are [0, 0], biases included (a [1, 0] bias would be a tensor that exists).
    for t in a.mha_proj_bias.iter().chain(&Params::init(&tiny_config(), dims, 5).mha_b) {
        assert_eq!((t.nrows(), t.ncols()), (0, 0));
    }
    for (w, bias) in a.mha_w.iter().zip(&a.mha_b) {
        assert_eq!(((w.nrows(), w.ncols()), (bias.nrows(), bias.ncols())), ((4, 4), (1, 4)));
    }
}

/// `init = "torch_defaults"`: the bounds PyTorch documents (and, checked by hand with torch
/// 2.15: `nn.Linear(4096, 64)` max |w| 0.015625 = 1/√4096, `nn.MultiheadAttention(64, 4)`
/// max |in_proj_weight| 0.15309 = √(6/256), max |out_proj.weight| 0.125 = 1/√64, zero attention
/// biases), reached by rescaling the same draws, so every other tensor keeps its value.
#[test]
fn init_torch_defaults_uses_pytorchs_bounds_and_keeps_the_other_draws() {
    let base = ModelConfig {
        item_graph_source: ItemGraphSource::RawFeatures { image_weight: 0.1 },
        item_graph_input: ItemGraphInput::Attention,
        attention_heads: 2,
        attention_projection: true,
        feature_dim: 8,
        embedding_dim: 8,
        ..tiny_config()
    };
    let dims = Dims { n_users: 7, n_items: 9, d_visual: 300, d_text: 40 };
    let x = Params::init(&base, dims, 3);
    let t = Params::init(&ModelConfig { init: Init::TorchDefaults, ..base.clone() }, dims, 3);
    let max_abs = |m: &faer::Mat<f64>| crane_reference::dense::max_abs(m);
    // (tensor, bound): U(±bound) must be respected and nearly reached (hundreds of draws).
    let linear = |fan_in: usize| 1.0 / (fan_in as f64).sqrt();
    let in_proj = (6.0f64 / (4.0 * 8.0)).sqrt();
    let cases: Vec<(&str, &faer::Mat<f64>, f64)> = vec![
        ("P_v", &t.proj[0], linear(300)),
        ("P_t", &t.proj[1], linear(40)),
        ("p_v", &t.proj_bias[0], linear(300)),
        ("p_t", &t.proj_bias[1], linear(40)),
        ("W_q", &t.mha_w[0], in_proj),
        ("W_k", &t.mha_w[1], in_proj),
        ("W_v", &t.mha_w[2], in_proj),
        ("W_o", &t.mha_w[3], linear(8)),
        ("Q_v", &t.mha_proj[0], linear(8)),
        ("q_t", &t.mha_proj_bias[1], linear(8)),
    ];
    for (name, m, bound) in cases {
        let reach = if m.nrows() == 1 { 0.6 } else { 0.9 };
        assert!(max_abs(m) <= bound && max_abs(m) > reach * bound, "{name}: max |w| {} vs bound {bound}", max_abs(m));
    }
    assert!(t.mha_b.iter().all(|b| max_abs(b) == 0.0), "attention biases start at zero, as torch's");
    assert_eq!((x.user_emb.clone(), x.item_emb.clone()), (t.user_emb.clone(), t.item_emb.clone()));
    let ratio = linear(300) / crane_reference::init::xavier_bound(300, 8);
    assert!(max_abs(&crane_reference::dense::zip(&t.proj[0], &x.proj[0], |a, b| a - ratio * b)) < 1e-15);
    assert!(x.proj_bias.iter().all(|b| max_abs(b) == 0.0), "Xavier: zero biases");
    // A missing modality (no text file: width 0) has no layer and nothing to draw (torch's
    // `Linear` skips a fan_in-0 bias too); the image layer is drawn as ever.
    let no_text = Params::init(&t_cfg(&base), Dims { d_text: 0, ..dims }, 3);
    assert_eq!((no_text.proj[1].nrows(), max_abs(&no_text.proj_bias[1])), (0, 0.0));
    let b = max_abs(&no_text.proj_bias[0]);
    assert!(b > 0.0 && b <= linear(300), "image bias {b}");
}

fn t_cfg(base: &ModelConfig) -> ModelConfig {
    ModelConfig { init: Init::TorchDefaults, ..base.clone() }
}

/// Zero feature rows (SPEC.md, Eq. 14): the learned graph of the paper (X_att's row of the item
/// stays non-zero through the other modality and the user side), and FREEDOM's frozen graph
/// with the item zero in one modality (it keeps the other's neighbours) and in both (an empty
/// row: its h is 0).
#[test]
fn model_grad_matches_fd_default_with_a_zero_image_row() {
    check_model_grads_with_zero_rows(&tiny_config(), false, &[(0, 3)]);
}

fn freedom_config() -> ModelConfig {
    ModelConfig {
        item_graph_source: ItemGraphSource::RawFeatures { image_weight: 0.1 },
        item_graph_input: ItemGraphInput::Embeddings,
        user_semantic: false,
        contrastive: false,
        feature_dim: 4,
        modality_bpr: 0.3,
        gcn_weights: false,
        regularisation: Regularisation::BatchNorms,
        drop_edge: DropEdge::Freedom { keep_ratio: 0.7 },
        degree_source: DegreeSource::KeptGraph,
        ..tiny_config()
    }
}

#[test]
fn model_grad_matches_fd_freedom_baseline_with_a_zero_image_row() {
    check_model_grads_with_zero_rows(&freedom_config(), false, &[(0, 3)]);
}

#[test]
fn model_grad_matches_fd_freedom_baseline_with_an_item_zero_in_both_modalities() {
    let cfg = freedom_config();
    check_model_grads_with_zero_rows(&cfg, false, &[(0, 3), (1, 3)]);
    let (p, _, mut g) = tiny_case(GRAPH_SEEDS[0], &cfg);
    for m in 0..2 {
        for c in 0..g.features[m].ncols() {
            g.features[m][(3, c)] = 0.0;
        }
    }
    let fw = forward(&p, &g, &cfg).unwrap();
    let s = fw.item_graph.unwrap();
    assert!(crane_reference::dense::row_cols(&s, 3).is_empty());
    assert!(s.col_indices().iter().all(|&j| j != 3));
}

#[test]
fn model_fixed_item_graph_sends_no_gradient_to_the_feature_branch() {
    let cfg = tiny_config();
    let (p, batch, mut g) = tiny_case(5, &cfg);
    let learned = loss_and_grads(&p, &batch, &g, &cfg).unwrap();
    g.fixed_item_graph = learned.forward.item_graph.clone();
    let fixed = loss_and_grads(&p, &batch, &g, &cfg).unwrap();
    assert_eq!(learned.loss, fixed.loss, "same graph, same loss");
    for (name, t) in fixed.grads.tensors() {
        let zero = t.nrows() == 0 || crane_reference::dense::max_abs(t) == 0.0;
        let feature_branch =
            ["proj", "w_tr", "b_tr", "w_m", "w_a", "w_f", "att", "mha", "features"].iter().any(|s| name.starts_with(s));
        assert_eq!(zero, feature_branch, "{name}");
    }
    // The learned graph does send gradient into RCA.
    assert!(crane_reference::dense::max_abs(&learned.grads.w_tr) > 0.0);
}

#[test]
fn model_loss_and_grads_is_deterministic() {
    let cfg = tiny_config();
    let (p, batch, g) = tiny_case(99, &cfg);
    let a = loss_and_grads(&p, &batch, &g, &cfg).unwrap();
    let b = loss_and_grads(&p, &batch, &g, &cfg).unwrap();
    assert_eq!(a.loss, b.loss);
    assert_eq!(a.grads, b.grads);
}

#[test]
fn model_rejects_bad_inputs_with_named_errors() {
    let cfg = tiny_config();
    let (p, batch, g) = tiny_case(3, &cfg);
    let too_big_k = ModelConfig { knn_k: 10, ..cfg.clone() };
    match loss_and_grads(&p, &batch, &g, &too_big_k) {
        Err(RefError::Config { field, .. }) => assert_eq!(field, "knn_k"),
        other => panic!("expected a knn_k error, got {other:?}"),
    }
    // Each index out of range alone (7 users, 9 items).
    for bad in [(7, 0, 1), (0, 9, 1), (0, 1, 9)] {
        let mut b = batch.clone();
        b.triplets.push(bad);
        let err = loss_and_grads(&p, &b, &g, &cfg).unwrap_err();
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    let err = loss_and_grads(&p, &crane_reference::Batch { triplets: vec![] }, &g, &cfg).unwrap_err();
    assert!(err.to_string().contains("empty batch"));
}

#[test]
fn model_xavier_init_is_deterministic_and_bounded() {
    let cfg = tiny_config();
    let dims = Dims { n_users: 7, n_items: 9, d_visual: 6, d_text: 5 };
    let a = Params::init(&cfg, dims, 42);
    assert_eq!(a, Params::init(&cfg, dims, 42));
    assert_ne!(a, Params::init(&cfg, dims, 43));
    for (name, t) in a.tensors() {
        if name.contains("bias") || name == "b_tr" {
            assert_eq!(crane_reference::dense::max_abs(t), 0.0, "{name} starts at zero");
            continue;
        }
        let bound = (6.0 / (t.nrows() + t.ncols()) as f64).sqrt();
        assert!(crane_reference::dense::max_abs(t) < bound, "{name}");
    }
    // Uniform on (-a, a): the sample variance of many draws is close to a²/3.
    let mut r = rng(1);
    let big = xavier_uniform(300, 200, &mut r);
    let a2 = 6.0 / 500.0;
    let var = crane_reference::dense::sq_norm(&big) / 60_000.0;
    assert!((var - a2 / 3.0).abs() < 0.02 * a2 / 3.0, "variance {var} vs {}", a2 / 3.0);
}

#[test]
fn model_adam_first_step_moves_each_weight_by_lr_against_its_gradient_sign() {
    let cfg = tiny_config();
    let (mut p, batch, g) = tiny_case(8, &cfg);
    let before = p.clone();
    let out = loss_and_grads(&p, &batch, &g, &cfg).unwrap();
    let mut adam = Adam::new(&p, 1e-3);
    adam.step(&mut p, &out.grads);
    for (((name, a), (_, b)), (_, gr)) in before.tensors().into_iter().zip(p.tensors()).zip(out.grads.tensors()) {
        for j in 0..a.ncols() {
            for i in 0..a.nrows() {
                let gi = gr[(i, j)];
                let step = b[(i, j)] - a[(i, j)];
                if gi.abs() > 1e-6 {
                    // m̂ = g, v̂ = g²: the step is lr · g/(|g| + ε) ≈ lr · sign(g) (Kingma & Ba's
                    // first step, PyTorch's form), to round-off: ε's sign changes it by
                    // 2 lr ε/|g| ≥ 2e-11 here, far above the 1e-12 allowed.
                    assert!((step + 1e-3 * gi.signum()).abs() < 1e-7, "{name}[{i},{j}]: step {step}, grad {gi}");
                    let want = -1e-3 * gi / (gi.abs() + 1e-8);
                    assert!((step - want).abs() < 1e-12, "{name}[{i},{j}]: step {step} vs {want}");
                } else if gi == 0.0 {
                    assert_eq!(step, 0.0);
                }
            }
        }
    }
    // Three steps lower the loss on this batch.
    for _ in 0..2 {
        let out = loss_and_grads(&p, &batch, &g, &cfg).unwrap();
        adam.step(&mut p, &out.grads);
    }
    let after = loss_and_grads(&p, &batch, &g, &cfg).unwrap().loss;
    assert!(after < out.loss, "loss {after} after 3 steps vs {} before", out.loss);
}

/// Parameters, one batch's gradient, the same gradient with its first non-zero tensor zeroed
/// (the one that sits out), and that tensor's name.
fn idle_case() -> (Params, Params, Params, String) {
    let cfg = tiny_config();
    let (p0, batch, g) = tiny_case(8, &cfg);
    let grads = loss_and_grads(&p0, &batch, &g, &cfg).unwrap().grads;
    let nonzero = |t: &faer::Mat<f64>| (0..t.ncols()).any(|j| t.col_as_slice(j).iter().any(|&x| x.abs() > 1e-6));
    let idle = grads.tensors().into_iter().find(|(_, t)| nonzero(t)).map(|(n, _)| n).unwrap();
    let mut quiet = grads.clone();
    for (n, t) in quiet.tensors_mut() {
        if n == idle {
            *t = faer::Mat::zeros(t.nrows(), t.ncols());
        }
    }
    (p0, grads, quiet, idle)
}

/// One Adam step, skipping tensors without gradient or not.
fn adam_step(adam: &mut Adam, p: &mut Params, g: &Params, skip: bool) {
    if skip {
        adam.step_skipping_idle(p, g)
    } else {
        adam.step(p, g)
    }
}

/// Every entry with a gradient g moved by Adam's step at lr 1e-3 with moments m·g and v·g²
/// after t steps: −lr · (m g / (1 − 0.9ᵗ)) / (√(v g² / (1 − 0.999ᵗ)) + ε), to 1e-9.
fn assert_adam_moves(
    what: &str,
    before: &faer::Mat<f64>,
    after: &faer::Mat<f64>,
    gr: &faer::Mat<f64>,
    mvt: (f64, f64, i32),
) {
    let (m, v, t) = mvt;
    let (c1, c2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.999f64.powi(t));
    for j in 0..after.ncols() {
        for i in 0..after.nrows() {
            let gi = gr[(i, j)];
            if gi.abs() > 1e-6 {
                let want = -1e-3 * (m * gi / c1) / ((v * gi * gi / c2).sqrt() + 1e-8);
                let moved = after[(i, j)] - before[(i, j)];
                assert!((moved - want).abs() < 1e-9, "{what}[{i},{j}]: step {moved} vs {want}");
            }
        }
    }
}

/// `adam_idle = skip`: a tensor whose gradient is zero is left as it is, moments included, and
/// its own step count waits, so its first real step is Adam's first step, lr · g/(|g| + ε)
/// (Kingma & Ba's Algorithm 1 at t = 1); stepped with the zero gradients instead, the same
/// gradient at t = 3 moves it by lr · (0.1/0.271)/√(0.001/0.002997) ≈ 0.639 lr.
#[test]
fn model_adam_skipping_idle_leaves_the_tensor_and_its_first_real_step_is_adams_first() {
    let (p0, grads, quiet, idle) = idle_case();
    let get = |p: &Params| p.tensors().into_iter().find(|(n, _)| *n == idle).map(|(_, t)| t.clone()).unwrap();
    for skip in [true, false] {
        let mut p = p0.clone();
        let mut adam = Adam::new(&p, 1e-3);
        for _ in 0..2 {
            adam_step(&mut adam, &mut p, &quiet, skip);
        }
        assert_eq!(get(&p), get(&p0), "{idle}: no gradient, no move (skip: {skip})");
        let k = p0.tensors().iter().position(|(n, _)| *n == idle).unwrap();
        assert_eq!(adam.skipped[k], if skip { 2 } else { 0 }, "{idle}: steps sat out");
        let before = get(&p);
        adam_step(&mut adam, &mut p, &grads, skip);
        let (after, gr) = (get(&p), get(&grads));
        // m = 0.1 g and v = 0.001 g² either way (the zero steps leave zero moments); only the
        // bias correction's t differs: 1 against 3.
        let what = format!("{idle} (skip: {skip})");
        assert_adam_moves(&what, &before, &after, &gr, (0.1, 0.001, if skip { 1 } else { 3 }));
    }
}

/// `adam_idle = skip` keeps a sitting-out tensor's moments: one real step, two without
/// gradient, one real step with the same g. Skipped, the moments wait (m = 0.9·0.1g + 0.1g,
/// v = 0.999·0.001g² + 0.001g², t = 2); stepped, they decay meanwhile (m = 0.9³·0.1g + 0.1g,
/// v = 0.999³·0.001g² + 0.001g², t = 4): Kingma & Ba's recurrences written out by hand.
#[test]
fn model_adam_skipping_idle_keeps_the_moments_of_a_tensor_sitting_out() {
    let (p0, grads, quiet, idle) = idle_case();
    let get = |p: &Params| p.tensors().into_iter().find(|(n, _)| *n == idle).map(|(_, t)| t.clone()).unwrap();
    for skip in [true, false] {
        let mut p = p0.clone();
        let mut adam = Adam::new(&p, 1e-3);
        adam_step(&mut adam, &mut p, &grads, skip);
        let kept = (get(&p), get(&adam.m), get(&adam.v));
        for _ in 0..2 {
            adam_step(&mut adam, &mut p, &quiet, skip);
        }
        if skip {
            assert_eq!((get(&p), get(&adam.m), get(&adam.v)), kept, "{idle}: value and moments wait");
        }
        let before = get(&p);
        adam_step(&mut adam, &mut p, &grads, skip);
        let (after, gr) = (get(&p), get(&grads));
        let (m, v, t) = if skip {
            (0.9 * 0.1 + 0.1, 0.999 * 0.001 + 0.001, 2)
        } else {
            (0.9f64.powi(3) * 0.1 + 0.1, 0.999f64.powi(3) * 0.001 + 0.001, 4)
        };
        assert_adam_moves(&format!("{idle} (skip: {skip})"), &before, &after, &gr, (m, v, t));
    }
}

/// The authors' h^(0) with one modality absent (text width 0): the attention of the visual
/// modality alone, not averaged with anything: h_i = S̃ · MHA(X^v P_v + p_v), built here from
/// the parts (projection, attention, frozen graph) rather than through `forward`.
#[test]
fn model_attention_input_with_a_missing_modality_is_the_present_ones_attention() {
    use crane_reference::attention::{mha, MhaParams};
    use crane_reference::dense::{max_abs, spmm, vsplit, zip};
    use crane_reference::item_graph::raw_feature_graph;
    use crane_reference::model::Graph;
    let cfg = ModelConfig {
        item_graph_source: ItemGraphSource::RawFeatures { image_weight: 0.1 },
        item_graph_input: ItemGraphInput::Attention,
        attention_heads: 2,
        feature_dim: 4,
        user_semantic: false,
        contrastive: false,
        gcn_weights: false,
        ..tiny_config()
    };
    let (_, _, g0) = tiny_case(21, &cfg);
    let g = Graph::new(g0.a.clone(), [g0.features[0].clone(), faer::Mat::zeros(9, 0)]);
    let p = Params::init(&cfg, Dims { n_users: 7, n_items: 9, d_visual: 6, d_text: 0 }, 4);
    let fw = forward(&p, &g, &cfg).unwrap();
    let xhat = crane_reference::user_profiles::project(&g.features[0], &p.proj[0], &p.proj_bias[0]);
    let heads =
        MhaParams { w: std::array::from_fn(|k| &p.mha_w[k]), b: std::array::from_fn(|k| &p.mha_b[k]), heads: 2 };
    let (y, _) = mha(&xhat, &heads);
    let s = raw_feature_graph(&g.features, cfg.knn_k, 0.1).unwrap();
    let want = spmm(&s, &y);
    let (_, hi) = vsplit(&fw.h, 7);
    assert!(max_abs(&want) > 0.1, "a non-trivial case");
    assert!(max_abs(&zip(&hi, &want, |a, b| a - b)) < 1e-12);
}
