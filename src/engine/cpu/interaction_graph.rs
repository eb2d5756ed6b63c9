//! Eq. (3)-(4) on the CPU: `H^(l+1) = σ(Â H^(l) W^(l))` over `[M+N, d]`, readout mean/last.
//! Â is symmetric by construction, so its backward reuses the forward CSR.

use super::ops::{gemm, mm, mm_tn_tall, Csr, Dense};
use crane_reference::config::{Readout, Sigma};
use rayon::prelude::*;

pub struct GcnCache {
    /// `Â H^(l)` and the pre-activation `Â H^(l) W^(l)` of each layer.
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

/// `[M+N, d] -> e [M+N, d]`.
pub fn forward(adj: &Csr, h0: &Dense, ws: &[Dense], sigma: Sigma, readout: Readout) -> (Dense, GcnCache) {
    let mut h = h0.clone();
    let mut sum = h0.clone();
    let (mut ahs, mut zs) = (Vec::new(), Vec::new());
    for w in ws {
        let ah = adj.spmm(&h);
        let z = mm(&ah, false, w, false);
        h = activate(sigma, &z);
        sum.add_assign(&h);
        ahs.push(ah);
        zs.push(z);
    }
    let e = match readout {
        Readout::Mean => {
            sum.scale(1.0 / (ws.len() as f32 + 1.0));
            sum
        }
        Readout::Last => h,
    };
    (e, GcnCache { ah: ahs, z: zs })
}

/// Returns `(dH^(0), dW^(l))`.
pub fn backward(
    adj: &Csr,
    ws: &[Dense],
    sigma: Sigma,
    readout: Readout,
    c: &GcnCache,
    d_e: &Dense,
) -> (Dense, Vec<Dense>) {
    let n = ws.len();
    let share = 1.0 / (n as f32 + 1.0);
    let direct = |l: usize| -> Option<Dense> {
        match readout {
            Readout::Mean => {
                let mut g = d_e.clone();
                g.scale(share);
                Some(g)
            }
            Readout::Last => (l == n).then(|| d_e.clone()),
        }
    };
    let mut dh = direct(n).unwrap_or_else(|| Dense::zeros(d_e.rows, d_e.cols));
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
        dws[l] = mm_tn_tall(&c.ah[l], &dz);
        let mut d_ah = Dense::zeros(dz.rows, ws[l].rows);
        gemm(&mut d_ah, false, &dz, false, &ws[l], true, 1.0);
        dh = adj.spmm(&d_ah);
        if let Some(g) = direct(l) {
            dh.add_assign(&g);
        }
    }
    (dh, dws)
}
