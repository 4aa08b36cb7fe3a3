//! `kernels::formats`: the GGUF (ggml's `docs/gguf.md`) and safetensors readers against their
//! reference implementations, the `gguf` and `safetensors` Python packages, on the real models
//! (SmolLM2-135M-Instruct Q4_1, all-MiniLM-L6-v2) and on files those packages write; plus
//! hostile input: every truncation of a small hand-made file, absurd counts and lengths, bad
//! offsets and types, and random byte mutations (proptest) give typed errors, never a panic.
//!
//! The Python side (`kernels/tests/formats/*_peer.py`) runs in the peers' venv
//! (`$SOVEREIGN_CACHE/venv`, else `$XDG_CACHE_HOME/sovereign-ml/venv`, else
//! `~/.cache/sovereign-ml/venv`); without it these tests fail with a message naming
//! `cargo xtask peers`. The models come from `cargo xtask models`.

use std::path::{Path, PathBuf};
use std::process::Command;

use kernels::Error;
use kernels::formats::gguf::{self, Gguf, MetadataArray, MetadataType, MetadataValue, TensorKind};
use kernels::formats::safetensors::{Dtype, Safetensors};
use kernels::quant::QuantFormat;
use proptest::prelude::*;
use serde_json::{Value, json};

// ------------------------------------------------------------------ peers

/// The venv's Python, after checking that `modules` import.
pub(crate) fn python_with(modules: &str) -> PathBuf {
    let py = kernels::cache::venv_python();
    assert!(
        py.is_file(),
        "the peers' Python venv is missing ({}): run `cargo xtask peers` to install {modules}",
        py.display()
    );
    let ok = Command::new(&py).args(["-c", &format!("import {modules}")]).output().expect("run python");
    assert!(
        ok.status.success(),
        "{modules} do not import in {}: run `cargo xtask peers`\n{}",
        py.display(),
        String::from_utf8_lossy(&ok.stderr)
    );
    py
}

/// Runs `kernels/tests/formats/<script> args…` and parses its stdout as JSON (or returns null
/// when it printed nothing); fails the test on a non-zero exit.
fn run_peer(modules: &str, script: &str, args: &[&str]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/formats").join(script);
    let out = Command::new(python_with(modules)).arg(&path).args(args).output().expect("run python");
    assert!(out.status.success(), "{script} {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    if out.stdout.is_empty() { Value::Null } else { serde_json::from_slice(&out.stdout).expect("peer printed JSON") }
}

fn model_file(model: &str, file: &str) -> PathBuf {
    datasets::models::file_path(model, file).unwrap_or_else(|e| panic!("{e}"))
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kernels-formats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `sum(b[i] * (i % 251 + 1)) mod 2^64`, the peers' checksum.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().enumerate().fold(0u64, |acc, (i, &b)| acc.wrapping_add(b as u64 * (i as u64 % 251 + 1)))
}

fn f32_bits(values: &[f32]) -> Value {
    values.iter().map(|v| v.to_bits()).collect()
}

// ------------------------------------------------------------------ GGUF against the gguf package

/// A metadata value as the peer prints it (floats as bit patterns).
fn metadata_json(key: &str, value: &MetadataValue) -> Value {
    fn scalar(v: &MetadataValue) -> Value {
        match v {
            MetadataValue::U8(x) => json!(x),
            MetadataValue::I8(x) => json!(x),
            MetadataValue::U16(x) => json!(x),
            MetadataValue::I16(x) => json!(x),
            MetadataValue::U32(x) => json!(x),
            MetadataValue::I32(x) => json!(x),
            MetadataValue::U64(x) => json!(x),
            MetadataValue::I64(x) => json!(x),
            MetadataValue::F32(x) => json!(x.to_bits()),
            MetadataValue::F64(x) => json!(x.to_bits()),
            MetadataValue::Bool(x) => json!(x),
            MetadataValue::String(x) => json!(x),
            MetadataValue::Array(_) => unreachable!("arrays are handled by the caller"),
        }
    }
    let mut out = json!({ "key": key, "type": value.value_type().name() });
    match value {
        MetadataValue::Array(a) => {
            out["element_type"] = json!(a.element_type().name());
            out["value"] = match a {
                MetadataArray::U8(v) => json!(v),
                MetadataArray::I8(v) => json!(v),
                MetadataArray::U16(v) => json!(v),
                MetadataArray::I16(v) => json!(v),
                MetadataArray::U32(v) => json!(v),
                MetadataArray::I32(v) => json!(v),
                MetadataArray::U64(v) => json!(v),
                MetadataArray::I64(v) => json!(v),
                MetadataArray::F32(v) => f32_bits(v),
                MetadataArray::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
                MetadataArray::Bool(v) => json!(v),
                MetadataArray::String(v) => json!(v),
                MetadataArray::Array(_) => panic!("{key}: nested arrays are not compared with the peer"),
            };
        }
        v => out["value"] = scalar(v),
    }
    out
}

/// Asserts that our reading of `path` is what the `gguf` package reports, entry by entry;
/// `dequantised` tensors are also compared value by value (bit for bit).
fn check_gguf_against_peer(path: &Path, dequantised: &[&str]) {
    let path_str = path.to_str().unwrap();
    let args: Vec<&str> = ["dump", path_str].into_iter().chain(dequantised.iter().copied()).collect();
    let peer = run_peer("gguf, numpy", "gguf_peer.py", &args);
    let file = Gguf::open(path).unwrap();

    assert_eq!(json!(file.version()), peer["version"], "version");
    assert_eq!(json!(file.alignment()), peer["alignment"], "alignment");
    assert_eq!(json!(file.data_offset()), peer["data_offset"], "data offset");

    let peer_meta = peer["metadata"].as_array().unwrap();
    assert_eq!(file.metadata_entries().len(), peer_meta.len(), "metadata entry count");
    for ((key, value), expected) in file.metadata_entries().zip(peer_meta) {
        let ours = metadata_json(key, value);
        if ours != *expected {
            let short = |v: &Value| v.to_string().chars().take(300).collect::<String>();
            panic!("metadata {key}: ours {} != gguf's {}", short(&ours), short(expected));
        }
    }

    let peer_tensors = peer["tensors"].as_array().unwrap();
    assert_eq!(file.tensors().len(), peer_tensors.len(), "tensor count");
    for (t, expected) in file.tensors().zip(peer_tensors) {
        let name = t.name();
        assert_eq!(json!(name), expected["name"]);
        assert_eq!(json!(t.ggml_type().name()), expected["type"], "{name}: type");
        assert_eq!(json!(t.ggml_type().id()), expected["type_id"], "{name}: type id");
        assert_eq!(json!(t.dims()), expected["dims"], "{name}: dims");
        assert_eq!(json!(t.info.offset), expected["offset"], "{name}: offset");
        assert_eq!(json!(t.info.n_elements), expected["n_elements"], "{name}: elements");
        assert_eq!(json!(t.info.n_bytes), expected["n_bytes"], "{name}: bytes");
        assert_eq!(json!(checksum(t.bytes)), expected["checksum"], "{name}: checksum of the bytes");
        if let Some(values) = expected.get("f32_bits") {
            assert_eq!(f32_bits(&t.to_f32().unwrap()), *values, "{name}: values");
        }
    }
    for name in dequantised {
        assert!(file.tensor(name).is_ok(), "{name} is in the file");
    }
}

#[test]
fn smollm2_metadata_and_tensor_table_match_the_gguf_package() {
    let path = model_file("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf");
    check_gguf_against_peer(&path, &["blk.0.attn_norm.weight", "blk.0.ffn_down.weight", "output_norm.weight"]);

    // The accessors the tokenizer and the LLM use.
    let file = Gguf::open(&path).unwrap();
    assert_eq!(file.architecture().unwrap(), "llama");
    assert_eq!(file.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(file.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(file.get_f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert_eq!(file.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    let tokens = file.get_string_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 49_152);
    assert_eq!(file.get_i32_array("tokenizer.ggml.token_type").unwrap().len(), 49_152);
    assert_eq!(file.get_string_array("tokenizer.ggml.merges").unwrap().len(), 48_900);
    assert_eq!(tokens[file.get_u32("tokenizer.ggml.eos_token_id").unwrap() as usize], "<|im_end|>");
    assert!(!file.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    let embd = file.tensor("token_embd.weight").unwrap();
    assert_eq!((embd.kind(), embd.row_len(), embd.rows()), (TensorKind::Quant(QuantFormat::Q8_0), 576, 49_152));
    let norm = file.tensor("output_norm.weight").unwrap();
    assert_eq!(norm.as_f32_slice().unwrap(), norm.to_f32().unwrap().as_slice(), "zero-copy f32 view");

    // Typed errors for what is not there or not of the type asked for.
    assert!(matches!(file.tensor("no.such.tensor"), Err(Error::MissingTensor { .. })));
    assert!(matches!(file.get_str("no.such.key"), Err(Error::MissingMetadata { .. })));
    let err = file.get_string_array("llama.block_count").unwrap_err();
    assert!(matches!(&err, Error::MetadataType { got, .. } if got == "UINT32"), "{err}");
    let err = file.get_u32("tokenizer.ggml.tokens").unwrap_err();
    assert!(matches!(&err, Error::MetadataType { got, .. } if got == "ARRAY[STRING]"), "{err}");
}

#[test]
fn every_metadata_type_and_tensor_type_written_by_the_gguf_package_reads_back() {
    let path = temp_path("all-types.gguf");
    run_peer("gguf, numpy", "gguf_peer.py", &["write", path.to_str().unwrap()]);
    check_gguf_against_peer(&path, &["w.f32", "w.f16", "w.bf16", "w.q8_0", "w.q4_0"]);

    let file = Gguf::open(&path).unwrap();
    assert_eq!(file.alignment(), 64);
    assert_eq!(file.metadata("t.i8"), Some(&MetadataValue::I8(-100)));
    assert_eq!(file.get_u64("t.u64").unwrap(), (1 << 63) + 12345);
    assert_eq!(file.metadata("t.i32").unwrap().as_i64(), Some(-2_000_000_000));
    assert_eq!(file.metadata("t.i32").unwrap().as_u32(), None, "a negative value is not a u32");
    assert_eq!(file.get_u32("t.u16").unwrap(), 60000, "any integer width that fits");
    assert_eq!(file.metadata("t.f64").unwrap().as_f64(), Some(3.141592653589793e200));
    assert_eq!(file.get_str("t.str").unwrap(), "héllo, wörld ✓");
    assert_eq!(file.get_string_array("t.arr.str").unwrap(), ["a", "", "ünï", "Ġthe"]);
    assert_eq!(file.get_f32_array("t.arr.f32").unwrap()[3], f32::INFINITY);
    let kinds: Vec<TensorKind> = file.tensors().map(|t| t.kind()).collect();
    use TensorKind::*;
    assert_eq!(kinds, [F32, F16, BF16, Quant(QuantFormat::Q8_0), Quant(QuantFormat::Q4_0)]);
    assert!(file.tensors().all(|t| t.info.offset.is_multiple_of(64) && file.data_offset().is_multiple_of(64)));
    std::fs::remove_file(&path).ok();
}

// ------------------------------------------------------------------ hand-made GGUF files

/// A GGUF file assembled field by field.
#[derive(Clone, Default)]
struct GgufBytes {
    version: u32,
    kvs: Vec<(Vec<u8>, Vec<u8>)>,
    tensors: Vec<(String, Vec<u64>, u32, u64)>,
    data: Vec<u8>,
    alignment: u64,
}

fn string_bytes(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// A typed value: the type id, then `payload`.
fn value(type_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = type_id.to_le_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// An array payload (after the ARRAY type id): element type, length, elements.
fn array_payload(elem: u32, len: u64, elems: &[u8]) -> Vec<u8> {
    let mut out = elem.to_le_bytes().to_vec();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(elems);
    out
}

impl GgufBytes {
    fn kv(mut self, key: &str, typed_value: Vec<u8>) -> Self {
        self.kvs.push((key.as_bytes().to_vec(), typed_value));
        self
    }

    fn tensor(mut self, name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> Self {
        self.tensors.push((name.into(), dims.to_vec(), ggml_type, offset));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            out.extend(string_bytes(k));
            out.extend_from_slice(v);
        }
        for (name, dims, ty, offset) in &self.tensors {
            out.extend(string_bytes(name.as_bytes()));
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        out.resize(out.len().div_ceil(self.alignment as usize) * self.alignment as usize, 0);
        out.extend_from_slice(&self.data);
        out
    }
}

/// A small valid file: metadata of several types (a nested and an empty array too), an F32
/// tensor `a` (4 × 2) and a Q8_0 tensor `b` (32 elements) that ends the file.
fn small_file() -> GgufBytes {
    let mut data: Vec<u8> = (0..8).flat_map(|i| (i as f32 * 0.5).to_le_bytes()).collect();
    data.resize(32, 0);
    data.extend_from_slice(&half::f16::from_f32(0.25).to_le_bytes());
    data.extend((0..32).map(|i| (i as i8 - 16) as u8));
    let strings: Vec<u8> = [&string_bytes(b"a")[..], &string_bytes(b"bc")[..]].concat();
    let nested: Vec<u8> = [array_payload(0, 2, &[1, 2]), array_payload(8, 1, &string_bytes(b"x"))].concat();
    GgufBytes { version: 3, alignment: 32, data, ..Default::default() }
        .kv("general.architecture", value(8, &string_bytes(b"test")))
        .kv("n", value(4, &7u32.to_le_bytes()))
        .kv("eps", value(6, &1e-5f32.to_le_bytes()))
        .kv("flag", value(7, &[1]))
        .kv("words", value(9, &array_payload(8, 2, &strings)))
        .kv("ids", value(9, &array_payload(5, 2, &[(-1i32).to_le_bytes(), 5i32.to_le_bytes()].concat())))
        .kv("nested", value(9, &array_payload(9, 2, &nested)))
        .kv("empty", value(9, &array_payload(4, 0, &[])))
        .tensor("a", &[4, 2], 0, 0)
        .tensor("b", &[32], 8, 32)
}

#[test]
fn a_hand_made_file_reads_as_written() {
    let file = Gguf::parse(&small_file().bytes()).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.get_u32("n").unwrap(), 7);
    assert_eq!(file.get_f32("eps").unwrap(), 1e-5);
    assert!(file.get_bool("flag").unwrap());
    assert_eq!(file.get_string_array("words").unwrap(), ["a", "bc"]);
    assert_eq!(file.get_i32_array("ids").unwrap(), [-1, 5]);
    let nested = file.metadata("nested").unwrap().as_array().unwrap();
    assert_eq!(
        nested,
        &MetadataArray::Array(vec![MetadataArray::U8(vec![1, 2]), MetadataArray::String(vec!["x".into()])])
    );
    assert_eq!(file.metadata("empty").unwrap().as_u32_array(), Some(&[][..]));
    assert_eq!(file.metadata("empty").unwrap().as_array().unwrap().element_type(), MetadataType::U32);
    let a = file.tensor("a").unwrap();
    assert_eq!((a.dims(), a.kind(), a.row_len(), a.rows()), (&[4u64, 2][..], TensorKind::F32, 4, 2));
    assert_eq!(a.to_f32().unwrap(), [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]);
    let b = file.tensor("b").unwrap();
    assert_eq!(b.bytes.len(), 34);
    let expected: Vec<f32> = (0..32).map(|i| (i - 16) as f32 * 0.25).collect();
    assert_eq!(b.to_f32().unwrap(), expected);
}

#[test]
fn a_zero_sized_tensor_needs_no_data_section() {
    // 68 bytes, ending right after the tensor table: the data section would start at byte 96.
    let file = GgufBytes { version: 2, alignment: 1, ..Default::default() }.tensor("none", &[0, 3], 0, 0);
    let parsed = Gguf::parse(&file.bytes()).unwrap();
    assert_eq!((parsed.as_bytes().len(), parsed.data_offset()), (68, 96));
    let t = parsed.tensor("none").unwrap();
    assert_eq!((t.bytes.len(), t.to_f32().unwrap().len(), t.rows()), (0, 0, 3));
}

#[test]
fn every_truncation_of_a_small_file_is_an_error_not_a_panic() {
    let bytes = small_file().bytes();
    assert!(Gguf::parse(&bytes).is_ok());
    for len in 0..bytes.len() {
        match Gguf::parse(&bytes[..len]) {
            Err(Error::FormatTruncated { .. }) => {}
            other => panic!("prefix of {len} of {} bytes: expected a truncation error, got {other:?}", bytes.len()),
        }
    }
}

/// The error variant's name, for data-driven checks.
fn variant(err: &Error) -> &'static str {
    match err {
        Error::FormatTruncated { .. } => "FormatTruncated",
        Error::FormatMalformed { .. } => "FormatMalformed",
        Error::FormatVersion { .. } => "FormatVersion",
        Error::MissingTensor { .. } => "MissingTensor",
        Error::UnsupportedTensorType { .. } => "UnsupportedTensorType",
        _ => "other",
    }
}

/// Parses `bytes` and asserts the error is `expected_variant` and its message contains `expected_text`.
fn check_gguf_error(case: &str, bytes: &[u8], expected_variant: &str, expected_text: &str) {
    match Gguf::parse(bytes) {
        Ok(_) => panic!("{case}: parsed, expected {expected_variant}"),
        Err(e) => {
            assert_eq!(variant(&e), expected_variant, "{case}: {e}");
            assert!(e.to_string().contains(expected_text), "{case}: {e:?} should mention {expected_text:?}");
        }
    }
}

#[test]
fn hostile_gguf_headers_give_typed_errors() {
    let base = small_file();
    let with = |f: &dyn Fn(&mut GgufBytes)| {
        let mut file = base.clone();
        f(&mut file);
        file.bytes()
    };
    let huge_string = [&(1u64 << 60).to_le_bytes()[..], b"abc"].concat();
    let header_with_counts = |tensors: u64, kvs: u64| {
        [&b"GGUF"[..], &3u32.to_le_bytes(), &tensors.to_le_bytes(), &kvs.to_le_bytes(), &[0xffu8; 64]].concat()
    };
    let deep = (0..100_000).fold(array_payload(0, 0, &[]), |inner, _| array_payload(9, 1, &inner));
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("empty file", vec![], "FormatTruncated", "magic"),
        ("bad magic", [&b"GGUX"[..], &with(&|_| ())[4..]].concat(), "FormatMalformed", "magic"),
        ("version 1", with(&|f| f.version = 1), "FormatVersion", "version 1"),
        ("big-endian version 3", with(&|f| f.version = 3u32.swap_bytes()), "FormatVersion", "50331648"),
        (
            "a key of length 2^60",
            [&header_with_counts(0, 1)[..24], &huge_string].concat(),
            "FormatTruncated",
            "key of metadata entry 0",
        ),
        ("2^62 metadata entries", header_with_counts(0, 1 << 62), "FormatTruncated", "metadata entry"),
        ("2^62 tensors", header_with_counts(1 << 62, 0), "FormatTruncated", "tensor 0"),
        (
            "a string value of length 2^60",
            with(&|f| f.kvs[0].1 = value(8, &huge_string)),
            "FormatTruncated",
            "general.architecture",
        ),
        (
            "an array of 2^60 u64",
            with(&|f| f.kvs[1].1 = value(9, &array_payload(10, 1 << 60, &[]))),
            "FormatTruncated",
            "1152921504606846976 elements",
        ),
        (
            "an array of 2^62 strings",
            with(&|f| f.kvs[1].1 = value(9, &array_payload(8, 1 << 62, &[]))),
            "FormatTruncated",
            "of metadata value \"n\"",
        ),
        (
            "an array of 2^63 u32 (byte count overflows)",
            with(&|f| f.kvs[1].1 = value(9, &array_payload(4, 1 << 63, &[]))),
            "FormatTruncated",
            "elements",
        ),
        (
            "unknown value type",
            with(&|f| f.kvs[1].1 = value(13, &[0; 8])),
            "FormatMalformed",
            "unknown metadata type 13",
        ),
        (
            "unknown array element type",
            with(&|f| f.kvs[1].1 = value(9, &array_payload(99, 1, &[0; 8]))),
            "FormatMalformed",
            "unknown metadata type 99",
        ),
        ("bool of value 2", with(&|f| f.kvs[3].1 = value(7, &[2])), "FormatMalformed", "bool of value 2"),
        (
            "bool array element of value 7",
            with(&|f| f.kvs[3].1 = value(9, &array_payload(7, 2, &[1, 7]))),
            "FormatMalformed",
            "element 1",
        ),
        ("invalid UTF-8 key", with(&|f| f.kvs[1].0 = vec![b'n', 0xff]), "FormatMalformed", "not UTF-8"),
        ("duplicate key", with(&|f| f.kvs[2].0 = b"n".to_vec()), "FormatMalformed", "duplicate metadata key \"n\""),
        (
            "arrays nested 100000 deep",
            with(&|f| f.kvs[1].1 = value(9, &deep)),
            "FormatMalformed",
            "nests arrays deeper",
        ),
        (
            "alignment 0",
            with(&|f| f.kvs[1] = (b"general.alignment".to_vec(), value(4, &0u32.to_le_bytes()))),
            "FormatMalformed",
            "general.alignment",
        ),
        (
            "alignment 48",
            with(&|f| f.kvs[1] = (b"general.alignment".to_vec(), value(4, &48u32.to_le_bytes()))),
            "FormatMalformed",
            "general.alignment",
        ),
        (
            "alignment as u64",
            with(&|f| f.kvs[1] = (b"general.alignment".to_vec(), value(10, &32u64.to_le_bytes()))),
            "FormatMalformed",
            "general.alignment",
        ),
        ("unknown ggml type", with(&|f| f.tensors[1].2 = 4), "FormatMalformed", "unknown ggml type 4"),
        ("5 dimensions", with(&|f| f.tensors[0].1 = vec![1; 5]), "FormatMalformed", "5 dimensions"),
        ("dimensions that overflow", with(&|f| f.tensors[0].1 = vec![1 << 40, 1 << 40]), "FormatMalformed", "overflow"),
        (
            "an empty tensor whose other dimensions overflow",
            with(&|f| f.tensors[0].1 = vec![0, 1 << 40, 1 << 40]),
            "FormatMalformed",
            "overflow",
        ),
        (
            "a quantised row not a whole number of blocks",
            with(&|f| f.tensors[1].1 = vec![16, 2]),
            "FormatMalformed",
            "not a multiple of its 32-element block",
        ),
        ("misaligned offset", with(&|f| f.tensors[1].3 = 33), "FormatMalformed", "not a multiple of the alignment 32"),
        ("overlapping tensors", with(&|f| f.tensors[1].3 = 0), "FormatMalformed", "overlap"),
        ("data past the end", with(&|f| f.tensors[1].3 = 64), "FormatTruncated", "data of tensor \"b\""),
        ("offset near 2^64", with(&|f| f.tensors[1].3 = u64::MAX - 31), "FormatTruncated", "data of tensor \"b\""),
        ("duplicate tensor name", with(&|f| f.tensors[1].0 = "a".into()), "FormatMalformed", "duplicate tensor name"),
    ];
    for (case, bytes, expected_variant, expected_text) in cases {
        check_gguf_error(case, &bytes, expected_variant, expected_text);
    }
}

#[test]
fn unsupported_tensor_types_are_readable_as_bytes_but_not_as_f32() {
    // A Q5_K tensor (ggml type 13): the table and the bytes are there, the conversion is a typed error.
    let mut file = small_file();
    file.tensors[1] = ("b".into(), vec![256], 13, 32);
    file.data.resize(32 + 176, 7);
    let parsed = Gguf::parse(&file.bytes()).unwrap();
    let b = parsed.tensor("b").unwrap();
    assert_eq!((b.ggml_type().name(), b.bytes.len()), ("Q5_K", 176));
    assert!(matches!(b.kind(), TensorKind::Other(t) if t.id() == 13));
    assert_eq!(variant(&b.to_f32().unwrap_err()), "UnsupportedTensorType");
    assert_eq!(gguf::GgmlType::from_id(4), None, "a removed ggml type id");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Random byte mutations of a valid file never panic (the result may be Ok or an error).
    #[test]
    fn random_mutations_of_a_gguf_file_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = small_file().bytes();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(file) = Gguf::parse(&bytes) {
            for t in file.tensors() {
                let _ = t.to_f32();
            }
        }
    }

    /// Setting one 8-byte word to an extreme value (a count, a length, an offset) never panics.
    #[test]
    fn extreme_words_in_a_gguf_file_never_panic(at in any::<prop::sample::Index>(), word in prop::sample::select(vec![
        u64::MAX, u64::MAX / 2, 1 << 60, 1 << 32, u32::MAX as u64, 0, 1, 31, 33,
    ])) {
        let mut bytes = small_file().bytes();
        let i = at.index(bytes.len() - 8);
        bytes[i..i + 8].copy_from_slice(&word.to_le_bytes());
        let _ = Gguf::parse(&bytes);
    }
}

// ------------------------------------------------------------------ safetensors

/// Asserts that our reading of `path` is what the `safetensors` package reports.
fn check_safetensors_against_peer(path: &Path, converted: &[&str]) -> Safetensors {
    let args: Vec<&str> = ["dump", path.to_str().unwrap()].into_iter().chain(converted.iter().copied()).collect();
    let peer = run_peer("safetensors, numpy", "safetensors_peer.py", &args);
    let file = Safetensors::open(path).unwrap();
    let metadata: Value = file.metadata().iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    assert_eq!(metadata, peer["metadata"], "__metadata__");
    let expected = peer["tensors"].as_object().unwrap();
    assert_eq!(file.tensors().len(), expected.len(), "tensor count");
    for t in file.tensors() {
        let e = &expected[t.name()];
        assert_eq!(json!(t.dtype().name()), e["dtype"], "{}: dtype", t.name());
        assert_eq!(json!(t.shape()), e["shape"], "{}: shape", t.name());
        assert_eq!(json!(checksum(t.bytes)), e["checksum"], "{}: checksum of the bytes", t.name());
        if let Some(values) = e.get("f32_bits") {
            assert_eq!(f32_bits(&t.to_f32().unwrap()), *values, "{}: values", t.name());
        }
    }
    file
}

#[test]
fn minilm_safetensors_match_the_safetensors_package() {
    let path = model_file("all-minilm-l6-v2", "model.safetensors");
    let file = check_safetensors_against_peer(
        &path,
        &["embeddings.LayerNorm.weight", "encoder.layer.5.output.dense.bias", "pooler.dense.bias"],
    );
    assert_eq!(file.tensor_infos().len(), 101 + 1 + 2, "BERT-6 tensors, position ids and the pooler");
    let word = file.tensor("embeddings.word_embeddings.weight").unwrap();
    assert_eq!((word.dtype(), word.shape()), (Dtype::F32, &[30522u64, 384][..]));
    let floats = word.as_f32_slice().expect("the mapped file is 4-aligned");
    assert_eq!(floats.len(), 30522 * 384);
    assert_eq!(floats[..384], word.to_f32().unwrap()[..384]);
    let ids = file.tensor("embeddings.position_ids").unwrap();
    assert_eq!(ids.dtype(), Dtype::I64);
    assert_eq!(variant(&ids.to_f32().unwrap_err()), "UnsupportedTensorType");
    assert!(matches!(file.tensor("nope"), Err(Error::MissingTensor { .. })));
}

#[test]
fn every_dtype_written_by_the_safetensors_package_reads_back() {
    let path = temp_path("all-types.safetensors");
    run_peer("safetensors, numpy", "safetensors_peer.py", &["write", path.to_str().unwrap()]);
    let file = check_safetensors_against_peer(&path, &["f32", "f16", "scalar", "empty"]);
    assert_eq!(file.metadata().get("note").map(String::as_str), Some("héllo"));
    assert_eq!(file.tensor("scalar").unwrap().to_f32().unwrap(), [2.5]);
    assert_eq!(file.tensor("bool").unwrap().bytes, [1, 0, 1]);
    std::fs::remove_file(&path).ok();
}

/// A safetensors file from a JSON header and data.
fn safetensors_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    [&(header.len() as u64).to_le_bytes()[..], header.as_bytes(), data].concat()
}

#[test]
fn bf16_f16_and_f32_convert_exactly() {
    let values = [1.0f32, -2.5, 3.140625, 0.0];
    let data: Vec<u8> = [
        values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
        values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
        values.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect(),
    ]
    .concat();
    let header = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F16","shape":[2,2],"data_offsets":[16,24]},"c":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}}   "#;
    let file = Safetensors::parse(&safetensors_bytes(header, &data)).unwrap();
    for name in ["a", "b", "c"] {
        assert_eq!(file.tensor(name).unwrap().to_f32().unwrap(), values, "{name}");
    }
}

fn check_safetensors_error(case: &str, bytes: &[u8], expected_variant: &str, expected_text: &str) {
    match Safetensors::parse(bytes) {
        Ok(_) => panic!("{case}: parsed, expected {expected_variant}"),
        Err(e) => {
            assert_eq!(variant(&e), expected_variant, "{case}: {e}");
            assert!(e.to_string().contains(expected_text), "{case}: {e:?} should mention {expected_text:?}");
        }
    }
}

#[test]
fn hostile_safetensors_give_typed_errors() {
    let t = |entries: &str, data: &[u8]| safetensors_bytes(&format!("{{{entries}}}"), data);
    let one = r#""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#;
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("empty file", vec![], "FormatTruncated", "header length"),
        ("header length 2^60", (1u64 << 60).to_le_bytes().to_vec(), "FormatMalformed", "exceeds the limit"),
        ("header longer than the file", [&100u64.to_le_bytes()[..], b"{}"].concat(), "FormatTruncated", "JSON header"),
        ("not JSON", safetensors_bytes("{nope", &[]), "FormatMalformed", "invalid JSON"),
        ("not an object", safetensors_bytes("[1, 2]", &[]), "FormatMalformed", "does not start with '{'"),
        ("not UTF-8", [&7u64.to_le_bytes()[..], b"{\"\xff\":1}"].concat(), "FormatMalformed", "not UTF-8"),
        (
            "unknown dtype",
            t(r#""a":{"dtype":"F12","shape":[1],"data_offsets":[0,1]}"#, &[0]),
            "FormatMalformed",
            "unknown dtype",
        ),
        ("missing field", t(r#""a":{"dtype":"F32","shape":[1]}"#, &[0; 4]), "FormatMalformed", "data_offsets"),
        (
            "negative shape",
            t(r#""a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}"#, &[0; 4]),
            "FormatMalformed",
            "bad entry",
        ),
        (
            "offsets that disagree with the shape",
            t(r#""a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}"#, &[0; 8]),
            "FormatMalformed",
            "do not hold 12 bytes",
        ),
        (
            "reversed offsets",
            t(r#""a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}"#, &[0; 8]),
            "FormatMalformed",
            "data_offsets",
        ),
        (
            "shape that overflows",
            t(r#""a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}"#, &[0; 4]),
            "FormatMalformed",
            "overflows",
        ),
        (
            "an empty shape whose other dimensions overflow",
            t(r#""a":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}"#, &[]),
            "FormatMalformed",
            "overflows",
        ),
        ("data past the end", t(one, &[0; 4]), "FormatTruncated", "data of tensor \"a\""),
        ("a gap", t(r#""a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}"#, &[0; 8]), "FormatMalformed", "gap"),
        (
            "overlap",
            t(&format!(r#"{one},"b":{{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#), &[0; 8]),
            "FormatMalformed",
            "overlaps",
        ),
        ("trailing bytes", t(one, &[0; 12]), "FormatMalformed", "cover 8"),
        ("duplicate name", t(&format!("{one},{one}"), &[0; 8]), "FormatMalformed", "duplicate key"),
        ("non-string metadata", t(r#""__metadata__":{"a":1}"#, &[]), "FormatMalformed", "__metadata__"),
    ];
    for (case, bytes, expected_variant, expected_text) in cases {
        check_safetensors_error(case, &bytes, expected_variant, expected_text);
    }
}

#[test]
fn every_truncation_of_a_small_safetensors_file_is_an_error() {
    let bytes = safetensors_bytes(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, &[1; 8]);
    assert!(Safetensors::parse(&bytes).is_ok());
    for len in 0..bytes.len() {
        assert!(Safetensors::parse(&bytes[..len]).is_err(), "prefix of {len} bytes parsed");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Random byte mutations of a valid safetensors file never panic.
    #[test]
    fn random_mutations_of_a_safetensors_file_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = safetensors_bytes(
            r#"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]}}"#,
            &[1; 12],
        );
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(file) = Safetensors::parse(&bytes) {
            for t in file.tensors() {
                let _ = t.to_f32();
            }
        }
    }
}
