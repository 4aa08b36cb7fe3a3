//! Request counters and their rendering in Prometheus' text exposition format.
//!
//! Format: <https://prometheus.io/docs/instrumenting/exposition_formats/>
//! (`# HELP`, `# TYPE`, then `name{label="value"} number` lines).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use super::engine::EngineStats;

/// Requests served, by endpoint and HTTP status.
#[derive(Debug, Default)]
pub struct RequestCounters {
    by_route: Mutex<BTreeMap<(String, u16), u64>>,
}

impl RequestCounters {
    /// Counts one answered request.
    pub fn record(&self, endpoint: &str, status: u16) {
        *self.by_route.lock().unwrap_or_else(|e| e.into_inner()).entry((endpoint.to_owned(), status)).or_default() += 1;
    }

    /// Requests answered on `endpoint` with `status` so far.
    pub fn get(&self, endpoint: &str, status: u16) -> u64 {
        self.by_route
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(endpoint.to_owned(), status))
            .copied()
            .unwrap_or(0)
    }
}

/// The `/metrics` page.
pub fn render(requests: &RequestCounters, engine: Option<&EngineStats>, embedded_texts: u64) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in lines {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let by_route = requests.by_route.lock().unwrap_or_else(|e| e.into_inner()).clone();
    metric(
        "sovereign_requests_total",
        "counter",
        "HTTP requests answered, by endpoint and status.",
        by_route
            .iter()
            .map(|((endpoint, status), n)| (format!("{{endpoint=\"{endpoint}\",status=\"{status}\"}}"), n.to_string()))
            .collect(),
    );
    metric(
        "sovereign_embedded_texts_total",
        "counter",
        "Texts embedded by /v1/embeddings.",
        vec![(String::new(), embedded_texts.to_string())],
    );
    if let Some(s) = engine {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed).to_string();
        metric(
            "sovereign_prompt_tokens_total",
            "counter",
            "Prompt tokens processed.",
            vec![(String::new(), load(&s.prompt_tokens))],
        );
        metric(
            "sovereign_generated_tokens_total",
            "counter",
            "Tokens generated.",
            vec![(String::new(), load(&s.generated_tokens))],
        );
        metric(
            "sovereign_decode_steps_total",
            "counter",
            "Batched decoding steps run.",
            vec![(String::new(), load(&s.steps))],
        );
        metric(
            "sovereign_sequences_finished_total",
            "counter",
            "Sequences finished.",
            vec![(String::new(), load(&s.finished))],
        );
        metric(
            "sovereign_active_sequences",
            "gauge",
            "Sequences in the running batch.",
            vec![(String::new(), s.active.load(Ordering::Relaxed).to_string())],
        );
        metric(
            "sovereign_max_batch_size",
            "gauge",
            "The most sequences one decoding step has run.",
            vec![(String::new(), s.max_batch.load(Ordering::Relaxed).to_string())],
        );
    }
    out
}
