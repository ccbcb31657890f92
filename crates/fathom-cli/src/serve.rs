//! `fathom serve`: the search service of `fathom-serve` on a port.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use fathom_core::{Error, Result};
use fathom_serve::ServeConfig;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Where the database and snapshots live (default: a fresh temporary directory with
    /// the demo collection).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seconds between snapshots (0: only on shutdown and on POST /snapshot).
    #[arg(long, default_value_t = 300)]
    snapshot_secs: u64,
    /// Snapshots kept.
    #[arg(long, default_value_t = 3)]
    keep: usize,
    /// Largest top_k a search may ask for.
    #[arg(long, default_value_t = 1000)]
    max_top_k: usize,
    /// Largest request body in MiB.
    #[arg(long, default_value_t = 64)]
    max_body_mib: usize,
    /// Also create the demo collection in --data-dir.
    #[arg(long)]
    demo: bool,
    /// A sentence-transformers model directory (config.json, model.safetensors,
    /// tokenizer.json — the layout of all-MiniLM-L6-v2): text queries and items.
    #[arg(long)]
    model: Option<PathBuf>,
}

/// The text model of `--model`, when given.
pub fn load_model(
    dir: Option<&std::path::Path>,
) -> Result<Option<std::sync::Arc<dyn fathom_serve::embed::Embedder>>> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    #[cfg(feature = "text")]
    {
        let m = fathom_serve::bert::SentenceEmbedder::load(dir)?;
        Ok(Some(std::sync::Arc::new(m)))
    }
    #[cfg(not(feature = "text"))]
    {
        Err(Error::Unsupported(format!(
            "--model {}: this fathom was built without the `text` feature",
            dir.display()
        )))
    }
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let (dir, demo) = match &args.data_dir {
        Some(d) => (d.clone(), args.demo),
        None => (
            std::env::temp_dir().join(format!("fathom-serve-demo-{}", std::process::id())),
            true,
        ),
    };
    let mut config = ServeConfig::new(&dir);
    config.keep_snapshots = args.keep.max(1);
    config.max_top_k = args.max_top_k.max(1);
    config.max_body_bytes = args.max_body_mib.max(1) << 20;
    let model = load_model(args.model.as_deref())?;
    let app = fathom_serve::server::open_with(config, model)?;
    for line in &app.service.startup {
        eprintln!("fathom serve: {line}");
    }
    if demo {
        fathom_serve::server::add_demo(&app)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::invalid(format!("cannot start the async runtime: {e}")))?;
    let addr = SocketAddr::new(args.host, args.port);
    let every = Duration::from_secs(args.snapshot_secs);
    runtime.block_on(fathom_serve::server::serve(app, addr, Some(every), |bound| {
        println!("fathom serve: listening on http://{bound} (data in {})", dir.display());
        if demo {
            println!(
                "try: curl -s http://{bound}/collections/demo/search -d '{{\"vector\": [0.1, 0.2, 0.3, 0.4], \"top_k\": 3}}'"
            );
        }
    }))
}
