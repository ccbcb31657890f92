//! Writing Faiss's raw little-endian fields.

use std::io::Write;

use fathom_core::{Error, Result};

/// A destination for the fields of a Faiss file.
pub(crate) struct Sink<'w> {
    w: &'w mut dyn Write,
}

impl<'w> Sink<'w> {
    pub(crate) fn new(w: &'w mut dyn Write) -> Self {
        Sink { w }
    }
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.w
            .write_all(b)
            .map_err(|source| Error::Io { path: None, source })
    }
    pub(crate) fn fourcc(&mut self, f: &[u8; 4]) -> Result<()> {
        self.put(f)
    }
    pub(crate) fn u8(&mut self, v: u8) -> Result<()> {
        self.put(&[v])
    }
    pub(crate) fn bool(&mut self, v: bool) -> Result<()> {
        self.u8(v as u8)
    }
    pub(crate) fn i32(&mut self, v: i32) -> Result<()> {
        self.put(&v.to_le_bytes())
    }
    pub(crate) fn i64(&mut self, v: i64) -> Result<()> {
        self.put(&v.to_le_bytes())
    }
    pub(crate) fn u64(&mut self, v: u64) -> Result<()> {
        self.put(&v.to_le_bytes())
    }
    pub(crate) fn usize(&mut self, v: usize) -> Result<()> {
        self.u64(v as u64)
    }
    pub(crate) fn f32(&mut self, v: f32) -> Result<()> {
        self.put(&v.to_le_bytes())
    }
    /// Raw bytes with no length prefix.
    pub(crate) fn raw<T: bytemuck::Pod>(&mut self, v: &[T]) -> Result<()> {
        self.put(bytemuck::cast_slice(v))
    }
    /// A `vec<T>`: element count, then the elements.
    pub(crate) fn vec<T: bytemuck::Pod>(&mut self, v: &[T]) -> Result<()> {
        self.usize(v.len())?;
        self.raw(v)
    }
}
