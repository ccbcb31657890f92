//! # fathom-core
//!
//! The shared vocabulary of fathom, the lowest layer of the workspace: every other crate
//! speaks in these types and none of them depends on anything but `thiserror`.
//!
//! - [`Idx`]: vector ids (`i64`, `-1` means "no result"), as in Faiss.
//! - [`MetricType`]: the distance or similarity, with Faiss's numeric codes.
//! - [`Error`] / [`Result`]: one error type for the whole library.
//! - [`SearchParams`]: per-call search parameters (an id selector, and the knobs later index
//!   families add); unset fields mean "the index's own default".
//! - [`SearchResult`] and [`RangeSearchResult`]: k-NN and range results in Faiss's layout.
//! - [`IdSelector`] and its implementations: restrict search, range search and removal to
//!   a subset of ids.
//! - [`check`]: validation helpers shared by every entry point that takes user vectors.

mod error;
mod metric;
mod params;
mod result;
mod selector;

pub mod check;

pub use error::{Error, Result};
pub use metric::MetricType;
pub use params::SearchParams;
pub use result::{RangeSearchResult, SearchResult};
pub use selector::{
    IdSelector, IdSelectorAll, IdSelectorAnd, IdSelectorBatch, IdSelectorBitmap, IdSelectorNot,
    IdSelectorOr, IdSelectorRange, IdSelectorTranslated, IdSelectorXor,
};

/// A vector id. Faiss's `idx_t`: a signed 64-bit integer where `-1` marks a missing result.
pub type Idx = i64;

/// The label Faiss and fathom put where fewer than `k` results exist.
pub const NO_ID: Idx = -1;
