//! Range search on the GPU in passes: the kernels append each query's hits into a fixed
//! room and count them all; queries that found more than their room are run again with
//! room for what they found. Shared by the flat and IVF-Flat range searches.

use cudarc::driver::CudaSlice;
use fathom_core::{Error, Idx, RangeSearchResult, Result};

use crate::resources::{GpuResources, gpu_err};

/// The device buffers a range kernel appends into: a counter per query, and room for `cap`
/// keys and ids per query.
pub(crate) struct RangeBuffers {
    pub count: CudaSlice<i64>,
    pub keys: CudaSlice<f32>,
    pub ids: CudaSlice<i64>,
    pub cap: usize,
}

impl RangeBuffers {
    /// Zeroed buffers for `nq` queries with room for `cap` hits each.
    pub fn new(res: &GpuResources, nq: usize, cap: usize) -> Result<Self> {
        let stream = &res.stream;
        Ok(RangeBuffers {
            count: stream
                .alloc_zeros::<i64>(nq.max(1))
                .map_err(gpu_err("allocating"))?,
            keys: stream
                .alloc_zeros::<f32>((nq * cap).max(1))
                .map_err(gpu_err("allocating range results"))?,
            ids: stream
                .alloc_zeros::<i64>((nq * cap).max(1))
                .map_err(gpu_err("allocating range results"))?,
            cap,
        })
    }

    /// What the kernels wrote, copied to the host.
    pub fn download(&self, res: &GpuResources) -> Result<RangeHits> {
        let copy = gpu_err("copying results");
        Ok(RangeHits {
            counts: res.stream.clone_dtoh(&self.count).map_err(&copy)?,
            cap: self.cap,
            keys: res.stream.clone_dtoh(&self.keys).map_err(&copy)?,
            ids: res.stream.clone_dtoh(&self.ids).map_err(&copy)?,
        })
    }
}

/// What one pass found: per query the number of hits (all of them), the room each had,
/// and `nq × cap` keys and ids (the first `min(count, cap)` of each query's are set).
pub(crate) struct RangeHits {
    pub counts: Vec<i64>,
    pub cap: usize,
    pub keys: Vec<f32>,
    pub ids: Vec<Idx>,
}

impl RangeHits {
    /// The first `n` (≤ cap) hits of query `q`: ids and keys.
    fn hits(&self, q: usize, n: usize) -> (Vec<Idx>, Vec<f32>) {
        let at = q * self.cap;
        (
            self.ids[at..at + n].to_vec(),
            self.keys[at..at + n].to_vec(),
        )
    }
}

/// Range search of `queries` (rows of `d`) by `pass(rows, nq, cap)`, in batches of queries
/// whose first-pass room (256 hits of 12 bytes each) fits `temp_memory`, each batch
/// [`in_passes`].
pub(crate) fn in_batches(
    queries: &[f32],
    d: usize,
    temp_memory: usize,
    ip: bool,
    mut pass: impl FnMut(&[f32], usize, usize) -> Result<RangeHits>,
) -> Result<RangeSearchResult> {
    let batch = (temp_memory / (12 * 256)).max(1);
    if queries.len() <= batch * d {
        return in_passes(queries, d, temp_memory, ip, pass);
    }
    let mut lists = Vec::with_capacity(queries.len() / d);
    for part in queries.chunks(batch * d) {
        let r = in_passes(part, d, temp_memory, ip, &mut pass)?;
        for q in 0..part.len() / d {
            let (ids, dists) = r.query(q);
            lists.push((ids.to_vec(), dists.to_vec()));
        }
    }
    Ok(RangeSearchResult::from_lists(lists))
}

/// Range search of `queries` (rows of `d`) by `pass(rows, nq, cap)`: room for 256 hits
/// per query, then the queries that found more again with room for their count, within
/// `temp_memory` bytes of results a pass. Hits come back sorted by id, keys turned into
/// distances (negated back for inner product, `ip`).
fn in_passes(
    queries: &[f32],
    d: usize,
    temp_memory: usize,
    ip: bool,
    mut pass: impl FnMut(&[f32], usize, usize) -> Result<RangeHits>,
) -> Result<RangeSearchResult> {
    let nq = queries.len() / d;
    let first = pass(queries, nq, 256)?;
    let mut lists: Vec<(Vec<Idx>, Vec<f32>)> = Vec::with_capacity(nq);
    let mut again = Vec::new();
    for q in 0..nq {
        let n = first.counts[q] as usize;
        if n > first.cap {
            again.push(q);
            lists.push((Vec::new(), Vec::new()));
        } else {
            lists.push(first.hits(q, n));
        }
    }
    // Products of a different batch may round differently, so a vector on the radius can
    // flip and a query count more than before: repeat until every query's hits fit its
    // room (with slack; one round in practice).
    let mut room: Vec<usize> = again
        .iter()
        .map(|&q| first.counts[q] as usize + 16)
        .collect();
    for _round in 0..8 {
        if again.is_empty() {
            break;
        }
        let most = room.iter().copied().max().unwrap_or(1);
        // Queries per pass so that the results (12 bytes each) fit the temporary memory.
        let per_pass = (temp_memory / (12 * most)).max(1);
        let (mut next, mut next_room) = (Vec::new(), Vec::new());
        for chunk in again.chunks(per_pass) {
            let rows: Vec<f32> = chunk
                .iter()
                .flat_map(|&q| &queries[q * d..(q + 1) * d])
                .copied()
                .collect();
            let found = pass(&rows, chunk.len(), most)?;
            for (j, &q) in chunk.iter().enumerate() {
                let n = found.counts[j] as usize;
                if n > found.cap {
                    next.push(q);
                    next_room.push(n + 16);
                } else {
                    lists[q] = found.hits(j, n);
                }
            }
        }
        (again, room) = (next, next_room);
    }
    if !again.is_empty() {
        return Err(Error::invalid(format!(
            "range search: {} queries found a different number of hits on every pass",
            again.len()
        )));
    }
    for (ids, dists) in &mut lists {
        let mut pairs: Vec<(Idx, f32)> = ids.iter().copied().zip(dists.iter().copied()).collect();
        pairs.sort_unstable_by_key(|p| p.0);
        *ids = pairs.iter().map(|p| p.0).collect();
        *dists = pairs.iter().map(|p| if ip { -p.1 } else { p.1 }).collect();
    }
    Ok(RangeSearchResult::from_lists(lists))
}
