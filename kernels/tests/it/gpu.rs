//! Tests of kernels::gpu (placeholder, being written).
