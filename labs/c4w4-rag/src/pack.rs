//! Context packing: which retrieved chunks the model reads, in which order, under a token budget.
//!
//! The budget is what the context window leaves once the instructions, the question and the
//! answer's own tokens are counted. Packing is greedy, best first: a chunk that does not fit is
//! skipped and packing goes on (a smaller chunk further down may still fit), and a chunk is never
//! cut (a cut chunk would show text the retriever never judged). Overlapping windows of one
//! document are merged, so the same sentences are not paid for twice.
//!
//! Order matters too. Liu et al., "Lost in the Middle: How Language Models Use Long Contexts"
//! (TACL 2024), measured that models use what is at the start and at the end of a long context
//! better than what is in the middle, so [`PackOrder::LostInTheMiddle`] puts the best chunks at
//! both ends and the weakest in the middle.

use std::ops::Range;

use crate::{Error, Result, Tokenizer};

/// A retrieved chunk offered to the packer.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The chunk's id in the index.
    pub id: u32,
    /// The document it comes from.
    pub doc: String,
    /// Its byte span in the document's text (`text.len() == span.len()`).
    pub span: Range<usize>,
    /// The chunk's text: the document's text over `span`.
    pub text: String,
    /// The retriever's score (higher is better).
    pub score: f32,
}

/// How packed chunks are ordered in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackOrder {
    /// Best first.
    Score,
    /// By document, then span start: reads like the sources.
    Source,
    /// Best at both ends, weakest in the middle: ranks 1, 3, 5, … from the front and 2, 4, 6, …
    /// from the back.
    LostInTheMiddle,
}

/// How to pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackConfig {
    /// Tokens the packed texts may take together.
    pub budget_tokens: usize,
    /// The order of the packed chunks.
    pub order: PackOrder,
    /// Merge chunks of one document whose spans overlap or touch.
    pub merge_overlaps: bool,
}

/// One numbered source of the prompt: a chunk, or merged chunks of one document.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedChunk {
    /// 1-based position in the final order: what an answer cites as `[number]`.
    pub number: usize,
    /// The document.
    pub doc: String,
    /// The union of the merged chunks' spans.
    pub span: Range<usize>,
    /// The document's text over `span`.
    pub text: String,
    /// The best score among the merged chunks.
    pub score: f32,
    /// The ids of the chunks it holds, in the order they were packed.
    pub chunk_ids: Vec<u32>,
}

/// A packed context.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Packed {
    /// The sources, numbered 1, 2, … in order.
    pub chunks: Vec<PackedChunk>,
    /// The sum of the tokens of the chunks' texts (at most the budget).
    pub tokens: usize,
}

/// Whether two half-open spans overlap or touch (`a` ends where `b` starts, or the reverse). Given.
pub fn touches(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start <= b.end && b.start <= a.end
}

/// The positions (0-based) that ranks `0..n` take in a lost-in-the-middle order: rank 0 first,
/// rank 1 last, rank 2 second, rank 3 second to last, … Given.
///
/// ```
/// assert_eq!(c4w4_rag::pack::lost_in_the_middle_positions(5), [0, 4, 1, 3, 2]);
/// ```
pub fn lost_in_the_middle_positions(n: usize) -> Vec<usize> {
    (0..n).map(|r| if r % 2 == 0 { r / 2 } else { n - 1 - r / 2 }).collect()
}

// ANCHOR: pack
/// Task c4w4.pack (15 points): packs `candidates` into `config.budget_tokens` tokens of
/// `tokenizer`.
///
/// 1. Check the input: a NaN score, or a span whose length is not its text's length, is
///    [`Error::InvalidInput`].
/// 2. Visit the candidates best first: by score descending, equal scores in input order (a stable
///    sort). Skip a candidate whose id was visited already.
/// 3. A **group** is a packed source: its doc, span, text, score, chunk ids and cost (the tokens of
///    its text, `tokenizer.count_tokens`). With `merge_overlaps`, a candidate that [`touches`]
///    one or more groups of its document is merged with all of them: the union span, whose text is
///    rebuilt from the pieces' texts (sort the pieces by span start; each adds the part of its
///    text past the union's end so far; a cut that is not a character boundary of a piece's text
///    is [`Error::InvalidInput`]). It is kept when `used - (the touched groups' costs) + (the
///    merged cost) <= budget` (otherwise the candidate is skipped and nothing changes). The
///    merged group takes the place of the best touched group (the earliest packed) and keeps its
///    score; its chunk ids are those of the touched groups in packing order, then the
///    candidate's.
/// 4. Any other candidate becomes a new group when `used + cost <= budget`; otherwise it is
///    skipped, and packing goes on with the next one.
/// 5. Order the groups: by score descending, equal scores by the order they were first packed
///    ([`PackOrder::Score`]); then for [`PackOrder::Source`] by doc, then span start; for
///    [`PackOrder::LostInTheMiddle`] the best-first group of rank `r` goes to position
///    [`lost_in_the_middle_positions`]`(n)[r]`. Number them `1..=n` in that order;
///    [`Packed::tokens`] is the sum of their costs.
///
/// # Errors
/// [`Error::InvalidInput`] as above.
pub fn pack(candidates: &[Candidate], tokenizer: &dyn Tokenizer, config: &PackConfig) -> Result<Packed> {
    todo!("c4w4.pack")
}
// ANCHOR_END: pack
