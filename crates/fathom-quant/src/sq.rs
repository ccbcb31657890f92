//! The scalar quantizer (Faiss's `ScalarQuantizer`): each dimension coded on its own.

use fathom_core::{Error, MetricType, Result, check};
use fathom_kernels::codes::sq::{self as kern, Components};
use rayon::prelude::*;

/// How each component is coded, with Faiss's names and numeric codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantizerType {
    /// 8 bits per component, a trained range per dimension (`QT_8bit`, factory `SQ8`).
    QT8bit = 0,
    /// 4 bits per component, a range per dimension (`QT_4bit`, `SQ4`).
    QT4bit = 1,
    /// 8 bits, one range shared by all dimensions (`QT_8bit_uniform`).
    QT8bitUniform = 2,
    /// 4 bits, one shared range (`QT_4bit_uniform`).
    QT4bitUniform = 3,
    /// IEEE half precision (`QT_fp16`, `SQfp16`); no training.
    Fp16 = 4,
    /// The integer part of values in 0..=255, stored as a byte (`QT_8bit_direct`); no
    /// training. Values outside saturate to 0 or 255, where Faiss's C++ cast is undefined
    /// behaviour (on x86 it wraps, −1.3 → 255: an IVF's negative residuals, which its
    /// default `by_residual` encodes, decode about 255 away there).
    QT8bitDirect = 5,
    /// 6 bits per component, a range per dimension (`QT_6bit`, `SQ6`).
    QT6bit = 6,
    /// bfloat16 (`QT_bf16`, `SQbf16`); no training.
    Bf16 = 7,
    /// Values in -128..=127 stored as a byte offset by 128 (`QT_8bit_direct_signed`); no
    /// training. Values outside saturate, as for [`QuantizerType::QT8bitDirect`].
    QT8bitDirectSigned = 8,
}

impl QuantizerType {
    /// Every type, in Faiss's numbering.
    pub const ALL: [QuantizerType; 9] = [
        QuantizerType::QT8bit,
        QuantizerType::QT4bit,
        QuantizerType::QT8bitUniform,
        QuantizerType::QT4bitUniform,
        QuantizerType::Fp16,
        QuantizerType::QT8bitDirect,
        QuantizerType::QT6bit,
        QuantizerType::Bf16,
        QuantizerType::QT8bitDirectSigned,
    ];

    /// Faiss's numeric code (`qtype` in index files).
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The type with Faiss's numeric code `code`.
    pub fn from_code(code: u32) -> Result<Self> {
        Self::ALL.get(code as usize).copied().ok_or_else(|| {
            Error::Unsupported(format!(
                "scalar quantizer type {code}: fathom knows types 0 to 8"
            ))
        })
    }

    /// The factory suffix after `SQ` ("8", "4", "8_uniform"... see [`QuantizerType::parse`]).
    pub fn factory_name(self) -> &'static str {
        match self {
            QuantizerType::QT8bit => "8",
            QuantizerType::QT4bit => "4",
            QuantizerType::QT8bitUniform => "8_uniform",
            QuantizerType::QT4bitUniform => "4_uniform",
            QuantizerType::Fp16 => "fp16",
            QuantizerType::QT8bitDirect => "8_direct",
            QuantizerType::QT6bit => "6",
            QuantizerType::Bf16 => "bf16",
            QuantizerType::QT8bitDirectSigned => "8_direct_signed",
        }
    }

    /// Parses a factory suffix (`SQ8` → "8", `SQfp16` → "fp16", …).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.factory_name() == s)
    }

    fn components(self) -> Components {
        match self {
            QuantizerType::QT8bit
            | QuantizerType::QT8bitUniform
            | QuantizerType::QT8bitDirect
            | QuantizerType::QT8bitDirectSigned => Components::U8,
            QuantizerType::QT4bit | QuantizerType::QT4bitUniform => Components::U4,
            QuantizerType::QT6bit => Components::U6,
            QuantizerType::Fp16 => Components::F16,
            QuantizerType::Bf16 => Components::Bf16,
        }
    }

    /// Levels of the integer codes that are trained (`2^bits`), `None` for the others.
    fn levels(self) -> Option<u32> {
        match self {
            QuantizerType::QT8bit | QuantizerType::QT8bitUniform => Some(256),
            QuantizerType::QT4bit | QuantizerType::QT4bitUniform => Some(16),
            QuantizerType::QT6bit => Some(64),
            _ => None,
        }
    }

    fn is_uniform(self) -> bool {
        matches!(
            self,
            QuantizerType::QT8bitUniform | QuantizerType::QT4bitUniform
        )
    }
}

/// How the trained range of a dimension is estimated (Faiss's `RangeStat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RangeStat {
    /// `[min − r·(max−min), max + r·(max−min)]` (default, `r = 0`).
    #[default]
    MinMax = 0,
    /// `[mean − r·std, mean + r·std]`.
    MeanStd = 1,
    /// The `r` and `1 − r` quantiles.
    Quantiles = 2,
    /// The range minimising the reconstruction error (alternating optimisation).
    Optim = 3,
}

/// A quantizer coding each dimension independently into `bits` bits (or a half-precision
/// float). Codes are Faiss's byte for byte; distances to codes are computed from the
/// codes directly ([`ScalarQuantizer::distances`]).
///
/// ```
/// use fathom_quant::{Codec, QuantizerType, ScalarQuantizer};
/// let x: Vec<f32> = (0..400).map(|i| (i % 37) as f32 * 0.1).collect(); // 100 × 4
/// let mut sq = ScalarQuantizer::new(4, QuantizerType::QT8bit).unwrap();
/// sq.train(&x).unwrap();
/// let codes = sq.compute_codes(&x).unwrap();
/// let back = sq.decode(&codes).unwrap();
/// assert!(back.iter().zip(&x).all(|(a, b)| (a - b).abs() < 0.01));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarQuantizer {
    d: usize,
    qtype: QuantizerType,
    /// Range estimator used by [`ScalarQuantizer::train`].
    pub rangestat: RangeStat,
    /// Its argument `r`.
    pub rangestat_arg: f32,
    /// Faiss's `trained`: `[vmin, vdiff]` (uniform) or `[vmin × d, vdiff × d]`.
    trained: Vec<f32>,
    is_trained: bool,
    /// Component `i` decodes to `b[i] + a[i]·c` (raw component `c`).
    a: Vec<f32>,
    b: Vec<f32>,
}

impl ScalarQuantizer {
    /// A quantizer of `d`-dimensional vectors of type `qtype`.
    pub fn new(d: usize, qtype: QuantizerType) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("dimension must be at least 1"));
        }
        let mut sq = ScalarQuantizer {
            d,
            qtype,
            rangestat: RangeStat::MinMax,
            rangestat_arg: 0.0,
            trained: Vec::new(),
            is_trained: qtype.levels().is_none(),
            a: vec![1.0; d],
            b: vec![0.0; d],
        };
        if qtype == QuantizerType::QT8bitDirectSigned {
            sq.b.fill(-128.0);
        }
        Ok(sq)
    }

    /// Vector dimension.
    pub fn d(&self) -> usize {
        self.d
    }
    /// The coding type.
    pub fn qtype(&self) -> QuantizerType {
        self.qtype
    }
    /// Bytes per code.
    pub fn code_size(&self) -> usize {
        self.qtype.components().code_size(self.d)
    }
    /// Whether codes can be computed.
    pub fn is_trained(&self) -> bool {
        self.is_trained
    }
    /// Faiss's trained range parameters (empty for the types without training).
    pub fn trained(&self) -> &[f32] {
        &self.trained
    }

    /// Sets the trained parameters directly (as read from a file): `[vmin, vdiff]` for
    /// the uniform types, `[vmin × d, vdiff × d]` for the per-dimension ones.
    pub fn set_trained(&mut self, trained: Vec<f32>) -> Result<()> {
        let Some(levels) = self.qtype.levels() else {
            if trained.is_empty() {
                return Ok(());
            }
            return Err(Error::invalid(format!(
                "scalar quantizer type {:?} takes no trained parameters, got {}",
                self.qtype,
                trained.len()
            )));
        };
        let expected = if self.qtype.is_uniform() {
            2
        } else {
            2 * self.d
        };
        if trained.len() != expected {
            return Err(Error::DimensionMismatch {
                what: "scalar quantizer trained parameters".into(),
                got: trained.len(),
                expected: expected.to_string(),
            });
        }
        if trained.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("scalar quantizer range is not finite"));
        }
        let scale = (levels - 1) as f32;
        for i in 0..self.d {
            let (vmin, vdiff) = if self.qtype.is_uniform() {
                (trained[0], trained[1])
            } else {
                (trained[i], trained[self.d + i])
            };
            // (c + 0.5) / scale · vdiff + vmin, as Faiss's codecs decode.
            self.a[i] = vdiff / scale;
            self.b[i] = vmin + 0.5 * vdiff / scale;
        }
        self.trained = trained;
        self.is_trained = true;
        Ok(())
    }

    /// Learns the value range(s) from `x` with `self.rangestat`; a no-op for fp16, bf16
    /// and the direct types.
    pub fn train(&mut self, x: &[f32]) -> Result<()> {
        let Some(levels) = self.qtype.levels() else {
            // Nothing is learned: only the shape matters (a pass over the data to look
            // for NaN would cost more than the training).
            check::vectors("scalar quantizer training set", x, self.d)?;
            return Ok(());
        };
        let n = check::nonempty_finite("scalar quantizer training set", x, self.d)?;
        let (rs, arg) = (self.rangestat, self.rangestat_arg);
        let trained = if self.qtype.is_uniform() {
            let (vmin, vdiff) = train_range(rs, arg, &mut x.to_vec(), levels);
            vec![vmin, vdiff]
        } else {
            if rs == RangeStat::MinMax {
                return self.set_trained(min_max_ranges(x, self.d, arg));
            }
            // Columns made contiguous once: gathering each with a stride of d would walk
            // the whole matrix d times.
            let mut cols = transpose(x, n, self.d);
            let ranges: Vec<(f32, f32)> = cols
                .par_chunks_mut(n)
                .map(|col| train_range(rs, arg, col, levels))
                .collect();
            ranges
                .iter()
                .map(|r| r.0)
                .chain(ranges.iter().map(|r| r.1))
                .collect()
        };
        self.set_trained(trained)
    }

    fn check_trained(&self, what: &str) -> Result<()> {
        if self.is_trained {
            Ok(())
        } else {
            Err(Error::NotTrained(format!("scalar quantizer {what}")))
        }
    }

    /// Codes one vector into `code` (`code_size` bytes).
    pub fn encode_one(&self, x: &[f32], code: &mut [u8]) {
        self.encode_rows(&self.ranges(), x, code);
    }

    /// The trained range of every dimension, `(vmin, vdiff)` as `d`-long slices (the
    /// uniform types repeat their single range); empty for the untrained types.
    fn ranges(&self) -> (Vec<f32>, Vec<f32>) {
        match self.qtype.levels() {
            None => (Vec::new(), Vec::new()),
            Some(_) if self.qtype.is_uniform() => {
                (vec![self.trained[0]; self.d], vec![self.trained[1]; self.d])
            }
            Some(_) => (
                self.trained[..self.d].to_vec(),
                self.trained[self.d..2 * self.d].to_vec(),
            ),
        }
    }

    /// Codes the rows of `x` into `codes`; `ranges` is [`Self::ranges`].
    fn encode_rows(&self, ranges: &(Vec<f32>, Vec<f32>), x: &[f32], codes: &mut [u8]) {
        let (d, cs) = (self.d, self.code_size());
        match self.qtype {
            QuantizerType::Fp16 => {
                let mut h = vec![half::f16::ZERO; x.len()];
                fathom_kernels::f32_to_f16(x, &mut h).expect("same lengths");
                for (c, v) in codes.chunks_exact_mut(2).zip(&h) {
                    c.copy_from_slice(&v.to_bits().to_le_bytes());
                }
            }
            QuantizerType::Bf16 => {
                for (c, &v) in codes.chunks_exact_mut(2).zip(x) {
                    // Faiss's encode_bf16: round half up on the bit pattern.
                    let bits = (v.to_bits().wrapping_add(0x8000) >> 16) as u16;
                    c.copy_from_slice(&bits.to_le_bytes());
                }
            }
            QuantizerType::QT8bitDirect => {
                for (c, &v) in codes.iter_mut().zip(x) {
                    *c = v as u8;
                }
            }
            QuantizerType::QT8bitDirectSigned => {
                for (c, &v) in codes.iter_mut().zip(x) {
                    *c = (v + 128.0) as u8;
                }
            }
            qt => {
                let scale = (qt.levels().expect("trained types have levels") - 1) as f32;
                let (vmin, vdiff) = ranges;
                let mut levels = vec![0u8; d];
                for (code, xi) in codes.chunks_exact_mut(cs).zip(x.chunks_exact(d)) {
                    if qt.components() == Components::U8 {
                        kern::quantize_levels(xi, vmin, vdiff, scale, code);
                        continue;
                    }
                    kern::quantize_levels(xi, vmin, vdiff, scale, &mut levels);
                    code.fill(0);
                    for (i, &l) in levels.iter().enumerate() {
                        match qt.components() {
                            Components::U4 => code[i / 2] |= l << ((i & 1) * 4),
                            _ => put6(code, i, l as u32),
                        }
                    }
                }
            }
        }
    }

    /// Decodes one code into `x` (`d` floats).
    pub fn decode_one(&self, code: &[u8], x: &mut [f32]) {
        self.decode_into(&code[..self.code_size()], x);
    }

    /// Decodes `n` codes (`n × code_size` bytes) into `out` (`n × d` floats), sixteen
    /// components a step; panics when the sizes disagree.
    pub fn decode_into(&self, codes: &[u8], out: &mut [f32]) {
        kern::decode(self.qtype.components(), &self.a, &self.b, codes, out);
    }

    /// Decodes codes (`n × code_size` bytes) into `n × d` floats.
    pub fn decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        self.check_trained("decoding")?;
        let cs = self.code_size();
        let n = check::codes("scalar quantizer codes", codes, cs)?;
        let mut out = vec![0.0f32; n * self.d];
        out.par_chunks_mut(self.d)
            .zip(codes.par_chunks(cs))
            .for_each(|(x, c)| self.decode_one(c, x));
        Ok(out)
    }

    /// Prepares a query for [`ScalarQuantizer::distances`].
    pub fn query<'a>(&'a self, metric: MetricType, q: &[f32]) -> SqQuery<'a> {
        match metric {
            MetricType::InnerProduct => SqQuery {
                sq: self,
                ip: true,
                v: q.iter().zip(&self.a).map(|(x, a)| x * a).collect(),
                bias: q.iter().zip(&self.b).map(|(x, b)| x * b).sum(),
            },
            _ => SqQuery {
                sq: self,
                ip: false,
                v: q.iter().zip(&self.b).map(|(x, b)| x - b).collect(),
                bias: 0.0,
            },
        }
    }
}

/// A query prepared against a [`ScalarQuantizer`]: distances to codes without decoding.
#[derive(Debug, Clone)]
pub struct SqQuery<'a> {
    sq: &'a ScalarQuantizer,
    ip: bool,
    v: Vec<f32>,
    bias: f32,
}

impl SqQuery<'_> {
    /// Squared L2 distances (or inner products) to the codes of `codes`, into `out`.
    pub fn distances(&self, codes: &[u8], out: &mut [f32]) {
        let comp = self.sq.qtype.components();
        if self.ip {
            kern::dot(comp, &self.v, codes, out);
            if self.bias != 0.0 {
                out.iter_mut().for_each(|o| *o += self.bias);
            }
        } else {
            kern::l2(comp, &self.v, &self.sq.a, codes, out);
        }
    }
}

fn put6(code: &mut [u8], i: usize, bits: u32) {
    let g = &mut code[(i / 4) * 3..];
    let bits = bits & 63;
    match i & 3 {
        0 => g[0] |= bits as u8,
        1 => {
            g[0] |= (bits << 6) as u8;
            g[1] |= (bits >> 2) as u8;
        }
        2 => {
            g[1] |= (bits << 4) as u8;
            g[2] |= (bits >> 4) as u8;
        }
        _ => g[2] |= (bits << 2) as u8,
    }
}

/// Faiss's `train_Uniform` on one set of values: returns `(vmin, vdiff)`.
/// Per-dimension `[vmin × d, vdiff × d]` by min-max, in one row-major pass (parallel
/// over blocks of rows): the same values `train_range(MinMax)` gives column by column.
fn min_max_ranges(x: &[f32], d: usize, arg: f32) -> Vec<f32> {
    let fresh = || (vec![f32::INFINITY; d], vec![f32::NEG_INFINITY; d]);
    let (lo, hi) = x
        .par_chunks(d * 1024)
        .fold(fresh, |(mut lo, mut hi), rows| {
            for r in rows.chunks_exact(d) {
                for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(r) {
                    *l = l.min(v);
                    *h = h.max(v);
                }
            }
            (lo, hi)
        })
        .reduce(fresh, |(mut lo, mut hi), (l2, h2)| {
            for (a, b) in lo.iter_mut().zip(&l2) {
                *a = a.min(*b);
            }
            for (a, b) in hi.iter_mut().zip(&h2) {
                *a = a.max(*b);
            }
            (lo, hi)
        });
    let mut out = vec![0.0f32; 2 * d];
    for j in 0..d {
        let e = (hi[j] - lo[j]) * arg;
        let (vmin, vmax) = (lo[j] - e, hi[j] + e);
        out[j] = vmin;
        out[d + j] = vmax - vmin;
    }
    out
}

/// The `d × n` transpose of the `n × d` row-major `x`, in column blocks (parallel).
fn transpose(x: &[f32], n: usize, d: usize) -> Vec<f32> {
    const COLS: usize = 16;
    let mut out = vec![0.0f32; n * d];
    out.par_chunks_mut(n * COLS)
        .enumerate()
        .for_each(|(b, block)| {
            let j0 = b * COLS;
            let w = block.len() / n;
            for (i, row) in x.chunks_exact(d).enumerate() {
                for (c, &v) in row[j0..j0 + w].iter().enumerate() {
                    block[c * n + i] = v;
                }
            }
        });
    out
}

fn train_range(rs: RangeStat, arg: f32, x: &mut [f32], k: u32) -> (f32, f32) {
    let n = x.len();
    let (vmin, vmax) = match rs {
        RangeStat::MinMax => {
            let (lo, hi) = x
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                    (l.min(v), h.max(v))
                });
            let e = (hi - lo) * arg;
            (lo - e, hi + e)
        }
        RangeStat::MeanStd => {
            let (s, s2) = x.iter().fold((0.0f64, 0.0f64), |(s, s2), &v| {
                (s + v as f64, s2 + (v * v) as f64)
            });
            let mean = (s / n as f64) as f32;
            let var = (s2 / n as f64) as f32 - mean * mean;
            let std = if var <= 0.0 { 1.0 } else { var.sqrt() };
            (mean - std * arg, mean + std * arg)
        }
        RangeStat::Quantiles => {
            let mut o = ((arg * n as f32) as i64).max(0) as usize;
            if o > n - o {
                o = n / 2;
            }
            let lo = *x.select_nth_unstable_by(o, f32::total_cmp).1;
            let hi = *x.select_nth_unstable_by(n - 1 - o, f32::total_cmp).1;
            (lo, hi)
        }
        RangeStat::Optim => optim_range(x, k),
    };
    (vmin, vmax - vmin)
}

/// Faiss's `RS_optim`: alternately assigns values to the `k` levels of `b + a·i` and
/// refits `(a, b)` by least squares, until the error stops changing.
fn optim_range(x: &[f32], k: u32) -> (f32, f32) {
    let n = x.len() as f32;
    let (mut vmin, mut vmax, mut sx) = (f32::INFINITY, f32::NEG_INFINITY, 0.0f32);
    for &v in x {
        vmin = vmin.min(v);
        vmax = vmax.max(v);
        sx += v;
    }
    let mut b = vmin;
    let mut a = (vmax - vmin) / (k - 1) as f32;
    if a == 0.0 {
        return (vmin, vmax);
    }
    let mut last_err = -1.0f32;
    let mut same = 0;
    for _ in 0..2000 {
        let (mut sn, mut sn2, mut sxn, mut err) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
        for &xi in x {
            let ni = ((xi - b) / a + 0.5).floor().clamp(0.0, (k - 1) as f32);
            err += (xi - (ni * a + b)).powi(2);
            sn += ni;
            sn2 += ni * ni;
            sxn += ni * xi;
        }
        if err == last_err {
            same += 1;
            if same == 16 {
                break;
            }
        } else {
            last_err = err;
            same = 0;
        }
        let det = sn * sn - sn2 * n;
        if det == 0.0 {
            break;
        }
        b = (sn * sxn - sn2 * sx) / det;
        a = (sn * sx - n * sxn) / det;
    }
    (b, b + a * (k - 1) as f32)
}

impl crate::Codec for ScalarQuantizer {
    fn dim(&self) -> usize {
        self.d
    }
    fn code_size(&self) -> usize {
        ScalarQuantizer::code_size(self)
    }
    fn compute_codes_into(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        self.check_trained("encoding")?;
        let n = check::vectors("encoded", x, self.d)?;
        check::finite("encoded", x, self.d)?;
        let cs = self.code_size();
        check::output_len("scalar quantizer code buffer", codes.len(), n * cs)?;
        let ranges = self.ranges();
        const ROWS: usize = 256;
        codes
            .par_chunks_mut(cs * ROWS)
            .zip(x.par_chunks(self.d * ROWS))
            .for_each(|(c, v)| self.encode_rows(&ranges, v, c));
        Ok(())
    }
}
