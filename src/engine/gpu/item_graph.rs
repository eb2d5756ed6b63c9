//! Eq. (14)-(16) on the device, and the learned item graph's pipeline from the features to S̃
//! (Eq. 5-14) with its backward: the projections and profiles ([`super::user_profiles`]),
//! RCA or another fusion of Fig. 4 ([`super::rca`]), the unit rows of the fused item
//! representation, and Eq. (14)'s kNN similarity in row blocks with a per-row top-k on the
//! device (never `[N, N]`). The N·k retained entries (clamp, row normalisation and their
//! backward) are handled on the host by the CPU engine's functions: O(N·k), next to the
//! O(N²·d) products on the device. Then the propagation over the held S̃ (Eq. 15) and the
//! users' semantic profiles `h_u = A h_i` (Eq. 16), forward and backward. The CPU engine's
//! counterpart is `cpu/item_graph.rs` (its graph pipeline is in `cpu/mod.rs`).

use super::ops::{dev_err, upload_cpu_csr, Mat, Ops};
use super::rca::RoundCache;
use super::user_profiles::HostProfile;
use super::GpuEngine;
use crate::engine::cpu::item_graph::{from_topk, knn_ds, KnnGraph, MIN_ROW_NORM};
use crate::error::{CraneError, Result};
use crane_gpu::device::{DevCsr, Device};
use crane_reference::config::{Fusion, ItemGraphInput};

/// Unit rows of row-aligned parts that share one norm (the columns of one matrix split in
/// pieces, e.g. `X_att = [X^v, X^t]`): `(parts / ‖row‖, 1 / ‖row‖)`. A zero row (norm ≤
/// `MIN_ROW_NORM`, as in the CPU engine and the reference) gets `1/‖row‖ = 0`: its unit row is
/// 0, and so is its gradient in [`Ops::unit_backward`]; [`knn`] reads it from there.
fn unit_parts<D: Device>(o: &Ops<D>, parts: &[Mat<D::Buf<f32>>]) -> Result<(Vec<Mat<D::Buf<f32>>>, D::Buf<f32>)> {
    let rows = parts[0].rows;
    let mut sq = vec![0f64; rows];
    for p in parts {
        sq.iter_mut().zip(o.row_sq_norms(p)?).for_each(|(a, b)| *a += b as f64);
    }
    let mut inv = Vec::with_capacity(rows);
    for (i, v) in sq.iter().enumerate() {
        let norm = v.sqrt() as f32;
        if !norm.is_finite() {
            return Err(CraneError::Invalid(format!("Eq. (14): item {i} has a non-finite row (norm {norm})")));
        }
        inv.push(if norm <= MIN_ROW_NORM { 0.0 } else { 1.0 / norm });
    }
    let inv = o.upload(&inv)?;
    let mut ys = Vec::new();
    for p in parts {
        let mut y = o.copy(p)?;
        o.scale_rows(&mut y, &inv)?;
        ys.push(y);
    }
    Ok((ys, inv))
}

/// One term of Eq. (14): unit parts and their weight.
struct DUnit<B> {
    pub ys: Vec<Mat<B>>,
    pub inv: B,
    pub w: f32,
}

/// Eq. (14) forward: `S = Σ_t w_t Y_t Y_tᵀ` in row blocks of `block` rows, top-k per row on the
/// device, clamp and row normalisation on the host. Never `[N, N]`. Zero rows (`1/‖row‖ = 0`
/// in every unit, as the CPU engine's `eligible`) are nobody's neighbour: their columns get
/// −∞ before the top-k (one row-bias add per block), and `from_topk` drops them and their rows.
fn knn<D: Device>(o: &Ops<D>, units: &[DUnit<D::Buf<f32>>], k: usize, block: usize) -> Result<KnnGraph> {
    let n = units[0].ys[0].rows;
    if k == 0 || k > n {
        return Err(CraneError::config("knn_k", format!("must be in 1..={n}, got {k}")));
    }
    let mut eligible = vec![false; n];
    for u in units {
        let inv = o.0.download(&u.inv).map_err(dev_err)?;
        eligible.iter_mut().zip(inv).for_each(|(e, v)| *e |= v != 0.0);
    }
    let mask = if eligible.iter().all(|&e| e) {
        None
    } else {
        let bias: Vec<f32> = eligible.iter().map(|&e| if e { 0.0 } else { f32::NEG_INFINITY }).collect();
        Some(o.upload(&bias)?)
    };
    let block = block.clamp(1, n);
    let (mut idx, mut raw) = (Vec::with_capacity(n * k), Vec::with_capacity(n * k));
    for s in (0..n).step_by(block) {
        let e = (s + block).min(n);
        let b = e - s;
        let mut sim = o.zeros(b, n)?;
        for u in units {
            for y in &u.ys {
                let yr = o.rows(y, s, e)?;
                o.mm_add(&mut sim, &yr, false, y, true, u.w)?;
            }
        }
        if let Some(m) = &mask {
            o.0.add_row_bias(&mut sim.b, m, n).map_err(dev_err)?;
        }
        let mut ti = o.0.zeros::<u32>(b * k).map_err(dev_err)?;
        let mut tv = o.0.zeros::<f32>(b * k).map_err(dev_err)?;
        o.0.row_topk(&mut ti, &mut tv, &sim.b, b, n, k, None).map_err(dev_err)?;
        let (ti, tv) = (o.0.download(&ti).map_err(dev_err)?, o.0.download(&tv).map_err(dev_err)?);
        for r in 0..b {
            let mut row: Vec<(u32, f32)> = (0..k).map(|q| (ti[r * k + q], tv[r * k + q])).collect();
            row.sort_unstable_by_key(|e| e.0);
            idx.extend(row.iter().map(|e| e.0));
            raw.extend(row.iter().map(|e| e.1));
        }
    }
    from_topk(n, k, idx, raw, &eligible)
}

/// The held graph S̃ and S̃ᵀ on the device.
fn upload_graph<D: Device>(dev: &D, g: &KnnGraph) -> Result<(DevCsr<D>, DevCsr<D>)> {
    Ok((upload_cpu_csr(dev, &g.s, None)?, upload_cpu_csr(dev, &g.s_t, None)?))
}

/// Eq. (14) backward: the gradient of every unit's parts (before normalisation) from the
/// gradient of S̃'s values `d_vals` (host, S̃'s entry order).
fn knn_backward<D: Device>(
    o: &Ops<D>,
    g: &KnnGraph,
    units: &[DUnit<D::Buf<f32>>],
    d_vals: &[f32],
) -> Result<Vec<Vec<Mat<D::Buf<f32>>>>> {
    let (ds, ds_t) = knn_ds(g, d_vals);
    let (dsm, dstm) = (upload_cpu_csr(o.0, &g.s, Some(&ds))?, upload_cpu_csr(o.0, &g.s_t, Some(&ds_t))?);
    let mut out = Vec::new();
    for u in units {
        let mut dys = Vec::new();
        for y in &u.ys {
            // Row i is the left factor of S_ij and the right factor of S_ji.
            let mut dy = o.zeros(y.rows, y.cols)?;
            o.0.spmm(&mut dy.b, &dsm, &y.b, y.cols).map_err(dev_err)?;
            let mut t = o.zeros(y.rows, y.cols)?;
            o.0.spmm(&mut t.b, &dstm, &y.b, y.cols).map_err(dev_err)?;
            o.axpy(&mut dy, &t, 1.0)?;
            o.0.scale(&mut dy.b, u.w).map_err(dev_err)?;
            dys.push(dy);
        }
        let ys: Vec<&Mat<D::Buf<f32>>> = u.ys.iter().collect();
        o.unit_backward(&ys, &mut dys, &u.inv)?;
        out.push(dys);
    }
    Ok(out)
}

/// Eq. (15)-(16) forward: `[h_u; h_i]` `[M+N, d]`, the layers `h^(0..L-1)`, and the attention
/// caches per present modality (`item_graph_input = "attention"`).
pub(super) struct Semantic<B> {
    pub(super) full: B,
    hs: Vec<B>,
    att: Vec<super::attention::AttentionCache<B>>,
}

/// What the learned graph's forward keeps for its backward.
pub(super) struct GraphCache<B> {
    rca: Option<Vec<RoundCache<B>>>,
    units: Vec<DUnit<B>>,
    /// Per modality, for host-side (max, attention) profiles.
    profiles: Vec<HostProfile>,
}

impl<D: Device> GpuEngine<D> {
    /// Keeps `kg` as the held graph (device copies of S̃ and S̃ᵀ).
    pub(super) fn hold_graph(&mut self, kg: KnnGraph) -> Result<()> {
        let (s, s_t) = upload_graph(&self.dev, &kg)?;
        let host = kg.s.to_nalgebra();
        self.graph = Some((s, s_t, host, kg));
        Ok(())
    }

    /// Eq. (5)-(14): S̃ from the features and current parameters, with what its backward needs.
    pub(super) fn build_graph(&self) -> Result<(KnnGraph, GraphCache<D::Buf<f32>>)> {
        let o = Ops(&self.dev);
        let n = self.n;
        let xhat = [self.project(0)?, self.project(1)?];
        let kblock = crate::engine::cpu::rca::block_rows(n, self.block_bytes);
        let mut rca = None;
        let mut profiles = Vec::new();
        let unit = |parts: Vec<Mat<D::Buf<f32>>>, w: f32| -> Result<DUnit<D::Buf<f32>>> {
            let (ys, inv) = unit_parts(&o, &parts)?;
            Ok(DUnit { ys, inv, w })
        };
        let units = match self.cfg.fusion {
            Fusion::Rca => {
                let x0 = [
                    self.modality_matrix(0, &xhat[0], &mut profiles)?,
                    self.modality_matrix(1, &xhat[1], &mut profiles)?,
                ];
                let (items, caches) = self.rca(x0)?;
                rca = Some(caches);
                vec![unit(items.into(), 1.0)?]
            }
            Fusion::Concat => vec![unit(vec![o.copy(&xhat[0])?, o.copy(&xhat[1])?], 1.0)?],
            Fusion::Sum => {
                let mut s = o.copy(&xhat[0])?;
                o.axpy(&mut s, &xhat[1], 1.0)?;
                vec![unit(vec![s], 1.0)?]
            }
            Fusion::Visual => vec![unit(vec![o.copy(&xhat[0])?], 1.0)?],
            Fusion::Text => vec![unit(vec![o.copy(&xhat[1])?], 1.0)?],
            Fusion::AverageGraphs => vec![unit(vec![o.copy(&xhat[0])?], 0.5)?, unit(vec![o.copy(&xhat[1])?], 0.5)?],
        };
        let kg = knn(&o, &units, self.cfg.knn_k, kblock)?;
        Ok((kg, GraphCache { rca, units, profiles }))
    }

    /// Backward of [`GpuEngine::build_graph`] from the gradient of S̃'s values (host).
    pub(super) fn build_graph_backward(&mut self, fc: &GraphCache<D::Buf<f32>>, d_vals: &[f32]) -> Result<()> {
        let n = self.n;
        let kg = &self.graph.as_ref().expect("the graph being learned is held").3;
        let o = Ops(&self.dev);
        let mut d_units = knn_backward(&o, kg, &fc.units, d_vals)?;
        let f = self.cfg.feature_dim;
        let mut d_xhat = [o.zeros(n, f)?, o.zeros(n, f)?];
        let mut theta_grads = None;
        match self.cfg.fusion {
            Fusion::Rca => {
                let caches: &[RoundCache<D::Buf<f32>>] = fc.rca.as_deref().expect("RCA caches");
                let (dx, gr) = self.rca_backward(caches, d_units.remove(0))?;
                let mut d_atts = Vec::new();
                for (mm, (dxm, d_xh)) in dx.iter().zip(d_xhat.iter_mut()).enumerate() {
                    self.modality_matrix_backward(mm, dxm, fc.profiles.get(mm), d_xh, &mut d_atts)?;
                }
                theta_grads = Some((gr, d_atts));
            }
            Fusion::Concat => {
                let mut parts = d_units.remove(0);
                let t = parts.pop().expect("two parts");
                o.axpy(&mut d_xhat[1], &t, 1.0)?;
                o.axpy(&mut d_xhat[0], &parts[0], 1.0)?;
            }
            Fusion::Sum => {
                o.axpy(&mut d_xhat[0], &d_units[0][0], 1.0)?;
                o.axpy(&mut d_xhat[1], &d_units[0][0], 1.0)?;
            }
            Fusion::Visual => o.axpy(&mut d_xhat[0], &d_units[0][0], 1.0)?,
            Fusion::Text => o.axpy(&mut d_xhat[1], &d_units[0][0], 1.0)?,
            Fusion::AverageGraphs => {
                o.axpy(&mut d_xhat[0], &d_units[0][0], 1.0)?;
                o.axpy(&mut d_xhat[1], &d_units[1][0], 1.0)?;
            }
        }
        if let Some((gr, d_atts)) = theta_grads {
            for (name, d) in &d_atts {
                self.add_grad(name, d)?;
            }
            self.add_theta_grads(&gr)?;
        }
        for (mm, d) in d_xhat.iter().enumerate() {
            self.add_project_grads(mm, d, None)?;
        }
        Ok(())
    }

    /// Eq. (15)-(16) on the held graph: `h = [h_u; h_i]` `[M+N, d]` with `h_i = S̃^L h^(0)`,
    /// `h^(0)` the item rows of `e` or `E_I`, and `h_u = A h_i` (zero without user semantics).
    pub(super) fn semantic(&self, e: &D::Buf<f32>) -> Result<Semantic<D::Buf<f32>>> {
        let (dev, d, m, n) = (&self.dev, self.d, self.m, self.n);
        let (s, _, _, _) = self.graph.as_ref().expect("semantic() needs the item graph");
        let mut h = self.zeros(n * d)?;
        let mut att = Vec::new();
        match self.cfg.item_graph_input {
            ItemGraphInput::Readout => dev.copy_at(&mut h, 0, e, m * d, n * d).map_err(dev_err)?,
            ItemGraphInput::Embeddings => {
                dev.copy_at(&mut h, 0, &self.p[self.ix("item_emb")], 0, n * d).map_err(dev_err)?
            }
            ItemGraphInput::Attention => att = self.attention_input(&mut h)?,
        }
        let mut hs = Vec::new();
        for _ in 0..self.cfg.ii_layers {
            let mut next = self.zeros(n * d)?;
            dev.spmm(&mut next, s, &h, d).map_err(dev_err)?;
            hs.push(std::mem::replace(&mut h, next));
        }
        let mut full = self.zeros((m + n) * d)?;
        dev.copy_at(&mut full, m * d, &h, 0, n * d).map_err(dev_err)?;
        if let (Some((a, _)), true) = (&self.inter, self.cfg.user_semantic) {
            let mut hu = self.zeros(m * d)?;
            dev.spmm(&mut hu, a, &h, d).map_err(dev_err)?;
            dev.copy_at(&mut full, 0, &hu, 0, m * d).map_err(dev_err)?;
        }
        Ok(Semantic { full, hs, att })
    }

    /// Backward of [`GpuEngine::semantic`] from `d_h [M+N, d]`: into `d_e` (readout input) or
    /// the gradient of `E_I`. The graph is frozen: no gradient for its values.
    pub(super) fn semantic_backward(
        &mut self,
        d_h: &D::Buf<f32>,
        sem: &Semantic<D::Buf<f32>>,
        d_e: &mut D::Buf<f32>,
        mut d_vals: Option<&mut Vec<f32>>,
    ) -> Result<()> {
        let hs = &sem.hs;
        let (d, m, n) = (self.d, self.m, self.n);
        let mut dh = self.zeros(n * d)?;
        self.dev.copy_at(&mut dh, 0, d_h, m * d, n * d).map_err(dev_err)?;
        if let (Some((_, a_t)), true) = (&self.inter, self.cfg.user_semantic) {
            let mut du = self.zeros(m * d)?;
            self.dev.copy_at(&mut du, 0, d_h, 0, m * d).map_err(dev_err)?;
            let mut add = self.zeros(n * d)?;
            self.dev.spmm(&mut add, a_t, &du, d).map_err(dev_err)?;
            self.dev.axpy_at(&mut dh, 0, &add, 0, n * d, 1.0).map_err(dev_err)?;
        }
        let (s, s_t, _, _) = self.graph.as_ref().expect("semantic_backward() needs the item graph");
        for l in (0..self.cfg.ii_layers).rev() {
            if let Some(dv) = d_vals.as_deref_mut() {
                // dS̃_ij += d h^(l+1)_i · h^(l)_j
                let mut o = self.zeros(dv.len())?;
                self.dev.csr_sddmm(&mut o, s, &dh, &hs[l], d).map_err(dev_err)?;
                let o = self.dev.download(&o).map_err(dev_err)?;
                dv.iter_mut().zip(o).for_each(|(a, b)| *a += b);
            }
            let mut prev = self.zeros(n * d)?;
            self.dev.spmm(&mut prev, s_t, &dh, d).map_err(dev_err)?;
            dh = prev;
        }
        match self.cfg.item_graph_input {
            ItemGraphInput::Readout => self.dev.axpy_at(d_e, m * d, &dh, 0, n * d, 1.0).map_err(dev_err),
            ItemGraphInput::Embeddings => {
                let ie = self.ix("item_emb");
                self.dev.axpy_at(&mut self.g[ie], 0, &dh, 0, n * d, 1.0).map_err(dev_err)
            }
            ItemGraphInput::Attention => self.attention_input_backward(&dh, &sem.att),
        }
    }
}
