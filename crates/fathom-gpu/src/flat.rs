//! `GpuIndexFlat`: exact search on the GPU — cuBLAS inner products by tiles, fused with the
//! norms and the k-selection kernel.

use std::sync::Arc;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use fathom_core::{
    Error, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult, check,
};
use fathom_index::{Index, IndexFlat};

use crate::kernels::BLOCK;
use crate::resources::{
    GpuResources, check_k, gpu_err, kpow, no_range_search, refuse_selector, topk_smem,
};

/// Exact k-NN on a GPU (Faiss's `GpuIndexFlat`, `GpuIndexFlatL2`, `GpuIndexFlatIP`): the
/// vectors and their norms live in device memory; a search computes query × vector inner
/// products with cuBLAS, a tile at a time within the resources' temporary memory, and
/// merges each tile into the per-query best k (k ≤ 2048) with one kernel.
///
/// Its CPU form (`index_gpu_to_cpu`) is an [`IndexFlat`] with the same vectors.
pub struct GpuIndexFlat {
    res: Arc<GpuResources>,
    d: usize,
    metric: MetricType,
    data: CudaSlice<f32>,
    norms: CudaSlice<f32>,
    ntotal: usize,
    capacity: usize,
}

impl GpuIndexFlat {
    /// An empty index of dimension `d` on `res`'s device; `metric` is L2 or inner product.
    pub fn new(res: Arc<GpuResources>, d: usize, metric: MetricType) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("dimension must be at least 1"));
        }
        if !matches!(metric, MetricType::L2 | MetricType::InnerProduct) {
            return Err(Error::Unsupported(format!(
                "GPU flat indexes search by L2 or inner product, not {metric}"
            )));
        }
        let data = res.upload::<f32>(&[])?;
        let norms = res.upload::<f32>(&[])?;
        Ok(GpuIndexFlat {
            res,
            d,
            metric,
            data,
            norms,
            ntotal: 0,
            capacity: 0,
        })
    }

    /// A GPU copy of `cpu`.
    pub fn from_cpu(res: Arc<GpuResources>, cpu: &IndexFlat) -> Result<Self> {
        let mut gpu = Self::new(res, cpu.dim(), cpu.metric())?;
        gpu.add(&cpu.reconstruct_n(0, cpu.ntotal())?)?;
        Ok(gpu)
    }

    /// The CPU index with the same vectors.
    pub fn to_cpu(&self) -> Result<IndexFlat> {
        IndexFlat::from_vectors(self.d, self.metric, self.reconstruct_n(0, self.ntotal)?)
    }

    /// The resources this index runs on.
    pub fn resources(&self) -> &Arc<GpuResources> {
        &self.res
    }

    fn grow(&mut self, needed: usize) -> Result<()> {
        if needed <= self.capacity {
            return Ok(());
        }
        let cap = needed.max(self.capacity * 2).max(1024);
        let stream = &self.res.stream;
        // SAFETY: the new buffers are written (copy of the old contents, then the added
        // vectors) before any read of the first `ntotal` / new entries.
        let mut data =
            unsafe { stream.alloc::<f32>(cap * self.d) }.map_err(gpu_err("allocating"))?;
        // SAFETY: as above — entries are written before they are read.
        let mut norms = unsafe { stream.alloc::<f32>(cap) }.map_err(gpu_err("allocating"))?;
        if self.ntotal > 0 {
            stream
                .memcpy_dtod(
                    &self.data.slice(..self.ntotal * self.d),
                    &mut data.slice_mut(..self.ntotal * self.d),
                )
                .map_err(gpu_err("copying"))?;
            stream
                .memcpy_dtod(
                    &self.norms.slice(..self.ntotal),
                    &mut norms.slice_mut(..self.ntotal),
                )
                .map_err(gpu_err("copying"))?;
        }
        self.data = data;
        self.norms = norms;
        self.capacity = cap;
        Ok(())
    }

    /// Searches queries already on the device (`nq × d`), appending into `best`.
    pub(crate) fn search_device(
        &self,
        queries: &CudaSlice<f32>,
        nq: usize,
        k: usize,
    ) -> Result<SearchResult> {
        let res = &*self.res;
        let best = res.new_best(nq, k)?;
        let mut best = best;
        if self.ntotal == 0 || nq == 0 {
            return best.finish(res, self.metric);
        }
        let stream = &res.stream;
        let l2 = i32::from(self.metric == MetricType::L2);
        let d = self.d;
        // Query norms (L2 only).
        let mut qnorm = stream
            .alloc_zeros::<f32>(nq)
            .map_err(gpu_err("allocating"))?;
        if l2 == 1 {
            let (n64, d32) = (nq as i64, d as i32);
            let mut b = stream.launch_builder(&res.kernels.l2_norms);
            b.arg(queries).arg(&n64).arg(&d32).arg(&mut qnorm);
            // SAFETY: l2_norms(const float*, long long n, int d, float*) reads n·d floats
            // of `queries` (nq × d) and writes n of `qnorm` (nq).
            unsafe { b.launch(LaunchConfig::for_num_elems(nq as u32)) }
                .map_err(gpu_err("l2_norms"))?;
        }
        // Tiles: at most 4096 queries, and as many vectors as the temporary memory allows.
        let tq = nq.min(4096);
        let budget = res.temp_memory() / 4;
        let tx = (budget / tq).clamp(1024, 1 << 20).min(self.ntotal);
        let mut ip = stream
            .alloc_zeros::<f32>(tq * tx)
            .map_err(gpu_err("allocating a tile"))?;
        let kp = kpow(k);
        let smem = topk_smem(kp);
        res.kernels.check_smem(smem, "k-selection")?;
        let (k32, kp32) = (k as i32, kp as i32);
        for q0 in (0..nq).step_by(tq) {
            let qn = tq.min(nq - q0);
            for x0 in (0..self.ntotal).step_by(tx) {
                let xn = tx.min(self.ntotal - x0);
                // Row-major C[qn × xn] = Q·Xᵀ is column-major Cᵀ[xn × qn] = op(X)ᵀ·Q with
                // X seen column-major as d × xn and Q as d × qn.
                let cfg = GemmConfig {
                    transa: cublasOperation_t::CUBLAS_OP_T,
                    transb: cublasOperation_t::CUBLAS_OP_N,
                    m: xn as i32,
                    n: qn as i32,
                    k: d as i32,
                    alpha: 1.0f32,
                    lda: d as i32,
                    ldb: d as i32,
                    beta: 0.0f32,
                    ldc: xn as i32,
                };
                let a = self.data.slice(x0 * d..(x0 + xn) * d);
                let bq = queries.slice(q0 * d..(q0 + qn) * d);
                let mut c = ip.slice_mut(..qn * xn);
                // SAFETY: A is xn rows of d floats, B qn rows of d, C has qn·xn floats —
                // the shapes the configuration states.
                unsafe { res.blas.gemm(cfg, &a, &bq, &mut c) }
                    .map_err(|e| Error::GpuUnavailable(format!("cuBLAS sgemm: {e}")))?;
                let (ld, nt, id0) = (xn as i32, xn as i32, x0 as i64);
                let qnv = qnorm.slice(q0..q0 + qn);
                let xnv = self.norms.slice(x0..x0 + xn);
                let mut bd = best.d.slice_mut(q0 * k..(q0 + qn) * k);
                let mut bi = best.i.slice_mut(q0 * k..(q0 + qn) * k);
                let cfgl = LaunchConfig {
                    grid_dim: (qn as u32, 1, 1),
                    block_dim: (BLOCK, 1, 1),
                    shared_mem_bytes: smem as u32,
                };
                let ipv = ip.slice(..qn * xn);
                let mut b = stream.launch_builder(&res.kernels.select_tile);
                b.arg(&ipv)
                    .arg(&ld)
                    .arg(&nt)
                    .arg(&id0)
                    .arg(&qnv)
                    .arg(&xnv)
                    .arg(&l2);
                b.arg(&k32).arg(&kp32).arg(&mut bd).arg(&mut bi);
                // SAFETY: select_tile's arguments in order: the qn × xn tile (row stride
                // xn), its width, the id of its first vector, qn query norms, xn vector
                // norms, the metric flag, k, kpow, and qn × k best keys and ids; one block
                // per query with the shared memory topk_smem(kpow) its layout needs.
                unsafe { b.launch(cfgl) }.map_err(gpu_err("select_tile"))?;
            }
        }
        best.finish(res, self.metric)
    }
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
        let res = self.res.clone();
        let _g = res.lock();
        self.grow(self.ntotal + n)?;
        let stream = &res.stream;
        let (start, d) = (self.ntotal, self.d);
        stream
            .memcpy_htod(x, &mut self.data.slice_mut(start * d..(start + n) * d))
            .map_err(gpu_err("copying vectors"))?;
        let (n64, d32) = (n as i64, d as i32);
        let src = self.data.slice(start * d..(start + n) * d);
        let mut dst = self.norms.slice_mut(start..start + n);
        let mut b = stream.launch_builder(&res.kernels.l2_norms);
        b.arg(&src).arg(&n64).arg(&d32).arg(&mut dst);
        // SAFETY: l2_norms reads n rows of d floats from `src` and writes n floats to
        // `dst`, the slices just sized so.
        unsafe { b.launch(LaunchConfig::for_num_elems(n as u32)) }.map_err(gpu_err("l2_norms"))?;
        self.ntotal += n;
        Ok(())
    }
    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        check_k(k)?;
        refuse_selector(params)?;
        let nq = check::vectors("queries", queries, self.d)?;
        check::finite("queries", queries, self.d)?;
        let _g = self.res.lock();
        let q = self.res.upload(queries)?;
        self.search_device(&q, nq, k)
    }
    fn range_search_with(
        &self,
        _q: &[f32],
        _r: f32,
        _p: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        Err(no_range_search())
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
        let s = start as usize;
        self.res
            .stream
            .clone_dtoh(&self.data.slice(s * self.d..(s + n) * self.d))
            .map_err(gpu_err("copying vectors back"))
    }
    fn reset(&mut self) -> Result<()> {
        self.ntotal = 0;
        Ok(())
    }
    fn description(&self) -> String {
        "Flat".into()
    }
    fn view(&self) -> fathom_index::IndexView<'_> {
        fathom_index::IndexView::Other
    }
}
