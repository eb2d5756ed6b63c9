//! Parity of every engine with the f64 reference on small random graphs, for every switch
//! that changes the computation: loss, every gradient, the item graph, and the parameters
//! after three Adam steps agree to 1e-5 relative (norm-wise per tensor).
//!
//! One test body per check, run against each backend by `test_backends!` (as candle's
//! `test_device!`): add a backend there and every check runs on it.

use crane::data::npy::FeatureMatrix;
use crane::engine::cpu::CpuEngine;
use crane::engine::gpu::GpuEngine;
use crane::engine::reference::ReferenceEngine;
use crane::engine::{AdamIdle, Engine, ModelInputs};
use crane_gpu::device::HostDevice;
use crane_reference::config::*;
use crane_reference::fd::rel_error;
use crane_reference::init::Dims;
use crane_reference::model::{sample_edge_mask, Batch, Graph};
use crane_reference::{loss_and_grads, ModelConfig, Params};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crane::verify::{adam_incomparable, null_directions, NULL_TOL, TENSOR_FLOOR, TENSOR_TOL, TOL};

#[derive(Clone, Copy, Debug)]
enum Backend {
    Reference,
    Cpu,
    /// The GPU engine with its ops on the host: its orchestration, without a GPU.
    GpuHost,
    /// The GPU engine on CUDA device 0.
    #[allow(dead_code)]
    GpuCuda,
}

struct Case {
    train: Vec<(u32, u32)>,
    feats: [FeatureMatrix; 2],
    params: Params,
    batches: Vec<Vec<(u32, u32, u32)>>,
    mask: Vec<f64>,
    m: usize,
    n: usize,
}

fn tiny_config() -> ModelConfig {
    ModelConfig { embedding_dim: 4, feature_dim: 3, joint_dim: 3, rounds: 2, knn_k: 3, ..ModelConfig::default() }
}

/// 7 users, 9 items (or 25 x 30 with `big`), features 6 and 5 wide, three batches.
fn make_case(seed: u64, cfg: &ModelConfig, big: bool) -> Case {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let (m, n) = if big { (25, 30) } else { (7, 9) };
    let mut train = Vec::new();
    for u in 0..m {
        let mut items: Vec<u32> = (0..n as u32).collect();
        for k in 0..items.len() {
            let j = r.random_range(k..items.len());
            items.swap(k, j);
        }
        let deg = r.random_range(1..=4);
        train.extend(items[..deg].iter().map(|&i| (u as u32, i)));
    }
    train.sort_unstable();
    let feat = |c: usize, r: &mut ChaCha8Rng| FeatureMatrix {
        rows: n,
        cols: c,
        data: (0..n * c).map(|_| r.random_range(-0.5f32..0.5)).collect(),
    };
    let feats = [feat(6, &mut r), feat(5, &mut r)];
    // Both engines get the same inputs: values representable in f32.
    let mut params = Params::init(cfg, Dims { n_users: m, n_items: n, d_visual: 6, d_text: 5 }, seed + 1);
    for (_, t) in params.tensors_mut() {
        *t = faer::Mat::from_fn(t.nrows(), t.ncols(), |i, j| t[(i, j)] as f32 as f64);
    }
    let by_user = crane::data::group(m, &train);
    let batches = (0..3)
        .map(|_| {
            (0..6)
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
    let pairs: Vec<(usize, usize)> = train.iter().map(|&(u, i)| (u as usize, i as usize)).collect();
    let a = crane_reference::interaction_graph::interaction_matrix(m, n, &pairs).unwrap();
    let mask = sample_edge_mask(&a, cfg.drop_edge, seed ^ 77);
    Case { train, feats, params, batches, mask, m, n }
}

/// The reference's distance to a kink on the case's first batch (f32 noise must not cross one).
fn kink_margin(c: &Case, cfg: &ModelConfig) -> f64 {
    let pairs: Vec<(usize, usize)> = c.train.iter().map(|&(u, i)| (u as usize, i as usize)).collect();
    let a = crane_reference::interaction_graph::interaction_matrix(c.m, c.n, &pairs).unwrap();
    let to64 = |f: &FeatureMatrix| faer::Mat::from_fn(f.rows, f.cols, |r, k| f.data[r * f.cols + k] as f64);
    let mut g = Graph::new(a, [to64(&c.feats[0]), to64(&c.feats[1])]);
    g.fixed_item_graph = file_graph(c, cfg);
    g.edge_mask = c.mask.clone();
    let b = Batch { triplets: c.batches[0].iter().map(|&(u, i, j)| (u as usize, i as usize, j as usize)).collect() };
    let mut p = c.params.clone();
    p.attach_features(cfg, [&g.features[0], &g.features[1]]);
    loss_and_grads(&p, &b, &g, cfg).unwrap().forward.kink_margin
}

/// For `ItemGraphSource::Files`: the graph the loader would build from kNN files, from fixed
/// neighbour lists one column wider than k (so the first k are taken), some repeating an id
/// within a list or across the two (summed entries).
fn file_graph(c: &Case, cfg: &ModelConfig) -> Option<nalgebra_sparse::CsrMatrix<f64>> {
    let ItemGraphSource::Files { image_weight, .. } = cfg.item_graph_source else { return None };
    let (n, w) = (c.n, cfg.knn_k + 1);
    let image: Vec<Vec<usize>> = (0..n).map(|i| (0..w).map(|q| (i + q * q * 3 + q) % n).collect()).collect();
    let text: Vec<Vec<usize>> = (0..n).map(|i| (0..w).map(|q| (i * 3 + q * 5) % n).collect()).collect();
    let lists = [(&image[..], image_weight), (&text[..], 1.0 - image_weight)];
    Some(crane_reference::item_graph::fixed_knn_graph(n, &lists, cfg.knn_k).unwrap())
}

fn engine(b: Backend, c: &Case, cfg: &ModelConfig) -> Box<dyn Engine> {
    let fg = file_graph(c, cfg);
    let inputs = ModelInputs {
        n_users: c.m,
        n_items: c.n,
        train: &c.train,
        features: [Some(&c.feats[0]), Some(&c.feats[1])],
        fixed_item_graph: fg.as_ref(),
    };
    match b {
        Backend::Reference => Box::new(ReferenceEngine::new(&inputs, cfg, c.params.clone()).unwrap()),
        // Tiny blocks so that the blocked code paths (several blocks, a partial last one) run.
        Backend::Cpu => Box::new(CpuEngine::new(&inputs, cfg, &c.params).unwrap().with_block_bytes(4 * 16 * 40)),
        Backend::GpuHost => {
            Box::new(GpuEngine::new(HostDevice, &inputs, cfg, &c.params).unwrap().with_block_bytes(4 * 16 * 40))
        }
        Backend::GpuCuda => {
            let dev = crane_gpu::cuda::CudaDevice::new().unwrap_or_else(|e| panic!("{e}"));
            Box::new(GpuEngine::new(dev, &inputs, cfg, &c.params).unwrap().with_block_bytes(4 * 16 * 40))
        }
    }
}

/// All tensors as one vector: ‖got − want‖ / ‖want‖ ≤ TOL, and each tensor ≤ TENSOR_TOL
/// (NULL_TOL for the tensors in `null`, whose exact value is zero); tensors in `skip` are left
/// out.
fn assert_params_close(what: &str, got: &Params, want: &Params, skip: &[&str], null: &[&str]) {
    let sq = |m: &faer::Mat<f64>| {
        (0..m.ncols()).flat_map(|j| (0..m.nrows()).map(move |i| (i, j))).map(|(i, j)| m[(i, j)].powi(2)).sum::<f64>()
    };
    let total: f64 = want.tensors().iter().map(|(_, w)| sq(w)).sum::<f64>().sqrt();
    let (mut diff, mut norm) = (0.0, 0.0);
    for ((name, g), (_, w)) in got.tensors().into_iter().zip(want.tensors()) {
        if skip.contains(&name.as_str()) {
            continue;
        }
        let d: f64 = (0..g.ncols())
            .flat_map(|j| (0..g.nrows()).map(move |i| (i, j)))
            .map(|(i, j)| (g[(i, j)] - w[(i, j)]).powi(2))
            .sum::<f64>()
            .sqrt();
        let err = d / f64::max(sq(w).sqrt(), TENSOR_FLOOR * total).max(1e-30);
        let tol = if null.contains(&name.as_str()) { NULL_TOL } else { TENSOR_TOL };
        assert!(err <= tol, "{what} {name}: relative error {err:.3e} > {tol:e} (rel_error {:.3e})", rel_error(g, w));
        diff += d * d;
        norm += sq(w);
    }
    let err = diff.sqrt() / f64::max(norm.sqrt(), 1e-8);
    if std::env::var_os("CRANE_PARITY_REPORT").is_some() {
        eprintln!("PARITY {what}: {err:.3e}");
    }
    assert!(err <= TOL, "{what}: relative error of all tensors {err:.3e} > {TOL:e}");
}

/// Loss, gradients, item graph and three Adam steps against the reference, for each graph mode.
fn check_parity(b: Backend, cfg: &ModelConfig, big: bool) {
    check_parity_with_zero_rows(b, cfg, big, &[], false)
}

/// [`check_parity`] with the feature rows `(modality, item)` set to zero. With `isolated`, the
/// reference's first item graph must have an empty row for each such item and name it in no
/// other row (the zero-row path of Eq. 14 did run).
fn check_parity_with_zero_rows(b: Backend, cfg: &ModelConfig, big: bool, zero_rows: &[(usize, usize)], isolated: bool) {
    check_parity_full(b, cfg, big, zero_rows, isolated, AdamIdle::Step)
}

/// [`check_parity`] with Adam's treatment of tensors without gradient ([`AdamIdle`]); under
/// `Skip` every tensor whose gradient is zero keeps its value through the step, and at least
/// one step has such a tensor (RCA's, on the batches that do not rebuild the item graph).
fn check_parity_idle(b: Backend, cfg: &ModelConfig, big: bool, idle: AdamIdle) {
    check_parity_full(b, cfg, big, &[], false, idle)
}

fn check_parity_full(
    b: Backend,
    cfg: &ModelConfig,
    big: bool,
    zero_rows: &[(usize, usize)],
    isolated: bool,
    idle: AdamIdle,
) {
    let mut seed = 40;
    let case = loop {
        let mut c = make_case(seed, cfg, big);
        for &(m, i) in zero_rows {
            let w = c.feats[m].cols;
            c.feats[m].data[i * w..(i + 1) * w].fill(0.0);
        }
        if kink_margin(&c, cfg) > 1e-3 {
            break c;
        }
        seed += 1;
    };
    let mut idle_steps = 0;
    for learn_every_step in [true, false] {
        // Two runs of three steps each: `synced` gives the engine the reference's parameters
        // before every step, so each gradient is compared on identical inputs; the free run
        // compares the parameters after three Adam steps.
        for synced in [true, false] {
            let mut want = engine(Backend::Reference, &case, cfg);
            let mut got = engine(b, &case, cfg);
            for e in [&mut want, &mut got] {
                e.set_edge_mask(&case.mask).unwrap();
            }
            for (step, batch) in case.batches.iter().enumerate() {
                // Under `Skip`, the last step rebuilds the graph again: RCA's tensors step after
                // sitting one out, with their own step count.
                let learn = learn_every_step || step == 0 || (idle == AdamIdle::Skip && step == 2);
                if synced {
                    got.set_params(&want.params()).unwrap();
                }
                let lw = want.loss_and_grads(batch, learn).unwrap();
                let lg = got.loss_and_grads(batch, learn).unwrap();
                let what = format!("{b:?} step {step} (learn graph: {learn}, synced: {synced})");
                for (term, x, y) in [
                    ("total", lg.total(), lw.total()),
                    ("bpr", lg.bpr, lw.bpr),
                    ("cl_user", lg.cl_user, lw.cl_user),
                    ("cl_item", lg.cl_item, lw.cl_item),
                    ("reg", lg.reg, lw.reg),
                    ("modality", lg.modality, lw.modality),
                ] {
                    assert!((x - y).abs() <= TOL * y.abs().max(1e-3), "{what} loss {term}: {x} vs {y}");
                }
                if synced {
                    let null = null_directions(cfg);
                    assert_params_close(&format!("{what} gradient"), &got.grads(), &want.grads(), &[], &null);
                }
                match (got.item_graph(), want.item_graph()) {
                    (Some(g), Some(w)) => {
                        assert_eq!(g.row_offsets(), w.row_offsets(), "{what}: kNN row lengths differ");
                        assert_eq!(g.col_indices(), w.col_indices(), "{what}: kNN index sets differ");
                        if isolated && step == 0 {
                            for &(_, i) in zero_rows {
                                let o = w.row_offsets();
                                assert_eq!(o[i], o[i + 1], "{what}: zero item {i} has neighbours");
                                assert!(!w.col_indices().contains(&i), "{what}: zero item {i} is a neighbour");
                            }
                        }
                        let err = g.values().iter().zip(w.values()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                        assert!(err <= TOL, "{what}: item graph values differ by {err}");
                    }
                    (None, None) => {}
                    _ => panic!("{what}: one engine has an item graph, the other not"),
                }
                let quiet = |e: &dyn Engine| -> Vec<String> {
                    let zero = |t: &faer::Mat<f64>| (0..t.ncols()).all(|j| t.col_as_slice(j).iter().all(|&x| x == 0.0));
                    let g = e.grads();
                    g.tensors()
                        .into_iter()
                        .filter(|(_, t)| t.nrows() * t.ncols() > 0 && zero(t))
                        .map(|(n, _)| n)
                        .collect()
                };
                let before = (idle == AdamIdle::Skip)
                    .then(|| [(quiet(want.as_ref()), want.params()), (quiet(got.as_ref()), got.params())]);
                want.adam_step(1e-3, idle).unwrap();
                got.adam_step(1e-3, idle).unwrap();
                if let Some([(quiet_w, pw), (quiet_g, pg)]) = before {
                    assert_eq!(quiet_g, quiet_w, "{what}: the engines' tensors without gradient");
                    idle_steps += usize::from(!quiet_w.is_empty());
                    for (after, before, names) in [(want.params(), pw, quiet_w), (got.params(), pg, quiet_g)] {
                        for ((n, t), (_, t0)) in after.tensors().into_iter().zip(before.tensors()) {
                            assert!(!names.contains(&n) || t == t0, "{what}: {n} had no gradient and moved");
                        }
                    }
                }
            }
            if !synced {
                assert_params_close(
                    &format!("{b:?} params after 3 Adam steps"),
                    &got.params(),
                    &want.params(),
                    &adam_incomparable(cfg),
                    &[],
                );
            }
            // Scores on the full graph.
            want.prepare_scoring().unwrap();
            got.prepare_scoring().unwrap();
            let users: Vec<u32> = (0..case.m as u32).collect();
            let mut sw = vec![0f32; case.m * case.n];
            let mut sg = vec![0f32; case.m * case.n];
            want.score_block(&users, &mut sw).unwrap();
            got.score_block(&users, &mut sg).unwrap();
            // Per user, scores are compared up to a constant: rankings, BPR and every metric
            // ignore it, and in `crane-code` a shift shared by all items gets no gradient, so
            // Adam moves it by round-off-driven steps that differ between f32 and f64.
            for s in [&mut sw, &mut sg] {
                for row in s.chunks_mut(case.n) {
                    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / case.n as f64;
                    row.iter_mut().for_each(|v| *v -= mean as f32);
                }
            }
            let num: f64 = sw.iter().zip(&sg).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>().sqrt();
            let den: f64 = sw.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            assert!(num / den.max(1e-8) <= TOL, "{b:?}: scores differ by {:.3e}", num / den);
            check_ranking(b, got.as_ref(), &case);
        }
    }
    assert!(idle != AdamIdle::Skip || idle_steps > 0, "{b:?}: no step had a tensor without gradient");
}

/// The engine's own ranking (`rank_block`: on the device for the GPU engine, with the training
/// mask and the absent ids there) equals the evaluator's top-k of the same engine's scores, tie
/// order included; user 0 has all but two items masked, so its list is shorter than k.
fn check_ranking(b: Backend, eng: &dyn Engine, c: &Case) {
    let mut mask = vec![Vec::new(); c.m];
    for &(u, i) in &c.train {
        mask[u as usize].push(i);
    }
    mask[0] = (2..c.n as u32).collect();
    for m in &mut mask {
        m.sort_unstable();
        m.dedup();
    }
    let users: Vec<u32> = (0..c.m as u32).rev().collect();
    let k = 5.min(c.n);
    // The last id is absent (in no split): no user may be offered it.
    let absent = [c.n as u32 - 1];
    let both = crane::eval::Mask::new(&mask, &absent);
    let got = eng.rank_block(&users, both, c.n, k).unwrap();
    let want = crane::engine::rank_on_host(eng, &users, both, c.n, k).unwrap();
    assert_eq!(got, want, "{b:?}: rank_block differs from the host top-k of the same scores");
    assert!(got.iter().all(|r| !r.contains(&absent[0])), "{b:?}: an absent id was ranked");
    assert_eq!(got.last().map(Vec::len), Some(2), "{b:?}: user 0 has two unmasked items");
    let train_only = eng.rank_block(&users, crane::eval::Mask::train_only(&mask), c.n, k).unwrap();
    let host = crane::engine::rank_on_host(eng, &users, crane::eval::Mask::train_only(&mask), c.n, k).unwrap();
    assert_eq!(train_only, host);
}

/// One module per switch, one test per backend. Entries marked `gpu` also run on the GPU
/// engine (all of them now; an entry without the marker would have no GPU tests).
macro_rules! test_backends {
    ($($name:ident => $cfg:expr, $big:expr $(, $gpu:ident)?;)*) => {
        $(
            mod $name {
                use super::*;
                #[test]
                fn reference() { check_parity(Backend::Reference, &$cfg, $big) }
                #[test]
                fn cpu() { check_parity(Backend::Cpu, &$cfg, $big) }
                gpu_tests!($($gpu)?; $cfg, $big);
            }
        )*
    };
}

macro_rules! gpu_tests {
    (gpu; $cfg:expr, $big:expr) => {
        #[test]
        fn gpu_host() {
            check_parity(Backend::GpuHost, &$cfg, $big)
        }
        #[test]
        #[cfg_attr(not(cuda_driver_present), ignore = "no CUDA driver (libcuda.so) found at build time: needs a GPU")]
        fn gpu_cuda() {
            check_parity(Backend::GpuCuda, &$cfg, $big)
        }
    };
    (; $cfg:expr, $big:expr) => {};
}

fn with(f: impl FnOnce(&mut ModelConfig)) -> ModelConfig {
    let mut c = tiny_config();
    f(&mut c);
    c
}

/// `adam_idle = skip` (PyTorch's Adam over tensors whose gradient is `None`): the reference's
/// and the CPU engine's Adam skip the same tensors with the same per-tensor step counts; the
/// GPU engine refuses it (a new device reduction that no GPU has run).
mod parity_adam_skip {
    use super::*;
    #[test]
    fn reference() {
        check_parity_idle(Backend::Reference, &tiny_config(), false, AdamIdle::Skip)
    }
    #[test]
    fn cpu() {
        check_parity_idle(Backend::Cpu, &tiny_config(), false, AdamIdle::Skip)
    }
    #[test]
    fn gpu_host_refuses_it() {
        let case = make_case(40, &tiny_config(), false);
        let mut e = engine(Backend::GpuHost, &case, &tiny_config());
        e.loss_and_grads(&case.batches[0], true).unwrap();
        let before = e.params();
        let err = e.adam_step(1e-3, AdamIdle::Skip).unwrap_err().to_string();
        assert!(err.contains("adam_idle") && err.contains("CPU and reference engines only"), "{err}");
        assert_eq!(e.params(), before, "a refused step changes nothing");
    }
}

test_backends! {
    parity_default => tiny_config(), false, gpu;
    parity_larger_graph => tiny_config(), true, gpu;
    parity_leaky_relu => with(|c| c.sigma = Sigma::LeakyRelu(0.2)), false, gpu;
    parity_last_readout => with(|c| c.readout = Readout::Last), false, gpu;
    parity_average_profiles => with(|c| c.aggregation = Aggregation::Average), false, gpu;
    parity_max_profiles => with(|c| c.aggregation = Aggregation::Max), false, gpu;
    parity_attention_profiles => with(|c| c.aggregation = Aggregation::Attention), false, gpu;
    parity_fusion_concat => with(|c| c.fusion = Fusion::Concat), false, gpu;
    parity_fusion_sum => with(|c| c.fusion = Fusion::Sum), false, gpu;
    parity_fusion_visual => with(|c| c.fusion = Fusion::Visual), false, gpu;
    parity_fusion_text => with(|c| c.fusion = Fusion::Text), false, gpu;
    parity_fusion_average_graphs => with(|c| c.fusion = Fusion::AverageGraphs), false, gpu;
    parity_single_round => with(|c| c.rounds = 1), false, gpu;
    parity_wo_item_graph => with(|c| c.item_graph = false), false, gpu;
    parity_wo_item_graph_larger_graph => with(|c| c.item_graph = false), true, gpu;
    parity_wo_item_graph_leaky_relu => with(|c| { c.item_graph = false; c.sigma = Sigma::LeakyRelu(0.2); }), false, gpu;
    parity_wo_item_graph_last_readout => with(|c| { c.item_graph = false; c.readout = Readout::Last; }), false, gpu;
    parity_wo_item_graph_all_parameter_l2 => with(|c| {
        c.item_graph = false;
        c.regularisation = Regularisation::AllParameters;
    }), false, gpu;
    parity_wo_item_graph_wo_dual_fusion => with(|c| { c.item_graph = false; c.dual_fusion = false; }), false, gpu;
    parity_lightgcn => with(|c| {
        c.item_graph = false;
        c.gcn_weights = false;
        c.regularisation = Regularisation::BatchNorms;
        c.drop_edge = DropEdge::Off;
    }), true, gpu;
    parity_lightgcn_freedom_sampler => with(|c| {
        c.item_graph = false;
        c.gcn_weights = false;
        c.drop_edge = DropEdge::Freedom { keep_ratio: 0.7 };
        c.degree_source = DegreeSource::KeptGraph;
    }), false, gpu;
    parity_wo_cl => with(|c| c.contrastive = false), false, gpu;
    parity_wo_user_semantic => with(|c| { c.user_semantic = false; c.contrastive = false; }), false, gpu;
    parity_wo_gcn => with(|c| { c.ui_layers = 0; c.ii_layers = 0; }), false, gpu;
    parity_all_parameter_l2 => with(|c| c.regularisation = Regularisation::AllParameters), false, gpu;
    parity_literal_unscaled_rca => with(|c| c.rca_scale = RcaScale::None), false, gpu;
    parity_weightless_gcn => with(|c| c.gcn_weights = false), false, gpu;
    parity_bpr_mf => with(|c| { c.ui_layers = 0; c.item_graph = false; c.drop_edge = DropEdge::Off; }), false, gpu;
    parity_freedom_sampler => with(|c| { c.drop_edge = DropEdge::Freedom { keep_ratio: 0.7 }; c.degree_source = DegreeSource::KeptGraph; }), false, gpu;
    parity_rescaled_drop_edge => with(|c| c.drop_edge = DropEdge::BernoulliRescaled), false, gpu;
    parity_mmrec_norm_penalty => with(|c| c.regularisation = Regularisation::BatchNorms), false, gpu;
    parity_wo_dual_fusion => with(|c| c.dual_fusion = false), false, gpu;
    parity_modality_bpr => with(|c| { c.feature_dim = c.embedding_dim; c.modality_bpr = 0.5; }), false, gpu;
    parity_authors_code_attention => authors_code(), true, gpu;
    // With the contrastive terms on, the attention's value and output biases reach the loss
    // (they are null directions under BPR alone), so their gradients are compared in full.
    parity_code_attention_with_contrastive => with(|c| {
        c.item_graph_source = ItemGraphSource::RawFeatures { image_weight: 0.1 };
        c.item_graph_input = ItemGraphInput::Attention;
        c.attention_heads = 2;
        c.feature_dim = c.embedding_dim;
        c.gcn_weights = false;
    }), false, gpu;
    parity_freedom_baseline => freedom(), true, gpu;
    // FREEDOM with its frozen graph read from kNN files (`ItemGraphSource::Files`): the
    // engines take the given CSR where they would build the raw-feature graph.
    parity_freedom_file_graph => with(|c| {
        *c = freedom();
        c.item_graph_source = ItemGraphSource::Files { dir: "fixture".into(), image_weight: 0.1 };
    }), true, gpu;
    parity_file_graph_user_semantic_readout => with(|c| {
        c.item_graph_source = ItemGraphSource::Files { dir: "fixture".into(), image_weight: 0.3 };
        c.item_graph_input = ItemGraphInput::Readout;
        c.user_semantic = true;
        c.contrastive = true;
    }), false, gpu;
    parity_raw_graph_readout_input_late_fusion => with(|c| {
        c.item_graph_source = ItemGraphSource::RawFeatures { image_weight: 0.3 };
        c.item_graph_input = ItemGraphInput::Readout;
        c.user_semantic = true;
        c.contrastive = false;
        c.dual_fusion = false;
        c.ii_layers = 2;
    }), false, gpu;
    // Issue 25: the raw feature tables as parameters, and the authors' second projection.
    parity_trained_features => with(|c| c.train_features = true), false, gpu;
    parity_freedom_trained_features => with(|c| {
        *c = freedom();
        c.train_features = true;
    }), true, gpu;
    parity_authors_code_two_projections_trained_features => with(|c| {
        *c = authors_code();
        c.attention_projection = true;
        c.train_features = true;
    }), true, gpu;
    parity_authors_code_second_projection => with(|c| {
        *c = authors_code();
        c.attention_projection = true;
    }), true, gpu;
    parity_authors_code_trained_features => with(|c| {
        *c = authors_code();
        c.train_features = true;
    }), true, gpu;
    parity_raw_graph_user_semantic_modality_bpr => with(|c| {
        c.item_graph_source = ItemGraphSource::RawFeatures { image_weight: 0.1 };
        c.item_graph_input = ItemGraphInput::Embeddings;
        c.user_semantic = true;
        c.contrastive = false;
        c.feature_dim = c.embedding_dim;
        c.modality_bpr = 0.5;
    }), false, gpu;
}

/// The authors' code on the tiny graph (as `parity_authors_code_attention`).
fn authors_code() -> ModelConfig {
    with(|c| {
        c.item_graph_source = ItemGraphSource::RawFeatures { image_weight: 0.1 };
        c.item_graph_input = ItemGraphInput::Attention;
        c.attention_heads = 2;
        c.user_semantic = false;
        c.contrastive = false;
        c.feature_dim = c.embedding_dim;
        c.gcn_weights = false;
        c.lambda = 0.0;
        c.drop_edge = DropEdge::Freedom { keep_ratio: 0.7 };
        c.degree_source = DegreeSource::KeptGraph;
    })
}

/// FREEDOM's preset on the tiny graph (as `parity_freedom_baseline`).
fn freedom() -> ModelConfig {
    with(|c| {
        c.item_graph_source = ItemGraphSource::RawFeatures { image_weight: 0.1 };
        c.item_graph_input = ItemGraphInput::Embeddings;
        c.user_semantic = false;
        c.contrastive = false;
        c.feature_dim = c.embedding_dim;
        c.modality_bpr = 0.3;
        c.gcn_weights = false;
        c.regularisation = Regularisation::BatchNorms;
        c.drop_edge = DropEdge::Freedom { keep_ratio: 0.7 };
        c.degree_source = DegreeSource::KeptGraph;
    })
}

/// Zero feature rows (SPEC.md, Eq. 14: cosine 0 with every item, nobody's neighbour, an empty
/// kNN row), one module per case and one test per backend: `(modality, item)` rows set to 0,
/// and whether the item must be isolated in the first item graph.
macro_rules! test_backends_zero_rows {
    ($($name:ident => $cfg:expr, $zero:expr, $isolated:expr;)*) => {
        $(
            mod $name {
                use super::*;
                #[test]
                fn reference() { check_parity_with_zero_rows(Backend::Reference, &$cfg, false, &$zero, $isolated) }
                #[test]
                fn cpu() { check_parity_with_zero_rows(Backend::Cpu, &$cfg, false, &$zero, $isolated) }
                #[test]
                fn gpu_host() { check_parity_with_zero_rows(Backend::GpuHost, &$cfg, false, &$zero, $isolated) }
                #[test]
                #[cfg_attr(
                    not(cuda_driver_present),
                    ignore = "no CUDA driver (libcuda.so) found at build time: needs a GPU"
                )]
                fn gpu_cuda() { check_parity_with_zero_rows(Backend::GpuCuda, &$cfg, false, &$zero, $isolated) }
            }
        )*
    };
}

test_backends_zero_rows! {
    // FREEDOM's frozen raw-feature graph: item 3 keeps only its text neighbours; zero in both
    // modalities, it is isolated (h_3 = 0).
    parity_zero_row_freedom => freedom(), [(0, 3)], false;
    parity_zero_row_freedom_both_modalities => freedom(), [(0, 3), (1, 3)], true;
    // CRANE (the paper's learned graph): X_att's row of item 3 stays non-zero through the text
    // features and RCA; zero in both modalities, its X̂ rows are the projection biases, 0 at
    // init, and so is its row of X_att at the first step (RCA maps a zero row to a zero row).
    parity_zero_row_crane => tiny_config(), [(0, 3)], false;
    parity_zero_row_crane_both_modalities => tiny_config(), [(0, 3), (1, 3)], true;
    // CRANE-V: X̂^v's row of item 3 is its projection bias, 0 at init: a zero row of the learned
    // graph's input at the first step (the engines' masked top-k and zero-row backward run).
    parity_zero_row_fusion_visual => with(|c| c.fusion = Fusion::Visual), [(0, 3)], true;
    parity_zero_row_fusion_average_graphs => with(|c| c.fusion = Fusion::AverageGraphs), [(0, 3), (1, 3)], true;
}

#[test]
fn fast_tanh_is_within_5e7_of_tanh() {
    let mut worst: f64 = 0.0;
    let mut x = -12.0f32;
    while x < 12.0 {
        let err = (crane::engine::cpu::ops::fast_tanh(x) as f64 - (x as f64).tanh()).abs();
        worst = worst.max(err);
        x += 1.3e-4;
    }
    assert!(worst <= 5e-7, "max |fast_tanh - tanh| = {worst:e}");
    assert_eq!(crane::engine::cpu::ops::fast_tanh(0.0), 0.0);
    assert_eq!(crane::engine::cpu::ops::fast_tanh(1e-5), 1e-5);
}

#[test]
fn fast_exp_is_within_3e7_relative_of_exp() {
    use crane::engine::cpu::ops::fast_exp;
    let mut worst: f64 = 0.0;
    let mut x = -87.0f32;
    while x < 88.0 {
        let want = (x as f64).exp();
        worst = worst.max(((fast_exp(x) as f64) - want).abs() / want);
        x += 7.3e-4;
    }
    assert!(worst <= 3e-7, "max relative error {worst:e}");
    assert_eq!(fast_exp(0.0), 1.0);
    assert!(fast_exp(-1e4) >= 0.0 && fast_exp(-1e4) < 1e-37, "clamped below, no NaN");
}

#[test]
fn blocked_correlation_equals_dense_for_every_block_size() {
    use crane::engine::cpu::ops::{fast_tanh, mm, Dense};
    use crane::engine::cpu::rca::{correlate_blocked, correlate_blocked_backward};
    let n = 23;
    let x = Dense::from_fn(n, 4, |i, j| ((i * 7 + j * 3) % 11) as f32 / 11.0 - 0.5);
    let p = Dense::from_fn(n, 4, |i, j| ((i * 5 + j * 2) % 13) as f32 / 13.0 - 0.5);
    let dg = Dense::from_fn(n, 4, |i, j| ((i + j) % 5) as f32 / 5.0 - 0.4);
    let mut c = mm(&x, false, &p, true);
    c.data.iter_mut().for_each(|v| *v = fast_tanh(*v));
    let dense = mm(&c, false, &x, false);
    let (dx1, dp1) = correlate_blocked_backward(&x, &p, &dg, n);
    for block in [1, 2, 5, 22, 23] {
        let g = correlate_blocked(&x, &p, block, 0);
        let err = g.data.iter().zip(&dense.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-5, "block {block}: forward differs by {err}");
        // The last round's forward: only rows from 11 on (the items) are computed, the same values.
        let tail = correlate_blocked(&x, &p, block, 11);
        assert!(tail.data[..11 * 4].iter().all(|&v| v == 0.0), "block {block}: rows before `from` computed");
        let err =
            tail.data[11 * 4..].iter().zip(&dense.data[11 * 4..]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-5, "block {block}, from 11: forward differs by {err}");
        let (dx, dp) = correlate_blocked_backward(&x, &p, &dg, block);
        let e1 = dx.data.iter().zip(&dx1.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let e2 = dp.data.iter().zip(&dp1.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(e1 < 1e-5 && e2 < 1e-5, "block {block}: backward differs by {e1}, {e2}");
    }
    // The last round's upstream gradient: zero on the first (user) rows, whose blocks the
    // backward skips; the result equals the one-block product, which skips nothing.
    let dg0 = Dense::from_fn(n, 4, |i, j| if i < 11 { 0.0 } else { ((i + j) % 5) as f32 / 5.0 - 0.4 });
    let (dx1, dp1) = correlate_blocked_backward(&x, &p, &dg0, n);
    assert!(dx1.data.iter().any(|&v| v != 0.0) && dp1.data.iter().any(|&v| v != 0.0));
    for block in [1, 2, 5, 11, 12] {
        let (dx, dp) = correlate_blocked_backward(&x, &p, &dg0, block);
        let e1 = dx.data.iter().zip(&dx1.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let e2 = dp.data.iter().zip(&dp1.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(e1 < 1e-5 && e2 < 1e-5, "block {block}, zero user rows: backward differs by {e1}, {e2}");
    }
}

/// The last round computed from the item rows only (`rca::forward`'s `needed_from`) gives the
/// same bits as computing every row: the item rows of X_att, and every gradient of the backward
/// from an upstream gradient that is zero on the user rows (what Eq. (14) gives it).
#[test]
fn rca_last_round_from_the_item_rows_is_bit_identical() {
    use crane::engine::cpu::ops::Dense;
    use crane::engine::cpu::rca::{backward, forward, Theta, ThetaGrads};
    let (n, m, f) = (37, 23, 4);
    let val = |a: usize, b: usize, s: usize| ((a * 7 + b * 3 + s) % 17) as f32 / 17.0 - 0.5;
    let w = |r: usize, c: usize, s: usize| Dense::from_fn(r, c, |i, j| 0.4 * val(i, j, s));
    let (xv, xt) = (Dense::from_fn(n, f, |i, j| val(i, j, 1)), Dense::from_fn(n, f, |i, j| val(i, j, 2)));
    let (w_tr, b_tr) = (w(2 * f, f, 3), w(1, f, 4));
    let (w_m, w_a, w_f) = ([w(f, f, 5), w(f, f, 6)], [w(f, f, 7), w(f, f, 8)], [w(f, f, 9), w(f, f, 10)]);
    let th = Theta {
        w_tr: &w_tr,
        b_tr: &b_tr,
        w_m: [&w_m[0], &w_m[1]],
        w_a: [&w_a[0], &w_a[1]],
        w_f: [&w_f[0], &w_f[1]],
        scale: 0.3,
    };
    let d = Dense::from_fn(n, 2 * f, |i, j| if i < m { 0.0 } else { val(i, j, 11) });
    let zeros = || ThetaGrads {
        w_tr: Dense::zeros(2 * f, f),
        b_tr: Dense::zeros(1, f),
        w_m: [Dense::zeros(f, f), Dense::zeros(f, f)],
        w_a: [Dense::zeros(f, f), Dense::zeros(f, f)],
        w_f: [Dense::zeros(f, f), Dense::zeros(f, f)],
    };
    let bits = |d: &Dense| d.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for rounds in [1, 2, 3] {
        for block in [5, 16, 37] {
            let (all, ca) = forward(&xv, &xt, &th, rounds, block, 0);
            let (items, ci) = forward(&xv, &xt, &th, rounds, block, m);
            assert_eq!(bits(&all.rows_range(m, n)), bits(&items.rows_range(m, n)), "R {rounds}, block {block}: X_att");
            let (mut ga, mut gi) = (zeros(), zeros());
            let (dva, dta) = backward(&th, &ca, &d, f, &mut ga, block);
            let (dvi, dti) = backward(&th, &ci, &d, f, &mut gi, block);
            let pairs = [(&dva, &dvi), (&dta, &dti), (&ga.w_tr, &gi.w_tr), (&ga.b_tr, &gi.b_tr)].into_iter().chain(
                (0..2).flat_map(|k| [(&ga.w_m[k], &gi.w_m[k]), (&ga.w_a[k], &gi.w_a[k]), (&ga.w_f[k], &gi.w_f[k])]),
            );
            for (k, (a, b)) in pairs.enumerate() {
                assert_eq!(bits(a), bits(b), "R {rounds}, block {block}: gradient {k}");
            }
        }
    }
}

#[test]
fn tall_transposed_product_equals_the_plain_one() {
    use crane::engine::cpu::ops::{mm, mm_tn_tall, Dense};
    for rows in [1, 2047, 2048, 2049, 9001] {
        let a = Dense::from_fn(rows, 5, |i, j| ((i * 7 + j * 3) % 17) as f32 / 17.0 - 0.5);
        let b = Dense::from_fn(rows, 3, |i, j| ((i * 5 + j) % 13) as f32 / 13.0 - 0.5);
        let want = mm(&a, true, &b, false);
        let got = mm_tn_tall(&a, &b);
        assert_eq!((got.rows, got.cols), (5, 3));
        let scale = want.data.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
        let err = got.data.iter().zip(&want.data).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(err <= 1e-5 * scale * rows as f32 / 100.0 + 1e-6, "rows {rows}: differs by {err}");
        assert_eq!(got, mm_tn_tall(&a, &b), "deterministic");
    }
}

/// The fused, tiled attention of the CPU engine equals the dense reference for every query
/// block and key tile (tiles smaller than N exercise the online softmax across tiles), forward
/// and backward (the authors' code holds the [N, N] matrices; crane never does). The second
/// shape has the heads of width 16 of crane-code, so the register-blocked paths run full.
#[test]
fn blocked_attention_equals_dense_reference_for_every_block_size() {
    use crane::engine::cpu::attention::{backward_tiled, forward_tiled, Mha};
    use crane::engine::cpu::ops::Dense;
    use crane_reference::attention::{mha, mha_backward, MhaParams};
    // (N, d, heads, [(query rows per block, keys per tile)]).
    type Shape = (usize, usize, usize, &'static [(usize, usize)]);
    let shapes: [Shape; 2] = [
        (23, 8, 4, &[(1, 1), (2, 3), (5, 8), (22, 23), (23, 256), (64, 5), (7, 22)]),
        (150, 64, 4, &[(7, 33), (128, 256), (150, 64), (3, 150)]),
    ];
    for (n, d, heads, tilings) in shapes {
        let mut r = ChaCha8Rng::seed_from_u64(17);
        let mut rnd = |rows: usize, cols: usize, s: f64| {
            faer::Mat::<f64>::from_fn(rows, cols, |_, _| s * (r.random::<f64>() - 0.5))
        };
        let x = rnd(n, d, 2.0);
        let w: [faer::Mat<f64>; 4] = std::array::from_fn(|_| rnd(d, d, 1.0));
        let b: [faer::Mat<f64>; 4] = std::array::from_fn(|_| rnd(1, d, 0.5));
        let dy = rnd(n, d, 1.0);
        let rp = MhaParams { w: std::array::from_fn(|k| &w[k]), b: std::array::from_fn(|k| &b[k]), heads };
        let (y_ref, cache) = mha(&x, &rp);
        let (dx_ref, dw_ref, db_ref) = mha_backward(&rp, &cache, &dy);
        let (wf, bf): (Vec<Dense>, Vec<Dense>) =
            (w.iter().map(Dense::from_mat).collect(), b.iter().map(Dense::from_mat).collect());
        let p = Mha { w: std::array::from_fn(|k| &wf[k]), b: std::array::from_fn(|k| &bf[k]), heads };
        let close = |what: String, got: &Dense, want: &faer::Mat<f64>| {
            let err = rel_error(&got.to_mat(), want);
            assert!(err <= TOL, "N = {n}, {what}: relative error {err:.2e}");
        };
        for &(block, keys) in tilings {
            let (y, c) = forward_tiled(&Dense::from_mat(&x), &p, block, keys);
            close(format!("block {block}, tile {keys}: y"), &y, &y_ref);
            let (dx, dw, db) = backward_tiled(&p, &c, &Dense::from_mat(&dy), block, keys);
            close(format!("block {block}, tile {keys}: dx"), &dx, &dx_ref);
            for k in 0..4 {
                close(format!("block {block}, tile {keys}: dW[{k}]"), &dw[k], &dw_ref[k]);
                if k != 1 {
                    close(format!("block {block}, tile {keys}: db[{k}]"), &db[k], &db_ref[k]);
                } else {
                    let worst = db[1].data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    assert!(worst < 1e-5, "db_k is zero up to round-off, got {worst}");
                }
            }
        }
    }
}

/// The attention's result does not depend on the thread count: its backward sums the key and
/// value gradients of fixed groups of row blocks in a fixed order.
#[test]
fn tiled_attention_is_bit_identical_for_any_thread_count() {
    use crane::engine::cpu::attention::{backward, forward, Mha};
    use crane::engine::cpu::ops::Dense;
    let (n, d, heads) = (301, 64, 4);
    let mut r = ChaCha8Rng::seed_from_u64(5);
    let mut rnd = |rows: usize, cols: usize| {
        let v: Vec<f32> = (0..rows * cols).map(|_| r.random::<f32>() - 0.5).collect();
        Dense::from_fn(rows, cols, |i, j| v[i * cols + j])
    };
    let x = rnd(n, d);
    let w: Vec<Dense> = (0..4).map(|_| rnd(d, d)).collect();
    let b: Vec<Dense> = (0..4).map(|_| rnd(1, d)).collect();
    let dy = rnd(n, d);
    let p = Mha { w: std::array::from_fn(|k| &w[k]), b: std::array::from_fn(|k| &b[k]), heads };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let (y, c) = forward(&x, &p, 16);
            let (dx, dw, db) = backward(&p, &c, &dy, 16);
            (y, dx, dw, db)
        })
    };
    let one = run(1);
    for threads in [2, 3] {
        let many = run(threads);
        assert!(one.0 == many.0 && one.1 == many.1, "{threads} threads: y or dx differ");
        assert!(one.2.iter().zip(&many.2).all(|(a, b)| a == b), "{threads} threads: dW differ");
        assert!(one.3.iter().zip(&many.3).all(|(a, b)| a == b), "{threads} threads: db differ");
    }
}
