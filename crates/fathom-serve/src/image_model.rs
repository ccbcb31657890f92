//! Opening an image model directory: the one place that knows which architectures
//! fathom runs and how to tell them apart (`config.json`'s `model_type` or
//! `architecture`).

use std::path::Path;
use std::sync::Arc;

use fathom_core::Result;

use crate::embed::ImageEmbedder;
use crate::image_input::DecodeLimits;

/// Loads the image model in `dir`: CLIP (Hugging Face's layout, `model_type: "clip"`)
/// or EfficientNet-Lite0 (as `deploy/models/efficientnet_lite0.py` writes it). A CLIP
/// model also embeds texts: see [`ImageEmbedder::text_tower`].
pub fn load(dir: &Path, limits: DecodeLimits) -> Result<Arc<dyn ImageEmbedder>> {
    let config_path = dir.join("config.json");
    let config = crate::embed::read_json(&config_path)?;
    if crate::clip::is_clip(&config) {
        Ok(Arc::new(crate::clip::Clip::load(dir)?.with_limits(limits)))
    } else {
        Ok(Arc::new(
            crate::efficientnet::EfficientNet::load(dir)?.with_limits(limits),
        ))
    }
}
