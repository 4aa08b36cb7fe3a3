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

    /// Reports written for the learner to open (gitignored, under `.grade/`): `progress.svg`.
    pub fn report_dir(&self) -> PathBuf {
        self.grade_dir().join("reports")
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

/// `cargo` as invoked by the running cargo (or from PATH), without the variables
/// `cargo run` and `cargo test` give the running program (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_*`, …).
///
/// A nested build must not inherit them: build scripts may declare them with
/// `rerun-if-env-changed` (ring does, for `CARGO_MANIFEST_DIR`), so a build started
/// from `cargo xtask` in one clone re-ran ring's build script, and rebuilt
/// everything above ring (rustls, reqwest, object_store, parquet, …), in every
/// other clone and in every plain `cargo test`. Nor must it inherit the outer build's
/// `RUSTC_WORKSPACE_WRAPPER` and `CLIPPY_ARGS` (CI's test build runs clippy's driver as
/// the workspace's rustc): the nested workspace is another one, with its own lints.
pub fn cargo_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    without_cargo_run_env(&mut cmd);
    cmd
}

/// Removes from `cmd`'s environment what `cargo run`/`cargo test` set for the running
/// program (see [`cargo_command`]), for any child that may start cargo itself.
pub fn without_cargo_run_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "OUT_DIR"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "CLIPPY_ARGS"
            )
        {
            cmd.env_remove(key);
        }
    }
    cmd
}
