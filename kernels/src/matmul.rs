//! f32 matrix kernels: GEMM, GEMV and batched matmul (placeholder, being written).
