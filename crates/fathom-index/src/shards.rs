//! Several indexes searched in parallel as one.

use fathom_core::{
    Error, IdSelector, IdSelectorTranslated, Idx, MetricType, NO_ID, RangeSearchResult, Result,
    SearchParams, SearchResult, check,
};
use fathom_kernels::TopK;
use rayon::prelude::*;

use crate::idmap::{translate_labels, translated_params};
use crate::{Index, check_queries, check_search};

/// Who assigns the ids of an [`IndexShards`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardIds {
    /// The shards index their vectors by position; `IndexShards` gives the vectors
    /// successive ids `0, 1, 2, …` in the order they were added (across all shards) and
    /// keeps the id of every vector (8 bytes each). `add` is the way in.
    Sequential,
    /// The shards hold the ids themselves (for instance each is an [`crate::IndexIdMap`]);
    /// `add_with_ids` forwards the ids and results are returned as the shards report them.
    Explicit,
}

/// Vectors spread over several indexes ("shards") of the same dimension and metric,
/// searched in parallel with the results merged: Faiss's `IndexShards`.
///
/// Each `add` splits its batch into contiguous pieces, one per shard.
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexShards, ShardIds, MetricType};
/// let mut shards = IndexShards::new(2, MetricType::L2, ShardIds::Sequential);
/// shards.add_shard(Box::new(IndexFlat::new_l2(2).unwrap())).unwrap();
/// shards.add_shard(Box::new(IndexFlat::new_l2(2).unwrap())).unwrap();
/// shards.add(&[0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]).unwrap();
/// let res = shards.search(&[2.9, 3.1], 2).unwrap();
/// assert_eq!(res.labels, vec![3, 2]);
/// ```
#[derive(Debug)]
pub struct IndexShards {
    d: usize,
    metric: MetricType,
    mode: ShardIds,
    shards: Vec<Box<dyn Index>>,
    /// Sequential mode: the id of each vector of each shard, increasing.
    ids: Vec<Vec<Idx>>,
    next_id: Idx,
}

impl IndexShards {
    /// An empty set of shards for vectors of dimension `d` compared with `metric`.
    pub fn new(d: usize, metric: MetricType, mode: ShardIds) -> Self {
        IndexShards {
            d,
            metric,
            mode,
            shards: Vec::new(),
            ids: Vec::new(),
            next_id: 0,
        }
    }

    /// Adds a shard of the same dimension and metric. In [`ShardIds::Sequential`] mode the
    /// vectors it already holds receive the next ids.
    pub fn add_shard(&mut self, shard: Box<dyn Index>) -> Result<()> {
        if shard.dim() != self.d {
            return Err(Error::DimensionMismatch {
                what: "shard".into(),
                got: shard.dim(),
                expected: format!("dimension {}", self.d),
            });
        }
        if shard.metric() != self.metric {
            return Err(Error::invalid(format!(
                "shard compares with {}, expected {}",
                shard.metric(),
                self.metric
            )));
        }
        let n = shard.ntotal() as Idx;
        self.ids.push((self.next_id..self.next_id + n).collect());
        self.next_id += n;
        self.shards.push(shard);
        Ok(())
    }

    /// The shards.
    pub fn shards(&self) -> &[Box<dyn Index>] {
        &self.shards
    }

    fn need_shards(&self) -> Result<()> {
        if self.shards.is_empty() {
            return Err(Error::invalid(
                "IndexShards has no shards: call add_shard first",
            ));
        }
        Ok(())
    }

    /// Contiguous row ranges of a batch of `n`, one per shard.
    fn pieces(&self, n: usize) -> Vec<std::ops::Range<usize>> {
        let s = self.shards.len();
        (0..s).map(|i| i * n / s..(i + 1) * n / s).collect()
    }

    /// Runs `f` on every shard in parallel with the selector it needs.
    fn per_shard<T: Send>(
        &self,
        params: &SearchParams<'_>,
        f: impl Fn(&dyn Index, &SearchParams<'_>) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        self.shards
            .par_iter()
            .zip(&self.ids)
            .map(|(shard, ids)| match self.mode {
                ShardIds::Sequential => {
                    let sel = params.selector.map(|s| IdSelectorTranslated::new(ids, s));
                    f(shard.as_ref(), &translated_params(params, &sel))
                }
                ShardIds::Explicit => f(shard.as_ref(), params),
            })
            .collect()
    }
}

/// Merges the results of several shards for the same `nq` queries into the `k` best per
/// query, ties broken by the smaller id — the merge of [`IndexShards`], also used by
/// processes that search shards elsewhere (`fathom-dist`'s router). `id_of(shard, label)`
/// gives the id a shard's label stands for (the label itself when shards hold global ids);
/// missing results (`-1`) are skipped.
///
/// ```
/// use fathom_core::{MetricType, SearchResult};
/// use fathom_index::merge_results;
/// let a = SearchResult { nq: 1, k: 2, distances: vec![1.0, 4.0], labels: vec![10, 11] };
/// let b = SearchResult { nq: 1, k: 2, distances: vec![2.0, f32::INFINITY], labels: vec![20, -1] };
/// let m = merge_results(&[a, b], 1, 2, MetricType::L2, |_, l| l).unwrap();
/// assert_eq!(m.labels, vec![10, 20]);
/// ```
pub fn merge_results(
    parts: &[SearchResult],
    nq: usize,
    k: usize,
    metric: MetricType,
    id_of: impl Fn(usize, Idx) -> Idx,
) -> Result<SearchResult> {
    let mut out = SearchResult::try_empty(nq, k, metric)?;
    let sign = if metric.is_similarity() { -1.0 } else { 1.0 };
    for (qi, (dists, labels)) in out
        .distances
        .chunks_exact_mut(k)
        .zip(out.labels.chunks_exact_mut(k))
        .enumerate()
    {
        let mut top = TopK::new(k);
        for (shard, part) in parts.iter().enumerate() {
            for (&v, &l) in part.distances_of(qi).iter().zip(part.labels_of(qi)) {
                if l != NO_ID {
                    top.push(sign * v, id_of(shard, l));
                }
            }
        }
        for (slot, (key, id)) in top.into_sorted().into_iter().enumerate() {
            dists[slot] = sign * key;
            labels[slot] = id;
        }
    }
    Ok(out)
}

impl Index for IndexShards {
    fn dim(&self) -> usize {
        self.d
    }
    fn ntotal(&self) -> usize {
        self.shards.iter().map(|s| s.ntotal()).sum()
    }
    fn metric(&self) -> MetricType {
        self.metric
    }
    fn is_trained(&self) -> bool {
        self.shards.iter().all(|s| s.is_trained())
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.need_shards()?;
        self.shards.par_iter_mut().try_for_each(|s| s.train(x))
    }
    fn add(&mut self, x: &[f32]) -> Result<()> {
        if self.mode == ShardIds::Explicit {
            return Err(Error::Unsupported(
                "IndexShards with explicit ids needs add_with_ids".into(),
            ));
        }
        self.need_shards()?;
        let n = check::vectors("added", x, self.d)?;
        check::finite("added", x, self.d)?;
        let d = self.d;
        let pieces = self.pieces(n);
        let outcomes: Vec<Result<()>> = self
            .shards
            .par_iter_mut()
            .zip(&pieces)
            .map(|(s, r)| s.add(&x[r.start * d..r.end * d]))
            .collect();
        let mut first_err = None;
        for ((outcome, r), ids) in outcomes.into_iter().zip(&pieces).zip(&mut self.ids) {
            match outcome {
                Ok(()) => ids.extend(r.start as Idx + self.next_id..r.end as Idx + self.next_id),
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        self.next_id += n as Idx;
        match first_err {
            None => Ok(()),
            Some(e) => Err(Error::invalid(format!(
                "a shard refused its part of the batch ({e}); the other shards' parts were added"
            ))),
        }
    }
    fn add_with_ids(&mut self, x: &[f32], ids: &[Idx]) -> Result<()> {
        if self.mode == ShardIds::Sequential {
            return Err(Error::Unsupported(
                "IndexShards with sequential ids assigns ids itself: use add, or ShardIds::Explicit"
                    .into(),
            ));
        }
        self.need_shards()?;
        let n = check::vectors("added", x, self.d)?;
        check::ids(ids, n)?;
        check::finite("added", x, self.d)?;
        let d = self.d;
        let pieces = self.pieces(n);
        self.shards
            .par_iter_mut()
            .zip(&pieces)
            .try_for_each(|(s, r)| s.add_with_ids(&x[r.start * d..r.end * d], &ids[r.clone()]))
    }
    fn search_with(&self, q: &[f32], k: usize, params: &SearchParams<'_>) -> Result<SearchResult> {
        let nq = check_search(self, q, k)?;
        let parts = self.per_shard(params, |s, p| s.search_with(q, k, p))?;
        merge_results(&parts, nq, k, self.metric, |shard, l| {
            if self.mode == ShardIds::Sequential {
                // A row the shard does not have (its stored ids are not its rows) is no
                // result rather than a panic.
                self.ids[shard].get(l as usize).copied().unwrap_or(-1)
            } else {
                l
            }
        })
    }
    fn range_search_with(
        &self,
        q: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        let nq = check_queries(self, q)?;
        let mut parts = self.per_shard(params, |s, p| s.range_search_with(q, radius, p))?;
        if self.mode == ShardIds::Sequential {
            for (part, ids) in parts.iter_mut().zip(&self.ids) {
                translate_labels(&mut part.labels, ids)?;
            }
        }
        Ok(RangeSearchResult::from_lists((0..nq).map(|qi| {
            let mut ids = Vec::new();
            let mut dists = Vec::new();
            for part in &parts {
                let (l, d) = part.query(qi);
                ids.extend_from_slice(l);
                dists.extend_from_slice(d);
            }
            (ids, dists)
        })))
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        match self.mode {
            ShardIds::Sequential => {
                for (shard, ids) in self.shards.iter().zip(&self.ids) {
                    if let Ok(row) = ids.binary_search(&id) {
                        return shard.reconstruct(row as Idx);
                    }
                }
                Err(Error::IdNotFound(id))
            }
            ShardIds::Explicit => {
                let mut last = Error::IdNotFound(id);
                for shard in &self.shards {
                    match shard.reconstruct(id) {
                        Ok(v) => return Ok(v),
                        Err(e @ Error::Unsupported(_)) => last = e,
                        Err(_) => {}
                    }
                }
                Err(last)
            }
        }
    }
    fn ids_are_positions(&self) -> bool {
        false
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        match self.mode {
            ShardIds::Sequential => {
                let mut total = 0;
                for (shard, ids) in self.shards.iter_mut().zip(&mut self.ids) {
                    total += shard.remove_ids(&IdSelectorTranslated::new(ids, selector))?;
                    ids.retain(|&id| !selector.is_member(id));
                }
                Ok(total)
            }
            ShardIds::Explicit => {
                let mut total = 0;
                for shard in &mut self.shards {
                    total += shard.remove_ids(selector)?;
                }
                Ok(total)
            }
        }
    }
    fn reset(&mut self) -> Result<()> {
        for s in &mut self.shards {
            s.reset()?;
        }
        self.ids.iter_mut().for_each(Vec::clear);
        self.next_id = 0;
        Ok(())
    }
    fn parameter_ranges(&self) -> Vec<crate::autotune::ParameterRange> {
        self.shards
            .first()
            .map(|s| s.parameter_ranges())
            .unwrap_or_default()
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        self.need_shards()?;
        self.shards
            .iter_mut()
            .try_for_each(|s| s.set_param(name, value))
    }
    fn param(&self, name: &str) -> Option<f64> {
        self.shards.first().and_then(|s| s.param(name))
    }
    fn description(&self) -> String {
        match self.shards.first() {
            Some(s) => format!("Shards({}x{})", self.shards.len(), s.description()),
            None => "Shards(0)".into(),
        }
    }
    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::Shards(self)
    }

    fn view_mut(&mut self) -> crate::IndexViewMut<'_> {
        crate::IndexViewMut::Shards(self)
    }
    fn part_mut(&mut self, part: crate::Part) -> Option<&mut dyn Index> {
        match part {
            crate::Part::Shard(i) => self.shards.get_mut(i).map(|s| &mut **s),
            _ => None,
        }
    }
}
