//! Scalar-quantizer kernels: distances from a query to codes, decoding each component on
//! the fly, sixteen at a time, into registers (never a decoded vector in memory).
//!
//! A code holds one *raw component* per dimension ([`Components`]): an integer level for
//! the 8/6/4-bit quantizers, a half-precision value for fp16/bf16. The quantizer maps raw
//! component `c_i` to `b_i + a_i·c_i`; callers fold `b` into the query, so the kernels
//! need only `a`:
//! - L2: `Σ (q_i − b_i − a_i·c_i)²` is [`l2`] with `qp = q − b`;
//! - inner product: `Σ q_i·(b_i + a_i·c_i) = Σ q_i·b_i + Σ (q_i·a_i)·c_i` is [`dot`] with
//!   `qa = q·a`, plus a constant.

use crate::multiversion::multiversion;

/// How the components of a scalar-quantizer code are stored (Faiss's layouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Components {
    /// One byte per component.
    U8,
    /// Two components per byte, the even one in the low nibble.
    U4,
    /// Four components per three bytes, packed LSB-first.
    U6,
    /// IEEE half precision, little-endian.
    F16,
    /// bfloat16 (the top half of an f32), little-endian.
    Bf16,
}

impl Components {
    /// Bytes per code of `d` components.
    pub fn code_size(self, d: usize) -> usize {
        match self {
            Components::U8 => d,
            Components::U4 => d.div_ceil(2),
            Components::U6 => (d * 6).div_ceil(8),
            Components::F16 | Components::Bf16 => 2 * d,
        }
    }

    /// The raw value of component `i` of `code`.
    pub fn component(self, code: &[u8], i: usize) -> f32 {
        match self {
            Components::U8 => U8::one(code, i),
            Components::U4 => U4::one(code, i),
            Components::U6 => U6::one(code, i),
            Components::F16 => F16::one(code, i),
            Components::Bf16 => Bf16::one(code, i),
        }
    }
}

/// Half-precision bits to f32 with integer operations only, so that a loop of them
/// vectorises: the exponent is rebased by a multiplication by 2¹¹² (which also turns
/// half subnormals into f32 normals), infinities and NaNs are patched with a select.
#[inline(always)]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let em = h & 0x7fff;
    let scaled = f32::from_bits(em << 13) * f32::from_bits(0x7780_0000);
    let bits = if em >= 0x7c00 {
        (em << 13) | 0x7f80_0000
    } else {
        scaled.to_bits()
    };
    f32::from_bits(bits | sign)
}

trait Kind {
    fn one(code: &[u8], i: usize) -> f32;
    /// Components `16j .. 16j + 16`.
    fn chunk(code: &[u8], j: usize) -> [f32; 16];
}

struct U8;
impl Kind for U8 {
    #[inline(always)]
    fn one(code: &[u8], i: usize) -> f32 {
        code[i] as f32
    }
    #[inline(always)]
    fn chunk(code: &[u8], j: usize) -> [f32; 16] {
        let b: &[u8; 16] = code[16 * j..16 * j + 16].try_into().expect("16 bytes");
        b.map(|x| x as f32)
    }
}

struct U4;
impl Kind for U4 {
    #[inline(always)]
    fn one(code: &[u8], i: usize) -> f32 {
        ((code[i / 2] >> ((i & 1) * 4)) & 0xf) as f32
    }
    #[inline(always)]
    fn chunk(code: &[u8], j: usize) -> [f32; 16] {
        let b: &[u8; 8] = code[8 * j..8 * j + 8].try_into().expect("8 bytes");
        std::array::from_fn(|l| ((b[l / 2] >> ((l & 1) * 4)) & 0xf) as f32)
    }
}

struct U6;
impl Kind for U6 {
    #[inline(always)]
    fn one(code: &[u8], i: usize) -> f32 {
        let g = &code[(i / 4) * 3..];
        six(g, i & 3) as f32
    }
    #[inline(always)]
    fn chunk(code: &[u8], j: usize) -> [f32; 16] {
        let b: &[u8; 12] = code[12 * j..12 * j + 12].try_into().expect("12 bytes");
        std::array::from_fn(|l| six(&b[(l / 4) * 3..], l & 3) as f32)
    }
}

/// Component `r` (0..4) of a 3-byte group.
#[inline(always)]
fn six(g: &[u8], r: usize) -> u8 {
    match r {
        0 => g[0] & 0x3f,
        1 => (g[0] >> 6) | ((g[1] & 0xf) << 2),
        2 => (g[1] >> 4) | ((g[2] & 3) << 4),
        _ => g[2] >> 2,
    }
}

struct F16;
impl Kind for F16 {
    #[inline(always)]
    fn one(code: &[u8], i: usize) -> f32 {
        f16_bits_to_f32(u16::from_le_bytes([code[2 * i], code[2 * i + 1]]))
    }
    #[inline(always)]
    fn chunk(code: &[u8], j: usize) -> [f32; 16] {
        let b: &[u8; 32] = code[32 * j..32 * j + 32].try_into().expect("32 bytes");
        std::array::from_fn(|l| f16_bits_to_f32(u16::from_le_bytes([b[2 * l], b[2 * l + 1]])))
    }
}

struct Bf16;
impl Kind for Bf16 {
    #[inline(always)]
    fn one(code: &[u8], i: usize) -> f32 {
        f32::from_bits((u16::from_le_bytes([code[2 * i], code[2 * i + 1]]) as u32) << 16)
    }
    #[inline(always)]
    fn chunk(code: &[u8], j: usize) -> [f32; 16] {
        let b: &[u8; 32] = code[32 * j..32 * j + 32].try_into().expect("32 bytes");
        std::array::from_fn(|l| {
            f32::from_bits((u16::from_le_bytes([b[2 * l], b[2 * l + 1]]) as u32) << 16)
        })
    }
}

#[inline(always)]
fn sum16(acc: [f32; 16]) -> f32 {
    let mut a8 = [0.0f32; 8];
    for l in 0..8 {
        a8[l] = acc[l] + acc[l + 8];
    }
    let mut a4 = [0.0f32; 4];
    for l in 0..4 {
        a4[l] = a8[l] + a8[l + 4];
    }
    (a4[0] + a4[2]) + (a4[1] + a4[3])
}

#[inline(always)]
fn l2_body<K: Kind>(cs: usize, qp: &[f32], a: &[f32], codes: &[u8], out: &mut [f32]) {
    let d = qp.len();
    let full = d / 16;
    for (code, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        let mut acc = [0.0f32; 16];
        let (qs, _) = qp.as_chunks::<16>();
        let (as_, _) = a.as_chunks::<16>();
        for (j, (q, a)) in qs.iter().zip(as_).enumerate() {
            let c = K::chunk(code, j);
            for l in 0..16 {
                let r = q[l] - a[l] * c[l];
                acc[l] += r * r;
            }
        }
        let mut s = sum16(acc);
        for i in full * 16..d {
            let r = qp[i] - a[i] * K::one(code, i);
            s += r * r;
        }
        *o = s;
    }
}

#[inline(always)]
fn dot_body<K: Kind>(cs: usize, qa: &[f32], codes: &[u8], out: &mut [f32]) {
    let d = qa.len();
    let full = d / 16;
    for (code, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        let mut acc = [0.0f32; 16];
        let (qs, _) = qa.as_chunks::<16>();
        for (j, q) in qs.iter().enumerate() {
            let c = K::chunk(code, j);
            for l in 0..16 {
                acc[l] += q[l] * c[l];
            }
        }
        let mut s = sum16(acc);
        for i in full * 16..d {
            s += qa[i] * K::one(code, i);
        }
        *o = s;
    }
}

#[inline(always)]
fn decode_body<K: Kind>(cs: usize, a: &[f32], b: &[f32], codes: &[u8], out: &mut [f32]) {
    let d = a.len();
    let full = d / 16;
    for (code, x) in codes.chunks_exact(cs).zip(out.chunks_exact_mut(d)) {
        let (xs, _) = x.as_chunks_mut::<16>();
        let (as_, _) = a.as_chunks::<16>();
        let (bs, _) = b.as_chunks::<16>();
        for (j, ((x, a), b)) in xs.iter_mut().zip(as_).zip(bs).enumerate() {
            let c = K::chunk(code, j);
            for l in 0..16 {
                x[l] = b[l] + a[l] * c[l];
            }
        }
        for i in full * 16..d {
            x[i] = b[i] + a[i] * K::one(code, i);
        }
    }
}

multiversion! {
    /// Decodes `n` codes (`n × kind.code_size(d)` bytes) into `n × d` floats,
    /// `x_i = b_i + a_i·c_i`, sixteen components a step (the list-major IVF search decodes
    /// a list once and compares it with all its queries by a matrix product).
    ///
    /// ```
    /// use fathom_kernels::codes::sq::{decode, Components};
    /// let mut out = [0.0f32; 2];
    /// decode(Components::U8, &[0.5, 2.0], &[1.0, 0.0], &[4, 3], &mut out);
    /// assert_eq!(out, [3.0, 6.0]);
    /// ```
    pub fn decode / decode_at(kind: Components, a: &[f32], b: &[f32], codes: &[u8], out: &mut [f32]) {
        let d = a.len();
        assert_eq!(b.len(), d, "offset and scale vector lengths differ");
        if d == 0 {
            return;
        }
        assert!(out.len().is_multiple_of(d), "output is not a whole number of vectors");
        let cs = check_shapes(kind, d, d, codes, out.len() / d);
        match kind {
            Components::U8 => decode_body::<U8>(cs, a, b, codes, out),
            Components::U4 => decode_body::<U4>(cs, a, b, codes, out),
            Components::U6 => decode_body::<U6>(cs, a, b, codes, out),
            Components::F16 => decode_body::<F16>(cs, a, b, codes, out),
            Components::Bf16 => decode_body::<Bf16>(cs, a, b, codes, out),
        }
    }
}

fn check_shapes(kind: Components, d: usize, a_len: usize, codes: &[u8], n: usize) -> usize {
    assert_eq!(a_len, d, "scale vector and query lengths differ");
    let cs = kind.code_size(d);
    assert_eq!(codes.len(), n * cs, "codes and output sizes disagree");
    cs
}

multiversion! {
    /// The trained scalar quantizers' encoding of one vector, one level per component:
    /// `⌊clamp((x − vmin) / vdiff, 0, 1) · scale⌋` (0 where `vdiff = 0`), bit for bit
    /// Faiss's. `scale` is `levels − 1` (at most 255).
    ///
    /// ```
    /// let mut out = [0u8; 3];
    /// fathom_kernels::codes::sq::quantize_levels(
    ///     &[0.5, 2.0, 7.0], &[0.0, 0.0, 1.0], &[1.0, 1.0, 0.0], 255.0, &mut out);
    /// assert_eq!(out, [127, 255, 0]);
    /// ```
    pub fn quantize_levels / quantize_levels_at(
        x: &[f32],
        vmin: &[f32],
        vdiff: &[f32],
        scale: f32,
        out: &mut [u8],
    ) {
        let d = x.len();
        assert!(vmin.len() == d && vdiff.len() == d && out.len() == d, "lengths disagree");
        for i in 0..d {
            let dv = vdiff[i];
            let q = (x[i] - vmin[i]) / dv;
            // A NaN from dv = 0 is discarded by the select.
            let u = if dv != 0.0 { q.clamp(0.0, 1.0) } else { 0.0 };
            // Truncation of a value in 0..=255 (u is never NaN). `as u8`
            // would saturate lane by lane in scalar code; adding 2²³ to the floored value
            // puts the integer in the low mantissa bits, which vectorises.
            out[i] = ((u * scale).floor() + 8_388_608.0).to_bits() as u8;
        }
    }
}

/// `out[i] = Σ_t (qp_t − a_t·c_{i,t})²` over the codes of `codes`, each
/// `kind.code_size(qp.len())` bytes.
pub fn l2(kind: Components, qp: &[f32], a: &[f32], codes: &[u8], out: &mut [f32]) {
    l2_at(crate::simd_level(), kind, qp, a, codes, out)
}

/// [`l2`] at a given SIMD level (the scalar twin when the CPU lacks it).
pub fn l2_at(
    level: crate::SimdLevel,
    kind: Components,
    qp: &[f32],
    a: &[f32],
    codes: &[u8],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if x86::l2(level, kind, qp, a, codes, out) {
        return;
    }
    l2_generic_at(level, kind, qp, a, codes, out)
}

/// `out[i] = Σ_t qa_t·c_{i,t}` over the codes of `codes`, each
/// `kind.code_size(qa.len())` bytes.
pub fn dot(kind: Components, qa: &[f32], codes: &[u8], out: &mut [f32]) {
    dot_at(crate::simd_level(), kind, qa, codes, out)
}

/// [`dot`] at a given SIMD level (the scalar twin when the CPU lacks it).
pub fn dot_at(
    level: crate::SimdLevel,
    kind: Components,
    qa: &[f32],
    codes: &[u8],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if x86::dot(level, kind, qa, codes, out) {
        return;
    }
    dot_generic_at(level, kind, qa, codes, out)
}

multiversion! {
    /// The generic (auto-vectorised) form of [`l2`].
    fn l2_generic / l2_generic_at(kind: Components, qp: &[f32], a: &[f32], codes: &[u8], out: &mut [f32]) {
        let cs = check_shapes(kind, qp.len(), a.len(), codes, out.len());
        if cs == 0 {
            out.fill(0.0);
            return;
        }
        match kind {
            Components::U8 => l2_body::<U8>(cs, qp, a, codes, out),
            Components::U4 => l2_body::<U4>(cs, qp, a, codes, out),
            Components::U6 => l2_body::<U6>(cs, qp, a, codes, out),
            Components::F16 => l2_body::<F16>(cs, qp, a, codes, out),
            Components::Bf16 => l2_body::<Bf16>(cs, qp, a, codes, out),
        }
    }
}

multiversion! {
    /// The generic (auto-vectorised) form of [`dot`].
    fn dot_generic / dot_generic_at(kind: Components, qa: &[f32], codes: &[u8], out: &mut [f32]) {
        let cs = check_shapes(kind, qa.len(), qa.len(), codes, out.len());
        if cs == 0 {
            out.fill(0.0);
            return;
        }
        match kind {
            Components::U8 => dot_body::<U8>(cs, qa, codes, out),
            Components::U4 => dot_body::<U4>(cs, qa, codes, out),
            Components::U6 => dot_body::<U6>(cs, qa, codes, out),
            Components::F16 => dot_body::<F16>(cs, qa, codes, out),
            Components::Bf16 => dot_body::<Bf16>(cs, qa, codes, out),
        }
    }
}

/// Hand-written kernels for the hot layouts (bytes and fp16): a 16-byte load widened to
/// 16 (or 8) floats per step, fused multiply-adds into one register.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Components, check_shapes};
    use crate::SimdLevel;
    use std::arch::x86_64::*;

    fn avx512_ok(level: SimdLevel) -> bool {
        level == SimdLevel::Avx512 && SimdLevel::Avx512.is_supported()
    }

    /// Returns false when it has no kernel for this case (the caller falls back).
    pub(super) fn l2(
        level: SimdLevel,
        kind: Components,
        qp: &[f32],
        a: &[f32],
        codes: &[u8],
        out: &mut [f32],
    ) -> bool {
        let d = qp.len();
        if !avx512_ok(level)
            || !d.is_multiple_of(16)
            || d == 0
            || !matches!(kind, Components::U8 | Components::F16)
        {
            return false;
        }
        let cs = check_shapes(kind, d, a.len(), codes, out.len());
        // SAFETY: AVX-512 F/BW/DQ/VL support was checked by `avx512_ok`.
        unsafe { l2_avx512(kind, cs, qp, a, codes, out) };
        true
    }

    pub(super) fn dot(
        level: SimdLevel,
        kind: Components,
        qa: &[f32],
        codes: &[u8],
        out: &mut [f32],
    ) -> bool {
        let d = qa.len();
        if !avx512_ok(level)
            || !d.is_multiple_of(16)
            || d == 0
            || !matches!(kind, Components::U8 | Components::F16)
        {
            return false;
        }
        let cs = check_shapes(kind, d, d, codes, out.len());
        // SAFETY: AVX-512 F/BW/DQ/VL support was checked by `avx512_ok`.
        unsafe { dot_avx512(kind, cs, qa, codes, out) };
        true
    }

    /// 16 components starting at component `16·j` of `code`, as floats.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    fn load16(kind: Components, code: &[u8], j: usize) -> __m512 {
        match kind {
            Components::U8 => {
                let b = &code[16 * j..16 * j + 16];
                // SAFETY: `b` is 16 readable bytes; unaligned load.
                let v = unsafe { _mm_loadu_si128(b.as_ptr().cast()) };
                _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v))
            }
            _ => {
                let b = &code[32 * j..32 * j + 32];
                // SAFETY: `b` is 32 readable bytes; unaligned load.
                let v = unsafe { _mm256_loadu_si256(b.as_ptr().cast()) };
                _mm512_cvtph_ps(v)
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    fn load_f(x: &[f32], j: usize) -> __m512 {
        let s = &x[16 * j..16 * j + 16];
        // SAFETY: `s` is 16 readable floats; unaligned load.
        unsafe { _mm512_loadu_ps(s.as_ptr()) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    fn l2_avx512(
        kind: Components,
        cs: usize,
        qp: &[f32],
        a: &[f32],
        codes: &[u8],
        out: &mut [f32],
    ) {
        let steps = qp.len() / 16;
        for (code, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
            let mut acc = _mm512_setzero_ps();
            for j in 0..steps {
                let c = load16(kind, code, j);
                let r = _mm512_fnmadd_ps(load_f(a, j), c, load_f(qp, j));
                acc = _mm512_fmadd_ps(r, r, acc);
            }
            *o = _mm512_reduce_add_ps(acc);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    fn dot_avx512(kind: Components, cs: usize, qa: &[f32], codes: &[u8], out: &mut [f32]) {
        let steps = qa.len() / 16;
        for (code, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
            let mut acc = _mm512_setzero_ps();
            for j in 0..steps {
                acc = _mm512_fmadd_ps(load_f(qa, j), load16(kind, code, j), acc);
            }
            *o = _mm512_reduce_add_ps(acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimdLevel;
    use proptest::prelude::*;

    const KINDS: [Components; 5] = [
        Components::U8,
        Components::U4,
        Components::U6,
        Components::F16,
        Components::Bf16,
    ];

    proptest! {
        #[test]
        fn quantize_levels_matches_the_definition(
            x in proptest::collection::vec(-2.0f32..3.0, 0..70),
            scale in prop_oneof![Just(15.0f32), Just(63.0), Just(255.0)],
        ) {
            let d = x.len();
            let vmin: Vec<f32> = (0..d).map(|i| (i % 3) as f32 * 0.5 - 1.0).collect();
            // Every fifth range is empty (vdiff = 0): level 0, as Faiss.
            let vdiff: Vec<f32> = (0..d).map(|i| if i % 5 == 0 { 0.0 } else { 0.25 + (i % 4) as f32 }).collect();
            let want: Vec<u8> = (0..d)
                .map(|i| {
                    let u = if vdiff[i] != 0.0 { ((x[i] - vmin[i]) / vdiff[i]).clamp(0.0, 1.0) } else { 0.0 };
                    (u * scale) as u8
                })
                .collect();
            for level in SimdLevel::supported() {
                let mut out = vec![7u8; d];
                quantize_levels_at(level, &x, &vmin, &vdiff, scale, &mut out);
                prop_assert_eq!(&out, &want, "{:?}", level);
            }
        }
    }

    #[test]
    fn f16_decoding_matches_half() {
        for bits in 0..=u16::MAX {
            let want = half::f16::from_bits(bits).to_f32();
            let got = f16_bits_to_f32(bits);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{bits:#x}: {got} vs {want}"
            );
        }
    }

    proptest! {
        #[test]
        fn every_level_matches_componentwise_definition(
            d in 0usize..70,
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            kind_i in 0usize..5,
        ) {
            let kind = KINDS[kind_i];
            let cs = kind.code_size(d);
            let n = bytes.len().checked_div(cs).map_or(2, |v| v.min(5));
            let mut codes: Vec<u8> = bytes.iter().copied().cycle().take(n * cs).collect();
            if matches!(kind, Components::F16 | Components::Bf16) {
                // Keep the values finite so both sides compare as numbers.
                for c in codes.chunks_exact_mut(2) {
                    c[1] &= 0x3b;
                }
            }
            let q: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
            let a: Vec<f32> = (0..d).map(|i| 0.5 + (i % 3) as f32 * 0.25).collect();
            for (ci, code) in codes.chunks_exact(cs.max(1)).enumerate().take(n) {
                let comps: Vec<f32> = (0..d).map(|i| kind.component(code, i)).collect();
                let l2: f32 = (0..d).map(|i| (q[i] - a[i] * comps[i]).powi(2)).sum();
                let dot: f32 = (0..d).map(|i| q[i] * comps[i]).sum();
                // Rounding error scales with the terms, not with a sum that may cancel.
                let mag: f32 = (0..d).map(|i| (q[i] * comps[i]).abs()).sum();
                for level in SimdLevel::supported() {
                    let mut out = vec![f32::NAN; n];
                    l2_at(level, kind, &q, &a, &codes, &mut out);
                    prop_assert!((out[ci] - l2).abs() <= 1e-4 * (1.0 + l2.abs()), "{:?} {:?}", level, kind);
                    dot_at(level, kind, &q, &codes, &mut out);
                    prop_assert!((out[ci] - dot).abs() <= 1e-4 * (1.0 + mag), "{:?} {:?} {} {}", level, kind, out[ci], dot);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn decode_matches_componentwise_definition(
            d in 0usize..70,
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            kind_i in 0usize..5,
        ) {
            let kind = KINDS[kind_i];
            let cs = kind.code_size(d);
            let n = bytes.len().checked_div(cs).map_or(0, |v| v.min(5));
            let codes: Vec<u8> = bytes.iter().copied().cycle().take(n * cs).collect();
            let a: Vec<f32> = (0..d).map(|i| 0.5 + (i % 3) as f32 * 0.25).collect();
            let b: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
            let want: Vec<f32> = codes
                .chunks_exact(cs.max(1))
                .take(n)
                .flat_map(|code| (0..d).map(|i| b[i] + a[i] * kind.component(code, i)).collect::<Vec<_>>())
                .collect();
            for level in SimdLevel::supported() {
                let mut out = vec![f32::NAN; n * d];
                decode_at(level, kind, &a, &b, &codes, &mut out);
                let same = out.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
                prop_assert!(same, "{:?} {:?}", level, kind);
            }
        }
    }

    #[test]
    fn six_bit_layout_is_faiss() {
        // Components 1, 2, 3, 4 packed as Faiss's Codec6bit does.
        let vals = [1u32, 2, 3, 4];
        let packed = vals[0] | vals[1] << 6 | vals[2] << 12 | vals[3] << 18;
        let code = [packed as u8, (packed >> 8) as u8, (packed >> 16) as u8];
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(Components::U6.component(&code, i), *v as f32);
        }
    }
}
