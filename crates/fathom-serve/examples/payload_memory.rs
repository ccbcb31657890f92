//! Memory and filter time of a collection's metadata column store (`filter::Payloads`):
//! `cargo run --release -p fathom-serve --example payload_memory [N]` (default 1 000 000
//! items of five fields: a category of 20, an integer price, two tags of 10, a date, a
//! nested number). Prints resident memory before and after, bytes per item, and the time
//! of a few filters.

use std::time::Instant;

use fathom_serve::filter::{Payloads, parse};
use serde_json::json;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let before = rss_bytes();
    let mut p = Payloads::default();
    let t0 = Instant::now();
    let mut text_bytes = 0usize;
    for i in 0..n {
        let meta = json!({
            "category": format!("cat-{}", i % 20),
            "price": (i * 7919) % 1000,
            "tags": [format!("t{}", i % 10), format!("t{}", (i / 10) % 10)],
            "when": format!("2024-{:02}-{:02}T12:00:00Z", 1 + i % 12, 1 + i % 28),
            "a": { "b": i % 100 },
        });
        text_bytes += meta.to_string().len();
        p.insert(i as i64, &meta);
    }
    let built = t0.elapsed();
    let after = rss_bytes();
    println!(
        "{n} items: built in {:.2} s; resident {:.0} MiB more ({:.0} bytes an item; the \
         metadata as JSON text is {:.0} bytes an item)",
        built.as_secs_f64(),
        (after - before) as f64 / (1 << 20) as f64,
        (after - before) as f64 / n as f64,
        text_bytes as f64 / n as f64
    );
    for f in [
        json!({"category": "cat-3"}),
        json!({"price": {"$gte": 100, "$lt": 110}}),
        json!({"$and": [{"tags": "t1"}, {"a.b": {"$in": [1, 2, 3]}}]}),
        json!({"when": {"$gte": "2024-03-01", "$lt": "2024-04-01"}}),
        json!({"$not": {"category": "cat-3"}}),
    ] {
        let filter = parse(&f).unwrap();
        let t = Instant::now();
        let hits = p.evaluate(&filter).count();
        println!(
            "{f}: {hits} items in {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
}
