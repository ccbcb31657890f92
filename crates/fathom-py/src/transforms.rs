//! Vector transforms (Faiss's `VectorTransform` family): PCA, OPQ, random rotation,
//! dimension remapping, L2 normalisation.

use std::sync::RwLock;

use fathom::linalg::{
    NormalizationTransform, OpqMatrix, PcaMatrix, RandomRotationMatrix, RemapDimensionsTransform,
    TransformView,
};
use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::type_object::PyTypeInfo;

use crate::arrays::{self, ArrayLike, F32Matrix, F32Vector, matrix_out};
use crate::errors::{FathomError, OrRaise};
use crate::threads::{with_read, with_write};

type Boxed = Box<dyn fathom::linalg::VectorTransform>;

enum Slot {
    Owned(Boxed),
    Moved(String),
}

/// Faiss's `VectorTransform`: `train`, `apply`, `reverse_transform`.
#[pyclass(subclass, frozen, module = "fathom", name = "VectorTransform")]
pub struct PyVectorTransform {
    slot: RwLock<Slot>,
}

fn poisoned() -> PyErr {
    FathomError::new_err("an earlier call panicked while training this transform")
}

impl PyVectorTransform {
    fn new(t: impl fathom::linalg::VectorTransform + 'static) -> PyClassInitializer<Self> {
        PyClassInitializer::from(PyVectorTransform {
            slot: RwLock::new(Slot::Owned(Box::new(t))),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&dyn fathom::linalg::VectorTransform) -> PyResult<T>,
    ) -> PyResult<T> {
        let guard = self.slot.read().map_err(|_| poisoned())?;
        match &*guard {
            Slot::Owned(t) => f(&**t),
            Slot::Moved(note) => Err(FathomError::new_err(note.clone())),
        }
    }

    /// `with`, without the GIL and on fathom's threads.
    fn with_detached<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&dyn fathom::linalg::VectorTransform) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        with_read(py, &self.slot, |slot| match slot {
            Slot::Owned(t) => f(&**t),
            Slot::Moved(note) => Err(FathomError::new_err(note.clone())),
        })
    }

    fn dims(&self) -> PyResult<(usize, usize)> {
        self.with(|t| Ok((t.d_in(), t.d_out())))
    }

    /// The linear map's matrix and bias, for transforms that are linear.
    fn linear(&self) -> PyResult<fathom::linalg::LinearTransform> {
        self.with(|t| match t.view() {
            TransformView::Pca(p) => Ok(p.linear().clone()),
            TransformView::Opq(o) => Ok(o.linear().clone()),
            TransformView::RandomRotation(r) => Ok(r.linear().clone()),
            TransformView::Linear(lt) => Ok(lt.clone()),
            TransformView::Normalization(_)
            | TransformView::Centering(_)
            | TransformView::RemapDimensions(_)
            | TransformView::Other => Err(FathomError::new_err(format!(
                "{} is not linear",
                t.description()
            ))),
        })
    }
}

/// `t` with its most specific Python class (`PCAMatrix`, `OPQMatrix`, …;
/// `VectorTransform` for the others).
pub(crate) fn wrap_transform(py: Python<'_>, t: Boxed) -> PyResult<Py<PyAny>> {
    enum Class {
        Pca,
        Opq,
        RandomRotation,
        Remap,
        Normalization,
        Base,
    }
    let class = match t.view() {
        TransformView::Pca(_) => Class::Pca,
        TransformView::Opq(_) => Class::Opq,
        TransformView::RandomRotation(_) => Class::RandomRotation,
        TransformView::RemapDimensions(_) => Class::Remap,
        TransformView::Normalization(_) => Class::Normalization,
        TransformView::Linear(_) | TransformView::Centering(_) | TransformView::Other => {
            Class::Base
        }
    };
    let base = PyClassInitializer::from(PyVectorTransform {
        slot: RwLock::new(Slot::Owned(t)),
    });
    Ok(match class {
        Class::Pca => Py::new(py, base.add_subclass(PyPCAMatrix))?.into_any(),
        Class::Opq => Py::new(py, base.add_subclass(PyOPQMatrix))?.into_any(),
        Class::RandomRotation => Py::new(py, base.add_subclass(PyRandomRotationMatrix))?.into_any(),
        Class::Remap => Py::new(py, base.add_subclass(PyRemapDimensionsTransform))?.into_any(),
        Class::Normalization => {
            Py::new(py, base.add_subclass(PyNormalizationTransform))?.into_any()
        }
        Class::Base => Py::new(py, base)?.into_any(),
    })
}

/// Takes the transform out of a Python transform for a new owner (an `IndexPreTransform`).
pub(crate) fn take_transform(obj: &Bound<'_, PyAny>, owner: &str) -> PyResult<Boxed> {
    let t = obj.cast::<PyVectorTransform>().map_err(|_| {
        PyValueError::new_err(format!(
            "{owner} needs a fathom VectorTransform (PCAMatrix, …)"
        ))
    })?;
    let mut guard = t.get().slot.write().map_err(|_| poisoned())?;
    let desc = match &*guard {
        Slot::Owned(t) => t.description(),
        Slot::Moved(note) => return Err(FathomError::new_err(note.clone())),
    };
    let note = format!("this transform ({desc}) now belongs to the {owner} built from it");
    match std::mem::replace(&mut *guard, Slot::Moved(note)) {
        Slot::Owned(t) => Ok(t),
        Slot::Moved(_) => unreachable!("checked above"),
    }
}

#[pymethods]
impl PyVectorTransform {
    /// Input dimension.
    #[getter]
    fn d_in(&self) -> PyResult<usize> {
        Ok(self.dims()?.0)
    }
    /// Output dimension.
    #[getter]
    fn d_out(&self) -> PyResult<usize> {
        Ok(self.dims()?.1)
    }
    /// Whether `apply` may be called.
    #[getter]
    fn is_trained(&self) -> PyResult<bool> {
        self.with(|t| Ok(t.is_trained()))
    }
    /// Learns the transform from `x` of shape `(n, d_in)`.
    fn train(&self, py: Python<'_>, x: &ArrayLike<'_>) -> PyResult<()> {
        let x = arrays::matrix(x, "train: x", Some(self.dims()?.0))?;
        with_write(py, &self.slot, |slot| match slot {
            Slot::Owned(t) => t.train(&x.data).or_raise(),
            Slot::Moved(note) => Err(FathomError::new_err(note.clone())),
        })
    }
    /// Transforms `x` of shape `(n, d_in)` into `(n, d_out)`.
    fn apply<'py>(&self, py: Python<'py>, x: &ArrayLike<'py>) -> PyResult<F32Matrix<'py>> {
        let (d_in, d_out) = self.dims()?;
        let x = arrays::matrix(x, "apply: x", Some(d_in))?;
        let y = self.with_detached(py, |t| t.apply(&x.data).or_raise())?;
        matrix_out(py, y, x.n, d_out)
    }
    /// Same as `apply` (Faiss's Python name).
    fn apply_py<'py>(&self, py: Python<'py>, x: &ArrayLike<'py>) -> PyResult<F32Matrix<'py>> {
        self.apply(py, x)
    }
    /// Maps `(n, d_out)` vectors back to `(n, d_in)` (exact for invertible transforms).
    fn reverse_transform<'py>(
        &self,
        py: Python<'py>,
        y: &ArrayLike<'py>,
    ) -> PyResult<F32Matrix<'py>> {
        let (d_in, d_out) = self.dims()?;
        let y = arrays::matrix(y, "reverse_transform: x", Some(d_out))?;
        let x = self.with_detached(py, |t| t.reverse_transform(&y.data).or_raise())?;
        matrix_out(py, x, y.n, d_in)
    }
    /// The matrix `A` (`d_out × d_in`) of a linear transform `y = A x + b`.
    #[getter(A)]
    fn a<'py>(&self, py: Python<'py>) -> PyResult<F32Matrix<'py>> {
        let lt = self.linear()?;
        matrix_out(py, lt.a.clone(), lt.d_out, lt.d_in)
    }
    /// The bias `b` (`d_out`; empty when there is none) of a linear transform.
    #[getter]
    fn b<'py>(&self, py: Python<'py>) -> PyResult<F32Vector<'py>> {
        Ok(PyArray1::from_vec(py, self.linear()?.b))
    }
}

/// PCA, optionally whitened (`eigen_power = -0.5`) and rotated (Faiss's `PCAMatrix`).
#[pyclass(extends = PyVectorTransform, frozen, module = "fathom", name = "PCAMatrix")]
pub struct PyPCAMatrix;

#[pymethods]
impl PyPCAMatrix {
    /// Projects `d_in` dimensions onto the `d_out` principal components.
    #[new]
    #[pyo3(signature = (d_in, d_out, eigen_power = 0.0, random_rotation = false))]
    fn new(
        d_in: usize,
        d_out: usize,
        eigen_power: f32,
        random_rotation: bool,
    ) -> PyResult<PyClassInitializer<Self>> {
        let pca = PcaMatrix::new(d_in, d_out, eigen_power, random_rotation).or_raise()?;
        Ok(PyVectorTransform::new(pca).add_subclass(PyPCAMatrix))
    }
    /// The eigenvalues of the covariance, largest first.
    #[getter]
    fn eigenvalues<'py>(slf: &Bound<'py, Self>) -> PyResult<F32Vector<'py>> {
        let v = slf.as_super().get().with(|t| match t.view() {
            TransformView::Pca(p) => Ok(p.eigenvalues().to_vec()),
            _ => Err(FathomError::new_err("not a PCAMatrix")),
        })?;
        Ok(PyArray1::from_vec(slf.py(), v))
    }
    /// The training mean.
    #[getter]
    fn mean<'py>(slf: &Bound<'py, Self>) -> PyResult<F32Vector<'py>> {
        let v = slf.as_super().get().with(|t| match t.view() {
            TransformView::Pca(p) => Ok(p.mean().to_vec()),
            _ => Err(FathomError::new_err("not a PCAMatrix")),
        })?;
        Ok(PyArray1::from_vec(slf.py(), v))
    }
}

/// The rotation that makes PQ codes more accurate (Faiss's `OPQMatrix`).
#[pyclass(extends = PyVectorTransform, frozen, module = "fathom", name = "OPQMatrix")]
pub struct PyOPQMatrix;

#[pymethods]
impl PyOPQMatrix {
    /// A rotation for `M` sub-quantizers, from `d` to `d2` dimensions (`d2 = -1`: `d`).
    #[new]
    #[pyo3(signature = (d, M, d2 = -1))]
    #[allow(non_snake_case)]
    fn new(d: usize, M: usize, d2: i64) -> PyResult<PyClassInitializer<Self>> {
        let d_out = if d2 < 0 { d } else { d2 as usize };
        Ok(
            PyVectorTransform::new(OpqMatrix::new(d, M, d_out).or_raise()?)
                .add_subclass(PyOPQMatrix),
        )
    }
}

/// A random orthonormal rotation (Faiss's `RandomRotationMatrix`).
#[pyclass(extends = PyVectorTransform, frozen, module = "fathom", name = "RandomRotationMatrix")]
pub struct PyRandomRotationMatrix;

#[pymethods]
impl PyRandomRotationMatrix {
    /// A random rotation from `d_in` to `d_out` dimensions; `train` (or `init(seed)`)
    /// draws it.
    #[new]
    fn new(d_in: usize, d_out: usize) -> PyResult<PyClassInitializer<Self>> {
        let r = RandomRotationMatrix::new(d_in, d_out).or_raise()?;
        Ok(PyVectorTransform::new(r).add_subclass(PyRandomRotationMatrix))
    }
    /// Draws the rotation from `seed`.
    fn init(slf: &Bound<'_, Self>, seed: i64) -> PyResult<()> {
        let mut guard = slf.as_super().get().slot.write().map_err(|_| poisoned())?;
        if let Slot::Owned(t) = &mut *guard {
            // Rebuild: the trait object gives no mutable downcast, and a fresh matrix
            // drawn from `seed` is exactly what `init` means.
            let mut r = RandomRotationMatrix::new(t.d_in(), t.d_out()).or_raise()?;
            r.init(seed);
            *t = Box::new(r);
            Ok(())
        } else {
            Err(FathomError::new_err("this transform moved into an index"))
        }
    }
}

/// Keeps, reorders or pads dimensions (Faiss's `RemapDimensionsTransform`).
#[pyclass(extends = PyVectorTransform, frozen, module = "fathom", name = "RemapDimensionsTransform")]
pub struct PyRemapDimensionsTransform;

#[pymethods]
impl PyRemapDimensionsTransform {
    /// From `d_in` to `d_out` dimensions: the first ones (`uniform = False`) or evenly
    /// spread ones; padding with zeros when `d_out > d_in`.
    #[new]
    #[pyo3(signature = (d_in, d_out, uniform = true))]
    fn new(d_in: usize, d_out: usize, uniform: bool) -> PyResult<PyClassInitializer<Self>> {
        let r = RemapDimensionsTransform::with_dims(d_in, d_out, uniform).or_raise()?;
        Ok(PyVectorTransform::new(r).add_subclass(PyRemapDimensionsTransform))
    }
}

/// Scales vectors to unit L2 norm (Faiss's `NormalizationTransform`).
#[pyclass(extends = PyVectorTransform, frozen, module = "fathom", name = "NormalizationTransform")]
pub struct PyNormalizationTransform;

#[pymethods]
impl PyNormalizationTransform {
    /// Normalises vectors of dimension `d` (only the L2 norm, `norm = 2`).
    #[new]
    #[pyo3(signature = (d, norm = 2.0))]
    fn new(d: usize, norm: f32) -> PyResult<PyClassInitializer<Self>> {
        if norm != 2.0 {
            return Err(PyValueError::new_err(format!(
                "NormalizationTransform supports the L2 norm (norm = 2), got {norm}"
            )));
        }
        let t = NormalizationTransform::new(d).or_raise()?;
        Ok(PyVectorTransform::new(t).add_subclass(PyNormalizationTransform))
    }
}

/// Registers the transform classes.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for t in [
        PyVectorTransform::type_object(py),
        PyPCAMatrix::type_object(py),
        PyOPQMatrix::type_object(py),
        PyRandomRotationMatrix::type_object(py),
        PyRemapDimensionsTransform::type_object(py),
        PyNormalizationTransform::type_object(py),
    ] {
        m.add(t.name()?, t)?;
    }
    Ok(())
}
