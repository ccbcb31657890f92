//! AArch64 NEON level token (128-bit).

use std::arch::aarch64::*;

use super::lanes::Lanes;

/// Proof that the CPU supports NEON (every AArch64 CPU does).
#[derive(Clone, Copy)]
pub(crate) struct Neon(());

impl Neon {
    /// # Safety
    /// The CPU must support NEON.
    #[inline(always)]
    pub(crate) unsafe fn new_unchecked() -> Self {
        Neon(())
    }
}

// SAFETY (for every `unsafe` block in this impl): a `Neon` token only exists when the CPU
// supports NEON, and `load` reads 4 floats from a slice checked to hold at least 4.
impl Lanes for Neon {
    type V = float32x4_t;
    const N: usize = 4;
    #[inline(always)]
    fn load(self, s: &[f32]) -> float32x4_t {
        assert!(s.len() >= 4);
        // SAFETY: see the impl comment; `s` holds at least 4 floats.
        unsafe { vld1q_f32(s.as_ptr()) }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> float32x4_t {
        // SAFETY: see the impl comment.
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl comment.
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl comment.
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl comment.
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    fn abs(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl comment.
        unsafe { vabsq_f32(a) }
    }
    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl comment.
        unsafe { vmaxq_f32(a, b) }
    }
    #[inline(always)]
    fn div_where_positive(self, num: float32x4_t, den: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl comment.
        unsafe {
            let pos = vcgtq_f32(den, vdupq_n_f32(0.0));
            vreinterpretq_f32_u32(vandq_u32(pos, vreinterpretq_u32_f32(vdivq_f32(num, den))))
        }
    }
    #[inline(always)]
    fn sum(self, a: float32x4_t) -> f32 {
        // SAFETY: see the impl comment.
        unsafe { vaddvq_f32(a) }
    }
    #[inline(always)]
    fn hmax(self, a: float32x4_t) -> f32 {
        // SAFETY: see the impl comment.
        unsafe { vmaxvq_f32(a) }
    }
    #[inline(always)]
    fn mask_le(self, a: float32x4_t, b: float32x4_t, thr: float32x4_t) -> u32 {
        // SAFETY: see the impl comment.
        unsafe {
            let le = vcleq_f32(vaddq_f32(a, b), thr);
            let bits = vandq_u32(le, vld1q_u32([1u32, 2, 4, 8].as_ptr()));
            vaddvq_u32(bits)
        }
    }
}
