//! # fathom (Python module)
//!
//! `import fathom as faiss`: Faiss's Python API — its class names, constructor arguments,
//! attributes and `(D, I)` results on numpy arrays — over fathom's indexes. It sits at the
//! top of the layering beside the CLI and the service, and adds nothing of its own but the
//! translation: arrays are validated and copied in (`arrays`), indexes are wrapped in
//! Python classes (`index`, `classes`), errors become `FathomError` (a `RuntimeError`, as
//! Faiss raises) or `ValueError`/`TypeError` for malformed arrays. Every computation runs
//! with the GIL released.
//!
//! Built as an abi3 wheel by maturin (`crates/fathom-py/pyproject.toml`); the type stubs
//! `python/fathom/__init__.pyi` are generated from these sources by `cargo xtask codegen`;
//! `python/fathom` is the package around this compiled module (`fathom._fathom`).

mod additive;
mod arrays;
mod autotune;
mod binary;
mod classes;
mod errors;
mod functions;
mod gpu;
mod index;
mod io;
mod kmeans;
mod parts;
mod quantizers;
mod selector;
mod slot;
mod store;
mod threads;
mod transforms;

use pyo3::prelude::*;
use pyo3::type_object::PyTypeInfo;

/// The module's integer constants, as Faiss names them.
pub const CONSTANTS: &[(&str, i64)] = &[
    ("METRIC_INNER_PRODUCT", 0),
    ("METRIC_L2", 1),
    ("METRIC_L1", 2),
    ("METRIC_Linf", 3),
    ("METRIC_Lp", 4),
    ("METRIC_Canberra", 20),
    ("METRIC_BrayCurtis", 21),
    ("METRIC_JensenShannon", 22),
    ("IO_FLAG_MMAP", io::IO_FLAG_MMAP),
    ("IO_FLAG_READ_ONLY", io::IO_FLAG_READ_ONLY),
    ("IO_FLAG_ONDISK_SAME_DIR", io::IO_FLAG_ONDISK_SAME_DIR),
];

#[pymodule]
fn _fathom(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    threads::init_from_env(py)?;
    m.add("FathomError", py.get_type::<errors::FathomError>())?;
    for (name, value) in CONSTANTS {
        m.add(*name, *value)?;
    }
    classes::register(m)?;
    additive::register(m)?;
    binary::register(m)?;
    functions::register(m)?;
    gpu::register(m)?;
    transforms::register(m)?;
    quantizers::register(m)?;
    for t in [
        kmeans::Kmeans::type_object(py),
        kmeans::PyClusteringParameters::type_object(py),
        kmeans::Clustering::type_object(py),
        selector::IDSelector::type_object(py),
        selector::IDSelectorRangePy::type_object(py),
        selector::IDSelectorBatchPy::type_object(py),
        selector::IDSelectorArrayPy::type_object(py),
        selector::IDSelectorBitmapPy::type_object(py),
        selector::IDSelectorAllPy::type_object(py),
        selector::IDSelectorNotPy::type_object(py),
        selector::IDSelectorAndPy::type_object(py),
        selector::IDSelectorOrPy::type_object(py),
        selector::IDSelectorXOrPy::type_object(py),
        selector::SearchParameters::type_object(py),
        selector::SearchParametersIVF::type_object(py),
        selector::SearchParametersHNSW::type_object(py),
        autotune::ParameterSpace::type_object(py),
        store::PyVectorStore::type_object(py),
        autotune::ParameterRange::type_object(py),
        autotune::AutoTuneCriterion::type_object(py),
        autotune::OneRecallAtRCriterion::type_object(py),
        autotune::IntersectionCriterion::type_object(py),
        autotune::OperatingPoint::type_object(py),
        autotune::OperatingPoints::type_object(py),
    ] {
        m.add(t.name()?, t)?;
    }
    m.add_function(wrap_pyfunction!(io::index_factory, m)?)?;
    m.add_function(wrap_pyfunction!(io::reverse_index_factory, m)?)?;
    m.add_function(wrap_pyfunction!(io::write_index, m)?)?;
    m.add_function(wrap_pyfunction!(io::read_index, m)?)?;
    m.add_function(wrap_pyfunction!(io::clone_index, m)?)?;
    m.add_function(wrap_pyfunction!(io::serialize_index, m)?)?;
    m.add_function(wrap_pyfunction!(io::deserialize_index, m)?)?;
    m.add_function(wrap_pyfunction!(io::normalize_l2, m)?)?;
    m.add_function(wrap_pyfunction!(io::vector_to_array, m)?)?;
    m.add_function(wrap_pyfunction!(io::merge_ondisk, m)?)?;
    m.add_function(wrap_pyfunction!(io::downcast_index, m)?)?;
    m.add_function(wrap_pyfunction!(io::downcast_vector_transform, m)?)?;
    m.add_function(wrap_pyfunction!(threads::omp_set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(threads::omp_get_max_threads, m)?)?;
    Ok(())
}
