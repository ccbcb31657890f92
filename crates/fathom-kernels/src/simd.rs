//! Run-time choice of the SIMD level, made once per process.

use std::sync::OnceLock;

/// The instruction-set levels fathom has kernels for. Every level computes the same
/// results as [`SimdLevel::Scalar`] up to floating-point summation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// Plain Rust loops; the reference every other level is tested against.
    Scalar,
    /// AArch64 Advanced SIMD (128-bit), part of every AArch64 CPU.
    Neon,
    /// x86-64 AVX2 + FMA (x86-64-v3), 256-bit.
    Avx2,
    /// x86-64 AVX-512 F/BW/DQ/VL (x86-64-v4), 512-bit.
    Avx512,
}

impl SimdLevel {
    /// The lower-case name used by `FATHOM_SIMD`.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Neon => "neon",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// Parses a `FATHOM_SIMD` value.
    pub fn parse(s: &str) -> Option<SimdLevel> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "scalar" | "none" => SimdLevel::Scalar,
            "neon" => SimdLevel::Neon,
            "avx2" => SimdLevel::Avx2,
            "avx512" => SimdLevel::Avx512,
            _ => return None,
        })
    }

    /// True when this CPU can run the level.
    pub fn is_supported(self) -> bool {
        match self {
            SimdLevel::Scalar => true,
            #[cfg(target_arch = "aarch64")]
            SimdLevel::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => {
                SimdLevel::Avx2.is_supported()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every level this CPU supports, lowest first.
    pub fn supported() -> Vec<SimdLevel> {
        [
            SimdLevel::Scalar,
            SimdLevel::Neon,
            SimdLevel::Avx2,
            SimdLevel::Avx512,
        ]
        .into_iter()
        .filter(|l| l.is_supported())
        .collect()
    }
}

/// The best level this CPU supports, ignoring `FATHOM_SIMD`.
pub fn detected_simd_level() -> SimdLevel {
    *SimdLevel::supported().last().unwrap_or(&SimdLevel::Scalar)
}

/// The level fathom's kernels run at: the best one the CPU supports, or a lower one chosen
/// with the environment variable `FATHOM_SIMD=scalar|neon|avx2|avx512`, read once at the
/// first call. `FATHOM_SIMD` can only lower the level: asking for one the CPU lacks, or
/// an unknown name, keeps the detected level.
///
/// ```
/// let level = fathom_kernels::simd_level();
/// assert!(level.is_supported());
/// ```
pub fn simd_level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let detected = detected_simd_level();
        match std::env::var("FATHOM_SIMD")
            .ok()
            .and_then(|v| SimdLevel::parse(&v))
        {
            Some(wanted) if wanted.is_supported() && wanted <= detected => wanted,
            _ => detected,
        }
    })
}
