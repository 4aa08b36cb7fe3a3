//! Splitting special tokens (`<|im_start|>`, `[CLS]`, …) out of raw text before pre-tokenisation.
//!
//! A special token in the input is matched literally and becomes its own id; the text around it is tokenised as
//! usual. Matching is leftmost-longest, as HF's added vocabulary does it (an Aho-Corasick automaton there): scan
//! left to right, and at the first position where some token matches take the longest one. A table of which bytes
//! can start a token makes the scan skip ordinary text quickly.

/// Literal tokens to split out of text, with their ids.
#[derive(Debug, Clone)]
pub(crate) struct SpecialMatcher {
    /// `(text, id)`, longest first (so the first match at a position is the longest).
    tokens: Vec<(String, u32)>,
    /// Whether some token starts with this byte.
    first_byte: [bool; 256],
}

/// A part of the input: ordinary text, or a special token's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    /// Text between special tokens.
    Text(&'a str),
    /// A special token.
    Special(u32),
}

impl SpecialMatcher {
    /// A matcher for `tokens` (`(text, id)`); empty texts are ignored.
    pub(crate) fn new(tokens: impl IntoIterator<Item = (String, u32)>) -> SpecialMatcher {
        let mut tokens: Vec<(String, u32)> = tokens.into_iter().filter(|(t, _)| !t.is_empty()).collect();
        tokens.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        tokens.dedup_by(|a, b| a.0 == b.0);
        let mut first_byte = [false; 256];
        for (t, _) in &tokens {
            first_byte[t.as_bytes()[0] as usize] = true;
        }
        SpecialMatcher { tokens, first_byte }
    }

    /// Whether there is nothing to match.
    pub(crate) fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Calls `f` with each segment of `text` in order (empty text segments are skipped).
    pub(crate) fn split<'a>(&self, text: &'a str, mut f: impl FnMut(Segment<'a>)) {
        if self.tokens.is_empty() {
            if !text.is_empty() {
                f(Segment::Text(text));
            }
            return;
        }
        let bytes = text.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if self.first_byte[bytes[i] as usize]
                && let Some((t, id)) = self.tokens.iter().find(|(t, _)| bytes[i..].starts_with(t.as_bytes()))
            {
                if start < i {
                    f(Segment::Text(&text[start..i]));
                }
                f(Segment::Special(*id));
                i += t.len();
                start = i;
                continue;
            }
            i += 1;
        }
        if start < bytes.len() {
            f(Segment::Text(&text[start..]));
        }
    }
}
