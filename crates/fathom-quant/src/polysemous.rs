//! Polysemous training (Faiss's `PolysemousTraining`): renumbers each sub-quantizer's
//! centroids so that the Hamming distance between two indices tracks the distance between
//! the centroids. Codes then serve twice: as a cheap binary filter (Hamming distance
//! against a threshold `ht`) and for the exact asymmetric distance of the survivors.
//!
//! The renumbering is found by simulated annealing over permutations, minimising
//! `Σ_ij w_ij (t_ij − hamming(π_i, π_j))²` where `t` is the centroid distance table mapped
//! affinely onto the range of Hamming distances and `w_ij = exp(−ln2 · t_ij)` favours
//! small distances. Every step of it, including Faiss's random generator, is Faiss's, so
//! the resulting centroid order is the one faiss-cpu produces from the same centroids.

use fathom_core::{Error, Result};
use fathom_linalg::rng::FaissRng;
use rayon::prelude::*;

use crate::ProductQuantizer;

/// Simulated-annealing settings and limits, with Faiss's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct PolysemousTraining {
    /// Probability of accepting a worsening swap at the start (0.7).
    pub init_temperature: f64,
    /// Factor applied to the temperature at each iteration (0.9^(1/500)).
    pub temperature_decay: f64,
    /// Iterations per run (500 000).
    pub n_iter: usize,
    /// Runs per sub-quantizer; the lowest cost is kept (2).
    pub n_redo: usize,
    /// Seed of every sub-quantizer's generator (123).
    pub seed: i64,
    /// Decay of the weight of a distance (ln 2).
    pub dis_weight_factor: f64,
    /// Refuse to train when the per-sub-quantizer tables would exceed this (20 GiB).
    pub max_memory: usize,
}

impl Default for PolysemousTraining {
    fn default() -> Self {
        PolysemousTraining {
            init_temperature: 0.7,
            temperature_decay: 0.9f64.powf(1.0 / 500.0),
            n_iter: 500_000,
            n_redo: 2,
            seed: 123,
            dis_weight_factor: std::f64::consts::LN_2,
            max_memory: 20 << 30,
        }
    }
}

impl PolysemousTraining {
    /// Reorders the centroids of every sub-quantizer of a trained `pq` (in parallel).
    pub fn optimize_pq_for_hamming(&self, pq: &mut ProductQuantizer) -> Result<()> {
        if !pq.is_trained() {
            return Err(Error::NotTrained(
                "polysemous training of a product quantizer".into(),
            ));
        }
        let n = pq.ksub();
        let bytes = n * n * 3 * std::mem::size_of::<f64>();
        if bytes > self.max_memory {
            return Err(Error::invalid(format!(
                "polysemous training of {}-bit sub-quantizers needs {bytes} bytes per \
                 sub-quantizer, above max_memory = {}",
                pq.nbits(),
                self.max_memory
            )));
        }
        let dsub = pq.dsub();
        let perms: Vec<Vec<u32>> = (0..pq.m())
            .into_par_iter()
            .map(|s| {
                let mut dis = Vec::with_capacity(n * n);
                for i in 0..n {
                    for j in 0..n {
                        dis.push(fathom_kernels::distance::scalar::l2_sqr(
                            pq.centroid(s, i),
                            pq.centroid(s, j),
                        ) as f64);
                    }
                }
                let obj = Objective::new(pq.nbits(), &dis, self.dis_weight_factor);
                self.run_optimization(&obj)
            })
            .collect();
        let mut c = pq.centroids().to_vec();
        for (s, perm) in perms.iter().enumerate() {
            let base = s * n * dsub;
            for (i, &p) in perm.iter().enumerate() {
                let p = p as usize;
                c[base + p * dsub..base + (p + 1) * dsub].copy_from_slice(pq.centroid(s, i));
            }
        }
        pq.set_centroids(&c)
    }

    fn run_optimization(&self, obj: &Objective) -> Vec<u32> {
        let mut rng = FaissRng::new(self.seed);
        let mut best = (0..obj.n as u32).collect();
        let mut min_cost = 1e30f64;
        for _ in 0..self.n_redo {
            let mut perm: Vec<u32> = (0..obj.n as u32).collect();
            // Faiss keeps the final cost in a float.
            let cost = self.optimize(obj, &mut perm, &mut rng) as f32 as f64;
            if cost < min_cost {
                best = perm;
                min_cost = cost;
            }
        }
        best
    }

    fn optimize(&self, obj: &Objective, perm: &mut [u32], rng: &mut FaissRng) -> f64 {
        let n = obj.n;
        let mut cost = obj.cost(perm);
        let mut temperature = self.init_temperature;
        for _ in 0..self.n_iter {
            temperature *= self.temperature_decay;
            let iw = rng.rand_int(n as u32) as usize;
            let mut jw = rng.rand_int(n as u32 - 1) as usize;
            if jw == iw {
                jw += 1;
            }
            let delta = obj.cost_update(perm, iw, jw);
            if delta < 0.0 || (rng.rand_float() as f64) < temperature {
                perm.swap(iw, jw);
                cost += delta;
            }
        }
        cost
    }
}

/// Faiss's `ReproduceWithHammingObjective`.
struct Objective {
    n: usize,
    target: Vec<f64>,
    weights: Vec<f64>,
}

#[inline(always)]
fn ham(a: usize, b: usize) -> f64 {
    (a ^ b).count_ones() as f64
}

#[inline(always)]
fn sqr(x: f64) -> f64 {
    x * x
}

impl Objective {
    fn new(nbits: usize, dis: &[f64], dis_weight_factor: f64) -> Self {
        let n = 1usize << nbits;
        let n2 = (n * n) as f64;
        let (sum, sum2) = dis
            .iter()
            .fold((0.0f64, 0.0f64), |(s, s2), &x| (s + x, s2 + x * x));
        let mean = sum / n2;
        let stddev = (sum2 / n2 - mean * mean).sqrt();
        // Faiss's integer divisions: sqrt(nbits / 4) and nbits / 2.
        let scale = ((nbits / 4) as f64).sqrt();
        let shift = (nbits / 2) as f64;
        let target: Vec<f64> = dis
            .iter()
            .map(|&x| (x - mean) / stddev * scale + shift)
            .collect();
        let weights = target
            .iter()
            .map(|&t| (-dis_weight_factor * t).exp())
            .collect();
        Objective { n, target, weights }
    }

    fn cost(&self, perm: &[u32]) -> f64 {
        let n = self.n;
        let mut cost = 0.0;
        for i in 0..n {
            for j in 0..n {
                let w = self.weights[i * n + j];
                cost += w * sqr(self.target[i * n + j] - ham(perm[i] as usize, perm[j] as usize));
            }
        }
        cost
    }

    /// The change of cost if `perm[iw]` and `perm[jw]` were swapped, in O(n) (the
    /// tables are symmetric, so only rows `iw` and `jw` are read).
    fn cost_update(&self, perm: &[u32], iw: usize, jw: usize) -> f64 {
        let n = self.n;
        fathom_kernels::codes::pq::swap_delta(
            perm,
            iw,
            jw,
            &self.target[iw * n..(iw + 1) * n],
            &self.weights[iw * n..(iw + 1) * n],
            &self.target[jw * n..(jw + 1) * n],
            &self.weights[jw * n..(jw + 1) * n],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_update_is_the_difference_of_costs() {
        let nbits = 4;
        let n = 16;
        let dis: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                ((i as f64 - j as f64) * 0.7).powi(2) + ((i * j) % 5) as f64 * 0.0
            })
            .collect();
        let obj = Objective::new(nbits, &dis, std::f64::consts::LN_2);
        let mut perm: Vec<u32> = (0..n as u32).rev().collect();
        perm.swap(3, 9);
        for (iw, jw) in [(0, 1), (3, 9), (15, 2), (7, 8)] {
            let before = obj.cost(&perm);
            let delta = obj.cost_update(&perm, iw, jw);
            let mut p2 = perm.clone();
            p2.swap(iw, jw);
            let after = obj.cost(&p2);
            assert!((after - before - delta).abs() < 1e-9 * before.abs().max(1.0));
        }
    }
}
