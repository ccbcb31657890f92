//! Building, saving and loading indexes: `index_factory`, `write_index`, `read_index`,
//! `clone_index`, `serialize_index`, `deserialize_index`; and `normalize_L2`.

use std::path::PathBuf;

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::arrays::{self, ArrayLike, U8Vector};
use crate::classes::wrap_index;
use crate::errors::OrRaise;
use crate::index::PyIndex;
use crate::threads::compute;

/// Faiss's `IO_FLAG_MMAP`: map the inverted lists from the file instead of reading them.
pub const IO_FLAG_MMAP: i64 = 8 | 0x646f_0000;
/// Faiss's `IO_FLAG_READ_ONLY` (fathom's loaded indexes are writable; accepted and ignored).
pub const IO_FLAG_READ_ONLY: i64 = 2;
/// Faiss's `IO_FLAG_ONDISK_SAME_DIR`: on-disk inverted lists whose recorded data file is
/// not there are read from the file of that name beside the index. fathom always does
/// this, so the flag is accepted and changes nothing.
pub const IO_FLAG_ONDISK_SAME_DIR: i64 = 4;

/// Builds an index from a Faiss factory string (`"IVF4096,PQ32"`, `"HNSW32"`, …) for
/// vectors of dimension `d`.
#[pyfunction]
#[pyo3(signature = (d, description, metric = 1))]
pub fn index_factory(
    py: Python<'_>,
    d: usize,
    description: &str,
    metric: i64,
) -> PyResult<Py<PyAny>> {
    let m = crate::index::metric(metric, 0.0)?;
    let index = fathom::index_factory(d, description, m).or_raise()?;
    wrap_index(py, index)
}

/// The factory string that builds `index`'s structure (Faiss's `reverse_index_factory`).
#[pyfunction]
pub fn reverse_index_factory(index: &Bound<'_, PyIndex>) -> PyResult<String> {
    index.get().peek(fathom::reverse_index_factory)?.or_raise()
}

/// Writes `index` to the file `fname` in Faiss's format (faiss reads it).
#[pyfunction]
pub fn write_index(py: Python<'_>, index: &Bound<'_, PyIndex>, fname: PathBuf) -> PyResult<()> {
    index
        .get()
        .read(py, |i| fathom::io::faiss::write_index(i, &fname).or_raise())
}

/// Reads an index from a Faiss-format file (written by fathom or faiss). With
/// `io_flags = IO_FLAG_MMAP` the inverted lists stay in the file, memory-mapped.
#[pyfunction]
#[pyo3(signature = (fname, io_flags = 0))]
pub fn read_index(py: Python<'_>, fname: PathBuf, io_flags: i64) -> PyResult<Py<PyAny>> {
    let mmap = io_flags & IO_FLAG_MMAP == IO_FLAG_MMAP;
    let known = IO_FLAG_MMAP | IO_FLAG_READ_ONLY | IO_FLAG_ONDISK_SAME_DIR;
    if io_flags & !known != 0 {
        return Err(PyValueError::new_err(format!(
            "read_index: unsupported io_flags {io_flags:#x} (fathom knows IO_FLAG_MMAP, \
             IO_FLAG_READ_ONLY and IO_FLAG_ONDISK_SAME_DIR)"
        )));
    }
    let index = compute(py, || {
        if mmap {
            fathom::io::faiss::read_index_mmap(&fname)
        } else {
            fathom::io::faiss::read_index(&fname)
        }
    })
    .or_raise()?;
    wrap_index(py, index)
}

/// A deep copy of `index`.
#[pyfunction]
pub fn clone_index(py: Python<'_>, index: &Bound<'_, PyIndex>) -> PyResult<Py<PyAny>> {
    let copy = index
        .get()
        .read(py, |i| fathom::io::faiss::clone_index(i).or_raise())?;
    wrap_index(py, copy)
}

/// `index` in Faiss's file format, as a uint8 array.
#[pyfunction]
pub fn serialize_index<'py>(
    py: Python<'py>,
    index: &Bound<'py, PyIndex>,
) -> PyResult<U8Vector<'py>> {
    let bytes = index
        .get()
        .read(py, |i| fathom::io::faiss::index_to_bytes(i).or_raise())?;
    Ok(PyArray1::from_vec(py, bytes))
}

/// The index `data` (from `serialize_index`, or faiss's) holds.
#[pyfunction]
pub fn deserialize_index(py: Python<'_>, data: &ArrayLike<'_>) -> PyResult<Py<PyAny>> {
    let bytes = arrays::bytes(data, "deserialize_index: data")?;
    let index = compute(py, || fathom::io::faiss::read_index_bytes(&bytes)).or_raise()?;
    wrap_index(py, index)
}

/// Scales each row of `x` (a writable, C-contiguous float32 array of shape `(n, d)`) to
/// unit L2 norm, in place, as Faiss's `normalize_L2`. Rows of zeros stay zero.
#[pyfunction]
#[pyo3(name = "normalize_L2")]
pub fn normalize_l2(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
    let arr = x.cast::<PyArray2<f32>>().map_err(|_| {
        let what = match x.getattr("dtype") {
            Ok(dt) => format!(
                "an array of dtype {} with {} dimension(s)",
                dt.str().map(|s| s.to_string()).unwrap_or_default(),
                x.getattr("ndim")
                    .and_then(|n| n.extract::<usize>())
                    .unwrap_or(0)
            ),
            Err(_) => format!(
                "a {}",
                x.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ),
        };
        PyTypeError::new_err(format!(
            "normalize_L2 works in place on a 2-D float32 numpy array, got {what}; convert \
             with x = np.ascontiguousarray(x, dtype='float32') and normalise that"
        ))
    })?;
    if !arr
        .getattr("flags")?
        .getattr("writeable")?
        .extract::<bool>()?
    {
        return Err(PyValueError::new_err(
            "normalize_L2 writes into x, but x is read-only (for instance a slice of \
             np.load(..., mmap_mode='r')); normalise a writable copy: x = np.array(x)",
        ));
    }
    if !arr.is_c_contiguous() {
        return Err(PyValueError::new_err(
            "normalize_L2 needs a C-contiguous array (x is a strided view); normalise a \
             contiguous copy: x = np.ascontiguousarray(x)",
        ));
    }
    let mut rw = arr
        .try_readwrite()
        .map_err(|e| PyValueError::new_err(format!("normalize_L2 cannot write into x: {e}")))?;
    let d = arr.shape()[1];
    let data = rw.as_slice_mut()?;
    if d == 0 {
        return Ok(());
    }
    // The array is borrowed mutably for the duration (numpy's borrow flags), so it is
    // safe to work on it without the GIL.
    compute(py, || {
        use rayon::prelude::*;
        data.par_chunks_mut(d).for_each(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 && norm.is_finite() {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        });
    });
    Ok(())
}

/// Faiss's `vector_to_array`: fathom's attributes are numpy arrays already, so this
/// returns a numpy array of whatever it is given.
#[pyfunction]
pub fn vector_to_array<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    py.import("numpy")?.call_method1("asarray", (v,))
}

/// Fills `trained_index` (an empty, trained IVF index, or one behind transforms) with the
/// lists of the IVF indexes in the files `shard_fnames`, written to one on-disk data file
/// `ivfdata_fname` (Faiss's `contrib.ondisk.merge_ondisk`; also under that name in
/// `fathom.contrib.ondisk`). The shards are read memory-mapped, so together they may
/// exceed memory. With `shift_ids` each shard's ids follow the previous shard's. Save the
/// result with `write_index`: the file refers to the data file by its path.
#[pyfunction]
#[pyo3(signature = (trained_index, shard_fnames, ivfdata_fname, shift_ids = false))]
pub fn merge_ondisk(
    py: Python<'_>,
    trained_index: &Bound<'_, PyIndex>,
    shard_fnames: Vec<PathBuf>,
    ivfdata_fname: PathBuf,
    shift_ids: bool,
) -> PyResult<()> {
    let shards = compute(py, || {
        shard_fnames
            .iter()
            .map(fathom::io::faiss::read_index_mmap)
            .collect::<fathom::Result<Vec<_>>>()
    })
    .or_raise()?;
    trained_index.get().write(py, "merge_ondisk", move |index| {
        let refs: Vec<&dyn fathom::Index> = shards.iter().map(|s| &**s).collect();
        fathom::ivf::merge_ondisk(index, &refs, &ivfdata_fname, shift_ids).or_raise()?;
        Ok(())
    })
}

/// `index` itself: Faiss's Python needs `downcast_index` to see an index's own class;
/// fathom's objects always have it.
#[pyfunction]
pub fn downcast_index<'py>(index: &Bound<'py, PyIndex>) -> Bound<'py, PyIndex> {
    index.clone()
}

/// `transform` itself (Faiss's `downcast_VectorTransform`; fathom's objects always have
/// their own class).
#[pyfunction]
#[pyo3(name = "downcast_VectorTransform")]
pub fn downcast_vector_transform<'py>(
    transform: &Bound<'py, crate::transforms::PyVectorTransform>,
) -> Bound<'py, crate::transforms::PyVectorTransform> {
    transform.clone()
}
