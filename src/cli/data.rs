//! `crane data stats` and `crane data import`.

use crane::data::{self, LoadOptions};
use crane::error::{CraneError, Result};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Users, items, interactions, sparsity, per-split counts and feature shapes (Table 2), with
    /// users without training interactions and item ids in no split counted apart.
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
        /// The files in the visual and textual roles, e.g. `image,audio` (the `modalities`
        /// config value; default image,text, each read when present).
        #[arg(long)]
        modalities: Option<String>,
    },
    /// Convert another layout to the MMRec layout (.inter, mapping files and features copied).
    Import {
        /// The source layout: lattice-json.
        #[arg(long)]
        from: String,
        /// The source folder.
        src: PathBuf,
        /// The output folder; the .inter file is named after it.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(c: DataCommand) -> Result<()> {
    match c {
        DataCommand::Stats { dir, min_user_interactions, split_seed: seed, json, modalities } => {
            stats(dir, min_user_interactions, seed, json, modalities)
        }
        DataCommand::Import { from, src, out } => import(from, src, out),
    }
}

fn stats(
    dir: PathBuf,
    min_user_interactions: usize,
    seed: String,
    json: bool,
    modalities: Option<String>,
) -> Result<()> {
    let modalities = match modalities {
        None => None,
        Some(m) => Some(
            data::parse_modalities(&m.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>())
                .map_err(|e| CraneError::config("--modalities", e.to_string()))?,
        ),
    };
    let opts = LoadOptions {
        min_user_interactions,
        split_seed: super::split_seed(&seed)?,
        load_features: true,
        modalities,
        item_graph_dir: None,
    };
    let ds = data::load_dataset(&dir, &opts)?;
    eprintln!("{}: found the {}", dir.display(), ds.layout);
    super::print_warnings(&ds);
    let stats = ds.stats();
    if json {
        println!("{}", serde_json::to_string_pretty(&stats).expect("stats serialise"));
    } else {
        println!("{stats}");
        println!("split          {}", ds.split);
    }
    Ok(())
}

fn import(from: String, src: PathBuf, out: PathBuf) -> Result<()> {
    if from != "lattice-json" {
        return Err(CraneError::config("--from", format!("`{from}` is not a known layout (lattice-json)")));
    }
    for p in data::lattice::import(&src, &out)? {
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
