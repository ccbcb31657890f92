//! The control plane's keys in etcd, and the view of a cluster read from them. One
//! collection's keys live under `/fathom/<name>/`:
//!
//! | key | value | lifetime |
//! |---|---|---|
//! | `manifest` | the served manifest version, decimal | permanent; changed only by compare-and-swap ([`publish_pointer`]) |
//! | `members/<member>` | [`MemberInfo`] as JSON | the searcher's lease |
//! | `ready/<member>/<version>/<shard>` | the shard file's SHA-256 | the searcher's lease |
//!
//! A searcher that dies or stalls stops renewing its lease, and etcd removes its
//! membership and READY keys together when the lease expires: routers and the other
//! searchers see it gone in their next read.

use std::collections::BTreeMap;

use fathom_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::etcd::Etcd;
use crate::manifest::Manifest;

/// Every key of collection `name`.
pub fn collection_prefix(name: &str) -> String {
    format!("/fathom/{name}/")
}

/// The manifest pointer of `name`.
pub fn pointer_key(name: &str) -> String {
    format!("/fathom/{name}/manifest")
}

/// The membership key of `member`.
pub fn member_key(name: &str, member: &str) -> String {
    format!("/fathom/{name}/members/{member}")
}

/// The READY key of `member` for `shard` of manifest `version`.
pub fn ready_key(name: &str, member: &str, version: u64, shard: u32) -> String {
    format!("/fathom/{name}/ready/{member}/{version}/{shard}")
}

/// Checks a member name: 1–128 of `A–Z a–z 0–9 _ - . :` (names become key segments).
pub fn check_member(member: &str) -> Result<()> {
    if !member.is_empty()
        && member.len() <= 128
        && member
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_-.:".contains(&c))
    {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "member name {member:?}: expected 1–128 ASCII letters, digits, '_', '-', '.' or ':'"
        )))
    }
}

/// What a searcher publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Its gRPC address, `host:port`.
    pub addr: String,
    /// Its process id (for people reading etcd).
    pub pid: u32,
}

/// A collection's cluster as read from etcd at one revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    /// etcd's revision of the read.
    pub revision: i64,
    /// The manifest version to serve, once one is published.
    pub pointer: Option<u64>,
    /// Live searchers by name.
    pub members: BTreeMap<String, MemberInfo>,
    /// Who serves what: `(version, shard)` → member → SHA-256 of the file it serves.
    pub ready: BTreeMap<(u64, u32), BTreeMap<String, String>>,
}

impl ClusterView {
    /// Reads `name`'s keys (one linearizable range read).
    pub async fn read(etcd: &Etcd, name: &str) -> Result<Self> {
        let prefix = collection_prefix(name);
        let (revision, kvs) = etcd.get_prefix(&prefix).await?;
        let mut view = ClusterView {
            revision,
            ..Default::default()
        };
        for kv in kvs {
            let Some(rest) = kv.key.strip_prefix(&prefix) else {
                continue;
            };
            let parts: Vec<&str> = rest.split('/').collect();
            match parts.as_slice() {
                ["manifest"] => {
                    view.pointer = std::str::from_utf8(&kv.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok());
                }
                ["members", member] => {
                    if let Ok(info) = serde_json::from_slice::<MemberInfo>(&kv.value) {
                        view.members.insert(member.to_string(), info);
                    }
                }
                ["ready", member, version, shard] => {
                    if let (Ok(v), Ok(s)) = (version.parse(), shard.parse()) {
                        view.ready.entry((v, s)).or_default().insert(
                            member.to_string(),
                            String::from_utf8_lossy(&kv.value).into_owned(),
                        );
                    }
                }
                // Keys of a later format are not this reader's business.
                _ => {}
            }
        }
        Ok(view)
    }

    /// The live members' names, sorted.
    pub fn member_names(&self) -> Vec<&str> {
        self.members.keys().map(String::as_str).collect()
    }

    /// Live members serving `shard` of `m` (the file the manifest names), by name.
    pub fn ready_members<'a>(&'a self, m: &Manifest, shard: u32) -> Vec<&'a str> {
        let Some(entry) = m.shards.get(shard as usize) else {
            return Vec::new();
        };
        self.ready
            .get(&(m.version, shard))
            .into_iter()
            .flatten()
            .filter(|(member, sha)| {
                **sha == entry.file.sha256 && self.members.contains_key(*member)
            })
            .map(|(member, _)| member.as_str())
            .collect()
    }

    /// The fewest READY replicas any shard of `m` has.
    pub fn min_replicas(&self, m: &Manifest) -> usize {
        (0..m.shards.len() as u32)
            .map(|s| self.ready_members(m, s).len())
            .min()
            .unwrap_or(0)
    }
}

/// Points `name` at manifest `version`: an atomic compare-and-swap from the value read
/// just before, retried if another publisher moved it in between, so two publishers never
/// overwrite each other unseen. Returns the version it replaced.
pub async fn publish_pointer(etcd: &Etcd, name: &str, version: u64) -> Result<Option<u64>> {
    let key = pointer_key(name);
    for _ in 0..20 {
        let old = etcd.get(&key).await?;
        let new = version.to_string();
        if etcd
            .compare_and_swap(&key, old.as_deref(), new.as_bytes())
            .await?
        {
            return Ok(old.and_then(|v| String::from_utf8_lossy(&v).trim().parse().ok()));
        }
    }
    Err(Error::invalid(format!(
        "could not move {key} to {version}: other publishers kept changing it"
    )))
}
