//! `kernels::train::finetune`: chat JSON Lines parsing (typed errors with the line), assistant-only
//! targets through SmolLM2's own chat template, the JSON-shape check of replies, configuration errors,
//! and a tiny run resumed from its checkpoint giving the same adapter bytes as an uninterrupted run.

use std::path::Path;

use kernels::Error;
use kernels::llm::chat::ChatMessage;
use kernels::train::autograd::IGNORE_INDEX;
use kernels::train::finetune::{
    CHECKPOINT_FILE, ChatEncoder, EvalData, FinetuneConfig, METRICS_FILE, TrainLength, finetune, parse_chat_jsonl,
    same_json_shape,
};
use kernels::train::lora::{ADAPTER_WEIGHTS_FILE, LoraTarget};

use super::qlinear::{gguf, model_path};
use crate::tmp::Tmp;

/// Parsing `text` fails at `line` with a reason containing `needle`.
fn check_bad_line(text: &str, line: usize, needle: &str) {
    match parse_chat_jsonl(text, Path::new("d.jsonl")) {
        Err(Error::FinetuneData { line: l, reason, .. }) => {
            assert_eq!(l, line, "{text:?}: {reason}");
            assert!(reason.contains(needle), "{text:?}: {reason}");
        }
        other => panic!("{text:?}: expected FinetuneData, got {other:?}"),
    }
}

const GOOD: &str = r#"{"messages":[{"role":"user","content":"2+2?"},{"role":"assistant","content":"4"}]}"#;

#[test]
fn chat_jsonl_parses_and_names_the_malformed_line() {
    let two = format!("{GOOD}\n\n{GOOD}\n");
    let convs = parse_chat_jsonl(&two, Path::new("d.jsonl")).unwrap();
    assert_eq!(convs.len(), 2);
    assert_eq!(convs[0], vec![ChatMessage::new("user", "2+2?"), ChatMessage::new("assistant", "4")]);
    check_bad_line(&format!("{GOOD}\nnot json\n"), 2, "not JSON");
    check_bad_line(&format!("{GOOD}\n{GOOD}\n{{\"msgs\":[]}}\n"), 3, "messages");
    check_bad_line(r#"{"messages":[{"role":"user"}]}"#, 1, "content");
    check_bad_line(r#"{"messages":[{"role":"user","content":"hi"}]}"#, 1, "assistant");
    let missing = kernels::train::finetune::load_chat_jsonl("/nonexistent/d.jsonl");
    assert!(matches!(missing, Err(Error::FinetuneData { line: 0, .. })), "{missing:?}");
}

#[test]
fn only_assistant_tokens_are_targets() {
    let enc = ChatEncoder::from_gguf(&gguf()).unwrap();
    let conv = vec![
        ChatMessage::new("user", "What is 2 plus 2?"),
        ChatMessage::new("assistant", "{\"answer\": \"4\"}"),
        ChatMessage::new("user", "And 3 plus 3?"),
        ChatMessage::new("assistant", "6"),
    ];
    let ex = enc.example(&conv, 512).unwrap();
    assert_eq!(ex.tokens.len(), ex.targets.len());
    // Each target is the next token; the learned tokens decode to the two replies and their end markers.
    let learned: Vec<u32> = ex
        .targets
        .iter()
        .enumerate()
        .filter(|&(_, &t)| t != IGNORE_INDEX)
        .map(|(p, &t)| {
            assert_eq!(t, i64::from(ex.tokens[p + 1]));
            ex.tokens[p + 1]
        })
        .collect();
    let text = enc.tokenizer().decode(&learned).unwrap();
    assert_eq!(text, "{\"answer\": \"4\"}<|im_end|>\n6<|im_end|>\n");
    // The rendering is the template's (SmolLM2 adds its default system prompt).
    let all = enc.tokenizer().decode(&ex.tokens).unwrap();
    assert!(all.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"), "{all}");
    // Cut short, the tail loses its targets but keeps one per token.
    let cut = enc.example(&conv, 10).unwrap();
    assert_eq!((cut.tokens.len(), cut.target_count()), (10, 0));
    let (prompt, reference) = enc.prompt_and_reference(&conv).unwrap();
    assert_eq!(reference, "6");
    assert!(enc.tokenizer().decode(&prompt).unwrap().ends_with("And 3 plus 3?<|im_end|>\n<|im_start|>assistant\n"));
}

#[test]
fn reply_shapes_are_compared_key_by_key() {
    let reference = r#"{"answer": "4", "confidence": 0.9}"#;
    for (reply, want) in [
        (r#"{"answer": "5", "confidence": 0.5}"#, true),
        (r#" {"answer":"4","confidence":1} "#, true),
        (r#"{"answer": 4, "confidence": 0.9}"#, false),
        (r#"{"confidence": 0.9, "answer": "4"}"#, false),
        (r#"{"answer": "4"}"#, false),
        ("The answer is 4.", false),
    ] {
        assert_eq!(same_json_shape(reply, reference), want, "{reply}");
    }
}

#[test]
fn bad_settings_are_typed_errors() {
    let base = FinetuneConfig::new("m.gguf", "d.jsonl", "out");
    let check = |f: &dyn Fn(&mut FinetuneConfig), field: &str| {
        let mut c = base.clone();
        f(&mut c);
        match c.validate() {
            Err(Error::FinetuneConfig { field: got, .. }) | Err(Error::LoraConfig { field: got, .. }) => {
                assert_eq!(got, field)
            }
            other => panic!("{field}: {other:?}"),
        }
    };
    check(&|c| c.lr = 0.0, "lr");
    check(&|c| c.min_lr = 1.0, "min_lr");
    check(&|c| c.examples_per_step = 0, "examples_per_step");
    check(&|c| c.clip_norm = f32::NAN, "clip_norm");
    check(&|c| c.max_seq_len = 1, "max_seq_len");
    check(&|c| c.length = TrainLength::Steps(0), "length");
    check(&|c| c.lora.rank = 0, "rank");
    assert!(base.validate().is_ok());
}

/// A tiny configuration: 3 short conversations, rank 2 on q and v, no held-out set.
fn tiny(dir: &Path, out: &str, steps: u64) -> FinetuneConfig {
    let data = dir.join("train.jsonl");
    let line = |q: &str, a: &str| {
        format!(
            r#"{{"messages":[{{"role":"system","content":"Be brief."}},{{"role":"user","content":"{q}"}},{{"role":"assistant","content":"{a}"}}]}}"#
        )
    };
    let text = [line("2+2?", "4"), line("Sky?", "blue"), line("3+3?", "6")].join("\n");
    std::fs::write(&data, text).unwrap();
    let mut c = FinetuneConfig::new(model_path(), data, dir.join(out));
    c.lora.rank = 2;
    c.lora.alpha = 4.0;
    c.lora.dropout = 0.1;
    c.lora.targets = vec![LoraTarget::Q, LoraTarget::V];
    c.lr = 1e-2;
    c.warmup_steps = 1;
    c.length = TrainLength::Steps(steps);
    c.seed = 7;
    c.eval = EvalData::None;
    c
}

#[test]
fn a_resumed_run_gives_the_same_adapter_bytes_as_an_uninterrupted_one() {
    let dir = Tmp::new("finetune-resume");
    let straight = finetune(&tiny(&dir.0, "straight", 4), |_| {}).unwrap();
    assert!(straight.finished && straight.steps == 4, "{straight:?}");
    let mut first = tiny(&dir.0, "split", 4);
    first.stop_after = Some(2);
    let half = finetune(&first, |_| {}).unwrap();
    assert!(!half.finished && half.steps == 2, "{half:?}");
    let ckpt = dir.0.join("split").join(CHECKPOINT_FILE);
    let mut second = tiny(&dir.0, "split", 4);
    second.resume_from = Some(ckpt.clone());
    let rest = finetune(&second, |_| {}).unwrap();
    assert_eq!((rest.resumed_from, rest.steps, rest.finished), (Some(2), 4, true));
    let read = |run: &str, file: &str| std::fs::read(dir.0.join(run).join(file)).unwrap();
    assert_eq!(read("straight", ADAPTER_WEIGHTS_FILE), read("split", ADAPTER_WEIGHTS_FILE), "adapter bytes differ");
    assert!(read("split", METRICS_FILE).starts_with(b"{"));
    // A checkpoint of another run's settings is refused, naming the setting.
    let mut other = tiny(&dir.0, "split", 5);
    other.resume_from = Some(ckpt);
    let refused = finetune(&other, |_| {});
    assert!(matches!(&refused, Err(Error::Checkpoint { reason, .. }) if reason.contains("total_steps")), "{refused:?}");
}
