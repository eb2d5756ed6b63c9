//! The `crane` command line.

use clap::{Parser, Subcommand};
use crane::data::{self, synth, LoadOptions};
use crane::error::{CraneError, Result};
use std::path::PathBuf;
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
    Synth {
        /// tiny, baby, sports, clothing or electronics.
        #[arg(long)]
        like: String,
        /// Multiply users, items and interactions by this factor.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        #[arg(long, default_value_t = 2024)]
        seed: u64,
        /// Output folder (created); files are `<like>.inter`, `image_feat.npy`, `text_feat.npy`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Dataset inspection.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Users, items, interactions, sparsity, per-split counts and feature shapes (Table 2).
    Stats {
        dir: PathBuf,
        /// Drop users with fewer interactions (the paper's preprocessing uses 4).
        #[arg(long, default_value_t = 0)]
        min_user_interactions: usize,
        /// Split seed when the file has no x_label: a number or paper1..paper5.
        #[arg(long, default_value = "paper1")]
        split_seed: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn split_seed(s: &str) -> Result<u64> {
    data::split::parse_split_seed(s)
        .ok_or_else(|| CraneError::config("--split-seed", format!("`{s}` is neither a number nor paper1..paper5")))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Synth { like, scale, seed, out } => {
            let p = synth::preset(&like)?.scaled(scale)?;
            eprintln!("generating {} users, {} items, ~{} interactions ...", p.users, p.items, p.interactions);
            let s = synth::generate(&p, seed);
            synth::write(&out, p.name, &s)?;
            eprintln!("wrote {} ({} interactions)", out.display(), s.rows.len());
            Ok(())
        }
        Command::Data { command: DataCommand::Stats { dir, min_user_interactions, split_seed: seed, json } } => {
            let opts = LoadOptions { min_user_interactions, split_seed: split_seed(&seed)?, load_features: true };
            let ds = data::load_dataset(&dir, &opts)?;
            for w in &ds.warnings {
                eprintln!("warning: {w}");
            }
            let stats = ds.stats();
            if json {
                println!("{}", serde_json::to_string_pretty(&stats).expect("stats serialise"));
            } else {
                println!("{stats}");
                println!("split          {:?}", ds.split);
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
