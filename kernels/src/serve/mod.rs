//! An OpenAI-compatible HTTP server over `kernels::llm` and `kernels::nn` (feature `serve`).
//!
//! | route | what it does |
//! |---|---|
//! | `POST /v1/chat/completions` | chat through the model's chat template; `stream: true` answers with server-sent events; `response_format` (JSON schema, JSON object) and `tools` / `tool_choice` are enforced by a grammar ([`crate::constrain`]) |
//! | `POST /v1/completions` | plain text continuation (also streamable); `echo` + `logprobs` scores the prompt |
//! | `POST /v1/embeddings` | sentence embeddings (BERT, mean-pooled, normalised); `float` or `base64` |
//! | `GET /v1/models` | the models served |
//! | `GET /health` | `200 {"status":"ok"}` once the models are loaded |
//! | `GET /metrics` | counters in Prometheus' text format |
//! | `POST /v1/rag` | (feature `rag`, [`ServerConfig::rag`]) retrieval, packing and a cited answer over an index ([`rag`]) |
//!
//! Both completions take OpenAI's `logprobs` / `top_logprobs`, `seed`, `stop`, `n` (1–8, each
//! choice its own sequence in the batch), `presence_penalty` / `frequency_penalty`, `logit_bias`,
//! `max_completion_tokens` and `stream_options.include_usage` ([`completion`] says how each is
//! read, and which distribution the log-probabilities are of).
//!
//! Generation runs on one engine thread with continuous batching ([`engine`]).
//! Errors have OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`):
//! 400 for bad JSON or parameters, 404 for an unknown model or route, 413 for a
//! body over [`ServerConfig::max_body_bytes`]. Under overload ([`completion`] has the details):
//! 400 `context_length_exceeded` when prompt + `max_tokens` exceed [`ServerConfig::context`], 503
//! `overloaded` with `Retry-After` beyond [`ServerConfig::max_queue`] waiting sequences, 504
//! `timeout` past [`ServerConfig::request_timeout`]. [`serve`] stops gracefully: it
//! finishes the requests in flight when its shutdown future completes.

pub mod completion;
pub mod engine;
pub mod metrics;
pub mod openai;
#[cfg(feature = "rag")]
pub mod rag;
#[cfg(feature = "registry")]
pub mod verified;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::constrain::Vocabulary;
use crate::llm::{ChatTemplate, LlamaModel};
use crate::nn::bert::BertModel;
use crate::tokenize::Bpe;
use crate::{Error, Result};
use engine::{Engine, EngineConfig};
use openai::{ErrorBody, ErrorDetail};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// At most this many sequences decode together.
    pub max_batch: usize,
    /// KV-cache positions per sequence.
    pub context: usize,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// `max_tokens` when a chat request gives none.
    pub default_max_tokens: usize,
    /// At most this many sequences (one per choice) wait to start in the engine; a generation
    /// request beyond it gets 503 `overloaded` with `Retry-After` ([`engine::Limits`]).
    pub max_queue: usize,
    /// Each generation request's deadline from its arrival: 504 `timeout` when it passes before the
    /// answer is complete (a stream already started ends with an error event, [`completion`]).
    pub request_timeout: std::time::Duration,
    /// The index behind `POST /v1/rag` (without it the route answers 503).
    #[cfg(feature = "rag")]
    pub rag: Option<Arc<rag::RagService>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_batch: 8,
            context: 2048,
            max_body_bytes: 1 << 20,
            default_max_tokens: 256,
            max_queue: 32,
            request_timeout: std::time::Duration::from_secs(120),
            #[cfg(feature = "rag")]
            rag: None,
        }
    }
}

/// A chat model: decoder, its tokenizer and chat template.
#[derive(Debug, Clone)]
pub struct ChatModel {
    /// The id clients name in `model`.
    pub id: String,
    /// The decoder.
    pub model: Arc<LlamaModel>,
    /// Its tokenizer (from the same GGUF).
    pub tokenizer: Arc<Bpe>,
    /// Its chat template.
    pub template: ChatTemplate,
    /// Tokens that end a turn.
    pub stop_tokens: Vec<u32>,
    /// The vocabulary as the constraint engine sees it (built once at load, shared by every
    /// constrained sequence); `None` when it cannot be built (structured output then answers 501).
    pub vocabulary: Option<Arc<Vocabulary>>,
}

impl ChatModel {
    /// Loads a GGUF chat model (tokenizer and ChatML template from its metadata).
    ///
    /// # Errors
    /// The GGUF reader's, tokenizer's and decoder's errors.
    pub fn load(id: impl Into<String>, path: impl AsRef<Path>) -> Result<ChatModel> {
        Self::from_llama(id, LlamaModel::load(path)?)
    }

    /// A chat model over a loaded decoder (tokenizer and ChatML template from its GGUF metadata).
    ///
    /// # Errors
    /// The tokenizer's and chat template's errors.
    pub(crate) fn from_llama(id: impl Into<String>, model: LlamaModel) -> Result<ChatModel> {
        let tokenizer = Bpe::from_gguf(model.gguf())?;
        let template = ChatTemplate::from_gguf(model.gguf())?;
        let stop_tokens = crate::llm::chat::end_of_turn_tokens(&tokenizer);
        let end_of_turn = crate::llm::chat::end_of_turn_token(&tokenizer);
        let vocabulary = end_of_turn.and_then(|eos| Vocabulary::from_bpe(&tokenizer, eos).ok());
        Ok(ChatModel {
            id: id.into(),
            model: Arc::new(model),
            tokenizer: Arc::new(tokenizer),
            template,
            stop_tokens,
            vocabulary,
        })
    }
}

/// An embedding model.
#[derive(Debug, Clone)]
pub struct EmbeddingModel {
    /// The id clients name in `model`.
    pub id: String,
    /// The encoder (with its WordPiece tokenizer).
    pub model: Arc<BertModel>,
}

impl EmbeddingModel {
    /// Loads a BERT sentence encoder from its folder (safetensors, config, tokenizer).
    ///
    /// # Errors
    /// The encoder's loading errors.
    pub fn load(id: impl Into<String>, dir: impl AsRef<Path>) -> Result<EmbeddingModel> {
        Ok(EmbeddingModel { id: id.into(), model: Arc::new(BertModel::load(dir)?) })
    }
}

/// What a server serves.
#[derive(Debug, Clone, Default)]
pub struct Models {
    /// For `/v1/chat/completions` and `/v1/completions`.
    pub chat: Option<ChatModel>,
    /// For `/v1/embeddings`.
    pub embedding: Option<EmbeddingModel>,
}

struct AppState {
    config: ServerConfig,
    chat: Option<(ChatModel, Engine)>,
    embedding: Option<EmbeddingModel>,
    /// The registry behind `/metrics` (overload control counts its refusals in `shed`).
    pub metrics: Arc<metrics::ServeMetrics>,
    next_id: AtomicU64,
    /// Numbers tool-call ids (`call_<n>`).
    next_call: AtomicU64,
    started: u64,
}

/// The router with every route, over `models` (starts the generation engine).
pub fn router(config: ServerConfig, models: Models) -> Router {
    let chat = models.chat.map(|chat| {
        let engine_config = EngineConfig { max_batch: config.max_batch, context: config.context };
        let limits = engine::Limits { max_queue: config.max_queue };
        let (engine, _thread) = Engine::start_with(chat.model.clone(), chat.tokenizer.clone(), engine_config, limits);
        (chat, engine)
    });
    let state = Arc::new(AppState {
        chat,
        embedding: models.embedding,
        metrics: Arc::new(metrics::ServeMetrics::new()),
        next_id: AtomicU64::new(1),
        next_call: AtomicU64::new(1),
        started: unix_now(),
        config: config.clone(),
    });
    let router = Router::new();
    #[cfg(feature = "rag")]
    let router = router.route("/v1/rag", post(rag::rag));
    router
        .route("/v1/chat/completions", post(completion::chat_completions))
        .route("/v1/completions", post(completion::completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
        .route("/health", get(health))
        .route("/metrics", get(metrics_page))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe_request))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
}

/// The routes, as the `route` label names them (anything else is `other`).
const ROUTES: [&str; 7] =
    ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/health", "/metrics", "/v1/rag"];

/// Wraps every route: in-flight gauge, the `request` span of the incoming `traceparent` (or a new
/// trace), then the request count and duration by route, model and code; answers with `traceparent`.
async fn observe_request(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use crate::observe::trace::{self, TRACEPARENT, TraceContext};
    use tracing::Instrument;
    let start = std::time::Instant::now();
    let route = ROUTES.iter().copied().find(|r| *r == request.uri().path()).unwrap_or("other");
    let (ctx, parent) = TraceContext::for_request(request.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()));
    let span = trace::request_span(route, "", &ctx, parent);
    let guard = crate::observe::InFlight::enter(&state.metrics.in_flight);
    let mut response = next.run(request).instrument(span.clone()).await;
    drop(guard);
    let code = response.status().as_u16();
    // The model served on this route (bounded: never the name a client asked for).
    let model = match route {
        _ if code == 404 => "",
        "/v1/embeddings" => state.embedding.as_ref().map_or("", |e| e.id.as_str()),
        "/v1/chat/completions" | "/v1/completions" | "/v1/rag" => {
            state.chat.as_ref().map_or("", |(c, _)| c.id.as_str())
        }
        _ => "",
    };
    if !model.is_empty() {
        span.record("model", model);
    }
    let seconds = start.elapsed().as_secs_f64();
    state.metrics.record(route, model, code, seconds);
    tracing::info!(parent: &span, code, seconds, "answered");
    if let Ok(v) = axum::http::HeaderValue::from_str(&ctx.to_header()) {
        response.headers_mut().insert(TRACEPARENT, v);
    }
    response
}

/// Serves `models` on `listener` until `shutdown` completes, then finishes the requests in flight.
///
/// # Errors
/// [`Error::Server`] when the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    models: Models,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, router(config, models))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Server(format!("serving: {e}")))
}

// ---- errors -----------------------------------------------------------------

/// An error answer in OpenAI's shape.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &str,
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: ErrorDetail {
                    message: message.into(),
                    kind: kind.into(),
                    param: param.map(str::to_owned),
                    code: code.map(str::to_owned),
                },
            },
        }
    }

    fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message, param, None)
    }

    fn unknown_model(model: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist or is not served here"),
            Some("model"),
            Some("model_not_found"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// The answer or the error's (counted by route and code in [`observe_request`]).
fn answer(_state: &AppState, _endpoint: &str, result: std::result::Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Parses a JSON body, mapping rejections to OpenAI-shaped 400 / 413 answers.
fn parse<T: DeserializeOwned>(body: std::result::Result<Bytes, BytesRejection>) -> std::result::Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "invalid_request_error",
                "the request body is too large",
                None,
                Some("request_too_large"),
            )
        } else {
            ApiError::new(status, "invalid_request_error", rejection.body_text(), None, None)
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}"), None))
}

// ---- embeddings, models, health, metrics --------------------------------------

async fn embeddings(State(state): State<Arc<AppState>>, body: std::result::Result<Bytes, BytesRejection>) -> Response {
    let result = embeddings_inner(&state, body).await;
    answer(&state, "/v1/embeddings", result)
}

async fn embeddings_inner(
    state: &Arc<AppState>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let request: openai::EmbeddingRequest = parse(body)?;
    let embedding = state
        .embedding
        .as_ref()
        .filter(|e| e.id == request.model)
        .ok_or_else(|| ApiError::unknown_model(&request.model))?;
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                format!("encoding_format {other:?} is not float or base64"),
                Some("encoding_format"),
            ));
        }
    };
    let inputs = request.input.into_vec();
    if inputs.is_empty() || inputs.len() > 2048 {
        return Err(ApiError::bad_request("input must hold 1 to 2048 strings", Some("input")));
    }
    let model = embedding.model.clone();
    let (vectors, tokens) = tokio::task::spawn_blocking(move || {
        let tokens: usize = match model.tokenizer() {
            Some(t) => inputs.iter().map(|s| t.encode(s).ids.len()).sum(),
            None => 0,
        };
        model.embed(&inputs).map(|v| (v, tokens))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e.to_string(), None, None))?
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e.to_string(), None, None))?;
    state.metrics.embedded_texts.inc_by(vectors.len() as f64);
    state.metrics.tokens.with(&[&embedding.id, "prompt"]).inc_by(tokens as f64);
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 { json!(base64_f32(v)) } else { json!(v) };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(axum::Json(json!({
        "object": "list", "data": data, "model": request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}

async fn list_models(State(state): State<Arc<AppState>>) -> Response {
    let ids = state.chat.iter().map(|(c, _)| c.id.clone()).chain(state.embedding.iter().map(|e| e.id.clone()));
    let data: Vec<Value> =
        ids.map(|id| json!({"id": id, "object": "model", "created": state.started, "owned_by": "sovereign"})).collect();
    answer(&state, "/v1/models", Ok(axum::Json(json!({"object": "list", "data": data})).into_response()))
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    answer(&state, "/health", Ok(axum::Json(json!({"status": "ok"})).into_response()))
}

async fn metrics_page(State(state): State<Arc<AppState>>) -> Response {
    let engine = state.chat.as_ref().map(|(c, e)| (c.id.as_str(), e.stats()));
    if let Some((_, stats)) = engine {
        state.metrics.engine_queue.set(stats.waiting.load(std::sync::atomic::Ordering::Relaxed) as f64);
    }
    let page = state.metrics.render(engine);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], page).into_response()
}

async fn not_found(State(state): State<Arc<AppState>>, uri: axum::http::Uri) -> Response {
    let error =
        ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", format!("no route {}", uri.path()), None, None);
    answer(&state, "other", Err(error))
}

/// Little-endian f32 bytes in standard base64 (what OpenAI's `encoding_format: "base64"` returns).
pub fn base64_f32(v: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
