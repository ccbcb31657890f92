//! The runtime shape of an index: what kind it is and its parts, for code that holds a
//! `dyn Index` and must treat each kind on its own (persistence, the Python classes, the
//! CLI's `info`, the service, GPU conversion).
//!
//! Each index type says what it is once, in [`Index::view`]; consumers `match` on the
//! answer. The enums are exhaustive on purpose: a new index kind is a new variant, and the
//! compiler then points at every consumer that must learn about it — where a list of
//! downcasts would silently miss it.
//!
//! ```
//! use fathom_index::{Index, IndexView, index_factory, MetricType};
//! let index = index_factory(8, "IDMap,IVF4,Flat", MetricType::L2).unwrap();
//! let IndexView::IdMap { inner, .. } = index.view() else { panic!() };
//! let IndexView::Ivf(ivf) = inner.view() else { panic!() };
//! assert_eq!(ivf.nlist(), 4);
//! ```

use fathom_core::Idx;
use fathom_linalg::VectorTransform;

use crate::hnsw::Hnsw;
use crate::ivf::{DynIvf, IndexIvfPqr, MultiIndexQuantizer};
use crate::{
    Index, IndexFlat, IndexLsh, IndexPq, IndexPqFastScan, IndexRefine, IndexScalarQuantizer,
    IndexShards,
};

/// What an index is, with borrowed access to its parts ([`Index::view`]).
#[derive(Clone, Copy)]
pub enum IndexView<'a> {
    /// Exact search over stored vectors.
    Flat(&'a IndexFlat),
    /// Product-quantizer codes.
    Pq(&'a IndexPq),
    /// Scalar-quantizer codes.
    ScalarQuantizer(&'a IndexScalarQuantizer),
    /// Sign-bit codes.
    Lsh(&'a IndexLsh),
    /// 4-bit PQ codes in fast-scan blocks.
    PqFastScan(&'a IndexPqFastScan),
    /// RaBitQ codes, searched exhaustively.
    RaBitQ(&'a crate::IndexRaBitQ),
    /// RaBitQ codes in fast-scan blocks.
    RaBitQFastScan(&'a crate::IndexRaBitQFastScan),
    /// Additive-quantizer codes (RQ, LSQ, PRQ, PLSQ), searched exhaustively.
    AdditiveQuantizer(&'a crate::IndexAdditiveQuantizer),
    /// An inverted file of any codec ([`DynIvf::codec`] says which).
    Ivf(&'a dyn DynIvf),
    /// IVF-PQ re-ranked by a second PQ.
    IvfPqr(&'a IndexIvfPqr),
    /// Additive-quantizer codes with 4-bit codebooks in fast-scan blocks.
    AqFastScan(&'a crate::IndexAqFastScan),
    /// A coarse quantizer over every code of a residual quantizer.
    AdditiveCoarseQuantizer(&'a crate::IndexAdditiveCoarseQuantizer),
    /// The inverted multi-index's coarse quantizer.
    MultiIndexQuantizer(&'a MultiIndexQuantizer),
    /// An HNSW graph over a storage index (flat, SQ or PQ: the storage's own view says).
    Hnsw {
        /// The graph.
        graph: &'a Hnsw,
        /// The vectors or codes the graph links.
        storage: &'a dyn Index,
    },
    /// User-chosen ids over another index.
    IdMap {
        /// The index holding the vectors.
        inner: &'a dyn Index,
        /// The id of each inner vector, by position.
        ids: &'a [Idx],
        /// Whether it also maps ids back to positions (`IndexIDMap2`: reconstruction by id).
        two_way: bool,
    },
    /// Vector transforms in front of another index.
    PreTransform {
        /// The transforms, applied first to last.
        transforms: &'a [Box<dyn VectorTransform>],
        /// The index searched with transformed vectors.
        inner: &'a dyn Index,
    },
    /// One index re-ranked by another.
    Refine(&'a IndexRefine),
    /// Several indexes searched as one.
    Shards(&'a IndexShards),
    /// An index defined outside this crate (a GPU index, a user's own type): only the
    /// [`Index`] trait is known about it.
    Other,
}

/// The kinds whose own mutating operations reach past the [`Index`] trait
/// ([`Index::view_mut`]); every other index answers [`IndexViewMut::Other`].
pub enum IndexViewMut<'a> {
    /// An inverted file of any codec.
    Ivf(&'a mut dyn DynIvf),
    /// IVF-PQ re-ranked by a second PQ.
    IvfPqr(&'a mut IndexIvfPqr),
    /// Several indexes searched as one.
    Shards(&'a mut IndexShards),
    /// Nothing beyond the [`Index`] trait.
    Other,
}

/// A sub-index one index holds, by the attribute name Faiss gives it: how code reaches
/// `index.quantizer`, `index.index`, `index.refine_index`, `index.storage` or a shard
/// ([`IndexView::part`], [`Index::part_mut`]).
///
/// ```
/// use fathom_index::{Index, Part, index_factory, MetricType};
/// let index = index_factory(8, "IDMap,IVF4,Flat", MetricType::L2).unwrap();
/// let ivf = index.view().part(Part::Inner).unwrap();
/// let quantizer = ivf.view().part(Part::Quantizer).unwrap();
/// assert_eq!(quantizer.description(), "Flat");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// An IVF index's coarse quantizer (`index.quantizer`).
    Quantizer,
    /// The index a wrapper delegates to: an id map's or a pre-transform's `index`, a
    /// refinement's `base_index`.
    Inner,
    /// A refinement's `refine_index`.
    Refine,
    /// An HNSW index's `storage`.
    Storage,
    /// Shard `i` of an `IndexShards` (`index.at(i)`).
    Shard(usize),
}

impl<'a> IndexView<'a> {
    /// The sub-index `part` of this index, `None` when it has no such part.
    pub fn part(self, part: Part) -> Option<&'a dyn Index> {
        match (part, self) {
            (Part::Quantizer, v) => v.ivf_lists().map(|ivf| ivf.quantizer()),
            (Part::Inner, v) => v.inner(),
            (Part::Refine, IndexView::Refine(r)) => Some(r.refine()),
            (Part::Storage, IndexView::Hnsw { storage, .. }) => Some(storage),
            (Part::Shard(i), IndexView::Shards(s)) => s.shards().get(i).map(|b| &**b),
            _ => None,
        }
    }

    /// The inverted file this index searches, when it is one (the IVF-PQ inside an
    /// IVF-PQR included).
    pub fn ivf_lists(self) -> Option<&'a dyn DynIvf> {
        match self {
            IndexView::Ivf(ivf) => Some(ivf),
            IndexView::IvfPqr(r) => Some(r.ivf()),
            _ => None,
        }
    }

    /// The index a wrapper (id map, transforms, refinement's base) delegates its search
    /// to; `None` for indexes that wrap nothing.
    pub fn inner(self) -> Option<&'a dyn Index> {
        match self {
            IndexView::IdMap { inner, .. } | IndexView::PreTransform { inner, .. } => Some(inner),
            IndexView::Refine(r) => Some(r.base()),
            _ => None,
        }
    }
}
