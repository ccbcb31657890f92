//! Validation of user input, shared by every entry point that takes vectors, so that the
//! same mistake gives the same message everywhere.

use crate::{Error, Idx, Result};

/// Checks that `x` holds whole vectors of dimension `d` and returns how many.
/// `what` names the argument in the error ("query", "database vectors", …).
pub fn vectors(what: &str, x: &[f32], d: usize) -> Result<usize> {
    if d == 0 {
        return Err(Error::invalid("dimension must be at least 1"));
    }
    if !x.len().is_multiple_of(d) {
        return Err(Error::DimensionMismatch {
            what: format!("{what} buffer"),
            got: x.len(),
            expected: format!(
                "a multiple of the dimension {d} (n vectors × {d} floats, row-major)"
            ),
        });
    }
    Ok(x.len() / d)
}

/// Checks that `codes` holds whole codes of `code_size` bytes and returns how many.
/// `what` names the codes in the error ("PQ codes", …).
pub fn codes(what: &str, codes: &[u8], code_size: usize) -> Result<usize> {
    if code_size == 0 || !codes.len().is_multiple_of(code_size) {
        return Err(Error::DimensionMismatch {
            what: format!("{what} (bytes)"),
            got: codes.len(),
            expected: format!("a multiple of the code size {code_size}"),
        });
    }
    Ok(codes.len() / code_size)
}

/// Like [`vectors`], and also requires at least one vector and finite values.
pub fn nonempty_finite(what: &str, x: &[f32], d: usize) -> Result<usize> {
    let n = vectors(what, x, d)?;
    if n == 0 {
        return Err(Error::invalid(format!(
            "{what} is empty: expected at least one vector of dimension {d}"
        )));
    }
    finite(what, x, d)?;
    Ok(n)
}

/// Requires every value of `x` to be finite; the error names the first offending vector
/// and component. NaN or ±∞ would make distances meaningless and results arbitrary, so
/// fathom rejects them instead of storing or searching with them.
pub fn finite(what: &str, x: &[f32], d: usize) -> Result<()> {
    // A cheap vectorisable test first (x·0 is NaN exactly for NaN and ±∞; sixteen
    // independent lanes keep it from being a serial chain); locate the culprit only when
    // there is one.
    let mut lanes = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v * 0.0;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|v| v * 0.0).sum();
    if lanes.iter().sum::<f32>() + tail == 0.0 {
        return Ok(());
    }
    let pos = x.iter().position(|v| !v.is_finite()).unwrap_or(0);
    Err(Error::invalid(format!(
        "{what} vector {} has a non-finite value {} at component {}; vectors must be finite",
        pos / d.max(1),
        x[pos],
        pos % d.max(1)
    )))
}

/// Requires an output buffer of exactly `expected` elements.
pub fn output_len(what: &str, got: usize, expected: usize) -> Result<()> {
    if got != expected {
        return Err(Error::DimensionMismatch {
            what: what.into(),
            got,
            expected: expected.to_string(),
        });
    }
    Ok(())
}

/// Requires `k >= 1`.
pub fn k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::invalid("k must be at least 1"));
    }
    Ok(())
}

/// Requires one id per vector.
pub fn ids(ids: &[Idx], n: usize) -> Result<()> {
    if ids.len() != n {
        return Err(Error::DimensionMismatch {
            what: "ids".into(),
            got: ids.len(),
            expected: format!("one id per vector ({n})"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_and_expected() {
        let e = vectors("query", &[1.0; 5], 2).unwrap_err().to_string();
        assert!(
            e.contains("query") && e.contains("multiple of the dimension 2"),
            "{e}"
        );
        assert!(vectors("q", &[], 0).is_err());
        assert_eq!(vectors("q", &[], 3).unwrap(), 0);
        let e = nonempty_finite("data", &[], 3).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = nonempty_finite("data", &[0.0, 1.0, 2.0, f32::NAN], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("vector 1") && e.contains("component 1"), "{e}");
        assert!(finite("x", &[f32::INFINITY], 1).is_err());
        assert!(finite("x", &[f32::MAX, -f32::MAX], 1).is_ok());
        assert!(k(0).is_err() && k(1).is_ok());
        assert!(ids(&[1, 2], 3).is_err());
    }
}
