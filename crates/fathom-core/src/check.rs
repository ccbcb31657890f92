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

/// The largest squared L2 norm a vector may have: a quarter of `f32::MAX` (about 8.5e37,
/// components up to about 9.2e18). Below it every distance fathom computes between two
/// such vectors — `‖x−y‖² ≤ 2‖x‖² + 2‖y‖²`, `|x·y| ≤ ‖x‖‖y‖`, and the `‖x‖² + ‖y‖² − 2x·y`
/// of the batched kernels — stays finite; above it they overflow to ∞ and results become
/// arbitrary (and JSON cannot carry them).
pub const MAX_SQUARED_NORM: f32 = f32::MAX / 4.0;

/// Requires every value of `x` to be finite and every vector's squared norm to be at most
/// [`MAX_SQUARED_NORM`]; the error names the first offending vector (and component). NaN,
/// ±∞ or values whose squares overflow would make distances meaningless and results
/// arbitrary, so fathom rejects them instead of storing or searching with them.
pub fn finite(what: &str, x: &[f32], d: usize) -> Result<()> {
    let d = d.max(1);
    // One vectorisable pass: the squared norm of each vector in sixteen independent lanes
    // (x·x is NaN for NaN, ∞ for ±∞ and for overflow, so one comparison catches all three);
    // locate the culprit only when there is one.
    let bad = x.chunks(d).position(|v| {
        let n = squared_norm(v);
        n.is_nan() || n > MAX_SQUARED_NORM
    });
    let Some(i) = bad else {
        return Ok(());
    };
    let v = &x[i * d..(i * d + d).min(x.len())];
    if let Some(c) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid(format!(
            "{what} vector {i} has a non-finite value {} at component {c}; vectors must be finite",
            v[c]
        )));
    }
    let norm2: f64 = v.iter().map(|&x| x as f64 * x as f64).sum();
    Err(Error::invalid(format!(
        "{what} vector {i} has squared norm {norm2:.3e}, above the limit {MAX_SQUARED_NORM:.3e} \
         (f32::MAX / 4, so that distances between vectors stay finite); scale the vectors down"
    )))
}

/// `‖v‖²` in f32 with sixteen lanes (∞ on overflow, NaN for NaN).
fn squared_norm(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += x * x;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|x| x * x).sum();
    lanes.iter().sum::<f32>() + tail
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

/// Requires a range-search radius that is a number (any sign: inner-product radii may be
/// negative).
pub fn radius(radius: f32) -> Result<()> {
    if radius.is_nan() {
        return Err(Error::invalid("radius is NaN; expected a number"));
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

/// Requires a metric that can compute distances: an Lp metric needs its `p`
/// ([`crate::MetricType::is_ready`]).
pub fn metric_ready(metric: crate::MetricType) -> Result<()> {
    if !metric.is_ready() {
        return Err(Error::invalid(
            "metric Lp has no p yet (metric_arg is 0): set metric_arg to a p > 0 first",
        ));
    }
    Ok(())
}

/// Requires `path` to be a regular file (after symlinks) before it is opened: a FIFO
/// would block the open until a writer came, and a device such as `/dev/zero` reads
/// without end (and shows a memory map a size of 0). `what` names the expected content
/// in the error. A path that cannot be examined (missing, no permission) passes: the open
/// that follows reports that in its own words.
///
/// ```
/// let e = fathom_core::check::regular_file("/dev/null".as_ref(), "a Faiss index file");
/// assert!(e.unwrap_err().to_string().contains("not a regular file"));
/// ```
pub fn regular_file(path: &std::path::Path, what: &str) -> Result<()> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if meta.is_file() {
        return Ok(());
    }
    let kind = if meta.is_dir() {
        "a directory"
    } else {
        special_kind(&meta)
    };
    Err(Error::invalid(format!(
        "{} is {kind}, not a regular file; expected {what}",
        path.display()
    )))
}

#[cfg(unix)]
fn special_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::Metadata) -> &'static str {
    "a special file"
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
        assert!(finite("x", &[9e18, -9e18], 1).is_ok());
        let e = finite("x", &[1.0, 1.0, 3e38, 0.0], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("vector 1") && e.contains("squared norm"), "{e}");
        // Each square fits, the sum does not.
        assert!(finite("x", &[1e19; 4], 4).is_err());
        assert!(
            finite("x", &[f32::NAN, 1e30], 2)
                .unwrap_err()
                .to_string()
                .contains("non-finite")
        );
        assert!(k(0).is_err() && k(1).is_ok());
        assert!(ids(&[1, 2], 3).is_err());
    }
}
