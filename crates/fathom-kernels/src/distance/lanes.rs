//! Kernels written once, generically over a vector width, and instantiated per SIMD level
//! inside `#[target_feature]` functions (see `dispatch.rs`). A level is a zero-sized token
//! type implementing [`Lanes`]; a token can only be created once the CPU is known to
//! support the level, which is what makes its safe methods sound.

use super::scalar;

/// One SIMD level's f32 vector operations. All methods are `#[inline(always)]` so that
/// they inline into the `#[target_feature]` kernel that instantiates them.
pub(crate) trait Lanes: Copy {
    /// A vector register of `N` floats.
    type V: Copy;
    /// Floats per register.
    const N: usize;
    /// Loads `N` floats from the start of `s` (`s.len() >= N`, checked).
    fn load(self, s: &[f32]) -> Self::V;
    fn splat(self, x: f32) -> Self::V;
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn abs(self, a: Self::V) -> Self::V;
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// `num / den` where `den > 0`, and 0 elsewhere.
    fn div_where_positive(self, num: Self::V, den: Self::V) -> Self::V;
    fn sum(self, a: Self::V) -> f32;
    fn hmax(self, a: Self::V) -> f32;
    /// Bit `i` set when `a[i] + b[i] <= thr` (ordered: NaN never passes).
    fn mask_le(self, a: Self::V, b: Self::V, thr: Self::V) -> u32;
}

/// A per-pair reduction: a metric expressed as a step over lanes plus a finish.
/// Two accumulators are carried because Bray–Curtis needs a numerator and a denominator;
/// the others leave the second at zero.
pub(crate) trait PairOp: Copy {
    /// Starting value of the first accumulator (0 for sums and for the max of |·|).
    fn step<L: Lanes>(self, l: L, acc: (L::V, L::V), x: L::V, y: L::V) -> (L::V, L::V);
    fn merge<L: Lanes>(self, l: L, a: (L::V, L::V), b: (L::V, L::V)) -> (L::V, L::V);
    fn step_scalar(self, acc: (f32, f32), x: f32, y: f32) -> (f32, f32);
    fn finish<L: Lanes>(self, l: L, acc: (L::V, L::V), tail: (f32, f32)) -> f32;
}

macro_rules! sum_op {
    ($name:ident, |$l:ident, $x:ident, $y:ident, $a:ident| $vec:expr, |$sx:ident, $sy:ident| $sc:expr) => {
        #[derive(Clone, Copy)]
        pub(crate) struct $name;
        impl PairOp for $name {
            #[inline(always)]
            fn step<L: Lanes>(self, $l: L, acc: (L::V, L::V), $x: L::V, $y: L::V) -> (L::V, L::V) {
                let $a = acc.0;
                ($vec, acc.1)
            }
            #[inline(always)]
            fn merge<L: Lanes>(self, l: L, a: (L::V, L::V), b: (L::V, L::V)) -> (L::V, L::V) {
                (l.add(a.0, b.0), a.1)
            }
            #[inline(always)]
            fn step_scalar(self, acc: (f32, f32), $sx: f32, $sy: f32) -> (f32, f32) {
                (acc.0 + $sc, acc.1)
            }
            #[inline(always)]
            fn finish<L: Lanes>(self, l: L, acc: (L::V, L::V), tail: (f32, f32)) -> f32 {
                l.sum(acc.0) + tail.0
            }
        }
    };
}

sum_op!(
    L2Op,
    |l, x, y, a| {
        let d = l.sub(x, y);
        l.fma(d, d, a)
    },
    |x, y| (x - y) * (x - y)
);
sum_op!(IpOp, |l, x, y, a| l.fma(x, y, a), |x, y| x * y);
sum_op!(L1Op, |l, x, y, a| l.add(a, l.abs(l.sub(x, y))), |x, y| (x
    - y)
    .abs());
sum_op!(
    CanberraOp,
    |l, x, y, a| {
        let num = l.abs(l.sub(x, y));
        let den = l.add(l.abs(x), l.abs(y));
        l.add(a, l.div_where_positive(num, den))
    },
    |x, y| scalar::canberra_term(x, y)
);

#[derive(Clone, Copy)]
pub(crate) struct LinfOp;
impl PairOp for LinfOp {
    #[inline(always)]
    fn step<L: Lanes>(self, l: L, acc: (L::V, L::V), x: L::V, y: L::V) -> (L::V, L::V) {
        (l.max(acc.0, l.abs(l.sub(x, y))), acc.1)
    }
    #[inline(always)]
    fn merge<L: Lanes>(self, l: L, a: (L::V, L::V), b: (L::V, L::V)) -> (L::V, L::V) {
        (l.max(a.0, b.0), a.1)
    }
    #[inline(always)]
    fn step_scalar(self, acc: (f32, f32), x: f32, y: f32) -> (f32, f32) {
        (acc.0.max((x - y).abs()), acc.1)
    }
    #[inline(always)]
    fn finish<L: Lanes>(self, l: L, acc: (L::V, L::V), tail: (f32, f32)) -> f32 {
        l.hmax(acc.0).max(tail.0)
    }
}

#[derive(Clone, Copy)]
pub(crate) struct BrayCurtisOp;
impl PairOp for BrayCurtisOp {
    #[inline(always)]
    fn step<L: Lanes>(self, l: L, acc: (L::V, L::V), x: L::V, y: L::V) -> (L::V, L::V) {
        (
            l.add(acc.0, l.abs(l.sub(x, y))),
            l.add(acc.1, l.abs(l.add(x, y))),
        )
    }
    #[inline(always)]
    fn merge<L: Lanes>(self, l: L, a: (L::V, L::V), b: (L::V, L::V)) -> (L::V, L::V) {
        (l.add(a.0, b.0), l.add(a.1, b.1))
    }
    #[inline(always)]
    fn step_scalar(self, acc: (f32, f32), x: f32, y: f32) -> (f32, f32) {
        (acc.0 + (x - y).abs(), acc.1 + (x + y).abs())
    }
    #[inline(always)]
    fn finish<L: Lanes>(self, l: L, acc: (L::V, L::V), tail: (f32, f32)) -> f32 {
        scalar::bray_curtis_finish(l.sum(acc.0) + tail.0, l.sum(acc.1) + tail.1)
    }
}

/// One pair, four independent accumulators to hide FMA latency.
#[inline(always)]
pub(crate) fn pair<L: Lanes, O: PairOp>(l: L, op: O, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let z = (l.splat(0.0), l.splat(0.0));
    let mut acc = [z; 4];
    let wide = 4 * L::N;
    let mut i = 0;
    while i + wide <= n {
        for (u, slot) in acc.iter_mut().enumerate() {
            let o = i + u * L::N;
            *slot = op.step(l, *slot, l.load(&a[o..]), l.load(&b[o..]));
        }
        i += wide;
    }
    while i + L::N <= n {
        acc[0] = op.step(l, acc[0], l.load(&a[i..]), l.load(&b[i..]));
        i += L::N;
    }
    let mut tail = (0.0f32, 0.0f32);
    while i < n {
        tail = op.step_scalar(tail, a[i], b[i]);
        i += 1;
    }
    let m = op.merge(l, op.merge(l, acc[0], acc[1]), op.merge(l, acc[2], acc[3]));
    op.finish(l, m, tail)
}

/// `op(q, rows[r])` for four rows at once: the query is loaded once per step and the
/// four accumulator chains run independently (Faiss's `distances_batch_4`).
#[inline(always)]
pub(crate) fn pair4<L: Lanes, O: PairOp>(l: L, op: O, q: &[f32], rows: [&[f32]; 4]) -> [f32; 4] {
    let n = rows.iter().fold(q.len(), |n, r| n.min(r.len()));
    let q = &q[..n];
    let rows = rows.map(|r| &r[..n]);
    let z = (l.splat(0.0), l.splat(0.0));
    let mut acc = [z; 4];
    let mut i = 0;
    while i + L::N <= n {
        let x = l.load(&q[i..]);
        for (slot, r) in acc.iter_mut().zip(&rows) {
            *slot = op.step(l, *slot, x, l.load(&r[i..]));
        }
        i += L::N;
    }
    let mut out = [0.0f32; 4];
    for ((o, slot), r) in out.iter_mut().zip(acc).zip(&rows) {
        let mut tail = (0.0f32, 0.0f32);
        for j in i..n {
            tail = op.step_scalar(tail, q[j], r[j]);
        }
        *o = op.finish(l, slot, tail);
    }
    out
}

/// `out[j] = op(q, base row j)`.
#[inline(always)]
pub(crate) fn one_to_many<L: Lanes, O: PairOp>(
    l: L,
    op: O,
    q: &[f32],
    base: &[f32],
    out: &mut [f32],
) {
    let d = q.len();
    if d == 0 {
        out.fill(0.0);
        return;
    }
    for (row, o) in base.chunks_exact(d).zip(out.iter_mut()) {
        *o = pair(l, op, q, row);
    }
}

/// Appends `offset + j` to `out` for every `j` with `keys[j] + bias[j] <= thr`
/// (`bias` empty means zeros).
#[inline(always)]
pub(crate) fn collect_le<L: Lanes>(
    l: L,
    keys: &[f32],
    bias: &[f32],
    thr: f32,
    offset: u32,
    out: &mut Vec<u32>,
) {
    let n = keys.len();
    let has_bias = !bias.is_empty();
    let bias = if has_bias { &bias[..n] } else { bias };
    let t = l.splat(thr);
    let zero = l.splat(0.0);
    let mut i = 0;
    while i + L::N <= n {
        let b = if has_bias { l.load(&bias[i..]) } else { zero };
        let mut m = l.mask_le(l.load(&keys[i..]), b, t);
        while m != 0 {
            out.push(offset + i as u32 + m.trailing_zeros());
            m &= m - 1;
        }
        i += L::N;
    }
    while i < n {
        let v = keys[i] + if has_bias { bias[i] } else { 0.0 };
        if v <= thr {
            out.push(offset + i as u32);
        }
        i += 1;
    }
}
