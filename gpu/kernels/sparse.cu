// CRANE_INF: NVRTC compiles without <cmath>, so infinity is spelled from its bits.
#define CRANE_INF __int_as_float(0x7f800000)

// CSR × row-major dense products and row gathers/scatters. One warp per output row: the
// lanes stride over the row's columns of x, so a row of the output is written by one warp and
// no atomics are needed (deterministic, like the CPU engine's row-parallel loop).

// out[r, :] = Σ_e vals[e] · x[idx[e], :] for e in offsets[r]..offsets[r+1]; out is [rows, c].
extern "C" __global__ void csr_spmm(float *out, const long long *offsets, const unsigned int *idx, const float *vals,
                                    const float *x, int rows, int c) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (warp >= rows) return;
    for (int col = lane; col < c; col += 32) {
        float acc = 0.0f;
        for (long long e = offsets[warp]; e < offsets[warp + 1]; e++) acc += vals[e] * x[(long long)idx[e] * c + col];
        out[(long long)warp * c + col] = acc;
    }
}

// out[k, :] = x[rows[k], :] for k < n; x and out have c columns.
extern "C" __global__ void gather_rows(float *out, const float *x, const unsigned int *rows, int n, int c) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (long long)n * c) out[i] = x[(long long)rows[i / c] * c + i % c];
}

// dst[rows[k], :] += src[k, :] for sorted, segmented rows: seg[s]..seg[s+1] are the entries of
// one destination row, so each thread owns one (row, column) and sums its segment in order.
extern "C" __global__ void segment_scatter_add(float *dst, const float *src, const unsigned int *rows,
                                               const int *seg, const int *order, int n_seg, int c) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n_seg * c) return;
    int s = i / c, col = i % c;
    float acc = 0.0f;
    for (int e = seg[s]; e < seg[s + 1]; e++) acc += src[(long long)order[e] * c + col];
    dst[(long long)rows[order[seg[s]]] * c + col] += acc;
}

// Sampled dot products on a CSR pattern: out[e] = a[r, :] · b[idx[e], :] for the entries e of
// row r (the gradient of S̃'s values in Eq. 15). One thread per entry; a, b have c columns.
extern "C" __global__ void csr_sddmm(float *out, const long long *offsets, const unsigned int *idx, const float *a,
                                     const float *b, int rows, long long nnz, int c) {
    long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= nnz) return;
    // Binary search for the row of entry e.
    int lo = 0, hi = rows;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (offsets[mid] <= e) lo = mid; else hi = mid;
    }
    const float *pa = a + (long long)lo * c, *pb = b + (long long)idx[e] * c;
    float acc = 0.0f;
    for (int q = 0; q < c; q++) acc += pa[q] * pb[q];
    out[e] = acc;
}
