//! Gradescope: the autograder bundle (`cargo xtask export --gradescope WEEK --out FILE.zip`)
//! and the command its `run_autograder` calls (`cargo xtask gradescope-run WEEK`).
//!
//! Gradescope unpacks the bundle into `/autograder/source`, runs `setup.sh` once
//! when it builds the assignment's image, and for each submission runs
//! `/autograder/run_autograder` with the learner's files in
//! `/autograder/submission`; the score is read from
//! `/autograder/results/results.json` (format: Gradescope's "Autograder
//! Specifications", checked here by [`validate_results`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use autograder::{GradeOptions, Mode, Workspace, grade, spec};

/// Environment variable that moves the Gradescope root (tests use a scratch folder).
pub const ROOT_ENV: &str = "AUTOGRADER_ROOT";

/// Writes the bundle for `week` to `zip_path`.
pub fn bundle(ws: &Workspace, week: &str, zip_path: &Path) -> Result<()> {
    let week = spec::resolve(ws, week, None)?;
    let staging = tempfile::Builder::new().prefix("gradescope-").tempdir()?;
    let source = staging.path().join("source");
    crate::export::run(ws, &source, &[], crate::export::Hidden::Week(week.id.clone()))?;
    let toolchain = rust_version(ws)?;
    std::fs::write(source.join("setup.sh"), setup_script(&week.id, &toolchain))?;
    std::fs::write(source.join("run_autograder"), run_script(&week.id))?;

    let file = std::fs::File::create(zip_path).with_context(|| format!("creating {}", zip_path.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let mut count = 0;
    for entry in walkdir::WalkDir::new(&source).sort_by_file_name() {
        let entry = entry?;
        let rel = entry.path().strip_prefix(&source)?;
        if rel.as_os_str().is_empty() || entry.file_type().is_dir() {
            continue;
        }
        let name = rel.to_string_lossy().replace('\\', "/");
        let executable = name == "setup.sh" || name == "run_autograder";
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(if executable { 0o755 } else { 0o644 });
        zip.start_file(name, options)?;
        zip.write_all(&std::fs::read(entry.path())?)?;
        count += 1;
    }
    zip.finish()?;
    println!(
        "Gradescope bundle for {} written to {} ({count} files): upload it as the assignment's autograder \
         (\"Zip file upload\"); setup.sh installs Rust {toolchain}, the peers and the models, and builds the \
         harness once",
        week.id,
        zip_path.display()
    );
    Ok(())
}

/// The workspace's `rust-version`: the toolchain the bundle installs.
fn rust_version(ws: &Workspace) -> Result<String> {
    let manifest: toml::Table = toml::from_str(&std::fs::read_to_string(ws.root.join("Cargo.toml"))?)?;
    manifest
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("rust-version"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .context("the workspace Cargo.toml has no workspace.package.rust-version")
}

fn setup_script(week: &str, toolchain: &str) -> String {
    format!(
        r#"#!/usr/bin/env bash
# Gradescope setup for week {week}: runs once, when Gradescope builds the image
# (Ubuntu 24.04 base; it has internet access there). Installs the Rust toolchain,
# the Python peers the hidden tests compare with, the models, and builds the
# grading harness with the untouched lab, so that grading a submission only
# compiles the learner's crate.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends build-essential pkg-config ca-certificates \
    python3 python3-venv python3-pip rustup
rustup toolchain install {toolchain} --profile minimal
rustup default {toolchain}
export PATH="$HOME/.cargo/bin:$PATH"
cargo xtask peers
cargo xtask models
cargo xtask gradescope-run {week} --warm
"#
    )
}

fn run_script(week: &str) -> String {
    format!(
        r#"#!/usr/bin/env bash
# Gradescope entry point for week {week}: grades /autograder/submission with the
# hidden tests and writes /autograder/results/results.json ({ROOT_ENV} moves the root).
set -uo pipefail
ROOT="${{{ROOT_ENV}:-/autograder}}"
export PATH="$HOME/.cargo/bin:$PATH"
cd "$ROOT/source"
exec cargo xtask gradescope-run {week} --root "$ROOT"
"#
    )
}

/// Grades the submission under `root/submission` and writes `root/results/results.json`;
/// with `warm`, grades the untouched lab as a stand-in submission and writes nothing.
pub fn run(ws: &Workspace, week: &str, root: &Path, warm: bool) -> Result<()> {
    let week = spec::resolve(ws, week, None)?;
    if warm {
        let options = GradeOptions { mode: Mode::Submission(week.lab_dir(ws)), ..GradeOptions::default() };
        let report = grade(ws, &week, &options)?;
        println!("harness built: the untouched lab scores {:.1}/{:.0}", report.score, report.max_score);
        return Ok(());
    }
    let results = root.join("results/results.json");
    std::fs::create_dir_all(results.parent().expect("has a parent"))?;
    let outcome = find_submission(&root.join("submission"), &week.crate_name).and_then(|dir| {
        let options = GradeOptions { mode: Mode::Submission(dir), ..GradeOptions::default() };
        grade(ws, &week, &options)
    });
    let json = match outcome {
        Ok(report) => {
            print!("{}", report.render());
            report.to_gradescope()
        }
        // The learner must see why nothing was graded, never a silent zero.
        Err(e) => serde_json::json!({
            "score": 0.0,
            "output": format!("{}: the submission could not be graded: {e:#}", week.id),
            "output_format": "text",
            "visibility": "visible",
            "tests": [],
        }),
    };
    validate_results(&json)?;
    std::fs::write(&results, serde_json::to_string_pretty(&json)?)?;
    println!("results written to {}", results.display());
    Ok(())
}

/// The lab crate inside an uploaded submission: the folder itself when it holds
/// `src/lib.rs`, else `labs/<crate>` (a repository upload), else the shallowest
/// folder with `src/lib.rs`, else the shallowest `lib.rs` (files uploaded loose).
pub fn find_submission(dir: &Path, crate_name: &str) -> Result<PathBuf> {
    if dir.join("src/lib.rs").is_file() {
        return Ok(dir.to_path_buf());
    }
    let in_repo = dir.join("labs").join(crate_name);
    if in_repo.join("src/lib.rs").is_file() {
        return Ok(in_repo);
    }
    let mut libs: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.file_name() == "lib.rs")
        .map(|e| e.into_path())
        .collect();
    libs.sort_by_key(|p| (p.components().count(), p.clone()));
    let crate_dir = libs.iter().find(|p| p.parent().is_some_and(|s| s.ends_with("src")));
    match crate_dir.or(libs.first()) {
        Some(lib) if lib.parent().is_some_and(|s| s.ends_with("src")) => {
            Ok(lib.parent().and_then(Path::parent).expect("src has a parent").to_path_buf())
        }
        Some(lib) => Ok(lib.parent().expect("a file has a parent").to_path_buf()),
        None => bail!(
            "no lib.rs in the upload: submit the lab's src/ folder (src/lib.rs and its modules), \
             the crate folder labs/{crate_name}, or the repository"
        ),
    }
}

/// Checks `results.json` against Gradescope's documented fields and values.
pub fn validate_results(json: &serde_json::Value) -> Result<()> {
    const TOP: &[&str] = &[
        "score",
        "execution_time",
        "output",
        "output_format",
        "test_output_format",
        "test_name_format",
        "visibility",
        "stdout_visibility",
        "extra_data",
        "tests",
        "leaderboard",
    ];
    const TEST: &[&str] = &[
        "score",
        "max_score",
        "status",
        "name",
        "name_format",
        "number",
        "output",
        "output_format",
        "tags",
        "visibility",
        "extra_data",
    ];
    const VISIBILITY: &[&str] = &["hidden", "after_due_date", "after_published", "visible"];
    const FORMAT: &[&str] = &["text", "html", "simple_format", "md", "ansi"];
    let top = json.as_object().context("results.json is not an object")?;
    for key in top.keys() {
        ensure!(TOP.contains(&key.as_str()), "results.json: unknown key {key:?}");
    }
    let tests = top.get("tests").and_then(|t| t.as_array());
    ensure!(
        top.get("score").is_some_and(|s| s.is_number())
            || tests.is_some_and(|t| t.iter().all(|t| t["score"].is_number())),
        "results.json: a score is needed, on the whole or on every test"
    );
    check_enum(top, "visibility", VISIBILITY)?;
    check_enum(top, "stdout_visibility", VISIBILITY)?;
    for key in ["output_format", "test_output_format", "test_name_format"] {
        check_enum(top, key, FORMAT)?;
    }
    for (i, test) in tests.into_iter().flatten().enumerate() {
        let test = test.as_object().with_context(|| format!("results.json: test {i} is not an object"))?;
        for key in test.keys() {
            ensure!(TEST.contains(&key.as_str()), "results.json: test {i} has an unknown key {key:?}");
        }
        for key in ["score", "max_score"] {
            if let Some(v) = test.get(key) {
                ensure!(v.as_f64().is_some_and(f64::is_finite), "results.json: test {i}: {key} is not a number");
            }
        }
        check_enum(test, "status", &["passed", "failed"])?;
        check_enum(test, "visibility", VISIBILITY)?;
        check_enum(test, "output_format", FORMAT)?;
        check_enum(test, "name_format", FORMAT)?;
        if let Some(tags) = test.get("tags") {
            ensure!(
                tags.as_array().is_some_and(|t| t.iter().all(|t| t.is_string())),
                "results.json: test {i}: tags must be strings"
            );
        }
    }
    for (i, entry) in top.get("leaderboard").and_then(|l| l.as_array()).into_iter().flatten().enumerate() {
        ensure!(entry["name"].is_string(), "results.json: leaderboard entry {i} has no name");
        ensure!(
            entry["value"].is_number() || entry["value"].is_string(),
            "results.json: leaderboard entry {i} has no value"
        );
        if let Some(order) = entry.get("order") {
            ensure!(order == "asc" || order == "desc", "results.json: leaderboard entry {i}: order {order}");
        }
    }
    Ok(())
}

fn check_enum(object: &serde_json::Map<String, serde_json::Value>, key: &str, allowed: &[&str]) -> Result<()> {
    if let Some(value) = object.get(key) {
        let value = value.as_str().with_context(|| format!("results.json: {key} is not a string"))?;
        ensure!(allowed.contains(&value), "results.json: {key} = {value:?} (allowed: {allowed:?})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_checked_against_the_documented_fields() {
        let good = serde_json::json!({ "score": 3.0, "visibility": "visible", "tests": [
            { "name": "a", "score": 1.0, "max_score": 2.0, "status": "failed", "visibility": "after_published",
              "tags": ["t"], "output_format": "text" }],
            "leaderboard": [{ "name": "QPS ratio", "value": 1.2, "order": "desc" }] });
        validate_results(&good).unwrap();
        let check = |patch: serde_json::Value, needle: &str| {
            let mut bad = good.clone();
            json_patch(&mut bad, &patch);
            let err = validate_results(&bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{patch} gave {err}");
        };
        check(serde_json::json!({ "visibility": "public" }), "visibility");
        check(serde_json::json!({ "scores": 1 }), "unknown key");
        check(serde_json::json!({ "tests": [{ "status": "ok", "score": 1.0 }] }), "status");
        check(serde_json::json!({ "tests": [{ "score": "1" }] }), "score");
        check(serde_json::json!({ "leaderboard": [{ "name": "x", "value": 1, "order": "up" }] }), "order");
    }

    fn json_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
        for (k, v) in patch.as_object().unwrap() {
            target[k] = v.clone();
        }
    }

    #[test]
    fn submissions_are_found_in_every_upload_shape() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let touch = |rel: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        };
        assert!(find_submission(root, "c4w3-vector-search").is_err());
        touch("loose/lib.rs");
        assert_eq!(find_submission(root, "c4w3-vector-search").unwrap(), root.join("loose"));
        touch("repo/x/src/lib.rs");
        assert_eq!(find_submission(root, "c4w3-vector-search").unwrap(), root.join("repo/x"));
        touch("labs/c4w3-vector-search/src/lib.rs");
        assert_eq!(find_submission(root, "c4w3-vector-search").unwrap(), root.join("labs/c4w3-vector-search"));
        touch("src/lib.rs");
        assert_eq!(find_submission(root, "c4w3-vector-search").unwrap(), root);
    }
}
