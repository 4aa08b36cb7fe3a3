//! Tests of kernels::lowp (placeholder, being written).
