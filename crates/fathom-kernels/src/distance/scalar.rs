//! The scalar twins: plain loops that define what every metric computes. The SIMD levels
//! are tested against these.

/// `Σ (aᵢ−bᵢ)²`
pub fn l2_sqr(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// `Σ aᵢbᵢ`
pub fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `Σ |aᵢ−bᵢ|`
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
}

/// `max |aᵢ−bᵢ|`
pub fn linf(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

/// `Σ |aᵢ−bᵢ|ᵖ` (no final root, as Faiss).
pub fn lp(a: &[f32], b: &[f32], p: f32) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs().powf(p)).sum()
}

/// `Σ |aᵢ−bᵢ| / (|aᵢ|+|bᵢ|)`, a term with a zero denominator counting 0.
pub fn canberra(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| canberra_term(*x, *y)).sum()
}

#[inline(always)]
pub(crate) fn canberra_term(x: f32, y: f32) -> f32 {
    let den = x.abs() + y.abs();
    if den > 0.0 { (x - y).abs() / den } else { 0.0 }
}

/// `Σ|aᵢ−bᵢ| / Σ|aᵢ+bᵢ|`; 0 when the vectors are equal.
pub fn bray_curtis(a: &[f32], b: &[f32]) -> f32 {
    let (num, den) = a.iter().zip(b).fold((0.0f32, 0.0f32), |(n, d), (x, y)| {
        (n + (x - y).abs(), d + (x + y).abs())
    });
    bray_curtis_finish(num, den)
}

#[inline(always)]
pub(crate) fn bray_curtis_finish(num: f32, den: f32) -> f32 {
    if num == 0.0 { 0.0 } else { num / den }
}

/// Jensen–Shannon divergence `½ Σ (aᵢ ln(aᵢ/mᵢ) + bᵢ ln(bᵢ/mᵢ))`, `mᵢ = (aᵢ+bᵢ)/2`,
/// with `0·ln 0 = 0`. Meant for non-negative (probability) vectors, as in Faiss.
pub fn jensen_shannon(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (&x, &y) in a.iter().zip(b) {
        let m = 0.5 * (x + y);
        if x > 0.0 {
            acc += x * (x / m).ln();
        }
        if y > 0.0 {
            acc += y * (y / m).ln();
        }
    }
    0.5 * acc
}
