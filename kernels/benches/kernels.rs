//! Criterion benchmarks of `kernels`: one binary, one file per operation under `benches/kernels/`.
//!
//! Run with `cargo bench -p kernels` (or one group: `cargo bench -p kernels -- hnsw`).

use criterion::criterion_main;

#[path = "kernels/distances.rs"]
mod distances;
#[path = "kernels/exact.rs"]
mod exact;
#[path = "kernels/hnsw.rs"]
mod hnsw;
#[path = "kernels/ops.rs"]
mod ops;

criterion_main!(distances::benches, exact::benches, hnsw::benches, ops::benches);
