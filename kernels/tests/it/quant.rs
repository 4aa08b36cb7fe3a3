//! Tests of kernels::quant (placeholder, being written).
