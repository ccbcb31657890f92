//! Which nodes a graph search has already reached: one byte per node holding the number
//! of the search that last saw it, so starting a new search costs nothing (the table is
//! cleared once every 255 searches).

use std::cell::RefCell;

/// Faiss's `VisitedTable`.
#[derive(Debug, Default)]
pub(crate) struct Visited {
    marks: Vec<u8>,
    generation: u8,
}

impl Visited {
    /// A table for at least `n` nodes, for a new search.
    pub fn new(n: usize) -> Self {
        let mut v = Visited::default();
        v.prepare(n);
        v
    }

    /// Makes the table cover `n` nodes and starts a new search.
    pub fn prepare(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.fill(0);
            self.generation = 1;
        }
    }

    /// Marks `id`; true when it had not been seen in this search.
    #[inline]
    pub fn set(&mut self, id: u32) -> bool {
        let m = &mut self.marks[id as usize];
        let fresh = *m != self.generation;
        *m = self.generation;
        fresh
    }
}

thread_local! {
    static TABLE: RefCell<Visited> = RefCell::new(Visited::default());
}

/// Runs `f` with this thread's table prepared for `n` nodes (a fresh one if the thread's
/// own is already in use further up the stack).
pub(crate) fn with_visited<R>(n: usize, f: impl FnOnce(&mut Visited) -> R) -> R {
    let mut f = Some(f);
    let r = TABLE.with(|t| {
        t.try_borrow_mut().ok().map(|mut v| {
            v.prepare(n);
            (f.take().expect("called once"))(&mut v)
        })
    });
    match r {
        Some(r) => r,
        None => (f.take().expect("not called yet"))(&mut Visited::new(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_wrap_without_stale_marks() {
        let mut v = Visited::new(4);
        for _ in 0..600 {
            assert!(v.set(2));
            assert!(!v.set(2));
            v.prepare(4);
        }
        with_visited(8, |v| {
            assert!(v.set(7));
            with_visited(8, |inner| assert!(inner.set(7)));
        });
    }
}
