//! Measured (quality, time) points and their Pareto front (Faiss's `OperatingPoints`).

use std::fmt;

/// One measured setting: its quality, its search time and which setting it was.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatingPoint {
    /// The criterion's value, in `[0, 1]`.
    pub perf: f64,
    /// Seconds to search the whole query set.
    pub t: f64,
    /// The setting, as `set_index_parameters` reads it (`"nprobe=16,ht=64"`).
    pub key: String,
    /// The setting's combination number in its [`super::ParameterSpace`].
    pub cno: usize,
}

/// Every measured point and the Pareto-optimal ones: no other point is both at least as
/// good and faster. The front is kept sorted by increasing quality (and so increasing
/// time).
///
/// ```
/// use fathom_index::autotune::OperatingPoints;
/// let mut ops = OperatingPoints::default();
/// assert!(ops.add(0.5, 1.0, "nprobe=1", 0));
/// assert!(ops.add(0.9, 4.0, "nprobe=8", 3));
/// assert!(!ops.add(0.8, 5.0, "nprobe=4", 2)); // worse and slower than nprobe=8
/// assert!(ops.add(0.6, 0.5, "nprobe=2", 1)); // better and faster than nprobe=1
/// let keys: Vec<&str> = ops.optimal().iter().map(|p| p.key.as_str()).collect();
/// assert_eq!(keys, ["nprobe=2", "nprobe=8"]);
/// assert_eq!(ops.t_for_perf(0.85), 4.0);
/// assert_eq!(ops.t_for_perf(0.95), f64::INFINITY);
/// ```
#[derive(Debug, Clone, Default)]
pub struct OperatingPoints {
    all: Vec<OperatingPoint>,
    optimal: Vec<OperatingPoint>,
}

impl OperatingPoints {
    /// Records a measurement; returns whether it is on the Pareto front now. A quality
    /// of 0 never is: doing nothing is faster.
    pub fn add(&mut self, perf: f64, t: f64, key: impl Into<String>, cno: usize) -> bool {
        let op = OperatingPoint {
            perf,
            t,
            key: key.into(),
            cno,
        };
        self.all.push(op.clone());
        if perf.is_nan() || perf <= 0.0 || t.is_nan() {
            return false;
        }
        // The first point at least as good: the new one must beat it on time.
        let i = self.optimal.partition_point(|p| p.perf < perf);
        match self.optimal.get(i) {
            Some(p) if p.t <= t => return false,
            Some(p) if p.perf == perf => self.optimal[i] = op,
            _ => self.optimal.insert(i, op),
        }
        // Points below it in quality that are no faster are dominated now.
        let keep_from = self.optimal[..i].partition_point(|p| p.t < t);
        self.optimal.drain(keep_from..i);
        true
    }

    /// The Pareto front, by increasing quality and time.
    pub fn optimal(&self) -> &[OperatingPoint] {
        &self.optimal
    }
    /// Every point measured, in order.
    pub fn all(&self) -> &[OperatingPoint] {
        &self.all
    }

    /// The least time that reaches quality `perf` (infinite when nothing does).
    pub fn t_for_perf(&self, perf: f64) -> f64 {
        let i = self.optimal.partition_point(|p| p.perf < perf);
        self.optimal.get(i).map_or(f64::INFINITY, |p| p.t)
    }

    /// The best quality reachable within `t` seconds (`None` when nothing is that fast).
    pub fn best_within(&self, t: f64) -> Option<&OperatingPoint> {
        self.optimal.iter().rev().find(|p| p.t <= t)
    }

    /// The fastest point of quality at least `perf` (`None` when none reaches it).
    pub fn fastest_reaching(&self, perf: f64) -> Option<&OperatingPoint> {
        self.optimal.iter().find(|p| p.perf >= perf)
    }

    /// Adds another set's points (e.g. another index type's), keeping one front; the
    /// keys get `prefix` in front so the two can be told apart. Returns how many of the
    /// other's points are on the merged front.
    pub fn merge_with(&mut self, other: &OperatingPoints, prefix: &str) -> usize {
        let mut on_front = 0;
        for p in &other.all {
            on_front += usize::from(self.add(p.perf, p.t, format!("{prefix}{}", p.key), p.cno));
        }
        on_front
    }
}

/// The front as a table: quality, time, setting.
impl fmt::Display for OperatingPoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>8}  {:>10}  setting", "perf", "time (s)")?;
        for p in &self.optimal {
            writeln!(f, "{:>8.4}  {:>10.4}  {}", p.perf, p.t, p.key)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The front is exactly the set of measured points no other point dominates
        /// (at least as good and strictly faster, or better and as fast).
        #[test]
        fn front_is_the_undominated_set(pts in prop::collection::vec((0u8..6, 1u8..8), 1..40)) {
            let mut ops = OperatingPoints::default();
            for (i, &(p, t)) in pts.iter().enumerate() {
                ops.add(p as f64 / 5.0, t as f64, format!("{i}"), i);
            }
            let front = ops.optimal();
            for w in front.windows(2) {
                prop_assert!(w[0].perf < w[1].perf && w[0].t < w[1].t);
            }
            for (i, &(p, t)) in pts.iter().enumerate() {
                let (p, t) = (p as f64 / 5.0, t as f64);
                if p == 0.0 {
                    continue;
                }
                let dominated = pts.iter().enumerate().any(|(j, &(q, u))| {
                    let (q, u) = (q as f64 / 5.0, u as f64);
                    // Among equal points the first one measured is kept.
                    (q >= p && u < t) || (q > p && u <= t) || (q == p && u == t && j < i)
                });
                let on = front.iter().any(|o| o.key == format!("{i}"));
                prop_assert_eq!(on, !dominated, "point {} ({}, {})", i, p, t);
            }
            prop_assert_eq!(ops.all().len(), pts.len());
        }
    }

    #[test]
    fn merge_and_lookups() {
        let mut a = OperatingPoints::default();
        a.add(0.5, 1.0, "nprobe=1", 0);
        a.add(0.9, 3.0, "nprobe=4", 2);
        let mut b = OperatingPoints::default();
        b.add(0.95, 2.0, "efSearch=64", 4);
        b.add(0.0, 0.1, "efSearch=1", 0);
        assert_eq!(a.merge_with(&b, "HNSW32 "), 1);
        let keys: Vec<&str> = a.optimal().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["nprobe=1", "HNSW32 efSearch=64"]);
        assert_eq!(a.best_within(1.5).unwrap().key, "nprobe=1");
        assert!(a.best_within(0.5).is_none());
        assert_eq!(a.fastest_reaching(0.6).unwrap().key, "HNSW32 efSearch=64");
        assert!(a.to_string().contains("HNSW32 efSearch=64"));
    }
}
