//! The `sovereign` binary end to end (`ml` and `registry`), run as a process with `assert_cmd`: round
//! trips checked against the library (a model loaded in-process predicts what `ml predict` wrote, `ml eval`
//! reports what `kernels::ml::metrics` computes, `registry pull` returns the pushed bytes), the tamper and
//! wrong-passphrase paths, and every bad input exits non-zero with a message naming the bad thing.
//! Also keeps the registry fuzz target's seeds (`kernels/fuzz/seeds/registry_manifest/`) canonical.

use crate::tmp::Tmp;
use std::fs;
use std::path::Path;

use assert_cmd::Command;
use kernels::data::{Column, ReadOptions, read_parquet, record_batch, write_parquet};
use kernels::ml::Matrix;
use kernels::ml::forest::RandomForest;
use kernels::ml::gbm::Gbm;
use kernels::ml::io;
use kernels::registry::{ArtefactEntry, Digest, KeyId, Manifest, ModelRef, Registry};
use serde_json::Value;

// ------------------------------------------------------------------ helpers

/// `sovereign ARGS…` in `dir`.
fn sovereign(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("sovereign").expect("the sovereign binary (feature cli)");
    cmd.current_dir(dir).args(args);
    cmd
}

/// Runs and expects success; returns stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = sovereign(dir, args).output().expect("run sovereign");
    assert!(
        out.status.success(),
        "sovereign {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs and expects success with `--json` output.
fn ok_json(dir: &Path, args: &[&str]) -> Value {
    let out = ok(dir, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("sovereign {args:?}: not JSON ({e}):\n{out}"))
}

/// Runs and expects failure (exit 1) with every one of `needles` in stderr; returns stderr.
fn fails(dir: &Path, args: &[&str], needles: &[&str]) -> String {
    let out = sovereign(dir, args).output().expect("run sovereign");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "sovereign {args:?} succeeded, expected a failure");
    assert_eq!(out.status.code(), Some(1), "sovereign {args:?}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "sovereign {args:?}: stderr lacks {n:?}:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "sovereign {args:?} panicked:\n{stderr}");
    stderr
}

/// Deterministic uniform numbers in [0, 1) (xorshift), so failures reproduce.
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

/// A binary classification table: `a`, `b` (with a few nulls), `n` (an integer), `city` (a string) and the
/// label `y` = 1 when `a + b/2 + noise > 0.6` (noise keeps the classes overlapping a little).
fn write_classification(path: &Path, rows: usize, seed: u64) {
    let (a, b, n, noise) =
        (uniform(rows, seed), uniform(rows, seed + 1), uniform(rows, seed + 2), uniform(rows, seed + 3));
    let y: Vec<i64> = (0..rows).map(|i| i64::from(a[i] + 0.5 * b[i] + 0.2 * (noise[i] - 0.5) > 0.6)).collect();
    let b_opt: Vec<Option<f64>> = b.iter().enumerate().map(|(i, &v)| (i % 37 != 5).then_some(v)).collect();
    let batch = record_batch(vec![
        ("a", Column::F64(a)),
        ("b", Column::OptF64(b_opt)),
        ("n", Column::I64(n.iter().map(|v| (v * 10.0) as i64).collect())),
        ("city", Column::Str((0..rows).map(|i| ["paris", "lyon", "nice"][i % 3].to_string()).collect())),
        ("y", Column::I64(y)),
    ])
    .unwrap();
    write_parquet(path, &batch.schema(), &[batch], &Default::default()).unwrap();
}

/// A regression table: `x1`, `x2` and `t = 3·x1 − 2·x2 + 1`.
fn write_regression(path: &Path, rows: usize) {
    let (x1, x2) = (uniform(rows, 11), uniform(rows, 12));
    let t: Vec<f64> = x1.iter().zip(&x2).map(|(a, b)| 3.0 * a - 2.0 * b + 1.0).collect();
    let batch = record_batch(vec![("x1", Column::F64(x1)), ("x2", Column::F64(x2)), ("t", Column::F64(t))]).unwrap();
    write_parquet(path, &batch.schema(), &[batch], &Default::default()).unwrap();
}

fn read_batch(path: &Path) -> kernels::data::RecordBatch {
    read_parquet(path, &ReadOptions::default()).unwrap().concat().unwrap()
}

fn f64_column(batch: &kernels::data::RecordBatch, name: &str) -> Vec<f64> {
    Matrix::from_batch(batch, &[name]).unwrap().column(0).into_iter().map(f64::from).collect()
}

fn metric(v: &Value, name: &str) -> f64 {
    v["metrics"][name].as_f64().unwrap_or_else(|| panic!("no metric {name} in {v}"))
}

// ------------------------------------------------------------------ ml

#[test]
fn cli_ml_forest_train_predict_eval_round_trip() {
    let t = Tmp::new("forest");
    write_classification(&t.join("train.parquet"), 600, 1);
    write_classification(&t.join("test.parquet"), 300, 2);
    let trained = ok_json(
        &t.0,
        &[
            "ml",
            "train",
            "--algo",
            "forest",
            "--data",
            "train.parquet",
            "--target",
            "y",
            "--features",
            "a,b,n",
            "--valid",
            "test.parquet",
            "--out",
            "model",
            "--trees",
            "30",
            "--max-depth",
            "8",
            "--seed",
            "3",
            "--json",
        ],
    );
    assert_eq!(trained["task"], "classification");
    assert_eq!(trained["classes"], 2);
    assert_eq!(trained["features"], serde_json::json!(["a", "b", "n"]));
    assert!(metric(&trained, "train_accuracy") > 0.9, "{trained}");
    assert!(metric(&trained, "valid_roc_auc") > 0.9, "{trained}");

    // The saved model is a forest with the feature names and metrics printed.
    let (forest, meta) = io::load::<RandomForest>(t.join("model/model.safetensors")).unwrap();
    assert_eq!(meta.feature_names, ["a", "b", "n"]);
    assert_eq!(meta.metrics.get("valid_roc_auc").copied(), Some(metric(&trained, "valid_roc_auc")));
    assert_eq!(forest.trees().len(), 30);

    // predict writes the input columns plus prediction/probability, equal to the library's predictions.
    ok(&t.0, &["ml", "predict", "--model", "model", "--data", "test.parquet", "--out", "scored.parquet"]);
    let scored = read_batch(&t.join("scored.parquet"));
    let names: Vec<String> = scored.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["a", "b", "n", "city", "y", "prediction", "probability"]);
    let x = Matrix::from_batch(&read_batch(&t.join("test.parquet")), &["a", "b", "n"]).unwrap();
    assert!(x.data().iter().any(|v| v.is_nan()), "the nulls of b are missing values");
    let want: Vec<f64> = forest.predict(&x).unwrap().into_iter().map(f64::from).collect();
    assert_eq!(f64_column(&scored, "prediction"), want);
    let proba = forest.predict_proba(&x).unwrap();
    let want_p: Vec<f64> = proba.chunks_exact(2).map(|p| f64::from(p[1])).collect();
    assert_eq!(f64_column(&scored, "probability"), want_p);

    // eval reports the metrics the library computes on the same table.
    let eval = ok_json(&t.0, &["ml", "eval", "--model", "model", "--data", "test.parquet", "--target", "y", "--json"]);
    let y: Vec<f32> = f64_column(&scored, "y").into_iter().map(|v| v as f32).collect();
    let p32: Vec<f32> = want_p.iter().map(|&v| v as f32).collect();
    assert_eq!(metric(&eval, "roc_auc"), kernels::ml::metrics::roc_auc(&y, &p32).unwrap());
    let pred32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    assert_eq!(metric(&eval, "accuracy"), kernels::ml::metrics::accuracy(&y, &pred32).unwrap());
    assert_eq!(metric(&eval, "roc_auc"), metric(&trained, "valid_roc_auc"));
    let text = ok(&t.0, &["ml", "eval", "--model", "model", "--data", "test.parquet", "--target", "y"]);
    assert!(text.contains("roc_auc") && text.contains("accuracy"), "{text}");
}

#[test]
fn cli_ml_gbm_with_early_stopping_round_trip() {
    let t = Tmp::new("gbm");
    write_classification(&t.join("train.parquet"), 800, 5);
    write_classification(&t.join("valid.parquet"), 300, 6);
    let trained = ok_json(
        &t.0,
        &[
            "ml",
            "train",
            "--algo",
            "gbm",
            "--data",
            "train.parquet",
            "--target",
            "y",
            "--features",
            "a,b,n",
            "--valid",
            "valid.parquet",
            "--out",
            "gbm",
            "--rounds",
            "60",
            "--leaves",
            "8",
            "--learning-rate",
            "0.2",
            "--early-stopping",
            "5",
            "--json",
        ],
    );
    assert!(metric(&trained, "valid_roc_auc") > 0.9, "{trained}");
    let best = metric(&trained, "best_iteration");
    let (gbm, _) = io::load::<Gbm>(t.join("gbm/model.safetensors")).unwrap();
    assert_eq!(gbm.trees().len() as f64, best);

    ok(&t.0, &["ml", "predict", "--model", "gbm/model.safetensors", "--data", "valid.parquet", "--out", "s.parquet"]);
    let scored = read_batch(&t.join("s.parquet"));
    let x = Matrix::from_batch(&read_batch(&t.join("valid.parquet")), &["a", "b", "n"]).unwrap();
    let want: Vec<f64> = gbm.predict_proba(&x).unwrap().into_iter().map(f64::from).collect();
    assert_eq!(f64_column(&scored, "probability"), want);
    let eval = ok_json(&t.0, &["ml", "eval", "--model", "gbm", "--data", "valid.parquet", "--target", "y", "--json"]);
    assert_eq!(metric(&eval, "roc_auc"), metric(&trained, "valid_roc_auc"));
}

#[test]
fn cli_ml_linear_logistic_tree_kmeans_train_and_eval() {
    let t = Tmp::new("others");
    write_regression(&t.join("reg.parquet"), 200);
    write_classification(&t.join("cls.parquet"), 300, 9);
    let lin = ok_json(
        &t.0,
        &["ml", "train", "--algo", "linear", "--data", "reg.parquet", "--target", "t", "--out", "lin", "--json"],
    );
    assert!(metric(&lin, "train_r2") > 0.999_999, "an exact linear target: {lin}");
    let tree = ok_json(
        &t.0,
        &[
            "ml",
            "train",
            "--algo",
            "tree",
            "--data",
            "reg.parquet",
            "--target",
            "t",
            "--out",
            "tree",
            "--max-depth",
            "4",
            "--json",
        ],
    );
    assert_eq!(tree["task"], "regression", "a float target is a regression");
    let eval = ok_json(&t.0, &["ml", "eval", "--model", "tree", "--data", "reg.parquet", "--target", "t", "--json"]);
    assert_eq!(metric(&eval, "r2"), metric(&tree, "train_r2"));

    let logit = ok_json(
        &t.0,
        &[
            "ml",
            "train",
            "--algo",
            "logistic",
            "--data",
            "cls.parquet",
            "--target",
            "y",
            "--features",
            "a,n",
            "--out",
            "logit",
            "--c",
            "10",
            "--json",
        ],
    );
    assert!(metric(&logit, "train_roc_auc") > 0.8, "{logit}");

    let km = ok_json(
        &t.0,
        &[
            "ml",
            "train",
            "--algo",
            "kmeans",
            "--data",
            "reg.parquet",
            "--features",
            "x1,x2",
            "--out",
            "km",
            "--k",
            "3",
            "--json",
        ],
    );
    assert_eq!(km["task"], "clustering");
    ok(&t.0, &["ml", "predict", "--model", "km", "--data", "reg.parquet", "--out", "c.parquet"]);
    let clusters = f64_column(&read_batch(&t.join("c.parquet")), "prediction");
    assert!(clusters.iter().all(|&c| c == 0.0 || c == 1.0 || c == 2.0));
    let eval = ok_json(&t.0, &["ml", "eval", "--model", "km", "--data", "reg.parquet", "--json"]);
    let (inertia, trained) = (metric(&eval, "inertia"), metric(&km, "train_inertia"));
    assert!((inertia - trained).abs() <= 1e-9 * trained, "{inertia} vs {trained}");
}

#[test]
fn cli_ml_bad_inputs_name_the_problem() {
    let t = Tmp::new("bad");
    write_classification(&t.join("d.parquet"), 100, 3);
    let d = &t.0;
    let train = |extra: &[&str]| {
        let mut a = vec!["ml", "train", "--data", "d.parquet", "--out", "m"];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>, needles: &[&str]| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(d, &refs, needles)
    };
    // Unknown target, unknown feature, non-numeric feature (chosen and by default).
    run(train(&["--algo", "forest", "--target", "nope"]), &["no target column \"nope\"", "city"]);
    run(train(&["--algo", "forest", "--target", "y", "--features", "a,zzz"]), &["\"zzz\""]);
    run(train(&["--algo", "forest", "--target", "y", "--features", "a,city"]), &["\"city\"", "Utf8"]);
    run(train(&["--algo", "forest", "--target", "y"]), &["column \"city\"", "not numeric", "--features"]);
    // A setting of another algorithm; a missing value for a model that needs complete rows.
    run(train(&["--algo", "gbm", "--target", "y", "--features", "a", "--trees", "5"]), &["--trees", "forest"]);
    run(train(&["--algo", "logistic", "--target", "y", "--features", "a,b"]), &["\"b\"", "missing"]);
    // Targets: one class, a non-binary label for a binary learner, non-integer classes.
    let one = record_batch(vec![("a", Column::F64(vec![0.1, 0.2, 0.3])), ("y", Column::I64(vec![1, 1, 1]))]).unwrap();
    write_parquet(t.join("one.parquet"), &one.schema(), &[one], &Default::default()).unwrap();
    fails(
        d,
        &["ml", "train", "--algo", "tree", "--data", "one.parquet", "--target", "y", "--out", "m"],
        &["\"y\"", "one class"],
    );
    run(train(&["--algo", "logistic", "--target", "n", "--features", "a"]), &["\"n\"", "binary"]);
    run(
        train(&["--algo", "tree", "--target", "a", "--features", "n", "--task", "classification"]),
        &["\"a\"", "class ids"],
    );
    // An empty table; a file that is not Parquet.
    let empty = record_batch(vec![("a", Column::F64(vec![])), ("y", Column::I64(vec![]))]).unwrap();
    write_parquet(t.join("empty.parquet"), &empty.schema(), &[empty], &Default::default()).unwrap();
    fails(
        d,
        &["ml", "train", "--algo", "tree", "--data", "empty.parquet", "--target", "y", "--out", "m"],
        &["empty.parquet", "no rows"],
    );
    fs::write(t.join("junk.parquet"), b"not parquet at all").unwrap();
    fails(
        d,
        &["ml", "train", "--algo", "tree", "--data", "junk.parquet", "--target", "y", "--out", "m"],
        &["junk.parquet"],
    );

    // Predict/eval: a model missing, a file of the wrong kind, data without the model's column.
    ok(
        d,
        &["ml", "train", "--algo", "tree", "--data", "d.parquet", "--target", "y", "--features", "a,n", "--out", "m"],
    );
    fails(d, &["ml", "predict", "--model", "nowhere", "--data", "d.parquet", "--out", "o.parquet"], &["nowhere"]);
    fails(
        d,
        &["ml", "predict", "--model", "d.parquet", "--data", "d.parquet", "--out", "o.parquet"],
        &["d.parquet", "safetensors"],
    );
    let other = record_batch(vec![("a", Column::F64(vec![0.5, 0.7]))]).unwrap();
    write_parquet(t.join("other.parquet"), &other.schema(), &[other], &Default::default()).unwrap();
    fails(d, &["ml", "predict", "--model", "m", "--data", "other.parquet", "--out", "o.parquet"], &["\"n\""]);
    fails(d, &["ml", "eval", "--model", "m", "--data", "d.parquet", "--target", "gone"], &["\"gone\""]);
    fails(d, &["ml", "eval", "--model", "m", "--data", "d.parquet"], &["--target"]);
    ok(d, &["ml", "predict", "--model", "m", "--data", "d.parquet", "--out", "o.parquet"]);
    fails(d, &["ml", "predict", "--model", "m", "--data", "o.parquet", "--out", "o2.parquet"], &["\"prediction\""]);
}

// ------------------------------------------------------------------ registry

/// Store objects may be read-only: let the test overwrite one.
fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

/// Flips a byte in the middle of a file.
fn flip_byte(path: &Path) {
    make_writable(path);
    let mut b = fs::read(path).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x55;
    fs::write(path, b).unwrap();
}

#[test]
fn cli_registry_keygen_push_verify_promote_lineage_pull() {
    let t = Tmp::new("registry");
    let d = &t.0;
    fs::write(t.join("model.safetensors"), b"weights v1").unwrap();
    fs::write(t.join("card.md"), b"# fraud model").unwrap();
    fs::write(t.join("train.parquet"), b"training rows").unwrap();
    let key = ok_json(d, &["registry", "keygen", "--dir", "keys", "--name", "release", "--json"]);
    let key_id = key["key_id"].as_str().unwrap().to_string();

    let pushed = ok_json(
        d,
        &[
            "registry",
            "push",
            "--registry",
            "reg",
            "--name",
            "fraud",
            "--version",
            "1",
            "--key",
            "keys/release.key",
            "model.safetensors",
            "notes=card.md",
            "--metric",
            "auc=0.93",
            "--training-data",
            "train.parquet",
            "--json",
        ],
    );
    assert_eq!(pushed["key_id"], key_id.as_str());
    let names: Vec<&str> =
        pushed["artefacts"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["model.safetensors", "notes"]);
    assert_eq!(pushed["training_data"], Digest::of(b"training rows").to_hex().as_str());
    fs::write(t.join("model.safetensors"), b"weights v2").unwrap();
    ok(
        d,
        &[
            "registry",
            "push",
            "--registry",
            "reg",
            "--name",
            "fraud",
            "--version",
            "2",
            "--key",
            "keys/release.key",
            "model.safetensors",
            "--parent",
            "fraud@1",
        ],
    );

    let v = ok_json(d, &["registry", "verify", "--registry", "reg", "fraud@2", "--keyring", "keys", "--json"]);
    assert_eq!(v["verified"], true);
    let promoted = ok_json(
        d,
        &[
            "registry",
            "promote",
            "--registry",
            "reg",
            "fraud@2",
            "--stage",
            "production",
            "--key",
            "keys/release.key",
            "--keyring",
            "keys",
            "--json",
        ],
    );
    assert_eq!(promoted["log_len"], 1);
    let lineage = ok_json(d, &["registry", "lineage", "--registry", "reg", "fraud@2", "--keyring", "keys", "--json"]);
    let refs: Vec<&str> = lineage.as_array().unwrap().iter().map(|n| n["reference"].as_str().unwrap()).collect();
    assert_eq!(refs, ["fraud@2", "fraud@1"]);
    assert_eq!(lineage[1]["training_data"], Digest::of(b"training rows").to_hex().as_str());
    let ls = ok_json(d, &["registry", "ls", "--registry", "reg", "--keyring", "keys", "--json"]);
    let stages: Vec<(u64, Value)> =
        ls.as_array().unwrap().iter().map(|r| (r["version"].as_u64().unwrap(), r["stage"].clone())).collect();
    assert_eq!(stages, [(1, Value::Null), (2, Value::from("production"))]);
    // The registry the library opens agrees.
    let reg = Registry::open(&t.join("reg")).unwrap();
    let ring = kernels::registry::Keyring::load(&t.join("keys")).unwrap();
    let r2: ModelRef = "fraud@2".parse().unwrap();
    assert_eq!(reg.stage_of(&r2, &ring, None).unwrap(), Some(kernels::registry::Stage::Production));

    ok(d, &["registry", "pull", "--registry", "reg", "fraud@1", "--keyring", "keys", "--out", "pulled"]);
    assert_eq!(fs::read(t.join("pulled/model.safetensors")).unwrap(), b"weights v1");
    assert_eq!(fs::read(t.join("pulled/notes")).unwrap(), b"# fraud model");

    // Export and import into a second registry, sealed with a key file.
    ok(d, &["registry", "keygen", "--dir", "keys", "--name", "transport", "--seal"]);
    ok(
        d,
        &[
            "registry",
            "export",
            "--registry",
            "reg",
            "fraud@1",
            "--keyring",
            "keys",
            "--out",
            "bundle",
            "--key-file",
            "keys/transport.seal",
        ],
    );
    assert!(t.join("bundle/artefacts/model.safetensors.sealed").is_file());
    let imported = ok_json(
        d,
        &[
            "registry",
            "import",
            "--registry",
            "reg2",
            "bundle",
            "--keyring",
            "keys",
            "--key-file",
            "keys/transport.seal",
            "--json",
        ],
    );
    assert_eq!(imported["reference"], "fraud@1");
    ok(d, &["registry", "verify", "--registry", "reg2", "fraud@1", "--keyring", "keys"]);

    // Versions are immutable; unknown versions and bad references are named.
    fails(
        d,
        &[
            "registry",
            "push",
            "--registry",
            "reg",
            "--name",
            "fraud",
            "--version",
            "1",
            "--key",
            "keys/release.key",
            "card.md",
        ],
        &["fraud@1", "already exists"],
    );
    fails(d, &["registry", "verify", "--registry", "reg", "fraud@9", "--keyring", "keys"], &["fraud@9", "not found"]);
    fails(
        d,
        &["registry", "verify", "--registry", "reg", "fraud-1", "--keyring", "keys"],
        &["fraud-1", "name@version"],
    );
    fails(
        d,
        &[
            "registry",
            "push",
            "--registry",
            "reg",
            "--name",
            "fraud",
            "--version",
            "3",
            "--key",
            "keys/release.key",
            "missing.bin",
        ],
        &["missing.bin"],
    );
    fails(
        d,
        &[
            "registry",
            "push",
            "--registry",
            "reg",
            "--name",
            "fraud",
            "--version",
            "3",
            "--key",
            "keys/release.key",
            "card.md",
            "--parent",
            "fraud@7",
        ],
        &["fraud@7", "not registered"],
    );
    fails(d, &["registry", "ls", "--registry", "nothing-here"], &["nothing-here", "not a registry"]);
    // A keyring without the signer's key: untrusted.
    ok(d, &["registry", "keygen", "--dir", "other", "--name", "stranger"]);
    fails(
        d,
        &["registry", "verify", "--registry", "reg", "fraud@1", "--keyring", "other/stranger.pub"],
        &[&key_id, "not in the keyring"],
    );
}

#[test]
fn cli_registry_tampered_artefact_fails_verify_naming_it() {
    let t = Tmp::new("tamper");
    let d = &t.0;
    fs::write(t.join("model.safetensors"), b"the weights of a model").unwrap();
    fs::write(t.join("config.json"), b"{}").unwrap();
    ok(d, &["registry", "keygen", "--dir", "keys", "--name", "k"]);
    ok(
        d,
        &[
            "registry",
            "push",
            "--registry",
            "reg",
            "--name",
            "m",
            "--version",
            "1",
            "--key",
            "keys/k.key",
            "model.safetensors",
            "config.json",
        ],
    );
    ok(d, &["registry", "verify", "--registry", "reg", "m@1", "--keyring", "keys"]);
    let reg = Registry::open(&t.join("reg")).unwrap();
    let object = reg.store().path_of(&Digest::of(b"the weights of a model"));
    flip_byte(&object);

    let stderr = fails(
        d,
        &["registry", "verify", "--registry", "reg", "m@1", "--keyring", "keys"],
        &["\"model.safetensors\"", "m@1", "hashes to"],
    );
    assert!(!stderr.contains("config.json"), "only the tampered artefact is named: {stderr}");
    // --json still reports the failure on stdout, with the exit status 1.
    let out = sovereign(d, &["registry", "verify", "--registry", "reg", "m@1", "--keyring", "keys", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], false);
    assert!(v["error"].as_str().unwrap().contains("model.safetensors"), "{v}");
    // Nothing is pulled or promoted from a tampered version.
    fails(
        d,
        &["registry", "pull", "--registry", "reg", "m@1", "--keyring", "keys", "--out", "o"],
        &["\"model.safetensors\""],
    );
    assert!(!t.join("o/model.safetensors").exists());
    fails(
        d,
        &[
            "registry",
            "promote",
            "--registry",
            "reg",
            "m@1",
            "--stage",
            "staging",
            "--key",
            "keys/k.key",
            "--keyring",
            "keys",
        ],
        &["\"model.safetensors\""],
    );
    // A tampered manifest is named as such.
    let manifest = reg.store().path_of(&reg.resolve(&"m@1".parse().unwrap()).unwrap());
    make_writable(&manifest);
    let mut b = fs::read(&manifest).unwrap();
    b[10] ^= 1;
    fs::write(&manifest, b).unwrap();
    fails(d, &["registry", "verify", "--registry", "reg", "m@1", "--keyring", "keys"], &["manifest", "m@1"]);
}

#[test]
fn cli_registry_sign_and_verify_file() {
    let t = Tmp::new("sign-file");
    let d = &t.0;
    fs::write(t.join("train.csv"), b"amount,label\n12.5,0\n900,1\n").unwrap();
    ok(d, &["registry", "keygen", "--dir", "keys", "--name", "release"]);
    ok(d, &["registry", "keygen", "--dir", "other", "--name", "intruder"]);
    let signed = ok_json(d, &["registry", "sign", "--key", "keys/release.key", "train.csv", "--json"]);
    assert_eq!(signed["signature"], "train.csv.sig");
    assert_eq!(fs::read(t.join("train.csv.sig")).unwrap().len(), 72);
    let v = ok_json(d, &["registry", "verify-file", "train.csv", "--keyring", "keys", "--json"]);
    assert_eq!(v["verified"], true);
    assert_eq!(v["key_id"], signed["key_id"]);
    // A key outside the keyring, then a changed byte: refused, naming what failed.
    ok(d, &["registry", "sign", "--key", "other/intruder.key", "train.csv", "--out", "intruder.sig"]);
    fails(
        d,
        &["registry", "verify-file", "train.csv", "--sig", "intruder.sig", "--keyring", "keys"],
        &["not in the keyring"],
    );
    flip_byte(&t.join("train.csv"));
    let err =
        fails(d, &["registry", "verify-file", "train.csv", "--keyring", "keys", "--json"], &["FAILED", "signature"]);
    assert!(err.contains("train.csv"), "{err}");
    fails(d, &["registry", "verify-file", "train.csv", "--sig", "none.sig", "--keyring", "keys"], &["none.sig"]);
}

#[test]
fn cli_registry_encrypt_decrypt_round_trip_and_wrong_passphrase() {
    let t = Tmp::new("seal");
    let d = &t.0;
    let plain: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(t.join("model.bin"), &plain).unwrap();
    let mut enc = sovereign(d, &["registry", "encrypt", "--passphrase-env", "SEAL_PASS", "model.bin", "model.sealed"]);
    assert!(enc.env("SEAL_PASS", "correct horse").output().unwrap().status.success());
    let sealed = fs::read(t.join("model.sealed")).unwrap();
    assert!(sealed.starts_with(b"SOVSEAL") && !sealed.windows(64).any(|w| plain.windows(64).next() == Some(w)));

    let mut dec = sovereign(d, &["registry", "decrypt", "--passphrase-env", "SEAL_PASS", "model.sealed", "back.bin"]);
    assert!(dec.env("SEAL_PASS", "correct horse").output().unwrap().status.success());
    assert_eq!(fs::read(t.join("back.bin")).unwrap(), plain);

    // A wrong passphrase: exit 1, the file named, nothing written.
    let out = sovereign(d, &["registry", "decrypt", "--passphrase-env", "SEAL_PASS", "model.sealed", "wrong.bin"])
        .env("SEAL_PASS", "battery staple")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("model.sealed"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!t.join("wrong.bin").exists());
    // An unset variable, no key at all, a raw key for a passphrase file.
    fails(
        d,
        &["registry", "decrypt", "--passphrase-env", "NO_SUCH_VAR_SOVEREIGN", "model.sealed", "x"],
        &["NO_SUCH_VAR_SOVEREIGN"],
    );
    fails(d, &["registry", "decrypt", "model.sealed", "x"], &["--key-file", "--passphrase-env"]);

    // A key file: round trip; a flipped ciphertext byte fails authentication.
    ok(d, &["registry", "keygen", "--dir", "keys", "--name", "file", "--seal"]);
    ok(d, &["registry", "encrypt", "--key-file", "keys/file.seal", "model.bin", "k.sealed"]);
    ok(d, &["registry", "decrypt", "--key-file", "keys/file.seal", "k.sealed", "k.bin"]);
    assert_eq!(fs::read(t.join("k.bin")).unwrap(), plain);
    fails(
        d,
        &["registry", "decrypt", "--key-file", "keys/file.seal", "model.sealed", "x"],
        &["model.sealed", "passphrase"],
    );
    flip_byte(&t.join("k.sealed"));
    fails(d, &["registry", "decrypt", "--key-file", "keys/file.seal", "k.sealed", "k2.bin"], &["k.sealed"]);
    assert!(!t.join("k2.bin").exists());
    // A key file others can read is refused.
    use std::os::unix::fs::PermissionsExt;
    fs::write(t.join("open.seal"), "00".repeat(32)).unwrap();
    fs::set_permissions(t.join("open.seal"), fs::Permissions::from_mode(0o644)).unwrap();
    fails(d, &["registry", "encrypt", "--key-file", "open.seal", "model.bin", "y"], &["open.seal", "chmod 600"]);
}

// ------------------------------------------------------------------ fuzz seeds

/// The seed manifests of the `registry_manifest` fuzz target: canonical bytes of varied valid manifests.
fn seed_manifests() -> Vec<(&'static str, Vec<u8>)> {
    let key = KeyId::parse("0123456789abcdef").unwrap();
    let d = |s: &[u8]| Digest::of(s);
    let base = Manifest {
        name: "fraud".into(),
        version: 1,
        artefacts: vec![ArtefactEntry { name: "model.safetensors".into(), digest: d(b"m"), size: 70_596 }],
        metrics: [("roc_auc".to_string(), 0.93)].into(),
        parents: vec![],
        training_data: Some(d(b"train")),
        created_unix_ms: 1_733_000_000_000,
        signer_key_id: key.clone(),
    };
    let empty = Manifest {
        name: "a".into(),
        version: 0,
        artefacts: vec![],
        metrics: Default::default(),
        parents: vec![],
        training_data: None,
        created_unix_ms: 0,
        signer_key_id: key.clone(),
    };
    let rich = Manifest {
        name: "llm.chat-v2_final".into(),
        version: u64::MAX,
        artefacts: vec![
            ArtefactEntry { name: "config.json".into(), digest: d(b"c"), size: 0 },
            ArtefactEntry { name: "model.gguf".into(), digest: d(b"g"), size: u64::MAX },
            ArtefactEntry { name: "tokenizer.json".into(), digest: d(b"t"), size: 123 },
        ],
        metrics: [
            ("tiny".to_string(), 1e-7),
            ("huge".to_string(), 1.5e300),
            ("neg".to_string(), -0.0),
            ("whole".to_string(), 3.0),
            ("ctrl\n\t\"\\\u{1}".to_string(), 0.1),
            ("ünïcödé ✓".to_string(), -2.5),
        ]
        .into(),
        parents: vec!["fraud@1".parse().unwrap(), "base-model@12".parse().unwrap()],
        training_data: None,
        created_unix_ms: u64::MAX,
        signer_key_id: key,
    };
    [("fraud", base), ("empty", empty), ("rich", rich)]
        .into_iter()
        .map(|(n, m)| (n, m.to_canonical_bytes().expect("a valid manifest")))
        .collect()
}

/// The committed seeds are exactly these canonical manifests (`SOVEREIGN_WRITE_SEEDS=1` rewrites them),
/// and each parses back to bytes equal to itself, the invariant the fuzz target checks.
#[test]
fn cli_registry_manifest_fuzz_seeds_are_canonical() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/registry_manifest");
    for (name, bytes) in seed_manifests() {
        let path = dir.join(format!("{name}.json"));
        if std::env::var_os("SOVEREIGN_WRITE_SEEDS").is_some() {
            fs::create_dir_all(&dir).unwrap();
            fs::write(&path, &bytes).unwrap();
        }
        let committed =
            fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (SOVEREIGN_WRITE_SEEDS=1 writes it)", path.display()));
        assert_eq!(committed, bytes, "{} is stale (SOVEREIGN_WRITE_SEEDS=1 rewrites it)", path.display());
        let m = Manifest::from_canonical_bytes(&committed, name).unwrap();
        assert_eq!(m.to_canonical_bytes().unwrap(), committed);
    }
}

// ------------------------------------------------------------------ finetune

/// `sovereign finetune`: a 2-step run interrupted after step 1 (`--stop-after`) and continued with
/// `--resume` writes the checkpoint, the PEFT adapter and metrics.json; a malformed line is named.
#[test]
fn cli_finetune_stops_resumes_and_writes_the_adapter() {
    let tmp = Tmp::new("cli-finetune");
    let d = tmp.0.as_path();
    let model = datasets::models::file_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
        .unwrap_or_else(|e| panic!("{e}"));
    let model = model.to_str().unwrap();
    let line = |q: &str, a: &str| {
        format!(
            r#"{{"messages":[{{"role":"system","content":"Be brief."}},{{"role":"user","content":"{q}"}},{{"role":"assistant","content":"{a}"}}]}}"#
        )
    };
    fs::write(d.join("train.jsonl"), [line("2+2?", "4"), line("Sky?", "blue")].join("\n")).unwrap();
    fs::write(d.join("eval.jsonl"), line("3+3?", "6")).unwrap();
    // The model path of the cache has no blank (a space would split it below).
    let base = format!(
        "finetune --model {model} --data train.jsonl --eval eval.jsonl --out run --rank 2 --targets q,v \
         --lr 0.01 --steps 2 --seed 3"
    );
    let run = |extra: &str| {
        let line = format!("{base} {extra}");
        ok_json(d, &line.split_whitespace().collect::<Vec<_>>())
    };
    let first = run("--stop-after 1");
    assert_eq!((first["steps"].as_u64(), first["finished"].as_bool()), (Some(1), Some(false)), "{first}");
    assert!(d.join("run/checkpoint.safetensors").exists());
    let second = run("--resume");
    assert_eq!(
        (second["steps"].as_u64(), second["resumed_from"].as_u64(), second["finished"].as_bool()),
        (Some(2), Some(1), Some(true)),
        "{second}"
    );
    assert!(second["eval_loss_before"].as_f64().is_some() && second["eval_loss_after"].as_f64().is_some());
    for f in ["adapter_model.safetensors", "adapter_config.json", "metrics.json"] {
        assert!(d.join("run").join(f).exists(), "{f} missing");
    }
    let metrics: Value = serde_json::from_slice(&fs::read(d.join("run/metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["steps"], 2);
    fs::write(d.join("bad.jsonl"), format!("{}\n{{\"messages\": 3}}\n", line("a", "b"))).unwrap();
    let bad = ["finetune", "--model", model, "--data", "bad.jsonl", "--out", "bad", "--steps", "1"];
    fails(d, &bad, &["bad.jsonl:2", "messages"]);
}
