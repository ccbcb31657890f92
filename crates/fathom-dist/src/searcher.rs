//! `fathom searcher`: a stateless process that serves some shards of one manifest over
//! gRPC. At start it reads the manifest, fetches its shards into the local cache
//! (verified), opens them (memory-mapped where the type allows) and checks them against
//! the manifest; then it answers `Search` for those shards and `Health`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use fathom_core::{Error, Result, SearchParams};
use tonic::{Request, Response, Status};

use crate::cache::{self, Fetched, LoadedShard};
use crate::manifest::{self, Manifest};
use crate::objects::Objects;
use crate::pb;

/// Largest gRPC message a searcher or router accepts or sends by default (64 MiB: a batch
/// of 16 000 queries of dimension 1024).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// How a searcher starts.
#[derive(Debug, Clone)]
pub struct SearcherConfig {
    /// Object store URL.
    pub store: String,
    /// Collection (manifest) name.
    pub name: String,
    /// Manifest version (the newest when `None`).
    pub version: Option<u64>,
    /// Shards to serve.
    pub shards: Vec<u32>,
    /// Local cache directory.
    pub cache: PathBuf,
}

/// What a searcher holds: shards of one or more manifest versions (two while it moves
/// from one version to the next), each with the manifest it belongs to.
#[derive(Default)]
struct Holdings {
    manifests: BTreeMap<u64, Arc<Manifest>>,
    shards: BTreeMap<(u64, u32), Arc<LoadedShard>>,
}

/// The shards a searcher holds, ready to search. A searcher with fixed shards loads them
/// once ([`Searcher::load`]); one under etcd membership (`crate::member`) starts empty and
/// gains and drops shards as assignments change, while it serves.
pub struct Searcher {
    name: String,
    held: std::sync::RwLock<Holdings>,
    /// What loading did, one line per shard.
    pub log: Vec<String>,
    /// Searches answered and failed, and their latency.
    pub stats: crate::stats::Latencies,
}

/// One line saying where a loaded shard came from.
pub fn describe_load(entry: &crate::manifest::ShardEntry, how: Fetched, mapped: bool) -> String {
    format!(
        "shard {}: {} vectors, {} bytes, {}{}",
        entry.shard,
        entry.ntotal,
        entry.file.bytes,
        match how {
            Fetched::Cached => "verified in the cache",
            Fetched::Downloaded => "downloaded and verified",
            Fetched::Replaced => "cached copy failed verification; downloaded again",
        },
        if mapped { ", memory-mapped" } else { "" }
    )
}

impl Searcher {
    /// A searcher of collection `name` holding nothing yet.
    pub fn empty(name: &str) -> Self {
        Searcher {
            name: name.to_string(),
            held: Default::default(),
            log: Vec::new(),
            stats: Default::default(),
        }
    }

    /// Loads the manifest and the shards of `config`.
    pub async fn load(config: &SearcherConfig) -> Result<Self> {
        let objects = Objects::open(&config.store)?;
        let m = Arc::new(manifest::load(&objects, &config.name, config.version).await?);
        if config.shards.is_empty() {
            return Err(Error::invalid("no shards to serve: give --shards 0,2,…"));
        }
        let mut s = Searcher::empty(&config.name);
        for &shard in &config.shards {
            let entry = m.shards.get(shard as usize).ok_or_else(|| {
                Error::invalid(format!(
                    "shard {shard}: manifest {} v{} has shards 0..{}",
                    m.name,
                    m.version,
                    m.shards.len()
                ))
            })?;
            let (path, how) = cache::fetch(&objects, &config.cache, &entry.file).await?;
            let loaded = cache::open_shard(&path, entry, &m)?;
            s.log.push(describe_load(entry, how, loaded.mapped));
            s.insert(m.clone(), loaded);
        }
        Ok(s)
    }

    /// Adds a loaded shard of manifest `m` (replacing one of the same version and number).
    pub fn insert(&self, m: Arc<Manifest>, shard: LoadedShard) {
        let mut h = self.held.write().unwrap_or_else(|e| e.into_inner());
        h.manifests.entry(m.version).or_insert(m.clone());
        h.shards
            .insert((m.version, shard.entry.shard), Arc::new(shard));
    }

    /// Drops `shard` of `version` (searches already running on it finish); forgets the
    /// version's manifest with its last shard.
    pub fn remove(&self, version: u64, shard: u32) {
        let mut h = self.held.write().unwrap_or_else(|e| e.into_inner());
        h.shards.remove(&(version, shard));
        if !h.shards.keys().any(|(v, _)| *v == version) {
            h.manifests.remove(&version);
        }
    }

    /// The `(version, shard)` pairs held, ascending.
    pub fn held(&self) -> Vec<(u64, u32)> {
        let h = self.held.read().unwrap_or_else(|e| e.into_inner());
        h.shards.keys().copied().collect()
    }

    /// The SHA-256 of the file of a held shard.
    pub fn held_sha(&self, version: u64, shard: u32) -> Option<String> {
        let h = self.held.read().unwrap_or_else(|e| e.into_inner());
        h.shards
            .get(&(version, shard))
            .map(|s| s.entry.file.sha256.clone())
    }

    /// The newest manifest held.
    pub fn manifest(&self) -> Option<Arc<Manifest>> {
        let h = self.held.read().unwrap_or_else(|e| e.into_inner());
        h.manifests.values().next_back().cloned()
    }

    /// Answers one request, recording its latency.
    pub fn search(&self, r: &pb::SearchRequest) -> std::result::Result<pb::SearchResponse, Status> {
        let t = std::time::Instant::now();
        let out = self.search_unrecorded(r);
        self.stats.record(r.shard, t.elapsed(), out.is_ok());
        out
    }

    /// Answers one request (on the calling thread; the index searches in parallel).
    fn search_unrecorded(
        &self,
        r: &pb::SearchRequest,
    ) -> std::result::Result<pb::SearchResponse, Status> {
        if r.name != self.name {
            return Err(Status::failed_precondition(format!(
                "this searcher serves collection {:?}, not {:?}",
                self.name, r.name
            )));
        }
        // Hold the lock only to find the shard: a shard dropped meanwhile stays alive
        // (its Arc) until this search ends.
        let (m, shard) = {
            let h = self.held.read().unwrap_or_else(|e| e.into_inner());
            match (
                h.manifests.get(&r.manifest_version),
                h.shards.get(&(r.manifest_version, r.shard)),
            ) {
                (Some(m), Some(s)) => (m.clone(), s.clone()),
                _ => {
                    return Err(Status::not_found(format!(
                        "shard {} of v{} is not served here (it serves {:?}, as (version, shard))",
                        r.shard,
                        r.manifest_version,
                        h.shards.keys().collect::<Vec<_>>()
                    )));
                }
            }
        };
        if r.d != m.d {
            return Err(Status::invalid_argument(format!(
                "queries of dimension {}; the index has {}",
                r.d, m.d
            )));
        }
        let k = r.k as usize;
        if k == 0 || k > 100_000 {
            return Err(Status::invalid_argument(format!(
                "k must be 1..=100000, got {k}"
            )));
        }
        let index = &*shard.index;
        let mut params = SearchParams::default();
        for (v, name, field) in [
            (r.nprobe, "nprobe", &mut params.nprobe),
            (r.ef_search, "efSearch", &mut params.ef_search),
        ] {
            if v > 0 {
                if index.param(name).is_none() {
                    return Err(Status::invalid_argument(format!(
                        "search parameter {name} does not apply to {}",
                        index.description()
                    )));
                }
                *field = Some(v as usize);
            }
        }
        let res = if r.coarse_ids.is_empty() {
            index.search_with(&r.queries, k, &params)
        } else {
            let ivf = fathom_index::ivf::as_ivf(index).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "coarse assignments sent for {}, which is not an IVF index",
                    index.description()
                ))
            })?;
            let nq = r.queries.len() / (m.d as usize).max(1);
            let nprobe = r.nprobe as usize;
            if nprobe == 0
                || r.coarse_ids.len() != nq * nprobe
                || r.coarse_distances.len() != nq * nprobe
            {
                return Err(Status::invalid_argument(format!(
                    "{} coarse ids and {} distances for {nq} queries at nprobe {nprobe}",
                    r.coarse_ids.len(),
                    r.coarse_distances.len()
                )));
            }
            let coarse = fathom_core::SearchResult {
                nq,
                k: nprobe,
                labels: r.coarse_ids.clone(),
                distances: r.coarse_distances.clone(),
            };
            ivf.search_preassigned(&r.queries, k, &coarse, &params)
        }
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(pb::SearchResponse {
            shard: r.shard,
            manifest_version: m.version,
            ids: res.labels,
            distances: res.distances,
        })
    }

    /// What it serves.
    pub fn health(&self) -> pb::HealthResponse {
        let h = self.held.read().unwrap_or_else(|e| e.into_inner());
        let newest = h.manifests.values().next_back();
        pb::HealthResponse {
            name: self.name.clone(),
            manifest_version: newest.map_or(0, |m| m.version),
            d: newest.map_or(0, |m| m.d),
            metric: newest.map_or(String::new(), |m| m.metric.clone()),
            shards: h
                .shards
                .iter()
                .map(|(&(v, _), s)| pb::ShardStatus {
                    shard: s.entry.shard,
                    ntotal: s.entry.ntotal,
                    sha256: s.entry.file.sha256.clone(),
                    description: s.index.description(),
                    mapped: s.mapped,
                    manifest_version: v,
                })
                .collect(),
        }
    }
}

/// Runs CPU-bound `f` on fathom's thread pool (rayon's), off the async workers, and
/// awaits it. Running it on the pool itself, rather than on a blocking thread that would
/// hand the index's parallel work to the pool and wait, saves a thread switch per call —
/// which at small batches is a measurable share of a request.
pub async fn on_pool<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<T, Status> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await
        .map_err(|_| Status::internal("the search task ended without an answer"))
}

/// The gRPC face of a [`Searcher`].
#[derive(Clone)]
pub struct SearcherService(pub Arc<Searcher>);

#[tonic::async_trait]
impl pb::searcher_server::Searcher for SearcherService {
    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> std::result::Result<Response<pb::SearchResponse>, Status> {
        let s = self.0.clone();
        let r = request.into_inner();
        on_pool(move || s.search(&r)).await?.map(Response::new)
    }

    async fn health(
        &self,
        _: Request<pb::HealthRequest>,
    ) -> std::result::Result<Response<pb::HealthResponse>, Status> {
        Ok(Response::new(self.0.health()))
    }
}

/// Serves `searcher` on `listener` until `shutdown` completes.
pub async fn serve(
    searcher: Arc<Searcher>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let svc = pb::searcher_server::SearcherServer::new(SearcherService(searcher))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY a response's frames wait for delayed ACKs (40 ms).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|e| Error::Io {
            path: None,
            source: std::io::Error::other(format!("gRPC server: {e}")),
        })
}
