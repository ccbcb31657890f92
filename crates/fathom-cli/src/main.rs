//! `fathom`: the command-line tool, the top of the layering. It only parses arguments and
//! prints; the work is done by the library crates.

mod bench;
mod demo;
mod index_text;
mod info;
mod progress;
mod serve;
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
        /// Training vectors.
        #[arg(long, default_value_t = 100_000)]
        nt: usize,
        /// Neighbours per query in the ground truth.
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
    /// A persistent vector store: create, add, delete, compact, stat, search, bench.
    #[command(subcommand)]
    Store(store::StoreCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(t) = cli.threads {
        if t == 0 {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::from(2);
        }
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
        {
            eprintln!("error: cannot start {t} threads: {e}");
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
                nt,
                k,
                seed,
            },
        ),
        Command::Bench(args) => bench::run(&args),
        Command::Tune(args) => tune::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::IndexText(args) => index_text::run(&args),
        Command::Store(cmd) => store::run(cmd),
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

fn gen_dataset(dir: &std::path::Path, spec: SyntheticSpec) -> fathom_core::Result<()> {
    if spec.d == 0 || spec.nb == 0 || spec.nq == 0 || spec.k == 0 {
        return Err(fathom_core::Error::invalid(
            "--d, --nb, --nq and --k must be at least 1",
        ));
    }
    let bar = progress::spinner(format!(
        "generating {} × {} base, {} queries, {} training vectors, ground truth k = {}",
        spec.nb, spec.d, spec.nq, spec.nt, spec.k
    ));
    fathom_io::synthetic::write_dataset(dir, &spec)?;
    bar.finish_and_clear();
    println!(
        "wrote {}: nb={} nq={} nt={} d={} (base.fvecs, query.fvecs, learn.fvecs, groundtruth.ivecs)",
        dir.display(),
        spec.nb,
        spec.nq,
        spec.nt,
        spec.d
    );
    Ok(())
}
