//! Tests of kernels::tracking (placeholder, being written).
