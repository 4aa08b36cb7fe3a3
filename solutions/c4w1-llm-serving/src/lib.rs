//! Week c4w1: LLM serving and tokenization, taken apart (GGUF spec: `docs/gguf.md` of ggml / llama.cpp).
//!
//! You rebuild, piece by piece, what a local inference server does between a
//! file on disk and a token on the wire:
//!
//! | module | what you write | tasks |
//! |---|---|---|
//! | [`gguf`] | a defensive GGUF v2/v3 reader: header, typed metadata, tensor table, alignment | `c4w1.gguf-header`, `c4w1.gguf-tensors` |
//! | [`quant`] | f16 by hand, and dequantisation of the Q8_0, Q4_0 and Q4_1 blocks | `c4w1.dequant-q8`, `c4w1.dequant-q4` |
//! | [`bpe`] | byte-level BPE: training merges on a corpus, encoding and decoding | `c4w1.bpe-train`, `c4w1.bpe-encode` |
//! | [`attention`] | RoPE and causal grouped-query attention of one new position over a KV cache | `c4w1.attention` |
//! | [`sampling`] | greedy, temperature, top-k and top-p sampling with a seeded generator | `c4w1.sampling` |
//!
//! Every task is a function whose body is `todo!("<task id>")`; its doc comment says
//! what to do and how many points it is worth. `cargo test -p c4w1-llm-serving`
//! runs the visible tests; `cargo xtask grade c4w1` runs them and the hidden ones.
//!
//! The production twins the grader compares you with are `kernels::formats::gguf`,
//! `kernels::quant`, `kernels::tokenize` and `kernels::llm`. From `kernels` this crate
//! borrows only types ([`kernels::quant::QuantFormat`], [`kernels::llm::AttentionShape`],
//! [`kernels::llm::SamplerConfig`]) and the two pieces of tokenizer plumbing that are
//! not this week's lesson: GPT-2's pre-tokenising regex and its byte-to-character table.
// STUB-ONLY: #![allow(unused_variables, dead_code, unused_imports, unused_mut)]

pub mod attention;
pub mod bpe;
pub mod gguf;
pub mod quant;
pub mod sampling;

pub use kernels::quant::QuantFormat;

/// Everything that can go wrong in this crate. Bad input is always one of these, never a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The input ends before a field it declares: reading `what` at byte `offset` needs
    /// `needed` bytes, and only `available` are left.
    #[error("GGUF: the input ends before {what} (at byte {offset}: {needed} bytes needed, {available} left)")]
    Truncated {
        /// What was being read (`"version"`, `"length of metadata key 3"`, …).
        what: String,
        /// Where the field starts.
        offset: u64,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left from `offset` to the end of the input.
        available: u64,
    },
    /// The first four bytes are not `"GGUF"`.
    #[error("GGUF: magic is {found:?}, expected \"GGUF\"")]
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// A version other than 2 or 3 (a big-endian file reads as a multiple of 65,536).
    #[error("GGUF: version {0} is not supported (2 and 3, little-endian)")]
    UnsupportedVersion(u32),
    /// Anything else the GGUF spec forbids: an unknown value or tensor type, invalid UTF-8,
    /// a bool that is not 0 or 1, arrays nested too deep, duplicate keys or tensor names, a bad
    /// alignment, misaligned or overlapping tensor data, too many dimensions, …
    #[error("GGUF: malformed at byte {offset}: {reason}")]
    Malformed {
        /// Where the offending field starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A metadata key that is absent or has another type than the one asked for.
    #[error("GGUF metadata {key:?}: {reason}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No tensor of that name.
    #[error("no tensor named {0:?}")]
    MissingTensor(String),
    /// A byte length that is not a whole number of blocks.
    #[error("{format}: {len} bytes are not a whole number of {block_bytes}-byte blocks")]
    RaggedBlocks {
        /// The block format.
        format: QuantFormat,
        /// Bytes given.
        len: usize,
        /// Bytes per block.
        block_bytes: usize,
    },
    /// An output buffer of the wrong length.
    #[error("the output holds {got} values, the input has {expected}")]
    LengthMismatch {
        /// Values the input holds.
        expected: usize,
        /// Length of the output.
        got: usize,
    },
    /// A tensor or block type this lab does not decode.
    #[error("{0} is not supported here")]
    Unsupported(String),
    /// A tokenizer whose parts do not fit together (a merge of unknown tokens, an empty vocabulary, …).
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    UnknownTokenId {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// A parameter outside its valid range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
