//! Hamming distances between binary codes (bit strings stored as bytes).

use crate::multiversion::multiversion;

/// Number of differing bits between two codes of the same length; codes of different
/// lengths are an error.
///
/// ```
/// use fathom_kernels::codes::hamming::distance;
/// assert_eq!(distance(&[0b1011, 0xff], &[0b0001, 0x0f]).unwrap(), 6);
/// assert!(distance(&[1, 2], &[1]).is_err());
/// ```
pub fn distance(a: &[u8], b: &[u8]) -> fathom_core::Result<u32> {
    if a.len() != b.len() {
        return Err(fathom_core::Error::invalid(format!(
            "Hamming distance between codes of {} and {} bytes: codes must have one length",
            a.len(),
            b.len()
        )));
    }
    Ok(pair(a, b))
}

/// Number of differing bits between two codes of equal length (unchecked: the shorter
/// length counts). The inner loop of graph searches over binary codes.
#[inline(always)]
pub fn pair(a: &[u8], b: &[u8]) -> u32 {
    let mut acc = 0u32;
    let (wa, ta) = a.as_chunks::<8>();
    let (wb, tb) = b.as_chunks::<8>();
    for (x, y) in wa.iter().zip(wb) {
        acc += (u64::from_le_bytes(*x) ^ u64::from_le_bytes(*y)).count_ones();
    }
    for (x, y) in ta.iter().zip(tb) {
        acc += (x ^ y).count_ones();
    }
    acc
}

multiversion! {
    /// Hamming distance from `query` to each code of `codes` (rows of `query.len()`
    /// bytes) into `out`, one per code. Like `zip`, it stops at the shorter of `out` and
    /// the whole codes in `codes` (callers pass `out.len() * query.len()` bytes).
    pub fn distances / distances_at(query: &[u8], codes: &[u8], out: &mut [u32]) {
        let cs = query.len();
        debug_assert_eq!(codes.len(), out.len() * cs, "codes and output sizes disagree");
        if cs == 0 {
            out.fill(0);
            return;
        }
        match cs {
            // The common LSH / binary sizes get a loop the compiler fully unrolls.
            8 => fixed::<8>(query, codes, out),
            16 => fixed::<16>(query, codes, out),
            32 => fixed::<32>(query, codes, out),
            64 => fixed::<64>(query, codes, out),
            _ => {
                for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
                    *o = pair(query, c);
                }
            }
        }
    }
}

#[inline(always)]
fn fixed<const N: usize>(query: &[u8], codes: &[u8], out: &mut [u32]) {
    let q: &[u8; N] = query.try_into().expect("query of N bytes");
    let (rows, _) = codes.as_chunks::<N>();
    for (c, o) in rows.iter().zip(out.iter_mut()) {
        *o = pair(q, c);
    }
}

/// Hamming distances from `query` to each code of `codes` as `f32` keys, one per code
/// (what a k-NN scan over binary codes consumes). Stops at the shorter of `out` and the
/// whole codes in `codes`, as [`distances`]. 32-byte codes (256 bits) take an AVX-512
/// VPOPCNTDQ kernel where the CPU has it, eight codes per step; everything else is
/// [`distances_f32_scalar`], its twin.
pub fn distances_f32(query: &[u8], codes: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if query.len() == 32 && x86::has_vpopcntdq() {
        // SAFETY: the CPU has AVX-512 F/DQ and VPOPCNTDQ (checked just above), and the
        // query is 32 bytes.
        unsafe { x86::distances_f32_32(query, codes, out) };
        return;
    }
    distances_f32_scalar(query, codes, out)
}

/// The plain twin of [`distances_f32`] (and its tail).
pub fn distances_f32_scalar(query: &[u8], codes: &[u8], out: &mut [f32]) {
    let cs = query.len();
    if cs == 0 {
        out.fill(0.0);
        return;
    }
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        *o = pair(query, c) as f32;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Whether the CPU has what [`distances_f32_32`] needs.
    pub(super) fn has_vpopcntdq() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
    }

    /// Hamming distances of 32-byte codes: two codes per 512-bit register, their four
    /// 64-bit popcounts summed by two in-register shuffles, eight sums gathered by two
    /// permutes and converted to `f32` at once.
    #[target_feature(enable = "avx512f,avx512dq,avx512vpopcntdq")]
    pub(super) fn distances_f32_32(query: &[u8], codes: &[u8], out: &mut [f32]) {
        debug_assert_eq!(query.len(), 32);
        let n = out.len().min(codes.len() / 32);
        // SAFETY: `query` has 32 bytes (the caller's contract, checked by the dispatcher);
        // unaligned loads.
        let q = unsafe { _mm256_loadu_si256(query.as_ptr().cast()) };
        let qq = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(q), q);
        // Lanes 0 and 4 of a, then of b: the sums of the four codes two registers hold.
        let pick = _mm512_set_epi64(0, 0, 0, 0, 12, 8, 4, 0);
        let join = _mm512_set_epi64(11, 10, 9, 8, 3, 2, 1, 0);
        let sums = |v: __m512i| {
            // (w0+w1) in both lanes of each 128-bit block, then the block pairs added:
            // lanes 0-3 hold code 0's sum, lanes 4-7 code 1's.
            let t = _mm512_add_epi64(v, _mm512_shuffle_epi32::<0x4E>(v));
            _mm512_add_epi64(t, _mm512_shuffle_i64x2::<0b10_11_00_01>(t, t))
        };
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: codes i .. i + 8 lie inside `codes` (i + 8 ≤ n ≤ codes.len() / 32);
            // unaligned loads.
            let v: [__m512i; 4] = std::array::from_fn(|j| unsafe {
                _mm512_loadu_si512(codes.as_ptr().add((i + 2 * j) * 32).cast())
            });
            let u = v.map(|v| sums(_mm512_popcnt_epi64(_mm512_xor_si512(v, qq))));
            let lo = _mm512_permutex2var_epi64(u[0], pick, u[1]);
            let hi = _mm512_permutex2var_epi64(u[2], pick, u[3]);
            let all = _mm512_permutex2var_epi64(lo, join, hi);
            let f = _mm512_cvtepi64_ps(all);
            // SAFETY: out[i .. i + 8] exists (i + 8 ≤ n ≤ out.len()); unaligned store.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(i), f) };
            i += 8;
        }
        super::distances_f32_scalar(query, &codes[i * 32..n * 32], &mut out[i..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimdLevel;
    use proptest::prelude::*;

    fn naive(a: &[u8], b: &[u8]) -> u32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (0..8).filter(|i| (x ^ y) >> i & 1 == 1).count() as u32)
            .sum()
    }

    proptest! {
        #[test]
        fn every_level_matches_bit_counting(
            cs in 0usize..80,
            seed in proptest::collection::vec(any::<u8>(), 0..2000),
        ) {
            let n = seed.len().checked_div(cs).map_or(3, |v| v / 2);
            let q: Vec<u8> = seed.iter().copied().cycle().skip(7).take(cs).collect();
            let codes: Vec<u8> = seed.iter().copied().cycle().take(n * cs).collect();
            let want: Vec<u32> = (0..n).map(|i| naive(&q, &codes[i * cs..(i + 1) * cs])).collect();
            for level in SimdLevel::supported() {
                let mut out = vec![u32::MAX; n];
                distances_at(level, &q, &codes, &mut out);
                prop_assert_eq!(&out, &want, "level {:?}", level);
            }
            let want_f32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
            let mut out = vec![f32::NAN; n];
            distances_f32_scalar(&q, &codes, &mut out);
            prop_assert_eq!(&out, &want_f32);
        }

        /// The VPOPCNTDQ kernel of 32-byte codes against its scalar twin: any count of
        /// codes (the 8-code steps and the tail), any start in the buffer.
        #[test]
        fn the_256_bit_kernel_matches_its_twin(
            seed in proptest::collection::vec(any::<u8>(), 32..3000),
            skip in 0usize..40,
        ) {
            let q: Vec<u8> = seed.iter().copied().cycle().skip(3).take(32).collect();
            let codes = &seed[skip.min(seed.len())..];
            let n = codes.len() / 32;
            let mut want = vec![f32::NAN; n];
            distances_f32_scalar(&q, codes, &mut want);
            let mut got = vec![f32::NAN; n];
            distances_f32(&q, codes, &mut got);
            prop_assert_eq!(&got, &want);
            for (i, w) in want.iter().enumerate() {
                prop_assert_eq!(*w, naive(&q, &codes[i * 32..(i + 1) * 32]) as f32);
            }
        }
    }
}
