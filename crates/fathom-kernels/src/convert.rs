//! fp16 and bf16 conversion of whole slices (round to nearest even), used by half-precision
//! storage and the scalar quantizer. The `half` crate does the bit work, with F16C on x86
//! when the CPU has it.

use fathom_core::{Error, Result};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

fn same_len(src: usize, dst: usize) -> Result<()> {
    if src != dst {
        return Err(Error::DimensionMismatch {
            what: "destination".into(),
            got: dst,
            expected: format!("the source length {src}"),
        });
    }
    Ok(())
}

/// Converts `src` to IEEE half precision into `dst` (same length).
///
/// ```
/// use half::f16;
/// let mut h = [f16::ZERO; 2];
/// fathom_kernels::f32_to_f16(&[1.5, -2.0], &mut h).unwrap();
/// let mut back = [0.0f32; 2];
/// fathom_kernels::f16_to_f32(&h, &mut back).unwrap();
/// assert_eq!(back, [1.5, -2.0]);
/// ```
pub fn f32_to_f16(src: &[f32], dst: &mut [f16]) -> Result<()> {
    same_len(src.len(), dst.len())?;
    dst.convert_from_f32_slice(src);
    Ok(())
}

/// Converts half-precision `src` to f32 into `dst` (same length).
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) -> Result<()> {
    same_len(src.len(), dst.len())?;
    src.convert_to_f32_slice(dst);
    Ok(())
}

/// Converts `src` to bfloat16 into `dst` (same length).
pub fn f32_to_bf16(src: &[f32], dst: &mut [bf16]) -> Result<()> {
    same_len(src.len(), dst.len())?;
    dst.convert_from_f32_slice(src);
    Ok(())
}

/// Converts bfloat16 `src` to f32 into `dst` (same length).
pub fn bf16_to_f32(src: &[bf16], dst: &mut [f32]) -> Result<()> {
    same_len(src.len(), dst.len())?;
    src.convert_to_f32_slice(dst);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rounding() {
        let x = [0.0f32, 1.0, -3.25, 65504.0, 1e-3, 3.0e38];
        let mut h = vec![f16::ZERO; x.len()];
        f32_to_f16(&x, &mut h).unwrap();
        let mut back = vec![0.0; x.len()];
        f16_to_f32(&h, &mut back).unwrap();
        assert_eq!(&back[..4], &x[..4]);
        assert!((back[4] - 1e-3).abs() < 1e-6);
        assert!(back[5].is_infinite(), "overflow saturates to inf as IEEE");
        let mut b = vec![bf16::ZERO; x.len()];
        f32_to_bf16(&x, &mut b).unwrap();
        bf16_to_f32(&b, &mut back).unwrap();
        assert_eq!(&back[..3], &x[..3]);
        assert!((back[5] / 3.0e38 - 1.0).abs() < 1e-2);
        assert!(f32_to_f16(&x, &mut h[..2]).is_err());
    }
}
