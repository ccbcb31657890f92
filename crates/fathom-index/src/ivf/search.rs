//! Searching an IVF index: the coarse step ([`IndexIvf::probe`]), then the probed lists —
//! query by query, lists split over threads, or list by list for batches that share
//! lists (one [`SearchPlan`] chosen by `IndexIvf::search_plan`) — and range search.

use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
    check,
};
use fathom_kernels::TopK;
use rayon::prelude::*;

use super::{IndexIvf, IvfCodec, IvfContext, ParallelMode};
use crate::code_scan::{radius_key, to_result};
use crate::{Index, check_queries, check_search};

/// Average number of queries per probed list from which a batch is searched list by
/// list (one matrix product per list) rather than query by query. Measured on 50k × 64,
/// IVF256, 200 queries, one thread (`fathom bench --batch 200` against `--batch 1`): list
/// by list is 0.87× query by query at 12.5 queries a list, even at ~19, 1.05× at 25, 1.3×
/// at 37.5.
const LIST_MAJOR_MIN_SHARING: usize = 20;
/// Queries searched together by the list-major path (bounds the heaps held per part).
const LIST_MAJOR_QUERY_BLOCK: usize = 2048;
/// Cache lines of the next probed list requested ahead of its scan (the binary IVF's
/// scan too).
pub(crate) const PREFETCH_LINES: usize = 16;

/// Bytes of codes a single query must scan (estimated) before its lists are spread over
/// threads: below this, waking the pool for every query costs more than it saves
/// (measured: splitting 62 KiB of fast-scan codes made single queries 0.6× faiss).
const MIN_BYTES_TO_SPLIT_A_QUERY: usize = 1024 * 1024;

/// How [`IndexIvf::search_preassigned`] spreads a batch over threads
/// (`IndexIvf::search_plan` chooses).
#[derive(Debug, Clone, Copy, PartialEq)]
enum SearchPlan {
    /// List by list, each list compared with all its queries in one matrix product.
    ListMajor,
    /// One query on the calling thread.
    Inline,
    /// Queries in parallel, each scanning its lists in turn.
    ByQueries,
    /// Each query in turn, its lists split in parts of `per` scanned in parallel.
    ByLists { per: usize },
}

/// Per-part buffers of the list-major search: a heap per query of the block.
struct ListMajorScratch {
    tops: Vec<TopK>,
    base: Vec<f32>,
    xq: Vec<f32>,
    ip: Vec<f32>,
    xn: Vec<f32>,
    qn: Vec<f32>,
}

impl ListMajorScratch {
    fn new(nq: usize, k: usize) -> Self {
        ListMajorScratch {
            tops: (0..nq).map(|_| TopK::new(k)).collect(),
            base: Vec::new(),
            xq: Vec::new(),
            ip: Vec::new(),
            xn: Vec::new(),
            qn: Vec::new(),
        }
    }
}

impl<C: IvfCodec + 'static> IndexIvf<C> {
    /// The coarse step of a search: the `nprobe` nearest lists of each query and the
    /// distances to their centroids.
    pub fn probe(&self, queries: &[f32], nprobe: usize) -> Result<SearchResult> {
        self.quantizer.search(queries, nprobe)
    }

    pub(super) fn effective_nprobe(&self, params: &SearchParams<'_>) -> Result<usize> {
        let nprobe = params.nprobe.unwrap_or(self.nprobe);
        if nprobe == 0 {
            return Err(Error::invalid(
                "nprobe is 0; at least one list must be probed",
            ));
        }
        Ok(nprobe.min(self.nlist))
    }

    /// Scans the probed lists `lists` (with centroid distances `dis`) of one query into
    /// `top`; returns the number of codes looked at.
    fn scan_lists(
        &self,
        ctx: IvfContext<'_>,
        query: &[f32],
        (lists, dis): (&[Idx], &[f32]),
        top: &mut TopK,
        selector: Option<&dyn IdSelector>,
        max_codes: usize,
    ) -> Result<usize> {
        let mut scanner = self.codec.scanner(ctx, query)?;
        let mut scanned = 0;
        let valid = |l: Idx| l >= 0 && (l as usize) < self.nlist;
        for (i, (&l, &cd)) in lists.iter().zip(dis).enumerate() {
            if !valid(l) {
                continue;
            }
            // The next list is not where the hardware prefetcher looks; asked for now,
            // its start arrives while this list is scanned.
            if let Some(&next) = lists.get(i + 1).filter(|&&n| valid(n)) {
                fathom_kernels::prefetch_lines(self.invlists.codes(next as usize), PREFETCH_LINES);
            }
            let list = l as usize;
            let n = self.invlists.list_size(list);
            if n == 0 {
                continue;
            }
            scanner.set_list(list, cd)?;
            scanner.scan(
                self.invlists.codes(list),
                self.invlists.ids(list),
                top,
                selector,
            );
            scanned += n;
            if max_codes > 0 && scanned >= max_codes {
                break;
            }
        }
        Ok(scanned)
    }

    /// Search with the coarse step already done (`coarse`: `nprobe` lists per query from
    /// [`IndexIvf::probe`]), as Faiss's `search_preassigned`.
    pub fn search_preassigned(
        &self,
        queries: &[f32],
        k: usize,
        coarse: &SearchResult,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let nq = check_search(self, queries, k)?;
        let nprobe = coarse.k;
        check::output_len("coarse assignments", coarse.labels.len(), nq * nprobe)?;
        check::output_len("coarse distances", coarse.distances.len(), nq * nprobe)?;
        // On-disk lists read the probed lists ahead.
        if self.invlists.reads_ahead() {
            let mut probed: Vec<usize> = coarse
                .labels
                .iter()
                .filter(|&&l| l >= 0 && (l as usize) < self.nlist)
                .map(|&l| l as usize)
                .collect();
            probed.sort_unstable();
            probed.dedup();
            self.invlists.prefetch_lists(&probed);
        }
        let ctx = self.context();
        let sel = params.selector;
        let d = self.d;
        let one = |q: usize, lists: &[Idx], dis: &[f32], max_codes: usize| -> Result<TopK> {
            let mut top = TopK::new(k);
            let x = &queries[q * d..(q + 1) * d];
            self.scan_lists(ctx, x, (lists, dis), &mut top, sel, max_codes)?;
            Ok(top)
        };
        let tops: Vec<TopK> = match self.search_plan(nq, nprobe) {
            SearchPlan::ListMajor => self.search_list_major(ctx, queries, k, coarse, sel)?,
            SearchPlan::Inline => vec![one(0, &coarse.labels, &coarse.distances, self.max_codes)?],
            SearchPlan::ByQueries => (0..nq)
                .into_par_iter()
                .map(|q| {
                    let r = q * nprobe..(q + 1) * nprobe;
                    one(
                        q,
                        &coarse.labels[r.clone()],
                        &coarse.distances[r],
                        self.max_codes,
                    )
                })
                .collect::<Result<_>>()?,
            SearchPlan::ByLists { per } => {
                // max_codes is shared out evenly between the parts.
                let parts = nprobe.div_ceil(per);
                let part_codes = self.max_codes.div_ceil(parts);
                (0..nq)
                    .map(|q| {
                        let labels = &coarse.labels[q * nprobe..(q + 1) * nprobe];
                        let dis = &coarse.distances[q * nprobe..(q + 1) * nprobe];
                        labels
                            .par_chunks(per)
                            .zip(dis.par_chunks(per))
                            .map(|(l, dd)| one(q, l, dd, part_codes))
                            .try_reduce(
                                || TopK::new(k),
                                |mut a, b| {
                                    a.merge(&b);
                                    Ok(a)
                                },
                            )
                    })
                    .collect::<Result<_>>()?
            }
        };
        to_result(tops, k, self.metric, |_, key| key)
    }

    /// How a batch of `nq` queries probing `nprobe` lists each is searched: the one
    /// place the rules of thumb live.
    fn search_plan(&self, nq: usize, nprobe: usize) -> SearchPlan {
        let threads = rayon::current_num_threads();
        // Many queries sharing lists: compare each list with all the queries that probe
        // it at once, so the list is read once per batch rather than once per query.
        let sharing = nq * nprobe / self.nlist.max(1);
        if self.parallel_mode == ParallelMode::Auto
            && self.max_codes == 0
            && nq >= 2 * threads
            && sharing >= LIST_MAJOR_MIN_SHARING
            && self.invlists.block_layout().is_none()
            && self.codec.decodes_lists()
        {
            return SearchPlan::ListMajor;
        }
        let by_queries = match self.parallel_mode {
            ParallelMode::Queries => true,
            ParallelMode::Lists => false,
            // Splitting one query's lists pays off only when there is enough to scan.
            ParallelMode::Auto => {
                let bytes = nprobe * self.ntotal / self.nlist.max(1) * self.codec.code_size();
                nq >= threads || bytes < MIN_BYTES_TO_SPLIT_A_QUERY
            }
        };
        if nq == 1 && (by_queries || nprobe == 1) {
            SearchPlan::Inline
        } else if by_queries {
            SearchPlan::ByQueries
        } else {
            SearchPlan::ByLists {
                per: nprobe.div_ceil(threads * 2).max(1),
            }
        }
    }

    /// The list-major batch search: for a block of queries, each probed list is decoded
    /// once and compared with all its queries by one matrix product (`‖q‖² + ‖x‖² −
    /// 2⟨q, x⟩`, or `−⟨q, x⟩`), with residual queries `q − c` when residuals are encoded.
    ///
    /// The probed lists are cut into `2 × threads` parts of about equal work; each part
    /// keeps a heap per query of the block (tight thresholds: every list it scans for a
    /// query feeds one heap), and the parts' heaps are merged per query, in parallel.
    /// The parts were once rayon's adaptive splits, each with its own heaps and merged
    /// pairwise: their number, and so the allocation and merging, grew with the thread
    /// count (issue 26: on 2 cores, 8 threads took IVF-Flat from 74k to 24k QPS).
    fn search_list_major(
        &self,
        ctx: IvfContext<'_>,
        queries: &[f32],
        k: usize,
        coarse: &SearchResult,
        sel: Option<&dyn IdSelector>,
    ) -> Result<Vec<TopK>> {
        let (d, nprobe) = (self.d, coarse.k);
        let nq = queries.len() / d;
        let parts_wanted = 2 * rayon::current_num_threads();
        let mut tops = Vec::with_capacity(nq);
        for q0 in (0..nq).step_by(LIST_MAJOR_QUERY_BLOCK) {
            let q1 = (q0 + LIST_MAJOR_QUERY_BLOCK).min(nq);
            let nb = q1 - q0;
            // For each list, the (query, centroid distance) pairs that probe it.
            let mut start = vec![0usize; self.nlist + 1];
            for &l in &coarse.labels[q0 * nprobe..q1 * nprobe] {
                if l >= 0 && (l as usize) < self.nlist {
                    start[l as usize + 1] += 1;
                }
            }
            for l in 0..self.nlist {
                start[l + 1] += start[l];
            }
            let mut fill = start.clone();
            let mut probes = vec![(0u32, 0.0f32); start[self.nlist]];
            for q in q0..q1 {
                for p in 0..nprobe {
                    let l = coarse.labels[q * nprobe + p];
                    if l >= 0 && (l as usize) < self.nlist {
                        probes[fill[l as usize]] =
                            ((q - q0) as u32, coarse.distances[q * nprobe + p]);
                        fill[l as usize] += 1;
                    }
                }
            }
            // The probed lists in parts of about equal work (list size × queries).
            let work = |l: usize| self.invlists.list_size(l) * (start[l + 1] - start[l]);
            let lists: Vec<usize> = (0..self.nlist).filter(|&l| work(l) > 0).collect();
            let total: usize = lists.iter().map(|&l| work(l)).sum();
            let per_part = total.div_ceil(parts_wanted).max(1);
            let mut parts: Vec<&[usize]> = Vec::new();
            let (mut from, mut acc) = (0, 0);
            for (i, &l) in lists.iter().enumerate() {
                acc += work(l);
                if acc >= per_part || i + 1 == lists.len() {
                    parts.push(&lists[from..=i]);
                    (from, acc) = (i + 1, 0);
                }
            }
            let part_tops: Vec<Vec<TopK>> = parts
                .par_iter()
                .map(|part| -> Result<Vec<TopK>> {
                    let mut st = ListMajorScratch::new(nb, k);
                    for &l in part.iter() {
                        self.scan_list_for_group(
                            &mut st,
                            ctx,
                            queries,
                            q0,
                            l,
                            &probes[start[l]..start[l + 1]],
                            sel,
                        )?;
                    }
                    Ok(st.tops)
                })
                .collect::<Result<_>>()?;
            let merged: Vec<TopK> = (0..nb)
                .into_par_iter()
                .map(|qi| {
                    let mut top = TopK::new(k);
                    for p in &part_tops {
                        top.merge(&p[qi]);
                    }
                    top
                })
                .collect();
            tops.extend(merged);
        }
        Ok(tops)
    }

    /// List `l` against the queries of `group` (`(query in block, centroid distance)`),
    /// into their heaps in `st`.
    #[allow(clippy::too_many_arguments)]
    fn scan_list_for_group(
        &self,
        st: &mut ListMajorScratch,
        ctx: IvfContext<'_>,
        queries: &[f32],
        q0: usize,
        l: usize,
        group: &[(u32, f32)],
        sel: Option<&dyn IdSelector>,
    ) -> Result<()> {
        let d = self.d;
        let l2 = self.metric == MetricType::L2;
        let n = self.invlists.list_size(l);
        let g = group.len();
        st.base.resize(n * d, 0.0);
        self.codec.decode_list(self.invlists.codes(l), &mut st.base);
        st.xq.clear();
        let centroid = if self.by_residual && l2 {
            Some(ctx.centroid(l)?)
        } else {
            None
        };
        for &(q, _) in group {
            let x = &queries[(q0 + q as usize) * d..(q0 + q as usize + 1) * d];
            match &centroid {
                Some(c) => st.xq.extend(x.iter().zip(c.iter()).map(|(a, b)| a - b)),
                None => st.xq.extend_from_slice(x),
            }
        }
        st.ip.resize(g * n, 0.0);
        // Shapes are consistent by construction.
        let _ = fathom_kernels::matmul_abt(&st.xq, &st.base, d, 1.0, &mut st.ip);
        if l2 {
            // The SIMD kernel: a scalar sum here was 40 % of a batch's time (issue 26's
            // batch slower than single queries).
            st.xn.resize(n, 0.0);
            let _ = fathom_kernels::l2_norms_sqr_into(&st.base, d, &mut st.xn);
            st.qn.resize(g, 0.0);
            let _ = fathom_kernels::l2_norms_sqr_into(&st.xq, d, &mut st.qn);
        }
        let ids = self.invlists.ids(l);
        for (j, &(q, cd)) in group.iter().enumerate() {
            let row = &mut st.ip[j * n..(j + 1) * n];
            if l2 {
                let qn = st.qn[j];
                for (v, &xn) in row.iter_mut().zip(&st.xn) {
                    *v = (qn + xn - 2.0 * *v).max(0.0);
                }
            } else {
                // Inner product over residuals adds ⟨q, c⟩.
                let b = if self.by_residual { cd } else { 0.0 };
                row.iter_mut().for_each(|v| *v = -(*v + b));
            }
            st.tops[q as usize].push_ids(row, ids, |id| sel.is_none_or(|s| s.is_member(id)));
        }
        Ok(())
    }

    /// Every entry within `radius` of each query among its probed lists.
    pub fn range_search_preassigned(
        &self,
        queries: &[f32],
        radius: f32,
        coarse: &SearchResult,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        let nq = check_queries(self, queries)?;
        check::radius(radius)?;
        let nprobe = coarse.k;
        check::output_len("coarse assignments", coarse.labels.len(), nq * nprobe)?;
        check::output_len("coarse distances", coarse.distances.len(), nq * nprobe)?;
        let ctx = self.context();
        let sel = params.selector;
        let rkey = radius_key(self.metric, radius);
        let sign = if self.metric.is_similarity() {
            -1.0
        } else {
            1.0
        };
        let d = self.d;
        let lists: Vec<(Vec<Idx>, Vec<f32>)> = (0..nq)
            .into_par_iter()
            .map(|q| -> Result<(Vec<Idx>, Vec<f32>)> {
                let x = &queries[q * d..(q + 1) * d];
                let mut scanner = self.codec.scanner(ctx, x)?;
                let (mut out_ids, mut out_dis) = (Vec::new(), Vec::new());
                let mut keys = Vec::new();
                let mut scanned = 0;
                for p in 0..nprobe {
                    let l = coarse.labels[q * nprobe + p];
                    if l < 0 || l as usize >= self.nlist {
                        continue;
                    }
                    let list = l as usize;
                    let n = self.invlists.list_size(list);
                    if n == 0 {
                        continue;
                    }
                    scanner.set_list(list, coarse.distances[q * nprobe + p])?;
                    keys.resize(n, 0.0);
                    scanner.keys(self.invlists.codes(list), &mut keys);
                    for (&key, &id) in keys.iter().zip(self.invlists.ids(list)) {
                        if key < rkey && sel.is_none_or(|s| s.is_member(id)) {
                            out_ids.push(id);
                            out_dis.push(sign * key);
                        }
                    }
                    scanned += n;
                    if self.max_codes > 0 && scanned >= self.max_codes {
                        break;
                    }
                }
                Ok((out_ids, out_dis))
            })
            .collect::<Result<_>>()?;
        Ok(RangeSearchResult::from_lists(lists))
    }
}
