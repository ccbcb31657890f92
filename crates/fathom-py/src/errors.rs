//! How fathom's errors reach Python.

use pyo3::create_exception;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

create_exception!(
    fathom,
    FathomError,
    PyRuntimeError,
    "An error from the fathom library: wrong dimension, untrained index, corrupt file, … \
     A subclass of RuntimeError, which is what Faiss raises, so `except RuntimeError` \
     code keeps working."
);

/// Converts a library error into a Python `FathomError` carrying its message.
pub fn to_py(e: fathom::Error) -> PyErr {
    FathomError::new_err(e.to_string())
}

/// `Result` conversion for library calls.
pub trait OrRaise<T> {
    /// The value, or the error as a Python exception.
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for fathom::Result<T> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
