//! Dense symmetric positive-definite solves (the normal equations of least-squares
//! codebook updates), through faer's Cholesky factorisation.

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use fathom_core::{Error, Result};

/// Solves `A·X = B` for `X`, with `A` an `n × n` symmetric positive-definite matrix and
/// `B` an `n × m` one, both row-major; returns `X` row-major.
///
/// ```
/// // [[4, 1], [1, 3]] · X = [[1], [2]]
/// let x = fathom_linalg::solve_spd(&[4.0, 1.0, 1.0, 3.0], &[1.0, 2.0], 2, 1).unwrap();
/// assert!((x[0] - 1.0 / 11.0).abs() < 1e-12 && (x[1] - 7.0 / 11.0).abs() < 1e-12);
/// ```
pub fn solve_spd(a: &[f64], b: &[f64], n: usize, m: usize) -> Result<Vec<f64>> {
    if a.len() != n * n || b.len() != n * m {
        return Err(Error::invalid(format!(
            "solve_spd: A holds {} values and B {}; n = {n}, m = {m} needs {} and {}",
            a.len(),
            b.len(),
            n * n,
            n * m
        )));
    }
    let am = Mat::<f64>::from_fn(n, n, |i, j| a[i * n + j]);
    let bm = Mat::<f64>::from_fn(n, m, |i, j| b[i * m + j]);
    let llt = am
        .llt(Side::Lower)
        .map_err(|e| Error::invalid(format!("the matrix is not positive definite ({e:?})")))?;
    let x = llt.solve(&bm);
    Ok((0..n)
        .flat_map(|i| (0..m).map(move |j| (i, j)))
        .map(|(i, j)| x[(i, j)])
        .collect())
}
