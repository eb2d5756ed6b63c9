//! Train / validation / test splits.
//!
//! With `x_label` in the file, the file decides. Without it, each user's interactions are
//! shuffled with a seed and split by the rule of MMRec's published split: a user with n < 10
//! interactions gives one to validation and one to test (n = 2: one to test; n = 1: none);
//! otherwise floor(0.2 n) go half to validation (rounded down), the rest to test. That is the
//! paper's 8:1:1, per user, so every user with n ≥ 3 appears in all three splits.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The paper's five split seeds (section 4.3.1), available as presets `paper1`..`paper5`.
pub const PAPER_SEEDS: [u64; 5] = [9, 672, 5368, 12784, 2023];

/// Parses a split seed: a number or one of `paper1`..`paper5`.
pub fn parse_split_seed(s: &str) -> Option<u64> {
    if let Some(k) = s.strip_prefix("paper") {
        let k: usize = k.parse().ok()?;
        return PAPER_SEEDS.get(k.checked_sub(1)?).copied();
    }
    s.parse().ok()
}

/// How many of a user's n interactions go to (validation, test).
pub fn holdout_sizes(n: usize) -> (usize, usize) {
    match n {
        0 | 1 => (0, 0),
        2 => (0, 1),
        3..=9 => (1, 1),
        _ => {
            let k = n / 5;
            (k / 2, k - k / 2)
        }
    }
}

/// Labels (0 train, 1 validation, 2 test) for one user's `n` interactions, seeded per user so
/// the split of one user does not depend on the others.
pub fn split_user(n: usize, seed: u64, user: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ user.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (v, t) = holdout_sizes(n);
    let mut labels: Vec<u8> =
        std::iter::repeat_n(1, v).chain(std::iter::repeat_n(2, t)).chain(std::iter::repeat_n(0, n - v - t)).collect();
    labels.shuffle(&mut rng);
    labels
}
