//! [`DynIvf`]: an IVF index of any codec behind one object-safe trait, so code holding a
//! `dyn Index` (persistence, the router, Python, the CLI) reaches its lists, quantizer and
//! codec without naming the codec type. [`IndexView::Ivf`](crate::IndexView::Ivf) hands
//! it out.

use fathom_core::{Error, Idx, Result, SearchParams, SearchResult};
use fathom_invlists::{DirectMap, DirectMapType, InvertedLists};

use super::{
    IndexIvf, IvfCodec, IvfFlat, IvfPq, IvfPqFastScan, IvfRaBitQ, IvfScalarQuantizer, SubsetType,
};
use crate::Index;

/// Which codec an IVF index stores its lists with ([`DynIvf::codec`]).
#[derive(Clone, Copy)]
pub enum IvfCodecView<'a> {
    /// Full vectors.
    Flat(&'a IvfFlat),
    /// Product-quantizer codes.
    Pq(&'a IvfPq),
    /// Scalar-quantizer codes.
    ScalarQuantizer(&'a IvfScalarQuantizer),
    /// 4-bit PQ codes in fast-scan blocks.
    PqFastScan(&'a IvfPqFastScan),
    /// RaBitQ codes relative to the list centroids.
    RaBitQ(&'a IvfRaBitQ),
    /// RaBitQ codes relative to the list centroids, in fast-scan blocks.
    RaBitQFastScan(&'a super::IvfRaBitQFastScan),
    /// Additive-quantizer codes (RQ, LSQ, PRQ, PLSQ).
    AdditiveQuantizer(&'a super::IvfAdditiveQuantizer),
    /// 4-bit additive-quantizer codes in fast-scan blocks.
    AqFastScan(&'a super::IvfAqFastScan),
    /// A codec defined outside this crate.
    Other,
}

/// What every IVF index offers whatever its codec: its parts, the coarse step alone, and
/// the search after it — Faiss's `search_preassigned`, which lets a router quantize a
/// query once for many shards.
pub trait DynIvf: Index {
    /// Number of inverted lists.
    fn nlist(&self) -> usize;
    /// Lists scanned per query.
    fn nprobe(&self) -> usize;
    /// Whether codes encode `x − centroid`.
    fn by_residual(&self) -> bool;
    /// The coarse quantizer.
    fn quantizer(&self) -> &dyn Index;
    /// The inverted lists.
    fn invlists(&self) -> &dyn InvertedLists;
    /// The id → (list, offset) map.
    fn direct_map(&self) -> &DirectMap;
    /// The codec, by kind.
    fn codec(&self) -> IvfCodecView<'_>;
    /// Faiss's imbalance factor, `None` while empty.
    fn imbalance(&self) -> Option<f64>;
    /// The number of entries of each list.
    fn list_sizes(&self) -> Vec<usize> {
        let lists = self.invlists();
        (0..self.nlist()).map(|l| lists.list_size(l)).collect()
    }
    /// The `nprobe` nearest lists of each query (ids and coarse distances).
    fn probe(&self, queries: &[f32], nprobe: usize) -> Result<SearchResult>;
    /// The search with the coarse step done (`coarse` from [`DynIvf::probe`], of an
    /// index trained alike).
    fn search_preassigned(
        &self,
        queries: &[f32],
        k: usize,
        coarse: &SearchResult,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult>;
    /// The range search with the coarse step done (`coarse` as for
    /// [`DynIvf::search_preassigned`]).
    fn range_search_preassigned(
        &self,
        queries: &[f32],
        radius: f32,
        coarse: &SearchResult,
        params: &SearchParams<'_>,
    ) -> Result<fathom_core::RangeSearchResult>;
    /// Turns the id → entry map (needed by reconstruction and updates) on or off.
    fn make_direct_map(&mut self, on: bool) -> Result<()>;
    /// Switches the id → entry map to `kind` ([`IndexIvf::set_direct_map_type`]).
    fn set_direct_map_type(&mut self, kind: DirectMapType) -> Result<()>;
    /// Replaces the vectors with ids `ids` by the rows of `x`
    /// ([`IndexIvf::update_vectors`]; needs a direct map).
    fn update_vectors(&mut self, ids: &[Idx], x: &[f32]) -> Result<()>;
    /// The vector stored at entry `offset` of `list` ([`IndexIvf::reconstruct_from_offset`]).
    fn reconstruct_from_offset(&self, list: usize, offset: usize) -> Result<Vec<f32>>;
    /// Swaps in other lists of the same shape (on-disk lists after a merge, Faiss's
    /// `replace_invlists`); the index's entry count follows the new lists.
    fn replace_invlists(&mut self, lists: Box<dyn InvertedLists>) -> Result<()>;
    /// Moves the vectors of `other` (an IVF index of the same codec, trained alike) into
    /// this one, adding `add_id` to their ids.
    fn merge_from_ivf(&mut self, other: &mut dyn Index, add_id: Idx) -> Result<()>;
    /// Adds vectors to the lists `lists` gives, row by row ([`IndexIvf::add_preassigned`]).
    fn add_preassigned(&mut self, x: &[f32], lists: &[Idx], ids: Option<&[Idx]>) -> Result<()>;
    /// Copies the entries `subset` selects into `other`, an IVF index of the same codec
    /// trained alike ([`IndexIvf::copy_subset_to`]); returns how many were copied.
    fn copy_subset_to_ivf(&self, other: &mut dyn Index, subset: SubsetType) -> Result<usize>;
}

impl<C: IvfCodec + 'static> DynIvf for IndexIvf<C> {
    fn nlist(&self) -> usize {
        IndexIvf::nlist(self)
    }
    fn nprobe(&self) -> usize {
        self.nprobe
    }
    fn by_residual(&self) -> bool {
        self.by_residual
    }
    fn quantizer(&self) -> &dyn Index {
        IndexIvf::quantizer(self)
    }
    fn invlists(&self) -> &dyn InvertedLists {
        IndexIvf::invlists(self)
    }
    fn direct_map(&self) -> &DirectMap {
        IndexIvf::direct_map(self)
    }
    fn codec(&self) -> IvfCodecView<'_> {
        IndexIvf::codec(self).view()
    }
    fn imbalance(&self) -> Option<f64> {
        (self.ntotal() > 0).then(|| self.imbalance_factor())
    }
    fn probe(&self, queries: &[f32], nprobe: usize) -> Result<SearchResult> {
        IndexIvf::probe(self, queries, nprobe)
    }
    fn search_preassigned(
        &self,
        queries: &[f32],
        k: usize,
        coarse: &SearchResult,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        IndexIvf::search_preassigned(self, queries, k, coarse, params)
    }
    fn range_search_preassigned(
        &self,
        queries: &[f32],
        radius: f32,
        coarse: &SearchResult,
        params: &SearchParams<'_>,
    ) -> Result<fathom_core::RangeSearchResult> {
        IndexIvf::range_search_preassigned(self, queries, radius, coarse, params)
    }
    fn make_direct_map(&mut self, on: bool) -> Result<()> {
        IndexIvf::make_direct_map(self, on)
    }
    fn set_direct_map_type(&mut self, kind: DirectMapType) -> Result<()> {
        IndexIvf::set_direct_map_type(self, kind)
    }
    fn update_vectors(&mut self, ids: &[Idx], x: &[f32]) -> Result<()> {
        IndexIvf::update_vectors(self, ids, x)
    }
    fn reconstruct_from_offset(&self, list: usize, offset: usize) -> Result<Vec<f32>> {
        IndexIvf::reconstruct_from_offset(self, list, offset)
    }
    fn replace_invlists(&mut self, lists: Box<dyn InvertedLists>) -> Result<()> {
        IndexIvf::replace_invlists(self, lists)
    }
    fn add_preassigned(&mut self, x: &[f32], lists: &[Idx], ids: Option<&[Idx]>) -> Result<()> {
        IndexIvf::add_preassigned(self, x, lists, ids)
    }
    fn copy_subset_to_ivf(&self, other: &mut dyn Index, subset: SubsetType) -> Result<usize> {
        let description = other.description();
        let mine = self.description();
        let other = (other as &mut dyn std::any::Any)
            .downcast_mut::<Self>()
            .ok_or_else(|| {
                Error::invalid(format!(
                    "copy_subset_to: {mine} copies into an index of the same kind, got {description}"
                ))
            })?;
        self.copy_subset_to(other, subset)
    }
    fn merge_from_ivf(&mut self, other: &mut dyn Index, add_id: Idx) -> Result<()> {
        let description = other.description();
        // The one downcast merging needs: both sides must hold the same codec type, which
        // only the concrete type says.
        let other = (other as &mut dyn std::any::Any)
            .downcast_mut::<Self>()
            .ok_or_else(|| {
                fathom_core::Error::invalid(format!(
                    "merge_from merges IVF indexes of the same kind; got {description} into {}",
                    self.description()
                ))
            })?;
        IndexIvf::merge_from(self, other, add_id)
    }
}
