//! RaBitQ records, read and written side by side: `Ixrq` / `Ixrr` (flat, 1-bit / more
//! bits) and `Iwrq` / `Iwrr` (IVF), with the quantizer record they share (Faiss's
//! `write_RaBitQuantizer`: `d` u64, `code_size` u64, metric i32, and `nb_bits` u64 only in
//! the multi-bit records). The fast-scan records (`Irfn`, `Iwrn`) are not read yet.

use fathom_core::{MetricType, Result};
use fathom_index::ivf::IvfRaBitQ;
use fathom_index::{Index, IndexRaBitQ};
use fathom_quant::rabitq::RaBitQuantizer;

use super::cursor::{Cursor, MAX_DIM};
use super::header::{Header, check_ntotal, read_header, write_header};
use super::ivf::{IvfHeader, finish_ivf, read_ivf_header};
use super::sink::Sink;

/// The quantizer record; `multi` for the records that store `nb_bits`.
fn read_quantizer(c: &mut Cursor<'_>, h: &Header, multi: bool) -> Result<RaBitQuantizer> {
    let d = c.u64_in("RaBitQ d", MAX_DIM)?;
    let code_size = c.u64_in("RaBitQ code_size", usize::MAX >> 8)?;
    let metric = c.i32("RaBitQ metric")?;
    let nb_bits = if multi {
        c.u64_in("RaBitQ nb_bits", 9)?
    } else {
        1
    };
    let metric = match metric {
        0 => MetricType::InnerProduct,
        1 => MetricType::L2,
        m => return Err(c.err(format!("RaBitQ metric {m}; expected 0 (IP) or 1 (L2)"))),
    };
    if d != h.d || metric != h.metric {
        return Err(c.err(format!(
            "the RaBitQ quantizer has d = {d} and metric {metric:?}; the index d = {} and {:?}",
            h.d, h.metric
        )));
    }
    let q = RaBitQuantizer::new(d, metric, nb_bits).map_err(|e| c.err(e))?;
    // Faiss's IVF reader recomputes the code size; the flat records must agree with it.
    if code_size != q.code_size() {
        return Err(c.err(format!(
            "RaBitQ code_size is {code_size}; {d} dimensions at {nb_bits} bits take {}",
            q.code_size()
        )));
    }
    Ok(q)
}

fn write_quantizer(s: &mut Sink<'_>, q: &RaBitQuantizer) -> Result<()> {
    s.usize(q.d())?;
    s.usize(q.code_size())?;
    s.i32(q.metric().code() as i32)?;
    if q.nb_bits() > 1 {
        s.usize(q.nb_bits())?;
    }
    Ok(())
}

fn read_qb(c: &mut Cursor<'_>) -> Result<u8> {
    let qb = c.u8("qb")?;
    if qb > 8 {
        return Err(c.err(format!("qb is {qb}; expected 0 to 8")));
    }
    Ok(qb)
}

/// `Ixrq` / `Ixrr`.
pub(super) fn read_flat_body(c: &mut Cursor<'_>, fourcc: &[u8; 4]) -> Result<IndexRaBitQ> {
    let h = read_header(c)?;
    let q = read_quantizer(c, &h, fourcc == b"Ixrr")?;
    let len = h
        .ntotal
        .checked_mul(q.code_size())
        .ok_or_else(|| c.err("codes overflow"))?;
    let codes = c.vec_len::<u8>("RaBitQ codes", len)?;
    let center = c.vec::<f32>("RaBitQ center")?;
    let qb = read_qb(c)?;
    let mut index = if center.is_empty() && !h.is_trained {
        IndexRaBitQ::new(h.d, h.metric, q.nb_bits()).map_err(|e| c.err(e))?
    } else {
        IndexRaBitQ::from_center(h.d, h.metric, q.nb_bits(), center, qb).map_err(|e| c.err(e))?
    };
    index.add_codes(&codes).map_err(|e| c.err(e))?;
    check_ntotal(c, &h, index.ntotal(), "the RaBitQ codes")?;
    Ok(index)
}

pub(super) fn write_flat(s: &mut Sink<'_>, index: &IndexRaBitQ) -> Result<()> {
    let q = index.rabitq();
    s.fourcc(if q.nb_bits() > 1 { b"Ixrr" } else { b"Ixrq" })?;
    write_header(s, index)?;
    write_quantizer(s, q)?;
    s.vec(index.codes())?;
    s.vec(index.center())?;
    s.u8(index.qb())
}

/// `Iwrq` / `Iwrr`.
pub(super) fn read_ivf_body(c: &mut Cursor<'_>, fourcc: &[u8; 4]) -> Result<Box<dyn Index>> {
    let ivf: IvfHeader = read_ivf_header(c)?;
    let q = read_quantizer(c, &ivf.h, fourcc == b"Iwrr")?;
    c.u64("code_size")?; // recomputed from d and nb_bits, as Faiss does
    let by_residual = c.bool("by_residual")?;
    if !by_residual {
        return Err(c.err("IVF-RaBitQ codes are always relative to their centroid"));
    }
    let qb = read_qb(c)?;
    let mut codec = IvfRaBitQ::new(q.d(), q.metric(), q.nb_bits()).map_err(|e| c.err(e))?;
    codec.qb = qb;
    Ok(Box::new(finish_ivf(c, ivf, codec, true)?))
}

/// The codec part of `Iwrq` / `Iwrr`, after the IVF header.
pub(super) fn write_ivf_codec(s: &mut Sink<'_>, codec: &IvfRaBitQ) -> Result<()> {
    write_quantizer(s, codec.rabitq())?;
    s.usize(codec.rabitq().code_size())?;
    s.bool(true)?;
    s.u8(codec.qb)
}

/// The fourcc of an IVF-RaBitQ record.
pub(super) fn ivf_fourcc(codec: &IvfRaBitQ) -> &'static [u8; 4] {
    if codec.rabitq().nb_bits() > 1 {
        b"Iwrr"
    } else {
        b"Iwrq"
    }
}
