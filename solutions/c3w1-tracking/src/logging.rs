//! Logging to a run one entity at a time: params, metrics, tags, the run's status, and reading a metric's history.
//!
//! These are the single-entity endpoints (`runs/log-parameter`,
//! `runs/log-metric`, `runs/set-tag`, `runs/update`) and the read side of a
//! metric's time series (`metrics/get-history`). Each write answers `{}`.
//! Params are write-once: logging a param again with a **different** value is
//! refused with `INVALID_PARAMETER_VALUE`; the same value is accepted (that is
//! what makes a retried `log-parameter` harmless).

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::client::TrackingClient;
use crate::error::Result;
use crate::types::{Metric, RunInfo, RunStatus, now_millis};

impl TrackingClient {
    /// Task c3w1.logging (part of 10 points): logs the param `key = value` to a run
    /// (`POST runs/log-parameter` with `{"run_id", "key", "value"}`).
    pub async fn log_param(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        // BEGIN SOLUTION c3w1.logging
        let body = serde_json::json!({ "run_id": run_id, "key": key, "value": value });
        self.post::<_, IgnoredAny>("runs/log-parameter", &body).await.map(drop)
        // END SOLUTION
    }

    /// Task c3w1.logging (part of 10 points): logs one metric point
    /// (`POST runs/log-metric` with `{"run_id", "key", "value", "timestamp", "step"}`).
    ///
    /// The value goes out the way [`Metric`] serialises it, so NaN travels as `"NaN"`.
    pub async fn log_metric(&self, run_id: &str, metric: &Metric) -> Result<()> {
        // BEGIN SOLUTION c3w1.logging
        #[derive(serde::Serialize)]
        struct Request<'a> {
            run_id: &'a str,
            #[serde(flatten)]
            metric: &'a Metric,
        }
        self.post::<_, IgnoredAny>("runs/log-metric", &Request { run_id, metric }).await.map(drop)
        // END SOLUTION
    }

    /// Task c3w1.logging (part of 10 points): sets the tag `key = value` on a run
    /// (`POST runs/set-tag` with `{"run_id", "key", "value"}`); a second call overwrites.
    pub async fn set_tag(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        // BEGIN SOLUTION c3w1.logging
        let body = serde_json::json!({ "run_id": run_id, "key": key, "value": value });
        self.post::<_, IgnoredAny>("runs/set-tag", &body).await.map(drop)
        // END SOLUTION
    }

    /// Task c3w1.logging (part of 10 points): sets a run's status and, when
    /// given, its end time (`POST runs/update` with `{"run_id", "status"}` and
    /// `"end_time"` only when `Some`); returns the updated `run_info` of the answer
    /// `{"run_info": {…}}`.
    pub async fn update_run(&self, run_id: &str, status: RunStatus, end_time: Option<i64>) -> Result<RunInfo> {
        // BEGIN SOLUTION c3w1.logging
        #[derive(serde::Serialize)]
        struct Request<'a> {
            run_id: &'a str,
            status: RunStatus,
            #[serde(skip_serializing_if = "Option::is_none")]
            end_time: Option<i64>,
        }
        #[derive(Deserialize)]
        struct Answer {
            run_info: RunInfo,
        }
        let answer: Answer = self.post("runs/update", &Request { run_id, status, end_time }).await?;
        Ok(answer.run_info)
        // END SOLUTION
    }

    /// Ends a run now with `status` (usually `Finished` or `Failed`). Given.
    pub async fn end_run(&self, run_id: &str, status: RunStatus) -> Result<RunInfo> {
        self.update_run(run_id, status, Some(now_millis())).await
    }

    /// Task c3w1.logging (part of 10 points): every point of metric `key` of a
    /// run (`GET metrics/get-history?run_id=…&metric_key=…`, answer
    /// `{"metrics": […]}`; without `max_results` the server sends the whole
    /// history in one answer).
    ///
    /// An unknown key (or run) gives an empty history: MLflow leaves the
    /// `metrics` field out, so default it.
    pub async fn get_metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>> {
        // BEGIN SOLUTION c3w1.logging
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            metrics: Vec<Metric>,
        }
        let answer: Answer = self.get("metrics/get-history", &[("run_id", run_id), ("metric_key", key)]).await?;
        Ok(answer.metrics)
        // END SOLUTION
    }
}
