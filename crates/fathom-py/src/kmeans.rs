//! `Kmeans`, Faiss's Python k-means object.

use std::sync::RwLock;

use fathom::MetricType;
use fathom::linalg::{ClusteringParameters, Kmeans as RustKmeans, KmeansEvent};
use numpy::PyArray1;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass_init::PyClassInitializer;
use pyo3::types::PyDict;

use crate::arrays::{self, ArrayLike, F32Matrix, F32Vector, F64Vector, I64Vector, matrix_out};
use crate::errors::{FathomError, OrRaise};
use crate::threads::{compute, with_read, with_write};

/// k-means clustering (Faiss's `faiss.Kmeans`): `Kmeans(d, k, niter=25, verbose=False,
/// spherical=False, seed=1234, …)`, then `train(x)`; the result is in `centroids`, `obj`
/// (the objective at each iteration) and `index` (a flat index over the centroids).
#[pyclass(frozen, module = "fathom", name = "Kmeans")]
pub struct Kmeans {
    km: RwLock<RustKmeans>,
    verbose: bool,
    /// Assign and average on the GPU (`gpu=True`, or a GPU count: fathom uses device 0).
    gpu: bool,
}

/// Faiss's verbose k-means line, for each finished iteration.
fn print_iteration(verbose: bool, e: &KmeansEvent) {
    if verbose
        && let KmeansEvent::Iteration {
            iteration, stats, ..
        } = e
    {
        println!(
            "  Iteration {iteration} ({:.2} s, search {:.2} s): objective={:.6} \
             imbalance={:.3} nsplit={}",
            stats.time_s, stats.time_search_s, stats.obj, stats.imbalance_factor, stats.nsplit
        );
    }
}

fn poisoned() -> PyErr {
    FathomError::new_err("an earlier call panicked while training this k-means")
}

#[pymethods]
impl Kmeans {
    /// `k` centroids of dimension `d`. Keyword options as Faiss's: `niter`, `nredo`,
    /// `verbose`, `spherical`, `int_centroids`, `update_index`, `min_points_per_centroid`,
    /// `max_points_per_centroid`, `seed`, `gpu` (true or a GPU count: the assignment and
    /// update steps run on GPU 0; `FathomError` at `train` where there is none).
    #[new]
    #[pyo3(signature = (d, k, **kwargs))]
    fn new(d: usize, k: usize, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut p = ClusteringParameters::default();
        let mut verbose = false;
        let mut gpu = false;
        if let Some(kwargs) = kwargs {
            for (key, value) in kwargs.iter() {
                let key: String = key.extract()?;
                match key.as_str() {
                    "niter" => p.niter = value.extract()?,
                    "nredo" => p.nredo = value.extract()?,
                    "verbose" => verbose = value.extract()?,
                    "spherical" => p.spherical = value.extract()?,
                    "int_centroids" => p.int_centroids = value.extract()?,
                    "update_index" => p.update_index = value.extract()?,
                    "frozen_centroids" => p.frozen_centroids = value.extract()?,
                    "min_points_per_centroid" => p.min_points_per_centroid = value.extract()?,
                    "max_points_per_centroid" => p.max_points_per_centroid = value.extract()?,
                    "seed" => p.seed = value.extract()?,
                    // Faiss takes True or a number of GPUs (−1: all).
                    "gpu" => gpu = value.is_truthy()?,
                    other => {
                        return Err(PyTypeError::new_err(format!(
                            "Kmeans got an unexpected keyword argument {other:?} (it takes \
                             niter, nredo, verbose, spherical, int_centroids, update_index, \
                             frozen_centroids, min_points_per_centroid, \
                             max_points_per_centroid, seed, gpu)"
                        )));
                    }
                }
            }
        }
        // As Faiss's Python Kmeans: spherical k-means assigns by inner product.
        let metric = if p.spherical {
            MetricType::InnerProduct
        } else {
            MetricType::L2
        };
        let km = RustKmeans::new(d, k)
            .or_raise()?
            .with_params(p)
            .with_metric(metric)
            .or_raise()?;
        Ok(Kmeans {
            km: RwLock::new(km),
            verbose,
            gpu,
        })
    }

    /// Dimension of the points.
    #[getter]
    fn d(&self) -> PyResult<usize> {
        Ok(self.km.read().map_err(|_| poisoned())?.d())
    }
    /// Number of centroids.
    #[getter]
    fn k(&self) -> PyResult<usize> {
        Ok(self.km.read().map_err(|_| poisoned())?.k())
    }

    /// Clusters `x` of shape `(n, d)` (`n ≥ k`); returns the final objective. Starting
    /// centroids may be given as `init_centroids` (`(k, d)`); per-point weights are not
    /// supported.
    #[pyo3(signature = (x, weights = None, init_centroids = None))]
    fn train(
        &self,
        py: Python<'_>,
        x: &ArrayLike<'_>,
        weights: Option<&ArrayLike<'_>>,
        init_centroids: Option<&ArrayLike<'_>>,
    ) -> PyResult<f64> {
        if weights.is_some_and(|w| !w.is_none()) {
            return Err(PyValueError::new_err(
                "Kmeans.train: weighted k-means is not supported by fathom",
            ));
        }
        let (d, k) = (self.d()?, self.k()?);
        let x = arrays::matrix(x, "Kmeans.train: x", Some(d))?;
        let init = match init_centroids {
            Some(c) if !c.is_none() => {
                let c = arrays::matrix(c, "Kmeans.train: init_centroids", Some(d))?;
                if c.n != k {
                    return Err(PyValueError::new_err(format!(
                        "init_centroids has {} rows, expected k = {k}",
                        c.n
                    )));
                }
                Some(c.data)
            }
            _ => None,
        };
        let (verbose, gpu) = (self.verbose, self.gpu);
        with_write(py, &self.km, |km| {
            if let Some(c) = &init {
                km.set_initial_centroids(c).or_raise()?;
            }
            let mut progress = |e: &KmeansEvent| print_iteration(verbose, e);
            if gpu {
                let res = fathom::gpu::GpuResources::new(0).or_raise()?;
                let mut assigner =
                    fathom::gpu::GpuAssigner::new(res, km.d(), km.metric()).or_raise()?;
                km.train_with_assigner(&x.data, &mut assigner, &mut progress)
                    .or_raise()?;
            } else {
                km.train_with_progress(&x.data, &mut progress).or_raise()?;
            }
            Ok(km.obj().last().copied().unwrap_or(0.0))
        })
    }

    /// The centroids, shape `(k, d)` (empty before training).
    #[getter]
    fn centroids<'py>(&self, py: Python<'py>) -> PyResult<F32Matrix<'py>> {
        let km = self.km.read().map_err(|_| poisoned())?;
        let c = km.centroids().to_vec();
        let n = c.len() / km.d();
        matrix_out(py, c, n, km.d())
    }

    /// The objective after each iteration (sum of squared distances for L2).
    #[getter]
    fn obj<'py>(&self, py: Python<'py>) -> PyResult<F64Vector<'py>> {
        let km = self.km.read().map_err(|_| poisoned())?;
        Ok(PyArray1::from_vec(py, km.obj()))
    }

    /// A flat index over the centroids (for `index.search(x, 1)`).
    #[getter]
    fn index(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (d, c, metric) = {
            let km = self.km.read().map_err(|_| poisoned())?;
            (
                km.d(),
                km.centroids().to_vec(),
                if km.params.spherical {
                    MetricType::InnerProduct
                } else {
                    MetricType::L2
                },
            )
        };
        crate::classes::wrap_index(py, crate::index::flat_over(d, metric, c)?)
    }

    /// The nearest centroid of each row of `x`: `(D, I)`, both of shape `(n,)`.
    fn assign<'py>(
        &self,
        py: Python<'py>,
        x: &ArrayLike<'py>,
    ) -> PyResult<(F32Vector<'py>, I64Vector<'py>)> {
        let x = arrays::matrix(x, "Kmeans.assign: x", Some(self.d()?))?;
        let (dist, ids) = with_read(py, &self.km, |km| {
            if km.centroids().is_empty() {
                return Err(FathomError::new_err("Kmeans.assign: call train() first"));
            }
            km.assign(&x.data).or_raise()
        })?;
        Ok((PyArray1::from_vec(py, dist), PyArray1::from_vec(py, ids)))
    }
}

/// k-means options (Faiss's `ClusteringParameters`): set the attributes, then pass it to
/// `Clustering(d, k, cp)`.
#[pyclass(subclass, module = "fathom", name = "ClusteringParameters")]
#[derive(Clone)]
pub struct PyClusteringParameters {
    /// Iterations of one run.
    #[pyo3(get, set)]
    niter: usize,
    /// Runs with different seeds; the best objective is kept.
    #[pyo3(get, set)]
    nredo: usize,
    /// Print each iteration's objective.
    #[pyo3(get, set)]
    verbose: bool,
    /// Normalise the centroids after each iteration.
    #[pyo3(get, set)]
    spherical: bool,
    /// Round the centroids to integers after each iteration.
    #[pyo3(get, set)]
    int_centroids: bool,
    /// Re-add the centroids to the assignment index after each iteration.
    #[pyo3(get, set)]
    update_index: bool,
    /// Keep the initial centroids as given (`train` with `init_centroids`).
    #[pyo3(get, set)]
    frozen_centroids: bool,
    /// Below this many points per centroid, a warning.
    #[pyo3(get, set)]
    min_points_per_centroid: usize,
    /// Above this many points per centroid, the training set is subsampled.
    #[pyo3(get, set)]
    max_points_per_centroid: usize,
    /// Seed of the subsampling and the initial centroids.
    #[pyo3(get, set)]
    seed: i64,
}

impl PyClusteringParameters {
    fn to_rust(&self) -> ClusteringParameters {
        ClusteringParameters {
            niter: self.niter,
            nredo: self.nredo,
            spherical: self.spherical,
            int_centroids: self.int_centroids,
            update_index: self.update_index,
            frozen_centroids: self.frozen_centroids,
            min_points_per_centroid: self.min_points_per_centroid,
            max_points_per_centroid: self.max_points_per_centroid,
            seed: self.seed,
            ..ClusteringParameters::default()
        }
    }
}

#[pymethods]
impl PyClusteringParameters {
    /// Faiss's defaults: 25 iterations, one run, seed 1234, 39 to 256 points per centroid.
    #[new]
    fn new() -> Self {
        let p = ClusteringParameters::default();
        PyClusteringParameters {
            niter: p.niter,
            nredo: p.nredo,
            verbose: false,
            spherical: p.spherical,
            int_centroids: p.int_centroids,
            update_index: p.update_index,
            frozen_centroids: p.frozen_centroids,
            min_points_per_centroid: p.min_points_per_centroid,
            max_points_per_centroid: p.max_points_per_centroid,
            seed: p.seed,
        }
    }
}

/// k-means through an index (Faiss's `Clustering`): `clus = Clustering(d, k[, cp])`, set
/// `clus.niter` and the other `ClusteringParameters` attributes, then `clus.train(x,
/// index)`. The index's metric is the assignment's; afterwards it holds the centroids (as
/// Faiss leaves it), and `clus.centroids` is the flat `k·d` array
/// (`faiss.vector_to_array(clus.centroids).reshape(k, d)` works as with Faiss).
#[pyclass(extends = PyClusteringParameters, module = "fathom", name = "Clustering")]
pub struct Clustering {
    d: usize,
    k: usize,
    centroids: Vec<f32>,
    obj: Vec<f64>,
}

#[pymethods]
impl Clustering {
    /// `k` centroids of dimension `d`, with the options of `cp` (Faiss's defaults when
    /// left out).
    #[new]
    #[pyo3(signature = (d, k, cp = None))]
    fn new(
        d: usize,
        k: usize,
        cp: Option<PyRef<'_, PyClusteringParameters>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        if d == 0 || k == 0 {
            return Err(PyValueError::new_err(format!(
                "Clustering: d and k must be at least 1, got d = {d}, k = {k}"
            )));
        }
        let params = cp.map_or_else(PyClusteringParameters::new, |c| c.clone());
        Ok(PyClassInitializer::from(params).add_subclass(Clustering {
            d,
            k,
            centroids: Vec::new(),
            obj: Vec::new(),
        }))
    }

    /// Dimension of the points.
    #[getter]
    fn d(&self) -> usize {
        self.d
    }
    /// Number of centroids.
    #[getter]
    fn k(&self) -> usize {
        self.k
    }

    /// Clusters `x` (`(n, d)`, `n ≥ k`) assigning with `index`'s metric (L2 when no index
    /// is given); `index` is then emptied and given the centroids, as Faiss does.
    #[pyo3(signature = (x, index = None, weights = None))]
    fn train(
        mut slf: PyRefMut<'_, Self>,
        x: &ArrayLike<'_>,
        index: Option<&Bound<'_, PyAny>>,
        weights: Option<&ArrayLike<'_>>,
    ) -> PyResult<()> {
        let py = slf.py();
        if weights.is_some_and(|w| !w.is_none()) {
            return Err(PyValueError::new_err(
                "Clustering.train: weighted k-means is not supported by fathom",
            ));
        }
        let (d, k) = (slf.d, slf.k);
        let (params, verbose) = {
            let base = slf.as_super();
            (base.to_rust(), base.verbose)
        };
        let metric = match index {
            Some(ix) if !ix.is_none() => match ix.getattr("metric_type")?.extract::<i64>()? {
                0 => MetricType::InnerProduct,
                _ => MetricType::L2,
            },
            _ => MetricType::L2,
        };
        let x = arrays::matrix(x, "Clustering.train: x", Some(d))?;
        let mut km = RustKmeans::new(d, k)
            .or_raise()?
            .with_params(params)
            .with_metric(metric)
            .or_raise()?;
        compute(py, || {
            km.train_with_progress(&x.data, &mut |e| print_iteration(verbose, e))
        })
        .or_raise()?;
        slf.centroids = km.centroids().to_vec();
        slf.obj = km.obj();
        if let Some(ix) = index.filter(|ix| !ix.is_none()) {
            ix.call_method0("reset")?;
            ix.call_method1("add", (matrix_out(py, slf.centroids.clone(), k, d)?,))?;
        }
        Ok(())
    }

    /// The centroids, flat (`k·d` floats; empty before training).
    #[getter]
    fn centroids<'py>(&self, py: Python<'py>) -> F32Vector<'py> {
        PyArray1::from_vec(py, self.centroids.clone())
    }

    /// The objective after each iteration.
    #[getter]
    fn obj<'py>(&self, py: Python<'py>) -> F64Vector<'py> {
        PyArray1::from_vec(py, self.obj.clone())
    }
}
