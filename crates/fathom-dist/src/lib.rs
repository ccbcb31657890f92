//! # fathom-dist
//!
//! Sharded search across processes and machines (docs/SCALE.md), a layer above
//! `fathom-io` (Faiss-format files) and `fathom-index` (the indexes and their merge), and
//! below the `fathom` binary and `fathom-serve` (whose router mode serves HTTP over it).
//!
//! Shards are ordinary Faiss index files in an object store, each the one trained index
//! plus a contiguous slice of the base added with global ids; a manifest lists them.
//! Stateless searchers cache and serve shards over gRPC; a router fans each search out and
//! merges the answers, reporting how much of the index answered.
//!
//! - [`objects`]: the object store (`file://`, `s3://`) and SHA-256 verified transfers.
//! - [`manifest`]: what a version of a sharded index is made of.
//! - [`builder`]: train once, build slices (in parallel processes if wanted), publish.
//! - [`cache`]: a searcher's verified local copies.
//! - [`searcher`]: the gRPC service over loaded shards.
//! - [`router`]: fan-out to replicas, hedging, deadline, merge, coverage.
//! - [`etcd`]: a small client of etcd's v3 API (the control plane).
//! - [`control`]: the keys in etcd (manifest pointer, members, READY) and the cluster view.
//! - [`assign`]: which members hold which shard (rendezvous hashing).
//! - [`member`]: a searcher's membership: lease, assignment, loading, rebalancing.
//! - [`stats`]: per-shard latency histograms for `/metrics`.

pub mod assign;
pub mod builder;
pub mod cache;
pub mod control;
pub mod etcd;
pub mod manifest;
pub mod member;
pub mod objects;
pub mod router;
pub mod searcher;
pub mod stats;

pub use objects::Objects;

/// The generated gRPC messages, client and server of `proto/searcher.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("fathom.searcher.v1");
}
