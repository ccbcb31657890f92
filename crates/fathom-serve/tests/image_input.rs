//! Hostile image bytes: PNG, JPEG and WebP files with bytes flipped, cut short or spliced
//! must decode or be refused with an error — never panic — and whatever decodes must come
//! out as a whole normalised square of finite values.
#![cfg(feature = "image")]

use fathom_serve::image_input::{DecodeLimits, PixelInput};
use image::imageops::FilterType;
use proptest::prelude::*;

/// A small picture in each accepted format.
fn seeds() -> Vec<Vec<u8>> {
    let img = image::RgbImage::from_fn(40, 24, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 10) as u8, ((x ^ y) * 8) as u8])
    });
    [
        image::ImageFormat::Png,
        image::ImageFormat::Jpeg,
        image::ImageFormat::WebP,
    ]
    .iter()
    .map(|&f| {
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), f)
            .unwrap();
        out
    })
    .collect()
}

fn input() -> PixelInput {
    PixelInput {
        size: 16,
        mean: [0.5; 3],
        std: [0.25; 3],
        filter: FilterType::Triangle,
    }
}

fn check(bytes: &[u8]) {
    let limits = DecodeLimits {
        max_side: 4096,
        max_pixels: 1 << 22,
    };
    if let Ok(v) = input().batch(&[bytes], &limits) {
        assert_eq!(v.len(), 3 * 16 * 16);
        assert!(v.iter().all(|x| x.is_finite()));
    }
}

#[test]
fn the_seeds_decode() {
    for s in seeds() {
        let v = input()
            .batch(&[&s], &DecodeLimits::default())
            .expect("a seed");
        assert_eq!(v.len(), 3 * 16 * 16);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn flipped_cut_or_spliced_bytes_never_panic(
        which in 0usize..3,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..12),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
        splice in prop::collection::vec(any::<u8>(), 0..64),
        at in any::<prop::sample::Index>(),
    ) {
        let mut bytes = seeds()[which].clone();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= b;
        }
        let at = at.index(bytes.len());
        bytes.splice(at..at, splice);
        if do_cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        check(&bytes);
    }
}
