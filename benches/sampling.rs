//! Negative sampling at the Electronics shape (192,403 users, 63,001 items, ~1.35M training
//! interactions): one epoch of batches of 1024. `cargo bench --bench sampling`.

use crane::sampling::Sampler;
use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};

fn electronics_like() -> (Vec<(u32, u32)>, Vec<Vec<u32>>) {
    let (users, items) = (192_403u32, 63_001u32);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut pairs = Vec::with_capacity(1_400_000);
    for u in 0..users {
        let deg = 5 + rng.random_range(0..4);
        let mut mine: Vec<u32> = Vec::with_capacity(deg);
        while mine.len() < deg {
            // Long tail: squaring a uniform draw favours small ids.
            let i = ((rng.random::<f64>().powi(2)) * items as f64) as u32;
            if !mine.contains(&i) {
                mine.push(i);
            }
        }
        pairs.extend(mine.into_iter().map(|i| (u, i)));
    }
    let by_user = crane::data::group(users as usize, &pairs);
    (pairs, by_user)
}

fn bench(c: &mut Criterion) {
    let (pairs, by_user) = electronics_like();
    let sampler = Sampler::new(&pairs, &by_user).unwrap();
    let mut g = c.benchmark_group("sampling");
    g.sample_size(10);
    g.bench_function(format!("epoch_{}_triplets_batch_1024", pairs.len()), |b| {
        let mut epoch = 0;
        b.iter(|| {
            epoch += 1;
            std::hint::black_box(sampler.epoch(7, epoch, 1024))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
