//! `GpuResources`: one device, its stream, cuBLAS handle and compiled kernels, and the
//! budget of temporary memory a search may use.

use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use fathom_core::{Error, Idx, MetricType, Result, SearchResult};

use crate::kernels::Kernels;

/// Turns a CUDA error into fathom's.
pub(crate) fn gpu_err(what: &str) -> impl Fn(cudarc::driver::DriverError) -> Error + '_ {
    move |e| Error::GpuUnavailable(format!("{what}: {e}"))
}

/// Whether the CUDA driver library can be loaded and reports at least one device. Never
/// panics: cudarc panics when a library is missing, so presence is checked first.
pub fn gpu_available() -> bool {
    device_count() > 0
}

/// The number of CUDA devices (0 without a driver).
pub fn device_count() -> usize {
    if !libraries_present() {
        return 0;
    }
    CudaContext::device_count().map_or(0, |n| n.max(0) as usize)
}

/// Whether NVRTC (the run-time CUDA compiler) can be loaded.
pub(crate) fn nvrtc_present() -> bool {
    // SAFETY: this only tries to dlopen the library and reports whether that worked.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Which of the libraries fathom-gpu loads are missing, and what to do.
fn missing_libraries() -> String {
    // SAFETY: these only try to dlopen the libraries and report whether that worked.
    let present = unsafe {
        [
            (
                "the CUDA driver (libcuda.so)",
                cudarc::driver::sys::is_culib_present(),
            ),
            (
                "cuBLAS (libcublas.so)",
                cudarc::cublas::sys::is_culib_present(),
            ),
            (
                "NVRTC (libnvrtc.so)",
                cudarc::nvrtc::sys::is_culib_present(),
            ),
        ]
    };
    let missing: Vec<&str> = present
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| *name)
        .collect();
    format!(
        "{} could not be loaded: no NVIDIA driver or CUDA runtime on this machine, or one \
         whose versions fathom-gpu does not look for — it opens libNAME.so, libNAME.so.12 \
         (CUDA 12) or older; CUDA 13's libNAME.so.13 can be linked as libNAME.so into a \
         folder on LD_LIBRARY_PATH (crates/fathom-gpu/bench/run.sh does)",
        missing.join(", ")
    )
}

fn libraries_present() -> bool {
    // SAFETY: these only try to dlopen the libraries and report whether that worked.
    unsafe {
        cudarc::driver::sys::is_culib_present()
            && cudarc::cublas::sys::is_culib_present()
            && cudarc::nvrtc::sys::is_culib_present()
    }
}

/// A GPU and what fathom needs on it (Faiss's `StandardGpuResources`): a context, one
/// stream, a cuBLAS handle, the kernels compiled for the device, and how much temporary
/// memory a search may allocate (distance tiles). Searches on one `GpuResources` run one at
/// a time, in submission order.
///
/// ```
/// match fathom_gpu::GpuResources::new(0) {
///     Ok(res) => println!("using {}", res.device_name()),
///     Err(e) => println!("no GPU: {e}"), // GpuUnavailable on machines without CUDA
/// }
/// ```
pub struct GpuResources {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) blas: CudaBlas,
    pub(crate) kernels: Kernels,
    /// The one-byte allow mask of searches without an id selector (never read).
    no_mask: Arc<CudaSlice<u8>>,
    temp_bytes: usize,
    lock: Mutex<()>,
    name: String,
}

impl std::fmt::Debug for GpuResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuResources({})", self.name)
    }
}

impl GpuResources {
    /// Device `device` with 1 GiB of temporary memory for searches.
    pub fn new(device: usize) -> Result<Arc<Self>> {
        Self::with_temp_memory(device, 1 << 30)
    }

    /// Device `device`, searches using at most `temp_bytes` of temporary memory (at least
    /// 16 MiB).
    pub fn with_temp_memory(device: usize, temp_bytes: usize) -> Result<Arc<Self>> {
        if !libraries_present() {
            return Err(Error::GpuUnavailable(missing_libraries()));
        }
        let count = device_count();
        if device >= count {
            return Err(Error::GpuUnavailable(format!(
                "device {device} does not exist ({count} CUDA devices)"
            )));
        }
        let ctx = CudaContext::new(device).map_err(gpu_err("creating the CUDA context"))?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| Error::GpuUnavailable(format!("creating the cuBLAS handle: {e}")))?;
        let kernels = Kernels::compile(&ctx)?;
        let no_mask = Arc::new(stream.alloc_zeros::<u8>(1).map_err(gpu_err("allocating"))?);
        let name = ctx
            .name()
            .unwrap_or_else(|_| format!("CUDA device {device}"));
        Ok(Arc::new(GpuResources {
            ctx,
            stream,
            blas,
            kernels,
            no_mask,
            temp_bytes: temp_bytes.max(16 << 20),
            lock: Mutex::new(()),
            name,
        }))
    }

    /// The device's name.
    pub fn device_name(&self) -> &str {
        &self.name
    }

    /// Free and total device memory, in bytes.
    pub fn memory_info(&self) -> Result<(usize, usize)> {
        self.ctx
            .mem_get_info()
            .map_err(gpu_err("reading the memory size"))
    }

    /// The stream every operation on this device runs on, for arrays a caller allocates
    /// ([`crate::bf_knn_device`]).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The temporary-memory budget of a search, in bytes.
    pub fn temp_memory(&self) -> usize {
        self.temp_bytes
    }

    /// Serialises work on the stream (one search at a time).
    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Copies `host` to a new device buffer.
    pub(crate) fn upload<T: cudarc::driver::DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        if host.is_empty() {
            // A zero-length allocation is not allowed; one element stands in.
            // SAFETY: the element is never read (lengths passed to kernels are 0).
            return unsafe { self.stream.alloc::<T>(1) }.map_err(gpu_err("allocating"));
        }
        self.stream
            .clone_htod(host)
            .map_err(gpu_err("copying to the GPU"))
    }

    /// The best-k buffers of `nq` queries, filled with (+∞, −1).
    pub(crate) fn new_best(&self, nq: usize, k: usize) -> Result<Best> {
        let n = (nq * k).max(1);
        let mut d = self
            .stream
            .alloc_zeros::<f32>(n)
            .map_err(gpu_err("allocating results"))?;
        let mut i = self
            .stream
            .alloc_zeros::<i64>(n)
            .map_err(gpu_err("allocating results"))?;
        let n64 = n as i64;
        let cfg = LaunchConfig::for_num_elems(n as u32);
        let mut b = self.stream.launch_builder(&self.kernels.init_best);
        b.arg(&mut d).arg(&mut i).arg(&n64);
        // SAFETY: init_best(float*, long long*, long long) writes n entries of both
        // buffers, which hold n elements.
        unsafe { b.launch(cfg) }.map_err(gpu_err("init_best"))?;
        Ok(Best { d, i, nq, k })
    }
}

/// Per-query best keys and ids on the device, `nq × k`, sorted ascending.
pub(crate) struct Best {
    pub d: CudaSlice<f32>,
    pub i: CudaSlice<i64>,
    nq: usize,
    pub k: usize,
}

impl Best {
    /// Downloads the result; keys become distances (inner products are negated back).
    pub fn finish(self, res: &GpuResources, metric: MetricType) -> Result<SearchResult> {
        let mut distances = res
            .stream
            .clone_dtoh(&self.d)
            .map_err(gpu_err("copying results"))?;
        let mut labels: Vec<Idx> = res
            .stream
            .clone_dtoh(&self.i)
            .map_err(gpu_err("copying results"))?;
        distances.truncate(self.nq * self.k);
        labels.truncate(self.nq * self.k);
        if metric == MetricType::InnerProduct {
            distances.iter_mut().for_each(|d| *d = -*d);
        }
        Ok(SearchResult {
            nq: self.nq,
            k: self.k,
            distances,
            labels,
        })
    }
}

/// The power of two ≥ k (and ≥ the block size) the selection kernels work with.
pub(crate) fn kpow(k: usize) -> usize {
    k.next_power_of_two().max(crate::kernels::BLOCK as usize)
}

/// Shared memory of the selection state for `kpow` (see kernels.cu, `topk_layout`).
pub(crate) fn topk_smem(kpow: usize) -> usize {
    36 * kpow + 16
}

/// Faiss's GPU limit on k (and nprobe).
pub const MAX_K: usize = 2048;

pub(crate) fn check_k(k: usize) -> Result<()> {
    fathom_core::check::k(k)?;
    if k > MAX_K {
        return Err(Error::invalid(format!(
            "GPU search supports k ≤ {MAX_K} (as Faiss's GPU indexes), got k = {k}"
        )));
    }
    Ok(())
}

/// The vectors a search may return, for the kernels' `allow` / `filtered` arguments:
/// `mask[i] != 0` when `on` is 1 (a one-byte stand-in, never read, otherwise).
pub(crate) struct Allow {
    pub mask: Arc<CudaSlice<u8>>,
    pub on: i32,
}

impl Allow {
    /// Every vector, or those of `ids` (a flat index's positions, an IVF index's rows on
    /// the device; −1 is padding) that `selector` keeps — evaluated here, on the host.
    pub fn of(
        res: &GpuResources,
        selector: Option<&dyn fathom_core::IdSelector>,
        ids: impl Iterator<Item = Idx>,
    ) -> Result<Allow> {
        match selector {
            // Every search takes this path: the stand-in is made once per device.
            None => Ok(Allow {
                mask: res.no_mask.clone(),
                on: 0,
            }),
            Some(sel) => {
                let mask: Vec<u8> = ids
                    .map(|id| u8::from(id >= 0 && sel.is_member(id)))
                    .collect();
                Ok(Allow {
                    mask: Arc::new(res.upload(&mask)?),
                    on: 1,
                })
            }
        }
    }
}
