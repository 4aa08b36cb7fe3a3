//! Constrained decoding (feature `constrain`): at each step a mask over the vocabulary allows only the
//! tokens that keep the output a valid prefix of a JSON schema's, a regex's or a Lark grammar's language.
//!
//! The engine is llguidance (Microsoft/guidance-ai, "llguidance: making structured outputs go brrr",
//! <https://github.com/guidance-ai/llguidance>): the grammar is split into a lexer (derivative-based regular
//! expressions, Brzozowski 1964) and an Earley parser (Earley 1970) over lexemes; the mask is computed by walking
//! the tokenizer's token trie (`toktrie`) once per step, pruning every subtree whose byte prefix the lexer
//! rejects. JSON schemas follow JSON Schema 2020-12 (<https://json-schema.org/draft/2020-12>).
//!
//! | piece | what it is |
//! |---|---|
//! | [`Vocabulary`] | the token trie and the compiled lexer slices of one tokenizer: built once, shared (`Arc`) |
//! | [`Constraint`] | one sequence: [`mask`](Constraint::mask), [`apply`](Constraint::apply), [`commit`](Constraint::commit) |
//! | [`json_options`] | how JSON is written under a schema (OpenAI-strict-like: fixed separators, declared key order) |
//! | [`tool_call_grammar`], [`parse_tool_calls`] | the Hermes/Qwen `<tool_call>` format (module `tools`) |
//!
//! Nothing a schema says is silently dropped: every keyword is checked against the list llguidance enforces
//! before compiling (`schema.rs`), and anything else, a typo included, is [`Error::UnsupportedSchema`].

mod schema;
mod tools;

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{SimpleVob, TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};

use crate::tokenize::Bpe;
use crate::{Error, Result};

pub use schema::check_schema;
pub use tools::{check_tool_calls, parse_tool_calls, tool_call_grammar};

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

/// How JSON is written under a schema, as llguidance's `x-guidance` options: no free whitespace, `", "` between
/// items and `": "` after keys (what `json.dumps` and most chat models write), properties in the order the
/// schema declares them (llguidance's rule; OpenAI's strict mode does the same), `\uXXXX` escapes allowed.
///
/// Fixed whitespace keeps outputs short and the model on the tokens it saw in training; it also means a
/// model cannot pad an answer with endless newlines, a failure of free-whitespace JSON modes.
pub fn json_options() -> serde_json::Value {
    serde_json::json!({
        "whitespace_flexible": false,
        "item_separator": ", ",
        "key_separator": ": ",
        "coerce_one_of": false,
        "lenient": false,
    })
}

/// A tokenizer's vocabulary as the constraint engine sees it (token bytes, special tokens, EOS).
pub struct Vocabulary {
    factory: ParserFactory,
    len: usize,
    eos: u32,
}

impl std::fmt::Debug for Vocabulary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vocabulary").field("len", &self.len).field("eos", &self.eos).finish_non_exhaustive()
    }
}

/// The tokenizer side of llguidance: the trie and [`Bpe`]'s own (canonical) encoding.
struct BpeEnv {
    trie: TokTrie,
    bpe: Bpe,
}

impl TokenizerEnv for BpeEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.trie.tokenize_with_greedy_fallback(s, |text| self.bpe.encode_ordinary(text))
    }
}

/// Each token's bytes as toktrie wants them: special (control) tokens behind the `0xFF` marker, so no grammar
/// can spell them with text (llguidance's `docs/special_tokens.md`; what it does with an HF tokenizer.json).
fn trie_words(bpe: &Bpe) -> Result<Vec<Vec<u8>>> {
    (0..bpe.vocab_size() as u32)
        .map(|id| {
            let bytes = bpe.token_bytes(id)?;
            Ok(if bpe.is_special(id) {
                let mut w = Vec::with_capacity(bytes.len() + 1);
                w.push(TokTrie::SPECIAL_TOKEN_MARKER);
                w.extend_from_slice(bytes);
                w
            } else {
                bytes.to_vec()
            })
        })
        .collect()
}

impl Vocabulary {
    /// The vocabulary of `bpe`; `eos` ends a constrained output (the model's end-of-turn token).
    ///
    /// This is the costly step (the token trie and the lexer slices of llguidance's default slicing: a few
    /// hundred milliseconds for 49,152 tokens): build it once per model and share it.
    ///
    /// # Errors
    /// [`Error::Grammar`] when the vocabulary cannot be turned into a token trie (`eos` outside it).
    pub fn from_bpe(bpe: &Bpe, eos: u32) -> Result<Arc<Vocabulary>> {
        let len = bpe.vocab_size();
        if eos as usize >= len {
            return Err(Error::Grammar(format!("end token {eos} is outside the vocabulary of {len} tokens")));
        }
        let words = trie_words(bpe)?;
        let mut info = TokRxInfo::new(len as u32, eos);
        info.tok_bos = bpe.bos_id();
        info.tok_end_of_turn = Some(eos);
        let trie = TokTrie::from(&info, &words);
        let env: TokEnv = Arc::new(BpeEnv { trie, bpe: bpe.clone() });
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| Error::Grammar(e.to_string()))?;
        factory.quiet();
        Ok(Arc::new(Vocabulary { factory, len, eos }))
    }

    /// Number of token ids.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The token that ends a constrained output.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// The llguidance grammar (as its JSON form, `TopLevelGrammar`) `grammar` compiles to, after the schema
    /// check: what [`Constraint::new`] hands the engine. Other llguidance front ends (the Python wheel's
    /// `LLMatcher`) accept the same text.
    ///
    /// # Errors
    /// As [`Constraint::new`] for the schema check.
    pub fn grammar_json(grammar: &Grammar) -> Result<String> {
        serde_json::to_string(&top_level(grammar)?).map_err(|e| Error::Grammar(e.to_string()))
    }
}

/// `grammar` as llguidance's top-level grammar, schemas checked and given [`json_options`].
fn top_level(grammar: &Grammar) -> Result<TopLevelGrammar> {
    Ok(match grammar {
        Grammar::JsonSchema(schema) => {
            check_schema(schema)?;
            TopLevelGrammar::from_json_schema(with_json_options(schema))
        }
        Grammar::JsonObject => {
            TopLevelGrammar::from_json_schema(with_json_options(&serde_json::json!({"type": "object"})))
        }
        Grammar::Regex(rx) => TopLevelGrammar::from_regex(rx),
        Grammar::Lark(lark) => {
            check_lark_json(lark)?;
            TopLevelGrammar::from_lark(lark.clone())
        }
    })
}

/// Checks the schema of every `%json {…}` in a Lark grammar as [`check_schema`] does (its own `x-guidance`
/// options aside). Text that does not parse as JSON after `%json` is left for the engine to refuse.
fn check_lark_json(lark: &str) -> Result<()> {
    for (at, _) in lark.match_indices("%json") {
        let rest = lark[at + "%json".len()..].trim_start();
        let Some(Ok(mut schema)) = serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>().next()
        else {
            continue;
        };
        if let Some(obj) = schema.as_object_mut() {
            obj.remove("x-guidance");
        }
        check_schema(&schema)?;
    }
    Ok(())
}

/// The schema with [`json_options`] as its `x-guidance` (a boolean schema becomes `{}` / `{"not": {}}`'s
/// llguidance spelling first).
pub(crate) fn with_json_options(schema: &serde_json::Value) -> serde_json::Value {
    let mut obj = match schema {
        serde_json::Value::Object(m) => m.clone(),
        serde_json::Value::Bool(true) => serde_json::Map::new(),
        other => {
            // `false` (nothing matches) and non-objects are left for the engine to refuse.
            return other.clone();
        }
    };
    obj.insert("x-guidance".into(), json_options());
    serde_json::Value::Object(obj)
}

/// One bit per token id: set when the token is allowed next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMask {
    bits: Vec<u32>,
    len: usize,
}

impl TokenMask {
    /// A mask of `len` tokens, none allowed.
    pub fn none(len: usize) -> TokenMask {
        TokenMask { bits: vec![0; len.div_ceil(32)], len }
    }

    /// A mask over `len` tokens from its words (bit `i % 32` of word `i / 32`); bits past `len` are cleared.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when `words` does not have `len.div_ceil(32)` words.
    pub fn from_words(words: Vec<u32>, len: usize) -> Result<TokenMask> {
        if words.len() != len.div_ceil(32) {
            return Err(Error::InvalidParameter(format!("{} words for a mask of {len} tokens", words.len())));
        }
        let mut mask = TokenMask { bits: words, len };
        mask.clear_tail();
        Ok(mask)
    }

    fn from_vob(vob: &SimpleVob, len: usize) -> TokenMask {
        let words = vob.as_slice();
        let n = len.div_ceil(32);
        let mut bits = vec![0u32; n];
        let k = n.min(words.len());
        bits[..k].copy_from_slice(&words[..k]);
        let mut mask = TokenMask { bits, len };
        mask.clear_tail();
        mask
    }

    fn clear_tail(&mut self) {
        if !self.len.is_multiple_of(32)
            && let Some(last) = self.bits.last_mut()
        {
            *last &= (1u32 << (self.len % 32)) - 1;
        }
    }

    /// Whether token `id` is allowed.
    pub fn is_allowed(&self, id: u32) -> bool {
        (id as usize) < self.len && self.bits[id as usize / 32] >> (id % 32) & 1 == 1
    }

    /// How many tokens are allowed.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Number of token ids the mask covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mask covers no token ids.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The words, 32 token ids each (bit `i % 32` of word `i / 32`).
    pub fn words(&self) -> &[u32] {
        &self.bits
    }

    /// The allowed ids, ascending.
    pub fn allowed(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.count());
        for (w, &word) in self.bits.iter().enumerate() {
            let mut rest = word;
            while rest != 0 {
                out.push(w as u32 * 32 + rest.trailing_zeros());
                rest &= rest - 1;
            }
        }
        out
    }

    /// Sets every disallowed token's logit to −∞; logits past the mask's length (padding rows) too.
    /// Whole words of allowed tokens are skipped, so the cost is one pass over the disallowed logits.
    pub fn apply_to(&self, logits: &mut [f32]) {
        for (w, chunk) in logits.chunks_mut(32).enumerate() {
            let word = self.bits.get(w).copied().unwrap_or(0);
            if word == u32::MAX {
                continue;
            }
            for (i, l) in chunk.iter_mut().enumerate() {
                if word >> i & 1 == 0 {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
    }
}

/// The state of one constrained sequence.
pub struct Constraint {
    vocab: Arc<Vocabulary>,
    matcher: Matcher,
    /// The end token was committed.
    ended: bool,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("vocab", &self.vocab)
            .field("stopped", &self.matcher.is_stopped())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Clone for Constraint {
    /// An independent copy of the sequence's state (llguidance's parser clone: lexer caches shared).
    fn clone(&self) -> Self {
        Constraint { vocab: Arc::clone(&self.vocab), matcher: self.matcher.clone(), ended: self.ended }
    }
}

impl Constraint {
    /// A constraint for `grammar` over `vocab`.
    ///
    /// # Errors
    /// [`Error::UnsupportedSchema`] naming a JSON schema keyword that would not be enforced;
    /// [`Error::Grammar`] for a grammar that does not compile.
    pub fn new(vocab: &Arc<Vocabulary>, grammar: &Grammar) -> Result<Constraint> {
        let top = top_level(grammar)?;
        let parser = vocab.factory.create_parser(top).map_err(|e| engine_error(&e.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(engine_error(&e));
        }
        Ok(Constraint { vocab: Arc::clone(vocab), matcher, ended: false })
    }

    /// The vocabulary.
    pub fn vocabulary(&self) -> &Arc<Vocabulary> {
        &self.vocab
    }

    /// The tokens allowed next: computed afresh on every call (no cache), so it can be timed. Once the
    /// output is complete ([`Constraint::is_finished`]) only the end token is allowed.
    ///
    /// # Errors
    /// [`Error::Grammar`] when the engine fails (a lexer or parser limit, or no token can continue).
    pub fn mask(&mut self) -> Result<TokenMask> {
        if self.ended {
            let mut m = TokenMask::none(self.vocab.len);
            m.bits[self.vocab.eos as usize / 32] |= 1 << (self.vocab.eos % 32);
            return Ok(m);
        }
        let vob = self.matcher.compute_mask_or_eos().map_err(|e| Error::Grammar(e.to_string()))?;
        Ok(TokenMask::from_vob(&vob, self.vocab.len))
    }

    /// Sets every disallowed token's logit to −∞ (`logits.len()` may exceed the vocabulary: padding rows
    /// are disallowed).
    ///
    /// # Errors
    /// As [`Constraint::mask`].
    pub fn apply(&mut self, logits: &mut [f32]) -> Result<()> {
        self.mask()?.apply_to(logits);
        Ok(())
    }

    /// Advances past `token` (the one sampled from the masked logits). The end token is accepted when the
    /// grammar accepts the output so far; after it, nothing but the end token again.
    ///
    /// # Errors
    /// [`Error::Grammar`] when `token` is not allowed.
    pub fn commit(&mut self, token: u32) -> Result<()> {
        if token == self.vocab.eos {
            let accepting = self.ended
                || self.matcher.is_stopped()
                || self.matcher.is_accepting().map_err(|e| Error::Grammar(e.to_string()))?;
            if !accepting {
                return Err(Error::Grammar("the end token came before the output is complete".into()));
            }
            self.ended = true;
            return Ok(());
        }
        if self.ended || self.matcher.is_stopped() {
            return Err(Error::Grammar(format!("token {token} after the end of the output")));
        }
        let n = self.matcher.try_consume_tokens(&[token]).map_err(|e| Error::Grammar(e.to_string()))?;
        if n != 1 {
            return Err(Error::Grammar(format!("token {token} is not allowed here")));
        }
        Ok(())
    }

    /// Advances past every token of `tokens` (a forced prefix), as [`Constraint::commit`] each.
    ///
    /// # Errors
    /// As [`Constraint::commit`], at the first token that is not allowed (the ones before it stay committed).
    pub fn commit_all(&mut self, tokens: &[u32]) -> Result<()> {
        tokens.iter().try_for_each(|&t| self.commit(t))
    }

    /// Whether the output is complete: the grammar accepts it and only the end token may follow.
    pub fn is_finished(&self) -> bool {
        self.ended || self.matcher.is_stopped()
    }

    /// Whether the output so far is a complete sentence of the grammar (the end token would be allowed), even
    /// if it could go on (`[a-z]+` after `"abc"`).
    pub fn is_accepting(&mut self) -> bool {
        self.is_finished() || self.matcher.is_accepting().unwrap_or(false)
    }
}

/// An llguidance compile error as ours: "Unimplemented keys: [..]" and "Unknown format: X" name a keyword.
fn engine_error(msg: &str) -> Error {
    if let Some(rest) = msg.split("Unimplemented keys: [").nth(1) {
        let keyword = rest.split(']').next().unwrap_or("").split(',').next().unwrap_or("").trim().trim_matches('"');
        return Error::UnsupportedSchema { keyword: keyword.to_string(), reason: first_line(msg) };
    }
    if msg.contains("Unknown format:") {
        return Error::UnsupportedSchema { keyword: "format".into(), reason: first_line(msg) };
    }
    Error::Grammar(first_line(msg))
}

fn first_line(msg: &str) -> String {
    msg.lines().next().unwrap_or(msg).to_string()
}
