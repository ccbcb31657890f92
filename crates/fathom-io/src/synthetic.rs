//! Deterministic synthetic datasets with exact ground truth, so fathom can be tried and
//! benchmarked with nothing from outside the repository.
//!
//! The vectors follow `../shared/bench/gen_data.py`: a low-dimensional signal
//! (`max(8, d/4)` basis directions of decreasing scale) around one of 4096 cluster centres,
//! plus small isotropic noise — structured like real descriptors, so approximate indexes
//! behave as they do on real data. The random numbers come from a fixed generator
//! (xoshiro256** seeded by SplitMix64), so a given seed gives the same bytes on every
//! machine and thread count; they are not the same numbers as numpy's.

use std::path::Path;

use fathom_core::{MetricType, Result};
use rayon::prelude::*;

use crate::write_fvecs;

/// Sizes and seed of a synthetic dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticSpec {
    /// Dimension.
    pub d: usize,
    /// Database vectors.
    pub nb: usize,
    /// Query vectors.
    pub nq: usize,
    /// Training vectors.
    pub nt: usize,
    /// Neighbours per query in the ground truth.
    pub k: usize,
    /// Seed; the same seed gives the same dataset.
    pub seed: u64,
}

impl Default for SyntheticSpec {
    /// The defaults of `gen_data.py`: 1M × 128, 1000 queries, 100k training vectors,
    /// 100 neighbours.
    fn default() -> Self {
        SyntheticSpec {
            d: 128,
            nb: 1_000_000,
            nq: 1000,
            nt: 100_000,
            k: 100,
            seed: 1234,
        }
    }
}

/// The vectors of a synthetic dataset, row-major.
#[derive(Debug, Clone)]
pub struct SyntheticData {
    /// `nb × d` database vectors.
    pub base: Vec<f32>,
    /// `nq × d` queries.
    pub query: Vec<f32>,
    /// `nt × d` training vectors.
    pub learn: Vec<f32>,
}

/// xoshiro256**: small, fast, and fixed forever (unlike `rand`'s `StdRng`).
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal pairs (Box–Muller).
    fn normals(&mut self, out: &mut [f32]) {
        for pair in out.chunks_mut(2) {
            let r = (-2.0 * self.unit().ln()).sqrt();
            let t = std::f64::consts::TAU * self.unit();
            pair[0] = (r * t.cos()) as f32;
            if let Some(v) = pair.get_mut(1) {
                *v = (r * t.sin()) as f32;
            }
        }
    }
}

/// Rows generated per independently seeded chunk (keeps the output independent of threads).
const CHUNK: usize = 4096;

struct Model {
    d: usize,
    basis: Vec<f32>,
    centers: Vec<f32>,
}

impl Model {
    fn new(d: usize, seed: u64) -> Self {
        let r = (d / 4).max(8);
        let mut rng = Rng::new(seed);
        let mut basis = vec![0.0f32; r * d];
        rng.normals(&mut basis);
        for (i, row) in basis.chunks_exact_mut(d).enumerate() {
            let scale = 1.5 - 1.3 * i as f32 / (r - 1) as f32;
            let norm = (r as f32).sqrt();
            row.iter_mut().for_each(|v| *v *= scale / norm);
        }
        let mut centers = vec![0.0f32; 4096 * d];
        rng.normals(&mut centers);
        centers.iter_mut().for_each(|v| *v *= 0.25);
        Model { d, basis, centers }
    }

    fn sample(&self, n: usize, seed: u64) -> Vec<f32> {
        let d = self.d;
        let r = self.basis.len() / d;
        let mut out = vec![0.0f32; n * d];
        out.par_chunks_mut(CHUNK * d)
            .enumerate()
            .for_each(|(c, rows)| {
                let mut rng = Rng::new(seed ^ (c as u64).wrapping_mul(0xD134_2543_DE82_EF95));
                let mut z = vec![0.0f32; r];
                let mut noise = vec![0.0f32; d];
                for row in rows.chunks_exact_mut(d) {
                    let center = (rng.next_u64() % 4096) as usize;
                    rng.normals(&mut z);
                    rng.normals(&mut noise);
                    row.copy_from_slice(&self.centers[center * d..(center + 1) * d]);
                    for (zi, b) in z.iter().zip(self.basis.chunks_exact(d)) {
                        for (x, bv) in row.iter_mut().zip(b) {
                            *x += zi * bv;
                        }
                    }
                    for (x, e) in row.iter_mut().zip(&noise) {
                        *x += 0.05 * e;
                    }
                }
            });
        out
    }
}

/// Generates the vectors of a dataset.
///
/// ```
/// use fathom_io::synthetic::{SyntheticSpec, generate};
/// let spec = SyntheticSpec { d: 16, nb: 100, nq: 5, nt: 50, k: 10, seed: 7 };
/// let a = generate(&spec);
/// assert_eq!(a.base.len(), 100 * 16);
/// assert_eq!(a.base, generate(&spec).base, "deterministic");
/// ```
pub fn generate(spec: &SyntheticSpec) -> SyntheticData {
    let model = Model::new(spec.d, spec.seed);
    SyntheticData {
        base: model.sample(spec.nb, spec.seed.wrapping_add(1)),
        query: model.sample(spec.nq, spec.seed.wrapping_add(2)),
        learn: model.sample(spec.nt, spec.seed.wrapping_add(3)),
    }
}

/// The exact `k` nearest database vectors of each query under `metric`, as `i32` row
/// numbers (the `groundtruth.ivecs` layout). Each query is scanned on its own, through the
/// SIMD one-to-many kernels rather than the GEMM path that batched search uses, so the
/// ground truth is an independent check of that path.
pub fn ground_truth(
    data: &SyntheticData,
    d: usize,
    k: usize,
    metric: MetricType,
) -> Result<Vec<i32>> {
    let per_query: Vec<Vec<i32>> = data
        .query
        .chunks_exact(d)
        .map(|q| {
            let r = fathom_kernels::knn(metric, q, &data.base, d, k, None)?;
            Ok(r.labels.iter().map(|&l| l as i32).collect())
        })
        .collect::<Result<_>>()?;
    Ok(per_query.concat())
}

/// Generates a dataset and writes it in TEXMEX layout: `base.fvecs`, `query.fvecs`,
/// `learn.fvecs` and `groundtruth.ivecs` (L2 neighbours; none when `spec.k` is 0 — the
/// exact scan costs nq × nb × d, hours at 10M × 10 000 queries), creating `dir` if needed.
pub fn write_dataset(dir: &Path, spec: &SyntheticSpec) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| fathom_core::Error::io(dir, e))?;
    let data = generate(spec);
    write_fvecs(dir.join("base.fvecs"), &data.base, spec.d)?;
    write_fvecs(dir.join("query.fvecs"), &data.query, spec.d)?;
    write_fvecs(dir.join("learn.fvecs"), &data.learn, spec.d)?;
    if spec.k > 0 {
        let k = spec.k.min(spec.nb);
        let gt = ground_truth(&data, spec.d, k, MetricType::L2)?;
        crate::write_ivecs(dir.join("groundtruth.ivecs"), &gt, k)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_independent_of_threads() {
        let spec = SyntheticSpec {
            d: 12,
            nb: 9000,
            nq: 3,
            nt: 10,
            k: 5,
            seed: 3,
        };
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| generate(&spec));
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(|| generate(&spec));
        assert_eq!(one.base, two.base);
        assert_ne!(one.base[..12], one.base[12..24]);
        let other = generate(&SyntheticSpec { seed: 4, ..spec });
        assert_ne!(one.base, other.base);
        // Values are of the scale gen_data.py produces.
        let mean_sq = one.base.iter().map(|v| v * v).sum::<f32>() / one.base.len() as f32;
        assert!((0.05..2.0).contains(&mean_sq), "{mean_sq}");
    }

    #[test]
    fn writes_a_texmex_directory() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SyntheticSpec {
            d: 8,
            nb: 500,
            nq: 20,
            nt: 100,
            k: 10,
            seed: 1,
        };
        write_dataset(dir.path(), &spec).unwrap();
        let base = crate::read_fvecs(dir.path().join("base.fvecs")).unwrap();
        let gt = crate::read_ivecs(dir.path().join("groundtruth.ivecs")).unwrap();
        let q = crate::read_fvecs(dir.path().join("query.fvecs")).unwrap();
        assert_eq!((base.n(), gt.n(), gt.d), (500, 20, 10));
        // The first ground-truth neighbour really is the nearest.
        let best = (0..500)
            .min_by(|&a, &b| {
                let da = fathom_kernels::distance(MetricType::L2, q.row(0), base.row(a)).unwrap();
                let db = fathom_kernels::distance(MetricType::L2, q.row(0), base.row(b)).unwrap();
                da.total_cmp(&db)
            })
            .unwrap();
        assert_eq!(gt.row(0)[0], best as i32);
    }
}
