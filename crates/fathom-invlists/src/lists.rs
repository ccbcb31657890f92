//! The `InvertedLists` trait: what an IVF index needs from its storage.

use std::borrow::Cow;

use fathom_core::{Error, Idx, Result};

/// Sizes of the lists, for balance diagnostics (Faiss's `print_stats`).
#[derive(Debug, Clone, PartialEq)]
pub struct ListStats {
    /// Entries in all lists.
    pub ntotal: usize,
    /// Lists with no entry.
    pub empty_lists: usize,
    /// Size of the largest list.
    pub max_size: usize,
    /// `nlist · Σ size² / (Σ size)²`: 1 for perfectly even lists, larger when a few lists
    /// hold most entries (then a probe costs more than `ntotal / nlist`).
    pub imbalance_factor: f64,
}

/// `nlist` lists of `(id, code)` entries with fixed-size codes.
///
/// Mutations return errors rather than panic: a list number out of range, codes of the
/// wrong length, or lists that are read-only (memory-mapped from a file opened read-only)
/// give an [`Error`] that says what was wrong.
pub trait InvertedLists: Send + Sync + std::fmt::Debug {
    /// Number of lists.
    fn nlist(&self) -> usize;
    /// Bytes per code.
    fn code_size(&self) -> usize;
    /// Entries in `list`.
    fn list_size(&self, list: usize) -> usize;
    /// The codes of `list`: `list_size · code_size` bytes, or whole blocks when
    /// [`InvertedLists::block_layout`] says so.
    fn codes(&self, list: usize) -> &[u8];
    /// The ids of `list`.
    fn ids(&self, list: usize) -> &[Idx];
    /// Whether mutations are refused.
    fn is_read_only(&self) -> bool {
        false
    }
    /// Appends entries to `list`; returns the offset of the first.
    fn add_entries(&mut self, list: usize, ids: &[Idx], codes: &[u8]) -> Result<usize>;
    /// Overwrites entries `offset .. offset + ids.len()` of `list`.
    fn update_entries(
        &mut self,
        list: usize,
        offset: usize,
        ids: &[Idx],
        codes: &[u8],
    ) -> Result<()>;
    /// Sets the size of `list` (shrinking drops the last entries; growing appends entries
    /// with id −1 and zero codes).
    fn resize(&mut self, list: usize, size: usize) -> Result<()>;
    /// Empties every list.
    fn reset(&mut self) -> Result<()> {
        for l in 0..self.nlist() {
            self.resize(l, 0)?;
        }
        Ok(())
    }
    /// A hint that `lists` will be scanned soon (on-disk lists read them ahead).
    fn prefetch_lists(&self, _lists: &[usize]) {}
    /// Whether [`InvertedLists::prefetch_lists`] does anything: callers skip collecting
    /// the lists otherwise (sorting a batch's probes was 2.8 % of an in-memory IVF
    /// fast-scan search).
    fn reads_ahead(&self) -> bool {
        false
    }

    /// Appends one entry.
    fn add_entry(&mut self, list: usize, id: Idx, code: &[u8]) -> Result<usize> {
        self.add_entries(list, &[id], code)
    }
    /// The code of entry `offset` of `list` (borrowed from flat storage, unpacked from
    /// blocks).
    fn code(&self, list: usize, offset: usize) -> Cow<'_, [u8]> {
        let cs = self.code_size();
        Cow::Borrowed(&self.codes(list)[offset * cs..(offset + 1) * cs])
    }
    /// `Some((codes per block, bytes per block))` when [`InvertedLists::codes`] returns
    /// interleaved blocks rather than `list_size · code_size` flat bytes.
    fn block_layout(&self) -> Option<(usize, usize)> {
        None
    }
    /// The `(id, code)` entries of `list`, in order.
    fn entries(&self, list: usize) -> Box<dyn Iterator<Item = (Idx, Cow<'_, [u8]>)> + '_> {
        Box::new(
            self.ids(list)
                .iter()
                .enumerate()
                .map(move |(o, &id)| (id, self.code(list, o))),
        )
    }
    /// These lists as on-disk lists, for code that treats them specially (a writer
    /// recording where they live, `fathom info`); `None` for every other kind.
    fn as_on_disk(&self) -> Option<&crate::OnDiskInvertedLists> {
        None
    }
    /// Entries in all lists.
    fn compute_ntotal(&self) -> usize {
        (0..self.nlist()).map(|l| self.list_size(l)).sum()
    }
    /// Size statistics of the lists.
    fn stats(&self) -> ListStats {
        let sizes: Vec<usize> = (0..self.nlist()).map(|l| self.list_size(l)).collect();
        let ntotal: usize = sizes.iter().sum();
        let sq: f64 = sizes.iter().map(|&s| (s as f64) * (s as f64)).sum();
        ListStats {
            ntotal,
            empty_lists: sizes.iter().filter(|&&s| s == 0).count(),
            max_size: sizes.iter().copied().max().unwrap_or(0),
            imbalance_factor: if ntotal == 0 {
                1.0
            } else {
                sizes.len() as f64 * sq / (ntotal as f64 * ntotal as f64)
            },
        }
    }
    /// [`ListStats::imbalance_factor`].
    fn imbalance_factor(&self) -> f64 {
        self.stats().imbalance_factor
    }
}

/// The checks every implementation shares: list in range, codes matching ids.
pub(crate) fn check_entries(
    nlist: usize,
    code_size: usize,
    list: usize,
    ids: &[Idx],
    codes: &[u8],
) -> Result<()> {
    check_list(nlist, list)?;
    if codes.len() != ids.len() * code_size {
        return Err(Error::DimensionMismatch {
            what: "codes".into(),
            got: codes.len(),
            expected: format!(
                "{} ids × {code_size} bytes = {}",
                ids.len(),
                ids.len() * code_size
            ),
        });
    }
    Ok(())
}

/// Entries `offset .. offset + n` exist in a list of `size` entries.
pub(crate) fn check_range(list: usize, offset: usize, n: usize, size: usize) -> Result<()> {
    if offset + n > size {
        return Err(Error::invalid(format!(
            "entries {offset}..{} are past the end of list {list} (size {size})",
            offset + n
        )));
    }
    Ok(())
}

/// A list number in range.
pub(crate) fn check_list(nlist: usize, list: usize) -> Result<()> {
    if list >= nlist {
        return Err(Error::invalid(format!(
            "list {list} is out of range: there are {nlist} lists"
        )));
    }
    Ok(())
}
