//! Small dense and sparse helpers shared by every stage of the reference.
//!
//! All dense tensors are row-major in meaning: one row per entity (user or item), one column
//! per feature. Biases are `[1, c]` matrices broadcast over rows. The helpers are written for
//! clarity, not speed: the reference is the oracle, run on graphs with tens of nodes.

use faer::Mat;
use nalgebra_sparse::CsrMatrix;

/// `a · b`, `[r, k] x [k, c] -> [r, c]`.
pub fn mm(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    a * b
}

/// `aᵀ · b`, `[k, r]ᵀ x [k, c] -> [r, c]`.
pub fn mm_tn(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    a.transpose() * b
}

/// `a · bᵀ`, `[r, k] x [c, k]ᵀ -> [r, c]`.
pub fn mm_nt(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    a * b.transpose()
}

/// Elementwise map.
pub fn map(a: &Mat<f64>, f: impl Fn(f64) -> f64) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| f(a[(i, j)]))
}

/// Elementwise combination of two matrices of equal shape.
pub fn zip(a: &Mat<f64>, b: &Mat<f64>, f: impl Fn(f64, f64) -> f64) -> Mat<f64> {
    assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()), "zip: shape mismatch");
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| f(a[(i, j)], b[(i, j)]))
}

/// `a += b`.
pub fn add_assign(a: &mut Mat<f64>, b: &Mat<f64>) {
    assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()), "add_assign: shape mismatch");
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            a[(i, j)] += b[(i, j)];
        }
    }
}

/// `a + b`.
pub fn add(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    zip(a, b, |x, y| x + y)
}

/// `s · a`.
pub fn scale(a: &Mat<f64>, s: f64) -> Mat<f64> {
    map(a, |x| s * x)
}

/// Columns side by side: `[r, ca] | [r, cb] -> [r, ca + cb]`.
pub fn hcat(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    assert_eq!(a.nrows(), b.nrows(), "hcat: row mismatch");
    let ca = a.ncols();
    Mat::from_fn(a.nrows(), ca + b.ncols(), |i, j| if j < ca { a[(i, j)] } else { b[(i, j - ca)] })
}

/// Inverse of [`hcat`]: the first `ca` columns and the rest.
pub fn hsplit(m: &Mat<f64>, ca: usize) -> (Mat<f64>, Mat<f64>) {
    let a = Mat::from_fn(m.nrows(), ca, |i, j| m[(i, j)]);
    let b = Mat::from_fn(m.nrows(), m.ncols() - ca, |i, j| m[(i, j + ca)]);
    (a, b)
}

/// Rows stacked: `[ra, c] / [rb, c] -> [ra + rb, c]`.
pub fn vcat(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    assert_eq!(a.ncols(), b.ncols(), "vcat: column mismatch");
    let ra = a.nrows();
    Mat::from_fn(ra + b.nrows(), a.ncols(), |i, j| if i < ra { a[(i, j)] } else { b[(i - ra, j)] })
}

/// Inverse of [`vcat`]: the first `ra` rows and the rest.
pub fn vsplit(m: &Mat<f64>, ra: usize) -> (Mat<f64>, Mat<f64>) {
    let a = Mat::from_fn(ra, m.ncols(), |i, j| m[(i, j)]);
    let b = Mat::from_fn(m.nrows() - ra, m.ncols(), |i, j| m[(i + ra, j)]);
    (a, b)
}

/// Gathers rows: `out[b] = m[idx[b]]`, `[|idx|, c]`.
pub fn gather_rows(m: &Mat<f64>, idx: &[usize]) -> Mat<f64> {
    Mat::from_fn(idx.len(), m.ncols(), |b, j| m[(idx[b], j)])
}

/// Adjoint of [`gather_rows`]: `dst[idx[b]] += src[b]`.
pub fn scatter_add_rows(dst: &mut Mat<f64>, idx: &[usize], src: &Mat<f64>) {
    for (b, &r) in idx.iter().enumerate() {
        for j in 0..src.ncols() {
            dst[(r, j)] += src[(b, j)];
        }
    }
}

/// Frobenius inner product `<a, b>`.
pub fn dot(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()), "dot: shape mismatch");
    let mut s = 0.0;
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            s += a[(i, j)] * b[(i, j)];
        }
    }
    s
}

/// Squared Frobenius norm.
pub fn sq_norm(a: &Mat<f64>) -> f64 {
    dot(a, a)
}

/// Column sums as a `[1, c]` row: the adjoint of broadcasting a bias over rows.
pub fn col_sums(a: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(1, a.ncols(), |_, j| (0..a.nrows()).map(|i| a[(i, j)]).sum())
}

/// `a + 1 bᵀ`: adds the `[1, c]` bias `b` to every row of `a`.
pub fn add_row_bias(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    assert_eq!((1, a.ncols()), (b.nrows(), b.ncols()), "bias must be [1, c]");
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] + b[(0, j)])
}

/// Dot product of row `i` of `a` with row `j` of `b`.
pub fn row_dot(a: &Mat<f64>, i: usize, b: &Mat<f64>, j: usize) -> f64 {
    (0..a.ncols()).map(|c| a[(i, c)] * b[(j, c)]).sum()
}

/// Largest absolute entry (0 for an empty matrix).
pub fn max_abs(a: &Mat<f64>) -> f64 {
    let mut m: f64 = 0.0;
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            m = m.max(a[(i, j)].abs());
        }
    }
    m
}

/// Sparse times dense, `[r, k] (CSR) x [k, c] -> [r, c]`, a literal row loop.
pub fn spmm(a: &CsrMatrix<f64>, x: &Mat<f64>) -> Mat<f64> {
    assert_eq!(a.ncols(), x.nrows(), "spmm: inner dimension mismatch");
    let mut out = Mat::zeros(a.nrows(), x.ncols());
    for (r, row) in a.row_iter().enumerate() {
        for (&c, &v) in row.col_indices().iter().zip(row.values()) {
            for j in 0..x.ncols() {
                out[(r, j)] += v * x[(c, j)];
            }
        }
    }
    out
}

/// Transposed sparse times dense, `[r, k]ᵀ (CSR) x [r, c] -> [k, c]`: the adjoint of [`spmm`]
/// with respect to its dense argument, computed by scattering so no transpose is built.
pub fn spmm_t(a: &CsrMatrix<f64>, g: &Mat<f64>) -> Mat<f64> {
    assert_eq!(a.nrows(), g.nrows(), "spmm_t: dimension mismatch");
    let mut out = Mat::zeros(a.ncols(), g.ncols());
    for (r, row) in a.row_iter().enumerate() {
        for (&c, &v) in row.col_indices().iter().zip(row.values()) {
            for j in 0..g.ncols() {
                out[(c, j)] += v * g[(r, j)];
            }
        }
    }
    out
}

/// `[r, c]` matrix from row-major nested data (tests and examples).
pub fn from_rows(rows: &[&[f64]]) -> Mat<f64> {
    let c = rows.first().map_or(0, |r| r.len());
    Mat::from_fn(rows.len(), c, |i, j| rows[i][j])
}

/// Smallest absolute non-zero entry (infinity if none): the distance to a ReLU kink.
///
/// Exact zeros are skipped: in these models they are structural (a node with no kept edge,
/// a user with no items), stay exactly zero under any perturbation of the parameters, and
/// receive no gradient through the kink, so they do not make a finite difference unreliable.
pub fn min_abs(a: &Mat<f64>) -> f64 {
    let mut m = f64::INFINITY;
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            let v = a[(i, j)].abs();
            if v != 0.0 {
                m = m.min(v);
            }
        }
    }
    m
}

/// Column indices stored in row `r` of a CSR matrix (the neighbours N(u) of user r in A).
pub fn row_cols(a: &CsrMatrix<f64>, r: usize) -> &[usize] {
    let o = a.row_offsets();
    &a.col_indices()[o[r]..o[r + 1]]
}
