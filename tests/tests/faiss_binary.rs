//! Binary indexes against faiss-cpu and brute force. The fixtures in
//! `fixtures/faiss_binary` were written by `fixtures/make_faiss_binary.py` with faiss-cpu
//! 1.15.1: fathom opens faiss's files, finds faiss's neighbours (distances exactly, labels
//! up to ties) and range results, and writes the files back byte for byte.

use std::path::PathBuf;

use fathom_core::{IdSelectorBatch, IdSelectorRange, Idx, SearchParams};
use fathom_index::binary::{IndexBinary, IndexBinaryFlat, IndexBinaryIdMap, index_binary_factory};
use fathom_io::faiss::{index_binary_to_bytes, read_index_binary, read_index_binary_bytes};
use fathom_io::{NpyArray, read_npy};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/faiss_binary")
}

fn npy(name: &str) -> NpyArray {
    read_npy(dir().join(name)).unwrap()
}

fn u8s(name: &str) -> Vec<u8> {
    match npy(name) {
        NpyArray::U8(d) => d.data,
        other => panic!("{name}: {other:?}"),
    }
}

fn i64s(name: &str) -> Vec<i64> {
    match npy(name) {
        NpyArray::I64(d) => d.data,
        other => panic!("{name}: {other:?}"),
    }
}

fn i32s_as_f32(name: &str) -> Vec<f32> {
    match npy(name) {
        NpyArray::I32(d) => d.data.iter().map(|&v| v as f32).collect(),
        other => panic!("{name}: {other:?}"),
    }
}

fn hamming(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

#[test]
fn faiss_binary_files_open_search_as_faiss_and_write_back_byte_for_byte() {
    let (xb, xq) = (u8s("base.npy"), u8s("query.npy"));
    let bytes = std::fs::read(dir().join("bflat.faiss")).unwrap();
    let index = read_index_binary(dir().join("bflat.faiss")).unwrap();
    assert_eq!((index.d(), index.ntotal()), (64, 3000));
    assert_eq!(index.description(), "BFlat");
    assert_eq!(index_binary_to_bytes(&*index).unwrap(), bytes);

    let res = index.search(&xq, 10).unwrap();
    fathom_tests::assert_same_results(
        "BFlat",
        10,
        &res.distances,
        &res.labels,
        &i32s_as_f32("D.npy"),
        &i64s("I.npy"),
    );
    // Every distance is the true Hamming distance of the label it comes with.
    for (q, (l, d)) in res
        .labels
        .chunks(10)
        .zip(res.distances.chunks(10))
        .enumerate()
    {
        for (&l, &d) in l.iter().zip(d) {
            let code = &xb[l as usize * 8..(l as usize + 1) * 8];
            assert_eq!(hamming(&xq[q * 8..(q + 1) * 8], code) as f32, d);
        }
    }

    let range = index.range_search(&xq, 24.0).unwrap();
    let lims: Vec<usize> = i64s("R_lims.npy").iter().map(|&v| v as usize).collect();
    assert_eq!(range.lims, lims);
    let (labels, dist) = (i64s("R_labels.npy"), i32s_as_f32("R_dist.npy"));
    for q in 0..lims.len() - 1 {
        let mut ours: Vec<(Idx, f32)> = (range.lims[q]..range.lims[q + 1])
            .map(|j| (range.labels[j], range.distances[j]))
            .collect();
        let mut theirs: Vec<(Idx, f32)> = (lims[q]..lims[q + 1])
            .map(|j| (labels[j], dist[j]))
            .collect();
        ours.sort_by_key(|p| p.0);
        theirs.sort_by_key(|p| p.0);
        assert_eq!(ours, theirs, "query {q}");
    }

    let bytes = std::fs::read(dir().join("bidmap2.faiss")).unwrap();
    let idmap = read_index_binary_bytes(&bytes).unwrap();
    assert_eq!(idmap.description(), "IDMap2,BFlat");
    assert_eq!(idmap.ntotal(), 500);
    assert_eq!(
        idmap.reconstruct(10 * 42 + 7).unwrap(),
        xb[42 * 8..43 * 8].to_vec()
    );
    let res = idmap.search(&xb[42 * 8..43 * 8], 1).unwrap();
    assert_eq!((res.labels[0], res.distances[0]), (427, 0.0));
    assert_eq!(index_binary_to_bytes(&*idmap).unwrap(), bytes);
}

/// A small deterministic generator of bytes.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

#[test]
fn binary_flat_equals_brute_force_with_selectors_removal_and_ids() {
    let (d, n, nq, k) = (128, 1500, 30, 7);
    let cs = d / 8;
    let (xb, xq) = (bytes(n * cs, 3), bytes(nq * cs, 5));
    let mut index = IndexBinaryFlat::new(d).unwrap();
    index.add(&xb).unwrap();
    let res = index.search(&xq, k).unwrap();
    for q in 0..nq {
        let mut all: Vec<u32> = (0..n)
            .map(|i| hamming(&xq[q * cs..(q + 1) * cs], &xb[i * cs..(i + 1) * cs]))
            .collect();
        all.sort_unstable();
        let got: Vec<u32> = res.distances[q * k..(q + 1) * k]
            .iter()
            .map(|&v| v as u32)
            .collect();
        assert_eq!(got, all[..k], "query {q}");
    }
    // A selector keeps only ids 100..200.
    let sel = IdSelectorRange::new(100, 200);
    let res = index
        .search_with(&xq, k, &SearchParams::default().with_selector(&sel))
        .unwrap();
    assert!(res.labels.iter().all(|&l| (100..200).contains(&l)));
    // Removal renumbers the later vectors, as Faiss's flat indexes do.
    let removed = index.remove_ids(&IdSelectorBatch::new([0, 1, 2])).unwrap();
    assert_eq!((removed, index.ntotal()), (3, n - 3));
    assert_eq!(index.reconstruct(0).unwrap(), xb[3 * cs..4 * cs].to_vec());

    // Through the factory, with ids; the file round trip keeps everything.
    let mut m = index_binary_factory(d, "IDMap,BFlat").unwrap();
    let ids: Vec<Idx> = (0..n as Idx).map(|i| 1_000_000 + i).collect();
    m.add_with_ids(&xb, &ids).unwrap();
    let back = read_index_binary_bytes(&index_binary_to_bytes(&*m).unwrap()).unwrap();
    let (a, b) = (m.search(&xq, k).unwrap(), back.search(&xq, k).unwrap());
    assert_eq!(a.labels, b.labels);
    assert!(a.labels.iter().all(|&l| l >= 1_000_000));
    assert!(
        m.reconstruct(1_000_005).is_err(),
        "IDMap (not IDMap2) cannot reconstruct"
    );
}

#[test]
fn bad_binary_input_is_an_error() {
    assert!(IndexBinaryFlat::new(12).is_err());
    assert!(IndexBinaryFlat::new(0).is_err());
    let mut index = IndexBinaryFlat::new(16).unwrap();
    assert!(index.add(&[1, 2, 3]).is_err(), "not whole 2-byte vectors");
    index.add(&[1, 2]).unwrap();
    assert!(index.search(&[1], 1).is_err());
    assert!(index.search(&[1, 2], 0).is_err());
    assert!(index.range_search(&[1, 2], f32::NAN).is_err());
    assert!(index.reconstruct(5).is_err());
    assert!(index.add_with_ids(&[1, 2], &[9]).is_err());
    let mut m = IndexBinaryIdMap::new(Box::new(IndexBinaryFlat::new(16).unwrap()), true).unwrap();
    m.add_with_ids(&[1, 2], &[9]).unwrap();
    assert!(
        m.add_with_ids(&[3, 4], &[9]).is_err(),
        "IDMap2 ids are unique"
    );
    assert!(m.add(&[3, 4]).is_err());
    assert!(index_binary_factory(16, "BIVF8").is_err());
    assert!(index_binary_factory(16, "IDMap,IDMap,BFlat").is_err());
    // Truncations of a valid file are errors, never panics.
    let bytes = index_binary_to_bytes(&m).unwrap();
    for cut in 0..bytes.len() {
        assert!(
            read_index_binary_bytes(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn inputs_the_fuzzer_found_read_or_fail_without_panicking() {
    // Each file once crashed the binary reader (see fuzz/, target read_index_binary).
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz_regressions_binary");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(index) = read_index_binary_bytes(&bytes) {
            let q = vec![0u8; index.code_size()];
            let _ = index.search(&q, 3);
        }
        n += 1;
    }
    assert!(n >= 1);
}
