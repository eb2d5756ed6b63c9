//! `crane bench` (one epoch split by stage) and `crane bench-attention` (crane-code's fused
//! attention alone).

use super::{check_memory, prepare, TrainArgs};
use crane::error::{CraneError, Result};
use std::path::PathBuf;

/// Time one forward + backward of crane-code's blocked attention over N items (random inputs),
/// with its peak memory beside what the dense released code would hold.
#[derive(clap::Args)]
pub struct BenchAttentionArgs {
    /// Items (63001 = electronics).
    #[arg(long, default_value_t = 63_001)]
    pub items: usize,
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Query rows per block (default: the config's `attention_block_rows`).
    #[arg(long)]
    pub block_rows: Option<usize>,
    /// Rows from MB per [rows, N] block instead (the rule RCA's blocks use).
    #[arg(long, conflicts_with = "block_rows")]
    pub block_mb: Option<usize>,
    /// Keys per tile of the fused kernels.
    #[arg(long, default_value_t = crane::engine::cpu::attention::KEY_TILE)]
    pub key_tile: usize,
}

/// `crane bench`: one training epoch split by stage, evaluation, and peak memory.
pub fn run(args: TrainArgs) -> Result<()> {
    super::refuse_overwrite(&args, "bench")?;
    let p = prepare(&args)?;
    let (ds, mut cfg, name, synthetic) = (&p.ds, p.cfg.clone(), &p.name, p.synthetic);
    cfg.epochs = 1;
    let est = check_memory(ds, &cfg, args.memory_budget)?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("bench-{name}")));
    let r = crane::train::train(ds, &cfg, Some(&out), !args.no_progress)?;
    let h = &r.history[0];
    println!(
        "dataset {} ({} users, {} items){}",
        ds.name,
        ds.n_users,
        ds.n_items,
        if synthetic { ", generated data" } else { "" }
    );
    println!("threads                 {}", r.threads);
    println!("epoch (training)        {:.2} s", h.seconds_train);
    println!("  sampling              {:.2} s", h.seconds_sampling);
    println!("  RCA + item graph      {:.2} s", h.stages.rca_graph.as_secs_f64());
    println!("  propagation (GCN, G_II) {:.2} s", h.stages.propagation.as_secs_f64());
    println!("  losses                {:.2} s", h.stages.losses.as_secs_f64());
    println!("  optimiser             {:.2} s", h.stages.optimiser.as_secs_f64());
    let st = &h.stages;
    let staged = h.seconds_sampling
        + [st.rca_graph, st.propagation, st.losses, st.optimiser].iter().map(|d| d.as_secs_f64()).sum::<f64>();
    println!("  other (unattributed)  {:.2} s", (h.seconds_train - staged).max(0.0));
    println!("evaluation (validation) {:.2} s (of which z: {:.2} s)", h.seconds_eval, h.stages.scoring.as_secs_f64());
    println!("peak memory             {:.0} MB (estimated {est:.0} MB)", r.peak_memory_mb);
    if cfg.engine == crane::config::EngineKind::Gpu {
        // The CPU GEMM benchmark below says nothing about a GPU run (and takes minutes at
        // Electronics): the device's memory is what this run adds.
        device_memory();
        return Ok(());
    }
    let (gf_rca, gf_plain) = {
        let n = ds.n_users + ds.n_items;
        let rows = crane::engine::cpu::rca_block_rows(n, cfg.block_mb << 20, cfg.min_block_rows);
        crane::bench::rca_gflops(n, cfg.model.feature_dim, rows)
    };
    println!(
        "RCA block GEMMs         {gf_rca:.1} GFLOP/s (plain faer matmul of the same shape: {gf_plain:.1} GFLOP/s)"
    );
    Ok(())
}

/// `crane bench-attention`.
pub fn run_attention(a: BenchAttentionArgs) -> Result<()> {
    let BenchAttentionArgs { items, dim, heads, block_mb, block_rows, key_tile } = a;
    use crane::engine::cpu::{attention, ops::Dense};
    if heads == 0 || dim % heads != 0 || items == 0 {
        return Err(CraneError::config("--heads/--dim/--items", "heads must divide dim; items positive"));
    }
    let rnd = |r: usize, c: usize, seed: u64| {
        Dense::from_fn(r, c, |i, j| {
            (crane::sampling::mix_seed(&[seed, i as u64, j as u64]) % 2001) as f32 / 1000.0 - 1.0
        })
    };
    let x = rnd(items, dim, 1);
    let w: Vec<Dense> = (0..4).map(|k| rnd(dim, dim, 10 + k)).collect();
    let b: Vec<Dense> = (0..4).map(|k| rnd(1, dim, 20 + k)).collect();
    let dy = rnd(items, dim, 3);
    let p = attention::Mha { w: [&w[0], &w[1], &w[2], &w[3]], b: [&b[0], &b[1], &b[2], &b[3]], heads };
    let block = match (block_rows, block_mb) {
        (Some(r), _) => r.max(1),
        (None, Some(mb)) => crane::engine::cpu::rca::block_rows(items, mb << 20),
        (None, None) => crane::config::TrainConfig::default().attention_block_rows,
    };
    let before = crane::train::peak_memory_mb();
    let t0 = std::time::Instant::now();
    let (y, cache) = attention::forward_tiled(&x, &p, block, key_tile);
    let t1 = t0.elapsed();
    let (dx, _, _) = attention::backward_tiled(&p, &cache, &dy, block, key_tile);
    let t2 = t0.elapsed() - t1;
    let dh = (dim / heads) as f64;
    let n = items as f64;
    // Forward: QKᵀ and PV per head; backward: QKᵀ again, dP, dQ, dK, dV.
    let (f_fwd, f_bwd) = (2.0 * 2.0 * n * n * dh * heads as f64, 5.0 * 2.0 * n * n * dh * heads as f64);
    println!(
        "attention over {items} items, d = {dim}, {heads} heads, blocks of {block} query rows, {key_tile} keys per \
         tile ({:.2} MB of tiles per thread)",
        (2 * block * key_tile.min(items) * 4) as f64 / (1 << 20) as f64
    );
    println!("forward   {:.2} s ({:.1} GFLOP/s)", t1.as_secs_f64(), f_fwd / t1.as_secs_f64() / 1e9);
    println!("backward  {:.2} s ({:.1} GFLOP/s)", t2.as_secs_f64(), f_bwd / t2.as_secs_f64() / 1e9);
    println!(
        "peak memory {:.0} MB (process before: {before:.0} MB); the dense released code holds 8 N^2 floats \
         per attention copy: {:.1} GB",
        crane::train::peak_memory_mb(),
        8.0 * n * n * 4.0 / 1e9
    );
    println!(
        "checksum {:.6e} {:.6e}",
        y.data.iter().map(|v| *v as f64).sum::<f64>(),
        dx.data.iter().map(|v| *v as f64).sum::<f64>()
    );
    Ok(())
}

/// Prints the device's memory after a GPU run: the stream pool's high-water mark (what the run
/// needed at most) and the device's used and total memory (`cuMemGetInfo`).
fn device_memory() {
    match crane_gpu::cuda::CudaDevice::new().and_then(|d| d.memory()) {
        Ok(m) => println!(
            "peak device memory      {:.0} MB (pool high-water mark; device now {:.0} of {:.0} MB used)",
            m.pool_peak_bytes as f64 / 1048576.0,
            m.used_bytes as f64 / 1048576.0,
            m.total_bytes as f64 / 1048576.0
        ),
        Err(e) => println!("peak device memory      unavailable: {e}"),
    }
}
