//! `kernels`: the production compute stack every lab builds on and is graded against.
//!
//! It plays the role the course seeds give to trueno (SIMD), trueno-rag (BM25 +
//! vectors) and friends. Each module is named for what it does and sits behind a
//! cargo feature so a lab compiles only what it uses:
//!
//! | module | feature | what it does |
//! |---|---|---|
//! | [`cache`] | always | where the venv and the models live (`$SOVEREIGN_CACHE`) |
//! | [`simd`] | always | distances (dot, squared L2, cosine) and vector ops (reductions, softmax, GELU/SiLU, RMSNorm/LayerNorm) with runtime CPU dispatch and scalar twins |
//! | [`ann`] | `ann` | exact top-k search and a production HNSW index |
//! | [`fusion`] | always | reciprocal rank fusion of several ranked lists |
//! | [`search`] | `search` | BM25 full-text search backed by tantivy (re-exports [`fusion`]'s RRF) |
//! | [`matmul`] | always | f32 GEMM and GEMV, cache-blocked with a SIMD micro-kernel, rayon-parallel; batched matmul |
//! | [`quant`] | always | GGUF block formats (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K, Q8_K): quantise, dequantise, dot and GEMV on the blocks |
//! | [`gpu`] | `gpu` | wgpu compute: GEMM, batched distances with top-k, quantised GEMV, CPU fallback |
//! | [`tracking`] | `tracking` | a typed async client for MLflow's tracking REST API |
//! | [`data`] | `data` | Parquet/Arrow loading, column statistics, transforms, point-in-time joins, Delta tables |
//! | [`formats`] | `formats` | GGUF and safetensors model files, memory-mapped, with zero-copy tensor views |
//! | [`tokenize`] | `tokenize` | byte-level BPE (from GGUF or tokenizer.json) with training, and WordPiece |
//! | [`llm`] | `llm` | a LLaMA-family decoder on quantised GGUF weights: KV cache, sampling, Jinja chat templates (as `transformers` renders them), generation |
//! | [`prompt`] | `prompt` | application prompt templates (tera) with token budgets and truncation (oldest turns, middle of a document) |
//! | [`serve`] | `serve` | an OpenAI-compatible HTTP server (chat, completions, embeddings, SSE streaming, metrics) with continuous batching; structured output, tool calls, logprobs, `n`, penalties, `logit_bias` |
//! | [`nn`] | `nn` | models on the kernels: the BERT sentence encoder (all-MiniLM-L6-v2) |
//! | [`ml`] | `ml` | classical ML: linear/logistic regression, CART, random forest, histogram gradient boosting, k-means, metrics |
//! | [`registry`] | `registry` | the model registry: BLAKE3 content addressing, Ed25519 signatures, ChaCha20-Poly1305 at rest, stages, lineage |
//! | [`audit`] | `audit` | a ptrace syscall tracer (Linux x86_64): `strace -c` summary, hash-chained JSON Lines log, network and file policy |
//! | [`abtest`] | `abtest` | A/B rollout: sticky hashed assignment, traffic split with a shadow arm, z-test, Welch's t-test, sample size (matched to scipy) |
//! | [`serve_model`] | `serve-model` | a server for the tabular models: registry-verified loading, micro-batching, hot reload, metrics, an open-loop load generator |
//! | [`rag`] | `rag` | retrieval-augmented generation: Markdown/HTML/Parquet loading, four chunkers, a persisted hybrid index (BM25 + MiniLM/HNSW), fusion, MMR, reranking, context packing, cited answers, IR evaluation |
//! | [`score`] | `score` | batch scoring: Parquet or Delta in row groups, rayon workers, partitioned Parquet or Delta out, resumable after a crash |
//! | [`monitor`] | `monitor` | data validation (expectations on Arrow tables) and drift (PSI, KS, chi-squared, Jensen-Shannon, Wasserstein-1 equal to scipy), streaming over row groups |
//! | [`pipeline`] | `pipeline` | a DAG pipeline runner: TOML steps, content-addressed caching, atomic outputs, resume, retries, timeouts, MLflow logging, privacy tiers |
//! | [`quality`] | `quality` | quality gates: coverage (cargo llvm-cov), clippy, complexity (syn), duplication, docs, unsafe, todo!(); an A-F grade |

pub mod atomic_file;
pub mod cache;
pub mod fusion;
pub mod matmul;
#[cfg(feature = "llm")]
mod phases;
pub mod quant;
pub mod simd;

#[cfg(feature = "ann")]
pub mod ann;

#[cfg(feature = "search")]
pub mod search;

#[cfg(feature = "gpu")]
pub mod gpu;

#[cfg(feature = "tracking")]
pub mod tracking;

#[cfg(feature = "data")]
pub mod data;

#[cfg(feature = "formats")]
pub mod formats;

#[cfg(feature = "tokenize")]
pub mod tokenize;

#[cfg(feature = "nn")]
pub mod nn;

#[cfg(feature = "llm")]
pub mod llm;

#[cfg(feature = "serve")]
pub mod serve;

#[cfg(feature = "ml")]
pub mod ml;

#[cfg(feature = "registry")]
pub mod registry;

#[cfg(feature = "audit")]
pub mod audit;

#[cfg(feature = "serve-model")]
pub mod serve_model;

#[cfg(feature = "abtest")]
pub mod abtest;

#[cfg(feature = "score")]
pub mod score;

#[cfg(feature = "constrain")]
pub mod constrain;

#[cfg(feature = "prompt")]
pub mod prompt;

#[cfg(feature = "gateway")]
pub mod gateway;

#[cfg(feature = "rag")]
pub mod rag;

#[cfg(feature = "monitor")]
pub mod monitor;

#[cfg(feature = "pipeline")]
pub mod pipeline;

#[cfg(feature = "quality")]
pub mod quality;

#[cfg(feature = "observe")]
pub mod observe;

#[cfg(feature = "train")]
pub mod train;

/// Runs `f` on a worker of rayon's global pool: directly when the caller is one, else inside one
/// `rayon::scope`. A parallel region opened from outside the pool injects its job and parks the
/// caller until a worker finishes it, about 13 µs of wake-ups on a 2-vCPU VM; opened from a worker
/// it costs well under a microsecond. A pass that opens many regions (a forward pass, a blocked
/// GEMM) enters once through here and pays that once.
pub(crate) fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() { f() } else { rayon::scope(|_| f()) }
}

/// [`in_pool`], with the pool's other workers kept awake until `f` returns, for a pass of many
/// short parallel regions with serial steps between them (one sentence through an encoder, one
/// token through a decoder). An idle rayon worker sleeps on a futex after a few dozen yields, and
/// the next region then pays a wake-up on each side; here each other worker runs a task that takes
/// and runs pending jobs (`rayon::yield_now`, which steals like an idle worker) and otherwise
/// yields its core, so it is on hand for the next region. This is the busy-wait of OpenMP's
/// active wait policy and onnxruntime's spinning intra-op pool, for the length of one pass.
#[cfg(any(feature = "nn", feature = "llm"))]
pub(crate) fn in_pool_awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, Ordering};
    thread_local! {
        /// Set while this thread runs a pass under `in_pool_awake` (a nested call adds no keepers).
        static AWAKE: Cell<bool> = const { Cell::new(false) };
    }
    /// Idle rounds a keeper spins (a `pause` each) before it yields its core between rounds.
    const SPINS: u32 = 1000;
    in_pool(|| {
        let threads = rayon::current_num_threads();
        if threads == 1 || AWAKE.get() {
            return f();
        }
        let (done, home) = (AtomicBool::new(false), rayon::current_thread_index());
        rayon::scope(|s| {
            for _ in 1..threads {
                s.spawn(|_| {
                    // Never spin on the pass's own thread, where `done` is set further down the
                    // stack. (Thieves take the oldest job first, so the keepers leave this thread's
                    // queue before any job the pass forks can be stolen and waited for: the check
                    // is a guard, not a path the tests can reach.)
                    let mut idle = 0u32;
                    while rayon::current_thread_index() != home && !done.load(Ordering::Acquire) {
                        if rayon::yield_now() == Some(rayon::Yield::Executed) {
                            idle = 0;
                        } else if idle < SPINS {
                            idle += 1;
                            std::hint::spin_loop();
                        } else {
                            std::thread::yield_now();
                        }
                    }
                });
            }
            /// Releases the keepers and clears the flag when the pass ends, by return or by
            /// panic: the scope waits for its keepers before it unwinds, so a panic that left
            /// `done` unset would hang the caller instead of reaching it.
            struct EndOfPass<'a>(&'a AtomicBool);
            impl Drop for EndOfPass<'_> {
                fn drop(&mut self) {
                    AWAKE.set(false);
                    self.0.store(true, Ordering::Release);
                }
            }
            AWAKE.set(true);
            let _end = EndOfPass(&done);
            f()
        })
    })
}

#[cfg(all(test, any(feature = "nn", feature = "llm")))]
mod tests {
    /// A pass that panics reaches its caller as a panic (the keepers are released rather than
    /// left spinning, which would hang the caller: hence the deadline), and awake passes run
    /// normally afterwards.
    #[test]
    fn a_panicking_pass_unwinds_to_the_caller() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let caught = std::panic::catch_unwind(|| super::in_pool_awake(|| panic!("inside the pass")));
            let sum: u64 = super::in_pool_awake(|| {
                use rayon::prelude::*;
                (0..1000u64).into_par_iter().sum()
            });
            tx.send((caught.is_err(), sum)).unwrap();
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(60));
        assert_eq!(got, Ok((true, 499_500)), "the panicking pass hung or was swallowed");
    }
}

/// Everything that can go wrong in `kernels`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two inputs that must agree in dimension did not.
    #[error("dimension mismatch: expected {expected}, got {got}")]
    DimensionMismatch {
        /// The dimension required.
        expected: usize,
        /// The dimension given.
        got: usize,
    },
    /// A flat vector buffer whose length is not a multiple of the dimension.
    #[error("buffer of {len} floats is not a whole number of {dim}-dimensional vectors")]
    RaggedBuffer {
        /// Length of the buffer in floats.
        len: usize,
        /// The dimension it should be a multiple of.
        dim: usize,
    },
    /// A parameter outside its valid range (the message says which and why).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    // -- quant: add quantised-format variants below this line --
    /// A quantised buffer whose byte length is not a whole number of blocks.
    #[error("{format}: {len} bytes is not a whole number of {block_bytes}-byte blocks")]
    QuantRaggedBytes {
        /// The block format.
        format: crate::quant::QuantFormat,
        /// Length of the buffer in bytes.
        len: usize,
        /// Bytes per block.
        block_bytes: usize,
    },
    /// An element count (a vector or row length) that is not a multiple of the block length.
    #[error("{format}: {len} elements is not a multiple of the {block_len}-element block")]
    QuantRaggedLength {
        /// The block format.
        format: crate::quant::QuantFormat,
        /// The element count given.
        len: usize,
        /// Elements per block.
        block_len: usize,
    },
    /// Quantising a NaN or an infinity (refused: it would poison its block's scale).
    #[error("{format}: cannot quantise the non-finite value at index {index}")]
    QuantNonFinite {
        /// The block format.
        format: crate::quant::QuantFormat,
        /// Index of the first non-finite input.
        index: usize,
    },
    /// A block whose values are too large for the format's f16 scale(s).
    #[error("{format}: block {block} holds values too large for its f16 scale")]
    QuantOutOfRange {
        /// The block format.
        format: crate::quant::QuantFormat,
        /// Index of the block.
        block: usize,
    },
    // -- gpu: add GPU variants below this line --
    /// No GPU adapter could be opened; the message names the fix.
    #[cfg(feature = "gpu")]
    #[error(
        "no GPU adapter found ({0}); install a Vulkan driver, e.g. `apt-get install mesa-vulkan-drivers libvulkan1` \
         (software lavapipe), or use kernels::gpu::Device::auto() to fall back to the CPU"
    )]
    NoGpuAdapter(String),
    /// The GPU reported an error (device request, validation, out of memory, buffer mapping).
    #[cfg(feature = "gpu")]
    #[error("GPU: {0}")]
    Gpu(String),
    // -- data: add data-module variants below this line --
    /// A Parquet file could not be read or written (truncated, corrupt, unsupported).
    #[cfg(feature = "data")]
    #[error("parquet {path}: {source}")]
    Parquet {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying Parquet error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// An Arrow compute or conversion step failed.
    #[cfg(feature = "data")]
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A column named in a request is not in the schema.
    #[cfg(feature = "data")]
    #[error("no column {column:?} (available: {available:?})")]
    MissingColumn {
        /// The column asked for.
        column: String,
        /// The columns the schema has.
        available: Vec<String>,
    },
    /// A column has a type the operation cannot use.
    #[cfg(feature = "data")]
    #[error("column {column:?} has type {got}, expected {expected}")]
    ColumnType {
        /// The column.
        column: String,
        /// What the operation accepts.
        expected: String,
        /// The column's Arrow type.
        got: arrow::datatypes::DataType,
    },
    /// Batches whose schema differs from the table's (a Delta append, or mixed batches).
    #[cfg(feature = "data")]
    #[error("schema mismatch: {reason}\n  table: {expected}\n  given: {got}")]
    SchemaMismatch {
        /// What differs (first difference found).
        reason: String,
        /// The expected schema, one `name: type` per field.
        expected: String,
        /// The schema given.
        got: String,
    },
    /// The Delta Lake library failed (log, commit, object store).
    #[cfg(feature = "data")]
    #[error("delta table: {0}")]
    Delta(Box<deltalake::DeltaTableError>),
    /// A local file or folder of the data module could not be read or written.
    #[cfg(feature = "data")]
    #[error("{path}: {source}")]
    DataIo {
        /// The path.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    // -- formats: add model-file variants below this line --
    /// A model file could not be opened or memory-mapped.
    #[cfg(feature = "formats")]
    #[error("{path}: {source}")]
    FormatIo {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An HNSW index file that cannot be read or does not hold a valid index (bad magic, another
    /// version, a truncated section, a link to a node that does not exist, …).
    #[cfg(feature = "ann")]
    #[error("HNSW index {path}: {reason}")]
    AnnIndex {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong, naming the section or field.
        reason: String,
    },
    /// A model file that ends before a field it declares (or declares more than it holds).
    #[cfg(feature = "formats")]
    #[error("{format}: truncated at byte {offset}: {what} needs {needed} bytes, {available} left")]
    FormatTruncated {
        /// The file format.
        format: crate::formats::ModelFormat,
        /// Byte offset of the field in the file.
        offset: u64,
        /// The field being read.
        what: String,
        /// Bytes the field needs (at least).
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: u64,
    },
    /// A model file that breaks its format's rules (bad magic, absurd count, bad offset, invalid UTF-8, …).
    #[cfg(feature = "formats")]
    #[error("{format}: malformed at byte {offset}: {reason}")]
    FormatMalformed {
        /// The file format.
        format: crate::formats::ModelFormat,
        /// Byte offset of the offending field in the file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A model file of a version this reader does not support.
    #[cfg(feature = "formats")]
    #[error("{format}: version {version} is not supported (supported: {supported})")]
    FormatVersion {
        /// The file format.
        format: crate::formats::ModelFormat,
        /// The version found.
        version: u32,
        /// The versions this reader supports.
        supported: &'static str,
    },
    /// No tensor of that name in the model file.
    #[cfg(feature = "formats")]
    #[error("no tensor {name:?} in the model file")]
    MissingTensor {
        /// The tensor asked for.
        name: String,
    },
    /// A tensor whose element type the operation cannot handle (e.g. converting an I32 tensor to f32).
    #[cfg(feature = "formats")]
    #[error("tensor {name:?} has type {dtype}, which {operation} does not support")]
    UnsupportedTensorType {
        /// The tensor.
        name: String,
        /// Its element type, as the file names it.
        dtype: String,
        /// The operation refused.
        operation: &'static str,
    },
    /// No metadata entry of that key in the model file.
    #[cfg(feature = "formats")]
    #[error("no metadata key {key:?} in the model file")]
    MissingMetadata {
        /// The key asked for.
        key: String,
    },
    /// A metadata entry of another type than the one asked for.
    #[cfg(feature = "formats")]
    #[error("metadata key {key:?} has type {got}, expected {expected}")]
    MetadataType {
        /// The key.
        key: String,
        /// The type asked for.
        expected: &'static str,
        /// The type in the file.
        got: String,
    },
    // -- tokenize: add tokenizer variants below this line --
    /// A tokenizer definition (tokenizer.json, vocab.txt, GGUF metadata or parts) that is malformed or asks for
    /// something this implementation does not do; the message says which field and why.
    #[cfg(feature = "tokenize")]
    #[error("tokenizer {source_name}: {reason}")]
    TokenizerDefinition {
        /// Where the definition came from (a path, `GGUF metadata`, `parts`).
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A tokenizer file could not be read.
    #[cfg(feature = "tokenize")]
    #[error("tokenizer file {path}: {source}")]
    TokenizerIo {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A token id outside the vocabulary (in decode or a lookup).
    #[cfg(feature = "tokenize")]
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    UnknownTokenId {
        /// The id given.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    // -- nn: add model variants below this line --
    /// A model folder whose configuration is missing, unreadable, or asks for what the model does not implement.
    #[cfg(feature = "nn")]
    #[error("model config {path}: {reason}")]
    ModelConfig {
        /// The file (or folder) at fault.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A weight tensor whose shape is not the one the configuration implies.
    #[cfg(feature = "nn")]
    #[error("weight {name:?} has shape {got:?}, expected {expected:?}")]
    WeightShape {
        /// The tensor.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<u64>,
        /// The shape in the file.
        got: Vec<u64>,
    },
    /// A model input the model cannot take (a token id outside the vocabulary, a sequence longer than
    /// the position table, an empty sequence, a mask of the wrong length, …).
    #[cfg(feature = "nn")]
    #[error("model input, sequence {sequence}: {reason}")]
    ModelInput {
        /// Index of the sequence in the batch.
        sequence: usize,
        /// What is wrong.
        reason: String,
    },
    // -- llm: add language-model variants below this line --
    /// A model file this decoder cannot run (architecture, shapes or types it does not support).
    #[cfg(feature = "llm")]
    #[error("language model: {0}")]
    UnsupportedModel(String),
    /// A sequence reached the end of its KV cache.
    #[cfg(feature = "llm")]
    #[error("context full: the KV cache holds {capacity} positions")]
    ContextFull {
        /// Positions the cache was made for.
        capacity: usize,
    },
    /// A chat template that does not parse or fails to render (`raise_exception` included: its message).
    #[cfg(feature = "llm")]
    #[error("chat template: {0}")]
    ChatTemplate(String),
    // -- constrain: add constrained-decoding variants below this line --
    /// A JSON schema keyword constrained decoding does not enforce: refused, never silently ignored.
    #[cfg(feature = "constrain")]
    #[error("JSON schema: unsupported keyword `{keyword}`: {reason}")]
    UnsupportedSchema {
        /// The keyword (`patternProperties`, `$dynamicRef`, …).
        keyword: String,
        /// The engine's explanation.
        reason: String,
    },
    /// A grammar (schema, regex, Lark) that cannot be compiled, or a token the grammar does not allow.
    #[cfg(feature = "constrain")]
    #[error("grammar: {0}")]
    Grammar(String),
    // -- prompt: add prompt-template variants below this line --
    /// An application prompt template that does not parse or render.
    #[cfg(feature = "prompt")]
    #[error("prompt template: {0}")]
    PromptTemplate(String),
    /// A prompt that does not fit its token budget even at its minimum (what truncation cannot drop).
    #[cfg(feature = "prompt")]
    #[error("prompt budget: {what} needs {needed} tokens, {available} available")]
    PromptBudget {
        /// What had to fit (`the system message and the latest user turn`, `the truncation marker`, …).
        what: String,
        /// Tokens the minimum takes.
        needed: usize,
        /// Tokens the budget allows.
        available: usize,
    },
    // -- gateway: add gateway variants below this line --
    /// The gateway's configuration is invalid (the message names the key).
    #[cfg(feature = "gateway")]
    #[error("gateway config: {0}")]
    GatewayConfig(String),
    // -- serve: add server variants below this line --
    /// The HTTP server could not bind or serve.
    #[cfg(feature = "serve")]
    #[error("server: {0}")]
    Server(String),
    // -- ml: add classical-ML variants below this line --
    /// A NaN or an infinity in the input of a model that cannot take one (row and column of the first).
    #[cfg(feature = "ml")]
    #[error("non-finite value (NaN or infinity) at row {row}, column {column}")]
    MlNonFinite {
        /// Row (example) index.
        row: usize,
        /// Column (feature) index.
        column: usize,
    },
    /// A target (labels or scores to learn or evaluate) the operation cannot use: one class only, a label
    /// outside the allowed set, a non-finite value; the message says which and where.
    #[cfg(feature = "ml")]
    #[error("target: {0}")]
    MlTarget(String),
    /// An empty input where at least one row (or value) is needed.
    #[cfg(feature = "ml")]
    #[error("empty input: {0}")]
    MlEmpty(String),
    /// An iterative solver that stopped before meeting its tolerance.
    #[cfg(feature = "ml")]
    #[error("{solver} did not converge in {iterations} iterations: {reason}")]
    MlNotConverged {
        /// The solver (e.g. `logistic newton`).
        solver: &'static str,
        /// Iterations run.
        iterations: usize,
        /// The last state (gradient norm, step) or why it stopped.
        reason: String,
    },
    /// A model file that cannot be read or written as a model: I/O, a truncated or malformed safetensors
    /// file, a header entry missing or malformed.
    #[cfg(feature = "ml")]
    #[error("model file {path}: {reason}")]
    MlModelFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A model file that holds another kind of model than the one asked for.
    #[cfg(feature = "ml")]
    #[error("model file {path} holds a {found:?} model, expected a {expected:?} model")]
    MlModelKind {
        /// The file.
        path: std::path::PathBuf,
        /// The kind asked for.
        expected: String,
        /// The kind in the file.
        found: String,
    },
    /// A model file written in a format version this reader does not know.
    #[cfg(feature = "ml")]
    #[error("model file {path}: format version {found:?} is not supported (supported: {supported})")]
    MlModelVersion {
        /// The file.
        path: std::path::PathBuf,
        /// The version in the file.
        found: String,
        /// The version this reader supports.
        supported: u32,
    },
    /// A model's saved parts that cannot be rebuilt into the model: an array or parameter missing,
    /// of the wrong type or shape, or inconsistent with the rest.
    #[cfg(feature = "ml")]
    #[error("model part {name:?}: {reason}")]
    MlModelParts {
        /// The array or parameter at fault.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A tree model that [`ml::compiled::compile`] cannot turn into machine code (another CPU or OS,
    /// several outputs per row, executable memory refused); predict with [`ml::flat::FlatForest`] instead.
    #[cfg(feature = "ml")]
    #[error("compiling the tree model: {0}")]
    MlCompile(String),
    // -- registry: add model-registry variants below this line --
    /// A registry file or folder could not be read or written (the path says which).
    #[cfg(feature = "registry")]
    #[error("registry I/O on {path}: {source}")]
    RegistryIo {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The operating system's random source failed (keys, nonces and salts come from it).
    #[cfg(feature = "registry")]
    #[error("registry: the OS random source failed: {0}")]
    RegistryRandom(String),
    /// A model name, artefact name, `name@version` reference or other argument the registry refuses.
    #[cfg(feature = "registry")]
    #[error("registry: invalid {what} {value:?}: {reason}")]
    RegistryInvalid {
        /// What was given (`model name`, `artefact name`, `reference`, `stage`, …).
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// No such model version (no ref `refs/<name>/<version>`), or no such object in the store.
    #[cfg(feature = "registry")]
    #[error("registry: {what} not found")]
    RegistryNotFound {
        /// The reference or object asked for.
        what: String,
    },
    /// `push`/`import` of a version that already exists with other content (versions are immutable).
    #[cfg(feature = "registry")]
    #[error("registry: {reference} already exists (manifest {existing}); versions are immutable")]
    RegistryVersionExists {
        /// `name@version`.
        reference: String,
        /// The digest of the manifest already registered.
        existing: String,
    },
    /// A stored object whose bytes do not hash to its address (a corrupt or partial object).
    #[cfg(feature = "registry")]
    #[error("registry: object {expected} is corrupt: its content hashes to {found}")]
    RegistryObjectCorrupt {
        /// The address (BLAKE3 hex) read.
        expected: String,
        /// The BLAKE3 hex of what was found.
        found: String,
    },
    /// A manifest whose bytes do not hash to the digest its ref (or caller) names.
    #[cfg(feature = "registry")]
    #[error("registry: manifest of {reference} hashes to {found}, its ref names {expected}")]
    RegistryManifestDigest {
        /// `name@version` (or the bundle path).
        reference: String,
        /// The digest expected.
        expected: String,
        /// The digest of the bytes found.
        found: String,
    },
    /// A manifest that is not the registry's canonical JSON or misses a field (checked after its signature).
    #[cfg(feature = "registry")]
    #[error("registry: malformed manifest ({reference}): {reason}")]
    RegistryManifestMalformed {
        /// `name@version`, digest or path of the manifest.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// A ref `name@version` whose manifest is for another model or version (an old manifest replayed).
    #[cfg(feature = "registry")]
    #[error("registry: ref {reference} points to a manifest for {manifest}")]
    RegistryRefMismatch {
        /// The ref asked for.
        reference: String,
        /// The `name@version` the manifest states.
        manifest: String,
    },
    /// A signature by a key that is not in the pinned keyring.
    #[cfg(feature = "registry")]
    #[error("registry: {subject} is signed by key {key_id}, which is not in the keyring")]
    RegistryUntrustedKey {
        /// What was signed (`manifest fraud@3`, `promotion entry 4`).
        subject: String,
        /// The signer's key id (16 hex).
        key_id: String,
    },
    /// A signature by a key the keyring revokes (a `revoked <key id>` line): refused whatever it signed.
    #[cfg(feature = "registry")]
    #[error("registry: {subject} is signed by key {key_id}, which the keyring revokes")]
    RegistryRevokedKey {
        /// What was signed.
        subject: String,
        /// The revoked key id (16 hex).
        key_id: String,
    },
    /// A version whose signed manifest names a parent version the registry does not hold.
    #[cfg(feature = "registry")]
    #[error("registry: {reference} names parent {parent}, which the registry does not know")]
    RegistryUnknownParent {
        /// `name@version` of the child.
        reference: String,
        /// The parent it names.
        parent: String,
    },
    /// A signature that does not verify (RFC 8032, strict) under the named trusted key.
    #[cfg(feature = "registry")]
    #[error("registry: bad signature on {subject} (key {key_id})")]
    RegistryBadSignature {
        /// What was signed.
        subject: String,
        /// The key id the signature names.
        key_id: String,
    },
    /// A signature file that is not `key id (8 bytes) || Ed25519 signature (64 bytes)`.
    #[cfg(feature = "registry")]
    #[error("registry: malformed signature for {subject}: {reason}")]
    RegistrySignatureMalformed {
        /// What was signed.
        subject: String,
        /// What is wrong (length, missing file).
        reason: String,
    },
    /// A manifest naming another signer than the key that signed it.
    #[cfg(feature = "registry")]
    #[error("registry: manifest {reference} names signer {manifest_key_id} but was signed by {signature_key_id}")]
    RegistrySignerMismatch {
        /// `name@version`.
        reference: String,
        /// `signer_key_id` in the manifest.
        manifest_key_id: String,
        /// The key id in the signature.
        signature_key_id: String,
    },
    /// An artefact listed in a manifest that is not in the store (or bundle).
    #[cfg(feature = "registry")]
    #[error("registry: artefact {artefact:?} of {reference} is missing")]
    RegistryArtefactMissing {
        /// `name@version`.
        reference: String,
        /// The artefact's name.
        artefact: String,
    },
    /// An artefact whose size is not the manifest's.
    #[cfg(feature = "registry")]
    #[error("registry: artefact {artefact:?} of {reference} has {found} bytes, the manifest says {expected}")]
    RegistryArtefactSize {
        /// `name@version`.
        reference: String,
        /// The artefact's name.
        artefact: String,
        /// Size in the manifest.
        expected: u64,
        /// Size found.
        found: u64,
    },
    /// An artefact whose BLAKE3 digest is not the manifest's.
    #[cfg(feature = "registry")]
    #[error("registry: artefact {artefact:?} of {reference} hashes to {found}, the manifest says {expected}")]
    RegistryArtefactDigest {
        /// `name@version`.
        reference: String,
        /// The artefact's name.
        artefact: String,
        /// Digest in the manifest.
        expected: String,
        /// Digest found.
        found: String,
    },
    /// A key file (signing or public key, or a keyring file) that cannot be used.
    #[cfg(feature = "registry")]
    #[error("registry: key file {path}: {reason}")]
    RegistryKeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong (format, length, permissions).
        reason: String,
    },
    /// A sealed file whose header cannot be used: magic, format version, KDF id or parameters, truncation.
    #[cfg(feature = "registry")]
    #[error("registry: sealed file {path}: {reason}")]
    RegistrySealedHeader {
        /// The sealed file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A sealed file whose authentication tag does not verify: wrong key or passphrase, a tampered
    /// nonce or ciphertext, or a ciphertext moved to another artefact or version (RFC 8439 AEAD).
    #[cfg(feature = "registry")]
    #[error(
        "registry: cannot decrypt {path}: authentication failed (wrong key or passphrase, tampered, or bound to another artefact)"
    )]
    RegistryDecrypt {
        /// The sealed file.
        path: std::path::PathBuf,
    },
    /// A sealed artefact met without a key to open it.
    #[cfg(feature = "registry")]
    #[error("registry: artefact {artefact:?} is sealed and no key was given")]
    RegistryKeyRequired {
        /// The artefact's name.
        artefact: String,
    },
    /// A promotion log whose replay failed at an entry (0-based); `check` says which check.
    #[cfg(feature = "registry")]
    #[error("registry: promotion log entry {entry}: {check}")]
    RegistryLog {
        /// Index of the first entry that failed.
        entry: usize,
        /// The check that failed.
        check: crate::registry::LogCheck,
    },
    /// A bundle folder that is not a registry bundle (a file missing, an unexpected file).
    #[cfg(feature = "registry")]
    #[error("registry: bundle {path}: {reason}")]
    RegistryBundle {
        /// The bundle folder.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    // -- serve-model: add tabular-model-server variants below this line --
    /// A model the tabular server will not serve: an unsigned, tampered or unknown registry version, a
    /// file that is not a model, no version in the stage asked for (the cause says which).
    #[cfg(feature = "serve-model")]
    #[error("cannot serve {what}: {cause}")]
    ServeModelLoad {
        /// The source: `fraud@production in registry reg/`, `models/fraud/model.safetensors`.
        what: String,
        /// Why (the registry's or model reader's error).
        cause: Box<Error>,
    },
    /// A model source or server setting that cannot be used (the message says which and why).
    #[cfg(feature = "serve-model")]
    #[error("model server: {0}")]
    ServeModelConfig(String),
    /// The model server or its load generator could not bind, connect or serve.
    #[cfg(feature = "serve-model")]
    #[error("model server I/O: {0}")]
    ServeModelIo(String),
    // -- score: batch-scoring variants --
    /// A scoring input that cannot be used: absent, no Parquet files, files whose columns disagree.
    #[cfg(feature = "score")]
    #[error("score: input {path}: {reason}")]
    ScoreInput {
        /// The input (or the offending file).
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A model that cannot score this input (e.g. a missing value for a model that cannot take one).
    #[cfg(feature = "score")]
    #[error("score: model {model} cannot score {input}: {reason}")]
    ScoreModelMismatch {
        /// The model's name.
        model: String,
        /// The input.
        input: std::path::PathBuf,
        /// What does not fit, naming the row and column.
        reason: String,
    },
    /// An output that already holds something other than this job's scores (refused without `overwrite`).
    #[cfg(feature = "score")]
    #[error("score: output {path} already holds {what}; pass --overwrite (ScoreConfig::overwrite) to replace it")]
    ScoreOutputExists {
        /// The output.
        path: std::path::PathBuf,
        /// What it holds.
        what: String,
    },
    /// A file or folder of a scoring run could not be read or written.
    #[cfg(feature = "score")]
    #[error("score: {path}: {source}")]
    ScoreIo {
        /// The path.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    // -- abtest: A/B testing variants --
    /// A traffic split or rollout config that cannot route: no arms, a negative or non-finite weight,
    /// weights not summing to 1, one weight per arm missing, a shadow arm that does not exist.
    #[cfg(feature = "abtest")]
    #[error("abtest split: {0}")]
    AbSplit(String),
    /// An empty sample or an arm with no trials.
    #[cfg(feature = "abtest")]
    #[error("abtest: empty input: {0}")]
    AbEmpty(String),
    /// A sample too small for the test (Welch's t-test needs at least 2 observations per sample).
    #[cfg(feature = "abtest")]
    #[error("abtest: {what} has {n} observations, at least {min} are needed")]
    AbTooFew {
        /// The sample.
        what: String,
        /// Its size.
        n: usize,
        /// The minimum size.
        min: usize,
    },
    /// A proportion outside [0, 1] (or more successes than trials).
    #[cfg(feature = "abtest")]
    #[error("abtest: proportion out of range: {0}")]
    AbProportion(String),
    /// Data with no variance to test (every trial alike, both samples constant, no effect to size for).
    #[cfg(feature = "abtest")]
    #[error("abtest: degenerate input: {0}")]
    AbDegenerate(String),
    // -- audit: syscall-tracer variants --
    /// Tracing needs ptrace on Linux x86_64.
    #[cfg(feature = "audit")]
    #[error("audit: system-call tracing needs Linux on x86_64 (this is {platform})")]
    AuditUnsupported {
        /// `os-arch` of this build.
        platform: String,
    },
    /// The command to trace could not be started under the tracer.
    #[cfg(feature = "audit")]
    #[error("audit: cannot trace {program}: {reason}")]
    AuditSpawn {
        /// The program as given.
        program: String,
        /// Why (not found, ptrace refused, …).
        reason: String,
    },
    /// A ptrace(2) or wait request failed.
    #[cfg(feature = "audit")]
    #[error("audit: {op} on task {pid}: {source}")]
    AuditPtrace {
        /// The request (`PTRACE_SETOPTIONS`, `waitpid`, …).
        op: &'static str,
        /// The task.
        pid: i32,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The event log could not be written or read.
    #[cfg(feature = "audit")]
    #[error("audit: log {path}: {source}")]
    AuditIo {
        /// The log file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An event log that does not verify: the first bad line (1-based) and the check it failed.
    #[cfg(feature = "audit")]
    #[error("audit: log {path}, line {line}: {check}")]
    AuditLog {
        /// The log file.
        path: std::path::PathBuf,
        /// The line (1-based).
        line: u64,
        /// What is wrong there.
        check: crate::audit::LogCheck,
    },
    // -- rag: retrieval-augmented-generation variants --
    #[cfg(feature = "rag")]
    #[error("{path}: {reason}")]
    RagLoad { path: std::path::PathBuf, reason: String },
    #[cfg(feature = "rag")]
    #[error("{path}: {source}")]
    RagIo {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[cfg(feature = "rag")]
    #[error(
        "the index at {path} was built with {what} {built}, but the current one is {current}; rebuild it with `sovereign rag index`"
    )]
    RagIndexMismatch { path: std::path::PathBuf, what: &'static str, built: String, current: String },
    #[cfg(feature = "rag")]
    #[error("the index at {path} is damaged: {reason}")]
    RagIndexCorrupt { path: std::path::PathBuf, reason: String },
    #[cfg(feature = "rag")]
    #[error("{source_name} line {line}: {reason}")]
    RagEvalFormat { source_name: String, line: usize, reason: String },
    // -- rag (load/chunk): add variants below this line --
    // -- rag (index/retrieve/rerank): add variants below this line --
    /// Two documents with one id in one call that adds documents to a RAG index.
    #[cfg(feature = "rag")]
    #[error("document id {id} appears more than once in one batch")]
    RagDuplicateDocument { id: String },
    // -- rag (pack/answer): add variants below this line --
    /// A retrieval hit names a chunk id the index does not hold (deleted, or from another index).
    #[cfg(feature = "rag")]
    #[error("hit names chunk {chunk}, which is not in the index")]
    RagUnknownChunk { chunk: u32 },
    /// The prompt and the answer budget do not fit the generator's context.
    #[cfg(feature = "rag")]
    #[error(
        "the RAG prompt has {prompt} tokens and the answer may take {answer}, over the model's context of {context}"
    )]
    RagPromptTooLong { prompt: usize, answer: usize, context: usize },
    // -- rag (eval): add variants below this line --
    // -- monitor (drift): add variants below this line --
    /// A sample with no values, or a histogram with no mass (no bins, or every count zero).
    #[cfg(feature = "monitor")]
    #[error("monitor: {what} is empty")]
    MonitorEmptySample {
        /// The input, as the caller would name it (`reference`, `current histogram`, …).
        what: String,
    },
    /// A NaN or infinite value where only finite ones are allowed.
    #[cfg(feature = "monitor")]
    #[error("monitor: {what} holds a non-finite value at index {index} (drop missing values first)")]
    MonitorNonFinite {
        /// The input.
        what: String,
        /// The first such value's index.
        index: usize,
    },
    /// Any other input a drift statistic cannot use: mismatched lengths, zero bins, a non-positive
    /// epsilon, edges not strictly increasing, a negative histogram entry, fewer than two categories.
    #[cfg(feature = "monitor")]
    #[error("monitor: {0}")]
    MonitorInvalid(String),
    // -- monitor (expectations/stream): add variants below this line --
    /// An expectation suite that does not parse (serde's message names the line and the key).
    #[cfg(feature = "monitor")]
    #[error("expectation suite: {reason}")]
    MonitorSuite { reason: String },
    /// Batches given as one table whose schemas differ.
    #[cfg(feature = "monitor")]
    #[error("batch {batch}: {reason}")]
    MonitorSchemaMismatch { batch: usize, reason: String },
    /// A file of the monitor (a table, a profile) could not be opened, read or written.
    #[cfg(feature = "monitor")]
    #[error("{path}: {source}")]
    MonitorIo {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file that is not Parquet, or a truncated or corrupt one (the reader's message says where).
    #[cfg(feature = "monitor")]
    #[error("{path}: not a readable Parquet file: {reason}")]
    MonitorParquet { path: std::path::PathBuf, reason: String },
    /// A column named by a profile, a configuration or a date column that the table lacks.
    #[cfg(feature = "monitor")]
    #[error("{table}: no column {column:?} (columns: {available})")]
    MonitorUnknownColumn { table: String, column: String, available: String },
    /// A column whose Arrow type the operation cannot use (e.g. a date column that is a string).
    #[cfg(feature = "monitor")]
    #[error("column {column:?} is {data_type}: {expected}")]
    MonitorColumnType { column: String, data_type: String, expected: String },
    /// A categorical reference column with more distinct values than the profile keeps.
    #[cfg(feature = "monitor")]
    #[error("column {column:?} has more than {limit} distinct values: too many to profile as categories")]
    MonitorTooManyCategories { column: String, limit: usize },
    /// A reference profile that does not parse or does not hold together (edges, counts, version).
    #[cfg(feature = "monitor")]
    #[error("drift profile {source_name}: {reason}")]
    MonitorProfile { source_name: String, reason: String },
    // -- pipeline: add pipeline-runner variants below this line --
    /// A pipeline file is malformed: TOML syntax, an unknown key, a duplicate step, an unknown
    /// dependency, an output produced twice, a missing input, a bad placeholder or setting.
    #[cfg(feature = "pipeline")]
    #[error("pipeline {file}: {reason}")]
    PipelineConfig {
        /// The file (or the name given to the text).
        file: String,
        /// What is wrong, naming the step and key.
        reason: String,
    },
    /// The steps' dependencies form a cycle (its members in order, the first repeated at the end).
    #[cfg(feature = "pipeline")]
    #[error("pipeline {file}: dependency cycle: {}", steps.join(" -> "))]
    PipelineCycle {
        /// The file.
        file: String,
        /// The steps of the cycle, in dependency order, the first repeated last.
        steps: Vec<String>,
    },
    /// A file or folder of a pipeline run could not be read or written.
    #[cfg(feature = "pipeline")]
    #[error("pipeline step {step}: {path}: {source}")]
    PipelineIo {
        /// The step (or `(state)` for the runner's own files).
        step: String,
        /// The path.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The runner's state folder is unusable: a damaged state file, or another run holds its lock.
    #[cfg(feature = "pipeline")]
    #[error("pipeline state {path}: {reason}")]
    PipelineState {
        /// The state file or folder.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A step failed on its last attempt (non-zero exit, a missing output, a function's error).
    #[cfg(feature = "pipeline")]
    #[error("step {step} failed after {attempts} attempt(s): {reason}{}", if stderr_tail.is_empty() { String::new() } else { format!("; stderr: {stderr_tail}") })]
    PipelineStepFailed {
        /// The step.
        step: String,
        /// Attempts made.
        attempts: u32,
        /// Why the last attempt failed (`exit code 1`, …).
        reason: String,
        /// The last lines of its stderr, joined with ` | ` (empty for a function step).
        stderr_tail: String,
    },
    /// A step's last attempt ran past its timeout and was killed (its whole process group).
    #[cfg(feature = "pipeline")]
    #[error("step {step} timed out after {timeout_s} s (attempt {attempts}); its process group was killed")]
    PipelineStepTimeout {
        /// The step.
        step: String,
        /// The timeout, seconds.
        timeout_s: f64,
        /// Attempts made.
        attempts: u32,
    },
    /// A step of the sovereign tier tried to reach a non-loopback address; the call was denied by
    /// `kernels::audit`, and nothing of the step's outputs was committed.
    #[cfg(feature = "pipeline")]
    #[error("step {step} (tier sovereign): {call} to {addr} denied: not loopback; no output committed")]
    PipelineNetworkDenied {
        /// The step.
        step: String,
        /// The system call (`connect`, `sendto`, `sendmsg`).
        call: String,
        /// The address it tried to reach, e.g. `192.0.2.1:80`.
        addr: String,
    },
    /// A privacy tier cannot be honoured: a sovereign function step, a step looser than its pipeline,
    /// a non-loopback tracking server for a sovereign step, or no tracer to enforce the tier.
    #[cfg(feature = "pipeline")]
    #[error("step {step}: privacy tier: {reason}")]
    PipelineTier {
        /// The step (or `(pipeline)`).
        step: String,
        /// Why.
        reason: String,
    },
    /// A step was not run because a step it depends on failed.
    #[cfg(feature = "pipeline")]
    #[error("step {step} not run: it depends on {failed}, which failed")]
    PipelineUpstreamFailed {
        /// The step not run.
        step: String,
        /// The failed (or not run) step it depends on.
        failed: String,
    },
    // -- quality: add quality-gate variants below this line --
    /// A Rust file of the crate under a quality gate does not parse (`syn`'s first error).
    #[cfg(feature = "quality")]
    #[error("{file}:{line}:{column}: does not parse: {message}")]
    QualityParse { file: String, line: usize, column: usize, message: String },
    /// The folder given to the quality gate is not a crate (no `Cargo.toml` with a `[package]`).
    #[cfg(feature = "quality")]
    #[error("{path} is not a Rust crate: {reason}")]
    QualityNotACrate { path: std::path::PathBuf, reason: String },
    /// A tool the quality gate runs is not installed (`install` is the command that installs it).
    #[cfg(feature = "quality")]
    #[error("{tool} is not installed (looked in {looked}); install it with `{install}`")]
    QualityToolMissing { tool: String, looked: String, install: String },
    /// A tool the quality gate runs failed or printed what it does not understand.
    #[cfg(feature = "quality")]
    #[error("`{command}` in {dir}: {reason}")]
    QualityTool { command: String, dir: std::path::PathBuf, reason: String },
    /// The quality gate's TOML configuration has an unknown key or a bad value.
    #[cfg(feature = "quality")]
    #[error("{path}: key `{key}`: {reason}")]
    QualityConfig { path: String, key: String, reason: String },
    /// A file the quality gate reads or writes.
    #[cfg(feature = "quality")]
    #[error("{path}: {source}")]
    QualityIo {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    // -- observe prom/trace: add variants below this line --
    /// A Prometheus text exposition that does not parse.
    #[cfg(feature = "observe")]
    #[error("Prometheus text, line {line}: {reason}")]
    PromParse {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    // -- observe slo/rules/prometheus: add variants below this line --
    /// An SLO file with an unknown, missing or mistyped key or a value out of range (`key` dotted).
    #[cfg(feature = "observe")]
    #[error("SLO file {path}: key `{key}`: {reason}")]
    SloConfig {
        /// The file (or `(string)`).
        path: String,
        /// The dotted key, e.g. `latency.threshold_seconds`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    // -- observe shed/canary and gateway: add variants below this line --
    /// A load-shedding configuration is invalid (the message names the key).
    #[cfg(feature = "observe")]
    #[error("shed config: {0}")]
    ShedConfig(String),
    /// A canary configuration is invalid (the message names the key).
    #[cfg(feature = "observe")]
    #[error("canary config: {0}")]
    CanaryConfig(String),
    // -- serve overload: add variants below this line --
    // -- tracking: add tracking-client variants below this line --
    /// The MLflow tracking server answered with an error (`error_code` as MLflow names it).
    #[cfg(feature = "tracking")]
    #[error("MLflow {endpoint}: HTTP {status} {error_code}: {message} (after {attempts} attempt(s))")]
    Mlflow {
        /// The REST endpoint, e.g. `experiments/create`.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// MLflow's `error_code`, e.g. `RESOURCE_ALREADY_EXISTS`.
        error_code: crate::tracking::ErrorCode,
        /// MLflow's `message` (or the raw body when it sent no MLflow error).
        message: String,
        /// How many attempts were made (1 when the error was not retryable).
        attempts: u32,
    },
    /// A tracking request could not be delivered: connection refused or broken, timeout.
    #[cfg(feature = "tracking")]
    #[error("MLflow {endpoint}: transport error after {attempts} attempt(s): {source}")]
    TrackingTransport {
        /// The REST endpoint.
        endpoint: String,
        /// How many attempts were made.
        attempts: u32,
        /// The underlying HTTP client error.
        #[source]
        source: reqwest::Error,
    },
    /// The tracking server's answer was not the JSON its REST API documents.
    #[cfg(feature = "tracking")]
    #[error("MLflow {endpoint}: unexpected response: {message}")]
    TrackingResponse {
        /// The REST endpoint.
        endpoint: String,
        /// What was wrong.
        message: String,
    },
    /// A local MLflow server could not be started (MLflow missing, early exit, not healthy in time).
    #[cfg(feature = "tracking")]
    #[error("local MLflow server: {0}")]
    TrackingServer(String),
    /// A local file or folder of an artifact transfer could not be read or written.
    #[cfg(feature = "tracking")]
    #[error("artifact file {path}: {source}")]
    TrackingIo {
        /// The local path.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A [`tracking::MetricLogger`] could not deliver every metric it was given.
    #[cfg(feature = "tracking")]
    #[error(
        "metric logger: {undelivered} metric(s) not delivered in time, {rejected} rejected by the server; last error: {last}"
    )]
    MetricsNotDelivered {
        /// Metrics still buffered when the deadline passed (the server kept failing).
        undelivered: u64,
        /// Metrics the server refused with a 4xx (e.g. the run was deleted).
        rejected: u64,
        /// The last error seen.
        last: Box<Error>,
    },
    /// An autograd operation got inputs it cannot combine (the op, and the shapes it saw).
    #[cfg(feature = "train")]
    #[error("autograd {op}: {detail}")]
    TrainShape {
        /// The operation, e.g. `matmul`.
        op: &'static str,
        /// What did not fit, with the shapes.
        detail: String,
    },
    /// A training checkpoint (optimiser state, adapter weights) that cannot be resumed.
    #[cfg(feature = "train")]
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    // Error variants of kernels::train (autograd helper) go above this line.
    /// A parameter an optimiser cannot step: its gradient has another length or holds a NaN or an
    /// infinity, or it is not the parameter the optimiser's state was made for (names the parameter).
    #[cfg(feature = "train")]
    #[error("optimiser: parameter {param:?}: {reason}")]
    OptimParam {
        /// The parameter's name (`gradient #i` where the gradients are unnamed).
        param: String,
        /// What is wrong.
        reason: String,
    },
    // Error variants of kernels::train (optim helper) go above this line.
    /// A LoRA configuration that cannot build adapters (the field, and why): a rank of 0, a
    /// projection name that does not exist, a dropout outside `[0, 1)`.
    #[cfg(feature = "finetune")]
    #[error("LoRA config {field}: {reason}")]
    LoraConfig {
        /// The field of `LoraConfig` at fault (`rank`, `alpha`, `dropout`, `targets`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A line of a chat-format JSON Lines file that cannot be a training conversation (the file, the
    /// 1-based line, 0 for the file as a whole, and why).
    #[cfg(feature = "finetune")]
    #[error("fine-tuning data {path}:{line}: {reason}")]
    FinetuneData {
        /// The file.
        path: std::path::PathBuf,
        /// The 1-based line (0: the whole file).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A fine-tuning setting out of range (the field of `FinetuneConfig`, and why).
    #[cfg(feature = "finetune")]
    #[error("fine-tuning config {field}: {reason}")]
    FinetuneConfig {
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    // Error variants of kernels::train (finetune helper) go above this line.
    /// The full-text engine failed.
    #[cfg(feature = "search")]
    #[error("search engine: {0}")]
    Search(#[from] tantivy::TantivyError),
    /// A query string the full-text engine could not parse.
    #[cfg(feature = "search")]
    #[error("query: {0}")]
    Query(#[from] tantivy::query::QueryParserError),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
