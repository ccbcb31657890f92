//! The router: fans a search out to one searcher per shard, waits at most until the
//! request's deadline, merges the per-shard top-k exactly as `IndexShards` does (ties by
//! id) and says how much of the index answered: `coverage` (Σ ntotal of the shards that
//! answered ÷ Σ ntotal), `partial`, and which shards are missing and why. Deciding
//! whether a partial answer is acceptable is the caller's (`min_coverage`).

use std::sync::Arc;
use std::time::Duration;

use fathom_core::{Error, Result, SearchResult};
use tonic::transport::{Channel, Endpoint};

use crate::manifest::{self, Manifest};
use crate::objects::Objects;
use crate::pb;
use crate::pb::searcher_client::SearcherClient;
use crate::searcher::{MAX_MESSAGE_BYTES, Searcher, SearcherConfig};

/// How a router starts.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Object store URL.
    pub store: String,
    /// Collection (manifest) name.
    pub name: String,
    /// Manifest version (the newest when `None`).
    pub version: Option<u64>,
    /// The searcher of every shard: `(shard, "host:port")`.
    pub searchers: Vec<(u32, String)>,
    /// Instead of searchers: load every shard into this process, cached in this
    /// directory (one process serving the whole index through the same fan-out and
    /// merge — the baseline the distributed setup is measured against).
    pub local_cache: Option<std::path::PathBuf>,
    /// IVF indexes: quantize each query once here (with the manifest's trained index) and
    /// send the probed lists to the searchers, instead of every shard repeating it.
    pub quantize_once: bool,
}

/// Parses `s0=host:port,s1=host:port,…` (the `s` optional) into `(shard, address)` pairs.
///
/// ```
/// let v = fathom_dist::router::parse_searchers("s0=127.0.0.1:7000,1=127.0.0.1:7001").unwrap();
/// assert_eq!(v, [(0, "127.0.0.1:7000".to_string()), (1, "127.0.0.1:7001".to_string())]);
/// assert!(fathom_dist::router::parse_searchers("s0").is_err());
/// ```
pub fn parse_searchers(text: &str) -> Result<Vec<(u32, String)>> {
    text.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (shard, addr) = p.trim().split_once('=').ok_or_else(|| {
                Error::invalid(format!(
                    "--searchers entry {p:?}: expected s<shard>=host:port"
                ))
            })?;
            let n = shard.trim_start_matches('s').parse::<u32>().map_err(|_| {
                Error::invalid(format!(
                    "--searchers entry {p:?}: {shard:?} is not a shard number"
                ))
            })?;
            if addr.is_empty() || !addr.contains(':') {
                return Err(Error::invalid(format!(
                    "--searchers entry {p:?}: expected host:port after '='"
                )));
            }
            Ok((n, addr.to_string()))
        })
        .collect()
}

/// How one shard is reached.
enum Via {
    /// A searcher process: a client connected lazily, reconnected by tonic.
    Remote(SearcherClient<Channel>),
    /// Loaded in this process.
    Local(Arc<Searcher>),
}

/// One shard's route.
struct Route {
    addr: String,
    via: Via,
}

impl Route {
    async fn search(
        &self,
        req: pb::SearchRequest,
        deadline: Duration,
    ) -> std::result::Result<pb::SearchResponse, String> {
        let call = async {
            match &self.via {
                Via::Remote(c) => {
                    let mut req = tonic::Request::new(req);
                    req.set_timeout(deadline);
                    c.clone()
                        .search(req)
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(|s| describe_status(&s))
                }
                Via::Local(s) => {
                    let s = s.clone();
                    crate::searcher::on_pool(move || s.search(&req))
                        .await
                        .and_then(|r| r)
                        .map_err(|s| describe_status(&s))
                }
            }
        };
        match tokio::time::timeout(deadline, call).await {
            Err(_) => Err(format!(
                "no answer within the deadline of {} ms",
                deadline.as_millis()
            )),
            Ok(r) => r,
        }
    }

    async fn health(&self, timeout: Duration) -> std::result::Result<pb::HealthResponse, String> {
        match &self.via {
            Via::Local(s) => Ok(s.health()),
            Via::Remote(c) => {
                let mut req = tonic::Request::new(pb::HealthRequest {});
                req.set_timeout(timeout);
                match tokio::time::timeout(timeout, c.clone().health(req)).await {
                    Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
                    Ok(Err(e)) => Err(describe_status(&e)),
                    Ok(Ok(h)) => Ok(h.into_inner()),
                }
            }
        }
    }
}

/// What a searcher says about itself, as the router sees it.
#[derive(Debug, Clone)]
pub struct ShardHealth {
    /// The shard.
    pub shard: u32,
    /// Its searcher's address.
    pub searcher: String,
    /// Whether the searcher answers and serves this shard of this manifest.
    pub ok: bool,
    /// What is wrong, or what it serves.
    pub detail: String,
}

/// Per-request search settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShardParams {
    /// IVF lists to probe.
    pub nprobe: Option<usize>,
    /// HNSW beam width.
    pub ef_search: Option<usize>,
}

/// A merged answer.
#[derive(Debug, Clone)]
pub struct RoutedResult {
    /// The merged top-k of the shards that answered.
    pub result: SearchResult,
    /// The manifest version every answer came from.
    pub manifest_version: u64,
    /// Σ ntotal of the shards that answered ÷ Σ ntotal.
    pub coverage: f64,
    /// Shards that did not answer in time or answered wrongly, with the reason.
    pub missing: Vec<(u32, String)>,
}

impl RoutedResult {
    /// Whether some shard is missing.
    pub fn partial(&self) -> bool {
        !self.missing.is_empty()
    }
}

/// Fans searches out over the searchers of one manifest.
pub struct Router {
    manifest: Manifest,
    routes: Vec<Route>,
    /// The trained IVF index, when queries are quantized here (`quantize_once`).
    coarse: Option<Arc<Box<dyn fathom_index::Index>>>,
}

/// The trained index of `m`, when it is IVF, for quantizing queries at the router.
async fn coarse_quantizer(
    objects: &Objects,
    m: &Manifest,
) -> Result<Option<Arc<Box<dyn fathom_index::Index>>>> {
    let bytes = objects.get_verified(&m.trained).await?;
    let index = fathom_io::faiss::read_index_bytes(&bytes)?;
    if fathom_index::ivf::as_ivf(&*index).is_none() {
        return Ok(None);
    }
    Ok(Some(Arc::new(index)))
}

fn rpc_err(e: tonic::transport::Error) -> Error {
    Error::invalid(format!("searcher address: {e}"))
}

impl Router {
    /// Reads the manifest and sets up a client per shard. Every shard needs a searcher;
    /// the searchers need not be up yet (see [`Router::health`]).
    pub async fn open(config: &RouterConfig) -> Result<Self> {
        if config.local_cache.is_some() && !config.searchers.is_empty() {
            return Err(Error::invalid(
                "a local router loads every shard itself: give searchers or a local cache, not both",
            ));
        }
        let objects = Objects::open(&config.store)?;
        let m = manifest::load(&objects, &config.name, config.version).await?;
        let routes = match &config.local_cache {
            Some(cache) => local_routes(config, &m, cache).await?,
            None => remote_routes(config, &m)?,
        };
        let coarse = if config.quantize_once {
            coarse_quantizer(&objects, &m).await?
        } else {
            None
        };
        Ok(Router {
            manifest: m,
            routes,
            coarse,
        })
    }

    /// The manifest served.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Asks every shard's searcher what it serves (each within `timeout`).
    pub async fn health(&self, timeout: Duration) -> Vec<ShardHealth> {
        let m = &self.manifest;
        let asks = self.routes.iter().enumerate().map(|(s, r)| async move {
            let (ok, detail) = match r.health(timeout).await {
                Err(e) => (false, e),
                Ok(h) => {
                    let entry = &m.shards[s];
                    match h.shards.iter().find(|x| x.shard == s as u32) {
                        _ if h.name != m.name || h.manifest_version != m.version => (
                            false,
                            format!(
                                "serves {} v{}, not {} v{}",
                                h.name, h.manifest_version, m.name, m.version
                            ),
                        ),
                        None => (false, "does not serve this shard".to_string()),
                        Some(x) if x.sha256 != entry.file.sha256 => (
                            false,
                            format!("serves shard file {}, not {}", x.sha256, entry.file.sha256),
                        ),
                        Some(x) => (true, format!("{} vectors, {}", x.ntotal, x.description)),
                    }
                }
            };
            ShardHealth {
                shard: s as u32,
                searcher: self.routes[s].addr.clone(),
                ok,
                detail,
            }
        });
        futures::future::join_all(asks).await
    }

    /// Searches `queries` (rows of the manifest's dimension) on every shard, waiting at
    /// most `deadline`, and merges what arrived.
    pub async fn search(
        &self,
        queries: &[f32],
        k: usize,
        params: ShardParams,
        deadline: Duration,
    ) -> Result<RoutedResult> {
        let m = &self.manifest;
        let d = m.d as usize;
        let nq = fathom_core::check::nonempty_finite("query", queries, d)?;
        fathom_core::check::k(k)?;
        // The coarse step once, for every shard.
        let (nprobe, coarse_ids, coarse_distances) = match &self.coarse {
            None => (params.nprobe.unwrap_or(0), Vec::new(), Vec::new()),
            Some(index) => {
                let nlist = fathom_index::ivf::lists_of(&***index).map_or(1, |l| l.nlist);
                let nprobe = params
                    .nprobe
                    .or_else(|| index.param("nprobe").map(|p| p as usize))
                    .unwrap_or(1)
                    .clamp(1, nlist);
                let (index, q) = (index.clone(), queries.to_vec());
                let coarse = tokio::task::spawn_blocking(move || {
                    fathom_index::ivf::as_ivf(&**index)
                        .expect("checked at open")
                        .probe(&q, nprobe)
                })
                .await
                .map_err(|e| Error::invalid(format!("coarse step failed: {e}")))??;
                (nprobe, coarse.labels, coarse.distances)
            }
        };
        let asks = self.routes.iter().enumerate().map(|(s, r)| {
            let req = pb::SearchRequest {
                name: m.name.clone(),
                manifest_version: m.version,
                shard: s as u32,
                d: m.d,
                queries: queries.to_vec(),
                k: k as u32,
                nprobe: nprobe as u32,
                ef_search: params.ef_search.unwrap_or(0) as u32,
                coarse_ids: coarse_ids.clone(),
                coarse_distances: coarse_distances.clone(),
            };
            async move {
                let resp = r.search(req, deadline).await?;
                check_answer(resp, s as u32, m.version, nq, k)
            }
        });
        let answers = futures::future::join_all(asks).await;
        let mut parts = Vec::new();
        let mut missing = Vec::new();
        let mut covered = 0u64;
        for (s, a) in answers.into_iter().enumerate() {
            match a {
                Ok(part) => {
                    covered += m.shards[s].ntotal;
                    parts.push(part);
                }
                Err(why) => missing.push((s as u32, format!("{}: {why}", self.routes[s].addr))),
            }
        }
        if let Some((_, why)) = missing.iter().find(|(_, w)| w.contains("InvalidArgument")) {
            // The request itself is wrong (every shard says so): not a partial answer.
            return Err(Error::invalid(why.clone()));
        }
        let result = fathom_index::merge_results(&parts, nq, k, m.metric_type()?, |_, l| l)?;
        let total = m.ntotal();
        Ok(RoutedResult {
            result,
            manifest_version: m.version,
            coverage: if total == 0 {
                1.0
            } else {
                covered as f64 / total as f64
            },
            missing,
        })
    }
}

/// Every shard loaded in this process (from `cache`), one route per shard.
async fn local_routes(
    config: &RouterConfig,
    m: &Manifest,
    cache: &std::path::Path,
) -> Result<Vec<Route>> {
    let all = SearcherConfig {
        store: config.store.clone(),
        name: m.name.clone(),
        version: Some(m.version),
        shards: (0..m.shards.len() as u32).collect(),
        cache: cache.to_path_buf(),
    };
    let local = Arc::new(Searcher::load(&all).await?);
    Ok((0..m.shards.len())
        .map(|_| Route {
            addr: "local".into(),
            via: Via::Local(local.clone()),
        })
        .collect())
}

/// A lazily connected client per shard, from `config.searchers`; every shard needs one.
fn remote_routes(config: &RouterConfig, m: &Manifest) -> Result<Vec<Route>> {
    let n = m.shards.len() as u32;
    let mut addrs: Vec<Option<String>> = vec![None; n as usize];
    for (s, a) in &config.searchers {
        let slot = addrs.get_mut(*s as usize).ok_or_else(|| {
            Error::invalid(format!(
                "--searchers names shard {s}; manifest {} v{} has shards 0..{n}",
                m.name, m.version
            ))
        })?;
        if slot.replace(a.clone()).is_some() {
            return Err(Error::invalid(format!("--searchers names shard {s} twice")));
        }
    }
    let missing: Vec<u32> = (0..n).filter(|&s| addrs[s as usize].is_none()).collect();
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "--searchers gives no searcher for shards {missing:?} of {} v{} (shards 0..{n})",
            m.name, m.version
        )));
    }
    addrs
        .into_iter()
        .flatten()
        .map(|addr| {
            let channel = Endpoint::from_shared(format!("http://{addr}"))
                .map_err(rpc_err)?
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .connect_lazy();
            let client = SearcherClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            Ok(Route {
                addr,
                via: Via::Remote(client),
            })
        })
        .collect()
}

fn describe_status(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// A shard's answer as a [`SearchResult`], or why it cannot be used.
fn check_answer(
    r: pb::SearchResponse,
    shard: u32,
    version: u64,
    nq: usize,
    k: usize,
) -> std::result::Result<SearchResult, String> {
    if r.shard != shard || r.manifest_version != version {
        return Err(format!(
            "malformed answer: shard {} v{} for a request to shard {shard} v{version}",
            r.shard, r.manifest_version
        ));
    }
    if r.ids.len() != nq * k || r.distances.len() != nq * k {
        return Err(format!(
            "malformed answer: {} ids and {} distances; expected {} ({nq} queries × k {k})",
            r.ids.len(),
            r.distances.len(),
            nq * k
        ));
    }
    Ok(SearchResult {
        nq,
        k,
        distances: r.distances,
        labels: r.ids,
    })
}
