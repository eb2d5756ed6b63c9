//! `crane verify`: an engine against the f64 reference, stage by stage.

use crane::error::{CraneError, Result};

/// Parity run: an engine against the f64 reference on small random graphs for every variant;
/// prints a table (stage, max abs/rel error, tolerance, pass/fail) and exits non-zero on any
/// failure. `--gpu` needs a CUDA device.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Verify the GPU engine on CUDA device 0.
    #[arg(long, conflicts_with_all = ["cpu", "gpu_host"])]
    pub gpu: bool,
    /// Verify the fast CPU engine.
    #[arg(long, conflicts_with = "gpu_host")]
    pub cpu: bool,
    /// With --gpu: cuBLAS on TF32 tensor cores, checked against the TF32 bounds (looser than
    /// f32's; see `verify::Tolerances::TF32`).
    #[arg(long)]
    pub tf32: bool,
    /// Verify the GPU engine's code with its ops run on the CPU (no GPU needed; the CUDA ops
    /// themselves are checked only by --gpu).
    #[arg(long)]
    pub gpu_host: bool,
    /// Number of random graphs per variant.
    #[arg(long, default_value_t = 3)]
    pub graphs: u64,
}

pub fn run(a: VerifyArgs) -> Result<()> {
    let VerifyArgs { gpu, cpu, gpu_host, tf32, graphs } = a;
    if !gpu && !cpu && !gpu_host {
        return Err(CraneError::config("verify", "choose --gpu, --cpu or --gpu-host"));
    }
    // (clap's `requires` is satisfied by a flag's default `false`, so checked here.)
    if tf32 && !gpu {
        return Err(CraneError::config("verify", "--tf32 applies to --gpu only (cuBLAS on tensor cores)"));
    }
    let seeds: Vec<u64> = (1..=graphs.max(1)).collect();
    // Each row is printed as it is computed, so a run cut short (a hang, a killed process on a
    // lent device) keeps every row it got to.
    let mut header_done = false;
    let mut print_row = |r: &crane::verify::Row| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if !header_done {
            let _ = out.write_all(crane::verify::header().as_bytes());
            header_done = true;
        }
        let _ = out.write_all(crane::verify::row_line(r).as_bytes());
        let _ = out.flush();
    };
    let rows = if gpu {
        crane::verify::gpu(&seeds, tf32, &mut print_row)?
    } else if gpu_host {
        crane::verify::gpu_host(&seeds, &mut print_row)
    } else {
        let make = |i: &crane::engine::ModelInputs, c: &crane_reference::ModelConfig, p: &crane_reference::Params| {
            Ok(Box::new(crane::engine::cpu::CpuEngine::new(i, c, p)?.with_block_bytes(4 * 16 * 40))
                as Box<dyn crane::engine::Engine>)
        };
        crane::verify::run(&make, &seeds, &mut print_row)
    };
    let failed = rows.iter().filter(|r| !r.pass()).count();
    println!("{} comparisons, {} failed", rows.len(), failed);
    if failed > 0 {
        return Err(CraneError::Invalid(format!("verify: {failed} comparison(s) out of tolerance or not run")));
    }
    Ok(())
}
