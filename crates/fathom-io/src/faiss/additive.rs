//! Additive-quantizer records, read and written side by side. Every quantizer starts
//! with Faiss's `write_AdditiveQuantizer` (`d` u64, `M` u64, `nbits` vec<u64>,
//! `is_trained`, codebooks, search type i32, norm range, then for table-coded norms the
//! table as an xb-vector and for 2×4-bit norms their codebooks), followed by
//! - RQ: `train_type` i32, `max_beam_size` i32;
//! - LSQ: `K` u64, `train_iters`, `encode_ils_iters`, `train_ils_iters`, `icm_iters` u64,
//!   `p`, `lambd` f32, `chunk_size` u64, `random_seed` i32, `nperts` u64,
//!   `update_codebooks_with_double` u8;
//! - PRQ / PLSQ: `nsplits` u64, then each part's RQ / LSQ record.
//!
//! Indexes: `IxRq` (the legacy `IxRQ` is read), `IxLS`, `IxPR`, `IxPL` (flat), `IRfs`,
//! `ILfs`, `IPRf`, `IPLf` (flat fast-scan: the quantizer, then `implem`, `bbs`, `qbs` i32,
//! `M`, `nbits`, `ksub`, `code_size`, `ntotal2`, `M2` u64, `rescale_norm` u8, `norm_scale`
//! i32, `max_train_points` u64 and the codes in Faiss's blocks), `IwRQ`, `IwLS`, `IwPR`,
//! `IwPL` (IVF), `IVRf`, `IVLf`, `NPRf`, `NPLf` (IVF fast-scan: the IVF header, the
//! quantizer, `by_residual`, `implem`, `bbs`, `qbs`, `M`, `nbits`, `ksub`, `code_size`,
//! `qbs2`, `M2`, `rescale_norm`, `norm_scale`, `max_train_points`, then `ilbl` lists) and
//! `ImRQ` (the residual coarse quantizer).

use fathom_core::{Error, Result};
use fathom_index::ivf::{IvfAdditiveQuantizer, IvfAqFastScan};
use fathom_index::{Index, IndexAdditiveQuantizer, IndexAqFastScan, IndexResidualCoarseQuantizer};
use fathom_quant::additive::{AdditiveQuantizer, AqKind, AqSearchType, LsqParams};

use super::cursor::{Cursor, MAX_DIM};
use super::header::{check_ntotal, read_header, write_header};
use super::ivf::{finish_ivf, read_ivf_header};
use super::sink::Sink;

/// Which quantizer a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rq,
    Lsq,
    Prq,
    Plsq,
}

impl Family {
    fn of(aq: &AdditiveQuantizer) -> Self {
        match aq.kind() {
            AqKind::Residual(_) => Family::Rq,
            AqKind::LocalSearch(_) => Family::Lsq,
            AqKind::Product(subs) => match subs.first().map(|s| s.kind()) {
                Some(AqKind::LocalSearch(_)) => Family::Plsq,
                _ => Family::Prq,
            },
        }
    }
    fn flat_fourcc(self) -> &'static [u8; 4] {
        match self {
            Family::Rq => b"IxRq",
            Family::Lsq => b"IxLS",
            Family::Prq => b"IxPR",
            Family::Plsq => b"IxPL",
        }
    }
    fn ivf_fourcc(self) -> &'static [u8; 4] {
        match self {
            Family::Rq => b"IwRQ",
            Family::Lsq => b"IwLS",
            Family::Prq => b"IwPR",
            Family::Plsq => b"IwPL",
        }
    }
    fn fast_scan_fourcc(self) -> &'static [u8; 4] {
        match self {
            Family::Rq => b"IRfs",
            Family::Lsq => b"ILfs",
            Family::Prq => b"IPRf",
            Family::Plsq => b"IPLf",
        }
    }
    fn ivf_fast_scan_fourcc(self) -> &'static [u8; 4] {
        match self {
            Family::Rq => b"IVRf",
            Family::Lsq => b"IVLf",
            Family::Prq => b"NPRf",
            Family::Plsq => b"NPLf",
        }
    }
    fn from_fourcc(f: &[u8; 4]) -> Option<Self> {
        Some(match f {
            b"IxRq" | b"IxRQ" | b"IwRQ" | b"ImRQ" | b"IRfs" | b"IVRf" => Family::Rq,
            b"IxLS" | b"IwLS" | b"ILfs" | b"IVLf" => Family::Lsq,
            b"IxPR" | b"IwPR" | b"IPRf" | b"NPRf" => Family::Prq,
            b"IxPL" | b"IwPL" | b"IPLf" | b"NPLf" => Family::Plsq,
            _ => return None,
        })
    }
}

/// The fields every additive quantizer starts with.
struct Base {
    d: usize,
    nbits: Vec<usize>,
    is_trained: bool,
    codebooks: Vec<f32>,
    st: AqSearchType,
    norm_min: f32,
    norm_max: f32,
    table: Vec<f32>,
    tabs: Vec<f32>,
}

fn read_nbits(c: &mut Cursor<'_>, m: usize) -> Result<Vec<usize>> {
    let nbits = c.vec_len::<u64>("additive-quantizer nbits", m)?;
    nbits
        .iter()
        .map(|&b| {
            if (1..=16).contains(&b) {
                Ok(b as usize)
            } else {
                Err(c.err(format!("codebook of {b} bits; fathom reads 1 to 16")))
            }
        })
        .collect()
}

/// `legacy`: the old `IxRQ` order, with `train_type` and `max_beam_size` before the
/// codebooks (returned).
fn read_base(c: &mut Cursor<'_>, legacy: bool) -> Result<(Base, Option<(i32, i32)>)> {
    let d = c.u64_in("additive-quantizer d", MAX_DIM)?;
    let m = c.u64_in("additive-quantizer M", 4096)?;
    if d == 0 || m == 0 {
        return Err(c.err(format!("an additive quantizer of d = {d}, M = {m}")));
    }
    let nbits = read_nbits(c, m)?;
    let is_trained = c.bool("is_trained")?;
    let legacy_rq = if legacy {
        Some((c.i32("train_type")?, c.i32("max_beam_size")?))
    } else {
        None
    };
    let codebooks = c.vec::<f32>("codebooks")?;
    let st = AqSearchType::from_code(c.i32("search type")?).map_err(|e| c.err(e))?;
    let norm_min = c.f32("norm_min")?;
    let norm_max = c.f32("norm_max")?;
    let (mut table, mut tabs) = (Vec::new(), Vec::new());
    if !legacy && st.has_norm_table() {
        table = c.vec::<f32>("norm table")?;
        if matches!(st, AqSearchType::NormLsq2x4 | AqSearchType::NormRq2x4) {
            tabs = c.vec::<f32>("norm codebooks")?;
        }
    }
    let base = Base {
        d,
        nbits,
        is_trained,
        codebooks,
        st,
        norm_min,
        norm_max,
        table,
        tabs,
    };
    Ok((base, legacy_rq))
}

/// Gives a quantizer built from a record's shape its trained state.
fn finish(c: &Cursor<'_>, mut aq: AdditiveQuantizer, b: Base) -> Result<AdditiveQuantizer> {
    if b.is_trained && !b.codebooks.is_empty() {
        aq.set_codebooks(b.codebooks).map_err(|e| c.err(e))?;
    }
    aq.set_norm_state(b.norm_min, b.norm_max, b.table, b.tabs)
        .map_err(|e| c.err(e))?;
    Ok(aq)
}

fn read_rq(c: &mut Cursor<'_>, legacy: bool) -> Result<AdditiveQuantizer> {
    let (b, legacy_rq) = read_base(c, legacy)?;
    let (train_type, beam) = match legacy_rq {
        Some(v) => v,
        None => (c.i32("train_type")?, c.i32("max_beam_size")?),
    };
    if beam <= 0 {
        return Err(c.err(format!("max_beam_size is {beam}; expected ≥ 1")));
    }
    let mut aq = AdditiveQuantizer::residual(b.d, b.nbits.clone(), b.st).map_err(|e| c.err(e))?;
    if let AqKind::Residual(p) = aq.kind_mut() {
        p.train_type = train_type;
        p.max_beam_size = beam as usize;
    }
    finish(c, aq, b)
}

fn read_lsq(c: &mut Cursor<'_>) -> Result<AdditiveQuantizer> {
    let (b, _) = read_base(c, false)?;
    let k = c.u64("K")?;
    if b.nbits.iter().any(|&nb| 1u64 << nb != k) {
        return Err(c.err(format!(
            "a local-search quantizer of K = {k} with codebooks of {:?} bits",
            b.nbits
        )));
    }
    let limit = 1 << 20;
    let p = LsqParams {
        train_iters: c.u64_in("train_iters", limit)?,
        encode_ils_iters: c.u64_in("encode_ils_iters", limit)?,
        train_ils_iters: c.u64_in("train_ils_iters", limit)?,
        icm_iters: c.u64_in("icm_iters", limit)?,
        p: c.f32("p")?,
        lambd: c.f32("lambd")?,
        chunk_size: c.u64_in("chunk_size", 1 << 40)?,
        random_seed: c.i32("random_seed")?,
        nperts: c.u64_in("nperts", limit)?,
        update_codebooks_with_double: c.bool("update_codebooks_with_double")?,
    };
    let mut aq = AdditiveQuantizer::local_search(b.d, b.nbits.len(), b.nbits[0], b.st)
        .map_err(|e| c.err(e))?;
    if let AqKind::LocalSearch(q) = aq.kind_mut() {
        *q = p;
    }
    finish(c, aq, b)
}

fn read_product(c: &mut Cursor<'_>, lsq: bool) -> Result<AdditiveQuantizer> {
    let (b, _) = read_base(c, false)?;
    let nsplits = c.u64_in("nsplits", b.d)?;
    if nsplits == 0 || b.d % nsplits != 0 {
        return Err(c.err(format!("{nsplits} parts do not split d = {}", b.d)));
    }
    let subs = (0..nsplits)
        .map(|_| if lsq { read_lsq(c) } else { read_rq(c, false) })
        .collect::<Result<Vec<_>>>()?;
    let aq = AdditiveQuantizer::product(b.d, subs, b.st).map_err(|e| c.err(e))?;
    if aq.nbits() != b.nbits.as_slice() {
        return Err(c.err(format!(
            "the product's codebooks are {:?} bits; its parts' are {:?}",
            b.nbits,
            aq.nbits()
        )));
    }
    finish(c, aq, b)
}

fn read_aq(
    c: &mut Cursor<'_>,
    family: Family,
    legacy: bool,
    d_index: usize,
) -> Result<AdditiveQuantizer> {
    let aq = match family {
        Family::Rq => read_rq(c, legacy)?,
        Family::Lsq => read_lsq(c)?,
        Family::Prq => read_product(c, false)?,
        Family::Plsq => read_product(c, true)?,
    };
    if aq.d() != d_index {
        return Err(c.err(format!(
            "an additive quantizer of d = {} in an index of d = {d_index}",
            aq.d()
        )));
    }
    Ok(aq)
}

fn write_base(s: &mut Sink<'_>, aq: &AdditiveQuantizer) -> Result<()> {
    s.usize(aq.d())?;
    s.usize(aq.m())?;
    let nbits: Vec<u64> = aq.nbits().iter().map(|&b| b as u64).collect();
    s.vec(&nbits)?;
    s.bool(aq.is_trained())?;
    s.vec(aq.codebooks())?;
    s.i32(aq.search_type().code())?;
    let (lo, hi) = aq.norm_range();
    s.f32(lo)?;
    s.f32(hi)?;
    if aq.search_type().has_norm_table() {
        s.vec(aq.norm_table())?;
        if matches!(
            aq.search_type(),
            AqSearchType::NormLsq2x4 | AqSearchType::NormRq2x4
        ) {
            s.vec(aq.norm_tabs())?;
        }
    }
    Ok(())
}

fn write_aq(s: &mut Sink<'_>, aq: &AdditiveQuantizer) -> Result<()> {
    write_base(s, aq)?;
    match aq.kind() {
        AqKind::Residual(p) => {
            s.i32(p.train_type)?;
            s.i32(p.max_beam_size.min(i32::MAX as usize) as i32)
        }
        AqKind::LocalSearch(p) => {
            s.usize(1 << aq.nbits()[0])?;
            s.usize(p.train_iters)?;
            s.usize(p.encode_ils_iters)?;
            s.usize(p.train_ils_iters)?;
            s.usize(p.icm_iters)?;
            s.f32(p.p)?;
            s.f32(p.lambd)?;
            s.usize(p.chunk_size)?;
            s.i32(p.random_seed)?;
            s.usize(p.nperts)?;
            s.bool(p.update_codebooks_with_double)
        }
        AqKind::Product(subs) => {
            s.usize(subs.len())?;
            subs.iter().try_for_each(|sub| write_aq(s, sub))
        }
    }
}

fn check_code_size(c: &Cursor<'_>, code_size: u64, aq: &AdditiveQuantizer) -> Result<()> {
    if code_size != aq.code_size() as u64 {
        return Err(c.err(format!(
            "code_size is {code_size}; the quantizer's codes are {} bytes",
            aq.code_size()
        )));
    }
    Ok(())
}

/// Whether a fourcc is a flat additive-quantizer index.
pub(super) fn is_flat_fourcc(f: &[u8; 4]) -> bool {
    matches!(f, b"IxRq" | b"IxRQ" | b"IxLS" | b"IxPR" | b"IxPL")
}

/// Whether a fourcc is a flat fast-scan additive-quantizer index.
pub(super) fn is_fast_scan_fourcc(f: &[u8; 4]) -> bool {
    matches!(f, b"IRfs" | b"ILfs" | b"IPRf" | b"IPLf")
}

/// `IRfs`, `ILfs`, `IPRf`, `IPLf`.
pub(super) fn read_fast_scan_body(c: &mut Cursor<'_>, fourcc: &[u8; 4]) -> Result<IndexAqFastScan> {
    let family = Family::from_fourcc(fourcc).ok_or_else(|| c.err("not an additive quantizer"))?;
    let h = read_header(c)?;
    let aq = read_aq(c, family, false, h.d)?;
    let mut index = IndexAqFastScan::new(aq, h.metric).map_err(|e| c.err(e))?;
    let cols = index.aq().m()
        + if h.metric == fathom_core::MetricType::L2 {
            2
        } else {
            0
        };
    let (bbs, ntotal2) = read_fast_scan_fields(c, index.aq(), cols)?;
    index.set_bbs(bbs).map_err(|e| c.err(e))?;
    if ntotal2 != h.ntotal.next_multiple_of(bbs) as u64 {
        return Err(c.err(format!("ntotal2 = {ntotal2} for ntotal = {}", h.ntotal)));
    }
    index.rescale_norm = c.bool("rescale_norm")?;
    let scale = c.i32("norm_scale")?;
    index.set_norm_scale(scale);
    index.max_train_points = c.u64_in("max_train_points", usize::MAX >> 1)?;
    let cs = index.aq().code_size();
    let len = super::fastscan::packed_len(h.ntotal, cs, bbs);
    let blocks = c.vec_len::<u8>("fast-scan codes", len)?;
    let codes = super::fastscan::unpack(&blocks, h.ntotal, cs, cs, bbs);
    index.add_codes(&codes).map_err(|e| c.err(e))?;
    check_ntotal(c, &h, index.ntotal(), "the codes")?;
    Ok(index)
}

pub(super) fn write_fast_scan(s: &mut Sink<'_>, index: &IndexAqFastScan) -> Result<()> {
    let aq = index.aq();
    let cs = aq.code_size();
    let cols = aq.m()
        + if index.metric() == fathom_core::MetricType::L2 {
            2
        } else {
            0
        };
    s.fourcc(Family::of(aq).fast_scan_fourcc())?;
    write_header(s, index)?;
    write_aq(s, aq)?;
    s.i32(0)?; // implem: let Faiss choose
    s.i32(index.bbs() as i32)?;
    s.i32(0)?; // qbs: Faiss's default
    s.usize(cols)?;
    s.usize(4)?;
    s.usize(16)?;
    s.usize(cs)?;
    s.usize(index.ntotal().next_multiple_of(index.bbs()))?;
    s.usize(cols.next_multiple_of(2))?;
    s.bool(index.rescale_norm)?;
    s.i32(index.norm_scale())?;
    s.usize(index.max_train_points)?;
    let codes: Vec<u8> = (0..index.ntotal()).flat_map(|i| index.code(i)).collect();
    s.vec(&super::fastscan::pack(&codes, cs, cs, index.bbs()))
}

/// Whether a fourcc is an IVF fast-scan additive-quantizer index.
pub(super) fn is_ivf_fast_scan_fourcc(f: &[u8; 4]) -> bool {
    matches!(f, b"IVRf" | b"IVLf" | b"NPRf" | b"NPLf")
}

/// The fast-scan fields after the quantizer, shared by the flat and IVF records up to
/// `M2` (`ntotal2` for flat, `qbs2` for IVF in the middle slot): checks them against the
/// quantizer and returns `bbs`.
fn read_fast_scan_fields(
    c: &mut Cursor<'_>,
    aq: &AdditiveQuantizer,
    cols: usize,
) -> Result<(usize, u64)> {
    c.i32("implem")?;
    let bbs = c.i32_in("bbs", 1 << 16)?;
    c.i32("qbs")?;
    let m = c.u64("M")?;
    let nbits = c.u64("nbits")?;
    let ksub = c.u64("ksub")?;
    let code_size = c.u64("code_size")?;
    let middle = c.u64("ntotal2 / qbs2")?;
    let m2 = c.u64("M2")?;
    if m != cols as u64 || nbits != 4 || ksub != 16 || m2 != cols.next_multiple_of(2) as u64 {
        return Err(c.err(format!(
            "fast-scan columns M = {m}, M2 = {m2}, {nbits} bits, ksub = {ksub}; the quantizer \
             needs M = {cols}, M2 = {}, 4 bits, ksub = 16",
            cols.next_multiple_of(2)
        )));
    }
    if code_size != aq.code_size() as u64 {
        return Err(c.err(format!(
            "code_size is {code_size}; the quantizer's codes are {} bytes",
            aq.code_size()
        )));
    }
    Ok((bbs, middle))
}

/// `IVRf`, `IVLf`, `NPRf`, `NPLf`.
pub(super) fn read_ivf_fast_scan_body(
    c: &mut Cursor<'_>,
    fourcc: &[u8; 4],
) -> Result<Box<dyn Index>> {
    let family = Family::from_fourcc(fourcc).ok_or_else(|| c.err("not an additive quantizer"))?;
    let ivf = read_ivf_header(c)?;
    let aq = read_aq(c, family, false, ivf.h.d)?;
    let mut codec = IvfAqFastScan::from_aq(aq, ivf.h.metric).map_err(|e| c.err(e))?;
    let by_residual = c.bool("by_residual")?;
    let (bbs, _qbs2) = read_fast_scan_fields(c, codec.aq(), codec.columns())?;
    codec.set_bbs(bbs).map_err(|e| c.err(e))?;
    codec.rescale_norm = c.bool("rescale_norm")?;
    let scale = c.i32("norm_scale")?;
    codec.set_norm_scale(scale);
    codec.max_train_points = c.u64_in("max_train_points", usize::MAX >> 1)?;
    Ok(Box::new(finish_ivf(c, ivf, codec, by_residual)?))
}

/// The fourcc of an IVF fast-scan index with this codec.
pub(super) fn ivf_fast_scan_fourcc(codec: &IvfAqFastScan) -> &'static [u8; 4] {
    Family::of(codec.aq()).ivf_fast_scan_fourcc()
}

/// The codec part of an IVF fast-scan record, after the IVF header and before the lists.
pub(super) fn write_ivf_fast_scan_codec(
    s: &mut Sink<'_>,
    codec: &IvfAqFastScan,
    by_residual: bool,
) -> Result<()> {
    write_aq(s, codec.aq())?;
    s.bool(by_residual)?;
    s.i32(0)?; // implem
    s.i32(codec.bbs() as i32)?;
    s.i32(0)?; // qbs
    let cols = codec.columns();
    s.usize(cols)?;
    s.usize(4)?;
    s.usize(16)?;
    s.usize(codec.aq().code_size())?;
    s.usize(0)?; // qbs2
    s.usize(cols.next_multiple_of(2))?;
    s.bool(codec.rescale_norm)?;
    s.i32(codec.norm_scale())?;
    s.usize(codec.max_train_points)
}

/// Whether a fourcc is an IVF additive-quantizer index.
pub(super) fn is_ivf_fourcc(f: &[u8; 4]) -> bool {
    matches!(f, b"IwRQ" | b"IwLS" | b"IwPR" | b"IwPL")
}

/// `IxRq`, `IxRQ`, `IxLS`, `IxPR`, `IxPL`.
pub(super) fn read_flat_body(
    c: &mut Cursor<'_>,
    fourcc: &[u8; 4],
) -> Result<IndexAdditiveQuantizer> {
    let family = Family::from_fourcc(fourcc).ok_or_else(|| c.err("not an additive quantizer"))?;
    let h = read_header(c)?;
    let aq = read_aq(c, family, fourcc == b"IxRQ", h.d)?;
    let code_size = c.u64("code_size")?;
    check_code_size(c, code_size, &aq)?;
    let len = h
        .ntotal
        .checked_mul(aq.code_size())
        .ok_or_else(|| c.err("codes overflow"))?;
    let codes = c.vec_len::<u8>("additive-quantizer codes", len)?;
    let mut index = IndexAdditiveQuantizer::new(aq, h.metric).map_err(|e| c.err(e))?;
    index.add_codes(&codes).map_err(|e| c.err(e))?;
    check_ntotal(c, &h, index.ntotal(), "the codes")?;
    Ok(index)
}

pub(super) fn write_flat(s: &mut Sink<'_>, index: &IndexAdditiveQuantizer) -> Result<()> {
    s.fourcc(Family::of(index.aq()).flat_fourcc())?;
    write_header(s, index)?;
    write_aq(s, index.aq())?;
    s.usize(index.aq().code_size())?;
    s.vec(index.codes())
}

/// `IwRQ`, `IwLS`, `IwPR`, `IwPL`.
pub(super) fn read_ivf_body(c: &mut Cursor<'_>, fourcc: &[u8; 4]) -> Result<Box<dyn Index>> {
    let family = Family::from_fourcc(fourcc).ok_or_else(|| c.err("not an additive quantizer"))?;
    let ivf = read_ivf_header(c)?;
    let code_size = c.u64("code_size")?;
    let aq = read_aq(c, family, false, ivf.h.d)?;
    check_code_size(c, code_size, &aq)?;
    let by_residual = c.bool("by_residual")?;
    c.i32("use_precomputed_table")?;
    let codec = IvfAdditiveQuantizer::from_aq(aq);
    Ok(Box::new(finish_ivf(c, ivf, codec, by_residual)?))
}

/// The fourcc of an IVF index with this codec.
pub(super) fn ivf_fourcc(codec: &IvfAdditiveQuantizer) -> &'static [u8; 4] {
    Family::of(codec.aq()).ivf_fourcc()
}

/// The codec part of an IVF record, after the IVF header.
pub(super) fn write_ivf_codec(
    s: &mut Sink<'_>,
    codec: &IvfAdditiveQuantizer,
    by_residual: bool,
) -> Result<()> {
    s.usize(codec.aq().code_size())?;
    write_aq(s, codec.aq())?;
    s.bool(by_residual)?;
    s.i32(0)
}

/// `ImRQ`: the header, the residual quantizer and `beam_factor`.
pub(super) fn read_rcq_body(c: &mut Cursor<'_>) -> Result<IndexResidualCoarseQuantizer> {
    let h = read_header(c)?;
    let rq = read_aq(c, Family::Rq, false, h.d)?;
    let beam_factor = c.f32("beam_factor")?;
    let rcq = IndexResidualCoarseQuantizer::from_quantizer(rq, h.metric, beam_factor)
        .map_err(|e| c.err(e))?;
    check_ntotal(c, &h, rcq.ntotal(), "the quantizer's codes")?;
    Ok(rcq)
}

pub(super) fn write_rcq(s: &mut Sink<'_>, rcq: &IndexResidualCoarseQuantizer) -> Result<()> {
    if !matches!(rcq.aq().kind(), AqKind::Residual(_)) {
        return Err(Error::Unsupported(format!(
            "{}: Faiss's file format has no record for a local-search coarse quantizer (faiss \
             cannot write one either); use an RCQ or a flat coarse quantizer to save the index",
            rcq.description()
        )));
    }
    s.fourcc(b"ImRQ")?;
    write_header(s, rcq)?;
    write_aq(s, rcq.aq())?;
    s.f32(rcq.beam_factor)
}
