//! Build once, shard many: the index is trained once (`<name>/trained/<sha>.index`), then
//! each shard is that trained index plus the vectors of its contiguous id slice, added with
//! their global ids, written as a Faiss file under its content address
//! (`<name>/shards/<sha>.index`). Slices can be built by separate processes or machines:
//! each leaves a record (`<name>/builds/<trained sha>/<n>/<i>.json`) and
//! [`publish`] gathers the records of one training into the next manifest.

use fathom_core::{Error, Idx, MetricType, Result};
use fathom_index::{Index, IndexIdMap, index_factory};
use serde::{Deserialize, Serialize};

use crate::manifest::{self, FORMAT, Manifest, ShardEntry, StoredFile, metric_name};
use crate::objects::{Objects, sha256_hex};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// Collection name routers serve it under.
    pub name: String,
    /// Faiss factory string.
    pub factory: String,
    /// How vectors compare.
    pub metric: MetricType,
    /// Number of shards.
    pub shards: u32,
}

/// The training every slice of a build starts from (`<name>/build.json`, replaced by each
/// new training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Factory string.
    pub factory: String,
    /// `"l2"` or `"ip"`.
    pub metric: String,
    /// Dimension.
    pub d: u32,
    /// Inverted lists (0 when not IVF).
    pub nlist: u64,
    /// Shards the base is cut into.
    pub shards: u32,
    /// Vectors in the base.
    pub nb: u64,
    /// The trained, empty index.
    pub trained: StoredFile,
}

/// The ids of shard `i` of `n` over `nb` vectors: a contiguous slice.
pub fn slice(i: u32, n: u32, nb: u64) -> std::ops::Range<u64> {
    let (i, n) = (i as u64, n as u64);
    i * nb / n..(i + 1) * nb / n
}

fn build_key(name: &str) -> String {
    format!("{name}/build.json")
}

fn record_key(name: &str, trained_sha: &str, n: u32, i: u32) -> String {
    format!("{name}/builds/{trained_sha}/{n}/{i}.json")
}

/// Checks a collection name: 1–64 of `A–Z a–z 0–9 _ - .`, not starting with `.` (names
/// become file names and object keys).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_-.".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "collection name {name:?}: expected 1–64 ASCII letters (a–z, A–Z), digits, '_', \
             '-' or '.', not starting with '.'"
        )))
    }
}

/// A new index for `spec` that keeps the ids it is given (an id map in front of indexes
/// that number vectors by position).
fn new_index(spec: &BuildSpec, d: usize) -> Result<Box<dyn Index>> {
    let index = index_factory(d, &spec.factory, spec.metric)?;
    Ok(if index.ids_are_positions() {
        Box::new(IndexIdMap::new(index))
    } else {
        index
    })
}

/// Trains the index of `spec` on `learn` (rows of `d`), uploads it and records it as the
/// training the slices of a base of `nb` vectors start from.
pub async fn train(
    objects: &Objects,
    spec: &BuildSpec,
    learn: &[f32],
    d: usize,
    nb: u64,
) -> Result<BuildRecord> {
    check_name(&spec.name)?;
    if spec.shards == 0 || spec.shards as u64 > nb.max(1) {
        return Err(Error::invalid(format!(
            "--shards {}: expected 1..={nb} (at most one shard per base vector)",
            spec.shards
        )));
    }
    let mut index = new_index(spec, d)?;
    if !index.is_trained() {
        index.train(learn)?;
    }
    let bytes = fathom_io::faiss::index_to_bytes(&*index)?;
    let trained = upload(objects, &format!("{}/trained", spec.name), bytes).await?;
    let record = BuildRecord {
        factory: spec.factory.clone(),
        metric: metric_name(spec.metric).into(),
        d: d as u32,
        nlist: fathom_index::ivf::lists_of(&*index).map_or(0, |l| l.nlist as u64),
        shards: spec.shards,
        nb,
        trained,
    };
    let json = serde_json::to_vec_pretty(&record).map_err(|e| Error::invalid(e.to_string()))?;
    objects.put(&build_key(&spec.name), json).await?;
    Ok(record)
}

/// Makes `record`'s trained index (of another collection) the current training of `name`,
/// cut into `shards` slices of a base of `nb` vectors: shards built on it are comparable,
/// vector for vector, with that collection's.
pub async fn adopt(
    objects: &Objects,
    name: &str,
    record: &BuildRecord,
    shards: u32,
    nb: u64,
) -> Result<BuildRecord> {
    check_name(name)?;
    if shards == 0 || shards as u64 > nb.max(1) {
        return Err(Error::invalid(format!(
            "--shards {shards}: expected 1..={nb} (at most one shard per base vector)"
        )));
    }
    let mine = BuildRecord {
        shards,
        nb,
        ..record.clone()
    };
    let json = serde_json::to_vec_pretty(&mine).map_err(|e| Error::invalid(e.to_string()))?;
    objects.put(&build_key(name), json).await?;
    Ok(mine)
}

/// The current training of `name`, as [`train`] recorded it.
pub async fn current_build(objects: &Objects, name: &str) -> Result<BuildRecord> {
    let key = build_key(name);
    let bytes = objects.get(&key).await.map_err(|e| {
        e.context(format!(
            "no training of {name:?} yet: run `fathom shard build … --train-only` (or a build \
             of all shards) first"
        ))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::format(objects.describe(&key), e.to_string()))
}

/// Uploads `bytes` as `<dir>/<sha>.index`.
async fn upload(objects: &Objects, dir: &str, bytes: Vec<u8>) -> Result<StoredFile> {
    let sha256 = sha256_hex(&bytes);
    let file = StoredFile {
        key: format!("{dir}/{sha256}.index"),
        sha256,
        bytes: bytes.len() as u64,
    };
    objects.put(&file.key, bytes).await?;
    Ok(file)
}

/// Builds shard `i` of the current training: the trained index plus `base` (the rows of
/// the shard's slice, `d` wide), added with ids from the slice's start; uploads it and
/// leaves its record for [`publish`].
pub async fn build_shard(
    objects: &Objects,
    name: &str,
    record: &BuildRecord,
    i: u32,
    base: &[f32],
) -> Result<ShardEntry> {
    let ids = slice(i, record.shards, record.nb);
    let d = record.d as usize;
    let n = fathom_core::check::vectors("base slice", base, d)?;
    if n as u64 != ids.end - ids.start {
        return Err(Error::DimensionMismatch {
            what: format!("shard {i}'s slice"),
            got: n,
            expected: format!(
                "{} vectors (ids {}..{})",
                ids.end - ids.start,
                ids.start,
                ids.end
            ),
        });
    }
    let trained = objects.get_verified(&record.trained).await?;
    let mut index = fathom_io::faiss::read_index_bytes(&trained)?;
    let labels: Vec<Idx> = (ids.start as Idx..ids.end as Idx).collect();
    index.add_with_ids(base, &labels)?;
    let bytes = fathom_io::faiss::index_to_bytes(&*index)?;
    let file = upload(objects, &format!("{name}/shards"), bytes).await?;
    let entry = ShardEntry {
        shard: i,
        file,
        ntotal: index.ntotal() as u64,
        id_start: ids.start as i64,
        id_end: ids.end as i64,
    };
    let json = serde_json::to_vec_pretty(&entry).map_err(|e| Error::invalid(e.to_string()))?;
    objects
        .put(
            &record_key(name, &record.trained.sha256, record.shards, i),
            json,
        )
        .await?;
    Ok(entry)
}

/// Writes the next manifest of `name` from the shards built on its current training;
/// every shard must be there.
pub async fn publish(objects: &Objects, name: &str) -> Result<Manifest> {
    let record = current_build(objects, name).await?;
    let mut shards = Vec::with_capacity(record.shards as usize);
    let mut missing = Vec::new();
    for i in 0..record.shards {
        let key = record_key(name, &record.trained.sha256, record.shards, i);
        match objects.get(&key).await {
            Ok(bytes) => {
                let e: ShardEntry = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::format(objects.describe(&key), e.to_string()))?;
                shards.push(e);
            }
            Err(_) => missing.push(i),
        }
    }
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "cannot publish {name:?}: shards {missing:?} of {} are not built on the current \
             training {} yet (`fathom shard build … --shard i/{}`)",
            record.shards, record.trained.sha256, record.shards
        )));
    }
    let version = manifest::versions(objects, name)
        .await?
        .last()
        .copied()
        .unwrap_or(0)
        + 1;
    let m = Manifest {
        format: FORMAT.into(),
        name: name.into(),
        version,
        factory: record.factory,
        metric: record.metric,
        d: record.d,
        nlist: record.nlist,
        trained: record.trained,
        shards,
    };
    m.validate()?;
    let json = serde_json::to_vec_pretty(&m).map_err(|e| Error::invalid(e.to_string()))?;
    objects
        .put(&manifest::manifest_key(name, version), json)
        .await?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_tile_the_base() {
        for (n, nb) in [(1u32, 10u64), (4, 10), (3, 1000), (7, 7)] {
            let mut next = 0;
            for i in 0..n {
                let s = slice(i, n, nb);
                assert_eq!(s.start, next);
                next = s.end;
            }
            assert_eq!(next, nb);
        }
    }

    #[tokio::test]
    async fn train_build_publish_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(&format!("file://{}", dir.path().display())).unwrap();
        let d = 8;
        let nb = 600u64;
        let x = fathom_tests::uniform_data(nb as usize, d, 3);
        let spec = BuildSpec {
            name: "t".into(),
            factory: "IVF8,Flat".into(),
            metric: MetricType::L2,
            shards: 3,
        };
        let rec = train(&objects, &spec, &x, d, nb).await.unwrap();
        assert_eq!(rec.nlist, 8);
        assert!(
            publish(&objects, "t")
                .await
                .unwrap_err()
                .to_string()
                .contains("[0, 1, 2]")
        );
        for i in 0..3 {
            let r = slice(i, 3, nb);
            build_shard(
                &objects,
                "t",
                &rec,
                i,
                &x[r.start as usize * d..r.end as usize * d],
            )
            .await
            .unwrap();
        }
        let m = publish(&objects, "t").await.unwrap();
        assert_eq!((m.version, m.ntotal(), m.shards.len()), (1, nb, 3));
        assert_eq!(manifest::load(&objects, "t", None).await.unwrap(), m);
        assert_eq!(publish(&objects, "t").await.unwrap().version, 2);
        // A slice of the wrong size is refused.
        assert!(build_shard(&objects, "t", &rec, 0, &x[..d]).await.is_err());
    }
}
