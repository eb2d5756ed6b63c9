//! # crane-reference
//!
//! A literal, f64, small-graph implementation of every equation of CRANE ("Cross-Modal
//! Attention Network with Dual Graph Learning in Multimodal Recommendation"), forward and
//! hand-written backward (vector-Jacobian products). It is the oracle the fast CPU and GPU
//! engines are diffed against; every backward is checked by central finite differences.
//!
//! One module per stage of the paper; search for "Eq. (n)" to find an equation:
//! - [`interaction_graph`]: Eq. (1)-(4), the user-item graph, DropEdge and its convolution.
//! - [`user_profiles`]: the feature projection and Eq. (5)-(6).
//! - [`rca`]: Eq. (7)-(13), Algorithm 1.
//! - [`item_graph`]: Eq. (14)-(17).
//! - [`losses`]: Eq. (18)-(20).
//! - [`model`]: the whole model, `loss_and_grads`.
//! - [`init`]: Xavier initialisation and Adam.

// Loops over the two modalities index several parallel arrays by m ∈ {v, t}, as the paper does.
#![allow(clippy::needless_range_loop)]

pub mod attention;
pub mod config;
pub mod dense;
pub mod fd;
pub mod init;
pub mod interaction_graph;
pub mod item_graph;
pub mod losses;
pub mod model;
pub mod rca;
pub mod user_profiles;

pub use config::ModelConfig;
pub use init::{Adam, Dims};
pub use model::{forward, loss_and_grads, Batch, Graph, LossAndGrads, Params};

/// Errors of the reference: bad shapes, bad configuration, or a numerically undefined step.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RefError {
    #[error("shape error: {0}")]
    Shape(String),
    #[error("invalid config field `{field}`: {why}")]
    Config { field: String, why: String },
    #[error("numerical error: {0}")]
    Numeric(String),
}

/// Makes faer run single-threaded so the reference is bitwise deterministic.
pub fn set_deterministic() {
    faer::set_global_parallelism(faer::Par::Seq);
}
