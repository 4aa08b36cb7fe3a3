//! Plain Rust column vectors → an Arrow [`RecordBatch`]: the bridge from generators
//! (e.g. `datasets::transactions`, which stays Arrow-free) into the columnar world.
//!
//! Spec: the [Arrow columnar format](https://arrow.apache.org/docs/format/Columnar.html)
//! (primitive, variable-size binary and dictionary layouts; validity bitmaps for nulls).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, DictionaryArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray, TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{Field, Int32Type, Schema};

use crate::{Error, Result};

/// One column of plain values; `Option` variants carry nulls.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// 64-bit floats.
    F64(Vec<f64>),
    /// 64-bit floats with nulls.
    OptF64(Vec<Option<f64>>),
    /// 32-bit floats.
    F32(Vec<f32>),
    /// Signed 32-bit integers.
    I32(Vec<i32>),
    /// Signed 64-bit integers.
    I64(Vec<i64>),
    /// Unsigned 32-bit integers.
    U32(Vec<u32>),
    /// Unsigned 64-bit integers.
    U64(Vec<u64>),
    /// Booleans.
    Bool(Vec<bool>),
    /// UTF-8 strings (plain `Utf8` layout).
    Str(Vec<String>),
    /// Low-cardinality strings, stored as `Dictionary(Int32, Utf8)`.
    Category(Vec<String>),
    /// Microseconds since the Unix epoch, UTC (`Timestamp(Microsecond, "UTC")`, Delta's `timestamp`).
    TimestampMicros(Vec<i64>),
    /// Nanoseconds since the Unix epoch, UTC (`Timestamp(Nanosecond, "UTC")`).
    TimestampNanos(Vec<i64>),
}

impl Column {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Column::F64(v) => v.len(),
            Column::OptF64(v) => v.len(),
            Column::F32(v) => v.len(),
            Column::I32(v) => v.len(),
            Column::I64(v) | Column::TimestampMicros(v) | Column::TimestampNanos(v) => v.len(),
            Column::U32(v) => v.len(),
            Column::U64(v) => v.len(),
            Column::Bool(v) => v.len(),
            Column::Str(v) | Column::Category(v) => v.len(),
        }
    }

    /// Whether the column has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The Arrow array holding these values.
    pub fn into_array(self) -> ArrayRef {
        match self {
            Column::F64(v) => Arc::new(Float64Array::from(v)),
            Column::OptF64(v) => Arc::new(Float64Array::from(v)),
            Column::F32(v) => Arc::new(Float32Array::from(v)),
            Column::I32(v) => Arc::new(Int32Array::from(v)),
            Column::I64(v) => Arc::new(Int64Array::from(v)),
            Column::U32(v) => Arc::new(UInt32Array::from(v)),
            Column::U64(v) => Arc::new(UInt64Array::from(v)),
            Column::Bool(v) => Arc::new(BooleanArray::from(v)),
            Column::Str(v) => Arc::new(StringArray::from(v)),
            Column::Category(v) => {
                let dict: DictionaryArray<Int32Type> = v.iter().map(String::as_str).collect();
                Arc::new(dict)
            }
            Column::TimestampMicros(v) => Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")),
            Column::TimestampNanos(v) => Arc::new(TimestampNanosecondArray::from(v).with_timezone("UTC")),
        }
    }
}

/// A batch from named columns, all of one length. Every field is nullable (features
/// joined later may be missing); use [`Error::DimensionMismatch`]'s `expected`/`got` to
/// find a ragged column.
pub fn record_batch(columns: Vec<(&str, Column)>) -> Result<RecordBatch> {
    let rows = columns.first().map_or(0, |(_, c)| c.len());
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays = Vec::with_capacity(columns.len());
    for (name, col) in columns {
        if col.len() != rows {
            return Err(Error::DimensionMismatch { expected: rows, got: col.len() });
        }
        let array = col.into_array();
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}
