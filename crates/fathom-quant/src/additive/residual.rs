//! The residual quantizer's encoding and training (Faiss's `ResidualQuantizer`): codes
//! are chosen greedily level by level with a beam of the `max_beam_size` best partial
//! sums; codebook `m` is trained by k-means on the residuals left after levels `0..m` (on
//! every beam entry, as Faiss), optionally with Faiss's progressive-dimension k-means in
//! PCA space. With the same codebooks the beam search picks Faiss's codes (up to ties
//! broken by float rounding).

use fathom_core::Result;
use fathom_linalg::{ClusteringParameters, Kmeans, PcaMatrix, VectorTransform};
use rayon::prelude::*;

use super::{AdditiveQuantizer, sq_norm};

/// Faiss's `Train_progressive_dim` flag.
pub const TRAIN_PROGRESSIVE_DIM: i32 = 1;

/// A residual quantizer's training and encoding settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RqParams {
    /// Faiss's `train_type` flags: 1 (the default) trains each level by progressive-
    /// dimension k-means in PCA space, 0 by plain k-means.
    pub train_type: i32,
    /// Partial sums kept per level when encoding and training (Faiss's default 5).
    pub max_beam_size: usize,
    /// Iterations of each k-means (Faiss's default 10).
    pub niter: usize,
}

impl Default for RqParams {
    fn default() -> Self {
        RqParams {
            train_type: TRAIN_PROGRESSIVE_DIM,
            max_beam_size: 5,
            niter: 10,
        }
    }
}

impl AdditiveQuantizer {
    /// Trains the codebooks level by level; returns the squared norms of the training
    /// vectors' reconstructions.
    pub(super) fn train_residual(&mut self, x: &[f32], p: &RqParams) -> Result<Vec<f32>> {
        let d = self.d;
        let n = x.len() / d;
        // Levels are filled in as they are trained; a beam step reads only its own level.
        self.codebooks = vec![0.0f32; self.codebook_len()];
        self.codebook_norms = vec![0.0f32; self.total_codebook_size()];
        // The beam of every training vector: residuals `(n, beam, d)`.
        let mut beam = 1usize;
        let mut residuals = x.to_vec();
        for m in 0..self.m() {
            let k = 1usize << self.nbits[m];
            let centroids = self.train_level(&residuals, k, p)?;
            let rows = self.offsets[m]..self.offsets[m + 1];
            self.codebooks[rows.start * d..rows.end * d].copy_from_slice(&centroids);
            let norms: Vec<f32> = centroids.chunks_exact(d).map(sq_norm).collect();
            self.codebook_norms[rows].copy_from_slice(&norms);
            let width = (beam * k).min(p.max_beam_size.max(1));
            residuals = self.beam_step(&residuals, n, beam, m, width).0;
            beam = width;
        }
        // Norms of the training reconstructions: x minus the best beam entry's residual.
        Ok((0..n)
            .map(|i| {
                let (xi, r) = (&x[i * d..(i + 1) * d], &residuals[i * beam * d..][..d]);
                xi.iter().zip(r).map(|(a, b)| (a - b) * (a - b)).sum()
            })
            .collect())
    }

    /// The `k` centroids of one level, trained on the current residuals.
    fn train_level(&self, residuals: &[f32], k: usize, p: &RqParams) -> Result<Vec<f32>> {
        let d = self.d;
        let params = ClusteringParameters {
            niter: p.niter,
            ..Default::default()
        };
        if p.train_type & TRAIN_PROGRESSIVE_DIM == 0 {
            let mut km = Kmeans::new(d, k)?.with_params(params);
            km.train(residuals)?;
            return Ok(km.centroids().to_vec());
        }
        // Faiss's ProgressiveDimClustering: PCA of every residual, then k-means on the
        // first d_i principal components for d_i growing geometrically to d, each run
        // started from the last (k-means subsamples as Faiss's Clustering does, the PCA
        // does not: a PCA of the subsample alone rotates differently and, on the RQ3x4
        // fixture, costs 20 % of MSE).
        let mut pca = PcaMatrix::new(d, d, 0.0, false)?;
        pca.train(residuals)?;
        let xp = pca.apply(residuals)?;
        let n = xp.len() / d;
        let steps = 10;
        let mut centroids: Vec<f32> = Vec::new();
        let mut prev_di = 0usize;
        for iter in 0..steps {
            let di = ((d as f64).powf((1 + iter) as f64 / steps as f64) as usize).clamp(1, d);
            let cols: Vec<f32> = (0..n)
                .flat_map(|i| xp[i * d..i * d + di].iter().copied())
                .collect();
            let mut km = Kmeans::new(di, k)?.with_params(params.clone());
            if prev_di > 0 {
                let init: Vec<f32> = (0..k)
                    .flat_map(|c| {
                        let row = &centroids[c * prev_di..(c + 1) * prev_di];
                        row.iter()
                            .copied()
                            .chain(std::iter::repeat_n(0.0, di - prev_di))
                    })
                    .collect();
                km.set_initial_centroids(&init)?;
            }
            km.train(&cols)?;
            centroids = km.centroids().to_vec();
            prev_di = di;
        }
        pca.reverse_transform(&centroids)
    }

    /// One beam step for `n` vectors with beams of `beam` residuals: each keeps the
    /// `width` best `(entry, residual − entry)` pairs of codebook `m`, nearest first (ties
    /// to the earlier candidate, as Faiss's heap). Returns the new residuals, the chosen
    /// `(parent, entry)` pairs and the distances.
    fn beam_step(
        &self,
        residuals: &[f32],
        n: usize,
        beam: usize,
        m: usize,
        width: usize,
    ) -> (Vec<f32>, Vec<(u32, u32)>, Vec<f32>) {
        let d = self.d;
        let k = 1usize << self.nbits[m];
        let cb = &self.codebooks[self.offsets[m] * d..self.offsets[m + 1] * d];
        let cn = &self.codebook_norms[self.offsets[m]..self.offsets[m + 1]];
        let mut out_r = vec![0.0f32; n * width * d];
        let mut out_c = vec![(0u32, 0u32); n * width];
        let mut out_d = vec![0.0f32; n * width];
        const CHUNK: usize = 64;
        out_r
            .par_chunks_mut(CHUNK * width * d)
            .zip(out_c.par_chunks_mut(CHUNK * width))
            .zip(out_d.par_chunks_mut(CHUNK * width))
            .enumerate()
            .for_each(|(ci, ((or, oc), od))| {
                let i0 = ci * CHUNK;
                let nc = or.len() / (width * d);
                let rs = &residuals[i0 * beam * d..(i0 + nc) * beam * d];
                let mut ip = vec![0.0f32; nc * beam * k];
                // Inner products of every residual with every entry: one matrix product.
                fathom_kernels::matmul_abt(rs, cb, d, 1.0, &mut ip).expect("shapes agree");
                let mut cand: Vec<(f32, u32)> = Vec::with_capacity(beam * k);
                for i in 0..nc {
                    cand.clear();
                    for b in 0..beam {
                        let r = &rs[(i * beam + b) * d..][..d];
                        let rn: f32 = r.iter().map(|v| v * v).sum();
                        let row = &ip[(i * beam + b) * k..][..k];
                        for (e, (&p, &c)) in row.iter().zip(cn).enumerate() {
                            cand.push((rn + c - 2.0 * p, (b * k + e) as u32));
                        }
                    }
                    let keep = width.min(cand.len());
                    let by =
                        |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
                    if keep < cand.len() {
                        cand.select_nth_unstable_by(keep - 1, by);
                        cand.truncate(keep);
                    }
                    cand.sort_unstable_by(by);
                    for (j, &(dist, id)) in cand.iter().enumerate() {
                        let (b, e) = (id as usize / k, id as usize % k);
                        let src = &rs[(i * beam + b) * d..][..d];
                        let entry = &cb[e * d..(e + 1) * d];
                        let dst = &mut or[(i * width + j) * d..][..d];
                        for ((o, s), c) in dst.iter_mut().zip(src).zip(entry) {
                            *o = s - c;
                        }
                        oc[i * width + j] = (b as u32, e as u32);
                        od[i * width + j] = dist;
                    }
                }
            });
        (out_r, out_c, out_d)
    }

    /// The level codes of each row of `x` (beam search) and the squared norms of their
    /// reconstructions.
    pub(super) fn encode_residual(&self, x: &[f32], p: &RqParams) -> (Vec<u32>, Vec<f32>) {
        let (codes, _, norms) = self.beam_search(x, p.max_beam_size.max(1), 1);
        (codes, norms)
    }

    /// Beam search keeping `width` partial sums per level: for each row of `x`, the
    /// `keep` best final codes (`n × keep × M`, best first), their squared distances to
    /// the row (`n × keep`), and the squared norms of the best reconstructions (`n`).
    /// `keep` must not exceed the final beam's width.
    pub fn beam_search(
        &self,
        x: &[f32],
        width: usize,
        keep: usize,
    ) -> (Vec<u32>, Vec<f32>, Vec<f32>) {
        let (d, mm) = (self.d, self.m());
        let n = x.len() / d;
        let mut residuals = x.to_vec();
        // codes[(i, beam entry)] = the level codes so far.
        let mut codes: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut beam = 1usize;
        let mut dists = Vec::new();
        for m in 0..mm {
            let k = 1usize << self.nbits[m];
            let width = (beam * k).min(width.max(1));
            let (r, chosen, dist) = self.beam_step(&residuals, n, beam, m, width);
            dists = dist;
            let mut next: Vec<Vec<u32>> = Vec::with_capacity(n);
            for (i, old) in codes.iter().enumerate() {
                let mut v = Vec::with_capacity(width * (m + 1));
                for j in 0..width {
                    let (b, e) = chosen[i * width + j];
                    v.extend_from_slice(&old[b as usize * m..(b as usize + 1) * m]);
                    v.push(e);
                }
                next.push(v);
            }
            codes = next;
            residuals = r;
            beam = width;
        }
        let keep = keep.min(beam);
        let mut flat = Vec::with_capacity(n * keep * mm);
        let mut best = Vec::with_capacity(n * keep);
        let mut norms = Vec::with_capacity(n);
        for i in 0..n {
            flat.extend_from_slice(&codes[i][..keep * mm]);
            best.extend_from_slice(&dists[i * beam..i * beam + keep]);
            let (xi, r) = (&x[i * d..(i + 1) * d], &residuals[i * beam * d..][..d]);
            norms.push(xi.iter().zip(r).map(|(a, b)| (a - b) * (a - b)).sum());
        }
        (flat, best, norms)
    }
}
