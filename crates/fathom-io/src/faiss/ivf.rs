//! Inverted-file records, read and written side by side: the IVF header (quantizer,
//! direct map), each codec's fields, the IVF-PQR tail, and the multi-index quantizer
//! (`Imiq`). The lists themselves are `invlists`'s.

use fathom_core::Result;
use fathom_index::ivf::{
    DirectMap, DirectMapType, DynIvf, IvfCodec, IvfCodecView, IvfFlat, IvfPq, IvfPqFastScan,
    IvfScalarQuantizer,
};
use fathom_index::{Index, IndexIvf, IndexIvfPqr, MultiIndexQuantizer};

use super::codes::{read_pq, read_scalar_quantizer, write_pq, write_sq};
use super::cursor::Cursor;
use super::header::{Header, check_nested, check_ntotal, read_header, unsupported, write_header};
use super::invlists::{read_lists, write_lists};
use super::read::read_index;
use super::sink::Sink;
use super::write::write_index;

/// Lists an IVF record may declare without a quantizer holding that many centroids.
pub(super) const MAX_FREE_NLIST: usize = 1 << 20;

/// The most lists an IVF record may declare.
pub(super) const MAX_NLIST: usize = 1 << 28;

/// What every IVF record starts with.
pub(super) struct IvfHeader {
    pub(super) h: Header,
    nlist: usize,
    nprobe: usize,
    quantizer: Box<dyn Index>,
    direct_map: DirectMapType,
    /// The legacy `Iv…` records (Faiss before 2018) keep each list's ids here and its
    /// codes after the class's fields, with no inverted-lists record.
    legacy: Option<LegacyLists>,
}

pub(super) struct LegacyLists {
    ids: Vec<Vec<i64>>,
    /// `IvFl` stored the codes as vectors of floats.
    float_codes: bool,
}

pub(super) fn read_ivf_header(c: &mut Cursor<'_>) -> Result<IvfHeader> {
    read_ivf_header_with(c, false)
}

pub(super) fn read_ivf_header_with(c: &mut Cursor<'_>, legacy: bool) -> Result<IvfHeader> {
    let h = read_header(c)?;
    let nlist = c.u64_in("nlist", i64::MAX as usize)?;
    if nlist == 0 {
        return Err(c.err("nlist is 0; an IVF index has at least one list"));
    }
    let nprobe = c.u64_in("nprobe", i64::MAX as usize)?;
    let quantizer = read_index(c)?;
    check_nested(c, &h, &*quantizer, "the coarse quantizer")?;
    // The lists are allocated up front: beyond 2^20 lists, only as many as the trained
    // quantizer really has (and no more than an IMI of 2^28, as Faiss's largest).
    if nlist > MAX_FREE_NLIST && (quantizer.ntotal() != nlist || nlist > MAX_NLIST) {
        return Err(c.err(format!(
            "nlist = {nlist} lists, but the coarse quantizer holds {} centroids",
            quantizer.ntotal()
        )));
    }
    if h.is_trained && quantizer.ntotal() != nlist {
        return Err(c.err(format!(
            "the coarse quantizer holds {} centroids for {nlist} lists",
            quantizer.ntotal()
        )));
    }
    let legacy = if legacy {
        let mut ids = Vec::with_capacity(nlist.min(c.remaining() / 8));
        for _ in 0..nlist {
            ids.push(c.vec::<i64>("legacy list ids")?);
        }
        Some(LegacyLists {
            ids,
            float_codes: false,
        })
    } else {
        None
    };
    let direct_map = read_direct_map(c, h.ntotal)?;
    Ok(IvfHeader {
        h,
        nlist,
        nprobe,
        quantizer,
        direct_map,
        legacy,
    })
}

/// Faiss's `read_direct_map`: the kind of map (the map itself is rebuilt from the lists,
/// and checked against them).
pub(super) fn read_direct_map(c: &mut Cursor<'_>, ntotal: usize) -> Result<DirectMapType> {
    let direct_map = match c.u8("direct map type")? {
        0 => DirectMapType::NoMap,
        1 => DirectMapType::Array,
        2 => DirectMapType::Hashtable,
        t => return Err(c.err(format!("direct map type {t}; expected 0, 1 or 2"))),
    };
    // The map itself is rebuilt from the lists (and checked against them).
    let array = c.vec::<i64>("direct map array")?;
    if direct_map == DirectMapType::Array && array.len() != ntotal {
        return Err(c.err(format!(
            "array direct map has {} entries for ntotal = {}",
            array.len(),
            ntotal
        )));
    }
    if direct_map == DirectMapType::Hashtable {
        let pairs = c.vec::<[i64; 2]>("direct map hashtable")?;
        if pairs.len() > ntotal {
            return Err(c.err("direct map hashtable has more entries than vectors"));
        }
    }
    Ok(direct_map)
}

/// Faiss's `write_direct_map`.
pub(super) fn write_direct_map(s: &mut Sink<'_>, dm: &DirectMap) -> Result<()> {
    s.u8(dm.kind() as u8)?;
    let array: Vec<i64> = dm.array().iter().map(|&lo| lo as i64).collect();
    s.vec(&array)?;
    if dm.kind() == DirectMapType::Hashtable {
        let mut pairs: Vec<[i64; 2]> = dm.hashtable().map(|(id, lo)| [id, lo as i64]).collect();
        // Faiss writes hash-map order; sorting makes fathom's files reproducible.
        pairs.sort_unstable();
        s.vec(&pairs)?;
    }
    Ok(())
}

/// Reads the inverted lists of an IVF record and assembles the index.
pub(super) fn finish_ivf<C: IvfCodec + 'static>(
    c: &mut Cursor<'_>,
    ivf: IvfHeader,
    codec: C,
    by_residual: bool,
) -> Result<IndexIvf<C>> {
    let IvfHeader {
        h,
        nlist,
        nprobe,
        quantizer,
        direct_map,
        legacy,
    } = ivf;
    if quantizer.metric() != h.metric {
        return Err(c.err(format!(
            "the coarse quantizer compares with {:?}, the index with {:?}",
            quantizer.metric(),
            h.metric
        )));
    }
    let mut index = IndexIvf::with_codec(quantizer, nlist, h.metric, codec, by_residual)
        .map_err(|e| c.err(e))?;
    let codec = index.codec();
    let lists = match legacy {
        None => {
            let cs = codec.code_size();
            // In Faiss's blocks, RaBitQ codes are 4-bit columns only in their sign bits.
            let nibbles = match codec.view() {
                IvfCodecView::RaBitQFastScan(r) => r.rabitq().sign_bytes(),
                _ => cs,
            };
            read_lists(c, nlist, cs, nibbles, &|| codec.new_lists(nlist))?
        }
        Some(legacy) => {
            let cs = codec.code_size();
            let mut lists = codec.new_lists(nlist);
            for (l, ids) in legacy.ids.iter().enumerate() {
                let codes: Vec<u8> = if legacy.float_codes {
                    bytemuck::cast_slice(&c.vec::<f32>("legacy list codes")?).to_vec()
                } else {
                    c.vec::<u8>("legacy list codes")?
                };
                if codes.len() != ids.len() * cs {
                    return Err(c.err(format!(
                        "legacy list {l} has {} code bytes for {} ids of {cs} bytes",
                        codes.len(),
                        ids.len()
                    )));
                }
                lists.add_entries(l, ids, &codes).map_err(|e| c.err(e))?;
            }
            lists
        }
    };
    check_ntotal(c, &h, lists.compute_ntotal(), "the inverted lists")?;
    index.replace_invlists(lists).map_err(|e| c.err(e))?;
    index
        .set_direct_map_type(direct_map)
        .map_err(|e| c.err(e))?;
    index.nprobe = nprobe.clamp(1, nlist);
    Ok(index)
}

/// Every IVF record (`Iw…`, and the legacy `Iv…`), by fourcc.
pub(super) fn read_ivf_body(c: &mut Cursor<'_>, fourcc: &[u8; 4]) -> Result<Box<dyn Index>> {
    Ok(match fourcc {
        b"IwPf" => {
            let ivf = read_ivf_header(c)?;
            let by_residual = c.bool("by_residual")?;
            let code_size = c.u64("code_size")?;
            let bbs = c.i32_in("bbs", 1 << 16)?;
            c.u64("M2")?;
            c.i32("implem")?;
            c.u64("qbs2")?;
            let (mut pq, centroids) = read_pq(c)?;
            if pq.d() != ivf.h.d || code_size != pq.code_size() as u64 {
                return Err(c.err(format!(
                    "fast-scan PQ of dimension {} and code size {}; the index has d = {} and \
                     code_size = {code_size}",
                    pq.d(),
                    pq.code_size(),
                    ivf.h.d
                )));
            }
            if ivf.h.is_trained || centroids.iter().any(|&v| v != 0.0) {
                pq.set_centroids(&centroids).map_err(|e| c.err(e))?;
            }
            let mut codec = IvfPqFastScan::from_pq(pq).map_err(|e| c.err(e))?;
            codec.set_bbs(bbs).map_err(|e| c.err(e))?;
            Box::new(finish_ivf(c, ivf, codec, by_residual)?)
        }
        b"IwFl" | b"IvFl" | b"IvFL" => {
            let mut ivf = read_ivf_header_with(c, fourcc != b"IwFl")?;
            if let Some(legacy) = &mut ivf.legacy {
                legacy.float_codes = fourcc == b"IvFl";
            }
            let codec = IvfFlat::new(ivf.h.d);
            Box::new(finish_ivf(c, ivf, codec, false)?)
        }
        b"IwSq" | b"IwSQ" | b"IvSQ" => {
            let ivf = read_ivf_header_with(c, fourcc == b"IvSQ")?;
            let sq = read_scalar_quantizer(c, ivf.h.d)?;
            let code_size = c.u64("code_size")?;
            if code_size != sq.code_size() as u64 {
                return Err(c.err(format!(
                    "code_size is {code_size}; the scalar quantizer's is {}",
                    sq.code_size()
                )));
            }
            let by_residual = if fourcc == b"IwSq" {
                c.bool("by_residual")?
            } else {
                true
            };
            let codec = IvfScalarQuantizer::from_sq(sq);
            Box::new(finish_ivf(c, ivf, codec, by_residual)?)
        }
        b"IwPQ" | b"IwQR" | b"IvPQ" | b"IvQR" => {
            let ivf = read_ivf_header_with(c, matches!(fourcc, b"IvPQ" | b"IvQR"))?;
            let by_residual = c.bool("by_residual")?;
            let code_size = c.u64("code_size")?;
            let (pq, centroids) = read_pq(c)?;
            let mut codec = IvfPq::new(pq.d(), pq.m(), pq.nbits()).map_err(|e| c.err(e))?;
            if code_size != pq.code_size() as u64 {
                return Err(c.err(format!(
                    "code_size is {code_size}; the product quantizer's is {}",
                    pq.code_size()
                )));
            }
            if pq.d() != ivf.h.d {
                return Err(c.err(format!(
                    "product quantizer has dimension {}; the index {}",
                    pq.d(),
                    ivf.h.d
                )));
            }
            if ivf.h.is_trained || centroids.iter().any(|&v| v != 0.0) {
                codec
                    .pq_mut()
                    .set_centroids(&centroids)
                    .map_err(|e| c.err(e))?;
            }
            let index = finish_ivf(c, ivf, codec, by_residual)?;
            if matches!(fourcc, b"IwPQ" | b"IvPQ") {
                Box::new(index)
            } else {
                // Faiss's reader skips these when the index is untrained, but its writer
                // always writes them: always reading them keeps a nested record in step.
                let (rpq, rcentroids) = read_pq(c)?;
                let mut refine_pq = rpq;
                if rcentroids.iter().any(|&v| v != 0.0) {
                    refine_pq.set_centroids(&rcentroids).map_err(|e| c.err(e))?;
                }
                let codes =
                    c.vec_len::<u8>("refinement codes", index.ntotal() * refine_pq.code_size())?;
                let k_factor = c.f32("k_factor")?;
                Box::new(
                    IndexIvfPqr::from_parts(index, refine_pq, codes, k_factor)
                        .map_err(|e| c.err(e))?,
                )
            }
        }
        other => {
            return Err(c.err(format!(
                "{:?} is not an IVF record",
                String::from_utf8_lossy(other)
            )));
        }
    })
}

/// `Imiq`: the inverted multi-index's quantizer.
pub(super) fn read_multi_index_body(c: &mut Cursor<'_>) -> Result<MultiIndexQuantizer> {
    let h = read_header(c)?;
    let (pq, centroids) = read_pq(c)?;
    let mut q = MultiIndexQuantizer::new(h.d, pq.m(), pq.nbits()).map_err(|e| c.err(e))?;
    if h.is_trained || centroids.iter().any(|&v| v != 0.0) {
        q.pq_mut().set_centroids(&centroids).map_err(|e| c.err(e))?;
    }
    check_ntotal(c, &h, q.ntotal(), "the multi-index")?;
    Ok(q)
}

/// `Imiq`.
pub(super) fn write_multi_index(s: &mut Sink<'_>, q: &MultiIndexQuantizer) -> Result<()> {
    s.fourcc(b"Imiq")?;
    write_header(s, q)?;
    write_pq(s, q.pq())
}

/// The IVF header: the index header, nlist, nprobe, the quantizer, the direct map.
pub(super) fn write_ivf_header(
    s: &mut Sink<'_>,
    fourcc: &[u8; 4],
    index: &dyn DynIvf,
    keep_direct_map: bool,
) -> Result<()> {
    s.fourcc(fourcc)?;
    write_header(s, index)?;
    s.usize(index.nlist())?;
    s.usize(index.nprobe())?;
    write_index(s, index.quantizer())?;
    if keep_direct_map {
        write_direct_map(s, index.direct_map())
    } else {
        write_direct_map(s, &DirectMap::default())
    }
}

/// An IVF record of any codec. `in_pqr` marks the IVF-PQ that starts an IVF-PQR record:
/// it takes that record's fourcc, and its direct map — which fathom keeps there to
/// re-rank — is not stored (Faiss rebuilds it on load).
pub(super) fn write_ivf(s: &mut Sink<'_>, ivf: &dyn DynIvf, in_pqr: bool) -> Result<()> {
    let header = |s: &mut Sink<'_>, fourcc: &[u8; 4]| write_ivf_header(s, fourcc, ivf, !in_pqr);
    match ivf.codec() {
        _ if in_pqr && !matches!(ivf.codec(), IvfCodecView::Pq(_)) => Err(unsupported(&format!(
            "an IVF-PQR over {}",
            ivf.description()
        ))),
        // Faiss's IndexIVFFlat stores vectors: its record has no flag to say otherwise.
        IvfCodecView::Flat(_) if ivf.by_residual() => Err(unsupported(
            "an IVF-Flat storing residuals (Faiss's IndexIVFFlat stores the vectors; set \
             by_residual = false before adding)",
        )),
        IvfCodecView::Flat(_) => {
            header(s, b"IwFl")?;
            write_lists(s, ivf.invlists())
        }
        IvfCodecView::ScalarQuantizer(c) => {
            header(s, b"IwSq")?;
            write_sq(s, c.sq())?;
            s.usize(c.code_size())?;
            s.bool(ivf.by_residual())?;
            write_lists(s, ivf.invlists())
        }
        IvfCodecView::Pq(c) => {
            header(s, if in_pqr { b"IwQR" } else { b"IwPQ" })?;
            s.bool(ivf.by_residual())?;
            s.usize(c.code_size())?;
            write_pq(s, c.pq())?;
            write_lists(s, ivf.invlists())
        }
        IvfCodecView::PqFastScan(c) => {
            let cs = c.code_size();
            header(s, b"IwPf")?;
            s.bool(ivf.by_residual())?;
            s.usize(cs)?;
            s.i32(c.bbs() as i32)?;
            s.usize(2 * cs)?;
            s.i32(0)?; // implem
            s.usize(0)?; // qbs2
            write_pq(s, c.pq())?;
            write_block_lists(s, ivf.invlists(), cs, cs, c.bbs())
        }
        IvfCodecView::AqFastScan(c) => {
            header(s, super::additive::ivf_fast_scan_fourcc(c))?;
            super::additive::write_ivf_fast_scan_codec(s, c, ivf.by_residual())?;
            write_block_lists(s, ivf.invlists(), c.code_size(), c.code_size(), c.bbs())
        }
        IvfCodecView::RaBitQ(c) => {
            header(s, super::rabitq::ivf_fourcc(c))?;
            super::rabitq::write_ivf_codec(s, c)?;
            write_lists(s, ivf.invlists())
        }
        IvfCodecView::RaBitQFastScan(c) => {
            header(s, b"Iwrn")?;
            super::rabitq::write_ivf_fast_scan_codec(s, c)?;
            let sign_bytes = c.rabitq().sign_bytes();
            write_block_lists(s, ivf.invlists(), c.code_size(), sign_bytes, c.bbs())
        }
        IvfCodecView::AdditiveQuantizer(c) => {
            header(s, super::additive::ivf_fourcc(c))?;
            super::additive::write_ivf_codec(s, c, ivf.by_residual())?;
            write_lists(s, ivf.invlists())
        }
        IvfCodecView::Other => Err(unsupported(&ivf.description())),
    }
}

/// An `ilbl` record: each list's ids, then its codes in Faiss's blocks of `bbs` (the
/// first `nibbles` bytes of each code as 4-bit columns, see `fastscan::pack`).
fn write_block_lists(
    s: &mut Sink<'_>,
    lists: &dyn fathom_invlists::InvertedLists,
    cs: usize,
    nibbles: usize,
    bbs: usize,
) -> Result<()> {
    s.fourcc(b"ilbl")?;
    s.usize(lists.nlist())?;
    s.u64(u64::MAX)?; // Faiss's INVALID_CODE_SIZE: the codes exist only in blocks
    s.usize(bbs)?;
    s.usize(bbs * cs)?;
    for l in 0..lists.nlist() {
        s.vec(lists.ids(l))?;
        let codes: Vec<u8> = (0..lists.list_size(l))
            .flat_map(|o| lists.code(l, o).into_owned())
            .collect();
        s.vec(&super::fastscan::pack(&codes, cs, nibbles, bbs))?;
    }
    Ok(())
}

/// `IwQR`: the IVF-PQ record, then the refinement PQ, its codes and `k_factor`.
pub(super) fn write_ivf_pqr(s: &mut Sink<'_>, r: &IndexIvfPqr) -> Result<()> {
    write_ivf(s, r.ivf(), true)?;
    write_pq(s, r.refine_pq())?;
    s.vec(r.refine_codes())?;
    s.f32(r.k_factor)
}
