//! The runner's state folder: the state file (each completed step's cache key and output hashes),
//! written atomically (temp file + fsync + rename + folder fsync), its lock, BLAKE3 file hashing and
//! the atomic commit of a step's staged outputs.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The state file's format version.
pub const STATE_VERSION: u32 = 1;
/// The state file's name inside the state folder.
pub const STATE_FILE: &str = "state.json";

/// What makes up a step's cache key (kept so that a plan can say what changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeyParts {
    /// BLAKE3 of the action (the command's argv template, or `fn:` and the function's name).
    pub action: String,
    /// BLAKE3 of the canonical `config` JSON.
    pub config: String,
    /// BLAKE3 of the extra environment.
    pub env: String,
    /// The tier.
    pub tier: String,
    /// BLAKE3 of each input's content (a folder: of its files' relative paths and contents).
    pub inputs: BTreeMap<String, String>,
    /// The output names and paths (moving an output changes the key).
    pub outputs: BTreeMap<String, PathBuf>,
    /// The cache key of each step declared in `after`, as recorded.
    pub after: BTreeMap<String, String>,
}

impl KeyParts {
    /// The cache key: BLAKE3 of these parts' JSON (fields in declaration order, maps sorted).
    pub fn key(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        blake3::hash(&json).to_hex().to_string()
    }
}

/// One committed output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// Where it is.
    pub path: PathBuf,
    /// BLAKE3 of its bytes (hex).
    pub blake3: String,
    /// Its size.
    pub bytes: u64,
}

/// A completed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Its cache key.
    pub key: String,
    /// What the key was made of.
    pub parts: KeyParts,
    /// Its outputs, by name.
    pub outputs: BTreeMap<String, OutputRecord>,
    /// Attempts the completing run made.
    pub attempts: u32,
    /// Wall time of the successful attempt, seconds.
    pub duration_s: f64,
    /// When it was committed, milliseconds since the Unix epoch.
    pub finished_unix_ms: i64,
}

/// The state file: every completed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// Completed steps by name.
    pub steps: BTreeMap<String, StepRecord>,
}

impl Default for State {
    fn default() -> Self {
        State { version: STATE_VERSION, steps: BTreeMap::new() }
    }
}

impl State {
    /// Reads `state_dir/state.json` (an empty state when there is none).
    pub fn load(state_dir: &Path) -> Result<State> {
        let path = state_dir.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => return Err(Error::PipelineIo { step: "(state)".into(), path, source }),
        };
        let state: State = serde_json::from_slice(&bytes)
            .map_err(|e| Error::PipelineState { path: path.clone(), reason: format!("not a state file: {e}") })?;
        if state.version != STATE_VERSION {
            return Err(Error::PipelineState {
                path,
                reason: format!("format version {} (this runner reads {STATE_VERSION})", state.version),
            });
        }
        Ok(state)
    }

    /// Writes `state_dir/state.json` atomically.
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        write_atomic(&state_dir.join(STATE_FILE), &bytes, "(state)")
    }
}

pub(crate) fn io_err(step: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let (step, path) = (step.to_owned(), path.to_path_buf());
    move |source| Error::PipelineIo { step, path, source }
}

/// A name no other temp file of this process uses.
pub(crate) fn unique_suffix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}.{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// fsync of a folder (makes a rename in it durable).
pub(crate) fn sync_dir(dir: &Path, step: &str) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io_err(step, dir))
}

/// Writes `bytes` to `path` through a temp file in the same folder: fsync, rename, folder fsync.
pub fn write_atomic(path: &Path, bytes: &[u8], step: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(step, dir))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", unique_suffix()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(io_err(step, &tmp))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io_err(step, &tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(step, path))?;
        sync_dir(dir, step)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// BLAKE3 (hex) and size of a file.
pub fn hash_file(path: &Path, step: &str) -> Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    let f = File::open(path).map_err(io_err(step, path))?;
    hasher.update_reader(f).map_err(io_err(step, path))?;
    let len = std::fs::metadata(path).map_err(io_err(step, path))?.len();
    Ok((hasher.finalize().to_hex().to_string(), len))
}

/// BLAKE3 (hex) of a file, or of a folder: its files' relative paths and contents' hashes, sorted
/// (symbolic links followed; empty folders do not count).
pub fn hash_path(path: &Path, step: &str) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(io_err(step, path))?;
    if !meta.is_dir() {
        return Ok(hash_file(path, step)?.0);
    }
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io_err(step, &dir))? {
            let p = entry.map_err(io_err(step, &dir))?.path();
            if std::fs::metadata(&p).map_err(io_err(step, &p))?.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"dir\0");
    for f in files {
        let rel = f.strip_prefix(path).unwrap_or(&f).to_string_lossy().into_owned();
        hasher.update(rel.as_bytes());
        hasher.update(b"\0");
        hasher.update(hash_file(&f, step)?.0.as_bytes());
        hasher.update(b"\n");
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Moves a staged, fsynced file to `dest` atomically (a rename; across file systems a copy into a
/// temp file beside `dest`, fsynced, then renamed), and fsyncs `dest`'s folder.
pub(crate) fn commit_file(staged: &Path, dest: &Path, step: &str) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(step, dir))?;
    File::open(staged).and_then(|f| f.sync_all()).map_err(io_err(step, staged))?;
    match std::fs::rename(staged, dest) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let tmp = dir.join(format!(".{name}.tmp.{}", unique_suffix()));
            std::fs::copy(staged, &tmp)
                .and_then(|_| File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, dest))
                .map_err(|source| {
                    let _ = std::fs::remove_file(&tmp);
                    Error::PipelineIo { step: step.to_owned(), path: dest.to_path_buf(), source }
                })?;
        }
        Err(source) => return Err(Error::PipelineIo { step: step.to_owned(), path: dest.to_path_buf(), source }),
    }
    sync_dir(dir, step)
}

/// An exclusive lock on a state folder (`flock` on `state_dir/lock`), released when dropped or when
/// the process dies.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Takes the lock, or fails at once naming the folder when another run holds it.
    pub fn acquire(state_dir: &Path) -> Result<StateLock> {
        std::fs::create_dir_all(state_dir).map_err(io_err("(state)", state_dir))?;
        let path = state_dir.join("lock");
        let file =
            File::options().create(true).truncate(false).write(true).open(&path).map_err(io_err("(state)", &path))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock(2) on a descriptor this function owns; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(Error::PipelineState {
                path: state_dir.to_path_buf(),
                reason: "another pipeline run holds this state folder's lock".into(),
            });
        }
        Ok(StateLock { _file: file })
    }
}

/// The last `lines` lines of a text file, joined with ` | ` (empty when unreadable).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else { return String::new() };
    let start = bytes.len().saturating_sub(4096);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let all: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}
