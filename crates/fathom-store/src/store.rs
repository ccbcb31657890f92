//! `VectorStore`: the file, its mapping, the reader-writer lock and every operation that
//! changes the file.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use fathom_core::{Error, Result, check};
use memmap2::{Mmap, MmapMut, MmapOptions};

use crate::format::{DATA_START, HEADER_SLOT, Header, Layout, Segment};

/// The largest dimension [`VectorStore::create`] accepts (as the search service): one
/// vector is then at most 256 KiB.
pub const MAX_DIM: usize = 65536;

/// How a store is opened.
///
/// ```
/// use fathom_store::StoreOptions;
/// let opts = StoreOptions::default().read_only(true);
/// assert!(opts.is_read_only() && opts.is_sync());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    sync: bool,
    read_only: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sync: true,
            read_only: false,
        }
    }
}

impl StoreOptions {
    /// With sync on (the default), writes return only once they are on disk (`msync`,
    /// `fsync`). Off, they reach the disk when the OS writes the page cache back: a crash
    /// of the machine (not of the process) may then lose acknowledged vectors, never
    /// tear the store.
    pub fn sync(mut self, on: bool) -> Self {
        self.sync = on;
        self
    }
    /// Opens for reading only: the file is mapped read-only and every write is an error.
    /// Several read-only openers may share a file; a writer excludes everyone else.
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }
    /// Whether writes are made durable before they return.
    pub fn is_sync(&self) -> bool {
        self.sync
    }
    /// Whether the store is opened for reading only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
}

/// Counts and sizes of a store ([`VectorStore::stat`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreStat {
    /// Vector dimension.
    pub dim: usize,
    /// Vectors stored, deleted ones included (ids are `0..total`).
    pub total: u64,
    /// Vectors not deleted.
    pub live: u64,
    /// Vectors deleted and not yet compacted away.
    pub deleted: u64,
    /// Size of the file in bytes (allocated segments included).
    pub file_bytes: u64,
    /// Bytes of live vectors and their norms over the file size.
    pub utilisation: f64,
    /// Bytes [`VectorStore::compact`] would give back for the deleted vectors.
    pub reclaimable_bytes: u64,
    /// The deleted ids, ascending.
    pub deleted_ids: Vec<u64>,
}

/// The mapping, writable or not.
enum Map {
    Rw(MmapMut),
    Ro(Mmap),
}

impl Map {
    fn bytes(&self) -> &[u8] {
        match self {
            Map::Rw(m) => m,
            Map::Ro(m) => m,
        }
    }
}

/// What the lock protects.
pub(crate) struct Inner {
    file: File,
    map: Map,
    header: Header,
    layout: Layout,
    deleted: u64,
}

/// One segment's committed rows, borrowed from the mapping.
pub(crate) struct SegmentView<'a> {
    pub first_row: u64,
    pub vectors: &'a [f32],
    pub norms: &'a [f32],
    pub tombstones: &'a [u8],
}

impl SegmentView<'_> {
    pub fn rows(&self) -> usize {
        self.norms.len()
    }
    pub fn is_deleted(&self, i: usize) -> bool {
        self.tombstones[i / 8] >> (i % 8) & 1 == 1
    }
}

impl Inner {
    pub fn dim(&self) -> usize {
        self.header.dim as usize
    }
    pub fn count(&self) -> u64 {
        self.header.count
    }

    /// The committed rows, segment by segment.
    pub fn segments(&self) -> Vec<SegmentView<'_>> {
        let bytes = self.map.bytes();
        let count = self.header.count;
        let d = self.dim();
        self.layout
            .segments()
            .iter()
            .take_while(|s| s.first_row < count)
            .map(|s| {
                let rows = (count - s.first_row).min(s.capacity) as usize;
                SegmentView {
                    first_row: s.first_row,
                    vectors: f32s(bytes, s.vectors, rows * d),
                    norms: f32s(bytes, s.norms, rows),
                    tombstones: &bytes[s.tombstones as usize..][..rows.div_ceil(8)],
                }
            })
            .collect()
    }

    pub fn is_deleted(&self, id: u64) -> bool {
        let (s, i) = self.layout.locate(id);
        self.map.bytes()[s.tombstones as usize + i / 8] >> (i % 8) & 1 == 1
    }

    pub fn row(&self, id: u64) -> (&[f32], f32) {
        let (s, i) = self.layout.locate(id);
        let d = self.dim();
        let bytes = self.map.bytes();
        (
            f32s(bytes, s.vectors + (i * d * 4) as u64, d),
            f32s(bytes, s.norms + (i * 4) as u64, 1)[0],
        )
    }

    /// An error naming the valid range when `id` is not a stored row.
    pub fn check_id(&self, id: u64) -> Result<()> {
        if id >= self.header.count {
            return Err(Error::invalid(format!(
                "id {id} is out of range: the store holds ids 0..{}",
                self.header.count
            )));
        }
        Ok(())
    }
}

/// `n` floats at byte `offset` of the mapping. Offsets are page-aligned plus multiples of
/// 4, so the cast never fails.
fn f32s(bytes: &[u8], offset: u64, n: usize) -> &[f32] {
    bytemuck::cast_slice(&bytes[offset as usize..offset as usize + n * 4])
}

fn io_err(path: &Path, what: &str, e: io::Error) -> Error {
    Error::Io {
        path: Some(path.to_path_buf()),
        source: io::Error::new(e.kind(), format!("{what}: {e}")),
    }
}

/// Maps `file` (its whole length).
fn map_file(file: &File, path: &Path, read_only: bool) -> Result<Map> {
    // SAFETY: the file is locked (exclusively for a writer, shared for readers) for as long
    // as this store holds it, so no cooperating process changes it under the mapping, and
    // every access goes through bounds-checked slices of the mapped length. A process that
    // ignores the lock and truncates the file can still make reads fault; that is outside
    // what a memory-mapped store can prevent.
    let map = unsafe {
        if read_only {
            MmapOptions::new().map(file).map(Map::Ro)
        } else {
            MmapOptions::new().map_mut(file).map(Map::Rw)
        }
    };
    map.map_err(|e| io_err(path, "mapping the store", e))
}

/// Extra attempts, 10 ms apart, at taking a lock that looks held.
const LOCK_RETRIES: usize = 25;

/// Takes the advisory lock: exclusive for a writer, shared for readers.
fn lock(file: &File, path: &Path, read_only: bool) -> Result<()> {
    let attempt = || {
        if read_only {
            file.try_lock_shared()
        } else {
            file.try_lock()
        }
    };
    // A process forked elsewhere in this program holds a copy of every descriptor until it
    // execs (close-on-exec acts only then), and with it the lock: retry for a moment
    // before calling the store busy.
    let mut res = attempt();
    for _ in 0..LOCK_RETRIES {
        if !matches!(res, Err(std::fs::TryLockError::WouldBlock)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        res = attempt();
    }
    res.map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => Error::invalid(format!(
            "{} is in use by another process{}",
            path.display(),
            if read_only {
                " that has it open for writing"
            } else {
                ""
            }
        )),
        std::fs::TryLockError::Error(e) => io_err(path, "locking the store", e),
    })
}

/// Times [`open_locked`] reopens a store that compaction replaced while it waited.
const REPLACED_RETRIES: usize = 100;

/// Opens `path` and takes its lock, then checks that the path still names the file
/// locked; when a compaction renamed a new file over it in the meantime, opens that one
/// instead. Once the check passes the file stays the store's: replacing it takes the
/// lock held here.
fn open_locked(path: &Path, read_only: bool) -> Result<File> {
    fathom_core::check::regular_file(path, "a vector store file")?;
    for _ in 0..REPLACED_RETRIES {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|e| io_err(path, "opening the store", e))?;
        lock(&file, path, read_only)?;
        let opened = file
            .metadata()
            .map_err(|e| io_err(path, "reading the store's metadata", e))?;
        match std::fs::metadata(path) {
            Ok(now) if same_file(&opened, &now) => return Ok(file),
            // Replaced (or removed) while this waited for the lock: start again on
            // whatever the path names now.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, "reading the store's metadata", e)),
        }
    }
    Err(Error::invalid(format!(
        "{} was replaced {REPLACED_RETRIES} times while waiting for its lock (another \
         process compacting it over and over?); try again",
        path.display()
    )))
}

/// Whether two metadata describe the same file (device and inode).
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Whether two metadata describe the same file: without inode numbers, assumed so (a
/// file being renamed over cannot be replaced on such systems while it is open).
#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

/// Makes a rename or creation in `dir` durable.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, "syncing the directory", e))
}

/// A persistent file of vectors, memory-mapped, searched by cosine similarity, inner
/// product or L2 distance. Ids are row numbers, assigned in order by
/// [`add_vectors`](VectorStore::add_vectors); deletion marks a tombstone and
/// [`compact`](VectorStore::compact) rewrites the file without the deleted rows.
///
/// Readers and writers share a `VectorStore` through `&self` (it is `Sync`): searches
/// run concurrently with each other; a write waits for running searches and new searches
/// wait for a waiting writer, so a stream of readers cannot starve a writer. A search
/// never sees a vector that is being written: rows become visible when the write is
/// complete.
///
/// ```
/// use fathom_store::VectorStore;
/// let dir = tempfile::tempdir().unwrap();
/// let store = VectorStore::create(dir.path().join("v.store"), 3).unwrap();
/// let ids = store.add_vectors(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).unwrap();
/// assert_eq!(ids, vec![0, 1]);
/// let hits = store.cosine_search(&[0.9, 0.1, 0.0], 1, None, 0).unwrap();
/// assert_eq!(hits[0].id, 0);
/// assert_eq!(store.mark_deleted(&[0]).unwrap(), 1);
/// assert_eq!(store.cosine_search(&[0.9, 0.1, 0.0], 1, None, 0).unwrap()[0].id, 1);
/// ```
pub struct VectorStore {
    path: PathBuf,
    opts: StoreOptions,
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for VectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.read();
        f.debug_struct("VectorStore")
            .field("path", &self.path)
            .field("dim", &g.dim())
            .field("total", &g.count())
            .field("deleted", &g.deleted)
            .finish()
    }
}

impl VectorStore {
    /// Creates a new, empty store of `dim`-dimensional vectors at `path` (which must not
    /// exist), with sync on.
    pub fn create(path: impl AsRef<Path>, dim: usize) -> Result<Self> {
        Self::create_with(path, dim, StoreOptions::default())
    }

    /// [`VectorStore::create`] with options (`read_only` is refused).
    pub fn create_with(path: impl AsRef<Path>, dim: usize, opts: StoreOptions) -> Result<Self> {
        let path = path.as_ref();
        if opts.read_only {
            return Err(Error::invalid("cannot create a store read-only"));
        }
        if dim == 0 || dim > MAX_DIM {
            return Err(Error::invalid(format!(
                "store dimension must be in 1..={MAX_DIM}, got {dim}"
            )));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| io_err(path, "creating the store", e))?;
        lock(&file, path, false)?;
        let header = Header {
            dim: dim as u32,
            flags: 0,
            count: 0,
            seq: 0,
        };
        let mut head = vec![0u8; DATA_START as usize];
        head[..header.encode().len()].copy_from_slice(&header.encode());
        {
            use std::io::Write;
            (&file)
                .write_all(&head)
                .and_then(|_| file.sync_all())
                .map_err(|e| io_err(path, "writing the store header", e))?;
        }
        sync_dir(path)?;
        drop(file);
        Self::open_with(path, opts)
    }

    /// Opens an existing store for reading and writing, with sync on.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens an existing store with options.
    ///
    /// The file is locked (shared for reading, exclusive for writing) and then checked to
    /// still be the file at `path`: a [`compact`](VectorStore::compact) in another
    /// process renames a new file over the path while holding the old file's lock, and a
    /// writer that waited for that lock would otherwise change a file nobody will read
    /// again, losing writes it reports as done.
    pub fn open_with(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = open_locked(path, opts.read_only)?;
        let inner = Self::load(file, path, opts.read_only)?;
        Ok(VectorStore {
            path: path.to_path_buf(),
            opts,
            inner: RwLock::new(inner),
        })
    }

    /// Maps `file`, reads its header and checks that the file holds what it says.
    fn load(file: File, path: &Path, read_only: bool) -> Result<Inner> {
        let len = file
            .metadata()
            .map_err(|e| io_err(path, "reading the store's size", e))?
            .len();
        if len < DATA_START {
            return Err(Error::Format {
                what: format!("vector store {}", path.display()),
                detail: format!(
                    "{len} bytes, fewer than the {DATA_START}-byte header: not a store, or truncated"
                ),
            });
        }
        let map = map_file(&file, path, read_only)?;
        let header = Header::read(map.bytes()).map_err(|e| match e {
            Error::Format { detail, .. } => Error::Format {
                what: format!("vector store {}", path.display()),
                detail,
            },
            e => e,
        })?;
        let mut layout = Layout::new(header.dim as usize);
        let needed = layout.reserve(header.count);
        if len < needed {
            return Err(Error::Format {
                what: format!("vector store {}", path.display()),
                detail: format!(
                    "truncated: the header records {} vectors of dimension {}, which need {needed} \
                     bytes, but the file has {len}",
                    header.count, header.dim
                ),
            });
        }
        let mut inner = Inner {
            file,
            map,
            header,
            layout,
            deleted: 0,
        };
        inner.deleted = inner
            .segments()
            .iter()
            .map(|s| {
                let full = s.rows() / 8;
                let mut n: u64 = s.tombstones[..full]
                    .iter()
                    .map(|b| b.count_ones() as u64)
                    .sum();
                n += (full * 8..s.rows()).filter(|&i| s.is_deleted(i)).count() as u64;
                n
            })
            .sum();
        Ok(inner)
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A writer that panicked left the file consistent (the header is written last),
        // so the lock's data is still good.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Inner>> {
        if self.opts.read_only {
            return Err(Error::Unsupported(format!(
                "{} is open read-only: reopen it writable to change it",
                self.path.display()
            )));
        }
        Ok(self.inner.write().unwrap_or_else(|e| e.into_inner()))
    }

    /// The path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.read().dim()
    }
    /// Vectors stored, deleted ones included (ids are `0..total`).
    pub fn total(&self) -> u64 {
        self.read().count()
    }
    /// Vectors not deleted.
    pub fn live(&self) -> u64 {
        let g = self.read();
        g.count() - g.deleted
    }

    /// Appends the rows of `x` (`n × dim` floats, all finite) and returns their ids.
    /// With sync on, the vectors are on disk when this returns.
    pub fn add_vectors(&self, x: &[f32]) -> Result<Vec<u64>> {
        let mut g = self.write()?;
        let d = g.dim();
        let n = check::vectors("added", x, d)? as u64;
        check::finite("added", x, d)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let first = g.count();
        let last = first + n;
        self.ensure_capacity(&mut g, last)?;
        let sync = self.opts.sync;
        let inner = &mut *g;
        let Map::Rw(map) = &mut inner.map else {
            unreachable!("write() refuses read-only stores");
        };
        // Rows first, segment by segment; the header that makes them visible comes after.
        let mut row = first;
        let mut src = x;
        while row < last {
            let (seg, i) = inner.layout.locate(row);
            let seg = *seg;
            let take = ((seg.capacity - i as u64).min(last - row)) as usize;
            let (chunk, rest) = src.split_at(take * d);
            write_rows(map, &seg, i, d, chunk);
            if sync {
                let from = seg.vectors + (i * d * 4) as u64;
                map.flush_range(from as usize, (seg.end - from) as usize)
                    .map_err(|e| io_err(&self.path, "syncing added vectors", e))?;
            }
            row += take as u64;
            src = rest;
        }
        let header = Header {
            count: last,
            seq: inner.header.seq + 1,
            ..inner.header
        };
        write_header(map, &header, sync)
            .map_err(|e| io_err(&self.path, "syncing the header", e))?;
        inner.header = header;
        Ok((first..last).collect())
    }

    /// [`VectorStore::add_vectors`] for a list of vectors, each `dim` long.
    pub fn add_vector_list<V: AsRef<[f32]>>(&self, vectors: &[V]) -> Result<Vec<u64>> {
        let d = self.dim();
        let mut flat = Vec::with_capacity(vectors.len() * d);
        for (i, v) in vectors.iter().enumerate() {
            let v = v.as_ref();
            if v.len() != d {
                return Err(Error::DimensionMismatch {
                    what: format!("vector {i} of the list"),
                    got: v.len(),
                    expected: format!("the store's dimension {d}"),
                });
            }
            flat.extend_from_slice(v);
        }
        self.add_vectors(&flat)
    }

    /// Grows the file (and remaps it) so that it holds `rows` rows. On failure (a full
    /// disk, a file-size limit) the store is unchanged.
    fn ensure_capacity(&self, g: &mut Inner, rows: u64) -> Result<()> {
        let needed = g.layout.reserve(rows);
        let len = g.map.bytes().len() as u64;
        if len >= needed {
            return Ok(());
        }
        g.file.set_len(needed).map_err(|e| {
            io_err(
                &self.path,
                &format!(
                    "growing the store file from {len} to {needed} bytes failed (disk full or \
                     file-size limit?); the store is unchanged"
                ),
                e,
            )
        })?;
        if self.opts.sync {
            g.file
                .sync_all()
                .map_err(|e| io_err(&self.path, "syncing the grown store file", e))?;
        }
        g.map = map_file(&g.file, &self.path, false)?;
        Ok(())
    }

    /// Marks the given ids deleted and returns how many distinct ids were live. Ids
    /// already deleted (or listed twice) are not counted again; an id out of range is an
    /// error naming every such id, and then nothing is deleted.
    pub fn mark_deleted(&self, ids: &[u64]) -> Result<usize> {
        let mut g = self.write()?;
        let total = g.count();
        let bad: Vec<u64> = ids.iter().copied().filter(|&id| id >= total).collect();
        if !bad.is_empty() {
            const SHOWN: usize = 10;
            let mut list = bad
                .iter()
                .take(SHOWN)
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if bad.len() > SHOWN {
                list.push_str(&format!(" and {} more", bad.len() - SHOWN));
            }
            return Err(Error::invalid(format!(
                "{} {list} {} out of range: the store holds ids 0..{total}; nothing was deleted",
                if bad.len() == 1 { "id" } else { "ids" },
                if bad.len() == 1 { "is" } else { "are" },
            )));
        }
        let sync = self.opts.sync;
        let inner = &mut *g;
        let Map::Rw(map) = &mut inner.map else {
            unreachable!("write() refuses read-only stores");
        };
        let mut newly = 0u64;
        let mut touched: Vec<(usize, usize)> = Vec::new();
        for &id in ids {
            let (s, i) = inner.layout.locate(id);
            let at = s.tombstones as usize + i / 8;
            let bit = 1u8 << (i % 8);
            if map[at] & bit == 0 {
                map[at] |= bit;
                newly += 1;
                touched.push((s.tombstones as usize, (s.capacity / 8) as usize));
            }
        }
        if sync {
            touched.sort_unstable();
            touched.dedup();
            for (at, len) in touched {
                map.flush_range(at, len)
                    .map_err(|e| io_err(&self.path, "syncing deletions", e))?;
            }
        }
        inner.deleted += newly;
        Ok(newly as usize)
    }

    /// The vector `id`, or `None` when it was never stored or is deleted.
    pub fn get(&self, id: u64) -> Option<Vec<f32>> {
        let g = self.read();
        if id >= g.count() || g.is_deleted(id) {
            return None;
        }
        Some(g.row(id).0.to_vec())
    }

    /// Counts, sizes and the deleted ids.
    pub fn stat(&self) -> StoreStat {
        let g = self.read();
        let d = g.dim() as u64;
        let deleted_ids: Vec<u64> = g
            .segments()
            .iter()
            .flat_map(|s| {
                (0..s.rows())
                    .filter(|&i| s.is_deleted(i))
                    .map(move |i| s.first_row + i as u64)
            })
            .collect();
        let row_bytes = d * 4 + 4;
        let live = g.count() - g.deleted;
        let file_bytes = g.map.bytes().len() as u64;
        StoreStat {
            dim: d as usize,
            total: g.count(),
            live,
            deleted: g.deleted,
            file_bytes,
            utilisation: (live * row_bytes) as f64 / file_bytes as f64,
            reclaimable_bytes: g.deleted * row_bytes,
            deleted_ids,
        }
    }

    /// Rewrites the file without the deleted vectors and returns `(old id, new id)` for
    /// every live vector (ids stay in order). The new file is written beside the old one,
    /// synced and renamed over it, so a crash leaves either store whole.
    pub fn compact(&self) -> Result<Vec<(u64, u64)>> {
        let mut g = self.write()?;
        let live: Vec<u64> = (0..g.count()).filter(|&id| !g.is_deleted(id)).collect();
        let mapping: Vec<(u64, u64)> = live
            .iter()
            .enumerate()
            .map(|(new, &old)| (old, new as u64))
            .collect();
        if g.deleted == 0 {
            return Ok(mapping);
        }
        let d = g.dim();
        let tmp = self.path.with_extension("compact-tmp");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, "creating the compacted store", e))?;
        let result = (|| -> Result<Inner> {
            lock(&file, &tmp, false)?;
            keep_owner_and_mode(&g.file, &file, &tmp)?;
            let mut layout = Layout::new(d);
            let n = live.len() as u64;
            let len = layout.reserve(n).max(crate::format::DATA_START);
            file.set_len(len).map_err(|e| {
                io_err(
                    &tmp,
                    &format!(
                        "allocating {len} bytes for the compacted store failed (disk full?); \
                         the store is unchanged"
                    ),
                    e,
                )
            })?;
            let Map::Rw(mut map) = map_file(&file, &tmp, false)? else {
                unreachable!("mapped writable");
            };
            let mut row = 0u64;
            let mut buf = Vec::new();
            while row < n {
                let (seg, i) = layout.locate(row);
                let seg = *seg;
                let take = ((seg.capacity - i as u64).min(n - row)) as usize;
                buf.clear();
                for &old in &live[row as usize..row as usize + take] {
                    buf.extend_from_slice(g.row(old).0);
                }
                write_rows(&mut map, &seg, i, d, &buf);
                row += take as u64;
            }
            let header = Header {
                dim: d as u32,
                flags: 0,
                count: n,
                seq: 0,
            };
            write_header(&mut map, &header, false)
                .map_err(|e| io_err(&tmp, "writing the compacted header", e))?;
            map.flush()
                .and_then(|_| file.sync_all())
                .map_err(|e| io_err(&tmp, "syncing the compacted store", e))?;
            Ok(Inner {
                file: file.try_clone().map_err(|e| io_err(&tmp, "reopening", e))?,
                map: Map::Rw(map),
                header,
                layout,
                deleted: 0,
            })
        })();
        let new_inner = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(&self.path, "renaming the compacted store into place", e)
        })?;
        sync_dir(&self.path)?;
        *g = new_inner;
        Ok(mapping)
    }

    /// Sums every stored float (deleted rows included) in parallel: a plain pass over the
    /// mapping at memory bandwidth, the yardstick for one search's time.
    pub fn sum_all(&self) -> f64 {
        use rayon::prelude::*;
        let g = self.read();
        g.segments()
            .par_iter()
            .map(|s| {
                s.vectors
                    .par_chunks(1 << 16)
                    .map(|c| {
                        let mut lanes = [0.0f32; 16];
                        let (blocks, tail) = c.as_chunks::<16>();
                        for b in blocks {
                            for (l, v) in lanes.iter_mut().zip(b) {
                                *l += v;
                            }
                        }
                        lanes.iter().chain(tail).map(|&v| v as f64).sum::<f64>()
                    })
                    .sum::<f64>()
            })
            .sum()
    }
}

/// Gives `new` (the compacted file at `path`) the permissions of `old`, and its owner and
/// group where this process may (changing the owner takes privileges; without them the
/// new file keeps this process's owner, as any rewrite by it would).
fn keep_owner_and_mode(old: &File, new: &File, path: &Path) -> Result<()> {
    let meta = old
        .metadata()
        .map_err(|e| io_err(path, "reading the store's permissions", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match std::os::unix::fs::fchown(new, Some(meta.uid()), Some(meta.gid())) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                // Not allowed to give the file away; keep at least the group if this
                // process belongs to it.
                let _ = std::os::unix::fs::fchown(new, None, Some(meta.gid()));
            }
            Err(e) => return Err(io_err(path, "setting the compacted store's owner", e)),
        }
    }
    new.set_permissions(meta.permissions())
        .map_err(|e| io_err(path, "setting the compacted store's permissions", e))
}

/// Writes `rows` (whole vectors) at row `i` of `seg`, their norms, and clears their
/// tombstones (a crashed earlier write may have left anything past the committed rows).
fn write_rows(map: &mut MmapMut, seg: &Segment, i: usize, d: usize, rows: &[f32]) {
    let n = rows.len() / d;
    let at = seg.vectors as usize + i * d * 4;
    map[at..at + rows.len() * 4].copy_from_slice(bytemuck::cast_slice(rows));
    let norms = fathom_kernels::l2_norms(rows, d).expect("whole rows");
    let at = seg.norms as usize + i * 4;
    map[at..at + n * 4].copy_from_slice(bytemuck::cast_slice(&norms));
    let t = seg.tombstones as usize;
    for r in i..i + n {
        map[t + r / 8] &= !(1u8 << (r % 8));
    }
}

/// Writes `h` into its slot; with `sync`, waits until it is on disk.
fn write_header(map: &mut MmapMut, h: &Header, sync: bool) -> io::Result<()> {
    let at = h.slot() * HEADER_SLOT;
    let enc = h.encode();
    map[at..at + enc.len()].copy_from_slice(&enc);
    if sync {
        map.flush_range(at, HEADER_SLOT)?;
    }
    Ok(())
}
