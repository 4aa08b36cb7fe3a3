//! kernels::rag: the chunkers.
//!
//! Token spans against HF `tokenizers` (MiniLM's WordPiece offsets, from the venv) and against the
//! tokens' own bytes (SmolLM2's BPE); the sentence splitter on a table of tricky cases; every
//! chunker's invariants (text = span, char boundaries, budgets checked by brute-force counting,
//! coverage of all non-whitespace text) on Unicode-heavy, empty, giant and code-only documents and
//! on pages of the Cargo book; the semantic chunker on the real MiniLM splitting two topics.

use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use kernels::Error;
use kernels::formats::Gguf;
use kernels::nn::bert::BertModel;
use kernels::rag::chunk::{self, ChunkerConfig, TokenSpans};
use kernels::rag::{Document, Section, load};
use kernels::tokenize::Bpe;
use serde_json::{Value, json};

fn minilm_dir() -> PathBuf {
    let path = datasets::models::file_path("all-minilm-l6-v2", "model.safetensors").unwrap_or_else(|e| panic!("{e}"));
    path.parent().unwrap().to_path_buf()
}

fn minilm() -> &'static BertModel {
    static MODEL: OnceLock<BertModel> = OnceLock::new();
    MODEL.get_or_init(|| BertModel::load(minilm_dir()).unwrap())
}

fn smollm_bpe() -> &'static Bpe {
    static BPE: OnceLock<Bpe> = OnceLock::new();
    BPE.get_or_init(|| {
        let path = datasets::models::file_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
            .unwrap_or_else(|e| panic!("{e}"));
        Bpe::from_gguf(&Gguf::open(path).unwrap()).unwrap()
    })
}

/// Text that exercises the normaliser: accents (precomposed and combining), CJK, Hangul (NFD splits
/// syllables into jamo), emoji with modifiers and ZWJ, full-width forms, control and zero-width
/// characters, ligatures, Turkish dotted I, special-token literals, long words.
const UNICODE_HEAVY: &str = "Café crème, naïve coöperation — e\u{301}te\u{301} façade! 日本語のテキストです。\
Rustの所有権は独特です。한국어 문장입니다. Emoji: 👍🏽 👨‍👩‍👧 🦀🚀 ok.\tTabs\u{0}and\u{200b}zero-width. \
Ｆｕｌｌ－ｗｉｄｔｈ ﬁne ǅ İstanbul ß ẞ ᾈ Ελληνικά Русский текст. [CLS] literal [SEP]x. \
supercalifragilisticexpialidocious antidisestablishmentarianism e\u{301}\u{301}\u{302} \u{301}lead";

// ------------------------------------------------------------------ token spans

/// HF `tokenizers`' ids and byte offsets (converted from its character offsets) for MiniLM.
fn hf_wordpiece(texts: &[&str]) -> Vec<Vec<(u32, Range<usize>)>> {
    let py = super::formats::python_with("tokenizers");
    let script = r#"
import json, sys
from tokenizers import Tokenizer
t = Tokenizer.from_file(sys.argv[1])
t.no_truncation(); t.no_padding()
out = []
for s in json.load(sys.stdin):
    e = t.encode(s, add_special_tokens=False)
    b = lambda i: len(s[:i].encode("utf-8"))
    out.append([[i, b(a), b(z)] for i, (a, z) in zip(e.ids, e.offsets)])
print(json.dumps(out))
"#;
    let mut child = Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(minilm_dir().join("tokenizer.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(json!(texts).to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t.as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    let n = |i: usize| x[i].as_u64().unwrap() as usize;
                    (n(0) as u32, n(1)..n(2))
                })
                .collect()
        })
        .collect()
}

#[test]
fn wordpiece_offsets_equal_hf_tokenizers() {
    let texts = [
        UNICODE_HEAVY,
        "",
        "   ",
        "Hello, world!",
        "The borrow checker's rules: `&mut T` is unique; `&T` is shared.",
        "x\u{301}\u{301}",
        "\u{0}\u{1}abc",
        "한국어",
        "Ǆemo: ǅ",
    ];
    let want = hf_wordpiece(&texts);
    let tokenizer = minilm().tokenizer().unwrap();
    for (text, want) in texts.iter().zip(want) {
        let got = tokenizer.tokenize_with_offsets(text);
        assert_eq!(got, want, "{text:?}");
        let ids: Vec<u32> = got.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, tokenizer.tokenize(text), "{text:?}: the same ids as tokenize");
        let spans: Vec<Range<usize>> = got.into_iter().map(|(_, r)| r).collect();
        assert_eq!(minilm().token_spans(text), spans, "BertModel's TokenSpans are its tokenizer's");
    }
}

#[test]
fn bpe_spans_follow_the_token_bytes_and_never_cut_a_character() {
    let bpe = smollm_bpe();
    for text in [UNICODE_HEAVY, "", "plain ascii text", "🦀🦀🦀 日本語", "<|im_start|>user"] {
        let ids = bpe.encode_ordinary(text);
        let spans = bpe.token_spans(text);
        assert_eq!(spans.len(), ids.len(), "{text:?}");
        assert_eq!(bpe.count_tokens(text), ids.len());
        let mut pos = 0;
        for (id, span) in ids.iter().zip(&spans) {
            let bytes = bpe.token_bytes(*id).unwrap();
            let exact = pos..pos + bytes.len();
            assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end), "{text:?} {span:?}");
            // The span is the token's bytes, widened to whole characters only where they cut one.
            assert!(span.start <= exact.start && span.end >= exact.end && span.end - span.start < bytes.len() + 8);
            if text.is_char_boundary(exact.start) && text.is_char_boundary(exact.end) {
                assert_eq!(*span, exact);
                assert_eq!(text[exact.clone()].as_bytes(), bytes);
            }
            pos = exact.end;
        }
        assert_eq!(pos, text.len(), "the tokens' bytes are the text's");
    }
    // A 4-byte emoji split across byte tokens: every piece widens to the whole emoji.
    let spans = bpe.token_spans("🦀");
    assert!(spans.iter().all(|s| *s == (0..4)), "{spans:?}");
}

// ------------------------------------------------------------------ sentences

fn check_sentences(text: &str, expected: &[&str]) {
    let got: Vec<&str> = chunk::split_sentences(text).into_iter().map(|r| &text[r]).collect();
    assert_eq!(got, expected, "{text:?}");
}

#[test]
fn sentence_splitter_on_tricky_cases() {
    let cases: &[(&str, &[&str])] = &[
        ("One. Two! Three? Four", &["One.", "Two!", "Three?", "Four"]),
        ("Use a crate, e.g. serde. Then build.", &["Use a crate, e.g. serde.", "Then build."]),
        ("That is, i.e. the heap. Next.", &["That is, i.e. the heap.", "Next."]),
        ("Apples, pears, etc. are fruit.", &["Apples, pears, etc. are fruit."]),
        ("Apples, pears, etc. Then more.", &["Apples, pears, etc.", "Then more."]),
        ("Dr. Smith met Mr. Jones. They talked.", &["Dr. Smith met Mr. Jones.", "They talked."]),
        ("The U.S. economy grew. Markets rose.", &["The U.S. economy grew.", "Markets rose."]),
        ("Pi is 3.14 roughly. Yes.", &["Pi is 3.14 roughly.", "Yes."]),
        ("Rust 1.95.0 is out. Update now.", &["Rust 1.95.0 is out.", "Update now."]),
        ("Wait... what happened? Nothing.", &["Wait... what happened?", "Nothing."]),
        ("It trails off... Then resumes.", &["It trails off...", "Then resumes."]),
        ("Unicode ellipsis… and more… Done.", &["Unicode ellipsis… and more…", "Done."]),
        ("He said \"Stop.\" Then left.", &["He said \"Stop.\"", "Then left."]),
        ("(A note.) Next one.", &["(A note.)", "Next one."]),
        ("Really?! Yes!!", &["Really?!", "Yes!!"]),
        ("Visit example.com today. Or not.", &["Visit example.com today.", "Or not."]),
        ("Call std::mem::swap. It swaps.", &["Call std::mem::swap.", "It swaps."]),
        ("1. First step is here.", &["1. First step is here."]),
        ("所有権は独特です。借用も重要です。", &["所有権は独特です。", "借用も重要です。"]),
        ("你好！你是谁？我是Rust。", &["你好！", "你是谁？", "我是Rust。"]),
        ("「引用です。」次の文。", &["「引用です。」", "次の文。"]),
        ("Emoji end 🎉. Next 👍🏽 one!", &["Emoji end 🎉.", "Next 👍🏽 one!"]),
        ("Line one\nstill one. Two\n\nThree without end", &["Line one\nstill one.", "Two", "Three without end"]),
        ("   ", &[]),
        ("", &[]),
        ("no end at all", &["no end at all"]),
        ("See Fig. 3 and cf. the text. Done.", &["See Fig. 3 and cf. the text.", "Done."]),
        ("Café é\u{301}lan. Ça va.", &["Café é\u{301}lan.", "Ça va."]),
    ];
    for (text, expected) in cases {
        check_sentences(text, expected);
    }
}

// ------------------------------------------------------------------ chunk invariants

fn configs() -> Vec<ChunkerConfig> {
    vec![
        ChunkerConfig::FixedTokens { size: 24, overlap: 6 },
        ChunkerConfig::Sentences { max_tokens: 24 },
        ChunkerConfig::Recursive { max_tokens: 24 },
        ChunkerConfig::Semantic { max_tokens: 24, threshold: 0.3 },
    ]
}

fn budget(config: &ChunkerConfig) -> usize {
    match *config {
        ChunkerConfig::FixedTokens { size, .. } => size,
        ChunkerConfig::Sentences { max_tokens }
        | ChunkerConfig::Recursive { max_tokens }
        | ChunkerConfig::Semantic { max_tokens, .. } => max_tokens,
    }
}

/// Chunks with each config (the semantic one, which embeds every sentence with MiniLM, only when
/// `semantic`) and checks every invariant; returns the chunks per config.
fn check_chunks(doc: &Document, tokens: &dyn TokenSpans, semantic: bool) -> Vec<Vec<kernels::rag::Chunk>> {
    let spans = tokens.token_spans(&doc.text);
    let mut all = Vec::new();
    for config in configs() {
        if !semantic && matches!(config, ChunkerConfig::Semantic { .. }) {
            continue;
        }
        let t0 = std::time::Instant::now();
        let chunks = chunk::chunk_document(doc, &config, tokens, Some(minilm())).unwrap();
        eprintln!("{}: {config:?}: {} chunks in {:?}", doc.id, chunks.len(), t0.elapsed());
        let again = chunk::chunk_document(doc, &config, tokens, Some(minilm())).unwrap();
        assert_eq!(chunks, again, "{config:?}: deterministic");
        let max = budget(&config);
        for c in &chunks {
            let what = format!("{}: {config:?}: chunk {:?} {:?}", doc.id, c.span, c.text);
            assert!(!c.text.trim().is_empty(), "{what}: empty");
            assert!(doc.text.is_char_boundary(c.span.start) && doc.text.is_char_boundary(c.span.end), "{what}");
            assert_eq!(c.text, doc.text[c.span.clone()], "{what}");
            assert_eq!(c.text.trim(), c.text, "{what}: trimmed");
            assert_eq!(c.doc, doc.id);
            assert_eq!(c.metadata, doc.metadata);
            let section = doc.section_of(&c.span).unwrap();
            assert_eq!((&c.heading_path, &c.passage), (&section.heading_path, &doc.passage_id(section)), "{what}");
            // Brute-force count of the document's tokens inside the chunk.
            let n = spans.iter().filter(|t| t.start < c.span.end && t.end > c.span.start).count();
            assert!(n <= max, "{what}: {n} tokens > {max}");
            if !matches!(config, ChunkerConfig::FixedTokens { .. }) {
                // Structure-aware chunkers never cross a section.
                assert!(section.span.start <= c.span.start && c.span.end <= section.span.end, "{what}: crosses");
            }
        }
        let ordered = chunks.windows(2).all(|w| w[0].span.start < w[1].span.start);
        assert!(ordered, "{config:?}: chunks in text order");
        if matches!(
            config,
            ChunkerConfig::FixedTokens { .. } | ChunkerConfig::Recursive { .. } | ChunkerConfig::Sentences { .. }
        ) {
            // Coverage: every non-whitespace character is in some chunk.
            for (i, ch) in doc.text.char_indices() {
                if !ch.is_whitespace() {
                    assert!(
                        chunks.iter().any(|c| c.span.start <= i && i < c.span.end),
                        "{}: {config:?}: {ch:?} at {i} is in no chunk",
                        doc.id
                    );
                }
            }
        }
        all.push(chunks);
    }
    all
}

fn markdown(id: &str, text: &str) -> Document {
    let mut doc = load::load_markdown(id, text).unwrap();
    doc.metadata.insert("collection".into(), "test".into());
    doc
}

#[test]
fn every_chunker_on_unicode_heavy_text() {
    let text = format!(
        "# Unicode 🦀\n\n{UNICODE_HEAVY}\n\n## 第二節 🎉\n\n{UNICODE_HEAVY} {UNICODE_HEAVY}\n\n```\nlet s = \"日本語 👍🏽\";\n```\n"
    );
    let doc = markdown("unicode.md", &text);
    for tokens in [minilm() as &dyn TokenSpans, smollm_bpe() as &dyn TokenSpans] {
        let all = check_chunks(&doc, tokens, true);
        assert!(all.iter().all(|c| c.len() > 2), "{:?}", all.iter().map(Vec::len).collect::<Vec<_>>());
    }
    // Plain text with combining marks and control characters at token edges keeps them in chunks.
    let doc = load::load_text("edge.txt", "\u{301}lead e\u{301}\u{301} \u{0}x\u{0} 🦀\u{200d} end\u{301}").unwrap();
    check_chunks(&doc, minilm(), true);
}

#[test]
fn empty_and_blank_documents_give_no_chunks() {
    for doc in [markdown("empty.md", ""), load::load_text("blank.txt", " \n\n\t ").unwrap()] {
        for config in configs() {
            assert!(chunk::chunk_document(&doc, &config, minilm(), Some(minilm())).unwrap().is_empty());
        }
    }
}

#[test]
fn giant_paragraph_without_sentence_ends_and_a_code_only_document() {
    let words: Vec<String> = (0..1500).map(|i| format!("word{} ünïcödé", i % 97)).collect();
    let giant = load::load_text("giant.txt", &words.join(" ")).unwrap();
    let all = check_chunks(&giant, minilm(), false);
    assert!(all.iter().all(|c| c.len() > 100), "{:?}", all.iter().map(Vec::len).collect::<Vec<_>>());
    // The semantic chunker embeds every piece: a smaller giant keeps the test fast.
    let small = load::load_text("giant-small.txt", &words[..120].join(" ")).unwrap();
    assert!(check_chunks(&small, minilm(), true).iter().all(|c| c.len() > 10));
    // One "word" of thousands of tokens (no whitespace at all) still cuts by tokens.
    let blob = load::load_text("blob.txt", &"日本語🦀abc".repeat(400)).unwrap();
    check_chunks(&blob, minilm(), false);
    let blob = load::load_text("blob-small.txt", &"日本語🦀abc".repeat(40)).unwrap();
    check_chunks(&blob, minilm(), true);

    let code: String = (0..120).map(|i| format!("    let x{i} = compute({i}, \"ü\"); // step {i}. Next.\n")).collect();
    let doc = markdown("code.md", &format!("```rust\nfn main() {{\n{code}}}\n```\n"));
    assert_eq!(doc.blocks.len(), 1);
    let small = markdown("code-small.md", &format!("```rust\n{}```\n", &code[..code.len() / 10]));
    check_chunks(&small, minilm(), true);
    let all = check_chunks(&doc, minilm(), false);
    // The Sentences chunker cuts code at line ends, never at the "sentences" inside comments.
    for c in &all[1] {
        assert!(c.span.end == doc.text.len() || doc.text[c.span.end..].starts_with('\n'), "{:?}", c.text);
    }
}

#[test]
fn fixed_windows_overlap_by_the_given_tokens() {
    let text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen";
    let doc = load::load_text("numbers.txt", text).unwrap();
    // Each number is one MiniLM token (HF agrees, see the offsets test): windows of 5 every 3.
    assert_eq!(minilm().count_tokens(text), 16);
    let chunks =
        chunk::chunk_document(&doc, &ChunkerConfig::FixedTokens { size: 5, overlap: 2 }, minilm(), None).unwrap();
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "one two three four five",
            "four five six seven eight",
            "seven eight nine ten eleven",
            "ten eleven twelve thirteen fourteen",
            "thirteen fourteen fifteen sixteen",
        ]
    );
    // Fixed windows cut inside words (a word of several pieces) but never inside a character: a
    // Hangul syllable's jamo pieces stay together.
    let doc = load::load_text("ko.txt", &"한국어 ".repeat(20)).unwrap();
    let chunks =
        chunk::chunk_document(&doc, &ChunkerConfig::FixedTokens { size: 4, overlap: 1 }, minilm(), None).unwrap();
    assert!(chunks.len() > 3);
    check_chunks(&doc, minilm(), true);
}

#[test]
fn recursive_keeps_sections_whole_when_they_fit() {
    let md = "# Cargo features\n\nFeatures enable optional code. They are additive.\n\n\
              # Ownership\n\nEach value has one owner. When the owner goes out of scope, the value is dropped.\n";
    let doc = markdown("two.md", md);
    let chunks = chunk::chunk_document(&doc, &ChunkerConfig::Recursive { max_tokens: 64 }, minilm(), None).unwrap();
    let got: Vec<(&str, &str)> = chunks.iter().map(|c| (c.passage.as_str(), c.text.as_str())).collect();
    assert_eq!(
        got,
        [
            ("two.md#cargo-features", "Cargo features\nFeatures enable optional code. They are additive."),
            (
                "two.md#ownership",
                "Ownership\nEach value has one owner. When the owner goes out of scope, the value is dropped."
            ),
        ]
    );
    // With a budget of 13 the first section (11 tokens) stays whole, the second (20) splits at its
    // sentences, the heading merged with the first; with 12 the 13-token sentence splits too.
    let texts = |max_tokens| {
        let chunks = chunk::chunk_document(&doc, &ChunkerConfig::Recursive { max_tokens }, minilm(), None).unwrap();
        chunks.into_iter().map(|c| c.text).collect::<Vec<_>>()
    };
    assert_eq!(
        texts(13),
        [
            "Cargo features\nFeatures enable optional code. They are additive.",
            "Ownership\nEach value has one owner.",
            "When the owner goes out of scope, the value is dropped."
        ]
    );
    assert_eq!(
        texts(12),
        [
            "Cargo features\nFeatures enable optional code. They are additive.",
            "Ownership\nEach value has one owner.",
            "When the owner goes out of scope, the value is",
            "dropped."
        ]
    );
}

#[test]
fn semantic_chunker_splits_two_topics_on_minilm() {
    let cargo = "Cargo features let a package define optional functionality. A feature is declared in the \
                 features table of Cargo.toml. Enabling a feature can turn on optional dependencies. \
                 Features are additive, so enabling one should never disable another.";
    let ownership = "Every value in Rust has a single owner. When the owner goes out of scope, the value is \
                     dropped. Moving a value transfers ownership to another variable. Borrowing lets code \
                     use a value without taking ownership of it.";
    let doc = load::load_text("topics.txt", &format!("{cargo} {ownership}")).unwrap();
    // Measure the neighbour similarities the rule looks at.
    let sentences: Vec<&str> = chunk::split_sentences(&doc.text).into_iter().map(|r| &doc.text[r]).collect();
    assert_eq!(sentences.len(), 8);
    let v = kernels::rag::Embedder::embed(minilm(), &sentences).unwrap();
    let sims: Vec<f32> = (1..8).map(|k| chunk::cosine(&v[k - 1], &v[k])).collect();
    eprintln!("neighbour cosines: {sims:?}");
    let boundary = sims[3];
    let within = sims.iter().enumerate().filter(|(k, _)| *k != 3).map(|(_, s)| *s).fold(f32::INFINITY, f32::min);
    assert!(boundary < within, "the topic change is the least similar neighbour pair: {sims:?}");
    let threshold = (boundary + within) / 2.0;
    let config = ChunkerConfig::Semantic { max_tokens: 126, threshold };
    let chunks = chunk::chunk_document(&doc, &config, minilm(), Some(minilm())).unwrap();
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, [cargo, ownership]);
    // A threshold above every similarity splits every sentence; below every one keeps one chunk.
    let all = ChunkerConfig::Semantic { max_tokens: 126, threshold: 1.01 };
    assert_eq!(chunk::chunk_document(&doc, &all, minilm(), Some(minilm())).unwrap().len(), 8);
    let none = ChunkerConfig::Semantic { max_tokens: 126, threshold: -1.01 };
    assert_eq!(chunk::chunk_document(&doc, &none, minilm(), Some(minilm())).unwrap().len(), 1);
    // ... unless the budget splits it.
    let small = ChunkerConfig::Semantic { max_tokens: 40, threshold: -1.01 };
    assert!(chunk::chunk_document(&doc, &small, minilm(), Some(minilm())).unwrap().len() > 2);
}

#[test]
fn bad_parameters_and_documents_are_typed_errors() {
    let doc = load::load_text("a.txt", "some text here").unwrap();
    let check = |config: ChunkerConfig, with_embedder: bool, needle: &str| {
        let embedder = with_embedder.then_some(minilm() as &dyn kernels::rag::Embedder);
        match chunk::chunk_document(&doc, &config, minilm(), embedder) {
            Err(Error::InvalidParameter(msg)) => assert!(msg.contains(needle), "{msg}"),
            other => panic!("{config:?}: {other:?}"),
        }
    };
    check(ChunkerConfig::FixedTokens { size: 4, overlap: 4 }, false, "overlap 4");
    check(ChunkerConfig::FixedTokens { size: 0, overlap: 0 }, false, "overlap 0");
    check(ChunkerConfig::Recursive { max_tokens: 0 }, false, "at least 1");
    check(ChunkerConfig::Sentences { max_tokens: 0 }, false, "at least 1");
    check(ChunkerConfig::Semantic { max_tokens: 10, threshold: 0.5 }, false, "embedder");
    check(ChunkerConfig::Semantic { max_tokens: 10, threshold: f32::NAN }, true, "threshold");
    let mut bad = doc.clone();
    bad.sections = vec![Section { heading_path: vec![], anchor: None, span: 0..99 }];
    match chunk::chunk_document(&bad, &ChunkerConfig::Recursive { max_tokens: 8 }, minilm(), None) {
        Err(Error::InvalidParameter(msg)) => assert!(msg.contains("a.txt") && msg.contains("0..99"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cargo_book_pages_chunk_within_minilm_window() {
    let root = load::rust_docs_root().unwrap();
    let pages = ["cargo/reference/features.html", "cargo/guide/dependencies.html", "cargo/reference/profiles.html"];
    let mut counts = Vec::new();
    for page in pages {
        let doc = load::load_html(page, &std::fs::read_to_string(root.join(page)).unwrap()).unwrap();
        for config in [ChunkerConfig::Recursive { max_tokens: 126 }, ChunkerConfig::Sentences { max_tokens: 126 }] {
            let chunks = chunk::chunk_document(&doc, &config, minilm(), None).unwrap();
            for c in &chunks {
                // Cut at sentence and block ends, re-tokenising a chunk gives the same count, so it fits
                // MiniLM's 128-token window with [CLS] and [SEP].
                let n = minilm().count_tokens(&c.text);
                assert!(n <= 126, "{page}: {config:?}: {n} tokens: {:?}", c.text);
            }
            let passages: std::collections::BTreeSet<&str> = chunks.iter().map(|c| c.passage.as_str()).collect();
            let sections = doc.sections.iter().filter(|s| !doc.text[s.span.clone()].trim().is_empty()).count();
            assert_eq!(passages.len(), sections, "{page}: every passage gets a chunk");
            counts.push((page, format!("{config:?}"), chunks.len()));
        }
    }
    eprintln!("{counts:?}");
}
