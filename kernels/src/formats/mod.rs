//! Model file formats: GGUF (llama.cpp's single-file models) and safetensors, memory-mapped.
