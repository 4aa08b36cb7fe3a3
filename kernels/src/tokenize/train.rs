//! Learning byte-level BPE merges from a corpus (Sennrich et al. 2016, Algorithm 1), as HF's `BpeTrainer` does.
//!
//! 1. Pre-tokenise the corpus and count each distinct piece (a *word*); a word starts as one symbol per byte.
//! 2. The vocabulary starts with the special tokens, then the byte alphabet (the 256 GPT-2 characters, or only
//!    the bytes seen), ordered by code point.
//! 3. Count every adjacent pair of symbols, weighted by word count, remembering which words hold it.
//! 4. Repeatedly take the most frequent pair — on a tie the smallest `(left id, right id)`, which makes training
//!    deterministic — add the merged token, and replace the pair in the words that hold it, adjusting the
//!    counts of the pairs around each replacement; stop at the vocabulary size, when no pair is left, or when the
//!    best count falls under `min_frequency`.
//!
//! The priority queue is updated lazily: an entry whose count is out of date is pushed back with the current
//! count when it reaches the top. This mirrors HF's trainer step for step, including its corner cases (an entry
//! carries the words it was queued for; a merge whose result is already a token adds no token), so the same
//! corpus gives the same vocabulary and merges, which the integration tests check.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::bpe::{Bpe, BpeConfig};
use super::byte_level::BYTE_TO_CHAR;
use super::hash::FxHashMap;
use super::pretokenize::PreTokenizer;
use crate::{Error, Result};

/// What [`train_bpe`] learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainConfig {
    /// The vocabulary size to reach (special tokens and the byte alphabet included).
    pub vocab_size: usize,
    /// Pairs seen fewer times than this are not merged.
    pub min_frequency: u64,
    /// Tokens placed first in the vocabulary (ids 0, 1, …) and split out of text when encoding.
    pub special_tokens: Vec<String>,
    /// How the corpus is split into words.
    pub pre_tokenizer: PreTokenizer,
    /// Start from all 256 byte characters (so any text encodes), not only the bytes the corpus holds.
    pub all_bytes: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            vocab_size: 1000,
            min_frequency: 0,
            special_tokens: Vec::new(),
            pre_tokenizer: PreTokenizer::Gpt2,
            all_bytes: true,
        }
    }
}

type Pair = (u32, u32);

/// A queued pair with its count when queued and the words it was queued for.
struct Candidate {
    count: u64,
    pair: Pair,
    words: Vec<usize>,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count && self.pair == other.pair
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    /// Larger count first, then the smaller pair (the heap pops the greatest).
    fn cmp(&self, other: &Self) -> Ordering {
        self.count.cmp(&other.count).then_with(|| other.pair.cmp(&self.pair))
    }
}

/// Learns a byte-level BPE tokenizer from `corpus` (each item is one text).
///
/// # Errors
/// [`Error::InvalidParameter`] when `vocab_size` is 0 or a special token is empty.
pub fn train_bpe<S: AsRef<str>>(corpus: &[S], config: &TrainConfig) -> Result<Bpe> {
    if config.vocab_size == 0 {
        return Err(Error::InvalidParameter("train_bpe: vocab_size must be at least 1".into()));
    }
    if config.special_tokens.iter().any(String::is_empty) {
        return Err(Error::InvalidParameter("train_bpe: a special token is empty".into()));
    }

    // 1. Words and their counts.
    let mut word_counts: FxHashMap<&[u8], u64> = FxHashMap::default();
    for text in corpus {
        config.pre_tokenizer.split(text.as_ref(), |piece| *word_counts.entry(piece.as_bytes()).or_default() += 1);
    }

    // 2. Special tokens, then the alphabet by code point.
    let mut id_to_token: Vec<String> = Vec::new();
    let mut token_to_id: FxHashMap<String, u32> = FxHashMap::default();
    let mut add_token = |t: String, id_to_token: &mut Vec<String>| -> u32 {
        *token_to_id.entry(t.clone()).or_insert_with(|| {
            id_to_token.push(t);
            (id_to_token.len() - 1) as u32
        })
    };
    for t in &config.special_tokens {
        add_token(t.clone(), &mut id_to_token);
    }
    let mut seen = [config.all_bytes; 256];
    for word in word_counts.keys() {
        for &b in *word {
            seen[b as usize] = true;
        }
    }
    let mut alphabet: Vec<u8> = (0..=255u8).filter(|&b| seen[b as usize]).collect();
    alphabet.sort_by_key(|&b| BYTE_TO_CHAR[b as usize]);
    let mut byte_id = [0u32; 256];
    for b in alphabet {
        byte_id[b as usize] = add_token(BYTE_TO_CHAR[b as usize].to_string(), &mut id_to_token);
    }

    let mut words: Vec<Vec<u32>> = Vec::with_capacity(word_counts.len());
    let mut counts: Vec<u64> = Vec::with_capacity(word_counts.len());
    for (word, &count) in &word_counts {
        words.push(word.iter().map(|&b| byte_id[b as usize]).collect());
        counts.push(count);
    }

    // 3. Pair counts and where each pair occurs.
    let mut pair_counts: FxHashMap<Pair, i64> = FxHashMap::default();
    let mut where_to_update: FxHashMap<Pair, Vec<usize>> = FxHashMap::default();
    for (i, word) in words.iter().enumerate() {
        for w in word.windows(2) {
            let pair = (w[0], w[1]);
            *pair_counts.entry(pair).or_default() += counts[i] as i64;
            where_to_update.entry(pair).or_default().push(i);
        }
    }
    let mut queue = BinaryHeap::with_capacity(pair_counts.len());
    flush_updates(&mut where_to_update, &pair_counts, &mut queue);

    // 4. Merge the best pair until the vocabulary is full.
    let mut merges: Vec<(String, String)> = Vec::new();
    let mut changes: Vec<(Pair, i64, usize)> = Vec::new();
    while id_to_token.len() < config.vocab_size {
        let Some(mut top) = queue.pop() else { break };
        let current = pair_counts.get(&top.pair).copied().unwrap_or(0);
        if top.count != current as u64 {
            top.count = current as u64;
            queue.push(top);
            continue;
        }
        if top.count < 1 || top.count < config.min_frequency {
            break;
        }
        let (left, right) = top.pair;
        let merged = format!("{}{}", id_to_token[left as usize], id_to_token[right as usize]);
        let new_id = add_token(merged, &mut id_to_token);
        merges.push((id_to_token[left as usize].clone(), id_to_token[right as usize].clone()));

        changes.clear();
        for &w in &top.words {
            merge_in_word(&mut words[w], top.pair, new_id, w, &mut changes);
        }
        for &(pair, change, w) in &changes {
            *pair_counts.entry(pair).or_default() += change * counts[w] as i64;
            if change > 0 {
                where_to_update.entry(pair).or_default().push(w);
            }
        }
        flush_updates(&mut where_to_update, &pair_counts, &mut queue);
    }

    let bpe_config = BpeConfig {
        pre_tokenizer: config.pre_tokenizer,
        special_tokens: config.special_tokens.clone(),
        ..BpeConfig::default()
    };
    Bpe::new(id_to_token, &merges, bpe_config)
}

/// Queues every pair in `updates` whose count is positive, with the words recorded for it.
fn flush_updates(
    updates: &mut FxHashMap<Pair, Vec<usize>>,
    pair_counts: &FxHashMap<Pair, i64>,
    queue: &mut BinaryHeap<Candidate>,
) {
    for (pair, mut words) in updates.drain() {
        let count = pair_counts.get(&pair).copied().unwrap_or(0);
        if count > 0 {
            words.sort_unstable();
            words.dedup();
            queue.push(Candidate { count: count as u64, pair, words });
        }
    }
}

/// Replaces each occurrence of `pair` in `word` (left to right, non-overlapping) by `new_id`, recording the
/// pair-count changes `(pair, ±1, word index)` around each replacement.
fn merge_in_word(word: &mut Vec<u32>, pair: Pair, new_id: u32, w: usize, changes: &mut Vec<(Pair, i64, usize)>) {
    let mut i = 0;
    while i + 1 < word.len() {
        if (word[i], word[i + 1]) == pair {
            if i > 0 {
                changes.push(((word[i - 1], pair.0), -1, w));
                changes.push(((word[i - 1], new_id), 1, w));
            }
            word[i] = new_id;
            word.remove(i + 1);
            if i + 1 < word.len() {
                changes.push(((pair.1, word[i + 1]), -1, w));
                changes.push(((new_id, word[i + 1]), 1, w));
            }
        }
        i += 1;
    }
}
