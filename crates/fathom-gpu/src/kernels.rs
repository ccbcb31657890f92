//! The CUDA kernels (kernels.cu), compiled by NVRTC for the device at start-up.

use std::sync::Arc;

use cudarc::driver::sys::CUfunction_attribute_enum;
use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::CompileOptions;
use fathom_core::{Error, Result};

/// Threads per block of the selection and scan kernels.
pub(crate) const BLOCK: u32 = 128;

/// Room left for the kernels' static shared memory under the device's limit.
const STATIC_SMEM_MARGIN: usize = 1024;

const SOURCE: &str = include_str!("kernels.cu");

/// The loaded kernels.
pub(crate) struct Kernels {
    pub init_best: CudaFunction,
    pub l2_norms: CudaFunction,
    pub select_tile: CudaFunction,
    pub ivf_flat_scan: CudaFunction,
    pub ivf_pq_scan: CudaFunction,
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
        // NVRTC takes the architecture as a 'static string.
        let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
        let opts = CompileOptions {
            arch: Some(arch),
            use_fast_math: Some(false),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts)
            .map_err(|e| unavailable("compiling the kernels with NVRTC", &e))?;
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
            max_smem,
        };
        // Opt in to more than the default 48 KiB of dynamic shared memory (large k, PQ
        // look-up tables).
        for func in [
            &kernels.select_tile,
            &kernels.ivf_flat_scan,
            &kernels.ivf_pq_scan,
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
