//! The thread pool computations run on: rayon's global pool until
//! `omp_set_num_threads` asks for a size (Faiss's OpenMP knob), then a pool of that size.

use std::sync::{Arc, RwLock};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

/// Runs `f` without the GIL, on the pool `omp_set_num_threads` chose.
pub fn compute<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    let pool = POOL.read().ok().and_then(|p| p.clone());
    py.detach(move || match pool {
        Some(pool) => pool.install(f),
        None => f(),
    })
}

/// Sets the number of threads fathom computes with (Faiss's `omp_set_num_threads`).
#[pyfunction]
pub fn omp_set_num_threads(num_threads: i64) -> PyResult<()> {
    if !(1..=4096).contains(&num_threads) {
        return Err(PyValueError::new_err(format!(
            "omp_set_num_threads: num_threads must be between 1 and 4096, got {num_threads}"
        )));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(num_threads as usize)
        .build()
        .map_err(|e| {
            PyValueError::new_err(format!("could not start {num_threads} threads: {e}"))
        })?;
    if let Ok(mut slot) = POOL.write() {
        *slot = Some(Arc::new(pool));
    }
    Ok(())
}

/// The number of threads fathom computes with (Faiss's `omp_get_max_threads`).
#[pyfunction]
pub fn omp_get_max_threads() -> usize {
    match POOL.read().ok().and_then(|p| p.clone()) {
        Some(pool) => pool.current_num_threads(),
        None => rayon::current_num_threads(),
    }
}
