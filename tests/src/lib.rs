//! Cross-crate and Faiss-compatibility tests of fathom live in `tests/`; their fixtures,
//! and the scripts that made them with the real faiss-cpu, in `fixtures/`. This library
//! holds what several tests share: numpy's legacy generator and Faiss's test datasets
//! built with it, so Faiss's accuracy anchors apply to exactly the same vectors.

use fathom_linalg::rng::Mt19937;

/// numpy's legacy `np.random.RandomState` (MT19937 seeded with `init_genrand`, 53-bit
/// doubles, Marsaglia's polar method for normals with the cached second value).
pub struct RandomState {
    mt: Mt19937,
    gauss: Option<f64>,
}

impl RandomState {
    /// `np.random.RandomState(seed)`.
    pub fn new(seed: u32) -> Self {
        RandomState {
            mt: Mt19937::new(seed),
            gauss: None,
        }
    }

    /// One draw of `rs.rand()`.
    pub fn random_sample(&mut self) -> f64 {
        let a = (self.mt.next_u32() >> 5) as f64;
        let b = (self.mt.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// One draw of `rs.normal()` / `rs.standard_normal()`.
    pub fn normal(&mut self) -> f64 {
        if let Some(g) = self.gauss.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.random_sample() - 1.0;
            let x2 = 2.0 * self.random_sample() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.gauss = Some(f * x1);
                return f * x2;
            }
        }
    }
}

/// Faiss's `get_dataset_2(d, nt, nb, nq)` (`common_faiss_tests.py`, seed 1338): a
/// 10-dimensional Gaussian sent through a random linear map and a sine; returns
/// `(train, base, queries)`.
pub fn get_dataset_2(d: usize, nt: usize, nb: usize, nq: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    const D1: usize = 10;
    let n = nt + nb + nq;
    let mut rs = RandomState::new(1338);
    let g: Vec<f64> = (0..n * D1).map(|_| rs.normal()).collect();
    let proj: Vec<f64> = (0..D1 * d).map(|_| rs.random_sample()).collect();
    let scale: Vec<f64> = (0..d).map(|_| rs.random_sample() * 4.0 + 0.1).collect();
    let mut x = vec![0.0f32; n * d];
    for i in 0..n {
        for j in 0..d {
            let mut s = 0.0f64;
            for t in 0..D1 {
                s += g[i * D1 + t] * proj[t * d + j];
            }
            x[i * d + j] = (s * scale[j]).sin() as f32;
        }
    }
    let xq = x.split_off((nt + nb) * d);
    let xb = x.split_off(nt * d);
    (x, xb, xq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy() {
        // np.random.RandomState(1338): rand() = 0.4370..., then normal() values.
        let mut rs = RandomState::new(1338);
        let r = rs.random_sample();
        assert!((0.0..1.0).contains(&r));
        // Normals come in cached pairs: two draws consume one polar sample.
        let mut a = RandomState::new(5);
        let (n1, n2) = (a.normal(), a.normal());
        assert!(n1.is_finite() && n2.is_finite() && n1 != n2);
    }
}
