//! Device matrices and the helpers every stage file uses, the GPU engine's counterpart of
//! `cpu/ops.rs` (no equation of its own): [`dev_err`] and [`failed`] map a device error to
//! crane's, [`Mat`] is a row-major device matrix, [`Ops`] the matrix-shaped ops over a
//! [`Device`] that return crane's error type, and [`upload_cpu_csr`] puts a CPU-engine CSR on
//! the device.

use crate::engine::cpu::ops::Csr;
use crate::error::{CraneError, Result};
use crane_gpu::device::{upload_csr, DevCsr, Device};

pub(super) fn dev_err(e: crane_gpu::GpuError) -> CraneError {
    CraneError::Invalid(e.to_string())
}

/// Maps an error of the device (or of a helper over it) to crane's, naming what failed:
/// `GPU {what} failed: {e}`. For the engine's entry points, whose callers see only the message.
pub(super) fn failed<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> CraneError {
    move |e| CraneError::Invalid(format!("GPU {what} failed: {e}"))
}

/// Row-major `[rows, cols]` device matrix.
pub(super) struct Mat<B> {
    pub b: B,
    pub rows: usize,
    pub cols: usize,
}

/// Small helpers over a device: every op returns crane's error type.
pub(super) struct Ops<'a, D: Device>(pub &'a D);

impl<D: Device> Ops<'_, D> {
    pub fn zeros(&self, rows: usize, cols: usize) -> Result<Mat<D::Buf<f32>>> {
        Ok(Mat { b: self.0.zeros(rows * cols).map_err(dev_err)?, rows, cols })
    }

    /// Rows `[s, e)` as a new matrix.
    pub fn rows(&self, x: &Mat<D::Buf<f32>>, s: usize, e: usize) -> Result<Mat<D::Buf<f32>>> {
        let mut o = self.zeros(e - s, x.cols)?;
        self.0.copy_at(&mut o.b, 0, &x.b, s * x.cols, (e - s) * x.cols).map_err(dev_err)?;
        Ok(o)
    }

    pub fn copy(&self, x: &Mat<D::Buf<f32>>) -> Result<Mat<D::Buf<f32>>> {
        self.rows(x, 0, x.rows)
    }

    /// `op(a) op(b)` with α, into a new matrix.
    pub fn mm(
        &self,
        a: &Mat<D::Buf<f32>>,
        ta: bool,
        b: &Mat<D::Buf<f32>>,
        tb: bool,
        alpha: f32,
    ) -> Result<Mat<D::Buf<f32>>> {
        let (m, k) = if ta { (a.cols, a.rows) } else { (a.rows, a.cols) };
        let n = if tb { b.rows } else { b.cols };
        let mut c = self.zeros(m, n)?;
        self.0.gemm(&mut c.b, m, n, k, &a.b, ta, &b.b, tb, alpha, 0.0).map_err(dev_err)?;
        Ok(c)
    }

    /// `c += α op(a) op(b)`.
    pub fn mm_add(
        &self,
        c: &mut Mat<D::Buf<f32>>,
        a: &Mat<D::Buf<f32>>,
        ta: bool,
        b: &Mat<D::Buf<f32>>,
        tb: bool,
        alpha: f32,
    ) -> Result<()> {
        let (m, k) = if ta { (a.cols, a.rows) } else { (a.rows, a.cols) };
        let n = if tb { b.rows } else { b.cols };
        self.0.gemm(&mut c.b, m, n, k, &a.b, ta, &b.b, tb, alpha, 1.0).map_err(dev_err)
    }

    /// `y += a x` (same shape).
    pub fn axpy(&self, y: &mut Mat<D::Buf<f32>>, x: &Mat<D::Buf<f32>>, a: f32) -> Result<()> {
        self.0.axpy_at(&mut y.b, 0, &x.b, 0, x.rows * x.cols, a).map_err(dev_err)
    }

    /// Column sums `[1, cols]` added into `g` (f64 accumulation, as the CPU engine's).
    pub fn add_col_sums(&self, g: &mut D::Buf<f32>, x: &Mat<D::Buf<f32>>) -> Result<()> {
        self.0.col_sums_add(g, &x.b, x.cols).map_err(dev_err)
    }

    /// Squared row norms on the host, `[rows]` (accumulated in f64 on the device).
    pub fn row_sq_norms(&self, x: &Mat<D::Buf<f32>>) -> Result<Vec<f32>> {
        let mut o = self.0.zeros(x.rows).map_err(dev_err)?;
        self.0.row_sq_norms(&mut o, &x.b, x.cols).map_err(dev_err)?;
        self.0.download(&o).map_err(dev_err)
    }

    pub fn scale_rows(&self, x: &mut Mat<D::Buf<f32>>, f: &D::Buf<f32>) -> Result<()> {
        self.0.scale_rows(&mut x.b, f, x.cols).map_err(dev_err)
    }

    pub fn upload(&self, v: &[f32]) -> Result<D::Buf<f32>> {
        self.0.upload(v).map_err(dev_err)
    }

    /// Backward of `y = x / ‖x‖` over row-aligned parts sharing one norm, in place on `dy`:
    /// `dx = (dy − y (y·dy)) / ‖x‖`.
    pub fn unit_backward(
        &self,
        ys: &[&Mat<D::Buf<f32>>],
        dys: &mut [Mat<D::Buf<f32>>],
        inv: &D::Buf<f32>,
    ) -> Result<()> {
        let rows = ys[0].rows;
        let mut dot = vec![0f32; rows];
        for (y, dy) in ys.iter().zip(dys.iter()) {
            let mut o = self.0.zeros(rows).map_err(dev_err)?;
            self.0.row_dots(&mut o, &y.b, &dy.b, y.cols).map_err(dev_err)?;
            let v = self.0.download(&o).map_err(dev_err)?;
            dot.iter_mut().zip(v).for_each(|(a, b)| *a += b);
        }
        let dot = self.upload(&dot)?;
        for (y, dy) in ys.iter().zip(dys.iter_mut()) {
            let mut t = self.copy(y)?;
            self.scale_rows(&mut t, &dot)?;
            self.axpy(dy, &t, -1.0)?;
            self.scale_rows(dy, inv)?;
        }
        Ok(())
    }
}

/// The pattern of the CPU engine's `Csr` `c` on the device, with `vals` (default: its own).
pub(super) fn upload_cpu_csr<D: Device>(dev: &D, c: &Csr, vals: Option<&[f32]>) -> Result<DevCsr<D>> {
    let offsets: Vec<i64> = c.offsets.iter().map(|&o| o as i64).collect();
    upload_csr(dev, &offsets, &c.idx, vals.unwrap_or(&c.vals)).map_err(dev_err)
}
