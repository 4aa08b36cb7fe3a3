//! The gateway's counters (requests, attempts, tokens, cost, cache, refusals by key, model and
//! backend) and their rendering in Prometheus' text exposition format
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// The metric families: name, type, help.
const FAMILIES: &[(&str, &str, &str)] = &[
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

/// Counters keyed by family and label set.
#[derive(Debug, Default)]
pub struct Counters {
    values: Mutex<BTreeMap<(&'static str, String), f64>>,
}

/// Formats a label set: `{a="x",b="y"}` with Prometheus escaping.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(out, "{k}=\"{v}\"");
    }
    out.push('}');
    out
}

impl Counters {
    /// Adds `by` to a counter.
    pub fn add(&self, family: &'static str, pairs: &[(&str, &str)], by: f64) {
        *self.values.lock().unwrap_or_else(|e| e.into_inner()).entry((family, labels(pairs))).or_default() += by;
    }

    /// Sets a gauge.
    pub fn set(&self, family: &'static str, pairs: &[(&str, &str)], value: f64) {
        self.values.lock().unwrap_or_else(|e| e.into_inner()).insert((family, labels(pairs)), value);
    }

    /// A value (0 when never touched).
    pub fn get(&self, family: &'static str, pairs: &[(&str, &str)]) -> f64 {
        self.values.lock().unwrap_or_else(|e| e.into_inner()).get(&(family, labels(pairs))).copied().unwrap_or(0.0)
    }

    /// The `/metrics` page.
    pub fn render(&self) -> String {
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for ((_, l), v) in values.range((*name, String::new())..).take_while(|((f, _), _)| f == name) {
                let _ = writeln!(out, "{name}{l} {v}");
            }
        }
        out
    }
}
