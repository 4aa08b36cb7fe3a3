//! The OpenAI API's JSON shapes (chat completions, completions, embeddings, models, errors).
//!
//! Field names and meanings follow OpenAI's API reference
//! (<https://platform.openai.com/docs/api-reference>): what the official
//! clients send and expect. Unknown request fields are ignored, as OpenAI does;
//! values out of OpenAI's ranges are refused with a 400 naming the field.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A string or a list of strings (`stop`, embeddings `input`, completions `prompt`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings, in order.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A chat message as sent by clients (`content` may be a string or a list of text parts).
#[derive(Debug, Clone, Deserialize)]
pub struct RequestMessage {
    /// `system`, `user`, `assistant`, `tool` (or `developer`, treated as `system`).
    pub role: String,
    /// The text, or parts of which the `text` ones are used; `null` on an assistant turn that only
    /// calls tools.
    #[serde(default)]
    pub content: Value,
    /// On an assistant turn: the calls it made (`[{id, type: "function", function: {name, arguments}}]`).
    #[serde(default)]
    pub tool_calls: Option<Value>,
    /// On a `tool` message: the id of the call it answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// On a `tool` message: the function's name (optional).
    #[serde(default)]
    pub name: Option<String>,
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the token usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// The sampling and stopping fields chat and text completions share (numbers are signed so that
/// an out-of-range value is a 400 naming its `param`, not a JSON error).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SamplingRequest {
    /// Sampling temperature, 0–2 (default 1).
    pub temperature: Option<f32>,
    /// Nucleus mass, (0, 1] (default 1).
    pub top_p: Option<f32>,
    /// Number of choices, 1–8: each is its own sequence in the batch.
    pub n: Option<i64>,
    /// Stream server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Up to 4 stop strings.
    pub stop: Option<OneOrMany>,
    /// Seed of the sampler: the same seed and request give the same text.
    pub seed: Option<i64>,
    /// −2..2: subtracted once from the logit of every token already generated.
    pub presence_penalty: Option<f32>,
    /// −2..2: subtracted from a token's logit once per time it was generated.
    pub frequency_penalty: Option<f32>,
    /// Token id (as a string) → bias in −100..100 added to its logit.
    pub logit_bias: Option<Value>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The model id.
    pub model: String,
    /// The conversation.
    pub messages: Vec<RequestMessage>,
    /// New-token budget (`max_completion_tokens` is the newer name, preferred when both are given).
    pub max_tokens: Option<i64>,
    /// The newer name of `max_tokens`.
    pub max_completion_tokens: Option<i64>,
    /// Sampling, stopping, streaming.
    #[serde(flatten)]
    pub sampling: SamplingRequest,
    /// Report the log-probability of each output token.
    pub logprobs: Option<bool>,
    /// 0–20 most likely alternatives per token (needs `logprobs: true`).
    pub top_logprobs: Option<i64>,
    /// `{"type": "text" | "json_object" | "json_schema", "json_schema": {name, schema, strict}}`.
    pub response_format: Option<Value>,
    /// `[{type: "function", function: {name, description, parameters}}]`.
    pub tools: Option<Value>,
    /// `none`, `auto`, `required` or `{"type": "function", "function": {"name"}}`.
    pub tool_choice: Option<Value>,
    /// `false`: at most one tool call per turn (default `true`: one or more).
    pub parallel_tool_calls: Option<bool>,
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// The model id.
    pub model: String,
    /// The prompt (one string).
    pub prompt: OneOrMany,
    /// New-token budget (default 16, as OpenAI's); 0 with `echo` and `logprobs` scores the prompt.
    pub max_tokens: Option<i64>,
    /// Sampling, stopping, streaming.
    #[serde(flatten)]
    pub sampling: SamplingRequest,
    /// Report each token's log-probability and this many (0–20) alternatives (the legacy shape;
    /// OpenAI allows up to 5, llama-cpp-python more: 20 matches chat's `top_logprobs`).
    pub logprobs: Option<i64>,
    /// Answer with the prompt before the completion (with `logprobs`: the prompt's log-probabilities).
    #[serde(default)]
    pub echo: bool,
}

/// `POST /v1/embeddings`.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingRequest {
    /// The model id.
    pub model: String,
    /// Text(s) to embed.
    pub input: OneOrMany,
    /// `float` (default) or `base64`.
    pub encoding_format: Option<String>,
}

/// Token counts of a response.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Their sum.
    pub total_tokens: usize,
}

impl Usage {
    /// Usage of `prompt` and `completion` tokens.
    pub fn new(prompt: usize, completion: usize) -> Self {
        Usage { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
    }
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, Serialize)]
pub struct ErrorDetail {
    /// For humans.
    pub message: String,
    /// `invalid_request_error`, `server_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The offending request field, if one.
    pub param: Option<String>,
    /// A machine-readable code (`model_not_found`, `context_length_exceeded`, …).
    pub code: Option<String>,
}

/// The text of a message's `content`: a string, or the `text` parts of a list.
pub fn message_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        Value::Array(parts) => {
            let mut out = String::new();
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => out.push_str(t),
                    _ => return None,
                }
            }
            Some(out)
        }
        _ => None,
    }
}
