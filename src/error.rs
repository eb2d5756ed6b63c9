//! The crate's error type: every message names the file, line or field and what was expected.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CraneError {
    /// A problem with a whole file (missing, wrong shape, unreadable).
    #[error("{}: {msg}", path.display())]
    File { path: PathBuf, msg: String },
    /// A problem on one line of a text file (1-based line number).
    #[error("{}:{line}: {msg}", path.display())]
    Line { path: PathBuf, line: usize, msg: String },
    /// A bad configuration value or command-line argument.
    #[error("invalid {field}: {msg}")]
    Config { field: String, msg: String },
    /// Anything else the user can fix.
    #[error("{0}")]
    Invalid(String),
    /// A run folder another process (or run) is training into: its `run.lock` is held.
    /// `msg` says who ("process 4711 is training into this folder").
    #[error("{}: {msg}; wait for it to end or stop it", path.display())]
    Busy { path: PathBuf, msg: String },
    #[error(transparent)]
    Reference(#[from] crane_reference::RefError),
}

impl CraneError {
    pub fn file(path: &Path, msg: impl Into<String>) -> Self {
        Self::File { path: path.to_path_buf(), msg: msg.into() }
    }

    pub fn line(path: &Path, line: usize, msg: impl Into<String>) -> Self {
        Self::Line { path: path.to_path_buf(), line, msg: msg.into() }
    }

    pub fn config(field: &str, msg: impl Into<String>) -> Self {
        Self::Config { field: field.into(), msg: msg.into() }
    }

    /// An I/O error on `path`, with the operation that failed.
    pub fn io(path: &Path, what: &str, e: std::io::Error) -> Self {
        Self::file(path, format!("cannot {what}: {e}"))
    }
}

pub type Result<T, E = CraneError> = std::result::Result<T, E>;
