// CRANE_INF: NVRTC compiles without <cmath>, so infinity is spelled from its bits.
#define CRANE_INF __int_as_float(0x7f800000)

// Streaming top-k per row of a [block, n] similarity (Eq. 14) or score (evaluation) buffer.
// One thread per row keeps its k best (value, index) pairs sorted, largest first, ties to the
// smaller index (the reference's order). k ≤ 64. Entries listed in `mask` (CSR over rows:
// mask_off[r]..mask_off[r+1] of mask_idx) are skipped: the training items at evaluation.

#define MAX_K 64

extern "C" __global__ void row_topk(const float *s, int rows, int n, int k, const long long *mask_off,
                                    const unsigned int *mask_idx, unsigned int *out_idx, float *out_val) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows || k > MAX_K) return;
    float best_v[MAX_K];
    unsigned int best_i[MAX_K];
    int have = 0;
    long long m = mask_off ? mask_off[r] : 0, m_end = mask_off ? mask_off[r + 1] : 0;
    const float *row = s + (long long)r * n;
    for (int j = 0; j < n; j++) {
        // mask_idx is sorted within the row: advance the cursor.
        while (m < m_end && mask_idx[m] < (unsigned int)j) m++;
        if (m < m_end && mask_idx[m] == (unsigned int)j) continue;
        float v = row[j];
        if (v != v) continue;  // NaN never ranks
        if (have == k && !(v > best_v[k - 1])) continue;  // ties keep the earlier (smaller) index
        int p = have < k ? have++ : k - 1;
        while (p > 0 && v > best_v[p - 1]) {
            best_v[p] = best_v[p - 1];
            best_i[p] = best_i[p - 1];
            p--;
        }
        best_v[p] = v;
        best_i[p] = j;
    }
    for (int q = 0; q < k; q++) {
        out_idx[(long long)r * k + q] = q < have ? best_i[q] : 0xffffffffu;
        out_val[(long long)r * k + q] = q < have ? best_v[q] : -CRANE_INF;
    }
}
