//! `IndexIvfPqFastScan`: 4-bit PQ codes in blocks of 32 per list, scanned with the
//! fast-scan kernel.

use std::sync::Arc;

use fathom_core::{Error, IdSelector, Idx, MetricType, Result};
use fathom_invlists::{BlockInvertedLists, CodePacker, InvertedLists};
use fathom_kernels::TopK;
use fathom_kernels::codes::fastscan::{self as kern, BLOCK, block_bytes};
use fathom_quant::fastscan::{get_code, packed_nsq, quantize_lut, set_code};
use fathom_quant::{Codec, ProductQuantizer};

use super::{IndexIvf, IvfCodec, IvfContext, ListScanner};
use crate::Index;

/// The codec of [`IndexIvfPqFastScan`].
#[derive(Debug, Clone)]
pub struct IvfPqFastScan {
    pq: ProductQuantizer,
    bbs: usize,
}

/// 4-bit product quantization in inverted lists scanned with SIMD table look-ups
/// (Faiss's `IndexIVFPQFastScan`, factory `IVF4096,PQ32x4fs`; `PQ32x4fsr` encodes
/// residuals). As in Faiss, residuals are off by default (faster: one table per query
/// instead of one per probed list). Distances are those of the 8-bit quantized tables.
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexIvfPqFastScan, MetricType};
/// let d = 16;
/// let x: Vec<f32> = (0..2000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let q = Box::new(IndexFlat::new_l2(d).unwrap());
/// let mut index = IndexIvfPqFastScan::new(q, 8, 8, MetricType::L2).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// index.nprobe = 8;
/// assert_eq!(index.search(&x[..d], 5).unwrap().labels.len(), 5);
/// ```
pub type IndexIvfPqFastScan = IndexIvf<IvfPqFastScan>;

impl IndexIvf<IvfPqFastScan> {
    /// An untrained index of `m` 4-bit sub-quantizers (`m ≤ 256`), not encoding
    /// residuals (set `by_residual` before training to encode them).
    pub fn new(
        quantizer: Box<dyn Index>,
        nlist: usize,
        m: usize,
        metric: MetricType,
    ) -> Result<Self> {
        super::check_metric(metric)?;
        if m > 256 {
            return Err(Error::invalid(format!(
                "fast-scan accumulates in 16 bits: at most 256 sub-quantizers, got M = {m}"
            )));
        }
        let codec = IvfPqFastScan {
            pq: ProductQuantizer::new(quantizer.dim(), m, 4)?,
            bbs: 32,
        };
        IndexIvf::with_codec(quantizer, nlist, metric, codec, false)
    }
}

impl IvfPqFastScan {
    /// The codec around a 4-bit product quantizer (trained or not) of at most 256
    /// sub-quantizers.
    pub fn from_pq(pq: ProductQuantizer) -> Result<Self> {
        if pq.nbits() != 4 || pq.m() > 256 {
            return Err(Error::invalid(format!(
                "fast-scan needs 4-bit sub-quantizers, at most 256 of them; got {} × {} bits",
                pq.m(),
                pq.nbits()
            )));
        }
        Ok(IvfPqFastScan { pq, bbs: 32 })
    }

    /// Codes per block in Faiss's file layout (Faiss's `bbs`, factory
    /// `IVF1024,PQ32x4fs_64`; 32 by default). fathom's own lists do not depend on it; it
    /// is kept so a file written for Faiss has the layout it was built with.
    pub fn bbs(&self) -> usize {
        self.bbs
    }
    /// Sets the Faiss block size: a positive multiple of 32.
    pub fn set_bbs(&mut self, bbs: usize) -> Result<()> {
        self.bbs = crate::fastscan::check_bbs(bbs)?;
        Ok(())
    }

    /// The product quantizer.
    pub fn pq(&self) -> &ProductQuantizer {
        &self.pq
    }
    /// The product quantizer, e.g. to set its training parameters.
    pub fn pq_mut(&mut self) -> &mut ProductQuantizer {
        &mut self.pq
    }
}

/// Packs codes of `m` 4-bit columns (nibbles, low first) into the fast-scan block layout.
#[derive(Debug)]
pub(crate) struct FastScanPacker {
    pub(crate) m: usize,
    pub(crate) code_size: usize,
}

impl CodePacker for FastScanPacker {
    fn code_size(&self) -> usize {
        self.code_size
    }
    fn nvec(&self) -> usize {
        BLOCK
    }
    fn block_size(&self) -> usize {
        block_bytes(packed_nsq(self.m))
    }
    fn pack_1(&self, code: &[u8], i: usize, block: &mut [u8]) {
        let mut idx = [0u32; 256];
        fathom_quant::bits::unpack(code, 4, self.m, &mut idx[..self.m]);
        set_code(block, self.m, i, &idx[..self.m]);
    }
    fn unpack_1(&self, block: &[u8], i: usize, code: &mut [u8]) {
        let mut idx = [0u32; 256];
        get_code(block, self.m, i, &mut idx[..self.m]);
        fathom_quant::bits::pack(idx[..self.m].iter().copied(), 4, code);
    }
}

impl IvfCodec for IvfPqFastScan {
    fn view(&self) -> super::IvfCodecView<'_> {
        super::IvfCodecView::PqFastScan(self)
    }
    fn code_size(&self) -> usize {
        self.pq.code_size()
    }
    fn is_trained(&self) -> bool {
        self.pq.is_trained()
    }
    fn train(&mut self, x: &[f32], _lists: &[Idx], _ctx: IvfContext<'_>) -> Result<()> {
        self.pq.train(x)
    }
    fn train_sample_size(&self) -> usize {
        self.pq.cp.max_points_per_centroid * self.pq.ksub()
    }
    fn encode(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        self.pq.compute_codes_into(x, codes)
    }
    fn decode(&self, code: &[u8], out: &mut [f32]) {
        self.pq.decode_one(code, out);
    }
    fn new_lists(&self, nlist: usize) -> Box<dyn InvertedLists> {
        Box::new(BlockInvertedLists::new(
            nlist,
            Arc::new(FastScanPacker {
                m: self.pq.m(),
                code_size: self.pq.code_size(),
            }),
        ))
    }
    fn scanner<'a>(
        &'a self,
        ctx: IvfContext<'a>,
        query: &'a [f32],
    ) -> Result<Box<dyn ListScanner + 'a>> {
        let m = self.pq.m();
        let mut s = FastScanScanner {
            codec: self,
            ctx,
            query,
            table: vec![0.0; m * 16],
            lut: vec![0u8; packed_nsq(m) * 16],
            scale: 1.0,
            lut_bias: 0.0,
            offset: 0.0,
            per_list: ctx.by_residual && ctx.metric == MetricType::L2,
            residual: vec![0.0; query.len()],
            buf: Vec::new(),
        };
        if !s.per_list {
            s.build_lut(query)?;
        }
        Ok(Box::new(s))
    }
    fn description(&self, by_residual: bool) -> String {
        format!(
            "PQ{}x4fs{}{}",
            self.pq.m(),
            if by_residual { "r" } else { "" },
            if self.bbs == 32 {
                String::new()
            } else {
                format!("_{}", self.bbs)
            }
        )
    }
}

struct FastScanScanner<'a> {
    codec: &'a IvfPqFastScan,
    ctx: IvfContext<'a>,
    query: &'a [f32],
    table: Vec<f32>,
    lut: Vec<u8>,
    scale: f32,
    lut_bias: f32,
    /// `key = offset + accumulator / scale` for the current list.
    offset: f32,
    per_list: bool,
    residual: Vec<f32>,
    buf: Vec<u16>,
}

impl FastScanScanner<'_> {
    /// The 8-bit table of `x` in key terms (negated for inner product).
    fn build_lut(&mut self, x: &[f32]) -> Result<()> {
        let pq = &self.codec.pq;
        pq.compute_distance_table(self.ctx.metric, x, &mut self.table)?;
        if self.ctx.metric.is_similarity() {
            self.table.iter_mut().for_each(|v| *v = -*v);
        }
        let (scale, bias) = quantize_lut(&self.table, pq.m(), &mut self.lut)?;
        self.scale = scale;
        self.lut_bias = bias;
        self.offset = bias;
        Ok(())
    }

    fn accumulate(&mut self, codes: &[u8], n: usize) {
        let nsq = packed_nsq(self.codec.pq.m());
        let nb = n.div_ceil(BLOCK);
        self.buf.resize(nb * BLOCK, 0);
        kern::accumulate(
            nsq,
            &codes[..nb * block_bytes(nsq)],
            &self.lut,
            &mut self.buf,
        );
    }
}

impl ListScanner for FastScanScanner<'_> {
    fn set_list(&mut self, list: usize, coarse_dis: f32) -> Result<()> {
        if self.per_list {
            self.ctx.residual(list, self.query, &mut self.residual)?;
            let r = std::mem::take(&mut self.residual);
            let built = self.build_lut(&r);
            self.residual = r;
            built?;
        } else if self.ctx.by_residual {
            // Inner product over residuals: ⟨x, c⟩ + ⟨x, r⟩, negated.
            self.offset = self.lut_bias - coarse_dis;
        }
        Ok(())
    }

    fn keys(&mut self, codes: &[u8], out: &mut [f32]) {
        self.accumulate(codes, out.len());
        for (o, &a) in out.iter_mut().zip(&self.buf) {
            *o = self.offset + a as f32 / self.scale;
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
        top.push_ids_u16(&self.buf[..n], ids, self.offset, self.scale, |id| {
            selector.is_none_or(|s| s.is_member(id))
        });
    }
}
