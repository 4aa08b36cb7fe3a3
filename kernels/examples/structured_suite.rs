//! The structured-output suite of `cargo xtask bench structured`: SmolLM2 answers each schema × prompt pair of
//! `tests/fixtures/constrain/suite.json` twice, greedily, with the same prompt (the schema written into the
//! system turn): once under `kernels::constrain` and once free. Prints JSON: every output (the xtask validates
//! them with Python `jsonschema` in one batch), the one-off cost of the vocabulary, the per-request cost of
//! compiling a grammar, and the time of every decode step split into forward pass, mask computation, logit write
//! and sample + commit.
//!
//! usage: structured_suite MODEL.gguf SUITE.json MAX_PAIRS

use std::time::Instant;

use kernels::constrain::{Constraint, Grammar, Vocabulary};
use kernels::formats::Gguf;
use kernels::llm::{LlamaModel, argmax};
use kernels::tokenize::Bpe;
use serde_json::{Value, json};

/// `<|im_end|>`: SmolLM2's end of turn.
const IM_END: u32 = 2;
const MAX_CONSTRAINED: usize = 192;
const MAX_FREE: usize = 160;

/// Seconds spent in each part of decoding, summed over steps.
#[derive(Default, Clone)]
struct Steps {
    /// Generated tokens.
    tokens: usize,
    /// Forward passes of one token (the prompt's pass is not counted).
    forward: f64,
    /// `Constraint::mask`.
    mask: f64,
    /// Writing −∞ into the disallowed logits.
    apply: f64,
    /// The arg-max, plus `Constraint::commit` when constrained.
    select: f64,
    /// Each generated token's time (choosing it, then the forward pass that feeds it back).
    per_step: Vec<f64>,
}

impl Steps {
    fn add(&mut self, o: &Steps) {
        self.tokens += o.tokens;
        self.forward += o.forward;
        self.mask += o.mask;
        self.apply += o.apply;
        self.select += o.select;
    }

    /// Seconds of the first `k` steps.
    fn first(&self, k: usize) -> f64 {
        self.per_step.iter().take(k).sum()
    }

    fn per_token_ms(&self) -> Value {
        let n = self.tokens.max(1) as f64 / 1e3;
        json!({"tokens": self.tokens, "forward_ms": self.forward / n, "mask_ms": self.mask / n,
               "apply_ms": self.apply / n, "select_ms": self.select / n,
               "total_ms": (self.forward + self.mask + self.apply + self.select) / n})
    }
}

fn prompt(bpe: &Bpe, schema: &Value, user: &str) -> Vec<u32> {
    let system = format!(
        "You are a helpful assistant. Answer with a JSON value that follows this JSON schema, and nothing else:\n{schema}"
    );
    bpe.encode(&format!(
        "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    ))
}

/// Greedy decoding after `ids`, under `constraint` if given; the generated tokens (without the end token),
/// whether the output ended by itself, and the step times.
fn decode(
    model: &LlamaModel,
    ids: &[u32],
    mut constraint: Option<&mut Constraint>,
    max_tokens: usize,
) -> (Vec<u32>, bool, Steps) {
    let mut steps = Steps::default();
    let mut cache = model.new_cache(ids.len() + max_tokens + 1);
    let mut logits = model.forward(ids, &mut cache).expect("prompt");
    let mut tokens = Vec::new();
    while tokens.len() < max_tokens {
        let step = Instant::now();
        let t = match constraint.as_deref_mut() {
            Some(c) => {
                let start = Instant::now();
                let mask = c.mask().expect("mask");
                let masked = Instant::now();
                mask.apply_to(&mut logits);
                let applied = Instant::now();
                let t = argmax(&logits);
                c.commit(t).expect("the arg-max of the masked logits is allowed");
                steps.mask += (masked - start).as_secs_f64();
                steps.apply += (applied - masked).as_secs_f64();
                steps.select += applied.elapsed().as_secs_f64();
                t
            }
            None => {
                let start = Instant::now();
                let t = argmax(&logits);
                steps.select += start.elapsed().as_secs_f64();
                t
            }
        };
        if t == IM_END {
            return (tokens, true, steps);
        }
        tokens.push(t);
        steps.tokens += 1;
        if constraint.as_deref().is_some_and(Constraint::is_finished) {
            return (tokens, true, steps);
        }
        let start = Instant::now();
        logits = model.forward(&[t], &mut cache).expect("step");
        steps.forward += start.elapsed().as_secs_f64();
        steps.per_step.push(step.elapsed().as_secs_f64());
    }
    (tokens, false, steps)
}

/// The first JSON object or array in free text: from the first `{` or `[` to the last `}` or `]` (what a
/// lenient client does with "Here is the JSON: ```json … ```").
fn extract_json(text: &str) -> Option<&str> {
    let start = text.find(['{', '['])?;
    let close = if text[start..].starts_with('{') { '}' } else { ']' };
    let end = text.rfind(close)?;
    (end > start).then(|| &text[start..=end])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = LlamaModel::load(&args[1]).expect("model loads");
    let suite: Value = serde_json::from_slice(&std::fs::read(&args[2]).expect("read the suite")).expect("suite JSON");
    let max_pairs: usize = args[3].parse().expect("MAX_PAIRS");

    let start = Instant::now();
    let bpe = Bpe::from_gguf(&Gguf::open(&args[1]).expect("open the GGUF")).expect("tokenizer");
    let bpe_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let vocab = Vocabulary::from_bpe(&bpe, IM_END).expect("vocabulary");
    let vocab_ms = start.elapsed().as_secs_f64() * 1e3;

    let (mut constrained, mut free) = (Steps::default(), Steps::default());
    let mut compile_s = Vec::new();
    // Seconds constrained, seconds free, steps: over the positions both runs of a pair reached.
    let mut same_positions = (0.0f64, 0.0f64, 0usize);
    let mut pairs = Vec::new();
    for pair in suite["pairs"].as_array().expect("pairs").iter().take(max_pairs) {
        let schema = &pair["schema"];
        let ids = prompt(&bpe, schema, pair["prompt"].as_str().expect("prompt"));
        let start = Instant::now();
        let mut c = Constraint::new(&vocab, &Grammar::JsonSchema(schema.clone())).expect("the schema compiles");
        compile_s.push(start.elapsed().as_secs_f64());
        // Alternate which run goes first, so that drift in the machine's speed falls on both alike.
        let ((c_tokens, c_complete, c_steps), (f_tokens, f_ended, f_steps)) = if pairs.len() % 2 == 0 {
            let c_run = decode(&model, &ids, Some(&mut c), MAX_CONSTRAINED);
            (c_run, decode(&model, &ids, None, MAX_FREE))
        } else {
            let f_run = decode(&model, &ids, None, MAX_FREE);
            (decode(&model, &ids, Some(&mut c), MAX_CONSTRAINED), f_run)
        };
        // The same positions in both runs: the steps both took (a step's forward pass costs more later in
        // the sequence, and free answers run longer).
        let k = c_steps.per_step.len().min(f_steps.per_step.len());
        same_positions.0 += c_steps.first(k);
        same_positions.1 += f_steps.first(k);
        same_positions.2 += k;
        constrained.add(&c_steps);
        free.add(&f_steps);
        let c_text = bpe.decode(&c_tokens).expect("ids");
        let f_text = bpe.decode(&f_tokens).expect("ids");
        eprintln!("{}: {c_text}", pair["id"].as_str().unwrap_or("?"));
        pairs.push(json!({
            "id": pair["id"], "kind": pair["kind"], "prompt_tokens": ids.len(),
            "constrained": {"text": c_text, "tokens": c_tokens.len(), "complete": c_complete},
            "free": {"text": f_text.trim(), "extracted": extract_json(&f_text), "tokens": f_tokens.len(), "ended": f_ended},
        }));
    }
    compile_s.sort_by(f64::total_cmp);
    let median_compile_ms = compile_s.get(compile_s.len() / 2).copied().unwrap_or(0.0) * 1e3;
    let max_compile_ms = compile_s.last().copied().unwrap_or(0.0) * 1e3;
    println!(
        "{}",
        json!({
            "threads": rayon::current_num_threads(),
            "vocab_size": vocab.len(),
            "bpe_load_ms": bpe_ms,
            "vocabulary_build_ms": vocab_ms,
            "grammar_compile_ms": {"median": median_compile_ms, "max": max_compile_ms},
            "same_positions": {"steps": same_positions.2, "constrained_ms": same_positions.0 * 1e3,
                               "free_ms": same_positions.1 * 1e3},
            "constrained": constrained.per_token_ms(),
            "free": free.per_token_ms(),
            "pairs": pairs,
        })
    );
}
