//! The manifest: what one version of a sharded index is made of. It is a JSON object in
//! the object store (`<name>/manifests/v<N>.json`), written once and never changed; the
//! files it names are content-addressed (their key holds their SHA-256), so a cache never
//! needs invalidating: a key either names the bytes it always named or nothing.

use fathom_core::{Error, MetricType, Result};
use serde::{Deserialize, Serialize};

use crate::objects::Objects;

/// The format tag every manifest carries.
pub const FORMAT: &str = "fathom-shards/1";

/// A file in the object store with its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// Its key, relative to the store's prefix.
    pub key: String,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

/// One shard: the trained index plus the vectors of a contiguous id range, added with
/// their global ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Its number, `0..shards`.
    pub shard: u32,
    /// The Faiss-format index file.
    pub file: StoredFile,
    /// Vectors it holds.
    pub ntotal: u64,
    /// The first id it holds.
    pub id_start: i64,
    /// One past the last id it holds.
    pub id_end: i64,
}

/// One version of a sharded index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The collection name routers serve it under.
    pub name: String,
    /// Its version (the `N` of `v<N>.json`).
    pub version: u64,
    /// The factory string it was built with.
    pub factory: String,
    /// `"l2"` or `"ip"`.
    pub metric: String,
    /// Vector dimension.
    pub d: u32,
    /// Inverted lists of the trained index (0 for non-IVF indexes).
    pub nlist: u64,
    /// The trained, empty index every shard started from.
    pub trained: StoredFile,
    /// The shards, by number.
    pub shards: Vec<ShardEntry>,
}

/// The metric's name in manifests.
pub fn metric_name(m: MetricType) -> &'static str {
    match m {
        MetricType::InnerProduct => "ip",
        _ => "l2",
    }
}

impl Manifest {
    /// The metric.
    pub fn metric_type(&self) -> Result<MetricType> {
        match self.metric.as_str() {
            "l2" => Ok(MetricType::L2),
            "ip" => Ok(MetricType::InnerProduct),
            m => Err(Error::format(
                "manifest",
                format!("metric {m:?}; expected \"l2\" or \"ip\""),
            )),
        }
    }

    /// Vectors over all shards.
    pub fn ntotal(&self) -> u64 {
        self.shards.iter().map(|s| s.ntotal).sum()
    }

    /// Checks what a reader relies on: the format, shards numbered `0..n` in order with
    /// ids that tile `0..ntotal`, sane sizes, keys that stay under the store's prefix.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| {
            Err(Error::format(
                format!("manifest {} v{}", self.name, self.version),
                why,
            ))
        };
        if self.format != FORMAT {
            return bad(format!("format {:?}; expected {FORMAT:?}", self.format));
        }
        self.metric_type()?;
        if self.d == 0 || self.d > 65536 {
            return bad(format!("dimension {}; expected 1..=65536", self.d));
        }
        if self.shards.is_empty() {
            return bad("no shards".into());
        }
        let mut next = 0i64;
        for (i, s) in self.shards.iter().enumerate() {
            if s.shard as usize != i {
                return bad(format!("shard {} listed at position {i}", s.shard));
            }
            if s.id_start != next
                || s.id_end < s.id_start
                || (s.id_end - s.id_start) as u64 != s.ntotal
            {
                return bad(format!(
                    "shard {i} holds ids {}..{} ({} vectors); expected ids from {next} and one per vector",
                    s.id_start, s.id_end, s.ntotal
                ));
            }
            next = s.id_end;
        }
        for f in std::iter::once(&self.trained).chain(self.shards.iter().map(|s| &s.file)) {
            if f.key
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
                || f.sha256.len() != 64
                || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return bad(format!("file entry {:?} / {:?}", f.key, f.sha256));
            }
        }
        Ok(())
    }
}

/// The key of manifest version `v` of `name`.
pub fn manifest_key(name: &str, v: u64) -> String {
    format!("{name}/manifests/v{v}.json")
}

/// The versions of `name`'s manifests in the store, ascending.
pub async fn versions(objects: &Objects, name: &str) -> Result<Vec<u64>> {
    let mut v: Vec<u64> = objects
        .list(&format!("{name}/manifests"))
        .await?
        .iter()
        .filter_map(|k| {
            k.rsplit('/')
                .next()?
                .strip_prefix('v')?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// Reads manifest `version` of `name` (the newest when `None`) and validates it.
pub async fn load(objects: &Objects, name: &str, version: Option<u64>) -> Result<Manifest> {
    let v = match version {
        Some(v) => v,
        None => *versions(objects, name).await?.last().ok_or_else(|| {
            Error::invalid(format!(
                "no manifest of {name:?} in {} (expected {}): build and publish it with \
                 `fathom shard build`",
                objects.url(),
                manifest_key(name, 1)
            ))
        })?,
    };
    let key = manifest_key(name, v);
    let bytes = objects.get(&key).await?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
        Error::format(
            format!("manifest {}", objects.describe(&key)),
            e.to_string(),
        )
    })?;
    if m.version != v || m.name != name {
        return Err(Error::format(
            format!("manifest {}", objects.describe(&key)),
            format!("it says name {:?} version {}", m.name, m.version),
        ));
    }
    m.validate()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(c: char) -> StoredFile {
        StoredFile {
            key: format!("x/shards/{}.index", c.to_string().repeat(64)),
            sha256: c.to_string().repeat(64),
            bytes: 10,
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            name: "x".into(),
            version: 1,
            factory: "IVF4,Flat".into(),
            metric: "l2".into(),
            d: 8,
            nlist: 4,
            trained: file('a'),
            shards: vec![
                ShardEntry {
                    shard: 0,
                    file: file('b'),
                    ntotal: 5,
                    id_start: 0,
                    id_end: 5,
                },
                ShardEntry {
                    shard: 1,
                    file: file('c'),
                    ntotal: 3,
                    id_start: 5,
                    id_end: 8,
                },
            ],
        }
    }

    #[test]
    fn validation_catches_gaps_escapes_and_bad_sums() {
        assert!(manifest().validate().is_ok());
        assert_eq!(manifest().ntotal(), 8);
        let mut m = manifest();
        m.shards[1].id_start = 6;
        assert!(m.validate().unwrap_err().to_string().contains("shard 1"));
        let mut m = manifest();
        m.shards[0].file.key = "../../etc/passwd".into();
        assert!(m.validate().is_err());
        let mut m = manifest();
        m.trained.sha256 = "zz".into();
        assert!(m.validate().is_err());
        let mut m = manifest();
        m.metric = "cosine".into();
        assert!(m.validate().is_err());
        let mut m = manifest();
        m.shards.swap(0, 1);
        assert!(m.validate().is_err());
    }
}
