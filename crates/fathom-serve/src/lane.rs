//! A collection's search traffic: admission to a bounded queue with deadlines (load
//! shedding), gathering of concurrent single-vector searches into one batched search,
//! and degradation under pressure.
//!
//! - **Admission.** Each collection counts the queries admitted and not yet answered. A
//!   request is refused at once (the API answers 503 with `Retry-After`) when that count
//!   has reached `max_queue`, or when the expected wait — queries ahead × the measured
//!   time per query ÷ search slots — exceeds its deadline; one still waiting for a
//!   search slot when its deadline passes is refused then. Nothing waits past its
//!   deadline for an answer it would no longer want.
//! - **Batching.** Single-vector searches without filters arrive in a collection's
//!   pending list; the first starts a gatherer task that waits `batch_window` (or until
//!   `max_batch` are pending), takes a search slot, and runs all pending searches with the
//!   same parameters as one search of many queries (one GEMM for Flat, shared list scans
//!   for IVF), each getting its own `top_k` of the results. The gatherer is a task of its
//!   own, so a client leaving does not strand the others.
//! - **Degradation** (`degrade`): while a collection's queue is at least half full, IVF
//!   and HNSW searches run with half their `nprobe` / `efSearch` and say `degraded`.
//!
//! The lane's mutex guards only its pending list, never held across a search or an await;
//! it is taken after no other lock and nothing is taken while it is held (docs/SERVE.md).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fathom_core::Error;
use tokio::sync::{Notify, Semaphore, oneshot};

use crate::collection::{CANCELLED, Collection, Hit, SearchOptions};

/// How searches are admitted, batched and degraded (the server's flags).
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    /// How long a single-vector search waits for others to batch with (0: no batching).
    pub batch_window: Duration,
    /// Most queries in one batch (1: no batching).
    pub max_batch: usize,
    /// Most queries admitted and unanswered per collection; more are refused (503).
    pub max_queue: usize,
    /// The deadline of a search that names none.
    pub deadline: Duration,
    /// Lower nprobe / efSearch while a queue is at least half full.
    pub degrade: bool,
}

impl Default for TrafficConfig {
    /// Batching within 500 µs up to 64 queries, a queue of 1024 queries per collection,
    /// a 10 s deadline, no degradation.
    fn default() -> Self {
        TrafficConfig {
            batch_window: Duration::from_micros(500),
            max_batch: 64,
            max_queue: 1024,
            deadline: Duration::from_secs(10),
            degrade: false,
        }
    }
}

/// What every collection's lane shares: the configuration and the search slots (one per
/// core: more searches at once would only share the cores and lengthen each).
pub struct Traffic {
    /// The configuration.
    pub config: TrafficConfig,
    /// Searches running at once.
    pub slots: Arc<Semaphore>,
    /// The number of slots.
    pub slot_count: usize,
    /// Searches refused by admission (queue full or deadline).
    pub shed: AtomicU64,
    /// Searches run degraded.
    pub degraded: AtomicU64,
    /// Batched searches run, and the queries they held.
    pub batches: AtomicU64,
    /// Queries answered through batches.
    pub batched_queries: AtomicU64,
}

impl Traffic {
    /// Shared state for `config` with `slots` searches at once.
    pub fn new(config: TrafficConfig, slots: usize) -> Self {
        Traffic {
            config,
            slots: Arc::new(Semaphore::new(slots.max(1))),
            slot_count: slots.max(1),
            shed: AtomicU64::new(0),
            degraded: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            batched_queries: AtomicU64::new(0),
        }
    }
}

/// Why a search got no answer.
#[derive(Debug)]
pub enum Refusal {
    /// Shed: the queue is full or the deadline cannot be met; retry after this many
    /// seconds.
    Shed {
        /// Seconds to wait before retrying.
        retry_after_s: u64,
        /// What happened.
        why: String,
    },
    /// The search itself failed.
    Failed(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Failed(e)
    }
}

struct Pending {
    query: Vec<f32>,
    opts: SearchOptions,
    deadline: Instant,
    tx: oneshot::Sender<std::result::Result<Vec<Hit>, Refusal>>,
}

#[derive(Default)]
struct Gather {
    items: Vec<Pending>,
    /// A gatherer task is on its way to take `items`.
    leader: bool,
}

/// One collection's traffic state.
#[derive(Default)]
pub struct Lane {
    /// Queries admitted and not yet answered.
    queued: AtomicUsize,
    /// Measured search time per query, nanoseconds (moving average).
    per_query_ns: AtomicU64,
    pending: Mutex<Gather>,
    full: Notify,
}

/// A place in a lane's queue, given back when dropped.
pub struct Ticket<'a> {
    lane: &'a Lane,
    n: usize,
    /// The search should run degraded.
    pub degraded: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.lane.queued.fetch_sub(self.n, Ordering::SeqCst);
    }
}

impl Lane {
    /// Queries admitted and not yet answered.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// The expected wait behind `ahead` queries with `slots` searching at once.
    fn expected_wait(&self, ahead: usize, slots: usize) -> Duration {
        let per = self.per_query_ns.load(Ordering::Relaxed);
        Duration::from_nanos((ahead as u64).saturating_mul(per) / slots.max(1) as u64)
    }

    fn record(&self, elapsed: Duration, queries: usize) {
        let per = (elapsed.as_nanos() / queries.max(1) as u128).min(u64::MAX as u128) as u64;
        let old = self.per_query_ns.load(Ordering::Relaxed);
        // A moving average over about the last 8 searches.
        let new = if old == 0 { per } else { (old * 7 + per) / 8 };
        self.per_query_ns.store(new, Ordering::Relaxed);
    }

    /// Admits `n` queries due by `deadline`, or says why not.
    pub fn admit(
        &self,
        t: &Traffic,
        n: usize,
        deadline: Instant,
    ) -> std::result::Result<Ticket<'_>, Refusal> {
        let ahead = self.queued.fetch_add(n, Ordering::SeqCst);
        let ticket = Ticket {
            lane: self,
            n,
            degraded: t.config.degrade && ahead * 2 >= t.config.max_queue,
        };
        let slots = t.slot_count;
        let wait = self.expected_wait(ahead, slots);
        let retry_after_s = wait.as_secs().clamp(1, 60);
        if ahead > 0 && ahead + n > t.config.max_queue {
            t.shed.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Shed {
                retry_after_s,
                why: format!(
                    "the collection's search queue is full ({ahead} queries waiting or \
                     running; the limit is {} — --max-queue)",
                    t.config.max_queue
                ),
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if ahead > 0 && wait > left {
            t.shed.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Shed {
                retry_after_s,
                why: format!(
                    "the search would wait about {} ms behind {ahead} queries; its deadline \
                     is {} ms away",
                    wait.as_millis(),
                    left.as_millis()
                ),
            });
        }
        if ticket.degraded {
            t.degraded.fetch_add(1, Ordering::Relaxed);
        }
        Ok(ticket)
    }
}

fn past_deadline(t: &Traffic) -> Refusal {
    t.shed.fetch_add(1, Ordering::Relaxed);
    Refusal::Shed {
        retry_after_s: 1,
        why: "the search waited for a free search slot past its deadline".into(),
    }
}

/// Lowers `opts`' nprobe / efSearch to half of what the index would use.
pub fn degrade(c: &Collection, opts: &mut SearchOptions) {
    let live = c.live.read().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = opts
        .nprobe
        .or_else(|| live.index.param("nprobe").map(|p| p as usize))
    {
        opts.nprobe = Some((p / 2).max(1));
    }
    if let Some(e) = opts
        .ef_search
        .or_else(|| live.index.param("efSearch").map(|e| e as usize))
    {
        opts.ef_search = Some((e / 2).max(opts.top_k).max(1));
    }
}

/// Runs `queries` on `c` in one search once a slot is free (or refuses when `deadline`
/// passes first), on the blocking pool; `go_on` says whether the client still wants it.
pub async fn search_many(
    c: Arc<Collection>,
    t: &Traffic,
    queries: Vec<f32>,
    opts: SearchOptions,
    deadline: Instant,
    go_on: impl Fn() -> bool + Send + 'static,
) -> std::result::Result<Vec<Vec<Hit>>, Refusal> {
    let nq = queries.len() / c.def.dim.max(1);
    let c2 = c.clone();
    on_search_slot(&c, t, nq, deadline, move || {
        c2.search_while(&queries, &opts, &go_on)
    })
    .await
}

/// Runs `work`, a search of `nq` queries in collection `c`, on the blocking pool once a
/// search slot is free (waiting at most until `deadline`), and records its latency.
pub async fn on_search_slot(
    c: &Arc<Collection>,
    t: &Traffic,
    nq: usize,
    deadline: Instant,
    work: impl FnOnce() -> fathom_core::Result<Vec<Vec<Hit>>> + Send + 'static,
) -> std::result::Result<Vec<Vec<Hit>>, Refusal> {
    let left = deadline.saturating_duration_since(Instant::now());
    let permit = tokio::time::timeout(left, t.slots.clone().acquire_owned())
        .await
        .map_err(|_| past_deadline(t))?
        .map_err(|e| Refusal::Failed(Error::invalid(format!("shutting down: {e}"))))?;
    let c = c.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let t0 = Instant::now();
        let r = work();
        c.lane.record(t0.elapsed(), nq);
        r
    })
    .await
    .map_err(|e| Refusal::Failed(Error::invalid(format!("search worker failed: {e}"))))?;
    Ok(joined?)
}

/// Searches one query through the collection's batch: it waits at most the batch window
/// for others to join, then runs with them as one search.
pub async fn search_one(
    c: &Arc<Collection>,
    t: &Arc<Traffic>,
    query: Vec<f32>,
    opts: SearchOptions,
    deadline: Instant,
) -> std::result::Result<Vec<Hit>, Refusal> {
    let (tx, rx) = oneshot::channel();
    let (lead, full) = {
        let mut g = c.lane.pending.lock().unwrap_or_else(|e| e.into_inner());
        g.items.push(Pending {
            query,
            opts,
            deadline,
            tx,
        });
        let lead = !g.leader;
        g.leader = true;
        (lead, g.items.len() >= t.config.max_batch)
    };
    if lead {
        tokio::spawn(gather(c.clone(), t.clone(), false));
    } else if full {
        c.lane.full.notify_one();
    }
    rx.await
        .unwrap_or_else(|_| Err(Refusal::Failed(Error::invalid(CANCELLED))))
}

/// The gatherer: waits for the window (unless `now`), takes a slot and the pending
/// searches, and runs them.
fn gather(
    c: Arc<Collection>,
    t: Arc<Traffic>,
    now: bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(gather_then_run(c, t, now))
}

async fn gather_then_run(c: Arc<Collection>, t: Arc<Traffic>, now: bool) {
    if !now {
        tokio::select! {
            _ = tokio::time::sleep(t.config.batch_window) => {}
            _ = c.lane.full.notified() => {}
        }
    }
    let permit = t.slots.clone().acquire_owned().await;
    let batch: Vec<Pending> = {
        let mut g = c.lane.pending.lock().unwrap_or_else(|e| e.into_inner());
        let take = g.items.len().min(t.config.max_batch.max(1));
        let batch: Vec<Pending> = g.items.drain(..take).collect();
        if g.items.is_empty() {
            g.leader = false;
        } else {
            // More than one batch is waiting: the next gatherer need not wait.
            tokio::spawn(gather(c.clone(), t.clone(), true));
        }
        batch
    };
    let Ok(permit) = permit else {
        for p in batch {
            let _ = p.tx.send(Err(Refusal::Failed(Error::invalid(CANCELLED))));
        }
        return;
    };
    let now_t = Instant::now();
    let (live, late): (Vec<Pending>, Vec<Pending>) =
        batch.into_iter().partition(|p| p.deadline > now_t);
    for p in late {
        let _ = p.tx.send(Err(past_deadline(&t)));
    }
    if live.is_empty() {
        return;
    }
    let t2 = t.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        run_batch(&c, &t2, live);
    })
    .await;
}

/// Runs gathered searches: those with the same parameters as one search with the largest
/// `top_k` among them, each answer cut to its own.
fn run_batch(c: &Collection, t: &Traffic, mut batch: Vec<Pending>) {
    batch.sort_by_key(|p| (p.opts.nprobe, p.opts.ef_search));
    while !batch.is_empty() {
        let key = (batch[0].opts.nprobe, batch[0].opts.ef_search);
        let split = batch
            .iter()
            .position(|p| (p.opts.nprobe, p.opts.ef_search) != key)
            .unwrap_or(batch.len());
        let group: Vec<Pending> = batch.drain(..split).collect();
        let k = group.iter().map(|p| p.opts.top_k).max().unwrap_or(1);
        let opts = SearchOptions {
            top_k: k,
            nprobe: key.0,
            ef_search: key.1,
            ..Default::default()
        };
        let queries: Vec<f32> = group.iter().flat_map(|p| p.query.iter().copied()).collect();
        let t0 = Instant::now();
        let result = c.search(&queries, &opts);
        c.lane.record(t0.elapsed(), group.len());
        t.batches.fetch_add(1, Ordering::Relaxed);
        t.batched_queries
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        match result {
            Ok(hits) => {
                for (p, hits) in group.into_iter().zip(hits) {
                    let _ =
                        p.tx.send(Ok(trim(hits, &p.opts, c.def.metric.is_similarity())));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for p in group {
                    let _ = p.tx.send(Err(Refusal::Failed(Error::invalid(msg.clone()))));
                }
            }
        }
    }
}

/// One request's share of a batch's answer: its own `top_k`, score bound and metadata
/// choice, ranks counted again.
fn trim(hits: Vec<Hit>, opts: &SearchOptions, similarity: bool) -> Vec<Hit> {
    hits.into_iter()
        .take(opts.top_k)
        .filter(|h| opts.keeps(h.score, similarity))
        .enumerate()
        .map(|(i, mut h)| {
            h.rank = i + 1;
            if opts.without_metadata {
                h.metadata = serde_json::Value::Null;
            }
            h
        })
        .collect()
}

/// Whether a search of `nq` queries with these options can join a batch: a single vector
/// without filters, with batching on.
pub fn batchable(t: &Traffic, nq: usize, opts: &SearchOptions) -> bool {
    nq == 1
        && t.config.max_batch > 1
        && !t.config.batch_window.is_zero()
        && opts.filter.is_none()
        && opts.filter_ids.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_sheds_past_the_queue_and_degrades_at_half() {
        let mut config = TrafficConfig {
            max_queue: 4,
            degrade: true,
            ..TrafficConfig::default()
        };
        let t = Traffic::new(config.clone(), 2);
        let lane = Lane::default();
        let far = Instant::now() + Duration::from_secs(60);
        let a = lane.admit(&t, 2, far).ok().unwrap();
        assert!(!a.degraded);
        let b = lane.admit(&t, 2, far).ok().unwrap();
        assert!(b.degraded, "half full");
        match lane.admit(&t, 1, far) {
            Err(Refusal::Shed { retry_after_s, why }) => {
                assert!(retry_after_s >= 1);
                assert!(why.contains("--max-queue"), "{why}");
            }
            _ => panic!("a full queue must shed"),
        }
        drop((a, b));
        assert_eq!(lane.queued(), 0);
        // A deadline the measured wait cannot meet is refused at once.
        config.degrade = false;
        let t = Traffic::new(config, 1);
        lane.per_query_ns.store(50_000_000, Ordering::Relaxed);
        let _a = lane.admit(&t, 1, far).ok().unwrap();
        let soon = Instant::now() + Duration::from_millis(10);
        match lane.admit(&t, 1, soon) {
            Err(Refusal::Shed { why, .. }) => assert!(why.contains("deadline"), "{why}"),
            _ => panic!("an unreachable deadline must shed"),
        }
        assert_eq!(t.shed.load(Ordering::Relaxed), 1);
    }
}
