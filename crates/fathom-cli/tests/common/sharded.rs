//! Sharded indexes for the CLI's tests: a small dataset, `fathom shard build`, the
//! single-index reference built from the same training, and the router's answers compared
//! with it.

use std::path::Path;

use fathom_core::SearchResult;
use fathom_dist::{Objects, manifest};
use fathom_index::Index;
use serde_json::Value;

use super::{fathom, http, run};

pub const D: usize = 32;
pub const NB: usize = 20_000;
pub const NQ: usize = 100;
pub const K: usize = 10;

pub fn gen_data(dir: &Path) {
    gen_data_n(dir, NB);
}

/// `nb` base vectors of dimension [`D`], [`NQ`] queries.
pub fn gen_data_n(dir: &Path, nb: usize) {
    let (ok, _, err) = run(fathom().arg("gen").arg(dir).args([
        "--nb",
        &nb.to_string(),
        "--d",
        &D.to_string(),
        "--nq",
        &NQ.to_string(),
        "--nt",
        "5000",
        "--k",
        "10",
    ]));
    assert!(ok, "{err}");
}

pub fn build(
    data: &Path,
    store: &str,
    name: &str,
    index: &str,
    shards: u32,
    extra: &[&str],
) -> String {
    let (ok, out, err) = run(fathom()
        .args(["shard", "build"])
        .arg(data)
        .args([
            "--index",
            index,
            "--shards",
            &shards.to_string(),
            "--store",
            store,
            "--name",
            name,
        ])
        .args(extra));
    assert!(ok, "shard build: {err}");
    out
}

pub fn queries(data: &Path) -> Vec<f32> {
    fathom_io::read_fvecs(data.join("query.fvecs"))
        .unwrap()
        .data
}

/// The single index: the same trained file with every base vector added.
pub fn single_index(store: &str, name: &str, data: &Path) -> Box<dyn Index> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = Objects::open(store).unwrap();
    let m = rt.block_on(manifest::load(&objects, name, None)).unwrap();
    let bytes = rt.block_on(objects.get_verified(&m.trained)).unwrap();
    let mut index = fathom_io::faiss::read_index_bytes(&bytes).unwrap();
    let base = fathom_io::read_fvecs(data.join("base.fvecs")).unwrap();
    let ids: Vec<i64> = (0..base.n() as i64).collect();
    index.add_with_ids(&base.data, &ids).unwrap();
    index
}

pub fn routed(addr: &str, body: Value) -> (u16, Value) {
    http(addr, "POST", "/collections/vecs/search", &body.to_string()).unwrap()
}

/// Router results as (ids, scores) per query.
pub fn hits(v: &Value) -> Vec<(Vec<i64>, Vec<f32>)> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let row = row.as_array().unwrap();
            (
                row.iter().map(|h| h["id"].as_i64().unwrap()).collect(),
                row.iter()
                    .map(|h| h["score"].as_f64().unwrap() as f32)
                    .collect(),
            )
        })
        .collect()
}

/// How many queries' top-k ids equal the reference's; differences must be distance ties.
pub fn agreeing(got: &[(Vec<i64>, Vec<f32>)], want: &SearchResult) -> usize {
    let mut same = 0;
    for (q, (ids, scores)) in got.iter().enumerate() {
        let wid: Vec<i64> = want.labels[q * K..(q + 1) * K]
            .iter()
            .copied()
            .filter(|&l| l >= 0)
            .collect();
        let wd = &want.distances[q * K..q * K + wid.len()];
        if *ids == wid {
            same += 1;
            continue;
        }
        assert_eq!(ids.len(), wid.len(), "query {q}");
        for (a, b) in scores.iter().zip(wd) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "query {q}: {ids:?} {scores:?} vs {wid:?} {wd:?}"
            );
        }
    }
    same
}

pub fn store_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}
