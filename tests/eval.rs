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
