//! Making the index an [`IndexSpec`] describes, for a dimension and a metric.

use fathom_core::{Error, MetricType, Result};
use fathom_linalg::{
    NormalizationTransform, OpqMatrix, PcaMatrix, RandomRotationMatrix, RemapDimensionsTransform,
    VectorTransform,
};

use super::parse::Positions;
use super::spec::{
    BodySpec, CoarseSpec, HnswStorageSpec, IdMapKind, IndexSpec, IvfCodecSpec, RefineSpec,
    StorageSpec, TransformSpec,
};
use crate::ivf::{IvfCodec, QuantizerTraining};
use crate::{
    Index, IndexFlat, IndexHnsw, IndexHnswFlat, IndexIdMap, IndexIdMap2, IndexIvf, IndexIvfFlat,
    IndexIvfPq, IndexIvfPqFastScan, IndexIvfScalarQuantizer, IndexLsh, IndexPq, IndexPqFastScan,
    IndexPreTransform, IndexRefine, IndexScalarQuantizer,
};

impl IndexSpec {
    /// The index this spec describes, for vectors of dimension `d` compared with
    /// `metric` (untrained and empty). Errors name the part a constructor refused.
    pub fn build(&self, d: usize, metric: MetricType) -> Result<Box<dyn Index>> {
        build(self, &Positions::of(self), d, metric)
    }
}

/// [`IndexSpec::build`], errors naming tokens by `pos`.
pub(super) fn build(
    spec: &IndexSpec,
    pos: &Positions,
    d: usize,
    metric: MetricType,
) -> Result<Box<dyn Index>> {
    let mut chain: Vec<Box<dyn VectorTransform>> = Vec::with_capacity(spec.transforms.len());
    let mut dim = d;
    for (t, at) in spec.transforms.iter().zip(&pos.transforms) {
        let t = transform(dim, *t).map_err(|e| e.context(pos.at(at)))?;
        dim = t.d_out();
        chain.push(t);
    }
    let mut index = match &spec.body {
        BodySpec::Storage(s) => {
            storage(dim, *s, metric).map_err(|e| e.context(pos.at(&pos.body)))?
        }
        BodySpec::Ivf { coarse, codec } => {
            let (quantizer, nlist, training) =
                coarse_quantizer(dim, coarse, metric).map_err(|e| e.context(pos.at(&pos.body)))?;
            ivf(quantizer, nlist, training, *codec, metric)
                .map_err(|e| e.context(pos.at(&pos.codec)))?
        }
    };
    if let Some(last) = chain.pop() {
        let mut pt = IndexPreTransform::new(last, index)?;
        while let Some(t) = chain.pop() {
            pt.prepend_transform(t)?;
        }
        index = Box::new(pt);
    }
    if let Some(r) = &spec.refine {
        // The refinement sees the vectors as given, before any transform (as Faiss).
        let refine: Box<dyn Index> = match r {
            RefineSpec::Flat => Box::new(IndexFlat::new(d, metric)?),
            RefineSpec::Index(inner) => inner
                .build(d, metric)
                .map_err(|e| e.context(format!("{}, inside Refine()", pos.at(&pos.refine))))?,
        };
        index = Box::new(IndexRefine::new(index, refine)?);
    }
    Ok(match spec.id_map {
        None => index,
        Some(IdMapKind::IdMap) => Box::new(IndexIdMap::new(index)),
        Some(IdMapKind::IdMap2) => Box::new(IndexIdMap2::new(index)),
    })
}

fn transform(d: usize, t: TransformSpec) -> Result<Box<dyn VectorTransform>> {
    Ok(match t {
        TransformSpec::L2Norm => Box::new(NormalizationTransform::new(d)?),
        TransformSpec::Pca {
            d_out,
            whiten,
            rotate,
        } => {
            let power = if whiten { -0.5 } else { 0.0 };
            Box::new(PcaMatrix::new(d, d_out, power, rotate)?)
        }
        TransformSpec::Opq { m, d_out } => Box::new(OpqMatrix::new(d, m, d_out.unwrap_or(d))?),
        TransformSpec::RandomRotation { d_out } => Box::new(RandomRotationMatrix::new(d, d_out)?),
        TransformSpec::Pad { d_out } => {
            if d_out < d {
                return Err(Error::invalid(format!(
                    "Pad{d_out} pads to at least the input dimension {d}"
                )));
            }
            Box::new(RemapDimensionsTransform::with_dims(d, d_out, false)?)
        }
    })
}

fn storage(d: usize, s: StorageSpec, metric: MetricType) -> Result<Box<dyn Index>> {
    Ok(match s {
        StorageSpec::Flat => Box::new(IndexFlat::new(d, metric)?),
        StorageSpec::Pq {
            m,
            nbits,
            polysemous_training,
        } => {
            let mut ix = IndexPq::new(d, m, nbits, metric)?;
            ix.set_do_polysemous_training(polysemous_training);
            Box::new(ix)
        }
        StorageSpec::PqFastScan { m, bbs } => {
            let mut ix = IndexPqFastScan::new(d, m, metric)?;
            ix.set_bbs(bbs)?;
            Box::new(ix)
        }
        StorageSpec::ScalarQuantizer(qt) => Box::new(IndexScalarQuantizer::new(d, qt, metric)?),
        StorageSpec::Lsh {
            nbits,
            rotate,
            train_thresholds,
        } => {
            if metric != MetricType::L2 {
                return Err(Error::Unsupported(format!(
                    "LSH ranks by Hamming distance and is built for L2 only, not {metric:?}"
                )));
            }
            Box::new(IndexLsh::new(
                d,
                nbits.unwrap_or(d),
                rotate,
                train_thresholds,
            )?)
        }
        StorageSpec::RaBitQ { nb_bits } => Box::new(crate::IndexRaBitQ::new(d, metric, nb_bits)?),
        StorageSpec::RaBitQFastScan { nb_bits, bbs } => {
            let mut ix = crate::IndexRaBitQFastScan::new(d, metric, nb_bits)?;
            ix.set_bbs(bbs)?;
            Box::new(ix)
        }
        StorageSpec::AdditiveQuantizer(aq) => Box::new(crate::IndexAdditiveQuantizer::new(
            aq.build(d, aq_search_type(aq, metric))?,
            metric,
        )?),
        StorageSpec::AqFastScan { aq, bbs } => {
            let mut ix =
                crate::IndexAqFastScan::new(aq.build(d, aq_search_type(aq, metric))?, metric)?;
            ix.set_bbs(bbs)?;
            Box::new(ix)
        }
        StorageSpec::AdditiveCoarseQuantizer(aq) => {
            let q = aq.build(d, fathom_quant::additive::AqSearchType::Decompress)?;
            let residual = matches!(aq.shape, crate::AqShape::Residual { .. });
            let beam = if residual { 4.0 } else { -1.0 };
            Box::new(crate::IndexAdditiveCoarseQuantizer::from_quantizer(
                q, metric, beam,
            )?)
        }
        StorageSpec::Hnsw { m, storage } => match storage {
            HnswStorageSpec::Flat => Box::new(IndexHnswFlat::new_flat(d, m, metric)?),
            HnswStorageSpec::ScalarQuantizer(qt) => Box::new(IndexHnsw::with_storage(
                IndexScalarQuantizer::new(d, qt, metric)?,
                m,
            )?),
            HnswStorageSpec::Pq { m: pm, nbits } => Box::new(IndexHnsw::with_storage(
                IndexPq::new(d, pm, nbits, metric)?,
                m,
            )?),
        },
    })
}

/// The search type of an additive quantizer: without a norm suffix Faiss decodes for L2
/// but uses look-up tables alone for inner product (`_Nnone`, which needs no norm).
fn aq_search_type(
    aq: super::spec::AqSpec,
    metric: MetricType,
) -> fathom_quant::additive::AqSearchType {
    use fathom_quant::additive::AqSearchType as St;
    match (aq.search_type, metric) {
        (St::Decompress, MetricType::InnerProduct) => St::LutNonorm,
        (st, _) => st,
    }
}

/// The coarse quantizer, its list count and how the IVF index trains it.
fn coarse_quantizer(
    d: usize,
    coarse: &CoarseSpec,
    metric: MetricType,
) -> Result<(Box<dyn Index>, usize, QuantizerTraining)> {
    Ok(match coarse {
        CoarseSpec::Flat { nlist } => (
            Box::new(IndexFlat::new(d, metric)?),
            *nlist,
            QuantizerTraining::Kmeans,
        ),
        // Faiss's IVF<n>_HNSW<M>: k-means with a flat index, then the centroids are added
        // to an HNSW graph that assigns vectors to lists.
        CoarseSpec::Hnsw { nlist, m } => (
            Box::new(IndexHnswFlat::new_flat(d, *m, metric)?),
            *nlist,
            QuantizerTraining::KmeansThenAdd,
        ),
        CoarseSpec::Index { nlist, quantizer } => {
            let q = quantizer
                .build(d, metric)
                .map_err(|e| e.context(format!("the quantizer ({quantizer}) in parentheses")))?;
            // A flat quantizer is trained by k-means directly, a multi-index or a residual
            // coarse quantizer alone,
            // anything else gets k-means' centroids added (Faiss's get_trains_alone).
            let training = match q.view() {
                crate::IndexView::Flat(_) => QuantizerTraining::Kmeans,
                crate::IndexView::MultiIndexQuantizer(_)
                | crate::IndexView::AdditiveCoarseQuantizer(_) => QuantizerTraining::Alone,
                _ => QuantizerTraining::KmeansThenAdd,
            };
            (q, *nlist, training)
        }
        CoarseSpec::MultiIndex { m, nbits } => {
            if metric != MetricType::L2 {
                return Err(Error::Unsupported(format!(
                    "a multi-index quantizer compares with L2, not {metric:?}"
                )));
            }
            let nlist = m
                .checked_mul(*nbits)
                .filter(|&b| b < usize::BITS as usize)
                .map(|b| 1usize << b)
                .ok_or_else(|| Error::invalid(format!("IMI{m}x{nbits} has too many lists")))?;
            (
                Box::new(crate::MultiIndexQuantizer::new(d, *m, *nbits)?),
                nlist,
                QuantizerTraining::Alone,
            )
        }
    })
}

fn ivf(
    quantizer: Box<dyn Index>,
    nlist: usize,
    training: QuantizerTraining,
    codec: IvfCodecSpec,
    metric: MetricType,
) -> Result<Box<dyn Index>> {
    fn finish<C: IvfCodec + 'static>(
        mut ix: IndexIvf<C>,
        training: QuantizerTraining,
    ) -> Box<dyn Index> {
        ix.quantizer_training = training;
        // As Faiss's factory (fix_ivf_fields): inner-product centroids live on the sphere.
        ix.cp.spherical = ix.metric() == MetricType::InnerProduct;
        Box::new(ix)
    }
    Ok(match codec {
        IvfCodecSpec::Flat => finish(IndexIvfFlat::new(quantizer, nlist, metric)?, training),
        IvfCodecSpec::ScalarQuantizer(qt) => finish(
            IndexIvfScalarQuantizer::new(quantizer, nlist, qt, metric)?,
            training,
        ),
        IvfCodecSpec::Pq {
            m,
            nbits,
            polysemous_training,
        } => {
            let mut ix = IndexIvfPq::new(quantizer, nlist, m, nbits, metric)?;
            ix.codec_mut().do_polysemous_training = polysemous_training;
            finish(ix, training)
        }
        IvfCodecSpec::PqRefine { m, m2 } => {
            if metric != MetricType::L2 {
                return Err(Error::Unsupported(format!(
                    "IVFPQR re-ranks with L2 distances; not available for {metric:?}"
                )));
            }
            let mut ix = crate::ivf::IndexIvfPqr::new(quantizer, nlist, m, 8, m2)?;
            ix.ivf_mut().quantizer_training = training;
            ix.ivf_mut().cp.spherical = false; // L2 only
            Box::new(ix)
        }
        IvfCodecSpec::AqFastScan {
            aq,
            bbs,
            by_residual,
        } => {
            let d = quantizer.dim();
            let mut ix = crate::IndexIvfAqFastScan::new(
                quantizer,
                nlist,
                aq.build(d, aq_search_type(aq, metric))?,
                metric,
            )?;
            ix.codec_mut().set_bbs(bbs)?;
            // Faiss's factory codes residuals only with `r`.
            ix.by_residual = by_residual;
            finish(ix, training)
        }
        IvfCodecSpec::AdditiveQuantizer(aq) => {
            let d = quantizer.dim();
            finish(
                crate::IndexIvfAdditiveQuantizer::new(
                    quantizer,
                    nlist,
                    aq.build(d, aq_search_type(aq, metric))?,
                    metric,
                )?,
                training,
            )
        }
        IvfCodecSpec::RaBitQ { nb_bits } => finish(
            crate::IndexIvfRaBitQ::new(quantizer, nlist, metric, nb_bits)?,
            training,
        ),
        IvfCodecSpec::RaBitQFastScan { nb_bits, bbs } => {
            let mut ix = crate::IndexIvfRaBitQFastScan::new(quantizer, nlist, metric, nb_bits)?;
            ix.codec_mut().set_bbs(bbs)?;
            finish(ix, training)
        }
        IvfCodecSpec::PqFastScan {
            m,
            by_residual,
            bbs,
        } => {
            let mut ix = IndexIvfPqFastScan::new(quantizer, nlist, m, metric)?;
            ix.by_residual = by_residual;
            ix.codec_mut().set_bbs(bbs)?;
            finish(ix, training)
        }
    })
}
