//! Distance kernels (one pair, one query against many rows), and exhaustive k-NN through
//! the GEMM path and the scan path.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fathom_core::MetricType;
use fathom_io::synthetic::{SyntheticSpec, generate};

fn data() -> (Vec<f32>, Vec<f32>) {
    let spec = SyntheticSpec {
        d: 128,
        nb: 100_000,
        nq: 256,
        nt: 0,
        k: 1,
        seed: 1,
    };
    let g = generate(&spec);
    (g.base, g.query)
}

fn pair_and_many(c: &mut Criterion) {
    let (base, query) = data();
    let d = 128;
    let mut g = c.benchmark_group("distance");
    for metric in [
        MetricType::L2,
        MetricType::InnerProduct,
        MetricType::L1,
        MetricType::Linf,
        MetricType::Canberra,
    ] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("pair_d128", metric), |b| {
            b.iter(|| {
                fathom_kernels::distance(metric, black_box(&query[..d]), black_box(&base[..d]))
                    .unwrap()
            })
        });
        let n = 4096;
        let mut out = vec![0.0f32; n];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("one_to_4096_d128", metric), |b| {
            b.iter(|| {
                fathom_kernels::distances_to(
                    metric,
                    black_box(&query[..d]),
                    &base[..n * d],
                    &mut out,
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

fn knn(c: &mut Criterion) {
    let (base, query) = data();
    let d = 128;
    let mut g = c.benchmark_group("knn_100k_d128_k10");
    g.sample_size(10);
    for nq in [1usize, 16, 256] {
        g.throughput(Throughput::Elements(nq as u64));
        for metric in [MetricType::L2, MetricType::InnerProduct] {
            g.bench_function(BenchmarkId::new(format!("{metric}"), nq), |b| {
                b.iter(|| {
                    fathom_kernels::knn(metric, &query[..nq * d], &base, d, 10, None).unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, pair_and_many, knn);
criterion_main!(benches);
