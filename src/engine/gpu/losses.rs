//! Eq. (18)-(20) on the device: BPR (Eq. 18) on the rows of one table (items addressed as
//! rows `M + i`), FREEDOM's modality BPR terms, InfoNCE (Eq. 19) on a batch's distinct rows,
//! and the regulariser's squared norm (Eq. 20 or MMRec's conventions), each with its gradient
//! added into the caller's buffers or the parameters' gradients. Per batch only `[B]` loss
//! terms and row norms come down to the host. The CPU engine's counterpart is `cpu/losses.rs`.

use super::ops::{dev_err, Mat, Ops};
use super::GpuEngine;
use crate::engine::cpu::{FEATURES, PROJ};
use crate::error::Result;
use crate::sampling::Triplet;
use crane_gpu::device::{upload_segments, Device};
use crane_reference::config::Regularisation;

impl<D: Device> GpuEngine<D> {
    /// Eq. (18) on the rows of one table `z [R, d]`: the mean BPR loss of triplets
    /// `(u[k], i[k], j[k])` (row indices of `z`), with `w ·` its gradient added to `d_z`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn bpr(
        &self,
        z: &D::Buf<f32>,
        d_z: &mut D::Buf<f32>,
        u: &[u32],
        i: &[u32],
        j: &[u32],
        w: f32,
    ) -> Result<f64> {
        let (dev, d, b) = (&self.dev, self.d, u.len());
        let up = |x: &[u32]| dev.upload(x).map_err(dev_err);
        let (bu, bi, bj) = (up(u)?, up(i)?, up(j)?);
        let (mut loss, mut coef) = (self.zeros(b)?, self.zeros(b)?);
        dev.bpr_terms(&mut loss, &mut coef, z, z, &bu, &bi, &bj, d).map_err(dev_err)?;
        if w != 1.0 {
            dev.scale(&mut coef, w).map_err(dev_err)?;
        }
        let (mut gu, mut gi, mut gj) = (self.zeros(b * d)?, self.zeros(b * d)?, self.zeros(b * d)?);
        dev.gather_rows(&mut gu, z, &bu, d).map_err(dev_err)?;
        dev.gather_rows(&mut gi, z, &bi, d).map_err(dev_err)?;
        dev.gather_rows(&mut gj, z, &bj, d).map_err(dev_err)?;
        // d z_u = c (z_j − z_i), d z_i = −c z_u, d z_j = c z_u with c = w σ(ŷ_uj − ŷ_ui) / B.
        dev.axpy_at(&mut gj, 0, &gi, 0, b * d, -1.0).map_err(dev_err)?;
        dev.scale_rows(&mut gj, &coef, d).map_err(dev_err)?;
        let seg = |rows: &[u32]| upload_segments(dev, rows).map_err(dev_err);
        dev.scatter_add_rows(d_z, &gj, &seg(u)?, d).map_err(dev_err)?;
        dev.scale_rows(&mut gu, &coef, d).map_err(dev_err)?;
        dev.scatter_add_rows(d_z, &gu, &seg(j)?, d).map_err(dev_err)?;
        dev.scale(&mut gu, -1.0).map_err(dev_err)?;
        dev.scatter_add_rows(d_z, &gu, &seg(i)?, d).map_err(dev_err)?;
        let terms = dev.download(&loss).map_err(dev_err)?;
        Ok(terms.iter().map(|&v| v as f64).sum::<f64>() / b as f64)
    }

    /// FREEDOM's modality terms: per present modality, λ_m BPR of `z_u = e_u + h_u` against the
    /// projected features `X_m P_m + p_m` of the batch's positive and negative items
    /// (`[2B, d_m]` rows, never `[N, d_m]`), gradients into `d_e`, `d_h`, `P_m`, `p_m`.
    pub(super) fn modality_bpr(
        &mut self,
        e: &D::Buf<f32>,
        h: Option<&D::Buf<f32>>,
        d_e: &mut D::Buf<f32>,
        mut d_h: Option<&mut D::Buf<f32>>,
        batch: &[Triplet],
    ) -> Result<f64> {
        let (d, b, w) = (self.d, batch.len(), self.cfg.modality_bpr as f32);
        let users: Vec<u32> = batch.iter().map(|t| t.0).collect();
        let rows: Vec<u32> = batch.iter().map(|t| t.1).chain(batch.iter().map(|t| t.2)).collect();
        let bu = self.dev.upload(&users).map_err(dev_err)?;
        let brows = self.dev.upload(&rows).map_err(dev_err)?;
        // One table [3B, d]: z_u of each triplet, then y of the positives, then of the negatives.
        let mut table = self.zeros(3 * b * d)?;
        let mut zsum = self.zeros(b * d)?;
        self.dev.gather_rows(&mut zsum, e, &bu, d).map_err(dev_err)?;
        if let Some(h) = h {
            let mut hu = self.zeros(b * d)?;
            self.dev.gather_rows(&mut hu, h, &bu, d).map_err(dev_err)?;
            self.dev.axpy_at(&mut zsum, 0, &hu, 0, b * d, 1.0).map_err(dev_err)?;
        }
        self.dev.copy_at(&mut table, 0, &zsum, 0, b * d).map_err(dev_err)?;
        let seg_u = upload_segments(&self.dev, &users).map_err(dev_err)?;
        let idx = |r: std::ops::Range<usize>| r.map(|k| k as u32).collect::<Vec<u32>>();
        let (tu, ti, tj) = (idx(0..b), idx(b..2 * b), idx(2 * b..3 * b));
        let mut total = 0.0;
        for mm in 0..2 {
            let (Some(f), dm) = (self.feats[mm].as_ref(), self.widths[mm]) else { continue };
            let (kp, kb) = (self.ix(PROJ[mm].0), self.ix(PROJ[mm].1));
            let mut x = self.zeros(2 * b * dm)?;
            self.dev.gather_rows(&mut x, &f.b, &brows, dm).map_err(dev_err)?;
            let mut y = self.zeros(2 * b * d)?;
            self.dev.gemm(&mut y, 2 * b, d, dm, &x, false, &self.p[kp], false, 1.0, 0.0).map_err(dev_err)?;
            self.dev.add_row_bias(&mut y, &self.p[kb], d).map_err(dev_err)?;
            self.dev.copy_at(&mut table, b * d, &y, 0, 2 * b * d).map_err(dev_err)?;
            let mut d_table = self.zeros(3 * b * d)?;
            total += self.cfg.modality_bpr * self.bpr(&table, &mut d_table, &tu, &ti, &tj, w)?;
            let mut dz = self.zeros(b * d)?;
            self.dev.copy_at(&mut dz, 0, &d_table, 0, b * d).map_err(dev_err)?;
            self.dev.scatter_add_rows(d_e, &dz, &seg_u, d).map_err(dev_err)?;
            if let Some(dh) = d_h.as_deref_mut() {
                self.dev.scatter_add_rows(dh, &dz, &seg_u, d).map_err(dev_err)?;
            }
            let mut dy = self.zeros(2 * b * d)?;
            self.dev.copy_at(&mut dy, 0, &d_table, b * d, 2 * b * d).map_err(dev_err)?;
            // dP = Xᵀ dY, dp = 1ᵀ dY.
            self.dev.gemm(&mut self.g[kp], dm, d, 2 * b, &x, true, &dy, false, 1.0, 1.0).map_err(dev_err)?;
            // The bias cancels in ŷ_neg − ŷ_pos: dp is zero in exact arithmetic. Summing the
            // positive and the negative halves separately, in the same order, makes it exactly
            // zero here too (dy_neg = −dy_pos bit for bit); one sum over 2B rows would leave
            // round-off that Adam turns into steps of size lr.
            let ones = self.dev.upload(&vec![1.0f32; b]).map_err(dev_err)?;
            let (mut half, mut db) = (self.zeros(b * d)?, self.zeros(d)?);
            for (k, off) in [0, b * d].into_iter().enumerate() {
                self.dev.copy_at(&mut half, 0, &dy, off, b * d).map_err(dev_err)?;
                let beta = if k == 0 { 0.0 } else { 1.0 };
                self.dev.gemm(&mut db, 1, d, b, &ones, false, &half, false, 1.0, beta).map_err(dev_err)?;
            }
            self.dev.axpy_at(&mut self.g[kb], 0, &db, 0, d, 1.0).map_err(dev_err)?;
            if self.cfg.train_features {
                // The trained table's rows: dX[rows] += dY P_mᵀ.
                let mut dx = self.zeros(2 * b * dm)?;
                self.dev.gemm(&mut dx, 2 * b, dm, d, &dy, false, &self.p[kp], true, 1.0, 0.0).map_err(dev_err)?;
                let seg = upload_segments(&self.dev, &rows).map_err(dev_err)?;
                let kx = self.ix(FEATURES[mm]);
                self.dev.scatter_add_rows(&mut self.g[kx], &dx, &seg, dm).map_err(dev_err)?;
            }
        }
        Ok(total)
    }

    /// The regulariser's squared norm term (Eq. 20 or MMRec's), with `λ ·` its gradient added.
    pub(super) fn regularise(&mut self, u: &[u32], i: &[u32], j: &[u32]) -> Result<f64> {
        let (d, b, lam) = (self.d, u.len(), self.cfg.lambda);
        let (ue, ie) = (self.ix("user_emb"), self.ix("item_emb"));
        if self.cfg.regularisation == Regularisation::AllParameters {
            let mut sq = 0.0;
            for k in 0..self.p.len() {
                let (r, c) = self.shapes[k];
                if r * c == 0 {
                    continue;
                }
                let mut norms = self.zeros(r)?;
                self.dev.row_sq_norms(&mut norms, &self.p[k], c).map_err(dev_err)?;
                sq += self.dev.download(&norms).map_err(dev_err)?.iter().map(|&v| v as f64).sum::<f64>();
                self.dev.axpy_at(&mut self.g[k], 0, &self.p[k], 0, r * c, 2.0 * lam as f32).map_err(dev_err)?;
            }
            return Ok(sq);
        }
        // Per set (users, positives, negatives): the rows, their squared norm, and the table.
        let mut rows = Vec::new();
        let mut sums = [0.0f64; 3];
        for (s, (ids, k)) in [(u, ue), (i, ie), (j, ie)].into_iter().enumerate() {
            let bi = self.dev.upload(ids).map_err(dev_err)?;
            let mut g = self.zeros(b * d)?;
            self.dev.gather_rows(&mut g, &self.p[k], &bi, d).map_err(dev_err)?;
            let mut norms = self.zeros(b)?;
            self.dev.row_sq_norms(&mut norms, &g, d).map_err(dev_err)?;
            sums[s] = self.dev.download(&norms).map_err(dev_err)?.iter().map(|&v| v as f64).sum();
            rows.push((ids, k, g));
        }
        let bf = b as f64;
        let (sq, factors) = match self.cfg.regularisation {
            Regularisation::BatchEmbeddings => (sums.iter().sum::<f64>() / bf, [2.0 * lam / bf; 3]),
            _ => (
                sums.iter().map(|v| v.sqrt()).sum::<f64>() / bf,
                sums.map(|v| if v > 0.0 { lam / (bf * v.sqrt()) } else { 0.0 }),
            ),
        };
        for ((ids, k, mut g), f) in rows.into_iter().zip(factors) {
            self.dev.scale(&mut g, f as f32).map_err(dev_err)?;
            let seg = upload_segments(&self.dev, ids).map_err(dev_err)?;
            self.dev.scatter_add_rows(&mut self.g[k], &g, &seg, d).map_err(dev_err)?;
        }
        Ok(sq)
    }

    /// Eq. (19) on rows `rows` of the full tables `e`, `h` `[M+N, d]`: the mean InfoNCE loss,
    /// with β times its gradient added to `d_e`, `d_h`.
    pub(super) fn info_nce(
        &self,
        e: &D::Buf<f32>,
        h: &D::Buf<f32>,
        rows: &[u32],
        d_e: &mut D::Buf<f32>,
        d_h: &mut D::Buf<f32>,
    ) -> Result<f64> {
        let (o, d, k) = (Ops(&self.dev), self.d, rows.len());
        let (tau, g) = (self.cfg.tau as f32, self.cfg.beta as f32);
        let br = self.dev.upload(rows).map_err(dev_err)?;
        let gather = |t: &D::Buf<f32>| -> Result<Mat<D::Buf<f32>>> {
            let mut x = o.zeros(k, d)?;
            self.dev.gather_rows(&mut x.b, t, &br, d).map_err(dev_err)?;
            Ok(x)
        };
        // Unit rows with the norm clamped at 1e-12 (the reference's convention for Eq. 19).
        let unit = |x: Mat<D::Buf<f32>>| -> Result<(Mat<D::Buf<f32>>, D::Buf<f32>)> {
            let inv: Vec<f32> = o.row_sq_norms(&x)?.iter().map(|v| 1.0 / v.sqrt().max(1e-12)).collect();
            let inv = o.upload(&inv)?;
            let mut y = x;
            o.scale_rows(&mut y, &inv)?;
            Ok((y, inv))
        };
        let (ua, inv_a) = unit(gather(e)?)?;
        let (ub, inv_b) = unit(gather(h)?)?;
        let mut p = o.mm(&ua, false, &ub, true, 1.0 / tau)?;
        let mut row_loss = self.zeros(k)?;
        self.dev.softmax_rows_loss(&mut p.b, k, &mut row_loss).map_err(dev_err)?;
        let loss: f64 =
            self.dev.download(&row_loss).map_err(dev_err)?.iter().map(|&v| v as f64).sum::<f64>() / k as f64;
        // dL/dlogits = β (P − I) / k.
        self.dev.scale(&mut p.b, g / k as f32).map_err(dev_err)?;
        self.dev.add_diag(&mut p.b, k, -g / k as f32).map_err(dev_err)?;
        let mut d_ua = o.mm(&p, false, &ub, false, 1.0 / tau)?;
        let mut d_ub = o.mm(&p, true, &ua, false, 1.0 / tau)?;
        o.unit_backward(&[&ua], std::slice::from_mut(&mut d_ua), &inv_a)?;
        o.unit_backward(&[&ub], std::slice::from_mut(&mut d_ub), &inv_b)?;
        let seg = upload_segments(&self.dev, rows).map_err(dev_err)?;
        self.dev.scatter_add_rows(d_e, &d_ua.b, &seg, d).map_err(dev_err)?;
        self.dev.scatter_add_rows(d_h, &d_ub.b, &seg, d).map_err(dev_err)?;
        Ok(loss)
    }
}
