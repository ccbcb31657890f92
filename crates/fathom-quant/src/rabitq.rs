//! RaBitQ (Gao & Long, SIGMOD 2024) as Faiss 1.15 codes it (`RaBitQuantizer`): a vector
//! `x` relative to a centre `c` becomes the sign bits of `r = x − c` plus two floats (its
//! norm and how well the sign vector aligns with it); a query's distance to it is
//! estimated from one popcount per bit of the query's own quantization (`qb` bits).
//! With `nb_bits > 1` (extended RaBitQ) each coordinate also gets `nb_bits − 1` more
//! bits and three more floats: a re-ranking estimate and its error bound.
//!
//! The code layout, the factors and the query quantization follow Faiss's byte for
//! byte (`faiss/impl/RaBitQuantizer.cpp`, `RaBitQUtils.cpp`,
//! `RaBitQuantizerMultiBit.cpp`), so codes written by either library decode in the
//! other; the extended factors `f_add_ex` / `f_rescale_ex` may differ from a given Faiss
//! build by a few ulp (Faiss sums them in a SIMD order that depends on the build).
//!
//! No random rotation is applied here, as in Faiss: put a `RR` transform in front for
//! data whose coordinates are not already balanced.
//!
//! ```
//! use fathom_core::MetricType;
//! use fathom_quant::rabitq::RaBitQuantizer;
//! let q = RaBitQuantizer::new(4, MetricType::L2, 1).unwrap();
//! let mut code = vec![0u8; q.code_size()];
//! q.encode(&[1.0, -1.0, 1.0, -1.0], None, &mut code).unwrap();
//! assert_eq!(code[0], 0b0101); // sign bits, coordinate j at bit j
//! let query = q.query(&[1.0, -1.0, 1.0, -1.0], None, 0, false).unwrap();
//! assert!(query.estimate(&code).abs() < 1e-5); // ±1 vectors are coded exactly
//! ```

use fathom_core::{Error, MetricType, Result};
use fathom_kernels::PairKernel;
use fathom_kernels::codes::rabitq::plane_dots;

/// Faiss's `kConstEpsilon`: the confidence factor of the error bound.
const CONST_EPSILON: f32 = 1.9;
/// Faiss's `kTightStart`: where the scaling-factor search starts, by extra bits.
const TIGHT_START: [f64; 9] = [0.0, 0.15, 0.20, 0.52, 0.59, 0.71, 0.75, 0.77, 0.81];
/// Faiss's `Z_MAX_BY_QB`: the clipping range of centred query quantization, in standard
/// deviations, by query bits.
const Z_MAX_BY_QB: [f32; 8] = [
    0.79688, 1.49375, 2.05078, 2.50938, 2.91250, 3.26406, 3.59844, 3.91016,
];

/// The RaBitQ code of `d`-dimensional vectors: sign bits, factors and (with `nb_bits >
/// 1`) extra bits per coordinate.
#[derive(Debug, Clone, PartialEq)]
pub struct RaBitQuantizer {
    d: usize,
    nb_bits: usize,
    metric: MetricType,
}

#[inline]
fn f32_at(code: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([code[at], code[at + 1], code[at + 2], code[at + 3]])
}

fn put_f32(code: &mut [u8], at: usize, v: f32) {
    code[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

impl RaBitQuantizer {
    /// The code of `d`-dimensional vectors compared with `metric` (L2 or inner product),
    /// `nb_bits` (1 to 9) bits per coordinate.
    pub fn new(d: usize, metric: MetricType, nb_bits: usize) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("RaBitQ needs a dimension d ≥ 1"));
        }
        if !(1..=9).contains(&nb_bits) {
            return Err(Error::invalid(format!(
                "RaBitQ codes have 1 to 9 bits per coordinate, got nb_bits = {nb_bits}"
            )));
        }
        if !matches!(metric, MetricType::L2 | MetricType::InnerProduct) {
            return Err(Error::invalid(format!(
                "RaBitQ compares with L2 or inner product, not {metric:?}"
            )));
        }
        Ok(RaBitQuantizer { d, nb_bits, metric })
    }

    /// The dimension.
    pub fn d(&self) -> usize {
        self.d
    }
    /// Bits per coordinate.
    pub fn nb_bits(&self) -> usize {
        self.nb_bits
    }
    /// The metric.
    pub fn metric(&self) -> MetricType {
        self.metric
    }
    fn ex(&self) -> usize {
        self.nb_bits - 1
    }
    /// Bytes of sign bits (`⌈d/8⌉`), the first bytes of a code.
    pub fn sign_bytes(&self) -> usize {
        self.d.div_ceil(8)
    }
    /// Bytes of extra bits.
    fn ex_bytes(&self) -> usize {
        (self.d * self.ex()).div_ceil(8)
    }
    /// Bytes per code: `⌈d/8⌉ + 8` for 1 bit, `⌈d/8⌉ + 12 + ⌈d(b−1)/8⌉ + 8` beyond.
    pub fn code_size(&self) -> usize {
        if self.ex() == 0 {
            self.sign_bytes() + 8
        } else {
            self.sign_bytes() + 12 + self.ex_bytes() + 8
        }
    }

    fn check_len(&self, what: &str, v: &[f32]) -> Result<()> {
        if v.len() != self.d {
            return Err(Error::invalid(format!(
                "{what} has {} coordinates; expected d = {}",
                v.len(),
                self.d
            )));
        }
        Ok(())
    }

    /// Codes `x` relative to `centroid` (the origin when `None`) into `out`
    /// (`code_size` bytes).
    pub fn encode(&self, x: &[f32], centroid: Option<&[f32]>, out: &mut [u8]) -> Result<()> {
        self.check_len("the vector", x)?;
        if let Some(c) = centroid {
            self.check_len("the centroid", c)?;
        }
        if out.len() != self.code_size() {
            return Err(Error::invalid(format!(
                "a RaBitQ code is {} bytes; the buffer has {}",
                self.code_size(),
                out.len()
            )));
        }
        let d = self.d;
        let cent = |j: usize| centroid.map_or(0.0, |c| c[j]);
        out.fill(0);
        let (mut norm2, mut or2, mut l1) = (0.0f32, 0.0f32, 0.0f32);
        let mut r = vec![0.0f32; d];
        for j in 0..d {
            let rj = x[j] - cent(j);
            r[j] = rj;
            norm2 += rj * rj;
            or2 += x[j] * x[j];
            l1 += if rj > 0.0 { rj } else { -rj };
            if rj > 0.0 {
                out[j / 8] |= 1 << (j % 8);
            }
        }
        let inv_sqrt_d = 1.0 / (d as f32).sqrt();
        let sq = norm2.sqrt();
        let inv_norm = if norm2 < f32::EPSILON { 1.0 } else { 1.0 / sq };
        let ndp = l1 * inv_norm * inv_sqrt_d;
        let inv_ndp = if ndp.abs() < f32::EPSILON {
            1.0
        } else {
            1.0 / ndp
        };
        let ip = self.metric == MetricType::InnerProduct;
        let b = self.sign_bytes();
        put_f32(out, b, if ip { norm2 - or2 } else { norm2 });
        put_f32(out, b + 4, inv_ndp * sq);
        if self.ex() == 0 {
            return Ok(());
        }
        // The error bound of the 1-bit estimate.
        let xu = d as f32 * 0.25;
        let half_l1 = 0.5 * l1;
        let mut t = 0.0f32;
        if half_l1.abs() > f32::EPSILON {
            let ratio = (norm2 * xu) / (half_l1 * half_l1);
            if ratio > 1.0 {
                t = if d == 1 {
                    sq * CONST_EPSILON * (ratio - 1.0).sqrt()
                } else {
                    sq * CONST_EPSILON * ((ratio - 1.0) / (d - 1) as f32).sqrt()
                };
            }
        }
        put_f32(out, b + 8, if ip { t } else { 2.0 * t });
        let (ex_codes, f_add_ex, f_rescale_ex) = self.ex_bits(&r, centroid);
        let ex = self.ex();
        let start = b + 12;
        for (i, &v) in ex_codes.iter().enumerate() {
            for bit in 0..ex {
                if (v >> bit) & 1 == 1 {
                    let p = i * ex + bit;
                    out[start + p / 8] |= 1 << (p % 8);
                }
            }
        }
        let tail = start + self.ex_bytes();
        put_f32(out, tail, f_add_ex);
        put_f32(out, tail + 4, f_rescale_ex);
        Ok(())
    }

    /// Codes each row of `x` relative to the origin into `codes` (`code_size` bytes a
    /// row): the IVF codecs' residuals alone, when the vectors are not at hand.
    pub fn encode_rows(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        let (d, cs) = (self.d, self.code_size());
        for (r, c) in x.chunks_exact(d).zip(codes.chunks_exact_mut(cs)) {
            self.encode(r, None, c)?;
        }
        Ok(())
    }

    /// Codes each row of `x` relative to its centroid `x − residual` (the IVF codecs:
    /// the inner-product factor needs the vector as well as its residual).
    pub fn encode_relative(&self, x: &[f32], residuals: &[f32], codes: &mut [u8]) -> Result<()> {
        let (d, cs) = (self.d, self.code_size());
        let mut centroid = vec![0.0f32; d];
        for ((v, r), c) in x
            .chunks_exact(d)
            .zip(residuals.chunks_exact(d))
            .zip(codes.chunks_exact_mut(cs))
        {
            for ((cj, vj), rj) in centroid.iter_mut().zip(v).zip(r) {
                *cj = vj - rj;
            }
            self.encode(v, Some(&centroid), c)?;
        }
        Ok(())
    }

    /// The extra bits of each coordinate of the residual `r` (Faiss's
    /// `quantize_ex_bits`) and the two factors of the extended estimate.
    fn ex_bits(&self, r: &[f32], centroid: Option<&[f32]>) -> (Vec<u32>, f32, f32) {
        let (d, ex) = (self.d, self.ex());
        let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm < 1e-10 {
            return (vec![0; d], 0.0, 0.0);
        }
        let o: Vec<f32> = r.iter().map(|v| (v / norm).abs()).collect();
        let t = optimal_scaling(&o, ex);
        let max_code = (1u32 << ex) - 1;
        let mut ipnorm = 0.0f64;
        let mut codes = vec![0u32; d];
        for i in 0..d {
            let q = (((t * o[i]) as f64 + 1e-5) as i64).clamp(0, max_code as i64) as u32;
            ipnorm += (q as f64 + 0.5) * o[i] as f64;
            codes[i] = if r[i] < 0.0 { !q & max_code } else { q };
        }
        let mut ipnorm_inv = (1.0 / ipnorm) as f32;
        if !ipnorm_inv.is_normal() {
            ipnorm_inv = 1.0;
        }
        let (f_add, f_rescale) = if self.metric == MetricType::L2 {
            (norm * norm, ipnorm_inv * -2.0 * norm)
        } else {
            let rc = centroid.map_or(0.0, |c| r.iter().zip(c).map(|(a, b)| a * b).sum());
            (rc, ipnorm_inv * norm)
        };
        (codes, f_add, f_rescale)
    }

    /// The vector a code stands for (from its sign bits and norm; the extra bits refine
    /// distances, not reconstructions — as Faiss's `decode`).
    pub fn decode(&self, code: &[u8], centroid: Option<&[f32]>, out: &mut [f32]) {
        let inv_sqrt_d = 1.0 / (self.d as f32).sqrt();
        let dpm = f32_at(code, self.sign_bytes() + 4);
        for (j, o) in out.iter_mut().enumerate().take(self.d) {
            let bit = ((code[j / 8] >> (j % 8)) & 1) as f32;
            *o = (bit - 0.5) * dpm * 2.0 * inv_sqrt_d + centroid.map_or(0.0, |c| c[j]);
        }
    }

    /// A query prepared for estimates against codes made relative to `centroid`: with
    /// `qb` (0 to 8) bits per coordinate (0: the float query), `centered` for Faiss's
    /// symmetric quantization range.
    pub fn query(
        &self,
        q: &[f32],
        centroid: Option<&[f32]>,
        qb: u8,
        centered: bool,
    ) -> Result<RaBitQQuery> {
        self.query_reusing(q, centroid, qb, centered, None)
    }

    /// [`RaBitQuantizer::query`] reusing the buffers of an earlier query (an IVF scan
    /// prepares one per probed list).
    pub fn query_reusing(
        &self,
        q: &[f32],
        centroid: Option<&[f32]>,
        qb: u8,
        centered: bool,
        earlier: Option<RaBitQQuery>,
    ) -> Result<RaBitQQuery> {
        self.prepare(q, centroid, qb, centered, earlier, true)
    }

    /// [`RaBitQuantizer::query_reusing`] for the fast-scan tables only
    /// ([`RaBitQQuery::fast_scan_tables`], the full estimate): the bit planes the
    /// popcount estimates read are not built.
    pub fn query_for_tables(
        &self,
        q: &[f32],
        centroid: Option<&[f32]>,
        qb: u8,
        centered: bool,
        earlier: Option<RaBitQQuery>,
    ) -> Result<RaBitQQuery> {
        self.prepare(q, centroid, qb, centered, earlier, false)
    }

    fn prepare(
        &self,
        q: &[f32],
        centroid: Option<&[f32]>,
        qb: u8,
        centered: bool,
        earlier: Option<RaBitQQuery>,
        with_planes: bool,
    ) -> Result<RaBitQQuery> {
        self.check_len("the query", q)?;
        if let Some(c) = centroid {
            self.check_len("the centroid", c)?;
        }
        if qb > 8 {
            return Err(Error::invalid(format!(
                "RaBitQ quantizes queries to 0 to 8 bits, got qb = {qb}"
            )));
        }
        let d = self.d;
        let (mut rq, mut planes, mut qq) = earlier
            .map_or((Vec::new(), Vec::new(), Vec::new()), |e| {
                (e.rq, e.planes, e.qq)
            });
        qq.clear();
        rq.clear();
        match centroid {
            Some(c) => rq.extend(q.iter().zip(c).map(|(a, b)| a - b)),
            None => rq.extend_from_slice(q),
        }
        // Sums by the SIMD kernels (lane-parallel, as Faiss's `fvec_*`): per list of an
        // IVF scan, strict left-to-right f32 sums would cost as much as the scan itself.
        let ip = PairKernel::new(MetricType::InnerProduct);
        let qr2 = ip.distance(&rq, &rq);
        let (q_norm2, q_dot_c) = if self.metric == MetricType::InnerProduct {
            (
                ip.distance(q, q),
                centroid.map_or(0.0, |c| ip.distance(q, c)),
            )
        } else {
            (0.0, 0.0)
        };
        let s = 1.0 / (d as f32).sqrt();
        planes.clear();
        let form = if qb == 0 {
            DotForm::Float {
                c1: 2.0 * s,
                c34: s * rq.iter().sum::<f32>(),
            }
        } else {
            let max_code = ((1u32 << qb) - 1) as f32;
            let (vmin, vmax) = if centered {
                let r = Z_MAX_BY_QB[qb as usize - 1] * (qr2 / d as f32).sqrt();
                (-r, r)
            } else {
                min_max(&rq)
            };
            let delta = (vmax - vmin) / max_code;
            let inv = 1.0 / delta;
            let q = qb as usize;
            let mc = max_code as i64;
            let (mut sum_qq, mut sum2) = (0u64, 0i64);
            // The codes of 64 coordinates at a time, then their bits gathered into the
            // planes eight coordinates per multiply (word-major: word w of every plane
            // together, as the scan reads them).
            if with_planes {
                planes.resize(q * d.div_ceil(64), 0);
            }
            let mut codes = [0u8; 64];
            for (w, chunk) in rq.chunks(64).enumerate() {
                let codes = &mut codes[..chunk.len()];
                for (c, &v) in codes.iter_mut().zip(chunk) {
                    let x = (v - vmin) * inv;
                    *c = if delta <= 0.0 || x <= 0.0 {
                        0
                    } else if x >= max_code {
                        max_code as u8
                    } else {
                        (x + 0.5) as u8
                    };
                }
                qq.extend_from_slice(codes);
                for &c in codes.iter() {
                    sum_qq += c as u64;
                    sum2 += (2 * c as i64 - mc).pow(2);
                }
                if !with_planes {
                    continue;
                }
                let word = &mut planes[w * q..(w + 1) * q];
                for (g, eight) in codes.chunks(8).enumerate() {
                    let mut bytes = [0u8; 8];
                    bytes[..eight.len()].copy_from_slice(eight);
                    let x = u64::from_le_bytes(bytes);
                    for (j, p) in word.iter_mut().enumerate() {
                        *p |= gather_lsbs((x >> j) & 0x0101_0101_0101_0101) << (8 * g);
                    }
                }
            }
            if centered {
                if delta <= 0.0 {
                    sum2 = d as i64 * mc * mc;
                }
                DotForm::Centered {
                    max_code: mc,
                    scale: (qr2 / (sum2 as f32 * d as f32)).sqrt(),
                }
            } else {
                DotForm::Quantized {
                    c1: 2.0 * delta * s,
                    c2: 2.0 * vmin * s,
                    c34: s * (delta * sum_qq as f32 + d as f32 * vmin),
                }
            }
        };
        Ok(RaBitQQuery {
            quantizer: self.clone(),
            qb,
            rq,
            planes,
            qq,
            form,
            qr2,
            q_norm2,
            q_dot_c,
            g_error: qr2.sqrt(),
        })
    }
}

/// The 16 sums `base + Σ_{t ∈ c} v[t]` (bit `t` of `c`), one addition each: the entries
/// with bit `t` set are those without it plus `v[t]`, so each sum adds its terms in
/// increasing `t`.
#[inline]
fn subset_sums(v: [f32; 4], base: f32) -> [f32; 16] {
    let mut e = [0.0f32; 16];
    e[0] = base;
    for (t, &vt) in v.iter().enumerate() {
        let half = 1 << t;
        for c in 0..half {
            e[half + c] = e[c] + vt;
        }
    }
    e
}

/// Bit 0 of each byte of `x` (whose other bits are 0) gathered into the low byte, byte
/// `k` to bit `k`: the multiply moves bit `8k` to bit `56 + k`, and no two of the 64
/// partial products land on one position, so nothing carries.
#[inline(always)]
fn gather_lsbs(x: u64) -> u64 {
    x.wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// The smallest and largest coordinate, eight lanes at a time.
fn min_max(v: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = ([f32::INFINITY; 8], [f32::NEG_INFINITY; 8]);
    let (chunks, tail) = v.as_chunks::<8>();
    for c in chunks {
        for i in 0..8 {
            lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
            hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
        }
    }
    let lo = tail
        .iter()
        .chain(&lo)
        .copied()
        .fold(f32::INFINITY, f32::min);
    let hi = tail
        .iter()
        .chain(&hi)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    (lo, hi)
}

/// Faiss's `compute_optimal_scaling_factor`: the scale `t` whose rounding of `t·o`
/// (clipped to `2^ex − 1`) best aligns with `o`, searched over the points where a
/// coordinate's rounding changes.
fn optimal_scaling(o: &[f32], ex: usize) -> f32 {
    let d = o.len();
    let max_code = (1i64 << ex) - 1;
    let max_o = o.iter().copied().fold(0.0f32, f32::max);
    if max_o <= 0.0 {
        return 0.0;
    }
    let t_end = (max_code as f32 + 10.0) / max_o;
    let t_start = (t_end as f64 * TIGHT_START[ex]) as f32;
    let mut cur: Vec<i64> = o
        .iter()
        .map(|&v| ((t_start * v) as f64 + 1e-5) as i64)
        .collect();
    let mut sqr_den = d as f32 * 0.25;
    let mut num = 0.0f32;
    for i in 0..d {
        sqr_den += (cur[i] * cur[i] + cur[i]) as f32;
        num += (cur[i] as f32 + 0.5) * o[i];
    }
    let mut inv_sqrt = 1.0 / sqr_den.sqrt();
    // A min-heap of (next t at which coordinate i's rounding grows, i); ties by index.
    let mut heap = std::collections::BinaryHeap::new();
    let key = |t: f32, i: usize| std::cmp::Reverse((OrdF32(t), i));
    for i in 0..d {
        if o[i] > 0.0 {
            let t_next = (cur[i] + 1) as f32 * (1.0 / o[i]);
            if t_next < t_end {
                heap.push(key(t_next, i));
            }
        }
    }
    let (mut max_ip, mut t) = (0.0f32, 0.0f32);
    while let Some(std::cmp::Reverse((OrdF32(cur_t), u))) = heap.pop() {
        cur[u] += 1;
        let delta = 2.0 * cur[u] as f32;
        sqr_den += delta;
        num += o[u];
        inv_sqrt *= 1.0 - 0.5 * delta / ((sqr_den - delta) + delta * 0.5);
        let ip = num * inv_sqrt;
        if ip > max_ip {
            max_ip = ip;
            t = cur_t;
        }
        if cur[u] < max_code {
            let t_next = (cur[u] + 1) as f32 * (1.0 / o[u]);
            if t_next < t_end {
                heap.push(key(t_next, u));
            }
        }
    }
    t
}

/// `f32` ordered totally, for the scaling-factor heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF32(f32);
impl Eq for OrdF32 {}
impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// How the query's dot product with a code's sign vector is formed.
#[derive(Debug, Clone)]
enum DotForm {
    /// `qb = 0`: `c1 · Σ_{b_i = 1} rq_i − c34`.
    Float { c1: f32, c34: f32 },
    /// `c1 · Σ qq_i b_i + c2 · popcount(b) − c34`.
    Quantized { c1: f32, c2: f32, c34: f32 },
    /// `Σ (2b_i − 1)(2qq_i − max) · scale`.
    Centered { max_code: i64, scale: f32 },
}

/// A query prepared by [`RaBitQuantizer::query`]: estimates of its distance (L2) or
/// inner product (IP) to coded vectors.
#[derive(Debug, Clone)]
pub struct RaBitQQuery {
    quantizer: RaBitQuantizer,
    qb: u8,
    rq: Vec<f32>,
    /// The quantized query's bit planes: word `w` of plane `j` at `w·qb + j`.
    planes: Vec<u64>,
    /// The quantized query, one code per coordinate (empty for `qb = 0`).
    qq: Vec<u8>,
    form: DotForm,
    qr2: f32,
    q_norm2: f32,
    q_dot_c: f32,
    g_error: f32,
}

impl RaBitQQuery {
    /// Bits per coordinate of the codes this query is compared with.
    pub fn nb_bits(&self) -> usize {
        self.quantizer.nb_bits
    }
    /// The metric of the estimates.
    pub fn metric(&self) -> MetricType {
        self.quantizer.metric
    }

    /// `(Σ_j 2^j · popcount(plane_j & bits), popcount(bits))` — or with XOR for the
    /// centred form — for one code's sign bytes.
    #[inline]
    fn plane_dot(&self, sign: &[u8], xor: bool) -> (i64, u32) {
        let (mut dot, mut pop) = ([0u64], [0u32]);
        let n = sign.len();
        plane_dots(
            &self.planes,
            self.qb as usize,
            xor,
            sign,
            n,
            n,
            &mut dot,
            &mut pop,
        );
        (dot[0] as i64, pop[0])
    }

    /// `⟨ō, q − c⟩` estimated from the sign bits.
    #[inline]
    fn final_dot(&self, sign: &[u8]) -> f32 {
        match self.form {
            DotForm::Float { c1, c34 } => {
                let mut s = 0.0f32;
                for (j, &v) in self.rq.iter().enumerate() {
                    if (sign[j / 8] >> (j % 8)) & 1 == 1 {
                        s += v;
                    }
                }
                c1 * s - c34
            }
            DotForm::Quantized { c1, c2, c34 } => {
                let (dot, pop) = self.plane_dot(sign, false);
                c1 * dot as f32 + c2 * pop as f32 - c34
            }
            DotForm::Centered { max_code, scale } => {
                // Bits past d are 0 in the code and in the planes: their XOR is 0 too.
                let int_dot = max_code * self.quantizer.d as i64 - 2 * self.plane_dot(sign, true).0;
                int_dot as f32 * scale
            }
        }
    }

    /// The 1-bit estimate: the squared L2 distance (≥ 0) or the inner product.
    #[inline]
    pub fn estimate(&self, code: &[u8]) -> f32 {
        let b = self.quantizer.sign_bytes();
        let sign = &code[..b];
        let orc = f32_at(code, b);
        let dpm = f32_at(code, b + 4);
        let pre = orc + self.qr2 - 2.0 * dpm * self.final_dot(sign);
        if self.quantizer.metric == MetricType::L2 {
            pre.max(0.0)
        } else {
            -0.5 * (pre - self.q_norm2)
        }
    }

    /// [`RaBitQQuery::estimate`] of consecutive codes (`code_size` bytes each) into
    /// `out`, as keys to minimise: the squared L2 distance, or the negated inner product.
    /// The form of the dot product is chosen once for the run, so the loop over codes
    /// holds no dispatch.
    pub fn estimate_keys(&self, codes: &[u8], out: &mut [f32]) {
        const CHUNK: usize = 256;
        let (b, cs) = (self.quantizer.sign_bytes(), self.quantizer.code_size());
        let (qb, d) = (self.qb as usize, self.quantizer.d as i64);
        let (mut dots, mut pops) = ([0u64; CHUNK], [0u32; CHUNK]);
        for (codes, out) in codes.chunks(CHUNK * cs).zip(out.chunks_mut(CHUNK)) {
            // The dot products of a chunk in one kernel call, then the keys.
            match self.form {
                DotForm::Float { .. } => self.keys_with(codes, out, |_, s| self.final_dot(s)),
                DotForm::Quantized { c1, c2, c34 } => {
                    plane_dots(&self.planes, qb, false, codes, cs, b, &mut dots, &mut pops);
                    self.keys_with(codes, out, |r, _| {
                        c1 * dots[r] as f32 + c2 * pops[r] as f32 - c34
                    })
                }
                DotForm::Centered { max_code, scale } => {
                    plane_dots(&self.planes, qb, true, codes, cs, b, &mut dots, &mut pops);
                    self.keys_with(codes, out, |r, _| {
                        (max_code * d - 2 * dots[r] as i64) as f32 * scale
                    })
                }
            }
        }
    }

    /// The key (squared L2 distance, or negated inner product) of a code with factors
    /// `orc`, `dpm` whose sign vector has `final_dot` with the query.
    #[inline(always)]
    fn key_from_dot(&self, final_dot: f32, orc: f32, dpm: f32) -> f32 {
        let pre = orc + self.qr2 - 2.0 * dpm * final_dot;
        if self.quantizer.metric == MetricType::L2 {
            pre.max(0.0)
        } else {
            0.5 * (pre - self.q_norm2)
        }
    }

    /// The fast-scan tables of the query: for each group of four coordinates `4m..4m+4`
    /// (`m < ⌈d/4⌉`, then a zero group if that count is odd), 16 values indexed by the
    /// group's four sign bits (coordinate `4m + t` at bit `t`), whose sum over a code's
    /// groups is the dot product [`RaBitQQuery::key_from_table_sum`] turns into a key.
    /// `out` gets `packed_nsq(⌈d/4⌉) × 16` values.
    pub fn fast_scan_tables(&self, out: &mut Vec<f32>) {
        let groups = self.quantizer.d.div_ceil(4);
        out.clear();
        out.resize(groups.next_multiple_of(2) * 16, 0.0);
        for (m, table) in out.chunks_exact_mut(16).take(groups).enumerate() {
            let (v, base) = self.group_terms(m);
            table.copy_from_slice(&subset_sums(v, base));
        }
    }

    /// [`RaBitQQuery::fast_scan_tables`] quantized to 8 bits by
    /// `fathom_quant::fastscan::quantize_lut` (`tables`: a scratch buffer). Returns
    /// `(scale, bias)`: a code's table sum is `bias + Σ lut / scale`. `out`:
    /// `packed_nsq(⌈d/4⌉) × 16` bytes.
    pub fn fast_scan_lut(&self, tables: &mut Vec<f32>, out: &mut [u8]) -> Result<(f32, f32)> {
        // (Deriving each group's extremes from its terms instead of scanning the tables
        // measured slower: the scan and the quantization vectorize, the terms do not.)
        let groups = self.quantizer.d.div_ceil(4);
        self.fast_scan_tables(tables);
        crate::fastscan::quantize_lut(&tables[..groups * 16], groups, out)
    }

    /// Group `m`'s terms: what each of its coordinates adds when its bit is set (0 past
    /// `d`), and what the group adds whatever its bits.
    #[inline]
    fn group_terms(&self, m: usize) -> ([f32; 4], f32) {
        let (mut v, mut base) = ([0.0f32; 4], 0.0f32);
        for (t, vt) in v.iter_mut().enumerate().take(self.quantizer.d - 4 * m) {
            let i = 4 * m + t;
            *vt = match self.form {
                DotForm::Float { c1, .. } => c1 * self.rq[i],
                DotForm::Quantized { c1, c2, .. } => c1 * self.qq[i] as f32 + c2,
                DotForm::Centered { max_code, .. } => {
                    let q = self.qq[i] as f32;
                    base += q;
                    max_code as f32 - 2.0 * q
                }
            };
        }
        (v, base)
    }

    /// The key ([`RaBitQQuery::estimate_keys`]' terms) of a code whose fast-scan table
    /// sum is `sum`, from the code's bytes after its sign bits (`aux`: the factors).
    #[inline]
    pub fn key_from_table_sum(&self, sum: f32, aux: &[u8]) -> f32 {
        let final_dot = match self.form {
            DotForm::Float { c34, .. } | DotForm::Quantized { c34, .. } => sum - c34,
            DotForm::Centered { max_code, scale } => {
                // The sum of integers, read back from 8-bit tables: truncated, as Faiss.
                (max_code * self.quantizer.d as i64 - 2 * sum as i64) as f32 * scale
            }
        };
        self.key_from_dot(final_dot, f32_at(aux, 0), f32_at(aux, 4))
    }

    /// [`RaBitQQuery::key_from_table_sum`] for a run of codes: the kernel's sums `sums`
    /// (the table sum is `sum · scale + bias`) and the codes' bytes after their sign bits,
    /// `aux_len` each, one after another in `aux`. The dot-product form is chosen once.
    pub fn keys_from_table_sums(
        &self,
        sums: &[u16],
        scale: f32,
        bias: f32,
        aux: &[u8],
        aux_len: usize,
        out: &mut [f32],
    ) {
        let run = out.iter_mut().zip(sums).zip(aux.chunks_exact(aux_len));
        match self.form {
            DotForm::Float { c34, .. } | DotForm::Quantized { c34, .. } => {
                let offset = bias - c34;
                for ((o, &s), a) in run {
                    let dot = s as f32 * scale + offset;
                    *o = self.key_from_dot(dot, f32_at(a, 0), f32_at(a, 4));
                }
            }
            DotForm::Centered {
                max_code,
                scale: int_scale,
            } => {
                let full = max_code * self.quantizer.d as i64;
                for ((o, &s), a) in run {
                    let sum = s as f32 * scale + bias;
                    let dot = (full - 2 * sum as i64) as f32 * int_scale;
                    *o = self.key_from_dot(dot, f32_at(a, 0), f32_at(a, 4));
                }
            }
        }
    }

    /// [`RaBitQQuery::key_may_beat`] from the code's bytes after its sign bits.
    #[inline]
    pub fn aux_may_beat(&self, aux: &[u8], key: f32, threshold: f32) -> bool {
        let adj = if self.quantizer.nb_bits == 1 {
            0.0
        } else {
            f32_at(aux, 8) * self.g_error
        };
        if self.quantizer.metric == MetricType::L2 {
            (key - adj).max(0.0) < threshold
        } else {
            key - adj < threshold
        }
    }

    #[inline(always)]
    fn keys_with(&self, codes: &[u8], out: &mut [f32], dot: impl Fn(usize, &[u8]) -> f32) {
        let b = self.quantizer.sign_bytes();
        let cs = self.quantizer.code_size();
        for (r, (o, code)) in out.iter_mut().zip(codes.chunks_exact(cs)).enumerate() {
            let (sign, factors) = code.split_at(b);
            *o = self.key_from_dot(dot(r, sign), f32_at(factors, 0), f32_at(factors, 4));
        }
    }

    /// The error bound of [`RaBitQQuery::estimate`] for this code (0 for 1-bit codes).
    pub fn error_bound(&self, code: &[u8]) -> f32 {
        if self.quantizer.nb_bits == 1 {
            return 0.0;
        }
        f32_at(code, self.quantizer.sign_bytes() + 8) * self.g_error
    }

    /// The estimate with every bit of the code (the 1-bit estimate for 1-bit codes): the
    /// squared L2 distance or the inner product.
    #[inline]
    pub fn full(&self, code: &[u8]) -> f32 {
        let qz = &self.quantizer;
        if qz.nb_bits == 1 {
            return self.estimate(code);
        }
        let (b, ex) = (qz.sign_bytes(), qz.ex());
        let start = b + 12;
        let cb = -(((1u32 << ex) as f32) - 0.5);
        let mut ex_ip = 0.0f32;
        for (i, &r) in self.rq.iter().enumerate() {
            let sign = ((code[i / 8] >> (i % 8)) & 1) as u32;
            let mut v = 0u32;
            for bit in 0..ex {
                let p = i * ex + bit;
                v |= (((code[start + p / 8] >> (p % 8)) & 1) as u32) << bit;
            }
            ex_ip += r * (((sign << ex) + v) as f32 + cb);
        }
        let tail = start + qz.ex_bytes();
        let (f_add, f_rescale) = (f32_at(code, tail), f32_at(code, tail + 4));
        if qz.metric == MetricType::L2 {
            (self.qr2 + f_add + f_rescale * ex_ip).max(0.0)
        } else {
            self.q_dot_c + f_add + f_rescale * ex_ip
        }
    }

    /// [`RaBitQQuery::may_beat`] for a key of [`RaBitQQuery::estimate_keys`] and a
    /// threshold in the same terms (smaller is better for both metrics).
    #[inline]
    pub fn key_may_beat(&self, code: &[u8], key: f32, threshold: f32) -> bool {
        self.aux_may_beat(&code[self.quantizer.sign_bytes()..], key, threshold)
    }

    /// Whether a code whose 1-bit estimate is `est` may beat `threshold` (the worst kept
    /// result): Faiss's two-stage test before the full estimate.
    pub fn may_beat(&self, code: &[u8], est: f32, threshold: f32) -> bool {
        let adj = self.error_bound(code);
        if self.quantizer.metric == MetricType::L2 {
            (est - adj).max(0.0) < threshold
        } else {
            est + adj > threshold
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l2(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    }

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

    #[test]
    fn code_sizes_are_faiss_s() {
        for (d, nb, size) in [
            (128, 1, 24),
            (128, 2, 52),
            (128, 4, 84),
            (16, 1, 10),
            (16, 9, 38),
        ] {
            assert_eq!(
                RaBitQuantizer::new(d, MetricType::L2, nb)
                    .unwrap()
                    .code_size(),
                size,
                "d {d} nb {nb}"
            );
        }
        assert!(RaBitQuantizer::new(8, MetricType::L2, 0).is_err());
        assert!(RaBitQuantizer::new(8, MetricType::L2, 10).is_err());
        assert!(RaBitQuantizer::new(8, MetricType::L1, 1).is_err());
    }

    #[test]
    fn fast_scan_table_sums_give_the_estimates() {
        // d = 9: three groups, the last partial, and a zero group to make them even.
        let (d, n) = (9, 40);
        let (xs, qs) = (data(n, d, 21), data(2, d, 23));
        let c = vec![0.01f32; d];
        for metric in [MetricType::L2, MetricType::InnerProduct] {
            let rq = RaBitQuantizer::new(d, metric, 2).unwrap();
            let (cs, sb) = (rq.code_size(), rq.sign_bytes());
            let mut code = vec![0u8; cs];
            let mut tables = Vec::new();
            for q in qs.chunks(d) {
                for (qb, centered) in [(0, false), (4, false), (8, false), (4, true)] {
                    let query = rq.query(q, Some(&c), qb, centered).unwrap();
                    query.fast_scan_tables(&mut tables);
                    assert_eq!(tables.len(), 4 * 16);
                    let (mut lut, mut want) = (vec![0u8; 64], vec![0u8; 64]);
                    let sb_pair = query.fast_scan_lut(&mut Vec::new(), &mut lut).unwrap();
                    let want_pair =
                        crate::fastscan::quantize_lut(&tables[..48], 3, &mut want).unwrap();
                    assert_eq!((lut, sb_pair), (want, want_pair));
                    assert!(tables[3 * 16..].iter().all(|&v| v == 0.0));
                    for x in xs.chunks(d) {
                        rq.encode(x, Some(&c), &mut code).unwrap();
                        let sum: f32 = (0..4)
                            .map(|m| {
                                let nib = (code[m / 2] >> (4 * (m % 2))) & 15;
                                tables[m * 16 + nib as usize]
                            })
                            .sum();
                        let key = query.key_from_table_sum(sum, &code[sb..]);
                        // The batched form: a sum given as 4 · 0.25 + (sum − 1).
                        let mut batched = [0.0f32];
                        query.keys_from_table_sums(
                            &[4],
                            0.25,
                            sum - 1.0,
                            &code[sb..],
                            cs - sb,
                            &mut batched,
                        );
                        assert!((batched[0] - key).abs() <= 1e-4 * key.abs().max(1.0));
                        let est = query.estimate(&code);
                        let want = if metric == MetricType::L2 { est } else { -est };
                        assert!(
                            (key - want).abs() <= 1e-3 * want.abs().max(1.0),
                            "{key} {want}"
                        );
                        assert_eq!(
                            query.aux_may_beat(&code[sb..], key, want + 0.1),
                            query.key_may_beat(&code, key, want + 0.1)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn gathered_bits_and_lane_min_max_equal_the_plain_loops() {
        for seed in 0u64..200 {
            let x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) & 0x0101_0101_0101_0101;
            let want = (0..8).fold(0u64, |acc, k| acc | ((x >> (8 * k)) & 1) << k);
            assert_eq!(gather_lsbs(x), want);
        }
        let v = data(1, 37, 5);
        let want = (
            v.iter().copied().fold(f32::INFINITY, f32::min),
            v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        );
        assert_eq!(min_max(&v), want);
    }

    #[test]
    fn batched_keys_equal_one_at_a_time_estimates() {
        // d = 100: a partial last sign word; every query form, both metrics, reused buffers.
        let (d, n) = (100, 37);
        let (xs, qs) = (data(n, d, 11), data(3, d, 13));
        let c = vec![0.02f32; d];
        for metric in [MetricType::L2, MetricType::InnerProduct] {
            for nb in [1, 3] {
                let rq = RaBitQuantizer::new(d, metric, nb).unwrap();
                let cs = rq.code_size();
                let mut codes = vec![0u8; n * cs];
                for (x, code) in xs.chunks(d).zip(codes.chunks_mut(cs)) {
                    rq.encode(x, Some(&c), code).unwrap();
                }
                let mut earlier = None;
                for q in qs.chunks(d) {
                    for (qb, centered) in
                        [(0, false), (3, false), (4, false), (8, false), (4, true)]
                    {
                        let query = rq
                            .query_reusing(q, Some(&c), qb, centered, earlier)
                            .unwrap();
                        let mut keys = vec![0.0f32; n];
                        query.estimate_keys(&codes, &mut keys);
                        for (code, &key) in codes.chunks(cs).zip(&keys) {
                            let est = query.estimate(code);
                            let want = if metric == MetricType::L2 { est } else { -est };
                            assert!((key - want).abs() <= 1e-4 * want.abs().max(1.0));
                            let thr = want + 0.5;
                            let bound = if metric == MetricType::L2 { thr } else { -thr };
                            assert_eq!(
                                query.key_may_beat(code, key, thr),
                                query.may_beat(code, est, bound)
                            );
                        }
                        earlier = Some(query);
                    }
                }
            }
        }
    }

    #[test]
    fn estimates_track_true_distances_and_more_bits_track_them_closer() {
        let (d, n) = (64, 200);
        let (xs, qs) = (data(n, d, 3), data(5, d, 7));
        let c = vec![0.05f32; d];
        let mut errs = Vec::new();
        for nb in [1, 2, 4, 8] {
            let rq = RaBitQuantizer::new(d, MetricType::L2, nb).unwrap();
            let mut code = vec![0u8; rq.code_size()];
            let mut err = 0.0f64;
            for q in qs.chunks(d) {
                let query = rq.query(q, Some(&c), 0, false).unwrap();
                for x in xs.chunks(d) {
                    rq.encode(x, Some(&c), &mut code).unwrap();
                    let (est, exact) = (query.full(&code), l2(q, x));
                    err += ((est - exact) as f64).abs();
                    assert!(query.error_bound(&code) >= 0.0);
                }
            }
            errs.push(err / (5 * n) as f64);
        }
        // Mean absolute error of the squared distance (mean ~ 2·64/3 ≈ 43).
        assert!(errs[0] < 8.0, "{errs:?}");
        assert!(errs.windows(2).all(|w| w[1] < w[0]), "{errs:?}");
        assert!(errs[3] < 0.2, "{errs:?}");
    }

    #[test]
    fn quantized_queries_approach_the_float_query() {
        let (d, n) = (96, 100);
        let (xs, q) = (data(n, d, 11), data(1, d, 13));
        for metric in [MetricType::L2, MetricType::InnerProduct] {
            let rq = RaBitQuantizer::new(d, metric, 1).unwrap();
            let mut code = vec![0u8; rq.code_size()];
            let exact = rq.query(&q, None, 0, false).unwrap();
            // Centred quantization clips the query's range: coarser, by design.
            for (centered, tol) in [(false, 0.02), (true, 0.25)] {
                let q8 = rq.query(&q, None, 8, centered).unwrap();
                let (mut diff, mut total) = (0.0f32, 0.0f32);
                for x in xs.chunks(d) {
                    rq.encode(x, None, &mut code).unwrap();
                    let (a, b) = (exact.estimate(&code), q8.estimate(&code));
                    diff += (a - b).abs();
                    total += a.abs();
                }
                assert!(
                    diff < tol * total,
                    "{metric:?} centered {centered}: {diff} of {total}"
                );
            }
        }
    }

    #[test]
    fn inner_product_estimates_inner_products() {
        let d = 32;
        let (xs, q) = (data(50, d, 21), data(1, d, 23));
        let rq = RaBitQuantizer::new(d, MetricType::InnerProduct, 6).unwrap();
        let c = vec![0.1f32; d];
        let query = rq.query(&q, Some(&c), 0, false).unwrap();
        let mut code = vec![0u8; rq.code_size()];
        for x in xs.chunks(d) {
            rq.encode(x, Some(&c), &mut code).unwrap();
            let ip: f32 = q.iter().zip(x).map(|(a, b)| a * b).sum();
            assert!(
                (query.full(&code) - ip).abs() < 0.1,
                "{} vs {ip}",
                query.full(&code)
            );
        }
    }

    #[test]
    fn plus_minus_vectors_decode_exactly() {
        let d = 16;
        let x: Vec<f32> = (0..d)
            .map(|j| if j % 3 == 0 { 100.0 } else { -100.0 })
            .collect();
        for metric in [MetricType::L2, MetricType::InnerProduct] {
            let rq = RaBitQuantizer::new(d, metric, 1).unwrap();
            let mut code = vec![0u8; rq.code_size()];
            rq.encode(&x, None, &mut code).unwrap();
            let mut out = vec![0.0f32; d];
            rq.decode(&code, None, &mut out);
            for (a, b) in out.iter().zip(&x) {
                assert!((a - b).abs() < 1e-3, "{a} vs {b}");
            }
        }
    }
}
