//! GPU compute through wgpu (placeholder, being written).
