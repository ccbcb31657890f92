use crate::{Idx, MetricType, NO_ID};

/// The k nearest neighbours of `nq` queries, in Faiss's layout: two row-major `nq × k`
/// arrays. Row `i` is sorted best first; where fewer than `k` results exist the label is
/// `-1` and the distance is the metric's worst value (`+∞` for distances, `−∞` for inner
/// product).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// Number of queries.
    pub nq: usize,
    /// Results per query.
    pub k: usize,
    /// `nq × k` distances (or similarities), row-major.
    pub distances: Vec<f32>,
    /// `nq × k` ids, row-major; `-1` where there is no result.
    pub labels: Vec<Idx>,
}

impl SearchResult {
    /// A result of `nq × k` missing entries for `metric`.
    pub fn empty(nq: usize, k: usize, metric: MetricType) -> Self {
        SearchResult {
            nq,
            k,
            distances: vec![metric.worst_value(); nq * k],
            labels: vec![NO_ID; nq * k],
        }
    }

    /// Like [`SearchResult::empty`], but reports an error instead of aborting when the
    /// `nq × k` arrays cannot be allocated (an absurd `k`, say).
    pub fn try_empty(nq: usize, k: usize, metric: MetricType) -> crate::Result<Self> {
        let too_big = || {
            crate::Error::invalid(format!(
                "a result of {nq} queries × k = {k} does not fit in memory; use a smaller k"
            ))
        };
        let total = nq.checked_mul(k).ok_or_else(too_big)?;
        let mut distances = Vec::new();
        let mut labels = Vec::new();
        distances.try_reserve_exact(total).map_err(|_| too_big())?;
        labels.try_reserve_exact(total).map_err(|_| too_big())?;
        distances.resize(total, metric.worst_value());
        labels.resize(total, NO_ID);
        Ok(SearchResult {
            nq,
            k,
            distances,
            labels,
        })
    }

    /// The ids found for query `i`, best first.
    pub fn labels_of(&self, i: usize) -> &[Idx] {
        &self.labels[i * self.k..(i + 1) * self.k]
    }

    /// The distances found for query `i`, best first.
    pub fn distances_of(&self, i: usize) -> &[f32] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }
}

/// All results within a radius for `nq` queries, in Faiss's layout: the results of query
/// `i` are `labels[lims[i]..lims[i+1]]` and `distances[lims[i]..lims[i+1]]`.
///
/// For distances a result is kept when `distance < radius`; for inner product when
/// `similarity > radius` (strict in both cases, as Faiss). Results of one query come in
/// no particular order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RangeSearchResult {
    /// `nq + 1` offsets into `labels` and `distances`.
    pub lims: Vec<usize>,
    /// The ids found, query after query.
    pub labels: Vec<Idx>,
    /// The distances found, in the same order as `labels`.
    pub distances: Vec<f32>,
}

impl RangeSearchResult {
    /// Builds a result from per-query lists, concatenated in query order.
    pub fn from_lists(lists: impl IntoIterator<Item = (Vec<Idx>, Vec<f32>)>) -> Self {
        let mut out = RangeSearchResult {
            lims: vec![0],
            ..Default::default()
        };
        for (ids, dists) in lists {
            debug_assert_eq!(ids.len(), dists.len());
            out.labels.extend_from_slice(&ids);
            out.distances.extend_from_slice(&dists);
            out.lims.push(out.labels.len());
        }
        out
    }

    /// Number of queries.
    pub fn nq(&self) -> usize {
        self.lims.len().saturating_sub(1)
    }

    /// The ids and distances found for query `i`.
    pub fn query(&self, i: usize) -> (&[Idx], &[f32]) {
        let r = self.lims[i]..self.lims[i + 1];
        (&self.labels[r.clone()], &self.distances[r])
    }
}
