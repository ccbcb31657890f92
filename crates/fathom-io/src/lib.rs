//! # fathom-io
//!
//! fathom's files, above `fathom-index` in the layering: the dataset formats
//! vector-search benchmarks and numpy use, and Faiss's index files ([`faiss`]).
//!
//! - TEXMEX "vecs" files ([`read_fvecs`], [`read_ivecs`], [`read_bvecs`] and writers):
//!   each row is a little-endian `i32` dimension followed by that many values.
//!   [`VecsMmap`] maps one without reading it all.
//! - `.npy` files ([`read_npy`], [`write_npy`], [`NpyMmap`]): float32, int64 and int32
//!   arrays of one or two dimensions, C order, little-endian.
//!
//! Nothing read is trusted: sizes, headers and every row's dimension are checked, and a
//! malformed file gives an [`Error::Format`](fathom_core::Error::Format) that says what
//! was found and what was expected. Writers write a temporary file and rename it, so a
//! crash never leaves a half-written file under the final name.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("x.fvecs");
//! use fathom_io::{read_fvecs, write_fvecs};
//! write_fvecs(&path, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3).unwrap();
//! let x = read_fvecs(&path).unwrap();
//! assert_eq!((x.n(), x.d), (2, 3));
//! assert_eq!(x.row(1), &[4.0, 5.0, 6.0]);
//! ```

mod atomic;
mod dataset;
pub mod faiss;
mod input;
mod npy;
pub mod synthetic;
mod vecs;

pub use dataset::{Dataset, read_vectors};
pub use npy::{NpyArray, NpyElement, NpyMmap, read_npy, write_npy};
pub use vecs::{
    VecsElement, VecsMmap, read_bvecs, read_fvecs, read_ivecs, read_vecs, write_bvecs, write_fvecs,
    write_ivecs, write_vecs,
};
