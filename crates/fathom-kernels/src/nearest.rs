//! The nearest row of a small set for vectors of few dimensions (`k = 1`, L2 or inner
//! product): k-means assignment and PQ encoding on sub-spaces of 2–16 dimensions.
//!
//! A matrix product of inner dimension 8 keeps the GEMM microkernel mostly loading and
//! storing, and the tile pass that follows reads every entry again (OPQ16 training spent
//! 67 % of its time there, issue 26). Here the centroids are transposed into blocks of
//! sixteen, one lane per centroid: each dimension of a vector is one broadcast
//! multiply-add against a block, the block's sixteen keys `‖c‖² − 2⟨x, c⟩` (or `−⟨x, c⟩`)
//! stay in a register, and a running lane-wise minimum keeps the best centroid per lane.
//! Four vectors share each block load. The portable body is the scalar twin (and the
//! AVX2 form); AVX-512 has its own, tested against it.

use crate::multiversion::multiversion;

/// The largest dimension the kernel takes (above it the GEMM path is as fast).
pub const MAX_DIM: usize = 16;
/// Lanes per block of centroids.
const LANES: usize = 16;
/// Vectors handled together (sharing each block load).
const GROUP: usize = 4;

/// Centroids laid out for [`Centroids::nearest`]: blocks of sixteen, dimension-major
/// inside a block, with each centroid's key bias (`‖c‖²` for L2, 0 for inner product).
#[derive(Debug, Clone)]
pub struct Centroids {
    d: usize,
    n: usize,
    ip: bool,
    /// Block `b`, dimension `t`, lane `l` at `(b·d + t)·16 + l`; padding lanes are 0.
    blocks: Vec<f32>,
    /// Block `b`, lane `l` at `b·16 + l`; +∞ in padding lanes (never chosen).
    bias: Vec<f32>,
}

impl Centroids {
    /// `n × d` centroids, row-major; `ip` selects inner product (largest wins) instead of
    /// L2 (smallest wins).
    ///
    /// ```
    /// use fathom_kernels::nearest::Centroids;
    /// let c = Centroids::new(&[0.0, 0.0, 10.0, 10.0, 3.0, 4.0], 2, false);
    /// let (mut labels, mut keys) = (vec![0u32; 2], vec![0.0f32; 2]);
    /// c.nearest(&[9.0, 9.0, 2.0, 5.0], &mut labels, &mut keys);
    /// assert_eq!(labels, [1, 2]);
    /// ```
    /// Panics unless `1 ≤ d ≤ 16` ([`MAX_DIM`]).
    pub fn new(centroids: &[f32], d: usize, ip: bool) -> Self {
        assert!(
            (1..=MAX_DIM).contains(&d),
            "d = {d} is outside 1..={MAX_DIM}"
        );
        assert!(centroids.len().is_multiple_of(d), "ragged centroids");
        let n = centroids.len() / d;
        let nb = n.div_ceil(LANES);
        let mut blocks = vec![0.0f32; nb * d * LANES];
        let mut bias = vec![f32::INFINITY; nb * LANES];
        for (i, c) in centroids.chunks_exact(d).enumerate() {
            let (b, l) = (i / LANES, i % LANES);
            for (t, &v) in c.iter().enumerate() {
                blocks[(b * d + t) * LANES + l] = v;
            }
            bias[i] = if ip {
                0.0
            } else {
                c.iter().map(|v| v * v).sum()
            };
        }
        Centroids {
            d,
            n,
            ip,
            blocks,
            bias,
        }
    }

    /// Number of centroids.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no centroids.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// For each vector of `x` (`labels.len()` of them), the nearest centroid (lowest
    /// index among equal keys) and its key: `‖c‖² − 2⟨x, c⟩` for L2 (add `‖x‖²` for the
    /// distance), `−⟨x, c⟩` for inner product. `u32::MAX` with key +∞ where no key is
    /// below +∞ (NaN or overflowing input).
    pub fn nearest(&self, x: &[f32], labels: &mut [u32], keys: &mut [f32]) {
        self.nearest_at(crate::simd_level(), x, labels, keys)
    }

    /// [`Centroids::nearest`] at a given SIMD level (the scalar twin when the CPU lacks
    /// it).
    pub fn nearest_at(
        &self,
        level: crate::SimdLevel,
        x: &[f32],
        labels: &mut [u32],
        keys: &mut [f32],
    ) {
        assert!(
            x.len() == labels.len() * self.d && keys.len() == labels.len(),
            "vectors and outputs disagree"
        );
        #[cfg(target_arch = "x86_64")]
        if level == crate::SimdLevel::Avx512 && crate::SimdLevel::Avx512.is_supported() {
            // SAFETY: AVX-512 F/BW/DQ/VL support was checked just above.
            unsafe { x86::nearest_avx512(self, x, labels, keys) };
            return;
        }
        nearest_at(level, self, x, labels, keys)
    }
}

impl Centroids {
    /// Vectors `i .. i + g` of `x` scaled by the key's factor (−2 for L2, −1 for inner
    /// product), dimension-major, so each is a broadcast per dimension.
    #[inline(always)]
    fn scaled_group(&self, x: &[f32], i: usize, g: usize) -> [[f32; GROUP]; MAX_DIM] {
        let (d, scale) = (self.d, if self.ip { -1.0f32 } else { -2.0 });
        let mut xs = [[0.0f32; GROUP]; MAX_DIM];
        for (v, row) in x[i * d..(i + g) * d].chunks_exact(d).enumerate() {
            for (t, &xt) in row.iter().enumerate() {
                xs[t][v] = scale * xt;
            }
        }
        xs
    }
}

/// The best key across lanes and its centroid number (lane `l` of block `arg(l)`; the
/// lowest number among equal keys, `u32::MAX` for none).
#[inline(always)]
fn reduce_lanes(best: &[f32; LANES], arg: impl Fn(usize) -> Option<u32>) -> (u32, f32) {
    let (mut bk, mut ba) = (f32::INFINITY, u32::MAX);
    for (l, &k) in best.iter().enumerate() {
        let a = arg(l).map_or(u32::MAX, |b| b * LANES as u32 + l as u32);
        if k < bk || (k == bk && a < ba) {
            (bk, ba) = (k, a);
        }
    }
    (ba, bk)
}

/// The AVX-512 form: the select that keeps each lane's best block is a masked move,
/// which the compiler did not produce from the portable body (it scalarised the
/// selects: 3.6× slower than the GEMM path instead of faster).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Centroids, GROUP, LANES};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub(super) fn nearest_avx512(c: &Centroids, x: &[f32], labels: &mut [u32], keys: &mut [f32]) {
        let d = c.d;
        let n = labels.len();
        let nb = c.bias.len() / LANES;
        let mut i = 0;
        while i < n {
            let g = GROUP.min(n - i);
            let xs = c.scaled_group(x, i, g);
            let mut best = [_mm512_set1_ps(f32::INFINITY); GROUP];
            let mut arg = [_mm512_set1_epi32(-1); GROUP];
            for b in 0..nb {
                let bias = &c.bias[b * LANES..(b + 1) * LANES];
                // SAFETY: `bias` is 16 readable floats; unaligned load.
                let bias = unsafe { _mm512_loadu_ps(bias.as_ptr()) };
                let mut acc = [bias; GROUP];
                let block = &c.blocks[b * d * LANES..(b + 1) * d * LANES];
                for (t, col) in block.chunks_exact(LANES).enumerate() {
                    // SAFETY: `col` is 16 readable floats; unaligned load.
                    let col = unsafe { _mm512_loadu_ps(col.as_ptr()) };
                    for v in 0..GROUP {
                        acc[v] = _mm512_fmadd_ps(_mm512_set1_ps(xs[t][v]), col, acc[v]);
                    }
                }
                let bv = _mm512_set1_epi32(b as i32);
                for v in 0..GROUP {
                    let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(acc[v], best[v]);
                    best[v] = _mm512_mask_mov_ps(best[v], m, acc[v]);
                    arg[v] = _mm512_mask_mov_epi32(arg[v], m, bv);
                }
            }
            let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            for v in 0..g {
                let k = _mm512_reduce_min_ps(best[v]);
                if k == f32::INFINITY || k.is_nan() {
                    (labels[i + v], keys[i + v]) = (u32::MAX, f32::INFINITY);
                    continue;
                }
                // The lowest centroid number among the lanes holding the minimum.
                let eq = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(best[v], _mm512_set1_ps(k));
                let ids = _mm512_add_epi32(_mm512_slli_epi32::<4>(arg[v]), lane);
                labels[i + v] = _mm512_mask_reduce_min_epu32(eq, ids);
                keys[i + v] = k;
            }
            i += g;
        }
    }
}

multiversion! {
    fn nearest / nearest_at(c: &Centroids, x: &[f32], labels: &mut [u32], keys: &mut [f32]) {
        let d = c.d;
        let n = labels.len();
        let nb = c.bias.len() / LANES;
        let mut i = 0;
        while i < n {
            let g = GROUP.min(n - i);
            let mut best = [[f32::INFINITY; LANES]; GROUP];
            // The block each lane's best came from, as a float: a float select vectorises
            // where an integer one beside float compares did not (exact below 2²⁴ blocks).
            let mut arg = [[-1.0f32; LANES]; GROUP];
            let xs = c.scaled_group(x, i, g);
            for b in 0..nb {
                let bias: &[f32; LANES] = c.bias[b * LANES..][..LANES].try_into().expect("a block");
                let mut acc = [*bias; GROUP];
                let block = &c.blocks[b * d * LANES..(b + 1) * d * LANES];
                for (t, col) in block.chunks_exact(LANES).enumerate() {
                    let col: &[f32; LANES] = col.try_into().expect("a lane row");
                    for v in 0..GROUP {
                        let xv = xs[t][v];
                        for l in 0..LANES {
                            acc[v][l] += xv * col[l];
                        }
                    }
                }
                let bf = b as f32;
                for v in 0..GROUP {
                    for l in 0..LANES {
                        let better = acc[v][l] < best[v][l];
                        best[v][l] = if better { acc[v][l] } else { best[v][l] };
                        arg[v][l] = if better { bf } else { arg[v][l] };
                    }
                }
            }
            for v in 0..g {
                let (l, k) = reduce_lanes(&best[v], |lane| {
                    (arg[v][lane] >= 0.0).then_some(arg[v][lane] as u32)
                });
                labels[i + v] = l;
                keys[i + v] = k;
            }
            i += g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimdLevel;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_level_finds_the_nearest_centroid(
            d in 1usize..=16,
            n in 0usize..11,
            nc in 1usize..70,
            seed in any::<u64>(),
            ip in any::<bool>(),
        ) {
            let mut s = seed | 1;
            let mut r = || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 100.0 - 10.0
            };
            let x: Vec<f32> = (0..n * d).map(|_| r()).collect();
            let cs: Vec<f32> = (0..nc * d).map(|_| r()).collect();
            let c = Centroids::new(&cs, d, ip);
            let key = |v: &[f32], j: usize| -> f64 {
                let cj = &cs[j * d..(j + 1) * d];
                let dot: f64 = v.iter().zip(cj).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
                if ip {
                    -dot
                } else {
                    cj.iter().map(|b| (*b as f64).powi(2)).sum::<f64>() - 2.0 * dot
                }
            };
            for level in SimdLevel::supported() {
                let (mut labels, mut keys) = (vec![7u32; n], vec![0.0f32; n]);
                c.nearest_at(level, &x, &mut labels, &mut keys);
                for v in 0..n {
                    let row = &x[v * d..(v + 1) * d];
                    let want = (0..nc).map(|j| key(row, j)).fold(f64::INFINITY, f64::min);
                    let got = key(row, labels[v] as usize);
                    // The chosen centroid is the nearest up to f32 rounding of the keys.
                    prop_assert!((got - want).abs() <= 1e-3 * (1.0 + want.abs()), "{:?}: {} vs {}", level, got, want);
                    prop_assert!((keys[v] as f64 - got).abs() <= 1e-3 * (1.0 + got.abs()));
                }
            }
        }
    }

    #[test]
    fn ties_go_to_the_lowest_index_at_every_level() {
        // Identical centroids 3 and 20 (different blocks and lanes): 3 wins.
        let d = 5;
        let mut cs: Vec<f32> = (0..40 * d).map(|i| (i % 17) as f32 * 0.5 + 3.0).collect();
        let dup: Vec<f32> = (0..d).map(|t| t as f32 * 0.1).collect();
        cs[3 * d..4 * d].copy_from_slice(&dup);
        cs[20 * d..21 * d].copy_from_slice(&dup);
        let c = Centroids::new(&cs, d, false);
        let x: Vec<f32> = dup.iter().map(|v| v + 1e-3).collect();
        for level in SimdLevel::supported() {
            let (mut labels, mut keys) = (vec![0u32; 1], vec![0.0f32; 1]);
            c.nearest_at(level, &x, &mut labels, &mut keys);
            assert_eq!(labels[0], 3, "{level:?}");
        }
        // NaN input: no centroid.
        let (mut labels, mut keys) = (vec![0u32; 1], vec![0.0f32; 1]);
        c.nearest(&[f32::NAN; 5], &mut labels, &mut keys);
        assert_eq!((labels[0], keys[0]), (u32::MAX, f32::INFINITY));
    }
}
