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
        /// Vector dimension (1 to 65536).
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
    /// Mark vectors deleted; prints how many were live. An id out of range deletes
    /// nothing (the error names it); an id given twice counts once.
    Delete {
        /// The store file.
        path: PathBuf,
        /// Ids to delete.
        #[arg(required = true)]
        ids: Vec<u64>,
    },
    /// Rewrite the store without its deleted vectors (ids of later vectors move down);
    /// writes the old → new id map to STORE.mapping.tsv beside the store.
    Compact {
        /// The store file.
        path: PathBuf,
        /// Also print every (old, new) pair that changed.
        #[arg(long)]
        mapping: bool,
        /// Where to write the id map (default: the store's path with .mapping.tsv
        /// appended). Tab-separated "old<TAB>new" lines, one per vector kept; ids not
        /// listed were deleted.
        #[arg(long)]
        mapping_file: Option<PathBuf>,
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
        /// Keep only hits scoring at least this (cosine, ip; not with l2).
        #[arg(long, conflicts_with = "max_distance")]
        min_score: Option<f32>,
        /// Keep only hits at most this squared L2 distance away (l2 only).
        #[arg(long)]
        max_distance: Option<f32>,
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
        /// Timed repetitions of each measurement (at least 1).
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Queries in the batch measurement (at least 1).
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
}

fn read_rows(file: &PathBuf) -> Result<(Vec<f32>, usize)> {
    let ds = fathom_io::read_vectors(file)?;
    Ok((ds.data, ds.d))
}

/// The error for a file of `d`-dimensional vectors used with a store of dimension `dim`.
fn dimension_error(file: &std::path::Path, what: &str, d: usize, dim: usize) -> Error {
    Error::DimensionMismatch {
        what: format!("each of the {what} in {}", file.display()),
        got: d,
        expected: format!("the store's dimension {dim}"),
    }
}

/// The search threshold of `--min-score` / `--max-distance`, checked against the metric:
/// a minimum score means something for similarities only, a maximum distance for L2 only.
fn threshold(
    sim: Similarity,
    min_score: Option<f32>,
    max_distance: Option<f32>,
) -> Result<Option<f32>> {
    match (sim, min_score, max_distance) {
        (Similarity::L2, Some(_), _) => Err(Error::invalid(
            "--min-score is a lowest similarity (cosine, ip); with --metric l2 use \
             --max-distance (the largest squared L2 distance to keep)",
        )),
        (Similarity::Cosine | Similarity::InnerProduct, _, Some(_)) => Err(Error::invalid(
            "--max-distance is a largest squared L2 distance (--metric l2); with cosine or ip \
             use --min-score (the lowest similarity to keep)",
        )),
        (_, Some(t), _) | (_, _, Some(t)) if !t.is_finite() => Err(Error::invalid(format!(
            "the threshold must be a finite number, got {t}"
        ))),
        (_, min, max) => Ok(min.or(max)),
    }
}

/// Rows added per `add_vectors` call: the input is memory-mapped and copied in blocks, so a
/// file larger than RAM can be added.
const ADD_BLOCK_BYTES: usize = 256 << 20;

/// Appends the vectors of a .npy or .fvecs file block by block; returns (first id, count).
fn add_streaming(store: &VectorStore, file: &PathBuf) -> Result<(u64, u64)> {
    let dim = store.dim();
    let check_dim = |d: usize| {
        if d != dim {
            return Err(dimension_error(file, "vectors", d, dim));
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
            outln!("created {} (dim {dim})", path.display());
        }
        StoreCommand::Add { path, file } => {
            let store = VectorStore::open(&path)?;
            let (first, n) = add_streaming(&store, &file)?;
            match n {
                0 => outln!("added 0 vectors"),
                1 => outln!("added 1 vector: id {first}"),
                n => outln!("added {n} vectors: ids {first}..={}", first + n - 1),
            }
        }
        StoreCommand::Delete { path, ids } => delete(&path, ids)?,
        StoreCommand::Compact {
            path,
            mapping,
            mapping_file,
        } => compact(&path, mapping, mapping_file)?,
        StoreCommand::Stat { path, json } => {
            let s = open_ro(&path)?.stat();
            if json {
                let v = serde_json::json!({
                    "dim": s.dim, "total": s.total, "live": s.live, "deleted": s.deleted,
                    "file_bytes": s.file_bytes, "utilisation": s.utilisation,
                    "reclaimable_bytes": s.reclaimable_bytes, "deleted_ids": s.deleted_ids,
                });
                outln!("{v}");
            } else {
                outln!(
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
            max_distance,
            metric,
            json,
        } => {
            let sim = Similarity::parse(&metric)?;
            let threshold = threshold(sim, min_score, max_distance)?;
            let store = open_ro(&path)?;
            let (q, d) = read_rows(&queries)?;
            if d != store.dim() {
                return Err(dimension_error(&queries, "queries", d, store.dim()));
            }
            let opts = SearchOptions {
                threshold,
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
                outln!("{}", serde_json::Value::from(v));
            } else {
                for (i, hits) in res.iter().enumerate() {
                    let line: Vec<String> = hits
                        .iter()
                        .map(|h| format!("{}:{:.4}", h.id, h.score))
                        .collect();
                    outln!("query {i}: {}", line.join(" "));
                }
            }
        }
        StoreCommand::Bench { path, reps, batch } => bench(&path, reps, batch)?,
    }
    Ok(())
}

/// `store delete`: each distinct id once; says how many were live, already deleted or
/// repeated.
fn delete(path: &PathBuf, mut ids: Vec<u64>) -> Result<()> {
    let given = ids.len();
    ids.sort_unstable();
    ids.dedup();
    let store = VectorStore::open(path)?;
    let n = store.mark_deleted(&ids)? as u64;
    let distinct = ids.len() as u64;
    let mut notes = Vec::new();
    if distinct > n {
        notes.push(format!(
            "{} already deleted",
            crate::count(distinct - n, "was", "were")
        ));
    }
    if given as u64 > distinct {
        notes.push(format!(
            "{} repeated",
            crate::count(given as u64 - distinct, "id", "ids")
        ));
    }
    outln!(
        "deleted {n} of {}{}",
        crate::count(distinct, "id", "ids"),
        if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join(", "))
        }
    );
    Ok(())
}

/// The default place of `store compact`'s id map: beside the store, `.mapping.tsv` added.
fn default_mapping_file(store: &std::path::Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".mapping.tsv");
    PathBuf::from(name)
}

/// Writes `old<TAB>new` lines to `path` through a temporary file renamed into place, so
/// the file is the previous map or the new one, never half of one.
fn write_mapping(path: &std::path::Path, map: &[(u64, u64)]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        writeln!(w, "old\tnew")?;
        for (old, new) in map {
            writeln!(w, "{old}\t{new}")?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `store compact`: rewrites the store and records how ids moved.
fn compact(path: &PathBuf, print: bool, mapping_file: Option<PathBuf>) -> Result<()> {
    let store = VectorStore::open(path)?;
    let before = store.stat();
    if before.deleted == 0 {
        outln!(
            "nothing to compact: no deleted vectors, ids unchanged ({} bytes)",
            before.file_bytes
        );
        return Ok(());
    }
    let map = store.compact()?;
    let after = store.stat();
    let file = mapping_file.unwrap_or_else(|| default_mapping_file(path));
    let written = write_mapping(&file, &map);
    outln!(
        "compacted: {} kept, {} removed, file {} → {} bytes",
        crate::count(map.len() as u64, "vector", "vectors"),
        before.deleted,
        before.file_bytes,
        after.file_bytes
    );
    if print {
        for (old, new) in map.iter().filter(|(o, n)| o != n) {
            outln!("{old} -> {new}");
        }
    }
    match written {
        Ok(()) => {
            outln!("id map (old → new) written to {}", file.display());
            Ok(())
        }
        Err(e) => Err(Error::Io {
            path: Some(file),
            source: std::io::Error::new(
                e.kind(),
                format!(
                    "the store was compacted, but writing its id map failed: {e}; \
                     rerun with --mapping to see how ids moved"
                ),
            ),
        }),
    }
}

fn bench(path: &PathBuf, reps: usize, batch: usize) -> Result<()> {
    if reps == 0 || batch == 0 {
        return Err(Error::invalid(format!(
            "--reps and --batch must be at least 1, got --reps {reps} --batch {batch}"
        )));
    }
    let store = open_ro(path)?;
    let d = store.dim();
    let n = store.total();
    if n == 0 {
        return Err(Error::invalid("the store is empty"));
    }
    // Queries: stored vectors, perturbed so they are not exact hits.
    let queries: Vec<f32> = (0..batch as u64)
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
    for _ in 0..reps {
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
    outln!(
        "{n} × {d} ({:.2} GB), {}, median of {}:",
        bytes / 1e9,
        crate::count(rayon::current_num_threads() as u64, "thread", "threads"),
        crate::count(reps as u64, "interleaved run", "interleaved runs"),
    );
    outln!(
        "  sum of every float: {:.3} s ({:.1} GB/s)",
        p,
        bytes / p / 1e9
    );
    outln!("  one cosine query:   {:.3} s ({:.2}× the pass)", o, o / p);
    outln!(
        "  {} at once: {:.3} s ({:.4} s per query, {:.2}× the pass)",
        crate::count(batch as u64, "query", "queries"),
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
        outln!(
            "  resident: anonymous {} (outside the page cache), file-backed {}",
            field("RssAnon:"),
            field("RssFile:")
        );
    }
    if sink == f64::MIN {
        outln!("{sink}");
    }
    Ok(())
}
