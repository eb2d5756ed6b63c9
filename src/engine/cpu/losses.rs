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

/// Eq. (19): InfoNCE over the rows of `a` (collaborative) and `b` (semantic), scaled by `g`;
/// returns `(loss, da, db)`. Logits by one GEMM; softmax rows in parallel, in f64.
pub fn info_nce(a: &Dense, b: &Dense, tau: f32, g: f32) -> (f64, Dense, Dense) {
    use rayon::prelude::*;
    let n = a.rows;
    let (ua, na) = unit(a);
    let (ub, nb) = unit(b);
    let logits = super::ops::mm(&ua, false, &ub, true);
    let mut dl = Dense::zeros(n, n);
    let inv_tau = 1.0 / tau as f64;
    let per_row: Vec<f64> = dl
        .data
        .par_chunks_mut(n.max(1))
        .enumerate()
        .map(|(i, out)| {
            let row = logits.row(i);
            let mx = row.iter().fold(f64::NEG_INFINITY, |m, &l| m.max(l as f64 * inv_tau));
            let ex: Vec<f64> = row.iter().map(|&l| (l as f64 * inv_tau - mx).exp()).collect();
            let z: f64 = ex.iter().sum();
            for (j, o) in out.iter_mut().enumerate() {
                let p = ex[j] / z;
                *o = (g as f64 * (p - if i == j { 1.0 } else { 0.0 }) / n as f64) as f32;
            }
            mx + z.ln() - row[i] as f64 * inv_tau
        })
        .collect();
    let loss: f64 = per_row.iter().sum();
    let mut d_ua = super::ops::mm(&dl, false, &ub, false);
    d_ua.scale(1.0 / tau);
    let mut d_ub = super::ops::mm(&dl, true, &ua, false);
    d_ub.scale(1.0 / tau);
    super::ops::unit_rows_backward(&ua, &na, &mut d_ua);
    super::ops::unit_rows_backward(&ub, &nb, &mut d_ub);
    (loss / n as f64, d_ua, d_ub)
}
