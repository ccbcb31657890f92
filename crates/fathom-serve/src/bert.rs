//! A sentence-transformers BERT model (all-MiniLM-L6-v2 and its kind) as an [`Embedder`]:
//! the Hugging Face tokenizer, candle's BERT, mean pooling over the attention mask and L2
//! normalisation — the pipeline `SentenceTransformer.encode` runs for such a model.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use fathom_core::{Error, Result};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use crate::embed::Embedder;

/// A sentence-embedding model loaded from a local directory in the sentence-transformers
/// layout: `config.json`, `model.safetensors`, `tokenizer.json`, and optionally
/// `sentence_bert_config.json` (max_seq_length), `modules.json` (a Normalize module) and
/// `1_Pooling/config.json` (which must ask for mean pooling).
pub struct SentenceEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    dim: usize,
    normalize: bool,
    name: String,
}

fn model_err(what: &Path) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| Error::format(format!("model {}", what.display()), e.to_string())
}

impl SentenceEmbedder {
    /// Loads the model in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let p = |f: &str| -> PathBuf { dir.join(f) };
        let config: Config = serde_json::from_value(crate::embed::read_json(&p("config.json"))?)
            .map_err(|e| Error::format("config.json", e.to_string()))?;
        let max_len = match crate::embed::read_json(&p("sentence_bert_config.json")) {
            Ok(v) => v["max_seq_length"].as_u64().map(|n| n as usize),
            Err(_) => None,
        }
        .unwrap_or(config.max_position_embeddings)
        .min(config.max_position_embeddings);
        let normalize = crate::embed::read_json(&p("modules.json")).is_ok_and(|v| {
            v.as_array().is_some_and(|m| {
                m.iter().any(|x| {
                    x["type"]
                        .as_str()
                        .is_some_and(|t| t.ends_with(".Normalize"))
                })
            })
        });
        if let Ok(pool) = crate::embed::read_json(&p("1_Pooling/config.json"))
            && pool["pooling_mode_mean_tokens"] != true
        {
            return Err(Error::Unsupported(format!(
                "{}: only mean pooling is implemented",
                p("1_Pooling/config.json").display()
            )));
        }
        let mut tokenizer = Tokenizer::from_file(p("tokenizer.json"))
            .map_err(|e| Error::format("tokenizer.json", e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| Error::format("tokenizer.json", e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        let weights = p("model.safetensors");
        let bytes = std::fs::read(&weights).map_err(|e| Error::io(&weights, e))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)
            .map_err(model_err(&weights))?;
        let model = BertModel::load(vb, &config).map_err(model_err(&weights))?;
        let name = dir
            .file_name()
            .map_or("model".into(), |n| n.to_string_lossy().into_owned());
        Ok(SentenceEmbedder {
            model,
            tokenizer,
            dim: config.hidden_size,
            normalize,
            name,
        })
    }

    /// The token ids the model sees for `text` (special tokens included, truncated).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        crate::embed::token_ids(&self.tokenizer, text)
    }

    fn embed_batch(&self, texts: &[String]) -> Result<Vec<f32>> {
        let here = Path::new(&self.name);
        let encs = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::invalid(format!("tokenizing: {e}")))?;
        let (n, len) = (encs.len(), encs.first().map_or(0, |e| e.get_ids().len()));
        let ids: Vec<u32> = encs.iter().flat_map(|e| e.get_ids().to_vec()).collect();
        let mask: Vec<u32> = encs
            .iter()
            .flat_map(|e| e.get_attention_mask().to_vec())
            .collect();
        let dev = &self.model.device;
        let ids = Tensor::from_vec(ids, (n, len), dev).map_err(model_err(here))?;
        let mask = Tensor::from_vec(mask, (n, len), dev).map_err(model_err(here))?;
        let types = ids.zeros_like().map_err(model_err(here))?;
        let hidden = self
            .model
            .forward(&ids, &types, Some(&mask))
            .map_err(model_err(here))?;
        // Mean over the real tokens (sentence-transformers' Pooling), then L2 (Normalize).
        let pooled = (|| -> candle_core::Result<Tensor> {
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let sum = hidden.broadcast_mul(&m)?.sum(1)?;
            let count = m.sum(1)?.clamp(1e-9f32, f32::MAX)?;
            let mean = sum.broadcast_div(&count)?;
            if self.normalize {
                let norm = mean
                    .sqr()?
                    .sum_keepdim(1)?
                    .sqrt()?
                    .clamp(1e-12f32, f32::MAX)?;
                mean.broadcast_div(&norm)
            } else {
                Ok(mean)
            }
        })()
        .map_err(model_err(here))?;
        pooled
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(model_err(here))
    }
}

impl Embedder for SentenceEmbedder {
    fn dim(&self) -> usize {
        self.dim
    }
    fn embed(&self, texts: &[String]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(texts.len() * self.dim);
        // Batches bound the padded activations' memory.
        for chunk in texts.chunks(32) {
            out.extend(self.embed_batch(chunk)?);
        }
        Ok(out)
    }
    fn name(&self) -> String {
        self.name.clone()
    }
}
