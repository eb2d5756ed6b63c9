//! Reading run folders (`history.jsonl` / `history.csv`, `results.json`, `manifest.json`) and
//! finding them in comparison, grid and probe folders, for the plots.

use crate::error::{CraneError, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The cut-off every plot shows (Recall@20, NDCG@20: the paper's figures).
pub const K: usize = 20;

/// The loss terms of `history.*`, in order: (field, what it is).
pub const TERMS: [(&str, &str); 6] = [
    ("loss", "total loss"),
    ("bpr", "BPR term"),
    ("cl_user", "contrastive term, users"),
    ("cl_item", "contrastive term, items"),
    ("reg", "regularisation term"),
    ("modality", "modality BPR terms"),
];

/// One epoch of a run's history.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochPoint {
    pub epoch: usize,
    /// Validation Recall@20 and NDCG@20.
    pub recall: f64,
    pub ndcg: f64,
    /// The epoch's mean loss terms, in [`TERMS`] order.
    pub terms: [f64; 6],
}

/// One run folder.
#[derive(Clone, Debug)]
pub struct Run {
    pub dir: PathBuf,
    /// What the plots group it under (the model, or the folder's name in a grid or probe
    /// folder); runs of one group are its seeds.
    pub group: String,
    /// The model preset (from the config), else the folder's name.
    pub model: String,
    pub seed: Option<u64>,
    /// The dataset's name, when results.json or manifest.json says it.
    pub dataset: Option<String>,
    pub history: Vec<EpochPoint>,
    /// The best validation epoch: results.json's, or for an unfinished run (no results.json)
    /// the epoch with the best validation Recall@20 so far.
    pub best_epoch: usize,
    /// Whether results.json exists (the run finished).
    pub finished: bool,
    /// manifest.json's `generated_features` when non-null: the features were generated.
    pub generated: Option<String>,
    /// results.json, when present.
    pub results: Option<Value>,
}

/// Reads a JSON file, `None` when it does not exist.
pub fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| CraneError::io(path, "read", e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| CraneError::file(path, format!("not valid JSON: {e}")))
}

/// Whether `dir` is a run folder (holds a history or results.json).
pub fn is_run_dir(dir: &Path) -> bool {
    ["history.jsonl", "history.csv", "results.json"].iter().any(|f| dir.join(f).is_file())
}

/// A number field of a JSON object (`a.b.c`), if present and numeric.
pub fn num(v: &Value, path: &str) -> Option<f64> {
    path.split('.').try_fold(v, |v, k| v.get(k))?.as_f64()
}

/// A string field of a JSON object (`a.b.c`).
pub fn text(v: &Value, path: &str) -> Option<String> {
    path.split('.').try_fold(v, |v, k| v.get(k))?.as_str().map(|s| s.to_string())
}

/// `results.json`'s `set` metrics (`test`, `valid`, `popularity_test`): `name` ("recall",
/// "ndcg") at [`K`].
pub fn metric(results: &Value, set: &str, name: &str) -> Option<f64> {
    let m = results.get(set)?;
    let i = m.get("ks")?.as_array()?.iter().position(|k| k.as_u64() == Some(K as u64))?;
    m.get(name)?.as_array()?.get(i)?.as_f64()
}

/// One history record (a `history.jsonl` line or an element of results.json's `history`).
fn epoch_from_json(v: &Value, at: &dyn Fn(String) -> CraneError) -> Result<EpochPoint> {
    let epoch = v.get("epoch").and_then(Value::as_u64).ok_or_else(|| at("no `epoch` number".into()))? as usize;
    let valid = v.get("valid").ok_or_else(|| at("no `valid` metrics".into()))?;
    let metric = |name: &str| {
        num(valid, &format!("{name}@{K}")).ok_or_else(|| {
            at(format!("no validation `{name}@{K}` (the run's `ks` must include {K}; an older or other format?)"))
        })
    };
    let mut terms = [0.0; 6];
    for (k, (name, _)) in TERMS.iter().enumerate() {
        terms[k] = match v.get(*name) {
            Some(x) => x.as_f64().ok_or_else(|| at(format!("`{name}` is not a number")))?,
            None if *name == "loss" => return Err(at("no `loss`".into())),
            None => 0.0, // a term an older version did not write
        };
    }
    Ok(EpochPoint { epoch, recall: metric("recall")?, ndcg: metric("ndcg")?, terms })
}

/// Parses `history.jsonl`.
pub fn read_history_jsonl(path: &Path) -> Result<Vec<EpochPoint>> {
    let text = std::fs::read_to_string(path).map_err(|e| CraneError::io(path, "read", e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = |msg: String| CraneError::line(path, n + 1, msg);
        let v: Value = serde_json::from_str(line).map_err(|e| at(format!("not JSON: {e}")))?;
        out.push(epoch_from_json(&v, &at)?);
    }
    Ok(out)
}

/// Parses `history.csv` (columns by name; the loss terms an older version lacks are 0).
pub fn read_history_csv(path: &Path) -> Result<Vec<EpochPoint>> {
    let text = std::fs::read_to_string(path).map_err(|e| CraneError::io(path, "read", e))?;
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = match lines.next() {
        Some((_, h)) => h.split(',').map(str::trim).collect(),
        None => return Err(CraneError::file(path, "is empty (no header)")),
    };
    let col = |name: &str| header.iter().position(|h| *h == name);
    let need = |name: &str| {
        col(name).ok_or_else(|| {
            CraneError::file(
                path,
                format!(
                    "has no `{name}` column (written by an older crane, or ks without {K}?); its columns: {}",
                    header.join(",")
                ),
            )
        })
    };
    let (c_epoch, c_recall, c_ndcg) = (need("epoch")?, need(&format!("recall@{K}"))?, need(&format!("ndcg@{K}"))?);
    let c_terms: Vec<Option<usize>> = TERMS.iter().map(|(n, _)| col(n)).collect();
    if c_terms[0].is_none() {
        need("loss")?;
    }
    let mut out = Vec::new();
    for (n, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != header.len() {
            return Err(CraneError::line(
                path,
                n + 1,
                format!("{} fields, the header has {}", fields.len(), header.len()),
            ));
        }
        let f = |c: usize| {
            fields[c]
                .parse::<f64>()
                .map_err(|_| CraneError::line(path, n + 1, format!("`{}` ({}) is not a number", fields[c], header[c])))
        };
        let epoch = fields[c_epoch]
            .parse::<usize>()
            .map_err(|_| CraneError::line(path, n + 1, format!("epoch `{}` is not a whole number", fields[c_epoch])))?;
        let mut terms = [0.0; 6];
        for (k, c) in c_terms.iter().enumerate() {
            if let Some(c) = c {
                terms[k] = f(*c)?;
            }
        }
        out.push(EpochPoint { epoch, recall: f(c_recall)?, ndcg: f(c_ndcg)?, terms });
    }
    Ok(out)
}

/// Reads one run folder; `group` names its group (default: the model).
pub fn load_run(dir: &Path, group: Option<String>) -> Result<Run> {
    let results = read_json_opt(&dir.join("results.json"))?;
    let manifest = read_json_opt(&dir.join("manifest.json"))?;
    let (jsonl, csv) = (dir.join("history.jsonl"), dir.join("history.csv"));
    let (history, source) = if jsonl.is_file() {
        (read_history_jsonl(&jsonl)?, jsonl)
    } else if csv.is_file() {
        (read_history_csv(&csv)?, csv)
    } else if let Some(h) = results.as_ref().and_then(|r| r.get("history")).and_then(Value::as_array) {
        let path = dir.join("results.json");
        let mut out = Vec::new();
        for (k, v) in h.iter().enumerate() {
            out.push(epoch_from_json(v, &|m| CraneError::file(&path, format!("history[{k}]: {m}")))?);
        }
        (out, path)
    } else {
        return Err(CraneError::file(
            &jsonl,
            "missing: a run folder holds history.jsonl or history.csv (or a results.json with its history)",
        ));
    };
    if history.is_empty() {
        return Err(CraneError::file(&source, "holds no epochs"));
    }
    let either = |path: &str, mpath: &str| {
        results.as_ref().and_then(|r| text(r, path)).or_else(|| manifest.as_ref().and_then(|m| text(m, mpath)))
    };
    let folder = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| dir.display().to_string());
    let model = either("config.model_preset", "config.model_preset").unwrap_or_else(|| folder.clone());
    let seed = results
        .as_ref()
        .and_then(|r| r.get("config")?.get("seed")?.as_u64())
        .or_else(|| manifest.as_ref().and_then(|m| m.get("seed")?.as_u64()));
    let dataset = either("dataset.name", "data.name");
    let generated = manifest
        .as_ref()
        .and_then(|m| m.get("generated_features"))
        .filter(|g| !g.is_null())
        .map(|g| g.as_str().map(|s| s.to_string()).unwrap_or_else(|| g.to_string()));
    let best_epoch = match results.as_ref().and_then(|r| r.get("best_epoch")) {
        Some(b) => b
            .as_u64()
            .ok_or_else(|| CraneError::file(&dir.join("results.json"), "`best_epoch` is not a whole number"))?
            as usize,
        None => {
            let best = (0..history.len()).fold(0, |b, k| if history[k].recall > history[b].recall { k } else { b });
            history[best].epoch
        }
    };
    Ok(Run {
        dir: dir.to_path_buf(),
        group: group.unwrap_or_else(|| model.clone()),
        model,
        seed,
        dataset,
        history,
        best_epoch,
        finished: results.is_some(),
        generated,
        results,
    })
}

/// The sub-folders of `dir`, sorted by name.
pub fn sub_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| CraneError::io(dir, "read folder", e))?;
    let mut out: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    out.sort();
    Ok(out)
}

/// `seed-<n>`'s number, for sorting.
fn seed_key(r: &Run) -> (u64, String) {
    let name = r.dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    (r.seed.or_else(|| name.strip_prefix("seed-").and_then(|s| s.parse().ok())).unwrap_or(u64::MAX), name)
}

/// Every run under `dir`: `dir` itself when it is a run folder (grouped by its model), else
/// each sub-folder that is one (a grid point or a probe, grouped by the folder's name) and the
/// run folders one level further down (a comparison's `<model>/seed-<n>/`, grouped by
/// `<model>`). Runs of one group are sorted by seed.
pub fn discover(dir: &Path) -> Result<Vec<Run>> {
    if !dir.exists() {
        return Err(CraneError::file(dir, "does not exist"));
    }
    if !dir.is_dir() {
        return Err(CraneError::file(dir, "is not a folder (give a run, comparison or grid folder)"));
    }
    if is_run_dir(dir) {
        return Ok(vec![load_run(dir, None)?]);
    }
    let mut runs = Vec::new();
    for sub in sub_dirs(dir)? {
        let name = sub.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if is_run_dir(&sub) {
            runs.push(load_run(&sub, Some(name))?);
        } else {
            let mut seeds = Vec::new();
            for s in sub_dirs(&sub)?.into_iter().filter(|s| is_run_dir(s)) {
                seeds.push(load_run(&s, Some(name.clone()))?);
            }
            seeds.sort_by_key(seed_key);
            runs.extend(seeds);
        }
    }
    if runs.is_empty() {
        return Err(CraneError::file(
            dir,
            "holds no runs: a run folder has history.jsonl, history.csv or results.json; a comparison holds \
             <model>/seed-<n>/ run folders, a grid one run folder per point",
        ));
    }
    Ok(runs)
}

/// Runs grouped by [`Run::group`]: the model presets first in the paper's order, then the
/// other groups in the order found.
pub fn groups(runs: Vec<Run>) -> Vec<(String, Vec<Run>)> {
    let mut out: Vec<(String, Vec<Run>)> = Vec::new();
    for r in runs {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, v)) => v.push(r),
            None => out.push((r.group.clone(), vec![r])),
        }
    }
    out.sort_by_key(|(g, _)| super::model_sort_key(g)); // stable: the others keep their order
    out
}

/// A CSV file's rows: (1-based line number, fields).
pub type CsvRows = Vec<(usize, Vec<String>)>;

/// A CSV file as its header and rows; fields may be quoted with `"` (grid.csv's points). Every
/// row must be as wide as the header.
pub fn read_csv(path: &Path) -> Result<(Vec<String>, CsvRows)> {
    let text = std::fs::read_to_string(path).map_err(|e| CraneError::io(path, "read", e))?;
    let split = |line: &str| -> Vec<String> {
        let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    cur.push('"');
                    chars.next();
                }
                '"' => quoted = !quoted,
                ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
                _ => cur.push(c),
            }
        }
        out.push(cur.trim().to_string());
        out
    };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let header = match lines.next() {
        Some((_, h)) => split(h),
        None => return Err(CraneError::file(path, "is empty (no header)")),
    };
    let mut rows = Vec::new();
    for (n, line) in lines {
        let f = split(line);
        if f.len() != header.len() {
            return Err(CraneError::line(path, n + 1, format!("{} fields, the header has {}", f.len(), header.len())));
        }
        rows.push((n + 1, f));
    }
    Ok((header, rows))
}

/// The index of each of `names` in a CSV header, or an error naming the file and the column
/// (a file from an older version).
pub fn columns(path: &Path, header: &[String], names: &[&str]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|n| {
            header.iter().position(|h| h == n).ok_or_else(|| {
                CraneError::file(
                    path,
                    format!("has no `{n}` column (written by an older crane?); its columns: {}", header.join(",")),
                )
            })
        })
        .collect()
}

/// A CSV field as a number, or an error naming the file, line and column.
pub fn field(path: &Path, line: usize, name: &str, v: &str) -> Result<f64> {
    v.parse::<f64>().map_err(|_| CraneError::line(path, line, format!("`{v}` ({name}) is not a number")))
}
