//! The product quantizer (Faiss's `ProductQuantizer`).

use fathom_core::{Error, MetricType, Result, check};
use fathom_kernels::codes::pq as kern;
use fathom_linalg::{ClusteringParameters, subspace_centroids};
use rayon::prelude::*;

use crate::bits;

/// Splits vectors into `m` sub-vectors of `dsub = d / m` dimensions and codes each as the
/// nearest of `ksub = 2^nbits` centroids learnt for its sub-space: a vector becomes `m`
/// integers packed into `code_size = ⌈m·nbits / 8⌉` bytes, LSB-first as Faiss packs them,
/// so codes move between the two libraries unchanged.
///
/// Distances between a query and a code are sums of `m` table entries
/// ([`ProductQuantizer::compute_distance_table`], asymmetric: the query is not quantized)
/// or, between two codes, of `m` entries of the symmetric table
/// ([`ProductQuantizer::sdc_table`]).
///
/// ```
/// use fathom_quant::{Codec, ProductQuantizer};
/// let (d, n) = (8, 2000);
/// let x: Vec<f32> = (0..n * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let mut pq = ProductQuantizer::new(d, 4, 4).unwrap(); // 4 sub-spaces × 16 centroids
/// pq.train(&x).unwrap();
/// let codes = pq.compute_codes(&x[..d]).unwrap();
/// assert_eq!(codes.len(), pq.code_size());
/// let back = pq.decode(&codes).unwrap();
/// let err: f32 = back.iter().zip(&x[..d]).map(|(a, b)| (a - b).powi(2)).sum();
/// assert!(err < 0.1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuantizer {
    d: usize,
    m: usize,
    nbits: usize,
    /// `m × ksub × dsub`, sub-space by sub-space (Faiss's `centroids`).
    centroids: Vec<f32>,
    /// The same, transposed per sub-space (`m × dsub × ksub`), for the table kernels.
    centroids_t: Vec<f32>,
    trained: bool,
    /// k-means settings for training (Faiss's `cp`: 25 iterations, seed 1234, at most 256
    /// points per centroid).
    pub cp: ClusteringParameters,
}

impl ProductQuantizer {
    /// A quantizer of `d`-dimensional vectors into `m` sub-spaces of `2^nbits` centroids.
    /// `d` must be divisible by `m`, and `1 ≤ nbits ≤ 16`.
    pub fn new(d: usize, m: usize, nbits: usize) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("dimension must be at least 1"));
        }
        if m == 0 || !d.is_multiple_of(m) {
            return Err(Error::invalid(format!(
                "d = {d} must be a multiple of the number of sub-quantizers M = {m}"
            )));
        }
        if !(1..=16).contains(&nbits) {
            return Err(Error::invalid(format!(
                "nbits = {nbits} per sub-quantizer is out of range: expected 1 to 16"
            )));
        }
        let size = d << nbits;
        Ok(ProductQuantizer {
            d,
            m,
            nbits,
            centroids: vec![0.0; size],
            centroids_t: vec![0.0; size],
            trained: false,
            cp: ClusteringParameters::default(),
        })
    }

    /// Vector dimension.
    pub fn d(&self) -> usize {
        self.d
    }
    /// Number of sub-quantizers.
    pub fn m(&self) -> usize {
        self.m
    }
    /// Bits per sub-quantizer index.
    pub fn nbits(&self) -> usize {
        self.nbits
    }
    /// Dimensions per sub-space.
    pub fn dsub(&self) -> usize {
        self.d / self.m
    }
    /// Centroids per sub-space.
    pub fn ksub(&self) -> usize {
        1 << self.nbits
    }
    /// Bytes per code.
    pub fn code_size(&self) -> usize {
        (self.m * self.nbits).div_ceil(8)
    }
    /// Whether the centroids are set.
    pub fn is_trained(&self) -> bool {
        self.trained
    }
    /// The centroids, `m × ksub × dsub`.
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }
    /// Centroid `j` of sub-space `s`.
    pub fn centroid(&self, s: usize, j: usize) -> &[f32] {
        let dsub = self.dsub();
        let at = (s * self.ksub() + j) * dsub;
        &self.centroids[at..at + dsub]
    }

    /// Sets the centroids (`m × ksub × dsub` floats), e.g. read from a file or permuted
    /// by polysemous training; marks the quantizer trained.
    pub fn set_centroids(&mut self, centroids: &[f32]) -> Result<()> {
        if centroids.len() != self.centroids.len() {
            return Err(Error::DimensionMismatch {
                what: "PQ centroids".into(),
                got: centroids.len(),
                expected: format!("M × ksub × dsub = {}", self.centroids.len()),
            });
        }
        check::finite("PQ centroids", centroids, self.dsub())?;
        self.centroids.copy_from_slice(centroids);
        let (ksub, dsub) = (self.ksub(), self.dsub());
        for s in 0..self.m {
            let c = &self.centroids[s * ksub * dsub..(s + 1) * ksub * dsub];
            let ct = &mut self.centroids_t[s * ksub * dsub..(s + 1) * ksub * dsub];
            for j in 0..ksub {
                for t in 0..dsub {
                    ct[t * ksub + j] = c[j * dsub + t];
                }
            }
        }
        self.trained = true;
        Ok(())
    }

    /// Learns the centroids: one k-means per sub-space (in parallel), with `self.cp`.
    /// Needs at least `ksub` training vectors; Faiss's k-means warns below 39 per
    /// centroid, and so does fathom's.
    pub fn train(&mut self, x: &[f32]) -> Result<()> {
        let n = check::nonempty_finite("PQ training set", x, self.d)?;
        if n < self.ksub() {
            return Err(Error::invalid(format!(
                "product quantizer training needs at least ksub = {} vectors (2^nbits \
                 centroids per sub-space), got {n}",
                self.ksub()
            )));
        }
        let c = subspace_centroids(x, self.d, self.m, self.ksub(), &self.cp)?;
        self.set_centroids(&c)
    }

    fn check_trained(&self, what: &str) -> Result<()> {
        if self.trained {
            Ok(())
        } else {
            Err(Error::NotTrained(format!("product quantizer {what}")))
        }
    }

    /// The `m × ksub` table of one query: squared L2 distances (`L2`) or inner products
    /// (`InnerProduct`) between each sub-vector and its sub-space's centroids.
    /// `x` must have `d` floats and `table` `m · ksub`; other lengths, and an untrained
    /// quantizer, are errors.
    pub fn compute_distance_table(
        &self,
        metric: MetricType,
        x: &[f32],
        table: &mut [f32],
    ) -> Result<()> {
        self.check_trained("distance tables")?;
        let (ksub, dsub) = (self.ksub(), self.dsub());
        if x.len() != self.d || table.len() != self.m * ksub {
            return Err(Error::invalid(format!(
                "a distance table of a PQ{}x{} (d = {}) needs a query of {} floats and a \
                 table of {} floats; got {} and {}",
                self.m,
                self.nbits,
                self.d,
                self.d,
                self.m * ksub,
                x.len(),
                table.len()
            )));
        }
        for (s, t) in table.chunks_exact_mut(ksub).enumerate() {
            let xs = &x[s * dsub..(s + 1) * dsub];
            let ct = &self.centroids_t[s * ksub * dsub..(s + 1) * ksub * dsub];
            match metric {
                MetricType::InnerProduct => kern::ip_table(xs, ct, t),
                _ => kern::l2_table(xs, ct, t),
            }
        }
        Ok(())
    }

    /// Tables ([`ProductQuantizer::compute_distance_table`]) for every row of `x`.
    pub fn compute_distance_tables(&self, metric: MetricType, x: &[f32]) -> Result<Vec<f32>> {
        self.check_trained("distance tables")?;
        let n = check::vectors("query", x, self.d)?;
        let per = self.m * self.ksub();
        let mut out = vec![0.0f32; n * per];
        out.par_chunks_mut(per)
            .zip(x.par_chunks(self.d))
            .try_for_each(|(t, xi)| self.compute_distance_table(metric, xi, t))?;
        Ok(out)
    }

    /// Codes one vector into `code` (`code_size` bytes); `scratch` holds `ksub` floats.
    pub fn compute_code(&self, x: &[f32], code: &mut [u8], scratch: &mut [f32]) {
        let mut idx = [0u32; 64];
        if self.m <= idx.len() {
            let idx = &mut idx[..self.m];
            kern::assign_subspaces(x, &self.centroids_t, self.ksub(), idx, scratch);
            bits::pack(idx.iter().copied(), self.nbits, code);
        } else {
            let mut idx = vec![0u32; self.m];
            kern::assign_subspaces(x, &self.centroids_t, self.ksub(), &mut idx, scratch);
            bits::pack(idx, self.nbits, code);
        }
    }

    /// The sub-quantizer indices of one code.
    pub fn code_indices(&self, code: &[u8]) -> Vec<u32> {
        let mut out = vec![0; self.m];
        bits::unpack(code, self.nbits, self.m, &mut out);
        out
    }

    /// Decodes one code into `x` (`d` floats): the concatenated centroids.
    pub fn decode_one(&self, code: &[u8], x: &mut [f32]) {
        let dsub = self.dsub();
        for (s, xs) in x.chunks_exact_mut(dsub).enumerate() {
            let j = bits::get(code, self.nbits, s) as usize;
            xs.copy_from_slice(self.centroid(s, j));
        }
    }

    /// Decodes codes (`n × code_size` bytes) into `n × d` floats.
    pub fn decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        self.check_trained("decoding")?;
        let cs = self.code_size();
        let n = check::codes("PQ codes", codes, cs)?;
        let mut out = vec![0.0f32; n * self.d];
        out.par_chunks_mut(self.d)
            .zip(codes.par_chunks(cs))
            .for_each(|(x, c)| self.decode_one(c, x));
        Ok(out)
    }

    /// Asymmetric distances: `out[i] = Σ_s table[s·ksub + code_i[s]]` for the codes of
    /// `codes` (`out.len() × code_size` bytes), with a table from
    /// [`ProductQuantizer::compute_distance_table`].
    pub fn lookup(&self, table: &[f32], codes: &[u8], out: &mut [f32]) {
        let cs = self.code_size();
        if self.nbits == 8 {
            kern::adc_u8(table, codes, out);
            return;
        }
        let ksub = self.ksub();
        for (o, c) in out.iter_mut().zip(codes.chunks_exact(cs)) {
            let mut s = 0.0f32;
            for (m, t) in table.chunks_exact(ksub).enumerate() {
                s += t[bits::get(c, self.nbits, m) as usize];
            }
            *o = s;
        }
    }

    /// The symmetric (SDC) table: `m × ksub × ksub` squared distances between the
    /// centroids of each sub-space.
    pub fn sdc_table(&self) -> Result<Vec<f32>> {
        self.check_trained("SDC table")?;
        let (ksub, dsub) = (self.ksub(), self.dsub());
        let mut out = vec![0.0f32; self.m * ksub * ksub];
        out.par_chunks_mut(ksub).enumerate().for_each(|(row, t)| {
            let (s, i) = (row / ksub, row % ksub);
            let ct = &self.centroids_t[s * ksub * dsub..(s + 1) * ksub * dsub];
            kern::l2_table(self.centroid(s, i), ct, t);
        });
        Ok(out)
    }
}

impl crate::Codec for ProductQuantizer {
    fn dim(&self) -> usize {
        self.d
    }
    fn code_size(&self) -> usize {
        ProductQuantizer::code_size(self)
    }
    fn compute_codes_into(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        self.check_trained("encoding")?;
        let n = check::vectors("encoded", x, self.d)?;
        check::finite("encoded", x, self.d)?;
        let cs = self.code_size();
        check::output_len("PQ code buffer", codes.len(), n * cs)?;
        codes
            .par_chunks_mut(cs * 256)
            .zip(x.par_chunks(self.d * 256))
            .for_each(|(c, xb)| {
                let mut scratch = vec![0.0f32; self.ksub()];
                for (ci, xi) in c.chunks_exact_mut(cs).zip(xb.chunks_exact(self.d)) {
                    self.compute_code(xi, ci, &mut scratch);
                }
            });
        Ok(())
    }
}
