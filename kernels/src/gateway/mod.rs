//! An OpenAI-compatible gateway in front of several backends (feature `gateway`): routing, failover,
//! circuit breakers, API keys, rate limits and budgets, privacy tiers and a semantic cache.
//!
//! | route | what it does |
//! |---|---|
//! | `POST /v1/chat/completions` | proxied (streaming relayed event by event); cacheable ([`cache`]) |
//! | `POST /v1/completions`, `POST /v1/embeddings` | proxied |
//! | `GET /v1/models` | the models the caller's tier can reach |
//! | `GET /health` | per-backend health and breaker state; 503 when no backend is healthy |
//! | `GET /metrics` | [`metrics`] in Prometheus' text format (no key needed: scrape it on loopback) |
//!
//! A request goes through, in order: the API key (`Authorization: Bearer`, [`limits::find_key`];
//! 401 `invalid_api_key`), the key's budgets and rate limits (429 `budget_exceeded` /
//! `rate_limit_exceeded` with `Retry-After`), the privacy tier ([`route::eligible`]: 404
//! `model_not_found` when no backend serves the model, 403 `tier_not_permitted` when none does
//! within the key's tier; no network call is made before this check), the cache, then attempts on
//! the eligible backends in the order of the model's [`config::Policy`], skipping unhealthy ones and
//! those whose [`breaker`] is open. A connect error, a timeout, a 5xx or a 429 (and, for a stream,
//! a failure before its first event) moves on to the next backend after a full-jitter backoff
//! ([`route::backoff_ms`]), up to `retry.max_attempts`. Once an event of a stream was relayed, a
//! broken stream is never retried: the client gets an OpenAI-shaped error event
//! (`code: "upstream_stream_interrupted"`) and no `[DONE]`. Token usage is read from the answers
//! (for streams the gateway asks the backend for `stream_options.include_usage` and drops the usage
//! chunk again if the client did not ask for it) and charged to the key and to `/metrics`.

pub mod breaker;
pub mod cache;
pub mod config;
pub mod controls;
pub mod fault;
pub mod limits;
pub mod metrics;
pub mod route;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub use breaker::{BreakerState, CircuitBreaker, Clock};
pub use cache::SemanticCache;
pub use config::{GatewayConfig, Policy, Tier, hash_key};

use crate::{Error, Result};
use limits::{KeyState, Refusal};
use route::{Candidate, NoRoute};

const CHAT: &str = "/v1/chat/completions";
const COMPLETIONS: &str = "/v1/completions";
const EMBEDDINGS: &str = "/v1/embeddings";

struct Backend {
    config: config::BackendConfig,
    bearer: Option<String>,
    breaker: Mutex<CircuitBreaker>,
    outstanding: AtomicUsize,
    healthy: AtomicBool,
}

/// The gateway's state: configuration, backends, keys, cache, counters.
pub struct Gateway {
    config: GatewayConfig,
    backends: Vec<Backend>,
    keys: Vec<Mutex<KeyState>>,
    key_hashes: Vec<blake3::Hash>,
    client: reqwest::Client,
    clock: Clock,
    cache: Option<Arc<SemanticCache>>,
    /// Cost spill-over, load shedding and canaries ([`controls`]).
    pub controls: controls::Controls,
    /// The counters behind `/metrics`.
    pub metrics: metrics::Counters,
}

impl Gateway {
    /// A gateway over a validated `config`, timed by `clock`, with `cache` when given (see
    /// [`Gateway::from_config`] to load the configured one).
    ///
    /// # Errors
    /// [`Error::GatewayConfig`] for an invalid config, or when the HTTP client cannot be built or an
    /// `api_key_env` variable is unset.
    pub fn new(config: GatewayConfig, clock: Clock, cache: Option<SemanticCache>) -> Result<Arc<Gateway>> {
        config.validate()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .build()
            .map_err(|e| Error::GatewayConfig(format!("building the HTTP client: {e}")))?;
        let mut backends = Vec::new();
        for (i, b) in config.backends.iter().enumerate() {
            let bearer = match &b.api_key_env {
                Some(var) => Some(
                    std::env::var(var)
                        .map_err(|_| Error::GatewayConfig(format!("backends[{i}].api_key_env: ${var} is not set")))?,
                ),
                None => None,
            };
            backends.push(Backend {
                config: b.clone(),
                bearer,
                breaker: Mutex::new(CircuitBreaker::new(config.breaker)),
                outstanding: AtomicUsize::new(0),
                healthy: AtomicBool::new(true),
            });
        }
        let now = clock.now_ms();
        let keys: Vec<Mutex<KeyState>> =
            config.keys.iter().map(|k| Mutex::new(KeyState::new(k.clone(), now))).collect();
        let key_hashes = keys.iter().map(|k| k.lock().unwrap_or_else(|e| e.into_inner()).hash()).collect();
        let controls = controls::Controls::new(&config, &clock)?;
        let gateway = Gateway {
            controls,
            backends,
            keys,
            key_hashes,
            client,
            clock,
            cache: cache.map(Arc::new),
            metrics: metrics::Counters::default(),
            config,
        };
        for b in &gateway.backends {
            gateway.metrics.set("gateway_backend_up", &[("backend", &b.config.name)], 1.0);
        }
        gateway.controls.init_metrics(&gateway.metrics);
        Ok(Arc::new(gateway))
    }

    /// [`Gateway::new`] with the system clock and the configured cache loaded (MiniLM).
    ///
    /// # Errors
    /// As [`Gateway::new`], and the encoder's loading errors.
    pub fn from_config(config: GatewayConfig) -> Result<Arc<Gateway>> {
        let cache = if config.cache.enabled { Some(SemanticCache::load(config.cache.clone())?) } else { None };
        Gateway::new(config, Clock::System, cache)
    }

    /// Its configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Tokens and USD the key `name` spent today.
    pub fn spent_today(&self, name: &str) -> Option<(u64, f64)> {
        self.keys
            .iter()
            .map(|k| k.lock().unwrap_or_else(|e| e.into_inner()))
            .find(|k| k.config.name == name)
            .map(|k| k.spent_today())
    }

    /// The breaker state of backend `name` now.
    pub fn breaker_state(&self, name: &str) -> Option<BreakerState> {
        let now = self.clock.now_ms();
        self.backends
            .iter()
            .find(|b| b.config.name == name)
            .map(|b| b.breaker.lock().unwrap_or_else(|e| e.into_inner()).state(now))
    }

    /// Checks every backend once (`GET health.path`) and records the result.
    pub async fn check_health(&self) {
        let timeout = Duration::from_millis(self.config.health.timeout_ms);
        for b in &self.backends {
            let url = format!("{}{}", b.config.url.trim_end_matches('/'), self.config.health.path);
            let mut req = self.client.get(&url).timeout(timeout);
            if let Some(t) = &b.bearer {
                req = req.bearer_auth(t);
            }
            let up = req.send().await.is_ok_and(|r| r.status().is_success());
            b.healthy.store(up, Ordering::SeqCst);
            self.metrics.set("gateway_backend_up", &[("backend", &b.config.name)], if up { 1.0 } else { 0.0 });
        }
    }
}

/// The router with every route.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let limit = gateway.config.max_body_bytes;
    Router::new()
        .route(CHAT, post(|s, h, b| proxy(s, h, b, CHAT)))
        .route(COMPLETIONS, post(|s, h, b| proxy(s, h, b, COMPLETIONS)))
        .route(EMBEDDINGS, post(|s, h, b| proxy(s, h, b, EMBEDDINGS)))
        .route("/v1/models", get(list_models))
        .route("/health", get(health))
        .route("/metrics", get(metrics_page))
        .fallback(|| async { api_error(StatusCode::NOT_FOUND, "invalid_request_error", "no such route", None, None) })
        .layer(axum::middleware::from_fn_with_state(gateway.clone(), observe_request))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(gateway)
}

/// Wraps every route: requests in flight and their duration by route, and the trace: the request
/// runs in a `request` span, a child of the incoming `traceparent` (or a new trace), whose header
/// replaces the incoming one (so [`proxy`] sends backends a child of the gateway's span) and is
/// returned in the answer.
async fn observe_request(
    State(gw): State<Arc<Gateway>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use crate::observe::trace::{self, TRACEPARENT, TraceContext};
    use tracing::Instrument;
    let start = std::time::Instant::now();
    let path = request.uri().path();
    let route = [CHAT, COMPLETIONS, EMBEDDINGS, "/v1/models", "/health", "/metrics"]
        .into_iter()
        .find(|r| *r == path)
        .unwrap_or("other");
    let (ctx, parent) = TraceContext::for_request(request.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()));
    let own = HeaderValue::from_str(&ctx.to_header()).ok();
    if let Some(v) = &own {
        request.headers_mut().insert(TRACEPARENT, v.clone());
    }
    let span = trace::request_span(route, "", &ctx, parent);
    let flight = crate::observe::InFlight::enter(&gw.metrics.in_flight);
    let mut response = next.run(request).instrument(span.clone()).await;
    drop(flight);
    let seconds = start.elapsed().as_secs_f64();
    let model = response.extensions().get::<ModelLabel>().map_or("", |m| m.0.as_str());
    gw.metrics.http_duration.with(&[route, model]).observe(seconds);
    tracing::info!(parent: &span, code = response.status().as_u16(), seconds, "answered");
    if let Some(v) = own {
        response.headers_mut().insert(TRACEPARENT, v);
    }
    response
}

/// Serves the gateway on `listener` until `shutdown` completes, with the health checks running.
///
/// # Errors
/// [`Error::Server`] when the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let interval = gateway.config.health.interval_ms;
    let checker = (interval > 0).then(|| {
        let g = gateway.clone();
        tokio::spawn(async move {
            loop {
                g.check_health().await;
                tokio::time::sleep(Duration::from_millis(interval)).await;
            }
        })
    });
    // Canary windows are judged on a timer too, so a rollout whose traffic stops still ends its window.
    let ticker = canary_tick_ms(&gateway.config).map(|every| {
        let g = gateway.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(every)).await;
                g.controls.tick(&g.metrics);
            }
        })
    });
    let result = axum::serve(listener, router(gateway))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Server(format!("gateway: {e}")));
    for task in [checker, ticker].into_iter().flatten() {
        task.abort();
    }
    result
}

/// How often the canaries' windows are judged: a quarter of the shortest window, within
/// [50 ms, 1 s]; `None` without canaries.
fn canary_tick_ms(config: &GatewayConfig) -> Option<u64> {
    config.canaries.iter().map(|c| c.window_ms).min().map(|w| (w / 4).clamp(50, 1000))
}

// ---- answers ------------------------------------------------------------------

fn api_error(
    status: StatusCode,
    kind: &str,
    message: impl Into<String>,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let body = json!({"error": {"message": message.into(), "type": kind, "param": param, "code": code}});
    (status, axum::Json(body)).into_response()
}

fn too_many(code: &str, message: String, retry_after_ms: u64) -> Response {
    let mut r = api_error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message, None, Some(code));
    let secs = retry_after_ms.div_ceil(1000).max(1);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

fn unauthorized(message: &str) -> Response {
    api_error(StatusCode::UNAUTHORIZED, "invalid_request_error", message, None, Some("invalid_api_key"))
}

/// Who is calling.
struct Caller {
    key: Option<usize>,
    name: String,
    tier: Tier,
    priority: Option<crate::observe::shed::Priority>,
}

/// The caller, or the 401 message.
fn authenticate(gw: &Gateway, headers: &HeaderMap) -> std::result::Result<Caller, &'static str> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match presented {
        Some(k) => match limits::find_key(&gw.key_hashes, k) {
            Some(i) => {
                let key = gw.keys[i].lock().unwrap_or_else(|e| e.into_inner());
                Ok(Caller {
                    key: Some(i),
                    name: key.config.name.clone(),
                    tier: key.tier(),
                    priority: key.config.priority,
                })
            }
            None => Err("Incorrect API key provided."),
        },
        None => match gw.config.anonymous_tier {
            Some(tier) => Ok(Caller { key: None, name: "anonymous".into(), tier, priority: None }),
            None => Err("An API key is required (Authorization: Bearer KEY)."),
        },
    }
}

async fn list_models(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let caller = match authenticate(&gw, &headers) {
        Ok(c) => c,
        Err(m) => return unauthorized(m),
    };
    let mut ids: Vec<&str> = gw
        .backends
        .iter()
        .filter(|b| caller.tier.admits(b.config.tier))
        .flat_map(|b| b.config.models.iter().map(String::as_str))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let data: Vec<Value> = ids
        .iter()
        .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "sovereign-gateway"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn health(State(gw): State<Arc<Gateway>>) -> Response {
    let now = gw.clock.now_ms();
    let backends: Vec<Value> = gw
        .backends
        .iter()
        .map(|b| {
            let state = b.breaker.lock().unwrap_or_else(|e| e.into_inner()).state(now);
            let breaker = ["closed", "half_open", "open"][usize::from(state.gauge())];
            json!({"name": b.config.name, "healthy": b.healthy.load(Ordering::SeqCst), "breaker": breaker,
                   "outstanding": b.outstanding.load(Ordering::SeqCst)})
        })
        .collect();
    let any = gw.backends.iter().any(|b| b.healthy.load(Ordering::SeqCst));
    let status = if any { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(json!({"status": if any { "ok" } else { "unavailable" }, "backends": backends})))
        .into_response()
}

async fn metrics_page(State(gw): State<Arc<Gateway>>) -> Response {
    let now = gw.clock.now_ms();
    for b in &gw.backends {
        let name = [("backend", b.config.name.as_str())];
        let state = b.breaker.lock().unwrap_or_else(|e| e.into_inner()).state(now);
        gw.metrics.set("gateway_breaker_state", &name, f64::from(state.gauge()));
        gw.metrics.set("gateway_backend_outstanding", &name, b.outstanding.load(Ordering::SeqCst) as f64);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], gw.metrics.render()).into_response()
}

// ---- proxying -----------------------------------------------------------------

/// Counts a request in flight at a backend until dropped.
struct InFlight(Arc<Gateway>, usize);

impl InFlight {
    fn new(gw: &Arc<Gateway>, i: usize) -> InFlight {
        gw.backends[i].outstanding.fetch_add(1, Ordering::SeqCst);
        InFlight(gw.clone(), i)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.backends[self.1].outstanding.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the request is, for accounting.
#[derive(Clone)]
struct Ticket {
    caller_key: Option<usize>,
    caller: String,
    model: String,
    endpoint: &'static str,
    /// The shed permit (held until the ticket's last clone is dropped) and the canary arm.
    controls: controls::RequestControls,
}

impl Gateway {
    fn finish(&self, t: &Ticket, status: u16) {
        if let Some(mark) = &t.controls.canary {
            self.controls.record(mark, status, &self.metrics);
        }
        let s = status.to_string();
        self.metrics.add(
            "gateway_requests_total",
            &[("key", &t.caller), ("model", &t.model), ("endpoint", t.endpoint), ("status", &s)],
            1.0,
        );
    }

    fn charge(&self, t: &Ticket, backend: usize, usage: &Value) {
        let prompt = usage["prompt_tokens"].as_u64().unwrap_or(0);
        let completion = usage["completion_tokens"].as_u64().unwrap_or(0);
        let b = &self.backends[backend].config;
        let cost = prompt as f64 / 1000.0 * b.cost_per_1k_prompt_tokens
            + completion as f64 / 1000.0 * b.cost_per_1k_completion_tokens;
        self.controls.charge(cost, self.clock.now_ms());
        if let Some(k) = t.caller_key {
            self.keys[k].lock().unwrap_or_else(|e| e.into_inner()).charge(
                prompt + completion,
                cost,
                self.clock.now_ms(),
            );
        }
        let base = [("key", t.caller.as_str()), ("model", t.model.as_str())];
        self.metrics.add("gateway_tokens_total", &[base[0], base[1], ("kind", "prompt")], prompt as f64);
        self.metrics.add("gateway_tokens_total", &[base[0], base[1], ("kind", "completion")], completion as f64);
        self.metrics.add("gateway_cost_usd_total", &base, cost);
    }

    fn attempt_outcome(&self, backend: usize, outcome: &str) {
        self.metrics.add(
            "gateway_upstream_attempts_total",
            &[("backend", &self.backends[backend].config.name), ("outcome", outcome)],
            1.0,
        );
    }

    fn breaker(&self, backend: usize) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        self.backends[backend].breaker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `model` label of a request's metrics: the requested model when a backend serves it, else
/// `unknown` (a label per unknown name a client sends would grow the series without bound).
fn model_label(gw: &Gateway, model: &str) -> String {
    if gw.config.backends.iter().any(|b| b.models.iter().any(|m| m == model)) {
        model.to_owned()
    } else {
        UNKNOWN_MODEL.to_owned()
    }
}

/// The `model` label of requests for models no backend serves (and of those without a model).
pub const UNKNOWN_MODEL: &str = "unknown";

/// The model label of an answered request, for [`observe_request`]'s duration histogram.
#[derive(Clone)]
struct ModelLabel(String);

/// [`proxy_request`], with the request's model label attached to the answer.
async fn proxy(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
    endpoint: &'static str,
) -> Response {
    let mut label = None;
    let mut response = proxy_request(State(gw), headers, body, endpoint, &mut label).await;
    response.extensions_mut().insert(ModelLabel(label.unwrap_or_else(|| UNKNOWN_MODEL.to_owned())));
    response
}

async fn proxy_request(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
    endpoint: &'static str,
    label: &mut Option<String>,
) -> Response {
    let caller = match authenticate(&gw, &headers) {
        Ok(c) => c,
        Err(m) => return unauthorized(m),
    };
    let bytes = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return api_error(
                rejection.status(),
                "invalid_request_error",
                "the request body is too large",
                None,
                Some("request_too_large"),
            );
        }
        Err(rejection) => {
            return api_error(rejection.status(), "invalid_request_error", rejection.body_text(), None, None);
        }
    };
    let mut request: Value = match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "the body must be a JSON object",
                None,
                None,
            );
        }
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("invalid JSON body: {e}"),
                None,
                None,
            );
        }
    };
    let Some(model) = request["model"].as_str().map(str::to_owned) else {
        return api_error(StatusCode::BAD_REQUEST, "invalid_request_error", "`model` is required", Some("model"), None);
    };
    let known = model_label(&gw, &model);
    *label = Some(known.clone());
    let mut ticket = Ticket {
        caller_key: caller.key,
        caller: caller.name.clone(),
        model: known,
        endpoint,
        controls: controls::RequestControls::default(),
    };
    let now = gw.clock.now_ms();
    // The cost budget (the key's or the gateway's) may be spent: then the request spills to cheaper
    // backends below, or is refused if none remains.
    let mut over_budget = gw.controls.budget_spent(now);
    if let Some(k) = caller.key {
        let admitted = gw.keys[k].lock().unwrap_or_else(|e| e.into_inner()).admit_spillable(now);
        over_budget |= admitted.as_ref().is_ok_and(|spent| *spent);
        if let Err(refusal) = admitted {
            let (code, response) = match refusal {
                Refusal::RateLimited { limit, retry_after_ms } => (
                    "rate_limit_exceeded",
                    too_many(
                        "rate_limit_exceeded",
                        format!("Rate limit reached for key {:?} on {limit}.", caller.name),
                        retry_after_ms,
                    ),
                ),
                Refusal::BudgetExceeded { budget, retry_after_ms } => (
                    "budget_exceeded",
                    too_many(
                        "budget_exceeded",
                        format!("Key {:?} has spent its {budget} for today (UTC).", caller.name),
                        retry_after_ms,
                    ),
                ),
            };
            gw.metrics.add("gateway_refusals_total", &[("key", &caller.name), ("code", code)], 1.0);
            gw.finish(&ticket, 429);
            return response;
        }
    }
    // Load shedding by the key's priority, after its own limits (a refused request spends nothing).
    match gw.controls.admit(caller.priority, now) {
        Ok(guard) => ticket.controls.shed = guard,
        Err((priority, shed)) => {
            gw.metrics.add(crate::observe::SHED, &[("reason", "priority"), ("priority", priority.name())], 1.0);
            gw.finish(&ticket, 503);
            let mut r = api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                format!("The gateway is overloaded; {} priority requests are shed for now.", priority.name()),
                None,
                Some("overloaded"),
            );
            let secs = shed.retry_after_ms().div_ceil(1000).max(1);
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return r;
        }
    }
    // The privacy check: only backends within the caller's tier are ever contacted.
    let eligible = match route::eligible(&gw.config.backends, &model, caller.tier) {
        Ok(e) => e,
        Err(NoRoute::UnknownModel) => {
            gw.finish(&ticket, 404);
            return api_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("The model `{model}` does not exist or is not served here"),
                Some("model"),
                Some("model_not_found"),
            );
        }
        Err(NoRoute::OutsideTier) => {
            gw.metrics.add("gateway_refusals_total", &[("key", &caller.name), ("code", "tier_not_permitted")], 1.0);
            gw.finish(&ticket, 403);
            return api_error(
                StatusCode::FORBIDDEN,
                "permission_error",
                format!("No backend of tier {} or stricter serves `{model}`", caller.tier.name()),
                Some("model"),
                Some("tier_not_permitted"),
            );
        }
    };
    // The cache: chat only, deterministic, not streamed; scoped by model and tier.
    let mut to_store = None;
    if let (Some(cache), CHAT) = (&gw.cache, endpoint)
        && let Some(key) = cache::cache_key(&request, &format!("{model}\0{}", caller.tier.name()))
    {
        if let Some(hit) = cache.lookup_exact(&key, now) {
            return cached(&gw, &ticket, hit);
        }
        let (c, q) = (cache.clone(), key.query.clone());
        match tokio::task::spawn_blocking(move || c.embed(&q)).await {
            Ok(Ok(embedding)) => {
                if let Some(hit) = cache.lookup_semantic(&key, &embedding, now) {
                    return cached(&gw, &ticket, hit);
                }
                gw.metrics.add("gateway_cache_total", &[("result", "miss")], 1.0);
                to_store = Some((key, embedding));
            }
            _ => gw.metrics.add("gateway_cache_total", &[("result", "error")], 1.0),
        }
    }
    let stream = request["stream"].as_bool().unwrap_or(false);
    let client_wants_usage = request["stream_options"]["include_usage"].as_bool().unwrap_or(false);
    if stream && endpoint != EMBEDDINGS {
        request["stream_options"] = json!({"include_usage": true});
    }
    let upstream_body = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());

    let candidates: Vec<Candidate> = eligible
        .iter()
        .map(|&i| Candidate {
            index: i,
            priority: gw.backends[i].config.priority,
            weight: gw.backends[i].config.weight,
            outstanding: gw.backends[i].outstanding.load(Ordering::SeqCst),
        })
        .collect();
    let mut order = route::order(&candidates, gw.config.policy(&model), rand::random::<f64>);
    // A canary splits the model's traffic between two backends, sticky by the request's `user`.
    let sticky = request["user"].as_str().unwrap_or(&caller.name).to_owned();
    if let Some((b, mark)) = gw.controls.route(&model, &sticky, &eligible, gw.clock.now_ms(), &gw.metrics) {
        order = vec![b];
        ticket.controls.canary = Some(mark);
    }
    if over_budget {
        let spilled = controls::spill_order(&gw.config.backends, &order, &eligible);
        let Some(&to) = spilled.first() else {
            gw.metrics.add("gateway_refusals_total", &[("key", &caller.name), ("code", "budget_exceeded")], 1.0);
            gw.finish(&ticket, 429);
            let to_midnight = limits::DAY_MS - now % limits::DAY_MS;
            return too_many(
                "budget_exceeded",
                format!(
                    "{:?} has spent its daily_cost_usd for today (UTC) and no cheaper backend serves `{model}`.",
                    caller.name
                ),
                to_midnight,
            );
        };
        let from = order.first().map_or("", |&b| gw.backends[b].config.name.as_str());
        gw.metrics.add(
            controls::SPILLOVERS,
            &[("key", &caller.name), ("from", from), ("to", &gw.backends[to].config.name)],
            1.0,
        );
        order = spilled;
    }
    if order.iter().any(|&i| gw.backends[i].healthy.load(Ordering::SeqCst)) {
        order.retain(|&i| gw.backends[i].healthy.load(Ordering::SeqCst));
    }
    let timeout = Duration::from_millis(gw.config.request_timeout_ms);
    let mut last_failure: Option<(u16, Bytes)> = None;
    let mut last_error = String::from("every backend's circuit breaker is open");
    let mut attempted = false;
    let mut next = 0usize;
    for attempt in 0..gw.config.retry.max_attempts {
        if attempt > 0 {
            let ms = route::backoff_ms(
                attempt - 1,
                gw.config.retry.base_backoff_ms,
                gw.config.retry.max_backoff_ms,
                rand::random::<f64>(),
            );
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        // The next backend in order (cyclically) whose breaker lets a request through.
        let Some(b) = (0..order.len())
            .map(|k| order[(next + k) % order.len()])
            .find(|&i| gw.breaker(i).try_acquire(gw.clock.now_ms()))
        else {
            break;
        };
        next = order.iter().position(|&i| i == b).map_or(0, |p| p + 1);
        attempted = true;
        let backend = &gw.backends[b];
        let url = format!("{}{endpoint}", backend.config.url.trim_end_matches('/'));
        let mut req = gw.client.post(&url).header(header::CONTENT_TYPE, "application/json").body(upstream_body.clone());
        // The backend's span is a child of the gateway's (set by `observe_request`).
        let tp = headers.get(crate::observe::trace::TRACEPARENT).and_then(|v| v.to_str().ok());
        if let Some(ctx) = tp.and_then(crate::observe::trace::TraceContext::parse) {
            req = req.header(crate::observe::trace::TRACEPARENT, ctx.child().to_header());
        }
        if let Some(t) = &backend.bearer {
            req = req.bearer_auth(t);
        }
        let in_flight = InFlight::new(&gw, b);
        let response = match tokio::time::timeout(timeout, req.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                gw.breaker(b).on_failure(gw.clock.now_ms());
                gw.attempt_outcome(b, if e.is_connect() { "connect_error" } else { "error" });
                last_error = format!("{}: {e}", backend.config.name);
                continue;
            }
            Err(_) => {
                gw.breaker(b).on_failure(gw.clock.now_ms());
                gw.attempt_outcome(b, "timeout");
                last_error = format!("{}: no answer within {} ms", backend.config.name, gw.config.request_timeout_ms);
                continue;
            }
        };
        let status = response.status().as_u16();
        if route::retryable_status(status) {
            if status == 429 {
                gw.breaker(b).on_neutral(gw.clock.now_ms());
            } else {
                gw.breaker(b).on_failure(gw.clock.now_ms());
            }
            gw.attempt_outcome(b, &format!("status_{status}"));
            let body =
                tokio::time::timeout(timeout, response.bytes()).await.ok().and_then(|r| r.ok()).unwrap_or_default();
            last_failure = Some((status, body));
            last_error = format!("{} answered {status}", backend.config.name);
            continue;
        }
        let is_sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if stream && is_sse && (200..300).contains(&status) {
            // Wait for the first bytes: until they come, failing over is still safe.
            let mut upstream = response.bytes_stream();
            match tokio::time::timeout(timeout, upstream.next()).await {
                Ok(Some(Ok(first))) => {
                    gw.attempt_outcome(b, "streamed");
                    gw.finish(&ticket, status);
                    return relay(gw.clone(), ticket, b, in_flight, first, upstream, client_wants_usage, timeout);
                }
                _ => {
                    gw.breaker(b).on_failure(gw.clock.now_ms());
                    gw.attempt_outcome(b, "stream_failed_before_first_byte");
                    last_error = format!("{}: the stream failed before its first byte", backend.config.name);
                    continue;
                }
            }
        }
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = match tokio::time::timeout(timeout, response.bytes()).await {
            Ok(Ok(body)) => body,
            _ => {
                gw.breaker(b).on_failure(gw.clock.now_ms());
                gw.attempt_outcome(b, "body_failed");
                last_error = format!("{}: the answer broke off", backend.config.name);
                continue;
            }
        };
        drop(in_flight);
        gw.breaker(b).on_success(gw.clock.now_ms());
        gw.attempt_outcome(b, "answered");
        if (200..300).contains(&status) {
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                gw.charge(&ticket, b, &v["usage"]);
            }
            if let (Some(cache), Some((key, embedding))) = (&gw.cache, to_store.take()) {
                let _ = cache.insert(&key, embedding, body.to_vec(), gw.clock.now_ms());
            }
        }
        gw.finish(&ticket, status);
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        if let Some(ct) = content_type {
            r.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        r.headers_mut().insert(
            "x-sovereign-backend",
            HeaderValue::from_str(&backend.config.name).unwrap_or(HeaderValue::from_static("?")),
        );
        return r;
    }
    // Out of attempts: the last backend answer if there was one, else 502 / 503.
    match last_failure {
        Some((status, body)) => {
            gw.finish(&ticket, status);
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        None => {
            let status = if !attempted { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::BAD_GATEWAY };
            gw.finish(&ticket, status.as_u16());
            api_error(
                status,
                "server_error",
                format!("No backend could answer: {last_error}"),
                None,
                Some("upstream_unavailable"),
            )
        }
    }
}

fn cached(gw: &Gateway, ticket: &Ticket, hit: cache::Hit) -> Response {
    gw.metrics.add("gateway_cache_total", &[("result", hit.kind.name())], 1.0);
    gw.finish(ticket, 200);
    let mut r = Response::new(Body::from(hit.body.as_ref().clone()));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert("x-sovereign-cache", HeaderValue::from_static(hit.kind.name()));
    r
}

/// The end (exclusive) of the first complete server-sent event in `buf`: a blank line ends an event,
/// and lines end with LF, CRLF or CR (<https://html.spec.whatwg.org/multipage/server-sent-events.html>).
pub fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut line_empty = true;
    while i < buf.len() {
        let eol = match buf[i] {
            b'\n' => 1,
            b'\r' if buf.get(i + 1) == Some(&b'\n') => 2,
            b'\r' if i + 1 < buf.len() => 1,
            // A CR at the end of the buffer may be the first half of a CRLF: wait for more.
            b'\r' => return None,
            _ => {
                line_empty = false;
                i += 1;
                continue;
            }
        };
        i += eol;
        if line_empty {
            return Some(i);
        }
        line_empty = true;
    }
    None
}

/// Relays a stream whose first chunk arrived, event by event; charges the usage it reports; ends
/// with an error event (and no `[DONE]`) if the backend breaks off.
#[allow(clippy::too_many_arguments)]
fn relay(
    gw: Arc<Gateway>,
    ticket: Ticket,
    b: usize,
    in_flight: InFlight,
    first: Bytes,
    mut upstream: impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Send + Unpin + 'static,
    client_wants_usage: bool,
    timeout: Duration,
) -> Response {
    let name = HeaderValue::from_str(&gw.backends[b].config.name).unwrap_or(HeaderValue::from_static("?"));
    let (tx, rx) = mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = Some(first);
        let mut done = false;
        let mut relayed = 0usize;
        let mut client_gone = false;
        loop {
            let Some(bytes) = chunk.take() else { break };
            buf.extend_from_slice(&bytes);
            // Forward every complete event (`\n\n`-terminated).
            while let Some(end) = event_end(&buf) {
                let event: Vec<u8> = buf.drain(..end).collect();
                let text = String::from_utf8_lossy(&event);
                let data =
                    text.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect::<Vec<_>>().join("\n");
                if data == "[DONE]" {
                    done = true;
                } else if let Ok(v) = serde_json::from_str::<Value>(&data)
                    && !v["usage"].is_null()
                {
                    gw.charge(&ticket, b, &v["usage"]);
                    if !client_wants_usage && v["choices"].as_array().is_some_and(Vec::is_empty) {
                        continue;
                    }
                }
                relayed += event.len();
                if tx.send(Ok(Bytes::from(event))).await.is_err() {
                    client_gone = true;
                    break;
                }
            }
            if client_gone || done {
                break;
            }
            chunk = match tokio::time::timeout(timeout, upstream.next()).await {
                Ok(Some(Ok(c))) => Some(c),
                _ => None,
            };
        }
        let now = gw.clock.now_ms();
        if done {
            gw.breaker(b).on_success(now);
        } else if client_gone {
            gw.breaker(b).on_neutral(now);
        } else {
            gw.breaker(b).on_failure(now);
            gw.metrics.add("gateway_streams_interrupted_total", &[("backend", &gw.backends[b].config.name)], 1.0);
            let error = json!({"error": {
                "message": format!("the backend {} broke off the stream after {relayed} bytes had been relayed; \
                                    it was not retried because part of the answer had been sent", gw.backends[b].config.name),
                "type": "server_error", "param": null, "code": "upstream_stream_interrupted"}});
            let _ = tx.send(Ok(Bytes::from(format!("data: {error}\n\n")))).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r.headers_mut().insert("x-sovereign-backend", name);
    r
}
