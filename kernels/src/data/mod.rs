//! Columnar feature engineering: Parquet ⇄ Arrow, column statistics, transforms,
//! point-in-time joins and Delta feature tables (feature `data`).
//!
//! Specs this module implements against:
//! - the [Apache Arrow columnar format](https://arrow.apache.org/docs/format/Columnar.html)
//!   (in-memory batches, validity bitmaps),
//! - the [Apache Parquet format](https://parquet.apache.org/docs/file-format/)
//!   (row groups, column chunks, min/max statistics in the footer),
//! - the [Delta Lake transaction protocol](https://github.com/delta-io/delta/blob/master/PROTOCOL.md)
//!   (a `_delta_log/` of numbered JSON commits over Parquet data files).
//!
//! | module | what it does |
//! |---|---|
//! | [`columns`] | plain Rust vectors → an Arrow [`RecordBatch`] (how generated data gets in) |
//! | [`parquet_io`] | read Parquet with column projection and row-group pruning; write Parquet |
//! | [`stats`] | count, null rate, mean, std, min/max, exact quantiles of f64/f32 columns (SIMD + scalar twin) |
//! | [`transform`] | standardise, min-max, quantile bins, one-hot, log1p: fit on train, apply anywhere |
//! | [`asof`] | point-in-time (as-of) join of features onto events, without leakage |
//! | [`delta`] | a feature table stored as a Delta table: versioned appends, time travel |
//!
//! Everything is plain functions over Arrow batches plus small `Config`/parameter
//! structs; errors are [`crate::Error`] variants (`MissingColumn`, `ColumnType`,
//! `Parquet`, `SchemaMismatch`, `Delta`, …). Only [`delta`] is async (deltalake is).

pub mod asof;
pub mod columns;
pub mod delta;
pub mod parquet_io;
pub mod stats;
pub mod transform;

pub use arrow::array::{Array, ArrayRef, RecordBatch};
pub use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub use asof::{AsOfConfig, asof_indices, asof_join};
pub use columns::{Column, record_batch};
pub use delta::FeatureTable;
pub use parquet_io::{
    Compression, ParquetRead, RangePredicate, ReadOptions, Value, WriteOptions, read_parquet, write_parquet,
};
pub use stats::{ColumnStats, column_stats, column_stats_scalar, describe, quantiles};
pub use transform::{
    Fitted, FittedPipeline, MinMaxScaler, OneHotEncoder, QuantileBinner, Standardizer, Step, StepKind, fit_pipeline,
    log1p,
};

use crate::{Error, Result};

impl From<deltalake::DeltaTableError> for Error {
    fn from(e: deltalake::DeltaTableError) -> Self {
        Error::Delta(Box::new(e))
    }
}

/// The column `name` of `batch`, or [`Error::MissingColumn`] listing what exists.
pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| missing(name, batch.schema_ref()))
}

/// [`Error::MissingColumn`] for `name` against `schema`.
pub(crate) fn missing(name: &str, schema: &Schema) -> Error {
    Error::MissingColumn {
        column: name.to_string(),
        available: schema.fields().iter().map(|f| f.name().clone()).collect(),
    }
}

/// [`Error::ColumnType`] for `name`.
pub(crate) fn wrong_type(name: &str, expected: &str, got: &DataType) -> Error {
    Error::ColumnType { column: name.to_string(), expected: expected.to_string(), got: got.clone() }
}

/// One `name: type` per field, for error messages.
pub(crate) fn describe_schema(schema: &Schema) -> String {
    let fields: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}{}", f.name(), f.data_type(), if f.is_nullable() { "?" } else { "" }))
        .collect();
    fields.join(", ")
}
