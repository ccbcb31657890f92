//! Opening the files fathom reads: regular files only.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use fathom_core::{Error, Result, check};

/// Opens `path` for reading, a regular file only ([`check::regular_file`]); `what` names
/// the expected content in the error.
pub(crate) fn open(path: &Path, what: &str) -> Result<File> {
    check::regular_file(path, what)?;
    File::open(path).map_err(|e| Error::io(path, e))
}

/// The whole of the regular file at `path` ([`open`]).
pub(crate) fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    let mut file = open(path, what)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_directories_are_refused_by_name() {
        let e = open(Path::new("/dev/zero"), "a Faiss index file").unwrap_err();
        assert!(
            e.to_string().contains("/dev/zero is a character device"),
            "{e}"
        );
        assert!(e.to_string().contains("expected a Faiss index file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path(), "an npy file").unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // Would block forever if opened.
            let e = open(&fifo, "an fvecs file").unwrap_err();
            assert!(e.to_string().contains("is a FIFO"), "{e}");
        }
        let file = dir.path().join("ok");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(read(&file, "bytes").unwrap(), b"abc");
    }
}
