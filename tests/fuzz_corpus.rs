//! Replays every fuzz corpus entry and every saved crash (`fuzz/corpus/<target>/`,
//! `fuzz/artifacts/<target>/`) through the same entry points the fuzzers call.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for sub in ["corpus", "artifacts"] {
        let dir = root.join(sub).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        files.sort();
        for p in files {
            let bytes = std::fs::read(&p).unwrap();
            let r = std::panic::catch_unwind(|| f(&bytes));
            assert!(r.is_ok(), "{} panics", p.display());
            n += 1;
        }
    }
    n
}

#[test]
fn inter_parser_corpus_replays_without_panic() {
    assert!(replay("inter_parser", crane::fuzzing::inter_parser) >= 3);
}

#[test]
fn npy_reader_corpus_replays_without_panic() {
    assert!(replay("npy_reader", crane::fuzzing::npy_reader) >= 5);
}

#[test]
fn config_parser_corpus_replays_without_panic() {
    assert!(replay("config_parser", crane::fuzzing::config_parser) >= 2);
}

#[test]
fn lattice_json_corpus_replays_without_panic() {
    assert!(replay("lattice_json", crane::fuzzing::lattice_json) >= 12);
}
