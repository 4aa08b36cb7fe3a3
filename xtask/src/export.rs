//! `cargo xtask export`: writes the learner repository.
//!
//! It holds everything tracked here except the solutions (but those of the
//! weeks named with `--publish`) and the hidden tests (unless
//! `--with-hidden-tests`); it builds and grades on its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::{Workspace, spec};

pub fn run(ws: &Workspace, out: &Path, publish: &[String], with_hidden: bool) -> Result<()> {
    let weeks = spec::all_weeks(ws)?;
    let mut published = Vec::new();
    for id in publish {
        let week = weeks.iter().find(|w| &w.id == id).with_context(|| format!("no week {id} to publish"))?;
        published.push(PathBuf::from("solutions").join(&week.crate_name));
    }
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        bail!("{} exists and is not empty", out.display());
    }
    let files = tracked_files(ws)?;
    let mut copied = 0;
    for rel in files {
        if rel.starts_with("solutions") && !published.iter().any(|p| rel.starts_with(p)) {
            continue;
        }
        if !with_hidden && rel.starts_with("autograder/weeks") && rel.file_name().is_some_and(|f| f == "hidden.rs") {
            continue;
        }
        let from = ws.root.join(&rel);
        if !from.is_file() {
            continue;
        }
        let to = out.join(&rel);
        std::fs::create_dir_all(to.parent().expect("inside out"))?;
        if rel == Path::new("Cargo.toml") && published.is_empty() {
            // A member glob that matches nothing is an error to cargo.
            let manifest = std::fs::read_to_string(&from)?;
            let without: String =
                manifest.lines().filter(|l| l.trim() != "\"solutions/*\",").map(|l| format!("{l}\n")).collect();
            std::fs::write(&to, without)?;
        } else {
            std::fs::copy(&from, &to)?;
        }
        copied += 1;
    }
    println!(
        "exported {copied} files to {} (solutions published: {}; hidden tests {})",
        out.display(),
        if publish.is_empty() { "none".to_string() } else { publish.join(", ") },
        if with_hidden { "included" } else { "withheld" }
    );
    Ok(())
}

/// Files git tracks or would track (untracked but not ignored), relative to the root.
fn tracked_files(ws: &Workspace) -> Result<Vec<PathBuf>> {
    let out = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(&ws.root)
        .output()
        .context("running git ls-files")?;
    if !out.status.success() {
        bail!("export needs a git checkout: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out
        .stdout
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(String::from_utf8_lossy(s).into_owned()))
        .collect())
}
