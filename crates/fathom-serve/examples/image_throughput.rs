//! Image embedding throughput of an image model (EfficientNet-Lite0 or CLIP): `cargo run --profile test --features image --example
//! image_throughput -- MODEL_DIR IMAGE... [--batch 32] [--rounds 5]` embeds the images
//! (decoding, resizing and the network, as `fathom index-images` does) `--rounds` times
//! in batches and prints images per second for each round, on the rayon pool
//! (`RAYON_NUM_THREADS` sets its size).

use std::time::Instant;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str, default: usize| -> usize {
        match args.iter().position(|a| a == flag) {
            Some(i) => {
                let v = args[i + 1].parse().expect("a number");
                args.drain(i..=i + 1);
                v
            }
            None => default,
        }
    };
    let batch = take("--batch", 32);
    let rounds = take("--rounds", 5);
    let (model_dir, files) = args.split_first().expect("MODEL_DIR IMAGE...");
    let limits = fathom_serve::image_input::DecodeLimits::default();
    let model = fathom_serve::image_model::load(std::path::Path::new(model_dir), limits)
        .expect("the model");
    let images: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).expect(f)).collect();
    let refs: Vec<&[u8]> = images.iter().map(|b| &b[..]).collect();
    println!(
        "{} images, batches of {batch}, {} threads",
        refs.len(),
        rayon::current_num_threads()
    );
    for round in 0..rounds {
        let t = Instant::now();
        for chunk in refs.chunks(batch) {
            model.embed_images(chunk).expect("embeddings");
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "round {round}: {:.2} s, {:.1} images/s",
            s,
            refs.len() as f64 / s
        );
    }
}
