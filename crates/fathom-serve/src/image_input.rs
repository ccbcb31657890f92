//! Encoded images in, checked pixels out: the decoding every image path shares (the image
//! model, `fathom index-images`, the thumbnail route). Formats are sniffed from the bytes
//! (JPEG, PNG, WebP; anything else is refused by name), dimensions are checked before
//! pixels are allocated, and a truncated or corrupt file is an error, never a panic.

use std::io::Cursor;

use fathom_core::{Error, Result};
use image::{DynamicImage, ImageFormat, ImageReader, imageops::FilterType};

/// What an image may cost to decode.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest width or height, in pixels.
    pub max_side: u32,
    /// Largest width × height.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    /// 16384 pixels a side and 40 megapixels: any photograph, not a decompression bomb.
    fn default() -> Self {
        DecodeLimits {
            max_side: 16_384,
            max_pixels: 40_000_000,
        }
    }
}

/// The formats accepted, as the sniffer names them.
const FORMATS: [ImageFormat; 3] = [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP];

/// Decodes `bytes` (JPEG, PNG or WebP) within `limits`.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::invalid(format!("cannot read the image: {e}")))?;
    let format = reader.format().ok_or_else(|| {
        Error::invalid(format!(
            "not an image fathom reads ({} bytes starting {:02x?}); expected JPEG, PNG or WebP",
            bytes.len(),
            &bytes[..bytes.len().min(8)]
        ))
    })?;
    if !FORMATS.contains(&format) {
        return Err(Error::invalid(format!(
            "{format:?} images are not supported; expected JPEG, PNG or WebP"
        )));
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| Error::invalid(format!("corrupt {format:?} image: {e}")))?;
    if w == 0
        || h == 0
        || w.max(h) > limits.max_side
        || u64::from(w) * u64::from(h) > limits.max_pixels
    {
        return Err(Error::invalid(format!(
            "the image is {w}×{h} pixels; at most {} a side and {} pixels are decoded",
            limits.max_side, limits.max_pixels
        )));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(limits.max_side);
    lim.max_image_height = Some(limits.max_side);
    reader.limits(lim);
    reader
        .decode()
        .map_err(|e| Error::invalid(format!("corrupt or truncated {format:?} image: {e}")))
}

/// How a model wants its pixels: the side of the square it sees, the per-channel mean
/// and standard deviation it was trained on, and the resampling filter of its
/// preprocessing.
#[derive(Debug, Clone, Copy)]
pub struct PixelInput {
    /// The side of the square input, in pixels.
    pub size: usize,
    /// Per-channel (RGB) mean of pixels scaled to 0..1.
    pub mean: [f32; 3],
    /// Per-channel (RGB) standard deviation.
    pub std: [f32; 3],
    /// How the shorter side is scaled to `size`.
    pub filter: FilterType,
}

impl PixelInput {
    /// `bytes` decoded, its shorter side scaled to `size` and the centre `size × size`
    /// cut out: `3 · size²` RGB bytes, row-major.
    pub fn rgb_square(&self, bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<u8>> {
        let img = decode(bytes, limits)?.to_rgb8();
        let (w, h) = img.dimensions();
        let s = self.size as u32;
        let scale = s as f64 / w.min(h) as f64;
        let (nw, nh) = (
            ((w as f64 * scale).round() as u32).max(s),
            ((h as f64 * scale).round() as u32).max(s),
        );
        let resized = if (nw, nh) == (w, h) {
            img
        } else {
            image::imageops::resize(&img, nw, nh, self.filter)
        };
        let (x0, y0) = ((nw - s) / 2, (nh - s) / 2);
        let crop = image::imageops::crop_imm(&resized, x0, y0, s, s).to_image();
        Ok(crop.into_raw())
    }

    /// The network input for encoded images, decoded in parallel on the rayon pool:
    /// `n · 3 · size²` normalised values, image by image, channel-major (NCHW). An
    /// image that cannot be decoded is an error naming it (`image <i>`).
    pub fn batch(&self, images: &[&[u8]], limits: &DecodeLimits) -> Result<Vec<f32>> {
        use rayon::prelude::*;
        let plane = self.size * self.size;
        let per_image: Vec<Vec<f32>> = images
            .par_iter()
            .enumerate()
            .map(|(i, bytes)| {
                let rgb = self
                    .rgb_square(bytes, limits)
                    .map_err(|e| e.context(format!("image {i}")))?;
                let mut chw = vec![0f32; 3 * plane];
                for (p, px) in rgb.chunks_exact(3).enumerate() {
                    for c in 0..3 {
                        chw[c * plane + p] = (px[c] as f32 / 255.0 - self.mean[c]) / self.std[c];
                    }
                }
                Ok(chw)
            })
            .collect::<Result<_>>()?;
        Ok(per_image.concat())
    }
}
