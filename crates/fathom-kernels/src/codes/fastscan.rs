//! The 4-bit fast-scan accumulation: distances of blocks of 32 codes read from 8-bit
//! look-up tables held in SIMD registers (one byte shuffle looks up 16 codes at once).
//!
//! ## Layout
//! Codes come in blocks of [`BLOCK`] = 32 vectors with `nsq` sub-quantizers (`nsq` even;
//! a codec pads odd counts with a sub-quantizer whose codes and table are zero). A block
//! is `nsq` runs of 16 bytes; in the run of sub-quantizer `m`, byte `j` holds vector
//! `j`'s code in its low nibble and vector `j + 16`'s in its high nibble. So one 32-byte
//! load brings two sub-quantizers' codes for the whole block (four with 64 bytes), and
//! the tables of the same sub-quantizers, 16 bytes each, sit in the matching register
//! lanes: an in-lane byte shuffle is the look-up.
//!
//! ## Accumulation
//! Sums are u16. A shuffle's 16 byte results are added as 8 u16 twice — the low bytes
//! (even vectors) masked, the high bytes (odd vectors) shifted down — so no widening
//! instruction is needed; `nsq · 255` must fit in u16 (`nsq ≤ 256`), which the codec
//! checks.

/// Vectors per block.
pub const BLOCK: usize = 32;

/// Bytes of one block of codes with `nsq` sub-quantizers.
pub fn block_bytes(nsq: usize) -> usize {
    nsq * 16
}

/// Accumulates, for each block of `codes` and each of the `nq` tables in `luts`
/// (`nq × nsq × 16` bytes), the 32 distances of the block into `out`
/// (`nq × nblocks × 32`, query-major: query `q`, block `b` at `(q · nblocks + b) · 32`).
/// Blocks are the outer loop, so each is read from memory once for all `nq` queries.
///
/// Panics if the sizes disagree or `nsq` is odd or above 256.
pub fn accumulate(nsq: usize, codes: &[u8], luts: &[u8], out: &mut [u16]) {
    accumulate_at(crate::simd_level(), nsq, block_bytes(nsq), codes, luts, out)
}

/// [`accumulate`] over blocks that start every `stride` bytes (`stride ≥ block_bytes(nsq)`;
/// the bytes after each block's codes — per-vector data a codec keeps beside them — are
/// not read). `codes` holds whole strides.
pub fn accumulate_strided(nsq: usize, stride: usize, codes: &[u8], luts: &[u8], out: &mut [u16]) {
    accumulate_at(crate::simd_level(), nsq, stride, codes, luts, out)
}

/// [`accumulate_strided`] at a given SIMD level (the scalar twin when the CPU lacks it).
pub fn accumulate_at(
    level: crate::SimdLevel,
    nsq: usize,
    stride: usize,
    codes: &[u8],
    luts: &[u8],
    out: &mut [u16],
) {
    assert!(
        nsq.is_multiple_of(2) && nsq <= 256,
        "nsq = {nsq} must be even and at most 256"
    );
    let bb = block_bytes(nsq);
    assert!(
        stride >= bb,
        "blocks of {bb} bytes cannot start every {stride}"
    );
    let nblocks = codes.len().checked_div(stride).unwrap_or(0);
    assert_eq!(codes.len(), nblocks * stride, "codes are not whole blocks");
    let lut_len = nsq * 16;
    let nq = luts.len().checked_div(lut_len).unwrap_or(0);
    assert_eq!(luts.len(), nq * lut_len, "tables are not whole");
    assert_eq!(out.len(), nq * nblocks * BLOCK, "output size");
    if nsq == 0 {
        out.fill(0);
        return;
    }
    match level {
        #[cfg(target_arch = "x86_64")]
        crate::SimdLevel::Avx512
            if crate::SimdLevel::Avx512.is_supported() && nsq.is_multiple_of(4) =>
        {
            // SAFETY: AVX-512 F/BW support was checked just above; the sizes were asserted
            // above (whole strides of at least one block, whole tables, the output), and the
            // kernel reads through slices of them.
            unsafe { x86::accumulate_avx512(nsq, stride, nblocks, codes, luts, out) }
        }
        #[cfg(target_arch = "x86_64")]
        crate::SimdLevel::Avx2 | crate::SimdLevel::Avx512
            if crate::SimdLevel::Avx2.is_supported() =>
        {
            // SAFETY: AVX2 support was checked just above; the sizes were asserted
            // above (whole strides of at least one block, whole tables, the output), and the
            // kernel reads through slices of them.
            unsafe { x86::accumulate_avx2(nsq, stride, nblocks, codes, luts, out) }
        }
        #[cfg(target_arch = "aarch64")]
        crate::SimdLevel::Neon if crate::SimdLevel::Neon.is_supported() => {
            // SAFETY: NEON support was checked just above; the sizes were asserted
            // above (whole strides of at least one block, whole tables, the output), and the
            // kernel reads through slices of them.
            unsafe { neon::accumulate_neon(nsq, stride, nblocks, codes, luts, out) }
        }
        _ => accumulate_scalar(nsq, stride, nblocks, codes, luts, out),
    }
}

/// The definition, one look-up at a time.
fn accumulate_scalar(
    nsq: usize,
    stride: usize,
    nblocks: usize,
    codes: &[u8],
    luts: &[u8],
    out: &mut [u16],
) {
    let bb = block_bytes(nsq);
    let nq = luts.len() / (nsq * 16);
    for b in 0..nblocks {
        let block = &codes[b * stride..b * stride + bb];
        for q in 0..nq {
            let lut = &luts[q * nsq * 16..(q + 1) * nsq * 16];
            let o = &mut out[(q * nblocks + b) * BLOCK..(q * nblocks + b + 1) * BLOCK];
            o.fill(0);
            for m in 0..nsq {
                let run = &block[m * 16..m * 16 + 16];
                let t = &lut[m * 16..m * 16 + 16];
                for j in 0..16 {
                    o[j] += t[(run[j] & 15) as usize] as u16;
                    o[j + 16] += t[(run[j] >> 4) as usize] as u16;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BLOCK, block_bytes};
    use std::arch::x86_64::*;

    /// Writes the four u16×8 accumulators (even / odd vectors of the low / high
    /// nibbles) as the 32 distances of a block, in vector order.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn store_block(
        lo_even: __m128i,
        lo_odd: __m128i,
        hi_even: __m128i,
        hi_odd: __m128i,
        o: &mut [u16],
    ) {
        // Interleaving the even- and odd-vector sums puts the block in vector order.
        let parts = [
            _mm_unpacklo_epi16(lo_even, lo_odd),
            _mm_unpackhi_epi16(lo_even, lo_odd),
            _mm_unpacklo_epi16(hi_even, hi_odd),
            _mm_unpackhi_epi16(hi_even, hi_odd),
        ];
        for (dst, p) in o.chunks_exact_mut(8).zip(parts) {
            // SAFETY: `dst` is 8 writable u16 (16 bytes); unaligned store.
            unsafe { _mm_storeu_si128(dst.as_mut_ptr().cast(), p) };
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn accumulate_avx2(
        nsq: usize,
        stride: usize,
        nblocks: usize,
        codes: &[u8],
        luts: &[u8],
        out: &mut [u16],
    ) {
        let bb = block_bytes(nsq);
        let nq = luts.len() / (nsq * 16);
        let low4 = _mm256_set1_epi8(0x0f);
        for b in 0..nblocks {
            let block = &codes[b * stride..b * stride + bb];
            for q in 0..nq {
                let lut = &luts[q * nsq * 16..(q + 1) * nsq * 16];
                let mut acc = [_mm256_setzero_si256(); 4];
                for (c, t) in block.chunks_exact(32).zip(lut.chunks_exact(32)) {
                    // SAFETY: `c` and `t` are 32 readable bytes; unaligned loads.
                    let (c, t) = unsafe {
                        (
                            _mm256_loadu_si256(c.as_ptr().cast()),
                            _mm256_loadu_si256(t.as_ptr().cast()),
                        )
                    };
                    let lo = _mm256_shuffle_epi8(t, _mm256_and_si256(c, low4));
                    let hi =
                        _mm256_shuffle_epi8(t, _mm256_and_si256(_mm256_srli_epi16(c, 4), low4));
                    // Whole u16 lanes are added (even value + 256 · odd value); the odd
                    // sums, kept apart, are subtracted back out at the end.
                    acc[0] = _mm256_add_epi16(acc[0], lo);
                    acc[1] = _mm256_add_epi16(acc[1], _mm256_srli_epi16(lo, 8));
                    acc[2] = _mm256_add_epi16(acc[2], hi);
                    acc[3] = _mm256_add_epi16(acc[3], _mm256_srli_epi16(hi, 8));
                }
                let fold = |a: __m256i| {
                    _mm_add_epi16(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1))
                };
                let o = &mut out[(q * nblocks + b) * BLOCK..(q * nblocks + b + 1) * BLOCK];
                let (lo_odd, hi_odd) = (fold(acc[1]), fold(acc[3]));
                let lo_even = _mm_sub_epi16(fold(acc[0]), _mm_slli_epi16(lo_odd, 8));
                let hi_even = _mm_sub_epi16(fold(acc[2]), _mm_slli_epi16(hi_odd, 8));
                store_block(lo_even, lo_odd, hi_even, hi_odd, o);
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    pub(super) fn accumulate_avx512(
        nsq: usize,
        stride: usize,
        nblocks: usize,
        codes: &[u8],
        luts: &[u8],
        out: &mut [u16],
    ) {
        // Up to four queries share each load and nibble split of the codes; their
        // accumulators (4 × 4 registers) stay in registers for the whole block.
        let lut_len = nsq * 16;
        let out_len = nblocks * BLOCK;
        let mut q = 0;
        let nq = luts.len() / lut_len;
        while q < nq {
            let g = (nq - q).min(4);
            let l = &luts[q * lut_len..(q + g) * lut_len];
            let o = &mut out[q * out_len..(q + g) * out_len];
            match g {
                4 => group_avx512::<4>(nsq, stride, nblocks, codes, l, o),
                3 => group_avx512::<3>(nsq, stride, nblocks, codes, l, o),
                2 => group_avx512::<2>(nsq, stride, nblocks, codes, l, o),
                _ => group_avx512::<1>(nsq, stride, nblocks, codes, l, o),
            }
            q += g;
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    fn group_avx512<const NQ: usize>(
        nsq: usize,
        stride: usize,
        nblocks: usize,
        codes: &[u8],
        luts: &[u8],
        out: &mut [u16],
    ) {
        let bb = block_bytes(nsq);
        let lut_len = nsq * 16;
        let low4 = _mm512_set1_epi8(0x0f);
        for b in 0..nblocks {
            let block = &codes[b * stride..b * stride + bb];
            let mut acc = [[_mm512_setzero_si512(); 4]; NQ];
            for (ci, c) in block.chunks_exact(64).enumerate() {
                // SAFETY: `c` is 64 readable bytes; unaligned load.
                let c = unsafe { _mm512_loadu_si512(c.as_ptr().cast()) };
                let clo = _mm512_and_si512(c, low4);
                let chi = _mm512_and_si512(_mm512_srli_epi16(c, 4), low4);
                for (q, a) in acc.iter_mut().enumerate() {
                    let t = &luts[q * lut_len + ci * 64..q * lut_len + ci * 64 + 64];
                    // SAFETY: `t` is 64 readable bytes; unaligned load.
                    let t = unsafe { _mm512_loadu_si512(t.as_ptr().cast()) };
                    let lo = _mm512_shuffle_epi8(t, clo);
                    let hi = _mm512_shuffle_epi8(t, chi);
                    // Whole u16 lanes are added (even value + 256 · odd value); the odd
                    // sums, kept apart, are subtracted back out at the end.
                    a[0] = _mm512_add_epi16(a[0], lo);
                    a[1] = _mm512_add_epi16(a[1], _mm512_srli_epi16(lo, 8));
                    a[2] = _mm512_add_epi16(a[2], hi);
                    a[3] = _mm512_add_epi16(a[3], _mm512_srli_epi16(hi, 8));
                }
            }
            let fold = |a: __m512i| {
                let h =
                    _mm256_add_epi16(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
                _mm_add_epi16(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1))
            };
            for (q, a) in acc.iter().enumerate() {
                let o = &mut out[(q * nblocks + b) * BLOCK..(q * nblocks + b + 1) * BLOCK];
                let (lo_odd, hi_odd) = (fold(a[1]), fold(a[3]));
                let lo_even = _mm_sub_epi16(fold(a[0]), _mm_slli_epi16(lo_odd, 8));
                let hi_even = _mm_sub_epi16(fold(a[2]), _mm_slli_epi16(hi_odd, 8));
                store_block(lo_even, lo_odd, hi_even, hi_odd, o);
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::{BLOCK, block_bytes};
    use std::arch::aarch64::*;

    /// One 16-byte table look-up (`vqtbl1q_u8`) per nibble and sub-quantizer; the bytes
    /// are widened into four u16×8 accumulators that are already in vector order
    /// (vectors 0–7, 8–15 from the low nibbles, 16–23, 24–31 from the high ones).
    #[target_feature(enable = "neon")]
    pub(super) fn accumulate_neon(
        nsq: usize,
        stride: usize,
        nblocks: usize,
        codes: &[u8],
        luts: &[u8],
        out: &mut [u16],
    ) {
        let bb = block_bytes(nsq);
        let nq = luts.len() / (nsq * 16);
        let low4 = vdupq_n_u8(0x0f);
        for b in 0..nblocks {
            let block = &codes[b * stride..b * stride + bb];
            for q in 0..nq {
                let lut = &luts[q * nsq * 16..(q + 1) * nsq * 16];
                let mut acc = [vdupq_n_u16(0); 4];
                for (c, t) in block.chunks_exact(16).zip(lut.chunks_exact(16)) {
                    // SAFETY: `c` and `t` are 16 readable bytes.
                    let (c, t) = unsafe { (vld1q_u8(c.as_ptr()), vld1q_u8(t.as_ptr())) };
                    let lo = vqtbl1q_u8(t, vandq_u8(c, low4));
                    let hi = vqtbl1q_u8(t, vshrq_n_u8::<4>(c));
                    acc[0] = vaddw_u8(acc[0], vget_low_u8(lo));
                    acc[1] = vaddw_high_u8(acc[1], lo);
                    acc[2] = vaddw_u8(acc[2], vget_low_u8(hi));
                    acc[3] = vaddw_high_u8(acc[3], hi);
                }
                let o = &mut out[(q * nblocks + b) * BLOCK..(q * nblocks + b + 1) * BLOCK];
                for (dst, a) in o.chunks_exact_mut(8).zip(acc) {
                    // SAFETY: `dst` is 8 writable u16.
                    unsafe { vst1q_u16(dst.as_mut_ptr(), a) };
                }
            }
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
        fn every_level_matches_scalar(
            nsq_half in 0usize..20,
            nblocks in 0usize..4,
            nq in 1usize..7,
            extra in 0usize..3,
            seed in any::<u64>(),
        ) {
            let nsq = nsq_half * 2;
            // Blocks followed by `extra · 13` bytes of other data each.
            let stride = block_bytes(nsq) + extra * 13;
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let codes: Vec<u8> = (0..nblocks * stride).map(|_| next() as u8).collect();
            let luts: Vec<u8> = (0..nq * nsq * 16).map(|_| next() as u8).collect();
            let nq_eff = if nsq == 0 { 0 } else { nq };
            let luts = &luts[..nq_eff * nsq * 16];
            let mut want = vec![0u16; nq_eff * nblocks * BLOCK];
            if nsq == 0 && stride == 0 {
                return Ok(());
            }
            accumulate_at(SimdLevel::Scalar, nsq, stride, &codes, luts, &mut want);
            // The scalar twin against the layout's definition.
            for b in 0..nblocks {
                for q in 0..nq_eff {
                    for v in 0..BLOCK {
                        let mut sum = 0u16;
                        for m in 0..nsq {
                            let byte = codes[b * stride + m * 16 + v % 16];
                            let c = if v < 16 { byte & 15 } else { byte >> 4 };
                            sum += luts[q * nsq * 16 + m * 16 + c as usize] as u16;
                        }
                        prop_assert_eq!(want[(q * nblocks + b) * BLOCK + v], sum);
                    }
                }
            }
            for level in SimdLevel::supported() {
                let mut out = vec![7u16; want.len()];
                accumulate_at(level, nsq, stride, &codes, luts, &mut out);
                prop_assert_eq!(&out, &want, "level {:?}", level);
            }
        }
    }
}
