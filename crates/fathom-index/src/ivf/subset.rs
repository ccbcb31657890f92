//! Which entries `copy_subset_to` copies (Faiss's `InvertedLists::subset_type_t`).

use fathom_core::{Error, Idx, Result};

/// A subset of an IVF index's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubsetType {
    /// Ids in `start..end` (Faiss's `SUBSET_TYPE_ID_RANGE`).
    IdRange {
        /// First id copied.
        start: Idx,
        /// One past the last id copied.
        end: Idx,
    },
    /// Ids with `id % modulus == remainder` (`SUBSET_TYPE_ID_MOD`).
    IdMod {
        /// The modulus (≥ 1).
        modulus: Idx,
        /// The remainder kept.
        remainder: Idx,
    },
    /// The entries that come between positions `start` and `end` of the whole index, each
    /// list contributing in proportion to its size, so that about `start` entries are
    /// left before and `ntotal − end` after (`SUBSET_TYPE_ELEMENT_RANGE`).
    ElementRange {
        /// Entries left before.
        start: usize,
        /// End position.
        end: usize,
    },
    /// Part `part` of `parts` equal slices of every list (`SUBSET_TYPE_INVLIST_FRACTION`).
    ListFraction {
        /// Number of slices (≥ 1).
        parts: usize,
        /// The slice copied (`< parts`).
        part: usize,
    },
    /// Whole lists `start..end` (`SUBSET_TYPE_INVLIST`).
    Lists {
        /// First list copied.
        start: usize,
        /// One past the last list copied.
        end: usize,
    },
}

/// Running positions of [`SubsetType::ElementRange`] across lists.
#[derive(Debug, Default)]
pub(crate) struct Accumulator {
    n: usize,
    a1: usize,
    a2: usize,
}

impl SubsetType {
    pub(crate) fn validate(&self) -> Result<()> {
        match *self {
            SubsetType::IdMod { modulus, .. } if modulus < 1 => Err(Error::invalid(format!(
                "an id-modulo subset needs a modulus ≥ 1, got {modulus}"
            ))),
            SubsetType::ListFraction { parts, part } if parts == 0 || part >= parts => {
                Err(Error::invalid(format!(
                    "a list-fraction subset needs 0 ≤ part < parts, got part {part} of {parts}"
                )))
            }
            SubsetType::ElementRange { start, end } | SubsetType::Lists { start, end }
                if start > end =>
            {
                Err(Error::invalid(format!(
                    "a range subset needs start ≤ end, got {start}..{end}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The offsets of `list` (with `ids`) in the subset; `ntotal` is the whole index's
    /// entry count.
    pub(crate) fn pick(
        &self,
        list: usize,
        ids: &[Idx],
        ntotal: usize,
        accu: &mut Accumulator,
    ) -> Vec<usize> {
        let n = ids.len();
        let picked = match *self {
            SubsetType::IdRange { start, end } => (0..n)
                .filter(|&o| start <= ids[o] && ids[o] < end)
                .collect(),
            SubsetType::IdMod { modulus, remainder } => (0..n)
                .filter(|&o| ids[o].rem_euclid(modulus) == remainder)
                .collect(),
            SubsetType::ElementRange { start, end } => {
                let (start, end) = (start.min(ntotal), end.min(ntotal));
                let next_n = accu.n + n;
                let (next_a1, next_a2) = if ntotal == 0 {
                    (0, 0)
                } else {
                    (
                        (next_n as u128 * start as u128 / ntotal as u128) as usize,
                        (next_n as u128 * end as u128 / ntotal as u128) as usize,
                    )
                };
                let i1 = next_a1 - accu.a1;
                let i2 = (next_a2 - accu.a2).min(n);
                accu.a1 = next_a1;
                accu.a2 = next_a2;
                (i1.min(i2)..i2).collect()
            }
            SubsetType::ListFraction { parts, part } => {
                (n * part / parts..n * (part + 1) / parts).collect()
            }
            SubsetType::Lists { start, end } => {
                if start <= list && list < end {
                    (0..n).collect()
                } else {
                    Vec::new()
                }
            }
        };
        accu.n += n;
        picked
    }
}
