//! Keeps the shared cargo target folder within a disk budget: rustc's incremental caches grow with
//! every feature combination built (a week's proof, a helper's `-p kernels --features X`), and on
//! the machine this project runs on they once filled the disk (43 GB of 74 GB of target folder).
//!
//! Each `incremental/<crate>-<hash>` folder is one crate in one configuration; cargo never removes
//! one. [`incremental`] removes the least recently used ones (by the newest modification time
//! inside) until the rest fit `budget_bytes`. Removing one only costs its next build a full (not
//! incremental) compile of that crate; no build output is touched.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

/// The incremental caches of all profiles are kept below this (the machine has about 90 GB).
pub const BUDGET_BYTES: u64 = 16 << 30;

/// One crate-configuration cache: its folder, its size and when it was last written.
struct Cache {
    dir: PathBuf,
    bytes: u64,
    newest: SystemTime,
}

/// Size and newest modification time of everything under `dir`.
fn walk(dir: &Path) -> Result<(u64, SystemTime)> {
    let (mut bytes, mut newest) = (0u64, SystemTime::UNIX_EPOCH);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            newest = newest.max(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                bytes += meta.len();
            }
        }
    }
    Ok((bytes, newest))
}

/// Removes the least recently written incremental caches under `target` (every
/// `<profile>/incremental/*`) until the others total at most `budget_bytes`; returns the bytes
/// freed and the bytes kept.
pub fn incremental(target: &Path, budget_bytes: u64) -> Result<(u64, u64)> {
    let mut caches = Vec::new();
    let Ok(profiles) = std::fs::read_dir(target) else { return Ok((0, 0)) };
    for profile in profiles.flatten() {
        let inc = profile.path().join("incremental");
        let Ok(entries) = std::fs::read_dir(&inc) else { continue };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let (bytes, newest) = walk(&entry.path())?;
                caches.push(Cache { dir: entry.path(), bytes, newest });
            }
        }
    }
    caches.sort_by_key(|c| std::cmp::Reverse(c.newest));
    let (mut kept, mut freed) = (0u64, 0u64);
    for c in caches {
        if kept + c.bytes <= budget_bytes {
            kept += c.bytes;
        } else {
            std::fs::remove_dir_all(&c.dir).with_context(|| format!("removing {}", c.dir.display()))?;
            freed += c.bytes;
        }
    }
    Ok((freed, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a cache folder with `bytes` of content, last written `age_s` seconds ago.
    fn cache(target: &Path, profile: &str, name: &str, bytes: usize, age_s: u64) {
        let dir = target.join(profile).join("incremental").join(name).join("s-session");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("query-cache.bin");
        std::fs::write(&file, vec![0u8; bytes]).unwrap();
        let t = SystemTime::now() - std::time::Duration::from_secs(age_s);
        let f = std::fs::File::options().write(true).open(&file).unwrap();
        f.set_modified(t).unwrap();
        for d in [dir.as_path(), dir.parent().unwrap()] {
            std::fs::File::open(d).unwrap().set_modified(t).unwrap();
        }
    }

    #[test]
    fn the_least_recently_written_caches_go_first_until_the_rest_fit() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        cache(t, "debug", "kernels-new", 400, 10);
        cache(t, "debug", "kernels-old", 300, 5000);
        cache(t, "release", "kernels-mid", 200, 100);
        cache(t, "debug", "it-oldest", 100, 9000);
        std::fs::create_dir_all(t.join("debug/deps")).unwrap();
        std::fs::write(t.join("debug/deps/libkernels.rlib"), b"kept").unwrap();
        let (freed, kept) = incremental(t, 650).unwrap();
        assert_eq!((freed, kept), (400, 600));
        assert!(t.join("debug/incremental/kernels-new").exists());
        assert!(t.join("release/incremental/kernels-mid").exists());
        assert!(!t.join("debug/incremental/kernels-old").exists());
        assert!(!t.join("debug/incremental/it-oldest").exists());
        assert!(t.join("debug/deps/libkernels.rlib").exists(), "build outputs are never touched");
        // Within the budget, nothing goes; a missing target folder is not an error.
        assert_eq!(incremental(t, 10_000).unwrap(), (0, 600));
        assert_eq!(incremental(&t.join("nowhere"), 0).unwrap(), (0, 0));
    }
}
