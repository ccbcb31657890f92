//! IVF changes are all-or-nothing: when the list store fails part-way through add,
//! add_preassigned_codes, merge_from, copy_subset_to, update_vectors or remove_ids, the
//! index is left
//! exactly as it was (lists, entry count, direct map) and the error is returned.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fathom_core::{Error, Idx, Result};
use fathom_index::ivf::{DirectMapType, SubsetType};
use fathom_index::{Index, IndexFlat, IndexIvfFlat, MetricType};
use fathom_invlists::{ArrayInvertedLists, InvertedLists};

/// Array lists whose write number `budget + 1` fails (once: a transient failure, so the
/// undo can write; `sticky` makes every later write fail too).
#[derive(Debug)]
struct Failing {
    inner: ArrayInvertedLists,
    budget: Arc<AtomicUsize>,
    sticky: bool,
}

impl Failing {
    fn spend(&self) -> Result<()> {
        let left = self.budget.load(Ordering::SeqCst);
        if left == 0 {
            if !self.sticky {
                self.budget.store(usize::MAX, Ordering::SeqCst);
            }
            return Err(Error::invalid("injected list failure"));
        }
        self.budget.store(left - 1, Ordering::SeqCst);
        Ok(())
    }
}

impl InvertedLists for Failing {
    fn nlist(&self) -> usize {
        self.inner.nlist()
    }
    fn code_size(&self) -> usize {
        self.inner.code_size()
    }
    fn list_size(&self, list: usize) -> usize {
        self.inner.list_size(list)
    }
    fn codes(&self, list: usize) -> &[u8] {
        self.inner.codes(list)
    }
    fn ids(&self, list: usize) -> &[Idx] {
        self.inner.ids(list)
    }
    fn add_entries(&mut self, list: usize, ids: &[Idx], codes: &[u8]) -> Result<usize> {
        self.spend()?;
        self.inner.add_entries(list, ids, codes)
    }
    fn update_entries(&mut self, list: usize, o: usize, ids: &[Idx], codes: &[u8]) -> Result<()> {
        self.spend()?;
        self.inner.update_entries(list, o, ids, codes)
    }
    // Undoing must work even when the store refuses new writes.
    fn resize(&mut self, list: usize, size: usize) -> Result<()> {
        self.inner.resize(list, size)
    }
}

fn data(n: usize, d: usize, seed: usize) -> Vec<f32> {
    (0..n * d)
        .map(|i| (((i + seed) * 7919 % 1009) as f32) / 1009.0)
        .collect()
}

/// A trained IVF index with 300 vectors in failing lists, and the knob that arms them.
fn index(nlist: usize) -> (IndexIvfFlat, Arc<AtomicUsize>) {
    index_failing(nlist, false)
}

fn index_failing(nlist: usize, sticky: bool) -> (IndexIvfFlat, Arc<AtomicUsize>) {
    let d = 4;
    let q = IndexFlat::new(d, MetricType::L2).unwrap();
    let mut ivf = IndexIvfFlat::new(Box::new(q), nlist, MetricType::L2).unwrap();
    ivf.train(&data(600, d, 0)).unwrap();
    let budget = Arc::new(AtomicUsize::new(usize::MAX));
    let lists = Failing {
        inner: ArrayInvertedLists::new(nlist, 4 * d),
        budget: budget.clone(),
        sticky,
    };
    ivf.replace_invlists(Box::new(lists)).unwrap();
    ivf.set_direct_map_type(DirectMapType::Hashtable).unwrap();
    ivf.add(&data(300, d, 1)).unwrap();
    (ivf, budget)
}

/// The `(id, code)` entries of each list.
type Lists = Vec<Vec<(Idx, Vec<u8>)>>;

/// Everything observable about the index's contents: its count and its lists.
fn snapshot(ivf: &IndexIvfFlat) -> (usize, Lists) {
    let lists = ivf.invlists();
    let entries = (0..ivf.nlist())
        .map(|l| {
            lists
                .entries(l)
                .map(|(id, c)| (id, c.into_owned()))
                .collect()
        })
        .collect();
    (ivf.ntotal(), entries)
}

#[test]
fn a_failed_add_changes_nothing() {
    let (mut ivf, budget) = index(8);
    let before = snapshot(&ivf);
    budget.store(3, Ordering::SeqCst);
    let e = ivf.add(&data(200, 4, 2)).unwrap_err();
    assert!(e.to_string().contains("injected"), "{e}");
    assert_eq!(snapshot(&ivf), before);
    // The direct map agrees with the lists again: every id reconstructs.
    budget.store(usize::MAX, Ordering::SeqCst);
    for id in [0, 150, 299] {
        ivf.reconstruct(id).unwrap();
    }
    assert!(ivf.reconstruct(300).is_err());
}

#[test]
fn a_failed_update_changes_nothing() {
    let (mut ivf, budget) = index(8);
    let before = snapshot(&ivf);
    let ids: Vec<Idx> = (0..100).collect();
    // New vectors far away, so most entries move lists (a rewrite, a shrink, an append).
    let moved: Vec<f32> = data(100, 4, 9).iter().map(|v| 1.0 - v).collect();
    for budget_left in [0, 1, 5, 40] {
        budget.store(budget_left, Ordering::SeqCst);
        let e = ivf.update_vectors(&ids, &moved).unwrap_err();
        assert!(e.to_string().contains("injected"), "{e}");
        assert_eq!(snapshot(&ivf), before, "after {budget_left} writes");
    }
    budget.store(usize::MAX, Ordering::SeqCst);
    let expected = ivf.reconstruct(7).unwrap();
    assert_eq!(expected, data(300, 4, 1)[7 * 4..8 * 4].to_vec());
    ivf.update_vectors(&ids, &moved).unwrap();
    assert_eq!(ivf.reconstruct(7).unwrap(), moved[7 * 4..8 * 4].to_vec());
}

#[test]
fn a_failed_removal_changes_nothing() {
    let (mut ivf, budget) = index(8);
    let before = snapshot(&ivf);
    budget.store(3, Ordering::SeqCst);
    let odd = fathom_core::IdSelectorBatch::new((1..300).step_by(2));
    assert!(ivf.remove_ids(&odd).is_err());
    assert_eq!(snapshot(&ivf), before);
    assert_eq!(ivf.remove_ids(&odd).unwrap(), 150);
    assert_eq!(ivf.ntotal(), 150);
}

#[test]
fn a_failed_subset_copy_leaves_the_target_as_it_was() {
    let (src, _) = index(8);
    let (mut dst, budget) = index(8);
    dst.reset().unwrap();
    dst.add(&data(10, 4, 3)).unwrap();
    let before = snapshot(&dst);
    budget.store(2, Ordering::SeqCst);
    let subset = SubsetType::IdRange { start: 0, end: 300 };
    assert!(src.copy_subset_to(&mut dst, subset).is_err());
    assert_eq!(snapshot(&dst), before);
    assert_eq!(dst.ntotal(), dst.invlists().compute_ntotal());
}

#[test]
fn a_failed_merge_leaves_both_indexes_as_they_were() {
    let (mut a, budget) = index(8);
    let (mut b, _) = index(8);
    let (before_a, before_b) = (snapshot(&a), snapshot(&b));
    budget.store(2, Ordering::SeqCst);
    assert!(a.merge_from(&mut b, 1000).is_err());
    assert_eq!(snapshot(&a), before_a);
    assert_eq!(snapshot(&b), before_b);
}

#[test]
fn an_undo_that_fails_too_says_so() {
    let (mut ivf, budget) = index_failing(8, true);
    let ids: Vec<Idx> = (0..100).collect();
    let moved: Vec<f32> = data(100, 4, 9).iter().map(|v| 1.0 - v).collect();
    budget.store(1, Ordering::SeqCst);
    let e = ivf.update_vectors(&ids, &moved).unwrap_err();
    assert!(
        e.to_string().contains("undoing the partial change failed"),
        "{e}"
    );
}
