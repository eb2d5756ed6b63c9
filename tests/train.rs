//! Configs, presets, and end-to-end training on the bundled synthetic data.

mod common;
use crane::config::{dataset_preset, resolve, TrainConfig};
use crane::data::{load_dataset, synth, LoadOptions};
use crane::engine::GraphRefresh;
use crane::train::train;
use crane_reference::config::{DropEdge, ItemGraphInput, ItemGraphSource, Regularisation};

#[test]
fn presets_carry_table_3() {
    // (dataset, R, k, lr, λ, τ, β)
    let table = [
        ("baby", 3, 15, 1e-4, 1e-3, 0.6, 0.8),
        ("sports", 2, 15, 5e-5, 1e-3, 0.5, 0.7),
        ("clothing", 3, 10, 1e-4, 1e-3, 0.4, 0.7),
        ("electronics", 3, 10, 1e-4, 5e-4, 0.5, 0.6),
    ];
    for (name, r, k, lr, lambda, tau, beta) in table {
        let c = resolve(dataset_preset(name).unwrap(), name, &[]).unwrap();
        assert_eq!((c.model.rounds, c.model.knn_k, c.model.ui_layers, c.model.ii_layers), (r, k, 2, 1), "{name}");
        assert_eq!((c.lr, c.model.lambda, c.model.tau, c.model.beta), (lr, lambda, tau, beta), "{name}");
        assert_eq!((c.batch_size, c.epochs, c.patience, c.model.embedding_dim), (1024, 250, 5, 64), "{name}");
    }
    assert_eq!(TrainConfig::default().model, crane_reference::ModelConfig::default());
}

#[test]
fn set_overrides_any_field_and_refuses_unknown_ones() {
    let base = dataset_preset("baby").unwrap();
    let sets =
        ["model.knn_k=7", "refresh=every_step", "model.fusion=concat", "lr=0.01", "ks=[10, 20]"].map(String::from);
    let c = resolve(base, "baby", &sets).unwrap();
    assert_eq!(c.model.knn_k, 7);
    assert_eq!(c.refresh, GraphRefresh::EveryStep);
    assert_eq!(c.model.fusion, crane_reference::config::Fusion::Concat);
    assert_eq!((c.lr, c.ks.clone()), (0.01, vec![10, 20]));
    let e = resolve(base, "baby", &["model.knn=3".to_string()]).unwrap_err().to_string();
    assert!(e.contains("unknown field `knn`") && e.contains("did you mean `knn_k`?"), "{e}");
    // Each error names the key at fault, not the preset.
    let err = |set: &str| resolve(base, "baby", &[set.to_string()]).unwrap_err().to_string();
    assert!(err("lr=abc").starts_with("invalid lr: invalid type: string \"abc\""), "{}", err("lr=abc"));
    assert!(err("model.knn_k=x").starts_with("invalid model.knn_k:"), "{}", err("model.knn_k=x"));
    assert!(err("refresh=every_stp").contains("did you mean `every_step`?"), "{}", err("refresh=every_stp"));
    assert!(!err("model.drop_edge=maybe").contains("did you mean"), "nothing close to `maybe`");
    assert_eq!(err("epochs=0"), "invalid epochs: must be at least 1");
    assert!(err("ks=20").contains("--set 'ks=[10,20]'"), "{}", err("ks=20"));
    assert!(err("ks=[]").starts_with("invalid ks: needs at least one"), "{}", err("ks=[]"));
    // A setting written at the wrong level is named as it should be written.
    assert!(err("rounds=3").contains("did you mean `model.rounds`?"), "{}", err("rounds=3"));
    assert!(err("model.epochs=3").contains("did you mean `epochs`?"), "{}", err("model.epochs=3"));
    // A config file is named beside the key.
    let e = resolve("lr = \"x\"", "my.toml", &[]).unwrap_err().to_string();
    assert!(e.starts_with("invalid lr (in my.toml): invalid type"), "{e}");
    // What differs between two configs: enums shown whole, strings unquoted.
    let a = resolve(base, "baby", &[]).unwrap();
    let b = resolve(base, "baby", &["refresh={ every_n_steps = 18 }".into(), "model.knn_k=7".into()]).unwrap();
    assert_eq!(
        crane::config::differences(&a, &b),
        "model.knn_k: 15 → 7, refresh: every_epoch → {\"every_n_steps\":18}"
    );
    assert_eq!(crane::config::differences(&a, &a), "no setting differs");
    let e = resolve(base, "baby", &["lr=-1".to_string()]).unwrap_err().to_string();
    assert!(e.contains("invalid lr"), "{e}");
    let e = resolve(base, "baby", &["model_preset=svd".to_string()]).unwrap_err().to_string();
    assert!(e.contains("`svd` is not one of"), "{e}");
    let e = resolve(base, "baby", &["nokey".to_string()]).unwrap_err().to_string();
    assert!(e.contains("not key=value"), "{e}");
    let lg = resolve(base, "baby", &["model_preset=lightgcn".to_string()]).unwrap();
    assert!(!lg.model.gcn_weights && !lg.model.item_graph);
    assert_eq!(lg.model.regularisation, Regularisation::BatchNorms, "MMRec's unsquared penalty");
    assert_eq!((lg.lr, lg.batch_size, lg.patience), (1e-3, 2048, 20), "MMRec's training settings");
    // The preset lies under the overrides, whatever their order.
    let sets = ["model.lambda=0.5", "model_preset=lightgcn", "lr=0.01"].map(String::from);
    let lg = resolve(base, "baby", &sets).unwrap();
    assert_eq!((lg.model.lambda, lg.lr), (0.5, 0.01));
    let fr = resolve(base, "baby", &["model_preset=freedom".to_string()]).unwrap();
    let m = &fr.model;
    assert_eq!(m.item_graph_source, ItemGraphSource::RawFeatures { image_weight: 0.1 });
    assert_eq!((m.item_graph_input, m.user_semantic, m.contrastive), (ItemGraphInput::Embeddings, false, false));
    assert_eq!((m.knn_k, m.ui_layers, m.lambda, m.modality_bpr), (10, 2, 0.0, 1e-4));
    assert_eq!(m.drop_edge, DropEdge::Freedom { keep_ratio: 0.2 });
    assert_eq!(fr.refresh, GraphRefresh::Frozen);
    let cc = resolve(base, "baby", &["model_preset=crane-code".to_string()]).unwrap();
    assert_eq!(
        (cc.model.item_graph_input, cc.model.attention_heads, cc.model.modality_bpr),
        (ItemGraphInput::Attention, 4, 0.0)
    );
    // The paper's model is the dataset preset untouched.
    assert_eq!(
        resolve(base, "baby", &[]).unwrap().model,
        resolve(base, "baby", &["model_preset=crane".into()]).unwrap().model
    );
}

/// The tiny synthetic dataset, and its folder (removed when dropped: keep it while the data's
/// files may be read).
fn tiny_dataset(tag: &str) -> (crane::data::Dataset, common::Scratch) {
    let dir = common::scratch(&format!("train-{tag}"));
    let p = synth::preset("tiny").unwrap();
    synth::write(&dir, "tiny", &synth::generate(&p, 2024)).unwrap();
    (load_dataset(&dir, &LoadOptions::default()).unwrap(), dir)
}

#[test]
fn crane_beats_popularity_on_tiny_and_is_deterministic() {
    let (ds, _data) = tiny_dataset("crane");
    let cfg = resolve(dataset_preset("tiny").unwrap(), "tiny", &["epochs=12".to_string()]).unwrap();
    let out = common::scratch("train-out");
    let a = train(&ds, &cfg, Some(&out), false).unwrap();
    let crane_r20 = a.test.get("recall", 20).unwrap();
    let pop_r20 = a.popularity_test.get("recall", 20).unwrap();
    assert!(crane_r20 > pop_r20 + 0.03, "CRANE test R@20 {crane_r20} vs popularity {pop_r20}");
    for f in ["results.json", "history.jsonl", "history.csv"] {
        assert!(out.join(f).exists(), "{f} written");
    }
    let b = train(&ds, &cfg, None, false).unwrap();
    assert_eq!(a.test, b.test, "same seed and threads, same result");
    assert_eq!(
        a.history.iter().map(|h| h.loss).collect::<Vec<_>>(),
        b.history.iter().map(|h| h.loss).collect::<Vec<_>>()
    );
}

#[test]
fn baselines_and_refresh_modes_train() {
    let (ds, _data) = tiny_dataset("baselines");
    for sets in [
        vec!["model_preset=bpr", "epochs=2"],
        vec!["model_preset=lightgcn", "epochs=2"],
        vec!["model_preset=freedom", "epochs=2"],
        vec!["model_preset=crane-code", "epochs=1"],
        vec!["model.dual_fusion=false", "epochs=2"],
        vec!["refresh=every_step", "epochs=1"],
        vec!["refresh=frozen", "epochs=1", "model.fusion=average_graphs"],
        vec!["engine=reference", "epochs=1", "model.embedding_dim=8", "model.feature_dim=4", "model.joint_dim=4"],
    ] {
        let sets: Vec<String> = sets.into_iter().map(String::from).collect();
        let cfg = resolve(dataset_preset("tiny").unwrap(), "tiny", &sets).unwrap();
        let r = train(&ds, &cfg, None, false).unwrap_or_else(|e| panic!("{sets:?}: {e}"));
        assert!(r.test.get("recall", 20).unwrap() > 0.0, "{sets:?}");
        assert!(r.history.iter().all(|h| h.loss.is_finite()));
    }
}

#[test]
fn resume_after_a_kill_ends_as_the_uninterrupted_run() {
    // The CPU engine's state is written as F32 tensors, the reference's as F64: both exact.
    for engine in ["cpu", "reference"] {
        resume_matches_uninterrupted(engine);
    }
}

fn resume_matches_uninterrupted(engine: &str) {
    let (ds, _data) = tiny_dataset(&format!("resume-{engine}"));
    let sets = ["epochs=5".to_string(), "patience=10".to_string(), format!("engine={engine}")];
    let cfg = resolve(dataset_preset("tiny").unwrap(), "tiny", &sets).unwrap();
    let base = common::scratch(&format!("resume-{engine}"));
    let (a_dir, b_dir) = (base.join("a"), base.join("b"));
    let a = train(&ds, &cfg, Some(&a_dir), false).unwrap();
    let first = crane::train::train_with(&ds, &cfg, Some(&b_dir), false, false, Some(2)).unwrap();
    assert_eq!(first.epochs_run, 2, "the simulated kill stops after two epochs");
    let b = crane::train::train_with(&ds, &cfg, Some(&b_dir), false, true, None).unwrap();
    assert_eq!(b.epochs_run, 5);
    assert_eq!(a.test, b.test);
    assert_eq!(a.best_epoch, b.best_epoch);
    let losses = |r: &crane::train::RunResult| r.history.iter().map(|h| h.loss).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b), "every epoch's loss matches");
    // The best checkpoints hold identical parameters (the metadata's key order may differ).
    let template = crane::train::build_engine(&ds, &cfg).unwrap().params();
    let (pa, ma) = crane::checkpoint::load(&a_dir.join("checkpoint.safetensors"), &template).unwrap();
    let (pb, mb) = crane::checkpoint::load(&b_dir.join("checkpoint.safetensors"), &template).unwrap();
    assert_eq!(pa, pb);
    assert_eq!((ma.epoch, ma.config), (mb.epoch, mb.config));
    // A different config is refused instead of silently mixed; only `epochs` may change (a
    // finished run continued further, as successive halving's next rung does).
    let sets = |extra: &str| {
        vec!["epochs=5".to_string(), "patience=10".to_string(), format!("engine={engine}"), extra.to_string()]
    };
    let other = resolve(dataset_preset("tiny").unwrap(), "tiny", &sets("lr=0.002")).unwrap();
    let manifest = std::fs::read(b_dir.join("manifest.json")).unwrap();
    let e = crane::train::train_with(&ds, &other, Some(&b_dir), false, true, None).unwrap_err().to_string();
    assert!(e.contains("other settings (lr: 0.001 → 0.002)") && e.contains("only `epochs` may change"), "{e}");
    // A smaller patience is refused (it cannot undo improvements found after it ran out) ...
    let impatient = resolve(dataset_preset("tiny").unwrap(), "tiny", &sets("patience=0")).unwrap();
    let e = crane::train::train_with(&ds, &impatient, Some(&b_dir), false, true, None).unwrap_err().to_string();
    assert!(e.contains("patience: 10 → 0") && e.contains("`patience` may grow"), "{e}");
    assert_eq!(std::fs::read(b_dir.join("manifest.json")).unwrap(), manifest, "a refused resume rewrites nothing");
    let longer = resolve(dataset_preset("tiny").unwrap(), "tiny", &sets("epochs=6")).unwrap();
    let c = crane::train::train_with(&ds, &longer, Some(&b_dir), false, true, None).unwrap();
    assert_eq!(c.epochs_run, 6, "continued by one epoch");
    assert_eq!(losses(&c)[..5], losses(&b)[..], "the first five epochs are the resumed run's");
    // Resuming where nothing was saved trains from epoch 0: the uninterrupted run, not an error.
    let fresh = crane::train::train_with(&ds, &cfg, Some(&base.join("c")), false, true, None).unwrap();
    assert_eq!((fresh.epochs_run, losses(&fresh)), (5, losses(&a)), "--resume without a state file");
    // Seconds per epoch: the training time (summed over the resumed parts too) per epoch run.
    let total: f64 = b.history.iter().map(|h| h.seconds_train).sum();
    assert!((b.seconds_per_epoch * 5.0 - total).abs() <= 1e-6 * total.max(1e-3), "{} vs {total}", b.seconds_per_epoch);
}

/// `adam_idle = skip` keeps a step count per tensor (RCA's tensors sit out every batch but an
/// epoch's first): the state file carries them (`adam_skipped`), and a run resumed from it ends
/// as the uninterrupted one; with every tensor stepped (the default) the run differs.
#[test]
fn resume_with_adam_skip_ends_as_the_uninterrupted_run() {
    for engine in ["cpu", "reference"] {
        let (ds, _data) = tiny_dataset(&format!("adam-skip-{engine}"));
        let mut sets: Vec<String> =
            ["epochs=4", "patience=10", "adam_idle=skip"].into_iter().map(String::from).collect();
        sets.push(format!("engine={engine}"));
        if engine == "reference" {
            sets.extend(["model.embedding_dim=8", "model.feature_dim=4", "model.joint_dim=4"].map(String::from));
        }
        let cfg = resolve(dataset_preset("tiny").unwrap(), "tiny", &sets).unwrap();
        let base = common::scratch(&format!("adam-skip-{engine}"));
        let a = train(&ds, &cfg, Some(&base.join("a")), false).unwrap();
        let b_dir = base.join("b");
        crane::train::train_with(&ds, &cfg, Some(&b_dir), false, false, Some(2)).unwrap();
        let state = std::fs::read(b_dir.join("state.safetensors")).unwrap();
        let header_len = u64::from_le_bytes(state[..8].try_into().unwrap()) as usize;
        let header = String::from_utf8_lossy(&state[8..8 + header_len]).to_string();
        assert!(header.contains("adam_skipped"), "{engine}: the state names the steps each tensor sat out");
        // A count for a tensor the model does not have is refused, naming it (a copy of the
        // state with the first name in `adam_skipped` changed, same length).
        let at = 8 + header.find("\"adam_skipped\":\"{\\\"").unwrap() + "\"adam_skipped\":\"{\\\"".len();
        let mut bad = state.clone();
        bad[at] = b'Z';
        let bad_dir = base.join("bad");
        std::fs::create_dir_all(&bad_dir).unwrap();
        for f in ["manifest.json", "history.jsonl", "history.csv", "checkpoint.safetensors"] {
            if b_dir.join(f).exists() {
                std::fs::copy(b_dir.join(f), bad_dir.join(f)).unwrap();
            }
        }
        std::fs::write(bad_dir.join("state.safetensors"), &bad).unwrap();
        let e = crane::train::train_with(&ds, &cfg, Some(&bad_dir), false, true, None).unwrap_err().to_string();
        assert!(e.contains("state.safetensors") && e.contains("which this model does not have"), "{engine}: {e}");
        let b = crane::train::train_with(&ds, &cfg, Some(&b_dir), false, true, None).unwrap();
        let losses = |r: &crane::train::RunResult| r.history.iter().map(|h| h.loss).collect::<Vec<_>>();
        assert_eq!((losses(&a), &a.test), (losses(&b), &b.test), "{engine}: resumed = uninterrupted");
        let template = crane::train::build_engine(&ds, &cfg).unwrap().params();
        let (pa, _) = crane::checkpoint::load(&base.join("a").join("checkpoint.safetensors"), &template).unwrap();
        let (pb, _) = crane::checkpoint::load(&b_dir.join("checkpoint.safetensors"), &template).unwrap();
        assert_eq!(pa, pb, "{engine}: the best checkpoints' parameters");
        // An Adam state whose tensor sat out more steps than were taken is refused.
        let mut eng = crane::train::build_engine(&ds, &cfg).unwrap();
        let mut st = eng.optimiser_state();
        st.skipped.insert("user_emb".into(), st.step + 1);
        let e = eng.set_optimiser_state(&st).unwrap_err().to_string();
        assert!(e.contains("`user_emb` sat out 1 steps, more than the 0 taken"), "{engine}: {e}");
        let step: Vec<String> = sets.iter().map(|s| s.replace("adam_idle=skip", "adam_idle=step")).collect();
        let stepped =
            train(&ds, &resolve(dataset_preset("tiny").unwrap(), "tiny", &step).unwrap(), None, false).unwrap();
        assert_ne!(losses(&stepped), losses(&a), "{engine}: skipping changes the run");
    }
    // The GPU engine refuses the switch before training.
    let sets = ["adam_idle=skip", "engine=gpu_host"].map(String::from);
    let e = resolve(dataset_preset("tiny").unwrap(), "tiny", &sets).unwrap_err().to_string();
    assert!(e.contains("adam_idle") && e.contains("CPU and reference engines only"), "{e}");
}

#[test]
fn resume_with_a_larger_patience_ends_as_the_uninterrupted_run() {
    // A run its patience stopped, resumed with a larger patience, goes on to where an
    // uninterrupted run with that patience ends: training does not depend on patience.
    let (ds, _data) = tiny_dataset("resume-patience");
    let cfg = |patience: &str| {
        let sets = ["epochs=12", "lr=0.05", patience].map(String::from);
        resolve(dataset_preset("tiny").unwrap(), "tiny", &sets).unwrap()
    };
    let base = common::scratch("resume-patience");
    let whole = train(&ds, &cfg("patience=20"), Some(&base.join("a")), false).unwrap();
    let stopped = crane::train::train_with(&ds, &cfg("patience=0"), Some(&base.join("b")), false, false, None).unwrap();
    assert!(stopped.epochs_run < whole.epochs_run, "patience 0 stops early: {} epochs", stopped.epochs_run);
    let resumed = crane::train::train_with(&ds, &cfg("patience=20"), Some(&base.join("b")), false, true, None).unwrap();
    let losses = |r: &crane::train::RunResult| r.history.iter().map(|h| h.loss).collect::<Vec<_>>();
    assert_eq!((resumed.epochs_run, resumed.best_epoch), (whole.epochs_run, whole.best_epoch));
    assert_eq!((losses(&resumed), &resumed.test), (losses(&whole), &whole.test));
}

/// The GPU engine's code (ops on the host) trains CRANE, LightGCN, BPR-MF and FREEDOM as the
/// CPU engine does: the same losses per epoch up to f32 round-off; configs it does not
/// implement are refused with the reason.
#[test]
fn gpu_engine_on_host_ops_trains_like_the_cpu_engine() {
    let (ds, _data) = tiny_dataset("gpu-host");
    for preset in ["crane", "lightgcn", "bpr", "freedom", "crane-code"] {
        let run = |engine: &str| {
            let sets = [format!("model_preset={preset}"), "epochs=2".into(), format!("engine={engine}")];
            let cfg = resolve(dataset_preset("tiny").unwrap(), "tiny", &sets).unwrap();
            train(&ds, &cfg, None, false).unwrap_or_else(|e| panic!("{preset} on {engine}: {e}"))
        };
        let (cpu, gpu) = (run("cpu"), run("gpu_host"));
        for (a, b) in cpu.history.iter().zip(&gpu.history) {
            assert!((a.loss - b.loss).abs() <= 1e-4 * a.loss.abs(), "{preset}: loss {} vs {}", a.loss, b.loss);
        }
        let (ra, rb) = (cpu.test.get("recall", 20).unwrap(), gpu.test.get("recall", 20).unwrap());
        assert!((ra - rb).abs() <= 0.02, "{preset}: test R@20 {ra} vs {rb}");
    }
}

#[test]
fn crane_code_attention_block_rows_change_only_round_off_and_the_memory_estimate() {
    // The attention's query-row blocks are a memory/speed setting: the same run with 1-row,
    // 7-row and `block_mb`-derived blocks (0) must train the same model up to f32 round-off.
    let (ds, _data) = tiny_dataset("attention-blocks");
    let run = |rows: usize| {
        let sets = ["model_preset=crane-code".to_string(), "epochs=2".into(), format!("attention_block_rows={rows}")];
        let cfg = resolve(dataset_preset("tiny").unwrap(), "tiny", &sets).unwrap();
        (train(&ds, &cfg, None, false).unwrap(), crane::memory::estimate_peak_mb(&ds, &cfg))
    };
    let (base, est0) = run(0);
    for rows in [1, 7] {
        let (r, est) = run(rows);
        for (a, b) in base.history.iter().zip(&r.history) {
            assert!((a.loss - b.loss).abs() <= 1e-4 * a.loss.abs(), "rows {rows}: loss {} vs {}", b.loss, a.loss);
        }
        let r20 = |x: &crane::train::RunResult| x.test.get("recall", 20).unwrap();
        assert!((r20(&base) - r20(&r)).abs() < 0.02, "rows {rows}: test R@20 {} vs {}", r20(&r), r20(&base));
        // Two [rows, tile] f32 tiles per thread: the estimate follows the setting exactly.
        let n = ds.n_items;
        let full = crane::engine::cpu::rca::block_rows(n, TrainConfig::default().block_mb << 20);
        let tile = crane::engine::cpu::attention::KEY_TILE.min(n);
        let per_row = 2.0 * (rayon::current_num_threads() * tile) as f64 * 4.0 / 1048576.0;
        let want = (rows as f64 - full as f64) * per_row;
        assert!((est - est0 - want).abs() < 1e-9, "rows {rows}: estimate {est} vs {est0} ({want:+} MB)");
    }
    assert_eq!(TrainConfig::default().attention_block_rows, 128);
}

#[test]
fn refresh_every_n_steps_spans_every_step_and_every_epoch_and_weight_change_shows_who_learns() {
    let (ds, _data) = tiny_dataset("refresh-n");
    let run = |refresh: &str| {
        let sets = vec!["epochs=2".to_string(), format!("refresh={refresh}")];
        let cfg = resolve(dataset_preset("tiny").unwrap(), "tiny", &sets).unwrap();
        train(&ds, &cfg, None, false).unwrap_or_else(|e| panic!("{refresh}: {e}"))
    };
    let losses = |r: &crane::train::RunResult| r.history.iter().map(|h| h.loss).collect::<Vec<_>>();
    let every = run("every_step");
    assert_eq!(losses(&run("{every_n_steps = 1}")), losses(&every), "n = 1 is every_step");
    let epoch = run("every_epoch");
    assert_eq!(losses(&run("{every_n_steps = 100000}")), losses(&epoch), "n ≥ batches is every_epoch");
    let third = run("{every_n_steps = 3}");
    assert_ne!(losses(&third), losses(&every));
    assert_ne!(losses(&third), losses(&epoch));
    // weight_change: a frozen graph sends RCA and the projections no gradient, so Adam leaves
    // them exactly at their initialisation; every_step moves them, and the embeddings move always.
    let frozen = run("frozen");
    for r in [&frozen, &every] {
        assert_eq!(r.history[1].weight_change.len(), r.history[0].weight_change.len());
        assert!(r.history.iter().all(|h| h.weight_change["item_emb"] > 0.0));
    }
    for t in ["w_tr", "w_a.v", "proj.t"] {
        assert_eq!(frozen.history[1].weight_change[t], 0.0, "{t} under a frozen graph");
        assert!(every.history[1].weight_change[t] > 0.0, "{t} under every_step");
        assert!(
            epoch.history[1].weight_change[t] < every.history[1].weight_change[t],
            "{t}: fewer steps, less movement"
        );
    }
    let bad = resolve(dataset_preset("tiny").unwrap(), "tiny", &["refresh={every_n_steps = 0}".to_string()]);
    assert!(bad.unwrap_err().to_string().contains("every_n_steps"));
}

/// Issue 25: each preset trains exactly its code's parameter set. The authors' `crane` model
/// (`MKC-Lab/CRANE`, `src/models/crane.py`) and MMRec's `FREEDOM` hold the tensors on the
/// right; crane's counterparts (SPEC.md, "Parameter sets of the peers") are on the left, with
/// torch's packed `in_proj_weight`/`in_proj_bias` split into their q, k, v thirds. Every other
/// crane tensor is empty under the preset.
#[test]
fn presets_train_exactly_their_codes_parameter_sets() {
    use crane_reference::init::Dims;
    let base = dataset_preset("baby").unwrap();
    let dims = Dims { n_users: 5, n_items: 7, d_visual: 12, d_text: 6 };
    let common = [
        ("user_emb", "user_embedding.weight"),
        ("item_emb", "item_id_embedding.weight"),
        ("features.v", "image_embedding.weight"),
        ("features.t", "text_embedding.weight"),
        ("proj.v", "image_trs.weight (transposed)"),
        ("proj_bias.v", "image_trs.bias"),
        ("proj.t", "text_trs.weight (transposed)"),
        ("proj_bias.t", "text_trs.bias"),
    ];
    let authors_extra = [
        ("mha_proj.v", "cross_modal_attention.visual_proj.weight (transposed)"),
        ("mha_proj_bias.v", "cross_modal_attention.visual_proj.bias"),
        ("mha_proj.t", "cross_modal_attention.textual_proj.weight (transposed)"),
        ("mha_proj_bias.t", "cross_modal_attention.textual_proj.bias"),
        ("mha.w_q", "cross_modal_attention.attention.in_proj_weight[0:64] (transposed)"),
        ("mha.w_k", "cross_modal_attention.attention.in_proj_weight[64:128] (transposed)"),
        ("mha.w_v", "cross_modal_attention.attention.in_proj_weight[128:192] (transposed)"),
        ("mha.b_q", "cross_modal_attention.attention.in_proj_bias[0:64]"),
        ("mha.b_k", "cross_modal_attention.attention.in_proj_bias[64:128]"),
        ("mha.b_v", "cross_modal_attention.attention.in_proj_bias[128:192]"),
        ("mha.w_o", "cross_modal_attention.attention.out_proj.weight (transposed)"),
        ("mha.b_o", "cross_modal_attention.attention.out_proj.bias"),
    ];
    let feats = [faer::Mat::<f64>::zeros(7, 12), faer::Mat::<f64>::zeros(7, 6)];
    for (preset, want) in
        [("freedom", common.to_vec()), ("crane-code", common.iter().chain(&authors_extra).copied().collect::<Vec<_>>())]
    {
        let cfg = resolve(base, "baby", &[format!("model_preset={preset}")]).unwrap();
        let mut p = crane_reference::Params::init(&cfg.model, dims, 1);
        p.attach_features(&cfg.model, [&feats[0], &feats[1]]);
        let got: Vec<String> =
            p.tensors().into_iter().filter(|(_, t)| t.nrows() * t.ncols() > 0).map(|(n, _)| n).collect();
        let mut want_names: Vec<String> = want.iter().map(|(n, _)| n.to_string()).collect();
        let mut got_sorted = got.clone();
        want_names.sort();
        got_sorted.sort();
        assert_eq!(got_sorted, want_names, "{preset}: crane's non-empty tensors vs its code's");
        // Shapes as the code's (d = d_f = 64).
        assert_eq!((p.proj[0].nrows(), p.proj[0].ncols()), (12, 64), "{preset}");
        assert_eq!((p.features[1].nrows(), p.features[1].ncols()), (7, 6), "{preset}");
        // Initialised as PyTorch's layers are: nn.Linear's bias is drawn, not zero.
        assert_eq!(cfg.model.init, crane_reference::config::Init::TorchDefaults, "{preset}");
        assert!(crane_reference::dense::max_abs(&p.proj_bias[0]) > 0.0, "{preset}: image_trs.bias ~ U(±1/√d_v)");
    }
    for preset in ["crane", "bpr", "lightgcn"] {
        let cfg = resolve(base, "baby", &[format!("model_preset={preset}")]).unwrap();
        assert_eq!(cfg.model.init, crane_reference::config::Init::Xavier, "{preset}: the paper's init");
    }
    // The earlier behaviour stays a config value.
    let old =
        ["model_preset=crane-code", "model.attention_projection=false", "model.train_features=false"].map(String::from);
    let cfg = resolve(base, "baby", &old).unwrap();
    let p = crane_reference::Params::init(&cfg.model, dims, 1);
    assert!(p
        .tensors()
        .iter()
        .all(|(n, t)| !(n.starts_with("mha_proj") || n.starts_with("features")) || t.nrows() == 0));
}

/// The CPU engine's state and checkpoint are written from its own f32 tables
/// (`Engine::host_tables`), the reference's through its f64 export: both read back exactly as
/// the engine's `params()` and `optimiser_state()` say, for a preset with trained feature tables.
#[test]
fn state_and_checkpoint_read_back_exactly_from_either_engine() {
    let (ds, _data) = tiny_dataset("state-tables");
    for engine in ["cpu", "reference"] {
        let sets = ["model_preset=freedom".to_string(), format!("engine={engine}")];
        let cfg = resolve(dataset_preset("tiny").unwrap(), "tiny", &sets).unwrap();
        let mut eng = crane::train::build_engine(&ds, &cfg).unwrap();
        let batch = [(0u32, 1u32, 2u32), (1, 3, 4)];
        eng.loss_and_grads(&batch, true).unwrap();
        eng.adam_step(1e-2, crane::engine::AdamIdle::Step).unwrap();
        assert_eq!(eng.host_tables().is_some(), engine == "cpu");
        let dir = common::scratch(&format!("state-tables-{engine}"));
        let path = dir.join("state.safetensors");
        crane::checkpoint::save_state(&path, eng.as_ref(), &cfg, &ds.fingerprint, 0, "{}").unwrap();
        let st = crane::checkpoint::load_state(&path, &eng.params(), &ds.fingerprint).unwrap();
        assert_eq!(st.params, eng.params(), "{engine}: parameters");
        let opt = eng.optimiser_state();
        assert_eq!((st.opt.step, &st.opt.m, &st.opt.v), (opt.step, &opt.m, &opt.v), "{engine}: Adam state");
        // Restored into a fresh engine (the CPU engine's straight into its f32 tables, read from
        // the file a block at a time), exactly.
        let mut fresh = crane::train::build_engine(&ds, &cfg).unwrap();
        assert_ne!(fresh.params(), eng.params(), "{engine}: a fresh engine differs before the restore");
        let f = crane::checkpoint::StateFile::open(&path, &ds.fingerprint).unwrap();
        assert_eq!((f.epoch, f.step, f.loop_state.as_str()), (0, 1, "{}"));
        f.restore(fresh.as_mut()).unwrap();
        assert_eq!(fresh.params(), eng.params(), "{engine}: restored parameters");
        let got = fresh.optimiser_state();
        assert_eq!((got.step, &got.m, &got.v), (opt.step, &opt.m, &opt.v), "{engine}: restored Adam state");
        // A state cut short (a full disk, a copy interrupted) is refused at open, naming the file.
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 4]).unwrap();
        let e = crane::checkpoint::StateFile::open(&cut, &ds.fingerprint).err().unwrap().to_string();
        assert!(e.contains("cut.safetensors") && e.contains("truncated or damaged"), "{e}");
        std::fs::write(&cut, &bytes[..5]).unwrap();
        let e = crane::checkpoint::StateFile::open(&cut, &ds.fingerprint).err().unwrap().to_string();
        assert!(e.contains("cut.safetensors") && e.contains("not a safetensors file"), "{e}");
        let meta = crane::checkpoint::CheckpointMeta {
            config: cfg.clone(),
            epoch: 0,
            dataset: ds.name.clone(),
            data: Some(ds.fingerprint.clone()),
        };
        let ck = dir.join("checkpoint.safetensors");
        crane::checkpoint::save(&ck, &crane::checkpoint::param_tables(eng.as_ref()), &meta).unwrap();
        let (p, _) = crane::checkpoint::load(&ck, &eng.params()).unwrap();
        // Checkpoints are f32: exact for the CPU engine, f32-rounded for the reference.
        let mut f32_rounded = eng.params();
        for (_, t) in f32_rounded.tensors_mut() {
            for j in 0..t.ncols() {
                for i in 0..t.nrows() {
                    t[(i, j)] = t[(i, j)] as f32 as f64;
                }
            }
        }
        assert_eq!(p, f32_rounded, "{engine}: checkpoint");
        // Read into an engine (the CPU engine's tables directly): the same parameters.
        let mut fresh = crane::train::build_engine(&ds, &cfg).unwrap();
        let m = crane::checkpoint::load_into(&ck, fresh.as_mut()).unwrap();
        assert_eq!((fresh.params(), m.epoch), (f32_rounded, 0), "{engine}: checkpoint into an engine");
    }
}

/// The CPU engine's Adam clears each gradient as it consumes it, so `loss_and_grads` clears
/// them itself only when no step came between: a second call on the same batch gives the same
/// gradients, not twice them, and after a step `grads()` is zero.
#[test]
fn gradients_are_replaced_not_accumulated_across_loss_calls() {
    let (ds, _data) = tiny_dataset("grads-replaced");
    for preset in ["freedom", "crane"] {
        let cfg = resolve(dataset_preset("tiny").unwrap(), "tiny", &[format!("model_preset={preset}")]).unwrap();
        let mut eng = crane::train::build_engine(&ds, &cfg).unwrap();
        let batch = [(0u32, 1u32, 2u32), (1, 3, 4), (2, 0, 5)];
        eng.loss_and_grads(&batch, true).unwrap();
        let first = eng.grads();
        eng.loss_and_grads(&batch, true).unwrap();
        assert_eq!(eng.grads(), first, "{preset}: a second call replaces the gradients");
        let norm = |p: &crane_reference::Params| p.tensors().iter().map(|(_, t)| t.norm_l2()).sum::<f64>();
        assert!(norm(&first) > 0.0, "{preset}: the batch has a gradient");
        eng.adam_step(1e-3, crane::engine::AdamIdle::Step).unwrap();
        assert_eq!(norm(&eng.grads()), 0.0, "{preset}: the step consumed them");
    }
}

/// A run folder another process is training into is refused, naming `run.lock` and the
/// process, before anything in it is written; when that process is killed its lock goes with
/// it, and a lock file left behind blocks nothing. The other process is util-linux's `flock`
/// holding the same `flock(2)` lock (that part is skipped, saying so, where the tool is missing).
#[test]
fn a_run_folder_in_use_is_refused_and_a_killed_holders_lock_released() {
    let (ds, _data) = tiny_dataset("lock");
    let cfg = resolve(dataset_preset("tiny").unwrap(), "tiny", &["epochs=1".to_string()]).unwrap();
    let out = common::scratch("train-lock");
    std::fs::create_dir_all(&out).unwrap();
    let lock = out.join("run.lock");
    // Held in this process (a second run into the same folder at once).
    let held = crane::io::RunLock::acquire(&out).unwrap();
    let e = train(&ds, &cfg, Some(&out), false).unwrap_err().to_string();
    assert!(e.contains("run.lock") && e.contains(&format!("process {}", std::process::id())), "{e}");
    assert!(!out.join("manifest.json").exists(), "nothing written into a folder in use");
    drop(held);
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), "", "emptied when dropped");
    // A lock file left behind with a process id in it, but no lock held (a killed run).
    std::fs::write(&lock, "4194000").unwrap();
    train(&ds, &cfg, Some(&out), false).unwrap();
    assert!(out.join("results.json").exists());
    // Held by another process, which is then killed (`-o`: the lock is `flock`'s own, not
    // inherited by its `sleep`).
    let Ok(mut holder) = std::process::Command::new("flock").arg("-o").arg(&lock).args(["sleep", "30"]).spawn() else {
        eprintln!("SKIPPED (part): util-linux `flock` is not installed; the cross-process case was not run");
        return;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while crane::io::RunLock::acquire(&out).is_ok() {
        assert!(std::time::Instant::now() < deadline, "`flock` never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let e = train(&ds, &cfg, Some(&out), false).unwrap_err().to_string();
    assert!(e.contains("run.lock") && e.contains("is training into this folder"), "{e}");
    holder.kill().unwrap();
    holder.wait().unwrap();
    train(&ds, &cfg, Some(&out), false).unwrap();
}

/// A resumed run only goes on: a state at its budget (epoch index N − 1 with `epochs = N`) is
/// accepted and trains nothing more; a budget below what the state has trained is refused.
#[test]
fn resume_accepts_a_state_at_its_budget_and_refuses_one_past_it() {
    let (ds, base) = tiny_dataset("resume-budget");
    let dir = base.join("run");
    let cfg = |epochs: usize| {
        let sets = ["model_preset=bpr".to_string(), "patience=100".to_string(), format!("epochs={epochs}")];
        resolve(dataset_preset("tiny").unwrap(), "tiny", &sets).unwrap()
    };
    crane::train::train_with(&ds, &cfg(3), Some(&dir), false, false, None).unwrap();
    let again = crane::train::train_with(&ds, &cfg(3), Some(&dir), false, true, None).unwrap();
    assert_eq!(again.epochs_run, 3, "nothing trained past the budget");
    let e = crane::train::train_with(&ds, &cfg(2), Some(&dir), false, true, None).unwrap_err().to_string();
    assert!(e.contains("already trained 3 epochs, more than epochs = 2"), "{e}");
}
