//! Indexes around other indexes, read and written: id maps (`IxMp`, `IxM2`),
//! pre-transforms (`IxPT`) and refinement (`IxRF`). Every generic form writes as its boxed
//! form does: the writer sees them through `Index::view`.

use fathom_core::{Idx, Result};
use fathom_index::{Index, IndexIdMap, IndexIdMap2, IndexPreTransform, IndexRefine};
use fathom_linalg::VectorTransform;

use super::cursor::Cursor;
use super::header::{check_nested, check_ntotal, read_header, write_header};
use super::read::read_index;
use super::sink::Sink;
use super::transform::{read_transform, write_transform};
use super::write::write_index;

/// `IxMp` / `IxM2`: an id map over the nested index.
pub(super) fn read_id_map_body(c: &mut Cursor<'_>, fourcc: &[u8; 4]) -> Result<Box<dyn Index>> {
    let h = read_header(c)?;
    let sub = read_index(c)?;
    check_nested(c, &h, &*sub, "the IDMap's index")?;
    check_ntotal(c, &h, sub.ntotal(), "the IDMap's index")?;
    let ids = c.vec_len::<i64>("id map", h.ntotal)?;
    Ok(if fourcc == b"IxMp" {
        Box::new(IndexIdMap::from_parts(sub, ids).map_err(|e| c.err(e))?)
    } else {
        Box::new(IndexIdMap2::from_parts(sub, ids).map_err(|e| c.err(e))?)
    })
}

/// `IxRF`: a base index re-ranked by a refinement index.
pub(super) fn read_refine_body(c: &mut Cursor<'_>) -> Result<IndexRefine> {
    let h = read_header(c)?;
    let base = read_index(c)?;
    let refine = read_index(c)?;
    check_nested(c, &h, &*base, "the refined index")?;
    check_nested(c, &h, &*refine, "the refinement index")?;
    let k_factor = c.f32("k_factor")?;
    if !(1.0..=1000.0).contains(&k_factor) {
        return Err(c.err(format!("k_factor is {k_factor}; expected 1..=1000")));
    }
    let mut r = IndexRefine::new(base, refine).map_err(|e| c.err(e))?;
    r.k_factor = k_factor;
    Ok(r)
}

pub(super) fn read_pretransform_body(c: &mut Cursor<'_>) -> Result<Box<dyn Index>> {
    let h = read_header(c)?;
    let nt = c.i32_in("transform chain length", super::cursor::MAX_DEPTH)?;
    let mut chain = Vec::with_capacity(nt);
    for _ in 0..nt {
        chain.push(c.nested(read_transform)?);
    }
    let sub = read_index(c)?;
    let mut d = h.d;
    for t in &chain {
        if t.d_in() != d {
            return Err(c.err(format!(
                "transform {} takes {} dimensions but receives {d}",
                t.description(),
                t.d_in()
            )));
        }
        d = t.d_out();
    }
    if sub.dim() != d {
        return Err(c.err(format!(
            "the transforms output {d} dimensions but the index takes {}",
            sub.dim()
        )));
    }
    check_ntotal(c, &h, sub.ntotal(), "the transformed index")?;
    let Some(last) = chain.pop() else {
        // An empty chain transforms nothing: the index itself serves.
        return Ok(sub);
    };
    let mut pt = IndexPreTransform::new(last, sub).map_err(|e| c.err(e))?;
    while let Some(t) = chain.pop() {
        pt.prepend_transform(t).map_err(|e| c.err(e))?;
    }
    Ok(Box::new(pt))
}

/// `IxMp` / `IxM2`.
pub(super) fn write_id_map(
    s: &mut Sink<'_>,
    outer: &dyn Index,
    inner: &dyn Index,
    ids: &[Idx],
    two_way: bool,
) -> Result<()> {
    s.fourcc(if two_way { b"IxM2" } else { b"IxMp" })?;
    write_header(s, outer)?;
    write_index(s, inner)?;
    s.vec(ids)
}

/// `IxPT`.
pub(super) fn write_pretransform(
    s: &mut Sink<'_>,
    outer: &dyn Index,
    transforms: &[Box<dyn VectorTransform>],
    inner: &dyn Index,
) -> Result<()> {
    s.fourcc(b"IxPT")?;
    write_header(s, outer)?;
    s.i32(transforms.len() as i32)?;
    for t in transforms {
        write_transform(s, &**t)?;
    }
    write_index(s, inner)
}

/// `IxRF`.
pub(super) fn write_refine(s: &mut Sink<'_>, r: &IndexRefine) -> Result<()> {
    s.fourcc(b"IxRF")?;
    write_header(s, r)?;
    write_index(s, r.base())?;
    write_index(s, r.refine())?;
    s.f32(r.k_factor)
}
