//! Bounds-checked reading of Faiss's raw little-endian fields from a byte buffer.
//!
//! Every count read from the file is checked against the bytes that remain before
//! anything is allocated, so a hostile count can cost at most the size of the file.

use fathom_core::{Error, Result};

/// The deepest nesting of index records accepted (Faiss ≥ 1.14 uses the same limit).
pub(crate) const MAX_DEPTH: usize = 50;
/// The largest dimension accepted (Faiss ≥ 1.14: 2^20).
pub(crate) const MAX_DIM: usize = 1 << 20;

/// A position in a Faiss file held in memory.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
    /// Every record type read, with its nesting depth and offset.
    pub(crate) records: Vec<super::Record>,
    /// The buffer as shared bytes when reading a memory-mapped file: inverted lists are
    /// then served from it rather than copied.
    pub(crate) shared: Option<fathom_invlists::SharedBytes>,
    /// The directory of the index file, where on-disk lists' data files are also looked
    /// for.
    pub(crate) base_dir: Option<std::path::PathBuf>,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            depth: 0,
            records: Vec::new(),
            shared: None,
            base_dir: None,
        }
    }

    /// Offset of the next byte from the start of the buffer.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The whole buffer being read.
    pub(crate) fn buffer(&self) -> &'a [u8] {
        self.buf
    }

    /// The next four bytes, without consuming them.
    pub(crate) fn peek_fourcc(&self) -> Option<[u8; 4]> {
        self.buf.get(self.pos..self.pos + 4)?.try_into().ok()
    }

    /// The next `u64`, without consuming it.
    pub(crate) fn peek_u64(&self) -> Option<u64> {
        let b = self.buf.get(self.pos..self.pos + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// An error at the current position.
    pub(crate) fn err(&self, detail: impl std::fmt::Display) -> Error {
        Error::format(
            "Faiss index file",
            format!("at byte {}: {detail}", self.pos),
        )
    }

    /// An error at byte `at`.
    pub(crate) fn err_at(&self, at: usize, detail: impl std::fmt::Display) -> Error {
        Error::format("Faiss index file", format!("at byte {at}: {detail}"))
    }

    /// Reads a nested record with `read`, one level deeper; past [`MAX_DEPTH`] levels an
    /// error. The depth is restored however `read` ends, so no caller pairs an enter with
    /// a leave.
    pub(crate) fn nested<T>(&mut self, read: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.depth >= MAX_DEPTH {
            return Err(self.err(format!("records are nested more than {MAX_DEPTH} deep")));
        }
        self.depth += 1;
        let r = read(self);
        self.depth -= 1;
        r
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "{what} needs {n} bytes but the file has {} left (truncated?)",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let b = self.bytes(N, what)?;
        Ok(b.try_into().expect("slice of N bytes"))
    }

    pub(crate) fn fourcc(&mut self) -> Result<[u8; 4]> {
        let offset = self.pos;
        let f = self.array("a record type (fourcc)")?;
        self.records.push(super::Record {
            depth: self.depth,
            fourcc: f,
            offset,
        });
        Ok(f)
    }
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn bool(&mut self, what: &str) -> Result<bool> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.err(format!("{what} is a bool stored as {b}; expected 0 or 1"))),
        }
    }
    pub(crate) fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    /// A non-negative `i32` no larger than `max`.
    pub(crate) fn i32_in(&mut self, what: &str, max: usize) -> Result<usize> {
        let v = self.i32(what)?;
        if v < 0 || v as usize > max {
            return Err(self.err(format!("{what} is {v}; expected 0..={max}")));
        }
        Ok(v as usize)
    }

    /// A `u64` no larger than `max`, as `usize`.
    pub(crate) fn u64_in(&mut self, what: &str, max: usize) -> Result<usize> {
        let v = self.u64(what)?;
        if v > max as u64 {
            return Err(self.err(format!("{what} is {v}; expected at most {max}")));
        }
        Ok(v as usize)
    }

    /// The element count of a `vec<T>` of `size`-byte elements, checked against the rest
    /// of the file.
    fn count(&mut self, size: usize, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        let fits = n
            .checked_mul(size as u64)
            .is_some_and(|b| b <= self.remaining() as u64);
        if !fits {
            return Err(self.err(format!(
                "{what} claims {n} elements of {size} bytes, more than the {} bytes left",
                self.remaining()
            )));
        }
        Ok(n as usize)
    }

    /// A `vec<T>` (u64 element count, then the elements).
    pub(crate) fn vec<T: bytemuck::Pod>(&mut self, what: &str) -> Result<Vec<T>> {
        let size = std::mem::size_of::<T>();
        let n = self.count(size, what)?;
        let raw = self.bytes(n * size, what)?;
        let mut v = vec![<T as bytemuck::Zeroable>::zeroed(); n];
        bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(raw);
        Ok(v)
    }

    /// A `vec<T>` whose length must be `expected`.
    pub(crate) fn vec_len<T: bytemuck::Pod>(
        &mut self,
        what: &str,
        expected: usize,
    ) -> Result<Vec<T>> {
        let at = self.pos;
        let v = self.vec::<T>(what)?;
        if v.len() != expected {
            self.pos = at;
            return Err(self.err(format!(
                "{what} has {} elements; expected {expected}",
                v.len()
            )));
        }
        Ok(v)
    }

    /// A `vec<u8>` of `expected` bytes, borrowed from the buffer, with its offset.
    pub(crate) fn byte_vec_len(
        &mut self,
        what: &str,
        expected: usize,
    ) -> Result<(&'a [u8], usize)> {
        let n = self.count(1, what)?;
        if n != expected {
            return Err(self.err(format!("{what} has {n} elements; expected {expected}")));
        }
        let at = self.pos;
        Ok((self.bytes(n, what)?, at))
    }

    /// The bytes of a `vec<T>` of `size`-byte elements, borrowed from the buffer.
    pub(crate) fn raw_vec(&mut self, what: &str, size: usize) -> Result<&'a [u8]> {
        let n = self.count(size, what)?;
        self.bytes(n * size, what)
    }
}
