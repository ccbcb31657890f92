//! The `VectorTransform` trait and the transforms that need no eigen-decomposition.

use fathom_core::{Error, Result, check};

/// A map from vectors of dimension `d_in` to vectors of dimension `d_out`, possibly
/// trained: Faiss's `VectorTransform`. `IndexPreTransform` chains them in front of an index.
pub trait VectorTransform: Send + Sync {
    /// Input dimension.
    fn d_in(&self) -> usize;
    /// Output dimension.
    fn d_out(&self) -> usize;
    /// Whether `apply` may be called.
    fn is_trained(&self) -> bool {
        true
    }
    /// Learns the transform from representative vectors (`n × d_in`).
    fn train(&mut self, x: &[f32]) -> Result<()> {
        check::nonempty_finite("training set", x, self.d_in())?;
        Ok(())
    }
    /// Transforms `n × d_in` vectors into `n × d_out`.
    fn apply(&self, x: &[f32]) -> Result<Vec<f32>>;
    /// Maps `n × d_out` vectors back to `n × d_in`, exactly for invertible transforms and
    /// as the least-squares preimage for orthonormal projections; an error for the others.
    fn reverse_transform(&self, y: &[f32]) -> Result<Vec<f32>> {
        let _ = y;
        Err(Error::Unsupported(format!(
            "{} cannot be reversed",
            self.description()
        )))
    }
    /// A short description in Faiss's factory grammar ("PCA64", "L2norm", …).
    fn description(&self) -> String;
    /// Which transform this is, with its parameters ([`TransformView`]): how persistence
    /// and the Python classes treat each kind. Transforms defined outside this crate
    /// answer [`TransformView::Other`].
    fn view(&self) -> TransformView<'_>;
}

/// What a transform is ([`VectorTransform::view`]). Exhaustive on purpose: a new
/// transform is a new variant, and the compiler points at every consumer to teach.
#[derive(Clone, Copy)]
pub enum TransformView<'a> {
    /// `y = A·x + b`.
    Linear(&'a LinearTransform),
    /// A random orthonormal matrix.
    RandomRotation(&'a crate::RandomRotationMatrix),
    /// PCA projection.
    Pca(&'a crate::PcaMatrix),
    /// OPQ rotation.
    Opq(&'a crate::OpqMatrix),
    /// Scaling to unit L2 norm.
    Normalization(&'a NormalizationTransform),
    /// Subtracting the training mean.
    Centering(&'a CenteringTransform),
    /// Dimensions copied, dropped or zero-filled.
    RemapDimensions(&'a RemapDimensionsTransform),
    /// A transform defined outside this crate.
    Other,
}

/// The `VectorTransform` methods every transform built on a `LinearTransform` field `lt`
/// shares (PCA, random rotation, OPQ): dimensions, training state, `apply`, and its
/// [`TransformView`] variant.
macro_rules! delegate_to_linear {
    ($view:ident) => {
        fn d_in(&self) -> usize {
            self.lt.d_in
        }
        fn d_out(&self) -> usize {
            self.lt.d_out
        }
        fn is_trained(&self) -> bool {
            self.lt.is_set()
        }
        fn apply(&self, x: &[f32]) -> fathom_core::Result<Vec<f32>> {
            $crate::transform::check_apply(self, x)?;
            self.lt.apply_rows(x)
        }
        fn view(&self) -> $crate::transform::TransformView<'_> {
            $crate::transform::TransformView::$view(self)
        }
    };
}
pub(crate) use delegate_to_linear;

/// `c = a · b` for row-major `a` (`m × k`), `b` (`k × n`) and `c` (`m × n`), without
/// transposing anything (the `xᵀ`-free counterpart of `fathom_kernels::matmul_abt`).
pub(crate) fn matmul_ab(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    use faer::{Accum, MatMut, MatRef, Par};
    let a = MatRef::from_row_major_slice(a, m, k);
    let b = MatRef::from_row_major_slice(b, k, n);
    let c = MatMut::from_row_major_slice_mut(c, m, n);
    faer::linalg::matmul::matmul(c, Accum::Replace, a, b, 1.0, Par::rayon(0));
}

/// Checks `apply`'s input: trained, whole finite vectors. Returns the number of vectors.
pub(crate) fn check_apply(t: &dyn VectorTransform, x: &[f32]) -> Result<usize> {
    if !t.is_trained() {
        return Err(Error::NotTrained(format!("applying {}", t.description())));
    }
    let n = check::vectors("input", x, t.d_in())?;
    check::finite("input", x, t.d_in())?;
    Ok(n)
}

/// Checks `reverse_transform`'s input; returns the number of vectors.
pub(crate) fn check_reverse(t: &dyn VectorTransform, y: &[f32]) -> Result<usize> {
    if !t.is_trained() {
        return Err(Error::NotTrained(format!("reversing {}", t.description())));
    }
    check::vectors("input", y, t.d_out())
}

/// An affine map `y = A·x + b` with `A` of shape `d_out × d_in` (row-major) and an optional
/// bias: Faiss's `LinearTransform`, the shape PCA, random rotations and OPQ all take.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearTransform {
    /// Input dimension.
    pub d_in: usize,
    /// Output dimension.
    pub d_out: usize,
    /// `d_out × d_in`, row-major; empty while untrained.
    pub a: Vec<f32>,
    /// `d_out` values, or empty for no bias.
    pub b: Vec<f32>,
    /// Whether the rows of `A` are orthonormal, which makes `reverse_transform` exact on the
    /// span (`x = Aᵀ·(y − b)`).
    pub is_orthonormal: bool,
}

impl LinearTransform {
    /// An untrained map between the given dimensions.
    pub fn new(d_in: usize, d_out: usize) -> Result<Self> {
        if d_in == 0 || d_out == 0 {
            return Err(Error::invalid(format!(
                "a transform needs d_in and d_out >= 1, got {d_in} → {d_out}"
            )));
        }
        Ok(LinearTransform {
            d_in,
            d_out,
            a: Vec::new(),
            b: Vec::new(),
            is_orthonormal: false,
        })
    }

    /// A map with a known `A` (`d_out × d_in`, row-major) and bias `b` (`d_out` values or
    /// empty), e.g. read from a file; `is_orthonormal` is computed from `A` as Faiss's
    /// `set_is_orthonormal` does. An empty `A` gives an untrained map.
    pub fn from_parts(d_in: usize, d_out: usize, a: Vec<f32>, b: Vec<f32>) -> Result<Self> {
        let mut lt = Self::new(d_in, d_out)?;
        if !a.is_empty() && a.len() != d_in * d_out {
            return Err(Error::DimensionMismatch {
                what: "linear transform matrix".into(),
                got: a.len(),
                expected: format!("d_out × d_in = {d_out} × {d_in}"),
            });
        }
        if !b.is_empty() && b.len() != d_out {
            return Err(Error::DimensionMismatch {
                what: "linear transform bias".into(),
                got: b.len(),
                expected: format!("d_out = {d_out} (or none)"),
            });
        }
        check::finite("linear transform matrix", &a, d_in)?;
        check::finite("linear transform bias", &b, d_out)?;
        lt.a = a;
        lt.b = b;
        lt.is_orthonormal = lt.is_set() && rows_orthonormal(&lt.a, d_in);
        Ok(lt)
    }

    /// Whether `A` is set.
    pub fn is_set(&self) -> bool {
        self.a.len() == self.d_in * self.d_out
    }

    /// `y = A·x + b` for `n × d_in` rows.
    pub(crate) fn apply_rows(&self, x: &[f32]) -> Result<Vec<f32>> {
        let n = x.len() / self.d_in;
        let mut y = vec![0.0f32; n * self.d_out];
        fathom_kernels::matmul_abt(x, &self.a, self.d_in, 1.0, &mut y)?;
        if !self.b.is_empty() {
            for row in y.chunks_exact_mut(self.d_out) {
                row.iter_mut().zip(&self.b).for_each(|(v, b)| *v += b);
            }
        }
        Ok(y)
    }

    /// `x = Aᵀ·(y − b)` for `n × d_out` rows (`Aᵀ·y` without `subtract_bias`).
    pub(crate) fn reverse_rows(&self, y: &[f32], subtract_bias: bool) -> Result<Vec<f32>> {
        let n = y.len() / self.d_out;
        let mut yc = y.to_vec();
        if subtract_bias && !self.b.is_empty() {
            for row in yc.chunks_exact_mut(self.d_out) {
                row.iter_mut().zip(&self.b).for_each(|(v, b)| *v -= b);
            }
        }
        let mut x = vec![0.0f32; n * self.d_in];
        matmul_ab(&yc, &self.a, n, self.d_out, self.d_in, &mut x);
        Ok(x)
    }
}

/// Whether the rows of `a` (`· × d`) are orthonormal to Faiss's tolerance (4e-5 on `A·Aᵀ`).
fn rows_orthonormal(a: &[f32], d: usize) -> bool {
    let rows: Vec<&[f32]> = a.chunks_exact(d).collect();
    rows.iter().enumerate().all(|(i, ri)| {
        rows.iter().enumerate().all(|(j, rj)| {
            let dot: f64 = ri.iter().zip(*rj).map(|(x, y)| *x as f64 * *y as f64).sum();
            (dot - if i == j { 1.0 } else { 0.0 }).abs() < 4e-5
        })
    })
}

impl VectorTransform for LinearTransform {
    fn d_in(&self) -> usize {
        self.d_in
    }
    fn d_out(&self) -> usize {
        self.d_out
    }
    fn is_trained(&self) -> bool {
        self.is_set()
    }
    fn apply(&self, x: &[f32]) -> Result<Vec<f32>> {
        check_apply(self, x)?;
        self.apply_rows(x)
    }
    fn reverse_transform(&self, y: &[f32]) -> Result<Vec<f32>> {
        check_reverse(self, y)?;
        if !self.is_orthonormal {
            return Err(Error::Unsupported(
                "this linear transform is not orthonormal and cannot be reversed".into(),
            ));
        }
        self.reverse_rows(y, true)
    }
    fn description(&self) -> String {
        format!("LinearTransform{}x{}", self.d_out, self.d_in)
    }
    fn view(&self) -> TransformView<'_> {
        TransformView::Linear(self)
    }
}

/// Scales each vector to unit L2 norm (Faiss's `NormalizationTransform`, factory
/// `L2norm`). Not reversible: the norm is lost.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizationTransform {
    d: usize,
}

impl NormalizationTransform {
    /// For vectors of dimension `d`.
    pub fn new(d: usize) -> Result<Self> {
        LinearTransform::new(d, d)?;
        Ok(NormalizationTransform { d })
    }
}

impl VectorTransform for NormalizationTransform {
    fn d_in(&self) -> usize {
        self.d
    }
    fn d_out(&self) -> usize {
        self.d
    }
    fn apply(&self, x: &[f32]) -> Result<Vec<f32>> {
        check_apply(self, x)?;
        fathom_kernels::normalized_l2(x, self.d)
    }
    fn description(&self) -> String {
        "L2norm".into()
    }
    fn view(&self) -> TransformView<'_> {
        TransformView::Normalization(self)
    }
}

/// Subtracts the training set's mean (Faiss's `CenteringTransform`); reversible.
#[derive(Debug, Clone, PartialEq)]
pub struct CenteringTransform {
    d: usize,
    mean: Vec<f32>,
}

impl CenteringTransform {
    /// An untrained centering for vectors of dimension `d`.
    pub fn new(d: usize) -> Result<Self> {
        LinearTransform::new(d, d)?;
        Ok(CenteringTransform {
            d,
            mean: Vec::new(),
        })
    }

    /// A centering by a known `mean` (e.g. read from a file).
    pub fn from_mean(mean: Vec<f32>) -> Result<Self> {
        let mut t = Self::new(mean.len())?;
        check::finite("centering mean", &mean, mean.len())?;
        t.mean = mean;
        Ok(t)
    }

    /// The mean learnt by `train`.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }
}

/// Mean of the rows, accumulated in f64, in parallel over blocks of rows.
pub(crate) fn mean_rows(x: &[f32], d: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let n = (x.len() / d).max(1);
    let acc = x
        .par_chunks(4096 * d)
        .map(|block| {
            let mut acc = vec![0.0f64; d];
            for row in block.chunks_exact(d) {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
            }
            acc
        })
        .reduce(
            || vec![0.0f64; d],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    acc.iter().map(|a| (a / n as f64) as f32).collect()
}

/// `x − mean` for every row, in parallel.
pub(crate) fn centered(x: &[f32], mean: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    let d = mean.len();
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(4096 * d)
        .zip(x.par_chunks(4096 * d))
        .for_each(|(out, block)| {
            for (o, row) in out.chunks_exact_mut(d).zip(block.chunks_exact(d)) {
                o.iter_mut()
                    .zip(row)
                    .zip(mean)
                    .for_each(|((o, v), m)| *o = v - m);
            }
        });
    y
}

impl VectorTransform for CenteringTransform {
    fn d_in(&self) -> usize {
        self.d
    }
    fn d_out(&self) -> usize {
        self.d
    }
    fn is_trained(&self) -> bool {
        self.mean.len() == self.d
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        check::nonempty_finite("training set", x, self.d)?;
        self.mean = mean_rows(x, self.d);
        Ok(())
    }
    fn apply(&self, x: &[f32]) -> Result<Vec<f32>> {
        check_apply(self, x)?;
        Ok(centered(x, &self.mean))
    }
    fn reverse_transform(&self, y: &[f32]) -> Result<Vec<f32>> {
        check_reverse(self, y)?;
        let mut x = y.to_vec();
        for row in x.chunks_exact_mut(self.d) {
            row.iter_mut().zip(&self.mean).for_each(|(v, m)| *v += m);
        }
        Ok(x)
    }
    fn description(&self) -> String {
        "Center".into()
    }
    fn view(&self) -> TransformView<'_> {
        TransformView::Centering(self)
    }
}

/// Selects or pads dimensions (Faiss's `RemapDimensionsTransform`): output dimension `i`
/// takes input dimension `map[i]`, or 0 where `map[i]` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct RemapDimensionsTransform {
    d_in: usize,
    map: Vec<Option<usize>>,
}

impl RemapDimensionsTransform {
    /// An explicit map; every `Some(j)` must be `< d_in`.
    pub fn new(d_in: usize, map: Vec<Option<usize>>) -> Result<Self> {
        LinearTransform::new(d_in, map.len())?;
        if let Some(bad) = map.iter().flatten().find(|&&j| j >= d_in) {
            return Err(Error::invalid(format!(
                "remap refers to input dimension {bad}, but d_in = {d_in}"
            )));
        }
        Ok(RemapDimensionsTransform { d_in, map })
    }

    /// Output dimension `i` takes input dimension `map()[i]` (`None`: zero).
    pub fn map(&self) -> &[Option<usize>] {
        &self.map
    }

    /// Faiss's constructor `RemapDimensionsTransform(d_in, d_out, uniform)`: with `uniform`
    /// the `min(d_in, d_out)` kept dimensions are spread evenly over the larger side;
    /// otherwise the first ones are kept (and the rest dropped or zero-padded). `Pad` in the
    /// factory grammar is the non-uniform padding.
    pub fn with_dims(d_in: usize, d_out: usize, uniform: bool) -> Result<Self> {
        LinearTransform::new(d_in, d_out)?;
        let mut map = vec![None; d_out];
        if uniform {
            if d_in < d_out {
                for i in 0..d_in {
                    map[i * d_out / d_in] = Some(i);
                }
            } else {
                for (i, m) in map.iter_mut().enumerate() {
                    *m = Some(i * d_in / d_out);
                }
            }
        } else {
            for (i, m) in map.iter_mut().enumerate().take(d_in.min(d_out)) {
                *m = Some(i);
            }
        }
        Self::new(d_in, map)
    }
}

impl VectorTransform for RemapDimensionsTransform {
    fn d_in(&self) -> usize {
        self.d_in
    }
    fn d_out(&self) -> usize {
        self.map.len()
    }
    fn apply(&self, x: &[f32]) -> Result<Vec<f32>> {
        check_apply(self, x)?;
        Ok(x.chunks_exact(self.d_in)
            .flat_map(|row| self.map.iter().map(move |m| m.map_or(0.0, |j| row[j])))
            .collect())
    }
    fn reverse_transform(&self, y: &[f32]) -> Result<Vec<f32>> {
        check_reverse(self, y)?;
        let d_out = self.map.len();
        let mut x = vec![0.0f32; y.len() / d_out * self.d_in];
        for (row, out) in y.chunks_exact(d_out).zip(x.chunks_exact_mut(self.d_in)) {
            for (i, m) in self.map.iter().enumerate() {
                if let Some(j) = m {
                    out[*j] = row[i];
                }
            }
        }
        Ok(x)
    }
    fn description(&self) -> String {
        // Zero-padding is what the factory's `Pad<n>` builds: say it so it parses back.
        let pads = self.map.len() >= self.d_in
            && self
                .map
                .iter()
                .enumerate()
                .all(|(i, m)| *m == (i < self.d_in).then_some(i));
        if pads {
            format!("Pad{}", self.map.len())
        } else {
            format!("Remap{}", self.map.len())
        }
    }
    fn view(&self) -> TransformView<'_> {
        TransformView::RemapDimensions(self)
    }
}
