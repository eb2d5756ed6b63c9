//! `crane plot grid`: validation Recall@20 against each swept setting of a `crane grid`, one
//! panel per setting with the other settings at their selected values, the selected point
//! marked (the paper's Fig. 5). Test Recall@20 is drawn beside it, dashed, for reference only
//! (selection never sees it).

use super::runs::{columns, field, read_csv, read_json_opt, K};
use super::{
    boxed_label, font, frame, frame_height, generated_caveat, padded, save, tick, DrawResult, Figure, KeyedAxis,
    LegendItem, Swatch, GRID_LINE, PALETTE,
};
use crate::error::{CraneError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// One grid point: its settings (in axis order) and metrics.
#[derive(Clone, Debug)]
pub struct Point {
    pub values: Vec<String>,
    pub valid: f64,
    pub test: f64,
}

/// One swept setting.
#[derive(Clone, Debug)]
pub struct Axis {
    pub key: String,
    /// Its values in grid order.
    pub values: Vec<String>,
    /// Log-scaled (positive numbers spanning at least a factor 10).
    pub log: bool,
    /// Numbers (else categories, placed at 0, 1, ...).
    pub numeric: bool,
}

impl Axis {
    /// Where `v` sits on the x axis.
    pub fn pos(&self, v: &str) -> f64 {
        match (self.numeric, v.parse::<f64>()) {
            (true, Ok(x)) if self.log => x.log10(),
            (true, Ok(x)) => x,
            _ => self.values.iter().position(|u| u == v).unwrap_or(0) as f64,
        }
    }
}

/// The grid figure.
pub struct GridFig {
    pub axes: Vec<Axis>,
    pub points: Vec<Point>,
    /// Index of the selected point.
    pub selected: usize,
    pub title: String,
    pub lines: Vec<String>,
    legend: Vec<LegendItem>,
}

const PANEL_W: u32 = 640;
const HEIGHT: u32 = 560;

/// `k1=v1 k2=v2` (grid.csv's point) as pairs.
fn parse_point(path: &Path, line: usize, s: &str) -> Result<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = s
        .split_whitespace()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| CraneError::line(path, line, format!("point `{s}`: `{kv}` is not key=value")))
        })
        .collect::<Result<_>>()?;
    if pairs.is_empty() {
        return Err(CraneError::line(path, line, "an empty point"));
    }
    Ok(pairs)
}

impl GridFig {
    /// Reads `dir/grid.csv` and grid.md's selection and header.
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(CraneError::file(dir, "is not a folder (give the folder `crane grid --out` wrote)"));
        }
        let csv = dir.join("grid.csv");
        if !csv.is_file() && dir.join("halving.csv").is_file() {
            return Err(CraneError::file(
                &csv,
                "missing: this is a successive-halving search (halving.csv), which trains its points a few epochs \
                 per rung and only the best to the end, so it has no per-setting curves to plot; its rungs are in \
                 halving.md. Plot a full grid (`crane grid` without --halving) instead",
            ));
        }
        if !csv.is_file() {
            return Err(CraneError::file(&csv, "missing: a grid folder holds grid.csv (run `crane grid`)"));
        }
        let (head, rows) = read_csv(&csv)?;
        let (vcol, tcol) = (format!("valid_recall@{K}"), format!("test_recall@{K}"));
        let c = columns(&csv, &head, &["point", &vcol, &tcol])?;
        let mut keys: Vec<String> = Vec::new();
        let mut points = Vec::new();
        for (line, f) in &rows {
            let pairs = parse_point(&csv, *line, &f[c[0]])?;
            let ks: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
            if keys.is_empty() {
                keys = ks;
            } else if ks != keys {
                return Err(CraneError::line(
                    &csv,
                    *line,
                    format!("point `{}` sets {:?}, the first point {:?}", f[c[0]], ks, keys),
                ));
            }
            points.push(Point {
                values: pairs.into_iter().map(|(_, v)| v).collect(),
                valid: field(&csv, *line, &vcol, &f[c[1]])?,
                test: field(&csv, *line, &tcol, &f[c[2]])?,
            });
        }
        if points.is_empty() {
            return Err(CraneError::file(&csv, "holds no points (a header only)"));
        }
        let axes: Vec<Axis> = keys
            .iter()
            .enumerate()
            .map(|(a, key)| {
                let mut values: Vec<String> = Vec::new();
                for p in &points {
                    if !values.contains(&p.values[a]) {
                        values.push(p.values[a].clone());
                    }
                }
                let nums: Vec<f64> =
                    values.iter().filter_map(|v| v.parse::<f64>().ok()).filter(|x| x.is_finite()).collect();
                let numeric = nums.len() == values.len();
                let (lo, hi) = nums.iter().fold((f64::INFINITY, 0.0f64), |(l, h), &x| (l.min(x), h.max(x)));
                let log = numeric && lo > 0.0 && hi / lo >= 10.0;
                Axis { key: key.clone(), values, log, numeric }
            })
            .collect();
        let md = std::fs::read_to_string(dir.join("grid.md")).unwrap_or_default();
        // grid.md names the point selected on validation: "Selected on validation ...: `k=v k=v`".
        let named =
            md.lines().find(|l| l.starts_with("Selected on validation")).and_then(|l| l.split('`').nth(1)).map(|s| {
                s.split_whitespace().filter_map(|kv| kv.split_once('=').map(|(_, v)| v.to_string())).collect()
            });
        let best = (0..points.len()).fold(0, |b, k| if points[k].valid > points[b].valid { k } else { b });
        let selected = named.and_then(|v: Vec<String>| points.iter().position(|p| p.values == v)).unwrap_or(best);
        let model = md.lines().next().and_then(|l| l.strip_prefix("# Grid for ")).map(|l| l.to_string());
        let title = format!(
            "Validation Recall@{K} against each swept setting{}",
            model.map(|m| format!(": {}", m.split(" (").next().unwrap_or(&m))).unwrap_or_default()
        );
        let sel: Vec<String> = keys.iter().zip(&points[selected].values).map(|(k, v)| format!("{k}={v}")).collect();
        let mut lines = vec![format!(
            "{} points from {}; one panel per setting, the others at the selected point ({}); one seed",
            points.len(),
            csv.display(),
            sel.join(", ")
        )];
        if md.contains("GENERATED") {
            let folder = dir.join(sel.join(",").replace(['/', ' '], "_"));
            let what = read_json_opt(&folder.join("manifest.json"))
                .ok()
                .flatten()
                .and_then(|m| m.get("generated_features").and_then(|g| g.as_str().map(|s| s.to_string())))
                .unwrap_or_else(|| "grid.md says so".into());
            lines.push(generated_caveat(&what));
        }
        let legend = vec![
            LegendItem::new(Swatch::Line(PALETTE[0], 3), format!("validation Recall@{K} (the selection metric)")),
            LegendItem::new(Swatch::Dashed(RGBColor(120, 120, 120)), format!("test Recall@{K} (reference only)")),
            LegendItem::new(Swatch::Dot(PALETTE[3]), "selected on validation"),
        ];
        Ok(Self { axes, points, selected, title, lines, legend })
    }

    fn width(&self) -> u32 {
        (PANEL_W * self.axes.len() as u32).max(1000)
    }

    /// The points of axis `a`'s panel: the others at the selected values, sorted along `a`.
    pub fn slice(&self, a: usize) -> Vec<&Point> {
        let sel = &self.points[self.selected].values;
        let mut pts: Vec<&Point> = self
            .points
            .iter()
            .filter(|p| p.values.iter().zip(sel).enumerate().all(|(b, (v, s))| b == a || v == s))
            .collect();
        pts.sort_by(|p, q| self.axes[a].pos(&p.values[a]).total_cmp(&self.axes[a].pos(&q.values[a])));
        pts
    }
}

impl Figure for GridFig {
    fn size(&self) -> (u32, u32) {
        let w = self.width();
        (w, frame_height(&self.lines, &self.legend, w) + HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let rest = frame(root, &self.title, &self.lines, &self.legend)?;
        let cells = rest.split_evenly((1, self.axes.len()));
        for (a, cell) in cells.iter().enumerate() {
            self.panel(cell, a)?;
        }
        Ok(())
    }
}

impl GridFig {
    fn panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, a: usize) -> DrawResult<DB> {
        let axis = &self.axes[a];
        let pts = self.slice(a);
        let keys: Vec<f64> = axis.values.iter().map(|v| axis.pos(v)).collect();
        let (x0, x1) = padded(keys.iter().copied(), 0.08, false);
        let (y0, y1) = padded(pts.iter().flat_map(|p| [p.valid, p.test]), 0.12, false);
        let span = y1 - y0;
        let labels: Vec<(f64, String)> = axis.values.iter().map(|v| (axis.pos(v), v.clone())).collect();
        let scale = if axis.log {
            " (log scale)"
        } else if axis.numeric {
            ""
        } else {
            " (categories)"
        };
        let mut chart = ChartBuilder::on(area)
            .caption(format!("Recall@{K} against {}", axis.key), font(20.0))
            .margin(12)
            .margin_right(28)
            .x_label_area_size(48)
            .y_label_area_size(86)
            .build_cartesian_2d(KeyedAxis::new((x0, x1), keys), y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(format!("{}{scale}", axis.key))
            .y_desc(format!("Recall@{K}"))
            .label_style(font(14.0))
            .axis_desc_style(font(16.0))
            .bold_line_style(GRID_LINE)
            .light_line_style(TRANSPARENT)
            .y_labels(8)
            .x_label_formatter(&|x| {
                labels.iter().find(|(p, _)| (p - x).abs() < 1e-9).map(|(_, s)| s.clone()).unwrap_or_default()
            })
            .y_label_formatter(&|v| tick(*v, span))
            .draw()?;
        let at = |p: &Point, v: f64| (axis.pos(&p.values[a]), v);
        let grey = RGBColor(120, 120, 120);
        chart.draw_series(DashedLineSeries::new(
            pts.iter().map(|p| at(p, p.test)).collect::<Vec<_>>(),
            8,
            5,
            grey.stroke_width(2),
        ))?;
        chart.draw_series(pts.iter().map(|p| Circle::new(at(p, p.test), 3, grey.filled())))?;
        chart.draw_series(LineSeries::new(pts.iter().map(|p| at(p, p.valid)), PALETTE[0].stroke_width(3)))?;
        chart.draw_series(pts.iter().map(|p| Circle::new(at(p, p.valid), 5, PALETTE[0].filled())))?;
        let sel = &self.points[self.selected];
        if pts.iter().any(|p| std::ptr::eq(*p, sel)) {
            let xy = at(sel, sel.valid);
            chart.draw_series([Circle::new(xy, 8, PALETTE[3].filled())])?;
            chart.draw_series([Circle::new(xy, 8, BLACK.stroke_width(1))])?;
            // The value on a white box above the point (below it when the point is near the top).
            let px = chart.backend_coord(&xy);
            let top = chart.plotting_area().get_pixel_range().1.start;
            let dy = if px.1 - top > 40 { 24 } else { -24 };
            boxed_label(area, px, dy, &format!("{:.4}", sel.valid), PALETTE[3])?;
        }
        Ok(())
    }
}

/// `crane plot grid`: draws `dir`'s grid into `<out>.png` / `.svg` (default: `dir/grid`) and
/// returns the files written.
pub fn plot(dir: &Path, out: Option<&Path>) -> Result<Vec<PathBuf>> {
    let fig = GridFig::load(dir)?;
    save(&fig, &out.map(Path::to_path_buf).unwrap_or_else(|| dir.join("grid")))
}
