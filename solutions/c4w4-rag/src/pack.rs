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
    // BEGIN SOLUTION c4w4.pack
    for c in candidates {
        if c.score.is_nan() {
            return Err(Error::InvalidInput(format!("candidate {} has a NaN score", c.id)));
        }
        if c.span.end < c.span.start || c.span.len() != c.text.len() {
            return Err(Error::InvalidInput(format!(
                "candidate {}: span {:?} is not the length of its text ({} bytes)",
                c.id,
                c.span,
                c.text.len()
            )));
        }
    }
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| candidates[b].score.total_cmp(&candidates[a].score));
    let mut groups: Vec<Group> = Vec::new();
    let mut used = 0usize;
    let mut seen = std::collections::HashSet::new();
    for i in order {
        let c = &candidates[i];
        if !seen.insert(c.id) {
            continue;
        }
        let touching: Vec<usize> = if config.merge_overlaps {
            (0..groups.len()).filter(|&j| groups[j].doc == c.doc && touches(&groups[j].span, &c.span)).collect()
        } else {
            Vec::new()
        };
        if touching.is_empty() {
            let cost = tokenizer.count_tokens(&c.text);
            if used + cost <= config.budget_tokens {
                used += cost;
                groups.push(Group {
                    doc: c.doc.clone(),
                    span: c.span.clone(),
                    text: c.text.clone(),
                    score: c.score,
                    chunk_ids: vec![c.id],
                    cost,
                });
            }
            continue;
        }
        let mut parts: Vec<(Range<usize>, &str)> =
            touching.iter().map(|&j| (groups[j].span.clone(), groups[j].text.as_str())).collect();
        parts.push((c.span.clone(), c.text.as_str()));
        let (span, text) = union_text(parts)?;
        let cost = tokenizer.count_tokens(&text);
        let freed: usize = touching.iter().map(|&j| groups[j].cost).sum();
        if used - freed + cost > config.budget_tokens {
            continue;
        }
        used = used - freed + cost;
        let mut ids: Vec<u32> = touching.iter().flat_map(|&j| groups[j].chunk_ids.iter().copied()).collect();
        ids.push(c.id);
        let best = &mut groups[touching[0]];
        best.span = span;
        best.text = text;
        best.cost = cost;
        best.chunk_ids = ids;
        for &j in touching[1..].iter().rev() {
            groups.remove(j);
        }
    }
    // A stable sort: equal scores keep the packing order.
    groups.sort_by(|a, b| b.score.total_cmp(&a.score));
    let arranged: Vec<Group> = match config.order {
        PackOrder::Score => groups,
        PackOrder::Source => {
            let mut g = groups;
            g.sort_by(|a, b| a.doc.cmp(&b.doc).then(a.span.start.cmp(&b.span.start)));
            g
        }
        PackOrder::LostInTheMiddle => {
            let positions = lost_in_the_middle_positions(groups.len());
            let mut slots: Vec<Option<Group>> = (0..groups.len()).map(|_| None).collect();
            for (g, &p) in groups.into_iter().zip(&positions) {
                slots[p] = Some(g);
            }
            slots.into_iter().flatten().collect()
        }
    };
    let tokens = arranged.iter().map(|g| g.cost).sum();
    let chunks = arranged
        .into_iter()
        .enumerate()
        .map(|(k, g)| PackedChunk {
            number: k + 1,
            doc: g.doc,
            span: g.span,
            text: g.text,
            score: g.score,
            chunk_ids: g.chunk_ids,
        })
        .collect();
    Ok(Packed { chunks, tokens })
    // END SOLUTION
}
// ANCHOR_END: pack

// BEGIN SOLUTION c4w4.pack delete
/// A packed source being built.
struct Group {
    doc: String,
    span: Range<usize>,
    text: String,
    score: f32,
    chunk_ids: Vec<u32>,
    cost: usize,
}

/// The union of touching spans and its text, rebuilt from each piece's own text.
fn union_text(mut parts: Vec<(Range<usize>, &str)>) -> Result<(Range<usize>, String)> {
    parts.sort_by_key(|(s, _)| (s.start, s.end));
    let mut span = parts[0].0.clone();
    let mut text = parts[0].1.to_owned();
    for (s, t) in &parts[1..] {
        if s.end <= span.end {
            continue;
        }
        let from = span.end - s.start;
        let tail = t.get(from..).ok_or_else(|| {
            Error::InvalidInput(format!("span {s:?}: byte {} is not a character boundary of its text", span.end))
        })?;
        text.push_str(tail);
        span.end = s.end;
    }
    Ok((span, text))
}
// END SOLUTION
