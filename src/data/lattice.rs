//! The JSON layout of LATTICE-family code (LATTICE, MICRO, MMSSL, MMHCL):
//! `train.json`, `val.json`, `test.json` map a user id (a JSON string of a dense integer) to
//! its item ids; `item2id.json` / `user2id.json` map original ids (Amazon ASINs, reviewer
//! ids) to the dense ids. Features, when present, are the same `image_feat.npy` /
//! `text_feat.npy` as in the MMRec layout.

use super::inter::InterRow;
use crate::error::{CraneError, Result};
use std::collections::HashMap;
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
///
/// The text may start with a UTF-8 byte-order mark. Every user key must be a non-negative
/// integer below 2^32, written once: a key repeated, or two spellings of one integer (`"1"`
/// and `"01"`, `" 1"`, `"+1"`), is an error naming both keys, since a JSON reader that keeps
/// the last (or merges them) would silently drop or mix a user's interactions. Rows come out
/// in user-id order whatever the file's key order; `line` is the 1-based position of the
/// user's key among the object's entries.
pub fn parse_split(text: &str, path: &Path, label: u8) -> Result<Vec<InterRow>> {
    let entries = parse_object(text, path, "{\"<user id>\": [item ids]}")?;
    let mut first_of: HashMap<u64, (usize, &str)> = HashMap::with_capacity(entries.len());
    let mut users = Vec::with_capacity(entries.len());
    for (pos, (key, v)) in entries.iter().enumerate() {
        let u: u64 = key.trim().parse().ok().filter(|&u| u < u32::MAX as u64).ok_or_else(|| {
            CraneError::file(
                path,
                format!(
                    "user key `{}` (entry {}) is not a non-negative integer below 2^32; expected {{\"<user id>\": [item ids]}}",
                    escaped(key),
                    pos + 1
                ),
            )
        })?;
        if let Some(&(first_pos, first_key)) = first_of.get(&u) {
            let msg = if first_key == key {
                format!(
                    "user key {} appears twice (entries {} and {} of the object); each user must be listed once",
                    quoted(key),
                    first_pos + 1,
                    pos + 1
                )
            } else {
                format!(
                    "user keys {} and {} name the same user {u} (entries {} and {} of the object); each user must be listed once",
                    quoted(first_key),
                    quoted(key),
                    first_pos + 1,
                    pos + 1
                )
            };
            return Err(CraneError::file(path, msg));
        }
        first_of.insert(u, (pos, key));
        let items = v.as_array().ok_or_else(|| {
            CraneError::file(path, format!("user `{}`: expected a list of item ids, got {}", escaped(key), shown(v)))
        })?;
        users.push((u, pos, key, items));
    }
    // Users in numeric order, so rows come out the same whatever the file's key order.
    users.sort_by_key(|x| x.0);
    let mut rows = Vec::new();
    for (u, pos, key, items) in users {
        for (j, it) in items.iter().enumerate() {
            let i = it.as_u64().filter(|&i| i < u32::MAX as u64).ok_or_else(|| {
                CraneError::file(
                    path,
                    format!(
                        "user `{}`: item `{}` (position {} in its list) is not a non-negative integer below 2^32",
                        escaped(key),
                        shown(it),
                        j + 1
                    ),
                )
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
///
/// The text may start with a UTF-8 byte-order mark. An original id written twice is an error
/// naming it, as are two original ids with one dense id.
pub fn parse_mapping(text: &str, path: &Path) -> Result<Vec<Option<String>>> {
    let entries = parse_object(text, path, "{\"<original id>\": <dense id>}")?;
    let mut first_of: HashMap<&str, usize> = HashMap::with_capacity(entries.len());
    for (pos, (name, _)) in entries.iter().enumerate() {
        if let Some(first_pos) = first_of.insert(name.as_str(), pos) {
            return Err(CraneError::file(
                path,
                format!(
                    "key {} appears twice (entries {} and {} of the object); each original id must be mapped once",
                    quoted(name),
                    first_pos + 1,
                    pos + 1
                ),
            ));
        }
    }
    let mut names: Vec<Option<String>> = Vec::new();
    let entries_len = entries.len();
    for (pos, (name, v)) in entries.into_iter().enumerate() {
        let id = v.as_u64().ok_or_else(|| {
            CraneError::file(
                path,
                format!(
                    "`{}` (entry {}): id `{}` is not a non-negative integer; expected {{\"<original id>\": <dense id>}}",
                    escaped(&name),
                    pos + 1,
                    shown(&v)
                ),
            )
        })?;
        // Dense ids run 0..n-1; a few gaps are tolerated, but an id far beyond the number of
        // entries is a defect, refused before a table of its size is allocated.
        let limit = (2 * entries_len as u64 + 1024).min(50_000_000);
        if id >= limit {
            return Err(CraneError::file(
                path,
                format!(
                    "`{}`: dense id {id} is far beyond the {entries_len} entries of the file (dense ids run 0..{}); \
                     is it mistyped?",
                    escaped(&name),
                    entries_len.saturating_sub(1)
                ),
            ));
        }
        let id = id as usize;
        if names.len() <= id {
            names.resize(id + 1, None);
        }
        if let Some(other) = &names[id] {
            return Err(CraneError::file(
                path,
                format!("ids must be distinct: `{}` and `{}` both map to {id}", escaped(other), escaped(&name)),
            ));
        }
        names[id] = Some(name);
    }
    Ok(names)
}

/// A JSON object's entries in file order, repeated keys kept (deserialising into a
/// `BTreeMap`/`HashMap` keeps only the last value of a repeated key, so duplicates could not be
/// seen afterwards).
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> serde::de::Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Entries, A::Error> {
                // The hint is untrusted (and absent for JSON); never preallocate from it unbounded.
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1 << 12));
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(EntriesVisitor)
    }
}

/// A JSON file's text (a leading byte-order mark skipped) as the entries of its top-level
/// object, in file order; `shape` says what was expected, for the error.
fn parse_object(text: &str, path: &Path, shape: &str) -> Result<Vec<(String, serde_json::Value)>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_json::from_str::<Entries>(text)
        .map(|e| e.0)
        .map_err(|e| CraneError::line(path, e.line(), format!("expected an object {shape}: {e}")))
}

/// A key as a JSON string literal (`"01"`, `" 1"`), so that spellings stay visible.
fn quoted(key: &str) -> String {
    serde_json::to_string(key).unwrap_or_else(|_| format!("{key:?}"))
}

/// A key's text with JSON escapes for quotes, backslashes and control characters, for messages
/// that put it between backticks.
fn escaped(key: &str) -> String {
    let q = quoted(key);
    q.get(1..q.len().saturating_sub(1)).unwrap_or(&q).to_string()
}

/// A JSON value for a message, cut to about 80 characters (a nested value can be huge).
fn shown(v: &serde_json::Value) -> String {
    const MAX: usize = 80;
    let s = v.to_string();
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Result<Vec<InterRow>> {
        parse_split(text, Path::new("d/train.json"), 0)
    }

    fn pairs(rows: &[InterRow]) -> Vec<(u64, u64, usize)> {
        rows.iter().map(|r| (r.user, r.item, r.line)).collect()
    }

    #[test]
    fn rows_come_in_user_order_with_the_key_position_in_the_file() {
        let rows = split(r#"{"2": [7], "0": [1, 3], "1": []}"#).unwrap();
        assert_eq!(pairs(&rows), vec![(0, 1, 2), (0, 3, 2), (2, 7, 1)]);
        assert!(rows.iter().all(|r| r.label == Some(0)));
    }

    #[test]
    fn repeated_and_aliased_user_keys_are_errors_naming_both() {
        let e = split(r#"{"0": [0, 1, 2], "1": [1], "0": [4]}"#).unwrap_err().to_string();
        assert_eq!(
            e,
            "d/train.json: user key \"0\" appears twice (entries 1 and 3 of the object); each user must be listed once"
        );
        for (text, first, second) in [
            (r#"{"1": [1], "01": [4]}"#, "\"1\"", "\"01\""),
            (r#"{" 1": [1], "1": [4]}"#, "\" 1\"", "\"1\""),
            (r#"{"1": [1], "1 ": [4]}"#, "\"1\"", "\"1 \""),
            (r#"{"1": [1], "+1": [4]}"#, "\"1\"", "\"+1\""),
        ] {
            let e = split(text).unwrap_err().to_string();
            assert!(
                e.starts_with("d/train.json: ")
                    && e.contains(&format!("user keys {first} and {second} name the same user 1")),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn a_byte_order_mark_is_skipped_in_splits_and_mappings() {
        let text = r#"{"0": [1, 2], "3": [4]}"#;
        assert_eq!(split(&format!("\u{feff}{text}")).unwrap(), split(text).unwrap());
        let map = r#"{"A": 1, "B": 0}"#;
        let p = Path::new("d/item2id.json");
        assert_eq!(parse_mapping(&format!("\u{feff}{map}"), p).unwrap(), parse_mapping(map, p).unwrap());
        // Only one mark, and only at the start.
        assert!(split(&format!("\u{feff}\u{feff}{text}")).is_err());
        assert!(split(&format!(" \u{feff}{text}")).is_err());
    }

    #[test]
    fn mapping_keys_must_be_distinct() {
        let p = Path::new("d/user2id.json");
        let e = parse_mapping(r#"{"A": 0, "B": 1, "A": 2}"#, p).unwrap_err().to_string();
        assert_eq!(
            e,
            "d/user2id.json: key \"A\" appears twice (entries 1 and 3 of the object); each original id must be mapped once"
        );
        // Original ids are names, not numbers: "1" and "01" are two ids.
        assert_eq!(parse_mapping(r#"{"1": 0, "01": 1}"#, p).unwrap().len(), 2);
    }

    #[test]
    fn other_defects_name_the_key_and_what_was_expected() {
        let e = split(r#"{"0": 5}"#).unwrap_err().to_string();
        assert!(e.contains("d/train.json") && e.contains("user `0`: expected a list of item ids, got 5"), "{e}");
        let e = split(r#"{"0": [1, 2.5]}"#).unwrap_err().to_string();
        assert!(e.contains("user `0`: item `2.5` (position 2 in its list) is not a non-negative integer"), "{e}");
        let e = split(r#"{"0": [1, -1]}"#).unwrap_err().to_string();
        assert!(e.contains("item `-1`"), "{e}");
        let e = split(r#"{"0": [4294967295]}"#).unwrap_err().to_string();
        assert!(e.contains("below 2^32"), "{e}");
        let e = split(r#"{"a\"b": [1]}"#).unwrap_err().to_string();
        assert!(e.contains(r#"user key `a\"b` (entry 1) is not a non-negative integer"#), "{e}");
        let e = split("[1, 2]").unwrap_err().to_string();
        assert!(e.starts_with("d/train.json:1: expected an object"), "{e}");
        let e = split("{\"0\": [1],\n\"1\": [2],\n}").unwrap_err().to_string();
        assert!(e.starts_with("d/train.json:3: expected an object"), "{e}");
        let e = split(&format!("{{\"0\": {{\"a\": [{}]}}}}", vec!["[]"; 50].join(","))).unwrap_err().to_string();
        assert!(e.contains("...") && e.len() < 300, "a nested value is cut: {e}");
        let p = Path::new("d/item2id.json");
        let e = parse_mapping(r#"{"A": 0, "B": "1"}"#, p).unwrap_err().to_string();
        assert!(
            e.contains("d/item2id.json") && e.contains("`B` (entry 2): id `\"1\"` is not a non-negative integer"),
            "{e}"
        );
        let e = parse_mapping(r#"{"A": [0]}"#, p).unwrap_err().to_string();
        assert!(e.contains("`A` (entry 1): id `[0]`"), "{e}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = format!("{{\"0\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(split(&text).is_err());
        assert!(parse_mapping(&text, Path::new("m.json")).is_err());
    }
}
