//! [`IndexFlatCodes`]: one index over a flat array of codes, searched exhaustively — the
//! shape of Faiss's `IndexFlatCodes`. What differs between PQ, SQ and LSH is only the
//! codec ([`FlatCodec`]): how vectors become codes, how a query is compared with a run of
//! codes, its run-time parameters. The index around it — storage, add, removal with
//! renumbering, memory-mapped codes, k-NN and range search, reconstruction — is written
//! once here.

use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
};

use crate::code_scan::{CodeStore, knn_scan, radius_key, range_scan, to_result};
use crate::{Index, IndexView, check_queries, check_search};

/// One query's scorer: given the number of the first code of a run and one key per code
/// to fill, it writes the keys (smaller is better).
pub type CodeScorer<'a> = Box<dyn FnMut(usize, &mut [f32]) + Send + 'a>;

/// What an [`IndexFlatCodes`] asks of its codec. Implemented by [`crate::PqCodes`]
/// (`IndexPq`), `fathom_quant::ScalarQuantizer` (`IndexScalarQuantizer`) and
/// `fathom_quant::LshEncoder` (`IndexLsh`).
pub trait FlatCodec: fathom_quant::Codec + Send + Sync + std::fmt::Debug + Sized + 'static {
    /// Per-search state computed once for all queries (LSH: their codes).
    type Prepared: Sync;
    /// The index's name in messages (Faiss's class name).
    const NAME: &'static str;

    /// Whether the codec can encode.
    fn is_trained(&self) -> bool;
    /// Learns the codec from `x` (checked: whole finite vectors).
    fn train(&mut self, x: &[f32]) -> Result<()>;
    /// The vector a code stands for.
    fn decode(&self, code: &[u8]) -> Result<Vec<f32>>;
    /// What every query of a search needs, before scoring (also: search settings the
    /// metric does not support are refused here).
    fn prepare(&self, metric: MetricType, queries: &[f32]) -> Result<Self::Prepared>;
    /// The scorer of query `q`: given the first code's number and a run of codes (from
    /// `codes`, the index's array), it fills one key per code — smaller is better, so
    /// similarities are negated.
    fn scorer<'a>(
        &'a self,
        metric: MetricType,
        prepared: &'a Self::Prepared,
        queries: &'a [f32],
        codes: &'a [u8],
    ) -> impl Fn(usize) -> CodeScorer<'a> + Sync + 'a;
    /// The metric the keys are in (PQ's Hamming searches give bit counts, L2-like).
    fn key_metric(&self, metric: MetricType) -> MetricType {
        metric
    }
    /// The factory token (`PQ16`, `SQ8`, `LSH`).
    fn description(&self) -> String;
    /// The index's [`IndexView`] variant.
    fn view(index: &IndexFlatCodes<Self>) -> IndexView<'_>;
    /// Sets a run-time parameter; `Ok(false)` when the codec has no such parameter.
    fn set_param(&mut self, name: &str, value: f64) -> Result<bool> {
        let _ = (name, value);
        Ok(false)
    }
    /// The value of a run-time parameter, `None` for others.
    fn param(&self, name: &str) -> Option<f64> {
        let _ = name;
        None
    }
    /// The run-time parameters worth exploring.
    fn parameter_ranges(&self) -> Vec<crate::autotune::ParameterRange> {
        Vec::new()
    }
}

/// Vectors stored as codes of a [`FlatCodec`] and searched exhaustively (Faiss's
/// `IndexFlatCodes`): [`crate::IndexPq`], [`crate::IndexScalarQuantizer`] and
/// [`crate::IndexLsh`] are this type. Ids are positions; removal renumbers the later
/// vectors, as in Faiss.
#[derive(Debug)]
pub struct IndexFlatCodes<C: FlatCodec> {
    pub(crate) codec: C,
    pub(crate) metric: MetricType,
    pub(crate) store: CodeStore,
}

impl<C: FlatCodec> IndexFlatCodes<C> {
    /// An empty index of `codec`'s codes compared with `metric`.
    pub(crate) fn with_codec(codec: C, metric: MetricType) -> Self {
        IndexFlatCodes {
            store: CodeStore::new(codec.code_size()),
            codec,
            metric,
        }
    }
    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }
    /// The codes, `ntotal × code_size` bytes.
    pub fn codes(&self) -> &[u8] {
        &self.store.codes
    }
    /// Appends codes computed elsewhere (`n × code_size` bytes), e.g. read from a file.
    pub fn add_codes(&mut self, codes: &[u8]) -> Result<()> {
        self.store.append(&format!("{} codes", C::NAME), codes)
    }
    crate::code_scan::mapped_code_methods!();
}

impl<C: FlatCodec> Index for IndexFlatCodes<C> {
    fn dim(&self) -> usize {
        self.codec.dim()
    }
    fn ntotal(&self) -> usize {
        self.store.len()
    }
    fn metric(&self) -> MetricType {
        self.metric
    }
    fn is_trained(&self) -> bool {
        self.codec.is_trained()
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        fathom_core::check::nonempty_finite("training set", x, self.dim())?;
        self.codec.train(x)
    }
    fn add(&mut self, x: &[f32]) -> Result<()> {
        if !self.is_trained() {
            return Err(Error::NotTrained(format!("add to {}", C::NAME)));
        }
        self.store.add_vectors(&self.codec, x)
    }

    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let nq = check_search(self, queries, k)?;
        let prepared = self.codec.prepare(self.metric, queries)?;
        let scorer = self
            .codec
            .scorer(self.metric, &prepared, queries, &self.store.codes);
        let tops = knn_scan(nq, self.ntotal(), k, params.selector, scorer);
        to_result(tops, k, self.codec.key_metric(self.metric), |_, key| key)
    }

    fn range_search_with(
        &self,
        queries: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        let nq = check_queries(self, queries)?;
        let prepared = self.codec.prepare(self.metric, queries)?;
        let scorer = self
            .codec
            .scorer(self.metric, &prepared, queries, &self.store.codes);
        Ok(range_scan(
            nq,
            self.ntotal(),
            radius_key(self.metric, radius),
            self.metric,
            params.selector,
            scorer,
        ))
    }

    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        self.codec.decode(self.store.checked_code(id)?)
    }

    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        self.store.remove(selector)
    }

    fn sa_code_size(&self) -> Result<usize> {
        Ok(self.codec.code_size())
    }
    fn sa_encode(&self, x: &[f32]) -> Result<Vec<u8>> {
        if !self.is_trained() {
            return Err(Error::NotTrained(format!("sa_encode with {}", C::NAME)));
        }
        fathom_core::check::vectors("encoded", x, self.dim())?;
        fathom_core::check::finite("encoded", x, self.dim())?;
        self.codec.compute_codes(x)
    }
    fn sa_decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        if !self.is_trained() {
            return Err(Error::NotTrained(format!("sa_decode with {}", C::NAME)));
        }
        let cs = self.codec.code_size();
        fathom_core::check::codes("standalone codes", codes, cs)?;
        let mut out = Vec::with_capacity(codes.len() / cs.max(1) * self.dim());
        for code in codes.chunks_exact(cs.max(1)) {
            out.extend(self.codec.decode(code)?);
        }
        Ok(out)
    }
    fn add_sa_codes(&mut self, codes: &[u8], ids: Option<&[Idx]>) -> Result<()> {
        if ids.is_some() {
            return Err(Error::invalid(format!(
                "{} numbers vectors by position; add standalone codes without ids",
                C::NAME
            )));
        }
        self.add_codes(codes)
    }

    fn reset(&mut self) -> Result<()> {
        self.store.codes.clear();
        Ok(())
    }

    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        if self.codec.set_param(name, value)? {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "{} has no run-time parameter {name:?}",
                self.description()
            )))
        }
    }

    fn param(&self, name: &str) -> Option<f64> {
        self.codec.param(name)
    }

    fn parameter_ranges(&self) -> Vec<crate::autotune::ParameterRange> {
        self.codec.parameter_ranges()
    }

    fn description(&self) -> String {
        self.codec.description()
    }

    fn view(&self) -> IndexView<'_> {
        C::view(self)
    }
}
