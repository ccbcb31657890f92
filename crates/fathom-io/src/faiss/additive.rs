//! Additive-quantizer records, read and written side by side: the residual quantizer
//! (`write_AdditiveQuantizer` + `write_ResidualQuantizer`: `d` u64, `M` u64, `nbits`
//! vec<u64>, `is_trained`, codebooks, search type i32, norm range, then `train_type` and
//! `max_beam_size`), `IxRq` (flat; the legacy `IxRQ` is read) and `IwRQ` (IVF).

use fathom_core::Result;
use fathom_index::ivf::IvfResidualQuantizer;
use fathom_index::{Index, IndexResidualQuantizer};
use fathom_quant::residual::{AqSearchType, ResidualQuantizer};

use super::cursor::{Cursor, MAX_DIM};
use super::header::{check_ntotal, read_header, write_header};
use super::ivf::{finish_ivf, read_ivf_header};
use super::sink::Sink;

fn read_nbits(c: &mut Cursor<'_>, m: usize) -> Result<Vec<usize>> {
    let nbits = c.vec_len::<u64>("additive-quantizer nbits", m)?;
    nbits
        .iter()
        .map(|&b| {
            if (1..=16).contains(&b) {
                Ok(b as usize)
            } else {
                Err(c.err(format!("codebook of {b} bits; fathom reads 1 to 16")))
            }
        })
        .collect()
}

fn codebook_len(c: &Cursor<'_>, nbits: &[usize], d: usize) -> Result<usize> {
    nbits
        .iter()
        .map(|&b| 1usize << b)
        .sum::<usize>()
        .checked_mul(d)
        .ok_or_else(|| c.err("codebooks overflow"))
}

/// The residual quantizer record (`legacy`: the old `IxRQ` field order).
fn read_rq(c: &mut Cursor<'_>, d_index: usize, legacy: bool) -> Result<ResidualQuantizer> {
    let d = c.u64_in("additive-quantizer d", MAX_DIM)?;
    let m = c.u64_in("additive-quantizer M", 4096)?;
    if d != d_index || m == 0 {
        return Err(c.err(format!(
            "an additive quantizer of d = {d}, M = {m} in an index of d = {d_index}"
        )));
    }
    let nbits = read_nbits(c, m)?;
    let is_trained = c.bool("is_trained")?;
    let (train_type, beam) = if legacy {
        (c.i32("train_type")?, c.i32("max_beam_size")?)
    } else {
        (0, 0)
    };
    let len = codebook_len(c, &nbits, d)?;
    let codebooks = c.vec::<f32>("codebooks")?;
    if !codebooks.is_empty() && codebooks.len() != len {
        return Err(c.err(format!(
            "codebooks hold {} floats; the codebooks need {len}",
            codebooks.len()
        )));
    }
    let st = AqSearchType::from_code(c.i32("search type")?).map_err(|e| c.err(e))?;
    let norm_min = c.f32("norm_min")?;
    let norm_max = c.f32("norm_max")?;
    if !legacy && matches!(st.code(), 6..=9) {
        return Err(c.err(format!(
            "norm encoding {} is not read by fathom yet",
            st.factory_suffix()
        )));
    }
    let (train_type, beam) = if legacy {
        (train_type, beam)
    } else {
        (c.i32("train_type")?, c.i32("max_beam_size")?)
    };
    if beam <= 0 {
        return Err(c.err(format!("max_beam_size is {beam}; expected ≥ 1")));
    }
    let mut rq = if is_trained && !codebooks.is_empty() {
        ResidualQuantizer::from_parts(d, nbits, codebooks, st, norm_min, norm_max)
    } else {
        ResidualQuantizer::new(d, nbits, st)
    }
    .map_err(|e| c.err(e))?;
    rq.train_type = train_type;
    rq.max_beam_size = beam as usize;
    Ok(rq)
}

fn write_rq(s: &mut Sink<'_>, rq: &ResidualQuantizer) -> Result<()> {
    s.usize(rq.d())?;
    s.usize(rq.m())?;
    let nbits: Vec<u64> = rq.nbits().iter().map(|&b| b as u64).collect();
    s.vec(&nbits)?;
    s.bool(rq.is_trained())?;
    s.vec(rq.codebooks())?;
    s.i32(rq.search_type().code())?;
    let (lo, hi) = rq.norm_range();
    s.f32(lo)?;
    s.f32(hi)?;
    s.i32(rq.train_type)?;
    s.i32(rq.max_beam_size as i32)
}

/// `IxRq` and the legacy `IxRQ`.
pub(super) fn read_flat_body(
    c: &mut Cursor<'_>,
    fourcc: &[u8; 4],
) -> Result<IndexResidualQuantizer> {
    let h = read_header(c)?;
    let rq = read_rq(c, h.d, fourcc == b"IxRQ")?;
    let code_size = c.u64("code_size")?;
    if code_size != rq.code_size() as u64 {
        return Err(c.err(format!(
            "code_size is {code_size}; the quantizer's codes are {} bytes",
            rq.code_size()
        )));
    }
    let len = h
        .ntotal
        .checked_mul(rq.code_size())
        .ok_or_else(|| c.err("codes overflow"))?;
    let codes = c.vec_len::<u8>("residual-quantizer codes", len)?;
    let mut index = IndexResidualQuantizer::from_quantizer(rq, h.metric).map_err(|e| c.err(e))?;
    index.add_codes(&codes).map_err(|e| c.err(e))?;
    check_ntotal(c, &h, index.ntotal(), "the codes")?;
    Ok(index)
}

pub(super) fn write_flat(s: &mut Sink<'_>, index: &IndexResidualQuantizer) -> Result<()> {
    s.fourcc(b"IxRq")?;
    write_header(s, index)?;
    write_rq(s, index.rq())?;
    s.usize(index.rq().code_size())?;
    s.vec(index.codes())
}

/// `IwRQ`.
pub(super) fn read_ivf_body(c: &mut Cursor<'_>) -> Result<Box<dyn Index>> {
    let ivf = read_ivf_header(c)?;
    let code_size = c.u64("code_size")?;
    let rq = read_rq(c, ivf.h.d, false)?;
    if code_size != rq.code_size() as u64 {
        return Err(c.err(format!(
            "code_size is {code_size}; the quantizer's codes are {} bytes",
            rq.code_size()
        )));
    }
    let by_residual = c.bool("by_residual")?;
    c.i32("use_precomputed_table")?;
    let codec = IvfResidualQuantizer::from_rq(rq);
    Ok(Box::new(finish_ivf(c, ivf, codec, by_residual)?))
}

/// The codec part of `IwRQ`, after the IVF header.
pub(super) fn write_ivf_codec(
    s: &mut Sink<'_>,
    codec: &IvfResidualQuantizer,
    by_residual: bool,
) -> Result<()> {
    s.usize(codec.rq().code_size())?;
    write_rq(s, codec.rq())?;
    s.bool(by_residual)?;
    s.i32(0)
}
