//! CLIP: one model that embeds images and texts into one space, so a text query finds
//! images. Loaded from a directory in Hugging Face's layout (`config.json`,
//! `preprocessor_config.json`, `tokenizer.json`, `model.safetensors`, as
//! `openai/clip-vit-base-patch32` ships them); candle's CLIP transformer runs both towers.
//!
//! The pipeline is OpenAI's: images are resized on their shorter side (bicubic), centre
//! cropped and normalised with the preprocessor's mean and deviation, and embedded from
//! the class token; texts are BPE-tokenised with start and end tokens (truncated to the
//! model's context) and embedded from the end token. Both are projected and
//! L2-normalised, so inner product is cosine similarity.
//!
//! No registry this project installs from ships CLIP weights, so the tests load a CLIP
//! of the real architecture, made tiny, and compare it with a NumPy transcription of
//! OpenAI's code (`tests/fixtures/make_clip_fixture.py`).

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{Module, VarBuilder};
use candle_transformers::models::clip::{
    text_model::{Activation, ClipTextConfig, ClipTextTransformer},
    vision_model::{ClipVisionConfig, ClipVisionTransformer},
};
use fathom_core::{Error, Result};
use image::imageops::FilterType;
use tokenizers::{Tokenizer, TruncationParams};

use crate::embed::{Embedder, ImageEmbedder};
use crate::image_input::{DecodeLimits, PixelInput};

/// OpenAI's normalisation, for a preprocessor file that does not give its own.
const OPENAI_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const OPENAI_STD: [f32; 3] = [0.268_629_55, 0.261_302_6, 0.275_777_1];

/// Texts per forward pass: bounds the padded activations' memory.
const TEXT_BATCH: usize = 32;

/// A CLIP model: an [`ImageEmbedder`] and an [`Embedder`] into the same space.
pub struct Clip {
    vision: ClipVisionTransformer,
    visual_projection: candle_nn::Linear,
    text: ClipTextTransformer,
    text_projection: candle_nn::Linear,
    tokenizer: Tokenizer,
    pixels: PixelInput,
    limits: DecodeLimits,
    dim: usize,
    name: String,
}

fn model_err(dir: &Path) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| Error::format(format!("CLIP model {}", dir.display()), e.to_string())
}

/// A size field of a config section, with Hugging Face's default where it is absent.
fn field(section: &serde_json::Value, key: &str, default: usize) -> usize {
    section[key].as_u64().map_or(default, |v| v as usize)
}

/// Only QuickGELU is implemented by candle's CLIP (OpenAI's checkpoints use it).
fn check_activation(path: &Path, section: &serde_json::Value, tower: &str) -> Result<()> {
    match section["hidden_act"].as_str() {
        None | Some("quick_gelu") => Ok(()),
        Some(other) => Err(Error::format(
            path.display().to_string(),
            format!("{tower} hidden_act {other:?}: this build runs \"quick_gelu\" CLIP models"),
        )),
    }
}

/// Whether `config` (a parsed `config.json`) describes a CLIP model.
pub fn is_clip(config: &serde_json::Value) -> bool {
    config["model_type"] == "clip"
}

impl Clip {
    /// Loads the model in `dir` (Hugging Face's CLIP layout).
    pub fn load(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config = crate::embed::read_json(&config_path)?;
        if !is_clip(&config) {
            return Err(Error::format(
                config_path.display().to_string(),
                format!(
                    "model_type {}: not a CLIP model (expected \"clip\")",
                    config["model_type"]
                ),
            ));
        }
        let (t, v) = (&config["text_config"], &config["vision_config"]);
        check_activation(&config_path, t, "text")?;
        check_activation(&config_path, v, "vision")?;
        let projection = field(&config, "projection_dim", 512);
        let text_config = ClipTextConfig {
            vocab_size: field(t, "vocab_size", 49408),
            embed_dim: field(t, "hidden_size", 512),
            activation: Activation::QuickGelu,
            intermediate_size: field(t, "intermediate_size", 2048),
            max_position_embeddings: field(t, "max_position_embeddings", 77),
            pad_with: None,
            num_hidden_layers: field(t, "num_hidden_layers", 12),
            num_attention_heads: field(t, "num_attention_heads", 8),
            projection_dim: projection,
        };
        let vision_config = ClipVisionConfig {
            embed_dim: field(v, "hidden_size", 768),
            activation: Activation::QuickGelu,
            intermediate_size: field(v, "intermediate_size", 3072),
            num_hidden_layers: field(v, "num_hidden_layers", 12),
            num_attention_heads: field(v, "num_attention_heads", 12),
            projection_dim: projection,
            num_channels: field(v, "num_channels", 3),
            image_size: field(v, "image_size", 224),
            patch_size: field(v, "patch_size", 32),
        };
        for (what, c) in [
            (
                "text",
                (text_config.embed_dim, text_config.num_attention_heads),
            ),
            (
                "vision",
                (vision_config.embed_dim, vision_config.num_attention_heads),
            ),
        ] {
            if c.1 == 0 || !c.0.is_multiple_of(c.1) {
                return Err(Error::format(
                    config_path.display().to_string(),
                    format!(
                        "{what} hidden_size {} is not a multiple of its {} heads",
                        c.0, c.1
                    ),
                ));
            }
        }
        if vision_config.num_channels != 3
            || vision_config.patch_size == 0
            || !vision_config
                .image_size
                .is_multiple_of(vision_config.patch_size)
        {
            return Err(Error::format(
                config_path.display().to_string(),
                "vision_config: 3 channels and an image_size that is a multiple of patch_size \
                 expected",
            ));
        }

        let pre = crate::embed::read_json(&dir.join("preprocessor_config.json")).ok();
        let triple = |key: &str, default: [f32; 3]| -> [f32; 3] {
            pre.as_ref()
                .and_then(|p| p[key].as_array())
                .and_then(|a| {
                    let v: Vec<f32> = a
                        .iter()
                        .filter_map(|x| x.as_f64())
                        .map(|x| x as f32)
                        .collect();
                    <[f32; 3]>::try_from(v).ok()
                })
                .unwrap_or(default)
        };
        let pixels = PixelInput {
            size: vision_config.image_size,
            mean: triple("image_mean", OPENAI_MEAN),
            std: triple("image_std", OPENAI_STD),
            filter: FilterType::CatmullRom,
        };

        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tok_path)
            .map_err(|e| Error::format(tok_path.display().to_string(), e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: text_config.max_position_embeddings,
                ..Default::default()
            }))
            .map_err(|e| Error::format(tok_path.display().to_string(), e.to_string()))?;
        tokenizer.with_padding(None);

        let weights = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights).map_err(|e| Error::io(&weights, e))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)
            .map_err(model_err(dir))?;
        // candle fills a missing class embedding with noise; a checkpoint without one is
        // not a CLIP checkpoint.
        if !vb.contains_tensor("vision_model.embeddings.class_embedding") {
            return Err(Error::format(
                weights.display().to_string(),
                "no vision_model.embeddings.class_embedding: not a Hugging Face CLIP checkpoint",
            ));
        }
        let dim = projection;
        // The towers without candle's `ClipModel`, whose text pooling takes the largest
        // token id for the end token (true only of OpenAI's vocabulary): the end-token
        // pooling is done here.
        let vision = ClipVisionTransformer::new(vb.pp("vision_model"), &vision_config)
            .map_err(model_err(dir))?;
        let visual_projection =
            candle_nn::linear_no_bias(vision_config.embed_dim, dim, vb.pp("visual_projection"))
                .map_err(model_err(dir))?;
        let text =
            ClipTextTransformer::new(vb.pp("text_model"), &text_config).map_err(model_err(dir))?;
        let text_projection =
            candle_nn::linear_no_bias(text_config.embed_dim, dim, vb.pp("text_projection"))
                .map_err(model_err(dir))?;
        let name = config["_name_or_path"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "clip".into());
        Ok(Clip {
            vision,
            visual_projection,
            text,
            text_projection,
            tokenizer,
            pixels,
            limits: DecodeLimits::default(),
            dim,
            name,
        })
    }

    /// The decoding limits (pixels, bytes) images are checked against.
    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The side of the square images are scaled and cropped to.
    pub fn image_size(&self) -> usize {
        self.pixels.size
    }

    /// The token ids the text tower sees for `text`: start token, BPE tokens, end
    /// token, truncated to the model's context.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        crate::embed::token_ids(&self.tokenizer, text)
    }

    /// Unnormalised image features `(n, dim)` of normalised pixels `(n, 3, s, s)`.
    pub fn image_features(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        self.visual_projection
            .forward(&self.vision.forward(pixels)?)
    }

    /// Unnormalised text features `(n, dim)` of token id sequences (each ending with
    /// its end token): padded to one length, run causally, read at each end token.
    pub fn text_features(&self, ids: &[Vec<u32>]) -> candle_core::Result<Tensor> {
        let len = ids.iter().map(Vec::len).max().unwrap_or(0);
        // The mask is causal, so padding after the end token changes nothing before it.
        let flat: Vec<u32> = ids
            .iter()
            .flat_map(|s| {
                s.iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, len - s.len()))
            })
            .collect();
        let x = Tensor::from_vec(flat, (ids.len(), len), &Device::Cpu)?;
        let hidden = self.text.forward_with_mask(&x, usize::MAX)?;
        let ends = ids
            .iter()
            .enumerate()
            .map(|(i, s)| hidden.i((i, s.len() - 1))?.unsqueeze(0))
            .collect::<candle_core::Result<Vec<_>>>()?;
        self.text_projection.forward(&Tensor::cat(&ends, 0)?)
    }
}

/// Rows of `x` scaled to unit length, flattened.
fn unit_rows(x: &Tensor) -> candle_core::Result<Vec<f32>> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
    x.broadcast_div(&norm)?.flatten_all()?.to_vec1()
}

impl ImageEmbedder for Clip {
    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_images(&self, images: &[&[u8]]) -> Result<Vec<f32>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let s = self.pixels.size;
        let flat = self.pixels.batch(images, &self.limits)?;
        let run = || -> candle_core::Result<Vec<f32>> {
            let x = Tensor::from_vec(flat, (images.len(), 3, s, s), &Device::Cpu)?;
            unit_rows(&self.image_features(&x)?)
        };
        run().map_err(|e| Error::invalid(format!("image model: {e}")))
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn text_tower(self: std::sync::Arc<Self>) -> Option<std::sync::Arc<dyn Embedder>> {
        Some(self)
    }
}

impl Embedder for Clip {
    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(texts.len() * self.dim);
        for chunk in texts.chunks(TEXT_BATCH) {
            let ids = chunk
                .iter()
                .map(|t| self.token_ids(t))
                .collect::<Result<Vec<_>>>()?;
            let v = self
                .text_features(&ids)
                .and_then(|f| unit_rows(&f))
                .map_err(|e| Error::invalid(format!("text model: {e}")))?;
            out.extend(v);
        }
        Ok(out)
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}
