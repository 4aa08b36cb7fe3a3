//! `Tmp`: a temporary folder for one test, removed on drop; shared by every module that writes files.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A temp folder removed on drop.
pub(crate) struct Tmp(pub PathBuf);

impl Tmp {
    /// A fresh, empty folder `kernels-TAG-PID-N` under the system's temp folder.
    pub fn new(tag: &str) -> Tmp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kernels-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        Tmp(dir)
    }

    /// `p` inside the folder.
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
