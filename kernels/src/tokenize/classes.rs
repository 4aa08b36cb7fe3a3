//! Character classes of the pre-tokenisers: ASCII by a constant table, the rest by binary search in the ranges of
//! `unicode_tables` (read off HF tokenizers, so the splits agree with the reference code point for code point).

use std::cmp::Ordering;

use super::unicode_tables::{BERT_CLASSES, BYTE_LEVEL_CLASSES, DECOMPOSED, DIGITS};

/// The class of a character in GPT-2's pre-tokenisation regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gpt2Class {
    /// `\p{L}`.
    Letter,
    /// `\p{N}`.
    Number,
    /// `\s`.
    Space,
    /// Anything else (`[^\s\p{L}\p{N}]`).
    Other,
}

const fn ascii_gpt2_classes() -> [Gpt2Class; 128] {
    let mut table = [Gpt2Class::Other; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        table[b] = if c.is_ascii_alphabetic() {
            Gpt2Class::Letter
        } else if c.is_ascii_digit() {
            Gpt2Class::Number
        } else if matches!(c, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ') {
            Gpt2Class::Space
        } else {
            Gpt2Class::Other
        };
        b += 1;
    }
    table
}

const ASCII_GPT2: [Gpt2Class; 128] = ascii_gpt2_classes();

fn find_range<T: Copy>(table: &[(u32, u32, T)], c: u32) -> Option<T> {
    table
        .binary_search_by(|&(lo, hi, _)| {
            if hi < c {
                Ordering::Less
            } else if lo > c {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
        .ok()
        .map(|i| table[i].2)
}

fn in_ranges(table: &[(u32, u32)], c: u32) -> bool {
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                Ordering::Less
            } else if lo > c {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
        .is_ok()
}

/// The GPT-2 regex class of `c`.
#[inline]
pub(crate) fn gpt2_class(c: char) -> Gpt2Class {
    let u = c as u32;
    if u < 128 {
        return ASCII_GPT2[u as usize];
    }
    match find_range(BYTE_LEVEL_CLASSES, u) {
        Some(1) => Gpt2Class::Letter,
        Some(2) => Gpt2Class::Number,
        Some(3) => Gpt2Class::Space,
        _ => Gpt2Class::Other,
    }
}

/// Whether the digit splitter isolates `c` (Rust's `char::is_numeric`, as the reference was built with).
#[inline]
pub(crate) fn is_split_digit(c: char) -> bool {
    let u = c as u32;
    if u < 128 { c.is_ascii_digit() } else { in_ranges(DIGITS, u) }
}

/// The class of a character for BERT's normaliser and pre-tokeniser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BertClass {
    /// Removed by the clean-up step (control, format, private use; also NUL and U+FFFD; the table lists them).
    Control,
    /// Whitespace (mapped to a space by the clean-up, and a word boundary).
    Whitespace,
    /// Punctuation: a token of its own.
    Punctuation,
    /// A non-spacing mark (Mn): dropped when stripping accents.
    NonSpacingMark,
    /// Anything else.
    Other,
}

/// The BERT class of `c`.
#[inline]
pub(crate) fn bert_class(c: char) -> BertClass {
    // The table first: U+0085 is both a control and whitespace, and the clean-up removes it.
    match find_range(BERT_CLASSES, c as u32) {
        Some(1) => BertClass::Control,
        Some(2) => BertClass::Punctuation,
        Some(3) => BertClass::NonSpacingMark,
        _ if c.is_whitespace() => BertClass::Whitespace,
        _ => BertClass::Other,
    }
}

/// Whether `c` is in one of the CJK ideograph blocks BERT puts spaces around.
#[inline]
pub(crate) fn is_cjk_ideograph(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

/// Whether BERT's reference decomposes `c` in NFD (it knows the canonical decompositions up to Unicode 12 only).
#[inline]
pub(crate) fn has_reference_decomposition(c: char) -> bool {
    !c.is_ascii() && in_ranges(DECOMPOSED, c as u32)
}
