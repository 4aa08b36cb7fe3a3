//! Where things are: the workspace root, the shared target directory, the cache.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The paths the engine works with.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The workspace root (the folder with the virtual `Cargo.toml`).
    pub root: PathBuf,
}

impl Workspace {
    /// Finds the workspace root from `start` upwards: the first folder holding
    /// both `Cargo.toml` and `autograder/weeks`.
    pub fn find(start: &Path) -> Result<Workspace> {
        let mut dir = start.canonicalize().with_context(|| format!("no such folder {}", start.display()))?;
        loop {
            if dir.join("Cargo.toml").is_file() && dir.join("autograder/weeks").is_dir() {
                return Ok(Workspace { root: dir });
            }
            if !dir.pop() {
                bail!(
                    "not inside the course workspace (no Cargo.toml with autograder/weeks above {})",
                    start.display()
                );
            }
        }
    }

    /// The workspace of the current directory.
    pub fn current() -> Result<Workspace> {
        Workspace::find(&std::env::current_dir()?)
    }

    /// The cargo target directory shared by the workspace and every grading harness.
    pub fn target_dir(&self) -> PathBuf {
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => {
                let dir = PathBuf::from(dir);
                if dir.is_absolute() { dir } else { self.root.join(dir) }
            }
            _ => self.root.join("target"),
        }
    }

    /// A cache outside the repository for tools, the peers' venv and models
    /// (`$SOVEREIGN_CACHE`, else `$XDG_CACHE_HOME/sovereign-ml`, else `~/.cache/sovereign-ml`).
    pub fn cache_dir(&self) -> PathBuf {
        datasets::models::cache_dir()
    }

    /// Scratch space for generated harnesses and submissions (gitignored).
    pub fn grade_dir(&self) -> PathBuf {
        self.root.join(".grade")
    }

    /// The learner's local grading history (gitignored).
    pub fn history_file(&self) -> PathBuf {
        self.root.join(".grade-history.jsonl")
    }

    /// The Python of the peers' virtual environment, when `cargo xtask peers` made one.
    pub fn peer_python(&self) -> Option<PathBuf> {
        let py = self.cache_dir().join("venv/bin/python");
        py.is_file().then_some(py)
    }
}
