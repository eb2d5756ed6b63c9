//! `crane eval`: a checkpoint's validation and test metrics on the data and split it was trained
//! on, and optionally every test user's top-K list.

use crane::error::Result;
use crane::eval::{EvalSet, Mask};
use std::path::PathBuf;

/// Evaluate a checkpoint on validation and test; optionally export each test user's top-K.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// A `checkpoint.safetensors` written by `crane train`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The dataset folder it was trained on (checked: the split seed and user filter come from
    /// the checkpoint, and other data is refused).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Write the top-K list of every test user (original ids) to this TSV.
    #[arg(long)]
    pub export_topk: Option<PathBuf>,
    #[arg(short, long, default_value_t = 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub k: usize,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let o = crane::checkpoint::open_for_scoring(&a.checkpoint, &a.data_dir)?;
    super::print_warnings(&o.ds);
    let (ds, cfg) = (&o.ds, &o.meta.config);
    eprintln!("checkpoint of dataset {} at epoch {} (split {})", o.meta.dataset, o.meta.epoch, ds.split);
    let train = ds.train_by_user();
    let mask = Mask::new(&train, &ds.absent_items);
    let mut ks = cfg.ks.clone();
    if !ks.contains(&a.k) {
        ks.push(a.k);
    }
    let kmax = *ks.iter().max().expect("ks is not empty");
    for (name, pairs) in [("valid", &ds.valid), ("test", &ds.test)] {
        let set = EvalSet::from_pairs(ds.n_users, pairs);
        let rankings = crane::eval::rank_users_with(&set, mask, ds.n_items, kmax, cfg.eval_block, o.engine.as_ref())?;
        let m = crane::eval::metrics_from_rankings(&rankings, &set, &ks);
        println!("{name:<6} {}", m.summary());
        println!("{}", serde_json::to_string(&m.to_map()).expect("metrics serialise"));
        if let (Some(path), "test") = (&a.export_topk, name) {
            let tsv = crane::eval::topk_tsv(&set.users, &rankings, |u| ds.user_label(u), |i| ds.item_label(i), a.k);
            crane::io::write_string_atomic(path, &tsv)?;
            eprintln!("top-{} lists of {} test users written to {}", a.k, set.users.len(), path.display());
            let short = crane::eval::short_rankings(&rankings, a.k);
            if short > 0 {
                eprintln!(
                    "warning: {short} user(s) have fewer than {} candidate items left (training items and absent ids \
                     excluded): their rows end in empty fields",
                    a.k
                );
            }
        }
    }
    Ok(())
}
