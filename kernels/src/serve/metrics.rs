//! The OpenAI-compatible server's metrics: one [`prom::Registry`] with the contract families of
//! [`crate::observe`] (requests, durations, in-flight, tokens, queue depth, shed requests,
//! build info) and the engine's own `sovereign_engine_*` families, served on `GET /metrics` in
//! Prometheus' text format (<https://prometheus.io/docs/instrumenting/exposition_formats/>).

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use super::engine::EngineStats;
use crate::observe::{self, prom};

/// Every metric of one server.
#[derive(Debug)]
pub struct ServeMetrics {
    /// The registry `/metrics` encodes.
    pub registry: prom::Registry,
    /// `sovereign_http_requests_total{route, model, code}`.
    pub requests: prom::CounterVec,
    /// `sovereign_http_request_duration_seconds{route, model}`.
    pub duration: prom::HistogramVec,
    /// `sovereign_http_requests_in_flight`.
    pub in_flight: prom::Gauge,
    /// `sovereign_tokens_total{model, kind}` (`prompt`, `completion`).
    pub tokens: prom::CounterVec,
    /// `sovereign_queue_depth{queue}`.
    pub queue_depth: prom::GaugeVec,
    /// `sovereign_queue_depth{queue="engine"}`: sequences admitted, not yet prefilled.
    pub engine_queue: prom::Gauge,
    /// `sovereign_requests_shed_total{reason, priority}`.
    pub shed: prom::CounterVec,
    /// `sovereign_engine_embedded_texts_total`.
    pub embedded_texts: prom::Counter,
    /// `sovereign_engine_decode_steps_total`.
    pub decode_steps: prom::Counter,
    /// `sovereign_engine_sequences_finished_total`.
    pub sequences_finished: prom::Counter,
    /// `sovereign_engine_active_sequences`.
    pub active_sequences: prom::Gauge,
    /// `sovereign_engine_max_batch_size`.
    pub max_batch_size: prom::Gauge,
    /// Serialises the copy of the engine's counters into the registry.
    sync: Mutex<()>,
}

impl Default for ServeMetrics {
    fn default() -> Self {
        ServeMetrics::new()
    }
}

/// Raises `counter` to `total` (the engine's counters only grow).
fn catch_up(counter: &prom::Counter, total: u64) {
    let d = total as f64 - counter.get();
    if d > 0.0 {
        counter.inc_by(d);
    }
}

impl ServeMetrics {
    /// The families, registered (build info says `component="serve"`).
    pub fn new() -> ServeMetrics {
        let r = prom::Registry::new();
        r.build_info("serve");
        let observe::HttpFamilies { requests, duration, in_flight } =
            observe::HttpFamilies::register(&r, observe::HTTP_DURATION_HELP);
        let tokens =
            r.counter(observe::TOKENS, "Tokens processed, by model and kind (prompt, completion).", &["model", "kind"]);
        let queue_depth = r.gauge(observe::QUEUE_DEPTH, "Work admitted but not started, by queue.", &["queue"]);
        let engine_queue = queue_depth.with(&["engine"]);
        let shed = r.counter(
            observe::SHED,
            "Requests refused by overload control, by reason and priority.",
            &["reason", "priority"],
        );
        let embedded_texts =
            r.counter("sovereign_engine_embedded_texts_total", "Texts embedded by /v1/embeddings.", &[]).with(&[]);
        let decode_steps =
            r.counter("sovereign_engine_decode_steps_total", "Batched decoding steps run.", &[]).with(&[]);
        let sequences_finished =
            r.counter("sovereign_engine_sequences_finished_total", "Sequences finished.", &[]).with(&[]);
        let active_sequences =
            r.gauge("sovereign_engine_active_sequences", "Sequences in the running batch.", &[]).with(&[]);
        let max_batch_size =
            r.gauge("sovereign_engine_max_batch_size", "The most sequences one decoding step has run.", &[]).with(&[]);
        ServeMetrics {
            registry: r,
            requests,
            duration,
            in_flight,
            tokens,
            queue_depth,
            engine_queue,
            shed,
            embedded_texts,
            decode_steps,
            sequences_finished,
            active_sequences,
            max_batch_size,
            sync: Mutex::new(()),
        }
    }

    /// Counts one answered request and its duration.
    pub fn record(&self, route: &str, model: &str, code: u16, seconds: f64) {
        let mut buf = [0u8; 5];
        self.requests.with(&[route, model, code_str(code, &mut buf)]).inc();
        self.duration.with(&[route, model]).observe(seconds);
    }

    /// Requests answered on `route` for `model` with `code` so far.
    pub fn requests(&self, route: &str, model: &str, code: u16) -> f64 {
        let mut buf = [0u8; 5];
        self.requests.with(&[route, model, code_str(code, &mut buf)]).get()
    }

    /// Copies the engine's counters (of the chat model `model`) into the registry.
    pub fn sync_engine(&self, model: &str, stats: &EngineStats) {
        let _guard = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        catch_up(&self.tokens.with(&[model, "prompt"]), stats.prompt_tokens.load(Ordering::Relaxed));
        catch_up(&self.tokens.with(&[model, "completion"]), stats.generated_tokens.load(Ordering::Relaxed));
        catch_up(&self.decode_steps, stats.steps.load(Ordering::Relaxed));
        catch_up(&self.sequences_finished, stats.finished.load(Ordering::Relaxed));
        self.active_sequences.set(stats.active.load(Ordering::Relaxed) as f64);
        self.max_batch_size.set(stats.max_batch.load(Ordering::Relaxed) as f64);
    }

    /// The `/metrics` page (after [`ServeMetrics::sync_engine`] when there is an engine).
    pub fn render(&self, engine: Option<(&str, &EngineStats)>) -> String {
        if let Some((model, stats)) = engine {
            self.sync_engine(model, stats);
        }
        let mut out = String::with_capacity(8 << 10);
        self.registry.encode_into(&mut out);
        out
    }
}

/// A status code's decimal digits, without allocating.
fn code_str(code: u16, buf: &mut [u8; 5]) -> &str {
    let mut n = code;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}
