//! From an id to where its entry lives: Faiss's `DirectMap` (none / array / hashtable).

use std::collections::HashMap;

use fathom_core::{Error, Idx, Result};

use crate::InvertedLists;

/// `(list, offset)` packed in one `u64` as Faiss does: list in the high 32 bits.
pub fn lo_build(list: usize, offset: usize) -> u64 {
    ((list as u64) << 32) | offset as u64
}
/// The list of a packed location.
pub fn lo_listno(lo: u64) -> usize {
    (lo >> 32) as usize
}
/// The offset of a packed location.
pub fn lo_offset(lo: u64) -> usize {
    (lo & 0xffff_ffff) as usize
}

/// Which map is kept (Faiss's `DirectMap::Type`, same numeric codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DirectMapType {
    /// No map: reconstruct and update need one; remove scans the lists.
    #[default]
    NoMap = 0,
    /// `ids` are `0..ntotal` in insertion order; the map is an array indexed by id.
    Array = 1,
    /// Any ids; the map is a hash table.
    Hashtable = 2,
}

/// The id → `(list, offset)` map of an IVF index.
///
/// ```
/// use fathom_invlists::{ArrayInvertedLists, DirectMap, DirectMapType, InvertedLists};
/// let mut lists = ArrayInvertedLists::new(2, 1);
/// lists.add_entries(1, &[0, 1], &[7, 8]).unwrap();
/// lists.add_entries(0, &[2], &[9]).unwrap();
/// let mut map = DirectMap::default();
/// map.set_type(DirectMapType::Array, &lists, 3).unwrap();
/// assert_eq!(map.get(1).unwrap(), (1, 1));
/// assert_eq!(map.get(2).unwrap(), (0, 0));
/// assert!(map.get(3).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectMap {
    kind: DirectMapType,
    array: Vec<u64>,
    hash: HashMap<Idx, u64>,
}

impl DirectMap {
    /// The kind of map kept.
    pub fn kind(&self) -> DirectMapType {
        self.kind
    }

    /// The array map: entry `id` is the packed [`lo_build`] location of vector `id`
    /// (empty unless the kind is [`DirectMapType::Array`]).
    pub fn array(&self) -> &[u64] {
        &self.array
    }

    /// The hashtable map's `(id, packed location)` pairs, in no particular order (empty
    /// unless the kind is [`DirectMapType::Hashtable`]).
    pub fn hashtable(&self) -> impl Iterator<Item = (Idx, u64)> + '_ {
        self.hash.iter().map(|(&id, &lo)| (id, lo))
    }

    /// Whether a map is kept.
    pub fn is_enabled(&self) -> bool {
        self.kind != DirectMapType::NoMap
    }

    /// Switches to `kind` and rebuilds the map from `lists` (holding `ntotal` entries). An
    /// array map needs the ids to be exactly `0..ntotal`.
    pub fn set_type(
        &mut self,
        kind: DirectMapType,
        lists: &dyn InvertedLists,
        ntotal: usize,
    ) -> Result<()> {
        let mut array = Vec::new();
        let mut hash = HashMap::new();
        match kind {
            DirectMapType::NoMap => {}
            DirectMapType::Array => {
                array = vec![u64::MAX; ntotal];
                for l in 0..lists.nlist() {
                    for (o, &id) in lists.ids(l).iter().enumerate() {
                        if id < 0 || id as usize >= ntotal || array[id as usize] != u64::MAX {
                            return Err(Error::invalid(format!(
                                "an array direct map needs the ids to be 0..{ntotal}, each once; \
                                 found id {id} (use the hashtable map for arbitrary ids)"
                            )));
                        }
                        array[id as usize] = lo_build(l, o);
                    }
                }
                if let Some(missing) = array.iter().position(|&v| v == u64::MAX) {
                    return Err(Error::invalid(format!(
                        "an array direct map needs the ids to be 0..{ntotal}; id {missing} is missing"
                    )));
                }
            }
            DirectMapType::Hashtable => {
                for l in 0..lists.nlist() {
                    for (o, &id) in lists.ids(l).iter().enumerate() {
                        hash.insert(id, lo_build(l, o));
                    }
                }
            }
        }
        *self = DirectMap { kind, array, hash };
        Ok(())
    }

    /// Where `id` is, or [`Error::IdNotFound`] (also when no map is kept, with a message
    /// saying so).
    pub fn get(&self, id: Idx) -> Result<(usize, usize)> {
        let lo = match self.kind {
            DirectMapType::NoMap => {
                return Err(Error::Unsupported(
                    "no direct map: call make_direct_map() first".into(),
                ));
            }
            DirectMapType::Array => usize::try_from(id)
                .ok()
                .and_then(|i| self.array.get(i))
                .copied()
                .filter(|&v| v != u64::MAX),
            DirectMapType::Hashtable => self.hash.get(&id).copied(),
        };
        lo.map(|lo| (lo_listno(lo), lo_offset(lo)))
            .ok_or(Error::IdNotFound(id))
    }

    /// Checks that entries with `ids` (explicit ids) can be added: an array map only
    /// takes sequential ids, so explicit ids need the hashtable map.
    pub fn check_can_add(&self, explicit_ids: bool) -> Result<()> {
        if self.kind == DirectMapType::Array && explicit_ids {
            return Err(Error::Unsupported(
                "add_with_ids with an array direct map: ids must be sequential; use the \
                 hashtable map"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Records that `id` now lives at `(list, offset)`.
    pub fn add_single(&mut self, id: Idx, list: usize, offset: usize) {
        let lo = lo_build(list, offset);
        match self.kind {
            DirectMapType::NoMap => {}
            DirectMapType::Array => {
                let i = id as usize;
                if i >= self.array.len() {
                    self.array.resize(i + 1, u64::MAX);
                }
                self.array[i] = lo;
            }
            DirectMapType::Hashtable => {
                self.hash.insert(id, lo);
            }
        }
    }

    /// Forgets every entry (the kind is kept).
    pub fn clear(&mut self) {
        self.array.clear();
        self.hash.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ArrayInvertedLists;

    #[test]
    fn packing_round_trips() {
        let lo = lo_build(123_456, 4_000_000_000);
        assert_eq!((lo_listno(lo), lo_offset(lo)), (123_456, 4_000_000_000));
    }

    #[test]
    fn maps_agree_with_the_lists() {
        let mut lists = ArrayInvertedLists::new(5, 2);
        let mut where_ = Vec::new();
        for id in 0..40i64 {
            let l = (id * 7 % 5) as usize;
            let o = lists.add_entry(l, id, &[id as u8, 0]).unwrap();
            where_.push((l, o));
        }
        for kind in [DirectMapType::Array, DirectMapType::Hashtable] {
            let mut map = DirectMap::default();
            map.set_type(kind, &lists, 40).unwrap();
            for (id, &w) in where_.iter().enumerate() {
                assert_eq!(map.get(id as Idx).unwrap(), w);
            }
            assert!(matches!(map.get(40), Err(Error::IdNotFound(40))));
            assert!(matches!(map.get(-1), Err(Error::IdNotFound(-1))));
        }
        let none = DirectMap::default();
        assert!(matches!(none.get(0), Err(Error::Unsupported(_))));

        // Arbitrary ids need the hashtable.
        lists.add_entry(0, 1000, &[1, 1]).unwrap();
        let mut map = DirectMap::default();
        assert!(map.set_type(DirectMapType::Array, &lists, 41).is_err());
        map.set_type(DirectMapType::Hashtable, &lists, 41).unwrap();
        assert_eq!(map.get(1000).unwrap(), (0, lists.list_size(0) - 1));
        assert!(map.check_can_add(true).is_ok());
        map.set_type(DirectMapType::Array, &ArrayInvertedLists::new(1, 1), 0)
            .unwrap();
        assert!(map.check_can_add(true).is_err());
    }
}
