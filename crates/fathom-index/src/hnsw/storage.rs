//! What an HNSW graph is built over: an index that stores the vectors (flat, scalar- or
//! product-quantized) and can compare a query with any stored vector by id. This is
//! Faiss's `storage` + `DistanceComputer` pair, made static so the distance call in the
//! search loop is not a virtual call.

use fathom_core::MetricType;
use fathom_kernels::PairKernel;

use super::graph::NodeDistance;
use crate::{Index, IndexFlat, IndexPq, IndexScalarQuantizer};

/// An index that can be the storage of an [`super::IndexHnsw`]: ids are rows `0..ntotal`,
/// and a prepared query gives distances to rows by id. All distances are "smaller is
/// better": storages for inner product negate similarities.
pub trait HnswStorage: Index + Sized + 'static {
    /// A query prepared for repeated distance computations.
    type Query<'a>: NodeDistance
    where
        Self: 'a;

    /// Prepares `q` (`dim()` floats, already validated).
    fn prepare<'a>(&'a self, q: &'a [f32]) -> Self::Query<'a>;

    /// The storage's part of the factory string (`Flat`, `SQ8`, `PQ16`).
    fn factory_name(&self) -> String;
}

fn neg_if(sim: bool, d: f32) -> f32 {
    if sim { -d } else { d }
}

/// A query against [`IndexFlat`] rows.
pub struct FlatQuery<'a> {
    q: &'a [f32],
    data: &'a [f32],
    d: usize,
    kernel: PairKernel,
    sim: bool,
}

impl FlatQuery<'_> {
    #[inline]
    fn row(&self, id: u32) -> &[f32] {
        let s = id as usize * self.d;
        &self.data[s..s + self.d]
    }
}

impl NodeDistance for FlatQuery<'_> {
    #[inline]
    fn distance(&self, id: u32) -> f32 {
        neg_if(self.sim, self.kernel.distance(self.q, self.row(id)))
    }

    #[inline]
    fn distances4(&self, ids: [u32; 4]) -> [f32; 4] {
        let rows = ids.map(|i| self.row(i));
        self.kernel
            .distances4(self.q, rows)
            .map(|d| neg_if(self.sim, d))
    }

    #[inline]
    fn prefetch(&self, id: u32) {
        // The first two cache lines of the row: the hardware prefetcher follows the
        // rest once the comparison starts reading it in order.
        let row = self.row(id);
        fathom_kernels::prefetch(row);
        if row.len() > 16 {
            fathom_kernels::prefetch(&row[16..]);
        }
    }

    #[inline]
    fn symmetric(&self, i: u32, j: u32) -> f32 {
        neg_if(self.sim, self.kernel.distance(self.row(i), self.row(j)))
    }

    fn symmetric_many(&self, i: u32, js: &[u32], out: &mut [f32]) {
        let base = self.row(i);
        let mut chunks = js.chunks_exact(4);
        let mut o = 0;
        for c in &mut chunks {
            let ds = self
                .kernel
                .distances4(base, [c[0], c[1], c[2], c[3]].map(|j| self.row(j)));
            for d in ds {
                out[o] = neg_if(self.sim, d);
                o += 1;
            }
        }
        for &j in chunks.remainder() {
            out[o] = self.symmetric(i, j);
            o += 1;
        }
    }
}

impl HnswStorage for IndexFlat {
    type Query<'a> = FlatQuery<'a>;

    fn prepare<'a>(&'a self, q: &'a [f32]) -> FlatQuery<'a> {
        FlatQuery {
            q,
            data: self.vectors(),
            d: self.dim(),
            kernel: PairKernel::new(self.metric()),
            sim: self.metric().is_similarity(),
        }
    }

    fn factory_name(&self) -> String {
        "Flat".into()
    }
}

/// A query against [`IndexScalarQuantizer`] codes.
pub struct SqQueryDistance<'a> {
    index: &'a IndexScalarQuantizer,
    query: fathom_quant::SqQuery<'a>,
    codes: &'a [u8],
    cs: usize,
    sim: bool,
}

impl NodeDistance for SqQueryDistance<'_> {
    #[inline]
    fn distance(&self, id: u32) -> f32 {
        let s = id as usize * self.cs;
        let mut out = [0.0f32];
        self.query.distances(&self.codes[s..s + self.cs], &mut out);
        neg_if(self.sim, out[0])
    }

    fn prefetch(&self, id: u32) {
        let s = id as usize * self.cs;
        fathom_kernels::prefetch(&self.codes[s..s + self.cs]);
    }

    fn symmetric(&self, i: u32, j: u32) -> f32 {
        decoded_distance(self.index, i, j)
    }
}

fn decoded_distance(index: &dyn Index, i: u32, j: u32) -> f32 {
    match (index.reconstruct(i as i64), index.reconstruct(j as i64)) {
        (Ok(a), Ok(b)) => neg_if(
            index.metric().is_similarity(),
            PairKernel::new(index.metric()).distance(&a, &b),
        ),
        _ => f32::INFINITY,
    }
}

impl HnswStorage for IndexScalarQuantizer {
    type Query<'a> = SqQueryDistance<'a>;

    fn prepare<'a>(&'a self, q: &'a [f32]) -> SqQueryDistance<'a> {
        SqQueryDistance {
            index: self,
            query: self.sq().query(self.metric(), q),
            codes: self.codes(),
            cs: self.sq().code_size(),
            sim: self.metric().is_similarity(),
        }
    }

    fn factory_name(&self) -> String {
        format!("SQ{}", self.sq().qtype().factory_name())
    }
}

/// A query against [`IndexPq`] codes: one distance table, then table look-ups.
pub struct PqQueryDistance<'a> {
    index: &'a IndexPq,
    table: Vec<f32>,
    cs: usize,
}

impl NodeDistance for PqQueryDistance<'_> {
    #[inline]
    fn distance(&self, id: u32) -> f32 {
        let s = id as usize * self.cs;
        let mut out = [0.0f32];
        self.index
            .pq()
            .lookup(&self.table, &self.index.codes()[s..s + self.cs], &mut out);
        out[0]
    }

    fn prefetch(&self, id: u32) {
        let s = id as usize * self.cs;
        fathom_kernels::prefetch(&self.index.codes()[s..s + self.cs]);
    }

    fn symmetric(&self, i: u32, j: u32) -> f32 {
        decoded_distance(self.index, i, j)
    }
}

impl HnswStorage for IndexPq {
    type Query<'a> = PqQueryDistance<'a>;

    fn prepare<'a>(&'a self, q: &'a [f32]) -> PqQueryDistance<'a> {
        let pq = self.pq();
        let mut table = vec![0.0f32; pq.m() * pq.ksub()];
        // Cannot fail: searches check training and query lengths first, and the table is
        // sized from this quantizer.
        pq.compute_distance_table(self.metric(), q, &mut table)
            .expect("a checked query and a table sized from the quantizer");
        if self.metric() == MetricType::InnerProduct {
            table.iter_mut().for_each(|v| *v = -*v);
        }
        PqQueryDistance {
            index: self,
            table,
            cs: pq.code_size(),
        }
    }

    fn factory_name(&self) -> String {
        let pq = self.pq();
        if pq.nbits() == 8 {
            format!("PQ{}", pq.m())
        } else {
            format!("PQ{}x{}", pq.m(), pq.nbits())
        }
    }
}
