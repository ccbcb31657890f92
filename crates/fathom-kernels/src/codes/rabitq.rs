//! The RaBitQ scan kernel: the dot product of a code's sign bits with a query quantized
//! to `qb` bits per coordinate, as popcounts of the query's bit planes against the sign
//! bits (`Σ_j 2^j · popcount(plane_j & sign)`).
//!
//! Compiled per SIMD level: the baseline x86-64 build has no `POPCNT` instruction, so
//! without the AVX2 / AVX-512 builds (which imply it) every popcount would be a dozen
//! shifts and masks.

use crate::multiversion::multiversion;

multiversion! {
    /// For each code of `codes` (rows of `stride` bytes whose first `sign_bytes` bytes
    /// are sign bits, coordinate `i` at bit `i % 8` of byte `i / 8`), writes
    /// `dots[r] = Σ_j 2^j · popcount(plane_j ∘ sign_r)` — `∘` is AND, or XOR when `xor` —
    /// and `pops[r] = popcount(sign_r)`.
    ///
    /// `planes` holds the query's `qb` (1 to 8) bit planes word-major: word `w` of plane
    /// `j` at `w · qb + j`, `⌈sign_bytes / 8⌉` words each; bits past the code's end must
    /// be 0 in the planes. Stops at the shortest of `dots`, `pops` and the whole rows.
    #[allow(clippy::too_many_arguments)]
    pub fn plane_dots / plane_dots_at(
        planes: &[u64],
        qb: usize,
        xor: bool,
        codes: &[u8],
        stride: usize,
        sign_bytes: usize,
        dots: &mut [u64],
        pops: &mut [u32],
    ) {
        let rows = Rows { codes, stride, sign_bytes };
        // The query widths Faiss users pick, at the common code widths (64, 128, 256
        // dimensions: the planes stay in registers), get a loop the compiler unrolls.
        let words = sign_bytes.div_ceil(8);
        match (qb, xor, words) {
            (4, false, 1) => fixed::<4, 1, false>(planes, rows, dots, pops),
            (4, false, 2) => fixed::<4, 2, false>(planes, rows, dots, pops),
            (4, false, 4) => fixed::<4, 4, false>(planes, rows, dots, pops),
            (8, false, 1) => fixed::<8, 1, false>(planes, rows, dots, pops),
            (8, false, 2) => fixed::<8, 2, false>(planes, rows, dots, pops),
            (4, false, _) => run::<4, false>(planes, rows, dots, pops),
            (8, false, _) => run::<8, false>(planes, rows, dots, pops),
            (4, true, _) => run::<4, true>(planes, rows, dots, pops),
            (8, true, _) => run::<8, true>(planes, rows, dots, pops),
            _ => run_any(planes, qb, xor, rows, dots, pops),
        }
    }
}

/// The codes a kernel call reads.
#[derive(Clone, Copy)]
struct Rows<'a> {
    codes: &'a [u8],
    stride: usize,
    sign_bytes: usize,
}

impl<'a> Rows<'a> {
    /// The sign bytes of each whole row.
    #[inline(always)]
    fn signs(self) -> impl Iterator<Item = &'a [u8]> {
        let n = self.codes.len().checked_div(self.stride).unwrap_or(0);
        (0..n).map(move |r| &self.codes[r * self.stride..r * self.stride + self.sign_bytes])
    }
}

/// Word `w` of the sign bits (zero-padded past their end).
#[inline(always)]
fn sign_word(sign: &[u8], w: usize) -> u64 {
    let lo = w * 8;
    match sign.get(lo..lo + 8) {
        Some(s) => u64::from_le_bytes(s.try_into().expect("8 bytes")),
        None => {
            let mut bytes = [0u8; 8];
            bytes[..sign.len() - lo].copy_from_slice(&sign[lo..]);
            u64::from_le_bytes(bytes)
        }
    }
}

/// `W` whole words of sign bits per code (`sign_bytes == 8·W`, else [`run`]).
#[inline(always)]
fn fixed<const Q: usize, const W: usize, const XOR: bool>(
    planes: &[u64],
    rows: Rows<'_>,
    dots: &mut [u64],
    pops: &mut [u32],
) {
    if rows.sign_bytes != 8 * W {
        return run::<Q, XOR>(planes, rows, dots, pops);
    }
    let planes: [u64; 64] = std::array::from_fn(|i| planes.get(i).copied().unwrap_or(0));
    let n = rows.codes.len().checked_div(rows.stride).unwrap_or(0);
    for (r, (dot, pop)) in dots.iter_mut().zip(pops.iter_mut()).take(n).enumerate() {
        let at = r * rows.stride;
        let (mut acc, mut count) = (0u64, 0u32);
        for w in 0..W {
            let b = u64::from_le_bytes(
                rows.codes[at + 8 * w..at + 8 * w + 8]
                    .try_into()
                    .expect("8 bytes"),
            );
            count += b.count_ones();
            for j in 0..Q {
                let pj = planes[w * Q + j];
                let v = if XOR { pj ^ b } else { pj & b };
                acc += (v.count_ones() as u64) << j;
            }
        }
        *dot = acc;
        *pop = count;
    }
}

#[inline(always)]
fn run<const Q: usize, const XOR: bool>(
    planes: &[u64],
    rows: Rows<'_>,
    dots: &mut [u64],
    pops: &mut [u32],
) {
    let words = rows.sign_bytes.div_ceil(8);
    let (planes, _) = planes[..Q * words].as_chunks::<Q>();
    for ((sign, dot), pop) in rows.signs().zip(dots.iter_mut()).zip(pops.iter_mut()) {
        let (mut acc, mut count) = (0u64, 0u32);
        for (w, p) in planes.iter().enumerate() {
            let b = sign_word(sign, w);
            count += b.count_ones();
            for (j, &pj) in p.iter().enumerate() {
                let v = if XOR { pj ^ b } else { pj & b };
                acc += (v.count_ones() as u64) << j;
            }
        }
        *dot = acc;
        *pop = count;
    }
}

/// Any number of planes: the loop the fixed widths unroll.
#[inline(always)]
fn run_any(
    planes: &[u64],
    q: usize,
    xor: bool,
    rows: Rows<'_>,
    dots: &mut [u64],
    pops: &mut [u32],
) {
    let words = rows.sign_bytes.div_ceil(8);
    for ((sign, dot), pop) in rows.signs().zip(dots.iter_mut()).zip(pops.iter_mut()) {
        let (mut acc, mut count) = (0u64, 0u32);
        for w in 0..words {
            let b = sign_word(sign, w);
            count += b.count_ones();
            for (j, &pj) in planes[w * q..(w + 1) * q].iter().enumerate() {
                let v = if xor { pj ^ b } else { pj & b };
                acc += (v.count_ones() as u64) << j;
            }
        }
        *dot = acc;
        *pop = count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimdLevel;
    use proptest::prelude::*;

    /// Bit by bit, from the definition.
    fn naive(planes: &[u64], qb: usize, xor: bool, sign: &[u8]) -> (u64, u32) {
        let bit = |i: usize| (sign[i / 8] >> (i % 8)) & 1 == 1;
        let (mut dot, mut pop) = (0u64, 0u32);
        for i in 0..sign.len() * 8 {
            pop += bit(i) as u32;
            for j in 0..qb {
                let p = (planes[(i / 64) * qb + j] >> (i % 64)) & 1 == 1;
                if if xor { p != bit(i) } else { p && bit(i) } {
                    dot += 1 << j;
                }
            }
        }
        (dot, pop)
    }

    proptest! {
        /// Every level and width against the definition: partial last words, rows with
        /// bytes after the sign bits, a ragged end of the buffer.
        #[test]
        fn every_level_matches_the_definition(
            sign_bytes in 1usize..40,
            extra in 0usize..12,
            qb in 1usize..=8,
            xor in any::<bool>(),
            seed in proptest::collection::vec(any::<u8>(), 1..1200),
        ) {
            let (stride, words) = (sign_bytes + extra, sign_bytes.div_ceil(8));
            let n = seed.len() / stride;
            let bits = sign_bytes * 8;
            let planes: Vec<u64> = (0..words * qb)
                .map(|i| {
                    let v = (i as u64 + seed[i % seed.len()] as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    // Bits past the code's end are 0, as the contract asks.
                    let w = i / qb;
                    let valid = bits.saturating_sub(w * 64).min(64);
                    if valid == 64 { v } else { v & ((1u64 << valid) - 1) }
                })
                .collect();
            let want: Vec<(u64, u32)> = (0..n)
                .map(|r| naive(&planes, qb, xor, &seed[r * stride..r * stride + sign_bytes]))
                .collect();
            for level in SimdLevel::supported() {
                let (mut dots, mut pops) = (vec![u64::MAX; n], vec![u32::MAX; n]);
                plane_dots_at(level, &planes, qb, xor, &seed, stride, sign_bytes, &mut dots, &mut pops);
                let got: Vec<(u64, u32)> = dots.into_iter().zip(pops).collect();
                prop_assert_eq!(&got, &want, "level {:?}", level);
            }
        }
    }
}
