//! Binary index records, read and written side by side: Faiss's `write_index_binary`
//! format — `IBxF` (flat) and `IBMp` / `IBM2` (id maps) — whose header is
//! `d, code_size, ntotal, is_trained, metric_type`.

use fathom_core::Result;
use fathom_index::binary::{BinaryIndexView, IndexBinary, IndexBinaryFlat, IndexBinaryIdMap};

use super::cursor::{Cursor, MAX_DIM};
use super::header::unsupported;
use super::sink::Sink;

/// The header of a binary index record.
struct BinaryHeader {
    d: usize,
    ntotal: usize,
}

fn read_binary_header(c: &mut Cursor<'_>) -> Result<BinaryHeader> {
    let d = c.i32_in("dimension d (bits)", 8 * MAX_DIM)?;
    let code_size = c.i32_in("code_size", MAX_DIM)?;
    if d == 0 || !d.is_multiple_of(8) || code_size != d / 8 {
        return Err(c.err(format!(
            "a binary index of d = {d} bits has code_size {code_size}; expected a positive \
             multiple of 8 bits and d / 8 bytes"
        )));
    }
    let ntotal = c.i64("ntotal")?;
    if ntotal < 0 {
        return Err(c.err(format!("ntotal is {ntotal}; expected ≥ 0")));
    }
    c.bool("is_trained")?;
    c.i32("metric type")?;
    Ok(BinaryHeader {
        d,
        ntotal: ntotal as usize,
    })
}

fn write_binary_header(s: &mut Sink<'_>, index: &dyn IndexBinary) -> Result<()> {
    s.i32(index.d() as i32)?;
    s.i32(index.code_size() as i32)?;
    s.i64(index.ntotal() as i64)?;
    s.bool(index.is_trained())?;
    // Faiss's METRIC_L2 (binary indexes record it; Hamming is implied).
    s.i32(1)
}

/// One binary index record, fourcc included.
pub(crate) fn read_index_binary(c: &mut Cursor<'_>) -> Result<Box<dyn IndexBinary>> {
    c.nested(|c| {
        let at = c.pos();
        let fourcc = c.fourcc()?;
        let index: Box<dyn IndexBinary> = match &fourcc {
            b"IBxF" => {
                let h = read_binary_header(c)?;
                let len = h.ntotal.checked_mul(h.d / 8).ok_or_else(|| {
                    c.err(format!("{} vectors of {} bits overflow", h.ntotal, h.d))
                })?;
                let codes = c.vec_len::<u8>("binary vectors", len)?;
                let mut index = IndexBinaryFlat::new(h.d).map_err(|e| c.err(e))?;
                index.add(&codes).map_err(|e| c.err(e))?;
                Box::new(index)
            }
            b"IBMp" | b"IBM2" => {
                let h = read_binary_header(c)?;
                let inner = read_index_binary(c)?;
                if inner.d() != h.d || inner.ntotal() != h.ntotal {
                    return Err(c.err(format!(
                        "the id map's index has d = {} and {} vectors; the header says d = {} \
                         and ntotal = {}",
                        inner.d(),
                        inner.ntotal(),
                        h.d,
                        h.ntotal
                    )));
                }
                let ids = c.vec_len::<i64>("id map", h.ntotal)?;
                let two_way = &fourcc == b"IBM2";
                Box::new(IndexBinaryIdMap::from_parts(inner, ids, two_way).map_err(|e| c.err(e))?)
            }
            other => {
                return Err(c.err_at(
                    at,
                    format!(
                        "unknown or unsupported binary index type {:?}",
                        String::from_utf8_lossy(other)
                    ),
                ));
            }
        };
        Ok(index)
    })
}

/// One binary index record, fourcc included.
pub(crate) fn write_index_binary(s: &mut Sink<'_>, index: &dyn IndexBinary) -> Result<()> {
    match index.view() {
        BinaryIndexView::Flat(f) => {
            s.fourcc(b"IBxF")?;
            write_binary_header(s, f)?;
            s.vec(f.codes())
        }
        BinaryIndexView::IdMap {
            inner,
            ids,
            two_way,
        } => {
            s.fourcc(if two_way { b"IBM2" } else { b"IBMp" })?;
            write_binary_header(s, index)?;
            write_index_binary(s, inner)?;
            s.vec(ids)
        }
        BinaryIndexView::Other => Err(unsupported(&index.description())),
    }
}
