//! `kernels::score` (batch scoring) against in-memory prediction: Parquet → Parquet and Delta → Delta give
//! exactly the scores `FlatForest::predict_batch_all` gives on the whole table, every `row_id` once; a run
//! stopped midway (by its callback, and by SIGKILL of the real `sovereign score` process) and restarted
//! writes the same rows as an uninterrupted run, none doubled or missing; the Delta output reads back in
//! Python `deltalake` (the peers' venv; without it the test fails naming `cargo xtask peers`); bad input
//! gets typed errors.

use crate::tmp::Tmp;
use std::collections::BTreeMap;
use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use arrow::array::AsArray;
use arrow::datatypes::{Float32Type, Int64Type};
use kernels::Error;
use kernels::data::{
    Column, FeatureTable, ReadOptions, RecordBatch, WriteOptions, read_parquet, record_batch, write_parquet,
};
use kernels::ml::Matrix;
use kernels::ml::flat::FlatForest;
use kernels::ml::gbm::{self, GbmConfig};
use kernels::ml::io::{self, ModelMeta};
use kernels::ml::linear::{self, LinearConfig};
use kernels::score::{OutputFormat, ScoreConfig, ScoreProgress, ScoreReport, score};
use kernels::serve_model::ModelSource;

// ------------------------------------------------------------------ helpers

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Deterministic uniform numbers in [0, 1) (xorshift).
fn uniform(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

/// Transactions: `txn_id` (from `first_id`), features `a`, `b` (every 37th missing), `n`, a text column
/// `city` and the label `y`.
fn transactions(rows: usize, seed: u64, first_id: i64) -> RecordBatch {
    let (a, b, n) = (uniform(rows, seed), uniform(rows, seed + 1), uniform(rows, seed + 2));
    let y: Vec<i64> = (0..rows).map(|i| i64::from(a[i] + 0.5 * b[i] > 0.7)).collect();
    record_batch(vec![
        ("txn_id", Column::I64((0..rows as i64).map(|i| first_id + i).collect())),
        ("a", Column::F64(a)),
        ("b", Column::OptF64(b.iter().enumerate().map(|(i, &v)| (i % 37 != 5).then_some(v)).collect())),
        ("n", Column::I64(n.iter().map(|v| (v * 10.0) as i64).collect())),
        ("city", Column::Str((0..rows).map(|i| ["paris", "lyon", "nice"][i % 3].to_string()).collect())),
        ("y", Column::I64(y)),
    ])
    .unwrap()
}

fn write(path: &Path, batch: &RecordBatch, row_group_rows: usize) {
    let options = WriteOptions { row_group_rows, ..WriteOptions::default() };
    write_parquet(path, &batch.schema(), std::slice::from_ref(batch), &options).unwrap();
}

const FEATURES: [&str; 3] = ["a", "b", "n"];

/// A boosted model trained on `batch`, saved to `dir/model.safetensors`; returns its flattened form.
fn train_gbm(batch: &RecordBatch, dir: &Path, rounds: usize) -> FlatForest {
    let x = Matrix::from_batch(batch, &FEATURES).unwrap();
    let y: Vec<f32> = Matrix::from_batch(batch, &["y"]).unwrap().column(0);
    let model = gbm::fit(&x, &y, None, &GbmConfig { num_iterations: rounds, ..GbmConfig::default() }).unwrap();
    fs::create_dir_all(dir).unwrap();
    io::save(dir.join("model.safetensors"), &model, &ModelMeta::for_data(&x)).unwrap();
    FlatForest::from_gbm(&model)
}

/// The reference: the flattened model on the whole table at once, by `txn_id`.
fn expected(model: &FlatForest, batches: &[RecordBatch]) -> BTreeMap<i64, f32> {
    let mut out = BTreeMap::new();
    for b in batches {
        let scores = model.predict_batch_all(&Matrix::from_batch(b, &FEATURES).unwrap()).unwrap();
        let ids = b.column_by_name("txn_id").unwrap().as_primitive::<Int64Type>();
        for (i, s) in scores.into_iter().enumerate() {
            out.insert(ids.value(i), s);
        }
    }
    out
}

/// `(row_id, txn_id, score)` of every output row, sorted by row_id.
fn rows_of(batches: &[RecordBatch]) -> Vec<(i64, i64, f32)> {
    let mut rows = Vec::new();
    for b in batches {
        let id = b.column_by_name("row_id").unwrap().as_primitive::<Int64Type>();
        let key = b.column_by_name("txn_id").unwrap().as_primitive::<Int64Type>();
        let score = b.column_by_name("score").unwrap().as_primitive::<Float32Type>();
        for i in 0..b.num_rows() {
            rows.push((id.value(i), key.value(i), score.value(i)));
        }
    }
    rows.sort_by_key(|r| r.0);
    rows
}

/// Every row of a scoring output (a `part=N/` Parquet dataset or a Delta table).
fn read_output(path: &Path, format: OutputFormat) -> Vec<(i64, i64, f32)> {
    let batches = match format {
        OutputFormat::Delta => rt().block_on(async { FeatureTable::open(path).await?.read().await }).unwrap(),
        OutputFormat::Parquet => {
            let mut files: Vec<PathBuf> = fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("part="))
                .flat_map(|d| fs::read_dir(d).unwrap().map(|e| e.unwrap().path()))
                .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
                .collect();
            files.sort();
            files.iter().flat_map(|f| read_parquet(f, &ReadOptions::default()).unwrap().batches).collect()
        }
    };
    rows_of(&batches)
}

/// Output rows are exactly row_ids 0..n (none doubled or missing) with the reference's score for their key.
fn check_against(rows: &[(i64, i64, f32)], want: &BTreeMap<i64, f32>) {
    assert_eq!(rows.len(), want.len(), "rows written vs input rows");
    for (i, &(row_id, key, s)) in rows.iter().enumerate() {
        assert_eq!(row_id, i as i64, "row_ids must be 0..n, each once");
        assert_eq!(want.get(&key).copied(), Some(s), "score of txn {key}");
    }
}

fn config(model_dir: &Path, input: &Path, output: &Path, format: OutputFormat) -> ScoreConfig {
    ScoreConfig {
        format,
        key: Some("txn_id".into()),
        part_rows: 600,
        batch_rows: 128,
        ..ScoreConfig::new(ModelSource::file(model_dir, None), input, output)
    }
}

fn run(config: &ScoreConfig) -> kernels::Result<ScoreReport> {
    score(config, &mut |_: &ScoreProgress| ControlFlow::Continue(()))
}

/// Runs until `parts` parts are committed, then asks to stop.
fn run_until(config: &ScoreConfig, parts: usize) -> ScoreReport {
    let mut first = None;
    score(config, &mut |p: &ScoreProgress| {
        let start = *first.get_or_insert(p.parts_done);
        if p.parts_done >= start + parts { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })
    .unwrap()
}

// ------------------------------------------------------------------ round trips

#[test]
fn score_parquet_to_parquet_equals_in_memory_prediction() {
    let t = Tmp::new("pq");
    let table = transactions(3_000, 1, 1_000);
    write(&t.join("txns.parquet"), &table, 250);
    let model = train_gbm(&table, &t.join("model"), 20);
    let cfg = config(&t.join("model"), &t.join("txns.parquet"), &t.join("scores"), OutputFormat::Parquet);
    let report = run(&cfg).unwrap();
    assert!(report.complete && report.rows_total == 3_000 && report.rows_resumed == 0, "{report:?}");
    assert_eq!(report.parts_total, 4, "3,000 rows in 250-row groups cut at >= 600 rows: 4 parts of 750");
    assert!(t.join("scores/_SUCCESS").is_file() && t.join("scores/part=3/part-00003.parquet").is_file());
    check_against(&read_output(&t.join("scores"), OutputFormat::Parquet), &expected(&model, &[table]));
}

#[test]
fn score_delta_to_delta_equals_in_memory_prediction_and_reads_in_python_deltalake() {
    let t = Tmp::new("delta");
    let (first, second) = (transactions(1_500, 2, 0), transactions(900, 3, 10_000));
    let input = t.join("txns");
    rt().block_on(async {
        let mut table = FeatureTable::create(&input, "txns", &first.schema()).await?;
        table.append(std::slice::from_ref(&first)).await?;
        table.append(std::slice::from_ref(&second)).await
    })
    .unwrap();
    let model = train_gbm(&first, &t.join("model"), 20);
    let cfg = config(&t.join("model"), &input, &t.join("scores"), OutputFormat::Delta);
    let report = run(&cfg).unwrap();
    assert!(report.complete && report.rows_total == 2_400, "{report:?}");
    assert!(report.delta_version.is_some_and(|v| v >= 1), "{report:?}");
    let rows = read_output(&t.join("scores"), OutputFormat::Delta);
    check_against(&rows, &expected(&model, &[first, second]));

    // The `deltalake` package (delta-rs' Python face) reads the table, with `part` as a partition column.
    let py = crate::formats::python_with("deltalake, pyarrow");
    // The script leaves with os._exit after flushing: deltalake's native runtime threads can abort the
    // interpreter's normal shutdown ("terminate called without an active exception"), as
    // kernels/tests/pydata/compare_delta.py explains.
    let script = "import os, sys, json, deltalake\n\
        t = deltalake.DeltaTable(sys.argv[1])\n\
        a = t.to_pyarrow_table()\n\
        ids = a.column('row_id').to_pylist()\n\
        print(json.dumps({'rows': a.num_rows, 'unique': len(set(ids)), 'min': min(ids), 'max': max(ids),\n\
            'parts': sorted(set(a.column('part').to_pylist())), 'partition_columns': t.metadata().partition_columns,\n\
            'score_sum': sum(a.column('score').to_pylist())}))\n\
        sys.stdout.flush()\n\
        os._exit(0)";
    let out = std::process::Command::new(py).args(["-c", script]).arg(t.join("scores")).output().unwrap();
    assert!(out.status.success(), "deltalake failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["rows"].as_u64(), v["unique"].as_u64()), (Some(2_400), Some(2_400)), "{v}");
    assert_eq!((v["min"].as_i64(), v["max"].as_i64()), (Some(0), Some(2_399)), "{v}");
    assert_eq!(v["partition_columns"], serde_json::json!(["part"]));
    assert_eq!(v["parts"].as_array().map(Vec::len), Some(report.parts_total), "{v}");
    let sum: f64 = rows.iter().map(|r| f64::from(r.2)).sum();
    assert!((v["score_sum"].as_f64().unwrap() - sum).abs() < 1e-3, "{v} vs {sum}");
}

#[test]
fn score_stopped_midway_then_rerun_writes_what_one_run_writes() {
    for format in [OutputFormat::Parquet, OutputFormat::Delta] {
        let t = Tmp::new("resume");
        let table = transactions(4_000, 4, 0);
        write(&t.join("txns.parquet"), &table, 200);
        train_gbm(&table, &t.join("model"), 10);
        let whole = config(&t.join("model"), &t.join("txns.parquet"), &t.join("whole"), format);
        run(&whole).unwrap();

        let cut = config(&t.join("model"), &t.join("txns.parquet"), &t.join("cut"), format);
        let first = run_until(&cut, 2);
        assert!(!first.complete && first.rows_scored < 4_000, "{format:?}: {first:?}");
        let second = run(&cut).unwrap();
        assert!(second.complete && second.parts_resumed >= 2, "{format:?}: {second:?}");
        assert_eq!(second.rows_resumed + second.rows_scored, 4_000, "{format:?}: {second:?}");
        assert_eq!(read_output(&t.join("cut"), format), read_output(&t.join("whole"), format), "{format:?}");
        // A third run finds everything committed and scores nothing.
        let third = run(&cut).unwrap();
        assert_eq!((third.rows_scored, third.rows_resumed), (0, 4_000), "{format:?}");
        assert_eq!(read_output(&t.join("cut"), format).len(), 4_000, "{format:?}");
    }
}

#[test]
fn score_parts_scored_by_separate_workers_make_up_the_whole_output() {
    for format in [OutputFormat::Parquet, OutputFormat::Delta] {
        let t = Tmp::new("parts");
        let table = transactions(3_000, 8, 0);
        write(&t.join("txns.parquet"), &table, 300);
        let model = train_gbm(&table, &t.join("model"), 8);
        let base = config(&t.join("model"), &t.join("txns.parquet"), &t.join("out"), format);
        // Two workers on disjoint ranges of the 5 parts, the second started before the first finished.
        let (first, second) =
            (ScoreConfig { parts: Some(0..2), ..base.clone() }, ScoreConfig { parts: Some(2..5), ..base.clone() });
        let report = run(&first).unwrap();
        assert_eq!((report.parts_total, report.rows_total), (2, 1_200), "{format:?}: {report:?}");
        assert!(!t.join("out/_SUCCESS").exists(), "{format:?}: not complete with one range done");
        assert!(run(&second).unwrap().complete);
        check_against(&read_output(&t.join("out"), format), &expected(&model, &[table]));
        if format == OutputFormat::Parquet {
            assert!(t.join("out/_SUCCESS").is_file(), "the last range completes the dataset");
        }
        // A range the input does not have is refused.
        check(&ScoreConfig { parts: Some(4..9), ..base.clone() }, Want::Invalid);
        // Every part done: a run over all of them scores nothing.
        assert_eq!(run(&base).unwrap().rows_resumed, 3_000, "{format:?}");
    }
}

/// The real binary, killed with SIGKILL once its first part is committed, then run again: the same rows as
/// an uninterrupted run, none doubled or missing.
#[cfg(feature = "cli")]
#[test]
fn score_cli_killed_after_a_commit_then_restarted_writes_what_one_run_writes() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    for (format, first_commit) in
        [("delta", "_delta_log/00000000000000000001.json"), ("parquet", "part=0/part-00000.parquet")]
    {
        let t = Tmp::new("kill");
        let table = transactions(120_000, 5, 0);
        write(&t.join("txns.parquet"), &table, 1_000);
        let model = train_gbm(&table.slice(0, 20_000), &t.join("model"), 60);
        let args = |out: &str| -> Vec<String> {
            let input = t.join("txns.parquet");
            let model = t.join("model");
            [
                "score",
                "--model-dir",
                model.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--output",
                t.join(out).to_str().unwrap(),
                "--format",
                format,
                "--key",
                "txn_id",
                "--part-rows",
                "1000",
                "--batch-rows",
                "500",
            ]
            .map(String::from)
            .to_vec()
        };
        let bin = assert_cmd::cargo::cargo_bin("sovereign");
        let mut child =
            Command::new(&bin).args(args("cut")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !t.join("cut").join(first_commit).exists() {
            assert!(child.try_wait().unwrap().is_none(), "{format}: sovereign score exited before its first commit");
            assert!(Instant::now() < deadline, "{format}: no commit within 120 s");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let partial =
            read_output(&t.join("cut"), if format == "delta" { OutputFormat::Delta } else { OutputFormat::Parquet });
        assert!(!partial.is_empty() && partial.len() < 120_000, "{format}: killed too late ({} rows)", partial.len());

        let status = Command::new(&bin).args(args("cut")).stdout(Stdio::null()).status().unwrap();
        assert!(status.success(), "{format}: the restarted run failed");
        let status = Command::new(&bin).args(args("whole")).stdout(Stdio::null()).status().unwrap();
        assert!(status.success(), "{format}: the uninterrupted run failed");
        let f = if format == "delta" { OutputFormat::Delta } else { OutputFormat::Parquet };
        let (cut, whole) = (read_output(&t.join("cut"), f), read_output(&t.join("whole"), f));
        assert_eq!(cut.len(), 120_000, "{format}");
        assert!(cut == whole, "{format}: the restarted output differs from an uninterrupted run's");
        check_against(&cut, &expected(&model, &[table]));
    }
}

// ------------------------------------------------------------------ bad input

/// What a bad configuration must fail with.
enum Want {
    MissingColumn(&'static str),
    ColumnType(&'static str),
    ModelMismatch(&'static str),
    OutputExists,
    Input,
    Invalid,
}

fn check(config: &ScoreConfig, want: Want) {
    let got = run(config).expect_err("a bad configuration must fail");
    let ok = match (&want, &got) {
        (Want::MissingColumn(c), Error::MissingColumn { column, .. }) => column == c,
        (Want::ColumnType(c), Error::ColumnType { column, .. }) => column == c,
        (Want::ModelMismatch(needle), Error::ScoreModelMismatch { reason, .. }) => reason.contains(needle),
        (Want::OutputExists, Error::ScoreOutputExists { .. }) => true,
        (Want::Input, Error::ScoreInput { .. }) => true,
        (Want::Invalid, Error::InvalidParameter(_)) => true,
        _ => false,
    };
    assert!(ok, "wrong error: {got}");
}

#[test]
fn score_bad_input_gets_typed_errors() {
    let t = Tmp::new("bad");
    let table = transactions(800, 6, 0);
    write(&t.join("txns.parquet"), &table, 200);
    train_gbm(&table, &t.join("model"), 5);
    let good = config(&t.join("model"), &t.join("txns.parquet"), &t.join("out"), OutputFormat::Parquet);
    let with = |f: &dyn Fn(&mut ScoreConfig)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };

    // A feature column missing, and a feature that is text.
    let no_b = record_batch(vec![
        ("txn_id", Column::I64(vec![1, 2])),
        ("a", Column::F64(vec![0.1, 0.2])),
        ("n", Column::I64(vec![1, 2])),
    ]);
    write(&t.join("no_b.parquet"), &no_b.unwrap(), 10);
    check(&with(&|c| c.input = t.join("no_b.parquet")), Want::MissingColumn("b"));
    let text_b = record_batch(vec![
        ("txn_id", Column::I64(vec![1, 2])),
        ("a", Column::F64(vec![0.1, 0.2])),
        ("b", Column::Str(vec!["x".into(), "y".into()])),
        ("n", Column::I64(vec![1, 2])),
    ]);
    write(&t.join("text_b.parquet"), &text_b.unwrap(), 10);
    check(&with(&|c| c.input = t.join("text_b.parquet")), Want::ColumnType("b"));
    check(&with(&|c| c.key = Some("nope".into())), Want::MissingColumn("nope"));
    check(&with(&|c| c.key = Some("score".into())), Want::Invalid);
    check(&with(&|c| c.part_rows = 0), Want::Invalid);
    check(&with(&|c| c.input = t.join("absent.parquet")), Want::Input);
    fs::create_dir_all(t.join("empty")).unwrap();
    check(&with(&|c| c.input = t.join("empty")), Want::Input);

    // A linear model cannot take the missing values of `b`: a model/input mismatch naming the row.
    let x = Matrix::from_rows(&[vec![0.0, 1.0, 2.0], vec![1.0, 0.0, 1.0], vec![2.0, 2.0, 0.0], vec![0.5, 1.5, 1.0]])
        .unwrap()
        .with_names(FEATURES.map(String::from).to_vec())
        .unwrap();
    let lin = linear::fit(&x, &[1.0, 2.0, 3.0, 4.0], &LinearConfig::default()).unwrap();
    fs::create_dir_all(t.join("linear")).unwrap();
    io::save(t.join("linear/model.safetensors"), &lin, &ModelMeta::for_data(&x)).unwrap();
    check(
        &with(&|c| {
            c.model = ModelSource::file(t.join("linear"), None);
            c.output = t.join("linear_out");
        }),
        Want::ModelMismatch("has no value for feature \"b\""),
    );

    // An output holding another model's scores, or files of its own, is refused unless overwrite is set.
    run(&good).unwrap();
    train_gbm(&table, &t.join("model2"), 6);
    let other_model = with(&|c| c.model = ModelSource::file(t.join("model2"), None));
    check(&other_model, Want::OutputExists);
    let mut forced = other_model.clone();
    forced.overwrite = true;
    assert!(run(&forced).unwrap().complete);
    fs::create_dir_all(t.join("busy")).unwrap();
    fs::write(t.join("busy/notes.txt"), "mine").unwrap();
    check(&with(&|c| c.output = t.join("busy")), Want::OutputExists);
    assert!(t.join("busy/notes.txt").is_file(), "a refused output is left alone");
}

/// `sovereign score` names the bad column and exits 1.
#[cfg(feature = "cli")]
#[test]
fn score_cli_bad_input_exits_1_naming_the_column() {
    let t = Tmp::new("clibad");
    let table = transactions(300, 7, 0);
    write(&t.join("txns.parquet"), &table, 100);
    train_gbm(&table, &t.join("model"), 3);
    let text_b = record_batch(vec![
        ("a", Column::F64(vec![0.1])),
        ("b", Column::Str(vec!["x".into()])),
        ("n", Column::I64(vec![1])),
    ]);
    write(&t.join("text_b.parquet"), &text_b.unwrap(), 10);
    let out = assert_cmd::Command::cargo_bin("sovereign")
        .unwrap()
        .args(["score", "--model-dir"])
        .arg(t.join("model"))
        .arg("--input")
        .arg(t.join("text_b.parquet"))
        .arg("--output")
        .arg(t.join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("column \"b\"") && !stderr.contains("panicked"), "{stderr}");
    let ok = assert_cmd::Command::cargo_bin("sovereign")
        .unwrap()
        .args(["score", "--json", "--format", "delta", "--model-dir"])
        .arg(t.join("model"))
        .arg("--input")
        .arg(t.join("txns.parquet"))
        .arg("--output")
        .arg(t.join("out"))
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!((v["rows_total"].as_u64(), v["complete"].as_bool()), (Some(300), Some(true)), "{v}");
}

/// `sovereign score --registry --keyring --model fraud` scores with the version promoted to production,
/// verified against the keyring, and refuses a stage no version is in.
#[cfg(feature = "cli")]
#[test]
fn score_cli_takes_a_verified_registry_version() {
    use kernels::registry::{ArtefactSource, Keyring, ModelRef, PushSpec, Registry, Signer, Stage, keygen};

    let t = Tmp::new("registry");
    let table = transactions(1_200, 9, 0);
    write(&t.join("txns.parquet"), &table, 200);
    let model = train_gbm(&table, &t.join("model"), 6);
    let keys = keygen(&t.join("keys"), "release").unwrap();
    let (signer, keyring) = (Signer::load(&keys.secret).unwrap(), Keyring::load(&keys.public).unwrap());
    let reg = Registry::open(&t.join("reg")).unwrap();
    let artefact = ArtefactSource::path("model.safetensors", t.join("model/model.safetensors"));
    reg.push(&PushSpec::new("fraud", 1).artefact(artefact), &signer).unwrap();
    reg.promote(&ModelRef::new("fraud", 1).unwrap(), Stage::Production, &signer, &keyring).unwrap();
    let cmd = |spec: &str, out: &str| {
        assert_cmd::Command::cargo_bin("sovereign")
            .unwrap()
            .args(["score", "--key", "txn_id", "--registry"])
            .arg(t.join("reg"))
            .arg("--keyring")
            .arg(&keys.public)
            .args(["--model", spec, "--input"])
            .arg(t.join("txns.parquet"))
            .arg("--output")
            .arg(t.join(out))
            .output()
            .unwrap()
    };
    let ok = cmd("fraud", "scores");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    check_against(&read_output(&t.join("scores"), OutputFormat::Parquet), &expected(&model, &[table]));
    let bad = cmd("fraud@staging", "staging");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no version of fraud is in stage staging"), "{stderr}");
}
