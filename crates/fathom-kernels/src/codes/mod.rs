#![allow(clippy::needless_range_loop)] // index-heavy kernels read better with explicit lanes
//! Kernels over compressed codes: Hamming distances between binary codes, product-
//! quantizer distance tables and table lookups, scalar-quantizer distances computed
//! straight from the codes, and the 4-bit fast-scan accumulation.
//!
//! The codecs that produce these codes (training, encoding, the code layouts) live in
//! `fathom-quant`; this module only holds the loops that must be fast. Each kernel is
//! compiled per SIMD level (see `multiversion`), or, for the fast-scan shuffles, written
//! with intrinsics (AVX2, AVX-512BW, NEON) beside a scalar twin; the tests compare every level with the scalar one.

pub mod fastscan;
pub mod hamming;
pub mod pq;
pub mod rabitq;
pub mod sq;
