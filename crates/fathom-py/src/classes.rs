//! Faiss's index classes: constructors with Faiss's arguments, the attributes users set
//! (`nprobe`, `hnsw.efSearch`, `k_factor`, `polysemous_ht`), and [`wrap_index`], which
//! gives an index from `index_factory` or `read_index` its most specific class, as Faiss's
//! Python layer does.

use fathom::ivf::IvfCodecView;
use fathom::quant::QuantizerType;
use fathom::{
    Index, IndexFlat, IndexHnswFlat, IndexHnswPq, IndexHnswSq, IndexIdMap, IndexIdMap2,
    IndexIvfFlat, IndexIvfPq, IndexIvfPqFastScan, IndexIvfPqr, IndexIvfScalarQuantizer, IndexLsh,
    IndexPq, IndexPqFastScan, IndexPreTransform, IndexRefine, IndexScalarQuantizer, IndexShards,
    IndexView, IndexViewMut, MetricType, MultiIndexQuantizer, Part, ShardIds,
};
use numpy::PyArray1;
use pyo3::exceptions::{PyAttributeError, PyValueError};
use pyo3::prelude::*;
use pyo3::type_object::PyTypeInfo;

use crate::arrays::{self, ArrayLike, F32Matrix, I64Matrix, I64Vector, matrix_out};
use crate::errors::{FathomError, OrRaise};
use crate::index::{PyIndex, take_index};
use crate::parts::{PyIvfClusteringParameters, PyObjectVector, with_graph};
use crate::quantizers::{ProductQuantizer, ScalarQuantizer};
use crate::threads::install;
use crate::transforms::take_transform;

fn base(index: impl Index + 'static) -> PyClassInitializer<PyIndex> {
    boxed(Box::new(index))
}

/// `index`, built from the indexes the Python objects `taken` held: each object becomes a
/// view of its place in `index` (`quantizer` goes on working as `index.quantizer`).
pub(crate) fn adopting(
    index: impl Index + 'static,
    taken: &[(&Bound<'_, PyAny>, Part)],
) -> PyResult<PyClassInitializer<PyIndex>> {
    let owner = PyIndex::new(Box::new(index));
    for (from, part) in taken {
        owner.adopted(from, *part)?;
    }
    Ok(PyClassInitializer::from(owner))
}

fn boxed(index: Box<dyn Index>) -> PyClassInitializer<PyIndex> {
    PyClassInitializer::from(PyIndex::new(index))
}

pub(crate) fn count(name: &str, v: i64) -> PyResult<usize> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| PyValueError::new_err(format!("{name} must be at least 1, got {v}")))
}

fn qtype(code: i64) -> PyResult<QuantizerType> {
    u32::try_from(code)
        .ok()
        .and_then(|c| QuantizerType::from_code(c).ok())
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "unknown scalar quantizer type {code}; use ScalarQuantizer.QT_8bit, QT_4bit, \
                 QT_8bit_uniform, QT_4bit_uniform, QT_fp16, QT_8bit_direct, QT_6bit, QT_bf16 \
                 or QT_8bit_direct_signed"
            ))
        })
}

/// The value of the run-time parameter `name` of `index`.
pub(crate) fn get_param(index: &PyIndex, name: &str) -> PyResult<f64> {
    index
        .peek(|i| i.param(name))?
        .ok_or_else(|| PyAttributeError::new_err(format!("this index has no parameter {name:?}")))
}

/// Sets the run-time parameter `name` of `index`.
pub(crate) fn set_param(py: Python<'_>, index: &PyIndex, name: &str, value: f64) -> PyResult<()> {
    let name = name.to_string();
    index.tune(py, move |i| i.set_param(&name, value).or_raise())
}

// ---------------------------------------------------------------- flat

/// Exact search over stored vectors, any metric (Faiss's `IndexFlat`).
#[pyclass(extends = PyIndex, subclass, frozen, module = "fathom", name = "IndexFlat")]
pub struct PyIndexFlat;

#[pymethods]
impl PyIndexFlat {
    /// An empty exact index of dimension `d` for the metric `metric` (a `METRIC_*` code).
    #[new]
    #[pyo3(signature = (d, metric = 1))]
    fn new(d: i64, metric: i64) -> PyResult<PyClassInitializer<Self>> {
        let m = crate::index::metric(metric, 0.0)?;
        Ok(base(IndexFlat::new(count("d", d)?, m).or_raise()?).add_subclass(PyIndexFlat))
    }
}

/// Exact search by squared L2 distance (Faiss's `IndexFlatL2`).
#[pyclass(extends = PyIndexFlat, frozen, module = "fathom", name = "IndexFlatL2")]
pub struct PyIndexFlatL2;

#[pymethods]
impl PyIndexFlatL2 {
    /// An empty exact L2 index of dimension `d`.
    #[new]
    fn new(d: i64) -> PyResult<PyClassInitializer<Self>> {
        Ok(base(IndexFlat::new_l2(count("d", d)?).or_raise()?)
            .add_subclass(PyIndexFlat)
            .add_subclass(PyIndexFlatL2))
    }
}

/// Exact search by inner product (Faiss's `IndexFlatIP`).
#[pyclass(extends = PyIndexFlat, frozen, module = "fathom", name = "IndexFlatIP")]
pub struct PyIndexFlatIP;

#[pymethods]
impl PyIndexFlatIP {
    /// An empty exact inner-product index of dimension `d`.
    #[new]
    fn new(d: i64) -> PyResult<PyClassInitializer<Self>> {
        Ok(base(IndexFlat::new_ip(count("d", d)?).or_raise()?)
            .add_subclass(PyIndexFlat)
            .add_subclass(PyIndexFlatIP))
    }
}

// ---------------------------------------------------------------- IVF

/// The inverted-file indexes: vectors bucketed by their nearest centroid, `nprobe` buckets
/// searched per query (Faiss's `IndexIVF`).
#[pyclass(extends = PyIndex, subclass, frozen, module = "fathom", name = "IndexIVF")]
pub struct PyIndexIVF;

#[pymethods]
impl PyIndexIVF {
    /// How many lists a search visits.
    #[getter]
    fn nprobe(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(get_param(slf.as_super().get(), "nprobe")? as usize)
    }
    #[setter]
    fn set_nprobe(slf: &Bound<'_, Self>, value: i64) -> PyResult<()> {
        set_param(
            slf.py(),
            slf.as_super().get(),
            "nprobe",
            count("nprobe", value)? as f64,
        )
    }
    /// How many codes a search may scan at most (0: no limit).
    #[getter]
    fn max_codes(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(get_param(slf.as_super().get(), "max_codes")? as usize)
    }
    #[setter]
    fn set_max_codes(slf: &Bound<'_, Self>, value: i64) -> PyResult<()> {
        if value < 0 {
            return Err(PyValueError::new_err(format!(
                "max_codes must be ≥ 0, got {value}"
            )));
        }
        set_param(slf.py(), slf.as_super().get(), "max_codes", value as f64)
    }
    /// The number of inverted lists.
    #[getter]
    fn nlist(slf: &Bound<'_, Self>) -> PyResult<usize> {
        slf.as_super()
            .get()
            .peek(|i| with_ivf(i, |nlist, _| nlist))?
            .ok_or_else(|| FathomError::new_err("not an IVF index"))
    }
    /// Whether vectors are encoded relative to their list's centroid (settable before
    /// vectors are added).
    #[getter]
    fn by_residual(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(get_param(slf.as_super().get(), "by_residual")? != 0.0)
    }
    #[setter]
    fn set_by_residual(slf: &Bound<'_, Self>, value: bool) -> PyResult<()> {
        let v = if value { 1.0 } else { 0.0 };
        set_param(slf.py(), slf.as_super().get(), "by_residual", v)
    }
    /// How the coarse quantizer is trained: 0 k-means through it, 1 its own `train`, 2
    /// k-means then added to it (Faiss's `quantizer_trains_alone`).
    #[getter]
    fn quantizer_trains_alone(slf: &Bound<'_, Self>) -> PyResult<i64> {
        Ok(get_param(slf.as_super().get(), "quantizer_trains_alone")? as i64)
    }
    #[setter]
    fn set_quantizer_trains_alone(slf: &Bound<'_, Self>, value: i64) -> PyResult<()> {
        if !(0..=2).contains(&value) {
            return Err(PyValueError::new_err(format!(
                "quantizer_trains_alone is 0, 1 or 2, got {value}"
            )));
        }
        set_param(
            slf.py(),
            slf.as_super().get(),
            "quantizer_trains_alone",
            value as f64,
        )
    }
    /// Whether the index owns its quantizer: always, in fathom (the quantizer moved into
    /// it). Faiss code sets it to hand ownership over; either value is accepted and
    /// changes nothing.
    #[getter]
    fn own_fields(&self) -> bool {
        true
    }
    #[setter]
    fn set_own_fields(&self, value: bool) {
        let _ = value;
    }
    /// Whether the index owns its inverted lists: always, in fathom. Faiss code clears it
    /// before handing lists elsewhere (`merge_ondisk`); either value is accepted and
    /// changes nothing.
    #[getter]
    fn own_invlists(&self) -> bool {
        true
    }
    #[setter]
    fn set_own_invlists(&self, value: bool) {
        let _ = value;
    }

    /// The coarse quantizer: a view of the one this index owns (searches, counts and
    /// run-time parameters such as `quantizer.hnsw.efSearch` work; add/train/reset are
    /// refused, as they would change what the lists rely on).
    #[getter]
    fn quantizer(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        slf.as_super()
            .get()
            .part_required(slf.py(), Part::Quantizer)
    }

    /// The coarse k-means's parameters (Faiss's `index.cp`): `index.cp.niter = 20`
    /// changes this index's next `train`.
    #[getter]
    fn cp(slf: &Bound<'_, Self>) -> PyResult<PyIvfClusteringParameters> {
        Self::nlist(slf)?;
        Ok(PyIvfClusteringParameters {
            owner: slf.as_super().clone().unbind(),
        })
    }
    #[setter]
    fn set_cp(slf: &Bound<'_, Self>, cp: &Bound<'_, PyAny>) -> PyResult<()> {
        crate::parts::assign_cp(slf.py(), slf.as_super().get(), cp)
    }

    /// Adds the rows of `x` to the lists `list_nos` names, one per row, instead of the
    /// lists the quantizer would choose (Faiss's `contrib.ivf_tools.add_preassigned`);
    /// ids are `ids`, or sequential.
    #[pyo3(signature = (x, list_nos, ids = None))]
    fn add_preassigned(
        slf: &Bound<'_, Self>,
        x: &ArrayLike<'_>,
        list_nos: &Bound<'_, PyAny>,
        ids: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let owner = slf.as_super().get();
        let d = owner.peek(|i| i.dim())?;
        let x = arrays::matrix(x, "add_preassigned: x", Some(d))?;
        let lists = arrays::ids_flat(list_nos, "add_preassigned: list_nos")?;
        let ids = ids
            .filter(|i| !i.is_none())
            .map(|i| arrays::ids(i, "add_preassigned: ids"))
            .transpose()?;
        owner.write(slf.py(), "add_preassigned", |i| match i.view_mut() {
            IndexViewMut::Ivf(ivf) => ivf
                .add_preassigned(&x.data, &lists, ids.as_deref())
                .or_raise(),
            _ => Err(FathomError::new_err(
                "add_preassigned applies to IVF indexes (IVF-PQR re-ranks with codes it \
                 computes itself)",
            )),
        })
    }

    /// Copies the entries `subset_type` selects (an `InvertedLists.SUBSET_TYPE_*`, with
    /// its arguments `a1`, `a2`) into `other`, an empty-or-not IVF index of the same kind
    /// trained alike (Faiss's `copy_subset_to`). Returns how many were copied.
    fn copy_subset_to(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyIndex>,
        subset_type: i64,
        a1: i64,
        a2: i64,
    ) -> PyResult<usize> {
        let subset = subset_type_of(subset_type, a1, a2)?;
        let (src, dst) = (&slf.as_super().get().slot, &other.get().slot);
        src.with_pair(dst, slf.py(), "copy_subset_to", |from, to| {
            let ivf = from
                .view()
                .ivf_lists()
                .ok_or_else(|| FathomError::new_err("copy_subset_to: not an IVF index"))?;
            install(|| ivf.copy_subset_to_ivf(to, subset).or_raise())
        })
    }

    /// The inverted lists (Faiss's `index.invlists`): sizes, ids and codes per list.
    #[getter]
    fn invlists(slf: &Bound<'_, Self>) -> PyResult<PyInvertedLists> {
        Self::nlist(slf)?;
        Ok(PyInvertedLists {
            owner: slf.as_super().clone().unbind(),
        })
    }

    /// The search with the coarse step done (Faiss's `search_preassigned`): `Iq` (and
    /// `Dq`), shape `(n, nprobe)`, are the lists each query probes and their distances,
    /// e.g. from `index.quantizer.search(x, nprobe)`. Returns `(D, I)`.
    #[pyo3(signature = (x, k, Iq, Dq = None, *, params = None))]
    #[allow(non_snake_case)]
    fn search_preassigned<'py>(
        slf: &Bound<'py, Self>,
        x: &ArrayLike<'py>,
        k: i64,
        Iq: &ArrayLike<'py>,
        Dq: Option<&ArrayLike<'py>>,
        params: Option<&Bound<'py, crate::selector::SearchParameters>>,
    ) -> PyResult<(F32Matrix<'py>, I64Matrix<'py>)> {
        let py = slf.py();
        let k = crate::index::check_k(k)?;
        let owner = slf.as_super().get();
        let d = owner.peek(|i| i.dim())?;
        let x = arrays::matrix(x, "search_preassigned: x", Some(d))?;
        let coarse = coarse_assignment("search_preassigned", x.n, Iq, Dq)?;
        let mut res = crate::index::with_params(params, |p| {
            owner.read(py, |i| {
                let ivf = ivf_of(i)?;
                ivf.search_preassigned(&x.data, k, &coarse, p).or_raise()
            })
        })?;
        crate::index::faiss_missing_values(&mut res);
        Ok((
            matrix_out(py, res.distances, x.n, k)?,
            matrix_out(py, res.labels, x.n, k)?,
        ))
    }

    /// The range search with the coarse step done (Faiss's `range_search_preassigned`):
    /// `Iq` (and `Dq`) as for `search_preassigned`. Returns `(lims, D, I)`.
    #[pyo3(signature = (x, thresh, Iq, Dq = None, *, params = None))]
    #[allow(non_snake_case, clippy::type_complexity)]
    fn range_search_preassigned<'py>(
        slf: &Bound<'py, Self>,
        x: &ArrayLike<'py>,
        thresh: f32,
        Iq: &ArrayLike<'py>,
        Dq: Option<&ArrayLike<'py>>,
        params: Option<&Bound<'py, crate::selector::SearchParameters>>,
    ) -> PyResult<(
        arrays::U64Vector<'py>,
        arrays::F32Vector<'py>,
        arrays::I64Vector<'py>,
    )> {
        let py = slf.py();
        let owner = slf.as_super().get();
        let d = owner.peek(|i| i.dim())?;
        let x = arrays::matrix(x, "range_search_preassigned: x", Some(d))?;
        let coarse = coarse_assignment("range_search_preassigned", x.n, Iq, Dq)?;
        let res = crate::index::with_params(params, |p| {
            owner.read(py, |i| {
                let ivf = ivf_of(i)?;
                ivf.range_search_preassigned(&x.data, thresh, &coarse, p)
                    .or_raise()
            })
        })?;
        Ok(arrays::range_out(py, res))
    }

    /// The number of vectors in list `list_no`.
    fn get_list_size(slf: &Bound<'_, Self>, list_no: i64) -> PyResult<usize> {
        slf.as_super().get().peek(|i| {
            let ivf = ivf_of(i)?;
            Ok(ivf.invlists().list_size(list_index(list_no, ivf.nlist())?))
        })?
    }

    /// The vector stored at entry `offset` of list `list_no`, decoded.
    fn reconstruct_from_offset<'py>(
        slf: &Bound<'py, Self>,
        list_no: i64,
        offset: i64,
    ) -> PyResult<arrays::F32Vector<'py>> {
        let offset = usize::try_from(offset)
            .map_err(|_| PyValueError::new_err(format!("offset must be ≥ 0, got {offset}")))?;
        let v = slf.as_super().get().read(slf.py(), |i| match i.view() {
            IndexView::Ivf(ivf) => ivf
                .reconstruct_from_offset(list_index(list_no, ivf.nlist())?, offset)
                .or_raise(),
            _ => Err(FathomError::new_err(
                "reconstruct_from_offset applies to IVF indexes (IVF-PQR adds a refinement \
                 its lists do not hold; use reconstruct)",
            )),
        })?;
        Ok(PyArray1::from_vec(slf.py(), v))
    }

    /// Chooses the id → entry map reconstruction and updates use: `DirectMap.NoMap`,
    /// `DirectMap.Array` (ids `0..ntotal` in order) or `DirectMap.Hashtable` (any ids).
    fn set_direct_map_type(slf: &Bound<'_, Self>, t: i64) -> PyResult<()> {
        let kind = match t {
            0 => fathom::ivf::DirectMapType::NoMap,
            1 => fathom::ivf::DirectMapType::Array,
            2 => fathom::ivf::DirectMapType::Hashtable,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "direct map type must be DirectMap.NoMap (0), Array (1) or Hashtable (2), \
                     got {t}"
                )));
            }
        };
        with_ivf_mut(slf, "set_direct_map_type", |ivf| {
            ivf.set_direct_map_type(kind)
        })
    }

    /// Replaces the vectors with ids `keys` by the rows of `x` (re-assigned to lists and
    /// re-encoded); needs a direct map.
    fn update_vectors(
        slf: &Bound<'_, Self>,
        keys: &Bound<'_, PyAny>,
        x: &ArrayLike<'_>,
    ) -> PyResult<()> {
        let d = slf.as_super().get().peek(|i| i.dim())?;
        let keys = arrays::ids(keys, "update_vectors: keys")?;
        let x = arrays::matrix(x, "update_vectors: x", Some(d))?;
        with_ivf_mut(slf, "update_vectors", |ivf| {
            ivf.update_vectors(&keys, &x.data)
        })
    }

    /// Bytes per stored code, list numbers not included.
    #[getter]
    fn code_size(slf: &Bound<'_, Self>) -> PyResult<usize> {
        slf.as_super()
            .get()
            .peek(|i| ivf_of(i).map(|ivf| ivf.invlists().code_size()))?
    }

    /// How a search is spread over threads, as Faiss's `parallel_mode`: 0 over queries,
    /// 1 over each query's lists (Faiss's modes 2 and 3 are refused). Reads −1 while
    /// fathom chooses per search (its default: over queries when there are enough).
    #[getter]
    fn parallel_mode(slf: &Bound<'_, Self>) -> PyResult<i64> {
        Ok(slf
            .as_super()
            .get()
            .peek(|i| i.param("parallel_mode"))?
            .map_or(-1, |v| v as i64))
    }
    #[setter]
    fn set_parallel_mode(slf: &Bound<'_, Self>, value: i64) -> PyResult<()> {
        if value < 0 {
            return Err(PyValueError::new_err(format!(
                "parallel_mode must be 0 (queries) or 1 (lists), got {value}"
            )));
        }
        set_param(
            slf.py(),
            slf.as_super().get(),
            "parallel_mode",
            value as f64,
        )
    }

    /// The number of vectors in each inverted list.
    fn get_list_sizes<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let sizes = slf
            .as_super()
            .get()
            .peek(|i| with_ivf(i, |_, sizes| sizes))?
            .ok_or_else(|| FathomError::new_err("not an IVF index"))?;
        Ok(PyArray1::from_vec(slf.py(), sizes))
    }
}

/// An IVF index's inverted lists (`index.invlists`, Faiss's `InvertedLists`): read-only
/// copies of each list's ids and codes.
#[pyclass(frozen, module = "fathom", name = "InvertedLists")]
pub struct PyInvertedLists {
    owner: Py<PyIndex>,
}

impl PyInvertedLists {
    fn with_lists<T>(
        &self,
        f: impl FnOnce(&dyn fathom::invlists::InvertedLists) -> PyResult<T>,
    ) -> PyResult<T> {
        self.owner.get().peek(|i| match i.view().ivf_lists() {
            Some(ivf) => f(ivf.invlists()),
            None => Err(FathomError::new_err("the index is no longer an IVF index")),
        })?
    }
}

#[pymethods]
impl PyInvertedLists {
    /// `copy_subset_to`: ids in `[a1, a2)`.
    #[classattr]
    const SUBSET_TYPE_ID_RANGE: i64 = 0;
    /// `copy_subset_to`: ids with `id % a1 == a2`.
    #[classattr]
    const SUBSET_TYPE_ID_MOD: i64 = 1;
    /// `copy_subset_to`: the entries between positions `a1` and `a2` of the whole index,
    /// taken from each list in proportion.
    #[classattr]
    const SUBSET_TYPE_ELEMENT_RANGE: i64 = 2;
    /// `copy_subset_to`: slice `a2` of `a1` equal slices of every list.
    #[classattr]
    const SUBSET_TYPE_INVLIST_FRACTION: i64 = 3;
    /// `copy_subset_to`: whole lists `a1..a2`.
    #[classattr]
    const SUBSET_TYPE_INVLIST: i64 = 4;

    /// Number of lists.
    #[getter]
    fn nlist(&self) -> PyResult<usize> {
        self.with_lists(|l| Ok(l.nlist()))
    }
    /// Bytes per code.
    #[getter]
    fn code_size(&self) -> PyResult<usize> {
        self.with_lists(|l| Ok(l.code_size()))
    }
    /// Entries in `list`.
    fn list_size(&self, list: i64) -> PyResult<usize> {
        self.with_lists(|l| Ok(l.list_size(list_index(list, l.nlist())?)))
    }
    /// The ids of `list` (a copy; Faiss returns a pointer, which `rev_swig_ptr` reads).
    fn get_ids<'py>(&self, py: Python<'py>, list: i64) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let ids = self.with_lists(|l| Ok(l.ids(list_index(list, l.nlist())?).to_vec()))?;
        Ok(PyArray1::from_vec(py, ids))
    }
    /// The codes of `list`, `list_size · code_size` bytes (whole blocks for fast-scan
    /// lists, as Faiss); a copy.
    fn get_codes<'py>(&self, py: Python<'py>, list: i64) -> PyResult<Bound<'py, PyArray1<u8>>> {
        let codes = self.with_lists(|l| Ok(l.codes(list_index(list, l.nlist())?).to_vec()))?;
        Ok(PyArray1::from_vec(py, codes))
    }
}

/// Faiss's `rev_swig_ptr(ptr, n)`: here lists come back as arrays, so the first `n`
/// elements of the array given.
#[pyfunction]
pub fn rev_swig_ptr<'py>(
    py: Python<'py>,
    ptr: &Bound<'py, PyAny>,
    n: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let arr = py.import("numpy")?.call_method1("asarray", (ptr,))?;
    arr.get_item(pyo3::types::PySlice::new(py, 0, n as isize, 1))
}

/// The IVF index inside `index` (Faiss's `extract_index_ivf`): `index` itself, or the one
/// its wrappers hold (`index.index`, `index.base_index`), as a view.
#[pyfunction]
pub fn extract_index_ivf<'py>(index: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let mut cur = index.clone();
    for _ in 0..16 {
        if cur.is_instance_of::<PyIndexIVF>() {
            return Ok(cur);
        }
        let inner = ["index", "base_index"]
            .iter()
            .find_map(|a| cur.getattr(*a).ok().filter(|i| !i.is_none()));
        match inner {
            Some(inner) => cur = inner,
            None => break,
        }
    }
    Err(PyValueError::new_err(format!(
        "extract_index_ivf: {} is not an IVF index and holds none",
        index.get_type().name()?
    )))
}

/// Faiss's `InvertedLists::subset_type_t` with its two arguments.
fn subset_type_of(code: i64, a1: i64, a2: i64) -> PyResult<fathom::ivf::SubsetType> {
    use fathom::ivf::SubsetType;
    let size = |name: &str, v: i64| {
        usize::try_from(v).map_err(|_| {
            PyValueError::new_err(format!("copy_subset_to: {name} must be ≥ 0, got {v}"))
        })
    };
    Ok(match code {
        0 => SubsetType::IdRange { start: a1, end: a2 },
        1 => SubsetType::IdMod {
            modulus: a1,
            remainder: a2,
        },
        2 => SubsetType::ElementRange {
            start: size("a1", a1)?,
            end: size("a2", a2)?,
        },
        3 => SubsetType::ListFraction {
            parts: size("a1", a1)?,
            part: size("a2", a2)?,
        },
        4 => SubsetType::Lists {
            start: size("a1", a1)?,
            end: size("a2", a2)?,
        },
        _ => {
            return Err(PyValueError::new_err(format!(
                "copy_subset_to: subset_type is one of InvertedLists.SUBSET_TYPE_* (0..=4), \
                 got {code}"
            )));
        }
    })
}

/// Calls `f(nlist, list sizes)` on whichever IVF type `i` is.
fn with_ivf<T>(i: &dyn Index, f: impl FnOnce(usize, Vec<i64>) -> T) -> Option<T> {
    let ivf = i.view().ivf_lists()?;
    let sizes = ivf.list_sizes().into_iter().map(|n| n as i64).collect();
    Some(f(ivf.nlist(), sizes))
}

/// The coarse assignment a preassigned search is given: `Iq` of shape `(n, nprobe)` and
/// `Dq` alike (zeros when left out).
#[allow(non_snake_case)]
fn coarse_assignment(
    what: &str,
    n: usize,
    Iq: &ArrayLike<'_>,
    Dq: Option<&ArrayLike<'_>>,
) -> PyResult<fathom::SearchResult> {
    let shape: Vec<usize> = Iq.getattr("shape")?.extract()?;
    let nprobe = match shape[..] {
        [rows, p] if rows == n => p,
        _ => {
            return Err(PyValueError::new_err(format!(
                "{what}: Iq must have shape ({n}, nprobe), got {shape:?}"
            )));
        }
    };
    let labels = arrays::ids_flat(Iq, &format!("{what}: Iq"))?;
    let distances = match Dq.filter(|d| !d.is_none()) {
        Some(dq) => arrays::matrix(dq, &format!("{what}: Dq"), Some(nprobe))?.data,
        None => vec![0.0; labels.len()],
    };
    Ok(fathom::SearchResult {
        nq: n,
        k: nprobe,
        distances,
        labels,
    })
}

/// `i` as an IVF index (the IVF-PQR's lists included), or the error saying it is not one.
fn ivf_of(i: &dyn Index) -> PyResult<&dyn fathom::ivf::DynIvf> {
    i.view()
        .ivf_lists()
        .ok_or_else(|| FathomError::new_err("not an IVF index"))
}

/// `list_no` checked against `nlist`.
fn list_index(list_no: i64, nlist: usize) -> PyResult<usize> {
    usize::try_from(list_no)
        .ok()
        .filter(|&l| l < nlist)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "list number {list_no} is out of range: the index has {nlist} lists"
            ))
        })
}

/// Runs `f` on the IVF index under the write lock (`what` names the call in errors).
fn with_ivf_mut(
    slf: &Bound<'_, PyIndexIVF>,
    what: &str,
    f: impl FnOnce(&mut dyn fathom::ivf::DynIvf) -> fathom::Result<()> + Send,
) -> PyResult<()> {
    slf.as_super()
        .get()
        .write(slf.py(), what, |i| match i.view_mut() {
            IndexViewMut::Ivf(ivf) => f(ivf).or_raise(),
            _ => Err(FathomError::new_err(format!(
                "{what} applies to IVF indexes (IVF-PQR keeps its own direct map and \
                 refinement codes)"
            ))),
        })
}

/// Faiss's `DirectMap` kinds, for `IndexIVF.set_direct_map_type`.
#[pyclass(frozen, module = "fathom", name = "DirectMap")]
pub struct PyDirectMap;

#[pymethods]
#[allow(non_upper_case_globals)] // Faiss's names, which Python code spells out
impl PyDirectMap {
    /// No map: reconstruct and update_vectors need one.
    #[classattr]
    const NoMap: i64 = 0;
    /// Ids are `0..ntotal` in insertion order; the map is an array.
    #[classattr]
    const Array: i64 = 1;
    /// Any ids; the map is a hash table.
    #[classattr]
    const Hashtable: i64 = 2;
}

/// Moves `src`'s vectors into `dst` (same kind of flat or IVF index).
pub(crate) fn merge(dst: &mut dyn Index, src: &mut dyn Index, add_id: i64) -> PyResult<()> {
    if matches!(dst.view(), IndexView::Flat(_)) && add_id != 0 {
        return Err(PyValueError::new_err(
            "merge_from: flat indexes number vectors by position; add_id must be 0",
        ));
    }
    dst.merge_from(src, add_id).or_raise()
}

/// Turns the id → entry map of an IVF index on or off.
pub(crate) fn make_direct_map(i: &mut dyn Index, on: bool) -> PyResult<()> {
    match i.view_mut() {
        IndexViewMut::Ivf(ivf) => return ivf.make_direct_map(on).or_raise(),
        // IVFPQR keeps its array map: it re-ranks through it.
        IndexViewMut::IvfPqr(_) if on => return Ok(()),
        IndexViewMut::IvfPqr(_) => {
            return Err(FathomError::new_err(
                "IndexIVFPQR needs its direct map to re-rank; it cannot be dropped",
            ));
        }
        IndexViewMut::Shards(_) | IndexViewMut::Other => {}
    }
    Err(FathomError::new_err(format!(
        "make_direct_map applies to IVF indexes; this is {}",
        i.description()
    )))
}

/// An IVF index over full vectors (Faiss's `IndexIVFFlat`).
#[pyclass(extends = PyIndexIVF, frozen, module = "fathom", name = "IndexIVFFlat")]
pub struct PyIndexIVFFlat;

#[pymethods]
impl PyIndexIVFFlat {
    /// `nlist` lists whose centroids `quantizer` (an index of dimension `d`, usually
    /// `IndexFlatL2(d)`) holds and searches. The quantizer moves into this index.
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, metric = 1))]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        metric: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let (m, nlist) = (crate::index::metric(metric, 0.0)?, count("nlist", nlist)?);
        let q = quantizer_for(quantizer, d, "IndexIVFFlat")?;
        Ok(adopting(
            IndexIvfFlat::new(q, nlist, m).or_raise()?,
            &[(quantizer, Part::Quantizer)],
        )?
        .add_subclass(PyIndexIVF)
        .add_subclass(PyIndexIVFFlat))
    }
}

pub(crate) fn quantizer_for(q: &Bound<'_, PyAny>, d: i64, owner: &str) -> PyResult<Box<dyn Index>> {
    let qd = q
        .cast::<PyIndex>()
        .map_err(|_| PyValueError::new_err(format!("{owner}: quantizer must be a fathom index")))?
        .get()
        .peek(|i| i.dim())?;
    if qd as i64 != d {
        return Err(PyValueError::new_err(format!(
            "{owner}: the quantizer has dimension {qd}, but d = {d}"
        )));
    }
    take_index(q, owner)
}

/// An IVF index over PQ codes of residuals (Faiss's `IndexIVFPQ`).
#[pyclass(extends = PyIndexIVF, subclass, frozen, module = "fathom", name = "IndexIVFPQ")]
pub struct PyIndexIVFPQ;

#[pymethods]
impl PyIndexIVFPQ {
    /// The product quantizer (a copy: Faiss's `index.pq`, for `M`, `nbits`, `centroids`,
    /// `compute_codes`, `decode`).
    #[getter]
    fn pq(slf: &Bound<'_, Self>) -> PyResult<ProductQuantizer> {
        pq_getter(slf.as_super().as_super().get())
    }
    /// Whether `train` also orders the codes for polysemous search (8-bit codes).
    #[getter]
    fn do_polysemous_training(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(get_param(slf.as_super().as_super().get(), "do_polysemous_training")? != 0.0)
    }
    #[setter]
    fn set_do_polysemous_training(slf: &Bound<'_, Self>, value: bool) -> PyResult<()> {
        let v = f64::from(u8::from(value));
        set_param(
            slf.py(),
            slf.as_super().as_super().get(),
            "do_polysemous_training",
            v,
        )
    }
    /// `nlist` lists over `quantizer`, vectors stored as `M` codes of `nbits` bits.
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, M, nbits, metric = 1))]
    #[allow(non_snake_case)]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        M: i64,
        nbits: i64,
        metric: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let m = crate::index::metric(metric, 0.0)?;
        let (nlist, pq_m, nbits) = (
            count("nlist", nlist)?,
            count("M", M)?,
            count("nbits", nbits)?,
        );
        let q = quantizer_for(quantizer, d, "IndexIVFPQ")?;
        Ok(adopting(
            IndexIvfPq::new(q, nlist, pq_m, nbits, m).or_raise()?,
            &[(quantizer, Part::Quantizer)],
        )?
        .add_subclass(PyIndexIVF)
        .add_subclass(PyIndexIVFPQ))
    }
    /// The Hamming threshold of polysemous filtering (`ht`; above the code bits: off).
    #[getter]
    fn polysemous_ht(slf: &Bound<'_, Self>) -> PyResult<u32> {
        Ok(get_param(slf.as_super().as_super().get(), "ht")? as u32)
    }
    #[setter]
    fn set_polysemous_ht(slf: &Bound<'_, Self>, value: u32) -> PyResult<()> {
        set_param(
            slf.py(),
            slf.as_super().as_super().get(),
            "ht",
            value as f64,
        )
    }
}

/// IVF-PQ re-ranked by a second PQ of the residual error (Faiss's `IndexIVFPQR`).
#[pyclass(extends = PyIndexIVFPQ, frozen, module = "fathom", name = "IndexIVFPQR")]
pub struct PyIndexIVFPQR;

#[pymethods]
impl PyIndexIVFPQR {
    /// As `IndexIVFPQ`, plus an `M_refine` × `nbits_refine` refinement PQ (8 bits).
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, M, nbits, M_refine, nbits_refine = 8))]
    #[allow(non_snake_case)]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        M: i64,
        nbits: i64,
        M_refine: i64,
        nbits_refine: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        if nbits_refine != 8 {
            return Err(PyValueError::new_err(format!(
                "IndexIVFPQR: the refinement PQ uses 8-bit codes, got nbits_refine = {nbits_refine}"
            )));
        }
        let (nlist, pq_m, nbits, m_ref) = (
            count("nlist", nlist)?,
            count("M", M)?,
            count("nbits", nbits)?,
            count("M_refine", M_refine)?,
        );
        let q = quantizer_for(quantizer, d, "IndexIVFPQR")?;
        Ok(adopting(
            IndexIvfPqr::new(q, nlist, pq_m, nbits, m_ref).or_raise()?,
            &[(quantizer, Part::Quantizer)],
        )?
        .add_subclass(PyIndexIVF)
        .add_subclass(PyIndexIVFPQ)
        .add_subclass(PyIndexIVFPQR))
    }
    /// How many more candidates than `k` the refinement re-ranks.
    #[getter]
    fn k_factor(slf: &Bound<'_, Self>) -> PyResult<f64> {
        get_param(slf.as_super().as_super().as_super().get(), "k_factor")
    }
    #[setter]
    fn set_k_factor(slf: &Bound<'_, Self>, value: f64) -> PyResult<()> {
        set_param(
            slf.py(),
            slf.as_super().as_super().as_super().get(),
            "k_factor",
            value,
        )
    }
}

/// An IVF index over scalar-quantized residuals (Faiss's `IndexIVFScalarQuantizer`).
#[pyclass(extends = PyIndexIVF, frozen, module = "fathom", name = "IndexIVFScalarQuantizer")]
pub struct PyIndexIVFScalarQuantizer;

#[pymethods]
impl PyIndexIVFScalarQuantizer {
    /// The scalar quantizer (a copy: Faiss's `index.sq`).
    #[getter]
    fn sq(slf: &Bound<'_, Self>) -> PyResult<ScalarQuantizer> {
        sq_getter(slf.as_super().as_super().get())
    }
    /// `nlist` lists over `quantizer`, components coded as `qtype`
    /// (`ScalarQuantizer.QT_8bit`, …).
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, qtype, metric = 1, by_residual = true))]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        qtype: i64,
        metric: i64,
        by_residual: bool,
    ) -> PyResult<PyClassInitializer<Self>> {
        let m = crate::index::metric(metric, 0.0)?;
        let (nlist, qt) = (count("nlist", nlist)?, self::qtype(qtype)?);
        let q = quantizer_for(quantizer, d, "IndexIVFScalarQuantizer")?;
        let mut index = IndexIvfScalarQuantizer::new(q, nlist, qt, m).or_raise()?;
        index.by_residual = by_residual;
        Ok(adopting(index, &[(quantizer, Part::Quantizer)])?
            .add_subclass(PyIndexIVF)
            .add_subclass(PyIndexIVFScalarQuantizer))
    }
}

/// An IVF index over RaBitQ codes relative to the list centroids (Faiss's
/// `IndexIVFRaBitQ`); `qb` sets the query's bits per coordinate.
#[pyclass(extends = PyIndexIVF, frozen, module = "fathom", name = "IndexIVFRaBitQ")]
pub struct PyIndexIVFRaBitQ;

#[pymethods]
impl PyIndexIVFRaBitQ {
    /// `nlist` lists over `quantizer`, `nb_bits` (1 to 9) bits per coordinate.
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, metric = 1, own_invlists = true, nb_bits = 1))]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        metric: i64,
        own_invlists: bool,
        nb_bits: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let _ = own_invlists;
        let m = crate::index::metric(metric, 0.0)?;
        let nlist = count("nlist", nlist)?;
        let q = quantizer_for(quantizer, d, "IndexIVFRaBitQ")?;
        let index =
            fathom::IndexIvfRaBitQ::new(q, nlist, m, count("nb_bits", nb_bits)?).or_raise()?;
        Ok(adopting(index, &[(quantizer, Part::Quantizer)])?
            .add_subclass(PyIndexIVF)
            .add_subclass(PyIndexIVFRaBitQ))
    }
    /// Bits per query coordinate (0: the float query).
    #[getter]
    fn qb(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(get_param(slf.as_super().as_super().get(), "qb")? as usize)
    }
    #[setter]
    fn set_qb(slf: &Bound<'_, Self>, value: usize) -> PyResult<()> {
        set_param(
            slf.py(),
            slf.as_super().as_super().get(),
            "qb",
            value as f64,
        )
    }
}

/// RaBitQ codes searched exhaustively (Faiss's `IndexRaBitQ`); `qb` and `centered` set
/// how queries are quantized.
#[pyclass(extends = PyIndex, frozen, module = "fathom", name = "IndexRaBitQ")]
pub struct PyIndexRaBitQ;

#[pymethods]
impl PyIndexRaBitQ {
    /// An untrained index of dimension `d`, `nb_bits` (1 to 9) bits per coordinate.
    #[new]
    #[pyo3(signature = (d, metric = 1, nb_bits = 1))]
    fn new(d: i64, metric: i64, nb_bits: i64) -> PyResult<PyClassInitializer<Self>> {
        let m = crate::index::metric(metric, 0.0)?;
        let index =
            fathom::IndexRaBitQ::new(count("d", d)?, m, count("nb_bits", nb_bits)?).or_raise()?;
        Ok(base(index).add_subclass(PyIndexRaBitQ))
    }
    /// Bits per query coordinate (0: the float query).
    #[getter]
    fn qb(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(get_param(slf.as_super().get(), "qb")? as usize)
    }
    #[setter]
    fn set_qb(slf: &Bound<'_, Self>, value: usize) -> PyResult<()> {
        set_param(slf.py(), slf.as_super().get(), "qb", value as f64)
    }
    /// Whether queries are quantized over a range centred on zero.
    #[getter]
    fn centered(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(get_param(slf.as_super().get(), "centered")? != 0.0)
    }
    #[setter]
    fn set_centered(slf: &Bound<'_, Self>, value: bool) -> PyResult<()> {
        set_param(
            slf.py(),
            slf.as_super().get(),
            "centered",
            f64::from(u8::from(value)),
        )
    }
}

/// RaBitQ codes in fast-scan blocks, searched exhaustively (Faiss's
/// `IndexRaBitQFastScan`); `qb` (1 to 8, default 8) and `centered` set how queries are
/// quantized.
#[pyclass(extends = PyIndex, frozen, module = "fathom", name = "IndexRaBitQFastScan")]
pub struct PyIndexRaBitQFastScan;

#[pymethods]
impl PyIndexRaBitQFastScan {
    /// An untrained index of dimension `d` (at most 1024), `nb_bits` (1 to 9) bits per
    /// coordinate, Faiss blocks of `bbs` codes.
    #[new]
    #[pyo3(signature = (d, metric = 1, bbs = 32, nb_bits = 1))]
    fn new(d: i64, metric: i64, bbs: i64, nb_bits: i64) -> PyResult<PyClassInitializer<Self>> {
        let m = crate::index::metric(metric, 0.0)?;
        let mut index =
            fathom::IndexRaBitQFastScan::new(count("d", d)?, m, count("nb_bits", nb_bits)?)
                .or_raise()?;
        index.set_bbs(count("bbs", bbs)?).or_raise()?;
        Ok(base(index).add_subclass(PyIndexRaBitQFastScan))
    }
    /// Bits per query coordinate (1 to 8).
    #[getter]
    fn qb(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(get_param(slf.as_super().get(), "qb")? as usize)
    }
    #[setter]
    fn set_qb(slf: &Bound<'_, Self>, value: usize) -> PyResult<()> {
        set_param(slf.py(), slf.as_super().get(), "qb", value as f64)
    }
    /// Whether queries are quantized over a range centred on zero.
    #[getter]
    fn centered(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(get_param(slf.as_super().get(), "centered")? != 0.0)
    }
    #[setter]
    fn set_centered(slf: &Bound<'_, Self>, value: bool) -> PyResult<()> {
        set_param(
            slf.py(),
            slf.as_super().get(),
            "centered",
            f64::from(u8::from(value)),
        )
    }
}

/// An IVF index over RaBitQ codes in fast-scan blocks (Faiss's
/// `IndexIVFRaBitQFastScan`); `qb` (1 to 8, default 8) and `centered` set how queries
/// are quantized.
#[pyclass(extends = PyIndexIVF, frozen, module = "fathom", name = "IndexIVFRaBitQFastScan")]
pub struct PyIndexIVFRaBitQFastScan;

#[pymethods]
impl PyIndexIVFRaBitQFastScan {
    /// `nlist` lists over `quantizer`, `nb_bits` (1 to 9) bits per coordinate, Faiss
    /// blocks of `bbs` codes.
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, metric = 1, bbs = 32, own_invlists = true, nb_bits = 1))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        metric: i64,
        bbs: i64,
        own_invlists: bool,
        nb_bits: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let _ = own_invlists;
        let m = crate::index::metric(metric, 0.0)?;
        let nlist = count("nlist", nlist)?;
        let q = quantizer_for(quantizer, d, "IndexIVFRaBitQFastScan")?;
        let mut index =
            fathom::IndexIvfRaBitQFastScan::new(q, nlist, m, count("nb_bits", nb_bits)?)
                .or_raise()?;
        index.codec_mut().set_bbs(count("bbs", bbs)?).or_raise()?;
        Ok(adopting(index, &[(quantizer, Part::Quantizer)])?
            .add_subclass(PyIndexIVF)
            .add_subclass(PyIndexIVFRaBitQFastScan))
    }
    /// Bits per query coordinate (1 to 8).
    #[getter]
    fn qb(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(get_param(slf.as_super().as_super().get(), "qb")? as usize)
    }
    #[setter]
    fn set_qb(slf: &Bound<'_, Self>, value: usize) -> PyResult<()> {
        set_param(
            slf.py(),
            slf.as_super().as_super().get(),
            "qb",
            value as f64,
        )
    }
    /// Whether queries are quantized over a range centred on zero.
    #[getter]
    fn centered(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(get_param(slf.as_super().as_super().get(), "centered")? != 0.0)
    }
    #[setter]
    fn set_centered(slf: &Bound<'_, Self>, value: bool) -> PyResult<()> {
        set_param(
            slf.py(),
            slf.as_super().as_super().get(),
            "centered",
            f64::from(u8::from(value)),
        )
    }
}

/// An IVF index over 4-bit PQ codes scanned in SIMD blocks (Faiss's `IndexIVFPQFastScan`).
#[pyclass(extends = PyIndexIVF, frozen, module = "fathom", name = "IndexIVFPQFastScan")]
pub struct PyIndexIVFPQFastScan;

#[pymethods]
impl PyIndexIVFPQFastScan {
    /// The product quantizer (a copy: Faiss's `index.pq`, for `M`, `nbits`, `centroids`,
    /// `compute_codes`, `decode`).
    #[getter]
    fn pq(slf: &Bound<'_, Self>) -> PyResult<ProductQuantizer> {
        pq_getter(slf.as_super().as_super().get())
    }
    /// `nlist` lists over `quantizer`, `M` 4-bit codes per vector, stored in blocks of
    /// `bbs` vectors.
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, M, nbits, metric = 1, bbs = 32))]
    #[allow(non_snake_case)]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        M: i64,
        nbits: i64,
        metric: i64,
        bbs: usize,
    ) -> PyResult<PyClassInitializer<Self>> {
        if nbits != 4 {
            return Err(PyValueError::new_err(format!(
                "IndexIVFPQFastScan codes are 4-bit, got nbits = {nbits}"
            )));
        }
        let m = crate::index::metric(metric, 0.0)?;
        let (nlist, pq_m) = (count("nlist", nlist)?, count("M", M)?);
        let q = quantizer_for(quantizer, d, "IndexIVFPQFastScan")?;
        let mut index = IndexIvfPqFastScan::new(q, nlist, pq_m, m).or_raise()?;
        index.codec_mut().set_bbs(bbs).or_raise()?;
        Ok(adopting(index, &[(quantizer, Part::Quantizer)])?
            .add_subclass(PyIndexIVF)
            .add_subclass(PyIndexIVFPQFastScan))
    }
}

// ---------------------------------------------------------------- codes without IVF

/// Product-quantizer codes searched exhaustively (Faiss's `IndexPQ`).
#[pyclass(extends = PyIndex, frozen, module = "fathom", name = "IndexPQ")]
pub struct PyIndexPQ;

#[pymethods]
#[allow(non_upper_case_globals)]
impl PyIndexPQ {
    /// Asymmetric distances (the default).
    #[classattr]
    const ST_PQ: u32 = 0;
    /// Hamming distances between codes (after polysemous training).
    #[classattr]
    const ST_HE: u32 = 1;
    /// Generalized Hamming (not implemented; setting it is refused).
    #[classattr]
    const ST_generalized_HE: u32 = 2;
    /// Symmetric distances: the query is coded too.
    #[classattr]
    const ST_SDC: u32 = 3;
    /// Hamming filter (`polysemous_ht`), then asymmetric distances.
    #[classattr]
    const ST_polysemous: u32 = 4;
    /// Generalized polysemous (not implemented; setting it is refused).
    #[classattr]
    const ST_polysemous_generalize: u32 = 5;

    /// The product quantizer (a copy: Faiss's `index.pq`, for `M`, `nbits`, `centroids`,
    /// `compute_codes`, `decode`).
    #[getter]
    fn pq(slf: &Bound<'_, Self>) -> PyResult<ProductQuantizer> {
        pq_getter(slf.as_super().get())
    }
    /// How codes are compared with a query: one of the `ST_*` class attributes.
    #[getter]
    fn search_type(slf: &Bound<'_, Self>) -> PyResult<u32> {
        Ok(get_param(slf.as_super().get(), "search_type")? as u32)
    }
    #[setter]
    fn set_search_type(slf: &Bound<'_, Self>, value: i64) -> PyResult<()> {
        set_param(slf.py(), slf.as_super().get(), "search_type", value as f64)
    }
    /// Whether `train` also orders the codes for polysemous search (8-bit codes).
    #[getter]
    fn do_polysemous_training(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(get_param(slf.as_super().get(), "do_polysemous_training")? != 0.0)
    }
    #[setter]
    fn set_do_polysemous_training(slf: &Bound<'_, Self>, value: bool) -> PyResult<()> {
        let v = f64::from(u8::from(value));
        set_param(slf.py(), slf.as_super().get(), "do_polysemous_training", v)
    }
    /// `M` sub-quantizers of `nbits` bits over vectors of dimension `d`.
    #[new]
    #[pyo3(signature = (d, M, nbits, metric = 1))]
    #[allow(non_snake_case)]
    fn new(d: i64, M: i64, nbits: i64, metric: i64) -> PyResult<PyClassInitializer<Self>> {
        let m = crate::index::metric(metric, 0.0)?;
        let index = IndexPq::new(count("d", d)?, count("M", M)?, count("nbits", nbits)?, m);
        Ok(base(index.or_raise()?).add_subclass(PyIndexPQ))
    }
    /// The Hamming threshold of polysemous search; setting it turns polysemous search on.
    #[getter]
    fn polysemous_ht(slf: &Bound<'_, Self>) -> PyResult<u32> {
        Ok(get_param(slf.as_super().get(), "ht")? as u32)
    }
    #[setter]
    fn set_polysemous_ht(slf: &Bound<'_, Self>, value: u32) -> PyResult<()> {
        set_param(slf.py(), slf.as_super().get(), "ht", value as f64)
    }
}

/// 4-bit PQ codes scanned in SIMD blocks (Faiss's `IndexPQFastScan`).
#[pyclass(extends = PyIndex, frozen, module = "fathom", name = "IndexPQFastScan")]
pub struct PyIndexPQFastScan;

#[pymethods]
impl PyIndexPQFastScan {
    /// The product quantizer (a copy: Faiss's `index.pq`, for `M`, `nbits`, `centroids`,
    /// `compute_codes`, `decode`).
    #[getter]
    fn pq(slf: &Bound<'_, Self>) -> PyResult<ProductQuantizer> {
        pq_getter(slf.as_super().get())
    }
    /// `M` 4-bit sub-quantizers over vectors of dimension `d`, codes stored in blocks of
    /// `bbs` vectors.
    #[new]
    #[pyo3(signature = (d, M, nbits, metric = 1, bbs = 32))]
    #[allow(non_snake_case)]
    fn new(
        d: i64,
        M: i64,
        nbits: i64,
        metric: i64,
        bbs: usize,
    ) -> PyResult<PyClassInitializer<Self>> {
        if nbits != 4 {
            return Err(PyValueError::new_err(format!(
                "IndexPQFastScan codes are 4-bit, got nbits = {nbits}"
            )));
        }
        let m = crate::index::metric(metric, 0.0)?;
        let mut index = IndexPqFastScan::new(count("d", d)?, count("M", M)?, m).or_raise()?;
        index.set_bbs(bbs).or_raise()?;
        Ok(base(index).add_subclass(PyIndexPQFastScan))
    }
}

/// Per-component scalar quantization (Faiss's `IndexScalarQuantizer`).
#[pyclass(extends = PyIndex, frozen, module = "fathom", name = "IndexScalarQuantizer")]
pub struct PyIndexScalarQuantizer;

#[pymethods]
impl PyIndexScalarQuantizer {
    /// The scalar quantizer (a copy: Faiss's `index.sq`).
    #[getter]
    fn sq(slf: &Bound<'_, Self>) -> PyResult<ScalarQuantizer> {
        sq_getter(slf.as_super().get())
    }
    /// Vectors of dimension `d`, components coded as `qtype` (`ScalarQuantizer.QT_8bit`, …).
    #[new]
    #[pyo3(signature = (d, qtype, metric = 1))]
    fn new(d: i64, qtype: i64, metric: i64) -> PyResult<PyClassInitializer<Self>> {
        let m = crate::index::metric(metric, 0.0)?;
        let index = IndexScalarQuantizer::new(count("d", d)?, self::qtype(qtype)?, m).or_raise()?;
        Ok(base(index).add_subclass(PyIndexScalarQuantizer))
    }
}

/// Sign bits of (optionally rotated) vectors compared by Hamming distance (Faiss's
/// `IndexLSH`).
#[pyclass(extends = PyIndex, frozen, module = "fathom", name = "IndexLSH")]
pub struct PyIndexLSH;

#[pymethods]
impl PyIndexLSH {
    /// `nbits` bits per vector of dimension `d`.
    #[new]
    #[pyo3(signature = (d, nbits, rotate_data = true, train_thresholds = false))]
    fn new(
        d: i64,
        nbits: i64,
        rotate_data: bool,
        train_thresholds: bool,
    ) -> PyResult<PyClassInitializer<Self>> {
        let index = IndexLsh::new(
            count("d", d)?,
            count("nbits", nbits)?,
            rotate_data,
            train_thresholds,
        );
        Ok(base(index.or_raise()?).add_subclass(PyIndexLSH))
    }
}

// ---------------------------------------------------------------- HNSW

/// HNSW graph indexes (Faiss's `IndexHNSW`); `index.hnsw.efSearch` sets the search breadth.
#[pyclass(extends = PyIndex, subclass, frozen, module = "fathom", name = "IndexHNSW")]
pub struct PyIndexHNSW;

#[pymethods]
impl PyIndexHNSW {
    /// The vectors or codes the graph links (a view of the storage this index owns).
    #[getter]
    fn storage(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        slf.as_super().get().part_required(slf.py(), Part::Storage)
    }
    /// The graph's parameters: `efSearch`, `efConstruction`.
    #[getter]
    fn hnsw(slf: &Bound<'_, Self>) -> PyHnsw {
        PyHnsw {
            owner: slf.as_super().clone().unbind(),
        }
    }
}

/// The parameters of an HNSW index's graph (`index.hnsw`); changes apply to that index.
#[pyclass(frozen, module = "fathom", name = "HNSW")]
pub struct PyHnsw {
    owner: Py<PyIndex>,
}

#[pymethods]
impl PyHnsw {
    /// The number of levels of each node (its top level + 1), Faiss's `hnsw.levels`.
    #[getter]
    fn levels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let v = with_graph(self.owner.get(), |g| g.levels().to_vec())?;
        Ok(PyArray1::from_vec(py, v))
    }
    /// Where each node's links start in `neighbors` (`ntotal + 1` entries).
    #[getter]
    fn offsets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let v = with_graph(self.owner.get(), |g| g.offsets())?;
        Ok(PyArray1::from_vec(py, v))
    }
    /// Every node's links, level 0 first, −1 in unused slots (Faiss's layout).
    #[getter]
    fn neighbors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let v = with_graph(self.owner.get(), |g| g.neighbors())?;
        Ok(PyArray1::from_vec(py, v))
    }
    /// Where each level's links start within a node's (`cum_nneighbor_per_level`).
    #[getter]
    fn cum_nneighbor_per_level<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let v = with_graph(self.owner.get(), |g| g.cum_nneighbor_per_level().to_vec())?;
        Ok(PyArray1::from_vec(py, v))
    }
    /// The probability of a new node reaching each level.
    #[getter]
    fn assign_probas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let v = with_graph(self.owner.get(), |g| g.assign_probas().to_vec())?;
        Ok(PyArray1::from_vec(py, v))
    }
    /// The node searches start from (−1 while empty).
    #[getter]
    fn entry_point(&self) -> PyResult<i32> {
        with_graph(self.owner.get(), |g| g.entry_point())
    }
    /// The entry point's level (−1 while empty).
    #[getter]
    fn max_level(&self) -> PyResult<i32> {
        with_graph(self.owner.get(), |g| g.max_level())
    }
    /// Link slots per node on `layer`.
    fn nb_neighbors(&self, layer: i64) -> PyResult<i32> {
        with_graph(self.owner.get(), |g| {
            let cum = g.cum_nneighbor_per_level();
            usize::try_from(layer)
                .ok()
                .filter(|&l| l + 1 < cum.len())
                .map(|l| cum[l + 1] - cum[l])
                .ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "layer {layer} is outside 0..{}",
                        cum.len().saturating_sub(1)
                    ))
                })
        })?
    }
    /// `(begin, end)`: where node `no`'s links on `layer` lie in `neighbors`.
    fn neighbor_range(&self, no: i64, layer: i64) -> PyResult<(u64, u64)> {
        with_graph(self.owner.get(), |g| {
            let (levels, cum) = (g.levels(), g.cum_nneighbor_per_level());
            let node = usize::try_from(no)
                .ok()
                .filter(|&n| n < levels.len())
                .ok_or_else(|| {
                    PyValueError::new_err(format!("node {no} is outside 0..{}", levels.len()))
                })?;
            let layer = usize::try_from(layer)
                .ok()
                .filter(|&l| (l as i64) < i64::from(levels[node]) && l + 1 < cum.len())
                .ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "node {no} has levels 0..{}, not {layer}",
                        levels[node]
                    ))
                })?;
            let start = g.offsets()[node];
            Ok((start + cum[layer] as u64, start + cum[layer + 1] as u64))
        })?
    }
    /// How many candidates a search keeps (at least `k` are used).
    #[getter(efSearch)]
    fn ef_search(&self) -> PyResult<usize> {
        Ok(get_param(self.owner.get(), "efSearch")? as usize)
    }
    #[setter(efSearch)]
    fn set_ef_search(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        set_param(
            py,
            self.owner.get(),
            "efSearch",
            count("efSearch", value)? as f64,
        )
    }
    /// How many candidates an insertion considers.
    #[getter(efConstruction)]
    fn ef_construction(&self) -> PyResult<usize> {
        Ok(get_param(self.owner.get(), "efConstruction")? as usize)
    }
    #[setter(efConstruction)]
    fn set_ef_construction(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        let v = count("efConstruction", value)? as f64;
        set_param(py, self.owner.get(), "efConstruction", v)
    }
    /// The fraction of a full adjacency list left free when it is pruned (0.2 as Faiss ≥
    /// 1.15; clamped to 0..0.5 where used): faster builds; 0 is the older Faiss's build.
    #[getter]
    fn prune_headroom(&self) -> PyResult<f64> {
        get_param(self.owner.get(), "prune_headroom")
    }
    #[setter]
    fn set_prune_headroom(&self, py: Python<'_>, value: f64) -> PyResult<()> {
        set_param(py, self.owner.get(), "prune_headroom", value)
    }
    /// At most this many links for a new node on each level (0: as many as the level
    /// holds, as Faiss; `M`: hnswlib's faster build). A fathom extension.
    #[getter]
    fn max_new_links(&self) -> PyResult<usize> {
        Ok(get_param(self.owner.get(), "max_new_links")? as usize)
    }
    #[setter]
    fn set_max_new_links(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        // The index checks it: a non-negative integer.
        set_param(py, self.owner.get(), "max_new_links", value as f64)
    }
}

/// HNSW over full vectors (Faiss's `IndexHNSWFlat`).
#[pyclass(extends = PyIndexHNSW, frozen, module = "fathom", name = "IndexHNSWFlat")]
pub struct PyIndexHNSWFlat;

#[pymethods]
impl PyIndexHNSWFlat {
    /// Vectors of dimension `d`, `M` links per node.
    #[new]
    #[pyo3(signature = (d, M = 32, metric = 1))]
    #[allow(non_snake_case)]
    fn new(d: i64, M: i64, metric: i64) -> PyResult<PyClassInitializer<Self>> {
        let m = crate::index::metric(metric, 0.0)?;
        let index = IndexHnswFlat::new_flat(count("d", d)?, count("M", M)?, m).or_raise()?;
        Ok(base(index)
            .add_subclass(PyIndexHNSW)
            .add_subclass(PyIndexHNSWFlat))
    }
}

/// HNSW over scalar-quantized vectors (Faiss's `IndexHNSWSQ`).
#[pyclass(extends = PyIndexHNSW, frozen, module = "fathom", name = "IndexHNSWSQ")]
pub struct PyIndexHNSWSQ;

#[pymethods]
impl PyIndexHNSWSQ {
    /// Vectors of dimension `d` coded as `qtype`, `M` links per node.
    #[new]
    #[pyo3(signature = (d, qtype, M = 32, metric = 1))]
    #[allow(non_snake_case)]
    fn new(d: i64, qtype: i64, M: i64, metric: i64) -> PyResult<PyClassInitializer<Self>> {
        let m = crate::index::metric(metric, 0.0)?;
        let index = IndexHnswSq::new_sq(count("d", d)?, self::qtype(qtype)?, count("M", M)?, m);
        Ok(base(index.or_raise()?)
            .add_subclass(PyIndexHNSW)
            .add_subclass(PyIndexHNSWSQ))
    }
}

/// HNSW over PQ codes (Faiss's `IndexHNSWPQ`).
#[pyclass(extends = PyIndexHNSW, frozen, module = "fathom", name = "IndexHNSWPQ")]
pub struct PyIndexHNSWPQ;

#[pymethods]
impl PyIndexHNSWPQ {
    /// Vectors of dimension `d` as `pq_m` × `pq_nbits` PQ codes, `M` links per node.
    #[new]
    #[pyo3(signature = (d, pq_m, M, pq_nbits = 8, metric = 1))]
    #[allow(non_snake_case)]
    fn new(
        d: i64,
        pq_m: i64,
        M: i64,
        pq_nbits: i64,
        metric: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let m = crate::index::metric(metric, 0.0)?;
        let index = IndexHnswPq::new_pq(
            count("d", d)?,
            count("pq_m", pq_m)?,
            count("M", M)?,
            count("pq_nbits", pq_nbits)?,
            m,
        );
        Ok(base(index.or_raise()?)
            .add_subclass(PyIndexHNSW)
            .add_subclass(PyIndexHNSWPQ))
    }
}

// ---------------------------------------------------------------- wrappers

/// User-chosen int64 ids over any index (Faiss's `IndexIDMap`).
#[pyclass(extends = PyIndex, subclass, frozen, module = "fathom", name = "IndexIDMap")]
pub struct PyIndexIDMap;

#[pymethods]
impl PyIndexIDMap {
    /// The index holding the vectors (a view of the one this index owns).
    #[getter]
    fn index(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        slf.as_super().get().part_required(slf.py(), Part::Inner)
    }
    /// Wraps `index` (empty; it moves into this one). Add with `add_with_ids`.
    #[new]
    fn new(index: &Bound<'_, PyAny>) -> PyResult<PyClassInitializer<Self>> {
        let inner = take_nonempty_checked(index, "IndexIDMap")?;
        Ok(adopting(IndexIdMap::new(inner), &[(index, Part::Inner)])?.add_subclass(PyIndexIDMap))
    }
    /// The id of each stored vector, in storage order.
    #[getter]
    fn id_map<'py>(slf: &Bound<'py, Self>) -> PyResult<I64Vector<'py>> {
        let ids = slf.as_super().get().peek(|i| match i.view() {
            IndexView::IdMap { ids, .. } => Some(ids.to_vec()),
            _ => None,
        })?;
        let ids = ids.ok_or_else(|| FathomError::new_err("not an id map"))?;
        Ok(PyArray1::from_vec(slf.py(), ids))
    }
}

fn take_nonempty_checked(index: &Bound<'_, PyAny>, owner: &str) -> PyResult<Box<dyn Index>> {
    let n = index
        .cast::<PyIndex>()
        .map_err(|_| PyValueError::new_err(format!("{owner} wraps a fathom index")))?
        .get()
        .peek(|i| i.ntotal())?;
    if n != 0 {
        return Err(PyValueError::new_err(format!(
            "{owner} needs an empty index to wrap, got one with {n} vectors"
        )));
    }
    take_index(index, owner)
}

/// `IndexIDMap` that can also reconstruct by id (Faiss's `IndexIDMap2`).
#[pyclass(extends = PyIndexIDMap, frozen, module = "fathom", name = "IndexIDMap2")]
pub struct PyIndexIDMap2;

#[pymethods]
impl PyIndexIDMap2 {
    /// Wraps `index` (empty; it moves into this one).
    #[new]
    fn new(index: &Bound<'_, PyAny>) -> PyResult<PyClassInitializer<Self>> {
        let inner = take_nonempty_checked(index, "IndexIDMap2")?;
        Ok(adopting(IndexIdMap2::new(inner), &[(index, Part::Inner)])?
            .add_subclass(PyIndexIDMap)
            .add_subclass(PyIndexIDMap2))
    }
}

/// A vector transform in front of an index (Faiss's `IndexPreTransform`).
#[pyclass(extends = PyIndex, frozen, module = "fathom", name = "IndexPreTransform")]
pub struct PyIndexPreTransform;

#[pymethods]
impl PyIndexPreTransform {
    /// The index searched with transformed vectors (a view of the one this index owns).
    #[getter]
    fn index(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        slf.as_super().get().part_required(slf.py(), Part::Inner)
    }
    /// The transforms, first applied first (copies; `chain.at(i)`, `chain.size()`).
    #[getter]
    fn chain(slf: &Bound<'_, Self>) -> PyResult<PyObjectVector> {
        PyObjectVector::chain_of(slf.py(), slf.as_super().get())
    }
    /// `transform` (e.g. a `PCAMatrix`) applied before `index`; both move into this one.
    #[new]
    fn new(
        transform: &Bound<'_, PyAny>,
        index: &Bound<'_, PyAny>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let t = take_transform(transform, "IndexPreTransform")?;
        let inner = take_index(index, "IndexPreTransform")?;
        let wrapped = IndexPreTransform::new(t, inner).or_raise()?;
        Ok(adopting(wrapped, &[(index, Part::Inner)])?.add_subclass(PyIndexPreTransform))
    }
}

/// An index whose results another index re-ranks (Faiss's `IndexRefine`).
#[pyclass(extends = PyIndex, subclass, frozen, module = "fathom", name = "IndexRefine")]
pub struct PyIndexRefine;

#[pymethods]
impl PyIndexRefine {
    /// The index that finds the candidates (a view of the one this index owns).
    #[getter]
    fn base_index(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        slf.as_super().get().part_required(slf.py(), Part::Inner)
    }
    /// The index that re-ranks them (a view of the one this index owns).
    #[getter]
    fn refine_index(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        slf.as_super().get().part_required(slf.py(), Part::Refine)
    }
    /// `base_index` finds `k_factor · k` candidates, `refine_index` re-ranks them; both
    /// move into this one.
    #[new]
    fn new(
        base_index: &Bound<'_, PyAny>,
        refine_index: &Bound<'_, PyAny>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let b = take_index(base_index, "IndexRefine")?;
        let r = take_index(refine_index, "IndexRefine")?;
        let refine = IndexRefine::new(b, r).or_raise()?;
        let taken = [(base_index, Part::Inner), (refine_index, Part::Refine)];
        Ok(adopting(refine, &taken)?.add_subclass(PyIndexRefine))
    }
    /// How many more candidates than `k` the refinement re-ranks.
    #[getter]
    fn k_factor(slf: &Bound<'_, Self>) -> PyResult<f64> {
        get_param(slf.as_super().get(), "k_factor_rf")
    }
    #[setter]
    fn set_k_factor(slf: &Bound<'_, Self>, value: f64) -> PyResult<()> {
        set_param(slf.py(), slf.as_super().get(), "k_factor_rf", value)
    }
}

/// An index re-ranked by exact distances to the stored vectors (Faiss's
/// `IndexRefineFlat`).
#[pyclass(extends = PyIndexRefine, frozen, module = "fathom", name = "IndexRefineFlat")]
pub struct PyIndexRefineFlat;

#[pymethods]
impl PyIndexRefineFlat {
    /// `base_index` (empty; it moves into this one) re-ranked by exact distances.
    #[new]
    fn new(base_index: &Bound<'_, PyAny>) -> PyResult<PyClassInitializer<Self>> {
        let b = take_nonempty_checked(base_index, "IndexRefineFlat")?;
        let flat = IndexFlat::new(b.dim(), b.metric()).or_raise()?;
        Ok(adopting(
            IndexRefine::new(b, Box::new(flat)).or_raise()?,
            &[(base_index, Part::Inner)],
        )?
        .add_subclass(PyIndexRefine)
        .add_subclass(PyIndexRefineFlat))
    }
}

/// Several indexes searched in parallel as one (Faiss's `IndexShards`).
#[pyclass(extends = PyIndex, frozen, module = "fathom", name = "IndexShards")]
pub struct PyIndexShards;

#[pymethods]
impl PyIndexShards {
    /// Shard `i` (a view of the one this index owns).
    fn at(slf: &Bound<'_, Self>, i: i64) -> PyResult<Py<PyAny>> {
        let owner = slf.as_super().get();
        let n = Self::count(slf)?;
        let part = usize::try_from(i).ok().filter(|&i| i < n).ok_or_else(|| {
            pyo3::exceptions::PyIndexError::new_err(format!("shard {i} is outside 0..{n}"))
        })?;
        owner.part_required(slf.py(), Part::Shard(part))
    }
    /// The number of shards.
    fn count(slf: &Bound<'_, Self>) -> PyResult<usize> {
        slf.as_super().get().peek(|s| match s.view() {
            IndexView::Shards(s) => s.shards().len(),
            _ => 0,
        })
    }
    /// An empty set of shards of dimension `d`. With `successive_ids` the shards number
    /// their vectors by position and this index gives them successive ids; otherwise the
    /// shards hold ids themselves (e.g. `IndexIDMap`s). `threaded` is accepted for Faiss
    /// compatibility (shards are always searched in parallel).
    #[new]
    #[pyo3(signature = (d, threaded = false, successive_ids = true, metric = 1))]
    fn new(
        d: i64,
        threaded: bool,
        successive_ids: bool,
        metric: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let _ = threaded;
        let mode = if successive_ids {
            ShardIds::Sequential
        } else {
            ShardIds::Explicit
        };
        let m = crate::index::metric(metric, 0.0)?;
        Ok(base(IndexShards::new(count("d", d)?, m, mode)).add_subclass(PyIndexShards))
    }
    /// Adds `index` as a shard (it moves into this one).
    fn add_shard(slf: &Bound<'_, Self>, index: &Bound<'_, PyAny>) -> PyResult<()> {
        let shard = take_index(index, "IndexShards")?;
        let owner = slf.as_super().get();
        let at = owner.write(slf.py(), "add_shard", move |i| {
            let IndexViewMut::Shards(shards) = i.view_mut() else {
                return Err(FathomError::new_err("not an IndexShards"));
            };
            shards.add_shard(shard).or_raise()?;
            Ok(shards.shards().len() - 1)
        })?;
        owner.adopted(index, Part::Shard(at))
    }
}

/// The inverted multi-index's coarse quantizer (Faiss's `MultiIndexQuantizer`).
#[pyclass(extends = PyIndex, frozen, module = "fathom", name = "MultiIndexQuantizer")]
pub struct PyMultiIndexQuantizer;

#[pymethods]
impl PyMultiIndexQuantizer {
    /// `M` sub-quantizers of `nbits` bits: `2^(M·nbits)` cells.
    #[new]
    #[allow(non_snake_case)]
    fn new(d: i64, M: i64, nbits: i64) -> PyResult<PyClassInitializer<Self>> {
        let q = MultiIndexQuantizer::new(count("d", d)?, count("M", M)?, count("nbits", nbits)?);
        Ok(base(q.or_raise()?).add_subclass(PyMultiIndexQuantizer))
    }
}

// ---------------------------------------------------------------- from Rust to Python

fn obj<T: pyo3::PyClass>(py: Python<'_>, init: PyClassInitializer<T>) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, init)?.into_any())
}

/// Gives `index` its most specific Python class (`IndexIVFFlat`, `IndexHNSWFlat`, …),
/// `Index` for types without one.
pub fn wrap_index(py: Python<'_>, index: Box<dyn Index>) -> PyResult<Py<PyAny>> {
    wrap(py, PyIndex::new(index))
}

/// Gives `base` (an index of its own, or a view of part of another) its most specific
/// Python class.
pub(crate) fn wrap(py: Python<'_>, base: PyIndex) -> PyResult<Py<PyAny>> {
    /// The most specific class of an index, decided from its view before the index moves.
    enum Class {
        Flat(MetricType),
        Ivf(IvfClass),
        IvfPqr,
        Hnsw(Option<HnswClass>),
        Pq,
        PqFastScan,
        ScalarQuantizer,
        Lsh,
        RaBitQ,
        RaBitQFastScan,
        AdditiveQuantizer,
        AqFastScan,
        ResidualCoarseQuantizer,
        LocalSearchCoarseQuantizer,
        IdMap { two_way: bool },
        PreTransform,
        Refine,
        Shards,
        MultiIndexQuantizer,
        Base,
    }
    enum IvfClass {
        Flat,
        Pq,
        ScalarQuantizer,
        PqFastScan,
        RaBitQ,
        RaBitQFastScan,
        AdditiveQuantizer(crate::additive::AqClass),
        AqFastScan(crate::additive::AqClass),
        Base,
    }
    enum HnswClass {
        Flat,
        ScalarQuantizer,
        Pq,
    }
    let class = base.peek(|index| match index.view() {
        IndexView::Flat(f) => Class::Flat(f.metric()),
        IndexView::Ivf(ivf) => Class::Ivf(match ivf.codec() {
            IvfCodecView::Flat(_) => IvfClass::Flat,
            IvfCodecView::Pq(_) => IvfClass::Pq,
            IvfCodecView::ScalarQuantizer(_) => IvfClass::ScalarQuantizer,
            IvfCodecView::PqFastScan(_) => IvfClass::PqFastScan,
            IvfCodecView::RaBitQ(_) => IvfClass::RaBitQ,
            IvfCodecView::RaBitQFastScan(_) => IvfClass::RaBitQFastScan,
            IvfCodecView::AdditiveQuantizer(c) => {
                IvfClass::AdditiveQuantizer(crate::additive::class_of(c.aq()))
            }
            IvfCodecView::AqFastScan(c) => IvfClass::AqFastScan(crate::additive::class_of(c.aq())),
            IvfCodecView::Other => IvfClass::Base,
        }),
        IndexView::IvfPqr(_) => Class::IvfPqr,
        IndexView::Hnsw { storage, .. } => Class::Hnsw(match storage.view() {
            IndexView::Flat(_) => Some(HnswClass::Flat),
            IndexView::ScalarQuantizer(_) => Some(HnswClass::ScalarQuantizer),
            IndexView::Pq(_) => Some(HnswClass::Pq),
            _ => None,
        }),
        IndexView::Pq(_) => Class::Pq,
        IndexView::PqFastScan(_) => Class::PqFastScan,
        IndexView::ScalarQuantizer(_) => Class::ScalarQuantizer,
        IndexView::Lsh(_) => Class::Lsh,
        IndexView::RaBitQ(_) => Class::RaBitQ,
        IndexView::RaBitQFastScan(_) => Class::RaBitQFastScan,
        IndexView::AdditiveQuantizer(_) => Class::AdditiveQuantizer,
        IndexView::AqFastScan(_) => Class::AqFastScan,
        IndexView::AdditiveCoarseQuantizer(q) => match q.aq().kind() {
            fathom::quant::additive::AqKind::LocalSearch(_) => Class::LocalSearchCoarseQuantizer,
            _ => Class::ResidualCoarseQuantizer,
        },
        IndexView::IdMap { two_way, .. } => Class::IdMap { two_way },
        IndexView::PreTransform { .. } => Class::PreTransform,
        IndexView::Refine(_) => Class::Refine,
        IndexView::Shards(_) => Class::Shards,
        IndexView::MultiIndexQuantizer(_) => Class::MultiIndexQuantizer,
        IndexView::Other => Class::Base,
    })?;
    match class {
        Class::Flat(metric) => {
            let b = PyClassInitializer::from(base).add_subclass(PyIndexFlat);
            match metric {
                MetricType::L2 => obj(py, b.add_subclass(PyIndexFlatL2)),
                MetricType::InnerProduct => obj(py, b.add_subclass(PyIndexFlatIP)),
                _ => obj(py, b),
            }
        }
        Class::Ivf(IvfClass::Flat) => obj(
            py,
            PyClassInitializer::from(base)
                .add_subclass(PyIndexIVF)
                .add_subclass(PyIndexIVFFlat),
        ),
        Class::Ivf(IvfClass::Pq) => obj(
            py,
            PyClassInitializer::from(base)
                .add_subclass(PyIndexIVF)
                .add_subclass(PyIndexIVFPQ),
        ),
        Class::Ivf(IvfClass::ScalarQuantizer) => obj(
            py,
            PyClassInitializer::from(base)
                .add_subclass(PyIndexIVF)
                .add_subclass(PyIndexIVFScalarQuantizer),
        ),
        Class::Ivf(IvfClass::PqFastScan) => obj(
            py,
            PyClassInitializer::from(base)
                .add_subclass(PyIndexIVF)
                .add_subclass(PyIndexIVFPQFastScan),
        ),
        Class::Ivf(IvfClass::RaBitQ) => obj(
            py,
            PyClassInitializer::from(base)
                .add_subclass(PyIndexIVF)
                .add_subclass(PyIndexIVFRaBitQ),
        ),
        Class::Ivf(IvfClass::RaBitQFastScan) => obj(
            py,
            PyClassInitializer::from(base)
                .add_subclass(PyIndexIVF)
                .add_subclass(PyIndexIVFRaBitQFastScan),
        ),
        Class::Ivf(IvfClass::AdditiveQuantizer(c)) => crate::additive::wrap_ivf(py, base, c),
        Class::Ivf(IvfClass::AqFastScan(c)) => crate::additive::wrap_ivf_fast_scan(py, base, c),
        Class::Ivf(IvfClass::Base) => {
            obj(py, PyClassInitializer::from(base).add_subclass(PyIndexIVF))
        }
        Class::IvfPqr => obj(
            py,
            PyClassInitializer::from(base)
                .add_subclass(PyIndexIVF)
                .add_subclass(PyIndexIVFPQ)
                .add_subclass(PyIndexIVFPQR),
        ),
        Class::Hnsw(storage) => {
            let hnsw = PyClassInitializer::from(base).add_subclass(PyIndexHNSW);
            match storage {
                Some(HnswClass::Flat) => obj(py, hnsw.add_subclass(PyIndexHNSWFlat)),
                Some(HnswClass::ScalarQuantizer) => obj(py, hnsw.add_subclass(PyIndexHNSWSQ)),
                Some(HnswClass::Pq) => obj(py, hnsw.add_subclass(PyIndexHNSWPQ)),
                None => obj(py, hnsw),
            }
        }
        Class::Pq => obj(py, PyClassInitializer::from(base).add_subclass(PyIndexPQ)),
        Class::PqFastScan => obj(
            py,
            PyClassInitializer::from(base).add_subclass(PyIndexPQFastScan),
        ),
        Class::ScalarQuantizer => obj(
            py,
            PyClassInitializer::from(base).add_subclass(PyIndexScalarQuantizer),
        ),
        Class::Lsh => obj(py, PyClassInitializer::from(base).add_subclass(PyIndexLSH)),
        Class::RaBitQ => obj(
            py,
            PyClassInitializer::from(base).add_subclass(PyIndexRaBitQ),
        ),
        Class::RaBitQFastScan => obj(
            py,
            PyClassInitializer::from(base).add_subclass(PyIndexRaBitQFastScan),
        ),
        Class::AdditiveQuantizer => crate::additive::wrap_flat(py, base),
        Class::AqFastScan => crate::additive::wrap_fast_scan(py, base),
        Class::ResidualCoarseQuantizer => crate::additive::wrap_rcq(py, base),
        Class::LocalSearchCoarseQuantizer => crate::additive::wrap_lscq(py, base),
        Class::IdMap { two_way: false } => obj(
            py,
            PyClassInitializer::from(base).add_subclass(PyIndexIDMap),
        ),
        Class::IdMap { two_way: true } => obj(
            py,
            PyClassInitializer::from(base)
                .add_subclass(PyIndexIDMap)
                .add_subclass(PyIndexIDMap2),
        ),
        Class::PreTransform => obj(
            py,
            PyClassInitializer::from(base).add_subclass(PyIndexPreTransform),
        ),
        Class::Refine => obj(
            py,
            PyClassInitializer::from(base).add_subclass(PyIndexRefine),
        ),
        Class::Shards => obj(
            py,
            PyClassInitializer::from(base).add_subclass(PyIndexShards),
        ),
        Class::MultiIndexQuantizer => obj(
            py,
            PyClassInitializer::from(base).add_subclass(PyMultiIndexQuantizer),
        ),
        Class::Base => obj(py, PyClassInitializer::from(base)),
    }
}

fn pq_getter(owner: &PyIndex) -> PyResult<ProductQuantizer> {
    let pq = owner.peek(crate::parts::pq_of)?;
    pq.map(ProductQuantizer::from_pq)
        .ok_or_else(|| FathomError::new_err("this index has no product quantizer"))
}

fn sq_getter(owner: &PyIndex) -> PyResult<ScalarQuantizer> {
    let sq = owner.peek(crate::parts::sq_of)?;
    sq.map(ScalarQuantizer::from_sq)
        .ok_or_else(|| FathomError::new_err("this index has no scalar quantizer"))
}

/// The Python type objects of every index class, for the module to register.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for t in [
        PyIndex::type_object(py),
        PyIndexFlat::type_object(py),
        PyIndexFlatL2::type_object(py),
        PyIndexFlatIP::type_object(py),
        PyIndexIVF::type_object(py),
        PyInvertedLists::type_object(py),
        PyDirectMap::type_object(py),
        PyIndexIVFFlat::type_object(py),
        PyIndexIVFPQ::type_object(py),
        PyIndexIVFPQR::type_object(py),
        PyIndexIVFScalarQuantizer::type_object(py),
        PyIndexIVFPQFastScan::type_object(py),
        PyIndexIVFRaBitQ::type_object(py),
        PyIndexRaBitQ::type_object(py),
        PyIndexRaBitQFastScan::type_object(py),
        PyIndexIVFRaBitQFastScan::type_object(py),
        PyIndexPQ::type_object(py),
        PyIndexPQFastScan::type_object(py),
        PyIndexScalarQuantizer::type_object(py),
        PyIndexLSH::type_object(py),
        PyIndexHNSW::type_object(py),
        PyHnsw::type_object(py),
        PyIndexHNSWFlat::type_object(py),
        PyIndexHNSWSQ::type_object(py),
        PyIndexHNSWPQ::type_object(py),
        PyIndexIDMap::type_object(py),
        PyIndexIDMap2::type_object(py),
        PyIndexPreTransform::type_object(py),
        PyIndexRefine::type_object(py),
        PyIndexRefineFlat::type_object(py),
        PyIndexShards::type_object(py),
        PyMultiIndexQuantizer::type_object(py),
        PyIvfClusteringParameters::type_object(py),
        PyObjectVector::type_object(py),
    ] {
        m.add(t.name()?, t)?;
    }
    m.add_function(wrap_pyfunction!(rev_swig_ptr, m)?)?;
    m.add_function(wrap_pyfunction!(extract_index_ivf, m)?)?;
    Ok(())
}
