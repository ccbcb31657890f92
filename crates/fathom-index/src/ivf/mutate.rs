//! Changing an IVF index's entries: adding (vectors or precomputed codes), removing,
//! merging, copying subsets and updating vectors — each one list transaction
//! ([`IndexIvf::transact`]), so none stops half-applied.

use std::borrow::Cow;

use fathom_core::{Error, IdSelector, Idx, Result, check};
use rayon::prelude::*;

use super::transaction::ListTransaction;
use super::{DirectMapType, IndexIvf, IvfCodec, SubsetType, subset};
use crate::Index;

/// Rows assigned and encoded together when adding (Faiss's block size).
const ADD_BLOCK: usize = 65536;
/// Rows encoded per parallel task when adding.
const ADD_CHUNK: usize = 1024;

impl<C: IvfCodec + 'static> IndexIvf<C> {
    /// Adds vectors with explicit ids (`Some`) or sequential ones; atomic: on error no
    /// list changes.
    pub(super) fn add_core(&mut self, x: &[f32], ids: Option<&[Idx]>) -> Result<()> {
        self.check_writable("add to")?;
        if !self.is_trained() {
            return Err(Error::NotTrained(format!("add to {}", self.description())));
        }
        let n = check::vectors("added", x, self.d)?;
        check::finite("added", x, self.d)?;
        if let Some(ids) = ids {
            check::ids(ids, n)?;
        }
        self.direct_map.check_can_add(ids.is_some())?;
        if n == 0 {
            return Ok(());
        }
        // Blocks of rows, as Faiss: the codes buffer stays small (for IVF-Flat a copy of
        // the whole input would double the peak memory of a large add).
        let d = self.d;
        self.transact(|ix, tx| {
            for start in (0..n).step_by(ADD_BLOCK) {
                let end = (start + ADD_BLOCK).min(n);
                let block_ids = ids.map(|ids| &ids[start..end]);
                ix.add_block(&x[start * d..end * d], block_ids, tx)?;
            }
            Ok(())
        })
    }

    /// Assigns, encodes and stores one block of checked rows.
    fn add_block(
        &mut self,
        x: &[f32],
        ids: Option<&[Idx]>,
        tx: &mut ListTransaction,
    ) -> Result<()> {
        let lists = self.assign(x)?;
        let codes = self.encode_assigned(x, &lists)?;
        self.add_codes_core(&lists, &codes, ids, tx)
    }

    /// The codec's codes of the rows of `x` (of their residuals to the centroids of
    /// `lists`, their lists, when the index encodes residuals), encoded in parallel.
    pub(super) fn encode_assigned(&self, x: &[f32], lists: &[Idx]) -> Result<Vec<u8>> {
        let n = x.len() / self.d;
        let cs = self.codec.code_size();
        let mut codes = Vec::new();
        codes
            .try_reserve_exact(n * cs)
            .map_err(|_| Error::invalid(format!("cannot allocate {} bytes for codes", n * cs)))?;
        codes.resize(n * cs, 0);
        let ctx = self.context();
        let d = self.d;
        codes
            .par_chunks_mut((ADD_CHUNK * cs).max(1))
            .zip(x.par_chunks(ADD_CHUNK * d))
            .zip(lists.par_chunks(ADD_CHUNK))
            .try_for_each(|((c, xs), ls)| {
                let r = self.residuals(&ctx, xs, ls)?;
                self.codec.encode_with_vectors(xs, &r, c)
            })?;
        Ok(codes)
    }

    /// Appends pre-computed codes to their lists (ids sequential when `ids` is `None`);
    /// on error the lists are restored.
    fn add_codes_core(
        &mut self,
        lists: &[Idx],
        codes: &[u8],
        ids: Option<&[Idx]>,
        tx: &mut ListTransaction,
    ) -> Result<()> {
        let n = lists.len();
        let cs = self.codec.code_size();
        let id_of = |i: usize| ids.map_or((self.ntotal + i) as Idx, |ids| ids[i]);
        // Counting sort by list: one add_entries call per list.
        let mut count = vec![0usize; self.nlist + 1];
        for &l in lists {
            if l < 0 || l as usize >= self.nlist {
                return Err(Error::invalid(format!(
                    "list number {l} is out of range: there are {} lists",
                    self.nlist
                )));
            }
            count[l as usize + 1] += 1;
        }
        for i in 0..self.nlist {
            count[i + 1] += count[i];
        }
        let mut order = vec![0usize; n];
        let mut pos = count.clone();
        for (i, &l) in lists.iter().enumerate() {
            order[pos[l as usize]] = i;
            pos[l as usize] += 1;
        }
        let mut placed = Vec::with_capacity(n);
        for l in (0..self.nlist).filter(|&l| count[l + 1] > count[l]) {
            let members = &order[count[l]..count[l + 1]];
            let lids: Vec<Idx> = members.iter().map(|&i| id_of(i)).collect();
            let mut lcodes = Vec::with_capacity(members.len() * cs);
            for &i in members {
                lcodes.extend_from_slice(&codes[i * cs..(i + 1) * cs]);
            }
            tx.appending(&*self.invlists, l);
            let offset = self.invlists.add_entries(l, &lids, &lcodes)?;
            placed.extend(lids.iter().enumerate().map(|(j, &id)| (id, l, offset + j)));
        }
        for (id, l, o) in placed {
            self.direct_map.add_single(id, l, o);
        }
        self.ntotal += n;
        Ok(())
    }

    /// Adds vectors to lists chosen by the caller (`lists[i]` for row `i`) instead of by
    /// the quantizer, with explicit ids or sequential ones (Faiss's
    /// `contrib.ivf_tools.add_preassigned`); atomic, as [`Index::add`].
    pub fn add_preassigned(&mut self, x: &[f32], lists: &[Idx], ids: Option<&[Idx]>) -> Result<()> {
        self.check_writable("add to")?;
        if !self.is_trained() {
            return Err(Error::NotTrained(format!("add to {}", self.description())));
        }
        let n = check::vectors("added", x, self.d)?;
        check::finite("added", x, self.d)?;
        check::output_len("list assignments", lists.len(), n)?;
        if let Some(&l) = lists.iter().find(|&&l| l < 0 || l as usize >= self.nlist) {
            return Err(Error::invalid(format!(
                "list number {l} is out of range: there are {} lists",
                self.nlist
            )));
        }
        if let Some(ids) = ids {
            check::ids(ids, n)?;
        }
        self.direct_map.check_can_add(ids.is_some())?;
        if n == 0 {
            return Ok(());
        }
        let codes = self.encode_assigned(x, lists)?;
        self.transact(|ix, tx| ix.add_codes_core(lists, &codes, ids, tx))
    }

    /// Adds codes computed elsewhere (`n × code_size` bytes) to the given lists with the
    /// given ids (sequential ids when `None`), as Faiss's `add_core` with precomputed
    /// assignments.
    pub fn add_preassigned_codes(
        &mut self,
        lists: &[Idx],
        codes: &[u8],
        ids: Option<&[Idx]>,
    ) -> Result<()> {
        let n = check::codes("codes", codes, self.codec.code_size())?;
        check::output_len("list assignments", lists.len(), n)?;
        if let Some(ids) = ids {
            check::ids(ids, n)?;
        }
        self.direct_map.check_can_add(ids.is_some())?;
        self.transact(|ix, tx| ix.add_codes_core(lists, codes, ids, tx))
    }

    /// The entries of `list` as flat codes (unpacked from blocks when needed).
    fn flat_codes(&self, list: usize) -> Cow<'_, [u8]> {
        if self.invlists.block_layout().is_none() {
            return Cow::Borrowed(self.invlists.codes(list));
        }
        let n = self.invlists.list_size(list);
        let mut out = Vec::with_capacity(n * self.codec.code_size());
        for o in 0..n {
            out.extend_from_slice(&self.invlists.code(list, o));
        }
        Cow::Owned(out)
    }

    fn check_compatible(&self, other: &Self) -> Result<()> {
        let mismatch = |what: &str, a: String, b: String| {
            Err(Error::invalid(format!(
                "cannot merge: {what} differ ({a} here, {b} in the other index)"
            )))
        };
        if self.d != other.d {
            return mismatch("dimensions", self.d.to_string(), other.d.to_string());
        }
        if self.nlist != other.nlist {
            return mismatch(
                "list counts",
                self.nlist.to_string(),
                other.nlist.to_string(),
            );
        }
        if self.metric != other.metric {
            return mismatch(
                "metrics",
                format!("{:?}", self.metric),
                format!("{:?}", other.metric),
            );
        }
        if self.codec.description(false) != other.codec.description(false)
            || self.codec.code_size() != other.codec.code_size()
        {
            return mismatch(
                "codecs",
                self.codec.description(self.by_residual),
                other.codec.description(other.by_residual),
            );
        }
        if self.by_residual != other.by_residual {
            return mismatch(
                "residual encodings",
                self.by_residual.to_string(),
                other.by_residual.to_string(),
            );
        }
        if self.direct_map.kind() == DirectMapType::Array
            || other.direct_map.kind() == DirectMapType::Array
        {
            return Err(Error::Unsupported(
                "cannot merge indexes with an array direct map; use the hashtable map".into(),
            ));
        }
        Ok(())
    }

    /// Moves every entry of `other` into this index, adding `add_id` to their ids, and
    /// leaves `other` empty (Faiss's `merge_from`). Both must have the same dimension,
    /// lists, metric and codec; the coarse quantizers are assumed equal (trained once and
    /// copied, the usual workflow), as Faiss does.
    pub fn merge_from(&mut self, other: &mut Self, add_id: Idx) -> Result<()> {
        self.check_writable("merge into")?;
        other.check_writable("merge (and empty)")?;
        self.check_compatible(other)?;
        self.transact(|ix, tx| {
            for l in 0..ix.nlist {
                let n = other.invlists.list_size(l);
                if n == 0 {
                    continue;
                }
                let ids: Vec<Idx> = other
                    .invlists
                    .ids(l)
                    .iter()
                    .map(|&id| id.saturating_add(add_id))
                    .collect();
                tx.appending(&*ix.invlists, l);
                ix.invlists.add_entries(l, &ids, &other.flat_codes(l))?;
            }
            ix.ntotal += other.ntotal;
            let kind = ix.direct_map.kind();
            ix.direct_map.set_type(kind, &*ix.invlists, ix.ntotal)
        })?;
        // Emptied only once the entries are in: a failure here leaves them in both
        // indexes (as the error says), never in neither.
        other.reset().map_err(|e| {
            e.context("the entries were merged, but emptying the merged-from index failed")
        })
    }

    /// Copies the entries `subset` selects into `other` (which must be compatible), as
    /// Faiss's `copy_subset_to`; returns how many were copied.
    pub fn copy_subset_to(&self, other: &mut Self, subset: SubsetType) -> Result<usize> {
        other.check_writable("copy a subset into")?;
        self.check_compatible(other)?;
        subset.validate()?;
        let ntotal = self.invlists.compute_ntotal();
        let mut accu = subset::Accumulator::default();
        other.transact(|other, tx| {
            let mut added = 0;
            for l in 0..self.nlist {
                let ids = self.invlists.ids(l);
                let picked = subset.pick(l, ids, ntotal, &mut accu);
                if picked.is_empty() {
                    continue;
                }
                let codes: Vec<u8> = picked
                    .iter()
                    .flat_map(|&o| self.invlists.code(l, o).into_owned())
                    .collect();
                let pids: Vec<Idx> = picked.iter().map(|&o| ids[o]).collect();
                tx.appending(&*other.invlists, l);
                other.invlists.add_entries(l, &pids, &codes)?;
                added += pids.len();
                // Counted as it goes, so the count never lags the lists.
                other.ntotal += pids.len();
            }
            let kind = other.direct_map.kind();
            other
                .direct_map
                .set_type(kind, &*other.invlists, other.ntotal)?;
            Ok(added)
        })
    }

    /// Replaces the vectors with ids `ids` by the rows of `x` (re-assigned and re-encoded;
    /// an entry may move to another list). Needs a direct map.
    pub fn update_vectors(&mut self, ids: &[Idx], x: &[f32]) -> Result<()> {
        self.check_writable("update vectors of")?;
        let n = check::vectors("updated", x, self.d)?;
        check::finite("updated", x, self.d)?;
        check::ids(ids, n)?;
        if !self.direct_map.is_enabled() {
            return Err(Error::Unsupported(
                "update_vectors needs a direct map: call make_direct_map() first".into(),
            ));
        }
        // Every id must exist before anything changes.
        for &id in ids {
            self.direct_map.get(id)?;
        }
        let lists = self.assign(x)?;
        let cs = self.codec.code_size();
        let codes = self.encode_assigned(x, &lists)?;
        self.transact(|ix, tx| {
            for (i, &id) in ids.iter().enumerate() {
                let (old_list, offset) = ix.direct_map.get(id)?;
                let new_list = lists[i] as usize;
                let code = &codes[i * cs..(i + 1) * cs];
                tx.rewriting(&*ix.invlists, old_list);
                if new_list == old_list {
                    ix.invlists.update_entries(old_list, offset, &[id], code)?;
                    continue;
                }
                // Fill the hole with the list's last entry, then append to the new list.
                let last = ix.invlists.list_size(old_list) - 1;
                if offset != last {
                    let last_id = ix.invlists.ids(old_list)[last];
                    let last_code = ix.invlists.code(old_list, last).into_owned();
                    ix.invlists
                        .update_entries(old_list, offset, &[last_id], &last_code)?;
                    ix.direct_map.add_single(last_id, old_list, offset);
                }
                ix.invlists.resize(old_list, last)?;
                tx.appending(&*ix.invlists, new_list);
                let o = ix.invlists.add_entries(new_list, &[id], code)?;
                ix.direct_map.add_single(id, new_list, o);
            }
            Ok(())
        })
    }

    /// [`Index::remove_ids`].
    pub(super) fn remove_where(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        self.check_writable("remove from")?;
        if self.direct_map.kind() == DirectMapType::Array {
            return Err(Error::Unsupported(
                "remove_ids with an array direct map (ids would stop being 0..ntotal); use \
                 the hashtable map"
                    .into(),
            ));
        }
        self.transact(|ix, tx| {
            let mut removed = 0;
            for l in 0..ix.nlist {
                let ids = ix.invlists.ids(l);
                if !ids.iter().any(|&id| selector.is_member(id)) {
                    continue;
                }
                let keep: Vec<usize> = (0..ids.len())
                    .filter(|&o| !selector.is_member(ids[o]))
                    .collect();
                let kept_ids: Vec<Idx> = keep.iter().map(|&o| ids[o]).collect();
                let kept_codes: Vec<u8> = keep
                    .iter()
                    .flat_map(|&o| ix.invlists.code(l, o).into_owned())
                    .collect();
                let gone = ids.len() - keep.len();
                tx.rewriting(&*ix.invlists, l);
                ix.invlists.update_entries(l, 0, &kept_ids, &kept_codes)?;
                ix.invlists.resize(l, kept_ids.len())?;
                // Counted as it goes, so the count never lags the lists.
                ix.ntotal -= gone;
                removed += gone;
            }
            let kind = ix.direct_map.kind();
            ix.direct_map.set_type(kind, &*ix.invlists, ix.ntotal)?;
            Ok(removed)
        })
    }
}
