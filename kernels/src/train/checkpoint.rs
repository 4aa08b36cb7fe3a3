//! Training checkpoints: parameters and optimiser state in one safetensors file, from which training
//! resumes bit-identically.
//!
//! The file is a plain safetensors file (any safetensors reader opens it, e.g. Python's
//! `safetensors.numpy.load_file`). Its tensors, all F32 with the parameter's shape:
//!
//! | tensor | holds |
//! |---|---|
//! | `param/<name>` | the parameter's values |
//! | `optim/m/<name>` | the first moment (AdamW) or the momentum buffer (SGD) |
//! | `optim/v/<name>` | the second moment (AdamW only) |
//!
//! and its `__metadata__` (strings only):
//!
//! | key | value |
//! |---|---|
//! | `format` | [`FORMAT`] |
//! | `format_version` | [`FORMAT_VERSION`] as decimal text |
//! | `steps` | the optimiser's step count, decimal |
//! | `optimizer` | [`OptimizerConfig::to_json`] (with the learning rate of the next step) |
//! | `params` | JSON list of `{"name", "shape", "decay"}` in the optimiser's order |
//! | `extra` | JSON object of strings: the trainer's own state (RNG state, data cursor, …) |
//! | `kernels_version` | the version of `kernels` that wrote the file |
//!
//! Values are stored with their exact bits and the configuration's f32s as the f64s of the same
//! values, so nothing is re-rounded: N steps straight and N/2 steps, save, load, N/2 steps give the same
//! bits. [`save`] writes atomically ([`crate::formats::safetensors::write_atomic`]: temporary file in the
//! same folder, `fsync`, rename, `fsync` of the folder). [`load`] validates everything and reports any
//! problem (unreadable or truncated file, another format or version, a missing or unexpected tensor, a
//! shape or dtype mismatch) as [`Error::Checkpoint`] naming the file and what is wrong.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::formats::safetensors::{self, Dtype, Safetensors, TensorData};
use crate::train::optim::{Optimizer, OptimizerConfig, Param, ParamState};
use crate::{Error, Result};

/// The `format` entry of a checkpoint's `__metadata__`.
pub const FORMAT: &str = "kernels.train.checkpoint";

/// The version of the checkpoint layout [`save`] writes and [`load`] reads.
pub const FORMAT_VERSION: u32 = 1;

/// The prefix of a parameter's tensor.
pub const PARAM_PREFIX: &str = "param/";
/// The prefix of a first moment's (or momentum buffer's) tensor.
pub const M_PREFIX: &str = "optim/m/";
/// The prefix of a second moment's tensor.
pub const V_PREFIX: &str = "optim/v/";

/// What a checkpoint holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The parameters, in the optimiser's order.
    pub params: Vec<Param>,
    /// The optimiser, with its configuration, step count and state.
    pub optimizer: Optimizer,
    /// The trainer's own entries (e.g. its RNG state), as saved.
    pub extra: BTreeMap<String, String>,
}

fn checkpoint_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), reason: reason.into() }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The bytes of a checkpoint of `params` and `optimizer`, with the trainer's `extra` entries.
///
/// # Errors
/// The errors of [`Optimizer::check_params`] when `params` are not the optimiser's parameters.
pub fn to_bytes(params: &[Param], optimizer: &Optimizer, extra: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    optimizer.check_params(params)?;
    let second = optimizer.config().has_second_moment();
    let mut owned: Vec<(String, &[usize], Vec<u8>)> = Vec::with_capacity(params.len() * 3);
    for (p, s) in params.iter().zip(optimizer.state()) {
        owned.push((format!("{PARAM_PREFIX}{}", p.name), p.shape.as_slice(), f32_bytes(&p.value)));
        owned.push((format!("{M_PREFIX}{}", p.name), p.shape.as_slice(), f32_bytes(&s.m)));
        if second {
            owned.push((format!("{V_PREFIX}{}", p.name), p.shape.as_slice(), f32_bytes(&s.v)));
        }
    }
    let tensors: Vec<TensorData<'_>> = owned
        .iter()
        .map(|(name, shape, bytes)| TensorData {
            name: name.as_str(),
            dtype: Dtype::F32,
            shape,
            bytes: bytes.as_slice(),
        })
        .collect();
    let entries: Vec<serde_json::Value> =
        params.iter().map(|p| serde_json::json!({ "name": p.name, "shape": p.shape, "decay": p.decay })).collect();
    let mut metadata = BTreeMap::new();
    metadata.insert("format".to_string(), FORMAT.to_string());
    metadata.insert("format_version".to_string(), FORMAT_VERSION.to_string());
    metadata.insert("steps".to_string(), optimizer.steps().to_string());
    metadata.insert("optimizer".to_string(), optimizer.config().to_json().to_string());
    metadata.insert("params".to_string(), serde_json::Value::Array(entries).to_string());
    metadata.insert("extra".to_string(), serde_json::to_string(extra).unwrap_or_default());
    metadata.insert("kernels_version".to_string(), env!("CARGO_PKG_VERSION").to_string());
    safetensors::serialize(&tensors, &metadata)
}

/// Saves a checkpoint of `params` and `optimizer` (and the trainer's `extra` entries) to `path`,
/// atomically: readers see the old file or the complete new one.
///
/// # Errors
/// As [`to_bytes`]; [`Error::Checkpoint`] when the file cannot be written.
pub fn save(
    path: impl AsRef<Path>,
    params: &[Param],
    optimizer: &Optimizer,
    extra: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_bytes(params, optimizer, extra)?;
    safetensors::write_atomic(path, &bytes).map_err(|e| checkpoint_error(path, format!("cannot write: {e}")))
}

/// Loads a checkpoint written by [`save`].
///
/// # Errors
/// [`Error::Checkpoint`] naming `path` and the problem (see the module docs).
pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| checkpoint_error(path, format!("cannot read: {e}")))?;
    from_bytes(bytes, path)
}

/// One entry of the `params` list.
#[derive(serde::Deserialize)]
struct ParamEntry {
    name: String,
    shape: Vec<usize>,
    decay: bool,
}

fn meta_str<'a>(metadata: &'a BTreeMap<String, String>, key: &str, path: &Path) -> Result<&'a str> {
    metadata.get(key).map(String::as_str).ok_or_else(|| checkpoint_error(path, format!("no {key:?} in __metadata__")))
}

/// Loads a checkpoint from its bytes; `path` names the origin in errors.
///
/// # Errors
/// As [`load`], except that there is no file to read.
pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Checkpoint> {
    let err = |reason: String| checkpoint_error(path, reason);
    let st = Safetensors::from_vec(bytes).map_err(|e| err(e.to_string()))?;
    let metadata = st.metadata();
    let get = |key: &str| meta_str(metadata, key, path);
    let format = get("format")?;
    if format != FORMAT {
        return Err(err(format!("format {format:?}, expected {FORMAT:?} (not a training checkpoint)")));
    }
    let version = get("format_version")?;
    if version.parse::<u32>().ok() != Some(FORMAT_VERSION) {
        return Err(err(format!("format version {version:?}, this build reads version {FORMAT_VERSION}")));
    }
    let steps_text = get("steps")?;
    let steps: u64 = steps_text.parse().map_err(|e| err(format!("steps {steps_text:?}: {e}")))?;
    let config_json: serde_json::Value =
        serde_json::from_str(get("optimizer")?).map_err(|e| err(format!("optimizer is not JSON: {e}")))?;
    let config = OptimizerConfig::from_json(&config_json).map_err(|e| err(e.to_string()))?;
    let entries: Vec<ParamEntry> =
        serde_json::from_str(get("params")?).map_err(|e| err(format!("params is not the expected JSON: {e}")))?;
    let extra: BTreeMap<String, String> =
        serde_json::from_str(get("extra")?).map_err(|e| err(format!("extra is not a JSON object of strings: {e}")))?;

    let mut expected = HashSet::new();
    let mut tensor = |name: String, shape: &[usize]| -> Result<Vec<f32>> {
        let view = st.tensor(&name).map_err(|_| err(format!("missing tensor {name:?}")))?;
        if view.dtype() != Dtype::F32 {
            return Err(err(format!("tensor {name:?} has dtype {}, expected F32", view.dtype())));
        }
        let same_shape =
            view.shape().len() == shape.len() && view.shape().iter().zip(shape).all(|(&a, &b)| a == b as u64);
        if !same_shape {
            return Err(err(format!("tensor {name:?} has shape {:?}, expected {shape:?}", view.shape())));
        }
        expected.insert(name);
        Ok(view.bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let second = config.has_second_moment();
    let mut params = Vec::with_capacity(entries.len());
    let mut state = Vec::with_capacity(entries.len());
    for e in entries {
        let value = tensor(format!("{PARAM_PREFIX}{}", e.name), &e.shape)?;
        let m = tensor(format!("{M_PREFIX}{}", e.name), &e.shape)?;
        let v = if second { tensor(format!("{V_PREFIX}{}", e.name), &e.shape)? } else { Vec::new() };
        state.push(ParamState { name: e.name.clone(), m, v });
        params.push(Param { name: e.name, shape: e.shape, value, decay: e.decay });
    }
    if let Some(info) = st.tensor_infos().iter().find(|t| !expected.contains(&t.name)) {
        return Err(err(format!("unexpected tensor {:?}", info.name)));
    }
    let optimizer = Optimizer::from_state(config, steps, state).map_err(|e| err(e.to_string()))?;
    Ok(Checkpoint { params, optimizer, extra })
}
