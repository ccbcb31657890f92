//! A searcher under etcd membership: it registers under a lease, works out its shards of
//! the published manifest by rendezvous hashing over the live members (`crate::assign`), downloads and
//! verifies them, and marks each READY; then it keeps its lease alive and follows the
//! cluster, one step per poll:
//!
//! - a shard newly its own is loaded while it serves, then marked READY;
//! - a shard no longer its own is dropped only once every one of its new owners has it
//!   READY — so a shard becomes READY elsewhere before the old owner lets go;
//! - shards of an older manifest are dropped once every shard of the published one has
//!   its full replication READY and a grace period has passed (routers switch as soon as
//!   every shard has one READY replica, so none still sends to the old version then).
//!
//! When etcd is unreachable it keeps serving what it holds; when its lease expired (it
//! was stopped, or cut off, for longer than the TTL) it registers anew and re-announces
//! what it holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fathom_core::{Error, Result};

use crate::assign;
use crate::cache;
use crate::control::{self, ClusterView, MemberInfo};
use crate::etcd::Etcd;
use crate::manifest::{self, Manifest};
use crate::objects::Objects;
use crate::searcher::{Searcher, describe_load};

/// How a searcher takes part in a cluster.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// Object store URL.
    pub store: String,
    /// Collection (manifest) name.
    pub name: String,
    /// This searcher's name among the members (unique in the cluster).
    pub member: String,
    /// The gRPC address routers reach it at, `host:port`.
    pub addr: String,
    /// Local cache directory.
    pub cache: PathBuf,
    /// Copies of each shard the cluster keeps.
    pub replication: usize,
    /// Lease time to live: a member silent for this long is gone.
    pub lease_ttl: Duration,
    /// How often it reads the cluster.
    pub poll: Duration,
    /// How long a dropped shard keeps answering after its READY key is removed (routers
    /// read the cluster at least this often), and how long the member list must stay the
    /// same before newly assigned shards are loaded.
    pub grace: Duration,
}

type LoadResult = (u64, u32, Result<(crate::cache::LoadedShard, String)>);

/// What a member knows about its place in the cluster, for its `/health`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MemberStatus {
    /// Its name.
    pub member: String,
    /// Whether it holds a live lease.
    pub registered: bool,
    /// Whether the last read of etcd succeeded.
    pub etcd_ok: bool,
    /// The last error (etcd, the object store, a load).
    pub last_error: Option<String>,
    /// The published manifest version.
    pub published_version: Option<u64>,
    /// Live members.
    pub members: usize,
    /// Shards of the published version assigned to it.
    pub assigned: Vec<u32>,
    /// `(version, shard)` being loaded.
    pub loading: Vec<(u64, u32)>,
}

/// A searcher's membership, driven by [`Member::run`].
pub struct Member {
    cfg: MemberConfig,
    etcd: Etcd,
    objects: Objects,
    searcher: Arc<Searcher>,
    lease: i64,
    renewed: Instant,
    /// READY keys written under the current lease.
    announced: BTreeSet<(u64, u32)>,
    loading: BTreeSet<(u64, u32)>,
    loaded_tx: tokio::sync::mpsc::UnboundedSender<LoadResult>,
    loaded_rx: tokio::sync::mpsc::UnboundedReceiver<LoadResult>,
    manifests: BTreeMap<u64, Arc<Manifest>>,
    /// Shards whose READY key is gone, removed from the searcher at the instant given.
    dropping: BTreeMap<(u64, u32), Instant>,
    /// Since when the published version has had every shard fully replicated.
    replicated_since: Option<(u64, Instant)>,
    last_error: Option<String>,
    /// Loads that failed, and when: retried after a pause.
    failed: BTreeMap<(u64, u32), Instant>,
    /// The member list last read, and since when it has been so.
    members_seen: (Vec<String>, Instant),
    status: Arc<std::sync::Mutex<MemberStatus>>,
}

fn log(cfg: &MemberConfig, line: impl std::fmt::Display) {
    eprintln!("fathom searcher {}: {line}", cfg.member);
}

impl Member {
    /// Sets up membership for `searcher` (nothing is written to etcd until it runs).
    pub fn new(cfg: MemberConfig, etcd: Etcd, searcher: Arc<Searcher>) -> Result<Self> {
        control::check_member(&cfg.member)?;
        crate::builder::check_name(&cfg.name)?;
        if cfg.replication == 0 {
            return Err(Error::invalid("--replication must be at least 1"));
        }
        let objects = Objects::open(&cfg.store)?;
        let (loaded_tx, loaded_rx) = tokio::sync::mpsc::unbounded_channel();
        Ok(Member {
            cfg,
            etcd,
            objects,
            searcher,
            lease: 0,
            renewed: Instant::now(),
            announced: BTreeSet::new(),
            loading: BTreeSet::new(),
            loaded_tx,
            loaded_rx,
            manifests: BTreeMap::new(),
            dropping: BTreeMap::new(),
            replicated_since: None,
            last_error: None,
            failed: BTreeMap::new(),
            members_seen: (Vec::new(), Instant::now()),
            status: Default::default(),
        })
    }

    /// Its status, kept current while it runs.
    pub fn status(&self) -> Arc<std::sync::Mutex<MemberStatus>> {
        self.status.clone()
    }

    fn set_status(&self, f: impl FnOnce(&mut MemberStatus)) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.member = self.cfg.member.clone();
        s.registered = self.lease != 0;
        s.loading = self.loading.iter().copied().collect();
        f(&mut s);
    }

    /// Follows the cluster until `stop` completes, then revokes the lease (its keys vanish
    /// at once, so routers stop sending here before the process ends).
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.step().await {
                let e = e.to_string();
                if self.last_error.as_ref() != Some(&e) {
                    log(&self.cfg, format!("{e} (serving what it holds)"));
                    self.last_error = Some(e.clone());
                }
                self.set_status(|s| {
                    s.etcd_ok = false;
                    s.last_error = Some(e);
                });
            } else if self.last_error.take().is_some() {
                log(&self.cfg, "etcd reachable again");
            }
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(self.cfg.poll) => {}
                Some(done) = self.loaded_rx.recv() => self.loaded(done).await,
            }
        }
        if self.lease != 0 {
            let _ = self.etcd.revoke(self.lease).await;
        }
    }

    /// Keeps the lease, registering anew when it is gone.
    async fn keep_lease(&mut self) -> Result<()> {
        if self.lease != 0 && self.renewed.elapsed() >= self.cfg.lease_ttl / 3 {
            if self.etcd.keep_alive(self.lease).await? {
                self.renewed = Instant::now();
            } else {
                log(&self.cfg, "lease expired; registering again");
                self.lease = 0;
            }
        }
        if self.lease == 0 {
            let lease = self.etcd.grant(self.cfg.lease_ttl).await?;
            let info = MemberInfo {
                addr: self.cfg.addr.clone(),
                pid: std::process::id(),
            };
            let json = serde_json::to_vec(&info).map_err(|e| Error::invalid(e.to_string()))?;
            self.etcd
                .put(
                    &control::member_key(&self.cfg.name, &self.cfg.member),
                    &json,
                    lease,
                )
                .await?;
            self.lease = lease;
            self.renewed = Instant::now();
            self.announced.clear();
        }
        Ok(())
    }

    async fn manifest(&mut self, version: u64) -> Result<Arc<Manifest>> {
        if let Some(m) = self.manifests.get(&version) {
            return Ok(m.clone());
        }
        let m = Arc::new(manifest::load(&self.objects, &self.cfg.name, Some(version)).await?);
        self.manifests.insert(version, m.clone());
        Ok(m)
    }

    async fn announce(&mut self, version: u64, shard: u32) -> Result<()> {
        if self.announced.contains(&(version, shard)) || self.lease == 0 {
            return Ok(());
        }
        let sha = self.searcher.held_sha(version, shard).unwrap_or_default();
        self.etcd
            .put(
                &control::ready_key(&self.cfg.name, &self.cfg.member, version, shard),
                sha.as_bytes(),
                self.lease,
            )
            .await?;
        self.announced.insert((version, shard));
        Ok(())
    }

    /// Stops announcing a shard; it goes from the searcher after the grace period.
    async fn withdraw(&mut self, version: u64, shard: u32, why: &str) {
        if self.dropping.contains_key(&(version, shard)) {
            return;
        }
        let key = control::ready_key(&self.cfg.name, &self.cfg.member, version, shard);
        if self.etcd.delete(&key).await.is_err() {
            // Retried next step.
            return;
        }
        self.announced.remove(&(version, shard));
        log(
            &self.cfg,
            format!("v{version} shard {shard}: dropping ({why})"),
        );
        self.dropping
            .insert((version, shard), Instant::now() + self.cfg.grace);
    }

    async fn step(&mut self) -> Result<()> {
        // Drops whose grace is over.
        let now = Instant::now();
        let due: Vec<(u64, u32)> = self
            .dropping
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| *k)
            .collect();
        for (v, s) in due {
            self.dropping.remove(&(v, s));
            self.searcher.remove(v, s);
        }
        self.keep_lease().await?;
        let view = ClusterView::read(&self.etcd, &self.cfg.name).await?;
        if !view.members.contains_key(&self.cfg.member) {
            // Our member key is gone though the lease renewed (say, deleted by hand).
            self.lease = 0;
            self.keep_lease().await?;
            return Ok(());
        }
        for (v, s) in self.searcher.held() {
            if !self.dropping.contains_key(&(v, s)) {
                self.announce(v, s).await?;
            }
        }
        let Some(p) = view.pointer else {
            return Ok(());
        };
        let m = self.manifest(p).await?;
        let members = view.member_names();
        let r = self.cfg.replication;
        let name = self.cfg.name.clone();
        let name = name.as_str();
        let assignment = assign::assignment(name, m.shards.len() as u32, &members, r);
        let mine: BTreeSet<u32> = (0..m.shards.len() as u32)
            .filter(|&s| assignment[s as usize].contains(&self.cfg.member.as_str()))
            .collect();
        self.set_status(|st| {
            st.etcd_ok = true;
            st.published_version = Some(p);
            st.members = members.len();
            st.assigned = mine.iter().copied().collect();
        });
        // Load what is newly ours — once the member list has been the same for the grace
        // period, so that searchers starting together do not each load every shard first.
        if self.members_seen.0 != members {
            self.members_seen = (
                members.iter().map(|m| m.to_string()).collect(),
                Instant::now(),
            );
        }
        let stable = self.members_seen.1.elapsed() >= self.cfg.grace;
        // One load at a time, the shard with the fewest READY copies first: a searcher's
        // disk, network and cores go to restoring one copy quickly, not to several slowly.
        let held: BTreeSet<(u64, u32)> = self.searcher.held().into_iter().collect();
        let next = mine
            .iter()
            .copied()
            .filter(|&s| {
                let backing_off = self
                    .failed
                    .get(&(p, s))
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(2));
                !held.contains(&(p, s)) && !self.loading.contains(&(p, s)) && !backing_off
            })
            .min_by_key(|&s| (view.ready_members(&m, s).len(), s));
        if let Some(s) = next.filter(|_| stable && self.loading.is_empty()) {
            self.start_load(m.clone(), s);
        }
        // Let go of what others now hold.
        for &(v, s) in &held {
            if v != p || mine.contains(&s) {
                continue;
            }
            let owners = &assignment[s as usize];
            let ready = view.ready_members(&m, s);
            if owners.iter().all(|o| ready.contains(o)) {
                self.withdraw(v, s, "its owners have it READY").await;
            }
        }
        // Let go of older versions once the published one is fully replicated.
        let want = r.min(members.len());
        if view.min_replicas(&m) >= want {
            let since = match self.replicated_since {
                Some((v, t)) if v == p => t,
                _ => {
                    self.replicated_since = Some((p, Instant::now()));
                    Instant::now()
                }
            };
            if since.elapsed() >= self.cfg.grace {
                for &(v, s) in &held {
                    if v != p {
                        self.withdraw(v, s, "a newer version is fully READY").await;
                    }
                }
            }
        } else {
            self.replicated_since = None;
        }
        Ok(())
    }

    /// Downloads, verifies and opens `shard` of `m` on a thread of its own, with its own
    /// single-threaded runtime and store client: the download's connection is then driven
    /// by that thread alone, not queued behind the searches the service's runtime is busy
    /// with (sharing it, a 1.3 GB shard came in at ~5 MB/s beside a saturating load).
    fn start_load(&mut self, m: Arc<Manifest>, shard: u32) {
        self.loading.insert((m.version, shard));
        let (store, dir, tx) = (
            self.cfg.store.clone(),
            self.cfg.cache.clone(),
            self.loaded_tx.clone(),
        );
        log(
            &self.cfg,
            format!("v{} shard {shard}: assigned here; loading", m.version),
        );
        let version = m.version;
        let spawned = std::thread::Builder::new()
            .name(format!("fathom-load-{shard}"))
            .spawn(move || {
                let entry = &m.shards[shard as usize];
                let out = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::invalid(format!("cannot start a runtime: {e}")))
                    .and_then(|rt| {
                        rt.block_on(async {
                            let objects = Objects::open(&store)?;
                            cache::fetch(&objects, &dir, &entry.file).await
                        })
                    })
                    .and_then(|(path, how)| {
                        let loaded = cache::open_shard(&path, entry, &m)?;
                        let line = describe_load(entry, how, loaded.mapped);
                        Ok((loaded, line))
                    });
                let _ = tx.send((m.version, shard, out));
            });
        if let Err(e) = spawned {
            log(&self.cfg, format!("cannot start a loading thread: {e}"));
            self.loading.remove(&(version, shard));
        }
    }

    async fn loaded(&mut self, (v, s, out): LoadResult) {
        self.loading.remove(&(v, s));
        match out {
            Ok((shard, line)) => {
                let Some(m) = self.manifests.get(&v).cloned() else {
                    return;
                };
                self.failed.remove(&(v, s));
                self.searcher.insert(m, shard);
                self.dropping.remove(&(v, s));
                match self.announce(v, s).await {
                    Ok(()) => log(&self.cfg, format!("v{v} {line}; READY")),
                    Err(e) => log(
                        &self.cfg,
                        format!("v{v} {line}; READY not written yet: {e}"),
                    ),
                }
            }
            Err(e) => {
                self.failed.insert((v, s), Instant::now());
                log(
                    &self.cfg,
                    format!("v{v} shard {s}: loading failed: {e} (retried in 2 s)"),
                )
            }
        }
    }
}
