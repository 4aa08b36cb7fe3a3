//! `kernels`: the production compute stack every lab builds on and is graded against.
//!
//! It plays the role the course seeds give to trueno (SIMD), trueno-rag (BM25 +
//! vectors) and friends. Each module is named for what it does and sits behind a
//! cargo feature so a lab compiles only what it uses:
//!
//! | module | feature | what it does |
//! |---|---|---|
//! | [`simd`] | always | distances (dot, squared L2, cosine) and vector ops (reductions, softmax, GELU/SiLU, RMSNorm/LayerNorm) with runtime CPU dispatch and scalar twins |
//! | [`ann`] | `ann` | exact top-k search and a production HNSW index |
//! | [`fusion`] | always | reciprocal rank fusion of several ranked lists |
//! | [`search`] | `search` | BM25 full-text search backed by tantivy (re-exports [`fusion`]'s RRF) |
//! | [`matmul`] | always | f32 GEMM and GEMV, cache-blocked with a SIMD micro-kernel, rayon-parallel; batched matmul |
//! | [`quant`] | always | GGUF block formats (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K, Q8_K): quantise, dequantise, dot and GEMV on the blocks |
//! | [`gpu`] | `gpu` | wgpu compute: GEMM, batched distances with top-k, quantised GEMV, CPU fallback |
//! | [`tracking`] | `tracking` | a typed async client for MLflow's tracking REST API |

pub mod fusion;
pub mod matmul;
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
    // -- gpu: add GPU variants below this line --
    // -- tracking: add tracking-client variants below this line --
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
