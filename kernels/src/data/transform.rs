//! Feature transforms with a fit/apply split: parameters are fitted on the training
//! batch only, stored as plain structs, and applied unchanged to any later batch
//! (validation, test, serving), which is what keeps statistics of the future out of
//! the past.
//!
//! Spec: the [Arrow columnar format](https://arrow.apache.org/docs/format/Columnar.html):
//! inputs are f64/f32 columns (numeric transforms) or `Utf8`/`LargeUtf8`/`Dictionary(_, Utf8)`
//! columns (one-hot); nulls stay null through numeric transforms.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, UInt8Array, UInt32Array};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema};

use super::stats::{column_stats, quantiles_of, valid_values};
use super::{column, wrong_type};
use crate::{Error, Result};

/// Maps every valid value of an f64/f32 column through `f`, keeping nulls.
fn map_f64(name: &str, array: &dyn Array, f: impl Fn(f64) -> f64) -> Result<Float64Array> {
    match array.data_type() {
        DataType::Float64 => Ok(array.as_primitive::<Float64Type>().unary(f)),
        DataType::Float32 => Ok(array.as_primitive::<Float32Type>().unary(|v| f(v as f64))),
        other => Err(wrong_type(name, "Float64 or Float32", other)),
    }
}

fn numeric(name: &str, array: &dyn Array) -> Result<()> {
    match array.data_type() {
        DataType::Float64 | DataType::Float32 => Ok(()),
        other => Err(wrong_type(name, "Float64 or Float32", other)),
    }
}

/// `(x − mean) / std` with the population std of the training column. A constant
/// training column (std 0) maps everything to 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standardizer {
    /// Training mean.
    pub mean: f64,
    /// Training population standard deviation.
    pub std: f64,
}

impl Standardizer {
    /// Fits on the valid values of `train`.
    pub fn fit(train: &dyn Array) -> Result<Standardizer> {
        let s = column_stats(train)?;
        Ok(Standardizer { mean: s.mean, std: s.std() })
    }

    /// Applies to any f64/f32 column.
    pub fn apply(&self, array: &dyn Array) -> Result<Float64Array> {
        let (m, s) = (self.mean, self.std);
        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
        map_f64("<array>", array, |x| (x - m) * inv)
    }
}

/// `(x − min) / (max − min)`: training range onto `[0, 1]` (later values may fall outside).
/// A constant training column maps everything to 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinMaxScaler {
    /// Training minimum.
    pub min: f64,
    /// Training maximum.
    pub max: f64,
}

impl MinMaxScaler {
    /// Fits on the valid values of `train`.
    pub fn fit(train: &dyn Array) -> Result<MinMaxScaler> {
        let s = column_stats(train)?;
        Ok(MinMaxScaler { min: s.min, max: s.max })
    }

    /// Applies to any f64/f32 column.
    pub fn apply(&self, array: &dyn Array) -> Result<Float64Array> {
        let (lo, range) = (self.min, self.max - self.min);
        let inv = if range > 0.0 { 1.0 / range } else { 0.0 };
        map_f64("<array>", array, |x| (x - lo) * inv)
    }
}

/// Equal-frequency bins: `edges` are the training quantiles `1/k, 2/k, …, (k−1)/k`
/// (duplicates removed, so a skewed column may get fewer bins). Bin of `x` = number of
/// edges `≤ x`, in `0..=edges.len()`; NaN and null give null.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantileBinner {
    /// Interior cut points, strictly increasing.
    pub edges: Vec<f64>,
}

impl QuantileBinner {
    /// Fits `bins` equal-frequency bins on `train` (exact quantiles).
    pub fn fit(train: &dyn Array, bins: usize) -> Result<QuantileBinner> {
        if bins == 0 {
            return Err(Error::InvalidParameter("quantile binning needs at least one bin".into()));
        }
        let mut v = valid_values(train)?;
        let qs: Vec<f64> = (1..bins).map(|i| i as f64 / bins as f64).collect();
        let mut edges = if v.is_empty() { Vec::new() } else { quantiles_of(&mut v, &qs)? };
        edges.dedup();
        Ok(QuantileBinner { edges })
    }

    /// Number of bins (`edges.len() + 1`).
    pub fn bins(&self) -> usize {
        self.edges.len() + 1
    }

    /// Bin index of every value.
    pub fn apply(&self, array: &dyn Array) -> Result<UInt32Array> {
        numeric("<array>", array)?;
        let bin = |x: f64| if x.is_nan() { None } else { Some(self.edges.partition_point(|&e| e <= x) as u32) };
        Ok(match array.data_type() {
            DataType::Float64 => array.as_primitive::<Float64Type>().iter().map(|v| v.and_then(bin)).collect(),
            _ => array.as_primitive::<Float32Type>().iter().map(|v| v.and_then(|x| bin(x as f64))).collect(),
        })
    }
}

/// Every slot of a string-like column as `Option<&str>`.
fn strings(name: &str, array: &dyn Array) -> Result<Vec<Option<String>>> {
    Ok(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().map(|s| s.map(str::to_string)).collect(),
        DataType::Utf8View => array.as_string_view().iter().map(|s| s.map(str::to_string)).collect(),
        DataType::Dictionary(_, value) if matches!(value.as_ref(), DataType::Utf8 | DataType::LargeUtf8) => {
            let plain = arrow::compute::cast(array, value)?;
            return strings(name, plain.as_ref());
        }
        other => return Err(wrong_type(name, "Utf8, LargeUtf8, Utf8View or Dictionary(_, Utf8)", other)),
    })
}

/// One indicator column per training category (`UInt8` 0/1). Categories are kept in
/// order of falling training frequency (ties by name), at most `max_categories`;
/// a category not kept, one unseen in training, and null all get all zeros.
#[derive(Debug, Clone, PartialEq)]
pub struct OneHotEncoder {
    /// The kept categories; indicator `i` is 1 for `categories[i]`.
    pub categories: Vec<String>,
}

impl OneHotEncoder {
    /// Fits on a string or dictionary column.
    pub fn fit(train: &dyn Array, max_categories: Option<usize>) -> Result<OneHotEncoder> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for s in strings("<array>", train)?.into_iter().flatten() {
            *counts.entry(s).or_default() += 1;
        }
        let mut cats: Vec<(String, usize)> = counts.into_iter().collect();
        cats.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        cats.truncate(max_categories.unwrap_or(usize::MAX));
        Ok(OneHotEncoder { categories: cats.into_iter().map(|(c, _)| c).collect() })
    }

    /// One indicator array per category, in [`Self::categories`] order.
    pub fn apply(&self, array: &dyn Array) -> Result<Vec<UInt8Array>> {
        let index: HashMap<&str, usize> = self.categories.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
        let values = strings("<array>", array)?;
        let mut cols = vec![vec![0u8; values.len()]; self.categories.len()];
        for (row, v) in values.iter().enumerate() {
            if let Some(&k) = v.as_deref().and_then(|s| index.get(s)) {
                cols[k][row] = 1;
            }
        }
        Ok(cols.into_iter().map(UInt8Array::from).collect())
    }
}

/// `ln(1 + x)` of every valid value (for heavy-tailed, non-negative features such as
/// amounts). Errors with [`Error::InvalidParameter`] on a value below −1.
pub fn log1p(array: &dyn Array) -> Result<Float64Array> {
    let out = map_f64("<array>", array, f64::ln_1p)?;
    if let Some(i) = (0..out.len()).find(|&i| out.is_valid(i) && out.value(i).is_nan()) {
        let x = map_f64("<array>", array, |x| x)?.value(i);
        if !x.is_nan() {
            return Err(Error::InvalidParameter(format!("log1p of {x} (row {i}) is undefined: values must be ≥ −1")));
        }
    }
    Ok(out)
}

/// What one [`Step`] does to its column.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// [`Standardizer`] → `<column>_std` (Float64).
    Standardize,
    /// [`MinMaxScaler`] → `<column>_minmax` (Float64).
    MinMax,
    /// [`QuantileBinner`] with this many bins → `<column>_bin` (UInt32).
    QuantileBins(usize),
    /// [`OneHotEncoder`] keeping at most this many categories → `<column>=<category>` (UInt8 each).
    OneHot(Option<usize>),
    /// [`log1p`] → `<column>_log1p` (Float64); nothing to fit.
    Log1p,
}

/// One transform of one input column.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Input column.
    pub column: String,
    /// The transform.
    pub kind: StepKind,
}

/// A fitted step's parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Fitted {
    /// See [`Standardizer`].
    Standardize(Standardizer),
    /// See [`MinMaxScaler`].
    MinMax(MinMaxScaler),
    /// See [`QuantileBinner`].
    QuantileBins(QuantileBinner),
    /// See [`OneHotEncoder`].
    OneHot(OneHotEncoder),
    /// See [`log1p`].
    Log1p,
}

/// Steps with their parameters fitted on a training batch: apply to any batch with
/// the same input columns.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedPipeline {
    /// `(input column, fitted parameters)` in step order.
    pub steps: Vec<(String, Fitted)>,
}

/// Fits every step on `train`.
///
/// Errors: [`Error::MissingColumn`], [`Error::ColumnType`] naming the column.
pub fn fit_pipeline(train: &RecordBatch, steps: &[Step]) -> Result<FittedPipeline> {
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        let name = step.column.as_str();
        let col = column(train, name)?.as_ref();
        let retype = |e: Error| match e {
            Error::ColumnType { expected, got, .. } => Error::ColumnType { column: name.to_string(), expected, got },
            e => e,
        };
        let fitted = match &step.kind {
            StepKind::Standardize => Fitted::Standardize(Standardizer::fit(col).map_err(retype)?),
            StepKind::MinMax => Fitted::MinMax(MinMaxScaler::fit(col).map_err(retype)?),
            StepKind::QuantileBins(k) => Fitted::QuantileBins(QuantileBinner::fit(col, *k).map_err(retype)?),
            StepKind::OneHot(max) => Fitted::OneHot(OneHotEncoder::fit(col, *max).map_err(retype)?),
            StepKind::Log1p => {
                numeric(name, col)?;
                Fitted::Log1p
            }
        };
        out.push((step.column.clone(), fitted));
    }
    Ok(FittedPipeline { steps: out })
}

impl FittedPipeline {
    /// The transformed columns of `batch` (only the outputs, named as in [`StepKind`]),
    /// row-aligned with `batch`.
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (name, fitted) in &self.steps {
            let col = column(batch, name)?.as_ref();
            let retype = |e: Error| match e {
                Error::ColumnType { expected, got, .. } => Error::ColumnType { column: name.clone(), expected, got },
                e => e,
            };
            let mut push = |suffix: String, a: ArrayRef| {
                fields.push(Field::new(format!("{name}{suffix}"), a.data_type().clone(), true));
                arrays.push(a);
            };
            match fitted {
                Fitted::Standardize(t) => push("_std".into(), Arc::new(t.apply(col).map_err(retype)?)),
                Fitted::MinMax(t) => push("_minmax".into(), Arc::new(t.apply(col).map_err(retype)?)),
                Fitted::QuantileBins(t) => push("_bin".into(), Arc::new(t.apply(col).map_err(retype)?)),
                Fitted::OneHot(t) => {
                    for (cat, a) in t.categories.iter().zip(t.apply(col).map_err(retype)?) {
                        push(format!("={cat}"), Arc::new(a));
                    }
                }
                Fitted::Log1p => push("_log1p".into(), Arc::new(log1p(col).map_err(retype)?)),
            }
        }
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)?)
    }
}
