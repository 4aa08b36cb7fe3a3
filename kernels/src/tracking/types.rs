//! Plain data types with serde shapes that match MLflow's tracking REST API 2.0 JSON.
//!
//! Field names and enum spellings follow the protobuf messages documented at
//! <https://mlflow.org/docs/latest/api_reference/rest-api.html> (`Experiment`,
//! `Run`, `RunInfo`, `RunData`, `Metric`, `Param`, `RunTag`, `RunStatus`,
//! `ViewType`, `FileInfo`, and the Model Registry's `RegisteredModel`,
//! `ModelVersion`, `RegisteredModelAlias`, `ModelVersionStatus`). MLflow leaves
//! out empty fields, so every collection and optional field defaults when
//! absent; int64 fields are read whether the server writes them as JSON numbers
//! (MLflow's habit) or as strings (protobuf's canonical JSON), and non-finite
//! doubles travel as `"NaN"`, `"Infinity"` and `"-Infinity"` (protobuf's JSON
//! spelling, which MLflow parses).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An experiment: a named group of runs (`mlflow.Experiment`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Server-assigned id (a decimal string).
    pub experiment_id: String,
    /// Unique human-readable name.
    pub name: String,
    /// Where the runs of this experiment store their artifacts.
    #[serde(default)]
    pub artifact_location: String,
    /// `active` or `deleted`.
    #[serde(default)]
    pub lifecycle_stage: LifecycleStage,
    /// Last update, milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "opt_i64")]
    pub last_update_time: Option<i64>,
    /// Creation time, milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "opt_i64")]
    pub creation_time: Option<i64>,
    /// Experiment tags (`ExperimentTag`: same shape as a run tag).
    #[serde(default)]
    pub tags: Vec<RunTag>,
}

/// Whether an experiment or run is live or soft-deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleStage {
    /// Visible in default searches.
    #[default]
    Active,
    /// Soft-deleted: restorable until garbage-collected.
    Deleted,
}

/// Which lifecycle stages a search returns (`ViewType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ViewType {
    /// Only active entities (the server's default).
    #[default]
    ActiveOnly,
    /// Only soft-deleted entities.
    DeletedOnly,
    /// Both.
    All,
}

/// The state of a run (`RunStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Being executed (the status a new run gets).
    #[default]
    Running,
    /// Scheduled, not yet started.
    Scheduled,
    /// Completed successfully.
    Finished,
    /// Ended with an error.
    Failed,
    /// Killed by the user or the system.
    Killed,
}

impl RunStatus {
    /// Whether the run has ended (finished, failed or killed).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Killed)
    }
}

/// A run: metadata plus the data logged to it (`Run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Identity, status and timing.
    pub info: RunInfo,
    /// Latest metrics, params and tags.
    #[serde(default)]
    pub data: RunData,
}

/// Metadata of a run (`RunInfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Unique id of the run (32 hex digits).
    pub run_id: String,
    /// Display name.
    #[serde(default)]
    pub run_name: String,
    /// The experiment the run belongs to.
    pub experiment_id: String,
    /// Who created the run, if recorded.
    #[serde(default)]
    pub user_id: String,
    /// Current state.
    #[serde(default)]
    pub status: RunStatus,
    /// Start, milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "opt_i64")]
    pub start_time: Option<i64>,
    /// End, milliseconds since the Unix epoch (absent while running).
    #[serde(default, deserialize_with = "opt_i64")]
    pub end_time: Option<i64>,
    /// Root URI of the run's artifacts, e.g. `mlflow-artifacts:/1/<run_id>/artifacts`.
    #[serde(default)]
    pub artifact_uri: String,
    /// `active` or `deleted`.
    #[serde(default)]
    pub lifecycle_stage: LifecycleStage,
}

/// What has been logged to a run (`RunData`): the latest value of each metric, params and tags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    /// Latest value of every metric key.
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// All params.
    #[serde(default)]
    pub params: Vec<Param>,
    /// All tags, including MLflow's own `mlflow.*` tags.
    #[serde(default)]
    pub tags: Vec<RunTag>,
}

impl RunData {
    /// The value of param `key`, if logged.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|p| p.key == key).map(|p| p.value.as_str())
    }

    /// The value of tag `key`, if set.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }

    /// The latest logged value of metric `key`, if any.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.iter().find(|m| m.key == key).map(|m| m.value)
    }
}

/// One metric measurement (`Metric`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Name of the metric, e.g. `loss`.
    pub key: String,
    /// The value; NaN and infinities are allowed.
    #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
    pub value: f64,
    /// When it was measured, milliseconds since the Unix epoch.
    #[serde(deserialize_with = "de_i64")]
    pub timestamp: i64,
    /// Training step (0 when not given).
    #[serde(default, deserialize_with = "de_i64")]
    pub step: i64,
}

impl Metric {
    /// A measurement of `key` at `step`, timestamped now.
    pub fn new(key: impl Into<String>, value: f64, step: i64) -> Self {
        Self { key: key.into(), value, timestamp: now_millis(), step }
    }

    /// A measurement with an explicit timestamp (milliseconds since the Unix epoch).
    pub fn at(key: impl Into<String>, value: f64, step: i64, timestamp: i64) -> Self {
        Self { key: key.into(), value, timestamp, step }
    }
}

/// A run parameter (`Param`): logged once, immutable afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Param {
    /// Name.
    pub key: String,
    /// Value (MLflow stores params as strings, at most 6000 characters).
    #[serde(default)]
    pub value: String,
}

impl Param {
    /// A param `key = value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self { key: key.into(), value: value.into() }
    }
}

/// A tag on a run or an experiment (`RunTag`, `ExperimentTag`): mutable key/value metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunTag {
    /// Name.
    pub key: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

impl RunTag {
    /// A tag `key = value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self { key: key.into(), value: value.into() }
    }
}

/// One entry of an artifact listing (`FileInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Path relative to the run's artifact root (or the listed folder, for the proxy's listing).
    pub path: String,
    /// Whether this entry is a folder.
    #[serde(default)]
    pub is_dir: bool,
    /// Size in bytes (absent for folders).
    #[serde(default, deserialize_with = "opt_i64")]
    pub file_size: Option<i64>,
}

/// A model in the Model Registry (`RegisteredModel`): a name that versions are registered under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    /// Unique name (no `/` or `:`).
    pub name: String,
    /// Creation time, milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "opt_i64")]
    pub creation_timestamp: Option<i64>,
    /// Last update, milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "opt_i64")]
    pub last_updated_timestamp: Option<i64>,
    /// Free text shown in the UI.
    #[serde(default)]
    pub description: String,
    /// The latest version of each stage (what `registered-models/get` reports).
    #[serde(default)]
    pub latest_versions: Vec<ModelVersion>,
    /// Tags (`RegisteredModelTag`: same shape as a run tag).
    #[serde(default)]
    pub tags: Vec<RunTag>,
    /// The aliases and the versions they point at.
    #[serde(default)]
    pub aliases: Vec<RegisteredModelAlias>,
}

impl RegisteredModel {
    /// The value of tag `key`, if set.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }

    /// The version alias `alias` points at, if set.
    pub fn alias(&self, alias: &str) -> Option<&str> {
        self.aliases.iter().find(|a| a.alias == alias).map(|a| a.version.as_str())
    }
}

/// An alias of a registered model (`RegisteredModelAlias`): a mutable name for one version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RegisteredModelAlias {
    /// The alias, e.g. `champion`.
    pub alias: String,
    /// The version it points at (a decimal string).
    pub version: String,
}

/// One version of a registered model (`ModelVersion`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The registered model's name.
    pub name: String,
    /// The version number, assigned by the server from 1 (a decimal string, as MLflow sends it).
    pub version: String,
    /// Creation time, milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "opt_i64")]
    pub creation_timestamp: Option<i64>,
    /// Last update, milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "opt_i64")]
    pub last_updated_timestamp: Option<i64>,
    /// Who created it, if recorded.
    #[serde(default)]
    pub user_id: String,
    /// `None`, `Staging`, `Production` or `Archived` (see [`ModelStage`]).
    #[serde(default)]
    pub current_stage: String,
    /// Free text shown in the UI.
    #[serde(default)]
    pub description: String,
    /// Where the version's files are: `runs:/<run_id>/<path>` or an artifact URI.
    #[serde(default)]
    pub source: String,
    /// The run that produced it, if any.
    #[serde(default)]
    pub run_id: String,
    /// Registration state.
    #[serde(default)]
    pub status: ModelVersionStatus,
    /// Details of a failed registration.
    #[serde(default)]
    pub status_message: String,
    /// Tags (`ModelVersionTag`: same shape as a run tag).
    #[serde(default)]
    pub tags: Vec<RunTag>,
    /// A link to the run that produced it.
    #[serde(default)]
    pub run_link: String,
    /// The aliases pointing at this version.
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl ModelVersion {
    /// The value of tag `key`, if set.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }

    /// The version number as an integer (0 if the server sent something else).
    pub fn number(&self) -> u64 {
        self.version.parse().unwrap_or(0)
    }

    /// The stage, if the server sent one of MLflow's four.
    pub fn stage(&self) -> Option<ModelStage> {
        ModelStage::parse(&self.current_stage)
    }
}

/// Where a model version is in its registration (`ModelVersionStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ModelVersionStatus {
    /// Being registered (files still being copied, on stores that copy).
    PendingRegistration,
    /// Registration failed; see `status_message`.
    FailedRegistration,
    /// Usable (the open-source server's versions are ready at once).
    #[default]
    Ready,
}

/// The classic stages of a model version (`model-versions/transition-stage`).
///
/// MLflow 2.9+ deprecates stages in favour of aliases
/// ([`crate::tracking::TrackingClient::set_registered_model_alias`]); the open-source
/// server still keeps them, Unity Catalog does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelStage {
    /// No stage (a new version's).
    None,
    /// Staging.
    Staging,
    /// Production.
    Production,
    /// Archived.
    Archived,
}

impl ModelStage {
    /// MLflow's spelling: `None`, `Staging`, `Production`, `Archived`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Staging => "Staging",
            Self::Production => "Production",
            Self::Archived => "Archived",
        }
    }

    /// Parses MLflow's spelling, ignoring case (as the server does).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::None, Self::Staging, Self::Production, Self::Archived]
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }
}

/// One page of a paginated listing plus the token for the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass this back to get the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// Milliseconds since the Unix epoch, the unit of every MLflow timestamp.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A JSON number or a string holding one (protobuf writes int64 as strings).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrString {
    Int(i64),
    Float(f64),
    Str(String),
}

fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match NumOrString::deserialize(d)? {
        NumOrString::Int(i) => Ok(i),
        // A whole number written as a float (e.g. `5.0`) is still an integer.
        NumOrString::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        NumOrString::Float(f) => Err(serde::de::Error::custom(format!("not an int64: {f}"))),
        NumOrString::Str(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    de_i64(d).map(Some)
}

fn de_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match NumOrString::deserialize(d)? {
        NumOrString::Int(i) => Ok(i as f64),
        NumOrString::Float(f) => Ok(f),
        NumOrString::Str(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(serde::de::Error::custom),
        },
    }
}

fn ser_f64<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if v.is_infinite() {
        s.serialize_str(if *v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        s.serialize_f64(*v)
    }
}
