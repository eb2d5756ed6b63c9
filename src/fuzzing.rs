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

/// The LATTICE JSON parsers on arbitrary bytes: the text before the first NUL byte as a split
/// file, the rest as a mapping file. Accepted rows carry ids below 2^32 and the given label;
/// accepted mappings never give two names one id.
pub fn lattice_json(data: &[u8]) {
    let cut = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let split = String::from_utf8_lossy(&data[..cut]);
    if let Ok(rows) = crate::data::lattice::parse_split(&split, Path::new("fuzz/train.json"), 1) {
        assert!(rows.iter().all(|r| r.user < u32::MAX as u64 && r.item < u32::MAX as u64 && r.label == Some(1)));
    }
    let mapping = String::from_utf8_lossy(data.get(cut + 1..).unwrap_or_default());
    if let Ok(names) = crate::data::lattice::parse_mapping(&mapping, Path::new("fuzz/item2id.json")) {
        let named: Vec<&String> = names.iter().flatten().collect();
        let distinct: std::collections::HashSet<&&String> = named.iter().collect();
        assert_eq!(named.len(), distinct.len());
    }
}
