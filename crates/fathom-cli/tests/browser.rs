//! The search page in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed with apt when missing; Selenium from PyPI in
//! `target/browser-venv`) driving `tests/browser/page_test.py` against `fathom serve`.
//!
//! - Image search: `fathom index-images` over sample photographs with EfficientNet-Lite0;
//!   a re-encoded copy of one photo through the file input must come first, then
//!   "Similar" on the hit.
//! - Text search with CLIP (the tiny test model: no registry ships real weights) over an
//!   IVF collection of generated pictures: the page's first result must be the API's,
//!   recall against exact search is shown, and the recall-vs-speed table must reach 1.
//!
//! Screenshots are saved under `target/browser/`. Skipped, saying why, where Chromium,
//! Selenium, the model or the photos cannot be had; servers are killed when the test
//! ends, failed or not.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use fathom_tests::harness::{Outcome, PASSED, skipped};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Python with Selenium in `target/browser-venv`, made on first use.
fn selenium_python() -> Result<PathBuf, String> {
    fathom_tests::venv_python("browser-venv", &["selenium"], "import selenium")
}

/// Chromium, its driver and a Python with Selenium, or why not.
struct Browser {
    chromium: PathBuf,
    driver: PathBuf,
    python: PathBuf,
}

fn browser() -> Result<Browser, String> {
    let chromium = fathom_tests::apt_binary("chromium", &["chromium", "chromium-driver"])
        .map_err(|why| format!("no Chromium: {why}"))?;
    let driver = fathom_tests::apt_binary("chromedriver", &["chromium-driver"])
        .map_err(|why| format!("no chromedriver: {why}"))?;
    let python = selenium_python().map_err(|why| format!("no Selenium: {why}"))?;
    Ok(Browser {
        chromium,
        driver,
        python,
    })
}

/// Runs `page_test.py MODE ARGS… SHOTS CHROMIUM DRIVER` against `server`; fails the test
/// with the script's and the server's output when it fails.
fn page_test(b: &Browser, server: &common::Proc, mode: &str, args: &[&std::ffi::OsStr]) {
    let shots = root().join("target/browser");
    std::fs::create_dir_all(&shots).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/page_test.py");
    let out = Command::new(&b.python)
        .arg(&script)
        .arg(mode)
        .arg(format!("http://{}", server.addr))
        .args(args)
        .arg(&shots)
        .arg(&b.chromium)
        .arg(&b.driver)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the page test failed:\n{}{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
}

/// `fathom index-images IMAGES --model MODEL --index INDEX --data-dir DATA`, then
/// `fathom serve` on 127.0.0.1 with that model and the images as thumbnail root.
fn index_and_serve(images: &Path, model: &Path, data: &Path, index: &str) -> common::Proc {
    let (ok, out, err) = common::run(
        common::fathom()
            .args(["index-images"])
            .arg(images)
            .arg("--model")
            .arg(model)
            .args(["--index", index, "--data-dir"])
            .arg(data),
    );
    assert!(ok, "index-images failed: {out}{err}");
    let mut serve = common::fathom();
    serve
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(data)
        .arg("--image-model")
        .arg(model)
        .arg("--image-root")
        .arg(images);
    common::start(serve)
}

fn page_finds_an_uploaded_photo_in_chromium() -> Outcome {
    let b = match browser() {
        Ok(b) => b,
        Err(why) => return skipped(why),
    };
    let model = match fathom_tests::efficientnet_dir() {
        Ok(d) => d,
        Err(why) => return skipped(format!("the image model is not available: {why}")),
    };
    let photos = match fathom_tests::sample_photos_dir() {
        Ok(d) => d,
        Err(why) => return skipped(format!("the sample photos are not available: {why}")),
    };
    let work = tempfile::tempdir().unwrap();
    let images = work.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    for f in [
        "chelsea.png",
        "coffee.png",
        "rocket.jpg",
        "motorcycle_left.png",
        "astronaut.png",
    ] {
        std::fs::copy(photos.join(f), images.join(f)).unwrap();
    }
    std::fs::write(
        images.join("metadata.csv"),
        "file,category\ncoffee.png,drink\nchelsea.png,cat\n",
    )
    .unwrap();
    // The query: the coffee photo at 60 % size, as JPEG — a near duplicate, not the file.
    let query = work.path().join("query.jpg");
    let img = image::open(photos.join("coffee.png")).unwrap();
    img.resize(
        img.width() * 6 / 10,
        img.height() * 6 / 10,
        image::imageops::FilterType::Triangle,
    )
    .to_rgb8()
    .save(&query)
    .unwrap();
    let server = index_and_serve(&images, &model, &work.path().join("data"), "Flat");
    page_test(
        &b,
        &server,
        "image",
        &[query.as_os_str(), "coffee.png".as_ref()],
    );
    PASSED
}

fn page_searches_images_by_text_with_clip_in_chromium() -> Outcome {
    let b = match browser() {
        Ok(b) => b,
        Err(why) => return skipped(why),
    };
    let model = root().join("crates/fathom-serve/tests/fixtures/tiny_clip");
    let work = tempfile::tempdir().unwrap();
    let images = work.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    // 400 small pictures of stripes and gradients, enough to train IVF8.
    for i in 0..400u32 {
        let img = image::RgbImage::from_fn(32, 32, |x, y| {
            let h = (i.wrapping_mul(2654435761) >> 7) as u8;
            image::Rgb([
                (x * (i % 7 + 1) * 8) as u8 ^ h,
                (y * (i % 5 + 1) * 8) as u8,
                ((x + y) * (i % 3 + 1) * 4) as u8 ^ (h >> 1),
            ])
        });
        img.save(images.join(format!("p{i:03}.png"))).unwrap();
    }
    let server = index_and_serve(&images, &model, &work.path().join("data"), "IVF8,Flat");
    page_test(&b, &server, "text", &["a photo of a cat".as_ref()]);
    PASSED
}

fathom_tests::harness::main!(
    page_finds_an_uploaded_photo_in_chromium,
    page_searches_images_by_text_with_clip_in_chromium,
);
