//! Central finite differences, the check every backward in this crate is held to.

use faer::Mat;

/// The step of the central differences. With f64 and O(1) inputs, truncation error is
/// O(h²) ≈ 1e-12 and round-off O(ε/h) ≈ 1e-10, both far below the 1e-6 tolerance.
pub const STEP: f64 = 1e-5;

/// The tolerance of every gradient check in the project (relative, see [`rel_error`]).
pub const TOLERANCE: f64 = 1e-6;

/// Central-difference gradient of the scalar `f` at `x`, `[r, c]`.
pub fn numeric_grad(x: &Mat<f64>, mut f: impl FnMut(&Mat<f64>) -> f64) -> Mat<f64> {
    let mut g = Mat::zeros(x.nrows(), x.ncols());
    let mut xp = x.clone();
    for j in 0..x.ncols() {
        for i in 0..x.nrows() {
            let x0 = x[(i, j)];
            xp[(i, j)] = x0 + STEP;
            let fp = f(&xp);
            xp[(i, j)] = x0 - STEP;
            let fm = f(&xp);
            xp[(i, j)] = x0;
            g[(i, j)] = (fp - fm) / (2.0 * STEP);
        }
    }
    g
}

/// Relative error `‖a − b‖₂ / max(‖a‖₂, ‖b‖₂, 1e-8)` over all entries: the norm-wise measure
/// that stays meaningful when single entries are (near) zero. The floor keeps two all-zero
/// gradients (a tensor the loss does not use) from dividing by zero.
pub fn rel_error(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()), "rel_error: shape mismatch");
    let mut diff = 0.0;
    let (mut na, mut nb) = (0.0, 0.0);
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            diff += (a[(i, j)] - b[(i, j)]).powi(2);
            na += a[(i, j)].powi(2);
            nb += b[(i, j)].powi(2);
        }
    }
    diff.sqrt() / na.sqrt().max(nb.sqrt()).max(1e-8)
}

/// Asserts that `analytic` matches the central-difference gradient of `f` at `x`.
pub fn assert_grad(what: &str, x: &Mat<f64>, analytic: &Mat<f64>, f: impl FnMut(&Mat<f64>) -> f64) {
    let numeric = numeric_grad(x, f);
    let err = rel_error(analytic, &numeric);
    assert!(
        err <= TOLERANCE,
        "{what}: relative error {err:.3e} > {TOLERANCE:e}\nanalytic = {analytic:?}\nnumeric = {numeric:?}"
    );
}

/// Random matrix with entries uniform in `[-scale, scale)` from a seeded ChaCha8 stream.
pub fn random(rows: usize, cols: usize, scale: f64, rng: &mut rand_chacha::ChaCha8Rng) -> Mat<f64> {
    use rand::Rng;
    let mut m = Mat::zeros(rows, cols);
    for i in 0..rows {
        for j in 0..cols {
            m[(i, j)] = rng.random_range(-scale..scale);
        }
    }
    m
}
