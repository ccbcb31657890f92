//! Times a binary index over the `base.npy` / `query.npy` (uint8 rows) in a directory and
//! prints one JSON line per search setting, as `xtask/py/faiss_binary.py` does for
//! faiss-cpu: the two sides `cargo xtask binary-bench` interleaves for the binary rows of
//! docs/BENCHMARKS.md.
//!
//! `cargo run --release -p fathom-io --example binary_bench -- DIR THREADS [FACTORY [NB|all
//! [PARAM=V1,V2,…]]]`
//!
//! `FACTORY` is an `index_binary_factory` string (`BFlat` by default), `NB` how many base
//! rows to index (all by default), `PARAM` a run-time parameter (`nprobe`, `efSearch`,
//! `nflip`) and the values to search with. Each line has the build (train + add) time,
//! the best QPS of three passes over the queries, k = 10, and `r1`: how often the first
//! result is at the exact nearest distance (ties make "the" nearest id ambiguous for
//! Hamming distances, so recall is counted by distance).

use fathom_index::binary::{IndexBinary, IndexBinaryFlat, index_binary_factory};
use fathom_io::{NpyArray, read_npy};

fn bytes(path: std::path::PathBuf) -> (usize, Vec<u8>) {
    match read_npy(path).expect("an npy file") {
        NpyArray::U8(d) => (d.d, d.data),
        _ => panic!("expected uint8 rows"),
    }
}

/// The best QPS of three passes, and the last pass's results.
fn timed(index: &dyn IndexBinary, xq: &[u8], nq: usize) -> (f64, fathom_core::SearchResult) {
    let mut best = 0.0f64;
    let mut res = None;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        res = Some(index.search(xq, 10).expect("a search"));
        best = best.max(nq as f64 / t.elapsed().as_secs_f64());
    }
    (best, res.expect("three passes"))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("a directory"));
    let threads: usize = args.next().map_or(2, |t| t.parse().expect("threads"));
    let factory = args.next().unwrap_or_else(|| "BFlat".into());
    let nb: Option<usize> = args
        .next()
        .filter(|n| n != "all")
        .map(|n| n.parse().expect("a number of rows or all"));
    let sweep = args.next();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("one global pool");
    let (cs, mut xb) = bytes(dir.join("base.npy"));
    let (_, xq) = bytes(dir.join("query.npy"));
    if let Some(nb) = nb {
        xb.truncate(nb * cs);
    }
    let nq = xq.len() / cs;

    let mut exact = IndexBinaryFlat::new(cs * 8).expect("a multiple of 8 bits");
    exact.add(&xb).expect("whole rows");
    let truth = exact.search(&xq, 1).expect("a search").distances;

    let t = std::time::Instant::now();
    let mut index = index_binary_factory(cs * 8, &factory).expect("a binary factory string");
    index.train(&xb).expect("training");
    index.add(&xb).expect("whole rows");
    let build = t.elapsed().as_secs_f64();

    let (name, values): (String, Vec<f64>) = match &sweep {
        Some(s) => {
            let (name, vs) = s.split_once('=').expect("PARAM=V1,V2,…");
            let vs = vs
                .split(',')
                .map(|v| v.parse().expect("a number"))
                .collect();
            (name.to_string(), vs)
        }
        None => (String::new(), vec![f64::NAN]),
    };
    for v in values {
        if !name.is_empty() {
            index.set_param(&name, v).expect("a known parameter");
        }
        let (qps, res) = timed(&*index, &xq, nq);
        let hits = (0..nq)
            .filter(|&q| res.distances[q * 10] == truth[q])
            .count();
        let param = if name.is_empty() {
            "null".to_string()
        } else {
            format!("{{\"{name}\": {v}}}")
        };
        println!(
            "{{\"tool\": \"fathom\", \"index\": \"{factory}\", \"nb\": {}, \"param\": {param}, \
             \"build_s\": {build:.3}, \"qps\": {qps:.1}, \"r1\": {:.4}}}",
            xb.len() / cs,
            hits as f64 / nq as f64
        );
    }
}
