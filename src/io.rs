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

/// A run folder's lock: `<dir>/run.lock` holds the id of the process training into the folder,
/// so that a second `crane train`/`compare`/`grid` aimed at the same folder (two shells, or a
/// seed run beside a comparison that reaches it) is refused instead of interleaving its writes
/// of the state, checkpoint and history with the first one's. Removed when dropped (the run
/// ended or failed). A lock whose process is gone (killed) is taken over; where that cannot be
/// told (no `/proc`), the holder is assumed alive and the error says how to clear it.
pub struct RunLock {
    path: std::path::PathBuf,
}

impl RunLock {
    /// Takes `<dir>/run.lock` (the folder must exist). Errors: another live process holds it
    /// (naming the file and its process id), or the file cannot be written.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join("run.lock");
        for _ in 0..3 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(std::process::id().to_string().as_bytes())
                        .map_err(|e| CraneError::io(&path, "write", e))?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u32>().ok());
                    if let Some(pid) = holder.filter(|&p| process_alive(p)) {
                        return Err(CraneError::file(
                            &path,
                            format!(
                                "process {pid} is training into this folder; wait for it to end or stop it (if \
                                 no crane process {pid} runs, delete this file)"
                            ),
                        ));
                    }
                    // Stale (its process is gone) or unreadable half-written: taken over.
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(CraneError::io(&path, "create", e)),
            }
        }
        Err(CraneError::file(&path, "could not be taken: another process keeps creating it"))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether process `pid` exists: `/proc/<pid>` on Linux; assumed alive where there is no `/proc`.
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}
