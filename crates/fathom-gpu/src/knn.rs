//! `bf_knn`: exact k-NN of one set of vectors against another without keeping an index
//! (Faiss's `bfKnn`), from host or device arrays.

use std::sync::Arc;

use cudarc::driver::CudaSlice;
use fathom_core::{Error, MetricType, Result, SearchResult};
use fathom_index::Index;

use crate::flat::GpuIndexFlat;
use crate::resources::{GpuResources, check_k};

/// The `k` nearest rows of `database` to each row of `queries` (both row-major with `d`
/// columns, on the host), computed on the GPU as [`GpuIndexFlat`] does — exact, k ≤ 2048.
///
/// ```
/// use fathom_core::MetricType;
/// if let Ok(res) = fathom_gpu::GpuResources::new(0) {
///     let db = [0.0, 0.0, 1.0, 1.0, 5.0, 5.0];
///     let r = fathom_gpu::bf_knn(res, &db, &[0.9, 0.8], 2, 2, MetricType::L2)?;
///     assert_eq!(r.labels, vec![1, 0]);
/// }
/// # Ok::<(), fathom_core::Error>(())
/// ```
pub fn bf_knn(
    res: Arc<GpuResources>,
    database: &[f32],
    queries: &[f32],
    d: usize,
    k: usize,
    metric: MetricType,
) -> Result<SearchResult> {
    let mut index = GpuIndexFlat::new(res, d, metric)?;
    index.add(database)?;
    index.search(queries, k)
}

/// [`bf_knn`] of arrays already in the GPU's memory (allocated on `res`'s stream,
/// [`GpuResources::stream`]): `database` is `nb × d` floats, `queries` `nq × d`. The
/// database is copied once on the device (no transfer from the host); the values are not
/// checked for NaN or infinity there, which only order the answers arbitrarily.
pub fn bf_knn_device(
    res: Arc<GpuResources>,
    database: &CudaSlice<f32>,
    queries: &CudaSlice<f32>,
    d: usize,
    k: usize,
    metric: MetricType,
) -> Result<SearchResult> {
    check_k(k)?;
    if d == 0 {
        return Err(Error::invalid("dimension must be at least 1"));
    }
    for (what, len) in [("database", database.len()), ("queries", queries.len())] {
        if len % d != 0 {
            return Err(Error::invalid(format!(
                "the {what} array holds {len} floats, not a multiple of d = {d}"
            )));
        }
    }
    let nq = queries.len() / d;
    let mut index = GpuIndexFlat::new(res.clone(), d, metric)?;
    let _g = res.lock();
    index.add_device(database)?;
    index.search_device(queries, nq, k)
}
