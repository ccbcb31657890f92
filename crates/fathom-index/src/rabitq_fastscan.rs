//! `IndexRaBitQFastScan`: RaBitQ codes scanned with the 4-bit fast-scan kernel (Faiss's
//! `IndexRaBitQFastScan`, factory `RaBitQfs[b][_bbs]`), and the block layout and scan it
//! shares with the IVF form (`ivf::IvfRaBitQFastScan`).
//!
//! A RaBitQ code's sign bits, read four at a time, are `⌈d/4⌉` 4-bit columns: one
//! 16-entry table per group of four coordinates holds the query's dot product with each
//! sign pattern, and the fast-scan kernel sums them for 32 codes per block. The sum,
//! turned back into a float, replaces the popcount dot product of `IndexRaBitQ`; the
//! codes' factors then give the estimate as there. With extended codes (`b > 1`) that
//! estimate and its error bound only decide which codes get the full estimate, which is
//! what is returned (as Faiss).

use fathom_core::{Error, IdSelector, Idx, MetricType, Result, SearchParams, SearchResult, check};
use fathom_invlists::CodePacker;
use fathom_kernels::TopK;
use fathom_kernels::codes::fastscan::{self as kern, BLOCK, block_bytes};
use fathom_quant::fastscan::{get_code, packed_nsq, set_code};
use fathom_quant::rabitq::{RaBitQQuery, RaBitQuantizer};
use rayon::prelude::*;

use crate::code_scan::to_result;
use crate::fastscan::{QUERY_GROUP, check_bbs, search_blocks};
use crate::rabitq::rabitq_key;
use crate::{Index, check_search};

/// Faiss's default query bits for the fast-scan forms (8; `IndexRaBitQ` uses 4).
pub const DEFAULT_FAST_SCAN_QB: u8 = 8;

/// Checks what the fast-scan forms need of a RaBitQ quantizer: the kernel sums at most
/// 256 columns in 16 bits, so `d ≤ 1024`.
pub(crate) fn check_fast_scan_d(d: usize) -> Result<()> {
    if d > 1024 {
        return Err(Error::invalid(format!(
            "RaBitQ fast-scan sums ⌈d/4⌉ 8-bit table entries in 16 bits: d must be at most \
             1024, got {d} (use IndexRaBitQ)"
        )));
    }
    Ok(())
}

/// Checks query bits for the fast-scan forms (1 to 8, as Faiss).
pub(crate) fn check_fast_scan_qb(qb: f64) -> Result<u8> {
    let v = crate::param_values::count("qb", qb)?;
    if !(1..=8).contains(&v) {
        return Err(Error::invalid(format!(
            "qb must be 1 to 8 for RaBitQ fast-scan, got {v}"
        )));
    }
    Ok(v as u8)
}

/// Where RaBitQ codes sit in a fast-scan block of 32: the sign bits as `⌈d/4⌉` 4-bit
/// columns in the kernel's layout (coordinate `4m + t` at bit `t` of column `m`), then
/// each code's remaining bytes (factors, extra bits) one after another — Faiss's block
/// at `bbs = 32`, so a block is `32 × code_size` bytes.
#[derive(Debug, Clone)]
pub struct RaBitQPacker {
    groups: usize,
    sign_bytes: usize,
    code_size: usize,
}

impl RaBitQPacker {
    /// The layout of `quantizer`'s codes.
    pub fn new(quantizer: &RaBitQuantizer) -> Self {
        RaBitQPacker {
            groups: quantizer.d().div_ceil(4),
            sign_bytes: quantizer.sign_bytes(),
            code_size: quantizer.code_size(),
        }
    }
    /// Kernel columns (`⌈d/4⌉` rounded up to even).
    pub fn nsq(&self) -> usize {
        packed_nsq(self.groups)
    }
    /// Bytes of a block's sign columns.
    fn sign_block(&self) -> usize {
        block_bytes(self.nsq())
    }
    fn aux_len(&self) -> usize {
        self.code_size - self.sign_bytes
    }
    /// The bytes after the sign bits of the codes of `block`, one after another.
    #[inline]
    pub fn aux_run<'b>(&self, block: &'b [u8]) -> &'b [u8] {
        &block[self.sign_block()..]
    }
    /// The bytes after the sign bits of code `i` (`< 32`) of `block`.
    #[inline]
    pub fn aux<'b>(&self, block: &'b [u8], i: usize) -> &'b [u8] {
        let at = self.sign_block() + i * self.aux_len();
        &block[at..at + self.aux_len()]
    }
    /// Blocks holding `n` codes.
    pub fn blocks_len(&self, n: usize) -> usize {
        n.div_ceil(BLOCK) * self.block_size()
    }
}

impl CodePacker for RaBitQPacker {
    fn code_size(&self) -> usize {
        self.code_size
    }
    fn nvec(&self) -> usize {
        BLOCK
    }
    fn block_size(&self) -> usize {
        BLOCK * self.code_size
    }
    fn pack_1(&self, code: &[u8], i: usize, block: &mut [u8]) {
        let mut idx = [0u32; 256];
        for (m, v) in idx.iter_mut().enumerate().take(self.groups) {
            *v = ((code[m / 2] >> (4 * (m % 2))) & 15) as u32;
        }
        let sb = self.sign_block();
        set_code(&mut block[..sb], self.groups, i, &idx[..self.groups]);
        let (aux, at) = (self.aux_len(), sb + i * self.aux_len());
        block[at..at + aux].copy_from_slice(&code[self.sign_bytes..]);
    }
    fn unpack_1(&self, block: &[u8], i: usize, code: &mut [u8]) {
        let mut idx = [0u32; 256];
        let sb = self.sign_block();
        get_code(&block[..sb], self.groups, i, &mut idx[..self.groups]);
        code[..self.sign_bytes].fill(0);
        for (m, &v) in idx.iter().enumerate().take(self.groups) {
            code[m / 2] |= (v as u8) << (4 * (m % 2));
        }
        code[self.sign_bytes..].copy_from_slice(self.aux(block, i));
    }
}

/// A query ready for the fast-scan: the RaBitQ query, its 8-bit tables and how to read
/// the kernel's sums back (`sum / a + b`).
pub(crate) struct FastScanQuery {
    pub(crate) query: RaBitQQuery,
    pub(crate) lut: Vec<u8>,
    a: f32,
    b: f32,
}

impl FastScanQuery {
    /// Tables for `query` (`tables`: scratch; `lut`: a buffer to reuse).
    pub(crate) fn new(
        query: RaBitQQuery,
        packer: &RaBitQPacker,
        tables: &mut Vec<f32>,
        mut lut: Vec<u8>,
    ) -> Result<Self> {
        lut.clear();
        lut.resize(packer.nsq() * 16, 0);
        let (a, b) = query.fast_scan_lut(tables, &mut lut)?;
        Ok(FastScanQuery { query, lut, a, b })
    }

    /// The query and table buffers, for the next [`FastScanQuery::new`].
    pub(crate) fn into_parts(self) -> (RaBitQQuery, Vec<u8>) {
        (self.query, self.lut)
    }

    /// Scans the first `n` codes of `blocks` (whole blocks, `packer`'s layout), whose
    /// ids are `id(i)`, into `top`. `sums` and `code` are scratch buffers.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn scan(
        &self,
        packer: &RaBitQPacker,
        blocks: &[u8],
        n: usize,
        id: impl Fn(usize) -> Idx,
        top: &mut TopK,
        selector: Option<&dyn IdSelector>,
        sums: &mut Vec<u16>,
        code: &mut Vec<u8>,
    ) {
        let nb = n.div_ceil(BLOCK);
        let bs = packer.block_size();
        sums.resize(nb * BLOCK, 0);
        kern::accumulate_strided(packer.nsq(), bs, &blocks[..nb * bs], &self.lut, sums);
        self.push_sums(packer, blocks, &sums[..n], id, top, selector, code);
    }

    /// The keys of the first `out.len()` codes of `blocks` (full estimates for extended
    /// codes), as range search wants them.
    pub(crate) fn keys(
        &self,
        packer: &RaBitQPacker,
        blocks: &[u8],
        out: &mut [f32],
        sums: &mut Vec<u16>,
        code: &mut Vec<u8>,
    ) {
        let nb = out.len().div_ceil(BLOCK);
        let bs = packer.block_size();
        sums.resize(nb * BLOCK, 0);
        kern::accumulate_strided(packer.nsq(), bs, &blocks[..nb * bs], &self.lut, sums);
        let ip = self.query.metric() == MetricType::InnerProduct;
        let inv_a = 1.0 / self.a;
        for (i, (o, &s)) in out.iter_mut().zip(sums.iter()).enumerate() {
            let block = &blocks[(i / BLOCK) * bs..(i / BLOCK + 1) * bs];
            *o = if self.query.nb_bits() == 1 {
                let sum = s as f32 * inv_a + self.b;
                self.query
                    .key_from_table_sum(sum, packer.aux(block, i % BLOCK))
            } else {
                code.resize(packer.code_size, 0);
                packer.unpack_1(block, i % BLOCK, code);
                rabitq_key(&self.query, code, ip)
            };
        }
    }

    /// Offers codes `0..sums.len()` of `blocks` to `top` given their kernel sums.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_sums(
        &self,
        packer: &RaBitQPacker,
        blocks: &[u8],
        sums: &[u16],
        id: impl Fn(usize) -> Idx,
        top: &mut TopK,
        selector: Option<&dyn IdSelector>,
        code: &mut Vec<u8>,
    ) {
        let bs = packer.block_size();
        let accept = |id: Idx| selector.is_none_or(|s| s.is_member(id));
        let one_bit = self.query.nb_bits() == 1;
        let ip = self.query.metric() == MetricType::InnerProduct;
        let inv_a = 1.0 / self.a;
        let mut keys = [0.0f32; BLOCK];
        let mut ids = [0 as Idx; BLOCK];
        let aux_len = packer.aux_len();
        for (b, run) in sums.chunks(BLOCK).enumerate() {
            let block = &blocks[b * bs..(b + 1) * bs];
            let len = run.len();
            let aux = packer.aux_run(block);
            self.query
                .keys_from_table_sums(run, inv_a, self.b, aux, aux_len, &mut keys[..len]);
            for (i, slot) in ids[..len].iter_mut().enumerate() {
                *slot = id(b * BLOCK + i);
            }
            if one_bit {
                top.push_ids(&keys[..len], &ids[..len], accept);
                continue;
            }
            for i in 0..len {
                // Faiss's two stages: the full estimate only where the 1-bit one, less
                // its error bound, could still enter the results.
                let aux = packer.aux(block, i);
                if !accept(ids[i]) || !self.query.aux_may_beat(aux, keys[i], top.threshold()) {
                    continue;
                }
                code.resize(packer.code_size, 0);
                packer.unpack_1(block, i, code);
                top.push(rabitq_key(&self.query, code, ip), ids[i]);
            }
        }
    }
}

/// RaBitQ codes in fast-scan blocks, searched exhaustively (Faiss's
/// `IndexRaBitQFastScan`, factory `RaBitQfs`, `RaBitQfs<b>`, `RaBitQfs<b>_<bbs>`). The
/// codes are `IndexRaBitQ`'s, byte for byte; the search sums 8-bit tables instead of
/// popcounts, so 1-bit distances carry the tables' rounding (about 0.1 % at d = 64).
/// Queries are quantized to `qb` bits (1 to 8; Faiss's default for this index, 8).
///
/// ```
/// use fathom_index::{Index, IndexRaBitQFastScan, MetricType};
/// let d = 32;
/// let x: Vec<f32> = (0..500 * d).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
/// let mut index = IndexRaBitQFastScan::new(d, MetricType::L2, 4).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// assert_eq!(index.search(&x[..d], 1).unwrap().labels, vec![0]);
/// ```
#[derive(Debug, Clone)]
pub struct IndexRaBitQFastScan {
    quantizer: RaBitQuantizer,
    packer: RaBitQPacker,
    metric: MetricType,
    center: Vec<f32>,
    trained: bool,
    /// Bits per query coordinate (1 to 8).
    qb: u8,
    /// Quantize queries over a range centred on zero (Faiss's `centered`).
    pub centered: bool,
    bbs: usize,
    blocks: Vec<u8>,
    ntotal: usize,
}

impl IndexRaBitQFastScan {
    /// An untrained index of `d`-dimensional vectors (`d ≤ 1024`), `nb_bits` (1 to 9) bits
    /// per coordinate, compared with `metric` (L2 or inner product).
    pub fn new(d: usize, metric: MetricType, nb_bits: usize) -> Result<Self> {
        check_fast_scan_d(d)?;
        let quantizer = RaBitQuantizer::new(d, metric, nb_bits)?;
        Ok(IndexRaBitQFastScan {
            packer: RaBitQPacker::new(&quantizer),
            quantizer,
            metric,
            center: Vec::new(),
            trained: false,
            qb: DEFAULT_FAST_SCAN_QB,
            centered: false,
            bbs: 32,
            blocks: Vec::new(),
            ntotal: 0,
        })
    }

    /// An index with a given centre and query bits (as read from a file).
    pub fn from_center(
        d: usize,
        metric: MetricType,
        nb_bits: usize,
        center: Vec<f32>,
        qb: u8,
    ) -> Result<Self> {
        let mut index = Self::new(d, metric, nb_bits)?;
        crate::rabitq::check_center(d, &center)?;
        index.set_qb(qb)?;
        index.center = center;
        index.trained = true;
        Ok(index)
    }

    /// The quantizer.
    pub fn rabitq(&self) -> &RaBitQuantizer {
        &self.quantizer
    }
    /// The block layout of the codes.
    pub fn packer(&self) -> &RaBitQPacker {
        &self.packer
    }
    /// The centre codes are relative to (empty before training).
    pub fn center(&self) -> &[f32] {
        &self.center
    }
    /// Bits per query coordinate.
    pub fn qb(&self) -> u8 {
        self.qb
    }
    /// Sets the bits per query coordinate (1 to 8).
    pub fn set_qb(&mut self, qb: u8) -> Result<()> {
        self.qb = check_fast_scan_qb(qb as f64)?;
        Ok(())
    }
    /// Codes per block in Faiss's file layout (`bbs`, factory `RaBitQfs_64`; 32 by
    /// default). fathom's own blocks hold 32 whatever this says.
    pub fn bbs(&self) -> usize {
        self.bbs
    }
    /// Sets the Faiss block size: a positive multiple of 32.
    pub fn set_bbs(&mut self, bbs: usize) -> Result<()> {
        self.bbs = check_bbs(bbs)?;
        Ok(())
    }
    /// The blocks of codes (see [`RaBitQPacker`]).
    pub fn blocks(&self) -> &[u8] {
        &self.blocks
    }

    /// Appends RaBitQ codes (`n × code_size` bytes, as `IndexRaBitQ` stores them).
    pub fn add_codes(&mut self, codes: &[u8]) -> Result<()> {
        let cs = self.quantizer.code_size();
        let n = check::codes("RaBitQ codes", codes, cs)?;
        let new_len = self.packer.blocks_len(self.ntotal + n);
        self.blocks
            .try_reserve(new_len.saturating_sub(self.blocks.len()))
            .map_err(|_| Error::invalid(format!("cannot allocate {new_len} bytes for codes")))?;
        self.blocks.resize(new_len, 0);
        let bs = self.packer.block_size();
        for (i, c) in codes.chunks_exact(cs).enumerate() {
            let at = self.ntotal + i;
            let block = &mut self.blocks[(at / BLOCK) * bs..(at / BLOCK + 1) * bs];
            self.packer.pack_1(c, at % BLOCK, block);
        }
        self.ntotal += n;
        Ok(())
    }

    /// The RaBitQ code of vector `i` (as `IndexRaBitQ` stores it).
    pub fn code(&self, i: usize) -> Vec<u8> {
        let bs = self.packer.block_size();
        let mut code = vec![0u8; self.quantizer.code_size()];
        let block = &self.blocks[(i / BLOCK) * bs..(i / BLOCK + 1) * bs];
        self.packer.unpack_1(block, i % BLOCK, &mut code);
        code
    }

    fn encode(&self, x: &[f32]) -> Result<Vec<u8>> {
        if !self.trained {
            return Err(Error::NotTrained("RaBitQ fast-scan encoding".into()));
        }
        let (d, cs) = (self.quantizer.d(), self.quantizer.code_size());
        let n = check::vectors("encoded", x, d)?;
        let mut codes = vec![0u8; n * cs];
        codes
            .par_chunks_mut(cs)
            .zip(x.par_chunks(d))
            .try_for_each(|(c, v)| self.quantizer.encode(v, Some(&self.center), c))?;
        Ok(codes)
    }
}

impl Index for IndexRaBitQFastScan {
    fn dim(&self) -> usize {
        self.quantizer.d()
    }
    fn ntotal(&self) -> usize {
        self.ntotal
    }
    fn metric(&self) -> MetricType {
        self.metric
    }
    fn is_trained(&self) -> bool {
        self.trained
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        let d = self.quantizer.d();
        check::vectors("training", x, d)?;
        self.center = crate::rabitq::training_mean(x, d);
        self.trained = true;
        Ok(())
    }
    fn add(&mut self, x: &[f32]) -> Result<()> {
        let codes = self.encode(x)?;
        self.add_codes(&codes)
    }

    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let nq = check_search(self, queries, k)?;
        if !self.trained {
            return Err(Error::NotTrained("search IndexRaBitQFastScan".into()));
        }
        let d = self.dim();
        let prepared: Vec<FastScanQuery> = queries
            .par_chunks(d)
            .map_init(Vec::new, |tables, q| {
                let center = Some(&self.center[..]);
                let query =
                    (self.quantizer).query_for_tables(q, center, self.qb, self.centered, None)?;
                FastScanQuery::new(query, &self.packer, tables, Vec::new())
            })
            .collect::<Result<_>>()?;
        let nblocks = self.ntotal.div_ceil(BLOCK);
        let (bs, nsq) = (self.packer.block_size(), self.packer.nsq());
        let sel = params.selector;
        // The tables side by side, once: the kernel reads a group's as one run.
        let all_luts: Vec<u8> = prepared
            .iter()
            .flat_map(|p| p.lut.iter().copied())
            .collect();
        let lut_len = nsq * 16;
        let tops = search_blocks(nq, k, nblocks, |g, b0, b1, tops, buf| {
            let q0 = g * QUERY_GROUP;
            let group = &prepared[q0..q0 + tops.len()];
            let luts = &all_luts[q0 * lut_len..(q0 + tops.len()) * lut_len];
            let mut code = Vec::new();
            // Chunks of blocks: each read once for the group's queries.
            let mut b = b0;
            while b < b1 {
                let e = (b + crate::fastscan::BLOCKS_PER_CHUNK).min(b1);
                let nb = e - b;
                buf.resize(group.len() * nb * BLOCK, 0);
                kern::accumulate_strided(nsq, bs, &self.blocks[b * bs..e * bs], luts, buf);
                let count = (self.ntotal - b * BLOCK).min(nb * BLOCK);
                for (q, (p, top)) in group.iter().zip(tops.iter_mut()).enumerate() {
                    let sums = &buf[q * nb * BLOCK..q * nb * BLOCK + count];
                    let blocks = &self.blocks[b * bs..e * bs];
                    let first = b * BLOCK;
                    p.push_sums(
                        &self.packer,
                        blocks,
                        sums,
                        |i| (first + i) as Idx,
                        top,
                        sel,
                        &mut code,
                    );
                }
                b = e;
            }
        });
        to_result(tops, k, self.metric, |_, key| key)
    }

    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        if id < 0 || id as usize >= self.ntotal {
            return Err(Error::IdNotFound(id));
        }
        if !self.trained {
            return Err(Error::NotTrained(
                "reconstruct from IndexRaBitQFastScan".into(),
            ));
        }
        let mut x = vec![0.0; self.dim()];
        self.quantizer
            .decode(&self.code(id as usize), Some(&self.center), &mut x);
        Ok(x)
    }

    fn sa_code_size(&self) -> Result<usize> {
        Ok(self.quantizer.code_size())
    }
    fn sa_encode(&self, x: &[f32]) -> Result<Vec<u8>> {
        self.encode(x)
    }
    fn sa_decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        if !self.trained {
            return Err(Error::NotTrained("RaBitQ fast-scan decoding".into()));
        }
        let (d, cs) = (self.dim(), self.quantizer.code_size());
        let n = check::codes("RaBitQ codes", codes, cs)?;
        let mut out = vec![0.0f32; n * d];
        for (c, o) in codes.chunks_exact(cs).zip(out.chunks_exact_mut(d)) {
            self.quantizer.decode(c, Some(&self.center), o);
        }
        Ok(out)
    }
    fn add_sa_codes(&mut self, codes: &[u8], ids: Option<&[Idx]>) -> Result<()> {
        if ids.is_some() {
            return Err(Error::Unsupported(
                "IndexRaBitQFastScan numbers vectors by position; wrap it in IDMap for ids".into(),
            ));
        }
        self.add_codes(codes)
    }

    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        let kept: Vec<u8> = (0..self.ntotal)
            .filter(|&i| !selector.is_member(i as Idx))
            .flat_map(|i| self.code(i))
            .collect();
        let removed = self.ntotal - kept.len() / self.quantizer.code_size();
        self.reset()?;
        self.add_codes(&kept)?;
        Ok(removed)
    }

    fn reset(&mut self) -> Result<()> {
        self.blocks.clear();
        self.ntotal = 0;
        Ok(())
    }

    fn merge_from(&mut self, other: &mut dyn Index, add_id: Idx) -> Result<()> {
        let crate::IndexView::RaBitQFastScan(o) = other.view() else {
            return Err(Error::invalid(format!(
                "cannot merge {} into IndexRaBitQFastScan",
                other.description()
            )));
        };
        if add_id != 0 {
            return Err(Error::invalid(
                "IndexRaBitQFastScan numbers vectors by position: add_id must be 0",
            ));
        }
        if o.quantizer != self.quantizer || o.center != self.center {
            return Err(Error::invalid(
                "merging RaBitQ fast-scan indexes needs the same quantizer and centre",
            ));
        }
        let codes: Vec<u8> = (0..o.ntotal).flat_map(|i| o.code(i)).collect();
        self.add_codes(&codes)?;
        other.reset()
    }

    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        match name {
            "qb" => self.qb = check_fast_scan_qb(value)?,
            "centered" => self.centered = crate::param_values::flag(name, value)?,
            _ => {
                return Err(Error::invalid(format!(
                    "{} has no run-time parameter {name:?} (it has qb, centered)",
                    self.description()
                )));
            }
        }
        Ok(())
    }
    fn param(&self, name: &str) -> Option<f64> {
        match name {
            "qb" => Some(self.qb as f64),
            "centered" => Some(self.centered as u8 as f64),
            _ => None,
        }
    }

    fn description(&self) -> String {
        fast_scan_description(self.quantizer.nb_bits(), self.bbs)
    }

    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::RaBitQFastScan(self)
    }
}

/// `RaBitQfs[b][_bbs]`, the factory token of the fast-scan forms.
pub(crate) fn fast_scan_description(nb_bits: usize, bbs: usize) -> String {
    let b = if nb_bits == 1 {
        String::new()
    } else {
        nb_bits.to_string()
    };
    let bbs = if bbs == 32 {
        String::new()
    } else {
        format!("_{bbs}")
    };
    format!("RaBitQfs{b}{bbs}")
}
