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

/// A run folder's lock: `<dir>/run.lock`, held with an exclusive `flock(2)` for as long as the
/// run trains, so that a second `crane train`/`compare`/`grid`/`bench` aimed at the same folder
/// (two shells, or a seed run beside a comparison that reaches it) is refused instead of
/// interleaving its writes of the state, checkpoint and history with the first one's. The
/// kernel releases the lock when its process ends, however it ends, so a killed run's file
/// blocks nothing. The file stays in the folder (removing it would let a waiter lock a removed
/// copy while a newcomer locks a new one); it holds the holder's process id while held, for the
/// message only, and is emptied when the lock is dropped. On targets without `flock` (not Unix)
/// there is no lock.
pub struct RunLock {
    file: std::fs::File,
}

impl RunLock {
    /// Takes `<dir>/run.lock` (the folder must exist). Errors: another process (or another
    /// run in this one) holds it, naming the file and, where written, its process id; or the
    /// file cannot be created.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join("run.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| CraneError::io(&path, "create", e))?;
        if !try_lock_exclusive(&file) {
            let holder = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u32>().ok());
            let who = holder.map_or("another process".to_string(), |p| format!("process {p}"));
            let msg = format!("{who} is training into this folder");
            return Err(CraneError::Busy { path, msg });
        }
        file.set_len(0)
            .and_then(|_| file.write_all(std::process::id().to_string().as_bytes()))
            .map_err(|e| CraneError::io(&path, "write", e))?;
        Ok(RunLock { file })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Emptied while still locked; closing the file then releases the lock.
        let _ = self.file.set_len(0);
    }
}

#[cfg(unix)]
fn try_lock_exclusive(file: &std::fs::File) -> bool {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor this function borrows; no memory is touched.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(not(unix))]
fn try_lock_exclusive(_file: &std::fs::File) -> bool {
    true
}
