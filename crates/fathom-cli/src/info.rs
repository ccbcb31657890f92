//! `fathom info FILE`: what a Faiss-format index file holds.

use std::path::Path;

use fathom_core::Result;
use fathom_index::ivf::{DynIvf, IvfCodecView};
use fathom_index::{Index, IndexView};
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

fn ivf(i: &dyn DynIvf, out: &mut Vec<String>) {
    if let Some(od) = i.invlists().as_on_disk() {
        out.push(format!(
            "lists on disk in {} ({}{})",
            od.path().display(),
            human_bytes(od.totsize()),
            if od.is_read_only() { ", read-only" } else { "" }
        ));
    }
    out.push(format!("nlist {}", i.nlist()));
    out.push(format!("nprobe {}", i.nprobe()));
    out.push(format!("by_residual {}", i.by_residual()));
    out.push(format!("direct map {:?}", i.direct_map().kind()));
    out.push(format!(
        "list imbalance {:.2}",
        i.invlists().stats().imbalance_factor
    ));
    match i.codec() {
        IvfCodecView::Pq(c) => out.push(format!("PQ {}x{}", c.pq().m(), c.pq().nbits())),
        IvfCodecView::PqFastScan(c) => out.push(format!("PQ {}x4fs", c.pq().m())),
        IvfCodecView::ScalarQuantizer(c) => {
            out.push(format!("SQ{}", c.sq().qtype().factory_name()))
        }
        IvfCodecView::RaBitQ(c) => {
            out.push(format!("RaBitQ {} bits", c.rabitq().nb_bits()));
            out.push(format!("qb {}", c.qb));
        }
        IvfCodecView::RaBitQFastScan(c) => {
            out.push(format!("RaBitQ fast-scan {} bits", c.rabitq().nb_bits()));
            out.push(format!("qb {}", c.qb()));
        }
        IvfCodecView::AqFastScan(c) => {
            out.push(format!(
                "fast-scan additive quantizer nbits {:?}",
                c.aq().nbits()
            ));
            out.push(format!("norm scale {}", c.norm_scale()));
        }
        IvfCodecView::AdditiveQuantizer(c) => {
            out.push(format!("additive quantizer nbits {:?}", c.aq().nbits()))
        }
        IvfCodecView::Flat(_) | IvfCodecView::Other => {}
    }
}

/// The run-time and structural parameters worth knowing, outermost first.
fn parameters(index: &dyn Index, out: &mut Vec<String>) {
    match index.view() {
        IndexView::Ivf(i) => ivf(i, out),
        IndexView::IvfPqr(i) => {
            ivf(i.ivf(), out);
            out.push(format!("refine PQ {}x8", i.refine_pq().m()));
            out.push(format!("k_factor {}", i.k_factor));
        }
        IndexView::PqFastScan(p) => out.push(format!("PQ {}x4fs", p.pq().m())),
        IndexView::Hnsw { graph, storage } => {
            out.push(format!("M {}", graph.m()));
            out.push(format!("efConstruction {}", graph.ef_construction));
            out.push(format!("efSearch {}", graph.ef_search));
            out.push(format!("levels {}", graph.max_level() + 1));
            parameters(storage, out);
        }
        IndexView::Pq(p) => {
            out.push(format!("PQ {}x{}", p.pq().m(), p.pq().nbits()));
            out.push(format!("search type {:?}", p.search_type()));
        }
        IndexView::ScalarQuantizer(q) => out.push(format!("SQ{}", q.sq().qtype().factory_name())),
        IndexView::AdditiveQuantizer(a) => {
            out.push(format!("additive quantizer nbits {:?}", a.aq().nbits()));
            out.push(format!("search type {:?}", a.aq().search_type()));
        }
        IndexView::AqFastScan(f) => {
            out.push(format!("additive quantizer nbits {:?}", f.aq().nbits()));
            out.push(format!("norm scale {}", f.norm_scale()));
        }
        IndexView::AdditiveCoarseQuantizer(q) => {
            out.push(format!(
                "residual coarse quantizer nbits {:?}",
                q.aq().nbits()
            ));
            out.push(format!("beam factor {}", q.beam_factor));
        }
        IndexView::RaBitQ(r) => {
            out.push(format!("RaBitQ {} bits", r.rabitq().nb_bits()));
            out.push(format!("qb {}", r.qb()));
        }
        IndexView::RaBitQFastScan(r) => {
            out.push(format!("RaBitQ fast-scan {} bits", r.rabitq().nb_bits()));
            out.push(format!("qb {}", r.qb()));
        }
        IndexView::Lsh(l) => {
            out.push(format!("nbits {}", l.encoder().nbits()));
            out.push(format!("rotate {}", l.encoder().rotate_data()));
        }
        IndexView::Refine(r) => {
            out.push(format!("k_factor {}", r.k_factor));
            parameters(r.base(), out);
        }
        IndexView::IdMap { inner, .. } => parameters(inner, out),
        IndexView::PreTransform { transforms, inner } => {
            let chain: Vec<String> = transforms.iter().map(|t| t.description()).collect();
            out.push(format!("transforms {}", chain.join(" → ")));
            parameters(inner, out);
        }
        IndexView::Shards(s) => out.push(format!("shards {}", s.shards().len())),
        IndexView::MultiIndexQuantizer(q) => {
            out.push(format!("PQ {}x{}", q.pq().m(), q.pq().nbits()))
        }
        IndexView::Flat(_) | IndexView::Other => {}
    }
}
