//! `IndexPq`: exhaustive search over product-quantizer codes.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use fathom_core::{Error, MetricType, Result};
use fathom_kernels::codes::hamming;
use fathom_quant::{PolysemousTraining, ProductQuantizer};

use crate::flat_codes::{CodeScorer, FlatCodec, IndexFlatCodes};

/// How [`IndexPq`] compares a query with codes (Faiss's `IndexPQ::Search_type_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PqSearchType {
    /// Asymmetric distance: the query against the centroids of each code (`ST_PQ`).
    #[default]
    Adc,
    /// Symmetric distance: the query is coded too and centroids are compared (`ST_SDC`).
    Sdc,
    /// Hamming distance between the query's code and each code (`ST_HE`); distances are
    /// bit counts. Meaningful after polysemous training.
    Hamming,
    /// Hamming distance as a filter — codes farther than `polysemous_ht` bits are skipped
    /// — then the asymmetric distance for the rest (`ST_polysemous`).
    Polysemous,
}

impl PqSearchType {
    /// Faiss's number for this search type (`IndexPQ.ST_PQ` … `ST_polysemous`).
    pub fn faiss_code(self) -> u32 {
        match self {
            PqSearchType::Adc => 0,
            PqSearchType::Hamming => 1,
            PqSearchType::Sdc => 3,
            PqSearchType::Polysemous => 4,
        }
    }

    /// The search type Faiss numbers `code`; the generalized-Hamming types (2 and 5) are
    /// refused, as fathom does not implement them.
    pub fn from_faiss(code: f64) -> Result<Self> {
        Ok(match code {
            0.0 => PqSearchType::Adc,
            1.0 => PqSearchType::Hamming,
            3.0 => PqSearchType::Sdc,
            4.0 => PqSearchType::Polysemous,
            2.0 | 5.0 => {
                return Err(Error::Unsupported(format!(
                    "search_type {code} (generalized Hamming) is not implemented; use \
                     ST_PQ (0), ST_HE (1), ST_SDC (3) or ST_polysemous (4)"
                )));
            }
            _ => {
                return Err(Error::invalid(format!(
                    "search_type is one of Faiss's IndexPQ.ST_* numbers (0, 1, 3, 4), got {code}"
                )));
            }
        })
    }
}

/// Counters of the codes [`IndexPq`] has looked at, to see what polysemous filtering saves
/// (Faiss's `indexPQ_stats`).
#[derive(Debug, Default)]
pub struct PqSearchStats {
    nq: AtomicU64,
    ncode: AtomicU64,
    n_hamming_pass: AtomicU64,
}

impl PqSearchStats {
    /// `(queries, codes compared, codes that passed the Hamming filter)` so far.
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.nq.load(Ordering::Relaxed),
            self.ncode.load(Ordering::Relaxed),
            self.n_hamming_pass.load(Ordering::Relaxed),
        )
    }
    /// Sets the counters to zero.
    pub fn reset(&self) {
        self.nq.store(0, Ordering::Relaxed);
        self.ncode.store(0, Ordering::Relaxed);
        self.n_hamming_pass.store(0, Ordering::Relaxed);
    }
}

/// Vectors stored as product-quantizer codes and searched exhaustively (Faiss's
/// `IndexPQ`, factory `PQ16`, `PQ16x10`, `PQ16np`): `m · nbits / 8` bytes per vector.
///
/// With [`IndexPq::set_do_polysemous_training`] (the factory's default for 8-bit codes;
/// `np` turns it off) training renumbers the centroids so that [`PqSearchType::Polysemous`] can skip
/// most codes on their Hamming distance alone.
///
/// ```
/// use fathom_index::{Index, IndexPq, MetricType};
/// let d = 8;
/// let x: Vec<f32> = (0..2000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let mut index = IndexPq::new(d, 4, 4, MetricType::L2).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// let res = index.search(&x[..d], 5).unwrap();
/// assert_eq!(res.labels.len(), 5);
/// ```
pub type IndexPq = IndexFlatCodes<PqCodes>;

/// The codec of [`IndexPq`]: a product quantizer and how queries are compared with its
/// codes.
#[derive(Debug)]
pub struct PqCodes {
    pq: ProductQuantizer,
    search_type: PqSearchType,
    polysemous_ht: u32,
    do_polysemous_training: bool,
    polysemous_training: PolysemousTraining,
    sdc: OnceLock<Vec<f32>>,
    stats: PqSearchStats,
}

impl fathom_quant::Codec for PqCodes {
    fn dim(&self) -> usize {
        self.pq.d()
    }
    fn code_size(&self) -> usize {
        self.pq.code_size()
    }
    fn compute_codes_into(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        self.pq.compute_codes_into(x, codes)
    }
}

impl IndexFlatCodes<PqCodes> {
    /// An untrained index of `m` sub-quantizers × `nbits` bits for L2 or inner product.
    pub fn new(d: usize, m: usize, nbits: usize, metric: MetricType) -> Result<Self> {
        if !matches!(metric, MetricType::L2 | MetricType::InnerProduct) {
            return Err(Error::Unsupported(format!(
                "IndexPq supports L2 and inner product, not {metric:?}"
            )));
        }
        let pq = ProductQuantizer::new(d, m, nbits)?;
        let codec = PqCodes {
            polysemous_ht: (m * nbits + 1) as u32,
            pq,
            search_type: PqSearchType::Adc,
            do_polysemous_training: false,
            polysemous_training: PolysemousTraining::default(),
            sdc: OnceLock::new(),
            stats: PqSearchStats::default(),
        };
        Ok(Self::with_codec(codec, metric))
    }

    /// The product quantizer.
    pub fn pq(&self) -> &ProductQuantizer {
        &self.codec.pq
    }
    /// The product quantizer, for setting training parameters (`cp`) or centroids.
    pub fn pq_mut(&mut self) -> &mut ProductQuantizer {
        self.codec.sdc = OnceLock::new();
        &mut self.codec.pq
    }
    /// How queries are compared with codes.
    pub fn search_type(&self) -> PqSearchType {
        self.codec.search_type
    }
    /// Sets how queries are compared with codes.
    pub fn set_search_type(&mut self, search_type: PqSearchType) {
        self.codec.search_type = search_type;
    }
    /// Hamming threshold of [`PqSearchType::Polysemous`] (default `m · nbits + 1`: no
    /// filtering).
    pub fn polysemous_ht(&self) -> u32 {
        self.codec.polysemous_ht
    }
    /// Sets the Hamming threshold of [`PqSearchType::Polysemous`].
    pub fn set_polysemous_ht(&mut self, ht: u32) {
        self.codec.polysemous_ht = ht;
    }
    /// Whether [`Index::train`](crate::Index::train) runs polysemous training after the
    /// k-means.
    pub fn do_polysemous_training(&self) -> bool {
        self.codec.do_polysemous_training
    }
    /// Turns polysemous training on or off.
    pub fn set_do_polysemous_training(&mut self, on: bool) {
        self.codec.do_polysemous_training = on;
    }
    /// The polysemous training's settings.
    pub fn polysemous_training_mut(&mut self) -> &mut PolysemousTraining {
        &mut self.codec.polysemous_training
    }
    /// Search counters.
    pub fn stats(&self) -> &PqSearchStats {
        &self.codec.stats
    }
}

impl PqCodes {
    fn sdc_table(&self) -> Result<&[f32]> {
        if let Some(t) = self.sdc.get() {
            return Ok(t);
        }
        let t = self.pq.sdc_table()?;
        Ok(self.sdc.get_or_init(|| t))
    }

    fn check_search_type(&self, metric: MetricType) -> Result<()> {
        if self.search_type != PqSearchType::Adc && metric != MetricType::L2 {
            return Err(Error::Unsupported(format!(
                "search type {:?} compares codes in L2 terms; this index uses {metric:?} (use Adc)",
                self.search_type
            )));
        }
        if matches!(
            self.search_type,
            PqSearchType::Hamming | PqSearchType::Polysemous
        ) && self.pq.nbits() != 8
        {
            return Err(Error::Unsupported(format!(
                "Hamming and polysemous search need 8-bit codes, this index has {}-bit codes",
                self.pq.nbits()
            )));
        }
        Ok(())
    }
}

impl FlatCodec for PqCodes {
    /// The SDC table, for symmetric search.
    type Prepared = Option<Vec<f32>>;
    const NAME: &'static str = "IndexPQ";

    fn is_trained(&self) -> bool {
        self.pq.is_trained()
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.sdc = OnceLock::new();
        self.pq.train(x)?;
        if self.do_polysemous_training {
            self.polysemous_training
                .optimize_pq_for_hamming(&mut self.pq)?;
        }
        Ok(())
    }
    fn decode(&self, code: &[u8]) -> Result<Vec<f32>> {
        let mut x = vec![0.0; self.pq.d()];
        self.pq.decode_one(code, &mut x);
        Ok(x)
    }
    fn prepare(&self, metric: MetricType, queries: &[f32]) -> Result<Option<Vec<f32>>> {
        self.check_search_type(metric)?;
        let nq = queries.len() / self.pq.d().max(1);
        self.stats.nq.fetch_add(nq as u64, Ordering::Relaxed);
        Ok(if self.search_type == PqSearchType::Sdc {
            Some(self.sdc_table()?.to_vec())
        } else {
            None
        })
    }
    fn scorer<'a>(
        &'a self,
        metric: MetricType,
        sdc: &'a Option<Vec<f32>>,
        queries: &'a [f32],
        codes: &'a [u8],
    ) -> impl Fn(usize) -> CodeScorer<'a> + Sync + 'a {
        let d = self.pq.d();
        move |q: usize| {
            let x = &queries[q * d..(q + 1) * d];
            let (ksub, m) = (self.pq.ksub(), self.pq.m());
            let needs_code = self.search_type != PqSearchType::Adc;
            let needs_table = matches!(
                self.search_type,
                PqSearchType::Adc | PqSearchType::Polysemous
            );
            let mut table = Vec::new();
            if needs_table {
                table = vec![0.0; m * ksub];
                // Cannot fail: searches check training and query lengths first, and the
                // table is sized from this quantizer.
                self.pq
                    .compute_distance_table(metric, x, &mut table)
                    .expect("a checked query and a table sized from the quantizer");
                if metric.is_similarity() {
                    table.iter_mut().for_each(|v| *v = -*v);
                }
            }
            let mut qcode = Vec::new();
            if needs_code {
                qcode = vec![0u8; self.pq.code_size()];
                let mut scratch = vec![0.0; ksub];
                self.pq.compute_code(x, &mut qcode, &mut scratch);
            }
            let qidx = if sdc.is_some() {
                self.pq.code_indices(&qcode)
            } else {
                Vec::new()
            };
            let mut s = Scorer {
                codec: self,
                codes,
                table,
                qcode,
                qidx,
                sdc: sdc.as_deref(),
                ham: Vec::new(),
            };
            Box::new(move |start: usize, out: &mut [f32]| s.keys(start, out))
        }
    }
    fn key_metric(&self, metric: MetricType) -> MetricType {
        if self.search_type == PqSearchType::Adc {
            metric
        } else {
            MetricType::L2
        }
    }
    fn description(&self) -> String {
        let mut s = format!("PQ{}", self.pq.m());
        if self.pq.nbits() != 8 {
            s += &format!("x{}", self.pq.nbits());
        }
        if !self.do_polysemous_training {
            s += "np";
        }
        s
    }
    fn view(index: &IndexFlatCodes<Self>) -> crate::IndexView<'_> {
        crate::IndexView::Pq(index)
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<bool> {
        match name {
            "ht" | "polysemous_ht" => {
                if !(0.0..=u32::MAX as f64).contains(&value) {
                    return Err(Error::invalid(format!("{name} = {value} must be ≥ 0")));
                }
                self.polysemous_ht = value as u32;
                self.search_type = PqSearchType::Polysemous;
                Ok(true)
            }
            "search_type" => {
                self.search_type = PqSearchType::from_faiss(value)?;
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
            "search_type" => Some(self.search_type.faiss_code() as f64),
            "do_polysemous_training" => Some(if self.do_polysemous_training {
                1.0
            } else {
                0.0
            }),
            _ => None,
        }
    }
    fn parameter_ranges(&self) -> Vec<crate::autotune::ParameterRange> {
        vec![crate::autotune::ParameterRange::polysemous_ht(&self.pq)]
    }
}

/// One query's scorer over codes.
struct Scorer<'a> {
    codec: &'a PqCodes,
    codes: &'a [u8],
    table: Vec<f32>,
    qcode: Vec<u8>,
    /// The query's sub-quantizer indices (SDC only).
    qidx: Vec<u32>,
    sdc: Option<&'a [f32]>,
    ham: Vec<u32>,
}

impl Scorer<'_> {
    fn keys(&mut self, start: usize, out: &mut [f32]) {
        let ix = self.codec;
        let cs = ix.pq.code_size();
        let codes = &self.codes[start * cs..(start + out.len()) * cs];
        ix.stats
            .ncode
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        match ix.search_type {
            PqSearchType::Adc => ix.pq.lookup(&self.table, codes, out),
            PqSearchType::Sdc => {
                let sdc = self.sdc.expect("SDC table prepared");
                let ksub = ix.pq.ksub();
                for (o, c) in out.iter_mut().zip(codes.chunks_exact(cs)) {
                    let mut s = 0.0;
                    for (m, &q) in self.qidx.iter().enumerate() {
                        let j = fathom_quant::bits::get(c, ix.pq.nbits(), m) as usize;
                        s += sdc[(m * ksub + q as usize) * ksub + j];
                    }
                    *o = s;
                }
            }
            PqSearchType::Hamming | PqSearchType::Polysemous => {
                self.ham.resize(out.len(), 0);
                hamming::distances(&self.qcode, codes, &mut self.ham);
                if ix.search_type == PqSearchType::Hamming {
                    for (o, &h) in out.iter_mut().zip(&self.ham) {
                        *o = h as f32;
                    }
                    return;
                }
                let mut pass = 0u64;
                for (i, (o, &h)) in out.iter_mut().zip(&self.ham).enumerate() {
                    if h <= ix.polysemous_ht {
                        pass += 1;
                        ix.pq.lookup(
                            &self.table,
                            &codes[i * cs..(i + 1) * cs],
                            std::slice::from_mut(o),
                        );
                    } else {
                        *o = f32::INFINITY;
                    }
                }
                ix.stats.n_hamming_pass.fetch_add(pass, Ordering::Relaxed);
            }
        }
    }
}
