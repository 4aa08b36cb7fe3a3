//! The generation loop: run the prompt, then sample one token at a time until a stop token or the budget.

use super::model::{KvCache, LlamaModel};
use super::sample::{Sampler, SamplerConfig};
use crate::Result;

/// How to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// At most this many new tokens.
    pub max_tokens: usize,
    /// How to pick each token.
    pub sampler: SamplerConfig,
    /// Generation ends after any of these (it is not part of the output).
    pub stop_tokens: Vec<u32>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig { max_tokens: 128, sampler: SamplerConfig::greedy(), stop_tokens: Vec::new() }
    }
}

/// Why generation ended (OpenAI's `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token came.
    Stop,
    /// `max_tokens` were produced, or the context is full.
    Length,
}

/// The result of [`generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The new tokens, without the stop token.
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish: FinishReason,
}

/// Generates after `prompt` (appended to `cache`, which may already hold a conversation), calling
/// `on_token` with each new token as soon as it is chosen (for streaming). `on_token` returning
/// `false` stops early with [`FinishReason::Stop`].
///
/// # Errors
/// The model's errors (an empty prompt with an empty cache, a token outside the vocabulary).
pub fn generate(
    model: &LlamaModel,
    cache: &mut KvCache,
    prompt: &[u32],
    config: &GenerateConfig,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<Generation> {
    let mut sampler = Sampler::new(config.sampler);
    let mut tokens = Vec::new();
    if config.max_tokens == 0 {
        return Ok(Generation { tokens, finish: FinishReason::Length });
    }
    if cache.len() + prompt.len() >= cache.capacity() {
        return Ok(Generation { tokens, finish: FinishReason::Length });
    }
    let mut logits = model.forward(prompt, cache)?;
    loop {
        let next = sampler.sample(&logits);
        if config.stop_tokens.contains(&next) {
            return Ok(Generation { tokens, finish: FinishReason::Stop });
        }
        tokens.push(next);
        if !on_token(next) {
            return Ok(Generation { tokens, finish: FinishReason::Stop });
        }
        if tokens.len() >= config.max_tokens || cache.len() >= cache.capacity() {
            return Ok(Generation { tokens, finish: FinishReason::Length });
        }
        logits = model.forward(&[next], cache)?;
    }
}
