//! Saving and loading models: safetensors (the arrays) with a JSON header in its
//! `__metadata__` (kind, format version, hyper-parameters, feature names, training-data
//! fingerprint). See <https://huggingface.co/docs/safetensors> for the file layout.
//!
//! A model loaded from disk predicts bit-identically to the one saved: arrays are
//! stored with their exact bits (f32, f64, u32), never re-rounded through text.
//!
//! The file is a plain safetensors file (any safetensors reader opens it, e.g. the Python
//! `safetensors` package with numpy). Its `__metadata__` holds strings only:
//!
//! | key | value |
//! |---|---|
//! | `kind` | the model kind, [`Persist::KIND`] |
//! | `format_version` | [`FORMAT_VERSION`] as decimal text |
//! | `params` | the model's hyper-parameters and scalars, JSON text |
//! | `feature_names` | JSON list of the training columns' names |
//! | `data_fingerprint` | [`crate::ml::Matrix::fingerprint`] of the training data |
//! | `metrics` | JSON object of evaluation metrics (finite numbers) |
//! | `kernels_version` | the version of `kernels` that wrote the file |
//!
//! [`save`] writes atomically (a temporary file in the same folder, `fsync`, rename, `fsync` of the
//! folder), so a crash leaves either the old file or the new one, never half of one. [`load`] reads
//! the whole file into memory (no memory map: a model file replaced while served cannot fault the
//! process), parses it with [`Safetensors`] and validates kind, version, arrays and shapes.

use std::collections::BTreeMap;
use std::path::Path;

use crate::formats::safetensors::{self, Dtype, Safetensors};
use crate::{Error, Result};

/// One named array of a model.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    /// f32 values with their shape.
    F32(Vec<f32>, Vec<usize>),
    /// f64 values with their shape.
    F64(Vec<f64>, Vec<usize>),
    /// u32 values with their shape (indices, feature ids, child links).
    U32(Vec<u32>, Vec<usize>),
}

/// A model taken apart for saving: its scalar hyper-parameters and its arrays.
#[derive(Debug, Clone, PartialEq)]
pub struct Parts {
    /// Hyper-parameters and scalars, as a JSON object.
    pub params: serde_json::Value,
    /// Named arrays.
    pub arrays: Vec<(String, Array)>,
}

/// A model that can be saved with [`save`] and loaded with [`load`].
pub trait Persist: Sized {
    /// The model kind written in the header: "linear", "logistic", "tree", "forest", "gbm", "kmeans".
    const KIND: &'static str;
    /// The model's parameters and arrays.
    fn to_parts(&self) -> Parts;
    /// Rebuilds the model, validating shapes and links (a typed error, never a panic).
    fn from_parts(parts: Parts) -> Result<Self>;
}

/// The version of the model-file layout [`save`] writes and [`load`] reads.
pub const FORMAT_VERSION: u32 = 1;

impl Array {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Array::F32(_, s) | Array::F64(_, s) | Array::U32(_, s) => s,
        }
    }

    /// The number of elements the data holds.
    pub fn len(&self) -> usize {
        match self {
            Array::F32(v, _) => v.len(),
            Array::F64(v, _) => v.len(),
            Array::U32(v, _) => v.len(),
        }
    }

    /// Whether the array holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The safetensors element type.
    pub fn dtype(&self) -> Dtype {
        match self {
            Array::F32(..) => Dtype::F32,
            Array::F64(..) => Dtype::F64,
            Array::U32(..) => Dtype::U32,
        }
    }

    fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Array::F32(v, _) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Array::F64(v, _) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Array::U32(v, _) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

fn parts_error(name: &str, reason: impl Into<String>) -> Error {
    Error::MlModelParts { name: name.to_string(), reason: reason.into() }
}

/// Checks that array `name` has shape `expected` ([`Error::MlModelParts`] otherwise).
pub fn check_shape(name: &str, got: &[usize], expected: &[usize]) -> Result<()> {
    if got == expected { Ok(()) } else { Err(parts_error(name, format!("shape {got:?}, expected {expected:?}"))) }
}

impl Parts {
    /// The array `name` ([`Error::MlModelParts`] when there is none).
    pub fn array(&self, name: &str) -> Result<&Array> {
        self.arrays.iter().find(|(n, _)| n == name).map(|(_, a)| a).ok_or_else(|| parts_error(name, "missing array"))
    }

    /// The f32 array `name` and its shape (an error when missing or of another type).
    pub fn f32(&self, name: &str) -> Result<(&[f32], &[usize])> {
        match self.array(name)? {
            Array::F32(v, s) => Ok((v, s)),
            other => Err(parts_error(name, format!("type {}, expected F32", other.dtype()))),
        }
    }

    /// The f64 array `name` and its shape (an error when missing or of another type).
    pub fn f64(&self, name: &str) -> Result<(&[f64], &[usize])> {
        match self.array(name)? {
            Array::F64(v, s) => Ok((v, s)),
            other => Err(parts_error(name, format!("type {}, expected F64", other.dtype()))),
        }
    }

    /// The u32 array `name` and its shape (an error when missing or of another type).
    pub fn u32(&self, name: &str) -> Result<(&[u32], &[usize])> {
        match self.array(name)? {
            Array::U32(v, s) => Ok((v, s)),
            other => Err(parts_error(name, format!("type {}, expected U32", other.dtype()))),
        }
    }

    /// The f64 array `name`, required to hold exactly one value (shape `[1]`).
    pub fn f64_scalar(&self, name: &str) -> Result<f64> {
        let (v, s) = self.f64(name)?;
        check_shape(name, s, &[1])?;
        Ok(v[0])
    }

    /// The parameter `key` of [`Parts::params`] as an unsigned integer.
    pub fn param_u64(&self, key: &str) -> Result<u64> {
        self.params
            .get(key)
            .ok_or_else(|| parts_error(key, "missing parameter"))?
            .as_u64()
            .ok_or_else(|| parts_error(key, format!("parameter {} is not an unsigned integer", self.params[key])))
    }
}

/// What a model file records besides the model: where its training data came from and how well it did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelMeta {
    /// The training columns' names, in the order the model expects them.
    pub feature_names: Vec<String>,
    /// [`crate::ml::Matrix::fingerprint`] of the training data.
    pub data_fingerprint: String,
    /// Evaluation metrics (name → finite value), e.g. `"roc_auc"`.
    pub metrics: BTreeMap<String, f64>,
    /// The version of `kernels` that wrote the file (set by [`load`]; [`save`] always writes its own).
    pub kernels_version: String,
}

impl ModelMeta {
    /// The metadata of a model trained on `x`: its column names and fingerprint, no metrics yet.
    pub fn for_data(x: &crate::ml::Matrix) -> ModelMeta {
        ModelMeta {
            feature_names: x.names().to_vec(),
            data_fingerprint: x.fingerprint(),
            metrics: BTreeMap::new(),
            kernels_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Checks that `x` has the training columns, by name and in order, before predicting on it
    /// (a model given columns in another order predicts garbage without any other sign).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for another number of columns, [`Error::InvalidParameter`] naming
    /// the first column whose name differs.
    pub fn check_columns(&self, x: &crate::ml::Matrix) -> Result<()> {
        if x.cols() != self.feature_names.len() {
            return Err(Error::DimensionMismatch { expected: self.feature_names.len(), got: x.cols() });
        }
        match x.names().iter().zip(&self.feature_names).position(|(a, b)| a != b) {
            Some(j) => Err(Error::InvalidParameter(format!(
                "column {j} is named {:?}, the model was trained with {:?} there",
                x.names()[j],
                self.feature_names[j]
            ))),
            None => Ok(()),
        }
    }

    /// Adds (or replaces) a metric, returning `self` for chaining.
    pub fn with_metric(mut self, name: &str, value: f64) -> ModelMeta {
        self.metrics.insert(name.to_string(), value);
        self
    }
}

fn file_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::MlModelFile { path: path.to_path_buf(), reason: reason.into() }
}

// ANCHOR: encode
/// The complete bytes of a model file (the safetensors layout; header padded with spaces to 8 bytes).
fn encode(model_kind: &str, parts: &Parts, meta: &ModelMeta) -> Result<Vec<u8>> {
    if let Some((name, v)) = meta.metrics.iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::InvalidParameter(format!(
            "metric {name:?} is {v}; a model file stores finite metrics only"
        )));
    }
    if !parts.params.is_object() {
        return Err(Error::InvalidParameter(format!("model params must be a JSON object, got {}", parts.params)));
    }
    let mut metadata = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        metadata.insert(k.to_string(), serde_json::Value::String(v));
    };
    put("kind", model_kind.to_string());
    put("format_version", FORMAT_VERSION.to_string());
    put("params", parts.params.to_string());
    put("feature_names", serde_json::to_string(&meta.feature_names).unwrap_or_default());
    put("data_fingerprint", meta.data_fingerprint.clone());
    put("metrics", serde_json::to_string(&meta.metrics).unwrap_or_default());
    put("kernels_version", env!("CARGO_PKG_VERSION").to_string());

    let mut header = serde_json::Map::new();
    header.insert("__metadata__".to_string(), serde_json::Value::Object(metadata));
    let mut data = Vec::new();
    for (name, array) in &parts.arrays {
        if name == "__metadata__" || header.contains_key(name) {
            return Err(Error::InvalidParameter(format!("array name {name:?} is reserved or repeated")));
        }
        let expected: usize = array.shape().iter().product();
        if expected != array.len() {
            return Err(Error::InvalidParameter(format!(
                "array {name:?}: shape {:?} needs {expected} values, it holds {}",
                array.shape(),
                array.len()
            )));
        }
        let begin = data.len();
        data.extend_from_slice(&array.to_le_bytes());
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": array.dtype().name(), "shape": array.shape(), "data_offsets": [begin, data.len()] }),
        );
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + data.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&data);
    Ok(out)
}
// ANCHOR_END: encode

/// Writes `bytes` to `path` atomically ([`safetensors::write_atomic`]: a temporary file in the same
/// folder, `fsync`, rename over `path`, then `fsync` of the folder on Unix).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    safetensors::write_atomic(path, bytes).map_err(|e| file_error(path, format!("cannot write: {e}")))
}

/// Saves `model` with `meta` to `path` as a safetensors file (see the module docs for the layout),
/// atomically: readers see the old file or the complete new one.
///
/// # Errors
/// [`Error::InvalidParameter`] for a non-finite metric or malformed parts (an array whose shape does not
/// match its length, a repeated name); [`Error::MlModelFile`] when the file cannot be written.
pub fn save<M: Persist>(path: impl AsRef<Path>, model: &M, meta: &ModelMeta) -> Result<()> {
    let bytes = encode(M::KIND, &model.to_parts(), meta)?;
    write_atomic(path.as_ref(), &bytes)
}

fn meta_str<'a>(path: &Path, metadata: &'a BTreeMap<String, String>, key: &str) -> Result<&'a str> {
    metadata.get(key).map(String::as_str).ok_or_else(|| file_error(path, format!("no {key:?} in __metadata__")))
}

fn meta_json<T: serde::de::DeserializeOwned>(path: &Path, metadata: &BTreeMap<String, String>, key: &str) -> Result<T> {
    serde_json::from_str(meta_str(path, metadata, key)?)
        .map_err(|e| file_error(path, format!("__metadata__ {key:?} is not the expected JSON: {e}")))
}

/// Loads a model of type `M` saved by [`save`], with its metadata.
///
/// # Errors
/// [`Error::MlModelFile`] when the file cannot be read, is truncated or is not safetensors, or a
/// metadata entry is missing or malformed; [`Error::MlModelKind`] when it holds another kind of model
/// (naming both); [`Error::MlModelVersion`] for a format version other than [`FORMAT_VERSION`];
/// [`Error::MlModelParts`] when an array is missing or has the wrong type or shape.
pub fn load<M: Persist>(path: impl AsRef<Path>) -> Result<(M, ModelMeta)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    load_bytes(bytes, path)
}

/// Loads a model of type `M` from the bytes of a model file already in memory (e.g. a registry artefact
/// whose digest was checked on exactly these bytes); `path` names the origin in errors.
///
/// # Errors
/// As [`load`], except that there is no file to read.
pub fn load_bytes<M: Persist>(bytes: Vec<u8>, path: &Path) -> Result<(M, ModelMeta)> {
    let st = Safetensors::from_vec(bytes).map_err(|e| file_error(path, e.to_string()))?;
    let metadata = st.metadata();
    let kind = meta_str(path, metadata, "kind")?;
    if kind != M::KIND {
        return Err(Error::MlModelKind {
            path: path.to_path_buf(),
            expected: M::KIND.to_string(),
            found: kind.to_string(),
        });
    }
    let version = meta_str(path, metadata, "format_version")?;
    if version.parse::<u32>().ok() != Some(FORMAT_VERSION) {
        return Err(Error::MlModelVersion {
            path: path.to_path_buf(),
            found: version.to_string(),
            supported: FORMAT_VERSION,
        });
    }
    let params: serde_json::Value = meta_json(path, metadata, "params")?;
    let meta = ModelMeta {
        feature_names: meta_json(path, metadata, "feature_names")?,
        data_fingerprint: meta_str(path, metadata, "data_fingerprint")?.to_string(),
        metrics: meta_json(path, metadata, "metrics")?,
        kernels_version: meta_str(path, metadata, "kernels_version")?.to_string(),
    };
    let mut arrays = Vec::with_capacity(st.tensor_infos().len());
    for view in st.tensors() {
        let shape: Vec<usize> = view
            .shape()
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| file_error(path, format!("array {:?} has a dimension too large", view.name())))?;
        let b = view.bytes;
        let array = match view.dtype() {
            Dtype::F32 => {
                Array::F32(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(), shape)
            }
            Dtype::F64 => Array::F64(
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
                shape,
            ),
            Dtype::U32 => {
                Array::U32(b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(), shape)
            }
            other => {
                return Err(parts_error(
                    view.name(),
                    format!("type {other} is not one a model stores (F32, F64, U32)"),
                ));
            }
        };
        arrays.push((view.name().to_string(), array));
    }
    let model = M::from_parts(Parts { params, arrays })?;
    Ok((model, meta))
}
