//! MLflow logging of a pipeline run through `kernels::tracking`: one parent run per pipeline run, one
//! nested run (tag `mlflow.parentRunId`) per step, runs a killed runner left open ended as KILLED.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::spec::{Action, Pipeline, Step};
use super::state::write_atomic;
use crate::tracking::{CreateRun, LogBatch, Metric, RunInfo, RunStatus, TrackingClient, TrackingConfig, now_millis};
use crate::{Error, Result};

/// Tag naming the pipeline on every run.
pub const TAG_PIPELINE: &str = "sovereign.pipeline";
/// Tag naming the step on a nested run.
pub const TAG_STEP: &str = "sovereign.pipeline.step";
/// Tag on a step's run that did not execute: `cached` or `upstream_failed`.
pub const TAG_SKIPPED: &str = "sovereign.pipeline.skipped";
/// MLflow's tag that nests a run under its parent in the UI.
pub const TAG_PARENT: &str = "mlflow.parentRunId";

/// Runs a runner opened and has not ended yet (`state_dir/mlflow-open.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct OpenRuns {
    base_url: String,
    runs: Vec<String>,
}

/// The MLflow side of one pipeline run.
pub(crate) struct Tracker {
    rt: tokio::runtime::Runtime,
    client: TrackingClient,
    experiment_id: String,
    parent: RunInfo,
    open: OpenRuns,
    open_file: PathBuf,
    /// Failures after the start (logged, never fatal).
    pub errors: Vec<String>,
}

/// Whether an http(s) URL's host is loopback (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else { return false };
    let Some(host) = u.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// `argv` shown as one parameter (MLflow caps a parameter at 6000 characters).
pub(crate) fn describe(step: &Step) -> String {
    let text = match &step.action {
        Action::Command(argv) => serde_json::to_string(argv).unwrap_or_default(),
        Action::Function(f) => format!("fn {f}"),
    };
    text.chars().take(6000).collect()
}

impl Tracker {
    /// Ends the runs a killed runner left open (KILLED), then opens the parent run.
    pub(crate) fn start(
        config: &TrackingConfig,
        experiment: &str,
        pipeline: &Pipeline,
        state_dir: &Path,
        threads: usize,
    ) -> Result<Tracker> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::PipelineIo { step: "(tracking)".into(), path: state_dir.to_path_buf(), source })?;
        let client = TrackingClient::new(config.clone())?;
        let open_file = state_dir.join("mlflow-open.json");
        let mut errors = Vec::new();
        if let Ok(bytes) = std::fs::read(&open_file)
            && let Ok(stale) = serde_json::from_slice::<OpenRuns>(&bytes)
            && stale.base_url == config.base_url
        {
            for id in &stale.runs {
                if let Err(e) = rt.block_on(client.end_run(id, RunStatus::Killed)) {
                    errors.push(format!("ending run {id} left open by a killed run: {e}"));
                }
            }
        }
        let experiment_id = rt.block_on(client.get_or_create_experiment(experiment))?;
        let create = CreateRun::new(&experiment_id)
            .name(format!("{}-{}", pipeline.name, now_millis()))
            .tag(TAG_PIPELINE, &pipeline.name)
            .tag("mlflow.source.name", &pipeline.source);
        let parent = rt.block_on(client.create_run(&create))?.info;
        let batch = LogBatch::new()
            .param("pipeline", &pipeline.name)
            .param("tier", pipeline.tier.as_str())
            .param("steps", pipeline.steps.len().to_string())
            .param("threads", threads.to_string())
            .param("file", &pipeline.source);
        rt.block_on(client.log_batch(&parent.run_id, &batch))?;
        let mut tracker = Tracker {
            rt,
            client,
            experiment_id,
            open: OpenRuns { base_url: config.base_url.clone(), runs: Vec::new() },
            open_file,
            parent,
            errors,
        };
        let id = tracker.parent.run_id.clone();
        tracker.opened(id);
        Ok(tracker)
    }

    /// The parent run's id.
    pub(crate) fn parent_id(&self) -> &str {
        &self.parent.run_id
    }

    fn opened(&mut self, id: String) {
        self.open.runs.push(id);
        self.save_open();
    }

    fn closed(&mut self, id: &str) {
        self.open.runs.retain(|r| r != id);
        self.save_open();
    }

    fn save_open(&mut self) {
        let bytes = serde_json::to_vec(&self.open).unwrap_or_default();
        if let Err(e) = write_atomic(&self.open_file, &bytes, "(tracking)") {
            self.errors.push(e.to_string());
        }
    }

    fn step_run(&mut self, step: &Step, key: Option<&str>, skipped: Option<&str>) -> Option<RunInfo> {
        let mut create = CreateRun::new(&self.experiment_id)
            .name(step.name.clone())
            .tag(TAG_PARENT, &self.parent.run_id)
            .tag(TAG_PIPELINE, self.parent.run_name.clone())
            .tag(TAG_STEP, &step.name);
        if let Some(s) = skipped {
            create = create.tag(TAG_SKIPPED, s);
        }
        let run = match self.rt.block_on(self.client.create_run(&create)) {
            Ok(r) => r.info,
            Err(e) => {
                self.errors.push(format!("step {}: creating its run: {e}", step.name));
                return None;
            }
        };
        let batch = LogBatch::new()
            .param("command", describe(step))
            .param("cache_key", key.unwrap_or(""))
            .param("tier", step.tier.as_str())
            .param("threads", step.threads.to_string())
            .param("retries", step.retries.to_string())
            .param("timeout_s", step.timeout.map(|t| t.as_secs_f64().to_string()).unwrap_or_else(|| "none".into()));
        if let Err(e) = self.rt.block_on(self.client.log_batch(&run.run_id, &batch)) {
            self.errors.push(format!("step {}: logging params: {e}", step.name));
        }
        Some(run)
    }

    /// Opens the nested run of a step about to execute.
    pub(crate) fn step_started(&mut self, step: &Step, key: &str) -> Option<RunInfo> {
        let run = self.step_run(step, Some(key), None)?;
        self.opened(run.run_id.clone());
        Some(run)
    }

    /// Logs a step that did not execute (`cached`, or `upstream_failed` ended as KILLED).
    pub(crate) fn step_skipped(&mut self, step: &Step, key: Option<&str>, why: &str) -> Option<String> {
        let run = self.step_run(step, key, Some(why))?;
        let status = if why == "cached" { RunStatus::Finished } else { RunStatus::Killed };
        if let Err(e) = self.rt.block_on(self.client.end_run(&run.run_id, status)) {
            self.errors.push(format!("step {}: ending its run: {e}", step.name));
        }
        Some(run.run_id)
    }

    /// Metrics, the stdout/stderr logs as artefacts, and the final status of an executed step.
    pub(crate) fn step_finished(
        &mut self,
        step: &Step,
        run: &RunInfo,
        ok: bool,
        attempts: u32,
        duration_s: f64,
        logs: &[PathBuf],
    ) {
        let batch = LogBatch::new().metric(Metric::new("duration_s", duration_s, 0)).metric(Metric::new(
            "attempts",
            f64::from(attempts),
            0,
        ));
        if let Err(e) = self.rt.block_on(self.client.log_batch(&run.run_id, &batch)) {
            self.errors.push(format!("step {}: logging metrics: {e}", step.name));
        }
        for log in logs {
            if log.is_file()
                && let Err(e) = self.rt.block_on(self.client.upload_artifact(run, log, Some("logs")))
            {
                self.errors.push(format!("step {}: uploading {}: {e}", step.name, log.display()));
            }
        }
        let status = if ok { RunStatus::Finished } else { RunStatus::Failed };
        if let Err(e) = self.rt.block_on(self.client.end_run(&run.run_id, status)) {
            self.errors.push(format!("step {}: ending its run: {e}", step.name));
        }
        self.closed(&run.run_id);
    }

    /// Totals on the parent run and its final status; removes the open-runs file.
    pub(crate) fn finish(mut self, ok: bool, counts: [(&str, f64); 4]) -> Vec<String> {
        let mut batch = LogBatch::new();
        for (k, v) in counts {
            batch = batch.metric(Metric::new(k, v, 0));
        }
        let id = self.parent.run_id.clone();
        if let Err(e) = self.rt.block_on(self.client.log_batch(&id, &batch)) {
            self.errors.push(format!("parent run: logging metrics: {e}"));
        }
        let status = if ok { RunStatus::Finished } else { RunStatus::Failed };
        if let Err(e) = self.rt.block_on(self.client.end_run(&id, status)) {
            self.errors.push(format!("parent run: ending it: {e}"));
        }
        self.closed(&id);
        if self.open.runs.is_empty() {
            let _ = std::fs::remove_file(&self.open_file);
        }
        self.errors
    }
}
