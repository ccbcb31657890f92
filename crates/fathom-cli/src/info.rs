//! `fathom info FILE`: what a Faiss-format index file holds.

use std::path::Path;

use fathom_core::Result;
use fathom_index::hnsw::HnswStorage;
use fathom_index::ivf::IvfCodec;
use fathom_index::ivf::{IvfFlat, IvfPq, IvfPqFastScan, IvfScalarQuantizer};
use fathom_index::{
    Index, IndexHnsw, IndexIvf, IndexIvfPqr, IndexLsh, IndexPq, IndexRefine, IndexScalarQuantizer,
};
use fathom_invlists::InvertedLists;

/// Prints the file's records, the index's shape, its parameters and its size.
pub fn run(path: &Path) -> Result<()> {
    let (index, records) = fathom_io::faiss::read_index_file_records(path)?;
    let size = std::fs::metadata(path)
        .map_err(|e| fathom_core::Error::io(path, e))?
        .len() as usize;
    outln!("file        {} ({})", path.display(), human_bytes(size));
    match fathom_index::reverse_index_factory(&*index) {
        Ok(s) => outln!("index       {s}"),
        Err(_) => outln!(
            "index       {} (no factory string builds this structure)",
            index.description()
        ),
    }
    outln!(
        "shape       d = {}, {} vectors, metric {}, {}",
        index.dim(),
        index.ntotal(),
        index.metric(),
        if index.is_trained() {
            "trained"
        } else {
            "not trained"
        }
    );
    outln!("records");
    for r in records.iter().filter(|r| !r.faiss_class().is_empty()) {
        outln!(
            "  {}{}  {:<28} at byte {}",
            "  ".repeat(r.depth.saturating_sub(1)),
            r.code(),
            r.faiss_class(),
            r.offset
        );
    }
    let mut params = Vec::new();
    parameters(&*index, &mut params);
    if !params.is_empty() {
        outln!("parameters  {}", params.join(", "));
    }
    if index.ntotal() > 0 {
        outln!(
            "memory      {:.1} bytes per vector in the index file",
            size as f64 / index.ntotal() as f64
        );
    }
    Ok(())
}

fn human_bytes(n: usize) -> String {
    let n = n as f64;
    match n {
        n if n >= (1u64 << 30) as f64 => format!("{:.2} GiB", n / (1u64 << 30) as f64),
        n if n >= (1 << 20) as f64 => format!("{:.2} MiB", n / (1 << 20) as f64),
        n if n >= 1024.0 => format!("{:.1} KiB", n / 1024.0),
        n => format!("{n} bytes"),
    }
}

fn ivf<C: IvfCodec + 'static>(i: &IndexIvf<C>, out: &mut Vec<String>) {
    if let Some(od) = i
        .invlists()
        .as_any()
        .and_then(|a| a.downcast_ref::<fathom_invlists::OnDiskInvertedLists>())
    {
        out.push(format!(
            "lists on disk in {} ({}{})",
            od.path().display(),
            human_bytes(od.totsize()),
            if od.is_read_only() { ", read-only" } else { "" }
        ));
    }
    out.push(format!("nlist {}", i.nlist()));
    out.push(format!("nprobe {}", i.nprobe));
    out.push(format!("by_residual {}", i.by_residual));
    out.push(format!("direct map {:?}", i.direct_map().kind()));
    out.push(format!(
        "list imbalance {:.2}",
        i.invlists().stats().imbalance_factor
    ));
}

fn hnsw<S: HnswStorage>(h: &IndexHnsw<S>, out: &mut Vec<String>) {
    let g = h.hnsw();
    out.push(format!("M {}", g.m()));
    out.push(format!("efConstruction {}", g.ef_construction));
    out.push(format!("efSearch {}", g.ef_search));
    out.push(format!("levels {}", g.max_level() + 1));
}

/// The run-time and structural parameters worth knowing, outermost first.
fn parameters(index: &dyn Index, out: &mut Vec<String>) {
    let any = index.as_any();
    if let Some(i) = any.downcast_ref::<IndexIvf<IvfFlat>>() {
        ivf(i, out);
    } else if let Some(i) = any.downcast_ref::<IndexIvf<IvfPq>>() {
        ivf(i, out);
        out.push(format!(
            "PQ {}x{}",
            i.codec().pq().m(),
            i.codec().pq().nbits()
        ));
    } else if let Some(i) = any.downcast_ref::<IndexIvf<IvfPqFastScan>>() {
        ivf(i, out);
        out.push(format!("PQ {}x4fs", i.codec().pq().m()));
    } else if let Some(p) = any.downcast_ref::<fathom_index::IndexPqFastScan>() {
        out.push(format!("PQ {}x4fs", p.pq().m()));
    } else if let Some(i) = any.downcast_ref::<IndexIvf<IvfScalarQuantizer>>() {
        ivf(i, out);
        out.push(format!("SQ{}", i.codec().sq().qtype().factory_name()));
    } else if let Some(i) = any.downcast_ref::<IndexIvfPqr>() {
        parameters(i.ivf(), out);
        out.push(format!("refine PQ {}x8", i.refine_pq().m()));
        out.push(format!("k_factor {}", i.k_factor));
    } else if let Some(h) = any.downcast_ref::<IndexHnsw<fathom_index::IndexFlat>>() {
        hnsw(h, out);
    } else if let Some(h) = any.downcast_ref::<IndexHnsw<IndexScalarQuantizer>>() {
        hnsw(h, out);
        parameters(h.storage(), out);
    } else if let Some(h) = any.downcast_ref::<IndexHnsw<IndexPq>>() {
        hnsw(h, out);
        parameters(h.storage(), out);
    } else if let Some(p) = any.downcast_ref::<IndexPq>() {
        out.push(format!("PQ {}x{}", p.pq().m(), p.pq().nbits()));
        out.push(format!("search type {:?}", p.search_type));
    } else if let Some(q) = any.downcast_ref::<IndexScalarQuantizer>() {
        out.push(format!("SQ{}", q.sq().qtype().factory_name()));
    } else if let Some(l) = any.downcast_ref::<IndexLsh>() {
        out.push(format!("nbits {}", l.encoder().nbits()));
        out.push(format!("rotate {}", l.encoder().rotate_data()));
    } else if let Some(r) = any.downcast_ref::<IndexRefine>() {
        out.push(format!("k_factor {}", r.k_factor));
        parameters(r.base(), out);
    } else if let Some(m) = any.downcast_ref::<fathom_index::IndexIdMap>() {
        parameters(&**m.inner(), out);
    } else if let Some(m) = any.downcast_ref::<fathom_index::IndexIdMap2>() {
        parameters(&**m.inner(), out);
    } else if let Some(p) = any.downcast_ref::<fathom_index::IndexPreTransform>() {
        let chain: Vec<String> = p.transforms().iter().map(|t| t.description()).collect();
        out.push(format!("transforms {}", chain.join(" → ")));
        parameters(&**p.index(), out);
    }
}
