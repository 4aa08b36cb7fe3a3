//! Checking an answer's citations: every `[n]` must point at a packed source, and every sentence
//! should cite one.
//!
//! A RAG answer is only as trustworthy as its citations. The prompt numbers the packed chunks
//! `[1]`, `[2]`, …; the model is told to cite them. A small model invents `[7]` when five sources
//! were packed, or writes a sentence with no source at all (often the one it made up). The checker
//! catches both before the answer is shown, and the production pipeline (`kernels::rag::answer`)
//! can go further and constrain decoding so that only `[1]`…`[n]` can be generated.

/// What the citation check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CitationCheck {
    /// Distinct cited numbers in `1..=n`, in order of first appearance.
    pub cited: Vec<usize>,
    /// Distinct cited numbers outside `1..=n` (0 included), in order of first appearance.
    pub out_of_range: Vec<usize>,
    /// The sentences ([`sentences`]) without any citation marker, as [`sentences`] returns them.
    pub uncited_sentences: Vec<String>,
}

impl CitationCheck {
    /// Something is cited, every citation is in range and every sentence cites. Given.
    pub fn is_valid(&self) -> bool {
        !self.cited.is_empty() && self.out_of_range.is_empty() && self.uncited_sentences.is_empty()
    }
}

/// The citation marker starting at byte `at` of `text`, if there is one: `[`, then one or more
/// numbers of ASCII digits separated by commas, then `]`; spaces may stand around the numbers
/// (`[1]`, `[2, 3]`, `[ 4 ]`). An empty number (`[1,,2]`, `[]`, `[ ]`), any other character, or a
/// number too large for `usize` means there is no marker. Returns the numbers and the marker's
/// length in bytes. Given.
///
/// ```
/// use c4w4_rag::cite::marker_at;
/// assert_eq!(marker_at("see [2, 3].", 4), Some((vec![2, 3], 6)));
/// assert_eq!(marker_at("see [2a].", 4), None);
/// ```
pub fn marker_at(text: &str, at: usize) -> Option<(Vec<usize>, usize)> {
    let inner = text.get(at..)?.strip_prefix('[')?;
    let close = inner.find(']')?;
    let body = &inner[..close];
    if !body.bytes().all(|c| c.is_ascii_digit() || c == b',' || c == b' ') {
        return None;
    }
    let numbers = body.split(',').map(|p| p.trim().parse::<usize>().ok()).collect::<Option<Vec<usize>>>()?;
    Some((numbers, close + 2))
}

// ANCHOR: sentences
/// Task c4w4.citations (10 points, with [`citation_markers`] and [`check_citations`]): the
/// sentences of an answer.
///
/// Scan the bytes. A sentence ends
/// - after a line break `\n` (the break belongs to the sentence), or
/// - after a run of `.`, `!`, `?` that is followed, once any citation markers ([`marker_at`],
///   each optionally preceded by spaces) are skipped, by ASCII white space or the end of the text:
///   the sentence ends after the last marker skipped (or the run). So `It is safe. [1] Next.`
///   gives `It is safe. [1]` and `Next.`, and `1.5`, `std::io.Read` and `x.[1]y` end nothing.
///
/// After the last end the rest of the text is one more piece. Each piece is trimmed
/// ([`str::trim`]); pieces without an alphanumeric character ([`char::is_alphanumeric`]) are
/// dropped.
pub fn sentences(text: &str) -> Vec<&str> {
    // BEGIN SOLUTION c4w4.citations
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\n' => Some(i + 1),
            b'.' | b'!' | b'?' => {
                let mut k = i + bytes[i..].iter().take_while(|b| matches!(b, b'.' | b'!' | b'?')).count();
                loop {
                    let m = k + bytes[k..].iter().take_while(|&&b| b == b' ').count();
                    match marker_at(text, m) {
                        Some((_, len)) => k = m + len,
                        None => break,
                    }
                }
                (k == bytes.len() || bytes[k].is_ascii_whitespace()).then_some(k)
            }
            _ => None,
        };
        match end {
            Some(e) => {
                keep_sentence(&mut out, &text[start..e]);
                start = e;
                i = e;
            }
            None => i += 1,
        }
    }
    keep_sentence(&mut out, &text[start..]);
    out
    // END SOLUTION
}
// ANCHOR_END: sentences

// BEGIN SOLUTION c4w4.citations delete
fn keep_sentence<'a>(out: &mut Vec<&'a str>, piece: &'a str) {
    let piece = piece.trim();
    if piece.chars().any(char::is_alphanumeric) {
        out.push(piece);
    }
}
// END SOLUTION

/// Task c4w4.citations: every citation marker of `text` in order (the numbers of each).
///
/// Scan for the next `[` or backtick. A backtick opens inline code: continue after the next
/// backtick (brackets in code, `` `v[0]` ``, are indexing, not citations); an unclosed backtick
/// opens nothing, so continue one byte after it. At a `[`, where [`marker_at`] finds a marker,
/// record it and continue after it; otherwise continue one byte further.
pub fn citation_markers(text: &str) -> Vec<Vec<usize>> {
    // BEGIN SOLUTION c4w4.citations
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = text.get(i..).and_then(|r| r.find(['[', '`'])) {
        let at = i + off;
        if text.as_bytes()[at] == b'`' {
            i = text[at + 1..].find('`').map_or(at + 1, |close| at + 1 + close + 1);
            continue;
        }
        match marker_at(text, at) {
            Some((numbers, len)) => {
                out.push(numbers);
                i = at + len;
            }
            None => i = at + 1,
        }
    }
    out
    // END SOLUTION
}

// ANCHOR: check
/// Task c4w4.citations: checks `answer` against `n_packed` numbered sources. Every number of every
/// marker ([`citation_markers`]) goes to `cited` when it is in `1..=n_packed`, else to
/// `out_of_range` (each number once per list, in order of first appearance); every sentence
/// ([`sentences`]) with no marker goes to `uncited_sentences`.
pub fn check_citations(answer: &str, n_packed: usize) -> CitationCheck {
    // BEGIN SOLUTION c4w4.citations
    let mut check = CitationCheck::default();
    for n in citation_markers(answer).into_iter().flatten() {
        let list = if (1..=n_packed).contains(&n) { &mut check.cited } else { &mut check.out_of_range };
        if !list.contains(&n) {
            list.push(n);
        }
    }
    for s in sentences(answer) {
        if citation_markers(s).is_empty() {
            check.uncited_sentences.push(s.to_owned());
        }
    }
    check
    // END SOLUTION
}
// ANCHOR_END: check
