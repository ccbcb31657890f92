//! The header every index record starts with (both ways), the checks a nested record
//! must pass against its parent, and the macro that gives flat-codes indexes their codes.

use fathom_core::{Error, MetricType, Result};
use fathom_index::Index;

use super::cursor::{Cursor, MAX_DIM};
use super::sink::Sink;

/// Gives a flat-codes index its codes: served from the file when it is memory-mapped,
/// copied otherwise.
macro_rules! put_codes {
    ($c:expr, $index:expr, $codes:expr, $at:expr) => {
        match &$c.shared {
            Some(bytes) => $index.map_codes(bytes.clone(), $at, $codes.len()),
            None => $index.add_codes($codes),
        }
        .map_err(|e| $c.err(e))?
    };
}

/// Faiss's index header.
pub(crate) struct Header {
    pub(crate) d: usize,
    pub(crate) ntotal: usize,
    pub(crate) is_trained: bool,
    pub(crate) metric: MetricType,
}

pub(super) fn read_header(c: &mut Cursor<'_>) -> Result<Header> {
    let d = c.i32_in("dimension d", MAX_DIM)?;
    let ntotal = c.i64("ntotal")?;
    if ntotal < 0 {
        return Err(c.err(format!("ntotal is {ntotal}; expected ≥ 0")));
    }
    c.i64("unused header field")?;
    c.i64("unused header field")?;
    let is_trained = c.bool("is_trained")?;
    let code = c.i32("metric type")?;
    let arg = if code > 1 {
        c.f32("metric argument")?
    } else {
        0.0
    };
    let metric = u32::try_from(code)
        .map_err(|_| Error::invalid(format!("negative metric code {code}")))
        // An Lp index saved before its p was set (Faiss's and fathom's constructors both
        // allow that) reads back as it was: searching it waits for `metric_arg`.
        .and_then(|code| MetricType::from_code_p_later(code, arg))
        .map_err(|e| c.err(e))?;
    Ok(Header {
        d,
        ntotal: ntotal as usize,
        is_trained,
        metric,
    })
}

/// A nested record that must be one of `fourccs` (`what` names the kind in the error),
/// read by `body` once its fourcc is known.
pub(super) fn read_nested_of<T>(
    c: &mut Cursor<'_>,
    fourccs: &[&[u8; 4]],
    what: &str,
    body: impl FnOnce(&mut Cursor<'_>, &[u8; 4]) -> Result<T>,
) -> Result<T> {
    c.nested(|c| {
        let fourcc = c.fourcc()?;
        if !fourccs.contains(&&fourcc) {
            return Err(c.err(format!(
                "expected {what} record, found {:?}",
                String::from_utf8_lossy(&fourcc)
            )));
        }
        body(c, &fourcc)
    })
}

/// Checks a nested index against the header of the record holding it.
pub(super) fn check_nested(c: &Cursor<'_>, h: &Header, sub: &dyn Index, what: &str) -> Result<()> {
    if sub.dim() != h.d {
        return Err(c.err(format!(
            "{what} has dimension {}; its parent has {}",
            sub.dim(),
            h.d
        )));
    }
    Ok(())
}

pub(super) fn check_ntotal(c: &Cursor<'_>, h: &Header, got: usize, what: &str) -> Result<()> {
    if got != h.ntotal {
        return Err(c.err(format!(
            "{what} holds {got} vectors but the header says ntotal = {}",
            h.ntotal
        )));
    }
    Ok(())
}

pub(super) fn unsupported(what: &str) -> Error {
    Error::Unsupported(format!("{what} has no Faiss file form fathom can write"))
}

/// The header Faiss writes before every index's own fields.
pub(super) fn write_header(s: &mut Sink<'_>, index: &dyn Index) -> Result<()> {
    write_header_parts(
        s,
        index.dim(),
        index.ntotal(),
        index.is_trained(),
        index.metric(),
    )
}

fn write_header_parts(
    s: &mut Sink<'_>,
    d: usize,
    ntotal: usize,
    is_trained: bool,
    metric: MetricType,
) -> Result<()> {
    s.i32(d as i32)?;
    s.i64(ntotal as i64)?;
    // Two fields unused since Faiss's first release, always written as 2^20.
    s.i64(1 << 20)?;
    s.i64(1 << 20)?;
    s.bool(is_trained)?;
    s.i32(metric.code() as i32)?;
    if metric.code() > 1 {
        s.f32(metric.arg())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use fathom_core::MetricType;
    use fathom_index::{Index, IndexFlat};

    /// An Lp index saved before its p was set (Faiss code sets `metric_arg` after making
    /// the index) reads back as it was saved, and takes its p then.
    #[test]
    fn an_lp_index_saved_without_its_p_reads_back() {
        let lp = MetricType::from_code_p_later(4, 0.0).unwrap();
        let mut flat = IndexFlat::new(2, lp).unwrap();
        flat.add(&[0.0, 0.0, 1.0, 1.0]).unwrap();
        let bytes = crate::faiss::index_to_bytes(&flat).unwrap();
        let mut back = crate::faiss::read_index_bytes(&bytes).unwrap();
        assert_eq!(back.metric(), lp);
        assert!(back.search(&[0.0, 0.0], 1).is_err(), "no p yet");
        back.set_param("metric_arg", 2.0).unwrap();
        assert_eq!(
            back.search(&[1.0, 0.0], 2).unwrap().distances,
            vec![1.0, 1.0]
        );
    }
}
