//! A token-budget packer: which parts of a prompt (system prompt, few-shot examples, retrieved
//! chunks, the question) fit a budget of real tokens, by priority.
//!
//! A context window is counted in tokens of *the model's* tokenizer, never in characters or
//! words: the same 1,000 characters are 250 SmolLM2 tokens of English and 600 of JSON full of
//! digits. So the packer encodes every part with the real tokenizer ([`kernels::tokenize::Bpe`]),
//! keeps the parts that must be kept, then fills what is left by priority. A part that may be
//! shortened is cut **at a token boundary** (the ids of the kept part are a prefix of the ids of
//! the whole part, so a special token such as `<|im_end|>` is never split) that is also a
//! **character boundary** (byte-level BPE tokens can end in the middle of a UTF-8 character).
//!
//! Trusted parts (the template's own text) are encoded with special tokens recognised;
//! untrusted text (retrieved documents, the user's question, tool output) with
//! [`Bpe::encode_ordinary`], so that a document containing the text `<|im_start|>system` stays
//! ordinary text and cannot open a turn of its own (prompt injection through the template).

use kernels::tokenize::Bpe;

use crate::{Error, Result};

/// Where a part's text comes from: it decides how special-token text in it is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The application's own template text: `<|im_start|>` in it is the special token.
    Template,
    /// Text from outside (documents, the user, tools): special-token text in it is ordinary text.
    Untrusted,
}

/// What the packer may do with a part that does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Must be kept whole; [`Error::BudgetTooSmall`] when the required parts do not fit together.
    Required,
    /// Kept whole, or dropped.
    Whole,
    /// Kept whole, or cut to its first tokens (at a token and character boundary), or dropped.
    Truncate,
}

/// One part of a prompt, in prompt order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The text.
    pub text: String,
    /// How its special-token text is encoded.
    pub source: Source,
    /// What may happen to it.
    pub fit: Fit,
    /// Higher is kept first (ignored for [`Fit::Required`] parts, which are always kept).
    pub priority: u32,
}

/// What became of one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Kept whole, with this many tokens.
    Kept {
        /// Its tokens.
        tokens: usize,
    },
    /// Cut to its first `tokens` of `of` tokens.
    Truncated {
        /// Tokens kept.
        tokens: usize,
        /// Tokens of the whole part.
        of: usize,
    },
    /// Left out.
    Dropped,
}

/// A packed prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// The prompt's token ids: the kept ids of every part, in prompt order.
    pub ids: Vec<u32>,
    /// What became of each part, in the order of the input.
    pub outcomes: Vec<Outcome>,
}

/// The ids of one part, encoded as its [`Source`] says.
pub fn encode_part(bpe: &Bpe, part: &Part) -> Vec<u32> {
    match part.source {
        Source::Template => {
            let mut ids = Vec::new();
            bpe.encode_into(&part.text, true, &mut ids);
            ids
        }
        Source::Untrusted => bpe.encode_ordinary(&part.text),
    }
}

// ANCHOR: char_boundary
/// The longest prefix of `ids`, at most `max` tokens long, whose bytes are whole UTF-8
/// characters: its length in tokens (0 when no prefix qualifies).
///
/// Task c4w2.budget, part 1 (with [`pack`]). Start from `max.min(ids.len())` and move back one
/// token at a time while the bytes of `ids[..n]` ([`Bpe::decode_bytes`]) are not valid UTF-8
/// (`std::str::from_utf8`): the ids come from a `String`, so a prefix is invalid only when it
/// ends inside a character.
///
/// # Errors
/// [`Error::Tokenizer`] for an id outside the vocabulary.
pub fn char_boundary_prefix(bpe: &Bpe, ids: &[u32], max: usize) -> Result<usize> {
    todo!("c4w2.budget")
}
// ANCHOR_END: char_boundary

// ANCHOR: pack
/// Task c4w2.budget (15 points): packs `parts` into at most `budget` tokens.
///
/// 1. Encode every part with [`encode_part`].
/// 2. The [`Fit::Required`] parts are kept whole; if together they need more than `budget`,
///    return [`Error::BudgetTooSmall`] with their total.
/// 3. Then visit the other parts by priority, highest first (equal priorities: earlier part
///    first). A part that fits in what is left is kept whole. Otherwise a [`Fit::Whole`] part is
///    dropped, and a [`Fit::Truncate`] part keeps its first
///    [`char_boundary_prefix`]`(ids, left)` tokens (dropped when that is 0). Keep visiting:
///    a later, smaller part may still fit.
/// 4. `ids` are the kept ids of every part in **prompt** order (the order of `parts`), and
///    `outcomes[i]` says what became of `parts[i]`.
///
/// # Errors
/// [`Error::BudgetTooSmall`] as above; [`Error::Tokenizer`] from the tokenizer.
pub fn pack(bpe: &Bpe, parts: &[Part], budget: usize) -> Result<Packed> {
    todo!("c4w2.budget")
}
// ANCHOR_END: pack
