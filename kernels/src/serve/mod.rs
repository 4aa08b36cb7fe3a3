//! An OpenAI-compatible HTTP server over `kernels::llm` and `kernels::nn` (feature `serve`).
//!
//! | route | what it does |
//! |---|---|
//! | `POST /v1/chat/completions` | chat with the ChatML model; `stream: true` answers with server-sent events |
//! | `POST /v1/completions` | plain text continuation (also streamable) |
//! | `POST /v1/embeddings` | sentence embeddings (BERT, mean-pooled, normalised); `float` or `base64` |
//! | `GET /v1/models` | the models served |
//! | `GET /health` | `200 {"status":"ok"}` once the models are loaded |
//! | `GET /metrics` | counters in Prometheus' text format |
//!
//! Generation runs on one engine thread with continuous batching ([`engine`]).
//! Errors have OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`):
//! 400 for bad JSON or parameters, 404 for an unknown model or route, 413 for a
//! body over [`ServerConfig::max_body_bytes`]. [`serve`] stops gracefully: it
//! finishes the requests in flight when its shutdown future completes.

pub mod engine;
pub mod metrics;
pub mod openai;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::llm::{ChatMessage, ChatPart, ChatTemplate, FinishReason, LlamaModel, SamplerConfig};
use crate::nn::bert::BertModel;
use crate::tokenize::Bpe;
use crate::{Error, Result};
use engine::{Engine, EngineConfig, Event, Job};
use openai::{ErrorBody, ErrorDetail, OneOrMany, Usage};

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_batch: 8,
            context: 2048,
            max_body_bytes: 1 << 20,
            default_max_tokens: 256,
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
}

impl ChatModel {
    /// Loads a GGUF chat model (tokenizer and ChatML template from its metadata).
    ///
    /// # Errors
    /// The GGUF reader's, tokenizer's and decoder's errors.
    pub fn load(id: impl Into<String>, path: impl AsRef<Path>) -> Result<ChatModel> {
        let model = LlamaModel::load(path)?;
        let tokenizer = Bpe::from_gguf(model.gguf())?;
        let template = ChatTemplate::from_gguf(model.gguf())?;
        let mut stop_tokens: Vec<u32> = ["<|im_end|>", "<|endoftext|>"]
            .iter()
            .filter_map(|t| tokenizer.token_id(t))
            .chain(tokenizer.eos_id())
            .collect();
        stop_tokens.sort_unstable();
        stop_tokens.dedup();
        Ok(ChatModel { id: id.into(), model: Arc::new(model), tokenizer: Arc::new(tokenizer), template, stop_tokens })
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
    requests: metrics::RequestCounters,
    embedded: AtomicU64,
    next_id: AtomicU64,
    started: u64,
}

/// The router with every route, over `models` (starts the generation engine).
pub fn router(config: ServerConfig, models: Models) -> Router {
    let chat = models.chat.map(|chat| {
        let engine_config = EngineConfig { max_batch: config.max_batch, context: config.context };
        let (engine, _thread) = Engine::start(chat.model.clone(), chat.tokenizer.clone(), engine_config);
        (chat, engine)
    });
    let state = Arc::new(AppState {
        chat,
        embedding: models.embedding,
        requests: metrics::RequestCounters::default(),
        embedded: AtomicU64::new(0),
        next_id: AtomicU64::new(1),
        started: unix_now(),
        config: config.clone(),
    });
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
        .route("/health", get(health))
        .route("/metrics", get(metrics_page))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
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

/// Records the answer's status under `endpoint` and returns it.
fn answer(state: &AppState, endpoint: &str, result: std::result::Result<Response, ApiError>) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    state.requests.record(endpoint, response.status().as_u16());
    response
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

// ---- generation -------------------------------------------------------------

/// The sampling and stopping settings shared by chat and text completions, validated.
struct GenerationParams {
    max_tokens: usize,
    sampler: SamplerConfig,
    stop_strings: Vec<String>,
    stream: bool,
    include_usage: bool,
}

#[allow(clippy::too_many_arguments)]
fn generation_params(
    max_tokens: Option<usize>,
    default_max_tokens: usize,
    temperature: Option<f32>,
    top_p: Option<f32>,
    n: Option<usize>,
    stop: Option<OneOrMany>,
    seed: Option<u64>,
    stream: bool,
    include_usage: bool,
) -> std::result::Result<GenerationParams, ApiError> {
    let temperature = temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad_request(format!("temperature {temperature} is not in [0, 2]"), Some("temperature")));
    }
    let top_p = top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::bad_request(format!("top_p {top_p} is not in (0, 1]"), Some("top_p")));
    }
    if n.unwrap_or(1) != 1 {
        return Err(ApiError::bad_request("only n = 1 is served", Some("n")));
    }
    let stop_strings = stop.map(OneOrMany::into_vec).unwrap_or_default();
    if stop_strings.len() > 4 {
        return Err(ApiError::bad_request("at most 4 stop sequences", Some("stop")));
    }
    Ok(GenerationParams {
        max_tokens: max_tokens.unwrap_or(default_max_tokens),
        sampler: SamplerConfig { temperature, top_k: 0, top_p, seed: seed.unwrap_or(0) },
        stop_strings,
        stream,
        include_usage,
    })
}

/// Which OpenAI object the answer is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Chat,
    Text,
}

fn chat_model<'s>(state: &'s AppState, model: &str) -> std::result::Result<&'s (ChatModel, Engine), ApiError> {
    state.chat.as_ref().filter(|(chat, _)| chat.id == model).ok_or_else(|| ApiError::unknown_model(model))
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let result = chat_completions_inner(&state, body).await;
    answer(&state, "/v1/chat/completions", result)
}

async fn chat_completions_inner(
    state: &Arc<AppState>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let request: openai::ChatRequest = parse(body)?;
    let (chat, _) = chat_model(state, &request.model)?;
    if request.tools.as_ref().is_some_and(|t| !t.is_null()) {
        return Err(ApiError::bad_request("tools are not served by this model", Some("tools")));
    }
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty", Some("messages")));
    }
    let mut messages = Vec::with_capacity(request.messages.len());
    for (i, m) in request.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "developer" => "system",
            r @ ("system" | "user" | "assistant") => r,
            other => {
                return Err(ApiError::bad_request(
                    format!("unsupported role {other:?}"),
                    Some(&format!("messages[{i}].role")),
                ));
            }
        };
        let content = openai::message_text(&m.content).ok_or_else(|| {
            ApiError::bad_request(
                "content must be a string or a list of text parts",
                Some(&format!("messages[{i}].content")),
            )
        })?;
        messages.push(ChatMessage::new(role, content));
    }
    let params = generation_params(
        request.max_completion_tokens.or(request.max_tokens),
        state.config.default_max_tokens,
        request.temperature,
        request.top_p,
        request.n,
        request.stop,
        request.seed,
        request.stream,
        request.stream_options.is_some_and(|o| o.include_usage),
    )?;
    let prompt = encode_chat(chat, &messages)?;
    run_generation(state, &request.model, prompt, params, Flavour::Chat).await
}

/// Token ids of a conversation: the template's text with special tokens, the contents without
/// (so that typed `<|im_start|>` stays text).
fn encode_chat(chat: &ChatModel, messages: &[ChatMessage]) -> std::result::Result<Vec<u32>, ApiError> {
    let mut ids = Vec::new();
    let parts = chat
        .template
        .render_parts(messages, None, true)
        .map_err(|e| ApiError::bad_request(e.to_string(), Some("messages")))?;
    for part in parts {
        match part {
            ChatPart::Template(t) => ids.extend(chat.tokenizer.encode(&t)),
            ChatPart::Content(c) => ids.extend(chat.tokenizer.encode_ordinary(&c)),
        }
    }
    Ok(ids)
}

async fn completions(State(state): State<Arc<AppState>>, body: std::result::Result<Bytes, BytesRejection>) -> Response {
    let result = completions_inner(&state, body).await;
    answer(&state, "/v1/completions", result)
}

async fn completions_inner(
    state: &Arc<AppState>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let request: openai::CompletionRequest = parse(body)?;
    let (chat, _) = chat_model(state, &request.model)?;
    let prompts = request.prompt.into_vec();
    let [prompt] = prompts.as_slice() else {
        return Err(ApiError::bad_request("exactly one prompt string is served per request", Some("prompt")));
    };
    let params = generation_params(
        request.max_tokens.or(Some(16)),
        16,
        request.temperature,
        request.top_p,
        request.n,
        request.stop,
        request.seed,
        request.stream,
        false,
    )?;
    let tokens = chat.tokenizer.encode_ordinary(prompt);
    run_generation(state, &request.model, tokens, params, Flavour::Text).await
}

async fn run_generation(
    state: &Arc<AppState>,
    model: &str,
    prompt: Vec<u32>,
    params: GenerationParams,
    flavour: Flavour,
) -> std::result::Result<Response, ApiError> {
    let (chat, engine) = chat_model(state, model)?;
    let context = engine.config().context.min(chat.model.config().context_len);
    if prompt.len() >= context {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("the prompt has {} tokens; this server's context is {context}", prompt.len()),
            Some("messages"),
            Some("context_length_exceeded"),
        ));
    }
    let (tx, rx) = unbounded_channel();
    let job = Job {
        prompt,
        max_tokens: params.max_tokens,
        sampler: params.sampler,
        stop_tokens: chat.stop_tokens.clone(),
        stop_strings: params.stop_strings.clone(),
        events: tx,
    };
    if !engine.submit(job) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the engine has stopped",
            None,
            None,
        ));
    }
    let id = format!(
        "{}-{}",
        if flavour == Flavour::Chat { "chatcmpl" } else { "cmpl" },
        state.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let created = unix_now();
    if params.stream {
        let stream = sse_stream(rx, id, created, model.to_owned(), flavour, params.include_usage);
        return Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response());
    }
    let (text, finish, usage) = collect(rx).await?;
    let choice = match flavour {
        Flavour::Chat => json!({
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish_name(finish),
            "logprobs": null,
        }),
        Flavour::Text => json!({"index": 0, "text": text, "finish_reason": finish_name(finish), "logprobs": null}),
    };
    let object = if flavour == Flavour::Chat { "chat.completion" } else { "text_completion" };
    Ok(axum::Json(json!({
        "id": id, "object": object, "created": created, "model": model,
        "choices": [choice], "usage": usage, "system_fingerprint": null,
    }))
    .into_response())
}

/// Waits for a whole answer.
async fn collect(mut rx: UnboundedReceiver<Event>) -> std::result::Result<(String, FinishReason, Usage), ApiError> {
    let mut text = String::new();
    while let Some(event) = rx.recv().await {
        match event {
            Event::Text(t) => text.push_str(&t),
            Event::Done { finish, prompt_tokens, completion_tokens } => {
                return Ok((text, finish, Usage::new(prompt_tokens, completion_tokens)));
            }
            Event::Failed(message) => return Err(ApiError::bad_request(message, None)),
        }
    }
    Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the engine dropped the request", None, None))
}

fn finish_name(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

/// Server-sent events: a role chunk (chat), text chunks, a finish chunk, a usage chunk if asked, `[DONE]`.
fn sse_stream(
    rx: UnboundedReceiver<Event>,
    id: String,
    created: u64,
    model: String,
    flavour: Flavour,
    include_usage: bool,
) -> impl Stream<Item = std::result::Result<SseEvent, Infallible>> {
    enum Phase {
        Start,
        Body,
        Usage(Usage),
        Done,
        End,
    }
    let chunk = move |choices: Value, usage: Option<Usage>| {
        let object = if flavour == Flavour::Chat { "chat.completion.chunk" } else { "text_completion" };
        let mut v = json!({"id": id, "object": object, "created": created, "model": model, "choices": choices});
        if let Some(u) = usage {
            v["usage"] = json!(u);
        }
        SseEvent::default().data(v.to_string())
    };
    let delta = move |text: Option<&str>, finish: Option<FinishReason>| match flavour {
        Flavour::Chat => {
            let delta = match text {
                Some(t) => json!({"content": t}),
                None if finish.is_none() => json!({"role": "assistant", "content": ""}),
                None => json!({}),
            };
            json!([{"index": 0, "delta": delta, "finish_reason": finish.map(finish_name), "logprobs": null}])
        }
        Flavour::Text => {
            json!([{"index": 0, "text": text.unwrap_or(""), "finish_reason": finish.map(finish_name), "logprobs": null}])
        }
    };
    futures_util::stream::unfold((rx, Phase::Start), move |(mut rx, phase)| {
        let chunk = chunk.clone();
        async move {
            match phase {
                Phase::Start if flavour == Flavour::Chat => {
                    Some((Ok(chunk(delta(None, None), None)), (rx, Phase::Body)))
                }
                Phase::Start | Phase::Body => loop {
                    match rx.recv().await {
                        Some(Event::Text(t)) if t.is_empty() => continue,
                        Some(Event::Text(t)) => {
                            break Some((Ok(chunk(delta(Some(&t), None), None)), (rx, Phase::Body)));
                        }
                        Some(Event::Done { finish, prompt_tokens, completion_tokens }) => {
                            let usage = Usage::new(prompt_tokens, completion_tokens);
                            let next = if include_usage { Phase::Usage(usage) } else { Phase::Done };
                            break Some((Ok(chunk(delta(None, Some(finish)), None)), (rx, next)));
                        }
                        Some(Event::Failed(message)) => {
                            let body = json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}});
                            break Some((Ok(SseEvent::default().data(body.to_string())), (rx, Phase::Done)));
                        }
                        None => break None,
                    }
                },
                Phase::Usage(usage) => Some((Ok(chunk(json!([]), Some(usage))), (rx, Phase::Done))),
                Phase::Done => Some((Ok(SseEvent::default().data("[DONE]")), (rx, Phase::End))),
                Phase::End => None,
            }
        }
    })
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
    state.embedded.fetch_add(vectors.len() as u64, Ordering::Relaxed);
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
    let engine = state.chat.as_ref().map(|(_, e)| e.stats());
    let page = metrics::render(&state.requests, engine, state.embedded.load(Ordering::Relaxed));
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
