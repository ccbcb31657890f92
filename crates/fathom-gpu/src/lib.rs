//! # fathom-gpu
//!
//! GPU offload for NVIDIA devices through cudarc: exact search ([`GpuIndexFlat`]: cuBLAS
//! inner products by tiles fused with a k-selection kernel, k ≤ 2048 on the GPU and beyond
//! by host selection; FP32, TF32 tensor cores with certified exact re-ranking, or FP16
//! storage — [`GpuFlatPrecision`]; range search and id selectors), IVF search
//! ([`GpuIndexIvfFlat`], [`GpuIndexIvfPq`] with 8- or 4-bit codes, [`GpuIndexIvfPqFastScan`],
//! [`GpuIndexIvfSq`]: coarse step on the GPU, lists interleaved by 32 rows and scanned by
//! one block per query — or, for IVF-Flat batches, per list ([`IvfScanOrder`]) — look-up
//! tables in shared memory, id selectors), k-means with the points and the
//! update step on the GPU ([`gpu_kmeans`], [`GpuAssigner`]), [`bf_knn`] without an index,
//! and moving indexes between CPU and GPUs ([`index_cpu_to_gpu`], [`index_gpu_to_cpu`],
//! [`index_cpu_to_gpu_multiple`] for shards, [`index_cpu_to_gpu_replicas`]).
//!
//! It sits beside `fathom-io` above `fathom-index`: every GPU index implements the same
//! [`fathom_index::Index`] trait, so wrappers (`IndexShards`, `IndexIdMap`) and the
//! autotuner work over them, and each has a CPU form — the index the persistence code
//! writes — so GPU indexes save and load through it.
//!
//! CUDA is loaded at run time (cudarc's dynamic loading): the crate builds without a CUDA
//! toolkit, and on a machine without a driver or device every entry point returns
//! [`fathom_core::Error::GpuUnavailable`] — never a panic. The kernels (kernels.cu) are
//! compiled by NVRTC for the device when [`GpuResources`] is created.
//!
//! ```
//! use fathom_gpu::{GpuIndexFlat, GpuResources, gpu_available};
//! use fathom_index::Index;
//! if gpu_available() {
//!     let res = GpuResources::new(0)?;
//!     let mut index = GpuIndexFlat::new(res, 4, fathom_core::MetricType::L2)?;
//!     index.add(&[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])?;
//!     assert_eq!(index.search(&[0.9, 0.9, 0.9, 0.9], 1)?.labels, vec![1]);
//! }
//! # Ok::<(), fathom_core::Error>(())
//! ```

mod convert;
mod flat;
mod ivf;
mod kernels;
mod kmeans;
mod knn;
mod range;
mod resources;

/// The CUDA bindings fathom-gpu is built on, for device arrays ([`bf_knn_device`]).
pub use cudarc;

pub use convert::{
    index_cpu_to_gpu, index_cpu_to_gpu_multiple, index_cpu_to_gpu_replicas, index_gpu_to_cpu,
};
pub use flat::{GpuFlatPrecision, GpuIndexFlat};
pub use ivf::{GpuIndexIvfFlat, GpuIndexIvfPq, GpuIndexIvfPqFastScan, GpuIndexIvfSq, IvfScanOrder};
pub use kernels::kernels_ptx;
pub use kmeans::{GpuAssigner, gpu_kmeans};
pub use knn::{bf_knn, bf_knn_device};
pub use resources::{GpuResources, MAX_K, device_count, gpu_available};
