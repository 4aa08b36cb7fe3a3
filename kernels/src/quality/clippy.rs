//! Clippy's findings on a crate: `cargo clippy --message-format=json`, counted by lint and level.
//!
//! Every `compiler-message` of level `warning` or `error` that points at code (has a span or a
//! lint code) counts, clippy's lints and rustc's alike (`unused_variables` is a finding too);
//! summaries such as "aborting due to…" do not. A message repeated for several targets (lib and
//! bin) counts once. The crate's lib and bins are checked, as `cargo clippy` does by default.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::quality::hygiene::Finding;
use crate::{Error, Result};

/// How often one lint fired at one level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LintCount {
    /// `clippy::needless_range_loop`, `unused_variables`, or `(none)` for a plain error.
    pub lint: String,
    pub level: String,
    pub count: usize,
}

/// The findings of one clippy run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clippy {
    pub warnings: usize,
    pub errors: usize,
    pub by_lint: Vec<LintCount>,
    pub findings: Vec<Finding>,
}

/// Runs clippy on the crate at `dir` (with `cargo_args`, e.g. `--all-features`).
pub fn measure(dir: &Path, options: &crate::quality::Options) -> Result<Clippy> {
    let shown = format!("cargo clippy --message-format=json {}", options.cargo_args.join(" "));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = crate::quality::cargo_tool(cargo.as_ref(), &["clippy", "--message-format=json"], dir, options);
    let out = cmd.output().map_err(|e| Error::QualityTool {
        command: shown.clone(),
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let clippy = parse_messages(&stdout);
    if !out.status.success() && clippy.errors == 0 {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::QualityTool {
            command: shown,
            dir: dir.to_path_buf(),
            reason: format!("{}: {}", out.status, stderr.lines().rev().take(10).collect::<Vec<_>>().join(" | ")),
        });
    }
    Ok(clippy)
}

/// Counts the findings in cargo's JSON message stream (one JSON object per line).
pub fn parse_messages(stream: &str) -> Clippy {
    let mut seen = HashSet::new();
    let mut by_lint: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut clippy = Clippy::default();
    for line in stream.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if v["reason"] != "compiler-message" {
            continue;
        }
        let m = &v["message"];
        let level = m["level"].as_str().unwrap_or_default().to_string();
        if level != "warning" && level != "error" {
            continue;
        }
        let lint = m["code"]["code"].as_str().map(str::to_string);
        let span = m["spans"].as_array().and_then(|s| s.iter().find(|s| s["is_primary"] == true).or(s.first()));
        if lint.is_none() && span.is_none() {
            continue;
        }
        let file = span.and_then(|s| s["file_name"].as_str()).unwrap_or_default().to_string();
        let line_no = span.and_then(|s| s["line_start"].as_u64()).unwrap_or(0) as usize;
        let column = span.and_then(|s| s["column_start"].as_u64()).unwrap_or(0);
        let text = m["message"].as_str().unwrap_or_default().to_string();
        let lint = lint.unwrap_or_else(|| "(none)".to_string());
        if !seen.insert((lint.clone(), file.clone(), line_no, column, text.clone())) {
            continue;
        }
        if level == "error" {
            clippy.errors += 1;
        } else {
            clippy.warnings += 1;
        }
        *by_lint.entry((lint.clone(), level.clone())).or_default() += 1;
        clippy.findings.push(Finding { file, line: line_no, what: format!("{level}[{lint}]: {text}") });
    }
    clippy.by_lint = by_lint.into_iter().map(|((lint, level), count)| LintCount { lint, level, count }).collect();
    clippy
}
