//! A server for the tabular models of [`crate::ml`] (realizar's role for classical models; feature
//! `serve-model`, which does not pull the language models of [`crate::llm`]).
//!
//! | route | what it does |
//! |---|---|
//! | `POST /v1/models/{name}:predict` | scores rows: JSON `{"instances": [[…], …]}` or `{"rows": [{"amount": …}, …]}` ([`input`]); with the `data` feature also an Arrow IPC stream (`Content-Type: application/vnd.apache.arrow.stream`) |
//! | `GET /v1/models`, `GET /v1/models/{name}` | the model served: version, kind, features, digest, what a score means |
//! | `GET /health` | liveness: `200` while the process answers |
//! | `GET /ready` | readiness: `200` while a model is loaded and the scorer runs, else `503` |
//! | `GET /metrics` | Prometheus text: requests by endpoint and status, latency histogram by model version, batch-size histograms, rows scored, 503s, reloads, queue depth ([`metrics`]) |
//! | `POST /admin/reload` | re-reads the source now and swaps in a new version if there is one |
//!
//! The model comes from a registry version verified against a pinned keyring, or from a model file
//! ([`model`]); an unsigned or tampered version is refused at start and at every reload. Rows of
//! concurrent requests are scored together by the adaptive micro-batcher ([`batcher`]) behind a
//! bounded queue: when it is full the answer is `503` with `Retry-After`.
//!
//! **Hot reload.** The model is an `Arc` behind a lock that is held only to clone or replace the
//! `Arc`: a reload loads and verifies the new version off the request path, then swaps the pointer.
//! A request keeps the model it was validated with until it is answered (the answer names that
//! version), so no request fails or mixes versions across a swap. With [`Config::reload_poll`] a
//! background task follows the registry: when the promotion log (or the model file) changes it
//! reloads, so `sovereign registry promote` is what a running server follows. A failed reload leaves
//! the old model serving and is counted in `/metrics`.
//!
//! **Errors** are JSON, `{"error": {"code", "message", "row", "feature"}}`, never a 500 for bad input:
//! 400 for a malformed body, 422 for rows that do not fit the model (wrong feature count or names,
//! non-numeric values, `null` where the model forbids a missing value), 404 for an unknown model or
//! route, 405, 413 for a body over [`Config::max_body_bytes`], 415 for another content type, 503 when
//! the queue is full. [`loadgen`] is the open-loop load generator the load test and the benchmark use.

pub mod batcher;
pub mod input;
pub mod loadgen;
pub mod metrics;
pub mod model;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub use batcher::{BatchConfig, Batcher};
pub use metrics::ServerMetrics;
pub use model::{LoadedModel, ModelSource, Predictor, Selector};

use crate::registry::LogHead;
use crate::{Error, Result};

/// The content type of an Arrow IPC stream (<https://www.iana.org/assignments/media-types/application/vnd.apache.arrow.stream>).
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Micro-batching and the bounded queue.
    pub batch: BatchConfig,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// More rows in one request get 400.
    pub max_rows: usize,
    /// Check the source this often and reload when it changed (`None`: only `POST /admin/reload`).
    pub reload_poll: Option<Duration>,
    /// The `Retry-After` of a 503, seconds.
    pub retry_after_secs: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            batch: BatchConfig::default(),
            max_body_bytes: 16 << 20,
            max_rows: 100_000,
            reload_poll: Some(Duration::from_secs(2)),
            retry_after_secs: 1,
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq)]
pub struct Reloaded {
    /// Whether the model served changed.
    pub changed: bool,
    /// The version served before (`None` for a model file).
    pub previous: Option<u64>,
    /// The version served now.
    pub current: Option<u64>,
    /// The digest of the model file served now.
    pub digest: String,
}

struct Shared {
    config: Config,
    source: ModelSource,
    current: RwLock<Arc<LoadedModel>>,
    /// The promotion-log head seen at the last load; also serialises reloads.
    pinned: Mutex<Option<LogHead>>,
    batcher: Batcher,
    metrics: Arc<ServerMetrics>,
}

/// A model server: the loaded model, its batcher and metrics. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct ModelServer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ModelServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelServer").field("source", &self.shared.source.describe()).finish_non_exhaustive()
    }
}

impl ModelServer {
    /// Loads and verifies the model of `source` and starts the batcher (blocking: call it before the
    /// runtime serves, or from `spawn_blocking`).
    ///
    /// # Errors
    /// [`Error::ServeModelLoad`] when the model cannot be served (unsigned, tampered, unknown, not a
    /// model); [`Error::ServeModelConfig`] for a zero batch size or queue.
    pub fn start(config: Config, source: ModelSource) -> Result<ModelServer> {
        if config.batch.max_batch == 0 || config.batch.queue_capacity == 0 || config.max_rows == 0 {
            return Err(Error::ServeModelConfig("max_batch, queue_capacity and max_rows must be at least 1".into()));
        }
        let (model, head) = model::load(&source, None)?;
        let metrics = Arc::new(ServerMetrics::default());
        metrics.set_model(&model.name);
        let batcher = Batcher::start(config.batch, metrics.clone());
        Ok(ModelServer {
            shared: Arc::new(Shared {
                config,
                source,
                current: RwLock::new(Arc::new(model)),
                pinned: Mutex::new(head),
                batcher,
                metrics,
            }),
        })
    }

    /// The model served now.
    pub fn current(&self) -> Arc<LoadedModel> {
        self.shared.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &ServerMetrics {
        &self.shared.metrics
    }

    /// The source the model comes from.
    pub fn source(&self) -> &ModelSource {
        &self.shared.source
    }

    // ANCHOR: hot_reload
    /// Re-reads the source (blocking) and swaps in its model if it differs from the one served.
    ///
    /// # Errors
    /// [`Error::ServeModelLoad`]; the old model keeps serving.
    pub fn reload(&self) -> Result<Reloaded> {
        let s = &self.shared;
        let mut pinned = s.pinned.lock().unwrap_or_else(|e| e.into_inner());
        let (model, head) = match model::load(&s.source, pinned.as_ref()) {
            Ok(x) => x,
            Err(e) => {
                s.metrics.reload_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(e);
            }
        };
        *pinned = head;
        let old = self.current();
        let changed = model.digest != old.digest || model.version != old.version;
        let reloaded =
            Reloaded { changed, previous: old.version, current: model.version, digest: model.digest.clone() };
        if changed {
            *s.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(model);
            s.metrics.reloads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(reloaded)
    }
    // ANCHOR_END: hot_reload

    // ANCHOR: routes
    /// The router with every route.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/models", get(list_models))
            .route("/v1/models/{target}", post(predict).get(describe_model))
            .route("/health", get(health))
            .route("/ready", get(ready))
            .route("/metrics", get(metrics_page))
            .route("/admin/reload", post(admin_reload))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(axum::middleware::from_fn_with_state(self.clone(), observe_request))
            .layer(DefaultBodyLimit::max(self.shared.config.max_body_bytes))
            .with_state(self.clone())
    }
    // ANCHOR_END: routes
}

/// Serves `server` on `listener` until `shutdown` completes, then finishes the requests in flight.
/// Runs the reload poller when [`Config::reload_poll`] is set.
///
/// # Errors
/// [`Error::ServeModelIo`] when the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: ModelServer,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let poller = server.shared.config.reload_poll.map(|every| tokio::spawn(poll(server.clone(), every)));
    let result = axum::serve(listener, server.router())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::ServeModelIo(format!("serving: {e}")));
    if let Some(p) = poller {
        p.abort();
    }
    result
}

/// Reloads whenever the source's fingerprint changes.
async fn poll(server: ModelServer, every: Duration) {
    let mut seen = server.source().fingerprint();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = server.source().fingerprint();
        if now == seen {
            continue;
        }
        let s = server.clone();
        match tokio::task::spawn_blocking(move || s.reload()).await {
            Ok(Ok(r)) => {
                seen = now;
                if r.changed {
                    eprintln!(
                        "serve-model: now serving {} version {:?} ({})",
                        server.source().name(),
                        r.current,
                        r.digest
                    );
                }
            }
            // Retried at the next change only: a refused version is not reloaded in a loop.
            Ok(Err(e)) => {
                seen = now;
                eprintln!("serve-model: reload refused, still serving the previous model: {e}");
            }
            Err(e) => eprintln!("serve-model: reload task failed: {e}"),
        }
    }
}

// ---- errors -----------------------------------------------------------------

/// An error answer: `{"error": {"code", "message", "row", "feature"}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    row: Option<usize>,
    feature: Option<String>,
    retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), row: None, feature: None, retry_after: None }
    }

    fn unknown_model(name: &str, served: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_model",
            format!("no model {name:?} is served here (served: {served:?})"),
        )
    }
}

impl From<input::InputError> for ApiError {
    fn from(e: input::InputError) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            code: e.code,
            message: e.message,
            row: e.row,
            feature: e.feature,
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "row": self.row, "feature": self.feature}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Wraps every route: the in-flight gauge, and a `request` span in the trace of the incoming
/// `traceparent` (or a new one), which the answer names in its own `traceparent`.
async fn observe_request(
    State(server): State<ModelServer>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use crate::observe::trace::{self, TRACEPARENT, TraceContext};
    use tracing::Instrument;
    let (ctx, parent) = TraceContext::for_request(request.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()));
    let span = trace::request_span(request.uri().path(), "", &ctx, parent);
    let guard = crate::observe::InFlight::enter(&server.shared.metrics.in_flight);
    let mut response = next.run(request).instrument(span.clone()).await;
    drop(guard);
    tracing::info!(parent: &span, code = response.status().as_u16(), "answered");
    if let Ok(v) = HeaderValue::from_str(&ctx.to_header()) {
        response.headers_mut().insert(TRACEPARENT, v);
    }
    response
}

/// Records the answer's status under `endpoint` and returns it.
fn answer(server: &ModelServer, endpoint: &str, result: std::result::Result<Response, ApiError>) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    server.shared.metrics.record(endpoint, response.status().as_u16());
    response
}

// ---- predict ----------------------------------------------------------------

async fn predict(
    State(server): State<ModelServer>,
    Path(target): Path<String>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let start = Instant::now();
    let result = predict_inner(&server, &target, &headers, body, start).await;
    answer(&server, "/v1/models/:predict", result)
}

async fn predict_inner(
    server: &ModelServer,
    target: &str,
    headers: &HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
    start: Instant,
) -> std::result::Result<Response, ApiError> {
    let model = server.current();
    let Some(name) = target.strip_suffix(":predict") else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route POST /v1/models/{target} (predict is POST /v1/models/{{name}}:predict)"),
        ));
    };
    if name != model.name {
        return Err(ApiError::unknown_model(name, &model.name));
    }
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "body_too_large",
                format!(
                    "the request body is over this server's limit of {} bytes",
                    server.shared.config.max_body_bytes
                ),
            )
        } else {
            ApiError::new(status, "bad_body", rejection.body_text())
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let max_rows = server.shared.config.max_rows;
    let (data, rows) = match content_type.as_deref() {
        None | Some("application/json") => input::to_batch(&input::parse_json(&body)?, &model, max_rows)?,
        Some(ARROW_STREAM) => arrow_batch(&body, &model, max_rows)?,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("content type {other:?}: send application/json or {ARROW_STREAM}"),
            ));
        }
    };
    // ANCHOR: backpressure
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = batcher::Job { model, data, rows, arrived: start, reply: tx };
    if server.shared.batcher.submit(job).is_err() {
        server.shared.metrics.rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!("the scoring queue is full ({} requests); retry later", server.shared.config.batch.queue_capacity),
        );
        e.retry_after = Some(server.shared.config.retry_after_secs);
        return Err(e);
    }
    // ANCHOR_END: backpressure
    let (scores, scored_by) = match rx.await {
        Ok(Ok(x)) => x,
        Ok(Err(message)) => return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "cannot_score", message)),
        Err(_) => {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the scorer has stopped"));
        }
    };
    let body = render_predictions(&scored_by, &scores, rows);
    server.shared.metrics.latency(&scored_by.version_label()).observe(start.elapsed().as_secs_f64());
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&scored_by.version_label()) {
        response.headers_mut().insert("x-model-version", v);
    }
    Ok(response)
}

#[cfg(feature = "data")]
fn arrow_batch(body: &[u8], model: &LoadedModel, max_rows: usize) -> std::result::Result<(Vec<f32>, usize), ApiError> {
    Ok(input::arrow_to_batch(body, model, max_rows)?)
}

#[cfg(not(feature = "data"))]
fn arrow_batch(_: &[u8], _: &LoadedModel, _: usize) -> std::result::Result<(Vec<f32>, usize), ApiError> {
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("{ARROW_STREAM} needs a server built with the `data` feature; send application/json"),
    ))
}

/// `{"model": …, "version": …, "predictions": […]}`, written directly (numbers in their shortest
/// round-trip form; a multi-output model gives one array per row).
fn render_predictions(model: &LoadedModel, scores: &[f32], rows: usize) -> String {
    let mut out = String::with_capacity(64 + scores.len() * 12);
    let version = model.version.map_or_else(|| "null".to_string(), |v| v.to_string());
    let _ = write!(out, "{{\"model\":{},\"version\":{version},\"predictions\":[", Value::from(model.name.as_str()));
    let k = model.n_outputs;
    let num = |out: &mut String, v: f32| {
        if v.is_finite() {
            let _ = write!(out, "{v}");
        } else {
            out.push_str("null");
        }
    };
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        if k == 1 {
            num(&mut out, scores[r]);
        } else {
            out.push('[');
            for j in 0..k {
                if j > 0 {
                    out.push(',');
                }
                num(&mut out, scores[r * k + j]);
            }
            out.push(']');
        }
    }
    out.push_str("]}");
    out
}

// ---- models, health, metrics, reload -----------------------------------------

fn model_json(m: &LoadedModel) -> Value {
    json!({
        "id": m.name, "object": "model", "version": m.version, "kind": m.kind, "output": m.output,
        "n_outputs": m.n_outputs, "features": m.feature_names, "allows_missing": m.allows_missing,
        "digest": m.digest, "manifest": m.manifest,
    })
}

async fn list_models(State(server): State<ModelServer>) -> Response {
    let m = server.current();
    answer(&server, "/v1/models", Ok(axum::Json(json!({"object": "list", "data": [model_json(&m)]})).into_response()))
}

async fn describe_model(State(server): State<ModelServer>, Path(name): Path<String>) -> Response {
    let m = server.current();
    let result = if name == m.name {
        Ok(axum::Json(model_json(&m)).into_response())
    } else {
        Err(ApiError::unknown_model(&name, &m.name))
    };
    answer(&server, "/v1/models/{name}", result)
}

async fn health(State(server): State<ModelServer>) -> Response {
    answer(&server, "/health", Ok(axum::Json(json!({"status": "ok"})).into_response()))
}

async fn ready(State(server): State<ModelServer>) -> Response {
    let m = server.current();
    let result = if server.shared.batcher.is_alive() {
        Ok(axum::Json(json!({"status": "ready", "model": m.name, "version": m.version})).into_response())
    } else {
        Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the scorer has stopped"))
    };
    answer(&server, "/ready", result)
}

async fn metrics_page(State(server): State<ModelServer>) -> Response {
    let m = server.current();
    let page = server.shared.metrics.render(&m.name, &m.version_label(), &m.kind, &m.digest);
    server.shared.metrics.record("/metrics", 200);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], page).into_response()
}

async fn admin_reload(State(server): State<ModelServer>) -> Response {
    let s = server.clone();
    let result = match tokio::task::spawn_blocking(move || s.reload()).await {
        Ok(Ok(r)) => Ok(axum::Json(json!({
            "changed": r.changed, "previous_version": r.previous, "version": r.current, "digest": r.digest,
        }))
        .into_response()),
        Ok(Err(e)) => {
            Err(ApiError::new(StatusCode::CONFLICT, "reload_refused", format!("{e}; still serving the previous model")))
        }
        Err(e) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("reload task: {e}"))),
    };
    answer(&server, "/admin/reload", result)
}

async fn not_found(State(server): State<ModelServer>, uri: axum::http::Uri) -> Response {
    let e = ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route {}", uri.path()));
    answer(&server, "other", Err(e))
}

async fn method_not_allowed(
    State(server): State<ModelServer>,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Response {
    let e = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    );
    answer(&server, "other", Err(e))
}
