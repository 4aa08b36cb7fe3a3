//! `runs/log-batch`: many metrics, params and tags in one request, split to the server's limits.
//!
//! One request per metric point costs a round trip and a database transaction
//! each; `log-batch` carries up to a thousand in one. The server refuses
//! (`INVALID_PARAMETER_VALUE`) a request with more than 1000 metrics, 100
//! params, 100 tags, or 1000 entities in total, so a client splits larger
//! batches itself, keeping the order of each kind: a metric key's steps must
//! arrive in the order they were logged.

use serde::Serialize;
use serde::de::IgnoredAny;

use crate::client::TrackingClient;
use crate::error::Result;
use crate::types::{Metric, Param, RunTag};

// ANCHOR: limits
/// Most metrics the server takes in one `log-batch` call.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// Most params the server takes in one `log-batch` call.
pub const MAX_PARAMS_PER_BATCH: usize = 100;
/// Most tags the server takes in one `log-batch` call.
pub const MAX_TAGS_PER_BATCH: usize = 100;
/// Most metrics + params + tags the server takes in one `log-batch` call.
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
// ANCHOR_END: limits

/// Metrics, params and tags for one run: the body of `runs/log-batch` (without the `run_id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogBatch {
    /// Metric points.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Params (each key at most once per run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<RunTag>,
}

impl LogBatch {
    /// An empty batch. Given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metric point. Given.
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metrics.push(metric);
        self
    }

    /// Adds a param. Given.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push(Param::new(key, value));
        self
    }

    /// Adds a tag. Given.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push(RunTag::new(key, value));
        self
    }

    /// Number of entities (metrics + params + tags). Given.
    pub fn len(&self) -> usize {
        self.metrics.len() + self.params.len() + self.tags.len()
    }

    /// Whether there is nothing to log. Given.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // ANCHOR: chunks
    /// Task c3w1.log-batch (part of 15 points): splits the batch into
    /// requests that each respect every server limit, in as few requests as possible.
    ///
    /// Each request takes as many params and tags as it may (they have the
    /// tighter limits: up to 100 each), then fills the rest of the
    /// 1000-entity budget with up to 1000 metrics. Within each kind the order
    /// is kept, so concatenating the chunks' metrics (params, tags) gives
    /// back the original list. The number of chunks is then the lower bound
    /// `max(⌈m/1000⌉, ⌈p/100⌉, ⌈t/100⌉, ⌈(m+p+t)/1000⌉)`. An empty batch has no chunks.
    pub fn chunks(&self) -> Vec<LogBatch> {
        // ANCHOR_END: chunks
        // BEGIN SOLUTION c3w1.log-batch
        let (mut metrics, mut params, mut tags) = (&self.metrics[..], &self.params[..], &self.tags[..]);
        let mut out = Vec::new();
        while !(metrics.is_empty() && params.is_empty() && tags.is_empty()) {
            let np = params.len().min(MAX_PARAMS_PER_BATCH);
            let nt = tags.len().min(MAX_TAGS_PER_BATCH);
            let nm = metrics.len().min(MAX_METRICS_PER_BATCH).min(MAX_ENTITIES_PER_BATCH - np - nt);
            out.push(LogBatch {
                metrics: metrics[..nm].to_vec(),
                params: params[..np].to_vec(),
                tags: tags[..nt].to_vec(),
            });
            (metrics, params, tags) = (&metrics[nm..], &params[np..], &tags[nt..]);
        }
        out
        // END SOLUTION
    }
}

impl TrackingClient {
    /// Task c3w1.log-batch (part of 15 points): logs the whole batch to a run
    /// (`POST runs/log-batch` with `{"run_id", "metrics", "params", "tags"}`,
    /// answer `{}`), one request per chunk of [`LogBatch::chunks`], in order;
    /// returns how many requests were made (0 for an empty batch).
    ///
    /// On an error the earlier chunks stay logged; return the error.
    pub async fn log_batch(&self, run_id: &str, batch: &LogBatch) -> Result<usize> {
        // BEGIN SOLUTION c3w1.log-batch
        #[derive(Serialize)]
        struct Request<'a> {
            run_id: &'a str,
            #[serde(flatten)]
            batch: &'a LogBatch,
        }
        let chunks = batch.chunks();
        for chunk in &chunks {
            self.post::<_, IgnoredAny>("runs/log-batch", &Request { run_id, batch: chunk }).await?;
        }
        Ok(chunks.len())
        // END SOLUTION
    }
}
