//! `fathom serve`: the search service of `fathom-serve` on a port.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use fathom_core::{Error, Result};
use fathom_serve::ServeConfig;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address or host name to bind (`localhost` binds its first address).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Where the database and snapshots live (default: a fresh temporary directory with
    /// the demo collection).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seconds between snapshots (0: only on shutdown and on POST /snapshot).
    #[arg(long, default_value_t = 300)]
    snapshot_secs: u64,
    /// Snapshots kept.
    #[arg(long, default_value_t = 3)]
    keep: usize,
    /// Largest top_k a search may ask for.
    #[arg(long, default_value_t = 1000)]
    max_top_k: usize,
    /// Largest request body in MiB.
    #[arg(long, default_value_t = 64)]
    max_body_mib: usize,
    /// Largest `queries × vectors` of one search request.
    #[arg(long, default_value_t = 1 << 32)]
    max_search_pairs: u64,
    /// Largest metadata of one item, in bytes.
    #[arg(long, default_value_t = 64 << 10)]
    max_metadata_bytes: usize,
    /// Also create the demo collection in --data-dir.
    #[arg(long)]
    demo: bool,
    /// Router mode: serve a sharded index (`fathom shard build`) by fanning searches out
    /// to its searchers (`--store`, `--searchers`) instead of local collections.
    #[arg(long, requires = "store", conflicts_with_all = ["data_dir", "demo", "model"])]
    router: bool,
    /// Router mode: the object store holding the manifest (file:///dir or s3://bucket/prefix).
    #[arg(long)]
    store: Option<String>,
    /// Router mode: the collection (manifest) name.
    #[arg(long, default_value = "default")]
    name: String,
    /// Router mode: the manifest version (default: the newest).
    #[arg(long)]
    version: Option<u64>,
    /// Router mode: each shard's searcher, `s0=host:port,s1=host:port,…` (a shard named
    /// twice has two replicas).
    #[arg(long, conflicts_with_all = ["local", "etcd"])]
    searchers: Option<String>,
    /// Router mode: find the published version and its READY replicas in this etcd
    /// cluster (`host:port,…`) and follow it, instead of fixed --searchers.
    #[arg(long, conflicts_with = "local")]
    etcd: Option<String>,
    /// Router mode: replicas of each shard the cluster should keep (`/health` says
    /// "degraded" below it).
    #[arg(long, default_value_t = 1)]
    replication: usize,
    /// Router mode: send a shard's request to a second replica when the first has not
    /// answered within this many milliseconds (0: never).
    #[arg(long, default_value_t = 50)]
    hedge_ms: u64,
    /// Router mode without searchers: load every shard into this process, cached in this
    /// directory (one process serving the whole sharded index).
    #[arg(long)]
    local: Option<PathBuf>,
    /// The deadline of a search that names none (`deadline_ms`): a search that would wait
    /// past it is refused at once with 503 and Retry-After (default 10000; 1000 in router
    /// mode).
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Gather concurrent single-vector searches of a collection for up to this many
    /// microseconds into one batched search (0: no batching).
    #[arg(long, default_value_t = 500)]
    batch_window_us: u64,
    /// Most queries in one batched search.
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// Most queries admitted and unanswered per collection; more are refused (503).
    #[arg(long, default_value_t = 1024)]
    max_queue: usize,
    /// Under pressure (a search queue half full), run IVF/HNSW searches with half their
    /// nprobe/efSearch, flagged `degraded: true`, instead of queueing longer.
    #[arg(long)]
    degrade: bool,
    /// MiB of recent search answers to keep (0: no result cache).
    #[arg(long, default_value_t = 64)]
    cache_mb: usize,
    /// A file of API keys, one `KEY ROLE` a line (role read, write or admin); requests
    /// then need `Authorization: Bearer KEY` or `x-api-key: KEY`. Reloaded on SIGHUP.
    #[arg(long)]
    api_keys: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Let browsers call the API from this origin (CORS), e.g. https://app.example.
    #[arg(long)]
    cors_origin: Option<String>,
    /// Log lines: `text` or `json` (one line per request: route, collection, status,
    /// latency, queries, k).
    #[arg(long, default_value = "text")]
    log_format: String,
    /// Router mode, IVF indexes: quantize each query once in the router and send the
    /// probed lists to the searchers (Faiss's search_preassigned) instead of every shard
    /// repeating the coarse step.
    #[arg(long)]
    quantize_once: bool,
    /// A sentence-transformers model directory (config.json, model.safetensors,
    /// tokenizer.json — the layout of all-MiniLM-L6-v2): text queries and items.
    #[arg(long)]
    model: Option<PathBuf>,
    /// An image model directory: image queries and items. EfficientNet-Lite0
    /// (`deploy/models/efficientnet_lite0.py` makes one) or a CLIP model in Hugging Face's
    /// layout (openai/clip-vit-base-patch32), which also serves text queries against the
    /// image collections.
    #[arg(long)]
    image_model: Option<PathBuf>,
    /// A folder whose images the page's thumbnails may show (items' "path" must lie
    /// inside one; repeat for several). `fathom index-images` folders go here.
    #[arg(long)]
    image_root: Vec<PathBuf>,
}

/// The text model of `--model`, when given.
pub fn load_model(
    dir: Option<&std::path::Path>,
) -> Result<Option<std::sync::Arc<dyn fathom_serve::embed::Embedder>>> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    #[cfg(feature = "text")]
    {
        let m = fathom_serve::bert::SentenceEmbedder::load(dir)?;
        Ok(Some(std::sync::Arc::new(m)))
    }
    #[cfg(not(feature = "text"))]
    {
        Err(Error::Unsupported(format!(
            "--model {}: this fathom was built without the `text` feature",
            dir.display()
        )))
    }
}

/// The image model of `--image-model`, when given.
pub fn load_image_model(
    dir: Option<&std::path::Path>,
) -> Result<Option<std::sync::Arc<dyn fathom_serve::embed::ImageEmbedder>>> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    #[cfg(feature = "image")]
    {
        let limits = fathom_serve::image_input::DecodeLimits::default();
        Ok(Some(fathom_serve::image_model::load(dir, limits)?))
    }
    #[cfg(not(feature = "image"))]
    {
        Err(Error::Unsupported(format!(
            "--image-model {}: this fathom was built without the `image` feature",
            dir.display()
        )))
    }
}

/// The address `host:port` names (a literal address or a name such as `localhost`).
fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    (bare, port)
        .to_socket_addrs()
        .map_err(|e| Error::invalid(format!("--host {host}: cannot resolve it: {e}")))?
        .next()
        .ok_or_else(|| Error::invalid(format!("--host {host}: no address")))
}

/// Removes the demo's temporary data directory when `fathom serve` ends.
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The multi-threaded async runtime the serving commands run on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::invalid(format!("cannot start the async runtime: {e}")))
}

/// `fathom serve --router`.
fn run_router(args: &ServeArgs, addr: SocketAddr) -> Result<()> {
    if args.searchers.is_none() && args.local.is_none() && args.etcd.is_none() {
        return Err(Error::invalid(
            "--router needs --etcd host:port,… or --searchers s0=host:port,… (or --local \
             CACHE_DIR to load the shards itself)",
        ));
    }
    let mut config = fathom_dist::router::RouterConfig::new(
        args.store.as_deref().unwrap_or_default(),
        &args.name,
    );
    config.version = args.version;
    config.searchers =
        fathom_dist::router::parse_searchers(args.searchers.as_deref().unwrap_or(""))?;
    config.local_cache = args.local.clone();
    config.quantize_once = args.quantize_once;
    config.etcd = args.etcd.clone();
    config.hedge = (args.hedge_ms > 0).then(|| Duration::from_millis(args.hedge_ms));
    config.replication = args.replication;
    let deadline_ms = args.deadline_ms.unwrap_or(1000);
    if deadline_ms == 0 {
        return Err(Error::invalid("--deadline-ms must be at least 1"));
    }
    if args.replication == 0 {
        return Err(Error::invalid("--replication must be at least 1"));
    }
    runtime()?.block_on(async {
        let router = std::sync::Arc::new(fathom_dist::router::Router::open(&config).await?);
        router.follow();
        for h in router.health(Duration::from_secs(2)).await {
            if !h.ok {
                eprintln!(
                    "fathom serve: warning: shard {} (searcher {}): {}",
                    h.shard, h.searcher, h.detail
                );
            }
        }
        let serving = match router.manifest() {
            Some(m) => format!("{} v{}, {} shards", m.name, m.version, m.shards.len()),
            None => format!("{}: no version READY yet", router.name()),
        };
        let app = std::sync::Arc::new(fathom_serve::router_api::RouterApp {
            router,
            replication: args.replication,
            max_top_k: args.max_top_k.max(1),
            max_body_bytes: args.max_body_mib.max(1) << 20,
            default_deadline: Duration::from_millis(deadline_ms),
            metrics: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::invalid(format!("cannot listen on {addr}: {e}")))?;
        outln!(
            "fathom serve: router listening on http://{} ({serving})",
            listener.local_addr()?
        );
        fathom_serve::server::serve_router(app, listener).await
    })
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let addr = resolve(&args.host, args.port)?;
    fathom_serve::log::init(fathom_serve::log::LogFormat::parse(&args.log_format)?);
    if args.router {
        return run_router(args, addr);
    }
    let (dir, demo, _temp) = match &args.data_dir {
        Some(d) => (d.clone(), args.demo, None),
        None => {
            let d = std::env::temp_dir().join(format!("fathom-serve-demo-{}", std::process::id()));
            (d.clone(), true, Some(TempDir(d)))
        }
    };
    let mut config = ServeConfig::new(&dir);
    config.keep_snapshots = args.keep.max(1);
    config.max_top_k = args.max_top_k.max(1);
    config.max_body_bytes = args.max_body_mib.max(1) << 20;
    config.max_search_pairs = args.max_search_pairs.max(1);
    config.max_metadata_bytes = args.max_metadata_bytes.max(2);
    let deadline_ms = args.deadline_ms.unwrap_or(10_000);
    if deadline_ms == 0 || args.max_batch == 0 || args.max_queue == 0 {
        return Err(Error::invalid(
            "--deadline-ms, --max-batch and --max-queue must be at least 1",
        ));
    }
    config.traffic = fathom_serve::lane::TrafficConfig {
        batch_window: Duration::from_micros(args.batch_window_us),
        max_batch: args.max_batch,
        max_queue: args.max_queue,
        deadline: Duration::from_millis(deadline_ms),
        degrade: args.degrade,
    };
    config.cache_bytes = args.cache_mb << 20;
    config.api_keys = args.api_keys.clone();
    config.cors_origin = args.cors_origin.clone();
    config.tls = args.tls_cert.clone().zip(args.tls_key.clone());
    config.image_roots = args.image_root.clone();
    let models = fathom_serve::server::Models {
        text: load_model(args.model.as_deref())?,
        image: load_image_model(args.image_model.as_deref())?,
    };
    let app = fathom_serve::server::open_with(config, models)?;
    for line in &app.service.startup {
        eprintln!("fathom serve: {line}");
    }
    if demo {
        fathom_serve::server::add_demo(&app)?;
    }
    let runtime = runtime()?;
    let every = Duration::from_secs(args.snapshot_secs);
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let insecure = if args.tls_cert.is_some() { " -k" } else { "" };
    runtime.block_on(fathom_serve::server::serve(app, addr, Some(every), |bound| {
        println!("fathom serve: listening on {scheme}://{bound} (data in {})", dir.display());
        if demo {
            println!(
                "try: curl -s{insecure} {scheme}://{bound}/collections/demo/search -d '{{\"vector\": [0.1, 0.2, 0.3, 0.4], \"top_k\": 3}}'"
            );
        }
    }))
}
