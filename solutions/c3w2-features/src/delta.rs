//! A Delta table by hand: the transaction log, its replay to any version (time
//! travel), and a writer that commits Parquet files to it.
//!
//! Spec: the [Delta Lake transaction protocol](https://github.com/delta-io/delta/blob/master/PROTOCOL.md).
//!
//! # What a Delta table is
//! A folder of Parquet data files plus a log, `_delta_log/`, of numbered
//! commits: `00000000000000000000.json`, `00000000000000000001.json`, … (the
//! version, zero-padded to 20 digits). Each commit is **newline-delimited
//! JSON**: one action per line, each an object with one key:
//!
//! | action | what it says |
//! |---|---|
//! | `protocol` | the reader/writer versions a client needs (`minReaderVersion`, `minWriterVersion`) |
//! | `metaData` | table id, name, `schemaString` (the schema as JSON), partition columns, configuration |
//! | `add` | a data file now belongs to the table: `path` (relative), `size`, `partitionValues`, `modificationTime`, `dataChange`, optional `stats` |
//! | `remove` | a data file no longer belongs to the table (it stays on disk for readers of old versions) |
//! | `commitInfo` | who did what, for humans; readers ignore it |
//!
//! **Version `v` of the table is the set of files added and not removed by
//! commits `0..=v`**, with the latest `metaData` as its schema. Nothing is ever
//! rewritten: a commit is one new file, created only if no file of that version
//! exists yet (put-if-absent). That single rule gives atomic commits (a reader
//! sees all of a commit or none of it), optimistic concurrency (of two writers
//! racing for version `v`, exactly one wins) and time travel (old versions are
//! still described by the log, and their files are still there).
//!
//! # What you write
//! - Task c3w2.delta-read: [`latest_version`] and [`snapshot`] (the log replay).
//!   [`read_table`] (given) reads a snapshot's Parquet files.
//! - Task c3w2.delta-write: [`commit`] (put-if-absent), [`create_table`],
//!   [`append`] and [`overwrite`].
//!
//! The hidden tests open your tables with delta-rs (`kernels::data::FeatureTable`)
//! at every version, and read tables delta-rs wrote with your [`snapshot`]: the
//! format is checked against the tool that owns it. Out of scope: partitioned
//! tables, checkpoints (`*.checkpoint.parquet`), deletion vectors, column mapping.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use kernels::data::{ReadOptions, WriteOptions, read_parquet, write_parquet};
use serde_json::{Value, json};

/// What can go wrong with a Delta table. Given.
#[derive(Debug)]
pub enum DeltaError {
    /// A file or folder could not be read or written.
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The folder holds no Delta table (no `_delta_log/` with a commit in it).
    NotATable(PathBuf),
    /// A version the log does not have (yet).
    NoSuchVersion {
        /// The version asked for.
        requested: u64,
        /// The newest version in the log.
        latest: u64,
    },
    /// The commit file of this version exists already: another writer committed
    /// first (or the table already exists, for version 0). Nothing was changed.
    VersionExists(u64),
    /// Batches whose schema is not the table's (names, order and types).
    SchemaMismatch(String),
    /// The table needs a reader or a feature this code does not implement.
    Unsupported(String),
    /// The log breaks the protocol: bad JSON, a missing commit, no `metaData`, …
    Corrupt(String),
    /// Parquet or Arrow failed (from `kernels::data`).
    Data(kernels::Error),
}

impl fmt::Display for DeltaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeltaError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DeltaError::NotATable(p) => write!(f, "{} is not a Delta table (no commits in _delta_log/)", p.display()),
            DeltaError::NoSuchVersion { requested, latest } => {
                write!(f, "version {requested} does not exist (the latest is {latest})")
            }
            DeltaError::VersionExists(v) => write!(f, "version {v} was already committed (concurrent writer?)"),
            DeltaError::SchemaMismatch(why) => write!(f, "schema mismatch: {why}"),
            DeltaError::Unsupported(why) => write!(f, "unsupported Delta table: {why}"),
            DeltaError::Corrupt(why) => write!(f, "corrupt Delta log: {why}"),
            DeltaError::Data(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DeltaError {}

impl From<kernels::Error> for DeltaError {
    fn from(e: kernels::Error) -> Self {
        DeltaError::Data(e)
    }
}

impl From<arrow::error::ArrowError> for DeltaError {
    fn from(e: arrow::error::ArrowError) -> Self {
        DeltaError::Data(e.into())
    }
}

/// `Result` of this module.
pub type DeltaResult<T> = std::result::Result<T, DeltaError>;

/// A live data file of a snapshot (from its `add` action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddFile {
    /// Path relative to the table folder, as in the `add` action.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// `numRecords` from the action's `stats`, if it has them.
    pub num_records: Option<u64>,
}

// ANCHOR: snapshot_struct
/// The state of a table at one version: what a reader needs to read it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The version this snapshot describes.
    pub version: u64,
    /// The table name from the latest `metaData` (`None` if it has none or null).
    pub name: Option<String>,
    /// The table schema, from the latest `metaData`'s `schemaString`.
    pub schema: SchemaRef,
    /// The live data files (the protocol gives them no order; the tests sort them).
    pub files: Vec<AddFile>,
}
// ANCHOR_END: snapshot_struct

/// `<table>/_delta_log`. Given.
pub fn log_dir(table: &Path) -> PathBuf {
    table.join("_delta_log")
}

/// The commit file of `version`: `<table>/_delta_log/<version, 20 digits>.json`. Given.
pub fn commit_path(table: &Path, version: u64) -> PathBuf {
    log_dir(table).join(format!("{version:020}.json"))
}

/// The version a log file name stands for: `Some(7)` for
/// `00000000000000000007.json`, `None` for anything else (checkpoints, `.crc`
/// files, `_last_checkpoint`, temporary files). Given.
pub fn commit_version(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(".json")?;
    if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) { digits.parse().ok() } else { None }
}

/// The actions of one commit, one JSON object per non-empty line. Given.
///
/// Errors: [`DeltaError::Io`] (a missing file is `Io` with `NotFound`),
/// [`DeltaError::Corrupt`] for a line that is not a JSON object.
pub fn read_commit(table: &Path, version: u64) -> DeltaResult<Vec<Value>> {
    let path = commit_path(table, version);
    let text = std::fs::read_to_string(&path).map_err(|source| DeltaError::Io { path: path.clone(), source })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => Ok(v),
            _ => Err(DeltaError::Corrupt(format!("{} line {}: not a JSON action", path.display(), i + 1))),
        })
        .collect()
}

/// Milliseconds since the Unix epoch (Delta's `createdTime`, `modificationTime`, …). Given.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A fresh random-looking UUID string (version 4 layout), for table ids and
/// data file names. Given.
pub fn new_uuid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut state = (nanos as u64) ^ ((std::process::id() as u64) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut next = || {
        // SplitMix64.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (a, b) = (next(), next());
    let b = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000; // variant 10
    let a = (a & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000; // version 4
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        a & 0xFFFF,
        b >> 48,
        b & 0xFFFF_FFFF_FFFF
    )
}

/// The Delta type name of an Arrow type, for the types this lab stores. Given.
fn delta_type(dt: &DataType) -> Option<&'static str> {
    Some(match dt {
        DataType::Int64 => "long",
        DataType::Int32 => "integer",
        DataType::Int16 => "short",
        DataType::Int8 => "byte",
        DataType::Float64 => "double",
        DataType::Float32 => "float",
        DataType::Boolean => "boolean",
        DataType::Utf8 => "string",
        DataType::Date32 => "date",
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => "timestamp",
        _ => return None,
    })
}

/// The Arrow type of a Delta primitive type name. Given.
fn arrow_type(name: &str) -> Option<DataType> {
    Some(match name {
        "long" => DataType::Int64,
        "integer" => DataType::Int32,
        "short" => DataType::Int16,
        "byte" => DataType::Int8,
        "double" => DataType::Float64,
        "float" => DataType::Float32,
        "boolean" => DataType::Boolean,
        "string" => DataType::Utf8,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ => return None,
    })
}

/// `schemaString` for `schema`: `{"type":"struct","fields":[{"name":…,"type":"long","nullable":true,"metadata":{}},…]}`. Given.
///
/// Supported Arrow types: `Int64`, `Int32`, `Int16`, `Int8`, `Float64`,
/// `Float32`, `Boolean`, `Utf8`, `Date32` and `Timestamp(Microsecond, "UTC")`
/// (Delta's `timestamp`); anything else is [`DeltaError::SchemaMismatch`].
pub fn delta_schema_string(schema: &Schema) -> DeltaResult<String> {
    let fields: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = delta_type(f.data_type()).ok_or_else(|| {
                DeltaError::SchemaMismatch(format!(
                    "column {:?} has type {}, which this writer cannot store in Delta",
                    f.name(),
                    f.data_type()
                ))
            })?;
            Ok(json!({ "name": f.name(), "type": t, "nullable": f.is_nullable(), "metadata": {} }))
        })
        .collect::<DeltaResult<_>>()?;
    Ok(json!({ "type": "struct", "fields": fields }).to_string())
}

/// The Arrow schema of a `schemaString` (the reverse of [`delta_schema_string`]). Given.
///
/// Errors: [`DeltaError::Corrupt`] for malformed JSON, [`DeltaError::Unsupported`]
/// for a type outside the supported list (nested types, decimals, …).
pub fn arrow_schema_from_delta(schema_string: &str) -> DeltaResult<Schema> {
    let v: Value = serde_json::from_str(schema_string)
        .map_err(|e| DeltaError::Corrupt(format!("schemaString is not JSON: {e}")))?;
    let fields = v["fields"].as_array().ok_or_else(|| DeltaError::Corrupt("schemaString has no fields".into()))?;
    let fields = fields
        .iter()
        .map(|f| {
            let name = f["name"].as_str().ok_or_else(|| DeltaError::Corrupt("a schema field has no name".into()))?;
            let dt = f["type"]
                .as_str()
                .and_then(arrow_type)
                .ok_or_else(|| DeltaError::Unsupported(format!("column {name:?} has Delta type {}", f["type"])))?;
            Ok(Field::new(name, dt, f["nullable"].as_bool().unwrap_or(true)))
        })
        .collect::<DeltaResult<Vec<Field>>>()?;
    Ok(Schema::new(fields))
}

/// [`DeltaError::SchemaMismatch`] unless `got` has exactly the column names,
/// order and types of `table` (nullability is not compared). Given.
pub fn check_schema(table: &Schema, got: &Schema) -> DeltaResult<()> {
    let show = |s: &Schema| {
        s.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
    };
    let same = table.fields().len() == got.fields().len()
        && table.fields().iter().zip(got.fields()).all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if same {
        Ok(())
    } else {
        Err(DeltaError::SchemaMismatch(format!("table [{}], given [{}]", show(table), show(got))))
    }
}

// ANCHOR: latest_version
/// Task c3w2.delta-read (10 points, with [`snapshot`]): the newest version in
/// the table's log.
///
/// List `_delta_log/` and take the largest version among the commit files
/// ([`commit_version`] recognises their names and ignores every other file).
/// A folder without `_delta_log/`, or a log without any commit file, is
/// [`DeltaError::NotATable`].
pub fn latest_version(table: &Path) -> DeltaResult<u64> {
    // BEGIN SOLUTION c3w2.delta-read
    let dir = log_dir(table);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(DeltaError::NotATable(table.to_path_buf())),
        Err(source) => return Err(DeltaError::Io { path: dir, source }),
    };
    let mut latest = None;
    for entry in entries {
        let entry = entry.map_err(|source| DeltaError::Io { path: dir.clone(), source })?;
        if let Some(v) = entry.file_name().to_str().and_then(commit_version) {
            latest = latest.max(Some(v));
        }
    }
    latest.ok_or_else(|| DeltaError::NotATable(table.to_path_buf()))
    // END SOLUTION
}
// ANCHOR_END: latest_version

// ANCHOR: snapshot
/// Task c3w2.delta-read (with [`latest_version`]): the table as it was at
/// `version` (`None`: the latest) — **time travel** by log replay.
///
/// Replay commits `0, 1, …, version` in order ([`read_commit`]), starting from
/// no files and no schema:
///
/// - `protocol`: a `minReaderVersion` above 1 needs features this reader does
///   not have (column mapping, deletion vectors, …): [`DeltaError::Unsupported`].
/// - `metaData`: replaces the schema ([`arrow_schema_from_delta`] of its
///   `schemaString`) and the name.
/// - `add`: the file at `path` becomes live (an `add` of a live path replaces
///   its entry in place); `num_records` comes from `stats`, itself a JSON
///   **string** to parse (`{"numRecords": 42, …}`), when present.
/// - `remove`: the file at `path` stops being live.
/// - anything else (`commitInfo`, `txn`, `cdc`, …): ignored.
///
/// Errors: [`DeltaError::NotATable`] (no commits), [`DeltaError::NoSuchVersion`]
/// (`version` beyond the latest), [`DeltaError::Corrupt`] (a missing commit
/// between 0 and `version`, or no `metaData` by then), and the errors of
/// [`read_commit`] and [`arrow_schema_from_delta`].
pub fn snapshot(table: &Path, version: Option<u64>) -> DeltaResult<Snapshot> {
    // BEGIN SOLUTION c3w2.delta-read
    let latest = latest_version(table)?;
    let version = version.unwrap_or(latest);
    if version > latest {
        return Err(DeltaError::NoSuchVersion { requested: version, latest });
    }
    let mut schema: Option<Schema> = None;
    let mut name = None;
    let mut files: Vec<Option<AddFile>> = Vec::new();
    let mut live: HashMap<String, usize> = HashMap::new();
    for v in 0..=version {
        let actions = match read_commit(table, v) {
            Err(DeltaError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(DeltaError::Corrupt(format!(
                    "commit {v} is missing (the log must start at 0, without gaps)"
                )));
            }
            other => other?,
        };
        for action in actions {
            if let Some(p) = action.get("protocol") {
                let reader = p["minReaderVersion"].as_u64().unwrap_or(1);
                if reader > 1 {
                    return Err(DeltaError::Unsupported(format!(
                        "minReaderVersion {reader} (this reader implements 1)"
                    )));
                }
            } else if let Some(m) = action.get("metaData") {
                let s = m["schemaString"]
                    .as_str()
                    .ok_or_else(|| DeltaError::Corrupt(format!("commit {v}: metaData without schemaString")))?;
                schema = Some(arrow_schema_from_delta(s)?);
                name = m["name"].as_str().map(str::to_string);
            } else if let Some(a) = action.get("add") {
                let path =
                    a["path"].as_str().ok_or_else(|| DeltaError::Corrupt(format!("commit {v}: add without path")))?;
                let num_records = a["stats"]
                    .as_str()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .and_then(|s| s["numRecords"].as_u64());
                let file = AddFile { path: path.to_string(), size: a["size"].as_u64().unwrap_or(0), num_records };
                match live.get(path) {
                    Some(&i) => files[i] = Some(file),
                    None => {
                        live.insert(path.to_string(), files.len());
                        files.push(Some(file));
                    }
                }
            } else if let Some(r) = action.get("remove") {
                let path = r["path"]
                    .as_str()
                    .ok_or_else(|| DeltaError::Corrupt(format!("commit {v}: remove without path")))?;
                if let Some(i) = live.remove(path) {
                    files[i] = None;
                }
            }
        }
    }
    let schema = schema.ok_or_else(|| DeltaError::Corrupt(format!("no metaData in commits 0..={version}")))?;
    Ok(Snapshot { version, name, schema: Arc::new(schema), files: files.into_iter().flatten().collect() })
    // END SOLUTION
}
// ANCHOR_END: snapshot

/// Every row of the table at `version` (`None`: the latest), one or more batches
/// per live data file, in file order, each with exactly the snapshot's schema
/// (a column missing from an older file reads as nulls). Given: your
/// [`snapshot`] plus `kernels::data::read_parquet`.
pub fn read_table(table: &Path, version: Option<u64>) -> DeltaResult<Vec<RecordBatch>> {
    let snap = snapshot(table, version)?;
    let mut out = Vec::new();
    for file in &snap.files {
        let read = read_parquet(table.join(&file.path), &ReadOptions::default())?;
        for batch in read.batches {
            let columns: Vec<ArrayRef> = snap
                .schema
                .fields()
                .iter()
                .map(|f| match batch.column_by_name(f.name()) {
                    Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
                    Some(c) => arrow::compute::cast(c, f.data_type()),
                    None => Ok(new_null_array(f.data_type(), batch.num_rows())),
                })
                .collect::<Result<_, _>>()?;
            let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            out.push(RecordBatch::try_new_with_options(snap.schema.clone(), columns, &options)?);
        }
    }
    Ok(out)
}

// ANCHOR: commit
/// Task c3w2.delta-write (10 points, with [`create_table`], [`append`] and
/// [`overwrite`]): writes `actions` as commit `version`, **only if that
/// version does not exist yet**.
///
/// The file is newline-delimited JSON: each action `to_string()`, one per line.
/// Put-if-absent is the whole concurrency control of Delta: if the commit file
/// exists, return [`DeltaError::VersionExists`] and change nothing. On a local
/// disk, write the text to a temporary file in `_delta_log/` first, then
/// `std::fs::hard_link` it to the commit path (fails with `AlreadyExists` if
/// another writer got there first) and delete the temporary file: readers never
/// see a half-written commit. (`OpenOptions::create_new` alone is also
/// put-if-absent, but a reader could see the file before it is complete.)
/// Creates `_delta_log/` if needed.
pub fn commit(table: &Path, version: u64, actions: &[Value]) -> DeltaResult<()> {
    // BEGIN SOLUTION c3w2.delta-write
    let dir = log_dir(table);
    std::fs::create_dir_all(&dir).map_err(|source| DeltaError::Io { path: dir.clone(), source })?;
    let mut text = String::new();
    for a in actions {
        text.push_str(&a.to_string());
        text.push('\n');
    }
    let tmp = dir.join(format!(".tmp-{}.json", new_uuid()));
    std::fs::write(&tmp, text).map_err(|source| DeltaError::Io { path: tmp.clone(), source })?;
    let target = commit_path(table, version);
    let linked = std::fs::hard_link(&tmp, &target);
    std::fs::remove_file(&tmp).ok();
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(DeltaError::VersionExists(version)),
        Err(source) => Err(DeltaError::Io { path: target, source }),
    }
    // END SOLUTION
}
// ANCHOR_END: commit

// ANCHOR: create_table
/// Task c3w2.delta-write: creates an empty table (version 0) at `table`.
///
/// Commit 0 holds, one per line:
///
/// ```text
/// {"protocol":{"minReaderVersion":1,"minWriterVersion":2}}
/// {"metaData":{"id":<new_uuid()>,"name":<name>,"format":{"provider":"parquet","options":{}},
///              "schemaString":<delta_schema_string(schema)>,"partitionColumns":[],
///              "configuration":{},"createdTime":<now_millis()>}}
/// ```
///
/// (a `commitInfo` line is welcome, not required). Creates the folder. Errors:
/// [`DeltaError::SchemaMismatch`] for a type Delta cannot store here (from
/// [`delta_schema_string`], before anything is written),
/// [`DeltaError::VersionExists`]`(0)` if a table is already there.
pub fn create_table(table: &Path, name: &str, schema: &Schema) -> DeltaResult<()> {
    // BEGIN SOLUTION c3w2.delta-write
    let schema_string = delta_schema_string(schema)?;
    std::fs::create_dir_all(table).map_err(|source| DeltaError::Io { path: table.to_path_buf(), source })?;
    let now = now_millis();
    let actions = [
        json!({ "commitInfo": { "timestamp": now, "operation": "CREATE TABLE", "engineInfo": "c3w2-features" } }),
        json!({ "protocol": { "minReaderVersion": 1, "minWriterVersion": 2 } }),
        json!({ "metaData": {
            "id": new_uuid(),
            "name": name,
            "format": { "provider": "parquet", "options": {} },
            "schemaString": schema_string,
            "partitionColumns": [],
            "configuration": {},
            "createdTime": now,
        } }),
    ];
    commit(table, 0, &actions)
    // END SOLUTION
}
// ANCHOR_END: create_table

// ANCHOR: append
/// Task c3w2.delta-write: appends `batches` as **one** new data file in **one**
/// commit, and returns the new version.
///
/// 1. `snapshot(table, None)` gives the current version `v` and the schema;
///    every batch must match it ([`check_schema`]) before anything is written.
/// 2. If all batches are empty, commit nothing and return `v`.
/// 3. Write the rows to `<table>/part-<v+1, 5 digits>-<new_uuid()>.parquet` with
///    `kernels::data::write_parquet` (default `WriteOptions`); its size is
///    `std::fs::metadata(..).len()`.
/// 4. Commit `v + 1` with one `add` action:
///    `{"add":{"path":<file name>,"partitionValues":{},"size":<bytes>,
///    "modificationTime":<now_millis()>,"dataChange":true,
///    "stats":"{\"numRecords\":<rows>}"}}` — note that `stats` is a JSON
///    **string**, not an object (the hidden tests check `numRecords`).
///
/// A concurrent writer that took `v + 1` first makes [`commit`] fail with
/// [`DeltaError::VersionExists`]; return that error (the data file stays behind,
/// unreferenced, which is harmless: no version lists it).
pub fn append(table: &Path, batches: &[RecordBatch]) -> DeltaResult<u64> {
    // BEGIN SOLUTION c3w2.delta-write
    let snap = snapshot(table, None)?;
    for b in batches {
        check_schema(&snap.schema, b.schema_ref())?;
    }
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(snap.version);
    }
    let version = snap.version + 1;
    let add = write_data_file(table, &snap.schema, version, batches)?;
    commit(
        table,
        version,
        &[
            json!({ "commitInfo": { "timestamp": now_millis(), "operation": "WRITE",
                    "operationParameters": { "mode": "Append" }, "engineInfo": "c3w2-features" } }),
            add,
        ],
    )?;
    Ok(version)
    // END SOLUTION
}
// ANCHOR_END: append

// BEGIN SOLUTION c3w2.delta-write delete
/// Writes `batches` to a new Parquet file of the table and returns its `add` action.
fn write_data_file(table: &Path, schema: &Schema, version: u64, batches: &[RecordBatch]) -> DeltaResult<Value> {
    let name = format!("part-{version:05}-{}.parquet", new_uuid());
    let path = table.join(&name);
    // The batches carry the table's names and types; write them under the table's schema.
    let schema: SchemaRef = Arc::new(schema.clone());
    let batches: Vec<RecordBatch> =
        batches.iter().map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec())).collect::<Result<_, _>>()?;
    write_parquet(&path, &schema, &batches, &WriteOptions::default())?;
    let size = std::fs::metadata(&path).map_err(|source| DeltaError::Io { path: path.clone(), source })?.len();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    Ok(json!({ "add": {
        "path": name,
        "partitionValues": {},
        "size": size,
        "modificationTime": now_millis(),
        "dataChange": true,
        "stats": json!({ "numRecords": rows }).to_string(),
    } }))
}
// END SOLUTION

// ANCHOR: overwrite
/// Task c3w2.delta-write: replaces the table's contents with `batches` in one
/// commit, and returns the new version.
///
/// Like [`append`] (same schema check, same data file and `add`), but the commit
/// also holds one `remove` action for **every** live file of the current
/// snapshot: `{"remove":{"path":…,"deletionTimestamp":<now_millis()>,
/// "dataChange":true,"extendedFileMetadata":true,"partitionValues":{},"size":…}}`.
/// The removed files stay on disk: older versions still list them (time travel).
/// With no rows at all, the commit holds only the removes (the table becomes
/// empty); it is still a new version.
pub fn overwrite(table: &Path, batches: &[RecordBatch]) -> DeltaResult<u64> {
    // BEGIN SOLUTION c3w2.delta-write
    let snap = snapshot(table, None)?;
    for b in batches {
        check_schema(&snap.schema, b.schema_ref())?;
    }
    let version = snap.version + 1;
    let now = now_millis();
    let mut actions = vec![json!({ "commitInfo": { "timestamp": now, "operation": "WRITE",
        "operationParameters": { "mode": "Overwrite" }, "engineInfo": "c3w2-features" } })];
    for f in &snap.files {
        actions.push(json!({ "remove": {
            "path": f.path,
            "deletionTimestamp": now,
            "dataChange": true,
            "extendedFileMetadata": true,
            "partitionValues": {},
            "size": f.size,
        } }));
    }
    if batches.iter().any(|b| b.num_rows() > 0) {
        actions.push(write_data_file(table, &snap.schema, version, batches)?);
    }
    commit(table, version, &actions)?;
    Ok(version)
    // END SOLUTION
}
// ANCHOR_END: overwrite
