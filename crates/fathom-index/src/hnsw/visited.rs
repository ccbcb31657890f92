//! Which nodes a graph search has already reached: one bit per node, so the table of a
//! million-node graph (128 KiB) stays in the core's L2 cache. The words a search set are
//! remembered and zeroed when the next search starts, so starting a search costs what
//! the previous one touched, not the size of the graph.

use std::cell::RefCell;

/// Faiss's `VisitedTable`, as a bitset.
#[derive(Debug, Default)]
pub(crate) struct Visited {
    bits: Vec<u64>,
    touched: Vec<u32>,
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
        for w in self.touched.drain(..) {
            self.bits[w as usize] = 0;
        }
        let words = n.div_ceil(64);
        if self.bits.len() < words {
            self.bits.resize(words, 0);
        }
    }

    /// Marks `id`; true when it had not been seen in this search.
    #[inline]
    pub fn set(&mut self, id: u32) -> bool {
        let w = (id >> 6) as usize;
        let mask = 1u64 << (id & 63);
        let old = self.bits[w];
        if old & mask != 0 {
            return false;
        }
        if old == 0 {
            self.touched.push(w as u32);
        }
        self.bits[w] = old | mask;
        true
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
    fn searches_start_clean() {
        let mut v = Visited::new(200);
        for round in 0..5u32 {
            for id in [0, 63, 64, 199, round] {
                v.set(id);
            }
            assert!(!v.set(63));
            v.prepare(200);
            for id in 0..200 {
                assert!(v.set(id), "round {round}: {id} still marked");
            }
            v.prepare(200);
        }
        with_visited(8, |v| {
            assert!(v.set(7));
            with_visited(8, |inner| assert!(inner.set(7)));
        });
    }
}
