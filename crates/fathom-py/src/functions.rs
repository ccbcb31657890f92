//! Faiss's free functions on arrays (`faiss.knn`, `pairwise_distances`, `kmin` / `kmax`,
//! `merge_knn_results`) and its `ResultHeap`: brute-force search and result merging
//! without an index, as Faiss's `extra_wrappers.py` offers them.

use fathom::kernels::TopK;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::arrays::{self, ArrayLike, F32Matrix, I64Matrix, matrix_out};
use crate::errors::OrRaise;
use crate::index::{check_k, metric};
use crate::threads::compute;

/// The `k` nearest rows of `xb` to each row of `xq` without an index (Faiss's `knn`):
/// `(D, I)`, shape `(nq, k)`, distances in the metric's own terms (similarities for inner
/// product, largest first).
#[pyfunction]
#[pyo3(signature = (xq, xb, k, metric = 1, metric_arg = 0.0))]
pub fn knn<'py>(
    py: Python<'py>,
    xq: &ArrayLike<'py>,
    xb: &ArrayLike<'py>,
    k: i64,
    metric: i64,
    metric_arg: f32,
) -> PyResult<(F32Matrix<'py>, I64Matrix<'py>)> {
    let k = check_k(k)?;
    let m = self::metric(metric, metric_arg)?;
    let (xq, xb, d) = query_and_base(xq, xb, "knn")?;
    let res = compute(py, || {
        fathom::kernels::knn(m, &xq.data, &xb.data, d, k, None)
    })
    .or_raise()?;
    Ok((
        matrix_out(py, res.distances, xq.n, k)?,
        matrix_out(py, res.labels, xq.n, k)?,
    ))
}

/// Every distance between the rows of `xq` and those of `xb` (Faiss's
/// `pairwise_distances`): shape `(nq, nb)`, squared L2 by default.
#[pyfunction]
#[pyo3(signature = (xq, xb, metric = 1, metric_arg = 0.0))]
pub fn pairwise_distances<'py>(
    py: Python<'py>,
    xq: &ArrayLike<'py>,
    xb: &ArrayLike<'py>,
    metric: i64,
    metric_arg: f32,
) -> PyResult<F32Matrix<'py>> {
    let m = self::metric(metric, metric_arg)?;
    let (xq, xb, d) = query_and_base(xq, xb, "pairwise_distances")?;
    let dis = compute(py, || {
        fathom::kernels::pairwise_distances(m, &xq.data, &xb.data, d)
    })
    .or_raise()?;
    matrix_out(py, dis, xq.n, xb.n)
}

/// The `k` best entries of each row of `rows` (`n × width`), as heaps would keep them:
/// `keep_max` the largest, else the smallest; ties go to the earlier column. Rows with
/// fewer than `k` entries are padded with id −1 and Faiss's neutral value (the largest
/// float for minima, the lowest for maxima).
fn best_per_row(
    values: &[f32],
    ids: impl Fn(usize, usize) -> i64 + Sync,
    width: usize,
    k: usize,
    keep_max: bool,
) -> (Vec<f32>, Vec<i64>) {
    let n = values.len().checked_div(width).unwrap_or(0);
    let sign = if keep_max { -1.0 } else { 1.0 };
    let pad = if keep_max { f32::MIN } else { f32::MAX };
    let mut d = vec![pad; n * k];
    let mut i = vec![-1i64; n * k];
    for r in 0..n {
        let mut top = TopK::new(k);
        for c in 0..width {
            let id = ids(r, c);
            if id >= 0 {
                // The column number breaks ties (earlier wins), then the id is looked up.
                top.push(sign * values[r * width + c], c as i64);
            }
        }
        for (slot, (key, c)) in top.into_sorted().into_iter().enumerate() {
            d[r * k + slot] = sign * key;
            i[r * k + slot] = ids(r, c as usize);
        }
    }
    (d, i)
}

/// `x` as a float matrix and its width, from its shape (so an empty one keeps it).
fn float_matrix(x: &ArrayLike<'_>, what: &str) -> PyResult<(Vec<f32>, usize, usize)> {
    let m = arrays::matrix(x, what, None)?;
    let shape: Vec<usize> = x.getattr("shape")?.extract()?;
    let width = shape.get(1).copied().unwrap_or(0);
    Ok((m.data, m.n, width))
}

/// Query and database matrices of one dimension, `xq`'s: `(xq, xb, d)`.
fn query_and_base(
    xq: &ArrayLike<'_>,
    xb: &ArrayLike<'_>,
    what: &str,
) -> PyResult<(arrays::Matrix, arrays::Matrix, usize)> {
    let (data, n, d) = float_matrix(xq, &format!("{what}: xq"))?;
    let xb = arrays::matrix(xb, &format!("{what}: xb"), Some(d))?;
    Ok((arrays::Matrix { data, n }, xb, d))
}

/// The `k` smallest values of each row of a 2-D array and their column numbers (Faiss's
/// `kmin`): `(D, I)`, shape `(n, k)`, ascending.
#[pyfunction]
pub fn kmin<'py>(
    py: Python<'py>,
    array: &ArrayLike<'py>,
    k: i64,
) -> PyResult<(F32Matrix<'py>, I64Matrix<'py>)> {
    kselect(py, array, k, false, "kmin")
}

/// The `k` largest values of each row of a 2-D array and their column numbers (Faiss's
/// `kmax`): `(D, I)`, shape `(n, k)`, descending.
#[pyfunction]
pub fn kmax<'py>(
    py: Python<'py>,
    array: &ArrayLike<'py>,
    k: i64,
) -> PyResult<(F32Matrix<'py>, I64Matrix<'py>)> {
    kselect(py, array, k, true, "kmax")
}

fn kselect<'py>(
    py: Python<'py>,
    array: &ArrayLike<'py>,
    k: i64,
    keep_max: bool,
    what: &str,
) -> PyResult<(F32Matrix<'py>, I64Matrix<'py>)> {
    let k = check_k(k)?;
    let (values, n, width) = float_matrix(array, &format!("{what}: array"))?;
    let (d, i) = compute(py, || {
        best_per_row(&values, |_, c| c as i64, width, k, keep_max)
    });
    Ok((matrix_out(py, d, n, k)?, matrix_out(py, i, n, k)?))
}

/// Merges sorted per-shard results (Faiss's `merge_knn_results`): `Dall`, `Iall` of shape
/// `(nshard, nq, k)` → `(D, I)` of shape `(nq, k)`. Entries with id −1 end a shard's list;
/// equal distances keep the lower shard first.
#[pyfunction]
#[pyo3(signature = (Dall, Iall, keep_max = false))]
#[allow(non_snake_case)]
pub fn merge_knn_results<'py>(
    py: Python<'py>,
    Dall: &ArrayLike<'py>,
    Iall: &ArrayLike<'py>,
    keep_max: bool,
) -> PyResult<(F32Matrix<'py>, I64Matrix<'py>)> {
    let shape: Vec<usize> = Dall.getattr("shape")?.extract()?;
    let ishape: Vec<usize> = Iall.getattr("shape")?.extract()?;
    let [nshard, nq, k] = shape[..] else {
        return Err(PyValueError::new_err(format!(
            "merge_knn_results: Dall must have shape (nshard, nq, k), got {shape:?}"
        )));
    };
    if ishape != shape {
        return Err(PyValueError::new_err(format!(
            "merge_knn_results: Iall has shape {ishape:?}, Dall {shape:?}; they must agree"
        )));
    }
    let dall = Dall.call_method1("reshape", (nshard * nq, k))?;
    let dall = arrays::matrix(&dall, "merge_knn_results: Dall", Some(k))?;
    let iall = arrays::ids_flat(Iall, "merge_knn_results: Iall")?;
    let stride = nq * k;
    let (d, i) = compute(py, || {
        // Each query's shards laid side by side: column s·k + j is shard s's j-th result,
        // so the earlier column (lower shard, then rank) wins a tie, as Faiss's heap.
        let mut vals = vec![0.0f32; nq * nshard * k];
        let mut ids = vec![-1i64; nq * nshard * k];
        for q in 0..nq {
            for s in 0..nshard {
                let src = s * stride + q * k;
                // A −1 ends the shard's list.
                let len = iall[src..src + k].iter().position(|&l| l < 0).unwrap_or(k);
                let dst = q * nshard * k + s * k;
                vals[dst..dst + len].copy_from_slice(&dall.data[src..src + len]);
                ids[dst..dst + len].copy_from_slice(&iall[src..src + len]);
            }
        }
        best_per_row(
            &vals,
            |r, c| ids[r * nshard * k + c],
            nshard * k,
            k,
            keep_max,
        )
    });
    Ok((matrix_out(py, d, nq, k)?, matrix_out(py, i, nq, k)?))
}

/// Accumulates results for `nq` queries from slices of a dataset (Faiss's `ResultHeap`):
/// `add_result(D, I)` any number of times, then `finalize()`; the merged `(nq, k)` result
/// is in `D` and `I`, best first.
///
/// ```python
/// rh = faiss.ResultHeap(nq, k)
/// for i0 in range(0, nb, bs):
///     D, I = faiss.knn(xq, xb[i0:i0 + bs], k)
///     rh.add_result(D, I + i0)
/// rh.finalize()
/// ```
#[pyclass(module = "fathom", name = "ResultHeap")]
pub struct ResultHeap {
    nq: usize,
    k: usize,
    keep_max: bool,
    heaps: Vec<TopK>,
    result: Option<Finalized>,
}

/// `ResultHeap`'s `(D, I)` after `finalize`.
type Finalized = (Py<numpy::PyArray2<f32>>, Py<numpy::PyArray2<i64>>);

#[pymethods]
impl ResultHeap {
    /// Heaps for `nq` queries of `k` results each; `keep_max` keeps the largest values
    /// (similarities) instead of the smallest.
    #[new]
    #[pyo3(signature = (nq, k, keep_max = false))]
    fn new(nq: i64, k: i64, keep_max: bool) -> PyResult<Self> {
        let nq = usize::try_from(nq)
            .map_err(|_| PyValueError::new_err(format!("nq must be ≥ 0, got {nq}")))?;
        let k = check_k(k)?;
        Ok(ResultHeap {
            nq,
            k,
            keep_max,
            heaps: (0..nq).map(|_| TopK::new(k)).collect(),
            result: None,
        })
    }

    /// Offers results `D`, `I` (shape `(nq, n)`, any order) to every query's heap; ids
    /// below 0 are skipped.
    #[allow(non_snake_case)]
    fn add_result(&mut self, D: &ArrayLike<'_>, I: &ArrayLike<'_>) -> PyResult<()> {
        let (vals, n, width) = float_matrix(D, "ResultHeap.add_result: D")?;
        if n != self.nq {
            return Err(PyValueError::new_err(format!(
                "ResultHeap.add_result: D has {n} rows for {} queries",
                self.nq
            )));
        }
        let ids = arrays::ids_flat(I, "ResultHeap.add_result: I")?;
        if ids.len() != vals.len() {
            return Err(PyValueError::new_err(format!(
                "ResultHeap.add_result: I has {} entries, D {}; their shapes must agree",
                ids.len(),
                vals.len()
            )));
        }
        self.offer(0..n, &vals, &ids, width)
    }

    /// Offers results for the queries in `subset` only (`D` of shape `(len(subset), n)`;
    /// `I` the same shape, or 1-D of length `n` for ids shared by every row).
    #[allow(non_snake_case)]
    fn add_result_subset(
        &mut self,
        subset: &ArrayLike<'_>,
        D: &ArrayLike<'_>,
        I: &ArrayLike<'_>,
    ) -> PyResult<()> {
        let subset = arrays::ids(subset, "ResultHeap.add_result_subset: subset")?;
        let (vals, n, width) = float_matrix(D, "ResultHeap.add_result_subset: D")?;
        if n != subset.len() {
            return Err(PyValueError::new_err(format!(
                "ResultHeap.add_result_subset: D has {n} rows for {} queries in subset",
                subset.len()
            )));
        }
        let rows = subset
            .iter()
            .map(|&q| {
                usize::try_from(q)
                    .ok()
                    .filter(|&q| q < self.nq)
                    .ok_or_else(|| {
                        PyValueError::new_err(format!(
                            "ResultHeap.add_result_subset: query {q} is outside 0..{}",
                            self.nq
                        ))
                    })
            })
            .collect::<PyResult<Vec<usize>>>()?;
        let mut ids = arrays::ids_flat(I, "ResultHeap.add_result_subset: I")?;
        if ids.len() == width && n != 1 {
            ids = ids.repeat(n);
        }
        if ids.len() != vals.len() {
            return Err(PyValueError::new_err(format!(
                "ResultHeap.add_result_subset: I has {} entries for D's {}",
                ids.len(),
                vals.len()
            )));
        }
        self.offer(rows.into_iter(), &vals, &ids, width)
    }

    /// Sorts every heap, best first, into `D` and `I` (unfilled slots: id −1).
    fn finalize(&mut self, py: Python<'_>) -> PyResult<()> {
        let fresh = (0..self.nq).map(|_| TopK::new(self.k)).collect();
        let heaps = std::mem::replace(&mut self.heaps, fresh);
        let sign = if self.keep_max { -1.0 } else { 1.0 };
        let pad = if self.keep_max { f32::MIN } else { f32::MAX };
        let (mut d, mut i) = (vec![pad; self.nq * self.k], vec![-1i64; self.nq * self.k]);
        for (q, top) in heaps.into_iter().enumerate() {
            for (slot, (key, id)) in top.into_sorted().into_iter().enumerate() {
                d[q * self.k + slot] = sign * key;
                i[q * self.k + slot] = id;
            }
        }
        self.result = Some((
            matrix_out(py, d, self.nq, self.k)?.unbind(),
            matrix_out(py, i, self.nq, self.k)?.unbind(),
        ));
        Ok(())
    }

    /// The merged distances, shape `(nq, k)` (after `finalize`).
    #[getter(D)]
    fn distances<'py>(&self, py: Python<'py>) -> PyResult<F32Matrix<'py>> {
        match &self.result {
            Some((d, _)) => Ok(d.bind(py).clone()),
            None => Err(PyValueError::new_err(
                "ResultHeap.D is set by finalize(); call it after the last add_result",
            )),
        }
    }

    /// The merged ids, shape `(nq, k)` (after `finalize`).
    #[getter(I)]
    fn labels<'py>(&self, py: Python<'py>) -> PyResult<I64Matrix<'py>> {
        match &self.result {
            Some((_, i)) => Ok(i.bind(py).clone()),
            None => Err(PyValueError::new_err(
                "ResultHeap.I is set by finalize(); call it after the last add_result",
            )),
        }
    }

    /// Number of queries.
    #[getter]
    fn nq(&self) -> usize {
        self.nq
    }

    /// Results kept per query.
    #[getter]
    fn k(&self) -> usize {
        self.k
    }
}

impl ResultHeap {
    fn offer(
        &mut self,
        rows: impl Iterator<Item = usize>,
        vals: &[f32],
        ids: &[i64],
        width: usize,
    ) -> PyResult<()> {
        let sign = if self.keep_max { -1.0 } else { 1.0 };
        let heaps = &mut self.heaps;
        for (r, q) in rows.enumerate() {
            for c in 0..width {
                let id = ids[r * width + c];
                if id >= 0 {
                    heaps[q].push(sign * vals[r * width + c], id);
                }
            }
        }
        Ok(())
    }
}

/// Adds the functions and `ResultHeap` to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(knn, m)?)?;
    m.add_function(wrap_pyfunction!(pairwise_distances, m)?)?;
    m.add_function(wrap_pyfunction!(kmin, m)?)?;
    m.add_function(wrap_pyfunction!(kmax, m)?)?;
    m.add_function(wrap_pyfunction!(merge_knn_results, m)?)?;
    m.add_class::<ResultHeap>()?;
    Ok(())
}
