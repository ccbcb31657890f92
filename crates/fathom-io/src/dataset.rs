use std::path::Path;

use fathom_core::{Error, Result};

/// Vectors of one dimension, row-major, as read from a dataset file.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset<T> {
    /// Dimension (values per row).
    pub d: usize,
    /// `n × d` values, row-major.
    pub data: Vec<T>,
}

impl<T> Dataset<T> {
    /// Number of rows.
    pub fn n(&self) -> usize {
        self.data.len().checked_div(self.d).unwrap_or(0)
    }

    /// Row `i`.
    ///
    /// # Panics
    /// When `i >= n()`, like slice indexing.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.d..(i + 1) * self.d]
    }
}

/// Reads float vectors from `.fvecs`, `.bvecs` (converted to f32) or float32 `.npy`,
/// chosen by the file extension.
pub fn read_vectors(path: impl AsRef<Path>) -> Result<Dataset<f32>> {
    let path = path.as_ref();
    match path.extension().and_then(|e| e.to_str()) {
        Some("fvecs") => crate::read_fvecs(path),
        Some("bvecs") => {
            let b = crate::read_bvecs(path)?;
            Ok(Dataset {
                d: b.d,
                data: b.data.into_iter().map(f32::from).collect(),
            })
        }
        Some("npy") => match crate::read_npy(path)? {
            crate::NpyArray::F32(x) => Ok(x),
            other => Err(Error::format(
                format!("npy file {}", path.display()),
                format!("holds {}, expected float32 vectors", other.dtype_name()),
            )),
        },
        _ => Err(Error::invalid(format!(
            "{}: unknown vector file type; expected .fvecs, .bvecs or .npy",
            path.display()
        ))),
    }
}
