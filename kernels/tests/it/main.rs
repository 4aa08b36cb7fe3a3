//! Integration tests of `kernels`: one test binary, one module per area.
//!
//! Every test compares against an independent reference: a scalar twin, a
//! naive sort, brute-force search, or a hand-computed value.

mod fusion;
mod lowp;
mod matmul;
mod ops;
mod quant;
mod simd;

#[cfg(feature = "ann")]
mod exact;
#[cfg(feature = "ann")]
mod hnsw;

#[cfg(feature = "search")]
mod search;

#[cfg(feature = "gpu")]
mod gpu;

#[cfg(feature = "tracking")]
mod tracking;

#[cfg(feature = "data")]
mod data;

#[cfg(feature = "tokenize")]
mod tokenize;

#[cfg(feature = "formats")]
mod formats;

#[cfg(feature = "llm")]
mod llm;
