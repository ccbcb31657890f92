//! TEXMEX "vecs" files: `.fvecs` (f32), `.ivecs` (i32), `.bvecs` (u8). Every row is a
//! little-endian `i32` dimension followed by that many values.

use std::io::{BufReader, Read};
use std::ops::Range;
use std::path::Path;

use fathom_core::{Error, Result, check};
use memmap2::Mmap;

use crate::Dataset;
use crate::atomic::{write_atomically, write_pod};

/// Largest dimension accepted in a vecs header; anything larger is taken as corruption.
const MAX_DIM: usize = 1 << 24;

/// A value type stored in a vecs file.
pub trait VecsElement: bytemuck::Pod + Send + Sync {
    /// The usual file extension ("fvecs", …), used in messages.
    const EXT: &'static str;
}

impl VecsElement for f32 {
    const EXT: &'static str = "fvecs";
}
impl VecsElement for i32 {
    const EXT: &'static str = "ivecs";
}
impl VecsElement for u8 {
    const EXT: &'static str = "bvecs";
}

fn what<T: VecsElement>(path: &Path) -> String {
    format!("{} file {}", T::EXT, path.display())
}

/// The dimension and row count a vecs file of `len` bytes starting with `first4` has.
fn layout<T: VecsElement>(
    path: &Path,
    len: u64,
    first4: Option<[u8; 4]>,
) -> Result<(usize, usize)> {
    let first4 = first4.ok_or_else(|| {
        Error::format(
            what::<T>(path),
            format!("file is {len} bytes; expected at least a 4-byte dimension header"),
        )
    })?;
    let d = i32::from_le_bytes(first4);
    if d <= 0 || d as usize > MAX_DIM {
        return Err(Error::format(
            what::<T>(path),
            format!("first row declares dimension {d}; expected 1..={MAX_DIM}"),
        ));
    }
    let d = d as usize;
    let row = 4 + d as u64 * size_of::<T>() as u64;
    if !len.is_multiple_of(row) {
        return Err(Error::format(
            what::<T>(path),
            format!(
                "file is {len} bytes, not a whole number of {row}-byte rows of dimension {d} \
                 (truncated or not a {} file?)",
                T::EXT
            ),
        ));
    }
    Ok((d, (len / row) as usize))
}

fn bad_row<T: VecsElement>(path: &Path, i: usize, got: i32, d: usize) -> Error {
    Error::format(
        what::<T>(path),
        format!("row {i} declares dimension {got}; every row must have the first row's {d}"),
    )
}

/// Reads a whole vecs file. Streams it, so memory use is the result plus a small buffer.
pub fn read_vecs<T: VecsElement>(path: impl AsRef<Path>) -> Result<Dataset<T>> {
    let path = path.as_ref();
    let file = crate::input::open(path, "a vecs file")?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut head = [0u8; 4];
    let first = if len >= 4 {
        r.read_exact(&mut head).map_err(|e| Error::io(path, e))?;
        Some(head)
    } else {
        None
    };
    let (d, n) = layout::<T>(path, len, first)?;
    let mut data: Vec<T> = Vec::new();
    data.try_reserve_exact(n * d).map_err(|_| {
        Error::invalid(format!(
            "{}: {n} × {d} values do not fit in memory",
            path.display()
        ))
    })?;
    data.resize(n * d, T::zeroed());
    for (i, row) in data.chunks_exact_mut(d).enumerate() {
        if i > 0 {
            r.read_exact(&mut head).map_err(|e| Error::io(path, e))?;
            let got = i32::from_le_bytes(head);
            if got as i64 != d as i64 {
                return Err(bad_row::<T>(path, i, got, d));
            }
        }
        r.read_exact(bytemuck::cast_slice_mut(row))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(Dataset { d, data })
}

/// Reads an `.fvecs` file.
pub fn read_fvecs(path: impl AsRef<Path>) -> Result<Dataset<f32>> {
    read_vecs(path)
}

/// Reads an `.ivecs` file (ground-truth neighbour lists, usually).
pub fn read_ivecs(path: impl AsRef<Path>) -> Result<Dataset<i32>> {
    read_vecs(path)
}

/// Reads a `.bvecs` file.
pub fn read_bvecs(path: impl AsRef<Path>) -> Result<Dataset<u8>> {
    read_vecs(path)
}

/// Writes `data` (rows of dimension `d`) as a vecs file, atomically.
pub fn write_vecs<T: VecsElement>(path: impl AsRef<Path>, data: &[T], d: usize) -> Result<()> {
    let path = path.as_ref();
    if d == 0 || d > MAX_DIM || !data.len().is_multiple_of(d) {
        return Err(Error::DimensionMismatch {
            what: "data".into(),
            got: data.len(),
            expected: format!("a multiple of a dimension d in 1..={MAX_DIM} (got d = {d})"),
        });
    }
    let head = (d as i32).to_le_bytes();
    write_atomically(path, |w| {
        for row in data.chunks_exact(d) {
            std::io::Write::write_all(w, &head)?;
            write_pod(w, row)?;
        }
        Ok(())
    })
}

/// Writes an `.fvecs` file.
pub fn write_fvecs(path: impl AsRef<Path>, data: &[f32], d: usize) -> Result<()> {
    check::vectors("data", data, d)?;
    write_vecs(path, data, d)
}

/// Writes an `.ivecs` file.
pub fn write_ivecs(path: impl AsRef<Path>, data: &[i32], d: usize) -> Result<()> {
    write_vecs(path, data, d)
}

/// Writes a `.bvecs` file.
pub fn write_bvecs(path: impl AsRef<Path>, data: &[u8], d: usize) -> Result<()> {
    write_vecs(path, data, d)
}

/// A vecs file mapped into memory: rows are read from the page cache on demand, without
/// loading the file. Every row header is checked when the file is opened.
///
/// The mapping assumes the file is not truncated or rewritten by another process while it
/// is open (the usual condition of memory-mapped files; fathom's own writers replace files
/// by renaming, which is safe).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("x.fvecs");
/// fathom_io::write_fvecs(&path, &[1.0, 2.0, 3.0, 4.0], 2).unwrap();
/// let m = fathom_io::VecsMmap::<f32>::open(&path).unwrap();
/// assert_eq!(m.row(1), Some(&[3.0, 4.0][..]));
/// ```
pub struct VecsMmap<T: VecsElement> {
    map: Mmap,
    d: usize,
    n: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: VecsElement> VecsMmap<T> {
    /// Maps and checks the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = crate::input::open(path, "a vecs file")?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len == 0 {
            layout::<T>(path, 0, None)?;
        }
        // SAFETY: the file is opened read-only and the map is only read. Its contents are
        // validated below and never trusted as Rust invariants beyond being plain bytes;
        // the remaining hazard (another process truncating the file) is documented on the
        // type, as for every memory-mapped file.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let first = map.get(..4).map(|b| [b[0], b[1], b[2], b[3]]);
        let (d, n) = layout::<T>(path, len, first)?;
        let row = 4 + d * size_of::<T>();
        for i in 1..n {
            let h = &map[i * row..i * row + 4];
            let got = i32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            if got as i64 != d as i64 {
                return Err(bad_row::<T>(path, i, got, d));
            }
        }
        if !(map.as_ptr() as usize).is_multiple_of(align_of::<T>()) {
            return Err(Error::invalid(
                "memory map is not aligned for the element type",
            ));
        }
        Ok(VecsMmap {
            map,
            d,
            n,
            _t: std::marker::PhantomData,
        })
    }

    /// Dimension.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Number of rows.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Row `i`, or `None` past the end. Zero-copy.
    pub fn row(&self, i: usize) -> Option<&[T]> {
        if i >= self.n {
            return None;
        }
        let row = 4 + self.d * size_of::<T>();
        let bytes = &self.map[i * row + 4..(i + 1) * row];
        // Rows start at multiples of 4 bytes from a page-aligned base (checked in `open`),
        // so the cast cannot fail for the 1- and 4-byte element types.
        bytemuck::try_cast_slice(bytes).ok()
    }

    /// Rows `range`, copied into a [`Dataset`]; `None` when the range is out of bounds.
    pub fn rows(&self, range: Range<usize>) -> Option<Dataset<T>> {
        if range.start > range.end || range.end > self.n {
            return None;
        }
        let mut data = Vec::with_capacity(range.len() * self.d);
        for i in range {
            data.extend_from_slice(self.row(i)?);
        }
        Some(Dataset { d: self.d, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_types() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.fvecs");
        let x: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        write_fvecs(&p, &x, 4).unwrap();
        assert_eq!(
            read_fvecs(&p).unwrap(),
            Dataset {
                d: 4,
                data: x.clone()
            }
        );
        let m = VecsMmap::<f32>::open(&p).unwrap();
        assert_eq!((m.n(), m.d()), (3, 4));
        assert_eq!(m.row(2).unwrap(), &x[8..]);
        assert!(m.row(3).is_none());
        assert_eq!(m.rows(1..3).unwrap().data, &x[4..]);
        assert!(m.rows(2..4).is_none());
        let p = dir.path().join("a.ivecs");
        write_ivecs(&p, &[1, -2, 3, 4], 2).unwrap();
        assert_eq!(read_ivecs(&p).unwrap().data, vec![1, -2, 3, 4]);
        let p = dir.path().join("a.bvecs");
        write_bvecs(&p, &[1, 2, 255], 3).unwrap();
        assert_eq!(read_bvecs(&p).unwrap().data, vec![1, 2, 255]);
        assert_eq!(crate::read_vectors(&p).unwrap().data, vec![1.0, 2.0, 255.0]);
    }

    #[test]
    fn malformed_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.fvecs");
        let check = |bytes: &[u8], needle: &str| {
            std::fs::write(&p, bytes).unwrap();
            let e = read_fvecs(&p).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
            let e = VecsMmap::<f32>::open(&p).err().unwrap().to_string();
            assert!(e.contains(needle), "{e}");
        };
        check(&[], "at least a 4-byte");
        check(&[1, 0], "at least a 4-byte");
        check(&(-3i32).to_le_bytes(), "dimension -3");
        check(&0i32.to_le_bytes(), "dimension 0");
        // Truncated: header says 2 floats, one present.
        let mut b = 2i32.to_le_bytes().to_vec();
        b.extend(1.0f32.to_le_bytes());
        check(&b, "not a whole number");
        // Second row with another dimension.
        let mut b = Vec::new();
        for d in [1i32, 1, 1, 2] {
            b.extend(d.to_le_bytes());
            b.extend(0.5f32.to_le_bytes());
        }
        check(&b, "row 3 declares dimension 2");
        let missing = dir.path().join("nope.fvecs");
        let e = read_fvecs(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.fvecs"), "{e}");
        assert!(write_fvecs(&p, &[1.0; 3], 2).is_err());
        assert!(write_ivecs(&p, &[1; 3], 0).is_err());
    }
}
