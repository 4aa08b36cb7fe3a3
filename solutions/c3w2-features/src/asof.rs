//! The point-in-time ("as-of") join: for every event, the feature values of the
//! same entity **as they were known at the event's time**, never later.
//!
//! A training row for an event at time `t` may only use what a production
//! system could have known at `t`. A plain equi-join on the entity key, or a
//! join on "the latest value", hands the model values computed after the event,
//! often *from* the event's own outcome: label leakage. The model looks
//! excellent offline and fails in production.
//!
//! # The rules (the same as pandas' `merge_asof(direction="backward", by=…)`,
//! # Databricks' `timestamp_lookup_key` and `kernels::data::asof_join`)
//! - Match: the feature row of the same entity with the greatest
//!   `feature_time ≤ event_time`; with `allow_exact_matches == false`, the
//!   greatest `feature_time < event_time`.
//! - **Ties**: several feature rows of one entity at the same time → the one
//!   that comes **last in the feature input** wins (the latest write).
//! - Inputs are in **any order**; the output follows the event order.
//! - No match (an entity with no features, features only after the event, or
//!   the best match older than `event_time − tolerance`) → `None`.
//!
//! You write [`asof_indices`] on plain `i64` keys; [`asof_join`] (given) wraps it
//! for Arrow record batches.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use kernels::data::AsOfConfig;

use crate::{Error, Result};

/// Entity keys and times of one side of the join: `entity[i]` and `time[i]`
/// belong to row `i`; both slices have the same length.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    /// Entity key of each row (a card, a customer, …).
    pub entity: &'a [i64],
    /// Time of each row, in one unit for both sides (e.g. µs since the epoch).
    pub time: &'a [i64],
}

/// How strict the time match is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsOfRule {
    /// `true`: a feature stamped exactly at the event time may be used (it was
    /// known at that instant). `false`: only strictly earlier ones.
    pub allow_exact_matches: bool,
    /// Ignore a match older than `event_time − tolerance` (same unit as the
    /// times); `None`: any age.
    pub tolerance: Option<i64>,
}

impl Default for AsOfRule {
    /// Exact matches allowed, no tolerance. Given.
    fn default() -> AsOfRule {
        AsOfRule { allow_exact_matches: true, tolerance: None }
    }
}

// ANCHOR: asof_indices
/// Task c3w2.asof-join (20 points): for every event (left row), the index of
/// its matching feature row (right row), or `None` (see the module rules).
///
/// Returns one entry per event, in event order. Neither side is sorted; the
/// standard plan is:
///
/// 1. sort the events by `(entity, time)`, keeping each one's row number
///    (sort `(entity, time, row)` triples, or row numbers by their keys);
/// 2. sort the features the same way, making sure rows with equal keys keep
///    their input order (the last one is the latest write): a **stable** sort
///    of row numbers by `(entity, time)`, or any sort of `(entity, time, row)`
///    triples, where the row number breaks the ties;
/// 3. walk both in one merge pass: for each event, advance the feature cursor
///    while the feature's `(entity, time)` is `≤` the event's (`<` when exact
///    matches are not allowed); the row just behind the cursor is the candidate
///    if it has the same entity and is fresh enough.
///
/// That is O(n log n + m log m). (A `HashMap` from entity to its sorted feature
/// rows plus a binary search per event works too.) Compute `event_time −
/// feature_time` in `i128` or with checked arithmetic: times may be anywhere in
/// the `i64` range.
///
/// # Panics
/// If a side's `entity` and `time` slices differ in length.
pub fn asof_indices(events: Keys<'_>, features: Keys<'_>, rule: &AsOfRule) -> Vec<Option<u32>> {
    assert_eq!(events.entity.len(), events.time.len(), "events: entity and time lengths differ");
    assert_eq!(features.entity.len(), features.time.len(), "features: entity and time lengths differ");
    // BEGIN SOLUTION c3w2.asof-join
    // (entity, time, row) triples: the row number as the last key makes the unstable
    // sort deterministic and stable in effect: equal (entity, time) stay in input order,
    // so the last one wins below.
    let triples = |k: Keys<'_>| -> Vec<(i64, i64, u32)> {
        let mut v: Vec<(i64, i64, u32)> = (0..k.entity.len()).map(|i| (k.entity[i], k.time[i], i as u32)).collect();
        v.sort_unstable();
        v
    };
    let (left, right) = (triples(events), triples(features));
    let mut out = vec![None; left.len()];
    let mut j = 0;
    for &(entity, time, row) in &left {
        while j < right.len() {
            let (re, rt, _) = right[j];
            let c = (re, rt).cmp(&(entity, time));
            if c.is_lt() || (rule.allow_exact_matches && c.is_eq()) {
                j += 1;
            } else {
                break;
            }
        }
        if j > 0 {
            let (re, rt, r) = right[j - 1];
            let fresh = rule.tolerance.is_none_or(|tol| time as i128 - rt as i128 <= tol as i128);
            if re == entity && fresh {
                out[row as usize] = Some(r);
            }
        }
    }
    out
    // END SOLUTION
}
// ANCHOR_END: asof_indices

/// A key column as `i64` values plus its validity: integer entity columns are
/// widened, `Timestamp` columns give their raw count in their own unit.
fn key_column(batch: &RecordBatch, name: &str, what: &str) -> Result<(ArrayRef, DataType)> {
    let col = kernels::data::column(batch, name)?;
    let kind = match col.data_type() {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => DataType::Int64,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => DataType::Int64,
        DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, None),
        other => {
            return Err(Error::ColumnType {
                column: name.to_string(),
                expected: format!("an integer or timestamp {what} column"),
                got: other.clone(),
            });
        }
    };
    Ok((arrow::compute::cast(col, &DataType::Int64)?, kind))
}

/// The rows whose entity and time are both valid, with their keys. Given.
fn valid_keys(entity: &ArrayRef, time: &ArrayRef) -> (Vec<u32>, Vec<i64>, Vec<i64>) {
    let (e, t) = (entity.as_primitive::<Int64Type>(), time.as_primitive::<Int64Type>());
    let rows: Vec<u32> = (0..e.len() as u32).filter(|&i| e.is_valid(i as usize) && t.is_valid(i as usize)).collect();
    let ent = rows.iter().map(|&i| e.value(i as usize)).collect();
    let tim = rows.iter().map(|&i| t.value(i as usize)).collect();
    (rows, ent, tim)
}

// ANCHOR: asof_join
/// The event batch (all columns, same row order) with the chosen feature
/// columns appended, as of each event's time, using your [`asof_indices`]. Given.
///
/// `config` names the entity and time columns of both sides (integer entity
/// keys; `Int64` or `Timestamp` times, in the same unit on both sides), which
/// feature columns to bring over (`None`: all but the right entity and time),
/// and the [`AsOfRule`] fields. Rows with a null entity or time are left out of
/// the matching: such an event gets null features. Feature fields become
/// nullable (an event without a match gets nulls).
///
/// Errors: `Error::MissingColumn`, `Error::ColumnType` (keys of the wrong type,
/// time units that differ), `Error::InvalidParameter` (a feature column named
/// like an event column).
pub fn asof_join(events: &RecordBatch, features: &RecordBatch, config: &AsOfConfig) -> Result<RecordBatch> {
    let (le, _) = key_column(events, &config.left_entity, "entity")?;
    let (lt, left_unit) = key_column(events, &config.left_time, "time")?;
    let (re, _) = key_column(features, &config.right_entity, "entity")?;
    let (rt, right_unit) = key_column(features, &config.right_time, "time")?;
    if left_unit != right_unit {
        return Err(Error::ColumnType {
            column: config.right_time.clone(),
            expected: format!("{left_unit} (as the event time column)"),
            got: right_unit,
        });
    }
    let names: Vec<String> = match &config.features {
        Some(f) => f.clone(),
        None => features
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| *n != config.right_entity && *n != config.right_time)
            .collect(),
    };
    for f in &names {
        kernels::data::column(features, f)?;
        if events.schema().column_with_name(f).is_some() {
            return Err(Error::InvalidParameter(format!("as-of join: feature column {f:?} is also an event column")));
        }
    }

    let (l_rows, l_ent, l_time) = valid_keys(&le, &lt);
    let (r_rows, r_ent, r_time) = valid_keys(&re, &rt);
    let rule = AsOfRule { allow_exact_matches: config.allow_exact_matches, tolerance: config.tolerance };
    let matched = asof_indices(Keys { entity: &l_ent, time: &l_time }, Keys { entity: &r_ent, time: &r_time }, &rule);
    assert_eq!(matched.len(), l_rows.len(), "asof_indices must return one entry per event");
    let mut take = vec![None; events.num_rows()];
    for (&row, m) in l_rows.iter().zip(matched) {
        take[row as usize] = m.map(|k| r_rows[k as usize]);
    }
    let take = UInt32Array::from(take);

    let mut fields: Vec<Arc<Field>> = events.schema().fields().iter().cloned().collect();
    let mut arrays: Vec<ArrayRef> = events.columns().to_vec();
    for f in &names {
        let col = kernels::data::column(features, f)?;
        fields.push(Arc::new(Field::new(f, col.data_type().clone(), true)));
        arrays.push(arrow::compute::take(col.as_ref(), &take, None)?);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(events.num_rows()));
    Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)?)
}
// ANCHOR_END: asof_join
