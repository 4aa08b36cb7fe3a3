//! MLflow's data model as plain serde types, in the JSON shapes of the tracking REST API 2.0.
//!
//! An **experiment** groups **runs**; a run has an id, a status and timing
//! (`RunInfo`) and what was logged to it (`RunData`): **params** (write-once
//! strings), **metrics** (time series of doubles, each point with a step and a
//! timestamp) and **tags** (mutable strings). The structs are given; the task
//! is the four places where MLflow's JSON is not what serde does by default:
//!
//! - int64 fields (timestamps, steps) arrive as JSON numbers (MLflow's habit)
//!   **or** as strings (protobuf's canonical JSON mapping of int64);
//! - a metric value may be NaN or ±infinity, which JSON has no numbers for:
//!   protobuf spells them `"NaN"`, `"Infinity"` and `"-Infinity"`;
//! - `RunStatus` travels as `"RUNNING"`, `"FINISHED"`, … .
//!
//! MLflow leaves out empty fields, so every collection and optional field
//! defaults when absent.

use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// An experiment: a named group of runs (`mlflow.Experiment`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Server-assigned id (a decimal string).
    pub experiment_id: String,
    /// Unique human-readable name.
    pub name: String,
    /// Where the runs of this experiment keep their artifacts.
    #[serde(default)]
    pub artifact_location: String,
    /// `active` or `deleted`.
    #[serde(default)]
    pub lifecycle_stage: LifecycleStage,
    /// Creation time, milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "deserialize_opt_i64")]
    pub creation_time: Option<i64>,
    /// Experiment tags.
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

/// The state of a run (`RunStatus`); serialised as MLflow spells it, e.g. `"FINISHED"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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
    /// Task c3w1.types (part of 10 points): MLflow's spelling of the status:
    /// `"RUNNING"`, `"SCHEDULED"`, `"FINISHED"`, `"FAILED"` or `"KILLED"`.
    pub fn as_str(self) -> &'static str {
        // BEGIN SOLUTION c3w1.types
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
        // END SOLUTION
    }

    /// Whether the run has ended (finished, failed or killed). Given.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Killed)
    }
}

impl FromStr for RunStatus {
    type Err = Error;

    /// Task c3w1.types (part of 10 points): the status MLflow spells `s`
    /// (exactly as [`RunStatus::as_str`] writes it); anything else is
    /// [`Error::InvalidArgument`] naming the text.
    fn from_str(s: &str) -> Result<Self, Error> {
        // BEGIN SOLUTION c3w1.types
        Ok(match s {
            "RUNNING" => RunStatus::Running,
            "SCHEDULED" => RunStatus::Scheduled,
            "FINISHED" => RunStatus::Finished,
            "FAILED" => RunStatus::Failed,
            "KILLED" => RunStatus::Killed,
            other => return Err(Error::InvalidArgument(format!("unknown run status {other:?}"))),
        })
        // END SOLUTION
    }
}

impl Serialize for RunStatus {
    /// Writes [`RunStatus::as_str`]. Given.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RunStatus {
    /// Reads a string with [`RunStatus::from_str`]. Given.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A run: its metadata and what was logged to it (`Run`).
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
    /// Display name (the server invents one when none is given).
    #[serde(default)]
    pub run_name: String,
    /// The experiment the run belongs to.
    pub experiment_id: String,
    /// Current state.
    #[serde(default)]
    pub status: RunStatus,
    /// Start, milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "deserialize_opt_i64")]
    pub start_time: Option<i64>,
    /// End, milliseconds since the Unix epoch (absent while running).
    #[serde(default, deserialize_with = "deserialize_opt_i64")]
    pub end_time: Option<i64>,
    /// Root of the run's artifacts, e.g. `mlflow-artifacts:/1/<run_id>/artifacts`.
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
    /// All tags, MLflow's own `mlflow.*` tags included.
    #[serde(default)]
    pub tags: Vec<RunTag>,
}

impl RunData {
    /// The value of param `key`, if logged. Given.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|p| p.key == key).map(|p| p.value.as_str())
    }

    /// The value of tag `key`, if set. Given.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }

    /// The latest value of metric `key`, if logged. Given.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.iter().find(|m| m.key == key).map(|m| m.value)
    }
}

// ANCHOR: metric
/// One metric measurement (`Metric`): a point of the time series `key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Name of the series, e.g. `loss`.
    pub key: String,
    /// The value; NaN and infinities are allowed.
    #[serde(serialize_with = "serialize_f64", deserialize_with = "deserialize_f64")]
    pub value: f64,
    /// When it was measured, milliseconds since the Unix epoch.
    #[serde(deserialize_with = "deserialize_i64")]
    pub timestamp: i64,
    /// Training step (0 when not given).
    #[serde(default, deserialize_with = "deserialize_i64")]
    pub step: i64,
}
// ANCHOR_END: metric

impl Metric {
    /// A measurement of `key` at `step`, timestamped now. Given.
    pub fn new(key: impl Into<String>, value: f64, step: i64) -> Self {
        Self { key: key.into(), value, timestamp: now_millis(), step }
    }

    /// A measurement with an explicit timestamp (milliseconds since the Unix epoch). Given.
    pub fn at(key: impl Into<String>, value: f64, step: i64, timestamp: i64) -> Self {
        Self { key: key.into(), value, timestamp, step }
    }
}

/// A run parameter (`Param`): logged once, immutable afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Param {
    /// Name.
    pub key: String,
    /// Value (MLflow keeps params as strings).
    #[serde(default)]
    pub value: String,
}

impl Param {
    /// A param `key = value`. Given.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self { key: key.into(), value: value.into() }
    }
}

/// A tag on a run or an experiment (`RunTag`): mutable key/value metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunTag {
    /// Name.
    pub key: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

impl RunTag {
    /// A tag `key = value`. Given.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self { key: key.into(), value: value.into() }
    }
}

/// One page of a paginated listing plus the token of the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass this back to get the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// Milliseconds since the Unix epoch, the unit of every MLflow timestamp. Given.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// BEGIN SOLUTION c3w1.types delete
/// A JSON number or a string holding one: what MLflow may send for an int64 or a double.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Int(i64),
    Float(f64),
    Text(String),
}
// END SOLUTION

// ANCHOR: deserialize_i64
/// Task c3w1.types (part of 10 points): reads an int64 written as a JSON
/// number (`5`) or as a string (`"5"`).
///
/// A whole number written as a float (`5.0`) is accepted too; a fraction
/// (`5.5`), a non-numeric string or any other JSON value is an error
/// (`serde::de::Error::custom`). Used with `#[serde(deserialize_with = ...)]`.
pub fn deserialize_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    // ANCHOR_END: deserialize_i64
    // BEGIN SOLUTION c3w1.types
    match NumberOrText::deserialize(d)? {
        NumberOrText::Int(i) => Ok(i),
        NumberOrText::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        NumberOrText::Float(f) => Err(serde::de::Error::custom(format!("not an int64: {f}"))),
        NumberOrText::Text(s) => s.trim().parse().map_err(|e| serde::de::Error::custom(format!("int64 {s:?}: {e}"))),
    }
    // END SOLUTION
}

/// [`deserialize_i64`] for an optional field (present means `Some`). Given.
pub fn deserialize_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    deserialize_i64(d).map(Some)
}

/// Task c3w1.types (part of 10 points): reads a double written as a JSON
/// number (`0.5`, `3`) or as a string: `"NaN"`, `"Infinity"`, `"-Infinity"`
/// or a decimal number such as `"0.25"`.
///
/// Anything else is an error (`serde::de::Error::custom`).
pub fn deserialize_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    // BEGIN SOLUTION c3w1.types
    match NumberOrText::deserialize(d)? {
        NumberOrText::Int(i) => Ok(i as f64),
        NumberOrText::Float(f) => Ok(f),
        NumberOrText::Text(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(|e| serde::de::Error::custom(format!("double {other:?}: {e}"))),
        },
    }
    // END SOLUTION
}

/// Task c3w1.types (part of 10 points): writes a double as MLflow reads it:
/// a finite value as a JSON number, NaN as `"NaN"`, +∞ as `"Infinity"` and
/// −∞ as `"-Infinity"` (JSON itself has no way to write them).
pub fn serialize_f64<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    // BEGIN SOLUTION c3w1.types
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if v.is_infinite() {
        s.serialize_str(if *v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        s.serialize_f64(*v)
    }
    // END SOLUTION
}
