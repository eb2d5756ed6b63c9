//! Full-ranking evaluation at the Baby shape (19,445 users × 7,050 items, d = 64): scoring by
//! GEMM in user blocks, masking, top-50, metrics. `cargo bench --bench evaluation`.

use crane::engine::cpu::ops::{mm, Dense};
use crane::eval::{evaluate, EvalSet};
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let (m, n, d) = (19_445usize, 7_050usize, 64usize);
    let zu = Dense::from_fn(m, d, |i, j| ((i * 31 + j * 7) % 101) as f32 / 101.0 - 0.5);
    let zi = Dense::from_fn(n, d, |i, j| ((i * 17 + j * 3) % 97) as f32 / 97.0 - 0.5);
    let mask: Vec<Vec<u32>> = (0..m)
        .map(|u| {
            (0..6)
                .map(|k| ((u * 13 + k * 977) % n) as u32)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        })
        .collect();
    let heldout: Vec<(u32, u32)> = (0..m).map(|u| (u as u32, ((u * 7 + 3) % n) as u32)).collect();
    let set = EvalSet::from_pairs(m, &heldout);
    let mut g = c.benchmark_group("evaluation");
    g.sample_size(10);
    g.bench_function("baby_shape_full_ranking", |b| {
        b.iter(|| {
            evaluate(&set, crane::eval::Mask::train_only(&mask), n, &[5, 10, 20, 50], 1024, |users, out| {
                let mut zb = Dense::zeros(users.len(), d);
                for (k, &u) in users.iter().enumerate() {
                    zb.row_mut(k).copy_from_slice(zu.row(u as usize));
                }
                out.copy_from_slice(&mm(&zb, false, &zi, true).data);
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
