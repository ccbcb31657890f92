//! # fathom-kernels
//!
//! The numeric kernels of fathom, one layer above `fathom-core`: distances for every
//! metric, exhaustive k-NN and range search, top-k selection, norms, half-precision
//! conversion, and the depthwise-convolution step of the image model ([`conv`]).
//! Everything above (indexes, k-means, quantizers) computes distances through this crate.
//!
//! ## SIMD
//! Kernels exist for scalar, AVX2+FMA, AVX-512 and NEON, written with `std::arch`. The
//! level is chosen at run time, once ([`simd_level`]); `FATHOM_SIMD=scalar|avx2|avx512`
//! forces a lower one. Dispatch happens at the outer loop (a query against a block of
//! vectors), so the per-pair code inlines. Every level is tested against its scalar twin
//! ([`distance::scalar`]).
//!
//! ## Exhaustive search
//! [`knn`] and [`range_search`] cut the work into tiles; L2 and inner product use a GEMM
//! (faer) with the ‖x‖² + ‖y‖² − 2⟨x,y⟩ expansion once a tile has enough queries. Scratch
//! memory is bounded per worker, whatever the number of queries.
//!
//! ```
//! use fathom_core::MetricType;
//! let base: Vec<f32> = (0..1000).map(|i| (i % 97) as f32).collect(); // 250 vectors, d = 4
//! let res = fathom_kernels::knn(MetricType::L2, &base[..8], &base, 4, 3, None).unwrap();
//! assert_eq!(res.labels_of(0)[0], 0);
//! assert_eq!(res.labels_of(1)[0], 1);
//! ```

pub mod codes;
pub mod conv;
mod convert;
mod dispatch;
pub mod distance;
mod exhaustive;
mod memory;
mod multiversion;
pub mod nearest;
mod norms;
pub mod select;
mod simd;
mod topk;

pub use convert::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
pub use distance::{
    PairKernel, distance, distances_to, pairwise_distances, prefetch, prefetch_lines,
};
pub use exhaustive::{knn, matmul_abt, range_search};
pub use memory::advise_huge_pages;
pub use norms::{l2_norms, l2_norms_sqr, l2_norms_sqr_into, normalize_l2, normalized_l2};
pub use simd::{SimdLevel, detected_simd_level, simd_level};
pub use topk::TopK;

pub use half;
