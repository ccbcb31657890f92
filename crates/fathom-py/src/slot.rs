//! What a Python index object holds: its index behind a read/write lock, or, once another
//! index took it over (an IVF its quantizer, an id map its index), a note saying where it
//! went. One mechanism for float (`Index`) and binary (`IndexBinary`) indexes.
//!
//! Lock use: `read` / `write` take the lock without the GIL (see `threads`); `peek` and
//! `take` take it briefly with the GIL held, for counts and ownership changes.

use std::sync::{RwLock, RwLockWriteGuard};

use pyo3::prelude::*;

use crate::errors::FathomError;
use crate::threads::{with_read, with_write};

/// The index, or where it went.
pub(crate) enum Slot<T: ?Sized> {
    Owned(Box<T>),
    Moved(String),
}

/// A [`Slot`] behind its lock.
pub(crate) struct IndexSlot<T: ?Sized>(RwLock<Slot<T>>);

pub(crate) fn poisoned() -> PyErr {
    FathomError::new_err(
        "an earlier call panicked while changing this index; it may be inconsistent — \
         rebuild it or read it again from a file",
    )
}

pub(crate) fn moved_err(note: &str) -> PyErr {
    FathomError::new_err(note.to_string())
}

impl<T: ?Sized + Send + Sync> IndexSlot<T> {
    pub(crate) fn new(index: Box<T>) -> Self {
        IndexSlot(RwLock::new(Slot::Owned(index)))
    }

    /// Runs `f` on the index under the read lock, without the GIL.
    pub(crate) fn read<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&T) -> PyResult<R> + Send,
    ) -> PyResult<R> {
        with_read(py, &self.0, |slot| match slot {
            Slot::Owned(index) => f(&**index),
            Slot::Moved(note) => Err(moved_err(note)),
        })
    }

    /// Runs `f` on the index under the write lock, without the GIL.
    pub(crate) fn write<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut T) -> PyResult<R> + Send,
    ) -> PyResult<R> {
        with_write(py, &self.0, |slot| match slot {
            Slot::Owned(index) => f(&mut **index),
            Slot::Moved(note) => Err(moved_err(note)),
        })
    }

    /// A quick look at the index with the GIL held (dimension, counts).
    pub(crate) fn peek<R>(&self, f: impl FnOnce(&T) -> R) -> PyResult<R> {
        let guard = self.0.read().map_err(|_| poisoned())?;
        match &*guard {
            Slot::Owned(index) => Ok(f(&**index)),
            Slot::Moved(note) => Err(moved_err(note)),
        }
    }

    /// The write guard itself, for callers that must hold two locks in a set order.
    pub(crate) fn lock(&self) -> PyResult<RwLockWriteGuard<'_, Slot<T>>> {
        self.0.write().map_err(|_| poisoned())
    }

    /// Takes the index out for `new_owner`; the Python object then says where it went
    /// (`describe` names the index in that note).
    pub(crate) fn take(
        &self,
        new_owner: &str,
        describe: impl FnOnce(&T) -> String,
    ) -> PyResult<Box<T>> {
        let mut guard = self.lock()?;
        let what = match &*guard {
            Slot::Owned(index) => describe(index),
            Slot::Moved(note) => return Err(moved_err(note)),
        };
        let note = format!(
            "this index ({what}) now belongs to the {new_owner} built from it: fathom \
             indexes own their parts where Faiss shares them; use the {new_owner}"
        );
        match std::mem::replace(&mut *guard, Slot::Moved(note)) {
            Slot::Owned(index) => Ok(index),
            Slot::Moved(note) => Err(moved_err(&note)),
        }
    }
}
