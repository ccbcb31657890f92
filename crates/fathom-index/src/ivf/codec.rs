//! What an IVF index asks of its per-list encoding: the [`IvfCodec`] trait and the
//! [`ListScanner`] that compares one query with the codes of one list at a time.

use std::borrow::Cow;

use fathom_core::{Error, IdSelector, Idx, MetricType, Result};
use fathom_invlists::{ArrayInvertedLists, InvertedLists};
use fathom_kernels::TopK;

use super::IvfCodecView;
use crate::Index;

/// Entries scored per [`ListScanner::keys`] call by the default [`ListScanner::scan`].
const SCAN_CHUNK: usize = 256;

/// What a scanner may need to know about the IVF index it serves.
#[derive(Clone, Copy)]
pub struct IvfContext<'a> {
    /// How vectors are compared.
    pub metric: MetricType,
    /// Whether codes encode `x − centroid(list)` rather than `x`.
    pub by_residual: bool,
    /// Number of lists.
    pub nlist: usize,
    pub(crate) quantizer: &'a dyn Index,
    pub(crate) centroids: Option<&'a [f32]>,
}

impl IvfContext<'_> {
    /// The coarse centroid of `list` (read from a cached table when the index keeps one,
    /// otherwise reconstructed by the quantizer). A list that does not exist, or a
    /// quantizer that cannot reconstruct its centroids, is an error: residuals cannot be
    /// formed without them.
    pub fn centroid(&self, list: usize) -> Result<Cow<'_, [f32]>> {
        let d = self.quantizer.dim();
        if list >= self.nlist {
            return Err(Error::invalid(format!(
                "list {list} does not exist: the index has {} lists",
                self.nlist
            )));
        }
        match self.centroids {
            Some(c) => c
                .get(list * d..(list + 1) * d)
                .map(Cow::Borrowed)
                .ok_or_else(|| Error::invalid(format!("no centroid cached for list {list}"))),
            None => self
                .quantizer
                .reconstruct(list as Idx)
                .map(Cow::Owned)
                .map_err(|e| {
                    e.context(format!(
                        "the centroid of list {list} (an index storing residuals needs its \
                         coarse quantizer to reconstruct centroids)"
                    ))
                }),
        }
    }
}

impl IvfContext<'_> {
    /// `out = x − centroid(list)`: the query a residual codec compares with `list`.
    pub fn residual(&self, list: usize, x: &[f32], out: &mut [f32]) -> Result<()> {
        let c = self.centroid(list)?;
        for ((r, v), c) in out.iter_mut().zip(x).zip(c.iter()) {
            *r = v - c;
        }
        Ok(())
    }
}

/// The per-list encoding of an IVF index (Faiss's `IndexIVF` subclasses): how vectors
/// (or their residuals) become codes and how a query is compared with a list's codes.
pub trait IvfCodec: Send + Sync + std::fmt::Debug {
    /// Bytes per code.
    fn code_size(&self) -> usize;
    /// Whether the codec can encode.
    fn is_trained(&self) -> bool;
    /// Learns the codec from `x` (residuals when the index encodes residuals; `lists` are
    /// their lists).
    fn train(&mut self, x: &[f32], lists: &[Idx], ctx: IvfContext<'_>) -> Result<()>;
    /// How many training vectors the codec wants at most (0: all), as Faiss's
    /// `train_encoder_num_vectors`.
    fn train_sample_size(&self) -> usize {
        0
    }
    /// Encodes the rows of `x` (residuals when the index encodes residuals) into
    /// `codes`, `code_size` bytes per row.
    fn encode(&self, x: &[f32], codes: &mut [u8]) -> Result<()>;
    /// Encodes the rows of `x` given their residuals too (`residuals` equals `x` when the
    /// index does not encode residuals). Codecs whose codes depend on the vector as well
    /// as its residual (RaBitQ's inner-product factors use `‖x‖²`) override it; the
    /// default encodes the residuals.
    fn encode_with_vectors(&self, x: &[f32], residuals: &[f32], codes: &mut [u8]) -> Result<()> {
        let _ = x;
        self.encode(residuals, codes)
    }
    /// Decodes one code into `out` (a residual when the index encodes residuals).
    fn decode(&self, code: &[u8], out: &mut [f32]);
    /// A scanner for one query.
    fn scanner<'a>(
        &'a self,
        ctx: IvfContext<'a>,
        query: &'a [f32],
    ) -> Result<Box<dyn ListScanner + 'a>>;
    /// Empty lists laid out as the scanner reads them.
    fn new_lists(&self, nlist: usize) -> Box<dyn InvertedLists> {
        Box::new(ArrayInvertedLists::new(nlist, self.code_size()))
    }
    /// Whether [`IvfCodec::decode_list`] is worth it: a batch of queries sharing lists is
    /// then searched list by list, each list decoded once and compared with all its
    /// queries in one matrix product. Codecs whose own scan is cheaper than decoding (PQ
    /// look-ups, RaBitQ popcounts) keep the per-query scan.
    fn decodes_lists(&self) -> bool {
        false
    }
    /// Decodes the first `out.len() / d` entries of a list's storage into floats
    /// (residuals when the index encodes residuals); `false` when not supported.
    fn decode_list(&self, codes: &[u8], out: &mut [f32]) -> bool {
        let _ = (codes, out);
        false
    }
    /// Which codec this is, for code that must treat each kind on its own (persistence,
    /// the CLI); codecs defined outside this crate answer [`IvfCodecView::Other`].
    fn view(&self) -> IvfCodecView<'_>;
    /// Called after the coarse quantizer or the codec changed (e.g. to drop tables
    /// computed from the centroids).
    fn invalidate(&mut self) {}
    /// The codec's part of the factory string (`Flat`, `PQ32`, `SQ8`, `PQ32x4fs`), for an
    /// index that encodes residuals or not.
    fn description(&self, by_residual: bool) -> String;
    /// Sets a codec parameter (`ht`, `polysemous_ht`, …); `Ok(false)` when the name is not
    /// one of the codec's.
    fn set_param(&mut self, name: &str, value: f64) -> Result<bool> {
        let _ = (name, value);
        Ok(false)
    }
    /// The current value of a codec parameter `set_param` accepts, `None` for others.
    fn param(&self, name: &str) -> Option<f64> {
        let _ = name;
        None
    }
    /// The codec's run-time parameters worth exploring (see
    /// [`Index::parameter_ranges`](crate::Index::parameter_ranges)).
    fn parameter_ranges(&self) -> Vec<crate::autotune::ParameterRange> {
        Vec::new()
    }
}

/// Compares one query with the entries of one list at a time (Faiss's
/// `InvertedListScanner`). Keys are "smaller is better": distances, or negated
/// similarities.
pub trait ListScanner {
    /// Moves to `list`, whose centroid is at `coarse_dis` from the query (an error when
    /// the list's centroid cannot be had).
    fn set_list(&mut self, list: usize, coarse_dis: f32) -> Result<()>;
    /// The keys of the first `out.len()` entries of `codes` (the list's storage, from an
    /// entry boundary — a block boundary for block layouts).
    fn keys(&mut self, codes: &[u8], out: &mut [f32]);
    /// Offers every entry of the current list to `top`; `selector` filters ids.
    fn scan(
        &mut self,
        codes: &[u8],
        ids: &[Idx],
        top: &mut TopK,
        selector: Option<&dyn IdSelector>,
    ) {
        let n = ids.len();
        if n == 0 {
            return;
        }
        let cs = codes.len() / n;
        let mut keys = [0.0f32; SCAN_CHUNK];
        for start in (0..n).step_by(SCAN_CHUNK) {
            let len = SCAN_CHUNK.min(n - start);
            self.keys(&codes[start * cs..(start + len) * cs], &mut keys[..len]);
            top.push_ids(&keys[..len], &ids[start..start + len], |id| {
                selector.is_none_or(|s| s.is_member(id))
            });
        }
    }
}
