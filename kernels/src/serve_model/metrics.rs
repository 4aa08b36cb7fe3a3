//! The tabular server's metrics in Prometheus' text exposition format
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>): counters, and histograms as
//! cumulative `_bucket{le=…}` lines with `_sum` and `_count`, lock-free on the request path.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram with fixed upper bounds, updated with atomics.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    /// One count per bound, then the `+Inf` bucket (not cumulative).
    counts: Vec<AtomicU64>,
    /// The sum of the observations, in millionths of the unit (integral, so it can be atomic).
    sum_micro: AtomicU64,
}

impl Histogram {
    /// A histogram with these upper bounds (ascending).
    pub fn new(bounds: &[f64]) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micro.fetch_add((v.max(0.0) * 1e6).round() as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The sum of the observations.
    pub fn sum(&self) -> f64 {
        self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in self.bounds.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        cumulative += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}");
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum());
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// Latency bounds in seconds: 50 µs to 5 s.
pub const LATENCY_BOUNDS: [f64; 16] =
    [50e-6, 100e-6, 200e-6, 350e-6, 500e-6, 750e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1.0, 5.0];
/// Batch-size bounds in rows.
pub const BATCH_BOUNDS: [f64; 12] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0, 16384.0];

/// Everything `/metrics` shows.
#[derive(Debug)]
pub struct ServerMetrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Time from a predict request's arrival to its answer, seconds, by model version.
    latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
    /// Rows per scored batch (after micro-batching).
    pub batch_rows: Histogram,
    /// Requests per scored batch.
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

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics {
            requests: Mutex::default(),
            latency: Mutex::default(),
            batch_rows: Histogram::new(&BATCH_BOUNDS),
            batch_requests: Histogram::new(&BATCH_BOUNDS),
            rows_scored: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
        }
    }
}

impl ServerMetrics {
    /// Counts one answered request.
    pub fn record(&self, endpoint: &str, status: u16) {
        *self.requests.lock().unwrap_or_else(|e| e.into_inner()).entry((endpoint.to_owned(), status)).or_default() += 1;
    }

    /// Requests answered on `endpoint` with `status` so far.
    pub fn requests(&self, endpoint: &str, status: u16) -> u64 {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(endpoint.to_owned(), status))
            .copied()
            .unwrap_or(0)
    }

    /// The latency histogram of predictions answered by `version`.
    pub fn latency(&self, version: &str) -> std::sync::Arc<Histogram> {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(version.to_owned())
            .or_insert_with(|| std::sync::Arc::new(Histogram::new(&LATENCY_BOUNDS)))
            .clone()
    }

    /// The `/metrics` page; `model`, `version` and `kind` label the info gauge and the latency histogram.
    pub fn render(&self, model: &str, version: &str, kind: &str, digest: &str) -> String {
        let mut out = String::new();
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        head(&mut out, "sovereign_model_info", "gauge", "The model served (1), with its version and digest.");
        let _ = writeln!(
            out,
            "sovereign_model_info{{model=\"{model}\",version=\"{version}\",kind=\"{kind}\",digest=\"{digest}\"}} 1"
        );
        head(&mut out, "sovereign_model_requests_total", "counter", "HTTP requests answered, by endpoint and status.");
        for ((endpoint, status), n) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "sovereign_model_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}");
        }
        head(
            &mut out,
            "sovereign_model_request_duration_seconds",
            "histogram",
            "Predict requests: arrival to answer, by the model version that scored them.",
        );
        for (v, h) in self.latency.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            h.render(
                &mut out,
                "sovereign_model_request_duration_seconds",
                &format!("model=\"{model}\",version=\"{v}\""),
            );
        }
        head(&mut out, "sovereign_model_batch_rows", "histogram", "Rows per scored batch (after micro-batching).");
        self.batch_rows.render(&mut out, "sovereign_model_batch_rows", "");
        head(&mut out, "sovereign_model_batch_requests", "histogram", "Requests merged into one scored batch.");
        self.batch_requests.render(&mut out, "sovereign_model_batch_requests", "");
        let counters = [
            ("sovereign_model_rows_scored_total", "Rows scored.", &self.rows_scored),
            ("sovereign_model_rejected_total", "Predict requests refused with 503 (queue full).", &self.rejected),
            ("sovereign_model_reloads_total", "Reloads that changed the model served.", &self.reloads),
            (
                "sovereign_model_reload_failures_total",
                "Reloads refused (the old model kept serving).",
                &self.reload_failures,
            ),
        ];
        for (name, help, v) in counters {
            head(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        head(&mut out, "sovereign_model_queue_depth", "gauge", "Predict requests waiting for the batcher.");
        let _ = writeln!(out, "sovereign_model_queue_depth {}", self.queue_depth.load(Ordering::Relaxed));
        out
    }
}
