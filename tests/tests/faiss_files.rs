//! Index files written by faiss-cpu 1.15.1 (`tests/fixtures/make_faiss_files.py`), one of
//! every type fathom reads: each opens with faiss's d, ntotal and training state, searches
//! to faiss's recorded results, and written back by fathom gives faiss's bytes exactly
//! (but for a hashtable direct map's order and an on-disk record's file name and free
//! list). `ivf8_ondisk` is Faiss's merge-on-disk workflow: its lists live in
//! `ivf8_ondisk.ivfdata`, found beside the index file.

use std::path::PathBuf;

use fathom_index::Index;
use fathom_io::faiss::{index_to_bytes, read_index, read_index_bytes};
use fathom_io::{NpyArray, read_npy};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/faiss_files")
}

struct Entry {
    name: String,
    d: usize,
    ntotal: usize,
    is_trained: bool,
    k: usize,
}

fn manifest() -> Vec<Entry> {
    std::fs::read_to_string(dir().join("manifest.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Entry {
                name: f[0].into(),
                d: f[1].parse().unwrap(),
                ntotal: f[2].parse().unwrap(),
                is_trained: f[3] == "1",
                k: f[4].parse().unwrap(),
            }
        })
        .collect()
}

fn f32s(name: &str) -> Vec<f32> {
    match read_npy(dir().join(name)).unwrap() {
        NpyArray::F32(a) => a.data,
        other => panic!("{name}: {}", other.dtype_name()),
    }
}

fn i64s(name: &str) -> Vec<i64> {
    match read_npy(dir().join(name)).unwrap() {
        NpyArray::I64(a) => a.data,
        other => panic!("{name}: {}", other.dtype_name()),
    }
}

#[test]
fn every_faiss_file_opens_searches_as_faiss_and_writes_back_byte_for_byte() {
    let q = f32s("q.npy");
    let entries = manifest();
    assert!(entries.len() >= 40);
    let mut failed = Vec::new();
    for e in &entries {
        // Check every file, then report all that failed.
        if let Err(err) = std::panic::catch_unwind(|| check_file(e, &q)) {
            let msg = err
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {msg}", e.name));
        }
    }
    assert!(
        failed.is_empty(),
        "{} files failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

fn check_file(e: &Entry, q: &[f32]) {
    {
        let path = dir().join(format!("{}.faiss", e.name));
        let index = read_index(&path).unwrap_or_else(|err| panic!("{}: {err}", e.name));
        assert_eq!(index.dim(), e.d, "{}", e.name);
        assert_eq!(index.ntotal(), e.ntotal, "{}", e.name);
        assert_eq!(index.is_trained(), e.is_trained, "{}", e.name);

        let bytes = std::fs::read(&path).unwrap();
        let ours = index_to_bytes(&*index).unwrap();
        if e.name == "ivf8_ondisk" {
            // The record names the data file where fathom found it and lists the free
            // space fathom computed (Faiss's own free list under-reports it): check that
            // fathom reads back what it wrote.
            assert!(ours.starts_with(&bytes[..bytes.len() / 2]), "{}", e.name);
            let again = index_to_bytes(&*read_index_bytes(&ours).unwrap()).unwrap();
            assert_eq!(again, ours, "{}: fathom's own bytes are stable", e.name);
        } else if e.name == "ivf8_dm_hash" {
            // Faiss writes the hashtable in its hash map's order; the rest must match.
            assert_eq!(ours.len(), bytes.len(), "{}", e.name);
            let again = index_to_bytes(&*read_index_bytes(&ours).unwrap()).unwrap();
            assert_eq!(again, ours, "{}: fathom's own bytes are stable", e.name);
        } else {
            assert!(
                ours == bytes,
                "{}: fathom's bytes differ from faiss's",
                e.name
            );
        }

        if !e.is_trained {
            assert!(index.search(q, e.k).is_err(), "{}", e.name);
            return;
        }
        let res = index.search(q, e.k).unwrap();
        let fd = f32s(&format!("{}.D.npy", e.name));
        let fi = i64s(&format!("{}.I.npy", e.name));
        if e.name.contains("x4fs") {
            // Fast-scan distances come from 8-bit quantized tables, whose rounding
            // differs between the two libraries: near, not equal.
            fathom_tests::assert_close_results(&e.name, &res.distances, &res.labels, &fd, &fi);
        } else {
            fathom_tests::assert_same_results(&e.name, e.k, &res.distances, &res.labels, &fd, &fi);
        }
    }
}

/// Every generic wrapper writes the record its boxed form writes (the writer sees both
/// through `Index::view`), and reads back as that boxed form.
#[test]
fn generic_wrappers_write_as_their_boxed_forms() {
    use fathom_index::{IndexFlat, IndexIdMap, IndexIdMap2, IndexPreTransform, MetricType};
    use fathom_linalg::{NormalizationTransform, VectorTransform};
    let d = 8;
    let x: Vec<f32> = (0..40 * d)
        .map(|i| ((i * 7919) % 101) as f32 / 101.0)
        .collect();
    let ids: Vec<i64> = (0..40).map(|i| 1000 + 3 * i).collect();
    let flat = || IndexFlat::new(d, MetricType::L2).unwrap();
    let boxed = || Box::new(flat()) as Box<dyn Index>;
    let norm = || Box::new(NormalizationTransform::new(d).unwrap()) as Box<dyn VectorTransform>;

    let mut a = IndexIdMap::new(flat());
    let mut b = IndexIdMap::new(boxed());
    a.add_with_ids(&x, &ids).unwrap();
    b.add_with_ids(&x, &ids).unwrap();
    assert_eq!(index_to_bytes(&a).unwrap(), index_to_bytes(&b).unwrap());

    let mut a = IndexIdMap2::new(flat());
    let mut b = IndexIdMap2::new(boxed());
    a.add_with_ids(&x, &ids).unwrap();
    b.add_with_ids(&x, &ids).unwrap();
    let bytes = index_to_bytes(&a).unwrap();
    assert_eq!(bytes, index_to_bytes(&b).unwrap());
    let back = read_index_bytes(&bytes).unwrap();
    assert_eq!(back.description(), "IDMap2,Flat");
    assert_eq!(back.reconstruct(1003).unwrap(), x[d..2 * d].to_vec());

    // Forms the writer's old list of downcasts did not name: an id map over an HNSW graph.
    let hnsw = || fathom_index::IndexHnswFlat::new_flat(d, 8, MetricType::L2).unwrap();
    let mut a = IndexIdMap::new(hnsw());
    let mut b = IndexIdMap::new(Box::new(hnsw()) as Box<dyn Index>);
    a.add_with_ids(&x, &ids).unwrap();
    b.add_with_ids(&x, &ids).unwrap();
    assert_eq!(index_to_bytes(&a).unwrap(), index_to_bytes(&b).unwrap());

    let mut a = IndexPreTransform::new(norm(), flat()).unwrap();
    let mut b = IndexPreTransform::new(norm(), boxed()).unwrap();
    a.add(&x).unwrap();
    b.add(&x).unwrap();
    let bytes = index_to_bytes(&a).unwrap();
    assert_eq!(bytes, index_to_bytes(&b).unwrap());
    let back = read_index_bytes(&bytes).unwrap();
    assert_eq!(
        back.search(&x[..d], 3).unwrap().labels,
        a.search(&x[..d], 3).unwrap().labels
    );
}
