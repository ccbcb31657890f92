//! `ParameterSpace`: the run-time parameters of an index, set by name (Faiss's
//! `ParameterSpace`).

use std::sync::RwLock;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::{FathomError, OrRaise};
use crate::index::PyIndex;

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
            return index.get().write(py, move |i| {
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
            .write(py, move |i| space.set_index_parameters(i, cno).or_raise())
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
            .write(py, move |i| i.set_param(&name, value).or_raise())
    }
}
