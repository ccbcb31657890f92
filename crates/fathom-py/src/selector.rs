//! Id selectors and per-call search parameters (Faiss's `IDSelector*` and
//! `SearchParameters*`).

use std::sync::Arc;

use fathom::{IdSelector, IdSelectorBatch, IdSelectorRange};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::arrays::{self, ArrayLike};

/// A set of ids, for `remove_ids` and for restricting a search
/// (`SearchParameters(sel=…)`).
#[pyclass(subclass, frozen, module = "fathom", name = "IDSelector")]
pub struct IDSelector {
    pub(crate) selector: Arc<dyn IdSelector>,
}

#[pymethods]
impl IDSelector {
    /// Whether `id` is in the set.
    fn is_member(&self, id: i64) -> bool {
        self.selector.is_member(id)
    }
}

/// The ids `imin ≤ id < imax`.
#[pyclass(extends = IDSelector, frozen, module = "fathom", name = "IDSelectorRange")]
pub struct IDSelectorRangePy;

#[pymethods]
impl IDSelectorRangePy {
    /// The ids in `[imin, imax)`; `assume_sorted` is accepted for Faiss compatibility.
    #[new]
    #[pyo3(signature = (imin, imax, assume_sorted = false))]
    fn new(imin: i64, imax: i64, assume_sorted: bool) -> PyClassInitializer<Self> {
        let _ = assume_sorted;
        PyClassInitializer::from(IDSelector {
            selector: Arc::new(IdSelectorRange::new(imin, imax)),
        })
        .add_subclass(IDSelectorRangePy)
    }
}

/// The ids listed in an array.
#[pyclass(extends = IDSelector, frozen, module = "fathom", name = "IDSelectorBatch")]
pub struct IDSelectorBatchPy;

#[pymethods]
impl IDSelectorBatchPy {
    /// The ids in `ids` (a 1-D integer array). Faiss's `IDSelectorBatch(n, ids)` form is
    /// accepted too.
    #[new]
    #[pyo3(signature = (ids, ids_if_counted = None))]
    fn new(
        ids: &ArrayLike<'_>,
        ids_if_counted: Option<&ArrayLike<'_>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let list = match ids_if_counted {
            None => arrays::ids(ids, "IDSelectorBatch: ids")?,
            Some(list) => {
                let n: usize = ids.extract()?;
                let list = arrays::ids(list, "IDSelectorBatch: ids")?;
                if list.len() != n {
                    return Err(PyValueError::new_err(format!(
                        "IDSelectorBatch: n = {n} but {} ids given",
                        list.len()
                    )));
                }
                list
            }
        };
        Ok(PyClassInitializer::from(IDSelector {
            selector: Arc::new(IdSelectorBatch::new(list)),
        })
        .add_subclass(IDSelectorBatchPy))
    }
}

/// Per-call search parameters: `search(x, k, params=SearchParameters(sel=…))`.
#[pyclass(subclass, frozen, module = "fathom", name = "SearchParameters")]
pub struct SearchParameters {
    pub(crate) sel: Option<Py<IDSelector>>,
    pub(crate) nprobe: Option<usize>,
    pub(crate) ef_search: Option<usize>,
}

#[pymethods]
impl SearchParameters {
    /// Restricts the search to the ids `sel` selects.
    #[new]
    #[pyo3(signature = (sel = None))]
    fn new(sel: Option<Py<IDSelector>>) -> Self {
        SearchParameters {
            sel,
            nprobe: None,
            ef_search: None,
        }
    }
}

fn positive(name: &str, v: i64) -> PyResult<usize> {
    if v >= 1 {
        Ok(v as usize)
    } else {
        Err(PyValueError::new_err(format!(
            "{name} must be at least 1, got {v}"
        )))
    }
}

/// Search parameters for IVF indexes: `nprobe` for this call only (1 unless given, as Faiss).
#[pyclass(extends = SearchParameters, frozen, module = "fathom", name = "SearchParametersIVF")]
pub struct SearchParametersIVF;

#[pymethods]
impl SearchParametersIVF {
    /// Probe `nprobe` lists, restricted to `sel`'s ids.
    #[new]
    #[pyo3(signature = (sel = None, nprobe = 1))]
    fn new(sel: Option<Py<IDSelector>>, nprobe: i64) -> PyResult<PyClassInitializer<Self>> {
        Ok(PyClassInitializer::from(SearchParameters {
            sel,
            nprobe: Some(positive("nprobe", nprobe)?),
            ef_search: None,
        })
        .add_subclass(SearchParametersIVF))
    }
}

/// Search parameters for HNSW indexes: `efSearch` for this call only.
#[pyclass(extends = SearchParameters, frozen, module = "fathom", name = "SearchParametersHNSW")]
pub struct SearchParametersHNSW;

#[pymethods]
impl SearchParametersHNSW {
    /// Explore `efSearch` candidates (16 unless given, as Faiss), restricted to `sel`'s ids.
    #[new]
    #[pyo3(signature = (sel = None, efSearch = 16))]
    #[allow(non_snake_case)]
    fn new(sel: Option<Py<IDSelector>>, efSearch: i64) -> PyResult<PyClassInitializer<Self>> {
        Ok(PyClassInitializer::from(SearchParameters {
            sel,
            nprobe: None,
            ef_search: Some(positive("efSearch", efSearch)?),
        })
        .add_subclass(SearchParametersHNSW))
    }
}
