//! Distances for every [`MetricType`]: one-to-one ([`distance`]), one-to-many
//! ([`distances_to`]) and many-to-many ([`pairwise_distances`]).

pub(crate) mod lanes;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

use fathom_core::{Error, MetricType, Result, check};
use rayon::prelude::*;

use crate::dispatch::{Kernels, SimdMetric, kernels};

pub(crate) fn simd_metric(metric: MetricType) -> Option<SimdMetric> {
    Some(match metric {
        MetricType::L2 => SimdMetric::L2,
        MetricType::InnerProduct => SimdMetric::Ip,
        MetricType::L1 => SimdMetric::L1,
        MetricType::Linf => SimdMetric::Linf,
        MetricType::Canberra => SimdMetric::Canberra,
        MetricType::BrayCurtis => SimdMetric::BrayCurtis,
        _ => None?,
    })
}

/// `out[j] = metric(q, base row j)` with the given kernel table; shapes are the caller's
/// responsibility (`base.len() == out.len() * q.len()`).
pub(crate) fn many_with(
    kern: &Kernels,
    metric: MetricType,
    q: &[f32],
    base: &[f32],
    out: &mut [f32],
) {
    match simd_metric(metric) {
        Some(m) => (kern.many[m as usize])(q, base, out),
        None => {
            let d = q.len().max(1);
            for (row, o) in base.chunks_exact(d).zip(out.iter_mut()) {
                *o = match metric {
                    MetricType::Lp(p) => scalar::lp(q, row, p),
                    _ => scalar::jensen_shannon(q, row),
                };
            }
        }
    }
}

/// The distance (or, for inner product, the similarity) between two vectors.
///
/// ```
/// use fathom_core::MetricType;
/// use fathom_kernels::distance;
/// let d = distance(MetricType::L2, &[0.0, 3.0], &[4.0, 0.0]).unwrap();
/// assert_eq!(d, 25.0); // squared, as Faiss
/// assert!(distance(MetricType::L2, &[1.0], &[1.0, 2.0]).is_err());
/// ```
pub fn distance(metric: MetricType, a: &[f32], b: &[f32]) -> Result<f32> {
    check::metric_ready(metric)?;
    if a.len() != b.len() {
        return Err(Error::DimensionMismatch {
            what: "second vector".into(),
            got: b.len(),
            expected: format!("the first vector's length {}", a.len()),
        });
    }
    let mut out = [0.0f32];
    many_with(kernels(), metric, a, b, &mut out);
    Ok(out[0])
}

/// One query against many vectors: `out[j] = metric(query, base row j)`, where `base`
/// holds `out.len()` rows of `query.len()` floats.
pub fn distances_to(
    metric: MetricType,
    query: &[f32],
    base: &[f32],
    out: &mut [f32],
) -> Result<()> {
    check::metric_ready(metric)?;
    let d = query.len();
    let n = check::vectors("base", base, d)?;
    if n != out.len() {
        return Err(Error::DimensionMismatch {
            what: "output".into(),
            got: out.len(),
            expected: format!("one slot per base vector ({n})"),
        });
    }
    many_with(kernels(), metric, query, base, out);
    Ok(())
}

type PairFn = fn(&[f32], &[f32]) -> f32;
type FourFn = fn(&[f32], [&[f32]; 4]) -> [f32; 4];

/// A distance kernel for one metric, chosen once (SIMD level and metric) so that graph
/// searches, which compare one query with scattered rows, pay the dispatch only once.
///
/// ```
/// use fathom_core::MetricType;
/// use fathom_kernels::PairKernel;
/// let k = PairKernel::new(MetricType::L2);
/// let rows = [[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 0.0]];
/// assert_eq!(k.distance(&[0.0, 0.0], &rows[2]), 4.0);
/// let four = k.distances4(&[0.0, 0.0], [&rows[0], &rows[1], &rows[2], &rows[3]]);
/// assert_eq!(four, [1.0, 1.0, 4.0, 0.0]);
/// ```
#[derive(Clone, Copy)]
pub struct PairKernel {
    metric: MetricType,
    simd: Option<(PairFn, FourFn)>,
}

impl std::fmt::Debug for PairKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairKernel")
            .field("metric", &self.metric)
            .finish()
    }
}

impl PairKernel {
    /// The kernel for `metric` at the process's SIMD level.
    pub fn new(metric: MetricType) -> Self {
        let kern = kernels();
        PairKernel {
            metric,
            simd: simd_metric(metric).map(|m| (kern.pair[m as usize], kern.four[m as usize])),
        }
    }

    /// The metric it computes.
    pub fn metric(&self) -> MetricType {
        self.metric
    }

    /// `metric(a, b)`; the vectors must have the same length (the shorter length is used
    /// otherwise).
    #[inline]
    pub fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        match self.simd {
            Some((pair, _)) => pair(a, b),
            None => {
                let n = a.len().min(b.len());
                let mut out = [0.0f32];
                many_with(kernels(), self.metric, &a[..n], &b[..n], &mut out);
                out[0]
            }
        }
    }

    /// `metric(q, rows[r])` for four rows at once (one pass over the query).
    #[inline]
    pub fn distances4(&self, q: &[f32], rows: [&[f32]; 4]) -> [f32; 4] {
        match self.simd {
            Some((_, four)) => four(q, rows),
            None => rows.map(|r| self.distance(q, r)),
        }
    }
}

/// Asks the CPU to start loading the cache line holding the start of `x`: a hint that
/// changes no result, used where the next rows to compare are known before the current
/// ones are done (graph traversal).
#[inline(always)]
pub fn prefetch<T>(x: &[T]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline, so `_mm_prefetch` is always available;
    // a prefetch never faults, and the pointer comes from a live slice.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(x.as_ptr().cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// [`prefetch`] for the first `lines` cache lines (64 bytes) of `x`: the start of a run
/// the caller reads next (an inverted list), which the hardware prefetcher cannot
/// foresee; once the run is being read, the hardware follows it.
#[inline]
pub fn prefetch_lines(x: &[u8], lines: usize) {
    let end = x.len().min(lines.saturating_mul(64));
    for off in (0..end).step_by(64) {
        prefetch(&x[off..]);
    }
}

/// All `nx × ny` distances between the rows of `x` and the rows of `y` (dimension `d`),
/// row-major, as Faiss's `pairwise_distances`. L2 and inner product go through a GEMM
/// when the problem is large enough; the result is the full matrix the caller asked for,
/// so its size is `nx·ny·4` bytes.
pub fn pairwise_distances(metric: MetricType, x: &[f32], y: &[f32], d: usize) -> Result<Vec<f32>> {
    check::metric_ready(metric)?;
    let nx = check::vectors("x", x, d)?;
    let ny = check::vectors("y", y, d)?;
    let mut out = vec![0.0f32; nx * ny];
    if nx == 0 || ny == 0 {
        return Ok(out);
    }
    let kern = kernels();
    let gemm = matches!(metric, MetricType::L2 | MetricType::InnerProduct)
        && nx >= crate::exhaustive::GEMM_MIN_ROWS;
    if gemm {
        let alpha = if metric == MetricType::L2 { -2.0 } else { 1.0 };
        crate::exhaustive::gemm_xyt(x, y, d, alpha, &mut out);
        if metric == MetricType::L2 {
            let mut xn = vec![0.0f32; nx];
            let mut yn = vec![0.0f32; ny];
            (kern.norms_sqr)(x, d, &mut xn);
            (kern.norms_sqr)(y, d, &mut yn);
            out.par_chunks_mut(ny)
                .zip(xn.par_iter())
                .for_each(|(row, &a)| {
                    for (o, &b) in row.iter_mut().zip(&yn) {
                        *o = (*o + a + b).max(0.0);
                    }
                });
        }
    } else {
        out.par_chunks_mut(ny)
            .zip(x.par_chunks(d))
            .for_each(|(row, q)| many_with(kern, metric, q, y, row));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{SIMD_METRICS, SimdMetric};
    use crate::simd::SimdLevel;
    use proptest::prelude::*;

    fn scalar_of(m: SimdMetric) -> fn(&[f32], &[f32]) -> f32 {
        match m {
            SimdMetric::L2 => scalar::l2_sqr,
            SimdMetric::Ip => scalar::inner_product,
            SimdMetric::L1 => scalar::l1,
            SimdMetric::Linf => scalar::linf,
            SimdMetric::Canberra => scalar::canberra,
            SimdMetric::BrayCurtis => scalar::bray_curtis,
        }
    }

    fn close(a: f32, b: f32, scale: f32) -> bool {
        (a - b).abs() <= 1e-4 * scale.max(1.0) || (a.is_nan() && b.is_nan()) || a == b
    }

    fn vecs(max_len: usize) -> impl Strategy<Value = (Vec<f32>, Vec<f32>, usize)> {
        (0..=max_len).prop_flat_map(|n| {
            (
                proptest::collection::vec(-10.0f32..10.0, n + 3),
                proptest::collection::vec(-10.0f32..10.0, n + 3),
                0..3usize,
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every level, every SIMD metric, odd lengths and unaligned starts, against the
        /// scalar twin.
        #[test]
        fn levels_match_scalar_pairs((a, b, off) in vecs(300)) {
            let n = a.len() - 3;
            let (a, b) = (&a[off..off + n], &b[off..off + n]);
            for level in SimdLevel::supported() {
                let kern = Kernels::for_level(level).unwrap();
                for m in SIMD_METRICS {
                    let want = scalar_of(m)(a, b);
                    let scale = scalar::l1(a, b) + scalar::inner_product(a, a) + scalar::inner_product(b, b);
                    let got = (kern.pair[m as usize])(a, b);
                    prop_assert!(close(got, want, scale), "{level:?} {m:?} n={n}: {got} vs {want}");
                }
            }
        }

        #[test]
        fn levels_match_scalar_many(d in 1usize..40, n in 0usize..20, seed in any::<u64>()) {
            let mut s = seed;
            let mut next = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0 };
            let q: Vec<f32> = (0..d).map(|_| next()).collect();
            let base: Vec<f32> = (0..n * d).map(|_| next()).collect();
            for level in SimdLevel::supported() {
                let kern = Kernels::for_level(level).unwrap();
                for m in SIMD_METRICS {
                    let mut out = vec![0.0; n];
                    (kern.many[m as usize])(&q, &base, &mut out);
                    for (j, row) in base.chunks_exact(d).enumerate() {
                        let want = scalar_of(m)(&q, row);
                        prop_assert!(close(out[j], want, 10.0 * d as f32), "{level:?} {m:?}");
                    }
                }
                if n >= 4 {
                    let rows = [0, 1, 2, 3].map(|r| &base[r * d..(r + 1) * d]);
                    for m in SIMD_METRICS {
                        let got = (kern.four[m as usize])(&q, rows);
                        for (g, row) in got.iter().zip(rows) {
                            let want = scalar_of(m)(&q, row);
                            prop_assert!(close(*g, want, 10.0 * d as f32), "four {level:?} {m:?}");
                        }
                    }
                }
                let mut norms = vec![0.0; n];
                (kern.norms_sqr)(&base, d, &mut norms);
                for (j, row) in base.chunks_exact(d).enumerate() {
                    prop_assert!(close(norms[j], scalar::inner_product(row, row), 10.0 * d as f32));
                }
            }
        }

        #[test]
        fn collect_le_matches_scalar(keys in proptest::collection::vec(-5.0f32..5.0, 0..100), thr in -5.0f32..5.0, with_bias: bool) {
            let bias: Vec<f32> = if with_bias { keys.iter().map(|k| k * 0.5 - 0.25).collect() } else { vec![] };
            let mut want = Vec::new();
            scalar_collect(&keys, &bias, thr, &mut want);
            for level in SimdLevel::supported() {
                let mut got = Vec::new();
                (Kernels::for_level(level).unwrap().collect_le)(&keys, &bias, thr, 7, &mut got);
                let got: Vec<u32> = got.into_iter().map(|j| j - 7).collect();
                prop_assert_eq!(&got, &want, "{:?}", level);
            }
        }
    }

    fn scalar_collect(keys: &[f32], bias: &[f32], thr: f32, out: &mut Vec<u32>) {
        for (j, k) in keys.iter().enumerate() {
            if k + bias.get(j).copied().unwrap_or(0.0) <= thr {
                out.push(j as u32);
            }
        }
    }

    #[test]
    fn collect_le_skips_nan() {
        let keys = vec![f32::NAN; 37];
        for level in SimdLevel::supported() {
            let mut got = Vec::new();
            (Kernels::for_level(level).unwrap().collect_le)(&keys, &[], f32::INFINITY, 0, &mut got);
            assert!(got.is_empty());
        }
    }

    #[test]
    fn metric_definitions() {
        let a = [1.0, 0.0, 2.0];
        let b = [0.0, 0.0, 4.0];
        let d = |m| distance(m, &a, &b).unwrap();
        assert_eq!(d(MetricType::L2), 5.0);
        assert_eq!(d(MetricType::InnerProduct), 8.0);
        assert_eq!(d(MetricType::L1), 3.0);
        assert_eq!(d(MetricType::Linf), 2.0);
        assert_eq!(d(MetricType::Lp(3.0)), 9.0);
        // Canberra: 1/1 + 0 (0/0 counts 0) + 2/6
        assert!((d(MetricType::Canberra) - (1.0 + 2.0 / 6.0)).abs() < 1e-6);
        // Bray-Curtis: 3 / 7
        assert!((d(MetricType::BrayCurtis) - 3.0 / 7.0).abs() < 1e-6);
        assert_eq!(
            distance(MetricType::BrayCurtis, &[0.0; 4], &[0.0; 4]).unwrap(),
            0.0
        );
        let p = [0.5, 0.5, 0.0];
        let q = [0.0, 0.5, 0.5];
        let js = distance(MetricType::JensenShannon, &p, &q).unwrap();
        assert!((js - 0.5 * std::f32::consts::LN_2).abs() < 1e-6, "{js}");
        assert_eq!(distance(MetricType::JensenShannon, &p, &p).unwrap(), 0.0);
    }

    #[test]
    fn pairwise_matches_pairs() {
        let d = 7;
        let x: Vec<f32> = (0..40 * d).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
        let y: Vec<f32> = (0..13 * d).map(|i| ((i * 17 % 7) as f32) * 0.5).collect();
        for m in [
            MetricType::L2,
            MetricType::InnerProduct,
            MetricType::L1,
            MetricType::Linf,
            MetricType::Lp(1.5),
            MetricType::Canberra,
            MetricType::BrayCurtis,
        ] {
            let all = pairwise_distances(m, &x, &y, d).unwrap();
            for i in 0..40 {
                for j in 0..13 {
                    let want = distance(m, &x[i * d..][..d], &y[j * d..][..d]).unwrap();
                    assert!(close(all[i * 13 + j], want, 100.0), "{m} {i} {j}");
                }
            }
        }
        assert!(pairwise_distances(MetricType::L2, &x, &y[1..], d).is_err());
        let mut out = vec![0.0; 3];
        assert!(distances_to(MetricType::L2, &x[..d], &y[..2 * d], &mut out).is_err());
    }
}
