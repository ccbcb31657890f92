//! Faiss's GPU API: `StandardGpuResources`, `index_cpu_to_gpu`, `index_gpu_to_cpu`,
//! `index_cpu_to_all_gpus`, `GpuIndexFlatL2/IP`, `GpuIndexIVFFlat`, `GpuIndexIVFPQ`,
//! `GpuIndexIVFScalarQuantizer`, their
//! config objects, `knn_gpu` and `get_num_gpus`, over fathom-gpu. The module always has
//! them (faiss-cpu has none): on a machine without a GPU `get_num_gpus()` is 0 and making
//! a GPU index raises `FathomError` saying why, so `if faiss.get_num_gpus():` code works.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fathom::gpu::{
    GpuFlatPrecision, GpuIndexFlat, GpuIndexIvfFlat, GpuIndexIvfPq, GpuIndexIvfPqFastScan,
    GpuIndexIvfSq, GpuResources,
};
use fathom::{Index, IndexView, MetricType};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::type_object::PyTypeInfo;

use crate::arrays::{self, ArrayLike, F32Matrix, I64Matrix, matrix_out};
use crate::classes::count;
use crate::errors::{FathomError, OrRaise};
use crate::index::{PyIndex, check_k};
use crate::threads::compute;

/// Faiss's `StandardGpuResources`: per device, the stream, cuBLAS handle, compiled kernels
/// and the temporary memory a search may use (1 GiB unless `setTempMemory` says
/// otherwise). Devices are opened on first use, so making one never fails.
#[pyclass(frozen, module = "fathom", name = "StandardGpuResources")]
pub struct StandardGpuResources {
    temp_bytes: Mutex<usize>,
    devices: Mutex<HashMap<usize, Arc<GpuResources>>>,
}

impl StandardGpuResources {
    /// The resources of `device` (−1: device 0), opened on first use.
    fn on(&self, device: i64) -> PyResult<Arc<GpuResources>> {
        let device = usize::try_from(device.max(0)).unwrap_or(0);
        let mut devices = self
            .devices
            .lock()
            .map_err(|_| FathomError::new_err("a GPU call panicked"))?;
        if let Some(r) = devices.get(&device) {
            return Ok(r.clone());
        }
        let temp = *self
            .temp_bytes
            .lock()
            .map_err(|_| FathomError::new_err("a GPU call panicked"))?;
        let r = GpuResources::with_temp_memory(device, temp).or_raise()?;
        devices.insert(device, r.clone());
        Ok(r)
    }
}

#[pymethods]
impl StandardGpuResources {
    /// Resources for every device, opened when an index first uses one.
    #[new]
    fn new() -> Self {
        StandardGpuResources {
            temp_bytes: Mutex::new(1 << 30),
            devices: Mutex::new(HashMap::new()),
        }
    }

    /// The temporary memory, in bytes, that searches on devices opened from now on may
    /// use (at least 16 MiB).
    #[pyo3(name = "setTempMemory")]
    fn set_temp_memory(&self, bytes: usize) -> PyResult<()> {
        *self
            .temp_bytes
            .lock()
            .map_err(|_| FathomError::new_err("a GPU call panicked"))? = bytes;
        Ok(())
    }

    /// The smallest temporary memory (16 MiB): searches run in more, smaller tiles.
    #[pyo3(name = "noTempMemory")]
    fn no_temp_memory(&self) -> PyResult<()> {
        self.set_temp_memory(0)
    }

    /// Accepted for Faiss's scripts: fathom runs each device's work on its own stream.
    #[pyo3(name = "setDefaultNullStreamAllDevices")]
    fn set_default_null_stream_all_devices(&self) {}
}

/// Faiss's `GpuClonerOptions`: how `index_cpu_to_gpu` copies an index. `useFloat16`
/// stores a flat index's vectors in FP16; `useTF32` (fathom's) runs its products on TF32
/// tensor cores with exact re-ranking.
#[pyclass(subclass, module = "fathom", name = "GpuClonerOptions")]
#[derive(Default)]
pub struct GpuClonerOptions {
    /// Store flat vectors in FP16.
    #[pyo3(get, set, name = "useFloat16")]
    use_float16: bool,
    /// TF32 tensor cores with exact re-ranking for flat indexes.
    #[pyo3(get, set, name = "useTF32")]
    use_tf32: bool,
}

#[pymethods]
impl GpuClonerOptions {
    /// Options with everything off.
    #[new]
    fn new() -> Self {
        Self::default()
    }
}

/// Faiss's `GpuMultipleClonerOptions` for `index_cpu_to_all_gpus`: `shard` splits the
/// vectors over the GPUs, otherwise each GPU holds a replica and queries are split.
#[pyclass(extends = GpuClonerOptions, module = "fathom", name = "GpuMultipleClonerOptions")]
#[derive(Default)]
pub struct GpuMultipleClonerOptions {
    /// Split the vectors over the GPUs instead of copying them to each.
    #[pyo3(get, set)]
    shard: bool,
}

#[pymethods]
impl GpuMultipleClonerOptions {
    /// Options with everything off (replicas).
    #[new]
    fn new() -> PyClassInitializer<Self> {
        PyClassInitializer::from(GpuClonerOptions::default()).add_subclass(Self::default())
    }
}

/// Faiss's `GpuIndexFlatConfig`: the device, and `useFloat16` / `useTF32` as in
/// [`GpuClonerOptions`].
#[pyclass(module = "fathom", name = "GpuIndexFlatConfig")]
#[derive(Default)]
pub struct GpuIndexFlatConfig {
    /// The GPU the index lives on.
    #[pyo3(get, set)]
    device: i64,
    /// Store vectors in FP16.
    #[pyo3(get, set, name = "useFloat16")]
    use_float16: bool,
    /// TF32 tensor cores with exact re-ranking.
    #[pyo3(get, set, name = "useTF32")]
    use_tf32: bool,
}

#[pymethods]
impl GpuIndexFlatConfig {
    /// Device 0, FP32.
    #[new]
    fn new() -> Self {
        Self::default()
    }
}

/// Faiss's `GpuIndexIVFConfig`: the device an IVF index lives on.
#[pyclass(subclass, module = "fathom", name = "GpuIndexIVFConfig")]
#[derive(Default)]
pub struct GpuIndexIvfConfig {
    /// The GPU the index lives on.
    #[pyo3(get, set)]
    device: i64,
}

#[pymethods]
impl GpuIndexIvfConfig {
    /// Device 0.
    #[new]
    fn new() -> Self {
        Self::default()
    }
}

/// Faiss's `GpuIndexIVFFlatConfig`: the device (as [`GpuIndexIvfConfig`]).
#[pyclass(extends = GpuIndexIvfConfig, module = "fathom", name = "GpuIndexIVFFlatConfig")]
pub struct GpuIndexIvfFlatConfig;

#[pymethods]
impl GpuIndexIvfFlatConfig {
    /// Device 0.
    #[new]
    fn new() -> PyClassInitializer<Self> {
        PyClassInitializer::from(GpuIndexIvfConfig::default()).add_subclass(Self)
    }
}

/// Faiss's `GpuIndexIVFPQConfig`: the device (as [`GpuIndexIvfConfig`]).
#[pyclass(extends = GpuIndexIvfConfig, module = "fathom", name = "GpuIndexIVFPQConfig")]
pub struct GpuIndexIvfPqConfig;

#[pymethods]
impl GpuIndexIvfPqConfig {
    /// Device 0.
    #[new]
    fn new() -> PyClassInitializer<Self> {
        PyClassInitializer::from(GpuIndexIvfConfig::default()).add_subclass(Self)
    }
}

fn precision(use_float16: bool, use_tf32: bool) -> GpuFlatPrecision {
    match (use_float16, use_tf32) {
        (true, _) => GpuFlatPrecision::F16,
        (false, true) => GpuFlatPrecision::Tf32,
        _ => GpuFlatPrecision::F32,
    }
}

/// Faiss's `GpuIndex`: an index whose vectors live in a GPU's memory.
#[pyclass(extends = PyIndex, subclass, frozen, module = "fathom", name = "GpuIndex")]
pub struct PyGpuIndex;

/// Exact search on a GPU (Faiss's `GpuIndexFlat`).
#[pyclass(extends = PyGpuIndex, subclass, frozen, module = "fathom", name = "GpuIndexFlat")]
pub struct PyGpuIndexFlat;

/// `GpuIndexFlat(res, d, metric)`, `GpuIndexFlat(res, cpu_flat_index)`.
fn new_flat(
    res: &StandardGpuResources,
    d_or_index: &Bound<'_, PyAny>,
    m: Option<MetricType>,
    config: Option<&Bound<'_, GpuIndexFlatConfig>>,
) -> PyResult<GpuIndexFlat> {
    let (device, p) = config.map_or((0, GpuFlatPrecision::F32), |c| {
        let c = c.borrow();
        (c.device, precision(c.use_float16, c.use_tf32))
    });
    if let Ok(d) = d_or_index.extract::<i64>() {
        let m = m.unwrap_or(MetricType::L2);
        return GpuIndexFlat::with_precision(res.on(device)?, count("d", d)?, m, p).or_raise();
    }
    let cpu = d_or_index
        .cast::<PyIndex>()
        .map_err(|_| PyValueError::new_err("GpuIndexFlat takes a dimension or a CPU IndexFlat"))?;
    let r = res.on(device)?;
    cpu.get().peek(|i| match i.view() {
        IndexView::Flat(flat) if m.is_none_or(|m| m == flat.metric()) => {
            GpuIndexFlat::from_cpu_with_precision(r, flat, p).or_raise()
        }
        _ => Err(PyValueError::new_err(format!(
            "GpuIndexFlat copies an IndexFlat of the same metric, not {}",
            i.description()
        ))),
    })?
}

fn flat_init(index: GpuIndexFlat) -> PyClassInitializer<PyGpuIndexFlat> {
    PyClassInitializer::from(PyIndex::new(Box::new(index)))
        .add_subclass(PyGpuIndex)
        .add_subclass(PyGpuIndexFlat)
}

#[pymethods]
impl PyGpuIndexFlat {
    /// An empty exact index of dimension `d` (or a copy of the CPU `IndexFlat` given
    /// instead) on `config.device`, for `metric` (L2 or inner product).
    #[new]
    #[pyo3(signature = (res, d, metric = 1, config = None))]
    fn new(
        res: &Bound<'_, StandardGpuResources>,
        d: &Bound<'_, PyAny>,
        metric: i64,
        config: Option<&Bound<'_, GpuIndexFlatConfig>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let m = crate::index::metric(metric, 0.0)?;
        Ok(flat_init(new_flat(res.get(), d, Some(m), config)?))
    }
}

/// Exact L2 search on a GPU (Faiss's `GpuIndexFlatL2`).
#[pyclass(extends = PyGpuIndexFlat, frozen, module = "fathom", name = "GpuIndexFlatL2")]
pub struct PyGpuIndexFlatL2;

#[pymethods]
impl PyGpuIndexFlatL2 {
    /// An empty exact L2 index of dimension `d` (or a copy of a CPU `IndexFlatL2`).
    #[new]
    #[pyo3(signature = (res, d, config = None))]
    fn new(
        res: &Bound<'_, StandardGpuResources>,
        d: &Bound<'_, PyAny>,
        config: Option<&Bound<'_, GpuIndexFlatConfig>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let index = new_flat(res.get(), d, Some(MetricType::L2), config)?;
        Ok(flat_init(index).add_subclass(PyGpuIndexFlatL2))
    }
}

/// Exact inner-product search on a GPU (Faiss's `GpuIndexFlatIP`).
#[pyclass(extends = PyGpuIndexFlat, frozen, module = "fathom", name = "GpuIndexFlatIP")]
pub struct PyGpuIndexFlatIP;

#[pymethods]
impl PyGpuIndexFlatIP {
    /// An empty exact inner-product index of dimension `d` (or a copy of a CPU
    /// `IndexFlatIP`).
    #[new]
    #[pyo3(signature = (res, d, config = None))]
    fn new(
        res: &Bound<'_, StandardGpuResources>,
        d: &Bound<'_, PyAny>,
        config: Option<&Bound<'_, GpuIndexFlatConfig>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let index = new_flat(res.get(), d, Some(MetricType::InnerProduct), config)?;
        Ok(flat_init(index).add_subclass(PyGpuIndexFlatIP))
    }
}

/// The inverted-file indexes on a GPU (Faiss's `GpuIndexIVF`); `nprobe` is set with
/// `ParameterSpace` or `index.nprobe`.
#[pyclass(extends = PyGpuIndex, subclass, frozen, module = "fathom", name = "GpuIndexIVF")]
pub struct PyGpuIndexIVF;

#[pymethods]
impl PyGpuIndexIVF {
    /// Lists scanned per query.
    #[getter]
    fn nprobe(slf: &Bound<'_, Self>) -> PyResult<f64> {
        crate::classes::get_param(slf.as_super().as_super().get(), "nprobe")
    }
    /// Sets the lists scanned per query.
    #[setter]
    fn set_nprobe(slf: &Bound<'_, Self>, value: f64) -> PyResult<()> {
        crate::classes::set_param(slf.py(), slf.as_super().as_super().get(), "nprobe", value)
    }
}

fn ivf_init(index: Box<dyn Index>) -> PyClassInitializer<PyGpuIndexIVF> {
    PyClassInitializer::from(PyIndex::new(index))
        .add_subclass(PyGpuIndex)
        .add_subclass(PyGpuIndexIVF)
}

fn ivf_device(config: Option<&Bound<'_, GpuIndexIvfConfig>>) -> i64 {
    config.map_or(0, |c| c.borrow().device)
}

/// IVF with uncompressed vectors on a GPU (Faiss's `GpuIndexIVFFlat`).
#[pyclass(extends = PyGpuIndexIVF, frozen, module = "fathom", name = "GpuIndexIVFFlat")]
pub struct PyGpuIndexIVFFlat;

#[pymethods]
impl PyGpuIndexIVFFlat {
    /// An untrained IVF-Flat index of dimension `d` with `nlist` lists.
    #[new]
    #[pyo3(signature = (res, d, nlist, metric = 1, config = None))]
    fn new(
        res: &Bound<'_, StandardGpuResources>,
        d: i64,
        nlist: i64,
        metric: i64,
        config: Option<&Bound<'_, GpuIndexIvfConfig>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let r = res.get().on(ivf_device(config))?;
        let m = crate::index::metric(metric, 0.0)?;
        let index =
            GpuIndexIvfFlat::new(r, count("d", d)?, count("nlist", nlist)?, m).or_raise()?;
        Ok(ivf_init(Box::new(index)).add_subclass(PyGpuIndexIVFFlat))
    }
}

/// IVF with product-quantized vectors on a GPU (Faiss's `GpuIndexIVFPQ`; 8- or 4-bit codes).
#[pyclass(extends = PyGpuIndexIVF, frozen, module = "fathom", name = "GpuIndexIVFPQ")]
pub struct PyGpuIndexIVFPQ;

#[pymethods]
impl PyGpuIndexIVFPQ {
    /// An untrained IVF-PQ index of dimension `d`, `nlist` lists, `M` sub-quantizers of
    /// `nbits_per_idx` (8 or 4) bits.
    #[new]
    #[pyo3(signature = (res, d, nlist, M, nbits_per_idx = 8, metric = 1, config = None))]
    #[allow(non_snake_case)]
    fn new(
        res: &Bound<'_, StandardGpuResources>,
        d: i64,
        nlist: i64,
        M: i64,
        nbits_per_idx: i64,
        metric: i64,
        config: Option<&Bound<'_, GpuIndexIvfConfig>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        if !matches!(nbits_per_idx, 8 | 4) {
            return Err(PyValueError::new_err(format!(
                "GpuIndexIVFPQ stores 8- or 4-bit codes; nbits_per_idx = {nbits_per_idx} is \
                 not supported"
            )));
        }
        let r = res.get().on(ivf_device(config))?;
        let m = crate::index::metric(metric, 0.0)?;
        let q = fathom::IndexFlat::new(count("d", d)?, m).or_raise()?;
        let cpu = fathom::IndexIvfPq::new(
            Box::new(q),
            count("nlist", nlist)?,
            count("M", M)?,
            nbits_per_idx as usize,
            m,
        )
        .or_raise()?;
        let index = GpuIndexIvfPq::from_cpu(r, cpu).or_raise()?;
        Ok(ivf_init(Box::new(index)).add_subclass(PyGpuIndexIVFPQ))
    }
}

/// IVF with 8-bit scalar-quantized vectors on a GPU (Faiss's
/// `GpuIndexIVFScalarQuantizer`).
#[pyclass(
    extends = PyGpuIndexIVF,
    frozen,
    module = "fathom",
    name = "GpuIndexIVFScalarQuantizer"
)]
pub struct PyGpuIndexIVFScalarQuantizer;

#[pymethods]
impl PyGpuIndexIVFScalarQuantizer {
    /// An untrained IVF-SQ index of dimension `d`, `nlist` lists, codes of type `qtype`
    /// (`ScalarQuantizer.QT_8bit` or `QT_8bit_uniform`).
    #[new]
    #[pyo3(signature = (res, d, nlist, qtype, metric = 1, encode_residual = true, config = None))]
    fn new(
        res: &Bound<'_, StandardGpuResources>,
        d: i64,
        nlist: i64,
        qtype: i64,
        metric: i64,
        encode_residual: bool,
        config: Option<&Bound<'_, GpuIndexIvfConfig>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let r = res.get().on(ivf_device(config))?;
        let m = crate::index::metric(metric, 0.0)?;
        let qt = u32::try_from(qtype)
            .ok()
            .and_then(|c| fathom::quant::QuantizerType::from_code(c).ok())
            .ok_or_else(|| {
                PyValueError::new_err(format!("unknown scalar quantizer type {qtype}"))
            })?;
        let q = fathom::IndexFlat::new(count("d", d)?, m).or_raise()?;
        let mut cpu =
            fathom::IndexIvfScalarQuantizer::new(Box::new(q), count("nlist", nlist)?, qt, m)
                .or_raise()?;
        cpu.by_residual = encode_residual;
        let index = GpuIndexIvfSq::from_cpu(r, cpu).or_raise()?;
        Ok(ivf_init(Box::new(index)).add_subclass(PyGpuIndexIVFScalarQuantizer))
    }
}

/// A GPU index with its most specific Python class.
fn wrap_gpu(py: Python<'_>, index: Box<dyn Index>) -> PyResult<Py<PyAny>> {
    let any: &dyn std::any::Any = &*index;
    if let Some(flat) = any.downcast_ref::<GpuIndexFlat>() {
        let ip = flat.metric() == MetricType::InnerProduct;
        let base = PyClassInitializer::from(PyIndex::new(index))
            .add_subclass(PyGpuIndex)
            .add_subclass(PyGpuIndexFlat);
        return Ok(if ip {
            Py::new(py, base.add_subclass(PyGpuIndexFlatIP))?.into_any()
        } else {
            Py::new(py, base.add_subclass(PyGpuIndexFlatL2))?.into_any()
        });
    }
    if any.is::<GpuIndexIvfFlat>() {
        return Ok(Py::new(py, ivf_init(index).add_subclass(PyGpuIndexIVFFlat))?.into_any());
    }
    if any.is::<GpuIndexIvfPq>() {
        return Ok(Py::new(py, ivf_init(index).add_subclass(PyGpuIndexIVFPQ))?.into_any());
    }
    if any.is::<GpuIndexIvfSq>() {
        let init = ivf_init(index).add_subclass(PyGpuIndexIVFScalarQuantizer);
        return Ok(Py::new(py, init)?.into_any());
    }
    if any.is::<GpuIndexIvfPqFastScan>() {
        // Faiss has no GPU fast-scan class: the IVF base class, with nprobe.
        return Ok(Py::new(py, ivf_init(index))?.into_any());
    }
    crate::classes::wrap_index(py, index)
}

/// Reads `useFloat16` / `useTF32` / `shard` from a cloner-options object (any object with
/// those attributes, as Faiss's scripts pass).
fn option(options: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<bool> {
    match options {
        Some(o) if !o.is_none() && o.hasattr(name)? => o.getattr(name)?.is_truthy(),
        _ => Ok(false),
    }
}

/// A GPU copy of `index` on `res`'s device `device` (Faiss's `index_cpu_to_gpu`): Flat,
/// IVF-Flat, IVF-PQ (8- or 4-bit codes, fast-scan too) and IVF-SQ8 indexes have GPU forms.
#[pyfunction]
#[pyo3(signature = (provider, device, index, options = None))]
pub fn index_cpu_to_gpu(
    py: Python<'_>,
    provider: &Bound<'_, StandardGpuResources>,
    device: i64,
    index: &Bound<'_, PyIndex>,
    options: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let res = provider.get().on(device)?;
    let p = precision(option(options, "useFloat16")?, option(options, "useTF32")?);
    let gpu = index.get().peek(|i| -> PyResult<Box<dyn Index>> {
        match i.view() {
            IndexView::Flat(flat) => Ok(Box::new(
                GpuIndexFlat::from_cpu_with_precision(res, flat, p).or_raise()?,
            )),
            _ => fathom::gpu::index_cpu_to_gpu(res, i).or_raise(),
        }
    })??;
    wrap_gpu(py, gpu)
}

/// The CPU form of a GPU index, a copy (Faiss's `index_gpu_to_cpu`); a CPU index is
/// copied as it is.
#[pyfunction]
pub fn index_gpu_to_cpu(py: Python<'_>, index: &Bound<'_, PyIndex>) -> PyResult<Py<PyAny>> {
    let cpu = index
        .get()
        .peek(|i| fathom::gpu::index_gpu_to_cpu(i).or_raise())??;
    crate::classes::wrap_index(py, cpu)
}

/// `index` copied to every GPU (Faiss's `index_cpu_to_all_gpus`), or to the first `ngpu`:
/// one GPU gets a plain copy; several get replicas (queries split between them) or, with
/// `co.shard`, shards (vectors split between them).
#[pyfunction]
#[pyo3(signature = (index, co = None, ngpu = -1))]
pub fn index_cpu_to_all_gpus(
    py: Python<'_>,
    index: &Bound<'_, PyIndex>,
    co: Option<&Bound<'_, PyAny>>,
    ngpu: i64,
) -> PyResult<Py<PyAny>> {
    let available = fathom::gpu::device_count();
    let n = if ngpu < 0 {
        available
    } else {
        (ngpu as usize).min(available)
    };
    if n == 0 {
        return Err(FathomError::new_err(
            "GPU unavailable: index_cpu_to_all_gpus found no CUDA device on this machine",
        ));
    }
    let provider = Bound::new(py, StandardGpuResources::new())?;
    if n == 1 {
        return index_cpu_to_gpu(py, &provider, 0, index, co);
    }
    let res = (0..n)
        .map(|dev| provider.get().on(dev as i64))
        .collect::<PyResult<Vec<_>>>()?;
    let shard = option(co, "shard")?;
    let multi = index.get().peek(|i| -> PyResult<Box<dyn Index>> {
        Ok(if shard {
            Box::new(fathom::gpu::index_cpu_to_gpu_multiple(&res, i).or_raise()?)
        } else {
            Box::new(fathom::gpu::index_cpu_to_gpu_replicas(&res, i).or_raise()?)
        })
    })??;
    crate::classes::wrap_index(py, multi)
}

/// The number of CUDA devices (0 on machines without an NVIDIA driver or GPU).
#[pyfunction]
pub fn get_num_gpus() -> usize {
    fathom::gpu::device_count()
}

/// Exact k-NN of the rows of `xq` among the rows of `xb` on a GPU, without an index
/// (Faiss's `knn_gpu`): `(D, I)` of shape `(nq, k)`, also written into `D` and `I` when
/// they are given.
#[pyfunction]
#[pyo3(signature = (res, xq, xb, k, D = None, I = None, metric = 1, device = -1))]
#[allow(non_snake_case, clippy::too_many_arguments)]
pub fn knn_gpu<'py>(
    py: Python<'py>,
    res: &Bound<'py, StandardGpuResources>,
    xq: &ArrayLike<'py>,
    xb: &ArrayLike<'py>,
    k: i64,
    D: Option<&Bound<'py, PyAny>>,
    I: Option<&Bound<'py, PyAny>>,
    metric: i64,
    device: i64,
) -> PyResult<(F32Matrix<'py>, I64Matrix<'py>)> {
    let k = check_k(k)?;
    let xb = arrays::matrix(xb, "knn_gpu: xb", None)?;
    if xb.n == 0 {
        return Err(PyValueError::new_err("knn_gpu: xb has no rows"));
    }
    let d = xb.data.len() / xb.n;
    let xq = arrays::matrix(xq, "knn_gpu: xq", Some(d))?;
    let m = crate::index::metric(metric, 0.0)?;
    let r = res.get().on(device)?;
    let mut out = compute(py, || fathom::gpu::bf_knn(r, &xb.data, &xq.data, d, k, m)).or_raise()?;
    crate::index::faiss_missing_values(&mut out);
    let (dist, ids) = (
        matrix_out(py, out.distances, xq.n, k)?,
        matrix_out(py, out.labels, xq.n, k)?,
    );
    let all = pyo3::types::PySlice::full(py);
    if let Some(target) = D.filter(|t| !t.is_none()) {
        target.set_item(&all, &dist)?;
    }
    if let Some(target) = I.filter(|t| !t.is_none()) {
        target.set_item(&all, &ids)?;
    }
    Ok((dist, ids))
}

/// Adds the GPU classes and functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for t in [
        StandardGpuResources::type_object(py),
        GpuClonerOptions::type_object(py),
        GpuMultipleClonerOptions::type_object(py),
        GpuIndexFlatConfig::type_object(py),
        GpuIndexIvfConfig::type_object(py),
        GpuIndexIvfFlatConfig::type_object(py),
        GpuIndexIvfPqConfig::type_object(py),
        PyGpuIndex::type_object(py),
        PyGpuIndexFlat::type_object(py),
        PyGpuIndexFlatL2::type_object(py),
        PyGpuIndexFlatIP::type_object(py),
        PyGpuIndexIVF::type_object(py),
        PyGpuIndexIVFFlat::type_object(py),
        PyGpuIndexIVFPQ::type_object(py),
        PyGpuIndexIVFScalarQuantizer::type_object(py),
    ] {
        m.add(t.name()?, t)?;
    }
    m.add_function(wrap_pyfunction!(index_cpu_to_gpu, m)?)?;
    m.add_function(wrap_pyfunction!(index_gpu_to_cpu, m)?)?;
    m.add_function(wrap_pyfunction!(index_cpu_to_all_gpus, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_gpus, m)?)?;
    m.add_function(wrap_pyfunction!(knn_gpu, m)?)?;
    Ok(())
}
