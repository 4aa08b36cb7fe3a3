//! Hidden tests of week c4w1 (LLM serving and tokenization): checked against the peers' fixtures
//! (`fixtures/`, made by `fixtures/make_fixtures.py` with the `gguf` and `tokenizers` Python
//! packages), the production `kernels` (GGUF reader, quant, tokenize, llm), the real
//! SmolLM2-135M file, hand-built hostile inputs and statistical properties.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use c4w1_llm_serving as lab;
use kernels::formats::gguf::{Gguf, MetadataArray, MetadataValue};
use kernels::llm::{AttentionShape, SamplerConfig};
use kernels::quant::QuantFormat;
use lab::Error;
use lab::gguf::{Array, Value, ValueType};

// ---------------------------------------------------------------------------------------------
// Fixtures, the real model, and converters to the lab's types.

const TINY_GGUF: &[u8] = include_bytes!("fixtures/tiny.gguf");
const TINY_JSON: &str = include_str!("fixtures/tiny.json");
const HF_BPE_JSON: &str = include_str!("fixtures/hf_bpe.json");
const CORPUS: &str = include_str!("fixtures/corpus.txt");
const QUANT_TSV: &str = include_str!("fixtures/quant.tsv");

/// The peer's blocks and dequantised values of one quant fixture (by name, see quant.tsv).
fn quant_fixture(name: &str) -> (QuantFormat, Vec<u8>, Vec<f32>) {
    let files: &[(&str, &[u8], &[u8])] = &[
        (
            "real_q8_0_token_embd",
            include_bytes!("fixtures/real_q8_0_token_embd.blocks"),
            include_bytes!("fixtures/real_q8_0_token_embd.f32"),
        ),
        (
            "real_q4_1_blk0_attn_k",
            include_bytes!("fixtures/real_q4_1_blk0_attn_k.blocks"),
            include_bytes!("fixtures/real_q4_1_blk0_attn_k.f32"),
        ),
        (
            "real_q4_1_blk29_ffn_down",
            include_bytes!("fixtures/real_q4_1_blk29_ffn_down.blocks"),
            include_bytes!("fixtures/real_q4_1_blk29_ffn_down.f32"),
        ),
        ("rand_q8_0", include_bytes!("fixtures/rand_q8_0.blocks"), include_bytes!("fixtures/rand_q8_0.f32")),
        ("rand_q4_0", include_bytes!("fixtures/rand_q4_0.blocks"), include_bytes!("fixtures/rand_q4_0.f32")),
        ("rand_q4_1", include_bytes!("fixtures/rand_q4_1.blocks"), include_bytes!("fixtures/rand_q4_1.f32")),
        ("quant_q8_0", include_bytes!("fixtures/quant_q8_0.blocks"), include_bytes!("fixtures/quant_q8_0.f32")),
        ("quant_q4_0", include_bytes!("fixtures/quant_q4_0.blocks"), include_bytes!("fixtures/quant_q4_0.f32")),
        ("quant_q4_1", include_bytes!("fixtures/quant_q4_1.blocks"), include_bytes!("fixtures/quant_q4_1.f32")),
    ];
    let line = QUANT_TSV.lines().find(|l| l.split('\t').next() == Some(name)).expect("fixture in quant.tsv");
    let format = match line.split('\t').nth(1) {
        Some("Q8_0") => QuantFormat::Q8_0,
        Some("Q4_0") => QuantFormat::Q4_0,
        Some("Q4_1") => QuantFormat::Q4_1,
        other => panic!("unknown format {other:?} in quant.tsv"),
    };
    let (_, blocks, values) = files.iter().find(|f| f.0 == name).expect("fixture files");
    let values = values.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (format, blocks.to_vec(), values)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("fixture JSON")
}

fn smollm2_path() -> PathBuf {
    datasets::models::file_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The real model's bytes (98 MB) and kernels' reading of them.
fn smollm2() -> (Vec<u8>, Gguf) {
    let path = smollm2_path();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let reference = Gguf::open(&path).expect("kernels reads SmolLM2");
    (bytes, reference)
}

fn value_type(name: &str) -> ValueType {
    match name {
        "UINT8" => ValueType::U8,
        "INT8" => ValueType::I8,
        "UINT16" => ValueType::U16,
        "INT16" => ValueType::I16,
        "UINT32" => ValueType::U32,
        "INT32" => ValueType::I32,
        "FLOAT32" => ValueType::F32,
        "BOOL" => ValueType::Bool,
        "STRING" => ValueType::String,
        "ARRAY" => ValueType::Array,
        "UINT64" => ValueType::U64,
        "INT64" => ValueType::I64,
        "FLOAT64" => ValueType::F64,
        other => panic!("unknown type {other} in tiny.json"),
    }
}

/// A value of tiny.json (the gguf package's reading) in the lab's terms.
fn from_json(v: &serde_json::Value) -> Value {
    let x = &v["value"];
    match v["type"].as_str().unwrap_or_default() {
        "UINT8" => Value::U8(x.as_u64().unwrap() as u8),
        "INT8" => Value::I8(x.as_i64().unwrap() as i8),
        "UINT16" => Value::U16(x.as_u64().unwrap() as u16),
        "INT16" => Value::I16(x.as_i64().unwrap() as i16),
        "UINT32" => Value::U32(x.as_u64().unwrap() as u32),
        "INT32" => Value::I32(x.as_i64().unwrap() as i32),
        "FLOAT32" => Value::F32(x.as_f64().unwrap() as f32),
        "BOOL" => Value::Bool(x.as_bool().unwrap()),
        "STRING" => Value::String(x.as_str().unwrap().to_string()),
        "UINT64" => Value::U64(x.as_u64().unwrap()),
        "INT64" => Value::I64(x.as_i64().unwrap()),
        "FLOAT64" => Value::F64(x.as_f64().unwrap()),
        "ARRAY" => Value::Array(Array {
            element: value_type(v["element"].as_str().unwrap()),
            items: v["items"].as_array().unwrap().iter().map(from_json).collect(),
        }),
        other => panic!("unknown type {other} in tiny.json"),
    }
}

/// A value as kernels reads it, in the lab's terms.
fn from_kernels(v: &MetadataValue) -> Value {
    use MetadataValue as M;
    match v {
        M::U8(x) => Value::U8(*x),
        M::I8(x) => Value::I8(*x),
        M::U16(x) => Value::U16(*x),
        M::I16(x) => Value::I16(*x),
        M::U32(x) => Value::U32(*x),
        M::I32(x) => Value::I32(*x),
        M::F32(x) => Value::F32(*x),
        M::Bool(x) => Value::Bool(*x),
        M::String(x) => Value::String(x.clone()),
        M::Array(a) => Value::Array(array_from_kernels(a)),
        M::U64(x) => Value::U64(*x),
        M::I64(x) => Value::I64(*x),
        M::F64(x) => Value::F64(*x),
    }
}

fn array_from_kernels(a: &MetadataArray) -> Array {
    use MetadataArray as A;
    fn each<T: Copy>(element: ValueType, v: &[T], f: impl Fn(T) -> Value) -> Array {
        Array { element, items: v.iter().map(|&x| f(x)).collect() }
    }
    match a {
        A::U8(v) => each(ValueType::U8, v, Value::U8),
        A::I8(v) => each(ValueType::I8, v, Value::I8),
        A::U16(v) => each(ValueType::U16, v, Value::U16),
        A::I16(v) => each(ValueType::I16, v, Value::I16),
        A::U32(v) => each(ValueType::U32, v, Value::U32),
        A::I32(v) => each(ValueType::I32, v, Value::I32),
        A::F32(v) => each(ValueType::F32, v, Value::F32),
        A::Bool(v) => each(ValueType::Bool, v, Value::Bool),
        A::U64(v) => each(ValueType::U64, v, Value::U64),
        A::I64(v) => each(ValueType::I64, v, Value::I64),
        A::F64(v) => each(ValueType::F64, v, Value::F64),
        A::String(v) => {
            Array { element: ValueType::String, items: v.iter().map(|s| Value::String(s.clone())).collect() }
        }
        A::Array(v) => {
            Array { element: ValueType::Array, items: v.iter().map(|a| Value::Array(array_from_kernels(a))).collect() }
        }
    }
}

/// Compares two metadata lists entry by entry, with a readable message for the first difference.
fn assert_same_metadata(got: &[(String, Value)], want: &[(String, Value)], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.0, w.0, "{what}: key of metadata entry {i}");
        if g.1 != w.1 {
            let show = |v: &Value| {
                let s = format!("{v:?}");
                if s.chars().count() > 300 { format!("{}…", s.chars().take(300).collect::<String>()) } else { s }
            };
            panic!("{what}: value of {:?} differs:\n  got  {}\n  want {}", g.0, show(&g.1), show(&w.1));
        }
    }
    assert_eq!(got.len(), want.len(), "{what}: number of metadata entries");
}

/// Runs `f`, turning a panic into a test failure that says which input caused it.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => panic!("{what}: the parser panicked (it must return an Error instead)"),
    }
}

/// A GGUF file assembled by hand, for hostile inputs.
struct Builder {
    version: u32,
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    alignment: usize,
    data: Vec<u8>,
}

fn gstr(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend(s);
    out
}

impl Builder {
    fn new() -> Builder {
        Builder {
            version: 3,
            kv: Vec::new(),
            n_kv: 0,
            infos: Vec::new(),
            n_tensors: 0,
            alignment: 32,
            data: Vec::new(),
        }
    }

    /// A metadata entry with raw value bytes.
    fn kv(mut self, key: &str, ty: u32, value: &[u8]) -> Builder {
        self.kv.extend(gstr(key.as_bytes()));
        self.kv.extend(ty.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
        self
    }

    fn alignment(mut self, a: u32) -> Builder {
        self.alignment = a as usize;
        self.kv("general.alignment", 4, &a.to_le_bytes())
    }

    fn tensor(mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Builder {
        self.infos.extend(gstr(name.as_bytes()));
        self.infos.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(ty.to_le_bytes());
        self.infos.extend(offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }

    fn data(mut self, n: usize) -> Builder {
        self.data = (0..n).map(|i| (i * 31 % 251) as u8).collect();
        self
    }

    fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.infos);
        out.resize(out.len().next_multiple_of(self.alignment.max(1)), 0);
        out.extend(&self.data);
        out
    }
}

/// Array value bytes: element type, length, then `body`.
fn array_bytes(element: u32, len: u64, body: &[u8]) -> Vec<u8> {
    let mut out = element.to_le_bytes().to_vec();
    out.extend(len.to_le_bytes());
    out.extend(body);
    out
}

fn expect_err<T: std::fmt::Debug>(got: lab::Result<T>, what: &str, ok: impl Fn(&Error) -> bool, want: &str) {
    match got {
        Err(e) if ok(&e) => {}
        other => panic!("{what}: expected {want}, got {other:?}"),
    }
}

fn truncated(e: &Error) -> bool {
    matches!(e, Error::Truncated { .. })
}

fn malformed(e: &Error) -> bool {
    matches!(e, Error::Malformed { .. })
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Asserts bit-identical values, naming the first differing element.
fn assert_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of values");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: element {i} (block {}, position {}) is {:e} ({:#010x}), the reference gives {:e} ({:#010x})",
            i / 32,
            i % 32,
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

fn lab_dequantize(format: QuantFormat, blocks: &[u8]) -> Vec<f32> {
    let mut out = vec![f32::NAN; blocks.len() / format.block_bytes() * format.block_len()];
    lab::quant::dequantize(format, blocks, &mut out).unwrap_or_else(|e| panic!("dequantising {format}: {e}"));
    out
}

/// Deterministic floats in [-1, 1) from a 64-bit LCG.
fn floats(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn corpus_lines() -> Vec<&'static str> {
    CORPUS.lines().collect()
}

fn pre_tokenizer(name: &str) -> lab::bpe::PreTokenizer {
    match name {
        "Gpt2" => lab::bpe::PreTokenizer::Gpt2,
        "DigitsThenGpt2" => lab::bpe::PreTokenizer::DigitsThenGpt2,
        other => panic!("unknown pre-tokenizer {other}"),
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().expect("array").iter().map(|s| s.as_str().expect("string").to_string()).collect()
}

fn merges_of(v: &serde_json::Value) -> Vec<(String, String)> {
    v.as_array()
        .expect("merges")
        .iter()
        .map(|m| (m[0].as_str().unwrap().to_string(), m[1].as_str().unwrap().to_string()))
        .collect()
}

/// The lab's tokenizer over SmolLM2's vocabulary and merges (read by kernels, so that only the
/// encoder is under test), and kernels' tokenizer.
fn smollm2_tokenizers() -> (lab::bpe::Tokenizer, kernels::tokenize::Bpe) {
    let gguf = Gguf::open(smollm2_path()).expect("kernels reads SmolLM2");
    let reference = kernels::tokenize::Bpe::from_gguf(&gguf).expect("kernels' tokenizer");
    let tokens = gguf.get_string_array("tokenizer.ggml.tokens").expect("tokens").to_vec();
    let merges = kernels::tokenize::parse_merge_lines(gguf.get_string_array("tokenizer.ggml.merges").expect("merges"))
        .expect("merge lines");
    let tok = lab::bpe::Tokenizer::new(tokens, merges, lab::bpe::PreTokenizer::DigitsThenGpt2)
        .expect("the lab builds SmolLM2's tokenizer");
    (tok, reference)
}

/// Texts that exercise the pre-tokeniser and the merges: the corpus, whitespace runs, digits,
/// long words, other scripts, emoji, special-token look-alikes.
fn tricky_texts() -> Vec<String> {
    let mut texts: Vec<String> = corpus_lines().into_iter().map(String::from).collect();
    texts.extend(
        [
            "",
            " ",
            "   \n\n\t  x",
            "a",
            "Hello,   world!!!  ",
            "don't I'll we've they're it's",
            "3.14159 2024-05-23 1,000,000 ٣٤٥ ５６",
            "<|im_start|>user\nHi<|im_end|>",
            "supercalifragilisticexpialidocious antidisestablishmentarianism",
            "日本語のテキストと русский текст και ελληνικά",
            "🦀🚀👩‍👩‍👧‍👦 ZWJ and emoji",
            "\u{0}\u{1}\u{7f} control \u{200b}zero width",
            "tabs\tand\r\nwindows\r\nlines",
            "bytes SmolLM2 has no token for: \u{4}\u{13} \u{744bc} \u{fffff}",
        ]
        .map(String::from),
    );
    texts.push("a".repeat(300));
    texts.push("ab".repeat(200));
    texts.push(" ".repeat(129) + "x");
    texts
}

/// Seeded strings of random code points from several Unicode ranges (valid UTF-8 always).
fn random_unicode(n: usize, seed: u64) -> Vec<String> {
    let ranges: &[(u32, u32)] = &[
        (0x20, 0x7E),
        (0x0, 0x20),
        (0xA0, 0x24F),
        (0x370, 0x3FF),
        (0x400, 0x4FF),
        (0x4E00, 0x4FFF),
        (0x1F300, 0x1F6FF),
        (0x10000, 0x10FFFF),
    ];
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as u32
    };
    (0..n)
        .map(|_| {
            let len = next() % 40;
            (0..len)
                .filter_map(|_| {
                    let (lo, hi) = ranges[(next() as usize) % ranges.len()];
                    char::from_u32(lo + next() % (hi - lo + 1))
                })
                .collect()
        })
        .collect()
}

/// The reference distribution of the sampling spec, in f64.
fn reference_probabilities(logits: &[f32], c: SamplerConfig) -> Vec<(u32, f64)> {
    if c.temperature <= 0.0 || c.top_k == 1 {
        return vec![(kernels::llm::argmax(logits), 1.0)];
    }
    let mut kept: Vec<(u32, f32)> =
        logits.iter().enumerate().filter(|(_, l)| !l.is_nan()).map(|(i, &l)| (i as u32, l)).collect();
    kept.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if c.top_k > 0 {
        kept.truncate(c.top_k);
    }
    let max = kept[0].1;
    let w: Vec<f64> = kept.iter().map(|&(_, l)| ((l as f64 - max as f64) / c.temperature as f64).exp()).collect();
    let total: f64 = w.iter().sum();
    let mut cut = w.len();
    if c.top_p < 1.0 {
        let mut mass = 0.0;
        for (i, x) in w.iter().enumerate() {
            mass += x / total;
            assert!((mass - c.top_p as f64).abs() > 1e-4, "test set-up: cumulative mass too close to top_p");
            if mass >= c.top_p as f64 {
                cut = i + 1;
                break;
            }
        }
    }
    let kept_total: f64 = w[..cut].iter().sum();
    kept[..cut].iter().zip(&w).filter(|(_, x)| **x > 0.0).map(|(&(id, _), x)| (id, x / kept_total)).collect()
}

/// SplitMix64, as the lab's given generator (the test's own copy).
fn splitmix_f64(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn sampler(temperature: f32, top_k: usize, top_p: f32, seed: u64) -> lab::sampling::Sampler {
    lab::sampling::Sampler::new(SamplerConfig { temperature, top_k, top_p, seed })
}

graded! {
    // ------------------------------------------------------------------ c4w1.gguf-header

    /// The metadata of a file written by the gguf Python package equals the package's reading (every type, nested
    /// arrays), in v3 and v2; other versions are refused.
    fn header_of_the_gguf_package_file_matches_its_reading() {
        let doc = json(TINY_JSON);
        let want: Vec<(String, Value)> = doc["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["key"].as_str().unwrap().to_string(), from_json(m)))
            .collect();
        let h = lab::gguf::parse_header(TINY_GGUF)
            .unwrap_or_else(|e| panic!("tiny.gguf (written by the gguf package): {e}"));
        assert_eq!(h.version, 3, "version of tiny.gguf");
        assert_eq!(h.tensor_count, doc["tensor_count"].as_u64().unwrap(), "tensor_count of tiny.gguf");
        assert_same_metadata(&h.metadata, &want, "tiny.gguf against the gguf package");
        let reference = Gguf::parse(TINY_GGUF).expect("kernels reads tiny.gguf");
        let from_k: Vec<(String, Value)> =
            reference.metadata_entries().map(|(k, v)| (k.to_string(), from_kernels(v))).collect();
        assert_same_metadata(&h.metadata, &from_k, "tiny.gguf against kernels");

        let mut v2 = TINY_GGUF.to_vec();
        v2[4..8].copy_from_slice(&2u32.to_le_bytes());
        let h2 = lab::gguf::parse_header(&v2)
            .unwrap_or_else(|e| panic!("version 2 has the same layout and must parse: {e}"));
        assert_eq!((h2.version, h2.metadata.len()), (2, want.len()), "version 2 file");
        for version in [0u32, 1, 4, 0x0300_0000] {
            let mut bad = TINY_GGUF.to_vec();
            bad[4..8].copy_from_slice(&version.to_le_bytes());
            let got = lab::gguf::parse_header(&bad);
            assert_eq!(
                got.as_ref().err(),
                Some(&Error::UnsupportedVersion(version)),
                "version {version:#x} (0x03000000 is a big-endian v3 file)"
            );
        }
        for magic in [*b"GGML", *b"gguf", *b"FUGG", [0, 0, 0, 0]] {
            let mut bad = TINY_GGUF.to_vec();
            bad[..4].copy_from_slice(&magic);
            assert_eq!(lab::gguf::parse_header(&bad).err(), Some(Error::BadMagic { found: magic }), "magic {magic:?}");
        }
    }

    /// The real SmolLM2 header (33 entries, 49,152 tokens, 48,900 merges) equals kernels' reading.
    fn header_of_smollm2_equals_kernels() {
        let (bytes, reference) = smollm2();
        let h = lab::gguf::parse_header(&bytes).unwrap_or_else(|e| panic!("SmolLM2: {e}"));
        assert_eq!(h.version, reference.version(), "version");
        assert_eq!(h.tensor_count, reference.tensor_infos().len() as u64, "tensor_count");
        let want: Vec<(String, Value)> =
            reference.metadata_entries().map(|(k, v)| (k.to_string(), from_kernels(v))).collect();
        assert_same_metadata(&h.metadata, &want, "SmolLM2 against kernels");
        let tokens = h.get("tokenizer.ggml.tokens").and_then(|v| v.as_strings()).expect("tokenizer.ggml.tokens");
        assert_eq!((tokens.len(), tokens[1]), (49_152, "<|im_start|>"), "the vocabulary");
    }

    /// Absurd lengths and counts, unknown types, bad bools, invalid UTF-8, duplicate keys, arrays nested a hundred
    /// thousand deep, every prefix and random byte flips: typed errors, never a panic or a huge allocation.
    fn header_rejects_hostile_inputs_without_panicking() {
        let check = |what: &str, bytes: Vec<u8>, ok: fn(&Error) -> bool, want: &str| {
            let got = no_panic(what, || lab::gguf::parse_header(&bytes));
            expect_err(got, what, ok, want);
        };
        check(
            "a string value of length u64::MAX",
            Builder::new().kv("k", 8, &u64::MAX.to_le_bytes()).build(),
            truncated,
            "Error::Truncated",
        );
        // The fixed header alone (24 bytes): magic, version 3, no tensors, no metadata.
        let bare = || Builder::new().build()[..24].to_vec();
        let mut key = bare();
        key[16..24].copy_from_slice(&1u64.to_le_bytes());
        key.extend(u64::MAX.to_le_bytes());
        check("a key of length u64::MAX", key, truncated, "Error::Truncated");
        let mut many = bare();
        many[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        check("metadata_kv_count = u64::MAX with no entries", many, truncated, "Error::Truncated");
        check(
            "an array of 2^61 u64 (its byte size overflows)",
            Builder::new().kv("k", 9, &array_bytes(10, 1 << 61, &[])).build(),
            truncated,
            "Error::Truncated",
        );
        check(
            "an array of 2^40 strings",
            Builder::new().kv("k", 9, &array_bytes(8, 1 << 40, &gstr(b"x"))).build(),
            truncated,
            "Error::Truncated",
        );
        check(
            "an array of 2^40 arrays",
            Builder::new().kv("k", 9, &array_bytes(9, 1 << 40, &array_bytes(0, 0, &[]))).build(),
            truncated,
            "Error::Truncated",
        );
        check("value type 13", Builder::new().kv("k", 13, &[0; 8]).build(), malformed, "Error::Malformed");
        check(
            "array element type 99",
            Builder::new().kv("k", 9, &array_bytes(99, 1, &[0; 8])).build(),
            malformed,
            "Error::Malformed",
        );
        check("a bool of value 2", Builder::new().kv("k", 7, &[2]).build(), malformed, "Error::Malformed");
        check(
            "a bool array holding 7",
            Builder::new().kv("k", 9, &array_bytes(7, 3, &[1, 0, 7])).build(),
            malformed,
            "Error::Malformed",
        );
        check(
            "a string value that is not UTF-8",
            Builder::new().kv("k", 8, &gstr(&[0x66, 0xFF, 0xFE])).build(),
            malformed,
            "Error::Malformed",
        );
        check(
            "a key that is not UTF-8 (a lone continuation byte)",
            Builder::new()
                .kv("\u{80}", 4, &[0; 4])
                .build()
                .into_iter()
                .map(|b| if b == 0xC2 { 0x20 } else { b })
                .collect(),
            malformed,
            "Error::Malformed",
        );
        check(
            "a duplicate key",
            Builder::new().kv("k", 4, &[1, 0, 0, 0]).kv("k", 4, &[2, 0, 0, 0]).build(),
            malformed,
            "Error::Malformed",
        );

        // Nesting: 8 levels are fine, 9 are malformed, 100,000 must not overflow the stack.
        let nest = |levels: usize| {
            let mut inner = array_bytes(0, 1, &[42]);
            for _ in 1..levels {
                inner = array_bytes(9, 1, &inner);
            }
            Builder::new().kv("deep", 9, &inner).build()
        };
        let ok = no_panic("8 nested arrays", || lab::gguf::parse_header(&nest(8)));
        assert!(ok.is_ok(), "8 nested arrays are allowed (MAX_ARRAY_DEPTH), got {ok:?}");
        check("9 nested arrays", nest(9), malformed, "Error::Malformed");
        let mut deep = Vec::with_capacity(100_000 * 12);
        for _ in 0..100_000 {
            deep.extend(9u32.to_le_bytes());
            deep.extend(1u64.to_le_bytes());
        }
        check("100,000 nested arrays", Builder::new().kv("deep", 9, &deep).build(), malformed, "Error::Malformed");

        // Empty arrays keep their element type.
        let h = lab::gguf::parse_header(&Builder::new().kv("e", 9, &array_bytes(8, 0, &[])).build())
            .expect("an empty array is valid");
        assert_eq!(
            h.get("e"),
            Some(&Value::Array(Array { element: ValueType::String, items: vec![] })),
            "an empty array of strings"
        );

        // Every strict prefix of the metadata of the gguf package's file.
        let end = lab::gguf::parse_header(TINY_GGUF).expect("tiny.gguf").metadata_end;
        for cut in 0..end {
            let got =
                no_panic(&format!("the first {cut} bytes of tiny.gguf"), || lab::gguf::parse_header(&TINY_GGUF[..cut]));
            expect_err(got, &format!("the first {cut} bytes of tiny.gguf"), truncated, "Error::Truncated");
        }
        // Random byte flips: any result is fine, a panic is not.
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for round in 0..3000 {
            let mut bytes = TINY_GGUF[..end].to_vec();
            for _ in 0..1 + round % 4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let at = 4 + (s as usize) % (end - 4);
                bytes[at] = (s >> 32) as u8;
            }
            let _ = no_panic(&format!("tiny.gguf with random bytes changed (round {round})"), || {
                lab::gguf::parse_header(&bytes).is_ok()
            });
        }
    }

    // ------------------------------------------------------------------ c4w1.gguf-tensors

    /// The tensor table, alignment (64) and data offset of the gguf package's file; every prefix that cuts tensor data
    /// is Truncated.
    fn tensor_table_of_the_gguf_package_file_matches_its_reading() {
        let doc = json(TINY_JSON);
        let file = lab::gguf::parse(TINY_GGUF).unwrap_or_else(|e| panic!("tiny.gguf: {e}"));
        assert_eq!(file.alignment, 64, "general.alignment of tiny.gguf");
        assert_eq!(file.data_offset, doc["data_offset"].as_u64().unwrap(), "data offset of tiny.gguf");
        let want = doc["tensors"].as_array().unwrap();
        assert_eq!(file.tensors.len(), want.len(), "number of tensors");
        for (t, w) in file.tensors.iter().zip(want) {
            let dims: Vec<u64> = w["dims"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
            assert_eq!(t.name, w["name"].as_str().unwrap(), "tensor order");
            assert_eq!(t.dims, dims, "dims of {}", t.name);
            assert_eq!(t.ggml_type as u64, w["ggml_type"].as_u64().unwrap(), "type of {}", t.name);
            assert_eq!(t.offset, w["offset"].as_u64().unwrap(), "offset of {}", t.name);
            assert_eq!(t.n_bytes, w["n_bytes"].as_u64().unwrap(), "byte size of {}", t.name);
            assert_eq!(t.n_elements, dims.iter().product::<u64>(), "element count of {}", t.name);
        }
        let data_end = file.tensors.iter().map(|t| file.data_offset + t.offset + t.n_bytes).max().unwrap() as usize;
        for cut in 0..data_end {
            let what =
                format!("the first {cut} of tiny.gguf's {} bytes (tensor data ends at {data_end})", TINY_GGUF.len());
            let got = no_panic(&what, || lab::gguf::parse(&TINY_GGUF[..cut]));
            expect_err(got, &what, truncated, "Error::Truncated");
        }
        assert!(
            lab::gguf::parse(&TINY_GGUF[..data_end]).is_ok(),
            "a file that ends right after the last tensor's data is complete"
        );
    }

    /// All 272 tensors of SmolLM2 (names, dims, types, offsets, sizes) and its data offset equal kernels'.
    fn tensor_table_of_smollm2_equals_kernels() {
        let (bytes, reference) = smollm2();
        let file = lab::gguf::parse(&bytes).unwrap_or_else(|e| panic!("SmolLM2: {e}"));
        assert_eq!(file.alignment, reference.alignment(), "alignment");
        assert_eq!(file.data_offset, reference.data_offset() as u64, "data offset");
        assert_eq!(file.tensors.len(), reference.tensor_infos().len(), "number of tensors");
        for (t, w) in file.tensors.iter().zip(reference.tensor_infos()) {
            assert_eq!(
                (&t.name, &t.dims, t.ggml_type, t.offset, t.n_elements, t.n_bytes),
                (&w.name, &w.dims, w.ggml_type.id(), w.offset, w.n_elements, w.n_bytes),
                "tensor {} (name, dims, type, offset, elements, bytes)",
                w.name
            );
        }
        let embd = file.tensor_data(&bytes, "token_embd.weight").expect("token_embd bytes");
        assert_eq!(embd, reference.tensor("token_embd.weight").unwrap().bytes, "bytes of token_embd.weight");
    }

    /// Malformed tensor entries (too many dims, unknown type, misaligned, ragged rows, overflowing dims, overlap,
    /// duplicates, bad alignment) and data past the end.
    fn tensor_table_rejects_malformed_entries() {
        let check = |what: &str, b: Builder, ok: fn(&Error) -> bool, want: &str| {
            let bytes = b.build();
            let got = no_panic(what, || lab::gguf::parse(&bytes));
            expect_err(got, what, ok, want);
        };
        let fine =
            lab::gguf::parse(&Builder::new().tensor("a", &[32, 2], 8, 0).tensor("b", &[4], 0, 96).data(112).build());
        assert!(fine.is_ok(), "a valid two-tensor file must parse, got {fine:?}");
        check(
            "5 dimensions",
            Builder::new().tensor("a", &[1, 1, 1, 1, 1], 0, 0).data(4),
            malformed,
            "Error::Malformed",
        );
        check(
            "n_dims = u32::MAX",
            Builder::new()
                .tensor("a", &[], 0, 0)
                .data(4)
                .tap_infos(|i| i[9..13].copy_from_slice(&u32::MAX.to_le_bytes())),
            malformed,
            "Error::Malformed",
        );
        check("ggml type 99", Builder::new().tensor("a", &[4], 99, 0).data(64), malformed, "Error::Malformed");
        check(
            "an offset that is not a multiple of 32",
            Builder::new().tensor("a", &[4], 0, 16).data(64),
            malformed,
            "Error::Malformed",
        );
        check(
            "a Q4_0 row of 33 elements",
            Builder::new().tensor("a", &[33], 2, 0).data(64),
            malformed,
            "Error::Malformed",
        );
        check(
            "dims 2^40 × 2^40 (the element count overflows)",
            Builder::new().tensor("a", &[1 << 40, 1 << 40], 0, 0).data(64),
            malformed,
            "Error::Malformed",
        );
        check(
            "two tensors sharing bytes",
            Builder::new().tensor("a", &[16], 0, 0).tensor("b", &[16], 0, 32).data(128),
            malformed,
            "Error::Malformed",
        );
        check(
            "a duplicate tensor name",
            Builder::new().tensor("a", &[4], 0, 0).tensor("a", &[4], 0, 32).data(64),
            malformed,
            "Error::Malformed",
        );
        check(
            "general.alignment = 0",
            Builder::new().alignment(0).tensor("a", &[4], 0, 0).data(64),
            malformed,
            "Error::Malformed",
        );
        check(
            "general.alignment = 48",
            Builder::new().alignment(48).tensor("a", &[4], 0, 0).data(64),
            malformed,
            "Error::Malformed",
        );
        check(
            "general.alignment as a u64",
            Builder::new().kv("general.alignment", 10, &64u64.to_le_bytes()).tensor("a", &[4], 0, 0).data(64),
            malformed,
            "Error::Malformed",
        );
        check(
            "data running past the end",
            Builder::new().tensor("a", &[32, 2], 8, 0).data(67),
            truncated,
            "Error::Truncated",
        );
        check(
            "an offset of 2^63",
            Builder::new().tensor("a", &[4], 0, 1 << 63).data(64),
            truncated,
            "Error::Truncated",
        );
        let mut many = Builder::new().build()[..24].to_vec();
        many[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let got = no_panic("tensor_count = u64::MAX", || lab::gguf::parse(&many));
        expect_err(got, "tensor_count = u64::MAX with no entries", truncated, "Error::Truncated");

        // With alignment 128 the data starts at the next multiple of 128.
        let file = lab::gguf::parse(
            &Builder::new().alignment(128).tensor("a", &[4], 0, 0).tensor("b", &[4], 0, 128).data(144).build(),
        )
        .expect("alignment 128");
        assert_eq!((file.alignment, file.data_offset % 128), (128, 0), "data offset with general.alignment = 128");
        assert_eq!(file.tensor("b").map(|t| t.offset), Some(128));
    }

    // ------------------------------------------------------------------ c4w1.dequant-q8

    /// f16_to_f32 is exact for all 65,536 bit patterns (kernels' decoding of a Q8_0 block with d = the pattern and q =
    /// 1).
    fn f16_to_f32_is_exact_for_all_65536_patterns() {
        for bits in 0..=u16::MAX {
            let mut block = bits.to_le_bytes().to_vec();
            block.push(1);
            block.resize(34, 0);
            let want = kernels::quant::dequantize_to_vec(QuantFormat::Q8_0, &block).expect("kernels")[0];
            let got = lab::quant::f16_to_f32(bits);
            if want.is_nan() {
                assert!(got.is_nan(), "f16 {bits:#06x} is a NaN, got {got:e}");
            } else {
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "f16 {bits:#06x}: got {got:e} ({:#010x}), expected {want:e} ({:#010x})",
                    got.to_bits(),
                    want.to_bits()
                );
            }
        }
    }

    /// Q8_0 is bit-identical to the gguf package on real SmolLM2 embedding rows, random blocks with edge scales,
    /// quantised data and tiny.gguf's tensor.
    fn q8_0_matches_the_gguf_package_bit_for_bit() {
        for name in ["real_q8_0_token_embd", "rand_q8_0", "quant_q8_0"] {
            let (format, blocks, want) = quant_fixture(name);
            let mut got = vec![f32::NAN; want.len()];
            lab::quant::dequantize_q8_0(&blocks, &mut got).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_bits(&got, &want, &format!("{name} ({format})"));
        }
        let file = lab::gguf::parse(TINY_GGUF).expect("tiny.gguf");
        let doc = json(TINY_JSON);
        let t = doc["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "q8_0.weight").unwrap();
        let want: Vec<f32> =
            t["f32_bits"].as_array().unwrap().iter().map(|b| f32::from_bits(b.as_u64().unwrap() as u32)).collect();
        let got = lab::quant::dequantize_tensor(&file, TINY_GGUF, "q8_0.weight").expect("q8_0.weight");
        assert_bits(&got, &want, "q8_0.weight of tiny.gguf");
    }

    /// 200 rows of SmolLM2's Q8_0 token embedding equal kernels; ragged input and a wrong output length are typed
    /// errors.
    fn q8_0_matches_kernels_on_smollm2_embeddings_and_rejects_bad_lengths() {
        let gguf = Gguf::open(smollm2_path()).expect("kernels reads SmolLM2");
        let embd = gguf.tensor("token_embd.weight").expect("token_embd.weight");
        let row_bytes = 576 / 32 * 34;
        for row in (0..49_152).step_by(247) {
            let blocks = &embd.bytes[row * row_bytes..(row + 1) * row_bytes];
            let want = kernels::quant::dequantize_to_vec(QuantFormat::Q8_0, blocks).expect("kernels");
            let mut got = vec![f32::NAN; 576];
            lab::quant::dequantize_q8_0(blocks, &mut got).unwrap_or_else(|e| panic!("row {row}: {e}"));
            assert_bits(&got, &want, &format!("token_embd row {row}"));
        }
        let mut out = vec![0.0f32; 64];
        let block = vec![0u8; 68];
        expect_err(
            lab::quant::dequantize_q8_0(&block[..67], &mut out),
            "67 bytes",
            |e| matches!(e, Error::RaggedBlocks { .. }),
            "Error::RaggedBlocks",
        );
        expect_err(
            lab::quant::dequantize_q8_0(&block, &mut out[..63]),
            "2 blocks into 63 floats",
            |e| matches!(e, Error::LengthMismatch { .. }),
            "Error::LengthMismatch",
        );
        assert!(lab::quant::dequantize_q8_0(&[], &mut []).is_ok(), "no blocks into no floats is fine");
    }

    // ------------------------------------------------------------------ c4w1.dequant-q4

    /// Q4_0 is bit-identical to the gguf package (random blocks with edge scales, quantised data, tiny.gguf) and to
    /// kernels on 1,000 quantised blocks.
    fn q4_0_matches_the_gguf_package_bit_for_bit() {
        for name in ["rand_q4_0", "quant_q4_0"] {
            let (_, blocks, want) = quant_fixture(name);
            let mut got = vec![f32::NAN; want.len()];
            lab::quant::dequantize_q4_0(&blocks, &mut got).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_bits(&got, &want, name);
        }
        let file = lab::gguf::parse(TINY_GGUF).expect("tiny.gguf");
        let doc = json(TINY_JSON);
        let t = doc["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "q4_0.weight").unwrap();
        let want: Vec<f32> =
            t["f32_bits"].as_array().unwrap().iter().map(|b| f32::from_bits(b.as_u64().unwrap() as u32)).collect();
        assert_bits(
            &lab::quant::dequantize_tensor(&file, TINY_GGUF, "q4_0.weight").expect("q4_0.weight"),
            &want,
            "q4_0.weight of tiny.gguf",
        );
        let x: Vec<f32> = floats(32_000, 9).iter().enumerate().map(|(i, v)| v * (1.0 + (i / 32 % 50) as f32)).collect();
        let blocks = kernels::quant::quantize(QuantFormat::Q4_0, &x).expect("kernels quantises");
        let want = kernels::quant::dequantize_to_vec(QuantFormat::Q4_0, &blocks).expect("kernels");
        assert_bits(&lab_dequantize(QuantFormat::Q4_0, &blocks), &want, "1,000 Q4_0 blocks quantised by kernels");
    }

    /// Q4_1 is bit-identical to the gguf package on real SmolLM2 rows, random blocks with edge scales and minimums,
    /// quantised data and tiny.gguf.
    fn q4_1_matches_the_gguf_package_bit_for_bit() {
        for name in ["real_q4_1_blk0_attn_k", "real_q4_1_blk29_ffn_down", "rand_q4_1", "quant_q4_1"] {
            let (_, blocks, want) = quant_fixture(name);
            let mut got = vec![f32::NAN; want.len()];
            lab::quant::dequantize_q4_1(&blocks, &mut got).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_bits(&got, &want, name);
        }
        let file = lab::gguf::parse(TINY_GGUF).expect("tiny.gguf");
        let doc = json(TINY_JSON);
        let t = doc["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "q4_1.weight").unwrap();
        let want: Vec<f32> =
            t["f32_bits"].as_array().unwrap().iter().map(|b| f32::from_bits(b.as_u64().unwrap() as u32)).collect();
        assert_bits(
            &lab::quant::dequantize_tensor(&file, TINY_GGUF, "q4_1.weight").expect("q4_1.weight"),
            &want,
            "q4_1.weight of tiny.gguf",
        );
    }

    /// Every attention matrix of SmolLM2's blocks 0, 15 and 29 equals kernels' dequantisation; ragged input is a typed
    /// error.
    fn q4_1_matches_kernels_on_every_smollm2_attention_matrix() {
        let gguf = Gguf::open(smollm2_path()).expect("kernels reads SmolLM2");
        for block in [0, 15, 29] {
            for m in ["attn_q", "attn_k", "attn_v", "attn_output"] {
                let name = format!("blk.{block}.{m}.weight");
                let t = gguf.tensor(&name).expect("tensor");
                let want = t.to_f32().expect("kernels");
                assert_bits(&lab_dequantize(QuantFormat::Q4_1, t.bytes), &want, &name);
            }
        }
        let mut out = vec![0.0f32; 32];
        expect_err(
            lab::quant::dequantize_q4_1(&[0u8; 19], &mut out),
            "19 bytes of Q4_1",
            |e| matches!(e, Error::RaggedBlocks { .. }),
            "Error::RaggedBlocks",
        );
        expect_err(
            lab::quant::dequantize_q4_0(&[0u8; 36], &mut out),
            "2 Q4_0 blocks into 32 floats",
            |e| matches!(e, Error::LengthMismatch { .. }),
            "Error::LengthMismatch",
        );
    }

    // ------------------------------------------------------------------ c4w1.bpe-train

    /// On the course corpus (one text per line), three configurations: vocabulary and merges equal Hugging Face's
    /// BpeTrainer.
    fn train_matches_hugging_face_on_the_corpus() {
        let doc = json(HF_BPE_JSON);
        let lines = corpus_lines();
        for run in doc["runs"].as_array().unwrap() {
            let config = lab::bpe::TrainConfig {
                vocab_size: run["vocab_size"].as_u64().unwrap() as usize,
                min_frequency: run["min_frequency"].as_u64().unwrap(),
                pre_tokenizer: pre_tokenizer(run["pre_tokenizer"].as_str().unwrap()),
            };
            let what = format!(
                "vocab_size {}, min_frequency {}, {:?}",
                config.vocab_size, config.min_frequency, config.pre_tokenizer
            );
            let tok = lab::bpe::train(&lines, &config).unwrap_or_else(|e| panic!("{what}: {e}"));
            let want_merges = merges_of(&run["merges"]);
            let got_merges = tok.merges();
            if let Some(i) = (0..got_merges.len().min(want_merges.len())).find(|&i| got_merges[i] != want_merges[i]) {
                panic!(
                    "{what}: merge {i} is {:?}, Hugging Face learns {:?} (merges before it agree)",
                    got_merges[i], want_merges[i]
                );
            }
            assert_eq!(got_merges.len(), want_merges.len(), "{what}: number of merges");
            assert_eq!(tok.tokens(), strings(&run["tokens"]).as_slice(), "{what}: the vocabulary in id order");
        }
    }

    /// On generated documents and the corpus, with several sizes and both pre-tokenisers, the merges equal kernels'
    /// train_bpe.
    fn train_matches_kernels_on_generated_documents() {
        let mut docs = datasets::text::documents(400, 40, 77);
        docs.extend(corpus_lines().into_iter().map(String::from));
        docs.extend(random_unicode(50, 5));
        for (vocab_size, min_frequency, pre) in [
            (300usize, 0u64, lab::bpe::PreTokenizer::Gpt2),
            (800, 0, lab::bpe::PreTokenizer::DigitsThenGpt2),
            (2000, 3, lab::bpe::PreTokenizer::Gpt2),
        ] {
            let config = lab::bpe::TrainConfig { vocab_size, min_frequency, pre_tokenizer: pre };
            let reference = kernels::tokenize::train_bpe(
                &docs,
                &kernels::tokenize::TrainConfig { vocab_size, min_frequency, pre_tokenizer: pre, ..Default::default() },
            )
            .expect("kernels trains");
            let want: Vec<(String, String)> = reference.merges().map(|(l, r)| (l.to_string(), r.to_string())).collect();
            let spelled: std::collections::HashSet<String> = want.iter().map(|(l, r)| format!("{l}{r}")).collect();
            assert_eq!(spelled.len(), want.len(), "test set-up: no two merges may spell the same string");
            let tok = lab::bpe::train(&docs, &config).unwrap_or_else(|e| panic!("vocab_size {vocab_size}: {e}"));
            let got = tok.merges();
            if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
                panic!("vocab_size {vocab_size}, {pre:?}: merge {i} is {:?}, kernels learns {:?}", got[i], want[i]);
            }
            assert_eq!(
                got.len(),
                want.len(),
                "vocab_size {vocab_size}, min_frequency {min_frequency}: number of merges"
            );
            assert_eq!(tok.tokens(), reference.tokens(), "vocab_size {vocab_size}: the vocabulary in id order");
        }
    }

    /// Training stops when no pair is left, below min_frequency, or at the size asked; a vocabulary below 256 keeps all
    /// bytes.
    fn train_stops_when_no_pair_is_left_or_below_min_frequency() {
        let small = lab::bpe::TrainConfig { vocab_size: 100, ..Default::default() };
        let tok = lab::bpe::train(&["hello world"], &small).expect("trains");
        assert_eq!((tok.vocab_size(), tok.merges().len()), (256, 0), "vocab_size 100 < 256: the byte alphabet alone");
        let tok = lab::bpe::train(&["a b c d", "e"], &lab::bpe::TrainConfig::default()).expect("trains");
        assert_eq!(
            tok.merges().len(),
            3,
            "\"a b c d\" and \"e\" hold three pairs (Ġb, Ġc, Ġd); then nothing is left, got {:?}",
            tok.merges()
        );
        let empty: [&str; 0] = [];
        let tok = lab::bpe::train(&empty, &lab::bpe::TrainConfig::default()).expect("an empty corpus trains");
        assert_eq!(tok.vocab_size(), 256, "an empty corpus gives the byte alphabet");
        let corpus = ["abab abab abab cdcd", "xy"];
        let config = lab::bpe::TrainConfig { vocab_size: 1000, min_frequency: 3, ..Default::default() };
        let got: Vec<(String, String)> = lab::bpe::train(&corpus, &config).expect("trains").merges().to_vec();
        let reference = kernels::tokenize::train_bpe(
            &corpus,
            &kernels::tokenize::TrainConfig { vocab_size: 1000, min_frequency: 3, ..Default::default() },
        )
        .expect("kernels");
        let want: Vec<(String, String)> = reference.merges().map(|(l, r)| (l.to_string(), r.to_string())).collect();
        assert_eq!(got, want, "min_frequency 3 on {corpus:?}");
        let tok = lab::bpe::train(&corpus_lines(), &lab::bpe::TrainConfig { vocab_size: 300, ..Default::default() })
            .expect("trains");
        assert_eq!(tok.vocab_size(), 300, "training stops at exactly vocab_size tokens");
    }

    /// Ties in count go to the smallest (left id, right id); a pair inside a repeated letter counts once per position.
    fn train_breaks_ties_by_the_smallest_pair() {
        let check = |corpus: &[&str], n: usize, what: &str| {
            let config = lab::bpe::TrainConfig { vocab_size: 256 + n, ..Default::default() };
            let got: Vec<(String, String)> = lab::bpe::train(corpus, &config).expect("trains").merges().to_vec();
            let reference = kernels::tokenize::train_bpe(
                corpus,
                &kernels::tokenize::TrainConfig { vocab_size: 256 + n, ..Default::default() },
            )
            .expect("kernels");
            let want: Vec<(String, String)> = reference.merges().map(|(l, r)| (l.to_string(), r.to_string())).collect();
            assert_eq!(got, want, "{what}");
        };
        check(&["zy", "ba", "dc"], 3, "three pairs seen once each: (b,a), then (d,c), then (z,y) (smallest ids first)");
        check(&["aaaa", "aaaa", "bbb"], 3, "(a,a) occurs 3×2 = 6 times in two copies of aaaa, (b,b) 2 times");
        check(&["ÿý", "!~"], 2, "ids follow the code points of the byte characters (\"!\" is id 0)");
        check(&["Ā", "\u{0}\u{1}"], 2, "bytes 0x00 and 0x01 map to Ā and ā, ids after every printable byte");
    }

    // ------------------------------------------------------------------ c4w1.bpe-encode

    /// With Hugging Face's trained vocabularies and merges (not your training), the ids of six texts equal Hugging
    /// Face's.
    fn encode_matches_hugging_face_with_the_trained_vocabularies() {
        let doc = json(HF_BPE_JSON);
        for run in doc["runs"].as_array().unwrap() {
            let pre = pre_tokenizer(run["pre_tokenizer"].as_str().unwrap());
            let tok =
                lab::bpe::Tokenizer::new(strings(&run["tokens"]), merges_of(&run["merges"]), pre).expect("valid parts");
            for e in run["encodings"].as_array().unwrap() {
                let text = e["text"].as_str().unwrap();
                let want: Vec<u32> = e["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect();
                assert_eq!(tok.encode(text), want, "ids of {text:?} (vocabulary of {}, {pre:?})", run["vocab_size"]);
                assert_eq!(tok.decode(&want).expect("known ids"), text, "decode of Hugging Face's ids for {text:?}");
            }
        }
    }

    /// With SmolLM2's 49,152 tokens and 48,900 merges, the ids of the corpus and of tricky texts equal kernels'.
    fn encode_matches_kernels_with_the_smollm2_vocabulary() {
        let (tok, reference) = smollm2_tokenizers();
        for text in tricky_texts() {
            let got = tok.encode(&text);
            let want = reference.encode_ordinary(&text);
            if got != want {
                let show = |ids: &[u32]| {
                    ids.iter().map(|&i| reference.token(i).unwrap_or("?").to_string()).collect::<Vec<_>>()
                };
                panic!("ids of {text:?}:\n  got  {got:?} {:?}\n  want {want:?} {:?}", show(&got), show(&want));
            }
        }
        assert_eq!(tok.encode(" the"), [260], "\" the\" is one token in SmolLM2 (\"Ġthe\")");
    }

    /// Any UTF-8 round-trips exactly (a vocabulary with all 256 bytes); decode_bytes keeps split characters while
    /// decode replaces them; special tokens decode to their text; unknown ids are errors.
    fn decode_round_trips_arbitrary_utf8_and_rejects_unknown_ids() {
        let doc = json(HF_BPE_JSON);
        let run = &doc["runs"][0];
        let full =
            lab::bpe::Tokenizer::new(strings(&run["tokens"]), merges_of(&run["merges"]), lab::bpe::PreTokenizer::Gpt2)
                .expect("valid parts");
        for text in random_unicode(400, 11).into_iter().chain(tricky_texts()) {
            let ids = full.encode(&text);
            assert_eq!(
                full.decode_bytes(&ids).expect("known ids"),
                text.as_bytes(),
                "decode_bytes(encode({text:?})) with all 256 byte tokens"
            );
            assert_eq!(
                full.decode(&ids).expect("known ids"),
                text,
                "decode(encode({text:?})) with all 256 byte tokens"
            );
        }
        // SmolLM2 has no token for 21 byte values (never seen in its training data): text
        // without them round-trips.
        let (tok, reference) = smollm2_tokenizers();
        let covered = |t: &str| {
            t.bytes().all(|b| reference.token_id(&kernels::tokenize::byte_level::bytes_to_string(&[b])).is_some())
        };
        for text in tricky_texts().into_iter().filter(|t| covered(t)) {
            let ids = tok.encode(&text);
            assert_eq!(
                tok.decode(&ids).expect("known ids"),
                text,
                "decode(encode({text:?})) with SmolLM2's vocabulary"
            );
        }
        let crab = reference.encode_ordinary("🦀");
        assert!(crab.len() > 1, "the crab takes several byte tokens in SmolLM2");
        let first = &crab[..1];
        assert_eq!(
            tok.decode_bytes(first).expect("known id"),
            reference.decode_bytes(first).unwrap(),
            "decode_bytes of part of a character gives its raw bytes"
        );
        assert_eq!(tok.decode(first).expect("known id"), "\u{FFFD}", "decode of part of a character gives U+FFFD");
        assert_eq!(
            tok.decode(&[1, 9690, 2]).expect("known ids"),
            reference.decode(&[1, 9690, 2]).unwrap(),
            "special tokens decode to their text"
        );
        for id in [49_152u32, u32::MAX] {
            expect_err(
                tok.decode(&[12, id]),
                &format!("decoding id {id}"),
                |e| matches!(e, Error::UnknownTokenId { .. }),
                "Error::UnknownTokenId",
            );
        }
    }

    // ------------------------------------------------------------------ c4w1.attention

    /// RoPE with SmolLM2's head width and base equals kernels' at positions up to 8,191.
    fn rope_matches_kernels_at_many_positions() {
        let inv_freq = lab::attention::rope_frequencies(64, 100_000.0);
        assert_eq!(inv_freq, kernels::llm::rope_frequencies(64, 100_000.0), "the given rope_frequencies changed");
        let x = floats(9 * 64, 3);
        for pos in [0usize, 1, 2, 17, 100, 1000, 4095, 8191] {
            let (mut got, mut want) = (x.clone(), x.clone());
            lab::attention::rope_in_place(&mut got, pos, &inv_freq);
            kernels::llm::rope_in_place(&mut want, pos, &inv_freq);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6,
                    "position {pos}, element {i} (head {}, pair {}): got {g}, kernels gives {w}",
                    i / 64,
                    i % 64 / 2
                );
            }
        }
        let mut unchanged = x.clone();
        lab::attention::rope_in_place(&mut unchanged, 0, &inv_freq);
        assert_eq!(unchanged, x, "position 0 rotates by angle 0: nothing changes");
    }

    /// Attention equals kernels' for several head layouts (MHA, GQA, MQA) and cache lengths.
    fn attention_matches_kernels_for_gqa_shapes() {
        for (n_heads, n_kv_heads, head_dim) in [(9usize, 3usize, 64usize), (4, 4, 16), (8, 1, 32), (6, 2, 8)] {
            let shape = AttentionShape { n_heads, n_kv_heads, head_dim };
            let kv = n_kv_heads * head_dim;
            for positions in [1usize, 7, 100] {
                let seed = (n_heads * 1000 + positions) as u64;
                let q: Vec<f32> = floats(n_heads * head_dim, seed).iter().map(|v| v * 3.0).collect();
                let keys = floats(positions * kv, seed + 1);
                let values = floats(positions * kv, seed + 2);
                let got = lab::attention::attention(&q, &keys, &values, shape);
                let mut want = vec![0.0f32; q.len()];
                kernels::llm::attention(&q, &keys, &values, shape, &mut want);
                assert_eq!(got.len(), want.len(), "{shape:?}: output length");
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-5 * w.abs().max(0.1),
                        "{shape:?}, {positions} positions, output {i} (head {}): got {g}, kernels gives {w}",
                        i / head_dim
                    );
                }
            }
        }
    }

    /// 24 decoding steps equal kernels over each prefix (causality); huge scores stay finite; softmax sums to 1.
    fn attention_is_causal_and_numerically_stable() {
        let shape = AttentionShape { n_heads: 6, n_kv_heads: 2, head_dim: 16 };
        let inv_freq = lab::attention::rope_frequencies(16, 10_000.0);
        let mut cache = lab::attention::LayerCache::new(32);
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        for pos in 0..24 {
            let q0: Vec<f32> = floats(96, 100 + pos as u64).iter().map(|v| v * 4.0).collect();
            let k0 = floats(32, 200 + pos as u64);
            let v0 = floats(32, 300 + pos as u64);
            let (mut q, mut k) = (q0.clone(), k0.clone());
            let got = lab::attention::decode_step(&mut q, &mut k, &v0, &mut cache, shape, &inv_freq);
            let (mut rq, mut rk) = (q0, k0);
            kernels::llm::rope_in_place(&mut rq, pos, &inv_freq);
            kernels::llm::rope_in_place(&mut rk, pos, &inv_freq);
            keys.extend(&rk);
            values.extend(&v0);
            let mut want = vec![0.0f32; 96];
            kernels::llm::attention(&rq, &keys, &values, shape, &mut want);
            assert_eq!(cache.len(), pos + 1, "after step {pos} the cache holds {} positions", pos + 1);
            assert_eq!(
                cache.keys(),
                keys.as_slice(),
                "step {pos}: the cache must hold the rotated keys of positions 0..={pos}"
            );
            assert_eq!(cache.values(), values.as_slice(), "step {pos}: the cache must hold the values (not rotated)");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(0.1),
                    "step {pos}, output {i}: got {g}, kernels (over positions 0..={pos}) gives {w}"
                );
            }
        }
        // Scores in the thousands: a softmax without the maximum subtracted gives inf/inf = NaN.
        let shape = AttentionShape { n_heads: 2, n_kv_heads: 1, head_dim: 4 };
        let q = [30.0f32, 30.0, 30.0, 30.0, -30.0, 30.0, -30.0, 30.0];
        let keys = [40.0f32, 40.0, 40.0, 40.0, 39.0, 41.0, 40.0, 40.0];
        let values = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let got = lab::attention::attention(&q, &keys, &values, shape);
        let mut want = vec![0.0f32; 8];
        kernels::llm::attention(&q, &keys, &values, shape, &mut want);
        assert!(got.iter().all(|v| v.is_finite()), "scores of ±2400 must still give finite outputs, got {got:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "huge scores: got {got:?}, kernels gives {want:?}");
        }
        let mut x = [1e4f32, 1e4 - 1.0, -1e4, 0.0];
        lab::attention::softmax_in_place(&mut x);
        let sum: f32 = x.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6 && x[0] > x[1] && x[2] == 0.0, "softmax of [1e4, 1e4-1, -1e4, 0] = {x:?}");
        let mut empty: [f32; 0] = [];
        lab::attention::softmax_in_place(&mut empty);
    }

    /// Layer 0 of SmolLM2 on a real prompt (embeddings, RMSNorm, Q/K/V projections computed here): each decoding step
    /// equals kernels.
    fn attention_on_smollm2_layer_0_matches_kernels() {
        let gguf = Gguf::open(smollm2_path()).expect("kernels reads SmolLM2");
        let config = kernels::llm::LlamaConfig::from_gguf(&gguf).expect("config");
        let bpe = kernels::tokenize::Bpe::from_gguf(&gguf).expect("tokenizer");
        let prompt = bpe.encode("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n");
        let (d, kv) = (config.d_model, config.kv_dim());
        let embd = gguf.tensor("token_embd.weight").expect("embeddings");
        let row_bytes = embd.bytes.len() / config.vocab_size;
        let norm = gguf.tensor("blk.0.attn_norm.weight").unwrap().to_f32().unwrap();
        let [wq, wk, wv] = ["attn_q", "attn_k", "attn_v"]
            .map(|m| gguf.tensor(&format!("blk.0.{m}.weight")).unwrap().to_f32().unwrap());
        let matvec = |w: &[f32], x: &[f32]| -> Vec<f32> {
            w.chunks_exact(x.len()).map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum()).collect()
        };
        let shape =
            AttentionShape { n_heads: config.n_heads, n_kv_heads: config.n_kv_heads, head_dim: config.head_dim };
        let inv_freq = kernels::llm::rope_frequencies(config.head_dim, config.rope_base);
        let mut cache = lab::attention::LayerCache::new(kv);
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        let mut worst = 0.0f32;
        for (pos, &token) in prompt.iter().enumerate() {
            let t = token as usize;
            let x =
                kernels::quant::dequantize_to_vec(QuantFormat::Q8_0, &embd.bytes[t * row_bytes..(t + 1) * row_bytes])
                    .unwrap();
            let mut xb = vec![0.0f32; d];
            kernels::simd::rms_norm(&x, &norm, config.rms_eps, &mut xb);
            let (q, k, v) = (matvec(&wq, &xb), matvec(&wk, &xb), matvec(&wv, &xb));
            let (mut lq, mut lk) = (q.clone(), k.clone());
            let got = lab::attention::decode_step(&mut lq, &mut lk, &v, &mut cache, shape, &inv_freq);
            let (mut rq, mut rk) = (q, k);
            kernels::llm::rope_in_place(&mut rq, pos, &inv_freq);
            kernels::llm::rope_in_place(&mut rk, pos, &inv_freq);
            keys.extend(&rk);
            values.extend(&v);
            let mut want = vec![0.0f32; d];
            kernels::llm::attention(&rq, &keys, &values, shape, &mut want);
            let scale = want.iter().fold(0.0f32, |m, w| m.max(w.abs()));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let err = (g - w).abs() / scale;
                worst = worst.max(err);
                assert!(
                    err <= 1e-5,
                    "position {pos} (token {token}), output {i} (head {}): got {g}, kernels gives {w} (largest output {scale})",
                    i / config.head_dim
                );
            }
        }
        println!("{} positions, worst error relative to the largest output: {worst:e}", prompt.len());
        let expected = 2 * prompt.len() * kv * 4;
        assert_eq!(cache.memory_bytes(), expected, "2 × positions × kv_dim × 4 bytes");
    }

    // ------------------------------------------------------------------ c4w1.sampling

    /// argmax and greedy sampling: lowest id on ties, NaN skipped, infinities, empty input.
    fn argmax_and_greedy_handle_ties_nans_and_infinities() {
        use lab::sampling::argmax;
        let cases: &[(&[f32], u32)] = &[
            (&[], 0),
            (&[f32::NAN, f32::NAN], 0),
            (&[0.5], 0),
            (&[1.0, 2.0, 2.0, 1.0], 1),
            (&[f32::NAN, 3.0, f32::INFINITY, f32::INFINITY], 2),
            (&[f32::NEG_INFINITY, f32::NEG_INFINITY], 0),
            (&[f32::NEG_INFINITY, -1e30, f32::NAN], 1),
            (&[-0.0, 0.0], 0),
        ];
        for (logits, want) in cases {
            assert_eq!(argmax(logits), *want, "argmax of {logits:?}");
            assert_eq!(argmax(logits), kernels::llm::argmax(logits), "argmax of {logits:?} against kernels");
        }
        let logits = floats(1000, 4);
        for config in [
            SamplerConfig::greedy(),
            SamplerConfig { temperature: 0.8, top_k: 1, top_p: 0.5, seed: 3 },
            SamplerConfig { temperature: -1.0, top_k: 0, top_p: 1.0, seed: 3 },
        ] {
            let mut s = lab::sampling::Sampler::new(config);
            for _ in 0..5 {
                assert_eq!(s.sample(&logits), argmax(&logits), "{config:?} is greedy");
            }
            assert_eq!(s.probabilities(&logits), [(argmax(&logits), 1.0)], "{config:?}: the greedy distribution");
        }
        let s = sampler(1.0, 0, 1.0, 1);
        assert!(s.probabilities(&[]).is_empty(), "no logits, no candidates");
        assert!(s.probabilities(&[f32::NAN]).is_empty(), "only NaN, no candidates");
        assert!(s.probabilities(&[f32::NEG_INFINITY; 3]).is_empty(), "only -inf, no candidates");
        assert_eq!(sampler(1.0, 0, 1.0, 1).sample(&[f32::NAN, f32::NAN]), 0, "sample of all-NaN logits is 0");
        assert_eq!(
            s.probabilities(&[0.0, f32::NEG_INFINITY, 0.0]),
            [(0, 0.5), (2, 0.5)],
            "-inf has probability 0 and is left out"
        );
    }

    /// The distribution after top-k, temperature and top-p equals the reference (f64) for many logits and settings.
    fn probabilities_match_softmax_top_k_and_top_p() {
        let configs = [
            (1.0f32, 0usize, 1.0f32),
            (0.7, 3, 1.0),
            (1.3, 0, 0.8),
            (1.0, 4, 0.9),
            (0.5, 0, 0.35),
            (2.0, 10, 0.97),
            (1.0, 100, 1.0),
        ];
        for (case, seed) in (0..30u64).enumerate() {
            let mut logits: Vec<f32> = floats(40, 1000 + seed).iter().map(|v| v * (1.0 + case as f32)).collect();
            if case % 3 == 0 {
                logits[5] = f32::NAN;
                logits[7] = logits[9];
            }
            for &(temperature, top_k, top_p) in &configs {
                let config = SamplerConfig { temperature, top_k, top_p, seed };
                let want = reference_probabilities(&logits, config);
                let got = lab::sampling::Sampler::new(config).probabilities(&logits);
                let ids = |v: &[(u32, f64)]| v.iter().map(|p| p.0).collect::<Vec<_>>();
                let got64: Vec<(u32, f64)> = got.iter().map(|&(i, p)| (i, p as f64)).collect();
                assert_eq!(
                    ids(&got64),
                    ids(&want),
                    "case {case}, T {temperature}, top-k {top_k}, top-p {top_p}: kept tokens, most likely first"
                );
                for ((id, g), (_, w)) in got64.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-5,
                        "case {case}, T {temperature}, top-k {top_k}, top-p {top_p}: p(token {id}) = {g}, expected {w}"
                    );
                }
                let total: f64 = got64.iter().map(|p| p.1).sum();
                assert!((total - 1.0).abs() < 1e-5, "probabilities must sum to 1, got {total}");
            }
        }
    }

    /// 20,000 draws per setting: frequencies within 0.015 of the distribution, never a token outside it.
    fn sample_frequencies_follow_the_distribution() {
        let logits = [2.0f32, 1.0, 0.5, 0.0, -1.0, 3.0, f32::NAN, f32::NEG_INFINITY, 1.5, 2.5];
        for (temperature, top_k, top_p, seed) in
            [(1.0f32, 0usize, 1.0f32, 1u64), (0.7, 3, 1.0, 2), (1.3, 0, 0.8, 3), (1.0, 4, 0.9, 4), (3.0, 0, 1.0, 5)]
        {
            let config = SamplerConfig { temperature, top_k, top_p, seed };
            let want = reference_probabilities(&logits, config);
            let mut s = lab::sampling::Sampler::new(config);
            let n = 20_000;
            let mut counts = [0usize; 10];
            for _ in 0..n {
                let t = s.sample(&logits) as usize;
                assert!(t < logits.len(), "sampled id {t} is outside the logits");
                counts[t] += 1;
            }
            for (id, &count) in counts.iter().enumerate() {
                let p = want.iter().find(|w| w.0 as usize == id).map_or(0.0, |w| w.1);
                let f = count as f64 / n as f64;
                if p == 0.0 {
                    assert_eq!(
                        count, 0,
                        "T {temperature}, top-k {top_k}, top-p {top_p}: token {id} is filtered out but was drawn {count} times"
                    );
                }
                assert!(
                    (f - p).abs() <= 0.015,
                    "T {temperature}, top-k {top_k}, top-p {top_p}: token {id} drawn {f:.4} of the time, its probability is {p:.4}"
                );
            }
        }
    }

    /// The same seed gives the same tokens; each draw is one next_f64 of the seeded SplitMix64 through the cumulative
    /// distribution.
    fn sampling_is_deterministic_per_seed() {
        let logits: Vec<f32> = floats(50, 8).iter().map(|v| v * 4.0).collect();
        let config = SamplerConfig { temperature: 0.9, top_k: 20, top_p: 0.95, seed: 42 };
        let (mut a, mut b) = (lab::sampling::Sampler::new(config), lab::sampling::Sampler::new(config));
        let first: Vec<u32> = (0..500).map(|_| a.sample(&logits)).collect();
        let second: Vec<u32> = (0..500).map(|_| b.sample(&logits)).collect();
        assert_eq!(first, second, "two samplers with seed 42 must draw the same tokens");
        let mut c = lab::sampling::Sampler::new(SamplerConfig { seed: 43, ..config });
        let other: Vec<u32> = (0..500).map(|_| c.sample(&logits)).collect();
        assert_ne!(first, other, "seeds 42 and 43 must give different sequences");

        let want = reference_probabilities(&logits, config);
        let mut state = 42u64;
        let mut mismatches = 0;
        for (i, &got) in first.iter().enumerate() {
            let u = splitmix_f64(&mut state);
            let mut cumulative = 0.0;
            let expected = want.iter().find(|(_, p)| {
                cumulative += p;
                u < cumulative
            });
            let expected = expected.map_or(want.last().unwrap().0, |e| e.0);
            if got != expected {
                mismatches += 1;
                assert!(
                    mismatches <= 2,
                    "draw {i}: u = {u:.6} selects token {expected} through the cumulative distribution, got {got} (draw exactly one next_f64 per sample)"
                );
            }
        }
    }
}

/// Edits the bytes of the tensor table after building (for fields the builder writes consistently).
trait TapInfos {
    fn tap_infos(self, f: impl FnOnce(&mut Vec<u8>)) -> Self;
}

impl TapInfos for Builder {
    fn tap_infos(mut self, f: impl FnOnce(&mut Vec<u8>)) -> Self {
        f(&mut self.infos);
        self
    }
}
