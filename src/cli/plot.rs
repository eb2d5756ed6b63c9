//! `crane plot`: figures from run, comparison, grid and bench folders and from checkpoints
//! (the drawing is `crane::plot`). Each writes `<name>.png` and `<name>.svg` next to the data it
//! reads (or at `--out`, a path without extension) and prints where.

use crane::error::Result;
use crane::plot::embeddings::Method;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum PlotCommand {
    /// Validation Recall@20 and NDCG@20 per epoch, and the loss terms per epoch, for each run:
    /// one colour per model, seeds thin, their mean thick, the best validation epoch marked
    /// (Fig. 8). Takes run folders and folders of them (a comparison's `<model>/seed-<n>/`, a
    /// grid's points, probes). Writes curves.png/.svg into the folder holding them all.
    Curves {
        #[arg(required = true, value_name = "RUN_OR_COMPARE_DIR")]
        dirs: Vec<PathBuf>,
        /// Output path without extension (default: <common folder>/curves).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Test Recall@20 and NDCG@20 per model of a `crane compare` folder (compare.csv): bars at
    /// the mean over seeds, ± 1 std error bars, each seed a dot, the popularity ranking dashed.
    /// Writes compare.png/.svg into the folder.
    Compare {
        dir: PathBuf,
        /// Output path without extension (default: DIR/compare).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Validation Recall@20 against each swept setting of a `crane grid` folder (grid.csv), one
    /// panel per setting with the others at the selected point, the selection marked (Fig. 5).
    /// Writes grid.png/.svg into the folder.
    Grid {
        dir: PathBuf,
        /// Output path without extension (default: DIR/grid).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Seconds per training epoch and peak memory against dataset size (users + items), one
    /// line per model (Fig. 7), from `crane bench` run folders (their results.json; any `crane
    /// train` run folder works too), the files themselves, or folders of run folders.
    Scaling {
        #[arg(required = true, value_name = "BENCH_JSON")]
        inputs: Vec<PathBuf>,
        /// Output path without extension (default: <common folder>/scaling).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A 2-D map of a checkpoint's item embeddings (E_I and z_i side by side), coloured by
    /// training popularity; t-SNE (from the PCA projection) or PCA. The data must be the
    /// checkpoint's own. Writes embeddings.png/.svg beside the checkpoint.
    Embeddings {
        /// A `checkpoint.safetensors` written by `crane train`.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The dataset folder it was trained on (other data is refused).
        #[arg(long)]
        data_dir: PathBuf,
        /// The projection to 2-D.
        #[arg(long, value_enum, default_value = "tsne")]
        method: Method,
        /// t-SNE iterations.
        #[arg(long, default_value_t = 1000)]
        iterations: usize,
        /// Output path without extension (default: <checkpoint's folder>/embeddings).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(c: PlotCommand) -> Result<()> {
    let files = match c {
        PlotCommand::Curves { dirs, out } => crane::plot::curves::plot(&dirs, out.as_deref())?,
        PlotCommand::Compare { dir, out } => crane::plot::compare::plot(&dir, out.as_deref())?,
        PlotCommand::Grid { dir, out } => crane::plot::grid::plot(&dir, out.as_deref())?,
        PlotCommand::Scaling { inputs, out } => crane::plot::scaling::plot(&inputs, out.as_deref())?,
        PlotCommand::Embeddings { checkpoint, data_dir, method, iterations, out } => {
            crane::plot::embeddings::plot(&checkpoint, &data_dir, method, iterations, out.as_deref())?
        }
    };
    for f in files {
        println!("written: {}", f.display());
    }
    Ok(())
}

/// The plots `crane compare` and `crane grid` draw when they finish: `what` names them, `draw`
/// makes them. A failure is a warning (the report is already written), never an error.
pub fn after_run(what: &str, draw: impl FnOnce() -> Result<Vec<PathBuf>>) {
    match draw() {
        Ok(files) => {
            let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            println!("plotted {what}: {}", list.join(", "));
        }
        Err(e) => eprintln!("warning: could not plot {what}: {e}"),
    }
}
