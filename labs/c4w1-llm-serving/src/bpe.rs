//! Byte-level byte-pair encoding: training merges on a corpus, encoding and decoding (Sennrich
//! et al. 2016, *Neural Machine Translation of Rare Words with Subword Units*; the byte-level
//! variant of GPT-2, Radford et al. 2019).
//!
//! **Byte level.** Text is UTF-8 bytes, and every one of the 256 byte values is a token of its
//! own, so any text can be encoded without an "unknown" token. Vocabularies are stored as
//! strings, though, and a raw `0x20` or `0x0A` would be awkward in a merges file, so GPT-2 maps
//! each byte to a printable character (`kernels::tokenize::byte_level`): the space becomes `Ġ`,
//! the newline `Ċ`, and `" the"` is the token `"Ġthe"`. Token texts and merges in this module are
//! always written in those characters.
//!
//! **Pre-tokenisation.** Merges never cross the pieces of GPT-2's splitting regex
//! ([`PreTokenizer`], given): `"Hello world!"` is split into `"Hello"`, `" world"`, `"!"` first,
//! and BPE works inside each piece.
//!
//! **Training** ([`train`], task `c4w1.bpe-train`) starts from the 256 byte tokens and repeatedly
//! merges the most frequent adjacent pair into a new token. **Encoding** ([`Tokenizer::encode`],
//! task `c4w1.bpe-encode`) replays the merges on new text, lowest rank (earliest learned) first.
//! **Decoding** maps every token back to its bytes.

use std::collections::HashMap;

use kernels::tokenize::byte_level::{BYTE_TO_CHAR, char_to_byte};

pub use kernels::tokenize::PreTokenizer;

use crate::gguf::GgufFile;
use crate::{Error, Result};

/// What [`train`] learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainConfig {
    /// The vocabulary size to reach, the 256 byte tokens included (training may stop earlier).
    pub vocab_size: usize,
    /// Stop when the most frequent pair occurs fewer times than this.
    pub min_frequency: u64,
    /// How the corpus is split into words before counting.
    pub pre_tokenizer: PreTokenizer,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig { vocab_size: 1000, min_frequency: 0, pre_tokenizer: PreTokenizer::Gpt2 }
    }
}

/// The 256 byte tokens in the order training gives them ids 0..=255: each byte's GPT-2
/// character, sorted by code point (so `"!"` is id 0, and `"Ā"` (byte 0x00) comes after `"ÿ"`).
/// Given.
pub fn byte_alphabet() -> Vec<String> {
    let mut chars: Vec<char> = BYTE_TO_CHAR.to_vec();
    chars.sort_unstable();
    chars.into_iter().map(String::from).collect()
}

/// A byte-level BPE tokenizer: the vocabulary (token texts by id), the merges by rank, and the
/// pre-tokeniser.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    tokens: Vec<String>,
    merges: Vec<(String, String)>,
    pre_tokenizer: PreTokenizer,
    /// Id of a token text (the first id when a text repeats).
    ids: HashMap<String, u32>,
    /// `(left id, right id)` → `(rank, merged id)`.
    ranks: HashMap<(u32, u32), (u32, u32)>,
    /// The token of each byte's character, if the vocabulary has it.
    byte_ids: [Option<u32>; 256],
}

impl Tokenizer {
    /// A tokenizer from its parts: token texts in id order and merges in rank order (rank 0
    /// first). Given.
    ///
    /// Both halves of a merge and their concatenation must be tokens. A merge listed twice
    /// keeps its later rank (as Hugging Face's map does).
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for an empty vocabulary or a merge of unknown tokens.
    pub fn new(tokens: Vec<String>, merges: Vec<(String, String)>, pre_tokenizer: PreTokenizer) -> Result<Tokenizer> {
        if tokens.is_empty() {
            return Err(Error::Tokenizer("the vocabulary is empty".to_string()));
        }
        let n = u32::try_from(tokens.len()).map_err(|_| Error::Tokenizer("more than 2^32 tokens".to_string()))?;
        let mut ids = HashMap::with_capacity(tokens.len());
        for (id, t) in (0..n).zip(&tokens) {
            ids.entry(t.clone()).or_insert(id);
        }
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, (left, right)) in merges.iter().enumerate() {
            let id = |t: &str| {
                ids.get(t).copied().ok_or_else(|| {
                    Error::Tokenizer(format!("merge {rank} ({left:?}, {right:?}) uses {t:?}, which is not a token"))
                })
            };
            let pair = (id(left)?, id(right)?);
            let merged = id(&format!("{left}{right}"))?;
            let rank = u32::try_from(rank).map_err(|_| Error::Tokenizer("more than 2^32 merges".to_string()))?;
            ranks.insert(pair, (rank, merged));
        }
        let mut byte_ids = [None; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = ids.get(BYTE_TO_CHAR[b].to_string().as_str()).copied();
        }
        Ok(Tokenizer { tokens, merges, pre_tokenizer, ids, ranks, byte_ids })
    }

    /// The tokenizer stored in a GGUF file's metadata (llama.cpp's keys): `tokenizer.ggml.model`
    /// must be `"gpt2"` (byte-level BPE); `tokenizer.ggml.tokens` are the token texts,
    /// `tokenizer.ggml.merges` the merges as `"left right"` lines, and `tokenizer.ggml.pre`
    /// picks the pre-tokeniser (`"smollm"` and `"starcoder"`: digits split first). Given.
    ///
    /// Special tokens (`<|im_start|>`, …) are ordinary vocabulary entries here: [`encode`]
    /// never produces them from text, which is what a server must do with user input.
    ///
    /// # Errors
    /// [`Error::Metadata`] for missing or mistyped keys, [`Error::Tokenizer`] for another
    /// tokenizer model or pre-tokeniser, or a malformed merge line.
    ///
    /// [`encode`]: Tokenizer::encode
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
        let model = file.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!("tokenizer.ggml.model {model:?} is not byte-level BPE (\"gpt2\")")));
        }
        let pre_tokenizer = match file.get("tokenizer.ggml.pre").and_then(|v| v.as_str()).unwrap_or("gpt-2") {
            "smollm" | "starcoder" => PreTokenizer::DigitsThenGpt2,
            "gpt-2" | "gpt2" | "default" => PreTokenizer::Gpt2,
            other => return Err(Error::Tokenizer(format!("tokenizer.ggml.pre {other:?} is not supported"))),
        };
        let tokens: Vec<String> = file.get_strings("tokenizer.ggml.tokens")?.into_iter().map(String::from).collect();
        let merges = file
            .get_strings("tokenizer.ggml.merges")?
            .into_iter()
            .enumerate()
            .map(|(i, line)| {
                split_merge_line(line).ok_or_else(|| Error::Tokenizer(format!("merge line {i}: {line:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Tokenizer::new(tokens, merges, pre_tokenizer)
    }

    /// The number of tokens. Given.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Every token's text, in id order. Given.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The merges, rank 0 first. Given.
    pub fn merges(&self) -> &[(String, String)] {
        &self.merges
    }

    /// The pre-tokeniser. Given.
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre_tokenizer
    }

    /// A token's text. Given.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a token text. Given.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// The id of the token standing for byte `b` (its GPT-2 character), if there is one. Given.
    pub fn byte_id(&self, b: u8) -> Option<u32> {
        self.byte_ids[b as usize]
    }

    /// `(rank, merged id)` if `left` followed by `right` merges. Given.
    pub fn merge_of(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        self.ranks.get(&(left, right)).copied()
    }

    /// Task c4w1.bpe-encode (12 points, with [`Tokenizer::encode_piece`] and
    /// [`Tokenizer::decode_bytes`]): the token ids of `text`.
    ///
    /// Split `text` with the pre-tokeniser (`self.pre_tokenizer().split(text, |piece| …)`) and
    /// append the ids of each piece, in order ([`Tokenizer::encode_piece`]). Special tokens get
    /// no treatment: `"<|im_start|>"` in the text is encoded like any other characters.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        todo!("c4w1.bpe-encode")
    }

    // ANCHOR: encode_piece
    /// Task c4w1.bpe-encode: appends the ids of one pre-tokenised piece to `out`.
    ///
    /// 1. One symbol per byte: [`Tokenizer::byte_id`] (a byte without a token is dropped).
    /// 2. While some adjacent pair of symbols merges ([`Tokenizer::merge_of`]): take the pair of
    ///    **lowest rank**, the **leftmost** one if it occurs several times, and replace it by the
    ///    merged id.
    /// 3. Append the symbols that remain.
    ///
    /// This is the order Hugging Face `tokenizers` and `kernels::tokenize::Bpe` apply merges
    /// in; any other order (most frequent first, left to right, …) gives other ids.
    pub fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        todo!("c4w1.bpe-encode")
    }
    // ANCHOR_END: encode_piece

    /// Task c4w1.bpe-encode: the exact bytes `ids` stand for.
    ///
    /// A token whose characters are all GPT-2 byte characters stands for those bytes
    /// (`kernels::tokenize::byte_level::char_to_byte`, one byte per character); any other token
    /// (a special token such as `<|im_start|>` whose text is plain) stands for its own UTF-8.
    ///
    /// # Errors
    /// [`Error::UnknownTokenId`] for an id outside the vocabulary.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        todo!("c4w1.bpe-encode")
    }

    /// The text `ids` stand for; bytes that are not valid UTF-8 (a character split between ids
    /// that never came from text) become U+FFFD. Given.
    ///
    /// # Errors
    /// As [`Tokenizer::decode_bytes`].
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids)?).into_owned())
    }
}

/// Splits a GGUF merge line `"left right"` at the first space after its first character (so a
/// left part that is itself a space is allowed, as in llama.cpp). Given.
pub fn split_merge_line(line: &str) -> Option<(String, String)> {
    let first = line.chars().next()?.len_utf8();
    let at = line[first..].find(' ')? + first;
    Some((line[..at].to_string(), line[at + 1..].to_string()))
}

// ANCHOR: train
/// Task c4w1.bpe-train (14 points): learns a byte-level BPE tokenizer from `corpus` (each item
/// one text).
///
/// 1. **Words.** Split every text with `config.pre_tokenizer` and count each distinct piece.
///    A word starts as one symbol per byte; the id of byte `b` is the position of its
///    character in [`byte_alphabet`] (ids 0..=255, all 256 always in the vocabulary).
/// 2. **Count pairs.** Every adjacent pair of symbols in a word counts as many times as the
///    word occurs (`"aaa"` holds the pair `(a, a)` twice).
/// 3. **Merge the best pair.** The pair with the highest count; on a tie, the smallest
///    `(left id, right id)`. Stop when no pair is left, or its count is below
///    `config.min_frequency`. The merged token's text is the two texts concatenated; it gets
///    the next id (unless that text is already a token — two different merges can spell the
///    same string — then reuse its id). Record the merge `(left text, right text)`.
/// 4. **Apply it** in every word, left to right, without overlaps (`a a a` → `aa a`).
/// 5. Repeat from 2 until the vocabulary holds `config.vocab_size` tokens.
///
/// Return `Tokenizer::new(tokens, merges, config.pre_tokenizer)`. With the same corpus and
/// configuration, the merges must equal those of Hugging Face's `BpeTrainer` and
/// `kernels::tokenize::train_bpe` (ids and order).
///
/// # Errors
/// Those of [`Tokenizer::new`] (none for a correct implementation).
pub fn train<S: AsRef<str>>(corpus: &[S], config: &TrainConfig) -> Result<Tokenizer> {
    todo!("c4w1.bpe-train")
}
// ANCHOR_END: train
