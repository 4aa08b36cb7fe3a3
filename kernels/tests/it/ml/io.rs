//! `kernels::ml::io`: models saved as safetensors and loaded back predict bit-identically, the file
//! opens with the reference `safetensors` package (numpy), and damaged or mismatched files are
//! typed errors (truncated at every length, wrong kind, unknown version, missing array, wrong shape).

use std::process::Command;

use kernels::Error;
use kernels::ml::io::{self, Array, ModelMeta, Parts, Persist};
use kernels::ml::kmeans::{self, KMeansConfig, KMeansModel};
use kernels::ml::linear::{self, LinearConfig, LinearModel};
use kernels::ml::logistic::{self, LogisticConfig, LogisticModel};
use kernels::ml::{Matrix, metrics};

use super::{f32s, fixture, matrix, temp_dir};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn diabetes() -> (Matrix, Vec<f32>) {
    let f = fixture("linear_diabetes.json");
    let names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"].map(String::from).to_vec();
    (matrix(&f["x"]).with_names(names).unwrap(), f32s(&f["y"]))
}

fn cancer() -> (Matrix, Vec<f32>) {
    let f = fixture("logistic_breast_cancer.json");
    (matrix(&f["x"]), f32s(&f["y"]))
}

#[test]
fn saved_models_load_back_and_predict_bit_identically() {
    let dir = temp_dir("roundtrip");

    let (x, y) = diabetes();
    let model = linear::fit(&x, &y, &LinearConfig { alpha: 0.5, ..LinearConfig::default() }).unwrap();
    let pred = model.predict(&x).unwrap();
    let meta = ModelMeta::for_data(&x).with_metric("r2", metrics::r2(&y, &pred).unwrap());
    let path = dir.join("linear.safetensors");
    io::save(&path, &model, &meta).unwrap();
    let (back, back_meta) = io::load::<LinearModel>(&path).unwrap();
    assert_eq!(back, model);
    assert_eq!(back_meta, meta);
    assert_eq!(back_meta.feature_names[2], "bmi");
    back_meta.check_columns(&x).unwrap();
    let mut swapped = x.names().to_vec();
    swapped.swap(0, 1);
    let swapped = x.clone().with_names(swapped).unwrap();
    assert!(matches!(back_meta.check_columns(&swapped), Err(Error::InvalidParameter(_))));
    let narrow = Matrix::new(1, 2, vec![0.0; 2]).unwrap();
    assert!(matches!(back_meta.check_columns(&narrow), Err(Error::DimensionMismatch { expected: 10, got: 2 })));
    assert_eq!(bits(&back.predict(&x).unwrap()), bits(&pred));

    let (x, y) = cancer();
    let model = logistic::fit(&x, &y, &LogisticConfig::default()).unwrap();
    let path = dir.join("logistic.safetensors");
    io::save(&path, &model, &ModelMeta::for_data(&x)).unwrap();
    let (back, _) = io::load::<LogisticModel>(&path).unwrap();
    assert_eq!(back, model);
    assert_eq!(bits(&back.predict_proba(&x).unwrap()), bits(&model.predict_proba(&x).unwrap()));

    let model = kmeans::fit(&x, &KMeansConfig { k: 3, ..KMeansConfig::default() }).unwrap();
    let path = dir.join("kmeans.safetensors");
    io::save(&path, &model, &ModelMeta::for_data(&x)).unwrap();
    // Overwriting an existing file is atomic and leaves no temporary file behind.
    io::save(&path, &model, &ModelMeta::for_data(&x)).unwrap();
    let (back, meta) = io::load::<KMeansModel>(&path).unwrap();
    assert_eq!(back, model);
    assert_eq!(back.predict(&x).unwrap(), model.predict(&x).unwrap());
    assert_eq!(meta.data_fingerprint, x.fingerprint());
    assert_eq!(meta.kernels_version, env!("CARGO_PKG_VERSION"));
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files, ["kmeans.safetensors", "linear.safetensors", "logistic.safetensors"]);

    // The file is a valid safetensors file for kernels' own reader too.
    let st = kernels::formats::safetensors::Safetensors::open(&path).unwrap();
    assert_eq!(st.metadata()["kind"], "kmeans");
    assert_eq!(st.tensor("centroids").unwrap().shape(), &[3, 30]);
}

#[test]
fn a_saved_model_opens_with_the_python_safetensors_package() {
    let py = crate::formats::python_with("safetensors, numpy");
    let dir = temp_dir("python");
    let (x, y) = cancer();
    let model = logistic::fit(&x, &y, &LogisticConfig::default()).unwrap();
    let path = dir.join("logistic.safetensors");
    io::save(&path, &model, &ModelMeta::for_data(&x).with_metric("auc", 0.99)).unwrap();
    let script = r#"
import json, sys
from safetensors import safe_open
from safetensors.numpy import load_file
path = sys.argv[1]
arrays = load_file(path)
with safe_open(path, framework="np") as f:
    meta = f.metadata()
print(json.dumps({
    "meta": meta,
    "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape), "bits": [int(b) for b in v.view("<u8").ravel()]}
               for k, v in arrays.items()},
}))
"#;
    let out = Command::new(&py).arg("-c").arg(script).arg(&path).output().unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["meta"]["kind"], "logistic");
    assert_eq!(v["meta"]["format_version"], "1");
    let names: Vec<String> = serde_json::from_str(v["meta"]["feature_names"].as_str().unwrap()).unwrap();
    assert_eq!(names, x.names());
    assert_eq!(v["meta"]["data_fingerprint"], x.fingerprint());
    let coef = &v["arrays"]["coef"];
    assert_eq!(coef["dtype"], "float64");
    assert_eq!(coef["shape"], serde_json::json!([30]));
    let got: Vec<u64> = coef["bits"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap()).collect();
    assert_eq!(got, model.coef.iter().map(|c| c.to_bits()).collect::<Vec<_>>());
    assert_eq!(v["arrays"]["intercept"]["bits"][0].as_u64().unwrap(), model.intercept.to_bits());
}

fn small_linear() -> (LinearModel, Matrix) {
    let x = Matrix::from_rows(&[vec![0.0, 1.0], vec![1.0, 0.0], vec![2.0, 2.0], vec![3.0, 1.0]]).unwrap();
    (linear::fit(&x, &[1.0, 2.0, 4.0, 5.0], &LinearConfig::default()).unwrap(), x)
}

#[test]
fn a_truncated_file_is_a_typed_error_at_every_length() {
    let dir = temp_dir("truncated");
    let (model, x) = small_linear();
    let path = dir.join("m.safetensors");
    io::save(&path, &model, &ModelMeta::for_data(&x)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("cut.safetensors");
    for len in 0..bytes.len() {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        match io::load::<LinearModel>(&cut) {
            Err(Error::MlModelFile { path, .. }) => assert_eq!(path, cut),
            other => panic!("{len} bytes: {other:?}"),
        }
    }
    assert!(matches!(io::load::<LinearModel>(dir.join("absent.safetensors")), Err(Error::MlModelFile { .. })));
}

#[test]
fn a_model_of_another_kind_or_version_is_a_typed_error() {
    let dir = temp_dir("kind");
    let (model, x) = small_linear();
    let path = dir.join("m.safetensors");
    io::save(&path, &model, &ModelMeta::for_data(&x)).unwrap();
    match io::load::<LogisticModel>(&path) {
        Err(Error::MlModelKind { expected, found, .. }) => {
            assert_eq!((expected.as_str(), found.as_str()), ("logistic", "linear"))
        }
        other => panic!("{other:?}"),
    }
    // Same length edit of the header: version 1 → 7.
    let mut bytes = std::fs::read(&path).unwrap();
    let key = br#""format_version":"1""#;
    let at = bytes.windows(key.len()).position(|w| w == key).expect("version in the header");
    bytes[at + key.len() - 2] = b'7';
    let v7 = dir.join("v7.safetensors");
    std::fs::write(&v7, &bytes).unwrap();
    match io::load::<LinearModel>(&v7) {
        Err(Error::MlModelVersion { found, supported, .. }) => assert_eq!((found.as_str(), supported), ("7", 1)),
        other => panic!("{other:?}"),
    }
}

/// A stand-in that writes "linear" files with chosen arrays.
struct Forged(Parts);

impl Persist for Forged {
    const KIND: &'static str = "linear";
    fn to_parts(&self) -> Parts {
        self.0.clone()
    }
    fn from_parts(parts: Parts) -> kernels::Result<Self> {
        Ok(Forged(parts))
    }
}

#[test]
fn a_missing_or_misshapen_array_is_a_typed_error() {
    let dir = temp_dir("arrays");
    let params = serde_json::json!({ "n_features": 2, "rank": 2 });
    let coef = ("coef".to_string(), Array::F64(vec![1.0, 2.0], vec![2]));
    let cases = [
        ("intercept", vec![coef.clone()]),
        (
            "coef",
            vec![
                ("coef".to_string(), Array::F64(vec![1.0, 2.0, 3.0], vec![3])),
                ("intercept".into(), Array::F64(vec![0.5], vec![1])),
            ],
        ),
        (
            "coef",
            vec![
                ("coef".to_string(), Array::F32(vec![1.0, 2.0], vec![2])),
                ("intercept".into(), Array::F64(vec![0.5], vec![1])),
            ],
        ),
        ("intercept", vec![coef.clone(), ("intercept".into(), Array::F64(vec![0.5, 1.0], vec![2]))]),
    ];
    for (i, (bad, arrays)) in cases.into_iter().enumerate() {
        let path = dir.join(format!("forged{i}.safetensors"));
        io::save(&path, &Forged(Parts { params: params.clone(), arrays }), &ModelMeta::default()).unwrap();
        match io::load::<LinearModel>(&path) {
            Err(Error::MlModelParts { name, .. }) => assert_eq!(name, bad, "case {i}"),
            other => panic!("case {i}: {other:?}"),
        }
    }
    let ok = dir.join("ok.safetensors");
    let arrays = vec![coef, ("intercept".into(), Array::F64(vec![0.5], vec![1]))];
    io::save(&ok, &Forged(Parts { params, arrays }), &ModelMeta::default()).unwrap();
    let (m, _) = io::load::<LinearModel>(&ok).unwrap();
    assert_eq!((m.coef, m.intercept), (vec![1.0, 2.0], 0.5));
}

#[test]
fn save_refuses_what_it_could_not_load() {
    let dir = temp_dir("refuse");
    let (model, x) = small_linear();
    let meta = ModelMeta::for_data(&x).with_metric("auc", f64::NAN);
    assert!(matches!(io::save(dir.join("m.safetensors"), &model, &meta), Err(Error::InvalidParameter(_))));
    let ragged =
        Forged(Parts { params: serde_json::json!({}), arrays: vec![("a".into(), Array::F32(vec![1.0], vec![2]))] });
    assert!(matches!(
        io::save(dir.join("r.safetensors"), &ragged, &ModelMeta::default()),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        io::save(dir.join("no/such/dir/m.safetensors"), &model, &ModelMeta::default()),
        Err(Error::MlModelFile { .. })
    ));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing is left behind");
}
