//! Id selectors: predicates on ids that restrict search, range search and removal, with
//! Faiss's family of selectors (`IDSelectorRange`, `IDSelectorBatch`, `IDSelectorBitmap`,
//! `IDSelectorNot`, `IDSelectorAnd`, `IDSelectorOr`, `IDSelectorXOr`).

use std::collections::HashSet;
use std::sync::Arc;

use crate::{Error, Idx, Result};

/// A set of ids, tested one id at a time. Indexes call [`IdSelector::is_member`] on the ids
/// they would return (or remove), so a selector also works through id-mapping wrappers.
///
/// ```
/// use fathom_core::{IdSelector, IdSelectorRange, IdSelectorBatch, IdSelectorNot, IdSelectorOr};
/// let low = IdSelectorRange::new(0, 10);
/// let picked = IdSelectorBatch::new([42, 77]);
/// let either = IdSelectorOr::new(&low, &picked);
/// assert!(either.is_member(3) && either.is_member(77) && !either.is_member(10));
/// assert!(IdSelectorNot::new(&low).is_member(10));
/// ```
pub trait IdSelector: Send + Sync {
    /// True when `id` belongs to the set.
    fn is_member(&self, id: Idx) -> bool;
}

impl<S: IdSelector + ?Sized> IdSelector for &S {
    fn is_member(&self, id: Idx) -> bool {
        (**self).is_member(id)
    }
}

impl<S: IdSelector + ?Sized> IdSelector for Box<S> {
    fn is_member(&self, id: Idx) -> bool {
        (**self).is_member(id)
    }
}

impl<S: IdSelector + ?Sized> IdSelector for Arc<S> {
    fn is_member(&self, id: Idx) -> bool {
        (**self).is_member(id)
    }
}

/// Every id.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdSelectorAll;

impl IdSelector for IdSelectorAll {
    fn is_member(&self, _id: Idx) -> bool {
        true
    }
}

/// The ids in the half-open range `[imin, imax)`, as Faiss's `IDSelectorRange`.
#[derive(Debug, Clone, Copy)]
pub struct IdSelectorRange {
    /// First id in the range.
    pub imin: Idx,
    /// One past the last id in the range.
    pub imax: Idx,
}

impl IdSelectorRange {
    /// The range `[imin, imax)`; empty when `imax <= imin`.
    pub fn new(imin: Idx, imax: Idx) -> Self {
        IdSelectorRange { imin, imax }
    }
}

impl IdSelector for IdSelectorRange {
    fn is_member(&self, id: Idx) -> bool {
        self.imin <= id && id < self.imax
    }
}

/// An explicit set of ids, as Faiss's `IDSelectorBatch`.
#[derive(Debug, Clone, Default)]
pub struct IdSelectorBatch {
    ids: HashSet<Idx>,
}

impl IdSelectorBatch {
    /// The set of the given ids (duplicates are fine).
    pub fn new(ids: impl IntoIterator<Item = Idx>) -> Self {
        IdSelectorBatch {
            ids: ids.into_iter().collect(),
        }
    }

    /// How many distinct ids the set holds.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the set is empty (such a selector matches nothing).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl IdSelector for IdSelectorBatch {
    fn is_member(&self, id: Idx) -> bool {
        self.ids.contains(&id)
    }
}

/// A bitmap over ids `0..n`: id `i` is a member when bit `i & 7` of byte `i >> 3` is set
/// (least significant bit first, Faiss's `IDSelectorBitmap` layout). Ids outside `0..n`
/// are not members.
#[derive(Debug, Clone)]
pub struct IdSelectorBitmap {
    n: usize,
    bits: Vec<u8>,
}

impl IdSelectorBitmap {
    /// A bitmap for ids `0..n`; `bits` must hold at least `ceil(n / 8)` bytes.
    pub fn new(n: usize, bits: Vec<u8>) -> Result<Self> {
        let need = n.div_ceil(8);
        if bits.len() < need {
            return Err(Error::DimensionMismatch {
                what: "bitmap".into(),
                got: bits.len(),
                expected: format!("at least {need} bytes for {n} ids"),
            });
        }
        Ok(IdSelectorBitmap { n, bits })
    }

    /// A bitmap for ids `0..n` with the given ids set; ids outside `0..n` are an error.
    pub fn from_ids(n: usize, ids: impl IntoIterator<Item = Idx>) -> Result<Self> {
        let mut bits = vec![0u8; n.div_ceil(8)];
        for id in ids {
            if id < 0 || id as u64 >= n as u64 {
                return Err(Error::invalid(format!(
                    "id {id} is outside the bitmap's range 0..{n}"
                )));
            }
            bits[(id >> 3) as usize] |= 1 << (id & 7);
        }
        Ok(IdSelectorBitmap { n, bits })
    }
}

impl IdSelector for IdSelectorBitmap {
    fn is_member(&self, id: Idx) -> bool {
        if id < 0 || id as u64 >= self.n as u64 {
            return false;
        }
        (self.bits[(id >> 3) as usize] >> (id & 7)) & 1 == 1
    }
}

/// The complement of a selector.
#[derive(Debug, Clone)]
pub struct IdSelectorNot<S>(S);

impl<S: IdSelector> IdSelectorNot<S> {
    /// Every id not in `inner`.
    pub fn new(inner: S) -> Self {
        IdSelectorNot(inner)
    }
}

impl<S: IdSelector> IdSelector for IdSelectorNot<S> {
    fn is_member(&self, id: Idx) -> bool {
        !self.0.is_member(id)
    }
}

macro_rules! binary_selector {
    ($name:ident, $doc:literal, $a:ident, $b:ident, $op:expr) => {
        #[doc = $doc]
        #[derive(Debug, Clone)]
        pub struct $name<A, B>(A, B);

        impl<A: IdSelector, B: IdSelector> $name<A, B> {
            /// Combines two selectors.
            pub fn new(a: A, b: B) -> Self {
                $name(a, b)
            }
        }

        impl<A: IdSelector, B: IdSelector> IdSelector for $name<A, B> {
            fn is_member(&self, id: Idx) -> bool {
                let $a = || self.0.is_member(id);
                let $b = || self.1.is_member(id);
                $op
            }
        }
    };
}

binary_selector!(IdSelectorAnd, "Ids in both selectors.", a, b, a() && b());
binary_selector!(IdSelectorOr, "Ids in either selector.", a, b, a() || b());
binary_selector!(
    IdSelectorXor,
    "Ids in exactly one of the two selectors.",
    a,
    b,
    a() != b()
);

/// A selector over an index's internal row numbers that asks another selector about the
/// external id each row maps to. Id-mapping wrappers (`IndexIdMap`, `IndexShards`) hand
/// this to the index they wrap, as Faiss's `IDSelectorTranslated` does. Rows outside the
/// map are not members.
pub struct IdSelectorTranslated<'a> {
    map: &'a [Idx],
    inner: &'a dyn IdSelector,
}

impl<'a> IdSelectorTranslated<'a> {
    /// Row `i` is a member when `inner` contains `map[i]`.
    pub fn new(map: &'a [Idx], inner: &'a dyn IdSelector) -> Self {
        IdSelectorTranslated { map, inner }
    }
}

impl IdSelector for IdSelectorTranslated<'_> {
    fn is_member(&self, row: Idx) -> bool {
        usize::try_from(row)
            .ok()
            .and_then(|r| self.map.get(r))
            .is_some_and(|&id| self.inner.is_member(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(s: &dyn IdSelector) -> Vec<Idx> {
        (-2..20).filter(|&i| s.is_member(i)).collect()
    }

    #[test]
    fn range_is_half_open() {
        assert_eq!(members(&IdSelectorRange::new(3, 6)), vec![3, 4, 5]);
        assert!(members(&IdSelectorRange::new(6, 3)).is_empty());
    }

    #[test]
    fn batch_and_bitmap_agree() {
        let ids = [1, 5, 9, 10, 17];
        let batch = IdSelectorBatch::new(ids);
        let bitmap = IdSelectorBitmap::from_ids(18, ids).unwrap();
        assert_eq!(members(&batch), ids.to_vec());
        assert_eq!(members(&bitmap), ids.to_vec());
        // Layout is LSB-first as in Faiss.
        let raw = IdSelectorBitmap::new(16, vec![0b0000_0010, 0b1000_0000]).unwrap();
        assert_eq!(members(&raw), vec![1, 15]);
    }

    #[test]
    fn bitmap_bad_input() {
        assert!(IdSelectorBitmap::new(17, vec![0; 2]).is_err());
        assert!(IdSelectorBitmap::from_ids(4, [4]).is_err());
        assert!(IdSelectorBitmap::from_ids(4, [-1]).is_err());
    }

    #[test]
    fn combinators() {
        let a = IdSelectorRange::new(0, 8);
        let b = IdSelectorRange::new(4, 12);
        assert_eq!(members(&IdSelectorAnd::new(&a, &b)), vec![4, 5, 6, 7]);
        assert_eq!(
            members(&IdSelectorOr::new(&a, &b)),
            (0..12).collect::<Vec<_>>()
        );
        assert_eq!(
            members(&IdSelectorXor::new(&a, &b)),
            vec![0, 1, 2, 3, 8, 9, 10, 11]
        );
        let not = IdSelectorNot::new(Box::new(a) as Box<dyn IdSelector>);
        assert_eq!(
            members(&not),
            vec![-2, -1, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        );
    }

    #[test]
    fn translated() {
        let map = [100, 7, 55];
        let inner = IdSelectorBatch::new([7, 55]);
        let t = IdSelectorTranslated::new(&map, &inner);
        assert_eq!(members(&t), vec![1, 2]);
    }
}
