//! The local-search quantizer (LSQ++, Martinez et al., ECCV 2016 and 2018; Faiss's
//! `LocalSearchQuantizer`). Encoding starts from random codes and runs iterated local
//! search: each round perturbs `nperts` codes, then sweeps the levels `icm_iters` times,
//! setting each level's code to the best one given the others (iterated conditional
//! modes, from unary terms `‖c‖² − 2⟨x, c⟩` and pairwise terms `2⟨c, c'⟩`), and keeps
//! the result if it beats the best so far. Training alternates a least-squares update of
//! all codebooks (`(BᵀB + λI) C = BᵀX`, in `f64`), a perturbation of the codebooks that
//! cools over the iterations (simulated annealing), and a round of encoding.
//!
//! Random draws come from one Mersenne Twister per chunk of vectors, seeded from
//! `random_seed` and the chunk's number, so results do not depend on the thread count;
//! they are not Faiss's draws, so fathom's LSQ codes differ from Faiss's on the same
//! data (their quality does not). Faiss's codebooks and codes are searched unchanged.

use fathom_core::{Error, Result};
use fathom_linalg::rng::Mt19937;
use rayon::prelude::*;

use super::{AdditiveQuantizer, sq_norm};

/// A local-search quantizer's training and encoding settings (Faiss's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct LsqParams {
    /// Training iterations (25).
    pub train_iters: usize,
    /// Local-search rounds when encoding (16).
    pub encode_ils_iters: usize,
    /// Local-search rounds per training iteration (8).
    pub train_ils_iters: usize,
    /// Sweeps over the levels per round (4).
    pub icm_iters: usize,
    /// The annealing temperature's exponent (0.5).
    pub p: f32,
    /// The least-squares regularization (0.01).
    pub lambd: f32,
    /// Vectors encoded at a time (10 000; kept in files).
    pub chunk_size: usize,
    /// The seed of the random draws.
    pub random_seed: i32,
    /// Codes perturbed per vector and round (4, at most `M`).
    pub nperts: usize,
    /// Faiss's `update_codebooks_with_double` (fathom always solves in `f64`; kept for
    /// files).
    pub update_codebooks_with_double: bool,
}

impl Default for LsqParams {
    fn default() -> Self {
        LsqParams {
            train_iters: 25,
            encode_ils_iters: 16,
            train_ils_iters: 8,
            icm_iters: 4,
            p: 0.5,
            lambd: 1e-2,
            chunk_size: 10_000,
            random_seed: 0x12345,
            nperts: 4,
            update_codebooks_with_double: true,
        }
    }
}

/// The pairwise table holds `(M·K)²` floats: refuse sizes that cannot be allocated.
pub(super) fn check_size(m: usize, nbits: usize) -> Result<()> {
    let mk = (m as u128) << nbits.min(64);
    if m == 0 || nbits == 0 || nbits > 16 || mk * mk > 1 << 28 {
        return Err(Error::invalid(format!(
            "a local-search quantizer of {m} codebooks of {nbits} bits: needs M ≥ 1, 1 to 16 \
             bits and (M·2^nbits)² ≤ 2^28 (its pairwise table)"
        )));
    }
    Ok(())
}

/// Vectors handled by one task (and one random stream) when encoding.
const CHUNK: usize = 256;

impl AdditiveQuantizer {
    fn k(&self) -> usize {
        1 << self.nbits[0]
    }

    /// `2⟨entry a, entry b⟩` for every pair of entries (`(M·K)²`, row-major).
    fn pair_terms(&self) -> Vec<f32> {
        let t = self.total_codebook_size();
        let mut g = vec![0.0f32; t * t];
        fathom_kernels::matmul_abt(&self.codebooks, &self.codebooks, self.d, 2.0, &mut g)
            .expect("codebooks of dimension d");
        g
    }

    /// Trains the codebooks; returns the training vectors' final codes (`n × M`).
    pub(super) fn train_local_search(&mut self, x: &[f32], p: &LsqParams) -> Result<Vec<u32>> {
        let (d, mm, k) = (self.d, self.m(), self.k());
        let n = x.len() / d;
        let p = &LsqParams {
            nperts: p.nperts.min(mm),
            ..p.clone()
        };
        let mut rng = Mt19937::new(p.random_seed as u32);
        let mut codes: Vec<u32> = (0..n * mm).map(|_| rng.next_u32() % k as u32).collect();
        let stddev: Vec<f32> = (0..d)
            .map(|j| {
                let mean = x.iter().skip(j).step_by(d).map(|&v| v as f64).sum::<f64>() / n as f64;
                let var = x
                    .iter()
                    .skip(j)
                    .step_by(d)
                    .map(|&v| (v as f64 - mean).powi(2))
                    .sum::<f64>()
                    / n as f64;
                var.sqrt() as f32
            })
            .collect();
        for iter in 0..p.train_iters {
            self.update_codebooks(x, &codes, p.lambd)?;
            let t = (1.0 - (iter as f32 + 1.0) / p.train_iters as f32).powf(p.p);
            for v in self.codebooks.chunks_exact_mut(d) {
                for ((c, &s), g) in v.iter_mut().zip(&stddev).zip(gaussians(&mut rng, d)) {
                    *c += t * g * s / mm as f32;
                }
            }
            self.refresh_codebook_norms();
            let seed = rng.next_u32();
            self.iterated_local_search(x, &mut codes, p.train_ils_iters, p, seed);
        }
        Ok(codes)
    }

    fn refresh_codebook_norms(&mut self) {
        self.codebook_norms = self.codebooks.chunks_exact(self.d).map(sq_norm).collect();
    }

    /// The least-squares codebooks for fixed codes: `(BᵀB + λI)⁻¹ BᵀX`.
    fn update_codebooks(&mut self, x: &[f32], codes: &[u32], lambd: f32) -> Result<()> {
        let (d, mm, k) = (self.d, self.m(), self.k());
        let t = mm * k;
        let mut bb = vec![0.0f64; t * t];
        let mut bx = vec![0.0f64; t * d];
        for (xi, c) in x.chunks_exact(d).zip(codes.chunks_exact(mm)) {
            for m in 0..mm {
                let a = m * k + c[m] as usize;
                for m2 in 0..mm {
                    bb[a * t + m2 * k + c[m2] as usize] += 1.0;
                }
                for (o, &v) in bx[a * d..(a + 1) * d].iter_mut().zip(xi) {
                    *o += v as f64;
                }
            }
        }
        for i in 0..t {
            bb[i * t + i] += lambd as f64;
        }
        let c = fathom_linalg::solve_spd(&bb, &bx, t, d)?;
        self.codebooks = c.iter().map(|&v| v as f32).collect();
        self.refresh_codebook_norms();
        Ok(())
    }

    /// Codes for the rows of `x` from random starting codes (`n × M`).
    pub(super) fn encode_local_search(&self, x: &[f32], p: &LsqParams) -> Vec<u32> {
        let (mm, k) = (self.m(), self.k());
        let n = x.len() / self.d;
        let p = &LsqParams {
            nperts: p.nperts.min(mm),
            ..p.clone()
        };
        let mut rng = Mt19937::new(p.random_seed as u32);
        let mut codes: Vec<u32> = (0..n * mm).map(|_| rng.next_u32() % k as u32).collect();
        self.iterated_local_search(x, &mut codes, p.encode_ils_iters, p, rng.next_u32());
        codes
    }

    /// `rounds` rounds of iterated local search on every vector, in parallel by chunks.
    fn iterated_local_search(
        &self,
        x: &[f32],
        codes: &mut [u32],
        rounds: usize,
        p: &LsqParams,
        seed: u32,
    ) {
        let (d, mm, k) = (self.d, self.m(), self.k());
        let pairs = self.pair_terms();
        codes
            .par_chunks_mut(CHUNK * mm)
            .zip(x.par_chunks(CHUNK * d))
            .enumerate()
            .for_each(|(ci, (codes, x))| {
                let mut rng = Mt19937::new(seed ^ (ci as u32).wrapping_mul(0x9E37_79B9));
                let nc = x.len() / d;
                // Unary terms `‖c‖² − 2⟨x, c⟩`, (vector, level, entry).
                let mut unary = vec![0.0f32; nc * mm * k];
                fathom_kernels::matmul_abt(x, &self.codebooks, d, -2.0, &mut unary)
                    .expect("vectors of dimension d");
                for row in unary.chunks_exact_mut(mm * k) {
                    for (u, &cn) in row.iter_mut().zip(&self.codebook_norms) {
                        *u += cn;
                    }
                }
                let mut y = vec![0.0f32; d];
                let mut objs = vec![0.0f32; k];
                let mut trial = vec![0u32; mm];
                for i in 0..nc {
                    let (xi, best) = (&x[i * d..(i + 1) * d], &mut codes[i * mm..(i + 1) * mm]);
                    let u = &unary[i * mm * k..(i + 1) * mm * k];
                    let mut best_err = self.error(xi, best, &mut y);
                    for _ in 0..rounds {
                        trial.copy_from_slice(best);
                        for _ in 0..p.nperts {
                            let m = rng.next_u32() as usize % mm;
                            trial[m] = rng.next_u32() % k as u32;
                        }
                        icm_sweeps(&mut trial, u, &pairs, mm, k, p.icm_iters, &mut objs);
                        let err = self.error(xi, &trial, &mut y);
                        if err < best_err {
                            best_err = err;
                            best.copy_from_slice(&trial);
                        }
                    }
                }
            });
    }

    /// `‖x − decode(codes)‖²`.
    fn error(&self, x: &[f32], codes: &[u32], y: &mut [f32]) -> f32 {
        self.decode_levels(codes, y);
        x.iter().zip(y.iter()).map(|(a, b)| (a - b) * (a - b)).sum()
    }
}

/// `sweeps` passes over the levels, each setting a level's code to the one that minimises
/// the objective with the other levels fixed (the first of equals).
fn icm_sweeps(
    codes: &mut [u32],
    unary: &[f32],
    pairs: &[f32],
    mm: usize,
    k: usize,
    sweeps: usize,
    objs: &mut [f32],
) {
    let t = mm * k;
    for _ in 0..sweeps {
        for m in 0..mm {
            objs.copy_from_slice(&unary[m * k..(m + 1) * k]);
            for (m2, &c2) in codes.iter().enumerate() {
                if m2 == m {
                    continue;
                }
                let row = &pairs[(m2 * k + c2 as usize) * t + m * k..][..k];
                for (o, &v) in objs.iter_mut().zip(row) {
                    *o += v;
                }
            }
            let mut best = (f32::INFINITY, 0u32);
            for (c, &o) in objs.iter().enumerate() {
                if o < best.0 {
                    best = (o, c as u32);
                }
            }
            codes[m] = best.1;
        }
    }
}

/// `n` standard normal draws (Box–Muller).
fn gaussians(rng: &mut Mt19937, n: usize) -> Vec<f32> {
    let mut uniform = || (rng.next_u32() as f64 + 0.5) / 4_294_967_296.0;
    (0..n)
        .map(|_| {
            let (a, b) = (uniform(), uniform());
            ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
        })
        .collect()
}
