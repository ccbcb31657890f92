//! The object store shards live in, through the `object_store` crate: `file:///path` (a
//! directory) or `s3://bucket/prefix` (any S3-compatible server; endpoint, region and
//! credentials from the usual AWS environment variables, path-style requests). Keys are
//! relative to the URL's prefix. Errors name the object's full URL.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fathom_core::{Error, Result};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use crate::manifest::StoredFile;

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An object store and the prefix under which fathom's keys live.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({})", self.url)
    }
}

fn store_err(what: String, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::invalid(format!("{what} does not exist")),
        e => Error::Io {
            path: None,
            source: std::io::Error::other(format!("{what}: {e}")),
        },
    }
}

impl Objects {
    /// Opens the store a URL names: `file:///abs/dir` (created if missing) or
    /// `s3://bucket[/prefix]`. For S3, `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`) points at
    /// an S3-compatible server (`http://` allowed), `AWS_REGION` defaults to `us-east-1`,
    /// and credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let objects = fathom_dist::Objects::open(&format!("file://{}", dir.path().display())).unwrap();
    /// objects.put("a/b.json", b"{}".to_vec()).await.unwrap();
    /// assert_eq!(objects.get("a/b.json").await.unwrap(), b"{}");
    /// assert_eq!(objects.list("a").await.unwrap(), ["a/b.json"]);
    /// assert!(objects.get("a/c.json").await.unwrap_err().to_string().contains("does not exist"));
    /// assert!(fathom_dist::Objects::open("ftp://x/y").is_err());
    /// # });
    /// ```
    pub fn open(url: &str) -> Result<Self> {
        let (store, prefix): (Arc<dyn ObjectStore>, String) = if let Some(path) =
            url.strip_prefix("file://")
        {
            let dir = Path::new(path);
            if !dir.is_absolute() {
                return Err(Error::invalid(format!(
                    "store URL {url}: a file:// URL needs an absolute path (file:///dir)"
                )));
            }
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| store_err(format!("store {url}"), e))?;
            (Arc::new(fs), String::new())
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::invalid(format!(
                    "store URL {url}: expected s3://bucket[/prefix]"
                )));
            }
            // No whole-request timeout (the client's default, 30 s, cuts off a 1.3 GB
            // shard downloading beside a busy searcher, and every retry starts over): a
            // download fails when no bytes arrive for a minute instead (download_verified),
            // other calls after a bound of their own.
            let client = object_store::ClientOptions::new()
                .with_timeout_disabled()
                .with_connect_timeout(Duration::from_secs(5));
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_virtual_hosted_style_request(false)
                .with_client_options(client);
            let endpoint = std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .ok();
            if let Some(ep) = &endpoint {
                b = b
                    .with_endpoint(ep)
                    .with_allow_http(ep.starts_with("http://"));
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err()
            {
                b = b.with_region("us-east-1");
            }
            let s3 = b
                .build()
                .map_err(|e| store_err(format!("store {url}"), e))?;
            (Arc::new(s3), prefix.trim_matches('/').to_string())
        } else {
            return Err(Error::invalid(format!(
                "store URL {url:?}: unknown scheme; expected file:///path or s3://bucket/prefix"
            )));
        };
        Ok(Objects {
            store,
            prefix,
            url: url.trim_end_matches('/').to_string(),
        })
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The full URL of `key`, for messages.
    pub fn describe(&self, key: &str) -> String {
        format!("{}/{key}", self.url)
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Stores `bytes` under `key` (failing after a minute plus a second per MB).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let what = format!("writing {}", self.describe(key));
        let limit = Duration::from_secs(60 + (bytes.len() >> 20) as u64);
        bounded(
            limit,
            &what,
            self.store.put(&self.path(key), PutPayload::from(bytes)),
        )
        .await?
        .map_err(|e| store_err(what, e))?;
        Ok(())
    }

    /// The bytes of `key`; an error saying so when it does not exist (or when it takes
    /// more than two minutes: this is for manifests and trained indexes, not shards).
    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let what = || format!("object {}", self.describe(key));
        let read = async {
            let r = self
                .store
                .get(&self.path(key))
                .await
                .map_err(|e| store_err(what(), e))?;
            Ok::<_, Error>(r.bytes().await.map_err(|e| store_err(what(), e))?.to_vec())
        };
        bounded(Duration::from_secs(120), &what(), read).await?
    }

    /// The bytes of `file`, checked against its size and SHA-256.
    pub async fn get_verified(&self, file: &StoredFile) -> Result<Vec<u8>> {
        let bytes = self.get(&file.key).await?;
        let sha = sha256_hex(&bytes);
        if sha != file.sha256 || bytes.len() as u64 != file.bytes {
            return Err(mismatch(
                &self.describe(&file.key),
                file,
                bytes.len() as u64,
                &sha,
            ));
        }
        Ok(bytes)
    }

    /// Streams `file` into `dest` (through a temporary name beside it, renamed once its
    /// size and SHA-256 match): a file that fails verification never appears at `dest`.
    pub async fn download_verified(&self, file: &StoredFile, dest: &Path) -> Result<()> {
        use std::io::Write;
        let what = || format!("object {}", self.describe(&file.key));
        let tmp = dest.with_extension("part");
        let result = async {
            let mut out = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
            let mut stream = self
                .store
                .get(&self.path(&file.key))
                .await
                .map_err(|e| store_err(what(), e))?
                .into_stream();
            let mut hasher = Sha256::new();
            let mut n = 0u64;
            let idle = Duration::from_secs(60);
            while let Some(chunk) =
                bounded(idle, &format!("{} (no data)", what()), stream.try_next())
                    .await?
                    .map_err(|e| store_err(what(), e))?
            {
                hasher.update(&chunk);
                n += chunk.len() as u64;
                out.write_all(&chunk).map_err(|e| Error::io(&tmp, e))?;
            }
            let sha = hex(&hasher.finalize());
            if sha != file.sha256 || n != file.bytes {
                return Err(mismatch(&self.describe(&file.key), file, n, &sha));
            }
            // No fsync: a copy torn by a crash fails verification when the cache is next
            // used and is downloaded again, and flushing 1.3 GB costs a busy searcher
            // seconds of disk time before the shard can serve.
            std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Every key under `dir` (recursively), sorted.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>> {
        let base = self.path(dir);
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&base))
            .try_collect()
            .await
            .map_err(|e| store_err(format!("listing {}", self.describe(dir)), e))?;
        let cut = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut keys: Vec<String> = metas
            .into_iter()
            .map(|m| m.location.as_ref().get(cut..).unwrap_or("").to_string())
            .collect();
        keys.sort();
        Ok(keys)
    }
}

/// `f`, or an error naming `what` when it takes longer than `limit`.
async fn bounded<T>(
    limit: Duration,
    what: &str,
    f: impl std::future::Future<Output = T>,
) -> Result<T> {
    tokio::time::timeout(limit, f).await.map_err(|_| Error::Io {
        path: None,
        source: std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{what}: no answer within {} s", limit.as_secs()),
        ),
    })
}

fn mismatch(what: &str, file: &StoredFile, got_bytes: u64, got_sha: &str) -> Error {
    Error::format(
        what,
        format!(
            "{got_bytes} bytes with SHA-256 {got_sha}; the manifest says {} bytes, {} — \
             refusing to use it",
            file.bytes, file.sha256
        ),
    )
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let got = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if got == 0 {
            break;
        }
        hasher.update(&buf[..got]);
        n += got as u64;
    }
    Ok((hex(&hasher.finalize()), n))
}
