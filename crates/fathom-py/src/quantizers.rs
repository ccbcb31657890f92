//! The codecs on their own: `ProductQuantizer` and `ScalarQuantizer` (encode and decode
//! arrays of vectors).

use std::sync::RwLock;

use fathom::quant::{ProductQuantizer as Pq, QuantizerType, ScalarQuantizer as Sq};
use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::type_object::PyTypeInfo;
use rayon::prelude::*;

use crate::arrays::{self, ArrayLike, F32Matrix, U8Matrix, matrix_out};
use crate::errors::{FathomError, OrRaise};
use crate::threads::{with_read, with_write};

fn poisoned() -> PyErr {
    FathomError::new_err("an earlier call panicked while training this quantizer")
}

fn not_trained(what: &str) -> PyErr {
    FathomError::new_err(format!("the {what} is not trained: call train() first"))
}

/// Product quantization: `M` sub-vectors, each coded by the nearest of `2^nbits`
/// centroids (Faiss's `ProductQuantizer`).
#[pyclass(frozen, module = "fathom", name = "ProductQuantizer")]
pub struct ProductQuantizer {
    pq: RwLock<Pq>,
}

impl ProductQuantizer {
    /// The Python object for `pq` (an index's quantizer, copied out).
    pub(crate) fn from_pq(pq: Pq) -> Self {
        ProductQuantizer {
            pq: RwLock::new(pq),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Pq) -> T) -> PyResult<T> {
        Ok(f(&*self.pq.read().map_err(|_| poisoned())?))
    }
}

#[pymethods]
impl ProductQuantizer {
    /// A quantizer of vectors of dimension `d` into `M` codes of `nbits` bits.
    #[new]
    #[allow(non_snake_case)]
    fn new(d: usize, M: usize, nbits: usize) -> PyResult<Self> {
        Ok(ProductQuantizer {
            pq: RwLock::new(Pq::new(d, M, nbits).or_raise()?),
        })
    }
    /// Dimension of the vectors.
    #[getter]
    fn d(&self) -> PyResult<usize> {
        self.read(|p| p.d())
    }
    /// Number of sub-quantizers.
    #[getter(M)]
    fn m(&self) -> PyResult<usize> {
        self.read(|p| p.m())
    }
    /// Bits per sub-quantizer code.
    #[getter]
    fn nbits(&self) -> PyResult<usize> {
        self.read(|p| p.nbits())
    }
    /// Centroids per sub-quantizer, `2^nbits`.
    #[getter]
    fn ksub(&self) -> PyResult<usize> {
        self.read(|p| p.ksub())
    }
    /// Dimension of each sub-vector, `d / M`.
    #[getter]
    fn dsub(&self) -> PyResult<usize> {
        self.read(|p| p.dsub())
    }
    /// Bytes per code.
    #[getter]
    fn code_size(&self) -> PyResult<usize> {
        self.read(|p| p.code_size())
    }
    /// Whether the codebooks are learnt.
    #[getter]
    fn is_trained(&self) -> PyResult<bool> {
        self.read(|p| p.is_trained())
    }
    /// The codebooks, `M · ksub · dsub` floats (sub-quantizer, centroid, component).
    #[getter]
    fn centroids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        Ok(PyArray1::from_vec(
            py,
            self.read(|p| p.centroids().to_vec())?,
        ))
    }
    /// Learns the codebooks from `x` of shape `(n, d)`.
    fn train(&self, py: Python<'_>, x: &ArrayLike<'_>) -> PyResult<()> {
        let x = arrays::matrix(x, "train: x", Some(self.d()?))?;
        with_write(py, &self.pq, |pq| pq.train(&x.data).or_raise())
    }
    /// The codes of `x` of shape `(n, d)`: uint8, shape `(n, code_size)`.
    fn compute_codes<'py>(&self, py: Python<'py>, x: &ArrayLike<'py>) -> PyResult<U8Matrix<'py>> {
        let (d, cs) = self.read(|p| (p.d(), p.code_size()))?;
        let x = arrays::matrix(x, "compute_codes: x", Some(d))?;
        let codes = with_read(py, &self.pq, |pq| {
            if !pq.is_trained() {
                return Err(not_trained("ProductQuantizer"));
            }
            fathom::check::finite("compute_codes: x", &x.data, d).or_raise()?;
            let mut codes = vec![0u8; x.n * cs];
            codes
                .par_chunks_mut(cs)
                .zip(x.data.par_chunks(d))
                .for_each_init(
                    || vec![0f32; pq.ksub()],
                    |scratch, (code, v)| pq.compute_code(v, code, scratch),
                );
            Ok(codes)
        })?;
        matrix_out(py, codes, x.n, cs)
    }
    /// The vectors `codes` (uint8, shape `(n, code_size)`) stand for: shape `(n, d)`.
    fn decode<'py>(&self, py: Python<'py>, codes: &ArrayLike<'py>) -> PyResult<F32Matrix<'py>> {
        let (d, cs) = self.read(|p| (p.d(), p.code_size()))?;
        let c = arrays::codes(codes, "decode: codes", cs)?;
        let x = with_read(py, &self.pq, |pq| {
            if !pq.is_trained() {
                return Err(not_trained("ProductQuantizer"));
            }
            pq.decode(&c.data).or_raise()
        })?;
        matrix_out(py, x, c.n, d)
    }
}

/// Per-component scalar quantization (Faiss's `ScalarQuantizer`); the `QT_*` class
/// attributes name the code types.
#[pyclass(frozen, module = "fathom", name = "ScalarQuantizer")]
pub struct ScalarQuantizer {
    sq: RwLock<Sq>,
}

impl ScalarQuantizer {
    /// The Python object for `sq` (an index's quantizer, copied out).
    pub(crate) fn from_sq(sq: Sq) -> Self {
        ScalarQuantizer {
            sq: RwLock::new(sq),
        }
    }
}

#[pymethods]
#[allow(non_upper_case_globals)]
impl ScalarQuantizer {
    /// 8 bits per component, a range per dimension.
    #[classattr]
    const QT_8bit: u32 = 0;
    /// 4 bits per component, a range per dimension.
    #[classattr]
    const QT_4bit: u32 = 1;
    /// 8 bits, one range for all dimensions.
    #[classattr]
    const QT_8bit_uniform: u32 = 2;
    /// 4 bits, one range for all dimensions.
    #[classattr]
    const QT_4bit_uniform: u32 = 3;
    /// IEEE half precision.
    #[classattr]
    const QT_fp16: u32 = 4;
    /// Integers 0..=255 stored as bytes.
    #[classattr]
    const QT_8bit_direct: u32 = 5;
    /// 6 bits per component.
    #[classattr]
    const QT_6bit: u32 = 6;
    /// bfloat16.
    #[classattr]
    const QT_bf16: u32 = 7;
    /// Integers −128..=127 stored as bytes.
    #[classattr]
    const QT_8bit_direct_signed: u32 = 8;

    /// A quantizer of vectors of dimension `d` with code type `qtype`.
    #[new]
    #[pyo3(signature = (d, qtype = 0))]
    fn new(d: usize, qtype: u32) -> PyResult<Self> {
        let qt = QuantizerType::from_code(qtype)
            .map_err(|_| PyValueError::new_err(format!("unknown scalar quantizer type {qtype}")))?;
        Ok(ScalarQuantizer {
            sq: RwLock::new(Sq::new(d, qt).or_raise()?),
        })
    }
    /// Dimension of the vectors.
    #[getter]
    fn d(&self) -> PyResult<usize> {
        Ok(self.sq.read().map_err(|_| poisoned())?.d())
    }
    /// Bytes per code.
    #[getter]
    fn code_size(&self) -> PyResult<usize> {
        Ok(self.sq.read().map_err(|_| poisoned())?.code_size())
    }
    /// Whether the ranges are learnt (always, for types without training).
    #[getter]
    fn is_trained(&self) -> PyResult<bool> {
        Ok(self.sq.read().map_err(|_| poisoned())?.is_trained())
    }
    /// Learns the value ranges from `x` of shape `(n, d)`.
    fn train(&self, py: Python<'_>, x: &ArrayLike<'_>) -> PyResult<()> {
        let x = arrays::matrix(x, "train: x", Some(self.d()?))?;
        with_write(py, &self.sq, |sq| sq.train(&x.data).or_raise())
    }
    /// The codes of `x` of shape `(n, d)`: uint8, shape `(n, code_size)`.
    fn compute_codes<'py>(&self, py: Python<'py>, x: &ArrayLike<'py>) -> PyResult<U8Matrix<'py>> {
        let (d, cs) = (self.d()?, self.code_size()?);
        let x = arrays::matrix(x, "compute_codes: x", Some(d))?;
        let codes = with_read(py, &self.sq, |sq| {
            if !sq.is_trained() {
                return Err(not_trained("ScalarQuantizer"));
            }
            fathom::check::finite("compute_codes: x", &x.data, d).or_raise()?;
            let mut codes = vec![0u8; x.n * cs];
            codes
                .par_chunks_mut(cs)
                .zip(x.data.par_chunks(d))
                .for_each(|(code, v)| sq.encode_one(v, code));
            Ok(codes)
        })?;
        matrix_out(py, codes, x.n, cs)
    }
    /// The vectors `codes` (uint8, shape `(n, code_size)`) stand for: shape `(n, d)`.
    fn decode<'py>(&self, py: Python<'py>, codes: &ArrayLike<'py>) -> PyResult<F32Matrix<'py>> {
        let (d, cs) = (self.d()?, self.code_size()?);
        let c = arrays::codes(codes, "decode: codes", cs)?;
        let x = with_read(py, &self.sq, |sq| {
            if !sq.is_trained() {
                return Err(not_trained("ScalarQuantizer"));
            }
            sq.decode(&c.data).or_raise()
        })?;
        matrix_out(py, x, c.n, d)
    }
}

/// Faiss's module-level aliases of the scalar quantizer types.
pub const SQ_TYPE_ALIASES: &[(&str, i64)] = &[
    ("ScalarQuantizer_QT_8bit", 0),
    ("ScalarQuantizer_QT_4bit", 1),
    ("ScalarQuantizer_QT_8bit_uniform", 2),
    ("ScalarQuantizer_QT_4bit_uniform", 3),
    ("ScalarQuantizer_QT_fp16", 4),
    ("ScalarQuantizer_QT_8bit_direct", 5),
    ("ScalarQuantizer_QT_6bit", 6),
    ("ScalarQuantizer_QT_bf16", 7),
    ("ScalarQuantizer_QT_8bit_direct_signed", 8),
];

/// Registers the codec classes.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ProductQuantizer", ProductQuantizer::type_object(py))?;
    m.add("ScalarQuantizer", ScalarQuantizer::type_object(py))?;
    for (name, v) in SQ_TYPE_ALIASES {
        m.add(*name, *v)?;
    }
    Ok(())
}
