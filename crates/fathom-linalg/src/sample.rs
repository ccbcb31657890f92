//! Seeded subsampling of training sets, shared by k-means, PCA and OPQ.

use crate::rng::rand_perm;

/// When `x` (rows of `d` elements: floats, or the bytes of codes) has more than `max_n` rows, the rows `perm[0..max_n]`
/// of Faiss's `rand_perm(n, seed)`, in that order (Faiss's `fvecs_maybe_subsample` and
/// k-means subsampling); `None` when no subsampling is needed.
pub fn subsample<T: Copy>(x: &[T], d: usize, max_n: usize, seed: i64) -> Option<Vec<T>> {
    let n = x.len() / d;
    if n <= max_n {
        return None;
    }
    let perm = rand_perm(n, seed);
    Some(
        perm[..max_n]
            .iter()
            .flat_map(|&i| &x[i * d..(i + 1) * d])
            .copied()
            .collect(),
    )
}
