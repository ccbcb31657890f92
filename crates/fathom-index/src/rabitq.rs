//! `IndexRaBitQ`: exhaustive search over RaBitQ codes (Faiss's `IndexRaBitQ`, factory
//! `RaBitQ` / `RaBitQ<b>`).

use fathom_core::{Error, MetricType, Result};
use fathom_quant::rabitq::RaBitQuantizer;

use crate::flat_codes::{CodeScorer, FlatCodec, IndexFlatCodes};

/// The codec of [`IndexRaBitQ`]: the quantizer, the centre codes are made relative to
/// (the training set's mean) and the query settings.
#[derive(Debug, Clone)]
pub struct RaBitQCodes {
    quantizer: RaBitQuantizer,
    center: Vec<f32>,
    trained: bool,
    /// Bits per query coordinate (0: the float query; Faiss's default 4).
    pub qb: u8,
    /// Quantize queries over a range centred on zero (Faiss's `centered`).
    pub centered: bool,
}

/// Vectors as RaBitQ codes — sign bits of `x − mean` and two factors, plus extra bits
/// per coordinate with `nb_bits > 1` — searched exhaustively by estimated distance
/// (Faiss's `IndexRaBitQ`). A code is `⌈d/8⌉ + 8` bytes at one bit; `qb` sets how finely
/// queries are quantized (0: not at all).
///
/// ```
/// use fathom_index::{Index, IndexRaBitQ, MetricType};
/// let d = 32;
/// let x: Vec<f32> = (0..500 * d).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
/// let mut index = IndexRaBitQ::new(d, MetricType::L2, 4).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// assert_eq!(index.search(&x[..d], 1).unwrap().labels, vec![0]);
/// ```
pub type IndexRaBitQ = IndexFlatCodes<RaBitQCodes>;

impl IndexFlatCodes<RaBitQCodes> {
    /// An untrained index of `d`-dimensional vectors, `nb_bits` (1 to 9) bits per
    /// coordinate, compared with `metric` (L2 or inner product).
    pub fn new(d: usize, metric: MetricType, nb_bits: usize) -> Result<Self> {
        let quantizer = RaBitQuantizer::new(d, metric, nb_bits)?;
        Ok(Self::with_codec(
            RaBitQCodes {
                quantizer,
                center: Vec::new(),
                trained: false,
                qb: 4,
                centered: false,
            },
            metric,
        ))
    }

    /// An index with a given centre (as read from a file).
    pub fn from_center(
        d: usize,
        metric: MetricType,
        nb_bits: usize,
        center: Vec<f32>,
        qb: u8,
    ) -> Result<Self> {
        let mut index = Self::new(d, metric, nb_bits)?;
        check_center(d, &center)?;
        if qb > 8 {
            return Err(Error::invalid(format!("qb is {qb}; expected 0 to 8")));
        }
        index.codec.center = center;
        index.codec.trained = true;
        index.codec.qb = qb;
        Ok(index)
    }

    /// The quantizer.
    pub fn rabitq(&self) -> &RaBitQuantizer {
        &self.codec.quantizer
    }
    /// The centre codes are relative to (empty before training).
    pub fn center(&self) -> &[f32] {
        &self.codec.center
    }
    /// Bits per query coordinate.
    pub fn qb(&self) -> u8 {
        self.codec.qb
    }
}

impl fathom_quant::Codec for RaBitQCodes {
    fn dim(&self) -> usize {
        self.quantizer.d()
    }
    fn code_size(&self) -> usize {
        self.quantizer.code_size()
    }
    fn compute_codes_into(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        if !self.trained {
            return Err(Error::NotTrained("RaBitQ encoding".into()));
        }
        let (d, cs) = (self.quantizer.d(), self.code_size());
        let n = fathom_core::check::vectors("encoded", x, d)?;
        fathom_core::check::output_len("RaBitQ code buffer", codes.len(), n * cs)?;
        use rayon::prelude::*;
        codes
            .par_chunks_exact_mut(cs)
            .zip(x.par_chunks_exact(d))
            .try_for_each(|(c, v)| self.quantizer.encode(v, Some(&self.center), c))
    }
}

/// The centre the flat RaBitQ indexes code relative to: the mean of the rows of `x`
/// (`d` coordinates each), summed in order in f32 then divided, as Faiss.
pub(crate) fn training_mean(x: &[f32], d: usize) -> Vec<f32> {
    let n = x.len() / d;
    let mut c = vec![0.0f32; d];
    for row in x.chunks_exact(d) {
        c.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    c.iter_mut().for_each(|s| *s /= n as f32);
    c
}

/// Checks a centre given to a flat RaBitQ index (as read from a file).
pub(crate) fn check_center(d: usize, center: &[f32]) -> Result<()> {
    if center.len() != d {
        return Err(Error::invalid(format!(
            "a RaBitQ centre has d = {d} coordinates, got {}",
            center.len()
        )));
    }
    Ok(())
}

/// Which estimate a scan ranks by: extended codes by their full estimate, 1-bit codes by
/// the 1-bit one (as Faiss), smaller is better (inner products negated).
#[inline]
pub(crate) fn rabitq_key(query: &fathom_quant::rabitq::RaBitQQuery, code: &[u8], ip: bool) -> f32 {
    let v = query.full(code);
    if ip { -v } else { v }
}

impl FlatCodec for RaBitQCodes {
    type Prepared = ();
    const NAME: &'static str = "IndexRaBitQ";

    fn is_trained(&self) -> bool {
        self.trained
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.center = training_mean(x, self.quantizer.d());
        self.trained = true;
        Ok(())
    }
    fn decode(&self, code: &[u8]) -> Result<Vec<f32>> {
        if !self.trained {
            return Err(Error::NotTrained("decoding RaBitQ codes".into()));
        }
        let mut out = vec![0.0f32; self.quantizer.d()];
        self.quantizer.decode(code, Some(&self.center), &mut out);
        Ok(out)
    }
    fn prepare(&self, _metric: MetricType, _queries: &[f32]) -> Result<()> {
        Ok(())
    }
    fn scorer<'a>(
        &'a self,
        metric: MetricType,
        _prepared: &'a (),
        queries: &'a [f32],
        codes: &'a [u8],
    ) -> impl Fn(usize) -> CodeScorer<'a> + Sync + 'a {
        let (d, cs) = (self.quantizer.d(), self.quantizer.code_size());
        let ip = metric.is_similarity();
        move |q| {
            // Queries were checked by the index; the dimension always matches.
            let query = self
                .quantizer
                .query(
                    &queries[q * d..(q + 1) * d],
                    Some(&self.center),
                    self.qb,
                    self.centered,
                )
                .expect("a query of dimension d");
            Box::new(move |start: usize, out: &mut [f32]| {
                let run = &codes[start * cs..(start + out.len()) * cs];
                if self.quantizer.nb_bits() == 1 {
                    query.estimate_keys(run, out);
                    return;
                }
                for (o, code) in out.iter_mut().zip(run.chunks_exact(cs)) {
                    *o = rabitq_key(&query, code, ip);
                }
            })
        }
    }
    fn description(&self) -> String {
        match self.quantizer.nb_bits() {
            1 => "RaBitQ".into(),
            b => format!("RaBitQ{b}"),
        }
    }
    fn view(index: &IndexFlatCodes<Self>) -> crate::IndexView<'_> {
        crate::IndexView::RaBitQ(index)
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<bool> {
        match name {
            "qb" => {
                let v = crate::param_values::count(name, value)?;
                if v > 8 {
                    return Err(Error::invalid(format!("qb must be 0 to 8, got {v}")));
                }
                self.qb = v as u8;
            }
            "centered" => self.centered = crate::param_values::flag(name, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
    fn param(&self, name: &str) -> Option<f64> {
        match name {
            "qb" => Some(self.qb as f64),
            "centered" => Some(f64::from(u8::from(self.centered))),
            _ => None,
        }
    }
}
