//! fathom's quantizers against faiss-cpu's on the same data (fixtures written by
//! `tests/fixtures/make_faiss_quant.py`): since fathom's k-means and random generator are
//! Faiss's, PQ centroids, codes and polysemous renumbering must come out the same, and
//! scalar-quantizer codes byte for byte.

use std::path::PathBuf;

use fathom_io::{NpyArray, read_npy};
use fathom_quant::{Codec, PolysemousTraining, ProductQuantizer, QuantizerType, ScalarQuantizer};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/faiss_quant")
}

fn f32s(name: &str) -> Vec<f32> {
    match read_npy(dir().join(name)).unwrap() {
        NpyArray::F32(d) => d.data,
        other => panic!("{name}: {}", other.dtype_name()),
    }
}

fn bytes(name: &str) -> Vec<u8> {
    match read_npy(dir().join(name)).unwrap() {
        NpyArray::U8(d) => d.data,
        other => panic!("{name}: {}", other.dtype_name()),
    }
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

#[test]
fn pq_centroids_and_codes_match_faiss() {
    let x = f32s("x.npy");
    for (nbits, cname, codes_name) in [
        (8, "pq_centroids.npy", "pq_codes.npy"),
        (5, "pq5_centroids.npy", "pq5_codes.npy"),
    ] {
        let mut pq = ProductQuantizer::new(16, 4, nbits).unwrap();
        pq.train(&x).unwrap();
        let want = f32s(cname);
        assert!(
            close(pq.centroids(), &want, 1e-4),
            "{nbits}-bit centroids differ"
        );
        let codes = pq.compute_codes(&x[..200 * 16]).unwrap();
        let want_codes = bytes(codes_name);
        let same = codes
            .chunks_exact(pq.code_size())
            .zip(want_codes.chunks_exact(pq.code_size()))
            .filter(|(a, b)| a == b)
            .count();
        assert!(
            same >= 198,
            "{nbits}-bit: only {same}/200 codes equal faiss's"
        );
    }
}

#[test]
fn pq_reconstruction_error_matches_faiss() {
    let x = f32s("x.npy");
    let mut pq = ProductQuantizer::new(16, 4, 8).unwrap();
    pq.train(&x).unwrap();
    let rec = pq.decode(&pq.compute_codes(&x).unwrap()).unwrap();
    let n = x.len() / 16;
    let err: f64 = rec
        .iter()
        .zip(&x)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / n as f64;
    let faiss_err = f32s("pq_err.npy")[0] as f64;
    assert!(
        (err - faiss_err).abs() <= 0.02 * faiss_err,
        "{err} vs faiss {faiss_err}"
    );
}

#[test]
fn polysemous_renumbering_matches_faiss() {
    let x = f32s("x.npy");
    let mut pq = ProductQuantizer::new(16, 4, 8).unwrap();
    pq.train(&x).unwrap();
    PolysemousTraining::default()
        .optimize_pq_for_hamming(&mut pq)
        .unwrap();
    let want = f32s("pqp_centroids.npy");
    assert!(
        close(pq.centroids(), &want, 1e-4),
        "renumbered centroids differ from faiss's"
    );
    let codes = pq.compute_codes(&x[..200 * 16]).unwrap();
    let want_codes = bytes("pqp_codes.npy");
    let same = codes
        .chunks_exact(4)
        .zip(want_codes.chunks_exact(4))
        .filter(|(a, b)| a == b)
        .count();
    assert!(same >= 198, "only {same}/200 codes equal faiss's");
}

#[test]
fn scalar_quantizer_codes_match_faiss() {
    let x = f32s("x.npy");
    for (name, qt) in [
        ("8bit", QuantizerType::QT8bit),
        ("4bit", QuantizerType::QT4bit),
        ("6bit", QuantizerType::QT6bit),
        ("8bit_uniform", QuantizerType::QT8bitUniform),
        ("4bit_uniform", QuantizerType::QT4bitUniform),
        ("fp16", QuantizerType::Fp16),
        ("bf16", QuantizerType::Bf16),
    ] {
        let mut sq = ScalarQuantizer::new(16, qt).unwrap();
        sq.train(&x).unwrap();
        let trained = f32s(&format!("sq_{name}_trained.npy"));
        assert!(close(sq.trained(), &trained, 1e-6), "{name}: trained range");
        let codes = sq.compute_codes(&x[..200 * 16]).unwrap();
        let want = bytes(&format!("sq_{name}_codes.npy"));
        let diff = codes.iter().zip(&want).filter(|(a, b)| a != b).count();
        // Values that fall exactly on a level boundary may round either way in the last
        // float bit of (x − vmin) / vdiff.
        assert!(
            diff <= codes.len() / 500,
            "{name}: {diff} of {} code bytes differ",
            codes.len()
        );
        let dec = sq.decode(&want).unwrap();
        assert!(
            close(&dec, &f32s(&format!("sq_{name}_decoded.npy")), 1e-5),
            "{name}: decoding"
        );
    }
    for (name, qt) in [
        ("8bit_direct", QuantizerType::QT8bitDirect),
        ("8bit_direct_signed", QuantizerType::QT8bitDirectSigned),
    ] {
        let sq = ScalarQuantizer::new(16, qt).unwrap();
        let input = f32s(&format!("sq_{name}_input.npy"));
        assert_eq!(
            sq.compute_codes(&input).unwrap(),
            bytes(&format!("sq_{name}_codes.npy")),
            "{name}"
        );
        assert_eq!(
            sq.decode(&bytes(&format!("sq_{name}_codes.npy"))).unwrap(),
            f32s(&format!("sq_{name}_decoded.npy"))
        );
    }
}
