//! Faiss's binary index classes: `IndexBinary` (the base: `train`, `add`, `search`,
//! `range_search`, … on uint8 arrays of shape `(n, d / 8)`, Hamming distances as int32)
//! and `IndexBinaryFlat`, `IndexBinaryIVF`, `IndexBinaryHNSW`, `IndexBinaryHash`,
//! `IndexBinaryMultiHash`, `IndexBinaryFromFloat`, `IndexBinaryIDMap(2)`, with
//! `index_binary_factory`, `read_index_binary`, `write_index_binary` and `knn_hamming`.

use std::path::PathBuf;

use fathom::binary::{
    BinaryIndexView, IndexBinary, IndexBinaryFlat, IndexBinaryFromFloat, IndexBinaryHash,
    IndexBinaryHnsw, IndexBinaryIdMap, IndexBinaryIvf, IndexBinaryMultiHash,
};
use numpy::PyArray1;
use pyo3::exceptions::{PyAttributeError, PyValueError};
use pyo3::prelude::*;
use pyo3::type_object::PyTypeInfo;

use crate::arrays::{
    self, ArrayLike, I32Matrix, I32Vector, I64Matrix, I64Vector, U8Vector, U64Vector, matrix_out,
};
use crate::classes::count;
use crate::errors::OrRaise;
use crate::index::{PyIndex, check_k, with_params};
use crate::selector::{IDSelector, SearchParameters};
use crate::slot::IndexSlot;
use crate::threads::compute;

/// Faiss's `IndexBinary`: vectors of `d` bits as uint8 rows of `d / 8` bytes, compared by
/// Hamming distance. Build one with its class or `index_binary_factory`.
#[pyclass(subclass, frozen, module = "fathom", name = "IndexBinary")]
pub struct PyIndexBinary {
    slot: std::sync::Arc<IndexSlot<dyn IndexBinary>>,
}

impl PyIndexBinary {
    fn new(index: Box<dyn IndexBinary>) -> Self {
        PyIndexBinary {
            slot: IndexSlot::new(index),
        }
    }

    fn read<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&dyn IndexBinary) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        self.slot.read(py, f)
    }

    fn write<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut dyn IndexBinary) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        // Binary indexes expose no parts, so no view reaches this: tuning and writing
        // are the same call.
        self.slot.tune(py, f)
    }

    fn peek<T>(&self, f: impl FnOnce(&dyn IndexBinary) -> T) -> PyResult<T> {
        self.slot.peek(f)
    }

    /// Takes the index out for a new owner (an IVF its quantizer, an id map its index).
    fn take(&self, new_owner: &str) -> PyResult<Box<dyn IndexBinary>> {
        self.slot.take(new_owner, |i| i.description())
    }

    fn code_size_now(&self) -> PyResult<usize> {
        self.peek(|i| i.code_size())
    }

    fn param(&self, name: &str) -> PyResult<f64> {
        self.peek(|i| i.param(name))?
            .ok_or_else(|| PyAttributeError::new_err(format!("this index has no {name}")))
    }

    fn set_param(&self, py: Python<'_>, name: &'static str, value: f64) -> PyResult<()> {
        self.write(py, move |i| i.set_param(name, value).or_raise())
    }
}

fn int_distances(res: &fathom::SearchResult) -> Vec<i32> {
    res.distances
        .iter()
        .zip(&res.labels)
        .map(|(&d, &l)| {
            if l == fathom::NO_ID {
                i32::MAX
            } else {
                d as i32
            }
        })
        .collect()
}

#[pymethods]
impl PyIndexBinary {
    /// Bits per vector.
    #[getter]
    fn d(&self) -> PyResult<usize> {
        self.peek(|i| i.d())
    }
    /// Bytes per vector, `d / 8`.
    #[getter]
    fn code_size(&self) -> PyResult<usize> {
        self.code_size_now()
    }
    /// Number of vectors held.
    #[getter]
    fn ntotal(&self) -> PyResult<usize> {
        self.peek(|i| i.ntotal())
    }
    /// Whether vectors may be added.
    #[getter]
    fn is_trained(&self) -> PyResult<bool> {
        self.peek(|i| i.is_trained())
    }

    /// Learns what the index needs (IVF centroids) from the rows of `x`.
    fn train(&self, py: Python<'_>, x: &ArrayLike<'_>) -> PyResult<()> {
        let x = arrays::codes(x, "train: x", self.code_size_now()?)?;
        self.write(py, |i| i.train(&x.data).or_raise())
    }
    /// Adds the rows of `x`; their ids are their positions.
    fn add(&self, py: Python<'_>, x: &ArrayLike<'_>) -> PyResult<()> {
        let x = arrays::codes(x, "add: x", self.code_size_now()?)?;
        self.write(py, |i| i.add(&x.data).or_raise())
    }
    /// Adds the rows of `x` with the ids `xids`.
    fn add_with_ids(
        &self,
        py: Python<'_>,
        x: &ArrayLike<'_>,
        xids: &ArrayLike<'_>,
    ) -> PyResult<()> {
        let x = arrays::codes(x, "add_with_ids: x", self.code_size_now()?)?;
        let ids = arrays::ids(xids, "add_with_ids: xids")?;
        self.write(py, |i| i.add_with_ids(&x.data, &ids).or_raise())
    }
    /// The `k` nearest stored vectors of each row of `x`: `(D, I)`, int32 Hamming
    /// distances and int64 ids, shape `(n, k)`.
    #[pyo3(signature = (x, k, *, params = None))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        x: &ArrayLike<'py>,
        k: i64,
        params: Option<&Bound<'py, SearchParameters>>,
    ) -> PyResult<(I32Matrix<'py>, I64Matrix<'py>)> {
        let k = check_k(k)?;
        let x = arrays::codes(x, "search: x", self.code_size_now()?)?;
        let res = with_params(params, |p| {
            self.read(py, |i| i.search_with(&x.data, k, p).or_raise())
        })?;
        Ok((
            matrix_out(py, int_distances(&res), x.n, k)?,
            matrix_out(py, res.labels, x.n, k)?,
        ))
    }
    /// Every stored vector at Hamming distance below `radius` of each row of `x`:
    /// `(lims, D, I)`, query `i`'s results at `lims[i]:lims[i+1]`.
    #[pyo3(signature = (x, radius, *, params = None))]
    fn range_search<'py>(
        &self,
        py: Python<'py>,
        x: &ArrayLike<'py>,
        radius: i64,
        params: Option<&Bound<'py, SearchParameters>>,
    ) -> PyResult<(U64Vector<'py>, I32Vector<'py>, I64Vector<'py>)> {
        let x = arrays::codes(x, "range_search: x", self.code_size_now()?)?;
        let res = with_params(params, |p| {
            self.read(py, |i| {
                i.range_search_with(&x.data, radius as f32, p).or_raise()
            })
        })?;
        let lims: Vec<u64> = res.lims.iter().map(|&l| l as u64).collect();
        let dist: Vec<i32> = res.distances.iter().map(|&d| d as i32).collect();
        Ok((
            PyArray1::from_vec(py, lims),
            PyArray1::from_vec(py, dist),
            PyArray1::from_vec(py, res.labels),
        ))
    }
    /// The stored vector with id `key`, `d / 8` bytes.
    fn reconstruct<'py>(&self, py: Python<'py>, key: i64) -> PyResult<U8Vector<'py>> {
        let v = self.read(py, |i| i.reconstruct(key).or_raise())?;
        Ok(PyArray1::from_vec(py, v))
    }
    /// Removes the vectors `sel` selects (an `IDSelector` or an array of ids); returns
    /// how many were removed.
    fn remove_ids(&self, py: Python<'_>, sel: &Bound<'_, PyAny>) -> PyResult<usize> {
        if let Ok(s) = sel.cast::<IDSelector>() {
            let selector = s.get().selector.clone();
            return self.write(py, |i| i.remove_ids(&*selector).or_raise());
        }
        let ids = arrays::ids(sel, "remove_ids: ids")?;
        let batch = fathom::IdSelectorBatch::new(ids);
        self.write(py, |i| i.remove_ids(&batch).or_raise())
    }
    /// Removes every vector.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.write(py, |i| i.reset().or_raise())
    }
    fn __repr__(&self) -> PyResult<String> {
        self.peek(|i| format!("<{} d={} ntotal={}>", i.description(), i.d(), i.ntotal()))
    }
}

fn base(index: impl IndexBinary + 'static) -> PyClassInitializer<PyIndexBinary> {
    PyClassInitializer::from(PyIndexBinary::new(Box::new(index)))
}

/// Exhaustive Hamming search (Faiss's `IndexBinaryFlat`).
#[pyclass(extends = PyIndexBinary, frozen, module = "fathom", name = "IndexBinaryFlat")]
pub struct PyIndexBinaryFlat;

#[pymethods]
impl PyIndexBinaryFlat {
    /// An empty index of `d`-bit vectors (`d` a multiple of 8).
    #[new]
    fn new(d: i64) -> PyResult<PyClassInitializer<Self>> {
        Ok(base(IndexBinaryFlat::new(count("d", d)?).or_raise()?).add_subclass(PyIndexBinaryFlat))
    }
}

/// Inverted lists under a binary coarse quantizer (Faiss's `IndexBinaryIVF`).
#[pyclass(extends = PyIndexBinary, frozen, module = "fathom", name = "IndexBinaryIVF")]
pub struct PyIndexBinaryIVF;

#[pymethods]
impl PyIndexBinaryIVF {
    /// An empty IVF index of `nlist` lists over `quantizer` (which it takes over).
    #[new]
    fn new(
        quantizer: &Bound<'_, PyIndexBinary>,
        d: i64,
        nlist: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let q = quantizer.get();
        if q.peek(|i| i.d())? as i64 != d {
            return Err(PyValueError::new_err(format!(
                "the quantizer has d = {}, the index {d}",
                q.peek(|i| i.d())?
            )));
        }
        let nlist = count("nlist", nlist)?;
        let index = IndexBinaryIvf::new(q.take("IndexBinaryIVF")?, nlist).or_raise()?;
        Ok(base(index).add_subclass(PyIndexBinaryIVF))
    }
    /// Lists scanned per query.
    #[getter]
    fn nprobe(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().get().param("nprobe")? as usize)
    }
    #[setter]
    fn set_nprobe(slf: &Bound<'_, Self>, value: i64) -> PyResult<()> {
        let v = count("nprobe", value)? as f64;
        slf.as_super().get().set_param(slf.py(), "nprobe", v)
    }
    /// Codes compared per query at most (0: no limit).
    #[getter]
    fn max_codes(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().get().param("max_codes")? as usize)
    }
    #[setter]
    fn set_max_codes(slf: &Bound<'_, Self>, value: usize) -> PyResult<()> {
        slf.as_super()
            .get()
            .set_param(slf.py(), "max_codes", value as f64)
    }
    /// Number of lists.
    #[getter]
    fn nlist(slf: &Bound<'_, Self>) -> PyResult<usize> {
        slf.as_super().get().peek(|i| match i.view() {
            BinaryIndexView::Ivf(ivf) => ivf.nlist(),
            _ => 0,
        })
    }
}

/// An HNSW graph over binary vectors (Faiss's `IndexBinaryHNSW`);
/// `index.hnsw.efSearch` sets the search breadth.
#[pyclass(extends = PyIndexBinary, frozen, module = "fathom", name = "IndexBinaryHNSW")]
pub struct PyIndexBinaryHNSW;

#[pymethods]
impl PyIndexBinaryHNSW {
    /// An empty graph of `d`-bit vectors with `M` links per node.
    #[new]
    #[pyo3(signature = (d, M = 32))]
    #[allow(non_snake_case)]
    fn new(d: i64, M: i64) -> PyResult<PyClassInitializer<Self>> {
        let index = IndexBinaryHnsw::new(count("d", d)?, count("M", M)?).or_raise()?;
        Ok(base(index).add_subclass(PyIndexBinaryHNSW))
    }
    /// The graph's parameters: `efSearch`, `efConstruction`.
    #[getter]
    fn hnsw(slf: &Bound<'_, Self>) -> PyBinaryHnsw {
        PyBinaryHnsw {
            owner: slf.as_super().clone().unbind(),
        }
    }
}

/// The parameters of a binary HNSW index's graph (`index.hnsw`).
#[pyclass(frozen, module = "fathom", name = "BinaryHNSW")]
pub struct PyBinaryHnsw {
    owner: Py<PyIndexBinary>,
}

#[pymethods]
impl PyBinaryHnsw {
    /// How many candidates a search keeps (at least `k` are used).
    #[getter(efSearch)]
    fn ef_search(&self) -> PyResult<usize> {
        Ok(self.owner.get().param("efSearch")? as usize)
    }
    #[setter(efSearch)]
    fn set_ef_search(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        let v = count("efSearch", value)? as f64;
        self.owner.get().set_param(py, "efSearch", v)
    }
    /// How many candidates an insertion considers.
    #[getter(efConstruction)]
    fn ef_construction(&self) -> PyResult<usize> {
        Ok(self.owner.get().param("efConstruction")? as usize)
    }
    #[setter(efConstruction)]
    fn set_ef_construction(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        let v = count("efConstruction", value)? as f64;
        self.owner.get().set_param(py, "efConstruction", v)
    }
}

/// Binary vectors bucketed by their first `b` bits (Faiss's `IndexBinaryHash`).
#[pyclass(extends = PyIndexBinary, frozen, module = "fathom", name = "IndexBinaryHash")]
pub struct PyIndexBinaryHash;

/// Binary vectors with `nhash` hash tables of `b` bits each (Faiss's
/// `IndexBinaryMultiHash`).
#[pyclass(extends = PyIndexBinary, frozen, module = "fathom", name = "IndexBinaryMultiHash")]
pub struct PyIndexBinaryMultiHash;

fn get_nflip(index: &PyIndexBinary) -> PyResult<usize> {
    Ok(index.param("nflip")? as usize)
}

fn set_nflip(py: Python<'_>, index: &PyIndexBinary, value: usize) -> PyResult<()> {
    index.set_param(py, "nflip", value as f64)
}

#[pymethods]
impl PyIndexBinaryHash {
    /// An empty index of `d`-bit vectors keyed by their first `b` bits.
    #[new]
    fn new(d: i64, b: i64) -> PyResult<PyClassInitializer<Self>> {
        let index = IndexBinaryHash::new(count("d", d)?, count("b", b)?).or_raise()?;
        Ok(base(index).add_subclass(PyIndexBinaryHash))
    }
    /// Bits of the key that may differ from the query's in the buckets visited.
    #[getter]
    fn nflip(slf: &Bound<'_, Self>) -> PyResult<usize> {
        get_nflip(slf.as_super().get())
    }
    #[setter]
    fn set_nflip(slf: &Bound<'_, Self>, value: usize) -> PyResult<()> {
        set_nflip(slf.py(), slf.as_super().get(), value)
    }
}

#[pymethods]
impl PyIndexBinaryMultiHash {
    /// An empty index of `d`-bit vectors with `nhash` tables of `b`-bit keys.
    #[new]
    fn new(d: i64, nhash: i64, b: i64) -> PyResult<PyClassInitializer<Self>> {
        let index =
            IndexBinaryMultiHash::new(count("d", d)?, count("nhash", nhash)?, count("b", b)?)
                .or_raise()?;
        Ok(base(index).add_subclass(PyIndexBinaryMultiHash))
    }
    /// Bits of each key that may differ from the query's.
    #[getter]
    fn nflip(slf: &Bound<'_, Self>) -> PyResult<usize> {
        get_nflip(slf.as_super().get())
    }
    #[setter]
    fn set_nflip(slf: &Bound<'_, Self>, value: usize) -> PyResult<()> {
        set_nflip(slf.py(), slf.as_super().get(), value)
    }
}

/// Binary vectors searched through a float index over `±1` vectors (Faiss's
/// `IndexBinaryFromFloat`).
#[pyclass(extends = PyIndexBinary, frozen, module = "fathom", name = "IndexBinaryFromFloat")]
pub struct PyIndexBinaryFromFloat;

#[pymethods]
impl PyIndexBinaryFromFloat {
    /// A binary index over the float index `index` (L2, dimension = bits), which it
    /// takes over.
    #[new]
    fn new(index: &Bound<'_, PyIndex>) -> PyResult<PyClassInitializer<Self>> {
        let inner = index.get().take("IndexBinaryFromFloat")?;
        Ok(base(IndexBinaryFromFloat::new(inner).or_raise()?).add_subclass(PyIndexBinaryFromFloat))
    }
}

/// User-chosen ids over a binary index (Faiss's `IndexBinaryIDMap`).
#[pyclass(extends = PyIndexBinary, subclass, frozen, module = "fathom", name = "IndexBinaryIDMap")]
pub struct PyIndexBinaryIDMap;

#[pymethods]
impl PyIndexBinaryIDMap {
    /// An id map over the empty binary index `index`, which it takes over.
    #[new]
    fn new(index: &Bound<'_, PyIndexBinary>) -> PyResult<PyClassInitializer<Self>> {
        let inner = index.get().take("IndexBinaryIDMap")?;
        Ok(base(IndexBinaryIdMap::new(inner, false).or_raise()?).add_subclass(PyIndexBinaryIDMap))
    }
    /// The id of each stored vector, in storage order.
    #[getter]
    fn id_map<'py>(slf: &Bound<'py, Self>) -> PyResult<I64Vector<'py>> {
        let ids = slf.as_super().get().peek(|i| match i.view() {
            BinaryIndexView::IdMap { ids, .. } => ids.to_vec(),
            _ => Vec::new(),
        })?;
        Ok(PyArray1::from_vec(slf.py(), ids))
    }
}

/// User-chosen ids that can also be reconstructed by id (Faiss's `IndexBinaryIDMap2`).
#[pyclass(extends = PyIndexBinaryIDMap, frozen, module = "fathom", name = "IndexBinaryIDMap2")]
pub struct PyIndexBinaryIDMap2;

#[pymethods]
impl PyIndexBinaryIDMap2 {
    /// An id map over the empty binary index `index`, which it takes over.
    #[new]
    fn new(index: &Bound<'_, PyIndexBinary>) -> PyResult<PyClassInitializer<Self>> {
        let inner = index.get().take("IndexBinaryIDMap2")?;
        Ok(base(IndexBinaryIdMap::new(inner, true).or_raise()?)
            .add_subclass(PyIndexBinaryIDMap)
            .add_subclass(PyIndexBinaryIDMap2))
    }
}

/// A Python object of the most specific binary class for `index`.
pub(crate) fn wrap_binary(py: Python<'_>, index: Box<dyn IndexBinary>) -> PyResult<Py<PyAny>> {
    enum Kind {
        Flat,
        Ivf,
        Hnsw,
        Hash,
        MultiHash,
        FromFloat,
        IdMap(bool),
        Other,
    }
    let kind = match index.view() {
        BinaryIndexView::Flat(_) => Kind::Flat,
        BinaryIndexView::Ivf(_) => Kind::Ivf,
        BinaryIndexView::Hnsw(_) => Kind::Hnsw,
        BinaryIndexView::Hash(_) => Kind::Hash,
        BinaryIndexView::MultiHash(_) => Kind::MultiHash,
        BinaryIndexView::FromFloat(_) => Kind::FromFloat,
        BinaryIndexView::IdMap { two_way, .. } => Kind::IdMap(two_way),
        BinaryIndexView::Other => Kind::Other,
    };
    let init = PyClassInitializer::from(PyIndexBinary::new(index));
    Ok(match kind {
        Kind::Flat => Py::new(py, init.add_subclass(PyIndexBinaryFlat))?.into_any(),
        Kind::Ivf => Py::new(py, init.add_subclass(PyIndexBinaryIVF))?.into_any(),
        Kind::Hnsw => Py::new(py, init.add_subclass(PyIndexBinaryHNSW))?.into_any(),
        Kind::Hash => Py::new(py, init.add_subclass(PyIndexBinaryHash))?.into_any(),
        Kind::MultiHash => Py::new(py, init.add_subclass(PyIndexBinaryMultiHash))?.into_any(),
        Kind::FromFloat => Py::new(py, init.add_subclass(PyIndexBinaryFromFloat))?.into_any(),
        Kind::IdMap(false) => Py::new(py, init.add_subclass(PyIndexBinaryIDMap))?.into_any(),
        Kind::IdMap(true) => Py::new(
            py,
            init.add_subclass(PyIndexBinaryIDMap)
                .add_subclass(PyIndexBinaryIDMap2),
        )?
        .into_any(),
        Kind::Other => Py::new(py, init)?.into_any(),
    })
}

/// The binary index `description` names for `d`-bit vectors (Faiss's
/// `index_binary_factory`): `BFlat`, `BIVF<nlist>`, `BIVF<nlist>_HNSW<M>`, `BHNSW<M>`,
/// `BHash<b>`, `BHash<nhash>x<b>`, optionally with `IDMap,` / `IDMap2,`.
#[pyfunction]
pub fn index_binary_factory(py: Python<'_>, d: usize, description: &str) -> PyResult<Py<PyAny>> {
    wrap_binary(
        py,
        fathom::binary::index_binary_factory(d, description).or_raise()?,
    )
}

/// Writes the binary index `index` to the file `fname` in Faiss's format.
#[pyfunction]
pub fn write_index_binary(
    py: Python<'_>,
    index: &Bound<'_, PyIndexBinary>,
    fname: PathBuf,
) -> PyResult<()> {
    index.get().read(py, |i| {
        fathom::io::faiss::write_index_binary(i, &fname).or_raise()
    })
}

/// Reads a binary index from a Faiss-format file (written by fathom or faiss).
#[pyfunction]
pub fn read_index_binary(py: Python<'_>, fname: PathBuf) -> PyResult<Py<PyAny>> {
    let index = compute(py, || fathom::io::faiss::read_index_binary(&fname)).or_raise()?;
    wrap_binary(py, index)
}

/// The binary index as Faiss-format bytes (Faiss's `serialize_index_binary`).
#[pyfunction]
pub fn serialize_index_binary<'py>(
    py: Python<'py>,
    index: &Bound<'py, PyIndexBinary>,
) -> PyResult<U8Vector<'py>> {
    let bytes = index.get().read(py, |i| {
        fathom::io::faiss::index_binary_to_bytes(i).or_raise()
    })?;
    Ok(PyArray1::from_vec(py, bytes))
}

/// The binary index `data` holds (Faiss's `deserialize_index_binary`).
#[pyfunction]
pub fn deserialize_index_binary(py: Python<'_>, data: &ArrayLike<'_>) -> PyResult<Py<PyAny>> {
    let bytes = arrays::bytes(data, "deserialize_index_binary: data")?;
    let index = compute(py, || fathom::io::faiss::read_index_binary_bytes(&bytes)).or_raise()?;
    wrap_binary(py, index)
}

/// The `k` nearest rows of `xb` to each row of `xq` by Hamming distance (Faiss's
/// `knn_hamming`): `(D, I)`, int32 distances and int64 row numbers, shape `(nq, k)`.
#[pyfunction]
pub fn knn_hamming<'py>(
    py: Python<'py>,
    xq: &ArrayLike<'py>,
    xb: &ArrayLike<'py>,
    k: i64,
) -> PyResult<(I32Matrix<'py>, I64Matrix<'py>)> {
    let k = check_k(k)?;
    let shape: Vec<usize> = xb.getattr("shape")?.extract()?;
    let cs = match shape.as_slice() {
        [_, cs] if *cs > 0 => *cs,
        _ => {
            return Err(PyValueError::new_err(format!(
                "knn_hamming: xb must have shape (n, code_size), got {shape:?}"
            )));
        }
    };
    let xb = arrays::codes(xb, "knn_hamming: xb", cs)?;
    let xq = arrays::codes(xq, "knn_hamming: xq", cs)?;
    let res = compute(py, || {
        let mut index = IndexBinaryFlat::new(cs * 8)?;
        index.add(&xb.data)?;
        index.search(&xq.data, k)
    })
    .or_raise()?;
    Ok((
        matrix_out(py, int_distances(&res), xq.n, k)?,
        matrix_out(py, res.labels, xq.n, k)?,
    ))
}

/// Adds the binary classes and functions to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for t in [
        PyIndexBinary::type_object(py),
        PyIndexBinaryFlat::type_object(py),
        PyIndexBinaryIVF::type_object(py),
        PyIndexBinaryHNSW::type_object(py),
        PyBinaryHnsw::type_object(py),
        PyIndexBinaryHash::type_object(py),
        PyIndexBinaryMultiHash::type_object(py),
        PyIndexBinaryFromFloat::type_object(py),
        PyIndexBinaryIDMap::type_object(py),
        PyIndexBinaryIDMap2::type_object(py),
    ] {
        m.add(t.name()?, t)?;
    }
    m.add_function(wrap_pyfunction!(index_binary_factory, m)?)?;
    m.add_function(wrap_pyfunction!(write_index_binary, m)?)?;
    m.add_function(wrap_pyfunction!(read_index_binary, m)?)?;
    m.add_function(wrap_pyfunction!(serialize_index_binary, m)?)?;
    m.add_function(wrap_pyfunction!(deserialize_index_binary, m)?)?;
    m.add_function(wrap_pyfunction!(knn_hamming, m)?)?;
    Ok(())
}
