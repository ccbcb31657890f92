//! `fathom index-text`: a text file (or JSON lines) in, a collection of its sentences
//! out — embedded with a sentence-transformers model, stored with their source.

use std::path::PathBuf;

use fathom_core::{Error, Result};
use fathom_serve::ServeConfig;
use fathom_serve::embed::split_sentences;
use fathom_serve::store::CollectionDef;
use serde_json::{Value, json};

use crate::progress;

#[derive(clap::Args)]
pub struct IndexTextArgs {
    /// A text file (split into sentences after 。！？.!? and at line breaks) or a .jsonl
    /// file of objects with a "text" field (each split the same way; the other fields
    /// become every sentence's metadata).
    file: PathBuf,
    /// The sentence-transformers model directory.
    #[arg(long)]
    model: PathBuf,
    /// The service's data directory (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// Collection name (created if missing).
    #[arg(long, default_value = "texts")]
    collection: String,
    /// Index factory string for a new collection.
    #[arg(long, default_value = "Flat")]
    index: String,
}

/// (sentence, metadata) pairs of the file.
fn sentences(args: &IndexTextArgs) -> Result<Vec<(String, Value)>> {
    let text = std::fs::read_to_string(&args.file).map_err(|e| Error::io(&args.file, e))?;
    let source = args.file.display().to_string();
    let mut out = Vec::new();
    if args.file.extension().is_some_and(|e| e == "jsonl") {
        for (line_no, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: Value = serde_json::from_str(line).map_err(|e| {
                Error::format(format!("{source} line {}", line_no + 1), e.to_string())
            })?;
            let Some(t) = v["text"].as_str() else {
                return Err(Error::format(
                    format!("{source} line {}", line_no + 1),
                    "expected an object with a \"text\" string",
                ));
            };
            for (i, s) in split_sentences(t).into_iter().enumerate() {
                let mut m = v.clone();
                m["text"] = json!(s);
                m["source"] = json!(source);
                m["line"] = json!(line_no + 1);
                m["sentence"] = json!(i);
                out.push((s, m));
            }
        }
    } else {
        for (i, s) in split_sentences(&text).into_iter().enumerate() {
            let m = json!({ "text": s, "source": source, "sentence": i });
            out.push((s, m));
        }
    }
    Ok(out)
}

/// The service over `data_dir` and its collection `def.name`, created from `def` when
/// missing; an existing one must have `def.dim` (a model's dimension).
pub fn open_collection(
    data_dir: &std::path::Path,
    def: CollectionDef,
) -> Result<(
    std::sync::Arc<fathom_serve::api::App>,
    std::sync::Arc<fathom_serve::collection::Collection>,
)> {
    let app = fathom_serve::server::open(ServeConfig::new(data_dir))?;
    let (name, dim) = (def.name.clone(), def.dim);
    if app.service.get(&name).is_none() {
        app.service.create(def)?;
    }
    let c = app.service.get(&name).expect("exists");
    if c.def.dim != dim {
        return Err(Error::DimensionMismatch {
            what: format!("collection {:?}", c.def.name),
            got: c.def.dim,
            expected: format!("the model's dimension {dim}"),
        });
    }
    Ok((app, c))
}

pub fn run(args: &IndexTextArgs) -> Result<()> {
    let model = crate::serve::load_model(Some(&args.model))?.expect("a model was given");
    let items = sentences(args)?;
    if items.is_empty() {
        return Err(Error::invalid(format!(
            "{} holds no text",
            args.file.display()
        )));
    }
    let def = CollectionDef {
        name: args.collection.clone(),
        dim: model.dim(),
        metric: fathom_serve::store::Metric::InnerProduct,
        index: args.index.clone(),
    };
    let (app, c) = open_collection(&args.data_dir, def)?;
    let bar = progress::bar(items.len() as u64, "embedding");
    let mut first = None;
    let mut last = 0;
    for chunk in items.chunks(256) {
        let texts: Vec<String> = chunk.iter().map(|(s, _)| s.clone()).collect();
        let vectors = model.embed(&texts)?;
        let meta = chunk.iter().map(|(_, m)| m.to_string()).collect();
        let ids = app.service.add(&c, &vectors, meta)?;
        first.get_or_insert(ids[0]);
        last = *ids.last().expect("non-empty chunk");
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let snap = app.service.snapshot()?;
    outln!(
        "indexed {} sentences of {} into collection {:?} (ids {}..={last}, {} total) in {}; \
         snapshot {}",
        items.len(),
        args.file.display(),
        args.collection,
        first.unwrap_or(0),
        c.live.read().map(|l| l.items.len()).unwrap_or(0),
        args.data_dir.display(),
        snap.display()
    );
    Ok(())
}
