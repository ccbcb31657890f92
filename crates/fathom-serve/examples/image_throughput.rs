//! Image embedding throughput of an image model (EfficientNet-Lite0 or CLIP):
//! `cargo run --release --features image -p fathom-serve --example image_throughput --
//! MODEL_DIR IMAGE... [--batch 32] [--rounds 5] [--dump FILE]` embeds the images (decoding,
//! resizing and the network, as `fathom index-images` does) once untimed, then `--rounds`
//! times in batches, and prints one JSON line per round (`{"images", "seconds",
//! "images_per_s", "threads"}`), on the rayon pool (`RAYON_NUM_THREADS` sets its size).
//! `--dump` writes the embeddings as JSON, one list per image. `cargo xtask images` runs it
//! against the PyTorch reference.

use std::time::Instant;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str| -> Option<String> {
        let i = args.iter().position(|a| a == flag)?;
        let v = args.get(i + 1).cloned().expect("a value after the flag");
        args.drain(i..=i + 1);
        Some(v)
    };
    let number =
        |v: Option<String>, default: usize| v.map_or(default, |v| v.parse().expect("a number"));
    let batch = number(take("--batch"), 32);
    let rounds = number(take("--rounds"), 5);
    let dump = take("--dump");
    let (model_dir, files) = args.split_first().expect("MODEL_DIR IMAGE...");
    let limits = fathom_serve::image_input::DecodeLimits::default();
    let model = fathom_serve::image_model::load(std::path::Path::new(model_dir), limits)
        .expect("the model");
    let images: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).expect(f)).collect();
    let refs: Vec<&[u8]> = images.iter().map(|b| &b[..]).collect();
    let embed_all = || -> Vec<f32> {
        refs.chunks(batch)
            .flat_map(|chunk| model.embed_images(chunk).expect("embeddings"))
            .collect()
    };
    model
        .embed_images(&refs[..batch.min(refs.len())])
        .expect("embeddings");
    for _ in 0..rounds {
        let t = Instant::now();
        let e = embed_all();
        let s = t.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({
                "images": refs.len(),
                "seconds": s,
                "images_per_s": refs.len() as f64 / s,
                "threads": rayon::current_num_threads(),
            })
        );
        if let Some(path) = &dump {
            let rows: Vec<&[f32]> = e.chunks(model.dim()).collect();
            std::fs::write(path, serde_json::to_string(&rows).unwrap()).expect("the dump file");
        }
    }
}
