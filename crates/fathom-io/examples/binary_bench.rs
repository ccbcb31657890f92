//! Times `IndexBinaryFlat` k-NN (k = 10) over the `base.npy` / `query.npy` (uint8) in a
//! directory, best of three passes, as `faiss_b.py` times faiss-cpu's: the side-by-side
//! behind the BFlat row of docs/BENCHMARKS.md.
//!
//! `cargo run --release -p fathom-io --example binary_bench -- DIR [THREADS]`
//!
//! The faiss side, in the faiss-cpu virtualenv:
//! `faiss.omp_set_num_threads(2); ix = faiss.IndexBinaryFlat(256); ix.add(xb)`, then the
//! best of three `ix.search(xq, 10)` timings.

use fathom_index::binary::{IndexBinary, IndexBinaryFlat};
use fathom_io::{NpyArray, read_npy};

fn bytes(path: std::path::PathBuf) -> (usize, Vec<u8>) {
    match read_npy(path).expect("an npy file") {
        NpyArray::U8(d) => (d.d, d.data),
        _ => panic!("expected uint8 rows"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("a directory"));
    let threads: usize = args.next().map_or(2, |t| t.parse().expect("threads"));
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("one global pool");
    let (cs, xb) = bytes(dir.join("base.npy"));
    let (_, xq) = bytes(dir.join("query.npy"));
    let mut index = IndexBinaryFlat::new(cs * 8).expect("a multiple of 8 bits");
    index.add(&xb).expect("whole rows");
    let nq = xq.len() / cs;
    let mut best = 0.0f64;
    let mut res = None;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        res = Some(index.search(&xq, 10).expect("a search"));
        best = best.max(nq as f64 / t.elapsed().as_secs_f64());
    }
    let d0 = &res.expect("three passes").distances[..3];
    println!("fathom BFlat qps={best:.0} D0={d0:?}");
}
