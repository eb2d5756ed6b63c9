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
pub mod fuzzing;
pub mod io;
pub mod manifest;
pub mod memory;
pub mod sampling;
pub mod stats;
pub mod train;
pub mod verify;

pub use error::{CraneError, Result};
