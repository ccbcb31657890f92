//! `IndexAqFastScan`: additive-quantizer codes with 4-bit codebooks scanned by the
//! fast-scan kernel (Faiss's `IndexAdditiveQuantizerFastScan` and its four classes,
//! factory `RQ<M>x4fs`, `LSQ<M>x4fs`, `PRQ<n>x<M>x4fs`, `PLSQ<n>x<M>x4fs`, each with an
//! optional `_<bbs>` and, for L2, `_Nrq2x4` or `_Nlsq2x4`).
//!
//! A code's level indices are nibbles, and so is its 2×4-bit norm: for L2 a code is
//! `M + 2` fast-scan columns, whose tables are `−2⟨q, entry⟩` for the levels and the two
//! norm codebooks for the norm (for inner product, `M` columns of `⟨q, entry⟩`). As in
//! Faiss, the norm columns are divided by an integer `norm_scale` (estimated at training
//! so their span matches the levels') before the tables are quantized to 8 bits, and
//! their sums multiplied back: fathom keeps them in a block array of their own and adds
//! `norm_scale ×` their accumulator to the levels', so both stay in the kernel's u16.

use fathom_core::{Error, IdSelector, Idx, MetricType, Result, SearchParams, SearchResult, check};
use fathom_kernels::TopK;
use fathom_kernels::codes::fastscan::{self as kern, BLOCK, block_bytes};
use fathom_quant::additive::{AdditiveQuantizer, AqSearchType};
use fathom_quant::fastscan::{get_code, packed_len, packed_nsq, quantize_lut, set_code};
use rayon::prelude::*;

use crate::code_scan::to_result;
use crate::fastscan::{QUERY_GROUP, check_bbs, search_blocks};
use crate::{Index, check_search};

/// Additive-quantizer codes in fast-scan blocks.
///
/// ```
/// use fathom_index::{Index, IndexAqFastScan, MetricType};
/// use fathom_quant::additive::{AdditiveQuantizer, AqSearchType};
/// let d = 8;
/// let x: Vec<f32> = (0..3000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let rq = AdditiveQuantizer::residual(d, vec![4; 4], AqSearchType::NormRq2x4).unwrap();
/// let mut index = IndexAqFastScan::new(rq, MetricType::L2).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// assert_eq!(index.search(&x[..d], 3).unwrap().labels.len(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct IndexAqFastScan {
    aq: AdditiveQuantizer,
    metric: MetricType,
    /// The level columns' blocks.
    levels: Vec<u8>,
    /// The two norm columns' blocks (L2 only).
    norms: Vec<u8>,
    ntotal: usize,
    bbs: usize,
    /// Whether the norm columns are scaled (Faiss's `rescale_norm`, true by default).
    pub rescale_norm: bool,
    norm_scale: i32,
    /// Training vectors used at most (Faiss's `max_train_points`: 1024 · 16 · columns).
    pub max_train_points: usize,
}

impl IndexAqFastScan {
    /// An index over `aq`, whose codebooks must all have 4 bits, with Faiss's rule on
    /// norms: L2 needs a 2×4-bit norm (`NormRq2x4` or `NormLsq2x4`), inner product none
    /// (`LutNonorm`).
    pub fn new(aq: AdditiveQuantizer, metric: MetricType) -> Result<Self> {
        let cols = check_fast_scan_aq(&aq, metric)?;
        Ok(IndexAqFastScan {
            aq,
            metric,
            levels: Vec::new(),
            norms: Vec::new(),
            ntotal: 0,
            bbs: 32,
            rescale_norm: true,
            norm_scale: 1,
            max_train_points: 1024 * 16 * cols,
        })
    }

    /// The quantizer.
    pub fn aq(&self) -> &AdditiveQuantizer {
        &self.aq
    }
    /// The quantizer, for its training settings.
    pub fn aq_mut(&mut self) -> &mut AdditiveQuantizer {
        &mut self.aq
    }
    /// Faiss's block size (kept for files; fathom scans blocks of 32).
    pub fn bbs(&self) -> usize {
        self.bbs
    }
    /// Sets the Faiss block size: a positive multiple of 32.
    pub fn set_bbs(&mut self, bbs: usize) -> Result<()> {
        self.bbs = check_bbs(bbs)?;
        Ok(())
    }
    /// The factor the norm columns' tables are divided by (1: not scaled).
    pub fn norm_scale(&self) -> i32 {
        self.norm_scale
    }
    /// Sets the norm scale (as read from a file; kept as is so the file writes back the
    /// same). Values up to 1 mean no rescaling, as in Faiss.
    pub fn set_norm_scale(&mut self, scale: i32) {
        self.norm_scale = scale;
    }
    fn norm_cols(&self) -> usize {
        if self.metric == MetricType::L2 { 2 } else { 0 }
    }
    fn scale(&self) -> i32 {
        if self.rescale_norm {
            self.norm_scale
        } else {
            1
        }
    }

    /// Appends codes in the quantizer's own layout (`n × code_size` bytes).
    pub fn add_codes(&mut self, codes: &[u8]) -> Result<()> {
        let cs = self.aq.code_size();
        let n = check::codes("additive-quantizer codes", codes, cs)?;
        let (m, nc) = (self.aq.m(), self.norm_cols());
        let total = self.ntotal + n;
        self.levels.resize(packed_len(total, m), 0);
        if nc > 0 {
            self.norms.resize(packed_len(total, nc), 0);
        }
        let mut nib = vec![0u32; m + nc];
        for (i, c) in codes.chunks_exact(cs).enumerate() {
            for (j, v) in nib.iter_mut().enumerate() {
                *v = ((c[j / 2] >> (4 * (j % 2))) & 15) as u32;
            }
            set_code(&mut self.levels, m, self.ntotal + i, &nib[..m]);
            if nc > 0 {
                set_code(&mut self.norms, nc, self.ntotal + i, &nib[m..]);
            }
        }
        self.ntotal = total;
        Ok(())
    }

    /// The code of vector `i` in the quantizer's own layout.
    pub fn code(&self, i: usize) -> Vec<u8> {
        let (m, nc) = (self.aq.m(), self.norm_cols());
        let mut nib = vec![0u32; m + nc];
        get_code(&self.levels, m, i, &mut nib[..m]);
        if nc > 0 {
            get_code(&self.norms, nc, i, &mut nib[m..]);
        }
        let mut code = vec![0u8; self.aq.code_size()];
        for (j, &v) in nib.iter().enumerate() {
            code[j / 2] |= (v as u8) << (4 * (j % 2));
        }
        code
    }

    /// Scans blocks `b0..b1` for a group of queries: the level accumulators, plus the
    /// scaled norm accumulators, into `tops`.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        b0: usize,
        b1: usize,
        level_luts: &[u8],
        norm_luts: &[u8],
        tops: &mut [TopK],
        sel: Option<&dyn IdSelector>,
        buf: &mut Vec<u16>,
        keys: &mut Vec<f32>,
    ) {
        let (nsq, nc) = (packed_nsq(self.aq.m()), self.norm_cols());
        let (bb, nbb) = (block_bytes(nsq), block_bytes(packed_nsq(nc.max(1))));
        let nq = tops.len();
        let scale = self.scale() as f32;
        let mut b = b0;
        while b < b1 {
            let e = (b + crate::fastscan::BLOCKS_PER_CHUNK).min(b1);
            let nb = e - b;
            let first = b * BLOCK;
            let count = (self.ntotal - first).min(nb * BLOCK);
            buf.resize(2 * nq * nb * BLOCK, 0);
            let (lv, nv) = buf.split_at_mut(nq * nb * BLOCK);
            kern::accumulate(nsq, &self.levels[b * bb..e * bb], level_luts, lv);
            if nc > 0 {
                kern::accumulate(packed_nsq(nc), &self.norms[b * nbb..e * nbb], norm_luts, nv);
            }
            for (q, top) in tops.iter_mut().enumerate() {
                let lk = &lv[q * nb * BLOCK..q * nb * BLOCK + count];
                if nc == 0 {
                    top.push_run_u16(first as Idx, lk, |id| sel.is_none_or(|s| s.is_member(id)));
                    continue;
                }
                let nk = &nv[q * nb * BLOCK..q * nb * BLOCK + count];
                keys.clear();
                keys.extend(
                    lk.iter()
                        .zip(nk)
                        .map(|(&l, &n)| l as f32 + scale * n as f32),
                );
                top.push_run(first as Idx, keys, |id| sel.is_none_or(|s| s.is_member(id)));
            }
            b = e;
        }
    }
}

impl Index for IndexAqFastScan {
    fn dim(&self) -> usize {
        self.aq.d()
    }
    fn ntotal(&self) -> usize {
        self.ntotal
    }
    fn metric(&self) -> MetricType {
        self.metric
    }
    fn is_trained(&self) -> bool {
        self.aq.is_trained()
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        let d = self.dim();
        check::nonempty_finite("training set", x, d)?;
        let sample = fathom_linalg::sample::subsample(x, d, self.max_train_points, 0x12345);
        let xs = sample.as_deref().unwrap_or(x);
        self.aq.train(xs)?;
        if self.metric == MetricType::L2 {
            self.norm_scale = estimate_norm_scale(&self.aq, self.metric, xs);
        }
        Ok(())
    }
    fn add(&mut self, x: &[f32]) -> Result<()> {
        if !self.is_trained() {
            return Err(Error::NotTrained(
                "add to a fast-scan additive quantizer".into(),
            ));
        }
        let n = check::vectors("added", x, self.dim())?;
        let mut codes = vec![0u8; n * self.aq.code_size()];
        self.aq.encode(x, &mut codes)?;
        self.add_codes(&codes)
    }
    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let nq = check_search(self, queries, k)?;
        if !self.is_trained() {
            return Err(Error::NotTrained(
                "searching a fast-scan additive quantizer".into(),
            ));
        }
        let (m, nc, d) = (self.aq.m(), self.norm_cols(), self.dim());
        let (nsq, nsq_n) = (packed_nsq(m), packed_nsq(nc.max(1)));
        // Both column groups quantized together (one scale, one bias), then split.
        let mut level_luts = vec![0u8; nq * nsq * 16];
        let mut norm_luts = vec![0u8; nq * nsq_n * 16];
        let mut scale_bias = vec![(1.0f32, 0.0f32); nq];
        let cols = m + nc;
        level_luts
            .par_chunks_mut(nsq * 16)
            .zip(norm_luts.par_chunks_mut(nsq_n * 16))
            .zip(queries.par_chunks(d))
            .zip(scale_bias.par_iter_mut())
            .try_for_each(|(((l, nl), q), sb)| {
                let t = query_tables(&self.aq, self.metric, self.scale(), q)?;
                l[..m * 16].copy_from_slice(&t.lut[..m * 16]);
                nl[..nc * 16].copy_from_slice(&t.lut[m * 16..cols * 16]);
                *sb = (t.a, t.offset);
                Ok::<_, Error>(())
            })?;
        let nblocks = self.ntotal.div_ceil(BLOCK);
        let sel = params.selector;
        let group = |g: usize| {
            let q0 = g * QUERY_GROUP;
            let q1 = (q0 + QUERY_GROUP).min(nq);
            (
                &level_luts[q0 * nsq * 16..q1 * nsq * 16],
                &norm_luts[q0 * nsq_n * 16..q1 * nsq_n * 16],
            )
        };
        let tops = search_blocks(nq, k, nblocks, |g, b0, b1, tops, buf| {
            let (l, n) = group(g);
            self.scan(b0, b1, l, n, tops, sel, buf, &mut Vec::new());
        });
        to_result(tops, k, self.metric, |q, key| {
            let (a, offset) = scale_bias[q];
            offset + key / a
        })
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        if id < 0 || id as usize >= self.ntotal {
            return Err(Error::IdNotFound(id));
        }
        let mut x = vec![0.0; self.dim()];
        self.aq.decode(&self.code(id as usize), &mut x);
        Ok(x)
    }
    fn sa_code_size(&self) -> Result<usize> {
        Ok(self.aq.code_size())
    }
    fn sa_encode(&self, x: &[f32]) -> Result<Vec<u8>> {
        if !self.is_trained() {
            return Err(Error::NotTrained(
                "encoding with a fast-scan additive quantizer".into(),
            ));
        }
        let n = check::vectors("encoded", x, self.dim())?;
        let mut codes = vec![0u8; n * self.aq.code_size()];
        self.aq.encode(x, &mut codes)?;
        Ok(codes)
    }
    fn sa_decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        if !self.is_trained() {
            return Err(Error::NotTrained(
                "decoding with a fast-scan additive quantizer".into(),
            ));
        }
        let (cs, d) = (self.aq.code_size(), self.dim());
        let n = check::codes("additive-quantizer codes", codes, cs)?;
        let mut out = vec![0.0f32; n * d];
        for (c, o) in codes.chunks_exact(cs).zip(out.chunks_exact_mut(d)) {
            self.aq.decode(c, o);
        }
        Ok(out)
    }
    fn add_sa_codes(&mut self, codes: &[u8], ids: Option<&[Idx]>) -> Result<()> {
        if ids.is_some() {
            return Err(Error::Unsupported(
                "ids on a fast-scan additive quantizer (wrap it in IndexIDMap)".into(),
            ));
        }
        self.add_codes(codes)
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        let kept: Vec<u8> = (0..self.ntotal)
            .filter(|&i| !selector.is_member(i as Idx))
            .flat_map(|i| self.code(i))
            .collect();
        let removed = self.ntotal - kept.len() / self.aq.code_size();
        self.reset()?;
        self.add_codes(&kept)?;
        Ok(removed)
    }
    fn reset(&mut self) -> Result<()> {
        self.levels.clear();
        self.norms.clear();
        self.ntotal = 0;
        Ok(())
    }
    fn description(&self) -> String {
        fast_scan_token(&self.aq, self.metric, self.bbs, "")
    }
    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::AqFastScan(self)
    }
}

/// Checks Faiss's rules for a fast-scan additive quantizer — 4-bit codebooks; for L2 a
/// 2×4-bit norm (`NormRq2x4` or `NormLsq2x4`), for inner product none (`LutNonorm`) —
/// and returns its fast-scan columns.
pub(crate) fn check_fast_scan_aq(aq: &AdditiveQuantizer, metric: MetricType) -> Result<usize> {
    if aq.nbits().iter().any(|&b| b != 4) {
        return Err(Error::invalid(format!(
            "fast-scan additive quantizers have 4-bit codebooks, got {:?}",
            aq.nbits()
        )));
    }
    let st = aq.search_type();
    match metric {
        MetricType::L2 if matches!(st, AqSearchType::NormRq2x4 | AqSearchType::NormLsq2x4) => {}
        MetricType::InnerProduct if st == AqSearchType::LutNonorm => {}
        MetricType::L2 | MetricType::InnerProduct => {
            return Err(Error::invalid(format!(
                "a fast-scan additive quantizer searches L2 with a 2×4-bit norm (_Nrq2x4 or \
                 _Nlsq2x4) and inner product without one; got {metric:?} with {}",
                if st.factory_suffix().is_empty() {
                    "no norm"
                } else {
                    st.factory_suffix()
                }
            )));
        }
        other => {
            return Err(Error::Unsupported(format!(
                "fast-scan additive quantizers compare with L2 or inner product, not {other:?}"
            )));
        }
    }
    let cols = aq.m() + if metric == MetricType::L2 { 2 } else { 0 };
    if cols > 256 {
        return Err(Error::invalid(format!(
            "fast-scan accumulates in 16 bits: at most 256 columns, got {cols}"
        )));
    }
    Ok(cols)
}

/// The float tables of one query, as Faiss's: for L2 the level columns `−2⟨q, e⟩`, then
/// the norm columns divided by `scale`; for inner product `⟨q, e⟩` (larger is better;
/// the search flips the quantized bytes for the min-heap).
pub(crate) fn float_table(
    aq: &AdditiveQuantizer,
    metric: MetricType,
    scale: i32,
    q: &[f32],
) -> Vec<f32> {
    let mut t = aq.compute_lut(q);
    if metric == MetricType::L2 {
        t.iter_mut().for_each(|v| *v *= -2.0);
        let s = scale as f32;
        t.extend(aq.norm_tabs().iter().map(|v| v / s));
    }
    t
}

/// One query's 8-bit tables for the fast-scan kernel and how to read its sums back.
pub(crate) struct QueryTables {
    /// `packed_nsq(columns) × 16` bytes: the level columns, then the norm columns.
    pub lut: Vec<u8>,
    /// The quantization scale.
    pub a: f32,
    /// `offset + sum / a` is the key: the distance (L2, without `‖q‖²`), or the score
    /// negated (inner product).
    pub offset: f32,
}

/// The quantized tables of query `q` (norm columns divided by `scale`, whose sums the
/// caller multiplies by it).
pub(crate) fn query_tables(
    aq: &AdditiveQuantizer,
    metric: MetricType,
    scale: i32,
    q: &[f32],
) -> Result<QueryTables> {
    let t = float_table(aq, metric, scale, q);
    let (m, cols) = (aq.m(), t.len() / 16);
    let mut lut = vec![0u8; packed_nsq(cols) * 16];
    let (a, bias) = quantize_lut(&t, cols, &mut lut)?;
    // The norm columns' sums are multiplied by the norm scale, their minimums too
    // (Faiss's bias counts them once, which shifts its L2 distances by a constant per
    // query when the scale is above 1).
    let norm_mins: f32 = t[m * 16..]
        .chunks_exact(16)
        .map(|c| c.iter().copied().fold(f32::INFINITY, f32::min))
        .sum();
    let bias = bias + (scale - 1) as f32 * norm_mins;
    let offset = if metric == MetricType::InnerProduct {
        // Faiss quantizes the scores themselves; the kernel's min-heap takes `255 − byte`,
        // and the score is `bias + (255·cols − sum) / a`.
        lut[..cols * 16].iter_mut().for_each(|v| *v = 255 - *v);
        -bias - (255 * cols) as f32 / a
    } else {
        bias
    };
    Ok(QueryTables { lut, a, offset })
}

/// The norm scale from the tables of (up to 65 536 of) the training vectors: the ratio
/// of the norm columns' span to the level columns' span, its median over the vectors,
/// rounded, 1 to 255. Faiss takes the mean (`estimate_norm_scale`), which a few vectors
/// with near-flat level tables (a residual near zero) blow up: on IVF residuals it
/// overflows to `i32::MIN`, i.e. no rescaling, and capped it would rescale so far that
/// norms lose their precision (1-recall@10 148/200 against 200/200 at any scale from 1 to
/// 64 on 20 000 of the bench vectors, IVF256,RQ8x4fsr_Nrq2x4). The median is what the
/// mean means to be without the outliers.
pub(crate) fn estimate_norm_scale(aq: &AdditiveQuantizer, metric: MetricType, x: &[f32]) -> i32 {
    let d = aq.d();
    let sample = fathom_linalg::sample::subsample(x, d, 65_536, 0x980903);
    let xs = sample.as_deref().unwrap_or(x);
    let m = aq.m();
    let span = |t: &[f32]| {
        let lo = t.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = t.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        hi - lo
    };
    let mut ratios: Vec<f32> = xs
        .par_chunks(d)
        .filter_map(|q| {
            let t = float_table(aq, metric, 1, q);
            let lv = t[..m * 16]
                .chunks(16)
                .map(span)
                .fold(f32::NEG_INFINITY, f32::max);
            let nv = t[m * 16..]
                .chunks(16)
                .map(span)
                .fold(f32::NEG_INFINITY, f32::max);
            let r = nv / lv;
            (lv > 0.0 && r.is_finite()).then_some(r)
        })
        .collect();
    if ratios.is_empty() {
        return 1;
    }
    let mid = ratios.len() / 2;
    let (_, &mut median, _) = ratios.select_nth_unstable_by(mid, f32::total_cmp);
    median.max(1.0).round().min(255.0) as i32
}

/// The factory token of a fast-scan additive quantizer: `RQ8x4` → `RQ8x4fs`, then
/// `residual` (`r` for an IVF coding residuals, as Faiss's IVF tokens), the block size
/// when not 32 and, for L2, the norm suffix.
pub(crate) fn fast_scan_token(
    aq: &AdditiveQuantizer,
    metric: MetricType,
    bbs: usize,
    residual: &str,
) -> String {
    let tok = crate::additive::aq_token(aq);
    let suffix = aq.search_type().factory_suffix();
    let body = tok.strip_suffix(suffix).unwrap_or(&tok);
    let bbs = if bbs == 32 {
        String::new()
    } else {
        format!("_{bbs}")
    };
    // Inner product searches without a norm: no suffix.
    let norm = if metric == MetricType::L2 { suffix } else { "" };
    format!("{body}fs{residual}{bbs}{norm}")
}
