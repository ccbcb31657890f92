//! Exact search over vectors stored as they are.

use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
    check,
};

use crate::{Index, check_queries, check_search};

/// Exact k-NN over stored vectors, for every metric: Faiss's `IndexFlat` (and, through
/// [`IndexFlat::new_l2`] / [`IndexFlat::new_ip`], `IndexFlatL2` / `IndexFlatIP`).
///
/// Memory: `ntotal · d · 4` bytes plus a constant (and at most 1/8 spare capacity after
/// several adds; [`IndexFlat::shrink_to_fit`] drops it). Search goes through
/// [`fathom_kernels::knn`]: a tiled GEMM for L2 and inner product with many queries, SIMD
/// scans otherwise, in parallel on the current rayon pool. Ids are row numbers; removing
/// vectors shifts the ids of those after them, as in Faiss.
///
/// ```
/// use fathom_index::{Index, IndexFlat, MetricType};
/// let mut index = IndexFlat::new(3, MetricType::L1).unwrap();
/// index.add(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).unwrap();
/// let res = index.search(&[0.0, 0.9, 0.0], 1).unwrap();
/// assert_eq!(res.labels, vec![1]);
/// assert!((res.distances[0] - 0.1).abs() < 1e-6);
/// ```
#[derive(Debug, Clone)]
pub struct IndexFlat {
    d: usize,
    metric: MetricType,
    data: Vec<f32>,
}

impl IndexFlat {
    /// An empty index of dimension `d` for `metric`.
    pub fn new(d: usize, metric: MetricType) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("dimension must be at least 1"));
        }
        if let MetricType::Lp(p) = metric {
            // Same rule as Faiss's constructors: p may come later (metric_arg).
            MetricType::from_code_p_later(4, p)?;
        }
        Ok(IndexFlat {
            d,
            metric,
            data: Vec::new(),
        })
    }

    /// An index holding `vectors` (row-major, `n × d`), e.g. read from a file; they must
    /// be finite.
    pub fn from_vectors(d: usize, metric: MetricType, vectors: Vec<f32>) -> Result<Self> {
        let mut index = Self::new(d, metric)?;
        fathom_core::check::vectors("stored vectors", &vectors, d)?;
        fathom_core::check::finite("stored vectors", &vectors, d)?;
        index.data = vectors;
        Ok(index)
    }

    /// Appends `other`'s vectors to this index and leaves `other` empty (Faiss's
    /// `IndexFlatCodes::merge_from`); both must have the same dimension and metric. The
    /// moved vectors take the next positions, so their ids become `ntotal + i`.
    pub fn merge_from(&mut self, other: &mut IndexFlat) -> Result<()> {
        if self.d != other.d || self.metric != other.metric {
            return Err(Error::invalid(format!(
                "cannot merge a flat index of d = {} ({:?}) into one of d = {} ({:?})",
                other.d, other.metric, self.d, self.metric
            )));
        }
        self.data.append(&mut other.data);
        Ok(())
    }

    /// An empty squared-L2 index (Faiss's `IndexFlatL2`).
    pub fn new_l2(d: usize) -> Result<Self> {
        Self::new(d, MetricType::L2)
    }

    /// An empty inner-product index (Faiss's `IndexFlatIP`).
    pub fn new_ip(d: usize) -> Result<Self> {
        Self::new(d, MetricType::InnerProduct)
    }

    /// The stored vectors, row-major (Faiss's `get_xb`).
    pub fn vectors(&self) -> &[f32] {
        &self.data
    }

    /// Releases spare capacity left by growth.
    pub fn shrink_to_fit(&mut self) {
        self.data.shrink_to_fit();
    }

    fn row(&self, id: Idx) -> Result<&[f32]> {
        usize::try_from(id)
            .ok()
            .filter(|&i| i < self.ntotal())
            .map(|i| &self.data[i * self.d..(i + 1) * self.d])
            .ok_or(Error::IdNotFound(id))
    }
}

impl Index for IndexFlat {
    fn dim(&self) -> usize {
        self.d
    }

    fn ntotal(&self) -> usize {
        self.data.len() / self.d
    }

    fn metric(&self) -> MetricType {
        self.metric
    }

    fn add(&mut self, x: &[f32]) -> Result<()> {
        check::vectors("added", x, self.d)?;
        check::finite("added", x, self.d)?;
        // Exact reservation for the first batch and 1/8 geometric growth after it: the
        // vectors take n·d·4 bytes with at most 12.5 % slack (none after a single add),
        // and repeated adds stay amortised O(1).
        let need = self.data.len() + x.len();
        let cap = self.data.capacity();
        let target = if need <= cap || self.data.is_empty() {
            need
        } else {
            need.max(cap + cap / 8)
        };
        self.data
            .try_reserve_exact(target - self.data.len())
            .map_err(|_| {
                Error::invalid(format!(
                    "cannot allocate {} more bytes for the vectors",
                    x.len() * 4
                ))
            })?;
        // Graph indexes and k-means read these rows in random order.
        fathom_kernels::advise_huge_pages(self.data.spare_capacity_mut());
        self.data.extend_from_slice(x);
        Ok(())
    }

    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        check_search(self, queries, k)?;
        fathom_kernels::knn(self.metric, queries, &self.data, self.d, k, params.selector)
    }

    fn range_search_with(
        &self,
        queries: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        check_queries(self, queries)?;
        fathom_kernels::range_search(
            self.metric,
            queries,
            &self.data,
            self.d,
            radius,
            params.selector,
        )
    }

    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        self.row(id).map(<[f32]>::to_vec)
    }

    fn compute_distances(&self, query: &[f32], ids: &[Idx], out: &mut [f32]) -> Result<()> {
        for (o, &id) in out.iter_mut().zip(ids) {
            *o = if id < 0 {
                self.metric.worst_value()
            } else {
                fathom_kernels::distance(self.metric, query, self.row(id)?)?
            };
        }
        Ok(())
    }

    /// `metric_arg`, the `p` of an Lp index (Faiss's `index.metric_arg`), which Faiss
    /// code sets after making the index.
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        match (name, self.metric) {
            ("metric_arg", MetricType::Lp(_)) => {
                self.metric = MetricType::from_code(4, value as f32)?;
                Ok(())
            }
            ("metric_arg", m) => Err(Error::invalid(format!(
                "metric_arg is the p of metric Lp; this index compares with {m:?}"
            ))),
            _ => Err(Error::invalid(format!(
                "Flat has no run-time parameter {name:?} (it has metric_arg, for metric Lp)"
            ))),
        }
    }
    fn param(&self, name: &str) -> Option<f64> {
        match (name, self.metric) {
            ("metric_arg", MetricType::Lp(p)) => Some(f64::from(p)),
            _ => None,
        }
    }

    fn reconstruct_n(&self, start: Idx, n: usize) -> Result<Vec<f32>> {
        let end = start
            .checked_add(n as Idx)
            .ok_or(Error::IdNotFound(start))?;
        if n == 0 {
            return Ok(Vec::new());
        }
        self.row(start)?;
        self.row(end - 1)?;
        Ok(self.data[start as usize * self.d..end as usize * self.d].to_vec())
    }

    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        let n = self.ntotal();
        let d = self.d;
        let mut kept = 0;
        for i in 0..n {
            if !selector.is_member(i as Idx) {
                if kept != i {
                    self.data.copy_within(i * d..(i + 1) * d, kept * d);
                }
                kept += 1;
            }
        }
        self.data.truncate(kept * d);
        Ok(n - kept)
    }

    fn reset(&mut self) -> Result<()> {
        self.data.clear();
        Ok(())
    }

    fn description(&self) -> String {
        "Flat".into()
    }

    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::Flat(self)
    }

    fn sa_code_size(&self) -> Result<usize> {
        Ok(4 * self.d)
    }
    /// A flat index's standalone code is the vector's little-endian `f32` bytes.
    fn sa_encode(&self, x: &[f32]) -> Result<Vec<u8>> {
        fathom_core::check::vectors("encoded", x, self.d)?;
        Ok(x.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn sa_decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        fathom_core::check::codes("standalone codes", codes, 4 * self.d)?;
        Ok(codes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
    fn add_sa_codes(&mut self, codes: &[u8], ids: Option<&[Idx]>) -> Result<()> {
        if ids.is_some() {
            return Err(Error::invalid(
                "a flat index numbers vectors by position; add standalone codes without ids",
            ));
        }
        let x = self.sa_decode(codes)?;
        self.add(&x)
    }

    fn merge_from(&mut self, other: &mut dyn Index, add_id: Idx) -> Result<()> {
        if add_id != 0 {
            return Err(Error::invalid(
                "merge_from: a flat index numbers vectors by position; add_id must be 0",
            ));
        }
        let description = other.description();
        // Merging moves the other index's storage, which only its concrete type has.
        let other = (other as &mut dyn std::any::Any)
            .downcast_mut::<IndexFlat>()
            .ok_or_else(|| {
                Error::invalid(format!(
                    "merge_from merges a flat index into a flat index; got {description}"
                ))
            })?;
        IndexFlat::merge_from(self, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IndexHnswFlat;

    /// Faiss code makes an Lp index and sets `metric_arg` after; until then distances are
    /// refused (Faiss would rank by the count of dimensions, |x|⁰ = 1 each).
    #[test]
    fn lp_takes_its_p_after_construction() {
        let x = [0.0, 0.0, 1.0, 1.0, 3.0, 0.0];
        let lp = MetricType::from_code_p_later(4, 0.0).unwrap();
        let mut flat = IndexFlat::new(2, lp).unwrap();
        flat.add(&x).unwrap();
        let e = flat.search(&[0.0, 0.0], 2).unwrap_err().to_string();
        assert!(e.contains("metric_arg"), "{e}");
        flat.set_param("metric_arg", 3.0).unwrap();
        assert_eq!(flat.param("metric_arg"), Some(3.0));
        let r = flat.search(&[0.0, 0.0], 3).unwrap();
        assert_eq!(r.labels, vec![0, 1, 2]);
        assert_eq!(r.distances, vec![0.0, 2.0, 27.0]);
        assert!(flat.set_param("metric_arg", -1.0).is_err());
        assert!(flat.set_param("metric_arg", f64::NAN).is_err());
        let mut l2 = IndexFlat::new_l2(2).unwrap();
        assert!(l2.set_param("metric_arg", 3.0).is_err());
        assert_eq!(l2.param("metric_arg"), None);
        assert!(
            MetricType::from_code(4, 0.0).is_err(),
            "explicit p = 0 stays an error"
        );

        let mut hnsw = IndexHnswFlat::new_flat(2, 4, lp).unwrap();
        let e = hnsw.add(&x).unwrap_err().to_string();
        assert!(e.contains("metric_arg"), "{e}");
        hnsw.set_param("metric_arg", 1.0).unwrap();
        hnsw.add(&x).unwrap();
        assert_eq!(hnsw.search(&[3.0, 0.0], 1).unwrap().labels, vec![2]);
        assert_eq!(hnsw.param("metric_arg"), Some(1.0));
    }
}
