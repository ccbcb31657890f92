//! Reading index records.

use fathom_core::{Error, MetricType, Result};
use fathom_index::hnsw::{Hnsw, HnswStorage, LeI32s};
use fathom_index::ivf::{
    DirectMapType, IvfCodec, IvfFlat, IvfPq, IvfPqFastScan, IvfScalarQuantizer,
};
use fathom_index::{
    Index, IndexFlat, IndexHnsw, IndexIdMap, IndexIdMap2, IndexIvf, IndexIvfPqr, IndexLsh, IndexPq,
    IndexPqFastScan, IndexPreTransform, IndexRefine, IndexScalarQuantizer, MultiIndexQuantizer,
    PqSearchType,
};
use fathom_invlists::{InvertedLists, MappedInvertedLists, OnDiskInvertedLists, OnDiskList};
use fathom_linalg::VectorTransform;
use fathom_quant::{ProductQuantizer, QuantizerType, RangeStat, ScalarQuantizer};

use super::cursor::{Cursor, MAX_DIM};
use super::invlists::{fill_lists, read_array_layout};
use super::transform::read_transform;

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

/// Lists an IVF record may declare without a quantizer holding that many centroids.
const MAX_FREE_NLIST: usize = 1 << 20;
/// The most lists an IVF record may declare.
const MAX_NLIST: usize = 1 << 28;

/// Faiss's index header.
pub(crate) struct Header {
    pub(crate) d: usize,
    pub(crate) ntotal: usize,
    pub(crate) is_trained: bool,
    pub(crate) metric: MetricType,
}

fn read_header(c: &mut Cursor<'_>) -> Result<Header> {
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
        .and_then(|code| MetricType::from_code(code, arg))
        .map_err(|e| c.err(e))?;
    Ok(Header {
        d,
        ntotal: ntotal as usize,
        is_trained,
        metric,
    })
}

/// Checks a nested index against the header of the record holding it.
fn check_nested(c: &Cursor<'_>, h: &Header, sub: &dyn Index, what: &str) -> Result<()> {
    if sub.dim() != h.d {
        return Err(c.err(format!(
            "{what} has dimension {}; its parent has {}",
            sub.dim(),
            h.d
        )));
    }
    Ok(())
}

fn check_ntotal(c: &Cursor<'_>, h: &Header, got: usize, what: &str) -> Result<()> {
    if got != h.ntotal {
        return Err(c.err(format!(
            "{what} holds {got} vectors but the header says ntotal = {}",
            h.ntotal
        )));
    }
    Ok(())
}

/// One index record, fourcc included.
pub(crate) fn read_index(c: &mut Cursor<'_>) -> Result<Box<dyn Index>> {
    c.enter()?;
    let at = c.pos();
    let fourcc = c.fourcc()?;
    let index: Box<dyn Index> = match &fourcc {
        b"IxF2" | b"IxFI" | b"IxFl" => Box::new(read_flat_body(c, &fourcc)?),
        b"IxHe" | b"IxHE" => Box::new(read_lsh_body(c, &fourcc)?),
        b"IxPq" | b"IxPQ" | b"IxPo" => Box::new(read_pq_body(c, &fourcc)?),
        b"IxSQ" => Box::new(read_sq_body(c)?),
        b"IxMp" | b"IxM2" => {
            let h = read_header(c)?;
            let sub = read_index(c)?;
            check_nested(c, &h, &*sub, "the IDMap's index")?;
            check_ntotal(c, &h, sub.ntotal(), "the IDMap's index")?;
            let ids = c.vec_len::<i64>("id map", h.ntotal)?;
            if &fourcc == b"IxMp" {
                Box::new(IndexIdMap::from_parts(sub, ids).map_err(|e| c.err(e))?)
            } else {
                Box::new(IndexIdMap2::from_parts(sub, ids).map_err(|e| c.err(e))?)
            }
        }
        b"IxPT" => read_pretransform_body(c)?,
        b"IxRF" => {
            let h = read_header(c)?;
            let base = read_index(c)?;
            let refine = read_index(c)?;
            check_nested(c, &h, &*base, "the refined index")?;
            check_nested(c, &h, &*refine, "the refinement index")?;
            let k_factor = c.f32("k_factor")?;
            if !(1.0..=1000.0).contains(&k_factor) {
                return Err(c.err(format!("k_factor is {k_factor}; expected 1..=1000")));
            }
            let mut r = IndexRefine::new(base, refine).map_err(|e| c.err(e))?;
            r.k_factor = k_factor;
            Box::new(r)
        }
        b"Imiq" => {
            let h = read_header(c)?;
            let (pq, centroids) = read_pq(c)?;
            let mut q = MultiIndexQuantizer::new(h.d, pq.m(), pq.nbits()).map_err(|e| c.err(e))?;
            if h.is_trained || centroids.iter().any(|&v| v != 0.0) {
                q.pq_mut().set_centroids(&centroids).map_err(|e| c.err(e))?;
            }
            check_ntotal(c, &h, q.ntotal(), "the multi-index")?;
            Box::new(q)
        }
        b"IPfs" => Box::new(read_pq_fastscan_body(c)?),
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
        b"IHNf" => Box::new(read_hnsw_body(c, read_flat)?),
        b"IHNs" => Box::new(read_hnsw_body(c, read_sq)?),
        b"IHNp" => Box::new(read_hnsw_body(c, read_pq_index)?),
        b"IwFl" | b"IvFl" | b"IvFL" => {
            let mut ivf = read_ivf_header_with(c, &fourcc != b"IwFl")?;
            if let Some(legacy) = &mut ivf.legacy {
                legacy.float_codes = &fourcc == b"IvFl";
            }
            let codec = IvfFlat::new(ivf.h.d);
            Box::new(finish_ivf(c, ivf, codec, false)?)
        }
        b"IwSq" | b"IwSQ" | b"IvSQ" => {
            let ivf = read_ivf_header_with(c, &fourcc == b"IvSQ")?;
            let sq = read_scalar_quantizer(c, ivf.h.d)?;
            let code_size = c.u64("code_size")?;
            if code_size != sq.code_size() as u64 {
                return Err(c.err(format!(
                    "code_size is {code_size}; the scalar quantizer's is {}",
                    sq.code_size()
                )));
            }
            let by_residual = if &fourcc == b"IwSq" {
                c.bool("by_residual")?
            } else {
                true
            };
            let codec = IvfScalarQuantizer::from_sq(sq);
            Box::new(finish_ivf(c, ivf, codec, by_residual)?)
        }
        b"IwPQ" | b"IwQR" | b"IvPQ" | b"IvQR" => {
            let ivf = read_ivf_header_with(c, matches!(&fourcc, b"IvPQ" | b"IvQR"))?;
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
            if matches!(&fourcc, b"IwPQ" | b"IvPQ") {
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
        b"null" => return Err(c.err("the file stores no index here (a \"null\" record)")),
        other => {
            return Err(c.err_at(
                at,
                format!(
                    "unknown or unsupported index type {:?}",
                    String::from_utf8_lossy(other)
                ),
            ));
        }
    };
    c.leave();
    Ok(index)
}

/// A nested record that must be an [`IndexFlat`].
fn read_flat(c: &mut Cursor<'_>) -> Result<IndexFlat> {
    c.enter()?;
    let fourcc = c.fourcc()?;
    if !matches!(&fourcc, b"IxF2" | b"IxFI" | b"IxFl") {
        return Err(c.err(format!(
            "expected a flat index record, found {:?}",
            String::from_utf8_lossy(&fourcc)
        )));
    }
    let r = read_flat_body(c, &fourcc);
    c.leave();
    r
}

fn read_flat_body(c: &mut Cursor<'_>, fourcc: &[u8; 4]) -> Result<IndexFlat> {
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

fn read_lsh_body(c: &mut Cursor<'_>, fourcc: &[u8; 4]) -> Result<IndexLsh> {
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
    c.enter()?;
    let rot = read_transform(c)?;
    c.leave();
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

/// A product quantizer record: the quantizer (untrained) and the stored centroids.
fn read_pq(c: &mut Cursor<'_>) -> Result<(ProductQuantizer, Vec<f32>)> {
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

/// A nested record that must be an [`IndexPq`].
fn read_pq_index(c: &mut Cursor<'_>) -> Result<IndexPq> {
    c.enter()?;
    let fourcc = c.fourcc()?;
    if !matches!(&fourcc, b"IxPq" | b"IxPQ" | b"IxPo") {
        return Err(c.err(format!(
            "expected a PQ index record, found {:?}",
            String::from_utf8_lossy(&fourcc)
        )));
    }
    let r = read_pq_body(c, &fourcc);
    c.leave();
    r
}

fn read_pq_body(c: &mut Cursor<'_>, fourcc: &[u8; 4]) -> Result<IndexPq> {
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
        index.search_type = match c.i32("PQ search type")? {
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
        if c.bool("encode_signs")? {
            return Err(c.err("PQ with encode_signs is not supported"));
        }
        index.polysemous_ht = c.i32_in("polysemous_ht", i32::MAX as usize)? as u32;
    }
    Ok(index)
}

fn read_scalar_quantizer(c: &mut Cursor<'_>, d: usize) -> Result<ScalarQuantizer> {
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

/// A nested record that must be an [`IndexScalarQuantizer`].
fn read_sq(c: &mut Cursor<'_>) -> Result<IndexScalarQuantizer> {
    c.enter()?;
    let fourcc = c.fourcc()?;
    if &fourcc != b"IxSQ" {
        return Err(c.err(format!(
            "expected a scalar-quantizer index record, found {:?}",
            String::from_utf8_lossy(&fourcc)
        )));
    }
    let r = read_sq_body(c);
    c.leave();
    r
}

fn read_sq_body(c: &mut Cursor<'_>) -> Result<IndexScalarQuantizer> {
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

fn read_pretransform_body(c: &mut Cursor<'_>) -> Result<Box<dyn Index>> {
    let h = read_header(c)?;
    let nt = c.i32_in("transform chain length", super::cursor::MAX_DEPTH)?;
    let mut chain = Vec::with_capacity(nt);
    for _ in 0..nt {
        c.enter()?;
        chain.push(read_transform(c)?);
        c.leave();
    }
    let sub = read_index(c)?;
    let mut d = h.d;
    for t in &chain {
        if t.d_in() != d {
            return Err(c.err(format!(
                "transform {} takes {} dimensions but receives {d}",
                t.description(),
                t.d_in()
            )));
        }
        d = t.d_out();
    }
    if sub.dim() != d {
        return Err(c.err(format!(
            "the transforms output {d} dimensions but the index takes {}",
            sub.dim()
        )));
    }
    check_ntotal(c, &h, sub.ntotal(), "the transformed index")?;
    let Some(last) = chain.pop() else {
        // An empty chain transforms nothing: the index itself serves.
        return Ok(sub);
    };
    let mut pt = IndexPreTransform::new(last, sub).map_err(|e| c.err(e))?;
    while let Some(t) = chain.pop() {
        pt.prepend_transform(t).map_err(|e| c.err(e))?;
    }
    Ok(Box::new(pt))
}

fn read_hnsw_body<S: HnswStorage>(
    c: &mut Cursor<'_>,
    read_storage: fn(&mut Cursor<'_>) -> Result<S>,
) -> Result<IndexHnsw<S>> {
    let h = read_header(c)?;
    let assign_probas = c.vec::<f64>("HNSW assign_probas")?;
    let cum = c.vec::<i32>("HNSW cum_nneighbor_per_level")?;
    let levels = c.vec_len::<i32>("HNSW levels", h.ntotal)?;
    let offsets = c.vec_len::<u64>("HNSW offsets", h.ntotal + 1)?;
    // Read in place: the graph copies the links into its own layout as it checks them.
    let neighbors = c.raw_vec("HNSW neighbors", 4)?;
    let entry_point = c.i32("HNSW entry_point")?;
    let max_level = c.i32("HNSW max_level")?;
    let ef_construction = c.i32_in("HNSW efConstruction", i32::MAX as usize)?;
    let ef_search = c.i32_in("HNSW efSearch", i32::MAX as usize)?;
    c.i32("HNSW upper_beam")?;
    let hnsw = Hnsw::from_neighbor_ids(
        assign_probas,
        cum,
        levels,
        offsets,
        &LeI32s(neighbors),
        entry_point,
        max_level,
        ef_construction,
        ef_search,
    )
    .map_err(|e| c.err(e))?;
    if c.remaining() >= 4 && c.peek_fourcc() == Some(*b"null") {
        return Err(c.err(
            "the HNSW graph was saved without its vectors (IO_FLAG_SKIP_STORAGE); fathom \
             needs them to search",
        ));
    }
    let storage = read_storage(c)?;
    check_nested(c, &h, &storage, "the HNSW storage")?;
    if storage.metric() != h.metric {
        return Err(c.err(format!(
            "HNSW storage compares with {:?}, the index with {:?}",
            storage.metric(),
            h.metric
        )));
    }
    IndexHnsw::from_parts(hnsw, storage).map_err(|e| c.err(e))
}

/// What every IVF record starts with.
struct IvfHeader {
    h: Header,
    nlist: usize,
    nprobe: usize,
    quantizer: Box<dyn Index>,
    direct_map: DirectMapType,
    /// The legacy `Iv…` records (Faiss before 2018) keep each list's ids here and its
    /// codes after the class's fields, with no inverted-lists record.
    legacy: Option<LegacyLists>,
}

struct LegacyLists {
    ids: Vec<Vec<i64>>,
    /// `IvFl` stored the codes as vectors of floats.
    float_codes: bool,
}

fn read_ivf_header(c: &mut Cursor<'_>) -> Result<IvfHeader> {
    read_ivf_header_with(c, false)
}

fn read_ivf_header_with(c: &mut Cursor<'_>, legacy: bool) -> Result<IvfHeader> {
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
    let direct_map = match c.u8("direct map type")? {
        0 => DirectMapType::NoMap,
        1 => DirectMapType::Array,
        2 => DirectMapType::Hashtable,
        t => return Err(c.err(format!("direct map type {t}; expected 0, 1 or 2"))),
    };
    // The map itself is rebuilt from the lists (and checked against them).
    let array = c.vec::<i64>("direct map array")?;
    if direct_map == DirectMapType::Array && array.len() != h.ntotal {
        return Err(c.err(format!(
            "array direct map has {} entries for ntotal = {}",
            array.len(),
            h.ntotal
        )));
    }
    if direct_map == DirectMapType::Hashtable {
        let pairs = c.vec::<[i64; 2]>("direct map hashtable")?;
        if pairs.len() > h.ntotal {
            return Err(c.err("direct map hashtable has more entries than vectors"));
        }
    }
    Ok(IvfHeader {
        h,
        nlist,
        nprobe,
        quantizer,
        direct_map,
        legacy,
    })
}

/// Reads the inverted lists of an IVF record and assembles the index.
fn finish_ivf<C: IvfCodec + 'static>(
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
        None => read_lists(c, nlist, codec.code_size(), &|| codec.new_lists(nlist))?,
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

/// Empty lists of the kind an IVF codec scans.
type NewLists<'a> = &'a dyn Fn() -> Box<dyn InvertedLists>;

fn read_lists(
    c: &mut Cursor<'_>,
    nlist: usize,
    code_size: usize,
    new_lists: NewLists<'_>,
) -> Result<Box<dyn InvertedLists>> {
    c.enter()?;
    let r = read_lists_body(c, nlist, code_size, new_lists);
    c.leave();
    r
}

fn read_lists_body(
    c: &mut Cursor<'_>,
    nlist: usize,
    code_size: usize,
    new_lists: NewLists<'_>,
) -> Result<Box<dyn InvertedLists>> {
    let fourcc = c.fourcc()?;
    match &fourcc {
        b"ilar" => {
            let layout = read_array_layout(c, nlist, code_size)?;
            let mut lists = new_lists();
            match &c.shared {
                // Lists in the file's own layout can be served from the mapping.
                Some(bytes) if lists.block_layout().is_none() => {
                    let lists: Vec<(usize, usize, usize)> = layout
                        .lists
                        .iter()
                        .map(|&(l, size, at)| (l, at, size))
                        .collect();
                    Ok(Box::new(
                        MappedInvertedLists::new(bytes.clone(), nlist, code_size, &lists)
                            .map_err(|e| c.err(e))?,
                    ))
                }
                _ => {
                    fill_lists(&mut *lists, c.buffer(), &layout).map_err(|e| c.err(e))?;
                    Ok(lists)
                }
            }
        }
        b"ilbl" => {
            let mut lists = new_lists();
            read_block_lists(c, nlist, code_size, &mut *lists)?;
            Ok(lists)
        }
        b"ilod" => read_ondisk_lists(c, nlist, code_size),
        b"il00" => Err(c.err(
            "the inverted lists are not stored in this file (written with \
             IO_FLAG_SKIP_IVF_DATA)",
        )),
        other => Err(c.err(format!(
            "unknown or unsupported inverted lists {:?}; fathom reads ilar",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// An `ilod` record: where each list lies in a separate data file, which is opened
/// (read-only when the index is memory-mapped read-only).
fn read_ondisk_lists(
    c: &mut Cursor<'_>,
    nlist: usize,
    code_size: usize,
) -> Result<Box<dyn InvertedLists>> {
    let file_nlist = c.u64("on-disk lists nlist")?;
    let file_cs = c.u64("on-disk lists code_size")?;
    if file_nlist != nlist as u64 || file_cs != code_size as u64 {
        return Err(c.err(format!(
            "on-disk lists hold {file_nlist} lists of {file_cs}-byte codes; the index has \
             {nlist} lists of {code_size}-byte codes"
        )));
    }
    let lists = c.vec_len::<[u64; 3]>("on-disk list placements", nlist)?;
    // The free-slot list is recomputed from the placements (Faiss's is not exact).
    c.vec::<[u64; 2]>("on-disk free slots")?;
    let name = c.vec::<u8>("on-disk data file name")?;
    let totsize = c.u64_in("on-disk data size", isize::MAX as usize)?;
    let lists: Vec<OnDiskList> = lists
        .iter()
        .map(|&[size, capacity, offset]| {
            let f = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
            OnDiskList {
                size: f(size),
                capacity: f(capacity),
                offset: f(offset),
            }
        })
        .collect();
    let name =
        std::str::from_utf8(&name).map_err(|_| c.err("the on-disk data file name is not UTF-8"))?;
    let path = resolve_data_file(c, name);
    let read_only = c.shared.is_some();
    let lists = OnDiskInvertedLists::open(&path, code_size, lists, totsize, read_only)
        .map_err(|e| c.err(e))?;
    Ok(Box::new(lists))
}

/// The data file as named in the record when it exists there; otherwise the file of that
/// name beside the index file (Faiss's `IO_FLAG_ONDISK_SAME_DIR`), so an index and its
/// data moved together still open.
fn resolve_data_file(c: &Cursor<'_>, name: &str) -> std::path::PathBuf {
    let given = std::path::PathBuf::from(name);
    if given.exists() {
        return given;
    }
    match (&c.base_dir, given.file_name()) {
        (Some(dir), Some(file)) if dir.join(file).exists() => dir.join(file),
        _ => given,
    }
}

/// An `ilbl` record (fast-scan lists in Faiss's block layout), unpacked into `lists`.
fn read_block_lists(
    c: &mut Cursor<'_>,
    nlist: usize,
    code_size: usize,
    lists: &mut dyn InvertedLists,
) -> Result<()> {
    let file_nlist = c.u64("block lists nlist")?;
    // Faiss records block lists' code size as "invalid" (SIZE_MAX): codes only exist
    // packed in blocks.
    let file_cs = c.u64("block lists code_size")?;
    if file_nlist != nlist as u64 || (file_cs != code_size as u64 && file_cs != u64::MAX) {
        return Err(c.err(format!(
            "block lists hold {file_nlist} lists of {file_cs}-byte codes; the index has \
             {nlist} lists of {code_size}-byte codes"
        )));
    }
    let bbs = c.u64_in("codes per block", 1 << 16)?;
    let block_size = c.u64_in("block size", 1 << 24)?;
    if bbs == 0 || !bbs.is_multiple_of(32) || block_size != bbs * code_size {
        return Err(c.err(format!(
            "blocks of {bbs} codes in {block_size} bytes; expected a multiple of 32 codes of \
             {code_size} bytes each"
        )));
    }
    for l in 0..nlist {
        let ids = c.vec::<i64>("list ids")?;
        let blocks = c.vec_len::<u8>(
            "list blocks",
            super::fastscan::packed_len(ids.len(), code_size, bbs),
        )?;
        let codes = super::fastscan::unpack(&blocks, ids.len(), code_size, bbs);
        lists.add_entries(l, &ids, &codes).map_err(|e| c.err(e))?;
    }
    Ok(())
}

fn read_pq_fastscan_body(c: &mut Cursor<'_>) -> Result<IndexPqFastScan> {
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
    let codes = super::fastscan::unpack(&blocks, h.ntotal, cs, bbs);
    index.add_codes(&codes).map_err(|e| c.err(e))?;
    index.set_bbs(bbs).map_err(|e| c.err(e))?;
    Ok(index)
}
