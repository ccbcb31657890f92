//! k-means against faiss-cpu's own results: same data, same seed, same parameters must
//! give the same centroids (Faiss's random generator, subsampling, initialisation and
//! update rules are reproduced). Fixtures from `fixtures/make_faiss_kmeans.py`.

use std::path::{Path, PathBuf};

use fathom_core::MetricType;
use fathom_io::{Dataset, NpyArray, read_npy};
use fathom_linalg::{ClusteringParameters, Kmeans};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/faiss_kmeans")
}

fn f32s(name: &str) -> Dataset<f32> {
    match read_npy(dir().join(name)).unwrap() {
        NpyArray::F32(x) => x,
        other => panic!("{name}: {}", other.dtype_name()),
    }
}

fn check(name: &str, k: usize, params: ClusteringParameters, metric: MetricType) {
    let x = f32s("x.npy");
    let mut km = Kmeans::new(x.d, k)
        .unwrap()
        .with_metric(metric)
        .unwrap()
        .with_params(params);
    km.train(&x.data).unwrap();
    let want = f32s(&format!("C_{name}.npy"));
    let want_obj = f32s(&format!("obj_{name}.npy")).data;
    let got_obj = km.obj();
    assert_eq!(got_obj.len(), want_obj.len(), "{name}: iterations");
    for (i, (g, w)) in got_obj.iter().zip(&want_obj).enumerate() {
        assert!(
            (g - *w as f64).abs() <= 1e-4 * (*w as f64).abs().max(1.0),
            "{name} iteration {i}: obj {g} vs faiss {w}"
        );
    }
    for (i, (g, w)) in km.centroids().iter().zip(&want.data).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs().max(1.0),
            "{name}: centroid value {i}: {g} vs faiss {w}"
        );
    }
}

#[test]
fn plain_kmeans_matches_faiss() {
    let p = ClusteringParameters {
        niter: 10,
        ..Default::default()
    };
    check("plain", 20, p, MetricType::L2);
}

#[test]
fn subsampled_kmeans_matches_faiss() {
    let p = ClusteringParameters {
        niter: 8,
        max_points_per_centroid: 100,
        ..Default::default()
    };
    check("sub", 10, p, MetricType::L2);
}

#[test]
fn spherical_kmeans_matches_faiss() {
    let p = ClusteringParameters {
        niter: 6,
        spherical: true,
        ..Default::default()
    };
    check("sph", 16, p, MetricType::InnerProduct);
}
