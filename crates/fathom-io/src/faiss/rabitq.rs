//! RaBitQ records, read and written side by side: `Ixrq` / `Ixrr` (flat, 1-bit / more
//! bits) and `Iwrq` / `Iwrr` (IVF), with the quantizer record they share (Faiss's
//! `write_RaBitQuantizer`: `d` u64, `code_size` u64, metric i32, and `nb_bits` u64 only in
//! the multi-bit records), and the fast-scan records `Irfn` (flat) and `Iwrn` (IVF),
//! whose codes are the same bytes in Faiss's blocks (sign bits as 4-bit columns, the
//! rest of each code after them; see `fastscan::pack`).

use fathom_core::{MetricType, Result};
use fathom_index::ivf::{IvfRaBitQ, IvfRaBitQFastScan};
use fathom_index::{Index, IndexRaBitQ, IndexRaBitQFastScan};
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

/// The fast-scan fields both records share: `M2` must be the sign bits' column count
/// (`2⌈d/8⌉`) and `code_size` the quantizer's.
fn check_fast_scan_shape(
    c: &Cursor<'_>,
    q: &RaBitQuantizer,
    m2: u64,
    code_size: u64,
) -> Result<()> {
    let want_m2 = 2 * q.sign_bytes() as u64;
    if m2 != want_m2 || code_size != q.code_size() as u64 {
        return Err(c.err(format!(
            "RaBitQ fast-scan with M2 = {m2} and code_size {code_size}; d = {} at {} bits \
             has M2 = {want_m2} and code_size {}",
            q.d(),
            q.nb_bits(),
            q.code_size()
        )));
    }
    Ok(())
}

fn read_fast_scan_qb(c: &mut Cursor<'_>) -> Result<u8> {
    let qb = c.u8("qb")?;
    if !(1..=8).contains(&qb) {
        return Err(c.err(format!(
            "qb is {qb}; RaBitQ fast-scan quantizes queries to 1 to 8 bits"
        )));
    }
    Ok(qb)
}

fn read_bbs(c: &mut Cursor<'_>) -> Result<usize> {
    let bbs = c.i32("bbs")?;
    if bbs <= 0 || bbs % 32 != 0 || bbs > 1 << 16 {
        return Err(c.err(format!("bbs is {bbs}; expected a positive multiple of 32")));
    }
    Ok(bbs as usize)
}

/// `Irfn`.
pub(super) fn read_flat_fast_scan_body(c: &mut Cursor<'_>) -> Result<IndexRaBitQFastScan> {
    let h = read_header(c)?;
    let q = read_quantizer(c, &h, true)?;
    let center = c.vec::<f32>("RaBitQ center")?;
    let qb = read_fast_scan_qb(c)?;
    let bbs = read_bbs(c)?;
    let ntotal2 = c.u64("ntotal2")?;
    let m2 = c.u64("M2")?;
    let code_size = c.u64("code_size")?;
    check_fast_scan_shape(c, &q, m2, code_size)?;
    if ntotal2 != h.ntotal.next_multiple_of(bbs) as u64 {
        return Err(c.err(format!(
            "ntotal2 is {ntotal2}; {} vectors in blocks of {bbs} take {}",
            h.ntotal,
            h.ntotal.next_multiple_of(bbs)
        )));
    }
    let cs = q.code_size();
    let len = super::fastscan::packed_len(h.ntotal, cs, bbs);
    let blocks = c.vec_len::<u8>("RaBitQ fast-scan blocks", len)?;
    let mut index = if h.is_trained {
        IndexRaBitQFastScan::from_center(h.d, h.metric, q.nb_bits(), center, qb)
    } else {
        IndexRaBitQFastScan::new(h.d, h.metric, q.nb_bits())
    }
    .map_err(|e| c.err(e))?;
    index.set_qb(qb).map_err(|e| c.err(e))?;
    index.set_bbs(bbs).map_err(|e| c.err(e))?;
    let codes = super::fastscan::unpack(&blocks, h.ntotal, cs, q.sign_bytes(), bbs);
    index.add_codes(&codes).map_err(|e| c.err(e))?;
    check_ntotal(c, &h, index.ntotal(), "the RaBitQ fast-scan codes")?;
    Ok(index)
}

pub(super) fn write_flat_fast_scan(s: &mut Sink<'_>, index: &IndexRaBitQFastScan) -> Result<()> {
    let q = index.rabitq();
    s.fourcc(b"Irfn")?;
    write_header(s, index)?;
    write_quantizer_with_bits(s, q)?;
    if index.center().is_empty() {
        s.vec(&vec![0.0f32; q.d()])?;
    } else {
        s.vec(index.center())?;
    }
    s.u8(index.qb())?;
    let bbs = index.bbs();
    s.i32(bbs as i32)?;
    s.usize(index.ntotal().next_multiple_of(bbs))?;
    s.usize(2 * q.sign_bytes())?;
    s.usize(q.code_size())?;
    let codes: Vec<u8> = (0..index.ntotal()).flat_map(|i| index.code(i)).collect();
    s.vec(&super::fastscan::pack(
        &codes,
        q.code_size(),
        q.sign_bytes(),
        bbs,
    ))
}

/// The quantizer record with `nb_bits` whatever it is (the fast-scan records' form).
fn write_quantizer_with_bits(s: &mut Sink<'_>, q: &RaBitQuantizer) -> Result<()> {
    s.usize(q.d())?;
    s.usize(q.code_size())?;
    s.i32(q.metric().code() as i32)?;
    s.usize(q.nb_bits())
}

/// `Iwrn`.
pub(super) fn read_ivf_fast_scan_body(c: &mut Cursor<'_>) -> Result<Box<dyn Index>> {
    let ivf: IvfHeader = read_ivf_header(c)?;
    let q = read_quantizer(c, &ivf.h, true)?;
    if !c.bool("by_residual")? {
        return Err(c.err("IVF-RaBitQ codes are always relative to their centroid"));
    }
    let code_size = c.u64("code_size")?;
    let bbs = read_bbs(c)?;
    c.u64("qbs2")?; // Faiss's query batching: no bearing on the results
    let m2 = c.u64("M2")?;
    check_fast_scan_shape(c, &q, m2, code_size)?;
    c.i32("implem")?; // likewise
    let qb = read_fast_scan_qb(c)?;
    let centered = c.bool("centered")?;
    let mut codec = IvfRaBitQFastScan::new(q.d(), q.metric(), q.nb_bits()).map_err(|e| c.err(e))?;
    codec.set_qb(qb).map_err(|e| c.err(e))?;
    codec.set_bbs(bbs).map_err(|e| c.err(e))?;
    codec.centered = centered;
    Ok(Box::new(finish_ivf(c, ivf, codec, true)?))
}

/// The codec part of `Iwrn`, after the IVF header.
pub(super) fn write_ivf_fast_scan_codec(s: &mut Sink<'_>, codec: &IvfRaBitQFastScan) -> Result<()> {
    let q = codec.rabitq();
    write_quantizer_with_bits(s, q)?;
    s.bool(true)?;
    s.usize(q.code_size())?;
    s.i32(codec.bbs() as i32)?;
    s.usize(0)?; // qbs2
    s.usize(2 * q.sign_bytes())?;
    s.i32(0)?; // implem
    s.u8(codec.qb())?;
    s.bool(codec.centered)
}
