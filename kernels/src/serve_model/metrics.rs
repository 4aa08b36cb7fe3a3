//! The tabular server's metrics: one [`prom::Registry`] with the contract families of
//! [`crate::observe`] (requests, durations, queue depth `queue="batcher"`, requests shed with
//! `reason="queue_full"`, build info `component="serve-model"`) and its own `sovereign_model_*`
//! families (model info, per-version latency, batch sizes, rows scored, reloads), served in
//! Prometheus' text format (<https://prometheus.io/docs/instrumenting/exposition_formats/>).
//! Updates on the request path are atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use crate::observe::{self, prom};

/// A histogram of the registry (`observe`, `count`, `sum`, `cumulative`).
pub type Histogram = prom::Histogram;

/// Latency bounds in seconds: 50 µs to 5 s.
pub const LATENCY_BOUNDS: [f64; 16] =
    [50e-6, 100e-6, 200e-6, 350e-6, 500e-6, 750e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1.0, 5.0];
/// Batch-size bounds in rows.
pub const BATCH_BOUNDS: [f64; 12] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0, 16384.0];

/// The route label of predictions.
pub const PREDICT_ROUTE: &str = "/v1/models/:predict";

/// Everything `/metrics` shows.
#[derive(Debug)]
pub struct ServerMetrics {
    /// The registry `/metrics` encodes.
    pub registry: prom::Registry,
    /// `sovereign_http_requests_total{route, model, code}`.
    pub http_requests: prom::CounterVec,
    /// `sovereign_http_request_duration_seconds{route, model}`.
    pub http_duration: prom::HistogramVec,
    /// `sovereign_requests_shed_total{reason, priority}`.
    pub shed: prom::CounterVec,
    /// `sovereign_http_requests_in_flight`.
    pub in_flight: prom::Gauge,
    /// `sovereign_model_request_duration_seconds{model, version}`.
    latency_by_version: prom::HistogramVec,
    /// `sovereign_model_info{model, version, kind, digest}`.
    info: prom::GaugeVec,
    queue_gauge: prom::Gauge,
    rows_counter: prom::Counter,
    reloads_counter: prom::Counter,
    reload_failures_counter: prom::Counter,
    shed_queue_full: prom::Counter,
    /// The model's name (the `model` label).
    model: RwLock<String>,
    /// The info series shown last (replaced when the version changes).
    shown: Mutex<Vec<String>>,
    /// Rows per scored batch (after micro-batching), `sovereign_model_batch_rows`.
    pub batch_rows: Histogram,
    /// Requests per scored batch, `sovereign_model_batch_requests`.
    pub batch_requests: Histogram,
    /// Rows scored.
    pub rows_scored: AtomicU64,
    /// Predict requests refused with 503 because the queue was full.
    pub rejected: AtomicU64,
    /// Successful reloads that changed the model.
    pub reloads: AtomicU64,
    /// Reloads that failed (the old model kept serving).
    pub reload_failures: AtomicU64,
    /// Requests waiting in the batcher's queue.
    pub queue_depth: AtomicU64,
}

/// Both latency histograms of one prediction: by version, and the contract's by route and model.
#[derive(Debug, Clone)]
pub struct Latency {
    by_version: Histogram,
    http: Histogram,
}

impl Latency {
    /// Records one prediction's latency in seconds.
    pub fn observe(&self, seconds: f64) {
        self.by_version.observe(seconds);
        self.http.observe(seconds);
    }

    /// Predictions of this version so far.
    pub fn count(&self) -> u64 {
        self.by_version.count()
    }
}

impl Default for ServerMetrics {
    fn default() -> Self {
        let r = prom::Registry::new();
        r.build_info("serve-model");
        let info = r.gauge(
            "sovereign_model_info",
            "The model served (1), with its version and digest.",
            &["model", "version", "kind", "digest"],
        );
        let observe::HttpFamilies { requests: http_requests, duration: http_duration, in_flight } =
            observe::HttpFamilies::register(&r, "Predict requests: arrival to answer, by route and model.");
        let queue_gauge =
            r.gauge(observe::QUEUE_DEPTH, "Work admitted but not started, by queue.", &["queue"]).with(&["batcher"]);
        let shed = r.counter(
            observe::SHED,
            "Requests refused by overload control, by reason and priority.",
            &["reason", "priority"],
        );
        let shed_queue_full = shed.with(&["queue_full", ""]);
        let latency_by_version = r.histogram(
            "sovereign_model_request_duration_seconds",
            "Predict requests: arrival to answer, by the model version that scored them.",
            &["model", "version"],
            &LATENCY_BOUNDS,
        );
        let batch_rows = r
            .histogram(
                "sovereign_model_batch_rows",
                "Rows per scored batch (after micro-batching).",
                &[],
                &BATCH_BOUNDS,
            )
            .with(&[]);
        let batch_requests = r
            .histogram("sovereign_model_batch_requests", "Requests merged into one scored batch.", &[], &BATCH_BOUNDS)
            .with(&[]);
        let rows_counter = r.counter("sovereign_model_rows_scored_total", "Rows scored.", &[]).with(&[]);
        let reloads_counter =
            r.counter("sovereign_model_reloads_total", "Reloads that changed the model served.", &[]).with(&[]);
        let reload_failures_counter = r
            .counter("sovereign_model_reload_failures_total", "Reloads refused (the old model kept serving).", &[])
            .with(&[]);
        ServerMetrics {
            registry: r,
            http_requests,
            http_duration,
            shed,
            in_flight,
            latency_by_version,
            info,
            queue_gauge,
            rows_counter,
            reloads_counter,
            reload_failures_counter,
            shed_queue_full,
            model: RwLock::new(String::new()),
            shown: Mutex::new(Vec::new()),
            batch_rows,
            batch_requests,
            rows_scored: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
        }
    }
}

/// Raises `counter` to `total`.
fn catch_up(counter: &prom::Counter, total: u64) {
    let d = total as f64 - counter.get();
    if d > 0.0 {
        counter.inc_by(d);
    }
}

impl ServerMetrics {
    /// Names the model served (the `model` label of the contract families).
    pub fn set_model(&self, name: &str) {
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = name.to_owned();
    }

    fn model_for(&self, endpoint: &str) -> String {
        if endpoint.starts_with("/v1/models/") {
            self.model.read().unwrap_or_else(|e| e.into_inner()).clone()
        } else {
            String::new()
        }
    }

    /// Counts one answered request.
    pub fn record(&self, endpoint: &str, status: u16) {
        let model = self.model_for(endpoint);
        self.http_requests.with(&[endpoint, &model, &status.to_string()]).inc();
    }

    /// Requests answered on `endpoint` with `status` so far.
    pub fn requests(&self, endpoint: &str, status: u16) -> u64 {
        let model = self.model_for(endpoint);
        self.http_requests.with(&[endpoint, &model, &status.to_string()]).get() as u64
    }

    /// The latency histograms of predictions answered by `version`.
    pub fn latency(&self, version: &str) -> Latency {
        let model = self.model.read().unwrap_or_else(|e| e.into_inner()).clone();
        Latency {
            by_version: self.latency_by_version.with(&[&model, version]),
            http: self.http_duration.with(&[PREDICT_ROUTE, &model]),
        }
    }

    /// The `/metrics` page; `model`, `version`, `kind` and `digest` label the info gauge.
    pub fn render(&self, model: &str, version: &str, kind: &str, digest: &str) -> String {
        {
            let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
            let now = [model, version, kind, digest];
            if !shown.iter().map(String::as_str).eq(now) {
                self.info.remove_all();
                self.info.with(&now).set(1.0);
                *shown = now.iter().map(|s| (*s).to_owned()).collect();
            }
            catch_up(&self.rows_counter, self.rows_scored.load(Ordering::Relaxed));
            catch_up(&self.reloads_counter, self.reloads.load(Ordering::Relaxed));
            catch_up(&self.reload_failures_counter, self.reload_failures.load(Ordering::Relaxed));
            catch_up(&self.shed_queue_full, self.rejected.load(Ordering::Relaxed));
            self.queue_gauge.set(self.queue_depth.load(Ordering::Relaxed) as f64);
        }
        self.registry.encode()
    }
}
