//! Deterministic Xavier-uniform initialisation and the Adam optimiser.

use crate::config::ModelConfig;
use crate::model::Params;
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Xavier's bound `sqrt(6 / (rows + cols))`.
pub fn xavier_bound(rows: usize, cols: usize) -> f64 {
    (6.0 / (rows + cols) as f64).sqrt()
}

/// A bias `[1, n]` ~ U(−a, a) (PyTorch's `nn.Linear` bias with `a = 1/√fan_in`).
pub fn uniform_bias(n: usize, a: f64, rng: &mut ChaCha8Rng) -> Mat<f64> {
    Mat::from_fn(1, n, |_, _| rng.random_range(-a..a))
}

/// Xavier (Glorot) uniform: entries ~ U(−a, a), `a = sqrt(6 / (rows + cols))`, `[rows, cols]`.
pub fn xavier_uniform(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Mat<f64> {
    let a = xavier_bound(rows, cols);
    let mut m = Mat::zeros(rows, cols);
    // Row-major fill so the stream of draws is independent of faer's storage order.
    for i in 0..rows {
        for j in 0..cols {
            m[(i, j)] = rng.random_range(-a..a);
        }
    }
    m
}

/// Shapes of the model: users M, items N and raw feature widths (d_v, d_t).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub n_users: usize,
    pub n_items: usize,
    pub d_visual: usize,
    pub d_text: usize,
}

impl Params {
    /// Every weight Xavier-uniform and every bias zero, drawn in the order of
    /// [`Params::tensors`] from one ChaCha8 stream seeded with `seed` (with `init =
    /// "torch_defaults"` the linear layers get PyTorch's bounds instead: [`crate::config::Init`]). A tensor the model does
    /// not use (RCA's without RCA, the projections where no term reads projected features, the
    /// attention-profile vectors without attention profiles) is drawn and then left empty
    /// (`[0, 0]`): every used tensor gets the same values whatever else is switched, and the
    /// parameter set is exactly the model's (`crane-code`'s equals the authors' code's).
    pub fn init(cfg: &ModelConfig, dims: Dims, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (d, df, dj) = (cfg.embedding_dim, cfg.feature_dim, cfg.joint_dim);
        let mut x = |r: usize, c: usize| xavier_uniform(r, c, &mut rng);
        let user_emb = x(dims.n_users, d);
        let item_emb = x(dims.n_items, d);
        let w_gcn = (0..cfg.n_gcn_weights()).map(|_| x(d, d)).collect();
        let proj_v = x(dims.d_visual, df);
        let proj_t = x(dims.d_text, df);
        let w_tr = x(2 * df, dj);
        let mut quad = || [x(dj, df), x(df, df), x(df, df), x(df, 1)];
        let [mv, av, fv, sv] = quad();
        let [mt, at, ft, st] = quad();
        // The attention of the authors' code: weights only when used (zero-sized otherwise).
        let a = if cfg.uses_attention() { df } else { 0 };
        let mha_w = std::array::from_fn(|_| if a > 0 { x(a, a) } else { Mat::zeros(0, 0) });
        let mha_b = std::array::from_fn(|_| Mat::zeros(usize::from(a > 0), a));
        // Drawn last, so that the streams of the tensors above do not depend on the switch.
        let q = if cfg.uses_attention_projection() { df } else { 0 };
        let mha_proj = std::array::from_fn(|_| if q > 0 { x(q, q) } else { Mat::zeros(0, 0) });
        let mut mha_proj_bias = std::array::from_fn(|_| Mat::zeros(usize::from(q > 0), q));
        let (mut proj_v, mut proj_t, mut mha_w, mut mha_proj) = (proj_v, proj_t, mha_w, mha_proj);
        let mut proj_bias = [Mat::zeros(1, df), Mat::zeros(1, df)];
        if cfg.init == crate::config::Init::TorchDefaults {
            // Same draws rescaled to the other bound (so every stream stays as it is); the
            // biases torch draws are drawn after everything else.
            let uniform =
                |m: &mut Mat<f64>, b: f64| *m = crate::dense::scale(m, b / xavier_bound(m.nrows(), m.ncols()));
            let linear = |fan_in: usize| 1.0 / (fan_in as f64).sqrt();
            for (w, fan_in) in [(&mut proj_v, dims.d_visual), (&mut proj_t, dims.d_text)] {
                if fan_in > 0 {
                    uniform(w, linear(fan_in));
                }
            }
            // W_q, W_k, W_v are the thirds of one `[3 d_f, d_f]` in_proj_weight torch draws
            // Xavier as a whole.
            for w in mha_w.iter_mut().take(3).filter(|w| w.nrows() > 0) {
                uniform(w, xavier_bound(3 * w.nrows(), w.ncols()));
            }
            for w in mha_w.iter_mut().skip(3).chain(mha_proj.iter_mut()).filter(|w| w.nrows() > 0) {
                uniform(w, linear(w.nrows()));
            }
            // A missing modality (width 0) has no layer to draw for: torch's `Linear` skips the
            // bias draw when fan_in is 0 too.
            for (b, fan_in) in proj_bias.iter_mut().zip([dims.d_visual, dims.d_text]).filter(|(_, f)| *f > 0) {
                *b = uniform_bias(df, linear(fan_in), &mut rng);
            }
            for b in mha_proj_bias.iter_mut().filter(|b| b.nrows() > 0) {
                *b = uniform_bias(q, linear(q), &mut rng);
            }
        }
        let keep = |used: bool, m: Mat<f64>| if used { m } else { Mat::zeros(0, 0) };
        let (rca, proj) = (cfg.uses_rca(), cfg.uses_projection());
        let profiles_att = rca && cfg.aggregation == crate::config::Aggregation::Attention;
        Self {
            user_emb,
            item_emb,
            w_gcn,
            proj: [keep(proj, proj_v), keep(proj, proj_t)],
            proj_bias: proj_bias.map(|b| keep(proj, b)),
            w_tr: keep(rca, w_tr),
            b_tr: keep(rca, Mat::zeros(1, dj)),
            w_m: [keep(rca, mv), keep(rca, mt)],
            w_a: [keep(rca, av), keep(rca, at)],
            w_f: [keep(rca, fv), keep(rca, ft)],
            att: [keep(profiles_att, sv), keep(profiles_att, st)],
            mha_w,
            mha_b,
            mha_proj,
            mha_proj_bias,
            // Attached from the data (`Params::attach_features`) when `train_features` is on.
            features: [Mat::zeros(0, 0), Mat::zeros(0, 0)],
        }
    }
}

/// Adam (Kingma & Ba) without weight decay, bias-corrected, as `torch.optim.Adam`.
#[derive(Clone, Debug)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Steps taken so far.
    pub t: u64,
    /// First and second moment estimates, shaped like the parameters.
    pub m: Params,
    pub v: Params,
    /// Per tensor (in [`Params::tensors`] order): the steps it sat out in [`Adam::step_skipping_idle`].
    pub skipped: Vec<u64>,
}

impl Adam {
    pub fn new(params: &Params, lr: f64) -> Self {
        let skipped = vec![0; params.tensors().len()];
        Self { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, t: 0, m: params.zeros_like(), v: params.zeros_like(), skipped }
    }

    /// One step: `θ ← θ − lr · m̂ / (sqrt(v̂) + ε)` (Kingma & Ba 2015, Algorithm 1).
    pub fn step(&mut self, params: &mut Params, grads: &Params) {
        self.step_with(params, grads, false)
    }

    /// [`Adam::step`], except that a tensor whose gradient is exactly zero everywhere is left as
    /// it is (value and moments) and its own step count `t − skipped` is not advanced: PyTorch's
    /// Adam over tensors whose gradient is `None`.
    pub fn step_skipping_idle(&mut self, params: &mut Params, grads: &Params) {
        self.step_with(params, grads, true)
    }

    fn step_with(&mut self, params: &mut Params, grads: &Params, skip_idle: bool) {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let gs = grads.tensors();
        self.skipped.resize(gs.len(), 0);
        for (k, (((_, p), (_, m)), ((_, v), (_, g)))) in params
            .tensors_mut()
            .into_iter()
            .zip(self.m.tensors_mut())
            .zip(self.v.tensors_mut().into_iter().zip(gs))
            .enumerate()
        {
            if skip_idle && (0..g.ncols()).all(|j| g.col_as_slice(j).iter().all(|&x| x == 0.0)) {
                self.skipped[k] += 1;
                continue;
            }
            let t = (self.t - self.skipped[k]) as i32;
            let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            for j in 0..p.ncols() {
                for i in 0..p.nrows() {
                    let gi = g[(i, j)];
                    m[(i, j)] = b1 * m[(i, j)] + (1.0 - b1) * gi;
                    v[(i, j)] = b2 * v[(i, j)] + (1.0 - b2) * gi * gi;
                    p[(i, j)] -= self.lr * (m[(i, j)] / c1) / ((v[(i, j)] / c2).sqrt() + self.eps);
                }
            }
        }
    }
}
