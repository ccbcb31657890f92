//! The table of kernels for one SIMD level, chosen once ([`kernels`]) and used at the
//! outer loop (a row against a block of vectors, a tile row), never per element.

use crate::distance::lanes::{self, BrayCurtisOp, CanberraOp, IpOp, L1Op, L2Op, LinfOp};
use crate::distance::scalar;
use crate::simd::{SimdLevel, simd_level};

/// The metrics that have SIMD kernels, in table order. (Lp and Jensen–Shannon are
/// dominated by `powf`/`ln` and run the scalar loop at every level.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SimdMetric {
    L2 = 0,
    Ip = 1,
    L1 = 2,
    Linf = 3,
    Canberra = 4,
    BrayCurtis = 5,
}

#[cfg(test)]
pub(crate) const SIMD_METRICS: [SimdMetric; 6] = [
    SimdMetric::L2,
    SimdMetric::Ip,
    SimdMetric::L1,
    SimdMetric::Linf,
    SimdMetric::Canberra,
    SimdMetric::BrayCurtis,
];

type PairFn = fn(&[f32], &[f32]) -> f32;
type ManyFn = fn(&[f32], &[f32], &mut [f32]);
type FourFn = fn(&[f32], [&[f32]; 4]) -> [f32; 4];
type CollectFn = fn(&[f32], &[f32], f32, u32, &mut Vec<u32>);
type NormsFn = fn(&[f32], usize, &mut [f32]);

/// One level's kernels. Slices passed in must satisfy the shapes documented on each
/// field; the public wrappers in `distance` check them.
pub(crate) struct Kernels {
    /// `pair[m](a, b)`, `a.len() == b.len()`.
    pub pair: [PairFn; 6],
    /// `many[m](q, base, out)`: `base.len() == out.len() * q.len()`.
    pub many: [ManyFn; 6],
    /// `four[m](q, rows)`: the pair kernel against four rows of `q.len()` floats.
    pub four: [FourFn; 6],
    /// `collect_le(keys, bias, thr, offset, out)`: pushes `offset + j` for each
    /// `keys[j] + bias[j] <= thr`; `bias` is empty or as long as `keys`.
    pub collect_le: CollectFn,
    /// `norms_sqr(x, d, out)`: squared L2 norm of each row of `x`.
    pub norms_sqr: NormsFn,
}

impl Kernels {
    /// The table for `level`, or `None` when this CPU cannot run it.
    pub fn for_level(level: SimdLevel) -> Option<&'static Kernels> {
        if !level.is_supported() {
            return None;
        }
        match level {
            SimdLevel::Scalar => Some(&SCALAR),
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => Some(&avx2::TABLE),
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => Some(&avx512::TABLE),
            #[cfg(target_arch = "aarch64")]
            SimdLevel::Neon => Some(&neon::TABLE),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

/// The kernels for [`simd_level`].
pub(crate) fn kernels() -> &'static Kernels {
    static CHOSEN: std::sync::OnceLock<&'static Kernels> = std::sync::OnceLock::new();
    CHOSEN.get_or_init(|| Kernels::for_level(simd_level()).unwrap_or(&SCALAR))
}

fn scalar_many<const M: u8>(q: &[f32], base: &[f32], out: &mut [f32]) {
    let f = SCALAR.pair[M as usize];
    let d = q.len().max(1);
    for (row, o) in base.chunks_exact(d).zip(out.iter_mut()) {
        *o = f(q, row);
    }
}

fn scalar_four<const M: u8>(q: &[f32], rows: [&[f32]; 4]) -> [f32; 4] {
    let f = SCALAR.pair[M as usize];
    rows.map(|r| f(q, r))
}

fn scalar_collect_le(keys: &[f32], bias: &[f32], thr: f32, offset: u32, out: &mut Vec<u32>) {
    for (j, &k) in keys.iter().enumerate() {
        let v = k + bias.get(j).copied().unwrap_or(0.0);
        if v <= thr {
            out.push(offset + j as u32);
        }
    }
}

fn scalar_norms(x: &[f32], d: usize, out: &mut [f32]) {
    for (row, o) in x.chunks_exact(d.max(1)).zip(out.iter_mut()) {
        *o = scalar::inner_product(row, row);
    }
}

static SCALAR: Kernels = Kernels {
    pair: [
        scalar::l2_sqr,
        scalar::inner_product,
        scalar::l1,
        scalar::linf,
        scalar::canberra,
        scalar::bray_curtis,
    ],
    many: [
        scalar_many::<0>,
        scalar_many::<1>,
        scalar_many::<2>,
        scalar_many::<3>,
        scalar_many::<4>,
        scalar_many::<5>,
    ],
    four: [
        scalar_four::<0>,
        scalar_four::<1>,
        scalar_four::<2>,
        scalar_four::<3>,
        scalar_four::<4>,
        scalar_four::<5>,
    ],
    collect_le: scalar_collect_le,
    norms_sqr: scalar_norms,
};

/// Instantiates the generic kernels of `lanes.rs` for one level: each one gets a
/// `#[target_feature]` body (so the token's intrinsics inline into it) and a safe wrapper
/// that the level's table points to.
macro_rules! level_table {
    ($module:ident, $token:ty, $features:literal) => {
        mod $module {
            use super::*;

            #[inline(always)]
            fn token() -> $token {
                // SAFETY: the functions of this module are reachable only through `TABLE`,
                // which `Kernels::for_level` hands out after `SimdLevel::is_supported`
                // confirmed the CPU has every feature the token stands for.
                unsafe { <$token>::new_unchecked() }
            }

            level_table!(@metric $features, $token, pair_l2, many_l2, four_l2, L2Op);
            level_table!(@metric $features, $token, pair_ip, many_ip, four_ip, IpOp);
            level_table!(@metric $features, $token, pair_l1, many_l1, four_l1, L1Op);
            level_table!(@metric $features, $token, pair_linf, many_linf, four_linf, LinfOp);
            level_table!(@metric $features, $token, pair_canberra, many_canberra, four_canberra, CanberraOp);
            level_table!(@metric $features, $token, pair_bc, many_bc, four_bc, BrayCurtisOp);

            #[target_feature(enable = $features)]
            fn collect_le_tf(
                t: $token,
                keys: &[f32],
                bias: &[f32],
                thr: f32,
                offset: u32,
                out: &mut Vec<u32>,
            ) {
                lanes::collect_le(t, keys, bias, thr, offset, out)
            }

            fn collect_le(keys: &[f32], bias: &[f32], thr: f32, offset: u32, out: &mut Vec<u32>) {
                let t = token();
                // SAFETY: `t` proves the CPU has `$features` (see `token`).
                unsafe { collect_le_tf(t, keys, bias, thr, offset, out) }
            }

            #[target_feature(enable = $features)]
            fn norms_tf(t: $token, x: &[f32], d: usize, out: &mut [f32]) {
                for (row, o) in x.chunks_exact(d.max(1)).zip(out.iter_mut()) {
                    *o = lanes::pair(t, IpOp, row, row);
                }
            }

            fn norms_sqr(x: &[f32], d: usize, out: &mut [f32]) {
                let t = token();
                // SAFETY: `t` proves the CPU has `$features` (see `token`).
                unsafe { norms_tf(t, x, d, out) }
            }

            pub(crate) static TABLE: Kernels = Kernels {
                pair: [pair_l2, pair_ip, pair_l1, pair_linf, pair_canberra, pair_bc],
                many: [many_l2, many_ip, many_l1, many_linf, many_canberra, many_bc],
                four: [four_l2, four_ip, four_l1, four_linf, four_canberra, four_bc],
                collect_le,
                norms_sqr,
            };
        }
    };
    (@metric $features:literal, $token:ty, $pair:ident, $many:ident, $four:ident, $op:ident) => {
        fn $four(q: &[f32], rows: [&[f32]; 4]) -> [f32; 4] {
            #[target_feature(enable = $features)]
            fn tf(t: $token, q: &[f32], rows: [&[f32]; 4]) -> [f32; 4] {
                lanes::pair4(t, $op, q, rows)
            }
            let t = token();
            // SAFETY: `t` proves the CPU has `$features` (see `token`).
            unsafe { tf(t, q, rows) }
        }

        fn $pair(a: &[f32], b: &[f32]) -> f32 {
            #[target_feature(enable = $features)]
            fn tf(t: $token, a: &[f32], b: &[f32]) -> f32 {
                lanes::pair(t, $op, a, b)
            }
            let t = token();
            // SAFETY: `t` proves the CPU has `$features` (see `token`).
            unsafe { tf(t, a, b) }
        }

        fn $many(q: &[f32], base: &[f32], out: &mut [f32]) {
            #[target_feature(enable = $features)]
            fn tf(t: $token, q: &[f32], base: &[f32], out: &mut [f32]) {
                lanes::one_to_many(t, $op, q, base, out)
            }
            let t = token();
            // SAFETY: `t` proves the CPU has `$features` (see `token`).
            unsafe { tf(t, q, base, out) }
        }
    };
}

#[cfg(target_arch = "x86_64")]
use crate::distance::x86::{Avx2, Avx512};
#[cfg(target_arch = "x86_64")]
level_table!(avx2, Avx2, "avx2,fma");
#[cfg(target_arch = "x86_64")]
level_table!(
    avx512,
    Avx512,
    "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"
);

#[cfg(target_arch = "aarch64")]
use crate::distance::neon::Neon;
#[cfg(target_arch = "aarch64")]
level_table!(neon, Neon, "neon");
