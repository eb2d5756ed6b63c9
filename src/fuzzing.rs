//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`): each takes arbitrary bytes and must return, never panic.

use std::path::Path;

/// The `.inter` parser on arbitrary bytes (lossy UTF-8, as a file read would be refused or
/// decoded), and the dataset assembly on what it accepts.
pub fn inter_parser(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = crate::data::inter::parse_inter(&text, Path::new("fuzz.inter")) {
        for r in &parsed.rows {
            assert!(r.user < u32::MAX as u64 && r.item < u32::MAX as u64);
            assert!(r.label.is_none_or(|l| l <= 2));
        }
    }
}

/// The npy feature reader on arbitrary bytes; accepted matrices are finite and well-shaped.
pub fn npy_reader(data: &[u8]) {
    if let Ok(m) = crate::data::npy::parse_features(data, Path::new("fuzz.npy")) {
        assert_eq!(m.data.len(), m.rows * m.cols);
        assert!(m.data.iter().all(|v| v.is_finite()));
    }
}

/// The training-config resolution on arbitrary TOML text, with one `--set` taken from the
/// first line when it looks like `key=value`.
pub fn config_parser(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut sets = Vec::new();
    if let Some(first) = text.lines().next() {
        if first.contains('=') && first.len() < 200 {
            sets.push(first.to_string());
        }
    }
    let rest: String = text.lines().skip(usize::from(!sets.is_empty())).collect::<Vec<_>>().join("\n");
    let _ = crate::config::resolve(&rest, "fuzz.toml", &sets);
}

/// The LATTICE JSON parsers on arbitrary bytes (lossy UTF-8): the whole input through the
/// split parser and through the mapping parser, then, when the input holds a NUL byte, the text
/// before the first NUL as a split file and the text after it as a mapping file (so one input
/// can carry both). On what they accept: rows carry ids below 2^32 and the given label, and
/// agree with serde_json's own reading of the object (each key one user, no key repeated or
/// aliased, every item of every list); mappings give each name one id and agree with serde_json
/// too. A leading byte-order mark changes nothing, accepted or refused, and every refusal
/// names the file.
pub fn lattice_json(data: &[u8]) {
    let whole = String::from_utf8_lossy(data);
    lattice_split_checked(&whole);
    lattice_mapping_checked(&whole);
    if let Some(cut) = data.iter().position(|&b| b == 0) {
        lattice_split_checked(&String::from_utf8_lossy(&data[..cut]));
        lattice_mapping_checked(&String::from_utf8_lossy(&data[cut + 1..]));
    }
}

fn lattice_split_checked(text: &str) {
    use std::collections::{BTreeMap, HashMap};
    let path = Path::new("fuzz/train.json");
    let got = crate::data::lattice::parse_split(text, path, 1).map_err(|e| e.to_string());
    match &got {
        Ok(rows) => {
            assert!(rows.iter().all(|r| r.user < u32::MAX as u64 && r.item < u32::MAX as u64 && r.label == Some(1)));
            let mut per_user: HashMap<u64, (usize, usize)> = HashMap::new();
            for r in rows {
                let e = per_user.entry(r.user).or_insert((r.line, 0));
                assert_eq!(e.0, r.line, "user {} has rows from two keys", r.user);
                e.1 += 1;
            }
            let body = text.strip_prefix('\u{feff}').unwrap_or(text);
            let map: BTreeMap<String, serde_json::Value> =
                serde_json::from_str(body).expect("an accepted split file is a JSON object");
            let mut users = std::collections::HashSet::new();
            for (k, v) in &map {
                let u: u64 = k.trim().parse().expect("an accepted user key is an integer");
                assert!(users.insert(u), "two keys of user {u} accepted");
                let n = per_user.get(&u).map_or(0, |e| e.1);
                assert_eq!(n, v.as_array().expect("an accepted value is a list").len(), "user {u}'s rows");
            }
            assert!(per_user.keys().all(|u| users.contains(u)));
        }
        Err(e) => assert!(e.starts_with("fuzz/train.json"), "{e}"),
    }
    if !text.starts_with('\u{feff}') {
        let with_bom =
            crate::data::lattice::parse_split(&format!("\u{feff}{text}"), path, 1).map_err(|e| e.to_string());
        assert_eq!(with_bom, got, "a byte-order mark changes the split");
    }
}

fn lattice_mapping_checked(text: &str) {
    let path = Path::new("fuzz/item2id.json");
    // Kept sparse (table length, named ids), so that a huge id never holds two big tables.
    let sparse = |names: Vec<Option<String>>| {
        (names.len(), names.into_iter().enumerate().filter_map(|(i, n)| Some((i, n?))).collect::<Vec<_>>())
    };
    let got = crate::data::lattice::parse_mapping(text, path).map(sparse).map_err(|e| e.to_string());
    match &got {
        Ok((_, named)) => {
            let distinct: std::collections::HashSet<&String> = named.iter().map(|(_, n)| n).collect();
            assert_eq!(named.len(), distinct.len(), "one name given two ids");
            let body = text.strip_prefix('\u{feff}').unwrap_or(text);
            let map: std::collections::BTreeMap<String, serde_json::Value> =
                serde_json::from_str(body).expect("an accepted mapping file is a JSON object");
            assert_eq!(map.len(), named.len(), "a repeated key accepted");
            assert!(named.iter().all(|(id, name)| map[name].as_u64() == Some(*id as u64)));
        }
        Err(e) => assert!(e.starts_with("fuzz/item2id.json"), "{e}"),
    }
    if !text.starts_with('\u{feff}') {
        let with_bom = crate::data::lattice::parse_mapping(&format!("\u{feff}{text}"), path)
            .map(sparse)
            .map_err(|e| e.to_string());
        assert_eq!(with_bom, got, "a byte-order mark changes the mapping");
    }
}
