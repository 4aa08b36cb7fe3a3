//! Batch-scoring throughput of `kernels::score` as JSON (the Rust side of `cargo xtask bench score`).

fn main() {}
