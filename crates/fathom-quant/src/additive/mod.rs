//! Additive quantizers (Faiss's `AdditiveQuantizer` family): a vector is approximated by
//! the sum of one entry from each of `M` codebooks. The members differ only in how codes
//! are chosen and codebooks trained:
//!
//! | [`AqKind`] | encoding | training | Faiss |
//! |---|---|---|---|
//! | `Residual` | beam search, level by level | k-means per level on residuals | `ResidualQuantizer` |
//! | `LocalSearch` | iterated conditional modes with perturbations | least squares + ICM, annealed | `LocalSearchQuantizer` |
//! | `Product` | each split of the dimensions by its own RQ or LSQ | each split alone | `ProductResidualQuantizer`, `ProductLocalSearchQuantizer` |
//!
//! Everything else is shared and lives here: the codebooks (a level's entries span the
//! whole vector, or one split of it for product quantizers), decoding, look-up tables,
//! distances from tables, and the norm stored after the codes for L2 search
//! ([`AqSearchType`]). Codes are Faiss's bit stream (level codes LSB-first, then the norm
//! code), so codes and codebooks move between the two libraries.
//!
//! ```
//! use fathom_quant::additive::{AdditiveQuantizer, AqSearchType};
//! let d = 8;
//! let x: Vec<f32> = (0..2000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
//! let mut rq = AdditiveQuantizer::residual(d, vec![4, 4], AqSearchType::NormFloat).unwrap();
//! rq.train(&x).unwrap();
//! assert_eq!(rq.code_size(), 5); // 8 bits of codes + 32 bits of norm
//! let mut code = vec![0u8; 5];
//! rq.encode(&x[..d], &mut code).unwrap();
//! let mut y = vec![0.0; d];
//! rq.decode(&code, &mut y);
//! let err: f32 = x[..d].iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
//! assert!(err < 0.5);
//! ```

mod lsq;
mod norm;
mod residual;

use fathom_core::{Error, MetricType, Result, check};
use rayon::prelude::*;

use crate::bits::{BitReader, BitWriter};

pub use lsq::LsqParams;
pub use residual::{RqParams, TRAIN_PROGRESSIVE_DIM};

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
    /// The search type a factory suffix names (`""` is `Decompress`).
    pub fn from_factory_suffix(s: &str) -> Option<Self> {
        use AqSearchType::*;
        Some(match s {
            "" => Decompress,
            "_Nnone" => LutNonorm,
            "_Nfloat" => NormFloat,
            "_Nqint8" => NormQint8,
            "_Nqint4" => NormQint4,
            "_Ncqint8" => NormCqint8,
            "_Ncqint4" => NormCqint4,
            "_Nlsq2x4" => NormLsq2x4,
            "_Nrq2x4" => NormRq2x4,
            _ => return None,
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
    /// Whether the norm is an index into a table of norms (`norm_table`), which files
    /// carry after the norm range.
    pub fn has_norm_table(self) -> bool {
        use AqSearchType::*;
        matches!(self, NormCqint8 | NormCqint4 | NormLsq2x4 | NormRq2x4)
    }
    /// Whether fathom can encode and search with it (`NormFromLut`, which Faiss itself
    /// does not search with, is refused).
    pub fn is_supported(self) -> bool {
        self != AqSearchType::NormFromLut
    }
}

/// How the codes of an [`AdditiveQuantizer`] are chosen and its codebooks trained.
#[derive(Debug, Clone)]
pub enum AqKind {
    /// Faiss's `ResidualQuantizer`.
    Residual(RqParams),
    /// Faiss's `LocalSearchQuantizer` (all codebooks of the same size).
    LocalSearch(LsqParams),
    /// Faiss's `ProductAdditiveQuantizer`: the dimensions split into equal parts, each
    /// coded by its own quantizer (all of one kind, without norms).
    Product(Vec<AdditiveQuantizer>),
}

/// An additive quantizer: `M` codebooks of `2^nbits[m]` entries.
#[derive(Debug, Clone)]
pub struct AdditiveQuantizer {
    d: usize,
    nbits: Vec<usize>,
    /// First entry of each level in the concatenated codebooks (`M + 1` values).
    offsets: Vec<usize>,
    /// The dimensions each level's entries cover: `(first, count)`.
    spans: Vec<(usize, usize)>,
    /// First float of each level's entries in `codebooks` (`M + 1` values).
    starts: Vec<usize>,
    codebooks: Vec<f32>,
    codebook_norms: Vec<f32>,
    search_type: AqSearchType,
    norm_min: f32,
    norm_max: f32,
    /// The norms a table-coded norm stands for (Faiss's `qnorm`).
    norm_table: Vec<f32>,
    /// The two 16-entry codebooks behind a 2×4-bit norm (Faiss's `norm_tabs`).
    norm_tabs: Vec<f32>,
    trained: bool,
    kind: AqKind,
    /// The bits of every codebook when they are all the same (the scan's fast paths).
    uniform_bits: Option<usize>,
}

impl AdditiveQuantizer {
    /// An untrained residual quantizer of `d`-dimensional vectors with one codebook of
    /// `2^nbits[m]` entries per level (1 to 16 bits each).
    pub fn residual(d: usize, nbits: Vec<usize>, search_type: AqSearchType) -> Result<Self> {
        Self::whole(d, nbits, search_type, AqKind::Residual(RqParams::default()))
    }

    /// An untrained local-search quantizer: `m` codebooks of `2^nbits` entries.
    pub fn local_search(
        d: usize,
        m: usize,
        nbits: usize,
        search_type: AqSearchType,
    ) -> Result<Self> {
        lsq::check_size(m, nbits)?;
        Self::whole(
            d,
            vec![nbits; m],
            search_type,
            AqKind::LocalSearch(LsqParams::default()),
        )
    }

    /// An untrained product residual quantizer: `nsplits` parts of `d / nsplits`
    /// dimensions, each with `msub` codebooks of `2^nbits` entries.
    pub fn product_residual(
        d: usize,
        nsplits: usize,
        msub: usize,
        nbits: usize,
        search_type: AqSearchType,
    ) -> Result<Self> {
        let dsub = split_dim(d, nsplits)?;
        let subs = (0..nsplits)
            .map(|_| Self::residual(dsub, vec![nbits; msub], AqSearchType::Decompress))
            .collect::<Result<Vec<_>>>()?;
        Self::product(d, subs, search_type)
    }

    /// An untrained product local-search quantizer (see [`Self::product_residual`]).
    pub fn product_local_search(
        d: usize,
        nsplits: usize,
        msub: usize,
        nbits: usize,
        search_type: AqSearchType,
    ) -> Result<Self> {
        let dsub = split_dim(d, nsplits)?;
        let subs = (0..nsplits)
            .map(|_| Self::local_search(dsub, msub, nbits, AqSearchType::Decompress))
            .collect::<Result<Vec<_>>>()?;
        Self::product(d, subs, search_type)
    }

    /// A product quantizer over `subs`, which split the `d` dimensions in order. When
    /// every sub-quantizer is trained the product is too, with their codebooks.
    pub fn product(
        d: usize,
        subs: Vec<AdditiveQuantizer>,
        search_type: AqSearchType,
    ) -> Result<Self> {
        if subs.is_empty() || subs.iter().map(|s| s.d).sum::<usize>() != d {
            return Err(Error::invalid(format!(
                "a product quantizer of d = {d} needs sub-quantizers whose dimensions sum to \
                 d; got {:?}",
                subs.iter().map(|s| s.d).collect::<Vec<_>>()
            )));
        }
        if subs
            .iter()
            .any(|s| matches!(s.kind, AqKind::Product(_)) || s.search_type.norm_bits() > 0)
        {
            return Err(Error::invalid(
                "a product quantizer's parts are residual or local-search quantizers without a norm",
            ));
        }
        let (mut nbits, mut spans) = (Vec::new(), Vec::new());
        let mut first = 0;
        for s in &subs {
            nbits.extend_from_slice(&s.nbits);
            spans.extend(std::iter::repeat_n((first, s.d), s.m()));
            first += s.d;
        }
        let mut aq = Self::with_levels(d, nbits, spans, search_type, AqKind::Product(Vec::new()))?;
        if subs.iter().all(|s| s.trained) {
            let cb: Vec<f32> = subs
                .iter()
                .flat_map(|s| s.codebooks.iter().copied())
                .collect();
            aq.set_codebooks(cb)?;
        }
        aq.kind = AqKind::Product(subs);
        Ok(aq)
    }

    fn whole(d: usize, nbits: Vec<usize>, st: AqSearchType, kind: AqKind) -> Result<Self> {
        let spans = vec![(0, d); nbits.len()];
        Self::with_levels(d, nbits, spans, st, kind)
    }

    fn with_levels(
        d: usize,
        nbits: Vec<usize>,
        spans: Vec<(usize, usize)>,
        search_type: AqSearchType,
        kind: AqKind,
    ) -> Result<Self> {
        if d == 0 || nbits.is_empty() {
            return Err(Error::invalid(format!(
                "an additive quantizer needs d ≥ 1 and at least one codebook, got d = {d}, M = {}",
                nbits.len()
            )));
        }
        if let Some(b) = nbits.iter().find(|&&b| !(1..=16).contains(&b)) {
            return Err(Error::invalid(format!(
                "additive-quantizer codebooks have 1 to 16 bits, got {b}"
            )));
        }
        if !search_type.is_supported() {
            return Err(Error::Unsupported(format!(
                "additive-quantizer search type {search_type:?} is not searched by fathom (nor \
                 by Faiss); use a _N… norm suffix or none"
            )));
        }
        let (mut offsets, mut starts) = (vec![0usize], vec![0usize]);
        for (&b, &(_, len)) in nbits.iter().zip(&spans) {
            offsets.push(offsets[offsets.len() - 1] + (1 << b));
            starts.push(starts[starts.len() - 1] + (1 << b) * len);
        }
        let uniform_bits = nbits.iter().all(|&x| x == nbits[0]).then_some(nbits[0]);
        Ok(AdditiveQuantizer {
            uniform_bits,
            d,
            nbits,
            offsets,
            spans,
            starts,
            codebooks: Vec::new(),
            codebook_norms: Vec::new(),
            search_type,
            norm_min: f32::NAN,
            norm_max: f32::NAN,
            norm_table: Vec::new(),
            norm_tabs: Vec::new(),
            trained: false,
            kind,
        })
    }

    /// Sets trained codebooks (as read from a file): `codebook_len()` floats, level by
    /// level, each entry as wide as its level's span.
    pub fn set_codebooks(&mut self, codebooks: Vec<f32>) -> Result<()> {
        if codebooks.len() != self.codebook_len() {
            return Err(Error::invalid(format!(
                "additive-quantizer codebooks hold {} floats; these levels take {}",
                codebooks.len(),
                self.codebook_len()
            )));
        }
        self.codebook_norms = (0..self.m())
            .flat_map(|m| {
                let len = self.spans[m].1;
                self.codebooks_of(m, &codebooks)
                    .chunks_exact(len)
                    .map(sq_norm)
                    .collect::<Vec<_>>()
            })
            .collect();
        self.codebooks = codebooks;
        self.trained = true;
        Ok(())
    }

    /// Sets the norm encoding's trained state (as read from a file): the training norms'
    /// range, and for table-coded norms the table and the 2×4-bit codebooks behind it.
    pub fn set_norm_state(
        &mut self,
        norm_min: f32,
        norm_max: f32,
        norm_table: Vec<f32>,
        norm_tabs: Vec<f32>,
    ) -> Result<()> {
        norm::check_state(self.search_type, &norm_table, &norm_tabs, self.trained)?;
        self.norm_min = norm_min;
        self.norm_max = norm_max;
        self.norm_table = norm_table;
        self.norm_tabs = norm_tabs;
        Ok(())
    }

    /// How codes are chosen, with the training settings.
    pub fn kind(&self) -> &AqKind {
        &self.kind
    }
    /// The training settings, to change before training.
    pub fn kind_mut(&mut self) -> &mut AqKind {
        &mut self.kind
    }
    /// The residual-quantizer settings (of every part of a product), if this is one.
    pub fn set_max_beam_size(&mut self, beam: usize) -> bool {
        match &mut self.kind {
            AqKind::Residual(p) => {
                p.max_beam_size = beam;
                true
            }
            AqKind::Product(subs) => subs
                .iter_mut()
                .fold(false, |_, s| s.set_max_beam_size(beam)),
            AqKind::LocalSearch(_) => false,
        }
    }
    /// The residual-quantizer beam width, if this is one (or a product of them).
    pub fn max_beam_size(&self) -> Option<usize> {
        match &self.kind {
            AqKind::Residual(p) => Some(p.max_beam_size),
            AqKind::Product(subs) => subs.first().and_then(|s| s.max_beam_size()),
            AqKind::LocalSearch(_) => None,
        }
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
    /// Floats over all codebooks.
    pub fn codebook_len(&self) -> usize {
        self.starts[self.m()]
    }
    /// The codebooks, level by level (empty before training).
    pub fn codebooks(&self) -> &[f32] {
        &self.codebooks
    }
    fn codebooks_of<'a>(&self, m: usize, cb: &'a [f32]) -> &'a [f32] {
        &cb[self.starts[m]..self.starts[m + 1]]
    }
    /// The search type.
    pub fn search_type(&self) -> AqSearchType {
        self.search_type
    }
    /// The training norms' range (`NaN` before training), for the quantized norms.
    pub fn norm_range(&self) -> (f32, f32) {
        (self.norm_min, self.norm_max)
    }
    /// The norms a table-coded norm stands for (empty for other search types).
    pub fn norm_table(&self) -> &[f32] {
        &self.norm_table
    }
    /// The 32 floats of the two 1-D codebooks behind a 2×4-bit norm (else empty).
    pub fn norm_tabs(&self) -> &[f32] {
        &self.norm_tabs
    }
    /// Whether the codebooks are trained.
    pub fn is_trained(&self) -> bool {
        self.trained
    }
    /// The bits of every codebook when they are all the same.
    #[inline]
    fn uniform_bits(&self) -> Option<usize> {
        self.uniform_bits
    }
    /// Bits of level codes per vector.
    pub fn code_bits(&self) -> usize {
        self.nbits.iter().sum()
    }
    /// Bytes per code: the level codes and the norm, rounded up.
    pub fn code_size(&self) -> usize {
        (self.code_bits() + self.search_type.norm_bits()).div_ceil(8)
    }
    fn entry(&self, m: usize, k: usize) -> &[f32] {
        let len = self.spans[m].1;
        &self.codebooks[self.starts[m] + k * len..][..len]
    }

    /// Trains the codebooks (and the norm encoding) on the rows of `x`.
    pub fn train(&mut self, x: &[f32]) -> Result<()> {
        let d = self.d;
        let n = check::vectors("training set", x, d)?;
        check::finite("training set", x, d)?;
        if n == 0 {
            return Err(Error::invalid("the training set is empty"));
        }
        self.trained = false;
        let norms = match &self.kind {
            AqKind::Residual(p) => {
                let p = p.clone();
                self.train_residual(x, &p)?
            }
            AqKind::LocalSearch(p) => {
                let p = p.clone();
                let codes = self.train_local_search(x, &p)?;
                self.reconstruction_norms(&codes, None)
            }
            AqKind::Product(_) => {
                let AqKind::Product(mut subs) =
                    std::mem::replace(&mut self.kind, AqKind::Product(Vec::new()))
                else {
                    unreachable!("matched above")
                };
                let mut first = 0;
                let trained = subs.iter_mut().try_for_each(|s| {
                    let part = columns(x, d, first, s.d);
                    first += s.d;
                    s.train(&part)
                });
                let cb: Vec<f32> = subs
                    .iter()
                    .flat_map(|s| s.codebooks.iter().copied())
                    .collect();
                self.kind = AqKind::Product(subs);
                trained?;
                self.set_codebooks(cb)?;
                self.encode_levels(x).1
            }
        };
        self.trained = true;
        self.train_norm(&norms)
    }

    /// The squared norms of the vectors that unpacked level codes (`n × M`) stand for.
    fn reconstruction_norms(&self, codes: &[u32], offsets: Option<&[f32]>) -> Vec<f32> {
        codes
            .par_chunks(self.m())
            .enumerate()
            .map_init(
                || vec![0.0f32; self.d],
                |y, (i, c)| {
                    self.decode_levels(c, y);
                    if let Some(o) = offsets {
                        y.iter_mut()
                            .zip(&o[i * self.d..])
                            .for_each(|(v, o)| *v += o);
                    }
                    sq_norm(y)
                },
            )
            .collect()
    }

    /// The squared norms of `decode(encode(x)) + offsets`, row by row: what an IVF index
    /// whose codes are residuals but whose norms cover the centroid trains its norm
    /// encoding on.
    pub fn reconstruction_norms_with_offsets(
        &self,
        x: &[f32],
        offsets: &[f32],
    ) -> Result<Vec<f32>> {
        if !self.trained {
            return Err(Error::NotTrained("additive-quantizer encoding".into()));
        }
        let n = check::vectors("encoded", x, self.d)?;
        check::finite("encoded", x, self.d)?;
        check::output_len("offsets", offsets.len(), n * self.d)?;
        Ok(self.reconstruction_norms(&self.encode_levels(x).0, Some(offsets)))
    }

    /// The vector that one row of level codes (one per codebook, not bit-packed) stands
    /// for; zero before training.
    pub fn decode_levels(&self, codes: &[u32], out: &mut [f32]) {
        out.fill(0.0);
        if self.codebooks.is_empty() {
            return;
        }
        for (m, &c) in codes.iter().enumerate() {
            let (first, len) = self.spans[m];
            for (o, v) in out[first..first + len]
                .iter_mut()
                .zip(self.entry(m, c as usize))
            {
                *o += v;
            }
        }
    }

    /// The level codes of each row of `x` (`n × M`) and the squared norms of their
    /// reconstructions.
    fn encode_levels(&self, x: &[f32]) -> (Vec<u32>, Vec<f32>) {
        match &self.kind {
            AqKind::Residual(p) => self.encode_residual(x, p),
            AqKind::LocalSearch(p) => {
                let codes = self.encode_local_search(x, p);
                let norms = self.reconstruction_norms(&codes, None);
                (codes, norms)
            }
            AqKind::Product(subs) => {
                let (d, mm) = (self.d, self.m());
                let n = x.len() / d;
                let mut codes = vec![0u32; n * mm];
                let mut norms = vec![0.0f32; n];
                let (mut m0, mut first) = (0, 0);
                for s in subs {
                    let (c, nr) = s.encode_levels(&columns(x, d, first, s.d));
                    first += s.d;
                    for i in 0..n {
                        codes[i * mm + m0..][..s.m()].copy_from_slice(&c[i * s.m()..][..s.m()]);
                        // The parts cover disjoint dimensions: their squared norms add up.
                        norms[i] += nr[i];
                    }
                    m0 += s.m();
                }
                (codes, norms)
            }
        }
    }

    /// Codes the rows of `x` into `codes` (`n × code_size` bytes).
    pub fn encode(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        if !self.trained {
            return Err(Error::NotTrained("additive-quantizer encoding".into()));
        }
        let n = check::vectors("encoded", x, self.d)?;
        check::finite("encoded", x, self.d)?;
        let cs = self.code_size();
        check::output_len("additive-quantizer code buffer", codes.len(), n * cs)?;
        let (levels, norms) = self.encode_levels(x);
        self.pack(&levels, &norms, codes);
        Ok(())
    }

    /// [`AdditiveQuantizer::encode`] of residuals whose stored norm is that of the full
    /// vector: `‖decode(code) + offset‖²` for each row's `offsets` row (Faiss's
    /// `compute_codes_add_centroids`, for codes searched with one table per query).
    pub fn encode_with_offsets(&self, x: &[f32], offsets: &[f32], codes: &mut [u8]) -> Result<()> {
        if !self.trained {
            return Err(Error::NotTrained("additive-quantizer encoding".into()));
        }
        let n = check::vectors("encoded", x, self.d)?;
        check::finite("encoded", x, self.d)?;
        check::output_len("offsets", offsets.len(), n * self.d)?;
        check::output_len(
            "additive-quantizer code buffer",
            codes.len(),
            n * self.code_size(),
        )?;
        let (levels, _) = self.encode_levels(x);
        let norms = self.reconstruction_norms(&levels, Some(offsets));
        self.pack(&levels, &norms, codes);
        Ok(())
    }

    /// Retrains the norm encoding on other squared norms (Faiss's `train_norm`: an IVF
    /// index whose norms cover the centroid too).
    pub fn train_norm_on(&mut self, norms: &[f32]) -> Result<()> {
        if norms.is_empty() || norms.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("norms to train on: none, or not finite"));
        }
        self.train_norm(norms)
    }

    /// Packs unpacked level codes and reconstruction norms into Faiss's bit stream.
    fn pack(&self, levels: &[u32], norms: &[f32], codes: &mut [u8]) {
        let (cs, mm) = (self.code_size(), self.m());
        let nb = self.search_type.norm_bits();
        for (i, code) in codes.chunks_exact_mut(cs).enumerate() {
            code.fill(0);
            let mut w = BitWriter::new(code);
            for (m, &c) in levels[i * mm..(i + 1) * mm].iter().enumerate() {
                w.write(c as u64, self.nbits[m]);
            }
            if nb > 0 {
                w.write(self.encode_norm(norms[i]), nb);
            }
        }
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
            let (first, len) = self.spans[m];
            for (o, v) in out[first..first + len].iter_mut().zip(self.entry(m, c)) {
                *o += v;
            }
        }
    }

    /// `lut[t] = ⟨q, entry t⟩` over all codebooks (Faiss's `compute_LUT`), with one
    /// matrix product per run of levels over the same dimensions.
    pub fn compute_lut(&self, q: &[f32]) -> Vec<f32> {
        let mut lut = vec![0.0f32; self.total_codebook_size()];
        if self.codebooks.is_empty() {
            return lut;
        }
        let mut m = 0;
        while m < self.m() {
            let span = self.spans[m];
            let end = m + self.spans[m..].iter().take_while(|&&s| s == span).count();
            let (first, len) = span;
            fathom_kernels::matmul_abt(
                &q[first..first + len],
                &self.codebooks[self.starts[m]..self.starts[end]],
                len,
                1.0,
                &mut lut[self.offsets[m]..self.offsets[end]],
            )
            .expect("a query of dimension d");
            m = end;
        }
        lut
    }

    /// A query's score against a code from its table (Faiss's `compute_1_distance_LUT`):
    /// for inner product `Σ lut`; for L2, without the query's own `‖q‖²`, `norm − 2·Σ lut`
    /// (or Faiss's `−Σ lut` when no norm is stored).
    #[inline]
    pub fn lut_score(&self, code: &[u8], lut: &[f32], metric: MetricType) -> f32 {
        // This runs once per code scanned: whole bytes and nibble pairs are read straight
        // from the code against fixed-size table slices (no bounds checks, two
        // accumulators), other widths through the bit reader.
        let mm = self.m();
        let acc = match self.uniform_bits() {
            Some(8) => {
                let mut acc = [0.0f32; 2];
                for (i, (t, &c)) in lut.chunks_exact(256).zip(&code[..mm]).enumerate() {
                    let t: &[f32; 256] = t.try_into().expect("256 entries");
                    acc[i & 1] += t[c as usize];
                }
                acc[0] + acc[1]
            }
            Some(4) => {
                let mut acc = [0.0f32; 2];
                for (t, &c) in lut.chunks_exact(32).zip(&code[..mm / 2]) {
                    let t: &[f32; 32] = t.try_into().expect("two levels of 16");
                    acc[0] += t[(c & 15) as usize];
                    acc[1] += t[16 + (c >> 4) as usize];
                }
                if mm % 2 == 1 {
                    acc[0] += lut[16 * (mm - 1) + (code[mm / 2] & 15) as usize];
                }
                acc[0] + acc[1]
            }
            _ => {
                let mut r = BitReader::new(code);
                self.nbits
                    .iter()
                    .zip(&self.offsets)
                    .map(|(&b, &o)| lut[o + r.read(b).unwrap_or(0) as usize])
                    .sum()
            }
        };
        if metric == MetricType::InnerProduct {
            return acc;
        }
        match self.search_type {
            AqSearchType::LutNonorm | AqSearchType::Decompress => -acc,
            st => self.decode_norm(self.norm_field(code, st.norm_bits())) - 2.0 * acc,
        }
    }

    /// The norm field of a code: a whole byte or float when the level codes end on a
    /// byte boundary, else read bit by bit.
    #[inline]
    fn norm_field(&self, code: &[u8], bits: usize) -> u64 {
        let at = match self.uniform_bits {
            Some(b) => b * self.m(),
            None => self.code_bits(),
        };
        if at % 8 == 0 {
            let b = at / 8;
            match bits {
                8 => return code[b] as u64,
                32 => {
                    return u32::from_le_bytes([code[b], code[b + 1], code[b + 2], code[b + 3]])
                        as u64;
                }
                _ => {}
            }
        }
        let mut r = BitReader::new(code);
        r.skip(at);
        r.read(bits).unwrap_or(0)
    }
}

fn split_dim(d: usize, nsplits: usize) -> Result<usize> {
    if nsplits == 0 || !d.is_multiple_of(nsplits) {
        return Err(Error::invalid(format!(
            "a product quantizer splits d = {d} into equal parts; {nsplits} parts do not divide it"
        )));
    }
    Ok(d / nsplits)
}

/// Columns `first..first + len` of the `d`-wide rows of `x`.
fn columns(x: &[f32], d: usize, first: usize, len: usize) -> Vec<f32> {
    x.chunks_exact(d)
        .flat_map(|r| r[first..first + len].iter().copied())
        .collect()
}

fn sq_norm(v: &[f32]) -> f32 {
    v.iter().map(|a| a * a).sum()
}

impl crate::Codec for AdditiveQuantizer {
    fn dim(&self) -> usize {
        self.d
    }
    fn code_size(&self) -> usize {
        AdditiveQuantizer::code_size(self)
    }
    fn compute_codes_into(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        self.encode(x, codes)
    }
}

#[cfg(test)]
mod tests;
