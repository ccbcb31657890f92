//! The HNSW graph over binary vectors (Faiss's `IndexBinaryHNSW`, factory `BHNSW<M>`):
//! the same graph, construction and search as the float [`crate::IndexHnsw`], with
//! Hamming distances between the codes of an [`IndexBinaryFlat`] storage.

use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
};
use fathom_kernels::codes::hamming;
use rayon::prelude::*;

use super::{BinaryIndexView, IndexBinary, IndexBinaryFlat, check_queries};
use crate::hnsw::{Hnsw, NodeDistance, add_vertices_with, knn_one, range_one, scan_instead};

/// Hamming distances from one query code to the stored codes.
struct HammingQuery<'a> {
    q: &'a [u8],
    codes: &'a [u8],
    cs: usize,
}

impl HammingQuery<'_> {
    #[inline]
    fn row(&self, id: u32) -> &[u8] {
        &self.codes[id as usize * self.cs..][..self.cs]
    }
}

impl NodeDistance for HammingQuery<'_> {
    #[inline]
    fn distance(&self, id: u32) -> f32 {
        hamming_pair(self.q, self.row(id))
    }
    #[inline]
    fn prefetch(&self, id: u32) {
        fathom_kernels::prefetch(self.row(id));
    }
    #[inline]
    fn symmetric(&self, i: u32, j: u32) -> f32 {
        hamming_pair(self.row(i), self.row(j))
    }
}

#[inline]
fn hamming_pair(a: &[u8], b: &[u8]) -> f32 {
    hamming::pair(a, b) as f32
}

/// An HNSW graph over binary vectors (Faiss's `IndexBinaryHNSW`). Parameters as the
/// float index's: `M` at construction, `efConstruction` (40) and `efSearch` (16) on
/// [`IndexBinaryHnsw::hnsw_mut`] or through [`IndexBinary::set_param`].
///
/// ```
/// use fathom_index::binary::{IndexBinary, IndexBinaryHnsw};
/// let xb: Vec<u8> = (0..8000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
/// let mut index = IndexBinaryHnsw::new(64, 16).unwrap();
/// index.add(&xb).unwrap();
/// let res = index.search(&xb[80..88], 1).unwrap();
/// assert_eq!((res.labels[0], res.distances[0]), (10, 0.0));
/// ```
pub struct IndexBinaryHnsw {
    hnsw: Hnsw,
    storage: IndexBinaryFlat,
}

impl IndexBinaryHnsw {
    /// An empty index of `d`-bit vectors with `m` links per node.
    pub fn new(d: usize, m: usize) -> Result<Self> {
        Ok(IndexBinaryHnsw {
            hnsw: Hnsw::new(m)?,
            storage: IndexBinaryFlat::new(d)?,
        })
    }

    /// An index from a graph and the storage it was built over (as read from a file).
    pub fn from_parts(hnsw: Hnsw, storage: IndexBinaryFlat) -> Result<Self> {
        if hnsw.ntotal() != storage.ntotal() {
            return Err(Error::invalid(format!(
                "an HNSW graph of {} nodes over a storage of {} vectors",
                hnsw.ntotal(),
                storage.ntotal()
            )));
        }
        Ok(IndexBinaryHnsw { hnsw, storage })
    }

    /// The graph.
    pub fn hnsw(&self) -> &Hnsw {
        &self.hnsw
    }
    /// The graph, for its search and construction settings.
    pub fn hnsw_mut(&mut self) -> &mut Hnsw {
        &mut self.hnsw
    }
    /// The stored vectors.
    pub fn storage(&self) -> &IndexBinaryFlat {
        &self.storage
    }

    fn query<'a>(&'a self, q: &'a [u8]) -> HammingQuery<'a> {
        HammingQuery {
            q,
            codes: self.storage.codes(),
            cs: self.code_size(),
        }
    }
}

impl IndexBinary for IndexBinaryHnsw {
    fn d(&self) -> usize {
        self.storage.d()
    }
    fn ntotal(&self) -> usize {
        self.storage.ntotal()
    }
    fn add(&mut self, x: &[u8]) -> Result<()> {
        let cs = self.code_size();
        let n = fathom_core::check::codes("added binary vectors", x, cs)?;
        let n0 = self.ntotal();
        if n0 + n > i32::MAX as usize {
            return Err(Error::invalid(format!(
                "HNSW holds at most {} vectors (Faiss's 32-bit node ids); {n0} + {n} is more",
                i32::MAX
            )));
        }
        self.storage.add(x)?;
        let (storage, hnsw) = (&self.storage, &mut self.hnsw);
        let built = add_vertices_with(hnsw, n0, n, |pt| HammingQuery {
            q: &x[(pt as usize - n0) * cs..][..cs],
            codes: storage.codes(),
            cs,
        });
        if let Err(e) = built {
            // Keep storage and graph the same size: drop what the graph could not take.
            let sel = fathom_core::IdSelectorRange::new(n0 as Idx, (n0 + n) as Idx);
            self.storage.remove_ids(&sel)?;
            return Err(e);
        }
        Ok(())
    }
    fn search_with(
        &self,
        queries: &[u8],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        fathom_core::check::k(k)?;
        let nq = check_queries(self, queries)?;
        let ef = params.ef_search.unwrap_or(self.hnsw.ef_search);
        if ef == 0 {
            return Err(Error::invalid("efSearch must be at least 1"));
        }
        let n = self.ntotal();
        let sel = params.selector;
        let brute = scan_instead(n, sel);
        let cs = self.code_size();
        let mut res = SearchResult::try_empty(nq, k, MetricType::L2)?;
        queries
            .par_chunks(cs)
            .zip(res.distances.par_chunks_mut(k))
            .zip(res.labels.par_chunks_mut(k))
            .for_each(|((q, dist), lab)| {
                let found = knn_one(&self.hnsw, &self.query(q), n, k, ef, sel, brute);
                for (j, (key, id)) in found.into_iter().enumerate() {
                    dist[j] = key;
                    lab[j] = id;
                }
            });
        Ok(res)
    }
    fn range_search_with(
        &self,
        queries: &[u8],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        check_queries(self, queries)?;
        super::check_radius(radius)?;
        let ef = params.ef_search.unwrap_or(self.hnsw.ef_search).max(1);
        let n = self.ntotal();
        let lists: Vec<(Vec<Idx>, Vec<f32>)> = queries
            .par_chunks(self.code_size())
            .map(|q| {
                range_one(&self.hnsw, &self.query(q), n, radius, ef, params.selector)
                    .into_iter()
                    .map(|(d, id)| (id, d))
                    .unzip()
            })
            .collect();
        Ok(RangeSearchResult::from_lists(lists))
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<u8>> {
        self.storage.reconstruct(id)
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        let _ = selector;
        Err(Error::Unsupported(
            "an HNSW graph cannot drop nodes (Faiss's IndexBinaryHNSW neither); rebuild the \
             index without them"
                .into(),
        ))
    }
    fn reset(&mut self) -> Result<()> {
        self.storage.reset()?;
        self.hnsw.reset();
        Ok(())
    }
    fn description(&self) -> String {
        format!("BHNSW{}", self.hnsw.m())
    }
    fn view(&self) -> BinaryIndexView<'_> {
        BinaryIndexView::Hnsw(self)
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        use crate::param_values::{count, flag, positive};
        match name {
            "efSearch" => self.hnsw.ef_search = positive(name, value)?,
            "efConstruction" => self.hnsw.ef_construction = positive(name, value)?,
            "max_new_links" => self.hnsw.max_new_links = count(name, value)?,
            "prune_headroom" => {
                self.hnsw.prune_headroom = crate::param_values::finite(name, value)?
            }
            "search_bounded_queue" => self.hnsw.search_bounded_queue = flag(name, value)?,
            _ => {
                return Err(super::unknown_param(
                    self,
                    name,
                    "efSearch, efConstruction, max_new_links, prune_headroom, search_bounded_queue",
                ));
            }
        }
        Ok(())
    }
    fn param(&self, name: &str) -> Option<f64> {
        match name {
            "efSearch" => Some(self.hnsw.ef_search as f64),
            "efConstruction" => Some(self.hnsw.ef_construction as f64),
            "max_new_links" => Some(self.hnsw.max_new_links as f64),
            "prune_headroom" => Some(self.hnsw.prune_headroom as f64),
            "search_bounded_queue" => Some(f64::from(u8::from(self.hnsw.search_bounded_queue))),
            _ => None,
        }
    }
}
