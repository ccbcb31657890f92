//! The durable record of every collection: its definition and its items (id, vector,
//! metadata) in one SQLite database. It is the source of truth: an index is derived from
//! it (snapshotted for a fast start, its tail replayed from here), so an acknowledged add
//! survives a crash and index and metadata can always be brought back in step.

use std::collections::HashMap;
use std::path::Path;

use fathom_core::{Error, Idx, MetricType, Result};
use rusqlite::{Connection, OptionalExtension, params};

/// How a collection's vectors compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Squared Euclidean distance (lower is closer).
    L2,
    /// Inner product (higher is closer).
    InnerProduct,
    /// Cosine similarity in [-1, 1]: vectors and queries are normalised on the way in and
    /// compared by inner product.
    Cosine,
}

impl Metric {
    /// Its name in the API and the database: `l2`, `ip` or `cosine`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cosine",
        }
    }

    /// The metric of a name (`l2`, `ip`, `inner_product`, `cosine`, any case).
    pub fn parse(s: &str) -> Result<Metric> {
        match s.to_ascii_lowercase().as_str() {
            "l2" => Ok(Metric::L2),
            "ip" | "inner_product" => Ok(Metric::InnerProduct),
            "cosine" | "cos" => Ok(Metric::Cosine),
            _ => Err(Error::invalid(format!(
                "metric {s:?}: expected \"l2\", \"ip\" or \"cosine\""
            ))),
        }
    }

    /// The index's metric: cosine is the inner product of normalised vectors.
    pub fn index_metric(self) -> MetricType {
        match self {
            Metric::L2 => MetricType::L2,
            Metric::InnerProduct | Metric::Cosine => MetricType::InnerProduct,
        }
    }

    /// Whether higher scores are closer (similarities) rather than lower (distances).
    pub fn is_similarity(self) -> bool {
        self != Metric::L2
    }
}

/// What defines a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionDef {
    /// Its name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Vector dimension.
    pub dim: usize,
    /// How vectors compare.
    pub metric: Metric,
    /// Factory string of its index.
    pub index: String,
}

/// An item's id as the client sees it: an unsigned integer or a string. Items added
/// without ids get their internal number as id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(untagged)]
pub enum ItemId {
    /// A number, 0 ..= 2⁶⁴ − 1.
    Num(u64),
    /// A string of 1 ..= 256 bytes.
    Str(String),
}

/// Longest string id, in bytes.
pub const MAX_ID_BYTES: usize = 256;

impl ItemId {
    /// The id of a JSON value: a non-negative integer or a string of 1..=256 bytes.
    pub fn from_json(v: &serde_json::Value) -> std::result::Result<ItemId, String> {
        match v {
            serde_json::Value::Number(n) => n.as_u64().map(ItemId::Num).ok_or_else(|| {
                format!("id {n} is not an unsigned integer; ids are integers 0..2^64 or strings")
            }),
            serde_json::Value::String(s) if !s.is_empty() && s.len() <= MAX_ID_BYTES => {
                Ok(ItemId::Str(s.clone()))
            }
            serde_json::Value::String(s) => Err(format!(
                "a string id must be 1..={MAX_ID_BYTES} bytes, got {}",
                s.len()
            )),
            other => Err(format!(
                "id {other} is neither an unsigned integer nor a string"
            )),
        }
    }

    /// The id a path segment names: digits are a number, anything else a string.
    pub fn from_path(s: &str) -> std::result::Result<ItemId, String> {
        match s.parse::<u64>() {
            Ok(n) => Ok(ItemId::Num(n)),
            Err(_) => ItemId::from_json(&serde_json::Value::String(s.to_string())),
        }
    }

    /// Its form in the database: JSON text (`7` and `"7"` differ).
    pub fn key(&self) -> String {
        match self {
            ItemId::Num(n) => n.to_string(),
            ItemId::Str(s) => serde_json::Value::String(s.clone()).to_string(),
        }
    }

    fn from_key(k: &str) -> Result<ItemId> {
        serde_json::from_str::<serde_json::Value>(k)
            .map_err(|e| e.to_string())
            .and_then(|v| ItemId::from_json(&v))
            .map_err(|e| Error::format("metadata database", format!("item key {k:?}: {e}")))
    }
}

impl<'de> serde::Deserialize<'de> for ItemId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        ItemId::from_json(&v).map_err(serde::de::Error::custom)
    }
}

/// An id equals the number of an item added without ids (its internal number).
impl PartialEq<Idx> for ItemId {
    fn eq(&self, other: &Idx) -> bool {
        matches!(self, ItemId::Num(n) if u64::try_from(*other).is_ok_and(|o| o == *n))
    }
}

impl std::fmt::Display for ItemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// One stored item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Its internal id (the index's).
    pub id: Idx,
    /// Its client id.
    pub key: ItemId,
    /// Its vector.
    pub vector: Vec<f32>,
    /// Its metadata as JSON text.
    pub metadata: String,
}

/// A fresh identity: 128 bits from the standard library's randomly seeded hasher, the time
/// and the process id.
fn new_identity() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut parts = [0u64; 2];
    for (i, p) in parts.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(now);
        h.write_u32(std::process::id());
        h.write_usize(i);
        *p = h.finish();
    }
    format!("{:016x}{:016x}", parts[0], parts[1])
}

/// Items to store: vectors (rows of `dim`), their metadata (JSON text) and client ids
/// (`None`: each item's id is its internal number).
#[derive(Debug, Clone, Copy)]
pub struct NewItems<'a> {
    /// The vectors, rows of `dim`.
    pub vectors: &'a [f32],
    /// Their dimension.
    pub dim: usize,
    /// One metadata text per vector.
    pub metadata: &'a [String],
    /// One client id per vector, or none.
    pub keys: Option<&'a [ItemId]>,
}

/// The SQLite database of collections and items.
pub struct ItemStore {
    conn: Connection,
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::Io {
        path: None,
        source: std::io::Error::other(format!("metadata database: {e}")),
    }
}

fn blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn floats(blob: &[u8]) -> Result<Vec<f32>> {
    if !blob.len().is_multiple_of(4) {
        return Err(Error::format(
            "metadata database",
            "a vector blob is not f32s",
        ));
    }
    Ok(blob
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Whether a database error is a uniqueness violation (an id that exists already).
fn is_duplicate(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

impl ItemStore {
    /// Opens (creating if missing) the database at `path` and checks its integrity.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(db_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS collections (
                 name TEXT PRIMARY KEY, dim INTEGER NOT NULL, metric TEXT NOT NULL,
                 description TEXT NOT NULL, next_id INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS items (
                 collection TEXT NOT NULL, id INTEGER NOT NULL, vector BLOB NOT NULL,
                 metadata TEXT NOT NULL, PRIMARY KEY (collection, id));
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .map_err(db_err)?;
        // Databases from before client ids: every item's id is its number.
        let has_key: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('items') WHERE name = 'key'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(db_err)?
            > 0;
        if !has_key {
            conn.execute_batch(
                "BEGIN;
                 ALTER TABLE items ADD COLUMN key TEXT;
                 UPDATE items SET key = CAST(id AS TEXT);
                 COMMIT;",
            )
            .map_err(db_err)?;
        }
        conn.execute_batch(
            "CREATE UNIQUE INDEX IF NOT EXISTS items_key ON items (collection, key);",
        )
        .map_err(db_err)?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('identity', ?1)",
            [new_identity()],
        )
        .map_err(db_err)?;
        let ok: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(db_err)?;
        if ok != "ok" {
            return Err(Error::format(
                format!("metadata database {}", path.display()),
                ok,
            ));
        }
        Ok(ItemStore { conn })
    }

    /// The database's identity: chosen when it was created, kept by every copy (snapshots
    /// hold it). A database whose identity differs from the snapshots' is not the one they
    /// were taken of.
    pub fn identity(&self) -> Result<String> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'identity'", [], |r| {
                r.get(0)
            })
            .map_err(db_err)
    }

    /// Gives the space of deleted rows back to the file system: checkpoints the WAL into
    /// the database, truncates it, and rewrites the database without free pages.
    pub fn shrink(&mut self) -> Result<()> {
        self.conn
            .execute_batch(
                "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .map_err(db_err)
    }

    /// Every collection's definition and next id.
    pub fn collections(&self) -> Result<Vec<(CollectionDef, Idx)>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT name, dim, metric, description, next_id FROM collections ORDER BY name",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(db_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (name, dim, metric, index, next) = row.map_err(db_err)?;
            out.push((
                CollectionDef {
                    name,
                    dim: dim as usize,
                    metric: Metric::parse(&metric)?,
                    index,
                },
                next,
            ));
        }
        Ok(out)
    }

    /// Records a new collection.
    pub fn create(&mut self, def: &CollectionDef) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO collections (name, dim, metric, description, next_id)
                 VALUES (?1, ?2, ?3, ?4, 0)",
                params![def.name, def.dim as i64, def.metric.name(), def.index],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Removes a collection and its items.
    pub fn drop_collection(&mut self, name: &str) -> Result<()> {
        let tx = self.conn.transaction().map_err(db_err)?;
        tx.execute("DELETE FROM items WHERE collection = ?1", [name])
            .map_err(db_err)?;
        tx.execute("DELETE FROM collections WHERE name = ?1", [name])
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// Stores items under consecutive new internal ids and returns the first, in one
    /// transaction that also deletes the items `replace` (internal ids: the old versions
    /// of upserted items). `keys` are the items' client ids (`None`: each item's id is its
    /// internal number). `apply` runs inside the transaction (it changes the index) and
    /// the transaction commits only if it succeeds, so the database never holds an item
    /// the caller failed to index. An id that exists already (and is not replaced) is an
    /// error naming it.
    pub fn write_items(
        &mut self,
        collection: &str,
        items: NewItems<'_>,
        replace: &[Idx],
        apply: impl FnOnce(Idx) -> Result<()>,
    ) -> Result<Idx> {
        let NewItems {
            vectors,
            dim,
            metadata,
            keys,
        } = items;
        let tx = self.conn.transaction().map_err(db_err)?;
        let first: Idx = tx
            .query_row(
                "SELECT next_id FROM collections WHERE name = ?1",
                [collection],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?
            .ok_or_else(|| Error::invalid(format!("no collection {collection:?}")))?;
        {
            let mut del = tx
                .prepare("DELETE FROM items WHERE collection = ?1 AND id = ?2")
                .map_err(db_err)?;
            for &id in replace {
                del.execute(params![collection, id]).map_err(db_err)?;
            }
            let mut st = tx
                .prepare(
                    "INSERT INTO items (collection, id, vector, metadata, key)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(db_err)?;
            for (i, (v, m)) in vectors.chunks_exact(dim).zip(metadata).enumerate() {
                let id = first + i as Idx;
                let key = keys.map_or_else(|| id.to_string(), |k| k[i].key());
                st.execute(params![collection, id, blob(v), m, key])
                    .map_err(|e| {
                        if is_duplicate(&e) {
                            Error::invalid(format!(
                                "an item with id {key} exists already{}",
                                if keys.is_none() {
                                    " (given by a client; items added without ids take \
                                     their internal number as id)"
                                } else {
                                    " (PUT upserts)"
                                }
                            ))
                        } else {
                            db_err(e)
                        }
                    })?;
            }
        }
        let n = metadata.len() as Idx;
        tx.execute(
            "UPDATE collections SET next_id = ?1 WHERE name = ?2",
            params![first + n, collection],
        )
        .map_err(db_err)?;
        apply(first)?;
        tx.commit().map_err(db_err)?;
        Ok(first)
    }

    /// Deletes items by internal id; returns the ids that existed.
    pub fn delete_items(&mut self, collection: &str, ids: &[Idx]) -> Result<Vec<Idx>> {
        let tx = self.conn.transaction().map_err(db_err)?;
        let mut gone = Vec::new();
        {
            let mut st = tx
                .prepare("DELETE FROM items WHERE collection = ?1 AND id = ?2")
                .map_err(db_err)?;
            for &id in ids {
                if st.execute(params![collection, id]).map_err(db_err)? > 0 {
                    gone.push(id);
                }
            }
        }
        tx.commit().map_err(db_err)?;
        Ok(gone)
    }

    /// The stored vectors of some items (by internal id); absent ids are left out.
    pub fn vectors_of(&self, collection: &str, ids: &[Idx]) -> Result<HashMap<Idx, Vec<f32>>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT vector FROM items WHERE collection = ?1 AND id = ?2")
            .map_err(db_err)?;
        let mut out = HashMap::with_capacity(ids.len());
        for &id in ids {
            let b: Option<Vec<u8>> = st
                .query_row(params![collection, id], |r| r.get(0))
                .optional()
                .map_err(db_err)?;
            if let Some(b) = b {
                out.insert(id, floats(&b)?);
            }
        }
        Ok(out)
    }

    /// Up to `limit` stored vectors of a collection with ids ≥ `from`, in id order: a page
    /// of a scan that lets go of the database between pages.
    pub fn vectors_page(
        &self,
        collection: &str,
        from: Idx,
        limit: usize,
    ) -> Result<Vec<(Idx, Vec<f32>)>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, vector FROM items WHERE collection = ?1 AND id >= ?2 ORDER BY id
                 LIMIT ?3",
            )
            .map_err(db_err)?;
        let mut rows = st
            .query(params![collection, from, limit as i64])
            .map_err(db_err)?;
        let mut out = Vec::with_capacity(limit.min(4096));
        while let Some(r) = rows.next().map_err(db_err)? {
            let b: Vec<u8> = r.get(1).map_err(db_err)?;
            out.push((r.get(0).map_err(db_err)?, floats(&b)?));
        }
        Ok(out)
    }

    /// Items of a collection with ids ≥ `from`, in id order, to `each`.
    pub fn for_each_item(
        &self,
        collection: &str,
        from: Idx,
        mut each: impl FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, vector, metadata, key FROM items WHERE collection = ?1 AND id >= ?2
                 ORDER BY id",
            )
            .map_err(db_err)?;
        let mut rows = st.query(params![collection, from]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let b: Vec<u8> = r.get(1).map_err(db_err)?;
            let key: String = r.get(3).map_err(db_err)?;
            each(Item {
                id: r.get(0).map_err(db_err)?,
                key: ItemId::from_key(&key)?,
                vector: floats(&b)?,
                metadata: r.get(2).map_err(db_err)?,
            })?;
        }
        Ok(())
    }

    /// Writes a consistent copy of the database to `path` (which must not exist).
    pub fn copy_to(&self, path: &Path) -> Result<()> {
        let p = path
            .to_str()
            .ok_or_else(|| Error::invalid("snapshot path is not UTF-8"))?;
        self.conn.execute("VACUUM INTO ?1", [p]).map_err(db_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_from_before_client_ids_gets_each_items_number_as_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE collections (name TEXT PRIMARY KEY, dim INTEGER NOT NULL,
                     metric TEXT NOT NULL, description TEXT NOT NULL, next_id INTEGER NOT NULL);
                 CREATE TABLE items (collection TEXT NOT NULL, id INTEGER NOT NULL,
                     vector BLOB NOT NULL, metadata TEXT NOT NULL, PRIMARY KEY (collection, id));
                 INSERT INTO collections VALUES ('c', 1, 'l2', 'Flat', 2);",
            )
            .unwrap();
            for id in 0..2i64 {
                conn.execute(
                    "INSERT INTO items VALUES ('c', ?1, ?2, '{}')",
                    params![id, blob(&[id as f32])],
                )
                .unwrap();
            }
        }
        let mut store = ItemStore::open(&path).unwrap();
        let mut keys = Vec::new();
        store
            .for_each_item("c", 0, |it| {
                keys.push(it.key);
                Ok(())
            })
            .unwrap();
        assert_eq!(keys, vec![ItemId::Num(0), ItemId::Num(1)]);
        // The migrated ids are unique like new ones.
        let items = NewItems {
            vectors: &[5.0],
            dim: 1,
            metadata: &["{}".to_string()],
            keys: Some(&[ItemId::Num(1)]),
        };
        let e = store.write_items("c", items, &[], |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("exists already"), "{e}");
        assert_eq!(ItemId::Num(7).key(), "7");
        assert_eq!(ItemId::Str("7".into()).key(), "\"7\"");
        assert_eq!(ItemId::from_key("\"7\"").unwrap(), ItemId::Str("7".into()));
    }
}
