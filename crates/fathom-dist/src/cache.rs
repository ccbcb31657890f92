//! A searcher's local copy of its shards: `<cache>/<sha256>.index`, downloaded from the
//! object store and verified (size and SHA-256) before it is renamed into place, and
//! verified again when a cached copy is reused — a file with the wrong checksum is
//! downloaded anew, never served.

use std::path::{Path, PathBuf};

use fathom_core::{Error, Result};
use fathom_index::Index;

use crate::manifest::{Manifest, ShardEntry, StoredFile};
use crate::objects::{Objects, sha256_file};

/// Where `file` is (or goes) in the cache.
pub fn cached_path(cache: &Path, file: &StoredFile) -> PathBuf {
    cache.join(format!("{}.index", file.sha256))
}

/// How a cached file came to be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// A verified copy was already in the cache.
    Cached,
    /// Downloaded now.
    Downloaded,
    /// The cached copy failed verification and was downloaded again.
    Replaced,
}

/// Makes sure a verified copy of `file` is in `cache`; returns its path.
pub async fn fetch(
    objects: &Objects,
    cache: &Path,
    file: &StoredFile,
) -> Result<(PathBuf, Fetched)> {
    std::fs::create_dir_all(cache).map_err(|e| Error::io(cache, e))?;
    let path = cached_path(cache, file);
    let mut how = Fetched::Downloaded;
    if path.exists() {
        let (sha, n) = sha256_file(&path)?;
        if sha == file.sha256 && n == file.bytes {
            return Ok((path, Fetched::Cached));
        }
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        how = Fetched::Replaced;
    }
    objects.download_verified(file, &path).await?;
    Ok((path, how))
}

/// A shard opened from its verified cached file.
pub struct LoadedShard {
    /// Its manifest entry.
    pub entry: ShardEntry,
    /// The index.
    pub index: Box<dyn Index>,
    /// Whether its inverted lists are served from a memory map of the file.
    pub mapped: bool,
}

/// Opens a verified cached shard (memory-mapped where the type allows) and checks it is
/// what the manifest says: dimension, metric, vector count.
pub fn open_shard(path: &Path, entry: &ShardEntry, m: &Manifest) -> Result<LoadedShard> {
    let index = fathom_io::faiss::read_index_mmap(path)?;
    let metric = m.metric_type()?;
    if index.dim() != m.d as usize
        || index.metric() != metric
        || index.ntotal() as u64 != entry.ntotal
    {
        return Err(Error::format(
            format!("shard {} ({})", entry.shard, path.display()),
            format!(
                "an index of dimension {}, metric {}, {} vectors; the manifest says dimension {}, \
                 metric {}, {} vectors",
                index.dim(),
                index.metric(),
                index.ntotal(),
                m.d,
                m.metric,
                entry.ntotal
            ),
        ));
    }
    let mapped = fathom_index::ivf::lists_of(&*index).is_some();
    Ok(LoadedShard {
        entry: entry.clone(),
        index,
        mapped,
    })
}
