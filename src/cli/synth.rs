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
    /// With --features-for: `random` (no signal, a control), `planted` (signal from the
    /// training split only) or `graph` (vectors whose cosine top-k lists reproduce the real kNN
    /// graphs given by --graphs; still generated vectors).
    #[arg(long, default_value = "planted")]
    pub kind: String,
    /// With --kind graph: the folder of `{image,text,audio}_knn_indices.npy` files (the format
    /// of amazon-baby/real-item-graphs); one feature file is written per modality found there.
    #[arg(long)]
    pub graphs: Option<PathBuf>,
    /// With --kind graph: Adam steps of the fit.
    #[arg(long, default_value_t = 300)]
    pub fit_steps: usize,
    /// Output folder (created); files are `<like>.inter`, `image_feat.npy`, `text_feat.npy`.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: SynthArgs) -> Result<()> {
    match a.features_for {
        Some(src) if a.kind == "graph" => {
            let graphs = a.graphs.ok_or_else(|| {
                CraneError::config("--graphs", "--kind graph needs the folder of the real kNN files (--graphs DIR)")
            })?;
            graph_features(src, graphs, a.seed, a.fit_steps, a.out)
        }
        Some(_) if a.graphs.is_some() => Err(CraneError::config("--graphs", "applies to --kind graph only")),
        Some(src) => features_for(src, a.kind, a.seed, a.out),
        None => dataset(a.like, a.scale, a.seed, a.out),
    }
}

fn features_for(src: PathBuf, kind: String, seed: u64, out: PathBuf) -> Result<()> {
    let kind = match kind.as_str() {
        "random" => synth::FeatureKind::Random,
        "planted" => synth::FeatureKind::Planted,
        other => return Err(CraneError::config("--kind", format!("`{other}` is not random, planted or graph"))),
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

/// `--kind graph`: per modality with kNN files in `graphs`, vectors fitted to reproduce its lists
/// (`data::graph_features`), lifted to the modality's width, with the measured top-k overlap
/// recorded in `features.json`.
fn graph_features(src: PathBuf, graphs: PathBuf, seed: u64, steps: usize, out: PathBuf) -> Result<()> {
    use crane::data::graph_features as gf;
    let opts = LoadOptions { load_features: false, ..LoadOptions::default() };
    let ds = data::load_dataset(&src, &opts)?;
    let found: Vec<&str> = ["image", "text", "audio"]
        .into_iter()
        .filter(|m| graphs.join(format!("{m}_knn_indices.npy")).is_file())
        .collect();
    if found.is_empty() {
        return Err(CraneError::file(&graphs, "no {image,text,audio}_knn_indices.npy here"));
    }
    std::fs::create_dir_all(&out).map_err(|e| CraneError::io(&out, "create directory", e))?;
    let mut overlaps = serde_json::Map::new();
    for (k, m) in found.iter().enumerate() {
        let lists = gf::read_knn(&graphs, m, ds.n_items)?;
        let t0 = std::time::Instant::now();
        eprintln!("{m}: fitting {} vectors to the real top-{} lists ({steps} Adam steps) ...", lists.n, lists.k);
        let x = gf::fit(&lists, seed + k as u64, steps);
        let ov = gf::overlap(&x, &lists);
        let f = gf::lift(&x, gf::width_of(m), seed + k as u64);
        let file = out.join(format!("{m}_feat.npy"));
        data::npy::write_features(&file, &f)?;
        eprintln!(
            "wrote {} ({} x {}): top-{} overlap with the real graph {:.1}% ({:.0} s)",
            file.display(),
            f.rows,
            f.cols,
            lists.k,
            100.0 * ov,
            t0.elapsed().as_secs_f64()
        );
        overlaps.insert(m.to_string(), serde_json::json!(ov));
    }
    let what = format!(
        "real item graph, GENERATED feature vectors (seed {seed}): fitted so that their cosine top-k lists reproduce \
         the real kNN graphs in {} for the interactions of {}",
        graphs.display(),
        src.display()
    );
    let marker = serde_json::json!({ "generated": true, "what": what, "knn_overlap": overlaps });
    crane::io::write_string_atomic(
        &out.join(data::GENERATED_MARKER),
        &serde_json::to_string_pretty(&marker).expect("json"),
    )
}
