//! `IndexPqFastScan`: 4-bit product quantization scanned with in-register table look-ups.

use fathom_core::{Error, IdSelector, Idx, MetricType, Result, SearchParams, SearchResult, check};
use fathom_kernels::TopK;
use fathom_kernels::codes::fastscan::{self as kern, BLOCK, block_bytes};
use fathom_quant::fastscan::{get_code, packed_len, packed_nsq, quantize_lut, set_code};
use fathom_quant::{Codec, ProductQuantizer};
use rayon::prelude::*;

use crate::code_scan::to_result;
use crate::{Index, check_search};

/// Queries scanned together: each block of codes is read once for all of them.
pub(crate) const QUERY_GROUP: usize = 4;
/// Blocks of 32 codes per kernel call.
pub(crate) const BLOCKS_PER_CHUNK: usize = 32;

/// The `k` best of each of `nq` queries over `nblocks` blocks of codes. Queries go in
/// groups of [`QUERY_GROUP`] (`scan(group, b0, b1, tops, buf)` scans blocks `b0..b1` for
/// the group's queries into `tops`); the work is spread over groups when there are enough
/// of them for the threads, else over chunks of blocks with the heaps merged.
pub(crate) fn search_blocks<S>(nq: usize, k: usize, nblocks: usize, scan: S) -> Vec<TopK>
where
    S: Fn(usize, usize, usize, &mut [TopK], &mut Vec<u16>) + Sync,
{
    let ngroups = nq.div_ceil(QUERY_GROUP);
    let size = |g: usize| ((g + 1) * QUERY_GROUP).min(nq) - g * QUERY_GROUP;
    if ngroups >= rayon::current_num_threads() {
        return (0..ngroups)
            .into_par_iter()
            .flat_map_iter(|g| {
                let mut tops: Vec<TopK> = (0..size(g)).map(|_| TopK::new(k)).collect();
                scan(g, 0, nblocks, &mut tops, &mut Vec::new());
                tops
            })
            .collect();
    }
    let mut all = Vec::with_capacity(nq);
    for g in 0..ngroups {
        let n = size(g);
        let merged = (0..nblocks.div_ceil(BLOCKS_PER_CHUNK))
            .into_par_iter()
            .fold(
                || ((0..n).map(|_| TopK::new(k)).collect::<Vec<_>>(), Vec::new()),
                |(mut tops, mut buf), c| {
                    let b0 = c * BLOCKS_PER_CHUNK;
                    let b1 = (b0 + BLOCKS_PER_CHUNK).min(nblocks);
                    scan(g, b0, b1, &mut tops, &mut buf);
                    (tops, buf)
                },
            )
            .map(|(t, _)| t)
            .reduce(
                || (0..n).map(|_| TopK::new(k)).collect(),
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(&b) {
                        x.merge(y);
                    }
                    a
                },
            );
        all.extend(merged);
    }
    all
}

/// Product quantization with 4-bit sub-quantizers, searched with the fast-scan kernel
/// (Faiss's `IndexPQFastScan`, factory `PQ32x4fs`): codes are stored in blocks of 32, the
/// query's distance tables are quantized to 8 bits, and one SIMD byte shuffle looks up 16
/// or 32 codes at once. Returned distances are those of the quantized tables (as Faiss);
/// wrap the index in `IndexRefineFlat` for exact distances.
///
/// ```
/// use fathom_index::{Index, IndexPqFastScan, MetricType};
/// let d = 8;
/// let x: Vec<f32> = (0..2000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let mut index = IndexPqFastScan::new(d, 4, MetricType::L2).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// assert_eq!(index.search(&x[..d], 3).unwrap().labels.len(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct IndexPqFastScan {
    pq: ProductQuantizer,
    metric: MetricType,
    packed: Vec<u8>,
    ntotal: usize,
    bbs: usize,
}

/// Checks a fast-scan block size (Faiss's `bbs`): a positive multiple of 32.
pub(crate) fn check_bbs(bbs: usize) -> Result<usize> {
    if bbs == 0 || !bbs.is_multiple_of(32) || bbs > 1 << 16 {
        return Err(Error::invalid(format!(
            "fast-scan blocks hold a positive multiple of 32 codes (at most 65536), got {bbs}"
        )));
    }
    Ok(bbs)
}

impl IndexPqFastScan {
    /// An untrained index of `m` 4-bit sub-quantizers (`m ≤ 256`).
    pub fn new(d: usize, m: usize, metric: MetricType) -> Result<Self> {
        if !matches!(metric, MetricType::L2 | MetricType::InnerProduct) {
            return Err(Error::Unsupported(format!(
                "IndexPqFastScan supports L2 and inner product, not {metric:?}"
            )));
        }
        if m > 256 {
            return Err(Error::invalid(format!(
                "fast-scan accumulates in 16 bits: at most 256 sub-quantizers, got M = {m}"
            )));
        }
        Ok(IndexPqFastScan {
            pq: ProductQuantizer::new(d, m, 4)?,
            metric,
            packed: Vec::new(),
            ntotal: 0,
            bbs: 32,
        })
    }

    /// The product quantizer.
    pub fn pq(&self) -> &ProductQuantizer {
        &self.pq
    }
    /// The product quantizer, to set training parameters or centroids.
    pub fn pq_mut(&mut self) -> &mut ProductQuantizer {
        &mut self.pq
    }
    /// Codes per block in Faiss's file layout (Faiss's `bbs`, factory `PQ32x4fs_64`;
    /// 32 by default). fathom's own scan uses blocks of 32 whatever this says; the value
    /// is kept so a file written for Faiss has the layout it was built with.
    pub fn bbs(&self) -> usize {
        self.bbs
    }
    /// Sets the Faiss block size: a positive multiple of 32.
    pub fn set_bbs(&mut self, bbs: usize) -> Result<()> {
        self.bbs = check_bbs(bbs)?;
        Ok(())
    }
    /// The packed codes (blocks of 32; see `fathom_kernels::codes::fastscan`).
    pub fn packed_codes(&self) -> &[u8] {
        &self.packed
    }

    /// Appends PQ codes in the ordinary packed-index layout (`n × code_size` bytes).
    pub fn add_codes(&mut self, codes: &[u8]) -> Result<()> {
        let cs = self.pq.code_size();
        let n = check::codes("PQ codes", codes, cs)?;
        let m = self.pq.m();
        let new_len = packed_len(self.ntotal + n, m);
        self.packed
            .try_reserve(new_len.saturating_sub(self.packed.len()))
            .map_err(|_| Error::invalid(format!("cannot allocate {new_len} bytes for codes")))?;
        self.packed.resize(new_len, 0);
        for (i, c) in codes.chunks_exact(cs).enumerate() {
            let idx = self.pq.code_indices(c);
            set_code(&mut self.packed, m, self.ntotal + i, &idx);
        }
        self.ntotal += n;
        Ok(())
    }

    /// The PQ code of vector `i` in the ordinary layout.
    pub fn code(&self, i: usize) -> Vec<u8> {
        let m = self.pq.m();
        let mut idx = vec![0u32; m];
        get_code(&self.packed, m, i, &mut idx);
        let mut code = vec![0u8; self.pq.code_size()];
        fathom_quant::bits::pack(idx, 4, &mut code);
        code
    }

    /// Scans blocks `b0..b1` for a group of queries (`luts`: `nq × nsq × 16`), pushing
    /// into `tops` (one per query of the group).
    fn scan(
        &self,
        b0: usize,
        b1: usize,
        luts: &[u8],
        tops: &mut [TopK],
        sel: Option<&dyn IdSelector>,
        buf: &mut Vec<u16>,
    ) {
        let nsq = packed_nsq(self.pq.m());
        let bb = block_bytes(nsq);
        let nq = tops.len();
        let mut b = b0;
        while b < b1 {
            let e = (b + BLOCKS_PER_CHUNK).min(b1);
            let nb = e - b;
            buf.resize(nq * nb * BLOCK, 0);
            kern::accumulate(nsq, &self.packed[b * bb..e * bb], luts, buf);
            let first = b * BLOCK;
            let count = (self.ntotal - first).min(nb * BLOCK);
            for (q, top) in tops.iter_mut().enumerate() {
                let keys = &buf[q * nb * BLOCK..q * nb * BLOCK + count];
                top.push_run_u16(first as Idx, keys, |id| sel.is_none_or(|s| s.is_member(id)));
            }
            b = e;
        }
    }
}

impl Index for IndexPqFastScan {
    fn dim(&self) -> usize {
        self.pq.d()
    }
    fn ntotal(&self) -> usize {
        self.ntotal
    }
    fn metric(&self) -> MetricType {
        self.metric
    }
    fn is_trained(&self) -> bool {
        self.pq.is_trained()
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.pq.train(x)
    }
    fn add(&mut self, x: &[f32]) -> Result<()> {
        if !self.is_trained() {
            return Err(Error::NotTrained("add to IndexPqFastScan".into()));
        }
        check::vectors("added", x, self.dim())?;
        let codes = self.pq.compute_codes(x)?;
        self.add_codes(&codes)
    }

    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let nq = check_search(self, queries, k)?;
        let m = self.pq.m();
        let nsq = packed_nsq(m);
        let mut tables = self.pq.compute_distance_tables(self.metric, queries)?;
        if self.metric.is_similarity() {
            tables.iter_mut().for_each(|v| *v = -*v);
        }
        let mut luts = vec![0u8; nq * nsq * 16];
        let mut scale_bias = vec![(1.0f32, 0.0f32); nq];
        luts.par_chunks_mut(nsq * 16)
            .zip(tables.par_chunks(m * 16))
            .zip(scale_bias.par_iter_mut())
            .try_for_each(|((l, t), sb)| {
                *sb = quantize_lut(t, m, l)?;
                Ok::<_, Error>(())
            })?;
        let nblocks = self.ntotal.div_ceil(BLOCK);
        let sel = params.selector;
        let tops = search_blocks(nq, k, nblocks, |g, b0, b1, tops, buf| {
            let q1 = ((g + 1) * QUERY_GROUP).min(nq);
            let l = &luts[g * QUERY_GROUP * nsq * 16..q1 * nsq * 16];
            self.scan(b0, b1, l, tops, sel, buf);
        });
        to_result(tops, k, self.metric, |q, key| {
            let (scale, bias) = scale_bias[q];
            bias + key / scale
        })
    }

    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        if id < 0 || id as usize >= self.ntotal {
            return Err(Error::IdNotFound(id));
        }
        let mut x = vec![0.0; self.dim()];
        self.pq.decode_one(&self.code(id as usize), &mut x);
        Ok(x)
    }

    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        let kept: Vec<u8> = (0..self.ntotal)
            .filter(|&i| !selector.is_member(i as Idx))
            .flat_map(|i| self.code(i))
            .collect();
        let removed = self.ntotal - kept.len() / self.pq.code_size();
        self.reset()?;
        self.add_codes(&kept)?;
        Ok(removed)
    }

    fn reset(&mut self) -> Result<()> {
        self.packed.clear();
        self.ntotal = 0;
        Ok(())
    }

    fn description(&self) -> String {
        let bbs = if self.bbs == 32 {
            String::new()
        } else {
            format!("_{}", self.bbs)
        };
        format!("PQ{}x4fs{bbs}", self.pq.m())
    }

    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::PqFastScan(self)
    }
}
