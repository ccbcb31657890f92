//! What an index holds besides sub-indexes, as Faiss's attributes show it: `index.cp` (the
//! coarse k-means's parameters, read from and written to the index), `index.chain` (the
//! transforms of an `IndexPreTransform`), `index.pq` / `index.sq` (the codecs), and the
//! graph arrays behind `index.hnsw` (`levels`, `neighbors`, …). Sub-indexes themselves
//! (`index.quantizer`, `index.index`, …) are views made by `PyIndex::part`.
//!
//! `cp` writes through to its index; `chain`, `pq` and `sq` are copies taken when read,
//! as changing a trained codec under its codes would make them meaningless.

use fathom::hnsw::Hnsw;
use fathom::ivf::IvfCodecView;
use fathom::quant::{ProductQuantizer as Pq, ScalarQuantizer as Sq};
use fathom::{Index, IndexView};
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;

use crate::classes::{get_param, set_param};
use crate::errors::{FathomError, OrRaise};
use crate::index::PyIndex;

/// The fields of `ClusteringParameters` an IVF index keeps, as `set_param` names them
/// (`cp.niter`, …), with whether each is a flag.
pub(crate) const CP_FIELDS: &[(&str, bool)] = &[
    ("niter", false),
    ("nredo", false),
    ("seed", false),
    ("min_points_per_centroid", false),
    ("max_points_per_centroid", false),
    ("spherical", true),
    ("int_centroids", true),
    ("frozen_centroids", true),
    ("update_index", true),
];

/// An IVF index's `ClusteringParameters` (`index.cp`): the fields Faiss's has, read from
/// and written to the index, used by its next `train`.
#[pyclass(frozen, module = "fathom", name = "IVFClusteringParameters")]
pub struct PyIvfClusteringParameters {
    pub(crate) owner: Py<PyIndex>,
}

impl PyIvfClusteringParameters {
    fn get(&self, field: &str) -> PyResult<f64> {
        get_param(self.owner.get(), &format!("cp.{field}"))
    }
    fn set(&self, py: Python<'_>, field: &str, value: f64) -> PyResult<()> {
        set_param(py, self.owner.get(), &format!("cp.{field}"), value)
    }
    fn count(field: &str, value: i64) -> PyResult<f64> {
        if value < 0 {
            return Err(PyValueError::new_err(format!(
                "cp.{field} must be ≥ 0, got {value}"
            )));
        }
        Ok(value as f64)
    }
}

/// Copies the fields of `cp` (a `ClusteringParameters` or another index's `cp`) into
/// the index `owner`.
pub(crate) fn assign_cp(py: Python<'_>, owner: &PyIndex, cp: &Bound<'_, PyAny>) -> PyResult<()> {
    for (field, flag) in CP_FIELDS {
        let v = cp.getattr(*field)?;
        let value = if *flag {
            f64::from(u8::from(v.extract::<bool>()?))
        } else {
            v.extract::<i64>()? as f64
        };
        set_param(py, owner, &format!("cp.{field}"), value)?;
    }
    Ok(())
}

#[pymethods]
impl PyIvfClusteringParameters {
    /// Iterations of one k-means run.
    #[getter]
    fn niter(&self) -> PyResult<i64> {
        Ok(self.get("niter")? as i64)
    }
    #[setter]
    fn set_niter(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        self.set(py, "niter", Self::count("niter", value)?)
    }
    /// Runs with different seeds; the best objective is kept.
    #[getter]
    fn nredo(&self) -> PyResult<i64> {
        Ok(self.get("nredo")? as i64)
    }
    #[setter]
    fn set_nredo(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        self.set(py, "nredo", Self::count("nredo", value)?)
    }
    /// Seed of the subsampling and the initial centroids.
    #[getter]
    fn seed(&self) -> PyResult<i64> {
        Ok(self.get("seed")? as i64)
    }
    #[setter]
    fn set_seed(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        self.set(py, "seed", value as f64)
    }
    /// Below this many points per centroid, a warning.
    #[getter]
    fn min_points_per_centroid(&self) -> PyResult<i64> {
        Ok(self.get("min_points_per_centroid")? as i64)
    }
    #[setter]
    fn set_min_points_per_centroid(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        let v = Self::count("min_points_per_centroid", value)?;
        self.set(py, "min_points_per_centroid", v)
    }
    /// Above this many points per centroid, the training set is subsampled.
    #[getter]
    fn max_points_per_centroid(&self) -> PyResult<i64> {
        Ok(self.get("max_points_per_centroid")? as i64)
    }
    #[setter]
    fn set_max_points_per_centroid(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        let v = Self::count("max_points_per_centroid", value)?;
        self.set(py, "max_points_per_centroid", v)
    }
    /// Normalise the centroids after each iteration.
    #[getter]
    fn spherical(&self) -> PyResult<bool> {
        Ok(self.get("spherical")? != 0.0)
    }
    #[setter]
    fn set_spherical(&self, py: Python<'_>, value: bool) -> PyResult<()> {
        self.set(py, "spherical", f64::from(u8::from(value)))
    }
    /// Round the centroids to integers after each iteration.
    #[getter]
    fn int_centroids(&self) -> PyResult<bool> {
        Ok(self.get("int_centroids")? != 0.0)
    }
    #[setter]
    fn set_int_centroids(&self, py: Python<'_>, value: bool) -> PyResult<()> {
        self.set(py, "int_centroids", f64::from(u8::from(value)))
    }
    /// Keep the initial centroids as given.
    #[getter]
    fn frozen_centroids(&self) -> PyResult<bool> {
        Ok(self.get("frozen_centroids")? != 0.0)
    }
    #[setter]
    fn set_frozen_centroids(&self, py: Python<'_>, value: bool) -> PyResult<()> {
        self.set(py, "frozen_centroids", f64::from(u8::from(value)))
    }
    /// Re-add the centroids to the assignment index after each iteration.
    #[getter]
    fn update_index(&self) -> PyResult<bool> {
        Ok(self.get("update_index")? != 0.0)
    }
    #[setter]
    fn set_update_index(&self, py: Python<'_>, value: bool) -> PyResult<()> {
        self.set(py, "update_index", f64::from(u8::from(value)))
    }
}

/// A sequence of objects as Faiss's Python shows a C++ vector (`v.at(i)`, `v.size()`),
/// also a Python sequence (`len(v)`, `v[i]`, iteration): `index.chain`,
/// `OperatingPoints.optimal_pts`, ….
#[pyclass(frozen, sequence, module = "fathom", name = "ObjectVector")]
pub struct PyObjectVector {
    items: Vec<Py<PyAny>>,
}

impl PyObjectVector {
    pub(crate) fn new(items: Vec<Py<PyAny>>) -> Self {
        PyObjectVector { items }
    }

    /// The transforms of the `IndexPreTransform` `index`, first applied first (copies).
    pub(crate) fn chain_of(py: Python<'_>, index: &PyIndex) -> PyResult<Self> {
        let copies = index.peek(|i| match i.view() {
            IndexView::PreTransform { transforms, .. } => transforms
                .iter()
                .map(|t| fathom::io::faiss::clone_transform(&**t))
                .collect::<fathom::Result<Vec<_>>>()
                .map(Some),
            _ => Ok(None),
        })?;
        let copies = copies
            .or_raise()?
            .ok_or_else(|| FathomError::new_err("not an IndexPreTransform"))?;
        let items = copies
            .into_iter()
            .map(|t| crate::transforms::wrap_transform(py, t))
            .collect::<PyResult<_>>()?;
        Ok(PyObjectVector { items })
    }
}

#[pymethods]
impl PyObjectVector {
    /// Element `i`.
    fn at(&self, py: Python<'_>, i: i64) -> PyResult<Py<PyAny>> {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.items.get(i))
            .map(|t| t.clone_ref(py))
            .ok_or_else(|| {
                PyIndexError::new_err(format!("index {i} is outside 0..{}", self.items.len()))
            })
    }
    /// The number of elements.
    fn size(&self) -> usize {
        self.items.len()
    }
    fn __len__(&self) -> usize {
        self.items.len()
    }
    fn __getitem__(&self, py: Python<'_>, i: i64) -> PyResult<Py<PyAny>> {
        let n = self.items.len() as i64;
        self.at(py, if i < 0 { i + n } else { i })
    }
}

/// The product quantizer of a PQ-coded index (flat, IVF, fast-scan, HNSW storage), a
/// copy.
pub(crate) fn pq_of(i: &dyn Index) -> Option<Pq> {
    match i.view() {
        IndexView::Pq(p) => Some(p.pq().clone()),
        IndexView::PqFastScan(p) => Some(p.pq().clone()),
        IndexView::Ivf(ivf) => match ivf.codec() {
            IvfCodecView::Pq(c) => Some(c.pq().clone()),
            IvfCodecView::PqFastScan(c) => Some(c.pq().clone()),
            _ => None,
        },
        IndexView::IvfPqr(r) => Some(r.ivf().codec().pq().clone()),
        IndexView::Hnsw { storage, .. } => pq_of(storage),
        _ => None,
    }
}

/// The scalar quantizer of an SQ-coded index (flat, IVF, HNSW storage), a copy.
pub(crate) fn sq_of(i: &dyn Index) -> Option<Sq> {
    match i.view() {
        IndexView::ScalarQuantizer(s) => Some(s.sq().clone()),
        IndexView::Ivf(ivf) => match ivf.codec() {
            IvfCodecView::ScalarQuantizer(c) => Some(c.sq().clone()),
            _ => None,
        },
        IndexView::Hnsw { storage, .. } => sq_of(storage),
        _ => None,
    }
}

/// Runs `f` on the graph of the HNSW index `owner`.
pub(crate) fn with_graph<T>(owner: &PyIndex, f: impl FnOnce(&Hnsw) -> T) -> PyResult<T> {
    owner
        .peek(|i| match i.view() {
            IndexView::Hnsw { graph, .. } => Some(f(graph)),
            _ => None,
        })?
        .ok_or_else(|| FathomError::new_err("not an HNSW index"))
}
