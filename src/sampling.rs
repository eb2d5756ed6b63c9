//! BPR triplets: shuffled training interactions, one uniform negative per positive.
//!
//! The protocol of MMRec and the paper: negatives are drawn uniformly from the items that occur
//! in the training split, redrawn while they are in the user's training history (validation and
//! test items may be drawn); fresh draws every batch; interactions reshuffled every epoch; the
//! last partial batch is kept. Everything is deterministic from `(seed, epoch)`, and each batch
//! has its own RNG stream so batches can be drawn in parallel without changing the result.

use crate::error::{CraneError, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// A (user, positive item, negative item) triplet.
pub type Triplet = (u32, u32, u32);

/// Mixes several integers into one RNG seed (SplitMix64 finaliser per step).
pub fn mix_seed(parts: &[u64]) -> u64 {
    let mut h = 0x243F_6A88_85A3_08D3u64;
    for &p in parts {
        h ^= p.wrapping_add(0x9E37_79B9_7F4A_7C15).wrapping_add(h << 6).wrapping_add(h >> 2);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
    }
    h
}

/// Draws epochs of BPR batches from the training split.
#[derive(Clone, Debug)]
pub struct Sampler {
    pairs: Vec<(u32, u32)>,
    /// Sorted training items of each user.
    user_train: Vec<Vec<u32>>,
    /// Items occurring in the training split (the negative pool), sorted.
    pool: Vec<u32>,
}

impl Sampler {
    /// `pairs` are the training interactions, `user_train` their per-user sorted lists.
    pub fn new(pairs: &[(u32, u32)], user_train: &[Vec<u32>]) -> Result<Self> {
        let mut pool: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        pool.sort_unstable();
        pool.dedup();
        if let Some(u) = user_train.iter().position(|items| items.len() >= pool.len() && !items.is_empty()) {
            return Err(CraneError::Invalid(format!(
                "user {u} has interacted with every training item: no negative item can be sampled"
            )));
        }
        Ok(Self { pairs: pairs.to_vec(), user_train: user_train.to_vec(), pool })
    }

    /// Number of training interactions (triplets per epoch).
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Number of batches of an epoch.
    pub fn n_batches(&self, batch_size: usize) -> usize {
        self.pairs.len().div_ceil(batch_size)
    }

    /// One uniform negative for `user`.
    fn negative(&self, user: u32, rng: &mut ChaCha8Rng) -> u32 {
        let history = &self.user_train[user as usize];
        loop {
            let j = self.pool[rng.random_range(0..self.pool.len())];
            if history.binary_search(&j).is_err() {
                return j;
            }
        }
    }

    /// The batches of epoch `epoch`: a seeded shuffle of the interactions cut into batches of
    /// `batch_size` (last one partial), each positive paired with a fresh negative.
    pub fn epoch(&self, seed: u64, epoch: u64, batch_size: usize) -> Vec<Vec<Triplet>> {
        assert!(batch_size > 0, "batch size must be positive");
        let mut order = self.pairs.clone();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(&[seed, epoch])));
        order
            .par_chunks(batch_size)
            .enumerate()
            .map(|(b, chunk)| {
                let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[seed, epoch, b as u64 + 1]));
                chunk.iter().map(|&(u, i)| (u, i, self.negative(u, &mut rng))).collect()
            })
            .collect()
    }
}
