//! Week c4w2: prompts, structured output and a gateway, taken apart.
//!
//! You rebuild, piece by piece, what sits between an application and a model server:
//!
//! | module | what you write | tasks |
//! |---|---|---|
//! | [`budget`] | a token-budget packer: system prompt, few-shot examples, retrieved chunks and the question in a budget of SmolLM2 tokens, by priority | `c4w2.budget` |
//! | [`schema`] | a JSON-schema subset compiled to a pushdown automaton over bytes: which bytes may come next | `c4w2.json-automaton` |
//! | [`mask`] | a trie over the tokens' bytes and the mask of the tokens the automaton allows next | `c4w2.token-mask`, `c4w2.mask-bench` |
//! | [`tool_calls`] | a streaming parser of `<tool_call>{…}</tool_call>` blocks in text that arrives in arbitrary chunks | `c4w2.tool-calls` |
//! | [`rate_limit`] | a token bucket on requests and on tokens, with an injected clock | `c4w2.token-bucket` |
//! | [`breaker`] | a circuit breaker (closed, open, half-open) with an injected clock | `c4w2.circuit-breaker` |
//! | [`routing`] | routing by priority and privacy tier, with failover | `c4w2.routing` |
//!
//! Every task is a function whose body is `todo!("<task id>")`; its doc comment says
//! what to do and how many points it is worth. `cargo test -p c4w2-prompts` runs the
//! visible tests; `cargo xtask grade c4w2` runs them and the hidden ones.
//!
//! The production twins the grader compares you with are `kernels::tokenize` (the
//! tokenizer you count with) and `kernels::constrain` (llguidance underneath: its masks
//! must equal yours on the JSON this subset describes).
#![allow(unused_variables, dead_code, unused_imports, unused_mut)]

pub mod breaker;
pub mod budget;
pub mod mask;
pub mod rate_limit;
pub mod routing;
pub mod schema;
pub mod tool_calls;

/// Everything that can go wrong in this crate. Bad input is always one of these, never a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The parts that must be kept need more tokens than the budget has.
    #[error("the required parts need {needed} tokens, the budget is {budget}")]
    BudgetTooSmall {
        /// Tokens of the required parts together.
        needed: usize,
        /// The budget.
        budget: usize,
    },
    /// A JSON schema outside the lab's subset (the keyword or construct is named).
    #[error("unsupported JSON schema: {0}")]
    UnsupportedSchema(String),
    /// The tokenizer failed (an unknown token id, a model file it cannot read).
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

impl From<kernels::Error> for Error {
    fn from(e: kernels::Error) -> Self {
        Error::Tokenizer(e.to_string())
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The model whose tokenizer this week counts with.
pub const SMOLLM2_MODEL: &str = "smollm2-135m-instruct";
/// Its GGUF file, as `cargo xtask models` installs it.
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// SmolLM2-135M-Instruct's tokenizer (49,152 tokens), read from the GGUF in the cache folder.
///
/// # Errors
/// [`Error::Tokenizer`] when the file is missing (run `cargo xtask models`) or unreadable.
pub fn smollm2_tokenizer() -> Result<kernels::tokenize::Bpe> {
    let path = kernels::cache::model_file(SMOLLM2_MODEL, SMOLLM2_FILE);
    if !path.is_file() {
        return Err(Error::Tokenizer(format!("{} is missing: run `cargo xtask models`", path.display())));
    }
    let gguf = kernels::formats::Gguf::open(&path)?;
    Ok(kernels::tokenize::Bpe::from_gguf(&gguf)?)
}

/// SmolLM2-Instruct's end-of-turn token, `<|im_end|>`: what ends a constrained answer.
pub fn smollm2_eos(bpe: &kernels::tokenize::Bpe) -> u32 {
    bpe.token_id("<|im_end|>").or(bpe.eos_id()).unwrap_or(0)
}
