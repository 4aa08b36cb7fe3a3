//! Expectations on Arrow tables and the validation report: is this table what the pipeline promised?
//!
//! The vocabulary follows Great Expectations (`expect_column_values_to_not_be_null`,
//! `…_to_be_between`, `…_to_be_in_set`, `…_to_be_unique`, `expect_table_row_count_to_be_between`,
//! `expect_table_columns_to_match_set`) and the "unit tests for data" of Deequ (Schelter et al.,
//! VLDB 2018). A [`Suite`] is plain serde data (JSON here; the `sovereign monitor validate`
//! command also reads TOML), [`validate`] evaluates every expectation and never stops at the first
//! failure: a column the suite names but the table lacks, or one whose type an expectation cannot
//! apply to, is a failed expectation with that reason, not an error of the whole call.
//!
//! Counting rules (the ones Great Expectations uses):
//! - `not_null` counts nulls over every row; `between` and `allowed_values` ignore nulls and
//!   count unexpected values over the non-null ones (a NaN is never between anything).
//! - `unique` ignores rows with a null in any key column (SQL's `UNIQUE`) and counts every row of
//!   a duplicated key, its first occurrence included.
//! - `between` compares numbers as `f64` (integers beyond 2^53 lose precision).
//! - `freshness` takes `now` from [`ValidateConfig::now_micros`]: the library never reads the clock.
//!
//! Row indices in the samples count from 0 over the concatenation of the batches.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float64Type, SchemaRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow::row::{RowConverter, SortField};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A named list of expectations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// The suite's name (shown in the report).
    #[serde(default)]
    pub name: String,
    /// The expectations, evaluated in order.
    pub expectations: Vec<Expectation>,
}

impl Suite {
    /// Parses a suite from JSON; a malformed suite (an unknown key included) is
    /// [`Error::MonitorSuite`] with serde's message (line and column).
    pub fn from_json(text: &str) -> Result<Suite> {
        serde_json::from_str(text).map_err(|e| Error::MonitorSuite { reason: e.to_string() })
    }
}

/// A column the schema expectation requires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// The column's name.
    pub name: String,
    /// Its Arrow type as Arrow prints it (`Float64`, `Utf8`, `Timestamp(µs, "UTC")`,
    /// `Dictionary(Int32, Utf8)`, …; parsed with `DataType::from_str`); absent: any type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
}

/// One value of an `allowed_values` set: text, or an integer (for integer columns).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AllowedValue {
    /// An integer, compared with the column's value printed in decimal.
    Integer(i64),
    /// A string (`true`/`false` for boolean columns).
    Text(String),
}

impl AllowedValue {
    fn text(&self) -> String {
        match self {
            AllowedValue::Integer(i) => i.to_string(),
            AllowedValue::Text(s) => s.clone(),
        }
    }
}

fn yes() -> bool {
    true
}

/// One expectation (`"type"` names it in JSON/TOML, in snake case).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Expectation {
    /// The table has these columns (with these types, when given); extra columns fail unless
    /// `allow_extra`.
    Schema {
        /// The required columns.
        columns: Vec<ColumnSpec>,
        /// Whether columns the list does not name are allowed.
        #[serde(default)]
        allow_extra: bool,
    },
    /// At most `max_null_fraction` of the column's rows are null (0 by default: none).
    NotNull {
        /// The column.
        column: String,
        /// The largest share of nulls that passes, in `[0, 1]`.
        #[serde(default)]
        max_null_fraction: f64,
    },
    /// Every non-null value of a numeric column is within `[min, max]` (each bound optional,
    /// inclusive unless its flag says otherwise).
    Between {
        /// The column (any integer, float or decimal type).
        column: String,
        /// Lower bound.
        #[serde(default)]
        min: Option<f64>,
        /// Upper bound.
        #[serde(default)]
        max: Option<f64>,
        /// Whether `min` itself passes.
        #[serde(default = "yes")]
        min_inclusive: bool,
        /// Whether `max` itself passes.
        #[serde(default = "yes")]
        max_inclusive: bool,
    },
    /// Every non-null value is one of `values` (string, dictionary-of-string, integer and boolean
    /// columns; values compared as text).
    AllowedValues {
        /// The column.
        column: String,
        /// The allowed values.
        values: Vec<AllowedValue>,
    },
    /// No two rows share a value of `columns` (one column, or a compound key).
    Unique {
        /// The key's columns.
        columns: Vec<String>,
    },
    /// The number of rows is within `[min, max]` (each optional, inclusive).
    RowCount {
        /// Fewest rows.
        #[serde(default)]
        min: Option<u64>,
        /// Most rows.
        #[serde(default)]
        max: Option<u64>,
    },
    /// The newest value of a timestamp or date column is at most `max_age_seconds` older than
    /// [`ValidateConfig::now_micros`].
    Freshness {
        /// The column (`Timestamp` of any unit, `Date32`, `Date64`).
        column: String,
        /// The largest age that passes, in seconds.
        max_age_seconds: f64,
    },
}

/// How [`validate`] reports.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidateConfig {
    /// Bad rows shown per expectation (row index and value as text).
    pub sample_rows: usize,
    /// "Now" for freshness, in microseconds since the Unix epoch (UTC); `None` fails every
    /// freshness expectation with that reason.
    pub now_micros: Option<i64>,
}

impl Default for ValidateConfig {
    /// Five sample rows, no `now`.
    fn default() -> Self {
        ValidateConfig { sample_rows: 5, now_micros: None }
    }
}

/// A row that broke an expectation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BadRow {
    /// Its index, from 0 over all batches.
    pub row: u64,
    /// Its value as text (`null` for a null; key columns joined by `, `).
    pub value: String,
}

/// The outcome of one expectation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExpectationResult {
    /// Its position in the suite.
    pub index: usize,
    /// Its type (`not_null`, `between`, …).
    pub kind: String,
    /// What it asks, in words.
    pub description: String,
    /// The columns it names.
    pub columns: Vec<String>,
    /// Whether it held.
    pub passed: bool,
    /// What was observed (the null fraction, the range seen, the row count, the newest value…).
    pub observed: Option<String>,
    /// Values examined (rows, or non-null values for `between` and `allowed_values`).
    pub element_count: u64,
    /// Values that broke it.
    pub unexpected_count: u64,
    /// `unexpected_count / element_count` (0 when nothing was examined).
    pub unexpected_fraction: f64,
    /// Up to [`ValidateConfig::sample_rows`] bad rows, in row order.
    pub sample: Vec<BadRow>,
    /// The columns at fault (missing, wrong type, or holding the bad values).
    pub failing_columns: Vec<String>,
    /// Why it failed without looking at values (a missing column, a type it cannot apply to, an
    /// invalid expectation), or the schema differences.
    pub reason: Option<String>,
}

/// Every expectation's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// The suite's name.
    pub suite: String,
    /// Rows in the table.
    pub rows: u64,
    /// Whether every expectation held.
    pub passed: bool,
    /// How many failed.
    pub failed: usize,
    /// The columns at fault in any failed expectation, sorted.
    pub failing_columns: Vec<String>,
    /// One result per expectation, in the suite's order.
    pub results: Vec<ExpectationResult>,
}

impl ValidationReport {
    /// The report as a Markdown section: a summary line and one table row per expectation.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let name = if self.suite.is_empty() { "suite" } else { &self.suite };
        let _ = writeln!(
            out,
            "## Validation: {name}\n\n{} rows, {} of {} expectations passed{}\n",
            self.rows,
            self.results.len() - self.failed,
            self.results.len(),
            if self.failing_columns.is_empty() {
                String::new()
            } else {
                format!("; failing columns: {}", self.failing_columns.join(", "))
            }
        );
        out.push_str("| # | expectation | result | observed | unexpected | sample |\n|---|---|---|---|---|---|\n");
        for r in &self.results {
            let sample: Vec<String> = r.sample.iter().map(|b| format!("row {}: {}", b.row, b.value)).collect();
            let mut observed = r.observed.clone().unwrap_or_default();
            if let Some(reason) = &r.reason {
                if !observed.is_empty() {
                    observed.push_str("; ");
                }
                observed.push_str(reason);
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} ({:.4}) | {} |",
                r.index,
                md_escape(&r.description),
                if r.passed { "pass" } else { "**FAIL**" },
                md_escape(&observed),
                r.unexpected_count,
                r.unexpected_fraction,
                md_escape(&sample.join("; "))
            );
        }
        out
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Evaluates every expectation of `suite` on the table made of `batches` (all with one schema;
/// an empty slice is a table without columns or rows). Errors only when the batches disagree on
/// their schema ([`Error::MonitorSchemaMismatch`]).
pub fn validate(batches: &[RecordBatch], suite: &Suite, config: &ValidateConfig) -> Result<ValidationReport> {
    let schema = batches.first().map(|b| b.schema());
    // Names and types must agree; nullability may differ (a batch without nulls is often built
    // with non-nullable fields).
    let shape = |s: &SchemaRef| -> Vec<(String, DataType)> {
        s.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect()
    };
    let first = schema.as_ref().map(shape).unwrap_or_default();
    for (i, b) in batches.iter().enumerate().skip(1) {
        if shape(&b.schema()) != first {
            return Err(Error::MonitorSchemaMismatch {
                batch: i,
                reason: format!("its schema {:?} differs from the first batch's", column_list(&b.schema())),
            });
        }
    }
    let table = Table { batches, schema, rows: batches.iter().map(|b| b.num_rows() as u64).sum() };
    let results: Vec<ExpectationResult> =
        suite.expectations.iter().enumerate().map(|(i, e)| evaluate(&table, i, e, config)).collect();
    let failed = results.iter().filter(|r| !r.passed).count();
    let failing_columns: BTreeSet<String> =
        results.iter().filter(|r| !r.passed).flat_map(|r| r.failing_columns.iter().cloned()).collect();
    Ok(ValidationReport {
        suite: suite.name.clone(),
        rows: table.rows,
        passed: failed == 0,
        failed,
        failing_columns: failing_columns.into_iter().collect(),
        results,
    })
}

fn column_list(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect()
}

struct Table<'a> {
    batches: &'a [RecordBatch],
    schema: Option<SchemaRef>,
    rows: u64,
}

impl Table<'_> {
    /// The column's type, or why it cannot be used.
    fn data_type(&self, column: &str) -> std::result::Result<DataType, String> {
        let available = self.schema.as_ref().map(column_list).unwrap_or_default();
        match self.schema.as_ref().and_then(|s| s.field_with_name(column).ok()) {
            Some(f) => Ok(f.data_type().clone()),
            None => Err(format!("no column {column:?} in the table (columns: {})", available.join(", "))),
        }
    }

    /// The column's arrays, one per batch, with the row offset of each.
    fn arrays<'s>(&'s self, column: &'s str) -> impl Iterator<Item = (u64, &'s ArrayRef)> + 's {
        let mut offset = 0u64;
        self.batches.iter().filter_map(move |b| {
            let start = offset;
            offset += b.num_rows() as u64;
            b.column_by_name(column).map(|a| (start, a))
        })
    }
}

/// A result being filled in.
struct Outcome {
    result: ExpectationResult,
    sample_rows: usize,
}

impl Outcome {
    fn new(index: usize, kind: &str, description: String, columns: Vec<String>, sample_rows: usize) -> Outcome {
        Outcome {
            result: ExpectationResult {
                index,
                kind: kind.to_owned(),
                description,
                columns,
                passed: true,
                observed: None,
                element_count: 0,
                unexpected_count: 0,
                unexpected_fraction: 0.0,
                sample: Vec::new(),
                failing_columns: Vec::new(),
                reason: None,
            },
            sample_rows,
        }
    }

    /// Fails without looking at values.
    fn refuse(mut self, reason: String, failing: Vec<String>) -> ExpectationResult {
        self.result.passed = false;
        self.result.reason = Some(reason);
        self.result.failing_columns = failing;
        self.result.failing_columns.sort();
        self.result.failing_columns.dedup();
        self.result
    }

    fn bad(&mut self, row: u64, value: impl FnOnce() -> String) {
        self.result.unexpected_count += 1;
        if self.result.sample.len() < self.sample_rows {
            self.result.sample.push(BadRow { row, value: value() });
        }
    }

    /// Finishes with `passed` decided by the caller (or by "no unexpected values" when `None`).
    fn finish(mut self, passed: Option<bool>, observed: Option<String>, failing: &[String]) -> ExpectationResult {
        let r = &mut self.result;
        r.unexpected_fraction =
            if r.element_count == 0 { 0.0 } else { r.unexpected_count as f64 / r.element_count as f64 };
        r.passed = passed.unwrap_or(r.unexpected_count == 0);
        r.observed = observed;
        if !r.passed {
            r.failing_columns = failing.to_vec();
            r.failing_columns.sort();
            r.failing_columns.dedup();
        }
        self.result
    }
}

fn evaluate(table: &Table, index: usize, e: &Expectation, config: &ValidateConfig) -> ExpectationResult {
    let n = config.sample_rows;
    match e {
        Expectation::Schema { columns, allow_extra } => schema(table, index, columns, *allow_extra, n),
        Expectation::NotNull { column, max_null_fraction } => not_null(table, index, column, *max_null_fraction, n),
        Expectation::Between { column, min, max, min_inclusive, max_inclusive } => {
            between(table, index, column, (*min, *min_inclusive), (*max, *max_inclusive), n)
        }
        Expectation::AllowedValues { column, values } => allowed(table, index, column, values, n),
        Expectation::Unique { columns } => unique(table, index, columns, n),
        Expectation::RowCount { min, max } => row_count(table, index, *min, *max, n),
        Expectation::Freshness { column, max_age_seconds } => {
            freshness(table, index, column, *max_age_seconds, config.now_micros, n)
        }
    }
}

fn schema(table: &Table, index: usize, columns: &[ColumnSpec], allow_extra: bool, n: usize) -> ExpectationResult {
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let description = format!(
        "columns {}{}",
        columns
            .iter()
            .map(|c| match &c.data_type {
                Some(t) => format!("{}: {t}", c.name),
                None => c.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        if allow_extra { " (others allowed)" } else { " and no others" }
    );
    let mut out = Outcome::new(index, "schema", description, names.clone(), n);
    let actual: Vec<(String, DataType)> = table
        .schema
        .as_ref()
        .map(|s| s.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect())
        .unwrap_or_default();
    let mut problems = Vec::new();
    let mut failing = Vec::new();
    for spec in columns {
        let Some((_, actual_type)) = actual.iter().find(|(name, _)| *name == spec.name) else {
            problems.push(format!("missing column {:?}", spec.name));
            failing.push(spec.name.clone());
            continue;
        };
        if let Some(wanted) = &spec.data_type {
            match DataType::from_str(wanted) {
                Ok(t) if t == *actual_type => {}
                Ok(_) => {
                    problems.push(format!("{:?} is {actual_type}, expected {wanted}", spec.name));
                    failing.push(spec.name.clone());
                }
                Err(e) => {
                    problems.push(format!("{:?}: {wanted:?} is not an Arrow type ({e})", spec.name));
                    failing.push(spec.name.clone());
                }
            }
        }
    }
    if !allow_extra {
        let wanted: HashSet<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        for (name, _) in actual.iter().filter(|(name, _)| !wanted.contains(name.as_str())) {
            problems.push(format!("unexpected column {name:?}"));
            failing.push(name.clone());
        }
    }
    out.result.element_count = columns.len().max(actual.len()) as u64;
    out.result.unexpected_count = failing.len() as u64;
    let observed = actual.iter().map(|(name, t)| format!("{name}: {t}")).collect::<Vec<_>>().join(", ");
    if !problems.is_empty() {
        out.result.reason = Some(problems.join("; "));
    }
    out.finish(None, Some(observed), &failing)
}

fn not_null(table: &Table, index: usize, column: &str, max_fraction: f64, n: usize) -> ExpectationResult {
    let description = if max_fraction == 0.0 {
        format!("{column} has no nulls")
    } else {
        format!("{column} has at most {max_fraction} nulls (fraction)")
    };
    let out = Outcome::new(index, "not_null", description, vec![column.to_owned()], n);
    if !(0.0..=1.0).contains(&max_fraction) {
        return out.refuse(format!("invalid expectation: max_null_fraction {max_fraction} is not in [0, 1]"), vec![]);
    }
    if let Err(reason) = table.data_type(column) {
        return out.refuse(reason, vec![column.to_owned()]);
    }
    let mut out = out;
    for (start, array) in table.arrays(column) {
        if array.null_count() == 0 && !matches!(array.data_type(), DataType::Null) {
            continue;
        }
        for i in 0..array.len() {
            if array.is_null(i) || matches!(array.data_type(), DataType::Null) {
                out.bad(start + i as u64, || "null".to_owned());
            }
        }
    }
    out.result.element_count = table.rows;
    let fraction = if table.rows == 0 { 0.0 } else { out.result.unexpected_count as f64 / table.rows as f64 };
    let observed = format!("{} nulls in {} rows ({fraction:.6})", out.result.unexpected_count, table.rows);
    out.finish(Some(fraction <= max_fraction), Some(observed), &[column.to_owned()])
}

/// Text of row `i` of `array` (`null` for a null).
fn render(array: &dyn Array, i: usize) -> String {
    let options = FormatOptions::default().with_null("null");
    match ArrayFormatter::try_new(array, &options) {
        Ok(f) => f.value(i).to_string(),
        Err(_) => format!("<{}>", array.data_type()),
    }
}

fn between(
    table: &Table,
    index: usize,
    column: &str,
    (min, min_inclusive): (Option<f64>, bool),
    (max, max_inclusive): (Option<f64>, bool),
    n: usize,
) -> ExpectationResult {
    let lo = min.map(|m| format!("{}{m}", if min_inclusive { ">= " } else { "> " }));
    let hi = max.map(|m| format!("{}{m}", if max_inclusive { "<= " } else { "< " }));
    let description = format!("{column} {}", [lo, hi].into_iter().flatten().collect::<Vec<_>>().join(" and "));
    let out = Outcome::new(index, "between", description, vec![column.to_owned()], n);
    if min.is_none() && max.is_none() {
        return out.refuse("invalid expectation: between needs min, max or both".to_owned(), vec![]);
    }
    if min.is_some_and(f64::is_nan) || max.is_some_and(f64::is_nan) {
        return out.refuse("invalid expectation: a bound is NaN".to_owned(), vec![]);
    }
    let data_type = match table.data_type(column) {
        Ok(t) => t,
        Err(reason) => return out.refuse(reason, vec![column.to_owned()]),
    };
    if !data_type.is_numeric() {
        return out.refuse(
            format!("{column} is {data_type}: between applies to integer, float and decimal columns"),
            vec![column.to_owned()],
        );
    }
    let mut out = out;
    let ok = |v: f64| {
        let above = match min {
            Some(m) if min_inclusive => v >= m,
            Some(m) => v > m,
            None => !v.is_nan(),
        };
        let below = match max {
            Some(m) if max_inclusive => v <= m,
            Some(m) => v < m,
            None => !v.is_nan(),
        };
        above && below
    };
    let (mut seen_min, mut seen_max) = (f64::INFINITY, f64::NEG_INFINITY);
    for (start, array) in table.arrays(column) {
        let floats = match cast(array, &DataType::Float64) {
            Ok(a) => a,
            Err(e) => return out.refuse(format!("{column}: cannot read as numbers ({e})"), vec![column.to_owned()]),
        };
        let floats = floats.as_primitive::<Float64Type>();
        for i in 0..floats.len() {
            if floats.is_null(i) {
                continue;
            }
            let v = floats.value(i);
            out.result.element_count += 1;
            seen_min = seen_min.min(v);
            seen_max = seen_max.max(v);
            if !ok(v) {
                out.bad(start + i as u64, || render(array.as_ref(), i));
            }
        }
    }
    let observed = (out.result.element_count > 0).then(|| format!("min {seen_min}, max {seen_max}"));
    out.finish(None, observed, &[column.to_owned()])
}

/// Whether `allowed_values` can read `t` (as text).
fn textual(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => true,
        DataType::Dictionary(_, value) => textual(value) || value.is_integer(),
        t => t.is_integer(),
    }
}

fn allowed(table: &Table, index: usize, column: &str, values: &[AllowedValue], n: usize) -> ExpectationResult {
    let set: HashSet<String> = values.iter().map(AllowedValue::text).collect();
    let mut shown: Vec<&String> = set.iter().collect();
    shown.sort();
    let description = format!("{column} in {{{}}}", shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "));
    let out = Outcome::new(index, "allowed_values", description, vec![column.to_owned()], n);
    let data_type = match table.data_type(column) {
        Ok(t) => t,
        Err(reason) => return out.refuse(reason, vec![column.to_owned()]),
    };
    if !textual(&data_type) {
        return out.refuse(
            format!(
                "{column} is {data_type}: allowed_values applies to string, dictionary, integer and boolean columns"
            ),
            vec![column.to_owned()],
        );
    }
    let mut out = out;
    let mut unexpected_values: BTreeSet<String> = BTreeSet::new();
    for (start, array) in table.arrays(column) {
        let text = match cast(array, &DataType::Utf8) {
            Ok(a) => a,
            Err(e) => return out.refuse(format!("{column}: cannot read as text ({e})"), vec![column.to_owned()]),
        };
        let text = text.as_string::<i32>();
        for i in 0..text.len() {
            if text.is_null(i) {
                continue;
            }
            out.result.element_count += 1;
            let v = text.value(i);
            if !set.contains(v) {
                if unexpected_values.len() < 20 {
                    unexpected_values.insert(v.to_owned());
                }
                out.bad(start + i as u64, || v.to_owned());
            }
        }
    }
    let observed = (!unexpected_values.is_empty())
        .then(|| format!("unexpected values: {}", unexpected_values.into_iter().collect::<Vec<_>>().join(", ")));
    out.finish(None, observed, &[column.to_owned()])
}

fn unique(table: &Table, index: usize, columns: &[String], n: usize) -> ExpectationResult {
    let description = if columns.len() == 1 {
        format!("{} is unique", columns[0])
    } else {
        format!("({}) is unique", columns.join(", "))
    };
    let out = Outcome::new(index, "unique", description, columns.to_vec(), n);
    if columns.is_empty() {
        return out.refuse("invalid expectation: unique needs at least one column".to_owned(), vec![]);
    }
    let mut types = Vec::new();
    let mut missing = Vec::new();
    let mut reasons = Vec::new();
    for c in columns {
        match table.data_type(c) {
            Ok(t) => types.push(t),
            Err(reason) => {
                missing.push(c.clone());
                reasons.push(reason);
            }
        }
    }
    if !missing.is_empty() {
        return out.refuse(reasons.join("; "), missing);
    }
    let converter = match RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect()) {
        Ok(c) => c,
        Err(e) => return out.refuse(format!("unique cannot compare these types ({e})"), columns.to_vec()),
    };
    // Pass 1: count each key (rows with a null in the key are skipped).
    let mut counts: HashMap<Box<[u8]>, u32> = HashMap::new();
    let keyed = |batch: &RecordBatch| -> std::result::Result<(Vec<ArrayRef>, arrow::row::Rows), String> {
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|c| batch.column_by_name(c).map(Arc::clone).ok_or_else(|| c.clone()))
            .collect::<std::result::Result<_, _>>()?;
        let rows = converter.convert_columns(&arrays).map_err(|e| e.to_string())?;
        Ok((arrays, rows))
    };
    let has_null = |arrays: &[ArrayRef], i: usize| arrays.iter().any(|a| a.is_null(i));
    let mut out = out;
    for batch in table.batches {
        let (arrays, rows) = match keyed(batch) {
            Ok(k) => k,
            Err(e) => return out.refuse(format!("unique cannot compare these values ({e})"), columns.to_vec()),
        };
        for i in 0..batch.num_rows() {
            if !has_null(&arrays, i) {
                *counts.entry(rows.row(i).as_ref().into()).or_default() += 1;
                out.result.element_count += 1;
            }
        }
    }
    // Pass 2: every row of a duplicated key.
    let duplicated_keys = counts.values().filter(|&&c| c > 1).count();
    let mut offset = 0u64;
    for batch in table.batches {
        let Ok((arrays, rows)) = keyed(batch) else { break };
        for i in 0..batch.num_rows() {
            if !has_null(&arrays, i) && counts.get(rows.row(i).as_ref()).is_some_and(|&c| c > 1) {
                out.bad(offset + i as u64, || {
                    arrays.iter().map(|a| render(a.as_ref(), i)).collect::<Vec<_>>().join(", ")
                });
            }
        }
        offset += batch.num_rows() as u64;
    }
    let observed = format!("{} distinct keys, {duplicated_keys} duplicated", counts.len());
    out.finish(None, Some(observed), columns)
}

fn row_count(table: &Table, index: usize, min: Option<u64>, max: Option<u64>, n: usize) -> ExpectationResult {
    let description = match (min, max) {
        (Some(a), Some(b)) => format!("between {a} and {b} rows"),
        (Some(a), None) => format!("at least {a} rows"),
        (None, Some(b)) => format!("at most {b} rows"),
        (None, None) => "any number of rows".to_owned(),
    };
    let mut out = Outcome::new(index, "row_count", description, vec![], n);
    if let (Some(a), Some(b)) = (min, max)
        && a > b
    {
        return out.refuse(format!("invalid expectation: min {a} > max {b}"), vec![]);
    }
    let ok = min.is_none_or(|a| table.rows >= a) && max.is_none_or(|b| table.rows <= b);
    out.result.element_count = 1;
    out.result.unexpected_count = u64::from(!ok);
    out.finish(Some(ok), Some(format!("{} rows", table.rows)), &[])
}

/// Microseconds since the epoch of row `i` of a timestamp or date array (`None` for a null).
fn micros(array: &dyn Array, i: usize) -> Option<i64> {
    if array.is_null(i) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            array.as_primitive::<TimestampSecondType>().value(i).saturating_mul(1_000_000)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            array.as_primitive::<TimestampMillisecondType>().value(i).saturating_mul(1_000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => array.as_primitive::<TimestampMicrosecondType>().value(i),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            array.as_primitive::<TimestampNanosecondType>().value(i).div_euclid(1_000)
        }
        DataType::Date32 => i64::from(array.as_primitive::<Date32Type>().value(i)) * 86_400_000_000,
        DataType::Date64 => array.as_primitive::<Date64Type>().value(i).saturating_mul(1_000),
        _ => return None,
    })
}

fn freshness(
    table: &Table,
    index: usize,
    column: &str,
    max_age_seconds: f64,
    now: Option<i64>,
    n: usize,
) -> ExpectationResult {
    let description = format!("newest {column} at most {max_age_seconds} s old");
    let out = Outcome::new(index, "freshness", description, vec![column.to_owned()], n);
    if max_age_seconds.is_nan() || max_age_seconds < 0.0 {
        return out.refuse(format!("invalid expectation: max_age_seconds {max_age_seconds} is negative"), vec![]);
    }
    let Some(now) = now else {
        return out.refuse("no `now` given to check freshness against".to_owned(), vec![]);
    };
    let data_type = match table.data_type(column) {
        Ok(t) => t,
        Err(reason) => return out.refuse(reason, vec![column.to_owned()]),
    };
    if !matches!(data_type, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64) {
        return out.refuse(
            format!("{column} is {data_type}: freshness applies to Timestamp, Date32 and Date64 columns"),
            vec![column.to_owned()],
        );
    }
    let mut newest: Option<(i64, u64, &ArrayRef, usize)> = None;
    for (start, array) in table.arrays(column) {
        for i in 0..array.len() {
            if let Some(t) = micros(array.as_ref(), i)
                && newest.as_ref().is_none_or(|(best, ..)| t > *best)
            {
                newest = Some((t, start + i as u64, array, i));
            }
        }
    }
    let newest = newest.map(|(t, row, array, i)| (t, row, render(array.as_ref(), i)));
    let mut out = out;
    out.result.element_count = 1;
    let Some((t, row, text)) = newest else {
        out.result.unexpected_count = 1;
        return out.finish(Some(false), Some(format!("{column} has no non-null values")), &[column.to_owned()]);
    };
    let age = (now - t) as f64 / 1e6;
    let ok = age <= max_age_seconds;
    if !ok {
        out.bad(row, || text.clone());
    }
    out.finish(Some(ok), Some(format!("newest {text}, {age} s before now")), &[column.to_owned()])
}
