//! `GpuIndexFlat`: exact search on the GPU — cuBLAS inner products by tiles, fused with the
//! norms and the k-selection kernel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
    check,
};
use fathom_index::{Index, IndexFlat};
use rayon::prelude::*;

use crate::kernels::BLOCK;
use crate::resources::{Allow, Best, GpuResources, MAX_K, gpu_err, kpow, topk_smem};

/// How a [`GpuIndexFlat`] stores its vectors and computes distances.
///
/// ```
/// use fathom_gpu::{GpuFlatPrecision, GpuIndexFlat, GpuResources};
/// if let Ok(res) = GpuResources::new(0) {
///     // Tensor cores, same answers as FP32.
///     let index = GpuIndexFlat::with_precision(res, 128, fathom_core::MetricType::L2, GpuFlatPrecision::Tf32)?;
/// }
/// # Ok::<(), fathom_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuFlatPrecision {
    /// FP32 vectors and FP32 matrix products (cuBLAS SGEMM): the CPU index's answers.
    #[default]
    F32,
    /// FP32 vectors; the matrix products run on TF32 tensor cores and over-fetch
    /// candidates (max(2k, k + 32), at most 2048), which are re-ranked by exact FP32
    /// distances. A bound on TF32's error then certifies each query's answer: a query whose
    /// k-th exact distance is not clear of the excluded vectors by that bound is searched
    /// again in FP32. So the neighbours are the exact best k, as
    /// [`GpuFlatPrecision::F32`] finds them (distances are computed directly, Σ(q − x)²,
    /// so they may differ from F32's in the last bits, and exact ties may order
    /// differently); [`GpuIndexFlat::fp32_searches`] counts the queries that needed the
    /// second search.
    Tf32,
    /// FP16 vectors — half the memory, twice the vectors per GPU (Faiss's `useFloat16`);
    /// FP16 tensor-core products with FP32 accumulation over-fetch candidates as for
    /// `Tf32`, re-ranked in FP32 against the stored FP16 vectors. Approximate: vectors are
    /// rounded to FP16 when added (and must lie within ±65504).
    F16,
}

/// The stored vectors, in the precision the index was made with.
enum Store {
    F32(CudaSlice<f32>),
    F16(CudaSlice<u16>),
}

/// The largest finite FP16 value.
const F16_MAX: f32 = 65504.0;

/// Exact k-NN on a GPU (Faiss's `GpuIndexFlat`, `GpuIndexFlatL2`, `GpuIndexFlatIP`): the
/// vectors and their norms live in device memory; a search computes query × vector inner
/// products with cuBLAS, a tile at a time within the resources' temporary memory, and
/// merges each tile into the per-query best k (k ≤ 2048) with one kernel.
/// [`GpuFlatPrecision`] chooses FP32, TF32 tensor cores with exact re-ranking, or FP16
/// storage.
///
/// Its CPU form (`index_gpu_to_cpu`) is an [`IndexFlat`] with the same vectors.
pub struct GpuIndexFlat {
    res: Arc<GpuResources>,
    d: usize,
    metric: MetricType,
    precision: GpuFlatPrecision,
    data: Store,
    norms: CudaSlice<f32>,
    /// The largest squared norm added (the TF32 error bound scales with it).
    max_norm_sq: f32,
    ntotal: usize,
    capacity: usize,
    fp32_searches: AtomicU64,
}

/// The inputs of one matrix product: the stored vectors and the queries, in the precision
/// the product runs in.
#[derive(Clone, Copy)]
enum Operands<'a> {
    F32(&'a CudaSlice<f32>, &'a CudaSlice<f32>),
    Tf32(&'a CudaSlice<f32>, &'a CudaSlice<f32>),
    F16(&'a CudaSlice<u16>, &'a CudaSlice<u16>),
}

/// Candidates fetched for a re-ranked search of the best `k` among `ntotal`.
fn overfetch(k: usize) -> usize {
    (2 * k).max(k + 32).min(MAX_K).max(k)
}

impl GpuIndexFlat {
    /// An empty FP32 index of dimension `d` on `res`'s device; `metric` is L2 or inner
    /// product.
    pub fn new(res: Arc<GpuResources>, d: usize, metric: MetricType) -> Result<Self> {
        Self::with_precision(res, d, metric, GpuFlatPrecision::F32)
    }

    /// An empty index storing and comparing vectors in `precision`.
    pub fn with_precision(
        res: Arc<GpuResources>,
        d: usize,
        metric: MetricType,
        precision: GpuFlatPrecision,
    ) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("dimension must be at least 1"));
        }
        if !matches!(metric, MetricType::L2 | MetricType::InnerProduct) {
            return Err(Error::Unsupported(format!(
                "GPU flat indexes search by L2 or inner product, not {metric}"
            )));
        }
        let data = match precision {
            GpuFlatPrecision::F16 => Store::F16(res.upload::<u16>(&[])?),
            _ => Store::F32(res.upload::<f32>(&[])?),
        };
        let norms = res.upload::<f32>(&[])?;
        Ok(GpuIndexFlat {
            res,
            d,
            metric,
            precision,
            data,
            norms,
            max_norm_sq: 0.0,
            ntotal: 0,
            capacity: 0,
            fp32_searches: AtomicU64::new(0),
        })
    }

    /// A GPU copy of `cpu`.
    pub fn from_cpu(res: Arc<GpuResources>, cpu: &IndexFlat) -> Result<Self> {
        Self::from_cpu_with_precision(res, cpu, GpuFlatPrecision::F32)
    }

    /// A GPU copy of `cpu` in `precision`.
    pub fn from_cpu_with_precision(
        res: Arc<GpuResources>,
        cpu: &IndexFlat,
        precision: GpuFlatPrecision,
    ) -> Result<Self> {
        let mut gpu = Self::with_precision(res, cpu.dim(), cpu.metric(), precision)?;
        gpu.add(&cpu.reconstruct_n(0, cpu.ntotal())?)?;
        Ok(gpu)
    }

    /// The CPU index with the same vectors (for FP16 storage, the stored, rounded ones).
    pub fn to_cpu(&self) -> Result<IndexFlat> {
        IndexFlat::from_vectors(self.d, self.metric, self.reconstruct_n(0, self.ntotal)?)
    }

    /// The resources this index runs on.
    pub fn resources(&self) -> &Arc<GpuResources> {
        &self.res
    }

    /// How this index stores and compares vectors.
    pub fn precision(&self) -> GpuFlatPrecision {
        self.precision
    }

    /// Switches between [`GpuFlatPrecision::F32`] and [`GpuFlatPrecision::Tf32`] (both
    /// store FP32 vectors). FP16 storage is chosen when the index is made: switching to or
    /// from it is an error unless the index is empty.
    pub fn set_precision(&mut self, precision: GpuFlatPrecision) -> Result<()> {
        let stored_f16 = matches!(self.data, Store::F16(_));
        if stored_f16 != (precision == GpuFlatPrecision::F16) {
            if self.ntotal > 0 {
                return Err(Error::Unsupported(format!(
                    "this index stores {} vectors; it cannot switch to {precision:?} without \
                     being emptied (reset) first",
                    if stored_f16 { "FP16" } else { "FP32" }
                )));
            }
            self.data = match precision {
                GpuFlatPrecision::F16 => Store::F16(self.res.upload::<u16>(&[])?),
                _ => Store::F32(self.res.upload::<f32>(&[])?),
            };
            self.capacity = 0;
        }
        self.precision = precision;
        Ok(())
    }

    /// How many queries a [`GpuFlatPrecision::Tf32`] search could not certify from its
    /// TF32 candidates and searched again in FP32, since the index was made.
    pub fn fp32_searches(&self) -> u64 {
        self.fp32_searches.load(Ordering::Relaxed)
    }

    fn grow(&mut self, needed: usize) -> Result<()> {
        if needed <= self.capacity {
            return Ok(());
        }
        let cap = needed.max(self.capacity * 2).max(1024);
        let (used, d, stream) = (self.ntotal, self.d, &self.res.stream);
        self.data = match &self.data {
            Store::F32(old) => Store::F32(grown(stream, old, used * d, cap * d)?),
            Store::F16(old) => Store::F16(grown(stream, old, used * d, cap * d)?),
        };
        self.norms = grown(stream, &self.norms, used, cap)?;
        self.capacity = cap;
        Ok(())
    }

    /// Appends FP32 vectors already on the device (`n × d`) by a device-to-device copy.
    /// The caller holds the resources' lock.
    pub(crate) fn add_device(&mut self, x: &CudaSlice<f32>) -> Result<()> {
        let (d, n) = (self.d, x.len() / self.d);
        if n == 0 {
            return Ok(());
        }
        if matches!(self.data, Store::F16(_)) {
            return Err(Error::Unsupported(
                "an FP16 index takes vectors from the host".into(),
            ));
        }
        self.grow(self.ntotal + n)?;
        let res = self.res.clone();
        let stream = &res.stream;
        let rows = self.ntotal * d..(self.ntotal + n) * d;
        let Store::F32(data) = &mut self.data else {
            unreachable!("checked above")
        };
        stream
            .memcpy_dtod(&x.slice(..n * d), &mut data.slice_mut(rows.clone()))
            .map_err(gpu_err("copying vectors"))?;
        let (n64, d32) = (n as i64, d as i32);
        let src = data.slice(rows);
        let mut dst = self.norms.slice_mut(self.ntotal..self.ntotal + n);
        let mut b = stream.launch_builder(&res.kernels.l2_norms);
        b.arg(&src).arg(&n64).arg(&d32).arg(&mut dst);
        // SAFETY: l2_norms reads n rows of d floats from `src` and writes n floats to
        // `dst`, the slices just sized so.
        unsafe { b.launch(LaunchConfig::for_num_elems(n as u32)) }.map_err(gpu_err("l2_norms"))?;
        // The TF32 error bound needs the largest norm, unknown here (the vectors never
        // reach the host): infinity makes the bound infinite, so a TF32 search of this
        // index would certify no query and search every one again in FP32 — correct, never
        // fast. (bf_knn_device searches in FP32.) For inner product err_b is 0 and
        // 0·∞ = NaN, which compares false: uncertified too.
        self.max_norm_sq = f32::INFINITY;
        self.ntotal += n;
        Ok(())
    }

    /// Searches queries already on the device (`nq × d`, FP32) by FP32 products: the best
    /// k of every query.
    pub(crate) fn search_device(
        &self,
        queries: &CudaSlice<f32>,
        nq: usize,
        k: usize,
    ) -> Result<SearchResult> {
        let operands = match &self.data {
            Store::F32(data) => Operands::F32(data, queries),
            Store::F16(_) => {
                return Err(Error::Unsupported(
                    "an FP16 index searches queries from the host".into(),
                ));
            }
        };
        let qnorm = self.query_norms(queries, nq)?;
        let all = self.allow(None)?;
        self.scan(operands, &qnorm, &all, nq, k)?
            .finish(&self.res, self.metric)
    }

    /// Squared norms of `nq` FP32 queries on the device.
    fn query_norms(&self, queries: &CudaSlice<f32>, nq: usize) -> Result<CudaSlice<f32>> {
        let stream = &self.res.stream;
        let mut qnorm = stream
            .alloc_zeros::<f32>(nq.max(1))
            .map_err(gpu_err("allocating"))?;
        if nq > 0 {
            let (n64, d32) = (nq as i64, self.d as i32);
            let mut b = stream.launch_builder(&self.res.kernels.l2_norms);
            b.arg(queries).arg(&n64).arg(&d32).arg(&mut qnorm);
            // SAFETY: l2_norms(const float*, long long n, int d, float*) reads n·d floats
            // of `queries` (nq × d) and writes n of `qnorm` (nq).
            unsafe { b.launch(LaunchConfig::for_num_elems(nq as u32)) }
                .map_err(gpu_err("l2_norms"))?;
        }
        Ok(qnorm)
    }

    /// Runs `each` on every tile of query × vector products `operands` compute: at most
    /// 4096 queries by as many vectors as the temporary memory allows. `each` gets the
    /// tile (`qn × xn`, row stride xn) and its place: `(ip, (q0, qn), (x0, xn))`.
    fn for_each_tile(
        &self,
        operands: Operands<'_>,
        nq: usize,
        mut each: impl FnMut(&CudaSlice<f32>, (usize, usize), (usize, usize)) -> Result<()>,
    ) -> Result<()> {
        if self.ntotal == 0 || nq == 0 {
            return Ok(());
        }
        let res = &*self.res;
        let tq = nq.min(4096);
        let budget = res.temp_memory() / 4;
        let tx = (budget / tq).clamp(1024, 1 << 20).min(self.ntotal);
        let mut ip = res
            .stream
            .alloc_zeros::<f32>(tq * tx)
            .map_err(gpu_err("allocating a tile"))?;
        for q0 in (0..nq).step_by(tq) {
            let qn = tq.min(nq - q0);
            for x0 in (0..self.ntotal).step_by(tx) {
                let xn = tx.min(self.ntotal - x0);
                tile_products(res, operands, self.d, (q0, qn), (x0, xn), &mut ip)?;
                each(&ip, (q0, qn), (x0, xn))?;
            }
        }
        Ok(())
    }

    /// The best `k` keys and ids of each query by the products `operands` compute, among
    /// the vectors `allow` lets through: tiles merged into the best k by the selection
    /// kernel (an arg-min for k = 1).
    fn scan(
        &self,
        operands: Operands<'_>,
        qnorm: &CudaSlice<f32>,
        allow: &Allow,
        nq: usize,
        k: usize,
    ) -> Result<Best> {
        let res = &*self.res;
        let mut best = res.new_best(nq, k)?;
        let stream = &res.stream;
        let l2 = i32::from(self.metric == MetricType::L2);
        let kp = kpow(k);
        let smem = topk_smem(kp);
        res.kernels.check_smem(smem, "k-selection")?;
        let (k32, kp32) = (k as i32, kp as i32);
        self.for_each_tile(operands, nq, |ip, (q0, qn), (x0, xn)| {
            let (ld, nt, id0) = (xn as i32, xn as i32, x0 as i64);
            let qnv = qnorm.slice(q0..q0 + qn);
            let xnv = self.norms.slice(x0..x0 + xn);
            let mut bd = best.d.slice_mut(q0 * k..(q0 + qn) * k);
            let mut bi = best.i.slice_mut(q0 * k..(q0 + qn) * k);
            let ipv = ip.slice(..qn * xn);
            if k == 1 {
                let mut b = stream.launch_builder(&res.kernels.argmin_tile);
                b.arg(&ipv).arg(&ld).arg(&nt).arg(&id0).arg(&qnv).arg(&xnv);
                b.arg(&l2).arg(&*allow.mask).arg(&allow.on);
                b.arg(&mut bd).arg(&mut bi);
                // SAFETY: argmin_tile's arguments in order: the qn × xn tile (row stride
                // xn), its width, the id of its first vector, qn query norms, xn vector
                // norms, the metric flag, the allow mask (ntotal bytes, read when the flag
                // after it is set) and qn best keys and ids; one block per query, static
                // shared memory only.
                return unsafe { b.launch(per_query(qn, 0)) }
                    .map(|_| ())
                    .map_err(gpu_err("argmin_tile"));
            }
            let mut b = stream.launch_builder(&res.kernels.select_tile);
            b.arg(&ipv).arg(&ld).arg(&nt).arg(&id0).arg(&qnv).arg(&xnv);
            b.arg(&l2).arg(&*allow.mask).arg(&allow.on);
            b.arg(&k32).arg(&kp32).arg(&mut bd).arg(&mut bi);
            // SAFETY: select_tile's arguments in order: the qn × xn tile (row stride xn),
            // its width, the id of its first vector, qn query norms, xn vector norms, the
            // metric flag, the allow mask and its flag (as argmin_tile), k, kpow, and qn ×
            // k best keys and ids; one block per query with the shared memory
            // topk_smem(kpow) its layout needs.
            unsafe { b.launch(per_query(qn, smem)) }
                .map(|_| ())
                .map_err(gpu_err("select_tile"))
        })?;
        Ok(best)
    }

    /// The vectors a search may return: every one, or those `selector` keeps (a byte per
    /// vector, evaluated here on the host: a flat index's ids are its positions).
    fn allow(&self, selector: Option<&dyn IdSelector>) -> Result<Allow> {
        Allow::of(&self.res, selector, 0..self.ntotal as Idx)
    }

    /// Every stored vector within `radius` of each query (above it for inner product),
    /// among those `allow` lets through, by id — the CPU index's range search.
    fn range_search_gpu(
        &self,
        queries: &[f32],
        radius: f32,
        allow: &Allow,
    ) -> Result<RangeSearchResult> {
        let ip = self.metric == MetricType::InnerProduct;
        let bound = if ip { -radius } else { radius };
        crate::range::in_batches(
            queries,
            self.d,
            self.res.temp_memory(),
            ip,
            |rows, n, cap| self.range_pass(rows, n, bound, allow, cap),
        )
    }

    /// One range pass over `nq` host queries with room for `cap` results each.
    fn range_pass(
        &self,
        queries: &[f32],
        nq: usize,
        bound: f32,
        allow: &Allow,
        cap: usize,
    ) -> Result<crate::range::RangeHits> {
        let res = &*self.res;
        let stream = &res.stream;
        let q = res.upload(queries)?;
        let qnorm = self.query_norms(&q, nq)?;
        let q16 = self.f16_queries(queries)?;
        let operands = self.operands(&q, q16.as_ref(), false)?;
        let mut out = crate::range::RangeBuffers::new(res, nq, cap)?;
        let l2 = i32::from(self.metric == MetricType::L2);
        let cap64 = cap as i64;
        self.for_each_tile(operands, nq, |ip, (q0, qn), (x0, xn)| {
            let (ld, nt, id0) = (xn as i32, xn as i32, x0 as i64);
            let qnv = qnorm.slice(q0..q0 + qn);
            let xnv = self.norms.slice(x0..x0 + xn);
            let ipv = ip.slice(..qn * xn);
            let mut c = out.count.slice_mut(q0..q0 + qn);
            let mut od = out.keys.slice_mut(q0 * cap..((q0 + qn) * cap).max(1));
            let mut oi = out.ids.slice_mut(q0 * cap..((q0 + qn) * cap).max(1));
            let mut b = stream.launch_builder(&res.kernels.range_tile);
            b.arg(&ipv).arg(&ld).arg(&nt).arg(&id0).arg(&qnv).arg(&xnv);
            b.arg(&l2).arg(&*allow.mask).arg(&allow.on);
            b.arg(&bound)
                .arg(&cap64)
                .arg(&mut c)
                .arg(&mut od)
                .arg(&mut oi);
            // SAFETY: range_tile's arguments in order: the qn × xn tile (row stride xn),
            // its width, the id of its first vector, qn query norms, xn vector norms, the
            // metric flag, the allow mask and its flag, the key bound, cap, qn counters
            // and qn × cap result keys and ids (writes past cap are skipped); one block per
            // query, no shared memory.
            unsafe { b.launch(per_query(qn, 0)) }
                .map(|_| ())
                .map_err(gpu_err("range_tile"))
        })?;
        out.download(res)
    }

    /// k beyond the selection kernels' 2048: the GPU computes the products tile by tile,
    /// the host keeps each query's best k (exact; bound by the copies of the tiles).
    fn search_large_k(
        &self,
        queries: &[f32],
        nq: usize,
        k: usize,
        selector: Option<&dyn IdSelector>,
    ) -> Result<SearchResult> {
        let res = &*self.res;
        let stream = &res.stream;
        let q = res.upload(queries)?;
        let q16 = self.f16_queries(queries)?;
        let operands = self.operands(&q, q16.as_ref(), false)?;
        let l2 = self.metric == MetricType::L2;
        let xnorms = if self.ntotal == 0 {
            Vec::new()
        } else {
            stream
                .clone_dtoh(&self.norms.slice(..self.ntotal))
                .map_err(gpu_err("copying norms"))?
        };
        let qnorms: Vec<f32> = queries
            .chunks_exact(self.d)
            .map(|r| r.iter().map(|v| v * v).sum())
            .collect();
        let mut tops: Vec<fathom_kernels::TopK> =
            (0..nq).map(|_| fathom_kernels::TopK::new(k)).collect();
        self.for_each_tile(operands, nq, |ip, (q0, qn), (x0, xn)| {
            let tile = stream
                .clone_dtoh(&ip.slice(..qn * xn))
                .map_err(gpu_err("copying a tile"))?;
            // The tile's rows in parallel, one query's heap each.
            tops[q0..q0 + qn]
                .par_iter_mut()
                .zip(tile.par_chunks_exact(xn))
                .enumerate()
                .for_each(|(r, (top, row))| {
                    let qn2 = qnorms[q0 + r];
                    let keys: Vec<f32> = row
                        .iter()
                        .zip(&xnorms[x0..x0 + xn])
                        .map(|(&v, &xn2)| {
                            if l2 {
                                (qn2 + xn2 - 2.0 * v).max(0.0)
                            } else {
                                -v
                            }
                        })
                        .collect();
                    top.push_run(x0 as Idx, &keys, |id| {
                        selector.is_none_or(|s| s.is_member(id))
                    });
                });
            Ok(())
        })?;
        let mut out = SearchResult {
            nq,
            k,
            distances: Vec::with_capacity(nq * k),
            labels: Vec::with_capacity(nq * k),
        };
        for top in tops {
            let mut best = top.into_sorted();
            best.resize(k, (f32::INFINITY, -1));
            for (key, id) in best {
                out.distances.push(if l2 { key } else { -key });
                out.labels.push(id);
            }
        }
        Ok(out)
    }

    /// FP16 copies of host queries, for an FP16 index.
    fn f16_queries(&self, queries: &[f32]) -> Result<Option<CudaSlice<u16>>> {
        match self.data {
            Store::F32(_) => Ok(None),
            Store::F16(_) => {
                let bits: Vec<u16> = queries
                    .iter()
                    .map(|&v| half::f16::from_f32(v.clamp(-F16_MAX, F16_MAX)).to_bits())
                    .collect();
                Ok(Some(self.res.upload(&bits)?))
            }
        }
    }

    /// The products of the stored vectors with these queries: FP32 (or TF32 when `tf32`)
    /// for FP32 storage, FP16 for FP16 storage.
    fn operands<'a>(
        &'a self,
        q: &'a CudaSlice<f32>,
        q16: Option<&'a CudaSlice<u16>>,
        tf32: bool,
    ) -> Result<Operands<'a>> {
        match (&self.data, q16) {
            (Store::F32(data), _) if tf32 => Ok(Operands::Tf32(data, q)),
            (Store::F32(data), _) => Ok(Operands::F32(data, q)),
            (Store::F16(data), Some(q16)) => Ok(Operands::F16(data, q16)),
            (Store::F16(_), None) => Err(Error::Unsupported(
                "an FP16 index needs FP16 queries".into(),
            )),
        }
    }

    /// Re-ranks `cand` (`nq × kc` from a lower-precision scan) by exact FP32 distances to
    /// the stored vectors: the best `k`, and per query whether the TF32 error bound
    /// certifies it.
    fn rerank(
        &self,
        queries: &CudaSlice<f32>,
        cand: &Best,
        nq: usize,
        k: usize,
    ) -> Result<(Best, Vec<i32>)> {
        let res = &*self.res;
        let stream = &res.stream;
        let mut best = res.new_best(nq, k)?;
        let mut certain = stream
            .alloc_zeros::<i32>(nq.max(1))
            .map_err(gpu_err("allocating"))?;
        if nq == 0 || self.ntotal == 0 {
            return Ok((best, vec![1; nq]));
        }
        let l2 = self.metric == MetricType::L2;
        // TF32 keeps 10 of FP32's 23 fraction bits; truncation (cuBLAS may round, which is
        // better) makes each operand's relative error ≤ u = 2⁻¹⁰, each product's ≤
        // 2u + u², and accumulation over d terms adds γ of Σ|q_i·x_i| ≤ ‖q‖·‖x‖ — taken
        // as d·2⁻²³·1.01, as for truncating accumulation (tensor cores align without guard
        // bits). L2 keys (‖q‖² + ‖x‖² − 2⟨q, x⟩) double the product's error and add the
        // norms' and the sum's rounding, ≤ (γ + 4·2⁻²⁴)·(‖q‖² + ‖x‖²).
        let u = 2f32.powi(-10);
        let gamma = self.d as f32 * 2f32.powi(-23) * 1.01;
        let max_norm = self.max_norm_sq.sqrt();
        let err_a = if l2 { 2.0 } else { 1.0 } * (2.0 * u + u * u + gamma) * max_norm;
        let err_b = if l2 {
            gamma + 4.0 * 2f32.powi(-24)
        } else {
            0.0
        };
        let kc = cand.k;
        let kp = kpow(k);
        let smem = topk_smem(kp) + 4 * self.d;
        res.kernels.check_smem(smem, "re-ranking")?;
        let (d32, kc32, l2_32, k32, kp32) =
            (self.d as i32, kc as i32, i32::from(l2), k as i32, kp as i32);
        let max_sq = self.max_norm_sq;
        let (kernel, launch) = match &self.data {
            Store::F32(data) => {
                let mut b = stream.launch_builder(&res.kernels.rerank);
                b.arg(queries).arg(&d32).arg(data);
                (b, "rerank")
            }
            Store::F16(data) => {
                let mut b = stream.launch_builder(&res.kernels.rerank_f16);
                b.arg(queries).arg(&d32).arg(data);
                (b, "rerank_f16")
            }
        };
        let mut b = kernel;
        b.arg(&cand.d).arg(&cand.i).arg(&kc32).arg(&l2_32);
        b.arg(&err_a).arg(&err_b).arg(&max_sq);
        b.arg(&k32)
            .arg(&kp32)
            .arg(&mut best.d)
            .arg(&mut best.i)
            .arg(&mut certain);
        // SAFETY: rerank(_f16)'s arguments in order: nq × d FP32 queries, d, the stored
        // vectors (ntotal × d, every candidate id < ntotal or −1), nq × kc candidate keys
        // and ids, kc, the metric flag, the error bound's terms, k, kpow, nq × k best keys
        // and ids, nq flags; one block per query with topk_smem(kpow) + 4·d bytes of shared
        // memory (the selection state, then the query).
        unsafe { b.launch(per_query(nq, smem)) }.map_err(gpu_err(launch))?;
        let mut flags = stream
            .clone_dtoh(&certain)
            .map_err(gpu_err("copying results"))?;
        flags.truncate(nq);
        Ok((best, flags))
    }

    /// The search of `queries` (host, FP32, checked) in this index's precision, among
    /// the vectors `allow` lets through.
    fn search_host(
        &self,
        queries: &[f32],
        nq: usize,
        k: usize,
        allow: &Allow,
    ) -> Result<SearchResult> {
        let res = &*self.res;
        let q = res.upload(queries)?;
        let qnorm = self.query_norms(&q, nq)?;
        let q16 = self.f16_queries(queries)?;
        // Without room to over-fetch (k near the kernels' 2048) TF32 could certify no
        // query: search in FP32 straight away.
        let tf32 = self.precision == GpuFlatPrecision::Tf32 && overfetch(k) >= k + 32;
        match (&self.data, self.precision) {
            (Store::F32(_), _) if !tf32 => {
                let operands = self.operands(&q, None, false)?;
                self.scan(operands, &qnorm, allow, nq, k)?
                    .finish(res, self.metric)
            }
            (Store::F32(_), _) => {
                let operands = self.operands(&q, None, true)?;
                let cand = self.scan(operands, &qnorm, allow, nq, overfetch(k))?;
                let (best, certain) = self.rerank(&q, &cand, nq, k)?;
                let mut out = best.finish(res, self.metric)?;
                let again: Vec<usize> = (0..nq).filter(|&i| certain[i] == 0).collect();
                if !again.is_empty() {
                    self.fp32_searches
                        .fetch_add(again.len() as u64, Ordering::Relaxed);
                    let rows: Vec<f32> = again
                        .iter()
                        .flat_map(|&i| &queries[i * self.d..(i + 1) * self.d])
                        .copied()
                        .collect();
                    let q2 = res.upload(&rows)?;
                    let qn2 = self.query_norms(&q2, again.len())?;
                    let operands = self.operands(&q2, None, false)?;
                    let exact = self
                        .scan(operands, &qn2, allow, again.len(), k)?
                        .finish(res, self.metric)?;
                    for (j, &i) in again.iter().enumerate() {
                        out.distances[i * k..(i + 1) * k]
                            .copy_from_slice(&exact.distances[j * k..(j + 1) * k]);
                        out.labels[i * k..(i + 1) * k]
                            .copy_from_slice(&exact.labels[j * k..(j + 1) * k]);
                    }
                }
                Ok(out)
            }
            (Store::F16(_), _) => {
                let operands = self.operands(&q, q16.as_ref(), false)?;
                let cand = self.scan(operands, &qnorm, allow, nq, overfetch(k))?;
                self.rerank(&q, &cand, nq, k)?.0.finish(res, self.metric)
            }
        }
    }
}

/// A launch of one block per query with `smem` bytes of shared memory.
fn per_query(nq: usize, smem: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (nq as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: smem as u32,
    }
}

/// A buffer of `cap` elements holding the first `used` of `old`.
fn grown<T: cudarc::driver::DeviceRepr>(
    stream: &Arc<cudarc::driver::CudaStream>,
    old: &CudaSlice<T>,
    used: usize,
    cap: usize,
) -> Result<CudaSlice<T>> {
    // SAFETY: the first `used` entries are copied from `old` below, the others are written
    // (added vectors) before any read.
    let mut new = unsafe { stream.alloc::<T>(cap) }.map_err(gpu_err("allocating"))?;
    if used > 0 {
        stream
            .memcpy_dtod(&old.slice(..used), &mut new.slice_mut(..used))
            .map_err(gpu_err("copying"))?;
    }
    Ok(new)
}

/// `ip[q][x] = ⟨query q0 + q, vector x0 + x⟩` for a tile of `qn` queries × `xn` vectors
/// (row-major, row stride xn), in the precision `operands` says.
fn tile_products(
    res: &GpuResources,
    operands: Operands<'_>,
    d: usize,
    (q0, qn): (usize, usize),
    (x0, xn): (usize, usize),
    ip: &mut CudaSlice<f32>,
) -> Result<()> {
    use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cudaDataType};
    use cudarc::driver::{DevicePtr, DevicePtrMut};
    // Row-major C[qn × xn] = Q·Xᵀ is column-major Cᵀ[xn × qn] = op(X)ᵀ·Q with X seen
    // column-major as d × xn and Q as d × qn.
    let (m, n, kk) = (xn as i32, qn as i32, d as i32);
    let blas_err = |e: cudarc::cublas::result::CublasError| {
        Error::GpuUnavailable(format!("cuBLAS matrix product: {e}"))
    };
    let stream = &res.stream;
    let (pa, _ga, pb, _gb, elem, dtype, compute) = match operands {
        Operands::F32(x, q) => {
            let cfg = GemmConfig {
                transa: cublasOperation_t::CUBLAS_OP_T,
                transb: cublasOperation_t::CUBLAS_OP_N,
                m,
                n,
                k: kk,
                alpha: 1.0f32,
                lda: kk,
                ldb: kk,
                beta: 0.0f32,
                ldc: m,
            };
            let a = x.slice(x0 * d..(x0 + xn) * d);
            let b = q.slice(q0 * d..(q0 + qn) * d);
            let mut c = ip.slice_mut(..qn * xn);
            // SAFETY: A is xn rows of d floats, B qn rows of d, C has qn·xn floats — the
            // shapes the configuration states.
            return unsafe { res.blas.gemm(cfg, &a, &b, &mut c) }.map_err(blas_err);
        }
        Operands::Tf32(x, q) => {
            let ((pa, ga), (pb, gb)) = (x.device_ptr(stream), q.device_ptr(stream));
            let compute = cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32;
            (pa, ga, pb, gb, 4, cudaDataType::CUDA_R_32F, compute)
        }
        Operands::F16(x, q) => {
            let ((pa, ga), (pb, gb)) = (x.device_ptr(stream), q.device_ptr(stream));
            let compute = cublasComputeType_t::CUBLAS_COMPUTE_32F;
            (pa, ga, pb, gb, 2, cudaDataType::CUDA_R_16F, compute)
        }
    };
    // The tile's first vector and query.
    let pa = pa + (x0 * d) as u64 * elem;
    let pb = pb + (q0 * d) as u64 * elem;
    let (pc, _gc) = ip.device_ptr_mut(stream);
    let (alpha, beta) = (1.0f32, 0.0f32);
    // SAFETY: A points at xn stored rows of d values and B at qn query rows of d, both of
    // `dtype` (inside their buffers: the tile lies within ntotal and nq); C holds at least
    // qn·xn floats; alpha and beta are FP32 as the FP32 compute types require; the buffers
    // outlive the call (their guards are alive).
    unsafe {
        cudarc::cublas::result::gemm_ex(
            *res.blas.handle(),
            cublasOperation_t::CUBLAS_OP_T,
            cublasOperation_t::CUBLAS_OP_N,
            m,
            n,
            kk,
            (&alpha as *const f32).cast(),
            pa as *const _,
            dtype,
            kk,
            pb as *const _,
            dtype,
            kk,
            (&beta as *const f32).cast(),
            pc as *mut _,
            cudaDataType::CUDA_R_32F,
            m,
            compute,
            cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
    .map_err(blas_err)
}

impl Index for GpuIndexFlat {
    fn dim(&self) -> usize {
        self.d
    }
    fn ntotal(&self) -> usize {
        self.ntotal
    }
    fn metric(&self) -> MetricType {
        self.metric
    }
    fn add(&mut self, x: &[f32]) -> Result<()> {
        let n = check::vectors("added", x, self.d)?;
        check::finite("added", x, self.d)?;
        if n == 0 {
            return Ok(());
        }
        let d = self.d;
        // FP16 storage rounds the vectors; norms and the error bound follow what is stored.
        let halves: Option<Vec<u16>> = match self.data {
            Store::F32(_) => None,
            Store::F16(_) => {
                if let Some(v) = x.iter().find(|v| v.abs() > F16_MAX) {
                    return Err(Error::invalid(format!(
                        "an FP16 GPU index stores values within ±{F16_MAX}; got {v} (use \
                         GpuFlatPrecision::F32 or Tf32 for such vectors)"
                    )));
                }
                Some(
                    x.iter()
                        .map(|&v| half::f16::from_f32(v).to_bits())
                        .collect(),
                )
            }
        };
        let max_norm_sq = match &halves {
            None => x
                .chunks_exact(d)
                .map(|r| r.iter().map(|v| v * v).sum::<f32>())
                .fold(0.0f32, f32::max),
            Some(h) => h
                .chunks_exact(d)
                .map(|r| {
                    r.iter()
                        .map(|&b| half::f16::from_bits(b).to_f32().powi(2))
                        .sum::<f32>()
                })
                .fold(0.0f32, f32::max),
        };
        let res = self.res.clone();
        let _g = res.lock();
        self.grow(self.ntotal + n)?;
        let stream = &res.stream;
        let start = self.ntotal;
        let rows = start * d..(start + n) * d;
        let (n64, d32) = (n as i64, d as i32);
        let mut dst = self.norms.slice_mut(start..start + n);
        match (&mut self.data, &halves) {
            (Store::F32(data), _) => {
                stream
                    .memcpy_htod(x, &mut data.slice_mut(rows.clone()))
                    .map_err(gpu_err("copying vectors"))?;
                let src = data.slice(rows);
                let mut b = stream.launch_builder(&res.kernels.l2_norms);
                b.arg(&src).arg(&n64).arg(&d32).arg(&mut dst);
                // SAFETY: l2_norms reads n rows of d floats from `src` and writes n floats
                // to `dst`, the slices just sized so.
                unsafe { b.launch(LaunchConfig::for_num_elems(n as u32)) }
                    .map_err(gpu_err("l2_norms"))?;
            }
            (Store::F16(data), Some(h)) => {
                stream
                    .memcpy_htod(h, &mut data.slice_mut(rows.clone()))
                    .map_err(gpu_err("copying vectors"))?;
                let src = data.slice(rows);
                let mut b = stream.launch_builder(&res.kernels.l2_norms_f16);
                b.arg(&src).arg(&n64).arg(&d32).arg(&mut dst);
                // SAFETY: l2_norms_f16 reads n rows of d 16-bit values from `src` and
                // writes n floats to `dst`, the slices just sized so.
                unsafe { b.launch(LaunchConfig::for_num_elems(n as u32)) }
                    .map_err(gpu_err("l2_norms_f16"))?;
            }
            (Store::F16(_), None) => unreachable!("FP16 storage converts the vectors above"),
        }
        self.max_norm_sq = self.max_norm_sq.max(max_norm_sq);
        self.ntotal += n;
        Ok(())
    }
    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        check::k(k)?;
        let nq = check::vectors("queries", queries, self.d)?;
        check::finite("queries", queries, self.d)?;
        let _g = self.res.lock();
        if k > MAX_K {
            return self.search_large_k(queries, nq, k, params.selector);
        }
        let allow = self.allow(params.selector)?;
        // Queries in batches whose candidates (over-fetched for TF32 and FP16: 12 bytes
        // each) fit the temporary memory.
        let batch = (self.res.temp_memory() / (12 * (overfetch(k) + k))).max(1);
        if nq <= batch {
            return self.search_host(queries, nq, k, &allow);
        }
        let mut out = SearchResult {
            nq,
            k,
            distances: Vec::with_capacity(nq * k),
            labels: Vec::with_capacity(nq * k),
        };
        for part in queries.chunks(batch * self.d) {
            let r = self.search_host(part, part.len() / self.d, k, &allow)?;
            out.distances.extend(r.distances);
            out.labels.extend(r.labels);
        }
        Ok(out)
    }
    fn range_search_with(
        &self,
        queries: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        check::radius(radius)?;
        check::vectors("queries", queries, self.d)?;
        check::finite("queries", queries, self.d)?;
        let _g = self.res.lock();
        let allow = self.allow(params.selector)?;
        self.range_search_gpu(queries, radius, &allow)
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        self.reconstruct_n(id, 1)
    }
    fn reconstruct_n(&self, start: Idx, n: usize) -> Result<Vec<f32>> {
        if start < 0 || start as usize + n > self.ntotal {
            return Err(Error::IdNotFound(start.max(0) + n as Idx - 1));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let _g = self.res.lock();
        let rows = start as usize * self.d..(start as usize + n) * self.d;
        let stream = &self.res.stream;
        match &self.data {
            Store::F32(data) => stream
                .clone_dtoh(&data.slice(rows))
                .map_err(gpu_err("copying vectors back")),
            Store::F16(data) => Ok(stream
                .clone_dtoh(&data.slice(rows))
                .map_err(gpu_err("copying vectors back"))?
                .into_iter()
                .map(|b| half::f16::from_bits(b).to_f32())
                .collect()),
        }
    }
    fn reset(&mut self) -> Result<()> {
        self.ntotal = 0;
        self.max_norm_sq = 0.0;
        Ok(())
    }
    fn description(&self) -> String {
        "Flat".into()
    }
    fn view(&self) -> fathom_index::IndexView<'_> {
        fathom_index::IndexView::Other
    }
}
