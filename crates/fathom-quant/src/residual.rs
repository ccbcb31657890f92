//! The residual quantizer (Faiss's `ResidualQuantizer`, an additive quantizer): a vector
//! is approximated by the sum of one entry from each of `M` codebooks, chosen greedily
//! level by level with a beam of the `max_beam_size` best partial sums. Codebook `m` is
//! trained by k-means on the residuals left after levels `0..m` (on every beam entry, as
//! Faiss), optionally with Faiss's progressive-dimension k-means in PCA space.
//!
//! Codes are Faiss's bit stream (level codes LSB-first, then the norm code), so codes and
//! codebooks move between the two libraries; with the same codebooks the beam search
//! picks Faiss's codes (up to ties broken by float rounding). Search types follow Faiss's
//! `AdditiveQuantizer::Search_type_t`: decode and compare (`Decompress`), look-up tables
//! alone (`LutNonorm`), or tables plus a stored norm of the reconstruction (`NormFloat`,
//! `NormQint8`, `NormQint4`).
//!
//! ```
//! use fathom_quant::residual::{AqSearchType, ResidualQuantizer};
//! let d = 8;
//! let x: Vec<f32> = (0..2000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
//! let mut rq = ResidualQuantizer::new(d, vec![4, 4], AqSearchType::NormFloat).unwrap();
//! rq.train(&x).unwrap();
//! assert_eq!(rq.code_size(), 5); // 8 bits of codes + 32 bits of norm
//! let mut code = vec![0u8; 5];
//! rq.encode(&x[..d], &mut code).unwrap();
//! let mut y = vec![0.0; d];
//! rq.decode(&code, &mut y);
//! let err: f32 = x[..d].iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
//! assert!(err < 0.5);
//! ```

use fathom_core::{Error, MetricType, Result, check};
use fathom_linalg::{ClusteringParameters, Kmeans, PcaMatrix, VectorTransform};
use rayon::prelude::*;

use crate::bits::{BitReader, BitWriter};

/// How an additive quantizer's codes are searched and which norm they store (Faiss's
/// `Search_type_t`, same numbers in files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AqSearchType {
    /// Decode each code and compare exactly (no norm stored).
    Decompress,
    /// Look-up tables without a norm (inner product; for L2 Faiss's `‖q‖² − ⟨q, y⟩`).
    LutNonorm,
    /// The norm recomputed from codebook cross products (read only here).
    NormFromLut,
    /// The squared norm of the reconstruction as an `f32`.
    NormFloat,
    /// …quantized uniformly to 8 bits between the training minimum and maximum.
    NormQint8,
    /// …to 4 bits.
    NormQint4,
    /// …as an index into a 256-entry 1-D k-means codebook.
    NormCqint8,
    /// …into a 16-entry one.
    NormCqint4,
    /// …as a 2×4-bit 1-D LSQ code (for fast-scan).
    NormLsq2x4,
    /// …as a 2×4-bit 1-D RQ code (for fast-scan).
    NormRq2x4,
}

impl AqSearchType {
    /// Faiss's number for it.
    pub fn code(self) -> i32 {
        self as i32
    }
    /// The search type Faiss numbers `code`.
    pub fn from_code(code: i32) -> Result<Self> {
        use AqSearchType::*;
        Ok(match code {
            0 => Decompress,
            1 => LutNonorm,
            2 => NormFromLut,
            3 => NormFloat,
            4 => NormQint8,
            5 => NormQint4,
            6 => NormCqint8,
            7 => NormCqint4,
            8 => NormLsq2x4,
            9 => NormRq2x4,
            c => {
                return Err(Error::invalid(format!(
                    "additive-quantizer search type {c}; expected 0 to 9"
                )));
            }
        })
    }
    /// Bits of norm stored per code.
    pub fn norm_bits(self) -> usize {
        use AqSearchType::*;
        match self {
            Decompress | LutNonorm | NormFromLut => 0,
            NormFloat => 32,
            NormQint8 | NormCqint8 | NormLsq2x4 | NormRq2x4 => 8,
            NormQint4 | NormCqint4 => 4,
        }
    }
    /// The factory suffix (`_Nfloat`, …; empty for `Decompress`).
    pub fn factory_suffix(self) -> &'static str {
        use AqSearchType::*;
        match self {
            Decompress | NormFromLut => "",
            LutNonorm => "_Nnone",
            NormFloat => "_Nfloat",
            NormQint8 => "_Nqint8",
            NormQint4 => "_Nqint4",
            NormCqint8 => "_Ncqint8",
            NormCqint4 => "_Ncqint4",
            NormLsq2x4 => "_Nlsq2x4",
            NormRq2x4 => "_Nrq2x4",
        }
    }
    /// Whether fathom can encode and search with it (the codebook-based norm encodings
    /// are read from files but not built yet).
    pub fn is_supported(self) -> bool {
        use AqSearchType::*;
        matches!(
            self,
            Decompress | LutNonorm | NormFloat | NormQint8 | NormQint4
        )
    }
}

/// Faiss's `ResidualQuantizer`: `M` codebooks of `2^nbits[m]` entries.
#[derive(Debug, Clone)]
pub struct ResidualQuantizer {
    d: usize,
    nbits: Vec<usize>,
    offsets: Vec<usize>,
    codebooks: Vec<f32>,
    codebook_norms: Vec<f32>,
    search_type: AqSearchType,
    norm_min: f32,
    norm_max: f32,
    trained: bool,
    /// Faiss's `train_type` flags: 1 (the default) trains each level by progressive-
    /// dimension k-means in PCA space, 0 by plain k-means.
    pub train_type: i32,
    /// Partial sums kept per level when encoding and training (Faiss's default 5).
    pub max_beam_size: usize,
    /// Iterations of each k-means (Faiss's default 10).
    pub niter: usize,
}

/// Faiss's `Train_progressive_dim` flag.
pub const TRAIN_PROGRESSIVE_DIM: i32 = 1;

impl ResidualQuantizer {
    /// An untrained quantizer of `d`-dimensional vectors with one codebook of
    /// `2^nbits[m]` entries per level (1 to 16 bits each).
    pub fn new(d: usize, nbits: Vec<usize>, search_type: AqSearchType) -> Result<Self> {
        if d == 0 || nbits.is_empty() {
            return Err(Error::invalid(format!(
                "a residual quantizer needs d ≥ 1 and at least one codebook, got d = {d}, M = {}",
                nbits.len()
            )));
        }
        if let Some(b) = nbits.iter().find(|&&b| !(1..=16).contains(&b)) {
            return Err(Error::invalid(format!(
                "residual-quantizer codebooks have 1 to 16 bits, got {b}"
            )));
        }
        if !search_type.is_supported() {
            return Err(Error::Unsupported(format!(
                "additive-quantizer search type {search_type:?} (norm suffix {}) is not built \
                 yet; use _Nfloat, _Nqint8, _Nqint4, _Nnone or no suffix",
                search_type.factory_suffix()
            )));
        }
        let mut offsets = vec![0usize];
        for &b in &nbits {
            offsets.push(offsets.last().copied().unwrap_or(0) + (1 << b));
        }
        Ok(ResidualQuantizer {
            d,
            nbits,
            offsets,
            codebooks: Vec::new(),
            codebook_norms: Vec::new(),
            search_type,
            norm_min: f32::NAN,
            norm_max: f32::NAN,
            trained: false,
            train_type: TRAIN_PROGRESSIVE_DIM,
            max_beam_size: 5,
            niter: 10,
        })
    }

    /// A trained quantizer from its parts (as read from a file).
    pub fn from_parts(
        d: usize,
        nbits: Vec<usize>,
        codebooks: Vec<f32>,
        search_type: AqSearchType,
        norm_min: f32,
        norm_max: f32,
    ) -> Result<Self> {
        let mut rq = Self::new(d, nbits, search_type)?;
        let want = rq.total_codebook_size() * d;
        if codebooks.len() != want {
            return Err(Error::invalid(format!(
                "residual-quantizer codebooks hold {} floats; {} entries of d = {d} take {want}",
                codebooks.len(),
                rq.total_codebook_size()
            )));
        }
        rq.codebooks = codebooks;
        rq.codebook_norms = row_norms(&rq.codebooks, d);
        rq.norm_min = norm_min;
        rq.norm_max = norm_max;
        rq.trained = true;
        Ok(rq)
    }

    /// The dimension.
    pub fn d(&self) -> usize {
        self.d
    }
    /// Number of codebooks.
    pub fn m(&self) -> usize {
        self.nbits.len()
    }
    /// Bits of each codebook.
    pub fn nbits(&self) -> &[usize] {
        &self.nbits
    }
    /// Entries over all codebooks.
    pub fn total_codebook_size(&self) -> usize {
        self.offsets[self.m()]
    }
    /// The codebooks, `total_codebook_size × d` row-major (empty before training).
    pub fn codebooks(&self) -> &[f32] {
        &self.codebooks
    }
    /// The search type.
    pub fn search_type(&self) -> AqSearchType {
        self.search_type
    }
    /// The training norms' range (`NaN` before training), for the quantized norms.
    pub fn norm_range(&self) -> (f32, f32) {
        (self.norm_min, self.norm_max)
    }
    /// Whether the codebooks are trained.
    pub fn is_trained(&self) -> bool {
        self.trained
    }
    /// The bits of every codebook when they are all the same.
    fn uniform_bits(&self) -> Option<usize> {
        let b = self.nbits[0];
        self.nbits.iter().all(|&x| x == b).then_some(b)
    }
    fn code_bits(&self) -> usize {
        self.nbits.iter().sum()
    }
    /// Bytes per code: the level codes and the norm, rounded up.
    pub fn code_size(&self) -> usize {
        (self.code_bits() + self.search_type.norm_bits()).div_ceil(8)
    }
    fn entry(&self, m: usize, k: usize) -> &[f32] {
        let row = self.offsets[m] + k;
        &self.codebooks[row * self.d..(row + 1) * self.d]
    }

    /// Trains the codebooks on the rows of `x`.
    pub fn train(&mut self, x: &[f32]) -> Result<()> {
        let d = self.d;
        let n = check::vectors("training set", x, d)?;
        check::finite("training set", x, d)?;
        if n == 0 {
            return Err(Error::invalid("the training set is empty"));
        }
        // Levels are filled in as they are trained; a beam step reads only its own level.
        // Until the last one is in, the quantizer counts as untrained.
        self.trained = false;
        self.codebooks = vec![0.0f32; self.total_codebook_size() * d];
        self.codebook_norms = vec![0.0f32; self.total_codebook_size()];
        // The beam of every training vector: residuals `(n, beam, d)`.
        let mut beam = 1usize;
        let mut residuals = x.to_vec();
        for m in 0..self.m() {
            let k = 1usize << self.nbits[m];
            let centroids = self.train_level(&residuals, k)?;
            let rows = self.offsets[m]..self.offsets[m + 1];
            self.codebooks[rows.start * d..rows.end * d].copy_from_slice(&centroids);
            self.codebook_norms[rows].copy_from_slice(&row_norms(&centroids, d));
            let width = (beam * k).min(self.max_beam_size.max(1));
            residuals = self.beam_step(&residuals, n, beam, m, width).0;
            beam = width;
        }
        self.trained = true;
        // Norms of the training reconstructions: x minus the best beam entry's residual.
        let norms: Vec<f32> = (0..n)
            .map(|i| {
                let (xi, r) = (&x[i * d..(i + 1) * d], &residuals[i * beam * d..][..d]);
                xi.iter().zip(r).map(|(a, b)| (a - b) * (a - b)).sum()
            })
            .collect();
        self.norm_min = norms.iter().copied().fold(f32::INFINITY, f32::min);
        self.norm_max = norms.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        Ok(())
    }

    /// The `k` centroids of one level, trained on the current residuals.
    fn train_level(&self, residuals: &[f32], k: usize) -> Result<Vec<f32>> {
        let d = self.d;
        let params = ClusteringParameters {
            niter: self.niter,
            ..Default::default()
        };
        if self.train_type & TRAIN_PROGRESSIVE_DIM == 0 {
            let mut km = Kmeans::new(d, k)?.with_params(params);
            km.train(residuals)?;
            return Ok(km.centroids().to_vec());
        }
        // Faiss's ProgressiveDimClustering: PCA, then k-means on the first d_i principal
        // components for d_i growing geometrically to d, each run started from the last.
        let sample = fathom_linalg::sample::subsample(
            residuals,
            d,
            k * params.max_points_per_centroid,
            params.seed,
        );
        let data = sample.as_deref().unwrap_or(residuals);
        let mut pca = PcaMatrix::new(d, d, 0.0, false)?;
        pca.train(data)?;
        let xp = pca.apply(data)?;
        let n = xp.len() / d;
        let steps = 10;
        let mut centroids: Vec<f32> = Vec::new();
        let mut prev_di = 0usize;
        for iter in 0..steps {
            let di = ((d as f64).powf((1 + iter) as f64 / steps as f64) as usize).clamp(1, d);
            let cols: Vec<f32> = (0..n)
                .flat_map(|i| xp[i * d..i * d + di].iter().copied())
                .collect();
            let mut km = Kmeans::new(di, k)?.with_params(params.clone());
            if prev_di > 0 {
                let init: Vec<f32> = (0..k)
                    .flat_map(|c| {
                        let row = &centroids[c * prev_di..(c + 1) * prev_di];
                        row.iter()
                            .copied()
                            .chain(std::iter::repeat_n(0.0, di - prev_di))
                    })
                    .collect();
                km.set_initial_centroids(&init)?;
            }
            km.train(&cols)?;
            centroids = km.centroids().to_vec();
            prev_di = di;
        }
        pca.reverse_transform(&centroids)
    }

    /// One beam step for `n` vectors with beams of `beam` residuals: each keeps the
    /// `width` best `(entry, residual − entry)` pairs of codebook `m`, nearest first (ties
    /// to the earlier candidate, as Faiss's heap). Returns the new residuals, the chosen
    /// `(parent, entry)` pairs and the distances.
    fn beam_step(
        &self,
        residuals: &[f32],
        n: usize,
        beam: usize,
        m: usize,
        width: usize,
    ) -> (Vec<f32>, Vec<(u32, u32)>, Vec<f32>) {
        let d = self.d;
        let k = 1usize << self.nbits[m];
        let cb = &self.codebooks[self.offsets[m] * d..self.offsets[m + 1] * d];
        let cn = &self.codebook_norms[self.offsets[m]..self.offsets[m + 1]];
        let mut out_r = vec![0.0f32; n * width * d];
        let mut out_c = vec![(0u32, 0u32); n * width];
        let mut out_d = vec![0.0f32; n * width];
        const CHUNK: usize = 64;
        out_r
            .par_chunks_mut(CHUNK * width * d)
            .zip(out_c.par_chunks_mut(CHUNK * width))
            .zip(out_d.par_chunks_mut(CHUNK * width))
            .enumerate()
            .for_each(|(ci, ((or, oc), od))| {
                let i0 = ci * CHUNK;
                let nc = or.len() / (width * d);
                let rs = &residuals[i0 * beam * d..(i0 + nc) * beam * d];
                let mut ip = vec![0.0f32; nc * beam * k];
                // Inner products of every residual with every entry: one matrix product.
                fathom_kernels::matmul_abt(rs, cb, d, 1.0, &mut ip).expect("shapes agree");
                let mut cand: Vec<(f32, u32)> = Vec::with_capacity(beam * k);
                for i in 0..nc {
                    cand.clear();
                    for b in 0..beam {
                        let r = &rs[(i * beam + b) * d..][..d];
                        let rn: f32 = r.iter().map(|v| v * v).sum();
                        let row = &ip[(i * beam + b) * k..][..k];
                        for (e, (&p, &c)) in row.iter().zip(cn).enumerate() {
                            cand.push((rn + c - 2.0 * p, (b * k + e) as u32));
                        }
                    }
                    let keep = width.min(cand.len());
                    let by =
                        |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
                    if keep < cand.len() {
                        cand.select_nth_unstable_by(keep - 1, by);
                        cand.truncate(keep);
                    }
                    cand.sort_unstable_by(by);
                    for (j, &(dist, id)) in cand.iter().enumerate() {
                        let (b, e) = (id as usize / k, id as usize % k);
                        let src = &rs[(i * beam + b) * d..][..d];
                        let entry = &cb[e * d..(e + 1) * d];
                        let dst = &mut or[(i * width + j) * d..][..d];
                        for ((o, s), c) in dst.iter_mut().zip(src).zip(entry) {
                            *o = s - c;
                        }
                        oc[i * width + j] = (b as u32, e as u32);
                        od[i * width + j] = dist;
                    }
                }
            });
        (out_r, out_c, out_d)
    }

    /// The level codes of each row of `x` (beam search) and the squared norms of their
    /// reconstructions.
    fn encode_levels(&self, x: &[f32]) -> (Vec<u32>, Vec<f32>) {
        let (d, mm) = (self.d, self.m());
        let n = x.len() / d;
        let mut residuals = x.to_vec();
        // codes[(i, beam entry)] = the level codes so far.
        let mut codes: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut beam = 1usize;
        for m in 0..mm {
            let k = 1usize << self.nbits[m];
            let width = (beam * k).min(self.max_beam_size.max(1));
            let (r, chosen, _) = self.beam_step(&residuals, n, beam, m, width);
            let mut next: Vec<Vec<u32>> = Vec::with_capacity(n);
            for (i, old) in codes.iter().enumerate() {
                let mut v = Vec::with_capacity(width * (m + 1));
                for j in 0..width {
                    let (b, e) = chosen[i * width + j];
                    v.extend_from_slice(&old[b as usize * m..(b as usize + 1) * m]);
                    v.push(e);
                }
                next.push(v);
            }
            codes = next;
            residuals = r;
            beam = width;
        }
        let mut flat = Vec::with_capacity(n * mm);
        let mut norms = Vec::with_capacity(n);
        for i in 0..n {
            flat.extend_from_slice(&codes[i][..mm]);
            let (xi, r) = (&x[i * d..(i + 1) * d], &residuals[i * beam * d..][..d]);
            norms.push(xi.iter().zip(r).map(|(a, b)| (a - b) * (a - b)).sum());
        }
        (flat, norms)
    }

    /// The norm field of a code.
    fn encode_norm(&self, norm: f32) -> u64 {
        let (lo, hi) = (self.norm_min, self.norm_max);
        let uniform = |levels: f32, max: i64| -> u64 {
            let v = ((norm - lo) / (hi - lo) * levels).floor();
            (if v.is_nan() {
                0
            } else {
                (v as i64).clamp(0, max)
            }) as u64
        };
        match self.search_type {
            AqSearchType::NormFloat => norm.to_bits() as u64,
            AqSearchType::NormQint8 => uniform(256.0, 255),
            AqSearchType::NormQint4 => uniform(16.0, 15),
            _ => 0,
        }
    }

    /// The squared norm a code's norm field stands for.
    fn decode_norm(&self, v: u64) -> f32 {
        let (lo, hi) = (self.norm_min as f64, self.norm_max as f64);
        match self.search_type {
            AqSearchType::NormFloat => f32::from_bits(v as u32),
            AqSearchType::NormQint8 => ((v as f64 + 0.5) / 256.0 * (hi - lo) + lo) as f32,
            AqSearchType::NormQint4 => ((v as f64 + 0.5) / 16.0 * (hi - lo) + lo) as f32,
            _ => 0.0,
        }
    }

    /// Codes the rows of `x` into `codes` (`n × code_size` bytes).
    pub fn encode(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        if !self.trained {
            return Err(Error::NotTrained("residual-quantizer encoding".into()));
        }
        let n = check::vectors("encoded", x, self.d)?;
        check::finite("encoded", x, self.d)?;
        let cs = self.code_size();
        check::output_len("residual-quantizer code buffer", codes.len(), n * cs)?;
        let (levels, norms) = self.encode_levels(x);
        let nb = self.search_type.norm_bits();
        for (i, code) in codes.chunks_exact_mut(cs).enumerate() {
            code.fill(0);
            let mut w = BitWriter::new(code);
            for (m, &c) in levels[i * self.m()..(i + 1) * self.m()].iter().enumerate() {
                w.write(c as u64, self.nbits[m]);
            }
            if nb > 0 {
                w.write(self.encode_norm(norms[i]), nb);
            }
        }
        Ok(())
    }

    /// The vector a code stands for: the sum of its entries.
    pub fn decode(&self, code: &[u8], out: &mut [f32]) {
        out.fill(0.0);
        if !self.trained {
            // No codebooks yet (an untrained index read from a file): nothing to sum.
            return;
        }
        let mut r = BitReader::new(code);
        for (m, &b) in self.nbits.iter().enumerate() {
            let c = r.read(b).unwrap_or(0) as usize;
            for (o, v) in out.iter_mut().zip(self.entry(m, c)) {
                *o += v;
            }
        }
    }

    /// `lut[t] = ⟨q, entry t⟩` over all codebooks (Faiss's `compute_LUT`).
    pub fn compute_lut(&self, q: &[f32]) -> Vec<f32> {
        let mut lut = vec![0.0f32; self.total_codebook_size()];
        if !self.codebooks.is_empty() {
            fathom_kernels::matmul_abt(q, &self.codebooks, self.d, 1.0, &mut lut)
                .expect("a query of dimension d");
        }
        lut
    }

    /// A query's score against a code from its table (Faiss's `compute_1_distance_LUT`):
    /// for inner product `Σ lut`; for L2, without the query's own `‖q‖²`, `norm − 2·Σ lut`
    /// (or Faiss's `−Σ lut` when no norm is stored).
    #[inline]
    pub fn lut_score(&self, code: &[u8], lut: &[f32], metric: MetricType) -> f32 {
        // Read the level codes straight from the bit stream: this runs once per code
        // scanned, so nothing is allocated, and whole bytes or nibbles are read directly.
        let mm = self.m();
        let mut acc = 0.0f32;
        let mut r = BitReader::new(code);
        match self.uniform_bits() {
            Some(8) => {
                for (m, &c) in code[..mm].iter().enumerate() {
                    acc += lut[self.offsets[m] + c as usize];
                }
                r.skip(8 * mm);
            }
            Some(4) => {
                for m in 0..mm {
                    let c = (code[m / 2] >> (4 * (m % 2))) & 15;
                    acc += lut[self.offsets[m] + c as usize];
                }
                r.skip(4 * mm);
            }
            _ => {
                for (m, &b) in self.nbits.iter().enumerate() {
                    acc += lut[self.offsets[m] + r.read(b).unwrap_or(0) as usize];
                }
            }
        }
        if metric == MetricType::InnerProduct {
            return acc;
        }
        match self.search_type {
            AqSearchType::LutNonorm | AqSearchType::Decompress => -acc,
            st => self.decode_norm(r.read(st.norm_bits()).unwrap_or(0)) - 2.0 * acc,
        }
    }
}

fn row_norms(rows: &[f32], d: usize) -> Vec<f32> {
    rows.chunks_exact(d)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect()
}

impl crate::Codec for ResidualQuantizer {
    fn dim(&self) -> usize {
        self.d
    }
    fn code_size(&self) -> usize {
        ResidualQuantizer::code_size(self)
    }
    fn compute_codes_into(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        self.encode(x, codes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, d: usize, seed: u32) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n * d)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn mse(rq: &ResidualQuantizer, x: &[f32]) -> f64 {
        let d = rq.d();
        let cs = rq.code_size();
        let mut codes = vec![0u8; x.len() / d * cs];
        rq.encode(x, &mut codes).unwrap();
        let mut y = vec![0.0f32; d];
        let mut err = 0.0f64;
        for (xi, c) in x.chunks(d).zip(codes.chunks(cs)) {
            rq.decode(c, &mut y);
            err += xi
                .iter()
                .zip(&y)
                .map(|(a, b)| ((a - b) * (a - b)) as f64)
                .sum::<f64>();
        }
        err / (x.len() / d) as f64
    }

    #[test]
    fn more_levels_and_wider_beams_code_better() {
        let (d, n) = (16, 3000);
        let x = data(n, d, 5);
        let mut errs = Vec::new();
        for (levels, tt) in [(1, 1), (2, 1), (4, 1), (4, 0)] {
            let mut rq =
                ResidualQuantizer::new(d, vec![5; levels], AqSearchType::Decompress).unwrap();
            rq.train_type = tt;
            rq.train(&x).unwrap();
            errs.push(mse(&rq, &x));
            if levels == 4 && tt == 1 {
                // The same codebooks searched with a narrower beam code worse.
                rq.max_beam_size = 1;
                let narrow = mse(&rq, &x);
                assert!(narrow > errs[2], "beam 1 {narrow} vs beam 5 {}", errs[2]);
            }
        }
        assert!(
            errs[1] < errs[0] && errs[2] < errs[1] && errs[3] < errs[1],
            "{errs:?}"
        );
    }

    #[test]
    fn norms_and_tables_give_the_decoded_distances() {
        let (d, n) = (12, 2000);
        let x = data(n, d, 9);
        let q = data(3, d, 11);
        for st in [
            AqSearchType::NormFloat,
            AqSearchType::NormQint8,
            AqSearchType::NormQint4,
        ] {
            let mut rq = ResidualQuantizer::new(d, vec![4, 4, 4], st).unwrap();
            rq.train(&x).unwrap();
            let cs = rq.code_size();
            let mut codes = vec![0u8; 50 * cs];
            rq.encode(&x[..50 * d], &mut codes).unwrap();
            let mut y = vec![0.0f32; d];
            for qi in q.chunks(d) {
                let lut = rq.compute_lut(qi);
                let qn: f32 = qi.iter().map(|v| v * v).sum();
                for c in codes.chunks(cs) {
                    rq.decode(c, &mut y);
                    let exact: f32 = qi.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
                    let est = qn + rq.lut_score(c, &lut, MetricType::L2);
                    let tol = match st {
                        AqSearchType::NormFloat => 1e-4,
                        AqSearchType::NormQint8 => 0.02,
                        _ => 0.3,
                    };
                    assert!(
                        (est - exact).abs() <= tol * exact.max(1.0),
                        "{st:?}: {est} vs {exact}"
                    );
                    let ip: f32 = qi.iter().zip(&y).map(|(a, b)| a * b).sum();
                    assert!((rq.lut_score(c, &lut, MetricType::InnerProduct) - ip).abs() < 1e-4);
                }
            }
        }
        assert!(ResidualQuantizer::new(d, vec![4], AqSearchType::NormCqint8).is_err());
        assert!(ResidualQuantizer::new(d, vec![17], AqSearchType::Decompress).is_err());
        assert!(ResidualQuantizer::new(d, vec![], AqSearchType::Decompress).is_err());
    }
}
