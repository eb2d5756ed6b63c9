// CRANE_INF: NVRTC compiles without <cmath>, so infinity is spelled from its bits.
#define CRANE_INF __int_as_float(0x7f800000)

// Elementwise kernels of the CRANE engine. One thread per element; n is the element count.

// Eq. (10): C = tanh(X Pᵀ) on a [block, M+N] buffer, in place.
extern "C" __global__ void tanh_inplace(float *x, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = tanhf(x[i]);
}

// Backward of tanh from the forward output y: dx = dy (1 - y^2), in place on dy.
extern "C" __global__ void tanh_backward(float *dy, const float *y, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dy[i] *= 1.0f - y[i] * y[i];
}

// σ of Eq. (3)-(4): leaky ReLU with slope s (identity when s = 1).
extern "C" __global__ void leaky_relu(float *y, const float *x, float s, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] > 0.0f ? x[i] : s * x[i];
}

extern "C" __global__ void leaky_relu_backward(float *dx, const float *x, const float *dy, float s, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dx[i] = x[i] > 0.0f ? dy[i] : s * dy[i];
}

// y += a x.
extern "C" __global__ void axpy(float *y, const float *x, float a, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += a * x[i];
}

// Adds the [1, c] bias b to every row of x [r, c].
extern "C" __global__ void add_row_bias(float *x, const float *b, long long r, int c) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < r * c) x[i] += b[i % c];
}

// Adam without weight decay as torch.optim.Adam's single-tensor path writes it (and the CPU
// engine's simd::adam_update): m += (1-b1)(g - m) (its lerp), v = b2 v + (1-b2) g^2,
// p -= step_size * m / (sqrt(v) / c2_sqrt + eps), with step_size = lr / (1 - b1^t) and
// c2_sqrt = sqrt(1 - b2^t) computed on the host (1 - b in double there).
extern "C" __global__ void adam_step(float *p, const float *g, float *m, float *v, float b2, float omb1,
                                     float omb2, float eps, float step_size, float c2_sqrt, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float gi = g[i];
        float mi = m[i] + omb1 * (gi - m[i]);
        float vi = b2 * v[i] + omb2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * (mi / (sqrtf(vi) / c2_sqrt + eps));
    }
}

// x *= a.
extern "C" __global__ void scale(float *x, float a, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= a;
}

// x[k, :] *= f[k] for x [r, c].
extern "C" __global__ void scale_rows(float *x, const float *f, long long r, int c) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < r * c) x[i] *= f[i / c];
}

// out[k] = Σ_c x[k, c]² for x [r, c], accumulated in double (the regularisation's norms).
extern "C" __global__ void row_sq_norms(float *out, const float *x, long long r, int c) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= r) return;
    double acc = 0.0;
    for (int q = 0; q < c; q++) acc += (double)x[k * c + q] * x[k * c + q];
    out[k] = (float)acc;
}

// out[k] = Σ_c a[k, c] b[k, c] for a, b [r, c].
extern "C" __global__ void row_dots(float *out, const float *a, const float *b, long long r, int c) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= r) return;
    float acc = 0.0f;
    for (int q = 0; q < c; q++) acc += a[k * c + q] * b[k * c + q];
    out[k] = acc;
}

// x[i, i] += a for x [n, n].
extern "C" __global__ void add_diag(float *x, float a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[(long long)i * n + i] += a;
}

// Strided copy of a column band: dst[r, dst_off + c] = src[r, src_off + c] for c < width, with
// row lengths dst_cols and src_cols (one attention head's columns in and out of [N, d]).
extern "C" __global__ void copy_cols(float *dst, int dst_cols, int dst_off, const float *src, int src_cols,
                                     int src_off, int width, long long rows) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * width) return;
    long long r = i / width;
    int c = i % width;
    dst[r * dst_cols + dst_off + c] = src[r * src_cols + src_off + c];
}

// g[c] += Σ_r x[r, c] for x [r, cols], accumulated in double (bias gradients: sums over all rows
// whose exact value is often ~0 by structure, so round-off must stay small).
extern "C" __global__ void col_sums_add(float *g, const float *x, long long r, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    double acc = 0.0;
    for (long long k = 0; k < r; k++) acc += (double)x[k * cols + c];
    g[c] += (float)acc;
}
