//! `IndexIvfRaBitQ`: RaBitQ codes of each vector relative to its list's centroid.

use fathom_core::{Error, IdSelector, Idx, MetricType, Result};
use fathom_kernels::TopK;
use fathom_quant::rabitq::{RaBitQQuery, RaBitQuantizer};

use super::{IndexIvf, IvfCodec, IvfContext, ListScanner};
use crate::Index;
use crate::rabitq::rabitq_key;

/// The codec of [`IndexIvfRaBitQ`]: the quantizer and the query settings.
#[derive(Debug, Clone)]
pub struct IvfRaBitQ {
    quantizer: RaBitQuantizer,
    /// Bits per query coordinate (0: the float query; Faiss's default 4).
    pub qb: u8,
}

/// RaBitQ codes in inverted lists (Faiss's `IndexIVFRaBitQ`, factory `IVF<n>,RaBitQ`,
/// `IVF<n>,RaBitQ<b>`): each vector is coded relative to its list's centroid, so the
/// codes need no training beyond the coarse quantizer's. Extended codes (`b > 1`) are
/// searched in two stages, as Faiss: the 1-bit estimate and its error bound decide which
/// codes get the full estimate.
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexIvfRaBitQ, MetricType};
/// let d = 32;
/// let mut s = 1u32; // a linear congruential generator: uniform in [-0.5, 0.5)
/// let x: Vec<f32> = (0..2000 * d)
///     .map(|_| {
///         s = s.wrapping_mul(1664525).wrapping_add(1013904223);
///         (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
///     })
///     .collect();
/// let q = Box::new(IndexFlat::new_l2(d).unwrap());
/// let mut index = IndexIvfRaBitQ::new(q, 8, MetricType::L2, 4).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// index.nprobe = 8;
/// assert_eq!(index.search(&x[..d], 1).unwrap().labels, vec![0]);
/// ```
pub type IndexIvfRaBitQ = IndexIvf<IvfRaBitQ>;

impl IndexIvf<IvfRaBitQ> {
    /// An untrained index over `quantizer` with `nlist` lists and `nb_bits` (1 to 9) bits
    /// per coordinate.
    pub fn new(
        quantizer: Box<dyn Index>,
        nlist: usize,
        metric: MetricType,
        nb_bits: usize,
    ) -> Result<Self> {
        let codec = IvfRaBitQ::new(quantizer.dim(), metric, nb_bits)?;
        IndexIvf::with_codec(quantizer, nlist, metric, codec, true)
    }
}

impl IvfRaBitQ {
    /// The codec for `d`-dimensional vectors.
    pub fn new(d: usize, metric: MetricType, nb_bits: usize) -> Result<Self> {
        Ok(IvfRaBitQ {
            quantizer: RaBitQuantizer::new(d, metric, nb_bits)?,
            qb: 4,
        })
    }
    /// The quantizer.
    pub fn rabitq(&self) -> &RaBitQuantizer {
        &self.quantizer
    }
}

impl IvfCodec for IvfRaBitQ {
    fn view(&self) -> super::IvfCodecView<'_> {
        super::IvfCodecView::RaBitQ(self)
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
        // Residuals alone: the centroid is the origin (inner-product factors then treat
        // the residual as the vector).
        self.quantizer.encode_rows(x, codes)
    }
    fn encode_with_vectors(&self, x: &[f32], residuals: &[f32], codes: &mut [u8]) -> Result<()> {
        self.quantizer.encode_relative(x, residuals, codes)
    }
    fn decode(&self, code: &[u8], out: &mut [f32]) {
        self.quantizer.decode(code, None, out);
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
        Ok(Box::new(RaBitQScanner {
            codec: self,
            ctx,
            query,
            prepared: None,
        }))
    }
    fn description(&self, _by_residual: bool) -> String {
        match self.quantizer.nb_bits() {
            1 => "RaBitQ".into(),
            b => format!("RaBitQ{b}"),
        }
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<bool> {
        if name != "qb" {
            return Ok(false);
        }
        let v = crate::param_values::count(name, value)?;
        if v > 8 {
            return Err(Error::invalid(format!("qb must be 0 to 8, got {v}")));
        }
        self.qb = v as u8;
        Ok(true)
    }
    fn param(&self, name: &str) -> Option<f64> {
        (name == "qb").then_some(self.qb as f64)
    }
}

struct RaBitQScanner<'a> {
    codec: &'a IvfRaBitQ,
    ctx: IvfContext<'a>,
    query: &'a [f32],
    /// The query prepared against the current list's centroid.
    prepared: Option<RaBitQQuery>,
}

impl ListScanner for RaBitQScanner<'_> {
    fn set_list(&mut self, list: usize, _coarse_dis: f32) -> Result<()> {
        let c = self.ctx.centroid(list)?;
        self.prepared = Some(self.codec.quantizer.query_reusing(
            self.query,
            Some(&c),
            self.codec.qb,
            false,
            self.prepared.take(),
        )?);
        Ok(())
    }
    fn keys(&mut self, codes: &[u8], out: &mut [f32]) {
        let Some(q) = &self.prepared else {
            out.fill(f32::INFINITY);
            return;
        };
        if self.codec.quantizer.nb_bits() == 1 {
            q.estimate_keys(codes, out);
            return;
        }
        let cs = self.codec.code_size();
        let ip = self.ctx.metric == MetricType::InnerProduct;
        for (o, code) in out.iter_mut().zip(codes.chunks_exact(cs)) {
            *o = rabitq_key(q, code, ip);
        }
    }
    fn scan(
        &mut self,
        codes: &[u8],
        ids: &[Idx],
        top: &mut TopK,
        selector: Option<&dyn IdSelector>,
    ) {
        let Some(q) = &self.prepared else { return };
        let cs = self.codec.code_size();
        let ip = self.ctx.metric == MetricType::InnerProduct;
        let accept = |id: Idx| selector.is_none_or(|s| s.is_member(id));
        // 1-bit estimates a chunk at a time, the loop over codes free of dispatch.
        let mut keys = [0.0f32; 256];
        let one_bit = self.codec.quantizer.nb_bits() == 1;
        for (cc, ic) in codes.chunks(256 * cs).zip(ids.chunks(256)) {
            let keys = &mut keys[..ic.len()];
            q.estimate_keys(cc, keys);
            if one_bit {
                // Offered to the heap together: its SIMD threshold search skips most.
                top.push_ids(keys, ic, accept);
                continue;
            }
            for ((code, &id), &key) in cc.chunks_exact(cs).zip(ic).zip(keys.iter()) {
                // Faiss's two stages: the full estimate only where the 1-bit one, less
                // its error bound, could still enter the results.
                if !accept(id) || !q.key_may_beat(code, key, top.threshold()) {
                    continue;
                }
                top.push(rabitq_key(q, code, ip), id);
            }
        }
    }
}
