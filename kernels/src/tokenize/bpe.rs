//! Byte-level BPE (Sennrich et al. 2016; GPT-2's byte-level variant, Radford et al. 2019): encode, decode, loaders.
//!
//! Encoding a text:
//! 1. special tokens are split out of the raw text (leftmost-longest literal match) and become their ids;
//! 2. the rest is cut into pieces by the [`PreTokenizer`] (GPT-2's regex, optionally digits first);
//! 3. each piece starts as one symbol per byte (the token of the byte's GPT-2 character, see [`byte_level`]);
//! 4. merges are applied to the piece until none applies: always the adjacent pair with the lowest merge rank,
//!    the leftmost one on a tie, which is what HF `tokenizers` does. Pieces of up to [`LONG_PIECE`] symbols keep
//!    a rank per adjacent pair in a vector and scan it for the minimum (tiktoken's approach: a handful of hash
//!    lookups per merge, all in cache); longer pieces use a binary heap over a linked list so a 100 kB word costs
//!    O(n log n), not O(n²);
//! 5. the ids of a piece are remembered (a word cache), since natural text repeats its words.
//!
//! Decoding concatenates the bytes of each token (a token's characters mapped back through the byte table) and
//! turns them into text, replacing invalid UTF-8 with U+FFFD; [`Bpe::decode_bytes`] returns the exact bytes.
//!
//! [`byte_level`]: super::byte_level

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, TryLockError};

use rayon::prelude::*;
use serde_json::{Value, json};

use super::byte_level::{BYTE_TO_CHAR, char_to_byte};
use super::hash::FxHashMap;
use super::json::{self, is_default, str_field};
use super::pretokenize::PreTokenizer;
use super::special::{Segment, SpecialMatcher};
use super::{definition_error, read_file};
use crate::{Error, Result};

/// Pieces longer than this (in initial symbols, i.e. bytes) are merged with the heap instead of the scan.
pub const LONG_PIECE: usize = 128;

/// Pieces longer than this many bytes are not cached (the cache is for words; HF uses the same bound).
const MAX_CACHED_PIECE: usize = 256;

/// Independent word caches, so threads encoding in parallel rarely wait for one another.
const CACHE_SHARDS: usize = 8;

/// No merge for this pair (sorts after every real `(rank << 32) | new_id`).
const NO_MERGE: u64 = u64::MAX;

/// A byte with no token in the vocabulary.
const NO_TOKEN: u32 = u32::MAX;

/// How a [`Bpe`] tokenizer splits and frames text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpeConfig {
    /// How text is split into pieces before merges.
    pub pre_tokenizer: PreTokenizer,
    /// Texts split out of the input as single tokens before pre-tokenisation; each must be in the vocabulary.
    pub special_tokens: Vec<String>,
    /// Added tokens among `special_tokens` that are *not* special, i.e. kept by
    /// [`Bpe::decode_skipping_special`] (HF's non-special added tokens, GGUF's user-defined tokens).
    pub non_special_added: Vec<String>,
    /// The beginning-of-sequence id, prepended by [`Bpe::encode`] when `add_bos` is set.
    pub bos_id: Option<u32>,
    /// The end-of-sequence id (reported by [`Bpe::eos_id`]; never added by encode).
    pub eos_id: Option<u32>,
    /// Whether [`Bpe::encode`] starts with `bos_id`.
    pub add_bos: bool,
    /// A piece that is itself in the vocabulary is emitted as is, without merging (HF `ignore_merges`, Llama 3).
    pub ignore_merges: bool,
    /// The id emitted for a byte whose character is not in the vocabulary; `None` drops such bytes (HF does the
    /// same when the model has no `unk_token`).
    pub unk_id: Option<u32>,
    /// How many distinct pieces the word cache remembers (0 turns it off).
    pub cache_capacity: usize,
}

impl Default for BpeConfig {
    fn default() -> Self {
        BpeConfig {
            pre_tokenizer: PreTokenizer::Gpt2,
            special_tokens: Vec::new(),
            non_special_added: Vec::new(),
            bos_id: None,
            eos_id: None,
            add_bos: false,
            ignore_merges: false,
            unk_id: None,
            cache_capacity: 100_000,
        }
    }
}

type WordCache = FxHashMap<Box<[u8]>, Box<[u32]>>;

/// A byte-level BPE tokenizer (GPT-2, SmolLM2, …).
pub struct Bpe {
    /// Token text by id (byte-level characters for ordinary tokens, literal text for special ones).
    tokens: Vec<String>,
    /// Id by token text.
    ids: FxHashMap<String, u32>,
    /// `(left << 32) | right` → `(rank << 32) | merged id`.
    merges: FxHashMap<u64, u64>,
    /// The merges in rank order, as id pairs.
    merge_list: Vec<(u32, u32)>,
    /// The token of each byte's character (`NO_TOKEN` when absent).
    byte_ids: [u32; 256],
    /// The bytes each token decodes to: `decoded[offsets[id]..offsets[id + 1]]`.
    decoded: Vec<u8>,
    decoded_offsets: Vec<u32>,
    /// Whether decode may skip the token.
    special: Vec<bool>,
    matcher: SpecialMatcher,
    config: BpeConfig,
    caches: Vec<Mutex<WordCache>>,
}

impl fmt::Debug for Bpe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bpe")
            .field("vocab_size", &self.tokens.len())
            .field("merges", &self.merge_list.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Clone for Bpe {
    /// A copy with the same vocabulary and configuration and an empty word cache.
    fn clone(&self) -> Self {
        Bpe {
            tokens: self.tokens.clone(),
            ids: self.ids.clone(),
            merges: self.merges.clone(),
            merge_list: self.merge_list.clone(),
            byte_ids: self.byte_ids,
            decoded: self.decoded.clone(),
            decoded_offsets: self.decoded_offsets.clone(),
            special: self.special.clone(),
            matcher: self.matcher.clone(),
            config: self.config.clone(),
            caches: new_caches(),
        }
    }
}

fn new_caches() -> Vec<Mutex<WordCache>> {
    (0..CACHE_SHARDS).map(|_| Mutex::new(WordCache::default())).collect()
}

/// Reusable buffers of one encode call.
#[derive(Default)]
struct Scratch {
    symbols: Vec<u32>,
    pairs: Vec<u64>,
}

/// Parses merge lines as GGUF and older tokenizer.json files store them: `"left right"`.
///
/// # Errors
/// [`Error::TokenizerDefinition`] for a line without a separating space.
pub fn parse_merge_lines<S: AsRef<str>>(lines: &[S]) -> Result<Vec<(String, String)>> {
    lines.iter().enumerate().map(|(i, line)| split_merge_line(line.as_ref(), i, "merge lines")).collect()
}

fn split_merge_line(line: &str, index: usize, source_name: &str) -> Result<(String, String)> {
    // Search after the first character, as llama.cpp does, so a left part that is a space is allowed.
    let first = line.chars().next().map_or(0, char::len_utf8);
    let at = line[first..]
        .find(' ')
        .map(|k| k + first)
        .ok_or_else(|| definition_error(source_name, format!("merge {index} ({line:?}) is not two tokens")))?;
    Ok((line[..at].to_string(), line[at + 1..].to_string()))
}

impl Bpe {
    /// A tokenizer from its parts: the tokens in id order, the merges in rank order, and the configuration.
    ///
    /// # Errors
    /// [`Error::TokenizerDefinition`] when a merge uses a token that is not in the vocabulary (or its result is
    /// not), a special token or id in `config` is not in the vocabulary, or the vocabulary is empty.
    pub fn new(tokens: Vec<String>, merges: &[(String, String)], config: BpeConfig) -> Result<Bpe> {
        Bpe::build("parts", tokens, merges, config)
    }

    fn build(source_name: &str, tokens: Vec<String>, merges: &[(String, String)], config: BpeConfig) -> Result<Bpe> {
        if tokens.is_empty() {
            return Err(definition_error(source_name, "the vocabulary is empty"));
        }
        if u32::try_from(tokens.len()).is_err() {
            return Err(definition_error(source_name, "more than 2^32 tokens"));
        }
        let mut ids: FxHashMap<String, u32> = FxHashMap::default();
        ids.reserve(tokens.len());
        for (id, t) in tokens.iter().enumerate() {
            // A repeated token keeps its first id (llama.cpp's vocabularies can repeat a token).
            ids.entry(t.clone()).or_insert(id as u32);
        }
        let lookup = |t: &str, what: &str| {
            ids.get(t)
                .copied()
                .ok_or_else(|| definition_error(source_name, format!("{what} {t:?} is not in the vocabulary")))
        };

        let mut merge_map: FxHashMap<u64, u64> = FxHashMap::default();
        merge_map.reserve(merges.len());
        for (rank, (left, right)) in merges.iter().enumerate() {
            let what = format!("merge {rank} ({left:?}, {right:?}):");
            let l = lookup(left, &format!("{what} left token"))?;
            let r = lookup(right, &format!("{what} right token"))?;
            let merged = lookup(&format!("{left}{right}"), &format!("{what} merged token"))?;
            let rank = u32::try_from(rank).map_err(|_| definition_error(source_name, "more than 2^32 merges"))?;
            // A repeated merge takes its later rank, as HF's map does (its trainer can emit one twice).
            merge_map.insert(pair_key(l, r), (u64::from(rank) << 32) | u64::from(merged));
        }
        let mut ranked: Vec<(u64, u32, u32)> =
            merge_map.iter().map(|(&pair, &m)| (m >> 32, (pair >> 32) as u32, pair as u32)).collect();
        ranked.sort_unstable();
        let merge_list: Vec<(u32, u32)> = ranked.into_iter().map(|(_, l, r)| (l, r)).collect();

        let mut byte_ids = [NO_TOKEN; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            if let Some(&id) = ids.get(BYTE_TO_CHAR[b].encode_utf8(&mut [0; 4]) as &str) {
                *slot = id;
            }
        }

        let mut special = vec![false; tokens.len()];
        let mut matched = Vec::with_capacity(config.special_tokens.len());
        for t in &config.special_tokens {
            let id = lookup(t, "special token")?;
            matched.push((t.clone(), id));
            special[id as usize] = !config.non_special_added.contains(t);
        }
        for t in &config.non_special_added {
            if !config.special_tokens.contains(t) {
                return Err(definition_error(
                    source_name,
                    format!("non-special added token {t:?} is not among the special tokens to split"),
                ));
            }
        }
        for (what, id) in [("bos_id", config.bos_id), ("eos_id", config.eos_id), ("unk_id", config.unk_id)] {
            if let Some(id) = id
                && id as usize >= tokens.len()
            {
                return Err(definition_error(source_name, format!("{what} {id} is outside the vocabulary")));
            }
        }
        if config.add_bos && config.bos_id.is_none() {
            return Err(definition_error(source_name, "add_bos is set but there is no bos_id"));
        }

        // A token decodes to the bytes its characters stand for; one with a character outside the byte table
        // (a special token such as "<|im_start|>" is plain ASCII and maps anyway) decodes to its UTF-8, as HF's
        // ByteLevel decoder does.
        let mut decoded = Vec::new();
        let mut decoded_offsets = Vec::with_capacity(tokens.len() + 1);
        decoded_offsets.push(0u32);
        for t in &tokens {
            let start = decoded.len();
            if t.chars().all(|c| char_to_byte(c).is_some()) {
                decoded.extend(t.chars().filter_map(char_to_byte));
            } else {
                decoded.truncate(start);
                decoded.extend_from_slice(t.as_bytes());
            }
            let end = u32::try_from(decoded.len())
                .map_err(|_| definition_error(source_name, "the vocabulary's text exceeds 4 GiB"))?;
            decoded_offsets.push(end);
        }

        Ok(Bpe {
            tokens,
            ids,
            merges: merge_map,
            merge_list,
            byte_ids,
            decoded,
            decoded_offsets,
            special,
            matcher: SpecialMatcher::new(matched),
            config,
            caches: new_caches(),
        })
    }

    /// Loads a byte-level BPE `tokenizer.json` (HF `tokenizers`' format).
    ///
    /// # Errors
    /// [`Error::TokenizerIo`] when the file cannot be read, [`Error::TokenizerDefinition`] when it is not a
    /// byte-level BPE this implementation reproduces exactly (see [`Bpe::from_tokenizer_json_str`]).
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Bpe> {
        let path = path.as_ref();
        Bpe::from_json(&read_file(path)?, &path.display().to_string())
    }

    /// Parses a byte-level BPE tokenizer.json document.
    ///
    /// Supported: model `BPE` (no dropout, no subword prefix/suffix, no byte fallback; `ignore_merges` and
    /// `unk_token` are honoured), no normaliser, pre-tokeniser `ByteLevel` (regex on, no prefix space) alone or
    /// after `Digits(individual_digits)`, decoder `ByteLevel`, post-processor `ByteLevel` or none, added tokens
    /// without `lstrip`/`rstrip`/`single_word`.
    ///
    /// # Errors
    /// [`Error::TokenizerDefinition`] naming the first field that is malformed or unsupported.
    pub fn from_tokenizer_json_str(text: &str) -> Result<Bpe> {
        Bpe::from_json(text, "tokenizer.json")
    }

    fn from_json(text: &str, source_name: &str) -> Result<Bpe> {
        let doc = json::parse(text, source_name)?;
        let model = doc.get("model").ok_or_else(|| definition_error(source_name, "no model"))?;
        if let Some(kind) = str_field(model, "type")
            && kind != "BPE"
        {
            return Err(definition_error(source_name, format!("model type {kind:?} is not BPE")));
        }
        for (key, default) in [
            ("dropout", Value::Null),
            ("continuing_subword_prefix", json!("")),
            ("end_of_word_suffix", json!("")),
            ("byte_fallback", json!(false)),
        ] {
            if !is_default(model, key, &default) {
                return Err(definition_error(source_name, format!("model.{key} = {} is not supported", model[key])));
            }
        }
        let ignore_merges = model.get("ignore_merges").and_then(Value::as_bool).unwrap_or(false);

        if !is_default(&doc, "normalizer", &Value::Null) {
            return Err(definition_error(source_name, format!("normalizer {} is not supported", doc["normalizer"])));
        }
        let pre_tokenizer = byte_level_pre_tokenizer(doc.get("pre_tokenizer").unwrap_or(&Value::Null), source_name)?;
        for key in ["post_processor", "decoder"] {
            match doc.get(key) {
                None | Some(Value::Null) => {}
                Some(v) if str_field(v, "type") == Some("ByteLevel") => {}
                Some(v) => return Err(definition_error(source_name, format!("{key} {v} is not supported"))),
            }
        }

        let added = json::added_tokens(&doc, source_name)?;
        let mut entries = json::vocab_map(model, source_name)?;
        entries.extend(added.iter().map(|t| (t.content.clone(), t.id)));
        let tokens = json::id_table(entries, source_name)?;

        let merges_value = model.get("merges").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let mut merges = Vec::with_capacity(merges_value.len());
        for (i, m) in merges_value.iter().enumerate() {
            merges.push(match m {
                Value::String(line) => split_merge_line(line, i, source_name)?,
                Value::Array(pair) if pair.len() == 2 && pair.iter().all(Value::is_string) => {
                    (pair[0].as_str().unwrap_or_default().to_string(), pair[1].as_str().unwrap_or_default().to_string())
                }
                other => {
                    return Err(definition_error(source_name, format!("merge {i} ({other}) is not two tokens")));
                }
            });
        }

        let unk_id =
            match str_field(model, "unk_token") {
                Some(unk) => Some(tokens.iter().position(|t| t == unk).ok_or_else(|| {
                    definition_error(source_name, format!("unk_token {unk:?} is not in the vocabulary"))
                })? as u32),
                None => None,
            };
        let config = BpeConfig {
            pre_tokenizer,
            special_tokens: added.iter().map(|t| t.content.clone()).collect(),
            non_special_added: added.iter().filter(|t| !t.special).map(|t| t.content.clone()).collect(),
            ignore_merges,
            unk_id,
            ..BpeConfig::default()
        };
        Bpe::build(source_name, tokens, &merges, config)
    }

    /// Loads the tokenizer stored in a GGUF file's metadata (`tokenizer.ggml.*`, llama.cpp's convention).
    ///
    /// Needs `tokenizer.ggml.model = "gpt2"` (byte-level BPE), `tokens`, `merges`, and a known `pre`
    /// (`smollm`, `gpt-2`); tokens of type 3 (control) and 4 (user-defined) are split out of text, and control
    /// tokens are skipped by [`Bpe::decode_skipping_special`]. BOS/EOS ids and `add_bos_token` are read when
    /// present.
    ///
    /// # Errors
    /// [`Error::TokenizerDefinition`] for another tokenizer model or pre-tokeniser, or malformed entries;
    /// the GGUF reader's errors for entries of the wrong type.
    pub fn from_gguf(gguf: &crate::formats::Gguf) -> Result<Bpe> {
        let source_name = "GGUF metadata";
        let model = gguf.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(definition_error(
                source_name,
                format!("tokenizer.ggml.model {model:?} is not byte-level BPE (\"gpt2\")"),
            ));
        }
        let pre = gguf.metadata("tokenizer.ggml.pre").and_then(|v| v.as_str()).unwrap_or("default");
        let pre_tokenizer = match pre {
            "smollm" | "starcoder" => PreTokenizer::DigitsThenGpt2,
            "gpt-2" | "gpt2" => PreTokenizer::Gpt2,
            other => {
                return Err(definition_error(
                    source_name,
                    format!("tokenizer.ggml.pre {other:?} is not supported (supported: smollm, starcoder, gpt-2)"),
                ));
            }
        };
        let tokens = gguf.get_string_array("tokenizer.ggml.tokens")?.to_vec();
        let lines = gguf.get_string_array("tokenizer.ggml.merges")?;
        let merges =
            lines.iter().enumerate().map(|(i, l)| split_merge_line(l, i, source_name)).collect::<Result<Vec<_>>>()?;
        let types: &[i32] = match gguf.metadata("tokenizer.ggml.token_type") {
            Some(_) => gguf.get_i32_array("tokenizer.ggml.token_type")?,
            None => &[],
        };
        if !types.is_empty() && types.len() != tokens.len() {
            return Err(definition_error(
                source_name,
                format!("{} token types for {} tokens", types.len(), tokens.len()),
            ));
        }
        const CONTROL: i32 = 3;
        const USER_DEFINED: i32 = 4;
        let split: Vec<usize> = (0..types.len()).filter(|&i| matches!(types[i], CONTROL | USER_DEFINED)).collect();
        let optional_id = |key: &str| gguf.metadata(key).and_then(|v| v.as_u32());
        let config = BpeConfig {
            pre_tokenizer,
            special_tokens: split.iter().map(|&i| tokens[i].clone()).collect(),
            non_special_added: split
                .iter()
                .filter(|&&i| types[i] == USER_DEFINED)
                .map(|&i| tokens[i].clone())
                .collect(),
            bos_id: optional_id("tokenizer.ggml.bos_token_id"),
            eos_id: optional_id("tokenizer.ggml.eos_token_id"),
            add_bos: gguf.metadata("tokenizer.ggml.add_bos_token").and_then(|v| v.as_bool()).unwrap_or(false),
            ..BpeConfig::default()
        };
        Bpe::build(source_name, tokens, &merges, config)
    }

    /// The tokenizer as an HF tokenizer.json document (so HF `tokenizers` can load what [`train_bpe`] learned).
    ///
    /// [`train_bpe`]: super::train_bpe
    pub fn to_tokenizer_json(&self) -> String {
        let byte_level =
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
        let pre_tokenizer = match self.config.pre_tokenizer {
            PreTokenizer::Gpt2 => byte_level.clone(),
            PreTokenizer::DigitsThenGpt2 => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level.clone()]}),
        };
        let added: Vec<Value> = self
            .matcher_tokens()
            .map(|(content, id)| {
                json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
                       "normalized": false, "special": self.special[id as usize]})
            })
            .collect();
        let vocab: serde_json::Map<String, Value> =
            self.tokens.iter().enumerate().map(|(id, t)| (t.clone(), json!(id))).collect();
        let merges: Vec<Value> =
            self.merge_list.iter().map(|&(l, r)| json!([self.tokens[l as usize], self.tokens[r as usize]])).collect();
        let unk = self.config.unk_id.map(|id| self.tokens[id as usize].clone());
        let doc = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": byte_level,
            "decoder": byte_level,
            "model": {"type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "ignore_merges": self.config.ignore_merges, "vocab": vocab, "merges": merges},
        });
        doc.to_string()
    }

    fn matcher_tokens(&self) -> impl Iterator<Item = (&str, u32)> {
        self.config.special_tokens.iter().map(|t| (t.as_str(), self.ids[t]))
    }

    /// The number of tokens (ids run from 0 to `vocab_size() - 1`).
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Every token's text, in id order.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// A token's text (byte-level characters for ordinary tokens).
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a token's text.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The merges in rank order, as token texts.
    pub fn merges(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.merge_list.iter().map(|&(l, r)| (self.tokens[l as usize].as_str(), self.tokens[r as usize].as_str()))
    }

    /// The configuration.
    pub fn config(&self) -> &BpeConfig {
        &self.config
    }

    /// The beginning-of-sequence id, if the model has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.config.bos_id
    }

    /// The end-of-sequence id, if the model has one.
    pub fn eos_id(&self) -> Option<u32> {
        self.config.eos_id
    }

    /// Whether decode may skip this id (a special token).
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// Encodes text: special tokens in it become their ids, and `bos_id` comes first when `add_bos` is set.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if self.config.add_bos
            && let Some(bos) = self.config.bos_id
        {
            out.push(bos);
        }
        self.encode_into(text, true, &mut out);
        out
    }

    /// Encodes text as ordinary text only: a special token's text in it is tokenised like any other (what a
    /// server should do with user input, so a user cannot forge `<|im_start|>`). No BOS.
    pub fn encode_ordinary(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_into(text, false, &mut out);
        out
    }

    /// Encodes many texts, in parallel on rayon's pool (each as [`Bpe::encode`]).
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Vec<Vec<u32>> {
        texts.par_iter().map(|t| self.encode(t.as_ref())).collect()
    }

    /// Appends the ids of `text` to `out`, splitting special tokens out first when `specials` is set.
    pub fn encode_into(&self, text: &str, specials: bool, out: &mut Vec<u32>) {
        let mut cache = self.lock_cache();
        let mut scratch = Scratch::default();
        let pre_tokenizer = self.config.pre_tokenizer;
        let mut encode_text = |t: &str, out: &mut Vec<u32>| {
            pre_tokenizer.split(t, |piece| self.encode_piece(piece.as_bytes(), cache.as_deref_mut(), &mut scratch, out))
        };
        if specials && !self.matcher.is_empty() {
            self.matcher.split(text, |segment| match segment {
                Segment::Special(id) => out.push(id),
                Segment::Text(t) => encode_text(t, out),
            });
        } else {
            encode_text(text, out);
        }
    }

    /// One cache shard, if one is free (a busy cache is skipped rather than waited for).
    fn lock_cache(&self) -> Option<MutexGuard<'_, WordCache>> {
        if self.config.cache_capacity == 0 {
            return None;
        }
        let start = rayon::current_thread_index().unwrap_or(0);
        (0..CACHE_SHARDS).find_map(|k| match self.caches[(start + k) % CACHE_SHARDS].try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        })
    }

    fn encode_piece(&self, piece: &[u8], cache: Option<&mut WordCache>, scratch: &mut Scratch, out: &mut Vec<u32>) {
        if let [b] = piece {
            self.push_byte(*b, out);
            return;
        }
        if self.config.ignore_merges {
            let text: String = piece.iter().map(|&b| BYTE_TO_CHAR[b as usize]).collect();
            if let Some(&id) = self.ids.get(&text) {
                out.push(id);
                return;
            }
        }
        let cache = match cache {
            Some(cache) => {
                if let Some(ids) = cache.get(piece) {
                    out.extend_from_slice(ids);
                    return;
                }
                Some(cache)
            }
            None => None,
        };
        scratch.symbols.clear();
        for &b in piece {
            self.push_byte(b, &mut scratch.symbols);
        }
        if scratch.symbols.len() > LONG_PIECE {
            self.merge_with_heap(&mut scratch.symbols);
        } else {
            self.merge_with_scan(&mut scratch.symbols, &mut scratch.pairs);
        }
        out.extend_from_slice(&scratch.symbols);
        if let Some(cache) = cache
            && piece.len() <= MAX_CACHED_PIECE
            && cache.len() < self.config.cache_capacity
        {
            cache.insert(piece.into(), scratch.symbols.as_slice().into());
        }
    }

    #[inline]
    fn push_byte(&self, b: u8, out: &mut Vec<u32>) {
        match self.byte_ids[b as usize] {
            NO_TOKEN => out.extend(self.config.unk_id),
            id => out.push(id),
        }
    }

    /// `(rank << 32) | merged id` of the pair, or `NO_MERGE`.
    #[inline]
    fn merge_of(&self, left: u32, right: u32) -> u64 {
        self.merges.get(&pair_key(left, right)).copied().unwrap_or(NO_MERGE)
    }

    /// Lowest rank first, leftmost on a tie, by scanning a vector of pair ranks.
    fn merge_with_scan(&self, symbols: &mut Vec<u32>, pairs: &mut Vec<u64>) {
        if symbols.len() < 2 {
            return;
        }
        pairs.clear();
        pairs.extend(symbols.windows(2).map(|w| self.merge_of(w[0], w[1])));
        loop {
            let (mut at, mut best) = (0, NO_MERGE);
            for (i, &p) in pairs.iter().enumerate() {
                if p < best {
                    best = p;
                    at = i;
                }
            }
            if best == NO_MERGE {
                break;
            }
            symbols[at] = best as u32;
            symbols.remove(at + 1);
            pairs.remove(at);
            if at > 0 {
                pairs[at - 1] = self.merge_of(symbols[at - 1], symbols[at]);
            }
            if at < pairs.len() {
                pairs[at] = self.merge_of(symbols[at], symbols[at + 1]);
            }
        }
    }

    /// The same order of merges with a min-heap of `(rank, position)` over a linked list of symbols; entries
    /// made stale by an earlier merge are recognised on pop (the pair at that position no longer merges into the
    /// same id) and dropped.
    fn merge_with_heap(&self, symbols: &mut Vec<u32>) {
        const NONE: usize = usize::MAX;
        let n = symbols.len();
        if n < 2 {
            return;
        }
        let mut next: Vec<usize> = (1..=n).map(|i| if i == n { NONE } else { i }).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { NONE } else { i - 1 }).collect();
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 0..n - 1 {
            let m = self.merge_of(symbols[i], symbols[i + 1]);
            if m != NO_MERGE {
                heap.push(Reverse((m >> 32, i, m)));
            }
        }
        while let Some(Reverse((_, pos, m))) = heap.pop() {
            let right = next[pos];
            if !alive[pos] || right == NONE || self.merge_of(symbols[pos], symbols[right]) != m {
                continue;
            }
            symbols[pos] = m as u32;
            alive[right] = false;
            let after = next[right];
            next[pos] = after;
            if after != NONE {
                prev[after] = pos;
            }
            if prev[pos] != NONE {
                let p = prev[pos];
                let m = self.merge_of(symbols[p], symbols[pos]);
                if m != NO_MERGE {
                    heap.push(Reverse((m >> 32, p, m)));
                }
            }
            if after != NONE {
                let m = self.merge_of(symbols[pos], symbols[after]);
                if m != NO_MERGE {
                    heap.push(Reverse((m >> 32, pos, m)));
                }
            }
        }
        let mut w = 0;
        for r in 0..n {
            if alive[r] {
                symbols[w] = symbols[r];
                w += 1;
            }
        }
        symbols.truncate(w);
    }

    /// The exact bytes the ids stand for (special tokens as their text).
    ///
    /// # Errors
    /// [`Error::UnknownTokenId`] for an id outside the vocabulary.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id)?);
        }
        Ok(out)
    }

    /// The bytes one token stands for.
    ///
    /// # Errors
    /// [`Error::UnknownTokenId`] for an id outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Result<&[u8]> {
        let i = id as usize;
        if i >= self.tokens.len() {
            return Err(Error::UnknownTokenId { id, vocab_size: self.tokens.len() });
        }
        Ok(&self.decoded[self.decoded_offsets[i] as usize..self.decoded_offsets[i + 1] as usize])
    }

    /// The text the ids stand for, special tokens included; bytes that are not valid UTF-8 (a character cut
    /// between tokens, or ids that never came from text) become U+FFFD, as in HF.
    ///
    /// # Errors
    /// [`Error::UnknownTokenId`] for an id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids)?).into_owned())
    }

    /// As [`Bpe::decode`], leaving out special tokens (HF's `skip_special_tokens=True`).
    ///
    /// # Errors
    /// [`Error::UnknownTokenId`] for an id outside the vocabulary.
    pub fn decode_skipping_special(&self, ids: &[u32]) -> Result<String> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let bytes = self.token_bytes(id)?;
            if !self.special[id as usize] {
                out.extend_from_slice(bytes);
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

#[inline]
fn pair_key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

/// The pre-tokeniser a tokenizer.json asks for, if it is one of the two byte-level ones.
fn byte_level_pre_tokenizer(v: &Value, source_name: &str) -> Result<PreTokenizer> {
    let byte_level_ok = |b: &Value| {
        str_field(b, "type") == Some("ByteLevel")
            && is_default(b, "add_prefix_space", &json!(false))
            && is_default(b, "use_regex", &json!(true))
    };
    if byte_level_ok(v) {
        return Ok(PreTokenizer::Gpt2);
    }
    if str_field(v, "type") == Some("Sequence")
        && let Some([digits, byte_level]) = v.get("pretokenizers").and_then(Value::as_array).map(Vec::as_slice)
        && str_field(digits, "type") == Some("Digits")
        && digits.get("individual_digits").and_then(Value::as_bool) == Some(true)
        && byte_level_ok(byte_level)
    {
        return Ok(PreTokenizer::DigitsThenGpt2);
    }
    Err(definition_error(
        source_name,
        format!(
            "pre_tokenizer {v} is not supported (supported: ByteLevel without prefix space, optionally after \
             Digits(individual_digits))"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan and the heap agree on random words over a small alphabet with random merges.
    #[test]
    fn scan_and_heap_merge_in_the_same_order() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let alphabet = ["a", "b", "c", "d"];
        let mut tokens: Vec<String> = alphabet.iter().map(|s| s.to_string()).collect();
        let mut merges = Vec::new();
        for _ in 0..60 {
            let l = tokens[rand(tokens.len() as u64) as usize].clone();
            let r = tokens[rand(tokens.len() as u64) as usize].clone();
            let merged = format!("{l}{r}");
            if merged.len() <= 8 && !tokens.contains(&merged) {
                tokens.push(merged);
                merges.push((l, r));
            }
        }
        let bpe = Bpe::new(tokens, &merges, BpeConfig::default()).expect("valid parts");
        for len in [2usize, 3, 7, 40, 300] {
            for _ in 0..50 {
                let word: Vec<u32> = (0..len).map(|_| rand(4) as u32).collect();
                let (mut a, mut b, mut pairs) = (word.clone(), word, Vec::new());
                bpe.merge_with_scan(&mut a, &mut pairs);
                bpe.merge_with_heap(&mut b);
                assert_eq!(a, b);
            }
        }
    }
}
