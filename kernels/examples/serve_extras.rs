//! What the server's per-request extras cost the engine: decode time per generated token with
//! log-probabilities, penalties and bias, and a JSON-schema grammar, and prefill time of a scored
//! prompt (`echo` + `logprobs`), each as a ratio to plain requests measured in the same run.
//!
//! usage: serve_extras MODEL.gguf ROUNDS   → JSON on stdout (best of ROUNDS, kinds interleaved)
//!
//! Four sequences decode together (continuous batching, [`kernels::serve::engine`]), greedy, 48
//! new tokens each; the grammar's sequences may end earlier, so time is divided by the tokens made.

use std::time::Instant;

use kernels::constrain::{Constraint, Grammar};
use kernels::llm::{ChatMessage, SamplerConfig};
use kernels::serve::ChatModel;
use kernels::serve::engine::{Engine, EngineConfig, Event, Extras, Job};
use serde_json::json;

const QUESTIONS: [&str; 4] =
    ["Describe a person.", "Tell me about cats.", "What is the capital of France?", "Name three colours."];

#[derive(Clone, Copy, Debug)]
enum Kind {
    Plain,
    Logprobs,
    PenaltiesAndBias,
    JsonSchema,
}

fn extras(chat: &ChatModel, kind: Kind) -> Extras {
    match kind {
        Kind::Plain => Extras::default(),
        Kind::Logprobs => Extras { logprobs: Some(5), ..Extras::default() },
        Kind::PenaltiesAndBias => Extras {
            presence_penalty: 0.5,
            frequency_penalty: 0.5,
            logit_bias: (0..50).map(|i| (1000 + i * 37, -5.0)).collect(),
            ..Extras::default()
        },
        Kind::JsonSchema => {
            let schema = json!({"type": "object", "properties": {
                "name": {"type": "string", "maxLength": 40}, "age": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}}},
                "required": ["name", "age", "tags"], "additionalProperties": false});
            let vocab = chat.vocabulary.as_ref().expect("the vocabulary builds");
            Extras {
                constraint: Some(Constraint::new(vocab, &Grammar::JsonSchema(schema)).unwrap()),
                ..Extras::default()
            }
        }
    }
}

/// Runs one batch of jobs to the end: (seconds, tokens generated).
fn run(engine: &Engine, chat: &ChatModel, jobs: Vec<(Vec<u32>, usize, Extras)>) -> (f64, usize) {
    let start = Instant::now();
    let mut receivers = Vec::new();
    for (prompt, max_tokens, extras) in jobs {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let job = Job {
            prompt,
            max_tokens,
            sampler: SamplerConfig::greedy(),
            stop_tokens: chat.stop_tokens.clone(),
            stop_strings: Vec::new(),
            extras,
            events: tx,
        };
        assert!(engine.submit(job));
        receivers.push(rx);
    }
    let mut tokens = 0;
    for mut rx in receivers {
        while let Some(event) = rx.blocking_recv() {
            match event {
                Event::Done { completion_tokens, .. } => {
                    tokens += completion_tokens;
                    break;
                }
                Event::Failed(m) => panic!("{m}"),
                _ => {}
            }
        }
    }
    (start.elapsed().as_secs_f64(), tokens)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let chat = ChatModel::load("model", &args[1]).expect("model loads");
    let rounds: usize = args.get(2).map_or(3, |r| r.parse().unwrap());
    let (engine, _thread) =
        Engine::start(chat.model.clone(), chat.tokenizer.clone(), EngineConfig { max_batch: 4, context: 1024 });
    let prompts: Vec<Vec<u32>> = QUESTIONS
        .iter()
        .map(|q| chat.tokenizer.encode(&chat.template.render(&[ChatMessage::new("user", *q)], None, true).unwrap()))
        .collect();
    let kinds = [Kind::Plain, Kind::Logprobs, Kind::PenaltiesAndBias, Kind::JsonSchema];
    let mut best_decode = [f64::INFINITY; 4];
    let text = "The capital of France is Paris, and the capital of Italy is Rome. ".repeat(6);
    let scored = chat.tokenizer.encode_ordinary(&text);
    let (mut best_plain_prefill, mut best_scored_prefill) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..rounds {
        for (k, &kind) in kinds.iter().enumerate() {
            let jobs = prompts.iter().map(|p| (p.clone(), 48, extras(&chat, kind))).collect();
            let (seconds, tokens) = run(&engine, &chat, jobs);
            best_decode[k] = best_decode[k].min(seconds / tokens.max(1) as f64);
        }
        // Prefill of one prompt and one token, plain and with every position scored.
        let plain = run(&engine, &chat, vec![(scored.clone(), 1, Extras::default())]).0;
        let echo = Extras { prompt_logprobs: Some(5), ..Extras::default() };
        let with_scores = run(&engine, &chat, vec![(scored.clone(), 1, echo)]).0;
        best_plain_prefill = best_plain_prefill.min(plain);
        best_scored_prefill = best_scored_prefill.min(with_scores);
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let ratio = |k: usize| best_decode[k] / best_decode[0];
    let out = json!({
        "cpu": cpu,
        "threads": rayon::current_num_threads(),
        "rounds": rounds,
        "decode_seconds_per_token_plain": best_decode[0],
        "decode_ratio_logprobs_top5": ratio(1),
        "decode_ratio_penalties_and_bias": ratio(2),
        "decode_ratio_json_schema": ratio(3),
        "prefill_tokens": scored.len(),
        "prefill_ratio_scored_prompt": best_scored_prefill / best_plain_prefill,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
