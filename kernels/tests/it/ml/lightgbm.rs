//! `kernels::ml::lightgbm`: LightGBM's own text models (written by `make_fixtures.py`) predict, walked
//! and compiled, what LightGBM predicted for the same rows (leaf values held as f32: within 1e-5), and
//! what the reader does not carry over, or a damaged file, is a typed error naming the part.

use std::path::Path;

use kernels::Error;
use kernels::ml::compiled::{self, CompileConfig};
use kernels::ml::lightgbm;

use super::gbm::nan_rule;
use super::{fixture, matrix};

fn model_text(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ml").join(name);
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn lightgbm_models_predict_what_lightgbm_predicted() {
    let f = fixture("lightgbm_models.json");
    let cancer = matrix(&fixture("forest_breast_cancer.json")["x"]);
    let diabetes = matrix(&fixture("gbm_diabetes.json")["x"]);
    for case in f["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let x = match (name, case["nan_rule"].as_bool().unwrap()) {
            ("diabetes", _) => diabetes.clone(),
            (_, true) => nan_rule(&cancer),
            _ => cancer.clone(),
        };
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ml").join(case["model"].as_str().unwrap());
        let flat = lightgbm::load(&path).unwrap();
        assert_eq!(flat.n_trees(), 20, "{name}");
        let compiled = compiled::compile(&flat, &CompileConfig::default()).unwrap();
        let rows: Vec<usize> = case["rows"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let want = case["lightgbm_predict"].as_array().unwrap();
        let mut worst = 0.0f64;
        for (&r, w) in rows.iter().zip(want) {
            let w = w.as_f64().unwrap();
            let got = flat.predict_row(x.row(r)).unwrap();
            assert_eq!(compiled.predict_row(x.row(r)).unwrap().to_bits(), got.to_bits(), "{name} row {r}");
            let err = (f64::from(got) - w).abs() / w.abs().max(1.0);
            worst = worst.max(err);
            assert!(err < 1e-5, "{name} row {r}: {got} vs LightGBM {w}");
        }
        println!("{name}: {} rows, largest difference from LightGBM {worst:.1e}", rows.len());
    }
}

#[test]
fn what_the_reader_does_not_carry_over_is_a_typed_error() {
    let text = model_text("lightgbm_breast_cancer_nan.txt");
    let check = |text: &str, part: &str, reason: &str| {
        let err = lightgbm::parse(text).unwrap_err();
        let Error::MlModelParts { name, reason: why } = &err else { panic!("{err:?}") };
        assert!(name.contains(part) && why.contains(reason), "{err}: expected {part:?} / {reason:?}");
    };
    // A categorical split, zero-as-missing, another objective, several classes.
    check(&text.replacen("decision_type=10 ", "decision_type=11 ", 1), "Tree=", "categorical");
    check(&text.replacen("decision_type=10 ", "decision_type=6 ", 1), "Tree=", "zero-as-missing");
    check(&text.replacen("objective=binary sigmoid:1", "objective=lambdarank", 1), "objective", "lambdarank");
    check(&text.replacen("num_class=1", "num_class=3", 1), "num_class", "3 classes");
    // Damage: a tree cut short, a child out of range, a missing header key, not a model at all.
    let cut = &text[..text.find("Tree=3").unwrap() + 200];
    assert!(lightgbm::parse(cut).is_err(), "a model cut inside a tree is refused");
    check(&text.replacen("left_child=1 ", "left_child=99 ", 1), "Tree=0", "out of range");
    check(&text.replacen("max_feature_idx=", "max_feature=", 1), "max_feature_idx", "missing");
    check(&text.replacen("decision_type=10 ", "decision_type=14 ", 1), "Tree=0", "missing type 3");
    check(&text.replacen("decision_type=10 ", "decision_type=1.5 ", 1), "Tree=0 decision_type", "not an integer");
    let first_split = text.lines().find(|l| l.starts_with("split_feature=")).unwrap();
    let negative = first_split.replacen("split_feature=", "split_feature=-1 ", 1);
    let negative = negative.rsplit_once(' ').unwrap().0.to_string();
    check(&text.replacen(first_split, &negative, 1), "Tree=0", "feature -1");
    check("{\"not\": \"a model\"}", "header", "not a LightGBM text model");
    let err = lightgbm::load(Path::new("/nonexistent/model.txt")).unwrap_err();
    assert!(matches!(err, Error::MlModelFile { .. }), "{err}");
}
