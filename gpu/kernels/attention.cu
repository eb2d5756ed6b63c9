// CRANE_INF: NVRTC compiles without <cmath>, so infinity is spelled from its bits.
#define CRANE_INF __int_as_float(0x7f800000)

// crane-code's attention, blocked by query rows: softmax of a [b, n] score block in place,
// saving each row's log-sum-exp for the backward. One block per row (blockDim ≤ 256).
extern "C" __global__ void softmax_rows_lse(float *s, int b, int n, float *lse) {
    int r = blockIdx.x;
    if (r >= b) return;
    float *row = s + (long long)r * n;
    __shared__ float red[256];
    float mx = -CRANE_INF;
    for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, row[j]);
    red[threadIdx.x] = mx;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k /= 2) {
        if (threadIdx.x < k) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + k]);
        __syncthreads();
    }
    mx = red[0];
    __syncthreads();
    // The sum in double: P is recomputed from the lse in the backward, and its row sums must
    // stay 1 to f32 precision (the biases' gradients that are zero by structure depend on it).
    __shared__ double zred[256];
    double z = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) z += (double)expf(row[j] - mx);
    zred[threadIdx.x] = z;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k /= 2) {
        if (threadIdx.x < k) zred[threadIdx.x] += zred[threadIdx.x + k];
        __syncthreads();
    }
    z = zred[0];
    if (threadIdx.x == 0) lse[r] = (float)((double)mx + log(z));
    for (int j = threadIdx.x; j < n; j += blockDim.x) row[j] = (float)((double)expf(row[j] - mx) / z);
}

// Backward: P recomputed as exp(S − lse) into s, and dS = P ⊙ (dP − D_r) into dp, with
// D_r = Σ_j P_rj dP_rj. One block per row.
extern "C" __global__ void softmax_rows_backward(float *s, float *dp, const float *lse, int b, int n) {
    int r = blockIdx.x;
    if (r >= b) return;
    float *srow = s + (long long)r * n, *drow = dp + (long long)r * n;
    __shared__ double red[256];
    double acc = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        srow[j] = expf(srow[j] - lse[r]);
        acc += (double)srow[j] * drow[j];
    }
    red[threadIdx.x] = acc;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k /= 2) {
        if (threadIdx.x < k) red[threadIdx.x] += red[threadIdx.x + k];
        __syncthreads();
    }
    float d = (float)red[0];
    for (int j = threadIdx.x; j < n; j += blockDim.x) drow[j] = srow[j] * (drow[j] - d);
}
