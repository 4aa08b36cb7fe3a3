//! Interoperability with the real Python tools: pyarrow reads our Parquet (Apache
//! Parquet format) value for value, the `deltalake` package reads our Delta table at
//! every version (Delta Lake transaction protocol), NumPy agrees with our statistics.
//!
//! The tools live in the peers' venv: `$SOVEREIGN_CACHE/venv`, else
//! `$XDG_CACHE_HOME/sovereign-ml/venv`, else `~/.cache/sovereign-ml/venv`. Without it
//! these tests fail (never skip) and say to run `cargo xtask peers`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float32Array, Float64Array};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit};
use kernels::data::{
    Column, ReadOptions, RecordBatch, WriteOptions, column_stats, quantiles, read_parquet, record_batch, write_parquet,
};

use super::TempDir;
use super::delta::{feature_rows, feature_schema, sorted};

fn venv() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(cache) = var("SOVEREIGN_CACHE") {
        return cache.join("venv");
    }
    if let Some(xdg) = var("XDG_CACHE_HOME") {
        return xdg.join("sovereign-ml/venv");
    }
    var("HOME").expect("HOME is set").join(".cache/sovereign-ml/venv")
}

/// The venv's Python, after checking that pyarrow, deltalake and numpy import.
fn python() -> PathBuf {
    let py = venv().join("bin/python");
    assert!(
        py.is_file(),
        "the peers' Python venv is missing ({}): run `cargo xtask peers` to install numpy, pyarrow and deltalake",
        py.display()
    );
    let ok = Command::new(&py).args(["-c", "import pyarrow, deltalake, numpy"]).output().expect("run python");
    assert!(
        ok.status.success(),
        "pyarrow/deltalake/numpy do not import in {}: run `cargo xtask peers`\n{}",
        py.display(),
        String::from_utf8_lossy(&ok.stderr)
    );
    py
}

/// Runs `kernels/tests/pydata/<script>` and returns its stdout; fails the test on a non-zero exit.
fn run(script: &str, args: &[&Path]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pydata");
    let out = Command::new(python()).arg(dir.join(script)).args(args).current_dir(&dir).output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_f64(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else {
        let s = format!("{x:?}"); // shortest round-trip form; always has '.' or 'e'
        if s.contains(['.', 'e', 'E']) { s } else { format!("{s}.0") }
    }
}

/// `{"name": [values...], ...}` of a batch: exact floats, raw timestamp integers.
fn json_columns(batch: &RecordBatch) -> String {
    let mut out = String::from("{");
    for (k, field) in batch.schema_ref().fields().iter().enumerate() {
        let col = batch.column(k);
        let col = match col.data_type() {
            DataType::Dictionary(_, v) => arrow::compute::cast(col, v).unwrap(),
            _ => col.clone(),
        };
        let values: Vec<String> = (0..col.len())
            .map(|i| {
                if col.is_null(i) {
                    return "null".into();
                }
                match col.data_type() {
                    DataType::Float64 => json_f64(col.as_primitive::<Float64Type>().value(i)),
                    DataType::Float32 => json_f64(col.as_primitive::<Float32Type>().value(i) as f64),
                    DataType::Int64 => col.as_primitive::<Int64Type>().value(i).to_string(),
                    DataType::Int32 => col.as_primitive::<Int32Type>().value(i).to_string(),
                    DataType::Timestamp(..) => arrow::compute::cast(&col.slice(i, 1), &DataType::Int64)
                        .unwrap()
                        .as_primitive::<Int64Type>()
                        .value(0)
                        .to_string(),
                    DataType::Boolean => col.as_boolean().value(i).to_string(),
                    DataType::Utf8 => json_str(col.as_string::<i32>().value(i)),
                    other => panic!("no JSON for {other}"),
                }
            })
            .collect();
        write!(out, "{}{}: [{}]", if k == 0 { "" } else { ", " }, json_str(field.name()), values.join(", ")).unwrap();
    }
    out.push('}');
    out
}

#[test]
fn pyarrow_reads_our_parquet_with_identical_values() {
    let tx = super::tiny_transactions();
    let extra = record_batch(vec![
        (
            "x",
            Column::OptF64(
                (0..200)
                    .map(|i| match i % 7 {
                        0 => None,
                        1 => Some(f64::NAN),
                        _ => Some(i as f64 / 3.0 - 1e-300),
                    })
                    .collect(),
            ),
        ),
        ("cat", Column::Category((0..200).map(|i| ["α", "b\"q", "c\\d"][i % 3].to_string()).collect())),
        ("t_ns", Column::TimestampNanos((0..200).map(|i| i64::MAX - i).collect())),
        ("small", Column::F32((0..200).map(|i| i as f32 * 0.1).collect())),
    ])
    .unwrap();
    let dir = TempDir::new("py-pq");
    for (case, batch, options) in [
        ("transactions, zstd, 512-row groups", &tx, WriteOptions { row_group_rows: 512, ..Default::default() }),
        (
            "nulls, NaN, dictionary, ns timestamps, snappy",
            &extra,
            WriteOptions { compression: kernels::data::Compression::Snappy, ..Default::default() },
        ),
    ] {
        let file = dir.path().join("t.parquet");
        let expected = dir.path().join("t.json");
        write_parquet(&file, batch.schema_ref(), std::slice::from_ref(batch), &options).unwrap();
        std::fs::write(&expected, format!("{{\"rows\": {}, \"columns\": {}}}", batch.num_rows(), json_columns(batch)))
            .unwrap();
        let out = run("compare_parquet.py", &[&file, &expected]);
        assert_eq!(out.trim(), format!("OK {}", batch.num_rows()), "{case}");
    }
}

#[test]
fn python_deltalake_reads_every_version_of_our_table() {
    let dir = TempDir::new("py-delta");
    let path = dir.path().join("features");
    let batches = [feature_rows(0, 40), feature_rows(40, 25), feature_rows(65, 10)];
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let mut table = kernels::data::FeatureTable::create(&path, "card_features", &feature_schema()).await.unwrap();
        for b in &batches {
            table.append(std::slice::from_ref(b)).await.unwrap();
        }
    });
    let versions: Vec<String> = (0..=batches.len())
        .map(|v| {
            let rows = if v == 0 { RecordBatch::new_empty(feature_schema()) } else { sorted(&batches[..v]) };
            format!(
                "{{\"version\": {v}, \"key\": \"card_id\", \"rows\": {}, \"columns\": {}}}",
                rows.num_rows(),
                json_columns(&rows)
            )
        })
        .collect();
    let expected = dir.path().join("expected.json");
    std::fs::write(&expected, format!("{{\"latest\": {}, \"versions\": [{}]}}", batches.len(), versions.join(", ")))
        .unwrap();
    assert_eq!(run("compare_delta.py", &[&path, &expected]).trim(), "OK");
}

/// Compares our statistics of `column` (from the Parquet file at `file`) with NumPy's lines.
fn check_against_numpy(case: &str, numpy: &str, column: &str, array: &dyn Array, rel: f64) {
    let get = |stat: &str| -> f64 {
        let line = numpy
            .lines()
            .find(|l| l.starts_with(&format!("{column} {stat} ")))
            .unwrap_or_else(|| panic!("{case}: no {stat}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let s = column_stats(array).unwrap();
    assert_eq!(s.rows as f64, get("rows"), "{case}");
    assert_eq!(s.nulls as f64, get("nulls"), "{case}");
    assert_eq!(s.nans as f64, get("nans"), "{case}");
    let close = |ours: f64, theirs: f64, what: &str| {
        assert!(
            (ours - theirs).abs() <= rel * theirs.abs().max(1e-300),
            "{case}: {what} ours {ours:e} numpy {theirs:e}"
        );
    };
    close(s.mean, get("mean"), "mean");
    close(s.std(), get("std"), "std");
    close(s.sample_std(), get("sample_std"), "sample std");
    assert_eq!((s.min, s.max), (get("min"), get("max")), "{case}: min/max are exact");
    let qs = [0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0];
    for (q, ours) in qs.iter().zip(quantiles(array, &qs).unwrap()) {
        close(ours, get(&format!("q{q:?}")), &format!("quantile {q}"));
    }
}

#[test]
fn statistics_equal_numpy() {
    let n = 50_000;
    let u: Vec<f64> = datasets::vectors::uniform(n, 9).into_iter().map(f64::from).collect();
    let tx = super::tiny_transactions();
    let batch = record_batch(vec![
        ("hostile", Column::F64(u.iter().map(|e| 1e9 + e * 0.01).collect())),
        (
            "holes",
            Column::OptF64(
                u.iter()
                    .enumerate()
                    .map(|(i, &e)| {
                        if i % 4 == 0 {
                            None
                        } else if i % 9 == 0 {
                            Some(f64::NAN)
                        } else {
                            Some(e * 1e3)
                        }
                    })
                    .collect(),
            ),
        ),
        ("single", Column::F32(u.iter().map(|&e| (e * 100.0) as f32).collect())),
    ])
    .unwrap();
    let dir = TempDir::new("py-np");
    let file = dir.path().join("s.parquet");
    write_parquet(&file, batch.schema_ref(), std::slice::from_ref(&batch), &WriteOptions::default()).unwrap();
    let amounts = dir.path().join("tx.parquet");
    write_parquet(&amounts, tx.schema_ref(), std::slice::from_ref(&tx), &WriteOptions::default()).unwrap();
    let numpy = run("numpy_stats.py", &[&file, Path::new("hostile"), Path::new("holes"), Path::new("single")]);
    let numpy_tx = run("numpy_stats.py", &[&amounts, Path::new("amount")]);
    let back = read_parquet(&file, &ReadOptions::default()).unwrap().concat().unwrap();
    // Tolerance: 1e-12 relative. On `hostile` both NumPy (pairwise, two-pass) and we are
    // accurate to ~1e-9 of the *std*; the naive formula would be off by 100%.
    check_against_numpy("1e9 + noise", &numpy, "hostile", back.column(0).as_ref(), 1e-9);
    check_against_numpy("nulls and NaNs", &numpy, "holes", back.column(1).as_ref(), 1e-12);
    check_against_numpy("f32", &numpy, "single", back.column(2).as_ref(), 1e-12);
    let tx_back = read_parquet(&amounts, &ReadOptions { columns: Some(vec!["amount".into()]), ..Default::default() })
        .unwrap()
        .concat()
        .unwrap();
    check_against_numpy("transaction amounts", &numpy_tx, "amount", tx_back.column(0).as_ref(), 1e-12);
    let _ = (Arc::new(Float64Array::from(vec![0.0])), Float32Array::from(vec![0.0f32]), TimeUnit::Second);
}
