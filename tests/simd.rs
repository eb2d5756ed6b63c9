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
    eprintln!("kernel build in use: {:?}", simd::level());
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

        let mut e = x.clone();
        simd::exp_shift_each(&mut e, &y);
        assert!(
            e.iter().zip(x.iter().zip(&y)).all(|(a, (&v, &l))| a.to_bits() == fast_exp(v - l).to_bits()),
            "exp each, n = {n}"
        );
    }
}

#[test]
fn adam_update_matches_scalar_torch_form_and_the_references_formula() {
    for n in [1, 17, 7050] {
        let (p0, g0) = (values(n, 3 * n as u32), values(n, 5 * n as u32 + 2));
        let m0: Vec<f32> = values(n, 11).iter().map(|v| v * 0.01).collect();
        let v0: Vec<f32> = values(n, 13).iter().map(|v| v * v * 1e-4).collect();
        let (lr, t) = (1e-3, 7);
        let s = simd::AdamStep::new(lr, t);
        let (mut p, mut g, mut m, mut v) = (p0.clone(), g0.clone(), m0.clone(), v0.clone());
        simd::adam_update(&mut p, &mut g, &mut m, &mut v, s);
        assert!(g.iter().all(|&x| x == 0.0), "the gradient is consumed");
        for k in 0..n {
            // The same operations as a scalar loop: bit for bit.
            let mk = m0[k] + s.one_minus_beta1 * (g0[k] - m0[k]);
            let vk = s.beta2 * v0[k] + s.one_minus_beta2 * g0[k] * g0[k];
            let pk = p0[k] - s.step_size * (mk / (vk.sqrt() / s.c2_sqrt + s.eps));
            assert_eq!((m[k].to_bits(), v[k].to_bits(), p[k].to_bits()), (mk.to_bits(), vk.to_bits(), pk.to_bits()));
            // The reference's form in f64 (reference/src/init.rs): the same step, up to f32
            // round-off of the step (1e-6 of it) and of p itself (one ulp of |p|).
            let (c1, c2) = (1.0 - 0.9f64.powi(t as i32), 1.0 - 0.999f64.powi(t as i32));
            let (mw, vw) =
                (0.9 * m0[k] as f64 + 0.1 * g0[k] as f64, 0.999 * v0[k] as f64 + 0.001 * (g0[k] as f64).powi(2));
            let step = lr * (mw / c1) / ((vw / c2).sqrt() + 1e-8);
            assert!(
                ((p0[k] as f64 - p[k] as f64) - step).abs()
                    <= 1e-6 * step.abs() + f32::EPSILON as f64 * (p0[k] as f64).abs(),
                "n = {n}, k = {k}: step {step}"
            );
        }
    }
}

/// A random CSR `[rows, cols]` with 0..=max_per_row entries per row (empty rows included).
fn random_csr(rows: usize, cols: usize, max_per_row: usize, seed: u32) -> crane::engine::cpu::ops::Csr {
    let draws = values(rows * (max_per_row + 2), seed);
    let mut offsets = vec![0usize];
    let (mut idx, mut vals) = (Vec::new(), Vec::new());
    let mut it = draws.iter().map(|v| (v + 4.0) / 8.0);
    for _ in 0..rows {
        let k = (it.next().unwrap() * (max_per_row + 1) as f32) as usize % (max_per_row + 1);
        let mut row: Vec<u32> = (0..k).map(|_| (it.next().unwrap() * cols as f32) as u32 % cols as u32).collect();
        row.sort_unstable();
        row.dedup();
        vals.extend(row.iter().map(|&j| 0.1 + j as f32 / cols as f32));
        idx.extend(row);
        offsets.push(idx.len());
    }
    crane::engine::cpu::ops::Csr { rows, cols, offsets, idx, vals }
}

#[test]
fn sparse_products_match_a_plain_loop_bit_for_bit() {
    use crane::engine::cpu::ops::Dense;
    // 64 is the register-held width; 5 and 130 take the general path; 200 rows leave a partial
    // block of 64 rows.
    for (rows, cols, c, per_row) in [(200, 90, 64, 12), (200, 90, 5, 3), (70, 300, 130, 40), (1, 1, 64, 1)] {
        let s = random_csr(rows, cols, per_row, (rows * c) as u32);
        let x = Dense { rows: cols, cols: c, data: values(cols * c, c as u32 + 3) };
        let add = Dense { rows, cols: c, data: values(rows * c, 11) };
        let mut plain = Dense::zeros(rows, c);
        for r in 0..rows {
            let (idx, vals) = s.row(r);
            for (&j, &v) in idx.iter().zip(vals) {
                for t in 0..c {
                    plain.data[r * c + t] += v * x.data[j as usize * c + t];
                }
            }
        }
        let bits = |d: &Dense| d.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&s.spmm(&x)), bits(&plain), "spmm, c = {c}");

        let plus = s.spmm_plus(&x, 0.25, &add);
        let expect: Vec<f32> = plain.data.iter().zip(&add.data).map(|(p, a)| p + 0.25 * a).collect();
        assert_eq!(bits(&plus), expect.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "spmm_plus, c = {c}");

        let mut acc = add.clone();
        let out = s.spmm_accumulate(&x, &mut acc);
        assert_eq!(bits(&out), bits(&plain), "spmm_accumulate's product, c = {c}");
        let expect: Vec<f32> = add.data.iter().zip(&plain.data).map(|(a, p)| a + p).collect();
        assert_eq!(
            bits(&acc),
            expect.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "spmm_accumulate's sum, c = {c}"
        );
    }
}
