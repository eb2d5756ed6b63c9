//! `crane plot scaling`: seconds per training epoch and peak memory against dataset size, one
//! line per model (the paper's Fig. 7), from the `results.json` that `crane bench` (or any
//! `crane train` run) writes into its run folder.

use super::runs::{num, read_json_opt, sub_dirs, text};
use super::{
    colours, common_folder, font, frame, frame_height, generated_caveat, human, model_sort_key, save, DrawResult,
    Figure, KeyedAxis, LegendItem, Scale, Swatch, GRID_LINE,
};
use crate::error::{CraneError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// One measured run.
#[derive(Clone, Debug)]
pub struct Measure {
    pub file: PathBuf,
    pub model: String,
    pub dataset: String,
    /// Users + items: the nodes of the user–item graph.
    pub size: f64,
    pub seconds_per_epoch: f64,
    pub peak_memory_mb: f64,
    pub threads: Option<u64>,
    pub generated: Option<String>,
}

/// The results.json files `path` names: the file itself, a run folder's, or those of the run
/// folders one or two levels under a folder.
pub fn results_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(CraneError::file(path, "does not exist"));
    }
    if path.join("results.json").is_file() {
        return Ok(vec![path.join("results.json")]);
    }
    let mut out = Vec::new();
    for sub in sub_dirs(path)? {
        if sub.join("results.json").is_file() {
            out.push(sub.join("results.json"));
        } else {
            out.extend(sub_dirs(&sub)?.into_iter().map(|s| s.join("results.json")).filter(|f| f.is_file()));
        }
    }
    if out.is_empty() {
        return Err(CraneError::file(
            path,
            "holds no results.json (give `crane bench` run folders, their results.json, or folders of them)",
        ));
    }
    Ok(out)
}

/// Reads one results.json.
pub fn read_measure(file: &Path) -> Result<Measure> {
    let r = read_json_opt(file)?.ok_or_else(|| CraneError::file(file, "does not exist"))?;
    let need = |p: &str| {
        num(&r, p).ok_or_else(|| {
            CraneError::file(file, format!("no number `{p}`: not a results.json of `crane bench` or `crane train`"))
        })
    };
    let size = need("dataset.users")? + need("dataset.items")?;
    let model = text(&r, "config.model_preset")
        .ok_or_else(|| CraneError::file(file, "no `config.model_preset`: not a results.json of crane"))?;
    let manifest = file.parent().map(|d| d.join("manifest.json"));
    let generated = match manifest {
        Some(m) => {
            read_json_opt(&m)?.and_then(|m| m.get("generated_features").and_then(|g| g.as_str().map(|s| s.to_string())))
        }
        None => None,
    };
    Ok(Measure {
        file: file.to_path_buf(),
        model,
        dataset: text(&r, "dataset.name").unwrap_or_else(|| "?".into()),
        size,
        seconds_per_epoch: need("seconds_per_epoch")?,
        peak_memory_mb: need("peak_memory_mb")?,
        threads: r.get("threads").and_then(|t| t.as_u64()),
        generated,
    })
}

/// The scaling figure.
pub struct ScalingFig {
    pub measures: Vec<Measure>,
    /// Models in drawing order, with their colours.
    pub models: Vec<(String, RGBColor)>,
    pub title: String,
    pub lines: Vec<String>,
    legend: Vec<LegendItem>,
}

const WIDTH: u32 = 1300;
const HEIGHT: u32 = 560;

impl ScalingFig {
    pub fn load(paths: &[PathBuf]) -> Result<Self> {
        let mut measures = Vec::new();
        for p in paths {
            for f in results_files(p)? {
                measures.push(read_measure(&f)?);
            }
        }
        if measures.is_empty() {
            return Err(CraneError::Invalid("crane plot scaling: give at least one results.json".into()));
        }
        let mut names: Vec<String> = Vec::new();
        for m in &measures {
            if !names.contains(&m.model) {
                names.push(m.model.clone());
            }
        }
        names.sort_by_key(|n| model_sort_key(n));
        let models: Vec<(String, RGBColor)> = names.iter().cloned().zip(colours(&names)).collect();
        let mut sizes: Vec<(f64, String)> = Vec::new();
        for m in &measures {
            if !sizes.iter().any(|(s, d)| *s == m.size && *d == m.dataset) {
                sizes.push((m.size, m.dataset.clone()));
            }
        }
        sizes.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut threads: Vec<u64> = measures.iter().filter_map(|m| m.threads).collect();
        threads.sort();
        threads.dedup();
        let mut lines = vec![
            format!(
                "{} run(s); datasets (users + items): {}",
                measures.len(),
                sizes.iter().map(|(s, d)| format!("{d} ({})", human(*s))).collect::<Vec<_>>().join(", ")
            ),
            format!(
                "seconds per epoch: training only (evaluation excluded); peak memory: the process's peak resident set; \
                 threads: {}",
                threads.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
            ),
        ];
        if let Some(g) = measures.iter().find_map(|m| m.generated.clone()) {
            lines.push(generated_caveat(&g));
        }
        let legend = models
            .iter()
            .map(|(m, c)| {
                let n = measures.iter().filter(|x| &x.model == m).count();
                LegendItem::new(Swatch::Line(*c, 3), format!("{m} ({n} run{})", if n == 1 { "" } else { "s" }))
            })
            .collect();
        let title = "Cost against dataset size: seconds per epoch and peak memory per model".to_string();
        Ok(Self { measures, models, title, lines, legend })
    }

    /// Each model's (size, mean value over its runs at that size), sorted by size.
    pub fn series(&self, model: &str, value: impl Fn(&Measure) -> f64) -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64, usize)> = Vec::new();
        for m in self.measures.iter().filter(|m| m.model == model) {
            match out.iter_mut().find(|(s, _, _)| *s == m.size) {
                Some(e) => {
                    e.1 += value(m);
                    e.2 += 1;
                }
                None => out.push((m.size, value(m), 1)),
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out.into_iter().map(|(s, v, n)| (s, v / n as f64)).collect()
    }
}

impl Figure for ScalingFig {
    fn size(&self) -> (u32, u32) {
        (WIDTH, frame_height(&self.lines, &self.legend, WIDTH) + HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let rest = frame(root, &self.title, &self.lines, &self.legend)?;
        let (left, right) = rest.split_horizontally(WIDTH / 2);
        self.panel(&left, "Seconds per training epoch", "seconds per epoch", &|m| m.seconds_per_epoch)?;
        self.panel(&right, "Peak memory", "peak resident memory (MB)", &|m| m.peak_memory_mb)?;
        Ok(())
    }
}

impl ScalingFig {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        caption: &str,
        y_desc: &str,
        value: &dyn Fn(&Measure) -> f64,
    ) -> DrawResult<DB> {
        let xs: Vec<f64> = self.measures.iter().map(|m| m.size).filter(|v| v.is_finite()).collect();
        let ys: Vec<f64> = self.measures.iter().map(value).filter(|v| v.is_finite()).collect();
        let (sx, sy) = (Scale::for_values(&xs, 4.0), Scale::for_values(&ys, 10.0));
        let ((x0, x1), (y0, y1)) = (sx.range(&xs, false), sy.range(&ys, true));
        let mut chart = ChartBuilder::on(area)
            .caption(caption, font(20.0))
            .margin(12)
            .margin_right(28)
            .x_label_area_size(48)
            .y_label_area_size(86)
            .build_cartesian_2d(
                KeyedAxis::new((x0, x1), sx.ticks(x0, x1)),
                KeyedAxis::new((y0, y1), sy.ticks(y0, y1)),
            )?;
        chart
            .configure_mesh()
            .x_desc(format!("dataset size: users + items{}", if sx.log { " (log scale)" } else { "" }))
            .y_desc(format!("{y_desc}{}", if sy.log { ", log scale" } else { "" }))
            .label_style(font(14.0))
            .axis_desc_style(font(16.0))
            .bold_line_style(GRID_LINE)
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|v| sx.label(*v, x1 - x0))
            .y_label_formatter(&|v| sy.label(*v, y1 - y0))
            .draw()?;
        for (model, colour) in &self.models {
            let line: Vec<(f64, f64)> = self
                .series(model, value)
                .into_iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!sy.log || *y > 0.0))
                .map(|(x, y)| (sx.fwd(x), sy.fwd(y)))
                .collect();
            chart.draw_series(LineSeries::new(line, colour.stroke_width(3)))?;
            let pts = self.measures.iter().filter(|m| &m.model == model).map(|m| (m.size, value(m)));
            let pts: Vec<(f64, f64)> =
                pts.filter(|(x, y)| x.is_finite() && y.is_finite() && (!sy.log || *y > 0.0)).collect();
            chart.draw_series(pts.into_iter().map(|(x, y)| Circle::new((sx.fwd(x), sy.fwd(y)), 5, colour.filled())))?;
        }
        Ok(())
    }
}

/// `crane plot scaling`: draws the runs' costs into `<out>.png` / `.svg` (default: `scaling`
/// in the folder holding every input) and returns the files written.
pub fn plot(paths: &[PathBuf], out: Option<&Path>) -> Result<Vec<PathBuf>> {
    let fig = ScalingFig::load(paths)?;
    save(&fig, &out.map(Path::to_path_buf).unwrap_or_else(|| common_folder(paths).join("scaling")))
}
