//! Truncated, corrupted and malicious Faiss files give errors, never a panic, an abort or
//! a huge allocation. Every faiss-cpu fixture is cut at hundreds of points and has bits
//! flipped at random; hand-made files probe each size, count and invariant the reader
//! checks (after the kinds of faiss's own `test_read_index_deserialize`). A corrupted
//! file that still reads must then search without panicking.

use std::path::PathBuf;

use fathom_index::{Index, IndexFlat, MetricType, index_factory};
use fathom_io::faiss::{index_to_bytes, read_index_bytes};

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    // Every float index family's faiss files: the general set, RaBitQ, residual quantizer.
    let mut out: Vec<(String, Vec<u8>)> = ["faiss_files", "faiss_rabitq", "faiss_rq"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "faiss"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 40);
    out
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn exercise(index: &dyn Index) {
    let d = index.dim();
    let q: Vec<f32> = (0..2 * d).map(|i| (i % 7) as f32 * 0.3 - 1.0).collect();
    let _ = index.search(&q, 3);
    let _ = index.range_search(&q, 1.0);
    let _ = index.reconstruct(0);
    let _ = index.description();
}

#[test]
fn every_truncation_of_every_fixture_is_an_error() {
    for (name, bytes) in fixtures() {
        let n = bytes.len();
        let mut cuts: Vec<usize> = (0..n.min(400)).collect();
        cuts.extend((0..200).map(|i| i * n / 200));
        cuts.extend(n.saturating_sub(64)..n);
        for cut in cuts {
            assert!(
                read_index_bytes(&bytes[..cut]).is_err(),
                "{name} cut to {cut} of {n} bytes was accepted"
            );
        }
    }
}

#[test]
fn flipped_bits_give_errors_or_an_index_that_searches() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    let mut rejected = 0;
    for (_, bytes) in fixtures() {
        for trial in 0..1000 {
            let mut b = bytes.clone();
            // Headers and sizes sit near the start: aim half of the flips there.
            let span = if trial % 2 == 0 {
                b.len().min(256)
            } else {
                b.len()
            };
            for _ in 0..1 + trial % 3 {
                let at = rng.below(span);
                b[at] ^= 1 << rng.below(8);
            }
            match read_index_bytes(&b) {
                Ok(index) => {
                    accepted += 1;
                    exercise(&*index);
                }
                Err(_) => rejected += 1,
            }
        }
    }
    // Flips inside stored vectors and codes are undetectable, those in sizes are not.
    assert!(
        accepted > 0 && rejected > 0,
        "{accepted} accepted, {rejected} rejected"
    );
}

/// The bytes of a small flat index, to edit.
fn flat_bytes() -> Vec<u8> {
    let mut f = IndexFlat::new_l2(2).unwrap();
    f.add(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    index_to_bytes(&f).unwrap()
}

fn expect_err(bytes: &[u8], needle: &str) {
    match read_index_bytes(bytes) {
        Ok(i) => panic!("accepted a malformed file as {}", i.description()),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(needle),
                "error {msg:?} does not mention {needle:?}"
            );
        }
    }
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn malicious_headers_and_counts_are_refused_with_a_reason() {
    let good = flat_bytes();
    assert_eq!(good.len(), 61, "the worked example of faiss-format.md");
    read_index_bytes(&good).unwrap();

    expect_err(&[], "truncated");
    expect_err(b"XXXX", "unknown or unsupported index type");
    expect_err(b"null", "stores no index");
    let mut b = good.clone();
    b[4..8].copy_from_slice(&(-3i32).to_le_bytes());
    expect_err(&b, "dimension d");
    b[4..8].copy_from_slice(&((1i32 << 20) + 1).to_le_bytes());
    expect_err(&b, "dimension d");
    let mut b = good.clone();
    put_u64(&mut b, 8, u64::MAX); // ntotal = -1
    expect_err(&b, "ntotal");
    let mut b = good.clone();
    b[32] = 2; // is_trained
    expect_err(&b, "0 or 1");
    let mut b = good.clone();
    b[33..37].copy_from_slice(&7i32.to_le_bytes());
    expect_err(&b, "metric");
    let mut b = good.clone();
    put_u64(&mut b, 37, 1 << 61); // vector count: a 2^63-byte allocation if trusted
    expect_err(&b, "more than the");
    let mut b = good.clone();
    put_u64(&mut b, 37, 3);
    expect_err(&b, "expected 4");
    let mut b = good.clone();
    b[0..4].copy_from_slice(b"IxFI"); // an IP record with the L2 metric
    expect_err(&b, "declares metric");
    let mut b = good.clone();
    b.push(0);
    expect_err(&b, "follow the index record");
    let mut b = good.clone();
    b[45..49].copy_from_slice(&f32::NAN.to_le_bytes());
    expect_err(&b, "finite");
}

#[test]
fn nesting_bombs_stop_at_the_depth_limit() {
    // IDMap of IDMap of … 10 000 deep: refused at depth 50, not a stack overflow.
    let mut b = Vec::new();
    for _ in 0..10_000 {
        b.extend_from_slice(b"IxMp");
        b.extend_from_slice(&2i32.to_le_bytes());
        b.extend_from_slice(&0i64.to_le_bytes());
        b.extend_from_slice(&(1i64 << 20).to_le_bytes());
        b.extend_from_slice(&(1i64 << 20).to_le_bytes());
        b.push(1);
        b.extend_from_slice(&1i32.to_le_bytes());
    }
    expect_err(&b, "nested more than 50");
}

fn built(desc: &str, n: usize) -> Box<dyn Index> {
    let d = 8;
    let x: Vec<f32> = (0..n * d)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let mut index = index_factory(d, desc, MetricType::L2).unwrap();
    index.train(&x).unwrap();
    index.add(&x).unwrap();
    index
}

fn find(b: &[u8], pat: &[u8]) -> usize {
    b.windows(pat.len()).position(|w| w == pat).unwrap()
}

#[test]
fn ivf_lists_hnsw_links_and_pq_sizes_are_checked() {
    // IVF: a list claiming more entries than the file holds; nlist beyond the quantizer.
    let ivf = index_to_bytes(&*built("IVF4,Flat", 200)).unwrap();
    let at = find(&ivf, b"full") + 4 + 8; // first size
    let mut b = ivf.clone();
    put_u64(&mut b, at, u64::MAX / 2);
    expect_err(&b, "more than the file holds");
    let mut b = ivf.clone();
    put_u64(&mut b, 37, 1 << 40); // nlist (after the 37-byte header)
    expect_err(&b, "nlist");
    let mut b = ivf.clone();
    let at = find(&ivf, b"ilar") + 4;
    put_u64(&mut b, at, 5);
    expect_err(&b, "inverted lists hold 5 lists");

    // HNSW: a neighbour id past ntotal.
    let hnsw = index_to_bytes(&*built("HNSW8", 100)).unwrap();
    let mut b = hnsw.clone();
    let neighbors = {
        // The neighbours vector follows offsets (ntotal + 1 u64s).
        let offsets_at = find(&hnsw, &101u64.to_le_bytes());
        offsets_at + 8 + 101 * 8 + 8
    };
    b[neighbors..neighbors + 4].copy_from_slice(&100_000i32.to_le_bytes());
    expect_err(&b, "HNSW");

    // PQ: nbits beyond 24, and a centroid table whose size does not match.
    let pq = index_to_bytes(&*built("PQ2x4", 100)).unwrap();
    let mut b = pq.clone();
    put_u64(&mut b, 37 + 16, 40);
    expect_err(&b, "PQ nbits");
    let mut b = pq.clone();
    put_u64(&mut b, 37 + 24, 3);
    expect_err(&b, "PQ centroids");
}

#[test]
fn inputs_the_fuzzer_found_read_or_fail_without_panicking() {
    // Each file once crashed the reader or the first search after it (see fuzz/).
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz_regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(index) = read_index_bytes(&bytes) {
            exercise(&*index);
        }
        n += 1;
    }
    assert!(n >= 1);
}
