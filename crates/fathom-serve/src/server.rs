//! Running the service: bind, serve until SIGTERM or Ctrl-C (in-flight requests drain),
//! snapshot on a schedule and once more on the way out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fathom_core::{Error, Result};

use crate::api::{App, router};
use crate::metrics::Metrics;
use crate::service::{ServeConfig, Service};
use crate::store::CollectionDef;

/// Opens the service over `config.data_dir`, without models.
pub fn open(config: ServeConfig) -> Result<Arc<App>> {
    open_with(config, Models::default())
}

/// The models a server may be given: a text model for `"text"` queries and `"texts"`
/// items, an image model for `"image"` queries and `"images"` items. A CLIP image model
/// also serves `"text"` for collections of its dimension (text → image search).
#[derive(Default, Clone)]
pub struct Models {
    /// The text model.
    pub text: Option<Arc<dyn crate::embed::Embedder>>,
    /// The image model.
    pub image: Option<Arc<dyn crate::embed::ImageEmbedder>>,
}

/// Opens the service over `config.data_dir` with `models`.
pub fn open_with(config: ServeConfig, models: Models) -> Result<Arc<App>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let keys = match &config.api_keys {
        Some(path) => Some(Arc::new(crate::auth::KeyStore::open(path)?)),
        None => None,
    };
    let cors_origin = match &config.cors_origin {
        Some(o) => Some(Arc::new(crate::cors::parse_origin(o)?)),
        None => None,
    };
    Ok(Arc::new(App {
        traffic: Arc::new(crate::lane::Traffic::new(config.traffic.clone(), cores)),
        cache: crate::cache::ResultCache::new(config.cache_bytes),
        keys,
        cors_origin,
        service: Service::open(config)?,
        metrics: Arc::new(Metrics::default()),
        embedder: models.text,
        image_text_embedder: models.image.clone().and_then(|m| m.text_tower()),
        image_embedder: models.image,
    }))
}

/// Adds the built-in demo collection `demo` (2 000 items of dimension 4, metadata
/// `{"name": "item-<i>", "group": <i % 10>}`) when it does not exist.
pub fn add_demo(app: &App) -> Result<()> {
    let def = CollectionDef {
        name: "demo".into(),
        dim: 4,
        metric: crate::store::Metric::L2,
        index: "Flat".into(),
    };
    if !app.service.create(def)? {
        return Ok(());
    }
    let c = app.service.get("demo").expect("just created");
    let n = 2000;
    // SplitMix64: well-spread coordinates in [0, 1).
    let vectors: Vec<f32> = (0..n * 4u64)
        .map(|i| {
            let mut z = i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    let meta = (0..n)
        .map(|i| serde_json::json!({ "name": format!("item-{i}"), "group": i % 10 }).to_string())
        .collect();
    app.service.add(&c, &vectors, meta)?;
    Ok(())
}

/// Calls `each` with 1, 2, … as SIGTERM or SIGINT (Ctrl-C) arrive.
async fn on_signals(mut each: impl FnMut(u32)) {
    let mut count = 0;
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("fathom serve: cannot listen for signals");
            return std::future::pending().await;
        };
        loop {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            count += 1;
            each(count);
        }
    }
    #[cfg(not(unix))]
    loop {
        if tokio::signal::ctrl_c().await.is_err() {
            return std::future::pending().await;
        }
        count += 1;
        each(count);
    }
}

/// A future that completes at the first SIGTERM / SIGINT, after calling `first`; a second
/// signal calls `second`, which is to end the process at once (the default, exit status
/// 130, when it returns). For graceful shutdowns: pass the future to the server, which
/// stops accepting, lets requests finish and returns.
pub fn shutdown_signals(
    first: impl FnOnce() + Send + 'static,
    second: impl FnOnce() + Send + 'static,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut first = Some(first);
    let mut second = Some(second);
    let mut stop_tx = Some(stop_tx);
    tokio::spawn(on_signals(move |n| {
        if n == 1 {
            eprintln!("fathom: stopping (a second signal exits at once)");
            if let Some(f) = first.take() {
                f();
            }
            if let Some(tx) = stop_tx.take() {
                let _ = tx.send(());
            }
        } else {
            eprintln!("fathom: second signal: exiting now");
            match second.take() {
                Some(f) => f(),
                None => std::process::exit(130),
            }
        }
    }));
    async move {
        let _ = stop_rx.await;
    }
}

/// Serves router mode (`fathom serve --router`) on `listener` until SIGTERM / Ctrl-C.
pub async fn serve_router(
    app: Arc<crate::router_api::RouterApp>,
    listener: tokio::net::TcpListener,
) -> Result<()> {
    use axum::serve::ListenerExt;
    let stopping = shutdown_signals(|| {}, || std::process::exit(130));
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, crate::router_api::routes(app))
        .with_graceful_shutdown(stopping)
        .await?;
    Ok(())
}

/// Serves `app` on `addr` until SIGTERM / Ctrl-C, snapshotting every `every` (if any)
/// and when stopping. `ready` hears the bound address.
///
/// The first signal stops accepting connections, cancels running searches (they answer
/// 503), lets other requests finish and writes a final snapshot; a second signal leaves at
/// once (exit status 130), as soon as no database transaction is in progress — every
/// acknowledged write is in the database, which the next start replays.
pub async fn serve(
    app: Arc<App>,
    addr: SocketAddr,
    every: Option<Duration>,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::invalid(format!("cannot listen on {addr}: {e}")))?;
    ready(listener.local_addr()?);
    if let Some(every) = every.filter(|d| !d.is_zero()) {
        let app = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let app = app.clone();
                match tokio::task::spawn_blocking(move || app.service.snapshot()).await {
                    Ok(Ok(p)) => eprintln!("fathom serve: snapshot {}", p.display()),
                    Ok(Err(e)) => eprintln!("fathom serve: snapshot failed: {e}"),
                    Err(e) => eprintln!("fathom serve: snapshot task failed: {e}"),
                }
            }
        });
    }
    if let Some(keys) = &app.keys {
        crate::auth::spawn_reload_on_sighup(keys.clone());
    }
    let tls = match &app.service.config.tls {
        Some((cert, key)) => Some(crate::tls::load_tls_config(cert, key)?),
        None => None,
    };
    let signalled = app.clone();
    let quiet = app.clone();
    let stopping = shutdown_signals(
        move || signalled.service.stop(),
        move || {
            let app = quiet.clone();
            // Off the async workers: the wait for a transaction must not stall them.
            std::thread::spawn(move || app.service.with_database_quiet(|| std::process::exit(130)));
        },
    );
    match tls {
        Some(config) => {
            crate::tls::serve_tls(listener, router(app.clone()), config, stopping).await?
        }
        None => {
            // Answers leave at once rather than waiting on Nagle's algorithm.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, router(app.clone()))
                .with_graceful_shutdown(stopping)
                .await?
        }
    }
    eprintln!("fathom serve: stopping; writing a final snapshot");
    let p = tokio::task::spawn_blocking(move || app.service.snapshot())
        .await
        .map_err(|e| Error::invalid(format!("snapshot task failed: {e}")))??;
    eprintln!("fathom serve: snapshot {}", p.display());
    Ok(())
}
