//! PCA against numpy's eigendecomposition of the same scatter matrix, and against
//! faiss.PCAMatrix on the same data. Fixtures from `fixtures/make_pca.py`.

use std::path::Path;

use fathom_io::{Dataset, NpyArray, read_npy};
use fathom_linalg::{PcaMatrix, VectorTransform};

fn f32s(name: &str) -> Dataset<f32> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/pca")
        .join(name);
    match read_npy(p).unwrap() {
        NpyArray::F32(x) => x,
        other => panic!("{name}: {}", other.dtype_name()),
    }
}

#[test]
fn explained_variance_matches_numpy_and_projection_matches_faiss() {
    let x = f32s("x.npy");
    let mut pca = PcaMatrix::new(24, 8, 0.0, false).unwrap();
    pca.train(&x.data).unwrap();
    let want = f32s("numpy_eigenvalues.npy").data;
    let total: f32 = want.iter().sum();
    let got_total: f32 = pca.eigenvalues().iter().sum();
    for (i, (g, w)) in pca.eigenvalues().iter().zip(&want).enumerate() {
        let (gr, wr) = (g / got_total, w / total);
        assert!(
            (gr - wr).abs() < 1e-4,
            "explained variance ratio {i}: {gr} vs numpy {wr}"
        );
    }
    let faiss_ev = f32s("faiss_eigenvalues.npy").data;
    for (g, w) in pca.eigenvalues().iter().zip(&faiss_ev).take(8) {
        assert!((g - w).abs() <= 1e-3 * w.abs().max(1.0), "{g} vs faiss {w}");
    }
    // Projections agree with faiss's up to the sign of each component (eigenvectors are
    // defined up to sign).
    let y = pca.apply(&x.data[..10 * 24]).unwrap();
    let fy = f32s("faiss_apply.npy").data;
    for c in 0..8 {
        let dot: f32 = (0..10).map(|r| y[r * 8 + c] * fy[r * 8 + c]).sum();
        let sign = dot.signum();
        for r in 0..10 {
            let (a, b) = (y[r * 8 + c], sign * fy[r * 8 + c]);
            assert!(
                (a - b).abs() < 1e-2 * b.abs().max(1.0),
                "component {c} row {r}: {a} vs faiss {b}"
            );
        }
    }
}
