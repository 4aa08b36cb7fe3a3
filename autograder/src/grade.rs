//! One grading run: prepare the implementation, build its harness, run every test, score.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::harness::{self, Build, Implementation, Purpose};
use crate::report::{Report, TestReport, Timings};
use crate::runner::{self, Limits, Outcome, Status};
use crate::services;
use crate::spec::{TestFile, WeekSpec};
use crate::{Workspace, history, progress};

/// Which implementation to grade.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The lab in this checkout (the learner's default).
    Lab,
    /// The reference solution (instructors: must score full marks).
    Solution,
    /// A learner's copy of the lab crate (or of its `src/`), graded in isolation.
    Submission(PathBuf),
}

/// How to grade.
#[derive(Debug, Clone)]
pub struct GradeOptions {
    pub mode: Mode,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Multiply every test's time limit (e.g. 0.2 for hostile-submission tests).
    pub timeout_scale: f64,
    /// Runs of a graded benchmark that falls short of full marks, keeping the best
    /// (`cargo xtask check` uses 3: it proves a benchmark reachable, not the machine quiet).
    pub bench_attempts: u32,
}

impl Default for GradeOptions {
    fn default() -> Self {
        GradeOptions { mode: Mode::Lab, progress: false, timeout_scale: 1.0, bench_attempts: 1 }
    }
}

/// Grades one week and returns the scored report (it does not print or record it).
pub fn grade(ws: &Workspace, week: &WeekSpec, options: &GradeOptions) -> Result<Report> {
    let imp = match &options.mode {
        Mode::Lab => Implementation::Lab,
        Mode::Solution => Implementation::Solution,
        Mode::Submission(dir) => Implementation::Submission(prepare_submission(ws, week, dir)?),
    };
    let mut timings = Timings::default();
    let phase = Instant::now();
    let harness = harness::generate(ws, week, &imp, Purpose::Grade)?;
    let spinner = progress::spinner_if(options.progress, format!("building week {} ({})", week.id, imp.name()));
    let build = harness::build(ws, &harness)?;
    spinner.finish_and_clear();
    timings.build_s = phase.elapsed().as_secs_f64();
    let binary = match build {
        Build::Ok(binary) => binary,
        Build::Failed(error) => {
            let mut report = Report::compile_failed(week, imp.name(), error);
            report.timings = timings;
            return Ok(report);
        }
    };
    let registered = list_tests(&binary)?;

    let scratch = ws.grade_dir().join("runs");
    std::fs::create_dir_all(&scratch)?;
    let phase = Instant::now();
    let services = if week.services.is_empty() {
        services::Services::default()
    } else {
        let spinner =
            progress::spinner_if(options.progress, format!("starting {:?} for week {}", week.services, week.id));
        let started = services::start(&week.services, &scratch)?;
        spinner.finish_and_clear();
        started
    };
    timings.services_s = phase.elapsed().as_secs_f64();
    let bar = progress::bar_if(options.progress, week.tests().count() as u64, format!("grading {}", week.id), " tests");
    let mut tests = Vec::new();
    for (task, spec) in week.tests() {
        bar.set_message(spec.name.clone());
        let phase = Instant::now();
        let present = week.test_file(ws, spec.file).is_some();
        let limits = Limits {
            timeout: Duration::from_secs_f64(spec.timeout_s * options.timeout_scale),
            memory_mb: spec.memory_mb,
        };
        let outcome = if !present {
            None
        } else if !registered.iter().any(|n| n == &spec.name) {
            Some(Outcome {
                status: Status::Failed {
                    message: format!(
                        "the grader has no test `{}` in {:?} (instructor: week.toml and the test file disagree)",
                        spec.name, spec.file
                    ),
                },
                metrics: BTreeMap::new(),
                output: String::new(),
                seconds: 0.0,
            })
        } else {
            timings.processes += 1;
            Some(runner::run_test(&binary, &spec.name, limits, &services.env, &scratch)?)
        };
        let mut report = TestReport::score(task, spec, outcome);
        // Only a benchmark that ran to the end and fell short of its ratio is run again.
        if spec.file == TestFile::Bench && matches!(report.details, Some(Status::Passed)) {
            for _ in 1..options.bench_attempts.max(1) {
                if report.score >= report.max_score {
                    break;
                }
                timings.processes += 1;
                let again = runner::run_test(&binary, &spec.name, limits, &services.env, &scratch)?;
                let again = TestReport::score(task, spec, Some(again));
                if again.score > report.score {
                    report = again;
                }
            }
        }
        let seconds = phase.elapsed().as_secs_f64();
        if spec.file == TestFile::Bench {
            timings.bench_s += seconds;
        } else {
            timings.tests_s += seconds;
        }
        tests.push(report);
        bar.inc(1);
    }
    bar.finish_and_clear();
    drop(services);
    let mut report = Report::new(week, imp.name(), tests);
    report.timings = timings;
    Ok(report)
}

/// Grades, then (for the learner's own lab) records the run and picks each task's next hint.
pub fn grade_and_record(ws: &Workspace, week: &WeekSpec, options: &GradeOptions) -> Result<Report> {
    let mut report = grade(ws, week, options)?;
    let past = history::load(ws)?;
    report.choose_hints(week, &past);
    if matches!(options.mode, Mode::Lab) {
        history::append(ws, &report)?;
    }
    Ok(report)
}

fn list_tests(binary: &Path) -> Result<Vec<String>> {
    let out =
        Command::new(binary).arg("list").output().with_context(|| format!("running {} list", binary.display()))?;
    if !out.status.success() {
        bail!("the harness could not list its tests: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, n)| n.to_string()))
        .collect())
}

/// Copies a submission into a crate of its own: the lab's manifest and the
/// submission's `*.rs` sources only, so nothing but Rust code under `src/`
/// comes from the learner (no build script, no dependency changes, no files
/// outside the copy).
fn prepare_submission(ws: &Workspace, week: &WeekSpec, dir: &Path) -> Result<PathBuf> {
    let src = if dir.join("src/lib.rs").is_file() {
        dir.join("src")
    } else if dir.join("lib.rs").is_file() {
        dir.to_path_buf()
    } else {
        bail!(
            "{} holds no lab crate: expected src/lib.rs (a copy of labs/{}) or lib.rs",
            dir.display(),
            week.crate_name
        );
    };
    let manifest = week.lab_dir(ws).join("Cargo.toml");
    let manifest_text =
        std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let dest = ws.grade_dir().join("submissions").join(&week.id);
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::create_dir_all(dest.join("src"))?;
    let manifest_text = standalone_manifest(ws, &manifest_text)?;
    std::fs::write(dest.join("Cargo.toml"), manifest_text)?;
    let mut copied = 0;
    for entry in walkdir::WalkDir::new(&src).follow_links(false) {
        let entry = entry?;
        if entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "rs") {
            let rel = entry.path().strip_prefix(&src)?;
            let to = dest.join("src").join(rel);
            std::fs::create_dir_all(to.parent().expect("inside src"))?;
            std::fs::copy(entry.path(), &to)?;
            copied += 1;
        }
    }
    if copied == 0 {
        bail!("{} contains no .rs files", src.display());
    }
    Ok(dest)
}

/// The lab's manifest made standalone: workspace-inherited keys and
/// dependencies spelled out, and test, bench and dev-dependency sections dropped
/// (a submission is graded by the grader's tests only).
fn standalone_manifest(ws: &Workspace, lab_manifest: &str) -> Result<String> {
    let root: toml::Table = toml::from_str(&std::fs::read_to_string(ws.root.join("Cargo.toml"))?)?;
    let empty = toml::Table::new();
    let ws_package = root.get("workspace").and_then(|w| w.get("package")).and_then(|p| p.as_table()).unwrap_or(&empty);
    let ws_deps =
        root.get("workspace").and_then(|w| w.get("dependencies")).and_then(|d| d.as_table()).unwrap_or(&empty);
    let mut manifest: toml::Table = toml::from_str(lab_manifest)?;
    for key in ["test", "bench", "dev-dependencies", "example"] {
        manifest.remove(key);
    }
    if let Some(package) = manifest.get_mut("package").and_then(|p| p.as_table_mut()) {
        for (key, value) in package.iter_mut() {
            if value.get("workspace").and_then(|w| w.as_bool()) == Some(true) {
                *value = ws_package.get(key).cloned().with_context(|| format!("workspace has no package.{key}"))?;
            }
        }
    }
    if let Some(deps) = manifest.get_mut("dependencies").and_then(|d| d.as_table_mut()) {
        for (name, dep) in deps.iter_mut() {
            let Some(table) = dep.as_table() else { continue };
            if table.get("workspace").and_then(|w| w.as_bool()) != Some(true) {
                continue;
            }
            let mut resolved = match ws_deps.get(name).with_context(|| format!("workspace has no dependency {name}"))? {
                toml::Value::String(version) => {
                    toml::Table::from_iter([("version".to_string(), toml::Value::String(version.clone()))])
                }
                toml::Value::Table(t) => t.clone(),
                other => bail!("workspace dependency {name} is {other}"),
            };
            if let Some(toml::Value::String(path)) = resolved.get("path") {
                let abs = ws.root.join(path).to_string_lossy().into_owned();
                resolved.insert("path".into(), toml::Value::String(abs));
            }
            for (key, value) in table {
                match key.as_str() {
                    "workspace" => {}
                    "features" => {
                        let mut features =
                            resolved.get("features").and_then(|f| f.as_array()).cloned().unwrap_or_default();
                        features.extend(value.as_array().cloned().unwrap_or_default());
                        resolved.insert("features".into(), toml::Value::Array(features));
                    }
                    _ => {
                        resolved.insert(key.clone(), value.clone());
                    }
                }
            }
            *dep = toml::Value::Table(resolved);
        }
    }
    Ok(toml::to_string(&manifest)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_manifests_stand_alone() {
        let ws = Workspace::current().unwrap();
        let lab = "[package]\nname = \"x\"\nedition.workspace = true\n\n[dependencies]\nkernels = { workspace = true, features = [\"ann\"] }\nwide.workspace = true\n\n[[test]]\nname = \"it\"\npath = \"tests/it/main.rs\"\n";
        let out: toml::Table = toml::from_str(&standalone_manifest(&ws, lab).unwrap()).unwrap();
        assert_eq!(out["package"]["edition"].as_str(), Some("2024"));
        assert!(out.get("test").is_none());
        let kernels = out["dependencies"]["kernels"].as_table().unwrap();
        assert!(kernels["path"].as_str().unwrap().ends_with("kernels"));
        assert_eq!(kernels["default-features"].as_bool(), Some(false));
        assert_eq!(kernels["features"].as_array().unwrap().len(), 1);
        assert!(out["dependencies"]["wide"]["version"].as_str().is_some());
    }
}
