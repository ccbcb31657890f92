//! Vector-transform records (`rrot`, `Pcam`, `LTra`, `VNrm`, `VCnt`, `RmDT`).

use fathom_core::Result;
use fathom_linalg::{
    CenteringTransform, LinearTransform, NormalizationTransform, PcaMatrix, RandomRotationMatrix,
    RemapDimensionsTransform, TransformView, VectorTransform,
};

use super::cursor::{Cursor, MAX_DIM};
use super::header::unsupported;
use super::sink::Sink;

/// The common trailer of every transform record.
struct Trailer {
    d_in: usize,
    d_out: usize,
    is_trained: bool,
}

fn read_trailer(c: &mut Cursor<'_>) -> Result<Trailer> {
    Ok(Trailer {
        d_in: c.i32_in("transform d_in", MAX_DIM)?,
        d_out: c.i32_in("transform d_out", MAX_DIM)?,
        is_trained: c.bool("transform is_trained")?,
    })
}

/// `have_bias`, `A`, `b`, then the trailer: a [`LinearTransform`].
fn read_linear(c: &mut Cursor<'_>) -> Result<LinearTransform> {
    let have_bias = c.bool("have_bias")?;
    let a = c.vec::<f32>("transform matrix A")?;
    let b = c.vec::<f32>("transform bias b")?;
    let t = read_trailer(c)?;
    if !have_bias && !b.is_empty() {
        return Err(c.err("a transform without bias stores a bias vector"));
    }
    if t.is_trained && a.len() != t.d_in * t.d_out {
        return Err(c.err(format!(
            "trained transform matrix has {} values; expected d_out × d_in = {} × {}",
            a.len(),
            t.d_out,
            t.d_in
        )));
    }
    let a = if t.is_trained { a } else { Vec::new() };
    LinearTransform::from_parts(t.d_in, t.d_out, a, b).map_err(|e| c.err(e))
}

/// One transform record.
pub(crate) fn read_transform(c: &mut Cursor<'_>) -> Result<Box<dyn VectorTransform>> {
    let fourcc = c.fourcc()?;
    Ok(match &fourcc {
        b"rrot" => {
            let lt = read_linear(c)?;
            if lt.is_set() {
                Box::new(RandomRotationMatrix::from_linear(lt).map_err(|e| c.err(e))?)
            } else {
                Box::new(RandomRotationMatrix::new(lt.d_in, lt.d_out).map_err(|e| c.err(e))?)
            }
        }
        b"LTra" => Box::new(read_linear(c)?),
        b"Pcam" | b"PcAm" | b"PCAm" => {
            let eigen_power = c.f32("PCA eigen_power")?;
            let epsilon = if &fourcc == b"Pcam" {
                c.f32("PCA epsilon")?
            } else {
                0.0
            };
            let random_rotation = c.bool("PCA random_rotation")?;
            let balanced_bins = if &fourcc == b"PCAm" {
                0
            } else {
                c.i32_in("PCA balanced_bins", MAX_DIM)?
            };
            let mean = c.vec::<f32>("PCA mean")?;
            let eigenvalues = c.vec::<f32>("PCA eigenvalues")?;
            let pca_mat = c.vec::<f32>("PCA matrix")?;
            let lt = read_linear(c)?;
            Box::new(
                PcaMatrix::from_parts(
                    lt,
                    eigen_power,
                    epsilon,
                    random_rotation,
                    balanced_bins,
                    mean,
                    eigenvalues,
                    pca_mat,
                )
                .map_err(|e| c.err(e))?,
            )
        }
        b"VNrm" => {
            let norm = c.f32("normalization norm")?;
            let t = read_trailer(c)?;
            if norm != 2.0 {
                return Err(c.err(format!(
                    "normalization by the L{norm} norm is not supported; fathom normalizes by L2"
                )));
            }
            if t.d_in != t.d_out {
                return Err(c.err("a normalization must keep the dimension"));
            }
            Box::new(NormalizationTransform::new(t.d_in).map_err(|e| c.err(e))?)
        }
        b"VCnt" => {
            let mean = c.vec::<f32>("centering mean")?;
            let t = read_trailer(c)?;
            if t.d_in != t.d_out {
                return Err(c.err("a centering must keep the dimension"));
            }
            if t.is_trained {
                if mean.len() != t.d_in {
                    return Err(c.err(format!(
                        "centering mean has {} values; expected d = {}",
                        mean.len(),
                        t.d_in
                    )));
                }
                Box::new(CenteringTransform::from_mean(mean).map_err(|e| c.err(e))?)
            } else {
                Box::new(CenteringTransform::new(t.d_in).map_err(|e| c.err(e))?)
            }
        }
        b"RmDT" => {
            let map = c.vec::<i32>("dimension map")?;
            let t = read_trailer(c)?;
            if map.len() != t.d_out {
                return Err(c.err(format!(
                    "dimension map has {} entries; expected d_out = {}",
                    map.len(),
                    t.d_out
                )));
            }
            let map = map
                .iter()
                .map(|&j| (j >= 0).then_some(j as usize))
                .collect();
            Box::new(RemapDimensionsTransform::new(t.d_in, map).map_err(|e| c.err(e))?)
        }
        other => {
            return Err(c.err(format!(
                "unknown or unsupported vector transform {:?}; fathom reads rrot, LTra, Pcam, \
                 PcAm, PCAm, VNrm, VCnt and RmDT",
                String::from_utf8_lossy(other)
            )));
        }
    })
}

fn write_trailer(s: &mut Sink<'_>, t: &dyn VectorTransform) -> Result<()> {
    s.i32(t.d_in() as i32)?;
    s.i32(t.d_out() as i32)?;
    s.bool(t.is_trained())
}

fn write_linear(s: &mut Sink<'_>, lt: &LinearTransform) -> Result<()> {
    s.bool(!lt.b.is_empty())?;
    s.vec(&lt.a)?;
    s.vec(&lt.b)?;
    write_trailer(s, lt)
}

/// One transform record.
pub(crate) fn write_transform(s: &mut Sink<'_>, t: &dyn VectorTransform) -> Result<()> {
    match t.view() {
        TransformView::RandomRotation(r) => {
            s.fourcc(b"rrot").and_then(|_| write_linear(s, r.linear()))
        }
        TransformView::Linear(lt) => s.fourcc(b"LTra").and_then(|_| write_linear(s, lt)),
        // As Faiss: an OPQ matrix is stored as the plain linear map it learnt.
        TransformView::Opq(o) => s.fourcc(b"LTra").and_then(|_| write_linear(s, o.linear())),
        TransformView::Pca(p) => {
            s.fourcc(b"Pcam")?;
            s.f32(p.eigen_power)?;
            s.f32(p.epsilon)?;
            s.bool(p.random_rotation)?;
            s.i32(p.balanced_bins as i32)?;
            s.vec(p.mean())?;
            s.vec(p.eigenvalues())?;
            s.vec(p.pca_matrix())?;
            write_linear(s, p.linear())
        }
        TransformView::Normalization(_) => s
            .fourcc(b"VNrm")
            .and_then(|_| s.f32(2.0))
            .and_then(|_| write_trailer(s, t)),
        TransformView::Centering(ct) => s
            .fourcc(b"VCnt")
            .and_then(|_| s.vec(ct.mean()))
            .and_then(|_| write_trailer(s, t)),
        TransformView::RemapDimensions(r) => {
            let map: Vec<i32> = r.map().iter().map(|m| m.map_or(-1, |j| j as i32)).collect();
            s.fourcc(b"RmDT")
                .and_then(|_| s.vec(&map))
                .and_then(|_| write_trailer(s, t))
        }
        TransformView::Other => Err(unsupported(&format!(
            "the vector transform {}",
            t.description()
        ))),
    }
}
