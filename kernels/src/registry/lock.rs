//! The registry's writer lock: an exclusive advisory lock (`flock`) on `<root>/lock`.
//!
//! Every operation that changes a ref or the promotion log holds it, so concurrent writers (threads
//! or processes) are serialised. Object writes need no lock: they are content-addressed and renamed
//! into place whole. The lock is released when the guard drops (or the process dies).

use std::fs::{File, OpenOptions};
use std::path::Path;

use super::atomic::io_err;
use crate::Error;

/// Holds the registry's exclusive writer lock until dropped.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

impl WriteLock {
    /// Blocks until the exclusive lock on `path` is held (creating the lock file if needed).
    pub fn acquire(path: &Path) -> Result<Self, Error> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io_err(path))?;
        file.lock().map_err(io_err(path))?;
        Ok(Self { _file: file })
    }
}
