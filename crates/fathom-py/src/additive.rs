//! Faiss's additive-quantizer index classes: `IndexAdditiveQuantizer` and its residual,
//! local-search and product forms (flat and IVF), and `ResidualCoarseQuantizer`. Each
//! constructor takes Faiss's arguments; [`wrap`] gives an index read from a file or made
//! by the factory the class Faiss would.

use fathom::quant::additive::{AdditiveQuantizer, AqKind, AqSearchType};
use fathom::{
    IndexAdditiveQuantizer, IndexAqFastScan, IndexIvfAdditiveQuantizer, IndexIvfAqFastScan,
    IndexResidualCoarseQuantizer, IndexView,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::type_object::PyTypeInfo;

use fathom::Part;

use crate::classes::{PyIndexIVF, count, get_param, quantizer_for, set_param};
use crate::errors::OrRaise;
use crate::index::PyIndex;

fn search_type(code: i64) -> PyResult<AqSearchType> {
    i32::try_from(code)
        .map_err(|_| PyValueError::new_err(format!("unknown search type {code}")))
        .and_then(|c| AqSearchType::from_code(c).or_raise())
}

fn flat(
    aq: AdditiveQuantizer,
    metric: i64,
) -> PyResult<PyClassInitializer<PyIndexAdditiveQuantizer>> {
    let m = crate::index::metric(metric, 0.0)?;
    let index = IndexAdditiveQuantizer::new(aq, m).or_raise()?;
    Ok(PyClassInitializer::from(PyIndex::new(Box::new(index)))
        .add_subclass(PyIndexAdditiveQuantizer))
}

fn ivf(
    quantizer: &Bound<'_, PyAny>,
    d: i64,
    nlist: i64,
    aq: AdditiveQuantizer,
    metric: i64,
    owner: &str,
) -> PyResult<PyClassInitializer<PyIndexIVFAdditiveQuantizer>> {
    let m = crate::index::metric(metric, 0.0)?;
    let q = quantizer_for(quantizer, d, owner)?;
    let index = IndexIvfAdditiveQuantizer::new(q, count("nlist", nlist)?, aq, m).or_raise()?;
    Ok(
        crate::classes::adopting(index, &[(quantizer, Part::Quantizer)])?
            .add_subclass(PyIndexIVF)
            .add_subclass(PyIndexIVFAdditiveQuantizer),
    )
}

/// Additive-quantizer codes searched exhaustively (Faiss's `IndexAdditiveQuantizer`).
#[pyclass(extends = PyIndex, subclass, frozen, module = "fathom", name = "IndexAdditiveQuantizer")]
pub struct PyIndexAdditiveQuantizer;

/// Residual-quantizer codes searched exhaustively (Faiss's `IndexResidualQuantizer`).
#[pyclass(extends = PyIndexAdditiveQuantizer, frozen, module = "fathom", name = "IndexResidualQuantizer")]
pub struct PyIndexResidualQuantizer;

#[pymethods]
impl PyIndexResidualQuantizer {
    /// An untrained index of `M` codebooks of `2^nbits` entries; `search_type` as
    /// Faiss's `AdditiveQuantizer.ST_*` numbers (0: decompress, 1: no norm, 3: float
    /// norm, 4/5: 8/4-bit norm, 6/7: 8/4-bit k-means norm, 8/9: 2×4-bit LSQ/RQ norm).
    #[new]
    #[pyo3(signature = (d, M, nbits, metric = 1, search_type = 0))]
    #[allow(non_snake_case)]
    fn new(
        d: i64,
        M: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let nb = vec![count("nbits", nbits)?; count("M", M)?];
        let aq = AdditiveQuantizer::residual(count("d", d)?, nb, self::search_type(search_type)?)
            .or_raise()?;
        Ok(flat(aq, metric)?.add_subclass(PyIndexResidualQuantizer))
    }
    /// Partial sums kept per level when encoding.
    #[getter]
    fn get_max_beam_size(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(get_param(slf.as_super().as_super().get(), "max_beam_size")? as usize)
    }
    #[setter]
    fn set_max_beam_size(slf: &Bound<'_, Self>, value: usize) -> PyResult<()> {
        set_param(
            slf.py(),
            slf.as_super().as_super().get(),
            "max_beam_size",
            value as f64,
        )
    }
}

/// Local-search-quantizer codes searched exhaustively (Faiss's `IndexLocalSearchQuantizer`).
#[pyclass(extends = PyIndexAdditiveQuantizer, frozen, module = "fathom", name = "IndexLocalSearchQuantizer")]
pub struct PyIndexLocalSearchQuantizer;

#[pymethods]
impl PyIndexLocalSearchQuantizer {
    /// An untrained index of `M` codebooks of `2^nbits` entries.
    #[new]
    #[pyo3(signature = (d, M, nbits, metric = 1, search_type = 0))]
    #[allow(non_snake_case)]
    fn new(
        d: i64,
        M: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let aq = AdditiveQuantizer::local_search(
            count("d", d)?,
            count("M", M)?,
            count("nbits", nbits)?,
            self::search_type(search_type)?,
        )
        .or_raise()?;
        Ok(flat(aq, metric)?.add_subclass(PyIndexLocalSearchQuantizer))
    }
}

/// Product-residual-quantizer codes searched exhaustively (Faiss's
/// `IndexProductResidualQuantizer`).
#[pyclass(extends = PyIndexAdditiveQuantizer, frozen, module = "fathom", name = "IndexProductResidualQuantizer")]
pub struct PyIndexProductResidualQuantizer;

#[pymethods]
impl PyIndexProductResidualQuantizer {
    /// `nsplits` parts, each with `Msub` codebooks of `2^nbits` entries.
    #[new]
    #[pyo3(signature = (d, nsplits, Msub, nbits, metric = 1, search_type = 0))]
    #[allow(non_snake_case)]
    fn new(
        d: i64,
        nsplits: i64,
        Msub: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let aq = AdditiveQuantizer::product_residual(
            count("d", d)?,
            count("nsplits", nsplits)?,
            count("Msub", Msub)?,
            count("nbits", nbits)?,
            self::search_type(search_type)?,
        )
        .or_raise()?;
        Ok(flat(aq, metric)?.add_subclass(PyIndexProductResidualQuantizer))
    }
}

/// Product-local-search-quantizer codes searched exhaustively (Faiss's
/// `IndexProductLocalSearchQuantizer`).
#[pyclass(extends = PyIndexAdditiveQuantizer, frozen, module = "fathom", name = "IndexProductLocalSearchQuantizer")]
pub struct PyIndexProductLocalSearchQuantizer;

#[pymethods]
impl PyIndexProductLocalSearchQuantizer {
    /// `nsplits` parts, each with `Msub` codebooks of `2^nbits` entries.
    #[new]
    #[pyo3(signature = (d, nsplits, Msub, nbits, metric = 1, search_type = 0))]
    #[allow(non_snake_case)]
    fn new(
        d: i64,
        nsplits: i64,
        Msub: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let aq = AdditiveQuantizer::product_local_search(
            count("d", d)?,
            count("nsplits", nsplits)?,
            count("Msub", Msub)?,
            count("nbits", nbits)?,
            self::search_type(search_type)?,
        )
        .or_raise()?;
        Ok(flat(aq, metric)?.add_subclass(PyIndexProductLocalSearchQuantizer))
    }
}

fn fast_scan(
    aq: AdditiveQuantizer,
    metric: i64,
    bbs: i64,
) -> PyResult<PyClassInitializer<PyIndexAdditiveQuantizerFastScan>> {
    let m = crate::index::metric(metric, 0.0)?;
    let mut index = IndexAqFastScan::new(aq, m).or_raise()?;
    index.set_bbs(count("bbs", bbs)?).or_raise()?;
    Ok(PyClassInitializer::from(PyIndex::new(Box::new(index)))
        .add_subclass(PyIndexAdditiveQuantizerFastScan))
}

/// 4-bit additive-quantizer codes scanned in fast-scan blocks (Faiss's
/// `IndexAdditiveQuantizerFastScan`).
#[pyclass(extends = PyIndex, subclass, frozen, module = "fathom", name = "IndexAdditiveQuantizerFastScan")]
pub struct PyIndexAdditiveQuantizerFastScan;

/// Faiss's `IndexResidualQuantizerFastScan`: `M` 4-bit codebooks; L2 needs
/// `search_type` 8 or 9 (the 2×4-bit norms), inner product 1 (none).
#[pyclass(extends = PyIndexAdditiveQuantizerFastScan, frozen, module = "fathom", name = "IndexResidualQuantizerFastScan")]
pub struct PyIndexResidualQuantizerFastScan;

#[pymethods]
impl PyIndexResidualQuantizerFastScan {
    /// An untrained index of `M` codebooks of `2^nbits` (= 16) entries.
    #[new]
    #[pyo3(signature = (d, M, nbits = 4, metric = 1, search_type = 9, bbs = 32))]
    #[allow(non_snake_case)]
    fn new(
        d: i64,
        M: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
        bbs: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let nb = vec![count("nbits", nbits)?; count("M", M)?];
        let aq =
            AdditiveQuantizer::residual(count("d", d)?, nb, fs_search_type(search_type, metric)?)
                .or_raise()?;
        Ok(fast_scan(aq, metric, bbs)?.add_subclass(PyIndexResidualQuantizerFastScan))
    }
}

/// Faiss's `IndexLocalSearchQuantizerFastScan`.
#[pyclass(extends = PyIndexAdditiveQuantizerFastScan, frozen, module = "fathom", name = "IndexLocalSearchQuantizerFastScan")]
pub struct PyIndexLocalSearchQuantizerFastScan;

#[pymethods]
impl PyIndexLocalSearchQuantizerFastScan {
    /// An untrained index of `M` codebooks of 16 entries.
    #[new]
    #[pyo3(signature = (d, M, nbits = 4, metric = 1, search_type = 8, bbs = 32))]
    #[allow(non_snake_case)]
    fn new(
        d: i64,
        M: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
        bbs: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let aq = AdditiveQuantizer::local_search(
            count("d", d)?,
            count("M", M)?,
            count("nbits", nbits)?,
            fs_search_type(search_type, metric)?,
        )
        .or_raise()?;
        Ok(fast_scan(aq, metric, bbs)?.add_subclass(PyIndexLocalSearchQuantizerFastScan))
    }
}

/// Faiss's `IndexProductResidualQuantizerFastScan`.
#[pyclass(extends = PyIndexAdditiveQuantizerFastScan, frozen, module = "fathom", name = "IndexProductResidualQuantizerFastScan")]
pub struct PyIndexProductResidualQuantizerFastScan;

#[pymethods]
impl PyIndexProductResidualQuantizerFastScan {
    /// `nsplits` parts of `Msub` codebooks of 16 entries.
    #[new]
    #[pyo3(signature = (d, nsplits, Msub, nbits = 4, metric = 1, search_type = 9, bbs = 32))]
    #[allow(non_snake_case, clippy::too_many_arguments)]
    fn new(
        d: i64,
        nsplits: i64,
        Msub: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
        bbs: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let aq = AdditiveQuantizer::product_residual(
            count("d", d)?,
            count("nsplits", nsplits)?,
            count("Msub", Msub)?,
            count("nbits", nbits)?,
            fs_search_type(search_type, metric)?,
        )
        .or_raise()?;
        Ok(fast_scan(aq, metric, bbs)?.add_subclass(PyIndexProductResidualQuantizerFastScan))
    }
}

/// Faiss's `IndexProductLocalSearchQuantizerFastScan`.
#[pyclass(extends = PyIndexAdditiveQuantizerFastScan, frozen, module = "fathom", name = "IndexProductLocalSearchQuantizerFastScan")]
pub struct PyIndexProductLocalSearchQuantizerFastScan;

#[pymethods]
impl PyIndexProductLocalSearchQuantizerFastScan {
    /// `nsplits` parts of `Msub` codebooks of 16 entries.
    #[new]
    #[pyo3(signature = (d, nsplits, Msub, nbits = 4, metric = 1, search_type = 8, bbs = 32))]
    #[allow(non_snake_case, clippy::too_many_arguments)]
    fn new(
        d: i64,
        nsplits: i64,
        Msub: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
        bbs: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let aq = AdditiveQuantizer::product_local_search(
            count("d", d)?,
            count("nsplits", nsplits)?,
            count("Msub", Msub)?,
            count("nbits", nbits)?,
            fs_search_type(search_type, metric)?,
        )
        .or_raise()?;
        Ok(fast_scan(aq, metric, bbs)?.add_subclass(PyIndexProductLocalSearchQuantizerFastScan))
    }
}

/// The search type of a fast-scan index: inner product searches without a norm whatever
/// the default says.
fn fs_search_type(code: i64, metric: i64) -> PyResult<AqSearchType> {
    if metric == 0 {
        return Ok(AqSearchType::LutNonorm);
    }
    search_type(code)
}

fn ivf_fast_scan(
    quantizer: &Bound<'_, PyAny>,
    d: i64,
    nlist: i64,
    aq: AdditiveQuantizer,
    metric: i64,
    bbs: i64,
    owner: &str,
) -> PyResult<PyClassInitializer<PyIndexIVFAdditiveQuantizerFastScan>> {
    let m = crate::index::metric(metric, 0.0)?;
    let q = quantizer_for(quantizer, d, owner)?;
    let mut index = IndexIvfAqFastScan::new(q, count("nlist", nlist)?, aq, m).or_raise()?;
    index.codec_mut().set_bbs(count("bbs", bbs)?).or_raise()?;
    Ok(
        crate::classes::adopting(index, &[(quantizer, Part::Quantizer)])?
            .add_subclass(PyIndexIVF)
            .add_subclass(PyIndexIVFAdditiveQuantizerFastScan),
    )
}

/// 4-bit additive-quantizer codes in inverted lists scanned in fast-scan blocks (Faiss's
/// `IndexIVFAdditiveQuantizerFastScan`; residuals coded, as Faiss's constructors do).
#[pyclass(extends = PyIndexIVF, subclass, frozen, module = "fathom", name = "IndexIVFAdditiveQuantizerFastScan")]
pub struct PyIndexIVFAdditiveQuantizerFastScan;

/// Faiss's `IndexIVFResidualQuantizerFastScan`.
#[pyclass(extends = PyIndexIVFAdditiveQuantizerFastScan, frozen, module = "fathom", name = "IndexIVFResidualQuantizerFastScan")]
pub struct PyIndexIVFResidualQuantizerFastScan;

#[pymethods]
impl PyIndexIVFResidualQuantizerFastScan {
    /// `nlist` lists over `quantizer`, residuals coded by `M` 4-bit codebooks.
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, M, nbits = 4, metric = 1, search_type = 9, bbs = 32))]
    #[allow(non_snake_case, clippy::too_many_arguments)]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        M: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
        bbs: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let nb = vec![count("nbits", nbits)?; count("M", M)?];
        let aq =
            AdditiveQuantizer::residual(count("d", d)?, nb, fs_search_type(search_type, metric)?)
                .or_raise()?;
        Ok(ivf_fast_scan(
            quantizer,
            d,
            nlist,
            aq,
            metric,
            bbs,
            "IndexIVFResidualQuantizerFastScan",
        )?
        .add_subclass(PyIndexIVFResidualQuantizerFastScan))
    }
}

/// Faiss's `IndexIVFLocalSearchQuantizerFastScan`.
#[pyclass(extends = PyIndexIVFAdditiveQuantizerFastScan, frozen, module = "fathom", name = "IndexIVFLocalSearchQuantizerFastScan")]
pub struct PyIndexIVFLocalSearchQuantizerFastScan;

#[pymethods]
impl PyIndexIVFLocalSearchQuantizerFastScan {
    /// `nlist` lists over `quantizer`, residuals coded by `M` 4-bit codebooks.
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, M, nbits = 4, metric = 1, search_type = 8, bbs = 32))]
    #[allow(non_snake_case, clippy::too_many_arguments)]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        M: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
        bbs: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let aq = AdditiveQuantizer::local_search(
            count("d", d)?,
            count("M", M)?,
            count("nbits", nbits)?,
            fs_search_type(search_type, metric)?,
        )
        .or_raise()?;
        Ok(ivf_fast_scan(
            quantizer,
            d,
            nlist,
            aq,
            metric,
            bbs,
            "IndexIVFLocalSearchQuantizerFastScan",
        )?
        .add_subclass(PyIndexIVFLocalSearchQuantizerFastScan))
    }
}

/// Faiss's `IndexIVFProductResidualQuantizerFastScan` (and, from files, its LSQ twin).
#[pyclass(extends = PyIndexIVFAdditiveQuantizerFastScan, frozen, module = "fathom", name = "IndexIVFProductResidualQuantizerFastScan")]
pub struct PyIndexIVFProductResidualQuantizerFastScan;

#[pymethods]
impl PyIndexIVFProductResidualQuantizerFastScan {
    /// `nlist` lists over `quantizer`; `nsplits` parts of `Msub` 4-bit codebooks.
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, nsplits, Msub, nbits = 4, metric = 1, search_type = 9, bbs = 32))]
    #[allow(non_snake_case, clippy::too_many_arguments)]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        nsplits: i64,
        Msub: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
        bbs: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let aq = AdditiveQuantizer::product_residual(
            count("d", d)?,
            count("nsplits", nsplits)?,
            count("Msub", Msub)?,
            count("nbits", nbits)?,
            fs_search_type(search_type, metric)?,
        )
        .or_raise()?;
        Ok(ivf_fast_scan(
            quantizer,
            d,
            nlist,
            aq,
            metric,
            bbs,
            "IndexIVFProductResidualQuantizerFastScan",
        )?
        .add_subclass(PyIndexIVFProductResidualQuantizerFastScan))
    }
}

/// Faiss's `IndexIVFProductLocalSearchQuantizerFastScan`.
#[pyclass(extends = PyIndexIVFAdditiveQuantizerFastScan, frozen, module = "fathom", name = "IndexIVFProductLocalSearchQuantizerFastScan")]
pub struct PyIndexIVFProductLocalSearchQuantizerFastScan;

#[pymethods]
impl PyIndexIVFProductLocalSearchQuantizerFastScan {
    /// `nlist` lists over `quantizer`; `nsplits` parts of `Msub` 4-bit codebooks.
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, nsplits, Msub, nbits = 4, metric = 1, search_type = 8, bbs = 32))]
    #[allow(non_snake_case, clippy::too_many_arguments)]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        nsplits: i64,
        Msub: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
        bbs: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let aq = AdditiveQuantizer::product_local_search(
            count("d", d)?,
            count("nsplits", nsplits)?,
            count("Msub", Msub)?,
            count("nbits", nbits)?,
            fs_search_type(search_type, metric)?,
        )
        .or_raise()?;
        Ok(ivf_fast_scan(
            quantizer,
            d,
            nlist,
            aq,
            metric,
            bbs,
            "IndexIVFProductLocalSearchQuantizerFastScan",
        )?
        .add_subclass(PyIndexIVFProductLocalSearchQuantizerFastScan))
    }
}

/// An IVF fast-scan additive-quantizer index as its Faiss class.
pub(crate) fn wrap_ivf_fast_scan(
    py: Python<'_>,
    base: PyIndex,
    class: AqClass,
) -> PyResult<Py<PyAny>> {
    let b = PyClassInitializer::from(base)
        .add_subclass(PyIndexIVF)
        .add_subclass(PyIndexIVFAdditiveQuantizerFastScan);
    Ok(match class {
        AqClass::Residual => {
            Py::new(py, b.add_subclass(PyIndexIVFResidualQuantizerFastScan))?.into_any()
        }
        AqClass::LocalSearch => {
            Py::new(py, b.add_subclass(PyIndexIVFLocalSearchQuantizerFastScan))?.into_any()
        }
        AqClass::ProductResidual => Py::new(
            py,
            b.add_subclass(PyIndexIVFProductResidualQuantizerFastScan),
        )?
        .into_any(),
        AqClass::ProductLocalSearch => Py::new(
            py,
            b.add_subclass(PyIndexIVFProductLocalSearchQuantizerFastScan),
        )?
        .into_any(),
    })
}

/// Additive-quantizer codes in inverted lists (Faiss's `IndexIVFAdditiveQuantizer`).
#[pyclass(extends = PyIndexIVF, subclass, frozen, module = "fathom", name = "IndexIVFAdditiveQuantizer")]
pub struct PyIndexIVFAdditiveQuantizer;

/// Residual-quantizer codes in inverted lists (Faiss's `IndexIVFResidualQuantizer`).
#[pyclass(extends = PyIndexIVFAdditiveQuantizer, frozen, module = "fathom", name = "IndexIVFResidualQuantizer")]
pub struct PyIndexIVFResidualQuantizer;

#[pymethods]
impl PyIndexIVFResidualQuantizer {
    /// `nlist` lists over `quantizer`, residuals coded by `M` codebooks of `2^nbits`
    /// entries.
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, M, nbits, metric = 1, search_type = 0))]
    #[allow(non_snake_case)]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        M: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let nb = vec![count("nbits", nbits)?; count("M", M)?];
        let aq = AdditiveQuantizer::residual(count("d", d)?, nb, self::search_type(search_type)?)
            .or_raise()?;
        Ok(
            ivf(quantizer, d, nlist, aq, metric, "IndexIVFResidualQuantizer")?
                .add_subclass(PyIndexIVFResidualQuantizer),
        )
    }
}

/// Local-search-quantizer codes in inverted lists (Faiss's `IndexIVFLocalSearchQuantizer`).
#[pyclass(extends = PyIndexIVFAdditiveQuantizer, frozen, module = "fathom", name = "IndexIVFLocalSearchQuantizer")]
pub struct PyIndexIVFLocalSearchQuantizer;

#[pymethods]
impl PyIndexIVFLocalSearchQuantizer {
    /// `nlist` lists over `quantizer`, residuals coded by `M` codebooks of `2^nbits`
    /// entries.
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, M, nbits, metric = 1, search_type = 0))]
    #[allow(non_snake_case)]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        M: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let aq = AdditiveQuantizer::local_search(
            count("d", d)?,
            count("M", M)?,
            count("nbits", nbits)?,
            self::search_type(search_type)?,
        )
        .or_raise()?;
        Ok(ivf(
            quantizer,
            d,
            nlist,
            aq,
            metric,
            "IndexIVFLocalSearchQuantizer",
        )?
        .add_subclass(PyIndexIVFLocalSearchQuantizer))
    }
}

/// Product-residual-quantizer codes in inverted lists (Faiss's
/// `IndexIVFProductResidualQuantizer`).
#[pyclass(extends = PyIndexIVFAdditiveQuantizer, frozen, module = "fathom", name = "IndexIVFProductResidualQuantizer")]
pub struct PyIndexIVFProductResidualQuantizer;

#[pymethods]
impl PyIndexIVFProductResidualQuantizer {
    /// `nlist` lists over `quantizer`; `nsplits` parts of `Msub` codebooks each.
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, nsplits, Msub, nbits, metric = 1, search_type = 0))]
    #[allow(non_snake_case, clippy::too_many_arguments)]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        nsplits: i64,
        Msub: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let aq = AdditiveQuantizer::product_residual(
            count("d", d)?,
            count("nsplits", nsplits)?,
            count("Msub", Msub)?,
            count("nbits", nbits)?,
            self::search_type(search_type)?,
        )
        .or_raise()?;
        Ok(ivf(
            quantizer,
            d,
            nlist,
            aq,
            metric,
            "IndexIVFProductResidualQuantizer",
        )?
        .add_subclass(PyIndexIVFProductResidualQuantizer))
    }
}

/// Product-local-search-quantizer codes in inverted lists (Faiss's
/// `IndexIVFProductLocalSearchQuantizer`).
#[pyclass(extends = PyIndexIVFAdditiveQuantizer, frozen, module = "fathom", name = "IndexIVFProductLocalSearchQuantizer")]
pub struct PyIndexIVFProductLocalSearchQuantizer;

#[pymethods]
impl PyIndexIVFProductLocalSearchQuantizer {
    /// `nlist` lists over `quantizer`; `nsplits` parts of `Msub` codebooks each.
    #[new]
    #[pyo3(signature = (quantizer, d, nlist, nsplits, Msub, nbits, metric = 1, search_type = 0))]
    #[allow(non_snake_case, clippy::too_many_arguments)]
    fn new(
        quantizer: &Bound<'_, PyAny>,
        d: i64,
        nlist: i64,
        nsplits: i64,
        Msub: i64,
        nbits: i64,
        metric: i64,
        search_type: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let aq = AdditiveQuantizer::product_local_search(
            count("d", d)?,
            count("nsplits", nsplits)?,
            count("Msub", Msub)?,
            count("nbits", nbits)?,
            self::search_type(search_type)?,
        )
        .or_raise()?;
        Ok(ivf(
            quantizer,
            d,
            nlist,
            aq,
            metric,
            "IndexIVFProductLocalSearchQuantizer",
        )?
        .add_subclass(PyIndexIVFProductLocalSearchQuantizer))
    }
}

/// A coarse quantizer over every code of a residual quantizer (Faiss's
/// `ResidualCoarseQuantizer`).
#[pyclass(extends = PyIndex, frozen, module = "fathom", name = "ResidualCoarseQuantizer")]
pub struct PyResidualCoarseQuantizer;

#[pymethods]
impl PyResidualCoarseQuantizer {
    /// `ResidualCoarseQuantizer(d, M, nbits, metric=METRIC_L2)`, or with a list of bits
    /// per level in place of `M, nbits`: `ResidualCoarseQuantizer(d, [8, 6], metric)`.
    #[new]
    #[pyo3(signature = (d, M, nbits = None, metric = 1))]
    #[allow(non_snake_case)]
    fn new(
        d: i64,
        M: &Bound<'_, PyAny>,
        nbits: Option<&Bound<'_, PyAny>>,
        metric: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let (levels, metric) = match M.extract::<Vec<i64>>() {
            // (d, [bits…], metric): the third positional argument is the metric.
            Ok(list) => {
                let metric = match nbits {
                    Some(m) => m.extract::<i64>()?,
                    None => metric,
                };
                let nb = list
                    .iter()
                    .map(|&b| count("nbits", b))
                    .collect::<PyResult<Vec<_>>>()?;
                (nb, metric)
            }
            Err(_) => {
                let m = count("M", M.extract::<i64>()?)?;
                let b = nbits.ok_or_else(|| {
                    PyValueError::new_err("ResidualCoarseQuantizer(d, M, nbits): nbits is missing")
                })?;
                (vec![count("nbits", b.extract::<i64>()?)?; m], metric)
            }
        };
        let m = crate::index::metric(metric, 0.0)?;
        let rcq = IndexResidualCoarseQuantizer::new(count("d", d)?, levels, m).or_raise()?;
        Ok(PyClassInitializer::from(PyIndex::new(Box::new(rcq)))
            .add_subclass(PyResidualCoarseQuantizer))
    }
    /// Partial sums kept per result in the beam search (negative: scan every centroid).
    #[getter]
    fn get_beam_factor(slf: &Bound<'_, Self>) -> PyResult<f64> {
        get_param(slf.as_super().get(), "beam_factor")
    }
    /// Faiss's `set_beam_factor`.
    fn set_beam_factor(slf: &Bound<'_, Self>, value: f64) -> PyResult<()> {
        set_param(slf.py(), slf.as_super().get(), "beam_factor", value)
    }
}

/// A coarse quantizer over every code of a local-search quantizer (Faiss's
/// `LocalSearchCoarseQuantizer`); it always scans every centroid.
#[pyclass(extends = PyIndex, frozen, module = "fathom", name = "LocalSearchCoarseQuantizer")]
pub struct PyLocalSearchCoarseQuantizer;

#[pymethods]
impl PyLocalSearchCoarseQuantizer {
    /// `LocalSearchCoarseQuantizer(d, M, nbits, metric=METRIC_L2)`.
    #[new]
    #[pyo3(signature = (d, M, nbits, metric = 1))]
    #[allow(non_snake_case)]
    fn new(d: i64, M: i64, nbits: i64, metric: i64) -> PyResult<PyClassInitializer<Self>> {
        let m = crate::index::metric(metric, 0.0)?;
        let q = fathom::IndexLocalSearchCoarseQuantizer::new_local_search(
            count("d", d)?,
            count("M", M)?,
            count("nbits", nbits)?,
            m,
        )
        .or_raise()?;
        Ok(PyClassInitializer::from(PyIndex::new(Box::new(q)))
            .add_subclass(PyLocalSearchCoarseQuantizer))
    }
}

/// A local-search coarse quantizer as its Faiss class.
pub(crate) fn wrap_lscq(py: Python<'_>, base: PyIndex) -> PyResult<Py<PyAny>> {
    let b = PyClassInitializer::from(base).add_subclass(PyLocalSearchCoarseQuantizer);
    Ok(Py::new(py, b)?.into_any())
}

/// Which additive class an index gets, if it is one of them.
pub(crate) enum AqClass {
    Residual,
    LocalSearch,
    ProductResidual,
    ProductLocalSearch,
}

/// The class of a quantizer's index.
pub(crate) fn class_of(aq: &AdditiveQuantizer) -> AqClass {
    match aq.kind() {
        AqKind::Residual(_) => AqClass::Residual,
        AqKind::LocalSearch(_) => AqClass::LocalSearch,
        AqKind::Product(subs) => match subs.first().map(|s| s.kind()) {
            Some(AqKind::LocalSearch(_)) => AqClass::ProductLocalSearch,
            _ => AqClass::ProductResidual,
        },
    }
}

/// A flat additive-quantizer index as its Faiss class.
pub(crate) fn wrap_flat(py: Python<'_>, base: PyIndex) -> PyResult<Py<PyAny>> {
    let class = match base.peek(|i| match i.view() {
        IndexView::AdditiveQuantizer(a) => Some(class_of(a.aq())),
        _ => None,
    })? {
        Some(c) => c,
        None => return Err(PyValueError::new_err("not an additive-quantizer index")),
    };
    let b = PyClassInitializer::from(base).add_subclass(PyIndexAdditiveQuantizer);
    Ok(match class {
        AqClass::Residual => Py::new(py, b.add_subclass(PyIndexResidualQuantizer))?.into_any(),
        AqClass::LocalSearch => {
            Py::new(py, b.add_subclass(PyIndexLocalSearchQuantizer))?.into_any()
        }
        AqClass::ProductResidual => {
            Py::new(py, b.add_subclass(PyIndexProductResidualQuantizer))?.into_any()
        }
        AqClass::ProductLocalSearch => {
            Py::new(py, b.add_subclass(PyIndexProductLocalSearchQuantizer))?.into_any()
        }
    })
}

/// An IVF additive-quantizer index as its Faiss class.
pub(crate) fn wrap_ivf(py: Python<'_>, base: PyIndex, class: AqClass) -> PyResult<Py<PyAny>> {
    let b = PyClassInitializer::from(base)
        .add_subclass(PyIndexIVF)
        .add_subclass(PyIndexIVFAdditiveQuantizer);
    Ok(match class {
        AqClass::Residual => Py::new(py, b.add_subclass(PyIndexIVFResidualQuantizer))?.into_any(),
        AqClass::LocalSearch => {
            Py::new(py, b.add_subclass(PyIndexIVFLocalSearchQuantizer))?.into_any()
        }
        AqClass::ProductResidual => {
            Py::new(py, b.add_subclass(PyIndexIVFProductResidualQuantizer))?.into_any()
        }
        AqClass::ProductLocalSearch => {
            Py::new(py, b.add_subclass(PyIndexIVFProductLocalSearchQuantizer))?.into_any()
        }
    })
}

/// A fast-scan additive-quantizer index as its Faiss class.
pub(crate) fn wrap_fast_scan(py: Python<'_>, base: PyIndex) -> PyResult<Py<PyAny>> {
    let class = match base.peek(|i| match i.view() {
        IndexView::AqFastScan(a) => Some(class_of(a.aq())),
        _ => None,
    })? {
        Some(c) => c,
        None => {
            return Err(PyValueError::new_err(
                "not a fast-scan additive-quantizer index",
            ));
        }
    };
    let b = PyClassInitializer::from(base).add_subclass(PyIndexAdditiveQuantizerFastScan);
    Ok(match class {
        AqClass::Residual => {
            Py::new(py, b.add_subclass(PyIndexResidualQuantizerFastScan))?.into_any()
        }
        AqClass::LocalSearch => {
            Py::new(py, b.add_subclass(PyIndexLocalSearchQuantizerFastScan))?.into_any()
        }
        AqClass::ProductResidual => {
            Py::new(py, b.add_subclass(PyIndexProductResidualQuantizerFastScan))?.into_any()
        }
        AqClass::ProductLocalSearch => Py::new(
            py,
            b.add_subclass(PyIndexProductLocalSearchQuantizerFastScan),
        )?
        .into_any(),
    })
}

/// A residual coarse quantizer as its Faiss class.
pub(crate) fn wrap_rcq(py: Python<'_>, base: PyIndex) -> PyResult<Py<PyAny>> {
    let b = PyClassInitializer::from(base).add_subclass(PyResidualCoarseQuantizer);
    Ok(Py::new(py, b)?.into_any())
}

/// Registers the classes.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for t in [
        PyIndexAdditiveQuantizer::type_object(py),
        PyIndexResidualQuantizer::type_object(py),
        PyIndexLocalSearchQuantizer::type_object(py),
        PyIndexProductResidualQuantizer::type_object(py),
        PyIndexProductLocalSearchQuantizer::type_object(py),
        PyIndexIVFAdditiveQuantizer::type_object(py),
        PyIndexIVFResidualQuantizer::type_object(py),
        PyIndexIVFLocalSearchQuantizer::type_object(py),
        PyIndexIVFProductResidualQuantizer::type_object(py),
        PyIndexIVFProductLocalSearchQuantizer::type_object(py),
        PyResidualCoarseQuantizer::type_object(py),
        PyLocalSearchCoarseQuantizer::type_object(py),
        PyIndexAdditiveQuantizerFastScan::type_object(py),
        PyIndexResidualQuantizerFastScan::type_object(py),
        PyIndexLocalSearchQuantizerFastScan::type_object(py),
        PyIndexProductResidualQuantizerFastScan::type_object(py),
        PyIndexProductLocalSearchQuantizerFastScan::type_object(py),
        PyIndexIVFAdditiveQuantizerFastScan::type_object(py),
        PyIndexIVFResidualQuantizerFastScan::type_object(py),
        PyIndexIVFLocalSearchQuantizerFastScan::type_object(py),
        PyIndexIVFProductResidualQuantizerFastScan::type_object(py),
        PyIndexIVFProductLocalSearchQuantizerFastScan::type_object(py),
    ] {
        m.add(t.name()?, t)?;
    }
    Ok(())
}
