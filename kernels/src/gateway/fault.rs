//! A fault-injecting OpenAI-compatible backend on loopback: a mock for faults a real model server
//! cannot be made to produce on demand (slow answers, 500s on a schedule, a stream cut mid-way, a
//! process killed while it streams), and a recorder of every request that reached it.
//!
//! It answers `/v1/chat/completions` (streaming and not), `/v1/completions`, `/v1/embeddings`,
//! `/v1/models` and `/health` in OpenAI's shapes with a deterministic text: `"<name> heard: <last
//! user message>"`, one word per stream chunk, usage counted in words. The gateway's tests and
//! benchmarks use it; production backends are `sovereign serve` or any OpenAI-compatible URL.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// What the backend does with its `n`-th generation request (0-based, counted across routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    None,
    /// Wait this many milliseconds, then answer normally.
    Slow(u64),
    /// Answer with this status and an OpenAI-shaped error body.
    Status(u16),
    /// Stream this many chunks, then cut the connection (non-streaming: cut before answering).
    DropAfter(usize),
    /// Stream this many chunks, then wait until [`FaultBackend::kill`] and cut the connection.
    HangAfter(usize),
}

/// The plan: the fault for the `n`-th generation request.
pub type FaultPlan = dyn Fn(usize) -> Fault + Send + Sync;

struct Shared {
    name: String,
    models: Vec<String>,
    plan: Box<FaultPlan>,
    received: Mutex<Vec<(String, Value)>>,
    /// The `traceparent` header of every request, in order of arrival.
    traceparents: Mutex<Vec<Option<String>>>,
    killed: AtomicBool,
    chunk_delay_ms: u64,
}

/// A running fault backend; it stops when killed or with its tokio runtime.
pub struct FaultBackend {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FaultBackend {
    /// Starts a backend named `name` serving `models`, following `plan`, on a free loopback port.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(
        name: &str,
        models: &[&str],
        plan: impl Fn(usize) -> Fault + Send + Sync + 'static,
    ) -> FaultBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding a loopback port");
        let addr = listener.local_addr().expect("a bound socket has an address");
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            plan: Box::new(plan),
            received: Mutex::new(Vec::new()),
            traceparents: Mutex::new(Vec::new()),
            killed: AtomicBool::new(false),
            chunk_delay_ms: 2,
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/completions", post(completion))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models_list))
            .route("/health", get(|| async { axum::Json(json!({"status": "ok"})) }))
            .layer(axum::middleware::from_fn_with_state(shared.clone(), record_traceparent))
            .with_state(shared.clone());
        let s = shared.clone();
        tokio::spawn(async move {
            let killed = async move {
                while !s.killed.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            };
            // Dropping the serve future on kill closes the listener: new connections are refused.
            tokio::select! {
                _ = axum::serve(listener, app) => {}
                () = killed => {}
            }
        });
        FaultBackend { addr, shared }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills it: the listener closes and every stream in flight is cut at its next chunk.
    pub fn kill(&self) {
        self.shared.killed.store(true, Ordering::SeqCst);
    }

    /// Every request that reached it: (path, JSON body), in order of arrival.
    pub fn received(&self) -> Vec<(String, Value)> {
        self.shared.received.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The `traceparent` header of every request that reached it (None when absent), in order.
    pub fn traceparents(&self) -> Vec<Option<String>> {
        self.shared.traceparents.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many requests reached `path`.
    pub fn count(&self, path: &str) -> usize {
        self.received().iter().filter(|(p, _)| p == path).count()
    }
}

async fn record_traceparent(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let tp = request.headers().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    shared.traceparents.lock().unwrap_or_else(|e| e.into_inner()).push(tp);
    next.run(request).await
}

fn record(shared: &Shared, path: &str, body: &Value) -> usize {
    let mut r = shared.received.lock().unwrap_or_else(|e| e.into_inner());
    let nth = r.iter().filter(|(p, _)| p != "/v1/embeddings").count();
    r.push((path.to_owned(), body.clone()));
    nth
}

fn last_user_text(body: &Value) -> String {
    if let Some(messages) = body["messages"].as_array() {
        let last = messages.iter().rev().find(|m| m["role"] == "user");
        return last.and_then(|m| m["content"].as_str()).unwrap_or_default().to_owned();
    }
    body["prompt"].as_str().unwrap_or_default().to_owned()
}

fn error(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"message": "injected by the fault backend", "type": "server_error", "param": null, "code": null}});
    (code, axum::Json(body)).into_response()
}

async fn chat(State(s): State<Arc<Shared>>, axum::Json(body): axum::Json<Value>) -> Response {
    generate(s, "/v1/chat/completions", body, true).await
}

async fn completion(State(s): State<Arc<Shared>>, axum::Json(body): axum::Json<Value>) -> Response {
    generate(s, "/v1/completions", body, false).await
}

fn cut() -> Response {
    let failing = futures_util::stream::once(async { Err::<Bytes, _>(std::io::Error::other("cut")) });
    Response::new(Body::from_stream(failing))
}

async fn generate(s: Arc<Shared>, path: &str, body: Value, chat: bool) -> Response {
    if s.killed.load(Ordering::SeqCst) {
        // A killed process receives nothing: a kept-alive connection is cut without an answer.
        return cut();
    }
    let nth = record(&s, path, &body);
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    if !s.models.contains(&model) {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"message": "unknown model", "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}))).into_response();
    }
    let fault = (s.plan)(nth);
    match fault {
        Fault::Slow(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Fault::Status(code) => return error(code),
        _ => {}
    }
    let text = format!("{} heard: {}", s.name, last_user_text(&body));
    let words: Vec<String> =
        text.split(' ').enumerate().map(|(i, w)| if i == 0 { w.to_owned() } else { format!(" {w}") }).collect();
    let prompt_tokens = body["messages"]
        .as_array()
        .map(|m| m.iter().map(|m| m["content"].as_str().unwrap_or("").split_whitespace().count()).sum::<usize>())
        .unwrap_or_else(|| body["prompt"].as_str().unwrap_or("").split_whitespace().count());
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": words.len(), "total_tokens": prompt_tokens + words.len()});
    let (object, chunk_object) =
        if chat { ("chat.completion", "chat.completion.chunk") } else { ("text_completion", "text_completion") };
    let id = format!("{}-{nth}", s.name);
    if !body["stream"].as_bool().unwrap_or(false) {
        if matches!(fault, Fault::DropAfter(_) | Fault::HangAfter(_)) {
            // Cut the connection without an answer: a body stream that fails at once.
            return cut();
        }
        let choice = if chat {
            json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": null})
        } else {
            json!({"index": 0, "text": text, "finish_reason": "stop", "logprobs": null})
        };
        return axum::Json(
            json!({"id": id, "object": object, "created": 0, "model": model, "choices": [choice], "usage": usage}),
        )
        .into_response();
    }
    let include_usage = body["stream_options"]["include_usage"].as_bool().unwrap_or(false);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let event = |v: Value| Ok(Bytes::from(format!("data: {v}\n\n")));
    let delta = move |content: Option<&str>, finish: Option<&str>| {
        if chat {
            let d = content.map_or(json!({}), |c| json!({"content": c}));
            json!({"id": id, "object": chunk_object, "created": 0, "model": model, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]})
        } else {
            json!({"id": id, "object": chunk_object, "created": 0, "model": model, "choices": [{"index": 0, "text": content.unwrap_or(""), "finish_reason": finish}]})
        }
    };
    tokio::spawn(async move {
        let cut_after = match fault {
            Fault::DropAfter(n) | Fault::HangAfter(n) => Some(n),
            _ => None,
        };
        for (i, w) in words.iter().enumerate() {
            if cut_after == Some(i) {
                if let Fault::HangAfter(_) = fault {
                    while !s.killed.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                let _ = tx.send(Err(std::io::Error::other("cut mid-stream"))).await;
                return;
            }
            if s.killed.load(Ordering::SeqCst) {
                let _ = tx.send(Err(std::io::Error::other("killed"))).await;
                return;
            }
            if tx.send(event(delta(Some(w), None))).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(s.chunk_delay_ms)).await;
        }
        let _ = tx.send(event(delta(None, Some("stop")))).await;
        if include_usage {
            let _ = tx.send(event(json!({"id": "u", "object": chunk_object, "created": 0, "model": "", "choices": [], "usage": usage}))).await;
        }
        let _ = tx.send(Ok(Bytes::from("data: [DONE]\n\n"))).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| error(500))
}

async fn embeddings(State(s): State<Arc<Shared>>, axum::Json(body): axum::Json<Value>) -> Response {
    record(&s, "/v1/embeddings", &body);
    let inputs: Vec<String> = match &body["input"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(a) => a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": [t.len() as f32, 1.0, 0.0]}))
        .collect();
    let words: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    axum::Json(json!({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": words, "total_tokens": words}}))
        .into_response()
}

async fn models_list(State(s): State<Arc<Shared>>) -> Response {
    let data: Vec<Value> =
        s.models.iter().map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": s.name})).collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}
