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
//! # Two paths, one result
//! - **Integer entities** (`Int8`…`Int64`, `UInt8`…`UInt64`): both sides are ordered by time
//!   only (a stable sort, skipped when the column is already sorted) and scanned once in
//!   time order, as pandas does. A table from entity to "latest feature row so far" is
//!   updated by every feature row up to the event's time and read by the event. The table
//!   is a plain array when the right side's entity range is small (at most 4 slots per
//!   feature row), a hash map otherwise. Cost O(n log n + m log m) comparisons of `i64`s
//!   (O(n + m) on sorted input) plus O(n + m) table operations.
//! - **Any other entity type** (strings, …): both sides sorted by (entity, time) on Arrow's
//!   row format and merged. Cost O(n log n + m log m) row comparisons plus one merge pass.
//!
//! Both take O(n + m) memory and give the same indices (a test checks them against each
//! other and against brute force).

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
    if right.num_rows() >= u32::MAX as usize {
        return Err(Error::InvalidParameter("as-of join: 2^32 or more feature rows".into()));
    }
    let tl = time_l.as_primitive::<Int64Type>();
    let tr = time_r.as_primitive::<Int64Type>();
    if let (Some(el), Some(er)) = (integer_keys(ent_l), integer_keys(ent_r)) {
        return Ok(time_ordered_scan(Keyed { entity: &el, time: tl }, Keyed { entity: &er, time: tr }, config));
    }
    let converter = RowConverter::new(vec![SortField::new(ent_l.data_type().clone())])?;
    let rows_l = converter.convert_columns(std::slice::from_ref(ent_l))?;
    let rows_r = converter.convert_columns(std::slice::from_ref(ent_r))?;

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

/// One side of the join on the fast path: entity values (`None`: null) and times.
struct Keyed<'a> {
    entity: &'a [Option<i64>],
    time: &'a arrow::array::Int64Array,
}

impl Keyed<'_> {
    /// Row numbers with a valid entity and time, ordered by time (stable: equal times keep
    /// their input order), as `u32`.
    fn time_order(&self) -> Vec<u32> {
        let t = self.time;
        let mut order: Vec<u32> =
            (0..t.len()).filter(|&i| self.entity[i].is_some() && t.is_valid(i)).map(|i| i as u32).collect();
        if !order.is_sorted_by_key(|&i| t.value(i as usize)) {
            // (time, row) pairs are distinct, so an unstable sort of them is a stable sort by time.
            let mut keyed: Vec<(i64, u32)> = order.iter().map(|&i| (t.value(i as usize), i)).collect();
            keyed.sort_unstable();
            order = keyed.into_iter().map(|(_, i)| i).collect();
        }
        order
    }
}

/// An integer entity column as `i64` values (`None` for nulls): a bijection for every
/// integer type (`UInt64` wraps), so equality is kept. `None` for other types.
fn integer_keys(array: &ArrayRef) -> Option<Vec<Option<i64>>> {
    use arrow::datatypes::*;
    fn widen<T: ArrowPrimitiveType>(array: &ArrayRef, f: impl Fn(T::Native) -> i64) -> Vec<Option<i64>> {
        array.as_primitive::<T>().iter().map(|v| v.map(&f)).collect()
    }
    Some(match array.data_type() {
        DataType::Int8 => widen::<Int8Type>(array, i64::from),
        DataType::Int16 => widen::<Int16Type>(array, i64::from),
        DataType::Int32 => widen::<Int32Type>(array, i64::from),
        DataType::Int64 => widen::<Int64Type>(array, |v| v),
        DataType::UInt8 => widen::<UInt8Type>(array, i64::from),
        DataType::UInt16 => widen::<UInt16Type>(array, i64::from),
        DataType::UInt32 => widen::<UInt32Type>(array, i64::from),
        DataType::UInt64 => widen::<UInt64Type>(array, |v| v as i64),
        _ => return None,
    })
}

/// Entity → the latest feature row seen so far: an array over a small key range, else a map.
enum Latest {
    Dense { min: i64, rows: Vec<u32> },
    Sparse(std::collections::HashMap<i64, u32, std::hash::BuildHasherDefault<KeyHasher>>),
}

/// "No row yet" in [`Latest::Dense`] (the row count is checked to stay below it).
const NO_ROW: u32 = u32::MAX;

impl Latest {
    fn for_keys(keys: &[Option<i64>]) -> Latest {
        let (min, max) = keys.iter().flatten().fold((i64::MAX, i64::MIN), |(lo, hi), &k| (lo.min(k), hi.max(k)));
        let span = (max as i128 - min as i128 + 1).max(0);
        if span <= 4 * keys.len() as i128 + 1024 {
            Latest::Dense { min, rows: vec![NO_ROW; span as usize] }
        } else {
            Latest::Sparse(Default::default())
        }
    }

    fn set(&mut self, key: i64, row: u32) {
        match self {
            // Every right key lies in the range the table was sized for.
            Latest::Dense { min, rows } => rows[(key as i128 - *min as i128) as usize] = row,
            Latest::Sparse(map) => {
                map.insert(key, row);
            }
        }
    }

    fn get(&self, key: i64) -> Option<u32> {
        match self {
            Latest::Dense { min, rows } => {
                let slot = key as i128 - *min as i128;
                (0..rows.len() as i128).contains(&slot).then(|| rows[slot as usize]).filter(|&r| r != NO_ROW)
            }
            Latest::Sparse(map) => map.get(&key).copied(),
        }
    }
}

/// A multiplicative hash for `i64` keys (Fibonacci hashing): one multiply, good high bits.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_i64(&mut self, key: i64) {
        self.0 = (key as u64 ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

// ANCHOR: time_ordered_scan
/// The fast path (integer entities): one pass over both sides in time order, keeping each
/// entity's latest feature row. Feature rows of equal time are applied in input order, so
/// the last one wins, as on the general path.
fn time_ordered_scan(left: Keyed<'_>, right: Keyed<'_>, config: &AsOfConfig) -> Vec<Option<u32>> {
    let (lo, ro) = (left.time_order(), right.time_order());
    let mut latest = Latest::for_keys(right.entity);
    let mut out = vec![None; left.time.len()];
    let mut j = 0;
    for &l in &lo {
        let (l, t) = (l as usize, left.time.value(l as usize));
        while let Some(&r) = ro.get(j) {
            let tr = right.time.value(r as usize);
            if tr < t || (config.allow_exact_matches && tr == t) {
                // Rows in `ro` have a valid entity.
                latest.set(right.entity[r as usize].unwrap_or_default(), r);
                j += 1;
            } else {
                break;
            }
        }
        let Some(key) = left.entity[l] else { continue };
        if let Some(r) = latest.get(key) {
            let fresh =
                config.tolerance.is_none_or(|tol| (t as i128 - right.time.value(r as usize) as i128) <= tol as i128);
            if fresh {
                out[l] = Some(r);
            }
        }
    }
    out
}
// ANCHOR_END: time_ordered_scan

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
