//! Eq. (5)-(6) user profiles and the projection, Eq. (7)-(13) RCA.

mod common;
use common::*;
use crane_reference::config::Aggregation;
use crane_reference::dense::{add, hcat, max_abs, mm, scale, vsplit};
use crane_reference::fd::{assert_grad, rel_error};
use crane_reference::rca::*;
use crane_reference::user_profiles::*;
use faer::Mat;
use proptest::prelude::*;

fn aggregation(k: u8) -> Aggregation {
    [Aggregation::Sum, Aggregation::Average, Aggregation::Max, Aggregation::Attention][k as usize % 4]
}

/// Random RCA parameters for d_f = 3, d_j = 4 (s alternates between 1 and 1/6).
fn random_theta(seed: u64) -> Theta {
    let mut r = rng(seed);
    let mut x = |a, b| rand_mat(a, b, 0.8, &mut r);
    Theta {
        scale: if seed % 2 == 0 { 1.0 } else { 1.0 / 6.0 },
        w_tr: x(6, 4),
        b_tr: x(1, 4),
        w_m: [x(4, 3), x(4, 3)],
        w_a: [x(3, 3), x(3, 3)],
        w_f: [x(3, 3), x(3, 3)],
    }
}

fn grads_of(g: &RcaGrads) -> Vec<Mat<f64>> {
    vec![
        g.w_tr.clone(),
        g.b_tr.clone(),
        g.w_m[0].clone(),
        g.w_m[1].clone(),
        g.w_a[0].clone(),
        g.w_a[1].clone(),
        g.w_f[0].clone(),
        g.w_f[1].clone(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn eq05_profiles_grad_matches_fd(seed in any::<u64>(), kind in 0u8..4) {
        let agg = aggregation(kind);
        let mut r = rng(seed);
        let a = rand_interactions(5, 7, 4, &mut r);
        let xi = rand_mat(7, 3, 1.0, &mut r);
        let att = rand_mat(3, 1, 1.0, &mut r);
        prop_assume!(max_pool_margin(&a, &xi, agg) > KINK_MARGIN);
        let (xu, cache) = user_profiles(&a, &xi, agg, &att);
        let g = rand_mat(xu.nrows(), 3, 1.0, &mut r);
        let (dxi, datt) = user_profiles_backward(&a, &xi, &att, &cache, &g);
        assert_grad("Eq. (5) wrt item features", &xi, &dxi, |x| probe(&g, &user_profiles(&a, x, agg, &att).0));
        assert_grad("Eq. (5) wrt attention vector", &att, &datt, |v| probe(&g, &user_profiles(&a, &xi, agg, v).0));
    }

    #[test]
    fn eq05_sum_profiles_are_linear_in_features(seed in any::<u64>(), s in -3.0f64..3.0) {
        let mut r = rng(seed);
        let a = rand_interactions(5, 7, 4, &mut r);
        let (x, y) = (rand_mat(7, 3, 1.0, &mut r), rand_mat(7, 3, 1.0, &mut r));
        let att = Mat::zeros(3, 1);
        let lhs = user_profiles(&a, &add(&scale(&x, s), &y), Aggregation::Sum, &att).0;
        let rhs = add(&scale(&user_profiles(&a, &x, Aggregation::Sum, &att).0, s), &user_profiles(&a, &y, Aggregation::Sum, &att).0);
        prop_assert!(rel_error(&lhs, &rhs) < 1e-13);
        // Average = sum / degree, and max >= average entrywise.
        let sum = user_profiles(&a, &x, Aggregation::Sum, &att).0;
        let avg = user_profiles(&a, &x, Aggregation::Average, &att).0;
        let max = user_profiles(&a, &x, Aggregation::Max, &att).0;
        for u in 0..5 {
            let deg = crane_reference::dense::row_cols(&a, u).len() as f64;
            for j in 0..3 {
                prop_assert!((avg[(u, j)] * deg - sum[(u, j)]).abs() < 1e-12);
                prop_assert!(max[(u, j)] >= avg[(u, j)] - 1e-12);
            }
        }
    }

    #[test]
    fn eq05_attention_weights_are_a_convex_combination(seed in any::<u64>()) {
        let mut r = rng(seed);
        let a = rand_interactions(5, 7, 4, &mut r);
        let xi = rand_mat(7, 3, 1.0, &mut r);
        // Constant features per column: any convex combination returns that constant.
        let cst = Mat::from_fn(7, 3, |_, j| j as f64 + 1.0);
        let att = rand_mat(3, 1, 2.0, &mut r);
        let (xu, _) = user_profiles(&a, &cst, Aggregation::Attention, &att);
        for u in 0..5 { for j in 0..3 { prop_assert!((xu[(u, j)] - (j as f64 + 1.0)).abs() < 1e-12); } }
        let (xu, ProfileCache::Attention { alpha }) = user_profiles(&a, &xi, Aggregation::Attention, &att) else { unreachable!() };
        prop_assert!(alpha.iter().all(|&w| w > 0.0 && w <= 1.0));
        prop_assert!(xu.nrows() == 5);
    }

    #[test]
    fn eq06_stacked_modality_grad_matches_fd(seed in any::<u64>(), kind in 0u8..4) {
        // X^m = [agg(A, X P + 1p); X P + 1p], differentiated wrt the projection P and p.
        let agg = aggregation(kind);
        let mut r = rng(seed);
        let a = rand_interactions(4, 6, 3, &mut r);
        let raw = rand_mat(6, 5, 1.0, &mut r);
        let (p, b) = (rand_mat(5, 3, 1.0, &mut r), rand_mat(1, 3, 1.0, &mut r));
        let att = rand_mat(3, 1, 1.0, &mut r);
        let stack = |p: &Mat<f64>, b: &Mat<f64>| {
            let xi = project(&raw, p, b);
            let (xu, c) = user_profiles(&a, &xi, agg, &att);
            (stack_entities(&xu, &xi), xi, c)
        };
        let (x, xi, cache) = stack(&p, &b);
        prop_assume!(max_pool_margin(&a, &xi, agg) > KINK_MARGIN);
        let g = rand_mat(x.nrows(), 3, 1.0, &mut r);
        let (dxu, mut dxi) = stack_entities_backward(&g, 4);
        let (dprof, _) = user_profiles_backward(&a, &xi, &att, &cache, &dxu);
        crane_reference::dense::add_assign(&mut dxi, &dprof);
        let (dp, db) = project_backward(&raw, &dxi);
        assert_grad("Eq. (6) wrt projection", &p, &dp, |p| probe(&g, &stack(p, &b).0));
        assert_grad("Eq. (6) wrt projection bias", &b, &db, |b| probe(&g, &stack(&p, b).0));
    }

    #[test]
    fn eq06_item_rows_are_the_projected_features(seed in any::<u64>()) {
        let mut r = rng(seed);
        let a = rand_interactions(4, 6, 3, &mut r);
        let raw = rand_mat(6, 5, 1.0, &mut r);
        let (p, b) = (rand_mat(5, 3, 1.0, &mut r), Mat::zeros(1, 3));
        let xi = project(&raw, &p, &b);
        let (xu, _) = user_profiles(&a, &xi, Aggregation::Sum, &Mat::zeros(3, 1));
        let x = stack_entities(&xu, &xi);
        let (top, bottom) = vsplit(&x, 4);
        prop_assert_eq!(bottom, xi);
        // Without bias, projecting the summed raw features equals summing projected ones.
        let raw_sum = crane_reference::interaction_graph::aggregate(&a, &raw);
        prop_assert!(rel_error(&top, &mm(&raw_sum, &p)) < 1e-13);
    }

    #[test]
    fn eq07_joint_features_grad_matches_fd(seed in any::<u64>()) {
        let mut r = rng(seed);
        let (xv, xt) = (rand_mat(6, 3, 1.0, &mut r), rand_mat(6, 2, 1.0, &mut r));
        let g = rand_mat(6, 5, 1.0, &mut r);
        let (dv, dt) = joint_features_backward(&g, 3);
        assert_grad("Eq. (7) wrt X^v", &xv, &dv, |x| probe(&g, &joint_features(x, &xt)));
        assert_grad("Eq. (7) wrt X^t", &xt, &dt, |x| probe(&g, &joint_features(&xv, x)));
        let (a, b) = joint_features_backward(&joint_features(&xv, &xt), 3);
        prop_assert_eq!((a, b), (xv, xt));
    }

    #[test]
    fn eq08_joint_transform_grad_matches_fd(seed in any::<u64>()) {
        let mut r = rng(seed);
        let (e, w, b) = (rand_mat(6, 5, 1.0, &mut r), rand_mat(5, 4, 1.0, &mut r), rand_mat(1, 4, 1.0, &mut r));
        let g = rand_mat(6, 4, 1.0, &mut r);
        let (de, dw, db) = joint_transform_backward(&e, &w, &g);
        assert_grad("Eq. (8) wrt E", &e, &de, |x| probe(&g, &joint_transform(x, &w, &b)));
        assert_grad("Eq. (8) wrt W_tr", &w, &dw, |x| probe(&g, &joint_transform(&e, x, &b)));
        assert_grad("Eq. (8) wrt b_tr", &b, &db, |x| probe(&g, &joint_transform(&e, &w, x)));
    }

    #[test]
    fn eq08_bias_shifts_every_row_equally(seed in any::<u64>()) {
        let mut r = rng(seed);
        let (e, w, b) = (rand_mat(6, 5, 1.0, &mut r), rand_mat(5, 4, 1.0, &mut r), rand_mat(1, 4, 1.0, &mut r));
        let with = joint_transform(&e, &w, &b);
        let without = joint_transform(&e, &w, &Mat::zeros(1, 4));
        for i in 0..6 { for j in 0..4 { prop_assert!((with[(i, j)] - without[(i, j)] - b[(0, j)]).abs() < 1e-14); } }
    }

    #[test]
    fn eq09_anchor_grad_matches_fd(seed in any::<u64>()) {
        let mut r = rng(seed);
        let (ep, w) = (rand_mat(6, 4, 1.0, &mut r), rand_mat(4, 3, 1.0, &mut r));
        let g = rand_mat(6, 3, 1.0, &mut r);
        let (dep, dw) = modality_anchors_backward(&ep, &w, &g);
        assert_grad("Eq. (9) wrt E'", &ep, &dep, |x| probe(&g, &modality_anchors(x, &w)));
        assert_grad("Eq. (9) wrt W_m", &w, &dw, |x| probe(&g, &modality_anchors(&ep, x)));
        // Linear in E': anchors of a sum are the sum of anchors.
        let e2 = rand_mat(6, 4, 1.0, &mut r);
        prop_assert!(rel_error(&modality_anchors(&add(&ep, &e2), &w), &add(&modality_anchors(&ep, &w), &modality_anchors(&e2, &w))) < 1e-13);
    }

    #[test]
    fn eq10_correlation_grad_matches_fd(seed in any::<u64>()) {
        let mut r = rng(seed);
        let (x, p) = (rand_mat(6, 3, 1.0, &mut r), rand_mat(6, 3, 1.0, &mut r));
        let c = correlation(&x, &p);
        let g = rand_mat(6, 6, 1.0, &mut r);
        let (dx, dp) = correlation_backward(&x, &p, &c, &g);
        assert_grad("Eq. (10) wrt X^m", &x, &dx, |v| probe(&g, &correlation(v, &p)));
        assert_grad("Eq. (10) wrt P^m", &p, &dp, |v| probe(&g, &correlation(&x, v)));
    }

    #[test]
    fn eq10_correlation_is_bounded_and_odd(seed in any::<u64>()) {
        let mut r = rng(seed);
        // |X Pᵀ| ≤ 3 · 1.5 · 1.5 keeps tanh below the 1 - 2⁻⁵³ at which f64 rounds it to 1.
        let (x, p) = (rand_mat(6, 3, 1.5, &mut r), rand_mat(6, 3, 1.5, &mut r));
        let c = correlation(&x, &p);
        prop_assert!(max_abs(&c) < 1.0);
        prop_assert!(rel_error(&correlation(&x, &scale(&p, -1.0)), &scale(&c, -1.0)) < 1e-15);
    }

    #[test]
    fn eq11_refine_grad_matches_fd(seed in any::<u64>(), mean in any::<bool>()) {
        let s = if mean { 1.0 / 6.0 } else { 1.0 };
        let mut r = rng(seed);
        let (c, x, w) = (rand_mat(6, 6, 1.0, &mut r), rand_mat(6, 3, 1.0, &mut r), rand_mat(3, 3, 1.0, &mut r));
        let (f, pre) = refine(&c, &x, &w, s);
        prop_assume!(crane_reference::dense::min_abs(&pre) > KINK_MARGIN);
        let g = rand_mat(6, 3, 1.0, &mut r);
        let (dc, dx, dw) = refine_backward(&c, &x, &w, s, &pre, &g);
        assert_grad("Eq. (11) wrt C^m", &c, &dc, |v| probe(&g, &refine(v, &x, &w, s).0));
        assert_grad("Eq. (11) wrt X^m", &x, &dx, |v| probe(&g, &refine(&c, v, &w, s).0));
        assert_grad("Eq. (11) wrt W_a^m", &w, &dw, |v| probe(&g, &refine(&c, &x, v, s).0));
        prop_assert!(f.nrows() == 6);
    }

    #[test]
    fn eq11_refine_is_nonnegative_and_positively_homogeneous(seed in any::<u64>(), s in 0.1f64..5.0) {
        let mut r = rng(seed);
        let (c, x, w) = (rand_mat(6, 6, 1.0, &mut r), rand_mat(6, 3, 1.0, &mut r), rand_mat(3, 3, 1.0, &mut r));
        let (f, _) = refine(&c, &x, &w, 1.0);
        prop_assert!((0..6).all(|i| (0..3).all(|j| f[(i, j)] >= 0.0)));
        let (fs, _) = refine(&c, &x, &scale(&w, s), 1.0);
        prop_assert!(rel_error(&fs, &scale(&f, s)) < 1e-13);
        // The mean scale of Eq. (11) is the same map with W_a divided by M+N.
        let (fm, _) = refine(&c, &x, &w, 1.0 / 6.0);
        prop_assert!(rel_error(&fm, &refine(&c, &x, &scale(&w, 1.0 / 6.0), 1.0).0) < 1e-13);
    }

    #[test]
    fn eq12_residual_grad_matches_fd(seed in any::<u64>()) {
        let mut r = rng(seed);
        let (f, x, w) = (rand_mat(6, 3, 1.0, &mut r), rand_mat(6, 3, 1.0, &mut r), rand_mat(3, 3, 1.0, &mut r));
        let g = rand_mat(6, 3, 1.0, &mut r);
        let (df, dx, dw) = residual_update_backward(&x, &w, &g);
        assert_grad("Eq. (12) wrt F^m", &f, &df, |v| probe(&g, &residual_update(v, &x, &w)));
        assert_grad("Eq. (12) wrt X^m", &x, &dx, |v| probe(&g, &residual_update(&f, v, &w)));
        assert_grad("Eq. (12) wrt W_f^m", &w, &dw, |v| probe(&g, &residual_update(&f, &x, v)));
    }

    #[test]
    fn eq12_zero_refinement_and_identity_residual_keep_x(seed in any::<u64>()) {
        let mut r = rng(seed);
        let x = rand_mat(6, 3, 1.0, &mut r);
        let out = residual_update(&Mat::zeros(6, 3), &x, &Mat::identity(3, 3));
        prop_assert_eq!(out, x);
    }

    #[test]
    fn eq13_rca_grad_matches_fd(seed in any::<u64>(), rounds in 1usize..4) {
        let mut r = rng(seed);
        let (xv, xt) = (rand_mat(6, 3, 0.7, &mut r), rand_mat(6, 3, 0.7, &mut r));
        let mut th = random_theta(seed ^ 13);
        let (xatt, cache) = rca(&xv, &xt, &th.view(), rounds);
        prop_assume!(kink_margin(&cache) > KINK_MARGIN);
        let g = rand_mat(6, 6, 1.0, &mut r);
        let (dv, dt, grads) = rca_backward(&th.view(), &cache, &g, 3);
        assert_grad("Eq. (13) wrt X^v(0)", &xv, &dv, |v| probe(&g, &rca(v, &xt, &th.view(), rounds).0));
        assert_grad("Eq. (13) wrt X^t(0)", &xt, &dt, |v| probe(&g, &rca(&xv, v, &th.view(), rounds).0));
        let analytic = grads_of(&grads);
        for (k, analytic) in analytic.iter().enumerate() {
            let x0 = th.each()[k].1.clone();
            let name = th.each()[k].0;
            let numeric = crane_reference::fd::numeric_grad(&x0, |v| {
                *th.each()[k].1 = v.clone();
                probe(&g, &rca(&xv, &xt, &th.view(), rounds).0)
            });
            *th.each()[k].1 = x0;
            let err = rel_error(analytic, &numeric);
            prop_assert!(err <= crane_reference::fd::TOLERANCE, "Eq. (13) wrt {}: relative error {:e}", name, err);
        }
        prop_assert!(xatt.ncols() == 6);
    }

    #[test]
    fn eq13_rounds_compose_and_zero_rounds_concatenate(seed in any::<u64>()) {
        let mut r = rng(seed);
        let (xv, xt) = (rand_mat(6, 3, 0.7, &mut r), rand_mat(6, 3, 0.7, &mut r));
        let th = random_theta(seed);
        let ([v1, t1], _) = rca_round(&xv, &xt, &th.view());
        let ([v2, t2], _) = rca_round(&v1, &t1, &th.view());
        let (two, _) = rca(&xv, &xt, &th.view(), 2);
        prop_assert_eq!(two, hcat(&v2, &t2));
        prop_assert_eq!(rca(&xv, &xt, &th.view(), 0).0, hcat(&xv, &xt));
        // Within a round the textual update reads the *previous* visual features: changing
        // W_a^v leaves X^{t(1)} unchanged.
        let mut th2 = random_theta(seed);
        th2.w_a[0] = rand_mat(3, 3, 1.0, &mut r);
        let ([_, t1b], _) = rca_round(&xv, &xt, &th2.view());
        prop_assert_eq!(t1b, t1);
    }
}

/// Eq. (5) with attention weights, by hand and at scores where e^score overflows: user 0 holds
/// items 0 and 1 with scores x_i·a = 400 and 401, so α = (1, e)/(1 + e) = (0.2689414213699951,
/// 0.7310585786300049); the profile is α₀ x₀ + α₁ x₁. Unshifted, e^401 = ∞ and α = NaN.
#[test]
fn eq05_attention_profile_by_hand_without_overflow() {
    let a = nalgebra_sparse::CsrMatrix::try_from_csr_data(1, 2, vec![0, 2], vec![0, 1], vec![1.0, 1.0]).unwrap();
    let xi = Mat::from_fn(2, 2, |i, j| [[400.0, 3.0], [401.0, -1.0]][i][j]);
    let att = Mat::from_fn(2, 1, |j, _| [1.0, 0.0][j]);
    let (out, _) = user_profiles(&a, &xi, Aggregation::Attention, &att);
    let alpha = [0.268_941_421_369_995_1, 0.731_058_578_630_004_9];
    for j in 0..2 {
        let want = alpha[0] * xi[(0, j)] + alpha[1] * xi[(1, j)];
        assert!((out[(0, j)] - want).abs() < 1e-12, "column {j}: {} vs {want}", out[(0, j)]);
    }
}

/// The distance to max pooling's kink, by hand: user 0 holds items {0, 1, 2}, user 1 {0, 3},
/// user 2 only {3} (no second candidate: no kink). Columns of x: (1, 3, 2.5, 1.1) and
/// (5, 2, 4.2, 0). Gaps between the two largest: user 0: 0.5 and 0.8; user 1: 0.1 and 5.
/// So 0.1; and ∞ for the aggregations without a max.
#[test]
fn eq05_max_pool_margin_by_hand() {
    let a = nalgebra_sparse::CsrMatrix::try_from_csr_data(3, 4, vec![0, 3, 5, 6], vec![0, 1, 2, 0, 3, 3], vec![1.0; 6])
        .unwrap();
    let cols = [[1.0, 3.0, 2.5, 1.1], [5.0, 2.0, 4.2, 0.0]];
    let xi = Mat::from_fn(4, 2, |i, j| cols[j][i]);
    assert!((max_pool_margin(&a, &xi, Aggregation::Max) - 0.1).abs() < 1e-15);
    for agg in [Aggregation::Sum, Aggregation::Average, Aggregation::Attention] {
        assert_eq!(max_pool_margin(&a, &xi, agg), f64::INFINITY);
    }
}
