//! `/v1/chat/completions` and `/v1/completions`: request validation, one engine sequence per
//! choice, and the answers, whole or streamed, with log-probabilities, tool calls and structured
//! output.
//!
//! Shapes follow OpenAI's API reference (<https://platform.openai.com/docs/api-reference/chat>,
//! the legacy `/completions` for `echo` and the `{tokens, token_logprobs, top_logprobs,
//! text_offset}` log-probabilities). Decisions where OpenAI leaves room:
//! - Log-probabilities are the model's own distribution (log-softmax of the raw logits), before
//!   temperature, penalties, `logit_bias` and the grammar mask, as OpenAI reports them (they do not
//!   change with temperature) and as the prompt scores of `echo` are: a token forced by a grammar
//!   keeps the probability the model gave it.
//! - Tools: when the model's chat template ignores `tools` (SmolLM2's does), a system message lists
//!   the functions' JSON schemas and the `<tool_call>{"name": …, "arguments": …}</tool_call>` form;
//!   earlier calls in the conversation are written in that form and `tool` results become user
//!   turns wrapped in `<tool_response>`. `tool_choice: "none"` neither shows nor allows tools.
//! - `response_format` is enforced for `strict: false` too (a grammar cannot be half applied), and
//!   `json_object` needs the word "JSON" in the messages, as OpenAI requires.
//!
//! Overload control ([`super::engine::Engine::try_submit`]):
//! - The KV budget: every choice is its own sequence with [`super::ServerConfig::context`]
//!   positions, so prompt tokens + `max_tokens` must fit in it: 400 `context_length_exceeded`
//!   naming both numbers, before admission. A request that gives no `max_tokens` gets what is left
//!   of the context, at most the default.
//! - A full queue: 503 `overloaded` with `Retry-After` (whole seconds, ≥ 1, from the recent drain
//!   rate); the request is not queued.
//! - The deadline ([`super::ServerConfig::request_timeout`] from admission): a whole answer not
//!   complete by then is 504 `timeout`, whether the request still waited (dropped before its
//!   prefill) or ran (cut). A stream has answered 200 already: each unfinished choice ends with
//!   `finish_reason: "length"` (cut by a limit, as `max_tokens` cuts), then an error event
//!   `{"error": {"type": "server_error", "code": "timeout", …}}`, then `[DONE]`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::engine::{Event, Extras, Job, Refused, TokenLogprob};
use super::openai::{self, OneOrMany, SamplingRequest, Usage};
use super::{ApiError, AppState, ChatModel, answer, parse, unix_now};
use crate::Error;
use crate::constrain::{Constraint, FunctionSpec, Grammar, ToolChoice, parse_tool_calls, tool_call_grammar};
use crate::llm::{ChatMessage, ChatPart, FinishReason, SamplerConfig, ToolCall};
use crate::tokenize::Bpe;

type ApiResult<T> = std::result::Result<T, ApiError>;

/// Most choices one request may ask for (`n`).
pub const MAX_CHOICES: usize = 8;
/// Most alternatives per token (`top_logprobs`, completions' `logprobs`).
pub const MAX_TOP_LOGPROBS: usize = 20;
/// The opening of a tool call in an assistant turn.
const TOOL_CALL_OPEN: &str = "<tool_call>";

/// Which OpenAI object the answer is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavour {
    Chat,
    Text,
}

/// The validated settings of one request.
struct Plan {
    flavour: Flavour,
    prompt: Vec<u32>,
    max_tokens: usize,
    /// The client gave `max_tokens` (else it is the default, cut to what the context leaves).
    explicit_max_tokens: bool,
    sampler: SamplerConfig,
    n: usize,
    stop_strings: Vec<String>,
    stream: bool,
    include_usage: bool,
    presence_penalty: f32,
    frequency_penalty: f32,
    logit_bias: Vec<(u32, f32)>,
    /// Per generated token: `Some(k)` reports its log-probability and `k` alternatives.
    logprobs: Option<usize>,
    /// Score the prompt (completions' `echo` with `logprobs`).
    prompt_logprobs: Option<usize>,
    /// The prompt text answered before the completion (`echo`).
    echo: Option<String>,
    /// The grammar every choice follows, and the request field it came from.
    grammar: Option<(Grammar, &'static str)>,
    /// Parse `<tool_call>` blocks out of the answer.
    tools: bool,
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(value: T, lo: T, hi: T, param: &str) -> ApiResult<T> {
    if value >= lo && value <= hi {
        Ok(value)
    } else {
        Err(ApiError::bad_request(format!("{param} {value} is not in [{lo}, {hi}]"), Some(param)))
    }
}

/// The shared sampling fields, validated into a [`Plan`] (prompt and extras filled by the caller).
fn plan(
    flavour: Flavour,
    sampling: SamplingRequest,
    max_tokens: Option<(i64, &str)>,
    default_max_tokens: usize,
    tokenizer: &Bpe,
) -> ApiResult<Plan> {
    let temperature = in_range(sampling.temperature.unwrap_or(1.0), 0.0, 2.0, "temperature")?;
    let top_p = sampling.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::bad_request(format!("top_p {top_p} is not in (0, 1]"), Some("top_p")));
    }
    let n = in_range(sampling.n.unwrap_or(1), 1, MAX_CHOICES as i64, "n")? as usize;
    let explicit_max_tokens = max_tokens.is_some();
    let max_tokens = match max_tokens {
        Some((m, param)) => in_range(m, 0, i64::MAX, param)? as usize,
        None => default_max_tokens,
    };
    let stop_strings = sampling.stop.map(OneOrMany::into_vec).unwrap_or_default();
    if stop_strings.len() > 4 {
        return Err(ApiError::bad_request("at most 4 stop sequences", Some("stop")));
    }
    let presence_penalty = in_range(sampling.presence_penalty.unwrap_or(0.0), -2.0, 2.0, "presence_penalty")?;
    let frequency_penalty = in_range(sampling.frequency_penalty.unwrap_or(0.0), -2.0, 2.0, "frequency_penalty")?;
    let logit_bias = logit_bias(sampling.logit_bias.as_ref(), tokenizer.vocab_size())?;
    // Without a seed every request draws differently, as OpenAI's do.
    let seed = match sampling.seed {
        Some(s) => s as u64,
        None => unseeded(),
    };
    Ok(Plan {
        flavour,
        prompt: Vec::new(),
        max_tokens,
        explicit_max_tokens,
        sampler: SamplerConfig { temperature, top_k: 0, top_p, seed },
        n,
        stop_strings,
        stream: sampling.stream,
        include_usage: sampling.stream_options.is_some_and(|o| o.include_usage),
        presence_penalty,
        frequency_penalty,
        logit_bias,
        logprobs: None,
        prompt_logprobs: None,
        echo: None,
        grammar: None,
        tools: false,
    })
}

/// A seed for a request that gave none: the clock's nanoseconds and a counter, mixed.
fn unseeded() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    mix(nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32))
}

/// SplitMix64's finaliser: choice `i > 0` of a seeded request draws from `mix(seed + i)`.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `logit_bias`: an object of token id (a decimal string) → bias in −100..100.
fn logit_bias(bias: Option<&Value>, vocab: usize) -> ApiResult<Vec<(u32, f32)>> {
    let bad = |m: String| ApiError::bad_request(m, Some("logit_bias"));
    let Some(bias) = bias.filter(|b| !b.is_null()) else { return Ok(Vec::new()) };
    let Some(map) = bias.as_object() else { return Err(bad("logit_bias must be an object".into())) };
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        let id: u32 = key.trim().parse().map_err(|_| bad(format!("logit_bias key {key:?} is not a token id")))?;
        if id as usize >= vocab {
            return Err(bad(format!("token id {id} is outside the vocabulary of {vocab}")));
        }
        let b = value.as_f64().ok_or_else(|| bad(format!("logit_bias[{key}] is not a number")))?;
        if !(-100.0..=100.0).contains(&b) {
            return Err(bad(format!("logit_bias[{key}] = {b} is not in [-100, 100]")));
        }
        out.push((id, b as f32));
    }
    Ok(out)
}

fn chat_model<'s>(state: &'s AppState, model: &str) -> ApiResult<&'s (ChatModel, super::engine::Engine)> {
    state.chat.as_ref().filter(|(chat, _)| chat.id == model).ok_or_else(|| ApiError::unknown_model(model))
}

// ---- chat -------------------------------------------------------------------------------------

pub(super) async fn chat_completions(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let result = chat_completions_inner(&state, body).await;
    answer(&state, "/v1/chat/completions", result)
}

async fn chat_completions_inner(
    state: &Arc<AppState>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let request: openai::ChatRequest = parse(body)?;
    let (chat, _) = chat_model(state, &request.model)?;
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty", Some("messages")));
    }
    let max_tokens = match (request.max_completion_tokens, request.max_tokens) {
        (Some(m), _) => Some((m, "max_completion_tokens")),
        (None, Some(m)) => Some((m, "max_tokens")),
        (None, None) => None,
    };
    let mut plan = plan(Flavour::Chat, request.sampling, max_tokens, state.config.default_max_tokens, &chat.tokenizer)?;
    plan.logprobs = match (request.logprobs.unwrap_or(false), request.top_logprobs) {
        (true, top) => Some(in_range(top.unwrap_or(0), 0, MAX_TOP_LOGPROBS as i64, "top_logprobs")? as usize),
        (false, Some(_)) => {
            return Err(ApiError::bad_request("top_logprobs needs logprobs: true", Some("top_logprobs")));
        }
        (false, None) => None,
    };

    let tools = tools(request.tools.as_ref(), request.tool_choice.as_ref())?;
    let mut messages = request_messages(&request.messages)?;
    let format = response_format(request.response_format.as_ref(), &messages)?;
    let native = chat.template.uses_tools();
    let template_tools = tools.as_ref().map(|(_, _, raw)| raw).filter(|_| native);
    if !native {
        messages = with_tools_in_prompt(messages, tools.as_ref().map(|(_, _, raw)| raw));
    }
    if let Some((specs, choice, _)) = &tools {
        if format.is_some() {
            return Err(ApiError::bad_request(
                "response_format cannot be combined with tools that may be called",
                Some("response_format"),
            ));
        }
        let mut grammar = tool_call_grammar(specs, choice).map_err(|e| grammar_error(e, "tools"))?;
        if request.parallel_tool_calls == Some(false) {
            grammar = grammar.map(one_call_at_most);
        }
        plan.grammar = grammar.map(|g| (g, "tools"));
        plan.tools = true;
    } else {
        plan.grammar = format.map(|g| (g, "response_format"));
    }
    plan.prompt = encode_chat(chat, &messages, template_tools)?;
    run(state, &request.model, plan).await
}

/// `parallel_tool_calls: false`: the tool-call grammar with one call block where it allows several.
/// [`tool_call_grammar`]'s Lark starts with `start: calls` (or `start: TEXT | calls`), `calls` being
/// one or more `call`s; another form is left as it is (several calls stay possible).
fn one_call_at_most(grammar: Grammar) -> Grammar {
    match grammar {
        Grammar::Lark(lark) => {
            let first_line = lark.lines().next().unwrap_or_default();
            let single = first_line.replace("calls", "call");
            if first_line.starts_with("start:") && single != first_line {
                Grammar::Lark(format!("{single}{}", &lark[first_line.len()..]))
            } else {
                Grammar::Lark(lark)
            }
        }
        other => other,
    }
}

/// A grammar error as a 400 on `param` (an unsupported JSON schema keyword is named).
fn grammar_error(e: Error, param: &str) -> ApiError {
    match e {
        Error::UnsupportedSchema { keyword, reason } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("the JSON schema keyword `{keyword}` is not supported: {reason}"),
            Some(param),
            Some("unsupported_schema"),
        ),
        other => ApiError::bad_request(other.to_string(), Some(param)),
    }
}

/// The messages as the chat template takes them.
fn request_messages(messages: &[openai::RequestMessage]) -> ApiResult<Vec<ChatMessage>> {
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let param = |field: &str| format!("messages[{i}].{field}");
        let role = match m.role.as_str() {
            "developer" => "system",
            r @ ("system" | "user" | "assistant" | "tool") => r,
            other => return Err(ApiError::bad_request(format!("unsupported role {other:?}"), Some(&param("role")))),
        };
        let content = openai::message_text(&m.content).ok_or_else(|| {
            ApiError::bad_request("content must be a string or a list of text parts", Some(&param("content")))
        })?;
        let mut message = ChatMessage::new(role, content);
        if m.content.is_null() {
            message.content = None;
        }
        if role == "assistant"
            && let Some(calls) = m.tool_calls.as_ref().filter(|c| !c.is_null())
        {
            message.tool_calls =
                history_calls(calls).map_err(|e| ApiError::bad_request(e, Some(&param("tool_calls"))))?;
        }
        if role == "tool" {
            let id = m.tool_call_id.clone().ok_or_else(|| {
                ApiError::bad_request("a tool message needs tool_call_id", Some(&param("tool_call_id")))
            })?;
            message.tool_call_id = Some(id);
            message.name.clone_from(&m.name);
        }
        if message.content.is_none() && message.tool_calls.is_empty() {
            return Err(ApiError::bad_request("content is missing", Some(&param("content"))));
        }
        out.push(message);
    }
    Ok(out)
}

/// An assistant turn's `tool_calls` as OpenAI sends them back.
fn history_calls(calls: &Value) -> std::result::Result<Vec<ToolCall>, String> {
    let list = calls.as_array().ok_or("tool_calls must be a list")?;
    list.iter()
        .map(|c| {
            let function = c.get("function").ok_or("a tool call needs a function")?;
            let name = function.get("name").and_then(Value::as_str).ok_or("a tool call needs function.name")?;
            let arguments = match function.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(v @ Value::Object(_)) => v.to_string(),
                _ => return Err("function.arguments must be a JSON string".to_owned()),
            };
            serde_json::from_str::<Value>(&arguments)
                .map_err(|e| format!("function.arguments of {name} is not JSON: {e}"))?;
            let id = c.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
            Ok(ToolCall { id, name: name.to_owned(), arguments })
        })
        .collect()
}

/// `tools` and `tool_choice`: the functions, the choice and the raw list for the template; `None`
/// when no tool may be called.
fn tools(tools: Option<&Value>, choice: Option<&Value>) -> ApiResult<Option<(Vec<FunctionSpec>, ToolChoice, Value)>> {
    let tools = tools.filter(|t| !t.is_null());
    let choice = choice.filter(|c| !c.is_null());
    let Some(raw) = tools else {
        if choice.is_some() {
            return Err(ApiError::bad_request("tool_choice is only allowed when tools are given", Some("tool_choice")));
        }
        return Ok(None);
    };
    let list = raw
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| ApiError::bad_request("tools must be a non-empty list of functions", Some("tools")))?;
    let mut specs = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let param = format!("tools[{i}]");
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(ApiError::bad_request("only tools of type \"function\" are served", Some(&param)));
        }
        let function = tool
            .get("function")
            .filter(|f| f.is_object())
            .ok_or_else(|| ApiError::bad_request("a tool needs a function object", Some(&param)))?;
        let name =
            function.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).ok_or_else(|| {
                ApiError::bad_request("a function needs a name", Some(&format!("{param}.function.name")))
            })?;
        let parameters =
            function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        let description = function.get("description").and_then(Value::as_str).map(str::to_owned);
        specs.push(FunctionSpec { name: name.to_owned(), description, parameters });
    }
    let choice = match choice {
        None => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "none" => return Ok(None),
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            other => {
                return Err(ApiError::bad_request(format!("unknown tool_choice {other:?}"), Some("tool_choice")));
            }
        },
        Some(v) => {
            let name = v.pointer("/function/name").and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad_request(
                    "tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\"}}",
                    Some("tool_choice"),
                )
            })?;
            if !specs.iter().any(|s| s.name == name) {
                return Err(ApiError::bad_request(
                    format!("tool_choice names {name:?}, not in tools"),
                    Some("tool_choice"),
                ));
            }
            ToolChoice::Function(name.to_owned())
        }
    };
    Ok(Some((specs, choice, raw.clone())))
}

/// `response_format` as a grammar (`None` for text).
fn response_format(format: Option<&Value>, messages: &[ChatMessage]) -> ApiResult<Option<Grammar>> {
    let Some(format) = format.filter(|f| !f.is_null()) else { return Ok(None) };
    let bad = |m: &str| ApiError::bad_request(m, Some("response_format"));
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => {
            // OpenAI's rule: the model must be told to answer in JSON, or it may loop on whitespace.
            if !messages.iter().any(|m| m.text().to_lowercase().contains("json")) {
                return Err(ApiError::bad_request(
                    "'messages' must contain the word 'json' in some form to use response_format json_object",
                    Some("messages"),
                ));
            }
            Ok(Some(Grammar::JsonObject))
        }
        Some("json_schema") => {
            let spec = format
                .get("json_schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| bad("response_format json_schema needs a json_schema object"))?;
            if spec.get("name").and_then(Value::as_str).is_none() {
                return Err(bad("response_format.json_schema needs a name"));
            }
            let schema = spec.get("schema").cloned().unwrap_or_else(|| json!({}));
            if !schema.is_object() && !schema.is_boolean() {
                return Err(bad("response_format.json_schema.schema must be a JSON schema object"));
            }
            Ok(Some(Grammar::JsonSchema(schema)))
        }
        _ => Err(bad("response_format.type must be text, json_object or json_schema")),
    }
}

/// The conversation for a template that ignores tools: a system message that lists the functions
/// (when some may be called) and the call form; earlier calls written in that form, tool results as
/// user turns.
fn with_tools_in_prompt(messages: Vec<ChatMessage>, tools: Option<&Value>) -> Vec<ChatMessage> {
    let mut rest = messages.into_iter().peekable();
    let mut out = Vec::new();
    if let Some(tools) = tools {
        let mut listing = String::from(
            "You can call functions. Their JSON schemas, one per line, inside <tools></tools>:\n<tools>\n",
        );
        for tool in tools.as_array().into_iter().flatten() {
            listing.push_str(&tool.to_string());
            listing.push('\n');
        }
        listing.push_str(
            "</tools>\nTo call a function, answer with one block per call:\n\
             <tool_call>\n{\"name\": \"<function name>\", \"arguments\": {<arguments as its schema says>}}\n</tool_call>\n\
             Results come back inside <tool_response></tool_response>.",
        );
        match rest.peek() {
            Some(first) if first.role == "system" => {
                let system = rest.next().unwrap_or_default();
                out.push(ChatMessage::new("system", format!("{}\n\n{listing}", system.text())));
            }
            _ => out.push(ChatMessage::new("system", listing)),
        }
    }
    for m in rest {
        match m.role.as_str() {
            "assistant" if !m.tool_calls.is_empty() => {
                let mut text = m.text().to_owned();
                for call in &m.tool_calls {
                    let arguments: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&format!(
                        "{TOOL_CALL_OPEN}\n{}\n</tool_call>",
                        json!({"name": call.name, "arguments": arguments})
                    ));
                }
                out.push(ChatMessage::new("assistant", text));
            }
            "tool" => out.push(ChatMessage::new("user", format!("<tool_response>\n{}\n</tool_response>", m.text()))),
            _ => out.push(m),
        }
    }
    out
}

/// Token ids of a conversation: the template's text with special tokens, the contents without
/// (so that typed `<|im_start|>` stays text).
fn encode_chat(chat: &ChatModel, messages: &[ChatMessage], tools: Option<&Value>) -> ApiResult<Vec<u32>> {
    let mut ids = Vec::new();
    let parts = chat
        .template
        .render_parts(messages, tools, true)
        .map_err(|e| ApiError::bad_request(e.to_string(), Some("messages")))?;
    for part in parts {
        match part {
            ChatPart::Template(t) => ids.extend(chat.tokenizer.encode(&t)),
            ChatPart::Content(c) => ids.extend(chat.tokenizer.encode_ordinary(&c)),
        }
    }
    Ok(ids)
}

// ---- text completions -----------------------------------------------------------------------

pub(super) async fn completions(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let result = completions_inner(&state, body).await;
    answer(&state, "/v1/completions", result)
}

async fn completions_inner(
    state: &Arc<AppState>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let request: openai::CompletionRequest = parse(body)?;
    let (chat, _) = chat_model(state, &request.model)?;
    let prompts = request.prompt.into_vec();
    let [prompt] = prompts.as_slice() else {
        return Err(ApiError::bad_request("exactly one prompt string is served per request", Some("prompt")));
    };
    let max_tokens = request.max_tokens.map(|m| (m, "max_tokens"));
    let mut plan = plan(Flavour::Text, request.sampling, max_tokens, 16, &chat.tokenizer)?;
    plan.logprobs = match request.logprobs {
        Some(k) => Some(in_range(k, 0, MAX_TOP_LOGPROBS as i64, "logprobs")? as usize),
        None => None,
    };
    if request.echo {
        plan.echo = Some(prompt.clone());
        plan.prompt_logprobs = plan.logprobs;
    }
    plan.prompt = chat.tokenizer.encode_ordinary(prompt);
    run(state, &request.model, plan).await
}

// ---- running and answering ----------------------------------------------------------------

/// What one choice produced.
#[derive(Default)]
struct ChoiceOutput {
    text: String,
    tokens: Vec<TokenLogprob>,
    prompt: Option<Vec<TokenLogprob>>,
    finish: Option<FinishReason>,
    prompt_tokens: usize,
    completion_tokens: usize,
}

async fn run(state: &Arc<AppState>, model: &str, mut plan: Plan) -> ApiResult<Response> {
    let (chat, engine) = chat_model(state, model)?;
    let deadline = Instant::now() + state.config.request_timeout;
    let context = engine.config().context.min(chat.model.config().context_len);
    let prompt_param = if plan.flavour == Flavour::Chat { "messages" } else { "prompt" };
    let over_budget = |message: String, param: &str| {
        shed(state, "kv_budget");
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message,
            Some(param),
            Some("context_length_exceeded"),
        )
    };
    if plan.prompt.len() >= context {
        return Err(over_budget(
            format!("the prompt has {} tokens; this server's context is {context}", plan.prompt.len()),
            prompt_param,
        ));
    }
    if !plan.explicit_max_tokens {
        plan.max_tokens = plan.max_tokens.min(context - plan.prompt.len());
    } else if plan.prompt.len() + plan.max_tokens > context {
        return Err(over_budget(
            format!(
                "this server's context is {context} tokens per sequence, but {} were requested ({} in the prompt, \
                 {} in max_tokens); reduce the prompt or max_tokens",
                plan.prompt.len() + plan.max_tokens,
                plan.prompt.len(),
                plan.max_tokens
            ),
            "max_tokens",
        ));
    }
    // Every constraint is built before any sequence starts, so a bad grammar answers 400 alone.
    let mut constraints = Vec::with_capacity(plan.n);
    for _ in 0..plan.n {
        constraints.push(match &plan.grammar {
            Some((grammar, param)) => {
                let vocab = chat.vocabulary.as_ref().ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_IMPLEMENTED,
                        "server_error",
                        "constrained decoding is not available for this model's vocabulary",
                        Some(param),
                        None,
                    )
                })?;
                Some(Constraint::new(vocab, grammar).map_err(|e| grammar_error(e, param))?)
            }
            None => None,
        });
    }
    let mut receivers = Vec::with_capacity(plan.n);
    let mut jobs = Vec::with_capacity(plan.n);
    for (index, constraint) in constraints.into_iter().enumerate() {
        let (tx, rx) = unbounded_channel();
        let seed = if index == 0 { plan.sampler.seed } else { mix(plan.sampler.seed.wrapping_add(index as u64)) };
        let job = Job {
            prompt: plan.prompt.clone(),
            max_tokens: plan.max_tokens,
            sampler: SamplerConfig { seed, ..plan.sampler },
            stop_tokens: chat.stop_tokens.clone(),
            stop_strings: plan.stop_strings.clone(),
            extras: Extras {
                logprobs: plan.logprobs,
                prompt_logprobs: plan.prompt_logprobs,
                presence_penalty: plan.presence_penalty,
                frequency_penalty: plan.frequency_penalty,
                logit_bias: plan.logit_bias.clone(),
                constraint,
            },
            events: tx,
        };
        jobs.push(job);
        receivers.push(rx);
    }
    match engine.try_submit(jobs, Some(deadline)) {
        Ok(()) => {}
        Err(Refused::QueueFull { waiting, retry_after }) => {
            let why = format!("the server is overloaded ({waiting} sequences wait)");
            return Ok(overloaded(state, "queue_full", &why, retry_after));
        }
        Err(Refused::DeadlineUnreachable { waiting, expected_finish, retry_after }) => {
            let why = format!(
                "the server is overloaded: {waiting} sequences wait, it would finish in about {:.1} s, past this request's deadline",
                expected_finish.as_secs_f64()
            );
            return Ok(overloaded(state, "deadline_unreachable", &why, retry_after));
        }
        Err(Refused::Stopped) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the engine has stopped",
                None,
                None,
            ));
        }
    }
    let number = state.next_id.fetch_add(1, Ordering::Relaxed);
    let id = format!("{}-{number}", if plan.flavour == Flavour::Chat { "chatcmpl" } else { "cmpl" });
    let created = unix_now();
    let answer = Answer {
        id,
        created,
        model: model.to_owned(),
        flavour: plan.flavour,
        tokenizer: chat.tokenizer.clone(),
        echo: plan.echo.clone(),
        logprobs: plan.logprobs.is_some(),
        tools: plan.tools,
        state: state.clone(),
    };
    if plan.stream {
        let stream = sse_stream(receivers, answer, plan.include_usage, deadline);
        return Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response());
    }
    let mut outputs = Vec::with_capacity(receivers.len());
    for rx in receivers {
        match collect(rx, deadline).await {
            Ok(o) => outputs.push(o),
            Err(e) => {
                if e.body.error.code.as_deref() == Some("timeout") {
                    shed(state, "deadline");
                }
                return Err(e);
            }
        }
    }
    let usage =
        Usage::new(outputs.first().map_or(0, |o| o.prompt_tokens), outputs.iter().map(|o| o.completion_tokens).sum());
    let choices: Vec<Value> = outputs.iter().enumerate().map(|(i, o)| answer.choice(i, o)).collect();
    let object = if plan.flavour == Flavour::Chat { "chat.completion" } else { "text_completion" };
    Ok(axum::Json(json!({
        "id": answer.id, "object": object, "created": created, "model": model,
        "choices": choices, "usage": usage, "system_fingerprint": null,
    }))
    .into_response())
}

/// Counts a request refused by overload control: `sovereign_requests_shed_total{reason, priority}`
/// (`reason` = `queue_full`, `deadline` or `kv_budget`; this server has no priorities).
fn shed(state: &AppState, reason: &str) {
    state.metrics.shed.with(&[reason, ""]).inc();
}

/// A refusal at admission: counted as shed for `reason`, answered 503 `overloaded` with `why` and a
/// `Retry-After` of whole seconds (at least 1).
fn overloaded(state: &AppState, reason: &str, why: &str, retry_after: std::time::Duration) -> Response {
    shed(state, reason);
    let seconds = retry_after.as_secs().max(1);
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        format!("{why}; retry in {seconds} s"),
        None,
        Some("overloaded"),
    )
    .into_response();
    response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
    response
}

/// The answer to a request whose deadline passed.
fn timed_out() -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "server_error",
        "the request did not complete before its deadline (the server's request timeout)",
        None,
        Some("timeout"),
    )
}

/// Waits for a whole choice, until `deadline` (then the engine's failure, or the channel's end, is
/// the deadline's: [`timed_out`]).
async fn collect(mut rx: UnboundedReceiver<Event>, deadline: Instant) -> ApiResult<ChoiceOutput> {
    let mut out = ChoiceOutput::default();
    loop {
        let event = match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Err(_) => return Err(timed_out()),
            Ok(None) if Instant::now() >= deadline => return Err(timed_out()),
            Ok(None) => break,
            Ok(Some(Event::Failed(_))) if Instant::now() >= deadline => return Err(timed_out()),
            Ok(Some(event)) => event,
        };
        match event {
            Event::Text(t) => out.text.push_str(&t),
            Event::Token(t) => out.tokens.push(t),
            Event::PromptLogprobs(p) => out.prompt = Some(p),
            Event::Done { finish, prompt_tokens, completion_tokens } => {
                out.finish = Some(finish);
                out.prompt_tokens = prompt_tokens;
                out.completion_tokens = completion_tokens;
                return Ok(out);
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

/// How answers of one request are written.
struct Answer {
    id: String,
    created: u64,
    model: String,
    flavour: Flavour,
    tokenizer: Arc<Bpe>,
    echo: Option<String>,
    logprobs: bool,
    tools: bool,
    state: Arc<AppState>,
}

impl Answer {
    fn token_text(&self, id: u32) -> (String, Vec<u8>) {
        let bytes = self.tokenizer.token_bytes(id).unwrap_or(b"\xEF\xBF\xBD").to_vec();
        (String::from_utf8_lossy(&bytes).into_owned(), bytes)
    }

    /// Chat's `logprobs.content` entries.
    fn chat_logprobs(&self, tokens: &[TokenLogprob]) -> Value {
        let entry = |id: u32, logprob: f32| {
            let (token, bytes) = self.token_text(id);
            json!({"token": token, "logprob": logprob, "bytes": bytes})
        };
        let content: Vec<Value> = tokens
            .iter()
            .map(|t| {
                let mut e = entry(t.id, t.logprob.unwrap_or(0.0));
                e["top_logprobs"] = t.top.iter().map(|&(id, lp)| entry(id, lp)).collect();
                e
            })
            .collect();
        json!({"content": content, "refusal": null})
    }

    /// The legacy completions shape; `offset` is the text's length (in characters) before `tokens`.
    fn text_logprobs(&self, tokens: &[TokenLogprob], mut offset: usize) -> Value {
        let (mut names, mut logprobs, mut tops, mut offsets) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for t in tokens {
            let (name, _) = self.token_text(t.id);
            offsets.push(offset);
            offset += name.chars().count();
            names.push(name);
            logprobs.push(t.logprob.map_or(Value::Null, |l| json!(l)));
            if t.logprob.is_none() {
                tops.push(Value::Null);
            } else {
                let mut top = Map::new();
                for &(id, lp) in &t.top {
                    top.entry(self.token_text(id).0).or_insert(json!(lp));
                }
                tops.push(Value::Object(top));
            }
        }
        json!({"tokens": names, "token_logprobs": logprobs, "top_logprobs": tops, "text_offset": offsets})
    }

    /// A whole choice.
    fn choice(&self, index: usize, o: &ChoiceOutput) -> Value {
        let finish = o.finish.unwrap_or(FinishReason::Stop);
        match self.flavour {
            Flavour::Chat => {
                let logprobs = if self.logprobs { self.chat_logprobs(&o.tokens) } else { Value::Null };
                let (content, calls) = self.split_calls(&o.text);
                let mut message = json!({"role": "assistant", "content": content, "refusal": null});
                let mut finish = finish_name(finish);
                if !calls.is_empty() {
                    message["tool_calls"] = calls.iter().map(call_json).collect();
                    finish = "tool_calls";
                }
                json!({"index": index, "message": message, "finish_reason": finish, "logprobs": logprobs})
            }
            Flavour::Text => {
                let mut text = self.echo.clone().unwrap_or_default();
                let mut tokens = Vec::new();
                if self.echo.is_some() {
                    tokens.extend(o.prompt.iter().flatten().cloned());
                }
                tokens.extend(o.tokens.iter().cloned());
                text.push_str(&o.text);
                let logprobs = if self.logprobs { self.text_logprobs(&tokens, 0) } else { Value::Null };
                json!({"index": index, "text": text, "finish_reason": finish_name(finish), "logprobs": logprobs})
            }
        }
    }

    /// An assistant turn's text and tool calls (`content` null when it only calls tools).
    fn split_calls(&self, text: &str) -> (Value, Vec<ToolCall>) {
        if !self.tools || !text.contains(TOOL_CALL_OPEN) {
            return (json!(text), Vec::new());
        }
        let first = self.state.next_call.fetch_add(32, Ordering::Relaxed) as usize;
        match parse_tool_calls(text, first) {
            Ok((content, calls)) if !calls.is_empty() => {
                let content = if content.trim().is_empty() { Value::Null } else { json!(content) };
                (content, calls)
            }
            _ => (json!(text), Vec::new()),
        }
    }

    fn chunk(&self, choices: Value, usage: Option<Usage>) -> SseEvent {
        let object = if self.flavour == Flavour::Chat { "chat.completion.chunk" } else { "text_completion" };
        let mut v = json!({
            "id": self.id, "object": object, "created": self.created, "model": self.model, "choices": choices,
        });
        if let Some(u) = usage {
            v["usage"] = json!(u);
        }
        SseEvent::default().data(v.to_string())
    }
}

fn call_json(call: &ToolCall) -> Value {
    json!({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}})
}

/// One choice's progress in a stream.
#[derive(Default)]
struct ChoiceStream {
    /// Log-probabilities of tokens whose text has not been sent yet.
    pending: Vec<TokenLogprob>,
    /// With tools: every text so far, and how much of it went out as content.
    text: String,
    sent: usize,
    /// A `<tool_call>` has begun: the rest goes out as tool calls at the end.
    calling: bool,
    /// Characters sent (completions' `text_offset`).
    chars: usize,
    /// Its finish chunk went out.
    finished: bool,
}

/// Server-sent events: role chunks (chat), text / tool-call chunks tagged with their choice's
/// index, a finish chunk per choice, a usage chunk if asked, `[DONE]`.
fn sse_stream(
    receivers: Vec<UnboundedReceiver<Event>>,
    answer: Answer,
    include_usage: bool,
    deadline: Instant,
) -> impl Stream<Item = std::result::Result<SseEvent, Infallible>> {
    let n = receivers.len();
    let events = futures_util::stream::select_all(receivers.into_iter().enumerate().map(|(i, rx)| {
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
            .map(move |e| (i, e))
            .boxed()
    }));
    struct StreamState<S> {
        events: S,
        answer: Answer,
        choices: Vec<ChoiceStream>,
        queue: VecDeque<SseEvent>,
        done: usize,
        prompt_tokens: usize,
        completion_tokens: usize,
        ended: bool,
    }
    let mut start = VecDeque::new();
    for i in 0..n {
        match answer.flavour {
            Flavour::Chat => start.push_back(answer.chunk(
                json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": null, "logprobs": null}]),
                None,
            )),
            Flavour::Text if !answer.logprobs => {
                if let Some(echo) = &answer.echo {
                    start.push_back(answer.chunk(
                        json!([{"index": i, "text": echo, "finish_reason": null, "logprobs": null}]),
                        None,
                    ));
                }
            }
            Flavour::Text => {}
        }
    }
    let state = StreamState {
        events,
        answer,
        choices: (0..n).map(|_| ChoiceStream::default()).collect(),
        queue: start,
        done: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        ended: false,
    };
    futures_util::stream::unfold(state, move |mut s| async move {
        loop {
            if let Some(event) = s.queue.pop_front() {
                return Some((Ok(event), s));
            }
            if s.ended {
                return None;
            }
            let next = tokio::time::timeout_at(deadline.into(), s.events.next()).await;
            let past = Instant::now() >= deadline;
            let (i, event) = match next {
                Ok(Some((_, Event::Failed(_)))) | Ok(None) | Err(_) if past => {
                    end_at_deadline(&mut s.queue, &s.answer, &mut s.choices);
                    s.ended = true;
                    continue;
                }
                Ok(Some(next)) => next,
                Ok(None) | Err(_) => {
                    s.ended = true;
                    continue;
                }
            };
            match event {
                Event::Token(t) => s.choices[i].pending.push(t),
                Event::PromptLogprobs(p) => {
                    if let Some(echo) = s.answer.echo.clone() {
                        let logprobs = s.answer.text_logprobs(&p, 0);
                        s.choices[i].chars = echo.chars().count();
                        let c = json!([{"index": i, "text": echo, "finish_reason": null, "logprobs": logprobs}]);
                        s.queue.push_back(s.answer.chunk(c, None));
                    }
                }
                Event::Text(t) => {
                    let text = if s.answer.tools { tool_stream_text(&mut s.choices[i], &t, false) } else { t };
                    if !text.is_empty() || !s.choices[i].pending.is_empty() {
                        let chunk = text_chunk(&s.answer, &mut s.choices[i], i, &text);
                        s.queue.push_back(chunk);
                    }
                }
                Event::Done { finish, prompt_tokens, completion_tokens } => {
                    s.prompt_tokens = prompt_tokens;
                    s.completion_tokens += completion_tokens;
                    let mut finish = finish_name(finish);
                    if s.answer.tools {
                        let text = tool_stream_text(&mut s.choices[i], "", true);
                        if !text.is_empty() {
                            let chunk = text_chunk(&s.answer, &mut s.choices[i], i, &text);
                            s.queue.push_back(chunk);
                        }
                        let (_, calls) = s.answer.split_calls(&s.choices[i].text);
                        let c = &mut s.choices[i];
                        if calls.is_empty() && c.sent < c.text.len() {
                            // A `<tool_call>` that did not parse goes out as text.
                            let rest = c.text[c.sent..].to_owned();
                            c.sent = c.text.len();
                            let chunk = text_chunk(&s.answer, c, i, &rest);
                            s.queue.push_back(chunk);
                        }
                        for (k, call) in calls.iter().enumerate() {
                            let opening = json!({"index": k, "id": call.id, "type": "function",
                                "function": {"name": call.name, "arguments": ""}});
                            let arguments = json!({"index": k, "function": {"arguments": call.arguments}});
                            for delta in [opening, arguments] {
                                let c = json!([{"index": i, "delta": {"tool_calls": [delta]}, "finish_reason": null, "logprobs": null}]);
                                s.queue.push_back(s.answer.chunk(c, None));
                            }
                        }
                        if !calls.is_empty() {
                            finish = "tool_calls";
                        }
                    }
                    if !s.choices[i].pending.is_empty() {
                        let chunk = text_chunk(&s.answer, &mut s.choices[i], i, "");
                        s.queue.push_back(chunk);
                    }
                    let c = match s.answer.flavour {
                        Flavour::Chat => json!([{"index": i, "delta": {}, "finish_reason": finish, "logprobs": null}]),
                        Flavour::Text => json!([{"index": i, "text": "", "finish_reason": finish, "logprobs": null}]),
                    };
                    s.queue.push_back(s.answer.chunk(c, None));
                    s.choices[i].finished = true;
                    s.done += 1;
                    if s.done == n {
                        if include_usage {
                            let usage = Usage::new(s.prompt_tokens, s.completion_tokens);
                            s.queue.push_back(s.answer.chunk(json!([]), Some(usage)));
                        }
                        s.queue.push_back(SseEvent::default().data("[DONE]"));
                        s.ended = true;
                    }
                }
                Event::Failed(message) => {
                    let body =
                        json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}});
                    s.queue.push_back(SseEvent::default().data(body.to_string()));
                    s.queue.push_back(SseEvent::default().data("[DONE]"));
                    s.ended = true;
                }
            }
        }
    })
}

/// A stream cut at its deadline: a `length` finish chunk for each unfinished choice, the error
/// event, `[DONE]`; counted as shed for the deadline.
fn end_at_deadline(queue: &mut VecDeque<SseEvent>, answer: &Answer, choices: &mut [ChoiceStream]) {
    for (i, c) in choices.iter_mut().enumerate().filter(|(_, c)| !c.finished) {
        c.finished = true;
        let chunk = match answer.flavour {
            Flavour::Chat => json!([{"index": i, "delta": {}, "finish_reason": "length", "logprobs": null}]),
            Flavour::Text => json!([{"index": i, "text": "", "finish_reason": "length", "logprobs": null}]),
        };
        queue.push_back(answer.chunk(chunk, None));
    }
    let error = timed_out().body;
    queue.push_back(SseEvent::default().data(json!(error).to_string()));
    queue.push_back(SseEvent::default().data("[DONE]"));
    shed(&answer.state, "deadline");
}

/// A content chunk of choice `i` carrying its pending log-probabilities.
fn text_chunk(answer: &Answer, c: &mut ChoiceStream, i: usize, text: &str) -> SseEvent {
    let pending = std::mem::take(&mut c.pending);
    let choices = match answer.flavour {
        Flavour::Chat => {
            let logprobs = if answer.logprobs { answer.chat_logprobs(&pending) } else { Value::Null };
            json!([{"index": i, "delta": {"content": text}, "finish_reason": null, "logprobs": logprobs}])
        }
        Flavour::Text => {
            let logprobs = if answer.logprobs { answer.text_logprobs(&pending, c.chars) } else { Value::Null };
            json!([{"index": i, "text": text, "finish_reason": null, "logprobs": logprobs}])
        }
    };
    c.chars += text.chars().count();
    answer.chunk(choices, None)
}

/// With tools: what of the text so far may go out as content. Text before a `<tool_call>` does;
/// a possible start of one is held back; after one begins nothing does (the calls go at the end).
/// `last` releases what was held back when no call came.
fn tool_stream_text(c: &mut ChoiceStream, more: &str, last: bool) -> String {
    c.text.push_str(more);
    if c.calling {
        return String::new();
    }
    let upto = match c.text[c.sent..].find(TOOL_CALL_OPEN) {
        Some(at) => {
            c.calling = true;
            c.sent + at
        }
        None if last => c.text.len(),
        None => {
            // The longest suffix that is a prefix of `<tool_call>` waits.
            let tail = &c.text[c.sent..];
            let held = (1..TOOL_CALL_OPEN.len().min(tail.len() + 1))
                .rev()
                .find(|&k| tail.is_char_boundary(tail.len() - k) && TOOL_CALL_OPEN.starts_with(&tail[tail.len() - k..]))
                .unwrap_or(0);
            c.text.len() - held
        }
    };
    let out = c.text[c.sent..upto].to_owned();
    c.sent = upto;
    out
}
