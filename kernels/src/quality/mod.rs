//! Quality gates over a Rust crate (pmat's role): coverage from `cargo llvm-cov`, clippy findings,
//! complexity per function, duplication, undocumented public items, `unsafe` without a
//! `// SAFETY:` comment and `todo!()` counts, turned into an A–F grade by a documented formula.
//!
//! - [`complexity`]: cyclomatic (McCabe 1976) and cognitive (Campbell, SonarSource) complexity per
//!   function, with `syn`.
//! - [`duplication`]: token-shingle clones (proc-macro2 tokens, normalised, BLAKE3-hashed).
//! - [`hygiene`]: public items without docs, `unsafe` without `// SAFETY:`, `todo!()`.
//! - [`coverage`]: `cargo llvm-cov --json --summary-only`; [`clippy`]: `cargo clippy
//!   --message-format=json`.
//! - [`grade`]: `quality.toml` and the scoring formula (pmat's TDG in spirit); [`report`]: JSON
//!   and Markdown; [`trend`]: the static metrics over the last commits, as an SVG chart.
//!
//! The static metrics read the `.rs` files under the crate's `src/` (the code it ships; tests,
//! examples and fixtures are left out). A file that does not parse is reported (file, line,
//! column) and skipped by the `syn` measures; the others are still measured.

pub mod clippy;
pub mod complexity;
pub mod coverage;
pub mod duplication;
pub mod grade;
pub mod hygiene;
pub mod report;
pub mod trend;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use grade::{Config, Grade, Score};

use crate::{Error, Result};

/// What to run besides the static metrics.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Run `cargo llvm-cov` (the crate's tests).
    pub coverage: bool,
    /// Run `cargo clippy`.
    pub clippy: bool,
    /// Extra cargo arguments for both, e.g. `--all-features`.
    pub cargo_args: Vec<String>,
    /// `CARGO_TARGET_DIR` for both (`None`: inherit the environment's).
    pub target_dir: Option<PathBuf>,
}

/// One function's complexity and where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionEntry {
    pub file: String,
    pub name: String,
    pub line: usize,
    pub cyclomatic: u32,
    pub cognitive: u32,
}

/// Complexity over the crate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComplexitySummary {
    pub functions: usize,
    pub mean_cyclomatic: f64,
    pub mean_cognitive: f64,
    /// Functions over a limit of the configuration, worst (cognitive) first.
    pub over_limit: Vec<FunctionEntry>,
    /// The ten functions of highest cognitive complexity.
    pub worst: Vec<FunctionEntry>,
}

/// The measurements that need no tool but the parser (also what the trend computes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StaticMetrics {
    /// `.rs` files read.
    pub files: usize,
    /// Files that do not parse: `file:line:column: message`.
    pub parse_errors: Vec<String>,
    pub complexity: ComplexitySummary,
    pub duplication: duplication::Duplication,
    pub hygiene: hygiene::Hygiene,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub crate_name: String,
    pub path: String,
    #[serde(flatten)]
    pub metrics: StaticMetrics,
    /// `None` under `--no-coverage`.
    pub coverage: Option<coverage::Coverage>,
    /// `None` when clippy was not run.
    pub clippy: Option<clippy::Clippy>,
    pub score: Score,
}

/// `program subcommand… --manifest-path DIR/Cargo.toml cargo_args…` run in `dir`, with the
/// options' target folder. CI's own test build runs clippy's driver as the workspace's rustc
/// (`RUSTC_WORKSPACE_WRAPPER`, `CLIPPY_ARGS`); the measured crate is another workspace and is
/// built as it would be on its own, so both are dropped.
fn cargo_tool(program: &std::ffi::OsStr, subcommand: &[&str], dir: &Path, options: &Options) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.args(subcommand)
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .args(&options.cargo_args)
        .current_dir(dir)
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS");
    if let Some(target) = &options.target_dir {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    cmd
}

/// The package name of the crate at `dir`, or [`Error::QualityNotACrate`].
pub fn crate_name(dir: &Path) -> Result<String> {
    let not = |reason: String| Error::QualityNotACrate { path: dir.to_path_buf(), reason };
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| not(format!("cannot read Cargo.toml: {e}")))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| not(format!("Cargo.toml does not parse: {}", e.message())))?;
    let name = table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| not("Cargo.toml has no [package] name (a virtual workspace manifest?)".to_string()))?;
    if !dir.join("src").is_dir() {
        return Err(not("it has no src/ folder".to_string()));
    }
    Ok(name.to_string())
}

/// The `.rs` files under `dir/src`, sorted.
pub fn source_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("src")];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| Error::QualityIo { path: d.clone(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::QualityIo { path: d.clone(), source })?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The static metrics of the crate at `dir` (complexity, duplication, docs, unsafe, todo).
pub fn static_metrics(dir: &Path, config: &Config) -> Result<StaticMetrics> {
    crate_name(dir)?;
    let mut m = StaticMetrics::default();
    let mut functions = Vec::new();
    let mut tokens = Vec::new();
    for path in source_files(dir)? {
        let name = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
        let source =
            std::fs::read_to_string(&path).map_err(|source| Error::QualityIo { path: path.clone(), source })?;
        m.files += 1;
        if let Some(toks) = duplication::normalised_tokens(&source) {
            tokens.push((name.clone(), toks));
        }
        match complexity::parse_file(&name, &source) {
            Ok(file) => {
                functions.extend(complexity::complexity_of_file(&file).into_iter().map(|f| FunctionEntry {
                    file: name.clone(),
                    name: f.name,
                    line: f.line,
                    cyclomatic: f.cyclomatic,
                    cognitive: f.cognitive,
                }));
                m.hygiene.extend(hygiene::hygiene_of_file(&name, &source, &file));
            }
            Err(e) => m.parse_errors.push(e.to_string()),
        }
    }
    m.complexity = summarise(functions, config);
    m.duplication = duplication::find_clones(&tokens, config.duplication.shingle);
    Ok(m)
}

fn summarise(mut functions: Vec<FunctionEntry>, config: &Config) -> ComplexitySummary {
    let n = functions.len();
    let mean = |f: &dyn Fn(&FunctionEntry) -> u32| {
        if n == 0 { 0.0 } else { functions.iter().map(|e| f(e) as f64).sum::<f64>() / n as f64 }
    };
    let mean_cyclomatic = mean(&|e| e.cyclomatic);
    let mean_cognitive = mean(&|e| e.cognitive);
    functions.sort_by(|a, b| b.cognitive.cmp(&a.cognitive).then(b.cyclomatic.cmp(&a.cyclomatic)));
    let limits = &config.complexity;
    let over_limit: Vec<FunctionEntry> = functions
        .iter()
        .filter(|f| f.cyclomatic > limits.max_cyclomatic || f.cognitive > limits.max_cognitive)
        .cloned()
        .collect();
    functions.truncate(10);
    ComplexitySummary { functions: n, mean_cyclomatic, mean_cognitive, over_limit, worst: functions }
}

/// The formula's inputs from the measurements.
pub fn measurements(
    m: &StaticMetrics,
    coverage: Option<&coverage::Coverage>,
    clippy: Option<&clippy::Clippy>,
) -> grade::Measurements {
    grade::Measurements {
        line_coverage_percent: coverage.map(|c| c.lines.percent),
        clippy: clippy.map(|c| (c.warnings, c.errors)),
        complexity: (m.complexity.functions, m.complexity.over_limit.len()),
        duplicated_line_percent: m.duplication.percent,
        docs: (m.hygiene.public_items, m.hygiene.public_items - m.hygiene.undocumented.len()),
        unsafe_without_safety: m.hygiene.unsafe_without_safety.len(),
        todos: m.hygiene.todos.len(),
    }
}

/// Measures and grades the crate at `dir`.
pub fn analyze(dir: &Path, config: &Config, options: &Options) -> Result<Report> {
    let crate_name = crate_name(dir)?;
    // Absolute, so cargo's `--manifest-path` holds whatever folder the tools run in.
    let dir = &dir.canonicalize().map_err(|source| Error::QualityIo { path: dir.to_path_buf(), source })?;
    let metrics = static_metrics(dir, config)?;
    let coverage = if options.coverage { Some(coverage::measure(dir, options)?) } else { None };
    let clippy = if options.clippy { Some(clippy::measure(dir, options)?) } else { None };
    let score = grade::score(config, &measurements(&metrics, coverage.as_ref(), clippy.as_ref()));
    Ok(Report { crate_name, path: dir.display().to_string(), metrics, coverage, clippy, score })
}
