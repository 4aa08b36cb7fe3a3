//! Criterion benchmarks of `kernels`: one binary, one file per operation under `benches/kernels/`.
//!
//! Run with `cargo bench -p kernels` (or one group: `cargo bench -p kernels -- hnsw`).

use criterion::criterion_main;

#[path = "kernels/distances.rs"]
mod distances;
#[path = "kernels/exact.rs"]
mod exact;
#[cfg(feature = "gpu")]
#[path = "kernels/gpu.rs"]
mod gpu;
#[path = "kernels/hnsw.rs"]
mod hnsw;
#[path = "kernels/lowp.rs"]
mod lowp;
#[path = "kernels/matmul.rs"]
mod matmul;
#[path = "kernels/ops.rs"]
mod ops;
#[path = "kernels/quant.rs"]
mod quant;
#[cfg(feature = "tokenize")]
#[path = "kernels/tokenize.rs"]
mod tokenize;
/// Without the `tokenize` feature the tokenizer group is empty.
#[cfg(not(feature = "tokenize"))]
mod tokenize {
    pub fn benches() {}
}

#[cfg(not(feature = "gpu"))]
criterion_main!(
    distances::benches,
    exact::benches,
    hnsw::benches,
    matmul::benches,
    lowp::benches,
    ops::benches,
    quant::benches,
    tokenize::benches
);
#[cfg(feature = "gpu")]
criterion_main!(
    distances::benches,
    exact::benches,
    hnsw::benches,
    matmul::benches,
    lowp::benches,
    ops::benches,
    quant::benches,
    tokenize::benches,
    gpu::benches
);
