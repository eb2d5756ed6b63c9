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
    }
}
