//! Binary indexes against faiss-cpu and brute force. The fixtures in
//! `fixtures/faiss_binary` were written by `fixtures/make_faiss_binary.py` with faiss-cpu
//! 1.15.1: fathom opens faiss's files, finds faiss's neighbours (distances exactly, labels
//! up to ties) and range results, and writes the files back byte for byte.

use std::path::PathBuf;

use fathom_core::{IdSelectorBatch, IdSelectorRange, Idx, SearchParams};
use fathom_index::IndexFlat;
use fathom_index::binary::{
    IndexBinary, IndexBinaryFlat, IndexBinaryFromFloat, IndexBinaryHash, IndexBinaryHnsw,
    IndexBinaryIdMap, IndexBinaryIvf, IndexBinaryMultiHash, index_binary_factory,
};
use fathom_index::ivf::DirectMapType;
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
    assert!(index_binary_factory(16, "BIVF0").is_err());
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

/// Faiss's k-NN results for fixture `name` (`NAME_D.npy`, `NAME_I.npy`).
fn faiss_knn(name: &str) -> (Vec<f32>, Vec<i64>) {
    (
        i32s_as_f32(&format!("{name}_D.npy")),
        i64s(&format!("{name}_I.npy")),
    )
}

/// The `k` smallest Hamming distances of each query over `xb` (rows of `cs` bytes).
fn brute_force(xb: &[u8], xq: &[u8], cs: usize, k: usize) -> Vec<f32> {
    xq.chunks(cs)
        .flat_map(|q| {
            let mut all: Vec<u32> = xb.chunks(cs).map(|b| hamming(q, b)).collect();
            all.sort_unstable();
            all.truncate(k);
            all.into_iter().map(|d| d as f32)
        })
        .collect()
}

/// Binary k-NN results against faiss's for the same index: equal distances, and every
/// label at the Hamming distance reported with it (labels may differ from faiss's only
/// among equal distances, also with vectors just outside the top k).
fn assert_binary_results(what: &str, res: &fathom_core::SearchResult, xb: &[u8], xq: &[u8]) {
    let (d, i) = faiss_knn(what);
    assert_eq!(res.distances, d, "{what}: distances");
    let k = d.len() / (xq.len() / 8);
    for (j, (&l, &dist)) in res.labels.iter().zip(&res.distances).enumerate() {
        if l != i[j] {
            let q = &xq[j / k * 8..][..8];
            assert_eq!(
                hamming(q, &xb[l as usize * 8..][..8]) as f32,
                dist,
                "{what}: row {j}"
            );
        }
    }
}

#[test]
fn faiss_ivf_hash_and_from_float_files_search_as_faiss_and_write_back_byte_for_byte() {
    let (xb, xq) = (u8s("base.npy"), u8s("query.npy"));
    for (name, desc) in [
        ("bivf", "BIVF16"),
        ("bhash", "BHash12"),
        ("bmhash", "BHash4x12"),
        ("bfromfloat", "BFromFloat(Flat)"),
    ] {
        let bytes = std::fs::read(dir().join(format!("{name}.faiss"))).unwrap();
        let index = read_index_binary_bytes(&bytes).unwrap();
        assert_eq!(index.description(), desc);
        assert_eq!(index_binary_to_bytes(&*index).unwrap(), bytes, "{name}");
        assert_binary_results(name, &index.search(&xq, 10).unwrap(), &xb, &xq);
    }
    let ivf = read_index_binary(dir().join("bivf.faiss")).unwrap();
    assert_eq!(ivf.param("nprobe"), Some(4.0));
    let range = ivf.range_search(&xq, 20.0).unwrap();
    let lims: Vec<usize> = i64s("bivf_R_lims.npy")
        .iter()
        .map(|&v| v as usize)
        .collect();
    assert_eq!(range.lims, lims);
    let (labels, dist) = (i64s("bivf_R_labels.npy"), i32s_as_f32("bivf_R_dist.npy"));
    for q in 0..lims.len() - 1 {
        let mut ours: Vec<(Idx, f32)> = (lims[q]..lims[q + 1])
            .map(|j| (range.labels[j], range.distances[j]))
            .collect();
        let mut theirs: Vec<(Idx, f32)> = (lims[q]..lims[q + 1])
            .map(|j| (labels[j], dist[j]))
            .collect();
        ours.sort_by_key(|p| p.0);
        theirs.sort_by_key(|p| p.0);
        assert_eq!(ours, theirs, "query {q}");
    }
}

#[test]
fn faiss_hnsw_file_opens_writes_back_and_finds_faiss_neighbours() {
    let (xb, xq) = (u8s("base.npy"), u8s("query.npy"));
    let bytes = std::fs::read(dir().join("bhnsw.faiss")).unwrap();
    let index = read_index_binary_bytes(&bytes).unwrap();
    assert_eq!(index.description(), "BHNSW8");
    assert_eq!(index_binary_to_bytes(&*index).unwrap(), bytes);
    let res = index.search(&xq, 10).unwrap();
    let (fd, _) = faiss_knn("bhnsw");
    // The same graph walked with the same beam: the distances found match faiss's
    // except where equal distances send the walk another way; on the whole they are as
    // good, and every one is a true Hamming distance.
    let exact = brute_force(&xb, &xq, 8, 10);
    let ours: f32 = res.distances.iter().sum();
    let theirs: f32 = fd.iter().sum();
    // (Measured: fathom 8516, faiss 8548, exact 8064; 321 of 400 distances equal.)
    assert!(
        ours <= theirs * 1.01,
        "sum of distances {ours} vs faiss {theirs}"
    );
    let same = res
        .distances
        .iter()
        .zip(&fd)
        .filter(|(a, b)| a == b)
        .count();
    assert!(same * 10 >= fd.len() * 7, "{same} of {} equal", fd.len());
    for (q, (l, d)) in res
        .labels
        .chunks(10)
        .zip(res.distances.chunks(10))
        .enumerate()
    {
        for (&l, &d) in l.iter().zip(d) {
            assert_eq!(
                hamming(&xq[q * 8..(q + 1) * 8], &xb[l as usize * 8..][..8]) as f32,
                d
            );
        }
        assert!(d[0] >= exact[q * 10]);
    }
}

/// Vectors around a few centres (a few bits flipped each), the shape binary embeddings
/// of similar items have.
fn clustered(n: usize, cs: usize, seed: u64) -> Vec<u8> {
    let centres = bytes(16 * cs, seed);
    let noise = bytes(n * cs, seed + 1);
    (0..n * cs)
        .map(|j| {
            let (i, b) = (j / cs, j % cs);
            // One bit in eight flipped on average.
            let flip = noise[j] & noise[(j + 7) % noise.len()] & noise[(j + 13) % noise.len()];
            centres[(i % 16) * cs + b] ^ flip
        })
        .collect()
}

#[test]
fn binary_ivf_equals_brute_force_when_every_list_is_probed() {
    let (d, cs, n, nq, k) = (64, 8, 4000, 40, 10);
    let (xb, xq) = (clustered(n, cs, 11), clustered(nq, cs, 19));
    let mut index = index_binary_factory(d, "BIVF32").unwrap();
    assert!(!index.is_trained());
    assert!(index.add(&xb).is_err(), "untrained");
    index.train(&xb).unwrap();
    index.add(&xb).unwrap();
    assert_eq!(index.ntotal(), n);
    index.set_param("nprobe", 32.0).unwrap();
    let res = index.search(&xq, k).unwrap();
    assert_eq!(res.distances, brute_force(&xb, &xq, cs, k));
    // Fewer lists: never better than exact, and mostly the same.
    index.set_param("nprobe", 4.0).unwrap();
    let approx = index.search(&xq, k).unwrap();
    let exact = brute_force(&xb, &xq, cs, k);
    assert!(approx.distances.iter().zip(&exact).all(|(a, e)| a >= e));
    let recall = approx
        .distances
        .iter()
        .zip(&exact)
        .filter(|(a, e)| a == e)
        .count();
    assert!(
        recall * 10 >= exact.len() * 7,
        "{recall} of {}",
        exact.len()
    );
    // Per-call nprobe overrides the index's; max_codes caps the scan.
    let all = index
        .search_with(&xq, k, &SearchParams::default().with_nprobe(32))
        .unwrap();
    assert_eq!(all.distances, exact);
    assert!(index.set_param("nprobe", 0.0).is_err());
    assert!(index.set_param("efSearch", 3.0).is_err());

    // A selector, then removal (which needs no array map), then the file round trip.
    let sel = IdSelectorRange::new(0, 100);
    let res = index
        .search_with(
            &xq,
            k,
            &SearchParams::default().with_selector(&sel).with_nprobe(32),
        )
        .unwrap();
    assert!(res.labels.iter().all(|&l| (0..100).contains(&l) || l == -1));
    assert_eq!(
        index.remove_ids(&IdSelectorRange::new(0, 100)).unwrap(),
        100
    );
    assert_eq!(index.ntotal(), n - 100);
    let back = read_index_binary_bytes(&index_binary_to_bytes(&*index).unwrap()).unwrap();
    assert_eq!(back.description(), "BIVF32");
    assert_eq!(back.ntotal(), n - 100);
    let (a, b) = (index.search(&xq, k).unwrap(), back.search(&xq, k).unwrap());
    assert_eq!((a.labels, a.distances), (b.labels, b.distances));
}

#[test]
fn binary_ivf_trains_the_same_centroids_as_faiss() {
    // Same subsample, same k-means, same seed: the quantizer faiss trained on base.npy.
    let xb = u8s("base.npy");
    let theirs = read_index_binary(dir().join("bivf.faiss")).unwrap();
    let mut ours = IndexBinaryIvf::new(Box::new(IndexBinaryFlat::new(64).unwrap()), 16).unwrap();
    ours.train(&xb).unwrap();
    let centroids = |ix: &dyn IndexBinary| -> Vec<Vec<u8>> {
        let q = match ix.view() {
            fathom_index::binary::BinaryIndexView::Ivf(ivf) => ivf.quantizer(),
            _ => panic!("not an IVF"),
        };
        (0..16).map(|i| q.reconstruct(i).unwrap()).collect()
    };
    assert_eq!(centroids(&ours), centroids(&*theirs));
}

#[test]
fn binary_ivf_direct_map_merge_and_hnsw_quantizer() {
    let (cs, n) = (8, 2000);
    let xb = clustered(n, cs, 5);
    let mut a = IndexBinaryIvf::new(Box::new(IndexBinaryFlat::new(64).unwrap()), 8).unwrap();
    a.train(&xb).unwrap();
    a.add(&xb[..1000 * cs]).unwrap();
    assert!(a.reconstruct(3).is_err(), "no direct map yet");
    a.make_direct_map(true).unwrap();
    assert_eq!(a.reconstruct(3).unwrap(), xb[3 * cs..4 * cs].to_vec());
    assert!(
        a.add_with_ids(&xb[..cs], &[77]).is_err(),
        "array map: sequential ids only"
    );
    a.set_direct_map_type(DirectMapType::Hashtable).unwrap();
    a.add_with_ids(&xb[1000 * cs..1001 * cs], &[5000]).unwrap();
    assert_eq!(
        a.reconstruct(5000).unwrap(),
        xb[1000 * cs..1001 * cs].to_vec()
    );
    // The map survives the file.
    let back = read_index_binary_bytes(&index_binary_to_bytes(&a).unwrap()).unwrap();
    assert_eq!(
        back.reconstruct(5000).unwrap(),
        xb[1000 * cs..1001 * cs].to_vec()
    );

    let mut b = IndexBinaryIvf::new(Box::new(IndexBinaryFlat::new(64).unwrap()), 8).unwrap();
    b.train(&xb).unwrap();
    b.add(&xb[1001 * cs..]).unwrap();
    assert!(
        a.merge_from(&mut b, 10_000).is_err(),
        "a direct map blocks merging"
    );
    a.make_direct_map(false).unwrap();
    a.merge_from(&mut b, 10_000).unwrap();
    assert_eq!((a.ntotal(), b.ntotal()), (n, 0));
    a.nprobe = 8;
    let res = a.search(&xb[1500 * cs..1501 * cs], 1).unwrap();
    assert_eq!((res.labels[0], res.distances[0]), (10_000 + 499, 0.0));

    // An HNSW coarse quantizer finds the same lists on this small set.
    let mut h = index_binary_factory(64, "BIVF8_HNSW16").unwrap();
    h.train(&xb).unwrap();
    h.add(&xb).unwrap();
    h.set_param("nprobe", 8.0).unwrap();
    let res = h.search(&xb[..40 * cs], 5).unwrap();
    assert_eq!(res.distances, brute_force(&xb, &xb[..40 * cs], cs, 5));
    let back = read_index_binary_bytes(&index_binary_to_bytes(&*h).unwrap()).unwrap();
    assert_eq!(back.description(), "BIVF8_HNSW16");
    assert_eq!(back.search(&xb[..40 * cs], 5).unwrap().labels, res.labels);
}

/// Sign bits of `8·cs` random projections of points in 8 dimensions (LSH codes): near
/// points get near codes, so neighbourhoods have the structure a graph index relies on.
fn lsh_codes(n: usize, cs: usize, seed: u64) -> Vec<u8> {
    let unit = |b: &[u8]| -> Vec<f32> { b.iter().map(|&v| v as f32 / 127.5 - 1.0).collect() };
    let planes = unit(&bytes(8 * cs * 8, 1000));
    let points = unit(&bytes(n * 8, seed));
    let mut out = vec![0u8; n * cs];
    for (p, code) in points.chunks(8).zip(out.chunks_mut(cs)) {
        for (bit, h) in planes.chunks(8).enumerate() {
            let dot: f32 = p.iter().zip(h).map(|(a, b)| a * b).sum();
            if dot > 0.0 {
                code[bit / 8] |= 1 << (bit % 8);
            }
        }
    }
    out
}

#[test]
fn binary_hnsw_finds_near_neighbours_and_round_trips() {
    let (cs, n, nq, k) = (16, 5000, 50, 10);
    let (xb, xq) = (lsh_codes(n, cs, 23), lsh_codes(nq, cs, 29));
    let mut index = IndexBinaryHnsw::new(128, 16).unwrap();
    index.add(&xb[..2000 * cs]).unwrap();
    index.add(&xb[2000 * cs..]).unwrap();
    index.set_param("efSearch", 64.0).unwrap();
    let res = index.search(&xq, k).unwrap();
    let exact = brute_force(&xb, &xq, cs, k);
    let hits = res
        .distances
        .iter()
        .zip(&exact)
        .filter(|(a, e)| a == e)
        .count();
    assert!(hits * 10 >= exact.len() * 9, "{hits} of {}", exact.len());
    // A selector that allows few ids falls back to a scan: exact among them.
    let sel = IdSelectorRange::new(0, 50);
    let res = index
        .search_with(&xq, 3, &SearchParams::default().with_selector(&sel))
        .unwrap();
    assert_eq!(res.distances, brute_force(&xb[..50 * cs], &xq, cs, 3));
    let range = index.range_search(&xq[..cs], 30.0).unwrap();
    assert!(range.distances.iter().all(|&d| d < 30.0));
    assert!(index.remove_ids(&IdSelectorRange::new(0, 1)).is_err());
    let back = read_index_binary_bytes(&index_binary_to_bytes(&index).unwrap()).unwrap();
    assert_eq!(back.description(), "BHNSW16");
    let (a, b) = (index.search(&xq, k).unwrap(), back.search(&xq, k).unwrap());
    assert_eq!(a.labels, b.labels);
}

#[test]
fn hash_indexes_are_exact_when_every_bucket_is_visited() {
    let (cs, n, nq, k) = (8, 3000, 30, 7);
    let (xb, xq) = (bytes(n * cs, 41), bytes(nq * cs, 43));
    let exact = brute_force(&xb, &xq, cs, k);
    // nflip = b: every key is within reach.
    let mut hash = IndexBinaryHash::new(64, 6).unwrap();
    hash.add(&xb).unwrap();
    hash.set_param("nflip", 6.0).unwrap();
    assert_eq!(hash.search(&xq, k).unwrap().distances, exact);
    hash.nflip = 0;
    let near = hash.search(&xq, k).unwrap();
    assert!(near.distances.iter().zip(&exact).all(|(a, e)| a >= e));
    let mut multi = IndexBinaryMultiHash::new(64, 3, 5).unwrap();
    multi.add(&xb).unwrap();
    multi.nflip = 5;
    assert_eq!(multi.search(&xq, k).unwrap().distances, exact);
    assert!(multi.set_param("nflip", 64.0).is_ok() || multi.nflip == 5);
    assert!(
        IndexBinaryHash::new(64, 40)
            .unwrap()
            .set_param("nflip", 20.0)
            .is_err(),
        "too many buckets"
    );

    // Ids, removal and reconstruction on the hash index; both round-trip byte for byte.
    let mut hash = IndexBinaryHash::new(64, 10).unwrap();
    let ids: Vec<Idx> = (0..n as Idx).map(|i| 7 * i).collect();
    hash.add_with_ids(&xb, &ids).unwrap();
    assert_eq!(
        hash.reconstruct(7 * 12).unwrap(),
        xb[12 * cs..13 * cs].to_vec()
    );
    assert_eq!(
        hash.remove_ids(&IdSelectorBatch::new([0, 7, 14])).unwrap(),
        3
    );
    assert!(hash.reconstruct(7).is_err());
    let bytes_h = index_binary_to_bytes(&hash).unwrap();
    let back = read_index_binary_bytes(&bytes_h).unwrap();
    assert_eq!(index_binary_to_bytes(&*back).unwrap(), bytes_h);
    assert_eq!(back.ntotal(), n - 3);
    let bytes_m = index_binary_to_bytes(&multi).unwrap();
    assert_eq!(
        index_binary_to_bytes(&*read_index_binary_bytes(&bytes_m).unwrap()).unwrap(),
        bytes_m
    );
}

#[test]
fn binary_from_float_equals_brute_force() {
    let (cs, n, nq, k) = (8, 1000, 20, 5);
    let (xb, xq) = (bytes(n * cs, 51), bytes(nq * cs, 53));
    let mut index = IndexBinaryFromFloat::new(Box::new(IndexFlat::new_l2(64).unwrap())).unwrap();
    index.add(&xb).unwrap();
    assert_eq!(
        index.search(&xq, k).unwrap().distances,
        brute_force(&xb, &xq, cs, k)
    );
    assert_eq!(index.reconstruct(9).unwrap(), xb[9 * cs..10 * cs].to_vec());
    let range = index.range_search(&xq, 25.0).unwrap();
    for (q, w) in range.lims.windows(2).enumerate() {
        let want = xb
            .chunks(cs)
            .filter(|b| hamming(&xq[q * cs..(q + 1) * cs], b) < 25)
            .count();
        assert_eq!(w[1] - w[0], want, "query {q}");
    }
    assert!(IndexBinaryFromFloat::new(Box::new(IndexFlat::new_ip(64).unwrap())).is_err());
    assert!(IndexBinaryFromFloat::new(Box::new(IndexFlat::new_l2(12).unwrap())).is_err());
}

#[test]
fn truncated_and_corrupted_binary_files_are_errors() {
    // Every prefix of each new record kind fails cleanly; single-byte corruptions either
    // fail or give an index that searches without panicking.
    let xq = u8s("query.npy");
    for name in ["bivf", "bhnsw", "bhash", "bmhash", "bfromfloat"] {
        let bytes = std::fs::read(dir().join(format!("{name}.faiss"))).unwrap();
        let step = (bytes.len() / 300).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            assert!(
                read_index_binary_bytes(&bytes[..cut]).is_err(),
                "{name} cut at {cut}"
            );
        }
        for at in (0..bytes.len().min(400)).chain((400..bytes.len()).step_by(97)) {
            for v in [0x00u8, 0xff, 0x7f] {
                let mut bad = bytes.clone();
                bad[at] = v;
                if let Ok(index) = read_index_binary_bytes(&bad) {
                    let _ = index.search(&xq[..8], 3);
                    let _ = index.range_search(&xq[..8], 10.0);
                }
            }
        }
    }
}

/// An IDMap2 holding an id twice, as a Faiss file can (Faiss's adds do not check): the id
/// reconstructs the later vector, removal takes both, and the file round-trips.
#[test]
fn binary_idmap2_repeats_mean_what_they_mean_in_faiss() {
    let mut flat = IndexBinaryFlat::new(16).unwrap();
    flat.add(&[1, 1, 2, 2, 3, 3]).unwrap();
    let m = IndexBinaryIdMap::from_parts(Box::new(flat), vec![5, 7, 5], true).unwrap();
    assert_eq!(m.reconstruct(5).unwrap(), vec![3, 3]);
    assert_eq!(m.reconstruct(7).unwrap(), vec![2, 2]);
    let bytes = index_binary_to_bytes(&m).unwrap();
    let mut back = read_index_binary_bytes(&bytes).unwrap();
    assert_eq!(back.reconstruct(5).unwrap(), vec![3, 3]);
    assert_eq!(back.remove_ids(&IdSelectorBatch::new([5])).unwrap(), 2);
    assert_eq!(back.ntotal(), 1);
    assert!(back.reconstruct(5).is_err());
    assert_eq!(back.reconstruct(7).unwrap(), vec![2, 2]);
    let mut fresh =
        IndexBinaryIdMap::new(Box::new(IndexBinaryFlat::new(16).unwrap()), true).unwrap();
    fresh.add_with_ids(&[1, 1, 2, 2], &[1, 2]).unwrap();
    assert!(
        fresh.add_with_ids(&[3, 3], &[2]).is_err(),
        "adds stay unique"
    );
    fresh.remove_ids(&IdSelectorBatch::new([1])).unwrap();
    assert_eq!(fresh.reconstruct(2).unwrap(), vec![2, 2], "rows renumbered");
}

/// Faiss sizes a multi-hash bucket with as many bits as an id: a bucket holding every
/// vector of a power-of-two-sized index does not fit, and Faiss's own writer silently
/// loses it (faiss-cpu 1.15.1: one vector written, none found after reading). fathom
/// refuses to write such a file and says why.
#[test]
fn multi_hash_buckets_faiss_cannot_size_are_refused_not_lost() {
    let mut one = index_binary_factory(64, "BHash2x8").unwrap();
    one.add(&[7u8; 8]).unwrap();
    let e = index_binary_to_bytes(&*one).unwrap_err().to_string();
    assert!(
        e.contains("cannot be written") && e.contains("bucket of 1 ids"),
        "{e}"
    );
    one.add(&[9u8; 8]).unwrap();
    one.add(&[11u8; 8]).unwrap();
    let back = read_index_binary_bytes(&index_binary_to_bytes(&*one).unwrap()).unwrap();
    assert_eq!(back.search(&[7u8; 8], 1).unwrap().labels, vec![0]);
}
