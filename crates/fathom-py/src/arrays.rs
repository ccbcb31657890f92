//! numpy in, numpy out. Inputs are validated here — dtype, shape, dimension — and copied
//! into Rust-owned memory, so a Python thread that writes to the array while fathom
//! computes (without the GIL) cannot change what fathom reads. Outputs are new arrays that
//! take over Rust vectors without copying.

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Anything numpy turns into an array: `np.ndarray`, lists, memory maps.
pub type ArrayLike<'py> = Bound<'py, PyAny>;
/// A float32 matrix returned to Python.
pub type F32Matrix<'py> = Bound<'py, PyArray2<f32>>;
/// A float32 vector returned to Python.
pub type F32Vector<'py> = Bound<'py, PyArray1<f32>>;
/// An int64 matrix returned to Python (labels).
pub type I64Matrix<'py> = Bound<'py, PyArray2<i64>>;
/// An int64 vector returned to Python.
pub type I64Vector<'py> = Bound<'py, PyArray1<i64>>;
/// A uint8 matrix returned to Python (codes).
pub type U8Matrix<'py> = Bound<'py, PyArray2<u8>>;
/// An int32 matrix returned to Python (binary indexes' Hamming distances).
pub type I32Matrix<'py> = Bound<'py, PyArray2<i32>>;
/// An int32 vector returned to Python (binary range-search distances).
pub type I32Vector<'py> = Bound<'py, PyArray1<i32>>;
/// A uint8 vector returned to Python (serialized index).
pub type U8Vector<'py> = Bound<'py, PyArray1<u8>>;
/// A uint64 vector returned to Python (range-search `lims`).
pub type U64Vector<'py> = Bound<'py, PyArray1<u64>>;
/// A float64 vector returned to Python.
pub type F64Vector<'py> = Bound<'py, PyArray1<f64>>;

/// A validated float32 matrix: the values (row-major) and its row count.
pub struct Matrix {
    pub data: Vec<f32>,
    pub n: usize,
}

fn type_name(x: &Bound<'_, PyAny>) -> String {
    x.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// `np.asarray(x)`, refusing what is not numeric.
fn as_numeric_array<'py>(
    x: &Bound<'py, PyAny>,
    what: &str,
    kinds: &str,
    expected: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let py = x.py();
    let np = py.import("numpy")?;
    let arr = np.call_method1("asarray", (x,)).map_err(|e| {
        PyTypeError::new_err(format!(
            "{what} must be {expected}; numpy could not make an array of the {} given ({e})",
            type_name(x)
        ))
    })?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    if !kinds.contains(kind.as_str()) {
        let dtype = arr.getattr("dtype")?.str()?.to_string();
        return Err(PyTypeError::new_err(format!(
            "{what} must be {expected}, got an array of dtype {dtype}"
        )));
    }
    Ok(arr)
}

fn shape(arr: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    arr.getattr("shape")?.extract()
}

fn contiguous<'py>(arr: &Bound<'py, PyAny>, dtype: &str) -> PyResult<Bound<'py, PyAny>> {
    let py = arr.py();
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", dtype)?;
    py.import("numpy")?
        .call_method("ascontiguousarray", (arr,), Some(&kwargs))
}

/// Reads `x` as an `(n, d)` float32 matrix (any real numeric dtype is converted, as Faiss's
/// wrappers do); `d`, when given, is the dimension the caller needs.
pub fn matrix(x: &Bound<'_, PyAny>, what: &str, d: Option<usize>) -> PyResult<Matrix> {
    // Fast path: a C-contiguous float32 matrix is copied straight out.
    if let Ok(arr) = x.cast::<PyArray2<f32>>()
        && let Ok(ro) = arr.try_readonly()
        && let Ok(slice) = ro.as_slice()
    {
        let [n, cols] = [arr.shape()[0], arr.shape()[1]];
        check_cols(what, cols, d)?;
        return Ok(Matrix {
            data: slice.to_vec(),
            n,
        });
    }
    let arr = as_numeric_array(x, what, "fiu", "a float32 array of shape (n, d)")?;
    let sh = shape(&arr)?;
    let (n, cols) = match sh.as_slice() {
        [n, c] => (*n, *c),
        [c] => {
            return Err(PyValueError::new_err(format!(
                "{what} must be a 2-D array of shape (n, d), got a 1-D array of length {c}; \
                 for one vector use x.reshape(1, -1)"
            )));
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "{what} must be a 2-D array of shape (n, d), got shape {other:?}"
            )));
        }
    };
    check_cols(what, cols, d)?;
    let arr = contiguous(&arr, "float32")?;
    let arr = arr.cast_into::<PyArray2<f32>>()?;
    let data = arr.readonly().as_slice()?.to_vec();
    Ok(Matrix { data, n })
}

fn check_cols(what: &str, cols: usize, d: Option<usize>) -> PyResult<()> {
    match d {
        Some(d) if d != cols => Err(PyValueError::new_err(format!(
            "{what} has {cols} columns, expected d = {d}"
        ))),
        _ => Ok(()),
    }
}

/// Reads `x` as a 1-D array of int64 ids (any integer dtype).
pub fn ids(x: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<i64>> {
    let arr = as_numeric_array(x, what, "iu", "a 1-D array of integer ids")?;
    let sh = shape(&arr)?;
    if sh.len() != 1 {
        return Err(PyValueError::new_err(format!(
            "{what} must be a 1-D array of ids, got shape {sh:?}"
        )));
    }
    if arr.getattr("dtype")?.getattr("kind")?.extract::<String>()? == "u" {
        let too_big = arr
            .call_method0("max")
            .ok()
            .and_then(|m| m.extract::<u64>().ok())
            .is_some_and(|m| m > i64::MAX as u64);
        if too_big {
            return Err(PyValueError::new_err(format!(
                "{what} holds an id above 2^63 − 1, which an int64 id cannot hold"
            )));
        }
    }
    let arr = contiguous(&arr, "int64")?.cast_into::<PyArray1<i64>>()?;
    Ok(arr.readonly().as_slice()?.to_vec())
}

/// Reads `x`, of any shape, as int64 ids flattened in C order (a `(nq, k)` label matrix,
/// a stack of them).
pub fn ids_flat(x: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<i64>> {
    let flat = x.py().import("numpy")?.call_method1("ravel", (x,))?;
    ids(&flat, what)
}

/// Reads `x` as an `(n, code_size)` uint8 matrix of codes.
pub fn codes(x: &Bound<'_, PyAny>, what: &str, code_size: usize) -> PyResult<Matrix8> {
    let arr = as_numeric_array(x, what, "u", "a uint8 array of shape (n, code_size)")?;
    if arr
        .getattr("dtype")?
        .getattr("itemsize")?
        .extract::<usize>()?
        != 1
    {
        return Err(PyTypeError::new_err(format!(
            "{what} must be uint8 codes, got dtype {}",
            arr.getattr("dtype")?.str()?
        )));
    }
    let sh = shape(&arr)?;
    let n = match sh.as_slice() {
        [n, c] if *c == code_size => *n,
        _ => {
            return Err(PyValueError::new_err(format!(
                "{what} must have shape (n, {code_size}), got {sh:?}"
            )));
        }
    };
    let arr = contiguous(&arr, "uint8")?.cast_into::<PyArray2<u8>>()?;
    Ok(Matrix8 {
        data: arr.readonly().as_slice()?.to_vec(),
        n,
    })
}

/// A validated uint8 matrix.
pub struct Matrix8 {
    pub data: Vec<u8>,
    pub n: usize,
}

/// A 1-D uint8 buffer (a serialized index): any uint8 array, bytes or bytearray.
pub fn bytes(x: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(b) = x.extract::<Vec<u8>>()
        && !x.hasattr("dtype")?
    {
        return Ok(b);
    }
    let arr = as_numeric_array(x, what, "u", "a uint8 array (from serialize_index)")?;
    if arr
        .getattr("dtype")?
        .getattr("itemsize")?
        .extract::<usize>()?
        != 1
    {
        return Err(PyTypeError::new_err(format!("{what} must be uint8")));
    }
    let arr = contiguous(&arr.call_method0("ravel")?, "uint8")?.cast_into::<PyArray1<u8>>()?;
    Ok(arr.readonly().as_slice()?.to_vec())
}

/// A new `(n, k)` array that takes over `v`.
/// A range search's result as Faiss's Python returns it: `(lims, D, I)`.
pub fn range_out<'py>(
    py: Python<'py>,
    res: fathom::RangeSearchResult,
) -> (U64Vector<'py>, F32Vector<'py>, I64Vector<'py>) {
    let lims: Vec<u64> = res.lims.iter().map(|&l| l as u64).collect();
    (
        PyArray1::from_vec(py, lims),
        PyArray1::from_vec(py, res.distances),
        PyArray1::from_vec(py, res.labels),
    )
}

pub fn matrix_out<'py, T: numpy::Element>(
    py: Python<'py>,
    v: Vec<T>,
    n: usize,
    k: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    PyArray1::from_vec(py, v).reshape([n, k])
}
