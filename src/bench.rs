//! Micro-measurements printed by `crane bench`.

use crate::engine::cpu::ops::{mm, Dense};
use crate::engine::cpu::rca;
use std::time::Instant;

/// GFLOP/s of RCA's blocked `tanh(X Pᵀ) X` at `n` entities and width `f`, beside a plain faer
/// matmul of one block's shape `[b, f] x [f, n]`. Counts the two GEMMs (2·n²·f each); tanh is
/// extra work inside the RCA figure. `block`: rows per block (as the engine chooses them).
pub fn rca_gflops(n: usize, f: usize, block: usize) -> (f64, f64) {
    let x = Dense::from_fn(n, f, |i, j| ((i * 31 + j * 17) % 97) as f32 / 97.0 - 0.5);
    let p = Dense::from_fn(n, f, |i, j| ((i * 13 + j * 7) % 89) as f32 / 89.0 - 0.5);
    let block = block.clamp(1, n.max(1));
    let t = Instant::now();
    let g = rca::correlate_blocked(&x, &p, block, 0);
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(g);
    let flops = 2.0 * 2.0 * (n as f64) * (n as f64) * f as f64;
    let b = block.min(n);
    let xb = x.rows_range(0, b);
    let t = Instant::now();
    let reps = n.div_ceil(b);
    for _ in 0..reps {
        std::hint::black_box(mm(&xb, false, &p, true));
    }
    let plain = t.elapsed().as_secs_f64();
    let plain_flops = 2.0 * (b * reps) as f64 * n as f64 * f as f64;
    (flops / secs / 1e9, plain_flops / plain / 1e9)
}
