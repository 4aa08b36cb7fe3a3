//! Sentence-embedding throughput of `kernels::nn::bert` as JSON (the Rust side of the onnxruntime comparison).
//!
//! usage: embed_throughput MODEL_DIR SENTENCES.txt BATCH ROUNDS
//!
//! The twin of `autograder/peers/minilm_onnx.py` in `cargo xtask bench embed`: the same
//! sentences (one a line, empty lines skipped) in the same batches, timed from text to
//! normalised embeddings (`BertModel::embed`: WordPiece tokenisation, then the packed forward
//! pass). Before timing, "hello world" must reproduce the model's published embedding (within
//! 1e-3), else it exits 1. Prints sentences/s best of ROUNDS and median, tokens/s at the best
//! round, the token count and `probe`, the embeddings of the first batch.

use std::time::Instant;

use kernels::nn::bert::BertModel;

const HELLO_WORLD: [f32; 5] = [-0.0345, 0.0310, 0.0067, 0.0261, -0.0394];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: embed_throughput MODEL_DIR SENTENCES.txt BATCH ROUNDS");
        std::process::exit(2);
    }
    let model = BertModel::load(&args[1]).expect("model loads");
    let text = std::fs::read_to_string(&args[2]).expect("sentences file reads");
    let batch: usize = args[3].parse().expect("BATCH is a number");
    let rounds: usize = args[4].parse().expect("ROUNDS is a number");
    let sentences: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert!(batch > 0 && rounds > 0 && !sentences.is_empty(), "nothing to measure");

    let hello = model.embed(&["hello world"]).expect("embeds");
    if hello[0].iter().zip(HELLO_WORLD).any(|(got, want)| (got - want).abs() > 1e-3) {
        eprintln!("wrong embedding of 'hello world': {:?} vs {HELLO_WORLD:?}", &hello[0][..5]);
        std::process::exit(1);
    }
    let tokenizer = model.tokenizer().expect("the model folder has tokenizer.json");
    let tokens: u64 = tokenizer
        .encode_batch(&sentences)
        .iter()
        .map(|e| e.attention_mask.iter().map(|&m| u64::from(m != 0)).sum::<u64>())
        .sum();

    let probe = model.embed(&sentences[..batch.min(sentences.len())]).expect("embeds"); // also the warm-up
    let mut rates = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let start = Instant::now();
        for chunk in sentences.chunks(batch) {
            std::hint::black_box(model.embed(chunk).expect("embeds"));
        }
        rates.push(sentences.len() as f64 / start.elapsed().as_secs_f64());
        eprintln!("  round {}/{rounds}: {:.1} sentences/s", r + 1, rates[r]);
    }
    let best = rates.iter().copied().fold(0.0, f64::max);
    rates.sort_by(f64::total_cmp);
    let median = if rounds % 2 == 1 { rates[rounds / 2] } else { (rates[rounds / 2 - 1] + rates[rounds / 2]) / 2.0 };
    println!(
        "{{\"sentences\": {}, \"batch\": {batch}, \"rounds\": {rounds}, \"threads\": {}, \"sentences_per_s\": {best}, \
         \"sentences_per_s_median\": {median}, \"tokens_per_s\": {}, \"tokens\": {tokens}, \"probe\": {probe:?}}}",
        sentences.len(),
        rayon::current_num_threads(),
        best * tokens as f64 / sentences.len() as f64,
    );
}
