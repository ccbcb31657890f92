//! A small client of etcd's v3 gRPC API: the calls fathom's control plane needs (ranges,
//! puts, deletes, a compare-and-swap transaction, leases), over every member of the
//! cluster. A call goes to the member that last answered; when that member is down,
//! stalled or cut off from its quorum, the call moves on to the next one, each attempt
//! bounded by a timeout, so one dead member costs one timeout at most and a dead cluster
//! an error, never a hang.
//!
//! etcd does the consensus, the failure detection (leases) and the atomic swap of the
//! manifest pointer; nothing here replicates or agrees on anything itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fathom_core::{Error, Result};
use tonic::transport::{Channel, Endpoint};

/// The generated messages and clients of `proto/etcd.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("etcdserverpb");
}

use pb::kv_client::KvClient;
use pb::lease_client::LeaseClient;

/// A key and its value as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// The lease it is attached to (0: none).
    pub lease: i64,
}

/// A connection to an etcd cluster.
pub struct Etcd {
    endpoints: Vec<String>,
    channels: Vec<Channel>,
    /// The member that answered last.
    current: AtomicUsize,
    timeout: Duration,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Etcd({})", self.endpoints.join(","))
    }
}

/// The end of the key range holding every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: the range runs to the end of the key space.
    vec![0]
}

/// Whether a failed call may succeed on another member (the member is unreachable,
/// stalled or without quorum) rather than being refused by the cluster itself.
fn try_elsewhere(s: &tonic::Status) -> bool {
    use tonic::Code::*;
    matches!(
        s.code(),
        Unavailable | DeadlineExceeded | Unknown | Cancelled | Internal | ResourceExhausted
    )
}

impl Etcd {
    /// Connects (lazily) to the members `endpoints` names: `host:port` (or
    /// `http://host:port`), comma-separated. Each attempt of a call waits at most
    /// `timeout`. Call it inside a Tokio runtime (the connections are its tasks).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let etcd = fathom_dist::etcd::Etcd::connect(
    ///     "127.0.0.1:2379,http://127.0.0.1:2479",
    ///     std::time::Duration::from_secs(1),
    /// )
    /// .unwrap();
    /// assert_eq!(etcd.endpoints(), ["http://127.0.0.1:2379", "http://127.0.0.1:2479"]);
    /// assert!(fathom_dist::etcd::Etcd::connect(" , ", std::time::Duration::from_secs(1)).is_err());
    /// # });
    /// ```
    pub fn connect(endpoints: &str, timeout: Duration) -> Result<Self> {
        let endpoints: Vec<String> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                if e.contains("://") {
                    e.to_string()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        if endpoints.is_empty() {
            return Err(Error::invalid(
                "--etcd: expected the cluster's client endpoints, host:port[,host:port…]",
            ));
        }
        let channels = endpoints
            .iter()
            .map(|e| {
                Ok(Endpoint::from_shared(e.clone())
                    .map_err(|err| Error::invalid(format!("--etcd endpoint {e:?}: {err}")))?
                    .connect_timeout(timeout)
                    .tcp_nodelay(true)
                    .connect_lazy())
            })
            .collect::<Result<_>>()?;
        Ok(Etcd {
            endpoints,
            channels,
            current: AtomicUsize::new(0),
            timeout,
        })
    }

    /// The members' URLs.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Runs `call` against the member that answered last, then the others in turn, until
    /// one answers; an error says what every member said.
    async fn call<T, F, Fut>(&self, what: &str, call: F) -> Result<T>
    where
        F: Fn(Channel) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    {
        let n = self.channels.len();
        let first = self.current.load(Ordering::Relaxed) % n;
        let mut failures = Vec::new();
        for i in 0..n {
            let at = (first + i) % n;
            let outcome = tokio::time::timeout(self.timeout, call(self.channels[at].clone())).await;
            match outcome {
                Ok(Ok(v)) => {
                    self.current.store(at, Ordering::Relaxed);
                    return Ok(v);
                }
                Ok(Err(s)) if !try_elsewhere(&s) => {
                    return Err(Error::invalid(format!(
                        "etcd {what} at {}: {}",
                        self.endpoints[at],
                        s.message()
                    )));
                }
                Ok(Err(s)) => failures.push(format!(
                    "{}: {:?} {}",
                    self.endpoints[at],
                    s.code(),
                    s.message()
                )),
                Err(_) => failures.push(format!(
                    "{}: no answer within {} ms",
                    self.endpoints[at],
                    self.timeout.as_millis()
                )),
            }
        }
        Err(Error::Io {
            path: None,
            source: std::io::Error::other(format!(
                "etcd {what}: no member answered ({})",
                failures.join("; ")
            )),
        })
    }

    async fn range(&self, what: &str, req: pb::RangeRequest) -> Result<pb::RangeResponse> {
        Ok(self
            .call(what, |c| {
                let req = req.clone();
                async move { KvClient::new(c).range(req).await }
            })
            .await?
            .into_inner())
    }

    /// Every key starting with `prefix`, with the cluster's revision when read.
    pub async fn get_prefix(&self, prefix: &str) -> Result<(i64, Vec<KeyValue>)> {
        let req = pb::RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            ..Default::default()
        };
        let r = self.range("range", req).await?;
        let kvs = r
            .kvs
            .into_iter()
            .map(|kv| KeyValue {
                key: String::from_utf8_lossy(&kv.key).into_owned(),
                value: kv.value,
                lease: kv.lease,
            })
            .collect();
        Ok((r.header.map_or(0, |h| h.revision), kvs))
    }

    /// The value of `key`, if it is there.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let req = pb::RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        };
        let r = self.range("get", req).await?;
        Ok(r.kvs.into_iter().next().map(|kv| kv.value))
    }

    /// Sets `key` to `value`, attached to `lease` (0: none; the key then outlives the
    /// writer).
    pub async fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<()> {
        let req = pb::PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.to_vec(),
            lease,
            prev_kv: false,
        };
        self.call("put", |c| {
            let req = req.clone();
            async move { KvClient::new(c).put(req).await }
        })
        .await?;
        Ok(())
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.delete_range(key.as_bytes().to_vec(), Vec::new()).await
    }

    /// Removes every key starting with `prefix`.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.delete_range(prefix.as_bytes().to_vec(), prefix_end(prefix.as_bytes()))
            .await
    }

    async fn delete_range(&self, key: Vec<u8>, range_end: Vec<u8>) -> Result<()> {
        let req = pb::DeleteRangeRequest {
            key,
            range_end,
            prev_kv: false,
        };
        self.call("delete", |c| {
            let req = req.clone();
            async move { KvClient::new(c).delete_range(req).await }
        })
        .await?;
        Ok(())
    }

    /// Sets `key` to `value` only if it currently holds `expected` (`None`: only if it
    /// does not exist), atomically. Returns whether it was set.
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool> {
        use pb::compare::{CompareResult, CompareTarget, TargetUnion};
        let compare = match expected {
            Some(v) => pb::Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Value as i32,
                key: key.as_bytes().to_vec(),
                target_union: Some(TargetUnion::Value(v.to_vec())),
            },
            // A key that does not exist has version 0.
            None => pb::Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Version as i32,
                key: key.as_bytes().to_vec(),
                target_union: Some(TargetUnion::Version(0)),
            },
        };
        let req = pb::TxnRequest {
            compare: vec![compare],
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: key.as_bytes().to_vec(),
                    value: value.to_vec(),
                    lease: 0,
                    prev_kv: false,
                })),
            }],
            failure: Vec::new(),
        };
        let r = self
            .call("transaction", |c| {
                let req = req.clone();
                async move { KvClient::new(c).txn(req).await }
            })
            .await?;
        Ok(r.into_inner().succeeded)
    }

    /// A new lease of `ttl` seconds; keys put under it vanish when it is neither kept
    /// alive nor revoked within that time.
    pub async fn grant(&self, ttl: Duration) -> Result<i64> {
        let req = pb::LeaseGrantRequest {
            ttl: ttl.as_secs().max(1) as i64,
            id: 0,
        };
        let r = self
            .call("lease grant", |c| async move {
                LeaseClient::new(c).lease_grant(req).await
            })
            .await?
            .into_inner();
        if !r.error.is_empty() || r.id == 0 {
            return Err(Error::invalid(format!("etcd lease grant: {}", r.error)));
        }
        Ok(r.id)
    }

    /// Renews `lease`; `false` when it is gone (expired or revoked), and the keys under
    /// it with it.
    pub async fn keep_alive(&self, lease: i64) -> Result<bool> {
        let r = self
            .call("lease keep-alive", |c| async move {
                let once = futures::stream::iter([pb::LeaseKeepAliveRequest { id: lease }]);
                let mut answers = LeaseClient::new(c)
                    .lease_keep_alive(once)
                    .await?
                    .into_inner();
                answers
                    .message()
                    .await?
                    .ok_or_else(|| tonic::Status::unavailable("the keep-alive stream ended"))
            })
            .await?;
        Ok(r.ttl > 0)
    }

    /// Ends `lease` now, removing the keys under it.
    pub async fn revoke(&self, lease: i64) -> Result<()> {
        let req = pb::LeaseRevokeRequest { id: lease };
        self.call("lease revoke", |c| async move {
            LeaseClient::new(c).lease_revoke(req).await
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }

    #[tokio::test]
    async fn a_dead_cluster_is_an_error_not_a_hang() {
        // Nothing listens on these ports (bound, then released).
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            })
            .collect();
        let etcd = Etcd::connect(
            &format!("127.0.0.1:{},127.0.0.1:{}", ports[0], ports[1]),
            Duration::from_millis(500),
        )
        .unwrap();
        let t = std::time::Instant::now();
        let e = etcd.get_prefix("/fathom/").await.unwrap_err().to_string();
        assert!(e.contains("no member answered"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
