//! Compiling one plain-Rust loop body several times, once per SIMD level.
//!
//! The code kernels (table lookups, scalar-quantizer decoding, popcounts) are loops that
//! LLVM vectorises well by itself once it may use wide registers; writing them with
//! intrinsics would add nothing but risk. `multiversion!` compiles the same body at the
//! baseline (the scalar twin), with AVX2 and with AVX-512 enabled, and dispatches on
//! [`crate::simd_level`] at each call. Calls are made per block of codes, never per code.

/// Defines `$name` (dispatching on [`crate::simd_level`]) and `$at` (running a given
/// level, for tests comparing every level with [`crate::SimdLevel::Scalar`]).
macro_rules! multiversion {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident / $at:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        #[inline]
        #[allow(dead_code)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            $at($crate::simd_level(), $($arg),*)
        }

        /// Runs the kernel at `level` (or the scalar build when the CPU lacks it).
        #[allow(dead_code, clippy::too_many_arguments)]
        $vis fn $at(level: $crate::SimdLevel, $($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,popcnt")]
            fn avx512($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma,popcnt")]
            fn avx2($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }

            match level {
                #[cfg(target_arch = "x86_64")]
                $crate::SimdLevel::Avx512 if $crate::SimdLevel::Avx512.is_supported() => {
                    // SAFETY: the CPU supports AVX-512 F/BW/DQ/VL and AVX2+FMA (checked
                    // just above); POPCNT predates all of them on every x86-64 CPU that
                    // has them.
                    unsafe { avx512($($arg),*) }
                }
                #[cfg(target_arch = "x86_64")]
                $crate::SimdLevel::Avx2 | $crate::SimdLevel::Avx512
                    if $crate::SimdLevel::Avx2.is_supported() =>
                {
                    // SAFETY: the CPU supports AVX2+FMA (checked just above), and every
                    // such CPU has POPCNT.
                    unsafe { avx2($($arg),*) }
                }
                _ => body($($arg),*),
            }
        }
    };
}

pub(crate) use multiversion;
