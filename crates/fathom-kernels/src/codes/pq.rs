//! Product-quantizer kernels: the distance table of one sub-vector against a sub-space's
//! centroids, and the sum of table entries that gives a code's distance (ADC).
//!
//! Centroids are taken *transposed* per sub-space (`dsub × ksub`, centroid `j`'s
//! coordinate `t` at `t * ksub + j`): the table is then `dsub` passes over contiguous
//! rows of `ksub` floats, which vectorise across centroids with no horizontal sums —
//! what makes a table for 8-dimensional sub-vectors cheap.

use crate::multiversion::multiversion;

multiversion! {
    /// `out[j] = ‖x − c_j‖²` for the `ksub = out.len()` centroids of one sub-space, given
    /// transposed (`ct.len() == x.len() * ksub`).
    pub fn l2_table / l2_table_at(x: &[f32], ct: &[f32], out: &mut [f32]) {
        let ksub = out.len();
        assert_eq!(ct.len(), x.len() * ksub, "transposed centroids of the wrong size");
        out.fill(0.0);
        for (&xt, row) in x.iter().zip(ct.chunks_exact(ksub.max(1))) {
            for (o, &c) in out.iter_mut().zip(row) {
                let diff = xt - c;
                *o += diff * diff;
            }
        }
    }
}

multiversion! {
    /// `out[j] = ⟨x, c_j⟩` for the `ksub = out.len()` centroids of one sub-space, given
    /// transposed (`ct.len() == x.len() * ksub`).
    pub fn ip_table / ip_table_at(x: &[f32], ct: &[f32], out: &mut [f32]) {
        let ksub = out.len();
        assert_eq!(ct.len(), x.len() * ksub, "transposed centroids of the wrong size");
        out.fill(0.0);
        for (&xt, row) in x.iter().zip(ct.chunks_exact(ksub.max(1))) {
            for (o, &c) in out.iter_mut().zip(row) {
                *o += xt * c;
            }
        }
    }
}

/// Index of the smallest entry (the first one on ties; 0 for an empty slice).
pub fn argmin(v: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::INFINITY;
    for (i, &x) in v.iter().enumerate() {
        if x < best_v {
            best_v = x;
            best = i;
        }
    }
    best
}

multiversion! {
    /// ADC for 8-bit codes: `out[i] = Σ_m table[m·256 + codes[i·M + m]]` with
    /// `M = table.len() / 256` bytes per code.
    pub fn adc_u8 / adc_u8_at(table: &[f32], codes: &[u8], out: &mut [f32]) {
        let m = table.len() / 256;
        assert_eq!(table.len(), m * 256, "table is not M × 256");
        assert_eq!(codes.len(), out.len() * m, "codes and output sizes disagree");
        if m == 0 {
            out.fill(0.0);
            return;
        }
        // Four codes at a time: four independent dependency chains of loads and adds.
        let mut o4 = out.chunks_exact_mut(4);
        let mut c4 = codes.chunks_exact(4 * m);
        for (o, c) in (&mut o4).zip(&mut c4) {
            let (c0, r) = c.split_at(m);
            let (c1, r) = r.split_at(m);
            let (c2, c3) = r.split_at(m);
            let (mut s0, mut s1, mut s2, mut s3) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
            for (j, t) in table.chunks_exact(256).enumerate() {
                s0 += t[c0[j] as usize];
                s1 += t[c1[j] as usize];
                s2 += t[c2[j] as usize];
                s3 += t[c3[j] as usize];
            }
            o[0] = s0;
            o[1] = s1;
            o[2] = s2;
            o[3] = s3;
        }
        for (o, c) in o4.into_remainder().iter_mut().zip(c4.remainder().chunks_exact(m)) {
            let mut s = 0.0f32;
            for (t, &ci) in table.chunks_exact(256).zip(c) {
                s += t[ci as usize];
            }
            *o = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimdLevel;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn tables_match_the_definition_at_every_level() {
        for (dsub, ksub) in [(1, 1), (2, 16), (8, 256), (3, 37), (12, 64)] {
            let x = pseudo(dsub, 1);
            let c = pseudo(dsub * ksub, 2); // row-major ksub × dsub
            let mut ct = vec![0.0; dsub * ksub];
            for j in 0..ksub {
                for t in 0..dsub {
                    ct[t * ksub + j] = c[j * dsub + t];
                }
            }
            let l2: Vec<f32> = (0..ksub)
                .map(|j| crate::distance::scalar::l2_sqr(&x, &c[j * dsub..(j + 1) * dsub]))
                .collect();
            let ip: Vec<f32> = (0..ksub)
                .map(|j| crate::distance::scalar::inner_product(&x, &c[j * dsub..(j + 1) * dsub]))
                .collect();
            for level in SimdLevel::supported() {
                let mut out = vec![f32::NAN; ksub];
                l2_table_at(level, &x, &ct, &mut out);
                for (a, b) in out.iter().zip(&l2) {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{level:?}");
                }
                ip_table_at(level, &x, &ct, &mut out);
                for (a, b) in out.iter().zip(&ip) {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{level:?}");
                }
            }
        }
    }

    #[test]
    fn adc_sums_table_entries_at_every_level() {
        for m in [1usize, 3, 8, 16] {
            let table = pseudo(m * 256, 3);
            for n in [0usize, 1, 5, 9] {
                let codes: Vec<u8> = (0..n * m).map(|i| (i * 37 % 256) as u8).collect();
                let want: Vec<f32> = codes
                    .chunks_exact(m)
                    .map(|c| {
                        c.iter()
                            .enumerate()
                            .map(|(j, &x)| table[j * 256 + x as usize])
                            .sum()
                    })
                    .collect();
                for level in SimdLevel::supported() {
                    let mut out = vec![f32::NAN; n];
                    adc_u8_at(level, &table, &codes, &mut out);
                    assert_eq!(out, want, "{level:?}");
                }
            }
        }
        assert_eq!(argmin(&[3.0, 1.0, 1.0, 2.0]), 1);
    }
}
