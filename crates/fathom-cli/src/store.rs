//! `fathom store …`: the vector store from the command line.

use std::path::PathBuf;
use std::time::Instant;

use clap::Subcommand;
use fathom_core::{Error, Result};
use fathom_store::{SearchOptions, Similarity, VectorStore};

/// The store subcommands.
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Create an empty store of D-dimensional vectors.
    Create {
        /// The store file (must not exist).
        path: PathBuf,
        /// Vector dimension.
        #[arg(long)]
        dim: usize,
    },
    /// Append the vectors of a .npy (float32, 2-D) or .fvecs file; prints the id range.
    Add {
        /// The store file.
        path: PathBuf,
        /// The vectors.
        file: PathBuf,
    },
    /// Mark vectors deleted; prints how many were live.
    Delete {
        /// The store file.
        path: PathBuf,
        /// Ids to delete.
        #[arg(required = true)]
        ids: Vec<u64>,
    },
    /// Rewrite the store without its deleted vectors; prints how ids moved.
    Compact {
        /// The store file.
        path: PathBuf,
        /// Print every (old, new) id pair, not only the count.
        #[arg(long)]
        mapping: bool,
    },
    /// Counts (total, live, deleted), file size, utilisation, reclaimable bytes.
    Stat {
        /// The store file.
        path: PathBuf,
        /// JSON instead of text (includes the deleted ids).
        #[arg(long)]
        json: bool,
    },
    /// The top-k stored vectors for each query of a .npy / .fvecs file.
    Search {
        /// The store file.
        path: PathBuf,
        /// The queries.
        queries: PathBuf,
        /// Results per query.
        #[arg(long, default_value_t = 10)]
        top_k: usize,
        /// Keep only hits scoring at least this (cosine, ip) or at most this distance (l2).
        #[arg(long)]
        min_score: Option<f32>,
        /// cosine, ip or l2.
        #[arg(long, default_value = "cosine")]
        metric: String,
        /// One JSON array per query of {"id", "score"} objects.
        #[arg(long)]
        json: bool,
    },
    /// Time one query and a batch of queries against a plain pass summing every float of
    /// the mapping (the memory-bandwidth yardstick), interleaved.
    Bench {
        /// The store file.
        path: PathBuf,
        /// Timed repetitions of each measurement.
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Queries in the batch measurement.
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
}

fn read_rows(file: &PathBuf) -> Result<(Vec<f32>, usize)> {
    let ds = fathom_io::read_vectors(file)?;
    Ok((ds.data, ds.d))
}

/// Rows added per `add_vectors` call: the input is memory-mapped and copied in blocks, so a
/// file larger than RAM can be added.
const ADD_BLOCK_BYTES: usize = 256 << 20;

/// Appends the vectors of a .npy or .fvecs file block by block; returns (first id, count).
fn add_streaming(store: &VectorStore, file: &PathBuf) -> Result<(u64, u64)> {
    let dim = store.dim();
    let check_dim = |d: usize| {
        if d != dim {
            return Err(Error::DimensionMismatch {
                what: format!("vectors of {}", file.display()),
                got: d,
                expected: format!("the store's dimension {dim}"),
            });
        }
        Ok(())
    };
    let block = (ADD_BLOCK_BYTES / (dim * 4)).max(1);
    let first = store.total();
    let is_npy = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let mut added = 0u64;
    if is_npy {
        let m = fathom_io::NpyMmap::open(file)?;
        let (n, d) = m.shape();
        check_dim(d)?;
        let x: &[f32] = m.as_slice()?;
        for rows in x[..n * d].chunks(block * d) {
            added += store.add_vectors(rows)?.len() as u64;
        }
    } else if file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("fvecs"))
    {
        let m = fathom_io::VecsMmap::<f32>::open(file)?;
        check_dim(m.d())?;
        for start in (0..m.n()).step_by(block) {
            let rows = m
                .rows(start..(start + block).min(m.n()))
                .ok_or_else(|| Error::invalid("rows out of range"))?;
            added += store.add_vectors(&rows.data)?.len() as u64;
        }
    } else {
        let (x, d) = read_rows(file)?;
        check_dim(d)?;
        added = store.add_vectors(&x)?.len() as u64;
    }
    Ok((first, added))
}

fn open_ro(path: &PathBuf) -> Result<VectorStore> {
    VectorStore::open_with(path, fathom_store::StoreOptions::default().read_only(true))
}

/// Runs one store subcommand.
pub fn run(cmd: StoreCommand) -> Result<()> {
    match cmd {
        StoreCommand::Create { path, dim } => {
            VectorStore::create(&path, dim)?;
            println!("created {} (dim {dim})", path.display());
        }
        StoreCommand::Add { path, file } => {
            let store = VectorStore::open(&path)?;
            let (first, n) = add_streaming(&store, &file)?;
            match n {
                0 => println!("added 0 vectors"),
                n => println!("added {n} vectors: ids {first}..={}", first + n - 1),
            }
        }
        StoreCommand::Delete { path, ids } => {
            let store = VectorStore::open(&path)?;
            let n = store.mark_deleted(&ids)?;
            println!(
                "deleted {n} of {} ids (the others were already deleted)",
                ids.len()
            );
        }
        StoreCommand::Compact { path, mapping } => {
            let store = VectorStore::open(&path)?;
            let before = store.stat();
            let map = store.compact()?;
            let after = store.stat();
            println!(
                "compacted: {} vectors kept, {} removed, file {} → {} bytes",
                map.len(),
                before.deleted,
                before.file_bytes,
                after.file_bytes
            );
            if mapping {
                for (old, new) in map.iter().filter(|(o, n)| o != n) {
                    println!("{old} -> {new}");
                }
            }
        }
        StoreCommand::Stat { path, json } => {
            let s = open_ro(&path)?.stat();
            if json {
                let v = serde_json::json!({
                    "dim": s.dim, "total": s.total, "live": s.live, "deleted": s.deleted,
                    "file_bytes": s.file_bytes, "utilisation": s.utilisation,
                    "reclaimable_bytes": s.reclaimable_bytes, "deleted_ids": s.deleted_ids,
                });
                println!("{v}");
            } else {
                println!(
                    "dim {}\ntotal {}\nlive {}\ndeleted {}\nfile_bytes {}\nutilisation {:.3}\nreclaimable_bytes {}",
                    s.dim,
                    s.total,
                    s.live,
                    s.deleted,
                    s.file_bytes,
                    s.utilisation,
                    s.reclaimable_bytes
                );
            }
        }
        StoreCommand::Search {
            path,
            queries,
            top_k,
            min_score,
            metric,
            json,
        } => {
            let store = open_ro(&path)?;
            let (q, _) = read_rows(&queries)?;
            let sim = Similarity::parse(&metric)?;
            let opts = SearchOptions {
                threshold: min_score,
                ..Default::default()
            };
            let res = store.search(&q, top_k, sim, &opts)?;
            if json {
                let v: Vec<Vec<serde_json::Value>> = res
                    .iter()
                    .map(|hits| {
                        hits.iter()
                            .map(|h| serde_json::json!({"id": h.id, "score": h.score}))
                            .collect()
                    })
                    .collect();
                println!("{}", serde_json::Value::from(v));
            } else {
                for (i, hits) in res.iter().enumerate() {
                    let line: Vec<String> = hits
                        .iter()
                        .map(|h| format!("{}:{:.4}", h.id, h.score))
                        .collect();
                    println!("query {i}: {}", line.join(" "));
                }
            }
        }
        StoreCommand::Bench { path, reps, batch } => bench(&path, reps, batch)?,
    }
    Ok(())
}

fn bench(path: &PathBuf, reps: usize, batch: usize) -> Result<()> {
    let store = open_ro(path)?;
    let d = store.dim();
    let n = store.total();
    if n == 0 {
        return Err(Error::invalid("the store is empty"));
    }
    // Queries: stored vectors, perturbed so they are not exact hits.
    let queries: Vec<f32> = (0..batch.max(1) as u64)
        .flat_map(|i| {
            let id = i * 7919 % n;
            let mut v = store.get(id).unwrap_or_else(|| vec![1.0; d]);
            v.iter_mut()
                .enumerate()
                .for_each(|(j, x)| *x += 0.01 * (j % 3) as f32);
            v
        })
        .collect();
    let bytes = n as f64 * d as f64 * 4.0;
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };
    let (mut pass, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new());
    let mut sink = 0.0f64;
    for _ in 0..reps.max(1) {
        pass.push(time(&mut || sink += store.sum_all()));
        one.push(time(&mut || {
            store
                .cosine_search(&queries[..d], 10, None, 0)
                .expect("search");
        }));
        many.push(time(&mut || {
            store
                .search(&queries, 10, Similarity::Cosine, &SearchOptions::default())
                .expect("search");
        }));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (p, o, m) = (med(&mut pass), med(&mut one), med(&mut many));
    println!(
        "{n} × {d} ({:.2} GB), {} threads, median of {reps} interleaved runs:",
        bytes / 1e9,
        rayon::current_num_threads()
    );
    println!(
        "  sum of every float: {:.3} s ({:.1} GB/s)",
        p,
        bytes / p / 1e9
    );
    println!("  one cosine query:   {:.3} s ({:.2}× the pass)", o, o / p);
    println!(
        "  {} queries at once: {:.3} s ({:.4} s per query, {:.2}× the pass)",
        batch,
        m,
        m / batch as f64,
        m / p
    );
    // Memory of the process outside the page cache (Linux): the mapping's pages are
    // RssFile, shared with the cache; RssAnon is what the search itself holds.
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l[name.len()..].trim().to_string())
                .unwrap_or_default()
        };
        println!(
            "  resident: anonymous {} (outside the page cache), file-backed {}",
            field("RssAnon:"),
            field("RssFile:")
        );
    }
    if sink == f64::MIN {
        println!("{sink}");
    }
    Ok(())
}
