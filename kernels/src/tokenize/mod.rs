//! Tokenizers: byte-level BPE (GPT-2 style, from GGUF metadata or a tokenizer.json), BPE training, and WordPiece.
