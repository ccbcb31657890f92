//! Id selectors and per-call search parameters (Faiss's `IDSelector*` and
//! `SearchParameters*`).

use std::sync::Arc;

use fathom::{
    IdSelector, IdSelectorAll, IdSelectorAnd, IdSelectorBatch, IdSelectorBitmap, IdSelectorNot,
    IdSelectorOr, IdSelectorRange, IdSelectorXor,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::arrays::{self, ArrayLike};
use crate::errors::OrRaise;

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
        combine(IdSelectorRange::new(imin, imax)).add_subclass(IDSelectorRangePy)
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
        let list = counted_ids(ids, ids_if_counted, "IDSelectorBatch")?;
        Ok(combine(IdSelectorBatch::new(list)).add_subclass(IDSelectorBatchPy))
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

/// Every id (Faiss's `IDSelectorAll`).
#[pyclass(extends = IDSelector, frozen, module = "fathom", name = "IDSelectorAll")]
pub struct IDSelectorAllPy;

#[pymethods]
impl IDSelectorAllPy {
    /// Every id is a member.
    #[new]
    fn new() -> PyClassInitializer<Self> {
        combine(IdSelectorAll).add_subclass(IDSelectorAllPy)
    }
}

/// The ids listed in an array (Faiss's `IDSelectorArray`: a scan of the list, where
/// `IDSelectorBatch` hashes it; here both look ids up in a set).
#[pyclass(extends = IDSelector, frozen, module = "fathom", name = "IDSelectorArray")]
pub struct IDSelectorArrayPy;

#[pymethods]
impl IDSelectorArrayPy {
    /// The ids in `ids` (a 1-D integer array); Faiss's `IDSelectorArray(n, ids)` form is
    /// accepted too.
    #[new]
    #[pyo3(signature = (ids, ids_if_counted = None))]
    fn new(
        ids: &ArrayLike<'_>,
        ids_if_counted: Option<&ArrayLike<'_>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let list = counted_ids(ids, ids_if_counted, "IDSelectorArray")?;
        Ok(combine(IdSelectorBatch::new(list)).add_subclass(IDSelectorArrayPy))
    }
}

/// A bitmap over ids `0..n`, least significant bit first (Faiss's `IDSelectorBitmap`,
/// e.g. from `np.packbits(mask, bitorder="little")`).
#[pyclass(extends = IDSelector, frozen, module = "fathom", name = "IDSelectorBitmap")]
pub struct IDSelectorBitmapPy;

#[pymethods]
impl IDSelectorBitmapPy {
    /// `IDSelectorBitmap(bitmap)` covers ids `0..8·len(bitmap)`; `IDSelectorBitmap(n,
    /// bitmap)` covers `0..n` (the bitmap must hold at least `ceil(n / 8)` bytes).
    #[new]
    #[pyo3(signature = (bitmap, bitmap_if_counted = None))]
    fn new(
        bitmap: &ArrayLike<'_>,
        bitmap_if_counted: Option<&ArrayLike<'_>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let (n, bits) = match bitmap_if_counted {
            None => {
                let bits = arrays::bytes(bitmap, "IDSelectorBitmap: bitmap")?;
                (bits.len() * 8, bits)
            }
            Some(bits) => {
                let n: i64 = bitmap.extract()?;
                let n = usize::try_from(n).map_err(|_| {
                    PyValueError::new_err(format!("IDSelectorBitmap: n must be ≥ 0, got {n}"))
                })?;
                (n, arrays::bytes(bits, "IDSelectorBitmap: bitmap")?)
            }
        };
        let sel = IdSelectorBitmap::new(n, bits).or_raise()?;
        Ok(combine(sel).add_subclass(IDSelectorBitmapPy))
    }
}

/// The ids a selector does not hold (Faiss's `IDSelectorNot`).
#[pyclass(extends = IDSelector, frozen, module = "fathom", name = "IDSelectorNot")]
pub struct IDSelectorNotPy;

#[pymethods]
impl IDSelectorNotPy {
    /// Every id not in `sel`.
    #[new]
    fn new(sel: PyRef<'_, IDSelector>) -> PyClassInitializer<Self> {
        combine(IdSelectorNot::new(sel.selector.clone())).add_subclass(IDSelectorNotPy)
    }
}

/// Ids in both selectors (Faiss's `IDSelectorAnd`).
#[pyclass(extends = IDSelector, frozen, module = "fathom", name = "IDSelectorAnd")]
pub struct IDSelectorAndPy;

#[pymethods]
impl IDSelectorAndPy {
    /// Combines selectors `lhs` and `rhs`.
    #[new]
    fn new(lhs: PyRef<'_, IDSelector>, rhs: PyRef<'_, IDSelector>) -> PyClassInitializer<Self> {
        combine(IdSelectorAnd::new(
            lhs.selector.clone(),
            rhs.selector.clone(),
        ))
        .add_subclass(IDSelectorAndPy)
    }
}

/// Ids in either selector (Faiss's `IDSelectorOr`).
#[pyclass(extends = IDSelector, frozen, module = "fathom", name = "IDSelectorOr")]
pub struct IDSelectorOrPy;

#[pymethods]
impl IDSelectorOrPy {
    /// Combines selectors `lhs` and `rhs`.
    #[new]
    fn new(lhs: PyRef<'_, IDSelector>, rhs: PyRef<'_, IDSelector>) -> PyClassInitializer<Self> {
        combine(IdSelectorOr::new(
            lhs.selector.clone(),
            rhs.selector.clone(),
        ))
        .add_subclass(IDSelectorOrPy)
    }
}

/// Ids in exactly one of two selectors (Faiss's `IDSelectorXOr`).
#[pyclass(extends = IDSelector, frozen, module = "fathom", name = "IDSelectorXOr")]
pub struct IDSelectorXOrPy;

#[pymethods]
impl IDSelectorXOrPy {
    /// Combines selectors `lhs` and `rhs`.
    #[new]
    fn new(lhs: PyRef<'_, IDSelector>, rhs: PyRef<'_, IDSelector>) -> PyClassInitializer<Self> {
        combine(IdSelectorXor::new(
            lhs.selector.clone(),
            rhs.selector.clone(),
        ))
        .add_subclass(IDSelectorXOrPy)
    }
}

/// The base of a selector class over `sel`.
fn combine(sel: impl IdSelector + 'static) -> PyClassInitializer<IDSelector> {
    PyClassInitializer::from(IDSelector {
        selector: Arc::new(sel),
    })
}

/// Ids from `ids`, or Faiss's counted form `(n, ids)` with `n` checked against the list.
fn counted_ids(
    ids: &ArrayLike<'_>,
    ids_if_counted: Option<&ArrayLike<'_>>,
    what: &str,
) -> PyResult<Vec<i64>> {
    match ids_if_counted {
        None => arrays::ids(ids, &format!("{what}: ids")),
        Some(list) => {
            let n: usize = ids.extract()?;
            let list = arrays::ids(list, &format!("{what}: ids"))?;
            if list.len() != n {
                return Err(PyValueError::new_err(format!(
                    "{what}: n = {n} but {} ids given",
                    list.len()
                )));
            }
            Ok(list)
        }
    }
}
