//! The workspace's cache folder, where `cargo xtask peers` and `cargo xtask models` put the venv and the models.
//!
//! The same rule as `datasets::models::cache_dir` (a test keeps them equal):
//! `kernels` depends on nothing in the workspace, so it cannot call it.

use std::path::PathBuf;

/// `$SOVEREIGN_CACHE`, else `$XDG_CACHE_HOME/sovereign-ml`, else `~/.cache/sovereign-ml`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SOVEREIGN_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("sovereign-ml");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/sovereign-ml")
}

/// The Python of the peers' venv, `cache_dir()/venv/bin/python`.
pub fn venv_python() -> PathBuf {
    cache_dir().join("venv/bin/python")
}

/// Where `cargo xtask models` extracts `file` of `model` (`cache_dir()/models/<model>/<file>`).
pub fn model_file(model: &str, file: &str) -> PathBuf {
    cache_dir().join("models").join(model).join(file)
}
