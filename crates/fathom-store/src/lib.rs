//! # fathom-store
//!
//! A persistent, memory-mapped file of vectors for people who want "top-k most similar"
//! without training an index: vectors are appended, deleted by tombstone, compacted away,
//! and searched exhaustively by cosine similarity, inner product or L2 distance. It sits
//! on `fathom-kernels` only (dot products, GEMM, top-k); nothing in the index layer is
//! needed.
//!
//! - **File**: two checksummed header slots, then segments of rows (vectors, their norms,
//!   a tombstone bitmap) that double in size up to ~256 MiB each; the store grows by
//!   appending a segment and never moves data ([`format`]).
//! - **Durability**: rows are written and synced first, then a header with the new count
//!   goes to the slot the previous header is not in. A crash at any point reopens with
//!   every acknowledged vector and nothing torn. Compaction writes a new file and
//!   renames it into place.
//! - **Deletion** is a tombstone bit: a zero vector is data like any other.
//! - **Concurrency**: one `VectorStore` is shared by reference; searches run in parallel,
//!   a writer excludes them (a writer waiting blocks new readers, so it is not starved).
//!   Across processes an advisory file lock admits one writer or many readers; after
//!   taking it, an opener checks that the path still names the file it locked (a
//!   compaction may have replaced it meanwhile) and reopens if not.
//! - **Search** reads the mapping in blocks: one query is a bandwidth-bound pass, a batch
//!   of queries is a GEMM per block, so the pass is shared.
//!
//! ```
//! use fathom_store::{Similarity, SearchOptions, VectorStore};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("vectors.store");
//! {
//!     let store = VectorStore::create(&path, 2).unwrap();
//!     store.add_vectors(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).unwrap(); // a zero vector too
//!     store.mark_deleted(&[1]).unwrap();
//! }
//! let store = VectorStore::open(&path).unwrap(); // reopened: everything is still there
//! assert_eq!(store.stat().deleted_ids, vec![1]);
//! assert_eq!(store.get(2), Some(vec![0.0, 0.0]));
//! let hits = store.search(&[1.0, 0.1], 5, Similarity::InnerProduct, &SearchOptions::default()).unwrap();
//! assert_eq!(hits[0].iter().map(|h| h.id).collect::<Vec<_>>(), vec![0, 2]);
//! assert_eq!(store.compact().unwrap(), vec![(0, 0), (2, 1)]);
//! ```

pub mod format;
mod search;
mod store;

pub use search::{Hit, SearchOptions, Similarity};
pub use store::{MAX_DIM, StoreOptions, StoreStat, VectorStore};
