//! `IndexIvfRaBitQFastScan`: RaBitQ codes relative to their list's centroid, in
//! fast-scan blocks per list (Faiss's `IndexIVFRaBitQFastScan`, factory
//! `IVF<n>,RaBitQfs[b][_bbs]`).
//!
//! The tables depend on the query's residual, so each probed list gets its own, built
//! and quantized when the scan reaches it (Faiss quantizes a query's tables for all its
//! lists with one scale; one scale per list is at least as fine).

use std::sync::Arc;

use fathom_core::{Error, IdSelector, Idx, MetricType, Result};
use fathom_invlists::{BlockInvertedLists, InvertedLists};
use fathom_kernels::TopK;
use fathom_quant::rabitq::RaBitQuantizer;

use super::{IndexIvf, IvfCodec, IvfContext, ListScanner};
use crate::Index;
use crate::rabitq_fastscan::{
    DEFAULT_FAST_SCAN_QB, FastScanQuery, RaBitQPacker, check_fast_scan_d, check_fast_scan_qb,
    fast_scan_description,
};

/// The codec of [`IndexIvfRaBitQFastScan`].
#[derive(Debug, Clone)]
pub struct IvfRaBitQFastScan {
    quantizer: RaBitQuantizer,
    packer: RaBitQPacker,
    qb: u8,
    /// Quantize queries over a range centred on zero (Faiss's `centered`).
    pub centered: bool,
    bbs: usize,
}

/// RaBitQ codes in inverted lists, scanned by the fast-scan kernel.
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexIvfRaBitQFastScan, MetricType};
/// let d = 32;
/// let mut s = 1u32; // a linear congruential generator: uniform in [-0.5, 0.5)
/// let x: Vec<f32> = (0..2000 * d)
///     .map(|_| {
///         s = s.wrapping_mul(1664525).wrapping_add(1013904223);
///         (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
///     })
///     .collect();
/// let q = Box::new(IndexFlat::new_l2(d).unwrap());
/// let mut index = IndexIvfRaBitQFastScan::new(q, 8, MetricType::L2, 4).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// index.nprobe = 8;
/// assert_eq!(index.search(&x[..d], 1).unwrap().labels, vec![0]);
/// ```
pub type IndexIvfRaBitQFastScan = IndexIvf<IvfRaBitQFastScan>;

impl IndexIvf<IvfRaBitQFastScan> {
    /// An untrained index over `quantizer` with `nlist` lists and `nb_bits` (1 to 9) bits
    /// per coordinate (`d ≤ 1024`).
    pub fn new(
        quantizer: Box<dyn Index>,
        nlist: usize,
        metric: MetricType,
        nb_bits: usize,
    ) -> Result<Self> {
        let codec = IvfRaBitQFastScan::new(quantizer.dim(), metric, nb_bits)?;
        IndexIvf::with_codec(quantizer, nlist, metric, codec, true)
    }
}

impl IvfRaBitQFastScan {
    /// The codec for `d`-dimensional vectors.
    pub fn new(d: usize, metric: MetricType, nb_bits: usize) -> Result<Self> {
        check_fast_scan_d(d)?;
        let quantizer = RaBitQuantizer::new(d, metric, nb_bits)?;
        Ok(IvfRaBitQFastScan {
            packer: RaBitQPacker::new(&quantizer),
            quantizer,
            qb: DEFAULT_FAST_SCAN_QB,
            centered: false,
            bbs: 32,
        })
    }
    /// The quantizer.
    pub fn rabitq(&self) -> &RaBitQuantizer {
        &self.quantizer
    }
    /// The block layout of each list.
    pub fn packer(&self) -> &RaBitQPacker {
        &self.packer
    }
    /// Bits per query coordinate (1 to 8; Faiss's default 8).
    pub fn qb(&self) -> u8 {
        self.qb
    }
    /// Sets the bits per query coordinate (1 to 8).
    pub fn set_qb(&mut self, qb: u8) -> Result<()> {
        self.qb = check_fast_scan_qb(qb as f64)?;
        Ok(())
    }
    /// Codes per block in Faiss's file layout (kept for files; fathom's blocks hold 32).
    pub fn bbs(&self) -> usize {
        self.bbs
    }
    /// Sets the Faiss block size: a positive multiple of 32.
    pub fn set_bbs(&mut self, bbs: usize) -> Result<()> {
        self.bbs = crate::fastscan::check_bbs(bbs)?;
        Ok(())
    }
}

impl IvfCodec for IvfRaBitQFastScan {
    fn view(&self) -> super::IvfCodecView<'_> {
        super::IvfCodecView::RaBitQFastScan(self)
    }
    fn code_size(&self) -> usize {
        self.quantizer.code_size()
    }
    fn is_trained(&self) -> bool {
        true
    }
    fn train(&mut self, _x: &[f32], _lists: &[Idx], _ctx: IvfContext<'_>) -> Result<()> {
        Ok(())
    }
    fn encode(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        self.quantizer.encode_rows(x, codes)
    }
    fn encode_with_vectors(&self, x: &[f32], residuals: &[f32], codes: &mut [u8]) -> Result<()> {
        self.quantizer.encode_relative(x, residuals, codes)
    }
    fn decode(&self, code: &[u8], out: &mut [f32]) {
        self.quantizer.decode(code, None, out);
    }
    fn new_lists(&self, nlist: usize) -> Box<dyn InvertedLists> {
        Box::new(BlockInvertedLists::new(
            nlist,
            Arc::new(self.packer.clone()),
        ))
    }
    fn scanner<'a>(
        &'a self,
        ctx: IvfContext<'a>,
        query: &'a [f32],
    ) -> Result<Box<dyn ListScanner + 'a>> {
        if !ctx.by_residual {
            return Err(Error::invalid(
                "IVF-RaBitQ codes are relative to their list's centroid (by_residual)",
            ));
        }
        Ok(Box::new(FastScanScanner {
            codec: self,
            ctx,
            query,
            prepared: None,
            tables: Vec::new(),
            sums: Vec::new(),
            code: Vec::new(),
        }))
    }
    fn description(&self, _by_residual: bool) -> String {
        fast_scan_description(self.quantizer.nb_bits(), self.bbs)
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<bool> {
        match name {
            "qb" => self.qb = check_fast_scan_qb(value)?,
            "centered" => self.centered = crate::param_values::flag(name, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
    fn param(&self, name: &str) -> Option<f64> {
        match name {
            "qb" => Some(self.qb as f64),
            "centered" => Some(self.centered as u8 as f64),
            _ => None,
        }
    }
}

struct FastScanScanner<'a> {
    codec: &'a IvfRaBitQFastScan,
    ctx: IvfContext<'a>,
    query: &'a [f32],
    /// The query prepared against the current list's centroid.
    prepared: Option<FastScanQuery>,
    tables: Vec<f32>,
    sums: Vec<u16>,
    code: Vec<u8>,
}

impl ListScanner for FastScanScanner<'_> {
    fn set_list(&mut self, list: usize, _coarse_dis: f32) -> Result<()> {
        let c = self.ctx.centroid(list)?;
        let codec = self.codec;
        let (earlier, lut) = match self.prepared.take() {
            Some(p) => {
                let (q, lut) = p.into_parts();
                (Some(q), lut)
            }
            None => (None, Vec::new()),
        };
        let query = codec.quantizer.query_for_tables(
            self.query,
            Some(&c),
            codec.qb,
            codec.centered,
            earlier,
        )?;
        self.prepared = Some(FastScanQuery::new(
            query,
            &codec.packer,
            &mut self.tables,
            lut,
        )?);
        Ok(())
    }
    fn keys(&mut self, codes: &[u8], out: &mut [f32]) {
        match &self.prepared {
            Some(p) => p.keys(
                &self.codec.packer,
                codes,
                out,
                &mut self.sums,
                &mut self.code,
            ),
            None => out.fill(f32::INFINITY),
        }
    }
    fn scan(
        &mut self,
        codes: &[u8],
        ids: &[Idx],
        top: &mut TopK,
        selector: Option<&dyn IdSelector>,
    ) {
        let Some(p) = &self.prepared else { return };
        p.scan(
            &self.codec.packer,
            codes,
            ids.len(),
            |i| ids[i],
            top,
            selector,
            &mut self.sums,
            &mut self.code,
        );
    }
}
