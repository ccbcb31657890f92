//! Opening an image model directory: the one place that knows which architectures
//! fathom runs and how to tell them apart (`config.json`'s `model_type` or
//! `architecture`).

use std::path::Path;
use std::sync::Arc;

use fathom_core::{Error, Result};

use crate::embed::ImageEmbedder;
use crate::image_input::DecodeLimits;

/// Loads the image model in `dir`: CLIP (Hugging Face's layout, `model_type: "clip"`)
/// or EfficientNet-Lite0 (as `deploy/models/efficientnet_lite0.py` writes it). A CLIP
/// model also embeds texts: see [`ImageEmbedder::text_tower`].
pub fn load(dir: &Path, limits: DecodeLimits) -> Result<Arc<dyn ImageEmbedder>> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let config: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(config_path.display().to_string(), e.to_string()))?;
    if crate::clip::is_clip(&config) {
        Ok(Arc::new(crate::clip::Clip::load(dir)?.with_limits(limits)))
    } else {
        Ok(Arc::new(
            crate::efficientnet::EfficientNet::load(dir)?.with_limits(limits),
        ))
    }
}
