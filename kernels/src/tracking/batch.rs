//! `runs/log-batch` payloads and their splitting to the server's per-request limits.
//!
//! MLflow's REST API (<https://mlflow.org/docs/latest/api_reference/rest-api.html#log-batch>)
//! accepts at most 1000 metrics, 100 params and 100 tags in one `log-batch`
//! call, and at most 1000 entities in total; a larger request is rejected with
//! `INVALID_PARAMETER_VALUE`. [`LogBatch::chunks`] splits any batch into the
//! fewest requests that respect all four limits.

use serde::Serialize;

use super::types::{Metric, Param, RunTag};

/// Most metrics the server takes in one `log-batch` call.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// Most params the server takes in one `log-batch` call.
pub const MAX_PARAMS_PER_BATCH: usize = 100;
/// Most tags the server takes in one `log-batch` call.
pub const MAX_TAGS_PER_BATCH: usize = 100;
/// Most metrics + params + tags the server takes in one `log-batch` call.
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;

/// Metrics, params and tags to log to one run in as few requests as the limits allow.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogBatch {
    /// Metric measurements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Params (each key at most once per run, immutable).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<RunTag>,
}

impl LogBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metric.
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metrics.push(metric);
        self
    }

    /// Adds a param.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push(Param::new(key, value));
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push(RunTag::new(key, value));
        self
    }

    /// Number of entities (metrics + params + tags).
    pub fn len(&self) -> usize {
        self.metrics.len() + self.params.len() + self.tags.len()
    }

    /// Whether there is nothing to log.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Splits the batch into requests that each respect the server's limits.
    ///
    /// Every request takes as many params and tags as it may (they have the
    /// tighter limits) and fills the remaining entity budget with metrics, so
    /// the number of requests is the lower bound
    /// `max(⌈m/1000⌉, ⌈p/100⌉, ⌈t/100⌉, ⌈(m+p+t)/1000⌉)` whenever metrics do
    /// not run out first. Order within each kind is preserved: a metric key's
    /// steps arrive in the order given. An empty batch gives no chunks.
    pub fn chunks(&self) -> Vec<LogBatch> {
        let (mut m, mut p, mut t) = (&self.metrics[..], &self.params[..], &self.tags[..]);
        let mut out = Vec::new();
        while !(m.is_empty() && p.is_empty() && t.is_empty()) {
            let np = p.len().min(MAX_PARAMS_PER_BATCH);
            let nt = t.len().min(MAX_TAGS_PER_BATCH);
            let nm = m.len().min(MAX_METRICS_PER_BATCH).min(MAX_ENTITIES_PER_BATCH - np - nt);
            out.push(LogBatch { metrics: m[..nm].to_vec(), params: p[..np].to_vec(), tags: t[..nt].to_vec() });
            (m, p, t) = (&m[nm..], &p[np..], &t[nt..]);
        }
        out
    }
}
