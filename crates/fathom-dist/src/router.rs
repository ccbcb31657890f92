//! The router: fans a search out to one searcher per shard, waits at most until the
//! request's deadline, merges the per-shard top-k exactly as `IndexShards` does (ties by
//! id) and says how much of the index answered: `coverage` (Σ ntotal of the shards that
//! answered ÷ Σ ntotal), `partial`, and which shards are missing and why. Deciding
//! whether a partial answer is acceptable is the caller's (`min_coverage`).

use std::time::Duration;

use fathom_core::{Error, Result, SearchResult};
use tonic::transport::{Channel, Endpoint};

use crate::manifest::{self, Manifest};
use crate::objects::Objects;
use crate::pb;
use crate::pb::searcher_client::SearcherClient;
use crate::searcher::MAX_MESSAGE_BYTES;

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

/// One shard's route: its searcher and a client (connected lazily, reconnected by tonic).
struct Route {
    addr: String,
    client: SearcherClient<Channel>,
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
}

fn rpc_err(e: tonic::transport::Error) -> Error {
    Error::invalid(format!("searcher address: {e}"))
}

impl Router {
    /// Reads the manifest and sets up a client per shard. Every shard needs a searcher;
    /// the searchers need not be up yet (see [`Router::health`]).
    pub async fn open(config: &RouterConfig) -> Result<Self> {
        let objects = Objects::open(&config.store)?;
        let m = manifest::load(&objects, &config.name, config.version).await?;
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
        let routes = addrs
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
                Ok(Route { addr, client })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Router {
            manifest: m,
            routes,
        })
    }

    /// The manifest served.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Asks every shard's searcher what it serves (each within `timeout`).
    pub async fn health(&self, timeout: Duration) -> Vec<ShardHealth> {
        let m = &self.manifest;
        let asks = self.routes.iter().enumerate().map(|(s, r)| {
            let mut client = r.client.clone();
            async move {
                let mut req = tonic::Request::new(pb::HealthRequest {});
                req.set_timeout(timeout);
                let (ok, detail) = match tokio::time::timeout(timeout, client.health(req)).await {
                    Err(_) => (
                        false,
                        format!("no answer within {} ms", timeout.as_millis()),
                    ),
                    Ok(Err(e)) => (false, describe_status(&e)),
                    Ok(Ok(h)) => {
                        let h = h.into_inner();
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
                                format!(
                                    "serves shard file {}, not {}",
                                    x.sha256, entry.file.sha256
                                ),
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
        let asks = self.routes.iter().enumerate().map(|(s, r)| {
            let mut client = r.client.clone();
            let req = pb::SearchRequest {
                name: m.name.clone(),
                manifest_version: m.version,
                shard: s as u32,
                d: m.d,
                queries: queries.to_vec(),
                k: k as u32,
                nprobe: params.nprobe.unwrap_or(0) as u32,
                ef_search: params.ef_search.unwrap_or(0) as u32,
            };
            async move {
                let mut req = tonic::Request::new(req);
                req.set_timeout(deadline);
                match tokio::time::timeout(deadline, client.search(req)).await {
                    Err(_) => Err(format!(
                        "no answer within the deadline of {} ms",
                        deadline.as_millis()
                    )),
                    Ok(Err(status)) => Err(describe_status(&status)),
                    Ok(Ok(resp)) => check_answer(resp.into_inner(), s as u32, m.version, nq, k),
                }
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
