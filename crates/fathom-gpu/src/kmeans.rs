//! k-means on the GPU (Faiss's GPU clustering, with the update step moved to the GPU as
//! well): fathom's `Kmeans` runs the iterations — same sampling, seeds, empty-cluster
//! splits and stopping as on the CPU — and hands the heavy parts to a [`GpuAssigner`]: the
//! points are copied to the GPU once per training run; each iteration assigns them to
//! their nearest centroid (matrix products fused with an arg-min) and averages each
//! cluster there, summing its points in the CPU's order, so the centroids equal the
//! CPU's for the same assignment.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use fathom_core::{Error, Idx, MetricType, Result, check};
use fathom_index::ivf::IvfCodec;
use fathom_index::{Index, IndexIvf};
use fathom_linalg::{Assigner, ClusterMembers, ClusteringParameters, Kmeans};

use crate::flat::GpuIndexFlat;
use crate::kernels::BLOCK;
use crate::resources::{GpuResources, gpu_err};

/// A k-means assigner on the GPU: a [`GpuIndexFlat`] over the centroids, and the training
/// points kept in device memory between iterations ([`Assigner::set_points`]).
pub struct GpuAssigner {
    index: GpuIndexFlat,
    /// The points of the current training run, and how many floats they are.
    points: Option<(CudaSlice<f32>, usize)>,
}

impl GpuAssigner {
    /// An assigner for `d`-dimensional points by `metric` (L2 or inner product).
    pub fn new(res: Arc<GpuResources>, d: usize, metric: MetricType) -> Result<Self> {
        Ok(GpuAssigner {
            index: GpuIndexFlat::new(res, d, metric)?,
            points: None,
        })
    }

    /// The device copy of the points given to `set_points`, which `x` must be.
    fn points_of(&self, x: &[f32]) -> Result<&CudaSlice<f32>> {
        match &self.points {
            Some((p, len)) if *len == x.len() => Ok(p),
            _ => Err(Error::invalid(format!(
                "GpuAssigner: {} floats given, but set_points was given {}; pass the same \
                 points",
                x.len(),
                self.points.as_ref().map_or(0, |p| p.1)
            ))),
        }
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
    fn set_points(&mut self, x: &[f32]) -> Result<()> {
        let d = self.index.dim();
        check::vectors("points", x, d)?;
        check::finite("points", x, d)?;
        let res = self.index.resources().clone();
        let _g = res.lock();
        self.points = None;
        self.points = Some((res.upload(x)?, x.len()));
        Ok(())
    }
    fn assign_points(&self, x: &[f32]) -> Result<(Vec<f32>, Vec<Idx>)> {
        let points = self.points_of(x)?;
        let _g = self.index.resources().lock();
        let r = self
            .index
            .search_device(points, x.len() / self.index.dim(), 1)?;
        Ok((r.distances, r.labels))
    }
    fn cluster_means(
        &self,
        x: &[f32],
        members: &ClusterMembers,
        k_frozen: usize,
        centroids: &mut [f32],
    ) -> Option<Result<()>> {
        Some(self.means_on_gpu(x, members, k_frozen, centroids))
    }
}

impl GpuAssigner {
    fn means_on_gpu(
        &self,
        x: &[f32],
        members: &ClusterMembers,
        k_frozen: usize,
        centroids: &mut [f32],
    ) -> Result<()> {
        let points = self.points_of(x)?;
        let d = self.index.dim();
        let k = members.start.len() - 1;
        if k_frozen >= k {
            return Ok(());
        }
        let res = self.index.resources();
        let _g = res.lock();
        let order: Vec<i64> = members.order.iter().map(|&i| i as i64).collect();
        let start: Vec<i64> = members.start[k_frozen..]
            .iter()
            .map(|&i| i as i64)
            .collect();
        let (order, start) = (res.upload(&order)?, res.upload(&start)?);
        let stream = &res.stream;
        let nc = k - k_frozen;
        let mut out = stream
            .alloc_zeros::<f32>(nc * d)
            .map_err(gpu_err("allocating centroids"))?;
        let d32 = d as i32;
        let mut b = stream.launch_builder(&res.kernels.centroid_means);
        b.arg(points)
            .arg(&d32)
            .arg(&order)
            .arg(&start)
            .arg(&mut out);
        let cfg = LaunchConfig {
            grid_dim: (nc as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: centroid_means(x, dim, order, start, centroids): x holds the n × d points,
        // order n indices < n, start nc + 1 offsets into order (ascending, the last = the
        // end of cluster k − 1's points), centroids nc × d floats; one block per cluster.
        unsafe { b.launch(cfg) }.map_err(gpu_err("centroid_means"))?;
        let means = stream
            .clone_dtoh(&out)
            .map_err(gpu_err("copying centroids"))?;
        centroids[k_frozen * d..].copy_from_slice(&means);
        Ok(())
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
