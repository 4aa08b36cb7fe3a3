//! Running commands and installing the tools the automation needs into the cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;

/// Runs `cmd` with inherited stdio; fails with the command line if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// `cargo` as invoked by the running cargo (or from PATH).
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The folder `cargo install --root` puts tools in, and its `bin/`.
pub fn tools_root(ws: &Workspace) -> PathBuf {
    ws.cache_dir().join("tools")
}

/// PATH with the cached tools first.
pub fn path_with_tools(ws: &Workspace) -> std::ffi::OsString {
    let mut paths = vec![tools_root(ws).join("bin")];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).expect("valid PATH")
}

/// Installs a crates.io binary into the cache unless `bin` is already there.
pub fn ensure_cargo_tool(ws: &Workspace, krate: &str, version: &str, bin: &str, locked: bool) -> Result<PathBuf> {
    let path = tools_root(ws).join("bin").join(bin);
    if path.is_file() {
        return Ok(path);
    }
    eprintln!("installing {krate} {version} into {} (once per machine)", tools_root(ws).display());
    let mut cmd = cargo();
    cmd.args(["install", krate, "--version", version, "--root"]).arg(tools_root(ws));
    if locked {
        cmd.arg("--locked");
    }
    // Tools are built in their own target folder, not the workspace's.
    cmd.env("CARGO_TARGET_DIR", ws.cache_dir().join("tools-target"));
    run(&mut cmd)?;
    std::fs::remove_dir_all(ws.cache_dir().join("tools-target")).ok();
    Ok(path)
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry?;
        let dest = to.join(entry.path().strip_prefix(from)?);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest)?;
        } else {
            std::fs::copy(entry.path(), &dest).with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}
