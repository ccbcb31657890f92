//! Hamming distances between binary codes (bit strings stored as bytes).

use crate::multiversion::multiversion;

/// Number of differing bits between two codes of the same length; codes of different
/// lengths are an error.
///
/// ```
/// use fathom_kernels::codes::hamming::distance;
/// assert_eq!(distance(&[0b1011, 0xff], &[0b0001, 0x0f]).unwrap(), 6);
/// assert!(distance(&[1, 2], &[1]).is_err());
/// ```
pub fn distance(a: &[u8], b: &[u8]) -> fathom_core::Result<u32> {
    if a.len() != b.len() {
        return Err(fathom_core::Error::invalid(format!(
            "Hamming distance between codes of {} and {} bytes: codes must have one length",
            a.len(),
            b.len()
        )));
    }
    Ok(pair(a, b))
}

#[inline(always)]
fn pair(a: &[u8], b: &[u8]) -> u32 {
    let mut acc = 0u32;
    let (wa, ta) = a.as_chunks::<8>();
    let (wb, tb) = b.as_chunks::<8>();
    for (x, y) in wa.iter().zip(wb) {
        acc += (u64::from_le_bytes(*x) ^ u64::from_le_bytes(*y)).count_ones();
    }
    for (x, y) in ta.iter().zip(tb) {
        acc += (x ^ y).count_ones();
    }
    acc
}

multiversion! {
    /// Hamming distance from `query` to each code of `codes` (rows of `query.len()`
    /// bytes) into `out`, one per code. Like `zip`, it stops at the shorter of `out` and
    /// the whole codes in `codes` (callers pass `out.len() * query.len()` bytes).
    pub fn distances / distances_at(query: &[u8], codes: &[u8], out: &mut [u32]) {
        let cs = query.len();
        debug_assert_eq!(codes.len(), out.len() * cs, "codes and output sizes disagree");
        if cs == 0 {
            out.fill(0);
            return;
        }
        match cs {
            // The common LSH / binary sizes get a loop the compiler fully unrolls.
            8 => fixed::<8>(query, codes, out),
            16 => fixed::<16>(query, codes, out),
            32 => fixed::<32>(query, codes, out),
            64 => fixed::<64>(query, codes, out),
            _ => {
                for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
                    *o = pair(query, c);
                }
            }
        }
    }
}

#[inline(always)]
fn fixed<const N: usize>(query: &[u8], codes: &[u8], out: &mut [u32]) {
    let q: &[u8; N] = query.try_into().expect("query of N bytes");
    let (rows, _) = codes.as_chunks::<N>();
    for (c, o) in rows.iter().zip(out.iter_mut()) {
        *o = pair(q, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimdLevel;
    use proptest::prelude::*;

    fn naive(a: &[u8], b: &[u8]) -> u32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (0..8).filter(|i| (x ^ y) >> i & 1 == 1).count() as u32)
            .sum()
    }

    proptest! {
        #[test]
        fn every_level_matches_bit_counting(
            cs in 0usize..80,
            seed in proptest::collection::vec(any::<u8>(), 0..2000),
        ) {
            let n = seed.len().checked_div(cs).map_or(3, |v| v / 2);
            let q: Vec<u8> = seed.iter().copied().cycle().skip(7).take(cs).collect();
            let codes: Vec<u8> = seed.iter().copied().cycle().take(n * cs).collect();
            let want: Vec<u32> = (0..n).map(|i| naive(&q, &codes[i * cs..(i + 1) * cs])).collect();
            for level in SimdLevel::supported() {
                let mut out = vec![u32::MAX; n];
                distances_at(level, &q, &codes, &mut out);
                prop_assert_eq!(&out, &want, "level {:?}", level);
            }
        }
    }
}
