//! The LATTICE JSON layout's defences, as the `.inter` reader has them: a user key repeated in a
//! split file (in any spelling of the same integer id) and an original id repeated in a mapping
//! file are errors naming the file and the keys; a UTF-8 byte-order mark is accepted in every
//! file; other defects name the file, the key and what was expected. Loaded through
//! `load_dataset`, as `crane data stats` and `crane train` do.

mod common;
use common::Scratch;
use crane::data::{load_dataset, Dataset, LoadOptions};
use std::path::{Path, PathBuf};

fn tmpdir(name: &str) -> Scratch {
    common::scratch(&format!("json-layout-{name}"))
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

/// Three users, five items, all five files of the layout.
fn small_json(name: &str) -> Scratch {
    let d = tmpdir(name);
    write(&d, "train.json", r#"{"0": [0, 1, 2], "1": [1, 3], "2": [0, 2, 3]}"#);
    write(&d, "val.json", r#"{"0": [3], "1": [2], "2": [1]}"#);
    write(&d, "test.json", r#"{"0": [4], "1": [0], "2": [4]}"#);
    write(&d, "user2id.json", r#"{"A1REVIEWER": 0, "B2REVIEWER": 1, "C3REVIEWER": 2}"#);
    write(&d, "item2id.json", r#"{"B00ASIN0": 0, "B00ASIN1": 1, "B00ASIN2": 2, "B00ASIN3": 3, "B00ASIN4": 4}"#);
    d
}

fn load(d: &Path) -> Dataset {
    load_dataset(d, &LoadOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", d.display()))
}

fn err(d: &Path) -> String {
    match load_dataset(d, &LoadOptions::default()) {
        Ok(ds) => panic!("{} loaded ({} training pairs), expected an error", d.display(), ds.train.len()),
        Err(e) => e.to_string(),
    }
}

/// The folder's file with `text` in place of its content, and the error of loading it.
fn err_with(name: &str, file: &str, text: &str) -> String {
    let d = small_json(name);
    write(&d, file, text);
    let e = err(&d);
    assert!(e.contains(&d.join(file).display().to_string()), "the error names {file}: {e}");
    e
}

/// What a load gives, without the folder's own path.
fn content(ds: &Dataset) -> impl PartialEq + std::fmt::Debug {
    let dir = ds.dir.display().to_string();
    (
        (ds.n_users, ds.n_items),
        (ds.train.clone(), ds.valid.clone(), ds.test.clone()),
        ds.user_ids.clone(),
        (ds.user_names.clone(), ds.item_names.clone()),
        ds.warnings.iter().map(|w| w.replace(&dir, "<dir>")).collect::<Vec<_>>(),
    )
}

#[test]
fn a_user_key_repeated_in_any_split_file_is_an_error_naming_the_file_and_the_key() {
    for (file, text, entries) in [
        ("train.json", r#"{"0": [0, 1, 2], "1": [1, 3], "2": [0, 2, 3], "0": [4]}"#, (1, 4)),
        ("val.json", r#"{"0": [3], "1": [2], "1": [4], "2": [1]}"#, (2, 3)),
        ("test.json", "{\"2\": [4],\n \"0\": [4],\n \"1\": [0],\n \"2\": [3]}", (1, 4)),
    ] {
        let e = err_with(&format!("dup-{file}"), file, text);
        let key = if file == "val.json" {
            "1"
        } else if file == "train.json" {
            "0"
        } else {
            "2"
        };
        assert!(
            e.ends_with(&format!(
                "{file}: user key \"{key}\" appears twice (entries {} and {} of the object); each user must be listed once",
                entries.0, entries.1
            )),
            "{e}"
        );
    }
}

#[test]
fn two_spellings_of_one_user_id_are_an_error_naming_both_keys() {
    for (name, text, first, second) in [
        ("alias-01", r#"{"0": [0, 1, 2], "1": [1, 3], "2": [0, 2, 3], "01": [4]}"#, "\"1\"", "\"01\""),
        ("alias-space", r#"{"0": [0, 1, 2], " 1": [1, 3], "2": [0, 2, 3], "1": [4]}"#, "\" 1\"", "\"1\""),
        ("alias-trailing", r#"{"0": [0, 1, 2], "1 ": [1, 3], "2": [0, 2, 3], "001": [4]}"#, "\"1 \"", "\"001\""),
    ] {
        let e = err_with(name, "train.json", text);
        assert!(e.contains(&format!("train.json: user keys {first} and {second} name the same user 1")), "{e}");
    }
    // In the other splits too.
    let e = err_with("alias-val", "val.json", r#"{"0": [3], "1": [2], "2": [1], "00": [4]}"#);
    assert!(e.contains("val.json: user keys \"0\" and \"00\" name the same user 0"), "{e}");
}

#[test]
fn an_original_id_repeated_in_a_mapping_file_is_an_error_naming_the_file_and_the_key() {
    let e = err_with("dupmap-user", "user2id.json", r#"{"A1REVIEWER": 0, "B2REVIEWER": 1, "A1REVIEWER": 2}"#);
    assert!(
        e.ends_with(
            "user2id.json: key \"A1REVIEWER\" appears twice (entries 1 and 3 of the object); each original id must be mapped once"
        ),
        "{e}"
    );
    let e = err_with(
        "dupmap-item",
        "item2id.json",
        r#"{"B00ASIN0": 0, "B00ASIN1": 1, "B00ASIN2": 2, "B00ASIN3": 3, "B00ASIN4": 4, "B00ASIN1": 1}"#,
    );
    assert!(e.contains("item2id.json: key \"B00ASIN1\" appears twice (entries 2 and 6"), "{e}");
}

#[test]
fn a_byte_order_mark_is_accepted_in_every_file_and_changes_nothing() {
    let plain = load(&small_json("bom-none"));
    for file in ["train.json", "val.json", "test.json", "user2id.json", "item2id.json"] {
        let d = small_json(&format!("bom-{file}"));
        let text = std::fs::read_to_string(d.join(file)).unwrap();
        write(&d, file, &format!("\u{feff}{text}"));
        assert_eq!(content(&load(&d)), content(&plain), "{file} with a byte-order mark");
    }
    let d = small_json("bom-all");
    for file in ["train.json", "val.json", "test.json", "user2id.json", "item2id.json"] {
        let text = std::fs::read_to_string(d.join(file)).unwrap();
        write(&d, file, &format!("\u{feff}{text}"));
    }
    let ds = load(&d);
    assert_eq!(content(&ds), content(&plain));
    assert_eq!(ds.user_label(1), "B2REVIEWER");
    // A byte-order mark does not hide a repeated key.
    let e = err_with("bom-dup", "train.json", "\u{feff}{\"0\": [0], \"0\": [1]}");
    assert!(e.contains("train.json: user key \"0\" appears twice"), "{e}");
}

#[test]
fn other_defects_name_the_file_the_key_and_what_was_expected() {
    let e = err_with("notlist", "train.json", r#"{"0": [0, 1, 2], "1": 3, "2": [0, 2, 3]}"#);
    assert!(e.contains("train.json: user `1`: expected a list of item ids, got 3"), "{e}");
    let e = err_with("nested", "val.json", r#"{"0": [3], "1": {"2": [2]}, "2": [1]}"#);
    assert!(e.contains("val.json: user `1`: expected a list of item ids, got {\"2\":[2]}"), "{e}");
    let e = err_with("notint", "test.json", r#"{"0": [4], "1": [0, 1.5], "2": [4]}"#);
    assert!(
        e.contains("test.json: user `1`: item `1.5` (position 2 in its list) is not a non-negative integer below 2^32"),
        "{e}"
    );
    let e = err_with("negative", "test.json", r#"{"0": [4], "1": [-1], "2": [4]}"#);
    assert!(e.contains("user `1`: item `-1`"), "{e}");
    let e = err_with("strkey", "train.json", r#"{"0": [0, 1, 2], "u1": [1, 3], "2": [0, 2, 3]}"#);
    assert!(e.contains("train.json: user key `u1` (entry 2) is not a non-negative integer below 2^32"), "{e}");
    let e = err_with("notobject", "train.json", "[[0, 1, 2], [1, 3]]");
    assert!(e.contains("train.json:1: expected an object {\"<user id>\": [item ids]}"), "{e}");
    let e = err_with("syntax", "val.json", "{\"0\": [3],\n\"1\": [2]\n\"2\": [1]}");
    assert!(e.contains("val.json:3: expected an object"), "{e}");
    let e = err_with("mapstr", "item2id.json", r#"{"B00ASIN0": 0, "B00ASIN1": "1"}"#);
    assert!(e.contains("item2id.json: `B00ASIN1` (entry 2): id `\"1\"` is not a non-negative integer"), "{e}");
    let e = err_with("mapnotobject", "user2id.json", r#"["A1REVIEWER", "B2REVIEWER"]"#);
    assert!(e.contains("user2id.json:1: expected an object {\"<original id>\": <dense id>}"), "{e}");
}

/// `../shared/cases/integrity/07-json-duplicate-user-key/<sub>`, or `None` after printing
/// why the test skips.
fn case_07(test: &str, sub: &str) -> Option<PathBuf> {
    let d =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cases/integrity/07-json-duplicate-user-key").join(sub);
    if d.join("train.json").is_file() {
        Some(d)
    } else {
        println!("SKIP {test}: {} absent", d.display());
        None
    }
}

#[test]
fn case_07_repeated_user_key_is_refused_naming_train_json_and_the_key() {
    let Some(d) = case_07("case_07_repeated_user_key_is_refused_naming_train_json_and_the_key", "data") else {
        return;
    };
    let e = err(&d);
    assert!(
        e.contains("train.json") && e.contains("user key \"0\" appears twice (entries 1 and 4 of the object)"),
        "{e}"
    );
}

#[test]
fn case_07_aliased_user_keys_are_refused_naming_train_json_and_both_keys() {
    let Some(d) = case_07("case_07_aliased_user_keys_are_refused_naming_train_json_and_both_keys", "data-alias") else {
        return;
    };
    let e = err(&d);
    assert!(e.contains("train.json") && e.contains("user keys \"1\" and \"01\" name the same user 1"), "{e}");
}

#[test]
fn a_mapping_id_far_beyond_its_entries_is_refused_before_its_table_is_allocated() {
    // One mistyped dense id would otherwise size the name table (and the item id space).
    let e = err_with(
        "mapping-huge-id",
        "item2id.json",
        r#"{"B00ASIN0": 0, "B00ASIN1": 1, "B00ASIN2": 2, "B00ASIN3": 3, "B00ASIN4": 49999999}"#,
    );
    assert!(e.contains("`B00ASIN4`: dense id 49999999 is far beyond the 5 entries"), "{e}");
    // A few gaps below the limit are tolerated: they become ids in no split.
    let d = small_json("mapping-gap");
    write(&d, "item2id.json", r#"{"B00ASIN0": 0, "B00ASIN1": 1, "B00ASIN2": 2, "B00ASIN3": 3, "B00ASIN4": 4, "X": 9}"#);
    let ds = load(&d);
    assert_eq!((ds.n_items, ds.absent_items.clone()), (10, vec![5, 6, 7, 8, 9]));
}
