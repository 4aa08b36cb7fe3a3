//! Classical ML (`kernels::ml`, feature `ml`): fits compared with scikit-learn fixtures
//! (`tests/fixtures/ml/`, written by `make_fixtures.py`), properties, bad input, model files.
//!
//! Fixture encoding (see `make_fixtures.py`): a matrix is `{"rows", "cols", "f32_le_b64"}`, the
//! row-major little-endian f32 bytes in base64; vectors are plain JSON lists.

mod compiled;
mod forest;
mod gbm;
mod io;
mod kmeans;
mod lightgbm;
mod linear;
mod logistic;
mod metrics;
mod tree;

use std::path::{Path, PathBuf};

use kernels::ml::Matrix;
use serde_json::Value;

/// The parsed JSON fixture `tests/fixtures/ml/<name>`.
pub(crate) fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ml").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e} (regenerate with kernels/tests/fixtures/ml/make_fixtures.py)", path.display())
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Standard base64 (RFC 4648, with padding) to bytes.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:?}"),
        }
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for chunk in text.as_bytes().chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let bits = chunk.iter().filter(|&&c| c != b'=').fold(0u32, |acc, &c| (acc << 6) | value(c)) << (6 * pad);
        out.extend_from_slice(&bits.to_be_bytes()[1..4 - pad]);
    }
    out
}

/// A fixture matrix.
pub(crate) fn matrix(v: &Value) -> Matrix {
    let rows = v["rows"].as_u64().unwrap() as usize;
    let cols = v["cols"].as_u64().unwrap() as usize;
    let bytes = base64_decode(v["f32_le_b64"].as_str().unwrap());
    let data = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Matrix::new(rows, cols, data).unwrap()
}

/// A JSON list of numbers as f64.
pub(crate) fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}")).iter().map(|x| x.as_f64().unwrap()).collect()
}

/// A JSON list of numbers as f32 (exact for the fixtures' float32 values).
pub(crate) fn f32s(v: &Value) -> Vec<f32> {
    f64s(v).into_iter().map(|x| x as f32).collect()
}

/// The largest relative error `|got − want| / max(|want|, floor)` over two vectors, `floor` being
/// `1e-3 × max |want|` (so coefficients near zero are judged on the vector's scale).
pub(crate) fn max_rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1e-3 * scale).max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

/// A fresh folder for one test's files.
pub(crate) fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kernels-ml-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn base64_decoder_matches_rfc4648_vectors() {
    for (text, want) in
        [("", ""), ("Zg==", "f"), ("Zm8=", "fo"), ("Zm9v", "foo"), ("Zm9vYg==", "foob"), ("Zm9vYmFy", "foobar")]
    {
        assert_eq!(base64_decode(text), want.as_bytes(), "{text}");
    }
}
