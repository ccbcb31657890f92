//! How good a search result is against ground truth (Faiss's `AutoTuneCriterion`).

use fathom_core::{Error, Idx, Result};

/// A search-quality measure against exact ground truth, in `[0, 1]`: the fraction of the
/// true `k` nearest neighbours found among the first `r` results, averaged over queries
/// ("k-recall@R"). The measures Faiss's autotune uses are special cases:
/// [`Criterion::one_recall_at`] (1-recall@R, Faiss's `OneRecallAtRCriterion`: is the true
/// nearest neighbour among the first R?), [`Criterion::r_recall_at`] (R-recall@R, Faiss's
/// `IntersectionCriterion`: how much of the true top R is in the returned top R?) and
/// [`Criterion::intersection`] for any `k ≤ r`.
///
/// ```
/// use fathom_index::autotune::Criterion;
/// // Two queries; ground truth holds each query's 3 nearest neighbours.
/// let gt = vec![7, 3, 9, 1, 2, 4];
/// let crit = Criterion::one_recall_at(2, &gt, 3).unwrap();
/// // Results for 2 neighbours per query: query 0 finds 7, query 1 misses 1.
/// assert_eq!(crit.evaluate(&[3, 7, 2, 4]).unwrap(), 0.5);
/// let crit = Criterion::r_recall_at(2, &gt, 3).unwrap();
/// assert_eq!(crit.evaluate(&[3, 7, 2, 4]).unwrap(), 0.75);
/// ```
#[derive(Debug, Clone)]
pub struct Criterion {
    /// True neighbours that count per query.
    k: usize,
    /// Results requested per query.
    r: usize,
    /// Ground truth, `nq × gt_k` ids, nearest first.
    gt: Vec<Idx>,
    gt_k: usize,
}

impl Criterion {
    /// k-recall@R: the fraction of each query's true `k` nearest neighbours (from `gt`, a
    /// row of `gt_k ≥ k` ids per query, nearest first) among its first `r` results.
    pub fn intersection(k: usize, r: usize, gt: &[Idx], gt_k: usize) -> Result<Self> {
        if k == 0 || r == 0 || k > r {
            return Err(Error::invalid(format!(
                "a k-recall@R criterion needs 1 ≤ k ≤ R, got k = {k}, R = {r}"
            )));
        }
        if gt_k < k {
            return Err(Error::invalid(format!(
                "the ground truth has {gt_k} neighbours per query; the criterion counts {k}"
            )));
        }
        if gt.is_empty() || !gt.len().is_multiple_of(gt_k) {
            return Err(Error::DimensionMismatch {
                what: "ground truth".into(),
                got: gt.len(),
                expected: format!("a positive multiple of {gt_k} ids (nq × {gt_k})"),
            });
        }
        Ok(Criterion {
            k,
            r,
            gt: gt.to_vec(),
            gt_k,
        })
    }

    /// 1-recall@R: whether the true nearest neighbour is among the first `r` results.
    pub fn one_recall_at(r: usize, gt: &[Idx], gt_k: usize) -> Result<Self> {
        Self::intersection(1, r, gt, gt_k)
    }

    /// R-recall@R: the fraction of the true top `r` among the first `r` results.
    pub fn r_recall_at(r: usize, gt: &[Idx], gt_k: usize) -> Result<Self> {
        Self::intersection(r, r, gt, gt_k)
    }

    /// Parses `1-recall@10`, `10-recall@10`, `5-recall@20` (also `R@10` for 1-recall@10,
    /// Faiss's benchmark notation).
    ///
    /// ```
    /// use fathom_index::autotune::Criterion;
    /// let gt: Vec<i64> = (0..100).collect();
    /// let c = Criterion::parse("10-recall@10", &gt, 100).unwrap();
    /// assert_eq!((c.k(), c.r()), (10, 10));
    /// assert!(Criterion::parse("recall", &gt, 100).is_err());
    /// ```
    pub fn parse(spec: &str, gt: &[Idx], gt_k: usize) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "criterion {spec:?} not understood; expected <k>-recall@<R> (1-recall@1, \
                 10-recall@10, …) or R@<R>"
            ))
        };
        let (k, r) = if let Some(r) = spec.strip_prefix("R@") {
            ("1", r)
        } else {
            spec.split_once("-recall@").ok_or_else(bad)?
        };
        let k: usize = k.trim().parse().map_err(|_| bad())?;
        let r: usize = r.trim().parse().map_err(|_| bad())?;
        Self::intersection(k, r, gt, gt_k)
    }

    /// Queries the ground truth covers.
    pub fn nq(&self) -> usize {
        self.gt.len() / self.gt_k
    }
    /// True neighbours counted per query.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Results a search must return per query (Faiss's `nnn`).
    pub fn r(&self) -> usize {
        self.r
    }

    /// The criterion's value for `labels`, `nq × r` ids as a search with `k = r` returns.
    pub fn evaluate(&self, labels: &[Idx]) -> Result<f64> {
        let nq = self.nq();
        if labels.len() != nq * self.r {
            return Err(Error::DimensionMismatch {
                what: "search labels".into(),
                got: labels.len(),
                expected: format!("{nq} queries × {} results", self.r),
            });
        }
        let mut found = 0usize;
        for (q, row) in labels.chunks_exact(self.r).enumerate() {
            let truth = &self.gt[q * self.gt_k..q * self.gt_k + self.k];
            found += truth
                .iter()
                .filter(|&&t| t >= 0 && row.contains(&t))
                .count();
        }
        Ok(found as f64 / (nq * self.k) as f64)
    }

    /// A name in the notation [`Criterion::parse`] reads.
    pub fn name(&self) -> String {
        format!("{}-recall@{}", self.k, self.r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_variants_and_bad_arguments() {
        let gt = vec![0, 1, 2, 3, 10, 11, 12, 13];
        let labels = vec![1, 0, 5, 11, 12, 13];
        assert_eq!(
            Criterion::one_recall_at(3, &gt, 4)
                .unwrap()
                .evaluate(&labels)
                .unwrap(),
            0.5
        );
        assert_eq!(
            Criterion::r_recall_at(3, &gt, 4)
                .unwrap()
                .evaluate(&labels)
                .unwrap(),
            (2.0 + 2.0) / 6.0
        );
        assert_eq!(
            Criterion::intersection(2, 3, &gt, 4)
                .unwrap()
                .evaluate(&labels)
                .unwrap(),
            (2.0 + 1.0) / 4.0
        );
        // Missing results (-1) never count, not even against missing ground truth.
        let c = Criterion::one_recall_at(1, &[-1], 1).unwrap();
        assert_eq!(c.evaluate(&[-1]).unwrap(), 0.0);
        assert!(Criterion::intersection(0, 1, &gt, 4).is_err());
        assert!(Criterion::intersection(3, 2, &gt, 4).is_err());
        assert!(Criterion::intersection(5, 5, &gt, 4).is_err());
        assert!(Criterion::intersection(1, 1, &gt[..7], 4).is_err());
        assert!(Criterion::intersection(1, 1, &[], 4).is_err());
        let c = Criterion::one_recall_at(3, &gt, 4).unwrap();
        assert!(c.evaluate(&labels[..5]).is_err());
        assert_eq!(
            Criterion::parse("R@3", &gt, 4).unwrap().name(),
            "1-recall@3"
        );
        for bad in ["", "1-recall", "x-recall@3", "1-recall@", "2-recall@1"] {
            assert!(Criterion::parse(bad, &gt, 4).is_err(), "{bad}");
        }
    }
}
