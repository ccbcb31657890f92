//! CLIP: the loader and both towers against a NumPy transcription of OpenAI's CLIP on a
//! tiny model of the real architecture (tests/fixtures/tiny_clip, made by
//! make_clip_fixture.py: no registry ships real CLIP weights); text → image search through
//! the HTTP API with that model as the server's image model; and the same tiny CLIP
//! trained in PyTorch on labelled coloured shapes (tests/fixtures/tiny_clip_trained, made
//! by make_trained_clip.py): a caption must find its held-out picture.
#![cfg(feature = "image")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;
use common::call;
use fathom_serve::ServeConfig;
use fathom_serve::clip::Clip;
use fathom_serve::embed::{Embedder, ImageEmbedder, encode_base64};
use serde_json::{Value, json};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_clip")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst < 2e-4,
        "{what}: off by {worst}\n got {got:?}\nwant {want:?}"
    );
}

#[test]
fn tokens_and_both_towers_equal_openais_clip() {
    let clip = Clip::load(&fixture()).unwrap();
    let reference = reference();
    let texts = reference["texts"].as_array().unwrap();
    for t in texts {
        let ids: Vec<u32> = t["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            clip.token_ids(t["text"].as_str().unwrap()).unwrap(),
            ids,
            "{}",
            t["text"]
        );
    }
    // One batch of texts of different lengths (padding must not change any), then one by one.
    let all: Vec<String> = texts
        .iter()
        .map(|t| t["text"].as_str().unwrap().to_owned())
        .collect();
    let d = Embedder::dim(&clip);
    let batch = clip.embed(&all).unwrap();
    for (i, t) in texts.iter().enumerate() {
        let want = floats(&t["embedding"]);
        assert_close(
            &batch[i * d..(i + 1) * d],
            &want,
            &format!("text {i} in a batch"),
        );
        assert_close(
            &clip.embed(&all[i..=i]).unwrap(),
            &want,
            &format!("text {i} alone"),
        );
    }
    // Images end to end: PNG bytes decoded, normalised, embedded.
    let images = reference["images"].as_array().unwrap();
    let bytes: Vec<Vec<u8>> = images
        .iter()
        .map(|im| std::fs::read(fixture().join(im["file"].as_str().unwrap())).unwrap())
        .collect();
    let refs: Vec<&[u8]> = bytes.iter().map(|b| &b[..]).collect();
    let got = clip.embed_images(&refs).unwrap();
    for (i, im) in images.iter().enumerate() {
        assert_close(
            &got[i * d..(i + 1) * d],
            &floats(&im["embedding"]),
            &format!("image {i}"),
        );
    }
    assert!(clip.embed_images(&[]).unwrap().is_empty());
}

#[test]
fn bigger_images_are_scaled_and_cropped_and_bad_ones_named() {
    let clip = Clip::load(&fixture()).unwrap();
    let png = std::fs::read(fixture().join("picture0.png")).unwrap();
    // The same picture at twice the size embeds close to the original.
    let img = image::load_from_memory(&png).unwrap();
    let big = img.resize_exact(64, 64, image::imageops::FilterType::Nearest);
    let mut big_png = Vec::new();
    big.write_to(
        &mut std::io::Cursor::new(&mut big_png),
        image::ImageFormat::Png,
    )
    .unwrap();
    let v = clip.embed_images(&[&png, &big_png]).unwrap();
    let d = ImageEmbedder::dim(&clip);
    let cos: f32 = v[..d].iter().zip(&v[d..]).map(|(a, b)| a * b).sum();
    assert!(cos > 0.95, "cosine {cos}");
    let err = clip
        .embed_images(&[&png, &png[..png.len() / 2]])
        .unwrap_err()
        .to_string();
    assert!(err.contains("image 1"), "{err}");
}

/// A copy of the fixture with `edit` applied to its config.json.
fn edited(edit: impl Fn(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
    ] {
        std::fs::copy(fixture().join(f), dir.path().join(f)).unwrap();
    }
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("config.json")).unwrap())
            .unwrap();
    edit(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

#[test]
fn configs_it_cannot_run_are_errors_that_say_why() {
    type Edit = fn(&mut Value);
    let cases: [(Edit, &str); 4] = [
        (
            |c| c["text_config"]["hidden_act"] = json!("gelu"),
            "quick_gelu",
        ),
        (
            |c| c["vision_config"]["num_attention_heads"] = json!(5),
            "multiple",
        ),
        (
            |c| c["vision_config"]["patch_size"] = json!(7),
            "patch_size",
        ),
        (
            |c| c["text_config"]["hidden_size"] = json!(48),
            "text_model",
        ),
    ];
    for (edit, want) in cases {
        let dir = edited(edit);
        let err = Clip::load(dir.path()).err().expect(want).to_string();
        assert!(err.contains(want), "{want}: {err}");
    }
    let dir = edited(|_| {});
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = Clip::load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    // The image model loader tells CLIP from EfficientNet by the config.
    let limits = fathom_serve::image_input::DecodeLimits::default();
    let m = fathom_serve::image_model::load(&fixture(), limits).unwrap();
    assert_eq!(m.name(), "tiny_clip");
    assert!(m.text_tower().is_some());
}

/// A text model of another dimension, to check which encoder a text query goes to.
struct Constant;

impl Embedder for Constant {
    fn dim(&self) -> usize {
        8
    }
    fn embed(&self, texts: &[String]) -> fathom_core::Result<Vec<f32>> {
        Ok(vec![0.5; 8 * texts.len()])
    }
    fn name(&self) -> String {
        "constant".into()
    }
}

#[tokio::test]
async fn text_queries_find_images_through_clip() {
    let clip: Arc<Clip> = Arc::new(Clip::load(&fixture()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let models = fathom_serve::server::Models {
        text: Some(Arc::new(Constant)),
        image: Some(clip.clone()),
    };
    let app = fathom_serve::server::open_with(ServeConfig::new(dir.path()), models).unwrap();
    let put = |name: &str, dim: usize| {
        let app = app.clone();
        let uri = format!("/collections/{name}");
        async move {
            let body = json!({"dim": dim, "metric": "inner_product"}).to_string();
            call(&app, "PUT", &uri, body).await
        }
    };
    assert!(put("pictures", 16).await.0.is_success());
    assert!(put("notes", 8).await.0.is_success());
    let pictures: Vec<Vec<u8>> = (0..2)
        .map(|i| std::fs::read(fixture().join(format!("picture{i}.png"))).unwrap())
        .collect();
    let encoded: Vec<String> = pictures.iter().map(|b| encode_base64(b)).collect();
    let body = json!({"images": encoded, "metadata": [{"n": 0}, {"n": 1}]}).to_string();
    let (s, v) = call(&app, "POST", "/collections/pictures/items", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Text against the image collection: CLIP's text tower, ranked as brute force over
    // the image embeddings ranks it.
    let refs: Vec<&[u8]> = pictures.iter().map(|b| &b[..]).collect();
    let image_vecs = clip.embed_images(&refs).unwrap();
    for text in ["a photo of a cat", "a red car", "two dogs"] {
        let q = clip.embed(&[text.to_owned()]).unwrap();
        let score = |i: usize| -> f32 {
            q.iter()
                .zip(&image_vecs[i * 16..])
                .map(|(a, b)| a * b)
                .sum()
        };
        let best = if score(0) >= score(1) { 0 } else { 1 };
        let body = json!({"text": text, "top_k": 2}).to_string();
        let (s, v) = call(&app, "POST", "/collections/pictures/search", body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["results"][0]["id"], best, "{text}: {v}");
        let got = v["results"][0]["score"].as_f64().unwrap() as f32;
        assert!(
            (got - score(best)).abs() < 1e-4,
            "{text}: {got} vs {}",
            score(best)
        );
    }
    // An image query finds itself.
    let body = json!({"image": encoded[1], "top_k": 1}).to_string();
    let (_, v) = call(&app, "POST", "/collections/pictures/search", body).await;
    assert_eq!(v["results"][0]["id"], 1, "{v}");
    // Text against an 8-d collection goes to the 8-d text model.
    let body = json!({"texts": ["hello"]}).to_string();
    let (s, v) = call(&app, "POST", "/collections/notes/items", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, h) = call(&app, "GET", "/health", "").await;
    assert_eq!(h["image_model"], "tiny_clip", "{h}");
    assert_eq!(h["image_model_embeds_text"], true, "{h}");
    // A collection neither model fits: 422 naming the dimensions.
    assert!(put("other", 5).await.0.is_success());
    let body = json!({"text": "cat"}).to_string();
    let (s, v) = call(&app, "POST", "/collections/other/search", body).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"].as_str().unwrap().contains("expects 5"), "{v}");
}

/// The trained tiny CLIP: every caption ("a photo of a red circle") must find its
/// held-out picture among the 32 in the top 5 — through the library, and through the
/// server's API as `fathom serve --image-model` would run it.
#[tokio::test]
async fn a_trained_clip_finds_the_picture_a_caption_describes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_clip_trained");
    let labels: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("labels.json")).unwrap()).unwrap();
    let items = labels["images"].as_array().unwrap();
    let clip = Arc::new(Clip::load(&dir).unwrap());
    let pictures: Vec<Vec<u8>> = items
        .iter()
        .map(|it| std::fs::read(dir.join("images").join(it["file"].as_str().unwrap())).unwrap())
        .collect();
    let captions: Vec<String> = items
        .iter()
        .map(|it| it["caption"].as_str().unwrap().to_owned())
        .collect();
    let refs: Vec<&[u8]> = pictures.iter().map(|b| &b[..]).collect();
    let d = ImageEmbedder::dim(&*clip);
    let images = clip.embed_images(&refs).unwrap();
    let texts = clip.embed(&captions).unwrap();
    let mut top1 = 0;
    for (i, t) in texts.chunks(d).enumerate() {
        let score = |j: usize| -> f32 { t.iter().zip(&images[j * d..]).map(|(a, b)| a * b).sum() };
        let better = (0..items.len()).filter(|&j| score(j) > score(i)).count();
        assert!(
            better < 5,
            "{:?}: its picture ranks {}",
            captions[i],
            better + 1
        );
        top1 += usize::from(better == 0);
    }
    // PyTorch, which trained it, put every caption's picture first; so must this.
    assert_eq!(top1 as u64, labels["pytorch_top1"].as_u64().unwrap());

    let data = tempfile::tempdir().unwrap();
    let models = fathom_serve::server::Models {
        text: None,
        image: Some(clip.clone()),
    };
    let app = fathom_serve::server::open_with(ServeConfig::new(data.path()), models).unwrap();
    let body = json!({"dim": d, "metric": "cosine"}).to_string();
    assert!(
        call(&app, "PUT", "/collections/shapes", body)
            .await
            .0
            .is_success()
    );
    let encoded: Vec<String> = pictures.iter().map(|b| encode_base64(b)).collect();
    let body = json!({"images": encoded, "metadata": items}).to_string();
    let (s, v) = call(&app, "POST", "/collections/shapes/items", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for it in items {
        let body = json!({"text": it["caption"], "top_k": 5}).to_string();
        let (s, v) = call(&app, "POST", "/collections/shapes/search", body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let files: Vec<&str> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["metadata"]["file"].as_str().unwrap())
            .collect();
        assert!(
            files.contains(&it["file"].as_str().unwrap()),
            "{}: {files:?}",
            it["caption"]
        );
    }
}
