//! `crane plot`: each figure drawn from small fixtures in a temp folder; the PNG's header size
//! and the SVG's elements (lines, bars, markers, their extents) checked against the data.

mod common;
use common::Scratch;
use crane::plot::{self, PALETTE};
use std::path::{Path, PathBuf};
use std::process::Command;

fn temp(tag: &str) -> Scratch {
    common::scratch(&format!("plot-{tag}"))
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn hex(c: plotters::style::RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// Validation Recall@20 of a fixture run at `epoch`.
fn recall(seed: u64, epoch: usize) -> f64 {
    0.02 + 0.01 * epoch as f64 + 0.001 * (seed % 7) as f64
}

/// A run folder as `crane train` writes it: `epochs` epochs, the best at `best`.
fn write_run(dir: &Path, model: &str, seed: u64, epochs: usize, best: usize, generated: bool) {
    let mut jsonl = String::new();
    for e in 0..epochs {
        let cl = if model == "crane" { 4.0 - 0.1 * e as f64 } else { 0.0 };
        jsonl.push_str(&format!(
            "{{\"epoch\":{e},\"loss\":{},\"bpr\":{},\"cl_user\":{cl},\"cl_item\":0.0,\"reg\":0.001,\"modality\":0.0,\
             \"valid\":{{\"recall@20\":{},\"ndcg@20\":{},\"recall@10\":0.01}},\"seconds_train\":1.0}}\n",
            0.7 - 0.05 * e as f64 + cl,
            0.7 - 0.05 * e as f64,
            recall(seed, e),
            recall(seed, e) / 2.0
        ));
    }
    write(&dir.join("history.jsonl"), &jsonl);
    let m =
        |r: f64| format!("{{\"ks\":[10,20],\"recall\":[{},{r}],\"ndcg\":[0.01,{}],\"users\":10}}", r / 2.0, r / 2.0);
    write(
        &dir.join("results.json"),
        &format!(
            "{{\"config\":{{\"model_preset\":\"{model}\",\"seed\":{seed}}},\"dataset\":{{\"name\":\"fixture\",\"users\":100,\
             \"items\":50}},\"best_epoch\":{best},\"valid\":{},\"test\":{},\"popularity_test\":{},\"epochs_run\":{epochs},\
             \"seconds_per_epoch\":1.5,\"peak_memory_mb\":300.0}}",
            m(recall(seed, best)),
            m(recall(seed, best) + 0.005),
            m(0.03)
        ),
    );
    let g =
        if generated { "\"{\\\"generated\\\": true, \\\"what\\\": \\\"GENERATED test features\\\"}\"" } else { "null" };
    write(&dir.join("manifest.json"), &format!("{{\"seed\":{seed},\"generated_features\":{g}}}"));
}

/// (model, seed, epochs, best) of the comparison fixture.
const RUNS: [(&str, u64, usize, usize); 5] =
    [("bpr", 9, 5, 3), ("bpr", 672, 6, 4), ("bpr", 5368, 7, 6), ("crane", 9, 4, 2), ("crane", 672, 4, 1)];

/// A comparison folder: run folders, compare.csv and compare.md.
fn write_comparison(dir: &Path) {
    let mut csv = String::from(
        "model,seed,best_epoch,epochs_run,seconds_per_epoch,peak_memory_mb,recall@10,recall@20,ndcg@10,ndcg@20\n",
    );
    for (model, seed, epochs, best) in RUNS {
        write_run(&crane::compare::run_dir(dir, model, seed), model, seed, epochs, best, true);
        let t = recall(seed, best) + 0.005;
        csv.push_str(&format!("{model},{seed},{best},{epochs},1.5,300,{},{t:.6},0.01,{:.6}\n", t / 2.0, t / 2.0));
    }
    write(&dir.join("compare.csv"), &csv);
    write(
        &dir.join("compare.md"),
        "# Comparison on fixture (MMRec layout (.inter))\n\n- data: `x`; real interactions with GENERATED features: \
         {   \"generated\": true,   \"what\": \"GENERATED test features\" }\n\n| model |\n",
    );
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is a PNG", path.display());
    assert_eq!(&b[12..16], b"IHDR");
    let be = |s: &[u8]| u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
    (be(&b[16..20]), be(&b[20..24]))
}

/// One SVG element: its attributes.
struct El(Vec<(String, String)>);

impl El {
    fn get(&self, k: &str) -> &str {
        self.0.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str()).unwrap_or("")
    }
    fn num(&self, k: &str) -> f64 {
        self.get(k).parse().unwrap()
    }
    /// A polyline's points.
    fn points(&self) -> Vec<(f64, f64)> {
        self.get("points")
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }
}

/// Every `<tag .../>` element of the SVG.
fn elements(svg: &str, tag: &str) -> Vec<El> {
    let open = format!("<{tag} ");
    svg.match_indices(&open)
        .map(|(i, _)| {
            let body = &svg[i + open.len()..];
            let body = &body[..body.find('>').unwrap()];
            let mut attrs = Vec::new();
            let mut rest = body;
            while let Some(eq) = rest.find("=\"") {
                let key = rest[..eq].trim().to_string();
                let after = &rest[eq + 2..];
                let end = after.find('"').unwrap();
                attrs.push((key, after[..end].to_string()));
                rest = &after[end + 1..];
            }
            El(attrs)
        })
        .collect()
}

/// Checks the PNG and SVG exist with the same size and returns the SVG text.
fn check_files(files: &[PathBuf]) -> String {
    assert_eq!(files.len(), 2, "a PNG and an SVG: {files:?}");
    assert!(files[0].extension().unwrap() == "png" && files[1].extension().unwrap() == "svg");
    let (w, h) = png_size(&files[0]);
    let svg = std::fs::read_to_string(&files[1]).unwrap();
    assert!(svg.starts_with(&format!("<svg width=\"{w}\" height=\"{h}\"")), "SVG and PNG sizes agree ({w}x{h})");
    assert!(w >= 800 && h >= 400, "a readable size: {w}x{h}");
    svg
}

fn lines_of(svg: &str, colour: plotters::style::RGBColor, width: &str) -> Vec<Vec<(f64, f64)>> {
    elements(svg, "polyline")
        .into_iter()
        .filter(|e| e.get("stroke") == hex(colour) && e.get("stroke-width") == width)
        .map(|e| e.points())
        .collect()
}

#[test]
fn curves_of_a_comparison_draw_every_seed_their_mean_and_best_epochs() {
    let dir = temp("curves");
    write_comparison(&dir);
    let files = plot::curves::plot(&[dir.to_path_buf()], None).unwrap();
    assert_eq!(files[0], dir.join("curves.png"));
    let svg = check_files(&files);
    let (bpr, crane) = (PALETTE[0], PALETTE[3]);
    // Panels: Recall, NDCG, and the loss terms present: total, bpr, cl_user (crane), reg.
    // BPR-MF has no contrastive term, so it is in 5 panels; each seed thin, the mean thick.
    let mut thin: Vec<usize> = lines_of(&svg, bpr, "1").iter().map(|l| l.len()).collect();
    thin.sort();
    assert_eq!(
        thin,
        [5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7],
        "one thin line per seed and panel, one point per epoch"
    );
    let thick: Vec<usize> = lines_of(&svg, bpr, "3").iter().map(|l| l.len()).filter(|&n| n > 2).collect();
    assert_eq!(thick, [5; 5], "the mean over the epochs every seed ran, in each panel");
    let crane_thin = lines_of(&svg, crane, "1");
    assert_eq!(crane_thin.len(), 2 * 6, "crane's two seeds in 6 panels (its contrastive term too)");
    // In one panel the seeds start at the same x, and a longer run reaches further right.
    let all = lines_of(&svg, bpr, "1");
    let recall_panel = &all[..3];
    assert!(recall_panel.iter().all(|l| l[0].0 == recall_panel[0][0].0));
    assert!(recall_panel[0].last().unwrap().0 < recall_panel[2].last().unwrap().0);
    // Rising Recall goes up the page (SVG y decreases).
    assert!(recall_panel[0].last().unwrap().1 < recall_panel[0][0].1);
    // Best-epoch markers: every run in both metric panels, on its own line's point.
    let markers: Vec<El> =
        elements(&svg, "circle").into_iter().filter(|c| c.get("fill") == hex(bpr) && c.get("r") == "6").collect();
    assert_eq!(markers.len(), 3 * 2);
    let first = &lines_of(&svg, bpr, "1")[0];
    let (x, y) = first[RUNS[0].3];
    assert!(markers.iter().any(|m| (m.num("cx") - x).abs() <= 1.0 && (m.num("cy") - y).abs() <= 1.0));
    assert!(svg.contains("GENERATED test features"), "the generated-features caveat");
    assert!(svg.contains("bpr (3 seeds)") && svg.contains("crane (2 seeds)"), "the legend");
}

#[test]
fn curves_of_one_run_with_one_epoch_render() {
    let dir = temp("one-epoch");
    write_run(&dir, "bpr", 9, 1, 0, false);
    let files = plot::curves::plot(&[dir.to_path_buf()], Some(&dir.join("one"))).unwrap();
    let svg = check_files(&files);
    let lines = lines_of(&svg, PALETTE[0], "3");
    assert!(lines.iter().filter(|l| l.len() == 1).count() >= 2, "a one-point line per panel");
    let markers: Vec<El> = elements(&svg, "circle").into_iter().filter(|c| c.get("fill") == hex(PALETTE[0])).collect();
    assert_eq!(markers.iter().filter(|c| c.get("r") == "6").count(), 2, "its best epoch marked in both metric panels");
    assert_eq!(
        markers.iter().filter(|c| c.get("r") == "3").count(),
        5,
        "a dot per panel: Recall, NDCG, loss, bpr, reg"
    );
    assert!(!svg.contains("GENERATED"), "no caveat for real features");
    // An unfinished run (no results.json) still draws, its best epoch the best so far.
    std::fs::remove_file(dir.join("results.json")).unwrap();
    check_files(&plot::curves::plot(&[dir.to_path_buf()], None).unwrap());
}

#[test]
fn compare_draws_bars_at_the_means_with_seed_spread_and_popularity() {
    let dir = temp("compare");
    write_comparison(&dir);
    let files = plot::compare::plot(&dir, None).unwrap();
    assert_eq!(files[1], dir.join("compare.svg"));
    let svg = check_files(&files);
    let bars = |c| -> Vec<El> {
        elements(&svg, "rect").into_iter().filter(|r| r.get("fill") == hex(c) && r.num("height") > 20.0).collect()
    };
    let (bpr, crane) = (bars(PALETTE[0]), bars(PALETTE[3]));
    assert_eq!((bpr.len(), crane.len()), (2, 2), "one bar per model in each panel");
    // The bars' heights (from the same baseline) are in the ratio of the means.
    let mean = |m: &str| {
        let v: Vec<f64> = RUNS.iter().filter(|r| r.0 == m).map(|r| recall(r.1, r.3) + 0.005).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let ratio = bpr[0].num("height") / crane[0].num("height");
    assert!((ratio - mean("bpr") / mean("crane")).abs() < 0.02, "bar ratio {ratio}");
    assert_eq!(bpr[0].num("y") + bpr[0].num("height"), crane[0].num("y") + crane[0].num("height"));
    // Each seed a dot in both panels (+ the legend's).
    let dots = elements(&svg, "circle").into_iter().filter(|c| c.get("r") == "4").count();
    assert_eq!(dots, 2 * RUNS.len() + 1);
    // The popularity line (dashed: several segments), at 0.03 in the Recall panel: below the
    // bars' tops (means > 0.05).
    let dashes = elements(&svg, "polyline").into_iter().filter(|p| p.get("stroke") == "#5A5A5A").count();
    assert!(dashes > 10, "a dashed popularity line in each panel (and the legend's)");
    assert!(svg.contains("popularity ranking (Recall@20 0.0300"));
}

#[test]
fn grid_draws_a_panel_per_setting_at_the_selected_point() {
    let dir = temp("grid");
    // Axes a ∈ {1e-3, 1e-2, 1e-1} (log scale), b ∈ {1, 2, 3, 4}; selected: a=1e-2 b=3.
    let mut csv =
        String::from("point,valid_recall@20,test_recall@10,test_recall@20,test_ndcg@10,test_ndcg@20,best_epoch\n");
    for (i, a) in ["1e-3", "1e-2", "1e-1"].iter().enumerate() {
        for b in 1..=4 {
            let v = 0.05 - 0.01 * (i as f64 - 1.0).abs() - 0.002 * (b as f64 - 3.0).abs();
            csv.push_str(&format!(
                "\"model.lambda={a} model.ui_layers={b}\",{v:.6},0.01,{:.6},0.01,0.01,3\n",
                v + 0.001
            ));
        }
    }
    write(&dir.join("grid.csv"), &csv);
    write(
        &dir.join("grid.md"),
        "# Grid for lightgcn on fixture (MMRec)\n\nSelected on validation Recall@20: `model.lambda=1e-2 model.ui_layers=3`.\n",
    );
    let files = plot::grid::plot(&dir, None).unwrap();
    let svg = check_files(&files);
    let mut lines: Vec<Vec<(f64, f64)>> = lines_of(&svg, PALETTE[0], "3").into_iter().filter(|l| l.len() > 2).collect();
    lines.sort_by_key(|l| l.len());
    assert_eq!(lines.iter().map(|l| l.len()).collect::<Vec<_>>(), [3, 4], "one panel per axis, a point per value");
    // Along lambda (the others at ui_layers=3): the middle value is the highest (smallest y).
    let l = &lines[0];
    assert!(l[1].1 < l[0].1 && l[1].1 < l[2].1);
    // Log scale: 1e-3, 1e-2, 1e-1 equally spaced.
    assert!(((l[1].0 - l[0].0) - (l[2].0 - l[1].0)).abs() <= 1.0);
    let selected =
        elements(&svg, "circle").into_iter().filter(|c| c.get("fill") == hex(PALETTE[3]) && c.get("r") == "8");
    assert_eq!(selected.count(), 2, "the selected point marked in both panels");
    assert!(svg.contains("model.lambda (log scale)"));
    // A halving search's folder is named as such, not as a missing grid.
    let halving = temp("grid-halving");
    write(&halving.join("halving.csv"), "rung,point\n");
    let err = plot::grid::plot(&halving, None).unwrap_err().to_string();
    assert!(err.contains("successive-halving search") && err.contains("halving.md"), "{err}");
}

#[test]
fn scaling_draws_a_line_per_model_through_the_sizes() {
    let dir = temp("scaling");
    let mut inputs = Vec::new();
    for (model, slow) in [("bpr", 1.0), ("crane", 30.0)] {
        for (k, users) in [100u64, 1000, 10000].iter().enumerate() {
            let run = dir.join(format!("{model}-{k}"));
            write(
                &run.join("results.json"),
                &format!(
                    "{{\"config\":{{\"model_preset\":\"{model}\"}},\"dataset\":{{\"name\":\"s{k}\",\"users\":{users},\"items\":{}}},\
                     \"seconds_per_epoch\":{},\"peak_memory_mb\":{},\"threads\":2}}",
                    users / 2,
                    slow * (*users as f64) / 100.0,
                    100.0 + *users as f64 / 10.0
                ),
            );
            inputs.push(run);
        }
    }
    inputs.push(dir.join("bpr-0").join("results.json")); // a file works too (a duplicate run here)
    let files = plot::scaling::plot(&inputs, None).unwrap();
    assert_eq!(files[0], dir.join("scaling.png"));
    let svg = check_files(&files);
    for c in [PALETTE[0], PALETTE[3]] {
        let lines: Vec<_> = lines_of(&svg, c, "3").into_iter().filter(|l| l.len() == 3).collect();
        assert_eq!(lines.len(), 2, "seconds and memory panels");
        for l in &lines {
            assert!(l[0].0 < l[1].0 && l[1].0 < l[2].0, "sizes left to right");
            assert!(l[0].1 > l[1].1 && l[1].1 > l[2].1, "costs rise with size");
        }
    }
    assert!(svg.contains("(log scale)"));
}

#[test]
fn embeddings_of_a_tiny_bpr_checkpoint() {
    use crane::config::{dataset_preset, resolve};
    use crane::data::{load_dataset, synth, LoadOptions};
    let dir = temp("embeddings");
    let data = dir.join("tiny");
    synth::write(&data, "tiny", &synth::generate(&synth::preset("tiny").unwrap(), 2024)).unwrap();
    let ds = load_dataset(&data, &LoadOptions::default()).unwrap();
    let cfg =
        resolve(dataset_preset("tiny").unwrap(), "tiny", &["model_preset=bpr".into(), "epochs=2".into()]).unwrap();
    let run = dir.join("run");
    crane::train::train(&ds, &cfg, Some(&run), false).unwrap();
    let ckpt = run.join("checkpoint.safetensors");
    let shown = ds.n_items - ds.absent_items.len();
    for method in [plot::embeddings::Method::Pca, plot::embeddings::Method::Tsne] {
        let files = plot::embeddings::plot(&ckpt, &data, method, 300, None).unwrap();
        assert_eq!(files[0], run.join("embeddings.png"));
        let svg = check_files(&files);
        let points: Vec<El> = elements(&svg, "circle").into_iter().filter(|c| c.get("r") == "3").collect();
        assert_eq!(points.len(), 2 * shown, "every item in both panels (E_I and z_i)");
        let xs: Vec<f64> = points[..shown].iter().map(|c| c.num("cx")).collect();
        let spread = xs.iter().cloned().fold(f64::MIN, f64::max) - xs.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 300.0, "{method:?}: the points fill the panel ({spread} px wide)");
        assert!(svg.contains(if method == plot::embeddings::Method::Pca { "principal component 1" } else { "t-SNE" }));
        assert!(svg.contains("GENERATED"), "tiny's features are generated");
    }
    // Other data than the checkpoint's is refused, naming the checkpoint.
    let other = dir.join("other");
    synth::write(&other, "tiny", &synth::generate(&synth::preset("tiny").unwrap(), 7)).unwrap();
    let e = plot::embeddings::plot(&ckpt, &other, plot::embeddings::Method::Pca, 10, None).unwrap_err().to_string();
    assert!(e.contains("checkpoint.safetensors"), "{e}");
}

#[test]
fn bad_input_is_an_error_naming_the_file() {
    let dir = temp("bad");
    let err = |r: crane::Result<Vec<PathBuf>>| r.unwrap_err().to_string();
    // A missing folder, a folder without runs.
    let e = err(plot::curves::plot(&[dir.join("nowhere")], None));
    assert!(e.contains("nowhere") && e.contains("does not exist"), "{e}");
    std::fs::create_dir_all(dir.join("empty/sub")).unwrap();
    let e = err(plot::curves::plot(&[dir.join("empty")], None));
    assert!(e.contains("empty") && e.contains("holds no runs"), "{e}");
    // A history.csv from an older version (no validation NDCG@20).
    write(&dir.join("old/history.csv"), "epoch,loss,recall@20\n0,0.69,0.01\n");
    let e = err(plot::curves::plot(&[dir.join("old")], None));
    assert!(e.contains("old/history.csv") && e.contains("ndcg@20"), "{e}");
    // A corrupt history line names the line.
    write(&dir.join("corrupt/history.jsonl"), "{\"epoch\":0}\nnot json\n");
    let e = err(plot::curves::plot(&[dir.join("corrupt")], None));
    assert!(e.contains("corrupt/history.jsonl:1"), "{e}");
    // A comparison without compare.csv, a grid.csv without the validation column.
    let e = err(plot::compare::plot(&dir.join("empty"), None));
    assert!(e.contains("compare.csv") && e.contains("missing"), "{e}");
    write(&dir.join("g/grid.csv"), "point,test_recall@20\n\"a=1\",0.1\n");
    let e = err(plot::grid::plot(&dir.join("g"), None));
    assert!(e.contains("g/grid.csv") && e.contains("valid_recall@20"), "{e}");
    write(&dir.join("g2/grid.csv"), "point,valid_recall@20,test_recall@20\nnoequals,0.1,0.1\n");
    let e = err(plot::grid::plot(&dir.join("g2"), None));
    assert!(e.contains("g2/grid.csv:2"), "{e}");
    // Scaling from a JSON that is not a results.json; embeddings from a missing checkpoint.
    write(&dir.join("s/results.json"), "{\"config\":{}}");
    let e = err(plot::scaling::plot(&[dir.join("s")], None));
    assert!(e.contains("s/results.json"), "{e}");
    let e = err(plot::embeddings::plot(&dir.join("no.safetensors"), &dir, plot::embeddings::Method::Pca, 10, None));
    assert!(e.contains("no.safetensors"), "{e}");
    // Nothing was written beside the bad inputs.
    assert!(!dir.join("old/curves.png").exists() && !dir.join("g/grid.png").exists());
}

#[test]
fn compare_and_grid_commands_draw_their_plots_when_they_finish() {
    let dir = temp("cli");
    let crane = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_crane")).args(args).current_dir(&dir).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "crane {args:?}: {text}");
        text
    };
    let text = crane(&[
        "compare",
        "--like",
        "tiny",
        "--models",
        "bpr",
        "--seeds",
        "1",
        "--set",
        "epochs=2",
        "--out",
        "cmp",
        "--no-progress",
    ]);
    assert!(text.contains("plotted the comparison") && text.contains("plotted the learning curves"), "{text}");
    assert_eq!(png_size(&dir.join("cmp/compare.png")).0, 1200);
    assert!(dir.join("cmp/curves.svg").exists());
    let grid = || {
        crane(&[
            "grid",
            "--like",
            "tiny",
            "--set",
            "model_preset=bpr",
            "--set",
            "epochs=1",
            "--grid",
            "model.lambda=1e-2,1e-3",
            "--out",
            "grid",
            "--no-progress",
        ])
    };
    let text = grid();
    assert!(text.contains("plotted the grid"), "{text}");
    assert!(dir.join("grid/grid.png").exists());
    // `crane plot` itself.
    let text = crane(&["plot", "curves", "grid"]);
    assert!(text.contains("written: grid/curves.png"), "{text}");
    // A plotting failure after a finished grid (here grid.png cannot be replaced: a folder is
    // in its place) is a warning; the grid (its points kept from the run above) succeeds.
    std::fs::remove_file(dir.join("grid/grid.png")).unwrap();
    std::fs::create_dir_all(dir.join("grid/grid.png/x")).unwrap();
    let text = grid();
    assert!(text.contains("warning: could not plot the grid") && text.contains("grid.png"), "{text}");
    assert!(dir.join("grid/grid.md").exists());
    let out =
        Command::new(env!("CARGO_BIN_EXE_crane")).args(["plot", "grid", "nowhere"]).current_dir(&dir).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
}
