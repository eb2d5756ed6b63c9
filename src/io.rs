//! Atomic file writes: nothing already written is lost if crane is killed mid-write.

use crate::error::{CraneError, Result};
use std::io::Write;
use std::path::Path;

/// Writes `path` through a temporary file in the same directory and a rename, so readers see
/// either the old file or the complete new one.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut w = std::io::BufWriter::new(std::fs::File::create(tmp)?);
        write(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })
}

/// [`write_atomic`] for writers that want a path (safetensors' `serialize_to_file`): `write`
/// fills the temporary file, which is then synced and renamed over `path`.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| CraneError::io(dir, "create directory", e))?;
    let name = path.file_name().ok_or_else(|| CraneError::file(path, "not a file path"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        write(&tmp)?;
        std::fs::OpenOptions::new().write(true).open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CraneError::io(path, "write", e)
    })
}

/// [`write_atomic`] for a string.
pub fn write_string_atomic(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, |w| w.write_all(text.as_bytes()))
}
