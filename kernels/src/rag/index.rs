//! The persisted hybrid index: a folder holding the chunks, a tantivy BM25 index and the MiniLM vectors
//! (searched with [`crate::ann::Hnsw`]), described by a manifest (corpus hash, chunker, model fingerprint).
//!
//! # The folder
//!
//! | file | what |
//! |---|---|
//! | `manifest.json` | [`Manifest`]: format version, commit generation `G`, embedder fingerprint and dimension, chunker, HNSW parameters, corpus hash, counts, next chunk id, and the size and BLAKE3 of each file below |
//! | `docs.G.jsonl` | one [`DocRecord`] per indexed document (id, title, text hash, chunk ids), by id |
//! | `chunks.G.jsonl` | one live chunk per line (`{"id": …, <the Chunk's fields>}`), ascending id |
//! | `vectors.G.f32` | the live chunks' unit vectors, little-endian `f32`, in the order of `chunks.G.jsonl` |
//! | `graph.G.hnsw` | when the commit had no tombstones: the HNSW graph over those vectors ([`Hnsw::save`]'s format), which [`RagIndex::open`] loads and checks against `vectors.G.f32` instead of rebuilding |
//! | `bm25/` | a tantivy index (memory-mapped) with one document per live chunk: `body` (the chunk text, tantivy's default tokenizer as [`crate::search`] uses), `chunk` (u64 fast field) and `doc` (the document id, a raw term for `delete_term`) |
//!
//! # Commits
//!
//! [`RagIndex::commit`] first commits tantivy with the payload `{"generation": G+1}`, then writes and
//! fsyncs the generation `G+1` files, then writes `manifest.json.tmp`, fsyncs it, renames it over
//! `manifest.json` and fsyncs the folder; only then are generation `G`'s files removed. A crash before the
//! rename leaves `manifest.json` naming generation `G`, whose files are still there. The tantivy half is
//! derived data: when [`RagIndex::open`] finds its commit payload is not the manifest's generation (a
//! crash after tantivy's commit, or mutations that were never committed: [`RagIndex::add_documents`]
//! commits tantivy at once with the payload `uncommitted` so that its chunks are searchable), it rebuilds
//! the BM25 index from the manifest's chunks.
//!
//! # Ids and deletion
//!
//! Chunk ids are handed out in increasing order and never reused. Deleting a document removes its chunks
//! from the chunk table and from tantivy (`delete_term` on the document id, then a merge of the segments
//! holding deletions, so BM25 statistics count live chunks only and equal a fresh index's). The HNSW graph
//! cannot delete: a deleted chunk stays in the graph as a tombstone that searches skip (over-fetching by
//! the number of tombstones) until the next [`RagIndex::open`], which rebuilds the graph from the live
//! vectors in id order with the stored seed. A commit without tombstones saves its graph, which is that
//! very graph (same vectors, same order, same seed), so opening it loads the graph instead of spending
//! the build again.
//!
//! The corpus hash is BLAKE3 over the documents sorted by id, each contributing its id's byte length
//! (u64 LE), its id and the 32-byte BLAKE3 of its text.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::columnar::Column;
use tantivy::directory::MmapDirectory;
use tantivy::query::BooleanQuery;
use tantivy::schema::{FAST, Field, STRING, Schema, TEXT};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

use super::chunk::ChunkerConfig;
use super::{Chunk, Document, Embedder};
use crate::ann::{Hnsw, HnswConfig};
use crate::simd::Metric;
use crate::{Error, Result};

/// The `format` field of every manifest.
pub const FORMAT: &str = "sovereign-rag-index";
/// The on-disk format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Texts embedded per call of [`Embedder::embed`] while indexing (one progress report each).
pub const EMBED_BATCH: usize = 32;

const MANIFEST: &str = "manifest.json";
const MANIFEST_TMP: &str = "manifest.json.tmp";
const BM25_DIR: &str = "bm25";
const UNCOMMITTED: &str = "uncommitted";
/// Memory budget of the (single-threaded) tantivy writer.
const WRITER_BUDGET_BYTES: usize = 50 << 20;

/// How an index is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexConfig {
    pub chunker: ChunkerConfig,
    /// HNSW build parameters of the dense half.
    #[serde(skip, default)]
    pub hnsw: HnswConfig,
}

impl IndexConfig {
    /// `chunker` with the default HNSW parameters (`M = 16`, `ef_construction = 200`, seed 42) ranking
    /// by dot product (the vectors are unit length, so this is cosine similarity).
    pub fn new(chunker: ChunkerConfig) -> IndexConfig {
        IndexConfig { chunker, hnsw: HnswConfig { metric: Metric::Dot, ..HnswConfig::default() } }
    }
}

/// What [`RagIndex::add_documents`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddReport {
    pub documents: usize,
    pub chunks: usize,
    /// Documents whose id was already indexed with the same text (left as they were).
    pub unchanged: usize,
    /// Documents whose id was indexed with other text (their old chunks were replaced).
    pub replaced: usize,
}

/// The HNSW parameters as the manifest stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    pub m: usize,
    pub ef_construction: usize,
    /// `l2`, `dot` or `cosine`.
    pub metric: MetricName,
    pub seed: u64,
}

/// A [`Metric`] by name (the manifest's spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricName {
    L2,
    Dot,
    Cosine,
}

impl HnswParams {
    fn from_config(c: &HnswConfig) -> HnswParams {
        let metric = match c.metric {
            Metric::L2 => MetricName::L2,
            Metric::Dot => MetricName::Dot,
            Metric::Cosine => MetricName::Cosine,
        };
        HnswParams { m: c.m, ef_construction: c.ef_construction, metric, seed: c.seed }
    }

    /// The build configuration these parameters describe.
    pub fn config(&self) -> HnswConfig {
        let metric = match self.metric {
            MetricName::L2 => Metric::L2,
            MetricName::Dot => Metric::Dot,
            MetricName::Cosine => Metric::Cosine,
        };
        HnswConfig { m: self.m, ef_construction: self.ef_construction, metric, seed: self.seed }
    }
}

/// One file of a generation, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    /// BLAKE3 of the contents, hex.
    pub blake3: String,
}

/// `manifest.json`: what the folder holds and how it was built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// Commit generation: 0 for the empty index [`RagIndex::create`] writes, +1 per commit.
    pub generation: u64,
    /// [`Embedder::fingerprint`] of the model that made the vectors.
    pub embedder: String,
    /// Dimension of the vectors.
    pub dim: usize,
    pub chunker: ChunkerConfig,
    pub hnsw: HnswParams,
    /// See the module docs.
    pub corpus_hash: String,
    /// Indexed documents.
    pub documents: usize,
    /// Live chunks.
    pub chunks: usize,
    /// The id the next chunk gets.
    pub next_chunk_id: u32,
    /// `docs`, `chunks` and `vectors` files of this generation, in that order, then `graph` when saved.
    pub files: Vec<FileEntry>,
}

/// An indexed document: what change detection and deletion need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocRecord {
    pub id: String,
    pub title: String,
    /// BLAKE3 (hex) of [`Document::text`]: the corpus hash is made of these.
    pub text_hash: String,
    /// BLAKE3 (hex) of the whole document (text, title, sections, blocks, metadata): a document is
    /// unchanged, and skipped, when this is equal.
    pub doc_hash: String,
    /// Its chunks' ids, ascending.
    pub chunks: Vec<u32>,
}

#[derive(Serialize, Deserialize)]
struct ChunkLine {
    id: u32,
    #[serde(flatten)]
    chunk: Chunk,
}

/// A live chunk and where its vector sits in the arena.
#[derive(Debug)]
struct Entry {
    chunk: Chunk,
    slot: usize,
}

/// The tantivy half.
struct Sparse {
    index: Index,
    body: Field,
    chunk: Field,
    doc: Field,
    analyzer: TextAnalyzer,
    reader: IndexReader,
    /// Per segment of the reader's searcher: the `chunk` fast field.
    columns: Vec<Column<u64>>,
}

impl std::fmt::Debug for Sparse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sparse").field("docs", &self.reader.searcher().num_docs()).finish_non_exhaustive()
    }
}

/// A hybrid index of chunks. Chunk ids are `u32`, stable for the life of the index (a deleted chunk's
/// id is never reused).
#[derive(Debug)]
pub struct RagIndex {
    dir: PathBuf,
    manifest: Manifest,
    docs: BTreeMap<String, DocRecord>,
    live: BTreeMap<u32, Entry>,
    /// Every vector the HNSW graph holds, `dim` floats per slot (tombstones included).
    arena: Vec<f32>,
    /// The chunk id of each slot.
    slot_chunk: Vec<u32>,
    hnsw: Hnsw,
    sparse: Sparse,
    /// Changes since the last commit.
    dirty: bool,
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::RagIo { path: path.to_path_buf(), source }
}

fn corrupt(dir: &Path, reason: impl Into<String>) -> Error {
    Error::RagIndexCorrupt { path: dir.to_path_buf(), reason: reason.into() }
}

fn hex_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn doc_hash(doc: &Document) -> Result<String> {
    let json = serde_json::to_vec(doc).map_err(|e| Error::InvalidParameter(format!("document {}: {e}", doc.id)))?;
    Ok(hex_hash(&json))
}

fn corpus_hash(docs: &BTreeMap<String, DocRecord>) -> String {
    let mut h = blake3::Hasher::new();
    for d in docs.values() {
        h.update(&(d.id.len() as u64).to_le_bytes());
        h.update(d.id.as_bytes());
        let mut raw = [0u8; 32];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = u8::from_str_radix(d.text_hash.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
        }
        h.update(&raw);
    }
    h.finalize().to_hex().to_string()
}

/// Writes `bytes` to `path` and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| io_err(path, e))?;
    f.write_all(bytes).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(|e| io_err(dir, e))
}

fn payload_of(generation: u64) -> String {
    format!("{{\"generation\":{generation}}}")
}

impl Sparse {
    fn schema() -> Schema {
        let mut schema = Schema::builder();
        schema.add_text_field("body", TEXT);
        schema.add_u64_field("chunk", FAST);
        schema.add_text_field("doc", STRING);
        schema.build()
    }

    fn from_index(index: Index, dir: &Path) -> Result<Sparse> {
        let schema = index.schema();
        let field =
            |name: &str| schema.get_field(name).map_err(|_| corrupt(dir, format!("bm25/ has no `{name}` field")));
        let (body, chunk, doc) = (field("body")?, field("chunk")?, field("doc")?);
        let analyzer = index.tokenizer_for_field(body)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let mut sparse = Sparse { index, body, chunk, doc, analyzer, reader, columns: Vec::new() };
        sparse.refresh()?;
        Ok(sparse)
    }

    fn create(path: &Path) -> Result<Sparse> {
        fs::create_dir_all(path).map_err(|e| io_err(path, e))?;
        let directory = MmapDirectory::open(path).map_err(tantivy::TantivyError::from)?;
        let index = Index::create(directory, Sparse::schema(), tantivy::IndexSettings::default())?;
        Sparse::from_index(index, path)
    }

    fn open(path: &Path, dir: &Path) -> Result<Sparse> {
        if !path.is_dir() {
            return Err(corrupt(dir, "the BM25 folder bm25/ is missing"));
        }
        let directory = MmapDirectory::open(path).map_err(|e| corrupt(dir, format!("bm25/: {e}")))?;
        let index = Index::open(directory).map_err(|e| corrupt(dir, format!("bm25/: {e}")))?;
        Sparse::from_index(index, dir)
    }

    fn refresh(&mut self) -> Result<()> {
        self.reader.reload()?;
        let searcher = self.reader.searcher();
        self.columns =
            searcher.segment_readers().iter().map(|s| s.fast_fields().u64("chunk")).collect::<tantivy::Result<_>>()?;
        Ok(())
    }

    fn writer(&self) -> Result<IndexWriter> {
        Ok(self.index.writer_with_num_threads::<TantivyDocument>(1, WRITER_BUDGET_BYTES)?)
    }

    /// Commits `writer` with `payload`, merges the segments that hold deletions into one (so BM25
    /// statistics count live chunks only), waits for merges and reloads the reader.
    fn finish(&mut self, mut writer: IndexWriter, payload: &str) -> Result<()> {
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(payload);
        prepared.commit()?;
        let metas = self.index.searchable_segment_metas()?;
        if metas.iter().any(|m| m.has_deletes()) {
            let ids: Vec<_> = metas.iter().map(|m| m.id()).collect();
            writer.merge(&ids).wait()?;
        }
        writer.wait_merging_threads()?;
        self.refresh()
    }

    fn payload(&self) -> Result<Option<String>> {
        Ok(self.index.load_metas()?.payload)
    }

    fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Replaces the whole tantivy index's contents by `chunks`, committed with `payload`.
    fn rebuild<'a>(&mut self, chunks: impl Iterator<Item = (u32, &'a Chunk)>, payload: &str) -> Result<()> {
        let writer = self.writer()?;
        writer.delete_all_documents()?;
        for (id, c) in chunks {
            writer.add_document(
                doc!(self.body => c.text.as_str(), self.chunk => u64::from(id), self.doc => c.doc.as_str()),
            )?;
        }
        self.finish(writer, payload)
    }

    fn query_terms(&self, query: &str) -> Vec<String> {
        crate::search::distinct_terms(&self.analyzer, query)
    }

    fn search(&self, query: &str, limit: usize) -> Result<Vec<(u32, f32)>> {
        let searcher = self.reader.searcher();
        let limit = limit.min(searcher.num_docs() as usize);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let terms: Vec<Term> = self.query_terms(query).iter().map(|t| Term::from_field_text(self.body, t)).collect();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let q = BooleanQuery::new_multiterms_query(terms);
        let top = searcher.search(&q, &TopDocs::with_limit(limit).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let id =
                self.columns.get(addr.segment_ord as usize).and_then(|c| c.first(addr.doc_id)).ok_or_else(|| {
                    Error::Search(tantivy::TantivyError::InternalError("a BM25 document without a chunk id".into()))
                })?;
            let id = u32::try_from(id)
                .map_err(|_| Error::Search(tantivy::TantivyError::InternalError(format!("chunk id {id} > u32"))))?;
            hits.push((id, score));
        }
        hits.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(hits)
    }
}

impl RagIndex {
    /// Creates an empty index in `dir` (created; must be empty or absent) and commits it as
    /// generation 0.
    pub fn create(dir: &Path, embedder: &dyn Embedder, config: IndexConfig) -> Result<RagIndex> {
        config.hnsw.validate()?;
        let dim = embedder.dim();
        if dim == 0 {
            return Err(Error::InvalidParameter("the embedder's dimension is 0".into()));
        }
        if dir.exists() {
            let mut entries = fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
            if entries.next().is_some() {
                return Err(Error::RagIo {
                    path: dir.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "the folder for a new index must be empty or absent",
                    ),
                });
            }
        }
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let mut sparse = Sparse::create(&dir.join(BM25_DIR))?;
        sparse.finish(sparse.writer()?, UNCOMMITTED)?;
        let docs = BTreeMap::new();
        let manifest = Manifest {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            generation: 0,
            embedder: embedder.fingerprint(),
            dim,
            chunker: config.chunker,
            hnsw: HnswParams::from_config(&config.hnsw),
            corpus_hash: corpus_hash(&docs),
            documents: 0,
            chunks: 0,
            next_chunk_id: 0,
            files: Vec::new(),
        };
        let hnsw = Hnsw::new(dim, config.hnsw)?;
        let mut index = RagIndex {
            dir: dir.to_path_buf(),
            manifest,
            docs,
            live: BTreeMap::new(),
            arena: Vec::new(),
            slot_chunk: Vec::new(),
            hnsw,
            sparse,
            dirty: false,
        };
        index.write_generation(0, true)?;
        Ok(index)
    }

    /// Opens an index; [`crate::Error::RagIndexMismatch`] when `embedder`'s fingerprint (or the
    /// format version) differs from the manifest's, [`crate::Error::RagIndexCorrupt`] when files are
    /// missing, truncated or disagree with the manifest.
    pub fn open(dir: &Path, embedder: &dyn Embedder) -> Result<RagIndex> {
        let manifest_path = dir.join(MANIFEST);
        let text = match fs::read(&manifest_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(corrupt(dir, "manifest.json is missing"));
            }
            Err(e) => return Err(io_err(&manifest_path, e)),
        };
        let raw: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| corrupt(dir, format!("manifest.json: {e}")))?;
        let format = raw.get("format").and_then(|v| v.as_str()).unwrap_or("");
        let version = raw.get("version").and_then(|v| v.as_u64());
        if format != FORMAT {
            return Err(corrupt(dir, format!("manifest.json: format is {format:?}, not {FORMAT:?}")));
        }
        if version != Some(u64::from(FORMAT_VERSION)) {
            return Err(Error::RagIndexMismatch {
                path: dir.to_path_buf(),
                what: "format version",
                built: version.map_or_else(|| "none".to_string(), |v| v.to_string()),
                current: FORMAT_VERSION.to_string(),
            });
        }
        let manifest: Manifest =
            serde_json::from_value(raw).map_err(|e| corrupt(dir, format!("manifest.json: {e}")))?;
        let current = embedder.fingerprint();
        if manifest.embedder != current {
            return Err(Error::RagIndexMismatch {
                path: dir.to_path_buf(),
                what: "embedder",
                built: manifest.embedder.clone(),
                current,
            });
        }
        if manifest.dim != embedder.dim() {
            return Err(Error::RagIndexMismatch {
                path: dir.to_path_buf(),
                what: "embedding dimension",
                built: manifest.dim.to_string(),
                current: embedder.dim().to_string(),
            });
        }
        let g = manifest.generation;
        let expected = [
            format!("docs.{g}.jsonl"),
            format!("chunks.{g}.jsonl"),
            format!("vectors.{g}.f32"),
            format!("graph.{g}.hnsw"),
        ];
        if !(3..=4).contains(&manifest.files.len()) || manifest.files.iter().zip(&expected).any(|(f, e)| &f.name != e) {
            return Err(corrupt(
                dir,
                format!("manifest.json must list {:?}, then optionally {}", &expected[..3], expected[3]),
            ));
        }
        let mut contents = Vec::with_capacity(4);
        for f in &manifest.files {
            let path = dir.join(&f.name);
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(corrupt(dir, format!("{} is missing", f.name)));
                }
                Err(e) => return Err(io_err(&path, e)),
            };
            if bytes.len() as u64 != f.bytes {
                return Err(corrupt(
                    dir,
                    format!("{} holds {} bytes, the manifest says {}", f.name, bytes.len(), f.bytes),
                ));
            }
            if hex_hash(&bytes) != f.blake3 {
                return Err(corrupt(dir, format!("{}: contents differ from the manifest's BLAKE3", f.name)));
            }
            contents.push(bytes);
        }
        let dim = manifest.dim;
        let (docs_bytes, chunks_bytes, vector_bytes) = (&contents[0], &contents[1], &contents[2]);

        let mut docs = BTreeMap::new();
        for (n, line) in docs_bytes.split(|&b| b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
            let d: DocRecord = serde_json::from_slice(line)
                .map_err(|e| corrupt(dir, format!("{} line {}: {e}", expected[0], n + 1)))?;
            if docs.insert(d.id.clone(), d).is_some() {
                return Err(corrupt(dir, format!("{} line {}: a document listed twice", expected[0], n + 1)));
            }
        }
        let mut live = BTreeMap::new();
        for (n, line) in chunks_bytes.split(|&b| b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
            let c: ChunkLine = serde_json::from_slice(line)
                .map_err(|e| corrupt(dir, format!("{} line {}: {e}", expected[1], n + 1)))?;
            if c.id >= manifest.next_chunk_id || live.last_key_value().is_some_and(|(&k, _)| k >= c.id) {
                return Err(corrupt(dir, format!("{} line {}: chunk id {} out of order", expected[1], n + 1, c.id)));
            }
            let slot = live.len();
            live.insert(c.id, Entry { chunk: c.chunk, slot });
        }
        if docs.len() != manifest.documents || live.len() != manifest.chunks {
            return Err(corrupt(
                dir,
                format!(
                    "{} documents and {} chunks on disk, the manifest says {} and {}",
                    docs.len(),
                    live.len(),
                    manifest.documents,
                    manifest.chunks
                ),
            ));
        }
        let mut owned = 0usize;
        for d in docs.values() {
            for id in &d.chunks {
                match live.get(id) {
                    Some(e) if e.chunk.doc == d.id => owned += 1,
                    _ => return Err(corrupt(dir, format!("document {} lists chunk {id}, which is not its own", d.id))),
                }
            }
        }
        if owned != live.len() {
            return Err(corrupt(dir, "some chunks belong to no indexed document"));
        }
        if corpus_hash(&docs) != manifest.corpus_hash {
            return Err(corrupt(dir, "the documents' hashes do not give the manifest's corpus hash"));
        }
        if vector_bytes.len() != live.len() * dim * 4 {
            return Err(corrupt(
                dir,
                format!(
                    "{} holds {} bytes, {} chunks of dimension {dim} need {}",
                    expected[2],
                    vector_bytes.len(),
                    live.len(),
                    live.len() * dim * 4
                ),
            ));
        }
        let arena: Vec<f32> =
            vector_bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if arena.iter().any(|x| !x.is_finite()) {
            return Err(corrupt(dir, format!("{} holds a non-finite value", expected[2])));
        }
        let slot_chunk: Vec<u32> = live.keys().copied().collect();
        let hnsw = match contents.get(3) {
            Some(graph) => {
                let path = dir.join(&expected[3]);
                let hnsw = Hnsw::from_bytes(graph, &path).map_err(|e| corrupt(dir, e.to_string()))?;
                if hnsw.dim() != dim || *hnsw.config() != manifest.hnsw.config() || hnsw.vectors() != arena.as_slice() {
                    return Err(corrupt(
                        dir,
                        format!(
                            "{} is not the graph of {} (dimension, parameters or vectors differ)",
                            expected[3], expected[2]
                        ),
                    ));
                }
                hnsw
            }
            None => Hnsw::build(&arena, dim, manifest.hnsw.config())?,
        };

        let mut sparse = Sparse::open(&dir.join(BM25_DIR), dir)?;
        let want = payload_of(g);
        if sparse.payload()?.as_deref() != Some(want.as_str()) || sparse.num_docs() != live.len() as u64 {
            sparse.rebuild(live.iter().map(|(&id, e)| (id, &e.chunk)), &want)?;
        }
        Ok(RagIndex { dir: dir.to_path_buf(), manifest, docs, live, arena, slot_chunk, hnsw, sparse, dirty: false })
    }

    /// Chunks, embeds and indexes `docs` (a document whose id exists is replaced or left unchanged);
    /// `on_chunks(done, total)` reports progress. Durable after [`RagIndex::commit`].
    pub fn add_documents(
        &mut self,
        docs: &[Document],
        embedder: &dyn Embedder,
        on_chunks: &mut dyn FnMut(usize, usize),
    ) -> Result<AddReport> {
        let mut chunked = Vec::with_capacity(docs.len());
        for d in docs {
            let same = match self.docs.get(&d.id) {
                Some(r) => r.doc_hash == doc_hash(d)?,
                None => false,
            };
            // An unchanged document is not chunked again: `add_chunked` skips it.
            let chunks = if same {
                Vec::new()
            } else {
                super::chunk::chunk_document(d, &self.manifest.chunker, embedder, Some(embedder))?
            };
            chunked.push((d, chunks));
        }
        self.add_chunked(&chunked, embedder, on_chunks)
    }

    /// [`RagIndex::add_documents`] with the chunks already made (by any chunker): each document with
    /// its chunks, whose `doc` must be the document's id. A document whose id is indexed with an
    /// identical [`Document`] is left as it is (its chunks here are ignored).
    pub fn add_chunked(
        &mut self,
        docs: &[(&Document, Vec<Chunk>)],
        embedder: &dyn Embedder,
        on_chunks: &mut dyn FnMut(usize, usize),
    ) -> Result<AddReport> {
        self.check_embedder(embedder)?;
        let mut report = AddReport::default();
        let mut seen = std::collections::HashSet::new();
        let mut todo: Vec<(&Document, &[Chunk], String)> = Vec::new();
        for (d, chunks) in docs {
            if !seen.insert(d.id.as_str()) {
                return Err(Error::RagDuplicateDocument { id: d.id.clone() });
            }
            if let Some(c) = chunks.iter().find(|c| c.doc != d.id) {
                return Err(Error::InvalidParameter(format!(
                    "a chunk of document {} names document {} as its source",
                    d.id, c.doc
                )));
            }
            let hash = doc_hash(d)?;
            report.documents += 1;
            match self.docs.get(&d.id) {
                Some(r) if r.doc_hash == hash => report.unchanged += 1,
                Some(_) => {
                    report.replaced += 1;
                    todo.push((d, chunks, hash));
                }
                None => todo.push((d, chunks, hash)),
            }
        }
        if todo.is_empty() {
            return Ok(report);
        }
        // Embed everything first: an embedding error leaves the index as it was.
        let texts: Vec<&str> = todo.iter().flat_map(|(_, cs, _)| cs.iter().map(|c| c.text.as_str())).collect();
        let total = texts.len();
        if u64::from(self.manifest.next_chunk_id) + total as u64 > u64::from(u32::MAX) {
            return Err(Error::InvalidParameter("the index would exceed u32::MAX chunk ids".into()));
        }
        let dim = self.manifest.dim;
        let mut vectors = Vec::with_capacity(total * dim);
        on_chunks(0, total);
        for batch in texts.chunks(EMBED_BATCH) {
            let out = embedder.embed(batch)?;
            if out.len() != batch.len() {
                return Err(Error::InvalidParameter(format!(
                    "the embedder returned {} vectors for {} texts",
                    out.len(),
                    batch.len()
                )));
            }
            for v in out {
                if v.len() != dim {
                    return Err(Error::DimensionMismatch { expected: dim, got: v.len() });
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(Error::InvalidParameter("the embedder returned a non-finite value".into()));
                }
                vectors.extend_from_slice(&v);
            }
            on_chunks(vectors.len() / dim, total);
        }

        let writer = self.sparse.writer()?;
        let mut rows = vectors.chunks_exact(dim);
        for (d, chunks, hash) in todo {
            if self.docs.contains_key(&d.id) {
                self.remove_document(&d.id, &writer);
            }
            let mut ids = Vec::with_capacity(chunks.len());
            for c in chunks {
                let id = self.manifest.next_chunk_id;
                self.manifest.next_chunk_id += 1;
                let v = rows.next().ok_or_else(|| Error::InvalidParameter("fewer vectors than chunks".into()))?;
                let slot = self.slot_chunk.len();
                self.hnsw.insert(v)?;
                self.arena.extend_from_slice(v);
                self.slot_chunk.push(id);
                writer.add_document(doc!(
                    self.sparse.body => c.text.as_str(),
                    self.sparse.chunk => u64::from(id),
                    self.sparse.doc => d.id.as_str()
                ))?;
                self.live.insert(id, Entry { chunk: c.clone(), slot });
                ids.push(id);
            }
            report.chunks += ids.len();
            let record = DocRecord {
                id: d.id.clone(),
                title: d.title.clone(),
                text_hash: hex_hash(d.text.as_bytes()),
                doc_hash: hash,
                chunks: ids,
            };
            self.docs.insert(d.id.clone(), record);
        }
        self.dirty = true;
        self.sparse.finish(writer, UNCOMMITTED)?;
        Ok(report)
    }

    /// Drops a document's chunks from the tables and queues its BM25 deletion on `writer`.
    fn remove_document(&mut self, doc_id: &str, writer: &IndexWriter) {
        if let Some(r) = self.docs.remove(doc_id) {
            for id in r.chunks {
                self.live.remove(&id);
            }
            writer.delete_term(Term::from_field_text(self.sparse.doc, doc_id));
        }
    }

    /// Removes a document and its chunks; `false` when it was not indexed.
    pub fn delete_document(&mut self, doc_id: &str) -> Result<bool> {
        if !self.docs.contains_key(doc_id) {
            return Ok(false);
        }
        let writer = self.sparse.writer()?;
        self.remove_document(doc_id, &writer);
        self.dirty = true;
        self.sparse.finish(writer, UNCOMMITTED)?;
        Ok(true)
    }

    /// Writes everything to the folder atomically (a crash leaves the previous commit readable).
    /// Does nothing when nothing changed since the last commit.
    pub fn commit(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let g = self.manifest.generation + 1;
        self.write_generation(g, true)?;
        self.dirty = false;
        Ok(())
    }

    /// Test hook: runs [`RagIndex::commit`] up to, not including, the manifest's rename (what a
    /// crash at that moment leaves behind). The index in memory is left as it was.
    #[doc(hidden)]
    pub fn commit_interrupted_before_manifest(&mut self) -> Result<()> {
        let g = self.manifest.generation + 1;
        let saved = self.manifest.clone();
        let out = self.write_generation(g, false);
        self.manifest = saved;
        out
    }

    /// Writes generation `g`: tantivy's commit, the data files, then (when `publish`) the manifest.
    fn write_generation(&mut self, g: u64, publish: bool) -> Result<()> {
        let dir = self.dir.clone();
        self.sparse.finish(self.sparse.writer()?, &payload_of(g))?;

        let mut docs_out = Vec::new();
        for d in self.docs.values() {
            serde_json::to_writer(&mut docs_out, d).map_err(|e| corrupt(&dir, format!("serialising {}: {e}", d.id)))?;
            docs_out.push(b'\n');
        }
        let mut chunks_out = Vec::new();
        let mut vectors_out = Vec::with_capacity(self.live.len() * self.manifest.dim * 4);
        for (&id, e) in &self.live {
            serde_json::to_writer(&mut chunks_out, &ChunkLine { id, chunk: e.chunk.clone() })
                .map_err(|err| corrupt(&dir, format!("serialising chunk {id}: {err}")))?;
            chunks_out.push(b'\n');
            for x in self.slot_vector(e.slot) {
                vectors_out.extend_from_slice(&x.to_le_bytes());
            }
        }
        // The graph is saved when it holds exactly the live chunks in id order (no tombstones):
        // then it is the graph `open` would rebuild, and loading it skips the rebuild.
        let graph_out = (self.slot_chunk.len() == self.live.len()).then(|| self.hnsw.to_bytes());
        let mut files = Vec::with_capacity(4);
        let mut outputs = vec![
            (format!("docs.{g}.jsonl"), &docs_out),
            (format!("chunks.{g}.jsonl"), &chunks_out),
            (format!("vectors.{g}.f32"), &vectors_out),
        ];
        if let Some(graph) = &graph_out {
            outputs.push((format!("graph.{g}.hnsw"), graph));
        }
        for (name, bytes) in outputs {
            write_synced(&dir.join(&name), bytes)?;
            files.push(FileEntry { name, bytes: bytes.len() as u64, blake3: hex_hash(bytes) });
        }
        sync_dir(&dir)?;
        self.manifest.generation = g;
        self.manifest.files = files;
        self.manifest.documents = self.docs.len();
        self.manifest.chunks = self.live.len();
        self.manifest.corpus_hash = corpus_hash(&self.docs);
        if !publish {
            return Ok(());
        }
        let json = serde_json::to_vec_pretty(&self.manifest).map_err(|e| corrupt(&dir, format!("manifest: {e}")))?;
        let tmp = dir.join(MANIFEST_TMP);
        write_synced(&tmp, &json)?;
        let target = dir.join(MANIFEST);
        fs::rename(&tmp, &target).map_err(|e| io_err(&target, e))?;
        sync_dir(&dir)?;
        // The previous generations' files are garbage now (best effort: a leftover is harmless).
        if let Ok(entries) = fs::read_dir(&dir) {
            let keep: Vec<&str> = self.manifest.files.iter().map(|f| f.name.as_str()).collect();
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let ours = ["docs.", "chunks.", "vectors.", "graph."].iter().any(|p| name.starts_with(p));
                if ours && !keep.contains(&name.as_str()) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    fn check_embedder(&self, embedder: &dyn Embedder) -> Result<()> {
        if embedder.dim() != self.manifest.dim {
            return Err(Error::RagIndexMismatch {
                path: self.dir.clone(),
                what: "embedding dimension",
                built: self.manifest.dim.to_string(),
                current: embedder.dim().to_string(),
            });
        }
        Ok(())
    }

    fn slot_vector(&self, slot: usize) -> &[f32] {
        let dim = self.manifest.dim;
        &self.arena[slot * dim..(slot + 1) * dim]
    }

    /// The live chunk with this id.
    pub fn chunk(&self, id: u32) -> Option<&Chunk> {
        self.live.get(&id).map(|e| &e.chunk)
    }

    /// The stored unit vector of a live chunk.
    pub fn vector(&self, id: u32) -> Option<&[f32]> {
        self.live.get(&id).map(|e| self.slot_vector(e.slot))
    }

    /// Number of live chunks.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether the index holds no live chunk.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live chunks' ids, ascending.
    pub fn chunk_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.live.keys().copied()
    }

    /// The live chunks with their ids, ascending by id.
    pub fn chunks(&self) -> impl Iterator<Item = (u32, &Chunk)> + '_ {
        self.live.iter().map(|(&id, e)| (id, &e.chunk))
    }

    /// The indexed documents' ids, ascending.
    pub fn document_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.docs.keys().map(String::as_str)
    }

    /// What the index knows of a document.
    pub fn document(&self, id: &str) -> Option<&DocRecord> {
        self.docs.get(id)
    }

    /// Number of indexed documents.
    pub fn num_documents(&self) -> usize {
        self.docs.len()
    }

    /// The manifest of the last commit (its counts and hash are those of that commit).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The chunker the index was built with.
    pub fn chunker(&self) -> &ChunkerConfig {
        &self.manifest.chunker
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// The index's folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether there are changes that [`RagIndex::commit`] has not written.
    pub fn has_uncommitted_changes(&self) -> bool {
        self.dirty
    }

    /// Number of deleted chunks the HNSW graph still holds (searches skip them).
    pub fn tombstones(&self) -> usize {
        self.slot_chunk.len() - self.live.len()
    }

    /// The distinct terms BM25 makes of `query` (tantivy's default tokenizer: split on
    /// non-alphanumeric characters, lower-cased, tokens over 40 bytes dropped), in order.
    pub fn query_terms(&self, query: &str) -> Vec<String> {
        self.sparse.query_terms(query)
    }

    /// The `limit` best live chunks by BM25 for `query` (an OR of its distinct terms), as
    /// `(chunk id, score)`, best first, ties by ascending id.
    pub fn sparse_search(&self, query: &str, limit: usize) -> Result<Vec<(u32, f32)>> {
        self.sparse.search(query, limit)
    }

    /// HNSW search: up to `limit` live chunks nearest to the unit vector `query` as `(chunk id,
    /// cosine similarity)`, best first, ties by ascending id. Fetches `limit` plus the number of
    /// tombstones from the graph, so fewer than `limit` come back only when fewer chunks are live.
    /// The similarity is the dot product with the stored vector.
    pub fn dense_search(&self, query: &[f32], limit: usize, ef: usize) -> Result<Vec<(u32, f32)>> {
        if query.len() != self.manifest.dim {
            return Err(Error::DimensionMismatch { expected: self.manifest.dim, got: query.len() });
        }
        let fetch = limit.saturating_add(self.tombstones());
        let found = self.hnsw.search(query, fetch, ef.max(fetch))?;
        let mut hits: Vec<(u32, f32)> = found
            .iter()
            .filter_map(|n| {
                let id = *self.slot_chunk.get(n.id as usize)?;
                let e = self.live.get(&id)?;
                (e.slot == n.id as usize).then(|| (id, crate::simd::dot(query, self.slot_vector(e.slot))))
            })
            .collect();
        hits.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits.truncate(limit);
        Ok(hits)
    }

    /// Exact search: every live chunk that `keep` accepts, scored by the dot product with `query`,
    /// the `limit` best first (ties by ascending id).
    pub fn exact_dense_search(
        &self,
        query: &[f32],
        limit: usize,
        keep: &dyn Fn(u32, &Chunk) -> bool,
    ) -> Result<Vec<(u32, f32)>> {
        if query.len() != self.manifest.dim {
            return Err(Error::DimensionMismatch { expected: self.manifest.dim, got: query.len() });
        }
        let mut hits: Vec<(u32, f32)> = self
            .live
            .iter()
            .filter(|(id, e)| keep(**id, &e.chunk))
            .map(|(&id, e)| (id, crate::simd::dot(query, self.slot_vector(e.slot))))
            .collect();
        hits.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits.truncate(limit);
        Ok(hits)
    }
}
