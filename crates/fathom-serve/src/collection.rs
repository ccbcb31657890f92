//! A collection in memory: its index and the metadata of its live items, behind one
//! reader-writer lock so a search sees the index and the metadata of the same moment.
//!
//! Lock order (the whole service's is in docs/SERVE.md): a collection's `writer` mutex
//! before its `live` lock, and both before the service's database mutex.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use fathom_core::{Error, IdSelector, Idx, Result, SearchParams};
use fathom_index::{Index, index_factory};

use crate::filter::{Filter, IdBitmap, Payloads};
use crate::store::{CollectionDef, ItemId, Metric};

/// A live item's client id and metadata.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The client's id of the item.
    pub key: ItemId,
    /// Its metadata, JSON text.
    pub meta: String,
}

/// The index and metadata of one collection, always changed together.
pub struct Live {
    /// The index, holding the items' internal ids (see [`new_index`]).
    pub index: Box<dyn Index>,
    /// Every live item by internal id. An id is searchable only when it is here: ids
    /// deleted from an index that cannot remove them are filtered out.
    pub items: HashMap<Idx, Entry>,
    /// Internal id of each live item's client id.
    pub keys: HashMap<ItemId, Idx>,
    /// The live items' metadata, column by column, for filters.
    pub payloads: Payloads,
    /// Where the index was loaded from ("snapshot 3", "rebuilt from the database", …).
    pub source: String,
    /// Vectors in the index whose items were deleted (an index that cannot remove keeps
    /// them). While there are none, searches need no filter.
    pub hidden: usize,
}

impl Live {
    /// A collection state of `index` with no items yet.
    pub fn new(index: Box<dyn Index>, source: impl Into<String>) -> Live {
        Live {
            index,
            items: HashMap::new(),
            keys: HashMap::new(),
            payloads: Payloads::default(),
            source: source.into(),
            hidden: 0,
        }
    }

    /// Records a live item (the index holds its vector).
    pub fn insert(&mut self, id: Idx, key: ItemId, meta: String) {
        let parsed = serde_json::from_str(&meta).unwrap_or(serde_json::Value::Null);
        self.payloads.insert(id, &parsed);
        self.keys.insert(key.clone(), id);
        self.items.insert(id, Entry { key, meta });
    }

    /// Forgets a live item (the caller removes its vector from the index).
    pub fn remove(&mut self, id: Idx) -> Option<Entry> {
        let e = self.items.remove(&id)?;
        self.payloads.remove(id);
        if self.keys.get(&e.key) == Some(&id) {
            self.keys.remove(&e.key);
        }
        Some(e)
    }
}

/// A named collection.
pub struct Collection {
    /// Its definition.
    pub def: CollectionDef,
    /// Its state.
    pub live: RwLock<Live>,
    /// Changes (from a process-wide counter) with every write, so that cached search
    /// results of an older state are never served.
    generation: AtomicU64,
    /// Its search traffic: queueing, batching, shedding.
    pub lane: crate::lane::Lane,
    /// Serialises the collection's writers (add, delete, retrain, drop). Taken before
    /// `live`, so a retrain can build its new index holding only this: searches and
    /// snapshots go on with the old index meanwhile.
    writer: Mutex<()>,
    /// Set (under `writer`) when the collection is dropped: a writer holding an old handle
    /// must not touch a collection re-created under the same name.
    dropped: AtomicBool,
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// One search result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    /// 1-based rank.
    pub rank: usize,
    /// The item's id (the client's).
    pub id: ItemId,
    /// Inner product or cosine (higher is closer), or squared L2 distance (lower is
    /// closer).
    pub score: f32,
    /// The item's metadata (left out when the search asked for none).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub metadata: serde_json::Value,
}

/// Per-request search options.
#[derive(Debug, Clone, Default)]
pub struct SearchOptions {
    /// Results per query.
    pub top_k: usize,
    /// Similarity collections (ip, cosine): drop results scoring below this.
    pub min_score: Option<f32>,
    /// L2 collections: drop results farther than this.
    pub max_distance: Option<f32>,
    /// IVF lists to probe.
    pub nprobe: Option<usize>,
    /// HNSW beam width.
    pub ef_search: Option<usize>,
    /// Only these internal ids.
    pub filter_ids: Option<HashSet<Idx>>,
    /// Only items whose metadata passes this filter.
    pub filter: Option<Arc<Filter>>,
    /// Leave metadata out of the hits (`Hit::metadata` is `null`).
    pub without_metadata: bool,
}

impl SearchOptions {
    /// Whether a result of this score passes the score bound: `min_score` for
    /// similarities, `max_distance` for distances.
    pub fn keeps(&self, score: f32, similarity: bool) -> bool {
        self.min_score.is_none_or(|m| !similarity || score >= m)
            && self.max_distance.is_none_or(|m| similarity || score <= m)
    }
}

/// Why a search stopped before its end.
pub const CANCELLED: &str = "the search was cancelled (client gone or server stopping)";

struct LiveIds<'a> {
    meta: &'a HashMap<Idx, Entry>,
    only: Option<&'a HashSet<Idx>>,
    allowed: Option<&'a IdBitmap>,
}

impl IdSelector for LiveIds<'_> {
    fn is_member(&self, id: Idx) -> bool {
        self.allowed.is_none_or(|b| b.contains(id))
            && self.meta.contains_key(&id)
            && self.only.is_none_or(|s| s.contains(&id))
    }
}

/// A new, empty index for `def` (checks the factory string). Items carry the service's
/// ids: IVF indexes store them natively; any other index gets an id map in front.
pub fn new_index(def: &CollectionDef) -> Result<Box<dyn Index>> {
    let index = index_factory(def.dim, &def.index, def.metric.index_metric())?;
    if index.ids_are_positions() {
        Ok(Box::new(fathom_index::IndexIdMap::new(index)))
    } else {
        Ok(index)
    }
}

/// Distance computations (`queries × vectors`) per search chunk: a chunk holds the
/// collection's read lock, so writers wait at most one chunk, and cancellation is seen
/// between chunks.
const CHUNK_PAIRS: usize = 1 << 24;

impl Collection {
    /// A collection holding `live`.
    pub fn new(def: CollectionDef, live: Live) -> Self {
        Collection {
            def,
            live: RwLock::new(live),
            generation: AtomicU64::new(GENERATIONS.fetch_add(1, Ordering::SeqCst)),
            lane: crate::lane::Lane::default(),
            writer: Mutex::new(()),
            dropped: AtomicBool::new(false),
        }
    }

    /// Takes the collection's writer lock (see the module's lock order); an error when the
    /// collection was dropped meanwhile.
    pub(crate) fn writer(&self) -> Result<MutexGuard<'_, ()>> {
        let g = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if self.dropped.load(Ordering::SeqCst) {
            return Err(Error::invalid(format!(
                "collection {:?} was dropped",
                self.def.name
            )));
        }
        Ok(g)
    }

    /// Marks the collection dropped; the caller holds [`Collection::writer`].
    pub(crate) fn mark_dropped(&self) {
        self.dropped.store(true, Ordering::SeqCst);
        self.changed();
    }

    /// Its state's generation: any write changes it (the writes call `changed`).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Called by every write while it holds the `live` write lock, after its change: a
    /// search reading the new generation then sees the new state.
    pub(crate) fn changed(&self) {
        self.generation
            .store(GENERATIONS.fetch_add(1, Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Brings vectors into the collection's space: cosine collections normalise each row
    /// (a zero vector has no direction and is refused); others are left as they are.
    pub fn prepare(&self, vectors: &mut [f32], what: &str) -> Result<()> {
        if self.def.metric != Metric::Cosine {
            return Ok(());
        }
        for (i, row) in vectors.chunks_mut(self.def.dim.max(1)).enumerate() {
            let norm = row
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                .sqrt();
            if norm == 0.0 || !norm.is_finite() {
                return Err(Error::invalid(format!(
                    "{what} {i} has norm {norm}; a cosine collection needs vectors of \
                     nonzero finite length"
                )));
            }
            for x in row.iter_mut() {
                *x = (f64::from(*x) / norm) as f32;
            }
        }
        Ok(())
    }

    /// Searches `queries` (rows of `def.dim`).
    pub fn search(&self, queries: &[f32], opts: &SearchOptions) -> Result<Vec<Vec<Hit>>> {
        self.search_while(queries, opts, &|| true)
    }

    /// Searches `queries` in chunks, taking the read lock per chunk (adds and snapshots
    /// are not held up by a long search) and stopping with an error once `go_on` says no.
    pub fn search_while(
        &self,
        queries: &[f32],
        opts: &SearchOptions,
        go_on: &dyn Fn() -> bool,
    ) -> Result<Vec<Vec<Hit>>> {
        let d = self.def.dim.max(1);
        let nq = queries.len() / d;
        let normalised;
        let queries = if self.def.metric == Metric::Cosine {
            let mut q = queries.to_vec();
            self.prepare(&mut q, "query")?;
            normalised = q;
            &normalised[..]
        } else {
            queries
        };
        let (ntotal, allowed) = {
            let live = self.live.read().unwrap_or_else(|e| e.into_inner());
            let allowed = opts.filter.as_ref().map(|f| live.payloads.evaluate(f));
            (live.index.ntotal().max(1), allowed)
        };
        let rows = (CHUNK_PAIRS / (ntotal * d).max(1)).clamp(16, 4096);
        let mut out = Vec::with_capacity(nq);
        for chunk in queries.chunks(rows * d) {
            if !go_on() {
                return Err(Error::invalid(CANCELLED));
            }
            out.extend(self.search_chunk(chunk, opts, allowed.as_ref())?);
        }
        Ok(out)
    }

    /// How many lists an IVF search restricted to `allowed` ids should probe: enough that
    /// the probed lists hold about 4·k allowed items, up to every list — a restriction to
    /// a few items then scans all lists (only their allowed entries), exactly. Graph
    /// indexes make the same choice themselves (HNSW scans a small allowed set exactly);
    /// flat ones are exact anyway.
    fn filtered_nprobe(
        index: &dyn Index,
        allowed: usize,
        k: usize,
        asked: Option<usize>,
    ) -> Option<usize> {
        let nlist = fathom_index::ivf::lists_of(index)?.nlist;
        let now = asked.or_else(|| index.param("nprobe").map(|p| p as usize))?;
        let wanted = (4 * k * nlist).div_ceil(allowed.max(1)).min(nlist);
        Some(now.max(wanted))
    }

    fn search_chunk(
        &self,
        queries: &[f32],
        opts: &SearchOptions,
        allowed: Option<&IdBitmap>,
    ) -> Result<Vec<Vec<Hit>>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        for (given, name, applies_to) in [
            (opts.nprobe.is_some(), "nprobe", "IVF"),
            (opts.ef_search.is_some(), "efSearch", "HNSW"),
        ] {
            if given && live.index.param(name).is_none() {
                return Err(Error::invalid(format!(
                    "search parameter {name} applies to {applies_to} indexes; collection \
                     {:?} has {}",
                    self.def.name,
                    live.index.description()
                )));
            }
        }
        if live.items.is_empty() || !live.index.is_trained() {
            return Ok(vec![Vec::new(); queries.len() / self.def.dim.max(1)]);
        }
        let nq = queries.len() / self.def.dim.max(1);
        let restricted = opts.filter_ids.is_some() || allowed.is_some();
        let mut nprobe = opts.nprobe;
        if restricted {
            let mut count = allowed.map_or(live.items.len(), |a| a.count());
            if let Some(only) = &opts.filter_ids {
                count = count.min(only.len());
            }
            if count == 0 {
                return Ok(vec![Vec::new(); nq]);
            }
            nprobe = Self::filtered_nprobe(&*live.index, count, opts.top_k, opts.nprobe).or(nprobe);
        }
        let sel = LiveIds {
            meta: &live.items,
            only: opts.filter_ids.as_ref(),
            allowed,
        };
        // A filter costs a lookup per candidate and, for graphs, a slower walk: only when
        // something must be hidden.
        let mut params = if live.hidden > 0 || restricted {
            SearchParams::default().with_selector(&sel)
        } else {
            SearchParams::default()
        };
        params.nprobe = nprobe;
        params.ef_search = opts.ef_search;
        let res = live.index.search_with(queries, opts.top_k, &params)?;
        Ok(self.hits(&live, &res.labels, &res.distances, opts))
    }

    /// The hits of search results (`top_k` labels and scores a query, label −1 for none):
    /// live items only, within the score bound, with their client ids and metadata.
    pub(crate) fn hits(
        &self,
        live: &Live,
        labels: &[Idx],
        scores: &[f32],
        opts: &SearchOptions,
    ) -> Vec<Vec<Hit>> {
        let ip = self.def.metric.is_similarity();
        labels
            .chunks(opts.top_k)
            .zip(scores.chunks(opts.top_k))
            .map(|(labels, scores)| {
                labels
                    .iter()
                    .zip(scores)
                    .filter(|&(&id, &s)| id >= 0 && opts.keeps(s, ip))
                    .filter_map(|(&id, &score)| Some((live.items.get(&id)?, score)))
                    .enumerate()
                    .map(|(i, (entry, score))| Hit {
                        rank: i + 1,
                        id: entry.key.clone(),
                        score,
                        metadata: if opts.without_metadata {
                            serde_json::Value::Null
                        } else {
                            serde_json::from_str(&entry.meta).unwrap_or(serde_json::Value::Null)
                        },
                    })
                    .collect()
            })
            .collect()
    }
}

/// Adds `vectors` with ids `first..` to `index`, training it on them first when it is
/// untrained (the first batch of an IVF or PQ collection trains it).
pub fn add_to_index(index: &mut dyn Index, vectors: &[f32], first: Idx) -> Result<()> {
    if !index.is_trained() {
        index.train(vectors).map_err(|e| {
            e.context(
                "the collection's index is untrained and learns from its first batch, \
                 which must be large enough",
            )
        })?;
    }
    let n = vectors.len() / index.dim();
    let ids: Vec<Idx> = (first..first + n as Idx).collect();
    index.add_with_ids(vectors, &ids)
}

/// Removes the vectors `sel` selects from `index` when it supports removal; returns how
/// many stay behind (an index that cannot remove, HNSW, keeps them all, and searches skip
/// them because their metadata is gone).
pub fn remove_from_index(index: &mut dyn Index, sel: &dyn IdSelector, n: usize) -> Result<usize> {
    match index.remove_ids(sel) {
        Ok(_) => Ok(0),
        Err(Error::Unsupported(_)) => Ok(n),
        Err(e) => Err(e),
    }
}
