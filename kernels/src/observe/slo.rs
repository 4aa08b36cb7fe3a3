//! Service-level objectives as data: error budgets, burn rates, multiwindow multi-burn-rate alerts
//! (Google, *The Site Reliability Workbook*, ch. 5 "Alerting on SLOs"), and the Prometheus recording
//! and alerting rules generated from them.
//!
//! An [`SloConfig`] (TOML, see `deploy/prometheus/slo.toml`) names a service and its Prometheus job
//! and holds up to three objectives over the metric names of the contract in [`crate::observe`]:
//!
//! | objective | SLI (bad / total) | metric |
//! |---|---|---|
//! | availability, e.g. 99.9 % over 30 days | answers with a 5xx `code` / all answers | `sovereign_http_requests_total` |
//! | latency, e.g. 99 % under 0.5 s | answers slower than the threshold / all answers | `sovereign_http_request_duration_seconds_bucket` (`le` = the threshold, one of [`LATENCY_BUCKETS`]) |
//! | token budget, e.g. 2 M tokens a day | tokens a day at the last hour's rate / the budget | `sovereign_tokens_total` |
//!
//! # The alert policy
//!
//! [`POLICY`] is the workbook's multiwindow, multi-burn-rate alerting (section 6 of ch. 5): an alert
//! condition holds when the burn rate ([`burn_rate`]: the bad ratio divided by the error budget
//! `1 - objective`) exceeds a factor over a long window *and* over a short one (1/12 of it), so a
//! page needs enough budget spent to matter and the burning still going on. Its parameters are the
//! workbook's Table 5-8 ("Recommended parameters for a 99.9% SLO alerting configuration": page at
//! 14.4× over 1 h and 5 min, 2 % of a 30-day budget; page at 6× over 6 h and 30 min, 5 %; ticket at
//! 1× over 3 days and 6 h, 10 %) plus the 3× over 1 day and 2 h ticket of the workbook's example
//! configuration in the same section (10 % of the budget, too). Each pair is one alerting rule with
//! a `for` hold (2 min, 15 min, 1 h, 3 h) that rides out one noisy evaluation.
//!
//! [`evaluate`] applies the policy to window ratios in Rust (pure, for tests and for `sovereign
//! observe burn`); [`rules_yaml`] writes the same decisions as Prometheus rules: recording rules
//! `sli:<name>:ratio_rate<window>` for each window, then the alerting rules that read them. The
//! thresholds are written as `(14.4 * (1 - 0.999))`, the very float operations [`evaluate`] does, so
//! Prometheus and Rust compare the same number.
//!
//! Rule syntax: <https://prometheus.io/docs/prometheus/latest/configuration/recording_rules/> and
//! `alerting_rules/`; range semantics of `rate()`: <https://prometheus.io/docs/prometheus/latest/querying/functions/#rate>.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use super::prom::LATENCY_BUCKETS;
use super::{HTTP_DURATION, HTTP_REQUESTS, TOKENS};
use crate::{Error, Result};

// ------------------------------------------------------------------ configuration

/// The SLOs of one service (one Prometheus job), as read from TOML.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    /// The service's name: the `service` label of the alerts and their text.
    pub service: String,
    /// The Prometheus `job` label of the service's scrape target(s).
    pub job: String,
    /// The SLO period in days (the error budget is spent over it).
    #[serde(default = "default_period_days")]
    pub period_days: u32,
    /// Routes left out of every SLI (e.g. `/metrics`, scraped every second, and health probes).
    #[serde(default)]
    pub exclude_routes: Vec<String>,
    /// The availability objective, when there is one.
    pub availability: Option<AvailabilitySlo>,
    /// The latency objective, when there is one.
    pub latency: Option<LatencySlo>,
    /// The daily token budget, when there is one.
    pub tokens: Option<TokenBudget>,
}

fn default_period_days() -> u32 {
    30
}

/// Availability: the fraction of answers that are not 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilitySlo {
    /// The objective, in (0, 1), e.g. 0.999.
    pub objective: f64,
}

/// Latency: the fraction of answers faster than a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySlo {
    /// The objective, in (0, 1), e.g. 0.99.
    pub objective: f64,
    /// The threshold in seconds: one of the histogram's bucket bounds ([`LATENCY_BUCKETS`]).
    pub threshold_seconds: f64,
}

/// A daily token budget.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBudget {
    /// Tokens a day (prompt and completion together).
    pub daily: f64,
    /// Who is told when the last hour's rate would spend more than the budget in a day.
    #[serde(default = "default_token_severity")]
    pub severity: Severity,
}

fn default_token_severity() -> Severity {
    Severity::Ticket
}

/// Who an alert goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A human now.
    Page,
    /// A ticket for working hours.
    Ticket,
}

impl Severity {
    /// `page` or `ticket` (the `severity` label).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

/// Which ratio an SLI measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sli {
    /// 5xx answers / all answers.
    Availability,
    /// Answers slower than the threshold / all answers.
    Latency,
}

impl Sli {
    /// `availability` or `latency` (the `slo` label).
    pub fn as_str(self) -> &'static str {
        match self {
            Sli::Availability => "availability",
            Sli::Latency => "latency",
        }
    }

    /// The alert's name.
    pub fn alert_name(self) -> &'static str {
        match self {
            Sli::Availability => "AvailabilityBudgetBurn",
            Sli::Latency => "LatencyBudgetBurn",
        }
    }

    /// The recording rule of this SLI's bad ratio over `window`, e.g. `sli:sovereign_http_errors:ratio_rate5m`.
    pub fn record(self, window: Window) -> String {
        let what = match self {
            Sli::Availability => "sovereign_http_errors",
            Sli::Latency => "sovereign_http_slow_requests",
        };
        format!("sli:{what}:ratio_rate{window}")
    }
}

/// The token budget's alert name.
pub const TOKEN_ALERT: &str = "TokenBudgetBurn";
/// The recording rule of the token rate (tokens per second) over the last hour.
pub const TOKEN_RATE_RECORD: &str = "sli:sovereign_tokens:rate1h";
/// How long the projected daily token use must stay over the budget before the alert fires.
pub const TOKEN_FOR: Window = Window::minutes(10);

fn cfg_err(path: &str, key: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::SloConfig { path: path.to_owned(), key: key.into(), reason: reason.into() }
}

/// The dotted key at byte `at` of a TOML text: the `[table]` above it and the key on its line.
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = text[line_start..line_end].trim();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    let key = line.split_once('=').map(|(k, _)| k.trim().trim_matches('"').to_owned());
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) if line.starts_with('[') => Some(t),
        _ => None,
    }
}

/// The `[table]` header on the line of byte `at`, if that line is one.
fn header_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?.trim();
    (line.starts_with('[') && line.ends_with(']'))
        .then(|| line.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
}

/// The first `` `word` `` of a message.
fn quoted(message: &str) -> Option<String> {
    let rest = &message[message.find('`')? + 1..];
    Some(rest[..rest.find('`')?].to_owned())
}

impl SloConfig {
    /// Parses and validates an SLO file's text (`path` only names it in errors).
    ///
    /// # Errors
    /// [`Error::SloConfig`] naming the key: a syntax error, an unknown key, a missing or mistyped
    /// one, or a value [`SloConfig::validate`] refuses.
    pub fn from_toml_str(text: &str) -> Result<SloConfig> {
        Self::parse(text, "(string)")
    }

    fn parse(text: &str, path: &str) -> Result<SloConfig> {
        let config: SloConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_owned();
            let at = e.span().map(|s| s.start);
            let key = if message.starts_with("missing field") {
                // The span is the table missing it (or the whole file).
                quoted(&message).map(|k| match at.and_then(|a| header_at(text, a)) {
                    Some(t) => format!("{t}.{k}"),
                    None => k,
                })
            } else {
                at.and_then(|a| key_at(text, a)).or_else(|| quoted(&message))
            }
            .unwrap_or_else(|| "(file)".into());
            cfg_err(path, key, message)
        })?;
        config.validate_in(path)?;
        Ok(config)
    }

    /// Reads, parses and validates an SLO file.
    ///
    /// # Errors
    /// [`Error::SloConfig`] when it cannot be read, else as [`SloConfig::from_toml_str`].
    pub fn load(path: impl AsRef<Path>) -> Result<SloConfig> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| cfg_err(&shown, "(file)", e.to_string()))?;
        Self::parse(&text, &shown)
    }

    /// Checks what types cannot: names usable as label values, objectives in (0, 1), the latency
    /// threshold a bucket bound, a positive budget, at least one objective.
    ///
    /// # Errors
    /// [`Error::SloConfig`] naming the first bad key.
    pub fn validate(&self) -> Result<()> {
        self.validate_in("(config)")
    }

    fn validate_in(&self, path: &str) -> Result<()> {
        for (key, v) in [("service", &self.service), ("job", &self.job)] {
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c)) {
                return Err(cfg_err(path, key, format!("{v:?} must be non-empty ASCII letters, digits, - _ . : /")));
            }
        }
        if self.period_days == 0 {
            return Err(cfg_err(path, "period_days", "must be at least 1"));
        }
        for (i, r) in self.exclude_routes.iter().enumerate() {
            if r.is_empty() || r.contains(['"', '\n']) {
                return Err(cfg_err(path, format!("exclude_routes[{i}]"), format!("{r:?} is empty or has a quote")));
            }
        }
        let objective_ok = |o: f64| o > 0.0 && o < 1.0;
        if let Some(a) = self.availability
            && !objective_ok(a.objective)
        {
            return Err(cfg_err(path, "availability.objective", format!("{} is not in (0, 1)", a.objective)));
        }
        if let Some(l) = self.latency {
            if !objective_ok(l.objective) {
                return Err(cfg_err(path, "latency.objective", format!("{} is not in (0, 1)", l.objective)));
            }
            if !LATENCY_BUCKETS.contains(&l.threshold_seconds) {
                return Err(cfg_err(
                    path,
                    "latency.threshold_seconds",
                    format!(
                        "{} is not a bucket bound of the latency histogram {LATENCY_BUCKETS:?}",
                        l.threshold_seconds
                    ),
                ));
            }
        }
        if let Some(t) = self.tokens
            && !(t.daily.is_finite() && t.daily > 0.0)
        {
            return Err(cfg_err(path, "tokens.daily", format!("{} is not a budget > 0", t.daily)));
        }
        if self.availability.is_none() && self.latency.is_none() && self.tokens.is_none() {
            return Err(cfg_err(path, "availability", "no objective: give [availability], [latency] or [tokens]"));
        }
        Ok(())
    }

    /// The objective of an SLI, when configured.
    pub fn objective(&self, sli: Sli) -> Option<f64> {
        match sli {
            Sli::Availability => self.availability.map(|a| a.objective),
            Sli::Latency => self.latency.map(|l| l.objective),
        }
    }

    /// The SLO period.
    pub fn period(&self) -> Window {
        Window::days(u64::from(self.period_days))
    }
}

// ------------------------------------------------------------------ windows and budgets

/// A time window (a PromQL range), in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// Its length in seconds.
    pub seconds: u64,
}

impl Window {
    /// `n` minutes.
    pub const fn minutes(n: u64) -> Window {
        Window { seconds: n * 60 }
    }

    /// `n` hours.
    pub const fn hours(n: u64) -> Window {
        Window { seconds: n * 3600 }
    }

    /// `n` days.
    pub const fn days(n: u64) -> Window {
        Window { seconds: n * 86_400 }
    }
}

impl std::fmt::Display for Window {
    /// PromQL duration syntax in the largest whole unit: `5m`, `1h`, `3d`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.seconds;
        match s {
            0 => write!(f, "0s"),
            _ if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            _ if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

/// One row of the alert policy: fire when the burn rate exceeds `burn_rate` over both windows for `hold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnAlert {
    /// Who is told.
    pub severity: Severity,
    /// The long window (enough budget spent to matter).
    pub long: Window,
    /// The short window (1/12 of the long one: still burning).
    pub short: Window,
    /// The burn-rate factor.
    pub burn_rate: f64,
    /// The `for` of the alerting rule.
    pub hold: Window,
}

// ANCHOR: policy
/// The multiwindow, multi-burn-rate policy of *The Site Reliability Workbook* ch. 5 (Table 5-8 and
/// the example configuration of section 6), for a 30-day period.
pub const POLICY: [BurnAlert; 4] = [
    BurnAlert {
        severity: Severity::Page,
        long: Window::hours(1),
        short: Window::minutes(5),
        burn_rate: 14.4,
        hold: Window::minutes(2),
    },
    BurnAlert {
        severity: Severity::Page,
        long: Window::hours(6),
        short: Window::minutes(30),
        burn_rate: 6.0,
        hold: Window::minutes(15),
    },
    BurnAlert {
        severity: Severity::Ticket,
        long: Window::days(1),
        short: Window::hours(2),
        burn_rate: 3.0,
        hold: Window::hours(1),
    },
    BurnAlert {
        severity: Severity::Ticket,
        long: Window::days(3),
        short: Window::hours(6),
        burn_rate: 1.0,
        hold: Window::hours(3),
    },
];
// ANCHOR_END: policy

/// Every window the policy reads, shortest first (one recording rule each).
pub fn windows() -> Vec<Window> {
    let mut w: Vec<Window> = POLICY.iter().flat_map(|a| [a.long, a.short]).collect();
    w.sort();
    w.dedup();
    w
}

/// The error budget of an objective: the fraction of events allowed to be bad (`1 - objective`).
pub fn error_budget(objective: f64) -> f64 {
    1.0 - objective
}

// ANCHOR: burn_rate
/// The burn rate of `bad` out of `total` events: `bad/total / (1 - objective)`; 1 spends the budget
/// exactly over the period. No events burn nothing (0).
pub fn burn_rate(bad: f64, total: f64, objective: f64) -> f64 {
    if total <= 0.0 { 0.0 } else { bad / total / error_budget(objective) }
}

/// The fraction of the period's error budget spent by burning at `burn_rate` for `window`.
pub fn budget_consumed(burn_rate: f64, window: Window, period: Window) -> f64 {
    burn_rate * window.seconds as f64 / period.seconds as f64
}
// ANCHOR_END: burn_rate

/// How long the whole budget lasts at `burn_rate` (seconds; infinite for a rate ≤ 0).
pub fn time_to_exhaustion(burn_rate: f64, period: Window) -> f64 {
    if burn_rate <= 0.0 { f64::INFINITY } else { period.seconds as f64 / burn_rate }
}

// ------------------------------------------------------------------ evaluation

/// What Prometheus would hold at one instant: each SLI's bad ratio per window, and the token rate.
/// A window without a value (no traffic, no data) is absent, as an empty PromQL vector is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// Bad/total of [`Sli::Availability`] per window.
    pub availability: BTreeMap<Window, f64>,
    /// Bad/total of [`Sli::Latency`] per window.
    pub latency: BTreeMap<Window, f64>,
    /// Tokens per second over the last hour.
    pub tokens_per_second_1h: Option<f64>,
}

impl Observation {
    /// The ratios of an SLI.
    pub fn ratios(&self, sli: Sli) -> &BTreeMap<Window, f64> {
        match sli {
            Sli::Availability => &self.availability,
            Sli::Latency => &self.latency,
        }
    }
}

/// How an alerting rule's condition is checked in Rust.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Condition {
    /// Both windows' bad ratio above `burn * (1 - objective)`.
    Burn { sli: Sli, long: Window, short: Window, burn: f64, objective: f64 },
    /// The 1 h token rate times a day above the budget.
    Tokens { daily: f64 },
}

/// One alerting rule: what Prometheus evaluates and what [`evaluate`] checks.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// The alert's name (`alertname`).
    pub alert: &'static str,
    /// Its PromQL.
    pub expr: String,
    /// Its `for`.
    pub hold: Window,
    /// Its labels (`service`, `slo`, `severity` and, for burn rates, `window` = `long/short`);
    /// the alert also carries the `job` of the expression.
    pub labels: Vec<(&'static str, String)>,
    /// Its annotations (`summary`, `description`; plain text, no templates).
    pub annotations: Vec<(&'static str, String)>,
    condition: Condition,
}

impl AlertRule {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// One alert condition that holds (its rule is pending, or firing once held for the rule's `for`).
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// The rule.
    pub rule: AlertRule,
    /// The alert's value: the long window's ratio, or the tokens per second.
    pub value: f64,
}

/// A float as PromQL and Prometheus' `le` labels write it (`0.5`, `1`, `2.5`).
fn num(x: f64) -> String {
    format!("{x}")
}

fn percent(x: f64) -> String {
    let s = format!("{:.4}", x * 100.0);
    format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
}

/// Every alerting rule of `config`: per SLI one per [`POLICY`] row, then the token budget's.
pub fn alert_rules(config: &SloConfig) -> Vec<AlertRule> {
    let mut out = Vec::new();
    let period = config.period();
    let sel = format!("{{job=\"{}\"}}", config.job);
    for sli in [Sli::Availability, Sli::Latency] {
        let Some(objective) = config.objective(sli) else { continue };
        let what = match (sli, config.latency) {
            (Sli::Latency, Some(l)) => format!("slower than {} s", num(l.threshold_seconds)),
            _ => "5xx".to_owned(),
        };
        for a in &POLICY {
            let t = format!("({} * (1 - {}))", num(a.burn_rate), num(objective));
            let window = format!("{}/{}", a.long, a.short);
            let summary = format!(
                "{} {} SLO: error budget burning at over {}x over {} and {}",
                config.service,
                sli.as_str(),
                num(a.burn_rate),
                a.long,
                a.short
            );
            let description = format!(
                "Over both the last {} and the last {}, more than {} of the answers of job {} were {what} \
                 (objective {}, error budget {} over {} days): at that rate {} of the budget goes in {}.",
                a.long,
                a.short,
                percent(a.burn_rate * error_budget(objective)),
                config.job,
                percent(objective),
                percent(error_budget(objective)),
                config.period_days,
                percent(budget_consumed(a.burn_rate, a.long, period)),
                a.long,
            );
            out.push(AlertRule {
                alert: sli.alert_name(),
                expr: format!("{}{sel} > {t}\nand\n{}{sel} > {t}", sli.record(a.long), sli.record(a.short)),
                hold: a.hold,
                labels: vec![
                    ("service", config.service.clone()),
                    ("slo", sli.as_str().to_owned()),
                    ("severity", a.severity.as_str().to_owned()),
                    ("window", window),
                ],
                annotations: vec![("summary", summary), ("description", description)],
                condition: Condition::Burn { sli, long: a.long, short: a.short, burn: a.burn_rate, objective },
            });
        }
    }
    if let Some(t) = config.tokens {
        let summary = format!("{} would use more than its daily token budget at the last hour's rate", config.service);
        let description = format!(
            "Job {} processed tokens over the last hour at a rate that, kept up for a day, is over its budget of {} tokens a day.",
            config.job,
            num(t.daily)
        );
        out.push(AlertRule {
            alert: TOKEN_ALERT,
            expr: format!("{TOKEN_RATE_RECORD}{sel} * 86400 > {}", num(t.daily)),
            hold: TOKEN_FOR,
            labels: vec![
                ("service", config.service.clone()),
                ("slo", "tokens".to_owned()),
                ("severity", t.severity.as_str().to_owned()),
            ],
            annotations: vec![("summary", summary), ("description", description)],
            condition: Condition::Tokens { daily: t.daily },
        });
    }
    out
}

/// Which alert conditions of `config` hold for `observed`, in rule order ([`alert_rules`]).
/// Comparisons are strict, as PromQL's `>`; a window without a value holds no condition.
pub fn evaluate(config: &SloConfig, observed: &Observation) -> Vec<Firing> {
    alert_rules(config)
        .into_iter()
        .filter_map(|rule| {
            let value = match rule.condition {
                Condition::Burn { sli, long, short, burn, objective } => {
                    // The very operations the rule's `(burn * (1 - objective))` does.
                    let t = burn * (1.0 - objective);
                    let ratios = observed.ratios(sli);
                    let (&l, &s) = (ratios.get(&long)?, ratios.get(&short)?);
                    (l > t && s > t).then_some(l)?
                }
                Condition::Tokens { daily } => {
                    let rate = observed.tokens_per_second_1h?;
                    (rate * 86_400.0 > daily).then_some(rate)?
                }
            };
            Some(Firing { rule, value })
        })
        .collect()
}

// ------------------------------------------------------------------ Prometheus rules

/// `s` as a regular expression matching exactly `s` (RE2 metacharacters escaped).
fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The label matchers of every SLI series: the job, minus the excluded routes.
fn matchers(config: &SloConfig, extra: &str) -> String {
    let mut m = format!("job=\"{}\"", config.job);
    if !config.exclude_routes.is_empty() {
        let re: Vec<String> = config.exclude_routes.iter().map(|r| regex_literal(r)).collect();
        // Inside a PromQL string a backslash is written twice.
        let _ = write!(m, ",route!~\"{}\"", re.join("|").replace('\\', "\\\\"));
    }
    if !extra.is_empty() {
        m.push(',');
        m.push_str(extra);
    }
    m
}

/// The PromQL of an SLI's bad ratio over `window` (`None` when `config` has no such objective).
pub fn sli_expr(config: &SloConfig, sli: Sli, window: Window) -> Option<String> {
    let sum =
        |metric: &str, extra: &str| format!("sum by (job) (rate({metric}{{{}}}[{window}]))", matchers(config, extra));
    match sli {
        Sli::Availability => {
            config.availability?;
            let bad = sum(HTTP_REQUESTS, "code=~\"5..\"");
            let total = sum(HTTP_REQUESTS, "");
            // No 5xx series yet is a ratio of 0, not an empty vector.
            Some(format!("(\n  {bad}\n  or\n  0 * {total}\n)\n/\n{total}"))
        }
        Sli::Latency => {
            let l = config.latency?;
            let bucket = format!("{HTTP_DURATION}_bucket");
            let total = sum(&bucket, "le=\"+Inf\"");
            let fast = sum(&bucket, &format!("le=\"{}\"", num(l.threshold_seconds)));
            Some(format!("(\n  {total}\n  -\n  {fast}\n)\n/\n{total}"))
        }
    }
}

/// The PromQL of the token rate (tokens per second over the last hour).
pub fn token_rate_expr(config: &SloConfig) -> String {
    format!("sum by (job) (rate({TOKENS}{{job=\"{}\"}}[1h]))", config.job)
}

/// A YAML double-quoted string.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Appends `key: |-` and the indented block.
fn block(out: &mut String, indent: &str, key: &str, text: &str) {
    let _ = writeln!(out, "{indent}{key}: |-");
    for line in text.lines() {
        let _ = writeln!(out, "{indent}  {line}");
    }
}

/// The Prometheus rule file of `config`: one group `slo:<service>` holding the recording rules of
/// every SLI and window, then the alerting rules of [`alert_rules`].
pub fn rules_yaml(config: &SloConfig) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Prometheus rules for the SLOs of `{}`, generated by kernels::observe::slo::rules_yaml\n\
         # (`sovereign observe rules --slo FILE`): do not edit, regenerate.\n\
         # Alert policy: The Site Reliability Workbook, ch. 5 \"Alerting on SLOs\", Table 5-8 and section 6.",
        config.service
    );
    let _ = writeln!(out, "groups:\n  - name: {}\n    rules:", quote(&format!("slo:{}", config.service)));
    let ind = "      ";
    let inner = "        ";
    for sli in [Sli::Availability, Sli::Latency] {
        for w in windows() {
            let Some(expr) = sli_expr(config, sli, w) else { continue };
            let _ = writeln!(out, "{ind}- record: {}", sli.record(w));
            block(&mut out, inner, "expr", &expr);
        }
    }
    if config.tokens.is_some() {
        let _ = writeln!(out, "{ind}- record: {TOKEN_RATE_RECORD}");
        block(&mut out, inner, "expr", &token_rate_expr(config));
    }
    for rule in alert_rules(config) {
        let _ = writeln!(out, "{ind}- alert: {}", rule.alert);
        block(&mut out, inner, "expr", &rule.expr);
        let _ = writeln!(out, "{inner}for: {}", rule.hold);
        for (key, pairs) in [("labels", &rule.labels), ("annotations", &rule.annotations)] {
            let _ = writeln!(out, "{inner}{key}:");
            for (k, v) in pairs {
                let _ = writeln!(out, "{inner}  {k}: {}", quote(v));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_window(w: Window, want: &str) {
        assert_eq!(w.to_string(), want);
    }

    #[test]
    fn windows_print_as_promql_durations() {
        for (w, want) in [
            (Window::minutes(5), "5m"),
            (Window::minutes(90), "90m"),
            (Window::hours(1), "1h"),
            (Window::hours(24), "1d"),
            (Window::days(3), "3d"),
            (Window { seconds: 61 }, "61s"),
        ] {
            check_window(w, want);
        }
        assert_eq!(
            windows().iter().map(|w| w.to_string()).collect::<Vec<_>>(),
            ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
        );
    }

    #[test]
    fn regex_literals_escape_re2_metacharacters() {
        for (s, want) in [("/metrics", "/metrics"), ("/v1/models/{id}", r"/v1/models/\{id\}"), ("a.b|c", r"a\.b\|c")] {
            assert_eq!(regex_literal(s), want);
        }
    }
}
