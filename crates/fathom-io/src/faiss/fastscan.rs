//! Faiss's packed layout of 4-bit PQ codes for fast-scan indexes (`IPfs` codes, `ilbl`
//! lists), converted to and from ordinary codes (`code_size` bytes per vector, sub-code
//! `s` in nibble `s % 2` of byte `s / 2`), so fathom's own block layout stays its own.
//!
//! Faiss stores vectors in blocks of `bbs` (a multiple of 32). Within a block, for each
//! pair of sub-quantizers and each group of 32 vectors, 32 bytes: bytes `j` and `16 + j`
//! hold the two sub-quantizers' codes of vectors `PERM[j]` (low nibble) and `PERM[j] + 16`
//! (high nibble).

/// Faiss's `perm0`: the vector whose code sits at byte `j` of a 16-byte group.
const PERM: [usize; 16] = [0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15];

/// Byte and nibble shift of sub-code `s` of vector `i` in Faiss's layout.
fn locate(i: usize, s: usize, nsq: usize, bbs: usize) -> (usize, u32) {
    let (block, r) = (i / bbs, i % bbs);
    let (group, k) = (r / 32, r % 32);
    let j = PERM.iter().position(|&p| p == k % 16).expect("k % 16 < 16");
    let at = block * bbs * nsq / 2 + (s / 2) * (bbs / 32) * 32 + group * 32 + (s % 2) * 16 + j;
    (at, if k >= 16 { 4 } else { 0 })
}

/// Bytes of Faiss's blocks for `n` vectors of `code_size`-byte codes.
pub(crate) fn packed_len(n: usize, code_size: usize, bbs: usize) -> usize {
    n.div_ceil(bbs) * bbs * code_size
}

/// Ordinary codes (`n × code_size` bytes) from Faiss's blocks.
pub(crate) fn unpack(blocks: &[u8], n: usize, code_size: usize, bbs: usize) -> Vec<u8> {
    let nsq = 2 * code_size;
    let mut codes = vec![0u8; n * code_size];
    for i in 0..n {
        for s in 0..nsq {
            let (at, shift) = locate(i, s, nsq, bbs);
            let c = (blocks[at] >> shift) & 15;
            codes[i * code_size + s / 2] |= c << (4 * (s % 2));
        }
    }
    codes
}

/// Faiss's blocks of `bbs` from ordinary codes (`n × code_size` bytes).
pub(crate) fn pack(codes: &[u8], code_size: usize, bbs: usize) -> Vec<u8> {
    let n = codes.len() / code_size.max(1);
    let nsq = 2 * code_size;
    let mut blocks = vec![0u8; packed_len(n, code_size, bbs)];
    for i in 0..n {
        for s in 0..nsq {
            let c = (codes[i * code_size + s / 2] >> (4 * (s % 2))) & 15;
            let (at, shift) = locate(i, s, nsq, bbs);
            blocks[at] |= c << shift;
        }
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
                let blocks = pack(&codes, cs, bbs);
                assert_eq!(blocks.len(), packed_len(n, cs, bbs));
                assert_eq!(unpack(&blocks, n, cs, bbs), codes);
            }
        }
        // Vector 1's first sub-code sits at byte 2 of the block (PERM[2] = 1), vector 17's
        // in its high nibble.
        let mut codes = vec![0u8; 32];
        codes[1] = 0x5;
        codes[17] = 0x9;
        assert_eq!(pack(&codes, 1, 32)[2], 0x95);
    }
}
