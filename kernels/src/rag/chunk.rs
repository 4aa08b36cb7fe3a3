//! Chunkers: fixed token windows with overlap, sentences, recursive by structure, and semantic.
//!
//! Every chunker measures size in the tokens of one tokenizer (a [`TokenSpans`]: the embedder's
//! WordPiece for MiniLM, or SmolLM2's byte-level BPE), and every chunk keeps its byte span in
//! [`Document::text`]. The document is tokenised once; the size of a piece is the number of the
//! document's tokens its span overlaps (re-tokenising a piece cut inside a word can give a token
//! more or less). Characters no token covers (control characters, combining accents the
//! normaliser drops) are given to the token before them, so chunks never lose text.
//!
//! - [`ChunkerConfig::FixedTokens`]: windows of `size` tokens over the whole document, consecutive
//!   windows sharing `overlap` tokens (the classic sliding window; it ignores structure and may
//!   cross sections).
//! - [`ChunkerConfig::Sentences`]: whole sentences ([`split_sentences`]; a code block is one unit,
//!   never split into sentences) packed greedily up to `max_tokens`, within a section.
//! - [`ChunkerConfig::Recursive`]: a section that fits is one chunk; else its blocks, a block that
//!   does not fit its sentences (a code block its lines), a sentence that does not fit its words,
//!   a word that does not fit token windows; then neighbours are merged greedily while they fit
//!   (the recursive character splitter of LangChain, on structure rather than separators). Never
//!   crosses a section boundary.
//! - [`ChunkerConfig::Semantic`]: the Sentences chunker's units, embedded; a new chunk starts where
//!   the cosine similarity of neighbouring units falls below `threshold`, where adding the next
//!   unit would exceed `max_tokens`, or at a section boundary (Kamradt's "semantic chunking", with
//!   a fixed threshold instead of a percentile: MiniLM gives ~0.1–0.3 between unrelated sentences
//!   and ~0.4–0.8 within a topic).
//!
//! No chunk is larger than its budget: a sentence or a block longer than it is cut into token
//! windows (preferring a cut at whitespace in the window's second half), and a single token is
//! always one token. MiniLM's `tokenizer.json` truncates at 128 tokens, `[CLS]` and `[SEP]`
//! included, so budgets up to 126 keep a whole chunk inside its window; larger chunks are embedded
//! from their first 126 tokens.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::{Chunk, Document, Embedder};
use crate::{Error, Result};

/// Which chunker and its parameters (stored in an index's manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChunkerConfig {
    /// Windows of `size` tokens of the given tokenizer, consecutive windows sharing `overlap` tokens.
    FixedTokens { size: usize, overlap: usize },
    /// Whole sentences packed up to `max_tokens`.
    Sentences { max_tokens: usize },
    /// Headings, then paragraphs/blocks, then sentences, then tokens, until each piece fits `max_tokens`.
    Recursive { max_tokens: usize },
    /// Sentences grouped until the embedding similarity of neighbours drops (threshold rule in the docs).
    Semantic { max_tokens: usize, threshold: f32 },
}

/// Where a tokenizer's tokens lie in a text: what the chunkers count and cut by. Implemented for the
/// embedder's WordPiece (MiniLM) and for byte-level BPE (SmolLM2).
pub trait TokenSpans: Sync {
    /// Byte range of each token of `text`, in order (special tokens such as `[CLS]` excluded).
    fn token_spans(&self, text: &str) -> Vec<std::ops::Range<usize>>;
    /// Number of tokens of `text` (the length of [`TokenSpans::token_spans`]).
    fn count_tokens(&self, text: &str) -> usize {
        self.token_spans(text).len()
    }
}

// ------------------------------------------------------------------ sentences

/// Characters that end a sentence in CJK text, with or without a following space.
const CJK_ENDS: [char; 5] = ['。', '！', '？', '｡', '．'];
/// Closing quotes and brackets that stay with the sentence they end.
const CLOSERS: [char; 14] = ['"', '\'', ')', ']', '}', '”', '’', '»', '」', '』', '）', '】', '〉', '》'];
/// Abbreviations after which a period never ends a sentence (compared lowercased, without the
/// final period).
const NEVER_END: [&str; 17] =
    ["e.g", "i.e", "cf", "vs", "viz", "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "fig", "approx", "eq", "ca"];
/// Abbreviations that end a sentence only when the next word is capitalised.
const MAY_END: [&str; 2] = ["etc", "al"];

/// Splits prose into sentences: byte ranges, trimmed of whitespace, that cover all its
/// non-whitespace text. A sentence ends
/// - after `.`, `!`, `?` or `…` (a run of them, then closing quotes or brackets) followed by
///   whitespace or the end of the text, so `3.14`, `1.95.0`, `example.com` and `std::io.` inside
///   a word never end one;
/// - after `。`, `！`, `？` (and `｡`, `．`) whether or not a space follows;
/// - at a blank line.
///
/// Except: after the abbreviations `e.g.`, `i.e.`, `cf.`, `vs.`, `Dr.`, `Mr.`, `Mrs.`, `Ms.`,
/// `Prof.`, `St.`, `Fig.`, ... and initialisms of single letters (`U.S.`, `J.`), never; after
/// `etc.` and `al.`, and after an ellipsis (`...`, `…`), only when the next word starts with a
/// capital letter; and never after a bare number opening the sentence (a list marker `1.`).
/// A rule-based splitter in the spirit of Punkt (Kiss & Strunk 2006) with a fixed abbreviation
/// list instead of learned statistics; it does not know that `U.S.` can end a sentence.
pub fn split_sentences(text: &str) -> Vec<Range<usize>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut start = 0usize;
    let push = |out: &mut Vec<Range<usize>>, a: usize, b: usize| {
        let r = trim(text, a..b);
        if !r.is_empty() {
            out.push(r);
        }
    };
    let byte_at = |k: usize| chars.get(k).map_or(text.len(), |c| c.0);
    let mut k = 0;
    while k < chars.len() {
        let (i, ch) = chars[k];
        if ch == '\n' {
            // A blank line: newline, optional spaces, newline.
            let mut j = k + 1;
            while j < chars.len() && chars[j].1 != '\n' && chars[j].1.is_whitespace() {
                j += 1;
            }
            if j < chars.len() && chars[j].1 == '\n' {
                push(&mut out, start, i);
                start = chars[j].0;
                k = j + 1;
                continue;
            }
            k += 1;
            continue;
        }
        if CJK_ENDS.contains(&ch) {
            let mut j = k + 1;
            while j < chars.len() && (CJK_ENDS.contains(&chars[j].1) || CLOSERS.contains(&chars[j].1)) {
                j += 1;
            }
            push(&mut out, start, byte_at(j));
            start = byte_at(j);
            k = j;
            continue;
        }
        if !matches!(ch, '.' | '!' | '?' | '…') {
            k += 1;
            continue;
        }
        // A run of terminal punctuation, then closers.
        let mut j = k;
        let mut dots = 0;
        let mut ellipsis = false;
        while j < chars.len() && matches!(chars[j].1, '.' | '!' | '?' | '…') {
            dots += usize::from(chars[j].1 == '.');
            ellipsis |= chars[j].1 == '…';
            j += 1;
        }
        ellipsis |= dots >= 2;
        while j < chars.len() && CLOSERS.contains(&chars[j].1) {
            j += 1;
        }
        let end = byte_at(j);
        if j < chars.len() && !chars[j].1.is_whitespace() {
            k = j;
            continue;
        }
        let next_capital = chars[j..].iter().find(|c| !c.1.is_whitespace()).is_none_or(|c| c.1.is_uppercase());
        let boundary = if ellipsis {
            next_capital
        } else if ch == '.' && chars[k + 1..j].iter().all(|c| CLOSERS.contains(&c.1)) {
            // A single period: look at the word before it.
            let word_start = text[start..i].rfind(char::is_whitespace).map_or(start, |p| {
                let p = start + p;
                p + text[p..].chars().next().map_or(1, char::len_utf8)
            });
            let word = text[word_start..i].trim_start_matches(['(', '[', '"', '\'', '“', '‘', '«']).to_lowercase();
            if NEVER_END.contains(&word.as_str()) || is_initialism(&word) {
                false
            } else if MAY_END.contains(&word.as_str()) {
                next_capital
            } else {
                !(word.chars().all(|c| c.is_ascii_digit()) && !word.is_empty() && text[start..i].trim() == word)
            }
        } else {
            true
        };
        if boundary {
            push(&mut out, start, end);
            start = end;
        }
        k = j;
    }
    push(&mut out, start, text.len());
    out
}

/// Single letters separated by periods: `u.s`, `j`, `u.s.a`.
fn is_initialism(word: &str) -> bool {
    !word.is_empty()
        && word.split('.').all(|part| {
            let mut c = part.chars();
            c.next().is_some_and(char::is_alphabetic) && c.next().is_none()
        })
}

/// `range` without leading and trailing whitespace (empty at its start when all whitespace).
fn trim(text: &str, range: Range<usize>) -> Range<usize> {
    let s = &text[range.clone()];
    let lead = s.len() - s.trim_start().len();
    let inner = s.trim();
    range.start + lead..range.start + lead + inner.len()
}

// ------------------------------------------------------------------ token spans

fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The WordPiece offsets of [`crate::tokenize::WordPiece::tokenize_with_offsets`].
impl TokenSpans for crate::tokenize::WordPiece {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        self.tokenize_with_offsets(text).into_iter().map(|(_, r)| r).collect()
    }
}

/// Byte-level BPE: each token's bytes, in order (the text is encoded as ordinary text, so a special
/// token's literal is tokenised like any other). A token that starts or ends inside a multi-byte
/// character is widened to the whole character, so neighbouring spans can share a character but no
/// span cuts one.
impl TokenSpans for crate::tokenize::Bpe {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        let ids = self.encode_ordinary(text);
        let mut spans = Vec::with_capacity(ids.len());
        let mut pos = 0usize;
        for id in ids {
            let len = self.token_bytes(id).map_or(0, <[u8]>::len);
            let (s, e) = (pos, pos + len);
            pos = e;
            spans.push(floor_boundary(text, s)..ceil_boundary(text, e));
        }
        spans
    }
}

/// MiniLM's WordPiece tokens: byte offsets of the folder's `tokenizer.json` tokenizer (HF's
/// offsets), no `[CLS]`/`[SEP]`. A model loaded without a tokenizer falls back to words
/// (whitespace-separated, each punctuation character alone).
impl TokenSpans for crate::nn::bert::BertModel {
    fn token_spans(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        match self.tokenizer() {
            Some(t) => t.token_spans(text),
            None => {
                let mut spans = Vec::new();
                let mut start = None;
                for (i, ch) in text.char_indices() {
                    let punct = ch.is_ascii_punctuation();
                    if ch.is_whitespace() || punct {
                        if let Some(s) = start.take() {
                            spans.push(s..i);
                        }
                        if punct {
                            spans.push(i..i + 1);
                        }
                    } else if start.is_none() {
                        start = Some(i);
                    }
                }
                if let Some(s) = start {
                    spans.push(s..text.len());
                }
                spans
            }
        }
    }
}

// ------------------------------------------------------------------ the chunkers

/// A document's tokens, widened to cover the characters between them.
struct Tokens<'a> {
    text: &'a str,
    starts: Vec<usize>,
    ends: Vec<usize>,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str, spans: Vec<Range<usize>>) -> Tokens<'a> {
        let n = spans.len();
        let mut starts = Vec::with_capacity(n);
        let mut ends = Vec::with_capacity(n);
        for (k, s) in spans.iter().enumerate() {
            let mut start = floor_boundary(text, s.start);
            let mut end = ceil_boundary(text, s.end.max(s.start));
            if k == 0 {
                // Non-whitespace before the first token joins it.
                start = text[..start].find(|c: char| !c.is_whitespace()).unwrap_or(start);
            }
            let next = spans.get(k + 1).map_or(text.len(), |n| floor_boundary(text, n.start));
            if next > end {
                // So does what lies between it and the next token, but for trailing whitespace.
                end += text[end..next].trim_end().len();
            }
            // Monotone, so counting can bisect.
            if let Some(&prev) = starts.last() {
                start = start.max(prev);
            }
            if let Some(&prev) = ends.last() {
                end = end.max(prev);
            }
            starts.push(start);
            ends.push(end.max(start));
        }
        Tokens { text, starts, ends }
    }

    /// Indices of the tokens overlapping `r`.
    fn overlapping(&self, r: &Range<usize>) -> Range<usize> {
        let first = self.ends.partition_point(|&e| e <= r.start);
        let last = self.starts.partition_point(|&s| s < r.end);
        first..last.max(first)
    }

    fn count(&self, r: &Range<usize>) -> usize {
        self.overlapping(r).len()
    }

    /// Whether a cut before token `k` separates whole tokens (tokens that share a character, the
    /// jamo of one Hangul syllable or the byte tokens of one emoji, cannot be separated).
    fn clean(&self, k: usize) -> bool {
        k == 0 || k >= self.starts.len() || self.starts[k] >= self.ends[k - 1]
    }

    /// The end of a window of at most `max` tokens starting at token `a` (of `n`): the latest clean
    /// cut, at whitespace in the window's second half when `prefer_space` and there is one; past
    /// the budget only when no clean cut is inside it (one character of more than `max` tokens).
    fn window_end(&self, a: usize, n: usize, max: usize, prefer_space: bool) -> usize {
        let b = (a + max).min(n);
        if b == n {
            return n;
        }
        if prefer_space {
            let half = a + max.div_ceil(2);
            if let Some(cut) = (half.max(a + 1)..=b).rev().find(|&k| self.ends[k - 1] < self.starts[k]) {
                return cut;
            }
        }
        if let Some(cut) = (a + 1..=b).rev().find(|&k| self.clean(k)) {
            return cut;
        }
        (b..n).find(|&k| self.clean(k)).unwrap_or(n)
    }

    /// Token windows of at most `max` tokens over `r`, cut at whitespace in a window's second half
    /// when there is one.
    fn windows(&self, r: &Range<usize>, max: usize) -> Vec<Range<usize>> {
        let toks = self.overlapping(r);
        if toks.len() <= max {
            return vec![r.clone()];
        }
        let mut out = Vec::new();
        let mut a = toks.start;
        let mut from = r.start;
        while a < toks.end {
            let b = self.window_end(a, toks.end, max, true);
            let to = if b >= toks.end { r.end } else { self.starts[b].clamp(from, r.end) };
            if to > from {
                out.push(from..to);
            }
            from = to;
            a = b;
        }
        out
    }
}

/// Where each piece of a [`Level`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Section,
    Block { code: bool },
    Sentence,
    Word,
}

struct Chunker<'a> {
    doc: &'a Document,
    tokens: Tokens<'a>,
    max: usize,
}

impl Chunker<'_> {
    fn text(&self) -> &str {
        self.tokens.text
    }

    fn fits(&self, r: &Range<usize>) -> bool {
        self.tokens.count(r) <= self.max
    }

    /// The blocks inside a region, clipped, with the non-blank gaps between them as paragraphs.
    fn blocks_in(&self, region: &Range<usize>) -> Vec<(Range<usize>, bool)> {
        let mut out = Vec::new();
        let mut pos = region.start;
        let gap = |out: &mut Vec<(Range<usize>, bool)>, a: usize, b: usize| {
            if b > a && !self.text()[a..b].trim().is_empty() {
                out.push((a..b, false));
            }
        };
        for b in &self.doc.blocks {
            let (s, e) = (b.span.start.max(region.start).max(pos), b.span.end.min(region.end));
            if e <= s {
                continue;
            }
            gap(&mut out, pos, s);
            out.push((s..e, b.kind == super::BlockKind::Code));
            pos = e;
        }
        gap(&mut out, pos, region.end);
        out
    }

    /// The pieces one level down.
    fn children(&self, r: &Range<usize>, level: Level) -> Vec<(Range<usize>, Level)> {
        let text = self.text();
        match level {
            Level::Section => self.blocks_in(r).into_iter().map(|(b, code)| (b, Level::Block { code })).collect(),
            Level::Block { code: false } => split_sentences(&text[r.clone()])
                .into_iter()
                .map(|s| (r.start + s.start..r.start + s.end, Level::Sentence))
                .collect(),
            Level::Block { code: true } => {
                let mut lines = Vec::new();
                let mut pos = r.start;
                for line in text[r.clone()].split_inclusive('\n') {
                    let l = trim(text, pos..pos + line.len());
                    if !l.is_empty() {
                        lines.push((l, Level::Sentence));
                    }
                    pos += line.len();
                }
                lines
            }
            Level::Sentence => {
                let mut words = Vec::new();
                let mut start = None;
                for (i, ch) in text[r.clone()].char_indices() {
                    if ch.is_whitespace() {
                        if let Some(s) = start.take() {
                            words.push((r.start + s..r.start + i, Level::Word));
                        }
                    } else if start.is_none() {
                        start = Some(i);
                    }
                }
                if let Some(s) = start {
                    words.push((r.start + s..r.end, Level::Word));
                }
                words
            }
            Level::Word => Vec::new(),
        }
    }

    /// Recursive splitting: a piece that fits is kept; else its children are split and merged.
    fn recursive(&self, r: Range<usize>, level: Level, merge: bool) -> Vec<Range<usize>> {
        let r = trim(self.text(), r);
        if r.is_empty() {
            return Vec::new();
        }
        if self.fits(&r) {
            return vec![r];
        }
        let children = self.children(&r, level);
        if level == Level::Word || (children.len() == 1 && level == Level::Sentence) {
            return self
                .tokens
                .windows(&r, self.max)
                .into_iter()
                .map(|w| trim(self.text(), w))
                .filter(|w| !w.is_empty())
                .collect();
        }
        let mut pieces = Vec::new();
        for (c, l) in children {
            pieces.extend(self.recursive(c, l, merge));
        }
        if merge { self.merge(pieces) } else { pieces }
    }

    /// Greedy merge of neighbours while the merged span fits.
    fn merge(&self, pieces: Vec<Range<usize>>) -> Vec<Range<usize>> {
        let mut out: Vec<Range<usize>> = Vec::with_capacity(pieces.len());
        for p in pieces {
            if let Some(last) = out.last_mut()
                && self.fits(&(last.start..p.end))
            {
                last.end = p.end;
                continue;
            }
            out.push(p);
        }
        out
    }

    /// The units of the sentence and semantic chunkers in one region: sentences of prose, whole code
    /// blocks, each cut further when it does not fit.
    fn units(&self, region: &Range<usize>) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        for (b, code) in self.blocks_in(region) {
            if code {
                out.extend(self.recursive(b, Level::Block { code: true }, true));
            } else {
                for (s, _) in self.children(&b, Level::Block { code: false }) {
                    out.extend(self.recursive(s, Level::Sentence, true));
                }
            }
        }
        out
    }
}

/// The regions chunks do not cross: the sections' spans, with any text outside them as regions
/// of their own.
fn regions(doc: &Document) -> Vec<Range<usize>> {
    let len = doc.text.len();
    let mut cuts: Vec<usize> = vec![0, len];
    for s in &doc.sections {
        cuts.push(s.span.start.min(len));
        cuts.push(s.span.end.min(len));
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2).map(|w| w[0]..w[1]).filter(|r| !r.is_empty()).collect()
}

/// Checks that the document's spans are inside its text and on character boundaries.
fn validate(doc: &Document) -> Result<()> {
    let ok = |r: &Range<usize>| {
        r.start <= r.end
            && r.end <= doc.text.len()
            && doc.text.is_char_boundary(r.start)
            && doc.text.is_char_boundary(r.end)
    };
    for r in doc.sections.iter().map(|s| &s.span).chain(doc.blocks.iter().map(|b| &b.span)) {
        if !ok(r) {
            return Err(Error::InvalidParameter(format!(
                "document {}: span {r:?} is not a range of its text ({} bytes) on character boundaries",
                doc.id,
                doc.text.len()
            )));
        }
    }
    Ok(())
}

/// Chunks one document, measuring sizes with `tokens` (the embedder's tokenizer, so chunks fit its
/// window). The semantic chunker needs `embedder` (an error without it); the others ignore it.
/// Chunks come in text order, never empty, trimmed of surrounding whitespace, each with
/// `text == doc.text[span]`, the heading path and passage of the section it overlaps most, and the
/// document's metadata; the same input gives the same chunks.
///
/// # Errors
/// [`Error::InvalidParameter`] for a zero size or budget, an overlap not smaller than the size, a
/// non-finite threshold, the semantic chunker without an embedder, or a document whose section or
/// block spans are not ranges of its text; the embedder's errors.
pub fn chunk_document(
    doc: &Document,
    config: &ChunkerConfig,
    tokens: &dyn TokenSpans,
    embedder: Option<&dyn Embedder>,
) -> Result<Vec<Chunk>> {
    let (max, overlap) = match *config {
        ChunkerConfig::FixedTokens { size, overlap } => {
            if overlap >= size {
                return Err(Error::InvalidParameter(format!(
                    "FixedTokens: overlap {overlap} must be smaller than size {size}"
                )));
            }
            (size, overlap)
        }
        ChunkerConfig::Sentences { max_tokens } | ChunkerConfig::Recursive { max_tokens } => (max_tokens, 0),
        ChunkerConfig::Semantic { max_tokens, threshold } => {
            if !threshold.is_finite() {
                return Err(Error::InvalidParameter(format!("Semantic: threshold {threshold} is not finite")));
            }
            if embedder.is_none() {
                return Err(Error::InvalidParameter("the Semantic chunker needs an embedder".into()));
            }
            (max_tokens, 0)
        }
    };
    if max == 0 {
        return Err(Error::InvalidParameter(format!("{config:?}: the size must be at least 1 token")));
    }
    validate(doc)?;
    if doc.text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let c = Chunker { doc, tokens: Tokens::new(&doc.text, tokens.token_spans(&doc.text)), max };
    let spans: Vec<Range<usize>> = match *config {
        ChunkerConfig::FixedTokens { .. } => fixed_windows(&c.tokens, max, overlap),
        ChunkerConfig::Recursive { .. } => {
            regions(doc).into_iter().flat_map(|r| c.recursive(r, Level::Section, true)).collect()
        }
        ChunkerConfig::Sentences { .. } => regions(doc).iter().flat_map(|r| c.merge(c.units(r))).collect(),
        ChunkerConfig::Semantic { threshold, .. } => {
            let Some(embedder) = embedder else { return Ok(Vec::new()) };
            let mut out = Vec::new();
            for r in regions(doc) {
                out.extend(semantic(&c, &c.units(&r), embedder, threshold)?);
            }
            out
        }
    };
    Ok(spans
        .into_iter()
        .map(|s| trim(&doc.text, s))
        .filter(|s| !s.is_empty())
        .map(|span| {
            let (heading_path, passage) = match doc.section_of(&span) {
                Some(s) => (s.heading_path.clone(), doc.passage_id(s)),
                None => (Vec::new(), doc.id.clone()),
            };
            Chunk {
                doc: doc.id.clone(),
                text: doc.text[span.clone()].to_string(),
                span,
                heading_path,
                passage,
                metadata: doc.metadata.clone(),
            }
        })
        .collect())
}

/// Windows of `size` tokens starting every `size - overlap` tokens; the last one ends at the last
/// token. Windows start and end between whole characters: where tokens share a character, a
/// window ends before them and the next starts earlier.
fn fixed_windows(tokens: &Tokens<'_>, size: usize, overlap: usize) -> Vec<Range<usize>> {
    let n = tokens.starts.len();
    let mut out = Vec::new();
    if n == 0 {
        // Text no token covers (only dropped characters): one chunk.
        out.push(0..tokens.text.len());
        return out;
    }
    let step = size - overlap;
    let mut a = 0;
    loop {
        let b = tokens.window_end(a, n, size, false);
        out.push(tokens.starts[a]..tokens.ends[b - 1]);
        if b == n {
            break;
        }
        // The next window starts `step` tokens on, earlier if that splits a character, never past
        // this window's end (so no token is skipped) nor at or before its start.
        let mut next = (a + step).min(b);
        while next > a + 1 && !tokens.clean(next) {
            next -= 1;
        }
        if !tokens.clean(next) {
            next = b;
        }
        a = next;
    }
    out
}

/// Groups units: a new group where the cosine of neighbours is below `threshold` or the group
/// would outgrow the budget.
fn semantic(
    c: &Chunker<'_>,
    units: &[Range<usize>],
    embedder: &dyn Embedder,
    threshold: f32,
) -> Result<Vec<Range<usize>>> {
    if units.is_empty() {
        return Ok(Vec::new());
    }
    let mut vectors = Vec::with_capacity(units.len());
    for batch in units.chunks(32) {
        let texts: Vec<&str> = batch.iter().map(|u| &c.text()[u.clone()]).collect();
        vectors.extend(embedder.embed(&texts)?);
    }
    let mut out = Vec::new();
    let mut cur = units[0].clone();
    for k in 1..units.len() {
        let similarity = cosine(&vectors[k - 1], &vectors[k]);
        let merged = cur.start..units[k].end;
        if similarity >= threshold && c.fits(&merged) {
            cur = merged;
        } else {
            out.push(cur);
            cur = units[k].clone();
        }
    }
    out.push(cur);
    Ok(out)
}

/// Cosine similarity (the embedder's vectors are unit length, but a test's may not be).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na * nb) }
}
