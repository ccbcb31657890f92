//! Flat-codes indexes, read and written side by side: PQ (`IxPq`), scalar quantizer
//! (`IxSQ`), LSH (`IxHe`), PQ fast-scan (`IPfs`), and the quantizer records they and the
//! IVF codecs share.

use fathom_core::{Error, MetricType, Result};
use fathom_index::{Index, IndexLsh, IndexPq, IndexPqFastScan, IndexScalarQuantizer, PqSearchType};
use fathom_linalg::VectorTransform;
use fathom_quant::{ProductQuantizer, QuantizerType, RangeStat, ScalarQuantizer};

use super::cursor::{Cursor, MAX_DIM};
use super::header::{read_header, read_nested_of, write_header};
use super::sink::Sink;
use super::transform::{read_transform, write_transform};

/// A product quantizer record: the quantizer (untrained) and the stored centroids.
pub(super) fn read_pq(c: &mut Cursor<'_>) -> Result<(ProductQuantizer, Vec<f32>)> {
    let d = c.u64_in("PQ d", MAX_DIM)?;
    let m = c.u64_in("PQ M", MAX_DIM)?;
    let nbits = c.u64_in("PQ nbits", 24)?;
    if m == 0 || nbits == 0 {
        return Err(c.err(format!("PQ has M = {m}, nbits = {nbits}; both must be ≥ 1")));
    }
    // The quantizer allocates its centroids: check that the file holds them first.
    if c.peek_u64().is_none_or(|n| n != (d << nbits) as u64) {
        return Err(c.err(format!(
            "PQ centroids: expected d × 2^nbits = {} floats",
            d << nbits
        )));
    }
    let centroids = c.vec_len::<f32>("PQ centroids", d << nbits)?;
    let pq = ProductQuantizer::new(d, m, nbits).map_err(|e| c.err(e))?;
    Ok((pq, centroids))
}

pub(super) fn write_pq(s: &mut Sink<'_>, pq: &ProductQuantizer) -> Result<()> {
    s.usize(pq.d())?;
    s.usize(pq.m())?;
    s.usize(pq.nbits())?;
    s.vec(pq.centroids())
}

/// A nested record that must be an [`IndexPq`].
pub(super) fn read_pq_index(c: &mut Cursor<'_>) -> Result<IndexPq> {
    read_nested_of(c, &[b"IxPq", b"IxPQ", b"IxPo"], "a PQ index", read_pq_body)
}

pub(super) fn read_pq_body(c: &mut Cursor<'_>, fourcc: &[u8; 4]) -> Result<IndexPq> {
    let mut h = read_header(c)?;
    if fourcc != b"IxPq" {
        // As Faiss: the oldest PQ files stored a meaningless metric.
        h.metric = MetricType::L2;
    }
    let (pq, centroids) = read_pq(c)?;
    if pq.d() != h.d {
        return Err(c.err(format!("PQ has dimension {}; the index {}", pq.d(), h.d)));
    }
    let mut index = IndexPq::new(h.d, pq.m(), pq.nbits(), h.metric).map_err(|e| c.err(e))?;
    if h.is_trained || centroids.iter().any(|&v| v != 0.0) {
        index
            .pq_mut()
            .set_centroids(&centroids)
            .map_err(|e| c.err(e))?;
    }
    let (codes, codes_at) = c.byte_vec_len(
        "PQ codes",
        h.ntotal
            .checked_mul(pq.code_size())
            .ok_or_else(|| c.err("codes overflow"))?,
    )?;
    put_codes!(c, index, codes, codes_at);
    if fourcc == b"IxPq" {
        let search_type = match c.i32("PQ search type")? {
            0 => PqSearchType::Adc,
            1 => PqSearchType::Hamming,
            3 => PqSearchType::Sdc,
            4 => PqSearchType::Polysemous,
            t => {
                return Err(c.err(format!(
                    "PQ search type {t} is not supported (0, 1, 3, 4 are)"
                )));
            }
        };
        index.set_search_type(search_type);
        if c.bool("encode_signs")? {
            return Err(c.err("PQ with encode_signs is not supported"));
        }
        index.set_polysemous_ht(c.i32_in("polysemous_ht", i32::MAX as usize)? as u32);
    }
    Ok(index)
}

pub(super) fn write_pq_index(s: &mut Sink<'_>, p: &IndexPq) -> Result<()> {
    let search_type = match p.search_type() {
        PqSearchType::Adc => 0,
        PqSearchType::Hamming => 1,
        PqSearchType::Sdc => 3,
        PqSearchType::Polysemous => 4,
    };
    s.fourcc(b"IxPq")?;
    write_header(s, p)?;
    write_pq(s, p.pq())?;
    s.vec(p.codes())?;
    s.i32(search_type)?;
    s.bool(false)?;
    s.i32(p.polysemous_ht() as i32)
}

pub(super) fn read_scalar_quantizer(c: &mut Cursor<'_>, d: usize) -> Result<ScalarQuantizer> {
    let qtype = c.i32("SQ type")?;
    let qtype = u32::try_from(qtype)
        .map_err(|_| Error::invalid(format!("negative type {qtype}")))
        .and_then(QuantizerType::from_code)
        .map_err(|e| c.err(e))?;
    let rangestat = match c.i32("SQ range statistic")? {
        0 => RangeStat::MinMax,
        1 => RangeStat::MeanStd,
        2 => RangeStat::Quantiles,
        3 => RangeStat::Optim,
        r => return Err(c.err(format!("SQ range statistic {r}; expected 0..=3"))),
    };
    let rangestat_arg = c.f32("SQ range argument")?;
    let sq_d = c.u64("SQ d")?;
    if sq_d != d as u64 {
        return Err(c.err(format!("scalar quantizer has d = {sq_d}; the index {d}")));
    }
    let mut sq = ScalarQuantizer::new(d, qtype).map_err(|e| c.err(e))?;
    sq.rangestat = rangestat;
    sq.rangestat_arg = rangestat_arg;
    let code_size = c.u64("SQ code_size")?;
    if code_size != sq.code_size() as u64 {
        return Err(c.err(format!(
            "SQ code_size is {code_size}; type {qtype:?} at d = {d} has {}",
            sq.code_size()
        )));
    }
    let trained = c.vec::<f32>("SQ trained ranges")?;
    if !trained.is_empty() {
        sq.set_trained(trained).map_err(|e| c.err(e))?;
    }
    Ok(sq)
}

pub(super) fn write_sq(s: &mut Sink<'_>, sq: &ScalarQuantizer) -> Result<()> {
    s.i32(sq.qtype().code() as i32)?;
    s.i32(sq.rangestat as i32)?;
    s.f32(sq.rangestat_arg)?;
    s.usize(sq.d())?;
    s.usize(sq.code_size())?;
    s.vec(sq.trained())
}

/// A nested record that must be an [`IndexScalarQuantizer`].
pub(super) fn read_sq(c: &mut Cursor<'_>) -> Result<IndexScalarQuantizer> {
    read_nested_of(c, &[b"IxSQ"], "a scalar-quantizer index", |c, _| {
        read_sq_body(c)
    })
}

pub(super) fn read_sq_body(c: &mut Cursor<'_>) -> Result<IndexScalarQuantizer> {
    let h = read_header(c)?;
    let sq = read_scalar_quantizer(c, h.d)?;
    let (codes, codes_at) = c.byte_vec_len(
        "SQ codes",
        h.ntotal
            .checked_mul(sq.code_size())
            .ok_or_else(|| c.err("codes overflow"))?,
    )?;
    let mut index = IndexScalarQuantizer::new(h.d, sq.qtype(), h.metric).map_err(|e| c.err(e))?;
    *index.sq_mut() = sq;
    put_codes!(c, index, codes, codes_at);
    Ok(index)
}

pub(super) fn write_sq_index(s: &mut Sink<'_>, q: &IndexScalarQuantizer) -> Result<()> {
    s.fourcc(b"IxSQ")?;
    write_header(s, q)?;
    write_sq(s, q.sq())?;
    s.vec(q.codes())
}

pub(super) fn read_lsh_body(c: &mut Cursor<'_>, fourcc: &[u8; 4]) -> Result<IndexLsh> {
    let h = read_header(c)?;
    let nbits = c.i32_in("LSH nbits", MAX_DIM)?;
    let rotate_data = c.bool("LSH rotate_data")?;
    let train_thresholds = c.bool("LSH train_thresholds")?;
    let thresholds = c.vec::<f32>("LSH thresholds")?;
    let mut code_size = c.i32_in("LSH code_size", MAX_DIM)?;
    if fourcc == b"IxHE" {
        // The oldest files counted 64-bit words.
        if !nbits.is_multiple_of(64) {
            return Err(c.err("a legacy IxHE record needs nbits to be a multiple of 64"));
        }
        code_size *= 8;
    }
    if code_size != nbits.div_ceil(8) {
        return Err(c.err(format!(
            "LSH code_size is {code_size}; expected ceil(nbits / 8) = {}",
            nbits.div_ceil(8)
        )));
    }
    let rot = c.nested(read_transform)?;
    if rot.d_in() != h.d || rot.d_out() != nbits {
        return Err(c.err(format!(
            "LSH rotation maps {} → {} dimensions; expected {} → {nbits}",
            rot.d_in(),
            rot.d_out(),
            h.d
        )));
    }
    let (codes, codes_at) = c.byte_vec_len(
        "LSH codes",
        h.ntotal
            .checked_mul(code_size)
            .ok_or_else(|| c.err("codes overflow"))?,
    )?;
    let mut index =
        IndexLsh::new(h.d, nbits, rotate_data, train_thresholds).map_err(|e| c.err(e))?;
    if rotate_data && !rot.is_trained() {
        // Faiss draws the rotation when the index is made, so its files always hold it.
        return Err(c.err("LSH with rotate_data stores no rotation matrix"));
    }
    if h.is_trained {
        let rotation = if rotate_data {
            let r = match rot.view() {
                fathom_linalg::TransformView::RandomRotation(r) if r.is_trained() => r,
                _ => return Err(c.err("LSH rotation is not a trained random rotation")),
            };
            Some(r.clone())
        } else {
            None
        };
        let thresholds = if train_thresholds {
            thresholds
        } else {
            Vec::new()
        };
        index
            .encoder_mut()
            .set_parts(rotation, thresholds)
            .map_err(|e| c.err(e))?;
    }
    put_codes!(c, index, codes, codes_at);
    Ok(index)
}

pub(super) fn write_lsh(s: &mut Sink<'_>, l: &IndexLsh) -> Result<()> {
    let enc = l.encoder();
    s.fourcc(b"IxHe")?;
    write_header(s, l)?;
    s.i32(enc.nbits() as i32)?;
    s.bool(enc.rotate_data())?;
    s.bool(enc.train_thresholds())?;
    s.vec(enc.thresholds())?;
    s.i32(enc.code_size() as i32)?;
    match enc.rotation() {
        Some(r) => write_transform(s, r)?,
        None => {
            // Faiss always stores the rotation record; unused, it is an empty d → nbits map.
            s.fourcc(b"rrot")?;
            s.bool(false)?;
            s.vec::<f32>(&[])?;
            s.vec::<f32>(&[])?;
            s.i32(enc.d() as i32)?;
            s.i32(enc.nbits() as i32)?;
            s.bool(false)?;
        }
    }
    s.vec(l.codes())
}

pub(super) fn read_pq_fastscan_body(c: &mut Cursor<'_>) -> Result<IndexPqFastScan> {
    let h = read_header(c)?;
    let (pq, centroids) = read_pq(c)?;
    if pq.d() != h.d || pq.nbits() != 4 {
        return Err(c.err(format!(
            "fast-scan PQ of dimension {} with {} bits; expected dimension {} and 4 bits",
            pq.d(),
            pq.nbits(),
            h.d
        )));
    }
    c.i32("implem")?;
    let bbs = c.i32_in("bbs", 1 << 16)?;
    c.i32("qbs")?;
    let ntotal2 = c.u64("ntotal2")?;
    let m2 = c.u64("M2")?;
    let cs = pq.code_size();
    if bbs == 0 || !bbs.is_multiple_of(32) || m2 != 2 * cs as u64 {
        return Err(c.err(format!(
            "fast-scan blocks of {bbs} codes and M2 = {m2}; expected a multiple of 32 and {}",
            2 * cs
        )));
    }
    if ntotal2 != h.ntotal.next_multiple_of(bbs) as u64 {
        return Err(c.err(format!("ntotal2 = {ntotal2} for ntotal = {}", h.ntotal)));
    }
    let len = super::fastscan::packed_len(h.ntotal, cs, bbs);
    let blocks = c.vec_len::<u8>("fast-scan codes", len)?;
    let mut index = IndexPqFastScan::new(h.d, pq.m(), h.metric).map_err(|e| c.err(e))?;
    if h.is_trained || centroids.iter().any(|&v| v != 0.0) {
        index
            .pq_mut()
            .set_centroids(&centroids)
            .map_err(|e| c.err(e))?;
    }
    let codes = super::fastscan::unpack(&blocks, h.ntotal, cs, cs, bbs);
    index.add_codes(&codes).map_err(|e| c.err(e))?;
    index.set_bbs(bbs).map_err(|e| c.err(e))?;
    Ok(index)
}

pub(super) fn write_pq_fastscan(s: &mut Sink<'_>, f: &IndexPqFastScan) -> Result<()> {
    let cs = f.pq().code_size();
    let codes: Vec<u8> = (0..f.ntotal()).flat_map(|i| f.code(i)).collect();
    s.fourcc(b"IPfs")?;
    write_header(s, f)?;
    write_pq(s, f.pq())?;
    s.i32(0)?; // implem: let Faiss choose
    s.i32(f.bbs() as i32)?;
    s.i32(0)?; // qbs: Faiss's default
    s.usize(f.ntotal().next_multiple_of(f.bbs()))?;
    s.usize(2 * cs)?;
    s.vec(&super::fastscan::pack(&codes, cs, cs, f.bbs()))
}
