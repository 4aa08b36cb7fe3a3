//! `sovereign quality`: grade a Rust crate and fail under a grade (`kernels::quality`).
//!
//! ```text
//! sovereign quality --path labs/c3w5-quality                  # Markdown report on stdout
//! sovereign quality --path kernels --no-coverage --fail-under B --cargo-arg=--all-features
//! sovereign quality --path CRATE --json > report.json          # the JSON report
//! sovereign quality --path CRATE --markdown report.md          # Markdown to a file, a summary line on stdout
//! sovereign quality --path CRATE --trend 20 --svg trend.svg    # static grade of the last 20 commits
//! sovereign quality --config quality.toml                      # thresholds (kernels/src/quality/default.toml)
//! ```
//!
//! Exit status: 0, or 1 with a message when the grade is below `--fail-under` (or on an error:
//! not a crate, cargo-llvm-cov missing, a config with an unknown key).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use kernels::quality::{self, Config, Grade, Options, report, trend};

/// Arguments of `sovereign quality`.
#[derive(Args)]
pub struct QualityArgs {
    /// The crate to grade (the folder holding its Cargo.toml).
    #[arg(long, default_value = ".")]
    path: PathBuf,
    /// Thresholds and weights (keys not given keep the defaults of kernels/src/quality/default.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Exit non-zero when the grade is worse than this (A, B, C, D or F).
    #[arg(long, value_parser = parse_grade)]
    fail_under: Option<Grade>,
    /// Skip coverage (no `cargo llvm-cov`; its weight is left out of the score).
    #[arg(long)]
    no_coverage: bool,
    /// Skip clippy (its weight is left out of the score).
    #[arg(long)]
    no_clippy: bool,
    /// An extra argument for cargo clippy and cargo llvm-cov (repeatable), e.g. `--cargo-arg=--all-features`.
    #[arg(long = "cargo-arg", allow_hyphen_values = true)]
    cargo_args: Vec<String>,
    /// Print the JSON report instead of Markdown.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Write the Markdown report to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Grade the static metrics of the last N commits (git worktrees) instead.
    #[arg(long, requires = "svg")]
    trend: Option<usize>,
    /// Where to write the trend chart.
    #[arg(long, requires = "trend")]
    svg: Option<PathBuf>,
}

fn parse_grade(s: &str) -> std::result::Result<Grade, String> {
    Grade::parse(s).ok_or_else(|| format!("{s:?} is not a grade (A, B, C, D or F)"))
}

/// Runs `sovereign quality`.
pub fn run(args: QualityArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let (Some(n), Some(svg)) = (args.trend, &args.svg) {
        let name = quality::crate_name(&args.path)?;
        let points = trend::trend(&args.path, &config, n)?;
        if points.is_empty() {
            bail!("no commit of the last {n} holds the crate at {}", args.path.display());
        }
        let chart = trend::svg(&points, &format!("Quality of {name} over the last {} commits", points.len()), &config);
        std::fs::write(svg, chart).with_context(|| format!("writing {}", svg.display()))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&points)?);
        } else {
            println!(
                "| commit | date | score | grade | functions | over limit | duplicated % | undocumented | unsafe w/o SAFETY | todo |"
            );
            println!("|---|---|---:|---|---:|---:|---:|---:|---:|---:|");
            for p in &points {
                println!(
                    "| {} | {} | {:.1} | {} | {} | {} | {:.2} | {} | {} | {} |",
                    p.commit,
                    p.date,
                    p.score,
                    p.grade,
                    p.functions,
                    p.over_limit,
                    p.duplicated_percent,
                    p.undocumented,
                    p.unsafe_without_safety,
                    p.todos
                );
            }
            println!("\nchart: {}", svg.display());
        }
        return Ok(());
    }
    let options = Options {
        coverage: !args.no_coverage,
        clippy: !args.no_clippy,
        cargo_args: args.cargo_args.clone(),
        target_dir: None,
    };
    let report = quality::analyze(&args.path, &config, &options)?;
    for e in &report.metrics.parse_errors {
        eprintln!("warning: {e}");
    }
    if args.json {
        println!("{}", report::to_json(&report)?);
    } else if let Some(path) = &args.markdown {
        std::fs::write(path, report::to_markdown(&report)).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "{}: grade {} ({:.1}/100); report in {}",
            report.crate_name,
            report.score.grade,
            report.score.score,
            path.display()
        );
    } else {
        print!("{}", report::to_markdown(&report));
    }
    if let Some(bar) = args.fail_under
        && !report.score.grade.meets(bar)
    {
        bail!(
            "{}: grade {} ({:.1}/100) is below --fail-under {bar}",
            report.crate_name,
            report.score.grade,
            report.score.score
        );
    }
    Ok(())
}
