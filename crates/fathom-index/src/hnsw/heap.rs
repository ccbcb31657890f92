//! The priority queues of graph search: a max-heap of results, a min-heap of candidates
//! and Faiss's bounded `MinimaxHeap`. Keys are distances (smaller is better); ties break
//! on the node id so that runs are reproducible.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A node and its distance to the query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub d: f32,
    pub id: u32,
}

impl Candidate {
    #[inline]
    pub fn new(d: f32, id: u32) -> Self {
        Candidate { d, id }
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.d.total_cmp(&other.d).then(self.id.cmp(&other.id))
    }
}

/// Farthest on top.
#[derive(Debug, Default)]
pub(crate) struct MaxHeap(BinaryHeap<Candidate>);

impl MaxHeap {
    pub fn with_capacity(n: usize) -> Self {
        MaxHeap(BinaryHeap::with_capacity(n))
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }
    #[inline]
    pub fn push(&mut self, c: Candidate) {
        self.0.push(c);
    }
    #[inline]
    pub fn pop(&mut self) -> Option<Candidate> {
        self.0.pop()
    }
    /// The farthest distance held (`+∞` when empty).
    #[inline]
    pub fn peek_d(&self) -> f32 {
        self.0.peek().map_or(f32::INFINITY, |c| c.d)
    }
    /// The entries, nearest first.
    pub fn into_sorted(self) -> Vec<Candidate> {
        self.0.into_sorted_vec()
    }
}

/// Nearest on top.
#[derive(Debug, Default)]
pub(crate) struct MinHeap(BinaryHeap<std::cmp::Reverse<Candidate>>);

impl MinHeap {
    pub fn with_capacity(n: usize) -> Self {
        MinHeap(BinaryHeap::with_capacity(n))
    }
    #[inline]
    pub fn push(&mut self, c: Candidate) {
        self.0.push(std::cmp::Reverse(c));
    }
    #[inline]
    pub fn pop(&mut self) -> Option<Candidate> {
        self.0.pop().map(|r| r.0)
    }
    #[inline]
    pub fn peek(&self) -> Option<Candidate> {
        self.0.peek().map(|r| r.0)
    }
}

/// Faiss's `MinimaxHeap`: at most `n` candidates; a push into a full heap replaces the
/// farthest (or is dropped when it is farther still); `pop_min` takes the nearest.
#[derive(Debug)]
pub(crate) struct MinimaxHeap {
    n: usize,
    heap: BinaryHeap<Candidate>,
}

impl MinimaxHeap {
    pub fn new(n: usize) -> Self {
        MinimaxHeap {
            n: n.max(1),
            heap: BinaryHeap::with_capacity(n.max(1) + 1),
        }
    }

    pub fn push(&mut self, id: u32, d: f32) {
        let c = Candidate::new(d, id);
        if self.heap.len() == self.n {
            match self.heap.peek() {
                Some(top) if c < *top => {
                    self.heap.pop();
                }
                _ => return,
            }
        }
        self.heap.push(c);
    }

    /// Removes and returns the nearest candidate (a linear scan, as Faiss's).
    pub fn pop_min(&mut self) -> Option<(u32, f32)> {
        let min = *self.heap.iter().min()?;
        self.heap.retain(|c| *c != min);
        Some((min.id, min.d))
    }

    /// How many candidates are strictly nearer than `d`.
    pub fn count_below(&self, d: f32) -> usize {
        self.heap.iter().filter(|c| c.d < d).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimax_keeps_the_nearest() {
        let mut h = MinimaxHeap::new(3);
        for (i, d) in [5.0, 1.0, 4.0, 3.0, 9.0, 2.0].into_iter().enumerate() {
            h.push(i as u32, d);
        }
        assert_eq!(h.count_below(3.0), 2);
        let order: Vec<f32> = std::iter::from_fn(|| h.pop_min().map(|p| p.1)).collect();
        assert_eq!(order, vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn heaps_order_by_distance_then_id() {
        let mut mx = MaxHeap::with_capacity(4);
        let mut mn = MinHeap::with_capacity(4);
        for (d, id) in [(2.0, 1), (1.0, 7), (2.0, 0), (3.0, 4)] {
            mx.push(Candidate::new(d, id));
            mn.push(Candidate::new(d, id));
        }
        assert_eq!(mx.pop().unwrap().id, 4);
        assert_eq!(mx.pop().unwrap().id, 1);
        assert_eq!(mn.pop().unwrap().id, 7);
        assert_eq!(mn.pop().unwrap().id, 0);
    }
}
