//! The durable record of every collection: its definition and its items (id, vector,
//! metadata) in one SQLite database. It is the source of truth: an index is derived from
//! it (snapshotted for a fast start, its tail replayed from here), so an acknowledged add
//! survives a crash and index and metadata can always be brought back in step.

use std::path::Path;

use fathom_core::{Error, Idx, MetricType, Result};
use rusqlite::{Connection, OptionalExtension, params};

/// What defines a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionDef {
    /// Its name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Vector dimension.
    pub dim: usize,
    /// How vectors compare.
    pub metric: MetricType,
    /// Factory string of its index.
    pub index: String,
}

/// One stored item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Its id.
    pub id: Idx,
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

pub(crate) fn metric_name(m: MetricType) -> &'static str {
    match m {
        MetricType::InnerProduct => "ip",
        _ => "l2",
    }
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
                    metric: MetricType::parse(&metric)?,
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
                params![def.name, def.dim as i64, metric_name(def.metric), def.index],
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

    /// Stores items with consecutive new ids and returns the first; `apply` runs inside
    /// the transaction (it adds them to the index) and the items are committed only if it
    /// succeeds, so the database never holds an item the caller failed to index.
    pub fn add_items(
        &mut self,
        collection: &str,
        vectors: &[f32],
        dim: usize,
        metadata: &[String],
        apply: impl FnOnce(Idx) -> Result<()>,
    ) -> Result<Idx> {
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
            let mut st = tx
                .prepare(
                    "INSERT INTO items (collection, id, vector, metadata) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(db_err)?;
            for (i, (v, m)) in vectors.chunks_exact(dim).zip(metadata).enumerate() {
                let blob: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                st.execute(params![collection, first + i as Idx, blob, m])
                    .map_err(db_err)?;
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

    /// Deletes items; returns the ids that existed.
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
                "SELECT id, vector, metadata FROM items WHERE collection = ?1 AND id >= ?2
                 ORDER BY id",
            )
            .map_err(db_err)?;
        let mut rows = st.query(params![collection, from]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let blob: Vec<u8> = r.get(1).map_err(db_err)?;
            if !blob.len().is_multiple_of(4) {
                return Err(Error::format(
                    "metadata database",
                    "a vector blob is not f32s",
                ));
            }
            each(Item {
                id: r.get(0).map_err(db_err)?,
                vector: blob
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
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
