//! A metric registry and Prometheus' text exposition format, version 0.0.4.
//!
//! Format: <https://prometheus.io/docs/instrumenting/exposition_formats/> (`# HELP`, `# TYPE`, then
//! `name{label="value"} number` lines; label values escape `\`, `"` and newline; histograms as
//! cumulative `_bucket{le=...}` series with `_sum` and `_count`). Updates are lock-free atomics on
//! the request path: a family's lock is taken only to find or create a label set's series.

use std::sync::Arc;

use crate::Result;

/// Request-latency bucket bounds in seconds: 1 ms to 60 s.
pub const LATENCY_BUCKETS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0];

/// Every metric family of one process, in registration order.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    _todo: Arc<()>,
}

/// A family of counters (monotonic, `f64`) with the same label names.
#[derive(Debug, Clone)]
pub struct CounterVec {
    _todo: Arc<()>,
}

/// One counter series.
#[derive(Debug, Clone)]
pub struct Counter {
    _todo: Arc<()>,
}

/// A family of gauges with the same label names.
#[derive(Debug, Clone)]
pub struct GaugeVec {
    _todo: Arc<()>,
}

/// One gauge series.
#[derive(Debug, Clone)]
pub struct Gauge {
    _todo: Arc<()>,
}

/// A family of histograms with the same label names and bucket bounds.
#[derive(Debug, Clone)]
pub struct HistogramVec {
    _todo: Arc<()>,
}

/// One histogram series.
#[derive(Debug, Clone)]
pub struct Histogram {
    _todo: Arc<()>,
}

/// One parsed sample: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name (`foo_bucket`, `foo_sum`... for histograms).
    pub name: String,
    /// Label pairs in the order written.
    pub labels: Vec<(String, String)>,
    /// The value (`+Inf`, `-Inf` and `NaN` allowed).
    pub value: f64,
}

/// One parsed family: its `# TYPE`, `# HELP` and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family name.
    pub name: String,
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: String,
    /// The help text (unescaped).
    pub help: String,
    /// Its samples.
    pub samples: Vec<Sample>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        todo!()
    }

    /// Registers (or returns the already registered) counter family `name`.
    ///
    /// # Panics
    /// When `name` is already registered with another type or other label names (a programming error).
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> CounterVec {
        let _ = (name, help, labels);
        todo!()
    }

    /// Registers (or returns) gauge family `name`.
    ///
    /// # Panics
    /// As [`Registry::counter`].
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        let _ = (name, help, labels);
        todo!()
    }

    /// Registers (or returns) histogram family `name` with these ascending upper bounds (`+Inf` is added).
    ///
    /// # Panics
    /// As [`Registry::counter`], and when `bounds` is not strictly ascending.
    pub fn histogram(&self, name: &str, help: &str, labels: &[&str], bounds: &[f64]) -> HistogramVec {
        let _ = (name, help, labels, bounds);
        todo!()
    }

    /// Sets `sovereign_build_info{component, version}` to 1 (version: this crate's).
    pub fn build_info(&self, component: &str) {
        let _ = component;
        todo!()
    }

    /// The text exposition of every family, in registration order, series sorted by labels.
    pub fn encode(&self) -> String {
        todo!()
    }

    /// Appends the exposition to `out` (no allocation per series beyond `out`'s growth).
    pub fn encode_into(&self, out: &mut String) {
        let _ = out;
        todo!()
    }
}

impl CounterVec {
    /// The series with these label values (created at 0 on first use).
    ///
    /// # Panics
    /// When the number of values differs from the family's label names.
    pub fn with(&self, values: &[&str]) -> Counter {
        let _ = values;
        todo!()
    }
}

impl Counter {
    /// Adds 1.
    pub fn inc(&self) {
        todo!()
    }

    /// Adds `v` (ignored unless finite and ≥ 0: counters only go up).
    pub fn inc_by(&self, v: f64) {
        let _ = v;
        todo!()
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        todo!()
    }
}

impl GaugeVec {
    /// The series with these label values (created at 0 on first use).
    ///
    /// # Panics
    /// As [`CounterVec::with`].
    pub fn with(&self, values: &[&str]) -> Gauge {
        let _ = values;
        todo!()
    }
}

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        let _ = v;
        todo!()
    }

    /// Adds `v` (may be negative).
    pub fn add(&self, v: f64) {
        let _ = v;
        todo!()
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        todo!()
    }
}

impl HistogramVec {
    /// The series with these label values.
    ///
    /// # Panics
    /// As [`CounterVec::with`].
    pub fn with(&self, values: &[&str]) -> Histogram {
        let _ = values;
        todo!()
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let _ = v;
        todo!()
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        todo!()
    }

    /// Their sum.
    pub fn sum(&self) -> f64 {
        todo!()
    }

    /// Cumulative counts per bound, `+Inf` last.
    pub fn cumulative(&self) -> Vec<u64> {
        todo!()
    }
}

/// Escapes a label value (`\` → `\\`, `"` → `\"`, newline → `\n`).
pub fn escape_label_value(v: &str) -> String {
    let _ = v;
    todo!()
}

/// Parses a text exposition (what [`Registry::encode`] writes, and what other exporters write).
///
/// # Errors
/// [`crate::Error::PromParse`] naming the line and what is wrong with it.
pub fn parse(text: &str) -> Result<Vec<Family>> {
    let _ = text;
    todo!()
}
