//! The run-time parameters of an index, their combinations, and the exploration that
//! measures them (Faiss's `ParameterSpace`).

use std::time::{Duration, Instant};

use fathom_core::{Error, Result};

use super::{Criterion, OperatingPoints};
use crate::Index;

/// One run-time parameter and the values worth trying, cheapest (fastest, least
/// accurate) first. Indexes report theirs through [`Index::parameter_ranges`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterRange {
    /// The name [`Index::set_param`] takes (`nprobe`, `quantizer_efSearch`, …).
    pub name: String,
    /// Values from cheapest to most accurate.
    pub values: Vec<f64>,
}

impl ParameterRange {
    /// A range of the given values.
    pub fn new(name: impl Into<String>, values: impl IntoIterator<Item = f64>) -> Self {
        ParameterRange {
            name: name.into(),
            values: values.into_iter().collect(),
        }
    }

    /// Faiss's polysemous Hamming thresholds for a PQ: 2, 4, … up to half the code's
    /// bits when the code size is a multiple of 4 bytes, then the full code length (no
    /// filtering).
    pub fn polysemous_ht(pq: &fathom_quant::ProductQuantizer) -> Self {
        let bits = pq.code_size() * 8;
        let mut values: Vec<f64> = if pq.code_size().is_multiple_of(4) {
            (1..=bits / 4).map(|i| (2 * i) as f64).collect()
        } else {
            Vec::new()
        };
        values.push(bits as f64);
        Self::new("ht", values)
    }

    /// Powers of two `2^lo ..= 2^hi`.
    pub fn powers_of_two(name: impl Into<String>, lo: u32, hi: u32) -> Self {
        Self::new(name, (lo..=hi).map(|i| (1u64 << i) as f64))
    }
}

/// Sets run-time parameters from a string such as `"nprobe=16,efSearch=32"` (commas or
/// spaces between settings; Faiss's `ParameterSpace::set_index_parameters`), through any
/// wrappers (id maps, transforms, refinement, shards; `quantizer_` for an IVF's
/// quantizer). Settings apply in order; the first one refused stops with an error naming
/// it, and the ones before it stay applied.
///
/// ```
/// use fathom_index::{autotune::set_index_parameters, index_factory, MetricType};
/// let mut index = index_factory(16, "IDMap,IVF64_HNSW16,PQ8,RFlat", MetricType::L2).unwrap();
/// set_index_parameters(&mut *index, "nprobe=8,quantizer_efSearch=32,k_factor_rf=4").unwrap();
/// assert!(set_index_parameters(&mut *index, "nprobe=8 efsearch=3").is_err());
/// assert!(set_index_parameters(&mut *index, "nprobe").is_err());
/// ```
pub fn set_index_parameters(index: &mut dyn Index, settings: &str) -> Result<()> {
    for setting in settings
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (name, value) = parse_setting(setting)?;
        index
            .set_param(name, value)
            .map_err(|e| e.context(format!("setting {setting:?}")))?;
    }
    Ok(())
}

fn parse_setting(setting: &str) -> Result<(&str, f64)> {
    let bad = || {
        Error::invalid(format!(
            "setting {setting:?} not understood; expected <name>=<number>, e.g. nprobe=16"
        ))
    };
    let (name, value) = setting.split_once('=').ok_or_else(bad)?;
    let value = match value.trim() {
        "inf" | "infinity" => f64::INFINITY,
        v => v.parse::<f64>().map_err(|_| bad())?,
    };
    if value.is_nan() || name.trim().is_empty() {
        return Err(bad());
    }
    Ok((name.trim(), value))
}

/// Every combination of an index's parameter ranges, numbered as a mixed-radix integer
/// (the first range varies fastest), and the exploration that measures them.
///
/// ```
/// use fathom_index::{autotune::ParameterSpace, index_factory, MetricType};
/// let index = index_factory(16, "IVF64,PQ8,RFlat", MetricType::L2).unwrap();
/// let space = ParameterSpace::new(&*index);
/// let names: Vec<&str> = space.ranges.iter().map(|r| r.name.as_str()).collect();
/// assert_eq!(names, ["k_factor_rf", "nprobe", "ht"]);
/// assert_eq!(space.combination_name(1), "k_factor_rf=2,nprobe=1,ht=2");
/// ```
#[derive(Debug, Clone)]
pub struct ParameterSpace {
    /// The ranges explored; edit them to narrow or widen the search.
    pub ranges: Vec<ParameterRange>,
    /// How many combinations to try at most (Faiss's default 500; 0 = every one, without
    /// pruning). The cheapest and the most accurate are tried first, then the others in a
    /// fixed random order, skipping any that measured points prove cannot improve the
    /// Pareto front.
    pub n_experiments: usize,
    /// Each measurement repeats the search until this much time has passed and reports
    /// the mean (zero: one run).
    pub min_test_duration: Duration,
    /// Queries per search call (`None`: all in one call, the throughput setting).
    pub batch_size: Option<usize>,
    /// Seed of the random order of experiments.
    pub seed: u64,
}

/// What [`ParameterSpace::explore`] reports as it goes.
#[derive(Debug, Clone)]
pub enum ExploreEvent {
    /// A combination was measured.
    Measured {
        /// Its number.
        cno: usize,
        /// Its setting.
        key: String,
        /// Its quality.
        perf: f64,
        /// Seconds per pass over the queries.
        t: f64,
        /// Whether it is on the Pareto front.
        optimal: bool,
    },
    /// A combination was skipped: points already measured bound its quality from above
    /// and its time from below, and the front already does as well faster.
    Skipped {
        /// Its number.
        cno: usize,
        /// Its setting.
        key: String,
    },
}

impl ParameterSpace {
    /// The ranges `index` reports (through its wrappers), Faiss's defaults otherwise.
    pub fn new(index: &dyn Index) -> Self {
        ParameterSpace {
            ranges: index
                .parameter_ranges()
                .into_iter()
                .filter(|r| !r.values.is_empty())
                .collect(),
            n_experiments: 500,
            min_test_duration: Duration::ZERO,
            batch_size: None,
            seed: 1234,
        }
    }

    /// The number of combinations (1 when there are no ranges: the index as it is).
    pub fn n_combinations(&self) -> usize {
        self.ranges
            .iter()
            .fold(1usize, |n, r| n.saturating_mul(r.values.len()))
    }

    /// The settings of combination `cno`.
    pub fn combination(&self, mut cno: usize) -> Vec<(&str, f64)> {
        self.ranges
            .iter()
            .map(|r| {
                let v = r.values[cno % r.values.len()];
                cno /= r.values.len();
                (r.name.as_str(), v)
            })
            .collect()
    }

    /// Combination `cno` as [`set_index_parameters`] reads it: `"nprobe=16,ht=64"`.
    pub fn combination_name(&self, cno: usize) -> String {
        self.combination(cno)
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether every parameter of `c1` is at least as accurate (as far along its range)
    /// as in `c2`: then `c1` is expected to be no faster and no worse.
    pub fn combination_ge(&self, mut c1: usize, mut c2: usize) -> bool {
        for r in &self.ranges {
            let n = r.values.len();
            if c1 % n < c2 % n {
                return false;
            }
            c1 /= n;
            c2 /= n;
        }
        true
    }

    /// Applies combination `cno` to `index`.
    pub fn set_index_parameters(&self, index: &mut dyn Index, cno: usize) -> Result<()> {
        if cno >= self.n_combinations() {
            return Err(Error::invalid(format!(
                "combination {cno} does not exist; there are {}",
                self.n_combinations()
            )));
        }
        for (name, v) in self.combination(cno) {
            index
                .set_param(name, v)
                .map_err(|e| e.context(format!("setting {name}={v}")))?;
        }
        Ok(())
    }

    /// Measures combinations on `queries` (searching `criterion.r()` neighbours) and
    /// returns the points; the index is left with the last setting tried. `progress`
    /// hears of each combination measured or skipped.
    pub fn explore(
        &self,
        index: &mut dyn Index,
        queries: &[f32],
        criterion: &Criterion,
        progress: &mut dyn FnMut(&ExploreEvent),
    ) -> Result<OperatingPoints> {
        let nq = fathom_core::check::vectors("query", queries, index.dim())?;
        if nq != criterion.nq() {
            return Err(Error::DimensionMismatch {
                what: "queries".into(),
                got: nq,
                expected: format!("the ground truth's {} queries", criterion.nq()),
            });
        }
        let n_comb = self.n_combinations();
        let order = self.order(n_comb);
        let prune = self.n_experiments != 0;
        let mut ops = OperatingPoints::default();
        for cno in order {
            if prune && self.cannot_improve(cno, &ops) {
                progress(&ExploreEvent::Skipped {
                    cno,
                    key: self.combination_name(cno),
                });
                continue;
            }
            self.set_index_parameters(index, cno)?;
            let (labels, t) = self.timed_search(index, queries, criterion.r())?;
            let perf = criterion.evaluate(&labels)?;
            let key = self.combination_name(cno);
            let optimal = ops.add(perf, t, key.clone(), cno);
            progress(&ExploreEvent::Measured {
                cno,
                key,
                perf,
                t,
                optimal,
            });
        }
        Ok(ops)
    }

    /// Which combinations to run, in order: all of them when `n_experiments` is 0;
    /// otherwise the cheapest, the most accurate, then a seeded random order, at most
    /// `n_experiments` in all.
    fn order(&self, n_comb: usize) -> Vec<usize> {
        if self.n_experiments == 0 || n_comb <= 2 {
            return (0..n_comb).collect();
        }
        let mut rest: Vec<usize> = (1..n_comb - 1).collect();
        // Fisher–Yates with SplitMix64: any fixed shuffle serves.
        let mut s = self.seed;
        for i in (1..rest.len()).rev() {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            rest.swap(i, (z % (i as u64 + 1)) as usize);
        }
        let mut order = vec![0, n_comb - 1];
        order.extend(rest);
        order.truncate(self.n_experiments.max(2));
        order
    }

    /// Faiss's pruning: a combination at least as accurate as a measured one is no faster
    /// than it, and one no more accurate than a measured one is no better. If the front
    /// already reaches that best possible quality within that least possible time, the
    /// combination cannot join it.
    fn cannot_improve(&self, cno: usize, ops: &OperatingPoints) -> bool {
        let mut upper_perf = 1.0f64;
        let mut lower_t = 0.0f64;
        for p in ops.all() {
            if self.combination_ge(cno, p.cno) {
                lower_t = lower_t.max(p.t);
            }
            if self.combination_ge(p.cno, cno) {
                upper_perf = upper_perf.min(p.perf);
            }
        }
        ops.t_for_perf(upper_perf) <= lower_t
    }

    /// Searches all queries (in batches if asked), repeating for `min_test_duration`;
    /// returns the labels and the mean seconds per pass.
    fn timed_search(
        &self,
        index: &dyn Index,
        queries: &[f32],
        k: usize,
    ) -> Result<(Vec<crate::Idx>, f64)> {
        let d = index.dim();
        let batch = self.batch_size.unwrap_or(usize::MAX).max(1);
        let t0 = Instant::now();
        let mut runs = 0u32;
        loop {
            let mut labels = Vec::with_capacity(queries.len() / d * k);
            for chunk in queries.chunks(batch.saturating_mul(d)) {
                labels.extend(index.search(chunk, k)?.labels);
            }
            runs += 1;
            let elapsed = t0.elapsed();
            if elapsed >= self.min_test_duration {
                return Ok((labels, elapsed.as_secs_f64() / runs as f64));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(sizes: &[usize]) -> ParameterSpace {
        let mut s = ParameterSpace::new(&crate::IndexFlat::new_l2(4).unwrap());
        s.ranges = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| ParameterRange::new(format!("p{i}"), (0..n).map(|v| v as f64)))
            .collect();
        s
    }

    #[test]
    fn combinations_are_mixed_radix_numbers() {
        let s = space(&[3, 2]);
        assert_eq!(s.n_combinations(), 6);
        assert_eq!(s.combination(4), vec![("p0", 1.0), ("p1", 1.0)]);
        assert_eq!(s.combination_name(5), "p0=2,p1=1");
        assert!(s.combination_ge(5, 4) && s.combination_ge(4, 4));
        assert!(!s.combination_ge(2, 3) && !s.combination_ge(3, 2));
        assert_eq!(space(&[]).n_combinations(), 1);
        assert_eq!(space(&[]).combination_name(0), "");
    }

    #[test]
    fn order_starts_cheapest_then_most_accurate_and_covers_each_once() {
        let mut s = space(&[4, 5]);
        let o = s.order(20);
        assert_eq!(&o[..2], &[0, 19]);
        let mut sorted = o.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
        s.n_experiments = 5;
        assert_eq!(s.order(20).len(), 5);
        s.n_experiments = 0;
        assert_eq!(s.order(20), (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn pruning_skips_combinations_the_front_already_beats() {
        let s = space(&[3]);
        let mut ops = OperatingPoints::default();
        // The most accurate setting (2) reached 0.5 in 1 s; the cheapest (0) 0.5 in 0.1 s.
        ops.add(0.5, 1.0, "p0=2", 2);
        ops.add(0.5, 0.1, "p0=0", 0);
        // Setting 1 is at most 0.5 good and at least 0.1 slow: the front has 0.5 at 0.1.
        assert!(s.cannot_improve(1, &ops));
        let mut ops = OperatingPoints::default();
        ops.add(0.9, 1.0, "p0=2", 2);
        ops.add(0.5, 0.1, "p0=0", 0);
        assert!(!s.cannot_improve(1, &ops));
    }

    #[test]
    fn settings_strings() {
        assert_eq!(parse_setting("nprobe=16").unwrap(), ("nprobe", 16.0));
        assert_eq!(parse_setting("max_codes=inf").unwrap().1, f64::INFINITY);
        for bad in ["nprobe", "=3", "nprobe=x", "nprobe=NaN"] {
            assert!(parse_setting(bad).is_err(), "{bad}");
        }
    }
}
