//! Parquet files ⇄ Arrow record batches: column projection, row-group pruning by
//! min/max statistics, and a writer with row-group size and compression control.
//!
//! Spec: the [Apache Parquet file format](https://parquet.apache.org/docs/file-format/)
//! (a footer holds one `RowGroup` per horizontal slice with per-column-chunk
//! `Statistics{min_value, max_value, null_count}`; readers may skip row groups the
//! statistics rule out) and the [Arrow columnar format](https://arrow.apache.org/docs/format/Columnar.html)
//! the batches are decoded into.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Schema, SchemaRef, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::basic::ZstdLevel;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::{missing, wrong_type};
use crate::{Error, Result};

/// A bound of a [`RangePredicate`]: integers stay exact (nanosecond timestamps do not fit an f64).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// For integer and timestamp columns (timestamps in the column's own unit).
    Int(i64),
    /// For floating-point columns.
    Float(f64),
}

/// Keep row groups whose `[min, max]` statistics overlap `[lo, hi]` (both inclusive,
/// either open when `None`). Pruning is by row group: rows outside the range inside a
/// kept group are still returned (filter them afterwards if you need exact rows).
/// A row group without statistics for the column is always kept.
#[derive(Debug, Clone, PartialEq)]
pub struct RangePredicate {
    /// The column whose statistics decide.
    pub column: String,
    /// Lower bound (inclusive), or unbounded.
    pub lo: Option<Value>,
    /// Upper bound (inclusive), or unbounded.
    pub hi: Option<Value>,
}

/// What to read from a Parquet file.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Columns to decode, in file order (`None`: all). Unknown names are an error.
    pub columns: Option<Vec<String>>,
    /// Skip row groups this predicate rules out.
    pub predicate: Option<RangePredicate>,
    /// Rows per returned batch.
    pub batch_size: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { columns: None, predicate: None, batch_size: 8192 }
    }
}

/// The result of [`read_parquet`]: batches plus what pruning did.
#[derive(Debug, Clone)]
pub struct ParquetRead {
    /// Schema of the returned batches (after projection).
    pub schema: SchemaRef,
    /// The decoded batches.
    pub batches: Vec<RecordBatch>,
    /// Row groups in the file.
    pub row_groups_total: usize,
    /// Indices of the row groups that were decoded.
    pub row_groups_read: Vec<usize>,
}

impl ParquetRead {
    /// Total rows over all batches.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// All batches concatenated into one.
    pub fn concat(&self) -> Result<RecordBatch> {
        Ok(arrow::compute::concat_batches(&self.schema, &self.batches)?)
    }
}

fn pq_err(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> Error + '_ {
    move |source| Error::Parquet { path: path.to_path_buf(), source }
}

/// Reads `path` with projection and row-group pruning (see [`ReadOptions`]).
///
/// Errors: [`Error::DataIo`] (cannot open), [`Error::Parquet`] (not Parquet, truncated,
/// corrupt), [`Error::MissingColumn`], [`Error::ColumnType`] (a predicate bound of the
/// wrong kind for its column).
pub fn read_parquet(path: impl AsRef<Path>, options: &ReadOptions) -> Result<ParquetRead> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| Error::DataIo { path: path.to_path_buf(), source })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq_err(path))?;
    let schema = builder.schema().clone();
    let metadata = builder.metadata().clone();
    let row_groups_total = metadata.num_row_groups();

    let mut row_groups_read: Vec<usize> = (0..row_groups_total).collect();
    if let Some(pred) = &options.predicate {
        if schema.column_with_name(&pred.column).is_none() {
            return Err(missing(&pred.column, &schema));
        }
        let conv =
            StatisticsConverter::try_new(&pred.column, &schema, builder.parquet_schema()).map_err(pq_err(path))?;
        let mins = conv.row_group_mins(metadata.row_groups().iter()).map_err(pq_err(path))?;
        let maxes = conv.row_group_maxes(metadata.row_groups().iter()).map_err(pq_err(path))?;
        let mut keep = Vec::new();
        for rg in 0..row_groups_total {
            let lo_ok = match pred.lo {
                None => true,
                Some(lo) => stat_cmp(&pred.column, &maxes, rg, lo)?.is_none_or(|o| o.is_ge()),
            };
            let hi_ok = match pred.hi {
                None => true,
                Some(hi) => stat_cmp(&pred.column, &mins, rg, hi)?.is_none_or(|o| o.is_le()),
            };
            if lo_ok && hi_ok {
                keep.push(rg);
            }
        }
        row_groups_read = keep;
    }

    let mut builder = builder.with_batch_size(options.batch_size.max(1)).with_row_groups(row_groups_read.clone());
    let mut out_schema = schema.clone();
    if let Some(cols) = &options.columns {
        let mut indices = Vec::with_capacity(cols.len());
        for c in cols {
            let (i, _) = schema.column_with_name(c).ok_or_else(|| missing(c, &schema))?;
            indices.push(i);
        }
        indices.sort_unstable();
        indices.dedup();
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices.iter().copied());
        out_schema = std::sync::Arc::new(schema.project(&indices)?);
        builder = builder.with_projection(mask);
    }
    let reader = builder.build().map_err(pq_err(path))?;
    let mut batches = Vec::new();
    for batch in reader {
        // Decoding errors surface here (a corrupt page behind a valid footer).
        let batch = batch.map_err(|e| Error::Parquet { path: path.to_path_buf(), source: e.into() })?;
        batches.push(batch);
    }
    Ok(ParquetRead { schema: out_schema, batches, row_groups_total, row_groups_read })
}

/// Compares statistic `rg` of `stats` with `bound`; `None` when the statistic is missing.
fn stat_cmp(column: &str, stats: &ArrayRef, rg: usize, bound: Value) -> Result<Option<std::cmp::Ordering>> {
    if stats.is_null(rg) {
        return Ok(None);
    }
    macro_rules! int {
        ($t:ty) => {{
            let v = stats.as_primitive::<$t>().value(rg) as i128;
            match bound {
                Value::Int(b) => Some(v.cmp(&(b as i128))),
                Value::Float(b) => (v as f64).partial_cmp(&b),
            }
        }};
    }
    let ord = match stats.data_type() {
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Timestamp(..) | DataType::Date64 => {
            let ints = arrow::compute::cast(stats, &DataType::Int64)?;
            let v = ints.as_primitive::<Int64Type>().value(rg);
            match bound {
                Value::Int(b) => Some(v.cmp(&b)),
                Value::Float(_) => {
                    return Err(wrong_type(column, "an integer bound (Value::Int) for a timestamp", stats.data_type()));
                }
            }
        }
        DataType::Float32 | DataType::Float64 => {
            let v = if let DataType::Float32 = stats.data_type() {
                stats.as_primitive::<Float32Type>().value(rg) as f64
            } else {
                stats.as_primitive::<Float64Type>().value(rg)
            };
            let b = match bound {
                Value::Int(b) => b as f64,
                Value::Float(b) => b,
            };
            // A NaN statistic decides nothing: keep the row group.
            v.partial_cmp(&b)
        }
        other => return Err(wrong_type(column, "a numeric or timestamp column for a range predicate", other)),
    };
    Ok(ord)
}

/// Compression codec of written column chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    Uncompressed,
    /// Snappy (fast; Spark's default).
    Snappy,
    /// Zstandard at a level (1–22; 3 is a good default).
    Zstd(i32),
}

/// How to write a Parquet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Maximum rows per row group (smaller groups prune more finely, compress less).
    pub row_group_rows: usize,
    /// Codec of every column chunk.
    pub compression: Compression,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { row_group_rows: 128 * 1024, compression: Compression::Zstd(3) }
    }
}

/// Writes `batches` (all of schema `schema`) to `path`, with per-page and per-chunk
/// min/max statistics so readers (this module, pyarrow, Spark) can prune row groups.
/// Returns the number of row groups written.
///
/// Errors: [`Error::SchemaMismatch`] (a batch of another schema), [`Error::DataIo`],
/// [`Error::Parquet`], [`Error::InvalidParameter`] (zero rows per group, bad zstd level).
pub fn write_parquet(
    path: impl AsRef<Path>,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    options: &WriteOptions,
) -> Result<usize> {
    let path = path.as_ref();
    if options.row_group_rows == 0 {
        return Err(Error::InvalidParameter("row_group_rows must be at least 1".into()));
    }
    for b in batches {
        check_same_schema(schema, b.schema_ref())?;
    }
    let compression = match options.compression {
        Compression::Uncompressed => parquet::basic::Compression::UNCOMPRESSED,
        Compression::Snappy => parquet::basic::Compression::SNAPPY,
        Compression::Zstd(level) => parquet::basic::Compression::ZSTD(
            ZstdLevel::try_new(level).map_err(|e| Error::InvalidParameter(format!("zstd level {level}: {e}")))?,
        ),
    };
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(options.row_group_rows))
        .set_compression(compression)
        .set_statistics_enabled(EnabledStatistics::Page)
        .build();
    let file = File::create(path).map_err(|source| Error::DataIo { path: PathBuf::from(path), source })?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(pq_err(path))?;
    for b in batches {
        writer.write(b).map_err(pq_err(path))?;
    }
    let meta = writer.close().map_err(pq_err(path))?;
    Ok(meta.num_row_groups())
}

/// [`Error::SchemaMismatch`] unless `got` has the same field names and types as `expected`
/// (nullability and metadata are not compared).
pub(crate) fn check_same_schema(expected: &Schema, got: &Schema) -> Result<()> {
    let mismatch = |reason: String| Error::SchemaMismatch {
        reason,
        expected: super::describe_schema(expected),
        got: super::describe_schema(got),
    };
    if expected.fields().len() != got.fields().len() {
        return Err(mismatch(format!("{} columns expected, {} given", expected.fields().len(), got.fields().len())));
    }
    for (e, g) in expected.fields().iter().zip(got.fields()) {
        if e.name() != g.name() {
            return Err(mismatch(format!("column {:?} where {:?} was expected", g.name(), e.name())));
        }
        if e.data_type() != g.data_type() {
            return Err(mismatch(format!(
                "column {:?} is {} where {} was expected",
                g.name(),
                g.data_type(),
                e.data_type()
            )));
        }
    }
    Ok(())
}
