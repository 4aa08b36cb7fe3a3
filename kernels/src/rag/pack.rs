//! Context packing: retrieved chunks into a token budget, ordered by score, by source or lost-in-the-middle aware, overlapping spans merged.
//!
//! The budget is what the generator's context leaves for sources: [`budget_for`] subtracts the prompt's
//! own tokens (instructions, question, chat template) and the answer's budget from the context length.
//! What is measured is the rendered context itself, [`Packed::context`]: every source block
//! `[n] <doc> › <heading path>\n<text>` joined by blank lines, counted with the generator's tokenizer
//! (SmolLM2's byte-level BPE through [`TokenSpans`]), so `Packed::tokens <= budget_tokens` holds for the
//! text the model actually reads.
//!
//! The rule, in order:
//!
//! 1. Hits are taken best first (by [`Hit::score`], descending; ties keep the retriever's order). A hit
//!    naming a chunk already taken is skipped.
//! 2. With `merge_overlaps`, a chunk of a document whose byte span overlaps or touches the span of an
//!    already taken group of that document joins the group: the group's span becomes the union and its
//!    text the document's text over that span (rebuilt from the chunks' own texts, which are
//!    `doc.text[span]`), so overlapping windows are never shown twice. A group keeps its best member's
//!    score, heading path and passage.
//! 3. A hit whose block (or whose merge) does not fit what is left of the budget is skipped, and packing
//!    goes on: a smaller, lower-ranked chunk may still fit. A single chunk larger than the whole budget is
//!    therefore never packed (it is not cut: a cut chunk would cite text the retriever did not judge).
//! 4. The groups are ordered ([`PackOrder`]) and numbered `1..=n` in that order. The joined context is
//!    counted once more exactly; should BPE merges across the joins push it over the budget, the weakest
//!    group is dropped until it fits.
//!
//! "Lost in the middle" (Liu et al., "Lost in the Middle: How Language Models Use Long Contexts", TACL 2024,
//! arXiv:2307.03172): models use information at the start and the end of a long context best and the
//! middle worst, so [`PackOrder::LostInTheMiddle`] puts the best chunks at both ends and the weakest in
//! the middle: ranks 1, 3, 5, … from the front and 2, 4, 6, … from the back.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::Chunk;
use super::chunk::TokenSpans;
use super::index::RagIndex;
use super::retrieve::Hit;
use crate::{Error, Result};

/// How packed chunks are ordered in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PackOrder {
    /// Best first.
    Score,
    /// By document id, then span start: reads like the sources themselves.
    Source,
    /// Best at both ends, weakest in the middle (Liu et al. 2023).
    #[default]
    LostInTheMiddle,
}

/// How to pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackConfig {
    /// Tokens the rendered context may take (see [`budget_for`]).
    pub budget_tokens: usize,
    pub order: PackOrder,
    /// Merge chunks of one document whose spans overlap or touch.
    pub merge_overlaps: bool,
}

impl Default for PackConfig {
    fn default() -> Self {
        PackConfig { budget_tokens: 1024, order: PackOrder::default(), merge_overlaps: true }
    }
}

/// The tokens left for sources: `context_len - prompt_tokens - answer_tokens` (0 when they do not fit).
pub fn budget_for(context_len: usize, prompt_tokens: usize, answer_tokens: usize) -> usize {
    context_len.saturating_sub(prompt_tokens).saturating_sub(answer_tokens)
}

/// One numbered source of the prompt: a chunk, or several merged chunks of one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackedChunk {
    /// 1-based, in the final order: what the answer cites as `[number]`.
    pub number: usize,
    pub doc: String,
    /// Byte span in the document's text (the union of the merged chunks' spans).
    pub span: Range<usize>,
    pub text: String,
    pub heading_path: Vec<String>,
    pub passage: String,
    /// The best score among the merged hits.
    pub score: f32,
    /// The index ids of the chunks it holds, best first.
    pub chunk_ids: Vec<u32>,
}

impl PackedChunk {
    /// The block the prompt shows: `[n] <doc> › <heading › path>` then the text.
    pub fn block(&self) -> String {
        source_block(self.number, &self.doc, &self.heading_path, &self.text)
    }
}

/// A packed context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Packed {
    pub chunks: Vec<PackedChunk>,
    /// Tokens of [`Packed::context`] by the packing tokenizer.
    pub tokens: usize,
}

impl Packed {
    /// Number of sources.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Whether nothing was packed.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The sources as the prompt shows them: every block, joined by a blank line.
    pub fn context(&self) -> String {
        join_blocks(&self.chunks)
    }
}

/// `[n] <doc> › <h1 › h2>\n<text>` (just `[n] <doc>` when the chunk has no heading path).
pub fn source_block(number: usize, doc: &str, heading_path: &[String], text: &str) -> String {
    let mut head = format!("[{number}] {doc}");
    for h in heading_path {
        head.push_str(" › ");
        head.push_str(h);
    }
    format!("{head}\n{}", text.trim_end())
}

fn join_blocks(chunks: &[PackedChunk]) -> String {
    chunks.iter().map(PackedChunk::block).collect::<Vec<_>>().join("\n\n")
}

/// A hit resolved to its chunk: what [`pack_chunks`] packs.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub id: u32,
    pub chunk: &'a Chunk,
    pub score: f32,
}

/// Packs `hits` (resolved through `index`) into `config.budget_tokens` measured by `tokens`.
///
/// # Errors
/// [`Error::RagUnknownChunk`] when a hit names a chunk the index does not hold; as [`pack_chunks`].
pub fn pack(index: &RagIndex, hits: &[Hit], tokens: &dyn TokenSpans, config: &PackConfig) -> Result<Packed> {
    let candidates = hits
        .iter()
        .map(|h| {
            index
                .chunk(h.chunk)
                .map(|chunk| Candidate { id: h.chunk, chunk, score: h.score })
                .ok_or(Error::RagUnknownChunk { chunk: h.chunk })
        })
        .collect::<Result<Vec<_>>>()?;
    pack_chunks(&candidates, tokens, config)
}

/// A group being built: merged chunks of one document.
struct Group {
    doc: String,
    span: Range<usize>,
    text: String,
    heading_path: Vec<String>,
    passage: String,
    score: f32,
    /// Rank of the best member (position in the best-first list): ties in score keep this order.
    rank: usize,
    chunk_ids: Vec<u32>,
    /// Tokens of its block (with a placeholder number).
    tokens: usize,
}

/// Packs resolved candidates (the module docs give the rule).
///
/// # Errors
/// [`Error::InvalidParameter`] for a NaN score or a chunk whose text is not as long as its span (the
/// contract `text == doc.text[span]` is broken, so texts cannot be merged).
pub fn pack_chunks(candidates: &[Candidate<'_>], tokens: &dyn TokenSpans, config: &PackConfig) -> Result<Packed> {
    for c in candidates {
        if c.score.is_nan() {
            return Err(Error::InvalidParameter(format!("hit for chunk {} has a NaN score", c.id)));
        }
        if c.chunk.span.end < c.chunk.span.start || c.chunk.span.len() != c.chunk.text.len() {
            return Err(Error::InvalidParameter(format!(
                "chunk {} of {}: span {:?} is not the length of its text ({} bytes)",
                c.id,
                c.chunk.doc,
                c.chunk.span,
                c.chunk.text.len()
            )));
        }
    }
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| candidates[b].score.total_cmp(&candidates[a].score));
    // The number shown is not known until the end: measure blocks with the widest one.
    let placeholder = candidates.len().max(1);
    let block_tokens =
        |doc: &str, path: &[String], text: &str| tokens.count_tokens(&source_block(placeholder, doc, path, text));
    // "\n\n" between blocks.
    let join = tokens.count_tokens("\n\n");
    let mut groups: Vec<Group> = Vec::new();
    let mut used = 0usize;
    let mut seen = std::collections::HashSet::new();
    for (rank, &i) in order.iter().enumerate() {
        let c = &candidates[i];
        if !seen.insert(c.id) {
            continue;
        }
        let touching: Vec<usize> = if config.merge_overlaps {
            groups
                .iter()
                .enumerate()
                .filter(|(_, g)| g.doc == c.chunk.doc && touches(&g.span, &c.chunk.span))
                .map(|(j, _)| j)
                .collect()
        } else {
            Vec::new()
        };
        if touching.is_empty() {
            let t = block_tokens(&c.chunk.doc, &c.chunk.heading_path, &c.chunk.text);
            let cost = t + if groups.is_empty() { 0 } else { join };
            if used + cost > config.budget_tokens {
                continue;
            }
            used += cost;
            groups.push(Group {
                doc: c.chunk.doc.clone(),
                span: c.chunk.span.clone(),
                text: c.chunk.text.clone(),
                heading_path: c.chunk.heading_path.clone(),
                passage: c.chunk.passage.clone(),
                score: c.score,
                rank,
                chunk_ids: vec![c.id],
                tokens: t,
            });
            continue;
        }
        // Merge the chunk with every group it touches (it may bridge two).
        let mut pieces: Vec<(Range<usize>, &str)> =
            touching.iter().map(|&j| (groups[j].span.clone(), groups[j].text.as_str())).collect();
        pieces.push((c.chunk.span.clone(), c.chunk.text.as_str()));
        let (span, text) = union_text(pieces)?;
        let best = touching[0]; // groups are in best-first order, so the first touched one is the best
        let t = block_tokens(&groups[best].doc, &groups[best].heading_path, &text);
        let freed: usize = touching.iter().map(|&j| groups[j].tokens).sum::<usize>() + join * (touching.len() - 1);
        if used - freed + t > config.budget_tokens {
            continue;
        }
        used = used - freed + t;
        let mut ids = Vec::new();
        for &j in &touching {
            ids.extend_from_slice(&groups[j].chunk_ids);
        }
        ids.push(c.id);
        let g = &mut groups[best];
        g.span = span;
        g.text = text;
        g.tokens = t;
        g.chunk_ids = ids;
        for &j in touching[1..].iter().rev() {
            groups.remove(j);
        }
    }
    let mut chunks = arrange(groups, config.order);
    // The exact count of what the prompt will show; drop the weakest until it fits.
    loop {
        let n = if chunks.is_empty() { 0 } else { tokens.count_tokens(&join_blocks(&chunks)) };
        if n <= config.budget_tokens {
            return Ok(Packed { chunks, tokens: n });
        }
        let weakest =
            (0..chunks.len()).min_by(|&a, &b| chunks[a].score.total_cmp(&chunks[b].score).then(b.cmp(&a))).unwrap_or(0);
        chunks.remove(weakest);
        for (k, c) in chunks.iter_mut().enumerate() {
            c.number = k + 1;
        }
    }
}

/// Whether two half-open spans overlap or touch end to start.
fn touches(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start <= b.end && b.start <= a.end
}

/// The union of touching spans and the text over it, rebuilt from each piece's own text.
fn union_text(mut pieces: Vec<(Range<usize>, &str)>) -> Result<(Range<usize>, String)> {
    pieces.sort_by_key(|(s, _)| (s.start, s.end));
    let mut span = pieces[0].0.clone();
    let mut text = pieces[0].1.to_owned();
    for (s, t) in &pieces[1..] {
        if s.end <= span.end {
            continue;
        }
        let from = span.end.saturating_sub(s.start);
        let tail = t.get(from..).ok_or_else(|| {
            Error::InvalidParameter(format!(
                "chunk span {s:?}: byte {} is not a character boundary of its text",
                span.end
            ))
        })?;
        text.push_str(tail);
        span.end = s.end;
    }
    Ok((span, text))
}

/// Orders the groups (which arrive best first) and numbers them.
fn arrange(mut groups: Vec<Group>, order: PackOrder) -> Vec<PackedChunk> {
    groups.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.rank.cmp(&b.rank)));
    let groups = match order {
        PackOrder::Score => groups,
        PackOrder::Source => {
            let mut g = groups;
            g.sort_by(|a, b| a.doc.cmp(&b.doc).then(a.span.start.cmp(&b.span.start)));
            g
        }
        PackOrder::LostInTheMiddle => {
            let mut front = Vec::new();
            let mut back = Vec::new();
            for (k, g) in groups.into_iter().enumerate() {
                if k % 2 == 0 {
                    front.push(g);
                } else {
                    back.push(g);
                }
            }
            front.extend(back.into_iter().rev());
            front
        }
    };
    groups
        .into_iter()
        .enumerate()
        .map(|(k, g)| PackedChunk {
            number: k + 1,
            doc: g.doc,
            span: g.span,
            text: g.text,
            heading_path: g.heading_path,
            passage: g.passage,
            score: g.score,
            chunk_ids: g.chunk_ids,
        })
        .collect()
}

/// Positions (0-based, best first) of a lost-in-the-middle arrangement of `n` items: rank `r` lands at
/// `result[r]`. Rank 0 first, rank 1 last, rank 2 second, rank 3 second to last, …
pub fn lost_in_the_middle_positions(n: usize) -> Vec<usize> {
    (0..n).map(|r| if r % 2 == 0 { r / 2 } else { n - 1 - r / 2 }).collect()
}
