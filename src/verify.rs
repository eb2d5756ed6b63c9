//! `crane verify`: the parity run that shows an engine computes the reference's function.
//!
//! On several small random graphs and for every variant switch, the reference (f64) and the
//! engine under test (f32) run the same three training steps; the table compares the loss
//! terms, the item graph, every gradient tensor, the parameters after three Adam steps, the
//! scores and the evaluation metrics. The same comparisons as `tests/parity.rs`, for users.

use crate::data::npy::FeatureMatrix;
use crate::engine::{reference::ReferenceEngine, Engine, ModelInputs};
use crate::error::{CraneError, Result};
use crane_reference::config::*;
use crane_reference::init::Dims;
use crane_reference::{ModelConfig, Params};
use nalgebra_sparse::CsrMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Relative tolerance of losses, graph values, scores, metrics and whole-vector gradients.
pub const TOL: f64 = 1e-5;

/// Per-tensor bound. A defect (dropped term, flipped sign, wrong index) gives an O(1) error in
/// its tensor; f32 round-off in the RCA branch's bias gradients, which sum upstream gradients
/// over all rows, measures up to 1.2e-5 on small graphs (the reference itself moves them by
/// 2e-6 under 1e-7 relative input noise), so single tensors are held to 1e-4 and the whole
/// vector to [`TOL`].
pub const TENSOR_TOL: f64 = 1e-4;

/// A tensor's error is measured against its own norm, or against this fraction of the whole
/// gradient's norm when it is smaller. Some gradients are zero or nearly so by structure, not
/// by chance: softmax ignores the attention's key bias, BPR ignores a shift shared by all items
/// (the value and output biases of `crane-code`), and the projection bias collects what is left
/// of those cancellations (measured: 8e-6 against a whole-gradient norm of 7e-2). In f32 such a
/// tensor is round-off of cancelling terms, and its relative error says nothing; a defect in it
/// still shows, as an error of the tensor's own size (≥ 1e-1 of this floor).
pub const TENSOR_FLOOR: f64 = 1e-3;

/// Per-tensor bound for the gradient of a [`null_directions`] tensor, against the floor. Its
/// exact value is 0 and what an f32 engine returns is round-off of cancelling sums over all
/// rows: measured on the crane-code parity graph at 0.94e-4 (CPU engine) and 1.7e-4 (GPU
/// engine's code on host ops) of the floor for `mha.b_v`, so [`TENSOR_TOL`] is no margin at
/// all there. A defect (a dropped or doubled term) gives an error of the tensor's natural
/// size, ≥ 1e-1 of the floor, which this bound still catches.
pub const NULL_TOL: f64 = 1e-2;

/// Tensors the loss does not depend on at all under `cfg`: the attention's key bias (softmax
/// ignores it) and, when BPR is the only term that reaches them, its value and output biases
/// (they shift every item alike). Their gradients are zero in exact arithmetic; Adam turns
/// f32 round-off there into steps of about lr, so after Adam steps they are not compared.
pub fn null_directions(cfg: &ModelConfig) -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg.uses_attention() {
        v.push("mha.b_k");
        if !cfg.uses_contrastive() {
            v.extend(["mha.b_v", "mha.b_o"]);
        }
    }
    v
}

/// Tensors not compared after Adam steps: the [`null_directions`], and with the authors'
/// attention under BPR alone, the projection biases (both, with the second projection). There
/// `p_m` reaches the loss only as a row-constant shift of the attention's input (`1 p_m`, or
/// `1 (p_m Q_m + q_m)` with the second projection), the direction whose
/// value and output parts BPR cancels: what is left of its gradient measured 3e-6 of the whole
/// gradient's norm (text modality, parity graph), so f32 computes it to ~1e-3 relative (with
/// one projection the parameters after three steps differed by 1.5e-4 in a dev build, after
/// the CPU engine's Adam took PyTorch's arithmetic). Adam
/// normalises a gradient's scale away, so the parameters inherit that relative error. The
/// gradients themselves are still compared at every step (against the floor), and the
/// reference's finite-difference test checks them exactly.
pub fn adam_incomparable(cfg: &ModelConfig) -> Vec<&'static str> {
    let mut v = null_directions(cfg);
    if cfg.uses_attention() && !cfg.uses_contrastive() {
        v.extend(["proj_bias.v", "proj_bias.t"]);
        if cfg.uses_attention_projection() {
            v.extend(["mha_proj_bias.v", "mha_proj_bias.t"]);
        }
    }
    v
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    pub case: String,
    pub stage: String,
    pub max_abs: f64,
    pub max_rel: f64,
    pub tol: f64,
}

impl Row {
    pub fn pass(&self) -> bool {
        self.max_rel <= self.tol
    }
}

/// The variants checked: the paper's model, its ablations and variants, and the baselines.
pub fn variants() -> Vec<(&'static str, ModelConfig)> {
    let base =
        ModelConfig { embedding_dim: 4, feature_dim: 4, joint_dim: 3, rounds: 2, knn_k: 3, ..ModelConfig::default() };
    let with = |f: &dyn Fn(&mut ModelConfig)| {
        let mut c = base.clone();
        f(&mut c);
        c
    };
    let freedom = |c: &mut ModelConfig| {
        c.item_graph_source = ItemGraphSource::RawFeatures { image_weight: 0.1 };
        c.item_graph_input = ItemGraphInput::Embeddings;
        c.user_semantic = false;
        c.contrastive = false;
        c.gcn_weights = false;
        c.modality_bpr = 0.3;
        c.regularisation = Regularisation::BatchNorms;
        c.drop_edge = DropEdge::Freedom { keep_ratio: 0.7 };
        c.degree_source = DegreeSource::KeptGraph;
    };
    // The authors' code: FREEDOM's graph and pruning, the attention as h^(0), BPR only.
    let crane_code = |c: &mut ModelConfig| {
        freedom(c);
        c.modality_bpr = 0.0;
        c.item_graph_input = ItemGraphInput::Attention;
        c.attention_heads = 2;
    };
    vec![
        ("crane", base.clone()),
        ("leaky_relu", with(&|c| c.sigma = Sigma::LeakyRelu(0.2))),
        ("max_profiles", with(&|c| c.aggregation = Aggregation::Max)),
        ("attention_profiles", with(&|c| c.aggregation = Aggregation::Attention)),
        ("fusion_concat", with(&|c| c.fusion = Fusion::Concat)),
        ("fusion_average_graphs", with(&|c| c.fusion = Fusion::AverageGraphs)),
        ("single_round", with(&|c| c.rounds = 1)),
        ("wo_item_graph", with(&|c| c.item_graph = false)),
        ("wo_cl", with(&|c| c.contrastive = false)),
        (
            "bpr_mf",
            with(&|c| {
                c.ui_layers = 0;
                c.item_graph = false;
                c.regularisation = Regularisation::BatchNorms;
                c.drop_edge = DropEdge::Off;
            }),
        ),
        ("wo_dual_fusion", with(&|c| c.dual_fusion = false)),
        (
            "lightgcn",
            with(&|c| {
                c.gcn_weights = false;
                c.item_graph = false;
                c.regularisation = Regularisation::BatchNorms;
                c.drop_edge = DropEdge::Off;
            }),
        ),
        ("freedom", with(&freedom)),
        ("crane_code", with(&crane_code)),
        (
            // Issue 25: the released code's parameter set, second projection and trained tables.
            "crane_code_as_released",
            with(&|c| {
                crane_code(c);
                c.attention_projection = true;
                c.train_features = true;
            }),
        ),
        (
            "freedom_trained_features",
            with(&|c| {
                freedom(c);
                c.train_features = true;
            }),
        ),
        (
            // The attention's value and output biases are null directions under BPR alone; the
            // contrastive terms make their gradients count.
            "code_attention_with_cl",
            with(&|c| {
                crane_code(c);
                c.user_semantic = true;
                c.contrastive = true;
            }),
        ),
    ]
}

struct Case {
    m: usize,
    n: usize,
    train: Vec<(u32, u32)>,
    valid: Vec<(u32, u32)>,
    feats: [FeatureMatrix; 2],
    batches: Vec<Vec<(u32, u32, u32)>>,
}

fn case(seed: u64) -> Case {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let (m, n) = (12 + (seed as usize % 5), 15 + (seed as usize % 7));
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for u in 0..m as u32 {
        let mut items: Vec<u32> = (0..n as u32).collect();
        for k in 0..items.len() {
            let j = r.random_range(k..items.len());
            items.swap(k, j);
        }
        let deg = r.random_range(2..=5);
        train.extend(items[..deg].iter().map(|&i| (u, i)));
        valid.push((u, items[deg]));
    }
    train.sort_unstable();
    let feat = |c: usize, r: &mut ChaCha8Rng| FeatureMatrix {
        rows: n,
        cols: c,
        data: (0..n * c).map(|_| r.random_range(-0.5f32..0.5)).collect(),
    };
    let feats = [feat(6, &mut r), feat(5, &mut r)];
    let by_user = crate::data::group(m, &train);
    let batches = (0..3)
        .map(|_| {
            (0..8)
                .map(|_| {
                    let u = r.random_range(0..m);
                    let row = &by_user[u];
                    let i = row[r.random_range(0..row.len())];
                    let j = loop {
                        let j = r.random_range(0..n as u32);
                        if !row.contains(&j) {
                            break j;
                        }
                    };
                    (u as u32, i, j)
                })
                .collect()
        })
        .collect();
    Case { m, n, train, valid, feats, batches }
}

fn compare(case: &str, stage: &str, got: &[f64], want: &[f64], tol: f64, floor: f64) -> Row {
    let max_abs = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let diff: f64 = got.iter().zip(want).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = want.iter().map(|v| v * v).sum::<f64>().sqrt();
    Row { case: case.into(), stage: stage.into(), max_abs, max_rel: diff / norm.max(floor).max(1e-30), tol }
}

fn flat(p: &Params) -> Vec<(String, Vec<f64>)> {
    p.tensors()
        .into_iter()
        .map(|(n, t)| (n, (0..t.nrows()).flat_map(|i| (0..t.ncols()).map(move |j| t[(i, j)])).collect()))
        .collect()
}

/// The bounds of one run of the comparison: whole vectors, single tensors, null directions.
#[derive(Clone, Copy, Debug)]
pub struct Tolerances {
    pub tol: f64,
    pub tensor: f64,
    pub null: f64,
    /// Compare item graphs by their values as dense matrices, not by their kNN index sets
    /// (TF32: near ties may swap neighbours).
    pub graph_by_values: bool,
}

impl Tolerances {
    /// f32 engines: [`TOL`], [`TENSOR_TOL`], [`NULL_TOL`].
    pub const F32: Self = Self { tol: TOL, tensor: TENSOR_TOL, null: NULL_TOL, graph_by_values: false };
    /// The GPU engine with cuBLAS on TF32 tensor cores. TF32 rounds the products' inputs to
    /// 2⁻¹¹ (f32: 2⁻²⁴), 8,192 times coarser; the f32 bounds sit at ≈ 170 (whole) and ≈ 1,700
    /// (tensor) unit round-offs, these at ≈ 20 and ≈ 100 of TF32's. A prior, not a measurement:
    /// no TF32 run has been made yet, and the first one on a device sets them.
    pub const TF32: Self = Self { tol: 1e-2, tensor: 5e-2, null: 1.0, graph_by_values: true };
}

/// Builds the engine under test from the inputs, the config and the starting parameters.
pub type MakeEngine<'a> = &'a dyn Fn(&ModelInputs, &ModelConfig, &Params) -> Result<Box<dyn Engine>>;

/// Runs the comparison of `make(inputs, cfg, params)` against the reference (f32 bounds),
/// handing each row to `on_row` as soon as it is computed.
pub fn run(make: MakeEngine, seeds: &[u64], on_row: &mut dyn FnMut(&Row)) -> Vec<Row> {
    run_with(make, seeds, Tolerances::F32, on_row)
}

/// Why one case (a variant on one graph) stopped before its last comparison.
enum CaseError {
    /// The engine cannot be built for the variant: the variant fails once, with the reason.
    NotRun(CraneError),
    /// An error in the middle of the case (a device error, say): a FAIL row, and the run goes on.
    Failed(CraneError),
}

impl From<CraneError> for CaseError {
    fn from(e: CraneError) -> Self {
        CaseError::Failed(e)
    }
}

/// [`run`] with the bounds `t`. An error or a panic in one case becomes a FAIL row with its
/// message and the run goes on to the next, so one broken variant (or a sticky device error)
/// does not cost the rows of the others.
pub fn run_with(make: MakeEngine, seeds: &[u64], t: Tolerances, on_row: &mut dyn FnMut(&Row)) -> Vec<Row> {
    let mut rows = Vec::new();
    for (name, cfg) in variants() {
        for &seed in seeds {
            let label = format!("{name} / graph {seed}");
            let mut emit = |r: Row| {
                on_row(&r);
                rows.push(r);
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                one_case(make, &cfg, seed, t, &label, &mut emit)
            }));
            let failed = |case: String, stage: String| Row {
                case,
                stage,
                max_abs: f64::NAN,
                max_rel: f64::INFINITY,
                tol: t.tol,
            };
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(CaseError::NotRun(e))) => {
                    emit(failed(format!("{name} / every graph"), format!("not run: {e}")));
                    break;
                }
                Ok(Err(CaseError::Failed(e))) => emit(failed(label.clone(), format!("error: {e}"))),
                Err(p) => emit(failed(label.clone(), format!("panic: {}", panic_message(&p)))),
            }
        }
    }
    rows
}

/// The text of a caught panic.
fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

/// S̃ of the engine against the reference's. In f32 the kNN index sets must be identical and
/// the values within tolerance. Under TF32, near ties may swap neighbours (the products' inputs
/// keep 10 mantissa bits), so the graphs are compared as dense `[N, N]` matrices of values: a
/// swapped pair of almost equal neighbours costs almost nothing, a wrong graph still fails.
fn compare_graphs(label: &str, want: &CsrMatrix<f64>, got: &CsrMatrix<f64>, t: Tolerances) -> Row {
    if t.graph_by_values {
        let dense = |g: &CsrMatrix<f64>| {
            let n = g.ncols();
            let mut d = vec![0.0; g.nrows() * n];
            for (i, j, v) in g.triplet_iter() {
                d[i * n + j] = *v;
            }
            d
        };
        return compare(label, "item graph S̃ as dense values (TF32)", &dense(got), &dense(want), t.tol, 0.0);
    }
    let same = want.row_offsets() == got.row_offsets() && want.col_indices() == got.col_indices();
    let mut r = compare(label, "item graph S̃ values", got.values(), want.values(), t.tol, 0.0);
    if !same {
        r.max_rel = f64::INFINITY;
        r.stage = "item graph S̃ index sets".into();
    }
    r
}

/// One variant on one graph: three training steps of the engine and the reference from the same
/// parameters, every comparison handed to `emit`.
fn one_case(
    make: MakeEngine,
    cfg: &ModelConfig,
    seed: u64,
    t: Tolerances,
    label: &str,
    emit: &mut dyn FnMut(Row),
) -> std::result::Result<(), CaseError> {
    let c = case(seed);
    let inputs = ModelInputs {
        n_users: c.m,
        n_items: c.n,
        train: &c.train,
        features: [Some(&c.feats[0]), Some(&c.feats[1])],
        fixed_item_graph: None,
    };
    let mut params = Params::init(cfg, Dims { n_users: c.m, n_items: c.n, d_visual: 6, d_text: 5 }, seed + 1);
    for (_, t) in params.tensors_mut() {
        *t = faer::Mat::from_fn(t.nrows(), t.ncols(), |i, j| t[(i, j)] as f32 as f64);
    }
    let mut want: Box<dyn Engine> = Box::new(ReferenceEngine::new(&inputs, cfg, params.clone())?);
    let mut got = make(&inputs, cfg, &params).map_err(CaseError::NotRun)?;
    let a = inputs.interaction_matrix()?;
    let mask = crane_reference::model::sample_edge_mask(&a, cfg.drop_edge, seed ^ 77);
    want.set_edge_mask(&mask)?;
    got.set_edge_mask(&mask)?;
    let (mut terms_w, mut terms_g) = (Vec::new(), Vec::new());
    for (step, batch) in c.batches.iter().enumerate() {
        // Gradients on identical parameters: the engine gets the reference's first.
        got.set_params(&want.params())?;
        let lw = want.loss_and_grads(batch, step == 0)?;
        let lg = got.loss_and_grads(batch, step == 0)?;
        terms_w.extend(lw.named().map(|t| t.1));
        terms_g.extend(lg.named().map(|t| t.1));
        let (gw, gg) = (flat(&want.grads()), flat(&got.grads()));
        let total: f64 = gw.iter().flat_map(|t| t.1.iter()).map(|v| v * v).sum::<f64>().sqrt();
        let null = null_directions(cfg);
        for ((tn, w), (_, g)) in gw.iter().zip(&gg) {
            if !w.is_empty() {
                let tol = if null.contains(&tn.as_str()) { t.null } else { t.tensor };
                emit(compare(label, &format!("step {step} grad {tn}"), g, w, tol, TENSOR_FLOOR * total));
            }
        }
        if step == 0 {
            if let (Some(gw), Some(gg)) = (want.item_graph(), got.item_graph()) {
                emit(compare_graphs(label, &gw, &gg, t));
            }
        }
        want.adam_step(1e-3, crate::engine::AdamIdle::Step)?;
        got.adam_step(1e-3, crate::engine::AdamIdle::Step)?;
    }
    emit(compare(label, "loss terms (3 steps)", &terms_g, &terms_w, t.tol, 1e-3));
    let (pw, pg) = (flat(&want.params()), flat(&got.params()));
    let null = adam_incomparable(cfg);
    let keep = |v: &Vec<(String, Vec<f64>)>| -> Vec<f64> {
        v.iter().filter(|t| !null.contains(&t.0.as_str())).flat_map(|t| t.1.iter().copied()).collect()
    };
    emit(compare(label, "params after 3 Adam steps", &keep(&pg), &keep(&pw), t.tol, 0.0));
    want.prepare_scoring()?;
    got.prepare_scoring()?;
    let users: Vec<u32> = (0..c.m as u32).collect();
    let (mut sw, mut sg) = (vec![0f32; c.m * c.n], vec![0f32; c.m * c.n]);
    want.score_block(&users, &mut sw)?;
    got.score_block(&users, &mut sg)?;
    let centre = |s: &[f32]| -> Vec<f64> {
        s.chunks(c.n)
            .flat_map(|row| {
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / c.n as f64;
                row.iter().map(move |&v| v as f64 - mean)
            })
            .collect()
    };
    emit(compare(label, "scores (per user, up to a constant)", &centre(&sg), &centre(&sw), t.tol, 0.0));
    let set = crate::eval::EvalSet::from_pairs(c.m, &c.valid);
    let mask_items = crate::data::group(c.m, &c.train);
    let ks = [5, 10];
    // Each engine ranks its own way (the GPU engine on the device, with the mask).
    let mw =
        crate::eval::evaluate_engine(&set, crate::eval::Mask::train_only(&mask_items), c.n, &ks, 8, want.as_ref())?
            .to_map();
    let mg = crate::eval::evaluate_engine(&set, crate::eval::Mask::train_only(&mask_items), c.n, &ks, 8, got.as_ref())?
        .to_map();
    let (vw, vg): (Vec<f64>, Vec<f64>) = mw.values().copied().zip(mg.values().copied()).unzip();
    emit(compare(label, "metrics R/N/P/MAP@5,10", &vg, &vw, t.tol, 1e-3));
    Ok(())
}

/// The table's header line.
pub fn header() -> String {
    format!("{:<34} {:<44} {:>10} {:>10} {:>8}  result\n", "case", "stage", "max abs", "max rel", "tol")
}

/// One row of the table, failures marked.
pub fn row_line(r: &Row) -> String {
    format!(
        "{:<34} {:<44} {:>10.2e} {:>10.2e} {:>8.0e}  {}\n",
        r.case,
        r.stage,
        r.max_abs,
        r.max_rel,
        r.tol,
        if r.pass() { "pass" } else { "FAIL" }
    )
}

/// The GPU run: fails with one line when there is no device; otherwise the GPU engine on
/// device 0 against the reference, variants it does not implement yet failing with the reason.
/// With `tf32`, cuBLAS runs on TF32 tensor cores and the bounds are [`Tolerances::TF32`].
pub fn gpu(seeds: &[u64], tf32: bool, on_row: &mut dyn FnMut(&Row)) -> Result<Vec<Row>> {
    crane_gpu::probe_device().map_err(|e| CraneError::Invalid(e.to_string()))?;
    let dev = crane_gpu::cuda::CudaDevice::with_tf32(tf32).map_err(|e| CraneError::Invalid(e.to_string()))?;
    let make = |i: &ModelInputs, c: &ModelConfig, p: &Params| {
        Ok(Box::new(crate::engine::gpu::GpuEngine::new(dev.clone(), i, c, p)?.with_block_bytes(4 * 16 * 40))
            as Box<dyn Engine>)
    };
    Ok(run_with(&make, seeds, if tf32 { Tolerances::TF32 } else { Tolerances::F32 }, on_row))
}

/// The GPU engine's code with its ops on the host (no GPU needed): checks the engine's
/// orchestration; the CUDA ops themselves are checked only by [`gpu`].
pub fn gpu_host(seeds: &[u64], on_row: &mut dyn FnMut(&Row)) -> Vec<Row> {
    let make = |i: &ModelInputs, c: &ModelConfig, p: &Params| {
        Ok(Box::new(
            crate::engine::gpu::GpuEngine::new(crane_gpu::device::HostDevice, i, c, p)?.with_block_bytes(4 * 16 * 40),
        ) as Box<dyn Engine>)
    };
    run(&make, seeds, on_row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(rows: &[&[(usize, f64)]], n: usize) -> CsrMatrix<f64> {
        let mut coo = nalgebra_sparse::CooMatrix::new(rows.len(), n);
        for (i, r) in rows.iter().enumerate() {
            for &(j, v) in r.iter() {
                coo.push(i, j, v);
            }
        }
        CsrMatrix::from(&coo)
    }

    #[test]
    fn tf32_graphs_are_compared_by_values_so_a_near_tie_swap_passes_and_a_wrong_graph_fails() {
        // Row 0's second neighbour is a near tie between items 1 and 2 (0.5000 vs 0.4999).
        let want = graph(&[&[(0, 1.0), (1, 0.5)], &[(1, 1.0), (0, 0.5)], &[(2, 1.0), (1, 0.6)]], 3);
        let swapped = graph(&[&[(0, 1.0), (2, 0.4999)], &[(1, 1.0), (0, 0.5)], &[(2, 1.0), (1, 0.6)]], 3);
        let f32_row = compare_graphs("g", &want, &swapped, Tolerances::F32);
        assert!(!f32_row.pass() && f32_row.stage.contains("index sets"), "f32 demands the same index sets");
        // By dense values a swap costs what the swapped weights are worth: on a light edge
        // (0.001 vs 0.00099, as kNN tails are) it passes TF32's bound; on the heavy 0.5 edge
        // above (‖Δ‖ ≈ 0.7 of ‖S̃‖ ≈ 2) it still fails.
        let small = |v: f64| graph(&[&[(0, 1.0), (1, v)], &[(1, 1.0)], &[(2, 1.0)]], 3);
        let small_swapped = |v: f64| graph(&[&[(0, 1.0), (2, v)], &[(1, 1.0)], &[(2, 1.0)]], 3);
        let r = compare_graphs("g", &small(0.001), &small_swapped(0.00099), Tolerances::TF32);
        assert!(r.pass() && r.stage.contains("dense values"), "{r:?}");
        assert!(!compare_graphs("g", &want, &swapped, Tolerances::TF32).pass(), "a swap of a heavy edge still fails");
        let identical = compare_graphs("g", &want, &want, Tolerances::TF32);
        assert_eq!(identical.max_rel, 0.0);
    }
}
