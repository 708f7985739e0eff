//! A folder per test for run directories, configs and logs.

use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::names;

/// A fresh folder under `$NAUTI_TEST_DIR` (default `/tmp/nauti-tests`).
///
/// Removed on drop when the test passed; kept, with its path printed, when it failed (or when
/// `NAUTI_KEEP_TEST_DIR` is set), so the logs of every peer the test started can be read afterwards. Declare it first in a test so that it drops
/// last, after the guards that write into it.
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(test: &str) -> Result<Self> {
        let base = std::env::var_os("NAUTI_TEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp/nauti-tests"));
        let path = base.join(format!("{test}-{}", names::unique("")));
        std::fs::create_dir_all(&path).io_context(|| format!("create {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A sub-folder, created on demand.
    pub fn sub(&self, name: &str) -> Result<PathBuf> {
        let dir = self.path.join(name);
        std::fs::create_dir_all(&dir).io_context(|| format!("create {}", dir.display()))?;
        Ok(dir)
    }

    /// The path of a log file in this folder.
    pub fn log(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.log"))
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let keep = std::env::var_os("NAUTI_KEEP_TEST_DIR").is_some();
        if std::thread::panicking() || keep {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
