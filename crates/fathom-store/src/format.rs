//! The file layout: two header slots, then segments of rows.
//!
//! ```text
//! 0     header slot 0 (HEADER_SLOT bytes)
//! 2048  header slot 1
//! 4096  segment 0: vectors (cap × dim f32) | norms (cap f32) | tombstones (cap bits) | pad
//!       segment 1 …
//! ```
//! Segments double in capacity (1024, 2048, …) up to a cap of about 256 MiB of vectors,
//! then repeat that size: a store grows by appending a segment, never by moving data, and
//! wastes at most the unfilled part of its last segment (the file is sparse there).
//!
//! A header is written to the slot its sequence number picks (`seq % 2`), so the slot
//! being overwritten is never the one a crash would fall back on; on open the valid
//! slot (magic and checksum) with the higher sequence number wins.

use fathom_core::{Error, Result};

/// Identifies a store file.
pub const MAGIC: [u8; 8] = *b"FTHMSTOR";
/// The format version this build writes; newer files are refused.
pub const VERSION: u32 = 1;
/// Bytes reserved for each of the two header slots.
pub const HEADER_SLOT: usize = 2048;
/// Bytes before the first segment.
pub const DATA_START: u64 = 2 * HEADER_SLOT as u64;
/// Capacity of the first segment.
const FIRST_SEGMENT_ROWS: u64 = 1024;
/// Target upper size of one segment's vectors.
const MAX_SEGMENT_VECTOR_BYTES: u64 = 256 << 20;
/// Segment boundaries are page-aligned, so every region is f32-aligned in the mapping.
const ALIGN: u64 = 4096;

/// The fields of one header slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Vector dimension.
    pub dim: u32,
    /// Reserved; 0 in version 1.
    pub flags: u32,
    /// Rows committed (acknowledged), deleted ones included.
    pub count: u64,
    /// Incremented by every header write; picks the slot.
    pub seq: u64,
}

/// Bytes of an encoded header (magic, version, flags, dim, count, seq, checksum).
const ENCODED: usize = 8 + 4 + 4 + 4 + 4 + 8 + 8 + 8;

/// FNV-1a, 64 bits: enough to tell a torn or foreign header from a valid one.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Header {
    /// The slot this header is written to.
    pub fn slot(&self) -> usize {
        (self.seq % 2) as usize
    }

    /// The encoded slot contents.
    pub fn encode(&self) -> [u8; ENCODED] {
        let mut b = [0u8; ENCODED];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..20].copy_from_slice(&self.dim.to_le_bytes());
        // 20..24 reserved (zero).
        b[24..32].copy_from_slice(&self.count.to_le_bytes());
        b[32..40].copy_from_slice(&self.seq.to_le_bytes());
        let sum = checksum(&b[..40]);
        b[40..48].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Decodes one slot: `Ok(None)` for a slot that is not a valid header (never
    /// written, torn, corrupt), an error for a valid header of a newer version.
    fn decode(b: &[u8]) -> Result<Option<Header>> {
        if b.len() < ENCODED || b[..8] != MAGIC {
            return Ok(None);
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if u64_at(40) != checksum(&b[..40]) {
            return Ok(None);
        }
        let version = u32_at(8);
        if version > VERSION {
            return Err(Error::Format {
                what: "vector store header".into(),
                detail: format!(
                    "format version {version} is newer than this build reads (up to {VERSION}); \
                     upgrade fathom"
                ),
            });
        }
        Ok(Some(Header {
            flags: u32_at(12),
            dim: u32_at(16),
            count: u64_at(24),
            seq: u64_at(32),
        }))
    }

    /// The current header of a file whose first [`DATA_START`] bytes are `bytes`.
    pub fn read(bytes: &[u8]) -> Result<Header> {
        let not_a_store = |detail: &str| Error::Format {
            what: "vector store header".into(),
            detail: detail.into(),
        };
        if bytes.len() < DATA_START as usize {
            return Err(not_a_store(&format!(
                "the file has {} bytes, fewer than the {DATA_START}-byte header",
                bytes.len()
            )));
        }
        let a = Header::decode(&bytes[..HEADER_SLOT])?;
        let b = Header::decode(&bytes[HEADER_SLOT..2 * HEADER_SLOT])?;
        let h = match (a, b) {
            (Some(a), Some(b)) => {
                if a.seq >= b.seq {
                    a
                } else {
                    b
                }
            }
            (Some(h), None) | (None, Some(h)) => h,
            (None, None) => {
                return Err(not_a_store(
                    "no valid header (wrong magic or checksum): not a fathom vector store, or corrupt",
                ));
            }
        };
        if h.dim == 0 {
            return Err(not_a_store("dimension 0"));
        }
        if h.flags != 0 {
            return Err(not_a_store(&format!(
                "unknown flags {:#x} (written by a newer fathom?)",
                h.flags
            )));
        }
        Ok(h)
    }
}

/// Where one segment's regions lie in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First row id in the segment.
    pub first_row: u64,
    /// Rows the segment holds.
    pub capacity: u64,
    /// Byte offset of the vectors (`capacity × dim` f32).
    pub vectors: u64,
    /// Byte offset of the norms (`capacity` f32).
    pub norms: u64,
    /// Byte offset of the tombstone bitmap (`capacity / 8` bytes).
    pub tombstones: u64,
    /// Byte offset just past the segment.
    pub end: u64,
}

/// The segment geometry of a store of dimension `dim`.
#[derive(Debug, Clone)]
pub struct Layout {
    dim: u64,
    max_rows: u64,
    segments: Vec<Segment>,
}

impl Layout {
    /// The geometry for `dim`.
    pub fn new(dim: usize) -> Self {
        let dim = dim as u64;
        // The largest power of two of rows whose vectors fit the target, at least the first
        // segment's size.
        let mut max_rows = FIRST_SEGMENT_ROWS;
        while max_rows * 2 * dim * 4 <= MAX_SEGMENT_VECTOR_BYTES {
            max_rows *= 2;
        }
        Layout {
            dim,
            max_rows,
            segments: Vec::new(),
        }
    }

    fn push_segment(&mut self) {
        let (first_row, start, prev_cap) = match self.segments.last() {
            Some(s) => (s.first_row + s.capacity, s.end, s.capacity),
            None => (0, DATA_START, 0),
        };
        let capacity = if prev_cap == 0 {
            FIRST_SEGMENT_ROWS
        } else {
            (prev_cap * 2).min(self.max_rows)
        };
        let vectors = start;
        let norms = vectors + capacity * self.dim * 4;
        let tombstones = norms + capacity * 4;
        let end = (tombstones + capacity / 8).next_multiple_of(ALIGN);
        self.segments.push(Segment {
            first_row,
            capacity,
            vectors,
            norms,
            tombstones,
            end,
        });
    }

    /// Extends the geometry until it holds `rows` rows; returns the file length needed.
    pub fn reserve(&mut self, rows: u64) -> u64 {
        while self.capacity() < rows {
            self.push_segment();
        }
        self.bytes_for(rows)
    }

    /// Rows the known segments hold.
    pub fn capacity(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.first_row + s.capacity)
    }

    /// File length needed for the segments that hold `rows` rows (call
    /// [`Layout::reserve`] first).
    pub fn bytes_for(&self, rows: u64) -> u64 {
        self.segments
            .iter()
            .find(|s| s.first_row + s.capacity >= rows)
            .map_or(DATA_START, |s| s.end)
    }

    /// The segments, in row order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The segment holding `row` and the row's index inside it.
    pub fn locate(&self, row: u64) -> (&Segment, usize) {
        let i = self
            .segments
            .partition_point(|s| s.first_row + s.capacity <= row);
        let s = &self.segments[i];
        (s, (row - s.first_row) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_slot_choice() {
        let h = Header {
            dim: 7,
            flags: 0,
            count: 123,
            seq: 5,
        };
        let mut file = vec![0u8; DATA_START as usize];
        let old = Header {
            seq: 4,
            count: 100,
            ..h
        };
        file[old.slot() * HEADER_SLOT..][..ENCODED].copy_from_slice(&old.encode());
        assert_eq!(Header::read(&file).unwrap(), old);
        file[h.slot() * HEADER_SLOT..][..ENCODED].copy_from_slice(&h.encode());
        assert_eq!(Header::read(&file).unwrap(), h);
        // A torn newer header falls back on the older one.
        file[h.slot() * HEADER_SLOT + 30] ^= 0xff;
        assert_eq!(Header::read(&file).unwrap(), old);
    }

    #[test]
    fn foreign_and_newer_files_are_refused() {
        assert!(Header::read(&[0u8; 10]).is_err());
        assert!(Header::read(&vec![0u8; DATA_START as usize]).is_err());
        let mut b = Header {
            dim: 3,
            flags: 0,
            count: 0,
            seq: 0,
        }
        .encode();
        b[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
        let sum = checksum(&b[..40]);
        b[40..48].copy_from_slice(&sum.to_le_bytes());
        let mut file = vec![0u8; DATA_START as usize];
        file[..ENCODED].copy_from_slice(&b);
        let e = Header::read(&file).unwrap_err().to_string();
        assert!(e.contains("newer"), "{e}");
    }

    #[test]
    fn segments_tile_the_rows() {
        for dim in [1usize, 3, 512, 100_000] {
            let mut l = Layout::new(dim);
            let len = l.reserve(5_000_000);
            assert!(l.capacity() >= 5_000_000);
            assert_eq!(len, l.segments().last().unwrap().end);
            let mut next = 0;
            for s in l.segments() {
                assert_eq!(s.first_row, next);
                assert_eq!(s.vectors % 4096, 0);
                assert!(s.capacity.is_multiple_of(8));
                next += s.capacity;
            }
            for row in [0u64, 1023, 1024, 3071, 3072, 4_999_999] {
                let (s, i) = l.locate(row);
                assert_eq!(s.first_row + i as u64, row);
                assert!((i as u64) < s.capacity);
            }
            assert_eq!(l.bytes_for(1), l.segments()[0].end);
        }
    }
}
