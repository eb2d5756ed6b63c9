//! The attention of the authors' code (`crane-code`), fused and tiled: each task takes a block
//! of query rows and walks the N keys in tiles of [`KEY_TILE`], so a thread holds one `[rows,
//! KEY_TILE]` score tile (in L2) and never the released code's N² per head. The forward keeps
//! a running maximum and sum per row (online softmax) and saves the log-sum-exp; the backward
//! recomputes each tile's probabilities from it, transposed (`[KEY_TILE, rows]`), and uses
//! `D_i = Σ_j P_ij dP_ij = dO_i · O_i`, so it needs no whole row either. All seven products go
//! through one register-blocked kernel, [`mac`], with fused multiply-adds in the AVX2 and
//! AVX-512 builds. Same function as `crane_reference::attention` (tested for parity on small N
//! with every row block and key tile, and with the whole model in `tests/parity.rs`, on each
//! build).
//!
//! Notation: N items, d = `x.cols`, H heads of width `dh = d / H`; per head `Q_h, K_h, V_h`
//! `[N, dh]`, probabilities `P = softmax(Q_h K_hᵀ / sqrt(dh))` `[N, N]` (never held), head
//! output `O_h = P V_h`.

use super::ops::{fast_exp, gemm, mm, mm_tn_tall, Dense};
use super::simd::{self, dispatch};
use rayon::prelude::*;

/// Keys per tile: a `[rows, KEY_TILE]` f32 tile per buffer (128 KB at 128 rows) stays in L2.
pub const KEY_TILE: usize = 256;

/// Groups of query-row blocks whose `dK`, `dV` are summed separately in the backward (then
/// added in a fixed order): tasks are (group, head) pairs, so the result does not depend on
/// the thread count, and there are `GROUPS · H` of them to share between threads.
pub const GROUPS: usize = 4;

/// Register block of [`mac`] for the wide products (`[rows, keys]` score tiles, `[dh, keys]`
/// key and value gradients): rows × columns.
const WIDE: (usize, usize) = (2, 32);

/// Register block of [`mac`] for the narrow products (`[rows, dh]` head outputs and query
/// gradients; crane-code's heads are 16 wide).
const NARROW: (usize, usize) = (4, 16);

/// Lanes of [`row_max`] and [`exp_sum`] (one AVX2 vector).
const LANES: usize = 8;

/// `[W_q, W_k, W_v, W_o]` `[d, d]`, biases `[1, d]`, head count.
pub struct Mha<'a> {
    pub w: [&'a Dense; 4],
    pub b: [&'a Dense; 4],
    pub heads: usize,
}

/// Saved values: input, Q, K, V, the concatenated head outputs, and the log-sum-exp of every
/// (row, head) `[N, H]`.
pub struct MhaCache {
    x: Dense,
    q: Dense,
    k: Dense,
    v: Dense,
    o: Dense,
    lse: Vec<f32>,
}

fn linear(x: &Dense, w: &Dense, b: &Dense) -> Dense {
    let mut y = mm(x, false, w, false);
    y.add_row_bias(b);
    y
}

/// Head `h` of `m` `[N, d]` as `[N, dh]` row-major, times `s`.
fn head(m: &Dense, h: usize, dh: usize, s: f32) -> Vec<f32> {
    m.data.chunks(m.cols).flat_map(|r| r[h * dh..(h + 1) * dh].iter().map(move |v| v * s)).collect()
}

/// Head `h` of `m` `[N, d]` transposed, times `s`: `[dh, N]`, so a key tile is contiguous per
/// column.
fn head_t(m: &Dense, h: usize, dh: usize, s: f32) -> Vec<f32> {
    let n = m.rows;
    let mut t = vec![0f32; dh * n];
    for (j, r) in m.data.chunks(m.cols).enumerate() {
        for c in 0..dh {
            t[c * n + j] = r[h * dh + c] * s;
        }
    }
    t
}

/// `out[x·ldo + j] (+)= Σ_y a[x·lda + y] · b[y·ldb + j]` for `x < nx`, `j < t`, `y < ny`: rows
/// of `b` combined with weights from rows of `a`, `R` output rows × `C` columns held in
/// registers while `y` runs (`R · C / 8` AVX2 accumulators). Every product of the attention has
/// this shape: the forward's scores `Q Kᵀ` (`b = Kᵀ`) and head output `O += P V`; the
/// backward's transposed tiles `Sᵀ = K Qᵀ` (`b = Qᵀ`), `dPᵀ = V dOᵀ`, and `dQᵀ += Kᵀ dSᵀ`,
/// `dK += dSᵀ Q`, `dV += Pᵀ dO`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn mac<const R: usize, const C: usize, const FMA: bool>(
    out: &mut [f32],
    ldo: usize,
    nx: usize,
    t: usize,
    a: &[f32],
    lda: usize,
    ny: usize,
    b: &[f32],
    ldb: usize,
    add: bool,
) {
    let full = t / C * C;
    for x in (0..nx).step_by(R) {
        // Short last blocks repeat their last row (cheaper than a branch) and store it once.
        let live = R.min(nx - x);
        let ar: [&[f32]; R] = std::array::from_fn(|k| {
            let r = (x + k).min(nx - 1);
            &a[r * lda..r * lda + ny]
        });
        for j0 in (0..full).step_by(C) {
            let mut acc = [[0f32; C]; R];
            for y in 0..ny {
                let br: &[f32; C] = b[y * ldb + j0..y * ldb + j0 + C].try_into().expect("chunk");
                for k in 0..R {
                    let w = ar[k][y];
                    for l in 0..C {
                        acc[k][l] = simd::madd::<FMA>(w, br[l], acc[k][l]);
                    }
                }
            }
            for (k, acc) in acc.iter().enumerate().take(live) {
                let o = &mut out[(x + k) * ldo + j0..(x + k) * ldo + j0 + C];
                if add {
                    o.iter_mut().zip(acc).for_each(|(o, v)| *o += v);
                } else {
                    o.copy_from_slice(acc);
                }
            }
        }
        for (k, ar) in ar.iter().enumerate().take(live) {
            for j in full..t {
                let mut s = 0f32;
                for (y, &w) in ar.iter().enumerate() {
                    s = simd::madd::<FMA>(w, b[y * ldb + j], s);
                }
                let o = &mut out[(x + k) * ldo + j];
                *o = if add { *o + s } else { s };
            }
        }
    }
}

/// Largest entry of `row` (lanes, then across them).
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder().iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    for c in chunks {
        for l in 0..LANES {
            m[l] = if c[l] > m[l] { c[l] } else { m[l] };
        }
    }
    m.iter().fold(rest, |a, &b| a.max(b))
}

/// `row ← exp(row − shift)`; returns the row's sum (lanes, added in f64). Two passes: the
/// exponentials vectorise cleanly on their own.
#[inline(always)]
fn exp_sum(row: &mut [f32], shift: f32) -> f64 {
    simd::exp_shift(row, shift);
    let mut acc = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    acc.iter().map(|&v| v as f64).sum::<f64>() + rest
}

dispatch! {
    /// One head's forward for `r` query rows: `qs` `[r, dh]` (scaled by `1/sqrt(dh)`), the
    /// keys transposed `kt` `[dh, N]`, the head's values `v` (row `j` at `j · ldv`); writes the head output `o`
    /// `[r, dh]` and the log-sum-exp of each row `lse` `[r]`. `tile` `[r, keys]` is scratch.
    fn forward_rows(qs: &[f32], kt: &[f32], v: &[f32], ldv: usize, n: usize, dh: usize, keys: usize, o: &mut [f32], lse: &mut [f32], tile: &mut [f32]) {
        let r = lse.len();
        let mut mx = vec![f32::NEG_INFINITY; r];
        let mut sum = vec![0f64; r];
        o.fill(0.0);
        for j0 in (0..n).step_by(keys) {
            let t = keys.min(n - j0);
            mac::<{ WIDE.0 }, { WIDE.1 }, FMA>(tile, keys, r, t, qs, dh, dh, &kt[j0..], n, false);
            for i in 0..r {
                let row = &mut tile[i * keys..i * keys + t];
                let m_new = mx[i].max(row_max(row));
                // Rescale what the earlier tiles gave to the new maximum.
                let alpha = if mx[i] == f32::NEG_INFINITY { 0.0 } else { fast_exp(mx[i] - m_new) };
                sum[i] = sum[i] * alpha as f64 + exp_sum(row, m_new);
                if alpha != 1.0 {
                    o[i * dh..(i + 1) * dh].iter_mut().for_each(|v| *v *= alpha);
                }
                mx[i] = m_new;
            }
            mac::<{ NARROW.0 }, { NARROW.1 }, FMA>(o, dh, r, dh, tile, keys, t, &v[j0 * ldv..], ldv, true);
        }
        for i in 0..r {
            let inv = (1.0 / sum[i]) as f32;
            o[i * dh..(i + 1) * dh].iter_mut().for_each(|v| *v *= inv);
            lse[i] = mx[i] + sum[i].ln() as f32;
        }
    }
}

dispatch! {
    /// One head's backward for `r` query rows starting at row `s`, in transposed tiles (keys ×
    /// rows): `qs` `[r, dh]` (scaled), the head's `d_o` (read in place: row `i` at `i · ld`),
    /// both transposed `[dh, N]` (`qt`, `dot`, read at columns `s..s + r`), the rows'
    /// log-sum-exp `lse` and `D = dO · O` `[r]`, keys `kt` `[dh, N]`, keys and values `k`, `v`
    /// in place (row `j` at `j · ld`); adds `dQᵀ·sqrt(dh)` into `dqt` `[dh, r]` and the rows'
    /// share of `dK`, `dV` into `dk`, `dv` `[N, dh]`. `pt`, `dst` `[keys, r]` are scratch.
    /// Holding `Pᵀ` and `dSᵀ` (not `P`, `dS`) makes the key and value gradients products with
    /// a 16-wide right side in L1 (`dK += dSᵀ Q`), where the untransposed tiles streamed the
    /// `[r, keys]` tile from L2 once per two output rows for each of them; every output is the
    /// same sum in the same order as before, so the same bits.
    fn backward_rows(qs: &[f32], qt: &[f32], d_o: &[f32], dot: &[f32], s: usize, lse: &[f32], dd: &[f32], kt: &[f32], k: &[f32], v: &[f32], ld: usize, n: usize, dh: usize, keys: usize, dqt: &mut [f32], dk: &mut [f32], dv: &mut [f32], pt: &mut [f32], dst: &mut [f32]) {
        let r = lse.len();
        for j0 in (0..n).step_by(keys) {
            let t = keys.min(n - j0);
            // Sᵀ = K Qsᵀ and dPᵀ = V dOᵀ, `[t, r]`.
            mac::<{ WIDE.0 }, { WIDE.1 }, FMA>(pt, r, t, r, &k[j0 * ld..], ld, dh, &qt[s..], n, false);
            mac::<{ WIDE.0 }, { WIDE.1 }, FMA>(dst, r, t, r, &v[j0 * ld..], ld, dh, &dot[s..], n, false);
            for j in 0..t {
                let (pr, dr) = (&mut pt[j * r..(j + 1) * r], &mut dst[j * r..(j + 1) * r]);
                simd::exp_shift_each(pr, lse);
                dr.iter_mut().zip(pr.iter()).zip(dd).for_each(|((dv, &pv), &di)| *dv = pv * (*dv - di));
            }
            mac::<{ WIDE.0 }, { WIDE.1 }, FMA>(dqt, r, dh, r, &kt[j0..], n, t, dst, r, true);
            mac::<{ NARROW.0 }, { NARROW.1 }, FMA>(&mut dk[j0 * dh..], dh, t, dh, dst, r, r, qs, dh, true);
            mac::<{ NARROW.0 }, { NARROW.1 }, FMA>(&mut dv[j0 * dh..], dh, t, dh, pt, r, r, d_o, ld, true);
        }
    }
}

/// Forward: `y` `[N, d]` and the cache; `block` query rows per task.
pub fn forward(x: &Dense, p: &Mha, block: usize) -> (Dense, MhaCache) {
    forward_tiled(x, p, block, KEY_TILE)
}

/// [`forward`] with `keys` keys per tile (tests vary it; training uses [`KEY_TILE`]).
pub fn forward_tiled(x: &Dense, p: &Mha, block: usize, keys: usize) -> (Dense, MhaCache) {
    let (n, d, hn) = (x.rows, x.cols, p.heads);
    let dh = d / hn;
    let scale = 1.0 / (dh as f32).sqrt();
    let (q, k, v) = (linear(x, p.w[0], p.b[0]), linear(x, p.w[1], p.b[1]), linear(x, p.w[2], p.b[2]));
    let (block, keys) = (block.clamp(1, n.max(1)), keys.clamp(1, n.max(1)));
    let qs: Vec<Vec<f32>> = (0..hn).map(|h| head(&q, h, dh, scale)).collect();
    let kt: Vec<Vec<f32>> = (0..hn).map(|h| head_t(&k, h, dh, 1.0)).collect();
    let mut o = Dense::zeros(n, d);
    let mut lse = vec![0f32; n * hn];
    o.data.par_chunks_mut(block * d).zip(lse.par_chunks_mut(block * hn)).enumerate().for_each(|(bi, (ob, lb))| {
        let (s, r) = (bi * block, lb.len() / hn);
        let mut tile = vec![0f32; r * keys];
        let (mut oh, mut lh) = (vec![0f32; r * dh], vec![0f32; r]);
        for h in 0..hn {
            forward_rows(
                &qs[h][s * dh..(s + r) * dh],
                &kt[h],
                &v.data[h * dh..],
                d,
                n,
                dh,
                keys,
                &mut oh,
                &mut lh,
                &mut tile,
            );
            for i in 0..r {
                ob[i * d + h * dh..i * d + (h + 1) * dh].copy_from_slice(&oh[i * dh..(i + 1) * dh]);
                lb[i * hn + h] = lh[i];
            }
        }
    });
    let y = linear(&o, p.w[3], p.b[3]);
    (y, MhaCache { x: x.clone(), q, k, v, o, lse })
}

/// Backward: `(dx, [dW_q, dW_k, dW_v, dW_o], [db_q, db_k, db_v, db_o])`.
pub fn backward(p: &Mha, c: &MhaCache, dy: &Dense, block: usize) -> (Dense, [Dense; 4], [Dense; 4]) {
    backward_tiled(p, c, dy, block, KEY_TILE)
}

/// [`backward`] with `keys` keys per tile.
pub fn backward_tiled(p: &Mha, c: &MhaCache, dy: &Dense, block: usize, keys: usize) -> (Dense, [Dense; 4], [Dense; 4]) {
    let (n, d, hn) = (c.x.rows, c.x.cols, p.heads);
    let dh = d / hn;
    let scale = 1.0 / (dh as f32).sqrt();
    let (block, keys) = (block.clamp(1, n.max(1)), keys.clamp(1, n.max(1)));
    let dwo = mm_tn_tall(&c.o, dy);
    let dbo = dy.col_sums();
    let d_o = mm(dy, false, p.w[3], true);
    let qs: Vec<Vec<f32>> = (0..hn).map(|h| head(&c.q, h, dh, scale)).collect();
    let qt: Vec<Vec<f32>> = (0..hn).map(|h| head_t(&c.q, h, dh, scale)).collect();
    let kt: Vec<Vec<f32>> = (0..hn).map(|h| head_t(&c.k, h, dh, 1.0)).collect();
    let dot: Vec<Vec<f32>> = (0..hn).map(|h| head_t(&d_o, h, dh, 1.0)).collect();
    let lse: Vec<Vec<f32>> = (0..hn).map(|h| (0..n).map(|i| c.lse[i * hn + h]).collect()).collect();
    // D_i = Σ_j P_ij dP_ij = dO_i · O_i per head: the softmax backward without a whole row.
    let dd: Vec<Vec<f32>> = (0..hn)
        .map(|h| {
            (0..n)
                .map(|i| {
                    let (a, b) = (&d_o.data[i * d + h * dh..][..dh], &c.o.data[i * d + h * dh..][..dh]);
                    a.iter().zip(b).map(|(x, y)| x * y).sum()
                })
                .collect()
        })
        .collect();
    // Tasks: (head, group of row blocks); each writes its rows of dQ_h and sums its own dK, dV.
    let blocks = n.div_ceil(block);
    let group_rows = blocks.div_ceil(GROUPS) * block;
    let mut dq_heads: Vec<Vec<f32>> = vec![vec![0f32; n * dh]; hn];
    let mut tasks: Vec<(usize, usize, &mut [f32])> = Vec::new();
    for (h, dqh) in dq_heads.iter_mut().enumerate() {
        for (g, rows) in dqh.chunks_mut(group_rows * dh).enumerate() {
            tasks.push((h, g * group_rows, rows));
        }
    }
    let sums: Vec<(usize, Vec<f32>, Vec<f32>)> = tasks
        .par_iter_mut()
        .map(|(h, s0, dq)| {
            let (h, s0) = (*h, *s0);
            let (mut dk, mut dv) = (vec![0f32; n * dh], vec![0f32; n * dh]);
            let (mut pt, mut dst) = (vec![0f32; block * keys], vec![0f32; block * keys]);
            let mut dqt = vec![0f32; dh * block];
            for (bi, dqb) in dq.chunks_mut(block * dh).enumerate() {
                let (s, r) = (s0 + bi * block, dqb.len() / dh);
                let dqt = &mut dqt[..dh * r];
                dqt.fill(0.0);
                backward_rows(
                    &qs[h][s * dh..(s + r) * dh],
                    &qt[h],
                    &d_o.data[s * d + h * dh..],
                    &dot[h],
                    s,
                    &lse[h][s..s + r],
                    &dd[h][s..s + r],
                    &kt[h],
                    &c.k.data[h * dh..],
                    &c.v.data[h * dh..],
                    d,
                    n,
                    dh,
                    keys,
                    dqt,
                    &mut dk,
                    &mut dv,
                    &mut pt[..r * keys],
                    &mut dst[..r * keys],
                );
                for i in 0..r {
                    for cc in 0..dh {
                        dqb[i * dh + cc] = dqt[cc * r + i];
                    }
                }
            }
            (h, dk, dv)
        })
        .collect();
    let (mut dq, mut dk, mut dv) = (Dense::zeros(n, d), Dense::zeros(n, d), Dense::zeros(n, d));
    for h in 0..hn {
        // Groups added in task order: the same sums whatever the thread count.
        let (mut k_sum, mut v_sum) = (vec![0f32; n * dh], vec![0f32; n * dh]);
        for (_, a, b) in sums.iter().filter(|t| t.0 == h) {
            k_sum.iter_mut().zip(a).for_each(|(s, v)| *s += v);
            v_sum.iter_mut().zip(b).for_each(|(s, v)| *s += v);
        }
        for i in 0..n {
            for cc in 0..dh {
                dq.data[i * d + h * dh + cc] = dq_heads[h][i * dh + cc] * scale;
                dk.data[i * d + h * dh + cc] = k_sum[i * dh + cc];
                dv.data[i * d + h * dh + cc] = v_sum[i * dh + cc];
            }
        }
    }
    let mut dx = mm(&dq, false, p.w[0], true);
    gemm(&mut dx, true, &dk, false, p.w[1], true, 1.0);
    gemm(&mut dx, true, &dv, false, p.w[2], true, 1.0);
    let dw = [mm_tn_tall(&c.x, &dq), mm_tn_tall(&c.x, &dk), mm_tn_tall(&c.x, &dv), dwo];
    // The key bias's gradient is zero by structure: a shift of every key adds the same q·b_k
    // to a query's scores, which its softmax ignores (Σ_j dS_ij = 0). Summing dK's rows would
    // only return f32 round-off, so it is left exactly zero (as in the GPU engine).
    // The value bias's gradient is `1ᵀdV = 1ᵀ Pᵀ dO = 1ᵀ dO = db_o W_oᵀ` (softmax rows sum to
    // 1): computed from `db_o`, it keeps its structural smallness instead of summing N rows.
    let dbv = mm(&dbo, false, p.w[3], true);
    let db = [dq.col_sums(), Dense::zeros(1, d), dbv, dbo];
    (dx, dw, db)
}

/// `1ᵀ dX` `[1, d_f]`, the column sums of [`backward`]'s input gradient, from its bias
/// gradients: `dX = dQ W_qᵀ + dK W_kᵀ + dV W_vᵀ`, so `1ᵀdX = db_q W_qᵀ + db_v W_vᵀ` (`db_k = 0`).
/// Summing dX's N rows instead returns mostly the round-off of the cancelling key and value
/// sums, for a gradient (the projection bias's) that is small by structure.
pub fn input_col_sums(p: &Mha, db: &[Dense; 4]) -> Dense {
    let mut s = mm(&db[0], false, p.w[0], true);
    gemm(&mut s, true, &db[2], false, p.w[2], true, 1.0);
    s
}
