//! The reference's config: `ModelConfig::validate` refuses each value a user can get wrong, at the
//! edge of its range and for that field alone; the `uses_*` predicates say which weights exist
//! (they decide the parameter set, so a wrong one adds or drops tensors silently). Each case
//! here changes one field of an otherwise valid config.

use crane_reference::config::*;

const N_ITEMS: usize = 20;

/// The field `validate` names for `cfg`, or `None` when it accepts it.
fn refused(cfg: &ModelConfig) -> Option<String> {
    match cfg.validate(N_ITEMS) {
        Ok(()) => None,
        Err(crane_reference::RefError::Config { field, .. }) => Some(field),
        Err(e) => panic!("not a config error: {e}"),
    }
}

fn base() -> ModelConfig {
    ModelConfig::default()
}

#[test]
fn config_validate_accepts_the_defaults_and_every_edge_inside_the_ranges() {
    let ok = [
        base(),
        ModelConfig { knn_k: N_ITEMS, ..base() },
        ModelConfig { knn_k: 1, ..base() },
        // k is only read with an item graph.
        ModelConfig { item_graph: false, contrastive: false, knn_k: 0, ..base() },
        ModelConfig { tau: 1e-9, ..base() },
        ModelConfig { beta: 0.0, lambda: 0.0, ..base() },
        ModelConfig { drop_edge: DropEdge::Freedom { keep_ratio: 1.0 }, ..base() },
        ModelConfig { drop_edge: DropEdge::Freedom { keep_ratio: 1e-6 }, ..base() },
        // Without modality BPR or the attention, d_f may differ from d.
        ModelConfig { feature_dim: 32, modality_bpr: 0.0, ..base() },
        ModelConfig { item_graph_input: ItemGraphInput::Attention, attention_heads: 64, ..base() },
        ModelConfig { sigma: Sigma::LeakyRelu(0.0), ..base() },
    ];
    for cfg in ok {
        assert_eq!(refused(&cfg), None, "{cfg:?}");
    }
}

#[test]
fn config_validate_refuses_each_bad_field_alone_naming_it() {
    let cases: Vec<(ModelConfig, &str)> = vec![
        (ModelConfig { embedding_dim: 0, ..base() }, "embedding_dim"),
        (ModelConfig { feature_dim: 0, ..base() }, "feature_dim/joint_dim"),
        (ModelConfig { joint_dim: 0, ..base() }, "feature_dim/joint_dim"),
        (ModelConfig { knn_k: 0, ..base() }, "knn_k"),
        (ModelConfig { knn_k: N_ITEMS + 1, ..base() }, "knn_k"),
        (ModelConfig { tau: 0.0, ..base() }, "tau"),
        (ModelConfig { tau: -0.5, ..base() }, "tau"),
        (ModelConfig { tau: f64::INFINITY, ..base() }, "tau"),
        (ModelConfig { tau: f64::NAN, ..base() }, "tau"),
        (ModelConfig { beta: -0.1, ..base() }, "beta/lambda"),
        (ModelConfig { lambda: -1e-3, ..base() }, "beta/lambda"),
        (ModelConfig { drop_edge: DropEdge::Freedom { keep_ratio: 0.0 }, ..base() }, "drop_edge.keep_ratio"),
        (ModelConfig { drop_edge: DropEdge::Freedom { keep_ratio: 1.01 }, ..base() }, "drop_edge.keep_ratio"),
        (ModelConfig { drop_edge: DropEdge::Freedom { keep_ratio: f64::NAN }, ..base() }, "drop_edge.keep_ratio"),
        (
            ModelConfig { item_graph_source: ItemGraphSource::RawFeatures { image_weight: 1.5 }, ..base() },
            "item_graph_source.image_weight",
        ),
        (ModelConfig { modality_bpr: -1e-4, ..base() }, "modality_bpr"),
        (ModelConfig { modality_bpr: 1e-4, feature_dim: 32, ..base() }, "modality_bpr"),
        (ModelConfig { item_graph_input: ItemGraphInput::Attention, feature_dim: 32, ..base() }, "item_graph_input"),
        (ModelConfig { item_graph_input: ItemGraphInput::Attention, attention_heads: 0, ..base() }, "attention_heads"),
        (ModelConfig { item_graph_input: ItemGraphInput::Attention, attention_heads: 3, ..base() }, "attention_heads"),
        (ModelConfig { user_semantic: false, ..base() }, "user_semantic"),
        (ModelConfig { sigma: Sigma::LeakyRelu(1.0), ..base() }, "sigma.leaky_relu"),
    ];
    for (cfg, field) in cases {
        assert_eq!(refused(&cfg).as_deref(), Some(field), "{cfg:?}");
    }
}

#[test]
fn config_uses_predicates_follow_each_switch() {
    // RCA's weights exist only for the learned graph fused by RCA.
    assert!(base().uses_rca());
    assert!(!ModelConfig { item_graph: false, ..base() }.uses_rca());
    assert!(!ModelConfig { item_graph_source: ItemGraphSource::RawFeatures { image_weight: 0.1 }, ..base() }.uses_rca());
    assert!(!ModelConfig { fusion: Fusion::Concat, ..base() }.uses_rca());
    // The projections exist where a term reads projected features.
    let frozen = ModelConfig { item_graph_source: ItemGraphSource::RawFeatures { image_weight: 0.1 }, ..base() };
    assert!(base().uses_projection());
    assert!(!frozen.uses_projection(), "a frozen raw-feature graph reads no projection");
    assert!(!ModelConfig { item_graph: false, ..base() }.uses_projection());
    assert!(ModelConfig { item_graph_input: ItemGraphInput::Attention, ..frozen.clone() }.uses_projection());
    assert!(!ModelConfig { item_graph: false, item_graph_input: ItemGraphInput::Attention, ..frozen.clone() }
        .uses_projection());
    assert!(ModelConfig { item_graph: false, modality_bpr: 1e-4, ..base() }.uses_projection());
    // The contrastive terms take part only with weight β > 0.
    assert!(base().uses_contrastive());
    assert!(!ModelConfig { beta: 0.0, ..base() }.uses_contrastive());
    assert!(!ModelConfig { contrastive: false, ..base() }.uses_contrastive());
    assert!(!ModelConfig { item_graph: false, ..base() }.uses_contrastive());
}

/// The reference's determinism rests on faer running single-threaded.
#[test]
fn set_deterministic_makes_faer_sequential() {
    faer::set_global_parallelism(faer::Par::rayon(2));
    crane_reference::set_deterministic();
    assert!(matches!(faer::get_global_parallelism(), faer::Par::Seq));
}
