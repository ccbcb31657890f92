//! The command line of `cargo xtask`, parsed by clap: an unknown or malformed flag is an
//! error (with the subcommand's usage), never silently ignored.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Project automation: benchmarks side by side with faiss-cpu, load and failover tests,
/// code generation.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The dataset a faiss-comparing subcommand uses.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// Dataset directory (TEXMEX layout; generated with gen_data.py when missing).
    #[arg(long, default_value_os_t = crate::root().join("bench-data/gen1m"))]
    pub data: PathBuf,
    /// Generate a smaller dataset (200k) when it is missing.
    #[arg(long)]
    pub quick: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// fathom against faiss-cpu, interleaved rounds: Flat, k-means, transforms,
    /// quantizers, IVF, HNSW, GEMM.
    Bench(BenchArgs),
    /// HNSW recall/QPS curves against faiss-cpu and hnswlib.
    Hnsw(HnswArgs),
    /// Image embedding throughput and agreement against the PyTorch reference.
    Images(ImagesArgs),
    /// Index file I/O against faiss-cpu.
    Io(IoArgs),
    /// The guide's figures (parameters reaching a target recall).
    Guide(GuideArgs),
    /// `fathom serve` under load over loopback (`--compare`: batching on/off and
    /// shedding).
    ServeLoad(ServeLoadArgs),
    /// Router + searcher processes against one process.
    Scale(ScaleArgs),
    /// The failover acceptance on etcd and an S3-protocol server (JSON summary).
    Cluster(ClusterArgs),
    /// faer's raw GEMM on Flat search's tile shapes.
    Gemm(GemmArgs),
    /// The Python stubs from the bindings' syntax tree.
    Codegen(CodegenArgs),
    /// The GPU tests and benchmark (where a GPU is present).
    Gpu(GpuArgs),
    /// The Python module against faiss-cpu and the Rust CLI.
    PyBench(PyBenchArgs),
    /// Binary indexes (BFlat, BIVF, BHNSW) against faiss-cpu on binarised vectors.
    BinaryBench(BinaryBenchArgs),
    /// QPS against thread count, fathom and faiss-cpu on the same index files.
    Scaling(ScalingArgs),
}

#[derive(Args)]
pub struct ScalingArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Thread counts, comma-separated.
    #[arg(long, default_value = "1,2")]
    pub threads: String,
    /// Queries per search call, comma-separated (0: the whole query set in one call).
    #[arg(long, default_value = "1,16,0")]
    pub batches: String,
    /// Queries searched at the small batch sizes (all of them at batch 0).
    #[arg(long, default_value_t = 1000)]
    pub small_batch_queries: usize,
    /// Interleaved rounds.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// An index and its sweep, `KEY[:PARAM=V1,V2]` (repeatable; default: Flat, IVF4096
    /// Flat/SQ8/PQ32/PQ32x4fs at nprobe 1/16/64, HNSW32 at efSearch 16/64).
    #[arg(long)]
    pub index: Vec<String>,
    /// Centroids of the k-means row (0: none).
    #[arg(long, default_value_t = 1024)]
    pub kmeans: usize,
}

#[derive(Args)]
pub struct BinaryBenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Worker threads of both tools.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Interleaved rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Worker threads of both tools.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Interleaved rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Skip the Flat rows.
    #[arg(long)]
    pub no_flat: bool,
    /// Skip k-means.
    #[arg(long)]
    pub no_kmeans: bool,
    /// Skip the transforms (PCA, OPQ).
    #[arg(long)]
    pub no_transforms: bool,
    /// Skip the flat quantizer indexes.
    #[arg(long)]
    pub no_quant: bool,
    /// Run only this flat quantizer index (a factory string) in the quantizer rows.
    #[arg(long)]
    pub quant: Option<String>,
    /// Skip the IVF rows.
    #[arg(long)]
    pub no_ivf: bool,
    /// Only this IVF factory string.
    #[arg(long)]
    pub ivf: Option<String>,
    /// Skip HNSW.
    #[arg(long)]
    pub no_hnsw: bool,
    /// Skip the raw GEMM line.
    #[arg(long)]
    pub no_gemm: bool,
}

/// The efSearch values `hnsw` sweeps by default.
pub const HNSW_EFS: &str = "16,24,32,48,64,96,128,192,256";

#[derive(Args)]
pub struct HnswArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Worker threads.
    #[arg(long, default_value = "2")]
    pub threads: String,
    /// Rounds.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// efSearch values.
    #[arg(long, default_value = HNSW_EFS)]
    pub ef: String,
    /// Where to draw the curves.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

#[derive(Args)]
pub struct IoArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// One factory string (default: the built-in list).
    #[arg(long)]
    pub index: Option<String>,
}

#[derive(Args)]
pub struct GuideArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The recall to reach.
    #[arg(long, default_value = "0.9")]
    pub target: String,
    /// The recall measure.
    #[arg(long, default_value = "10-recall@10")]
    pub criterion: String,
    /// One factory string (default: candidates for the dataset's size).
    #[arg(long)]
    pub index: Option<String>,
}

#[derive(Args)]
pub struct ServeLoadArgs {
    /// Batching on and off, interleaved, and a flood past a small queue.
    #[arg(long)]
    pub compare: bool,
    /// Vectors added through the API.
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Dimension (default 384; 128 with --compare).
    #[arg(long)]
    pub d: Option<usize>,
    /// Concurrent clients (default 32; 64 with --compare).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Seconds of load (default 60; 10 a run with --compare).
    #[arg(long)]
    pub secs: Option<usize>,
    /// Items the writer adds a second (not with --compare).
    #[arg(long, default_value_t = 10)]
    pub writes: usize,
    /// The collection's index (default HNSW32; `Flat;IVF1024,Flat` with --compare).
    #[arg(long)]
    pub index: Option<String>,
    /// efSearch of the searches (not with --compare).
    #[arg(long, default_value_t = 64)]
    pub ef: usize,
    /// Interleaved rounds (--compare).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
}

#[derive(Args)]
pub struct ScaleArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub nb: usize,
    #[arg(long, default_value_t = 128)]
    pub d: usize,
    #[arg(long, default_value_t = 1000)]
    pub nq: usize,
    /// Factory strings, `;`-separated.
    #[arg(long, default_value = "IVF1024,Flat;IVF1024,PQ32")]
    pub index: String,
    #[arg(long, default_value_t = 4)]
    pub shards: usize,
    /// Searcher processes (default: one per shard).
    #[arg(long)]
    pub procs: Option<usize>,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    #[arg(long, default_value_t = 5)]
    pub secs: usize,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Also build the shards with several processes and check them.
    #[arg(long)]
    pub build_check: bool,
}

#[derive(Args)]
pub struct ClusterArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub nb: usize,
    #[arg(long, default_value_t = 128)]
    pub d: usize,
    #[arg(long, default_value_t = 10_000)]
    pub nq: usize,
    #[arg(long, default_value = "IVF4096,Flat")]
    pub index: String,
    #[arg(long, default_value_t = 4)]
    pub shards: usize,
    #[arg(long, default_value_t = 4)]
    pub searchers: usize,
    #[arg(long, default_value_t = 2)]
    pub replication: usize,
    #[arg(long, default_value_t = 60)]
    pub secs: usize,
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    #[arg(long, default_value_t = 250)]
    pub deadline_ms: u64,
    #[arg(long, default_value_t = 50)]
    pub hedge_ms: usize,
    #[arg(long, default_value_t = 16)]
    pub nprobe: usize,
    /// A file:// store instead of the S3-protocol server.
    #[arg(long)]
    pub file: bool,
}

#[derive(Args)]
pub struct GemmArgs {
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Database vectors streamed.
    #[arg(long, default_value_t = 1_000_000)]
    pub nb: usize,
}

#[derive(Args)]
pub struct CodegenArgs {
    /// Compare the stubs instead of writing them.
    #[arg(long)]
    pub check: bool,
}

#[derive(Args)]
pub struct GpuArgs {
    /// Dataset directory (generated when missing).
    #[arg(long, default_value_os_t = crate::root().join("bench-data/gpu1m"))]
    pub data: PathBuf,
    /// Only build the kit (binaries and scripts) into this git-ignored folder of the
    /// repository, for a GPU machine without a Rust toolchain: run `bash DIR/run.sh` there.
    #[arg(long, num_args = 0..=1, default_missing_value = ".gpu-kit")]
    pub carry: Option<PathBuf>,
}

#[derive(Args)]
pub struct PyBenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[arg(long, default_value = "2")]
    pub threads: String,
    /// Specs, `;`-separated (`KEY[:param=value]`; default: the built-in list).
    #[arg(long)]
    pub index: Option<String>,
}

#[derive(Args)]
pub struct ImagesArgs {
    /// Rayon threads for fathom, torch threads for the reference.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Interleaved rounds (fathom, PyTorch, fathom, PyTorch, …).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Copies of each of the five sample photographs embedded per round.
    #[arg(long, default_value_t = 20)]
    pub copies: usize,
    /// Images per call (fathom's `embed_images`, PyTorch's forward pass).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
}
