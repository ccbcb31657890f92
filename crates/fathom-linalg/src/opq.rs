//! Optimized product quantization rotation, as Faiss's `OPQMatrix`.

use faer::Mat;
use fathom_core::{Error, Idx, MetricType, Result, check};
use rayon::prelude::*;

use crate::kmeans::{ClusteringParameters, Kmeans};
use crate::rotation::random_orthogonal;
use crate::sample::subsample;
use crate::transform::{LinearTransform, VectorTransform, check_reverse, delegate_to_linear};

/// Trains the centroids of a product quantizer: `x` (`n × d`) is cut into `m` sub-spaces
/// of `d / m` dimensions and each gets its own k-means with `ksub` centroids (in parallel;
/// `params.seed` for every one, as Faiss's `ProductQuantizer::train`, so the centroids are
/// Faiss's). Returns `m × ksub × (d / m)` floats, sub-space by sub-space.
pub fn subspace_centroids(
    x: &[f32],
    d: usize,
    m: usize,
    ksub: usize,
    params: &ClusteringParameters,
) -> Result<Vec<f32>> {
    check::vectors("training set", x, d)?;
    if m == 0 || !d.is_multiple_of(m) {
        return Err(Error::invalid(format!(
            "d = {d} is not divisible into M = {m} sub-spaces"
        )));
    }
    let dsub = d / m;
    let parts: Vec<Vec<f32>> = (0..m)
        .into_par_iter()
        .map(|s| {
            let xs = sub_vectors(x, d, s, dsub);
            let mut km = Kmeans::new(dsub, ksub)?.with_params(params.clone());
            km.train(&xs)?;
            Ok(km.centroids().to_vec())
        })
        .collect::<Result<_>>()?;
    Ok(parts.concat())
}

/// Sub-vector `s` (dimensions `s·dsub .. (s+1)·dsub`) of every row of `x`.
fn sub_vectors(x: &[f32], d: usize, s: usize, dsub: usize) -> Vec<f32> {
    x.chunks_exact(d)
        .flat_map(|r| &r[s * dsub..(s + 1) * dsub])
        .copied()
        .collect()
}

/// Trains a product quantizer ([`subspace_centroids`]) on `x` and returns every vector's
/// reconstruction: each sub-vector replaced by its nearest centroid. This is what OPQ
/// training alternates with; the full codec (codes, distance tables) is
/// `fathom_quant::ProductQuantizer`, in the layer above.
pub fn pq_reconstruction(
    x: &[f32],
    d: usize,
    m: usize,
    ksub: usize,
    params: &ClusteringParameters,
) -> Result<Vec<f32>> {
    let centroids = subspace_centroids(x, d, m, ksub, params)?;
    let n = x.len() / d;
    let dsub = d / m;
    let mut out = vec![0.0f32; n * d];
    let parts: Vec<Vec<Idx>> = (0..m)
        .into_par_iter()
        .map(|s| {
            let xs = sub_vectors(x, d, s, dsub);
            let c = &centroids[s * ksub * dsub..(s + 1) * ksub * dsub];
            Ok(fathom_kernels::knn(MetricType::L2, &xs, c, dsub, 1, None)?.labels)
        })
        .collect::<Result<_>>()?;
    for (s, labels) in parts.iter().enumerate() {
        let c = &centroids[s * ksub * dsub..(s + 1) * ksub * dsub];
        for (row, &l) in out.chunks_exact_mut(d).zip(labels) {
            let l = l as usize;
            row[s * dsub..(s + 1) * dsub].copy_from_slice(&c[l * dsub..(l + 1) * dsub]);
        }
    }
    Ok(out)
}

/// A rotation (with optional dimension change) that makes vectors easier to product-
/// quantize into `m` sub-spaces (Faiss's `OPQMatrix`, factory `OPQ16` / `OPQ16_64`).
///
/// Training alternates, `niter` times, between training a product quantizer (`m` × 256
/// centroids; `niter_pq_0` k-means iterations the first time, `niter_pq` after) on the
/// rotated data and solving the orthogonal Procrustes problem (an SVD) for the rotation
/// that best maps the data onto its reconstruction. At most `max_train_points` points are
/// used (seed 1234). The output has orthonormal rows, so it is reversible.
#[derive(Debug, Clone, PartialEq)]
pub struct OpqMatrix {
    lt: LinearTransform,
    /// Sub-spaces of the product quantizer the rotation is optimised for.
    pub m: usize,
    /// Alternations (50).
    pub niter: usize,
    /// k-means iterations of the first PQ training (40).
    pub niter_pq_0: usize,
    /// k-means iterations of the later PQ trainings (4).
    pub niter_pq: usize,
    /// Training points used at most (65536).
    pub max_train_points: usize,
    /// Bits per sub-quantizer index (8: 256 centroids).
    pub nbits: usize,
}

impl OpqMatrix {
    /// An untrained OPQ for `m` sub-spaces from `d_in` to `d_out` dimensions; `d_out` must be
    /// divisible by `m`.
    pub fn new(d_in: usize, m: usize, d_out: usize) -> Result<Self> {
        let lt = LinearTransform::new(d_in, d_out)?;
        if m == 0 || !d_out.is_multiple_of(m) {
            return Err(Error::invalid(format!(
                "OPQ needs the output dimension {d_out} to be a multiple of the number of sub-spaces M = {m}"
            )));
        }
        Ok(OpqMatrix {
            lt,
            m,
            niter: 50,
            niter_pq_0: 40,
            niter_pq: 4,
            max_train_points: 256 * 256,
            nbits: 8,
        })
    }

    /// The fitted rotation.
    pub fn linear(&self) -> &LinearTransform {
        &self.lt
    }
}

impl VectorTransform for OpqMatrix {
    delegate_to_linear!(Opq);
    fn train(&mut self, x: &[f32]) -> Result<()> {
        let (d_in, d_out) = (self.lt.d_in, self.lt.d_out);
        check::nonempty_finite("training set", x, d_in)?;
        let ksub = 1usize << self.nbits.min(16);
        let sampled = subsample(x, d_in, self.max_train_points.max(1), 1234);
        let x = sampled.as_deref().unwrap_or(x);
        let n = x.len() / d_in;
        if n < ksub {
            return Err(Error::invalid(format!(
                "OPQ trains 2^{} = {ksub} centroids per sub-space and needs at least that many points, got {n}",
                self.nbits
            )));
        }
        // Work in d = max(d_in, d_out) dimensions, zero-padding the input when expanding.
        let d = d_in.max(d_out);
        let xp: Vec<f32> = if d > d_in {
            x.chunks_exact(d_in)
                .flat_map(|r| r.iter().copied().chain(std::iter::repeat_n(0.0, d - d_in)))
                .collect()
        } else {
            x.to_vec()
        };
        // R: d_out × d, orthonormal rows.
        let mut r = if self.lt.is_set() && d == d_in {
            self.lt.a.clone()
        } else {
            random_orthogonal(d_out, d, 1234)
        };
        let mut proj = vec![0.0f32; n * d_out];
        for iter in 0..self.niter {
            fathom_kernels::matmul_abt(&xp, &r, d, 1.0, &mut proj)?;
            let params = ClusteringParameters {
                niter: if iter == 0 {
                    self.niter_pq_0
                } else {
                    self.niter_pq
                },
                max_points_per_centroid: 1000,
                ..Default::default()
            };
            let recons = pq_reconstruction(&proj, d_out, self.m, ksub, &params)?;
            // Procrustes: reconsᵀ·x = U S Vᵀ (d_out × d), R = U·Vᵀ.
            let rm = faer::MatRef::from_row_major_slice(&recons, n, d_out);
            let xm = faer::MatRef::from_row_major_slice(&xp, n, d);
            let mut cross = Mat::<f32>::zeros(d_out, d);
            faer::linalg::matmul::matmul(
                cross.as_mut(),
                faer::Accum::Replace,
                rm.transpose(),
                xm,
                1.0,
                faer::Par::rayon(0),
            );
            let c64 = Mat::<f64>::from_fn(d_out, d, |i, j| cross[(i, j)] as f64);
            let svd = c64
                .thin_svd()
                .map_err(|e| Error::invalid(format!("OPQ's SVD failed: {e:?}")))?;
            let rot = svd.U() * svd.V().transpose();
            for i in 0..d_out {
                for j in 0..d {
                    r[i * d + j] = rot[(i, j)] as f32;
                }
            }
        }
        // Drop the padded input columns.
        self.lt.a = (0..d_out)
            .flat_map(|i| r[i * d..i * d + d_in].to_vec())
            .collect();
        self.lt.is_orthonormal = true;
        Ok(())
    }
    fn reverse_transform(&self, y: &[f32]) -> Result<Vec<f32>> {
        check_reverse(self, y)?;
        self.lt.reverse_rows(y, true)
    }
    fn description(&self) -> String {
        if self.lt.d_out == self.lt.d_in {
            format!("OPQ{}", self.m)
        } else {
            format!("OPQ{}_{}", self.m, self.lt.d_out)
        }
    }
}
