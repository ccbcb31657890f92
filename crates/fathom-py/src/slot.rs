//! What a Python index object holds: its index behind a read/write lock; or, for a
//! sub-index (`index.quantizer`, `index.index`, …), the index that owns it and the path
//! to it; or, once another index took it over without exposing it, a note saying where
//! it went. One mechanism for float (`Index`) and binary (`IndexBinary`) indexes.
//!
//! Faiss shares sub-indexes by pointer; fathom's indexes own theirs. A Python object for a
//! part is a *view*: every call locks the owner (the root of the path) and walks to the
//! part, so the view sees the owner's current state and stays valid as long as the owner
//! lives. Views read and tune (run-time parameters: `nprobe`, `efSearch`, …); calls that
//! would change what the owner relies on (add, train, reset, …) are refused.
//!
//! An index handed to a new owner (a quantizer to an IVF index, an index to an id map)
//! becomes a view of its place in that owner, so the caller's Python object keeps
//! working as it does in Faiss.
//!
//! Lock use: `read` / `write` / `tune` take the lock without the GIL (see `threads`);
//! `peek` and `take` take it briefly with the GIL held, for counts and ownership changes.
//! A view never holds its own lock while taking its root's: it reads where it points,
//! lets go, then locks the root. Roots are made before their views, so the order of locks
//! always runs from view to root and cannot cycle.

use std::sync::{Arc, RwLock, RwLockWriteGuard};

use fathom::Part;
use pyo3::prelude::*;

use crate::errors::FathomError;
use crate::threads::{with_read, with_write};

/// Sub-indexes by [`Part`]: the float index's parts; binary indexes have none yet.
pub(crate) trait HasParts {
    fn part(&self, part: Part) -> Option<&Self>;
    fn part_mut(&mut self, part: Part) -> Option<&mut Self>;
}

impl HasParts for dyn fathom::Index {
    fn part(&self, part: Part) -> Option<&Self> {
        self.view().part(part)
    }
    fn part_mut(&mut self, part: Part) -> Option<&mut Self> {
        fathom::Index::part_mut(self, part)
    }
}

impl HasParts for dyn fathom::binary::IndexBinary {
    fn part(&self, _: Part) -> Option<&Self> {
        None
    }
    fn part_mut(&mut self, _: Part) -> Option<&mut Self> {
        None
    }
}

/// Faiss's attribute name for a part.
pub(crate) fn part_name(part: Part) -> String {
    match part {
        Part::Quantizer => "quantizer".into(),
        Part::Inner => "index".into(),
        Part::Refine => "refine_index".into(),
        Part::Storage => "storage".into(),
        Part::Shard(i) => format!("at({i})"),
    }
}

/// The index, a view of part of another, or where it went.
pub(crate) enum Slot<T: ?Sized> {
    Owned(Box<T>),
    Part(PartOf<T>),
    Moved(String),
}

/// Where a view points: `path` walked from `root`.
pub(crate) struct PartOf<T: ?Sized> {
    root: Arc<IndexSlot<T>>,
    path: Vec<Part>,
}

impl<T: ?Sized> Clone for PartOf<T> {
    fn clone(&self) -> Self {
        PartOf {
            root: Arc::clone(&self.root),
            path: self.path.clone(),
        }
    }
}

impl<T: ?Sized> PartOf<T> {
    fn dotted(&self) -> String {
        dotted(&self.path)
    }
}

/// `path` as Python spells it: `index.quantizer`, `index.index.quantizer`, ….
fn dotted(path: &[Part]) -> String {
    let names: Vec<String> = path.iter().map(|p| part_name(*p)).collect();
    format!("index.{}", names.join("."))
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

fn gone_err(at: &str) -> PyErr {
    FathomError::new_err(format!("{at} no longer exists in the index that owned it"))
}

/// Where a call lands: on an index this slot owns (the closure already ran), or on a
/// part of another index.
enum Landing<R, T: ?Sized> {
    Done(PyResult<R>),
    Elsewhere(PartOf<T>),
}

/// One step of a walk towards the index that owns a view: `at` is where the slot reached
/// so far points, and its path goes in front of the part of the path walked already.
fn hop<T: ?Sized>(owner: &mut Option<Arc<IndexSlot<T>>>, path: &mut Vec<Part>, at: PartOf<T>) {
    path.splice(0..0, at.path.iter().copied());
    *owner = Some(at.root);
}

fn walk<'a, T: ?Sized + HasParts>(mut at: &'a T, path: &[Part]) -> Option<&'a T> {
    for p in path {
        at = at.part(*p)?;
    }
    Some(at)
}

fn walk_mut<'a, T: ?Sized + HasParts>(mut at: &'a mut T, path: &[Part]) -> Option<&'a mut T> {
    for p in path {
        at = at.part_mut(*p)?;
    }
    Some(at)
}

impl<T: ?Sized + Send + Sync + HasParts> IndexSlot<T> {
    pub(crate) fn new(index: Box<T>) -> Arc<Self> {
        Arc::new(IndexSlot(RwLock::new(Slot::Owned(index))))
    }

    /// A view of `path` inside `root`'s index.
    pub(crate) fn part_of(root: &Arc<Self>, path: Vec<Part>) -> Arc<Self> {
        Arc::new(IndexSlot(RwLock::new(Slot::Part(PartOf {
            root: Arc::clone(root),
            path,
        }))))
    }

    /// Runs `f` on the index under the read lock, without the GIL.
    pub(crate) fn read<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&T) -> PyResult<R> + Send,
    ) -> PyResult<R> {
        // A loop, not recursion: each hop to an owner extends the path, and one closure
        // type serves every hop.
        let mut f = Some(f);
        let (mut owner, mut path): (Option<Arc<Self>>, Vec<Part>) = (None, Vec::new());
        loop {
            let at = owner.as_deref().unwrap_or(self);
            let landing = with_read(py, &at.0, |slot| {
                Ok(match slot {
                    Slot::Owned(index) => Landing::Done(match walk(&**index, &path) {
                        Some(part) => f.take().map_or_else(unreachable, |f| f(part)),
                        None => Err(gone_err(&dotted(&path))),
                    }),
                    Slot::Part(at) => Landing::Elsewhere(at.clone()),
                    Slot::Moved(note) => Landing::Done(Err(moved_err(note))),
                })
            })?;
            match landing {
                Landing::Done(r) => return r,
                Landing::Elsewhere(at) => hop(&mut owner, &mut path, at),
            }
        }
    }

    /// Runs `f` on the index under the write lock, without the GIL; refused on a view
    /// (`what` names the call in the message).
    pub(crate) fn write<R: Send>(
        &self,
        py: Python<'_>,
        what: &str,
        f: impl FnOnce(&mut T) -> PyResult<R> + Send,
    ) -> PyResult<R> {
        with_write(py, &self.0, |slot| match slot {
            Slot::Owned(index) => f(&mut **index),
            Slot::Part(at) => Err(FathomError::new_err(format!(
                "{what}: this index is {} of another index, which owns it (fathom \
                 indexes own their parts where Faiss shares them); {what} the owning \
                 index, or work on a copy: clone_index(...). Parts can be read and their \
                 search parameters set",
                at.dotted()
            ))),
            Slot::Moved(note) => Err(moved_err(note)),
        })
    }

    /// Runs `f` on the index under the write lock, without the GIL, walking into the
    /// owner for a view: for run-time parameters, which parts may change.
    pub(crate) fn tune<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut T) -> PyResult<R> + Send,
    ) -> PyResult<R> {
        let mut f = Some(f);
        let (mut owner, mut path): (Option<Arc<Self>>, Vec<Part>) = (None, Vec::new());
        loop {
            let at = owner.as_deref().unwrap_or(self);
            let landing = with_write(py, &at.0, |slot| {
                Ok(match slot {
                    Slot::Owned(index) => Landing::Done(match walk_mut(&mut **index, &path) {
                        Some(part) => f.take().map_or_else(unreachable, |f| f(part)),
                        None => Err(gone_err(&dotted(&path))),
                    }),
                    Slot::Part(at) => Landing::Elsewhere(at.clone()),
                    Slot::Moved(note) => Landing::Done(Err(moved_err(note))),
                })
            })?;
            match landing {
                Landing::Done(r) => return r,
                Landing::Elsewhere(at) => hop(&mut owner, &mut path, at),
            }
        }
    }

    /// A quick look at the index with the GIL held (dimension, counts).
    pub(crate) fn peek<R>(&self, f: impl FnOnce(&T) -> R) -> PyResult<R> {
        let (mut owner, mut path): (Option<Arc<Self>>, Vec<Part>) = (None, Vec::new());
        loop {
            let at = owner.as_deref().unwrap_or(self);
            let next = {
                let guard = at.0.read().map_err(|_| poisoned())?;
                match &*guard {
                    Slot::Owned(index) => {
                        return walk(&**index, &path)
                            .map(f)
                            .ok_or_else(|| gone_err(&dotted(&path)));
                    }
                    Slot::Moved(note) => return Err(moved_err(note)),
                    Slot::Part(at) => at.clone(),
                }
            };
            hop(&mut owner, &mut path, next);
        }
    }

    fn lock(&self) -> PyResult<RwLockWriteGuard<'_, Slot<T>>> {
        self.0.write().map_err(|_| poisoned())
    }

    /// Runs `f` on this slot's index and `other`'s, two different indexes each owned by
    /// its slot, both locked for writing without the GIL. The locks are taken in address
    /// order, so two calls on the same pair in opposite roles cannot deadlock. Views and
    /// moved indexes are refused (`what` names the call in the errors).
    pub(crate) fn with_pair<R: Send>(
        &self,
        other: &Self,
        py: Python<'_>,
        what: &str,
        f: impl FnOnce(&mut T, &mut T) -> PyResult<R> + Send,
    ) -> PyResult<R> {
        if std::ptr::eq(self, other) {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "{what}: an index cannot be combined with itself"
            )));
        }
        py.detach(|| {
            let (mut a, mut b);
            if (self as *const Self) < (other as *const Self) {
                a = self.lock()?;
                b = other.lock()?;
            } else {
                b = other.lock()?;
                a = self.lock()?;
            }
            match (&mut *a, &mut *b) {
                (Slot::Owned(x), Slot::Owned(y)) => f(&mut **x, &mut **y),
                (Slot::Moved(note), _) | (_, Slot::Moved(note)) => Err(moved_err(note)),
                (Slot::Part(_), _) | (_, Slot::Part(_)) => {
                    Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "{what}: one of the indexes is part of another index (its \
                         quantizer, wrapped index, …); use the indexes that own them"
                    )))
                }
            }
        })
    }

    /// Takes the index out for `new_owner`; until [`IndexSlot::became`] says where it
    /// is in its new owner, the Python object says where it went (`describe` names the
    /// index in that note). A view cannot be taken: its owner keeps it.
    pub(crate) fn take(
        &self,
        new_owner: &str,
        describe: impl FnOnce(&T) -> String,
    ) -> PyResult<Box<T>> {
        let mut guard = self.lock()?;
        let what = match &*guard {
            Slot::Owned(index) => describe(index),
            Slot::Moved(note) => return Err(moved_err(note)),
            Slot::Part(at) => {
                return Err(FathomError::new_err(format!(
                    "{new_owner}: this index is {} of another index, which owns it; build \
                     the {new_owner} from a copy: clone_index(...)",
                    at.dotted()
                )));
            }
        };
        let note = format!(
            "this index ({what}) now belongs to the {new_owner} built from it: fathom \
             indexes own their parts where Faiss shares them; use the {new_owner}"
        );
        match std::mem::replace(&mut *guard, Slot::Moved(note)) {
            Slot::Owned(index) => Ok(index),
            Slot::Moved(note) => Err(moved_err(&note)),
            Slot::Part(_) => Err(unreachable_err()),
        }
    }

    /// After [`IndexSlot::take`]: the index now lives at `path` inside `root`, and this
    /// object becomes a view of it there.
    pub(crate) fn became(&self, root: &Arc<Self>, path: Vec<Part>) -> PyResult<()> {
        let mut guard = self.lock()?;
        if matches!(&*guard, Slot::Moved(_)) {
            *guard = Slot::Part(PartOf {
                root: Arc::clone(root),
                path,
            });
        }
        Ok(())
    }
}

fn unreachable_err() -> PyErr {
    FathomError::new_err("internal error: an index call ran twice")
}

fn unreachable<R>() -> PyResult<R> {
    Err(unreachable_err())
}
