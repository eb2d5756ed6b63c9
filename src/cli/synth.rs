//! `crane synth`: a synthetic dataset, or generated features for an existing one.

use crane::data::{self, synth, LoadOptions};
use crane::error::{CraneError, Result};
use std::path::PathBuf;

/// Write a synthetic MMRec-layout dataset with the shape of a paper dataset. With
/// --features-for: write generated feature files for an existing interaction set.
#[derive(clap::Args)]
pub struct SynthArgs {
    /// tiny, baby, sports, clothing or electronics.
    #[arg(long, required_unless_present = "features_for", conflicts_with = "features_for")]
    pub like: Option<String>,
    /// Multiply users, items and interactions by this factor.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    #[arg(long, default_value_t = 2024)]
    pub seed: u64,
    /// A dataset folder (either layout): write image_feat.npy (n_items x 4096) and text_feat.npy
    /// (n_items x 384) for its items instead of a whole dataset.
    #[arg(long)]
    pub features_for: Option<PathBuf>,
    /// With --features-for: `random` (no signal, a control) or `planted` (signal from the
    /// training split only).
    #[arg(long, default_value = "planted")]
    pub kind: String,
    /// Output folder (created); files are `<like>.inter`, `image_feat.npy`, `text_feat.npy`.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: SynthArgs) -> Result<()> {
    match a.features_for {
        Some(src) => features_for(src, a.kind, a.seed, a.out),
        None => dataset(a.like, a.scale, a.seed, a.out),
    }
}

fn features_for(src: PathBuf, kind: String, seed: u64, out: PathBuf) -> Result<()> {
    let kind = match kind.as_str() {
        "random" => synth::FeatureKind::Random,
        "planted" => synth::FeatureKind::Planted,
        other => return Err(CraneError::config("--kind", format!("`{other}` is not random or planted"))),
    };
    let opts = LoadOptions { load_features: false, ..LoadOptions::default() };
    let ds = data::load_dataset(&src, &opts)?;
    eprintln!("{}: {} ({} items); generating {kind:?} features ...", src.display(), ds.layout, ds.n_items);
    let [v, t] = synth::features_for(&ds, kind, seed);
    std::fs::create_dir_all(&out).map_err(|e| CraneError::io(&out, "create directory", e))?;
    synth::write_marker(
        &out,
        &format!("GENERATED {kind:?} features (seed {seed}) for the interactions of {}", src.display()),
    )?;
    for (file, f) in [("image_feat.npy", &v), ("text_feat.npy", &t)] {
        data::npy::write_features(&out.join(file), f)?;
        eprintln!("wrote {} ({} x {}, generated: {kind:?})", out.join(file).display(), f.rows, f.cols);
    }
    Ok(())
}

fn dataset(like: Option<String>, scale: f64, seed: u64, out: PathBuf) -> Result<()> {
    let like = like.expect("clap requires --like without --features-for");
    let p = synth::preset(&like)?.scaled(scale)?;
    eprintln!("generating {} users, {} items, ~{} interactions ...", p.users, p.items, p.interactions);
    let s = synth::generate(&p, seed);
    synth::write(&out, p.name, &s)?;
    eprintln!("wrote {} ({} interactions)", out.display(), s.rows.len());
    Ok(())
}
