//! Eq. (2)-(4) on the device: Â of Eq. (2) (computed on the host from the edge mask, O(nnz),
//! and uploaded as an f32 CSR), `H^(l+1) = σ(Â H^(l) W^(l))` over `[M+N, d]` from
//! `H^(0) = [E_U; E_I]` (Eq. 3-4, with or without `W^(l)` and σ) and the readout (mean or
//! last), forward and backward. Â is symmetric by construction, so its backward reuses the
//! forward CSR. The CPU engine's counterpart is `cpu/interaction_graph.rs`.

use super::ops::dev_err;
use super::GpuEngine;
use crate::error::Result;
use crane_gpu::device::{upload_csr, DevCsr, Device};
use crane_reference::config::{Readout, Sigma};
use crane_reference::ModelConfig;
use nalgebra_sparse::CsrMatrix;

/// The GCN forward's output `e` and what its backward needs: `Â H^(l)` and the
/// pre-activation per layer.
pub(super) struct Gcn<B> {
    pub(super) e: B,
    ah: Vec<B>,
    z: Vec<B>,
}

impl<D: Device> GpuEngine<D> {
    /// Â of Eq. (2) under `mask`, computed on the host (O(nnz)) and uploaded as f32 CSR.
    pub(super) fn upload_adjacency(dev: &D, a: &CsrMatrix<f64>, mask: &[f64], cfg: &ModelConfig) -> Result<DevCsr<D>> {
        let adj = crane_reference::interaction_graph::normalized_adjacency(a, mask, cfg.degree_source);
        let offsets: Vec<i64> = adj.row_offsets().iter().map(|&o| o as i64).collect();
        let idx: Vec<u32> = adj.col_indices().iter().map(|&c| c as u32).collect();
        let vals: Vec<f32> = adj.values().iter().map(|&v| v as f32).collect();
        upload_csr(dev, &offsets, &idx, &vals).map_err(dev_err)
    }

    /// Eq. (3)-(4): `e [M+N, d]` from `H^(0) = [E_U; E_I]` on the current Â.
    pub(super) fn gcn(&self) -> Result<Gcn<D::Buf<f32>>> {
        let (dev, d, rows) = (&self.dev, self.d, self.m + self.n);
        let len = rows * d;
        let mut h = self.zeros(len)?;
        dev.copy_at(&mut h, 0, &self.p[self.ix("user_emb")], 0, self.m * d).map_err(dev_err)?;
        dev.copy_at(&mut h, self.m * d, &self.p[self.ix("item_emb")], 0, self.n * d).map_err(dev_err)?;
        let mut sum = self.zeros(len)?;
        dev.copy_at(&mut sum, 0, &h, 0, len).map_err(dev_err)?;
        let (mut ahs, mut zs) = (Vec::new(), Vec::new());
        for l in 0..self.cfg.ui_layers {
            let mut ah = self.zeros(len)?;
            dev.spmm(&mut ah, &self.adj, &h, d).map_err(dev_err)?;
            let mut z = self.zeros(len)?;
            if self.cfg.gcn_weights {
                let w = &self.p[self.ix(&format!("w_gcn.{l}"))];
                dev.gemm(&mut z, rows, d, d, &ah, false, w, false, 1.0, 0.0).map_err(dev_err)?;
            } else {
                dev.copy_at(&mut z, 0, &ah, 0, len).map_err(dev_err)?;
            }
            match self.cfg.sigma {
                Sigma::Identity => dev.copy_at(&mut h, 0, &z, 0, len).map_err(dev_err)?,
                Sigma::LeakyRelu(s) => dev.leaky_relu(&mut h, &z, s as f32).map_err(dev_err)?,
            }
            dev.axpy_at(&mut sum, 0, &h, 0, len, 1.0).map_err(dev_err)?;
            ahs.push(ah);
            zs.push(z);
        }
        let e = match self.cfg.readout {
            Readout::Mean => {
                dev.scale(&mut sum, 1.0 / (self.cfg.ui_layers as f32 + 1.0)).map_err(dev_err)?;
                sum
            }
            Readout::Last => h,
        };
        Ok(Gcn { e, ah: ahs, z: zs })
    }

    /// Backward of [`GpuEngine::gcn`]: adds `dE_U`, `dE_I` and `dW^(l)` into the gradients.
    pub(super) fn gcn_backward(&mut self, cache: &Gcn<D::Buf<f32>>, d_e: &D::Buf<f32>) -> Result<()> {
        let (d, rows) = (self.d, self.m + self.n);
        let len = rows * d;
        let layers = self.cfg.ui_layers;
        let share = match self.cfg.readout {
            Readout::Mean => 1.0 / (layers as f32 + 1.0),
            Readout::Last => 0.0,
        };
        let mut dh = self.zeros(len)?;
        // dH^(L) gets the readout's share of d_e (all of it for `last`).
        let top = if self.cfg.readout == Readout::Last { 1.0 } else { share };
        self.dev.axpy_at(&mut dh, 0, d_e, 0, len, top).map_err(dev_err)?;
        for l in (0..layers).rev() {
            let mut dz = self.zeros(len)?;
            match self.cfg.sigma {
                Sigma::Identity => self.dev.copy_at(&mut dz, 0, &dh, 0, len),
                Sigma::LeakyRelu(s) => self.dev.leaky_relu_backward(&mut dz, &cache.z[l], &dh, s as f32),
            }
            .map_err(dev_err)?;
            let mut d_ah = self.zeros(len)?;
            if self.cfg.gcn_weights {
                let kw = self.ix(&format!("w_gcn.{l}"));
                // dW^(l) = (Â H^(l))ᵀ dZ: [d, M+N] x [M+N, d], accumulated into the gradient.
                self.dev
                    .gemm(&mut self.g[kw], d, d, rows, &cache.ah[l], true, &dz, false, 1.0, 1.0)
                    .map_err(dev_err)?;
                self.dev.gemm(&mut d_ah, rows, d, d, &dz, false, &self.p[kw], true, 1.0, 0.0).map_err(dev_err)?;
            } else {
                self.dev.copy_at(&mut d_ah, 0, &dz, 0, len).map_err(dev_err)?;
            }
            // Â is symmetric: its backward is the forward product.
            self.dev.spmm(&mut dh, &self.adj, &d_ah, d).map_err(dev_err)?;
            if share > 0.0 {
                self.dev.axpy_at(&mut dh, 0, d_e, 0, len, share).map_err(dev_err)?;
            }
        }
        let (ue, ie) = (self.ix("user_emb"), self.ix("item_emb"));
        let (m, n) = (self.m, self.n);
        self.dev.axpy_at(&mut self.g[ue], 0, &dh, 0, m * d, 1.0).map_err(dev_err)?;
        self.dev.axpy_at(&mut self.g[ie], 0, &dh, m * d, n * d, 1.0).map_err(dev_err)?;
        Ok(())
    }
}
