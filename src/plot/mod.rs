//! `crane plot`: the figures behind the paper's plots, drawn from the files crane writes (run
//! folders, comparisons, grids, bench outputs, checkpoints) with plotters' SVG and bitmap back
//! ends. Every figure is written twice next to its data, `<stem>.svg` and `<stem>.png`, each
//! atomically.
//!
//! - [`curves`]: validation Recall@20 / NDCG@20 and the loss terms per epoch (Fig. 8);
//! - [`compare`]: test Recall@20 / NDCG@20 per model, seeds' spread, popularity reference;
//! - [`grid`]: validation Recall@20 against each swept setting (Fig. 5);
//! - [`scaling`]: seconds per epoch and peak memory against dataset size (Fig. 7);
//! - [`embeddings`]: a 2-D map (t-SNE, or PCA) of a checkpoint's item embeddings.
//!
//! Text is drawn with the vendored DejaVu Sans (`assets/fonts/`, registered on first use), so
//! no system font library is needed and a PNG is the same on every machine. Bad input (a
//! missing file, a folder without runs, a CSV from an older version) is an error naming the
//! file; a panic inside the drawing library is caught and reported the same way.

pub mod compare;
pub mod curves;
pub mod embeddings;
pub mod grid;
pub mod runs;
pub mod scaling;

use crate::error::{CraneError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// The vendored font (DejaVu Sans 2.37, Bitstream Vera license: assets/fonts/).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family every text style uses; [`register_font`] maps it to [`FONT`].
pub const FAMILY: &str = "sans-serif";

/// Registers the vendored font under [`FAMILY`] (once per process).
pub fn register_font() -> Result<()> {
    static DONE: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| "the vendored font assets/fonts/DejaVuSans.ttf cannot be parsed".to_string())
    })
    .clone()
    .map_err(CraneError::Invalid)
}

/// What drawing on a backend returns.
pub type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure that can be drawn on any plotters back end (the same code makes the SVG and the PNG).
pub trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// `<stem>.<ext>` (the stem may itself contain dots).
pub fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_os_string();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Runs `f`, turning a drawing error or a panic in the drawing library into an error naming
/// `path`.
fn guarded<E: std::fmt::Display>(path: &Path, f: impl FnOnce() -> std::result::Result<(), E>) -> Result<()> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(CraneError::file(path, format!("cannot draw the figure: {e}"))),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(CraneError::file(path, format!("the plotting library failed: {msg}")))
        }
    }
}

/// Draws `fig` into `<stem>.svg` and `<stem>.png` (each written atomically) and returns the
/// two paths, PNG first.
pub fn save(fig: &impl Figure, stem: &Path) -> Result<Vec<PathBuf>> {
    register_font()?;
    let (w, h) = fig.size();
    let (svg_path, png_path) = (with_ext(stem, "svg"), with_ext(stem, "png"));
    let mut svg = String::new();
    guarded(&svg_path, || {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        fig.draw(&root)?;
        root.present()
    })?;
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    guarded(&png_path, || {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        fig.draw(&root)?;
        root.present()
    })?;
    crate::io::write_atomic(&png_path, |out| {
        use image::ImageEncoder;
        image::codecs::png::PngEncoder::new(out)
            .write_image(&buf, w, h, image::ColorType::Rgb8)
            .map_err(std::io::Error::other)
    })?;
    crate::io::write_string_atomic(&svg_path, &svg)?;
    Ok(vec![png_path, svg_path])
}

/// The colours (matplotlib's tab10, readable on white and distinguishable).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The model presets in the paper's table order; each keeps its colour in every figure.
pub const MODEL_ORDER: [&str; 5] = ["bpr", "lightgcn", "freedom", "crane", "crane-code"];

/// A colour per name: the model presets keep theirs ([`MODEL_ORDER`]), other names take the
/// next free palette entries in order.
pub fn colours(names: &[String]) -> Vec<RGBColor> {
    let mut used = [false; PALETTE.len()];
    let fixed: Vec<Option<usize>> = names.iter().map(|n| MODEL_ORDER.iter().position(|m| m == n)).collect();
    for f in fixed.iter().flatten() {
        used[*f] = true;
    }
    let mut next = 0;
    fixed
        .iter()
        .map(|f| match f {
            Some(k) => PALETTE[*k],
            None => {
                let free = (0..PALETTE.len()).map(|k| (next + k) % PALETTE.len()).find(|&k| !used[k]);
                let k = free.unwrap_or(next % PALETTE.len());
                used[k] = true;
                next = k + 1;
                PALETTE[k]
            }
        })
        .collect()
}

/// Sorts names: the model presets first in [`MODEL_ORDER`], then the others in their given order.
pub fn model_sort_key(name: &str) -> usize {
    MODEL_ORDER.iter().position(|m| *m == name).unwrap_or(MODEL_ORDER.len())
}

/// A text style of the vendored font.
pub fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font())
}

pub const CAVEAT: RGBColor = RGBColor(170, 20, 20);
pub const GRID_LINE: RGBColor = RGBColor(225, 225, 225);

/// Shortens `text` with "…" until it fits in `max_w` pixels.
pub fn fit<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str, style: &TextStyle, max_w: u32) -> String {
    let width = |s: &str| area.estimate_text_size(s, style).map(|(w, _)| w).unwrap_or(0);
    if width(text) <= max_w {
        return text.to_string();
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let s: String = chars.iter().collect::<String>() + "…";
        if width(&s) <= max_w {
            return s;
        }
    }
    String::new()
}

/// Pixels per character of the 16-px text, an upper estimate for wrapping before drawing.
const CHAR_PX: f64 = 7.8;

/// `lines` wrapped at spaces to `width` pixels (estimated); a caveat's pieces stay caveats.
pub fn wrap(lines: &[String], width: u32) -> Vec<String> {
    let max = ((width.saturating_sub(40)) as f64 / CHAR_PX).max(20.0) as usize;
    let mut out = Vec::new();
    for line in lines {
        let (mark, text) = match line.strip_prefix('!') {
            Some(t) => ("!", t),
            None => ("", line.as_str()),
        };
        let mut cur = String::new();
        for word in text.split(' ') {
            if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > max {
                out.push(format!("{mark}{cur}"));
                cur.clear();
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        out.push(format!("{mark}{cur}"));
    }
    out
}

/// Height of a [`frame`]'s title, lines and legend in `width` pixels.
pub fn frame_height(lines: &[String], items: &[LegendItem], width: u32) -> u32 {
    46 + 22 * wrap(lines, width).len() as u32 + legend_height(legend_rows(items, width))
}

/// Draws a title, the lines under it (wrapped; a line starting with `!` is a caveat, drawn in
/// red without the `!`) and a legend, and returns the area below them.
pub fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    lines: &[String],
    items: &[LegendItem],
) -> std::result::Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    let width = root.dim_in_pixel().0;
    let lines = wrap(lines, width);
    let (area, rest) = root.split_vertically(46 + 22 * lines.len() as u32);
    let max_w = width.saturating_sub(40);
    let ts = font(24.0).pos(Pos::new(HPos::Left, VPos::Top));
    area.draw(&Text::new(fit(&area, title, &ts, max_w), (20, 12), ts.clone()))?;
    for (k, line) in lines.iter().enumerate() {
        let (text, colour) = match line.strip_prefix('!') {
            Some(t) => (t, CAVEAT),
            None => (line.as_str(), RGBColor(60, 60, 60)),
        };
        let s = font(16.0).color(&colour).pos(Pos::new(HPos::Left, VPos::Top));
        area.draw(&Text::new(fit(&area, text, &s, max_w), (20, 44 + 22 * k as i32), s.clone()))?;
    }
    let (leg, body) = rest.split_vertically(legend_height(legend_rows(items, width)));
    legend(&leg, items)?;
    Ok(body)
}

/// A label with a white box behind it, `dy` pixels above (negative: below) the data point at
/// backend pixel `at`, drawn on `area` (whose origin is its own top-left corner).
pub fn boxed_label<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    dy: i32,
    text: &str,
    colour: RGBColor,
) -> DrawResult<DB> {
    let base = area.get_base_pixel();
    let style = font(15.0).color(&colour).pos(Pos::new(HPos::Center, VPos::Center));
    let (w, h) = area.estimate_text_size(text, &style)?;
    let (x, y) = (at.0 - base.0, at.1 - base.1 - dy);
    let (hw, hh) = (w as i32 / 2 + 4, h as i32 / 2 + 3);
    area.draw(&Rectangle::new([(x - hw, y - hh), (x + hw, y + hh)], WHITE.mix(0.9).filled()))?;
    area.draw(&Text::new(text.to_string(), (x, y), style))?;
    Ok(())
}

/// How a legend entry is drawn.
#[derive(Clone, Copy, Debug)]
pub enum Swatch {
    /// A line of this width.
    Line(RGBColor, u32),
    /// A thin, translucent line (one seed).
    Thin(RGBColor),
    Dashed(RGBColor),
    /// A filled circle with a black ring (a marked point).
    Dot(RGBColor),
    /// An open circle.
    Ring(RGBColor),
    Bar(RGBColor),
    /// A vertical error bar.
    ErrorBar,
}

/// One legend entry.
#[derive(Clone, Debug)]
pub struct LegendItem {
    pub swatch: Swatch,
    pub label: String,
}

impl LegendItem {
    pub fn new(swatch: Swatch, label: impl Into<String>) -> Self {
        Self { swatch, label: label.into() }
    }
}

/// Rows a [`legend`] of these items takes in `width` pixels (an estimate without a backend:
/// 8.5 px per character at 16 px).
pub fn legend_rows(items: &[LegendItem], width: u32) -> u32 {
    let mut rows = 1;
    let mut x = 20u32;
    for it in items {
        let w = 40 + (it.label.chars().count() as f64 * 8.5) as u32 + 24;
        if x + w > width.saturating_sub(10) && x > 20 {
            rows += 1;
            x = 20;
        }
        x += w;
    }
    rows
}

/// Height of a [`legend`] of `rows` rows.
pub fn legend_height(rows: u32) -> u32 {
    10 + 26 * rows
}

/// The entries left to right, wrapping to a new row when the width is used up.
pub fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, items: &[LegendItem]) -> DrawResult<DB> {
    let width = area.dim_in_pixel().0 as i32;
    let style = font(16.0).pos(Pos::new(HPos::Left, VPos::Center));
    let (mut x, mut y) = (20i32, 16i32);
    for it in items {
        let tw = area.estimate_text_size(&it.label, &style)?.0 as i32;
        let w = 40 + tw + 24;
        if x + w > width - 10 && x > 20 {
            x = 20;
            y += 26;
        }
        let (a, b) = ((x, y), (x + 32, y));
        match it.swatch {
            Swatch::Line(c, wd) => area.draw(&PathElement::new(vec![a, b], c.stroke_width(wd)))?,
            Swatch::Thin(c) => area.draw(&PathElement::new(vec![a, b], c.mix(0.5).stroke_width(1)))?,
            Swatch::Dashed(c) => {
                for k in 0..4 {
                    let x0 = x + k * 9;
                    area.draw(&PathElement::new(vec![(x0, y), (x0 + 5, y)], c.stroke_width(2)))?;
                }
            }
            Swatch::Dot(c) => {
                area.draw(&Circle::new((x + 16, y), 6, c.filled()))?;
                area.draw(&Circle::new((x + 16, y), 6, BLACK.stroke_width(1)))?;
            }
            Swatch::Ring(c) => area.draw(&Circle::new((x + 16, y), 4, c.stroke_width(1)))?,
            Swatch::Bar(c) => area.draw(&Rectangle::new([(x + 4, y - 8), (x + 28, y + 8)], c.mix(0.85).filled()))?,
            Swatch::ErrorBar => {
                area.draw(&PathElement::new(vec![(x + 16, y - 9), (x + 16, y + 9)], BLACK.stroke_width(2)))?;
                area.draw(&PathElement::new(vec![(x + 10, y - 9), (x + 22, y - 9)], BLACK.stroke_width(2)))?;
                area.draw(&PathElement::new(vec![(x + 10, y + 9), (x + 22, y + 9)], BLACK.stroke_width(2)))?;
            }
        }
        area.draw(&Text::new(it.label.clone(), (x + 40, y), style.clone()))?;
        x += w;
    }
    Ok(())
}

/// Tick labels for values spanning `span`: enough decimals to tell neighbours apart, in
/// scientific notation when that would take more than four decimals (the same format for every
/// tick of an axis, as it depends on the span only).
pub fn tick(v: f64, span: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let span = if span > 0.0 && span.is_finite() { span } else { v.abs().max(1e-12) };
    let decimals = (-(span / 10.0).log10().floor()).max(0.0) as usize;
    if decimals > 4 || span >= 1e6 {
        return format!("{v:.2e}");
    }
    format!("{v:.decimals$}")
}

/// A linear f64 axis over `lo..hi` whose ticks (and grid lines) are exactly `keys`: epochs,
/// a grid's swept values, models at 0, 1, ... (labels come from the chart's formatter).
#[derive(Clone, Debug)]
pub struct KeyedAxis {
    pub lo: f64,
    pub hi: f64,
    pub keys: Vec<f64>,
}

impl KeyedAxis {
    pub fn new((lo, hi): (f64, f64), keys: Vec<f64>) -> Self {
        let hi = if hi > lo { hi } else { lo + 1.0 };
        Self { lo, hi, keys: keys.into_iter().filter(|k| k.is_finite() && *k >= lo && *k <= hi).collect() }
    }
}

impl plotters::coord::ranged1d::Ranged for KeyedAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let f = (v - self.lo) / (self.hi - self.lo);
        let px = limit.0 as f64 + f * (limit.1 - limit.0) as f64;
        if px.is_finite() {
            px.round().clamp(-1e6, 1e6) as i32
        } else {
            limit.0
        }
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// A linear or base-10 logarithmic axis; values are drawn at [`Scale::fwd`].
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub log: bool,
}

impl Scale {
    /// Log-scaled when every value is positive and they span at least `factor`.
    pub fn for_values(v: &[f64], factor: f64) -> Self {
        let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
        Self { log: lo > 0.0 && hi / lo >= factor }
    }

    pub fn fwd(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }

    /// The drawn range of values `v` (padded).
    pub fn range(&self, v: &[f64], from_zero: bool) -> (f64, f64) {
        if self.log {
            let (lo, hi) = padded(v.iter().map(|x| x.log10()), 0.08, false);
            (lo, hi)
        } else {
            padded(v.iter().copied(), 0.08, from_zero)
        }
    }

    /// Tick positions in `lo..hi` (drawn coordinates): 1-2-5 steps per decade when log.
    pub fn ticks(&self, lo: f64, hi: f64) -> Vec<f64> {
        if !self.log {
            let step = nice_step((hi - lo) / 7.0);
            let first = (lo / step).ceil() as i64;
            return (first..).map(|k| k as f64 * step).take_while(|x| *x <= hi + 1e-12).collect();
        }
        let mut out = Vec::new();
        for mant in [&[1.0][..], &[1.0, 2.0, 5.0], &[1.0, 2.0, 3.0, 5.0, 7.0]] {
            out = (lo.floor() as i32..=hi.ceil() as i32)
                .flat_map(|e| mant.iter().map(move |m| (m * 10f64.powi(e)).log10()))
                .filter(|p| *p >= lo && *p <= hi)
                .collect();
            if out.len() >= 3 {
                break;
            }
        }
        out
    }

    /// A tick's label (the value, not its logarithm); `span` is the drawn range's width.
    pub fn label(&self, pos: f64, span: f64) -> String {
        if self.log {
            let v = 10f64.powf(pos);
            if v < 1e-2 {
                format!("{v:.0e}")
            } else {
                human(v)
            }
        } else {
            tick(pos, span)
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `x`.
fn nice_step(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let e = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * e).find(|s| *s >= x).unwrap_or(10.0 * e)
}

/// 26495 → "26.5k", 0.25 → "0.25".
pub fn human(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if a >= 1e6 {
        trim(format!("{:.2}", v / 1e6)) + "M"
    } else if a >= 1e3 {
        trim(format!("{:.1}", v / 1e3)) + "k"
    } else if a >= 1.0 || a == 0.0 {
        trim(format!("{v:.2}"))
    } else {
        trim(format!("{v:.3}"))
    }
}

/// A "nice" integer step giving at most `max_ticks` ticks over `0..=max`.
pub fn integer_ticks(max: usize, max_ticks: usize) -> Vec<f64> {
    let mut step = 1usize;
    for s in [1usize, 2, 5].iter().cycle().scan(1usize, |m, &b| {
        let v = b * *m;
        if b == 5 {
            *m *= 10;
        }
        Some(v)
    }) {
        step = s;
        if max / s < max_ticks.max(1) {
            break;
        }
    }
    (0..=max).step_by(step).map(|v| v as f64).collect()
}

/// `lo..hi` padded by `frac` of the span (or around a single value), and starting at 0 when
/// `from_zero` and every value is non-negative.
pub fn padded(values: impl IntoIterator<Item = f64>, frac: f64, from_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if from_zero && lo >= 0.0 {
        lo = 0.0;
    }
    let span = hi - lo;
    if span <= 0.0 {
        let d = if hi == 0.0 { 1.0 } else { hi.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    // Non-negative data is never padded below 0.
    let lo = if (from_zero && lo == 0.0) || (lo >= 0.0 && lo - span * frac < 0.0) { 0.0 } else { lo - span * frac };
    (lo, hi + span * frac)
}

/// What `features.json` (its text: `raw`) says the generated data is: its `what` field, or the
/// text on one line when it has none.
pub fn generated_what(raw: &str) -> String {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v.get("what").and_then(|w| w.as_str()).map(|s| s.to_string()))
        .unwrap_or_else(|| raw.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The caveat line of data with generated features: `!` + what `features.json` says.
pub fn generated_caveat(what: &str) -> String {
    let what = generated_what(what);
    let what = if what.to_lowercase().contains("generated") { what } else { format!("GENERATED features: {what}") };
    format!("!{what}: not the paper's image/text features; feature-based models' numbers say nothing about real ones")
}

/// The deepest folder holding every path (the folder itself for one folder).
pub fn common_folder(paths: &[PathBuf]) -> PathBuf {
    let dirs: Vec<PathBuf> = paths
        .iter()
        .map(|p| if p.is_dir() { p.clone() } else { p.parent().map(Path::to_path_buf).unwrap_or_default() })
        .collect();
    let Some(first) = dirs.first() else { return PathBuf::from(".") };
    let mut common: Vec<_> = first.components().collect();
    for d in &dirs[1..] {
        let c: Vec<_> = d.components().collect();
        let n = common.iter().zip(&c).take_while(|(a, b)| a == b).count();
        common.truncate(n);
    }
    let p: PathBuf = common.iter().collect();
    if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_ranges() {
        assert_eq!(integer_ticks(0, 10), vec![0.0]);
        assert_eq!(integer_ticks(5, 10), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(integer_ticks(168, 10).len(), 9); // step 20
        assert_eq!(padded([0.5], 0.05, false), (0.45, 0.55));
        assert_eq!(padded([], 0.05, true), (0.0, 1.0));
        assert_eq!(tick(0.0526, 0.08), "0.053");
        assert_eq!(tick(9.5e-4, 2e-4), "9.50e-4");
        assert_eq!(tick(1.05e-3, 2e-4), "1.05e-3");
        assert_eq!(tick(0.0, 2e-4), "0");
        assert_eq!(
            with_ext(Path::new("a/model.lambda=0.1/curves"), "png"),
            PathBuf::from("a/model.lambda=0.1/curves.png")
        );
        let c = colours(&["crane".into(), "x".into(), "bpr".into()]);
        assert_eq!(c[0], PALETTE[3]);
        assert_eq!(c[2], PALETTE[0]);
        assert_eq!(c[1], PALETTE[1]);
    }
}
