//! Tests of kernels::matmul (placeholder, being written).
