//! Hidden tests of week c4w4 (RAG): the chunkers against brute-force references and SmolLM2's
//! byte-level BPE; fusion, MMR and the citation checker against the production `kernels::rag`
//! (and `kernels::fusion`); the metrics against `pytrec_eval` (`fixtures/metrics_cases.json`, made
//! by `fixtures/make_fixtures.py`) and `kernels::rag::eval`; the packer against an independent
//! implementation of its documented rule and hand tables. Unicode-heavy text (CJK, emoji, combining
//! marks), empty and giant documents, and ties in scores throughout.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::sync::OnceLock;

use c4w4_rag as lab;
use lab::chunk::{WindowConfig, recursive_split, token_windows};
use lab::metrics::Judgements;
use lab::pack::{Candidate, PackConfig, PackOrder, pack};
use lab::{ByteTokens, Error, Tokenizer, Words};

const METRIC_CASES: &str = include_str!("fixtures/metrics_cases.json");

/// Texts every chunker test walks: ASCII prose, CJK, emoji (multi-code-point ones too), combining
/// marks, Markdown structure, code, white space runs.
const TEXTS: &[&str] = &[
    "",
    "   \n\n  ",
    "Ownership is Rust's most unique feature. It enables memory safety without a garbage collector!",
    "所有権はRustの最も特徴的な機能です。ガベージコレクタなしでメモリ安全性を保証します。借用も大切！",
    "🦀 Ferris 👩‍🔬 says héllo wörld; e\u{301}te\u{301} na\u{303}o 🇯🇵 flags? Yes. 🎉🎉🎉",
    "# Title\nIntro line.\n\n## Déjà vu\nA para. Another one? Yes!\n\n```rust\nfn main() { println!(\"hi\"); }\n```\n\n# 最後\n終わり。本当に？はい。",
    "a",
    "x\u{301}\u{302}\u{303}\u{304}y",
    "one\n\n\n\ntwo\n\nthree. four.five 1.5 std::io.Read e.g. this",
];

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit().max(1e-7), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

fn floor_b(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_b(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn show<'a>(text: &'a str, spans: &[Range<usize>]) -> Vec<&'a str> {
    spans.iter().map(|s| text.get(s.clone()).unwrap_or("<not a character boundary>")).collect()
}

// ------------------------------------------------------------------ tokenizers

/// SmolLM2's byte-level BPE as a tokenizer: token spans from the byte lengths of
/// `encode_ordinary`'s tokens (they concatenate to the text's bytes and often end inside a
/// character).
struct Smol(kernels::tokenize::Bpe);

impl Tokenizer for Smol {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        let mut at = 0;
        self.0
            .encode_ordinary(text)
            .into_iter()
            .map(|id| {
                let len = self.0.token_bytes(id).expect("a token of the vocabulary").len();
                at += len;
                at - len..at
            })
            .collect()
    }
}

fn smollm2() -> &'static Smol {
    static BPE: OnceLock<Smol> = OnceLock::new();
    BPE.get_or_init(|| {
        let path = datasets::models::file_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
            .unwrap_or_else(|e| panic!("SmolLM2 is missing ({e}): run `cargo xtask models`"));
        let gguf = kernels::formats::Gguf::open(&path).expect("kernels reads SmolLM2");
        Smol(kernels::tokenize::Bpe::from_gguf(&gguf).expect("SmolLM2's tokenizer"))
    })
}

// ------------------------------------------------------------------ token windows

/// The windows by the documented formula: `1 + ceil((n - size) / step)` windows, widened.
fn reference_windows(text: &str, tokens: &[Range<usize>], size: usize, overlap: usize) -> Vec<Range<usize>> {
    let n = tokens.len();
    if n == 0 {
        return Vec::new();
    }
    let step = size - overlap;
    let count = if n <= size { 1 } else { 1 + (n - size).div_ceil(step) };
    let mut out: Vec<Range<usize>> = Vec::new();
    for j in 0..count {
        let first = j * step;
        let last = (first + size).min(n) - 1;
        let span = floor_b(text, tokens[first].start)..ceil_b(text, tokens[last].end);
        if out.last() != Some(&span) {
            out.push(span);
        }
    }
    out
}

fn check_windows(text: &str, tokenizer: &dyn Tokenizer, name: &str, size: usize, overlap: usize) {
    let got = token_windows(text, tokenizer, WindowConfig { size, overlap })
        .unwrap_or_else(|e| panic!("{name}, size {size}, overlap {overlap}: unexpected error {e}"));
    let want = reference_windows(text, &tokenizer.token_spans(text), size, overlap);
    assert_eq!(
        got,
        want,
        "{name} windows of {size} tokens, overlap {overlap}, over {text:?}: got {:?}, expected {:?}",
        show(text, &got),
        show(text, &want)
    );
}

// ------------------------------------------------------------------ recursive split

/// Structural cuts, written independently of the lab's `pieces`.
fn reference_pieces(text: &str, span: Range<usize>, level: usize) -> Vec<Range<usize>> {
    let chars: Vec<(usize, char)> = text[span.clone()].char_indices().map(|(i, c)| (i + span.start, c)).collect();
    let mut cuts: Vec<usize> = Vec::new();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let next = chars.get(k + 1).map(|x| x.1);
        let prev = k.checked_sub(1).map(|p| chars[p].1);
        match level {
            0 if c == '#' && prev == Some('\n') => cuts.push(i),
            1 if c == '\n' && prev == Some('\n') && next != Some('\n') => cuts.push(i + 1),
            2 if "。！？".contains(c) || (".!?".contains(c) && next.is_some_and(char::is_whitespace)) => {
                let mut m = k + 1;
                while m < chars.len() && chars[m].1.is_whitespace() {
                    m += 1;
                }
                cuts.push(chars.get(m).map_or(span.end, |x| x.0));
            }
            _ => {}
        }
    }
    let mut bounds = vec![span.start];
    bounds.extend(cuts.into_iter().filter(|&c| c > span.start && c < span.end));
    bounds.dedup();
    bounds.push(span.end);
    bounds.windows(2).map(|w| w[0]..w[1]).collect()
}

fn reference_split(text: &str, t: &dyn Tokenizer, max: usize) -> Vec<Range<usize>> {
    fn go(text: &str, t: &dyn Tokenizer, max: usize, span: Range<usize>, level: usize) -> Vec<Range<usize>> {
        let count = |s: &Range<usize>| t.count_tokens(&text[s.clone()]);
        if count(&span) <= max {
            return vec![span];
        }
        if level == 3 {
            let sub = &text[span.clone()];
            return reference_windows(sub, &t.token_spans(sub), max, 0)
                .into_iter()
                .map(|w| w.start + span.start..w.end + span.start)
                .collect();
        }
        let parts = reference_pieces(text, span.clone(), level);
        if parts.len() == 1 {
            return go(text, t, max, span, level + 1);
        }
        let children: Vec<Range<usize>> = parts.into_iter().flat_map(|p| go(text, t, max, p, level + 1)).collect();
        let mut merged: Vec<Range<usize>> = Vec::new();
        for c in children {
            match merged.last_mut() {
                Some(last) if count(&(last.start..c.end)) <= max => last.end = c.end,
                _ => merged.push(c),
            }
        }
        merged
    }
    go(text, t, max, 0..text.len(), 0).into_iter().filter(|s| t.count_tokens(&text[s.clone()]) > 0).collect()
}

/// A Rust-documentation-like Markdown page of `sections` sections (headings, paragraphs, code,
/// lists, CJK and emoji).
fn markdown_page(sections: usize) -> String {
    let mut page = String::new();
    for s in 0..sections {
        page.push_str(&format!("# Section {s}: ownership ✨\n"));
        page.push_str("Each value in Rust has an owner. There can only be one owner at a time! ");
        page.push_str("When the owner goes out of scope, the value will be dropped.\n\n");
        page.push_str("所有権のルール。各値は所有者を持つ。所有者は一度に一人だけ！\n\n");
        page.push_str("## Borrowing 🦀\n- a reference is `&T`\n- a mutable one is `&mut T`\n\n");
        page.push_str("```rust\nlet s = String::from(\"héllo\"); // e\u{301}\nlet r = &s;\n```\n\n");
        if s % 2 == 1 {
            page.push_str("A long sentence without any full stop that goes on and on about lifetimes and borrows and moves and copies and clones and drops and traits\n\n");
        }
    }
    page
}

// ------------------------------------------------------------------ packing

/// The packing rule, implemented independently: groups as (doc, span, text, score, ids, cost, first
/// packed position).
fn reference_pack(
    cands: &[Candidate],
    t: &dyn Tokenizer,
    config: &PackConfig,
) -> Vec<(Vec<u32>, Range<usize>, String, f32)> {
    struct G {
        doc: String,
        span: Range<usize>,
        text: String,
        score: f32,
        ids: Vec<u32>,
        cost: usize,
        alive: bool,
    }
    let mut idx: Vec<usize> = (0..cands.len()).collect();
    idx.sort_by(|&a, &b| cands[b].score.partial_cmp(&cands[a].score).unwrap());
    let mut groups: Vec<G> = Vec::new();
    let mut used = 0usize;
    let mut seen = HashSet::new();
    for i in idx {
        let c = &cands[i];
        if !seen.insert(c.id) {
            continue;
        }
        let hit: Vec<usize> = (0..groups.len())
            .filter(|&j| {
                let g = &groups[j];
                config.merge_overlaps
                    && g.alive
                    && g.doc == c.doc
                    && g.span.start <= c.span.end
                    && c.span.start <= g.span.end
            })
            .collect();
        if hit.is_empty() {
            let cost = t.count_tokens(&c.text);
            if used + cost <= config.budget_tokens {
                used += cost;
                groups.push(G {
                    doc: c.doc.clone(),
                    span: c.span.clone(),
                    text: c.text.clone(),
                    score: c.score,
                    ids: vec![c.id],
                    cost,
                    alive: true,
                });
            }
            continue;
        }
        // Union by painting bytes of a buffer indexed from the union's start.
        let start = hit.iter().map(|&j| groups[j].span.start).min().unwrap().min(c.span.start);
        let end = hit.iter().map(|&j| groups[j].span.end).max().unwrap().max(c.span.end);
        let mut bytes = vec![0u8; end - start];
        for (s, txt) in hit.iter().map(|&j| (&groups[j].span, &groups[j].text)).chain([(&c.span, &c.text)]) {
            bytes[s.start - start..s.end - start].copy_from_slice(txt.as_bytes());
        }
        let text = String::from_utf8(bytes).expect("consistent texts");
        let cost = t.count_tokens(&text);
        let freed: usize = hit.iter().map(|&j| groups[j].cost).sum();
        if used - freed + cost > config.budget_tokens {
            continue;
        }
        used = used - freed + cost;
        let ids: Vec<u32> = hit.iter().flat_map(|&j| groups[j].ids.clone()).chain([c.id]).collect();
        for &j in &hit[1..] {
            groups[j].alive = false;
        }
        let g = &mut groups[hit[0]];
        g.span = start..end;
        g.text = text;
        g.cost = cost;
        g.ids = ids;
    }
    let mut live: Vec<G> = groups.into_iter().filter(|g| g.alive).collect();
    live.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap());
    let n = live.len();
    let mut placed: Vec<(usize, G)> = match config.order {
        PackOrder::Score => live.into_iter().enumerate().collect(),
        PackOrder::Source => {
            let mut v: Vec<(usize, G)> = live.into_iter().enumerate().collect();
            v.sort_by(|a, b| (a.1.doc.as_str(), a.1.span.start, a.0).cmp(&(b.1.doc.as_str(), b.1.span.start, b.0)));
            v.into_iter().enumerate().map(|(p, (_, g))| (p, g)).collect()
        }
        PackOrder::LostInTheMiddle => {
            live.into_iter().enumerate().map(|(r, g)| (if r % 2 == 0 { r / 2 } else { n - 1 - r / 2 }, g)).collect()
        }
    };
    placed.sort_by_key(|(p, _)| *p);
    placed.into_iter().map(|(_, g)| (g.ids, g.span, g.text, g.score)).collect()
}

/// Documents with Unicode text, cut into overlapping windows: the candidates of a retrieval.
fn candidates(rng: &mut Rng, docs: &[(&str, String)], n: usize, tied: bool) -> Vec<Candidate> {
    let mut out = Vec::new();
    for id in 0..n as u32 {
        let (doc, text) = &docs[rng.below(docs.len())];
        let windows =
            token_windows(text, &Words, WindowConfig { size: 3 + rng.below(8), overlap: rng.below(3) }).unwrap();
        let w = windows[rng.below(windows.len())].clone();
        let score = if tied { [0.5f32, 0.25, 0.75][rng.below(3)] } else { rng.unit() };
        out.push(Candidate {
            id: id % (n as u32 - 2).max(1),
            doc: doc.to_string(),
            span: w.clone(),
            text: text[w].to_string(),
            score,
        });
    }
    out
}

fn pack_docs() -> Vec<(&'static str, String)> {
    vec![
        ("book/ch04-01.md", markdown_page(2)),
        ("rbe/日本.md", TEXTS[3].repeat(3)),
        ("ref/emoji.md", TEXTS[4].repeat(4)),
        ("cargo/a.md", TEXTS[2].to_string()),
    ]
}

fn check_pack(cands: &[Candidate], t: &dyn Tokenizer, config: &PackConfig, what: &str) {
    let got = pack(cands, t, config).unwrap_or_else(|e| panic!("{what}: unexpected error {e}"));
    let want = reference_pack(cands, t, config);
    let mine: Vec<(Vec<u32>, Range<usize>, String, f32)> =
        got.chunks.iter().map(|c| (c.chunk_ids.clone(), c.span.clone(), c.text.clone(), c.score)).collect();
    assert_eq!(mine, want, "{what} ({config:?}): packed chunks (ids, span, text, score) differ from the rule");
    let numbers: Vec<usize> = got.chunks.iter().map(|c| c.number).collect();
    assert_eq!(numbers, (1..=got.chunks.len()).collect::<Vec<_>>(), "{what}: numbers must be 1..=n in order");
    let tokens: usize = got.chunks.iter().map(|c| t.count_tokens(&c.text)).sum();
    assert_eq!(got.tokens, tokens, "{what}: tokens must be the sum of the packed texts' tokens");
    assert!(
        got.tokens <= config.budget_tokens,
        "{what}: {} tokens exceed the budget {}",
        got.tokens,
        config.budget_tokens
    );
}

// ------------------------------------------------------------------ metrics

fn ranking_of(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(p, s)| (p.to_string(), *s)).collect()
}

/// The lab's value of a `trec_eval` measure name.
fn lab_measure(name: &str, ranking: &[(String, f64)], judged: &Judgements) -> f64 {
    let cut = |p: &str| name.strip_prefix(p).map(|k| k.parse::<usize>().unwrap());
    let value = if name == "recip_rank" {
        lab::metrics::reciprocal_rank(ranking, judged)
    } else if let Some(k) = cut("P_") {
        lab::metrics::precision_at(ranking, judged, k)
    } else if let Some(k) = cut("recall_") {
        lab::metrics::recall_at(ranking, judged, k)
    } else if let Some(k) = cut("ndcg_cut_") {
        lab::metrics::ndcg_at(ranking, judged, k)
    } else {
        panic!("unknown measure {name}")
    };
    value.unwrap_or_else(|e| panic!("{name}: unexpected error {e}"))
}

// ------------------------------------------------------------------ citations

/// Answers built from pieces that stress the sentence and marker rules.
fn generated_answers(rng: &mut Rng, n: usize) -> Vec<String> {
    const PIECES: &[&str] = &[
        "Ownership moves the value",
        " [1]",
        "[2]",
        " [1, 3]",
        "[ 4 ]",
        "[1,,2]",
        "[]",
        "[2a]",
        "[0]",
        " [12]",
        ". ",
        "! ",
        "? ",
        "...",
        ".",
        "\n",
        "\n\n",
        " ",
        "所有権は移動する",
        "。",
        "🦀 borrow checker 👩‍🔬",
        "e\u{301}te\u{301}",
        "1.5",
        "std::io.Read",
        "e.g. this",
        "x.[1]y",
        "[3]",
        ".[2] ",
        "  ",
        "(see [5])",
        "[99999999999999999999999]",
        "Déjà vu",
        "?!",
    ];
    (0..n).map(|_| (0..1 + rng.below(12)).map(|_| PIECES[rng.below(PIECES.len())]).collect::<String>()).collect()
}

graded! {
    // ============================================================== c4w4.token-chunker

    /// Windows equal the formula over Words and byte tokenizers of 1–5 bytes, on Unicode-heavy
    /// texts, for sizes 1–9 and every overlap below the size.
    fn token_windows_match_the_formula_on_unicode_text() {
        for text in TEXTS {
            for size in 1..=9 {
                for overlap in 0..size {
                    check_windows(text, &Words, "Words", size, overlap);
                    for n in 1..=5 {
                        check_windows(text, &ByteTokens(n), &format!("ByteTokens({n})"), size, overlap);
                    }
                }
            }
        }
    }

    /// Over SmolLM2's BPE tokens (which end inside CJK and emoji characters) every window is whole
    /// characters, the windows equal the formula, and together they cover the text.
    fn token_windows_on_smollm2_tokens_keep_characters_whole() {
        let bpe = smollm2();
        for text in TEXTS {
            for (size, overlap) in [(1, 0), (2, 1), (3, 0), (4, 2), (7, 3), (16, 4), (64, 8)] {
                check_windows(text, bpe, "SmolLM2", size, overlap);
                let got = token_windows(text, bpe, WindowConfig { size, overlap }).unwrap();
                for w in &got {
                    assert!(text.is_char_boundary(w.start) && text.is_char_boundary(w.end), "window {w:?} cuts a character of {text:?}");
                }
                let tokens = bpe.token_spans(text);
                if let (Some(first), Some(last)) = (tokens.first(), tokens.last()) {
                    assert_eq!(got.first().map(|w| w.start), Some(floor_b(text, first.start)), "the first window starts at the first token");
                    assert_eq!(got.last().map(|w| w.end), Some(ceil_b(text, last.end)), "the last window ends at the last token");
                    assert!(got.windows(2).all(|p| p[1].start <= p[0].end), "consecutive windows leave a gap over {text:?}: {got:?}");
                }
            }
        }
    }

    /// Empty and blank texts give no window, bad configurations are errors, and a 1 MB document is
    /// cut into the right number of windows.
    fn token_windows_handle_empty_giant_and_bad_configs() {
        assert_eq!(token_windows("", &Words, WindowConfig { size: 3, overlap: 1 }).unwrap(), Vec::<Range<usize>>::new(), "empty text");
        assert_eq!(token_windows(" \n\t ", &Words, WindowConfig { size: 3, overlap: 1 }).unwrap(), Vec::<Range<usize>>::new(), "blank text");
        for (size, overlap) in [(0, 0), (3, 3), (3, 7), (1, 1)] {
            let got = token_windows("some text here", &Words, WindowConfig { size, overlap });
            assert!(matches!(got, Err(Error::InvalidConfig(_))), "size {size}, overlap {overlap} must be InvalidConfig, got {got:?}");
        }
        let giant = "ownership 所有権 🦀 borrow. ".repeat(40_000);
        let tokens = Words.token_spans(&giant).len();
        let got = token_windows(&giant, &Words, WindowConfig { size: 256, overlap: 32 }).unwrap();
        assert_eq!(got.len(), 1 + (tokens - 256).div_ceil(224), "windows over {tokens} tokens");
        assert_eq!(got, reference_windows(&giant, &Words.token_spans(&giant), 256, 32), "windows of the giant document");
        let got = token_windows(&giant, &Words, WindowConfig { size: tokens + 5, overlap: 3 }).unwrap();
        assert_eq!(got, [0..giant.len() - 1], "one window when the size exceeds the tokens (trailing space excluded)");
    }

    // ============================================================== c4w4.recursive-split

    /// The splitter equals the documented recursion (written independently here) on Markdown
    /// pages, CJK and emoji text, for many budgets and two tokenizers.
    fn recursive_split_matches_the_reference_on_documents() {
        let mut docs: Vec<String> = TEXTS.iter().map(|t| t.to_string()).collect();
        docs.push(markdown_page(3));
        docs.push(TEXTS[3].repeat(6));
        for text in &docs {
            for max in [1, 2, 3, 5, 8, 13, 21, 40, 400] {
                for (name, t) in [("Words", &Words as &dyn Tokenizer), ("ByteTokens(3)", &ByteTokens(3))] {
                    let got = recursive_split(text, t, max).unwrap_or_else(|e| panic!("{name}, max {max}: {e}"));
                    let want = reference_split(text, t, max);
                    assert_eq!(got, want, "{name}, max_tokens {max}, over {text:?}:\n got {:?}\nwant {:?}", show(text, &got), show(text, &want));
                }
            }
        }
    }

    /// With Words, chunks fit the budget, are in order without overlap, keep every token, and end
    /// on character boundaries; over SmolLM2 tokens they keep characters whole too.
    fn recursive_split_chunks_fit_cover_and_keep_characters() {
        let page = markdown_page(4);
        for max in [4, 9, 17, 33, 70] {
            let got = recursive_split(&page, &Words, max).unwrap();
            for c in &got {
                let n = Words.count_tokens(&page[c.clone()]);
                assert!(n >= 1 && n <= max, "chunk {c:?} has {n} tokens, max {max}: {:?}", &page[c.clone()]);
            }
            assert!(got.windows(2).all(|p| p[0].end <= p[1].start), "chunks overlap or are out of order (max {max})");
            for tok in Words.token_spans(&page) {
                assert!(got.iter().any(|c| c.start <= tok.start && tok.end <= c.end), "token {:?} at {tok:?} is in no chunk (max {max})", &page[tok.clone()]);
            }
            let bpe = smollm2();
            let got = recursive_split(&page, bpe, max).unwrap();
            assert!(got.iter().all(|c| page.is_char_boundary(c.start) && page.is_char_boundary(c.end)), "a SmolLM2 chunk cuts a character (max {max})");
            assert_eq!(got, reference_split(&page, bpe, max), "SmolLM2 tokens, max {max}");
        }
    }

    /// Empty text, a zero budget, a 20,000-word sentence with no boundary (token windows) and a giant
    /// page of 300 sections.
    fn recursive_split_handles_empty_unbroken_and_giant_text() {
        assert_eq!(recursive_split("", &Words, 10).unwrap(), Vec::<Range<usize>>::new(), "empty text");
        assert_eq!(recursive_split("\n\n\n", &Words, 10).unwrap(), Vec::<Range<usize>>::new(), "a text with no token");
        let got = recursive_split("some text", &Words, 0);
        assert!(matches!(got, Err(Error::InvalidConfig(_))), "max_tokens 0 must be InvalidConfig, got {got:?}");
        let words: Vec<String> = (0..20_000).map(|i| format!("w{i}")).collect();
        let unbroken = words.join(" ");
        let got = recursive_split(&unbroken, &Words, 500).unwrap();
        assert_eq!(got.len(), 40, "20,000 words in windows of 500");
        assert_eq!(&unbroken[got[1].clone()].split(' ').next(), &Some("w500"), "the second window starts at word 500");
        let giant = markdown_page(300);
        let got = recursive_split(&giant, &Words, 120).unwrap();
        assert_eq!(got, reference_split(&giant, &Words, 120), "the 300-section page");
    }

    // ============================================================== c4w4.fusion

    /// RRF equals kernels::fusion on random rankings with repeats, for several k.
    fn rrf_matches_kernels_on_random_rankings() {
        let mut rng = Rng(11);
        for case in 0..200 {
            let lists: Vec<Vec<u32>> = (0..1 + rng.below(4)).map(|_| (0..rng.below(30)).map(|_| rng.below(40) as u32).collect()).collect();
            let refs: Vec<&[u32]> = lists.iter().map(Vec::as_slice).collect();
            let k = [0.0f32, 1.0, 60.0, 10.5][case % 4];
            let got = lab::fusion::reciprocal_rank_fusion(&refs, k);
            let want = kernels::fusion::reciprocal_rank_fusion(&refs, k);
            assert_eq!(got, want, "RRF (k = {k}) of {lists:?}");
        }
    }

    /// Weighted fusion equals kernels::rag::retrieve::fuse_weighted (scores within 1e-6, same
    /// order) on random lists with BM25- and cosine-scaled scores, and every dense weight.
    fn weighted_fusion_matches_kernels_on_random_lists() {
        let mut rng = Rng(12);
        for case in 0..300 {
            let dense: Vec<(u32, f32)> = (0..rng.below(25)).map(|_| (rng.below(50) as u32, rng.unit() * 2.0 - 1.0)).collect();
            let sparse: Vec<(u32, f32)> = (0..rng.below(25)).map(|_| (rng.below(50) as u32, rng.unit() * 30.0)).collect();
            let w = [0.0f32, 0.3, 0.5, 0.7, 1.0][case % 5];
            let normalised = lab::fusion::min_max_normalise(&sparse);
            let kn = kernels::rag::retrieve::min_max_normalise(&sparse);
            assert_eq!(normalised, kn, "min-max normalisation of {sparse:?}");
            let got = lab::fusion::weighted_fusion(&dense, &sparse, w);
            let want = kernels::rag::retrieve::fuse_weighted(&dense, &sparse, w);
            assert_eq!(got.len(), want.len(), "weighted fusion (w = {w}) must return every document once");
            for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
                assert!(gi == wi && (gs - ws).abs() <= 1e-6, "weighted fusion (w = {w}) of dense {dense:?} and sparse {sparse:?}:\n got {got:?}\nwant {want:?}");
            }
        }
    }

    /// Ties go to the smaller id; empty, single and constant lists; repeats count once.
    fn fusion_breaks_ties_by_id_and_handles_degenerate_lists() {
        let check = |got: Vec<(u32, f32)>, want: &[(u32, f32)], what: &str| assert_eq!(got, want, "{what}");
        check(lab::fusion::reciprocal_rank_fusion(&[&[5, 2], &[2, 5]], 60.0), &[(2, 1.0 / 61.0 + 1.0 / 62.0), (5, 1.0 / 61.0 + 1.0 / 62.0)], "RRF tie: ids 2 then 5");
        check(lab::fusion::reciprocal_rank_fusion(&[], 60.0), &[], "RRF of no ranking");
        check(lab::fusion::reciprocal_rank_fusion(&[&[], &[]], 60.0), &[], "RRF of empty rankings");
        check(lab::fusion::reciprocal_rank_fusion(&[&[4, 4, 4]], 0.0), &[(4, 1.0)], "RRF counts a repeat once, at its first rank");
        check(lab::fusion::min_max_normalise(&[]), &[], "normalising nothing");
        check(lab::fusion::min_max_normalise(&[(3, 7.5)]), &[(3, 1.0)], "one score normalises to 1");
        check(lab::fusion::min_max_normalise(&[(3, 2.0), (1, 2.0)]), &[(3, 1.0), (1, 1.0)], "equal scores normalise to 1, order kept");
        check(lab::fusion::min_max_normalise(&[(1, -1.0), (2, 3.0), (3, 1.0)]), &[(1, 0.0), (2, 1.0), (3, 0.5)], "min-max");
        check(lab::fusion::weighted_fusion(&[(9, 0.5), (1, 0.1)], &[(1, 4.0), (9, 2.0)], 0.5), &[(1, 0.5), (9, 0.5)], "weighted tie: id 1 first");
        check(lab::fusion::weighted_fusion(&[], &[], 0.5), &[], "weighted fusion of nothing");
        check(lab::fusion::weighted_fusion(&[(2, 1.0), (2, 3.0), (3, 2.0)], &[], 1.0), &[(3, 0.5), (2, 0.0)], "a repeat counts at its first entry (its score still shapes min and max)");
        check(lab::fusion::weighted_fusion(&[], &[(8, 3.0)], 0.25), &[(8, 0.75)], "only sparse");
    }

    // ============================================================== c4w4.mmr

    /// MMR equals kernels::rag::retrieve::mmr_select (same picks, values within 1e-5) on random
    /// unit vectors, with near-duplicates, for several lambda and k.
    fn mmr_matches_kernels_on_random_unit_vectors() {
        let mut rng = Rng(13);
        let unit = |v: Vec<f32>| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        for case in 0..120 {
            let dim = [8, 32, 384][case % 3];
            let q = unit((0..dim).map(|_| rng.normal()).collect());
            let mut vs: Vec<Vec<f32>> = Vec::new();
            for _ in 0..5 + rng.below(40) {
                let v: Vec<f32> = if !vs.is_empty() && rng.below(4) == 0 {
                    let base = vs[rng.below(vs.len())].clone();
                    base.iter().map(|x| x + 0.05 * rng.normal() / (dim as f32).sqrt()).collect()
                } else {
                    q.iter().map(|x| x * 0.5 + rng.normal() / (dim as f32).sqrt()).collect()
                };
                vs.push(unit(v));
            }
            let cands: Vec<(u32, &[f32])> = vs.iter().enumerate().map(|(i, v)| ((i * 7 % 101) as u32, v.as_slice())).collect();
            let lambda = [0.0f32, 0.3, 0.5, 0.7, 1.0][case % 5];
            let k = [1, 5, 10, 100][case % 4];
            let got = lab::mmr::mmr_select(&q, &cands, k, lambda);
            let want = kernels::rag::retrieve::mmr_select(&q, &cands, k, lambda);
            let ids = |l: &[(u32, f32)]| l.iter().map(|x| x.0).collect::<Vec<_>>();
            assert_eq!(ids(&got), ids(&want), "MMR picks (lambda {lambda}, k {k}, dim {dim}, case {case})");
            for (g, w) in got.iter().zip(&want) {
                assert!((g.1 - w.1).abs() <= 1e-5, "MMR value of {}: got {}, kernels {}", g.0, g.1, w.1);
            }
            assert!(got.windows(3).all(|p| p[2].1 <= p[1].1 + 1e-6), "from the second pick on, MMR values must not increase: {got:?}");
        }
    }

    /// Identical vectors tie (smaller id first), lambda 0 and 1, k = 0 and k beyond the candidates.
    fn mmr_handles_ties_duplicates_and_k_edges() {
        let q = [1.0f32, 0.0, 0.0];
        let a = [0.8f32, 0.6, 0.0];
        let b = [0.0f32, 0.0, 1.0];
        let c = [0.6f32, 0.8, 0.0];
        let cands: Vec<(u32, &[f32])> = vec![(9, &a), (4, &a), (6, &b), (2, &c)];
        let ids = |l: Vec<(u32, f32)>| l.into_iter().map(|x| x.0).collect::<Vec<_>>();
        assert_eq!(ids(lab::mmr::mmr_select(&q, &cands, 4, 1.0)), [4, 9, 2, 6], "lambda 1: relevance, the twins tie → 4 before 9");
        assert_eq!(ids(lab::mmr::mmr_select(&q, &cands, 2, 0.5)), [4, 6], "lambda 0.5: the twin of 4 is redundant, 6 is new");
        let got = lab::mmr::mmr_select(&q, &cands, 4, 0.0);
        assert_eq!(ids(got.clone()), [2, 6, 4, 9], "lambda 0: first pick by id among all-zero values, then the least redundant");
        assert!(lab::mmr::mmr_select(&q, &cands, 0, 0.5).is_empty(), "k = 0");
        assert_eq!(lab::mmr::mmr_select(&q, &cands, 50, 0.7).len(), 4, "k beyond the candidates returns them all");
        assert!(lab::mmr::mmr_select(&q, &[], 5, 0.7).is_empty(), "no candidates");
        let want = kernels::rag::retrieve::mmr_select(&q, &cands, 4, 0.0);
        assert_eq!(got, want, "lambda 0 equals kernels");
    }

    // ============================================================== c4w4.pack

    /// The packer equals the documented rule (implemented independently here) on random candidates
    /// from Unicode documents: overlapping windows, repeated ids, every order, merging on and off,
    /// many budgets, SmolLM2 and Words tokens.
    fn pack_matches_the_rule_on_random_candidates() {
        let docs = pack_docs();
        let mut rng = Rng(14);
        for case in 0..150 {
            let n = 2 + rng.below(24);
            let cands = candidates(&mut rng, &docs, n, case % 3 == 0);
            for order in [PackOrder::Score, PackOrder::Source, PackOrder::LostInTheMiddle] {
                for merge_overlaps in [true, false] {
                    let config = PackConfig { budget_tokens: [0, 5, 20, 60, 200, 5000][case % 6], order, merge_overlaps };
                    check_pack(&cands, &Words, &config, &format!("case {case}, Words"));
                    if case % 10 == 0 {
                        check_pack(&cands, smollm2(), &config, &format!("case {case}, SmolLM2"));
                    }
                }
            }
        }
    }

    /// Overlapping windows of one document merge into the document's text over the union span (a
    /// window bridging two groups merges all three), and never across documents.
    fn pack_merges_overlapping_windows_of_one_document() {
        let text = "所有権 🦀 moves. Borrows 👩‍🔬 lend. Lifetimes end. Traits bound.";
        let ws = token_windows(text, &Words, WindowConfig { size: 4, overlap: 1 }).unwrap();
        assert!(ws.len() >= 4, "setup: {ws:?}");
        let cand = |id: u32, doc: &str, w: &Range<usize>, score: f32| Candidate { id, doc: doc.into(), span: w.clone(), text: text[w.clone()].into(), score };
        // Windows 0 and 2 first (they do not touch), then window 1 bridges them; window 0 of another doc stays apart.
        let cands = [cand(10, "a", &ws[0], 0.9), cand(12, "a", &ws[2], 0.8), cand(11, "a", &ws[1], 0.7), cand(20, "b", &ws[0], 0.6)];
        let config = PackConfig { budget_tokens: 1000, order: PackOrder::Score, merge_overlaps: true };
        let got = pack(&cands, &Words, &config).unwrap();
        assert_eq!(got.chunks.len(), 2, "a's windows merge into one source, b stays apart: {got:?}");
        let a = &got.chunks[0];
        assert_eq!((a.span.clone(), a.text.as_str()), (ws[0].start..ws[2].end, &text[ws[0].start..ws[2].end]), "the merged text is the document's text over the union");
        assert_eq!(a.chunk_ids, [10, 12, 11], "ids in packing order, then the bridging one");
        assert_eq!(a.score, 0.9, "the merged source keeps its best score");
        assert_eq!(got.chunks[1].chunk_ids, [20]);
        assert_eq!(got.tokens, Words.count_tokens(&a.text) + Words.count_tokens(&text[ws[0].clone()]), "tokens of the merged text, counted once");
        // Touching (end == start) merges too; a merge that would exceed the budget is skipped.
        let touching = [cand(1, "a", &(0..ws[0].end), 0.9), cand(2, "a", &(ws[0].end..text.len()), 0.8)];
        let got = pack(&touching, &Words, &config).unwrap();
        assert_eq!(got.chunks.len(), 1, "spans that touch merge");
        assert_eq!(got.chunks[0].text, text, "the whole text");
        let small = PackConfig { budget_tokens: Words.count_tokens(&text[ws[0].clone()]) + 1, ..config };
        let got = pack(&cands, &Words, &small).unwrap();
        assert_eq!(got.chunks.iter().map(|c| c.chunk_ids.clone()).collect::<Vec<_>>(), [vec![10]], "merges that overflow are skipped, b does not fit either");
    }

    /// NaN scores and spans that are not their text's length are errors; an empty input, a zero
    /// budget, a giant chunk larger than the budget, repeated ids and tied scores follow the rule.
    fn pack_rejects_bad_input_and_handles_edges() {
        let cand = |id: u32, doc: &str, text: &str, score: f32| Candidate { id, doc: doc.into(), span: 0..text.len(), text: text.into(), score };
        let config = PackConfig { budget_tokens: 10, order: PackOrder::Score, merge_overlaps: false };
        let got = pack(&[cand(1, "a", "x", f32::NAN)], &Words, &config);
        assert!(matches!(got, Err(Error::InvalidInput(_))), "a NaN score must be InvalidInput, got {got:?}");
        let mut bad = cand(1, "a", "héllo", 0.5);
        bad.span = 0..5;
        let got = pack(&[bad], &Words, &config);
        assert!(matches!(got, Err(Error::InvalidInput(_))), "a span shorter than its text must be InvalidInput, got {got:?}");
        assert_eq!(pack(&[], &Words, &config).unwrap(), lab::pack::Packed::default(), "nothing to pack");
        let giant = "word ".repeat(100_000);
        let cands = [cand(1, "g", &giant, 0.99), cand(2, "a", "one two", 0.5), cand(3, "b", "", 0.1), cand(2, "c", "three", 0.4)];
        let got = pack(&cands, &Words, &config).unwrap();
        let ids: Vec<u32> = got.chunks.iter().map(|c| c.chunk_ids[0]).collect();
        assert_eq!(ids, [2, 3], "the giant chunk is skipped, the repeated id 2 counts once, an empty chunk costs nothing");
        let zero = PackConfig { budget_tokens: 0, ..config };
        assert_eq!(pack(&cands, &Words, &zero).unwrap().chunks.len(), 1, "a zero budget packs only the empty chunk");
        let tied = [cand(5, "a", "a", 0.5), cand(3, "b", "b", 0.5), cand(4, "c", "c", 0.5), cand(1, "d", "d", 0.5)];
        for (order, want) in [(PackOrder::Score, [5, 3, 4]), (PackOrder::LostInTheMiddle, [5, 4, 3]), (PackOrder::Source, [5, 3, 4])] {
            let got = pack(&tied, &Words, &PackConfig { budget_tokens: 3, order, merge_overlaps: true }).unwrap();
            let ids: Vec<u32> = got.chunks.iter().map(|c| c.chunk_ids[0]).collect();
            assert_eq!(ids, want, "tied scores keep the input order ({order:?}, budget 3)");
        }
    }

    // ============================================================== c4w4.metrics

    /// P@k, recall@k, MRR and nDCG@k equal pytrec_eval (trec_eval 9's C code) to 1e-9 on 60 topics
    /// full of ties, unjudged passages, non-ASCII ids and -0.0.
    fn metrics_equal_pytrec_eval_fixtures() {
        let cases: serde_json::Value = serde_json::from_str(METRIC_CASES).expect("the fixture parses");
        let cases = cases["cases"].as_array().expect("cases");
        assert!(cases.len() >= 50);
        for case in cases {
            let topic = case["topic"].as_str().unwrap();
            let judged: Judgements = case["judgements"].as_object().unwrap().iter().map(|(p, g)| (p.clone(), g.as_i64().unwrap() as i32)).collect();
            let ranking: Vec<(String, f64)> = case["ranking"].as_array().unwrap().iter().map(|x| (x[0].as_str().unwrap().to_string(), x[1].as_f64().unwrap())).collect();
            for (name, want) in case["values"].as_object().unwrap() {
                let want = want.as_f64().unwrap();
                let got = lab_measure(name, &ranking, &judged);
                assert!((got - want).abs() <= 1e-9, "topic {topic}, {name}: got {got}, pytrec_eval {want}\nranking {ranking:?}\njudgements {judged:?}");
            }
        }
    }

    /// The measures equal kernels::rag::eval::evaluate_topic on seeded random runs with graded
    /// judgements, for cutoffs 1–30.
    fn metrics_equal_kernels_on_random_runs() {
        use kernels::rag::eval::{Measure, evaluate_topic};
        let mut rng = Rng(15);
        for _ in 0..300 {
            let pool: Vec<String> = (0..5 + rng.below(40)).map(|i| format!("doc{}#sec-{}", i % 7, i)).collect();
            let mut judged = Judgements::new();
            let mut ranking: Vec<(String, f64)> = Vec::new();
            for p in &pool {
                if rng.below(3) > 0 {
                    judged.insert(p.clone(), rng.below(4) as i32 - 1);
                }
                if rng.below(4) > 0 {
                    ranking.push((p.clone(), (rng.below(8) as f64) / 4.0));
                }
            }
            let k = 1 + rng.below(30);
            let measures = [Measure::P(k), Measure::Recall(k), Measure::RecipRank, Measure::NdcgCut(k)];
            let kb: BTreeMap<String, i32> = judged.clone();
            let want = evaluate_topic(&ranking, &kb, &measures).expect("kernels evaluates");
            for (name, w) in want {
                let got = lab_measure(&name, &ranking, &judged);
                assert!((got - w).abs() <= 1e-12, "{name}: got {got}, kernels {w}\nranking {ranking:?}\njudgements {judged:?}");
            }
        }
    }

    /// Input order does not matter (only scores, then passage id descending); edge cases and errors.
    fn metrics_follow_trec_eval_ties_and_edge_cases() {
        let judged: Judgements = BTreeMap::from([("b".into(), 2), ("a".into(), 1), ("z".into(), -1), ("y".into(), 0)]);
        // All tied: trec_eval orders z, y, b, a (id descending); b is the first relevant, at rank 3.
        let tied = ranking_of(&[("a", 1.0), ("b", 1.0), ("y", 1.0), ("z", 1.0)]);
        let mut shuffled = tied.clone();
        shuffled.reverse();
        for r in [&tied, &shuffled] {
            assert!((lab::metrics::reciprocal_rank(r, &judged).unwrap() - 1.0 / 3.0).abs() < 1e-12, "ties go by passage id descending: RR 1/3");
            assert_eq!(lab::metrics::precision_at(r, &judged, 2).unwrap(), 0.0, "P@2: z (unjudged, -1) and y (0) are not relevant");
        }
        let order = lab::metrics::trec_order(&ranking_of(&[("a", 0.0), ("b", -0.0), ("c", 2.0)])).unwrap();
        assert_eq!(order.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), ["c", "b", "a"], "-0.0 equals 0.0: b before a by id");
        let empty: Vec<(String, f64)> = Vec::new();
        assert_eq!(lab::metrics::ndcg_at(&empty, &judged, 10).unwrap(), 0.0, "an empty ranking scores 0");
        assert_eq!(lab::metrics::precision_at(&empty, &judged, 10).unwrap(), 0.0);
        let none: Judgements = BTreeMap::from([("a".into(), 0)]);
        assert_eq!(lab::metrics::recall_at(&tied, &none, 10).unwrap(), 0.0, "recall with nothing relevant is 0");
        assert_eq!(lab::metrics::ndcg_at(&tied, &none, 10).unwrap(), 0.0, "nDCG with nothing relevant is 0");
        assert_eq!(lab::metrics::precision_at(&ranking_of(&[("b", 1.0)]), &judged, 10).unwrap(), 0.1, "P@10 divides by 10 even for 1 passage");
        for got in [lab::metrics::precision_at(&tied, &judged, 0), lab::metrics::recall_at(&tied, &judged, 0), lab::metrics::ndcg_at(&tied, &judged, 0)] {
            assert!(matches!(got, Err(Error::InvalidConfig(_))), "a cutoff of 0 must be InvalidConfig, got {got:?}");
        }
        let nan = ranking_of(&[("a", f64::NAN)]);
        assert!(matches!(lab::metrics::reciprocal_rank(&nan, &judged), Err(Error::InvalidInput(_))), "a NaN score is InvalidInput");
        let twice = ranking_of(&[("a", 1.0), ("a", 0.5)]);
        assert!(matches!(lab::metrics::ndcg_at(&twice, &judged, 5), Err(Error::InvalidInput(_))), "a passage ranked twice is InvalidInput");
    }

    // ============================================================== c4w4.citations

    /// The checker and the sentence splitter equal kernels::rag::answer on 3,000 generated answers
    /// (markers in every form, decimals, dotted paths, CJK, emoji, combining marks, line breaks).
    fn citations_equal_kernels_on_generated_answers() {
        let mut rng = Rng(16);
        for answer in generated_answers(&mut rng, 3000) {
            for n in [0, 1, 3, 5] {
                let got = lab::cite::check_citations(&answer, n);
                let want = kernels::rag::answer::check_citations(&answer, n);
                assert_eq!(
                    (&got.cited, &got.out_of_range, &got.uncited_sentences),
                    (&want.cited, &want.out_of_range, &want.uncited_sentences),
                    "check_citations({answer:?}, {n})"
                );
            }
            assert_eq!(lab::cite::sentences(&answer), kernels::rag::answer::sentences(&answer), "sentences of {answer:?}");
            assert_eq!(lab::cite::citation_markers(&answer), kernels::rag::answer::citation_markers(&answer), "markers of {answer:?}");
        }
    }

    /// A hand table of answers: (text, packed sources, cited, out of range, uncited sentences).
    fn citations_follow_a_hand_table() {
        let check = |text: &str, n: usize, cited: &[usize], out: &[usize], uncited: &[&str]| {
            let got = lab::cite::check_citations(text, n);
            assert_eq!((got.cited.as_slice(), got.out_of_range.as_slice()), (cited, out), "citations of {text:?} over {n} sources");
            assert_eq!(got.uncited_sentences, uncited, "uncited sentences of {text:?}");
        };
        check("", 3, &[], &[], &[]);
        check("Values move [1]. Copies do not [1].", 2, &[1], &[], &[]);
        check("Values move. [2] Borrows lend.[3]", 2, &[2], &[3], &[]);
        check("所有権は移動する [1]。借用は貸す。", 1, &[1], &[], &[]);
        check("Use 1.5 or std::io.Read [2].\nNo source here", 2, &[2], &[], &["No source here"]);
        check("[0] zero is never a source. [1,2] [ 3 ]", 2, &[1, 2], &[0, 3], &[]);
        check("Broken [1,,2] and [] and [2a] markers.", 9, &[], &[], &["Broken [1,,2] and [] and [2a] markers."]);
        check("🦀 Ferris says hi! [4, 4] Again [4]?", 5, &[4], &[], &[]);
        check("e\u{301}te\u{301} is summer [1]... ok", 1, &[1], &[], &["ok"]);
        check("x.[1]y is one sentence", 1, &[1], &[], &[]);
        check("Index with `v[0]` [1].", 1, &[1], &[], &[]);
        check("Index with `v[0]`.", 1, &[], &[], &["Index with `v[0]`."]);
        check("An unclosed ` opens no code [3].", 3, &[3], &[], &[]);
    }
}
