//! Constrained decoding (feature `constrain`): at each step a mask over the vocabulary allows only the
//! tokens that keep the output a valid prefix of a JSON schema's, a regex's or a Lark grammar's language.
//!
//! SKELETON: the signatures below are the contract the server, the gateway and the c4w2 lab build on;
//! the bodies are being written (llguidance + toktrie underneath).

use std::sync::Arc;

use crate::llm::ToolCall;
use crate::tokenize::Bpe;
use crate::{Error, Result};

/// What the output must match.
#[derive(Debug, Clone, PartialEq)]
pub enum Grammar {
    /// A JSON schema (OpenAI's `response_format: {"type": "json_schema", …, "strict": true}`).
    JsonSchema(serde_json::Value),
    /// Any JSON object (`response_format: {"type": "json_object"}`).
    JsonObject,
    /// A regular expression over the whole output.
    Regex(String),
    /// A Lark grammar (llguidance's dialect, `%json{…}` included).
    Lark(String),
}

/// A function the model may call (OpenAI's `tools[i].function`).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// The function's name.
    pub name: String,
    /// What it does (for the prompt).
    pub description: Option<String>,
    /// A JSON schema of its arguments object.
    pub parameters: serde_json::Value,
}

/// OpenAI's `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// Never call a tool.
    None,
    /// Text or tool calls, as the model chooses.
    Auto,
    /// At least one tool call.
    Required,
    /// A call of this function.
    Function(String),
}

/// A tokenizer's vocabulary as the constraint engine sees it (token bytes, special tokens, EOS).
#[derive(Debug)]
pub struct Vocabulary {
    len: usize,
}

impl Vocabulary {
    /// The vocabulary of `bpe`; `eos` ends a constrained output (the model's end-of-turn token).
    ///
    /// # Errors
    /// [`Error::Grammar`] when the vocabulary cannot be turned into a token trie.
    pub fn from_bpe(bpe: &Bpe, eos: u32) -> Result<Arc<Vocabulary>> {
        let _ = (bpe, eos);
        Err(Error::Grammar("constrained decoding is not built yet".into()))
    }

    /// Number of token ids.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One bit per token id: set when the token is allowed next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMask {
    bits: Vec<u32>,
    len: usize,
}

impl TokenMask {
    /// Whether token `id` is allowed.
    pub fn is_allowed(&self, id: u32) -> bool {
        (id as usize) < self.len && self.bits[id as usize / 32] >> (id % 32) & 1 == 1
    }

    /// How many tokens are allowed.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The words, 32 token ids each (bit `i % 32` of word `i / 32`).
    pub fn words(&self) -> &[u32] {
        &self.bits
    }
}

/// The state of one constrained sequence.
#[derive(Debug)]
pub struct Constraint {
    vocab: Arc<Vocabulary>,
}

impl Constraint {
    /// A constraint for `grammar` over `vocab`.
    ///
    /// # Errors
    /// [`Error::UnsupportedSchema`] naming a JSON schema keyword that would not be enforced;
    /// [`Error::Grammar`] for a grammar that does not compile.
    pub fn new(vocab: &Arc<Vocabulary>, grammar: &Grammar) -> Result<Constraint> {
        let _ = grammar;
        Err(Error::Grammar(format!("not built yet ({} tokens)", vocab.len())))
    }

    /// The tokens allowed next.
    ///
    /// # Errors
    /// [`Error::Grammar`] when the engine fails.
    pub fn mask(&mut self) -> Result<TokenMask> {
        Err(Error::Grammar(format!("not built yet ({} tokens)", self.vocab.len())))
    }

    /// Sets every disallowed token's logit to −∞ (`logits.len()` may exceed the vocabulary: padding rows
    /// are disallowed).
    ///
    /// # Errors
    /// As [`Constraint::mask`].
    pub fn apply(&mut self, logits: &mut [f32]) -> Result<()> {
        let mask = self.mask()?;
        for (id, l) in logits.iter_mut().enumerate() {
            if !mask.is_allowed(id as u32) {
                *l = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    /// Advances past `token` (the one sampled from the masked logits).
    ///
    /// # Errors
    /// [`Error::Grammar`] when `token` is not allowed.
    pub fn commit(&mut self, token: u32) -> Result<()> {
        Err(Error::Grammar(format!("not built yet (token {token})")))
    }

    /// Whether the output is complete: the grammar accepts it and only the end token may follow.
    pub fn is_finished(&self) -> bool {
        false
    }
}

/// The grammar of an assistant turn under `tools` and `choice`: text, or one or more
/// `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks whose arguments follow each
/// function's schema. `None` when `choice` is [`ToolChoice::None`] (no constraint).
///
/// # Errors
/// [`Error::UnsupportedSchema`] / [`Error::Grammar`] for a function schema that cannot be enforced;
/// [`Error::Grammar`] when `choice` names a function that is not in `tools`.
pub fn tool_call_grammar(tools: &[FunctionSpec], choice: &ToolChoice) -> Result<Option<Grammar>> {
    let _ = (tools, choice);
    Err(Error::Grammar("not built yet".into()))
}

/// Splits an assistant turn generated under [`tool_call_grammar`] into its text and its tool calls
/// (ids `call_<n>` numbered from `first_id`).
///
/// # Errors
/// [`Error::Grammar`] when a `<tool_call>` block is not a JSON object with `name` and `arguments`.
pub fn parse_tool_calls(text: &str, first_id: usize) -> Result<(String, Vec<ToolCall>)> {
    let _ = (text, first_id);
    Err(Error::Grammar("not built yet".into()))
}
