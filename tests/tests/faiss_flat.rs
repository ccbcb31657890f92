//! IndexFlat against faiss-cpu's own results on the same data, for every metric.
//!
//! The committed fixtures in `fixtures/faiss_flat` were written by
//! `fixtures/make_faiss_flat.py` with faiss-cpu 1.15.1; the live test at the end re-runs
//! faiss with the tests' faiss-cpu (`target/faiss-venv`, installed on first use) and is
//! reported as skipped where it cannot be installed.

use fathom_tests::harness::{Outcome, PASSED, skipped};
use std::path::{Path, PathBuf};

use fathom_core::{Idx, MetricType};
use fathom_index::{Index, IndexFlat};
use fathom_io::{Dataset, NpyArray, read_npy};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/faiss_flat")
}

fn f32s(dir: &Path, name: &str) -> Dataset<f32> {
    match read_npy(dir.join(name)).unwrap() {
        NpyArray::F32(x) => x,
        other => panic!("{name}: {}", other.dtype_name()),
    }
}

fn i64s(dir: &Path, name: &str) -> Dataset<i64> {
    match read_npy(dir.join(name)).unwrap() {
        NpyArray::I64(x) => x,
        other => panic!("{name}: {}", other.dtype_name()),
    }
}

const METRICS: [(&str, MetricType); 8] = [
    ("l2", MetricType::L2),
    ("ip", MetricType::InnerProduct),
    ("l1", MetricType::L1),
    ("linf", MetricType::Linf),
    ("lp3", MetricType::Lp(3.0)),
    ("canberra", MetricType::Canberra),
    ("braycurtis", MetricType::BrayCurtis),
    ("jensenshannon", MetricType::JensenShannon),
];

/// Compares fathom's results with faiss's in `dir`: same distances (relative 1e-4), same
/// labels except where faiss's neighbours tie in distance.
fn compare_with_faiss(dir: &Path) {
    let base = f32s(dir, "base.npy");
    let query = f32s(dir, "query.npy");
    let d = base.d;
    for (name, metric) in METRICS {
        let mut index = IndexFlat::new(d, metric).unwrap();
        index.add(&base.data).unwrap();
        let res = index.search(&query.data, 10).unwrap();
        let want_d = f32s(dir, &format!("D_{name}.npy"));
        let want_i = i64s(dir, &format!("I_{name}.npy"));
        let mut same = 0;
        for (i, (&got, &want)) in res.labels.iter().zip(&want_i.data).enumerate() {
            let (gd, wd) = (res.distances[i], want_d.data[i]);
            assert!(
                (gd - wd).abs() <= 1e-4 * wd.abs().max(1.0),
                "{name} [{i}]: {gd} vs faiss {wd}"
            );
            if got == want {
                same += 1;
            } else {
                // A different label is only fine if faiss has the same distance for it.
                let row = i / 10;
                let pos = want_i.row(row).iter().position(|&l| l == got);
                let tie = pos
                    .is_some_and(|p| (want_d.row(row)[p] - wd).abs() <= 1e-4 * wd.abs().max(1.0));
                assert!(
                    tie || i % 10 == 9,
                    "{name} [{i}]: label {got}, faiss {want}"
                );
            }
        }
        assert!(
            same >= res.labels.len() * 99 / 100,
            "{name}: only {same} labels agree"
        );

        let radius = f32s(dir, &format!("R_{name}_radius.npy")).data[0];
        let lims = i64s(dir, &format!("R_{name}_lims.npy")).data;
        let labels = i64s(dir, &format!("R_{name}_labels.npy")).data;
        let rr = index.range_search(&query.data, radius).unwrap();
        for q in 0..query.n() {
            let mut want: Vec<Idx> = labels[lims[q] as usize..lims[q + 1] as usize].to_vec();
            want.sort();
            let mut got = rr.query(q).0.to_vec();
            got.sort();
            assert_eq!(got, want, "{name} range search, query {q}");
        }
    }
}

fn flat_matches_committed_faiss_results() -> Outcome {
    compare_with_faiss(&fixtures());
    PASSED
}

fn flat_matches_live_faiss_when_installed() -> Outcome {
    // The tests' own faiss-cpu (installed into target/faiss-venv on first use).
    let py = match fathom_tests::faiss_python() {
        Ok(p) => p,
        Err(why) => return skipped(format!("faiss-cpu is not available: {why}")),
    };
    let dir = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new(&py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make_faiss_flat.py"))
        .arg(dir.path())
        .status()
        .unwrap()
        .success();
    assert!(ok, "make_faiss_flat.py failed");
    compare_with_faiss(dir.path());
    PASSED
}

fathom_tests::harness::main!(
    flat_matches_committed_faiss_results,
    flat_matches_live_faiss_when_installed,
);
