//! The router: fans a search out to one replica of every shard, waits at most until the
//! request's deadline, merges the per-shard top-k exactly as `IndexShards` does (ties by
//! id) and says how much of the index answered: `coverage` (Σ ntotal of the shards that
//! answered ÷ Σ ntotal), `partial`, and which shards are missing and why. Deciding
//! whether a partial answer is acceptable is the caller's (`min_coverage`).
//!
//! Replicas come from a fixed list or from etcd (`crate::control`): the router then reads
//! the cluster every poll, serves the published manifest version once each of its shards
//! has a READY replica (the previous one until then), and keeps serving its last view
//! while etcd is unreachable. Each shard's request goes to its least loaded replica, a
//! hedge to a second one after `hedge`, and straight to another when one fails.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use fathom_core::{Error, Result, SearchResult};
use tonic::transport::{Channel, Endpoint};

use crate::control::ClusterView;
use crate::etcd::Etcd;
use crate::manifest::{self, Manifest};
use crate::objects::Objects;
use crate::pb;
use crate::pb::searcher_client::SearcherClient;
use crate::searcher::{MAX_MESSAGE_BYTES, Searcher, SearcherConfig};
use crate::stats::Latencies;

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
    /// Instead of fixed searchers: the etcd cluster's endpoints (`host:port,…`) to find
    /// the published version and its READY replicas in.
    pub etcd: Option<String>,
    /// Send a shard's request to a second replica when the first has not answered in
    /// this long (`None`: never).
    pub hedge: Option<Duration>,
    /// How often a router following etcd reads it.
    pub poll: Duration,
    /// Copies of each shard the cluster keeps (to say whether placement has settled).
    pub replication: usize,
}

impl RouterConfig {
    /// A router of collection `name` in `store` with nothing else set: give it
    /// `searchers`, `local_cache` or `etcd`.
    pub fn new(store: &str, name: &str) -> Self {
        RouterConfig {
            store: store.to_string(),
            name: name.to_string(),
            version: None,
            searchers: Vec::new(),
            local_cache: None,
            quantize_once: false,
            etcd: None,
            hedge: Some(Duration::from_millis(50)),
            poll: Duration::from_millis(200),
            replication: 1,
        }
    }
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

/// How one replica is reached.
enum Via {
    /// A searcher process: a client connected lazily, reconnected by tonic.
    Remote(SearcherClient<Channel>),
    /// Loaded in this process.
    Local(Arc<Searcher>),
}

/// One searcher of a shard, shared by every view that routes to it.
struct Replica {
    /// Its member name (its address when membership is static).
    member: String,
    addr: String,
    via: Via,
    /// Requests sent to it and not answered yet: the least loaded replica gets the next.
    outstanding: AtomicUsize,
    /// Failed, or lost to a hedge, lately: others are tried first until then.
    avoid_until: Mutex<Option<Instant>>,
}

/// Counts a request as outstanding on a replica while it lives.
struct InFlight<'a>(&'a Replica);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Replica {
    fn avoided(&self) -> bool {
        self.avoid_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t > Instant::now())
    }

    fn avoid_for(&self, d: Duration) {
        *self.avoid_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + d);
    }

    async fn search(
        &self,
        req: pb::SearchRequest,
        timeout: Duration,
    ) -> std::result::Result<pb::SearchResponse, tonic::Status> {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        let _counted = InFlight(self);
        match &self.via {
            Via::Remote(c) => {
                let mut req = tonic::Request::new(req);
                req.set_timeout(timeout);
                c.clone().search(req).await.map(tonic::Response::into_inner)
            }
            Via::Local(s) => {
                let s = s.clone();
                crate::searcher::on_pool(move || s.search(&req))
                    .await
                    .and_then(|r| r)
            }
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

/// What a router serves at one moment: one manifest version and the READY replicas of
/// each of its shards. Each search uses one view from start to end, so an answer never
/// mixes versions.
struct View {
    manifest: Arc<Manifest>,
    replicas: Vec<Vec<Arc<Replica>>>,
    /// The trained IVF index, when queries are quantized here (`quantize_once`).
    coarse: Option<Arc<Box<dyn fathom_index::Index>>>,
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

/// One READY replica of a shard, as `/health` shows it.
#[derive(Debug, Clone)]
pub struct ReplicaStatus {
    /// Its member name.
    pub member: String,
    /// Its gRPC address.
    pub addr: String,
    /// Requests sent to it and not answered yet.
    pub outstanding: usize,
}

/// Router-wide counters, for `/metrics`.
#[derive(Default)]
pub struct RouterStats {
    /// Per-shard latency of the calls to searchers.
    pub latencies: Latencies,
    /// Second requests sent because the first replica was slow.
    pub hedges: AtomicU64,
    /// Requests sent again to another replica after one failed.
    pub retries: AtomicU64,
    /// Per shard: a moving average of the answer time per query, in microseconds.
    per_query_us: Mutex<HashMap<u32, f64>>,
    /// Shard requests started, to rotate among equally loaded replicas.
    turns: AtomicUsize,
}

impl RouterStats {
    /// Records a successful call to `shard` for `nq` queries that took `took`.
    fn observe(&self, shard: u32, took: Duration, nq: usize) {
        let x = took.as_secs_f64() * 1e6 / nq.max(1) as f64;
        let mut m = self.per_query_us.lock().unwrap_or_else(|e| e.into_inner());
        let avg = m.entry(shard).or_insert(x);
        *avg = 0.9 * *avg + 0.1 * x;
    }

    /// How long `shard` usually takes for `nq` queries (zero before any answer).
    fn usual(&self, shard: u32, nq: usize) -> Duration {
        let m = self.per_query_us.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&shard).map_or(Duration::ZERO, |us| {
            Duration::from_secs_f64((us * nq as f64 / 1e6).min(3600.0))
        })
    }
}

/// The router's link to etcd, as `/health` reports it.
#[derive(Debug, Clone, Default)]
pub struct ControlStatus {
    /// Whether the last read of etcd succeeded.
    pub etcd_ok: bool,
    /// When etcd last answered.
    pub last_ok: Option<Instant>,
    /// What went wrong last (etcd, or the object store while loading a manifest).
    pub last_error: Option<String>,
    /// The version etcd says to serve.
    pub pointer: Option<u64>,
    /// The fewest READY replicas of any shard of the served version.
    pub min_replicas: usize,
    /// Whether every shard of the served version is READY on exactly the members
    /// rendezvous hashing assigns it (no move in progress).
    pub settled: bool,
}

/// Fans searches out over the searchers of a sharded index: a fixed set (`--searchers`,
/// `--local`), or the READY replicas etcd lists, followed as they change.
pub struct Router {
    config: RouterConfig,
    objects: Objects,
    etcd: Option<Etcd>,
    view: RwLock<Option<Arc<View>>>,
    /// Replicas by address, reused across views (their clients and load counts).
    replicas: Mutex<HashMap<String, Arc<Replica>>>,
    manifests: Mutex<BTreeMap<u64, Arc<Manifest>>>,
    /// Trained indexes by SHA-256, for `quantize_once`.
    coarse: Mutex<HashMap<String, Arc<Box<dyn fathom_index::Index>>>>,
    control: Mutex<ControlStatus>,
    /// Counters for `/metrics`.
    pub stats: RouterStats,
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

/// Why a shard's answer could not be had, and whether the request itself is at fault
/// (every replica would refuse it the same way).
struct ShardFailure {
    why: String,
    request_error: bool,
}

impl Router {
    /// Sets the router up. With fixed searchers it reads the manifest and needs a
    /// searcher for every shard (they need not be up yet, see [`Router::health`]); with
    /// etcd it reads the cluster once (serving once some version has every shard READY)
    /// and [`Router::follow`] keeps it current.
    pub async fn open(config: &RouterConfig) -> Result<Self> {
        let given = [
            config.local_cache.is_some(),
            !config.searchers.is_empty(),
            config.etcd.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(Error::invalid(
                "a router needs exactly one source of searchers: fixed searchers, a local \
                 cache (every shard in this process), or etcd",
            ));
        }
        let objects = Objects::open(&config.store)?;
        let etcd = match &config.etcd {
            Some(e) => Some(Etcd::connect(e, Duration::from_secs(1))?),
            None => None,
        };
        let router = Router {
            config: config.clone(),
            objects,
            etcd,
            view: RwLock::new(None),
            replicas: Mutex::default(),
            manifests: Mutex::default(),
            coarse: Mutex::default(),
            control: Mutex::default(),
            stats: RouterStats::default(),
        };
        if router.etcd.is_some() {
            router.refresh().await;
            return Ok(router);
        }
        let m = Arc::new(manifest::load(&router.objects, &config.name, config.version).await?);
        let replicas = match &config.local_cache {
            Some(cache) => router.local_replicas(&m, cache).await?,
            None => router.fixed_replicas(&m)?,
        };
        let coarse = router.coarse_of(&m).await?;
        *router.view.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(View {
            manifest: m,
            replicas,
            coarse,
        }));
        Ok(router)
    }

    /// With etcd: re-reads the cluster every `poll` until the router is dropped (the task
    /// holds only a weak reference).
    pub fn follow(self: &Arc<Self>) {
        if self.etcd.is_none() {
            return;
        }
        let weak = Arc::downgrade(self);
        let poll = self.config.poll;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                let Some(router) = weak.upgrade() else { break };
                router.refresh().await;
            }
        });
    }

    fn current(&self) -> Option<Arc<View>> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The manifest served, once some version is.
    pub fn manifest(&self) -> Option<Arc<Manifest>> {
        self.current().map(|v| v.manifest.clone())
    }

    /// The collection served.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The link to etcd (default values without etcd).
    pub fn control(&self) -> ControlStatus {
        self.control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether etcd drives this router.
    pub fn follows_etcd(&self) -> bool {
        self.etcd.is_some()
    }

    fn note_error(&self, e: String) {
        let mut c = self.control.lock().unwrap_or_else(|e| e.into_inner());
        if c.last_error.as_ref() != Some(&e) {
            eprintln!("fathom router: {e} (serving on the last view)");
        }
        c.last_error = Some(e);
    }

    async fn manifest_version(&self, v: u64) -> Result<Arc<Manifest>> {
        if let Some(m) = self
            .manifests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&v)
        {
            return Ok(m.clone());
        }
        let m = Arc::new(manifest::load(&self.objects, &self.config.name, Some(v)).await?);
        self.manifests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(v, m.clone());
        Ok(m)
    }

    async fn coarse_of(&self, m: &Manifest) -> Result<Option<Arc<Box<dyn fathom_index::Index>>>> {
        if !self.config.quantize_once {
            return Ok(None);
        }
        let sha = &m.trained.sha256;
        if let Some(c) = self
            .coarse
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sha)
        {
            return Ok(Some(c.clone()));
        }
        let c = coarse_quantizer(&self.objects, m).await?;
        if let Some(c) = &c {
            self.coarse
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(sha.clone(), c.clone());
        }
        Ok(c)
    }

    /// The replica at `addr`, connected lazily and kept for later views.
    fn replica(&self, member: &str, addr: &str) -> Result<Arc<Replica>> {
        let mut all = self.replicas.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = all.get(addr).filter(|r| r.member == member) {
            return Ok(r.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(rpc_err)?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        let client = SearcherClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let r = Arc::new(Replica {
            member: member.to_string(),
            addr: addr.to_string(),
            via: Via::Remote(client),
            outstanding: AtomicUsize::new(0),
            avoid_until: Mutex::new(None),
        });
        all.insert(addr.to_string(), r.clone());
        Ok(r)
    }

    /// Reads etcd and moves to the published version once every one of its shards has a
    /// READY replica (keeping the current version until then); otherwise refreshes the
    /// current version's replicas. When etcd or the object store fails, the view stays.
    async fn refresh(&self) {
        let Some(etcd) = &self.etcd else { return };
        let cluster = match ClusterView::read(etcd, &self.config.name).await {
            Ok(c) => c,
            Err(e) => {
                self.control
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .etcd_ok = false;
                self.note_error(e.to_string());
                return;
            }
        };
        {
            let mut c = self.control.lock().unwrap_or_else(|e| e.into_inner());
            c.etcd_ok = true;
            c.last_ok = Some(Instant::now());
            c.pointer = cluster.pointer;
        }
        let current = self.current();
        let mut serve = None;
        if let Some(p) = cluster.pointer.or(self.config.version) {
            match self.manifest_version(p).await {
                Ok(m) if cluster.min_replicas(&m) >= 1 => serve = Some(m),
                Ok(_) => {}
                Err(e) => self.note_error(e.to_string()),
            }
        }
        let Some(m) = serve.or_else(|| current.as_ref().map(|v| v.manifest.clone())) else {
            return;
        };
        let mut replicas = Vec::with_capacity(m.shards.len());
        for s in 0..m.shards.len() as u32 {
            let mut of_shard = Vec::new();
            for member in cluster.ready_members(&m, s) {
                match self.replica(member, &cluster.members[member].addr) {
                    Ok(r) => of_shard.push(r),
                    Err(e) => self.note_error(format!("member {member}: {e}")),
                }
            }
            replicas.push(of_shard);
        }
        let coarse = match &current {
            Some(v) if v.manifest.version == m.version => v.coarse.clone(),
            _ => match self.coarse_of(&m).await {
                Ok(c) => c,
                Err(e) => {
                    // Without its quantizer the new version cannot be served yet.
                    self.note_error(e.to_string());
                    return;
                }
            },
        };
        if current
            .as_ref()
            .is_some_and(|v| v.manifest.version != m.version)
        {
            eprintln!(
                "fathom router: serving {} v{} (every shard has a READY replica)",
                m.name, m.version
            );
        }
        let members = cluster.member_names();
        let assignment = crate::assign::assignment(
            &m.name,
            m.shards.len() as u32,
            &members,
            self.config.replication.max(1),
        );
        let settled = (0..m.shards.len() as u32).all(|s| {
            let mut owners = assignment[s as usize].clone();
            let mut ready = cluster.ready_members(&m, s);
            owners.sort_unstable();
            ready.sort_unstable();
            owners == ready
        });
        {
            let mut c = self.control.lock().unwrap_or_else(|e| e.into_inner());
            c.min_replicas = replicas.iter().map(Vec::len).min().unwrap_or(0);
            c.settled = settled;
        }
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(View {
            manifest: m,
            replicas,
            coarse,
        }));
    }

    /// Asks every replica of every shard what it serves (each within `timeout`); a shard
    /// without any replica is listed once, not ok.
    pub async fn health(&self, timeout: Duration) -> Vec<ShardHealth> {
        let Some(view) = self.current() else {
            return Vec::new();
        };
        let m = &view.manifest;
        let mut asks = Vec::new();
        for (s, replicas) in view.replicas.iter().enumerate() {
            if replicas.is_empty() {
                asks.push(futures::future::Either::Left(async move {
                    ShardHealth {
                        shard: s as u32,
                        searcher: String::new(),
                        ok: false,
                        detail: "no READY replica".into(),
                    }
                }));
                continue;
            }
            for r in replicas {
                asks.push(futures::future::Either::Right(async move {
                    let (ok, detail) = match r.health(timeout).await {
                        Err(e) => (false, e),
                        Ok(h) => judge_health(&h, m, s as u32),
                    };
                    ShardHealth {
                        shard: s as u32,
                        searcher: r.addr.clone(),
                        ok,
                        detail,
                    }
                }));
            }
        }
        futures::future::join_all(asks).await
    }

    /// The READY replicas of each shard of the served version, by shard.
    pub fn replicas(&self) -> Vec<(u32, Vec<ReplicaStatus>)> {
        let Some(view) = self.current() else {
            return Vec::new();
        };
        view.replicas
            .iter()
            .enumerate()
            .map(|(s, rs)| {
                (
                    s as u32,
                    rs.iter()
                        .map(|r| ReplicaStatus {
                            member: r.member.clone(),
                            addr: r.addr.clone(),
                            outstanding: r.outstanding.load(Ordering::Relaxed),
                        })
                        .collect(),
                )
            })
            .collect()
    }

    /// Searches `queries` (rows of the manifest's dimension) on every shard of one
    /// version, waiting at most `deadline`, and merges what arrived.
    pub async fn search(
        &self,
        queries: &[f32],
        k: usize,
        params: ShardParams,
        deadline: Duration,
    ) -> Result<RoutedResult> {
        let view = self.current().ok_or_else(|| {
            Error::invalid(format!(
                "{} is not served yet: no published version has a READY replica of every shard",
                self.config.name
            ))
        })?;
        let m = &*view.manifest;
        let d = m.d as usize;
        let nq = fathom_core::check::nonempty_finite("query", queries, d)?;
        fathom_core::check::k(k)?;
        let until = Instant::now() + deadline;
        // The coarse step once, for every shard.
        let (nprobe, coarse_ids, coarse_distances) = match &view.coarse {
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
        let asks = (0..m.shards.len()).map(|s| {
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
            let view = &view;
            async move {
                let resp = self.search_shard(view, s, req, until).await?;
                check_answer(resp, s as u32, m.version, nq, k).map_err(|why| ShardFailure {
                    why,
                    request_error: false,
                })
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
                Err(f) if f.request_error => return Err(Error::invalid(f.why)),
                Err(f) => missing.push((s as u32, f.why)),
            }
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

    /// One shard's answer from one of its replicas: the least loaded first (replicas
    /// that failed or were slow lately last), a hedge to the next after the hedge delay,
    /// the next at once when one fails; the first answer wins and the rest are cancelled.
    async fn search_shard(
        &self,
        view: &View,
        s: usize,
        req: pb::SearchRequest,
        until: Instant,
    ) -> std::result::Result<pb::SearchResponse, ShardFailure> {
        use futures::StreamExt;
        let fail = |why: String| ShardFailure {
            why,
            request_error: false,
        };
        let total_ms = until.saturating_duration_since(Instant::now()).as_millis();
        let mut order: Vec<&Arc<Replica>> = view.replicas[s].iter().collect();
        if order.is_empty() {
            return Err(fail("no READY replica".into()));
        }
        // Spread ties over replicas: rotate by a per-request offset before the stable sort.
        let turn = self.stats.turns.fetch_add(1, Ordering::Relaxed);
        let n = order.len();
        order.rotate_left(turn % n);
        order.sort_by_key(|r| (r.avoided(), r.outstanding.load(Ordering::Relaxed)));
        let launch = |r: &Arc<Replica>| {
            let (r, req) = (r.clone(), req.clone());
            let left = until.saturating_duration_since(Instant::now());
            async move {
                let t = Instant::now();
                let out = r.search(req, left).await;
                (r, out, t.elapsed())
            }
        };
        let mut running = futures::stream::FuturesUnordered::new();
        running.push(launch(order[0]));
        let mut next = 1;
        let mut errors = Vec::new();
        // Hedge after the configured delay, or after twice this shard's usual time for
        // this many queries when that is longer (a big batch is slow, not stuck).
        let nq = req.queries.len() / (req.d as usize).max(1);
        let hedge_after = self
            .config
            .hedge
            .map(|h| h.max(2 * self.stats.usual(s as u32, nq)));
        let hedge = tokio::time::sleep(hedge_after.unwrap_or(Duration::MAX / 4));
        tokio::pin!(hedge);
        let mut hedged = false;
        let deadline = tokio::time::sleep_until(until.into());
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                Some((r, out, took)) = running.next() => {
                    self.stats.latencies.record(s as u32, took, out.is_ok());
                    if out.is_ok() {
                        self.stats.observe(s as u32, took, nq);
                    }
                    match out {
                        Ok(resp) => return Ok(resp),
                        Err(st) if st.code() == tonic::Code::InvalidArgument => {
                            return Err(ShardFailure { why: describe_status(&st), request_error: true });
                        }
                        Err(st) => {
                            r.avoid_for(Duration::from_secs(1));
                            errors.push(format!("{} ({}): {}", r.member, r.addr, describe_status(&st)));
                            if next < order.len() {
                                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                                running.push(launch(order[next]));
                                next += 1;
                            } else if running.is_empty() {
                                return Err(fail(errors.join("; ")));
                            }
                        }
                    }
                }
                _ = &mut hedge, if !hedged && next < order.len() => {
                    hedged = true;
                    self.stats.hedges.fetch_add(1, Ordering::Relaxed);
                    // The first replica was slow: prefer others for a while.
                    order[0].avoid_for(Duration::from_secs(1));
                    running.push(launch(order[next]));
                    next += 1;
                }
                _ = &mut deadline => {
                    let mut why = format!("no answer within the deadline of {total_ms} ms");
                    if !errors.is_empty() {
                        why = format!("{why} ({})", errors.join("; "));
                    }
                    return Err(fail(why));
                }
            }
        }
    }

    /// One replica per shard loaded in this process (from `cache`).
    async fn local_replicas(
        &self,
        m: &Manifest,
        cache: &std::path::Path,
    ) -> Result<Vec<Vec<Arc<Replica>>>> {
        let all = SearcherConfig {
            store: self.config.store.clone(),
            name: m.name.clone(),
            version: Some(m.version),
            shards: (0..m.shards.len() as u32).collect(),
            cache: cache.to_path_buf(),
        };
        let local = Arc::new(Searcher::load(&all).await?);
        let replica = Arc::new(Replica {
            member: "local".into(),
            addr: "local".into(),
            via: Via::Local(local),
            outstanding: AtomicUsize::new(0),
            avoid_until: Mutex::new(None),
        });
        Ok(vec![vec![replica]; m.shards.len()])
    }

    /// The fixed searchers of `config.searchers`; every shard needs at least one, and a
    /// shard named more than once has those replicas.
    fn fixed_replicas(&self, m: &Manifest) -> Result<Vec<Vec<Arc<Replica>>>> {
        let n = m.shards.len() as u32;
        let mut replicas: Vec<Vec<Arc<Replica>>> = vec![Vec::new(); n as usize];
        for (s, a) in &self.config.searchers {
            let slot = replicas.get_mut(*s as usize).ok_or_else(|| {
                Error::invalid(format!(
                    "--searchers names shard {s}; manifest {} v{} has shards 0..{n}",
                    m.name, m.version
                ))
            })?;
            if slot.iter().any(|r| r.addr == *a) {
                return Err(Error::invalid(format!(
                    "--searchers names {a} for shard {s} twice"
                )));
            }
            slot.push(self.replica(a, a)?);
        }
        let missing: Vec<u32> = (0..n)
            .filter(|&s| replicas[s as usize].is_empty())
            .collect();
        if !missing.is_empty() {
            return Err(Error::invalid(format!(
                "--searchers gives no searcher for shards {missing:?} of {} v{} (shards 0..{n})",
                m.name, m.version
            )));
        }
        Ok(replicas)
    }
}

/// Whether a searcher's health answer says it serves `shard` of `m`.
fn judge_health(h: &pb::HealthResponse, m: &Manifest, shard: u32) -> (bool, String) {
    let entry = &m.shards[shard as usize];
    if h.name != m.name {
        return (false, format!("serves {}, not {}", h.name, m.name));
    }
    match h
        .shards
        .iter()
        .find(|x| x.shard == shard && x.manifest_version == m.version)
    {
        None => (
            false,
            format!("does not serve shard {shard} of v{}", m.version),
        ),
        Some(x) if x.sha256 != entry.file.sha256 => (
            false,
            format!("serves shard file {}, not {}", x.sha256, entry.file.sha256),
        ),
        Some(x) => (true, format!("{} vectors, {}", x.ntotal, x.description)),
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
