//! `Index`, the base class every index type derives from: the methods Faiss's `Index` has
//! (`train`, `add`, `search`, `range_search`, …) over any `fathom::Index`.
//!
//! Concurrency: the index sits behind a read/write lock. Calls take it only while the GIL
//! is released and turn results into numpy arrays after letting go of it, so a thread
//! waiting for the lock never holds the GIL another thread needs.

use fathom::{IndexFlat, MetricType, SearchParams};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::arrays::{
    self, ArrayLike, F32Matrix, F32Vector, I64Matrix, I64Vector, U8Matrix, U64Vector, matrix_out,
};
use crate::errors::OrRaise;
use crate::selector::{IDSelector, SearchParameters};
use std::sync::Arc;

use fathom::Part;

use crate::slot::IndexSlot;
use crate::threads::install;

/// Faiss's `Index`: the methods every index has. Build indexes with their own classes
/// (`IndexFlatL2(d)`, `IndexIVFFlat(quantizer, d, nlist)`, …) or `index_factory`.
#[pyclass(subclass, frozen, module = "fathom", name = "Index")]
pub struct PyIndex {
    pub(crate) slot: Arc<IndexSlot<dyn fathom::Index>>,
    verbose: std::sync::atomic::AtomicBool,
}

impl PyIndex {
    pub(crate) fn new(index: Box<dyn fathom::Index>) -> Self {
        Self::over(IndexSlot::new(index))
    }

    fn over(slot: Arc<IndexSlot<dyn fathom::Index>>) -> Self {
        PyIndex {
            slot,
            verbose: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A view of this index's sub-index `part` (`index.quantizer`, `index.index`, …) with
    /// its most specific class, or `None` when the index has no such part.
    pub(crate) fn part(&self, py: Python<'_>, part: Part) -> PyResult<Option<Py<PyAny>>> {
        if !self.peek(|i| i.view().part(part).is_some())? {
            return Ok(None);
        }
        let view = PyIndex::over(IndexSlot::part_of(&self.slot, vec![part]));
        crate::classes::wrap(py, view).map(Some)
    }

    /// [`PyIndex::part`] for parts the class always has: their absence is an error.
    pub(crate) fn part_required(&self, py: Python<'_>, part: Part) -> PyResult<Py<PyAny>> {
        self.part(py, part)?.ok_or_else(|| {
            crate::errors::FathomError::new_err(format!(
                "this index has no {}",
                crate::slot::part_name(part)
            ))
        })
    }

    /// After [`PyIndex::take`] handed `from`'s index to this one: `from` becomes a view
    /// of it at `part`.
    pub(crate) fn adopted(&self, from: &Bound<'_, PyAny>, part: Part) -> PyResult<()> {
        match from.cast::<PyIndex>() {
            Ok(f) => f.get().slot.became(&self.slot, vec![part]),
            Err(_) => Ok(()),
        }
    }

    /// Runs `f` on the index under the read lock, without the GIL.
    pub(crate) fn read<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&dyn fathom::Index) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        self.slot.read(py, f)
    }

    /// Runs `f` on the index under the write lock, without the GIL; refused on a view of
    /// another index's part (`what` names the call in that error).
    pub(crate) fn write<T: Send>(
        &self,
        py: Python<'_>,
        what: &str,
        f: impl FnOnce(&mut dyn fathom::Index) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        self.slot.write(py, what, f)
    }

    /// Runs `f` on the index under the write lock, without the GIL, also on a view of
    /// another index's part: for run-time parameters.
    pub(crate) fn tune<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut dyn fathom::Index) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        self.slot.tune(py, f)
    }

    /// A quick look at the index with the GIL held (dimension, counts).
    pub(crate) fn peek<T>(&self, f: impl FnOnce(&dyn fathom::Index) -> T) -> PyResult<T> {
        self.slot.peek(f)
    }

    /// Takes the index out for a new owner (an IVF taking its quantizer, an id map its
    /// index); the Python object then says where it went.
    pub(crate) fn take(&self, new_owner: &str) -> PyResult<Box<dyn fathom::Index>> {
        self.slot.take(new_owner, |i| i.description())
    }

    fn dim(&self) -> PyResult<usize> {
        self.peek(|i| i.dim())
    }
}

/// Runs `f` with the search parameters `params` describes.
pub(crate) fn with_params<T>(
    params: Option<&Bound<'_, SearchParameters>>,
    f: impl FnOnce(&SearchParams<'_>) -> T,
) -> T {
    match params {
        None => f(&SearchParams::default()),
        Some(p) => {
            let p = p.get();
            let selector = p.sel.as_ref().map(|s| s.get().selector.clone());
            let mut sp = SearchParams::default();
            if let Some(s) = &selector {
                sp = sp.with_selector(&**s);
            }
            sp.nprobe = p.nprobe;
            sp.ef_search = p.ef_search;
            f(&sp)
        }
    }
}

/// Where fewer than `k` results exist fathom reports `±∞`; Faiss reports `±FLT_MAX`, and
/// Python code written for Faiss compares with it, so the module gives Faiss's value.
pub(crate) fn faiss_missing_values(res: &mut fathom::SearchResult) {
    for (d, &l) in res.distances.iter_mut().zip(&res.labels) {
        if l == fathom::NO_ID && d.is_infinite() {
            *d = f32::MAX.copysign(*d);
        }
    }
}

pub(crate) fn check_k(k: i64) -> PyResult<usize> {
    if k <= 0 {
        return Err(PyValueError::new_err(format!(
            "k must be at least 1, got {k}"
        )));
    }
    usize::try_from(k).map_err(|_| PyValueError::new_err(format!("k = {k} is too large")))
}

#[pymethods]
impl PyIndex {
    /// The dimension of the vectors.
    #[getter]
    fn d(&self) -> PyResult<usize> {
        self.dim()
    }

    /// Faiss's progress printing; kept, but fathom's indexes print nothing (long builds
    /// report through the CLI's progress bars instead).
    #[getter]
    fn verbose(&self) -> bool {
        self.verbose.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[setter]
    fn set_verbose(&self, value: bool) {
        self.verbose
            .store(value, std::sync::atomic::Ordering::Relaxed);
    }

    /// The number of vectors in the index.
    #[getter]
    fn ntotal(&self) -> PyResult<usize> {
        self.peek(|i| i.ntotal())
    }
    #[setter]
    fn set_ntotal(&self, value: i64) -> PyResult<()> {
        let _ = value;
        Err(crate::errors::FathomError::new_err(
            "ntotal follows what the index holds and cannot be set: add, remove_ids or \
             reset change it (merge_ondisk sets it for merged lists)",
        ))
    }

    /// Whether the index is ready for `add` and `search`.
    #[getter]
    fn is_trained(&self) -> PyResult<bool> {
        self.peek(|i| i.is_trained())
    }
    #[setter]
    fn set_is_trained(&self, value: bool) -> PyResult<()> {
        if self.peek(|i| i.is_trained())? == value {
            return Ok(());
        }
        Err(crate::errors::FathomError::new_err(
            "is_trained follows the index's state and cannot be set: call train(x), or \
             build the index from trained parts (an IVF index over a filled quantizer \
             with quantizer_trains_alone) — a flag alone would search with no centroids",
        ))
    }

    /// The metric's Faiss code (`METRIC_L2`, `METRIC_INNER_PRODUCT`, …).
    #[getter]
    fn metric_type(&self) -> PyResult<u32> {
        self.peek(|i| i.metric().code())
    }

    /// The `p` of metric Lp (0 for the other metrics). Faiss code makes an Lp index and
    /// then sets it: `index = IndexFlat(d, METRIC_Lp); index.metric_arg = 3`.
    #[getter]
    fn metric_arg(&self) -> PyResult<f32> {
        self.peek(|i| i.metric().arg())
    }
    #[setter]
    fn set_metric_arg(&self, py: Python<'_>, value: f32) -> PyResult<()> {
        self.write(py, "setting metric_arg", |i| {
            i.set_param("metric_arg", f64::from(value)).or_raise()
        })
    }

    /// The index in Faiss's factory grammar (`"IVF100,PQ8"`).
    #[getter]
    fn description(&self) -> PyResult<String> {
        self.peek(|i| i.description())
    }

    /// Learns the index's parameters (centroids, codebooks) from `x` of shape `(n, d)`.
    fn train(&self, py: Python<'_>, x: &ArrayLike<'_>) -> PyResult<()> {
        let x = arrays::matrix(x, "train: x", Some(self.dim()?))?;
        self.write(py, "train", |i| i.train(&x.data).or_raise())
    }

    /// Adds the vectors `x` of shape `(n, d)`; they get ids `ntotal … ntotal + n − 1`.
    fn add(&self, py: Python<'_>, x: &ArrayLike<'_>) -> PyResult<()> {
        let x = arrays::matrix(x, "add: x", Some(self.dim()?))?;
        self.write(py, "add", |i| i.add(&x.data).or_raise())
    }

    /// Adds the vectors `x` of shape `(n, d)` with the int64 ids `ids` of shape `(n,)`.
    fn add_with_ids(&self, py: Python<'_>, x: &ArrayLike<'_>, ids: &ArrayLike<'_>) -> PyResult<()> {
        let x = arrays::matrix(x, "add_with_ids: x", Some(self.dim()?))?;
        let ids = arrays::ids(ids, "add_with_ids: ids")?;
        if ids.len() != x.n {
            return Err(PyValueError::new_err(format!(
                "add_with_ids: {} ids for {} vectors",
                ids.len(),
                x.n
            )));
        }
        self.write(py, "add_with_ids", |i| {
            i.add_with_ids(&x.data, &ids).or_raise()
        })
    }

    /// The `k` nearest neighbours of each row of `x`: `(D, I)`, distances (float32) and
    /// ids (int64) of shape `(n, k)`; missing results have id −1.
    #[pyo3(signature = (x, k, *, params = None))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        x: &ArrayLike<'py>,
        k: i64,
        params: Option<&Bound<'py, SearchParameters>>,
    ) -> PyResult<(F32Matrix<'py>, I64Matrix<'py>)> {
        let k = check_k(k)?;
        let x = arrays::matrix(x, "search: x", Some(self.dim()?))?;
        let mut res = with_params(params, |p| {
            self.read(py, |i| i.search_with(&x.data, k, p).or_raise())
        })?;
        faiss_missing_values(&mut res);
        Ok((
            matrix_out(py, res.distances, x.n, k)?,
            matrix_out(py, res.labels, x.n, k)?,
        ))
    }

    /// The `k` nearest neighbours of each row of `x` and their stored (decoded) vectors:
    /// `(D, I, R)`, `R` of shape `(n, k, d)`, NaN where there is no result (Faiss's -1
    /// bytes read as NaN too).
    #[pyo3(signature = (x, k, *, params = None))]
    #[allow(clippy::type_complexity)]
    fn search_and_reconstruct<'py>(
        &self,
        py: Python<'py>,
        x: &ArrayLike<'py>,
        k: i64,
        params: Option<&Bound<'py, SearchParameters>>,
    ) -> PyResult<(
        F32Matrix<'py>,
        I64Matrix<'py>,
        Bound<'py, numpy::PyArray3<f32>>,
    )> {
        let k = check_k(k)?;
        let d = self.dim()?;
        let x = arrays::matrix(x, "search_and_reconstruct: x", Some(d))?;
        let (mut res, vectors) = with_params(params, |p| {
            self.read(py, |i| i.search_and_reconstruct(&x.data, k, p).or_raise())
        })?;
        faiss_missing_values(&mut res);
        Ok((
            matrix_out(py, res.distances, x.n, k)?,
            matrix_out(py, res.labels, x.n, k)?,
            PyArray1::from_vec(py, vectors).reshape([x.n, k, d])?,
        ))
    }

    /// The ids of the `k` nearest neighbours of each row of `x`, shape `(n, k)`.
    fn assign<'py>(&self, py: Python<'py>, x: &ArrayLike<'py>, k: i64) -> PyResult<I64Matrix<'py>> {
        let k = check_k(k)?;
        let x = arrays::matrix(x, "assign: x", Some(self.dim()?))?;
        let res = self.read(py, |i| i.search(&x.data, k).or_raise())?;
        matrix_out(py, res.labels, x.n, k)
    }

    /// Every stored vector within `thresh` of each query (above it for inner product):
    /// `(lims, D, I)`, where query `i`'s results are `D[lims[i]:lims[i+1]]`.
    #[pyo3(signature = (x, thresh, *, params = None))]
    fn range_search<'py>(
        &self,
        py: Python<'py>,
        x: &ArrayLike<'py>,
        thresh: f32,
        params: Option<&Bound<'py, SearchParameters>>,
    ) -> PyResult<(U64Vector<'py>, F32Vector<'py>, I64Vector<'py>)> {
        let x = arrays::matrix(x, "range_search: x", Some(self.dim()?))?;
        let res = with_params(params, |p| {
            self.read(py, |i| i.range_search_with(&x.data, thresh, p).or_raise())
        })?;
        Ok(arrays::range_out(py, res))
    }

    /// The stored (decoded) vector with id `key`.
    fn reconstruct<'py>(&self, py: Python<'py>, key: i64) -> PyResult<F32Vector<'py>> {
        let v = self.read(py, |i| i.reconstruct(key).or_raise())?;
        Ok(PyArray1::from_vec(py, v))
    }

    /// The stored vectors with ids `keys`, shape `(len(keys), d)`.
    fn reconstruct_batch<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<F32Matrix<'py>> {
        let keys = arrays::ids(keys, "reconstruct_batch: keys")?;
        let d = self.dim()?;
        let v = self.read(py, |i| i.reconstruct_batch(&keys).or_raise())?;
        matrix_out(py, v, keys.len(), d)
    }

    /// Bytes of one standalone code (`sa_encode`).
    fn sa_code_size(&self) -> PyResult<usize> {
        self.peek(|i| i.sa_code_size().or_raise())?
    }

    /// The standalone codes of the rows of `x`, shape `(n, sa_code_size())` uint8: what the
    /// index would store, self-contained (Faiss's codes byte for byte).
    fn sa_encode<'py>(&self, py: Python<'py>, x: &ArrayLike<'py>) -> PyResult<U8Matrix<'py>> {
        let x = arrays::matrix(x, "sa_encode: x", Some(self.dim()?))?;
        let cs = self.sa_code_size()?;
        let v = self.read(py, |i| i.sa_encode(&x.data).or_raise())?;
        matrix_out(py, v, x.n, cs)
    }

    /// The vectors standalone codes stand for, shape `(n, d)`.
    fn sa_decode<'py>(
        &self,
        py: Python<'py>,
        codes: &Bound<'py, PyAny>,
    ) -> PyResult<F32Matrix<'py>> {
        let cs = self.sa_code_size()?;
        let codes = arrays::codes(codes, "sa_decode: codes", cs)?;
        let d = self.dim()?;
        let v = self.read(py, |i| i.sa_decode(&codes.data).or_raise())?;
        matrix_out(py, v, codes.n, d)
    }

    /// Adds vectors given by their standalone codes, with ids `xids` where the index stores
    /// ids (IVF, id maps).
    #[pyo3(signature = (codes, xids = None))]
    fn add_sa_codes(
        &self,
        py: Python<'_>,
        codes: &Bound<'_, PyAny>,
        xids: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let cs = self.sa_code_size()?;
        let codes = arrays::codes(codes, "add_sa_codes: codes", cs)?;
        let ids = xids
            .map(|x| arrays::ids(x, "add_sa_codes: xids"))
            .transpose()?;
        self.write(py, "add_sa_codes", |i| {
            i.add_sa_codes(&codes.data, ids.as_deref()).or_raise()
        })
    }

    /// The stored vectors `n0 … n0 + ni − 1`, shape `(ni, d)`; `ni = -1` means up to the end.
    #[pyo3(signature = (n0 = 0, ni = -1))]
    fn reconstruct_n<'py>(&self, py: Python<'py>, n0: i64, ni: i64) -> PyResult<F32Matrix<'py>> {
        let (d, ntotal) = self.peek(|i| (i.dim(), i.ntotal()))?;
        if n0 < 0 {
            return Err(PyValueError::new_err(format!("n0 must be ≥ 0, got {n0}")));
        }
        let ni = if ni < 0 {
            ntotal.saturating_sub(n0 as usize)
        } else {
            ni as usize
        };
        let v = self.read(py, |i| i.reconstruct_n(n0, ni).or_raise())?;
        matrix_out(py, v, ni, d)
    }

    /// Removes the vectors whose ids `sel` selects — an `IDSelector` or a 1-D array of ids
    /// — and returns how many were removed.
    fn remove_ids(&self, py: Python<'_>, sel: &Bound<'_, PyAny>) -> PyResult<usize> {
        if let Ok(s) = sel.cast::<IDSelector>() {
            let selector = s.get().selector.clone();
            return self.write(py, "remove_ids", |i| i.remove_ids(&*selector).or_raise());
        }
        let ids = arrays::ids(sel, "remove_ids: ids")?;
        let batch = fathom::IdSelectorBatch::new(ids);
        self.write(py, "remove_ids", |i| i.remove_ids(&batch).or_raise())
    }

    /// Removes every vector (the training stays).
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.write(py, "reset", |i| i.reset().or_raise())
    }

    /// Moves every vector of `other` into this index, shifting their ids by `add_id`, and
    /// leaves `other` empty (flat and IVF indexes of the same kind).
    #[pyo3(signature = (other, add_id = 0))]
    fn merge_from(&self, py: Python<'_>, other: &Bound<'_, PyIndex>, add_id: i64) -> PyResult<()> {
        self.slot
            .with_pair(&other.get().slot, py, "merge_from", |dst, src| {
                install(|| crate::classes::merge(dst, src, add_id))
            })
    }

    /// Keeps a map from ids to list entries so `reconstruct` works on IVF indexes.
    #[pyo3(signature = (new_maintain = true))]
    fn make_direct_map(&self, py: Python<'_>, new_maintain: bool) -> PyResult<()> {
        self.tune(py, |i| crate::classes::make_direct_map(i, new_maintain))
    }

    /// Distances from each query to the stored vectors `labels` (shape `(n, k)`).
    fn compute_distance_subset<'py>(
        &self,
        py: Python<'py>,
        x: &ArrayLike<'py>,
        labels: &ArrayLike<'py>,
    ) -> PyResult<F32Matrix<'py>> {
        let x = arrays::matrix(x, "compute_distance_subset: x", Some(self.dim()?))?;
        let arr = py
            .import("numpy")?
            .call_method1("asarray", (labels,))?
            .call_method1("astype", ("int64",))?;
        let sh: Vec<usize> = arr.getattr("shape")?.extract()?;
        let k = match sh.as_slice() {
            [n, k] if *n == x.n => *k,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "labels must have shape ({}, k), got {sh:?}",
                    x.n
                )));
            }
        };
        let labels = arrays::ids_flat(&arr, "labels")?;
        let d = x.data.len() / x.n.max(1);
        let out = self.read(py, |i| {
            let mut out = vec![0f32; x.n * k];
            for q in 0..x.n {
                i.compute_distances(
                    &x.data[q * d..(q + 1) * d],
                    &labels[q * k..(q + 1) * k],
                    &mut out[q * k..(q + 1) * k],
                )
                .or_raise()?;
            }
            Ok(out)
        })?;
        matrix_out(py, out, x.n, k)
    }

    fn __repr__(&self) -> String {
        match self.peek(|i| (i.description(), i.dim(), i.ntotal())) {
            Ok((desc, d, n)) => format!("<fathom index {desc:?} d={d} ntotal={n}>"),
            Err(_) => "<fathom index (moved into another index)>".into(),
        }
    }
}

/// Reads a metric from Faiss's integer codes (or a `METRIC_*` constant). As in Faiss,
/// `METRIC_Lp` may come without its `p` (0), set later through `index.metric_arg`;
/// distances are refused until then.
pub(crate) fn metric(code: i64, arg: f32) -> PyResult<MetricType> {
    let code = u32::try_from(code)
        .map_err(|_| PyValueError::new_err(format!("unknown metric code {code}")))?;
    MetricType::from_code_p_later(code, arg).or_raise()
}

/// Takes the index out of a Python index object for a new owner.
pub(crate) fn take_index(
    obj: &Bound<'_, PyAny>,
    new_owner: &str,
) -> PyResult<Box<dyn fathom::Index>> {
    let index = obj.cast::<PyIndex>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{new_owner} needs a fathom index here, got {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    index.get().take(new_owner)
}

/// A flat index holding `data`, the form `Kmeans.index` takes.
pub(crate) fn flat_over(
    d: usize,
    metric: MetricType,
    data: Vec<f32>,
) -> PyResult<Box<dyn fathom::Index>> {
    Ok(Box::new(
        IndexFlat::from_vectors(d, metric, data).or_raise()?,
    ))
}
