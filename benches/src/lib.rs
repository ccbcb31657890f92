//! Criterion micro-benchmarks of fathom live in `benches/`: `cargo bench -p fathom-benches`.
//! Set `FATHOM_SIMD=scalar|avx2|avx512` to measure a lower SIMD level.
