//! `VectorStore`: fathom's memory-mapped vector file (`fathom::store`) on numpy arrays —
//! append, delete by id, compact, exhaustive cosine / inner-product / L2 search, with
//! every acknowledged write durable. Not a Faiss class: the store is fathom's own, for
//! "top-k most similar" without training an index.
//!
//! Concurrency: the store locks itself (many searches or one writer); the Python object
//! adds a lock only around `close`, and every call runs with the GIL released.

use std::path::PathBuf;
use std::sync::RwLock;

use fathom::store::{Hit, SearchOptions, Similarity, StoreOptions, VectorStore as Store};
use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays::{self, ArrayLike, F32Matrix, F32Vector, I64Matrix, I64Vector, matrix_out};
use crate::errors::{FathomError, OrRaise};
use crate::threads::{compute, with_read};

/// A persistent file of vectors searched exhaustively (fathom's own store, not a Faiss
/// class): `VectorStore.create(path, dim)` or `VectorStore.open(path)`, then `add`,
/// `delete`, `compact`, `search` / `cosine_search` / `search_in_ids`, `get`, `stat`.
/// Ids are assigned in order from 0 and stay until `compact` renumbers them.
///
/// ```python
/// store = fathom.VectorStore.create("vectors.store", 128)
/// ids = store.add(xb)                       # ids of the new rows
/// store.delete(ids[:10])
/// scores, found = store.cosine_search(xq[0], 5)
/// D, I = store.search(xq, 5, metric="l2")   # a batch, padded with id -1
/// ```
#[pyclass(frozen, module = "fathom", name = "VectorStore")]
pub struct PyVectorStore {
    store: RwLock<Option<Store>>,
}

fn closed() -> PyErr {
    FathomError::new_err("this VectorStore is closed")
}

fn similarity(metric: &str) -> PyResult<Similarity> {
    Similarity::parse(metric).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn id_list(x: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u64>> {
    arrays::ids_flat(x, what)?
        .into_iter()
        .map(|id| {
            u64::try_from(id)
                .map_err(|_| PyValueError::new_err(format!("{what}: ids are ≥ 0, got {id}")))
        })
        .collect()
}

/// `x` as one vector of dimension `d` (a 1-D array, or a single-row matrix).
fn one_vector(x: &Bound<'_, PyAny>, what: &str, d: usize) -> PyResult<Vec<f32>> {
    let arr = x.py().import("numpy")?.call_method1("asarray", (x,))?;
    let arr = if arr.getattr("ndim")?.extract::<usize>()? == 1 {
        arr.call_method1("reshape", (1, -1))?
    } else {
        arr
    };
    let m = arrays::matrix(&arr, what, Some(d))?;
    if m.n != 1 {
        return Err(PyValueError::new_err(format!(
            "{what} is one vector of dimension {d}, got {} rows",
            m.n
        )));
    }
    Ok(m.data)
}

fn hits_out<'py>(py: Python<'py>, hits: Vec<Hit>) -> (F32Vector<'py>, I64Vector<'py>) {
    let scores = hits.iter().map(|h| h.score).collect();
    let ids = hits.iter().map(|h| h.id as i64).collect();
    (PyArray1::from_vec(py, scores), PyArray1::from_vec(py, ids))
}

impl PyVectorStore {
    fn wrap(store: Store) -> Self {
        PyVectorStore {
            store: RwLock::new(Some(store)),
        }
    }

    /// Runs `f` on the open store without the GIL.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Store) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        with_read(py, &self.store, |s| match s {
            Some(store) => f(store),
            None => Err(closed()),
        })
    }

    fn dim(&self) -> PyResult<usize> {
        let guard = self.store.read().map_err(|_| crate::slot::poisoned())?;
        guard.as_ref().map(Store::dim).ok_or_else(closed)
    }
}

#[pymethods]
impl PyVectorStore {
    /// A new, empty store of `dim`-dimensional vectors at `path` (an existing file there is
    /// an error). With `sync=False` writes skip the fsync: faster, not crash-safe.
    #[staticmethod]
    #[pyo3(signature = (path, dim, sync = true))]
    fn create(py: Python<'_>, path: PathBuf, dim: usize, sync: bool) -> PyResult<Self> {
        let opts = StoreOptions::default().sync(sync);
        let store = compute(py, || Store::create_with(&path, dim, opts)).or_raise()?;
        Ok(Self::wrap(store))
    }

    /// Opens the store at `path`; `read_only=True` takes a shared lock, so several
    /// processes can read while none writes.
    #[staticmethod]
    #[pyo3(signature = (path, read_only = false))]
    fn open(py: Python<'_>, path: PathBuf, read_only: bool) -> PyResult<Self> {
        let opts = StoreOptions::default().read_only(read_only);
        let store = compute(py, || Store::open_with(&path, opts)).or_raise()?;
        Ok(Self::wrap(store))
    }

    /// Appends the rows of `x` (shape `(n, dim)`) durably; returns their ids.
    fn add<'py>(&self, py: Python<'py>, x: &ArrayLike<'py>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let x = arrays::matrix(x, "VectorStore.add: x", Some(self.dim()?))?;
        let ids = self.with(py, |s| s.add_vectors(&x.data).or_raise())?;
        Ok(PyArray1::from_vec(
            py,
            ids.into_iter().map(|i| i as i64).collect(),
        ))
    }

    /// Marks the vectors `ids` deleted (durably); returns how many were live.
    fn delete(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<usize> {
        let ids = id_list(ids, "VectorStore.delete: ids")?;
        self.with(py, |s| s.mark_deleted(&ids).or_raise())
    }

    /// Rewrites the file without the deleted vectors; returns `(old id, new id)` pairs of
    /// the live ones, shape `(live, 2)` (ids keep their order).
    fn compact<'py>(&self, py: Python<'py>) -> PyResult<I64Matrix<'py>> {
        let mapping = self.with(py, |s| s.compact().or_raise())?;
        let n = mapping.len();
        let flat = mapping
            .into_iter()
            .flat_map(|(a, b)| [a as i64, b as i64])
            .collect();
        matrix_out(py, flat, n, 2)
    }

    /// The `k` best live vectors for each row of `x`: `(D, I)`, shape `(n, k)`, best
    /// first; `metric` is `"cosine"`, `"ip"` or `"l2"` (squared distances). Missing
    /// results have id −1 and score −FLT_MAX (similarities) or FLT_MAX (L2), as Faiss
    /// pads them. With `threshold`, only scores at least it (at most it for L2).
    #[pyo3(signature = (x, k, metric = "cosine", threshold = None))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        x: &ArrayLike<'py>,
        k: i64,
        metric: &str,
        threshold: Option<f32>,
    ) -> PyResult<(F32Matrix<'py>, I64Matrix<'py>)> {
        let k = crate::index::check_k(k)?;
        let sim = similarity(metric)?;
        let x = arrays::matrix(x, "VectorStore.search: x", Some(self.dim()?))?;
        let opts = SearchOptions {
            threshold,
            ..SearchOptions::default()
        };
        let rows = self.with(py, |s| s.search(&x.data, k, sim, &opts).or_raise())?;
        let pad = if sim.higher_is_better() {
            -f32::MAX
        } else {
            f32::MAX
        };
        let mut d = vec![pad; x.n * k];
        let mut i = vec![-1i64; x.n * k];
        for (q, hits) in rows.into_iter().enumerate() {
            for (j, h) in hits.into_iter().take(k).enumerate() {
                d[q * k + j] = h.score;
                i[q * k + j] = h.id as i64;
            }
        }
        Ok((matrix_out(py, d, x.n, k)?, matrix_out(py, i, x.n, k)?))
    }

    /// The `top_k` live vectors most cosine-similar to the vector `query`: `(scores,
    /// ids)`, best first, only those scoring at least `min_score` when given.
    #[pyo3(signature = (query, top_k, min_score = None))]
    fn cosine_search<'py>(
        &self,
        py: Python<'py>,
        query: &ArrayLike<'py>,
        top_k: i64,
        min_score: Option<f32>,
    ) -> PyResult<(F32Vector<'py>, I64Vector<'py>)> {
        let k = crate::index::check_k(top_k)?;
        let q = one_vector(query, "VectorStore.cosine_search: query", self.dim()?)?;
        let hits = self.with(py, |s| s.cosine_search(&q, k, min_score, 0).or_raise())?;
        Ok(hits_out(py, hits))
    }

    /// `cosine_search` among the vectors `ids` only (deleted ones are skipped; an id never
    /// stored is an error).
    #[pyo3(signature = (query, ids, top_k, min_score = None))]
    fn search_in_ids<'py>(
        &self,
        py: Python<'py>,
        query: &ArrayLike<'py>,
        ids: &Bound<'py, PyAny>,
        top_k: i64,
        min_score: Option<f32>,
    ) -> PyResult<(F32Vector<'py>, I64Vector<'py>)> {
        let k = crate::index::check_k(top_k)?;
        let q = one_vector(query, "VectorStore.search_in_ids: query", self.dim()?)?;
        let ids = id_list(ids, "VectorStore.search_in_ids: ids")?;
        let hits = self.with(py, |s| {
            s.cosine_search_in_ids(&q, &ids, k, min_score).or_raise()
        })?;
        Ok(hits_out(py, hits))
    }

    /// The vector `id`, or `None` when it is deleted or was never stored.
    fn get<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Option<Bound<'py, PyArray1<f32>>>> {
        let Ok(id) = u64::try_from(id) else {
            return Ok(None);
        };
        let v = self.with(py, |s| Ok(s.get(id)))?;
        Ok(v.map(|v| PyArray1::from_vec(py, v)))
    }

    /// Counts and sizes: `dim`, `total`, `live`, `deleted`, `file_bytes`, `utilisation`,
    /// `reclaimable_bytes`, `deleted_ids`.
    fn stat<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.with(py, |s| Ok(s.stat()))?;
        let d = PyDict::new(py);
        d.set_item("dim", st.dim)?;
        d.set_item("total", st.total)?;
        d.set_item("live", st.live)?;
        d.set_item("deleted", st.deleted)?;
        d.set_item("file_bytes", st.file_bytes)?;
        d.set_item("utilisation", st.utilisation)?;
        d.set_item("reclaimable_bytes", st.reclaimable_bytes)?;
        d.set_item("deleted_ids", st.deleted_ids)?;
        Ok(d)
    }

    /// Dimension of the vectors.
    #[getter(dim)]
    fn dim_py(&self) -> PyResult<usize> {
        self.dim()
    }

    /// Vectors not deleted.
    #[getter]
    fn live(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s| Ok(s.live()))
    }

    /// Vectors stored, deleted ones included (ids are `0..total`).
    #[getter]
    fn total(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s| Ok(s.total()))
    }

    /// The file's path.
    #[getter]
    fn path(&self, py: Python<'_>) -> PyResult<PathBuf> {
        self.with(py, |s| Ok(s.path().to_path_buf()))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.live(py)? as usize)
    }

    /// Lets go of the file (and its lock); later calls raise. Also done on garbage
    /// collection and at the end of a `with` block.
    fn close(&self) -> PyResult<()> {
        self.store
            .write()
            .map_err(|_| crate::slot::poisoned())?
            .take();
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        exc_type: &Bound<'_, PyAny>,
        exc: &Bound<'_, PyAny>,
        traceback: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let _ = (exc_type, exc, traceback);
        self.close()?;
        Ok(false)
    }
}
