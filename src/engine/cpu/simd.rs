//! The element-wise passes over `[block, N]` buffers (RCA's tanh and 1 − C², the attention's
//! exponentials), compiled three times: for the baseline x86-64 target (SSE2, 4 lanes), for
//! AVX2 + FMA (8 lanes) and for AVX-512 (16 lanes), chosen at run time ([`level`]). faer
//! dispatches its GEMMs this way; these loops did not, and `perf` had them at 58% of
//! crane-code's attention time, all in 4-lane SSE. The builds of these element-wise kernels
//! compute the same f32 operations in the same order per element (Rust never fuses `a * b + c`
//! into an FMA on its own, and the reductions use explicit lanes), so their results are
//! bit-identical whichever runs (tested). The attention's products (`attention.rs`) are the
//! exception: they ask for fused multiply-adds in the AVX2 and AVX-512 builds ([`madd`]), about
//! 15% faster, so crane-code's numbers differ in round-off between those two and the baseline
//! (tested against the reference in each); the AVX2 and AVX-512 builds give the same bits.
//! AVX-512 halves the exponentials' time in crane-code's attention backward (18% of it → 9%),
//! but not the register-blocked products', which stay bound by L2 traffic at 16 lanes
//! (`crane bench-attention`; docs/BENCHMARKS.md, "An AVX-512 build").

use super::ops::{fast_exp, fast_tanh};

/// Defines `$vis fn $name(args) -> ret` running `$body` compiled for AVX-512 or AVX2 + FMA when
/// the CPU has them ([`level`]), else for the baseline target. Everything `$body` calls must be
/// `#[inline]` (or `#[inline(always)]`) to be compiled into the wider builds; `attention.rs`
/// uses it too. `$body` sees a constant `FMA: bool`, true in the AVX2 and AVX-512 builds, for
/// code that wants fused multiply-adds there (see [`madd`]); the element-wise kernels of this
/// file do not use it.
macro_rules! dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn generic<const FMA: bool>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    generic::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    generic::<true>($($arg),*)
                }
                match $crate::engine::cpu::simd::level() {
                    // SAFETY: `level` checked that this CPU has AVX-512F/VL, AVX2 and FMA.
                    $crate::engine::cpu::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: `level` checked that this CPU has AVX2 and FMA.
                    $crate::engine::cpu::simd::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::engine::cpu::simd::Level::Baseline => {}
                }
            }
            generic::<false>($($arg),*)
        }
    };
}

/// `a · b + c`: one fused multiply-add (one rounding) when `FMA` (the AVX2 and AVX-512 builds,
/// where it is one instruction), else a multiply and an add (where `mul_add` would be a slow
/// library call).
#[inline(always)]
pub fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

pub(super) use dispatch;

/// The build of the [`dispatch`]ed kernels that runs on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Baseline x86-64 (SSE2), or not x86-64.
    Baseline,
    /// AVX2 + FMA (8 lanes).
    Avx2,
    /// AVX-512F/VL + AVX2 + FMA (16 lanes). The same operations per element as the AVX2 build
    /// (fused multiply-adds in both), so the same bits.
    Avx512,
}

/// The build in use: the best this CPU has, lowered by `CRANE_NO_AVX512` (to AVX2) or
/// `CRANE_NO_AVX2` (to the baseline), switches that let a test compare the builds on one
/// machine.
pub fn level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let off = |v: &str| std::env::var_os(v).is_some();
        match cpu_level() {
            _ if off("CRANE_NO_AVX2") => Level::Baseline,
            Level::Avx512 if off("CRANE_NO_AVX512") => Level::Avx2,
            l => l,
        }
    })
}

/// The best build this CPU can run (whatever the switches say).
pub fn cpu_level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if !(has!("avx2") && has!("fma")) {
            return Level::Baseline;
        }
        if has!("avx512f") && has!("avx512vl") {
            return Level::Avx512;
        }
        Level::Avx2
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Level::Baseline
    }
}

/// Whether this CPU has AVX2 and FMA (whatever `CRANE_NO_AVX2` says).
pub fn cpu_has_avx2_fma() -> bool {
    cpu_level() != Level::Baseline
}

dispatch! {
    /// `c ← tanh(c)` ([`fast_tanh`]).
    pub fn tanh_in_place(c: &mut [f32]) {
        c.iter_mut().for_each(|v| *v = fast_tanh(*v));
    }
}

dispatch! {
    /// `d ← d ⊙ (1 − c²)`: the derivative of tanh from its output.
    pub fn mul_one_minus_sq(d: &mut [f32], c: &[f32]) {
        d.iter_mut().zip(c).for_each(|(g, t)| *g *= 1.0 - t * t);
    }
}

dispatch! {
    /// `row[i] ← exp(row[i] − l[i])`: a column of softmax rows (a row of a transposed
    /// probability tile) recomputed from the rows' log-sum-exps `l` `[row.len()]`.
    pub fn exp_shift_each(row: &mut [f32], l: &[f32]) {
        row.iter_mut().zip(l).for_each(|(v, &l)| *v = fast_exp(*v - l));
    }
}

dispatch! {
    /// `row ← exp(row − l)`: a softmax row recomputed from its log-sum-exp `l`.
    pub fn exp_shift(row: &mut [f32], l: f32) {
        row.iter_mut().for_each(|v| *v = fast_exp(*v - l));
    }
}

/// Adam's per-step constants in the form [`adam_update`] uses (`step_size = lr / c1`,
/// `c2_sqrt = √c2`, `c_k = 1 − β_kᵗ`, `1 − β_k` taken in f64): the GPU crate's type, so that
/// both engines' steps are built by the same `AdamStep::new`.
pub type AdamStep = crane_gpu::device::AdamConsts;

dispatch! {
    /// One Adam step over a chunk, as PyTorch writes it: `m ← m + (1−β1)(g − m)` (its `lerp`),
    /// `v ← β2 v + (1−β2) g²`, `p ← p − step_size · m / (√v / √c2 + ε)`, which is the
    /// reference's `lr · (m / c1) / (√(v / c2) + ε)` with one square root and two divisions per
    /// element instead of four operations of that cost (the update is bound by them, not by
    /// memory, at SSE width). Clears `g` as it goes: the gradient is consumed.
    pub fn adam_update(p: &mut [f32], g: &mut [f32], m: &mut [f32], v: &mut [f32], s: AdamStep) {
        let n = p.len();
        let (g, m, v) = (&mut g[..n], &mut m[..n], &mut v[..n]);
        for k in 0..n {
            let gk = g[k];
            m[k] += s.one_minus_beta1 * (gk - m[k]);
            v[k] = s.beta2 * v[k] + s.one_minus_beta2 * gk * gk;
            p[k] -= s.step_size * (m[k] / (v[k].sqrt() / s.c2_sqrt + s.eps));
            g[k] = 0.0;
        }
    }
}

/// `o` as initialised values.
///
/// # Safety
/// Every entry of `o` must have been written.
#[inline(always)]
pub(super) unsafe fn assume_init(o: &mut [std::mem::MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and the caller wrote every entry.
    unsafe { &mut *(o as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) }
}

/// Row width of [`spmm_rows`]'s register-held accumulator: the embedding size of every preset.
pub const SPMM_WIDTH: usize = 64;

dispatch! {
    /// Rows `row0..row0 + out.len() / c` of `S · x` (`S` in CSR: `offsets`, `idx`, `vals`; `x`
    /// `[k, c]` row-major) into `out`, every entry written. Each entry is `0 + Σ v·x` in the
    /// order of the row's entries, whatever the path, so both builds give the same bits. At
    /// `c = 64` a row's sum stays in registers (eight AVX2 vectors) across its entries, where
    /// summing into memory loaded and stored the output row once per entry.
    pub fn spmm_rows(
        offsets: &[usize],
        idx: &[u32],
        vals: &[f32],
        x: &[f32],
        c: usize,
        row0: usize,
        out: &mut [std::mem::MaybeUninit<f32>]
    ) {
        const W: usize = SPMM_WIDTH;
        if c == W {
            for (k, o) in out.chunks_exact_mut(W).enumerate() {
                let r = row0 + k;
                let mut acc = [0f32; W];
                for e in offsets[r]..offsets[r + 1] {
                    let v = vals[e];
                    let xr: &[f32; W] = x[idx[e] as usize * W..][..W].try_into().expect("row of x");
                    for t in 0..W {
                        acc[t] += v * xr[t];
                    }
                }
                for (d, s) in o.iter_mut().zip(acc) {
                    d.write(s);
                }
            }
            return;
        }
        for (k, o) in out.chunks_exact_mut(c).enumerate() {
            let r = row0 + k;
            o.iter_mut().for_each(|d| {
                d.write(0.0);
            });
            // SAFETY: every entry of `o` was just written.
            let o = unsafe { assume_init(o) };
            for e in offsets[r]..offsets[r + 1] {
                let v = vals[e];
                for (a, b) in o.iter_mut().zip(&x[idx[e] as usize * c..][..c]) {
                    *a += v * b;
                }
            }
        }
    }
}
