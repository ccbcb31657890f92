//! `fathom shard build|publish` and `fathom searcher`: sharded indexes in an object store
//! and the processes that serve them (`fathom-dist`; docs/SCALE.md).

use std::path::PathBuf;
use std::sync::Arc;

use fathom_core::{Error, MetricType, Result};
use fathom_dist::builder::{self, BuildSpec};
use fathom_dist::searcher::{Searcher, SearcherConfig};
use fathom_dist::{Objects, manifest};
use fathom_io::VecsMmap;

use crate::progress::stage;
use crate::serve::runtime;

/// Sharded indexes in an object store.
#[derive(clap::Subcommand)]
pub enum ShardCommand {
    /// Trains the index once and builds its shards (all, or one slice with --shard i/N),
    /// each the trained index plus a contiguous slice of the base with global ids, as
    /// Faiss files under content-addressed keys; with all shards, publishes the manifest.
    Build(BuildArgs),
    /// Writes the next manifest from the shards built on the current training; with
    /// --etcd, also points the cluster at it (an atomic compare-and-swap; routers switch
    /// once each of its shards has a READY replica).
    Publish {
        /// Object store URL (file:///dir or s3://bucket/prefix).
        #[arg(long)]
        store: String,
        /// Collection name.
        #[arg(long, default_value = "default")]
        name: String,
        /// The etcd cluster (`host:port,…`) whose manifest pointer to move.
        #[arg(long)]
        etcd: Option<String>,
    },
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// Dataset directory: base.fvecs (and learn.fvecs for training, else the base), as
    /// `fathom gen` writes.
    dir: PathBuf,
    /// Faiss factory string, e.g. IVF1024,Flat.
    #[arg(long)]
    index: String,
    /// Number of shards.
    #[arg(long)]
    shards: u32,
    /// Object store URL (file:///dir or s3://bucket/prefix).
    #[arg(long)]
    store: String,
    /// Collection name the router serves it under.
    #[arg(long, default_value = "default")]
    name: String,
    /// l2 or ip.
    #[arg(long, default_value = "l2")]
    metric: String,
    /// Build only slice i of N ("i/N", N = --shards), on the current training (trained
    /// now if there is none); `fathom shard publish` once every slice is built.
    #[arg(long)]
    shard: Option<String>,
    /// Only train, recording the training the slices start from.
    #[arg(long, conflicts_with = "shard")]
    train_only: bool,
    /// Do not train: start from the current training of this other collection (same
    /// index, metric and dimension), e.g. to build a one-shard twin of a sharded index.
    #[arg(long, conflicts_with = "train_only")]
    training_of: Option<String>,
    /// With all shards built here: also point this etcd cluster (`host:port,…`) at the
    /// published manifest.
    #[arg(long)]
    etcd: Option<String>,
}

/// Points the cluster at manifest `version` of `name`.
fn point(rt: &tokio::runtime::Runtime, endpoints: &str, name: &str, version: u64) -> Result<()> {
    let old = rt.block_on(async {
        // The client's channels need the runtime to exist.
        let etcd = fathom_dist::etcd::Etcd::connect(endpoints, std::time::Duration::from_secs(2))?;
        fathom_dist::control::publish_pointer(&etcd, name, version).await
    })?;
    outln!(
        "etcd: {} now v{version} (was {})",
        fathom_dist::control::pointer_key(name),
        old.map_or("unset".to_string(), |v| format!("v{v}"))
    );
    Ok(())
}

/// Parses "i/N".
fn parse_slice(text: &str, shards: u32) -> Result<u32> {
    let bad = || {
        Error::invalid(format!(
            "--shard {text:?}: expected i/N with 0 <= i < N = --shards {shards}"
        ))
    };
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n != shards || i >= n {
        return Err(bad());
    }
    Ok(i)
}

pub fn run(cmd: &ShardCommand) -> Result<()> {
    let rt = runtime()?;
    match cmd {
        ShardCommand::Publish { store, name, etcd } => {
            let objects = Objects::open(store)?;
            let m = rt.block_on(builder::publish(&objects, name))?;
            outln!(
                "published {} v{}: {} shards, {} vectors ({})",
                m.name,
                m.version,
                m.shards.len(),
                m.ntotal(),
                objects.describe(&manifest::manifest_key(&m.name, m.version))
            );
            if let Some(e) = etcd {
                point(&rt, e, name, m.version)?;
            }
            Ok(())
        }
        ShardCommand::Build(a) => build(&rt, a),
    }
}

fn build(rt: &tokio::runtime::Runtime, a: &BuildArgs) -> Result<()> {
    let metric = MetricType::parse(&a.metric)?;
    let objects = Objects::open(&a.store)?;
    let base = VecsMmap::<f32>::open(a.dir.join("base.fvecs"))?;
    let (nb, d) = (base.n() as u64, base.d());
    let spec = BuildSpec {
        name: a.name.clone(),
        factory: a.index.clone(),
        metric,
        shards: a.shards,
    };
    let only = a
        .shard
        .as_deref()
        .map(|s| parse_slice(s, a.shards))
        .transpose()?;
    let train = || -> Result<builder::BuildRecord> {
        let learn_path = a.dir.join("learn.fvecs");
        let learn = if learn_path.exists() {
            fathom_io::read_fvecs(&learn_path)?
        } else {
            base.rows(0..base.n())
                .ok_or_else(|| Error::invalid("empty base"))?
        };
        // Indexes that need no training (Flat, HNSW) only have their empty form written.
        let st = stage(format!(
            "preparing {} (trained on {} vectors if it needs training)",
            a.index,
            learn.n()
        ));
        let rec = rt.block_on(builder::train(&objects, &spec, &learn.data, d, nb))?;
        st.done();
        outln!("trained: {}", objects.describe(&rec.trained.key));
        Ok(rec)
    };
    let record = match (&a.training_of, only) {
        (Some(other), _) => {
            let r = rt.block_on(builder::current_build(&objects, other))?;
            if r.factory != a.index
                || r.metric != manifest::metric_name(metric)
                || r.d as usize != d
            {
                return Err(Error::invalid(format!(
                    "--training-of {other}: that training is of {} ({}, d {}), not {} ({}, d {d})",
                    r.factory,
                    r.metric,
                    r.d,
                    a.index,
                    manifest::metric_name(metric)
                )));
            }
            rt.block_on(builder::adopt(&objects, &a.name, &r, a.shards, nb))?
        }
        (None, None) => train()?,
        (None, Some(_)) => match rt.block_on(builder::current_build(&objects, &a.name)) {
            Ok(r)
                if r.factory == a.index
                    && r.metric == manifest::metric_name(metric)
                    && r.d as usize == d
                    && r.shards == a.shards
                    && r.nb == nb =>
            {
                r
            }
            Ok(r) => {
                eprintln!(
                    "the current training of {:?} is for {} ({}, d {}, {} shards of {} vectors); \
                     training anew",
                    a.name, r.factory, r.metric, r.d, r.shards, r.nb
                );
                train()?
            }
            Err(_) => train()?,
        },
    };
    if a.train_only {
        return Ok(());
    }
    let which: Vec<u32> = match only {
        Some(i) => vec![i],
        None => (0..a.shards).collect(),
    };
    for i in which {
        let ids = builder::slice(i, a.shards, nb);
        let rows = base
            .rows(ids.start as usize..ids.end as usize)
            .ok_or_else(|| Error::invalid(format!("shard {i}: rows {ids:?} out of the base")))?;
        let st = stage(format!(
            "shard {i}/{}: adding {} vectors (ids {}..{})",
            a.shards,
            rows.n(),
            ids.start,
            ids.end
        ));
        let e = rt.block_on(builder::build_shard(
            &objects, &a.name, &record, i, &rows.data,
        ))?;
        st.done();
        outln!(
            "shard {i}: {} vectors, {} bytes, {}",
            e.ntotal,
            e.file.bytes,
            objects.describe(&e.file.key)
        );
    }
    if only.is_none() {
        let m = rt.block_on(builder::publish(&objects, &a.name))?;
        outln!(
            "published {} v{}: {} shards, {} vectors",
            m.name,
            m.version,
            m.shards.len(),
            m.ntotal()
        );
        if let Some(e) = &a.etcd {
            point(rt, e, &a.name, m.version)?;
        }
    }
    Ok(())
}

/// `fathom searcher`.
#[derive(clap::Args)]
pub struct SearcherArgs {
    /// Object store URL (file:///dir or s3://bucket/prefix).
    #[arg(long)]
    store: String,
    /// Collection name.
    #[arg(long, default_value = "default")]
    name: String,
    /// Manifest version (default: the newest; with --etcd, the published one).
    #[arg(long, conflicts_with = "etcd")]
    version: Option<u64>,
    /// Fixed shards to serve, e.g. 0,2 (without --etcd).
    #[arg(long, value_delimiter = ',', required_unless_present = "etcd")]
    shards: Vec<u32>,
    /// Join this etcd cluster (`host:port,…`) instead of serving fixed shards: register
    /// under a lease, take this member's shards of the published manifest (rendezvous
    /// hashing over the live members), mark them READY, and follow changes.
    #[arg(long, conflicts_with = "shards")]
    etcd: Option<String>,
    /// With --etcd: this searcher's unique name (default: its listening address).
    #[arg(long)]
    member: Option<String>,
    /// With --etcd: copies of each shard the cluster keeps.
    #[arg(long, default_value_t = 1)]
    replication: usize,
    /// With --etcd: the address routers reach it at (default: the bound --listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// With --etcd: seconds without renewal after which etcd drops this member (and its
    /// shards) — the failure-detection time.
    #[arg(long, default_value_t = 3)]
    lease_ttl_s: u64,
    /// Address to serve gRPC on.
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: String,
    /// Also serve `/health` and `/metrics` over HTTP on this address.
    #[arg(long)]
    http: Option<String>,
    /// Run searches this much nicer (Linux thread priority) than the rest of the process:
    /// on a saturated machine, loading a shard — restoring a lost copy — and the gRPC
    /// front then get the CPU before more searches do. 0 turns it off.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(0..=19))]
    search_nice: i32,
    /// Local cache directory for the shard files.
    #[arg(long)]
    cache: PathBuf,
}

impl SearcherArgs {
    /// How much nicer its search threads run.
    pub fn search_nice(&self) -> i32 {
        self.search_nice
    }
}

pub fn searcher(a: &SearcherArgs) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .map_err(|e| Error::invalid(format!("cannot listen on {}: {e}", a.listen)))?;
        let bound = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let signals = fathom_serve::server::shutdown_signals(|| {}, || std::process::exit(130));
        tokio::spawn(async move {
            signals.await;
            let _ = stop_tx.send(true);
        });
        let mut member_status = None;
        let searcher = match &a.etcd {
            None => {
                let config = SearcherConfig {
                    store: a.store.clone(),
                    name: a.name.clone(),
                    version: a.version,
                    shards: a.shards.clone(),
                    cache: a.cache.clone(),
                };
                let s = Searcher::load(&config).await?;
                for line in &s.log {
                    eprintln!("fathom searcher: {line}");
                }
                let m = s.manifest().expect("fixed shards loaded");
                outln!(
                    "fathom searcher: listening on {bound} ({} v{}, shards {:?})",
                    m.name,
                    m.version,
                    a.shards
                );
                Arc::new(s)
            }
            Some(endpoints) => {
                let addr = a.advertise.clone().unwrap_or_else(|| bound.to_string());
                let cfg = fathom_dist::member::MemberConfig {
                    store: a.store.clone(),
                    name: a.name.clone(),
                    member: a.member.clone().unwrap_or_else(|| addr.clone()),
                    addr,
                    cache: a.cache.clone(),
                    replication: a.replication,
                    lease_ttl: std::time::Duration::from_secs(a.lease_ttl_s.max(2)),
                    poll: std::time::Duration::from_millis(200),
                    grace: std::time::Duration::from_secs(1),
                };
                let etcd =
                    fathom_dist::etcd::Etcd::connect(endpoints, std::time::Duration::from_secs(1))?;
                let s = Arc::new(Searcher::empty(&a.name));
                let member = fathom_dist::member::Member::new(cfg.clone(), etcd, s.clone())?;
                member_status = Some(member.status());
                outln!(
                    "fathom searcher: listening on {bound} ({}, member {} of etcd {endpoints}, \
                     replication {})",
                    a.name,
                    cfg.member,
                    a.replication
                );
                let rx = stop_rx.clone();
                tokio::spawn(member.run(stopped(rx)));
                s
            }
        };
        if let Some(http) = &a.http {
            let l = tokio::net::TcpListener::bind(http)
                .await
                .map_err(|e| Error::invalid(format!("--http {http}: cannot listen: {e}")))?;
            eprintln!(
                "fathom searcher: /health and /metrics on http://{}",
                l.local_addr()?
            );
            let app = Arc::new(fathom_serve::searcher_api::SearcherApp {
                searcher: searcher.clone(),
                member: member_status,
            });
            tokio::spawn(fathom_serve::searcher_api::serve(
                app,
                l,
                stopped(stop_rx.clone()),
            ));
        }
        fathom_dist::searcher::serve(searcher, listener, stopped(stop_rx)).await
    })
}
