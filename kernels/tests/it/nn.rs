//! `kernels::nn::bert`: the BERT sentence encoder on all-MiniLM-L6-v2 against the model's
//! published reference embedding of "hello world" and an independent NumPy implementation of the
//! same forward pass (`kernels/tests/nn/bert_reference.py`: Hugging Face's `BertModel` run as one
//! padded, masked batch in float64, weights loaded by the `safetensors` package, sentences
//! tokenised by the `tokenizers` package); padded batches against unpadded singles; typed errors
//! for bad input and bad configurations.
//!
//! The model comes from `cargo xtask models`, the Python peers from `cargo xtask peers` (the tests
//! fail with a message naming the command when either is missing).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use kernels::Error;
use kernels::formats::Safetensors;
use kernels::nn::bert::{self, BertConfig, BertModel, PaddedBatch, Pooling};
use serde_json::{Value, json};

fn model_dir() -> PathBuf {
    let path = datasets::models::file_path("all-minilm-l6-v2", "model.safetensors").unwrap_or_else(|e| panic!("{e}"));
    path.parent().unwrap().to_path_buf()
}

fn model() -> &'static BertModel {
    static MODEL: OnceLock<BertModel> = OnceLock::new();
    MODEL.get_or_init(|| BertModel::load(model_dir()).unwrap())
}

/// Runs the NumPy reference on `request` (JSON on stdin) and returns its JSON answer.
fn numpy_reference(request: &Value) -> Value {
    let py = super::formats::python_with("numpy, safetensors, tokenizers");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nn/bert_reference.py");
    let mut child = Command::new(py)
        .arg(script)
        .arg(model_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "bert_reference.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the reference printed JSON")
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y).sum();
    let na: f64 = a.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn u32_rows(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect())
        .collect()
}

#[test]
fn hello_world_matches_the_published_reference() {
    // all-MiniLM-L6-v2's embedding of "hello world" begins with these values (4 decimals).
    let expected = [-0.0345f32, 0.0310, 0.0067, 0.0261, -0.0394];
    let e = model().embed_ids(&[vec![101, 7592, 2088, 102]]).unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].len(), 384);
    for (i, (&got, &want)) in e[0].iter().zip(&expected).enumerate() {
        assert!((got - want).abs() <= 1e-4, "value {i}: {got} vs published {want}");
    }
    let norm: f32 = e[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "normalised: {norm}");
}

const SENTENCES: [&str; 7] = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "A",
    "Rust's ownership model guarantees memory safety without a garbage collector; borrowing lets functions use \
     values without taking them, and lifetimes make sure references never outlive the data they point to.",
    "Café naïve résumé — accents are stripped by the uncased tokenizer!",
    "vector search, BM25 and reciprocal rank fusion",
    "",
];

#[test]
fn a_padded_batch_matches_an_independent_numpy_bert_and_the_unpadded_singles() {
    let reference = numpy_reference(&json!({ "sentences": SENTENCES }));
    let padded_ids = u32_rows(&reference["ids"]);
    let mask = u32_rows(&reference["attention_mask"]);
    let expected: Vec<Vec<f64>> = reference["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
        .collect();
    let seq_len = padded_ids[0].len();
    assert!(mask.iter().any(|m| m.contains(&0)), "the batch has padding");
    let unpadded: Vec<Vec<u32>> = padded_ids
        .iter()
        .zip(&mask)
        .map(|(ids, m)| ids.iter().zip(m).filter(|(_, m)| **m == 1).map(|(&i, _)| i).collect())
        .collect();

    let model = model();
    let batch = model.embed_ids(&unpadded).unwrap();
    let padded = model
        .embed_padded(&PaddedBatch {
            input_ids: &padded_ids.concat(),
            attention_mask: &mask.concat(),
            token_type_ids: None,
            seq_len,
        })
        .unwrap();
    for (i, ids) in unpadded.iter().enumerate() {
        let cos = cosine(&batch[i], &expected[i]);
        eprintln!("sentence {i}: {} tokens, 1 - cosine = {:.1e} with the NumPy reference", ids.len(), 1.0 - cos);
        assert!(cos >= 0.9999, "sentence {i} ({} tokens): cosine {cos} with the NumPy reference", ids.len());
        let single = model.embed_ids(std::slice::from_ref(ids)).unwrap();
        assert!(max_abs_diff(&single[0], &batch[i]) <= 1e-6, "sentence {i}: ragged batch vs single");
        assert!(max_abs_diff(&padded[i], &batch[i]) <= 1e-6, "sentence {i}: padded batch vs single");
    }

    // Text in, through the folder's WordPiece tokenizer: the same ids, the same embeddings.
    let tokenizer = model.tokenizer().expect("tokenizer.json was loaded");
    for (i, s) in SENTENCES.iter().enumerate() {
        let enc = tokenizer.encode(s);
        let ids: Vec<u32> =
            enc.ids.iter().zip(&enc.attention_mask).filter(|(_, m)| **m == 1).map(|(&id, _)| id).collect();
        assert_eq!(ids, unpadded[i], "ids of {s:?}");
    }
    let from_text = model.embed(&SENTENCES).unwrap();
    for (i, e) in from_text.iter().enumerate() {
        assert!(max_abs_diff(e, &batch[i]) <= 1e-6, "sentence {i}: embed(text) vs embed_ids");
    }
}

/// Passes from several threads at once, from outside the pool and from inside it (nested in a
/// parallel loop), give the vectors a lone pass gives, bit for bit, and all finish: each pass keeps
/// the pool's other workers busy with a keeper task (`in_pool_awake`), and the keepers of one pass
/// must run the jobs of the others while they wait, never hold a worker the others need.
#[test]
fn concurrent_and_nested_passes_give_the_lone_pass_vectors() {
    use rayon::prelude::*;
    let model = model();
    let texts = ["a sentence about borrowing", "Rust's ownership rules, in one line", "hello world"];
    let alone: Vec<Vec<Vec<f32>>> = texts.iter().map(|t| model.embed(&[*t]).unwrap()).collect();
    let same = |got: &[Vec<f32>], want: &[Vec<f32>]| {
        got.iter().flatten().zip(want.iter().flatten()).all(|(a, b)| a.to_bits() == b.to_bits())
    };
    std::thread::scope(|s| {
        for t in 0..3 {
            let alone = &alone;
            s.spawn(move || {
                for round in 0..4 {
                    let i = (t + round) % texts.len();
                    assert!(same(&model.embed(&[texts[i]]).unwrap(), &alone[i]), "thread {t} round {round}");
                }
            });
        }
        s.spawn(|| {
            (0..6).into_par_iter().for_each(|k| {
                let i = k % texts.len();
                assert!(same(&model.embed(&[texts[i]]).unwrap(), &alone[i]), "nested pass {k}");
            });
        });
    });
}

#[test]
fn pooling_options_change_what_is_returned() {
    let dir = model_dir();
    let config = BertConfig::load(dir.join("config.json")).unwrap();
    let mut raw =
        BertModel::from_safetensors(config, &Safetensors::open(dir.join("model.safetensors")).unwrap()).unwrap();
    assert!(raw.tokenizer().is_none());
    assert!(matches!(raw.embed(&["hello"]), Err(Error::ModelConfig { .. })), "no tokenizer, no text");
    raw.set_pooling(Pooling { mean_tokens: true, normalize: false });
    let ids = vec![vec![101, 7592, 2088, 102]];
    let unnormalised = raw.embed_ids(&ids).unwrap().remove(0);
    let norm = unnormalised.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(norm > 1.5, "mean pooling without normalisation: norm {norm}");
    let normalised = model().embed_ids(&ids).unwrap().remove(0);
    let rescaled: Vec<f32> = unnormalised.iter().map(|x| x / norm).collect();
    assert!(max_abs_diff(&rescaled, &normalised) <= 1e-6);
    raw.set_pooling(Pooling { mean_tokens: false, normalize: true });
    let cls = raw.embed_ids(&ids).unwrap().remove(0);
    assert!(max_abs_diff(&cls, &normalised) > 1e-2, "CLS pooling differs from mean pooling");
}

/// Runs `embed_ids` on `batch` and asserts a [`Error::ModelInput`] for `sequence` mentioning `text`.
fn check_bad_ids(case: &str, batch: &[Vec<u32>], sequence: usize, text: &str) {
    match model().embed_ids(batch) {
        Err(Error::ModelInput { sequence: s, reason }) => {
            assert_eq!(s, sequence, "{case}: {reason}");
            assert!(reason.contains(text), "{case}: {reason:?} should mention {text:?}");
        }
        other => panic!("{case}: expected a model-input error, got {other:?}"),
    }
}

#[test]
fn bad_inputs_give_typed_errors() {
    let ok = vec![101, 102];
    let cases: Vec<(&str, Vec<Vec<u32>>, usize, &str)> = vec![
        ("an id past the vocabulary", vec![ok.clone(), vec![101, 30522, 102]], 1, "outside the vocabulary of 30522"),
        ("u32::MAX as an id", vec![vec![u32::MAX]], 0, "outside the vocabulary"),
        ("513 tokens", vec![vec![1000; 513]], 0, "beyond the 512 positions"),
        ("an empty sequence", vec![ok.clone(), ok.clone(), vec![]], 2, "no token"),
    ];
    for (case, batch, sequence, text) in cases {
        check_bad_ids(case, &batch, sequence, text);
    }
    assert_eq!(model().embed_ids(&[]).unwrap(), Vec::<Vec<f32>>::new(), "an empty batch");
    assert_eq!(model().embed_ids(&[vec![1000; 512]]).unwrap()[0].len(), 384, "512 tokens fit");

    let padded = |ids: &'static [u32], mask: &'static [u32], types: Option<&'static [u32]>, seq_len| PaddedBatch {
        input_ids: ids,
        attention_mask: mask,
        token_type_ids: types,
        seq_len,
    };
    let cases = [
        ("seq_len 0", padded(&[101, 102], &[1, 1], None, 0), "seq_len 0"),
        ("ragged rows", padded(&[101, 102, 103], &[1, 1, 1], None, 2), "not rows"),
        ("short mask", padded(&[101, 102], &[1], None, 2), "attention_mask"),
        ("mask value 2", padded(&[101, 102], &[1, 2], None, 2), "mask value 2"),
        ("an all-padding row", padded(&[101, 102, 0, 0], &[1, 1, 0, 0], None, 2), "no token"),
        ("segment 2", padded(&[101, 102], &[1, 1], Some(&[0, 2]), 2), "token type 2"),
    ];
    for (case, batch, text) in cases {
        match model().embed_padded(&batch) {
            Err(Error::ModelInput { reason, .. }) => assert!(reason.contains(text), "{case}: {reason:?}"),
            other => panic!("{case}: expected a model-input error, got {other:?}"),
        }
    }
}

#[test]
fn bad_configurations_give_typed_errors() {
    let base: Value = serde_json::from_str(&std::fs::read_to_string(model_dir().join("config.json")).unwrap()).unwrap();
    let with = |key: &str, value: Value| {
        let mut c = base.clone();
        c[key] = value;
        c.to_string()
    };
    let without = |key: &str| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(key);
        c.to_string()
    };
    let cases = [
        ("not JSON", "{".to_string(), "invalid JSON"),
        ("no hidden size", without("hidden_size"), "hidden_size is missing"),
        ("zero layers", with("num_hidden_layers", json!(0)), "num_hidden_layers = 0"),
        ("huge vocabulary", with("vocab_size", json!(1u64 << 40)), "out of range"),
        ("heads that do not divide the width", with("num_attention_heads", json!(7)), "not a multiple"),
        ("relu", with("hidden_act", json!("relu")), "hidden_act \"relu\""),
        ("relative positions", with("position_embedding_type", json!("relative_key")), "relative_key"),
        ("negative eps", with("layer_norm_eps", json!(-1.0)), "layer_norm_eps"),
    ];
    for (case, text, expected) in cases {
        let err = BertConfig::from_json_str(&text).unwrap_err();
        assert!(err.contains(expected), "{case}: {err:?} should mention {expected:?}");
    }
    assert!(BertConfig::from_json_str(&base.to_string()).is_ok());

    // Weights that do not match the configuration.
    let weights = Safetensors::open(model_dir().join("model.safetensors")).unwrap();
    let config = |text: String| BertConfig::from_json_str(&text).unwrap();
    match BertModel::from_safetensors(config(with("num_hidden_layers", json!(7))), &weights) {
        Err(Error::MissingTensor { name }) => assert!(name.starts_with("encoder.layer.6."), "{name}"),
        other => panic!("seven layers: {other:?}"),
    }
    match BertModel::from_safetensors(config(with("intermediate_size", json!(1024))), &weights) {
        Err(Error::WeightShape { name, expected, got }) => {
            assert_eq!(
                (name.as_str(), expected, got),
                ("encoder.layer.0.intermediate.dense.weight", vec![1024, 384], vec![1536, 384])
            )
        }
        other => panic!("intermediate 1024: {other:?}"),
    }
    let missing = std::env::temp_dir().join("kernels-nn-no-such-model");
    assert!(matches!(BertModel::load(&missing), Err(Error::ModelConfig { .. })));
}

#[test]
fn erfc_and_the_exact_gelu_match_tabulated_values() {
    // erfc to 16 digits (Abramowitz & Stegun, Table 7.1; mpmath).
    let table = [
        (0.0, 1.0),
        (0.5, 0.479_500_122_186_953_5),
        (1.0, 0.157_299_207_050_285_1),
        (2.0, 0.004_677_734_981_047_266),
        (3.0, 2.209_049_699_858_544e-5),
        (-1.0, 1.842_700_792_949_715),
        (-3.0, 1.999_977_909_503_001),
    ];
    for (x, want) in table {
        let got = bert::erfc(x);
        assert!(((got - want) / want).abs() < 1.2e-7, "erfc({x}) = {got}, want {want}");
    }
    // GELU(x) = x·Φ(x): Φ(1) = 0.8413447460685429, Φ(-2) = 0.022750131948179195.
    let want = [0.841_344_746_068_542_9, -0.045_500_263_896_358_39, 0.0, 10.0, -7.619_853_024_160_527e-23];
    type Gelu = fn(&mut [f32]);
    let paths: [(&str, Gelu); 4] = [
        ("bert", bert::gelu_erf_in_place),
        ("simd", kernels::simd::gelu_erf_in_place),
        ("wide", kernels::simd::gelu_erf_in_place_wide),
        ("scalar", kernels::simd::gelu_erf_in_place_scalar),
    ];
    for (name, gelu) in paths {
        let mut x = [1.0f32, -2.0, 0.0, 10.0, -10.0];
        gelu(&mut x);
        for (&g, w) in x.iter().zip(want) {
            assert!((g as f64 - w).abs() <= 1e-7 * w.abs().max(1.0), "{name}: {g} vs {w}");
        }
    }
    // The f32 vector paths against the f64 form on a sweep (lengths not a multiple of 8: the tail
    // goes through the same arithmetic): within 2e-6 of max(|gelu|, 1e-3). Measured 1.05e-6 on
    // AVX2: f32 rounding of `P(t) − z²` shows up as a relative error of the exponential, in the
    // negative half where GELU is `x·erfc(z)/2` itself.
    let sweep: Vec<f32> = (0..4801).map(|i| -12.0 + i as f32 * 0.005).collect();
    let mut reference = sweep.clone();
    kernels::simd::gelu_erf_in_place_scalar(&mut reference);
    for (name, gelu) in &paths[..3] {
        let mut got = sweep.clone();
        gelu(&mut got);
        let worst = got
            .iter()
            .zip(&reference)
            .map(|(&g, &r)| (f64::from(g) - f64::from(r)).abs() / f64::from(r.abs()).max(1e-3))
            .fold(0.0f64, f64::max);
        eprintln!("gelu_erf {name}: worst scaled error {worst:e}");
        assert!(worst <= 2e-6, "{name}: worst scaled error {worst:e}");
    }
}
