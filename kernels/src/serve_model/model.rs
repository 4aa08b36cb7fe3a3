//! The models a tabular server holds (realizar's model loading for `kernels::ml`): a registry version
//! verified against a pinned keyring (RFC 8032 signature on the manifest, manifest digest against its
//! ref, the artefact's BLAKE3 digest re-checked on exactly the bytes parsed) or a model file, turned
//! into a [`Predictor`] (tree models flattened into a [`FlatForest`]).
//!
//! A registry source names a version (`fraud@3`) or a stage (`fraud@production`, and `fraud` alone
//! means production): the version served is the one most recently promoted into that stage that is
//! still in it, read from a verified replay of the promotion log. The log head seen at each load is
//! remembered and pinned at the next, so a log truncated or rewritten under a running server is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::formats::safetensors::Safetensors;
use crate::ml::Matrix;
use crate::ml::compiled::{CompileConfig, CompiledForest, compile};
use crate::ml::flat::FlatForest;
use crate::ml::forest::RandomForest;
use crate::ml::gbm::Gbm;
use crate::ml::io::{self, ModelMeta};
use crate::ml::kmeans::KMeansModel;
use crate::ml::linear::LinearModel;
use crate::ml::logistic::LogisticModel;
use crate::ml::tree::DecisionTree;
use crate::registry::{Digest, Keyring, LogHead, ModelRef, Registry, Stage};
use crate::{Error, Result};

/// The artefact a registry version is served from when it has several (`sovereign ml train` writes it).
pub const MODEL_FILE: &str = "model.safetensors";

/// Which version of a registered model to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// Exactly this version (never changes on reload).
    Version(u64),
    /// The version most recently promoted into this stage (followed on reload).
    Stage(Stage),
}

/// Where a server's model comes from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A version of a model in a registry folder, verified against `keyring`.
    Registry {
        /// The registry folder.
        root: PathBuf,
        /// The trusted public keys (pinned when the server starts).
        keyring: Arc<Keyring>,
        /// The model's name.
        name: String,
        /// Which version.
        selector: Selector,
    },
    /// A model file (`model.safetensors`, or a folder holding one); unsigned, for development.
    File {
        /// The file.
        path: PathBuf,
        /// The name clients use in the URL.
        name: String,
    },
}

impl ModelSource {
    /// A registry source from `NAME`, `NAME@VERSION` or `NAME@STAGE` (`NAME` = `NAME@production`).
    ///
    /// # Errors
    /// [`Error::RegistryInvalid`] for a bad name, version or stage.
    pub fn registry(root: impl Into<PathBuf>, keyring: Keyring, spec: &str) -> Result<ModelSource> {
        let (name, selector) = match spec.rsplit_once('@') {
            None => (spec, Selector::Stage(Stage::Production)),
            Some((name, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => {
                (name, Selector::Version(spec.parse::<ModelRef>()?.version))
            }
            Some((name, tail)) => (name, Selector::Stage(tail.parse::<Stage>()?)),
        };
        crate::registry::manifest::check_name("model name", name)?;
        Ok(ModelSource::Registry { root: root.into(), keyring: Arc::new(keyring), name: name.to_string(), selector })
    }

    /// A model-file source: `path` is the file or a folder holding [`MODEL_FILE`]; the name defaults to
    /// the folder's (or file stem's) name.
    pub fn file(path: impl Into<PathBuf>, name: Option<&str>) -> ModelSource {
        let path = path.into();
        let path = if path.is_dir() { path.join(MODEL_FILE) } else { path };
        let name = name.map(str::to_string).unwrap_or_else(|| {
            let stem = if path.file_name().is_some_and(|f| f == MODEL_FILE) {
                path.parent().and_then(|p| p.file_name())
            } else {
                path.file_stem()
            };
            stem.map_or_else(|| "model".to_string(), |s| s.to_string_lossy().into_owned())
        });
        ModelSource::File { path, name }
    }

    /// The name clients use in `/v1/models/{name}:predict`.
    pub fn name(&self) -> &str {
        match self {
            ModelSource::Registry { name, .. } | ModelSource::File { name, .. } => name,
        }
    }

    /// How the source is named in messages.
    pub fn describe(&self) -> String {
        match self {
            ModelSource::Registry { root, name, selector, .. } => {
                let at = match selector {
                    Selector::Version(v) => v.to_string(),
                    Selector::Stage(s) => s.to_string(),
                };
                format!("{name}@{at} in registry {}", root.display())
            }
            ModelSource::File { path, .. } => path.display().to_string(),
        }
    }

    /// A cheap fingerprint of what a reload would read (the promotion log's or model file's length and
    /// modification time, and the version refs): a poller reloads only when it changes.
    pub fn fingerprint(&self) -> String {
        let stat = |p: &Path| match std::fs::metadata(p) {
            Ok(m) => format!("{}:{:?}", m.len(), m.modified().ok()),
            Err(_) => "absent".to_string(),
        };
        match self {
            ModelSource::Registry { root, name, .. } => {
                format!("{} {}", stat(&root.join("promotions.log")), stat(&root.join("refs").join(name)))
            }
            ModelSource::File { path, .. } => stat(path),
        }
    }
}

/// A model ready to score rows.
#[derive(Debug, Clone)]
pub enum Predictor {
    /// A decision tree, random forest or boosted model, flattened.
    Flat(FlatForest),
    /// Linear regression.
    Linear(LinearModel),
    /// Logistic regression (scores are P(y = 1)).
    Logistic(LogisticModel),
    /// k-means (scores are cluster ids).
    KMeans(KMeansModel),
}

/// A loaded, verified model and what the server reports about it.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// The name clients use.
    pub name: String,
    /// The registry version (`None` for a model file).
    pub version: Option<u64>,
    /// BLAKE3 hex of the model file's bytes.
    pub digest: String,
    /// The registry manifest's digest (`None` for a model file).
    pub manifest: Option<String>,
    /// `tree`, `forest`, `gbm`, `linear`, `logistic` or `kmeans`.
    pub kind: String,
    /// What a score means (`value`, `p(class 1)`, `class probabilities`, `cluster id`).
    pub output: &'static str,
    /// The features a row must have, in order.
    pub feature_names: Vec<String>,
    /// Scores per row.
    pub n_outputs: usize,
    /// Whether a missing value (JSON `null`, NaN) may be given: tree models send it down each node's
    /// learned default side; the linear models and k-means cannot take one.
    pub allows_missing: bool,
    /// The scorer.
    pub predictor: Predictor,
    /// A single-output tree model compiled to machine code ([`crate::ml::compiled`]), which scores
    /// small batches row by row; `None` for other models, or where the CPU or OS has no compiler.
    pub compiled: Option<Arc<CompiledForest>>,
}

impl LoadedModel {
    /// A model from the bytes of a model file (`origin` names it in errors); `name` is the URL name.
    ///
    /// # Errors
    /// The model reader's errors ([`Error::MlModelFile`], [`Error::MlModelKind`], …).
    pub fn from_bytes(bytes: Vec<u8>, name: &str, version: Option<u64>, origin: &Path) -> Result<LoadedModel> {
        let digest = Digest::of(&bytes).to_hex();
        let kind =
            Safetensors::parse(&bytes).ok().and_then(|st| st.metadata().get("kind").cloned()).ok_or_else(|| {
                Error::MlModelFile {
                    path: origin.to_path_buf(),
                    reason: "not a kernels::ml model file (no __metadata__ kind)".into(),
                }
            })?;
        let (predictor, meta, output): (Predictor, ModelMeta, &'static str) = match kind.as_str() {
            "tree" => {
                let (m, meta) = io::load_bytes::<DecisionTree>(bytes, origin)?;
                (Predictor::Flat(FlatForest::from_tree(&m)), meta, classes_output(m.n_classes()))
            }
            "forest" => {
                let (m, meta) = io::load_bytes::<RandomForest>(bytes, origin)?;
                (Predictor::Flat(FlatForest::from_forest(&m)), meta, classes_output(m.n_classes()))
            }
            "gbm" => {
                let (m, meta) = io::load_bytes::<Gbm>(bytes, origin)?;
                let output = match m.objective() {
                    crate::ml::gbm::Objective::Binary => "p(class 1)",
                    crate::ml::gbm::Objective::Regression => "value",
                };
                (Predictor::Flat(FlatForest::from_gbm(&m)), meta, output)
            }
            "linear" => {
                let (m, meta) = io::load_bytes::<LinearModel>(bytes, origin)?;
                (Predictor::Linear(m), meta, "value")
            }
            "logistic" => {
                let (m, meta) = io::load_bytes::<LogisticModel>(bytes, origin)?;
                (Predictor::Logistic(m), meta, "p(class 1)")
            }
            "kmeans" => {
                let (m, meta) = io::load_bytes::<KMeansModel>(bytes, origin)?;
                (Predictor::KMeans(m), meta, "cluster id")
            }
            other => {
                return Err(Error::MlModelFile {
                    path: origin.to_path_buf(),
                    reason: format!(
                        "model kind {other:?} cannot be served (tree, forest, gbm, linear, logistic, kmeans)"
                    ),
                });
            }
        };
        let n_features = match &predictor {
            Predictor::Flat(f) => f.n_features(),
            Predictor::Linear(m) => m.n_features(),
            Predictor::Logistic(m) => m.n_features(),
            Predictor::KMeans(m) => m.dim(),
        };
        let feature_names = if meta.feature_names.len() == n_features {
            meta.feature_names
        } else {
            (0..n_features).map(|j| format!("f{j}")).collect()
        };
        let n_outputs = match &predictor {
            Predictor::Flat(f) => f.n_outputs(),
            _ => 1,
        };
        let compiled = match &predictor {
            Predictor::Flat(f) if f.n_outputs() == 1 => compile(f, &CompileConfig::default()).ok().map(Arc::new),
            _ => None,
        };
        Ok(LoadedModel {
            name: name.to_string(),
            version,
            digest,
            manifest: None,
            kind,
            output,
            feature_names,
            n_outputs,
            allows_missing: matches!(predictor, Predictor::Flat(_)),
            predictor,
            compiled,
        })
    }

    /// The number of features a row must have.
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// The version as a metrics label: the registry version, or `file`.
    pub fn version_label(&self) -> String {
        self.version.map_or_else(|| "file".to_string(), |v| v.to_string())
    }

    /// Scores `rows` rows of `data` (row-major, [`LoadedModel::n_features`] values each):
    /// `rows × n_outputs` values. Few rows are scored one at a time on the calling thread (by the
    /// compiled model when there is one, else walked); many go through
    /// [`FlatForest::predict_batch_all`] (blocks of rows on rayon's threads).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for a ragged `data`; [`Error::MlNonFinite`] for a NaN given to a
    /// model that cannot take one.
    pub fn predict(&self, data: &[f32], rows: usize) -> Result<Vec<f32>> {
        let d = self.n_features();
        if data.len() != rows * d {
            return Err(Error::DimensionMismatch { expected: rows * d, got: data.len() });
        }
        let matrix = || Matrix::new(rows, d, data.to_vec());
        match &self.predictor {
            Predictor::Flat(_) if rows < SEQUENTIAL_BELOW && self.compiled.is_some() => {
                let c = self.compiled.as_ref().expect("checked");
                data.chunks_exact(d).map(|row| c.predict_row(row)).collect()
            }
            Predictor::Flat(f) if rows < SEQUENTIAL_BELOW => {
                let k = f.n_outputs();
                let mut out = vec![0.0f32; rows * k];
                for (row, o) in data.chunks_exact(d).zip(out.chunks_exact_mut(k)) {
                    f.predict_row_into(row, o)?;
                }
                Ok(out)
            }
            Predictor::Flat(f) => f.predict_batch_all(&matrix()?),
            Predictor::Linear(m) => m.predict(&matrix()?),
            Predictor::Logistic(m) => m.predict_proba(&matrix()?),
            Predictor::KMeans(m) => Ok(m.predict(&matrix()?)?.into_iter().map(|c| c as f32).collect()),
        }
    }
}

/// Below this many rows a batch is scored row by row on the scoring thread (a rayon dispatch costs
/// more than it saves).
const SEQUENTIAL_BELOW: usize = 256;

fn classes_output(n_classes: usize) -> &'static str {
    match n_classes {
        0 => "value",
        2 => "p(class 1)",
        _ => "class probabilities",
    }
}

/// Loads `source`. For a registry: resolves the selector from the verified promotion log (pinned at
/// `pinned`, the head seen at the previous load), verifies the version (manifest, signature, artefact
/// digests), reads the model artefact and checks its digest again on the bytes it parses. Returns the
/// model and the log head to pin next time.
///
/// # Errors
/// [`Error::ServeModelLoad`] naming the source, with the registry's or reader's error as the cause
/// (unsigned, tampered, unknown version, no version in the stage, not a model file).
pub fn load(source: &ModelSource, pinned: Option<&LogHead>) -> Result<(LoadedModel, Option<LogHead>)> {
    let wrap = |cause: Error| Error::ServeModelLoad { what: source.describe(), cause: Box::new(cause) };
    match source {
        ModelSource::File { path, name } => {
            let bytes = std::fs::read(path)
                .map_err(|e| wrap(Error::MlModelFile { path: path.clone(), reason: format!("cannot read: {e}") }))?;
            Ok((LoadedModel::from_bytes(bytes, name, None, path).map_err(wrap)?, None))
        }
        ModelSource::Registry { root, keyring, name, selector } => {
            load_registry(root, keyring, name, *selector, pinned).map_err(wrap)
        }
    }
}

fn load_registry(
    root: &Path,
    keyring: &Keyring,
    name: &str,
    selector: Selector,
    pinned: Option<&LogHead>,
) -> Result<(LoadedModel, Option<LogHead>)> {
    if !root.join("refs").is_dir() || !root.join("objects").is_dir() {
        return Err(Error::ServeModelConfig(format!("{} is not a registry (no refs/ and objects/)", root.display())));
    }
    let reg = Registry::open(root)?;
    let log = reg.promotion_log(keyring, pinned)?;
    let head = crate::registry::stage::head(&log);
    let version = match selector {
        Selector::Version(v) => v,
        Selector::Stage(stage) => {
            // The current stage of each version (last entry wins) and when it entered it.
            let mut current: BTreeMap<u64, (Stage, u64)> = BTreeMap::new();
            for e in log.iter().filter(|e| e.model.name == name) {
                current.insert(e.model.version, (e.stage, e.seq));
            }
            current
                .iter()
                .filter(|(_, (s, _))| *s == stage)
                .max_by_key(|(_, (_, seq))| *seq)
                .map(|(v, _)| *v)
                .ok_or_else(|| {
                    Error::ServeModelConfig(format!(
                        "no version of {name} is in stage {stage} (promote one with `sovereign registry promote`)"
                    ))
                })?
        }
    };
    // ANCHOR: verify_load
    let reference = ModelRef::new(name, version)?;
    let verified = reg.verify(&reference, keyring)?;
    let artefacts = &verified.manifest.artefacts;
    let artefact = artefacts
        .iter()
        .find(|a| a.name == MODEL_FILE)
        .or_else(|| match artefacts.iter().filter(|a| a.name.ends_with(".safetensors")).collect::<Vec<_>>()[..] {
            [one] => Some(one),
            _ => None,
        })
        .ok_or_else(|| {
            Error::ServeModelConfig(format!(
                "{reference} has no {MODEL_FILE} artefact (nor exactly one *.safetensors): {:?}",
                artefacts.iter().map(|a| a.name.as_str()).collect::<Vec<_>>()
            ))
        })?;
    let path = reg.store().path_of(&artefact.digest);
    let bytes = std::fs::read(&path).map_err(|source| Error::RegistryIo { path: path.clone(), source })?;
    // Checked again on the bytes parsed: the store could change between verify and read.
    let found = Digest::of(&bytes);
    if found != artefact.digest {
        return Err(Error::RegistryArtefactDigest {
            reference: reference.to_string(),
            artefact: artefact.name.clone(),
            expected: artefact.digest.to_hex(),
            found: found.to_hex(),
        });
    }
    // ANCHOR_END: verify_load
    let origin = PathBuf::from(format!("{reference}/{}", artefact.name));
    let mut model = LoadedModel::from_bytes(bytes, name, Some(version), &origin)?;
    model.manifest = Some(verified.digest.to_hex());
    Ok((model, Some(head)))
}
