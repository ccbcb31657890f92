//! `IndexIvfPq`: product-quantizer codes of residuals in the lists.

use std::sync::OnceLock;

use fathom_core::{Error, Idx, MetricType, Result};
use fathom_kernels::codes::hamming;
use fathom_quant::{Codec, PolysemousTraining, ProductQuantizer};

use super::{IndexIvf, IvfCodec, IvfContext, ListScanner};
use crate::Index;

/// Largest precomputed table kept, in bytes (Faiss's `precomputed_table_max_bytes`).
const PRECOMPUTED_TABLE_MAX_BYTES: usize = 2 << 30;

/// The codec of [`IndexIvfPq`].
#[derive(Debug)]
pub struct IvfPq {
    pq: ProductQuantizer,
    /// Whether training renumbers centroids for polysemous (Hamming) filtering.
    pub do_polysemous_training: bool,
    /// Its settings.
    pub polysemous_training: PolysemousTraining,
    /// Hamming threshold: with `> 0`, codes farther than this many bits from the query's
    /// code are skipped (Faiss's `polysemous_ht`; 0 turns filtering off).
    pub polysemous_ht: u32,
    /// Faiss's `use_precomputed_table`: −1 never, 0 when it fits (the default), 1 always.
    pub use_precomputed_table: i32,
    /// `nlist × M × ksub`: `‖y_R‖² + 2⟨y_C, y_R⟩` for every list and sub-centroid, so an
    /// L2 residual table costs one addition per entry instead of a distance.
    precomputed: OnceLock<Option<Vec<f32>>>,
}

/// Product-quantizer codes of residuals in inverted lists (Faiss's `IndexIVFPQ`, factory
/// `IVF4096,PQ32`, `np` to skip polysemous training): `M·nbits/8 + 8` bytes per vector.
///
/// For L2 with residuals the per-list distance tables are assembled from a table
/// precomputed at training (Faiss's `use_precomputed_table`), so a probe costs `M·ksub`
/// additions.
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexIvfPq, MetricType};
/// let d = 16;
/// let x: Vec<f32> = (0..3000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let quantizer = Box::new(IndexFlat::new_l2(d).unwrap());
/// let mut index = IndexIvfPq::new(quantizer, 8, 4, 8, MetricType::L2).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// index.nprobe = 4;
/// assert_eq!(index.search(&x[..d], 3).unwrap().labels.len(), 3);
/// ```
pub type IndexIvfPq = IndexIvf<IvfPq>;

impl IndexIvf<IvfPq> {
    /// An untrained IVF-PQ index: `nlist` lists, `m` sub-quantizers of `nbits` bits,
    /// encoding residuals.
    pub fn new(
        quantizer: Box<dyn Index>,
        nlist: usize,
        m: usize,
        nbits: usize,
        metric: MetricType,
    ) -> Result<Self> {
        super::check_metric(metric)?;
        let codec = IvfPq::new(quantizer.dim(), m, nbits)?;
        IndexIvf::with_codec(quantizer, nlist, metric, codec, true)
    }
}

impl IvfPq {
    /// The codec for `m` sub-quantizers of `nbits` bits.
    pub fn new(d: usize, m: usize, nbits: usize) -> Result<Self> {
        Ok(IvfPq {
            pq: ProductQuantizer::new(d, m, nbits)?,
            do_polysemous_training: false,
            polysemous_training: PolysemousTraining::default(),
            polysemous_ht: 0,
            use_precomputed_table: 0,
            precomputed: OnceLock::new(),
        })
    }
    /// The product quantizer.
    pub fn pq(&self) -> &ProductQuantizer {
        &self.pq
    }
    /// The product quantizer, e.g. to set its training parameters.
    pub fn pq_mut(&mut self) -> &mut ProductQuantizer {
        self.precomputed = OnceLock::new();
        &mut self.pq
    }

    /// The precomputed table, built on first use when the index's setting allows it.
    fn precomputed(&self, ctx: &IvfContext<'_>) -> Option<&[f32]> {
        if !ctx.by_residual || ctx.metric != MetricType::L2 || self.use_precomputed_table < 0 {
            return None;
        }
        let (m, ksub) = (self.pq.m(), self.pq.ksub());
        let bytes = ctx.nlist.saturating_mul(m * ksub * 4);
        if self.use_precomputed_table == 0 && bytes > PRECOMPUTED_TABLE_MAX_BYTES {
            return None;
        }
        self.precomputed
            // A table that cannot be built (a quantizer without reconstruction) is left
            // out: the per-list tables then report the error.
            .get_or_init(|| self.build_precomputed(ctx).ok())
            .as_deref()
    }

    fn build_precomputed(&self, ctx: &IvfContext<'_>) -> Result<Vec<f32>> {
        use rayon::prelude::*;
        let (m, ksub, dsub) = (self.pq.m(), self.pq.ksub(), self.pq.dsub());
        // ‖y_R‖² per sub-centroid, shared by every list.
        let norms: Vec<f32> = self
            .pq
            .centroids()
            .chunks_exact(dsub)
            .map(|c| c.iter().map(|v| v * v).sum())
            .collect();
        let mut table = vec![0.0f32; ctx.nlist * m * ksub];
        table
            .par_chunks_mut(m * ksub)
            .enumerate()
            .try_for_each(|(list, t)| {
                let c = ctx.centroid(list)?;
                self.pq
                    .compute_distance_table(MetricType::InnerProduct, &c, t)?;
                for (v, n) in t.iter_mut().zip(&norms) {
                    *v = 2.0 * *v + n;
                }
                Ok::<_, fathom_core::Error>(())
            })?;
        Ok(table)
    }
}

impl IvfCodec for IvfPq {
    fn view(&self) -> super::IvfCodecView<'_> {
        super::IvfCodecView::Pq(self)
    }
    fn code_size(&self) -> usize {
        self.pq.code_size()
    }
    fn is_trained(&self) -> bool {
        self.pq.is_trained()
    }
    fn train(&mut self, x: &[f32], _lists: &[Idx], _ctx: IvfContext<'_>) -> Result<()> {
        self.pq.train(x)?;
        if self.do_polysemous_training && self.pq.nbits() == 8 {
            self.polysemous_training
                .optimize_pq_for_hamming(&mut self.pq)?;
        }
        self.precomputed = OnceLock::new();
        Ok(())
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
    fn scanner<'a>(
        &'a self,
        ctx: IvfContext<'a>,
        query: &'a [f32],
    ) -> Result<Box<dyn ListScanner + 'a>> {
        let (m, ksub) = (self.pq.m(), self.pq.ksub());
        let precomputed = self.precomputed(&ctx);
        // The query's own table: -2⟨x, y_R⟩ with the precomputed table, the distance
        // (or inner product) table without residuals or for inner product.
        let mut query_table = vec![0.0f32; m * ksub];
        let per_list_l2 = ctx.by_residual && ctx.metric == MetricType::L2;
        if precomputed.is_some() {
            self.pq
                .compute_distance_table(MetricType::InnerProduct, query, &mut query_table)?;
            query_table.iter_mut().for_each(|v| *v *= -2.0);
        } else if !per_list_l2 {
            self.pq
                .compute_distance_table(ctx.metric, query, &mut query_table)?;
        }
        let polysemous = self.polysemous_ht > 0 && self.pq.nbits() == 8;
        Ok(Box::new(PqScanner {
            codec: self,
            ctx,
            query,
            precomputed,
            per_list_l2,
            table: query_table.clone(),
            query_table,
            bias: 0.0,
            sign: if ctx.metric.is_similarity() {
                -1.0
            } else {
                1.0
            },
            qcode: if polysemous {
                vec![0u8; self.pq.code_size()]
            } else {
                Vec::new()
            },
            residual: vec![0.0; self.pq.d()],
            hd: Vec::new(),
        }))
    }
    fn invalidate(&mut self) {
        self.precomputed = OnceLock::new();
    }
    fn description(&self, _by_residual: bool) -> String {
        if self.pq.nbits() == 8 {
            format!("PQ{}", self.pq.m())
        } else {
            format!("PQ{}x{}", self.pq.m(), self.pq.nbits())
        }
    }
    fn parameter_ranges(&self) -> Vec<crate::autotune::ParameterRange> {
        vec![crate::autotune::ParameterRange::polysemous_ht(&self.pq)]
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<bool> {
        match name {
            "ht" | "polysemous_ht" => {
                if !(value.is_finite() && value >= 0.0) {
                    return Err(Error::invalid(format!(
                        "{name} is a number of bits ≥ 0, got {value}"
                    )));
                }
                self.polysemous_ht = value.min(u32::MAX as f64) as u32;
                Ok(true)
            }
            "do_polysemous_training" => {
                self.do_polysemous_training = crate::param_values::flag(name, value)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    fn param(&self, name: &str) -> Option<f64> {
        match name {
            "ht" | "polysemous_ht" => Some(self.polysemous_ht as f64),
            "do_polysemous_training" => Some(if self.do_polysemous_training {
                1.0
            } else {
                0.0
            }),
            _ => None,
        }
    }
}

struct PqScanner<'a> {
    codec: &'a IvfPq,
    ctx: IvfContext<'a>,
    query: &'a [f32],
    precomputed: Option<&'a [f32]>,
    per_list_l2: bool,
    query_table: Vec<f32>,
    /// The current list's table in key terms (negated for inner product).
    table: Vec<f32>,
    bias: f32,
    sign: f32,
    qcode: Vec<u8>,
    residual: Vec<f32>,
    hd: Vec<u32>,
}

impl ListScanner for PqScanner<'_> {
    fn set_list(&mut self, list: usize, coarse_dis: f32) -> Result<()> {
        let pq = &self.codec.pq;
        let per = pq.m() * pq.ksub();
        let need_residual =
            self.per_list_l2 && self.precomputed.is_none() || !self.qcode.is_empty();
        if need_residual {
            self.ctx.residual(list, self.query, &mut self.residual)?;
        }
        if let Some(pre) = self.precomputed {
            let p = &pre[list * per..(list + 1) * per];
            for ((t, q), p) in self.table.iter_mut().zip(&self.query_table).zip(p) {
                *t = q + p;
            }
            self.bias = coarse_dis;
        } else if self.per_list_l2 {
            pq.compute_distance_table(MetricType::L2, &self.residual, &mut self.table)?;
            self.bias = 0.0;
        } else {
            // Inner product (with or without residuals) or L2 without: the query's
            // table, plus ⟨x, centroid⟩ for inner product over residuals.
            if self.sign < 0.0 {
                for (t, q) in self.table.iter_mut().zip(&self.query_table) {
                    *t = -q;
                }
            }
            self.bias = if self.ctx.by_residual && self.sign < 0.0 {
                -coarse_dis
            } else {
                0.0
            };
        }
        if !self.qcode.is_empty() {
            let mut scratch = vec![0.0; pq.ksub()];
            pq.compute_code(&self.residual, &mut self.qcode, &mut scratch);
        }
        Ok(())
    }

    fn keys(&mut self, codes: &[u8], out: &mut [f32]) {
        let pq = &self.codec.pq;
        if self.qcode.is_empty() {
            pq.lookup(&self.table, codes, out);
        } else {
            // Polysemous filter: the table is summed only for codes within `ht` bits of
            // the query's code; the others can never be returned.
            self.hd.resize(out.len(), 0);
            hamming::distances(&self.qcode, codes, &mut self.hd);
            let (ht, cs, ksub) = (self.codec.polysemous_ht, pq.code_size(), pq.ksub());
            for ((o, &h), code) in out.iter_mut().zip(&self.hd).zip(codes.chunks_exact(cs)) {
                *o = if h > ht {
                    f32::INFINITY
                } else {
                    code.iter()
                        .enumerate()
                        .map(|(m, &c)| self.table[m * ksub + c as usize])
                        .sum()
                };
            }
        }
        if self.bias != 0.0 {
            out.iter_mut().for_each(|v| *v += self.bias);
        }
    }
}
