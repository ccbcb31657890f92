//! The service's state and operations, independent of HTTP: collections, adds and
//! deletes (database and index together), retraining, snapshots and the start-up check.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fathom_core::{Error, IdSelector, Idx, Result};
use fathom_index::ivf::IvfCodec;
use fathom_index::{Index, IndexIvf};

use crate::collection::{Collection, Live, add_to_index, new_index, remove_from_index};
use crate::snapshot::{self, CollectionSnap, Manifest};
use crate::store::{CollectionDef, ItemStore};

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
}

impl ServeConfig {
    /// Defaults for a data directory: 3 snapshots, top_k ≤ 1000, bodies ≤ 64 MiB.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            data_dir: data_dir.into(),
            keep_snapshots: 3,
            max_top_k: 1000,
            max_body_bytes: 64 << 20,
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
    seq: AtomicU64,
    /// What the start-up check found, for `/health` and the log.
    pub startup: Vec<String>,
}

/// Checks a collection name: 1–64 of `A–Z a–z 0–9 _ - .`, not starting with `.`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "collection name {name:?}: expected 1–64 letters, digits, '_', '-' or '.', \
             not starting with '.'"
        )))
    }
}

struct NotLive<'a>(&'a HashMap<Idx, String>);
impl IdSelector for NotLive<'_> {
    fn is_member(&self, id: Idx) -> bool {
        !self.0.contains_key(&id)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Service {
    /// Opens the data directory: checks the database (falling back to the newest good
    /// snapshot's copy when it is damaged), then loads each collection's index from the
    /// newest snapshot whose checksums and counts match, replays the items added since
    /// and drops those deleted since (or rebuilds the index from the database).
    pub fn open(config: ServeConfig) -> Result<Self> {
        let dir = &config.data_dir;
        let snaps_dir = dir.join("snapshots");
        fs::create_dir_all(&snaps_dir).map_err(|e| Error::io(&snaps_dir, e))?;
        let mut startup = Vec::new();
        let snaps = snapshot::list(&snaps_dir);
        let mut good: Vec<(u64, PathBuf, Manifest)> = Vec::new();
        for (seq, path) in &snaps {
            match snapshot::verify(path) {
                Ok(m) => good.push((*seq, path.clone(), m)),
                Err(e) => startup.push(format!("snapshot {seq} is damaged and skipped: {e}")),
            }
        }
        let db_path = dir.join(DB);
        let store = match ItemStore::open(&db_path) {
            Ok(s) => s,
            Err(e) => {
                let Some((seq, path, m)) = good.first() else {
                    return Err(e.context("the database is damaged and no good snapshot exists"));
                };
                let aside = dir.join(format!("{DB}.damaged"));
                let _ = fs::rename(&db_path, &aside);
                for ext in ["-wal", "-shm"] {
                    let _ = fs::remove_file(dir.join(format!("{DB}{ext}")));
                }
                fs::copy(path.join(&m.db.file), &db_path).map_err(|e| Error::io(&db_path, e))?;
                startup.push(format!(
                    "the database was damaged ({e}); restored from snapshot {seq}, the damaged \
                     file kept as {}",
                    aside.display()
                ));
                ItemStore::open(&db_path)?
            }
        };
        let mut collections = HashMap::new();
        for (def, _) in store.collections()? {
            let live = load_collection(&store, &def, &good, &mut startup)?;
            collections.insert(
                def.name.clone(),
                Arc::new(Collection {
                    def,
                    live: RwLock::new(live),
                }),
            );
        }
        let seq = snaps.first().map_or(0, |s| s.0) + 1;
        Ok(Service {
            config,
            store: Mutex::new(store),
            collections: RwLock::new(collections),
            seq: AtomicU64::new(seq),
            startup,
        })
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

    /// Creates a collection (the factory string is checked first). `Ok(false)` when one
    /// with the same definition exists already; an error when it exists with another.
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
        if let Some(c) = map.get(&def.name) {
            return if c.def == def {
                Ok(false)
            } else {
                Err(Error::invalid(format!(
                    "collection {:?} exists with dim {}, index {:?}, metric {:?}",
                    def.name, c.def.dim, c.def.index, c.def.metric
                )))
            };
        }
        lock(&self.store).create(&def)?;
        map.insert(
            def.name.clone(),
            Arc::new(Collection {
                def,
                live: RwLock::new(Live {
                    index,
                    meta: HashMap::new(),
                    source: "created".into(),
                    hidden: 0,
                }),
            }),
        );
        Ok(true)
    }

    /// Drops a collection and its items; `false` when there was none.
    pub fn drop_collection(&self, name: &str) -> Result<bool> {
        let mut map = self.collections.write().unwrap_or_else(|e| e.into_inner());
        if map.remove(name).is_none() {
            return Ok(false);
        }
        lock(&self.store).drop_collection(name)?;
        Ok(true)
    }

    /// Adds vectors (rows of the collection's dimension) with their metadata (JSON text);
    /// returns their ids. The database and the index change together or not at all.
    pub fn add(&self, c: &Collection, vectors: &[f32], metadata: Vec<String>) -> Result<Vec<Idx>> {
        let n = metadata.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut live = c.live.write().unwrap_or_else(|e| e.into_inner());
        let mut store = lock(&self.store);
        let first = store.add_items(&c.def.name, vectors, c.def.dim, &metadata, |first| {
            add_to_index(&mut *live.index, vectors, first)
        })?;
        let ids: Vec<Idx> = (first..first + n as Idx).collect();
        live.meta.extend(ids.iter().copied().zip(metadata));
        Ok(ids)
    }

    /// Deletes items; returns the ids that existed.
    pub fn delete(&self, c: &Collection, ids: &[Idx]) -> Result<Vec<Idx>> {
        let mut live = c.live.write().unwrap_or_else(|e| e.into_inner());
        let gone = lock(&self.store).delete_items(&c.def.name, ids)?;
        for id in &gone {
            live.meta.remove(id);
        }
        let sel = fathom_core::IdSelectorBatch::new(gone.iter().copied());
        live.hidden += remove_from_index(&mut *live.index, &sel, gone.len())?;
        Ok(gone)
    }

    /// Rebuilds a collection's index from the database, training it on every stored
    /// vector (after many adds an IVF index's lists drift out of balance). Writes wait;
    /// searches go on with the old index until the new one replaces it.
    pub fn retrain(&self, c: &Collection) -> Result<usize> {
        let store = lock(&self.store);
        let (index, _) = build_from_store(&store, &c.def)?;
        let n = index.ntotal();
        let mut live = c.live.write().unwrap_or_else(|e| e.into_inner());
        live.index = index;
        live.hidden = 0;
        live.source = "retrained from the database".into();
        Ok(n)
    }

    /// Writes a snapshot of the database and every index; returns its directory.
    pub fn snapshot(&self) -> Result<PathBuf> {
        let dir = self.config.data_dir.join("snapshots");
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let tmp = dir.join(format!(".tmp-{seq}"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let result = self.fill_snapshot(&tmp, seq).and_then(|m| {
            let text =
                serde_json::to_string_pretty(&m).map_err(|e| Error::invalid(e.to_string()))?;
            fs::write(tmp.join("manifest.json"), text).map_err(|e| Error::io(&tmp, e))?;
            snapshot::publish(&dir, &tmp, seq, self.config.keep_snapshots)
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
                live.meta.len(),
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
                    "metric": crate::store::metric_name(c.def.metric),
                    "index": live.index.description(),
                    "ntotal": live.index.ntotal(),
                    "items": live.meta.len(),
                    "trained": live.index.is_trained(),
                    "imbalance_factor": imbalance(&*live.index),
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

/// Loads one collection's index from the newest good snapshot holding it, replaying and
/// dropping what changed since; rebuilds from the database when no snapshot serves.
fn load_collection(
    store: &ItemStore,
    def: &CollectionDef,
    good: &[(u64, PathBuf, Manifest)],
    log: &mut Vec<String>,
) -> Result<Live> {
    let mut meta = HashMap::new();
    store.for_each_item(&def.name, 0, |it| {
        meta.insert(it.id, it.metadata);
        Ok(())
    })?;
    let mut failures = Vec::new();
    for (seq, path, m) in good {
        let Some(cs) = m.collections.iter().find(|c| c.name == def.name) else {
            continue;
        };
        let loaded = fathom_io::faiss::read_index(path.join(&cs.index.file)).and_then(|mut ix| {
            if ix.ntotal() != cs.ntotal || ix.dim() != def.dim || ix.metric() != def.metric {
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
                return Ok(Live {
                    index,
                    meta,
                    source,
                    hidden,
                });
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
    Ok(Live {
        index,
        meta,
        source,
        hidden: 0,
    })
}

/// A fresh index of every stored item, trained on them all.
fn build_from_store(store: &ItemStore, def: &CollectionDef) -> Result<(Box<dyn Index>, usize)> {
    let mut vectors = Vec::new();
    let mut ids = Vec::new();
    store.for_each_item(&def.name, 0, |it| {
        vectors.extend_from_slice(&it.vector);
        ids.push(it.id);
        Ok(())
    })?;
    let mut index = new_index(def)?;
    if ids.is_empty() {
        return Ok((index, 0));
    }
    if !index.is_trained() {
        index.train(&vectors)?;
    }
    index.add_with_ids(&vectors, &ids)?;
    Ok((index, ids.len()))
}

/// The list imbalance of an IVF collection (Faiss's imbalance factor; 1 is even).
fn imbalance(index: &dyn Index) -> Option<f64> {
    fn of<C: IvfCodec + 'static>(ix: &dyn Index) -> Option<f64> {
        let ivf = ix.as_any().downcast_ref::<IndexIvf<C>>()?;
        (ivf.ntotal() > 0).then(|| ivf.imbalance_factor())
    }
    // IVF collections hold the IVF index itself (it keeps its own ids; see `new_index`).
    of::<fathom_index::ivf::IvfFlat>(index)
        .or_else(|| of::<fathom_index::ivf::IvfPq>(index))
        .or_else(|| of::<fathom_index::ivf::IvfScalarQuantizer>(index))
        .or_else(|| of::<fathom_index::ivf::IvfPqFastScan>(index))
}
