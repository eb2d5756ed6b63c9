//! Scratch folders for the integration tests: unique names in the system's temp folder, removed
//! when the value is dropped, also when the test fails (unwinding drops it), so that a test run
//! leaves nothing behind (they used to leave ~45 MB of `crane-*` folders per run).

use std::path::Path;

/// A folder that exists until this value is dropped; derefs to its path.
pub struct Scratch(tempfile::TempDir);

/// A new empty folder named `crane-{tag}-` plus a unique suffix.
pub fn scratch(tag: &str) -> Scratch {
    Scratch(
        tempfile::Builder::new().prefix(&format!("crane-{tag}-")).tempdir().expect("a scratch folder in the temp dir"),
    )
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.path().as_os_str()
    }
}

/// Holds `dir`'s `run.lock` for `ms` milliseconds from another thread, as a second process
/// training into the same run folder would; join the handle once the code under test has returned.
#[allow(dead_code)]
pub fn hold_run_lock_for(dir: &std::path::Path, ms: u64) -> std::thread::JoinHandle<()> {
    std::fs::create_dir_all(dir).unwrap();
    let lock = crane::io::RunLock::acquire(dir).unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        drop(lock);
    })
}
