//! `sovereign pipeline`: run a DAG of steps declared in TOML (`kernels::pipeline`).
//!
//! ```text
//! sovereign pipeline run FILE.toml [--dry-run] [--force] [--threads N] [--state DIR]
//!                                  [--mlflow URL --experiment NAME]
//! sovereign pipeline plan FILE.toml [--state DIR] [--json]     # what a run would do, and why
//! sovereign pipeline status FILE.toml [--state DIR] [--json]   # each step's record and freshness
//! ```
//!
//! A run shows a progress bar (steps settled / total, the steps running) on a terminal, prints a
//! summary line, and exits non-zero with one line naming the failed step, its attempts and the tail
//! of its stderr. Sovereign-tier command steps run under this binary's own `trace --deny-network`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::Subcommand;
use kernels::pipeline::{
    Decision, Pipeline, RunConfig, RunEvent, State, StepStatus, plan, run as run_pipeline, state_dir,
};
use kernels::tracking::TrackingConfig;
use serde_json::json;

use crate::print_json;

/// `sovereign pipeline …`
#[derive(Subcommand)]
pub enum PipelineCommand {
    /// Run the pipeline: steps whose inputs, command and config are unchanged are skipped.
    Run {
        /// The pipeline file.
        file: PathBuf,
        /// Print the plan and run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run every step, whatever is recorded.
        #[arg(long)]
        force: bool,
        /// The thread budget shared by the steps (default: the machine's).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// The state folder (default: `.sovereign-pipeline` beside the file).
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Log the run and its steps to this MLflow tracking server.
        #[arg(long, value_name = "URL")]
        mlflow: Option<String>,
        /// The MLflow experiment.
        #[arg(long, default_value = "pipelines", requires = "mlflow")]
        experiment: String,
    },
    /// Print what a run would do: each step in order, run (and why) or cached.
    Plan {
        /// The pipeline file.
        file: PathBuf,
        /// The state folder.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print each step's recorded completion and whether it is up to date.
    Status {
        /// The pipeline file.
        file: PathBuf,
        /// The state folder.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: PipelineCommand) -> Result<()> {
    match command {
        PipelineCommand::Run { file, dry_run, force, threads, state, mlflow, experiment } => {
            let pipeline = Pipeline::from_file(&file)?;
            let config = RunConfig {
                state_dir: state,
                threads,
                force,
                dry_run,
                tracking: mlflow.map(TrackingConfig::new),
                experiment,
                tracer: std::env::current_exe().ok(),
                ..RunConfig::default()
            };
            if dry_run {
                let report = run_pipeline(&pipeline, &config)?;
                print!("{}", report.plan.render(&pipeline));
                return Ok(());
            }
            execute(&pipeline, config)
        }
        PipelineCommand::Plan { file, state, json } => {
            let pipeline = Pipeline::from_file(&file)?;
            let dir = state_dir(&pipeline, &RunConfig { state_dir: state, ..RunConfig::default() });
            let the_plan = plan(&pipeline, &State::load(&dir)?, false)?;
            if json {
                print_json(&serde_json::to_value(&the_plan)?);
            } else {
                print!("{}", the_plan.render(&pipeline));
            }
            Ok(())
        }
        PipelineCommand::Status { file, state, json } => status(&file, state, json),
    }
}

fn execute(pipeline: &Pipeline, mut config: RunConfig) -> Result<()> {
    let total = pipeline.steps.len() as u64;
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps {elapsed} {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    let running: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let (bar2, running2) = (bar.clone(), running.clone());
    config.on_event = Some(Arc::new(move |event: &RunEvent| {
        let mut set = running2.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            RunEvent::Planned { total } => bar2.set_length(*total as u64),
            RunEvent::Started { step, attempt } => {
                set.insert(if *attempt > 1 { format!("{step} (attempt {attempt})") } else { step.clone() });
            }
            RunEvent::Retrying { step, attempt, delay, reason } => {
                set.retain(|s| !s.starts_with(step.as_str()));
                bar2.println(format!("step {step}: attempt {attempt} failed ({reason}); retrying in {delay:?}"));
            }
            RunEvent::Finished { step, .. } => {
                set.retain(|s| s != step && !s.starts_with(&format!("{step} (")));
                bar2.inc(1);
            }
        }
        let names: Vec<&str> = set.iter().map(String::as_str).collect();
        bar2.set_message(if names.is_empty() { String::new() } else { format!("running: {}", names.join(", ")) });
    }));
    let report = run_pipeline(pipeline, &config);
    bar.finish_and_clear();
    let report = report?;
    for e in &report.tracking_errors {
        eprintln!("sovereign pipeline: warning: MLflow: {e}");
    }
    let count = |s: StepStatus| report.with_status(s).len();
    println!(
        "pipeline {}: {} ran, {} cached, {} failed, {} not run in {:.2} s{}",
        pipeline.name,
        count(StepStatus::Ran),
        count(StepStatus::Cached),
        count(StepStatus::Failed),
        count(StepStatus::NotRun),
        report.duration_s,
        report.mlflow_run_id.as_deref().map(|id| format!(" (MLflow run {id})")).unwrap_or_default()
    );
    report.into_result().map(drop).map_err(|e| anyhow!("{e}"))
}

fn status(file: &Path, state: Option<PathBuf>, as_json: bool) -> Result<()> {
    let pipeline = Pipeline::from_file(file)?;
    let dir = state_dir(&pipeline, &RunConfig { state_dir: state, ..RunConfig::default() });
    let recorded = State::load(&dir)?;
    let the_plan = plan(&pipeline, &recorded, false)?;
    let mut rows = Vec::new();
    for s in &the_plan.steps {
        let rec = recorded.steps.get(&s.name);
        let (decision, why) = match &s.decision {
            Decision::Cached => ("cached", String::new()),
            Decision::Run { why } => ("run", why.to_string()),
        };
        rows.push(json!({
            "step": s.name,
            "decision": decision,
            "why": why,
            "key": rec.map(|r| r.key.clone()),
            "attempts": rec.map(|r| r.attempts),
            "duration_s": rec.map(|r| r.duration_s),
            "finished_unix_ms": rec.map(|r| r.finished_unix_ms),
        }));
    }
    if as_json {
        print_json(&json!({ "pipeline": pipeline.name, "state": dir, "steps": rows }));
        return Ok(());
    }
    println!("pipeline {} (state {})", pipeline.name, dir.display());
    for r in &rows {
        let done = match r["key"].as_str() {
            Some(k) => format!(
                "completed (key {}…, {} attempt(s), {:.2} s)",
                &k[..12.min(k.len())],
                r["attempts"],
                r["duration_s"].as_f64().unwrap_or(0.0)
            ),
            None => "never completed".to_owned(),
        };
        let now = if r["decision"] == "cached" {
            "up to date".to_owned()
        } else {
            format!("would run: {}", r["why"].as_str().unwrap_or(""))
        };
        println!("  {:<20} {done}; {now}", r["step"].as_str().unwrap_or(""));
    }
    Ok(())
}
