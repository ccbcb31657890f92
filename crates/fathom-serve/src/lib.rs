//! # fathom-serve
//!
//! The search service, a layer above the library (`fathom-index` for the indexes,
//! `fathom-io` for Faiss-format index files) and below the `fathom` binary, which runs it
//! as `fathom serve`.
//!
//! - [`store`]: the durable record, one SQLite database of collections and items (id,
//!   vector, metadata) — the source of truth.
//! - [`collection`]: a collection in memory, its index and its live items' metadata
//!   behind one lock, so a search never sees an id without its metadata or the reverse.
//! - [`service`]: operations (create, add, delete, retrain, snapshot) and the start-up
//!   check that loads the newest good snapshot, replays what came after it and falls back
//!   to older snapshots or a rebuild, saying so.
//! - [`snapshot`]: snapshot directories with checksummed manifests.
//! - [`embed`]: the [`embed::Embedder`] a server may be given for text queries and items,
//!   and the sentence splitter; `bert` (feature `text`): a sentence-transformers BERT
//!   model with candle and the Hugging Face tokenizer. With feature `image`:
//!   [`image_model::load`] opens an image model directory — `efficientnet` (image
//!   features) or [`clip`] (images and texts in one space, so text finds images) —
//!   over [`image_input`]'s checked decoding; [`thumbnail`] and [`ui`] serve the search
//!   page.
//! - [`api`] / [`openapi`] / [`metrics`]: the HTTP JSON API (axum), its description,
//!   Prometheus metrics; [`server`]: running it until SIGTERM.
//! - [`router_api`]: router mode — the same search API over a sharded index whose
//!   searchers run in other processes (`fathom-dist`), with coverage in every answer.
//! - [`searcher_api`]: a searcher's `/health` and `/metrics` (`fathom searcher --http`).
//!
//! ```
//! use fathom_serve::{ServeConfig, store::{CollectionDef, Metric}};
//! let dir = tempfile::tempdir().unwrap();
//! let app = fathom_serve::server::open(ServeConfig::new(dir.path())).unwrap();
//! app.service.create(CollectionDef {
//!     name: "docs".into(), dim: 2, metric: Metric::L2, index: "Flat".into(),
//! }).unwrap();
//! let docs = app.service.get("docs").unwrap();
//! let ids = app.service.add(&docs, &[0.0, 0.0, 1.0, 1.0], vec![r#"{"t":"a"}"#.into(), r#"{"t":"b"}"#.into()]).unwrap();
//! let opts = fathom_serve::collection::SearchOptions { top_k: 1, ..Default::default() };
//! let hits = docs.search(&[0.9, 0.9], &opts).unwrap();
//! assert_eq!(hits[0][0].id, fathom_serve::store::ItemId::Num(ids[1] as u64));
//! assert_eq!(hits[0][0].metadata["t"], "b");
//! ```

// The OpenAPI document is one `json!` literal, deeper than the default limit allows.
#![recursion_limit = "256"]

pub mod api;
pub mod auth;
#[cfg(feature = "text")]
pub mod bert;
pub mod cache;
#[cfg(feature = "image")]
pub mod clip;
pub mod collection;
pub mod cors;
pub mod docs_page;
#[cfg(feature = "image")]
pub mod efficientnet;
pub mod embed;
pub mod filter;
#[cfg(feature = "image")]
pub mod image_input;
#[cfg(feature = "image")]
pub mod image_model;
mod json_f32;
pub mod lane;
pub mod log;
pub mod metrics;
pub mod openapi;
pub mod process;
pub mod router_api;
pub mod searcher_api;
pub mod server;
pub mod service;
pub mod snapshot;
pub mod store;
pub mod thumbnail;
pub mod tls;
pub mod ui;

pub use service::{ServeConfig, Service};
