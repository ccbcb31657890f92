//! The thread pool computations run on: rayon's global pool until
//! `omp_set_num_threads` asks for a size (Faiss's OpenMP knob), then a pool of that size.
//!
//! Locks are taken on the calling Python thread, never inside the pool: a pool worker
//! waiting in a parallel loop steals other queued jobs, and if such a job took a lock that
//! the waiting worker held (a search's read lock, then an add's write lock), the two would
//! wait for each other for ever.

use std::sync::{Arc, RwLock};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::FathomError;

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

/// Runs `f` on the pool `omp_set_num_threads` chose (on this thread, with rayon's global
/// pool for its parallel loops, when none was chosen).
pub fn install<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match POOL.read().ok().and_then(|p| p.clone()) {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// Runs `f`, which takes no locks, without the GIL on fathom's threads.
pub fn compute<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    py.detach(|| install(f))
}

fn poisoned() -> PyErr {
    FathomError::new_err(
        "an earlier call panicked while changing this object; it may be inconsistent — \
         build it again or read it again from a file",
    )
}

/// Runs `f` on the value behind `lock`, read-locked on this thread, without the GIL.
pub fn with_read<L: Send + Sync, T: Send>(
    py: Python<'_>,
    lock: &RwLock<L>,
    f: impl FnOnce(&L) -> PyResult<T> + Send,
) -> PyResult<T> {
    py.detach(|| {
        let guard = lock.read().map_err(|_| poisoned())?;
        let value: &L = &guard;
        install(|| f(value))
    })
}

/// Runs `f` on the value behind `lock`, write-locked on this thread, without the GIL.
pub fn with_write<L: Send + Sync, T: Send>(
    py: Python<'_>,
    lock: &RwLock<L>,
    f: impl FnOnce(&mut L) -> PyResult<T> + Send,
) -> PyResult<T> {
    py.detach(|| {
        let mut guard = lock.write().map_err(|_| poisoned())?;
        let value: &mut L = &mut guard;
        install(|| f(value))
    })
}

/// Sets the number of threads fathom computes with (Faiss's `omp_set_num_threads`).
///
/// Calls run on the calling thread when they can: the first call (before any computation)
/// sizes rayon's global pool, and a size equal to the global pool's needs no pool of its
/// own. Any other size gets a pool of its own, which costs each call a hand-over to it
/// (about 20 µs, measured by `cargo xtask py-bench`).
#[pyfunction]
pub fn omp_set_num_threads(num_threads: i64) -> PyResult<()> {
    if !(1..=4096).contains(&num_threads) {
        return Err(PyValueError::new_err(format!(
            "omp_set_num_threads: num_threads must be between 1 and 4096, got {num_threads}"
        )));
    }
    let n = num_threads as usize;
    let global_sized = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .is_ok()
        || rayon::current_num_threads() == n;
    let pool = if global_sized {
        None
    } else {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| PyValueError::new_err(format!("could not start {n} threads: {e}")))?;
        Some(Arc::new(pool))
    };
    if let Ok(mut slot) = POOL.write() {
        *slot = pool;
    }
    Ok(())
}

/// Sizes the pool from `OMP_NUM_THREADS` at import, as OpenMP does for Faiss (unless
/// `RAYON_NUM_THREADS` is set, which rayon reads itself). A value that is not a thread
/// count is ignored with a warning, as OpenMP ignores it.
pub(crate) fn init_from_env(py: Python<'_>) -> PyResult<()> {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return Ok(());
    }
    let Ok(value) = std::env::var("OMP_NUM_THREADS") else {
        return Ok(());
    };
    // OpenMP accepts a list ("4,2" for nested levels); the first entry is the outer one.
    let first = value.split(',').next().unwrap_or("").trim();
    match first.parse::<i64>() {
        Ok(n) if (1..=4096).contains(&n) => omp_set_num_threads(n),
        _ => {
            let warnings = py.import("warnings")?;
            warnings.call_method1(
                "warn",
                (format!(
                    "fathom: OMP_NUM_THREADS={value:?} is not a thread count between 1 and                      4096; using all cores"
                ),),
            )?;
            Ok(())
        }
    }
}

/// The number of threads fathom computes with (Faiss's `omp_get_max_threads`).
#[pyfunction]
pub fn omp_get_max_threads() -> usize {
    match POOL.read().ok().and_then(|p| p.clone()) {
        Some(pool) => pool.current_num_threads(),
        None => rayon::current_num_threads(),
    }
}
