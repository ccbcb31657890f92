//! The service's state and operations, independent of HTTP: collections, adds and
//! deletes (database and index together), retraining, snapshots and the start-up check.
//!
//! Lock order, everywhere (docs/SERVE.md, tested by `retrain_against_writers_finishes`
//! and the soak test): `snapshot_lock` → a collection's `writer` → the `collections` map →
//! collections' `live` locks (by name when several) → the database mutex `store`. No
//! thread holding a later one waits for an earlier one.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fathom_core::{Error, IdSelector, Idx, Result};
use fathom_index::Index;

use crate::collection::{
    Collection, Entry, Hit, Live, SearchOptions, add_to_index, new_index, remove_from_index,
};
use crate::filter::Filter;
use crate::snapshot::{self, CollectionSnap, Manifest};
use crate::store::{CollectionDef, ItemId, ItemStore};

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where the database and snapshots live.
    pub data_dir: PathBuf,
    /// Snapshots kept (the newest ones).
    pub keep_snapshots: usize,
    /// Largest `top_k` a search may ask for.
    pub max_top_k: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest `queries × vectors` one search request may ask for (the work of a brute
    /// force search); larger requests are refused rather than occupying a core for minutes.
    pub max_search_pairs: u64,
    /// Largest metadata of one item, in bytes of JSON text.
    pub max_metadata_bytes: usize,
    /// Search admission, batching and degradation.
    pub traffic: crate::lane::TrafficConfig,
    /// Bytes of recent search answers kept (0: no cache).
    pub cache_bytes: usize,
    /// A file of API keys (`KEY ROLE` lines); without one, requests need no key.
    pub api_keys: Option<PathBuf>,
    /// The origin browsers may call the API from (CORS); none by default.
    pub cors_origin: Option<String>,
    /// HTTPS: a certificate chain and its private key (PEM files); plain HTTP without.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Folders whose images the thumbnail route may read (an item's `"path"` must lie
    /// inside one, after resolving links); none by default.
    pub image_roots: Vec<PathBuf>,
}

impl ServeConfig {
    /// Defaults for a data directory: 3 snapshots, top_k ≤ 1000, bodies ≤ 64 MiB,
    /// searches ≤ 2³² query–vector pairs (4 096 queries against a million vectors),
    /// metadata ≤ 64 KiB an item, [`crate::lane::TrafficConfig::default`], a 64 MiB
    /// result cache, no API keys, no CORS.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            data_dir: data_dir.into(),
            keep_snapshots: 3,
            max_top_k: 1000,
            max_body_bytes: 64 << 20,
            max_search_pairs: 1 << 32,
            max_metadata_bytes: 64 << 10,
            traffic: crate::lane::TrafficConfig::default(),
            cache_bytes: 64 << 20,
            api_keys: None,
            cors_origin: None,
            tls: None,
            image_roots: Vec::new(),
        }
    }
}

const DB: &str = "items.sqlite";

/// The service: a database of items and the collections' indexes built from it.
pub struct Service {
    /// Its configuration.
    pub config: ServeConfig,
    store: Mutex<ItemStore>,
    collections: RwLock<HashMap<String, Arc<Collection>>>,
    /// One snapshot at a time.
    snapshot_lock: Mutex<()>,
    seq: AtomicU64,
    db_id: String,
    stopping: AtomicBool,
    /// The data directory's lock file, held (locked) while the service lives.
    _dir_lock: fs::File,
    /// What the start-up check found, for `/health` and the log.
    pub startup: Vec<String>,
}

/// Takes the exclusive lock of a data directory (`DIR/lock`, holding the owner's process
/// id), or says who holds it.
fn lock_data_dir(dir: &Path) -> Result<fs::File> {
    use std::io::{Read, Seek, Write};
    let path = dir.join("lock");
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut owner = String::new();
            let _ = f.read_to_string(&mut owner);
            let owner = owner.trim();
            return Err(Error::invalid(format!(
                "the data directory {} is in use by another fathom serve{}; one server per \
                 data directory",
                dir.display(),
                if owner.is_empty() {
                    String::new()
                } else {
                    format!(" (process {owner})")
                }
            )));
        }
        Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    let _ = f.set_len(0);
    let _ = f.rewind();
    let _ = write!(f, "{}", std::process::id());
    Ok(f)
}

/// An item as stored: the client's id, metadata (JSON text) and the vector when asked for.
#[derive(Debug, Clone)]
pub struct StoredItem {
    /// The client's id.
    pub id: ItemId,
    /// Metadata, JSON text.
    pub metadata: String,
    /// The stored vector (normalised in cosine collections), when asked for.
    pub vector: Option<Vec<f32>>,
}

/// Checks a collection name (one rule for the service and for sharded indexes).
pub use fathom_dist::builder::check_name;

struct NotLive<'a>(&'a HashMap<Idx, Entry>);
impl IdSelector for NotLive<'_> {
    fn is_member(&self, id: Idx) -> bool {
        !self.0.contains_key(&id)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Service {
    /// Opens the data directory: locks it (one service per directory), checks the
    /// database (falling back to the newest good snapshot's copy when it is damaged,
    /// missing or empty while snapshots hold data), then loads each collection's index
    /// from the newest snapshot whose checksums and counts match, replays the items added
    /// since and drops those deleted since (or rebuilds the index from the database).
    pub fn open(config: ServeConfig) -> Result<Self> {
        let dir = &config.data_dir;
        let snaps_dir = dir.join("snapshots");
        fs::create_dir_all(&snaps_dir).map_err(|e| Error::io(&snaps_dir, e))?;
        let dir_lock = lock_data_dir(dir)?;
        // Snapshots a crash interrupted.
        for e in fs::read_dir(&snaps_dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let mut startup = Vec::new();
        let snaps = snapshot::list(&snaps_dir);
        let mut good: Vec<(u64, PathBuf, Manifest)> = Vec::new();
        for (seq, path) in &snaps {
            match snapshot::verify(path) {
                Ok(m) => good.push((*seq, path.clone(), m)),
                Err(e) => startup.push(format!("snapshot {seq} is damaged and skipped: {e}")),
            }
        }
        let store = open_database(dir, &good, &mut startup)?;
        let db_id = store.identity()?;
        let mut collections = HashMap::new();
        for (def, _) in store.collections()? {
            let live = load_collection(&store, &def, &good, &mut startup)?;
            collections.insert(def.name.clone(), Arc::new(Collection::new(def, live)));
        }
        let seq = snaps.first().map_or(0, |s| s.0) + 1;
        Ok(Service {
            config,
            store: Mutex::new(store),
            collections: RwLock::new(collections),
            snapshot_lock: Mutex::new(()),
            seq: AtomicU64::new(seq),
            db_id,
            stopping: AtomicBool::new(false),
            _dir_lock: dir_lock,
            startup,
        })
    }

    /// Tells long work (searches) to stop: the server is shutting down.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Whether [`Service::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Waits for any database transaction in progress to end, then holds the database
    /// until `then` returns: for leaving the process at once, on a second signal.
    pub fn with_database_quiet<T>(&self, then: impl FnOnce() -> T) -> T {
        let _store = lock(&self.store);
        then()
    }

    /// A collection by name.
    pub fn get(&self, name: &str) -> Option<Arc<Collection>> {
        self.collections
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every collection, by name.
    pub fn list(&self) -> Vec<Arc<Collection>> {
        let map = self.collections.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = map.values().cloned().collect();
        v.sort_by(|a, b| a.def.name.cmp(&b.def.name));
        v
    }

    /// Why `def` cannot be created beside the existing collections, if it cannot: one of
    /// the same name exists with another definition, or one whose name differs only in
    /// case (their snapshot files would collide on a case-insensitive file system).
    pub fn conflict(&self, def: &CollectionDef) -> Option<String> {
        let map = self.collections.read().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&def.name) {
            return (c.def != *def).then(|| {
                format!(
                    "collection {:?} exists with dim {}, index {:?}, metric {}",
                    def.name,
                    c.def.dim,
                    c.def.index,
                    c.def.metric.name()
                )
            });
        }
        map.keys()
            .find(|n| n.eq_ignore_ascii_case(&def.name))
            .map(|n| {
                format!(
                    "collection name {:?} differs from the existing {n:?} only in case; names \
                     are compared without case",
                    def.name
                )
            })
    }

    /// Creates a collection (the factory string is checked first). `Ok(false)` when one
    /// with the same definition exists already; an error when it exists with another (see
    /// [`Service::conflict`]).
    pub fn create(&self, def: CollectionDef) -> Result<bool> {
        check_name(&def.name)?;
        if def.dim == 0 || def.dim > 65536 {
            return Err(Error::invalid(format!(
                "dim must be 1..=65536, got {}",
                def.dim
            )));
        }
        let index = new_index(&def)?;
        let mut map = self.collections.write().unwrap_or_else(|e| e.into_inner());
        if map.contains_key(&def.name) || map.keys().any(|n| n.eq_ignore_ascii_case(&def.name)) {
            drop(map);
            return match self.conflict(&def) {
                Some(why) => Err(Error::invalid(why)),
                None => Ok(false),
            };
        }
        lock(&self.store).create(&def)?;
        let live = Live::new(index, "created");
        map.insert(def.name.clone(), Arc::new(Collection::new(def, live)));
        Ok(true)
    }

    /// Drops a collection and its items (and gives their space back to the file system);
    /// `false` when there was none.
    pub fn drop_collection(&self, name: &str) -> Result<bool> {
        let Some(c) = self.get(name) else {
            return Ok(false);
        };
        let Ok(_writer) = c.writer() else {
            return Ok(false);
        };
        {
            let mut map = self.collections.write().unwrap_or_else(|e| e.into_inner());
            if !map.get(name).is_some_and(|m| Arc::ptr_eq(m, &c)) {
                return Ok(false);
            }
            lock(&self.store).drop_collection(name)?;
            map.remove(name);
            c.mark_dropped();
        }
        lock(&self.store).shrink()?;
        Ok(true)
    }

    /// Checks items before they are stored: one metadata entry per vector, each at most
    /// `max_metadata_bytes`, vectors finite and of bounded norm.
    fn check_items(&self, c: &Collection, vectors: &[f32], metadata: &[String]) -> Result<()> {
        let n = fathom_core::check::vectors("added", vectors, c.def.dim)?;
        if n != metadata.len() {
            return Err(Error::DimensionMismatch {
                what: "metadata entries".into(),
                got: metadata.len(),
                expected: format!("one per vector ({n})"),
            });
        }
        let max = self.config.max_metadata_bytes;
        if let Some((i, m)) = metadata.iter().enumerate().find(|(_, m)| m.len() > max) {
            return Err(Error::invalid(format!(
                "metadata of item {i} is {} bytes; the limit is {max} (--max-metadata-bytes)",
                m.len()
            )));
        }
        fathom_core::check::finite("added", vectors, c.def.dim)
    }

    /// Adds vectors (rows of the collection's dimension) with their metadata (JSON text);
    /// returns their ids (their internal numbers). The database and the index change
    /// together or not at all.
    pub fn add(&self, c: &Collection, vectors: &[f32], metadata: Vec<String>) -> Result<Vec<Idx>> {
        let ids = self.write(c, vectors, metadata, None, false)?;
        Ok(ids
            .iter()
            .map(|k| match k {
                ItemId::Num(n) => *n as Idx,
                ItemId::Str(_) => -1,
            })
            .collect())
    }

    /// Adds items under the client's ids (`None`: each item's id is its internal
    /// number); an id that exists already is an error (see [`Service::upsert`]).
    pub fn add_with_ids(
        &self,
        c: &Collection,
        vectors: &[f32],
        metadata: Vec<String>,
        keys: Option<Vec<ItemId>>,
    ) -> Result<Vec<ItemId>> {
        self.write(c, vectors, metadata, keys, false)
    }

    /// Adds or replaces (vector and metadata) the items of these ids, in one transaction.
    pub fn upsert(
        &self,
        c: &Collection,
        vectors: &[f32],
        metadata: Vec<String>,
        keys: Vec<ItemId>,
    ) -> Result<Vec<ItemId>> {
        self.write(c, vectors, metadata, Some(keys), true)
    }

    fn write(
        &self,
        c: &Collection,
        vectors: &[f32],
        metadata: Vec<String>,
        keys: Option<Vec<ItemId>>,
        upsert: bool,
    ) -> Result<Vec<ItemId>> {
        let n = metadata.len();
        self.check_items(c, vectors, &metadata)?;
        if let Some(k) = &keys {
            if k.len() != n {
                return Err(Error::DimensionMismatch {
                    what: "ids".into(),
                    got: k.len(),
                    expected: format!("one per vector ({n})"),
                });
            }
            let mut seen = std::collections::HashSet::with_capacity(n);
            if let Some(dup) = k.iter().find(|id| !seen.insert(*id)) {
                return Err(Error::invalid(format!(
                    "id {dup} appears twice in one request"
                )));
            }
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut vectors = vectors.to_vec();
        c.prepare(&mut vectors, "vector")?;
        let _writer = c.writer()?;
        let mut live = c.live.write().unwrap_or_else(|e| e.into_inner());
        let replace: Vec<Idx> = match (&keys, upsert) {
            (Some(k), true) => k
                .iter()
                .filter_map(|id| live.keys.get(id).copied())
                .collect(),
            _ => Vec::new(),
        };
        let mut store = lock(&self.store);
        let mut stale = 0usize;
        let live_ref = &mut *live;
        let items = crate::store::NewItems {
            vectors: &vectors,
            dim: c.def.dim,
            metadata: &metadata,
            keys: keys.as_deref(),
        };
        let first = store.write_items(&c.def.name, items, &replace, |first| {
            add_to_index(&mut *live_ref.index, &vectors, first)?;
            if !replace.is_empty() {
                let sel = fathom_core::IdSelectorBatch::new(replace.iter().copied());
                stale = remove_from_index(&mut *live_ref.index, &sel, replace.len())?;
            }
            Ok(())
        })?;
        drop(store);
        live.hidden += stale;
        for id in &replace {
            live.remove(*id);
        }
        let keys = keys.unwrap_or_else(|| {
            (0..n)
                .map(|i| ItemId::Num((first + i as Idx) as u64))
                .collect()
        });
        for (i, (key, m)) in keys.iter().zip(metadata).enumerate() {
            live.insert(first + i as Idx, key.clone(), m);
        }
        c.changed();
        Ok(keys)
    }

    /// A warning for an add of `n` vectors that would train the collection's IVF index on
    /// fewer than 39 points per list (Faiss's k-means warns there too: the lists come out
    /// poor; `retrain` later rebuilds them from every stored vector).
    pub fn training_warning(&self, c: &Collection, n: usize) -> Option<String> {
        let live = c.live.read().unwrap_or_else(|e| e.into_inner());
        if live.index.is_trained() {
            return None;
        }
        let nlist = fathom_index::ivf::lists_of(&*live.index)?.nlist;
        (n < 39 * nlist).then(|| {
            format!(
                "the first batch ({n} vectors) trains the index's {nlist} lists; at least \
                 {} (39 per list) give good lists — POST /collections/{}/retrain once more \
                 items are in",
                39 * nlist,
                c.def.name
            )
        })
    }

    /// Deletes items by internal id; returns the ids that existed (each once).
    pub fn delete(&self, c: &Collection, ids: &[Idx]) -> Result<Vec<Idx>> {
        let _writer = c.writer()?;
        let mut live = c.live.write().unwrap_or_else(|e| e.into_inner());
        Self::delete_locked(self, c, &mut live, ids)
    }

    fn delete_locked(&self, c: &Collection, live: &mut Live, ids: &[Idx]) -> Result<Vec<Idx>> {
        let gone = lock(&self.store).delete_items(&c.def.name, ids)?;
        for id in &gone {
            live.remove(*id);
        }
        let sel = fathom_core::IdSelectorBatch::new(gone.iter().copied());
        live.hidden += remove_from_index(&mut *live.index, &sel, gone.len())?;
        c.changed();
        Ok(gone)
    }

    /// Deletes items by the client's ids; returns those that existed (each once).
    pub fn delete_keys(&self, c: &Collection, keys: &[ItemId]) -> Result<Vec<ItemId>> {
        let _writer = c.writer()?;
        let mut live = c.live.write().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::HashSet::new();
        let pairs: Vec<(ItemId, Idx)> = keys
            .iter()
            .filter(|k| seen.insert(*k))
            .filter_map(|k| live.keys.get(k).map(|&id| (k.clone(), id)))
            .collect();
        let ids: Vec<Idx> = pairs.iter().map(|p| p.1).collect();
        let gone: std::collections::HashSet<Idx> = self
            .delete_locked(c, &mut live, &ids)?
            .into_iter()
            .collect();
        Ok(pairs
            .into_iter()
            .filter(|(_, id)| gone.contains(id))
            .map(|(k, _)| k)
            .collect())
    }

    /// Deletes the items whose metadata passes `filter`; returns their ids.
    pub fn delete_matching(&self, c: &Collection, filter: &Filter) -> Result<Vec<ItemId>> {
        let _writer = c.writer()?;
        let mut live = c.live.write().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<Idx> = live.payloads.evaluate(filter).iter().collect();
        let keys: Vec<ItemId> = ids
            .iter()
            .filter_map(|id| live.items.get(id).map(|e| e.key.clone()))
            .collect();
        self.delete_locked(c, &mut live, &ids)?;
        Ok(keys)
    }

    /// Items by the client's ids: each found one's id, metadata (JSON text) and, when
    /// asked, stored vector; ids not found are left out.
    pub fn get_items(
        &self,
        c: &Collection,
        keys: &[ItemId],
        with_vectors: bool,
    ) -> Result<Vec<StoredItem>> {
        let live = c.live.read().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<Idx> = keys
            .iter()
            .filter_map(|k| live.keys.get(k).copied())
            .collect();
        self.items_of(c, &live, &ids, with_vectors)
    }

    fn items_of(
        &self,
        c: &Collection,
        live: &Live,
        ids: &[Idx],
        with_vectors: bool,
    ) -> Result<Vec<StoredItem>> {
        let mut vectors = if with_vectors {
            lock(&self.store).vectors_of(&c.def.name, ids)?
        } else {
            HashMap::new()
        };
        Ok(ids
            .iter()
            .filter_map(|id| {
                let e = live.items.get(id)?;
                Some(StoredItem {
                    id: e.key.clone(),
                    metadata: e.meta.clone(),
                    vector: vectors.remove(id),
                })
            })
            .collect())
    }

    /// A page of items in the order they were added: at most `limit` from position
    /// `cursor` (an opaque position from a previous page, or 0), skipping `offset` more,
    /// only those passing `filter` when given. Returns the page and the cursor of the
    /// next page (`None` after the last).
    pub fn list_items(
        &self,
        c: &Collection,
        filter: Option<&Filter>,
        cursor: u64,
        offset: usize,
        limit: usize,
        with_vectors: bool,
    ) -> Result<(Vec<StoredItem>, Option<u64>)> {
        let live = c.live.read().unwrap_or_else(|e| e.into_inner());
        let everything;
        let filter = match filter {
            Some(f) => f,
            None => {
                everything =
                    crate::filter::parse(&serde_json::json!({})).map_err(Error::invalid)?;
                &everything
            }
        };
        let matching = live.payloads.evaluate(filter);
        let mut page: Vec<Idx> = Vec::with_capacity(limit.min(10_000));
        let mut next = None;
        for id in matching
            .iter()
            .filter(|&id| id >= 0 && id as u64 >= cursor)
            .skip(offset)
        {
            if page.len() == limit {
                next = Some(id as u64);
                break;
            }
            page.push(id);
        }
        Ok((self.items_of(c, &live, &page, with_vectors)?, next))
    }

    /// Rebuilds a collection's index from the database, training it on every stored
    /// vector (after many adds an IVF index's lists drift out of balance). The
    /// collection's writes wait; searches and snapshots go on with the old index until the
    /// new one replaces it.
    pub fn retrain(&self, c: &Collection) -> Result<usize> {
        let _writer = c.writer()?;
        let (vectors, ids) = read_items(&lock(&self.store), &c.def)?;
        let index = build_index(&c.def, &vectors, &ids)?;
        let n = index.ntotal();
        let mut live = c.live.write().unwrap_or_else(|e| e.into_inner());
        live.index = index;
        live.hidden = 0;
        live.source = "retrained from the database".into();
        c.changed();
        Ok(n)
    }

    /// Searches `queries` exhaustively over the collection's stored vectors — the ground
    /// truth an approximate index's answers are measured against (the page's recall).
    /// Filters and score bounds apply as in [`Collection::search`]; search parameters do
    /// not. The collection's writer lock is held throughout, so the database and the
    /// index hold the same items while it runs (this collection's writes wait; searches,
    /// snapshots and other collections do not); the database is read in pages and let go
    /// between them; `go_on` is asked between pages.
    pub fn exact_search(
        &self,
        c: &Collection,
        queries: &[f32],
        opts: &SearchOptions,
        go_on: &dyn Fn() -> bool,
    ) -> Result<Vec<Vec<Hit>>> {
        const PAGE: usize = 4096;
        let _writer = c.writer()?;
        let d = c.def.dim.max(1);
        let mut q = queries.to_vec();
        c.prepare(&mut q, "query")?;
        let nq = q.len() / d;
        let k = opts.top_k;
        let allowed = opts.filter.as_ref().map(|f| {
            let live = c.live.read().unwrap_or_else(|e| e.into_inner());
            live.payloads.evaluate(f)
        });
        let passes = |id: Idx| {
            allowed.as_ref().is_none_or(|a| a.contains(id))
                && opts
                    .filter_ids
                    .as_ref()
                    .is_none_or(|only| only.contains(&id))
        };
        let metric = c.def.metric.index_metric();
        // TopK keeps the smallest keys: similarities enter negated.
        let sign = if metric.is_similarity() { -1.0 } else { 1.0 };
        let mut best: Vec<fathom_kernels::TopK> =
            (0..nq).map(|_| fathom_kernels::TopK::new(k)).collect();
        let mut from: Idx = 0;
        loop {
            if !go_on() {
                return Err(Error::invalid(crate::collection::CANCELLED));
            }
            let page = lock(&self.store).vectors_page(&c.def.name, from, PAGE)?;
            let Some(&(last, _)) = page.last() else { break };
            from = last + 1;
            let (ids, vectors): (Vec<Idx>, Vec<Vec<f32>>) =
                page.into_iter().filter(|(id, _)| passes(*id)).unzip();
            if ids.is_empty() {
                continue;
            }
            let kk = k.min(ids.len());
            let res = fathom_kernels::knn(metric, &q, &vectors.concat(), d, kk, None)?;
            for (qi, top) in best.iter_mut().enumerate() {
                let row = qi * kk..(qi + 1) * kk;
                for (&l, &s) in res.labels[row.clone()].iter().zip(&res.distances[row]) {
                    if l >= 0 {
                        top.push(sign * s, ids[l as usize]);
                    }
                }
            }
        }
        let mut labels = vec![-1; nq * k];
        let mut scores = vec![0f32; nq * k];
        for (qi, top) in best.into_iter().enumerate() {
            for (j, (key, id)) in top.into_sorted().into_iter().enumerate() {
                labels[qi * k + j] = id;
                scores[qi * k + j] = sign * key;
            }
        }
        let live = c.live.read().unwrap_or_else(|e| e.into_inner());
        Ok(c.hits(&live, &labels, &scores, opts))
    }

    /// Writes a snapshot of the database and every index; returns its directory.
    pub fn snapshot(&self) -> Result<PathBuf> {
        let _one = lock(&self.snapshot_lock);
        let dir = self.config.data_dir.join("snapshots");
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let tmp = dir.join(format!(".tmp-{seq}"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let result = self.fill_snapshot(&tmp, seq).and_then(|m| {
            let text =
                serde_json::to_string_pretty(&m).map_err(|e| Error::invalid(e.to_string()))?;
            fs::write(tmp.join("manifest.json"), text).map_err(|e| Error::io(&tmp, e))?;
            snapshot::publish(&dir, &tmp, seq, self.config.keep_snapshots, &self.db_id)
        });
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    fn fill_snapshot(&self, tmp: &std::path::Path, seq: u64) -> Result<Manifest> {
        let cols = self.list();
        // Every collection's read lock, then the database: no add or delete runs while
        // the copies are made, so they describe one moment.
        let guards: Vec<_> = cols
            .iter()
            .map(|c| c.live.read().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let store = lock(&self.store);
        let next: HashMap<String, Idx> = store
            .collections()?
            .into_iter()
            .map(|(d, n)| (d.name, n))
            .collect();
        store.copy_to(&tmp.join(DB))?;
        let mut snaps = Vec::new();
        for (c, live) in cols.iter().zip(&guards) {
            let file = tmp.join(format!("{}.faiss", c.def.name));
            fathom_io::faiss::write_index(&*live.index, &file)?;
            snaps.push((
                c.def.name.clone(),
                file,
                live.index.ntotal(),
                live.items.len(),
            ));
        }
        drop(store);
        drop(guards);
        let collections = snaps
            .into_iter()
            .map(|(name, file, ntotal, items)| {
                Ok(CollectionSnap {
                    index: snapshot::checksum(&file)?,
                    ntotal,
                    items,
                    next_id: next.get(&name).copied().unwrap_or(0),
                    name,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Manifest {
            seq,
            db: snapshot::checksum(&tmp.join(DB))?,
            db_id: Some(self.db_id.clone()),
            collections,
        })
    }

    /// The state `/health` reports.
    pub fn health(&self) -> serde_json::Value {
        let cols: Vec<serde_json::Value> = self
            .list()
            .iter()
            .map(|c| {
                let live = c.live.read().unwrap_or_else(|e| e.into_inner());
                serde_json::json!({
                    "name": c.def.name,
                    "dim": c.def.dim,
                    "metric": c.def.metric.name(),
                    "index": c.def.index,
                    "description": live.index.description(),
                    "ntotal": live.index.ntotal(),
                    "items": live.items.len(),
                    "trained": live.index.is_trained(),
                    "imbalance_factor": fathom_index::ivf::lists_of(&*live.index).and_then(|l| l.imbalance),
                    "loaded_from": live.source,
                })
            })
            .collect();
        serde_json::json!({
            "status": "ok",
            "collections": cols,
            "startup": self.startup,
        })
    }
}

/// Opens the database of `dir`. A damaged one is set aside and replaced by the newest good
/// snapshot's copy; so is a missing or empty file while a snapshot holds data (a lost
/// database must not pass for an empty one, whose snapshots would then rotate the good
/// ones away). A database of another identity than the newest snapshot's, holding data of
/// its own, is refused: which of the two is right is for a person to say.
fn open_database(
    dir: &Path,
    good: &[(u64, PathBuf, Manifest)],
    startup: &mut Vec<String>,
) -> Result<ItemStore> {
    let db_path = dir.join(DB);
    let restore = |why: String, startup: &mut Vec<String>| -> Result<ItemStore> {
        let Some((seq, path, m)) = good.first() else {
            return Err(Error::invalid(format!(
                "{why}, and no good snapshot exists to restore it from"
            )));
        };
        if db_path.exists() {
            let aside = dir.join(format!("{DB}.damaged"));
            let _ = fs::rename(&db_path, &aside);
        }
        for ext in ["-wal", "-shm"] {
            let _ = fs::remove_file(dir.join(format!("{DB}{ext}")));
        }
        fs::copy(path.join(&m.db.file), &db_path).map_err(|e| Error::io(&db_path, e))?;
        startup.push(format!(
            "{why}; restored from snapshot {seq}{}",
            if dir.join(format!("{DB}.damaged")).exists() {
                format!(", the old file kept as {DB}.damaged")
            } else {
                String::new()
            }
        ));
        ItemStore::open(&db_path)
    };
    let with_data = good.iter().any(|(_, _, m)| !m.collections.is_empty());
    let size = fs::metadata(&db_path).map(|m| m.len()).ok();
    if with_data && size.is_none_or(|n| n == 0) {
        let why = if size.is_none() {
            format!("the database {DB} is missing")
        } else {
            format!("the database {DB} is empty (0 bytes)")
        };
        return restore(why, startup);
    }
    let store = match ItemStore::open(&db_path) {
        Ok(s) => s,
        Err(e) => return restore(format!("the database was damaged ({e})"), startup),
    };
    let Some((seq, _, newest)) = good.first() else {
        return Ok(store);
    };
    match &newest.db_id {
        Some(id) if *id != store.identity()? => {
            if store.collections()?.is_empty() && with_data {
                drop(store);
                restore(
                    format!(
                        "the database {DB} is empty and not the one the snapshots were taken of"
                    ),
                    startup,
                )
            } else {
                Err(Error::invalid(format!(
                    "the database {} is not the one snapshot {seq} was taken of (identity {} \
                     vs {id}): it was replaced. To keep this database, move {} away; to go \
                     back to the snapshot, move the database away",
                    db_path.display(),
                    store.identity()?,
                    dir.join("snapshots").display()
                )))
            }
        }
        _ => Ok(store),
    }
}

/// Loads one collection's index from the newest good snapshot holding it, replaying and
/// dropping what changed since; rebuilds from the database when no snapshot serves.
fn load_collection(
    store: &ItemStore,
    def: &CollectionDef,
    good: &[(u64, PathBuf, Manifest)],
    log: &mut Vec<String>,
) -> Result<Live> {
    let mut items = Vec::new();
    store.for_each_item(&def.name, 0, |it| {
        items.push((it.id, it.key, it.metadata));
        Ok(())
    })?;
    let meta: HashMap<Idx, Entry> = items
        .iter()
        .map(|(id, key, m)| {
            (
                *id,
                Entry {
                    key: key.clone(),
                    meta: m.clone(),
                },
            )
        })
        .collect();
    let with_items = |index: Box<dyn Index>, source: String, hidden: usize| {
        let mut live = Live::new(index, source);
        for (id, key, m) in &items {
            live.insert(*id, key.clone(), m.clone());
        }
        live.hidden = hidden;
        live
    };
    let mut failures = Vec::new();
    for (seq, path, m) in good {
        let Some(cs) = m.collections.iter().find(|c| c.name == def.name) else {
            continue;
        };
        let loaded = fathom_io::faiss::read_index(path.join(&cs.index.file)).and_then(|mut ix| {
            if ix.ntotal() != cs.ntotal
                || ix.dim() != def.dim
                || ix.metric() != def.metric.index_metric()
            {
                return Err(Error::format(
                    "snapshot index",
                    format!(
                        "{} vectors of dimension {}; the manifest says {}, the collection d = {}",
                        ix.ntotal(),
                        ix.dim(),
                        cs.ntotal,
                        def.dim
                    ),
                ));
            }
            let mut replayed = 0usize;
            store.for_each_item(&def.name, cs.next_id, |it| {
                replayed += 1;
                add_to_index(&mut *ix, &it.vector, it.id)
            })?;
            let stale = ix.ntotal().saturating_sub(meta.len());
            let hidden = remove_from_index(&mut *ix, &NotLive(&meta), stale)?;
            Ok((ix, replayed, hidden))
        });
        match loaded {
            Ok((index, replayed, hidden)) => {
                let mut source = format!("snapshot {seq}, {replayed} items replayed");
                if !failures.is_empty() {
                    source += &format!(" (newer snapshots failed: {})", failures.join("; "));
                    log.push(format!("{}: {source}", def.name));
                }
                return Ok(with_items(index, source, hidden));
            }
            Err(e) => failures.push(format!("snapshot {seq}: {e}")),
        }
    }
    let (index, n) = build_from_store(store, def)?;
    let source = if failures.is_empty() {
        format!("rebuilt from the database ({n} items)")
    } else {
        format!(
            "rebuilt from the database ({n} items; snapshots failed: {})",
            failures.join("; ")
        )
    };
    log.push(format!("{}: {source}", def.name));
    Ok(with_items(index, source, 0))
}

/// Every stored item's vector and id.
fn read_items(store: &ItemStore, def: &CollectionDef) -> Result<(Vec<f32>, Vec<Idx>)> {
    let mut vectors = Vec::new();
    let mut ids = Vec::new();
    store.for_each_item(&def.name, 0, |it| {
        vectors.extend_from_slice(&it.vector);
        ids.push(it.id);
        Ok(())
    })?;
    Ok((vectors, ids))
}

/// A fresh index of these items, trained on them all.
fn build_index(def: &CollectionDef, vectors: &[f32], ids: &[Idx]) -> Result<Box<dyn Index>> {
    let mut index = new_index(def)?;
    if ids.is_empty() {
        return Ok(index);
    }
    if !index.is_trained() {
        index.train(vectors)?;
    }
    index.add_with_ids(vectors, ids)?;
    Ok(index)
}

/// A fresh index of every stored item, trained on them all.
fn build_from_store(store: &ItemStore, def: &CollectionDef) -> Result<(Box<dyn Index>, usize)> {
    let (vectors, ids) = read_items(store, def)?;
    Ok((build_index(def, &vectors, &ids)?, ids.len()))
}
