//! Codes of `nbits`-bit integers packed LSB-first into bytes, exactly as Faiss's
//! `PQEncoderGeneric` / `PQDecoderGeneric` (and, for 8 and 16 bits, `PQEncoder8` /
//! `PQEncoder16` on a little-endian machine): value `i` occupies bits
//! `i·nbits .. (i+1)·nbits` of the code read as one little-endian bit string.

/// Writes `values` (each below `2^nbits`, `1 ≤ nbits ≤ 24`) into `code`, which must hold
/// `(values.len() · nbits).div_ceil(8)` bytes; unused high bits of the last byte are zero.
pub fn pack(values: impl IntoIterator<Item = u32>, nbits: usize, code: &mut [u8]) {
    if nbits == 8 {
        for (c, v) in code.iter_mut().zip(values) {
            *c = v as u8;
        }
        return;
    }
    code.fill(0);
    let mut pos = 0usize;
    for v in values {
        let mut v = v as u64 & ((1u64 << nbits) - 1);
        let mut bit = pos;
        let mut left = nbits;
        while left > 0 {
            let byte = bit / 8;
            let off = bit % 8;
            let take = (8 - off).min(left);
            code[byte] |= ((v & ((1 << take) - 1)) << off) as u8;
            v >>= take;
            bit += take;
            left -= take;
        }
        pos += nbits;
    }
}

/// Reads value `i` of an `nbits`-bit packed code.
#[inline]
pub fn get(code: &[u8], nbits: usize, i: usize) -> u32 {
    if nbits == 8 {
        return code[i] as u32;
    }
    let start = i * nbits;
    let first = start / 8;
    let last = (start + nbits - 1) / 8;
    let mut word = 0u64;
    for (k, &b) in code[first..=last].iter().enumerate() {
        word |= (b as u64) << (8 * k);
    }
    ((word >> (start % 8)) & ((1u64 << nbits) - 1)) as u32
}

/// Reads all `m` values of a code.
pub fn unpack(code: &[u8], nbits: usize, m: usize, out: &mut [u32]) {
    for (i, o) in out.iter_mut().enumerate().take(m) {
        *o = get(code, nbits, i);
    }
}

/// Successive fields of up to 64 bits read from an LSB-first bit string (Faiss's
/// `BitstringReader`: hash keys, list sizes and ids in binary hash-index records).
///
/// ```
/// use fathom_quant::bits::{BitReader, BitWriter};
/// let mut buf = [0u8; 3];
/// let mut w = BitWriter::new(&mut buf);
/// assert!(w.write(0b101, 3) && w.write(0x1abc, 13));
/// assert!(!w.write(0x1ff, 9)); // 9 bits do not fit in the 8 left
/// let mut r = BitReader::new(&buf);
/// assert_eq!((r.read(3), r.read(13), r.read(9)), (Some(0b101), Some(0x1abc), None));
/// ```
pub struct BitReader<'a> {
    code: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `code`.
    pub fn new(code: &'a [u8]) -> Self {
        BitReader { code, pos: 0 }
    }

    /// Steps over `nbits` bits (to the end at most).
    pub fn skip(&mut self, nbits: usize) {
        self.pos = (self.pos + nbits).min(self.code.len() * 8);
    }

    /// The next `nbits` bits (`nbits ≤ 64`) as an integer, or `None` when fewer remain.
    pub fn read(&mut self, nbits: usize) -> Option<u64> {
        if nbits > 64 || self.pos + nbits > self.code.len() * 8 {
            return None;
        }
        let mut v = 0u64;
        let mut done = 0;
        while done < nbits {
            let bit = self.pos + done;
            let off = bit % 8;
            let take = (8 - off).min(nbits - done);
            let field = (self.code[bit / 8] as u64 >> off) & ((1u64 << take) - 1);
            v |= field << done;
            done += take;
        }
        self.pos += nbits;
        Some(v)
    }
}

/// Successive fields of up to 64 bits written into a zeroed LSB-first bit string
/// (Faiss's `BitstringWriter`); the twin of [`BitReader`].
pub struct BitWriter<'a> {
    code: &'a mut [u8],
    pos: usize,
}

impl<'a> BitWriter<'a> {
    /// A writer at the first bit of `code` (which should be zeroed).
    pub fn new(code: &'a mut [u8]) -> Self {
        BitWriter { code, pos: 0 }
    }

    /// Appends the `nbits` low bits of `value`; false (nothing written) when they do not
    /// fit in what remains or `value` needs more than `nbits` bits.
    pub fn write(&mut self, value: u64, nbits: usize) -> bool {
        let fits_value = nbits >= 64 || value >> nbits == 0;
        if nbits > 64 || !fits_value || self.pos + nbits > self.code.len() * 8 {
            return false;
        }
        let mut done = 0;
        while done < nbits {
            let bit = self.pos + done;
            let off = bit % 8;
            let take = (8 - off).min(nbits - done);
            let field = (value >> done) & ((1u64 << take) - 1);
            self.code[bit / 8] |= (field << off) as u8;
            done += take;
        }
        self.pos += nbits;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(nbits in 1usize..=16, raw in proptest::collection::vec(any::<u32>(), 0..40)) {
            let vals: Vec<u32> = raw.iter().map(|v| v & ((1 << nbits) - 1)).collect();
            let mut code = vec![0xAAu8; (vals.len() * nbits).div_ceil(8)];
            pack(vals.iter().copied(), nbits, &mut code);
            let mut back = vec![0; vals.len()];
            unpack(&code, nbits, vals.len(), &mut back);
            prop_assert_eq!(back, vals);
        }
    }

    #[test]
    fn layout_is_lsb_first() {
        // Faiss PQ4x3 (M = 4, nbits = 3): values 1, 2, 3, 4 → bits 001 010 011 100
        // from the least significant bit: 0b1_011_010_001 = 0x0D1 → bytes D1 08.
        let mut code = [0u8; 2];
        pack([1, 2, 3, 4], 3, &mut code);
        assert_eq!(code, [0xD1, 0x08]);
        let mut code = [0u8; 4];
        pack([0x1234, 0xBEEF], 16, &mut code);
        assert_eq!(code, [0x34, 0x12, 0xEF, 0xBE]);
    }

    proptest! {
        #[test]
        fn bit_writer_and_reader_round_trip(fields in proptest::collection::vec((any::<u64>(), 0usize..=64), 0..20)) {
            let fields: Vec<(u64, usize)> = fields
                .into_iter()
                .map(|(v, n)| (if n == 64 { v } else { v & ((1u64 << n) - 1) }, n))
                .collect();
            let total: usize = fields.iter().map(|f| f.1).sum();
            let mut buf = vec![0u8; total.div_ceil(8)];
            let mut w = BitWriter::new(&mut buf);
            for &(v, n) in &fields {
                prop_assert!(w.write(v, n));
            }
            let mut r = BitReader::new(&buf);
            for &(v, n) in &fields {
                prop_assert_eq!(r.read(n), Some(v));
            }
        }
    }
}
