//! Product-quantizer kernels: the distance table of one sub-vector against a sub-space's
//! centroids, and the sum of table entries that gives a code's distance (ADC).
//!
//! Centroids are taken *transposed* per sub-space (`dsub × ksub`, centroid `j`'s
//! coordinate `t` at `t * ksub + j`): the table is then `dsub` passes over contiguous
//! rows of `ksub` floats, which vectorise across centroids with no horizontal sums —
//! what makes a table for 8-dimensional sub-vectors cheap.

use crate::multiversion::multiversion;

/// `out[j] = ‖x − c_j‖²` for the `ksub = out.len()` centroids of one sub-space, given
/// transposed (`ct.len() == x.len() * ksub`).
pub fn l2_table(x: &[f32], ct: &[f32], out: &mut [f32]) {
    l2_table_at(crate::simd_level(), x, ct, out)
}

/// [`l2_table`] at a given SIMD level (the scalar twin when the CPU lacks it).
pub fn l2_table_at(level: crate::SimdLevel, x: &[f32], ct: &[f32], out: &mut [f32]) {
    table_at::<true>(level, x, ct, out)
}

/// `out[j] = ⟨x, c_j⟩` for the `ksub = out.len()` centroids of one sub-space, given
/// transposed (`ct.len() == x.len() * ksub`).
pub fn ip_table(x: &[f32], ct: &[f32], out: &mut [f32]) {
    ip_table_at(crate::simd_level(), x, ct, out)
}

/// [`ip_table`] at a given SIMD level (the scalar twin when the CPU lacks it).
pub fn ip_table_at(level: crate::SimdLevel, x: &[f32], ct: &[f32], out: &mut [f32]) {
    table_at::<false>(level, x, ct, out)
}

fn table_at<const L2: bool>(level: crate::SimdLevel, x: &[f32], ct: &[f32], out: &mut [f32]) {
    let ksub = out.len();
    assert_eq!(
        ct.len(),
        x.len() * ksub,
        "transposed centroids of the wrong size"
    );
    #[cfg(target_arch = "x86_64")]
    if level == crate::SimdLevel::Avx512
        && crate::SimdLevel::Avx512.is_supported()
        && ksub.is_multiple_of(16)
    {
        // SAFETY: AVX-512 F support was checked just above.
        unsafe { x86::table_avx512::<L2>(x, ct, out) };
        return;
    }
    let _ = level;
    out.fill(0.0);
    for (&xt, row) in x.iter().zip(ct.chunks_exact(ksub.max(1))) {
        for (o, &c) in out.iter_mut().zip(row) {
            if L2 {
                let diff = xt - c;
                *o += diff * diff;
            } else {
                *o += xt * c;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The table in tiles of up to 128 entries held in eight registers while every
    /// coordinate is added in, so each multiply-add costs one load of `ct` and the table
    /// is stored once (instead of a load and a store of it per coordinate).
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn table_avx512<const L2: bool>(x: &[f32], ct: &[f32], out: &mut [f32]) {
        let ksub = out.len();
        let mut j0 = 0;
        while j0 + 128 <= ksub {
            tile_avx512::<L2, 8>(x, ct, ksub, j0, out);
            j0 += 128;
        }
        while j0 < ksub {
            tile_avx512::<L2, 1>(x, ct, ksub, j0, out);
            j0 += 16;
        }
    }

    /// Entries `j0 .. j0 + 16·R` of the table.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn tile_avx512<const L2: bool, const R: usize>(
        x: &[f32],
        ct: &[f32],
        ksub: usize,
        j0: usize,
        out: &mut [f32],
    ) {
        let mut acc = [_mm512_setzero_ps(); R];
        for (&xt, row) in x.iter().zip(ct.chunks_exact(ksub)) {
            let xv = _mm512_set1_ps(xt);
            let tile = &row[j0..j0 + 16 * R];
            for (r, a) in acc.iter_mut().enumerate() {
                // SAFETY: `tile` holds 16·R floats, so lanes 16r..16r+16 are readable.
                let cv = unsafe { _mm512_loadu_ps(tile.as_ptr().add(16 * r)) };
                *a = if L2 {
                    let diff = _mm512_sub_ps(xv, cv);
                    _mm512_fmadd_ps(diff, diff, *a)
                } else {
                    _mm512_fmadd_ps(xv, cv, *a)
                };
            }
        }
        let o = &mut out[j0..j0 + 16 * R];
        for (r, a) in acc.iter().enumerate() {
            // SAFETY: `o` holds 16·R floats; unaligned store of lanes 16r..16r+16.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr().add(16 * r), *a) };
        }
    }

    /// The first lane holding the minimum of `v` (the minimum is not NaN).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn first_min_lane(v: __m512) -> (f32, u32) {
        let best = _mm512_reduce_min_ps(v);
        let mask = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(v, _mm512_set1_ps(best));
        (best, mask.trailing_zeros())
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn assign_avx512(
        x: &[f32],
        ct: &[f32],
        ksub: usize,
        dsub: usize,
        out: &mut [u32],
        scratch: &mut [f32],
    ) {
        let sub = dsub * ksub;
        for (s, o) in out.iter_mut().enumerate() {
            let xs = &x[s * dsub..(s + 1) * dsub];
            let cs = &ct[s * sub..(s + 1) * sub];
            if ksub == 16 {
                // The whole table is one register.
                let mut acc = _mm512_setzero_ps();
                for (&xt, row) in xs.iter().zip(cs.chunks_exact(16)) {
                    // SAFETY: `row` is 16 readable f32; unaligned load.
                    let c = unsafe { _mm512_loadu_ps(row.as_ptr()) };
                    let diff = _mm512_sub_ps(_mm512_set1_ps(xt), c);
                    acc = _mm512_fmadd_ps(diff, diff, acc);
                }
                *o = first_min_lane(acc).1;
                continue;
            }
            let t = &mut scratch[..ksub];
            table_avx512::<true>(xs, cs, t);
            // Lane-wise minimum over the table, then the first position holding it.
            let mut best = _mm512_set1_ps(f32::INFINITY);
            for c in t.chunks_exact(16) {
                // SAFETY: `c` is 16 readable f32; unaligned load.
                best = _mm512_min_ps(best, unsafe { _mm512_loadu_ps(c.as_ptr()) });
            }
            let (bv, _) = first_min_lane(best);
            let target = _mm512_set1_ps(bv);
            *o = 0;
            for (i, c) in t.chunks_exact(16).enumerate() {
                // SAFETY: `c` is 16 readable f32; unaligned load.
                let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
                let mask = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(v, target);
                if mask != 0 {
                    *o = (i * 16) as u32 + mask.trailing_zeros();
                    break;
                }
            }
        }
    }
}

/// Index of the smallest entry (the first one on ties; 0 for an empty slice). The
/// minimum is found lane-wise (vectorisable, no data-dependent branches), then located.
pub fn argmin(v: &[f32]) -> usize {
    let (chunks, tail) = v.as_chunks::<16>();
    let mut lanes = [f32::INFINITY; 16];
    for c in chunks {
        for l in 0..16 {
            lanes[l] = if c[l] < lanes[l] { c[l] } else { lanes[l] };
        }
    }
    let mut best = lanes.iter().copied().fold(f32::INFINITY, f32::min);
    for &x in tail {
        best = best.min(x);
    }
    v.iter().position(|&x| x == best).unwrap_or(0)
}

/// Encodes one vector: for each of the `m = out.len()` sub-spaces, the index of the
/// centroid nearest (L2) to that slice of `x`, first index on ties. `ct` holds the `m`
/// sub-quantizers' transposed centroids one after the other (`dsub × ksub` each, as
/// [`l2_table`] takes them); `scratch` is at least `ksub` floats.
///
/// This is [`l2_table`] followed by [`argmin`] per sub-space, fused so that with AVX-512
/// a 16-centroid table never leaves its register.
pub fn assign_subspaces(x: &[f32], ct: &[f32], ksub: usize, out: &mut [u32], scratch: &mut [f32]) {
    assign_subspaces_at(crate::simd_level(), x, ct, ksub, out, scratch)
}

/// [`assign_subspaces`] at a given SIMD level (the scalar twin when the CPU lacks it).
pub fn assign_subspaces_at(
    level: crate::SimdLevel,
    x: &[f32],
    ct: &[f32],
    ksub: usize,
    out: &mut [u32],
    scratch: &mut [f32],
) {
    let m = out.len();
    let dsub = x.len().checked_div(m).unwrap_or(0);
    assert_eq!(x.len(), m * dsub, "x is not m sub-vectors");
    assert_eq!(ct.len(), m * dsub * ksub, "centroids of the wrong size");
    assert!(scratch.len() >= ksub, "scratch smaller than ksub");
    #[cfg(target_arch = "x86_64")]
    if level == crate::SimdLevel::Avx512
        && crate::SimdLevel::Avx512.is_supported()
        && ksub.is_multiple_of(16)
        && ksub > 0
    {
        // SAFETY: AVX-512 F support was checked just above.
        unsafe { x86::assign_avx512(x, ct, ksub, dsub, out, scratch) };
        return;
    }
    let _ = level;
    for (s, o) in out.iter_mut().enumerate() {
        let t = &mut scratch[..ksub];
        table_at::<true>(
            crate::SimdLevel::Scalar,
            &x[s * dsub..(s + 1) * dsub],
            &ct[s * dsub * ksub..(s + 1) * dsub * ksub],
            t,
        );
        *o = argmin(t) as u32;
    }
}

/// ADC for 8-bit codes: `out[i] = Σ_m table[m·256 + codes[i·M + m]]` with
/// `M = table.len() / 256` bytes per code.
///
/// Deliberately one build, not one per SIMD level: with AVX2 or AVX-512 enabled LLVM turns
/// the eight sums into a gather per sub-quantizer, which measured slower (204 vs 220 QPS
/// on PQ16, 1M codes) than scalar loads that the core issues in parallel.
pub fn adc_u8(table: &[f32], codes: &[u8], out: &mut [f32]) {
    let m = table.len() / 256;
    assert_eq!(table.len(), m * 256, "table is not M × 256");
    assert_eq!(
        codes.len(),
        out.len() * m,
        "codes and output sizes disagree"
    );
    if m == 0 {
        out.fill(0.0);
        return;
    }
    // Eight codes at a time: eight independent sums keep the adds from waiting on
    // each other's latency, and each sum still runs over m in order (Faiss's order).
    let mut o8 = out.chunks_exact_mut(8);
    let mut c8 = codes.chunks_exact(8 * m);
    // Fixed-size tables: a byte index needs no bounds check.
    let (tabs, _) = table.as_chunks::<256>();
    for (o, c) in (&mut o8).zip(&mut c8) {
        let rows: [&[u8]; 8] = std::array::from_fn(|l| &c[l * m..(l + 1) * m]);
        let mut s = [0.0f32; 8];
        for (j, t) in tabs.iter().enumerate() {
            for l in 0..8 {
                s[l] += t[rows[l][j] as usize];
            }
        }
        o.copy_from_slice(&s);
    }
    for (o, c) in o8
        .into_remainder()
        .iter_mut()
        .zip(c8.remainder().chunks_exact(m))
    {
        let mut s = 0.0f32;
        for (t, &ci) in table.chunks_exact(256).zip(c) {
            s += t[ci as usize];
        }
        *o = s;
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
                let mut out = vec![f32::NAN; n];
                adc_u8(&table, &codes, &mut out);
                assert_eq!(out, want);
            }
        }
        assert_eq!(argmin(&[3.0, 1.0, 1.0, 2.0]), 1);
    }

    #[test]
    fn assignment_is_table_then_argmin_at_every_level() {
        for (m, dsub, ksub) in [(4, 2, 16), (3, 4, 256), (2, 3, 32), (5, 1, 7), (2, 2, 16)] {
            let x = pseudo(m * dsub, 5);
            let mut ct = pseudo(m * dsub * ksub, 6);
            // Duplicate centroid columns make ties, which must go to the first index.
            for s in 0..m {
                for t in 0..dsub {
                    let row = (s * dsub + t) * ksub;
                    ct[row + ksub - 1] = ct[row + ksub / 2];
                }
            }
            let want: Vec<u32> = (0..m)
                .map(|s| {
                    let mut t = vec![0.0; ksub];
                    l2_table_at(
                        SimdLevel::Scalar,
                        &x[s * dsub..(s + 1) * dsub],
                        &ct[s * dsub * ksub..(s + 1) * dsub * ksub],
                        &mut t,
                    );
                    argmin(&t) as u32
                })
                .collect();
            for level in SimdLevel::supported() {
                let mut out = vec![u32::MAX; m];
                let mut scratch = vec![0.0; ksub];
                assign_subspaces_at(level, &x, &ct, ksub, &mut out, &mut scratch);
                assert_eq!(out, want, "{level:?} m={m} dsub={dsub} ksub={ksub}");
            }
        }
    }
}

/// One term of [`swap_delta`]: the change at column `j` (value `p = perm[j]`).
#[inline(always)]
fn swap_term(p: u32, pi: u32, pj: u32, a: f64, wa: f64, b: f64, wb: f64) -> f64 {
    let hi = (p ^ pi).count_ones() as f64;
    let hj = (p ^ pj).count_ones() as f64;
    // (a − hj)² − (a − hi)² = (hi − hj)(2a − hi − hj), and likewise for b.
    (hi - hj) * (wa * (2.0 * a - hi - hj) - wb * (2.0 * b - hi - hj))
}

multiversion! {
    /// Polysemous training's cost change when `perm[iw]` and `perm[jw]` swap, for the
    /// objective `Σ_ij w_ij (t_ij − popcount(perm_i ⊕ perm_j))²` with symmetric `t`, `w`:
    /// rows `iw` and `jw` of `t` and `w` are `t_iw`, `w_iw`, `t_jw`, `w_jw`. Only pairs
    /// with one end in `{iw, jw}` change, and each appears twice (row and column), so the
    /// change is twice a sum over one row — computed in O(n), vectorised.
    pub fn swap_delta / swap_delta_at(
        perm: &[u32],
        iw: usize,
        jw: usize,
        t_iw: &[f64],
        w_iw: &[f64],
        t_jw: &[f64],
        w_jw: &[f64],
    ) -> f64 {
        let n = perm.len();
        assert!(t_iw.len() == n && w_iw.len() == n && t_jw.len() == n && w_jw.len() == n);
        let (pi, pj) = (perm[iw], perm[jw]);
        let mut acc = [0.0f64; 8];
        let chunks = n / 8;
        for c in 0..chunks {
            for l in 0..8 {
                let j = c * 8 + l;
                acc[l] += swap_term(perm[j], pi, pj, t_iw[j], w_iw[j], t_jw[j], w_jw[j]);
            }
        }
        let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for j in chunks * 8..n {
            s += swap_term(perm[j], pi, pj, t_iw[j], w_iw[j], t_jw[j], w_jw[j]);
        }
        // The pairs inside {iw, jw} keep their Hamming distance: take them back out.
        for j in [iw, jw] {
            s -= swap_term(perm[j], pi, pj, t_iw[j], w_iw[j], t_jw[j], w_jw[j]);
        }
        2.0 * s
    }
}

#[cfg(test)]
mod swap_tests {
    use super::*;
    use crate::SimdLevel;

    #[test]
    fn swap_delta_is_the_cost_difference_at_every_level() {
        let n = 37;
        let t: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                ((i as f64 - j as f64).abs() * 0.3).min(5.0) + ((i + j) % 3) as f64 * 0.1
            })
            .collect();
        let w: Vec<f64> = t.iter().map(|x| (-x * 0.69).exp()).collect();
        let cost = |p: &[u32]| -> f64 {
            let mut c = 0.0;
            for i in 0..n {
                for j in 0..n {
                    let h = (p[i] ^ p[j]).count_ones() as f64;
                    c += w[i * n + j] * (t[i * n + j] - h).powi(2);
                }
            }
            c
        };
        let perm: Vec<u32> = (0..n as u32).map(|i| (i * 11) % 64).collect();
        for (iw, jw) in [(0, 1), (5, 30), (36, 2)] {
            let mut p2 = perm.clone();
            p2.swap(iw, jw);
            let want = cost(&p2) - cost(&perm);
            for level in SimdLevel::supported() {
                let got = swap_delta_at(
                    level,
                    &perm,
                    iw,
                    jw,
                    &t[iw * n..(iw + 1) * n],
                    &w[iw * n..(iw + 1) * n],
                    &t[jw * n..(jw + 1) * n],
                    &w[jw * n..(jw + 1) * n],
                );
                assert!(
                    (got - want).abs() < 1e-9 * want.abs().max(1.0),
                    "{level:?}: {got} vs {want}"
                );
            }
        }
    }
}
