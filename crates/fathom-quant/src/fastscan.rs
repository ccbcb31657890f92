//! 4-bit product-quantizer codes laid out for the fast-scan kernel, and the 8-bit tables
//! it reads (see `fathom_kernels::codes::fastscan` for the layout).

use fathom_core::{Error, Result};
use fathom_kernels::codes::fastscan::{BLOCK, block_bytes};

/// Sub-quantizer slots in the packed layout for `m` sub-quantizers (`m` rounded up to even;
/// the extra slot has zero codes and a zero table).
pub fn packed_nsq(m: usize) -> usize {
    m.next_multiple_of(2)
}

/// Bytes holding `n` codes of `m` sub-quantizers (whole blocks of 32).
pub fn packed_len(n: usize, m: usize) -> usize {
    n.div_ceil(BLOCK) * block_bytes(packed_nsq(m))
}

/// Writes the `m` 4-bit indices of vector `i` into `packed`.
pub fn set_code(packed: &mut [u8], m: usize, i: usize, indices: &[u32]) {
    let nsq = packed_nsq(m);
    let base = (i / BLOCK) * block_bytes(nsq);
    let (j, high) = ((i % BLOCK) % 16, (i % BLOCK) >= 16);
    for s in 0..nsq {
        let v = indices.get(s).copied().unwrap_or(0) as u8 & 15;
        let byte = &mut packed[base + s * 16 + j];
        *byte = if high {
            (*byte & 0x0f) | (v << 4)
        } else {
            (*byte & 0xf0) | v
        };
    }
}

/// Reads the `m` 4-bit indices of vector `i` from `packed`.
pub fn get_code(packed: &[u8], m: usize, i: usize, out: &mut [u32]) {
    let nsq = packed_nsq(m);
    let base = (i / BLOCK) * block_bytes(nsq);
    let (j, high) = ((i % BLOCK) % 16, (i % BLOCK) >= 16);
    for (s, o) in out.iter_mut().enumerate().take(m) {
        let byte = packed[base + s * 16 + j];
        *o = if high { byte >> 4 } else { byte & 15 } as u32;
    }
}

/// 8-bit tables for the fast-scan kernel from float tables (`m × 16` per query, smaller
/// is better). Each sub-table is shifted to start at 0 and all share one scale, so that
/// `key ≈ bias + Σ lut / scale`. Returns the `packed_nsq(m) × 16` bytes, `scale` and
/// `bias`. A `table` other than `m × 16` floats or an `out` other than
/// `packed_nsq(m) × 16` bytes is an error.
pub fn quantize_lut(table: &[f32], m: usize, out: &mut [u8]) -> Result<(f32, f32)> {
    let nsq = packed_nsq(m);
    if table.len() != m * 16 || out.len() != nsq * 16 {
        return Err(Error::invalid(format!(
            "fast-scan tables for {m} sub-quantizers: {} floats in and {} bytes out \
             expected, got {} and {}",
            m * 16,
            nsq * 16,
            table.len(),
            out.len()
        )));
    }
    let mut bias = 0.0f32;
    let mut span = 0.0f32;
    let mut mins = [0.0f32; 256];
    let mins = &mut mins[..m.min(256)];
    for (s, t) in table.chunks_exact(16).enumerate().take(mins.len()) {
        // Lane-wise compares (NaN entries are skipped, as `f32::min` would) vectorize; a
        // fold over `f32::min` does not.
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in t {
            lo = if v < lo { v } else { lo };
            hi = if v > hi { v } else { hi };
        }
        mins[s] = lo;
        bias += lo;
        span = span.max(hi - lo);
    }
    let scale = if span > 0.0 { 255.0 / span } else { 1.0 };
    out.fill(0);
    for (s, t) in table.chunks_exact(16).enumerate() {
        for (o, &v) in out[s * 16..s * 16 + 16].iter_mut().zip(t) {
            // `v ≥ mins[s]`, so the argument is at least 0.5 and the float-to-int cast's
            // truncation is the rounding `floor(x + 0.5)`; it saturates at 255 (and maps
            // NaN to 0), which is the clamp. (`floor` is a libm call on baseline x86-64.)
            *o = ((v - mins[s]) * scale + 0.5) as u8;
        }
    }
    Ok((scale, bias))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_get_round_trip() {
        for m in [1usize, 2, 5, 8] {
            let n = 70;
            let mut packed = vec![0u8; packed_len(n, m)];
            let codes: Vec<Vec<u32>> = (0..n)
                .map(|i| (0..m).map(|s| ((i * 7 + s * 3) % 16) as u32).collect())
                .collect();
            for (i, c) in codes.iter().enumerate() {
                set_code(&mut packed, m, i, c);
            }
            for (i, c) in codes.iter().enumerate() {
                let mut back = vec![0; m];
                get_code(&packed, m, i, &mut back);
                assert_eq!(&back, c);
            }
        }
    }

    #[test]
    fn quantized_tables_approximate_sums() {
        let m = 3;
        let table: Vec<f32> = (0..m * 16)
            .map(|i| ((i * 13) % 29) as f32 * 0.5 + 1.0)
            .collect();
        let mut lut = vec![0u8; packed_nsq(m) * 16];
        let (scale, bias) = quantize_lut(&table, m, &mut lut).unwrap();
        let code = [3usize, 7, 15];
        let exact: f32 = code
            .iter()
            .enumerate()
            .map(|(s, &c)| table[s * 16 + c])
            .sum();
        let q: u32 = code
            .iter()
            .enumerate()
            .map(|(s, &c)| lut[s * 16 + c] as u32)
            .sum();
        let approx = bias + q as f32 / scale;
        assert!((approx - exact).abs() <= m as f32 * 0.5 / scale + 1e-4);
        assert!(lut[m * 16..].iter().all(|&v| v == 0));
    }
}
