//! Small seeded document collections for full-text search tests and benchmarks.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A vocabulary with a Zipf-like skew: early words are common, late words rare.
const WORDS: &[&str] = &[
    "the",
    "vector",
    "search",
    "index",
    "query",
    "rust",
    "memory",
    "graph",
    "layer",
    "neighbour",
    "distance",
    "cosine",
    "embedding",
    "model",
    "token",
    "score",
    "rank",
    "fusion",
    "document",
    "term",
    "frequency",
    "inverse",
    "length",
    "cache",
    "simd",
    "lane",
    "heap",
    "recall",
    "latency",
    "throughput",
    "cluster",
    "centroid",
    "quantise",
    "shard",
    "replica",
    "delta",
    "table",
    "stream",
    "batch",
    "kernel",
    "tensor",
    "matrix",
    "sparse",
    "dense",
    "hybrid",
    "keyword",
    "semantic",
    "lexical",
    "sovereign",
    "platform",
];

/// `n` documents of 3 to `max_len` words each, seeded. Words follow a skewed
/// distribution so document frequencies (and so IDF) vary widely.
pub fn documents(n: usize, max_len: usize, seed: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.random_range(3..=max_len.max(3));
            (0..len)
                .map(|_| {
                    // Squaring a uniform variate skews picks towards the front.
                    let u: f64 = rng.random();
                    WORDS[((u * u) * WORDS.len() as f64) as usize]
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Queries of one to three words from the same vocabulary.
pub fn queries(n: usize, seed: u64) -> Vec<String> {
    documents(n, 3, seed ^ 0x9E37_79B9_7F4A_7C15)
        .into_iter()
        .map(|d| d.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect()
}
