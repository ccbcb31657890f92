//! `GpuIndexIvfFlat` and `GpuIndexIvfPq`: IVF search on the GPU over the CPU index's lists.
//!
//! Each keeps its CPU form — the `IndexIvfFlat` / `IndexIvfPq` that training, adding and
//! the file format use — and a device copy of its lists and coarse centroids, refreshed
//! after changes, that searches scan: the coarse step is a `GpuIndexFlat` search for the
//! `nprobe` nearest centroids, the fine step one kernel with a block per query. The device
//! lists are interleaved by groups of 32 rows (`interleave_list`), so a warp reads 32
//! adjacent floats or code bytes per step instead of 32 rows' worth of cache lines.

use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
    check,
};
use fathom_index::ivf::IvfCodec;
use fathom_index::{
    Index, IndexFlat, IndexIvf, IndexIvfFlat, IndexIvfPq, IndexIvfPqFastScan,
    IndexIvfScalarQuantizer, IndexView,
};
use fathom_quant::{ProductQuantizer, QuantizerType};

use crate::flat::GpuIndexFlat;
use crate::kernels::BLOCK;
use crate::resources::{Allow, GpuResources, MAX_K, check_k, gpu_err, kpow, topk_smem};

/// The lists on the device: entries of list `l` are rows `offsets[l] .. offsets[l + 1]`.
struct DeviceLists {
    offsets: CudaSlice<i64>,
    ids: CudaSlice<i64>,
    codes: CudaSlice<u8>,
}

/// What the device holds of an IVF index, rebuilt when the CPU index changed.
struct Device {
    lists: DeviceLists,
    coarse: GpuIndexFlat,
    /// Coarse centroids (`nlist × d`), for PQ residual tables.
    centroids: CudaSlice<f32>,
    /// The codec's tables: PQ codebooks (`M × 2^nbits × dsub`) for IVF-PQ, the scalar
    /// quantizer's decoding terms (`a` then `b`, d each: x = a·code + b) for IVF-SQ.
    pq: Option<CudaSlice<f32>>,
    /// Rows of each list on the device (padded to a multiple of 32).
    rows: Vec<usize>,
    /// The id of every device row (−1: padding), for id selectors.
    ids_host: Vec<Idx>,
}

/// The state both IVF indexes share: the CPU index and its device copy.
struct GpuIvf<C: IvfCodec + 'static> {
    res: Arc<GpuResources>,
    cpu: IndexIvf<C>,
    device: Mutex<Option<Arc<Device>>>,
}

impl<C: IvfCodec + 'static> GpuIvf<C> {
    fn new(res: Arc<GpuResources>, cpu: IndexIvf<C>) -> Result<Self> {
        if !matches!(cpu.quantizer().view(), IndexView::Flat(_)) {
            return Err(Error::Unsupported(format!(
                "GPU IVF indexes need a flat coarse quantizer; {} has {}",
                cpu.description(),
                cpu.quantizer().description()
            )));
        }
        if !matches!(cpu.metric(), MetricType::L2 | MetricType::InnerProduct) {
            return Err(Error::Unsupported(format!(
                "GPU IVF indexes search by L2 or inner product, not {}",
                cpu.metric()
            )));
        }
        Ok(GpuIvf {
            res,
            cpu,
            device: Mutex::new(None),
        })
    }

    fn invalidate(&mut self) {
        *self.device.get_mut().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The device copy, built from the CPU index if it changed since.
    fn device(&self, tables: Option<&[f32]>) -> Result<Arc<Device>> {
        let mut slot = self.device.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dev) = &*slot {
            return Ok(dev.clone());
        }
        let lists = self.cpu.invlists();
        let nlist = self.cpu.nlist();
        // IVF-Flat codes are the vectors' floats, interleaved 4 bytes at a time; PQ and SQ
        // codes (the codecs with tables) a byte at a time.
        let elem = if tables.is_some() { 1 } else { 4 };
        let mut offsets = Vec::with_capacity(nlist + 1);
        let (mut ids, mut codes) = (Vec::new(), Vec::new());
        offsets.push(0i64);
        let mut unpacked = Vec::new();
        for l in 0..nlist {
            // Fast-scan lists hold blocks: their codes are unpacked one by one first.
            let list_codes = if lists.block_layout().is_some() {
                unpacked.clear();
                for o in 0..lists.list_size(l) {
                    unpacked.extend_from_slice(&lists.code(l, o));
                }
                &unpacked[..]
            } else {
                lists.codes(l)
            };
            interleave_list(lists.ids(l), list_codes, elem, &mut ids, &mut codes)?;
            offsets.push(ids.len() as i64);
        }
        let res = &self.res;
        let centroids_host = self.cpu.quantizer().reconstruct_n(0, nlist)?;
        let IndexView::Flat(q) = self.cpu.quantizer().view() else {
            return Err(Error::Unsupported("GPU IVF needs a flat quantizer".into()));
        };
        let coarse = GpuIndexFlat::from_cpu(res.clone(), q)?;
        let dev = Arc::new(Device {
            lists: DeviceLists {
                offsets: res.upload(&offsets)?,
                ids: res.upload(&ids)?,
                codes: res.upload(&codes)?,
            },
            coarse,
            centroids: res.upload(&centroids_host)?,
            pq: tables.map(|c| res.upload(c)).transpose()?,
            rows: offsets.windows(2).map(|w| (w[1] - w[0]) as usize).collect(),
            ids_host: ids,
        });
        *slot = Some(dev.clone());
        Ok(dev)
    }

    /// The common part of a search: checks, the coarse step on the GPU, upload.
    fn prepare(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
        tables: Option<&[f32]>,
    ) -> Result<Option<Prepared>> {
        check_k(k)?;
        if !self.cpu.is_trained() {
            return Err(Error::NotTrained(format!(
                "search {}",
                self.cpu.description()
            )));
        }
        let d = self.cpu.dim();
        let nq = check::vectors("queries", queries, d)?;
        check::finite("queries", queries, d)?;
        let nprobe = params
            .nprobe
            .unwrap_or(self.cpu.nprobe)
            .min(self.cpu.nlist());
        if nprobe == 0 {
            return Err(Error::invalid(
                "nprobe is 0; at least one list must be probed",
            ));
        }
        check_k(nprobe).map_err(|e| e.context("nprobe"))?;
        let dev = self.device(tables)?;
        let _g = self.res.lock();
        let q = self.res.upload(queries)?;
        if nq == 0 {
            return Ok(None);
        }
        let coarse = dev.coarse.search_device(&q, nq, nprobe)?;
        let probes = self.res.upload(&coarse.labels)?;
        let best = self.res.new_best(nq, k)?;
        let allow = Allow::of(&self.res, params.selector, dev.ids_host.iter().copied())?;
        drop(_g);
        Ok(Some(Prepared {
            dev,
            q,
            probes,
            probes_host: coarse.labels,
            allow,
            best,
            nq,
            nprobe,
        }))
    }
}

/// Appends a list in the device layout (kernels.cu, `interleaved`): its rows padded to a
/// multiple of 32 (padding ids −1, zero codes), each group of 32 storing element e of all
/// 32 rows side by side, an element being `elem` bytes of a row's code.
fn interleave_list(
    list_ids: &[Idx],
    list_codes: &[u8],
    elem: usize,
    ids: &mut Vec<Idx>,
    codes: &mut Vec<u8>,
) -> Result<()> {
    let n = list_ids.len();
    if n == 0 {
        return Ok(());
    }
    let code_size = list_codes.len() / n;
    if code_size * n != list_codes.len() || !code_size.is_multiple_of(elem) {
        return Err(Error::invalid(format!(
            "a list of {n} entries holds {} code bytes, not a multiple of {elem}-byte elements",
            list_codes.len()
        )));
    }
    let elems = code_size / elem;
    let padded = n.div_ceil(32) * 32;
    ids.extend_from_slice(list_ids);
    ids.resize(ids.len() + padded - n, -1);
    let base = codes.len();
    codes.resize(base + padded * code_size, 0);
    for (r, code) in list_codes.chunks_exact(code_size).enumerate() {
        let (group, lane) = (r / 32, r % 32);
        for e in 0..elems {
            let at = base + ((group * elems + e) * 32 + lane) * elem;
            codes[at..at + elem].copy_from_slice(&code[e * elem..(e + 1) * elem]);
        }
    }
    Ok(())
}

struct Prepared {
    dev: Arc<Device>,
    q: CudaSlice<f32>,
    probes: CudaSlice<i64>,
    /// The same probes on the host (`nq × nprobe`, −1: none).
    probes_host: Vec<Idx>,
    /// The rows the search may return (the id selector, per device row).
    allow: Allow,
    best: crate::resources::Best,
    nq: usize,
    nprobe: usize,
}

/// Implements `Index` for a GPU IVF index through its `ivf: GpuIvf<_>` field, the CPU
/// index answering for everything but search.
macro_rules! gpu_ivf_index {
    // Range search on the CPU form (the same lists) where the codec has no GPU range kernel.
    ($ty:ty, $cpu:ty, $search:ident) => {
        impl $ty {
            fn range_on_cpu_form(
                &self,
                queries: &[f32],
                radius: f32,
                params: &SearchParams<'_>,
            ) -> Result<RangeSearchResult> {
                self.ivf.cpu.range_search_with(queries, radius, params)
            }
        }
        gpu_ivf_index!($ty, $cpu, $search, range_on_cpu_form);
    };
    ($ty:ty, $cpu:ty, $search:ident, $range:ident) => {
        impl $ty {
            /// The CPU index (what `write_index` saves).
            pub fn cpu(&self) -> &$cpu {
                &self.ivf.cpu
            }

            /// The CPU index, taken back.
            pub fn into_cpu(self) -> $cpu {
                self.ivf.cpu
            }

            /// Lists probed per query.
            pub fn set_nprobe(&mut self, nprobe: usize) {
                self.ivf.cpu.nprobe = nprobe;
            }
        }

        impl Index for $ty {
            fn dim(&self) -> usize {
                self.ivf.cpu.dim()
            }
            fn ntotal(&self) -> usize {
                self.ivf.cpu.ntotal()
            }
            fn metric(&self) -> MetricType {
                self.ivf.cpu.metric()
            }
            fn is_trained(&self) -> bool {
                self.ivf.cpu.is_trained()
            }
            fn train(&mut self, x: &[f32]) -> Result<()> {
                self.ivf.invalidate();
                crate::kmeans::train_ivf_on_gpu(&self.ivf.res, &mut self.ivf.cpu, x)
            }
            fn add(&mut self, x: &[f32]) -> Result<()> {
                self.ivf.invalidate();
                self.ivf.cpu.add(x)
            }
            fn add_with_ids(&mut self, x: &[f32], ids: &[Idx]) -> Result<()> {
                self.ivf.invalidate();
                self.ivf.cpu.add_with_ids(x, ids)
            }
            fn search_with(
                &self,
                queries: &[f32],
                k: usize,
                params: &SearchParams<'_>,
            ) -> Result<SearchResult> {
                // k > 2048, beyond the selection kernels, runs on the CPU form, which holds
                // the same lists.
                if k > MAX_K {
                    return self.ivf.cpu.search_with(queries, k, params);
                }
                self.$search(queries, k, params)
            }
            fn range_search_with(
                &self,
                queries: &[f32],
                radius: f32,
                params: &SearchParams<'_>,
            ) -> Result<RangeSearchResult> {
                self.$range(queries, radius, params)
            }
            fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
                self.ivf.cpu.reconstruct(id)
            }
            fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
                self.ivf.invalidate();
                self.ivf.cpu.remove_ids(selector)
            }
            fn reset(&mut self) -> Result<()> {
                self.ivf.invalidate();
                self.ivf.cpu.reset()
            }
            fn ids_are_positions(&self) -> bool {
                false
            }
            fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
                if name != "nprobe" {
                    return Err(Error::invalid(format!(
                        "GPU IVF indexes have the run-time parameter nprobe, not {name:?}"
                    )));
                }
                self.ivf.cpu.set_param(name, value)
            }
            fn param(&self, name: &str) -> Option<f64> {
                (name == "nprobe").then(|| self.ivf.cpu.nprobe as f64)
            }
            fn parameter_ranges(&self) -> Vec<fathom_index::autotune::ParameterRange> {
                self.ivf
                    .cpu
                    .parameter_ranges()
                    .into_iter()
                    .filter(|r| r.name == "nprobe")
                    .collect()
            }
            fn description(&self) -> String {
                self.ivf.cpu.description()
            }
            fn view(&self) -> IndexView<'_> {
                IndexView::Other
            }
        }
    };
}

fn launch_cfg(nq: usize, smem: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (nq as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: smem as u32,
    }
}

/// IVF with full vectors in the lists, searched on the GPU (Faiss's `GpuIndexIVFFlat`).
/// Training assigns on the GPU (k-means); its CPU form is the [`IndexIvfFlat`] it wraps.
pub struct GpuIndexIvfFlat {
    ivf: GpuIvf<fathom_index::ivf::IvfFlat>,
    order: IvfScanOrder,
}

/// How a [`GpuIndexIvfFlat`] search walks the lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IvfScanOrder {
    /// A block per query scans the query's `nprobe` lists: each query reads its lists'
    /// rows from memory.
    QueryMajor,
    /// A block per list and up to 16 of the queries probing it compares each row, read
    /// once, with all of them and writes the distances; a block per query then selects
    /// from its lists' distances. Memory traffic falls with the queries sharing a list.
    ListMajor,
    /// List-major when the batch's queries share lists — at least 4 probes per probed list
    /// on average — query-major otherwise.
    #[default]
    Auto,
}

/// Queries a list-major block compares with each row (kernels.cu, LIST_MAJOR_QUERIES).
const LIST_MAJOR_QUERIES: usize = 16;

/// The work of a list-major pass over a batch: blocks of `(list, first pair, pairs)`, each
/// pair a query probing that list and the place of its distances in the output; `seg`
/// gives, per query and probe, the place of that pair's distances (−1: no list).
#[derive(Debug, PartialEq)]
struct ListMajorPlan {
    block_list: Vec<i64>,
    block_pair0: Vec<i64>,
    block_pairs: Vec<i32>,
    pair_query: Vec<i64>,
    pair_out: Vec<i64>,
    seg: Vec<i64>,
    /// Distances written in all (padding rows included).
    keys: usize,
}

/// Groups the probes (`nq × nprobe`, lists < `rows.len()` or −1) by list, queries in
/// order within a list, into blocks of at most `per_block` pairs; each pair's distances
/// take `rows[list]` places.
fn list_major_plan(
    probes: &[Idx],
    nprobe: usize,
    rows: &[usize],
    per_block: usize,
) -> ListMajorPlan {
    let nlist = rows.len();
    let mut start = vec![0usize; nlist + 1];
    for &l in probes.iter().filter(|&&l| l >= 0) {
        start[l as usize + 1] += 1;
    }
    for l in 0..nlist {
        start[l + 1] += start[l];
    }
    let npairs = start[nlist];
    // (query·nprobe + probe) of each pair, by list.
    let mut by_list = vec![0usize; npairs];
    let mut fill = start.clone();
    for (qp, &l) in probes.iter().enumerate().filter(|(_, l)| **l >= 0) {
        by_list[fill[l as usize]] = qp;
        fill[l as usize] += 1;
    }
    let mut plan = ListMajorPlan {
        block_list: Vec::new(),
        block_pair0: Vec::new(),
        block_pairs: Vec::new(),
        pair_query: Vec::with_capacity(npairs),
        pair_out: Vec::with_capacity(npairs),
        seg: vec![-1; probes.len()],
        keys: 0,
    };
    for l in 0..nlist {
        for chunk in by_list[start[l]..start[l + 1]].chunks(per_block.max(1)) {
            plan.block_list.push(l as i64);
            plan.block_pair0.push(plan.pair_query.len() as i64);
            plan.block_pairs.push(chunk.len() as i32);
            for &qp in chunk {
                plan.pair_query.push((qp / nprobe) as i64);
                plan.pair_out.push(plan.keys as i64);
                plan.seg[qp] = plan.keys as i64;
                plan.keys += rows[l];
            }
        }
    }
    plan
}

impl GpuIndexIvfFlat {
    /// An untrained index of `nlist` lists over vectors of dimension `d`.
    pub fn new(res: Arc<GpuResources>, d: usize, nlist: usize, metric: MetricType) -> Result<Self> {
        let q = IndexFlat::new(d, metric)?;
        Self::from_cpu(res, IndexIvfFlat::new(Box::new(q), nlist, metric)?)
    }

    /// Searches `cpu` on the GPU (the index moves in; `to_cpu` gives it back).
    pub fn from_cpu(res: Arc<GpuResources>, cpu: IndexIvfFlat) -> Result<Self> {
        Ok(GpuIndexIvfFlat {
            ivf: GpuIvf::new(res, cpu)?,
            order: IvfScanOrder::Auto,
        })
    }

    /// How searches walk the lists ([`IvfScanOrder::Auto`] unless set).
    pub fn set_scan_order(&mut self, order: IvfScanOrder) {
        self.order = order;
    }

    /// Range search on the GPU (`ivf_flat_range`), in passes (`crate::range`).
    fn range_gpu(
        &self,
        queries: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        check::radius(radius)?;
        let d = self.ivf.cpu.dim();
        check::vectors("queries", queries, d)?;
        if params.nprobe.unwrap_or(self.ivf.cpu.nprobe) > MAX_K {
            // More lists than the coarse step's selection takes: the CPU form.
            return self.ivf.cpu.range_search_with(queries, radius, params);
        }
        let ip = self.ivf.cpu.metric() == MetricType::InnerProduct;
        let bound = if ip { -radius } else { radius };
        let temp = self.ivf.res.temp_memory();
        crate::range::in_batches(queries, d, temp, ip, |rows, _, cap| {
            self.range_pass(rows, cap, bound, params)
        })
    }

    /// One range pass over host queries with room for `cap` hits each.
    fn range_pass(
        &self,
        queries: &[f32],
        cap: usize,
        bound: f32,
        params: &SearchParams<'_>,
    ) -> Result<crate::range::RangeHits> {
        let Some(p) = self.ivf.prepare(queries, 1, params, None)? else {
            return Ok(crate::range::RangeHits {
                counts: Vec::new(),
                cap,
                keys: Vec::new(),
                ids: Vec::new(),
            });
        };
        let res = &*self.ivf.res;
        let stream = &res.stream;
        let d = self.ivf.cpu.dim();
        let smem = 4 * d;
        res.kernels.check_smem(smem, "IVF-Flat range search")?;
        let _g = res.lock();
        let nq = p.nq;
        let mut out = crate::range::RangeBuffers::new(res, nq, cap)?;
        let (d32, np32, cap64) = (d as i32, p.nprobe as i32, cap as i64);
        let l2 = i32::from(self.ivf.cpu.metric() == MetricType::L2);
        let lists = &p.dev.lists;
        let mut b = stream.launch_builder(&res.kernels.ivf_flat_range);
        b.arg(&p.q).arg(&d32).arg(&p.probes).arg(&np32);
        b.arg(&lists.offsets).arg(&lists.codes).arg(&lists.ids);
        b.arg(&*p.allow.mask)
            .arg(&p.allow.on)
            .arg(&l2)
            .arg(&bound)
            .arg(&cap64);
        b.arg(&mut out.count).arg(&mut out.keys).arg(&mut out.ids);
        // SAFETY: ivf_flat_range's arguments in order: nq × d queries, d, nq × nprobe list
        // numbers, nprobe, nlist + 1 offsets, the interleaved rows of d floats and their
        // ids, the allow mask (a byte per row) and its flag, the metric flag, the key
        // bound, cap, nq counters and nq × cap result keys and ids (writes past cap are
        // skipped); one block per query with 4·d bytes of shared memory (the query).
        unsafe { b.launch(launch_cfg(nq, smem)) }.map_err(gpu_err("ivf_flat_range"))?;
        out.download(res)
    }

    /// The list-major pass (kernels `ivf_flat_list_major`, then `ivf_select_segments`)
    /// over the prepared batch, in query ranges whose distances fit the temporary memory.
    fn search_list_major(&self, p: &mut Prepared, k: usize) -> Result<()> {
        let res = &*self.ivf.res;
        let stream = &res.stream;
        let (d, nprobe, nq) = (self.ivf.cpu.dim(), p.nprobe, p.nq);
        let l2 = i32::from(self.ivf.cpu.metric() == MetricType::L2);
        let rows = &p.dev.rows;
        let lists = &p.dev.lists;
        let smem_scan = 4 * LIST_MAJOR_QUERIES * d;
        res.kernels.check_smem(smem_scan, "list-major IVF-Flat")?;
        let kp = kpow(k);
        let smem_select = topk_smem(kp);
        res.kernels.check_smem(smem_select, "k-selection")?;
        // Queries per pass: their distances (4 bytes each) within the temporary memory.
        let budget = (res.temp_memory() / 4).max(1);
        let mut q0 = 0;
        while q0 < nq {
            let mut q1 = q0;
            let mut keys = 0usize;
            while q1 < nq {
                let mine: usize = p.probes_host[q1 * nprobe..(q1 + 1) * nprobe]
                    .iter()
                    .filter(|&&l| l >= 0)
                    .map(|&l| rows[l as usize])
                    .sum();
                if q1 > q0 && keys + mine > budget {
                    break;
                }
                keys += mine;
                q1 += 1;
            }
            let plan = list_major_plan(
                &p.probes_host[q0 * nprobe..q1 * nprobe],
                nprobe,
                rows,
                LIST_MAJOR_QUERIES,
            );
            let mut dists = stream
                .alloc_zeros::<f32>(plan.keys.max(1))
                .map_err(gpu_err("allocating distances"))?;
            let up = |v: &[i64]| res.upload(v);
            let (block_list, block_pair0, pair_query, pair_out, seg) = (
                up(&plan.block_list)?,
                up(&plan.block_pair0)?,
                up(&plan.pair_query)?,
                up(&plan.pair_out)?,
                up(&plan.seg)?,
            );
            let block_pairs = res.upload(&plan.block_pairs)?;
            let d32 = d as i32;
            let queries = p.q.slice(q0 * d..q1 * d);
            if !plan.block_list.is_empty() {
                let mut b = stream.launch_builder(&res.kernels.ivf_flat_list_major);
                b.arg(&queries)
                    .arg(&d32)
                    .arg(&lists.offsets)
                    .arg(&lists.codes);
                b.arg(&block_list).arg(&block_pair0).arg(&block_pairs);
                b.arg(&pair_query).arg(&pair_out).arg(&l2).arg(&mut dists);
                let cfg = LaunchConfig {
                    grid_dim: (plan.block_list.len() as u32, 1, 1),
                    block_dim: (BLOCK, 1, 1),
                    shared_mem_bytes: smem_scan as u32,
                };
                // SAFETY: ivf_flat_list_major's arguments in order: the pass's queries
                // ((q1 − q0) × d; pair_query indexes them), d, nlist + 1 offsets, the
                // interleaved rows of d floats (the IVF-Flat codes), per block its list,
                // first pair and pair count (≤ 16, the shared memory holds 16 queries),
                // per pair its query and output place, the metric flag, and the distances
                // (plan.keys floats: every pair's segment of its list's rows).
                unsafe { b.launch(cfg) }.map_err(gpu_err("ivf_flat_list_major"))?;
            }
            let probes = p.probes.slice(q0 * nprobe..q1 * nprobe);
            let (np32, k32, kp32) = (nprobe as i32, k as i32, kp as i32);
            let mut bd = p.best.d.slice_mut(q0 * k..q1 * k);
            let mut bi = p.best.i.slice_mut(q0 * k..q1 * k);
            let mut b = stream.launch_builder(&res.kernels.ivf_select_segments);
            b.arg(&dists).arg(&seg).arg(&probes).arg(&np32);
            b.arg(&lists.offsets).arg(&lists.ids);
            b.arg(&*p.allow.mask).arg(&p.allow.on).arg(&k32).arg(&kp32);
            b.arg(&mut bd).arg(&mut bi);
            // SAFETY: ivf_select_segments's arguments in order: the distances, per query
            // and probe the place of its segment (−1: none), the probes, nprobe, nlist + 1
            // offsets and the lists' ids, the allow mask (a byte per device row) and its
            // flag, k, kpow, and (q1 − q0) × k best keys and ids;
            // one block per query with topk_smem(kpow) bytes of shared memory.
            unsafe { b.launch(launch_cfg(q1 - q0, smem_select)) }
                .map_err(gpu_err("ivf_select_segments"))?;
            q0 = q1;
        }
        Ok(())
    }

    fn search_gpu(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let metric = self.ivf.cpu.metric();
        let Some(mut p) = self.ivf.prepare(queries, k, params, None)? else {
            return Ok(SearchResult::empty(0, k, metric));
        };
        let res = &*self.ivf.res;
        let d = self.ivf.cpu.dim();
        let list_major = match self.order {
            IvfScanOrder::QueryMajor => false,
            IvfScanOrder::ListMajor => true,
            // Auto: list-major where queries share lists and 16 queries fit the shared
            // memory (not for very wide vectors).
            IvfScanOrder::Auto if 4 * LIST_MAJOR_QUERIES * d > res.kernels.max_smem => false,
            IvfScanOrder::Auto => {
                let probed = p.probes_host.iter().filter(|&&l| l >= 0).count();
                let mut seen = vec![false; self.ivf.cpu.nlist()];
                let distinct = p
                    .probes_host
                    .iter()
                    .filter(|&&l| l >= 0 && !std::mem::replace(&mut seen[l as usize], true))
                    .count();
                probed >= 4 * distinct.max(1)
            }
        };
        if list_major {
            let _g = res.lock();
            self.search_list_major(&mut p, k)?;
            return p.best.finish(res, metric);
        }
        let kp = kpow(k);
        let smem = topk_smem(kp) + 4 * d;
        res.kernels.check_smem(smem, "IVF-Flat search")?;
        let _g = res.lock();
        let (d32, np32, l2, k32, kp32) = (
            d as i32,
            p.nprobe as i32,
            i32::from(metric == MetricType::L2),
            k as i32,
            kp as i32,
        );
        let lists = &p.dev.lists;
        let mut b = res.stream.launch_builder(&res.kernels.ivf_flat_scan);
        b.arg(&p.q)
            .arg(&d32)
            .arg(&p.probes)
            .arg(&np32)
            .arg(&lists.offsets);
        b.arg(&lists.codes).arg(&lists.ids);
        b.arg(&*p.allow.mask).arg(&p.allow.on);
        b.arg(&l2).arg(&k32).arg(&kp32);
        b.arg(&mut p.best.d).arg(&mut p.best.i);
        // SAFETY: ivf_flat_scan's arguments in order: nq × d queries, d, nq × nprobe list
        // numbers (−1 or < nlist), nprobe, nlist + 1 offsets into the concatenated lists,
        // their rows of d floats (the IVF-Flat codes are the vectors' bytes) and ids, the
        // allow mask (a byte per row) and its flag, the metric flag, k, kpow, nq × k best
        // keys and ids; one block per query with the shared memory computed above.
        unsafe { b.launch(launch_cfg(p.nq, smem)) }.map_err(gpu_err("ivf_flat_scan"))?;
        p.best.finish(res, metric)
    }
}

gpu_ivf_index!(GpuIndexIvfFlat, IndexIvfFlat, search_gpu, range_gpu);

/// Whether the GPU's PQ scan takes `pq`: 8- or 4-bit codes (the look-up table, M × 2^nbits
/// floats, must also fit the device's shared memory, which the search checks).
fn check_gpu_pq(pq: &ProductQuantizer, description: &str) -> Result<()> {
    if !matches!(pq.nbits(), 8 | 4) {
        return Err(Error::Unsupported(format!(
            "GPU IVF-PQ takes 8- or 4-bit codes; {description} has {} × {} bits",
            pq.m(),
            pq.nbits()
        )));
    }
    Ok(())
}

/// The search both GPU IVF-PQ indexes run: coarse step, then `ivf_pq_scan` with the PQ's
/// codebooks.
fn search_pq<C: IvfCodec + 'static>(
    ivf: &GpuIvf<C>,
    pq: &ProductQuantizer,
    queries: &[f32],
    k: usize,
    params: &SearchParams<'_>,
) -> Result<SearchResult> {
    let metric = ivf.cpu.metric();
    let Some(mut p) = ivf.prepare(queries, k, params, Some(pq.centroids()))? else {
        return Ok(SearchResult::empty(0, k, metric));
    };
    let res = &*ivf.res;
    let d = ivf.cpu.dim();
    let (m, nbits) = (pq.m(), pq.nbits());
    let kp = kpow(k);
    let smem = topk_smem(kp) + 4 * (2 * d + (m << nbits));
    res.kernels.check_smem(smem, "IVF-PQ search")?;
    let _g = res.lock();
    let (d32, np32, m32, nb32, byres, l2, k32, kp32) = (
        d as i32,
        p.nprobe as i32,
        m as i32,
        nbits as i32,
        i32::from(ivf.cpu.by_residual),
        i32::from(metric == MetricType::L2),
        k as i32,
        kp as i32,
    );
    let dev = &p.dev;
    let codebooks = dev
        .pq
        .as_ref()
        .ok_or_else(|| Error::invalid("no PQ codebooks on the GPU"))?;
    let lists = &dev.lists;
    let mut b = res.stream.launch_builder(&res.kernels.ivf_pq_scan);
    b.arg(&p.q)
        .arg(&d32)
        .arg(&p.probes)
        .arg(&np32)
        .arg(&dev.centroids);
    b.arg(codebooks)
        .arg(&m32)
        .arg(&nb32)
        .arg(&byres)
        .arg(&lists.offsets)
        .arg(&lists.codes);
    b.arg(&lists.ids).arg(&*p.allow.mask).arg(&p.allow.on);
    b.arg(&l2).arg(&k32).arg(&kp32);
    b.arg(&mut p.best.d).arg(&mut p.best.i);
    // SAFETY: ivf_pq_scan's arguments in order: nq × d queries, d, nq × nprobe list
    // numbers, nprobe, nlist × d coarse centroids, M × 2^nbits × (d / M) codebooks, M,
    // nbits (8 or 4, checked by check_gpu_pq), the residual flag, nlist + 1 offsets, the
    // interleaved codes (⌈M·nbits / 8⌉ bytes a row) and ids of the concatenated lists, the
    // allow mask (a byte per row) and its flag, the metric flag, k, kpow, nq × k best keys
    // and ids; one block per query with the shared memory computed above.
    unsafe { b.launch(launch_cfg(p.nq, smem)) }.map_err(gpu_err("ivf_pq_scan"))?;
    p.best.finish(res, metric)
}

/// A GPU IVF-PQ index type over the CPU index `$cpu` (codec `$codec`): its constructor
/// (`$make`, from a flat quantizer, nlist, m and the metric), `from_cpu` checking the PQ
/// fits the kernel, and the search through [`search_pq`].
macro_rules! gpu_ivf_pq_index {
    ($(#[$doc:meta])* $ty:ident, $codec:ty, $cpu:ty, $new_doc:literal,
     |$q:ident, $nlist:ident, $m:ident, $metric:ident| $make:expr) => {
        $(#[$doc])*
        pub struct $ty {
            ivf: GpuIvf<$codec>,
        }

        impl $ty {
            #[doc = $new_doc]
            pub fn new(
                res: Arc<GpuResources>,
                d: usize,
                $nlist: usize,
                $m: usize,
                $metric: MetricType,
            ) -> Result<Self> {
                let $q = Box::new(IndexFlat::new(d, $metric)?);
                Self::from_cpu(res, $make?)
            }

            /// Searches `cpu` on the GPU (the index moves in).
            pub fn from_cpu(res: Arc<GpuResources>, cpu: $cpu) -> Result<Self> {
                check_gpu_pq(cpu.codec().pq(), &cpu.description())?;
                Ok($ty {
                    ivf: GpuIvf::new(res, cpu)?,
                })
            }

            fn search_gpu(
                &self,
                queries: &[f32],
                k: usize,
                params: &SearchParams<'_>,
            ) -> Result<SearchResult> {
                search_pq(&self.ivf, self.ivf.cpu.codec().pq(), queries, k, params)
            }
        }

        gpu_ivf_index!($ty, $cpu, search_gpu);
    };
}

gpu_ivf_pq_index!(
    /// IVF with PQ codes (8 or 4 bits), searched on the GPU with look-up tables in shared
    /// memory (Faiss's `GpuIndexIVFPQ`), 8- or 4-bit codes, as many sub-quantizers as the
    /// table (M × 2^nbits floats) lets fit in the device's shared memory (M = 128 of 8 bits
    /// on an A100 or H100).
    /// Its CPU form is the [`IndexIvfPq`] it wraps.
    GpuIndexIvfPq,
    fathom_index::ivf::IvfPq,
    IndexIvfPq,
    "An untrained index: `nlist` lists, `m` 8-bit sub-quantizers.",
    |q, nlist, m, metric| IndexIvfPq::new(q, nlist, m, 8, metric)
);

gpu_ivf_pq_index!(
    /// IVF with 4-bit PQ fast-scan codes, searched on the GPU (the CPU's
    /// [`IndexIvfPqFastScan`], `IVF4096,PQ32x4fs`): the lists' blocks are unpacked into
    /// per-vector codes on the device and scanned with full-precision look-up tables — the
    /// CPU's fast-scan quantizes its tables to 8 bits, so distances here are a little
    /// closer to the codes' own.
    GpuIndexIvfPqFastScan,
    fathom_index::ivf::IvfPqFastScan,
    IndexIvfPqFastScan,
    "An untrained index: `nlist` lists, `m` 4-bit sub-quantizers, codes not residuals (as \
     Faiss's default for fast-scan).",
    |q, nlist, m, metric| IndexIvfPqFastScan::new(q, nlist, m, metric)
);

/// IVF with 8-bit scalar-quantized vectors (residuals by default), searched on the GPU
/// (Faiss's `GpuIndexIVFScalarQuantizer`): `QT_8bit` (a range per dimension) and
/// `QT_8bit_uniform`. Its CPU form is the [`IndexIvfScalarQuantizer`] it wraps.
pub struct GpuIndexIvfSq {
    ivf: GpuIvf<fathom_index::ivf::IvfScalarQuantizer>,
}

impl GpuIndexIvfSq {
    /// An untrained index: `nlist` lists of `qtype` codes (`QT8bit` or `QT8bitUniform`).
    pub fn new(
        res: Arc<GpuResources>,
        d: usize,
        nlist: usize,
        qtype: QuantizerType,
        metric: MetricType,
    ) -> Result<Self> {
        let q = IndexFlat::new(d, metric)?;
        Self::from_cpu(
            res,
            IndexIvfScalarQuantizer::new(Box::new(q), nlist, qtype, metric)?,
        )
    }

    /// Searches `cpu` on the GPU (the index moves in).
    pub fn from_cpu(res: Arc<GpuResources>, cpu: IndexIvfScalarQuantizer) -> Result<Self> {
        let qtype = cpu.codec().sq().qtype();
        if !matches!(qtype, QuantizerType::QT8bit | QuantizerType::QT8bitUniform) {
            return Err(Error::Unsupported(format!(
                "GPU IVF-SQ takes 8-bit codes (QT_8bit, QT_8bit_uniform); {} has {qtype:?}",
                cpu.description()
            )));
        }
        Ok(GpuIndexIvfSq {
            ivf: GpuIvf::new(res, cpu)?,
        })
    }

    /// The decoding terms `x_j = a_j · code_j + b_j` (a, then b) from the trained ranges,
    /// as the CPU codec derives them: a = vdiff / 255, b = vmin + 0.5 · vdiff / 255.
    fn affine(&self) -> Vec<f32> {
        let sq = self.ivf.cpu.codec().sq();
        let (d, trained) = (sq.d(), sq.trained());
        if !sq.is_trained() || trained.is_empty() {
            return Vec::new();
        }
        let range = |i: usize| {
            if sq.qtype() == QuantizerType::QT8bitUniform {
                (trained[0], trained[1])
            } else {
                (trained[i], trained[d + i])
            }
        };
        let scale = 255.0f32;
        let a: Vec<f32> = (0..d).map(|i| range(i).1 / scale).collect();
        let b: Vec<f32> = (0..d)
            .map(|i| range(i).0 + 0.5 * range(i).1 / scale)
            .collect();
        [a, b].concat()
    }

    fn search_gpu(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let metric = self.ivf.cpu.metric();
        let affine = self.affine();
        let Some(mut p) = self.ivf.prepare(queries, k, params, Some(&affine))? else {
            return Ok(SearchResult::empty(0, k, metric));
        };
        let res = &*self.ivf.res;
        let d = self.ivf.cpu.dim();
        let kp = kpow(k);
        let smem = topk_smem(kp) + 4 * (4 * d);
        res.kernels.check_smem(smem, "IVF-SQ search")?;
        let _g = res.lock();
        let (d32, np32, byres, l2, k32, kp32) = (
            d as i32,
            p.nprobe as i32,
            i32::from(self.ivf.cpu.by_residual),
            i32::from(metric == MetricType::L2),
            k as i32,
            kp as i32,
        );
        let dev = &p.dev;
        let affine = dev
            .pq
            .as_ref()
            .ok_or_else(|| Error::invalid("no scalar quantizer ranges on the GPU"))?;
        let lists = &dev.lists;
        let mut b = res.stream.launch_builder(&res.kernels.ivf_sq8_scan);
        b.arg(&p.q)
            .arg(&d32)
            .arg(&p.probes)
            .arg(&np32)
            .arg(&dev.centroids);
        b.arg(affine)
            .arg(&byres)
            .arg(&lists.offsets)
            .arg(&lists.codes)
            .arg(&lists.ids);
        b.arg(&*p.allow.mask).arg(&p.allow.on);
        b.arg(&l2).arg(&k32).arg(&kp32);
        b.arg(&mut p.best.d).arg(&mut p.best.i);
        // SAFETY: ivf_sq8_scan's arguments in order: nq × d queries, d, nq × nprobe list
        // numbers, nprobe, nlist × d coarse centroids, 2·d decoding terms, the residual
        // flag, nlist + 1 offsets, d-byte interleaved codes and ids of the concatenated
        // lists, the allow mask (a byte per row) and its flag, the metric flag, k, kpow,
        // nq × k best keys and ids; one block per query with the shared memory computed
        // above (selection state, then 4·d floats).
        unsafe { b.launch(launch_cfg(p.nq, smem)) }.map_err(gpu_err("ivf_sq8_scan"))?;
        p.best.finish(res, metric)
    }
}

gpu_ivf_index!(GpuIndexIvfSq, IndexIvfScalarQuantizer, search_gpu);

#[cfg(test)]
mod tests {
    use super::interleave_list;

    /// The list-major plan groups probes by list (queries in order), splits a list's
    /// queries into blocks of the given size and lays the pairs' segments end to end.
    #[test]
    fn list_major_plan_groups_probes_by_list() {
        // 3 queries × 2 probes over 3 lists of 32, 64 and 0 rows; query 1's second probe
        // is none.
        let probes = [1, 0, 1, -1, 0, 1];
        let plan = super::list_major_plan(&probes, 2, &[32, 64, 0], 2);
        assert_eq!(plan.block_list, vec![0, 1, 1]);
        assert_eq!(plan.block_pairs, vec![2, 2, 1]);
        assert_eq!(plan.block_pair0, vec![0, 2, 4]);
        // List 0: (q0, p1), (q2, p0); list 1: (q0, p0), (q1, p0), (q2, p1).
        assert_eq!(plan.pair_query, vec![0, 2, 0, 1, 2]);
        assert_eq!(plan.pair_out, vec![0, 32, 64, 128, 192]);
        assert_eq!(plan.seg, vec![64, 0, 128, -1, 32, 192]);
        assert_eq!(plan.keys, 256);
    }

    /// The layout kernels.cu's `interleaved` reads: element e of row r at
    /// ((r / 32) · elems + e) · 32 + r % 32, in elements.
    #[test]
    fn interleaved_lists_put_each_element_where_the_kernels_read_it() {
        let (mut ids, mut codes) = (Vec::new(), Vec::new());
        // A first list of 3 rows, then one of 40 rows: 4-byte elements, 2 per row.
        for (n, first_id) in [(3usize, 100i64), (40, 0)] {
            let list_ids: Vec<i64> = (first_id..first_id + n as i64).collect();
            let list_codes: Vec<u8> = (0..n * 8).map(|i| (i % 251) as u8).collect();
            interleave_list(&list_ids, &list_codes, 4, &mut ids, &mut codes).unwrap();
        }
        assert_eq!(ids.len(), 32 + 64);
        assert_eq!(&ids[..4], &[100, 101, 102, -1]);
        assert_eq!(ids[32 + 39], 39);
        assert_eq!(ids[32 + 40], -1);
        assert_eq!(codes.len(), (32 + 64) * 8);
        let element = |r: usize, e: usize| {
            let at = (((r / 32) * 2 + e) * 32 + r % 32) * 4;
            codes[at..at + 4].to_vec()
        };
        // Row 35 of the second list is global row 32 + 35; its code bytes are 35·8 ...
        let row = 32 + 35;
        let want: Vec<u8> = (35 * 8..36 * 8).map(|i| (i % 251) as u8).collect();
        assert_eq!([element(row, 0), element(row, 1)].concat(), want);
        assert_eq!(element(2, 1), vec![20, 21, 22, 23]);
        assert!(interleave_list(&[1, 2], &[0; 6], 4, &mut ids, &mut codes).is_err());
    }
}
