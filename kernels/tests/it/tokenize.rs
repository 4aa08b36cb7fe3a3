//! Tokenizers against their peer, HF `tokenizers` 0.23.3 (Python, in the peers' venv): SmolLM2's byte-level BPE
//! (Sennrich et al. 2016; GPT-2's byte-to-unicode mapping), BPE training (HF's `BpeTrainer`), and
//! all-MiniLM-L6-v2's BERT WordPiece, compared id for id on the Rust book and on adversarial strings.
//!
//! The peer runs `kernels/tests/tokenize/hf_reference.py`. Without the venv (`cargo xtask peers`), the models
//! (`cargo xtask models`) or the Rust book (`rustup component add rust-docs`) these tests fail, saying which.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use kernels::Error;
use kernels::formats::Gguf;
use kernels::tokenize::{
    Bpe, BpeConfig, LONG_PIECE, Padding, PreTokenizer, TrainConfig, WordPiece, WordPieceConfig, byte_level,
    parse_merge_lines, train_bpe,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------------------------
// The peer, the models and the corpus.

/// The venv's Python, after checking that tokenizers 0.23.3 and gguf import.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let py = kernels::cache::venv_python();
        assert!(py.is_file(), "the peers' Python venv is missing ({}): run `cargo xtask peers`", py.display());
        let out = Command::new(&py)
            .args(["-c", "import tokenizers, gguf; assert tokenizers.__version__ == '0.23.3', tokenizers.__version__"])
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "HF tokenizers 0.23.3 / gguf do not import in {}: run `cargo xtask peers`\n{}",
            py.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        py
    })
}

fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kernels-tokenize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a scratch folder");
        dir
    })
}

fn scratch_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    scratch_dir().join(format!("{}-{name}", N.fetch_add(1, Ordering::Relaxed)))
}

/// Runs one request through `hf_reference.py` and returns its JSON answer.
fn hf(request: Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tokenize/hf_reference.py");
    let (req, resp) = (scratch_path("request.json"), scratch_path("response.json"));
    std::fs::write(&req, request.to_string()).expect("write the request");
    let out = Command::new(python())
        .arg(&script)
        .arg(&req)
        .arg(&resp)
        .env("RAYON_NUM_THREADS", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "hf_reference.py {} failed:\n{}",
        request["op"],
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = serde_json::from_slice(&std::fs::read(&resp).expect("read the response")).expect("JSON response");
    let _ = std::fs::remove_file(&req);
    let _ = std::fs::remove_file(&resp);
    answer
}

fn model_file(model: &str, file: &str) -> PathBuf {
    datasets::models::file_path(model, file).unwrap_or_else(|e| panic!("{e}"))
}

fn smollm2_gguf() -> PathBuf {
    model_file("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn minilm_json() -> PathBuf {
    model_file("all-minilm-l6-v2", "tokenizer.json")
}

fn smollm2_spec() -> Value {
    json!({"kind": "smollm2", "gguf": smollm2_gguf()})
}

fn minilm_spec() -> Value {
    json!({"kind": "json", "path": minilm_json(), "plain": true})
}

/// SmolLM2's tokenizer, from the GGUF metadata.
fn smollm2() -> &'static Bpe {
    static BPE: OnceLock<Bpe> = OnceLock::new();
    BPE.get_or_init(|| {
        let gguf = Gguf::open(smollm2_gguf()).expect("open the SmolLM2 GGUF");
        Bpe::from_gguf(&gguf).expect("SmolLM2's tokenizer loads from GGUF")
    })
}

/// all-MiniLM-L6-v2's tokenizer from its tokenizer.json, without its truncation to 128 and padding.
fn minilm() -> &'static WordPiece {
    static WP: OnceLock<WordPiece> = OnceLock::new();
    WP.get_or_init(|| {
        let wp = WordPiece::from_tokenizer_json(minilm_json()).expect("MiniLM's tokenizer.json loads");
        let config = WordPieceConfig { max_length: None, padding: Padding::None, ..wp.config().clone() };
        WordPiece::new(wp.tokens().to_vec(), config).expect("same vocabulary")
    })
}

/// The Rust book's chapters as plain text (the `<main>` of each page, tags stripped, entities decoded).
fn rust_book() -> &'static [String] {
    static BOOK: OnceLock<Vec<String>> = OnceLock::new();
    BOOK.get_or_init(|| {
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let out = Command::new(rustc).args(["--print", "sysroot"]).output().expect("run rustc --print sysroot");
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("share/doc/rust/html/book");
        let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| {
                panic!("the Rust book is not at {} ({e}): run `rustup component add rust-docs`", dir.display())
            })
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "html") && !p.ends_with("print.html"))
            .collect();
        pages.sort();
        let chapters: Vec<String> =
            pages.iter().filter_map(|p| main_text(&std::fs::read_to_string(p).expect("read a book page"))).collect();
        assert!(chapters.len() > 50, "only {} book pages with text in {}", chapters.len(), dir.display());
        chapters
    })
}

fn main_text(html: &str) -> Option<String> {
    let start = html.find("<main>")? + "<main>".len();
    let end = start + html[start..].find("</main>")?;
    let mut text = String::new();
    let mut in_tag = false;
    for c in html[start..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(decode_entities(&text))
}

fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let c = match &rest[1..semi] {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
                e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            }?;
            Some((c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Strings that break careless tokenizers.
fn adversarial() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        " ",
        "   ",
        "\t\n \r\n",
        "\n\n\n",
        "a",
        "Hello, World!",
        "  leading and trailing  ",
        "emoji 😀🎉 family 👨‍👩‍👧‍👦 flag 🇫🇷 skin 👍🏽 newer 🥰🫠",
        "combining: e\u{301} a\u{300}\u{316} Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇ and a\u{0300}\u{0323}b",
        "CJK: 你好，世界！日本語のテキスト、カタカナ 한국어 텍스트 豈 ﬀ",
        "Ελληνικά Русский עברית العربية हिन्दी ไทย ქართული",
        "special <|im_start|>user\nHi there<|im_end|>\n<|endoftext|>",
        "mid<|im_end|>word<|im_start|><|im_start|> <|im_start <|im_end|",
        "digits 1234567890 3.14159 1,000,000 ٣٤٥ ⅷ ①② ¹²³ 𝟘𝟙",
        "contractions don't I'm we've they're she'll he'd it's 'S 'T '' 's'",
        "tabs\tand\u{a0}nbsp\u{3000}ideographic\u{2028}line sep\u{85}nel\u{1c}fs",
        "\u{0}\u{1}\u{4}\u{13}\u{1f}\u{7f} controls \u{200b}zero width\u{feff}bom\u{fffd}replacement \u{e000}private",
        "[CLS] [SEP] [MASK] [mask] [UNK] [PAD]x in text",
        "Mixed CASE ÀÉÎÕÜ ß ﬁ İstanbul ǅ ΣΑΣ",
        "path/to/file.rs:12:5 a+b=c x->y {a: [1, 2]} #[derive(Debug)]",
        "fn main() {\n    println!(\"{}\", x);\n}\n",
        "      \n      indented code\n\t\ttabs",
        "!!!???...,,,;;;:::",
        "\u{301}starts with a mark",
    ]
    .map(String::from)
    .to_vec();
    v.push("x".repeat(10_000));
    v.push(format!("{} {}", "a".repeat(300), "supercalifragilisticexpialidocious".repeat(20)));
    v.push("1234567890".repeat(50));
    v.push("😀".repeat(500));
    v.push(" ".repeat(1000) + "end");
    v.push("ab".repeat(LONG_PIECE) + "abc");
    v
}

/// Compares two id lists per text; returns the number of tokens compared and panics listing the first
/// mismatches (text index, first differing position, both windows).
fn assert_same_ids(what: &str, texts: &[String], ours: &[Vec<u32>], theirs: &Value) -> usize {
    let theirs: Vec<Vec<u32>> = serde_json::from_value(theirs.clone()).expect("ids from the peer");
    assert_eq!(ours.len(), theirs.len(), "{what}: number of texts");
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        compared += b.len();
        if a != b {
            let at = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
            let window = |v: &[u32]| v[at.saturating_sub(3)..(at + 4).min(v.len())].to_vec();
            let snippet: String = texts[i].chars().take(80).collect();
            mismatches.push(format!(
                "text {i} ({snippet:?}…): {} vs {} ids, first difference at {at}: ours {:?} theirs {:?}",
                a.len(),
                b.len(),
                window(a),
                window(b)
            ));
        }
    }
    println!("{what}: {} texts, {compared} tokens compared, {} mismatching texts", texts.len(), mismatches.len());
    assert!(mismatches.is_empty(), "{what}: {} texts differ:\n{}", mismatches.len(), mismatches.join("\n"));
    compared
}

/// Char offsets of pieces (as HF's `pre_tokenize_str` gives them).
fn char_spans(text: &str, pieces: &[&str]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut at = 0;
    for p in pieces {
        let n = p.chars().count();
        spans.push((at, at + n));
        at += n;
    }
    assert_eq!(at, text.chars().count(), "pieces cover the text");
    spans
}

// ---------------------------------------------------------------------------------------------------------------
// Byte-level mapping and pre-tokenisation.

#[test]
fn byte_to_unicode_is_gpt2s_table() {
    let check = |byte: u8, expected: char| {
        assert_eq!(byte_level::BYTE_TO_CHAR[byte as usize], expected, "byte {byte:#04x}");
        assert_eq!(byte_level::char_to_byte(expected), Some(byte));
    };
    check(b' ', 'Ġ');
    check(b'\n', 'Ċ');
    check(b'\t', 'ĉ');
    check(0x00, 'Ā');
    check(b'a', 'a');
    check(b'!', '!');
    check(0x7F, 'ġ');
    check(0xAD, 'Ń');
    check(0xFF, 'ÿ');
    let all: Vec<u8> = (0..=255).collect();
    let text = byte_level::bytes_to_string(&all);
    assert_eq!(text.chars().count(), 256);
    assert_eq!(byte_level::string_to_bytes(&text), Some(all));
    assert_eq!(byte_level::string_to_bytes("Ġhello€"), None, "€ is not one of the 256");
}

#[test]
fn pre_tokenizers_split_hand_computed_cases() {
    let check = |pre: PreTokenizer, input: &str, expected: &[&str]| {
        assert_eq!(pre.pieces(input), expected, "{pre:?} on {input:?}");
    };
    use PreTokenizer::{DigitsThenGpt2 as Digits, Gpt2};
    check(Gpt2, "", &[]);
    check(Gpt2, "Hello world", &["Hello", " world"]);
    check(Gpt2, "  a", &[" ", " a"]);
    check(Gpt2, "a  ", &["a", "  "]);
    check(Gpt2, "x\n\ny", &["x", "\n", "\n", "y"]);
    check(Gpt2, "don't", &["don", "'t"]);
    check(Gpt2, " 's", &[" '", "s"]);
    check(Gpt2, "a!!b", &["a", "!!", "b"]);
    check(Gpt2, "abc 123", &["abc", " 123"]);
    check(Gpt2, "naïve café", &["naïve", " café"]);
    check(Digits, "abc 123", &["abc", " ", "1", "2", "3"]);
    check(Digits, "a  1", &["a", "  ", "1"]);
    check(Digits, "v2.0", &["v", "2", ".", "0"]);
}

#[test]
fn pre_tokenizer_pieces_match_hf_on_adversarial_strings() {
    let texts = adversarial();
    let theirs = hf(json!({"op": "pretokenize", "tokenizer": smollm2_spec(), "texts": texts}));
    for (i, text) in texts.iter().enumerate() {
        let ours = char_spans(text, &PreTokenizer::DigitsThenGpt2.pieces(text));
        let expected: Vec<(usize, usize)> = serde_json::from_value(theirs["pieces"][i].clone()).expect("spans");
        assert_eq!(ours, expected, "pieces of {text:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Byte-level BPE: SmolLM2.

#[test]
fn bpe_from_parts_applies_merges_lowest_rank_first() {
    // Sennrich et al.'s example vocabulary, byte-level style (Ġ is the space).
    let tokens: Vec<String> =
        ["l", "o", "w", "e", "r", "n", "s", "t", "i", "d", "Ġ", "lo", "low", "er", "Ġlow", "est", "es", "Ġ"]
            .map(String::from)
            .to_vec();
    let merges = parse_merge_lines(&["l o", "lo w", "e r", "e s", "es t", "Ġ low"]).expect("merge lines");
    let bpe = Bpe::new(tokens, &merges, BpeConfig::default()).expect("valid parts");
    let check = |input: &str, expected: &[&str]| {
        let ids = bpe.encode(input);
        let got: Vec<&str> = ids.iter().map(|&id| bpe.token(id).expect("known id")).collect();
        assert_eq!(got, expected, "{input:?}");
        assert_eq!(bpe.decode(&ids).expect("decode"), input);
    };
    check("lower", &["low", "er"]);
    check("lowest", &["low", "est"]);
    check("newest", &["n", "e", "w", "est"]);
    check("slow low", &["s", "low", "Ġlow"]);
    check("", &[]);
}

#[test]
fn smollm2_loads_from_gguf_and_from_tokenizer_json_alike() {
    let bpe = smollm2();
    assert_eq!(bpe.vocab_size(), 49_152);
    assert_eq!(bpe.merges().len(), 48_900);
    assert_eq!(bpe.config().pre_tokenizer, PreTokenizer::DigitsThenGpt2);
    assert_eq!((bpe.bos_id(), bpe.eos_id()), (Some(1), Some(2)));
    assert_eq!(bpe.token_id("<|im_start|>"), Some(1));
    // The peer writes the same tokenizer as tokenizer.json; our JSON loader must give the same tokenizer.
    let path = scratch_path("smollm2-tokenizer.json");
    hf(json!({"op": "save", "tokenizer": smollm2_spec(), "path": path}));
    let from_json = Bpe::from_tokenizer_json(&path).expect("tokenizer.json written by HF loads");
    let _ = std::fs::remove_file(&path);
    assert_eq!(from_json.tokens(), bpe.tokens());
    assert!(from_json.merges().eq(bpe.merges()));
    assert_eq!(from_json.config().pre_tokenizer, PreTokenizer::DigitsThenGpt2);
    let text = rust_book()[10].as_str();
    assert_eq!(from_json.encode(text), bpe.encode(text));
}

#[test]
fn smollm2_ids_match_hf_on_the_rust_book() {
    let book = rust_book();
    let ours = smollm2().encode_batch(book);
    let theirs = hf(json!({"op": "encode", "tokenizer": smollm2_spec(), "texts": book}));
    let n = assert_same_ids("SmolLM2 BPE, Rust book", book, &ours, &theirs["ids"]);
    assert!(n > 200_000, "only {n} tokens");
    // A second, cached pass gives the same ids.
    assert_eq!(smollm2().encode_batch(book), ours);
}

#[test]
fn smollm2_ids_and_decoding_match_hf_on_adversarial_strings() {
    let texts = adversarial();
    let bpe = smollm2();
    let ours: Vec<Vec<u32>> = texts.iter().map(|t| bpe.encode(t)).collect();
    let theirs = hf(json!({"op": "encode", "tokenizer": smollm2_spec(), "texts": texts}));
    assert_same_ids("SmolLM2 BPE, adversarial", &texts, &ours, &theirs["ids"]);
    let decoded = hf(json!({"op": "decode", "tokenizer": smollm2_spec(), "ids": ours}));
    for (i, (text, ids)) in texts.iter().zip(&ours).enumerate() {
        // Bytes without a token (SmolLM2 has none for 0x04, 0x06, 0x13, …) are dropped, as HF drops them.
        let kept: Vec<u8> =
            text.bytes().filter(|&b| bpe.token_id(&byte_level::bytes_to_string(&[b])).is_some()).collect();
        assert_eq!(bpe.decode(ids).expect("decode"), String::from_utf8_lossy(&kept), "round trip of {text:?}");
        assert_eq!(bpe.decode(ids).expect("decode"), decoded["text"][i].as_str().expect("text"));
        assert_eq!(
            bpe.decode_skipping_special(ids).expect("decode"),
            decoded["text_skipping_special"][i].as_str().expect("text"),
            "skipping special tokens in {text:?}"
        );
    }
}

#[test]
fn smollm2_ids_match_hf_for_every_code_point() {
    // Each code point after a letter, a digit and punctuation, doubled, and after a space: a class the
    // pre-tokeniser gets wrong changes the pieces and so the ids. Planes 0-2 and 14 hold the assigned characters;
    // a slice of each private-use plane stands for the rest.
    let points: Vec<char> = (0..0x3_0000u32)
        .chain(0xE_0000..0xE_0200)
        .chain(0xF_0000..0xF_0100)
        .chain(0x10_FF00..=0x10_FFFF)
        .filter_map(char::from_u32)
        .collect();
    let texts: Vec<String> =
        points.chunks(512).map(|chunk| chunk.iter().map(|c| format!("x{c}1{c}!{c}{c} {c}\t")).collect()).collect();
    let ours = smollm2().encode_batch(&texts);
    let theirs = hf(json!({"op": "encode", "tokenizer": smollm2_spec(), "texts": texts}));
    assert_same_ids("SmolLM2 BPE, every code point", &texts, &ours, &theirs["ids"]);
}

#[test]
fn special_tokens_are_split_out_only_when_asked() {
    let bpe = smollm2();
    let ids = bpe.encode("a<|im_start|>b");
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[1], 1);
    let ordinary = bpe.encode_ordinary("a<|im_start|>b");
    assert!(!ordinary.contains(&1), "user text cannot forge <|im_start|>: {ordinary:?}");
    assert_eq!(bpe.decode(&ordinary).expect("decode"), "a<|im_start|>b");
    assert_eq!(bpe.decode_skipping_special(&ids).expect("decode"), "ab");
}

#[test]
fn decoding_invalid_utf8_matches_hf_and_keeps_the_bytes() {
    let bpe = smollm2();
    let byte_id = |b: u8| bpe.token_id(&byte_level::BYTE_TO_CHAR[b as usize].to_string()).expect("byte token");
    let cases: Vec<Vec<u8>> = vec![
        vec![0xF4, 0x8F],                   // a truncated 4-byte sequence
        vec![0xE2, 0x82],                   // a truncated €
        vec![b'a', 0xC3, b'b'],             // a lone lead byte
        vec![0x80, 0x80, b'x'],             // lone continuation bytes
        vec![0xF0, 0x9F, 0x98],             // a truncated emoji
        vec![0xED, 0xA0, 0x80],             // an encoded surrogate
        vec![0xE0, 0x80, 0xAF],             // an overlong '/'
        "ok €".bytes().collect(),           // valid, for contrast
        vec![0xE2, 0x82, 0xAC, 0xE2, 0x82], // one € and a half
    ];
    let ids: Vec<Vec<u32>> = cases.iter().map(|c| c.iter().map(|&b| byte_id(b)).collect()).collect();
    let theirs = hf(json!({"op": "decode", "tokenizer": smollm2_spec(), "ids": ids}));
    for (i, (bytes, ids)) in cases.iter().zip(&ids).enumerate() {
        assert_eq!(&bpe.decode_bytes(ids).expect("decode"), bytes, "exact bytes");
        assert_eq!(bpe.decode(ids).expect("decode"), String::from_utf8_lossy(bytes));
        assert_eq!(bpe.decode(ids).expect("decode"), theirs["text"][i].as_str().expect("text"), "case {i}");
    }
}

#[test]
fn bpe_round_trips_the_rust_book() {
    let bpe = smollm2();
    for chapter in rust_book().iter().take(40) {
        assert_eq!(&bpe.decode(&bpe.encode(chapter)).expect("decode"), chapter);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// BPE training.

fn training_corpus() -> Vec<String> {
    rust_book().iter().take(25).cloned().collect()
}

#[test]
fn trained_bpe_equals_hf_bpe_trainer() {
    let corpus = training_corpus();
    for (vocab_size, digits) in [(1200usize, false), (3000, true)] {
        let pre_tokenizer = if digits { PreTokenizer::DigitsThenGpt2 } else { PreTokenizer::Gpt2 };
        let special = vec!["<|endoftext|>".to_string(), "<pad>".to_string()];
        let config =
            TrainConfig { vocab_size, special_tokens: special.clone(), pre_tokenizer, ..TrainConfig::default() };
        let ours = train_bpe(&corpus, &config).expect("train");
        let path = scratch_path("trained.json");
        hf(json!({"op": "train", "texts": corpus, "vocab_size": vocab_size, "special_tokens": special,
                  "digits": digits, "path": path}));
        let theirs = Bpe::from_tokenizer_json(&path).expect("HF's trained tokenizer loads");
        let _ = std::fs::remove_file(&path);
        assert_eq!(ours.vocab_size(), vocab_size);
        assert_eq!(ours.tokens(), theirs.tokens(), "vocabulary, id for id (vocab {vocab_size})");
        let (a, b): (Vec<_>, Vec<_>) = (ours.merges().collect(), theirs.merges().collect());
        assert_eq!(a.len(), b.len(), "number of merges");
        if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
            panic!("merge {i} differs: ours {:?}, HF {:?}", a[i], b[i]);
        }
        println!("training (vocab {vocab_size}, digits {digits}): {} merges identical to HF's BpeTrainer", a.len());
    }
}

#[test]
fn trained_bpe_round_trips_shrinks_text_and_hf_encodes_alike() {
    let corpus = training_corpus();
    let bytes: usize = corpus.iter().map(String::len).sum();
    let mut previous = usize::MAX;
    for vocab_size in [256, 600, 2000] {
        let config = TrainConfig { vocab_size, special_tokens: vec!["<|endoftext|>".into()], ..TrainConfig::default() };
        let bpe = train_bpe(&corpus, &config).expect("train");
        assert_eq!(bpe.vocab_size(), vocab_size.max(257), "256 bytes + 1 special at least");
        let ids = bpe.encode_batch(&corpus);
        let total: usize = ids.iter().map(Vec::len).sum();
        assert!(total < previous, "more merges, fewer tokens: {total} at vocab {vocab_size}");
        previous = total;
        for (text, ids) in corpus.iter().zip(&ids) {
            assert_eq!(&bpe.decode(ids).expect("decode"), text);
        }
        // HF loads what we learned and encodes the corpus (and unseen text) identically.
        let path = scratch_path("ours.json");
        std::fs::write(&path, bpe.to_tokenizer_json()).expect("write tokenizer.json");
        let mut texts = corpus.clone();
        texts.extend(adversarial());
        let ours: Vec<Vec<u32>> = texts.iter().map(|t| bpe.encode(t)).collect();
        let theirs = hf(json!({"op": "encode", "tokenizer": {"kind": "json", "path": path}, "texts": texts}));
        let _ = std::fs::remove_file(&path);
        assert_same_ids(&format!("trained BPE (vocab {vocab_size}) in HF"), &texts, &ours, &theirs["ids"]);
    }
    assert!(previous * 3 < bytes, "a 2000-token BPE compresses English more than 3 bytes per token");
}

// ---------------------------------------------------------------------------------------------------------------
// WordPiece: all-MiniLM-L6-v2.

#[test]
fn wordpiece_hand_computed_cases() {
    let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\nhello\n,\n!\nwor\n##ld\ncafe\n";
    let wp = WordPiece::from_vocab_txt_str(vocab, WordPieceConfig::default()).expect("vocab");
    let check = |input: &str, expected: &[&str]| {
        let got: Vec<&str> = wp.encode(input).ids.iter().map(|&id| wp.token(id).expect("id")).collect();
        assert_eq!(got, expected, "{input:?}");
    };
    check("unaffable", &["[CLS]", "un", "##aff", "##able", "[SEP]"]);
    check("Hello, WORLD!", &["[CLS]", "hello", ",", "wor", "##ld", "!", "[SEP]"]);
    check("Café", &["[CLS]", "cafe", "[SEP]"]);
    check("unknownword", &["[CLS]", "[UNK]", "[SEP]"]);
    check("", &["[CLS]", "[SEP]"]);
    check("hello [MASK]", &["[CLS]", "hello", "[MASK]", "[SEP]"]);
    let e = wp.encode("hello");
    assert_eq!((e.type_ids, e.attention_mask), (vec![0; 3], vec![1; 3]));
    assert_eq!(wp.decode(&wp.encode("Hello, world!").ids).expect("decode"), "hello, world!");
}

#[test]
fn wordpiece_from_vocab_txt_equals_tokenizer_json() {
    let from_txt = WordPiece::from_vocab_txt(model_file("all-minilm-l6-v2", "vocab.txt"), WordPieceConfig::default())
        .expect("vocab.txt loads");
    let from_json = minilm();
    assert_eq!(from_txt.vocab_size(), 30_522);
    assert_eq!(from_txt.tokens(), from_json.tokens());
    for text in rust_book().iter().take(10).chain(adversarial().iter()) {
        assert_eq!(from_txt.encode(text), from_json.encode(text));
    }
}

#[test]
fn minilm_ids_match_hf_on_the_rust_book() {
    let book = rust_book();
    let ours: Vec<Vec<u32>> = minilm().encode_batch(book).into_iter().map(|e| e.ids).collect();
    let theirs = hf(json!({"op": "encode", "tokenizer": minilm_spec(), "texts": book}));
    let n = assert_same_ids("MiniLM WordPiece, Rust book", book, &ours, &theirs["ids"]);
    assert!(n > 200_000, "only {n} tokens");
}

#[test]
fn minilm_ids_normalisation_and_decoding_match_hf_on_adversarial_strings() {
    let texts = adversarial();
    let wp = minilm();
    let ours: Vec<Vec<u32>> = texts.iter().map(|t| wp.encode(t).ids).collect();
    let theirs = hf(json!({"op": "encode", "tokenizer": minilm_spec(), "texts": texts}));
    assert_same_ids("MiniLM WordPiece, adversarial", &texts, &ours, &theirs["ids"]);
    let normalized = hf(json!({"op": "normalize", "tokenizer": minilm_spec(), "texts": texts}));
    let decoded = hf(json!({"op": "decode", "tokenizer": minilm_spec(), "ids": ours}));
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(wp.normalize(text), normalized["normalized"][i].as_str().expect("text"), "normalising {text:?}");
        assert_eq!(
            wp.decode(&ours[i]).expect("decode"),
            decoded["text_skipping_special"][i].as_str().expect("text"),
            "decoding {text:?}"
        );
    }
}

#[test]
fn minilm_normalisation_and_ids_match_hf_for_every_code_point() {
    let points: Vec<char> = (0..0x3_0000u32)
        .chain(0xE_0000..0xE_0200)
        .chain(0xF_0000..0xF_0100)
        .chain(0x10_FF00..=0x10_FFFF)
        .filter_map(char::from_u32)
        .collect();
    let texts: Vec<String> =
        points.chunks(512).map(|chunk| chunk.iter().map(|c| format!("a{c}b {c}{c}.{c} ")).collect()).collect();
    let wp = minilm();
    let normalized = hf(json!({"op": "normalize", "tokenizer": minilm_spec(), "texts": texts}));
    let mut differing = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let ours = wp.normalize(text);
        let theirs = normalized["normalized"][i].as_str().expect("text");
        if ours != theirs {
            let (a, b): (Vec<char>, Vec<char>) = (ours.chars().collect(), theirs.chars().collect());
            let at = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
            let window = |v: &[char]| v[at.saturating_sub(4)..(at + 6).min(v.len())].iter().collect::<String>();
            differing.push(format!("chunk {i}: at char {at}: ours {:?} theirs {:?}", window(&a), window(&b)));
        }
    }
    assert!(differing.is_empty(), "{} chunks normalise differently:\n{}", differing.len(), differing.join("\n"));
    let ours: Vec<Vec<u32>> = wp.encode_batch(&texts).into_iter().map(|e| e.ids).collect();
    let theirs = hf(json!({"op": "encode", "tokenizer": minilm_spec(), "texts": texts}));
    assert_same_ids("MiniLM WordPiece, every code point", &texts, &ours, &theirs["ids"]);
}

#[test]
fn minilm_truncation_and_padding_match_hf() {
    let mut texts: Vec<String> = rust_book().iter().take(3).cloned().collect();
    texts.extend(["short", "", "two words", "[MASK] is special"].map(String::from));
    // The tokenizer.json as shipped: truncation to 128, fixed padding to 128.
    let shipped = WordPiece::from_tokenizer_json(minilm_json()).expect("loads");
    assert_eq!(shipped.config().max_length, Some(128));
    assert_eq!(shipped.config().padding, Padding::Fixed(128));
    // Truncation to 40 with padding to the longest of the batch.
    let longest = WordPiece::new(
        shipped.tokens().to_vec(),
        WordPieceConfig { max_length: Some(40), padding: Padding::BatchLongest, ..shipped.config().clone() },
    )
    .expect("same vocabulary");
    let cases = [
        (&shipped, json!({"kind": "json", "path": minilm_json()})),
        (&longest, json!({"kind": "json", "path": minilm_json(), "plain": true, "truncate": 40, "pad": "longest"})),
    ];
    for (wp, spec) in cases {
        let ours = wp.encode_batch(&texts);
        let theirs = hf(json!({"op": "encode", "tokenizer": spec, "texts": texts}));
        for (i, e) in ours.iter().enumerate() {
            let field = |k: &str| -> Vec<u32> { serde_json::from_value(theirs[k][i].clone()).expect("ids") };
            assert_eq!(e.ids, field("ids"), "ids of text {i}");
            assert_eq!(e.attention_mask, field("attention_mask"), "attention mask of text {i}");
            assert_eq!(e.type_ids, field("type_ids"), "type ids of text {i}");
        }
        let len = ours[0].len();
        assert!(ours.iter().all(|e| e.len() == len), "one length per batch");
    }
}

#[test]
fn minilm_words_over_100_characters_are_unknown() {
    let wp = minilm();
    let unk = wp.token_id("[UNK]").expect("[UNK]");
    let check = |input: String, expected_unk: bool| {
        let ids = wp.encode(&input).ids;
        assert_eq!(ids.contains(&unk), expected_unk, "{} chars", input.chars().count());
    };
    check("a".repeat(100), false);
    check("a".repeat(101), true);
    check("é".repeat(100), false); // 100 characters, 200 bytes
}

// ---------------------------------------------------------------------------------------------------------------
// Bad input: typed errors, no panics.

#[test]
fn malformed_definitions_are_typed_errors() {
    let bpe_json = |pre: Value, merges: Value| {
        json!({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": merges}, "pre_tokenizer": pre})
            .to_string()
    };
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true});
    let check = |result: kernels::Result<Bpe>, expected: &str| match result {
        Err(Error::TokenizerDefinition { reason, .. }) => {
            assert!(reason.contains(expected), "{reason:?} names {expected:?}")
        }
        other => panic!("expected a definition error naming {expected:?}, got {other:?}"),
    };
    check(Bpe::from_tokenizer_json_str("{not json"), "not valid JSON");
    let valid = Bpe::from_tokenizer_json_str(&bpe_json(byte_level.clone(), json!(["a b"])));
    assert!(valid.is_ok(), "the well-formed file loads: {valid:?}");
    check(Bpe::from_tokenizer_json_str(&bpe_json(json!({"type": "Metaspace"}), json!(["a b"]))), "pre_tokenizer");
    check(Bpe::from_tokenizer_json_str(&bpe_json(byte_level.clone(), json!(["a c"]))), "merge 0");
    check(Bpe::from_tokenizer_json_str(&bpe_json(byte_level.clone(), json!(["ab"]))), "not two tokens");
    check(Bpe::from_tokenizer_json_str(&json!({"model": {"type": "WordPiece"}}).to_string()), "not BPE");
    // Found by `cargo xtask fuzz tokenizer_json`: one id near u32::MAX used to size a table of
    // that many slots (an abort on 96 GB), through both loaders.
    check(
        Bpe::from_tokenizer_json_str(&bpe_json(byte_level.clone(), json!([])).replace("\"ab\":2", "\"ab\":4000000000")),
        "out of range",
    );
    let real: Value = serde_json::from_str(&std::fs::read_to_string(minilm_json()).unwrap()).unwrap();
    let mut hostile_id = real.clone();
    hostile_id["model"]["vocab"]["[UNK]"] = json!(4000000000u64);
    match WordPiece::from_tokenizer_json_str(&hostile_id.to_string()) {
        Err(Error::TokenizerDefinition { reason, .. }) => assert!(reason.contains("out of range"), "{reason}"),
        other => panic!("expected a definition error, got {other:?}"),
    }
    // A fixed padding of billions would be allocated at every encode: refused at load.
    let mut huge_pad = real;
    huge_pad["padding"]["strategy"] = json!({"Fixed": 4000000000u64});
    assert!(WordPiece::from_tokenizer_json_str(&huge_pad.to_string()).is_err());
    check(Bpe::new(Vec::new(), &[], BpeConfig::default()), "empty");
    check(
        Bpe::new(vec!["a".into()], &[], BpeConfig { special_tokens: vec!["<s>".into()], ..BpeConfig::default() }),
        "<s>",
    );

    match WordPiece::from_vocab_txt_str("hello\nworld\n", WordPieceConfig::default()) {
        Err(Error::TokenizerDefinition { reason, .. }) => assert!(reason.contains("[UNK]"), "{reason}"),
        other => panic!("expected a definition error, got {other:?}"),
    }
    assert!(matches!(
        WordPiece::from_vocab_txt("/nonexistent/vocab.txt", WordPieceConfig::default()),
        Err(Error::TokenizerIo { .. })
    ));
    assert!(matches!(Bpe::from_tokenizer_json("/nonexistent/tokenizer.json"), Err(Error::TokenizerIo { .. })));
    assert!(matches!(
        WordPiece::new(
            minilm().tokens().to_vec(),
            WordPieceConfig { max_length: Some(1), ..WordPieceConfig::default() }
        ),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        train_bpe(&["text"], &TrainConfig { vocab_size: 0, ..TrainConfig::default() }),
        Err(Error::InvalidParameter(_))
    ));
}

#[test]
fn unknown_ids_are_typed_errors() {
    let bpe = smollm2();
    let n = bpe.vocab_size() as u32;
    assert!(matches!(bpe.decode(&[0, n]), Err(Error::UnknownTokenId { id, .. }) if id == n));
    assert!(matches!(bpe.decode_bytes(&[u32::MAX]), Err(Error::UnknownTokenId { .. })));
    let wp = minilm();
    assert!(matches!(wp.decode(&[30_522]), Err(Error::UnknownTokenId { id: 30_522, vocab_size: 30_522 })));
}
