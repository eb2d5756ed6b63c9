//! Invariants of the parts that the baselines and the "w/o Dual Fusion" ablation add to the
//! model (their gradients are checked with the rest in `model.rs`): FREEDOM's frozen graph,
//! MMRec's unsquared norm penalty, the modality BPR terms, late fusion.

mod common;
use common::*;
use crane_reference::config::*;
use crane_reference::dense::{row_cols, scale, vsplit};
use crane_reference::item_graph::raw_feature_graph;
use crane_reference::losses::{batch_norms, batch_sq_norm};
use crane_reference::model::{forward, loss_and_grads};
use faer::Mat;
use proptest::prelude::*;

fn freedom_config() -> ModelConfig {
    ModelConfig {
        item_graph_source: ItemGraphSource::RawFeatures { image_weight: 0.1 },
        item_graph_input: ItemGraphInput::Embeddings,
        user_semantic: false,
        contrastive: false,
        feature_dim: 4,
        modality_bpr: 0.3,
        gcn_weights: false,
        ..tiny_config()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Each modality's binary kNN rows carry 1/k per entry, so every row of S sums to 1, the
    /// item itself is a neighbour, and S does not change when a feature row is rescaled
    /// (cosine). Columns are ascending (valid CSR).
    #[test]
    fn freedom_raw_graph_rows_sum_to_one_and_ignore_row_scale(seed in 0u64..10_000, w in 0.0f64..1.0, s in 0.1f64..10.0) {
        let mut r = rng(seed);
        let feats = [rand_mat(9, 6, 1.0, &mut r), rand_mat(9, 5, 1.0, &mut r)];
        let g = raw_feature_graph(&feats, 3, w).unwrap();
        for i in 0..9 {
            let (lo, hi) = (g.row_offsets()[i], g.row_offsets()[i + 1]);
            let sum: f64 = g.values()[lo..hi].iter().sum();
            prop_assert!((sum - 1.0).abs() < 1e-12, "row {i} sums to {sum}");
            prop_assert!(row_cols(&g, i).contains(&i), "row {i} lacks its own item");
            prop_assert!(row_cols(&g, i).windows(2).all(|p| p[0] < p[1]));
        }
        let mut scaled = feats.clone();
        let row2: Mat<f64> = scale(&scaled[1], 1.0);
        scaled[1] = Mat::from_fn(9, 5, |i, j| if i == 4 { s * row2[(i, j)] } else { row2[(i, j)] });
        prop_assert_eq!(raw_feature_graph(&scaled, 3, w).unwrap(), g);
    }

    /// MMRec's penalty is positively homogeneous of degree 1, the squared one of degree 2.
    #[test]
    fn mmrec_norm_penalty_is_homogeneous_of_degree_one(seed in 0u64..10_000, c in 0.1f64..5.0) {
        let mut r = rng(seed);
        let (u, i) = (rand_mat(5, 4, 1.0, &mut r), rand_mat(6, 4, 1.0, &mut r));
        let t = [(0, 1, 2), (3, 4, 5), (0, 0, 3)];
        let (uc, ic) = (scale(&u, c), scale(&i, c));
        prop_assert!((batch_norms(&uc, &ic, &t) - c * batch_norms(&u, &i, &t)).abs() < 1e-10);
        prop_assert!((batch_sq_norm(&uc, &ic, &t) - c * c * batch_sq_norm(&u, &i, &t)).abs() < 1e-9);
    }
}

/// A missing modality gives its whole weight to the other: the graph is that modality's kNN.
#[test]
fn freedom_raw_graph_with_one_modality_is_that_modalitys_knn() {
    let mut r = rng(3);
    let text = rand_mat(9, 5, 1.0, &mut r);
    let only_text = raw_feature_graph(&[Mat::zeros(9, 0), text.clone()], 3, 0.1).unwrap();
    let text_weighted = raw_feature_graph(&[rand_mat(9, 6, 1.0, &mut r), text], 3, 0.0).unwrap();
    assert_eq!(only_text, text_weighted);
    assert!(only_text.values().iter().all(|&v| (v - 1.0 / 3.0).abs() < 1e-15));
    let err = raw_feature_graph(&[Mat::zeros(9, 0), Mat::zeros(9, 0)], 3, 0.1).unwrap_err();
    assert!(format!("{err}").contains("neither"), "{err}");
}

/// Late fusion scores a pair by the sum of the two branches' scores, and the dual model's
/// z = e + h scores differ from it by the cross terms.
#[test]
fn wo_dual_fusion_scores_are_the_sum_of_branch_scores() {
    let cfg = ModelConfig { dual_fusion: false, ..tiny_config() };
    let (p, _, g) = tiny_case(9, &cfg);
    let fw = forward(&p, &g, &cfg).unwrap();
    let (zu, zi) = vsplit(&fw.z, 7);
    let (eu, ei) = vsplit(&fw.e, 7);
    let (hu, hi) = vsplit(&fw.h, 7);
    let dot =
        |a: &Mat<f64>, i: usize, b: &Mat<f64>, j: usize| (0..a.ncols()).map(|c| a[(i, c)] * b[(j, c)]).sum::<f64>();
    for u in 0..7 {
        for i in 0..9 {
            let late = dot(&eu, u, &ei, i) + dot(&hu, u, &hi, i);
            assert!((dot(&zu, u, &zi, i) - late).abs() < 1e-12);
        }
    }
}

/// FREEDOM: users carry no semantic part (h_u = 0), item h is S·E_I from the layer-0
/// embeddings, and the graph is the raw-feature graph whatever the parameters are.
#[test]
fn freedom_item_side_is_frozen_graph_times_layer0_embeddings() {
    let cfg = freedom_config();
    let (p, batch, g) = tiny_case(4, &cfg);
    let fw = forward(&p, &g, &cfg).unwrap();
    let (hu, hi) = vsplit(&fw.h, 7);
    assert_eq!(crane_reference::dense::max_abs(&hu), 0.0);
    let s = raw_feature_graph(&g.features, cfg.knn_k, 0.1).unwrap();
    assert_eq!(fw.item_graph.as_ref().unwrap(), &s);
    let expect = crane_reference::dense::spmm(&s, &p.item_emb);
    assert!(crane_reference::dense::max_abs(&crane_reference::dense::zip(&hi, &expect, |a, b| a - b)) < 1e-12);
    // The modality terms are there and weighted; with modality_bpr = 0 they vanish.
    let with = loss_and_grads(&p, &batch, &g, &cfg).unwrap();
    assert!(with.terms.modality > 0.0);
    let without = loss_and_grads(&p, &batch, &g, &ModelConfig { modality_bpr: 0.0, ..cfg.clone() }).unwrap();
    assert_eq!(without.terms.modality, 0.0);
    assert!((with.loss - without.loss - with.terms.modality).abs() < 1e-12);
    // Nothing reaches the RCA weights: the graph is frozen.
    assert_eq!(crane_reference::dense::max_abs(&with.grads.w_tr), 0.0);
}

#[test]
fn modality_bpr_needs_matching_widths_and_cl_needs_user_semantic() {
    let bad = ModelConfig { modality_bpr: 0.1, ..tiny_config() };
    assert!(format!("{}", bad.validate(9).unwrap_err()).contains("feature_dim"));
    let bad = ModelConfig { user_semantic: false, ..tiny_config() };
    assert!(format!("{}", bad.validate(9).unwrap_err()).contains("user_semantic"));
}

fn mha_case(seed: u64, n: usize, d: usize) -> (Mat<f64>, [Mat<f64>; 4], [Mat<f64>; 4]) {
    let mut r = rng(seed);
    let x = rand_mat(n, d, 1.0, &mut r);
    let w = std::array::from_fn(|_| rand_mat(d, d, 0.7, &mut r));
    let b = std::array::from_fn(|_| rand_mat(1, d, 0.3, &mut r));
    (x, w, b)
}

/// The attention of the authors' code: every input's gradient against central differences.
#[test]
fn code_attention_grad_matches_fd() {
    use crane_reference::attention::{mha, mha_backward, MhaParams};
    use crane_reference::fd::assert_grad;
    for (seed, heads) in [(1u64, 1usize), (2, 2), (3, 4)] {
        let (x, w, b) = mha_case(seed, 6, 4);
        let mut r = rng(seed + 100);
        let g = rand_mat(6, 4, 1.0, &mut r);
        let params = |w: &[Mat<f64>; 4], b: &[Mat<f64>; 4]| -> (Mat<f64>, Mat<f64>) {
            let p = MhaParams { w: std::array::from_fn(|k| &w[k]), b: std::array::from_fn(|k| &b[k]), heads };
            (mha(&x, &p).0, Mat::zeros(0, 0))
        };
        let p = MhaParams { w: std::array::from_fn(|k| &w[k]), b: std::array::from_fn(|k| &b[k]), heads };
        let (_, cache) = mha(&x, &p);
        let (dx, dw, db) = mha_backward(&p, &cache, &g);
        assert_grad("mha dx", &x, &dx, |v| probe(&g, &mha(v, &p).0));
        for k in 0..4 {
            assert_grad(&format!("mha dW[{k}]"), &w[k], &dw[k], |v| {
                let mut w2 = w.clone();
                w2[k] = v.clone();
                probe(&g, &params(&w2, &b).0)
            });
            let f = |v: &Mat<f64>| {
                let mut b2 = b.clone();
                b2[k] = v.clone();
                probe(&g, &params(&w, &b2).0)
            };
            if k == 1 {
                // The key bias shifts every score of a row by q·b_k: softmax ignores it, so its
                // gradient is exactly zero (a relative error of two zeros means nothing).
                let numeric = crane_reference::fd::numeric_grad(&b[k], f);
                assert!(crane_reference::dense::max_abs(&db[k]) < 1e-14, "db_k = {:?}", db[k]);
                assert!(crane_reference::dense::max_abs(&numeric) < 1e-9, "numeric db_k = {numeric:?}");
            } else {
                assert_grad(&format!("mha db[{k}]"), &b[k], &db[k], f);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Self-attention without positions is permutation-equivariant: permuting the items
    /// permutes the output rows.
    #[test]
    fn code_attention_is_permutation_equivariant(seed in 0u64..10_000, rot in 1usize..6) {
        use crane_reference::attention::{mha, MhaParams};
        let (x, w, b) = mha_case(seed, 6, 4);
        let p = MhaParams { w: std::array::from_fn(|k| &w[k]), b: std::array::from_fn(|k| &b[k]), heads: 2 };
        let perm: Vec<usize> = (0..6).map(|i| (i + rot) % 6).collect();
        let xp = Mat::from_fn(6, 4, |i, j| x[(perm[i], j)]);
        let (y, _) = mha(&x, &p);
        let (yp, _) = mha(&xp, &p);
        for i in 0..6 {
            for j in 0..4 {
                prop_assert!((yp[(i, j)] - y[(perm[i], j)]).abs() < 1e-12);
            }
        }
    }
}

/// FREEDOM's frozen graph on case 08's features (`../shared/cases/integrity/08-zero-feature-row`):
/// item 3 has an all-zero image row. Worked by hand with k = 2, w = 0.1 (entries 0.05 per image
/// edge, 0.45 per text edge). Image kNN (cosines in brackets): 0 → {0, 1 (0.996)}, 1 → {0, 1},
/// 2 → {2, 4 (0.996)}, 4 → {2, 4}, 5 → {4 (0.577), 5}; item 3 has no image row and is in none.
/// Text kNN: 0 → {0, 1 (0.981)}, 1 → {0, 1}, 2 → {2, 3 (0.995)}, 3 → {2, 3}, 4 → {3 (0.0995), 4},
/// 5 → {1 (0.832), 5}. So item 3 keeps only its text neighbours (row sum 0.9) and is in rows
/// 2, 3 and 4 through text alone.
#[test]
fn freedom_raw_graph_zero_image_row_keeps_only_its_text_neighbours() {
    let image: [[f64; 4]; 6] = [
        [1.0, 0.0, 0.0, 1.0],
        [0.9, 0.1, 0.0, 1.0],
        [0.0, 1.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.1, 1.0, 0.9, 0.0],
        [1.0, 1.0, 0.0, 0.0],
    ];
    let text: [[f64; 3]; 6] =
        [[1.0, 0.0, 0.0], [1.0, 0.2, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.1], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]];
    let feats = [Mat::from_fn(6, 4, |i, j| image[i][j]), Mat::from_fn(6, 3, |i, j| text[i][j])];
    let g = raw_feature_graph(&feats, 2, 0.1).unwrap();
    let want: [&[(usize, f64)]; 6] = [
        &[(0, 0.5), (1, 0.5)],
        &[(0, 0.5), (1, 0.5)],
        &[(2, 0.5), (3, 0.45), (4, 0.05)],
        &[(2, 0.45), (3, 0.45)],
        &[(2, 0.05), (3, 0.45), (4, 0.5)],
        &[(1, 0.45), (4, 0.05), (5, 0.5)],
    ];
    for (i, row) in want.iter().enumerate() {
        assert_eq!(row_cols(&g, i), row.iter().map(|e| e.0).collect::<Vec<_>>(), "row {i}");
        let (lo, hi) = (g.row_offsets()[i], g.row_offsets()[i + 1]);
        for (v, (_, w)) in g.values()[lo..hi].iter().zip(row.iter()) {
            assert!((v - w).abs() < 1e-12, "row {i}: {v} vs {w}");
        }
    }
    // Zero in both modalities: an empty row, in no other row.
    let mut both = feats.clone();
    for j in 0..3 {
        both[1][(3, j)] = 0.0;
    }
    let g = raw_feature_graph(&both, 2, 0.1).unwrap();
    assert!(row_cols(&g, 3).is_empty());
    assert!(g.col_indices().iter().all(|&j| j != 3));
}

/// The fused graph from neighbour lists, by hand: n = 3, image lists (weight 0.1) and text lists
/// (0.9), k = 2: row 0 takes image {0, 1} and text {0, 2}: S_00 = 0.05 + 0.45 = 0.5,
/// S_01 = 0.05, S_02 = 0.45; row 1: image {1, 2}, text {1, 0}: 0.45, 0.5, 0.05 at 0, 1, 2;
/// row 2: image {2, 0}, text {2, 1}: 0.05, 0.45, 0.5. With k = 1 only the first entries.
#[test]
fn freedom_fixed_knn_graph_matches_hand_values_and_refuses_bad_lists() {
    use crane_reference::item_graph::fixed_knn_graph;
    let image: Vec<Vec<usize>> = vec![vec![0, 1, 2], vec![1, 2, 0], vec![2, 0, 1]];
    let text: Vec<Vec<usize>> = vec![vec![0, 2, 1], vec![1, 0, 2], vec![2, 1, 0]];
    let dense = |s: &nalgebra_sparse::CsrMatrix<f64>| {
        let mut d = [[0.0; 3]; 3];
        for (i, j, v) in s.triplet_iter() {
            d[i][j] = *v;
        }
        d
    };
    let s = fixed_knn_graph(3, &[(&image, 0.1), (&text, 0.9)], 2).unwrap();
    let want = [[0.5, 0.05, 0.45], [0.45, 0.5, 0.05], [0.05, 0.45, 0.5]];
    for (i, (got, want)) in dense(&s).iter().zip(want).enumerate() {
        for j in 0..3 {
            assert!((got[j] - want[j]).abs() < 1e-15, "S[{i},{j}] = {} vs {}", got[j], want[j]);
        }
    }
    assert_eq!(s.nnz(), 9);
    // k = 1: the item itself in both lists, S = I.
    assert_eq!(
        dense(&fixed_knn_graph(3, &[(&image, 0.1), (&text, 0.9)], 1).unwrap()),
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    );
    // A zero weight stores nothing (not explicit zeros): only the text entries.
    let t = fixed_knn_graph(3, &[(&image, 0.0), (&text, 1.0)], 2).unwrap();
    assert_eq!((t.nnz(), dense(&t)[0]), (6, [0.5, 0.0, 0.5]));
    // Refused: k = 0, a row shorter than k, an id outside 0..n (n − 1 is inside), a missing row.
    let err = |lists: &[(&[Vec<usize>], f64)], k: usize| fixed_knn_graph(3, lists, k).unwrap_err().to_string();
    assert!(err(&[(&image, 1.0)], 0).contains("at least 1"));
    assert!(err(&[(&image, 1.0)], 4).contains("fewer than k = 4"));
    let far: Vec<Vec<usize>> = vec![vec![0, 3], vec![1, 2], vec![2, 0]];
    assert!(err(&[(&far, 1.0)], 2).contains("names item 3, outside 0..3"));
    assert!(fixed_knn_graph(3, &[(&far, 1.0)], 1).is_ok(), "k = 1 reads only the first column");
    let short: Vec<Vec<usize>> = vec![vec![0, 1]];
    assert!(err(&[(&short, 1.0)], 1).contains("list 0 has no row 1"));
}

/// `raw_feature_graph`'s k is refused outside 1..=N, each end alone.
#[test]
fn freedom_raw_feature_graph_refuses_k_outside_one_to_n() {
    let f = [Mat::from_fn(4, 2, |i, j| (i + j) as f64 + 1.0), Mat::from_fn(4, 3, |i, j| (i * j) as f64 + 1.0)];
    for (k, ok) in [(0, false), (1, true), (4, true), (5, false)] {
        assert_eq!(raw_feature_graph(&f, k, 0.1).is_ok(), ok, "k = {k}");
    }
}

/// FREEDOM's modality BPR on separate tables, by hand: x = (1, 0), y⁺ = (2, 0), y⁻ = (0, 1):
/// the margin is 2, the loss softplus(−2) = ln(1 + e^-2) = 0.1269280110429725, and with
/// s = σ(−2) = 0.11920292202211755 the gradients are dx = −s y⁺ + s y⁻ = (−2s, s),
/// dy⁺ = −s x = (−s, 0), dy⁻ = s x = (s, 0); all scaled by g = 3.
#[test]
fn freedom_modality_bpr_rows_by_hand() {
    use crane_reference::losses::bpr_rows;
    let row = |a: f64, b: f64| Mat::from_fn(1, 2, |_, c| if c == 0 { a } else { b });
    let (l, dx, dyp, dyn_) = bpr_rows(&row(1.0, 0.0), &row(2.0, 0.0), &row(0.0, 1.0), 3.0);
    let s = 0.119_202_922_022_117_55;
    assert!((l - 0.126_928_011_042_972_5).abs() < 1e-15, "{l}");
    for (got, want) in [(&dx, [-2.0 * s, s]), (&dyp, [-s, 0.0]), (&dyn_, [s, 0.0])] {
        for c in 0..2 {
            assert!((got[(0, c)] - 3.0 * want[c]).abs() < 1e-15, "{got:?} vs 3 x {want:?}");
        }
    }
}

/// `train_features`: the raw tables become parameters once (attached from the data), never
/// replaced once held (a resumed run keeps its trained tables), never attached with the switch off.
#[test]
fn trained_feature_tables_attach_once_and_only_with_the_switch() {
    use crane_reference::init::Dims;
    use crane_reference::model::Params;
    let on = ModelConfig { train_features: true, ..freedom_config() };
    let dims = Dims { n_users: 3, n_items: 4, d_visual: 2, d_text: 3 };
    let data = [Mat::from_fn(4, 2, |i, j| (i + j) as f64), Mat::from_fn(4, 3, |i, j| (i * j) as f64)];
    let mut p = Params::init(&on, dims, 1);
    assert!(p.needs_features(&on) && !p.needs_features(&freedom_config()));
    p.attach_features_owned(&on, data.clone());
    assert_eq!(p.features, data);
    assert!(!p.needs_features(&on), "held now");
    let other = [Mat::zeros(4, 2), Mat::zeros(4, 3)];
    p.attach_features_owned(&on, other.clone());
    p.attach_features(&on, [&other[0], &other[1]]);
    assert_eq!(p.features, data, "never replaced");
    let mut off = Params::init(&freedom_config(), dims, 1);
    off.attach_features_owned(&freedom_config(), data.clone());
    off.attach_features(&freedom_config(), [&data[0], &data[1]]);
    assert!(off.features.iter().all(|f| f.nrows() == 0), "switch off: nothing attached");
}

/// MMRec's unsquared norm penalty at a zero table (all-zero user rows of the batch): the
/// subgradient 0, as torch takes it, not 0 · ∞ = NaN; the item side still gets its gradient.
#[test]
fn batch_norms_backward_of_a_zero_table_is_zero_not_nan() {
    use crane_reference::losses::batch_norms_backward;
    let users = Mat::<f64>::zeros(3, 2);
    let items = Mat::from_fn(4, 2, |i, j| (i + 2 * j) as f64 + 1.0);
    let triplets = [(0, 1, 2), (2, 3, 0)];
    let (mut du, mut di) = (Mat::zeros(3, 2), Mat::zeros(4, 2));
    batch_norms_backward(&users, &items, &triplets, 1.0, &mut du, &mut di);
    assert_eq!(du, Mat::zeros(3, 2));
    assert!(di.col_iter().all(|c| c.iter().all(|v| v.is_finite())) && crane_reference::dense::max_abs(&di) > 0.0);
}
