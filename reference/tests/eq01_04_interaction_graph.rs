//! Eq. (1)-(4): interaction matrix, DropEdge, heterogeneous graph convolution.

mod common;
use common::*;
use crane_reference::config::{DegreeSource, Readout, Sigma};
use crane_reference::dense::{mm, spmm, vsplit};
use crane_reference::fd::assert_grad;
use crane_reference::interaction_graph::*;
use faer::Mat;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn eq01_interaction_matrix_is_binary_and_counts_repeats_once(seed in any::<u64>()) {
        let mut r = rng(seed);
        let a = rand_interactions(6, 8, 5, &mut r);
        let mut pairs: Vec<(usize, usize)> = a.triplet_iter().map(|(u, i, _)| (u, i)).collect();
        let doubled: Vec<(usize, usize)> = pairs.iter().chain(pairs.iter()).cloned().collect();
        let b = interaction_matrix(6, 8, &doubled).unwrap();
        prop_assert_eq!(b.nnz(), a.nnz());
        prop_assert!(b.values().iter().all(|&v| v == 1.0));
        pairs.sort();
        let got: Vec<(usize, usize)> = b.triplet_iter().map(|(u, i, _)| (u, i)).collect();
        prop_assert_eq!(got, pairs);
    }

    #[test]
    fn eq01_aggregate_grad_matches_fd(seed in any::<u64>()) {
        let mut r = rng(seed);
        let a = rand_interactions(5, 7, 4, &mut r);
        let x = rand_mat(7, 3, 1.0, &mut r);
        let g = rand_mat(5, 3, 1.0, &mut r);
        let analytic = aggregate_backward(&a, &g);
        assert_grad("Eq. (1) A X wrt X", &x, &analytic, |x| probe(&g, &aggregate(&a, x)));
    }

    #[test]
    fn eq02_masked_adjacency_grad_matches_fd(seed in any::<u64>(), kept in any::<bool>()) {
        let mut r = rng(seed);
        let a = rand_interactions(5, 6, 4, &mut r);
        let mask = drop_edge_bernoulli(&a, seed);
        let src = if kept { DegreeSource::KeptGraph } else { DegreeSource::FullGraph };
        let adj = normalized_adjacency(&a, &mask, src);
        let x = rand_mat(11, 3, 1.0, &mut r);
        let g = rand_mat(11, 3, 1.0, &mut r);
        let analytic = crane_reference::dense::spmm_t(&adj, &g);
        assert_grad("Eq. (2) Â X wrt X", &x, &analytic, |x| probe(&g, &spmm(&adj, x)));
    }

    #[test]
    fn eq02_normalized_adjacency_is_symmetric_bipartite_and_drops_masked_edges(seed in any::<u64>()) {
        let mut r = rng(seed);
        let a = rand_interactions(5, 6, 4, &mut r);
        let mask = drop_edge_bernoulli(&a, seed);
        let adj = normalized_adjacency(&a, &mask, DegreeSource::FullGraph);
        let p = retention_probabilities(&a);
        let kept = mask.iter().filter(|&&m| m == 1.0).count();
        prop_assert_eq!(adj.nnz(), 2 * kept);
        for (e, (u, i, _)) in a.triplet_iter().enumerate() {
            let uv = adj.get_entry(u, 5 + i).map(|x| x.into_value()).unwrap_or(0.0);
            let vu = adj.get_entry(5 + i, u).map(|x| x.into_value()).unwrap_or(0.0);
            prop_assert_eq!(uv, vu);
            // Full-graph degrees: the kept weight is exactly P_ui of Eq. (2).
            prop_assert!((uv - mask[e] * p[e]).abs() < 1e-15);
        }
        for (row, col, _) in adj.triplet_iter() {
            prop_assert!((row < 5) != (col < 5), "edge inside one side of the bipartite graph");
        }
    }

    #[test]
    fn eq03_gcn_user_rows_grad_matches_fd(seed in any::<u64>(), leaky in any::<bool>()) {
        let (adj, h, w, sigma) = layer_case(seed, leaky);
        let (out, cache) = gcn_layer(&adj, &h, &w, sigma);
        prop_assume!(kink_margin(sigma, &GcnCache { layers: vec![cache.clone()] }) > KINK_MARGIN);
        // Upstream gradient on the user rows only: Eq. (3).
        let mut r = rng(seed ^ 3);
        let mut g = rand_mat(out.nrows(), out.ncols(), 1.0, &mut r);
        for i in 5..g.nrows() { for j in 0..g.ncols() { g[(i, j)] = 0.0; } }
        let (dh, dw) = gcn_layer_backward(&adj, &w, sigma, &cache, &g);
        assert_grad("Eq. (3) wrt H", &h, &dh, |h| probe(&g, &gcn_layer(&adj, h, &w, sigma).0));
        assert_grad("Eq. (3) wrt W", &w, &dw, |w| probe(&g, &gcn_layer(&adj, &h, w, sigma).0));
    }

    #[test]
    fn eq03_user_rows_depend_only_on_item_rows(seed in any::<u64>()) {
        let (adj, mut h, w, sigma) = layer_case(seed, true);
        let (before, _) = gcn_layer(&adj, &h, &w, sigma);
        let mut r = rng(seed ^ 9);
        let noise = rand_mat(5, h.ncols(), 1.0, &mut r);
        for i in 0..5 { for j in 0..h.ncols() { h[(i, j)] += noise[(i, j)]; } }
        let (after, _) = gcn_layer(&adj, &h, &w, sigma);
        let (bu, _) = vsplit(&before, 5);
        let (au, _) = vsplit(&after, 5);
        prop_assert_eq!(bu, au);
    }

    #[test]
    fn eq04_gcn_item_rows_grad_matches_fd(seed in any::<u64>(), leaky in any::<bool>()) {
        let (adj, h, w, sigma) = layer_case(seed, leaky);
        let (out, cache) = gcn_layer(&adj, &h, &w, sigma);
        prop_assume!(kink_margin(sigma, &GcnCache { layers: vec![cache.clone()] }) > KINK_MARGIN);
        let mut r = rng(seed ^ 4);
        let mut g = rand_mat(out.nrows(), out.ncols(), 1.0, &mut r);
        for i in 0..5 { for j in 0..g.ncols() { g[(i, j)] = 0.0; } }
        let (dh, dw) = gcn_layer_backward(&adj, &w, sigma, &cache, &g);
        assert_grad("Eq. (4) wrt H", &h, &dh, |h| probe(&g, &gcn_layer(&adj, h, &w, sigma).0));
        assert_grad("Eq. (4) wrt W", &w, &dw, |w| probe(&g, &gcn_layer(&adj, &h, w, sigma).0));
    }

    #[test]
    fn eq04_stack_and_readout_grad_matches_fd(seed in any::<u64>(), leaky in any::<bool>(), last in any::<bool>(), layers in 0usize..4) {
        let (adj, h, _, sigma) = layer_case(seed, leaky);
        let mut r = rng(seed ^ 7);
        let ws: Vec<Mat<f64>> = (0..layers).map(|_| rand_mat(3, 3, 1.0, &mut r)).collect();
        let readout = if last { Readout::Last } else { Readout::Mean };
        let (e, cache) = gcn_forward(&adj, &h, &ws, sigma, readout);
        prop_assume!(kink_margin(sigma, &cache) > KINK_MARGIN);
        let g = rand_mat(e.nrows(), e.ncols(), 1.0, &mut r);
        let (dh, dws) = gcn_backward(&adj, &ws, sigma, readout, &cache, &g);
        assert_grad("Eq. (3)-(4) stack wrt H0", &h, &dh, |h| probe(&g, &gcn_forward(&adj, h, &ws, sigma, readout).0));
        for l in 0..layers {
            let f = |w: &Mat<f64>| {
                let mut ws2 = ws.clone();
                ws2[l] = w.clone();
                probe(&g, &gcn_forward(&adj, &h, &ws2, sigma, readout).0)
            };
            assert_grad("Eq. (3)-(4) stack wrt W^(l)", &ws[l], &dws[l], f);
        }
    }

    #[test]
    fn eq04_identity_layers_give_lightgcn_mean(seed in any::<u64>()) {
        let (adj, h, _, _) = layer_case(seed, false);
        let eye = Mat::<f64>::identity(3, 3);
        let (e, _) = gcn_forward(&adj, &h, &[eye.clone(), eye], Sigma::Identity, Readout::Mean);
        let h1 = spmm(&adj, &h);
        let h2 = spmm(&adj, &h1);
        let want = Mat::from_fn(h.nrows(), 3, |i, j| (h[(i, j)] + h1[(i, j)] + h2[(i, j)]) / 3.0);
        prop_assert!(crane_reference::fd::rel_error(&e, &want) < 1e-14);
        // A layer with W is the same propagation followed by W.
        let w = rand_mat(3, 3, 1.0, &mut rng(seed));
        let (one, _) = gcn_forward(&adj, &h, std::slice::from_ref(&w), Sigma::Identity, Readout::Last);
        prop_assert!(crane_reference::fd::rel_error(&one, &mm(&h1, &w)) < 1e-12);
    }
}

/// 5 users, 6 items, d = 3: a sampled normalised adjacency, embeddings, a weight, σ.
fn layer_case(seed: u64, leaky: bool) -> (nalgebra_sparse::CsrMatrix<f64>, Mat<f64>, Mat<f64>, Sigma) {
    let mut r = rng(seed);
    let a = rand_interactions(5, 6, 4, &mut r);
    let mask = drop_edge_bernoulli(&a, seed);
    let adj = normalized_adjacency(&a, &mask, DegreeSource::FullGraph);
    let h = rand_mat(11, 3, 1.0, &mut r);
    let w = rand_mat(3, 3, 1.0, &mut r);
    (adj, h, w, if leaky { Sigma::LeakyRelu(0.2) } else { Sigma::Identity })
}

/// A pair outside `[M, N]` is refused, whichever index is out of range.
#[test]
fn eq01_interaction_matrix_refuses_pairs_outside_naming_them() {
    for (pair, ok) in [((2, 3), true), ((3, 0), false), ((0, 4), false), ((3, 4), false)] {
        match interaction_matrix(3, 4, &[(0, 0), pair]) {
            Ok(a) => assert!(ok && a.nnz() == 2, "{pair:?}"),
            Err(e) => assert!(!ok && e.to_string().contains(&format!("{pair:?}")), "{pair:?}: {e}"),
        }
    }
}

#[test]
fn eq02_bernoulli_keeps_each_edge_with_probability_p() {
    // Degrees 1..4 on both sides give P_ui from 1/4 to 1. 4000 draws per edge; 5 standard
    // deviations is a bound a correct sampler exceeds with probability < 1e-6 per edge.
    let pairs = [(0, 0), (1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3), (4, 3), (5, 3), (6, 3)];
    let a = interaction_matrix(7, 4, &pairs).unwrap();
    let p = retention_probabilities(&a);
    let trials = 4000;
    let mut kept = vec![0.0; a.nnz()];
    for t in 0..trials {
        for (k, m) in kept.iter_mut().zip(drop_edge_bernoulli(&a, 1_000 + t)) {
            *k += m;
        }
    }
    for e in 0..a.nnz() {
        let freq = kept[e] / trials as f64;
        let sd = (p[e] * (1.0 - p[e]) / trials as f64).sqrt();
        assert!((freq - p[e]).abs() <= 5.0 * sd + 1e-12, "edge {e}: kept {freq}, P = {}", p[e]);
    }
    assert_eq!(p[0], 1.0, "degree-1 user and item: always kept");
    assert!((p[2] - 1.0 / (2.0f64 * 3.0).sqrt()).abs() < 1e-15);
}

#[test]
fn eq02_rescaled_drop_edge_weights_bernoullis_kept_edges_by_one_over_p() {
    // User 0 has items 0..3 (d_u = 4); item 0 also has user 1 (d_i = 2), items 1..3 only user
    // 0 (d_i = 1). By hand: P = 1/sqrt(4·2) = 0.35355 for (0,0), 1/sqrt(4·1) = 0.5 for (0,1..3),
    // 1/sqrt(1·2) = 0.70711 for (1,0); a kept edge weighs 1/P: 2.8284, 2, 2, 2, 1.4142.
    let a = interaction_matrix(2, 4, &[(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]).unwrap();
    let by_hand = [8f64.sqrt(), 2.0, 2.0, 2.0, 2f64.sqrt()];
    for seed in 0..50 {
        let kept = drop_edge_bernoulli(&a, seed);
        let scaled = drop_edge_bernoulli_rescaled(&a, seed);
        for e in 0..a.nnz() {
            assert!((scaled[e] - kept[e] * by_hand[e]).abs() < 1e-12, "seed {seed}, edge {e}: {}", scaled[e]);
        }
    }
    // The weights enter Â as multipliers of 1/sqrt(d_u d_i) (full-graph degrees): the kept
    // edge (0,1) becomes 2 · 0.5 = 1 in Â.
    let mask = [0.0, by_hand[1], 0.0, 0.0, 0.0];
    let adj = normalized_adjacency(&a, &mask, DegreeSource::FullGraph);
    let v: Vec<f64> = adj.triplet_iter().map(|(_, _, v)| *v).collect();
    assert_eq!(v, vec![1.0, 1.0]);
}

#[test]
fn eq02_rescaled_drop_edge_has_the_scoring_operator_as_its_expectation() {
    // Every mask entry has expectation 1, so E[Â_train] = Â_full: the mean of 4000 masks is 1
    // within 5 standard errors (Var = (1 − P)/P per draw).
    let pairs = [(0, 0), (1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3), (4, 3), (5, 3), (6, 3)];
    let a = interaction_matrix(7, 4, &pairs).unwrap();
    let p = retention_probabilities(&a);
    let trials = 4000;
    let mut sum = vec![0.0; a.nnz()];
    for t in 0..trials {
        for (s, m) in sum.iter_mut().zip(drop_edge_bernoulli_rescaled(&a, 7_000 + t)) {
            *s += m;
        }
    }
    for e in 0..a.nnz() {
        let mean = sum[e] / trials as f64;
        let se = ((1.0 - p[e]) / p[e] / trials as f64).sqrt();
        assert!((mean - 1.0).abs() <= 5.0 * se + 1e-12, "edge {e}: mean weight {mean}, P = {}", p[e]);
    }
}

#[test]
fn eq02_freedom_sampler_keeps_exact_count_favouring_low_degree() {
    let pairs: Vec<(usize, usize)> =
        (0..6).flat_map(|u| (0..5).filter(move |i| (u + i) % 2 == 0 || *i == 0).map(move |i| (u, i))).collect();
    let a = interaction_matrix(6, 5, &pairs).unwrap();
    let p = retention_probabilities(&a);
    let mut kept = vec![0.0; a.nnz()];
    for t in 0..3000 {
        let m = drop_edge_freedom(&a, 0.5, t);
        assert_eq!(m.iter().sum::<f64>() as usize, a.nnz() / 2, "keeps floor(E * ratio) edges");
        assert_eq!(m, drop_edge_freedom(&a, 0.5, t), "deterministic from the seed");
        for (k, x) in kept.iter_mut().zip(m) {
            *k += x;
        }
    }
    // The edge of lowest P is kept less often than the edge of highest P.
    let lo = (0..p.len()).min_by(|&x, &y| p[x].total_cmp(&p[y])).unwrap();
    let hi = (0..p.len()).max_by(|&x, &y| p[x].total_cmp(&p[y])).unwrap();
    assert!(p[lo] < p[hi]);
    assert!(kept[lo] < kept[hi], "kept {} times at P={} vs {} at P={}", kept[lo], p[lo], kept[hi], p[hi]);
}
