//! Crash-safe file replacement: write beside the target, flush to disk, rename over it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use fathom_core::{Error, Result};

/// Writes the file at `path` through `fill`; the file appears complete or not at all.
pub(crate) fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{} is not a file path", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        fill(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Flushes the directory holding `path`, so that the rename itself survives a power
/// loss (on Linux a rename is durable only once its directory is synced).
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes plain-old-data values as little-endian bytes.
pub(crate) fn write_pod<T: bytemuck::Pod>(w: &mut impl Write, v: &[T]) -> std::io::Result<()> {
    // fathom only builds for little-endian targets' byte order in files; see `lib.rs`.
    w.write_all(bytemuck::cast_slice(v))
}

#[cfg(not(target_endian = "little"))]
compile_error!(
    "fathom's file formats are little-endian and fathom-io assumes a little-endian host"
);
