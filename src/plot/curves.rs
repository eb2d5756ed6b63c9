//! `crane plot curves`: validation Recall@20 and NDCG@20 per epoch and the loss terms per
//! epoch, one colour per model (or grid point, probe), each seed a thin line, their mean a
//! thick one, every run's best validation epoch marked (the paper's Fig. 8).

use super::runs::{discover, groups, EpochPoint, Run, K, TERMS};
use super::{
    colours, common_folder, font, frame, frame_height, generated_caveat, integer_ticks, save, DrawResult, Figure,
    KeyedAxis, LegendItem, Scale, Swatch, GRID_LINE,
};
use crate::error::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// One colour's runs.
#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub colour: RGBColor,
    pub runs: Vec<Run>,
}

impl Group {
    /// The mean over the runs of `value` at each epoch every run reached (the first run's
    /// epoch numbers).
    pub fn mean(&self, value: impl Fn(&EpochPoint) -> f64) -> Vec<(f64, f64)> {
        let n = self.runs.iter().map(|r| r.history.len()).min().unwrap_or(0);
        (0..n)
            .map(|k| {
                let s: f64 = self.runs.iter().map(|r| value(&r.history[k])).sum();
                (self.runs[0].history[k].epoch as f64, s / self.runs.len() as f64)
            })
            .collect()
    }
}

/// The learning-curve figure.
pub struct Curves {
    pub groups: Vec<Group>,
    /// Indices into [`TERMS`] of the loss terms some run has non-zero.
    pub terms: Vec<usize>,
    pub title: String,
    pub lines: Vec<String>,
    legend: Vec<LegendItem>,
}

const WIDTH: u32 = 1500;
const TOP_ROW: u32 = 440;
const TERM_ROW: u32 = 320;
const TERMS_PER_ROW: usize = 3;

impl Curves {
    /// Loads the runs of every folder (a run folder, or a folder of them: comparison, grid,
    /// probes). With several folders, the groups of a folder that is not itself a run folder
    /// are prefixed by the folder's name, so that two comparisons' models stay apart.
    pub fn load(dirs: &[PathBuf]) -> Result<Self> {
        let mut all = Vec::new();
        for d in dirs {
            let mut runs = discover(d)?;
            if dirs.len() > 1 && !super::runs::is_run_dir(d) {
                let name = d.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                for r in &mut runs {
                    r.group = format!("{name}: {}", r.group);
                }
            }
            all.extend(runs);
        }
        let grouped = groups(all);
        let names: Vec<String> = grouped.iter().map(|(g, _)| g.clone()).collect();
        let groups: Vec<Group> = grouped
            .into_iter()
            .zip(colours(&names))
            .map(|((name, runs), colour)| Group { name, colour, runs })
            .collect();
        let runs: Vec<&Run> = groups.iter().flat_map(|g| &g.runs).collect();
        let terms: Vec<usize> = (0..TERMS.len())
            .filter(|&t| t == 0 || runs.iter().any(|r| r.history.iter().any(|h| h.terms[t] != 0.0)))
            .collect();
        let mut datasets: Vec<String> = runs.iter().filter_map(|r| r.dataset.clone()).collect();
        datasets.dedup();
        datasets.sort();
        datasets.dedup();
        let title = format!(
            "Validation Recall@{K} / NDCG@{K} and training loss per epoch{}",
            if datasets.is_empty() { String::new() } else { format!(" on {}", datasets.join(", ")) }
        );
        let unfinished = runs.iter().filter(|r| !r.finished).count();
        let mut lines = vec![format!(
            "{} run(s) from {}; validation split, full ranking; best validation epoch marked on each run{}",
            runs.len(),
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
            if unfinished > 0 { format!(" ({unfinished} unfinished: best so far)") } else { String::new() }
        )];
        if let Some(g) = runs.iter().find_map(|r| r.generated.clone()) {
            lines.push(generated_caveat(&g));
        }
        let mut legend: Vec<LegendItem> = groups
            .iter()
            .map(|g| {
                let seeds = g.runs.len();
                LegendItem::new(
                    Swatch::Line(g.colour, 3),
                    format!("{} ({} {})", g.name, seeds, if seeds == 1 { "run" } else { "seeds" }),
                )
            })
            .collect();
        if groups.iter().any(|g| g.runs.len() > 1) {
            legend.push(LegendItem::new(Swatch::Thin(RGBColor(80, 80, 80)), "one seed"));
            legend.push(LegendItem::new(Swatch::Line(RGBColor(80, 80, 80), 3), "mean over seeds (epochs all ran)"));
        }
        legend.push(LegendItem::new(Swatch::Dot(RGBColor(80, 80, 80)), "best validation epoch"));
        Ok(Self { groups, terms, title, lines, legend })
    }

    fn max_epoch(&self) -> usize {
        self.groups.iter().flat_map(|g| &g.runs).flat_map(|r| r.history.iter().map(|h| h.epoch)).max().unwrap_or(0)
    }

    fn term_rows(&self) -> u32 {
        self.terms.len().div_ceil(TERMS_PER_ROW) as u32
    }
}

impl Figure for Curves {
    fn size(&self) -> (u32, u32) {
        (WIDTH, frame_height(&self.lines, &self.legend, WIDTH) + TOP_ROW + TERM_ROW * self.term_rows())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let rest = frame(root, &self.title, &self.lines, &self.legend)?;
        let (top, bottom) = rest.split_vertically(TOP_ROW);
        let (left, right) = top.split_horizontally(WIDTH / 2);
        let max_epoch = self.max_epoch();
        let metric = |h: &EpochPoint, ndcg: bool| if ndcg { h.ndcg } else { h.recall };
        for (area, ndcg) in [(&left, false), (&right, true)] {
            let name = if ndcg { "NDCG" } else { "Recall" };
            panel(
                area,
                &format!("Validation {name}@{K}"),
                &format!("{name}@{K} on the validation split"),
                &self.groups,
                max_epoch,
                &|h| metric(h, ndcg),
                true,
            )?;
        }
        let cells = bottom.split_evenly((self.term_rows().max(1) as usize, TERMS_PER_ROW));
        for (cell, &t) in cells.iter().zip(&self.terms) {
            let (name, what) = TERMS[t];
            // Only the runs that have this term (BPR-MF has no contrastive term).
            let groups: Vec<Group> = self
                .groups
                .iter()
                .map(|g| Group {
                    runs: g.runs.iter().filter(|r| r.history.iter().any(|h| h.terms[t] != 0.0)).cloned().collect(),
                    ..g.clone()
                })
                .filter(|g| !g.runs.is_empty() || t == 0)
                .collect();
            let caption = if t == 0 { "Training loss (total)".to_string() } else { format!("Loss: {what} (`{name}`)") };
            panel(cell, &caption, "mean over the epoch's batches", &groups, max_epoch, &|h| h.terms[t], false)?;
        }
        Ok(())
    }
}

/// One panel: every group's runs (thin) and mean (thick) of `value` against the epoch. The
/// metric panels (`mark_best`) start at 0; a loss panel whose values span a factor 20 or more
/// is drawn on a log scale.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    y_desc: &str,
    groups: &[Group],
    max_epoch: usize,
    value: &dyn Fn(&EpochPoint) -> f64,
    mark_best: bool,
) -> DrawResult<DB> {
    let values: Vec<f64> = groups
        .iter()
        .flat_map(|g| &g.runs)
        .flat_map(|r| r.history.iter().map(value))
        .filter(|v| v.is_finite())
        .collect();
    let scale = if mark_best { Scale { log: false } } else { Scale::for_values(&values, 20.0) };
    let (y0, y1) = scale.range(&values, mark_best);
    let pad = (max_epoch as f64 * 0.01).max(0.5);
    let (x0, x1) = (-pad, max_epoch as f64 + pad);
    let span = y1 - y0;
    let y_desc = if scale.log { format!("{y_desc} (log scale)") } else { y_desc.to_string() };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(20.0))
        .margin(12)
        .margin_right(24)
        .x_label_area_size(48)
        .y_label_area_size(86)
        .build_cartesian_2d(
            KeyedAxis::new((x0, x1), integer_ticks(max_epoch, 10)),
            KeyedAxis::new((y0, y1), scale.ticks(y0, y1)),
        )?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .label_style(font(14.0))
        .axis_desc_style(font(16.0))
        .bold_line_style(GRID_LINE)
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| format!("{}", v.round() as i64))
        .y_label_formatter(&|v| scale.label(*v, span))
        .draw()?;
    // Drawn coordinates: the log of the value on a log scale (non-positive values left out).
    let at = |h: &EpochPoint| (h.epoch as f64, value(h));
    let drawn = |pts: Vec<(f64, f64)>| {
        pts.into_iter()
            .filter(|(_, y)| y.is_finite() && (!scale.log || *y > 0.0))
            .map(|(x, y)| (x, scale.fwd(y)))
            .collect::<Vec<_>>()
    };
    for g in groups {
        let line = |r: &Run| drawn(r.history.iter().map(at).collect());
        let mut lines = Vec::new();
        if g.runs.len() > 1 {
            for r in &g.runs {
                lines.push((line(r), g.colour.mix(0.45).stroke_width(1)));
            }
            lines.push((drawn(g.mean(value)), g.colour.stroke_width(3)));
        } else if let Some(r) = g.runs.first() {
            lines.push((line(r), g.colour.stroke_width(3)));
        }
        for (pts, style) in lines {
            // A run of one epoch is a point: a dot, as a line of one point draws nothing.
            if let [p] = pts[..] {
                chart.draw_series([Circle::new(p, 3, style.color.filled())])?;
            }
            chart.draw_series(LineSeries::new(pts, style))?;
        }
    }
    if mark_best {
        for g in groups {
            for r in &g.runs {
                if let Some(&p) = r.history.iter().find(|h| h.epoch == r.best_epoch).map(at).as_ref() {
                    if let Some(&p) = drawn(vec![p]).first() {
                        chart.draw_series([Circle::new(p, 6, g.colour.filled())])?;
                        chart.draw_series([Circle::new(p, 6, BLACK.stroke_width(1))])?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// `crane plot curves`: draws the runs of `dirs` into `<out>.png` / `.svg` (default: `curves`
/// in the folder holding them all) and returns the files written.
pub fn plot(dirs: &[PathBuf], out: Option<&Path>) -> Result<Vec<PathBuf>> {
    let fig = Curves::load(dirs)?;
    let stem = out.map(Path::to_path_buf).unwrap_or_else(|| common_folder(dirs).join("curves"));
    save(&fig, &stem)
}
