//! Crash-safe file writes for the registry: temp file in the destination folder, fsync, rename, fsync the folder.
//!
//! POSIX `rename(2)` replaces the destination atomically, so a reader sees the old file or the new one,
//! never a mix; the fsyncs make the new content durable before the name points to it. Temp files are
//! named `.tmp-*`; readers never open such names, and a crash mid-write leaves only a stray temp file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Error;

/// Wraps an I/O error with the path it happened on.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::RegistryIo { path: path.to_path_buf(), source }
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn os_random(buf: &mut [u8]) -> Result<(), Error> {
    use rand::TryRngCore;
    rand::rngs::OsRng.try_fill_bytes(buf).map_err(|e| Error::RegistryRandom(e.to_string()))
}

/// True for the names this module gives temp files (`.tmp-…`), which readers skip.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with(".tmp-")
}

/// A fresh temp path in `dir` (`.tmp-<pid>-<random hex>`), unique across threads and processes.
pub(crate) fn temp_path(dir: &Path) -> Result<PathBuf, Error> {
    let mut r = [0u8; 8];
    os_random(&mut r)?;
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    Ok(dir.join(format!(".tmp-{}-{hex}", std::process::id())))
}

/// Creates a new temp file in `dir` (`create_new`, mode `mode` on Unix), returning its path and handle.
pub(crate) fn create_temp(dir: &Path, mode: u32) -> Result<(PathBuf, File), Error> {
    let path = temp_path(dir)?;
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let file = opts.open(&path).map_err(io_err(&path))?;
    Ok((path, file))
}

/// Fsyncs a folder so a rename into it is durable (a no-op where folders cannot be opened).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Moves a finished, fsynced temp file onto `dest` and fsyncs the folder; removes the temp file on failure.
pub(crate) fn commit_temp(temp: &Path, dest: &Path) -> Result<(), Error> {
    if let Err(e) = fs::rename(temp, dest) {
        let _ = fs::remove_file(temp);
        return Err(Error::RegistryIo { path: dest.to_path_buf(), source: e });
    }
    sync_dir(dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

/// Writes `bytes` to `dest` atomically (temp file in the same folder, fsync, rename, fsync folder).
/// `mode` is the Unix permission of the new file (e.g. `0o644`, `0o600`).
pub fn write_atomic(dest: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (temp, mut file) = create_temp(dir, mode)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(Error::RegistryIo { path: temp, source: e });
    }
    commit_temp(&temp, dest)
}

/// Removes a temp file when dropped unless [`TempGuard::keep`] was called (cleanup on early return).
pub(crate) struct TempGuard(pub(crate) Option<PathBuf>);

impl TempGuard {
    /// Disarms the guard (the file was renamed away).
    pub(crate) fn keep(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}
