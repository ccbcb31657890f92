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
    /// `+∞` before.
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.keys.len() < self.k {
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
            self.sift_up(self.keys.len() - 1);
            return true;
        }
        if !worse(self.keys[0], self.ids[0], key, id) {
            return false;
        }
        self.keys[0] = key;
        self.ids[0] = id;
        self.sift_down(0);
        true
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let p = (i - 1) / 2;
            if worse(self.keys[i], self.ids[i], self.keys[p], self.ids[p]) {
                self.keys.swap(i, p);
                self.ids.swap(i, p);
                i = p;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.keys.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let c = if r < n && worse(self.keys[r], self.ids[r], self.keys[l], self.ids[l]) {
                r
            } else {
                l
            };
            if worse(self.keys[c], self.ids[c], self.keys[i], self.ids[i]) {
                self.keys.swap(i, c);
                self.ids.swap(i, c);
                i = c;
            } else {
                break;
            }
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

    #[test]
    fn nan_is_never_kept() {
        let mut top = TopK::new(3);
        assert!(!top.push(f32::NAN, 1));
        assert!(top.is_empty());
    }
}
