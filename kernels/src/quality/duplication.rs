//! Code clones by token shingles (the approach of token-based clone detectors such as CCFinder and
//! PMD's CPD, and of pmat's duplicate detection): files are tokenised with `proc-macro2`,
//! identifiers and literals are normalised (a clone may rename variables and change constants),
//! every window of `shingle` tokens is hashed with BLAKE3, and windows with equal hashes in two
//! places are grown into maximal clone pairs.
//!
//! Rules: keywords (`fn`, `if`, `self`, …) and punctuation stay as written, every other identifier
//! becomes `$id`, every literal `$lit`; comments are not tokens and doc attributes (`///`, `//!`,
//! `#[doc …]`) are dropped. A clone pair is two non-overlapping runs of at least `shingle` equal
//! normalised tokens (in two files or in one), extended as far as they stay equal. The
//! duplicated-line percentage is the share of source lines holding at least one token that hold a
//! token of some clone. A token window seen in more than 32 places is paired among its first 32
//! only (boilerplate repeated everywhere would otherwise cost quadratic time).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use serde::{Deserialize, Serialize};

/// A normalised token and its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub line: usize,
}

/// One side of a clone pair: lines `start..=end` of `file`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneSide {
    pub file: String,
    pub start_line: usize,
    pub end_line: usize,
}

/// Two places holding the same normalised token run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClonePair {
    pub a: CloneSide,
    pub b: CloneSide,
    /// Length of the run in tokens.
    pub tokens: usize,
}

/// The clones of a set of files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Duplication {
    pub clones: Vec<ClonePair>,
    pub duplicated_lines: usize,
    pub total_lines: usize,
    /// `100 · duplicated_lines / total_lines` (0 with no lines).
    pub percent: f64,
}

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
    "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "Self",
    "static", "struct", "super", "trait", "true", "type", "union", "unsafe", "use", "where", "while",
];

/// The normalised tokens of `source`, or `None` when it does not lex.
pub fn normalised_tokens(source: &str) -> Option<Vec<Token>> {
    let stream = TokenStream::from_str(source).ok()?;
    let mut out = Vec::new();
    flatten(stream, &mut out);
    Some(out)
}

fn is_doc_attribute(group: &TokenTree) -> bool {
    match group {
        TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket => {
            matches!(g.stream().into_iter().next(), Some(TokenTree::Ident(i)) if i == "doc")
        }
        _ => false,
    }
}

fn flatten(stream: TokenStream, out: &mut Vec<Token>) {
    let trees: Vec<TokenTree> = stream.into_iter().collect();
    let mut i = 0;
    while i < trees.len() {
        // `#[doc …]` and `#![doc …]`.
        if let TokenTree::Punct(p) = &trees[i]
            && p.as_char() == '#'
        {
            let bang = matches!(trees.get(i + 1), Some(TokenTree::Punct(q)) if q.as_char() == '!');
            let at = i + 1 + usize::from(bang);
            if trees.get(at).is_some_and(is_doc_attribute) {
                i = at + 1;
                continue;
            }
        }
        match &trees[i] {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                if !open.is_empty() {
                    out.push(Token { text: open.to_string(), line: g.span_open().start().line });
                }
                flatten(g.stream(), out);
                if !close.is_empty() {
                    out.push(Token { text: close.to_string(), line: g.span_close().start().line });
                }
            }
            TokenTree::Ident(id) => {
                let s = id.to_string();
                let text = if KEYWORDS.contains(&s.as_str()) { s } else { "$id".to_string() };
                out.push(Token { text, line: id.span().start().line });
            }
            TokenTree::Punct(p) => out.push(Token { text: p.as_char().to_string(), line: p.span().start().line }),
            TokenTree::Literal(l) => out.push(Token { text: "$lit".to_string(), line: l.span().start().line }),
        }
        i += 1;
    }
}

/// Most places one window is paired among.
const MAX_PLACES: usize = 32;

/// Finds the clone pairs of `files` (name, normalised tokens) with windows of `shingle` tokens.
pub fn find_clones(files: &[(String, Vec<Token>)], shingle: usize) -> Duplication {
    let shingle = shingle.max(2);
    // Token texts interned, so a window hashes a slice of integers.
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let interned: Vec<Vec<u32>> = files
        .iter()
        .map(|(_, toks)| {
            toks.iter()
                .map(|t| {
                    let next = ids.len() as u32;
                    *ids.entry(t.text.as_str()).or_insert(next)
                })
                .collect()
        })
        .collect();
    let hashes: Vec<Vec<[u8; 32]>> = interned
        .iter()
        .map(|toks| {
            toks.windows(shingle)
                .map(|w| {
                    let bytes: Vec<u8> = w.iter().flat_map(|id| id.to_le_bytes()).collect();
                    *blake3::hash(&bytes).as_bytes()
                })
                .collect()
        })
        .collect();
    let mut places: HashMap<[u8; 32], Vec<(usize, usize)>> = HashMap::new();
    for (f, hs) in hashes.iter().enumerate() {
        for (pos, h) in hs.iter().enumerate() {
            let list = places.entry(*h).or_default();
            if list.len() < MAX_PLACES {
                list.push((f, pos));
            }
        }
    }
    let same = |x: (usize, usize), y: (usize, usize)| hashes[x.0][x.1] == hashes[y.0][y.1];
    // Two runs overlap when they are in one file and the later starts before the earlier ends.
    let apart = |x: (usize, usize), y: (usize, usize), len: usize| x.0 != y.0 || x.1 + len <= y.1;
    let mut clones = Vec::new();
    let mut marked: HashSet<(usize, usize)> = HashSet::new();
    let mut starts: Vec<&Vec<(usize, usize)>> = places.values().filter(|l| l.len() > 1).collect();
    starts.sort();
    for list in starts {
        for (k, &x) in list.iter().enumerate() {
            for &y in &list[k + 1..] {
                if !apart(x, y, shingle) {
                    continue;
                }
                // Not maximal: the pair also matches one token earlier.
                if x.1 > 0 && y.1 > 0 && same((x.0, x.1 - 1), (y.0, y.1 - 1)) {
                    continue;
                }
                let mut extra = 0;
                while x.1 + extra + 1 < hashes[x.0].len()
                    && y.1 + extra + 1 < hashes[y.0].len()
                    && apart(x, y, shingle + extra + 1)
                    && same((x.0, x.1 + extra + 1), (y.0, y.1 + extra + 1))
                {
                    extra += 1;
                }
                let len = shingle + extra;
                let side = |(f, pos): (usize, usize)| {
                    let toks = &files[f].1;
                    CloneSide {
                        file: files[f].0.clone(),
                        start_line: toks[pos].line,
                        end_line: toks[pos + len - 1].line,
                    }
                };
                for (f, pos) in [x, y] {
                    for t in &files[f].1[pos..pos + len] {
                        marked.insert((f, t.line));
                    }
                }
                clones.push(ClonePair { a: side(x), b: side(y), tokens: len });
            }
        }
    }
    clones.sort_by(|p, q| {
        (&p.a.file, p.a.start_line, &p.b.file, p.b.start_line).cmp(&(
            &q.a.file,
            q.a.start_line,
            &q.b.file,
            q.b.start_line,
        ))
    });
    let total: HashSet<(usize, usize)> =
        files.iter().enumerate().flat_map(|(f, (_, toks))| toks.iter().map(move |t| (f, t.line))).collect();
    let total_lines = total.len();
    let duplicated_lines = marked.len();
    let percent = if total_lines == 0 { 0.0 } else { 100.0 * duplicated_lines as f64 / total_lines as f64 };
    Duplication { clones, duplicated_lines, total_lines, percent }
}
