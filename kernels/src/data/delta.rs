//! A feature table stored as a Delta table: created with a schema, grown by versioned
//! appends (each append is one atomic commit), read at the latest or any older version
//! (time travel), and protected by a schema check on every append.
//!
//! Spec: the [Delta Lake transaction protocol](https://github.com/delta-io/delta/blob/master/PROTOCOL.md):
//! a table is Parquet data files plus `_delta_log/NNNNNNNNNNNNNNNNNNNN.json` commits whose
//! `add`/`remove` actions define which files make up each version; version 0 holds the
//! `metaData` (schema) and `protocol` actions. Writing and log replay are delegated to the
//! [`deltalake`] crate (delta-rs, the engine of the Python `deltalake` package); data files
//! are decoded here with the `parquet` crate, so the heavy `datafusion` feature is not needed.
//!
//! **Async**: every operation that touches the log is an `async fn`; run it on a tokio
//! runtime (`#[tokio::main]`, `#[tokio::test]`, or `Runtime::block_on`). Data files are
//! read through the table's object store, so any store delta-rs can open works; tables
//! here are local folders. Supported: unpartitioned tables without deletion vectors or
//! column mapping (what [`FeatureTable::create`] makes).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::{Schema, SchemaRef};
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::{TryFromArrow, TryIntoArrow};
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::parquet_io::check_same_schema;
use crate::{Error, Result};

/// A Delta table of features at one loaded version.
#[derive(Debug, Clone)]
pub struct FeatureTable {
    table: DeltaTable,
    path: PathBuf,
    schema: SchemaRef,
}

fn table_url(path: &Path) -> Result<String> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(|source| Error::DataIo { path: path.into(), source })?.join(path)
    };
    abs.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidParameter(format!("table path {} is not UTF-8", path.display())))
}

/// The Arrow schema Delta stores for `schema`, or why it cannot be stored as given.
fn delta_schema(schema: &Schema) -> Result<(StructType, SchemaRef)> {
    let delta = StructType::try_from_arrow(schema)?;
    let back: Schema = (&delta).try_into_arrow()?;
    let back = Arc::new(back);
    // Types Delta does not keep (unsigned ints, nanosecond or zone-less-as-UTC timestamps,
    // dictionaries) would come back different: refuse them up front.
    check_same_schema(&back, schema).map_err(|e| match e {
        Error::SchemaMismatch { reason, expected, got } => Error::SchemaMismatch {
            reason: format!("Delta cannot store this schema as given ({reason}); use the types Delta has"),
            expected,
            got,
        },
        e => e,
    })?;
    Ok((delta, back))
}

fn arrow_schema_of(table: &DeltaTable) -> Result<SchemaRef> {
    let kernel = table.snapshot()?.schema();
    let schema: Schema = kernel.as_ref().try_into_arrow()?;
    Ok(Arc::new(schema))
}

impl FeatureTable {
    /// Creates an empty table (version 0) at `path` with `schema`. The schema must use
    /// types Delta stores as they are: `Int64`, `Int32`, `Float64`, `Float32`, `Boolean`,
    /// `Utf8`, `Timestamp(Microsecond, "UTC")`, … (else [`Error::SchemaMismatch`]).
    /// Errors with [`Error::Delta`] if a table already exists there.
    pub async fn create(path: impl AsRef<Path>, name: &str, schema: &Schema) -> Result<FeatureTable> {
        let path = path.as_ref();
        let (delta, arrow_schema) = delta_schema(schema)?;
        let url = deltalake::ensure_table_uri(table_url(path)?)?;
        let table = DeltaTable::try_from_url(url)
            .await?
            .create()
            .with_table_name(name)
            .with_columns(delta.fields().cloned())
            .await?;
        Ok(FeatureTable { table, path: path.to_path_buf(), schema: arrow_schema })
    }

    /// Opens the latest version of the table at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<FeatureTable> {
        Self::load(path.as_ref(), None).await
    }

    /// Opens the table at `path` as it was at `version` (time travel).
    pub async fn open_version(path: impl AsRef<Path>, version: u64) -> Result<FeatureTable> {
        Self::load(path.as_ref(), Some(version)).await
    }

    async fn load(path: &Path, version: Option<u64>) -> Result<FeatureTable> {
        if !path.join("_delta_log").is_dir() {
            return Err(Error::DataIo {
                path: path.join("_delta_log"),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a Delta table (no _delta_log folder)"),
            });
        }
        let url = deltalake::ensure_table_uri(table_url(path)?)?;
        let mut builder = DeltaTableBuilder::from_url(url)?;
        if let Some(v) = version {
            builder = builder.with_version(v);
        }
        let table = builder.load().await?;
        let schema = arrow_schema_of(&table)?;
        Ok(FeatureTable { table, path: path.to_path_buf(), schema })
    }

    /// The loaded version (0 right after [`create`](Self::create)).
    pub fn version(&self) -> u64 {
        self.table.version().unwrap_or(0)
    }

    /// The newest version committed to the log (may be newer than [`version`](Self::version)).
    pub async fn latest_version(&self) -> Result<u64> {
        Ok(self.table.get_latest_version().await?)
    }

    /// The table's schema as Arrow sees it.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The table's folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `batches` as one commit and returns the new version. Every batch must
    /// have exactly the table's column names, order and types, else
    /// [`Error::SchemaMismatch`] and nothing is written. Appending nothing is a no-op
    /// that returns the current version.
    pub async fn append(&mut self, batches: &[RecordBatch]) -> Result<u64> {
        for b in batches {
            check_same_schema(&self.schema, b.schema_ref())?;
        }
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(self.version());
        }
        let mut writer = RecordBatchWriter::for_table(&self.table)?;
        for b in batches {
            writer.write(b.clone()).await?;
        }
        let version = writer.flush_and_commit(&mut self.table).await?;
        Ok(version)
    }

    /// Every row of the loaded version, one or more batches per data file (file order is
    /// the log's; sort by a key if you need a fixed row order).
    pub async fn read(&self) -> Result<Vec<RecordBatch>> {
        let store = self.table.object_store();
        let files: Vec<deltalake::Path> =
            self.table.snapshot()?.log_data().into_iter().map(|f| f.object_store_path()).collect();
        let mut out = Vec::new();
        for file in files {
            let bytes = store.get(&file).await.map_err(deltalake::DeltaTableError::from)?.bytes().await;
            let bytes = bytes.map_err(deltalake::DeltaTableError::from)?;
            let shown = self.path.join(file.as_ref());
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .and_then(|b| b.build())
                .map_err(|source| Error::Parquet { path: shown.clone(), source })?;
            for batch in reader {
                let batch = batch.map_err(|e| Error::Parquet { path: shown.clone(), source: e.into() })?;
                out.push(self.conform(&batch)?);
            }
        }
        Ok(out)
    }

    /// Every row of `version` (time travel), without changing this handle's version.
    pub async fn read_version(&self, version: u64) -> Result<Vec<RecordBatch>> {
        Self::open_version(&self.path, version).await?.read().await
    }

    /// `batch` with the table's columns in the table's order and types (a column
    /// missing from an old file reads as nulls).
    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .map(|f| match batch.column_by_name(f.name()) {
                Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
                Some(c) => Ok(arrow::compute::cast(c, f.data_type())?),
                None => Ok(new_null_array(f.data_type(), batch.num_rows())),
            })
            .collect::<Result<_>>()?;
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?)
    }
}
