//! `IHNf` / `IHNs` / `IHNp`: HNSW graphs over flat, SQ or PQ storage, read and written.

use fathom_core::Result;
use fathom_index::hnsw::{Hnsw, HnswStorage, LeI32s};
use fathom_index::{Index, IndexHnsw, IndexView};

use super::cursor::Cursor;
use super::header::{check_nested, read_header, unsupported, write_header};
use super::sink::Sink;
use super::write::write_index;

/// Faiss's `HNSW` struct (`read_HNSW`), for an index of `ntotal` vectors.
pub(super) fn read_hnsw_graph(c: &mut Cursor<'_>, ntotal: usize) -> Result<Hnsw> {
    let assign_probas = c.vec::<f64>("HNSW assign_probas")?;
    let cum = c.vec::<i32>("HNSW cum_nneighbor_per_level")?;
    let levels = c.vec_len::<i32>("HNSW levels", ntotal)?;
    let offsets = c.vec_len::<u64>("HNSW offsets", ntotal + 1)?;
    // Read in place: the graph copies the links into its own layout as it checks them.
    let neighbors = c.raw_vec("HNSW neighbors", 4)?;
    let entry_point = c.i32("HNSW entry_point")?;
    let max_level = c.i32("HNSW max_level")?;
    let ef_construction = c.i32_in("HNSW efConstruction", i32::MAX as usize)?;
    let ef_search = c.i32_in("HNSW efSearch", i32::MAX as usize)?;
    c.i32("HNSW upper_beam")?;
    Hnsw::from_neighbor_ids(
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
    .map_err(|e| c.err(e))
}

/// Faiss's `HNSW` struct (`write_HNSW`).
pub(super) fn write_hnsw_graph(s: &mut Sink<'_>, g: &Hnsw) -> Result<()> {
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
    s.i32(1)
}

pub(super) fn read_hnsw_body<S: HnswStorage>(
    c: &mut Cursor<'_>,
    read_storage: fn(&mut Cursor<'_>) -> Result<S>,
) -> Result<IndexHnsw<S>> {
    let h = read_header(c)?;
    let hnsw = read_hnsw_graph(c, h.ntotal)?;
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

/// `IHNf` / `IHNs` / `IHNp`, by the storage's kind.
pub(super) fn write_hnsw(
    s: &mut Sink<'_>,
    index: &dyn Index,
    g: &Hnsw,
    storage: &dyn Index,
) -> Result<()> {
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
    s.fourcc(fourcc)?;
    write_header(s, index)?;
    write_hnsw_graph(s, g)?;
    write_index(s, storage)
}
