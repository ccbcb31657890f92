//! `IndexIvfAqFastScan`: 4-bit additive-quantizer codes in fast-scan blocks per list
//! (Faiss's `IndexIVFAdditiveQuantizerFastScan`, factory `IVF<n>,RQ<M>x4fs[r]…`,
//! `LSQ…`, `PRQ…`, `PLSQ…`).
//!
//! As in Faiss, residuals are coded but the stored 2×4-bit norm is that of the whole
//! reconstruction (centroid included), so one table per query serves every list:
//! `‖q − c − r‖² − ‖q‖² = −2⟨q, c⟩ − 2⟨q, r⟩ + ‖c + r‖²`, the first term a per-list
//! bias. For inner product the bias is `⟨q, c⟩`. With rescaled norm columns (see
//! [`crate::IndexAqFastScan`]) a block is scanned twice — levels, then norms with the
//! other columns' tables zero — and the norm sums multiplied by the scale.

use std::sync::Arc;

use fathom_core::{Error, IdSelector, Idx, MetricType, Result};
use fathom_invlists::{BlockInvertedLists, InvertedLists};
use fathom_kernels::TopK;
use fathom_kernels::codes::fastscan::{self as kern, BLOCK, block_bytes};
use fathom_quant::additive::AdditiveQuantizer;
use fathom_quant::fastscan::packed_nsq;

use super::fastscan::FastScanPacker;
use super::{IndexIvf, IvfCodec, IvfContext, ListScanner};
use crate::Index;
use crate::aq_fastscan::{check_fast_scan_aq, fast_scan_token};

/// The codec of [`IndexIvfAqFastScan`].
#[derive(Debug, Clone)]
pub struct IvfAqFastScan {
    aq: AdditiveQuantizer,
    metric: MetricType,
    bbs: usize,
    /// Whether the norm columns are scaled (Faiss's `rescale_norm`).
    pub rescale_norm: bool,
    norm_scale: i32,
    /// Training vectors used at most (Faiss's `max_train_points`).
    pub max_train_points: usize,
}

/// 4-bit additive-quantizer codes in inverted lists, scanned by the fast-scan kernel.
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexIvfAqFastScan, MetricType};
/// use fathom_quant::additive::{AdditiveQuantizer, AqSearchType};
/// let d = 16;
/// let x: Vec<f32> = (0..3000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let q = Box::new(IndexFlat::new_l2(d).unwrap());
/// let rq = AdditiveQuantizer::residual(d, vec![4; 4], AqSearchType::NormRq2x4).unwrap();
/// let mut index = IndexIvfAqFastScan::new(q, 8, rq, MetricType::L2).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// index.nprobe = 8;
/// assert_eq!(index.search(&x[..d], 5).unwrap().labels.len(), 5);
/// ```
pub type IndexIvfAqFastScan = IndexIvf<IvfAqFastScan>;

impl IndexIvf<IvfAqFastScan> {
    /// An untrained index over `quantizer` with `nlist` lists coding residuals with `aq`
    /// (4-bit codebooks; for L2 a 2×4-bit norm, for inner product none).
    pub fn new(
        quantizer: Box<dyn Index>,
        nlist: usize,
        aq: AdditiveQuantizer,
        metric: MetricType,
    ) -> Result<Self> {
        let codec = IvfAqFastScan::from_aq(aq, metric)?;
        if codec.aq.d() != quantizer.dim() {
            return Err(Error::DimensionMismatch {
                what: "additive quantizer".into(),
                got: codec.aq.d(),
                expected: quantizer.dim().to_string(),
            });
        }
        IndexIvf::with_codec(quantizer, nlist, metric, codec, true)
    }
}

impl IvfAqFastScan {
    /// The codec over `aq` (trained or not) for `metric`.
    pub fn from_aq(aq: AdditiveQuantizer, metric: MetricType) -> Result<Self> {
        let cols = check_fast_scan_aq(&aq, metric)?;
        Ok(IvfAqFastScan {
            aq,
            metric,
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
    /// Faiss's block size (kept for files).
    pub fn bbs(&self) -> usize {
        self.bbs
    }
    /// Sets the Faiss block size: a positive multiple of 32.
    pub fn set_bbs(&mut self, bbs: usize) -> Result<()> {
        self.bbs = crate::fastscan::check_bbs(bbs)?;
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
    /// Fast-scan columns: the levels, and for L2 the two norm nibbles.
    pub fn columns(&self) -> usize {
        self.aq.m() + if self.metric == MetricType::L2 { 2 } else { 0 }
    }
    fn scale(&self) -> i32 {
        if self.rescale_norm {
            self.norm_scale
        } else {
            1
        }
    }
}

impl IvfCodec for IvfAqFastScan {
    fn view(&self) -> super::IvfCodecView<'_> {
        super::IvfCodecView::AqFastScan(self)
    }
    fn code_size(&self) -> usize {
        self.aq.code_size()
    }
    fn is_trained(&self) -> bool {
        self.aq.is_trained()
    }
    fn train(&mut self, x: &[f32], lists: &[Idx], ctx: IvfContext<'_>) -> Result<()> {
        self.aq.train(x)?;
        if ctx.by_residual && self.metric == MetricType::L2 {
            // The stored norms cover the centroid: retrain their encoding on those.
            let mut centroids = Vec::with_capacity(x.len());
            for &l in lists {
                centroids.extend_from_slice(&ctx.centroid(l.max(0) as usize)?);
            }
            let norms = self.aq.reconstruction_norms_with_offsets(x, &centroids)?;
            self.aq.train_norm_on(&norms)?;
        }
        if self.metric == MetricType::L2 {
            self.norm_scale = crate::aq_fastscan::estimate_norm_scale(&self.aq, self.metric, x);
        }
        Ok(())
    }
    fn train_sample_size(&self) -> usize {
        self.max_train_points
    }
    fn encode(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        self.aq.encode(x, codes)
    }
    fn encode_with_vectors(&self, x: &[f32], residuals: &[f32], codes: &mut [u8]) -> Result<()> {
        let centroids: Vec<f32> = x.iter().zip(residuals).map(|(a, b)| a - b).collect();
        self.aq.encode_with_offsets(residuals, &centroids, codes)
    }
    fn decode(&self, code: &[u8], out: &mut [f32]) {
        self.aq.decode(code, out);
    }
    fn new_lists(&self, nlist: usize) -> Box<dyn InvertedLists> {
        Box::new(BlockInvertedLists::new(
            nlist,
            Arc::new(FastScanPacker {
                m: self.columns(),
                code_size: self.aq.code_size(),
            }),
        ))
    }
    fn scanner<'a>(
        &'a self,
        ctx: IvfContext<'a>,
        query: &'a [f32],
    ) -> Result<Box<dyn ListScanner + 'a>> {
        let (m, cols) = (self.aq.m(), self.columns());
        let t = crate::aq_fastscan::query_tables(&self.aq, self.metric, self.scale(), query)?;
        let mut lut = t.lut;
        // With scaled norms: the same blocks scanned once with the level tables alone and
        // once with the norm tables alone.
        let norm_lut = (self.scale() > 1).then(|| {
            let mut n = vec![0u8; packed_nsq(cols) * 16];
            n[m * 16..cols * 16].copy_from_slice(&lut[m * 16..cols * 16]);
            lut[m * 16..cols * 16].fill(0);
            n
        });
        Ok(Box::new(AqFastScanScanner {
            codec: self,
            ctx,
            query,
            lut,
            norm_lut,
            a: t.a,
            base: t.offset,
            offset: 0.0,
            buf: Vec::new(),
            buf2: Vec::new(),
            keys: Vec::new(),
        }))
    }
    fn description(&self, by_residual: bool) -> String {
        fast_scan_token(
            &self.aq,
            self.metric,
            self.bbs,
            if by_residual { "r" } else { "" },
        )
    }
}

struct AqFastScanScanner<'a> {
    codec: &'a IvfAqFastScan,
    ctx: IvfContext<'a>,
    query: &'a [f32],
    lut: Vec<u8>,
    norm_lut: Option<Vec<u8>>,
    a: f32,
    base: f32,
    /// `key = offset + accumulator / a` for the current list.
    offset: f32,
    buf: Vec<u16>,
    buf2: Vec<u16>,
    keys: Vec<f32>,
}

impl AqFastScanScanner<'_> {
    fn accumulate(&mut self, codes: &[u8], n: usize) {
        let nsq = packed_nsq(self.codec.columns());
        let nb = n.div_ceil(BLOCK);
        let blocks = &codes[..nb * block_bytes(nsq)];
        self.buf.resize(nb * BLOCK, 0);
        kern::accumulate(nsq, blocks, &self.lut, &mut self.buf);
        if let Some(nl) = &self.norm_lut {
            self.buf2.resize(nb * BLOCK, 0);
            kern::accumulate(nsq, blocks, nl, &mut self.buf2);
        }
    }

    /// The keys of the last accumulation, with scaled norms.
    fn scaled_keys(&mut self, n: usize) {
        let s = self.codec.scale() as f32;
        self.keys.clear();
        let (off, a) = (self.offset, self.a);
        self.keys.extend(
            self.buf[..n]
                .iter()
                .zip(&self.buf2[..n])
                .map(|(&l, &m)| off + (l as f32 + s * m as f32) / a),
        );
    }
}

impl ListScanner for AqFastScanScanner<'_> {
    fn set_list(&mut self, list: usize, _coarse_dis: f32) -> Result<()> {
        let ip = self.codec.metric == MetricType::InnerProduct;
        let list_bias = if self.ctx.by_residual {
            let c = self.ctx.centroid(list)?;
            let qc: f32 = self.query.iter().zip(c.iter()).map(|(a, b)| a * b).sum();
            if ip { -qc } else { -2.0 * qc }
        } else {
            0.0
        };
        self.offset = self.base + list_bias;
        Ok(())
    }

    fn keys(&mut self, codes: &[u8], out: &mut [f32]) {
        let n = out.len();
        self.accumulate(codes, n);
        if self.norm_lut.is_some() {
            self.scaled_keys(n);
            out.copy_from_slice(&self.keys);
            return;
        }
        for (o, &a) in out.iter_mut().zip(&self.buf) {
            *o = self.offset + a as f32 / self.a;
        }
    }

    fn scan(
        &mut self,
        codes: &[u8],
        ids: &[Idx],
        top: &mut TopK,
        selector: Option<&dyn IdSelector>,
    ) {
        let n = ids.len();
        if n == 0 {
            return;
        }
        self.accumulate(codes, n);
        let accept = |id: Idx| selector.is_none_or(|s| s.is_member(id));
        if self.norm_lut.is_some() {
            self.scaled_keys(n);
            top.push_ids(&self.keys, ids, accept);
        } else {
            top.push_ids_u16(&self.buf[..n], ids, self.offset, self.a, accept);
        }
    }
}
