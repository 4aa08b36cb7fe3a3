//! Batch scoring (feature `score`): a `kernels::ml` model over a Parquet file, a folder of Parquet files
//! or a Delta table, streamed in row groups, scored on rayon's threads and written as a partitioned
//! Parquet dataset or appended to a Delta table, resumable after a crash with no row lost or doubled.
//!
//! Specs: the [Apache Parquet format](https://parquet.apache.org/docs/file-format/) (row groups are the
//! unit of reading), the [Delta Lake transaction protocol](https://github.com/delta-io/delta/blob/master/PROTOCOL.md)
//! (`add` actions with `partitionValues`, and the `txn` action, "application transaction identifiers",
//! for idempotent writes), Hive-style `part=N/` folders (how Spark and pyarrow discover partitions), and
//! Blumofe & Leiserson, "Scheduling Multithreaded Computations by Work Stealing", JACM 46 (1999) (the
//! scheduler rayon implements).
//!
//! The input's row groups are cut into **parts** of about [`ScoreConfig::part_rows`] rows, in a fixed
//! order (files sorted by path, row groups in file order). Part `N` becomes the output partition
//! `part=N`: one Parquet file holding `row_id` (the row's index in that order), the key column if one is
//! asked for, and `score` (or `score_0`, `score_1`, … for a multi-output model). A part is the unit of
//! work and of commit:
//! - Parquet output: a part is written to a hidden temporary file and renamed into place; the rename is
//!   its commit (a file is either absent or whole).
//! - Delta output: finished parts are committed in part order, each commit carrying a `txn` action
//!   (`appId` = this run's id, `version` = the last part in it); a restart reads that version back, and
//!   the data files the log holds, and skips what they cover (Spark's `txnAppId`/`txnVersion`
//!   idempotent writes).
//!
//! [`ScoreConfig::parts`] restricts a run to a range of parts, so several workers (processes, machines)
//! can score disjoint ranges into the same output with the same model file.
//!
//! A manifest `_sovereign_score.json` in the output records the model's digest, the input's fingerprint
//! (and Delta version) and the part map, so a restart resumes only the same job, and another worker (a
//! Spark task, another machine) can score any part with the same model file.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::ops::{ControlFlow, Range};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{ArrayRef, Float32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, StructType, Transaction};
use deltalake::logstore::LogStoreRef;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::state::DeltaTableState;
use deltalake::{DeltaTable, DeltaTableBuilder};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::ZstdLevel;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::ml::Matrix;
use crate::serve_model::model::{self, LoadedModel, ModelSource, Predictor};
use crate::{Error, Result};

/// The manifest a scoring output holds (ignored by Spark, pyarrow and Delta readers: it starts with `_`).
pub const MANIFEST: &str = "_sovereign_score.json";

/// How the scores are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// A folder of Hive-style partitions `part=N/part-N.parquet`, with `_SUCCESS` when complete.
    Parquet,
    /// A Delta table partitioned by `part`, one version per commit of finished parts.
    Delta,
}

/// What to score, with what, and where to write it.
#[derive(Debug, Clone)]
pub struct ScoreConfig {
    /// The model (a registry version verified against a keyring, or a model file).
    pub model: ModelSource,
    /// A Parquet file, a folder of Parquet files, or a Delta table (a folder with `_delta_log/`).
    pub input: PathBuf,
    /// The output folder.
    pub output: PathBuf,
    /// Parquet dataset or Delta table.
    pub format: OutputFormat,
    /// An input column copied next to the scores (zero-copy), e.g. a transaction id.
    pub key: Option<String>,
    /// Rows per part at least (whole row groups; the last part of a file may be smaller).
    pub part_rows: usize,
    /// Rows decoded and scored at a time (bounds memory with the row-group size).
    pub batch_rows: usize,
    /// Parts scored at once (each streams its batches; the scoring inside uses rayon's pool). 0: one per
    /// rayon thread.
    pub workers: usize,
    /// Replace an output written by another model, input or configuration (or not by this tool at all).
    pub overwrite: bool,
    /// Score only the parts in this range (`None`: all): other workers (processes, machines, Spark tasks)
    /// score the other ranges into the same output with the same model file.
    pub parts: Option<Range<usize>>,
}

impl ScoreConfig {
    /// A configuration with the defaults: Parquet output, no key, 65,536-row parts, 8,192-row batches.
    pub fn new(model: ModelSource, input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> ScoreConfig {
        ScoreConfig {
            model,
            input: input.into(),
            output: output.into(),
            format: OutputFormat::Parquet,
            key: None,
            part_rows: 65_536,
            batch_rows: 8_192,
            workers: 0,
            overwrite: false,
            parts: None,
        }
    }
}

/// Where a scoring run is, passed to the progress callback after every scored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreProgress {
    /// Rows scored, counting those a previous run committed.
    pub rows_done: u64,
    /// Rows in the input.
    pub rows_total: u64,
    /// Parts committed, counting those a previous run committed.
    pub parts_done: usize,
    /// Parts in the input.
    pub parts_total: usize,
}

/// What a scoring run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreReport {
    /// The model's name.
    pub model: String,
    /// BLAKE3 of the model file.
    pub model_digest: String,
    /// Rows in the parts this run covers (the whole input unless [`ScoreConfig::parts`] is set).
    pub rows_total: u64,
    /// Rows scored by this run.
    pub rows_scored: u64,
    /// Rows skipped because a previous run had committed them.
    pub rows_resumed: u64,
    /// Parts this run covers.
    pub parts_total: usize,
    /// Parts committed by a previous run.
    pub parts_resumed: usize,
    /// Whether every part is committed (false when the callback stopped the run).
    pub complete: bool,
    /// The score columns written.
    pub score_columns: Vec<String>,
    /// The Delta table's version after the run (Delta output).
    pub delta_version: Option<u64>,
    /// Wall time of this run, seconds.
    pub seconds: f64,
}

/// A slice of the input scored and committed as one: consecutive row groups of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// The part's number (its output partition `part=N`).
    pub part: usize,
    /// The input file, relative to the input (empty for a single-file input).
    pub file: String,
    /// Its row groups.
    pub row_groups: Vec<usize>,
    /// `row_id` of its first row.
    pub first_row: u64,
    /// Its rows.
    pub rows: u64,
}

/// The output's record of the job (`_sovereign_score.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// This job's id (the Delta `txn` appId): a digest of the fields below.
    pub run_id: String,
    /// The model as named by its source.
    pub model: String,
    /// BLAKE3 of the model file.
    pub model_digest: String,
    /// The input folder or file.
    pub input: PathBuf,
    /// A digest of the input's files, sizes, schemas and row groups.
    pub input_fingerprint: String,
    /// The Delta version read (Delta input).
    pub input_version: Option<u64>,
    /// The output format.
    pub format: OutputFormat,
    /// The key column.
    pub key: Option<String>,
    /// The score columns.
    pub score_columns: Vec<String>,
    /// The part map.
    pub parts: Vec<Part>,
}

// ------------------------------------------------------------------ input

/// The input's files, parts and schema.
struct Input {
    /// Root the part files are relative to.
    root: PathBuf,
    /// The Parquet files, in order.
    files: Vec<PathBuf>,
    schema: SchemaRef,
    parts: Vec<Part>,
    fingerprint: String,
    version: Option<u64>,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::ScoreIo { path: path.to_path_buf(), source }
}

fn pq_err(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> Error + '_ {
    move |source| Error::Parquet { path: path.to_path_buf(), source }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir().map_err(io_err(path))?.join(path))
    }
}

/// The absolute path of a Delta table as a string (for `deltalake::ensure_table_uri`).
fn table_uri(path: &Path) -> Result<String> {
    let abs = absolute(path)?;
    abs.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidParameter(format!("path {} is not UTF-8", path.display())))
}

/// Every `*.parquet` under `dir` (names starting with `_` or `.` skipped, as Spark and pyarrow do), sorted.
fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            parquet_files(&path, out)?;
        } else if name.ends_with(".parquet") {
            out.push(path);
        }
    }
    Ok(())
}

async fn delta_files(path: &Path, version: Option<u64>) -> Result<(Vec<PathBuf>, u64)> {
    let mut builder = DeltaTableBuilder::from_url(deltalake::ensure_table_uri(table_uri(path)?)?)?;
    if let Some(v) = version {
        builder = builder.with_version(v);
    }
    let table = builder.load().await?;
    let snapshot = table.snapshot()?;
    let mut files: Vec<PathBuf> =
        snapshot.log_data().into_iter().map(|f| path.join(f.object_store_path().as_ref())).collect();
    files.sort();
    Ok((files, snapshot.version() as u64))
}

/// Lists the input (at `version` for a Delta table, else its latest) and cuts it into parts.
fn open_input(config: &ScoreConfig, version: Option<u64>, runtime: &tokio::runtime::Runtime) -> Result<Input> {
    let input = &config.input;
    let (root, files, version) = if input.join("_delta_log").is_dir() {
        let (files, v) = runtime.block_on(delta_files(input, version))?;
        (input.clone(), files, Some(v))
    } else if input.is_dir() {
        let mut files = Vec::new();
        parquet_files(input, &mut files)?;
        files.sort();
        (input.clone(), files, None)
    } else if input.is_file() {
        (input.parent().map(Path::to_path_buf).unwrap_or_default(), vec![input.clone()], None)
    } else {
        return Err(Error::ScoreInput { path: input.clone(), reason: "no such file or folder".into() });
    };
    if files.is_empty() {
        return Err(Error::ScoreInput { path: input.clone(), reason: "no Parquet files in it".into() });
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(format!("{version:?}\n").as_bytes());
    let (mut parts, mut schema, mut first_row) = (Vec::new(), None::<SchemaRef>, 0u64);
    let part_rows = config.part_rows.max(1) as u64;
    for path in &files {
        let file = File::open(path).map_err(io_err(path))?;
        let size = file.metadata().map_err(io_err(path))?.len();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq_err(path))?;
        let rel = path.strip_prefix(&root).unwrap_or(path).to_string_lossy().into_owned();
        let this = builder.schema().clone();
        match &schema {
            None => schema = Some(this.clone()),
            Some(s) => {
                for f in s.fields() {
                    let same = this.field_with_name(f.name()).is_ok_and(|g| g.data_type() == f.data_type());
                    if !same {
                        return Err(Error::ScoreInput {
                            path: path.clone(),
                            reason: format!("column {:?} differs from the first file's ({})", f.name(), f.data_type()),
                        });
                    }
                }
            }
        }
        hasher.update(format!("{rel}\n{size}\n{this:?}\n").as_bytes());
        let (mut groups, mut rows) = (Vec::new(), 0u64);
        for (g, rg) in builder.metadata().row_groups().iter().enumerate() {
            let n = rg.num_rows().max(0) as u64;
            hasher.update(&n.to_le_bytes());
            groups.push(g);
            rows += n;
            if rows >= part_rows {
                parts.push(Part { part: parts.len(), file: rel.clone(), row_groups: groups, first_row, rows });
                first_row += rows;
                (groups, rows) = (Vec::new(), 0);
            }
        }
        if rows > 0 {
            parts.push(Part { part: parts.len(), file: rel.clone(), row_groups: groups, first_row, rows });
            first_row += rows;
        }
    }
    let schema = schema.unwrap_or_else(|| Arc::new(Schema::empty()));
    let fingerprint = hasher.finalize().to_hex().to_string();
    Ok(Input { root, files, schema, parts, fingerprint, version })
}

/// Checks the input's schema against the model and the key; returns the columns to read, in file order.
fn check_columns(config: &ScoreConfig, model: &LoadedModel, input: &Input) -> Result<Vec<usize>> {
    let schema = &input.schema;
    let mut read = Vec::new();
    for name in &model.feature_names {
        let (i, field) = schema.column_with_name(name).ok_or_else(|| crate::data::missing(name, schema))?;
        let t = field.data_type();
        if !(t.is_numeric() || matches!(t, DataType::Boolean | DataType::Null)) {
            return Err(crate::data::wrong_type(name, "a numeric or boolean feature column", t));
        }
        read.push(i);
    }
    if let Some(key) = &config.key {
        if ["row_id", "part"].contains(&key.as_str()) || key.starts_with("score") {
            return Err(Error::InvalidParameter(format!(
                "key column {key:?} would clash with the output's row_id, part or score columns"
            )));
        }
        let (i, _) = schema.column_with_name(key).ok_or_else(|| crate::data::missing(key, schema))?;
        read.push(i);
    }
    read.sort_unstable();
    read.dedup();
    Ok(read)
}

// ------------------------------------------------------------------ output

fn score_columns(model: &LoadedModel) -> Vec<String> {
    if model.n_outputs == 1 {
        vec!["score".into()]
    } else {
        (0..model.n_outputs).map(|j| format!("score_{j}")).collect()
    }
}

/// The schema of the part files: `row_id`, the key, the scores (the partition column `part` is in the path).
fn file_schema(config: &ScoreConfig, input: &Input, scores: &[String]) -> SchemaRef {
    let mut fields = vec![Field::new("row_id", DataType::Int64, false)];
    if let Some(key) = &config.key
        && let Ok(f) = input.schema.field_with_name(key)
    {
        fields.push(f.clone());
    }
    fields.extend(scores.iter().map(|s| Field::new(s, DataType::Float32, false)));
    Arc::new(Schema::new(fields))
}

fn part_path(part: usize, run_id: &str, format: OutputFormat) -> String {
    match format {
        OutputFormat::Parquet => format!("part={part}/part-{part:05}.parquet"),
        OutputFormat::Delta => format!("part={part}/part-{part:05}-{}.parquet", &run_id[..16]),
    }
}

fn read_manifest(output: &Path) -> Result<Option<Manifest>> {
    let path = output.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::ScoreOutputExists {
            path: output.to_path_buf(),
            what: format!("an unreadable {MANIFEST} ({e})"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::ScoreIo { path, source: e }),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename (the file is whole or absent).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().unwrap_or_default().to_string_lossy()));
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// The Delta side of a run: the table state, its log store and the run's `txn` appId.
struct DeltaSink {
    state: DeltaTableState,
    log_store: LogStoreRef,
    app_id: String,
    version: u64,
}

/// Opens (or creates) the output table; returns it with the high-water part of this appId's `txn` and the
/// data files its log holds.
async fn open_or_create_delta(
    output: &Path,
    schema: &Schema,
    app_id: &str,
) -> Result<(DeltaSink, Option<i64>, HashSet<String>)> {
    let url = deltalake::ensure_table_uri(table_uri(output)?)?;
    let table = if output.join("_delta_log").is_dir() {
        DeltaTableBuilder::from_url(url)?.load().await?
    } else {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("part", DataType::Int64, true));
        let delta = StructType::try_from_arrow(&Schema::new(fields))?;
        DeltaTable::try_from_url(url)
            .await?
            .create()
            .with_table_name("scores")
            .with_columns(delta.fields().cloned())
            .with_partition_columns(["part"])
            .await?
    };
    let state = table.snapshot()?.clone();
    let log_store = table.log_store();
    let done = state.transaction_version(log_store.as_ref(), app_id).await?;
    let files = state.log_data().into_iter().map(|f| f.object_store_path().as_ref().replace("%3D", "=")).collect();
    let version = state.version() as u64;
    Ok((DeltaSink { state, log_store, app_id: app_id.to_string(), version }, done, files))
}

// ANCHOR: delta_commit
impl DeltaSink {
    /// Commits finished part files (consecutive parts, in order) as one Delta version whose `txn` action
    /// records the last part: after a crash, `transaction_version(app_id)` says where to resume.
    async fn commit(&mut self, output: &Path, written: &[(usize, String, u64)]) -> Result<()> {
        let mut actions = Vec::with_capacity(written.len());
        for (part, rel, rows) in written {
            let meta = std::fs::metadata(output.join(rel)).map_err(io_err(&output.join(rel)))?;
            let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            actions.push(Action::Add(Add {
                path: rel.clone(),
                partition_values: [("part".to_string(), Some(part.to_string()))].into_iter().collect(),
                size: meta.len() as i64,
                modification_time: modified.map_or(0, |d| d.as_millis() as i64),
                data_change: true,
                stats: Some(format!("{{\"numRecords\":{rows}}}")),
                ..Default::default()
            }));
        }
        let last = written.last().map_or(0, |w| w.0) as i64;
        let operation =
            DeltaOperation::Write { mode: SaveMode::Append, partition_by: Some(vec!["part".into()]), predicate: None };
        let properties = CommitProperties::default().with_application_transaction(Transaction::new(&self.app_id, last));
        let finalized = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(&self.state), self.log_store.clone(), operation)
            .await?;
        self.version = finalized.version() as u64;
        self.state = finalized.snapshot();
        Ok(())
    }
}
// ANCHOR_END: delta_commit

// ------------------------------------------------------------------ scoring

/// The model's scores of `x`, row-major `rows × n_outputs`.
fn predict(model: &LoadedModel, x: &Matrix) -> Result<Vec<f32>> {
    match &model.predictor {
        Predictor::Flat(f) => f.predict_batch_all(x),
        Predictor::Linear(m) => m.predict(x),
        Predictor::Logistic(m) => m.predict_proba(x),
        Predictor::KMeans(m) => Ok(m.predict(x)?.into_iter().map(|c| c as f32).collect()),
    }
}

/// What every worker shares.
struct Job<'a> {
    config: &'a ScoreConfig,
    model: &'a LoadedModel,
    input: &'a Input,
    run_id: &'a str,
    columns: &'a [usize],
    schema: SchemaRef,
    pending: Vec<Part>,
    next: AtomicUsize,
    stop: AtomicBool,
    state: Mutex<State<'a>>,
}

/// What the workers update under the lock: progress, the first error, and (Delta) the commit queue.
struct State<'a> {
    progress: &'a mut (dyn FnMut(&ScoreProgress) -> ControlFlow<()> + Send),
    at: ScoreProgress,
    error: Option<Error>,
    delta: Option<(DeltaSink, &'a tokio::runtime::Runtime)>,
    /// Delta: finished parts waiting for the ones before them, by index in `pending`.
    ready: BTreeMap<usize, (usize, String, u64)>,
    /// Delta: the index in `pending` of the next part to commit.
    next_commit: usize,
}

impl Job<'_> {
    fn fail(&self, e: Error) {
        self.stop.store(true, Ordering::SeqCst);
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.error.get_or_insert(e);
    }

    fn report(&self, rows: u64, parts: usize) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.at.rows_done += rows;
        s.at.parts_done += parts;
        let at = s.at;
        if (s.progress)(&at).is_break() {
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    // ANCHOR: worker
    /// A worker: takes the next part from the shared counter until none is left, scores it and commits it.
    fn work(&self) {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            let Some(part) = self.pending.get(i) else { return };
            let rel = part_path(part.part, self.run_id, self.config.format);
            match self.score_part(part, &rel) {
                Ok(true) => {}
                Ok(false) => return, // stopped midway: the part stays uncommitted
                Err(e) => return self.fail(e),
            }
            if let Err(e) = self.commit(i, part, rel) {
                return self.fail(e);
            }
        }
    }
    // ANCHOR_END: worker

    /// Parquet: the rename already committed the part. Delta: queue it and commit every finished part
    /// that no earlier part is still waiting for.
    fn commit(&self, i: usize, part: &Part, rel: String) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let s = &mut *s;
        if let Some((sink, runtime)) = s.delta.as_mut() {
            s.ready.insert(i, (part.part, rel, part.rows));
            let mut batch = Vec::new();
            while let Some(w) = s.ready.remove(&s.next_commit) {
                batch.push(w);
                s.next_commit += 1;
            }
            if !batch.is_empty() {
                runtime.block_on(sink.commit(&self.config.output, &batch))?;
                s.at.parts_done += batch.len();
            }
        } else {
            s.at.parts_done += 1;
        }
        let at = s.at;
        if (s.progress)(&at).is_break() {
            self.stop.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    // ANCHOR: score_part
    /// Streams one part's row groups in batches, scores each batch and writes it to the part's file
    /// (hidden until renamed). Returns false when stopped before the end.
    fn score_part(&self, part: &Part, rel: &str) -> Result<bool> {
        let path = if part.file.is_empty() { self.input.files[0].clone() } else { self.input.root.join(&part.file) };
        let file = File::open(&path).map_err(io_err(&path))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq_err(&path))?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), self.columns.iter().copied());
        let reader = builder
            .with_row_groups(part.row_groups.clone())
            .with_projection(mask)
            .with_batch_size(self.config.batch_rows.max(1))
            .build()
            .map_err(pq_err(&path))?;

        let out = self.config.output.join(rel);
        let dir = out.parent().unwrap_or(&self.config.output);
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let tmp = dir.join(format!(".{}.tmp", out.file_name().unwrap_or_default().to_string_lossy()));
        let props = WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(ZstdLevel::try_new(1).map_err(pq_err(&out))?))
            .build();
        let sink = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut writer = ArrowWriter::try_new(sink, self.schema.clone(), Some(props)).map_err(pq_err(&tmp))?;
        let names: Vec<&str> = self.model.feature_names.iter().map(String::as_str).collect();
        let mut row = part.first_row as i64;
        for batch in reader {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            let batch = batch.map_err(|e| Error::Parquet { path: path.clone(), source: e.into() })?;
            let x = Matrix::from_batch(&batch, &names)?;
            self.check_missing(&x, row)?;
            let scores = predict(self.model, &x)?;
            let n = batch.num_rows();
            let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(row..row + n as i64))];
            if let Some(key) = &self.config.key {
                columns.push(crate::data::column(&batch, key)?.clone()); // an Arc clone: no copy
            }
            let k = self.model.n_outputs;
            if k == 1 {
                columns.push(Arc::new(Float32Array::from(scores))); // takes the Vec's buffer: no copy
            } else {
                for j in 0..k {
                    columns.push(Arc::new(Float32Array::from_iter_values(scores.iter().skip(j).step_by(k).copied())));
                }
            }
            writer.write(&RecordBatch::try_new(self.schema.clone(), columns)?).map_err(pq_err(&tmp))?;
            row += n as i64;
            self.report(n as u64, 0);
        }
        writer.close().map_err(pq_err(&tmp))?;
        std::fs::rename(&tmp, &out).map_err(io_err(&out))?; // the commit of a Parquet part
        Ok(true)
    }
    // ANCHOR_END: score_part

    /// A missing value for a model that cannot take one is a model/input mismatch, named by row and column.
    fn check_missing(&self, x: &Matrix, first_row: i64) -> Result<()> {
        if self.model.allows_missing {
            return Ok(());
        }
        match x.data().iter().position(|v| v.is_nan()) {
            None => Ok(()),
            Some(at) => Err(Error::ScoreModelMismatch {
                model: self.model.name.clone(),
                input: self.config.input.clone(),
                reason: format!(
                    "row_id {} has no value for feature {:?}, and a {} model cannot take a missing value",
                    first_row + (at / x.cols()) as i64,
                    self.model.feature_names[at % x.cols()],
                    self.model.kind
                ),
            }),
        }
    }
}

// ANCHOR: resume
/// Which of `parts` are already committed. Parquet: those whose file exists (renamed into place). Delta:
/// those up to the version of this worker's `txn` action, and any whose file the log holds (committed by
/// a worker on another range); both come from the same atomic log.
fn committed(
    config: &ScoreConfig,
    manifest: &Manifest,
    parts: &[Part],
    delta: Option<&(Option<i64>, HashSet<String>)>,
) -> Vec<bool> {
    parts
        .iter()
        .map(|p| {
            let path = part_path(p.part, &manifest.run_id, config.format);
            match (config.format, delta) {
                (OutputFormat::Delta, Some((txn, files))) => {
                    txn.is_some_and(|d| p.part as i64 <= d) || files.contains(&path)
                }
                _ => config.output.join(path).is_file(),
            }
        })
        .collect()
}
// ANCHOR_END: resume

/// Scores `config.input` with `config.model` into `config.output`, resuming a previous run of the same job.
/// `progress` is called after every scored batch and every commit; returning `ControlFlow::Break` stops
/// the run after the batches in flight (what is committed stays committed; run again to finish).
///
/// # Errors
/// [`Error::ServeModelLoad`] (the model), [`Error::ScoreInput`] (no input, no Parquet files, files that
/// disagree), [`Error::MissingColumn`] (a feature or the key is not in the input), [`Error::ColumnType`]
/// (a feature that is not numeric, a key Delta cannot store), [`Error::ScoreModelMismatch`] (a missing
/// value for a model that cannot take one), [`Error::ScoreOutputExists`] (the output holds another job's
/// scores, or something else; set `overwrite`), [`Error::ScoreIo`], [`Error::Parquet`], [`Error::Delta`].
pub fn score(
    config: &ScoreConfig,
    progress: &mut (dyn FnMut(&ScoreProgress) -> ControlFlow<()> + Send),
) -> Result<ScoreReport> {
    let started = Instant::now();
    if config.part_rows == 0 || config.batch_rows == 0 {
        return Err(Error::InvalidParameter("part_rows and batch_rows must be at least 1".into()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::ScoreIo { path: config.output.clone(), source: e })?;
    let (model, _) = model::load(&config.model, None)?;

    // An existing output: the same job resumes (at the input version it read), anything else is refused.
    let previous = if config.output.exists() { read_manifest(&config.output)? } else { None };
    let input = open_input(config, previous.as_ref().and_then(|m| m.input_version), &runtime)?;
    let columns = check_columns(config, &model, &input)?;
    let scores = score_columns(&model);
    let schema = file_schema(config, &input, &scores);
    if config.format == OutputFormat::Delta {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("part", DataType::Int64, true));
        StructType::try_from_arrow(&Schema::new(fields)).map_err(|e| {
            let key = config.key.clone().unwrap_or_default();
            let t = input.schema.field_with_name(&key).map(|f| f.data_type().clone()).unwrap_or(DataType::Null);
            Error::ColumnType { column: key, expected: format!("a type a Delta table can store ({e})"), got: t }
        })?;
    }
    let mut hasher = blake3::Hasher::new();
    hasher
        .update(format!("{}\n{}\n{:?}\n{:?}\n", model.digest, input.fingerprint, config.key, config.format).as_bytes());
    hasher.update(format!("{:?}\n", input.parts).as_bytes());
    let manifest = Manifest {
        run_id: hasher.finalize().to_hex().to_string(),
        model: config.model.describe(),
        model_digest: model.digest.clone(),
        input: config.input.clone(),
        input_fingerprint: input.fingerprint.clone(),
        input_version: input.version,
        format: config.format,
        key: config.key.clone(),
        score_columns: scores.clone(),
        parts: input.parts.clone(),
    };
    prepare_output(config, previous.as_ref(), &manifest)?;

    // This worker's parts; its Delta `txn` appId names the range, so workers on other ranges do not mix.
    let range = config.parts.clone().unwrap_or(0..input.parts.len());
    if range.is_empty() || range.end > input.parts.len() {
        return Err(Error::InvalidParameter(format!(
            "parts {range:?}: the input has parts 0..{} (of about {} rows each)",
            input.parts.len(),
            config.part_rows
        )));
    }
    let app_id = if range == (0..input.parts.len()) {
        manifest.run_id.clone()
    } else {
        format!("{}/parts-{}-{}", manifest.run_id, range.start, range.end)
    };
    let (delta, delta_done) = match config.format {
        OutputFormat::Delta => {
            let (sink, txn, files) = runtime.block_on(open_or_create_delta(&config.output, &schema, &app_id))?;
            (Some((sink, &runtime)), Some((txn, files)))
        }
        OutputFormat::Parquet => (None, None),
    };
    let mine = &input.parts[range];
    let done = committed(config, &manifest, mine, delta_done.as_ref());
    let rows_total: u64 = mine.iter().map(|p| p.rows).sum();
    let rows_resumed: u64 = mine.iter().zip(&done).filter(|(_, d)| **d).map(|(p, _)| p.rows).sum();
    let parts_resumed = done.iter().filter(|d| **d).count();
    let pending: Vec<Part> = mine.iter().zip(&done).filter(|(_, d)| !**d).map(|(p, _)| p.clone()).collect();
    let at = ScoreProgress { rows_done: rows_resumed, rows_total, parts_done: parts_resumed, parts_total: done.len() };
    let _ = progress(&at);

    let job = Job {
        config,
        model: &model,
        input: &input,
        run_id: &manifest.run_id,
        columns: &columns,
        schema,
        pending,
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        state: Mutex::new(State { progress, at, error: None, delta, ready: BTreeMap::new(), next_commit: 0 }),
    };
    // ANCHOR: spawn
    let workers = if config.workers == 0 { rayon::current_num_threads() } else { config.workers };
    rayon::scope(|s| {
        for _ in 0..workers.min(job.pending.len()) {
            s.spawn(|_| job.work());
        }
    });
    // ANCHOR_END: spawn
    let state = job.state.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = state.error {
        return Err(e);
    }
    let complete = state.at.parts_done == state.at.parts_total;
    let all_parts =
        config.format == OutputFormat::Parquet && committed(config, &manifest, &input.parts, None).iter().all(|d| *d);
    if complete && all_parts {
        write_atomic(&config.output.join("_SUCCESS"), b"")?;
    }
    Ok(ScoreReport {
        model: model.name.clone(),
        model_digest: model.digest.clone(),
        rows_total,
        rows_scored: state.at.rows_done - rows_resumed,
        rows_resumed,
        parts_total: state.at.parts_total,
        parts_resumed,
        complete,
        score_columns: scores,
        delta_version: state.delta.map(|(sink, _)| sink.version),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Makes the output folder ready: refuses (or with `overwrite`, removes) another job's output, then writes
/// this job's manifest before any part, so every part on disk belongs to the job its manifest names.
fn prepare_output(config: &ScoreConfig, previous: Option<&Manifest>, manifest: &Manifest) -> Result<()> {
    let out = &config.output;
    let clash = match previous {
        Some(p) if p.run_id == manifest.run_id => None,
        Some(p) if p.model_digest != manifest.model_digest => {
            Some(format!("scores of another model ({}, digest {})", p.model, &p.model_digest[..16]))
        }
        Some(p) if p.input_fingerprint != manifest.input_fingerprint => {
            Some(format!("scores of another input ({}, fingerprint {})", p.input.display(), &p.input_fingerprint[..16]))
        }
        Some(p) => {
            Some(format!("scores of this model and input with other settings (key {:?}, {:?})", p.key, p.format))
        }
        None if out.is_file() => Some("a file".into()),
        // Hidden files do not count: another worker's manifest may be on its way in (`.…tmp`, then a rename).
        None if out.is_dir()
            && std::fs::read_dir(out)
                .map_err(io_err(out))?
                .any(|e| e.is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.'))) =>
        {
            Some("files not written by a scoring run".into())
        }
        None => None,
    };
    if let Some(what) = clash {
        if !config.overwrite {
            return Err(Error::ScoreOutputExists { path: out.clone(), what });
        }
        if out.is_dir() {
            std::fs::remove_dir_all(out).map_err(io_err(out))?;
        } else {
            std::fs::remove_file(out).map_err(io_err(out))?;
        }
    }
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    if previous.is_none_or(|p| p.run_id != manifest.run_id) {
        let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| Error::InvalidParameter(e.to_string()))?;
        write_atomic(&out.join(MANIFEST), &bytes)?;
    }
    Ok(())
}
