//! Loading, validation errors, splits, synthetic data and negative sampling.

mod common;
use common::Scratch;
use crane::data::npy::{features_to_bytes, parse_features, FeatureMatrix};
use crane::data::{inter, load_dataset, split, synth, LoadOptions, SplitSource};
use crane::sampling::Sampler;
use std::path::Path;

fn tmpdir(name: &str) -> Scratch {
    common::scratch(&format!("test-{name}"))
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

const GOOD: &str = "userID\titemID\trating\ttimestamp\tx_label\n0\t0\t5\t1\t0\n0\t1\t4\t2\t0\n0\t2\t3\t3\t1\n0\t3\t3\t3\t2\n1\t1\t5\t1\t0\n1\t2\t5\t1\t1\n1\t3\t5\t1\t2\n";

fn load_err(inter_text: &str) -> String {
    let d = tmpdir(&format!("e{}", inter_text.len()));
    write(&d, "x.inter", inter_text);
    load_dataset(&d, &LoadOptions::default()).unwrap_err().to_string()
}

#[test]
fn loads_a_small_file_with_its_split() {
    let d = tmpdir("good");
    write(&d, "good.inter", GOOD);
    let ds = load_dataset(&d, &LoadOptions::default()).unwrap();
    assert_eq!((ds.n_users, ds.n_items), (2, 4));
    assert_eq!((ds.train.len(), ds.valid.len(), ds.test.len()), (3, 2, 2));
    assert_eq!(ds.split, SplitSource::XLabel);
    assert_eq!(ds.present_modalities(), Vec::<&str>::new());
}

#[test]
fn missing_inter_file_is_named() {
    let d = tmpdir("missing");
    let e = load_dataset(&d, &LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("missing file") && e.contains(".inter"), "{e}");
}

#[test]
fn wrong_header_is_refused_with_the_expected_header() {
    let e = load_err("user\titem\n0\t1\n");
    assert!(e.contains(":1: wrong header") && e.contains("userID\titemID\trating\ttimestamp\tx_label"), "{e}");
    let e = load_err("rating\ttimestamp\n1\t2\n");
    assert!(e.contains("wrong header"), "{e}");
}

#[test]
fn wrong_field_count_names_the_line() {
    let e = load_err("userID\titemID\trating\ttimestamp\tx_label\n0\t0\t5\t1\t0\n0\t1\t5\n");
    assert!(e.contains("x.inter:3: wrong field count: 3 fields, the header has 5"), "{e}");
}

#[test]
fn non_numeric_and_negative_ids_name_the_line_and_field() {
    let e = load_err("userID\titemID\trating\ttimestamp\tx_label\n0\tabc\t5\t1\t0\n");
    assert!(e.contains("x.inter:2: itemID `abc` is not a non-negative integer"), "{e}");
    let e = load_err("userID\titemID\trating\ttimestamp\tx_label\n0\t1\t5\t1\t0\n-3\t1\t5\t1\t0\n");
    assert!(e.contains("x.inter:3: userID `-3` is negative"), "{e}");
    let e = load_err("userID\titemID\trating\ttimestamp\tx_label\n0\t1\tfive\t1\t0\n");
    assert!(e.contains("x.inter:2: rating `five` is not a finite number"), "{e}");
}

#[test]
fn x_label_outside_0_1_2_is_refused() {
    let e = load_err("userID\titemID\trating\ttimestamp\tx_label\n0\t1\t5\t1\t3\n");
    assert!(e.contains("x.inter:2: x_label `3` is not 0 (train), 1 (validation) or 2 (test)"), "{e}");
}

#[test]
fn duplicates_warn_and_keep_one() {
    let d = tmpdir("dups");
    write(&d, "dups.inter", &format!("{GOOD}0\t0\t1\t9\t2\n"));
    let ds = load_dataset(&d, &LoadOptions::default()).unwrap();
    assert_eq!(ds.train.len() + ds.valid.len() + ds.test.len(), 7);
    assert!(ds.train.contains(&(0, 0)), "the first row (train) is kept");
    assert!(ds.warnings.iter().any(|w| w.contains("1 duplicate") && w.contains("line 9")), "{:?}", ds.warnings);
}

#[test]
fn empty_split_is_refused() {
    let e = load_err("userID\titemID\trating\ttimestamp\tx_label\n0\t0\t5\t1\t0\n0\t1\t5\t1\t1\n");
    assert!(e.contains("empty split: no test interactions"), "{e}");
    let e = load_err("userID\titemID\trating\ttimestamp\tx_label\n");
    assert!(e.contains("no interactions"), "{e}");
}

#[test]
fn users_absent_from_training_are_dropped_from_validation_and_test() {
    let d = tmpdir("absent");
    write(&d, "absent.inter", &format!("{GOOD}2\t0\t1\t1\t1\n2\t1\t1\t1\t2\n"));
    let ds = load_dataset(&d, &LoadOptions::default()).unwrap();
    assert!(ds.valid.iter().chain(&ds.test).all(|&(u, _)| u != 2));
    assert!(ds.warnings.iter().any(|w| w.contains("1 validation and 1 test")), "{:?}", ds.warnings);
}

fn npy_bytes(rows: usize, cols: usize, f: impl Fn(usize, usize) -> f32) -> Vec<u8> {
    let data = (0..rows * cols).map(|k| f(k / cols, k % cols)).collect();
    features_to_bytes(&FeatureMatrix { rows, cols, data })
}

#[test]
fn feature_rows_must_match_items() {
    let d = tmpdir("rows");
    write(&d, "rows.inter", GOOD);
    std::fs::write(d.join("image_feat.npy"), npy_bytes(3, 2, |r, c| (r + c) as f32)).unwrap();
    let e = load_dataset(&d, &LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("image_feat.npy: has 3 rows, expected one per item: 4"), "{e}");
    std::fs::write(d.join("image_feat.npy"), npy_bytes(4, 2, |r, c| (r + c) as f32)).unwrap();
    let ds = load_dataset(&d, &LoadOptions::default()).unwrap();
    assert_eq!(ds.present_modalities(), vec!["visual"]);
}

#[test]
fn nan_features_name_row_and_column() {
    let b = npy_bytes(4, 3, |r, c| if (r, c) == (2, 1) { f32::NAN } else { 1.0 });
    let e = parse_features(&b, Path::new("f.npy")).unwrap_err().to_string();
    assert!(e.contains("f.npy: non-finite value NaN at row 2, column 1"), "{e}");
    let b = npy_bytes(2, 2, |_, c| if c == 1 { f32::INFINITY } else { 0.0 });
    assert!(parse_features(&b, Path::new("f.npy")).unwrap_err().to_string().contains("inf"));
}

/// A hand-written npy: header dict then raw little-endian data.
fn raw_npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn float64_and_fortran_order_are_accepted() {
    let vals: Vec<f64> = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // column-major [[1,3,5],[2,4,6]]
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let m = parse_features(&raw_npy("<f8", true, "(2, 3)", &bytes), Path::new("f.npy")).unwrap();
    assert_eq!((m.rows, m.cols), (2, 3));
    assert_eq!(m.data, vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
}

#[test]
fn wrong_dtype_corrupt_header_and_truncation_are_refused() {
    let ints: Vec<u8> = [1i32, 2, 3, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let e = parse_features(&raw_npy("<i4", false, "(2, 2)", &ints), Path::new("f.npy")).unwrap_err().to_string();
    assert!(e.contains("wrong dtype `<i4`: expected float32 or float64"), "{e}");
    let e = parse_features(b"\x93NUMPY garbage", Path::new("f.npy")).unwrap_err().to_string();
    assert!(e.contains("f.npy: corrupt npy header"), "{e}");
    let e = parse_features(&raw_npy("<f4", false, "(3,)", &[0; 12]), Path::new("f.npy")).unwrap_err().to_string();
    assert!(e.contains("expected a 2-D array"), "{e}");
    let short = raw_npy("<f4", false, "(4, 4)", &[0; 20]);
    let e = parse_features(&short, Path::new("f.npy")).unwrap_err().to_string();
    assert!(e.contains("f.npy: cannot read 4 x 4 values"), "{e}");
}

#[test]
fn seeded_split_follows_the_per_user_rule_and_paper_seeds() {
    assert_eq!(split::parse_split_seed("paper3"), Some(5368));
    assert_eq!(split::parse_split_seed("77"), Some(77));
    assert_eq!(split::parse_split_seed("paper6"), None);
    for n in 1..40 {
        let l = split::split_user(n, 9, 3);
        let (v, t) = split::holdout_sizes(n);
        assert_eq!(l.iter().filter(|&&x| x == 1).count(), v);
        assert_eq!(l.iter().filter(|&&x| x == 2).count(), t);
        assert_eq!(l, split::split_user(n, 9, 3), "deterministic");
        if n >= 3 {
            assert!(v >= 1 && t >= 1 && n - v - t >= 1);
        }
    }
    // A file without x_label gets the seeded split.
    let d = tmpdir("seeded");
    let mut text = String::from("userID\titemID\trating\ttimestamp\n");
    for u in 0..5 {
        for i in 0..6 {
            text.push_str(&format!("{u}\t{}\t5\t0\n", (u + i) % 9));
        }
    }
    write(&d, "seeded.inter", &text);
    let a = load_dataset(&d, &LoadOptions { split_seed: 672, ..Default::default() }).unwrap();
    let b = load_dataset(&d, &LoadOptions { split_seed: 2023, ..Default::default() }).unwrap();
    assert_eq!(a.split, SplitSource::Seeded(672));
    assert_eq!((a.train.len(), a.valid.len(), a.test.len()), (20, 5, 5));
    assert_ne!(a.valid, b.valid, "different seeds, different splits");
    // The minimum-interaction filter removes light users and re-indexes densely.
    text.push_str("9\t1\t5\t0\n9\t2\t5\t0\n9\t3\t5\t0\n");
    write(&d, "seeded.inter", &text);
    let c = load_dataset(&d, &LoadOptions { min_user_interactions: 4, ..Default::default() }).unwrap();
    assert_eq!(c.n_users, 5);
    assert_eq!(c.user_ids, vec![0, 1, 2, 3, 4]);
    let c = load_dataset(&d, &LoadOptions::default()).unwrap();
    assert_eq!(c.user_ids, vec![0, 1, 2, 3, 4, 9]);
}

#[test]
fn synth_and_stats_round_trip_on_every_preset() {
    for p in synth::PRESETS {
        let scale = if p.name == "tiny" { 1.0 } else { 0.01 };
        let shape = p.scaled(scale).unwrap();
        let s = synth::generate(&shape, 5);
        let d = tmpdir(&format!("synth-{}", p.name));
        synth::write(&d, p.name, &s).unwrap();
        let ds = load_dataset(&d, &LoadOptions::default()).unwrap();
        let st = ds.stats();
        assert_eq!(st.users, shape.users, "{}", p.name);
        assert_eq!(st.items, shape.items, "{}", p.name);
        assert_eq!(st.interactions, s.rows.len());
        assert!(st.interactions >= shape.interactions * 9 / 10, "{}: {} interactions", p.name, st.interactions);
        assert_eq!(st.visual, Some([shape.items, p.d_visual]));
        assert_eq!(st.textual, Some([shape.items, p.d_text]));
        let by_user =
            crane::data::group(ds.n_users, &s.rows.iter().map(|r| (r.0 as u32, r.1 as u32)).collect::<Vec<_>>());
        assert!(by_user.iter().all(|v| v.len() >= synth::MIN_PER_USER), "{}: a user below 5 interactions", p.name);
        // Long tail: the most popular 20% of items hold well over 20% of interactions.
        let mut pop = vec![0usize; ds.n_items];
        s.rows.iter().for_each(|r| pop[r.1 as usize] += 1);
        pop.sort_unstable_by(|a, b| b.cmp(a));
        let head: usize = pop[..ds.n_items / 5].iter().sum();
        assert!(
            head as f64 > 0.35 * s.rows.len() as f64,
            "{}: head share {}",
            p.name,
            head as f64 / s.rows.len() as f64
        );
    }
}

#[test]
fn synth_is_deterministic_and_planted_features_carry_signal() {
    let p = synth::preset("tiny").unwrap();
    let a = synth::generate(&p, 1);
    let b = synth::generate(&p, 1);
    assert_eq!(a.rows, b.rows);
    assert_eq!(a.textual, b.textual);
    // Items co-consumed by a user are more similar in text features than random pairs.
    let cos = |i: usize, j: usize| {
        let (x, y) = (a.textual.row(i), a.textual.row(j));
        let d: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
        d / (x.iter().map(|v| v * v).sum::<f32>().sqrt() * y.iter().map(|v| v * v).sum::<f32>().sqrt())
    };
    let by_user = crane::data::group(p.users, &a.rows.iter().map(|r| (r.0 as u32, r.1 as u32)).collect::<Vec<_>>());
    let (mut co, mut n) = (0.0, 0);
    for items in &by_user {
        for w in items.windows(2) {
            co += cos(w[0] as usize, w[1] as usize);
            n += 1;
        }
    }
    let co = co / n as f32;
    let rand_mean: f32 = (0..2000).map(|k| cos(k % 250, (k * 7 + 3) % 250)).sum::<f32>() / 2000.0;
    assert!(co > rand_mean + 0.2, "co-consumed {co} vs random {rand_mean}");
}

#[test]
#[cfg_attr(not(real_baby_data), ignore = "../shared/data/baby/baby.inter is absent (checked by build.rs)")]
fn real_baby_interactions_reproduce_table_2_counts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/baby");
    let ds = load_dataset(&dir, &LoadOptions::default()).unwrap();
    let st = ds.stats();
    assert_eq!((st.users, st.items, st.interactions), (19_445, 7_050, 160_792));
    assert_eq!((st.train, st.valid, st.test), (119_674, 20_559, 20_559));
}

#[test]
fn negatives_avoid_history_and_epochs_are_deterministic() {
    let p = synth::preset("tiny").unwrap();
    let s = synth::generate(&p, 3);
    let train: Vec<(u32, u32)> = s.rows.iter().filter(|r| r.2 == 0).map(|r| (r.0 as u32, r.1 as u32)).collect();
    let by_user = crane::data::group(p.users, &train);
    let sampler = Sampler::new(&train, &by_user).unwrap();
    let e0 = sampler.epoch(7, 0, 256);
    assert_eq!(e0, sampler.epoch(7, 0, 256), "same (seed, epoch), same batches");
    assert_ne!(e0, sampler.epoch(7, 1, 256), "reshuffled every epoch");
    assert_eq!(e0.len(), train.len().div_ceil(256));
    // The sizes the trainer plans with (progress bars, epoch means) agree with the epoch drawn.
    assert_eq!((sampler.len(), sampler.is_empty()), (train.len(), false));
    assert_eq!(sampler.n_batches(256), e0.len());
    assert_eq!(sampler.n_batches(train.len() + 1), 1);
    assert!(Sampler::new(&[], &[]).unwrap().is_empty());
    assert_eq!(e0.last().unwrap().len(), train.len() - 256 * (e0.len() - 1), "last partial batch kept");
    let mut seen: Vec<(u32, u32)> = e0.iter().flatten().map(|t| (t.0, t.1)).collect();
    let mut want = train.clone();
    seen.sort_unstable();
    want.sort_unstable();
    assert_eq!(seen, want, "each training interaction once per epoch");
    let mut counts = vec![0usize; p.items];
    for t in sampler.epoch(7, 2, 512).iter().flatten() {
        assert!(by_user[t.0 as usize].binary_search(&t.2).is_err(), "negative {t:?} is in the user's history");
        counts[t.2 as usize] += 1;
    }
    // Uniform over the pool: no item drawn far more often than the mean.
    let mean = train.len() as f64 / p.items as f64;
    assert!(*counts.iter().max().unwrap() as f64 <= mean * 3.0 + 10.0);
    assert!(Sampler::new(&[(0, 0)], &[vec![0]]).unwrap_err().to_string().contains("every training item"));
}

#[test]
fn inter_writer_round_trips_through_the_parser() {
    let rows = vec![(0, 3, 0), (1, 2, 1), (1, 0, 2)];
    let text = inter::format_inter(&rows);
    let parsed = inter::parse_inter(&text, Path::new("t.inter")).unwrap();
    let back: Vec<(u64, u64, u8)> = parsed.rows.iter().map(|r| (r.user, r.item, r.label.unwrap())).collect();
    assert_eq!(back, rows);
}

#[test]
fn npy_shapes_that_overflow_are_refused_not_panicked_on() {
    // Found by fuzzing: npyz multiplies the shape unchecked.
    let e = parse_features(&raw_npy("<f4", false, "(6937977000000, 9000000000)", &[0; 16]), Path::new("f.npy"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("f.npy: corrupt npy header: shape") && e.contains("more elements than memory"), "{e}");
    let e = parse_features(&raw_npy("<f4", false, "(2, x)", &[0; 16]), Path::new("f.npy")).unwrap_err().to_string();
    assert!(e.contains("not a tuple of non-negative integers"), "{e}");
}

#[test]
fn mix_seed_matches_an_independent_transcription() {
    // Values from a Python transcription of the documented mixing (SplitMix64 finaliser per
    // part, 64-bit wrapping arithmetic), not from this crate: they pin every seeded stream
    // (batches, negatives, edge masks) across versions.
    use crane::sampling::mix_seed;
    assert_eq!(mix_seed(&[]), 0x243f_6a88_85a3_08d3);
    assert_eq!(mix_seed(&[0]), 0x61f4_a1de_98e2_f0e9);
    assert_eq!(mix_seed(&[9]), 0xb829_ed92_39c1_c80a);
    assert_eq!(mix_seed(&[9, 0]), 0x48bf_95ce_a3bf_6982);
    assert_eq!(mix_seed(&[9, 3, 1]), 0xd058_5825_4f0f_61bd);
    assert_eq!(mix_seed(&[2023, 17, 0xd20b]), 0x7f7a_e390_41e0_15fc);
}
