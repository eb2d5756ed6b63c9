//! The element-wise kernels of `crane::engine::cpu::simd` run an AVX2 build where the CPU has
//! it: each must give bit for bit what a plain scalar loop of the same operations gives.

use crane::engine::cpu::ops::{fast_exp, fast_tanh};
use crane::engine::cpu::simd;

/// Deterministic values in [-4, 4), with a length that leaves a remainder after 16-lane chunks.
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 8.0 - 4.0
        })
        .collect()
}

#[test]
fn simd_kernels_match_scalar_loops_bit_for_bit() {
    eprintln!("AVX2 build in use: {}", simd::avx2_in_use());
    for n in [1, 15, 16, 17, 1000, 7050] {
        let x = values(n, n as u32);
        let y = values(n, 7 * n as u32 + 1);

        let mut t = x.clone();
        simd::tanh_in_place(&mut t);
        assert!(t.iter().zip(&x).all(|(a, &v)| a.to_bits() == fast_tanh(v).to_bits()), "tanh, n = {n}");

        let mut d = y.clone();
        simd::mul_one_minus_sq(&mut d, &t);
        assert!(d.iter().zip(y.iter().zip(&t)).all(|(a, (&g, &c))| a.to_bits() == (g * (1.0 - c * c)).to_bits()));

        let mut e = x.clone();
        simd::exp_shift(&mut e, 0.75);
        assert!(e.iter().zip(&x).all(|(a, &v)| a.to_bits() == fast_exp(v - 0.75).to_bits()), "exp, n = {n}");

        // Softmax: the scalar loop with the same 16-lane sum.
        let mut p = x.clone();
        let lse = simd::softmax_row(&mut p);
        let mx = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let ex: Vec<f32> = x.iter().map(|&v| fast_exp(v - mx)).collect();
        let z = lane_sum(&ex);
        let inv = (1.0 / z) as f32;
        assert!(p.iter().zip(&ex).all(|(a, &v)| a.to_bits() == (v * inv).to_bits()), "softmax, n = {n}");
        assert_eq!(lse.to_bits(), (mx + z.ln() as f32).to_bits());
        // A softmax row sums to 1 and its log-sum-exp is that of the inputs.
        assert!((p.iter().map(|&v| v as f64).sum::<f64>() - 1.0).abs() < 1e-5);
        let lse64 = x.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln();
        assert!((lse as f64 - lse64).abs() < 1e-5, "{lse} vs {lse64}");

        let mut ds = y.clone();
        simd::softmax_backward_row(&mut ds, &p);
        let di = lane_dot(&y, &p) as f32;
        assert!(ds.iter().zip(y.iter().zip(&p)).all(|(a, (&g, &pv))| a.to_bits() == (pv * (g - di)).to_bits()));
        // Σ_j dS_j = Σ p_j dP_j − D Σ p_j = 0 (up to rounding): the softmax ignores shifts.
        assert!(ds.iter().map(|&v| v as f64).sum::<f64>().abs() < 1e-5);
    }
}

fn lane_sum(x: &[f32]) -> f64 {
    let mut acc = [0f32; 16];
    let c = x.chunks_exact(16);
    let rest: f64 = c.remainder().iter().map(|&v| v as f64).sum();
    for ch in c {
        for k in 0..16 {
            acc[k] += ch[k];
        }
    }
    acc.iter().map(|&a| a as f64).sum::<f64>() + rest
}

fn lane_dot(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let rest: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(&x, &y)| x as f64 * y as f64).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..16 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().map(|&v| v as f64).sum::<f64>() + rest
}
