//! [`MetricLogger`]: a buffered, non-blocking metric logger for training loops.
//!
//! A training step must not wait for the network, and an MLflow server that
//! restarts must not cost any metric. The logger hands each measurement to a
//! background task over a channel; the task sends them with `runs/log-batch`
//! (<https://mlflow.org/docs/latest/api_reference/rest-api.html#log-batch>)
//! when `max_batch` are buffered or `flush_interval` has passed, and removes a
//! measurement from its buffer only once the server has acknowledged it.
//! While the server is unreachable, metrics accumulate and sending is retried
//! with the client's backoff; re-sending is safe because MLflow drops exact
//! duplicate metrics. [`MetricLogger::close`] (or dropping the logger) sends
//! whatever is left, retrying for up to `close_timeout`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::batch::{LogBatch, MAX_METRICS_PER_BATCH};
use super::client::TrackingClient;
use super::retry::RetryPolicy;
use super::types::Metric;
use crate::{Error, Result};

/// When a [`MetricLogger`] sends and how long it keeps trying.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricLoggerConfig {
    /// Send as soon as this many metrics are buffered (at most 1000, the `log-batch` limit).
    pub max_batch: usize,
    /// Send whatever is buffered at least this often.
    pub flush_interval: Duration,
    /// How long [`MetricLogger::flush`], [`MetricLogger::close`] and drop keep retrying a
    /// failing server before giving up on what is still buffered.
    pub close_timeout: Duration,
}

impl Default for MetricLoggerConfig {
    /// 1000 metrics or 1 s, whichever comes first; 60 s to deliver the rest on close.
    fn default() -> Self {
        Self {
            max_batch: MAX_METRICS_PER_BATCH,
            flush_interval: Duration::from_secs(1),
            close_timeout: Duration::from_secs(60),
        }
    }
}

/// What a [`MetricLogger`] did, returned by [`MetricLogger::close`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoggerStats {
    /// Metrics handed to [`MetricLogger::log`].
    pub logged: u64,
    /// Metrics the server acknowledged.
    pub delivered: u64,
    /// Successful `log-batch` requests.
    pub requests: u64,
    /// Sends that failed transiently and were retried later.
    pub failed_sends: u64,
    /// Metrics the server refused with a non-retryable error (dropped).
    pub rejected: u64,
    /// Metrics still buffered when the close deadline passed.
    pub undelivered: u64,
}

enum Cmd {
    Metric(Metric),
    Flush(oneshot::Sender<Result<()>>),
}

/// A buffered metric logger for one run; see the [module docs](self).
///
/// Must be created inside a tokio runtime, which must outlive the logger's
/// last flush: call [`close`](Self::close) to be sure every metric is on the
/// server (dropping the logger also sends the rest, in the background).
#[derive(Debug)]
pub struct MetricLogger {
    tx: Option<mpsc::UnboundedSender<Cmd>>,
    task: Option<JoinHandle<(LoggerStats, Option<Error>)>>,
    run_id: String,
}

impl MetricLogger {
    /// Starts a logger for `run_id` (spawns its background task on the current runtime).
    pub fn new(client: TrackingClient, run_id: impl Into<String>, config: MetricLoggerConfig) -> Self {
        let run_id = run_id.into();
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = Worker {
            retry: client.config().retry.clone(),
            client,
            run_id: run_id.clone(),
            max_batch: config.max_batch.clamp(1, MAX_METRICS_PER_BATCH),
            config,
            buf: VecDeque::new(),
            stats: LoggerStats::default(),
            failures: 0,
            error: None,
        };
        let task = tokio::spawn(worker.run(rx));
        Self { tx: Some(tx), task: Some(task), run_id }
    }

    /// The run this logger writes to.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Queues `value` of metric `key` at `step`, timestamped now. Never waits.
    pub fn log(&self, key: impl Into<String>, value: f64, step: i64) -> Result<()> {
        self.log_metric(Metric::new(key, value, step))
    }

    /// Queues a measurement. Never waits; fails only if the background task has died.
    pub fn log_metric(&self, metric: Metric) -> Result<()> {
        self.send(Cmd::Metric(metric))
    }

    fn send(&self, cmd: Cmd) -> Result<()> {
        self.tx.as_ref().and_then(|tx| tx.send(cmd).ok()).ok_or_else(|| Error::TrackingResponse {
            endpoint: "metric logger".into(),
            message: "the background task has stopped".into(),
        })
    }

    /// Waits until everything logged so far is on the server.
    ///
    /// If the server keeps failing for `close_timeout`, returns the last error;
    /// the metrics stay buffered and are retried later.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Flush(tx))?;
        rx.await.map_err(|_| Error::TrackingResponse {
            endpoint: "metric logger".into(),
            message: "the background task stopped during a flush".into(),
        })?
    }

    /// Sends everything still buffered and stops the logger.
    ///
    /// Fails with [`Error::MetricsNotDelivered`] if any metric was rejected by
    /// the server or could not be delivered within `close_timeout`.
    pub async fn close(mut self) -> Result<LoggerStats> {
        drop(self.tx.take());
        let task = self.task.take().expect("task present until close");
        let (stats, error) = task.await.map_err(|e| Error::TrackingResponse {
            endpoint: "metric logger".into(),
            message: format!("background task failed: {e}"),
        })?;
        match error {
            // Rejections before the close were only reported to a flush, if any: report again.
            Some(Error::MetricsNotDelivered { last, .. }) => {
                Err(Error::MetricsNotDelivered { undelivered: stats.undelivered, rejected: stats.rejected, last })
            }
            Some(last) if stats.rejected > 0 || stats.undelivered > 0 => Err(Error::MetricsNotDelivered {
                undelivered: stats.undelivered,
                rejected: stats.rejected,
                last: Box::new(last),
            }),
            _ => Ok(stats),
        }
    }
}

impl Drop for MetricLogger {
    /// Closes the channel: the background task sends what is left (retrying up
    /// to `close_timeout`) and ends, as long as the runtime keeps running.
    fn drop(&mut self) {
        drop(self.tx.take());
    }
}

struct Worker {
    client: TrackingClient,
    run_id: String,
    config: MetricLoggerConfig,
    retry: RetryPolicy,
    max_batch: usize,
    buf: VecDeque<Metric>,
    stats: LoggerStats,
    /// Consecutive transient failures (drives the backoff).
    failures: u32,
    /// The most recent error not yet reported.
    error: Option<Error>,
}

enum Event {
    Cmd(Option<Cmd>),
    Tick,
}

/// Whether `e` may go away by itself (server down, overloaded or restarting).
fn is_transient(e: &Error) -> bool {
    match e {
        Error::TrackingTransport { .. } => true,
        Error::Mlflow { status, .. } => RetryPolicy::is_retryable_status(*status),
        _ => false,
    }
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) -> (LoggerStats, Option<Error>) {
        let mut next_send = Instant::now() + self.config.flush_interval;
        loop {
            let event = tokio::select! {
                cmd = rx.recv() => Event::Cmd(cmd),
                () = tokio::time::sleep_until(next_send) => Event::Tick,
            };
            match event {
                Event::Cmd(Some(Cmd::Metric(m))) => {
                    self.stats.logged += 1;
                    self.buf.push_back(m);
                    // While the server fails, wait for the backoff instead of trying per metric.
                    if self.buf.len() >= self.max_batch && self.failures == 0 {
                        while self.buf.len() >= self.max_batch && self.send_one().await {}
                        next_send = self.next_send();
                    }
                }
                Event::Cmd(Some(Cmd::Flush(reply))) => {
                    let result = self.drain().await;
                    next_send = self.next_send();
                    // The caller may have stopped waiting; nothing to do then.
                    let _ = reply.send(result);
                }
                Event::Cmd(None) => {
                    let result = self.drain().await;
                    self.stats.undelivered = self.buf.len() as u64;
                    let error = result.err().or(self.error.take());
                    return (self.stats, error);
                }
                Event::Tick => {
                    while !self.buf.is_empty() && self.send_one().await {}
                    next_send = self.next_send();
                }
            }
        }
    }

    fn next_send(&self) -> Instant {
        if self.failures == 0 {
            Instant::now() + self.config.flush_interval
        } else {
            Instant::now() + self.retry.delay(self.failures)
        }
    }

    /// Sends the oldest buffered metrics (up to one batch). Returns whether to keep sending.
    async fn send_one(&mut self) -> bool {
        let n = self.buf.len().min(self.max_batch);
        let batch = LogBatch { metrics: self.buf.range(..n).cloned().collect(), ..LogBatch::default() };
        match self.client.log_batch(&self.run_id, &batch).await {
            Ok(_) => {
                self.buf.drain(..n);
                self.stats.delivered += n as u64;
                self.stats.requests += 1;
                self.failures = 0;
                true
            }
            Err(e) if is_transient(&e) => {
                self.stats.failed_sends += 1;
                self.failures = self.failures.saturating_add(1);
                self.error = Some(e);
                false
            }
            Err(e) => {
                // The server will never take these (e.g. the run is gone): drop and report.
                self.buf.drain(..n);
                self.stats.rejected += n as u64;
                self.error = Some(e);
                true
            }
        }
    }

    /// Sends everything buffered, retrying transient failures until `close_timeout`.
    ///
    /// Fails with [`Error::MetricsNotDelivered`] if metrics were rejected or are
    /// still buffered at the deadline (they stay buffered for a later attempt).
    async fn drain(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.config.close_timeout;
        let rejected_before = self.stats.rejected;
        while !self.buf.is_empty() {
            if self.send_one().await {
                continue;
            }
            let wait = self.retry.delay(self.failures);
            if Instant::now() + wait > deadline {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        let rejected = self.stats.rejected - rejected_before;
        if self.buf.is_empty() && rejected == 0 {
            return Ok(());
        }
        let last = self.error.take().unwrap_or_else(|| Error::TrackingResponse {
            endpoint: "metric logger".into(),
            message: "no error recorded".into(),
        });
        Err(Error::MetricsNotDelivered { undelivered: self.buf.len() as u64, rejected, last: Box::new(last) })
    }
}
