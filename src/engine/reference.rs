//! The f64 reference behind the [`Engine`] interface: slow and literal, for parity tests and
//! tiny runs.

use super::{AdamIdle, Engine, ModelInputs, OptimiserState, StageTimes};
use crate::error::Result;
use crate::sampling::Triplet;
use crane_reference::config::ItemGraphSource;
use crane_reference::losses::LossTerms;
use crane_reference::model::{forward, loss_and_grads, Batch, Graph};
use crane_reference::{Adam, ModelConfig, Params};
use faer::Mat;
use nalgebra_sparse::CsrMatrix;

pub struct ReferenceEngine {
    cfg: ModelConfig,
    graph: Graph,
    params: Params,
    grads: Params,
    adam: Option<Adam>,
    z: Option<(Mat<f64>, Mat<f64>)>,
    times: StageTimes,
    /// The frozen graph read from kNN files (`ItemGraphSource::Files`), given to the
    /// reference as `Graph::fixed_item_graph`.
    file_graph: Option<CsrMatrix<f64>>,
}

impl ReferenceEngine {
    pub fn new(inputs: &ModelInputs, cfg: &ModelConfig, params: Params) -> Result<Self> {
        inputs.check(cfg)?;
        crane_reference::set_deterministic();
        let a = inputs.interaction_matrix()?;
        let feat = |m: usize| match inputs.features[m] {
            Some(f) => Mat::from_fn(f.rows, f.cols, |r, c| f.data[r * f.cols + c] as f64),
            None => Mat::zeros(inputs.n_items, 0),
        };
        let mut graph = Graph::new(a, [feat(0), feat(1)]);
        let mut params = params;
        params.attach_features(cfg, [&graph.features[0], &graph.features[1]]);
        let file_graph = match cfg.item_graph_source {
            ItemGraphSource::Files { .. } if cfg.item_graph => inputs.fixed_item_graph.cloned(),
            _ => None,
        };
        graph.fixed_item_graph = file_graph.clone();
        let grads = params.zeros_like();
        Ok(Self {
            cfg: cfg.clone(),
            graph,
            params,
            grads,
            adam: None,
            z: None,
            times: StageTimes::default(),
            file_graph,
        })
    }
}

impl Engine for ReferenceEngine {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn set_edge_mask(&mut self, mask: &[f64]) -> Result<()> {
        self.graph.edge_mask = mask.to_vec();
        Ok(())
    }

    fn loss_and_grads(&mut self, batch: &[Triplet], learn_graph: bool) -> Result<LossTerms> {
        // A graph read from files is never relearned.
        let learn_graph = learn_graph && self.file_graph.is_none();
        if self.cfg.item_graph && self.graph.fixed_item_graph.is_none() && !learn_graph {
            self.rebuild_item_graph()?;
        }
        let held = if learn_graph { self.graph.fixed_item_graph.take() } else { None };
        let b = Batch { triplets: batch.iter().map(|&(u, i, j)| (u as usize, i as usize, j as usize)).collect() };
        let out = loss_and_grads(&self.params, &b, &self.graph, &self.cfg);
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                if held.is_some() {
                    self.graph.fixed_item_graph = held;
                }
                return Err(e.into());
            }
        };
        if learn_graph {
            self.graph.fixed_item_graph = out.forward.item_graph.clone();
        }
        self.grads = out.grads;
        Ok(out.terms)
    }

    fn rebuild_item_graph(&mut self) -> Result<()> {
        if !self.cfg.item_graph {
            return Ok(());
        }
        if let Some(fg) = &self.file_graph {
            self.graph.fixed_item_graph = Some(fg.clone());
            return Ok(());
        }
        let mut g = self.graph.clone();
        g.fixed_item_graph = None;
        self.graph.fixed_item_graph = forward(&self.params, &g, &self.cfg)?.item_graph;
        Ok(())
    }

    fn adam_step(&mut self, lr: f64, idle: AdamIdle) -> Result<()> {
        let adam = self.adam.get_or_insert_with(|| Adam::new(&self.params, lr));
        adam.lr = lr;
        match idle {
            AdamIdle::Step => adam.step(&mut self.params, &self.grads),
            AdamIdle::Skip => adam.step_skipping_idle(&mut self.params, &self.grads),
        }
        Ok(())
    }

    fn optimiser_state(&self) -> OptimiserState {
        match &self.adam {
            Some(a) => {
                let names = self.params.tensors().into_iter().map(|(n, _)| n);
                let skipped = names.zip(&a.skipped).filter(|(_, &s)| s > 0).map(|(n, &s)| (n, s)).collect();
                OptimiserState { step: a.t, m: a.m.clone(), v: a.v.clone(), skipped }
            }
            None => OptimiserState {
                step: 0,
                m: self.params.zeros_like(),
                v: self.params.zeros_like(),
                skipped: Default::default(),
            },
        }
    }

    fn set_optimiser_state(&mut self, s: &OptimiserState) -> Result<()> {
        s.check_skipped()?;
        let mut a = Adam::new(&self.params, 0.0);
        a.t = s.step;
        a.m = s.m.clone();
        a.v = s.v.clone();
        let names = self.params.tensors().into_iter().map(|(n, _)| n);
        a.skipped = names.map(|n| s.skipped.get(&n).copied().unwrap_or(0)).collect();
        self.adam = Some(a);
        Ok(())
    }

    fn params(&self) -> Params {
        self.params.clone()
    }

    fn grads(&self) -> Params {
        self.grads.clone()
    }

    fn set_params(&mut self, p: &Params) -> Result<()> {
        self.params = p.clone();
        Ok(())
    }

    fn item_graph(&self) -> Option<CsrMatrix<f64>> {
        self.graph.fixed_item_graph.clone()
    }

    fn prepare_scoring(&mut self) -> Result<()> {
        if self.cfg.item_graph && self.graph.fixed_item_graph.is_none() {
            self.rebuild_item_graph()?;
        }
        let mut g = self.graph.clone();
        g.edge_mask = vec![1.0; g.a.nnz()];
        let fw = forward(&self.params, &g, &self.cfg)?;
        let (zu, zi) = crane_reference::dense::vsplit(&fw.z, g.n_users());
        self.z = Some((zu, zi));
        Ok(())
    }

    fn score_block(&self, users: &[u32], out: &mut [f32]) -> Result<()> {
        let (zu, zi) = self.z.as_ref().expect("prepare_scoring before score_block");
        let n = zi.nrows();
        for (k, &u) in users.iter().enumerate() {
            for i in 0..n {
                out[k * n + i] = crane_reference::dense::row_dot(zu, u as usize, zi, i) as f32;
            }
        }
        Ok(())
    }

    fn times(&self) -> &StageTimes {
        &self.times
    }

    fn reset_times(&mut self) {
        self.times = StageTimes::default();
    }
}
