//! The projection (Fig. 3) and Eq. (5)-(6) on the device: `X̂^m = X_m P_m + p_m` for every
//! item and its gradient; the user profiles `X_U^m` of Eq. (5) in projected space (sum and
//! average as `A X̂` on the device; max and attention, Table 6, by the CPU engine's functions
//! on the host, O(nnz·d_f)); and Eq. (6)'s stacked `X^m = [X_U^m; X̂^m]` `[M+N, d_f]`, RCA's
//! input, with its backward. The CPU engine's counterpart is `cpu/user_profiles.rs`.

use super::ops::{dev_err, Mat, Ops};
use super::GpuEngine;
use crate::engine::cpu::ops::Dense;
use crate::engine::cpu::user_profiles::{self as cpu_profiles, ProfileCache};
use crate::engine::cpu::{FEATURES, PROJ};
use crate::error::Result;
use crane_gpu::device::Device;
use crane_reference::config::Aggregation;

/// Parameter names of the attention vector of Table 6's attention profiles (v, t).
const ATT: [&str; 2] = ["att.v", "att.t"];

/// Per modality, what host-side (max, attention) profiles keep for their backward: `X̂_I`,
/// the attention vector and the CPU engine's cache.
pub(super) type HostProfile = (Dense, Dense, ProfileCache);

impl<D: Device> GpuEngine<D> {
    /// `X̂^m = X_m P_m + p_m` `[N, d_f]` for every item.
    pub(super) fn project(&self, m: usize) -> Result<Mat<D::Buf<f32>>> {
        let o = Ops(&self.dev);
        let (p, b) = (self.pmat(PROJ[m].0)?, self.pmat(PROJ[m].1)?);
        let x = self.feats[m].as_ref().expect("features are on the device for the learned graph");
        let mut y = o.mm(x, false, &p, false, 1.0)?;
        self.dev.add_row_bias(&mut y.b, &b.b, y.cols).map_err(dev_err)?;
        Ok(y)
    }

    /// `dP_m += X_mᵀ dX̂`, `dp_m += 1ᵀ dX̂` (and with trained tables `dX_m += dX̂ P_mᵀ`) for
    /// every item's row; `col_sums` is `1ᵀ dX̂` when
    /// the caller has it in a better-conditioned form (`attention::mha_input_col_sums`).
    pub(super) fn add_project_grads(
        &mut self,
        mm: usize,
        d: &Mat<D::Buf<f32>>,
        col_sums: Option<&Mat<D::Buf<f32>>>,
    ) -> Result<()> {
        let Some(x) = self.feats[mm].as_ref() else { return Ok(()) };
        let o = Ops(&self.dev);
        let dp = o.mm(x, true, d, false, 1.0)?;
        let db = match col_sums {
            Some(s) => o.copy(s)?.b,
            None => {
                let mut db = self.zeros(d.cols)?;
                o.add_col_sums(&mut db, d)?;
                db
            }
        };
        // The trained table's gradient: dX^m = dX̂ P_mᵀ.
        let dx = match self.cfg.train_features {
            true => Some(o.mm(d, false, &self.pmat(PROJ[mm].0)?, true, 1.0)?),
            false => None,
        };
        self.add_grad(PROJ[mm].0, &dp.b)?;
        self.add_grad(PROJ[mm].1, &db)?;
        if let Some(dx) = dx {
            self.add_grad(FEATURES[mm], &dx.b)?;
        }
        Ok(())
    }

    /// Eq. (5)-(6) for modality `mm`: `X^m = [X_U^m; X̂^m]` `[M+N, d_f]` from `xh` = X̂^m.
    /// Host-side profiles (max, attention) push what their backward needs onto `profiles`.
    pub(super) fn modality_matrix(
        &self,
        mm: usize,
        xh: &Mat<D::Buf<f32>>,
        profiles: &mut Vec<HostProfile>,
    ) -> Result<Mat<D::Buf<f32>>> {
        let o = Ops(&self.dev);
        let (m, n) = (self.m, self.n);
        let (a, _) = self.inter.as_ref().expect("A is on the device for the learned graph");
        // Eq. (5): user profiles in projected space, A X̂ (averaged: D⁻¹ A X̂).
        let mut xu = o.zeros(m, xh.cols)?;
        if let Some((ah, _)) = &self.a_host {
            // Max and attention profiles (Table 6): O(nnz·d_f) on the host.
            let xi = self.to_host(xh)?;
            let att = self.to_host(&self.pmat(ATT[mm])?)?;
            let (xu_h, c) = cpu_profiles::forward(ah, &xi, self.cfg.aggregation, &att);
            xu.b = o.upload(&xu_h.data)?;
            profiles.push((xi, att, c));
        } else {
            self.dev.spmm(&mut xu.b, a, &xh.b, xh.cols).map_err(dev_err)?;
        }
        if self.cfg.aggregation == Aggregation::Average {
            o.scale_rows(&mut xu, &o.upload(&self.inv_degree)?)?;
        }
        // Eq. (6): users first, then items.
        let mut x = o.zeros(m + n, xh.cols)?;
        self.dev.copy_at(&mut x.b, 0, &xu.b, 0, m * xh.cols).map_err(dev_err)?;
        self.dev.copy_at(&mut x.b, m * xh.cols, &xh.b, 0, n * xh.cols).map_err(dev_err)?;
        Ok(x)
    }

    /// Backward of [`GpuEngine::modality_matrix`] from `dxm` = dX^m `[M+N, d_f]`: adds dX̂^m
    /// into `d_xhat`; a host-side attention profile's `(name, d a_m)` goes to `d_atts`.
    pub(super) fn modality_matrix_backward(
        &self,
        mm: usize,
        dxm: &Mat<D::Buf<f32>>,
        profile: Option<&HostProfile>,
        d_xhat: &mut Mat<D::Buf<f32>>,
        d_atts: &mut Vec<(&'static str, D::Buf<f32>)>,
    ) -> Result<()> {
        let o = Ops(&self.dev);
        let (m, n) = (self.m, self.n);
        let (_, a_t) = self.inter.as_ref().expect("A is on the device for the learned graph");
        let mut d_xu = o.rows(dxm, 0, m)?;
        if self.cfg.aggregation == Aggregation::Average {
            o.scale_rows(&mut d_xu, &o.upload(&self.inv_degree)?)?;
        }
        let mut d_prof = o.zeros(n, dxm.cols)?;
        if let (Some((ah, aht)), Some((xi, att, c))) = (&self.a_host, profile) {
            let d_xu_h = self.to_host(&d_xu)?;
            let (dp, da) = cpu_profiles::backward(ah, aht, xi, att, c, &d_xu_h);
            d_prof.b = o.upload(&dp.data)?;
            d_atts.push((ATT[mm], o.upload(&da.data)?));
        } else {
            self.dev.spmm(&mut d_prof.b, a_t, &d_xu.b, dxm.cols).map_err(dev_err)?;
        }
        o.axpy(d_xhat, &d_prof, 1.0)?;
        let d_xi = o.rows(dxm, m, m + n)?;
        o.axpy(d_xhat, &d_xi, 1.0)
    }
}
