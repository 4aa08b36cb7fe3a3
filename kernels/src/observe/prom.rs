//! A metric registry and Prometheus' text exposition format, version 0.0.4.
//!
//! Format: <https://prometheus.io/docs/instrumenting/exposition_formats/> (`# HELP`, `# TYPE`, then
//! `name{label="value"} number` lines; label values escape `\`, `"` and newline; histograms as
//! cumulative `_bucket{le=...}` series with `_sum` and `_count`). Updates are lock-free atomics on
//! the request path: a family's lock is taken only to find or create a label set's series.
//!
//! Numbers are written so that both Prometheus (Go's `strconv.ParseFloat`) and Python's
//! `prometheus_client` read them back exactly: integral values below 2^53 as integers (`42`, not
//! `42.0` or `4.2e1`), others in Rust's shortest round-trip form (`0.25`, `1e-7`, `1.5e300`), and
//! `+Inf`, `-Inf`, `NaN`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::{Error, Result};

// ANCHOR: latency_buckets
/// Request-latency bucket bounds in seconds: 1 ms to 60 s.
pub const LATENCY_BUCKETS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0];
// ANCHOR_END: latency_buckets

/// Every metric family of one process, in registration order.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    families: Arc<RwLock<Vec<Arc<FamilyCore>>>>,
}

/// The type of a registered family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One registered family: its description, and its series sorted by label values.
#[derive(Debug)]
struct FamilyCore {
    name: String,
    /// `# HELP name help\n# TYPE name kind\n`, escaped once at registration.
    head: String,
    kind: Kind,
    label_names: Vec<String>,
    bounds: Vec<f64>,
    /// The `le` label values of the bounds, formatted once.
    bound_text: Vec<String>,
    series: RwLock<BTreeMap<Vec<String>, Arc<SeriesCore>>>,
}

/// One series: its label pairs, rendered once, and its atomics.
#[derive(Debug)]
struct SeriesCore {
    /// `a="x",b="y"` (no braces; empty without labels).
    labels: String,
    /// Counter or gauge value, `f64` bits.
    value: AtomicU64,
    /// Histogram: one count per bound, then `+Inf` (not cumulative).
    buckets: Box<[AtomicU64]>,
    /// Histogram: the sum, `f64` bits.
    sum: AtomicU64,
}

/// A family of counters (monotonic, `f64`) with the same label names.
#[derive(Debug, Clone)]
pub struct CounterVec {
    family: Arc<FamilyCore>,
}

/// One counter series.
#[derive(Debug, Clone)]
pub struct Counter {
    series: Arc<SeriesCore>,
}

/// A family of gauges with the same label names.
#[derive(Debug, Clone)]
pub struct GaugeVec {
    family: Arc<FamilyCore>,
}

/// One gauge series.
#[derive(Debug, Clone)]
pub struct Gauge {
    series: Arc<SeriesCore>,
}

/// A family of histograms with the same label names and bucket bounds.
#[derive(Debug, Clone)]
pub struct HistogramVec {
    family: Arc<FamilyCore>,
}

/// One histogram series.
#[derive(Debug, Clone)]
pub struct Histogram {
    series: Arc<SeriesCore>,
    bounds: Arc<FamilyCore>,
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

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Whether `name` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
fn valid_metric_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
fn valid_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn register(&self, name: &str, help: &str, labels: &[&str], kind: Kind, bounds: &[f64]) -> Arc<FamilyCore> {
        assert!(valid_metric_name(name), "invalid metric name {name:?}");
        for l in labels {
            assert!(valid_label_name(l) && !l.starts_with("__"), "invalid label name {l:?} in {name}");
            assert!(kind != Kind::Histogram || *l != "le", "histogram {name} may not have a label `le`");
        }
        let mut families = write(&self.families);
        if let Some(f) = families.iter().find(|f| f.name == name) {
            assert!(
                f.kind == kind
                    && f.label_names.iter().map(String::as_str).eq(labels.iter().copied())
                    && f.bounds == bounds,
                "metric {name} registered twice with different types, labels or bounds"
            );
            return f.clone();
        }
        let mut head = String::with_capacity(32 + 2 * name.len() + help.len());
        write_head(&mut head, name, help, kind.as_str());
        let bound_text = bounds
            .iter()
            .map(|&b| {
                let mut s = String::new();
                write_value(&mut s, b);
                s
            })
            .collect();
        let family = Arc::new(FamilyCore {
            name: name.to_owned(),
            head,
            kind,
            label_names: labels.iter().map(|s| (*s).to_owned()).collect(),
            bounds: bounds.to_vec(),
            bound_text,
            series: RwLock::new(BTreeMap::new()),
        });
        if labels.is_empty() {
            // A family without labels has its one series from the start (at 0).
            series_of(&family, &[]);
        }
        families.push(family.clone());
        family
    }

    /// Registers (or returns the already registered) counter family `name`.
    ///
    /// # Panics
    /// When `name` is already registered with another type or other label names (a programming error).
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> CounterVec {
        CounterVec { family: self.register(name, help, labels, Kind::Counter, &[]) }
    }

    /// Registers (or returns) gauge family `name`.
    ///
    /// # Panics
    /// As [`Registry::counter`].
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        GaugeVec { family: self.register(name, help, labels, Kind::Gauge, &[]) }
    }

    /// Registers (or returns) histogram family `name` with these ascending upper bounds (`+Inf` is added).
    ///
    /// # Panics
    /// As [`Registry::counter`], and when `bounds` is not strictly ascending.
    pub fn histogram(&self, name: &str, help: &str, labels: &[&str], bounds: &[f64]) -> HistogramVec {
        let bounds: &[f64] = match bounds.last() {
            Some(b) if *b == f64::INFINITY => &bounds[..bounds.len() - 1],
            _ => bounds,
        };
        assert!(
            bounds.iter().all(|b| b.is_finite()) && bounds.windows(2).all(|w| w[0] < w[1]),
            "histogram {name}: bounds must be finite and strictly ascending"
        );
        HistogramVec { family: self.register(name, help, labels, Kind::Histogram, bounds) }
    }

    /// Sets `sovereign_build_info{component, version}` to 1 (version: this crate's).
    pub fn build_info(&self, component: &str) {
        self.gauge(super::BUILD_INFO, "Which binary and version answers (always 1).", &["component", "version"])
            .with(&[component, env!("CARGO_PKG_VERSION")])
            .set(1.0);
    }

    /// The text exposition of every family, in registration order, series sorted by labels.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the exposition to `out` (no allocation per series beyond `out`'s growth).
    pub fn encode_into(&self, out: &mut String) {
        let families = read(&self.families);
        for f in families.iter() {
            out.push_str(&f.head);
            let series = read(&f.series);
            for s in series.values() {
                match f.kind {
                    Kind::Counter | Kind::Gauge => {
                        out.push_str(&f.name);
                        if !s.labels.is_empty() {
                            out.push('{');
                            out.push_str(&s.labels);
                            out.push('}');
                        }
                        out.push(' ');
                        write_value(out, f64::from_bits(s.value.load(Ordering::Relaxed)));
                        out.push('\n');
                    }
                    Kind::Histogram => encode_histogram(out, f, s),
                }
            }
        }
    }
}

/// `# HELP` (escaped: `\` and newline) and `# TYPE` lines of a family.
fn write_head(out: &mut String, name: &str, help: &str, kind: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// Appends the exposition of plain `families` (what [`parse`] returns, or families built by hand)
/// to `out`: `# HELP` and `# TYPE`, then each sample as given (labels escaped here, on every call).
///
/// The counterpart of [`Registry::encode_into`] for metrics that live in plain values rather than
/// in a registry's series (a federating proxy re-exposing what it scraped, a test's fixture); it is
/// also the like-for-like reference of week c4w6's graded encoder, which encodes plain values too.
/// `parse(encode_families(parse(text)))` equals `parse(text)` for any valid `text`.
pub fn encode_families(families: &[Family], out: &mut String) {
    for f in families {
        write_head(out, &f.name, &f.help, &f.kind);
        for s in &f.samples {
            out.push_str(&s.name);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (name, value)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(name);
                    out.push_str("=\"");
                    escape_into(out, value);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            write_value(out, s.value);
            out.push('\n');
        }
    }
}

fn encode_histogram(out: &mut String, f: &FamilyCore, s: &SeriesCore) {
    let mut cumulative = 0u64;
    for (i, count) in s.buckets.iter().enumerate() {
        cumulative += count.load(Ordering::Relaxed);
        out.push_str(&f.name);
        out.push_str("_bucket{");
        if !s.labels.is_empty() {
            out.push_str(&s.labels);
            out.push(',');
        }
        out.push_str("le=\"");
        out.push_str(f.bound_text.get(i).map_or("+Inf", String::as_str));
        out.push_str("\"} ");
        write_u64(out, cumulative);
        out.push('\n');
    }
    for (suffix, v) in [("_sum", None), ("_count", Some(cumulative))] {
        out.push_str(&f.name);
        out.push_str(suffix);
        if !s.labels.is_empty() {
            out.push('{');
            out.push_str(&s.labels);
            out.push('}');
        }
        out.push(' ');
        match v {
            Some(n) => write_u64(out, n),
            None => write_value(out, f64::from_bits(s.sum.load(Ordering::Relaxed))),
        }
        out.push('\n');
    }
}

/// Writes `n` in decimal without going through `fmt`.
fn write_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // The bytes are ASCII digits.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

/// Writes a sample value: integers below 2^53 without a fraction or exponent, `+Inf`, `-Inf`,
/// `NaN`, anything else in the shortest form that reads back to the same `f64`.
fn write_value(out: &mut String, v: f64) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if v.fract() == 0.0 && v.abs() < EXACT {
        if v < 0.0 {
            out.push('-');
        }
        write_u64(out, v.abs() as u64);
    } else {
        let _ = write!(out, "{v:?}");
    }
}

/// Finds or creates the series of `values` in `family`.
fn series_of(family: &FamilyCore, values: &[&str]) -> Arc<SeriesCore> {
    assert_eq!(
        values.len(),
        family.label_names.len(),
        "metric {}: {} label values for {} label names",
        family.name,
        values.len(),
        family.label_names.len()
    );
    let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    if let Some(s) = read(&family.series).get(&key) {
        return s.clone();
    }
    let mut series = write(&family.series);
    series
        .entry(key)
        .or_insert_with(|| {
            let mut labels = String::new();
            for (i, (name, value)) in family.label_names.iter().zip(values).enumerate() {
                if i > 0 {
                    labels.push(',');
                }
                labels.push_str(name);
                labels.push_str("=\"");
                escape_into(&mut labels, value);
                labels.push('"');
            }
            let buckets = if family.kind == Kind::Histogram {
                (0..=family.bounds.len()).map(|_| AtomicU64::new(0)).collect()
            } else {
                Box::default()
            };
            Arc::new(SeriesCore {
                labels,
                value: AtomicU64::new(0f64.to_bits()),
                buckets,
                sum: AtomicU64::new(0f64.to_bits()),
            })
        })
        .clone()
}

/// Adds `v` to the `f64` whose bits `a` holds.
fn add_f64(a: &AtomicU64, v: f64) {
    let mut old = a.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(old) + v).to_bits();
        match a.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(current) => old = current,
        }
    }
}

impl CounterVec {
    /// The series with these label values (created at 0 on first use).
    ///
    /// # Panics
    /// When the number of values differs from the family's label names.
    pub fn with(&self, values: &[&str]) -> Counter {
        Counter { series: series_of(&self.family, values) }
    }
}

impl Counter {
    /// Adds 1.
    pub fn inc(&self) {
        add_f64(&self.series.value, 1.0);
    }

    /// Adds `v` (ignored unless finite and ≥ 0: counters only go up).
    pub fn inc_by(&self, v: f64) {
        if v.is_finite() && v > 0.0 {
            add_f64(&self.series.value, v);
        }
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.series.value.load(Ordering::Relaxed))
    }
}

impl GaugeVec {
    /// The series with these label values (created at 0 on first use).
    ///
    /// # Panics
    /// As [`CounterVec::with`].
    pub fn with(&self, values: &[&str]) -> Gauge {
        Gauge { series: series_of(&self.family, values) }
    }
}

impl GaugeVec {
    /// Removes every series (handles already taken keep working but are no longer shown): for
    /// info gauges whose labels change, such as a model's version.
    pub fn remove_all(&self) {
        write(&self.family.series).clear();
    }
}

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.series.value.store(v.to_bits(), Ordering::Relaxed);
    }

    /// Adds `v` (may be negative).
    pub fn add(&self, v: f64) {
        add_f64(&self.series.value, v);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.series.value.load(Ordering::Relaxed))
    }
}

impl HistogramVec {
    /// The series with these label values.
    ///
    /// # Panics
    /// As [`CounterVec::with`].
    pub fn with(&self, values: &[&str]) -> Histogram {
        Histogram { series: series_of(&self.family, values), bounds: self.family.clone() }
    }
}

impl Histogram {
    // ANCHOR: observe
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        // The first bucket whose bound is ≥ v (`le` is inclusive); NaN goes to `+Inf`.
        let bounds = &self.bounds.bounds;
        let i = if v.is_nan() { bounds.len() } else { bounds.partition_point(|&b| b < v) };
        self.series.buckets[i].fetch_add(1, Ordering::Relaxed);
        add_f64(&self.series.sum, v);
    }
    // ANCHOR_END: observe

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.series.buckets.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Their sum.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.series.sum.load(Ordering::Relaxed))
    }

    /// Cumulative counts per bound, `+Inf` last.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut total = 0;
        self.series
            .buckets
            .iter()
            .map(|c| {
                total += c.load(Ordering::Relaxed);
                total
            })
            .collect()
    }
}

fn escape_into(out: &mut String, v: &str) {
    // Most values need no escape: one scan, one copy.
    if !v.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes a label value (`\` → `\\`, `"` → `\"`, newline → `\n`).
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    escape_into(&mut out, v);
    out
}

// ---- parsing -------------------------------------------------------------------------------------

/// A cursor over one line.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_blank(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn take_while(&mut self, f: impl Fn(usize, char) -> bool) -> &'a str {
        let start = self.pos;
        let mut i = 0;
        while let Some(c) = self.peek() {
            if !f(i, c) {
                break;
            }
            self.pos += c.len_utf8();
            i += 1;
        }
        &self.s[start..self.pos]
    }

    /// A token up to the next blank or the end.
    fn token(&mut self) -> &'a str {
        self.take_while(|_, c| c != ' ' && c != '\t')
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
}

fn metric_name<'a>(c: &mut Cursor<'a>) -> &'a str {
    c.take_while(|i, ch| ch.is_ascii_alphabetic() || ch == '_' || ch == ':' || (i > 0 && ch.is_ascii_digit()))
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ if s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
            && s.bytes().any(|b| b.is_ascii_digit()) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// Unescapes a HELP text (`\\` and `\n`; other backslashes stay as written).
fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Which family a sample named `sample` belongs to, given a family `name` of `kind`.
fn belongs(name: &str, kind: &str, sample: &str) -> bool {
    if sample == name {
        return kind != "histogram";
    }
    let Some(suffix) = sample.strip_prefix(name) else { return false };
    match kind {
        "histogram" => matches!(suffix, "_bucket" | "_sum" | "_count" | "_created"),
        "summary" => matches!(suffix, "_sum" | "_count" | "_created"),
        _ => false,
    }
}

struct Parser {
    families: Vec<Family>,
    /// Whether the last family's TYPE was given.
    typed: bool,
    /// Names of the families closed so far (a name may not come back).
    seen: std::collections::HashSet<String>,
}

impl Parser {
    /// The family `name` for a HELP or TYPE line: the current one when it has that name,
    /// else a new one.
    fn family_for(&mut self, name: &str) -> std::result::Result<&mut Family, String> {
        let current = self.families.last().is_some_and(|f| f.name == name);
        if !current {
            if !self.seen.insert(name.to_owned()) {
                return Err(format!("metric family {name} appears twice (its lines must be one group)"));
            }
            self.families.push(Family {
                name: name.to_owned(),
                kind: "untyped".into(),
                help: String::new(),
                samples: Vec::new(),
            });
            self.typed = false;
        }
        Ok(self.families.last_mut().expect("just pushed"))
    }

    fn comment(&mut self, line: &str) -> std::result::Result<(), String> {
        let mut c = Cursor { s: line, pos: 1 };
        c.skip_blank();
        let keyword = c.token();
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(()); // an ordinary comment
        }
        if !c.skip_blank() {
            return Err(format!("{keyword} without a metric name"));
        }
        let name = metric_name(&mut c);
        if name.is_empty() {
            return Err(format!("{keyword}: invalid metric name {:?}", c.token()));
        }
        let sep = c.skip_blank();
        if !sep && !c.rest().is_empty() {
            return Err(format!("{keyword}: invalid metric name {name:?}{}", c.token()));
        }
        if keyword == "HELP" {
            let help = unescape_help(c.rest());
            let f = self.family_for(name)?;
            if !f.help.is_empty() {
                return Err(format!("second HELP line for {name}"));
            }
            f.help = help;
            return Ok(());
        }
        let kind = c.token();
        c.skip_blank();
        if !c.rest().is_empty() {
            return Err(format!("TYPE {name}: unexpected text {:?} after the type", c.rest()));
        }
        if !matches!(kind, "counter" | "gauge" | "histogram" | "summary" | "untyped") {
            return Err(format!("TYPE {name}: unknown type {kind:?}"));
        }
        let already = self.families.last().is_some_and(|f| f.name == name) && self.typed;
        if already {
            return Err(format!("second TYPE line for {name}"));
        }
        let f = self.family_for(name)?;
        if !f.samples.is_empty() {
            return Err(format!("TYPE line for {name} after its samples"));
        }
        f.kind = kind.to_owned();
        self.typed = true;
        Ok(())
    }

    fn sample(&mut self, line: &str) -> std::result::Result<(), String> {
        let mut c = Cursor { s: line, pos: 0 };
        let name = metric_name(&mut c);
        if name.is_empty() {
            return Err(format!("invalid metric name at {:?}", c.rest()));
        }
        let mut labels: Vec<(String, String)> = Vec::new();
        let mut blank = c.skip_blank();
        if c.peek() == Some('{') {
            c.bump();
            labels = parse_labels(&mut c)?;
            blank = c.skip_blank();
        }
        if !blank {
            return match c.peek() {
                None => Err(format!("{name}: no value")),
                Some(ch) => Err(format!("{name}: unexpected {ch:?} after the name")),
            };
        }
        let text = c.token();
        if text.is_empty() {
            return Err(format!("{name}: no value"));
        }
        let value = parse_value(text).ok_or_else(|| format!("{name}: invalid value {text:?}"))?;
        c.skip_blank();
        let ts = c.token();
        if !ts.is_empty() {
            let digits = ts.strip_prefix('-').unwrap_or(ts);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || ts.parse::<i64>().is_err() {
                return Err(format!("{name}: invalid timestamp {ts:?}"));
            }
            c.skip_blank();
            if !c.rest().is_empty() {
                return Err(format!("{name}: unexpected text {:?} after the timestamp", c.rest()));
            }
        }
        let current = self.families.last().filter(|f| belongs(&f.name, &f.kind, name)).is_some();
        if !current {
            self.family_for(name)?;
        }
        let f = self.families.last_mut().expect("a family");
        if f.kind == "histogram" && name.ends_with("_bucket") {
            match labels.iter().find(|(k, _)| k == "le") {
                None => return Err(format!("{name}: a histogram bucket without an `le` label")),
                Some((_, le)) if parse_value(le).is_none() => {
                    return Err(format!("{name}: invalid `le` value {le:?}"));
                }
                Some(_) => {}
            }
        }
        if f.kind == "summary" && name == f.name {
            match labels.iter().find(|(k, _)| k == "quantile") {
                None => return Err(format!("{name}: a summary quantile without a `quantile` label")),
                Some((_, q)) if parse_value(q).is_none() => return Err(format!("{name}: invalid quantile {q:?}")),
                Some(_) => {}
            }
        }
        f.samples.push(Sample { name: name.to_owned(), labels, value });
        Ok(())
    }
}

/// Parses `a="x",b="y"}` (the `{` already read).
fn parse_labels(c: &mut Cursor<'_>) -> std::result::Result<Vec<(String, String)>, String> {
    let mut labels: Vec<(String, String)> = Vec::new();
    loop {
        c.skip_blank();
        match c.peek() {
            Some('}') => {
                c.bump();
                return Ok(labels);
            }
            None => return Err("unterminated label set (no `}`)".into()),
            _ => {}
        }
        let name = c.take_while(|i, ch| ch.is_ascii_alphabetic() || ch == '_' || (i > 0 && ch.is_ascii_digit()));
        if name.is_empty() {
            return Err(format!("invalid label name at {:?}", c.rest()));
        }
        c.skip_blank();
        if c.bump() != Some('=') {
            return Err(format!("label {name}: expected `=`"));
        }
        c.skip_blank();
        if c.bump() != Some('"') {
            return Err(format!("label {name}: expected a quoted value"));
        }
        let mut value = String::new();
        loop {
            match c.bump() {
                None => return Err(format!("label {name}: unterminated value")),
                Some('"') => break,
                Some('\\') => match c.bump() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    Some(other) => return Err(format!("label {name}: invalid escape `\\{other}`")),
                    None => return Err(format!("label {name}: unterminated value")),
                },
                Some(ch) => value.push(ch),
            }
        }
        if labels.iter().any(|(k, _)| k == name) {
            return Err(format!("label {name} given twice"));
        }
        labels.push((name.to_owned(), value));
        c.skip_blank();
        match c.bump() {
            Some(',') => {}
            Some('}') => return Ok(labels),
            Some(ch) => return Err(format!("label {name}: expected `,` or `}}`, found {ch:?}")),
            None => return Err("unterminated label set (no `}`)".into()),
        }
    }
}

/// Parses a text exposition (what [`Registry::encode`] writes, and what other exporters write).
///
/// # Errors
/// [`crate::Error::PromParse`] naming the line and what is wrong with it.
pub fn parse(text: &str) -> Result<Vec<Family>> {
    let mut p = Parser { families: Vec::new(), typed: false, seen: std::collections::HashSet::new() };
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.trim_end_matches([' ', '\t']).is_empty() {
            continue;
        }
        let r = if trimmed.starts_with('#') { p.comment(trimmed) } else { p.sample(trimmed) };
        r.map_err(|reason| Error::PromParse { line: i + 1, reason })?;
    }
    Ok(p.families)
}
