//! # fathom-invlists
//!
//! The storage of IVF indexes, one layer above `fathom-core` and below `fathom-index`:
//! `nlist` inverted lists, each a sequence of `(id, code)` entries, behind the
//! [`InvertedLists`] trait so that array-backed lists ([`ArrayInvertedLists`]) and
//! lists read in place from a memory-mapped file ([`MappedInvertedLists`]) serve the same
//! scanners, and [`BlockInvertedLists`] keeps
//! codes interleaved in blocks for the fast-scan kernel. [`DirectMap`] answers "where is
//! id x" (list and offset) for reconstruct, remove and update, as Faiss's `DirectMap`.
//!
//! Lists hand out borrowed slices (`codes(list)`, `ids(list)`): an array or a mapping can
//! both lend them without copying, and a scanner reads a list as two contiguous arrays.
//!
//! ```
//! use fathom_invlists::{ArrayInvertedLists, InvertedLists};
//! let mut lists = ArrayInvertedLists::new(4, 2);
//! lists.add_entries(1, &[10, 11], &[1, 2, 3, 4]).unwrap();
//! assert_eq!(lists.list_size(1), 2);
//! assert_eq!(lists.ids(1), &[10, 11]);
//! assert_eq!(lists.codes(1), &[1, 2, 3, 4]);
//! assert_eq!(lists.compute_ntotal(), 2);
//! ```

mod array;
mod block;
mod direct_map;
mod lists;
mod mapped;
mod ondisk;

pub use array::ArrayInvertedLists;
pub use block::{BlockInvertedLists, CodePacker};
pub use direct_map::{DirectMap, DirectMapType, lo_build, lo_listno, lo_offset};
pub use lists::{InvertedLists, ListStats};
pub use mapped::{MappedInvertedLists, SharedBytes};
pub use ondisk::{OnDiskInvertedLists, OnDiskList};
