//! Test folders for the file handler's unit tests.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh folder under the system temp dir with a `root` (canonical) and an
/// `outside` sibling, removed on drop even when a test fails.
pub(crate) struct Scratch {
    pub base: PathBuf,
    pub root: PathBuf,
    pub outside: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base =
            std::env::temp_dir().join(format!("wisp-files-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("root")).unwrap();
        fs::create_dir_all(base.join("outside")).unwrap();
        let base = base.canonicalize().unwrap();
        Scratch {
            root: base.join("root"),
            outside: base.join("outside"),
            base,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}
