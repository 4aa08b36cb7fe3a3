//! Tokenizers: byte-level BPE (GPT-2 style, from GGUF metadata or a tokenizer.json), BPE training, and WordPiece.
//!
//! Three tokenizers, each giving the ids HF `tokenizers` gives for the same model (the integration tests compare
//! them token for token on the Rust book):
//!
//! - [`Bpe`]: byte-level byte-pair encoding (Sennrich et al. 2016, *Neural Machine Translation of Rare Words with
//!   Subword Units*) as GPT-2 uses it (Radford et al. 2019): text is split by a regex-like pre-tokeniser
//!   ([`PreTokenizer`]), every byte of a piece becomes one of 256 printable characters ([`byte_level`]), and the
//!   learned merges are applied lowest rank first. Special tokens (`<|im_start|>`, …) are split out first.
//! - [`train_bpe`]: learns merges from a corpus (most frequent adjacent pair first, ties to the smallest pair of
//!   ids), reproducing HF's `BpeTrainer`.
//! - [`WordPiece`]: BERT's tokenizer (Devlin et al. 2019; Wu et al. 2016): clean-up, CJK spacing, lowercasing
//!   and accent stripping, whitespace/punctuation split, then greedy longest-match-first with `##` continuations,
//!   `[CLS]`/`[SEP]`, truncation and padding.
//!
//! The character classes the pre-tokenisers use are in `unicode_tables` (generated from the reference, see there).

mod bpe;
pub mod byte_level;
mod classes;
mod hash;
mod json;
mod pretokenize;
mod special;
mod train;
mod unicode_tables;
mod wordpiece;

pub use bpe::{Bpe, BpeConfig, LONG_PIECE, parse_merge_lines};
pub use pretokenize::PreTokenizer;
pub use train::{TrainConfig, train_bpe};
pub use wordpiece::{Encoding, Padding, WordPiece, WordPieceConfig};

/// Where a tokenizer definition came from, for error messages.
fn definition_error(source_name: &str, reason: impl Into<String>) -> crate::Error {
    crate::Error::TokenizerDefinition { source_name: source_name.to_string(), reason: reason.into() }
}

/// Reads a tokenizer file into a string, with the path in the error.
fn read_file(path: &std::path::Path) -> crate::Result<String> {
    std::fs::read_to_string(path).map_err(|source| crate::Error::TokenizerIo { path: path.to_path_buf(), source })
}
