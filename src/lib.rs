//! # crane
//!
//! CRANE multimodal recommendation: MMRec-format data, splits, negative sampling, full-ranking
//! evaluation, synthetic data, training and the CLI. The equations live in `crane-reference`
//! (the f64 oracle); see SPEC.md.

// CSR and per-modality loops index several parallel arrays at once.
#![allow(clippy::needless_range_loop)]

pub mod bench;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod data;
pub mod engine;
pub mod error;
pub mod eval;
pub mod fingerprint;
pub mod fuzzing;
pub mod io;
pub mod manifest;
pub mod memory;
pub mod plot;
pub mod sampling;
pub mod stats;
pub mod train;
pub mod verify;

pub use error::{CraneError, Result};

/// Tells glibc's allocator to keep freed memory for reuse instead of handing it back to the
/// kernel. The engines allocate and drop `[M+N, d]` tables every batch; by default glibc serves
/// blocks that large with `mmap` and unmaps them on free (or trims the heap top), so every batch
/// paid for fresh zeroed pages: page faults were 29% of a BPR-MF epoch's profile on real Baby,
/// and this setting took the epoch from 3.8 s to 1.2 s (docs/BENCHMARKS.md). The resident set
/// then stays at its high-water mark within a run; `train::reset_peak_memory` trims it between
/// runs, so that each run of one process reports its own peak.
/// Call it once, before any thread starts; elsewhere than glibc it does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        // Blocks up to 1 GiB come from the heap (Electronics' tables are 65 MB, over glibc's
        // 32 MB dynamic ceiling) and the heap is never trimmed.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
