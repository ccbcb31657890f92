//! Writing index records.

use fathom_core::{Error, MetricType, Result};
use fathom_index::hnsw::HnswStorage;
use fathom_index::ivf::{DirectMapType, IvfCodec};
use fathom_index::{
    Index, IndexFlat, IndexHnsw, IndexIdMap, IndexIdMap2, IndexIvf, IndexIvfFlat, IndexIvfPq,
    IndexIvfPqFastScan, IndexIvfPqr, IndexIvfScalarQuantizer, IndexLsh, IndexPq, IndexPqFastScan,
    IndexPreTransform, IndexRefine, IndexScalarQuantizer, IndexShards, MultiIndexQuantizer,
    PqSearchType,
};
use fathom_quant::{ProductQuantizer, ScalarQuantizer};

use super::invlists::write_lists;
use super::sink::Sink;
use super::transform::write_transform;

pub(crate) fn unsupported(what: &str) -> Error {
    Error::Unsupported(format!("{what} has no Faiss file form fathom can write"))
}

/// The header Faiss writes before every index's own fields.
fn write_header(s: &mut Sink<'_>, index: &dyn Index) -> Result<()> {
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

fn write_pq(s: &mut Sink<'_>, pq: &ProductQuantizer) -> Result<()> {
    s.usize(pq.d())?;
    s.usize(pq.m())?;
    s.usize(pq.nbits())?;
    s.vec(pq.centroids())
}

fn write_sq(s: &mut Sink<'_>, sq: &ScalarQuantizer) -> Result<()> {
    s.i32(sq.qtype().code() as i32)?;
    s.i32(sq.rangestat as i32)?;
    s.f32(sq.rangestat_arg)?;
    s.usize(sq.d())?;
    s.usize(sq.code_size())?;
    s.vec(sq.trained())
}

fn write_flat(s: &mut Sink<'_>, f: &IndexFlat) -> Result<()> {
    s.fourcc(match f.metric() {
        MetricType::L2 => b"IxF2",
        MetricType::InnerProduct => b"IxFI",
        _ => b"IxFl",
    })?;
    write_header(s, f)?;
    s.vec(f.vectors())
}

fn write_pq_index(s: &mut Sink<'_>, p: &IndexPq) -> Result<()> {
    let search_type = match p.search_type {
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
    s.i32(p.polysemous_ht as i32)
}

fn write_sq_index(s: &mut Sink<'_>, q: &IndexScalarQuantizer) -> Result<()> {
    s.fourcc(b"IxSQ")?;
    write_header(s, q)?;
    write_sq(s, q.sq())?;
    s.vec(q.codes())
}

fn write_lsh(s: &mut Sink<'_>, l: &IndexLsh) -> Result<()> {
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

fn write_hnsw<S: HnswStorage>(
    s: &mut Sink<'_>,
    fourcc: &[u8; 4],
    index: &IndexHnsw<S>,
) -> Result<()> {
    let g = index.hnsw();
    s.fourcc(fourcc)?;
    write_header(s, index)?;
    s.vec(g.assign_probas())?;
    s.vec(g.cum_nneighbor_per_level())?;
    s.vec(g.levels())?;
    s.vec(&g.offsets())?;
    s.vec(&g.neighbors())?;
    s.i32(g.entry_point())?;
    s.i32(g.max_level())?;
    s.i32(g.ef_construction as i32)?;
    s.i32(g.ef_search as i32)?;
    // upper_beam: unused, written as 1 since Faiss 1.9.
    s.i32(1)?;
    write_index(s, index.storage())
}

/// The IVF header: the index header, nlist, nprobe, the quantizer, the direct map.
fn write_ivf_header<C: IvfCodec + 'static>(
    s: &mut Sink<'_>,
    fourcc: &[u8; 4],
    index: &IndexIvf<C>,
    keep_direct_map: bool,
) -> Result<()> {
    s.fourcc(fourcc)?;
    write_header(s, index)?;
    s.usize(index.nlist())?;
    s.usize(index.nprobe)?;
    write_index(s, index.quantizer())?;
    let dm = index.direct_map();
    if !keep_direct_map {
        return {
            s.u8(DirectMapType::NoMap as u8)?;
            s.vec::<i64>(&[])
        };
    }
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

/// `keep_direct_map` is false for the IVF-PQ inside an IVF-PQR: fathom keeps an array map
/// there for re-ranking, which Faiss does not store (it is rebuilt on load).
fn write_ivf_pq_body(
    s: &mut Sink<'_>,
    fourcc: &[u8; 4],
    index: &IndexIvfPq,
    keep_direct_map: bool,
) -> Result<()> {
    write_ivf_header(s, fourcc, index, keep_direct_map)?;
    s.bool(index.by_residual)?;
    s.usize(index.codec().code_size())?;
    write_pq(s, index.codec().pq())?;
    write_lists(s, index.invlists())
}

/// One index record, fourcc included.
pub(crate) fn write_index(s: &mut Sink<'_>, index: &dyn Index) -> Result<()> {
    let any = index.as_any();
    if let Some(f) = any.downcast_ref::<IndexFlat>() {
        write_flat(s, f)
    } else if let Some(p) = any.downcast_ref::<IndexPq>() {
        write_pq_index(s, p)
    } else if let Some(q) = any.downcast_ref::<IndexScalarQuantizer>() {
        write_sq_index(s, q)
    } else if let Some(l) = any.downcast_ref::<IndexLsh>() {
        write_lsh(s, l)
    } else if let Some(m) = any.downcast_ref::<IndexIdMap>() {
        write_id_map(s, b"IxMp", index, &**m.inner(), m.id_map())
    } else if let Some(m) = any.downcast_ref::<IndexIdMap2>() {
        write_id_map(s, b"IxM2", index, &**m.inner(), m.id_map())
    } else if let Some(m) = any.downcast_ref::<IndexIdMap<IndexFlat>>() {
        write_id_map(s, b"IxMp", index, m.inner(), m.id_map())
    } else if let Some(m) = any.downcast_ref::<IndexIdMap2<IndexFlat>>() {
        write_id_map(s, b"IxM2", index, m.inner(), m.id_map())
    } else if let Some(p) = any.downcast_ref::<IndexPreTransform>() {
        write_pretransform(s, index, p.transforms(), &**p.index())
    } else if let Some(p) = any.downcast_ref::<IndexPreTransform<IndexFlat>>() {
        write_pretransform(s, index, p.transforms(), p.index())
    } else if let Some(r) = any.downcast_ref::<IndexRefine>() {
        s.fourcc(b"IxRF")?;
        write_header(s, index)?;
        write_index(s, r.base())?;
        write_index(s, r.refine())?;
        s.f32(r.k_factor)
    } else if let Some(q) = any.downcast_ref::<MultiIndexQuantizer>() {
        s.fourcc(b"Imiq")?;
        write_header(s, index)?;
        write_pq(s, q.pq())
    } else if let Some(h) = any.downcast_ref::<IndexHnsw<IndexFlat>>() {
        write_hnsw(s, b"IHNf", h)
    } else if let Some(h) = any.downcast_ref::<IndexHnsw<IndexScalarQuantizer>>() {
        write_hnsw(s, b"IHNs", h)
    } else if let Some(h) = any.downcast_ref::<IndexHnsw<IndexPq>>() {
        write_hnsw(s, b"IHNp", h)
    } else if let Some(ivf) = any.downcast_ref::<IndexIvfFlat>() {
        write_ivf_header(s, b"IwFl", ivf, true)?;
        write_lists(s, ivf.invlists())
    } else if let Some(ivf) = any.downcast_ref::<IndexIvfScalarQuantizer>() {
        write_ivf_header(s, b"IwSq", ivf, true)?;
        write_sq(s, ivf.codec().sq())?;
        s.usize(ivf.codec().code_size())?;
        s.bool(ivf.by_residual)?;
        write_lists(s, ivf.invlists())
    } else if let Some(ivf) = any.downcast_ref::<IndexIvfPq>() {
        write_ivf_pq_body(s, b"IwPQ", ivf, true)
    } else if let Some(r) = any.downcast_ref::<IndexIvfPqr>() {
        write_ivf_pq_body(s, b"IwQR", r.ivf(), false)?;
        write_pq(s, r.refine_pq())?;
        s.vec(r.refine_codes())?;
        s.f32(r.k_factor)
    } else if let Some(f) = any.downcast_ref::<IndexPqFastScan>() {
        let cs = f.pq().code_size();
        let codes: Vec<u8> = (0..f.ntotal()).flat_map(|i| f.code(i)).collect();
        s.fourcc(b"IPfs")?;
        write_header(s, index)?;
        write_pq(s, f.pq())?;
        s.i32(0)?; // implem: let Faiss choose
        s.i32(f.bbs() as i32)?;
        s.i32(0)?; // qbs: Faiss's default
        s.usize(f.ntotal().next_multiple_of(f.bbs()))?;
        s.usize(2 * cs)?;
        s.vec(&super::fastscan::pack(&codes, cs, f.bbs()))
    } else if let Some(ivf) = any.downcast_ref::<IndexIvfPqFastScan>() {
        let cs = ivf.codec().code_size();
        write_ivf_header(s, b"IwPf", ivf, true)?;
        s.bool(ivf.by_residual)?;
        s.usize(cs)?;
        s.i32(ivf.codec().bbs() as i32)?;
        s.usize(2 * cs)?;
        s.i32(0)?; // implem
        s.usize(0)?; // qbs2
        write_pq(s, ivf.codec().pq())?;
        let lists = ivf.invlists();
        s.fourcc(b"ilbl")?;
        s.usize(lists.nlist())?;
        s.u64(u64::MAX)?; // Faiss's INVALID_CODE_SIZE: the codes exist only in blocks

        let bbs = ivf.codec().bbs();
        s.usize(bbs)?;
        s.usize(bbs * cs)?;
        for l in 0..lists.nlist() {
            s.vec(lists.ids(l))?;
            let codes: Vec<u8> = (0..lists.list_size(l))
                .flat_map(|o| lists.code(l, o).into_owned())
                .collect();
            s.vec(&super::fastscan::pack(&codes, cs, bbs))?;
        }
        Ok(())
    } else if any.downcast_ref::<IndexShards>().is_some() {
        Err(Error::Unsupported(
            "Faiss cannot store IndexShards in a file; write each shard on its own".into(),
        ))
    } else {
        Err(unsupported(&format!(
            "{} ({})",
            index.description(),
            std::any::type_name_of_val(any)
        )))
    }
}

fn write_id_map(
    s: &mut Sink<'_>,
    fourcc: &[u8; 4],
    outer: &dyn Index,
    inner: &dyn Index,
    ids: &[i64],
) -> Result<()> {
    s.fourcc(fourcc)?;
    write_header(s, outer)?;
    write_index(s, inner)?;
    s.vec(ids)
}

fn write_pretransform(
    s: &mut Sink<'_>,
    outer: &dyn Index,
    chain: &[Box<dyn fathom_linalg::VectorTransform>],
    inner: &dyn Index,
) -> Result<()> {
    s.fourcc(b"IxPT")?;
    write_header(s, outer)?;
    s.i32(chain.len() as i32)?;
    for t in chain {
        write_transform(s, &**t)?;
    }
    write_index(s, inner)
}
