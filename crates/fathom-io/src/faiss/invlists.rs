//! Inverted-list records: `ilar` (in memory, full or sparse size table), `il00`.

use fathom_core::Result;
use fathom_invlists::InvertedLists;

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
