//! The CUDA kernels (kernels.cu), compiled by NVRTC for the device at start-up.

use std::sync::{Arc, Mutex};

use cudarc::driver::sys::CUfunction_attribute_enum;
use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::CompileOptions;
use fathom_core::{Error, Result};

/// Threads per block of the selection and scan kernels.
pub(crate) const BLOCK: u32 = 128;

/// Room left for the kernels' static shared memory under the device's limit.
const STATIC_SMEM_MARGIN: usize = 1024;

const SOURCE: &str = include_str!("kernels.cu");

/// NVRTC's translation of kernels.cu for compute capability `major.minor`.
/// Compiled once per process and compute capability: every `GpuResources` of a device
/// loads the same PTX (NVRTC takes a second or two).
fn compile_ptx(major: u32, minor: u32) -> Result<cudarc::nvrtc::Ptx> {
    static COMPILED: Mutex<Vec<((u32, u32), String)>> = Mutex::new(Vec::new());
    let mut compiled = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, src)) = compiled.iter().find(|(cc, _)| *cc == (major, minor)) {
        return Ok(cudarc::nvrtc::Ptx::from_src(src.clone()));
    }
    // NVRTC takes the architecture as a 'static string (one leak per capability).
    let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
    let opts = CompileOptions {
        arch: Some(arch),
        use_fast_math: Some(false),
        ..Default::default()
    };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts)
        .map_err(|e| Error::GpuUnavailable(format!("compiling the kernels with NVRTC: {e}")))?;
    compiled.push(((major, minor), ptx.to_src()));
    Ok(ptx)
}

/// fathom's kernels compiled to PTX for compute capability `major.minor` (8.0 for the A100,
/// 9.0 for the H100), by NVRTC alone: no driver or device is needed, so a machine with only
/// the NVRTC library can check that the kernels compile. `GpuUnavailable` when NVRTC
/// cannot be loaded or rejects the source (the message holds its log).
///
/// ```
/// match fathom_gpu::kernels_ptx(9, 0) {
///     Ok(ptx) => assert!(ptx.contains(".entry select_tile")),
///     Err(e) => println!("no NVRTC here: {e}"),
/// }
/// ```
pub fn kernels_ptx(major: u32, minor: u32) -> Result<String> {
    if !crate::resources::nvrtc_present() {
        return Err(Error::GpuUnavailable(
            "the NVRTC library (libnvrtc.so or libnvrtc.so.12) could not be loaded".into(),
        ));
    }
    Ok(compile_ptx(major, minor)?.to_src())
}

/// The loaded kernels.
pub(crate) struct Kernels {
    pub init_best: CudaFunction,
    pub l2_norms: CudaFunction,
    pub select_tile: CudaFunction,
    pub ivf_flat_scan: CudaFunction,
    pub ivf_pq_scan: CudaFunction,
    pub l2_norms_f16: CudaFunction,
    pub rerank: CudaFunction,
    pub rerank_f16: CudaFunction,
    pub argmin_tile: CudaFunction,
    pub centroid_means: CudaFunction,
    pub range_tile: CudaFunction,
    pub ivf_sq8_scan: CudaFunction,
    pub ivf_flat_list_major: CudaFunction,
    pub ivf_select_segments: CudaFunction,
    pub ivf_flat_range: CudaFunction,
    /// The most dynamic shared memory a block may have on this device.
    pub max_smem: usize,
}

impl Kernels {
    pub fn compile(ctx: &Arc<CudaContext>) -> Result<Self> {
        let unavailable =
            |what: &str, e: &dyn std::fmt::Display| Error::GpuUnavailable(format!("{what}: {e}"));
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| unavailable("reading the compute capability", &e))?;
        let ptx = compile_ptx(major as u32, minor as u32)?;
        let module = ctx
            .load_module(ptx)
            .map_err(|e| unavailable("loading the kernels", &e))?;
        let f = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| unavailable(&format!("loading kernel {name}"), &e))
        };
        let max_smem = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )
            .map_err(|e| unavailable("reading the shared memory size", &e))?
            .max(48 * 1024) as usize
            // Static shared memory (a few bytes in ivf_pq_scan) counts against the same
            // limit as the dynamic part.
            - STATIC_SMEM_MARGIN;
        let kernels = Kernels {
            init_best: f("init_best")?,
            l2_norms: f("l2_norms")?,
            select_tile: f("select_tile")?,
            ivf_flat_scan: f("ivf_flat_scan")?,
            ivf_pq_scan: f("ivf_pq_scan")?,
            l2_norms_f16: f("l2_norms_f16")?,
            rerank: f("rerank")?,
            rerank_f16: f("rerank_f16")?,
            argmin_tile: f("argmin_tile")?,
            centroid_means: f("centroid_means")?,
            range_tile: f("range_tile")?,
            ivf_sq8_scan: f("ivf_sq8_scan")?,
            ivf_flat_list_major: f("ivf_flat_list_major")?,
            ivf_select_segments: f("ivf_select_segments")?,
            ivf_flat_range: f("ivf_flat_range")?,
            max_smem,
        };
        // Opt in to more than the default 48 KiB of dynamic shared memory (large k, PQ
        // look-up tables).
        for func in [
            &kernels.select_tile,
            &kernels.ivf_flat_scan,
            &kernels.ivf_pq_scan,
            &kernels.ivf_sq8_scan,
            &kernels.ivf_flat_list_major,
            &kernels.ivf_select_segments,
            &kernels.ivf_flat_range,
            &kernels.rerank,
            &kernels.rerank_f16,
        ] {
            func.set_attribute(
                CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                max_smem as i32,
            )
            .map_err(|e| unavailable("raising the shared memory limit", &e))?;
        }
        Ok(kernels)
    }

    /// Checks that a launch's shared memory fits the device.
    pub fn check_smem(&self, bytes: usize, what: &str) -> Result<()> {
        if bytes > self.max_smem {
            return Err(Error::Unsupported(format!(
                "{what} needs {bytes} bytes of shared memory per block; this GPU has {} \
                 (use a smaller k, nprobe or PQ M)",
                self.max_smem
            )));
        }
        Ok(())
    }
}
