// CRANE_INF: NVRTC compiles without <cmath>, so infinity is spelled from its bits.
#define CRANE_INF __int_as_float(0x7f800000)

// Eq. (18): BPR on B triplets with z tables zu [M, d], zi [N, d]: one thread per triplet writes
// its softplus term and the coefficient σ(ŷ_uj − ŷ_ui)/B of its gradient; the row gradients
// are then formed by a segmented scatter (deterministic) on the host-sorted triplets.
extern "C" __global__ void bpr_terms(const float *zu, const float *zi, const unsigned int *u, const unsigned int *i,
                                     const unsigned int *j, int b, int d, float *loss, float *coef) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= b) return;
    const float *pu = zu + (long long)u[k] * d, *pi = zi + (long long)i[k] * d, *pj = zi + (long long)j[k] * d;
    double pos = 0.0, neg = 0.0;
    for (int c = 0; c < d; c++) {
        pos += (double)pu[c] * pi[c];
        neg += (double)pu[c] * pj[c];
    }
    double x = neg - pos;
    loss[k] = (float)(x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x)));
    double sg = x >= 0.0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
    coef[k] = (float)(sg / b);
}

// Eq. (19): row-wise softmax of InfoNCE logits [n, n] (already divided by τ), in place, and the
// per-row loss −log p_ii. One block per row.
extern "C" __global__ void info_nce_rows(float *logits, int n, float *row_loss) {
    int r = blockIdx.x;
    if (r >= n) return;
    float *row = logits + (long long)r * n;
    __shared__ float red[256];
    float mx = -CRANE_INF;
    for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, row[j]);
    red[threadIdx.x] = mx;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {
        if (threadIdx.x < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
        __syncthreads();
    }
    mx = red[0];
    __syncthreads();
    float z = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) z += expf(row[j] - mx);
    red[threadIdx.x] = z;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {
        if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    z = red[0];
    if (threadIdx.x == 0) row_loss[r] = mx + logf(z) - row[r];
    __syncthreads();
    for (int j = threadIdx.x; j < n; j += blockDim.x) row[j] = expf(row[j] - mx) / z;
}
