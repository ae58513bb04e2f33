//! Per-test working folders: VM logs, disk images, firmware variables.
//!
//! A [`TestDir`] lives under `$LANDFALL_TEST_DIR` (default `<tmp>/landfall-tests`)
//! and is named after the running test (libtest names each test's thread after
//! the test). It is removed when dropped, unless
//!
//! - the thread is panicking (a failed assertion),
//! - something marked it as failed ([`TestDir::mark_failed`]; every harness error
//!   produced while a VM runs does this, so a test that returns `Err` keeps its
//!   logs too), or
//! - `LANDFALL_KEEP=1` is set.
//!
//! A kept folder's path is printed to stderr, which libtest shows for failures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A folder for one test's files, kept when the test fails.
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    failed: Arc<AtomicBool>,
}

impl TestDir {
    /// Creates a fresh folder named `<test-name>-<label>-XXXXXX`.
    pub fn new(label: &str) -> std::io::Result<TestDir> {
        let root = std::env::var_os("LANDFALL_TEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("landfall-tests"));
        std::fs::create_dir_all(&root)?;
        let prefix = format!("{}-{}-", sanitize(&current_test_name()), sanitize(label));
        let dir = tempfile::Builder::new().prefix(&prefix).tempdir_in(&root)?;
        let path = dir.path().to_path_buf();
        Ok(TestDir {
            dir: Some(dir),
            path,
            failed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the folder.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Keeps the folder when it drops (called on every harness error).
    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::SeqCst);
    }

    /// A flag shared with others who may mark this folder failed.
    pub fn failure_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.failed)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let keep = std::thread::panicking()
            || self.failed.load(Ordering::SeqCst)
            || std::env::var_os("LANDFALL_KEEP").is_some_and(|v| v == "1");
        if keep {
            if let Some(dir) = self.dir.take() {
                let path = dir.keep();
                eprintln!("landfall-tests: kept {}", path.display());
            }
        }
    }
}

/// The running test's name as libtest gives it (its thread's name).
pub fn current_test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned()
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_file_names() {
        assert_eq!(sanitize("vm::boot test/1"), "vm--boot-test-1");
    }

    #[test]
    fn removed_on_success_kept_when_marked() {
        let gone = TestDir::new("a").unwrap();
        let gone_path = gone.path().to_path_buf();
        assert!(gone_path.is_dir());
        drop(gone);
        assert!(!gone_path.exists());

        let kept = TestDir::new("b").unwrap();
        let kept_path = kept.path().to_path_buf();
        assert!(kept_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .contains("-b-"));
        kept.mark_failed();
        drop(kept);
        assert!(kept_path.is_dir());
        std::fs::remove_dir_all(kept_path).unwrap();
    }
}
