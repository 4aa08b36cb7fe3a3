//! Teacher-forced next-token logits of `kernels::llm` on a prompt set, for `cargo xtask bench
//! llm-agreement` (the peer, llama.cpp, reads the same token ids and compares distributions).
//!
//! `llm_teacher_forced MODEL.gguf PROMPTS.json OUT_DIR GREEDY [f32 | f16-kv | dequantised]`
//!
//! `PROMPTS.json` is `[{"kind": "chat" | "text", "text": "…"}, …]`. A chat prompt is one user
//! message rendered with the model's chat template (generation prompt added) and encoded with
//! its special tokens; a text prompt is encoded as plain text. For prompt `i` this writes
//! little-endian files into `OUT_DIR`: `i.tokens` (u32 ids), `i.logits` (f32, `tokens × vocab`:
//! row `j` is the distribution after `tokens[..=j]`, all rows from one teacher-forced pass) and
//! `i.greedy` (u32, `GREEDY` tokens of greedy decoding after the prompt, one token per pass as a
//! server decodes). Prints `[{"kind", "tokens"}, …]`. With `f16-kv`, attention rounds its operands
//! to f16 as llama.cpp's f16 cache does ([`kernels::llm::KvCache::with_f16_rounding`]); with
//! `dequantised`, every matrix is dequantised at load and no activation is quantised
//! ([`kernels::llm::WeightPrecision::Dequantised`]).

use kernels::formats::Gguf;
use kernels::llm::{ChatMessage, ChatTemplate, LlamaModel, SeqStep, WeightPrecision, argmax};
use kernels::tokenize::Bpe;

fn write_le<T: Copy>(path: &std::path::Path, values: &[T], bytes: impl Fn(T) -> [u8; 4]) {
    let raw: Vec<u8> = values.iter().flat_map(|&v| bytes(v)).collect();
    std::fs::write(path, raw).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn main() -> kernels::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (model_path, prompts_path, out, greedy) = match args.as_slice() {
        [_, m, p, o, g] | [_, m, p, o, g, _] => (m, p, o, g),
        _ => panic!("usage: llm_teacher_forced MODEL.gguf PROMPTS.json OUT_DIR GREEDY [f32 | f16-kv | dequantised]"),
    };
    let variant = args.get(5).map_or("f32", String::as_str);
    assert!(["f32", "f16-kv", "dequantised"].contains(&variant), "unknown variant {variant}");
    let f16_kv = variant == "f16-kv";
    let precision = if variant == "dequantised" { WeightPrecision::Dequantised } else { WeightPrecision::AsStored };
    let greedy: usize = greedy.parse().expect("GREEDY is a number");
    let out = std::path::Path::new(out);
    std::fs::create_dir_all(out).expect("creating the output folder");
    let model = LlamaModel::load_with(model_path, precision)?;
    let gguf: &Gguf = model.gguf();
    let tokenizer = Bpe::from_gguf(gguf)?;
    let template = ChatTemplate::from_gguf(gguf)?;
    let vocab = model.config().vocab_size;
    let prompts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(prompts_path).expect("reading the prompts")).expect("JSON");
    let mut summary = Vec::new();
    for (i, p) in prompts.as_array().expect("a JSON array").iter().enumerate() {
        let (kind, text) = (p["kind"].as_str().unwrap_or("text"), p["text"].as_str().unwrap_or(""));
        let tokens = if kind == "chat" {
            tokenizer.encode(&template.render(&[ChatMessage::new("user", text)], None, true)?)
        } else {
            tokenizer.encode_ordinary(text)
        };
        let mut cache = model.new_cache(tokens.len() + greedy + 1);
        if f16_kv {
            cache = cache.with_f16_rounding();
        }
        let logits = model
            .forward_batch_positions(&mut [SeqStep { tokens: &tokens, cache: &mut cache }], &[true])?
            .pop()
            .unwrap_or_default();
        assert_eq!(logits.len(), tokens.len() * vocab, "one row of logits per prompt token");
        let mut next = argmax(&logits[logits.len() - vocab..]);
        let mut continuation = Vec::with_capacity(greedy);
        for _ in 0..greedy {
            continuation.push(next);
            next = argmax(&model.forward(&[next], &mut cache)?);
        }
        write_le(&out.join(format!("{i}.tokens")), &tokens, u32::to_le_bytes);
        write_le(&out.join(format!("{i}.logits")), &logits, f32::to_le_bytes);
        write_le(&out.join(format!("{i}.greedy")), &continuation, u32::to_le_bytes);
        eprintln!("prompt {i} ({kind}): {} tokens", tokens.len());
        summary.push(serde_json::json!({ "kind": kind, "tokens": tokens.len() }));
    }
    println!("{}", serde_json::Value::Array(summary));
    Ok(())
}
