//! Prefill and decode throughput of `kernels::llm` on a GGUF, printed as JSON (the Rust side of the llama.cpp comparison).
//!
//! usage: llm_throughput MODEL.gguf PROMPT_TOKENS DECODE_TOKENS ROUNDS
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
    let model = LlamaModel::load(&args[1]).expect("model loads");
    let n_prompt: usize = args[2].parse().unwrap();
    let n_decode: usize = args[3].parse().unwrap();
    let rounds: usize = args[4].parse().unwrap();
    let prompt: Vec<u32> = (0..n_prompt as u32).map(|i| 100 + (i * 7919) % 40_000).collect();
    let (mut best_prefill, mut best_decode) = (0.0f64, 0.0f64);
    let mut tokens = Vec::new();
    for _ in 0..rounds {
        let mut cache = model.new_cache(n_prompt + n_decode + 1);
        let start = Instant::now();
        let logits = model.forward(&prompt, &mut cache).unwrap();
        best_prefill = best_prefill.max(n_prompt as f64 / start.elapsed().as_secs_f64());
        let mut next = argmax(&logits);
        tokens.clear();
        let start = Instant::now();
        for _ in 0..n_decode {
            tokens.push(next);
            next = argmax(&model.forward(&[next], &mut cache).unwrap());
        }
        best_decode = best_decode.max(n_decode as f64 / start.elapsed().as_secs_f64());
    }
    println!(
        "{{\"prefill_tok_s\": {best_prefill}, \"decode_tok_s\": {best_decode}, \"weight_bytes_per_token\": {}, \
         \"read_bytes_per_s\": {}, \"threads\": {}, \"tokens\": {tokens:?}}}",
        model.weight_bytes_per_token(),
        read_bandwidth(),
        rayon::current_num_threads()
    );
}
