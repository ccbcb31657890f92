//! `fathom`: the command-line tool, the top of the layering. It only parses arguments and
//! prints; the work is done by the library crates.

/// `println!` that survives the reader going away: when standard output is a closed pipe
/// (`fathom store search … | head -1`) the program ends quietly with status 0, as a
/// program killed by SIGPIPE would have stopped; any other write error ends it with a
/// message and status 1. (Rust ignores SIGPIPE, so `println!` would panic instead.)
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

mod bench;
mod demo;
mod index_images;
mod index_text;
mod info;
mod progress;
mod serve;
mod shard;
mod store;
mod tune;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fathom_io::synthetic::SyntheticSpec;

#[derive(Parser)]
#[command(
    name = "fathom",
    version,
    about = "Similarity search and clustering of dense vectors"
)]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an index on generated data, search it, print recall and speed (under a minute).
    Demo,
    /// Write a deterministic synthetic dataset with exact ground truth (TEXMEX layout).
    Gen {
        /// Output directory (created if missing).
        dir: PathBuf,
        /// Database vectors.
        #[arg(long, default_value_t = 1_000_000)]
        nb: usize,
        /// Dimension.
        #[arg(long, default_value_t = 128)]
        d: usize,
        /// Queries.
        #[arg(long, default_value_t = 1000)]
        nq: usize,
        /// Training vectors (default: 100000, or --nb when that is smaller).
        #[arg(long)]
        nt: Option<usize>,
        /// Neighbours per query in the ground truth (0: no ground truth, for bases too
        /// large to scan once per query).
        #[arg(long, default_value_t = 100)]
        k: usize,
        /// Random seed.
        #[arg(long, default_value_t = 1234)]
        seed: u64,
    },
    /// Train, add and search a TEXMEX-layout dataset; print times, QPS and recall.
    Bench(bench::BenchArgs),
    /// Build an index on a TEXMEX-layout dataset, explore its run-time parameters against
    /// the ground truth, print the Pareto front and the setting meeting the goal.
    Tune(tune::TuneArgs),
    /// Describe a Faiss-format index file: its records, shape, parameters and size.
    Info {
        /// The index file (written by faiss or by fathom).
        file: PathBuf,
    },
    /// Serve collections over HTTP (JSON API, metrics, snapshots); with no arguments, a
    /// built-in demo collection in a temporary directory.
    Serve(serve::ServeArgs),
    /// Embed a text file's sentences (or a .jsonl file's "text" fields) with a
    /// sentence-transformers model into a collection of a serve data directory.
    IndexText(index_text::IndexTextArgs),
    /// Embed a folder of images (with metadata from a sidecar CSV/JSONL) with an image
    /// model into a collection of a serve data directory.
    IndexImages(index_images::IndexImagesArgs),
    /// A persistent vector store: create, add, delete, compact, stat, search, bench.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// A sharded index in an object store (file:// or s3://): build (train once, shards
    /// as Faiss files), publish its manifest.
    #[command(subcommand)]
    Shard(shard::ShardCommand),
    /// Serve some shards of a sharded index over gRPC, for `fathom serve --router`.
    Searcher(shard::SearcherArgs),
}

/// Writes one line to standard output; see [`outln!`].
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}") {
        stdout_failed(&e);
    }
}

/// Ends the program after a failed write to standard output: quietly with status 0 when
/// the reader closed the pipe, with an error otherwise.
fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: writing to standard output failed: {e}");
    std::process::exit(1);
}

/// Catches what `outln!` does not: a `println!` elsewhere (a library, a thread) panics on
/// a closed pipe with "failed printing to stdout: Broken pipe"; end quietly then too.
fn quiet_broken_pipe_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload_as_str().unwrap_or("");
        if msg.starts_with("failed printing to stdout")
            && (msg.contains("Broken pipe") || msg.contains("(os error 32)"))
        {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// `n` and the noun in the singular or the plural: "1 thread", "2 threads".
pub(crate) fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Makes the calling thread `by` nicer (Linux keeps a nice value per thread); elsewhere,
/// and for 0, nothing.
fn lower_thread_priority(by: i32) {
    #[cfg(target_os = "linux")]
    if by > 0 {
        // SAFETY: getpriority/setpriority read and set the calling thread's nice value
        // (who = 0 is the caller's thread id on Linux); no memory is passed.
        unsafe {
            let now = libc::getpriority(libc::PRIO_PROCESS, 0);
            libc::setpriority(libc::PRIO_PROCESS, 0, (now + by).min(19));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = by;
}

fn main() -> ExitCode {
    quiet_broken_pipe_panics();
    let cli = Cli::parse();
    if cli.threads == Some(0) {
        eprintln!("error: --threads must be at least 1");
        return ExitCode::from(2);
    }
    let nice = match &cli.command {
        Command::Searcher(a) => a.search_nice(),
        _ => 0,
    };
    if cli.threads.is_some() || nice > 0 {
        let t = cli.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .start_handler(move |_| lower_thread_priority(nice))
            .build_global()
        {
            eprintln!(
                "error: cannot start {}: {e}",
                count(t as u64, "thread", "threads")
            );
            return ExitCode::FAILURE;
        }
    }
    let outcome = match cli.command {
        Command::Demo => demo::run(),
        Command::Gen {
            dir,
            nb,
            d,
            nq,
            nt,
            k,
            seed,
        } => gen_dataset(
            &dir,
            SyntheticSpec {
                d,
                nb,
                nq,
                nt: nt.unwrap_or(DEFAULT_NT.min(nb)),
                k,
                seed,
            },
        ),
        Command::Bench(args) => bench::run(&args),
        Command::Tune(args) => tune::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::IndexText(args) => index_text::run(&args),
        Command::IndexImages(args) => index_images::run(&args),
        Command::Store(cmd) => store::run(cmd),
        Command::Shard(cmd) => shard::run(&cmd),
        Command::Searcher(args) => shard::searcher(&args),
        Command::Info { file } => info::run(&file),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Training vectors `gen` writes unless told otherwise (fewer when the base is smaller).
const DEFAULT_NT: usize = 100_000;

fn gen_dataset(dir: &std::path::Path, spec: SyntheticSpec) -> fathom_core::Result<()> {
    // An empty vecs file has no dimension header, so `bench` could not read it back.
    if spec.d == 0 || spec.nb == 0 || spec.nq == 0 || spec.nt == 0 {
        return Err(fathom_core::Error::invalid(
            "--d, --nb, --nq and --nt must be at least 1",
        ));
    }
    let bar = progress::spinner(format!(
        "generating {} × {} base, {} queries, {} training vectors, ground truth k = {}",
        spec.nb, spec.d, spec.nq, spec.nt, spec.k
    ));
    fathom_io::synthetic::write_dataset(dir, &spec)?;
    bar.finish_and_clear();
    outln!(
        "wrote {}: nb={} nq={} nt={} d={} (base.fvecs, query.fvecs, learn.fvecs{})",
        dir.display(),
        spec.nb,
        spec.nq,
        spec.nt,
        spec.d,
        if spec.k > 0 {
            ", groundtruth.ivecs"
        } else {
            "; no ground truth: --k 0"
        }
    );
    Ok(())
}
