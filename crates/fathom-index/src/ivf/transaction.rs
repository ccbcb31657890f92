//! All-or-nothing changes to an IVF index's lists: [`ListTransaction`] remembers what each
//! list held before a change touched it, and [`IndexIvf::transact`] puts every touched
//! list, the entry count and the direct map back when the change fails part-way — so add,
//! add_codes, merge_from, copy_subset_to and update_vectors never stop half-applied.

use std::collections::BTreeMap;

use fathom_core::{Error, Idx, Result};
use fathom_invlists::InvertedLists;

use super::{IndexIvf, IvfCodec};

/// What a list held before the transaction first touched it.
enum Saved {
    /// Only appended to: truncating to this size restores it.
    Size(usize),
    /// Rewritten in place (or shrunk): its whole content.
    Entries(Vec<Idx>, Vec<u8>),
}

/// The lists a change has touched, and how to restore each.
#[derive(Default)]
pub(crate) struct ListTransaction {
    saved: BTreeMap<usize, Saved>,
}

impl ListTransaction {
    /// Call before appending to `list`.
    pub(crate) fn appending(&mut self, lists: &dyn InvertedLists, list: usize) {
        self.saved
            .entry(list)
            .or_insert_with(|| Saved::Size(lists.list_size(list)));
    }

    /// Call before overwriting or shrinking `list`. A list first saved by size only (it
    /// was appended to) is saved whole now, without what this transaction appended.
    pub(crate) fn rewriting(&mut self, lists: &dyn InvertedLists, list: usize) {
        let whole = |size: usize| {
            let ids = lists.ids(list)[..size].to_vec();
            let codes = (0..size)
                .flat_map(|o| lists.code(list, o).into_owned())
                .collect();
            Saved::Entries(ids, codes)
        };
        match self.saved.get(&list) {
            Some(Saved::Entries(..)) => {}
            Some(&Saved::Size(size)) => {
                self.saved.insert(list, whole(size));
            }
            None => {
                self.saved.insert(list, whole(lists.list_size(list)));
            }
        }
    }

    /// Restores every touched list; the first error met, if any (it goes on with the
    /// other lists regardless).
    fn rollback(self, lists: &mut dyn InvertedLists) -> Result<()> {
        let mut first = Ok(());
        for (list, saved) in self.saved {
            let r = match saved {
                Saved::Size(size) => lists.resize(list, size),
                Saved::Entries(ids, codes) => lists.resize(list, ids.len()).and_then(|_| match ids
                    .is_empty()
                {
                    true => Ok(()),
                    false => lists.update_entries(list, 0, &ids, &codes),
                }),
            };
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

impl<C: IvfCodec + 'static> IndexIvf<C> {
    /// Runs `change` on this index as one transaction: when it fails, the lists it touched
    /// (reported to the [`ListTransaction`]), the entry count and the direct map are put
    /// back as they were, and the error says whether restoring them failed too.
    pub(crate) fn transact<T>(
        &mut self,
        change: impl FnOnce(&mut Self, &mut ListTransaction) -> Result<T>,
    ) -> Result<T> {
        let ntotal = self.ntotal;
        let mut tx = ListTransaction::default();
        let err = match change(self, &mut tx) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let restored = tx.rollback(&mut *self.invlists).and_then(|_| {
            self.ntotal = ntotal;
            let kind = self.direct_map.kind();
            self.direct_map.set_type(kind, &*self.invlists, ntotal)
        });
        Err(match restored {
            Ok(()) => err,
            Err(undo) => with_failed_undo(err, undo),
        })
    }
}

/// `err`, of the same kind, saying that undoing the change failed as well.
fn with_failed_undo(err: Error, undo: Error) -> Error {
    let note =
        format!("undoing the partial change failed too, so the index may hold part of it ({undo})");
    match err {
        Error::Io { path, source } => Error::Io {
            path,
            source: std::io::Error::new(source.kind(), format!("{source}; {note}")),
        },
        other => other.context(note),
    }
}
