//! Vector transforms against their definitions and inverses.

use fathom_core::Error;
use fathom_linalg::rng::float_randn;
use fathom_linalg::{
    CenteringTransform, NormalizationTransform, OpqMatrix, PcaMatrix, RandomRotationMatrix,
    RemapDimensionsTransform, VectorTransform,
};

/// Correlated data: a few latent factors spread over `d` dimensions, plus noise and an offset.
fn correlated(n: usize, d: usize, seed: i64) -> Vec<f32> {
    let z = float_randn(n * 4, seed);
    let w = float_randn(4 * d, seed + 1);
    let e = float_randn(n * d, seed + 2);
    (0..n)
        .flat_map(|i| {
            let (z, e, w) = (&z, &e, &w);
            (0..d).map(move |j| {
                let s: f32 = (0..4)
                    .map(|f| z[i * 4 + f] * w[f * d + j] * (4 - f) as f32)
                    .sum();
                s + 0.1 * e[i * d + j] + 3.0
            })
        })
        .collect()
}

fn gram(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut g = vec![0.0f32; rows * rows];
    for i in 0..rows {
        for j in 0..rows {
            g[i * rows + j] = (0..cols).map(|c| a[i * cols + c] * a[j * cols + c]).sum();
        }
    }
    g
}

fn assert_identity(g: &[f32], n: usize, tol: f32) {
    for i in 0..n {
        for j in 0..n {
            let want = if i == j { 1.0 } else { 0.0 };
            assert!(
                (g[i * n + j] - want).abs() < tol,
                "[{i},{j}] = {}",
                g[i * n + j]
            );
        }
    }
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * y.abs().max(1.0), "[{i}] {x} vs {y}");
    }
}

#[test]
fn float_randn_matches_faiss() {
    // faiss.float_randn(x, 6, 42) with faiss-cpu 1.15.1.
    let want = [
        -0.14982559,
        -1.1630378,
        1.0601366,
        0.43770716,
        -0.8157866,
        -1.1277465,
    ];
    close(&float_randn(6, 42), &want, 1e-6);
}

#[test]
fn random_rotation_is_orthonormal_and_reversible() {
    for (d_in, d_out) in [(16, 16), (16, 8), (8, 12)] {
        let mut rr = RandomRotationMatrix::new(d_in, d_out).unwrap();
        assert!(matches!(
            rr.apply(&[0.0; 16][..d_in]),
            Err(Error::NotTrained(_))
        ));
        rr.train(&[]).unwrap();
        let a = &rr.linear().a;
        if d_out <= d_in {
            assert_identity(&gram(a, d_out, d_in), d_out, 1e-5);
        }
        let x = correlated(5, d_in, 3);
        let y = rr.apply(&x).unwrap();
        if d_out >= d_in {
            close(&rr.reverse_transform(&y).unwrap(), &x, 1e-4);
        }
    }
}

/// PCA against the definition: orthonormal directions whose variances are the eigenvalues,
/// largest first, summing to the trace of the scatter matrix.
#[test]
fn pca_matches_its_definition() {
    let (n, d, d_out) = (2000, 12, 5);
    let x = correlated(n, d, 7);
    let mut pca = PcaMatrix::new(d, d_out, 0.0, false).unwrap();
    pca.train(&x).unwrap();
    let lt = pca.linear();
    assert_identity(&gram(&lt.a, d_out, d), d_out, 1e-4);
    let ev = pca.eigenvalues();
    assert!(ev.windows(2).all(|w| w[0] >= w[1] - 1e-3), "{ev:?}");
    // Trace of the scatter matrix = Σ eigenvalues.
    let mean = pca.mean().to_vec();
    let trace: f64 = x
        .chunks_exact(d)
        .map(|r| {
            r.iter()
                .zip(&mean)
                .map(|(v, m)| ((v - m) as f64).powi(2))
                .sum::<f64>()
        })
        .sum();
    let sum: f64 = ev.iter().map(|&v| v as f64).sum();
    assert!((trace - sum).abs() < 1e-3 * trace, "{trace} vs {sum}");
    // The projected data is centred, with variance λᵢ along output i and no covariance.
    let y = pca.apply(&x).unwrap();
    for i in 0..d_out {
        let mean_i: f64 = y.chunks_exact(d_out).map(|r| r[i] as f64).sum::<f64>() / n as f64;
        assert!(mean_i.abs() < 1e-3, "{mean_i}");
        for j in 0..d_out {
            let c: f64 = y
                .chunks_exact(d_out)
                .map(|r| r[i] as f64 * r[j] as f64)
                .sum();
            let want = if i == j { ev[i] as f64 } else { 0.0 };
            assert!(
                (c - want).abs() < 1e-3 * ev[0] as f64,
                "cov[{i},{j}] = {c}, want {want}"
            );
        }
    }
    // Reverse projects back onto the principal subspace: the 4 latent factors are kept.
    let back = pca.reverse_transform(&y[..3 * d_out]).unwrap();
    close(&back, &x[..3 * d], 0.4); // the dropped components carry the 0.1-sigma noise
    assert_eq!(pca.description(), "PCA5");
}

#[test]
fn pca_whitening_rotation_bins_and_gram_path() {
    let (n, d) = (1500, 8);
    let x = correlated(n, d, 11);
    let mut w = PcaMatrix::new(d, 4, -0.5, false).unwrap();
    w.train(&x).unwrap();
    let y = w.apply(&x).unwrap();
    // Whitened: the scatter of the output is the identity.
    let mut s = vec![0.0f32; 16];
    for r in y.chunks_exact(4) {
        for i in 0..4 {
            for j in 0..4 {
                s[i * 4 + j] += r[i] * r[j];
            }
        }
    }
    assert_identity(&s, 4, 1e-3);
    assert!(
        w.reverse_transform(&y[..4]).is_err(),
        "whitening is not reversible"
    );
    assert_eq!(w.description(), "PCAW4");

    let mut r = PcaMatrix::new(d, 4, 0.0, true).unwrap();
    r.train(&x).unwrap();
    assert_identity(&gram(&r.linear().a, 4, d), 4, 1e-4);

    let mut plain = PcaMatrix::new(d, 4, 0.0, false).unwrap();
    plain.train(&x).unwrap();
    let mut b = PcaMatrix::new(d, 4, 0.0, false).unwrap();
    b.balanced_bins = 2;
    b.train(&x).unwrap();
    // Same rows, regrouped: bin 0 gets components 0 and 3, bin 1 gets 1 and 2.
    let (pa, ba) = (&plain.linear().a, &b.linear().a);
    for (dst, src) in [(0, 0), (1, 3), (2, 1), (3, 2)] {
        close(
            &ba[dst * d..(dst + 1) * d],
            &pa[src * d..(src + 1) * d],
            1e-5,
        );
    }

    // Fewer points than dimensions: the Gram-matrix path. Centred rank is n − 1 = 5, so
    // 5 components reconstruct the training points exactly.
    let few = correlated(6, 20, 13);
    let mut g = PcaMatrix::new(20, 5, 0.0, false).unwrap();
    g.train(&few).unwrap();
    assert_identity(&gram(&g.linear().a, 5, 20), 5, 1e-4);
    close(
        &g.reverse_transform(&g.apply(&few).unwrap()).unwrap(),
        &few,
        1e-3,
    );
}

#[test]
fn simple_transforms_and_their_inverses() {
    let d = 6;
    let x = correlated(40, d, 17);
    let mut c = CenteringTransform::new(d).unwrap();
    assert!(c.apply(&x).is_err());
    c.train(&x).unwrap();
    let y = c.apply(&x).unwrap();
    for j in 0..d {
        let m: f32 = y.chunks_exact(d).map(|r| r[j]).sum::<f32>() / 40.0;
        assert!(m.abs() < 1e-4);
    }
    close(&c.reverse_transform(&y).unwrap(), &x, 1e-5);

    let nt = NormalizationTransform::new(d).unwrap();
    let y = nt.apply(&x).unwrap();
    for r in y.chunks_exact(d) {
        assert!((r.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
    }
    assert!(nt.reverse_transform(&y).is_err());

    let pad = RemapDimensionsTransform::with_dims(3, 5, false).unwrap();
    assert_eq!(
        pad.apply(&[1.0, 2.0, 3.0]).unwrap(),
        vec![1.0, 2.0, 3.0, 0.0, 0.0]
    );
    assert_eq!(
        pad.reverse_transform(&[1.0, 2.0, 3.0, 9.0, 9.0]).unwrap(),
        vec![1.0, 2.0, 3.0]
    );
    let spread = RemapDimensionsTransform::with_dims(2, 4, true).unwrap();
    assert_eq!(spread.apply(&[1.0, 2.0]).unwrap(), vec![1.0, 0.0, 2.0, 0.0]);
    let select = RemapDimensionsTransform::with_dims(4, 2, true).unwrap();
    assert_eq!(select.apply(&[1.0, 2.0, 3.0, 4.0]).unwrap(), vec![1.0, 3.0]);
    assert!(RemapDimensionsTransform::new(2, vec![Some(2)]).is_err());
}

#[test]
fn opq_lowers_pq_error_and_stays_orthonormal() {
    let (n, d, m) = (3000, 16, 4);
    let x = correlated(n, d, 19);
    let mut opq = OpqMatrix::new(d, m, d).unwrap();
    opq.niter = 6;
    opq.niter_pq_0 = 10;
    opq.nbits = 4;
    opq.train(&x).unwrap();
    assert_identity(&gram(&opq.linear().a, d, d), d, 1e-4);
    let y = opq.apply(&x).unwrap();
    close(
        &opq.reverse_transform(&y[..2 * d]).unwrap(),
        &x[..2 * d],
        1e-3,
    );
    // PQ error on the rotated data is lower than on the raw data (the factors are spread
    // over all dimensions, which PQ's independent sub-spaces handle badly).
    let p = fathom_linalg::ClusteringParameters {
        niter: 10,
        ..Default::default()
    };
    let err = |v: &[f32]| {
        let r = fathom_linalg::pq_reconstruction(v, d, m, 16, &p).unwrap();
        v.iter()
            .zip(&r)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
    };
    let (raw, rotated) = (err(&x), err(&y));
    assert!(rotated < raw * 0.95, "OPQ error {rotated} vs raw {raw}");
    assert_eq!(opq.description(), "OPQ4");

    let mut smaller = OpqMatrix::new(d, m, 8).unwrap();
    smaller.niter = 2;
    smaller.nbits = 4;
    smaller.train(&x).unwrap();
    assert_eq!(smaller.apply(&x[..d]).unwrap().len(), 8);
    assert_eq!(smaller.description(), "OPQ4_8");
}

#[test]
fn bad_input() {
    assert!(PcaMatrix::new(4, 8, 0.0, false).is_err());
    assert!(PcaMatrix::new(0, 0, 0.0, false).is_err());
    assert!(OpqMatrix::new(16, 5, 16).is_err());
    assert!(OpqMatrix::new(16, 0, 16).is_err());
    let mut pca = PcaMatrix::new(2, 1, 0.0, false).unwrap();
    assert!(matches!(pca.apply(&[1.0, 2.0]), Err(Error::NotTrained(_))));
    assert!(pca.train(&[1.0, f32::NAN, 0.0, 1.0]).is_err());
    assert!(pca.train(&[1.0, 2.0, 3.0]).is_err());
    pca.train(&[1.0, 2.0, 3.0, 5.0, 0.0, 1.0]).unwrap();
    assert!(pca.apply(&[1.0, 2.0, 3.0]).is_err());
    assert!(pca.apply(&[1.0, f32::INFINITY]).is_err());
    let mut opq = OpqMatrix::new(4, 2, 4).unwrap();
    let e = opq.train(&[0.5; 40]).unwrap_err().to_string();
    assert!(e.contains("256"), "{e}");
}
