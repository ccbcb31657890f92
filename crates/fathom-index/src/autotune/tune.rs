//! Choosing a setting: explore, then pick the point of the Pareto front that meets a goal.

use std::time::Duration;

use fathom_core::{Error, Result};

use super::{Criterion, ExploreEvent, OperatingPoint, OperatingPoints, ParameterSpace};
use crate::Index;

/// What a tuned index should achieve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TuneGoal {
    /// The fastest setting whose criterion value is at least this (e.g. 0.95 recall).
    MinPerf(f64),
    /// The most accurate setting searching a query in at most this time on average
    /// (the whole query set searched as one batch, divided by the number of queries).
    MaxTimePerQuery(Duration),
}

/// The result of [`tune`]: every measured point, the front, and the setting chosen.
#[derive(Debug, Clone)]
pub struct TuneReport {
    /// The measured points and their Pareto front.
    pub points: OperatingPoints,
    /// The setting now applied to the index: the one meeting the goal or, when none
    /// does, the closest (the most accurate for a quality goal, the fastest for a time
    /// goal).
    pub chosen: Option<OperatingPoint>,
    /// Whether `chosen` meets the goal.
    pub goal_met: bool,
    /// Queries each measurement searched.
    pub nq: usize,
}

/// Explores `space` on `index` with `queries` and `criterion`, then applies the setting
/// of the Pareto front that best meets `goal` (Faiss's autotune, as its
/// `bench_polysemous_sift1m` demo does by hand).
///
/// ```
/// use fathom_index::autotune::{tune, Criterion, ParameterSpace, TuneGoal};
/// use fathom_index::{index_factory, Index, IndexFlat, MetricType};
/// let d = 8;
/// let x: Vec<f32> = (0..4000 * d).map(|i| ((i * 7919) % 1009) as f32 / 1009.0).collect();
/// let queries = &x[..100 * d];
/// let gt = IndexFlat::new_l2(d).and_then(|mut f| { f.add(&x)?; f.search(queries, 1) }).unwrap();
/// let crit = Criterion::one_recall_at(1, &gt.labels, 1).unwrap();
/// let mut index = index_factory(d, "IVF64,Flat", MetricType::L2).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// let space = ParameterSpace::new(&*index);
/// let report = tune(&mut *index, queries, &crit, &space, TuneGoal::MinPerf(0.9), &mut |_| {}).unwrap();
/// assert!(report.goal_met);
/// println!("{}", report.points); // the Pareto table
/// ```
pub fn tune(
    index: &mut dyn Index,
    queries: &[f32],
    criterion: &Criterion,
    space: &ParameterSpace,
    goal: TuneGoal,
    progress: &mut dyn FnMut(&ExploreEvent),
) -> Result<TuneReport> {
    match goal {
        TuneGoal::MinPerf(p) if !(0.0..=1.0).contains(&p) => {
            return Err(Error::invalid(format!(
                "a quality goal lies in [0, 1], got {p}"
            )));
        }
        TuneGoal::MaxTimePerQuery(t) if t.is_zero() => {
            return Err(Error::invalid("a time goal must be positive"));
        }
        _ => {}
    }
    let points = space.explore(index, queries, criterion, progress)?;
    let nq = criterion.nq();
    let front = points.optimal();
    let (chosen, goal_met) = match goal {
        TuneGoal::MinPerf(p) => match points.fastest_reaching(p) {
            Some(op) => (Some(op), true),
            None => (front.last(), false),
        },
        TuneGoal::MaxTimePerQuery(t) => match points.best_within(t.as_secs_f64() * nq as f64) {
            Some(op) => (Some(op), true),
            None => (front.first(), false),
        },
    };
    let chosen = chosen.cloned();
    if let Some(op) = &chosen {
        space.set_index_parameters(index, op.cno)?;
    }
    Ok(TuneReport {
        points,
        chosen,
        goal_met,
        nq,
    })
}
