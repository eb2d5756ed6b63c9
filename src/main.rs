//! The `crane` command line: parsing and dispatch. Each subcommand lives in its own module
//! under `src/cli/` (`crane eval` in `cli/eval.rs`, ...).

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "crane", version, about = "CRANE multimodal recommendation: data, training, evaluation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic MMRec-layout dataset with the shape of a paper dataset.
    /// With --features-for: write generated feature files for an existing interaction set.
    Synth(cli::synth::SynthArgs),
    /// Train a model and report validation and test metrics (results.json, history.csv).
    Train(cli::TrainArgs),
    /// Time one training epoch split by stage, evaluation, and peak memory.
    Bench(cli::TrainArgs),
    /// Evaluate a checkpoint on validation and test (on the data and split it was trained on);
    /// optionally export each test user's top-K.
    Eval(cli::eval::EvalArgs),
    /// Top-k items for one user (original id) from a checkpoint, training items excluded.
    Recommend(cli::recommend::RecommendArgs),
    /// Train several models with several seeds each and write compare.md / compare.csv (mean ±
    /// std over seeds, best marked, CRANE's improvement and a paired t-test). Finished runs are
    /// kept and skipped when run again. `--set MODEL:key=value` applies to one model's runs only
    /// (e.g. `--set bpr:model.lambda=0.1`, its validation-selected grid point).
    Compare(cli::compare::CompareArgs),
    /// Time one forward + backward of crane-code's blocked attention over N items (random
    /// inputs), with its peak memory beside what the dense released code would hold.
    BenchAttention(cli::bench::BenchAttentionArgs),
    /// Train every point of a hyper-parameter grid (one seed) and select on the validation
    /// metric; writes grid.md and grid.csv. Finished points are kept.
    Grid(cli::grid::GridArgs),
    /// Parity run: an engine against the f64 reference on small random graphs for every
    /// variant; prints a table (stage, max abs/rel error, tolerance, pass/fail) and exits
    /// non-zero on any failure. `--gpu` needs a CUDA device.
    Verify(cli::verify::VerifyArgs),
    /// Dataset inspection.
    Data {
        #[command(subcommand)]
        command: cli::data::DataCommand,
    },
    /// Figures (PNG and SVG, written next to the data): learning curves, a comparison's bars,
    /// a grid's sweeps, scaling, and a checkpoint's item embeddings.
    Plot {
        #[command(subcommand)]
        command: cli::plot::PlotCommand,
    },
}

fn run(cli: Cli) -> crane::Result<()> {
    match cli.command {
        Command::Synth(a) => cli::synth::run(a),
        Command::Train(a) => cli::train::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Recommend(a) => cli::recommend::run(a),
        Command::Compare(a) => cli::compare::run(a),
        Command::BenchAttention(a) => cli::bench::run_attention(a),
        Command::Grid(a) => cli::grid::run(a),
        Command::Verify(a) => cli::verify::run(a),
        Command::Data { command } => cli::data::run(command),
        Command::Plot { command } => cli::plot::run(command),
    }
}

fn main() -> ExitCode {
    // `crane ... | head` must end quietly when the reader goes away, as Unix tools do, instead of
    // panicking on the failed write (Rust ignores SIGPIPE by default).
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    crane::keep_freed_memory();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
