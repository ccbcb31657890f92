//! The inner step of a depthwise convolution laid out so that every tap is one long
//! contiguous multiply-add: the output plane is computed "wide" (rows as long as the
//! padded input's, the extra columns thrown away), so tap `(i, j)` reads the input at one
//! fixed offset. Compiled per SIMD level (the loop vectorises by itself once it may use
//! wide registers); short rows (7 or 14 outputs) no longer leave scalar tails per row.

use crate::multiversion::multiversion;

multiversion! {
    /// `acc[n] += taps[t] · src[offsets[t] + n]` for every tap `t` and every `n` of `acc`.
    ///
    /// # Panics
    /// When `taps` and `offsets` differ in length or a tap reads past `src`'s end.
    ///
    /// ```
    /// let mut acc = [1.0f32, 1.0];
    /// fathom_kernels::conv::accumulate_taps(&mut acc, &[1.0, 2.0, 3.0], &[10.0, 1.0], &[0, 1]);
    /// assert_eq!(acc, [1.0 + 10.0 + 2.0, 1.0 + 20.0 + 3.0]);
    /// ```
    pub fn accumulate_taps / accumulate_taps_at(acc: &mut [f32], src: &[f32], taps: &[f32], offsets: &[usize]) {
        assert_eq!(taps.len(), offsets.len(), "one offset per tap");
        let n = acc.len();
        for (&t, &off) in taps.iter().zip(offsets) {
            let s = &src[off..off + n];
            for (a, &x) in acc.iter_mut().zip(s) {
                *a += t * x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimdLevel;

    #[test]
    fn every_level_equals_the_scalar_twin() {
        let src: Vec<f32> = (0..500)
            .map(|i| ((i * 37) % 101) as f32 * 0.1 - 5.0)
            .collect();
        let taps = [0.5f32, -1.25, 2.0, 0.125, -0.75];
        let offsets = [0usize, 1, 13, 27, 101];
        for n in [0, 1, 7, 15, 16, 17, 77, 300, 399] {
            let start: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
            let mut want = start.clone();
            accumulate_taps_at(SimdLevel::Scalar, &mut want, &src, &taps, &offsets);
            for level in SimdLevel::supported() {
                let mut got = start.clone();
                accumulate_taps_at(level, &mut got, &src, &taps, &offsets);
                // Same operations in the same order per element: bit-identical.
                assert!(
                    got.iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{level:?}, n = {n}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "range end index")]
    fn reading_past_the_input_panics() {
        let mut acc = [0.0f32; 4];
        accumulate_taps(&mut acc, &[0.0; 5], &[1.0], &[2]);
    }
}
