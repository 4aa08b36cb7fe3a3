//! BERT's WordPiece tokenizer (Devlin et al. 2019, `tokenization.py`; WordPiece: Wu et al. 2016), uncased.
//!
//! 1. Special tokens (`[CLS]`, `[MASK]`, …) are split out of the raw text.
//! 2. The rest is normalised (BERT's `BasicTokenizer`): control characters removed and whitespace turned into
//!    spaces (*clean text*), spaces put around CJK ideographs (which are written without spaces, so each becomes
//!    a word), accents stripped (canonical decomposition, NFD, then non-spacing marks dropped: `é` → `e`), and
//!    lowercased.
//! 3. It is split on whitespace, and every punctuation character becomes a word of its own.
//! 4. Each word is cut greedily, longest match first: the longest prefix in the vocabulary, then the longest
//!    continuation (stored with a `##` prefix) of what is left, and so on; a word with a piece that matches
//!    nothing, or longer than 100 characters, becomes `[UNK]` as a whole.
//! 5. `[CLS]` … `[SEP]` frame the ids, after truncation to the maximum length; padding (`[PAD]`, attention mask
//!    0) brings a batch to a common length.

use std::path::Path;

use rayon::prelude::*;
use serde_json::{Value, json};
use unicode_normalization::char::{canonical_combining_class, decompose_canonical};

use super::classes::{BertClass, bert_class, has_reference_decomposition, is_cjk_ideograph};
use super::hash::FxHashMap;
use super::json::{self, is_default, str_field};
use super::special::{Segment, SpecialMatcher};
use super::{definition_error, read_file};
use crate::{Error, Result};

/// The longest fixed padding a tokenizer.json may ask for (far beyond any BERT context).
const MAX_FIXED_PADDING: u64 = 1 << 20;

/// How [`WordPiece::encode_batch`] (and [`WordPiece::encode`]) pad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// No padding.
    #[default]
    None,
    /// Pad every encoding of a batch to the longest one.
    BatchLongest,
    /// Pad every encoding to this length (longer ones are left as they are).
    Fixed(usize),
}

/// What a [`WordPiece`] tokenizer does; the default is BERT uncased (all-MiniLM-L6-v2's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordPieceConfig {
    /// Remove control characters and map whitespace to spaces.
    pub clean_text: bool,
    /// Put spaces around CJK ideographs.
    pub handle_chinese_chars: bool,
    /// Strip accents (NFD, then drop non-spacing marks); `None` follows `lowercase`, as in BERT.
    pub strip_accents: Option<bool>,
    /// Lowercase.
    pub lowercase: bool,
    /// Words longer than this (in characters) become the unknown token.
    pub max_input_chars_per_word: usize,
    /// The prefix of continuation pieces in the vocabulary.
    pub continuing_subword_prefix: String,
    /// The unknown token.
    pub unk_token: String,
    /// The token put first (`[CLS]`); with `sep_token`, only used when `add_special_tokens`.
    pub cls_token: String,
    /// The token put last (`[SEP]`).
    pub sep_token: String,
    /// The padding token.
    pub pad_token: String,
    /// Texts split out of the raw input as single tokens (all of them skipped by decode).
    pub special_tokens: Vec<String>,
    /// Frame each encoding with `cls_token` … `sep_token`.
    pub add_special_tokens: bool,
    /// Truncate each encoding to this many ids, `[CLS]` and `[SEP]` included.
    pub max_length: Option<usize>,
    /// Padding of encodings.
    pub padding: Padding,
    /// Decode tidies spaces before punctuation and around contractions (HF's WordPiece decoder `cleanup`).
    pub decode_cleanup: bool,
}

impl Default for WordPieceConfig {
    fn default() -> Self {
        WordPieceConfig {
            clean_text: true,
            handle_chinese_chars: true,
            strip_accents: None,
            lowercase: true,
            max_input_chars_per_word: 100,
            continuing_subword_prefix: "##".into(),
            unk_token: "[UNK]".into(),
            cls_token: "[CLS]".into(),
            sep_token: "[SEP]".into(),
            pad_token: "[PAD]".into(),
            special_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(String::from).to_vec(),
            add_special_tokens: true,
            max_length: None,
            padding: Padding::None,
            decode_cleanup: true,
        }
    }
}

/// One encoded text: ids, segment (token type) ids, and the attention mask (1 = token, 0 = padding).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoding {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Segment ids (all 0 for a single text).
    pub type_ids: Vec<u32>,
    /// 1 for a real token, 0 for padding.
    pub attention_mask: Vec<u32>,
}

impl Encoding {
    /// The number of positions (padding included).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no positions.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn pad_to(&mut self, len: usize, pad_id: u32) {
        if self.ids.len() < len {
            self.ids.resize(len, pad_id);
            self.type_ids.resize(len, 0);
            self.attention_mask.resize(len, 0);
        }
    }
}

/// A WordPiece tokenizer (BERT).
#[derive(Debug, Clone)]
pub struct WordPiece {
    tokens: Vec<String>,
    /// Every vocabulary entry, for the first piece of a word.
    word_start: FxHashMap<Box<str>, u32>,
    /// Entries with the continuation prefix, prefix removed, for the later pieces.
    continuation: FxHashMap<Box<str>, u32>,
    /// Longest entry of each map in bytes (no longer piece can match).
    max_start_len: usize,
    max_continuation_len: usize,
    unk_id: u32,
    cls_id: u32,
    sep_id: u32,
    pad_id: u32,
    special: Vec<bool>,
    matcher: SpecialMatcher,
    config: WordPieceConfig,
}

impl WordPiece {
    /// A tokenizer from a vocabulary in id order and a configuration.
    ///
    /// # Errors
    /// [`Error::TokenizerDefinition`] when the unknown, CLS, SEP or PAD token or a special token is not in the
    /// vocabulary; [`Error::InvalidParameter`] for a `max_length` too small for `[CLS]` and `[SEP]`.
    pub fn new(tokens: Vec<String>, config: WordPieceConfig) -> Result<WordPiece> {
        WordPiece::build("parts", tokens, config)
    }

    fn build(source_name: &str, tokens: Vec<String>, config: WordPieceConfig) -> Result<WordPiece> {
        if u32::try_from(tokens.len()).is_err() {
            return Err(definition_error(source_name, "more than 2^32 tokens"));
        }
        let mut word_start: FxHashMap<Box<str>, u32> = FxHashMap::default();
        let mut continuation: FxHashMap<Box<str>, u32> = FxHashMap::default();
        for (id, t) in tokens.iter().enumerate() {
            // A repeated token keeps its last id, as HF's vocabulary map does.
            word_start.insert(t.as_str().into(), id as u32);
            if !config.continuing_subword_prefix.is_empty()
                && let Some(rest) = t.strip_prefix(config.continuing_subword_prefix.as_str())
            {
                continuation.insert(rest.into(), id as u32);
            }
        }
        let find = |t: &str, what: &str| {
            word_start
                .get(t)
                .copied()
                .ok_or_else(|| definition_error(source_name, format!("{what} {t:?} is not in the vocabulary")))
        };
        let unk_id = find(&config.unk_token, "unknown token")?;
        let cls_id = find(&config.cls_token, "CLS token")?;
        let sep_id = find(&config.sep_token, "SEP token")?;
        let pad_id = find(&config.pad_token, "padding token")?;
        let mut special = vec![false; tokens.len()];
        let mut matched = Vec::with_capacity(config.special_tokens.len());
        for t in &config.special_tokens {
            let id = find(t, "special token")?;
            special[id as usize] = true;
            matched.push((t.clone(), id));
        }
        let framing = if config.add_special_tokens { 2 } else { 0 };
        if let Some(max) = config.max_length
            && max < framing.max(1)
        {
            return Err(Error::InvalidParameter(format!(
                "WordPiece max_length {max} leaves no room for a token between [CLS] and [SEP]"
            )));
        }
        if config.max_input_chars_per_word == 0 {
            return Err(Error::InvalidParameter("WordPiece max_input_chars_per_word must be at least 1".into()));
        }
        Ok(WordPiece {
            max_start_len: word_start.keys().map(|k| k.len()).max().unwrap_or(0),
            max_continuation_len: continuation.keys().map(|k| k.len()).max().unwrap_or(0),
            tokens,
            word_start,
            continuation,
            unk_id,
            cls_id,
            sep_id,
            pad_id,
            special,
            matcher: SpecialMatcher::new(matched),
            config,
        })
    }

    /// Loads a `vocab.txt` (one token per line, the line number is the id) with a configuration.
    ///
    /// # Errors
    /// [`Error::TokenizerIo`] when the file cannot be read; as [`WordPiece::new`].
    pub fn from_vocab_txt(path: impl AsRef<Path>, config: WordPieceConfig) -> Result<WordPiece> {
        let path = path.as_ref();
        let text = read_file(path)?;
        WordPiece::build(&path.display().to_string(), vocab_lines(&text), config)
    }

    /// Parses the text of a `vocab.txt` (see [`WordPiece::from_vocab_txt`]).
    ///
    /// # Errors
    /// As [`WordPiece::new`].
    pub fn from_vocab_txt_str(text: &str, config: WordPieceConfig) -> Result<WordPiece> {
        WordPiece::build("vocab.txt", vocab_lines(text), config)
    }

    /// Loads a WordPiece `tokenizer.json` (HF `tokenizers`' format), with its truncation and padding.
    ///
    /// # Errors
    /// [`Error::TokenizerIo`] when the file cannot be read; [`Error::TokenizerDefinition`] as
    /// [`WordPiece::from_tokenizer_json_str`].
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<WordPiece> {
        let path = path.as_ref();
        WordPiece::from_json(&read_file(path)?, &path.display().to_string())
    }

    /// Parses a WordPiece tokenizer.json document: model `WordPiece`, normaliser `BertNormalizer` (or none),
    /// pre-tokeniser `BertPreTokenizer`, post-processor `TemplateProcessing` `[CLS] $A [SEP]` or
    /// `BertProcessing` (or none), right-side truncation without stride, right-side padding, decoder `WordPiece`.
    ///
    /// # Errors
    /// [`Error::TokenizerDefinition`] naming the first field that is malformed or unsupported.
    pub fn from_tokenizer_json_str(text: &str) -> Result<WordPiece> {
        WordPiece::from_json(text, "tokenizer.json")
    }

    fn from_json(text: &str, source_name: &str) -> Result<WordPiece> {
        let doc = json::parse(text, source_name)?;
        let unsupported = |what: &str, v: &Value| definition_error(source_name, format!("{what} {v} is not supported"));
        let model = doc.get("model").ok_or_else(|| definition_error(source_name, "no model"))?;
        if str_field(model, "type") != Some("WordPiece") {
            return Err(unsupported("model type", model.get("type").unwrap_or(&Value::Null)));
        }
        let mut config = WordPieceConfig {
            clean_text: false,
            handle_chinese_chars: false,
            strip_accents: Some(false),
            lowercase: false,
            add_special_tokens: false,
            decode_cleanup: false,
            ..WordPieceConfig::default()
        };
        if let Some(unk) = str_field(model, "unk_token") {
            config.unk_token = unk.to_string();
        }
        if let Some(prefix) = str_field(model, "continuing_subword_prefix") {
            config.continuing_subword_prefix = prefix.to_string();
        }
        if let Some(max) = model.get("max_input_chars_per_word").and_then(Value::as_u64) {
            config.max_input_chars_per_word = usize::try_from(max).unwrap_or(usize::MAX);
        }

        match doc.get("normalizer") {
            None | Some(Value::Null) => {}
            Some(n) if str_field(n, "type") == Some("BertNormalizer") => {
                let flag = |k: &str, default: bool| n.get(k).and_then(Value::as_bool).unwrap_or(default);
                config.clean_text = flag("clean_text", true);
                config.handle_chinese_chars = flag("handle_chinese_chars", true);
                config.lowercase = flag("lowercase", true);
                config.strip_accents = n.get("strip_accents").and_then(Value::as_bool);
            }
            Some(n) => return Err(unsupported("normalizer", n)),
        }
        match doc.get("pre_tokenizer") {
            Some(p) if str_field(p, "type") == Some("BertPreTokenizer") => {}
            other => return Err(unsupported("pre_tokenizer", other.unwrap_or(&Value::Null))),
        }
        match doc.get("post_processor") {
            None | Some(Value::Null) => {}
            Some(p) => {
                let (cls, sep) = cls_sep_of(p).ok_or_else(|| unsupported("post_processor", p))?;
                config.cls_token = cls;
                config.sep_token = sep;
                config.add_special_tokens = true;
            }
        }
        match doc.get("decoder") {
            None | Some(Value::Null) => {}
            Some(d)
                if str_field(d, "type") == Some("WordPiece")
                    && str_field(d, "prefix").is_none_or(|p| p == config.continuing_subword_prefix) =>
            {
                config.decode_cleanup = d.get("cleanup").and_then(Value::as_bool).unwrap_or(true);
            }
            Some(d) => return Err(unsupported("decoder", d)),
        }
        match doc.get("truncation") {
            None | Some(Value::Null) => {}
            Some(t) => {
                let right = is_default(t, "direction", &json!("Right"));
                let no_stride = is_default(t, "stride", &json!(0));
                match t.get("max_length").and_then(Value::as_u64) {
                    Some(max) if right && no_stride => config.max_length = Some(max as usize),
                    _ => return Err(unsupported("truncation", t)),
                }
            }
        }
        match doc.get("padding") {
            None | Some(Value::Null) => {}
            Some(p) => {
                let plain = is_default(p, "direction", &json!("Right"))
                    && is_default(p, "pad_to_multiple_of", &Value::Null)
                    && is_default(p, "pad_type_id", &json!(0));
                config.padding = match p.get("strategy") {
                    Some(Value::String(s)) if s == "BatchLongest" && plain => Padding::BatchLongest,
                    Some(Value::Object(o)) if plain => match o.get("Fixed").and_then(Value::as_u64) {
                        // A padded length beyond any model's context is a hostile file, not a
                        // setting: refused here rather than allocated at every encode.
                        Some(n) if n <= MAX_FIXED_PADDING => Padding::Fixed(n as usize),
                        _ => return Err(unsupported("padding", p)),
                    },
                    _ => return Err(unsupported("padding", p)),
                };
                if let Some(pad) = str_field(p, "pad_token") {
                    config.pad_token = pad.to_string();
                }
            }
        }

        let added = json::added_tokens(&doc, source_name)?;
        if let Some(t) = added.iter().find(|t| t.normalized) {
            return Err(definition_error(
                source_name,
                format!("added token {:?} is matched after normalisation, which is not supported", t.content),
            ));
        }
        config.special_tokens = added.iter().filter(|t| t.special).map(|t| t.content.clone()).collect();
        if let Some(t) = added.iter().find(|t| !t.special) {
            return Err(definition_error(
                source_name,
                format!("non-special added token {:?} is not supported", t.content),
            ));
        }
        let mut entries = json::vocab_map(model, source_name)?;
        entries.extend(added.iter().map(|t| (t.content.clone(), t.id)));
        let tokens = json::id_table(entries, source_name)?;
        if !config.add_special_tokens {
            // No framing: the CLS/SEP tokens need not exist; fall back to the unknown token so lookups succeed.
            for t in [&mut config.cls_token, &mut config.sep_token] {
                if !tokens.contains(t) {
                    *t = config.unk_token.clone();
                }
            }
        }
        if !tokens.contains(&config.pad_token) {
            config.pad_token = config.unk_token.clone();
        }
        WordPiece::build(source_name, tokens, config)
    }

    /// The configuration.
    pub fn config(&self) -> &WordPieceConfig {
        &self.config
    }

    /// The number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Every token's text, in id order.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// A token's text.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a token's text.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.word_start.get(token).copied()
    }

    /// The padding id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The text as BERT's normaliser leaves it (clean-up, CJK spacing, accent stripping, lowercasing).
    pub fn normalize(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 8);
        self.normalize_into(text, &mut out);
        out
    }

    fn normalize_into(&self, text: &str, out: &mut String) {
        let c = &self.config;
        let strip = c.strip_accents.unwrap_or(c.lowercase);
        // Clean-up and CJK spacing first, as the reference does them, into `spaced`.
        let mut spaced = String::with_capacity(text.len() + 8);
        let mut ascii = true;
        for ch in text.chars() {
            let ch = if c.clean_text {
                match bert_class(ch) {
                    BertClass::Control => continue,
                    BertClass::Whitespace => ' ',
                    _ => ch,
                }
            } else {
                ch
            };
            ascii &= ch.is_ascii();
            if c.handle_chinese_chars && is_cjk_ideograph(ch) {
                spaced.push(' ');
                spaced.push(ch);
                spaced.push(' ');
            } else {
                spaced.push(ch);
            }
        }
        if ascii || !strip {
            if c.lowercase {
                if ascii {
                    out.push_str(&spaced.to_ascii_lowercase());
                } else {
                    out.extend(spaced.chars().flat_map(char::to_lowercase));
                }
            } else {
                out.push_str(&spaced);
            }
            return;
        }
        // NFD, drop non-spacing marks, lowercase. ASCII characters never take part in canonical reordering, so
        // only the non-ASCII runs go through the decomposition.
        let bytes = spaced.as_bytes();
        let mut decomposed = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii() {
                out.push(if c.lowercase { bytes[i].to_ascii_lowercase() } else { bytes[i] } as char);
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && !bytes[i].is_ascii() {
                i += 1;
            }
            nfd(&spaced[start..i], &mut decomposed);
            for &d in &decomposed {
                if bert_class(d) == BertClass::NonSpacingMark {
                    continue;
                }
                if c.lowercase {
                    out.extend(d.to_lowercase());
                } else {
                    out.push(d);
                }
            }
        }
    }

    /// Calls `f` with each word of normalised text: whitespace separates words, punctuation is a word alone.
    fn split_words<'a>(text: &'a str, mut f: impl FnMut(&'a str)) {
        let mut start = None;
        for (i, ch) in text.char_indices() {
            let punct =
                if ch.is_ascii() { ch.is_ascii_punctuation() } else { bert_class(ch) == BertClass::Punctuation };
            if punct || ch.is_whitespace() {
                if let Some(s) = start.take() {
                    f(&text[s..i]);
                }
                if punct {
                    f(&text[i..i + ch.len_utf8()]);
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(s) = start {
            f(&text[s..]);
        }
    }

    /// Greedy longest-match-first pieces of one word.
    fn word_pieces(&self, word: &str, out: &mut Vec<u32>) {
        let max_chars = self.config.max_input_chars_per_word;
        if word.len() > max_chars && word.chars().count() > max_chars {
            out.push(self.unk_id);
            return;
        }
        let first = out.len();
        let mut start = 0;
        while start < word.len() {
            let (map, max_len) = if start == 0 {
                (&self.word_start, self.max_start_len)
            } else {
                (&self.continuation, self.max_continuation_len)
            };
            let mut end = word.len().min(start + max_len);
            while !word.is_char_boundary(end) {
                end -= 1;
            }
            let mut found = None;
            while end > start {
                if let Some(&id) = map.get(&word[start..end]) {
                    found = Some(id);
                    break;
                }
                end -= 1;
                while !word.is_char_boundary(end) {
                    end -= 1;
                }
            }
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(first);
                    out.push(self.unk_id);
                    return;
                }
            }
        }
    }

    /// The word-piece ids of `text`, without `[CLS]`/`[SEP]`, truncation or padding.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 4 + 2);
        let mut normalized = String::new();
        self.matcher.split(text, |segment| match segment {
            Segment::Special(id) => out.push(id),
            Segment::Text(t) => {
                normalized.clear();
                self.normalize_into(t, &mut normalized);
                WordPiece::split_words(&normalized, |w| self.word_pieces(w, &mut out));
            }
        });
        out
    }

    /// The word pieces of `text` (the ids of [`WordPiece::tokenize`]) with the byte range of `text` each comes
    /// from: HF `tokenizers`' offsets, in bytes where HF counts characters. A piece spans its source characters
    /// from the first to the last; characters the normaliser drops (control characters, combining accents) at
    /// a piece's edge belong to no piece, and a character split across pieces (a Hangul syllable's jamo after
    /// NFD) gives each of them the whole character; a special token spans its literal text.
    pub fn tokenize_with_offsets(&self, text: &str) -> Vec<(u32, std::ops::Range<usize>)> {
        let mut out = Vec::with_capacity(text.len() / 4 + 2);
        let mut normalized = String::new();
        let mut origin: Vec<(usize, usize)> = Vec::new();
        let mut ids = Vec::new();
        let base = text.as_ptr() as usize;
        let mut pos = 0;
        self.matcher.split(text, |segment| match segment {
            Segment::Special(id) => {
                let len = self.tokens.get(id as usize).map_or(0, String::len);
                out.push((id, pos..pos + len));
                pos += len;
            }
            Segment::Text(t) => {
                let offset = t.as_ptr() as usize - base;
                pos = offset + t.len();
                normalized.clear();
                origin.clear();
                self.normalize_aligned(t, offset, &mut normalized, &mut origin);
                let norm_base = normalized.as_ptr() as usize;
                WordPiece::split_words(&normalized, |w| {
                    let start = w.as_ptr() as usize - norm_base;
                    ids.clear();
                    self.word_pieces(w, &mut ids);
                    let source = |a: usize, b: usize| origin[a].0..origin[b - 1].1;
                    let prefix = self.config.continuing_subword_prefix.len();
                    let lengths: Vec<usize> = ids
                        .iter()
                        .enumerate()
                        .map(|(i, &id)| {
                            let len = self.tokens[id as usize].len();
                            if i == 0 { len } else { len.saturating_sub(prefix) }
                        })
                        .collect();
                    if lengths.iter().sum::<usize>() == w.len() && lengths.iter().all(|&l| l > 0) {
                        let mut a = start;
                        for (&id, len) in ids.iter().zip(lengths) {
                            out.push((id, source(a, a + len)));
                            a += len;
                        }
                    } else {
                        // [UNK] (or a piece whose text is not the vocabulary's): the whole word.
                        for &id in &ids {
                            out.push((id, source(start, start + w.len())));
                        }
                    }
                });
            }
        });
        out
    }

    /// [`WordPiece::normalize`] of `text` into `out`, recording for each byte of the output the byte range (offset
    /// by `offset`) of the source character it comes from.
    fn normalize_aligned(&self, text: &str, offset: usize, out: &mut String, origin: &mut Vec<(usize, usize)>) {
        let c = &self.config;
        let strip = c.strip_accents.unwrap_or(c.lowercase);
        let mut spaced: Vec<(char, usize, usize)> = Vec::with_capacity(text.len() + 8);
        for (i, ch) in text.char_indices() {
            let range = (offset + i, offset + i + ch.len_utf8());
            let ch = if c.clean_text {
                match bert_class(ch) {
                    BertClass::Control => continue,
                    BertClass::Whitespace => ' ',
                    _ => ch,
                }
            } else {
                ch
            };
            if c.handle_chinese_chars && is_cjk_ideograph(ch) {
                spaced.extend([(' ', range.0, range.1), (ch, range.0, range.1), (' ', range.0, range.1)]);
            } else {
                spaced.push((ch, range.0, range.1));
            }
        }
        let mut push = |ch: char, s: usize, e: usize| {
            out.push(ch);
            origin.extend(std::iter::repeat_n((s, e), ch.len_utf8()));
        };
        let ascii = spaced.iter().all(|(ch, _, _)| ch.is_ascii());
        if ascii || !strip {
            for &(ch, s, e) in &spaced {
                if c.lowercase {
                    ch.to_lowercase().for_each(|l| push(l, s, e));
                } else {
                    push(ch, s, e);
                }
            }
            return;
        }
        // NFD (only what the reference decomposes), then canonical reordering of each run of marks.
        let mut decomposed: Vec<(char, usize, usize)> = Vec::with_capacity(spaced.len() + 8);
        for &(ch, s, e) in &spaced {
            if !ch.is_ascii() && has_reference_decomposition(ch) {
                decompose_canonical(ch, |d| decomposed.push((d, s, e)));
            } else {
                decomposed.push((ch, s, e));
            }
        }
        let mut start = 0;
        while start < decomposed.len() {
            if canonical_combining_class(decomposed[start].0) == 0 {
                start += 1;
                continue;
            }
            let mut end = start + 1;
            while end < decomposed.len() && canonical_combining_class(decomposed[end].0) != 0 {
                end += 1;
            }
            decomposed[start..end].sort_by_key(|&(ch, _, _)| canonical_combining_class(ch));
            start = end;
        }
        for (ch, s, e) in decomposed {
            if bert_class(ch) == BertClass::NonSpacingMark {
                continue;
            }
            if c.lowercase {
                ch.to_lowercase().for_each(|l| push(l, s, e));
            } else {
                push(ch, s, e);
            }
        }
    }

    /// Encodes one text: word pieces, truncated to `max_length`, framed by `[CLS]`/`[SEP]`, padded when the
    /// padding is [`Padding::Fixed`].
    pub fn encode(&self, text: &str) -> Encoding {
        let mut pieces = self.tokenize(text);
        let framing = if self.config.add_special_tokens { 2 } else { 0 };
        if let Some(max) = self.config.max_length {
            pieces.truncate(max.saturating_sub(framing));
        }
        let mut ids = Vec::with_capacity(pieces.len() + framing);
        if self.config.add_special_tokens {
            ids.push(self.cls_id);
            ids.extend_from_slice(&pieces);
            ids.push(self.sep_id);
        } else {
            ids = pieces;
        }
        let n = ids.len();
        let mut encoding = Encoding { ids, type_ids: vec![0; n], attention_mask: vec![1; n] };
        if let Padding::Fixed(len) = self.config.padding {
            encoding.pad_to(len, self.pad_id);
        }
        encoding
    }

    /// Encodes many texts in parallel, then pads them as configured (to the longest for
    /// [`Padding::BatchLongest`]).
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Vec<Encoding> {
        let mut encodings: Vec<Encoding> = texts.par_iter().map(|t| self.encode(t.as_ref())).collect();
        if self.config.padding == Padding::BatchLongest {
            let longest = encodings.iter().map(Encoding::len).max().unwrap_or(0);
            for e in &mut encodings {
                e.pad_to(longest, self.pad_id);
            }
        }
        encodings
    }

    /// The text of the ids, special tokens (and padding) left out: pieces joined by spaces, `##` continuations
    /// glued to the piece before, and, with `decode_cleanup`, no space before `.`, `,`, `?`, `!` and in
    /// contractions (HF's WordPiece decoder).
    ///
    /// # Errors
    /// [`Error::UnknownTokenId`] for an id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut out = String::new();
        let mut first = true;
        let prefix = self.config.continuing_subword_prefix.as_str();
        for &id in ids {
            let token =
                self.tokens.get(id as usize).ok_or(Error::UnknownTokenId { id, vocab_size: self.tokens.len() })?;
            if self.special[id as usize] {
                continue;
            }
            let piece = if first {
                token.clone()
            } else if !prefix.is_empty() && token.starts_with(prefix) {
                token.replacen(prefix, "", 1)
            } else {
                format!(" {token}")
            };
            first = false;
            if self.config.decode_cleanup {
                out.push_str(&cleanup(&piece));
            } else {
                out.push_str(&piece);
            }
        }
        Ok(out)
    }
}

/// Canonical decomposition (NFD) of `text` into `out`: each character replaced by its canonical decomposition,
/// then every run of combining marks stably sorted by combining class. Only characters the reference decomposes
/// are decomposed (see `has_reference_decomposition`), so text in scripts whose decompositions came with
/// Unicode 13 or later is left as the reference leaves it.
fn nfd(text: &str, out: &mut Vec<char>) {
    out.clear();
    for c in text.chars() {
        if has_reference_decomposition(c) {
            decompose_canonical(c, |d| out.push(d));
        } else {
            out.push(c);
        }
    }
    let mut start = 0;
    while start < out.len() {
        if canonical_combining_class(out[start]) == 0 {
            start += 1;
            continue;
        }
        let mut end = start + 1;
        while end < out.len() && canonical_combining_class(out[end]) != 0 {
            end += 1;
        }
        out[start..end].sort_by_key(|&c| canonical_combining_class(c));
        start = end;
    }
}

/// HF's decoder clean-up of one piece.
fn cleanup(piece: &str) -> String {
    piece
        .replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" do not", " don't")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

/// The tokens of a vocab.txt: one per line, trailing whitespace removed (HF reads it the same way).
fn vocab_lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim_end().to_string()).collect()
}

/// The `[CLS]`-like and `[SEP]`-like tokens of a single-sequence post-processor, if it is one we reproduce.
fn cls_sep_of(p: &Value) -> Option<(String, String)> {
    match str_field(p, "type")? {
        "TemplateProcessing" => {
            let single = p.get("single")?.as_array()?;
            let [first, seq, last] = single.as_slice() else { return None };
            let special = |v: &Value| -> Option<String> {
                let s = v.get("SpecialToken")?;
                (s.get("type_id").and_then(Value::as_u64).unwrap_or(0) == 0)
                    .then(|| str_field(s, "id").map(String::from))?
            };
            let is_a = seq.get("Sequence").and_then(|s| str_field(s, "id")) == Some("A")
                && seq.get("Sequence").and_then(|s| s.get("type_id")).and_then(Value::as_u64).unwrap_or(0) == 0;
            let (cls, sep) = (special(first)?, special(last)?);
            // Each special token of the template must stand for itself alone.
            let specials = p.get("special_tokens")?;
            let single_id = |t: &str| {
                specials
                    .get(t)
                    .and_then(|s| s.get("tokens"))
                    .and_then(Value::as_array)
                    .map(|a| a.len() == 1 && a[0] == t)
            };
            (is_a && single_id(&cls) == Some(true) && single_id(&sep) == Some(true)).then_some((cls, sep))
        }
        "BertProcessing" => {
            let name = |k: &str| p.get(k)?.as_array()?.first()?.as_str().map(String::from);
            Some((name("cls")?, name("sep")?))
        }
        _ => None,
    }
}
