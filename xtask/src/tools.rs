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

/// Installs Debian packages with apt-get unless dpkg says they are installed (needs root).
pub fn ensure_apt(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output();
            !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        println!("  installed: {}", packages.join(", "));
        return Ok(());
    }
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
    if !root {
        bail!("missing Debian packages; install them with `sudo apt-get install -y {}`", missing.join(" "));
    }
    let apt_install = || {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args(["install", "-y", "--no-install-recommends"]).args(&missing);
        cmd
    };
    if !apt_install().status().is_ok_and(|s| s.success()) {
        // A fresh machine has no package lists yet.
        run(Command::new("apt-get").arg("update"))?;
        run(&mut apt_install())?;
    }
    Ok(())
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
