//! Faiss's random generator: `std::mt19937` seeded with the low 32 bits of the seed, with
//! Faiss's derived draws (`rand_int(max) = mt() % max`, `rand_float = mt() / (2³²−1)`) and
//! `rand_perm`. Using the same generator means the same seed subsamples the same training
//! points and picks the same initial centroids as faiss-cpu 1.15.

/// The 32-bit Mersenne Twister (MT19937), as C++'s `std::mt19937`.
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    /// Seeds as `std::mt19937(seed)`.
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: 624 }
    }

    fn twist(&mut self) {
        for k in 0..624 {
            let y = (self.state[k] & 0x8000_0000) | (self.state[(k + 1) % 624] & 0x7fff_ffff);
            let mut v = self.state[(k + 397) % 624] ^ (y >> 1);
            if y & 1 == 1 {
                v ^= 0x9908_b0df;
            }
            self.state[k] = v;
        }
        self.index = 0;
    }

    /// The next 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mt19937 { .. }")
    }
}

/// Faiss's `RandomGenerator`.
#[derive(Clone, Debug)]
pub struct FaissRng(Mt19937);

impl FaissRng {
    /// `RandomGenerator(seed)`: the generator is seeded with `(unsigned int) seed`.
    pub fn new(seed: i64) -> Self {
        FaissRng(Mt19937::new(seed as u32))
    }

    /// A uniform integer in `0..max` (`max >= 1`), as `rand_int(max)`.
    pub fn rand_int(&mut self, max: u32) -> u32 {
        self.0.next_u32() % max.max(1)
    }

    /// A uniform float in `[0, 1]`, as `rand_float()`.
    pub fn rand_float(&mut self) -> f32 {
        self.0.next_u32() as f32 / u32::MAX as f32
    }
}

/// A random permutation of `0..n`, as Faiss's `rand_perm(perm, n, seed)`.
pub fn rand_perm(n: usize, seed: i64) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    let mut rng = FaissRng::new(seed);
    for i in 0..n.saturating_sub(1) {
        let j = i + rng.rand_int((n - i) as u32) as usize;
        perm.swap(i, j);
    }
    perm
}

/// Standard normal floats as Faiss's `float_randn(x, n, seed)`: blocks of the output drawn
/// from generators seeded from a first generator, Marsaglia's polar method.
pub fn float_randn(n: usize, seed: i64) -> Vec<f32> {
    let nblock = if n < 1024 { 1 } else { 1024 };
    let mut rng0 = FaissRng::new(seed);
    let a0 = (rng0.0.next_u32() & 0x7fff_ffff) as i64;
    let b0 = (rng0.0.next_u32() & 0x7fff_ffff) as i64;
    let mut x = vec![0.0f32; n];
    for j in 0..nblock {
        let mut rng = FaissRng::new(a0 + j as i64 * b0);
        let mut rand_double = || rng.0.next_u32() as f64 / u32::MAX as f64;
        let (lo, hi) = (j * n / nblock, (j + 1) * n / nblock);
        let (mut b, mut s) = (0.0f64, 0.0f64);
        for (i, v) in x[lo..hi].iter_mut().enumerate() {
            if i % 2 == 0 {
                let a = loop {
                    let a = 2.0 * rand_double() - 1.0;
                    b = 2.0 * rand_double() - 1.0;
                    s = a * a + b * b;
                    if s < 1.0 {
                        break a;
                    }
                };
                *v = (a * (-2.0 * s.ln() / s).sqrt()) as f32;
            } else {
                *v = (b * (-2.0 * s.ln() / s).sqrt()) as f32;
            }
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_std_mt19937_and_faiss() {
        // std::mt19937 with the default seed 5489: the 10000th output is 4123659995.
        let mut mt = Mt19937::new(5489);
        let v = (0..10000).map(|_| mt.next_u32()).last().unwrap();
        assert_eq!(v, 4_123_659_995);
        // faiss.RandomGenerator(7).rand_int(1000003), as printed by faiss-cpu 1.15.1.
        let mut r = FaissRng::new(7);
        let got: Vec<u32> = (0..8).map(|_| r.rand_int(1_000_003)).collect();
        assert_eq!(
            got,
            [
                740634, 410964, 715674, 971179, 947637, 422744, 249966, 716411
            ]
        );
    }

    #[test]
    fn perm_is_a_permutation() {
        let mut p = rand_perm(1000, 3);
        assert_ne!(p[..10], (0..10).collect::<Vec<_>>()[..]);
        p.sort();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
        assert!(rand_perm(0, 1).is_empty());
    }
}
