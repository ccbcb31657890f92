//! Finding the next key below a threshold: the filter in front of every top-k heap.
//!
//! A scan over codes produces keys far faster than a heap can take them, and once the heap
//! is full almost every key is rejected. Comparing 16 (AVX-512) or 8 (AVX2) keys at once
//! and jumping to the first that passes makes that rejection nearly free; the heap is
//! touched only for the few candidates, and the threshold is re-read after each.

use crate::SimdLevel;

/// The position of the first key strictly below `thr` (NaN keys never are).
///
/// ```
/// use fathom_kernels::select::first_below;
/// assert_eq!(first_below(&[3.0, 2.0, 0.5, 0.1], 1.0), Some(2));
/// assert_eq!(first_below(&[3.0, f32::NAN], 1.0), None);
/// ```
#[inline]
pub fn first_below(keys: &[f32], thr: f32) -> Option<usize> {
    first_below_at(crate::simd_level(), keys, thr)
}

/// [`first_below`] at a given SIMD level (the scalar twin when the CPU lacks it).
pub fn first_below_at(level: SimdLevel, keys: &[f32], thr: f32) -> Option<usize> {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 if SimdLevel::Avx512.is_supported() => {
            // SAFETY: AVX-512 F support was checked just above.
            unsafe { x86::first_below_f32_avx512(keys, thr) }
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 | SimdLevel::Avx512 if SimdLevel::Avx2.is_supported() => {
            // SAFETY: AVX2 support was checked just above.
            unsafe { x86::first_below_f32_avx2(keys, thr) }
        }
        _ => first_below_scalar(keys, thr),
    }
}

fn first_below_scalar(keys: &[f32], thr: f32) -> Option<usize> {
    keys.iter().position(|&k| k < thr)
}

/// The position of the first integer key strictly below `thr` (`thr` up to 65536, so
/// that every u16 key can pass).
///
/// ```
/// use fathom_kernels::select::first_below_u16;
/// assert_eq!(first_below_u16(&[300, 200, 7], 201), Some(1));
/// assert_eq!(first_below_u16(&[300, 200], 0), None);
/// ```
#[inline]
pub fn first_below_u16(keys: &[u16], thr: u32) -> Option<usize> {
    first_below_u16_at(crate::simd_level(), keys, thr)
}

/// [`first_below_u16`] at a given SIMD level (the scalar twin when the CPU lacks it).
pub fn first_below_u16_at(level: SimdLevel, keys: &[u16], thr: u32) -> Option<usize> {
    if thr == 0 {
        return None;
    }
    if thr > u16::MAX as u32 {
        return if keys.is_empty() { None } else { Some(0) };
    }
    // Every key below `thr` is at most `max`, a u16.
    let max = (thr - 1) as u16;
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 if SimdLevel::Avx512.is_supported() => {
            // SAFETY: AVX-512 F/BW support was checked just above.
            unsafe { x86::first_at_most_u16_avx512(keys, max) }
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 | SimdLevel::Avx512 if SimdLevel::Avx2.is_supported() => {
            // SAFETY: AVX2 support was checked just above.
            unsafe { x86::first_at_most_u16_avx2(keys, max) }
        }
        _ => keys.iter().position(|&k| k <= max),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) fn first_below_f32_avx512(keys: &[f32], thr: f32) -> Option<usize> {
        let t = _mm512_set1_ps(thr);
        let (blocks, tail) = keys.as_chunks::<16>();
        for (b, block) in blocks.iter().enumerate() {
            // SAFETY: `block` is 16 readable f32; unaligned load.
            let v = unsafe { _mm512_loadu_ps(block.as_ptr()) };
            let mask = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, t);
            if mask != 0 {
                return Some(b * 16 + mask.trailing_zeros() as usize);
            }
        }
        tail.iter()
            .position(|&k| k < thr)
            .map(|j| blocks.len() * 16 + j)
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn first_below_f32_avx2(keys: &[f32], thr: f32) -> Option<usize> {
        let t = _mm256_set1_ps(thr);
        let (blocks, tail) = keys.as_chunks::<8>();
        for (b, block) in blocks.iter().enumerate() {
            // SAFETY: `block` is 8 readable f32; unaligned load.
            let v = unsafe { _mm256_loadu_ps(block.as_ptr()) };
            let mask = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(v, t));
            if mask != 0 {
                return Some(b * 8 + mask.trailing_zeros() as usize);
            }
        }
        tail.iter()
            .position(|&k| k < thr)
            .map(|j| blocks.len() * 8 + j)
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn first_at_most_u16_avx512(keys: &[u16], max: u16) -> Option<usize> {
        let t = _mm512_set1_epi16(max as i16);
        let (blocks, tail) = keys.as_chunks::<32>();
        for (b, block) in blocks.iter().enumerate() {
            // SAFETY: `block` is 64 readable bytes; unaligned load.
            let v = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
            let mask = _mm512_cmple_epu16_mask(v, t);
            if mask != 0 {
                return Some(b * 32 + mask.trailing_zeros() as usize);
            }
        }
        tail.iter()
            .position(|&k| k <= max)
            .map(|j| blocks.len() * 32 + j)
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn first_at_most_u16_avx2(keys: &[u16], max: u16) -> Option<usize> {
        let t = _mm256_set1_epi16(max as i16);
        let (blocks, tail) = keys.as_chunks::<16>();
        for (b, block) in blocks.iter().enumerate() {
            // SAFETY: `block` is 32 readable bytes; unaligned load.
            let v = unsafe { _mm256_loadu_si256(block.as_ptr().cast()) };
            // k <= max  ⟺  min(k, max) == k (no unsigned 16-bit compare in AVX2).
            let le = _mm256_cmpeq_epi16(_mm256_min_epu16(v, t), v);
            let mask = _mm256_movemask_epi8(le) as u32;
            if mask != 0 {
                return Some(b * 16 + mask.trailing_zeros() as usize / 2);
            }
        }
        tail.iter()
            .position(|&k| k <= max)
            .map(|j| blocks.len() * 16 + j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LEVELS: [SimdLevel; 3] = [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512];

    proptest! {
        #[test]
        fn f32_levels_agree(keys in proptest::collection::vec(-4i8..20, 0..100), thr in -5i8..21, nan in 0usize..100) {
            let mut keys: Vec<f32> = keys.into_iter().map(f32::from).collect();
            if nan < keys.len() {
                keys[nan] = f32::NAN;
            }
            let want = first_below_scalar(&keys, thr as f32);
            for level in LEVELS {
                prop_assert_eq!(first_below_at(level, &keys, thr as f32), want);
            }
        }

        #[test]
        fn u16_levels_agree(keys in proptest::collection::vec(0u16..40, 0..100), thr in 0u32..42, big in any::<bool>()) {
            let mut keys = keys;
            if big {
                // Keys above i16::MAX catch a signed comparison.
                keys.iter_mut().for_each(|k| *k += 40000);
            }
            let thr = if big { thr + 40000 } else { thr };
            let want = keys.iter().position(|&k| (k as u32) < thr);
            for level in LEVELS {
                prop_assert_eq!(first_below_u16_at(level, &keys, thr), want);
            }
        }
    }

    #[test]
    fn extreme_thresholds() {
        assert_eq!(first_below_u16(&[65535, 0], 65536), Some(0));
        assert_eq!(first_below_u16(&[], 65536), None);
        assert_eq!(first_below(&[f32::INFINITY, 1.0], f32::INFINITY), Some(1));
    }
}
