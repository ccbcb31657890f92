//! k-means with Faiss's semantics (`faiss::Clustering` / Python's `faiss.Kmeans`).

use std::time::Instant;

use fathom_core::{Error, Idx, MetricType, Result, check};
use rayon::prelude::*;

use crate::rng::{FaissRng, rand_perm};
use crate::sample::subsample;

/// Faiss's `ClusteringParameters`, with Faiss's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusteringParameters {
    /// Iterations per run (25).
    pub niter: usize,
    /// Runs from different initialisations; the best objective is kept (1).
    pub nredo: usize,
    /// Normalise centroids to unit L2 norm after each iteration (for inner product).
    pub spherical: bool,
    /// Round centroid coordinates to integers.
    pub int_centroids: bool,
    /// Keep the centroids given with [`Kmeans::set_initial_centroids`] fixed.
    pub frozen_centroids: bool,
    /// Re-train the assignment index on the centroids at every iteration (for assigners
    /// that need training, e.g. a compressed or graph index; see [`Assigner`]).
    pub update_index: bool,
    /// Below this many points per centroid training still runs, with a warning (39).
    pub min_points_per_centroid: usize,
    /// Above this many points per centroid the training set is subsampled (256).
    pub max_points_per_centroid: usize,
    /// Seed for subsampling and initialisation (1234).
    pub seed: i64,
    /// Stop when the objective changes by at most this fraction between iterations (0:
    /// only when it does not change at all).
    pub early_stop_threshold: f64,
}

impl Default for ClusteringParameters {
    fn default() -> Self {
        ClusteringParameters {
            niter: 25,
            nredo: 1,
            spherical: false,
            int_centroids: false,
            frozen_centroids: false,
            update_index: false,
            min_points_per_centroid: 39,
            max_points_per_centroid: 256,
            seed: 1234,
            early_stop_threshold: 0.0,
        }
    }
}

/// How k-means assigns points to centroids: Faiss's `Clustering::train(x, index)` takes
/// any index for this. The default ([`Kmeans::train`]) is exact search; an approximate
/// assigner (an HNSW index over the centroids, for IVF with millions of lists) plugs in
/// through [`Kmeans::train_with_assigner`]. `fathom_index::IndexAssigner` makes any
/// `Index` an assigner.
pub trait Assigner {
    /// Forgets the centroids (training is kept).
    fn reset(&mut self) -> Result<()>;
    /// Whether the assigner can take centroids without training.
    fn is_trained(&self) -> bool;
    /// Trains on the centroids (`k × d`); called before the first `add` when untrained, and
    /// at every iteration with `update_index`.
    fn train(&mut self, centroids: &[f32]) -> Result<()>;
    /// Takes the centroids (`k × d`); centroid `i` has id `i`.
    fn add(&mut self, centroids: &[f32]) -> Result<()>;
    /// The nearest centroid of each point and the distance (or similarity) to it.
    fn assign(&self, x: &[f32]) -> Result<(Vec<f32>, Vec<Idx>)>;
    /// Called once per training run, before the first iteration, with the points that
    /// every iteration assigns (the training set after sampling). An assigner that computes
    /// elsewhere (a GPU) copies them there once; the default keeps nothing.
    fn set_points(&mut self, x: &[f32]) -> Result<()> {
        let _ = x;
        Ok(())
    }
    /// [`Assigner::assign`] of the points given to [`Assigner::set_points`]; `x` is that
    /// same slice.
    fn assign_points(&self, x: &[f32]) -> Result<(Vec<f32>, Vec<Idx>)> {
        self.assign(x)
    }
    /// Writes the mean of each cluster's points (of those given to
    /// [`Assigner::set_points`], `x` being that slice) into `centroids[k_frozen..]` (rows
    /// of d), summing each cluster's points in `members`' order, when the assigner computes
    /// them where the points are; `None` leaves it to the caller (the CPU).
    fn cluster_means(
        &self,
        x: &[f32],
        members: &ClusterMembers,
        k_frozen: usize,
        centroids: &mut [f32],
    ) -> Option<Result<()>> {
        let _ = (x, members, k_frozen, centroids);
        None
    }
}

/// The points of each cluster after an assignment, in their original order (a stable
/// counting sort by cluster, as Faiss sums them): cluster `c`'s points are
/// `order[start[c]..start[c + 1]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMembers {
    /// Where each cluster's points begin in `order`; `k + 1` entries.
    pub start: Vec<usize>,
    /// Point indices, cluster by cluster.
    pub order: Vec<usize>,
}

impl ClusterMembers {
    /// Groups the points by `assign` (each point's cluster, `< k`).
    ///
    /// ```
    /// let m = fathom_linalg::ClusterMembers::new(&[1, 0, 1, 1], 3);
    /// assert_eq!(m.start, vec![0, 1, 4, 4]);
    /// assert_eq!(m.order, vec![1, 0, 2, 3]);
    /// ```
    pub fn new(assign: &[usize], k: usize) -> Self {
        let mut start = vec![0usize; k + 1];
        for &a in assign {
            start[a + 1] += 1;
        }
        for c in 0..k {
            start[c + 1] += start[c];
        }
        let mut order = vec![0usize; assign.len()];
        let mut fill = start.clone();
        for (i, &a) in assign.iter().enumerate() {
            order[fill[a]] = i;
            fill[a] += 1;
        }
        ClusterMembers { start, order }
    }

    /// The points of cluster `c`.
    pub fn of(&self, c: usize) -> &[usize] {
        &self.order[self.start[c]..self.start[c + 1]]
    }

    /// How many points each cluster has, as floats (Faiss's hassign).
    pub fn sizes(&self) -> Vec<f32> {
        self.start
            .windows(2)
            .map(|w| (w[1] - w[0]) as f32)
            .collect()
    }
}

/// Exact assignment through fathom's exhaustive search.
struct ExactAssigner {
    d: usize,
    metric: MetricType,
    centroids: Vec<f32>,
}

impl Assigner for ExactAssigner {
    fn reset(&mut self) -> Result<()> {
        self.centroids.clear();
        Ok(())
    }
    fn is_trained(&self) -> bool {
        true
    }
    fn train(&mut self, _centroids: &[f32]) -> Result<()> {
        Ok(())
    }
    fn add(&mut self, centroids: &[f32]) -> Result<()> {
        self.centroids.extend_from_slice(centroids);
        Ok(())
    }
    fn assign(&self, x: &[f32]) -> Result<(Vec<f32>, Vec<Idx>)> {
        let r = fathom_kernels::knn(self.metric, x, &self.centroids, self.d, 1, None)?;
        Ok((r.distances, r.labels))
    }
}

/// What one iteration measured (Faiss's `ClusteringIterationStats`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IterationStats {
    /// Sum of the distances (L2) or similarities (inner product) of the points to their
    /// assigned centroid, before this iteration's update.
    pub obj: f64,
    /// Seconds since the start of training.
    pub time_s: f64,
    /// Seconds spent assigning points in this iteration.
    pub time_search_s: f64,
    /// `k · Σ size² / n²`: 1 when the clusters are balanced.
    pub imbalance_factor: f64,
    /// Empty clusters re-seeded by splitting a large one.
    pub nsplit: usize,
}

/// Progress reported during training.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum KmeansEvent {
    /// The training set was larger than `k · max_points_per_centroid` and a seeded random
    /// sample of that size is used instead.
    Subsampled {
        /// Points given.
        from: usize,
        /// Points used.
        to: usize,
    },
    /// Fewer than `k · min_points_per_centroid` points: training goes on, but the
    /// centroids will be poor.
    TooFewPoints {
        /// Points given.
        n: usize,
        /// The recommended minimum.
        recommended: usize,
    },
    /// An iteration finished.
    Iteration {
        /// Run number (0-based).
        redo: usize,
        /// Iteration number within the run (0-based).
        iteration: usize,
        /// Its statistics.
        stats: IterationStats,
    },
}

/// k-means clustering, as `faiss.Kmeans(d, k)`.
///
/// Training follows Faiss step by step — subsampling to `k · max_points_per_centroid`
/// points with Faiss's `rand_perm(seed)`, initial centroids drawn with
/// `rand_perm(seed + 1 + redo · 15486557)`, assignment by exact search, centroids as the
/// means of their points, empty clusters split from a donor drawn with probability
/// proportional to its size, spherical and integer post-processing — using the same random
/// generator, so a given seed makes the same choices as Faiss. Assignment runs through
/// fathom's exhaustive search (a GEMM per tile, in parallel).
///
/// `metric` may be L2 (the default) or inner product (usually with `spherical`).
#[derive(Debug, Clone)]
pub struct Kmeans {
    d: usize,
    k: usize,
    metric: MetricType,
    /// Parameters; change them before `train`.
    pub params: ClusteringParameters,
    centroids: Vec<f32>,
    n_input_centroids: usize,
    stats: Vec<IterationStats>,
}

impl Kmeans {
    /// k-means with `k` centroids of dimension `d` and default parameters.
    pub fn new(d: usize, k: usize) -> Result<Self> {
        if d == 0 || k == 0 {
            return Err(Error::invalid(format!(
                "k-means needs d >= 1 and k >= 1, got d = {d}, k = {k}"
            )));
        }
        Ok(Kmeans {
            d,
            k,
            metric: MetricType::L2,
            params: ClusteringParameters::default(),
            centroids: Vec::new(),
            n_input_centroids: 0,
            stats: Vec::new(),
        })
    }

    /// Clusters by inner product (`MetricType::InnerProduct`) or L2 (the default).
    pub fn with_metric(mut self, metric: MetricType) -> Result<Self> {
        if !matches!(metric, MetricType::L2 | MetricType::InnerProduct) {
            return Err(Error::invalid(format!(
                "k-means clusters by l2 or ip, not {metric}"
            )));
        }
        self.metric = metric;
        Ok(self)
    }

    /// Replaces the parameters.
    pub fn with_params(mut self, params: ClusteringParameters) -> Self {
        self.params = params;
        self
    }

    /// Gives the first `c.len() / d` centroids instead of drawing them (and, with
    /// `frozen_centroids`, keeps them fixed), as Faiss's pre-set `centroids`.
    pub fn set_initial_centroids(&mut self, c: &[f32]) -> Result<()> {
        let n = check::vectors("initial centroids", c, self.d)?;
        check::finite("initial centroids", c, self.d)?;
        if n > self.k {
            return Err(Error::invalid(format!(
                "{n} initial centroids given for k = {}",
                self.k
            )));
        }
        self.centroids = c.to_vec();
        self.n_input_centroids = n;
        Ok(())
    }

    /// Dimension.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Number of centroids.
    pub fn k(&self) -> usize {
        self.k
    }

    /// How points are compared with centroids (L2, or inner product for spherical
    /// k-means).
    pub fn metric(&self) -> MetricType {
        self.metric
    }

    /// The centroids, `k × d` row-major (empty before training).
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    /// Statistics of every iteration of every run (Python's `kmeans.iteration_stats`).
    pub fn iteration_stats(&self) -> &[IterationStats] {
        &self.stats
    }

    /// The objective of every iteration of every run (Python's `kmeans.obj`).
    pub fn obj(&self) -> Vec<f64> {
        self.stats.iter().map(|s| s.obj).collect()
    }

    /// The nearest centroid of each row of `x` and the distance (or similarity) to it, as
    /// `kmeans.index.search(x, 1)` in Faiss.
    pub fn assign(&self, x: &[f32]) -> Result<(Vec<f32>, Vec<Idx>)> {
        if self.centroids.len() != self.k * self.d {
            return Err(Error::NotTrained("assign".into()));
        }
        check::vectors("points", x, self.d)?;
        check::finite("points", x, self.d)?;
        let r = fathom_kernels::knn(self.metric, x, &self.centroids, self.d, 1, None)?;
        Ok((r.distances, r.labels))
    }

    /// Trains on `x` (n × d, n ≥ k).
    pub fn train(&mut self, x: &[f32]) -> Result<()> {
        self.train_with_progress(x, &mut |_| {})
    }

    /// Trains on `x`, reporting subsampling, warnings and each iteration to `progress`.
    pub fn train_with_progress(
        &mut self,
        x: &[f32],
        progress: &mut dyn FnMut(&KmeansEvent),
    ) -> Result<()> {
        let mut exact = ExactAssigner {
            d: self.d,
            metric: self.metric,
            centroids: Vec::new(),
        };
        self.train_with_assigner(x, &mut exact, progress)
    }

    /// Trains on `x`, assigning points through `assigner` (Faiss's
    /// `Clustering::train(n, x, index)`): it is reset and given the centroids at every
    /// iteration, trained on them first if it needs training and at every iteration with
    /// `update_index`. The assigner should compare with this k-means' metric.
    pub fn train_with_assigner(
        &mut self,
        x: &[f32],
        assigner: &mut dyn Assigner,
        progress: &mut dyn FnMut(&KmeansEvent),
    ) -> Result<()> {
        let (d, k) = (self.d, self.k);
        let n = check::nonempty_finite("training set", x, d)?;
        if n < k {
            return Err(Error::invalid(format!(
                "k-means needs at least as many training points as centroids: got n = {n} \
                 points for k = {k} centroids"
            )));
        }
        let p = self.params.clone();
        if p.niter == 0 || p.nredo == 0 {
            return Err(Error::invalid("niter and nredo must be at least 1"));
        }
        let t0 = Instant::now();
        let sampled;
        let mut x = x;
        let max_n = k.saturating_mul(p.max_points_per_centroid);
        if p.max_points_per_centroid > 0 && n > max_n {
            sampled = subsample(x, d, max_n, p.seed).unwrap_or_default();
            x = &sampled;
            progress(&KmeansEvent::Subsampled { from: n, to: max_n });
        } else if n < k.saturating_mul(p.min_points_per_centroid) {
            progress(&KmeansEvent::TooFewPoints {
                n,
                recommended: k * p.min_points_per_centroid,
            });
        }
        let n = x.len() / d;
        let n_input = self.n_input_centroids;
        let input = self.centroids[..n_input * d].to_vec();
        let k_frozen = if p.frozen_centroids { n_input } else { 0 };
        self.stats.clear();

        if n == k {
            // Faiss: the points are the centroids; one fake iteration.
            self.centroids = x.to_vec();
            self.stats.push(IterationStats {
                obj: 0.0,
                time_s: t0.elapsed().as_secs_f64(),
                time_search_s: 0.0,
                imbalance_factor: 1.0,
                nsplit: 0,
            });
            return Ok(());
        }

        let better = |a: f64, b: f64| {
            if self.metric.is_similarity() {
                a > b
            } else {
                a < b
            }
        };
        let mut best: Option<(f64, Vec<f32>)> = None;
        for redo in 0..p.nredo {
            let perm = rand_perm(n, p.seed + 1 + redo as i64 * 15_486_557);
            let mut centroids = vec![0.0f32; k * d];
            centroids[..n_input * d].copy_from_slice(&input);
            for i in n_input..k {
                centroids[i * d..(i + 1) * d].copy_from_slice(&x[perm[i] * d..(perm[i] + 1) * d]);
            }
            post_process(&mut centroids[k_frozen * d..], d, &p)?;
            assigner.reset()?;
            if !assigner.is_trained() || p.update_index {
                assigner.train(&centroids)?;
            }
            assigner.add(&centroids)?;
            assigner.set_points(x)?;
            let mut prev_obj = None;
            let mut obj = 0.0;
            for iteration in 0..p.niter {
                let ts = Instant::now();
                let (dist, labels) = assigner.assign_points(x)?;
                let time_search_s = ts.elapsed().as_secs_f64();
                if labels.len() != n || dist.len() != n {
                    return Err(Error::invalid(format!(
                        "the assigner returned {} assignments for {n} points",
                        labels.len()
                    )));
                }
                obj = dist.iter().map(|&v| v as f64).sum();
                let mut assign = Vec::with_capacity(n);
                for &l in &labels {
                    if l < 0 || l as usize >= k {
                        return Err(Error::invalid(format!(
                            "the assigner returned centroid {l}; expected 0..{k}"
                        )));
                    }
                    assign.push(l as usize);
                }
                let members = ClusterMembers::new(&assign, k);
                match assigner.cluster_means(x, &members, k_frozen, &mut centroids) {
                    Some(done) => done?,
                    None => compute_centroids(x, d, &members, k_frozen, &mut centroids),
                }
                let sizes = members.sizes();
                let nsplit = split_clusters(d, k, n, k_frozen, &sizes, &mut centroids);
                let stats = IterationStats {
                    obj,
                    time_s: t0.elapsed().as_secs_f64(),
                    time_search_s,
                    imbalance_factor: imbalance_factor(n, k, &sizes),
                    nsplit,
                };
                self.stats.push(stats);
                progress(&KmeansEvent::Iteration {
                    redo,
                    iteration,
                    stats,
                });
                post_process(&mut centroids[k_frozen * d..], d, &p)?;
                assigner.reset()?;
                if p.update_index {
                    assigner.train(&centroids)?;
                }
                assigner.add(&centroids)?;
                if let Some(prev) = prev_obj {
                    let prev: f64 = prev;
                    if prev != 0.0 && ((prev - obj) / prev).abs() <= p.early_stop_threshold {
                        break;
                    }
                }
                prev_obj = Some(obj);
            }
            if best.as_ref().is_none_or(|(b, _)| better(obj, *b)) {
                best = Some((obj, centroids));
            }
        }
        self.centroids = best.map(|b| b.1).unwrap_or_default();
        Ok(())
    }
}

/// Centroids as the means of their points, each cluster's points summed in their original
/// order (as Faiss does), the clusters in parallel. Empty clusters get zeros (split later).
fn compute_centroids(
    x: &[f32],
    d: usize,
    members: &ClusterMembers,
    k_frozen: usize,
    centroids: &mut [f32],
) {
    centroids[k_frozen * d..]
        .par_chunks_mut(d)
        .enumerate()
        .for_each(|(j, c)| {
            let members = members.of(k_frozen + j);
            c.fill(0.0);
            if members.is_empty() {
                return;
            }
            for &i in members {
                for (cv, xv) in c.iter_mut().zip(&x[i * d..(i + 1) * d]) {
                    *cv += xv;
                }
            }
            let norm = 1.0 / members.len() as f32;
            c.iter_mut().for_each(|v| *v *= norm);
        });
}

/// Faiss's empty-cluster handling: each empty cluster copies a donor picked cyclically with
/// probability `(size − 1) / (n − k)` (falling back to the largest cluster after `10·k`
/// unsuccessful draws), and the two are pushed apart by a relative `±1/1024`. Returns how
/// many clusters were split.
fn split_clusters(
    d: usize,
    k: usize,
    n: usize,
    k_frozen: usize,
    sizes: &[f32],
    centroids: &mut [f32],
) -> usize {
    const EPS: f32 = 1.0 / 1024.0;
    let mut sizes: Vec<f32> = sizes[k_frozen..].to_vec();
    let centroids = &mut centroids[k_frozen * d..];
    let k = k - k_frozen;
    let mut rng = FaissRng::new(1234);
    let mut nsplit = 0;
    for ci in 0..k {
        if sizes[ci] != 0.0 {
            continue;
        }
        let mut cj = 0;
        let mut draws = 0;
        loop {
            let p = (sizes[cj] - 1.0) / (n - k) as f32;
            if rng.rand_float() < p {
                break;
            }
            draws += 1;
            if draws >= 10 * k {
                cj = (0..k)
                    .max_by(|&a, &b| sizes[a].total_cmp(&sizes[b]))
                    .unwrap_or(0);
                break;
            }
            cj = (cj + 1) % k;
        }
        let donor = centroids[cj * d..(cj + 1) * d].to_vec();
        for (j, &v) in donor.iter().enumerate() {
            let (new, old) = if j % 2 == 0 {
                (1.0 + EPS, 1.0 - EPS)
            } else {
                (1.0 - EPS, 1.0 + EPS)
            };
            centroids[ci * d + j] = v * new;
            centroids[cj * d + j] = v * old;
        }
        sizes[ci] = sizes[cj] / 2.0;
        sizes[cj] -= sizes[ci];
        nsplit += 1;
    }
    nsplit
}

fn post_process(c: &mut [f32], d: usize, p: &ClusteringParameters) -> Result<()> {
    if p.spherical {
        fathom_kernels::normalize_l2(c, d)?;
    }
    if p.int_centroids {
        c.iter_mut().for_each(|v| *v = v.round());
    }
    Ok(())
}

fn imbalance_factor(n: usize, k: usize, sizes: &[f32]) -> f64 {
    let s2: f64 = sizes.iter().map(|&s| (s as f64) * (s as f64)).sum();
    s2 * k as f64 / (n as f64 * n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fathom_kernels::distance::scalar;

    fn blobs(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        (0..n)
            .flat_map(|i| {
                let c = (i % 7) as f32 * 3.0;
                (0..d)
                    .map(|j| c + if j % 2 == 0 { 1.0 } else { -1.0 } + next())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Plain Lloyd iterations with the same initialisation, scalar distances, no tiling.
    fn reference(x: &[f32], d: usize, k: usize, niter: usize, seed: i64) -> Vec<f32> {
        let n = x.len() / d;
        let perm = rand_perm(n, seed + 1);
        let mut c: Vec<f32> = (0..k)
            .flat_map(|i| x[perm[i] * d..(perm[i] + 1) * d].to_vec())
            .collect();
        for _ in 0..niter {
            let mut sums = vec![0.0f32; k * d];
            let mut counts = vec![0usize; k];
            for p in x.chunks_exact(d) {
                let best = (0..k)
                    .min_by(|&a, &b| {
                        let da = scalar::l2_sqr(p, &c[a * d..(a + 1) * d]);
                        let db = scalar::l2_sqr(p, &c[b * d..(b + 1) * d]);
                        da.total_cmp(&db)
                    })
                    .unwrap();
                counts[best] += 1;
                for j in 0..d {
                    sums[best * d + j] += p[j];
                }
            }
            for ci in 0..k {
                assert!(counts[ci] > 0, "reference has no empty-cluster handling");
                for j in 0..d {
                    c[ci * d + j] = sums[ci * d + j] * (1.0 / counts[ci] as f32);
                }
            }
        }
        c
    }

    #[test]
    fn matches_slow_reference() {
        let (d, k) = (6, 7);
        let x = blobs(700, d, 3);
        let mut km = Kmeans::new(d, k).unwrap();
        km.params.niter = 8;
        km.train(&x).unwrap();
        let want = reference(&x, d, k, 8, 1234);
        for (g, w) in km.centroids().iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
        // Objective decreases (weakly) and assignment agrees with the centroids.
        let obj = km.obj();
        assert!(
            obj.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-6)),
            "{obj:?}"
        );
        let (dist, labels) = km.assign(&x[..d]).unwrap();
        let c = &km.centroids()[labels[0] as usize * d..][..d];
        assert!((dist[0] - scalar::l2_sqr(&x[..d], c)).abs() < 1e-3);
    }

    #[test]
    fn bad_input() {
        assert!(Kmeans::new(0, 3).is_err());
        assert!(Kmeans::new(3, 0).is_err());
        assert!(
            Kmeans::new(3, 2)
                .unwrap()
                .with_metric(MetricType::L1)
                .is_err()
        );
        let mut km = Kmeans::new(2, 5).unwrap();
        let e = km.train(&[0.0; 8]).unwrap_err().to_string();
        assert!(e.contains("n = 4") && e.contains("k = 5"), "{e}");
        assert!(
            km.train(&[1.0, f32::NAN, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0])
                .is_err()
        );
        assert!(km.train(&[1.0; 11]).is_err());
        assert!(km.train(&[]).is_err());
        assert!(matches!(km.assign(&[0.0, 0.0]), Err(Error::NotTrained(_))));
        assert!(km.set_initial_centroids(&[0.0; 12]).is_err());
        km.params.niter = 0;
        assert!(km.train(&[0.0; 10]).is_err());
    }

    #[test]
    fn events_and_special_cases() {
        let d = 4;
        let x = blobs(300, d, 5);
        // Too few points per centroid: a warning, training still runs.
        let mut events = Vec::new();
        let mut km = Kmeans::new(d, 10).unwrap();
        km.train_with_progress(&x, &mut |e| events.push(e.clone()))
            .unwrap();
        assert!(matches!(
            events[0],
            KmeansEvent::TooFewPoints {
                n: 300,
                recommended: 390
            }
        ));
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, KmeansEvent::Iteration { .. }))
                .count(),
            km.obj().len()
        );
        // Subsampling is announced.
        let mut km = Kmeans::new(d, 2).unwrap();
        km.params.max_points_per_centroid = 50;
        let mut events = Vec::new();
        km.train_with_progress(&x, &mut |e| events.push(e.clone()))
            .unwrap();
        assert_eq!(events[0], KmeansEvent::Subsampled { from: 300, to: 100 });
        // n == k: the points are the centroids.
        let mut km = Kmeans::new(d, 5).unwrap();
        km.train(&x[..5 * d]).unwrap();
        assert_eq!(km.centroids(), &x[..5 * d]);
    }

    #[test]
    fn empty_clusters_are_split_and_frozen_centroids_stay() {
        let d = 2;
        // Many duplicates: initial centroids coincide, so clusters go empty and are split.
        let mut x = vec![0.0f32; 200 * d];
        for i in 100..200 {
            x[i * d] = 5.0;
        }
        let mut km = Kmeans::new(d, 4).unwrap();
        km.params.niter = 5;
        km.train(&x).unwrap();
        assert!(km.iteration_stats().iter().any(|s| s.nsplit > 0));
        assert!(km.centroids().iter().all(|v| v.is_finite()));

        let frozen = [100.0f32, 100.0];
        let mut km = Kmeans::new(d, 3).unwrap();
        km.params.frozen_centroids = true;
        km.set_initial_centroids(&frozen).unwrap();
        km.train(&blobs(100, d, 9)).unwrap();
        assert_eq!(&km.centroids()[..2], &frozen);
    }

    #[test]
    fn redo_keeps_the_best_run() {
        let d = 3;
        let x = blobs(400, d, 11);
        let mut one = Kmeans::new(d, 5).unwrap();
        one.params.niter = 4;
        one.train(&x).unwrap();
        let mut many = Kmeans::new(d, 5).unwrap();
        many.params.niter = 4;
        many.params.nredo = 3;
        many.train(&x).unwrap();
        let last = |km: &Kmeans, run: usize| km.obj()[run * 4 + 3];
        let best = (0..3).map(|r| last(&many, r)).fold(f64::INFINITY, f64::min);
        assert_eq!(last(&many, 0), last(&one, 0));
        // The kept centroids are those of the best run: re-assigning gives its objective
        // after one more update, so it is at most the best recorded one.
        let (dist, _) = many.assign(&x).unwrap();
        let obj: f64 = dist.iter().map(|&v| v as f64).sum();
        assert!(obj <= best * (1.0 + 1e-5), "{obj} vs {best}");
    }

    #[test]
    fn spherical_centroids_have_unit_norm() {
        let d = 5;
        let x = blobs(300, d, 13);
        let mut km = Kmeans::new(d, 4)
            .unwrap()
            .with_metric(MetricType::InnerProduct)
            .unwrap();
        km.params.spherical = true;
        km.train(&x).unwrap();
        for c in km.centroids().chunks_exact(d) {
            assert!((scalar::inner_product(c, c) - 1.0).abs() < 1e-5);
        }
        km.params.int_centroids = true;
        km.params.spherical = false;
        km.train(&x).unwrap();
        assert!(km.centroids().iter().all(|v| v.fract() == 0.0));
    }
}
