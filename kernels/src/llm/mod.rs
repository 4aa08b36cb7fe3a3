//! A LLaMA-family language model on quantised GGUF weights (feature `llm`): the decoder, its KV
//! cache, sampling, chat templates and a generation loop.
//!
//! | piece | what it is |
//! |---|---|
//! | [`LlamaConfig`] | shapes and constants from the file's `llama.*` metadata |
//! | [`attention`], [`attention_head`] | causal grouped-query attention of one position (or one of its heads) over a KV cache |
//! | [`LlamaModel`], [`KvCache`], [`SeqStep`] | the forward pass on the memory-mapped blocks; batched over sequences |
//! | [`Sampler`], [`SamplerConfig`] | greedy, temperature, top-k, top-p; seeded |
//! | [`ChatTemplate`], [`ChatMessage`] | the model's Jinja chat template (GGUF `tokenizer.chat_template`), rendered as Python `jinja2` does |
//! | [`generate`] | prompt → tokens until a stop token or the token budget |

pub mod attention;
pub mod chat;
pub mod config;
pub mod generate;
pub mod model;
pub mod sample;

pub use attention::{AttentionShape, attention, attention_head, attention_head_with, rope_frequencies, rope_in_place};
pub use chat::{ChatMessage, ChatPart, ChatTemplate, ToolCall};
pub use config::LlamaConfig;
pub use generate::{FinishReason, GenerateConfig, Generation, generate};
pub use model::{KvCache, LlamaModel, SeqStep, WeightPrecision};
pub use sample::{Sampler, SamplerConfig, argmax};
