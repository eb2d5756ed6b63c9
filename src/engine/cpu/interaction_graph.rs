//! Eq. (3)-(4) on the CPU: `H^(l+1) = σ(Â H^(l) W^(l))` over `[M+N, d]`, readout mean/last.
//! Â is symmetric by construction, so its backward reuses the forward CSR.

use super::ops::{gemm, mm, mm_tn_tall, Csr, Dense};
use crane_reference::config::{Readout, Sigma};
use rayon::prelude::*;

pub struct GcnCache {
    /// `Â H^(l)` of each weighted layer (empty for a weightless one: its backward needs no
    /// weight gradient), and the pre-activation of each layer when σ is not the identity.
    pub ah: Vec<Dense>,
    pub z: Vec<Dense>,
}

fn activate(sigma: Sigma, z: &Dense) -> Dense {
    match sigma {
        Sigma::Identity => z.clone(),
        Sigma::LeakyRelu(s) => {
            let s = s as f32;
            let mut o = z.clone();
            o.data.par_iter_mut().for_each(|x| {
                if *x <= 0.0 {
                    *x *= s
                }
            });
            o
        }
    }
}

/// `[M+N, d] -> e [M+N, d]`. `ws[l]`: W^(l) `[d, d]`, or `None` for a weightless layer
/// (LightGCN, `gcn_weights = false`), which is the identity without multiplying by one.
pub fn forward(adj: &Csr, h0: Dense, ws: &[Option<Dense>], sigma: Sigma, readout: Readout) -> (Dense, GcnCache) {
    // H^(l) of the previous layer; `None` is H^(0), which is `sum` until the first layer adds
    // to it (after its product), so H^(0) is never copied.
    let mut h: Option<Dense> = None;
    let mut sum = h0;
    let (mut ahs, mut zs) = (Vec::new(), Vec::new());
    for w in ws {
        // A weightless identity layer after the first is its product, added into the running
        // sum in the same pass (as `sum += next` below would add it; the first layer reads
        // `sum` itself, so it takes the general path).
        if let (None, Sigma::Identity, Some(prev)) = (w, sigma, &h) {
            let next = adj.spmm_accumulate(prev, &mut sum);
            ahs.push(Dense::default());
            zs.push(Dense::default());
            h = Some(next);
            continue;
        }
        let ah = adj.spmm(h.as_ref().unwrap_or(&sum));
        let z = match w {
            Some(w) => {
                let z = mm(&ah, false, w, false);
                ahs.push(ah);
                z
            }
            None => {
                ahs.push(Dense::default());
                ah
            }
        };
        let next = match sigma {
            Sigma::Identity => {
                zs.push(Dense::default());
                z
            }
            Sigma::LeakyRelu(_) => {
                let a = activate(sigma, &z);
                zs.push(z);
                a
            }
        };
        sum.add_assign(&next);
        h = Some(next);
    }
    let e = match readout {
        Readout::Mean => {
            // Without layers the mean is H^(0) itself (a scale by 1 changes nothing).
            if !ws.is_empty() {
                sum.scale(1.0 / (ws.len() as f32 + 1.0));
            }
            sum
        }
        Readout::Last => h.unwrap_or(sum),
    };
    (e, GcnCache { ah: ahs, z: zs })
}

/// Returns `(dH^(0), dW^(l))` (`dW^(l)` empty for a weightless layer).
pub fn backward(
    adj: &Csr,
    ws: &[Option<Dense>],
    sigma: Sigma,
    readout: Readout,
    c: &GcnCache,
    d_e: Dense,
) -> (Dense, Vec<Dense>) {
    let n = ws.len();
    if n == 0 {
        // e = H^(0) for either readout.
        return (d_e, Vec::new());
    }
    let share = 1.0 / (n as f32 + 1.0);
    // The readout's direct path to each layer's output: share · dE (mean) or dE at the last.
    let mut dh = match readout {
        Readout::Mean => {
            let mut g = d_e.clone();
            g.scale(share);
            g
        }
        Readout::Last => d_e.clone(),
    };
    let mut dws = vec![Dense::default(); n];
    for l in (0..n).rev() {
        let mut dz = dh;
        if let Sigma::LeakyRelu(s) = sigma {
            let s = s as f32;
            dz.data.par_iter_mut().zip(&c.z[l].data).for_each(|(g, &z)| {
                if z <= 0.0 {
                    *g *= s
                }
            });
        }
        let d_ah = match &ws[l] {
            Some(w) => {
                dws[l] = mm_tn_tall(&c.ah[l], &dz);
                let mut d_ah = Dense::zeros(dz.rows, w.rows);
                gemm(&mut d_ah, false, &dz, false, w, true, 1.0);
                d_ah
            }
            None => dz,
        };
        dh = match readout {
            Readout::Mean => adj.spmm_plus(&d_ah, share, &d_e),
            Readout::Last => adj.spmm(&d_ah),
        };
    }
    (dh, dws)
}
