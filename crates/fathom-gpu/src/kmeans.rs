//! k-means with the assignment step on the GPU (Faiss's GPU clustering): fathom's
//! `Kmeans` runs its iterations on the CPU and asks a `GpuIndexFlat` over the centroids for
//! each point's nearest one — the O(n·k·d) part.

use std::sync::Arc;

use fathom_core::{Idx, MetricType, Result};
use fathom_index::ivf::IvfCodec;
use fathom_index::{Index, IndexIvf};
use fathom_linalg::{Assigner, ClusteringParameters, Kmeans};

use crate::flat::GpuIndexFlat;
use crate::resources::GpuResources;

/// A k-means assigner searching the centroids on the GPU.
pub struct GpuAssigner {
    index: GpuIndexFlat,
}

impl GpuAssigner {
    /// An assigner for `d`-dimensional points by `metric` (L2 or inner product).
    pub fn new(res: Arc<GpuResources>, d: usize, metric: MetricType) -> Result<Self> {
        Ok(GpuAssigner {
            index: GpuIndexFlat::new(res, d, metric)?,
        })
    }
}

impl Assigner for GpuAssigner {
    fn reset(&mut self) -> Result<()> {
        self.index.reset()
    }
    fn is_trained(&self) -> bool {
        true
    }
    fn train(&mut self, _centroids: &[f32]) -> Result<()> {
        Ok(())
    }
    fn add(&mut self, centroids: &[f32]) -> Result<()> {
        self.index.add(centroids)
    }
    fn assign(&self, x: &[f32]) -> Result<(Vec<f32>, Vec<Idx>)> {
        let r = self.index.search(x, 1)?;
        Ok((r.distances, r.labels))
    }
}

/// k-means of `x` (`n × d`) into `k` centroids with GPU assignment, Faiss's algorithm and
/// parameters otherwise (same seeds, same sampling as [`Kmeans`]).
///
/// ```no_run
/// let res = fathom_gpu::GpuResources::new(0)?;
/// let x = vec![0.5f32; 10_000 * 16];
/// let km = fathom_gpu::gpu_kmeans(res, &x, 16, 100, Default::default(), fathom_core::MetricType::L2)?;
/// assert_eq!(km.centroids().len(), 100 * 16);
/// # Ok::<(), fathom_core::Error>(())
/// ```
pub fn gpu_kmeans(
    res: Arc<GpuResources>,
    x: &[f32],
    d: usize,
    k: usize,
    params: ClusteringParameters,
    metric: MetricType,
) -> Result<Kmeans> {
    let mut km = Kmeans::new(d, k)?.with_params(params).with_metric(metric)?;
    let mut assigner = GpuAssigner::new(res, d, metric)?;
    km.train_with_assigner(x, &mut assigner, &mut |_| {})?;
    Ok(km)
}

/// Trains an IVF index with its coarse k-means on the GPU, then its codec as usual.
pub(crate) fn train_ivf_on_gpu<C: IvfCodec + 'static>(
    res: &Arc<GpuResources>,
    cpu: &mut IndexIvf<C>,
    x: &[f32],
) -> Result<()> {
    let nlist = cpu.nlist();
    if cpu.quantizer().ntotal() != nlist {
        let d = cpu.dim();
        fathom_core::check::nonempty_finite("training set", x, d)?;
        let km = gpu_kmeans(res.clone(), x, d, nlist, cpu.cp.clone(), cpu.metric())?;
        let q = cpu.quantizer_mut();
        q.reset()?;
        q.add(km.centroids())?;
    }
    // The quantizer holds nlist centroids, so this trains the codec only.
    cpu.train(x)
}
