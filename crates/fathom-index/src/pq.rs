//! `IndexPq`: exhaustive search over product-quantizer codes.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
};
use fathom_kernels::codes::hamming;
use fathom_quant::{PolysemousTraining, ProductQuantizer};

use crate::code_scan::{CodeStore, knn_scan, radius_key, range_scan, to_result};
use crate::{Index, check_queries, check_search};

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
/// With `do_polysemous_training` (the factory's default for 8-bit codes; `np` turns it
/// off) training renumbers the centroids so that [`PqSearchType::Polysemous`] can skip
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
#[derive(Debug)]
pub struct IndexPq {
    pq: ProductQuantizer,
    metric: MetricType,
    store: CodeStore,
    /// How queries are compared with codes.
    pub search_type: PqSearchType,
    /// Hamming threshold of [`PqSearchType::Polysemous`] (default `m · nbits + 1`: no
    /// filtering).
    pub polysemous_ht: u32,
    /// Whether [`Index::train`] runs polysemous training after the k-means.
    pub do_polysemous_training: bool,
    /// Its settings.
    pub polysemous_training: PolysemousTraining,
    sdc: OnceLock<Vec<f32>>,
    stats: PqSearchStats,
}

impl IndexPq {
    /// An untrained index of `m` sub-quantizers × `nbits` bits for L2 or inner product.
    pub fn new(d: usize, m: usize, nbits: usize, metric: MetricType) -> Result<Self> {
        if !matches!(metric, MetricType::L2 | MetricType::InnerProduct) {
            return Err(Error::Unsupported(format!(
                "IndexPq supports L2 and inner product, not {metric:?}"
            )));
        }
        let pq = ProductQuantizer::new(d, m, nbits)?;
        Ok(IndexPq {
            store: CodeStore::new(pq.code_size()),
            polysemous_ht: (m * nbits + 1) as u32,
            pq,
            metric,
            search_type: PqSearchType::Adc,
            do_polysemous_training: false,
            polysemous_training: PolysemousTraining::default(),
            sdc: OnceLock::new(),
            stats: PqSearchStats::default(),
        })
    }

    /// The product quantizer.
    pub fn pq(&self) -> &ProductQuantizer {
        &self.pq
    }
    /// The product quantizer, for setting training parameters (`cp`) or centroids.
    pub fn pq_mut(&mut self) -> &mut ProductQuantizer {
        self.sdc = OnceLock::new();
        &mut self.pq
    }
    /// The codes, `ntotal × code_size` bytes.
    pub fn codes(&self) -> &[u8] {
        &self.store.codes
    }
    /// Appends codes computed elsewhere (`n × code_size` bytes), e.g. read from a file.
    pub fn add_codes(&mut self, codes: &[u8]) -> Result<()> {
        self.store.append("PQ codes", codes)
    }
    crate::code_scan::mapped_code_methods!();
    /// Search counters.
    pub fn stats(&self) -> &PqSearchStats {
        &self.stats
    }

    fn sdc_table(&self) -> Result<&[f32]> {
        if let Some(t) = self.sdc.get() {
            return Ok(t);
        }
        let t = self.pq.sdc_table()?;
        Ok(self.sdc.get_or_init(|| t))
    }

    fn check_search_type(&self) -> Result<()> {
        if self.search_type != PqSearchType::Adc && self.metric != MetricType::L2 {
            return Err(Error::Unsupported(format!(
                "search type {:?} compares codes in L2 terms; this index uses {:?} (use Adc)",
                self.search_type, self.metric
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

    /// The scorer factory for the current search type: keys for a range of codes.
    fn scorer<'a>(&'a self, queries: &'a [f32]) -> Result<impl Fn(usize) -> Scorer<'a> + Sync> {
        self.check_search_type()?;
        let sdc = if self.search_type == PqSearchType::Sdc {
            Some(self.sdc_table()?)
        } else {
            None
        };
        let d = self.pq.d();
        Ok(move |q: usize| {
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
                    .compute_distance_table(self.metric, x, &mut table)
                    .expect("a checked query and a table sized from the quantizer");
                if self.metric.is_similarity() {
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
            Scorer {
                index: self,
                table,
                qcode,
                qidx,
                sdc,
                ham: Vec::new(),
            }
        })
    }
}

/// One query's scorer over codes.
struct Scorer<'a> {
    index: &'a IndexPq,
    table: Vec<f32>,
    qcode: Vec<u8>,
    /// The query's sub-quantizer indices (SDC only).
    qidx: Vec<u32>,
    sdc: Option<&'a [f32]>,
    ham: Vec<u32>,
}

impl Scorer<'_> {
    fn keys(&mut self, start: usize, out: &mut [f32]) {
        let ix = self.index;
        let cs = ix.store.code_size;
        let codes = &ix.store.codes[start * cs..(start + out.len()) * cs];
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

impl Index for IndexPq {
    fn dim(&self) -> usize {
        self.pq.d()
    }
    fn ntotal(&self) -> usize {
        self.store.len()
    }
    fn metric(&self) -> MetricType {
        self.metric
    }
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

    fn add(&mut self, x: &[f32]) -> Result<()> {
        if !self.is_trained() {
            return Err(Error::NotTrained("add to IndexPq".into()));
        }
        self.store.add_vectors(&self.pq, x)
    }

    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let nq = check_search(self, queries, k)?;
        let scorer = self.scorer(queries)?;
        self.stats.nq.fetch_add(nq as u64, Ordering::Relaxed);
        let tops = knn_scan(nq, self.ntotal(), k, params.selector, |q| {
            let mut s = scorer(q);
            move |start: usize, out: &mut [f32]| s.keys(start, out)
        });
        let metric = if self.search_type == PqSearchType::Adc {
            self.metric
        } else {
            MetricType::L2
        };
        to_result(tops, k, metric, |_, key| key)
    }

    fn range_search_with(
        &self,
        queries: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        let nq = check_queries(self, queries)?;
        let scorer = self.scorer(queries)?;
        Ok(range_scan(
            nq,
            self.ntotal(),
            radius_key(self.metric, radius),
            self.metric,
            params.selector,
            |q| {
                let mut s = scorer(q);
                move |start: usize, out: &mut [f32]| s.keys(start, out)
            },
        ))
    }

    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        let code = self.store.checked_code(id)?;
        let mut x = vec![0.0; self.dim()];
        self.pq.decode_one(code, &mut x);
        Ok(x)
    }

    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        self.store.remove(selector)
    }

    fn reset(&mut self) -> Result<()> {
        self.store.codes.clear();
        Ok(())
    }

    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        match name {
            "ht" | "polysemous_ht" => {
                if !(0.0..=u32::MAX as f64).contains(&value) {
                    return Err(Error::invalid(format!("{name} = {value} must be ≥ 0")));
                }
                self.polysemous_ht = value as u32;
                self.search_type = PqSearchType::Polysemous;
                Ok(())
            }
            _ => Err(Error::invalid(format!(
                "IndexPq has no run-time parameter {name:?} (it has ht / polysemous_ht)"
            ))),
        }
    }

    fn param(&self, name: &str) -> Option<f64> {
        matches!(name, "ht" | "polysemous_ht").then_some(self.polysemous_ht as f64)
    }

    fn parameter_ranges(&self) -> Vec<crate::autotune::ParameterRange> {
        vec![crate::autotune::ParameterRange::polysemous_ht(&self.pq)]
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

    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::Pq(self)
    }
}
