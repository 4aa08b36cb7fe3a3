//! `cargo xtask export`: writes the learner repository.
//!
//! It holds everything tracked here except the solutions (but those of the
//! weeks named with `--publish`) and the hidden tests (unless
//! `--with-hidden-tests`, or one week's for a Gradescope bundle); it builds and
//! grades on its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::{Workspace, spec};

/// Which weeks' hidden tests the export carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hidden {
    /// None: the learner's repository.
    Withheld,
    /// Every week's: an instructor's grading copy.
    All,
    /// One week's: a Gradescope bundle for that week.
    Week(String),
}

pub fn run(ws: &Workspace, out: &Path, publish: &[String], hidden: Hidden) -> Result<()> {
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
    let bar = autograder::progress::bar(files.len() as u64, format!("exporting to {}", out.display()), " files");
    let mut copied = 0;
    for rel in files {
        bar.inc(1);
        if rel.starts_with("solutions") && !published.iter().any(|p| rel.starts_with(p)) {
            continue;
        }
        if rel.starts_with("autograder/weeks") && rel.file_name().is_some_and(|f| f == "hidden.rs") {
            let keep = match &hidden {
                Hidden::Withheld => false,
                Hidden::All => true,
                Hidden::Week(id) => rel.parent().is_some_and(|p| p.ends_with(id)),
            };
            if !keep {
                continue;
            }
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
    bar.finish_and_clear();
    println!(
        "exported {copied} files to {} (solutions published: {}; hidden tests {})",
        out.display(),
        if publish.is_empty() { "none".to_string() } else { publish.join(", ") },
        match &hidden {
            Hidden::Withheld => "withheld".to_string(),
            Hidden::All => "included".to_string(),
            Hidden::Week(id) => format!("included for {id} only"),
        }
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
