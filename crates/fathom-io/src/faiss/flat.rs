//! `IxFl` / `IxF2` / `IxFI`: flat indexes, read and written.

use fathom_core::{MetricType, Result};
use fathom_index::{Index, IndexFlat};

use super::cursor::Cursor;
use super::header::{read_header, read_nested_of, write_header};
use super::sink::Sink;

/// A nested record that must be an [`IndexFlat`].
pub(super) fn read_flat(c: &mut Cursor<'_>) -> Result<IndexFlat> {
    read_nested_of(
        c,
        &[b"IxF2", b"IxFI", b"IxFl"],
        "a flat index",
        read_flat_body,
    )
}

pub(super) fn read_flat_body(c: &mut Cursor<'_>, fourcc: &[u8; 4]) -> Result<IndexFlat> {
    let h = read_header(c)?;
    let expected = match fourcc {
        b"IxF2" => Some(MetricType::L2),
        b"IxFI" => Some(MetricType::InnerProduct),
        _ => None,
    };
    if expected.is_some_and(|m| m != h.metric) {
        return Err(c.err(format!(
            "a {} record declares metric {:?}",
            String::from_utf8_lossy(fourcc),
            h.metric
        )));
    }
    let n = h
        .ntotal
        .checked_mul(h.d)
        .ok_or_else(|| c.err("ntotal × d overflows"))?;
    let data = c.vec_len::<f32>("flat vectors", n)?;
    IndexFlat::from_vectors(h.d, h.metric, data).map_err(|e| c.err(e))
}

pub(super) fn write_flat(s: &mut Sink<'_>, f: &IndexFlat) -> Result<()> {
    s.fourcc(match f.metric() {
        MetricType::L2 => b"IxF2",
        MetricType::InnerProduct => b"IxFI",
        _ => b"IxFl",
    })?;
    write_header(s, f)?;
    s.vec(f.vectors())
}
