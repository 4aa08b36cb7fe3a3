//! The OpenAI API's JSON shapes (chat completions, completions, embeddings, models, errors).
//!
//! Field names and meanings follow OpenAI's API reference
//! (<https://platform.openai.com/docs/api-reference>): what the official
//! clients send and expect. Unknown request fields are ignored, as OpenAI does;
//! fields this server cannot honour (`n > 1`, tools) are refused with a 400.

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
    /// `system`, `user`, `assistant` (or `developer`, treated as `system`).
    pub role: String,
    /// The text, or parts of which the `text` ones are used.
    #[serde(default)]
    pub content: Value,
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the token usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The model id.
    pub model: String,
    /// The conversation.
    pub messages: Vec<RequestMessage>,
    /// New-token budget (`max_completion_tokens` is the newer name).
    pub max_tokens: Option<usize>,
    /// The newer name of `max_tokens`.
    pub max_completion_tokens: Option<usize>,
    /// Sampling temperature, 0–2 (default 1).
    pub temperature: Option<f32>,
    /// Nucleus mass, (0, 1] (default 1).
    pub top_p: Option<f32>,
    /// Number of choices: only 1 is served.
    pub n: Option<usize>,
    /// Stream server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Stop strings.
    pub stop: Option<OneOrMany>,
    /// Seed of the sampler.
    pub seed: Option<u64>,
    /// Tools are not served.
    pub tools: Option<Value>,
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// The model id.
    pub model: String,
    /// The prompt (one string).
    pub prompt: OneOrMany,
    /// New-token budget (default 16, as OpenAI's).
    pub max_tokens: Option<usize>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus mass.
    pub top_p: Option<f32>,
    /// Number of choices: only 1.
    pub n: Option<usize>,
    /// Stream server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Stop strings.
    pub stop: Option<OneOrMany>,
    /// Seed of the sampler.
    pub seed: Option<u64>,
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
