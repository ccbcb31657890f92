//! Inverted-list records: `ilar` (in memory, full or sparse size table), `il00`.

use fathom_core::Result;
use fathom_invlists::{InvertedLists, MappedInvertedLists, OnDiskInvertedLists, OnDiskList};

use super::cursor::Cursor;
use super::sink::Sink;

/// Where each non-empty list's data lies in an `ilar` record: `(list, size, offset of its
/// codes in the buffer)`; the ids follow the codes.
pub(crate) struct ArrayLayout {
    pub(crate) code_size: usize,
    pub(crate) lists: Vec<(usize, usize, usize)>,
}

/// Reads the size table of an `ilar` record (after its fourcc) and steps over its data.
pub(crate) fn read_array_layout(
    c: &mut Cursor<'_>,
    nlist: usize,
    code_size: usize,
) -> Result<ArrayLayout> {
    let file_nlist = c.u64("inverted lists nlist")?;
    let file_cs = c.u64("inverted lists code_size")?;
    if file_nlist != nlist as u64 || file_cs != code_size as u64 {
        return Err(c.err(format!(
            "inverted lists hold {file_nlist} lists of {file_cs}-byte codes; the index has \
             {nlist} lists of {code_size}-byte codes"
        )));
    }
    let kind = c.fourcc()?;
    let sizes: Vec<(usize, u64)> = match &kind {
        b"full" => c
            .vec_len::<u64>("list sizes", nlist)?
            .into_iter()
            .enumerate()
            .collect(),
        b"sprs" => {
            let flat = c.vec::<u64>("sparse list sizes")?;
            if flat.len() % 2 != 0 {
                return Err(c.err("sparse list sizes come in (list, size) pairs"));
            }
            let mut prev = None;
            let mut out = Vec::with_capacity(flat.len() / 2);
            for p in flat.chunks_exact(2) {
                if p[0] >= nlist as u64 || prev.is_some_and(|q| p[0] <= q) {
                    return Err(c.err(format!(
                        "sparse list number {} is out of order or not below nlist = {nlist}",
                        p[0]
                    )));
                }
                prev = Some(p[0]);
                out.push((p[0] as usize, p[1]));
            }
            out
        }
        other => {
            return Err(c.err(format!(
                "inverted list size table is {:?}; expected \"full\" or \"sprs\"",
                String::from_utf8_lossy(other)
            )));
        }
    };
    let entry = code_size as u64 + 8;
    let mut lists = Vec::new();
    for (l, size) in sizes {
        if size == 0 {
            continue;
        }
        let fits = size
            .checked_mul(entry)
            .is_some_and(|b| b <= c.remaining() as u64);
        if !fits {
            return Err(c.err(format!(
                "list {l} claims {size} entries, more than the file holds"
            )));
        }
        let size = size as usize;
        lists.push((l, size, c.pos()));
        c.bytes(size * code_size + size * 8, "list data")?;
    }
    Ok(ArrayLayout { code_size, lists })
}

/// Copies the entries of `layout` out of `buf` into `lists` (empty, of any kind).
pub(crate) fn fill_lists(
    lists: &mut dyn InvertedLists,
    buf: &[u8],
    layout: &ArrayLayout,
) -> Result<()> {
    let cs = layout.code_size;
    for &(l, size, at) in &layout.lists {
        let codes = &buf[at..at + size * cs];
        let ids: Vec<i64> = buf[at + size * cs..at + size * (cs + 8)]
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        lists.add_entries(l, &ids, codes)?;
    }
    Ok(())
}

/// Writes `lists`: an `ilod` record for on-disk lists (after flushing their data file),
/// an `ilar` record with the entries for any other kind.
pub(crate) fn write_lists(s: &mut Sink<'_>, lists: &dyn InvertedLists) -> Result<()> {
    let Some(ondisk) = lists.as_on_disk() else {
        return write_array_lists(s, lists);
    };
    ondisk.flush()?;
    s.fourcc(b"ilod")?;
    s.usize(ondisk.nlist())?;
    s.usize(ondisk.code_size())?;
    let placements: Vec<[u64; 3]> = ondisk
        .lists()
        .iter()
        .map(|l| [l.size as u64, l.capacity as u64, l.offset as u64])
        .collect();
    s.vec(&placements)?;
    let slots: Vec<[u64; 2]> = ondisk
        .free_slots()
        .iter()
        .map(|&(o, n)| [o as u64, n as u64])
        .collect();
    s.vec(&slots)?;
    let name = ondisk.path().to_str().ok_or_else(|| {
        fathom_core::Error::invalid(format!(
            "the data file path {} is not UTF-8, which Faiss's format needs",
            ondisk.path().display()
        ))
    })?;
    s.vec(name.as_bytes())?;
    s.usize(ondisk.totsize())
}

/// Writes `lists` as an `ilar` record, choosing the sparse size table as Faiss does (when
/// at most half of the lists hold entries).
fn write_array_lists(s: &mut Sink<'_>, lists: &dyn InvertedLists) -> Result<()> {
    {
        let nlist = lists.nlist();
        let cs = lists.code_size();
        s.fourcc(b"ilar")?;
        s.usize(nlist)?;
        s.usize(cs)?;
        let sizes: Vec<u64> = (0..nlist).map(|l| lists.list_size(l) as u64).collect();
        let nonempty = sizes.iter().filter(|&&n| n > 0).count();
        if nonempty > nlist / 2 {
            s.fourcc(b"full")?;
            s.vec(&sizes)?;
        } else {
            s.fourcc(b"sprs")?;
            let pairs: Vec<u64> = sizes
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .flat_map(|(l, &n)| [l as u64, n])
                .collect();
            s.vec(&pairs)?;
        }
        for (l, &size) in sizes.iter().enumerate() {
            if size == 0 {
                continue;
            }
            if lists.block_layout().is_some() {
                for o in 0..size as usize {
                    s.raw(&lists.code(l, o))?;
                }
            } else {
                s.raw(lists.codes(l))?;
            }
            s.raw(lists.ids(l))?;
        }
        Ok(())
    }
}
/// Empty lists of the kind an IVF codec scans.
pub(super) type NewLists<'a> = &'a dyn Fn() -> Box<dyn InvertedLists>;

/// Inverted lists of `code_size`-byte codes; in block lists (`ilbl`), the first
/// `nibbles` bytes of each code are 4-bit sub-codes (see `fastscan::unpack`).
pub(super) fn read_lists(
    c: &mut Cursor<'_>,
    nlist: usize,
    code_size: usize,
    nibbles: usize,
    new_lists: NewLists<'_>,
) -> Result<Box<dyn InvertedLists>> {
    c.nested(|c| read_lists_body(c, nlist, code_size, nibbles, new_lists))
}

pub(super) fn read_lists_body(
    c: &mut Cursor<'_>,
    nlist: usize,
    code_size: usize,
    nibbles: usize,
    new_lists: NewLists<'_>,
) -> Result<Box<dyn InvertedLists>> {
    let fourcc = c.fourcc()?;
    match &fourcc {
        b"ilar" => {
            let layout = read_array_layout(c, nlist, code_size)?;
            let mut lists = new_lists();
            match &c.shared {
                // Lists in the file's own layout can be served from the mapping.
                Some(bytes) if lists.block_layout().is_none() => {
                    let lists: Vec<(usize, usize, usize)> = layout
                        .lists
                        .iter()
                        .map(|&(l, size, at)| (l, at, size))
                        .collect();
                    Ok(Box::new(
                        MappedInvertedLists::new(bytes.clone(), nlist, code_size, &lists)
                            .map_err(|e| c.err(e))?,
                    ))
                }
                _ => {
                    fill_lists(&mut *lists, c.buffer(), &layout).map_err(|e| c.err(e))?;
                    Ok(lists)
                }
            }
        }
        b"ilbl" => {
            let mut lists = new_lists();
            read_block_lists(c, nlist, code_size, nibbles, &mut *lists)?;
            Ok(lists)
        }
        b"ilod" => read_ondisk_lists(c, nlist, code_size),
        b"il00" => Err(c.err(
            "the inverted lists are not stored in this file (written with \
             IO_FLAG_SKIP_IVF_DATA)",
        )),
        other => Err(c.err(format!(
            "unknown or unsupported inverted lists {:?}; fathom reads ilar",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// An `ilod` record: where each list lies in a separate data file, which is opened
/// (read-only when the index is memory-mapped read-only).
pub(super) fn read_ondisk_lists(
    c: &mut Cursor<'_>,
    nlist: usize,
    code_size: usize,
) -> Result<Box<dyn InvertedLists>> {
    let file_nlist = c.u64("on-disk lists nlist")?;
    let file_cs = c.u64("on-disk lists code_size")?;
    if file_nlist != nlist as u64 || file_cs != code_size as u64 {
        return Err(c.err(format!(
            "on-disk lists hold {file_nlist} lists of {file_cs}-byte codes; the index has \
             {nlist} lists of {code_size}-byte codes"
        )));
    }
    let lists = c.vec_len::<[u64; 3]>("on-disk list placements", nlist)?;
    // The free-slot list is recomputed from the placements (Faiss's is not exact).
    c.vec::<[u64; 2]>("on-disk free slots")?;
    let name = c.vec::<u8>("on-disk data file name")?;
    let totsize = c.u64_in("on-disk data size", isize::MAX as usize)?;
    let lists: Vec<OnDiskList> = lists
        .iter()
        .map(|&[size, capacity, offset]| {
            let f = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
            OnDiskList {
                size: f(size),
                capacity: f(capacity),
                offset: f(offset),
            }
        })
        .collect();
    let name =
        std::str::from_utf8(&name).map_err(|_| c.err("the on-disk data file name is not UTF-8"))?;
    let path = resolve_data_file(c, name);
    let read_only = c.shared.is_some();
    let lists = OnDiskInvertedLists::open(&path, code_size, lists, totsize, read_only)
        .map_err(|e| c.err(e))?;
    Ok(Box::new(lists))
}

/// The data file as named in the record when it exists there; otherwise the file of that
/// name beside the index file (Faiss's `IO_FLAG_ONDISK_SAME_DIR`), so an index and its
/// data moved together still open.
pub(super) fn resolve_data_file(c: &Cursor<'_>, name: &str) -> std::path::PathBuf {
    let given = std::path::PathBuf::from(name);
    if given.exists() {
        return given;
    }
    match (&c.base_dir, given.file_name()) {
        (Some(dir), Some(file)) if dir.join(file).exists() => dir.join(file),
        _ => given,
    }
}

/// An `ilbl` record (fast-scan lists in Faiss's block layout), unpacked into `lists`.
pub(super) fn read_block_lists(
    c: &mut Cursor<'_>,
    nlist: usize,
    code_size: usize,
    nibbles: usize,
    lists: &mut dyn InvertedLists,
) -> Result<()> {
    let file_nlist = c.u64("block lists nlist")?;
    // Faiss records block lists' code size as "invalid" (SIZE_MAX): codes only exist
    // packed in blocks.
    let file_cs = c.u64("block lists code_size")?;
    if file_nlist != nlist as u64 || (file_cs != code_size as u64 && file_cs != u64::MAX) {
        return Err(c.err(format!(
            "block lists hold {file_nlist} lists of {file_cs}-byte codes; the index has \
             {nlist} lists of {code_size}-byte codes"
        )));
    }
    let bbs = c.u64_in("codes per block", 1 << 16)?;
    let block_size = c.u64_in("block size", 1 << 24)?;
    if bbs == 0 || !bbs.is_multiple_of(32) || block_size != bbs * code_size {
        return Err(c.err(format!(
            "blocks of {bbs} codes in {block_size} bytes; expected a multiple of 32 codes of \
             {code_size} bytes each"
        )));
    }
    for l in 0..nlist {
        let ids = c.vec::<i64>("list ids")?;
        let blocks = c.vec_len::<u8>(
            "list blocks",
            super::fastscan::packed_len(ids.len(), code_size, bbs),
        )?;
        let codes = super::fastscan::unpack(&blocks, ids.len(), code_size, nibbles, bbs);
        lists.add_entries(l, &ids, &codes).map_err(|e| c.err(e))?;
    }
    Ok(())
}
