//! Pre-tokenisation for byte-level BPE: GPT-2's splitting regex written out by hand, and SmolLM2's digit split.
//!
//! GPT-2 (Radford et al. 2019) never merges across the pieces of this regex:
//!
//! ```text
//! 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//! ```
//!
//! so a word keeps its leading space (`" world"`), numbers and punctuation runs stay apart from letters, and a
//! run of spaces gives all but its last space to a piece of its own (the last one starts the next word). The
//! alternatives are tried in order at each position, like the regex engine does; every character is a letter,
//! a number, whitespace or other, so one of them always matches and the pieces cover the text.
//!
//! SmolLM2 (`tokenizer.ggml.pre = "smollm"`, HF `Sequence[Digits(individual_digits), ByteLevel]`) first
//! isolates every numeric character, then runs the regex on each remaining run separately: `"a 12"` gives
//! `"a"`, `" "`, `"1"`, `"2"` (the space cannot join a digit any more, and `\s+(?!\S)` sees the run's end).

use super::classes::{Gpt2Class, gpt2_class, is_split_digit};

/// How text is split into pieces before merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreTokenizer {
    /// GPT-2's regex (HF `ByteLevel` with `use_regex`; llama.cpp `gpt-2`).
    #[default]
    Gpt2,
    /// Every numeric character alone, then GPT-2's regex on the rest (SmolLM2, StarCoder; llama.cpp `smollm`).
    DigitsThenGpt2,
}

impl PreTokenizer {
    /// Calls `emit` with each piece of `text`, in order; the pieces concatenate to `text`.
    pub fn split<'a>(self, text: &'a str, mut emit: impl FnMut(&'a str)) {
        match self {
            PreTokenizer::Gpt2 => split_gpt2(text, &mut emit),
            PreTokenizer::DigitsThenGpt2 => split_digits_then_gpt2(text, &mut emit),
        }
    }

    /// The pieces of `text` as a vector (see [`PreTokenizer::split`]).
    pub fn pieces(self, text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        self.split(text, |p| out.push(p));
        out
    }
}

/// The character at byte `i` of `s` and its length in bytes (`i` must be a char boundary inside `s`).
#[inline]
fn char_at(s: &str, i: usize) -> (char, usize) {
    let b = s.as_bytes()[i];
    if b < 0x80 {
        return (b as char, 1);
    }
    let c = s[i..].chars().next().expect("i is a char boundary inside s");
    (c, c.len_utf8())
}

/// The end (byte index) of the run of characters of class `class` starting at `i`.
#[inline]
fn run_end(s: &str, mut i: usize, class: Gpt2Class) -> usize {
    let bytes = s.as_bytes();
    while i < bytes.len() {
        let (c, len) = char_at(s, i);
        if gpt2_class(c) != class {
            break;
        }
        i += len;
    }
    i
}

/// Length of a contraction suffix (`s`, `t`, `re`, `ve`, `m`, `ll`, `d`) at the start of `rest`, if any.
#[inline]
fn contraction_len(rest: &[u8]) -> Option<usize> {
    match rest {
        [b's' | b't' | b'm' | b'd', ..] => Some(1),
        [b'r' | b'v', b'e', ..] | [b'l', b'l', ..] => Some(2),
        _ => None,
    }
}

/// GPT-2's regex over `s`; `s`'s end is the end of input for the `(?!\S)` look-ahead.
pub(crate) fn split_gpt2<'a>(s: &'a str, emit: &mut impl FnMut(&'a str)) {
    let bytes = s.as_bytes();
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        let start = i;
        let (c, len) = char_at(s, i);
        // 's|'t|'re|'ve|'m|'ll|'d
        if c == '\''
            && let Some(k) = contraction_len(&bytes[i + 1..])
        {
            i += 1 + k;
            emit(&s[start..i]);
            continue;
        }
        let class = gpt2_class(c);
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: a space joins a following non-space run.
        if c == ' ' && i + 1 < n {
            let (next, next_len) = char_at(s, i + 1);
            let next_class = gpt2_class(next);
            if next_class != Gpt2Class::Space {
                i = run_end(s, i + 1 + next_len, next_class);
                emit(&s[start..i]);
                continue;
            }
        }
        if class != Gpt2Class::Space {
            i = run_end(s, i + len, class);
            emit(&s[start..i]);
            continue;
        }
        // `\s+(?!\S)|\s+`: a whitespace run; when a non-space follows, its last character is left to start the
        // next piece, unless the run is that one character.
        let mut end = i + len;
        let mut last_start = i;
        while end < n {
            let (c, len) = char_at(s, end);
            if gpt2_class(c) != Gpt2Class::Space {
                break;
            }
            last_start = end;
            end += len;
        }
        i = if end < n && last_start > start { last_start } else { end };
        emit(&s[start..i]);
    }
}

/// Every numeric character alone, GPT-2's regex on each run between them.
fn split_digits_then_gpt2<'a>(s: &'a str, emit: &mut impl FnMut(&'a str)) {
    let bytes = s.as_bytes();
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let (c, len) = char_at(s, i);
        if is_split_digit(c) {
            if run_start < i {
                split_gpt2(&s[run_start..i], emit);
            }
            emit(&s[i..i + len]);
            run_start = i + len;
        }
        i += len;
    }
    if run_start < bytes.len() {
        split_gpt2(&s[run_start..], emit);
    }
}
