//! The gateway's metrics in one [`prom::Registry`]: the contract families of [`crate::observe`]
//! (`sovereign_build_info{component="gateway"}`, HTTP requests by route, model and code, their
//! duration, requests in flight, tokens by model and kind) and its own `sovereign_gateway_*` families
//! (requests, attempts, tokens, cost, cache, refusals by key, model and backend; backend health,
//! breakers), in Prometheus' text exposition format
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>).
//!
//! [`Counters`] keeps its string-keyed API: families of [`FAMILIES`] are registered on first use with
//! the label names of that use, and the legacy names `gateway_*` stand for `sovereign_gateway_*`.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::observe::{self, prom};

/// The metric families: name (`gateway_*` is exported as `sovereign_gateway_*`), type, help.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    ("gateway_requests_total", "counter", "Client requests answered, by key, model, endpoint and status."),
    ("gateway_upstream_attempts_total", "counter", "Attempts sent to backends, by backend and outcome."),
    ("gateway_tokens_total", "counter", "Tokens used, by key, model and kind (prompt, completion)."),
    ("gateway_cost_usd_total", "counter", "Cost in USD at the backends' prices, by key and model."),
    ("gateway_cache_total", "counter", "Semantic-cache lookups, by result (exact, semantic, miss)."),
    ("gateway_refusals_total", "counter", "Requests refused before routing, by key and code."),
    ("gateway_streams_interrupted_total", "counter", "Streams cut by a backend after bytes were relayed."),
    ("gateway_backend_up", "gauge", "1 when the backend's last health check passed."),
    ("gateway_backend_outstanding", "gauge", "Requests in flight to the backend."),
    ("gateway_breaker_state", "gauge", "Circuit breaker: 0 closed, 1 half-open, 2 open."),
    ("sovereign_gateway_spillovers_total", "counter", "Requests sent to a cheaper backend as a cost budget was spent."),
    ("sovereign_requests_shed_total", "counter", "Requests refused by overload control, by reason and priority."),
    ("sovereign_gateway_canary_state", "gauge", "Canary rollout per model: 0 rolling out, 1 promoted, 2 rolled back."),
    ("sovereign_gateway_canary_percent", "gauge", "The canary's share of the model's traffic, in percent."),
    ("sovereign_gateway_canary_requests_total", "counter", "Requests of canaried models, by model, arm and outcome."),
];

/// The exported name of `family`: `gateway_*` gets the `sovereign_` prefix.
pub fn exported_name(family: &str) -> String {
    if family.starts_with("gateway_") { format!("sovereign_{family}") } else { family.to_owned() }
}

/// A registered family of [`Counters`].
#[derive(Debug, Clone)]
enum Handle {
    Counter(prom::CounterVec),
    Gauge(prom::GaugeVec),
}

/// The gateway's metrics, keyed by family name and label pairs.
#[derive(Debug)]
pub struct Counters {
    /// The registry `/metrics` encodes.
    pub registry: prom::Registry,
    /// `sovereign_http_requests_total{route, model, code}`.
    pub http_requests: prom::CounterVec,
    /// `sovereign_http_request_duration_seconds{route, model}`.
    pub http_duration: prom::HistogramVec,
    /// `sovereign_http_requests_in_flight`.
    pub in_flight: prom::Gauge,
    /// `sovereign_tokens_total{model, kind}`.
    pub tokens: prom::CounterVec,
    families: Mutex<HashMap<&'static str, (Vec<String>, Handle)>>,
}

impl Default for Counters {
    fn default() -> Self {
        let r = prom::Registry::new();
        r.build_info("gateway");
        let observe::HttpFamilies { requests: http_requests, duration: http_duration, in_flight } =
            observe::HttpFamilies::register(&r, observe::HTTP_DURATION_HELP);
        let tokens =
            r.counter(observe::TOKENS, "Tokens processed, by model and kind (prompt, completion).", &["model", "kind"]);
        Counters { registry: r, http_requests, http_duration, in_flight, tokens, families: Mutex::default() }
    }
}

/// Formats a label set: `{a="x",b="y"}` with Prometheus escaping.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        out.push_str(&prom::escape_label_value(v));
        out.push('"');
    }
    out.push('}');
    out
}

impl Counters {
    /// The family `family` with the label names of `pairs` (None when it was registered with others,
    /// or is not one of [`FAMILIES`]).
    fn family(&self, family: &'static str, pairs: &[(&str, &str)]) -> Option<Handle> {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((names, v)) = families.get(family) {
            return names.iter().map(String::as_str).eq(pairs.iter().map(|p| p.0)).then(|| v.clone());
        }
        let (_, kind, help) = FAMILIES.iter().find(|f| f.0 == family)?;
        let names: Vec<&str> = pairs.iter().map(|p| p.0).collect();
        let name = exported_name(family);
        let v = if *kind == "gauge" {
            Handle::Gauge(self.registry.gauge(&name, help, &names))
        } else {
            Handle::Counter(self.registry.counter(&name, help, &names))
        };
        families.insert(family, (names.iter().map(|s| (*s).to_owned()).collect(), v.clone()));
        Some(v)
    }

    /// Adds `by` to a counter (the contract's requests and tokens follow the gateway's own).
    pub fn add(&self, family: &'static str, pairs: &[(&str, &str)], by: f64) {
        let values: Vec<&str> = pairs.iter().map(|p| p.1).collect();
        match self.family(family, pairs) {
            Some(Handle::Counter(c)) => c.with(&values).inc_by(by),
            Some(Handle::Gauge(g)) => g.with(&values).add(by),
            None => debug_assert!(false, "metric {family} used with other labels or not declared"),
        }
        let label = |name: &str| pairs.iter().find(|p| p.0 == name).map_or("", |p| p.1);
        match family {
            "gateway_requests_total" => {
                self.http_requests.with(&[label("endpoint"), label("model"), label("status")]).inc_by(by);
            }
            "gateway_tokens_total" => self.tokens.with(&[label("model"), label("kind")]).inc_by(by),
            _ => {}
        }
    }

    /// Sets a gauge.
    pub fn set(&self, family: &'static str, pairs: &[(&str, &str)], value: f64) {
        let values: Vec<&str> = pairs.iter().map(|p| p.1).collect();
        match self.family(family, pairs) {
            Some(Handle::Gauge(g)) => g.with(&values).set(value),
            Some(Handle::Counter(c)) => c.with(&values).inc_by(value - c.with(&values).get()),
            None => debug_assert!(false, "metric {family} used with other labels or not declared"),
        }
    }

    /// A value (0 when never touched).
    pub fn get(&self, family: &'static str, pairs: &[(&str, &str)]) -> f64 {
        let values: Vec<&str> = pairs.iter().map(|p| p.1).collect();
        match self.family(family, pairs) {
            Some(Handle::Gauge(g)) => g.with(&values).get(),
            Some(Handle::Counter(c)) => c.with(&values).get(),
            None => 0.0,
        }
    }

    /// The `/metrics` page.
    pub fn render(&self) -> String {
        self.registry.encode()
    }
}
