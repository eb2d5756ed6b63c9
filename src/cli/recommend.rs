//! `crane recommend`: one user's top-k from a checkpoint, on the data it was trained on.

use crane::error::{CraneError, Result};
use std::path::PathBuf;

/// Top-k items for one user (original id) from a checkpoint, training items excluded.
#[derive(clap::Args)]
pub struct RecommendArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The dataset folder it was trained on (checked, as for `crane eval`).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The user's original id: the number in the .inter file, or its name in user2id.json.
    #[arg(long)]
    pub user: String,
    #[arg(short, long, default_value_t = 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub k: usize,
}

/// Prints `rank, item, score` lines. A user without training interactions (its embedding was
/// never trained) gets the popularity ranking instead: `rank, item, training count,
/// popularity`, the fourth column labelling every line.
pub fn run(a: RecommendArgs) -> Result<()> {
    let o = crane::checkpoint::open_for_scoring(&a.checkpoint, &a.data_dir)?;
    super::print_warnings(&o.ds);
    let ds = &o.ds;
    eprintln!("checkpoint of dataset {} at epoch {}", o.meta.dataset, o.meta.epoch);
    let u = ds
        .find_user(&a.user)
        .ok_or_else(|| CraneError::config("--user", format!("user `{}` is not in {}", a.user, a.data_dir.display())))?;
    let train = ds.train_by_user();
    if ds.users_without_training.binary_search(&u).is_ok() {
        eprintln!(
            "user {} has no training interactions, so the model never learnt an embedding for it: the popularity \
             ranking (items by training interactions) follows instead, labelled `popularity`",
            a.user
        );
        let mut counts = vec![0f32; ds.n_items];
        for &(_, i) in &ds.train {
            counts[i as usize] += 1.0;
        }
        let top = crane::eval::top_k_outside(&counts, &train[u as usize], &ds.absent_items, a.k);
        for (rank, &i) in top.iter().enumerate() {
            println!("{}\t{}\t{}\tpopularity", rank + 1, ds.item_label(i), counts[i as usize]);
        }
        return Ok(());
    }
    let mut scores = vec![0f32; ds.n_items];
    o.engine.score_block(&[u], &mut scores)?;
    let top = crane::eval::top_k_outside(&scores, &train[u as usize], &ds.absent_items, a.k);
    for (rank, &i) in top.iter().enumerate() {
        println!("{}\t{}\t{:.4}", rank + 1, ds.item_label(i), scores[i as usize]);
    }
    if top.len() < a.k {
        eprintln!("only {} candidate item(s) left for this user (training items and absent ids excluded)", top.len());
    }
    Ok(())
}
