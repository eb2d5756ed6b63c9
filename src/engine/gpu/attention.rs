//! The attention of the authors' code (`crane-code`, `item_graph_input = "attention"`) on the
//! device: `y = concat_h softmax(Q_h K_hᵀ / √d_h) V_h · W_o + b_o` over the projected features
//! of each present modality, averaged into Eq. (15)'s `h^(0)`, blocked by query rows (`[b, N]`
//! scores at a time, never `[N, N]`) with each row's log-sum-exp saved for the backward, which
//! recomputes the probabilities. Not one of the paper's equations (the paper's Eq. 15 starts
//! from e_I); it replaces `h^(0)` as the released code does. The CPU engine's counterpart is
//! `cpu/attention.rs`.

use super::ops::{dev_err, Mat, Ops};
use super::GpuEngine;
use crate::engine::cpu::MHA_PROJ;
use crate::error::Result;
use crane_gpu::device::Device;

/// Per present modality of the authors' attention: its index, the attention's cache, and X̂^m
/// when the second projection (`attention_projection`) sits between them.
pub(super) type AttentionCache<B> = (usize, MhaCache<B>, Option<Mat<B>>);

/// crane-code's multi-head attention parameters: `[W_q, W_k, W_v, W_o]` `[d, d]`, biases `[1, d]`.
struct MhaParams<'a, B> {
    pub w: [&'a Mat<B>; 4],
    pub b: [&'a B; 4],
    pub heads: usize,
}

/// What the attention's backward needs: input, Q, K, V, the heads' outputs, and each head's
/// per-row log-sum-exp `[N]`.
pub(super) struct MhaCache<B> {
    x: Mat<B>,
    q: Mat<B>,
    k: Mat<B>,
    v: Mat<B>,
    o: Mat<B>,
    lse: Vec<B>,
}

fn linear<D: Device>(
    o: &Ops<D>,
    x: &Mat<D::Buf<f32>>,
    w: &Mat<D::Buf<f32>>,
    b: &D::Buf<f32>,
) -> Result<Mat<D::Buf<f32>>> {
    let mut y = o.mm(x, false, w, false, 1.0)?;
    o.0.add_row_bias(&mut y.b, b, y.cols).map_err(dev_err)?;
    Ok(y)
}

/// Columns `[h·dh, (h+1)·dh)` of `m` as `[rows, dh]`.
fn head<D: Device>(o: &Ops<D>, m: &Mat<D::Buf<f32>>, h: usize, dh: usize) -> Result<Mat<D::Buf<f32>>> {
    let mut x = o.zeros(m.rows, dh)?;
    o.0.copy_cols(&mut x.b, dh, 0, &m.b, m.cols, h * dh, dh, m.rows).map_err(dev_err)?;
    Ok(x)
}

fn put_head<D: Device>(o: &Ops<D>, dst: &mut Mat<D::Buf<f32>>, src: &Mat<D::Buf<f32>>, h: usize) -> Result<()> {
    let dh = src.cols;
    o.0.copy_cols(&mut dst.b, dst.cols, h * dh, &src.b, dh, 0, dh, src.rows).map_err(dev_err)
}

/// The authors' attention over all N rows, blocked by query rows (`[b, N]` scores at a time,
/// never `[N, N]`): `y = concat_h softmax(Q_h K_hᵀ / √d_h) V_h · W_o + b_o` `[N, d]`.
fn mha_forward<D: Device>(
    o: &Ops<D>,
    x: Mat<D::Buf<f32>>,
    p: &MhaParams<D::Buf<f32>>,
    block: usize,
) -> Result<(Mat<D::Buf<f32>>, MhaCache<D::Buf<f32>>)> {
    let (n, d) = (x.rows, x.cols);
    let dh = d / p.heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let block = block.clamp(1, n.max(1));
    let (q, k, v) = (linear(o, &x, p.w[0], p.b[0])?, linear(o, &x, p.w[1], p.b[1])?, linear(o, &x, p.w[2], p.b[2])?);
    let mut out = o.zeros(n, d)?;
    let mut lses = Vec::new();
    for h in 0..p.heads {
        let (qh, kh, vh) = (head(o, &q, h, dh)?, head(o, &k, h, dh)?, head(o, &v, h, dh)?);
        let mut oh = o.zeros(n, dh)?;
        let mut lse = o.0.zeros(n).map_err(dev_err)?;
        for s in (0..n).step_by(block) {
            let e = (s + block).min(n);
            let b = e - s;
            let qb = o.rows(&qh, s, e)?;
            let mut sc = o.mm(&qb, false, &kh, true, scale)?;
            let mut lb = o.0.zeros(b).map_err(dev_err)?;
            o.0.softmax_rows_lse(&mut sc.b, b, n, &mut lb).map_err(dev_err)?;
            o.0.copy_at(&mut lse, s, &lb, 0, b).map_err(dev_err)?;
            let ob = o.mm(&sc, false, &vh, false, 1.0)?;
            o.0.copy_at(&mut oh.b, s * dh, &ob.b, 0, b * dh).map_err(dev_err)?;
        }
        put_head(o, &mut out, &oh, h)?;
        lses.push(lse);
    }
    let y = linear(o, &out, p.w[3], p.b[3])?;
    Ok((y, MhaCache { x, q, k, v, o: out, lse: lses }))
}

/// Backward of [`mha_forward`]: `(dx, [dW_q, dW_k, dW_v, dW_o], [db_q, db_k, db_v, db_o])`,
/// recomputing each block's probabilities from the saved log-sum-exp.
#[allow(clippy::type_complexity)]
fn mha_backward<D: Device>(
    o: &Ops<D>,
    p: &MhaParams<D::Buf<f32>>,
    c: &MhaCache<D::Buf<f32>>,
    dy: &Mat<D::Buf<f32>>,
    block: usize,
) -> Result<(Mat<D::Buf<f32>>, [Mat<D::Buf<f32>>; 4], [D::Buf<f32>; 4])> {
    let (n, d) = (c.x.rows, c.x.cols);
    let dh = d / p.heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let block = block.clamp(1, n.max(1));
    let dwo = o.mm(&c.o, true, dy, false, 1.0)?;
    let d_o = o.mm(dy, false, p.w[3], true, 1.0)?;
    let (mut dq, mut dk, mut dv) = (o.zeros(n, d)?, o.zeros(n, d)?, o.zeros(n, d)?);
    for h in 0..p.heads {
        let (qh, kh, vh, doh) =
            (head(o, &c.q, h, dh)?, head(o, &c.k, h, dh)?, head(o, &c.v, h, dh)?, head(o, &d_o, h, dh)?);
        let (mut dqh, mut dkh, mut dvh) = (o.zeros(n, dh)?, o.zeros(n, dh)?, o.zeros(n, dh)?);
        for s in (0..n).step_by(block) {
            let e = (s + block).min(n);
            let b = e - s;
            let qb = o.rows(&qh, s, e)?;
            let dob = o.rows(&doh, s, e)?;
            let mut pm = o.mm(&qb, false, &kh, true, scale)?;
            let mut ds = o.mm(&dob, false, &vh, true, 1.0)?;
            let mut lb = o.0.zeros(b).map_err(dev_err)?;
            o.0.copy_at(&mut lb, 0, &c.lse[h], s, b).map_err(dev_err)?;
            // pm becomes P, ds becomes dS = P ⊙ (dP − D).
            o.0.softmax_rows_backward(&mut pm.b, &mut ds.b, &lb, b, n).map_err(dev_err)?;
            let dqb = o.mm(&ds, false, &kh, false, scale)?;
            o.0.copy_at(&mut dqh.b, s * dh, &dqb.b, 0, b * dh).map_err(dev_err)?;
            o.mm_add(&mut dkh, &ds, true, &qb, false, scale)?;
            o.mm_add(&mut dvh, &pm, true, &dob, false, 1.0)?;
        }
        put_head(o, &mut dq, &dqh, h)?;
        put_head(o, &mut dk, &dkh, h)?;
        put_head(o, &mut dv, &dvh, h)?;
    }
    let mut dx = o.mm(&dq, false, p.w[0], true, 1.0)?;
    o.mm_add(&mut dx, &dk, false, p.w[1], true, 1.0)?;
    o.mm_add(&mut dx, &dv, false, p.w[2], true, 1.0)?;
    let dw = [
        o.mm(&c.x, true, &dq, false, 1.0)?,
        o.mm(&c.x, true, &dk, false, 1.0)?,
        o.mm(&c.x, true, &dv, false, 1.0)?,
        dwo,
    ];
    // The key bias's gradient is zero by structure: a shift of every key adds the same
    // q·b_k to a query's scores, which its softmax ignores (Σ_j dS_ij = 0). Summing dK's
    // rows would only return f32 round-off, so it is left exactly zero.
    // The value bias's gradient is `1ᵀdV = 1ᵀ Pᵀ dO = 1ᵀ dO = db_o W_oᵀ` (softmax rows sum to
    // 1): computed from `db_o`, as the CPU engine does, it keeps its structural smallness
    // instead of summing N rows.
    let col_sums = |g: &Mat<D::Buf<f32>>| -> Result<D::Buf<f32>> {
        let mut b = o.0.zeros(d).map_err(dev_err)?;
        o.add_col_sums(&mut b, g)?;
        Ok(b)
    };
    let (dbq, dbo) = (col_sums(&dq)?, col_sums(dy)?);
    let dbv = o.mm(&bias_row(o, &dbo, d)?, false, p.w[3], true, 1.0)?.b;
    Ok((dx, dw, [dbq, o.0.zeros(d).map_err(dev_err)?, dbv, dbo]))
}

/// A bias `[d]` as a `[1, d]` matrix.
fn bias_row<D: Device>(o: &Ops<D>, b: &D::Buf<f32>, d: usize) -> Result<Mat<D::Buf<f32>>> {
    let mut m = o.zeros(1, d)?;
    o.0.copy_at(&mut m.b, 0, b, 0, d).map_err(dev_err)?;
    Ok(m)
}

/// `1ᵀ dX [1, d_f]`, the column sums of the attention's input gradient, from the bias
/// gradients: `dX = dQ W_qᵀ + dK W_kᵀ + dV W_vᵀ`, so `1ᵀdX = db_q W_qᵀ + db_v W_vᵀ` (`db_k = 0`
/// by structure). Summing dX's N rows instead adds the round-off of the cancelling key and
/// value sums to a gradient (the projection bias's) that is small by structure.
fn mha_input_col_sums<D: Device>(
    o: &Ops<D>,
    p: &MhaParams<D::Buf<f32>>,
    db: &[D::Buf<f32>; 4],
) -> Result<Mat<D::Buf<f32>>> {
    let d = p.w[0].cols;
    let mut s = o.mm(&bias_row(o, &db[0], d)?, false, p.w[0], true, 1.0)?;
    o.mm_add(&mut s, &bias_row(o, &db[2], d)?, false, p.w[2], true, 1.0)?;
    Ok(s)
}

impl<D: Device> GpuEngine<D> {
    fn mha_params(&self) -> Result<[Mat<D::Buf<f32>>; 8]> {
        let n = |s: &str| self.pmat(s);
        Ok([
            n("mha.w_q")?,
            n("mha.w_k")?,
            n("mha.w_v")?,
            n("mha.w_o")?,
            n("mha.b_q")?,
            n("mha.b_k")?,
            n("mha.b_v")?,
            n("mha.b_o")?,
        ])
    }

    fn mha_view<'a>(&self, t: &'a [Mat<D::Buf<f32>>; 8]) -> MhaParams<'a, D::Buf<f32>> {
        MhaParams {
            w: [&t[0], &t[1], &t[2], &t[3]],
            b: [&t[4].b, &t[5].b, &t[6].b, &t[7].b],
            heads: self.cfg.attention_heads,
        }
    }

    /// The authors' code's `h^(0)` `[N, d]`, added into `h`: the mean over present modalities
    /// of the attention of the projected features. Returns the attention's caches.
    pub(super) fn attention_input(&self, h: &mut D::Buf<f32>) -> Result<Vec<AttentionCache<D::Buf<f32>>>> {
        let (d, n) = (self.d, self.n);
        let o = Ops(&self.dev);
        let present: Vec<usize> = (0..2).filter(|&m| self.widths[m] > 0).collect();
        let t = self.mha_params()?;
        let p = self.mha_view(&t);
        let block = crate::engine::cpu::rca::block_rows(n, self.block_bytes);
        let mut att = Vec::new();
        for &mm in &present {
            let xhat = self.project(mm)?;
            // The authors' second projection: X̂^m Q_m + q_m, then the attention.
            let (x_in, kept) = if self.cfg.uses_attention_projection() {
                let (q, qb) = (self.pmat(MHA_PROJ[mm].0)?, self.pmat(MHA_PROJ[mm].1)?);
                let mut x2 = o.mm(&xhat, false, &q, false, 1.0)?;
                self.dev.add_row_bias(&mut x2.b, &qb.b, x2.cols).map_err(dev_err)?;
                (x2, Some(xhat))
            } else {
                (xhat, None)
            };
            let (y, c) = mha_forward(&o, x_in, &p, block)?;
            self.dev.axpy_at(h, 0, &y.b, 0, n * d, 1.0 / present.len() as f32).map_err(dev_err)?;
            att.push((mm, c, kept));
        }
        Ok(att)
    }

    /// Backward of [`GpuEngine::attention_input`] from `dh` = d h^(0) `[N, d]`: into the
    /// attention's parameters and the projections.
    pub(super) fn attention_input_backward(
        &mut self,
        dh: &D::Buf<f32>,
        att: &[AttentionCache<D::Buf<f32>>],
    ) -> Result<()> {
        let (d, n) = (self.d, self.n);
        let o = Ops(&self.dev);
        let mut dy = o.zeros(n, d)?;
        self.dev.axpy_at(&mut dy.b, 0, dh, 0, n * d, 1.0 / att.len().max(1) as f32).map_err(dev_err)?;
        let t = self.mha_params()?;
        let p = self.mha_view(&t);
        let block = crate::engine::cpu::rca::block_rows(n, self.block_bytes);
        let mut grads = Vec::new();
        for (mm, c, xhat) in att {
            let (dx, dw, db) = mha_backward(&o, &p, c, &dy, block)?;
            let dx_sums = mha_input_col_sums(&o, &p, &db)?;
            // The second projection: dQ_m = X̂ᵀ dX₂, dq_m = 1ᵀ dX₂ (the better-conditioned sums),
            // then dX̂ = dX₂ Q_mᵀ and 1ᵀ dX̂ = (1ᵀ dX₂) Q_mᵀ.
            let second = match xhat {
                Some(xhat) => {
                    let q = self.pmat(MHA_PROJ[*mm].0)?;
                    let dq = o.mm(xhat, true, &dx, false, 1.0)?;
                    let d_xhat = o.mm(&dx, false, &q, true, 1.0)?;
                    let sums_xhat = o.mm(&dx_sums, false, &q, true, 1.0)?;
                    Some((dq, o.copy(&dx_sums)?, d_xhat, sums_xhat))
                }
                None => None,
            };
            grads.push((*mm, second, (dx, dw, db, dx_sums)));
        }
        for (mm, second, (dx, dw, db, dx_sums)) in grads {
            for (k, name) in ["q", "k", "v", "o"].iter().enumerate() {
                self.add_grad(&format!("mha.w_{name}"), &dw[k].b)?;
                self.add_grad(&format!("mha.b_{name}"), &db[k])?;
            }
            match second {
                Some((dq, dqb, d_xhat, sums_xhat)) => {
                    self.add_grad(MHA_PROJ[mm].0, &dq.b)?;
                    self.add_grad(MHA_PROJ[mm].1, &dqb.b)?;
                    self.add_project_grads(mm, &d_xhat, Some(&sums_xhat))?;
                }
                None => self.add_project_grads(mm, &dx, Some(&dx_sums))?,
            }
        }
        Ok(())
    }
}
