//! The evaluator: hand-computed metrics, masking, invariances, blocking.

use crane::eval::{evaluate, metrics_from_rankings, rank_users, top_k, EvalSet, Mask};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

fn lg(k: usize) -> f64 {
    1.0 / ((k + 1) as f64).log2()
}

#[test]
fn perfect_ranking_scores_one() {
    let set = EvalSet { users: vec![0, 1], heldout: vec![vec![3, 7], vec![1]] };
    let rankings = vec![vec![7, 3, 0, 1, 2], vec![1, 0, 2, 3, 4]];
    let m = metrics_from_rankings(&rankings, &set, &[5]);
    assert!(close(m.recall[0], 1.0) && close(m.ndcg[0], 1.0) && close(m.map[0], 1.0));
    assert!(close(m.precision[0], (2.0 / 5.0 + 1.0 / 5.0) / 2.0));
}

#[test]
fn hand_computed_more_heldout_than_k() {
    // |P| = 4 > K = 2; hits at ranks 1 and 2 of [5, 9, 1].
    let set = EvalSet { users: vec![0], heldout: vec![vec![1, 5, 8, 9]] };
    let m = metrics_from_rankings(&[vec![5, 9, 1]], &set, &[2, 3]);
    assert!(close(m.recall[0], 2.0 / 4.0), "denominator is |P|, not min(K, |P|)");
    assert!(close(m.ndcg[0], 1.0), "IDCG uses min(|P|, K) = 2 terms");
    assert!(close(m.precision[0], 1.0));
    assert!(close(m.map[0], (1.0 + 1.0) / 2.0));
    // K = 3: all three hit.
    assert!(close(m.recall[1], 3.0 / 4.0));
    assert!(close(m.map[1], 1.0));
}

#[test]
fn hand_computed_fewer_heldout_than_k() {
    // |P| = 2 < K = 5; hits at ranks 2 and 5.
    let set = EvalSet { users: vec![0], heldout: vec![vec![4, 6]] };
    let m = metrics_from_rankings(&[vec![0, 4, 1, 2, 6]], &set, &[5]);
    assert!(close(m.recall[0], 1.0));
    assert!(close(m.ndcg[0], (lg(2) + lg(5)) / (lg(1) + lg(2))));
    assert!(close(m.precision[0], 2.0 / 5.0));
    assert!(close(m.map[0], (1.0 / 2.0 + 2.0 / 5.0) / 2.0));
    // A miss everywhere scores zero.
    let m = metrics_from_rankings(&[vec![0, 1, 2]], &set, &[3]);
    assert!(m.recall[0] == 0.0 && m.ndcg[0] == 0.0 && m.map[0] == 0.0);
}

fn scores(u: u32, n: usize) -> Vec<f32> {
    (0..n).map(|i| (((u as usize * 31 + i * 17) % 97) as f32) / 97.0 - (i % 3) as f32 * 0.1).collect()
}

#[test]
fn masked_items_never_appear_and_ties_break_by_item_id() {
    let s = scores(3, 200);
    let mask: Vec<u32> = (0..200).filter(|i| i % 3 == 0).collect();
    let top = top_k(&s, &mask, 50);
    assert_eq!(top.len(), 50);
    assert!(top.iter().all(|i| mask.binary_search(i).is_err()));
    for w in top.windows(2) {
        let (a, b) = (s[w[0] as usize], s[w[1] as usize]);
        assert!(a > b || (a == b && w[0] < w[1]));
    }
    assert_eq!(top_k(&[1.0, 1.0, 1.0], &[], 2), vec![0, 1]);
    assert_eq!(top_k(&[f32::NAN, 0.0], &[], 1), vec![1], "NaN ranks last");
    assert_eq!(top_k(&[1.0, 2.0], &[0, 1], 5), Vec::<u32>::new());
}

fn fill(f: impl Fn(f32) -> f32) -> impl FnMut(&[u32], &mut [f32]) {
    let n = 120;
    move |users: &[u32], out: &mut [f32]| {
        for (k, &u) in users.iter().enumerate() {
            for (i, s) in scores(u, n).into_iter().enumerate() {
                out[k * n + i] = f(s);
            }
        }
    }
}

#[test]
fn metrics_are_invariant_to_increasing_transforms_and_blocking() {
    let n = 120;
    let set = EvalSet {
        users: (0..37).collect(),
        heldout: (0..37).map(|u| vec![(u * 7) % 120, (u * 11 + 5) % 120]).collect(),
    };
    let set = EvalSet {
        heldout: set
            .heldout
            .into_iter()
            .map(|mut v| {
                v.sort();
                v.dedup();
                v
            })
            .collect(),
        ..set
    };
    let mask: Vec<Vec<u32>> = (0..37).map(|u| vec![(u * 3 + 1) % 120]).collect();
    let ks = [5, 10, 20, 50];
    let base = evaluate(&set, Mask::train_only(&mask), n, &ks, 1000, fill(|s| s));
    let warped = evaluate(&set, Mask::train_only(&mask), n, &ks, 7, fill(|s| (3.0 * s).exp() + 2.0));
    assert_eq!(base, warped);
    assert!(base.recall[3] > 0.0);
    let r1 = rank_users(&set, Mask::train_only(&mask), n, 20, 1, fill(|s| s));
    let r2 = rank_users(&set, Mask::train_only(&mask), n, 20, 64, fill(|s| s));
    assert_eq!(r1, r2);
}

#[test]
fn summary_shows_recall_and_ndcg_at_10_and_20_else_every_k() {
    let m = crane::eval::Metrics {
        ks: vec![5, 10, 20, 50],
        recall: vec![0.01, 0.02, 0.03, 0.04],
        ndcg: vec![0.11, 0.12, 0.13, 0.14],
        precision: vec![0.5; 4],
        map: vec![0.6; 4],
        users: 3,
    };
    assert_eq!(m.summary(), "R@10 0.0200 R@20 0.0300 N@10 0.1200 N@20 0.1300");
    let only20 = crane::eval::Metrics { ks: vec![20, 50], recall: vec![0.3, 0.4], ndcg: vec![0.5, 0.6], ..m.clone() };
    assert_eq!(only20.summary(), "R@20 0.3000 N@20 0.5000", "K = 20 alone is usual too");
    let only10 = crane::eval::Metrics { ks: vec![5, 10], recall: vec![0.3, 0.4], ndcg: vec![0.5, 0.6], ..m.clone() };
    assert_eq!(only10.summary(), "R@10 0.4000 N@10 0.6000");
    let unusual = crane::eval::Metrics { ks: vec![5, 50], recall: vec![0.3, 0.4], ndcg: vec![0.5, 0.6], ..m };
    assert_eq!(unusual.summary(), "R@5 0.3000 R@50 0.4000 N@5 0.5000 N@50 0.6000", "no usual K: every K");
}

#[test]
fn metric_lookup_by_name_and_k() {
    let m = crane::eval::Metrics {
        ks: vec![10, 20],
        recall: vec![0.1, 0.2],
        ndcg: vec![0.3, 0.4],
        precision: vec![0.5, 0.6],
        map: vec![0.7, 0.8],
        users: 1,
    };
    let got: Vec<_> = ["recall", "ndcg", "precision", "map"].iter().map(|n| m.get(n, 20)).collect();
    assert_eq!(got, vec![Some(0.2), Some(0.4), Some(0.6), Some(0.8)]);
    assert_eq!(m.get("recall", 10), Some(0.1));
    assert_eq!(m.get("mrr", 20), None, "unknown metric");
    assert_eq!(m.get("recall", 50), None, "K not evaluated");
    let map = m.to_map();
    assert_eq!(map.len(), 8);
    assert_eq!((map["recall@10"], map["ndcg@20"], map["precision@10"], map["map@20"]), (0.1, 0.4, 0.5, 0.8));
}

#[test]
fn mask_merges_training_items_and_absent_ids_sorted_without_repeats() {
    let train = vec![vec![1, 4, 6], vec![]];
    let m = Mask::new(&train, &[0, 4, 9]);
    assert_eq!(m.merged(0), vec![0, 1, 4, 6, 9]);
    assert_eq!(m.merged(1), vec![0, 4, 9]);
    assert_eq!(Mask::train_only(&train).merged(0), vec![1, 4, 6]);
}

#[test]
fn topk_file_rows_keep_the_header_width_when_candidates_run_out() {
    let tsv = crane::eval::topk_tsv(&[3, 5], &[vec![2, 0, 1], vec![7]], |u| format!("u{u}"), |i| format!("i{i}"), 2);
    assert_eq!(tsv, "id\ttop_1\ttop_2\nu3\ti2\ti0\nu5\ti7\t\n");
    assert_eq!(crane::eval::short_rankings(&[vec![2, 0, 1], vec![7], vec![1, 2]], 2), 1);
    assert_eq!(crane::eval::short_rankings(&[vec![7]], 1), 0);
    // Longer than k is not short.
    assert_eq!(crane::eval::short_rankings(&[vec![1, 2, 3], vec![4, 5, 6]], 2), 0);
}

#[test]
fn ranking_skips_training_items_and_absent_ids_given_as_two_sorted_lists() {
    // Scores fall with the id, so the ranking of what is left is its id order.
    let scores: Vec<f32> = (0..10).map(|i| 10.0 - i as f32).collect();
    let got = crane::eval::top_k_outside(&scores, &[1, 4, 5], &[0, 2, 3, 8], 10);
    assert_eq!(got, vec![6, 7, 9], "ids 0-5 and 8 are skipped, whichever list names them");
    assert_eq!(crane::eval::top_k_outside(&scores, &[], &[1, 3, 5, 7, 9], 3), vec![0, 2, 4]);
    assert_eq!(crane::eval::top_k_outside(&scores, &[0, 2, 4, 6, 8], &[], 3), vec![1, 3, 5]);
    let train = vec![vec![0, 9], vec![]];
    let m = Mask::new(&train, &[1, 2]);
    let (t, a) = m.user(0);
    assert_eq!(crane::eval::top_k_outside(&scores, t, a, 2), vec![3, 4]);
    let (t, a) = m.user(1);
    assert_eq!(crane::eval::top_k_outside(&scores, t, a, 2), vec![0, 3]);
}
