//! Running commands and installing the tools the automation needs into the cache.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// Runs `cmd` as a long step that says what it is doing: on a terminal, under a spinner showing
/// `what` and the command's latest output line, printing its output only if it fails; elsewhere
/// (a CI log, a pipe) it prints `what…` (as [`autograder::progress::spinner`] does) and runs as [`run`]
/// does, its output passing through.
pub fn run_shown(cmd: &mut Command, what: &str) -> Result<()> {
    let spinner = autograder::progress::spinner(what.to_string());
    if spinner.is_hidden() {
        return run(cmd);
    }
    let shown = format!("{cmd:?}");
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().with_context(|| format!("starting {shown}"))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let pipes: Vec<Box<dyn Read + Send>> = [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    let readers: Vec<_> = pipes
        .into_iter()
        .map(|pipe| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let mut tail = std::collections::VecDeque::new();
    for line in rx {
        if !line.trim().is_empty() {
            spinner.set_message(format!("{what}: {}", autograder::progress::shorten(&line, 50)));
        }
        if tail.len() == 60 {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    for reader in readers {
        reader.join().ok();
    }
    let status = child.wait().with_context(|| format!("waiting for {shown}"))?;
    spinner.finish_and_clear();
    if !status.success() {
        for line in &tail {
            eprintln!("{line}");
        }
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// `cargo` as invoked by the running cargo (or from PATH), without `cargo run`'s
/// variables for the running program (see [`autograder::cargo_command`]).
pub fn cargo() -> Command {
    autograder::cargo_command()
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

/// A crates.io binary the automation installs into the cache.
pub struct CargoTool {
    pub krate: &'static str,
    pub version: &'static str,
    pub bin: &'static str,
    /// `--locked`: build with the lock file the crate was published with.
    pub locked: bool,
}

/// Installs the tools whose binary is not in the cache yet. They are built one
/// after the other in one scratch target folder (not the workspace's), so the
/// dependencies they share (mdbook's library, pulldown-cmark, clap, …) compile
/// once; the folder is removed afterwards.
pub fn ensure_cargo_tools(ws: &Workspace, tools: &[CargoTool]) -> Result<()> {
    let scratch = ws.cache_dir().join("tools-target");
    for tool in tools {
        if tools_root(ws).join("bin").join(tool.bin).is_file() {
            continue;
        }
        let mut cmd = cargo();
        cmd.args(["install", tool.krate, "--version", tool.version, "--root"]).arg(tools_root(ws));
        if tool.locked {
            cmd.arg("--locked");
        }
        // Tools need no link-time optimisation or debug info; both cost minutes on 2 cores.
        cmd.env("CARGO_TARGET_DIR", &scratch)
            .env("CARGO_PROFILE_RELEASE_LTO", "false")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false");
        let what =
            format!("installing {} {} into {} (once per machine)", tool.krate, tool.version, tools_root(ws).display());
        run_shown(&mut cmd, &what)?;
    }
    std::fs::remove_dir_all(&scratch).ok();
    Ok(())
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
    let what = format!("installing {} with apt-get", missing.join(", "));
    if run_shown(&mut apt_install(), &what).is_err() {
        // A fresh machine has no package lists yet.
        run_shown(Command::new("apt-get").arg("update"), "updating apt's package lists")?;
        run_shown(&mut apt_install(), &what)?;
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
