//! Line, function and region coverage of a crate's tests, from `cargo llvm-cov --json
//! --summary-only` (LLVM source-based coverage; the numbers are the tool's own totals).
//!
//! Branch coverage needs a nightly toolchain (`-Zcoverage-options=branch`, cargo-llvm-cov's
//! `--branch`); on stable the summary's branch counts are zero, so they are reported as not
//! measured, and the note says so. `cargo-llvm-cov` is looked for on `PATH`, then in the tools
//! root `cargo xtask ci` installs into (`<cache>/tools/bin`); `llvm-tools` comes from rustup.
//! Builds go to `$CARGO_TARGET_DIR/llvm-cov-target` (cargo-llvm-cov's rule), never to a folder of
//! their own.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The pinned version `cargo xtask ci` installs.
pub const CARGO_LLVM_COV_VERSION: &str = "0.9.1";

/// How to install cargo-llvm-cov (named by [`Error::QualityToolMissing`]).
pub fn install_command() -> String {
    format!(
        "rustup component add llvm-tools && cargo install --locked cargo-llvm-cov --version {CARGO_LLVM_COV_VERSION} --root {} (or run `cargo xtask ci`, which does both)",
        crate::cache::cache_dir().join("tools").display()
    )
}

/// Counts of one kind of coverage item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub count: u64,
    pub covered: u64,
    /// As cargo llvm-cov reports it (0–100).
    pub percent: f64,
}

/// The totals of a coverage run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    pub lines: Counts,
    pub functions: Counts,
    pub regions: Counts,
    /// `None` on stable (not measured).
    pub branches: Option<Counts>,
    /// What was and was not measured.
    pub note: String,
}

/// Finds `tool` on `PATH`, then in `<cache>/tools/bin`.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.push(crate::cache::cache_dir().join("tools/bin"));
    dirs.into_iter().map(|d| d.join(tool)).find(|p| p.is_file())
}

/// The `cargo-llvm-cov` binary, or a typed error naming the install command.
pub fn cargo_llvm_cov() -> Result<PathBuf> {
    find_tool("cargo-llvm-cov").ok_or_else(|| Error::QualityToolMissing {
        tool: "cargo-llvm-cov".to_string(),
        looked: format!("PATH and {}", crate::cache::cache_dir().join("tools/bin").display()),
        install: install_command(),
    })
}

/// Runs `cargo llvm-cov --json --summary-only` on the crate at `dir` (with `cargo_args`, e.g.
/// `--all-features`) and returns its totals.
pub fn measure(dir: &Path, options: &crate::quality::Options) -> Result<Coverage> {
    let tool = cargo_llvm_cov()?;
    let mut cmd = crate::quality::cargo_tool(tool.as_ref(), &["llvm-cov", "--json", "--summary-only"], dir, options);
    let shown = format!("cargo llvm-cov --json --summary-only {}", options.cargo_args.join(" "));
    let out = cmd.output().map_err(|e| Error::QualityTool {
        command: shown.clone(),
        dir: dir.to_path_buf(),
        reason: format!("could not start {}: {e}", tool.display()),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(Error::QualityTool {
            command: shown,
            dir: dir.to_path_buf(),
            reason: format!(
                "{} (a failing test, or llvm-tools missing: {})\n{}",
                out.status,
                install_command(),
                tail.join("\n")
            ),
        });
    }
    parse_summary(&String::from_utf8_lossy(&out.stdout)).map_err(|reason| Error::QualityTool {
        command: shown,
        dir: dir.to_path_buf(),
        reason,
    })
}

/// Reads the totals of cargo llvm-cov's JSON export (`data[0].totals`).
pub fn parse_summary(json: &str) -> std::result::Result<Coverage, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("output is not JSON: {e}"))?;
    let totals = &v["data"][0]["totals"];
    let counts = |kind: &str| -> std::result::Result<Counts, String> {
        let t = &totals[kind];
        let get = |k: &str| t[k].as_u64().ok_or_else(|| format!("no data[0].totals.{kind}.{k} in the summary"));
        Ok(Counts {
            count: get("count")?,
            covered: get("covered")?,
            percent: t["percent"].as_f64().ok_or_else(|| format!("no data[0].totals.{kind}.percent"))?,
        })
    };
    let branches = counts("branches").ok().filter(|b| b.count > 0);
    let note = if branches.is_some() {
        "lines, functions, regions and branches".to_string()
    } else {
        "lines, functions and regions; branch coverage not measured (it needs nightly: -Zcoverage-options=branch, cargo llvm-cov --branch)".to_string()
    };
    Ok(Coverage {
        lines: counts("lines")?,
        functions: counts("functions")?,
        regions: counts("regions")?,
        branches,
        note,
    })
}
