//! `crane grid`: every point of a hyper-parameter grid, selected on validation.

use super::{check_memory, prepare, TrainArgs};
use crane::error::{CraneError, Result};
use std::path::PathBuf;

/// Train every point of a hyper-parameter grid (one seed) and select on the validation metric
/// (`valid_metric`, Recall@20 by default); writes grid.md and grid.csv. Finished points are kept
/// (only for the same data); the same command started twice on one --out shares the points.
#[derive(clap::Args)]
pub struct GridArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// An axis `key=v1,v2,...` (repeatable), e.g. --grid model.lambda=1e-2,1e-3.
    #[arg(long = "grid", value_name = "KEY=V1,V2")]
    pub axes: Vec<String>,
    /// Successive halving instead of the full grid: train a sample of the points a few epochs,
    /// keep the best 1/eta on validation, train those longer, ... (writes halving.md and
    /// halving.csv with every rung; resumable like the grid).
    #[arg(long)]
    pub halving: bool,
    /// With --halving: how many grid points to draw (seeded by the config's seed); all by default.
    #[arg(long, requires = "halving")]
    pub sample: Option<usize>,
    /// With --halving: the epoch budget of each rung.
    #[arg(long, value_delimiter = ',', default_value = "2,6,18", requires = "halving")]
    pub rungs: Vec<usize>,
    /// With --halving: each rung keeps the best 1/eta of its points.
    #[arg(long, default_value_t = 3, requires = "halving")]
    pub eta: usize,
}

pub fn run(a: GridArgs) -> Result<()> {
    super::refuse_overwrite(&a.train, "grid")?;
    if a.halving {
        return halving(a);
    }
    let GridArgs { train: args, axes, .. } = a;
    let p = prepare(&args)?;
    let (ds, cfg, name) = (&p.ds, &p.cfg, &p.name);
    let axes = axes.iter().map(|a| crane::compare::parse_grid_axis(a)).collect::<Result<Vec<_>>>()?;
    if axes.is_empty() {
        return Err(CraneError::config("--grid", "give at least one axis key=v1,v2,..."));
    }
    let out =
        args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("grid-{name}-{}", cfg.model_preset)));
    check_memory(ds, cfg, args.memory_budget)?;
    let report = crane::train::Reporter::new(!args.no_progress);
    let rows = crane::compare::run_grid(ds, &p.base, &p.source, &args.sets, &axes, &out, &report)?;
    let mut header = vec![format!("# Grid for {} on {} ({})", cfg.model_preset, ds.name, ds.layout), String::new()];
    header.extend(data_lines(ds));
    header.push(format!("- seed {}; command: `{}`", cfg.seed, std::env::args().collect::<Vec<_>>().join(" ")));
    let md = crane::compare::grid_markdown(&rows, &header);
    crane::io::write_string_atomic(&out.join("grid.md"), &md)?;
    let mut csv =
        String::from("point,valid_recall@20,test_recall@10,test_recall@20,test_ndcg@10,test_ndcg@20,best_epoch\n");
    for r in &rows {
        let t = |m: &str, k| r.summary.test.get(m, k).unwrap_or(f64::NAN);
        csv.push_str(&format!(
            "\"{}\",{:.6},{:.6},{:.6},{:.6},{:.6},{}\n",
            r.point.join(" "),
            r.summary.valid.get("recall", 20).unwrap_or(f64::NAN),
            t("recall", 10),
            t("recall", 20),
            t("ndcg", 10),
            t("ndcg", 20),
            r.summary.best_epoch
        ));
    }
    crane::io::write_string_atomic(&out.join("grid.csv"), &csv)?;
    println!("{md}");
    // The figure of the grid (a failure is a warning: the grid itself is done).
    super::plot::after_run("the grid", || crane::plot::grid::plot(&out, None));
    Ok(())
}

/// `crane grid --halving`: successive halving over the grid, every rung reported.
fn halving(a: GridArgs) -> Result<()> {
    let p = prepare(&a.train)?;
    let (ds, cfg, name) = (&p.ds, &p.cfg, &p.name);
    let axes = a.axes.iter().map(|x| crane::compare::parse_grid_axis(x)).collect::<Result<Vec<_>>>()?;
    if axes.is_empty() {
        return Err(CraneError::config("--grid", "give at least one axis key=v1,v2,..."));
    }
    let out = a
        .train
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("halving-{name}-{}", cfg.model_preset)));
    check_memory(ds, cfg, a.train.memory_budget)?;
    let report = crane::train::Reporter::new(!a.train.no_progress);
    let h = crane::compare::Halving { sample: a.sample, rungs: a.rungs.clone(), eta: a.eta, seed: cfg.seed };
    let rows = crane::compare::run_halving(ds, &p.base, &p.source, &a.train.sets, &axes, &out, &report, &h)?;
    let points = crane::compare::grid_points(&axes).len();
    let mut header =
        vec![format!("# Successive halving for {} on {} ({})", cfg.model_preset, ds.name, ds.layout), String::new()];
    header.extend(data_lines(ds));
    header.extend([
        format!(
            "- {} of the grid's {points} points (sample seed {}), rungs of {:?} epochs, each keeping the best 1/{} on \
             validation {}",
            rows.iter().filter(|r| r.rung == 0).count(),
            cfg.seed,
            a.rungs,
            a.eta,
            cfg.valid_metric
        ),
        format!("- command: `{}`", std::env::args().collect::<Vec<_>>().join(" ")),
    ]);
    let md = crane::compare::halving_markdown(&rows, &header);
    crane::io::write_string_atomic(&out.join("halving.md"), &md)?;
    let mut csv =
        String::from("rung,point,epochs,epochs_run,best_epoch,valid_metric,test_recall@20,test_ndcg@20,kept\n");
    for r in &rows {
        let t = |m: &str| r.summary.test.get(m, 20).unwrap_or(f64::NAN);
        let v = r.summary.config.valid_metric_parts().ok().and_then(|(m, k)| r.summary.valid.get(m, k));
        csv.push_str(&format!(
            "{},\"{}\",{},{},{},{:.6},{:.6},{:.6},{}\n",
            r.rung + 1,
            r.point.join(" "),
            r.epochs,
            r.summary.epochs_run,
            r.summary.best_epoch,
            v.unwrap_or(f64::NAN),
            t("recall"),
            t("ndcg"),
            r.kept
        ));
    }
    crane::io::write_string_atomic(&out.join("halving.csv"), &csv)?;
    println!("{md}");
    println!("written: {} and {}", out.join("halving.md").display(), out.join("halving.csv").display());
    Ok(())
}

/// The report header's lines on the data: its folder (with the generated-features caveat) and
/// the modalities used; shared by the grid and the halving report.
fn data_lines(ds: &crane::data::Dataset) -> [String; 2] {
    [
        format!(
            "- data: `{}`{}",
            ds.dir.display(),
            ds.generated_features.as_ref().map_or(String::new(), |_| "; GENERATED features".into())
        ),
        format!("- modalities: {}", ds.modalities_used()),
    ]
}
