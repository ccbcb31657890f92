//! `ParameterSpace`: the run-time parameters of an index, set by name and explored
//! against ground truth (Faiss's `ParameterSpace`, `OperatingPoints`,
//! `OneRecallAtRCriterion`, `IntersectionCriterion`).

use std::sync::RwLock;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::arrays::{self, ArrayLike};
use crate::errors::{FathomError, OrRaise};
use crate::index::PyIndex;
use crate::parts::PyObjectVector;

/// One parameter and the values worth trying (Faiss's `ParameterRange`).
#[pyclass(frozen, module = "fathom", name = "ParameterRange")]
pub struct ParameterRange {
    /// The parameter's name (`nprobe`, `efSearch`, `quantizer_efSearch`, …).
    #[pyo3(get)]
    name: String,
    /// Its values, cheapest first.
    #[pyo3(get)]
    values: Vec<f64>,
}

/// The run-time parameters of an index and their combinations (Faiss's
/// `ParameterSpace`): `initialize(index)`, `n_combinations()`, `combination_name(i)`,
/// `set_index_parameters(index, "nprobe=16,efSearch=64")` or by combination number.
#[pyclass(frozen, module = "fathom", name = "ParameterSpace")]
pub struct ParameterSpace {
    space: RwLock<Option<fathom::autotune::ParameterSpace>>,
}

fn poisoned() -> PyErr {
    FathomError::new_err("an earlier call panicked inside this ParameterSpace")
}

impl ParameterSpace {
    fn with<T>(
        &self,
        f: impl FnOnce(&fathom::autotune::ParameterSpace) -> PyResult<T>,
    ) -> PyResult<T> {
        let guard = self.space.read().map_err(|_| poisoned())?;
        match &*guard {
            Some(s) => f(s),
            None => Err(FathomError::new_err(
                "ParameterSpace: call initialize(index) first",
            )),
        }
    }
}

impl ParameterSpace {
    fn with_mut(&self, f: impl FnOnce(&mut fathom::autotune::ParameterSpace)) -> PyResult<()> {
        let mut guard = self.space.write().map_err(|_| poisoned())?;
        match &mut *guard {
            Some(s) => {
                f(s);
                Ok(())
            }
            None => Err(FathomError::new_err(
                "ParameterSpace: call initialize(index) first",
            )),
        }
    }
}

#[pymethods]
impl ParameterSpace {
    /// An empty space; `initialize(index)` fills it.
    #[new]
    fn new() -> Self {
        ParameterSpace {
            space: RwLock::new(None),
        }
    }

    /// Collects the parameters of `index` (through its wrappers) and their ranges.
    fn initialize(&self, index: &Bound<'_, PyIndex>) -> PyResult<()> {
        let space = index.get().peek(fathom::autotune::ParameterSpace::new)?;
        *self.space.write().map_err(|_| poisoned())? = Some(space);
        Ok(())
    }

    /// The number of combinations of parameter values.
    fn n_combinations(&self) -> PyResult<usize> {
        self.with(|s| Ok(s.n_combinations()))
    }

    /// Combination `cno` written as `"nprobe=16,quantizer_efSearch=32"`.
    fn combination_name(&self, cno: usize) -> PyResult<String> {
        self.with(|s| {
            if cno >= s.n_combinations() {
                return Err(PyValueError::new_err(format!(
                    "combination {cno} is out of range (there are {})",
                    s.n_combinations()
                )));
            }
            Ok(s.combination_name(cno))
        })
    }

    /// The parameters and their values.
    #[getter]
    fn parameter_ranges(&self) -> PyResult<Vec<ParameterRange>> {
        self.with(|s| {
            Ok(s.ranges
                .iter()
                .map(|r| ParameterRange {
                    name: r.name.clone(),
                    values: r.values.clone(),
                })
                .collect())
        })
    }

    /// Applies `params` to `index`: a string `"nprobe=16,efSearch=64"`, or a combination
    /// number of this (initialised) space.
    fn set_index_parameters(
        &self,
        py: Python<'_>,
        index: &Bound<'_, PyIndex>,
        params: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if let Ok(settings) = params.extract::<String>() {
            return index.get().tune(py, move |i| {
                fathom::autotune::set_index_parameters(i, &settings).or_raise()
            });
        }
        let cno: usize = params.extract().map_err(|_| {
            PyValueError::new_err(
                "set_index_parameters takes a string like \"nprobe=16\" or a combination number",
            )
        })?;
        let space = self.with(|s| Ok(s.clone()))?;
        if cno >= space.n_combinations() {
            return Err(PyValueError::new_err(format!(
                "combination {cno} is out of range (there are {})",
                space.n_combinations()
            )));
        }
        index
            .get()
            .tune(py, move |i| space.set_index_parameters(i, cno).or_raise())
    }

    /// How many combinations `explore` measures at most (0: all of them; Faiss's default
    /// is 500).
    #[getter]
    fn n_experiments(&self) -> PyResult<usize> {
        self.with(|s| Ok(s.n_experiments))
    }
    #[setter]
    fn set_n_experiments(&self, value: usize) -> PyResult<()> {
        self.with_mut(|s| s.n_experiments = value)
    }
    /// The shortest time a measurement runs, in seconds; a faster search is repeated until
    /// it lasts this long (0: one run).
    #[getter]
    fn min_test_duration(&self) -> PyResult<f64> {
        self.with(|s| Ok(s.min_test_duration.as_secs_f64()))
    }
    #[setter]
    fn set_min_test_duration(&self, value: f64) -> PyResult<()> {
        let d = std::time::Duration::try_from_secs_f64(value).map_err(|_| {
            PyValueError::new_err(format!("min_test_duration is seconds ≥ 0, got {value}"))
        })?;
        self.with_mut(|s| s.min_test_duration = d)
    }

    /// Measures the combinations on the queries `xq` against `crit` (whose ground truth is
    /// set) and returns the `OperatingPoints`; the index keeps the last setting tried.
    fn explore(
        &self,
        py: Python<'_>,
        index: &Bound<'_, PyIndex>,
        xq: &ArrayLike<'_>,
        crit: &Bound<'_, AutoTuneCriterion>,
    ) -> PyResult<OperatingPoints> {
        let space = self.with(|s| Ok(s.clone()))?;
        let d = index.get().peek(|i| i.dim())?;
        let xq = arrays::matrix(xq, "explore: xq", Some(d))?;
        let criterion = crit.get().criterion()?;
        let ops = index.get().tune(py, move |i| {
            space
                .explore(i, &xq.data, &criterion, &mut |_| {})
                .or_raise()
        })?;
        Ok(OperatingPoints {
            ops: RwLock::new(ops),
        })
    }

    /// Sets one parameter of `index` (`"nprobe"`, `"efSearch"`, `"k_factor_rf"`, …).
    fn set_index_parameter(
        &self,
        py: Python<'_>,
        index: &Bound<'_, PyIndex>,
        name: String,
        value: f64,
    ) -> PyResult<()> {
        index
            .get()
            .tune(py, move |i| i.set_param(&name, value).or_raise())
    }
}

/// Which quality a criterion measures.
#[derive(Clone, Copy)]
enum CriterionKind {
    OneRecall,
    Intersection,
}

/// A search-quality measure against ground truth (Faiss's `AutoTuneCriterion`): the base
/// of `OneRecallAtRCriterion` and `IntersectionCriterion`. `set_groundtruth(D, I)` gives
/// it the exact neighbours, `evaluate(D, I)` scores a search's results.
#[pyclass(subclass, frozen, module = "fathom", name = "AutoTuneCriterion")]
pub struct AutoTuneCriterion {
    /// Number of queries.
    #[pyo3(get)]
    nq: usize,
    /// Results requested per query (`R`).
    #[pyo3(get)]
    nnn: usize,
    kind: CriterionKind,
    gt: RwLock<Option<fathom::autotune::Criterion>>,
}

impl AutoTuneCriterion {
    fn new(nq: i64, r: i64, kind: CriterionKind) -> PyResult<Self> {
        let nq = crate::classes::count("nq", nq)?;
        let nnn = crate::classes::count("R", r)?;
        if nq == 0 || nnn == 0 {
            return Err(PyValueError::new_err(format!(
                "a criterion needs nq ≥ 1 and R ≥ 1, got nq = {nq}, R = {nnn}"
            )));
        }
        Ok(AutoTuneCriterion {
            nq,
            nnn,
            kind,
            gt: RwLock::new(None),
        })
    }

    fn criterion(&self) -> PyResult<fathom::autotune::Criterion> {
        self.gt
            .read()
            .map_err(|_| poisoned())?
            .clone()
            .ok_or_else(|| {
                FathomError::new_err("call set_groundtruth(D, I) on the criterion first")
            })
    }
}

#[pymethods]
impl AutoTuneCriterion {
    /// The exact neighbours, `I` of shape `(nq, gt_nnn)` nearest first (`D` is accepted
    /// and unused, as in Faiss; pass `None`).
    #[pyo3(signature = (D, I))]
    #[allow(non_snake_case)]
    fn set_groundtruth(&self, D: &Bound<'_, PyAny>, I: &Bound<'_, PyAny>) -> PyResult<()> {
        let _ = D;
        let gt = arrays::ids_flat(I, "set_groundtruth: I")?;
        if gt.len() % self.nq != 0 || gt.is_empty() {
            return Err(PyValueError::new_err(format!(
                "set_groundtruth: I has {} ids, not a multiple of nq = {}",
                gt.len(),
                self.nq
            )));
        }
        let gt_k = gt.len() / self.nq;
        let c = match self.kind {
            CriterionKind::OneRecall => {
                fathom::autotune::Criterion::one_recall_at(self.nnn, &gt, gt_k)
            }
            CriterionKind::Intersection => {
                fathom::autotune::Criterion::r_recall_at(self.nnn, &gt, gt_k)
            }
        }
        .or_raise()?;
        *self.gt.write().map_err(|_| poisoned())? = Some(c);
        Ok(())
    }

    /// The quality of results `I` (shape `(nq, ≥ R)`), in `[0, 1]`.
    #[pyo3(signature = (D, I))]
    #[allow(non_snake_case)]
    fn evaluate(&self, D: &Bound<'_, PyAny>, I: &Bound<'_, PyAny>) -> PyResult<f64> {
        let _ = D;
        let c = self.criterion()?;
        let labels = arrays::ids_flat(I, "evaluate: I")?;
        if labels.len() % self.nq != 0 {
            return Err(PyValueError::new_err(format!(
                "evaluate: I has {} ids, not a multiple of nq = {}",
                labels.len(),
                self.nq
            )));
        }
        let k = labels.len() / self.nq;
        if k < self.nnn {
            return Err(PyValueError::new_err(format!(
                "evaluate: I has {k} results per query; the criterion needs R = {}",
                self.nnn
            )));
        }
        // The criterion reads the first R of each row.
        let first: Vec<i64> = labels
            .chunks(k)
            .flat_map(|row| row[..self.nnn].iter().copied())
            .collect();
        c.evaluate(&first).or_raise()
    }
}

/// 1-recall@R: how often the true nearest neighbour is among the first `R` results
/// (Faiss's `OneRecallAtRCriterion(nq, R)`).
#[pyclass(extends = AutoTuneCriterion, frozen, module = "fathom", name = "OneRecallAtRCriterion")]
pub struct OneRecallAtRCriterion;

#[pymethods]
impl OneRecallAtRCriterion {
    /// For `nq` queries and `R` results each.
    #[new]
    #[allow(non_snake_case)]
    fn new(nq: i64, R: i64) -> PyResult<PyClassInitializer<Self>> {
        let base = AutoTuneCriterion::new(nq, R, CriterionKind::OneRecall)?;
        Ok(PyClassInitializer::from(base).add_subclass(OneRecallAtRCriterion))
    }
}

/// R-recall@R: the fraction of the true `R` nearest among the first `R` results
/// (Faiss's `IntersectionCriterion(nq, R)`).
#[pyclass(extends = AutoTuneCriterion, frozen, module = "fathom", name = "IntersectionCriterion")]
pub struct IntersectionCriterion;

#[pymethods]
impl IntersectionCriterion {
    /// For `nq` queries and `R` results each.
    #[new]
    #[allow(non_snake_case)]
    fn new(nq: i64, R: i64) -> PyResult<PyClassInitializer<Self>> {
        let base = AutoTuneCriterion::new(nq, R, CriterionKind::Intersection)?;
        Ok(PyClassInitializer::from(base).add_subclass(IntersectionCriterion))
    }
}

/// One measured setting (Faiss's `OperatingPoint`).
#[pyclass(frozen, module = "fathom", name = "OperatingPoint")]
pub struct OperatingPoint {
    /// The criterion's value.
    #[pyo3(get)]
    perf: f64,
    /// Seconds to search the query set.
    #[pyo3(get)]
    t: f64,
    /// The setting, as `set_index_parameters` reads it.
    #[pyo3(get)]
    key: String,
    /// Its combination number.
    #[pyo3(get)]
    cno: usize,
}

/// Measured (quality, time) points and their Pareto front (Faiss's `OperatingPoints`):
/// `explore` returns one; `optimal_pts` / `all_pts`, `display()`, `t_for_perf`.
#[pyclass(frozen, module = "fathom", name = "OperatingPoints")]
pub struct OperatingPoints {
    ops: RwLock<fathom::autotune::OperatingPoints>,
}

fn points(py: Python<'_>, pts: &[fathom::autotune::OperatingPoint]) -> PyResult<PyObjectVector> {
    let items = pts
        .iter()
        .map(|p| {
            Py::new(
                py,
                OperatingPoint {
                    perf: p.perf,
                    t: p.t,
                    key: p.key.clone(),
                    cno: p.cno,
                },
            )
            .map(Py::into_any)
        })
        .collect::<PyResult<_>>()?;
    Ok(PyObjectVector::new(items))
}

#[pymethods]
impl OperatingPoints {
    /// No points yet.
    #[new]
    fn new() -> Self {
        OperatingPoints {
            ops: RwLock::new(fathom::autotune::OperatingPoints::default()),
        }
    }
    /// Records a point; returns whether it is on the Pareto front.
    #[pyo3(signature = (perf, t, key, cno = 0))]
    fn add(&self, perf: f64, t: f64, key: String, cno: usize) -> PyResult<bool> {
        Ok(self
            .ops
            .write()
            .map_err(|_| poisoned())?
            .add(perf, t, key, cno))
    }
    /// The Pareto-optimal points, by increasing quality and time.
    #[getter]
    fn optimal_pts(&self, py: Python<'_>) -> PyResult<PyObjectVector> {
        points(py, self.ops.read().map_err(|_| poisoned())?.optimal())
    }
    /// Every point measured, in order.
    #[getter]
    fn all_pts(&self, py: Python<'_>) -> PyResult<PyObjectVector> {
        points(py, self.ops.read().map_err(|_| poisoned())?.all())
    }
    /// The least time that reaches quality `perf` (infinite when nothing does).
    fn t_for_perf(&self, perf: f64) -> PyResult<f64> {
        Ok(self.ops.read().map_err(|_| poisoned())?.t_for_perf(perf))
    }
    /// Adds another set's points with `prefix` in front of their keys; returns how many
    /// are on the merged front.
    #[pyo3(signature = (other, prefix = ""))]
    fn merge_with(&self, other: &Bound<'_, OperatingPoints>, prefix: &str) -> PyResult<usize> {
        let theirs = other.get().ops.read().map_err(|_| poisoned())?.clone();
        Ok(self
            .ops
            .write()
            .map_err(|_| poisoned())?
            .merge_with(&theirs, prefix))
    }
    /// Prints the optimal points (or, with `only_optimal=False`, every point).
    #[pyo3(signature = (only_optimal = true))]
    fn display(&self, py: Python<'_>, only_optimal: bool) -> PyResult<()> {
        let ops = self.ops.read().map_err(|_| poisoned())?;
        let text = if only_optimal {
            ops.to_string()
        } else {
            let mut t = format!("{:>8}  {:>10}  setting\n", "perf", "time (s)");
            for p in ops.all() {
                t += &format!("{:>8.4}  {:>10.4}  {}\n", p.perf, p.t, p.key);
            }
            t
        };
        py.import("builtins")?
            .call_method1("print", (text.trim_end(),))?;
        Ok(())
    }
}
