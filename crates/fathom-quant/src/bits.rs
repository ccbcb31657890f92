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
}
