//! Eq. (14)-(17) item graph and final representations, Eq. (18)-(20) losses.

mod common;
use common::*;
use crane_reference::config::ModelConfig;
use crane_reference::dense::{add, max_abs, row_cols, scale};
use crane_reference::fd::{assert_grad, numeric_grad, rel_error, TOLERANCE};
use crane_reference::item_graph::*;
use crane_reference::losses::*;
use crane_reference::model::{loss_and_grads, Params};
use faer::Mat;
use proptest::prelude::*;

/// Central-difference check of a scalar function of a vector.
fn assert_vec_grad(what: &str, x: &[f64], analytic: &[f64], f: impl Fn(&[f64]) -> f64) {
    let xm = Mat::from_fn(x.len(), 1, |i, _| x[i]);
    let am = Mat::from_fn(x.len(), 1, |i, _| analytic[i]);
    assert_grad(what, &xm, &am, |m| f(&(0..m.nrows()).map(|i| m[(i, 0)]).collect::<Vec<_>>()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn eq14_cosine_grad_matches_fd(seed in any::<u64>()) {
        let mut r = rng(seed);
        let x = rand_mat(7, 4, 1.0, &mut r);
        let (s, cache) = cosine_similarity(&x).unwrap();
        let g = rand_mat(7, 7, 1.0, &mut r);
        let dx = cosine_similarity_backward(&cache, &g);
        assert_grad("Eq. (14) cosine wrt X_att", &x, &dx, |v| probe(&g, &cosine_similarity(v).unwrap().0));
        prop_assert!(max_abs(&s) <= 1.0 + 1e-12);
    }

    #[test]
    fn eq14_knn_graph_grad_matches_fd(seed in any::<u64>(), k in 1usize..6) {
        // Through cosine, top-k, clamp and row normalisation, with a fixed index set.
        let mut r = rng(seed);
        let x = rand_mat(7, 4, 1.0, &mut r);
        let (s, cache) = cosine_similarity(&x).unwrap();
        prop_assume!(knn_margin(&s, k) > KINK_MARGIN);
        let (adj, kc) = knn_graph(&s, k).unwrap();
        // A random probe: one constant within a row would have an exactly zero gradient,
        // since S̃'s rows always sum to 1.
        let gm = rand_mat(adj.nnz(), 1, 1.0, &mut r);
        let g: Vec<f64> = (0..adj.nnz()).map(|e| gm[(e, 0)]).collect();
        let ds = knn_graph_backward(&adj, &kc, &g);
        let dx = cosine_similarity_backward(&cache, &ds);
        assert_grad("Eq. (14) S̃ values wrt X_att", &x, &dx, |v| {
            let (s2, _) = cosine_similarity(v).unwrap();
            let (a2, _) = knn_graph(&s2, k).unwrap();
            a2.values().iter().zip(&g).map(|(a, b)| a * b).sum()
        });
    }

    #[test]
    fn eq14_rows_sum_to_one_hold_k_entries_and_include_self(seed in any::<u64>(), k in 1usize..8) {
        let mut r = rng(seed);
        let x = rand_mat(7, 4, 1.0, &mut r);
        let (s, _) = cosine_similarity(&x).unwrap();
        prop_assume!(knn_margin(&s, k) > 1e-9);
        let (adj, _) = knn_graph(&s, k).unwrap();
        for i in 0..7 {
            let cols = row_cols(&adj, i);
            prop_assert_eq!(cols.len(), k);
            prop_assert!(cols.contains(&i), "row {} lacks its own item", i);
            let o = adj.row_offsets();
            let vals = &adj.values()[o[i]..o[i + 1]];
            prop_assert!(vals.iter().all(|&v| v >= 0.0));
            prop_assert!((vals.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            // The kept entries are the k largest of the row.
            let min_kept = cols.iter().map(|&j| s[(i, j)]).fold(f64::INFINITY, f64::min);
            prop_assert!((0..7).filter(|j| !cols.contains(j)).all(|j| s[(i, j)] < min_kept));
        }
    }

    #[test]
    fn eq14_cosine_is_invariant_to_positive_row_scaling(seed in any::<u64>()) {
        let mut r = rng(seed);
        let x = rand_mat(7, 4, 1.0, &mut r);
        let scales: Vec<f64> = (0..7).map(|i| 0.1 + (i as f64 + (seed % 5) as f64) * 0.7).collect();
        let xs = Mat::from_fn(7, 4, |i, j| scales[i] * x[(i, j)]);
        let (a, _) = cosine_similarity(&x).unwrap();
        let (b, _) = cosine_similarity(&xs).unwrap();
        prop_assert!(rel_error(&a, &b) < 1e-14);
        for i in 0..7 { prop_assert!((a[(i, i)] - 1.0).abs() < 1e-14); }
    }

    #[test]
    fn eq15_propagation_grad_matches_fd(seed in any::<u64>(), layers in 0usize..4) {
        let mut r = rng(seed);
        let x = rand_mat(7, 4, 1.0, &mut r);
        let (s, _) = cosine_similarity(&x).unwrap();
        let (adj, _) = knn_graph(&s, 3).unwrap();
        let h0 = rand_mat(7, 3, 1.0, &mut r);
        let g = rand_mat(7, 3, 1.0, &mut r);
        let hs = propagate(&adj, &h0, layers);
        let (dh0, dvals) = propagate_backward(&adj, &hs, &g);
        assert_grad("Eq. (15) wrt h^(0)", &h0, &dh0, |h| probe(&g, propagate(&adj, h, layers).last().unwrap()));
        let vals = adj.values().to_vec();
        assert_vec_grad("Eq. (15) wrt S̃ values", &vals, &dvals, |v| {
            let mut a2 = adj.clone();
            a2.values_mut().copy_from_slice(v);
            probe(&g, propagate(&a2, &h0, layers).last().unwrap())
        });
    }

    #[test]
    fn eq15_constant_embeddings_are_fixed_points(seed in any::<u64>()) {
        // Rows of S̃ sum to 1, so a constant signal survives propagation unchanged.
        let mut r = rng(seed);
        let x = rand_mat(7, 4, 1.0, &mut r);
        let (s, _) = cosine_similarity(&x).unwrap();
        let (adj, _) = knn_graph(&s, 4).unwrap();
        let c = Mat::from_fn(7, 3, |_, j| j as f64 - 1.5);
        let out = propagate(&adj, &c, 3);
        prop_assert!(rel_error(out.last().unwrap(), &c) < 1e-14);
    }

    #[test]
    fn eq16_user_semantic_grad_matches_fd(seed in any::<u64>()) {
        let mut r = rng(seed);
        let a = rand_interactions(5, 7, 4, &mut r);
        let h = rand_mat(7, 3, 1.0, &mut r);
        let g = rand_mat(5, 3, 1.0, &mut r);
        let dh = user_semantic_backward(&a, &g);
        assert_grad("Eq. (16) wrt h", &h, &dh, |v| probe(&g, &user_semantic(&a, v)));
    }

    #[test]
    fn eq16_user_semantic_is_the_sum_of_item_rows(seed in any::<u64>()) {
        let mut r = rng(seed);
        let a = rand_interactions(5, 7, 4, &mut r);
        let h = rand_mat(7, 3, 1.0, &mut r);
        let hu = user_semantic(&a, &h);
        for u in 0..5 {
            for j in 0..3 {
                let want: f64 = row_cols(&a, u).iter().map(|&i| h[(i, j)]).sum();
                prop_assert!((hu[(u, j)] - want).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn eq17_scores_grad_matches_fd(seed in any::<u64>()) {
        let mut r = rng(seed);
        let (eu, hu) = (rand_mat(4, 3, 1.0, &mut r), rand_mat(4, 3, 1.0, &mut r));
        let (ei, hi) = (rand_mat(5, 3, 1.0, &mut r), rand_mat(5, 3, 1.0, &mut r));
        let pairs = [(0, 1), (1, 1), (3, 4), (2, 0), (0, 1)];
        let w = [0.3, -1.2, 0.8, 0.5, -0.4];
        let f = |eu: &Mat<f64>, ei: &Mat<f64>| -> f64 {
            scores(&fuse(eu, &hu), &fuse(ei, &hi), &pairs).iter().zip(&w).map(|(s, w)| s * w).sum()
        };
        let (zu, zi) = (fuse(&eu, &hu), fuse(&ei, &hi));
        let (mut du, mut di) = (Mat::zeros(4, 3), Mat::zeros(5, 3));
        scores_backward(&zu, &zi, &pairs, &w, &mut du, &mut di);
        assert_grad("Eq. (17) wrt e_U", &eu, &du, |v| f(v, &ei));
        assert_grad("Eq. (17) wrt e_I", &ei, &di, |v| f(&eu, v));
    }

    #[test]
    fn eq17_score_is_bilinear_in_the_two_views(seed in any::<u64>(), s in -2.0f64..2.0) {
        let mut r = rng(seed);
        let (zu, zi) = (rand_mat(3, 4, 1.0, &mut r), rand_mat(5, 4, 1.0, &mut r));
        let pairs: Vec<(usize, usize)> = (0..3).flat_map(|u| (0..5).map(move |i| (u, i))).collect();
        let base = scores(&zu, &zi, &pairs);
        let scaled = scores(&scale(&zu, s), &zi, &pairs);
        let z2 = rand_mat(5, 4, 1.0, &mut r);
        let summed = scores(&zu, &add(&zi, &z2), &pairs);
        let other = scores(&zu, &z2, &pairs);
        for k in 0..pairs.len() {
            prop_assert!((scaled[k] - s * base[k]).abs() < 1e-12);
            prop_assert!((summed[k] - base[k] - other[k]).abs() < 1e-12);
        }
    }

    #[test]
    fn eq18_bpr_grad_matches_fd(seed in any::<u64>()) {
        let mut r = rng(seed);
        let pos: Vec<f64> = (0..6).map(|_| rand_mat(1, 1, 4.0, &mut r)[(0, 0)]).collect();
        let neg: Vec<f64> = (0..6).map(|_| rand_mat(1, 1, 4.0, &mut r)[(0, 0)]).collect();
        let (dp, dn) = bpr_backward(&pos, &neg, 1.0);
        assert_vec_grad("Eq. (18) wrt positive scores", &pos, &dp, |p| bpr(p, &neg));
        assert_vec_grad("Eq. (18) wrt negative scores", &neg, &dn, |n| bpr(&pos, n));
    }

    #[test]
    fn eq18_bpr_swapping_positive_and_negative_changes_sign_of_margin(seed in any::<u64>()) {
        // softplus(-x) - softplus(x) = -x, so L(p, n) - L(n, p) = mean(n - p).
        let mut r = rng(seed);
        let pos: Vec<f64> = (0..6).map(|_| rand_mat(1, 1, 30.0, &mut r)[(0, 0)]).collect();
        let neg: Vec<f64> = (0..6).map(|_| rand_mat(1, 1, 30.0, &mut r)[(0, 0)]).collect();
        let want = pos.iter().zip(&neg).map(|(p, n)| n - p).sum::<f64>() / 6.0;
        prop_assert!((bpr(&pos, &neg) - bpr(&neg, &pos) - want).abs() < 1e-12);
        prop_assert!((bpr(&pos, &pos) - std::f64::consts::LN_2).abs() < 1e-15);
    }

    #[test]
    fn eq19_info_nce_grad_matches_fd(seed in any::<u64>(), tau in 0.1f64..1.0) {
        let mut r = rng(seed);
        let (a, b) = (rand_mat(5, 4, 1.0, &mut r), rand_mat(5, 4, 1.0, &mut r));
        let (_, cache) = info_nce(&a, &b, tau);
        let (da, db) = info_nce_backward(&a, &b, tau, &cache, 1.0);
        assert_grad("Eq. (19) wrt collaborative view", &a, &da, |v| info_nce(v, &b, tau).0);
        assert_grad("Eq. (19) wrt semantic view", &b, &db, |v| info_nce(&a, v, tau).0);
    }

    #[test]
    fn eq19_equal_similarities_give_ln_batch_size(seed in any::<u64>(), n in 1usize..8, tau in 0.1f64..1.0) {
        // Every row of b the same direction: all similarities of a row are equal.
        let mut r = rng(seed);
        let a = rand_mat(n, 4, 1.0, &mut r);
        let dir = rand_mat(1, 4, 1.0, &mut r);
        let b = Mat::from_fn(n, 4, |i, j| (1.0 + i as f64) * dir[(0, j)]);
        let (l, _) = info_nce(&a, &b, tau);
        prop_assert!((l - (n as f64).ln()).abs() < 1e-12);
        // Cosine makes it invariant to positive rescaling of rows.
        let (l1, _) = info_nce(&a, &rand_mat(n, 4, 1.0, &mut rng(seed ^ 1)), tau);
        let (l2, _) = info_nce(&scale(&a, 3.0), &scale(&rand_mat(n, 4, 1.0, &mut rng(seed ^ 1)), 0.2), tau);
        prop_assert!((l1 - l2).abs() < 1e-12);
    }

    #[test]
    fn eq20_regulariser_grad_matches_fd(seed in any::<u64>()) {
        let mut r = rng(seed);
        let (eu, ei) = (rand_mat(4, 3, 1.0, &mut r), rand_mat(5, 3, 1.0, &mut r));
        let trip = [(0, 1, 2), (3, 4, 0), (0, 2, 1)];
        let (mut du, mut di) = (Mat::zeros(4, 3), Mat::zeros(5, 3));
        batch_sq_norm_backward(&eu, &ei, &trip, 0.7, &mut du, &mut di);
        assert_grad("Eq. (20) λ‖Θ‖² wrt E_U", &eu, &du, |v| 0.7 * batch_sq_norm(v, &ei, &trip));
        assert_grad("Eq. (20) λ‖Θ‖² wrt E_I", &ei, &di, |v| 0.7 * batch_sq_norm(&eu, v, &trip));
    }

    #[test]
    fn eq20_total_loss_grad_matches_fd_wrt_embeddings(seed in any::<u64>()) {
        let cfg = tiny_config();
        let (p, batch, g) = tiny_case(seed, &cfg);
        let out = loss_and_grads(&p, &batch, &g, &cfg).unwrap();
        prop_assume!(out.forward.kink_margin > KINK_MARGIN);
        let loss = |q: &Params| loss_and_grads(q, &batch, &g, &cfg).unwrap().loss;
        for (name, analytic) in [("user_emb", &out.grads.user_emb), ("item_emb", &out.grads.item_emb)] {
            let x0 = if name == "user_emb" { &p.user_emb } else { &p.item_emb };
            let numeric = numeric_grad(x0, |v| {
                let mut q = p.clone();
                if name == "user_emb" { q.user_emb = v.clone() } else { q.item_emb = v.clone() }
                loss(&q)
            });
            let err = rel_error(analytic, &numeric);
            prop_assert!(err <= TOLERANCE, "Eq. (20) wrt {}: {:e}", name, err);
        }
        prop_assert!((out.terms.total() - out.loss).abs() < 1e-15);
    }

    #[test]
    fn eq20_reduces_to_bpr_without_cl_and_regularisation(seed in any::<u64>()) {
        let base = tiny_config();
        let (p, batch, g) = tiny_case(seed, &base);
        let cfg = ModelConfig { beta: 0.0, lambda: 0.0, ..base.clone() };
        let out = loss_and_grads(&p, &batch, &g, &cfg).unwrap();
        let (zu, zi) = crane_reference::dense::vsplit(&out.forward.z, 7);
        let pos = scores(&zu, &zi, &batch.triplets.iter().map(|t| (t.0, t.1)).collect::<Vec<_>>());
        let neg = scores(&zu, &zi, &batch.triplets.iter().map(|t| (t.0, t.2)).collect::<Vec<_>>());
        prop_assert!((out.loss - bpr(&pos, &neg)).abs() < 1e-14);
        // With the paper's weights the terms add up as Eq. (20) states.
        let full = loss_and_grads(&p, &batch, &g, &base).unwrap();
        let t = full.terms;
        prop_assert!((full.loss - (t.bpr + t.cl_user + t.cl_item + t.reg)).abs() < 1e-14);
        // InfoNCE over |B| ≥ 2 rows is strictly positive (each softmax probability is < 1);
        // over one row it is ln 1 = 0.
        prop_assert_eq!(t.cl_user > 0.0, batch.distinct_users().len() > 1);
        prop_assert_eq!(t.cl_item > 0.0, batch.distinct_items().len() > 1);
        prop_assert!(t.cl_user >= 0.0 && t.cl_item >= 0.0 && t.reg > 0.0);
    }
}

/// Eq. (14) with a zero row, on a hand-computed example (3-4-5 triangles, so every cosine is
/// exact): x0 = (1, 0), x1 = (3, 4), x2 = 0 (an item without features), x3 = (0, 1),
/// x4 = (−1, 0). Cosines: S01 = 0.6, S13 = 0.8, S04 = −1, S14 = −0.6, S03 = S34 = 0, and row
/// and column 2 are 0 (S22 included). With k = 2: row 0 keeps {0: 1/1.6, 1: 0.6/1.6}, row 1
/// {1: 1/1.8, 3: 0.8/1.8}, row 3 {1: 0.8/1.8, 3: 1/1.8}, row 4 {3: 0, 4: 1} (item 3's 0 wins
/// over −0.6 and −1; item 2's 0 would have won the tie by its smaller id, were it a
/// candidate), and row 2 is empty. With k = 3, row 0's third entry is item 3 (value 0), not 2.
#[test]
fn eq14_zero_row_has_similarity_zero_is_nobodys_neighbour_and_gives_finite_output() {
    let x = Mat::from_fn(5, 2, |i, j| [[1.0, 0.0], [3.0, 4.0], [0.0, 0.0], [0.0, 1.0], [-1.0, 0.0]][i][j]);
    let (s, cache) = cosine_similarity(&x).unwrap();
    for j in 0..5 {
        assert_eq!(s[(2, j)], 0.0, "S_2{j}");
        assert_eq!(s[(j, 2)], 0.0, "S_{j}2");
    }
    assert!((s[(0, 1)] - 0.6).abs() < 1e-15 && (s[(1, 3)] - 0.8).abs() < 1e-15 && (s[(0, 4)] + 1.0).abs() < 1e-15);
    assert_eq!(knn_eligible(&s), vec![true, true, false, true, true]);

    let (adj, kc) = knn_graph(&s, 2).unwrap();
    let want: [&[(usize, f64)]; 5] = [
        &[(0, 1.0 / 1.6), (1, 0.6 / 1.6)],
        &[(1, 1.0 / 1.8), (3, 0.8 / 1.8)],
        &[],
        &[(1, 0.8 / 1.8), (3, 1.0 / 1.8)],
        &[(3, 0.0), (4, 1.0)],
    ];
    let o = adj.row_offsets();
    for (i, row) in want.iter().enumerate() {
        assert_eq!(row_cols(&adj, i), row.iter().map(|e| e.0).collect::<Vec<_>>(), "row {i}");
        for (v, (_, w)) in adj.values()[o[i]..o[i + 1]].iter().zip(row.iter()) {
            assert!((v - w).abs() < 1e-15, "row {i}: {v} vs {w}");
        }
    }
    assert!(adj.col_indices().iter().all(|&j| j != 2), "item 2 is somebody's neighbour");
    let (adj3, _) = knn_graph(&s, 3).unwrap();
    assert_eq!(row_cols(&adj3, 0), &[0, 1, 3]);
    assert!(row_cols(&adj3, 2).is_empty());

    // Propagation: the zero item's h is 0 (an empty row), everything finite. One layer by
    // hand: h_0 = 0.625 h0_0 + 0.375 h0_1, h_4 = h0_4 (its other entry has value 0).
    let h0 = Mat::from_fn(5, 3, |i, j| 1.0 + i as f64 - 0.5 * j as f64);
    let h1 = propagate(&adj, &h0, 1).pop().unwrap();
    for j in 0..3 {
        assert!((h1[(0, j)] - (0.625 * h0[(0, j)] + 0.375 * h0[(1, j)])).abs() < 1e-14);
        assert_eq!(h1[(2, j)], 0.0);
        assert!((h1[(4, j)] - h0[(4, j)]).abs() < 1e-14);
    }
    let hs = propagate(&adj, &h0, 2);
    let h = hs.last().unwrap();
    assert!((0..5).all(|i| (0..3).all(|j| h[(i, j)].is_finite())));
    assert!((0..3).all(|j| h[(2, j)] == 0.0));

    // Backward: finite, and no gradient reaches the zero row.
    let g = Mat::from_fn(5, 3, |i, j| 0.3 * i as f64 - 0.2 * j as f64 + 0.1);
    let (dh0, dvals) = propagate_backward(&adj, &hs, &g);
    assert!(dvals.iter().all(|v| v.is_finite()) && (0..5).all(|i| (0..3).all(|j| dh0[(i, j)].is_finite())));
    let dx = cosine_similarity_backward(&cache, &knn_graph_backward(&adj, &kc, &dvals));
    assert!((0..2).all(|j| dx[(2, j)] == 0.0), "the zero row got a gradient");
    assert!((0..5).all(|i| (0..2).all(|j| dx[(i, j)].is_finite())));
}

/// Every row but `zero` of `x` as one matrix, and back: finite differences perturb only the
/// non-zero rows (a perturbed zero row would stop being one: S is discontinuous there).
fn without_row(x: &Mat<f64>, zero: usize) -> Mat<f64> {
    Mat::from_fn(x.nrows() - 1, x.ncols(), |i, j| x[(i + (i >= zero) as usize, j)])
}

fn with_zero_row(v: &Mat<f64>, zero: usize) -> Mat<f64> {
    Mat::from_fn(v.nrows() + 1, v.ncols(), |i, j| match i.cmp(&zero) {
        std::cmp::Ordering::Less => v[(i, j)],
        std::cmp::Ordering::Equal => 0.0,
        std::cmp::Ordering::Greater => v[(i - 1, j)],
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The backward with a zero row: the other rows' gradients match central differences, the
    /// zero row's is exactly 0.
    #[test]
    fn eq14_zero_row_knn_graph_grad_matches_fd(seed in any::<u64>(), k in 1usize..6, zero in 0usize..7) {
        let mut r = rng(seed);
        let x = with_zero_row(&without_row(&rand_mat(7, 4, 1.0, &mut r), zero), zero);
        let (s, cache) = cosine_similarity(&x).unwrap();
        prop_assume!(knn_margin(&s, k) > KINK_MARGIN);
        let (adj, kc) = knn_graph(&s, k).unwrap();
        prop_assert!(row_cols(&adj, zero).is_empty());
        prop_assert!(adj.col_indices().iter().all(|&j| j != zero));
        let gm = rand_mat(adj.nnz(), 1, 1.0, &mut r);
        let g: Vec<f64> = (0..adj.nnz()).map(|e| gm[(e, 0)]).collect();
        let dx = cosine_similarity_backward(&cache, &knn_graph_backward(&adj, &kc, &g));
        prop_assert!((0..4).all(|j| dx[(zero, j)] == 0.0));
        let (xs, dxs) = (without_row(&x, zero), without_row(&dx, zero));
        assert_grad("Eq. (14) S̃ values wrt the non-zero rows of X_att", &xs, &dxs, |v| {
            let (s2, _) = cosine_similarity(&with_zero_row(v, zero)).unwrap();
            let (a2, _) = knn_graph(&s2, k).unwrap();
            a2.values().iter().zip(&g).map(|(a, b)| a * b).sum()
        });
        // The plain cosine's backward under a dense probe, too.
        let gs = rand_mat(7, 7, 1.0, &mut r);
        let dxc = cosine_similarity_backward(&cache, &gs);
        prop_assert!((0..4).all(|j| dxc[(zero, j)] == 0.0));
        assert_grad("Eq. (14) cosine wrt the non-zero rows", &xs, &without_row(&dxc, zero), |v| {
            probe(&gs, &cosine_similarity(&with_zero_row(v, zero)).unwrap().0)
        });
    }
}

/// Eq. (14)'s k is refused outside 1..=N (each end alone), and a row whose kept similarities sum
/// to NaN is an error naming the row, not a NaN graph.
#[test]
fn eq14_knn_graph_refuses_k_outside_one_to_n_and_a_nan_row() {
    let s = Mat::from_fn(3, 3, |i, j| if i == j { 1.0 } else { 0.1 * (i + 2 * j) as f64 });
    for (k, ok) in [(0, false), (1, true), (3, true), (4, false)] {
        assert_eq!(knn_graph(&s, k).is_ok(), ok, "k = {k}");
    }
    let mut nan = s.clone();
    nan[(1, 0)] = f64::NAN;
    let Err(e) = knn_graph(&nan, 3) else { panic!("a NaN row is refused") };
    let e = e.to_string();
    assert!(e.contains("Eq. (14): row 1"), "{e}");
}

/// The distance to Eq. (14)'s kinks, by hand: S = [[1, .5, .2], [.3, 1, .9], [.4, .6, 1]], k = 2.
/// Row gaps between the 2nd and 3rd largest: .3, .6, .2; smallest kept |s|: .5, .9, .6. So .2.
/// And the leaky ReLU's: the smallest |pre-activation| over the layers (∞ without a kink).
#[test]
fn eq14_knn_margin_and_the_activation_kink_margin_by_hand() {
    let rows = [[1.0, 0.5, 0.2], [0.3, 1.0, 0.9], [0.4, 0.6, 1.0]];
    let s = Mat::from_fn(3, 3, |i, j| rows[i][j]);
    assert!((knn_margin(&s, 2) - 0.2).abs() < 1e-15, "{}", knn_margin(&s, 2));
    // k = N: no gap, only the kept values: .2 again (row 0's smallest), then with row 0's .2
    // raised to .7 the smallest kept is .3.
    assert!((knn_margin(&s, 3) - 0.2).abs() < 1e-15);
    let mut t = s.clone();
    t[(0, 2)] = 0.7;
    assert!((knn_margin(&t, 3) - 0.3).abs() < 1e-15, "{}", knn_margin(&t, 3));
    use crane_reference::config::Sigma;
    use crane_reference::interaction_graph::{kink_margin, GcnCache, LayerCache};
    let layer = |z: [f64; 4]| LayerCache { ah: Mat::zeros(2, 2), z: Mat::from_fn(2, 2, |i, j| z[2 * i + j]) };
    let cache = GcnCache { layers: vec![layer([0.3, -0.1, 2.0, -0.7]), layer([-0.05, 1.0, 0.2, 0.4])] };
    assert_eq!(kink_margin(Sigma::LeakyRelu(0.2), &cache), 0.05);
    assert_eq!(kink_margin(Sigma::Identity, &cache), f64::INFINITY);
}

/// Eq. (18)'s `−log σ(x) = softplus(−x)`, by hand: softplus(0) = ln 2; softplus(±30) =
/// max(x, 0) + ln(1 + e^-30), and ln(1 + y) = y − y²/2 + … with y = e^-30 =
/// 9.357622968840175e-14, y²/2 = 4.378e-27: 9.357622968839737e-14; softplus(800) = 800 and
/// softplus(−800) = 0 (e^800 would overflow: the branch keeps it finite).
#[test]
fn eq18_softplus_by_hand_and_without_overflow() {
    assert_eq!(softplus(0.0), std::f64::consts::LN_2);
    let tail = 9.357_622_968_839_737e-14;
    assert!((softplus(30.0) - (30.0 + tail)).abs() < 1e-14);
    assert!((softplus(-30.0) - tail).abs() < 1e-28, "{:e}", softplus(-30.0));
    assert_eq!((softplus(800.0), softplus(-800.0)), (800.0, 0.0));
    // σ likewise: σ(0) = ½, σ(±800) = 1 and 0 (e^800 would give inf/inf in the other branch),
    // σ(−30) = y/(1 + y) = y − y² + … = 9.3576229688393e-14 (y² = 8.757e-27).
    assert_eq!((sigmoid(0.0), sigmoid(800.0), sigmoid(-800.0)), (0.5, 1.0, 0.0));
    assert!((sigmoid(-30.0) - 9.357_622_968_839_3e-14).abs() < 1e-28, "{:e}", sigmoid(-30.0));
}

/// Eq. (20)'s terms by name, in the order logs and CSV columns use, each weighted as it enters
/// the total: β = 0.5, λ = 0.1 on (bpr 1, cl_u 2, cl_i 3, ‖Θ‖² 4) give 1, 1, 1.5, 0.4.
#[test]
fn eq20_terms_by_name_are_weighted_and_in_log_order() {
    let t = total_loss(1.0, 2.0, 3.0, 4.0, 0.5, 0.1);
    let names: Vec<&str> = t.named().iter().map(|n| n.0).collect();
    assert_eq!(names, ["bpr", "cl_user", "cl_item", "reg", "modality"]);
    let vals: Vec<f64> = t.named().iter().map(|n| n.1).collect();
    assert_eq!(vals, [1.0, 1.0, 1.5, 0.4, 0.0]);
    assert_eq!(t.total(), 3.9);
}
