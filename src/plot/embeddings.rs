//! `crane plot embeddings`: a 2-D map of a checkpoint's item embeddings, coloured by training
//! popularity. Two panels side by side: the ID embeddings E_I (layer 0, the `item_emb`
//! parameter) and z_i, the representation the model scores items with (Eq. 17: e_i + h_i, or
//! [e_i, h_i] without dual fusion; equal to E_I for BPR-MF). The projection is t-SNE
//! (Barnes–Hut, the `bhtsne` crate, started from the PCA projection so that it is
//! deterministic), or PCA (`--method pca`, and the fallback when there are too few items for
//! t-SNE's perplexity).

use super::{font, frame, frame_height, generated_caveat, save};
use super::{DrawResult, Figure, LegendItem, Swatch, GRID_LINE};
use crate::error::{CraneError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// The projection to two dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// Barnes–Hut t-SNE (perplexity up to 30), from the PCA projection.
    Tsne,
    /// The first two principal components.
    Pca,
}

/// One projected table.
#[derive(Clone, Debug)]
pub struct Map {
    /// What the table is.
    pub caption: String,
    /// (x, y) per shown item, in [`EmbeddingsFig::items`] order.
    pub points: Vec<(f64, f64)>,
    pub x_desc: String,
    pub y_desc: String,
    /// Whether the coordinates mean something (PCA) and get tick labels (t-SNE's do not).
    pub ticks: bool,
}

/// The embeddings figure.
pub struct EmbeddingsFig {
    /// The items drawn (absent ids left out).
    pub items: Vec<u32>,
    /// Popularity bucket of each drawn item (0 = no training interactions, 1..=5 quintiles).
    pub bucket: Vec<usize>,
    pub buckets: Vec<String>,
    pub maps: Vec<Map>,
    pub title: String,
    pub lines: Vec<String>,
    legend: Vec<LegendItem>,
}

/// Colours of the buckets: grey for items without training interactions, then viridis (the
/// last darkened to read on white) from the least to the most popular fifth.
pub const BUCKET_COLOURS: [RGBColor; 6] = [
    RGBColor(175, 175, 175),
    RGBColor(68, 1, 84),
    RGBColor(59, 82, 139),
    RGBColor(33, 145, 140),
    RGBColor(94, 201, 98),
    RGBColor(215, 190, 20),
];

const PANEL: u32 = 700;

/// The first two principal components of `rows` (centred), and the share of the variance
/// each explains. Power iteration with deflation on the covariance, from a fixed start.
pub fn pca2(rows: &[Vec<f64>]) -> (Vec<(f64, f64)>, [f64; 2]) {
    let n = rows.len();
    let d = rows.first().map_or(0, |r| r.len());
    if n == 0 || d == 0 {
        return (vec![(0.0, 0.0); n], [0.0; 2]);
    }
    let mean: Vec<f64> = (0..d).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n as f64).collect();
    let mut cov = vec![0.0; d * d];
    for r in rows {
        for a in 0..d {
            let x = r[a] - mean[a];
            for b in 0..d {
                cov[a * d + b] += x * (r[b] - mean[b]);
            }
        }
    }
    let total: f64 = (0..d).map(|a| cov[a * d + a]).sum();
    let mut comps: Vec<Vec<f64>> = Vec::new();
    let mut shares = [0.0; 2];
    for c in 0..2.min(d) {
        let mut v: Vec<f64> = (0..d).map(|j| 1.0 + (j as f64 * 0.618).fract()).collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let mut w: Vec<f64> = (0..d).map(|a| (0..d).map(|b| cov[a * d + b] * v[b]).sum()).collect();
            for p in &comps {
                let dot: f64 = w.iter().zip(p).map(|(x, y)| x * y).sum();
                w.iter_mut().zip(p).for_each(|(x, y)| *x -= dot * y);
            }
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm < 1e-300 {
                break;
            }
            lambda = norm;
            w.iter_mut().for_each(|x| *x /= norm);
            let diff: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = w;
            if diff < 1e-12 {
                break;
            }
        }
        shares[c] = if total > 0.0 { lambda / total } else { 0.0 };
        comps.push(v);
    }
    while comps.len() < 2 {
        comps.push(vec![0.0; d]);
    }
    let proj = rows
        .iter()
        .map(|r| {
            let at = |p: &Vec<f64>| r.iter().zip(&mean).zip(p).map(|((x, m), w)| (x - m) * w).sum::<f64>();
            (at(&comps[0]), at(&comps[1]))
        })
        .collect();
    (proj, shares)
}

/// t-SNE of `rows` from their PCA projection; `Err` with the reason when it cannot run.
pub fn tsne2(rows: &[Vec<f64>], epochs: usize) -> std::result::Result<(Vec<(f64, f64)>, f64), String> {
    let n = rows.len();
    // bhtsne takes 3 × perplexity neighbours of each point.
    let perplexity = (((n as f64 - 1.0) / 3.0) - 1.0).min(30.0).floor();
    if perplexity < 2.0 {
        return Err(format!("{n} items are too few for t-SNE"));
    }
    let (init, _) = pca2(rows);
    let sd = (init.iter().map(|p| p.0 * p.0).sum::<f64>() / n as f64).sqrt().max(1e-12);
    let init: Vec<f32> = init.iter().flat_map(|p| [(p.0 / sd * 1e-4) as f32, (p.1 / sd * 1e-4) as f32]).collect();
    let data: Vec<Vec<f32>> = rows.iter().map(|r| r.iter().map(|x| *x as f32).collect()).collect();
    let refs: Vec<&[f32]> = data.iter().map(|r| r.as_slice()).collect();
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut t: bhtsne::tSNE<f32, &[f32]> = bhtsne::tSNE::new(&refs);
        // The early exaggeration and low momentum last a quarter of the run, at most bhtsne's
        // default 250 iterations (a short run would otherwise never leave them).
        let early = (epochs / 4).min(250);
        t.perplexity(perplexity as f32)
            .epochs(epochs)
            .stop_lying_epoch(early)
            .momentum_switch_epoch(early)
            .initial_embedding(init)
            .barnes_hut(0.5, |a, b| a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt());
        t.embedding()
    }))
    .map_err(|_| "the t-SNE library failed".to_string())?;
    if out.len() != 2 * n || out.iter().any(|x| !x.is_finite()) {
        return Err("t-SNE gave non-finite coordinates".into());
    }
    Ok((out.chunks(2).map(|c| (c[0] as f64, c[1] as f64)).collect(), perplexity))
}

/// Projects `rows` with `method` (t-SNE falling back to PCA, saying why).
fn project(
    rows: &[Vec<f64>],
    method: Method,
    epochs: usize,
    notes: &mut Vec<String>,
) -> (Vec<(f64, f64)>, String, String, String) {
    if method == Method::Tsne {
        match tsne2(rows, epochs) {
            Ok((p, perp)) => {
                let how = format!("t-SNE (Barnes–Hut, perplexity {perp}, {epochs} iterations, PCA start)");
                let axis = |k| format!("t-SNE dimension {k} (no unit; only neighbourhoods are meaningful)");
                return (p, how, axis(1), axis(2));
            }
            Err(why) => {
                let note = format!("t-SNE not run ({why}): PCA instead");
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
        }
    }
    let (p, s) = pca2(rows);
    (
        p,
        "PCA (first two principal components)".into(),
        format!("principal component 1 ({:.0}% of the variance)", 100.0 * s[0]),
        format!("principal component 2 ({:.0}% of the variance)", 100.0 * s[1]),
    )
}

/// Popularity buckets of `degree` (training interactions per item): 0 for none, else 1..=5 by
/// rank (fifths, ties by id), with each bucket's label.
pub fn buckets(degree: &[usize]) -> (Vec<usize>, Vec<String>) {
    let mut order: Vec<usize> = (0..degree.len()).filter(|&i| degree[i] > 0).collect();
    order.sort_by_key(|&i| (degree[i], i));
    let mut b = vec![0usize; degree.len()];
    let n = order.len();
    for (rank, &i) in order.iter().enumerate() {
        b[i] = 1 + rank * 5 / n.max(1);
    }
    let mut labels = vec![format!("no training interactions ({})", degree.iter().filter(|&&d| d == 0).count())];
    let names = ["least popular fifth", "2nd fifth", "3rd fifth", "4th fifth", "most popular fifth"];
    for (k, name) in names.iter().enumerate() {
        let ds: Vec<usize> = (0..degree.len()).filter(|&i| b[i] == k + 1).map(|i| degree[i]).collect();
        let (lo, hi) = (ds.iter().min().copied().unwrap_or(0), ds.iter().max().copied().unwrap_or(0));
        labels.push(format!("{name}: {lo}–{hi} interactions"));
    }
    (b, labels)
}

impl EmbeddingsFig {
    /// Opens `checkpoint` on `data_dir` (its own data only) and projects its item tables.
    pub fn load(checkpoint: &Path, data_dir: &Path, method: Method, epochs: usize) -> Result<Self> {
        let opened = crate::checkpoint::open_for_scoring(checkpoint, data_dir)?;
        let ds = &opened.ds;
        let params = opened.engine.params();
        let absent: std::collections::HashSet<u32> = ds.absent_items.iter().copied().collect();
        let items: Vec<u32> = (0..ds.n_items as u32).filter(|i| !absent.contains(i)).collect();
        if items.is_empty() {
            return Err(CraneError::file(data_dir, "has no items to draw"));
        }
        let mut degree = vec![0usize; ds.n_items];
        for &(_, i) in &ds.train {
            degree[i as usize] += 1;
        }
        let (all_buckets, buckets) = buckets(&degree);
        let bucket: Vec<usize> = items.iter().map(|&i| all_buckets[i as usize]).collect();
        let e = &params.item_emb;
        let e_rows: Vec<Vec<f64>> =
            items.iter().map(|&i| (0..e.ncols()).map(|j| e[(i as usize, j)]).collect()).collect();
        let mut notes = Vec::new();
        let mut tables = vec![("E_I: ID embeddings (layer 0, `item_emb`)".to_string(), e_rows)];
        match opened.engine.item_table() {
            Some((cols, z)) if cols > 0 && z.len() == cols * ds.n_items => {
                let rows = items.iter().map(|&i| z[i as usize * cols..][..cols].iter().map(|x| *x as f64).collect());
                tables.push(("z_i: the representation items are scored with (Eq. 17)".to_string(), rows.collect()));
            }
            _ => notes.push(format!("the {} engine does not expose z_i: E_I only", opened.engine.name())),
        }
        let mut maps = Vec::new();
        let mut how = String::new();
        for (caption, rows) in tables {
            let (points, h, x_desc, y_desc) = project(&rows, method, epochs, &mut notes);
            let ticks = !h.starts_with("t-SNE");
            how = h;
            maps.push(Map { caption, points, x_desc, y_desc, ticks });
        }
        let model = &opened.meta.config.model_preset;
        let title = format!("Item embeddings of {model} on {}: {how}", ds.name);
        let mut lines = vec![format!(
            "{} (epoch {}), {} items coloured by their training interactions (fifths by rank); data {}",
            checkpoint.display(),
            opened.meta.epoch,
            items.len(),
            data_dir.display()
        )];
        lines.extend(notes);
        if let Some(g) = &ds.generated_features {
            lines.push(generated_caveat(g));
        }
        let present: Vec<usize> = (0..buckets.len()).filter(|b| bucket.contains(b)).collect();
        let legend =
            present.iter().map(|&b| LegendItem::new(Swatch::Dot(BUCKET_COLOURS[b]), buckets[b].clone())).collect();
        Ok(Self { items, bucket, buckets, maps, title, lines, legend })
    }

    fn width(&self) -> u32 {
        PANEL * self.maps.len().max(1) as u32
    }

    /// Point radius: smaller for many items.
    pub fn radius(&self) -> u32 {
        if self.items.len() > 2000 {
            2
        } else {
            3
        }
    }
}

impl Figure for EmbeddingsFig {
    fn size(&self) -> (u32, u32) {
        let w = self.width();
        (w, frame_height(&self.lines, &self.legend, w) + PANEL)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let rest = frame(root, &self.title, &self.lines, &self.legend)?;
        let cells = rest.split_evenly((1, self.maps.len().max(1)));
        for (cell, map) in cells.iter().zip(&self.maps) {
            let (x0, x1) = super::padded(map.points.iter().map(|p| p.0), 0.04, false);
            let (y0, y1) = super::padded(map.points.iter().map(|p| p.1), 0.04, false);
            let mut chart = ChartBuilder::on(cell)
                .caption(&map.caption, font(18.0))
                .margin(12)
                .margin_right(24)
                .x_label_area_size(48)
                .y_label_area_size(80)
                .build_cartesian_2d(x0..x1, y0..y1)?;
            let (sx, sy) = (x1 - x0, y1 - y0);
            chart
                .configure_mesh()
                .x_desc(&map.x_desc)
                .y_desc(&map.y_desc)
                .label_style(font(13.0))
                .axis_desc_style(font(15.0))
                .bold_line_style(GRID_LINE)
                .light_line_style(TRANSPARENT)
                .x_labels(6)
                .y_labels(6)
                .x_label_formatter(&|v| if map.ticks { super::tick(*v, sx) } else { String::new() })
                .y_label_formatter(&|v| if map.ticks { super::tick(*v, sy) } else { String::new() })
                .draw()?;
            // The least popular first, so the popular items stay visible on top.
            for b in 0..self.buckets.len() {
                let pts =
                    map.points.iter().zip(&self.bucket).filter(|(p, k)| **k == b && p.0.is_finite() && p.1.is_finite());
                let colour = BUCKET_COLOURS[b.min(BUCKET_COLOURS.len() - 1)];
                chart.draw_series(pts.map(|(p, _)| Circle::new(*p, self.radius(), colour.mix(0.8).filled())))?;
            }
        }
        Ok(())
    }
}

/// `crane plot embeddings`: draws the checkpoint's item map into `<out>.png` / `.svg` (default:
/// `embeddings` beside the checkpoint) and returns the files written.
pub fn plot(
    checkpoint: &Path,
    data_dir: &Path,
    method: Method,
    epochs: usize,
    out: Option<&Path>,
) -> Result<Vec<PathBuf>> {
    let fig = EmbeddingsFig::load(checkpoint, data_dir, method, epochs)?;
    let stem = out.map(Path::to_path_buf).unwrap_or_else(|| {
        checkpoint.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).join("embeddings")
    });
    save(&fig, &stem)
}
