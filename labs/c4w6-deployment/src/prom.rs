//! Prometheus' text exposition format, version 0.0.4: what a server answers on `GET /metrics`.
//!
//! Format: <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>. Each
//! metric family is a `# HELP` line (the help text with `\` and newline escaped), a `# TYPE` line,
//! then one line per series: `name{label="value",...} number`. Label values escape `\`, `"` and
//! newline. A histogram series is several lines: one cumulative `name_bucket{...,le="bound"}` per
//! bucket (`le="+Inf"` last), then `name_sum` and `name_count`. Metric names match
//! `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*`, and label names starting with
//! `__` are reserved for Prometheus itself (<https://prometheus.io/docs/concepts/data_model/>).

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::histogram::Histogram;
use crate::{Error, Result};

// ANCHOR: families
/// The type of a metric family (the word after `# TYPE name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (requests served, tokens generated); reset only by a restart.
    Counter,
    /// Goes up and down (requests in flight, queue depth).
    Gauge,
    /// Observations counted into buckets (latencies).
    Histogram,
}

impl Kind {
    /// The name written after `# TYPE name`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One series' value: a number for counters and gauges, a histogram for histograms.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's or a gauge's value.
    Number(f64),
    /// A histogram's buckets, sum and count.
    Histogram(Histogram),
}

/// One series of a family: the values of the family's labels, in the order of its label names.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// One value per label name of the family.
    pub label_values: Vec<String>,
    /// Its value.
    pub value: Value,
}

/// A metric family: every series of one metric name.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The metric name (`sovereign_http_requests_total`).
    pub name: String,
    /// The help text (any text: it is escaped on output).
    pub help: String,
    /// Its type.
    pub kind: Kind,
    /// The label names every series gives values for (`route`, `model`, `code`).
    pub label_names: Vec<String>,
    /// The series, in any order.
    pub series: Vec<Series>,
}
// ANCHOR_END: families

/// A sample value as the exposition writes it: `+Inf`, `-Inf`, `NaN`, else Rust's shortest
/// round-trip decimal (`1`, `0.25`, `1e-7` is written `0.0000001`). Given.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`. Given.
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*` (a `__` prefix is valid here
/// but reserved: [`encode_into`] refuses it). Given.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ANCHOR: escape
/// Task c4w6.prom-text (14 points, with [`escape_help`], [`encode`] and [`encode_into`]): a label
/// value as written between the quotes: `\` becomes `\\`, `"` becomes `\"`, a newline (LF)
/// becomes `\n`; everything else (other control characters, any Unicode) is kept as it is.
pub fn escape_label_value(v: &str) -> String {
    todo!("c4w6.prom-text")
}

/// Task c4w6.prom-text: a help text as written after `# HELP name `: `\` becomes `\\` and a
/// newline becomes `\n` (quotes are *not* escaped in help text).
pub fn escape_help(help: &str) -> String {
    todo!("c4w6.prom-text")
}
// ANCHOR_END: escape

// ANCHOR: encode
/// Task c4w6.prom-text: the exposition of `families` as a new string (see [`encode_into`]).
pub fn encode(families: &[Family]) -> Result<String> {
    todo!("c4w6.prom-text")
}

/// Task c4w6.prom-text: appends the text exposition of `families` to `out`.
///
/// Validate everything before writing anything; on an error `out` is left as it was. Each is
/// [`Error::InvalidInput`]: two families with the same name; an invalid metric name
/// ([`is_metric_name`]); an invalid label name ([`is_label_name`]), one starting with `__`, a
/// repeated one, or `le` in a histogram; a series with more or fewer values than label names; two
/// series with the same label values; a value that does not match the family's kind (a number in
/// a histogram family, a histogram in a counter or gauge family); a negative counter.
///
/// Then, family by family in the order given:
/// - `# HELP <name> <escape_help(help)>` (even when the help text is empty, as `kernels` does);
/// - `# TYPE <name> <counter|gauge|histogram>`;
/// - the series sorted by their label values (compared as a list of strings, byte order);
///   a counter's or gauge's series is `name{l1="v1",l2="v2"} <format_value(value)>`, label values
///   escaped by [`escape_label_value`], just `name <value>` when the family has no labels; a
///   histogram's series is written by [`write_histogram`].
///
/// Every line ends with `\n`.
pub fn encode_into(families: &[Family], out: &mut String) -> Result<()> {
    todo!("c4w6.prom-text")
}
// ANCHOR_END: encode

// ANCHOR: write-histogram
/// Task c4w6.histogram: appends one histogram series of family `name` with these label pairs.
///
/// For each bound `b` of `h`: `name_bucket{<labels>,le="<format_value(b)>"} <cumulative count>`,
/// then `le="+Inf"` with the total count, then `name_sum{<labels>} <format_value(sum)>` and
/// `name_count{<labels>} <count>`. `le` comes after the series' own labels; without labels the
/// bucket lines are `name_bucket{le="…"} …` and the other two `name_sum …`, `name_count …`. Label
/// values are escaped by [`escape_label_value`]. Every line ends with `\n`.
pub fn write_histogram(out: &mut String, name: &str, labels: &[(&str, &str)], h: &Histogram) {
    todo!("c4w6.histogram")
}
// ANCHOR_END: write-histogram
