//! Point-in-time ("as-of") join: for every event row, the feature values of the same
//! entity as they were known at the event's time — never later, so no label leakage.
//!
//! Spec: the [Arrow columnar format](https://arrow.apache.org/docs/format/Columnar.html)
//! (inputs and output are record batches); the semantics are those of pandas'
//! `merge_asof(direction="backward", by=entity)` and of feature stores' point-in-time
//! lookups (Feast, Databricks Feature Store `timestamp_lookup_key`).
//!
//! # Rules
//! - Match: the feature row of the same entity with the greatest `feature_time ≤ event_time`
//!   (`< event_time` when [`AsOfConfig::allow_exact_matches`] is false).
//! - **Ties**: several feature rows of one entity with the same `feature_time` → the one
//!   that comes **last in the right batch** wins (the latest write), whatever the order of
//!   the other rows. (pandas does the same.)
//! - Inputs need not be sorted: both sides are sorted internally (stable), and the output
//!   keeps the left batch's row order.
//! - No match (unknown entity, all features later than the event, staler than
//!   [`AsOfConfig::tolerance`], or a null entity/time on the left) → null features.
//!   Right rows with a null entity or time are ignored.
//! - Times are `Int64` or `Timestamp(unit, _)` with the same unit on both sides (time
//!   zones are not compared: timestamps are UTC instants); entities any type Arrow's row
//!   format can compare, the same on both sides.
//!
//! Cost: O(n log n + m log m) for the sorts plus one merge pass, O(n + m) memory.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::row::{RowConverter, SortField};

use super::{column, wrong_type};
use crate::{Error, Result};

/// Which columns to join on and how.
#[derive(Debug, Clone, PartialEq)]
pub struct AsOfConfig {
    /// Entity key column of the left (event) batch.
    pub left_entity: String,
    /// Event time column of the left batch.
    pub left_time: String,
    /// Entity key column of the right (feature) batch.
    pub right_entity: String,
    /// Feature time column of the right batch.
    pub right_time: String,
    /// Right columns to bring over (`None`: all but the right entity and time).
    pub features: Option<Vec<String>>,
    /// Allow `feature_time == event_time` (true, the default) or require strictly earlier.
    pub allow_exact_matches: bool,
    /// Ignore feature rows older than `event_time − tolerance` (in the time column's unit).
    pub tolerance: Option<i64>,
}

impl AsOfConfig {
    /// Entity and time columns with the same names on both sides; all features, exact
    /// matches allowed, no tolerance.
    pub fn new(entity: &str, time: &str) -> AsOfConfig {
        AsOfConfig {
            left_entity: entity.into(),
            left_time: time.into(),
            right_entity: entity.into(),
            right_time: time.into(),
            features: None,
            allow_exact_matches: true,
            tolerance: None,
        }
    }
}

/// A time column as `Int64` (same unit as given), with its type for the unit check.
fn times(name: &str, array: &ArrayRef) -> Result<(ArrayRef, DataType)> {
    let unit_type = match array.data_type() {
        DataType::Int64 => DataType::Int64,
        DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, None),
        other => return Err(wrong_type(name, "Int64 or Timestamp", other)),
    };
    Ok((arrow::compute::cast(array, &DataType::Int64)?, unit_type))
}

/// For every left row, the index of its matching right row (see the module rules).
pub fn asof_indices(left: &RecordBatch, right: &RecordBatch, config: &AsOfConfig) -> Result<Vec<Option<u32>>> {
    let ent_l = column(left, &config.left_entity)?;
    let ent_r = column(right, &config.right_entity)?;
    let (time_l, unit_l) = times(&config.left_time, column(left, &config.left_time)?)?;
    let (time_r, unit_r) = times(&config.right_time, column(right, &config.right_time)?)?;
    if unit_l != unit_r {
        return Err(wrong_type(&config.right_time, &format!("{unit_l} (as the left time column)"), &unit_r));
    }
    if ent_l.data_type() != ent_r.data_type() {
        return Err(wrong_type(
            &config.right_entity,
            &format!("{} (as the left entity column)", ent_l.data_type()),
            ent_r.data_type(),
        ));
    }
    if right.num_rows() > u32::MAX as usize {
        return Err(Error::InvalidParameter("as-of join: more than 2^32 feature rows".into()));
    }
    let converter = RowConverter::new(vec![SortField::new(ent_l.data_type().clone())])?;
    let rows_l = converter.convert_columns(std::slice::from_ref(ent_l))?;
    let rows_r = converter.convert_columns(std::slice::from_ref(ent_r))?;
    let tl = time_l.as_primitive::<Int64Type>();
    let tr = time_r.as_primitive::<Int64Type>();

    let mut li: Vec<usize> = (0..left.num_rows()).filter(|&i| ent_l.is_valid(i) && tl.is_valid(i)).collect();
    li.sort_unstable_by(|&a, &b| rows_l.row(a).cmp(&rows_l.row(b)).then(tl.value(a).cmp(&tl.value(b))));
    let mut ri: Vec<usize> = (0..right.num_rows()).filter(|&i| ent_r.is_valid(i) && tr.is_valid(i)).collect();
    // Stable: rows with equal (entity, time) keep their input order, so the last one wins below.
    ri.sort_by(|&a, &b| rows_r.row(a).cmp(&rows_r.row(b)).then(tr.value(a).cmp(&tr.value(b))));

    let mut out = vec![None; left.num_rows()];
    let mut j = 0;
    for &l in &li {
        let (el, t) = (rows_l.row(l), tl.value(l));
        while j < ri.len() {
            let r = ri[j];
            let c = rows_r.row(r).cmp(&el).then(tr.value(r).cmp(&t));
            if c.is_lt() || (config.allow_exact_matches && c.is_eq()) {
                j += 1;
            } else {
                break;
            }
        }
        if j > 0 {
            let r = ri[j - 1];
            let fresh = config.tolerance.is_none_or(|tol| (t as i128 - tr.value(r) as i128) <= tol as i128);
            if rows_r.row(r) == el && fresh {
                out[l] = Some(r as u32);
            }
        }
    }
    Ok(out)
}

/// The left batch (all columns, same row order) with the chosen feature columns of the
/// right batch appended, as of each left row's time (see the module rules). Feature
/// fields become nullable.
///
/// Errors: [`Error::MissingColumn`], [`Error::ColumnType`] (time not Int64/Timestamp,
/// different units or entity types on the two sides), [`Error::InvalidParameter`] (a
/// feature column named like a left column).
pub fn asof_join(left: &RecordBatch, right: &RecordBatch, config: &AsOfConfig) -> Result<RecordBatch> {
    column(left, &config.left_entity)?;
    column(left, &config.left_time)?;
    column(right, &config.right_entity)?;
    column(right, &config.right_time)?;
    let features: Vec<String> = match &config.features {
        Some(f) => f.clone(),
        None => right
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| *n != config.right_entity && *n != config.right_time)
            .collect(),
    };
    for f in &features {
        column(right, f)?;
        if left.schema().column_with_name(f).is_some() {
            return Err(Error::InvalidParameter(format!(
                "as-of join: feature column {f:?} is also a left column; rename it"
            )));
        }
    }
    let indices: UInt32Array = asof_indices(left, right, config)?.into();
    let mut fields: Vec<Arc<Field>> = left.schema().fields().iter().cloned().collect();
    let mut arrays: Vec<ArrayRef> = left.columns().to_vec();
    for f in &features {
        let col = column(right, f)?;
        fields.push(Arc::new(Field::new(f, col.data_type().clone(), true)));
        arrays.push(arrow::compute::take(col.as_ref(), &indices, None)?);
    }
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(left.num_rows()));
    Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)?)
}
