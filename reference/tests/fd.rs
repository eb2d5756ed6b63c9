//! The finite-difference check itself: every backward in the project is held to `assert_grad`, so
//! it must fail on a wrong gradient, and its measure (`rel_error`) must be the documented one.
//! Expected values are computed by hand in the comments.

use crane_reference::fd::{assert_grad, numeric_grad, rel_error, TOLERANCE};
use faer::Mat;

fn col(v: &[f64]) -> Mat<f64> {
    Mat::from_fn(v.len(), 1, |i, _| v[i])
}

#[test]
fn fd_rel_error_is_the_norm_of_the_difference_over_the_larger_norm() {
    // ‖(3, 4) − 0‖ = 5 over max(5, 0) = 1.
    assert_eq!(rel_error(&col(&[3.0, 4.0]), &col(&[0.0, 0.0])), 1.0);
    // a = (1, 2), b = (1, 4): ‖a − b‖ = 2, ‖a‖ = √5, ‖b‖ = √17: 2/√17 = 0.485071250072666.
    let e = rel_error(&col(&[1.0, 2.0]), &col(&[1.0, 4.0]));
    assert!((e - 0.485_071_250_072_666).abs() < 1e-15, "{e}");
    assert_eq!(e, rel_error(&col(&[1.0, 4.0]), &col(&[1.0, 2.0])), "symmetric");
    // Over every entry of a matrix: a = [[1, 0], [0, 1]], b = [[1, 1], [0, 1]]: 1/√3.
    let a = Mat::from_fn(2, 2, |i, j| if i == j { 1.0 } else { 0.0 });
    let b = Mat::from_fn(2, 2, |i, j| if i <= j { 1.0 } else { 0.0 });
    assert!((rel_error(&a, &b) - 1.0 / 3f64.sqrt()).abs() < 1e-15);
    // Two zero gradients agree (the 1e-8 floor, no 0/0); tiny ones are measured against it.
    assert_eq!(rel_error(&col(&[0.0, 0.0]), &col(&[0.0, 0.0])), 0.0);
    assert!((rel_error(&col(&[0.0]), &col(&[1e-9])) - 0.1).abs() < 1e-12);
}

#[test]
fn fd_numeric_grad_of_a_known_function() {
    // f(x) = Σ sin(x_ij) · (i + 1): ∂f/∂x_ij = cos(x_ij) · (i + 1).
    let x = Mat::from_fn(3, 2, |i, j| 0.3 * i as f64 - 0.7 * j as f64 + 0.1);
    let g = numeric_grad(&x, |x| {
        let mut s = 0.0;
        for j in 0..x.ncols() {
            for i in 0..x.nrows() {
                s += x[(i, j)].sin() * (i + 1) as f64;
            }
        }
        s
    });
    for j in 0..2 {
        for i in 0..3 {
            let want = x[(i, j)].cos() * (i + 1) as f64;
            assert!((g[(i, j)] - want).abs() < 1e-9, "({i}, {j}): {} vs {want}", g[(i, j)]);
        }
    }
}

#[test]
fn fd_assert_grad_passes_the_right_gradient_and_fails_a_slightly_wrong_one() {
    // f(x) = Σ x², ∇f = 2x.
    let x = Mat::from_fn(4, 3, |i, j| (i as f64 - 1.5) * 0.4 + j as f64 * 0.25);
    let f = |x: &Mat<f64>| {
        let mut s = 0.0;
        for j in 0..x.ncols() {
            for i in 0..x.nrows() {
                s += x[(i, j)] * x[(i, j)];
            }
        }
        s
    };
    let right = Mat::from_fn(4, 3, |i, j| 2.0 * x[(i, j)]);
    assert_grad("2x", &x, &right, f);
    // Scaled by 1 + 1e-5 (relative error 1e-5 > TOLERANCE = 1e-6), or one entry changed: refused.
    let scaled = Mat::from_fn(4, 3, |i, j| right[(i, j)] * (1.0 + 10.0 * TOLERANCE));
    let one_off = Mat::from_fn(4, 3, |i, j| right[(i, j)] + if (i, j) == (2, 1) { 1e-3 } else { 0.0 });
    for (what, wrong) in [("scaled", scaled), ("one entry", one_off)] {
        let r = std::panic::catch_unwind(|| assert_grad(what, &x, &wrong, f));
        let msg = r.err().map(|e| e.downcast_ref::<String>().cloned().unwrap_or_default());
        assert!(msg.as_deref().is_some_and(|m| m.contains("relative error")), "{what}: not refused ({msg:?})");
    }
}
