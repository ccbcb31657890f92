use std::path::PathBuf;

/// Everything that can go wrong in fathom. Every message says what was wrong and what was
/// expected; user input never causes a panic, it causes one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector or buffer has the wrong dimension or length.
    #[error("dimension mismatch: {what} has {got}, expected {expected}")]
    DimensionMismatch {
        /// What was being checked ("query", "ids", …).
        what: String,
        /// The size that was found.
        got: usize,
        /// The size that was required.
        expected: String,
    },
    /// An argument is outside what the operation accepts (k = 0, empty input, NaN, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The index must be trained before this operation.
    #[error("index is not trained: call train() before {0}")]
    NotTrained(String),
    /// The index or wrapper does not offer this operation.
    #[error("unsupported operation: {0}")]
    Unsupported(String),
    /// An id was not found.
    #[error("id {0} not found in the index")]
    IdNotFound(i64),
    /// A file or buffer does not follow the expected format.
    #[error("malformed {what}: {detail}")]
    Format {
        /// What was being read ("fvecs file data/base.fvecs", …).
        what: String,
        /// What was wrong and what was expected.
        detail: String,
    },
    /// No usable GPU: no CUDA driver library, no device with that number, or the device
    /// refused (out of memory, kernel compilation failed). The message says which.
    #[error("GPU unavailable: {0}")]
    GpuUnavailable(String),
    /// An operating-system I/O error, with the path it concerned when known.
    #[error("I/O error{}: {source}", path.as_ref().map(|p| format!(" on {}", p.display())).unwrap_or_default())]
    Io {
        /// The file involved, if any.
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// Shorthand for [`Error::Format`].
    pub fn format(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Format {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// The same error with `context` in front of its message ("token 2 (\"PQ5\"): …"),
    /// keeping its kind, so a caller can say where in its own input a problem arose.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        match self {
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("{context}: {m}")),
            Error::Unsupported(m) => Error::Unsupported(format!("{context}: {m}")),
            Error::NotTrained(m) => Error::NotTrained(format!("{m} ({context})")),
            Error::DimensionMismatch {
                what,
                got,
                expected,
            } => Error::DimensionMismatch {
                what: format!("{context}: {what}"),
                got,
                expected,
            },
            Error::Format { what, detail } => Error::Format {
                what,
                detail: format!("{context}: {detail}"),
            },
            other => other,
        }
    }

    /// Wraps an I/O error with the path it concerned.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: Some(path.into()),
            source,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Io { path: None, source }
    }
}

/// `Result` with fathom's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
