//! Exporting a fine-tune as a model file: the LoRA adapters merged into the base weights
//! (`W + (α/r)·B·A`, Hu et al., "LoRA", 2021, §4.1: no extra latency at inference) and written as a
//! GGUF file that `kernels::llm`, `sovereign serve` and llama.cpp's `gguf` package read.
//!
//! Every tensor without an adapter is copied byte for byte, with the metadata (tokenizer, chat
//! template, hyper-parameters). A merged matrix is dequantised, updated and stored again in the
//! format [`MergeConfig::format`] names. A LoRA update is small next to the weights it adds to: in a
//! test adapter on SmolLM2's first query projection, updates of at most 0.025 met Q8_0 rounding
//! errors of up to 0.019 (a step is a block's largest magnitude over 127), and a Q4_1 step is
//! sixteen times coarser (re-quantised to Q4_1, a strong adapter's effect on the logits was three
//! quarters lost). So the default stores merged matrices in F16 (an 11-bit significand: a rounding
//! error of at most 2⁻¹¹ of the largest weight), on the adapted projections only; the rest keeps its
//! quantised blocks.

use std::path::Path;

use super::lora::LoraAdapters;
use crate::formats::gguf::{GgmlType, Gguf, GgufTensor, MetadataValue, TensorKind};
use crate::quant::QuantFormat;
use crate::{Error, Result};

/// How [`merged_gguf`] stores the merged matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeConfig {
    /// The format of every merged matrix.
    pub format: MergedFormat,
}

/// A storage format for merged matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergedFormat {
    /// IEEE half precision (the default: keeps the update, 2 bytes a weight).
    F16,
    /// One of `kernels::quant`'s block formats.
    Quant(QuantFormat),
    /// Each base tensor's own format (small updates mostly round away in 4-bit formats).
    Base,
}

impl Default for MergeConfig {
    fn default() -> Self {
        MergeConfig { format: MergedFormat::F16 }
    }
}

/// The GGUF file of `base` with `adapters` merged into their matrices (see the module docs).
///
/// # Errors
/// [`Error::InvalidParameter`] when an adapter's matrix is not in `base` or the adapters were made
/// for other shapes; [`Error::UnsupportedTensorType`] for a base matrix in a type `kernels` cannot
/// dequantise or quantise; the GGUF writer's errors.
pub fn merged_gguf(base: &Gguf, adapters: &LoraAdapters, config: MergeConfig) -> Result<Vec<u8>> {
    let mut merged = Vec::new();
    for (i, adapter) in adapters.adapters().iter().enumerate() {
        let name = adapter.target.gguf_tensor(adapter.layer);
        let view = base
            .tensor(&name)
            .map_err(|_| Error::InvalidParameter(format!("adapter {i} targets {name}, which the base model lacks")))?;
        let mut w = view.to_f32()?;
        adapters.merge(i, &mut w)?;
        let format = match (config.format, view.kind()) {
            (MergedFormat::Base, TensorKind::Quant(format)) => MergedFormat::Quant(format),
            (MergedFormat::Base, TensorKind::F16) => MergedFormat::F16,
            (MergedFormat::Base, TensorKind::F32) => {
                merged.push((name, GgmlType::F32, w.iter().flat_map(|v| v.to_le_bytes()).collect()));
                continue;
            }
            (MergedFormat::Base, _) => {
                return Err(Error::UnsupportedTensorType {
                    name,
                    dtype: view.ggml_type().name().to_string(),
                    operation: "storing a merged LoRA matrix in the base's format (choose MergedFormat::F16)",
                });
            }
            (format, _) => format,
        };
        let (ggml_type, bytes) = match format {
            MergedFormat::Quant(format) => {
                let ggml_type = GgmlType::from_id(format.ggml_type()).expect("kernels' formats are ggml types");
                (ggml_type, crate::quant::quantize(format, &w)?)
            }
            _ => (GgmlType::F16, w.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect()),
        };
        merged.push((name, ggml_type, bytes));
    }
    let tensors: Vec<GgufTensor<'_>> = base
        .tensors()
        .map(|view| match merged.iter().position(|(name, _, _)| *name == view.info.name) {
            Some(m) => GgufTensor {
                name: view.info.name.clone(),
                dims: view.info.dims.clone(),
                ggml_type: merged[m].1,
                bytes: std::borrow::Cow::Borrowed(&merged[m].2),
            },
            None => GgufTensor::of(view),
        })
        .collect();
    let metadata: Vec<(String, MetadataValue)> =
        base.metadata_entries().map(|(k, v)| (k.to_string(), v.clone())).collect();
    crate::formats::gguf::serialize(&metadata, &tensors)
}

/// Writes [`merged_gguf`]'s file to `path` atomically.
///
/// # Errors
/// As [`merged_gguf`], and [`Error::FormatIo`] when the file cannot be written.
pub fn save_merged_gguf(
    path: impl AsRef<Path>,
    base: &Gguf,
    adapters: &LoraAdapters,
    config: MergeConfig,
) -> Result<()> {
    let path = path.as_ref();
    let bytes = merged_gguf(base, adapters, config)?;
    crate::formats::safetensors::write_atomic(path, &bytes)
        .map_err(|source| Error::FormatIo { path: path.to_path_buf(), source })
}

/// [`merged_gguf`] of a base model that came from the registry: only a
/// [`Model<Verified>`](crate::registry::secure::Model) (decrypted and signature-checked against a
/// pinned keyring) can be fine-tuned into a new model file. `artefact` names the GGUF file in the
/// version's manifest.
///
/// ```no_run
/// # fn main() -> kernels::Result<()> {
/// use kernels::registry::secure::{Model, Verified};
/// use kernels::train::export::{MergeConfig, merged_gguf_of_verified};
/// use kernels::train::lora::LoraAdapters;
/// fn export(base: &Model<Verified>, adapters: &LoraAdapters) -> kernels::Result<Vec<u8>> {
///     merged_gguf_of_verified(base, "model.gguf", adapters, MergeConfig::default())
/// }
/// # Ok(())
/// # }
/// ```
///
/// A model that was pulled but not verified does not compile in its place:
///
/// ```compile_fail,E0308
/// use kernels::registry::secure::{Model, Unverified};
/// use kernels::train::export::{MergeConfig, merged_gguf_of_verified};
/// use kernels::train::lora::LoraAdapters;
/// fn export(base: &Model<Unverified>, adapters: &LoraAdapters) -> kernels::Result<Vec<u8>> {
///     merged_gguf_of_verified(base, "model.gguf", adapters, MergeConfig::default())
/// }
/// ```
///
/// # Errors
/// [`Error::InvalidParameter`] when the version has no artefact `artefact`; the GGUF reader's errors
/// on its bytes; as [`merged_gguf`].
#[cfg(feature = "registry")]
pub fn merged_gguf_of_verified(
    base: &crate::registry::secure::Model<crate::registry::secure::Verified>,
    artefact: &str,
    adapters: &LoraAdapters,
    config: MergeConfig,
) -> Result<Vec<u8>> {
    let bytes = base.artefact(artefact).ok_or_else(|| {
        Error::InvalidParameter(format!("the verified model {} has no artefact {artefact}", base.reference()))
    })?;
    merged_gguf(&Gguf::from_vec(bytes.to_vec())?, adapters, config)
}
