//! `IndexIvfFlat`: full vectors in the lists.

use std::borrow::Cow;

use fathom_core::{Idx, MetricType, Result};

use super::{IndexIvf, IvfCodec, IvfContext, ListScanner};
use crate::Index;

/// The codec of [`IndexIvfFlat`]: a code is the vector's `d` floats, little-endian.
#[derive(Debug, Clone)]
pub struct IvfFlat {
    d: usize,
}

/// Full vectors in inverted lists (Faiss's `IndexIVFFlat`, factory `IVF4096,Flat`):
/// exact distances within the probed lists, `4·d + 8` bytes per vector.
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexIvfFlat, MetricType};
/// let d = 8;
/// let x: Vec<f32> = (0..1000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let quantizer = Box::new(IndexFlat::new_l2(d).unwrap());
/// let mut index = IndexIvfFlat::new(quantizer, 16, MetricType::L2).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// index.nprobe = 16; // every list: the exact result
/// assert_eq!(index.search(&x[..d], 1).unwrap().labels, vec![0]);
/// ```
pub type IndexIvfFlat = IndexIvf<IvfFlat>;

impl IndexIvf<IvfFlat> {
    /// An untrained IVF-Flat index over `quantizer` with `nlist` lists.
    pub fn new(quantizer: Box<dyn Index>, nlist: usize, metric: MetricType) -> Result<Self> {
        let d = quantizer.dim();
        super::check_metric(metric)?;
        IndexIvf::with_codec(quantizer, nlist, metric, IvfFlat { d }, false)
    }
}

/// The floats of a code slice, borrowed when aligned.
pub(crate) fn as_floats(codes: &[u8]) -> Cow<'_, [f32]> {
    match bytemuck::try_cast_slice::<u8, f32>(codes) {
        Ok(f) => Cow::Borrowed(f),
        Err(_) => Cow::Owned(
            codes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
    }
}

impl IvfFlat {
    /// The codec for `d`-dimensional vectors.
    pub fn new(d: usize) -> Self {
        IvfFlat { d }
    }
}

impl IvfCodec for IvfFlat {
    fn view(&self) -> super::IvfCodecView<'_> {
        super::IvfCodecView::Flat(self)
    }
    fn code_size(&self) -> usize {
        4 * self.d
    }
    fn is_trained(&self) -> bool {
        true
    }
    fn train(&mut self, _x: &[f32], _lists: &[Idx], _ctx: IvfContext<'_>) -> Result<()> {
        Ok(())
    }
    fn encode(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        for (c, v) in codes.chunks_exact_mut(4).zip(x) {
            c.copy_from_slice(&v.to_le_bytes());
        }
        Ok(())
    }
    fn decode(&self, code: &[u8], out: &mut [f32]) {
        out.copy_from_slice(&as_floats(code));
    }
    fn scanner<'a>(
        &'a self,
        ctx: IvfContext<'a>,
        query: &'a [f32],
    ) -> Result<Box<dyn ListScanner + 'a>> {
        Ok(Box::new(FlatScanner {
            ctx,
            query,
            residual: if ctx.by_residual {
                vec![0.0; query.len()]
            } else {
                Vec::new()
            },
            bias: 0.0,
        }))
    }
    fn decodes_lists(&self) -> bool {
        true
    }
    fn decode_list(&self, codes: &[u8], out: &mut [f32]) -> bool {
        out.copy_from_slice(&as_floats(&codes[..out.len() * 4]));
        true
    }
    fn description(&self, _by_residual: bool) -> String {
        "Flat".into()
    }
}

struct FlatScanner<'a> {
    ctx: IvfContext<'a>,
    query: &'a [f32],
    /// `query − centroid` when the index stores residuals (L2).
    residual: Vec<f32>,
    bias: f32,
}

impl ListScanner for FlatScanner<'_> {
    fn set_list(&mut self, list: usize, coarse_dis: f32) -> Result<()> {
        if !self.ctx.by_residual {
            return Ok(());
        }
        if self.ctx.metric == MetricType::L2 {
            self.ctx.residual(list, self.query, &mut self.residual)?;
        } else {
            // ⟨x, c + r⟩ = ⟨x, c⟩ + ⟨x, r⟩.
            self.bias = coarse_dis;
        }
        Ok(())
    }
    fn keys(&mut self, codes: &[u8], out: &mut [f32]) {
        let base = as_floats(codes);
        let l2_residual = self.ctx.by_residual && self.ctx.metric == MetricType::L2;
        let q = if l2_residual {
            &self.residual[..]
        } else {
            self.query
        };
        // Shapes are the index's own, so this cannot fail.
        let _ = fathom_kernels::distances_to(self.ctx.metric, q, &base, out);
        if self.ctx.metric.is_similarity() {
            let b = self.bias;
            out.iter_mut().for_each(|v| *v = -(*v + b));
        }
    }
}
