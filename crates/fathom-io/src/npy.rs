//! numpy `.npy` files (format versions 1–3): float32, int64 and int32 arrays of one or two
//! dimensions, little-endian, C order.

use std::io::{BufReader, Read};
use std::path::Path;

use fathom_core::{Error, Result};
use memmap2::Mmap;

use crate::Dataset;
use crate::atomic::{write_atomically, write_pod};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Longest header accepted; numpy's own limit for version 1 headers is 65535 bytes.
const MAX_HEADER: usize = 1 << 20;

/// A value type `.npy` files can hold for fathom.
pub trait NpyElement: bytemuck::Pod + Send + Sync {
    /// numpy's `descr` for the type, little-endian.
    const DESCR: &'static str;
}

impl NpyElement for f32 {
    const DESCR: &'static str = "<f4";
}
impl NpyElement for i64 {
    const DESCR: &'static str = "<i8";
}
impl NpyElement for i32 {
    const DESCR: &'static str = "<i4";
}
impl NpyElement for u8 {
    const DESCR: &'static str = "|u1";
}

/// The contents of an `.npy` file. One-dimensional arrays read as one column (`d = 1`).
#[derive(Debug, Clone, PartialEq)]
pub enum NpyArray {
    /// `float32`
    F32(Dataset<f32>),
    /// `int64`
    I64(Dataset<i64>),
    /// `int32`
    I32(Dataset<i32>),
    /// `uint8` (codes)
    U8(Dataset<u8>),
}

impl NpyArray {
    /// numpy's name for the element type.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            NpyArray::F32(_) => "float32",
            NpyArray::I64(_) => "int64",
            NpyArray::I32(_) => "int32",
            NpyArray::U8(_) => "uint8",
        }
    }
}

struct Header {
    descr: String,
    n: usize,
    d: usize,
    data_offset: usize,
}

fn what(path: &Path) -> String {
    format!("npy file {}", path.display())
}

/// Parses the magic, version and header dictionary from the start of a file.
fn parse_header(path: &Path, r: &mut impl Read) -> Result<Header> {
    let bad = |detail: String| Error::format(what(path), detail);
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)
        .map_err(|_| bad("file is shorter than the 8-byte npy preamble".into()))?;
    if &pre[..6] != MAGIC {
        return Err(bad("missing the \\x93NUMPY magic; not an npy file".into()));
    }
    let (len, pre_len) = match pre[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)
                .map_err(|_| bad("truncated header length".into()))?;
            (u16::from_le_bytes(b) as usize, 10)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .map_err(|_| bad("truncated header length".into()))?;
            (u32::from_le_bytes(b) as usize, 12)
        }
        v => return Err(bad(format!("format version {v}; expected 1, 2 or 3"))),
    };
    if len > MAX_HEADER {
        return Err(bad(format!(
            "header of {len} bytes; expected at most {MAX_HEADER}"
        )));
    }
    let mut text = vec![0u8; len];
    r.read_exact(&mut text).map_err(|_| {
        bad(format!(
            "header declares {len} bytes but the file ends first"
        ))
    })?;
    let text = String::from_utf8_lossy(&text);
    let descr = dict_value(&text, "descr")
        .and_then(|v| {
            let v = v.trim();
            let q = v.chars().next().filter(|c| *c == '\'' || *c == '"')?;
            let rest = &v[1..];
            Some(rest[..rest.find(q)?].to_string())
        })
        .ok_or_else(|| bad("header has no 'descr' string".into()))?;
    let fortran = dict_value(&text, "fortran_order")
        .map(|v| v.trim_start().starts_with("True"))
        .ok_or_else(|| bad("header has no 'fortran_order'".into()))?;
    if fortran {
        return Err(bad(
            "array is in Fortran order; expected C order (np.ascontiguousarray)".into(),
        ));
    }
    let shape_text = dict_value(&text, "shape")
        .and_then(|v| {
            let v = v.trim_start().strip_prefix('(')?;
            Some(v[..v.find(')')?].to_string())
        })
        .ok_or_else(|| bad("header has no 'shape' tuple".into()))?;
    let dims: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(format!("shape entry {s:?} is not a size")))
        })
        .collect::<Result<_>>()?;
    let (n, d) = match dims[..] {
        [n] => (n, 1),
        [n, d] => (n, d),
        _ => {
            return Err(bad(format!(
                "array has shape ({shape_text}); expected one or two dimensions"
            )));
        }
    };
    if d == 0 {
        return Err(bad(
            "array has zero columns; expected vectors of dimension >= 1".into(),
        ));
    }
    Ok(Header {
        descr,
        n,
        d,
        data_offset: pre_len + len,
    })
}

/// The text after `'key':` in a Python dict literal.
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    for q in ['\'', '"'] {
        let pat = format!("{q}{key}{q}");
        if let Some(i) = text.find(&pat) {
            let rest = text[i + pat.len()..].trim_start();
            return rest.strip_prefix(':');
        }
    }
    None
}

fn element_bytes(descr: &str) -> Option<usize> {
    Some(match descr {
        "<f4" => 4,
        "<i8" => 8,
        "<i4" => 4,
        "|u1" => 1,
        _ => None?,
    })
}

fn unsupported(path: &Path, descr: &str) -> Error {
    Error::format(
        what(path),
        format!(
            "element type {descr:?}; expected '<f4' (float32), '<i8' (int64), '<i4' (int32) or '|u1' (uint8)"
        ),
    )
}

fn read_body<T: NpyElement>(
    path: &Path,
    r: &mut impl Read,
    h: &Header,
    file_len: u64,
) -> Result<Dataset<T>> {
    let count = h.n.checked_mul(h.d).filter(|c| {
        (*c as u64)
            .checked_mul(size_of::<T>() as u64)
            .is_some_and(|b| b + h.data_offset as u64 == file_len)
    });
    let count = count.ok_or_else(|| {
        Error::format(
            what(path),
            format!(
                "shape ({}, {}) of {} needs {} data bytes after the header, the file has {}",
                h.n,
                h.d,
                h.descr,
                (h.n as u128) * (h.d as u128) * size_of::<T>() as u128,
                file_len.saturating_sub(h.data_offset as u64)
            ),
        )
    })?;
    let mut data = vec![T::zeroed(); count];
    r.read_exact(bytemuck::cast_slice_mut(&mut data))
        .map_err(|e| Error::io(path, e))?;
    Ok(Dataset { d: h.d, data })
}

/// Reads an `.npy` file into memory.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("ids.npy");
/// use fathom_io::{NpyArray, read_npy, write_npy};
/// write_npy(&path, &[1i64, 2, 3], 1).unwrap();
/// let NpyArray::I64(ids) = read_npy(&path).unwrap() else { panic!() };
/// assert_eq!(ids.data, vec![1, 2, 3]);
/// ```
pub fn read_npy(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let file = crate::input::open(path, "an npy file")?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let h = parse_header(path, &mut r)?;
    Ok(match h.descr.as_str() {
        "<f4" => NpyArray::F32(read_body(path, &mut r, &h, len)?),
        "<i8" => NpyArray::I64(read_body(path, &mut r, &h, len)?),
        "<i4" => NpyArray::I32(read_body(path, &mut r, &h, len)?),
        "|u1" => NpyArray::U8(read_body(path, &mut r, &h, len)?),
        other => return Err(unsupported(path, other)),
    })
}

/// Writes rows of dimension `d` as a two-dimensional `.npy` array (version 1.0, header
/// padded to 64 bytes so the data is aligned), atomically. `d = 1` writes a column.
pub fn write_npy<T: NpyElement>(path: impl AsRef<Path>, data: &[T], d: usize) -> Result<()> {
    if d == 0 || !data.len().is_multiple_of(d) {
        return Err(Error::DimensionMismatch {
            what: "data".into(),
            got: data.len(),
            expected: format!("a multiple of the dimension d = {d} (d >= 1)"),
        });
    }
    let n = data.len() / d;
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({n}, {d}), }}",
        T::DESCR
    );
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    write_atomically(path.as_ref(), |w| {
        use std::io::Write;
        w.write_all(MAGIC)?;
        w.write_all(&[1, 0])?;
        w.write_all(&(dict.len() as u16).to_le_bytes())?;
        w.write_all(dict.as_bytes())?;
        write_pod(w, data)
    })
}

/// An `.npy` file mapped into memory: the array is used in place, without copying.
///
/// As with every memory-mapped file, the file must not be truncated or rewritten by
/// another process while mapped.
pub struct NpyMmap {
    map: Mmap,
    descr: String,
    n: usize,
    d: usize,
    offset: usize,
}

impl NpyMmap {
    /// Maps and checks the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = crate::input::open(path, "an npy file")?;
        // SAFETY: read-only map of a file opened read-only; the bytes are validated below
        // and only ever reinterpreted as plain numbers; truncation by another process is
        // the documented hazard of the type.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let h = parse_header(path, &mut &map[..])?;
        let eb = element_bytes(&h.descr).ok_or_else(|| unsupported(path, &h.descr))?;
        let need = h.n.checked_mul(h.d).and_then(|c| c.checked_mul(eb));
        if need.is_none_or(|b| b + h.data_offset != map.len()) {
            return Err(Error::format(
                what(path),
                format!(
                    "shape ({}, {}) of {} does not match the {} data bytes in the file",
                    h.n,
                    h.d,
                    h.descr,
                    map.len().saturating_sub(h.data_offset)
                ),
            ));
        }
        if !(map.as_ptr() as usize + h.data_offset).is_multiple_of(eb) {
            return Err(Error::format(
                what(path),
                format!(
                    "data starts at byte {}, not aligned for {}",
                    h.data_offset, h.descr
                ),
            ));
        }
        Ok(NpyMmap {
            map,
            descr: h.descr,
            n: h.n,
            d: h.d,
            offset: h.data_offset,
        })
    }

    /// `(rows, columns)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.n, self.d)
    }

    /// numpy's `descr` of the elements (`"<f4"`, …).
    pub fn descr(&self) -> &str {
        &self.descr
    }

    /// The array as a slice of `T`, or an error naming both types when `T` is not the
    /// file's element type.
    pub fn as_slice<T: NpyElement>(&self) -> Result<&[T]> {
        if self.descr != T::DESCR {
            return Err(Error::invalid(format!(
                "the array holds {}, not {}",
                self.descr,
                T::DESCR
            )));
        }
        bytemuck::try_cast_slice(&self.map[self.offset..])
            .map_err(|e| Error::invalid(format!("cannot view the mapped array: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        let x: Vec<f32> = (0..30).map(|i| i as f32 / 3.0).collect();
        write_npy(&p, &x, 10).unwrap();
        assert_eq!(
            read_npy(&p).unwrap(),
            NpyArray::F32(Dataset {
                d: 10,
                data: x.clone()
            })
        );
        let m = NpyMmap::open(&p).unwrap();
        assert_eq!(m.shape(), (3, 10));
        assert_eq!(m.as_slice::<f32>().unwrap(), &x[..]);
        assert!(m.as_slice::<i64>().is_err());
        write_npy(&p, &[5i32, -6], 2).unwrap();
        assert_eq!(
            read_npy(&p).unwrap(),
            NpyArray::I32(Dataset {
                d: 2,
                data: vec![5, -6]
            })
        );
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!((bytes.len() - 8) % 64, 0, "header padded to 64 bytes");
    }

    /// A file as numpy writes it for `np.arange(3, dtype=np.int64)`.
    #[test]
    fn reads_numpy_written_1d() {
        let dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }";
        let mut b = MAGIC.to_vec();
        b.extend([1, 0]);
        let padded = format!("{dict:<117}\n");
        b.extend((padded.len() as u16).to_le_bytes());
        b.extend(padded.as_bytes());
        for v in [0i64, 1, 2] {
            b.extend(v.to_le_bytes());
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        std::fs::write(&p, &b).unwrap();
        assert_eq!(
            read_npy(&p).unwrap(),
            NpyArray::I64(Dataset {
                d: 1,
                data: vec![0, 1, 2]
            })
        );
        assert_eq!(
            NpyMmap::open(&p).unwrap().as_slice::<i64>().unwrap(),
            &[0, 1, 2]
        );
    }

    #[test]
    fn malformed_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npy");
        let header = |dict: &str| {
            let mut b = MAGIC.to_vec();
            b.extend([1, 0]);
            b.extend((dict.len() as u16).to_le_bytes());
            b.extend(dict.as_bytes());
            b
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"hello".to_vec(), "preamble"),
            (b"\x93NUMPZ\x01\x00\x00\x00".to_vec(), "magic"),
            (b"\x93NUMPY\x09\x00\x00\x00".to_vec(), "version 9"),
            (
                header("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }"),
                "\"<f8\"",
            ),
            (
                header("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1), }"),
                "Fortran",
            ),
            (
                header("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }"),
                "one or two",
            ),
            (
                header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }"),
                "data bytes",
            ),
            (
                header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 0), }"),
                "zero columns",
            ),
            (header("{'descr': '<f4', 'fortran_order': False}"), "shape"),
            (
                header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999, 99999999999), }",
                ),
                "data bytes",
            ),
        ];
        for (bytes, needle) in cases {
            std::fs::write(&p, &bytes).unwrap();
            let e = read_npy(&p).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
            assert!(NpyMmap::open(&p).is_err());
        }
        let mut truncated = header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }");
        truncated.truncate(20);
        std::fs::write(&p, &truncated).unwrap();
        assert!(read_npy(&p).is_err());
        assert!(write_npy(&p, &[1.0f32; 3], 2).is_err());
    }
}
