//! Checked conversions of run-time parameter values (`set_param`'s `f64`) into what the
//! indexes keep, with one wording for every index's errors.

use fathom_core::{Error, Result};

/// A non-negative integer (`max_codes`, …).
pub(crate) fn count(name: &str, v: f64) -> Result<usize> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 {
        Ok(v as usize)
    } else {
        Err(Error::invalid(format!(
            "{name} must be a non-negative integer, got {v}"
        )))
    }
}

/// A positive integer of at most 10⁹ (`nprobe`, `efSearch`, …).
pub(crate) fn positive(name: &str, v: f64) -> Result<usize> {
    if (1.0..=1e9).contains(&v) && v.fract() == 0.0 {
        Ok(v as usize)
    } else {
        Err(Error::invalid(format!(
            "{name} must be a positive integer, got {v}"
        )))
    }
}

/// A finite number (`prune_headroom`, which is clamped where it is used, as Faiss).
pub(crate) fn finite(name: &str, v: f64) -> Result<f32> {
    if v.is_finite() {
        Ok(v as f32)
    } else {
        Err(Error::invalid(format!(
            "{name} must be a finite number, got {v}"
        )))
    }
}

/// A flag given as 0 or 1.
pub(crate) fn flag(name: &str, v: f64) -> Result<bool> {
    match v {
        0.0 => Ok(false),
        1.0 => Ok(true),
        _ => Err(Error::invalid(format!("{name} must be 0 or 1, got {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked() {
        assert_eq!(count("max_codes", 0.0).unwrap(), 0);
        assert_eq!(finite("prune_headroom", 0.2).unwrap(), 0.2);
        assert!(finite("prune_headroom", f64::NAN).is_err());
        assert!(finite("prune_headroom", f64::INFINITY).is_err());
        assert!(count("max_codes", -1.0).is_err());
        assert!(count("max_codes", 1.5).is_err());
        assert!(count("max_codes", f64::NAN).is_err());
        assert_eq!(positive("nprobe", 16.0).unwrap(), 16);
        assert!(positive("nprobe", 0.0).is_err());
        assert!(positive("nprobe", 1e12).is_err());
        assert!(flag("f", 1.0).unwrap() && !flag("f", 0.0).unwrap());
        assert!(flag("f", 2.0).is_err());
    }
}
