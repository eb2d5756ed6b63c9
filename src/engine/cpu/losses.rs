//! Eq. (18)-(20) on the CPU (f32 values, f64 accumulation of sums).

use super::ops::{dot, Dense};
use crane_reference::losses::{sigmoid, softplus};

/// Eq. (18): mean BPR and `(dpos, dneg)`.
pub fn bpr(pos: &[f32], neg: &[f32]) -> (f64, Vec<f32>, Vec<f32>) {
    let b = pos.len() as f64;
    let loss = pos.iter().zip(neg).map(|(&p, &n)| softplus((n - p) as f64)).sum::<f64>() / b;
    let dneg: Vec<f32> = pos.iter().zip(neg).map(|(&p, &n)| (sigmoid((n - p) as f64) / b) as f32).collect();
    let dpos = dneg.iter().map(|d| -d).collect();
    (loss, dpos, dneg)
}

fn unit(x: &Dense) -> (Dense, Vec<f32>) {
    let norms: Vec<f32> = (0..x.rows).map(|i| dot(x.row(i), x.row(i)).sqrt().max(1e-12)).collect();
    let y = Dense::from_fn(x.rows, x.cols, |i, c| x.row(i)[c] / norms[i]);
    (y, norms)
}

fn unit_backward(y: &Dense, norms: &[f32], dy: &Dense) -> Dense {
    Dense::from_fn(y.rows, y.cols, |i, c| {
        let radial = if norms[i] > 1e-12 { dot(dy.row(i), y.row(i)) * y.row(i)[c] } else { 0.0 };
        (dy.row(i)[c] - radial) / norms[i]
    })
}

/// Eq. (19): InfoNCE over the rows of `a` (collaborative) and `b` (semantic), scaled by `g`;
/// returns `(loss, da, db)`.
pub fn info_nce(a: &Dense, b: &Dense, tau: f32, g: f32) -> (f64, Dense, Dense) {
    let n = a.rows;
    let (ua, na) = unit(a);
    let (ub, nb) = unit(b);
    let mut dl = Dense::zeros(n, n);
    let mut loss = 0.0f64;
    for i in 0..n {
        let logits: Vec<f64> = (0..n).map(|j| dot(ua.row(i), ub.row(j)) as f64 / tau as f64).collect();
        let mx = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = logits.iter().map(|l| (l - mx).exp()).sum();
        loss += mx + z.ln() - logits[i];
        for j in 0..n {
            let p = (logits[j] - mx).exp() / z;
            dl.row_mut(i)[j] = (g as f64 * (p - if i == j { 1.0 } else { 0.0 }) / n as f64) as f32;
        }
    }
    let mut d_ua = super::ops::mm(&dl, false, &ub, false);
    d_ua.scale(1.0 / tau);
    let mut d_ub = super::ops::mm(&dl, true, &ua, false);
    d_ub.scale(1.0 / tau);
    (loss / n as f64, unit_backward(&ua, &na, &d_ua), unit_backward(&ub, &nb, &d_ub))
}
