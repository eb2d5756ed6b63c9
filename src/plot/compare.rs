//! `crane plot compare`: test Recall@20 and NDCG@20 per model as bars (mean over seeds), the
//! seeds' spread as error bars (± one sample standard deviation) with each seed as a dot, and
//! the popularity ranking (results.json's `popularity_test`) as a dashed reference line.

use super::runs::{columns, field, is_run_dir, metric, read_csv, read_json_opt, sub_dirs, K};
use super::{
    colours, font, frame, frame_height, generated_caveat, padded, save, tick, DrawResult, Figure, KeyedAxis,
    LegendItem, Swatch, GRID_LINE,
};
use crate::error::{CraneError, Result};
use crate::stats::{mean, std_dev};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// One model's test metrics over its seeds.
#[derive(Clone, Debug)]
pub struct ModelBars {
    pub model: String,
    pub colour: RGBColor,
    pub seeds: Vec<u64>,
    /// Test Recall@20 and NDCG@20 of each seed.
    pub recall: Vec<f64>,
    pub ndcg: Vec<f64>,
}

/// The comparison figure.
pub struct CompareFig {
    pub models: Vec<ModelBars>,
    /// The popularity ranking's test Recall@20 and NDCG@20, when a run folder has them.
    pub popularity: Option<(f64, f64)>,
    pub title: String,
    pub lines: Vec<String>,
    legend: Vec<LegendItem>,
}

const HEIGHT: u32 = 600;

/// The popularity ranking's test (Recall@20, NDCG@20) from the first run folder under `dir`
/// whose results.json has them.
fn popularity(dir: &Path) -> Result<Option<(f64, f64)>> {
    for model in sub_dirs(dir)? {
        for run in sub_dirs(&model)?.into_iter().filter(|r| is_run_dir(r)) {
            let path = run.join("results.json");
            if let Some(r) = read_json_opt(&path)? {
                if let (Some(r), Some(n)) =
                    (metric(&r, "popularity_test", "recall"), metric(&r, "popularity_test", "ndcg"))
                {
                    return Ok(Some((r, n)));
                }
            }
        }
    }
    Ok(None)
}

impl CompareFig {
    /// Reads `dir/compare.csv` (and compare.md's header, and one run folder for the popularity
    /// ranking).
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(CraneError::file(dir, "is not a folder (give the folder `crane compare --out` wrote)"));
        }
        let csv = dir.join("compare.csv");
        if !csv.is_file() {
            return Err(CraneError::file(&csv, "missing: a comparison folder holds compare.csv (run `crane compare`)"));
        }
        let (head, rows) = read_csv(&csv)?;
        let (recall_col, ndcg_col) = (format!("recall@{K}"), format!("ndcg@{K}"));
        let c = columns(&csv, &head, &["model", "seed", &recall_col, &ndcg_col])?;
        let mut models: Vec<ModelBars> = Vec::new();
        let mut from_results = 0;
        for (line, f) in &rows {
            let seed = f[c[1]]
                .parse::<u64>()
                .map_err(|_| CraneError::line(&csv, *line, format!("seed `{}` is not a whole number", f[c[1]])))?;
            let (mut r, mut n) = (field(&csv, *line, &recall_col, &f[c[2]])?, field(&csv, *line, &ndcg_col, &f[c[3]])?);
            // The run's own results.json, when kept, has the unrounded values compare.md uses.
            let results = crate::compare::run_dir(dir, &f[c[0]], seed).join("results.json");
            if let Some(v) = read_json_opt(&results)? {
                if let (Some(a), Some(b)) = (metric(&v, "test", "recall"), metric(&v, "test", "ndcg")) {
                    (r, n) = (a, b);
                    from_results += 1;
                }
            }
            let m = match models.iter_mut().find(|m| m.model == f[c[0]]) {
                Some(m) => m,
                None => {
                    models.push(ModelBars {
                        model: f[c[0]].clone(),
                        colour: BLACK,
                        seeds: vec![],
                        recall: vec![],
                        ndcg: vec![],
                    });
                    models.last_mut().unwrap()
                }
            };
            m.seeds.push(seed);
            m.recall.push(r);
            m.ndcg.push(n);
        }
        if models.is_empty() {
            return Err(CraneError::file(&csv, "holds no runs (a header only)"));
        }
        let names: Vec<String> = models.iter().map(|m| m.model.clone()).collect();
        for (m, c) in models.iter_mut().zip(colours(&names)) {
            m.colour = c;
        }
        let popularity = popularity(dir)?;
        // compare.md's header: the dataset and whether the features were generated.
        let md = std::fs::read_to_string(dir.join("compare.md")).unwrap_or_default();
        let dataset = md
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# Comparison on "))
            .map(|l| l.split(" (").next().unwrap_or(l).to_string());
        let mut lines = vec![format!(
            "{} runs from {} ({from_results} with their results.json, unrounded); test split at each run's best \
             validation epoch; bars: mean over seeds, error bars: ± 1 sample std, dots: each seed",
            rows.len(),
            csv.display()
        )];
        if let Some(g) = md.lines().take_while(|l| !l.starts_with('|')).find(|l| l.contains("GENERATED")) {
            lines.push(match (g.find('{'), g.rfind('}')) {
                (Some(a), Some(b)) if b > a => generated_caveat(&g[a..=b]),
                _ => format!("!{}", g.trim_start_matches("- data: ").trim()),
            });
        }
        let title = format!(
            "Test Recall@{K} and NDCG@{K} per model{}",
            dataset.map(|d| format!(" on {d}")).unwrap_or_default()
        );
        let mut legend: Vec<LegendItem> = models
            .iter()
            .map(|m| {
                let n = m.seeds.len();
                LegendItem::new(
                    Swatch::Bar(m.colour),
                    format!("{} ({n} {})", m.model, if n == 1 { "seed" } else { "seeds" }),
                )
            })
            .collect();
        legend.push(LegendItem::new(Swatch::ErrorBar, "± 1 std over seeds"));
        legend.push(LegendItem::new(Swatch::Ring(BLACK), "one seed"));
        match popularity {
            Some((r, n)) => legend.push(LegendItem::new(
                Swatch::Dashed(RGBColor(90, 90, 90)),
                format!("popularity ranking (Recall@{K} {r:.4}, NDCG@{K} {n:.4})"),
            )),
            None => lines.push("popularity ranking: no run folder with results.json found, not drawn".into()),
        }
        Ok(Self { models, popularity, title, lines, legend })
    }

    fn width(&self) -> u32 {
        (2 * (self.models.len() as u32 * 120 + 180)).max(1200)
    }
}

impl Figure for CompareFig {
    fn size(&self) -> (u32, u32) {
        let w = self.width();
        (w, frame_height(&self.lines, &self.legend, w) + HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let w = self.width();
        let rest = frame(root, &self.title, &self.lines, &self.legend)?;
        let (left, right) = rest.split_horizontally(w / 2);
        panel(&left, "Recall", &self.models, |m| &m.recall, self.popularity.map(|p| p.0))?;
        panel(&right, "NDCG", &self.models, |m| &m.ndcg, self.popularity.map(|p| p.1))?;
        Ok(())
    }
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    metric: &str,
    models: &[ModelBars],
    values: impl Fn(&ModelBars) -> &Vec<f64>,
    popularity: Option<f64>,
) -> DrawResult<DB> {
    let n = models.len();
    let stats: Vec<(f64, f64)> = models.iter().map(|m| (mean(values(m)), std_dev(values(m)))).collect();
    let tops = stats.iter().map(|(m, s)| m + s).chain(models.iter().flat_map(|m| values(m).iter().copied()));
    let (_, y1) = padded(tops.chain(popularity), 0.0, true);
    let y1 = if y1 > 0.0 { y1 * 1.15 } else { 1.0 };
    let names: Vec<String> = models.iter().map(|m| m.model.clone()).collect();
    let keys: Vec<f64> = (0..n).map(|k| k as f64).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(format!("Test {metric}@{K}"), font(20.0))
        .margin(12)
        .margin_right(24)
        .x_label_area_size(48)
        .y_label_area_size(86)
        .build_cartesian_2d(KeyedAxis::new((-0.6, n as f64 - 0.4), keys), 0.0..y1)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("model")
        .y_desc(format!("{metric}@{K} on the test split"))
        .label_style(font(15.0))
        .axis_desc_style(font(16.0))
        .bold_line_style(GRID_LINE)
        .light_line_style(TRANSPARENT)
        .y_labels(8)
        .x_label_formatter(&|v| names.get(v.round().max(0.0) as usize).cloned().unwrap_or_default())
        .y_label_formatter(&|v| tick(*v, y1))
        .draw()?;
    for (k, (m, (mu, sd))) in models.iter().zip(&stats).enumerate() {
        let x = k as f64;
        if mu.is_finite() {
            chart.draw_series([Rectangle::new([(x - 0.32, 0.0), (x + 0.32, *mu)], m.colour.mix(0.85).filled())])?;
        }
        if values(m).len() > 1 && sd.is_finite() {
            let (lo, hi) = (mu - sd, mu + sd);
            let bar =
                [vec![(x, lo), (x, hi)], vec![(x - 0.07, lo), (x + 0.07, lo)], vec![(x - 0.07, hi), (x + 0.07, hi)]];
            chart.draw_series(bar.into_iter().map(|p| PathElement::new(p, BLACK.stroke_width(2))))?;
        }
        let vs = values(m);
        for (j, v) in vs.iter().enumerate().filter(|(_, v)| v.is_finite()) {
            let dx = if vs.len() > 1 { -0.2 + 0.4 * j as f64 / (vs.len() - 1) as f64 } else { 0.0 };
            chart.draw_series([Circle::new((x + dx, *v), 4, BLACK.stroke_width(1))])?;
        }
        let top = vs.iter().copied().chain([mu + sd]).filter(|v| v.is_finite()).fold(0.0, f64::max);
        let label = font(15.0).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series([Text::new(format!("{mu:.4}"), (x, top + y1 * 0.015), label)])?;
    }
    if let Some(p) = popularity.filter(|p| p.is_finite()) {
        chart.draw_series(DashedLineSeries::new(
            vec![(-0.6, p), (n as f64 - 0.4, p)],
            10,
            6,
            RGBColor(90, 90, 90).stroke_width(2),
        ))?;
    }
    Ok(())
}

/// `crane plot compare`: draws `dir`'s comparison into `<out>.png` / `.svg` (default:
/// `dir/compare`) and returns the files written.
pub fn plot(dir: &Path, out: Option<&Path>) -> Result<Vec<PathBuf>> {
    let fig = CompareFig::load(dir)?;
    save(&fig, &out.map(Path::to_path_buf).unwrap_or_else(|| dir.join("compare")))
}
