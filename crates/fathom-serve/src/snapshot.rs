//! Snapshots: a consistent copy of the database and of every collection's index, in a
//! directory that appears whole (written under a temporary name, fsynced, renamed) with a
//! manifest of counts and checksums that the start-up check verifies.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use fathom_core::{Error, Idx, Result};
use serde::{Deserialize, Serialize};

/// What a snapshot holds, written last (its presence marks a complete snapshot).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Sequence number (the directory is `snap-<seq>`).
    pub seq: u64,
    /// The database copy and its checksum.
    pub db: FileSum,
    /// The identity of the database it copies ([`crate::store::ItemStore::identity`]);
    /// `None` in snapshots written before identities existed.
    #[serde(default)]
    pub db_id: Option<String>,
    /// Each collection's index file, count and next id at the snapshot.
    pub collections: Vec<CollectionSnap>,
}

/// A file and its checksum.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileSum {
    /// File name inside the snapshot directory.
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
    /// FNV-1a 64 of the contents, as hex.
    pub fnv64: String,
}

/// One collection in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CollectionSnap {
    /// Collection name.
    pub name: String,
    /// The index file.
    pub index: FileSum,
    /// Vectors in the index.
    pub ntotal: usize,
    /// Items with metadata at the snapshot.
    pub items: usize,
    /// The next id then: items with larger ids are replayed from the database.
    pub next_id: Idx,
}

/// FNV-1a 64 of a file (streamed).
pub fn checksum(path: &Path) -> Result<FileSum> {
    let mut f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        for &b in &buf[..n] {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Ok(FileSum {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes,
        fnv64: format!("{h:016x}"),
    })
}

/// The snapshot directories under `dir`, newest first.
pub fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let seq = name.strip_prefix("snap-")?.parse().ok()?;
            Some((seq, e.path()))
        })
        .collect();
    out.sort_by_key(|b| std::cmp::Reverse(b.0));
    out
}

/// Reads a snapshot's manifest without checking the files.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = fs::read_to_string(path.join("manifest.json"))
        .map_err(|e| Error::io(path.join("manifest.json"), e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::format(format!("{}/manifest.json", path.display()), e.to_string()))
}

/// Reads a snapshot's manifest and checks every file against it; `Err` says what is wrong.
pub fn verify(path: &Path) -> Result<Manifest> {
    let m = read_manifest(path)?;
    let files = std::iter::once(&m.db).chain(m.collections.iter().map(|c| &c.index));
    for f in files {
        if f.file.contains('/') || f.file.contains("..") {
            return Err(Error::format(
                "snapshot manifest",
                format!("file {:?}", f.file),
            ));
        }
        let got = checksum(&path.join(&f.file))?;
        if got.bytes != f.bytes || got.fnv64 != f.fnv64 {
            return Err(Error::format(
                format!("snapshot file {}", path.join(&f.file).display()),
                format!(
                    "{} bytes, checksum {}; the manifest says {} bytes, {}",
                    got.bytes, got.fnv64, f.bytes, f.fnv64
                ),
            ));
        }
    }
    Ok(m)
}

/// Makes `tmp` (a filled directory) the snapshot `seq` under `dir`: fsyncs its files and
/// itself, renames it, fsyncs `dir`; then keeps only the newest `keep` snapshots of the
/// database `db_id`. Snapshots of another database (another identity) are never removed:
/// they hold data this one lacks (a replaced or lost database), so rotation leaves them
/// for a person to look at.
pub fn publish(dir: &Path, tmp: &Path, seq: u64, keep: usize, db_id: &str) -> Result<PathBuf> {
    for e in fs::read_dir(tmp).map_err(|e| Error::io(tmp, e))?.flatten() {
        fs::File::open(e.path())
            .and_then(|f| f.sync_all())
            .map_err(|err| Error::io(e.path(), err))?;
    }
    let sync_dir = |p: &Path| {
        fs::File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(p, e))
    };
    sync_dir(tmp)?;
    let dest = dir.join(format!("snap-{seq:08}"));
    fs::rename(tmp, &dest).map_err(|e| Error::io(&dest, e))?;
    sync_dir(dir)?;
    let ours = list(dir).into_iter().filter(|(_, p)| {
        // A snapshot without a readable manifest was never completed; one of unknown
        // identity predates identities and was taken of this database's line.
        read_manifest(p).map_or(true, |m| m.db_id.as_deref().is_none_or(|id| id == db_id))
    });
    for (_, old) in ours.skip(keep.max(1)) {
        let _ = fs::remove_dir_all(old);
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_catch_any_change_and_listing_is_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"hello").unwrap();
        let a = checksum(&p).unwrap();
        fs::write(&p, b"hellp").unwrap();
        assert_ne!(a.fnv64, checksum(&p).unwrap().fnv64);
        for s in [3, 10, 7] {
            fs::create_dir(dir.path().join(format!("snap-{s:08}"))).unwrap();
        }
        let seqs: Vec<u64> = list(dir.path()).iter().map(|x| x.0).collect();
        assert_eq!(seqs, [10, 7, 3]);
    }
}
