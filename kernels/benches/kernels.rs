//! Criterion benchmarks of `kernels`: one binary, one file per operation under `benches/kernels/`.
//!
//! Run with `cargo bench -p kernels` (or one group: `cargo bench -p kernels -- hnsw`); the classical-ML
//! groups need the `ml` feature: `cargo bench -p kernels --features ml -- ml_`.

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
#[cfg(feature = "ml")]
#[path = "kernels/ml_data.rs"]
mod ml_data;
#[cfg(feature = "ml")]
#[path = "kernels/ml_forest.rs"]
mod ml_forest;
#[cfg(feature = "ml")]
#[path = "kernels/ml_gbm.rs"]
mod ml_gbm;
#[cfg(feature = "ml")]
#[path = "kernels/ml_predict.rs"]
mod ml_predict;
/// Without the `ml` feature the classical-ML groups are empty.
#[cfg(not(feature = "ml"))]
mod ml_forest {
    pub fn benches() {}
}
#[cfg(not(feature = "ml"))]
mod ml_gbm {
    pub fn benches() {}
}
#[cfg(not(feature = "ml"))]
mod ml_predict {
    pub fn benches() {}
}
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
    tokenize::benches,
    ml_forest::benches,
    ml_gbm::benches,
    ml_predict::benches
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
    ml_forest::benches,
    ml_gbm::benches,
    ml_predict::benches,
    gpu::benches
);
