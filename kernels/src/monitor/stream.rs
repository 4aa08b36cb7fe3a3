//! Drift over Parquet row groups with bounded memory, per column and per day, with thresholds and alerts.
//!
//! Two steps, as production monitors (Evidently, whylogs, SageMaker Model Monitor) split them:
//! 1. [`build_profile`] / [`profile_parquet`] summarise a reference table (the training data) into a
//!    [`Profile`]: per numeric column the interior edges of [`drift::bin_edges`] and the counts of
//!    [`drift::bin_counts`], per categorical column (strings, dictionaries, booleans, integers named
//!    in [`ProfileConfig::categorical`]) the count of each category; missing values (nulls, and NaN
//!    or ±∞ in numeric columns) counted apart. Profiling holds the reference's profiled columns in
//!    memory (quantile edges need every value); the profile itself is a few numbers per bin, saved
//!    and loaded as JSON ([`Profile::save`], [`Profile::load`]).
//! 2. [`drift_parquet`] streams the current table batch by batch, row group by row group
//!    (`ParquetRecordBatchReaderBuilder`, only the profiled columns and the date column decoded),
//!    into histograms over the profile's bins and categories, one per column and per day of
//!    [`DriftConfig::date_column`]. Memory is O(columns × bins × days) plus one batch, whatever the
//!    number of rows; the same [`DriftAccumulator`] takes batches from any other source.
//!
//! Per column (and day) [`ColumnDrift`] holds the population stability index
//! ([`drift::psi_from_counts`]), the Jensen–Shannon distance of the two histograms
//! ([`drift::jensen_shannon`]), for categories Pearson's chi-squared test ([`drift::chi_squared`];
//! current values the reference never saw share one extra "unseen" category), and for numeric
//! columns `ks_binned`, the largest gap between the two binned CDFs at the bin edges. The binned KS
//! looks at the edges only, so it is a **lower bound** of the exact two-sample KS statistic of the
//! raw values; the exact test (with its p-value) is [`drift::ks_2samp`], for samples in memory.
//!
//! Alert rule ([`Thresholds`]), on groups with at least `min_rows` non-missing values:
//! - PSI ≥ `psi_alert` (0.25) is an alert, PSI ≥ `psi_warn` (0.1) a warning (Yurdakul 2018's
//!   conventional cut-offs);
//! - a categorical column alerts on chi-squared when its p-value is below `chi2_p_value` (0.001)
//!   **and** the Jensen–Shannon distance exceeds `chi2_min_js` (0.05): with thousands of rows a day
//!   the test finds trivial differences significant, so the effect size must be material too;
//! - on groups with at least `min_rows` rows (missing ones included), a change in the share of
//!   missing values alerts when it is at least `missing_delta` (0.05) in absolute terms **and** the
//!   two-proportion z-test against the reference gives a p-value below `missing_p_value` (0.001).
//!   Missing values sit outside the histograms, so PSI cannot see an outage that drops values at
//!   random; this rule does (statistic `missing_fraction`, value the group's missing fraction).
//!
//! With a date column the alerts come from the per-day groups (rows without a date count only in
//! the overall figures); without one, from the whole table.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float64Type, Schema, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use serde::{Deserialize, Serialize};

use super::drift::{self, Binning};
use crate::{Error, Result};

/// The profile format written by this version.
pub const PROFILE_VERSION: u32 = 1;

/// What [`build_profile`] profiles and how.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileConfig {
    /// The columns to profile; `None`: every numeric, string, dictionary and boolean column
    /// (others, and categorical columns over `max_categories`, are listed in
    /// [`Profile::skipped`]). A named column that is missing or unusable is an error.
    pub columns: Option<Vec<String>>,
    /// Integer columns to treat as categories (codes, ids) instead of numbers.
    pub categorical: Vec<String>,
    /// How numeric columns are binned.
    pub binning: Binning,
    /// Most distinct values a categorical column may have.
    pub max_categories: usize,
}

impl Default for ProfileConfig {
    /// Every usable column, deciles, at most 1000 categories.
    fn default() -> Self {
        ProfileConfig {
            columns: None,
            categorical: Vec::new(),
            binning: Binning::Quantile { bins: 10 },
            max_categories: 1000,
        }
    }
}

/// A column's reference histogram.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Histogram {
    /// A numeric column: interior edges (`k` edges, `k + 1` bins, the outer two open) and counts.
    Numeric {
        /// Interior bin edges, strictly increasing.
        edges: Vec<f64>,
        /// Values per bin (`edges.len() + 1`).
        counts: Vec<u64>,
    },
    /// A categorical column: categories (sorted) and their counts.
    Categorical {
        /// The categories seen in the reference.
        categories: Vec<String>,
        /// Rows per category.
        counts: Vec<u64>,
    },
}

/// One profiled column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    /// Its name.
    pub name: String,
    /// Its Arrow type in the reference.
    pub data_type: String,
    /// Nulls (and NaN/±∞ in numeric columns) in the reference, outside the histogram.
    pub missing: u64,
    /// The histogram.
    pub histogram: Histogram,
}

/// A reference table summarised for drift detection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// [`PROFILE_VERSION`].
    pub version: u32,
    /// Rows in the reference.
    pub rows: u64,
    /// The profiled columns.
    pub columns: Vec<ColumnProfile>,
    /// Columns left out, each with the reason.
    #[serde(default)]
    pub skipped: Vec<String>,
}

impl Profile {
    /// The profile as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses and checks a profile (`source_name` names it in errors): edges finite and
    /// increasing, one count per bin or category, categories distinct, this version.
    pub fn from_json(text: &str, source_name: &str) -> Result<Profile> {
        let bad = |reason: String| Error::MonitorProfile { source_name: source_name.to_owned(), reason };
        let profile: Profile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if profile.version != PROFILE_VERSION {
            return Err(bad(format!("version {} (this build reads {PROFILE_VERSION})", profile.version)));
        }
        for c in &profile.columns {
            match &c.histogram {
                Histogram::Numeric { edges, counts } => {
                    if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[0] >= w[1]) {
                        return Err(bad(format!("column {:?}: edges not finite and strictly increasing", c.name)));
                    }
                    if counts.len() != edges.len() + 1 {
                        return Err(bad(format!(
                            "column {:?}: {} counts for {} edges (want edges + 1)",
                            c.name,
                            counts.len(),
                            edges.len()
                        )));
                    }
                }
                Histogram::Categorical { categories, counts } => {
                    if counts.len() != categories.len() {
                        return Err(bad(format!(
                            "column {:?}: {} counts for {} categories",
                            c.name,
                            counts.len(),
                            categories.len()
                        )));
                    }
                    let mut sorted: Vec<&String> = categories.iter().collect();
                    sorted.sort();
                    if sorted.windows(2).any(|w| w[0] == w[1]) {
                        return Err(bad(format!("column {:?}: a category appears twice", c.name)));
                    }
                }
            }
        }
        Ok(profile)
    }

    /// Writes the profile as JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json()).map_err(|source| Error::MonitorIo { path: path.to_owned(), source })
    }

    /// Reads a profile written by [`Profile::save`].
    pub fn load(path: &Path) -> Result<Profile> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::MonitorIo { path: path.to_owned(), source })?;
        Profile::from_json(&text, &path.display().to_string())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Numeric,
    Categorical,
}

fn textual(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => true,
        DataType::Dictionary(_, value) => textual(value) || value.is_integer(),
        _ => false,
    }
}

/// How a column of type `t` is profiled, or why it cannot be.
fn kind_of(name: &str, t: &DataType, categorical: &[String]) -> std::result::Result<Kind, String> {
    if categorical.iter().any(|c| c == name) {
        if t.is_integer() || textual(t) {
            return Ok(Kind::Categorical);
        }
        return Err("categorical columns must be integers, strings, dictionaries or booleans".to_owned());
    }
    if t.is_numeric() {
        Ok(Kind::Numeric)
    } else if textual(t) {
        Ok(Kind::Categorical)
    } else {
        Err("drift is profiled for numeric, string, dictionary and boolean columns".to_owned())
    }
}

/// Finite values of a numeric array, and how many rows were missing (null, NaN, ±∞).
fn finite_values(array: &ArrayRef, column: &str, out: &mut Vec<f64>) -> Result<u64> {
    let floats = cast(array, &DataType::Float64).map_err(|e| Error::MonitorColumnType {
        column: column.to_owned(),
        data_type: array.data_type().to_string(),
        expected: format!("numbers ({e})"),
    })?;
    let floats = floats.as_primitive::<Float64Type>();
    let mut missing = 0;
    for i in 0..floats.len() {
        let v = floats.value(i);
        if floats.is_null(i) || !v.is_finite() {
            missing += 1;
        } else {
            out.push(v);
        }
    }
    Ok(missing)
}

/// An array as text (`None` for nulls).
fn text_array(array: &ArrayRef, column: &str) -> Result<ArrayRef> {
    cast(array, &DataType::Utf8).map_err(|e| Error::MonitorColumnType {
        column: column.to_owned(),
        data_type: array.data_type().to_string(),
        expected: format!("text ({e})"),
    })
}

fn column_names(schema: &Schema) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

/// Profiles the table made of `batches` (one schema) by `config`.
pub fn build_profile(batches: &[RecordBatch], config: &ProfileConfig) -> Result<Profile> {
    let Some(first) = batches.first() else {
        return Err(Error::InvalidParameter("build_profile: no batches (the reference table is empty)".to_owned()));
    };
    let schema = first.schema();
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let mut columns = Vec::new();
    let mut skipped = Vec::new();
    let chosen: Vec<(String, bool)> = match &config.columns {
        Some(names) => names.iter().map(|n| (n.clone(), true)).collect(),
        None => schema.fields().iter().map(|f| (f.name().clone(), false)).collect(),
    };
    for (name, explicit) in chosen {
        let Ok(field) = schema.field_with_name(&name) else {
            return Err(Error::MonitorUnknownColumn {
                table: "reference".to_owned(),
                column: name,
                available: column_names(&schema),
            });
        };
        let data_type = field.data_type().clone();
        let kind = match kind_of(&name, &data_type, &config.categorical) {
            Ok(k) => k,
            Err(expected) if explicit => {
                return Err(Error::MonitorColumnType { column: name, data_type: data_type.to_string(), expected });
            }
            Err(reason) => {
                skipped.push(format!("{name} ({data_type}): {reason}"));
                continue;
            }
        };
        let arrays = batches.iter().filter_map(|b| b.column_by_name(&name));
        let profiled = match kind {
            Kind::Numeric => {
                let mut values = Vec::new();
                let mut missing = 0;
                for a in arrays {
                    missing += finite_values(a, &name, &mut values)?;
                }
                if values.is_empty() && !explicit {
                    skipped.push(format!("{name} ({data_type}): no finite values"));
                    continue;
                }
                let edges = drift::bin_edges(&values, &config.binning)?;
                let counts = drift::bin_counts(&values, &edges)?;
                ColumnProfile {
                    name: name.clone(),
                    data_type: data_type.to_string(),
                    missing,
                    histogram: Histogram::Numeric { edges, counts },
                }
            }
            Kind::Categorical => {
                let mut counts: BTreeMap<String, u64> = BTreeMap::new();
                let mut missing = 0;
                let mut too_many = false;
                for a in arrays {
                    let text = text_array(a, &name)?;
                    let text = text.as_string::<i32>();
                    for i in 0..text.len() {
                        if text.is_null(i) {
                            missing += 1;
                            continue;
                        }
                        let v = text.value(i);
                        if let Some(c) = counts.get_mut(v) {
                            *c += 1;
                        } else if counts.len() < config.max_categories {
                            counts.insert(v.to_owned(), 1);
                        } else {
                            too_many = true;
                            break;
                        }
                    }
                    if too_many {
                        break;
                    }
                }
                if too_many {
                    if explicit {
                        return Err(Error::MonitorTooManyCategories { column: name, limit: config.max_categories });
                    }
                    skipped.push(format!("{name} ({data_type}): more than {} categories", config.max_categories));
                    continue;
                }
                let (categories, counts) = counts.into_iter().unzip();
                ColumnProfile {
                    name: name.clone(),
                    data_type: data_type.to_string(),
                    missing,
                    histogram: Histogram::Categorical { categories, counts },
                }
            }
        };
        columns.push(profiled);
    }
    Ok(Profile { version: PROFILE_VERSION, rows, columns, skipped })
}

/// A Parquet file opened with its metadata parsed.
struct ParquetFile {
    file: File,
    metadata: ArrowReaderMetadata,
}

fn open_parquet(path: &Path) -> Result<ParquetFile> {
    let file = File::open(path).map_err(|source| Error::MonitorIo { path: path.to_owned(), source })?;
    let metadata = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
        .map_err(|e| Error::MonitorParquet { path: path.to_owned(), reason: e.to_string() })?;
    Ok(ParquetFile { file, metadata })
}

impl ParquetFile {
    /// Batches of row group `group` (all groups when `None`), only the `columns` given (schema
    /// indices), `batch_size` rows at a time.
    fn read(
        &self,
        path: &Path,
        group: Option<usize>,
        columns: &[usize],
        batch_size: usize,
    ) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
        let file = self.file.try_clone().map_err(|source| Error::MonitorIo { path: path.to_owned(), source })?;
        let mask =
            ProjectionMask::roots(self.metadata.metadata().file_metadata().schema_descr(), columns.iter().copied());
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
            .with_projection(mask)
            .with_batch_size(batch_size.max(1));
        if let Some(g) = group {
            builder = builder.with_row_groups(vec![g]);
        }
        let reader =
            builder.build().map_err(|e| Error::MonitorParquet { path: path.to_owned(), reason: e.to_string() })?;
        let path = path.to_owned();
        Ok(reader.map(move |b| b.map_err(|e| Error::MonitorParquet { path: path.clone(), reason: e.to_string() })))
    }

    fn index_of(&self, path: &Path, column: &str) -> Result<usize> {
        let schema = self.metadata.schema();
        schema.index_of(column).map_err(|_| Error::MonitorUnknownColumn {
            table: path.display().to_string(),
            column: column.to_owned(),
            available: column_names(schema),
        })
    }
}

/// Reads a whole Parquet file into memory (for validation, which looks at every row); a file with
/// no rows gives one empty batch with its schema. Errors name the file ([`Error::MonitorIo`],
/// [`Error::MonitorParquet`]).
pub fn read_parquet_table(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = open_parquet(path)?;
    let all: Vec<usize> = (0..file.metadata.schema().fields().len()).collect();
    let batches: Vec<RecordBatch> = file.read(path, None, &all, 65_536)?.collect::<Result<_>>()?;
    Ok(if batches.is_empty() { vec![RecordBatch::new_empty(file.metadata.schema().clone())] } else { batches })
}

/// Profiles a Parquet file (reading only the columns `config` names, when it names them).
pub fn profile_parquet(path: &Path, config: &ProfileConfig) -> Result<Profile> {
    let file = open_parquet(path)?;
    let indices: Vec<usize> = match &config.columns {
        Some(names) => names.iter().map(|n| file.index_of(path, n)).collect::<Result<_>>()?,
        None => (0..file.metadata.schema().fields().len()).collect(),
    };
    let mut batches: Vec<RecordBatch> = file.read(path, None, &indices, 65_536)?.collect::<Result<_>>()?;
    if batches.is_empty() {
        let schema = file
            .metadata
            .schema()
            .project(&indices)
            .map_err(|e| Error::MonitorParquet { path: path.to_owned(), reason: e.to_string() })?;
        batches.push(RecordBatch::new_empty(std::sync::Arc::new(schema)));
    }
    build_profile(&batches, config)
}

/// When drift is an alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// PSI from which a column warns.
    pub psi_warn: f64,
    /// PSI from which a column alerts.
    pub psi_alert: f64,
    /// A categorical column alerts when the chi-squared p-value is below this…
    pub chi2_p_value: f64,
    /// …and the Jensen–Shannon distance is above this.
    pub chi2_min_js: f64,
    /// Groups (days) with fewer non-missing values raise no alert (their statistics are noise).
    pub min_rows: u64,
    /// The smallest change of the missing fraction that alerts (absolute, e.g. 0.02 → 0.07)…
    #[serde(default = "default_missing_delta")]
    pub missing_delta: f64,
    /// …when the two-proportion z-test against the reference is also below this p-value.
    #[serde(default = "default_missing_p_value")]
    pub missing_p_value: f64,
}

fn default_missing_delta() -> f64 {
    0.05
}

fn default_missing_p_value() -> f64 {
    0.001
}

impl Default for Thresholds {
    /// PSI 0.1 / 0.25, chi-squared p < 0.001 with JS > 0.05, at least 100 values; a missing
    /// fraction 0.05 away from the reference's with p < 0.001.
    fn default() -> Self {
        Thresholds {
            psi_warn: 0.1,
            psi_alert: 0.25,
            chi2_p_value: 0.001,
            chi2_min_js: 0.05,
            min_rows: 100,
            missing_delta: default_missing_delta(),
            missing_p_value: default_missing_p_value(),
        }
    }
}

/// How [`drift_parquet`] reads and judges.
#[derive(Clone, Debug, PartialEq)]
pub struct DriftConfig {
    /// A `Date32`, `Date64` or `Timestamp` column: statistics per UTC day as well.
    pub date_column: Option<String>,
    /// Rows decoded at a time.
    pub batch_size: usize,
    /// PSI's empty-bin floor ([`drift::PsiConfig::epsilon`]).
    pub epsilon: f64,
    /// The alert rule.
    pub thresholds: Thresholds,
}

impl Default for DriftConfig {
    /// No date column, 8192-row batches, epsilon 1e-4, default thresholds.
    fn default() -> Self {
        DriftConfig { date_column: None, batch_size: 8192, epsilon: 1e-4, thresholds: Thresholds::default() }
    }
}

/// How bad an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Worth a look.
    Warn,
    /// Act on it.
    Alert,
}

/// A threshold crossed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The column.
    pub column: String,
    /// The day (days since 1970-01-01), `None` for the whole table.
    pub day: Option<i32>,
    /// The day as `YYYY-MM-DD`.
    pub date: Option<String>,
    /// `psi`, `chi_squared` or `missing_fraction`.
    pub statistic: String,
    /// The PSI, the chi-squared p-value, or the group's missing fraction.
    pub value: f64,
    /// Warn or alert.
    pub level: Level,
    /// The rule that fired, in words.
    pub detail: String,
}

/// Drift statistics of one column over one group (a day, or the whole table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnDrift {
    /// The column.
    pub column: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    /// The day (days since 1970-01-01), `None` for the whole table.
    pub day: Option<i32>,
    /// The day as `YYYY-MM-DD`.
    pub date: Option<String>,
    /// Rows in the group.
    pub rows: u64,
    /// Missing values (nulls; NaN/±∞ for numbers).
    pub missing: u64,
    /// `missing / rows`.
    pub missing_fraction: f64,
    /// The reference's missing fraction.
    pub reference_missing_fraction: f64,
    /// Current values per bin (or per reference category, then the unseen ones).
    pub counts: Vec<u64>,
    /// Categorical only: values the reference never saw.
    pub unseen: Option<u64>,
    /// Population stability index (`None` when the group has no values).
    pub psi: Option<f64>,
    /// Jensen–Shannon distance, base 2.
    pub js: Option<f64>,
    /// Numeric only: the KS statistic of the binned CDFs, a lower bound of the exact one.
    pub ks_binned: Option<f64>,
    /// Categorical only: Pearson's chi-squared statistic…
    pub chi_squared: Option<f64>,
    /// …and its p-value.
    pub chi_squared_p: Option<f64>,
}

/// Progress of [`drift_parquet`], reported after each row group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriftProgress {
    /// Row groups read.
    pub row_groups_done: usize,
    /// Row groups in the file.
    pub row_groups_total: usize,
    /// Rows read.
    pub rows_done: u64,
    /// Rows in the file.
    pub rows_total: u64,
}

/// Drift of a current table against a profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Rows read.
    pub rows: u64,
    /// Rows whose date was null (in `overall` only).
    pub rows_without_date: u64,
    /// Row groups read (0 when batches came from elsewhere).
    pub row_groups: usize,
    /// The date column, if any.
    pub date_column: Option<String>,
    /// The rule applied.
    pub thresholds: Thresholds,
    /// One entry per profiled column over the whole table.
    pub overall: Vec<ColumnDrift>,
    /// One entry per column and day (with a date column), by column then day.
    pub days: Vec<ColumnDrift>,
    /// Thresholds crossed, by column then day.
    pub alerts: Vec<Alert>,
}

impl DriftReport {
    /// The report as Markdown: alerts first, then a table of every group's statistics.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## Drift\n\n{} rows, {} alerts\n", self.rows, self.alerts.len());
        for a in &self.alerts {
            let when = a.date.as_deref().unwrap_or("whole table");
            let _ = writeln!(
                out,
                "- **{:?}** {} on {when}: {} = {:.6} ({})",
                a.level, a.column, a.statistic, a.value, a.detail
            );
        }
        out.push_str("\n| column | day | rows | missing | PSI | JS | KS (binned) | chi² p |\n|---|---|---|---|---|---|---|---|\n");
        let fmt = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".to_owned());
        for d in self.overall.iter().chain(&self.days) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                d.column,
                d.date.as_deref().unwrap_or("all"),
                d.rows,
                d.missing,
                fmt(d.psi),
                fmt(d.js),
                fmt(d.ks_binned),
                d.chi_squared_p.map(|p| format!("{p:.3e}")).unwrap_or_else(|| "–".to_owned())
            );
        }
        out
    }
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01; Hinnant's `civil_from_days`).
pub fn date_string(day: i32) -> String {
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The UTC day of each row of a date or timestamp column.
fn days_of(array: &ArrayRef, column: &str) -> Result<Vec<Option<i32>>> {
    const DAY_MICROS: i64 = 86_400_000_000;
    let day = |micros: i64| i32::try_from(micros.div_euclid(DAY_MICROS)).ok();
    let n = array.len();
    let valid = |i: usize| array.is_valid(i);
    Ok(match array.data_type() {
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            (0..n).map(|i| valid(i).then(|| a.value(i))).collect()
        }
        DataType::Date64 => {
            let a = array.as_primitive::<Date64Type>();
            (0..n).map(|i| if valid(i) { day(a.value(i).saturating_mul(1000)) } else { None }).collect()
        }
        DataType::Timestamp(unit, _) => {
            let raw: Vec<Option<i64>> = match unit {
                TimeUnit::Second => {
                    let a = array.as_primitive::<TimestampSecondType>();
                    (0..n).map(|i| valid(i).then(|| a.value(i).saturating_mul(1_000_000))).collect()
                }
                TimeUnit::Millisecond => {
                    let a = array.as_primitive::<TimestampMillisecondType>();
                    (0..n).map(|i| valid(i).then(|| a.value(i).saturating_mul(1_000))).collect()
                }
                TimeUnit::Microsecond => {
                    let a = array.as_primitive::<TimestampMicrosecondType>();
                    (0..n).map(|i| valid(i).then(|| a.value(i))).collect()
                }
                TimeUnit::Nanosecond => {
                    let a = array.as_primitive::<TimestampNanosecondType>();
                    (0..n).map(|i| valid(i).then(|| a.value(i).div_euclid(1_000))).collect()
                }
            };
            raw.into_iter().map(|m| m.and_then(day)).collect()
        }
        other => {
            return Err(Error::MonitorColumnType {
                column: column.to_owned(),
                data_type: other.to_string(),
                expected: "a date column must be Date32, Date64 or Timestamp".to_owned(),
            });
        }
    })
}

/// One group's histogram.
#[derive(Clone, Debug, Default)]
struct Hist {
    counts: Vec<u64>,
    missing: u64,
}

impl Hist {
    fn add(&mut self, other: &Hist) {
        if self.counts.is_empty() {
            self.counts = vec![0; other.counts.len()];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.missing += other.missing;
    }
}

/// Streaming state of one profiled column.
struct ColumnState {
    /// Reference categories → slot (the unseen slot is `categories.len()`); empty for numbers.
    lookup: HashMap<String, usize>,
    groups: BTreeMap<Option<i32>, Hist>,
}

/// Histograms of a current table, fed batch by batch ([`DriftAccumulator::update`]), judged by
/// [`DriftAccumulator::finish`]. Memory: columns × bins × days.
pub struct DriftAccumulator<'p> {
    profile: &'p Profile,
    config: DriftConfig,
    columns: Vec<ColumnState>,
    rows: u64,
    rows_without_date: u64,
    row_groups: usize,
}

impl<'p> DriftAccumulator<'p> {
    /// An empty accumulator for `profile`.
    pub fn new(profile: &'p Profile, config: &DriftConfig) -> Result<DriftAccumulator<'p>> {
        let t = &config.thresholds;
        if !(config.epsilon > 0.0 && config.epsilon < 1.0) {
            return Err(Error::InvalidParameter(format!("drift epsilon {} is not in (0, 1)", config.epsilon)));
        }
        if !(t.psi_warn >= 0.0 && t.psi_warn <= t.psi_alert) {
            return Err(Error::InvalidParameter(format!(
                "drift thresholds: psi_warn {} must be >= 0 and <= psi_alert {}",
                t.psi_warn, t.psi_alert
            )));
        }
        if !((0.0..=1.0).contains(&t.missing_delta) && t.missing_p_value > 0.0 && t.missing_p_value <= 1.0) {
            return Err(Error::InvalidParameter(format!(
                "drift thresholds: missing_delta {} must be in [0, 1] and missing_p_value {} in (0, 1]",
                t.missing_delta, t.missing_p_value
            )));
        }
        let columns = profile
            .columns
            .iter()
            .map(|c| ColumnState {
                lookup: match &c.histogram {
                    Histogram::Categorical { categories, .. } => {
                        categories.iter().enumerate().map(|(i, s)| (s.clone(), i)).collect()
                    }
                    Histogram::Numeric { .. } => HashMap::new(),
                },
                groups: BTreeMap::new(),
            })
            .collect();
        Ok(DriftAccumulator { profile, config: config.clone(), columns, rows: 0, rows_without_date: 0, row_groups: 0 })
    }

    /// Adds a batch holding every profiled column (and the date column, if configured).
    pub fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        let schema = batch.schema();
        let missing_column = |column: &str| Error::MonitorUnknownColumn {
            table: "current batch".to_owned(),
            column: column.to_owned(),
            available: column_names(&schema),
        };
        let days: Option<Vec<Option<i32>>> = match &self.config.date_column {
            Some(d) => Some(days_of(batch.column_by_name(d).ok_or_else(|| missing_column(d))?, d)?),
            None => None,
        };
        let day_of = |i: usize| days.as_ref().and_then(|d| d[i]);
        self.rows += batch.num_rows() as u64;
        if let Some(d) = &days {
            self.rows_without_date += d.iter().filter(|d| d.is_none()).count() as u64;
        }
        for (profile, state) in self.profile.columns.iter().zip(&mut self.columns) {
            let array = batch.column_by_name(&profile.name).ok_or_else(|| missing_column(&profile.name))?;
            let mut batch_groups: BTreeMap<Option<i32>, (Vec<f64>, Hist)> = BTreeMap::new();
            match &profile.histogram {
                Histogram::Numeric { edges, .. } => {
                    let floats = cast(array, &DataType::Float64).map_err(|e| Error::MonitorColumnType {
                        column: profile.name.clone(),
                        data_type: array.data_type().to_string(),
                        expected: format!("numbers, as in the reference ({}): {e}", profile.data_type),
                    })?;
                    let floats = floats.as_primitive::<Float64Type>();
                    for i in 0..floats.len() {
                        let group = batch_groups.entry(day_of(i)).or_default();
                        let v = floats.value(i);
                        if floats.is_null(i) || !v.is_finite() {
                            group.1.missing += 1;
                        } else {
                            group.0.push(v);
                        }
                    }
                    for (values, hist) in batch_groups.values_mut() {
                        hist.counts = drift::bin_counts(values, edges)?;
                    }
                }
                Histogram::Categorical { categories, .. } => {
                    let text = text_array(array, &profile.name)?;
                    let text = text.as_string::<i32>();
                    for i in 0..text.len() {
                        let group = batch_groups.entry(day_of(i)).or_default();
                        if group.1.counts.is_empty() {
                            group.1.counts = vec![0; categories.len() + 1];
                        }
                        if text.is_null(i) {
                            group.1.missing += 1;
                        } else {
                            let slot = state.lookup.get(text.value(i)).copied().unwrap_or(categories.len());
                            group.1.counts[slot] += 1;
                        }
                    }
                }
            }
            for (day, (_, hist)) in batch_groups {
                state.groups.entry(day).or_default().add(&hist);
            }
        }
        Ok(())
    }

    /// The statistics and alerts.
    pub fn finish(self) -> Result<DriftReport> {
        let (mut overall, mut days, mut alerts) = (Vec::new(), Vec::new(), Vec::new());
        let by_day = self.config.date_column.is_some();
        for (profile, state) in self.profile.columns.iter().zip(&self.columns) {
            let mut total = Hist::default();
            for h in state.groups.values() {
                total.add(h);
            }
            if total.counts.is_empty() {
                total.counts = vec![0; reference_counts(profile).len()];
            }
            let whole = self.statistics(profile, None, &total)?;
            if !by_day {
                alerts.extend(self.judge(&whole));
            }
            overall.push(whole);
            if by_day {
                for (day, hist) in state.groups.iter().filter_map(|(d, h)| d.map(|d| (d, h))) {
                    let stats = self.statistics(profile, Some(day), hist)?;
                    alerts.extend(self.judge(&stats));
                    days.push(stats);
                }
            }
        }
        Ok(DriftReport {
            rows: self.rows,
            rows_without_date: self.rows_without_date,
            row_groups: self.row_groups,
            date_column: self.config.date_column.clone(),
            thresholds: self.config.thresholds.clone(),
            overall,
            days,
            alerts,
        })
    }

    fn statistics(&self, profile: &ColumnProfile, day: Option<i32>, hist: &Hist) -> Result<ColumnDrift> {
        let reference = reference_counts(profile);
        let current = &hist.counts;
        let present: u64 = current.iter().sum();
        let rows = present + hist.missing;
        let categorical = matches!(profile.histogram, Histogram::Categorical { .. });
        let reference_present: u64 = reference.iter().sum();
        let mut stats = ColumnDrift {
            column: profile.name.clone(),
            kind: if categorical { "categorical" } else { "numeric" }.to_owned(),
            day,
            date: day.map(date_string),
            rows,
            missing: hist.missing,
            missing_fraction: if rows == 0 { 0.0 } else { hist.missing as f64 / rows as f64 },
            reference_missing_fraction: {
                let r = reference_present + profile.missing;
                if r == 0 { 0.0 } else { profile.missing as f64 / r as f64 }
            },
            counts: current.clone(),
            unseen: categorical.then(|| current.last().copied().unwrap_or(0)),
            psi: None,
            js: None,
            ks_binned: None,
            chi_squared: None,
            chi_squared_p: None,
        };
        if present == 0 || reference_present == 0 {
            return Ok(stats);
        }
        stats.psi = Some(drift::psi_from_counts(&reference, current, self.config.epsilon)?);
        let (p, q): (Vec<f64>, Vec<f64>) = reference.iter().zip(current).map(|(&r, &c)| (r as f64, c as f64)).unzip();
        stats.js = Some(drift::jensen_shannon(&p, &q)?);
        if categorical {
            let used = reference.iter().zip(current).filter(|(r, c)| **r + **c > 0).count();
            if used >= 2 {
                let chi = drift::chi_squared(&reference, current)?;
                stats.chi_squared = Some(chi.statistic);
                stats.chi_squared_p = Some(chi.p_value);
            }
        } else {
            let (mut cr, mut cc, mut ks) = (0u64, 0u64, 0.0f64);
            for (r, c) in reference.iter().zip(current) {
                cr += r;
                cc += c;
                ks = ks.max((cr as f64 / reference_present as f64 - cc as f64 / present as f64).abs());
            }
            stats.ks_binned = Some(ks);
        }
        Ok(stats)
    }

    fn judge(&self, d: &ColumnDrift) -> Vec<Alert> {
        let t = &self.config.thresholds;
        let mut alerts = Vec::new();
        let alert = |statistic: &str, value: f64, level: Level, detail: String| Alert {
            column: d.column.clone(),
            day: d.day,
            date: d.date.clone(),
            statistic: statistic.to_owned(),
            value,
            level,
            detail,
        };
        let delta = (d.missing_fraction - d.reference_missing_fraction).abs();
        if d.rows >= t.min_rows && delta >= t.missing_delta {
            let p = two_proportion_p_value(d.reference_missing_fraction, self.profile.rows, d.missing_fraction, d.rows);
            if p < t.missing_p_value {
                alerts.push(alert(
                    "missing_fraction",
                    d.missing_fraction,
                    Level::Alert,
                    format!(
                        "missing fraction {:.4} vs {:.4} in the reference (change >= {}, z-test p {p:.2e} < {})",
                        d.missing_fraction, d.reference_missing_fraction, t.missing_delta, t.missing_p_value
                    ),
                ));
            }
        }
        if d.rows - d.missing < t.min_rows {
            return alerts;
        }
        if let Some(psi) = d.psi {
            if psi >= t.psi_alert {
                alerts.push(alert("psi", psi, Level::Alert, format!("PSI >= {}", t.psi_alert)));
            } else if psi >= t.psi_warn {
                alerts.push(alert("psi", psi, Level::Warn, format!("PSI >= {}", t.psi_warn)));
            }
        }
        if let (Some(p), Some(js)) = (d.chi_squared_p, d.js)
            && p < t.chi2_p_value
            && js > t.chi2_min_js
        {
            alerts.push(alert(
                "chi_squared",
                p,
                Level::Alert,
                format!("p < {} and Jensen-Shannon distance {js:.4} > {}", t.chi2_p_value, t.chi2_min_js),
            ));
        }
        alerts
    }
}

/// The two-sided p-value of the two-proportion z-test of fractions `p0` of `n0` and `p1` of `n1`
/// (pooled variance; `z²` is chi-squared with one degree of freedom). 1 when the pooled fraction is
/// 0 or 1 (no variance: the fractions are equal).
fn two_proportion_p_value(p0: f64, n0: u64, p1: f64, n1: u64) -> f64 {
    let (n0, n1) = (n0 as f64, n1 as f64);
    if n0 == 0.0 || n1 == 0.0 {
        return 1.0;
    }
    let pooled = (p0 * n0 + p1 * n1) / (n0 + n1);
    let var = pooled * (1.0 - pooled) * (1.0 / n0 + 1.0 / n1);
    if var <= 0.0 {
        return 1.0;
    }
    let z = (p1 - p0) / var.sqrt();
    super::special::chi2_sf(z * z, 1.0)
}

/// The reference's counts, with the unseen slot (0) after a categorical column's categories.
fn reference_counts(profile: &ColumnProfile) -> Vec<u64> {
    match &profile.histogram {
        Histogram::Numeric { counts, .. } => counts.clone(),
        Histogram::Categorical { counts, .. } => counts.iter().copied().chain([0]).collect(),
    }
}

/// Streams the Parquet file at `path` row group by row group against `profile`; `progress` is
/// called after each row group. Errors name the file: missing ([`Error::MonitorIo`]), not Parquet
/// or corrupt ([`Error::MonitorParquet`]), a profiled or date column it lacks
/// ([`Error::MonitorUnknownColumn`]).
pub fn drift_parquet(
    path: &Path,
    profile: &Profile,
    config: &DriftConfig,
    progress: &mut dyn FnMut(&DriftProgress),
) -> Result<DriftReport> {
    let mut acc = DriftAccumulator::new(profile, config)?;
    let file = open_parquet(path)?;
    let mut indices: Vec<usize> =
        profile.columns.iter().map(|c| file.index_of(path, &c.name)).collect::<Result<_>>()?;
    if let Some(d) = &config.date_column {
        indices.push(file.index_of(path, d)?);
    }
    indices.sort_unstable();
    indices.dedup();
    let metadata = file.metadata.metadata().clone();
    let mut p = DriftProgress {
        row_groups_done: 0,
        row_groups_total: metadata.num_row_groups(),
        rows_done: 0,
        rows_total: metadata.row_groups().iter().map(|g| g.num_rows().max(0) as u64).sum(),
    };
    progress(&p);
    for group in 0..metadata.num_row_groups() {
        for batch in file.read(path, Some(group), &indices, config.batch_size)? {
            let batch = batch?;
            p.rows_done += batch.num_rows() as u64;
            acc.update(&batch).map_err(|e| match e {
                Error::MonitorUnknownColumn { column, available, .. } => {
                    Error::MonitorUnknownColumn { table: path.display().to_string(), column, available }
                }
                e => e,
            })?;
        }
        acc.row_groups += 1;
        p.row_groups_done += 1;
        progress(&p);
    }
    acc.finish()
}
