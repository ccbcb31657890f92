//! Moving indexes between the CPU and GPUs (Faiss's `index_cpu_to_gpu`,
//! `index_gpu_to_cpu`, `index_cpu_to_gpu_multiple`). A GPU index's CPU form is the index
//! fathom's persistence writes, so GPU indexes save and load through it.

use std::sync::Arc;

use fathom_core::{Error, Idx, Result};
use fathom_index::ivf::IvfCodecView;
use fathom_index::ivf::SubsetType;
use fathom_index::{
    Index, IndexIdMap, IndexIvfFlat, IndexIvfPq, IndexIvfPqFastScan, IndexIvfScalarQuantizer,
    IndexReplicas, IndexShards, IndexView, ShardIds,
};

use crate::flat::GpuIndexFlat;
use crate::ivf::{GpuIndexIvfFlat, GpuIndexIvfPq, GpuIndexIvfPqFastScan, GpuIndexIvfSq};
use crate::resources::GpuResources;

/// A GPU copy of `index`: `IndexFlat` (L2, IP) → [`GpuIndexFlat`], `IndexIvfFlat` →
/// [`GpuIndexIvfFlat`], `IndexIvfPq` (8-bit codes, M ≤ 64) → [`GpuIndexIvfPq`],
/// `IndexIvfScalarQuantizer` (8-bit codes) → [`GpuIndexIvfSq`], `IndexIvfPqFastScan` →
/// [`GpuIndexIvfPqFastScan`]. Other types are an error naming them.
pub fn index_cpu_to_gpu(res: Arc<GpuResources>, index: &dyn Index) -> Result<Box<dyn Index>> {
    match index.view() {
        IndexView::Flat(flat) => return Ok(Box::new(GpuIndexFlat::from_cpu(res, flat)?)),
        IndexView::Ivf(ivf)
            if matches!(
                ivf.codec(),
                IvfCodecView::Flat(_)
                    | IvfCodecView::Pq(_)
                    | IvfCodecView::ScalarQuantizer(_)
                    | IvfCodecView::PqFastScan(_)
            ) =>
        {
            // The GPU index owns its CPU form: give it a deep copy.
            let copy = fathom_io::faiss::clone_index(index)?;
            return into_gpu(res, copy);
        }
        _ => {}
    }
    Err(Error::Unsupported(format!(
        "{} has no GPU form (fathom's GPU indexes: Flat, IVF-Flat, IVF-PQ with 8- or 4-bit codes \
         (fast-scan too), IVF-SQ with 8-bit codes)",
        index.description()
    )))
}

fn into_gpu(res: Arc<GpuResources>, index: Box<dyn Index>) -> Result<Box<dyn Index>> {
    // Taking ownership of the concrete IVF index (the GPU index keeps it as its CPU form)
    // needs its type, which only a downcast of the box gives.
    let any: Box<dyn std::any::Any> = index;
    match any.downcast::<IndexIvfFlat>() {
        Ok(ivf) => Ok(Box::new(GpuIndexIvfFlat::from_cpu(res, *ivf)?)),
        Err(any) => match any.downcast::<IndexIvfPq>() {
            Ok(ivf) => Ok(Box::new(GpuIndexIvfPq::from_cpu(res, *ivf)?)),
            Err(any) => match any.downcast::<IndexIvfScalarQuantizer>() {
                Ok(ivf) => Ok(Box::new(GpuIndexIvfSq::from_cpu(res, *ivf)?)),
                Err(any) => match any.downcast::<IndexIvfPqFastScan>() {
                    Ok(ivf) => Ok(Box::new(GpuIndexIvfPqFastScan::from_cpu(res, *ivf)?)),
                    Err(_) => Err(Error::Unsupported("no GPU form for this index type".into())),
                },
            },
        },
    }
}

/// The CPU form of a GPU index (a copy); a CPU index is copied as it is.
pub fn index_gpu_to_cpu(index: &dyn Index) -> Result<Box<dyn Index>> {
    // GPU indexes live outside fathom-index, so its view knows them only as `Other`: they
    // are told apart by type here, in the crate that defines them.
    let any: &dyn std::any::Any = index;
    if let Some(g) = any.downcast_ref::<GpuIndexFlat>() {
        return Ok(Box::new(g.to_cpu()?));
    }
    if let Some(g) = any.downcast_ref::<GpuIndexIvfFlat>() {
        return fathom_io::faiss::clone_index(g.cpu());
    }
    if let Some(g) = any.downcast_ref::<GpuIndexIvfPq>() {
        return fathom_io::faiss::clone_index(g.cpu());
    }
    if let Some(g) = any.downcast_ref::<GpuIndexIvfSq>() {
        return fathom_io::faiss::clone_index(g.cpu());
    }
    if let Some(g) = any.downcast_ref::<GpuIndexIvfPqFastScan>() {
        return fathom_io::faiss::clone_index(g.cpu());
    }
    fathom_io::faiss::clone_index(index)
}

/// `index` sharded over several GPUs (Faiss's `index_cpu_to_gpu_multiple` with
/// `shard = true`): each GPU holds a part of the vectors and an [`IndexShards`] searches
/// them in parallel and merges. Flat indexes are split in id ranges, IVF indexes by
/// `id % n_gpus`.
pub fn index_cpu_to_gpu_multiple(
    resources: &[Arc<GpuResources>],
    index: &dyn Index,
) -> Result<IndexShards> {
    let n = resources.len();
    if n == 0 {
        return Err(Error::invalid(
            "index_cpu_to_gpu_multiple needs at least one GPU",
        ));
    }
    let mut shards = IndexShards::new(index.dim(), index.metric(), ShardIds::Explicit);
    let any: &dyn std::any::Any = index;
    if let IndexView::Flat(flat) = index.view() {
        let total = flat.ntotal();
        for (i, res) in resources.iter().enumerate() {
            let (a, b) = (total * i / n, total * (i + 1) / n);
            let mut part = IndexIdMap::new(Box::new(GpuIndexFlat::new(
                res.clone(),
                flat.dim(),
                flat.metric(),
            )?) as Box<dyn Index>);
            let ids: Vec<Idx> = (a as Idx..b as Idx).collect();
            part.add_with_ids(&flat.reconstruct_n(a as Idx, b - a)?, &ids)?;
            shards.add_shard(Box::new(part))?;
        }
        return Ok(shards);
    }
    macro_rules! split_ivf {
        ($cpu:ty, $gpu:ty) => {
            if let Some(ivf) = any.downcast_ref::<$cpu>() {
                for (i, res) in resources.iter().enumerate() {
                    let mut empty = fathom_io::faiss::clone_index(ivf)?;
                    empty.reset()?;
                    let any: Box<dyn std::any::Any> = empty;
                    let mut part = *any
                        .downcast::<$cpu>()
                        .map_err(|_| Error::invalid("a copy changed type"))?;
                    ivf.copy_subset_to(
                        &mut part,
                        SubsetType::IdMod {
                            modulus: n as Idx,
                            remainder: i as Idx,
                        },
                    )?;
                    shards.add_shard(Box::new(<$gpu>::from_cpu(res.clone(), part)?))?;
                }
                return Ok(shards);
            }
        };
    }
    split_ivf!(IndexIvfFlat, GpuIndexIvfFlat);
    split_ivf!(IndexIvfPq, GpuIndexIvfPq);
    split_ivf!(IndexIvfScalarQuantizer, GpuIndexIvfSq);
    split_ivf!(IndexIvfPqFastScan, GpuIndexIvfPqFastScan);
    Err(Error::Unsupported(format!(
        "{} has no GPU form (fathom's GPU indexes: Flat, IVF-Flat, IVF-PQ with 8- or 4-bit codes \
         (fast-scan too), IVF-SQ with 8-bit codes)",
        index.description()
    )))
}

/// `index` copied to each of several GPUs (Faiss's `index_cpu_to_gpu_multiple` with
/// `shard = false`, its default): every GPU holds all the vectors and an
/// [`IndexReplicas`] gives each a share of every batch of queries — throughput grows with
/// the GPUs, memory does not shrink.
pub fn index_cpu_to_gpu_replicas(
    resources: &[Arc<GpuResources>],
    index: &dyn Index,
) -> Result<IndexReplicas> {
    if resources.is_empty() {
        return Err(Error::invalid(
            "index_cpu_to_gpu_replicas needs at least one GPU",
        ));
    }
    let mut replicas = IndexReplicas::new(index.dim(), index.metric());
    for res in resources {
        replicas.add_replica(index_cpu_to_gpu(res.clone(), index)?)?;
    }
    Ok(replicas)
}
