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
    // BEGIN SOLUTION c4w6.prom-text
    let mut out = String::with_capacity(v.len());
    push_escaped(&mut out, v, true);
    out
    // END SOLUTION
}

/// Task c4w6.prom-text: a help text as written after `# HELP name `: `\` becomes `\\` and a
/// newline becomes `\n` (quotes are *not* escaped in help text).
pub fn escape_help(help: &str) -> String {
    // BEGIN SOLUTION c4w6.prom-text
    let mut out = String::with_capacity(help.len());
    push_escaped(&mut out, help, false);
    out
    // END SOLUTION
}
// ANCHOR_END: escape

// BEGIN SOLUTION c4w6.prom-text delete
/// Appends `s` escaped (quotes too when `quotes`), copying unescaped runs in one go.
fn push_escaped(out: &mut String, s: &str, quotes: bool) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'"' if quotes => "\\\"",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(escaped);
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// Appends `name{a="x",b="y"` (no closing brace) or `name` when there are no labels at all.
fn push_labels(out: &mut String, names: &[String], values: &[String]) {
    out.push('{');
    for (i, (n, v)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(n);
        out.push_str("=\"");
        push_escaped(out, v, true);
        out.push('"');
    }
}

fn push_value(out: &mut String, v: f64) {
    // Integers below 2^53 (every counter of requests or tokens) skip float formatting.
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 && v != 0.0 {
        let _ = write!(out, "{}", v as i64);
    } else if v.is_finite() {
        let _ = write!(out, "{v}");
    } else {
        out.push_str(&format_value(v));
    }
}

/// Checks one family completely (see [`encode_into`]).
fn validate(family: &Family) -> Result<()> {
    let bad = |what: String| Err(Error::InvalidInput(format!("family `{}`: {what}", family.name)));
    if !is_metric_name(&family.name) {
        return bad("invalid metric name".into());
    }
    let mut names = HashSet::new();
    for l in &family.label_names {
        if !is_label_name(l) || l.starts_with("__") {
            return bad(format!("invalid label name `{l}`"));
        }
        if family.kind == Kind::Histogram && l == "le" {
            return bad("`le` is reserved in histograms".into());
        }
        if !names.insert(l.as_str()) {
            return bad(format!("duplicate label name `{l}`"));
        }
    }
    let mut seen = HashSet::new();
    for s in &family.series {
        if s.label_values.len() != family.label_names.len() {
            return bad(format!("{} label values for {} label names", s.label_values.len(), family.label_names.len()));
        }
        if !seen.insert(&s.label_values) {
            return bad(format!("duplicate series {:?}", s.label_values));
        }
        match (&s.value, family.kind) {
            (Value::Number(v), Kind::Counter) if *v < 0.0 => return bad(format!("negative counter {v}")),
            (Value::Number(_), Kind::Counter | Kind::Gauge) | (Value::Histogram(_), Kind::Histogram) => {}
            _ => return bad("a series' value does not match the family's type".into()),
        }
    }
    Ok(())
}
// END SOLUTION

// ANCHOR: encode
/// Task c4w6.prom-text: the exposition of `families` as a new string (see [`encode_into`]).
pub fn encode(families: &[Family]) -> Result<String> {
    // BEGIN SOLUTION c4w6.prom-text
    let mut out = String::new();
    encode_into(families, &mut out)?;
    Ok(out)
    // END SOLUTION
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
    // BEGIN SOLUTION c4w6.prom-text
    let mut names = HashSet::new();
    for family in families {
        if !names.insert(family.name.as_str()) {
            return Err(Error::InvalidInput(format!("family `{}` appears twice", family.name)));
        }
        validate(family)?;
    }
    let mut order: Vec<&Series> = Vec::new();
    let mut labels: Vec<(&str, &str)> = Vec::new();
    for family in families {
        out.push_str("# HELP ");
        out.push_str(&family.name);
        out.push(' ');
        push_escaped(out, &family.help, false);
        out.push('\n');
        out.push_str("# TYPE ");
        out.push_str(&family.name);
        out.push(' ');
        out.push_str(family.kind.name());
        out.push('\n');
        order.clear();
        order.extend(family.series.iter());
        order.sort_unstable_by(|a, b| a.label_values.cmp(&b.label_values));
        for s in &order {
            match &s.value {
                Value::Number(v) => {
                    out.push_str(&family.name);
                    if !family.label_names.is_empty() {
                        push_labels(out, &family.label_names, &s.label_values);
                        out.push('}');
                    }
                    out.push(' ');
                    push_value(out, *v);
                    out.push('\n');
                }
                Value::Histogram(h) => {
                    labels.clear();
                    labels.extend(
                        family.label_names.iter().map(String::as_str).zip(s.label_values.iter().map(String::as_str)),
                    );
                    write_histogram(out, &family.name, &labels, h);
                }
            }
        }
    }
    Ok(())
    // END SOLUTION
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
    // BEGIN SOLUTION c4w6.histogram
    // `name_suffix{l1="v1",l2="v2"`, left open for `le` or the closing brace.
    let head = |out: &mut String, suffix: &str| {
        out.push_str(name);
        out.push_str(suffix);
        out.push('{');
        for (i, (n, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(n);
            out.push_str("=\"");
            push_escaped(out, v, true);
            out.push('"');
        }
    };
    let counts = h.cumulative();
    for (i, &c) in counts.iter().enumerate() {
        head(out, "_bucket");
        out.push_str(if labels.is_empty() { "le=\"" } else { ",le=\"" });
        match h.bounds().get(i) {
            Some(&b) => push_value(out, b),
            None => out.push_str("+Inf"),
        }
        let _ = writeln!(out, "\"}} {c}");
    }
    for (suffix, value) in [("_sum", h.sum()), ("_count", h.count() as f64)] {
        if labels.is_empty() {
            out.push_str(name);
            out.push_str(suffix);
        } else {
            head(out, suffix);
            out.push('}');
        }
        out.push(' ');
        push_value(out, value);
        out.push('\n');
    }
    // END SOLUTION
}
// ANCHOR_END: write-histogram
