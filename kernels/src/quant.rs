//! GGUF quantised block formats (placeholder, being written).
