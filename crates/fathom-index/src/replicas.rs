//! The same vectors in several indexes, each query batch split between them.

use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
    check,
};
use rayon::prelude::*;

use crate::{Index, check_queries, check_search};

/// Copies ("replicas") of one index — one per GPU, say — that search a batch of queries
/// together, each taking a contiguous share of the queries: Faiss's `IndexReplicas`. Adds,
/// removals and parameters go to every replica, so they hold the same vectors and answer
/// the same; throughput grows with the replicas, memory too.
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexReplicas, MetricType};
/// let mut replicas = IndexReplicas::new(2, MetricType::L2);
/// replicas.add_replica(Box::new(IndexFlat::new_l2(2).unwrap())).unwrap();
/// replicas.add_replica(Box::new(IndexFlat::new_l2(2).unwrap())).unwrap();
/// replicas.add(&[0.0, 0.0, 1.0, 1.0, 2.0, 2.0]).unwrap();
/// let res = replicas.search(&[0.1, 0.0, 1.9, 2.1], 1).unwrap();
/// assert_eq!(res.labels, vec![0, 2]);
/// ```
#[derive(Debug)]
pub struct IndexReplicas {
    d: usize,
    metric: MetricType,
    replicas: Vec<Box<dyn Index>>,
}

impl IndexReplicas {
    /// No replicas yet, for vectors of dimension `d` compared with `metric`.
    pub fn new(d: usize, metric: MetricType) -> Self {
        IndexReplicas {
            d,
            metric,
            replicas: Vec::new(),
        }
    }

    /// Adds a replica: same dimension and metric, and the same number of vectors as the
    /// replicas already there (a copy of them).
    pub fn add_replica(&mut self, replica: Box<dyn Index>) -> Result<()> {
        if replica.dim() != self.d {
            return Err(Error::DimensionMismatch {
                what: "replica".into(),
                got: replica.dim(),
                expected: format!("dimension {}", self.d),
            });
        }
        if replica.metric() != self.metric {
            return Err(Error::invalid(format!(
                "a replica compares by {}, these replicas by {}",
                replica.metric(),
                self.metric
            )));
        }
        if let Some(first) = self.replicas.first()
            && first.ntotal() != replica.ntotal()
        {
            return Err(Error::invalid(format!(
                "a replica must hold the same vectors: it has {}, the others {}",
                replica.ntotal(),
                first.ntotal()
            )));
        }
        self.replicas.push(replica);
        Ok(())
    }

    /// The replicas, in the order they were added.
    pub fn replicas(&self) -> &[Box<dyn Index>] {
        &self.replicas
    }

    fn first(&self) -> Result<&dyn Index> {
        self.replicas
            .first()
            .map(|r| &**r)
            .ok_or_else(|| Error::invalid("IndexReplicas has no replicas: call add_replica first"))
    }

    /// Runs `f` on every replica in parallel; when some fail after others succeeded the
    /// replicas no longer agree, which the error says.
    fn on_all(
        &mut self,
        what: &str,
        f: impl Fn(&mut dyn Index) -> Result<()> + Sync,
    ) -> Result<()> {
        self.first()?;
        let outcomes: Vec<Result<()>> = self.replicas.par_iter_mut().map(|r| f(&mut **r)).collect();
        let failed = outcomes.iter().filter(|o| o.is_err()).count();
        match outcomes.into_iter().find_map(|o| o.err()) {
            None => Ok(()),
            Some(e) if failed == self.replicas.len() => Err(e),
            Some(e) => Err(Error::invalid(format!(
                "{failed} of {} replicas refused the {what} ({e}); the replicas now differ — \
                 rebuild them from one copy",
                self.replicas.len()
            ))),
        }
    }

    /// `f` of each replica and its contiguous share of the `nq` queries `q`, in parallel,
    /// in replica order.
    fn per_share<T: Send>(
        &self,
        q: &[f32],
        nq: usize,
        f: impl Fn(&dyn Index, &[f32]) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        self.first()?;
        let (r, d) = (self.replicas.len(), self.d);
        self.replicas
            .par_iter()
            .enumerate()
            .map(|(i, replica)| f(&**replica, &q[i * nq / r * d..(i + 1) * nq / r * d]))
            .collect()
    }
}

impl Index for IndexReplicas {
    fn dim(&self) -> usize {
        self.d
    }
    fn ntotal(&self) -> usize {
        self.replicas.first().map_or(0, |r| r.ntotal())
    }
    fn metric(&self) -> MetricType {
        self.metric
    }
    fn is_trained(&self) -> bool {
        self.replicas.iter().all(|r| r.is_trained())
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.on_all("training", |r| r.train(x))
    }
    fn add(&mut self, x: &[f32]) -> Result<()> {
        check::vectors("added", x, self.d)?;
        check::finite("added", x, self.d)?;
        self.on_all("add", |r| r.add(x))
    }
    fn add_with_ids(&mut self, x: &[f32], ids: &[Idx]) -> Result<()> {
        let n = check::vectors("added", x, self.d)?;
        check::ids(ids, n)?;
        check::finite("added", x, self.d)?;
        self.on_all("add", |r| r.add_with_ids(x, ids))
    }
    fn search_with(&self, q: &[f32], k: usize, params: &SearchParams<'_>) -> Result<SearchResult> {
        let nq = check_search(self, q, k)?;
        let parts = self.per_share(q, nq, |r, share| r.search_with(share, k, params))?;
        let mut out = SearchResult {
            nq,
            k,
            distances: Vec::with_capacity(nq * k),
            labels: Vec::with_capacity(nq * k),
        };
        for p in parts {
            out.distances.extend(p.distances);
            out.labels.extend(p.labels);
        }
        Ok(out)
    }
    fn range_search_with(
        &self,
        q: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        let nq = check_queries(self, q)?;
        let parts = self.per_share(q, nq, |r, share| r.range_search_with(share, radius, params))?;
        Ok(RangeSearchResult::from_lists(parts.iter().flat_map(|p| {
            (0..p.lims.len() - 1).map(|i| {
                let (l, d) = p.query(i);
                (l.to_vec(), d.to_vec())
            })
        })))
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        self.first()?.reconstruct(id)
    }
    fn ids_are_positions(&self) -> bool {
        self.replicas.first().is_none_or(|r| r.ids_are_positions())
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        self.first()?;
        let counts: Vec<Result<usize>> = self
            .replicas
            .par_iter_mut()
            .map(|r| r.remove_ids(selector))
            .collect();
        let counts = counts.into_iter().collect::<Result<Vec<_>>>()?;
        if counts.windows(2).any(|w| w[0] != w[1]) {
            return Err(Error::invalid(format!(
                "the replicas removed different numbers of vectors ({counts:?}); they differ"
            )));
        }
        Ok(counts[0])
    }
    fn reset(&mut self) -> Result<()> {
        self.replicas.iter_mut().try_for_each(|r| r.reset())
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        self.first()?;
        self.replicas
            .iter_mut()
            .try_for_each(|r| r.set_param(name, value))
    }
    fn param(&self, name: &str) -> Option<f64> {
        self.replicas.first().and_then(|r| r.param(name))
    }
    fn description(&self) -> String {
        match self.replicas.first() {
            Some(r) => format!("Replicas({}x{})", self.replicas.len(), r.description()),
            None => "Replicas(0)".into(),
        }
    }
    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IndexFlat;

    fn replicas(n: usize, d: usize) -> IndexReplicas {
        let mut r = IndexReplicas::new(d, MetricType::L2);
        for _ in 0..n {
            r.add_replica(Box::new(IndexFlat::new_l2(d).unwrap()))
                .unwrap();
        }
        r
    }

    #[test]
    fn answers_as_one_index_for_any_number_of_queries() {
        let d = 8;
        let x: Vec<f32> = (0..400 * d).map(|i| ((i * 37) % 101) as f32).collect();
        let mut one = IndexFlat::new_l2(d).unwrap();
        one.add(&x).unwrap();
        let mut three = replicas(3, d);
        three.add(&x).unwrap();
        assert_eq!(three.ntotal(), 400);
        for nq in [0, 1, 2, 3, 7, 50] {
            let q = &x[..nq * d];
            assert_eq!(
                three.search(q, 5).unwrap(),
                one.search(q, 5).unwrap(),
                "nq={nq}"
            );
            assert_eq!(
                three.range_search(q, 500.0).unwrap(),
                one.range_search(q, 500.0).unwrap()
            );
        }
        assert_eq!(three.reconstruct(9).unwrap(), one.reconstruct(9).unwrap());
    }

    #[test]
    fn refuses_replicas_that_differ_and_searches_without_replicas() {
        let d = 4;
        let mut r = replicas(1, d);
        r.add(&[1.0; 8]).unwrap();
        let err = r
            .add_replica(Box::new(IndexFlat::new_l2(d).unwrap()))
            .unwrap_err();
        assert!(err.to_string().contains("same vectors"), "{err}");
        assert!(
            r.add_replica(Box::new(IndexFlat::new_l2(d + 1).unwrap()))
                .is_err()
        );
        let empty = IndexReplicas::new(d, MetricType::L2);
        assert!(empty.search(&[0.0; 4], 1).is_err());
        assert!(r.add(&[f32::NAN; 4]).is_err());
        assert_eq!(r.ntotal(), 2);
    }
}
