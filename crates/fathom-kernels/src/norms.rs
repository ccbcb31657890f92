//! Vector norms and L2 normalisation.

use fathom_core::{Result, check};
use rayon::prelude::*;

use crate::dispatch::kernels;

/// Squared L2 norm of each row of `x` (dimension `d`).
pub fn l2_norms_sqr(x: &[f32], d: usize) -> Result<Vec<f32>> {
    let n = check::vectors("input", x, d)?;
    let mut out = vec![0.0f32; n];
    let kern = kernels();
    out.par_chunks_mut(4096)
        .zip(x.par_chunks(4096 * d))
        .for_each(|(o, xs)| (kern.norms_sqr)(xs, d, o));
    Ok(out)
}

/// Squared L2 norm of each row of `x` (dimension `d`) into `out` (one per row), on the
/// calling thread: for callers already inside a parallel loop, with a buffer to reuse.
///
/// ```
/// let mut out = [0.0f32; 2];
/// fathom_kernels::l2_norms_sqr_into(&[3.0, 4.0, 1.0, 0.0], 2, &mut out).unwrap();
/// assert_eq!(out, [25.0, 1.0]);
/// ```
pub fn l2_norms_sqr_into(x: &[f32], d: usize, out: &mut [f32]) -> Result<()> {
    let n = check::vectors("input", x, d)?;
    check::output_len("norms", out.len(), n)?;
    (kernels().norms_sqr)(x, d, out);
    Ok(())
}

/// L2 norm of each row of `x` (dimension `d`).
pub fn l2_norms(x: &[f32], d: usize) -> Result<Vec<f32>> {
    let mut n = l2_norms_sqr(x, d)?;
    n.iter_mut().for_each(|v| *v = v.sqrt());
    Ok(n)
}

/// Scales each row of `x` (dimension `d`) to unit L2 norm, in place, as Faiss's
/// `normalize_L2`. Rows of norm zero are left as they are.
///
/// This needs a mutable buffer. Vectors in a read-only place — a read-only memory map, a
/// shared buffer — cannot and must not be handed to it: use [`normalized_l2`], which
/// returns a normalised copy and leaves the input untouched.
///
/// ```
/// let mut x = vec![3.0, 4.0, 0.0, 0.0];
/// fathom_kernels::normalize_l2(&mut x, 2).unwrap();
/// assert_eq!(x, vec![0.6, 0.8, 0.0, 0.0]);
/// ```
pub fn normalize_l2(x: &mut [f32], d: usize) -> Result<()> {
    let norms = l2_norms_sqr(x, d)?;
    x.par_chunks_mut(d).zip(norms).for_each(|(row, n2)| {
        if n2 > 0.0 {
            let inv = 1.0 / n2.sqrt();
            row.iter_mut().for_each(|v| *v *= inv);
        }
    });
    Ok(())
}

/// A unit-norm copy of each row of `x` (dimension `d`); the input is not touched, so it
/// may live in read-only memory. Rows of norm zero stay zero.
pub fn normalized_l2(x: &[f32], d: usize) -> Result<Vec<f32>> {
    let mut out = x.to_vec();
    normalize_l2(&mut out, d)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norms_and_normalize() {
        let x = [3.0, 4.0, 1.0, 0.0, 0.0, 0.0];
        assert_eq!(l2_norms(&x, 2).unwrap(), vec![5.0, 1.0, 0.0]);
        let y = normalized_l2(&x, 2).unwrap();
        assert_eq!(y, vec![0.6, 0.8, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(x[0], 3.0, "input untouched");
        assert!(normalize_l2(&mut [1.0, 2.0, 3.0], 2).is_err());
        assert!(l2_norms(&x, 0).is_err());
    }
}
