//! Chunkers: fixed token windows with overlap, and a recursive splitter that follows the text's
//! structure.
//!
//! Chunking decides recall before any retriever runs: a passage that is cut in two may match
//! neither half well, and a chunk longer than the embedder's window is silently truncated by it.
//! Every chunk here is a **byte span** of the source text (`&text[span]` is the chunk), so a
//! citation can point back at the exact place it came from, and every span starts and ends on a
//! character boundary: a byte-level tokenizer's tokens may end inside a character, a chunk may not.

use std::ops::Range;

use crate::{Error, Result, Tokenizer};

/// The largest character boundary of `text` at or before `i` (`i` is clamped to the length). Given.
pub fn floor_char_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest character boundary of `text` at or after `i` (`i` is clamped to the length). Given.
pub fn ceil_char_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Windows of `size` tokens, consecutive windows sharing `overlap` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// Tokens per window (at least 1).
    pub size: usize,
    /// Tokens shared by consecutive windows (less than `size`).
    pub overlap: usize,
}

// ANCHOR: token_windows
/// Task c4w4.token-chunker (15 points): cuts `text` into windows of `config.size` tokens of
/// `tokenizer`, consecutive windows sharing `config.overlap` tokens.
///
/// Let `t` be `tokenizer.token_spans(text)` and `n` its length. Windows start at token
/// `0, step, 2·step, …` with `step = size - overlap`; the window starting at token `s` holds
/// tokens `s .. min(s + size, n)`, and the window that reaches token `n` is the last one (so no
/// window lies inside the previous one). Its byte span runs from `t[s].start` to the end of its
/// last token, widened to whole characters: the start moves back to [`floor_char_boundary`], the
/// end forward to [`ceil_char_boundary`]. Text between tokens (white space) inside a window is
/// part of it. When a widened span equals the previous window's span (tiny windows inside one
/// long character), it is skipped. No token (empty or blank text for [`crate::Words`]) gives no
/// window.
///
/// # Errors
/// [`Error::InvalidConfig`] when `size` is 0 or `overlap >= size` (the windows would never move).
pub fn token_windows(text: &str, tokenizer: &dyn Tokenizer, config: WindowConfig) -> Result<Vec<Range<usize>>> {
    // BEGIN SOLUTION c4w4.token-chunker
    let WindowConfig { size, overlap } = config;
    if size == 0 {
        return Err(Error::InvalidConfig("a window needs at least 1 token (size = 0)".into()));
    }
    if overlap >= size {
        return Err(Error::InvalidConfig(format!("overlap {overlap} must be less than size {size}")));
    }
    let tokens = tokenizer.token_spans(text);
    let step = size - overlap;
    let mut windows: Vec<Range<usize>> = Vec::new();
    let mut s = 0;
    while s < tokens.len() {
        let e = (s + size).min(tokens.len());
        let span = floor_char_boundary(text, tokens[s].start)..ceil_char_boundary(text, tokens[e - 1].end);
        if windows.last() != Some(&span) {
            windows.push(span);
        }
        if e == tokens.len() {
            break;
        }
        s += step;
    }
    Ok(windows)
    // END SOLUTION
}
// ANCHOR_END: token_windows

/// The structural levels of [`recursive_split`], coarsest first; below the last comes
/// [`token_windows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Markdown sections: a new piece starts at every line that begins with `#`.
    Sections,
    /// Paragraphs: a new piece starts after every run of two or more `\n` (a blank line).
    Paragraphs,
    /// Sentences: a new piece starts after `.`, `!` or `?` followed by white space (the white
    /// space stays with the sentence it ends), and after the full-width `。`, `！`, `？`
    /// (with any white space that follows).
    Sentences,
}

impl Level {
    /// The next finer level, `None` after [`Level::Sentences`] (token windows come next).
    pub fn finer(self) -> Option<Level> {
        match self {
            Level::Sections => Some(Level::Paragraphs),
            Level::Paragraphs => Some(Level::Sentences),
            Level::Sentences => None,
        }
    }
}

/// Cuts `span` of `text` at `level`'s boundaries (see [`Level`]): consecutive, non-empty pieces
/// that cover `span` exactly, in order (one piece when there is no boundary inside). Given.
pub fn pieces(text: &str, span: Range<usize>, level: Level) -> Vec<Range<usize>> {
    let s = &text[span.clone()];
    // Cut offsets inside `s`, increasing.
    let mut cuts: Vec<usize> = Vec::new();
    match level {
        Level::Sections => cuts.extend(s.match_indices("\n#").map(|(i, _)| i + 1)),
        Level::Paragraphs => {
            let b = s.as_bytes();
            let mut i = 0;
            while i < b.len() {
                let run = b[i..].iter().take_while(|&&c| c == b'\n').count();
                if run >= 2 {
                    cuts.push(i + run);
                }
                i += run.max(1);
            }
        }
        Level::Sentences => {
            let mut chars = s.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                let full_width = matches!(c, '。' | '！' | '？');
                let ascii = matches!(c, '.' | '!' | '?') && chars.peek().is_some_and(|&(_, n)| n.is_whitespace());
                if full_width || ascii {
                    let mut end = i + c.len_utf8();
                    while let Some(&(j, n)) = chars.peek().filter(|(_, n)| n.is_whitespace()) {
                        end = j + n.len_utf8();
                        chars.next();
                    }
                    cuts.push(end);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for c in cuts.into_iter().filter(|&c| c > 0 && c < s.len()) {
        if c > start {
            out.push(span.start + start..span.start + c);
            start = c;
        }
    }
    if start < s.len() {
        out.push(span.start + start..span.end);
    }
    out
}

// ANCHOR: recursive_split
/// Task c4w4.recursive-split (15 points): cuts `text` into chunks of at most `max_tokens` tokens
/// of `tokenizer`, following its structure: sections, then paragraphs, then sentences, then
/// token windows. The tokens of a span are `tokenizer.count_tokens(&text[span])`.
///
/// ```text
/// split(span, level):
///     if tokens(span) <= max_tokens            → [span]
///     if level is past Sentences               → token_windows(&text[span], size max_tokens,
///                                                  overlap 0), shifted by span.start
///     parts = pieces(text, span, level)
///     if parts has one piece                   → split(span, finer level)
///     otherwise                                → merge(split(p, finer level) for each p, in order)
/// merge(list): walk left to right with a current chunk; the next one joins it when
///     tokens(current.start .. next.end) <= max_tokens, otherwise the current chunk is done and
///     the next one becomes current.
/// ```
///
/// Start with `split(0..text.len(), Sections)`, and finally drop the chunks with no token. Chunks
/// are in text order; an empty text gives none.
///
/// # Errors
/// [`Error::InvalidConfig`] when `max_tokens` is 0.
pub fn recursive_split(text: &str, tokenizer: &dyn Tokenizer, max_tokens: usize) -> Result<Vec<Range<usize>>> {
    // BEGIN SOLUTION c4w4.recursive-split
    if max_tokens == 0 {
        return Err(Error::InvalidConfig("max_tokens must be at least 1".into()));
    }
    let splitter = Splitter { text, tokenizer, max_tokens };
    let mut chunks = splitter.split(0..text.len(), Some(Level::Sections))?;
    chunks.retain(|c| splitter.tokens(c) > 0);
    Ok(chunks)
    // END SOLUTION
}
// ANCHOR_END: recursive_split

// BEGIN SOLUTION c4w4.recursive-split delete
struct Splitter<'a> {
    text: &'a str,
    tokenizer: &'a dyn Tokenizer,
    max_tokens: usize,
}

impl Splitter<'_> {
    fn tokens(&self, span: &Range<usize>) -> usize {
        self.tokenizer.count_tokens(&self.text[span.clone()])
    }

    fn split(&self, span: Range<usize>, level: Option<Level>) -> Result<Vec<Range<usize>>> {
        if self.tokens(&span) <= self.max_tokens {
            return Ok(vec![span]);
        }
        let Some(level) = level else {
            let config = WindowConfig { size: self.max_tokens, overlap: 0 };
            let windows = token_windows(&self.text[span.clone()], self.tokenizer, config)?;
            return Ok(windows.into_iter().map(|w| w.start + span.start..w.end + span.start).collect());
        };
        let parts = pieces(self.text, span.clone(), level);
        if parts.len() == 1 {
            return self.split(span, level.finer());
        }
        let mut children = Vec::new();
        for p in parts {
            children.extend(self.split(p, level.finer())?);
        }
        Ok(self.merge(children))
    }

    fn merge(&self, list: Vec<Range<usize>>) -> Vec<Range<usize>> {
        let mut out = Vec::with_capacity(list.len());
        let mut iter = list.into_iter();
        let Some(mut current) = iter.next() else { return out };
        for next in iter {
            if self.tokens(&(current.start..next.end)) <= self.max_tokens {
                current.end = next.end;
            } else {
                out.push(std::mem::replace(&mut current, next));
            }
        }
        out.push(current);
        out
    }
}
// END SOLUTION
