// CRANE_INF: NVRTC compiles without <cmath>, so infinity is spelled from its bits.
#define CRANE_INF __int_as_float(0x7f800000)

// Streaming top-k per row of a [block, n] similarity (Eq. 14) or score (evaluation) buffer.
// Order: largest first, ties to the smaller index, NaN ranked as -inf (the evaluator's order,
// crane::eval::top_k). k <= 64. Entries listed in `mask` (CSR over rows: mask_off[r] ..
// mask_off[r+1] of mask_idx, sorted) are skipped: the training items at evaluation. Rows with
// fewer than k candidates are padded with (0xffffffff, -inf).
//
// One warp per row: lane l scans columns l, l+32, ... (coalesced loads across the warp) and
// keeps its own sorted k best; then k rounds of a warp arg-max over the lanes' current heads
// emit the row's k best in order. One thread per row left the GPU mostly idle at evaluation
// (1024 users per block) and read each row with 32 lines per warp load.

#define MAX_K 64
#define FULL 0xffffffffu

// (av, ai) ranks before (bv, bi): higher value, then smaller index.
__device__ __forceinline__ bool topk_before(float av, unsigned int ai, float bv, unsigned int bi) {
    return av > bv || (av == bv && ai < bi);
}

extern "C" __global__ void row_topk(const float *s, int rows, int n, int k, const long long *mask_off,
                                    const unsigned int *mask_idx, unsigned int *out_idx, float *out_val) {
    long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    // Uniform across the warp (blockDim is a multiple of 32), so the shuffles below see all lanes.
    if (warp >= rows || k > MAX_K || k <= 0) return;
    float best_v[MAX_K];
    unsigned int best_i[MAX_K];
    int have = 0;
    long long m = mask_off ? mask_off[warp] : 0, m_end = mask_off ? mask_off[warp + 1] : 0;
    const float *row = s + warp * n;
    for (int j = lane; j < n; j += 32) {
        // Each lane's columns increase, so one cursor per lane walks the sorted mask once.
        while (m < m_end && mask_idx[m] < (unsigned int)j) m++;
        if (m < m_end && mask_idx[m] == (unsigned int)j) continue;
        float v = row[j];
        if (v != v) v = -CRANE_INF;
        if (have == k && !topk_before(v, j, best_v[k - 1], best_i[k - 1])) continue;
        int p = have < k ? have++ : k - 1;
        while (p > 0 && topk_before(v, j, best_v[p - 1], best_i[p - 1])) {
            best_v[p] = best_v[p - 1];
            best_i[p] = best_i[p - 1];
            p--;
        }
        best_v[p] = v;
        best_i[p] = j;
    }
    // Merge: every round, the butterfly leaves the best head on every lane; columns belong to
    // one lane each, so exactly one lane recognises its head and advances.
    int head = 0;
    for (int q = 0; q < k; q++) {
        float v = head < have ? best_v[head] : -CRANE_INF;
        unsigned int i = head < have ? best_i[head] : 0xffffffffu;
        float bv = v;
        unsigned int bi = i;
        for (int off = 16; off > 0; off >>= 1) {
            float ov = __shfl_xor_sync(FULL, bv, off);
            unsigned int oi = __shfl_xor_sync(FULL, bi, off);
            if (topk_before(ov, oi, bv, bi)) {
                bv = ov;
                bi = oi;
            }
        }
        if (head < have && bi == i) head++;
        if (lane == 0) {
            out_idx[warp * k + q] = bi;
            out_val[warp * k + q] = bv;
        }
    }
}
