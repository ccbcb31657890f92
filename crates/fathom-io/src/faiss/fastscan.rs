//! Faiss's packed layout of 4-bit codes for fast-scan indexes (`IPfs`, `Irfn` codes,
//! `ilbl` lists), converted to and from ordinary codes (`code_size` bytes per vector, sub-code
//! `s` in nibble `s % 2` of byte `s / 2`), so fathom's own block layout stays its own.
//!
//! Faiss stores vectors in blocks of `bbs` (a multiple of 32). Within a block, for each
//! pair of sub-quantizers and each group of 32 vectors, 32 bytes: bytes `j` and `16 + j`
//! hold the two sub-quantizers' codes of vectors `PERM[j]` (low nibble) and `PERM[j] + 16`
//! (high nibble).

/// Faiss's `perm0`: the vector whose code sits at byte `j` of a 16-byte group.
const PERM: [usize; 16] = [0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15];

/// Byte and nibble shift of sub-code `s` of vector `i` in Faiss's layout of
/// `code_size`-byte codes (a block of `bbs` codes takes `bbs · code_size` bytes).
fn locate(i: usize, s: usize, code_size: usize, bbs: usize) -> (usize, u32) {
    let (block, r) = (i / bbs, i % bbs);
    let (group, k) = (r / 32, r % 32);
    let j = PERM.iter().position(|&p| p == k % 16).expect("k % 16 < 16");
    let at = block * bbs * code_size + (s / 2) * (bbs / 32) * 32 + group * 32 + (s % 2) * 16 + j;
    (at, if k >= 16 { 4 } else { 0 })
}

/// Where the bytes of vector `i`'s code past its sub-codes sit (RaBitQ's factors): after
/// the block's sub-codes, one record per vector.
fn rest_at(i: usize, code_size: usize, nibbles: usize, bbs: usize) -> usize {
    let (block, r) = (i / bbs, i % bbs);
    block * bbs * code_size + bbs * nibbles + r * (code_size - nibbles)
}

/// Bytes of Faiss's blocks for `n` vectors of `code_size`-byte codes.
pub(crate) fn packed_len(n: usize, code_size: usize, bbs: usize) -> usize {
    n.div_ceil(bbs) * bbs * code_size
}

/// Ordinary codes (`n × code_size` bytes) from Faiss's blocks, where the first
/// `nibbles` bytes of each code are 4-bit sub-codes (all of a PQ code; the sign bits of
/// a RaBitQ code) and the rest is kept whole after the block's sub-codes.
pub(crate) fn unpack(
    blocks: &[u8],
    n: usize,
    code_size: usize,
    nibbles: usize,
    bbs: usize,
) -> Vec<u8> {
    let mut codes = vec![0u8; n * code_size];
    for (i, code) in codes.chunks_exact_mut(code_size.max(1)).enumerate().take(n) {
        for s in 0..2 * nibbles {
            let (at, shift) = locate(i, s, code_size, bbs);
            let c = (blocks[at] >> shift) & 15;
            code[s / 2] |= c << (4 * (s % 2));
        }
        let at = rest_at(i, code_size, nibbles, bbs);
        code[nibbles..].copy_from_slice(&blocks[at..at + code_size - nibbles]);
    }
    codes
}

/// Faiss's blocks of `bbs` from ordinary codes (`n × code_size` bytes; the layout of
/// [`unpack`]).
pub(crate) fn pack(codes: &[u8], code_size: usize, nibbles: usize, bbs: usize) -> Vec<u8> {
    let n = codes.len() / code_size.max(1);
    let mut blocks = vec![0u8; packed_len(n, code_size, bbs)];
    for (i, code) in codes.chunks_exact(code_size.max(1)).enumerate().take(n) {
        for s in 0..2 * nibbles {
            let c = (code[s / 2] >> (4 * (s % 2))) & 15;
            let (at, shift) = locate(i, s, code_size, bbs);
            blocks[at] |= c << shift;
        }
        let at = rest_at(i, code_size, nibbles, bbs);
        blocks[at..at + code_size - nibbles].copy_from_slice(&code[nibbles..]);
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_are_inverse_for_any_block_size() {
        for (n, cs) in [(1, 1), (31, 4), (32, 2), (70, 8), (100, 3)] {
            let codes: Vec<u8> = (0..n * cs).map(|i| (i * 37 % 256) as u8).collect();
            for bbs in [32, 64, 96] {
                for nibbles in [cs, cs / 2] {
                    let blocks = pack(&codes, cs, nibbles, bbs);
                    assert_eq!(blocks.len(), packed_len(n, cs, bbs));
                    assert_eq!(unpack(&blocks, n, cs, nibbles, bbs), codes);
                }
            }
        }
        // Vector 1's first sub-code sits at byte 2 of the block (PERM[2] = 1), vector 17's
        // in its high nibble.
        let mut codes = vec![0u8; 32];
        codes[1] = 0x5;
        codes[17] = 0x9;
        assert_eq!(pack(&codes, 1, 1, 32)[2], 0x95);
    }
}
