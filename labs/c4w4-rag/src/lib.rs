//! Week c4w4: a retrieval-augmented generation pipeline, taken apart.
//!
//! You rebuild the parts of a RAG system that decide what the model reads and whether its answer
//! can be trusted:
//!
//! | module | what you write | tasks |
//! |---|---|---|
//! | [`chunk`] | token windows with overlap that never cut a character; a recursive splitter (sections → paragraphs → sentences → windows) that merges small neighbours | `c4w4.token-chunker`, `c4w4.recursive-split` |
//! | [`fusion`] | reciprocal rank fusion and weighted fusion of min-max normalised scores | `c4w4.fusion` |
//! | [`mmr`] | maximal marginal relevance over unit vectors | `c4w4.mmr` |
//! | [`pack`] | a context packer under a token budget: best first, merged overlaps, lost-in-the-middle order | `c4w4.pack` |
//! | [`metrics`] | P@k, recall@k, MRR and nDCG@k exactly as `trec_eval` computes them | `c4w4.metrics` |
//! | [`cite`] | a citation checker: `[n]` markers against the packed sources, uncited sentences | `c4w4.citations` |
//!
//! Every task is a function whose body is `todo!("<task id>")`; its doc comment says what to do
//! and how many points it is worth. `cargo test -p c4w4-rag` runs the visible tests;
//! `cargo xtask grade c4w4` runs them and the hidden ones.
//!
//! The lab needs no model file: sizes are counted with a [`Tokenizer`], and two small ones are
//! given ([`Words`] and [`ByteTokens`]). The grader also runs your chunkers over SmolLM2's
//! byte-level BPE, whose tokens end in the middle of characters, and compares your fusion, MMR,
//! metrics and citation checks with the production `kernels::rag` and with `pytrec_eval`.
#![allow(unused_variables, dead_code, unused_imports, unused_mut)]

pub mod chunk;
pub mod cite;
pub mod fusion;
pub mod metrics;
pub mod mmr;
pub mod pack;

use std::ops::Range;

/// Everything that can go wrong in this crate. Bad input is always one of these, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A configuration that cannot work (a window of 0 tokens, an overlap as large as the window,
    /// a cutoff of 0); the message names the knob.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Input that breaks a documented contract (a NaN score, a span that is not its text's
    /// length, a passage ranked twice); the message says which.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

// ANCHOR: tokenizer
/// Where a tokenizer's tokens lie in a text: what chunk sizes and budgets are counted in.
///
/// A chunk must fit the *model's* window, so it is measured with the model's tokenizer, never in
/// characters. `kernels::rag::chunk::TokenSpans` is the production twin (MiniLM's WordPiece,
/// SmolLM2's byte-level BPE).
pub trait Tokenizer {
    /// The byte range of each token of `text`, in order, without overlaps. A byte-level tokenizer
    /// may end a token inside a multi-byte character.
    fn token_spans(&self, text: &str) -> Vec<Range<usize>>;

    /// The number of tokens of `text`.
    fn count_tokens(&self, text: &str) -> usize {
        self.token_spans(text).len()
    }
}
// ANCHOR_END: tokenizer

/// A word-level tokenizer (BERT's basic tokenization without WordPiece): a token is a maximal
/// run of alphanumeric characters ([`char::is_alphanumeric`]), or any other single character
/// that is not white space. Given.
#[derive(Debug, Clone, Copy, Default)]
pub struct Words;

impl Tokenizer for Words {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        let mut spans = Vec::new();
        let mut run: Option<usize> = None;
        for (i, c) in text.char_indices() {
            if c.is_alphanumeric() {
                run.get_or_insert(i);
                continue;
            }
            if let Some(start) = run.take() {
                spans.push(start..i);
            }
            if !c.is_whitespace() {
                spans.push(i..i + c.len_utf8());
            }
        }
        if let Some(start) = run {
            spans.push(start..text.len());
        }
        spans
    }
}

/// A byte-level tokenizer: every `n` bytes of the text are a token (the last one shorter),
/// white space included. Like byte-level BPE, it ends tokens inside multi-byte characters, which
/// is what a chunker must survive. Given. `ByteTokens(0)` counts as `ByteTokens(1)`.
#[derive(Debug, Clone, Copy)]
pub struct ByteTokens(pub usize);

impl Tokenizer for ByteTokens {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        let n = self.0.max(1);
        (0..text.len()).step_by(n).map(|s| s..(s + n).min(text.len())).collect()
    }
}
