//! Lists whose codes are stored interleaved in fixed-size blocks (the fast-scan layout),
//! Faiss's `BlockInvertedLists`. Entries come in and go out as ordinary codes; a
//! [`CodePacker`] says how one code sits inside a block.

use std::borrow::Cow;
use std::sync::Arc;

use fathom_core::{Error, Idx, Result};

use crate::lists::{InvertedLists, check_entries, check_list, check_range};

/// How `code_size`-byte codes are interleaved into blocks of `nvec` codes
/// (Faiss's `CodePacker`).
pub trait CodePacker: Send + Sync + std::fmt::Debug {
    /// Bytes of one code outside a block.
    fn code_size(&self) -> usize;
    /// Codes per block.
    fn nvec(&self) -> usize;
    /// Bytes per block.
    fn block_size(&self) -> usize;
    /// Writes `code` as entry `i` (`< nvec`) of `block`.
    fn pack_1(&self, code: &[u8], i: usize, block: &mut [u8]);
    /// Reads entry `i` of `block` into `code`.
    fn unpack_1(&self, block: &[u8], i: usize, code: &mut [u8]);
}

/// Inverted lists holding each list's codes as whole blocks of [`CodePacker::nvec`]
/// codes (the last block zero-padded), so a SIMD kernel reads a list straight through.
/// [`InvertedLists::codes`] returns the blocks.
///
/// ```
/// use std::sync::Arc;
/// use fathom_invlists::{BlockInvertedLists, CodePacker, InvertedLists};
/// // Two 1-byte codes per 2-byte block, stored back to front.
/// #[derive(Debug)]
/// struct Reversed;
/// impl CodePacker for Reversed {
///     fn code_size(&self) -> usize { 1 }
///     fn nvec(&self) -> usize { 2 }
///     fn block_size(&self) -> usize { 2 }
///     fn pack_1(&self, code: &[u8], i: usize, block: &mut [u8]) { block[1 - i] = code[0]; }
///     fn unpack_1(&self, block: &[u8], i: usize, code: &mut [u8]) { code[0] = block[1 - i]; }
/// }
/// let mut lists = BlockInvertedLists::new(1, Arc::new(Reversed));
/// lists.add_entries(0, &[5, 6, 7], &[1, 2, 3]).unwrap();
/// assert_eq!(lists.codes(0), &[2, 1, 0, 3]);
/// assert_eq!(&*lists.code(0, 2), &[3]);
/// ```
#[derive(Debug, Clone)]
pub struct BlockInvertedLists {
    packer: Arc<dyn CodePacker>,
    ids: Vec<Vec<Idx>>,
    codes: Vec<Vec<u8>>,
}

impl BlockInvertedLists {
    /// `nlist` empty lists packed by `packer`.
    pub fn new(nlist: usize, packer: Arc<dyn CodePacker>) -> Self {
        BlockInvertedLists {
            packer,
            ids: vec![Vec::new(); nlist],
            codes: vec![Vec::new(); nlist],
        }
    }

    /// The packer.
    pub fn packer(&self) -> &Arc<dyn CodePacker> {
        &self.packer
    }

    fn blocks_bytes(&self, n: usize) -> usize {
        n.div_ceil(self.packer.nvec()) * self.packer.block_size()
    }

    fn write(&mut self, list: usize, offset: usize, codes: &[u8]) {
        let (cs, nvec, bs) = (
            self.packer.code_size(),
            self.packer.nvec(),
            self.packer.block_size(),
        );
        for (j, code) in codes.chunks_exact(cs).enumerate() {
            let i = offset + j;
            let block = &mut self.codes[list][(i / nvec) * bs..(i / nvec + 1) * bs];
            self.packer.pack_1(code, i % nvec, block);
        }
    }
}

impl InvertedLists for BlockInvertedLists {
    fn nlist(&self) -> usize {
        self.ids.len()
    }
    fn code_size(&self) -> usize {
        self.packer.code_size()
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
    fn block_layout(&self) -> Option<(usize, usize)> {
        Some((self.packer.nvec(), self.packer.block_size()))
    }
    fn code(&self, list: usize, offset: usize) -> Cow<'_, [u8]> {
        let (nvec, bs) = (self.packer.nvec(), self.packer.block_size());
        let block = &self.codes[list][(offset / nvec) * bs..(offset / nvec + 1) * bs];
        let mut code = vec![0u8; self.packer.code_size()];
        self.packer.unpack_1(block, offset % nvec, &mut code);
        Cow::Owned(code)
    }

    fn add_entries(&mut self, list: usize, ids: &[Idx], codes: &[u8]) -> Result<usize> {
        check_entries(self.nlist(), self.code_size(), list, ids, codes)?;
        let offset = self.ids[list].len();
        self.resize(list, offset + ids.len())?;
        self.ids[list][offset..].copy_from_slice(ids);
        self.write(list, offset, codes);
        Ok(offset)
    }

    fn update_entries(
        &mut self,
        list: usize,
        offset: usize,
        ids: &[Idx],
        codes: &[u8],
    ) -> Result<()> {
        check_entries(self.nlist(), self.code_size(), list, ids, codes)?;
        check_range(list, offset, ids.len(), self.ids[list].len())?;
        self.ids[list][offset..offset + ids.len()].copy_from_slice(ids);
        self.write(list, offset, codes);
        Ok(())
    }

    fn resize(&mut self, list: usize, size: usize) -> Result<()> {
        check_list(self.nlist(), list)?;
        let old = self.ids[list].len();
        let bytes = self.blocks_bytes(size);
        let grow = bytes.saturating_sub(self.codes[list].len());
        self.codes[list]
            .try_reserve(grow)
            .map_err(|_| Error::invalid(format!("cannot allocate {grow} more bytes for a list")))?;
        self.ids[list]
            .try_reserve(size.saturating_sub(old))
            .map_err(|_| Error::invalid(format!("cannot allocate {size} ids for a list")))?;
        if size < old {
            // Entries past the new end are zeroed so a later growth reads zero codes.
            let zero = vec![0u8; self.packer.code_size()];
            for i in size..old.min(bytes / self.packer.block_size() * self.packer.nvec()) {
                self.write(list, i, &zero);
            }
        }
        self.codes[list].resize(bytes, 0);
        self.ids[list].resize(size, -1);
        Ok(())
    }
}
