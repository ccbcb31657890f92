//! Inverted lists in one memory-mapped data file: Faiss's `OnDiskInvertedLists`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use fathom_core::{Error, Idx, Result};
use memmap2::{Mmap, MmapMut};

use crate::lists::{InvertedLists, check_entries, check_list, check_range};

/// Where one list lives in the data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OnDiskList {
    /// Entries in use.
    pub size: usize,
    /// Entries the region holds.
    pub capacity: usize,
    /// Byte offset of the region: `capacity · code_size` bytes of codes, then
    /// `capacity` ids.
    pub offset: usize,
}

/// The smallest region given to a list, in entries. With capacities multiples of 8 every
/// region and every id array starts 8-byte aligned, so ids are lent in place.
const MIN_CAPACITY: usize = 8;

enum DataMap {
    None,
    ReadOnly(Mmap),
    Writable(MmapMut),
}

impl DataMap {
    fn bytes(&self) -> &[u8] {
        match self {
            DataMap::None => &[],
            DataMap::ReadOnly(m) => m,
            DataMap::Writable(m) => m,
        }
    }
}

/// Free regions of the data file, found by size (best fit) and by offset (to merge
/// neighbours when a region is freed).
#[derive(Debug, Default, Clone)]
struct FreeSlots {
    by_size: BTreeSet<(usize, usize)>,
    by_offset: BTreeMap<usize, usize>,
}

impl FreeSlots {
    fn insert(&mut self, mut offset: usize, mut len: usize) {
        if len == 0 {
            return;
        }
        if let Some((&o, &l)) = self.by_offset.range(..offset).next_back()
            && o + l == offset
        {
            self.remove(o, l);
            offset = o;
            len += l;
        }
        if let Some(&l) = self.by_offset.get(&(offset + len)) {
            self.remove(offset + len, l);
            len += l;
        }
        self.by_size.insert((len, offset));
        self.by_offset.insert(offset, len);
    }
    fn remove(&mut self, offset: usize, len: usize) {
        self.by_size.remove(&(len, offset));
        self.by_offset.remove(&offset);
    }
    /// Takes `len` bytes starting at a multiple of 8 from the smallest region that holds
    /// them (regions left by Faiss's placements may start anywhere).
    fn take(&mut self, len: usize) -> Option<usize> {
        let (l, o, start) = self
            .by_size
            .range((len, 0)..)
            .map(|&(l, o)| (l, o, o.next_multiple_of(8)))
            .find(|&(l, o, start)| start + len <= o + l)?;
        self.remove(o, l);
        self.insert(o, start - o);
        self.insert(start + len, o + l - start - len);
        Some(start)
    }
}

/// `nlist` lists stored in one data file that is memory-mapped (Faiss's
/// `OnDiskInvertedLists`): each list owns a region of `capacity` entries (a power of two,
/// at least 8) laid out as `capacity · code_size` bytes of codes followed by `capacity`
/// little-endian `i64` ids; a list that outgrows its region moves to a larger one and the
/// old region joins a free list (best fit by size, merged with free neighbours). When no
/// free region fits, the file doubles in size.
///
/// The index file records where each list is (Faiss's `ilod` record, written by
/// `fathom_io::faiss::write_index`); the data file is raw. A data file can be opened
/// read-only ([`OnDiskInvertedLists::open`]), when every mutation is an error.
///
/// Build one from several indexes' lists with [`OnDiskInvertedLists::merge_from_multiple`]:
/// that is how an index too large to build in memory is assembled from shards.
///
/// ```
/// use fathom_invlists::{ArrayInvertedLists, InvertedLists, OnDiskInvertedLists};
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("lists.ivfdata");
/// let mut lists = OnDiskInvertedLists::create(&path, 4, 2).unwrap();
/// lists.add_entries(1, &[10, 11], &[1, 2, 3, 4]).unwrap();
/// assert_eq!(lists.ids(1), &[10, 11]);
/// assert_eq!(lists.codes(1), &[1, 2, 3, 4]);
/// // Merge two in-memory lists into an empty on-disk set, shifting the second's ids.
/// let mut a = ArrayInvertedLists::new(4, 2);
/// a.add_entries(0, &[0], &[5, 5]).unwrap();
/// let mut b = ArrayInvertedLists::new(4, 2);
/// b.add_entries(0, &[0], &[6, 6]).unwrap();
/// let mut merged = OnDiskInvertedLists::create(dir.path().join("m.ivfdata"), 4, 2).unwrap();
/// assert_eq!(merged.merge_from_multiple(&[&a, &b], true).unwrap(), 2);
/// assert_eq!(merged.ids(0), &[0, 1]);
/// ```
pub struct OnDiskInvertedLists {
    code_size: usize,
    lists: Vec<OnDiskList>,
    free: FreeSlots,
    path: PathBuf,
    file: Option<File>,
    map: DataMap,
    totsize: usize,
    /// Read-only files made by Faiss may hold lists whose ids are not 8-byte aligned:
    /// those ids are copied here.
    unaligned_ids: Vec<Option<Vec<Idx>>>,
}

impl std::fmt::Debug for OnDiskInvertedLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnDiskInvertedLists")
            .field("path", &self.path)
            .field("nlist", &self.lists.len())
            .field("code_size", &self.code_size)
            .field("totsize", &self.totsize)
            .field("read_only", &self.file.is_none())
            .finish()
    }
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::io(path, e)
}

impl OnDiskInvertedLists {
    /// `nlist` empty lists of `code_size`-byte codes in a new data file at `path`
    /// (replacing any file there).
    pub fn create(path: impl AsRef<Path>, nlist: usize, code_size: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        Ok(OnDiskInvertedLists {
            code_size,
            lists: vec![OnDiskList::default(); nlist],
            free: FreeSlots::default(),
            path,
            file: Some(file),
            map: DataMap::None,
            totsize: 0,
            unaligned_ids: vec![None; nlist],
        })
    }

    /// Opens the data file at `path` holding `lists` (as recorded in an index file) of
    /// `code_size`-byte codes; `totsize` is the data size the record claims. Every region
    /// is checked to lie inside the file and not to overlap another. The free space is
    /// recomputed from the gaps between regions (the free list Faiss records is not
    /// trusted: Faiss ≤ 1.15 under-reports it). Opened writable, lists Faiss placed
    /// unaligned are first moved to aligned regions.
    pub fn open(
        path: impl AsRef<Path>,
        code_size: usize,
        lists: Vec<OnDiskList>,
        totsize: usize,
        read_only: bool,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        // The path comes from an index file: a FIFO there would block the open forever.
        fathom_core::check::regular_file(&path, "on-disk inverted lists data")?;
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let len = file.metadata().map_err(|e| io(&path, e))?.len() as usize;
        if len < totsize {
            return Err(Error::format(
                format!("on-disk inverted lists {}", path.display()),
                format!("the data file has {len} bytes; the index expects {totsize}"),
            ));
        }
        let entry = code_size + 8;
        let mut regions: Vec<(usize, usize)> = Vec::with_capacity(lists.len());
        for (l, list) in lists.iter().enumerate() {
            let bytes = list.capacity.checked_mul(entry);
            let end = bytes.and_then(|b| b.checked_add(list.offset));
            if list.size > list.capacity || end.is_none_or(|e| e > totsize) {
                return Err(Error::format(
                    format!("on-disk inverted lists {}", path.display()),
                    format!(
                        "list {l} ({} of {} entries at byte {}) does not fit in {totsize} bytes",
                        list.size, list.capacity, list.offset
                    ),
                ));
            }
            if list.capacity > 0 {
                regions.push((list.offset, list.capacity * entry));
            }
        }
        regions.sort_unstable();
        let mut free = FreeSlots::default();
        let mut at = 0;
        for &(o, n) in &regions {
            if o < at {
                return Err(Error::format(
                    format!("on-disk inverted lists {}", path.display()),
                    format!("two lists overlap at byte {o}"),
                ));
            }
            free.insert(at, o - at);
            at = o + n;
        }
        free.insert(at, totsize - at);
        let map = if totsize == 0 {
            DataMap::None
        } else {
            // SAFETY: a read-only map whose bytes are only read as plain data (placements
            // were checked above). The data file must not be truncated by another process
            // while mapped, as documented on the type. Writable lists remap it writable on
            // their first change.
            DataMap::ReadOnly(unsafe { Mmap::map(&file) }.map_err(|e| io(&path, e))?)
        };
        let nlist = lists.len();
        let mut out = OnDiskInvertedLists {
            code_size,
            lists,
            free,
            path,
            file: (!read_only).then_some(file),
            map,
            totsize,
            unaligned_ids: vec![None; nlist],
        };
        for l in 0..nlist {
            if !out.ids_aligned(l) {
                let list = out.lists[l];
                let start = list.offset + list.capacity * code_size;
                out.unaligned_ids[l] = Some(
                    out.map.bytes()[start..start + list.size * 8]
                        .chunks_exact(8)
                        .map(|b| Idx::from_le_bytes(b.try_into().expect("8 bytes")))
                        .collect(),
                );
            }
        }
        Ok(out)
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Bytes the lists' regions and free space span in the data file.
    pub fn totsize(&self) -> usize {
        self.totsize
    }
    /// Where each list lives.
    pub fn lists(&self) -> &[OnDiskList] {
        &self.lists
    }
    /// The free regions `(offset, bytes)`, by offset.
    pub fn free_slots(&self) -> Vec<(usize, usize)> {
        self.free.by_offset.iter().map(|(&o, &l)| (o, l)).collect()
    }

    /// Writes the mapped data to disk.
    pub fn flush(&self) -> Result<()> {
        if let DataMap::Writable(m) = &self.map {
            m.flush().map_err(|e| io(&self.path, e))?;
        }
        Ok(())
    }

    fn ids_aligned(&self, l: usize) -> bool {
        let list = self.lists[l];
        list.capacity == 0 || (list.offset + list.capacity * self.code_size).is_multiple_of(8)
    }

    fn writable(&mut self) -> Result<&mut MmapMut> {
        match &mut self.map {
            DataMap::Writable(m) => Ok(m),
            DataMap::ReadOnly(_) | DataMap::None => {
                unreachable!("check_writable maps the file, grow creates the map")
            }
        }
    }

    /// Prepares for a change: refuses read-only lists; otherwise maps the file writable
    /// (opening maps it read-only, so that reading never changes a file) and moves lists
    /// that Faiss placed with unaligned ids to aligned regions.
    fn check_writable(&mut self) -> Result<()> {
        let Some(file) = &self.file else {
            return Err(Error::Unsupported(format!(
                "the on-disk inverted lists in {} were opened read-only",
                self.path.display()
            )));
        };
        if matches!(self.map, DataMap::ReadOnly(_)) {
            self.map = DataMap::None;
            // SAFETY: this process owns the writable map of the file it opened for
            // writing; other processes must not change the file while it is open
            // (documented on the type). Access goes through `&self`/`&mut self`.
            let map = unsafe { MmapMut::map_mut(file) }.map_err(|e| io(&self.path, e))?;
            self.map = DataMap::Writable(map);
        }
        for l in 0..self.lists.len() {
            if self.unaligned_ids[l].take().is_some() {
                let cap = self.lists[l].size.next_power_of_two().max(MIN_CAPACITY);
                self.relocate(l, cap)?;
            }
        }
        Ok(())
    }

    /// Grows the data file to at least `min_size` bytes (doubling) and remaps it.
    fn grow(&mut self, min_size: usize) -> Result<()> {
        let new_size = min_size.max(self.totsize * 2).next_multiple_of(4096);
        let file = self.file.as_ref().expect("checked writable");
        if let DataMap::Writable(m) = &self.map {
            m.flush().map_err(|e| io(&self.path, e))?;
        }
        self.map = DataMap::None;
        file.set_len(new_size as u64)
            .map_err(|e| io(&self.path, e))?;
        // SAFETY: as in `open`: this process owns the writable map of its own file.
        let map = unsafe { MmapMut::map_mut(file) }.map_err(|e| io(&self.path, e))?;
        self.map = DataMap::Writable(map);
        self.free.insert(self.totsize, new_size - self.totsize);
        self.totsize = new_size;
        Ok(())
    }

    fn allocate(&mut self, bytes: usize) -> Result<usize> {
        if let Some(o) = self.free.take(bytes) {
            return Ok(o);
        }
        self.grow(self.totsize + bytes)?;
        Ok(self.free.take(bytes).expect("the file just grew by enough"))
    }

    /// Moves list `l` to a region of `capacity` entries (keeping its first
    /// `min(size, capacity)` entries).
    fn relocate(&mut self, l: usize, capacity: usize) -> Result<()> {
        let cs = self.code_size;
        let old = self.lists[l];
        let keep = old.size.min(capacity);
        let offset = if capacity == 0 {
            0
        } else {
            self.allocate(capacity * (cs + 8))?
        };
        if keep > 0 {
            let m = self.writable()?;
            m.copy_within(old.offset..old.offset + keep * cs, offset);
            let (src, dst) = (old.offset + old.capacity * cs, offset + capacity * cs);
            m.copy_within(src..src + keep * 8, dst);
        }
        if old.capacity > 0 {
            self.free.insert(old.offset, old.capacity * (cs + 8));
        }
        self.lists[l] = OnDiskList {
            size: keep,
            capacity,
            offset,
        };
        Ok(())
    }

    fn write_entries(&mut self, l: usize, at: usize, ids: &[Idx], codes: &[u8]) -> Result<()> {
        let cs = self.code_size;
        let list = self.lists[l];
        let m = self.writable()?;
        m[list.offset + at * cs..list.offset + at * cs + codes.len()].copy_from_slice(codes);
        let ids_at = list.offset + list.capacity * cs + at * 8;
        m[ids_at..ids_at + ids.len() * 8].copy_from_slice(bytemuck::cast_slice(ids));
        Ok(())
    }

    /// Fills these (empty) lists with the entries of `sources`, list by list, in order
    /// (Faiss's `merge_from_multiple`). With `shift_ids`, the ids of each source are
    /// shifted by the number of entries in the sources before it, so sources numbered
    /// `0..n` each become one numbering. Returns the number of entries.
    pub fn merge_from_multiple(
        &mut self,
        sources: &[&dyn InvertedLists],
        shift_ids: bool,
    ) -> Result<usize> {
        self.check_writable()?;
        let nlist = self.lists.len();
        if self.compute_ntotal() != 0 {
            return Err(Error::invalid(
                "merge_from_multiple fills empty on-disk lists; these already hold entries",
            ));
        }
        for (i, s) in sources.iter().enumerate() {
            if s.nlist() != nlist || s.code_size() != self.code_size {
                return Err(Error::invalid(format!(
                    "source {i} has {} lists of {}-byte codes; expected {nlist} of {}",
                    s.nlist(),
                    s.code_size(),
                    self.code_size
                )));
            }
        }
        let mut shifts = Vec::with_capacity(sources.len());
        let mut total: usize = 0;
        for s in sources {
            shifts.push(if shift_ids { total as Idx } else { 0 });
            total += s.compute_ntotal();
        }
        let wanted: usize = (0..nlist)
            .map(|l| {
                let n: usize = sources.iter().map(|s| s.list_size(l)).sum();
                if n == 0 {
                    0
                } else {
                    n.next_multiple_of(MIN_CAPACITY) * (self.code_size + 8)
                }
            })
            .sum();
        // One growth for the whole merge rather than a doubling per list.
        if wanted > self.free.by_size.last().map_or(0, |&(l, _)| l) {
            self.grow(self.totsize + wanted)?;
        }
        for l in 0..nlist {
            let n: usize = sources.iter().map(|s| s.list_size(l)).sum();
            if n == 0 {
                continue;
            }
            let cap = n.next_multiple_of(MIN_CAPACITY);
            self.relocate(l, cap)?;
            let mut at = 0;
            for (s, &shift) in sources.iter().zip(&shifts) {
                let size = s.list_size(l);
                if size == 0 {
                    continue;
                }
                let ids: Vec<Idx> = s.ids(l).iter().map(|&id| id + shift).collect();
                let codes: Vec<u8> = if s.block_layout().is_some() {
                    (0..size).flat_map(|o| s.code(l, o).into_owned()).collect()
                } else {
                    s.codes(l).to_vec()
                };
                self.write_entries(l, at, &ids, &codes)?;
                at += size;
            }
            self.lists[l].size = n;
        }
        Ok(total)
    }

    /// Keeps only lists `l0..l1` (Faiss's `crop_invlists`); the others' space is freed.
    pub fn crop_invlists(&mut self, l0: usize, l1: usize) -> Result<()> {
        self.check_writable()?;
        if l0 > l1 || l1 > self.lists.len() {
            return Err(Error::invalid(format!(
                "crop to lists {l0}..{l1} of {}",
                self.lists.len()
            )));
        }
        let cs = self.code_size;
        for l in (0..l0).chain(l1..self.lists.len()) {
            let list = self.lists[l];
            if list.capacity > 0 {
                self.free.insert(list.offset, list.capacity * (cs + 8));
            }
        }
        self.lists = self.lists[l0..l1].to_vec();
        self.unaligned_ids = vec![None; l1 - l0];
        Ok(())
    }

    /// A one-paragraph summary of list sizes and file use (Faiss's `print_stats`).
    pub fn stats_report(&self) -> String {
        let s = self.stats();
        let used: usize = self
            .lists
            .iter()
            .map(|l| l.size * (self.code_size + 8))
            .sum();
        format!(
            "{} lists, {} entries ({} empty lists, largest {}), imbalance factor {:.3}; data \
             file {} bytes, {} in use, {} free in {} regions",
            self.lists.len(),
            s.ntotal,
            s.empty_lists,
            s.max_size,
            s.imbalance_factor,
            self.totsize,
            used,
            self.free.by_offset.values().sum::<usize>(),
            self.free.by_offset.len()
        )
    }
}

impl InvertedLists for OnDiskInvertedLists {
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
        let l = self.lists[list];
        if l.size == 0 {
            return &[];
        }
        &self.map.bytes()[l.offset..l.offset + l.size * self.code_size]
    }
    fn ids(&self, list: usize) -> &[Idx] {
        if let Some(ids) = &self.unaligned_ids[list] {
            return ids;
        }
        let l = self.lists[list];
        if l.size == 0 {
            return &[];
        }
        let start = l.offset + l.capacity * self.code_size;
        bytemuck::cast_slice(&self.map.bytes()[start..start + l.size * 8])
    }
    fn is_read_only(&self) -> bool {
        self.file.is_none()
    }
    fn add_entries(&mut self, list: usize, ids: &[Idx], codes: &[u8]) -> Result<usize> {
        self.check_writable()?;
        check_entries(self.lists.len(), self.code_size, list, ids, codes)?;
        let old = self.lists[list].size;
        if ids.is_empty() {
            return Ok(old);
        }
        let new_size = old + ids.len();
        if new_size > self.lists[list].capacity {
            self.relocate(list, new_size.next_power_of_two().max(MIN_CAPACITY))?;
        }
        self.write_entries(list, old, ids, codes)?;
        self.lists[list].size = new_size;
        Ok(old)
    }
    fn update_entries(
        &mut self,
        list: usize,
        offset: usize,
        ids: &[Idx],
        codes: &[u8],
    ) -> Result<()> {
        self.check_writable()?;
        check_entries(self.lists.len(), self.code_size, list, ids, codes)?;
        check_range(list, offset, ids.len(), self.lists[list].size)?;
        self.write_entries(list, offset, ids, codes)
    }
    fn resize(&mut self, list: usize, size: usize) -> Result<()> {
        self.check_writable()?;
        check_list(self.lists.len(), list)?;
        let l = self.lists[list];
        let cap = l.capacity;
        if size > cap || (size <= cap / 4 && cap > MIN_CAPACITY) {
            let new_cap = if size == 0 {
                0
            } else {
                size.next_power_of_two().max(MIN_CAPACITY)
            };
            self.relocate(list, new_cap)?;
        }
        let old = self.lists[list].size;
        if size > old {
            let n = size - old;
            self.write_entries(list, old, &vec![-1; n], &vec![0; n * self.code_size])?;
        }
        self.lists[list].size = size;
        Ok(())
    }
    fn reset(&mut self) -> Result<()> {
        self.check_writable()?;
        for l in 0..self.lists.len() {
            self.relocate(l, 0)?;
        }
        Ok(())
    }
    fn reads_ahead(&self) -> bool {
        true
    }
    fn prefetch_lists(&self, lists: &[usize]) {
        // The kernel's read-ahead threads fetch the pages while the caller goes on.
        let cs = self.code_size;
        for &l in lists {
            let Some(list) = self.lists.get(l).copied() else {
                continue;
            };
            let len = list.capacity * (cs + 8);
            if len == 0 {
                continue;
            }
            let _ = match &self.map {
                DataMap::ReadOnly(m) => m.advise_range(memmap2::Advice::WillNeed, list.offset, len),
                DataMap::Writable(m) => m.advise_range(memmap2::Advice::WillNeed, list.offset, len),
                DataMap::None => Ok(()),
            };
        }
    }
    fn as_on_disk(&self) -> Option<&OnDiskInvertedLists> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ArrayInvertedLists;

    #[derive(Debug, Clone)]
    enum Op {
        Add(usize, usize),
        Update(usize, usize),
        Resize(usize, usize),
        Reset,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..5usize, 1..40usize).prop_map(|(l, n)| Op::Add(l, n)),
            2 => (0..5usize, 0..40usize).prop_map(|(l, o)| Op::Update(l, o)),
            2 => (0..5usize, 0..70usize).prop_map(|(l, n)| Op::Resize(l, n)),
            1 => Just(Op::Reset),
        ]
    }

    fn same(a: &dyn InvertedLists, b: &dyn InvertedLists) {
        assert_eq!(a.nlist(), b.nlist());
        for l in 0..a.nlist() {
            assert_eq!(a.ids(l), b.ids(l), "list {l}");
            assert_eq!(a.codes(l), b.codes(l), "list {l}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Any sequence of changes leaves the same entries as in-memory lists, regions
        /// never overlap, and the data file reopens (read-only and writable) to the same.
        #[test]
        fn behaves_as_array_lists_and_reopens(ops in proptest::collection::vec(op(), 1..40), cs in 1..12usize) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("lists");
            let mut disk = OnDiskInvertedLists::create(&path, 5, cs).unwrap();
            let mut mem = ArrayInvertedLists::new(5, cs);
            let mut next_id = 0;
            for op in ops {
                match op {
                    Op::Add(l, n) => {
                        let ids: Vec<Idx> = (next_id..next_id + n as Idx).collect();
                        next_id += n as Idx;
                        let codes: Vec<u8> = (0..n * cs).map(|i| (i as Idx + next_id) as u8).collect();
                        prop_assert_eq!(disk.add_entries(l, &ids, &codes).unwrap(), mem.add_entries(l, &ids, &codes).unwrap());
                    }
                    Op::Update(l, o) => {
                        let ok = o < mem.list_size(l);
                        let codes = vec![0xAB; cs];
                        prop_assert_eq!(disk.update_entries(l, o, &[-7], &codes).is_ok(), ok);
                        let _ = mem.update_entries(l, o, &[-7], &codes);
                    }
                    Op::Resize(l, n) => {
                        disk.resize(l, n).unwrap();
                        mem.resize(l, n).unwrap();
                    }
                    Op::Reset => {
                        InvertedLists::reset(&mut disk).unwrap();
                        InvertedLists::reset(&mut mem).unwrap();
                    }
                }
                same(&disk, &mem);
            }
            // Regions and free space tile the file exactly.
            let mut spans: Vec<(usize, usize)> = disk
                .lists()
                .iter()
                .filter(|l| l.capacity > 0)
                .map(|l| (l.offset, l.capacity * (cs + 8)))
                .chain(disk.free_slots())
                .collect();
            spans.sort_unstable();
            let mut at = 0;
            for (o, n) in spans {
                prop_assert_eq!(o, at);
                at += n;
            }
            prop_assert_eq!(at, disk.totsize());
            disk.flush().unwrap();
            for read_only in [true, false] {
                let back = OnDiskInvertedLists::open(&path, cs, disk.lists().to_vec(), disk.totsize(), read_only).unwrap();
                same(&back, &mem);
                prop_assert_eq!(back.free_slots(), disk.free_slots());
            }
        }
    }

    #[test]
    fn read_only_lists_refuse_changes_and_faiss_placements_are_realigned_on_first_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lists");
        // A Faiss-style file: list 0 has capacity 1 with 3-byte codes, so its ids start at
        // byte 3, unaligned.
        let mut bytes = vec![1u8, 2, 3];
        bytes.extend_from_slice(&42i64.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let lists = vec![OnDiskList {
            size: 1,
            capacity: 1,
            offset: 0,
        }];
        let mut ro = OnDiskInvertedLists::open(&path, 3, lists.clone(), 11, true).unwrap();
        assert_eq!(ro.ids(0), &[42]);
        assert_eq!(ro.codes(0), &[1, 2, 3]);
        assert!(ro.is_read_only());
        assert!(ro.add_entries(0, &[1], &[0, 0, 0]).is_err());
        assert!(ro.resize(0, 0).is_err());
        assert!(InvertedLists::reset(&mut ro).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing written");

        let mut rw = OnDiskInvertedLists::open(&path, 3, lists, 11, false).unwrap();
        assert_eq!(rw.ids(0), &[42]);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "opening writes nothing"
        );
        rw.add_entries(0, &[43], &[4, 5, 6]).unwrap();
        assert_eq!(rw.lists()[0].capacity, 8, "moved to an aligned region");
        assert!(rw.lists()[0].offset.is_multiple_of(8));
        assert_eq!(rw.ids(0), &[42, 43]);
        assert_eq!(rw.codes(0), &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn crop_keeps_a_range_of_lists_and_frees_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut lists = OnDiskInvertedLists::create(dir.path().join("l"), 4, 2).unwrap();
        for l in 0..4 {
            lists
                .add_entries(l, &[l as Idx * 10], &[l as u8; 2])
                .unwrap();
        }
        let free_before: usize = lists.free_slots().iter().map(|s| s.1).sum();
        lists.crop_invlists(1, 3).unwrap();
        assert_eq!(lists.nlist(), 2);
        assert_eq!(lists.ids(0), &[10]);
        assert_eq!(lists.ids(1), &[20]);
        let free_after: usize = lists.free_slots().iter().map(|s| s.1).sum();
        assert_eq!(free_after, free_before + 2 * 8 * (2 + 8));
        assert!(lists.crop_invlists(1, 5).is_err());
        assert!(lists.stats_report().contains("2 lists, 2 entries"));
    }

    #[test]
    fn corrupt_placements_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lists");
        std::fs::write(&path, vec![0u8; 100]).unwrap();
        let list = |size, capacity, offset| OnDiskList {
            size,
            capacity,
            offset,
        };
        for (lists, totsize) in [
            (vec![list(2, 1, 0)], 100),                 // size above capacity
            (vec![list(1, 12, 0)], 100),                // past the end
            (vec![list(1, 2, 0), list(1, 2, 10)], 100), // overlap
            (vec![list(0, 0, 0)], 200),                 // file shorter than claimed
            (vec![list(1, usize::MAX, 5)], 100),        // overflow
        ] {
            let what = format!("{lists:?} in {totsize}");
            assert!(
                OnDiskInvertedLists::open(&path, 1, lists, totsize, true).is_err(),
                "{what}"
            );
        }
    }
}
