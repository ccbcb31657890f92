//! Faiss's binary index format: [`read_index`] opens a file written by Faiss (Python or
//! C++) or by fathom, [`write_index`] writes one Faiss opens.
//!
//! The format is a tree of records, each a four-character type code followed by its
//! fields (`docs/PERSISTENCE.md` says what fathom supports and checks). Supported types:
//!
//! | record | fathom type |
//! |---|---|
//! | `IxF2` `IxFI` `IxFl` | [`IndexFlat`](fathom_index::IndexFlat) (every metric) |
//! | `IxMp` `IxM2` | [`IndexIdMap`](fathom_index::IndexIdMap), [`IndexIdMap2`](fathom_index::IndexIdMap2) |
//! | `IxPT` + `rrot` `Pcam` `PcAm` `PCAm` `LTra` `VNrm` `VCnt` `RmDT` | [`IndexPreTransform`](fathom_index::IndexPreTransform) with its transforms (OPQ is stored as `LTra`, as Faiss does) |
//! | `IxRF` | [`IndexRefine`](fathom_index::IndexRefine) |
//! | `IxPq` (`IxPQ` `IxPo`) | [`IndexPq`](fathom_index::IndexPq) |
//! | `IxSQ` | [`IndexScalarQuantizer`](fathom_index::IndexScalarQuantizer) |
//! | `IxHe` (`IxHE`) | [`IndexLsh`](fathom_index::IndexLsh) |
//! | `IwFl` `IwSq` `IwPQ` `IwQR` + `ilar` (legacy `IvFl` `IvFL` `IvSQ` `IwSQ` `IvPQ` `IvQR`) | the IVF indexes, direct maps included |
//! | `Imiq` | [`MultiIndexQuantizer`](fathom_index::MultiIndexQuantizer) (IMI coarse quantizer) |
//! | `IPfs`, `IwPf` + `ilbl` | [`IndexPqFastScan`](fathom_index::IndexPqFastScan), [`IndexIvfPqFastScan`](fathom_index::IndexIvfPqFastScan) |
//! | `ilod` | [`OnDiskInvertedLists`](fathom_invlists::OnDiskInvertedLists) (lists in a separate data file) |
//! | `IHNf` `IHNs` `IHNp` | [`IndexHnswFlat`](fathom_index::IndexHnswFlat), `…Sq`, `…Pq` |
//!
//! Reading never trusts the file: every count is checked against the bytes that remain
//! before anything is allocated, nesting is limited to 50 records, and every invariant
//! an index relies on (sizes, list numbers, graph links, ids) is checked, so a truncated
//! or corrupted file gives an [`Error::Format`] naming the
//! byte offset and the field, never a panic or a huge allocation. Bytes after the index
//! record are an error too.
//!
//! [`write_index`] writes beside the target, flushes to disk and renames, then flushes
//! the directory: after a crash the path holds the old file or the new one, never a mix.
//!
//! ```
//! use fathom_index::{Index, index_factory, MetricType};
//! use fathom_io::faiss::{index_to_bytes, read_index_bytes};
//! let mut index = index_factory(4, "IDMap,Flat", MetricType::L2).unwrap();
//! index.add_with_ids(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0], &[10, 20]).unwrap();
//! let bytes = index_to_bytes(&*index).unwrap();
//! assert_eq!(&bytes[..4], b"IxMp");
//! let back = read_index_bytes(&bytes).unwrap();
//! assert_eq!(back.search(&[0.0, 0.9, 0.0, 0.0], 1).unwrap().labels, vec![20]);
//! ```

// The header module's `put_codes!` macro serves the record modules after it.
#[macro_use]
mod header;
mod additive;
mod binary;
mod codes;
mod cursor;
mod fastscan;
mod flat;
mod hnsw;
mod invlists;
mod ivf;
mod rabitq;
mod read;
mod sink;
mod transform;
mod wrappers;
mod write;

use std::io::{Read, Write};
use std::path::Path;

use fathom_core::{Error, Result};
use fathom_index::Index;
use memmap2::Mmap;

/// One record of a Faiss file: its type code, nesting depth and byte offset, as
/// [`read_index_records`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Nesting depth (the top-level index is at depth 1).
    pub depth: usize,
    /// The four-character type code.
    pub fourcc: [u8; 4],
    /// Offset of the type code from the start of the file.
    pub offset: usize,
}

impl Record {
    /// The type code as text.
    pub fn code(&self) -> String {
        String::from_utf8_lossy(&self.fourcc).into_owned()
    }

    /// The Faiss class a record type stands for ("" when it is not a class, such as the
    /// size-table kinds of inverted lists).
    pub fn faiss_class(&self) -> &'static str {
        match &self.fourcc {
            b"IxF2" => "IndexFlatL2",
            b"IxFI" => "IndexFlatIP",
            b"IxFl" => "IndexFlat",
            b"IxMp" => "IndexIDMap",
            b"IxM2" => "IndexIDMap2",
            b"IxPT" => "IndexPreTransform",
            b"IxRF" => "IndexRefine",
            b"IxPq" | b"IxPQ" | b"IxPo" => "IndexPQ",
            b"IxSQ" => "IndexScalarQuantizer",
            b"IxHe" | b"IxHE" => "IndexLSH",
            b"IwFl" | b"IvFl" | b"IvFL" => "IndexIVFFlat",
            b"IwSq" | b"IwSQ" | b"IvSQ" => "IndexIVFScalarQuantizer",
            b"IwPQ" | b"IvPQ" => "IndexIVFPQ",
            b"IwQR" | b"IvQR" => "IndexIVFPQR",
            b"Imiq" => "MultiIndexQuantizer",
            b"IHNf" => "IndexHNSWFlat",
            b"IHNs" => "IndexHNSWSQ",
            b"IHNp" => "IndexHNSWPQ",
            b"rrot" => "RandomRotationMatrix",
            b"LTra" => "LinearTransform",
            b"Pcam" | b"PcAm" | b"PCAm" => "PCAMatrix",
            b"VNrm" => "NormalizationTransform",
            b"VCnt" => "CenteringTransform",
            b"RmDT" => "RemapDimensionsTransform",
            b"ilar" => "ArrayInvertedLists",
            b"ilod" => "OnDiskInvertedLists",
            b"ilbl" => "BlockInvertedLists",
            b"IPfs" => "IndexPQFastScan",
            b"IwPf" => "IndexIVFPQFastScan",
            b"il00" => "(no inverted lists)",
            _ => "",
        }
    }
}

/// Reads an index from a Faiss file held in memory.
pub fn read_index_bytes(bytes: &[u8]) -> Result<Box<dyn Index>> {
    Ok(read_index_records(bytes)?.0)
}

/// [`read_index_records`] on the file at `path`.
pub fn read_index_file_records(path: impl AsRef<Path>) -> Result<(Box<dyn Index>, Vec<Record>)> {
    let path = path.as_ref();
    let bytes = crate::input::read(path, "a Faiss index file")?;
    let mut c = cursor::Cursor::new(&bytes);
    c.base_dir = path.parent().map(Path::to_path_buf);
    finish(c, Some(path))
}

/// Reads an index from a Faiss file held in memory, with the records it was made of in
/// file order (what `fathom info` prints).
pub fn read_index_records(bytes: &[u8]) -> Result<(Box<dyn Index>, Vec<Record>)> {
    finish(cursor::Cursor::new(bytes), None)
}

/// Reads an index from a stream holding one Faiss file (read to its end).
pub fn read_index_from(r: &mut dyn Read) -> Result<Box<dyn Index>> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).map_err(|e| Error::Io {
        path: None,
        source: e,
    })?;
    read_index_bytes(&bytes)
}

/// Reads the index in the Faiss file at `path`.
pub fn read_index(path: impl AsRef<Path>) -> Result<Box<dyn Index>> {
    let path = path.as_ref();
    let file = crate::input::open(path, "a Faiss index file")?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Err(Error::format(
            format!("Faiss index file {}", path.display()),
            "the file is empty",
        ));
    }
    // SAFETY: the file is opened read-only and the map is only read as plain bytes, every
    // one of which is validated before use; the remaining hazard of any mapping (another
    // process truncating the file while it is read) is documented on `read_index`.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let mut c = cursor::Cursor::new(&map);
    c.base_dir = path.parent().map(Path::to_path_buf);
    finish(c, Some(path)).map(|(index, _)| index)
}

/// Reads the index record at `c` and checks nothing follows it; errors name `path` when
/// the bytes came from a file.
fn finish(mut c: cursor::Cursor<'_>, path: Option<&Path>) -> Result<(Box<dyn Index>, Vec<Record>)> {
    let named = |e: Error| match path {
        Some(p) => with_path(e, p),
        None => e,
    };
    let index = read::read_index(&mut c).map_err(named)?;
    if c.remaining() != 0 {
        return Err(named(c.err(format!(
            "{} bytes follow the index record; a Faiss file holds exactly one",
            c.remaining()
        ))));
    }
    Ok((index, c.records))
}

/// Reads the index in the Faiss file at `path`, serving its inverted lists and the codes
/// of PQ, SQ and LSH indexes (HNSW storage included) from a read-only memory map of the
/// file instead of copying them (Faiss's `IO_FLAG_MMAP`): opening is fast, the data takes
/// no memory of its own, pages are read as searches touch them. Flat vectors are copied
/// (their offset in a Faiss file is never aligned for `f32`), and so are quantizers,
/// graphs and fast-scan lists (whose block layout differs from fathom's); on-disk lists
/// (`ilod`) are opened read-only.
///
/// The index searches as usual; anything that would change its mapped data (add, remove,
/// update, merge) returns an error saying the data is read-only, and `reset` lets go of
/// the file. As with any memory map, the file must not be truncated or rewritten in place
/// while the index is open (fathom's own [`write_index`] replaces files by renaming, which
/// leaves an open map intact).
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexIvfFlat, MetricType};
/// use fathom_io::faiss::{read_index_mmap, write_index};
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("ivf.faiss");
/// let x: Vec<f32> = (0..400 * 4).map(|i| ((i * 37) % 101) as f32).collect();
/// let mut ivf = IndexIvfFlat::new(Box::new(IndexFlat::new_l2(4).unwrap()), 4, MetricType::L2).unwrap();
/// ivf.train(&x).unwrap();
/// ivf.add(&x).unwrap();
/// write_index(&ivf, &path).unwrap();
/// let mut mapped = read_index_mmap(&path).unwrap();
/// mapped.set_param("nprobe", 4.0).unwrap();
/// assert_eq!(mapped.search(&x[..4], 1).unwrap().labels, vec![0]);
/// assert!(mapped.add(&x[..4]).is_err(), "read-only lists");
/// ```
pub fn read_index_mmap(path: impl AsRef<Path>) -> Result<Box<dyn Index>> {
    let path = path.as_ref();
    let file = crate::input::open(path, "a Faiss index file")?;
    // SAFETY: as in `read_index`: a read-only map whose bytes are validated before use
    // and only ever read as plain bytes; the file must not be truncated while mapped,
    // which the documentation above states.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let shared: fathom_invlists::SharedBytes = std::sync::Arc::new(map);
    let mut c = cursor::Cursor::new((*shared).as_ref());
    c.shared = Some(shared.clone());
    c.base_dir = path.parent().map(Path::to_path_buf);
    finish(c, Some(path)).map(|(index, _)| index)
}

fn with_path(e: Error, path: &Path) -> Error {
    match e {
        Error::Format { detail, .. } => {
            Error::format(format!("Faiss index file {}", path.display()), detail)
        }
        other => other,
    }
}

/// Writes `index` as a Faiss file to a stream.
pub fn write_index_to(index: &dyn Index, w: &mut dyn Write) -> Result<()> {
    let mut sink = sink::Sink::new(w);
    write::write_index(&mut sink, index)
}

/// A deep copy of a vector transform, through its Faiss record (as [`clone_index`]); an
/// OPQ matrix comes back as the linear map it learnt, as Faiss stores it.
///
/// ```
/// use fathom_io::faiss::clone_transform;
/// use fathom_linalg::{NormalizationTransform, VectorTransform};
/// let t = NormalizationTransform::new(8).unwrap();
/// let copy = clone_transform(&t).unwrap();
/// assert_eq!((copy.d_in(), copy.d_out()), (8, 8));
/// ```
pub fn clone_transform(
    t: &dyn fathom_linalg::VectorTransform,
) -> Result<Box<dyn fathom_linalg::VectorTransform>> {
    let mut bytes = Vec::new();
    transform::write_transform(&mut sink::Sink::new(&mut bytes), t)?;
    transform::read_transform(&mut cursor::Cursor::new(&bytes))
}

/// `index` as the bytes of a Faiss file.
pub fn index_to_bytes(index: &dyn Index) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_index_to(index, &mut out)?;
    Ok(out)
}

/// Writes `index` to `path` as a Faiss file, replacing any file there atomically: a crash
/// leaves either the old file or the complete new one.
pub fn write_index(index: &dyn Index, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    // Serialise first, so an index Faiss cannot store leaves the old file untouched.
    crate::atomic::write_atomically(path, |w| {
        write_index_to(index, w).map_err(|e| match e {
            Error::Io { source, .. } => source,
            other => std::io::Error::other(other.to_string()),
        })
    })
}

/// Reads a binary index (Faiss's `read_index_binary`) from a Faiss file held in memory.
///
/// ```
/// use fathom_index::binary::{IndexBinary, IndexBinaryFlat};
/// use fathom_io::faiss::{index_binary_to_bytes, read_index_binary_bytes};
/// let mut index = IndexBinaryFlat::new(16).unwrap();
/// index.add(&[1, 2, 3, 4]).unwrap();
/// let back = read_index_binary_bytes(&index_binary_to_bytes(&index).unwrap()).unwrap();
/// assert_eq!(back.reconstruct(1).unwrap(), vec![3, 4]);
/// ```
pub fn read_index_binary_bytes(bytes: &[u8]) -> Result<Box<dyn fathom_index::binary::IndexBinary>> {
    let mut c = cursor::Cursor::new(bytes);
    let index = binary::read_index_binary(&mut c)?;
    if c.remaining() != 0 {
        return Err(c.err(format!(
            "{} bytes follow the index record; a Faiss file holds exactly one",
            c.remaining()
        )));
    }
    Ok(index)
}

/// Reads the binary index in the Faiss file at `path` (Faiss's `read_index_binary`).
pub fn read_index_binary(
    path: impl AsRef<Path>,
) -> Result<Box<dyn fathom_index::binary::IndexBinary>> {
    let path = path.as_ref();
    let bytes = crate::input::read(path, "a Faiss binary index file")?;
    read_index_binary_bytes(&bytes).map_err(|e| with_path(e, path))
}

/// `index` as the bytes of a Faiss binary index file.
pub fn index_binary_to_bytes(index: &dyn fathom_index::binary::IndexBinary) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    binary::write_index_binary(&mut sink::Sink::new(&mut out), index)?;
    Ok(out)
}

/// Writes `index` to `path` as a Faiss binary index file (Faiss's `write_index_binary`),
/// replacing any file there atomically.
pub fn write_index_binary(
    index: &dyn fathom_index::binary::IndexBinary,
    path: impl AsRef<Path>,
) -> Result<()> {
    let bytes = index_binary_to_bytes(index)?;
    crate::atomic::write_atomically(path.as_ref(), |w| w.write_all(&bytes))
}

/// A deep copy of `index`, through its Faiss form (Faiss's `clone_index`).
pub fn clone_index(index: &dyn Index) -> Result<Box<dyn Index>> {
    read_index_bytes(&index_to_bytes(index)?)
}
