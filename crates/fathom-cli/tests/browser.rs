//! The search page in a real browser: `fathom index-images` over sample photographs,
//! `fathom serve` with the image model, and headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed with apt when missing; Selenium from PyPI in
//! `target/browser-venv`) loading the page, searching with a re-encoded copy of one photo
//! through the file input (it must come first), then "Similar" on the hit. Screenshots are
//! saved under `target/browser/`. Skipped, saying why, where Chromium, Selenium, the model
//! or the photos cannot be had; the server is killed when the test ends, failed or not.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use fathom_tests::harness::{Outcome, PASSED, skipped};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Python with Selenium in `target/browser-venv`, made on first use.
fn selenium_python() -> Result<PathBuf, String> {
    let venv = root().join("target/browser-venv");
    let python = venv.join("bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args(["-c", "import selenium"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready(&python) {
        return Ok(python);
    }
    let run = |cmd: &mut Command| {
        cmd.output().map_err(|e| e.to_string()).and_then(|o| {
            if o.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&o.stderr).into_owned())
            }
        })
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "selenium",
    ]))?;
    Ok(python)
}

fn page_finds_an_uploaded_photo_in_chromium() -> Outcome {
    let chromium = match fathom_tests::apt_binary("chromium", &["chromium", "chromium-driver"]) {
        Ok(p) => p,
        Err(why) => return skipped(format!("no Chromium: {why}")),
    };
    let driver = match fathom_tests::apt_binary("chromedriver", &["chromium-driver"]) {
        Ok(p) => p,
        Err(why) => return skipped(format!("no chromedriver: {why}")),
    };
    let python = match selenium_python() {
        Ok(p) => p,
        Err(why) => return skipped(format!("no Selenium: {why}")),
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
    let data = work.path().join("data");
    let (ok, out, err) = common::run(
        common::fathom()
            .args(["index-images"])
            .arg(&images)
            .arg("--model")
            .arg(&model)
            .arg("--data-dir")
            .arg(&data),
    );
    assert!(ok, "index-images failed: {out}{err}");
    let mut serve = common::fathom();
    serve
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(&data)
        .arg("--image-model")
        .arg(&model)
        .arg("--image-root")
        .arg(&images);
    let server = common::start(serve);
    let shots = root().join("target/browser");
    std::fs::create_dir_all(&shots).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/page_test.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(format!("http://{}", server.addr))
        .arg(&query)
        .arg("coffee.png")
        .arg(&shots)
        .arg(&chromium)
        .arg(&driver)
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
    PASSED
}

fathom_tests::harness::main!(page_finds_an_uploaded_photo_in_chromium,);
