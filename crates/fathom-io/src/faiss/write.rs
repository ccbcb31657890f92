//! Writing index records.

use fathom_core::{Error, MetricType, Result};
use fathom_index::hnsw::Hnsw;
use fathom_index::ivf::{DirectMapType, DynIvf, IvfCodec, IvfCodecView};
use fathom_index::{
    Index, IndexFlat, IndexLsh, IndexPq, IndexPqFastScan, IndexScalarQuantizer, IndexView,
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

fn write_hnsw(
    s: &mut Sink<'_>,
    fourcc: &[u8; 4],
    index: &dyn Index,
    g: &Hnsw,
    storage: &dyn Index,
) -> Result<()> {
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
    write_index(s, storage)
}

/// The IVF header: the index header, nlist, nprobe, the quantizer, the direct map.
fn write_ivf_header(
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

/// One index record, fourcc included.
pub(crate) fn write_index(s: &mut Sink<'_>, index: &dyn Index) -> Result<()> {
    match index.view() {
        IndexView::Flat(f) => write_flat(s, f),
        IndexView::Pq(p) => write_pq_index(s, p),
        IndexView::ScalarQuantizer(q) => write_sq_index(s, q),
        IndexView::Lsh(l) => write_lsh(s, l),
        IndexView::PqFastScan(f) => write_pq_fastscan(s, f),
        IndexView::IdMap {
            inner,
            ids,
            two_way,
        } => {
            s.fourcc(if two_way { b"IxM2" } else { b"IxMp" })?;
            write_header(s, index)?;
            write_index(s, inner)?;
            s.vec(ids)
        }
        IndexView::PreTransform { transforms, inner } => {
            s.fourcc(b"IxPT")?;
            write_header(s, index)?;
            s.i32(transforms.len() as i32)?;
            for t in transforms {
                write_transform(s, &**t)?;
            }
            write_index(s, inner)
        }
        IndexView::Refine(r) => {
            s.fourcc(b"IxRF")?;
            write_header(s, index)?;
            write_index(s, r.base())?;
            write_index(s, r.refine())?;
            s.f32(r.k_factor)
        }
        IndexView::MultiIndexQuantizer(q) => {
            s.fourcc(b"Imiq")?;
            write_header(s, index)?;
            write_pq(s, q.pq())
        }
        IndexView::Hnsw { graph, storage } => {
            let fourcc = match storage.view() {
                IndexView::Flat(_) => b"IHNf",
                IndexView::ScalarQuantizer(_) => b"IHNs",
                IndexView::Pq(_) => b"IHNp",
                _ => {
                    return Err(unsupported(&format!(
                        "an HNSW graph over {}",
                        storage.description()
                    )));
                }
            };
            write_hnsw(s, fourcc, index, graph, storage)
        }
        IndexView::Ivf(ivf) => write_ivf(s, ivf, false),
        IndexView::IvfPqr(r) => {
            write_ivf(s, r.ivf(), true)?;
            write_pq(s, r.refine_pq())?;
            s.vec(r.refine_codes())?;
            s.f32(r.k_factor)
        }
        IndexView::Shards(_) => Err(Error::Unsupported(
            "Faiss cannot store IndexShards in a file; write each shard on its own".into(),
        )),
        IndexView::Other => Err(unsupported(&format!(
            "{} ({})",
            index.description(),
            std::any::type_name_of_val(index)
        ))),
    }
}

fn write_pq_fastscan(s: &mut Sink<'_>, f: &IndexPqFastScan) -> Result<()> {
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
    s.vec(&super::fastscan::pack(&codes, cs, f.bbs()))
}

/// An IVF record of any codec. `in_pqr` marks the IVF-PQ that starts an IVF-PQR record:
/// it takes that record's fourcc, and its direct map — which fathom keeps there to
/// re-rank — is not stored (Faiss rebuilds it on load).
fn write_ivf(s: &mut Sink<'_>, ivf: &dyn DynIvf, in_pqr: bool) -> Result<()> {
    let header = |s: &mut Sink<'_>, fourcc: &[u8; 4]| write_ivf_header(s, fourcc, ivf, !in_pqr);
    match ivf.codec() {
        _ if in_pqr && !matches!(ivf.codec(), IvfCodecView::Pq(_)) => Err(unsupported(&format!(
            "an IVF-PQR over {}",
            ivf.description()
        ))),
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
            let lists = ivf.invlists();
            s.fourcc(b"ilbl")?;
            s.usize(lists.nlist())?;
            s.u64(u64::MAX)?; // Faiss's INVALID_CODE_SIZE: the codes exist only in blocks
            let bbs = c.bbs();
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
        }
        IvfCodecView::Other => Err(unsupported(&ivf.description())),
    }
}
