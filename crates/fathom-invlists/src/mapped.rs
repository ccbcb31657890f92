//! Read-only lists served from a byte buffer shared with the file they came from.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use fathom_core::{Error, Idx, Result};

use crate::lists::InvertedLists;

/// Bytes that can be shared between threads: a memory map, or a `Vec<u8>` in tests.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// One list inside the shared bytes.
#[derive(Debug, Clone, Default)]
struct MappedList {
    /// Offset of the codes (`size · code_size` bytes); the ids follow them.
    offset: usize,
    size: usize,
    /// Whether the ids are 8-byte aligned in the buffer (then they are lent in place).
    aligned: bool,
    /// Otherwise a copy, made the first time the list is read (as a mapping reads pages).
    ids: OnceLock<Vec<Idx>>,
}

/// Inverted lists read in place from a buffer (typically a memory-mapped index file): each
/// list is `size · code_size` bytes of codes followed by `size` little-endian `i64` ids,
/// the layout of Faiss's `ilar` record and of its on-disk lists. Nothing is copied but the
/// ids of lists that are not 8-byte aligned in the buffer, which cannot be lent as `i64`:
/// those are copied the first time the list is read, so opening stays O(nlist).
///
/// Every mutation returns an error: the lists mirror a file opened read-only.
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use fathom_invlists::{InvertedLists, MappedInvertedLists};
/// // One list of two 1-byte codes, then their ids.
/// let mut bytes = vec![7u8, 8];
/// bytes.extend_from_slice(&10i64.to_le_bytes());
/// bytes.extend_from_slice(&11i64.to_le_bytes());
/// let mut lists = MappedInvertedLists::new(Arc::new(bytes), 1, 1, &[(0, 0, 2)]).unwrap();
/// assert_eq!(lists.codes(0), &[7, 8]);
/// assert_eq!(lists.ids(0), &[10, 11]);
/// assert!(lists.add_entries(0, &[12], &[9]).is_err());
/// ```
#[derive(Clone)]
pub struct MappedInvertedLists {
    bytes: SharedBytes,
    code_size: usize,
    lists: Vec<MappedList>,
}

impl std::fmt::Debug for MappedInvertedLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedInvertedLists")
            .field("bytes", &(*self.bytes).as_ref().len())
            .field("code_size", &self.code_size)
            .field("nlist", &self.lists.len())
            .finish()
    }
}

impl MappedInvertedLists {
    /// `nlist` lists of `code_size`-byte codes over `bytes`; `lists` gives
    /// `(list, offset of its codes, size)` for every non-empty list. Every list must lie
    /// inside the buffer.
    pub fn new(
        bytes: SharedBytes,
        nlist: usize,
        code_size: usize,
        lists: &[(usize, usize, usize)],
    ) -> Result<Self> {
        let len = (*bytes).as_ref().len();
        let mut out = vec![MappedList::default(); nlist];
        for &(l, offset, size) in lists {
            let end = size
                .checked_mul(code_size + 8)
                .and_then(|b| b.checked_add(offset));
            if l >= nlist || end.is_none_or(|e| e > len) {
                return Err(Error::invalid(format!(
                    "list {l} ({size} entries at byte {offset}) lies outside the {len}-byte \
                     buffer or past nlist = {nlist}"
                )));
            }
            let raw =
                &(*bytes).as_ref()[offset + size * code_size..offset + size * (code_size + 8)];
            out[l] = MappedList {
                offset,
                size,
                aligned: bytemuck::try_cast_slice::<u8, Idx>(raw).is_ok(),
                ids: OnceLock::new(),
            };
        }
        Ok(MappedInvertedLists {
            bytes,
            code_size,
            lists: out,
        })
    }

    fn read_only(&self) -> Error {
        Error::Unsupported(
            "these inverted lists are read-only (memory-mapped from a file opened read-only)"
                .into(),
        )
    }
}

impl InvertedLists for MappedInvertedLists {
    fn nlist(&self) -> usize {
        self.lists.len()
    }
    fn code_size(&self) -> usize {
        self.code_size
    }
    fn list_size(&self, list: usize) -> usize {
        self.lists[list].size
    }
    fn codes(&self, list: usize) -> &[u8] {
        let l = &self.lists[list];
        &(*self.bytes).as_ref()[l.offset..l.offset + l.size * self.code_size]
    }
    fn ids(&self, list: usize) -> &[Idx] {
        let l = &self.lists[list];
        let start = l.offset + l.size * self.code_size;
        let raw = &(*self.bytes).as_ref()[start..start + l.size * 8];
        if l.aligned {
            return bytemuck::cast_slice(raw);
        }
        l.ids.get_or_init(|| {
            raw.chunks_exact(8)
                .map(|b| Idx::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect()
        })
    }
    fn is_read_only(&self) -> bool {
        true
    }
    fn add_entries(&mut self, _list: usize, _ids: &[Idx], _codes: &[u8]) -> Result<usize> {
        Err(self.read_only())
    }
    fn update_entries(&mut self, _: usize, _: usize, _: &[Idx], _: &[u8]) -> Result<()> {
        Err(self.read_only())
    }
    fn resize(&mut self, _list: usize, _size: usize) -> Result<()> {
        Err(self.read_only())
    }
    fn code(&self, list: usize, offset: usize) -> Cow<'_, [u8]> {
        let cs = self.code_size;
        Cow::Borrowed(&self.codes(list)[offset * cs..(offset + 1) * cs])
    }
}
