//! `POST /v1/rag`: retrieval-augmented answers over a [`RagIndex`] (feature `rag`): retrieve, optionally
//! rerank, pack under the chat model's context, generate on the server's engine (batched with chat
//! requests) through the citation grammar, check the citations.
//!
//! Request: `{"question": str, "k"?: 1..=50, "mode"?: "sparse"|"dense"|"hybrid-rrf"|"hybrid-weighted",
//! "rerank"?: "none"|"minilm"|"llm", "max_tokens"?: int, "constrained"?: bool}`; unknown keys are refused.
//!
//! Answer: `{"answer", "refused", "citations", "relevance", "truncated", "check": {"out_of_range",
//! "uncited_sentences"}, "chunks": [{"number", "doc", "heading_path", "span", "score", "chunk_ids",
//! "passage"}], "timings_ms": {stage: ms}, "usage": {"prompt_tokens", "completion_tokens"}}`.
//!
//! Errors have the server's OpenAI shape: 400 for bad JSON, an empty question or a bad knob; 503
//! (`rag_not_configured`) when the server was started without an index or without a chat model.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc::unbounded_channel;

use super::engine::{Event, Extras, Job};
use super::{ApiError, AppState, answer as record, parse};
use crate::constrain::Constraint;
use crate::llm::{ChatPart, SamplerConfig};
use crate::nn::bert::BertModel;
use crate::rag::StageTimings;
use crate::rag::answer::{
    self as rag_answer, Answer, AnswerConfig, build_prompt, citation_grammar, millis, refuse_early,
};
use crate::rag::index::RagIndex;
use crate::rag::pack::{PackConfig, PackOrder, Packed, budget_for, pack};
use crate::rag::rerank::{LlmJudge, MiniLmWindows, Reranker};
use crate::rag::retrieve::{Fusion, Mode, RetrieveConfig, retrieve};

/// What `/v1/rag` serves: an opened index, the embedder it was built with, and the defaults of a request.
#[derive(Debug)]
pub struct RagService {
    pub index: RagIndex,
    pub embedder: Arc<BertModel>,
    /// Hits retrieved when a request gives no `k`.
    pub k: usize,
    /// The retriever when a request gives no `mode`.
    pub mode: Mode,
    /// Refusal threshold, answer length and grammar when a request gives none.
    pub answer: AnswerConfig,
    /// How packed chunks are ordered.
    pub order: PackOrder,
}

impl RagService {
    /// A service with the defaults: 5 hits, hybrid RRF (`k = 60`), [`AnswerConfig::default`],
    /// lost-in-the-middle order.
    pub fn new(index: RagIndex, embedder: Arc<BertModel>) -> RagService {
        RagService {
            index,
            embedder,
            k: 5,
            mode: Mode::Hybrid(Fusion::Rrf { k: 60.0 }),
            answer: AnswerConfig::default(),
            order: PackOrder::LostInTheMiddle,
        }
    }
}

/// Candidates a reranker sees before the best `k` are kept.
const RERANK_DEPTH: usize = 20;
/// The largest `k` a request may ask for.
const MAX_K: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RagRequest {
    question: String,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    rerank: Option<String>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    constrained: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RerankKind {
    None,
    MiniLm,
    Llm,
}

fn unavailable(message: &str) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message, None, Some("rag_not_configured"))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e.to_string(), None, None)
}

pub(super) async fn rag(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let result = rag_inner(&state, body).await;
    record(&state, "/v1/rag", result)
}

async fn rag_inner(
    state: &Arc<AppState>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let started = Instant::now();
    let request: RagRequest = parse(body)?;
    let service = state
        .config
        .rag
        .clone()
        .ok_or_else(|| unavailable("no RAG index is configured on this server (start it with --rag-index DIR)"))?;
    let question = request.question.trim().to_owned();
    if question.is_empty() {
        return Err(ApiError::bad_request("question must not be empty", Some("question")));
    }
    let k = request.k.unwrap_or(service.k);
    if !(1..=MAX_K).contains(&k) {
        return Err(ApiError::bad_request(format!("k must be in 1..={MAX_K}, got {k}"), Some("k")));
    }
    let mode = match request.mode.as_deref() {
        None => service.mode,
        Some("sparse") => Mode::Sparse,
        Some("dense") => Mode::Dense,
        Some("hybrid-rrf") => Mode::Hybrid(Fusion::Rrf { k: 60.0 }),
        Some("hybrid-weighted") => Mode::Hybrid(Fusion::Weighted { dense_weight: 0.5 }),
        Some(other) => {
            return Err(ApiError::bad_request(
                format!("mode {other:?} is not sparse, dense, hybrid-rrf or hybrid-weighted"),
                Some("mode"),
            ));
        }
    };
    let rerank = match request.rerank.as_deref() {
        None | Some("none") => RerankKind::None,
        Some("minilm") => RerankKind::MiniLm,
        Some("llm") => RerankKind::Llm,
        Some(other) => {
            return Err(ApiError::bad_request(format!("rerank {other:?} is not none, minilm or llm"), Some("rerank")));
        }
    };
    let mut config = service.answer;
    if let Some(c) = request.constrained {
        config.constrained = c;
    }
    let (chat, engine) =
        state.chat.as_ref().ok_or_else(|| unavailable("no chat model is served here: /v1/rag needs one"))?;
    let chat = chat.clone();
    let context = engine.config().context.min(chat.model.config().context_len);
    if let Some(m) = request.max_tokens {
        if m == 0 || m >= context / 2 {
            return Err(ApiError::bad_request(
                format!("max_tokens must be in 1..{} (half this server's context), got {m}", context / 2),
                Some("max_tokens"),
            ));
        }
        config.max_tokens = m;
    }

    // Retrieval, reranking and packing are CPU work: off the async threads.
    let blocking_chat = chat.clone();
    let blocking_service = service.clone();
    let q = question.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        prepare(&blocking_service, &blocking_chat, &q, k, mode, rerank, &config, context)
    })
    .await
    .map_err(internal)?;
    let Prepared { hits, packed, relevance, mut timings, prompt } = prepared?;

    let answer = match prompt {
        None => Answer::refusal(),
        Some(prompt) => {
            let generate_started = Instant::now();
            let constraint = if config.constrained {
                let vocab = chat.vocabulary.as_ref().ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_IMPLEMENTED,
                        "server_error",
                        "constrained decoding is not available for this model's vocabulary",
                        Some("constrained"),
                        None,
                    )
                })?;
                citation_grammar(packed.len()).map(|g| Constraint::new(vocab, &g)).transpose().map_err(internal)?
            } else {
                None
            };
            let (tx, mut rx) = unbounded_channel();
            let prompt_len = prompt.len();
            let job = Job {
                prompt,
                max_tokens: config.max_tokens,
                sampler: SamplerConfig::greedy(),
                stop_tokens: chat.stop_tokens.clone(),
                stop_strings: Vec::new(),
                extras: Extras { constraint, ..Extras::default() },
                events: tx,
            };
            if !engine.submit(job) {
                return Err(unavailable("the engine has stopped"));
            }
            let mut text = String::new();
            let mut done = None;
            while let Some(event) = rx.recv().await {
                match event {
                    Event::Text(t) => text.push_str(&t),
                    Event::Done { finish, completion_tokens, .. } => {
                        done = Some((finish, completion_tokens));
                        break;
                    }
                    Event::Failed(message) => return Err(internal(message)),
                    Event::Token(_) | Event::PromptLogprobs(_) => {}
                }
            }
            let (finish, completion_tokens) = done.ok_or_else(|| internal("the engine dropped the request"))?;
            let mut a = Answer::from_text(&text, packed.len());
            a.truncated = finish == crate::llm::FinishReason::Length;
            a.prompt_tokens = prompt_len;
            a.completion_tokens = completion_tokens;
            a.timings.generate = generate_started.elapsed();
            a
        }
    };
    timings.generate = answer.timings.generate;
    let chunks: Vec<_> = packed
        .chunks
        .iter()
        .map(|c| {
            json!({
                "number": c.number, "doc": c.doc, "heading_path": c.heading_path, "passage": c.passage,
                "span": [c.span.start, c.span.end], "score": c.score, "chunk_ids": c.chunk_ids,
            })
        })
        .collect();
    let t = |d: Duration| millis(d);
    Ok(axum::Json(json!({
        "object": "rag.answer",
        "question": question,
        "answer": answer.text,
        "refused": answer.refused,
        "citations": answer.citations,
        "truncated": answer.truncated,
        "relevance": relevance,
        "check": {"out_of_range": answer.check.out_of_range, "uncited_sentences": answer.check.uncited_sentences},
        "chunks": chunks,
        "retrieved": hits,
        "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens},
        "timings_ms": {
            "embed": t(timings.embed), "sparse": t(timings.sparse), "dense": t(timings.dense), "fuse": t(timings.fuse),
            "rerank": t(timings.rerank), "pack": t(timings.pack), "generate": t(timings.generate),
            "total": t(started.elapsed()),
        },
    }))
    .into_response())
}

/// What the blocking half hands back: the hits (as JSON), the packed sources, the best relevance, the
/// stage timings, and the prompt's token ids (`None`: refuse without generating).
struct Prepared {
    hits: serde_json::Value,
    packed: Packed,
    relevance: Option<f32>,
    timings: StageTimings,
    prompt: Option<Vec<u32>>,
}

#[allow(clippy::too_many_arguments)]
fn prepare(
    service: &RagService,
    chat: &super::ChatModel,
    question: &str,
    k: usize,
    mode: Mode,
    rerank: RerankKind,
    config: &AnswerConfig,
    context: usize,
) -> std::result::Result<Prepared, ApiError> {
    let depth = if rerank == RerankKind::None { k } else { k.max(RERANK_DEPTH) };
    let retrieve_config = RetrieveConfig::new(mode, depth);
    let retrieved = retrieve(&service.index, &*service.embedder, question, &retrieve_config).map_err(internal)?;
    let mut timings = retrieved.timings;
    let mut hits = retrieved.hits;
    let rerank_started = Instant::now();
    match rerank {
        RerankKind::None => {}
        RerankKind::MiniLm => {
            MiniLmWindows::new(&*service.embedder).rerank(&service.index, question, &mut hits).map_err(internal)?
        }
        RerankKind::Llm => LlmJudge::new(chat.model.clone())
            .and_then(|judge| judge.rerank(&service.index, question, &mut hits))
            .map_err(internal)?,
    }
    if rerank != RerankKind::None {
        timings.rerank = rerank_started.elapsed();
    }
    hits.truncate(k);
    let relevance = rag_answer::relevance(&service.index, &*service.embedder, question, &hits).map_err(internal)?;
    let pack_started = Instant::now();
    let empty = build_prompt(question, &Packed::default());
    let overhead = encode(chat, &empty)?.len();
    let budget = budget_for(context, overhead, config.max_tokens);
    let pack_config = PackConfig { budget_tokens: budget, order: service.order, merge_overlaps: true };
    let packed = pack(&service.index, &hits, &*chat.tokenizer, &pack_config).map_err(internal)?;
    timings.pack = pack_started.elapsed();
    let prompt = if refuse_early(&packed, relevance, config) {
        None
    } else {
        Some(encode(chat, &build_prompt(question, &packed))?)
    };
    let hits_json = hits
        .iter()
        .map(|h| {
            let c = service.index.chunk(h.chunk);
            json!({
                "chunk": h.chunk, "doc": c.map(|c| c.doc.as_str()), "heading_path": c.map(|c| c.heading_path.clone()),
                "span": c.map(|c| [c.span.start, c.span.end]), "score": h.score, "dense": h.dense, "sparse": h.sparse,
                "rerank": h.rerank,
            })
        })
        .collect();
    Ok(Prepared { hits: serde_json::Value::Array(hits_json), packed, relevance, timings, prompt })
}

/// A conversation's token ids as the server encodes chat requests (contents without special tokens).
fn encode(chat: &super::ChatModel, messages: &[crate::llm::ChatMessage]) -> std::result::Result<Vec<u32>, ApiError> {
    let mut ids = Vec::new();
    for part in chat.template.render_parts(messages, None, true).map_err(internal)? {
        match part {
            ChatPart::Template(t) => ids.extend(chat.tokenizer.encode(&t)),
            ChatPart::Content(c) => ids.extend(chat.tokenizer.encode_ordinary(&c)),
        }
    }
    Ok(ids)
}
