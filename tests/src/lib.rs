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
        // numpy 2.x: the get_dataset_2 recipe with d = 32, n = 27 (see the doc comment).
        let (xt, _, xq) = get_dataset_2(32, 15, 10, 2);
        let want_first = [-0.842_034_8f32, 0.757_297_3, 0.281_944_85, -0.562_666_9];
        let want_last = [-0.934_123_4f32, 0.972_420_7, 0.498_513_6];
        for (a, b) in xt[..4].iter().zip(want_first) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        for (a, b) in xq[xq.len() - 3..].iter().zip(want_last) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
