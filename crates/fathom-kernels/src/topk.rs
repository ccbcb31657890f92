//! Top-k selection: a bounded max-heap over `(key, id)` where smaller keys are better.
//! Callers map every metric onto "smaller is better" keys (inner product is negated), so
//! one heap serves all. Ties are broken by the smaller id, which makes results independent
//! of the order candidates arrive in (and so of the thread count).

use fathom_core::Idx;

/// The `k` best `(key, id)` pairs seen so far, smaller keys first.
///
/// ```
/// use fathom_kernels::TopK;
/// let mut top = TopK::new(2);
/// for (key, id) in [(3.0, 0), (1.0, 1), (2.0, 2), (1.0, 3)] {
///     top.push(key, id);
/// }
/// assert_eq!(top.into_sorted(), vec![(1.0, 1), (1.0, 3)]);
/// ```
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    keys: Vec<f32>,
    ids: Vec<Idx>,
}

#[inline(always)]
fn worse(ka: f32, ia: Idx, kb: f32, ib: Idx) -> bool {
    ka > kb || (ka == kb && ia > ib)
}

impl TopK {
    /// An empty selection of at most `k` entries. Memory grows with what is pushed, so a
    /// huge `k` over few candidates costs nothing up front.
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            keys: Vec::with_capacity(k.min(1024)),
            ids: Vec::with_capacity(k.min(1024)),
        }
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A key that any candidate must be `<=` to enter: the worst key held once full,
    /// `+∞` before (`−∞` when `k = 0`: nothing enters).
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.k == 0 {
            f32::NEG_INFINITY
        } else if self.keys.len() < self.k {
            f32::INFINITY
        } else {
            self.keys[0]
        }
    }

    /// Offers a candidate; returns whether it was kept. NaN keys are never kept.
    #[inline]
    pub fn push(&mut self, key: f32, id: Idx) -> bool {
        if key.is_nan() || self.k == 0 {
            return false;
        }
        if self.keys.len() < self.k {
            self.keys.push(key);
            self.ids.push(id);
            let last = self.keys.len() - 1;
            sift_up(&mut self.keys, &mut self.ids, last);
            return true;
        }
        replace_top(&mut self.keys, &mut self.ids, key, id)
    }

    /// Offers `keys[j]` with id `first + j` for every `j`, in order, to the heap: only
    /// keys strictly below the threshold are looked at (found with SIMD compares), and
    /// `accept(id)` (an id selector) is asked only for those. With ids offered in
    /// increasing order this keeps exactly what pushing every key would.
    ///
    /// ```
    /// use fathom_kernels::TopK;
    /// let mut top = TopK::new(2);
    /// top.push_run(100, &[5.0, 1.0, 4.0, 0.5, 2.0], |id| id != 103);
    /// assert_eq!(top.into_sorted(), vec![(1.0, 101), (2.0, 104)]);
    /// ```
    #[inline]
    pub fn push_run(&mut self, first: Idx, keys: &[f32], mut accept: impl FnMut(Idx) -> bool) {
        let mut pos = 0;
        while let Some(j) = crate::select::first_below(&keys[pos..], self.threshold()) {
            let at = pos + j;
            let id = first + at as Idx;
            if accept(id) {
                self.push(keys[at], id);
            }
            pos = at + 1;
        }
    }

    /// [`TopK::push_run`] with the id of `keys[j]` taken from `ids[j]` (an inverted
    /// list's ids). Ties between equal keys are broken by the smaller id, whatever order
    /// the ids come in.
    ///
    /// ```
    /// use fathom_kernels::TopK;
    /// let mut top = TopK::new(2);
    /// top.push_ids(&[5.0, 1.0, 4.0], &[70, 71, 72], |_| true);
    /// assert_eq!(top.into_sorted(), vec![(1.0, 71), (4.0, 72)]);
    /// ```
    #[inline]
    pub fn push_ids(&mut self, keys: &[f32], ids: &[Idx], mut accept: impl FnMut(Idx) -> bool) {
        debug_assert_eq!(keys.len(), ids.len());
        let mut pos = 0;
        // `<=` so that an equal key with a smaller id can still enter.
        while let Some(j) = crate::select::first_below(&keys[pos..], self.threshold().next_up()) {
            let at = pos + j;
            let id = ids[at];
            if accept(id) {
                self.push(keys[at], id);
            }
            pos = at + 1;
        }
    }

    /// [`TopK::push_ids`] for fast-scan accumulators: `keys[j]` stands for the key
    /// `offset + keys[j] / scale` (`scale > 0`), which is what enters the heap.
    #[inline]
    pub fn push_ids_u16(
        &mut self,
        keys: &[u16],
        ids: &[Idx],
        offset: f32,
        scale: f32,
        mut accept: impl FnMut(Idx) -> bool,
    ) {
        debug_assert_eq!(keys.len(), ids.len());
        let mut pos = 0;
        loop {
            // Integer keys that can reach the threshold: offset + key/scale <= t. One unit
            // of slack absorbs the rounding of this conversion; `push` decides exactly.
            // `as u32` truncates, which is `floor` on the non-negative values left after
            // the clamp (libm's `floorf` was 2 % of an IVF fast-scan search); rounding in
            // `t + 2` can only raise the bound, which stays safe.
            let t = (self.threshold() - offset) * scale;
            let thr = (t + 2.0).clamp(0.0, 65536.0) as u32;
            let Some(j) = crate::select::first_below_u16(&keys[pos..], thr) else {
                break;
            };
            let at = pos + j;
            let id = ids[at];
            if accept(id) {
                self.push(offset + keys[at] as f32 / scale, id);
            }
            pos = at + 1;
        }
    }

    /// [`TopK::push_run`] for integer keys (the fast-scan accumulators).
    #[inline]
    pub fn push_run_u16(&mut self, first: Idx, keys: &[u16], mut accept: impl FnMut(Idx) -> bool) {
        let mut pos = 0;
        loop {
            // An integer key is below `t` exactly when it is below `ceil(t)`.
            let thr = self.threshold().ceil().clamp(0.0, 65536.0) as u32;
            let Some(j) = crate::select::first_below_u16(&keys[pos..], thr) else {
                break;
            };
            let at = pos + j;
            let id = first + at as Idx;
            if accept(id) {
                self.push(keys[at] as f32, id);
            }
            pos = at + 1;
        }
    }

    /// Adds every entry of `other`.
    pub fn merge(&mut self, other: &TopK) {
        for (&key, &id) in other.keys.iter().zip(&other.ids) {
            self.push(key, id);
        }
    }

    /// The entries, best first.
    pub fn into_sorted(self) -> Vec<(f32, Idx)> {
        let mut v: Vec<(f32, Idx)> = self.keys.into_iter().zip(self.ids).collect();
        v.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        v
    }
}

/// Restores the heap property upwards from `i`.
fn sift_up(keys: &mut [f32], ids: &mut [Idx], mut i: usize) {
    while i > 0 {
        let p = (i - 1) / 2;
        if worse(keys[i], ids[i], keys[p], ids[p]) {
            keys.swap(i, p);
            ids.swap(i, p);
            i = p;
        } else {
            break;
        }
    }
}

/// Restores the heap property downwards from the root.
fn sift_down(keys: &mut [f32], ids: &mut [Idx]) {
    let n = keys.len();
    let mut i = 0;
    loop {
        let l = 2 * i + 1;
        if l >= n {
            break;
        }
        let r = l + 1;
        let c = if r < n && worse(keys[r], ids[r], keys[l], ids[l]) {
            r
        } else {
            l
        };
        if worse(keys[c], ids[c], keys[i], ids[i]) {
            keys.swap(i, c);
            ids.swap(i, c);
            i = c;
        } else {
            break;
        }
    }
}

/// Replaces the worst entry of a full heap when `(key, id)` is better; returns whether.
#[inline]
fn replace_top(keys: &mut [f32], ids: &mut [Idx], key: f32, id: Idx) -> bool {
    if !worse(keys[0], ids[0], key, id) {
        return false;
    }
    keys[0] = key;
    ids[0] = id;
    sift_down(keys, ids);
    true
}

/// The top-k selections of many queries in two flat arrays (one allocation for all,
/// instead of two per query): the per-tile sink of exhaustive search.
pub(crate) struct TopKSlab {
    k: usize,
    keys: Vec<f32>,
    ids: Vec<Idx>,
    lens: Vec<usize>,
}

impl TopKSlab {
    pub(crate) fn new(n: usize, k: usize) -> Self {
        TopKSlab {
            k,
            keys: vec![0.0; n * k],
            ids: vec![0; n * k],
            lens: vec![0; n],
        }
    }

    /// Free slots of selection `i`.
    #[inline]
    pub(crate) fn free(&self, i: usize) -> usize {
        self.k - self.lens[i]
    }

    #[inline]
    pub(crate) fn threshold(&self, i: usize) -> f32 {
        if self.lens[i] < self.k {
            f32::INFINITY
        } else {
            self.keys[i * self.k]
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, i: usize, key: f32, id: Idx) {
        if key.is_nan() || self.k == 0 {
            return;
        }
        let r = i * self.k..(i + 1) * self.k;
        let (keys, ids) = (&mut self.keys[r.clone()], &mut self.ids[r]);
        let len = self.lens[i];
        if len < self.k {
            keys[len] = key;
            ids[len] = id;
            self.lens[i] = len + 1;
            sift_up(&mut keys[..=len], &mut ids[..=len], len);
        } else {
            replace_top(keys, ids, key, id);
        }
    }

    pub(crate) fn merge(&mut self, other: &TopKSlab) {
        for i in 0..self.lens.len() {
            for j in 0..other.lens[i] {
                let at = i * other.k + j;
                self.push(i, other.keys[at], other.ids[at]);
            }
        }
    }

    /// Selection `i`, best first.
    pub(crate) fn sorted(&self, i: usize) -> Vec<(f32, Idx)> {
        let at = i * self.k;
        let mut v: Vec<(f32, Idx)> = (0..self.lens[i])
            .map(|j| (self.keys[at + j], self.ids[at + j]))
            .collect();
        v.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        v
    }

    pub(crate) fn len(&self) -> usize {
        self.lens.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matches_sorting(keys in proptest::collection::vec(0u8..20, 0..200), k in 0usize..30) {
            let mut top = TopK::new(k);
            for (i, &key) in keys.iter().enumerate() {
                top.push(key as f32, i as Idx);
            }
            let mut all: Vec<(f32, Idx)> = keys.iter().enumerate().map(|(i, &key)| (key as f32, i as Idx)).collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            all.truncate(k);
            prop_assert_eq!(top.into_sorted(), all);
        }
    }

    proptest! {
        #[test]
        fn push_run_matches_push(keys in proptest::collection::vec(0u16..50, 0..300), k in 0usize..20, skip in 1i64..7) {
            let accept = |id: Idx| id % skip != 0;
            let (mut a, mut b, mut c) = (TopK::new(k), TopK::new(k), TopK::new(k));
            let fkeys: Vec<f32> = keys.iter().map(|&x| x as f32).collect();
            for (i, &key) in fkeys.iter().enumerate() {
                if accept(10 + i as Idx) {
                    a.push(key, 10 + i as Idx);
                }
            }
            for chunk in 0..fkeys.len().div_ceil(37) {
                let r = chunk * 37..((chunk + 1) * 37).min(fkeys.len());
                b.push_run(10 + r.start as Idx, &fkeys[r.clone()], accept);
                c.push_run_u16(10 + r.start as Idx, &keys[r], accept);
            }
            let want = a.into_sorted();
            prop_assert_eq!(b.into_sorted(), want.clone());
            prop_assert_eq!(c.into_sorted(), want);
        }
    }

    proptest! {
        #[test]
        fn push_ids_matches_push(
            entries in proptest::collection::vec((0u16..40, 0i64..60), 0..300),
            k in 0usize..20,
            skip in 1i64..7,
            scale in 0.25f32..4.0,
            offset in -3.0f32..3.0,
        ) {
            // Ids in any order, with duplicates and tied keys: ties go to the smaller id.
            let accept = |id: Idx| id % skip != 0;
            let keys: Vec<u16> = entries.iter().map(|e| e.0).collect();
            let ids: Vec<Idx> = entries.iter().map(|e| e.1).collect();
            let fkeys: Vec<f32> = keys.iter().map(|&x| x as f32).collect();
            let (mut a, mut b) = (TopK::new(k), TopK::new(k));
            let (mut c, mut e) = (TopK::new(k), TopK::new(k));
            for (&key, &id) in fkeys.iter().zip(&ids) {
                if accept(id) {
                    a.push(key, id);
                    c.push(offset + key / scale, id);
                }
            }
            for chunk in 0..keys.len().div_ceil(29) {
                let r = chunk * 29..((chunk + 1) * 29).min(keys.len());
                b.push_ids(&fkeys[r.clone()], &ids[r.clone()], accept);
                e.push_ids_u16(&keys[r.clone()], &ids[r], offset, scale, accept);
            }
            prop_assert_eq!(b.into_sorted(), a.into_sorted());
            prop_assert_eq!(e.into_sorted(), c.into_sorted());
        }
    }

    proptest! {
        #[test]
        fn slab_matches_topk(keys in proptest::collection::vec(0u8..20, 0..200), k in 1usize..30) {
            let mut top = TopK::new(k);
            let mut slab = TopKSlab::new(2, k);
            for (i, &key) in keys.iter().enumerate() {
                top.push(key as f32, i as Idx);
                slab.push(1, key as f32, i as Idx);
            }
            prop_assert_eq!(slab.sorted(1), top.into_sorted());
            prop_assert!(slab.sorted(0).is_empty());
        }
    }

    #[test]
    fn nan_is_never_kept() {
        let mut top = TopK::new(3);
        assert!(!top.push(f32::NAN, 1));
        assert!(top.is_empty());
    }
}
