// fathom's GPU kernels, compiled at run time by NVRTC (see kernels.rs).
//
// Every search keeps, per query, the k best (smallest) keys found so far in global memory,
// sorted ascending; a kernel launch merges one batch of candidates into them. Keys are
// squared L2 distances, or negated inner products, so "smaller is better" throughout.
//
// Selection in a block (block_topk_*): the current best k (padded to KPOW, a power of two
// ≥ k and ≥ blockDim) live in shared memory. Threads offer candidates in rounds of one per
// thread; a candidate enters a shared buffer only if it beats the current k-th best, so once
// the best set is good, almost nothing is buffered and the scan runs at memory speed. When
// the buffer could overflow in the next round it is merged: bitonic sort of the buffer
// (2·KPOW), then min(best[i], buf[KPOW−1−i]) is a bitonic sequence holding the KPOW
// smallest of both, and a bitonic merge sorts it. k ≤ 2048, as Faiss's GPU k-selection.

#define FATHOM_INF __int_as_float(0x7f800000)

struct TopK {
    float* bd;       // best keys [kpow]
    long long* bi;   // best ids  [kpow]
    float* cd;       // buffer keys [2 kpow]
    long long* ci;   // buffer ids  [2 kpow]
    int* count;      // buffered entries
    int k;
    int kpow;
};

__device__ TopK topk_layout(unsigned char* smem, int k, int kpow) {
    TopK t;
    t.bd = (float*)smem;
    t.cd = t.bd + kpow;
    t.bi = (long long*)(t.cd + 2 * kpow);
    t.ci = t.bi + kpow;
    t.count = (int*)(t.ci + 2 * kpow);
    t.k = k;
    t.kpow = kpow;
    return t;
}

// Bytes of shared memory a TopK of this size needs (kept in step with kernels.rs).
// 3·kpow floats + 3·kpow ids + one int, padded to 16.

__device__ void topk_load(TopK t, const float* gd, const long long* gi) {
    for (int i = threadIdx.x; i < t.kpow; i += blockDim.x) {
        t.bd[i] = i < t.k ? gd[i] : FATHOM_INF;
        t.bi[i] = i < t.k ? gi[i] : -1;
    }
    if (threadIdx.x == 0) *t.count = 0;
    __syncthreads();
}

__device__ void bitonic_sort(float* d, long long* id, int n) {
    for (int size = 2; size <= n; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int p = threadIdx.x; p < (n >> 1); p += blockDim.x) {
                int i = (p / stride) * 2 * stride + (p % stride);
                int j = i + stride;
                bool up = (i & size) == 0;
                if ((d[i] > d[j]) == up) {
                    float td = d[i]; d[i] = d[j]; d[j] = td;
                    long long ti = id[i]; id[i] = id[j]; id[j] = ti;
                }
            }
            __syncthreads();
        }
    }
}

// Merges the buffer into the best set. Called by every thread of the block.
__device__ void topk_flush(TopK t) {
    __syncthreads();
    int n = *t.count;
    if (n == 0) return;
    int cap = 2 * t.kpow;
    for (int i = n + threadIdx.x; i < cap; i += blockDim.x) {
        t.cd[i] = FATHOM_INF;
        t.ci[i] = -1;
    }
    __syncthreads();
    bitonic_sort(t.cd, t.ci, cap);
    for (int i = threadIdx.x; i < t.kpow; i += blockDim.x) {
        int j = t.kpow - 1 - i;
        if (t.cd[j] < t.bd[i]) {
            t.bd[i] = t.cd[j];
            t.bi[i] = t.ci[j];
        }
    }
    __syncthreads();
    for (int stride = t.kpow >> 1; stride > 0; stride >>= 1) {
        for (int p = threadIdx.x; p < (t.kpow >> 1); p += blockDim.x) {
            int i = (p / stride) * 2 * stride + (p % stride);
            int j = i + stride;
            if (t.bd[i] > t.bd[j]) {
                float td = t.bd[i]; t.bd[i] = t.bd[j]; t.bd[j] = td;
                long long ti = t.bi[i]; t.bi[i] = t.bi[j]; t.bi[j] = ti;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) *t.count = 0;
    __syncthreads();
}

// One round: every thread of the block calls this, `has` false when it has no candidate.
__device__ void topk_offer(TopK t, bool has, float key, long long id) {
    // The k-th best is stable during a round: merges happen only between rounds.
    float thr = t.bd[t.k - 1];
    if (has && key < thr) {
        int pos = atomicAdd(t.count, 1);
        t.cd[pos] = key;
        t.ci[pos] = id;
    }
    __syncthreads();
    // count ≤ kpow before a round and kpow ≥ blockDim, so the buffer (2·kpow) never
    // overflows; merge once it holds more than kpow. Every thread reads the count before
    // any thread can add to it in the next round, so all take the same branch.
    int n = *t.count;
    __syncthreads();
    if (n > t.kpow) topk_flush(t);
}

__device__ void topk_store(TopK t, float* gd, long long* gi) {
    topk_flush(t);
    for (int i = threadIdx.x; i < t.k; i += blockDim.x) {
        gd[i] = t.bd[i];
        gi[i] = t.bi[i];
    }
}

extern "C" __global__ void init_best(float* d, long long* i, long long n) {
    long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j < n) {
        d[j] = FATHOM_INF;
        i[j] = -1;
    }
}

// Half precision without cuda_fp16.h (NVRTC is given no include path): vectors stored in
// FP16 are raw 16-bit words, widened by the PTX conversion.
__device__ __forceinline__ float elem(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float elem(const unsigned short* p, long long i) {
#ifdef FATHOM_HOST_EMULATION
    return fathom_emu_half_to_float(p[i]);  // tests/emu: the kernels run on the CPU
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i]));
    return f;
#endif
}

// Squared norms of n rows of dimension dim.
template <typename T>
__device__ void l2_norms_rows(const T* __restrict__ x, long long n, int dim,
                              float* __restrict__ out) {
    long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    const T* v = x + r * dim;
    float s = 0.f;
    for (int j = 0; j < dim; j++) {
        float e = elem(v, j);
        s += e * e;
    }
    out[r] = s;
}

extern "C" __global__ void l2_norms(const float* __restrict__ x, long long n, int dim,
                                    float* __restrict__ out) {
    l2_norms_rows(x, n, dim, out);
}

extern "C" __global__ void l2_norms_f16(const unsigned short* __restrict__ x, long long n,
                                        int dim, float* __restrict__ out) {
    l2_norms_rows(x, n, dim, out);
}

// Re-ranking after a lower-precision pass (tensor cores): each query's kc candidates
// (cand_i, with their approximate keys cand_d, ascending; −1 where there were fewer
// vectors) get exact FP32 keys against the stored rows of data, and the best k of them go
// to best_d / best_i (filled with +inf / −1 before). One block per query.
//
// certain[q] = 1 when no vector outside the candidates can belong to the exact best k:
// every such vector's approximate key is ≥ the last candidate's, and an approximate key is
// within err = err_a·‖q‖ + err_b·(‖q‖² + max_sq) of the exact one (the caller's bound,
// max_sq the largest ‖x‖²), so the answer is exact once the k-th exact key + err ≤ the
// last candidate's approximate key — or when the candidates are all the vectors.
template <typename T>
__device__ void rerank_rows(const float* __restrict__ queries, int dim,
                            const T* __restrict__ data, const float* __restrict__ cand_d,
                            const long long* __restrict__ cand_i, int kc, int l2, float err_a,
                            float err_b, float max_sq,
                            int k, int kpow, float* best_d, long long* best_i, int* certain) {
    extern __shared__ __align__(16) unsigned char smem[];
    TopK t = topk_layout(smem, k, kpow);
    float* qs = (float*)(t.count + 4);
    int q = blockIdx.x;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) qs[j] = queries[(long long)q * dim + j];
    float* gd = best_d + (long long)q * k;
    long long* gi = best_i + (long long)q * k;
    topk_load(t, gd, gi);
    const long long* ci = cand_i + (long long)q * kc;
    for (int base = 0; base < kc; base += blockDim.x) {
        int j = base + threadIdx.x;
        long long id = j < kc ? ci[j] : -1;
        bool has = id >= 0;
        float key = 0.f;
        if (has) {
            const T* v = data + id * dim;
            float s = 0.f;
            if (l2) {
                for (int e = 0; e < dim; e++) { float x = qs[e] - elem(v, e); s += x * x; }
                key = s;
            } else {
                for (int e = 0; e < dim; e++) s += qs[e] * elem(v, e);
                key = -s;
            }
        }
        topk_offer(t, has, key, id);
    }
    topk_store(t, gd, gi);
    if (threadIdx.x == 0) {
        float qn = 0.f;
        for (int e = 0; e < dim; e++) qn += qs[e] * qs[e];
        long long last_id = ci[kc - 1];
        float last = cand_d[(long long)q * kc + kc - 1];
        float err = err_a * sqrtf(qn) + err_b * (qn + max_sq);
        certain[q] = (last_id < 0 || t.bd[k - 1] + err <= last) ? 1 : 0;
    }
}

extern "C" __global__ void rerank(const float* __restrict__ queries, int dim,
                                  const float* __restrict__ data,
                                  const float* __restrict__ cand_d,
                                  const long long* __restrict__ cand_i, int kc, int l2,
                                  float err_a, float err_b, float max_sq, int k, int kpow,
                                  float* best_d, long long* best_i, int* certain) {
    rerank_rows(queries, dim, data, cand_d, cand_i, kc, l2, err_a, err_b, max_sq, k, kpow,
                best_d, best_i, certain);
}

extern "C" __global__ void rerank_f16(const float* __restrict__ queries, int dim,
                                      const unsigned short* __restrict__ data,
                                      const float* __restrict__ cand_d,
                                      const long long* __restrict__ cand_i, int kc, int l2,
                                      float err_a, float err_b, float max_sq, int k,
                                      int kpow, float* best_d, long long* best_i,
                                      int* certain) {
    rerank_rows(queries, dim, data, cand_d, cand_i, kc, l2, err_a, err_b, max_sq, k, kpow,
                best_d, best_i, certain);
}

// Merges a tile of inner products ip[q][0..ntile) (row stride ld) into each query's best k.
// l2: key = ‖q‖² + ‖x‖² − 2⟨q, x⟩ (clamped at 0); otherwise key = −⟨q, x⟩.
// An id selector on the GPU: allow[i] != 0 for the vectors a search may return, when
// `filtered` (otherwise allow is not read) — i is the vector's id in flat indexes, its row
// in the device lists in IVF indexes.
__device__ __forceinline__ bool allowed(const unsigned char* allow, int filtered,
                                        long long id) {
    return !filtered || allow[id] != 0;
}

extern "C" __global__ void select_tile(const float* __restrict__ ip, int ld, int ntile,
                                       long long id0, const float* __restrict__ qnorm,
                                       const float* __restrict__ xnorm, int l2,
                                       const unsigned char* __restrict__ allow, int filtered,
                                       int k, int kpow, float* best_d, long long* best_i) {
    extern __shared__ __align__(16) unsigned char smem[];
    TopK t = topk_layout(smem, k, kpow);
    int q = blockIdx.x;
    float* gd = best_d + (long long)q * k;
    long long* gi = best_i + (long long)q * k;
    topk_load(t, gd, gi);
    const float* row = ip + (long long)q * ld;
    float qn = l2 ? qnorm[q] : 0.f;
    for (int base = 0; base < ntile; base += blockDim.x) {
        int j = base + threadIdx.x;
        bool has = j < ntile && allowed(allow, filtered, id0 + j);
        float key = 0.f;
        if (has) {
            float v = row[j];
            key = l2 ? fmaxf(qn + xnorm[j] - 2.f * v, 0.f) : -v;
        }
        topk_offer(t, has, key, id0 + j);
    }
    topk_store(t, gd, gi);
}

// The k = 1 form of select_tile: each block finds its row's smallest key (the lowest id
// among equal keys) by a block reduction and keeps it if it beats the best so far. No
// selection state, so nearest-centroid assignment runs at the tile's memory speed.
extern "C" __global__ void argmin_tile(const float* __restrict__ ip, int ld, int ntile,
                                       long long id0, const float* __restrict__ qnorm,
                                       const float* __restrict__ xnorm, int l2,
                                       const unsigned char* __restrict__ allow, int filtered,
                                       float* best_d, long long* best_i) {
    __shared__ float wd[32];
    __shared__ long long wi[32];
    int q = blockIdx.x;
    const float* row = ip + (long long)q * ld;
    float qn = l2 ? qnorm[q] : 0.f;
    float bd = FATHOM_INF;
    long long bi = -1;
    for (int j = threadIdx.x; j < ntile; j += blockDim.x) {
        if (!allowed(allow, filtered, id0 + j)) continue;
        float v = row[j];
        float key = l2 ? fmaxf(qn + xnorm[j] - 2.f * v, 0.f) : -v;
        if (key < bd) { bd = key; bi = id0 + j; }
    }
    // Lowest key, then lowest id: the order a sequential scan keeps.
    for (int off = 16; off > 0; off >>= 1) {
        float od = __shfl_down_sync(0xffffffffu, bd, off);
        long long oi = __shfl_down_sync(0xffffffffu, bi, off);
        if (od < bd || (od == bd && oi >= 0 && (bi < 0 || oi < bi))) { bd = od; bi = oi; }
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { wd[warp] = bd; wi[warp] = bi; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (blockDim.x + 31) / 32; w++) {
            if (wd[w] < bd || (wd[w] == bd && wi[w] >= 0 && (bi < 0 || wi[w] < bi))) {
                bd = wd[w];
                bi = wi[w];
            }
        }
        // Earlier tiles hold lower ids, so an equal key does not replace the best.
        if (bi >= 0 && bd < best_d[q]) {
            best_d[q] = bd;
            best_i[q] = bi;
        }
    }
}

// Range search over a tile: every (query, vector) of the tile whose key is below bound
// (the radius, or minus it for inner product) is appended to its query's list: count[q]
// counts them all, the first cap go to out_d / out_i[q·cap ..]. A query whose count ends
// above cap is run again with room for all (the host knows how many from the count).
extern "C" __global__ void range_tile(const float* __restrict__ ip, int ld, int ntile,
                                      long long id0, const float* __restrict__ qnorm,
                                      const float* __restrict__ xnorm, int l2,
                                      const unsigned char* __restrict__ allow, int filtered,
                                      float bound, long long cap, long long* count,
                                      float* out_d, long long* out_i) {
    int q = blockIdx.x;
    const float* row = ip + (long long)q * ld;
    float qn = l2 ? qnorm[q] : 0.f;
    for (int j = threadIdx.x; j < ntile; j += blockDim.x) {
        if (!allowed(allow, filtered, id0 + j)) continue;
        float v = row[j];
        float key = l2 ? fmaxf(qn + xnorm[j] - 2.f * v, 0.f) : -v;
        if (key < bound) {
            long long pos = (long long)atomicAdd((unsigned long long*)&count[q], 1ull);
            if (pos < cap) {
                out_d[(long long)q * cap + pos] = key;
                out_i[(long long)q * cap + pos] = id0 + j;
            }
        }
    }
}

// k-means' update step: block c averages the rows of x listed in order[start[c] ..
// start[c + 1]) — one cluster's points in their original order, summed in that order as
// the CPU does, so both give the same floats. An empty cluster gets zeros.
extern "C" __global__ void centroid_means(const float* __restrict__ x, int dim,
                                          const long long* __restrict__ order,
                                          const long long* __restrict__ start,
                                          float* __restrict__ centroids) {
    int c = blockIdx.x;
    long long s = start[c], e = start[c + 1];
    float norm = e > s ? 1.0f / (float)(e - s) : 0.f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) {
        float acc = 0.f;
        for (long long m = s; m < e; m++) acc += x[order[m] * dim + j];
        centroids[(long long)c * dim + j] = e > s ? acc * norm : 0.f;
    }
}

// IVF lists on the device are interleaved by 32 vectors for coalesced reads: each list is
// padded to a multiple of 32 rows (padding ids are −1), and the 32 rows of a group store
// element e of all 32 side by side — element e of row r is at
// ((r / 32) · elems + e) · 32 + r % 32 (elements: floats for IVF-Flat, code bytes for
// IVF-PQ). A warp scanning 32 consecutive rows then reads 32 adjacent elements per step.
__device__ __forceinline__ long long interleaved(long long r, int elems, int e) {
    return ((r >> 5) * elems + e) * 32 + (r & 31);
}

// IVF-Flat: one block per query scans its nprobe lists. Lists are concatenated in `data`
// (interleaved rows of dim floats, see above) with `offsets[l] .. offsets[l + 1]` the
// rows of list l and `ids` their ids; `probes[q][0..nprobe)` the lists to scan (−1: none).
extern "C" __global__ void ivf_flat_scan(const float* __restrict__ queries, int dim,
                                         const long long* __restrict__ probes, int nprobe,
                                         const long long* __restrict__ offsets,
                                         const float* __restrict__ data,
                                         const long long* __restrict__ ids,
                                         const unsigned char* __restrict__ allow, int filtered,
                                         int l2, int k, int kpow, float* best_d,
                                         long long* best_i) {
    extern __shared__ __align__(16) unsigned char smem[];
    TopK t = topk_layout(smem, k, kpow);
    float* qs = (float*)(t.count + 4);
    int q = blockIdx.x;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) qs[j] = queries[(long long)q * dim + j];
    float* gd = best_d + (long long)q * k;
    long long* gi = best_i + (long long)q * k;
    topk_load(t, gd, gi);
    for (int p = 0; p < nprobe; p++) {
        long long list = probes[(long long)q * nprobe + p];
        if (list < 0) continue;
        long long start = offsets[list], end = offsets[list + 1];
        for (long long base = start; base < end; base += blockDim.x) {
            long long r = base + threadIdx.x;
            long long id = (r < end && allowed(allow, filtered, r)) ? ids[r] : -1;
            bool has = id >= 0;
            float key = 0.f;
            if (has) {
                float s = 0.f;
                if (l2) {
                    for (int j = 0; j < dim; j++) {
                        float e = qs[j] - data[interleaved(r, dim, j)];
                        s += e * e;
                    }
                    key = s;
                } else {
                    for (int j = 0; j < dim; j++) s += qs[j] * data[interleaved(r, dim, j)];
                    key = -s;
                }
            }
            topk_offer(t, has, key, id);
        }
    }
    topk_store(t, gd, gi);
}

// IVF-Flat range search: as ivf_flat_scan, but every row of the probed lists whose key is
// below `bound` is appended to its query's list (count[q] counts them all, the first cap
// go to out_d / out_i[q·cap ..]), as range_tile does for flat indexes.
extern "C" __global__ void ivf_flat_range(const float* __restrict__ queries, int dim,
                                          const long long* __restrict__ probes, int nprobe,
                                          const long long* __restrict__ offsets,
                                          const float* __restrict__ data,
                                          const long long* __restrict__ ids,
                                          const unsigned char* __restrict__ allow,
                                          int filtered, int l2, float bound, long long cap,
                                          long long* count, float* out_d, long long* out_i) {
    extern __shared__ __align__(16) unsigned char smem[];
    float* qs = (float*)smem;
    int q = blockIdx.x;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) qs[j] = queries[(long long)q * dim + j];
    __syncthreads();
    for (int p = 0; p < nprobe; p++) {
        long long list = probes[(long long)q * nprobe + p];
        if (list < 0) continue;
        long long start = offsets[list], end = offsets[list + 1];
        for (long long r = start + threadIdx.x; r < end; r += blockDim.x) {
            long long id = allowed(allow, filtered, r) ? ids[r] : -1;
            if (id < 0) continue;
            float s = 0.f;
            if (l2) {
                for (int j = 0; j < dim; j++) {
                    float e = qs[j] - data[interleaved(r, dim, j)];
                    s += e * e;
                }
            } else {
                for (int j = 0; j < dim; j++) s += qs[j] * data[interleaved(r, dim, j)];
                s = -s;
            }
            if (s < bound) {
                long long pos = (long long)atomicAdd((unsigned long long*)&count[q], 1ull);
                if (pos < cap) {
                    out_d[(long long)q * cap + pos] = s;
                    out_i[(long long)q * cap + pos] = id;
                }
            }
        }
    }
}

// IVF-Flat, list-major (for batches where many queries probe each list): a block takes
// one list and up to LIST_MAJOR_QUERIES of the queries probing it, keeps those queries in
// shared memory, and every thread compares one interleaved row with all of them — a row
// is read from memory once per block instead of once per query. Keys go to the pair's
// segment of `dists` (pair_out[p] + row offset in the list, padding rows included), where
// ivf_select_segments picks them up.
#define LIST_MAJOR_QUERIES 16
extern "C" __global__ void ivf_flat_list_major(const float* __restrict__ queries, int dim,
                                               const long long* __restrict__ offsets,
                                               const float* __restrict__ data,
                                               const long long* __restrict__ block_list,
                                               const long long* __restrict__ block_pair0,
                                               const int* __restrict__ block_pairs,
                                               const long long* __restrict__ pair_query,
                                               const long long* __restrict__ pair_out, int l2,
                                               float* __restrict__ dists) {
    extern __shared__ __align__(16) unsigned char smem[];
    float* qs = (float*)smem;
    long long list = block_list[blockIdx.x], p0 = block_pair0[blockIdx.x];
    int np = block_pairs[blockIdx.x];
    for (int i = threadIdx.x; i < np * dim; i += blockDim.x) {
        int b = i / dim, j = i % dim;
        qs[b * dim + j] = queries[pair_query[p0 + b] * dim + j];
    }
    __syncthreads();
    long long start = offsets[list], end = offsets[list + 1];
    for (long long base = start; base < end; base += blockDim.x) {
        long long r = base + threadIdx.x;
        if (r >= end) continue;
        float acc[LIST_MAJOR_QUERIES];
        for (int b = 0; b < LIST_MAJOR_QUERIES; b++) acc[b] = 0.f;
        for (int j = 0; j < dim; j++) {
            float x = data[interleaved(r, dim, j)];
            for (int b = 0; b < LIST_MAJOR_QUERIES; b++) {
                if (b < np) {
                    float q = qs[b * dim + j];
                    if (l2) { float e = q - x; acc[b] += e * e; } else { acc[b] += q * x; }
                }
            }
        }
        for (int b = 0; b < np; b++)
            dists[pair_out[p0 + b] + (r - start)] = l2 ? acc[b] : -acc[b];
    }
}

// The selection after a list-major pass: one block per query merges the keys of its
// probed lists' segments (seg[q · nprobe + p], −1 for no list) into its best k, with the
// lists' ids (−1 rows are padding).
extern "C" __global__ void ivf_select_segments(const float* __restrict__ dists,
                                               const long long* __restrict__ seg,
                                               const long long* __restrict__ probes, int nprobe,
                                               const long long* __restrict__ offsets,
                                               const long long* __restrict__ ids,
                                               const unsigned char* __restrict__ allow,
                                               int filtered, int k, int kpow,
                                               float* best_d, long long* best_i) {
    extern __shared__ __align__(16) unsigned char smem[];
    TopK t = topk_layout(smem, k, kpow);
    int q = blockIdx.x;
    float* gd = best_d + (long long)q * k;
    long long* gi = best_i + (long long)q * k;
    topk_load(t, gd, gi);
    for (int p = 0; p < nprobe; p++) {
        long long list = probes[(long long)q * nprobe + p];
        long long at = seg[(long long)q * nprobe + p];
        if (list < 0 || at < 0) continue;
        long long start = offsets[list], end = offsets[list + 1];
        for (long long base = start; base < end; base += blockDim.x) {
            long long r = base + threadIdx.x;
            long long id = (r < end && allowed(allow, filtered, r)) ? ids[r] : -1;
            bool has = id >= 0;
            float key = has ? dists[at + (r - start)] : 0.f;
            topk_offer(t, has, key, id);
        }
    }
    topk_store(t, gd, gi);
}

// What a list's codes are compared with, for codecs that may encode residuals: res = the
// query minus the list's centroid c (L2, residual codes) or the query itself, and *qc =
// ⟨q, c⟩ (inner product, residual codes: ⟨q, c + r⟩ = ⟨q, c⟩ + ⟨q, r⟩) or 0. Called by the
// whole block; ends with a barrier.
__device__ void list_query(const float* qs, const float* c, int dim, int l2, int by_residual,
                           float* res, float* qc) {
    for (int j = threadIdx.x; j < dim; j += blockDim.x)
        res[j] = (l2 && by_residual) ? qs[j] - c[j] : qs[j];
    if (threadIdx.x == 0) {
        float s = 0.f;
        if (!l2 && by_residual)
            for (int j = 0; j < dim; j++) s += qs[j] * c[j];
        *qc = s;
    }
    __syncthreads();
}

// IVF-SQ with 8-bit codes: as ivf_flat_scan, each interleaved code byte decoded as
// a_j · code + b_j (`affine`: a then b, dim each), against the query's residual to the
// list's centroid (L2, by_residual) or the query itself plus ⟨q, centroid⟩ (inner product).
extern "C" __global__ void ivf_sq8_scan(const float* __restrict__ queries, int dim,
                                        const long long* __restrict__ probes, int nprobe,
                                        const float* __restrict__ coarse,
                                        const float* __restrict__ affine, int by_residual,
                                        const long long* __restrict__ offsets,
                                        const unsigned char* __restrict__ codes,
                                        const long long* __restrict__ ids,
                                        const unsigned char* __restrict__ allow, int filtered,
                                        int l2, int k, int kpow, float* best_d, long long* best_i) {
    extern __shared__ __align__(16) unsigned char smem[];
    TopK t = topk_layout(smem, k, kpow);
    float* qs = (float*)(t.count + 4);
    float* res = qs + dim;
    float* a = res + dim;
    float* b = a + dim;
    int q = blockIdx.x;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) {
        qs[j] = queries[(long long)q * dim + j];
        a[j] = affine[j];
        b[j] = affine[dim + j];
    }
    float* gd = best_d + (long long)q * k;
    long long* gi = best_i + (long long)q * k;
    topk_load(t, gd, gi);
    __shared__ float qc;
    for (int p = 0; p < nprobe; p++) {
        long long list = probes[(long long)q * nprobe + p];
        if (list < 0) continue;
        list_query(qs, coarse + list * dim, dim, l2, by_residual, res, &qc);
        long long start = offsets[list], end = offsets[list + 1];
        for (long long base = start; base < end; base += blockDim.x) {
            long long r = base + threadIdx.x;
            long long id = (r < end && allowed(allow, filtered, r)) ? ids[r] : -1;
            bool has = id >= 0;
            float key = 0.f;
            if (has) {
                float s = 0.f;
                for (int j = 0; j < dim; j++) {
                    float x = a[j] * (float)codes[interleaved(r, dim, j)] + b[j];
                    if (l2) { float e = res[j] - x; s += e * e; } else { s += res[j] * x; }
                }
                key = l2 ? s : -(qc + s);
            }
            topk_offer(t, has, key, id);
        }
        __syncthreads();
    }
    topk_store(t, gd, gi);
}

// IVF-PQ with 8-bit or 4-bit codes (nbits; 4-bit codes are nibbles, low first, as
// fast-scan lists hold them once unpacked): per probed list the block builds the look-up
// table table[m][c] (M × 2^nbits) in shared memory for the query's residual against the
// list's centroid (L2), or the query's sub-vectors (inner product, plus ⟨q, centroid⟩) —
// once per query when codes are not residuals — then every thread sums the table entries
// of one code at a time. Codes are interleaved by 32 rows, code_size bytes each.
extern "C" __global__ void ivf_pq_scan(const float* __restrict__ queries, int dim,
                                       const long long* __restrict__ probes, int nprobe,
                                       const float* __restrict__ coarse,
                                       const float* __restrict__ pq_centroids, int m,
                                       int nbits, int by_residual,
                                       const long long* __restrict__ offsets,
                                       const unsigned char* __restrict__ codes,
                                       const long long* __restrict__ ids,
                                       const unsigned char* __restrict__ allow, int filtered,
                                       int l2, int k, int kpow, float* best_d, long long* best_i) {
    extern __shared__ __align__(16) unsigned char smem[];
    TopK t = topk_layout(smem, k, kpow);
    float* qs = (float*)(t.count + 4);
    float* res = qs + dim;
    float* table = res + dim;
    int dsub = dim / m;
    int ksub = 1 << nbits;
    int code_size = (m * nbits + 7) / 8;
    int q = blockIdx.x;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) qs[j] = queries[(long long)q * dim + j];
    float* gd = best_d + (long long)q * k;
    long long* gi = best_i + (long long)q * k;
    topk_load(t, gd, gi);
    __shared__ float qc;
    bool built = false;
    for (int p = 0; p < nprobe; p++) {
        long long list = probes[(long long)q * nprobe + p];
        if (list < 0) continue;
        // The table depends on the list only for L2 on residuals; ⟨q, centroid⟩ (inner
        // product on residuals) changes with every list.
        if (by_residual || !built)
            list_query(qs, coarse + list * dim, dim, l2, by_residual, res, &qc);
        if ((by_residual && l2) || !built) {
            for (int e = threadIdx.x; e < m * ksub; e += blockDim.x) {
                int sub = e >> nbits, code = e & (ksub - 1);
                const float* cen = pq_centroids + ((long long)sub * ksub + code) * dsub;
                const float* r = res + sub * dsub;
                float s = 0.f;
                if (l2) {
                    for (int j = 0; j < dsub; j++) { float d = r[j] - cen[j]; s += d * d; }
                } else {
                    for (int j = 0; j < dsub; j++) s += r[j] * cen[j];
                }
                table[e] = s;
            }
            __syncthreads();
            built = true;
        }
        long long start = offsets[list], end = offsets[list + 1];
        for (long long base = start; base < end; base += blockDim.x) {
            long long r = base + threadIdx.x;
            long long id = (r < end && allowed(allow, filtered, r)) ? ids[r] : -1;
            bool has = id >= 0;
            float key = 0.f;
            if (has) {
                float s = 0.f;
                if (nbits == 8) {
                    for (int sub = 0; sub < m; sub++)
                        s += table[(sub << 8) + codes[interleaved(r, code_size, sub)]];
                } else {
                    for (int sub = 0; sub < m; sub++) {
                        unsigned char byte = codes[interleaved(r, code_size, sub >> 1)];
                        int c = (sub & 1) ? (byte >> 4) : (byte & 15);
                        s += table[(sub << 4) + c];
                    }
                }
                key = l2 ? s : -(qc + s);
            }
            topk_offer(t, has, key, id);
        }
        __syncthreads();
    }
    topk_store(t, gd, gi);
}
