//! Week c4w3: embeddings and vector search from first principles.
//!
//! You rebuild, piece by piece, what a managed vector-search service does:
//!
//! | module | what you write | tasks |
//! |---|---|---|
//! | [`distance`] | dot product, squared L2 and cosine on 8-lane SIMD vectors (`wide::f32x8`) | `c4w3.simd-distances` |
//! | [`knn`] | exact (brute-force) top-k search with a bounded heap | `c4w3.exact-knn` |
//! | [`hnsw`] | a Hierarchical Navigable Small World graph: beam search on one layer, heuristic neighbour selection, insert, search | `c4w3.hnsw-*` |
//! | [`bm25`] | an inverted index scored with Okapi BM25 | `c4w3.bm25` |
//! | [`fusion`] | reciprocal rank fusion of several rankings (hybrid search) | `c4w3.rrf` |
//!
//! Every task is a function whose body is `todo!("<task id>")`; its doc comment says
//! what to do and how many points it is worth. `cargo test -p c4w3-vector-search`
//! runs the visible tests; `cargo xtask grade c4w3` runs them and the hidden ones.
//!
//! Results are ranked with the production type [`kernels::ann::Neighbor`] and
//! distances follow [`kernels::simd::Metric`]: **smaller is always nearer**.
#![allow(unused_variables, dead_code, unused_imports, unused_mut)]

pub mod bm25;
pub mod distance;
pub mod fusion;
pub mod hnsw;
pub mod knn;

pub use kernels::ann::Neighbor;
pub use kernels::simd::Metric;
