//! Production observability (feature `observe`): the metrics, traces, logs and controls every server shares.
//!
//! | module | what it does |
//! |---|---|
//! | [`prom`] | a metric registry (counters, gauges, histograms with labels) and Prometheus' text exposition format, plus a parser of it |
//! | [`trace`] | W3C trace context (`traceparent`), spans per request with `tracing`, JSON-lines logs |
//! | [`slo`] | SLOs as data: error budgets, burn rates, multiwindow alerts, and the Prometheus recording and alerting rules generated from them |
//! | [`shed`] | load shedding by priority (a token bucket with reserves) and bounded admission |
//! | [`canary`] | a canary controller: a percentage of traffic to a new version, judged against SLOs over a window, rolled back automatically |
//!
//! # Metric names (the contract between the servers, the rules and the dashboards)
//!
//! Every server registers these in one [`prom::Registry`] and serves it on `GET /metrics`. Names
//! follow Prometheus' conventions (base units, `_total` for counters, `_seconds` for durations):
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `sovereign_build_info` | gauge | `component`, `version` | always 1; which binary and version answers |
//! | `sovereign_http_requests_total` | counter | `route`, `model`, `code` | requests answered (`code` is the HTTP status, `model` empty when none) |
//! | `sovereign_http_request_duration_seconds` | histogram | `route`, `model` | arrival to last byte of the answer head ([`prom::LATENCY_BUCKETS`]) |
//! | `sovereign_http_requests_in_flight` | gauge | | requests being answered now |
//! | `sovereign_tokens_total` | counter | `model`, `kind` | tokens processed, `kind` = `prompt` or `completion` |
//! | `sovereign_queue_depth` | gauge | `queue` | work admitted but not started (`queue` = `engine`, `batcher`) |
//! | `sovereign_requests_shed_total` | counter | `reason`, `priority` | requests refused by overload control (`queue_full`, `deadline_unreachable`, `deadline`, `kv_budget`, `priority`) |
//!
//! Servers add their own families under their own prefix (`sovereign_engine_*`, `sovereign_model_*`,
//! `sovereign_gateway_*`).

pub mod canary;
pub mod prom;
pub mod shed;
pub mod slo;
pub mod trace;

/// `sovereign_build_info`.
pub const BUILD_INFO: &str = "sovereign_build_info";
/// `sovereign_http_requests_total`.
pub const HTTP_REQUESTS: &str = "sovereign_http_requests_total";
/// `sovereign_http_request_duration_seconds`.
pub const HTTP_DURATION: &str = "sovereign_http_request_duration_seconds";
/// `sovereign_http_requests_in_flight`.
pub const HTTP_IN_FLIGHT: &str = "sovereign_http_requests_in_flight";
/// `sovereign_tokens_total`.
pub const TOKENS: &str = "sovereign_tokens_total";
/// `sovereign_queue_depth`.
pub const QUEUE_DEPTH: &str = "sovereign_queue_depth";
/// `sovereign_requests_shed_total`.
pub const SHED: &str = "sovereign_requests_shed_total";

/// The contract's HTTP families of one server: requests, their duration and the in-flight gauge.
#[derive(Debug, Clone)]
pub struct HttpFamilies {
    /// `sovereign_http_requests_total{route, model, code}`.
    pub requests: prom::CounterVec,
    /// `sovereign_http_request_duration_seconds{route, model}`.
    pub duration: prom::HistogramVec,
    /// `sovereign_http_requests_in_flight`.
    pub in_flight: prom::Gauge,
}

impl HttpFamilies {
    /// Registers the three families in `registry`; `duration_help` is the duration's `# HELP` text.
    pub fn register(registry: &prom::Registry, duration_help: &str) -> HttpFamilies {
        let requests = registry.counter(
            HTTP_REQUESTS,
            "HTTP requests answered, by route, model and status code.",
            &["route", "model", "code"],
        );
        let duration = registry.histogram(HTTP_DURATION, duration_help, &["route", "model"], &prom::LATENCY_BUCKETS);
        let in_flight = registry.gauge(HTTP_IN_FLIGHT, "Requests being answered now.", &[]).with(&[]);
        HttpFamilies { requests, duration, in_flight }
    }
}

/// Counts a request in flight from [`InFlight::enter`] until dropped (answered or abandoned).
#[derive(Debug)]
pub struct InFlight(prom::Gauge);

impl InFlight {
    /// Adds one to `gauge`; the drop takes it back.
    pub fn enter(gauge: &prom::Gauge) -> InFlight {
        gauge.add(1.0);
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.add(-1.0);
    }
}

/// The help text of `sovereign_http_request_duration_seconds` on `serve` and the gateway.
pub const HTTP_DURATION_HELP: &str = "Time from a request's arrival to its answer's head, by route and model.";
