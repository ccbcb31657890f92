//! `fathom index-images`: a folder of images in, a collection of their embeddings out —
//! each item keeping its path and the metadata a sidecar file gives for it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fathom_core::{Error, Result};
use fathom_serve::embed::ImageEmbedder;
use fathom_serve::store::CollectionDef;
use serde_json::{Map, Value, json};

use crate::progress;

#[derive(clap::Args)]
pub struct IndexImagesArgs {
    /// A directory of images, searched recursively (.jpg, .jpeg, .png, .webp). Metadata
    /// by file name comes from `metadata.jsonl` (objects with a "file" field) or
    /// `metadata.csv` (a header row with a "file" column) in that directory.
    dir: PathBuf,
    /// The image model directory: EfficientNet-Lite0 (`deploy/models/efficientnet_lite0.py`
    /// makes one) or CLIP in Hugging Face's layout (then `fathom serve --image-model` with
    /// the same directory searches the images by text too).
    #[arg(long)]
    model: PathBuf,
    /// The service's data directory (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// Collection name (created if missing).
    #[arg(long, default_value = "images")]
    collection: String,
    /// Index factory string for a new collection.
    #[arg(long, default_value = "Flat")]
    index: String,
}

const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];
/// Images embedded per call.
const BATCH: usize = 32;

/// The image files under `dir`, sorted, so ids follow the paths.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let path = entry.map_err(|e| Error::io(&d, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One CSV line's fields (commas, double-quoted fields with `""` for a quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("one field").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            _ => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// The sidecar metadata of `dir`, by file name (as written: a name or a path relative to
/// `dir`).
fn sidecar(dir: &Path) -> Result<HashMap<String, Map<String, Value>>> {
    let mut out = HashMap::new();
    let jsonl = dir.join("metadata.jsonl");
    let csv = dir.join("metadata.csv");
    if jsonl.exists() {
        let text = std::fs::read_to_string(&jsonl).map_err(|e| Error::io(&jsonl, e))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let where_ = format!("{} line {}", jsonl.display(), i + 1);
            let v: Value =
                serde_json::from_str(line).map_err(|e| Error::format(&where_, e.to_string()))?;
            let (Some(file), Value::Object(m)) = (v["file"].as_str().map(str::to_string), v) else {
                return Err(Error::format(
                    where_,
                    "expected an object with a \"file\" string",
                ));
            };
            out.insert(file, m);
        }
    } else if csv.exists() {
        let text = std::fs::read_to_string(&csv).map_err(|e| Error::io(&csv, e))?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = csv_fields(lines.next().unwrap_or_default());
        let Some(col) = header.iter().position(|h| h == "file") else {
            return Err(Error::format(
                csv.display().to_string(),
                "no \"file\" column in the header",
            ));
        };
        for line in lines {
            let fields = csv_fields(line);
            let m: Map<String, Value> = header
                .iter()
                .zip(&fields)
                .map(|(h, f)| {
                    // Numbers stay numbers, so filters can compare them.
                    let v = f
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .map_or_else(|| json!(f), |x| json!(x));
                    (h.clone(), v)
                })
                .collect();
            if let Some(file) = fields.get(col) {
                out.insert(file.clone(), m);
            }
        }
    }
    Ok(out)
}

pub fn run(args: &IndexImagesArgs) -> Result<()> {
    let model = crate::serve::load_image_model(Some(&args.model))?.expect("a model was given");
    let root = args
        .dir
        .canonicalize()
        .map_err(|e| Error::io(&args.dir, e))?;
    let files = image_files(&root)?;
    if files.is_empty() {
        return Err(Error::invalid(format!(
            "{} holds no images (.jpg, .jpeg, .png, .webp)",
            args.dir.display()
        )));
    }
    let meta = sidecar(&root)?;
    let def = CollectionDef {
        name: args.collection.clone(),
        dim: model.dim(),
        metric: fathom_serve::store::Metric::Cosine,
        index: args.index.clone(),
    };
    let (app, c) = crate::index_text::open_collection(&args.data_dir, def)?;
    let bar = progress::bar(files.len() as u64, "embedding");
    let (mut added, mut skipped) = (0usize, Vec::new());
    for chunk in files.chunks(BATCH) {
        let mut good: Vec<(&PathBuf, Vec<u8>)> = Vec::new();
        for path in chunk {
            match std::fs::read(path) {
                Ok(bytes) => good.push((path, bytes)),
                Err(e) => skipped.push(format!("{}: {e}", path.display())),
            }
        }
        let (vectors, kept) = embed_skipping(&*model, good, &mut skipped);
        if !kept.is_empty() {
            let metadata = kept
                .iter()
                .map(|path| item_metadata(&root, path, &meta).to_string())
                .collect();
            app.service.add(&c, &vectors, metadata)?;
            added += kept.len();
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    for s in &skipped {
        eprintln!("fathom index-images: skipped {s}");
    }
    let snap = app.service.snapshot()?;
    outln!(
        "indexed {added} images of {} into collection {:?} ({} skipped, {} total) in {}; \
         snapshot {}",
        root.display(),
        args.collection,
        skipped.len(),
        c.live.read().map(|l| l.items.len()).unwrap_or(0),
        args.data_dir.display(),
        snap.display()
    );
    Ok(())
}

/// Embeds the images of a batch; when the batch fails, one by one, so a corrupt file is
/// reported and skipped instead of failing its neighbours.
fn embed_skipping<'a>(
    model: &dyn ImageEmbedder,
    images: Vec<(&'a PathBuf, Vec<u8>)>,
    skipped: &mut Vec<String>,
) -> (Vec<f32>, Vec<&'a PathBuf>) {
    let refs: Vec<&[u8]> = images.iter().map(|(_, b)| &b[..]).collect();
    if let Ok(v) = model.embed_images(&refs) {
        return (v, images.iter().map(|(p, _)| *p).collect());
    }
    let (mut vectors, mut kept) = (Vec::new(), Vec::new());
    for (path, bytes) in &images {
        match model.embed_images(&[bytes]) {
            Ok(v) => {
                vectors.extend(v);
                kept.push(*path);
            }
            Err(e) => skipped.push(format!("{}: {e}", path.display())),
        }
    }
    (vectors, kept)
}

/// An item's metadata: the sidecar's fields for its file, its path, and the folder it
/// was indexed from (the root thumbnails are served under).
fn item_metadata(root: &Path, path: &Path, meta: &HashMap<String, Map<String, Value>>) -> Value {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let rel_s = rel.to_string_lossy().to_string();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut m = meta
        .get(&rel_s)
        .or_else(|| meta.get(&name))
        .cloned()
        .unwrap_or_default();
    m.insert("file".into(), json!(rel_s));
    m.insert("path".into(), json!(path.display().to_string()));
    m.insert("root".into(), json!(root.display().to_string()));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_handle_quotes() {
        assert_eq!(
            csv_fields("a,\"b, c\",\"say \"\"hi\"\"\",4"),
            ["a", "b, c", "say \"hi\"", "4"]
        );
        assert_eq!(csv_fields(""), [""]);
    }
}
