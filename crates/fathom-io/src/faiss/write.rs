//! Writing index records: [`Index::view`] says which family's writer (`flat`, `codes`,
//! `ivf`, `hnsw`, `wrappers`) writes the index — one exhaustive match, so a new index kind
//! is a compile error here until it has a record.

use fathom_core::{Error, Result};
use fathom_index::{Index, IndexView};

use super::header::unsupported;
use super::sink::Sink;
use super::{additive, codes, flat, hnsw, ivf, rabitq, wrappers};

/// One index record, fourcc included.
pub(crate) fn write_index(s: &mut Sink<'_>, index: &dyn Index) -> Result<()> {
    match index.view() {
        IndexView::Flat(f) => flat::write_flat(s, f),
        IndexView::Pq(p) => codes::write_pq_index(s, p),
        IndexView::ScalarQuantizer(q) => codes::write_sq_index(s, q),
        IndexView::Lsh(l) => codes::write_lsh(s, l),
        IndexView::PqFastScan(f) => codes::write_pq_fastscan(s, f),
        IndexView::RaBitQ(r) => rabitq::write_flat(s, r),
        IndexView::RaBitQFastScan(r) => rabitq::write_flat_fast_scan(s, r),
        IndexView::AdditiveQuantizer(a) => additive::write_flat(s, a),
        IndexView::AdditiveCoarseQuantizer(q) => additive::write_rcq(s, q),
        IndexView::AqFastScan(f) => additive::write_fast_scan(s, f),
        IndexView::IdMap {
            inner,
            ids,
            two_way,
        } => wrappers::write_id_map(s, index, inner, ids, two_way),
        IndexView::PreTransform { transforms, inner } => {
            wrappers::write_pretransform(s, index, transforms, inner)
        }
        IndexView::Refine(r) => wrappers::write_refine(s, r),
        IndexView::MultiIndexQuantizer(q) => ivf::write_multi_index(s, q),
        IndexView::Hnsw { graph, storage } => hnsw::write_hnsw(s, index, graph, storage),
        IndexView::Ivf(i) => ivf::write_ivf(s, i, false),
        IndexView::IvfPqr(r) => ivf::write_ivf_pqr(s, r),
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
