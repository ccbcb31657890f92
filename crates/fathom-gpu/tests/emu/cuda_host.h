// Runs kernels.cu on the CPU, for tests on machines without a GPU (tests/kernels_on_cpu.rs).
//
// Each block of a launch runs on its own as blockDim.x OS threads; __syncthreads is a
// barrier of the block's threads, a warp shuffle an exchange through memory between two
// barriers of the warp's 32 threads, atomics are std::atomic_ref. Blocks run one after
// another, so __shared__ variables can be statics (the test rewrites `extern __shared__`
// to `extern`, and the dynamic shared memory is one global buffer). This checks the
// kernels' logic — indexing, selection, merging, barriers' placement — not their speed
// or the GPU's memory model.
#pragma once
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static

struct Dim3 {
    unsigned x = 0, y = 0, z = 0;
};
static thread_local Dim3 threadIdx;
static Dim3 blockIdx, blockDim, gridDim;

alignas(16) unsigned char smem[1 << 20];

namespace emu {
inline std::unique_ptr<std::barrier<>> block_barrier;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
inline long long warp_slots[32][32];

inline void launch(unsigned grid, unsigned block, void (*body)(void*), void* ctx) {
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned b = 0; b < grid; b++) {
        blockIdx.x = b;
        block_barrier = std::make_unique<std::barrier<>>(block);
        warp_barriers.clear();
        for (unsigned w = 0; w < (block + 31) / 32; w++)
            warp_barriers.push_back(std::make_unique<std::barrier<>>(block - w * 32 < 32 ? block - w * 32 : 32));
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < block; t++)
            threads.emplace_back([=] {
                threadIdx.x = t;
                body(ctx);
            });
        for (auto& th : threads) th.join();
    }
}
}  // namespace emu

inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }

template <class T>
inline T __shfl_down_sync(unsigned, T v, int offset) {
    static_assert(sizeof(T) <= sizeof(long long));
    unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    emu::warp_slots[warp][lane] = bits;
    emu::warp_barriers[warp]->arrive_and_wait();
    T out = v;
    if (lane + offset < 32) std::memcpy(&out, &emu::warp_slots[warp][lane + offset], sizeof(T));
    emu::warp_barriers[warp]->arrive_and_wait();
    return out;
}

inline int atomicAdd(int* p, int v) { return std::atomic_ref<int>(*p).fetch_add(v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return std::atomic_ref<unsigned long long>(*p).fetch_add(v);
}

inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, sizeof f);
    return f;
}

// IEEE half → float, as the GPU's cvt.f32.f16.
inline float fathom_emu_half_to_float(unsigned short h) {
    unsigned sign = (h >> 15) & 1, exp = (h >> 10) & 31, frac = h & 1023;
    float v;
    if (exp == 0) v = std::ldexp((float)frac, -24);
    else if (exp == 31) v = frac ? NAN : INFINITY;
    else v = std::ldexp((float)(frac | 1024), (int)exp - 25);
    return sign ? -v : v;
}
