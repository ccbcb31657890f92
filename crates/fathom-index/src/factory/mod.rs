//! Building an index from a description in Faiss's factory grammar, and the way back.
//! The grammar: an optional `IDMap` / `IDMap2`, transform prefixes (`PCA…`, `OPQ…`,
//! `RR…`, `L2norm`, `Pad…`), an optional coarse quantizer (`IVF<n>`, `IVF<n>_HNSW<M>`,
//! `IVF<n>(<any description>)`, `IMI<m>x<nbits>`), one storage or IVF codec token (`Flat`,
//! `PQ…`, `SQ…`, `LSH…`, `PQ…x4fs[r][_<bbs>]`, `HNSW…`, `RaBitQ…`, `RQ…`, `LSQ…`, `PRQ…`,
//! `PLSQ…`, `RCQ…`) and an optional refinement (`RFlat`, `Refine(<any description>)`).
//! Other Faiss tokens (NSG, fast-scan additive quantizers, …) are rejected with a message
//! naming the token and what is available at that position. Binary indexes have their
//! own factory (`binary::index_binary_factory`).
//!
//! One grammar, one type: a description parses into an [`IndexSpec`] (`parse`), the spec
//! builds the index (`build`), and the spec prints the canonical description
//! (`spec`'s `Display`) — which every index's `description()` gives back.

mod build;
mod parse;
mod spec;

use fathom_core::{Error, MetricType, Result};

pub use spec::{
    AqShape, AqSpec, BodySpec, CoarseSpec, HnswStorageSpec, IdMapKind, IndexSpec, IvfCodecSpec,
    RefineSpec, StorageSpec, TransformSpec,
};

use crate::Index;

/// The index a description names, for vectors of dimension `d` compared with `metric`,
/// as Faiss's `index_factory(d, description, metric)`: `description` parsed as an
/// [`IndexSpec`] and built.
///
/// Accepted: `[IDMap,|IDMap2,][<transform>,…][<coarse>,]<storage>[,RFlat|,Refine(<description>)]`.
/// Transforms: `PCA<n>` (`W` whitens, `R` adds a random rotation: `PCAW64`, `PCAR64`,
/// `PCAWR64`), `OPQ<M>` or `OPQ<M>_<d_out>`, `RR<n>`, `L2norm`, `Pad<n>`; each feeds the
/// next, the index gets the last one's output. As in Faiss the id map wraps everything and
/// a refinement (`RFlat`) re-ranks with the original vectors, outside the transforms.
/// Storage is `Flat`, `PQ16` (`PQ<M>x<nbits>`, `np` to skip polysemous training),
/// `PQ32x4fs`, `SQ8` / `SQ4` / `SQ6` / `SQfp16` / `SQbf16` / `SQ8_direct` /
/// `SQ8_direct_signed`, `LSH` (`LSH<nbits>`, `r` to rotate, `t` to train thresholds) or
/// `HNSW<M>[,<storage>]`.
/// The coarse quantizer `IVF<nlist>` (`k` / `M` suffixes: ×1024, ×1024²), `IVF<nlist>_HNSW<M>`,
/// `IVF<nlist>(<description>)` (any index as quantizer, e.g. `IVF1024(PQ16x4fs)`) or
/// `IMI<M>x<nbits>` makes an IVF index of the storage that follows: `Flat`, `PQ…`,
/// `PQ<M>+<M2>` (IVFPQR), `PQ<M>x4fs` (`r`: residuals, `_<bbs>`: Faiss's block size) or
/// `SQ…`; with inner product its k-means is spherical, as Faiss's factory sets it.
/// `IDMap` may also come last, as Faiss accepts. Errors name the token (position and
/// text), also when a constructor refuses it (`PQ5` with `d = 12`).
///
/// ```
/// use fathom_index::{index_factory, Index, MetricType};
/// let index = index_factory(64, "IDMap2,Flat", MetricType::InnerProduct).unwrap();
/// assert_eq!(index.description(), "IDMap2,Flat");
/// let index = index_factory(64, "PQ16,RFlat", MetricType::L2).unwrap();
/// assert_eq!(index.description(), "PQ16,RFlat");
/// let index = index_factory(64, "IVF1k,PQ16", MetricType::L2).unwrap();
/// assert_eq!(index.description(), "IVF1024,PQ16");
/// let err = index_factory(64, "IVF100,LSH", MetricType::L2).unwrap_err().to_string();
/// assert!(err.contains("LSH"), "{err}");
/// ```
pub fn index_factory(d: usize, description: &str, metric: MetricType) -> Result<Box<dyn Index>> {
    let (spec, positions) = parse::parse(description)?;
    build::build(&spec, &positions, d, metric)
}

/// The factory string of an index (Faiss's `reverse_index_factory`): building it with
/// [`index_factory`] for the index's dimension and metric gives an index of the same
/// structure and parameters (untrained and empty). Indexes whose structure no factory
/// string describes — a linear transform read from a file, shards — give an error.
///
/// ```
/// use fathom_index::{index_factory, reverse_index_factory, MetricType};
/// let index = index_factory(32, "OPQ8,IVF1k,PQ8x4fs,RFlat", MetricType::L2).unwrap();
/// assert_eq!(reverse_index_factory(&*index).unwrap(), "OPQ8,IVF1024,PQ8x4fs,RFlat");
/// ```
pub fn reverse_index_factory(index: &dyn Index) -> Result<String> {
    let description = index.description();
    let spec: IndexSpec = description.parse().map_err(|e| {
        Error::Unsupported(format!(
            "{description:?} describes an index no factory string builds ({e})"
        ))
    })?;
    let rebuilt = spec
        .build(index.dim(), index.metric())
        .map_err(|e| {
            Error::Unsupported(format!(
                "{description:?} describes an index no factory string builds ({e})"
            ))
        })?
        .description();
    if rebuilt != description {
        return Err(Error::Unsupported(format!(
            "{description:?} builds {rebuilt:?}, not the same index"
        )));
    }
    Ok(description)
}

#[cfg(test)]
mod tests;
