//! # fathom-quant
//!
//! Vector codecs: each turns vectors into compact codes and back, and computes distances
//! from a query to codes. This crate sits above `fathom-linalg` (k-means trains the
//! codebooks, random rotations feed LSH) and `fathom-kernels` (which holds the loops over
//! codes); the indexes built on the codecs (`IndexPq`, `IndexScalarQuantizer`,
//! `IndexLsh`, `IndexPqFastScan`, and later the IVF family) are in `fathom-index`.
//!
//! | codec | what it is | Faiss |
//! |---|---|---|
//! | [`ProductQuantizer`] | `m` sub-spaces × `2^nbits` centroids, ADC and SDC tables | `ProductQuantizer` |
//! | [`PolysemousTraining`] | centroid renumbering so Hamming distance tracks distance | `PolysemousTraining` |
//! | [`ScalarQuantizer`] | per-dimension 8/6/4-bit, fp16, bf16, direct bytes | `ScalarQuantizer` |
//! | [`LshEncoder`] | sign bits of (rotated) coordinates | `IndexLSH`'s coding |
//! | [`fastscan`] | 4-bit PQ codes in blocks of 32 and 8-bit tables for the shuffle kernel | `pq4_fast_scan` |
//! | [`rabitq`] | one sign bit (or a few bits) per dimension with an error-bounded estimate | `RaBitQuantizer` |
//! | [`additive::AdditiveQuantizer`] | sums of codebook entries: residual (beam search), local search (LSQ++), product of either; norms for L2 tables | `ResidualQuantizer`, `LocalSearchQuantizer`, `Product*Quantizer` |
//!
//! Codes are Faiss's byte for byte (PQ indices packed LSB-first, SQ components in Faiss's
//! layouts), so the persistence layer can exchange them with faiss unchanged. The fast-scan
//! block layout is fathom's own; it is converted when written in Faiss's format.

pub mod additive;
pub mod bits;
mod codec;
pub mod fastscan;
mod lsh;
mod polysemous;
mod pq;
pub mod rabitq;
mod sq;

pub use codec::Codec;
pub use lsh::LshEncoder;
pub use polysemous::PolysemousTraining;
pub use pq::ProductQuantizer;
pub use sq::{QuantizerType, RangeStat, ScalarQuantizer, SqQuery};
