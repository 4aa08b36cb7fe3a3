//! Prefill and decode throughput of `kernels::llm` on a GGUF, printed as JSON (the Rust side of the llama.cpp comparison).
//!
//! usage: llm_throughput MODEL.gguf PROMPT_TOKENS DECODE_TOKENS ROUNDS [COPY.gguf …]
//!
//! With copies of the file (each its own file, so no two share page-cache
//! pages), every copy prefills the prompt and then the copies decode one token
//! each in turn: when the copies together exceed the last-level cache, each
//! token reads its weights from DRAM (the regime of a model larger than the
//! cache), not from the cache the previous token filled.
//!
//! It also measures the machine's streaming read bandwidth (a 1 GiB sum on the
//! rayon pool), the denominator of the decode roofline: a decoded token reads
//! every weight once, so tokens/s ≤ bandwidth / weight bytes per token.

use std::time::Instant;

use kernels::llm::{LlamaModel, argmax};
use rayon::prelude::*;

/// Best-of-3 read bandwidth in bytes/s over a buffer far larger than the caches.
fn read_bandwidth() -> f64 {
    let data = vec![1.0f32; 1 << 28];
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let total: f32 = data.par_chunks(1 << 16).map(kernels::simd::sum).sum();
        let seconds = start.elapsed().as_secs_f64();
        assert!(total > 0.0);
        best = best.max((data.len() * 4) as f64 / seconds);
    }
    best
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: llm_throughput MODEL.gguf PROMPT_TOKENS DECODE_TOKENS ROUNDS [COPY.gguf …]");
        std::process::exit(2);
    }
    let n_prompt: usize = args[2].parse().expect("PROMPT_TOKENS is a number");
    let n_decode: usize = args[3].parse().expect("DECODE_TOKENS is a number");
    let rounds: usize = args[4].parse().expect("ROUNDS is a number");
    // The model and its copies, each its own file so that no two share page-cache pages.
    let paths = std::iter::once(&args[1]).chain(&args[5..]);
    let models: Vec<LlamaModel> = paths.map(|p| LlamaModel::load(p).expect("model loads")).collect();
    let k = models.len();
    let prompt: Vec<u32> = (0..n_prompt as u32).map(|i| 100 + (i * 7919) % 40_000).collect();
    let (mut best_prefill, mut best_decode) = (0.0f64, 0.0f64);
    let mut tokens = Vec::new();
    for _ in 0..rounds {
        let mut caches: Vec<_> = models.iter().map(|m| m.new_cache(n_prompt + n_decode + 1)).collect();
        let start = Instant::now();
        let mut next: Vec<u32> =
            models.iter().zip(&mut caches).map(|(m, cache)| argmax(&m.forward(&prompt, cache).unwrap())).collect();
        best_prefill = best_prefill.max((k * n_prompt) as f64 / start.elapsed().as_secs_f64());
        tokens.clear();
        let start = Instant::now();
        for _ in 0..n_decode {
            tokens.push(next[0]);
            // One token of each copy in turn: the copy that decodes next was evicted by the others.
            for ((m, cache), token) in models.iter().zip(&mut caches).zip(&mut next) {
                *token = argmax(&m.forward(&[*token], cache).unwrap());
            }
        }
        best_decode = best_decode.max((k * n_decode) as f64 / start.elapsed().as_secs_f64());
    }
    println!(
        "{{\"prefill_tok_s\": {best_prefill}, \"decode_tok_s\": {best_decode}, \"weight_bytes_per_token\": {}, \
         \"read_bytes_per_s\": {}, \"threads\": {}, \"copies\": {k}, \"tokens\": {tokens:?}}}",
        models[0].weight_bytes_per_token(),
        read_bandwidth(),
        rayon::current_num_threads()
    );
}
