//! The JSON layout of LATTICE-family code (LATTICE, MICRO, MMSSL, MMHCL):
//! `train.json`, `val.json`, `test.json` map a user id (a JSON string of a dense integer) to
//! its item ids; `item2id.json` / `user2id.json` map original ids (Amazon ASINs, reviewer
//! ids) to the dense ids. Features, when present, are the same `image_feat.npy` /
//! `text_feat.npy` as in the MMRec layout.

use super::inter::InterRow;
use crate::error::{CraneError, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// The split files, in label order (0 train, 1 validation, 2 test).
pub const SPLIT_FILES: [&str; 3] = ["train.json", "val.json", "test.json"];

/// Whether `dir` holds the JSON layout.
pub fn is_lattice_dir(dir: &Path) -> bool {
    SPLIT_FILES.iter().any(|f| dir.join(f).is_file())
}

/// The interactions of the three split files as labelled rows (`line` = the 1-based position
/// of the user's key in its file, for messages).
pub fn read_splits(dir: &Path) -> Result<Vec<InterRow>> {
    let mut rows = Vec::new();
    for (label, file) in SPLIT_FILES.iter().enumerate() {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(CraneError::file(
                &path,
                "missing file: the LATTICE JSON layout needs train.json, val.json and test.json",
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| CraneError::io(&path, "read", e))?;
        rows.extend(parse_split(&text, &path, label as u8)?);
    }
    Ok(rows)
}

/// One split file's text as rows with `label`; `path` names the file in errors.
pub fn parse_split(text: &str, path: &Path, label: u8) -> Result<Vec<InterRow>> {
    let map: BTreeMap<String, serde_json::Value> = serde_json::from_str(text).map_err(|e| {
        CraneError::line(path, e.line(), format!("expected an object {{\"<user id>\": [item ids]}}: {e}"))
    })?;
    // Keys in numeric order, so rows come out the same whatever the file's key order.
    let mut users = Vec::with_capacity(map.len());
    for (k, v) in map {
        let u: u64 = k.trim().parse().ok().filter(|&u| u < u32::MAX as u64).ok_or_else(|| {
            CraneError::file(path, format!("user key `{k}` is not a non-negative integer below 2^32"))
        })?;
        users.push((u, k, v));
    }
    users.sort_by_key(|x| x.0);
    let mut rows = Vec::new();
    for (pos, (u, key, v)) in users.into_iter().enumerate() {
        let items = v
            .as_array()
            .ok_or_else(|| CraneError::file(path, format!("user `{key}`: expected a list of item ids, got {v}")))?;
        for it in items {
            let i = it.as_u64().filter(|&i| i < u32::MAX as u64).ok_or_else(|| {
                CraneError::file(path, format!("user `{key}`: item `{it}` is not a non-negative integer below 2^32"))
            })?;
            rows.push(InterRow { user: u, item: i, label: Some(label), line: pos + 1 });
        }
    }
    Ok(rows)
}

/// Reads an `original id -> dense id` map, checks that the dense ids are distinct, and returns
/// the names indexed by dense id (`None` for ids the file does not name). `None` when the file
/// is absent.
pub fn read_mapping(path: &Path) -> Result<Option<Vec<Option<String>>>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| CraneError::io(path, "read", e))?;
    parse_mapping(&text, path).map(Some)
}

/// A mapping file's text: names indexed by dense id; `path` names the file in errors.
pub fn parse_mapping(text: &str, path: &Path) -> Result<Vec<Option<String>>> {
    let map: BTreeMap<String, serde_json::Value> = serde_json::from_str(text).map_err(|e| {
        CraneError::line(path, e.line(), format!("expected an object {{\"<original id>\": <dense id>}}: {e}"))
    })?;
    let mut names: Vec<Option<String>> = Vec::new();
    for (name, v) in map {
        let id = v
            .as_u64()
            .ok_or_else(|| CraneError::file(path, format!("`{name}`: id `{v}` is not a non-negative integer")))?;
        if id > 50_000_000 {
            return Err(CraneError::file(path, format!("`{name}`: id {id} is implausibly large (over 5e7)")));
        }
        let id = id as usize;
        if names.len() <= id {
            names.resize(id + 1, None);
        }
        if let Some(other) = &names[id] {
            return Err(CraneError::file(
                path,
                format!("ids must be distinct: `{other}` and `{name}` both map to {id}"),
            ));
        }
        names[id] = Some(name);
    }
    Ok(names)
}

/// Writes the MMRec layout for a JSON-layout folder: `<out>/<name>.inter` (rating 1,
/// timestamp 0, x_label from the file each row came from), the two mapping files and the
/// feature files when present. Every file is written atomically. Returns the written paths.
pub fn import(src: &Path, out: &Path) -> Result<Vec<std::path::PathBuf>> {
    let rows = read_splits(src)?;
    if rows.is_empty() {
        return Err(CraneError::file(&src.join("train.json"), "no interactions in any split"));
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| CraneError::config("--out", format!("`{}` has no folder name", out.display())))?;
    std::fs::create_dir_all(out).map_err(|e| CraneError::io(out, "create directory", e))?;
    let triples: Vec<(u64, u64, u8)> = rows.iter().map(|r| (r.user, r.item, r.label.unwrap())).collect();
    let mut written = Vec::new();
    let inter = out.join(format!("{name}.inter"));
    crate::io::write_string_atomic(&inter, &super::inter::format_inter(&triples))?;
    written.push(inter);
    for f in ["user2id.json", "item2id.json", "image_feat.npy", "text_feat.npy"] {
        let from = src.join(f);
        if from.is_file() {
            let bytes = std::fs::read(&from).map_err(|e| CraneError::io(&from, "read", e))?;
            let to = out.join(f);
            crate::io::write_atomic(&to, |w| w.write_all(&bytes))?;
            written.push(to);
        }
    }
    Ok(written)
}
