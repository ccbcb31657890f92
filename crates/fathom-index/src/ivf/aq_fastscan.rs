//! `IndexIvfAqFastScan`: 4-bit additive-quantizer codes in fast-scan blocks per list
//! (Faiss's `IndexIVFAdditiveQuantizerFastScan`, factory `IVF<n>,RQ<M>x4fs[r]…`,
//! `LSQ…`, `PRQ…`, `PLSQ…`).
//!
//! As in Faiss, residuals are coded but the stored 2×4-bit norm is that of the whole
//! reconstruction (centroid included), so one table per query serves every list:
//! `‖q − c − r‖² − ‖q‖² = −2⟨q, c⟩ − 2⟨q, r⟩ + ‖c + r‖²`, the first term a per-list
//! bias. For inner product the bias is `⟨q, c⟩`. Each block of 32 codes holds the level
//! columns' block, then (L2) the two norm columns' own block, so the norm sums come out
//! apart and can be multiplied by the norm scale (see [`crate::IndexAqFastScan`]).

use std::sync::Arc;

use fathom_core::{Error, IdSelector, Idx, MetricType, Result};
use fathom_invlists::CodePacker;
use fathom_invlists::{BlockInvertedLists, InvertedLists};
use fathom_kernels::TopK;
use fathom_kernels::codes::fastscan::{self as kern, BLOCK, block_bytes};
use fathom_quant::additive::AdditiveQuantizer;
use fathom_quant::fastscan::{get_code, packed_nsq, quantize_lut, set_code};

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

/// Packs codes of `levels` nibbles then `norms` nibbles into blocks of 32: the level
/// columns' fast-scan block, then the norm columns' (none for inner product).
#[derive(Debug)]
struct SplitPacker {
    levels: usize,
    norms: usize,
    code_size: usize,
}

impl SplitPacker {
    fn level_bytes(&self) -> usize {
        block_bytes(packed_nsq(self.levels))
    }
    fn nibbles(&self, code: &[u8]) -> [u32; 258] {
        let mut nib = [0u32; 258];
        for (j, v) in nib.iter_mut().enumerate().take(self.levels + self.norms) {
            *v = ((code[j / 2] >> (4 * (j % 2))) & 15) as u32;
        }
        nib
    }
}

impl CodePacker for SplitPacker {
    fn code_size(&self) -> usize {
        self.code_size
    }
    fn nvec(&self) -> usize {
        BLOCK
    }
    fn block_size(&self) -> usize {
        self.level_bytes()
            + if self.norms > 0 {
                block_bytes(packed_nsq(self.norms))
            } else {
                0
            }
    }
    fn pack_1(&self, code: &[u8], i: usize, block: &mut [u8]) {
        let nib = self.nibbles(code);
        let (lv, nv) = block.split_at_mut(self.level_bytes());
        set_code(lv, self.levels, i, &nib[..self.levels]);
        if self.norms > 0 {
            set_code(
                nv,
                self.norms,
                i,
                &nib[self.levels..self.levels + self.norms],
            );
        }
    }
    fn unpack_1(&self, block: &[u8], i: usize, code: &mut [u8]) {
        let mut nib = [0u32; 258];
        let (lv, nv) = block.split_at(self.level_bytes());
        get_code(lv, self.levels, i, &mut nib[..self.levels]);
        if self.norms > 0 {
            get_code(
                nv,
                self.norms,
                i,
                &mut nib[self.levels..self.levels + self.norms],
            );
        }
        code.fill(0);
        for (j, &v) in nib.iter().enumerate().take(self.levels + self.norms) {
            code[j / 2] |= (v as u8) << (4 * (j % 2));
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
        let d = self.aq.d();
        if ctx.by_residual && self.metric == MetricType::L2 {
            // The stored norms cover the centroid: retrain their encoding on those.
            let n = x.len() / d;
            let mut codes = vec![0u8; n * self.aq.code_size()];
            self.aq.encode(x, &mut codes)?;
            let mut y = vec![0.0f32; d];
            let mut norms = Vec::with_capacity(n);
            for (code, &l) in codes.chunks_exact(self.aq.code_size()).zip(lists) {
                self.aq.decode(code, &mut y);
                let c = ctx.centroid(l.max(0) as usize)?;
                norms.push(y.iter().zip(c.iter()).map(|(a, b)| (a + b) * (a + b)).sum());
            }
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
            Arc::new(SplitPacker {
                levels: self.aq.m(),
                norms: self.columns() - self.aq.m(),
                code_size: self.aq.code_size(),
            }),
        ))
    }
    fn scanner<'a>(
        &'a self,
        ctx: IvfContext<'a>,
        query: &'a [f32],
    ) -> Result<Box<dyn ListScanner + 'a>> {
        let cols = self.columns();
        let nsq = packed_nsq(cols);
        let ip = self.metric == MetricType::InnerProduct;
        // Quantized together (one scale, one bias), then split by column group.
        let table = crate::aq_fastscan::float_table(&self.aq, self.metric, self.scale(), query);
        let mut lut = vec![0u8; nsq * 16];
        let (a, bias) = quantize_lut(&table, cols, &mut lut)?;
        let m = self.aq.m();
        let norm_mins: f32 = table[m * 16..]
            .chunks_exact(16)
            .map(|c| c.iter().copied().fold(f32::INFINITY, f32::min))
            .sum();
        let bias = bias + (self.scale() - 1) as f32 * norm_mins;
        if ip {
            lut[..cols * 16].iter_mut().for_each(|v| *v = 255 - *v);
        }
        // The level columns' tables, and the norm columns' for their own blocks.
        let mut level_lut = vec![0u8; packed_nsq(m) * 16];
        level_lut[..m * 16].copy_from_slice(&lut[..m * 16]);
        let norm_lut = (cols > m).then(|| {
            let mut n = vec![0u8; packed_nsq(cols - m) * 16];
            n[..(cols - m) * 16].copy_from_slice(&lut[m * 16..cols * 16]);
            n
        });
        Ok(Box::new(AqFastScanScanner {
            codec: self,
            ctx,
            query,
            lut: level_lut,
            norm_lut,
            a,
            // Keys are distances (L2) or negated scores (inner product, from the flipped
            // bytes: score = bias + (255·cols − sum) / a).
            base: if ip {
                -bias - (255 * cols) as f32 / a
            } else {
                bias
            },
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
    /// The level sums into `buf` and, for L2, the norm sums into `buf2`, block by block
    /// (each block holds the level columns' block, then the norm columns').
    fn accumulate(&mut self, codes: &[u8], n: usize) {
        let m = self.codec.aq.m();
        let (nsq_l, lbb) = (packed_nsq(m), block_bytes(packed_nsq(m)));
        let nb = n.div_ceil(BLOCK);
        self.buf.resize(nb * BLOCK, 0);
        let Some(nl) = &self.norm_lut else {
            kern::accumulate(nsq_l, &codes[..nb * lbb], &self.lut, &mut self.buf);
            return;
        };
        let stride = lbb + block_bytes(2);
        self.buf2.resize(nb * BLOCK, 0);
        for ((block, lo), no) in codes[..nb * stride]
            .chunks_exact(stride)
            .zip(self.buf.chunks_exact_mut(BLOCK))
            .zip(self.buf2.chunks_exact_mut(BLOCK))
        {
            let (lv, nv) = block.split_at(lbb);
            kern::accumulate(nsq_l, lv, &self.lut, lo);
            kern::accumulate(2, nv, nl, no);
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
