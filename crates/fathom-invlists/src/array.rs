//! Lists held in memory, one pair of growable arrays per list.

use fathom_core::{Error, Idx, Result};

use crate::lists::{InvertedLists, check_entries, check_list, check_range};

/// Faiss's `ArrayInvertedLists`: each list an array of ids and an array of codes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArrayInvertedLists {
    code_size: usize,
    ids: Vec<Vec<Idx>>,
    codes: Vec<Vec<u8>>,
}

impl ArrayInvertedLists {
    /// `nlist` empty lists of `code_size`-byte codes.
    pub fn new(nlist: usize, code_size: usize) -> Self {
        ArrayInvertedLists {
            code_size,
            ids: vec![Vec::new(); nlist],
            codes: vec![Vec::new(); nlist],
        }
    }
}

fn alloc_err(bytes: usize) -> Error {
    Error::invalid(format!("cannot allocate {bytes} more bytes for a list"))
}

impl InvertedLists for ArrayInvertedLists {
    fn nlist(&self) -> usize {
        self.ids.len()
    }
    fn code_size(&self) -> usize {
        self.code_size
    }
    fn list_size(&self, list: usize) -> usize {
        self.ids[list].len()
    }
    fn codes(&self, list: usize) -> &[u8] {
        &self.codes[list]
    }
    fn ids(&self, list: usize) -> &[Idx] {
        &self.ids[list]
    }

    fn add_entries(&mut self, list: usize, ids: &[Idx], codes: &[u8]) -> Result<usize> {
        check_entries(self.nlist(), self.code_size, list, ids, codes)?;
        let offset = self.ids[list].len();
        self.ids[list]
            .try_reserve(ids.len())
            .map_err(|_| alloc_err(ids.len() * 8))?;
        self.codes[list]
            .try_reserve(codes.len())
            .map_err(|_| alloc_err(codes.len()))?;
        self.ids[list].extend_from_slice(ids);
        self.codes[list].extend_from_slice(codes);
        Ok(offset)
    }

    fn update_entries(
        &mut self,
        list: usize,
        offset: usize,
        ids: &[Idx],
        codes: &[u8],
    ) -> Result<()> {
        check_entries(self.nlist(), self.code_size, list, ids, codes)?;
        check_range(list, offset, ids.len(), self.ids[list].len())?;
        self.ids[list][offset..offset + ids.len()].copy_from_slice(ids);
        let cs = self.code_size;
        self.codes[list][offset * cs..(offset + ids.len()) * cs].copy_from_slice(codes);
        Ok(())
    }

    fn resize(&mut self, list: usize, size: usize) -> Result<()> {
        check_list(self.nlist(), list)?;
        let grow = size.saturating_sub(self.ids[list].len());
        self.ids[list]
            .try_reserve(grow)
            .map_err(|_| alloc_err(grow * 8))?;
        self.codes[list]
            .try_reserve(grow * self.code_size)
            .map_err(|_| alloc_err(grow * self.code_size))?;
        self.ids[list].resize(size, -1);
        self.codes[list].resize(size * self.code_size, 0);
        Ok(())
    }
}
