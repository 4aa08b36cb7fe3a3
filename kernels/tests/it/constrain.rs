//! Tests of `kernels::constrain` on SmolLM2-135M-Instruct's tokenizer and model.
//!
//! References: Python `jsonschema` 4.26.0 validates every constrained output against its schema (one batch
//! call of `tests/fixtures/constrain/peer.py`); the `llguidance` 1.9.1 wheel, on SmolLM2's tokenizer built
//! by HF `tokenizers` from the GGUF, computes the masks of the same grammars after the same tokens, which must
//! equal ours bit for bit; regex and Lark outputs are checked by hand-written recognisers of their languages.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use kernels::Error;
use kernels::constrain::{
    Constraint, FunctionSpec, Grammar, TokenMask, ToolChoice, Vocabulary, check_tool_calls, parse_tool_calls,
    tool_call_grammar,
};
use kernels::formats::Gguf;
use kernels::llm::{LlamaModel, Sampler, SamplerConfig, ToolCall};
use kernels::tokenize::Bpe;
use serde_json::{Value, json};

const MODEL: &str = "smollm2-135m-instruct";
const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// `<|im_end|>`: SmolLM2's end of turn, the end of every constrained output.
const IM_END: u32 = 2;

// ---------------------------------------------------------------------------------------------------------------
// The model, the vocabulary and the Python peer.

fn gguf_path() -> PathBuf {
    datasets::models::file_path(MODEL, FILE).unwrap_or_else(|e| panic!("{e}"))
}

fn bpe() -> &'static Bpe {
    static BPE: OnceLock<Bpe> = OnceLock::new();
    BPE.get_or_init(|| Bpe::from_gguf(&Gguf::open(gguf_path()).expect("open the GGUF")).expect("SmolLM2's tokenizer"))
}

fn vocab() -> &'static Arc<Vocabulary> {
    static VOCAB: OnceLock<Arc<Vocabulary>> = OnceLock::new();
    VOCAB.get_or_init(|| Vocabulary::from_bpe(bpe(), IM_END).expect("the vocabulary builds"))
}

fn model() -> &'static LlamaModel {
    static M: OnceLock<LlamaModel> = OnceLock::new();
    M.get_or_init(|| LlamaModel::load(gguf_path()).expect("SmolLM2 loads"))
}

/// Runs one request through `peer.py` and returns its JSON answer.
fn peer(request: Value) -> Value {
    static N: AtomicUsize = AtomicUsize::new(0);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/constrain/peer.py");
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir();
    let req = dir.join(format!("kernels-constrain-{}-{n}-request.json", std::process::id()));
    let resp = dir.join(format!("kernels-constrain-{}-{n}-response.json", std::process::id()));
    std::fs::write(&req, request.to_string()).expect("write the request");
    let python = kernels::cache::venv_python();
    let out = Command::new(&python)
        .arg(&script)
        .arg(&req)
        .arg(&resp)
        .env("RAYON_NUM_THREADS", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .output()
        .unwrap_or_else(|e| panic!("running {} failed ({e}): run `cargo xtask peers`", python.display()));
    assert!(
        out.status.success(),
        "peer.py {} failed (run `cargo xtask peers`?):\n{}",
        request["op"],
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = serde_json::from_slice(&std::fs::read(&resp).expect("read the response")).expect("JSON response");
    let _ = std::fs::remove_file(&req);
    let _ = std::fs::remove_file(&resp);
    answer
}

/// Validates each `(schema, text)` with Python `jsonschema`; `Err` carries the validator's message.
fn validate(cases: &[(Value, String)]) -> Vec<Result<(), String>> {
    let cases: Vec<Value> = cases.iter().map(|(s, t)| json!({"schema": s, "text": t})).collect();
    let answer = peer(json!({"op": "validate", "cases": cases}));
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| if r["ok"] == json!(true) { Ok(()) } else { Err(r["error"].to_string()) })
        .collect()
}

/// SmolLM2's chat format (ChatML) written out: a system turn, a user turn, the opening of the assistant's.
fn chat_prompt(system: &str, user: &str) -> Vec<u32> {
    let text =
        format!("<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n");
    bpe().encode(&text)
}

/// What a constrained decode produced.
struct Decoded {
    tokens: Vec<u32>,
    text: String,
    /// The grammar finished or the end token came (not cut by the token budget).
    complete: bool,
}

/// Decodes after `prompt` under `grammar`, greedily (`seed` `None`) or sampling at temperature 0.8.
fn decode(grammar: &Grammar, prompt: &[u32], seed: Option<u64>, max_tokens: usize) -> Decoded {
    let m = model();
    let mut sampler = Sampler::new(match seed {
        None => SamplerConfig::greedy(),
        Some(seed) => SamplerConfig { temperature: 0.8, top_k: 0, top_p: 1.0, seed },
    });
    let mut constraint = Constraint::new(vocab(), grammar).expect("the grammar compiles");
    let mut cache = m.new_cache(prompt.len() + max_tokens + 1);
    let mut logits = m.forward(prompt, &mut cache).expect("prompt");
    let mut tokens = Vec::new();
    let mut complete = false;
    while tokens.len() < max_tokens {
        constraint.apply(&mut logits).expect("mask");
        let t = sampler.sample(&logits);
        constraint.commit(t).expect("the sampled token is allowed");
        if t == IM_END {
            complete = true;
            break;
        }
        tokens.push(t);
        if constraint.is_finished() {
            complete = true;
            break;
        }
        logits = m.forward(&[t], &mut cache).expect("step");
    }
    let bytes = bpe().decode_bytes(&tokens).expect("ids");
    let text = String::from_utf8(bytes).expect("constrained output is UTF-8");
    Decoded { tokens, text, complete }
}

// ---------------------------------------------------------------------------------------------------------------
// The vocabulary and the mask, without the model.

fn constraint(grammar: Grammar) -> Constraint {
    Constraint::new(vocab(), &grammar).unwrap_or_else(|e| panic!("{grammar:?}: {e}"))
}

#[test]
fn the_vocabulary_is_smollm2s_and_control_tokens_are_never_allowed_in_json() {
    let v = vocab();
    assert_eq!((v.len(), v.eos()), (49_152, IM_END));
    let mut c = constraint(Grammar::JsonObject);
    let mask = c.mask().unwrap();
    assert_eq!(mask.len(), 49_152);
    assert!(mask.count() > 0);
    for id in mask.allowed() {
        assert!(!bpe().is_special(id), "control token {id} allowed");
        assert!(bpe().token_bytes(id).unwrap().starts_with(b"{"), "{:?}", bpe().token(id));
    }
    // Inside a string of any object, still no control token (their text spelled out is just text).
    for t in bpe().encode("{\"note\": \"") {
        c.commit(t).unwrap();
    }
    let mask = c.mask().unwrap();
    assert!(mask.count() > 40_000, "{}", mask.count());
    for id in 0..49_152 {
        if bpe().is_special(id) {
            assert!(!mask.is_allowed(id), "control token {id} allowed inside a string");
        }
    }
}

#[test]
fn the_end_token_is_allowed_exactly_when_the_grammar_accepts() {
    let mut c = constraint(Grammar::Regex("[a-z]+".into()));
    assert!(!c.mask().unwrap().is_allowed(IM_END));
    assert!(matches!(c.commit(IM_END), Err(Error::Grammar(_))));
    c.commit_all(&bpe().encode("abc")).unwrap();
    assert!(c.mask().unwrap().is_allowed(IM_END));
    assert!(c.is_accepting() && !c.is_finished());
    c.commit(IM_END).unwrap();
    assert!(c.is_finished());
    let after = c.mask().unwrap();
    assert_eq!(after.allowed(), vec![IM_END]);
    assert!(matches!(c.commit(bpe().encode("d")[0]), Err(Error::Grammar(_))));
}

#[test]
fn a_closed_object_finishes_the_output() {
    let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                        "additionalProperties": false});
    let mut c = constraint(Grammar::JsonSchema(schema));
    c.commit_all(&bpe().encode("{\"ok\": true}")).unwrap();
    assert!(c.is_finished());
    assert_eq!(c.mask().unwrap().allowed(), vec![IM_END]);
}

/// Commits `text`'s tokens one by one; `Err(i)` when the `i`-th is refused.
fn commit_text(c: &mut Constraint, text: &str) -> Result<(), usize> {
    for (i, t) in bpe().encode(text).into_iter().enumerate() {
        if c.commit(t).is_err() {
            return Err(i);
        }
    }
    Ok(())
}

#[test]
fn json_is_written_with_fixed_separators_and_declared_key_order() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
                        "required": ["a", "b"], "additionalProperties": false});
    let check = |text: &str, ok: bool| {
        let mut c = constraint(Grammar::JsonSchema(schema.clone()));
        let r = commit_text(&mut c, text);
        assert_eq!(r.is_ok() && c.is_finished(), ok, "{text}: {r:?}");
    };
    check(r#"{"a": 1, "b": "x"}"#, true);
    check(r#"{"a":1,"b":"x"}"#, false);
    check("{\n  \"a\": 1, \"b\": \"x\"}", false);
    check(r#"{"b": "x", "a": 1}"#, false);
    check(r#"{"a": 1}"#, false);
    check(r#"{"a": 1, "b": "x", "c": 2}"#, false);
}

#[test]
fn the_mask_writes_minus_infinity_on_disallowed_logits_and_padding() {
    let mut c = constraint(Grammar::Regex("(yes|no)".into()));
    let mask = c.mask().unwrap();
    let mut logits = vec![1.0f32; 49_152 + 40];
    c.apply(&mut logits).unwrap();
    for (id, l) in logits.iter().enumerate() {
        assert_eq!(l.is_finite(), mask.is_allowed(id as u32), "{id}");
    }
    assert!(logits[49_152..].iter().all(|l| *l == f32::NEG_INFINITY));
    let allowed: Vec<String> = mask.allowed().iter().map(|&t| bpe().decode(&[t]).unwrap()).collect();
    for a in &allowed {
        assert!("yes".starts_with(a.as_str()) || "no".starts_with(a.as_str()), "{a:?}");
    }
    assert_eq!(TokenMask::from_words(mask.words().to_vec(), 49_152).unwrap(), mask);
    assert!(matches!(TokenMask::from_words(vec![0; 3], 49_152), Err(Error::InvalidParameter(_))));
}

#[test]
fn a_mask_can_be_recomputed_after_a_forced_prefix() {
    // The c4w2 benchmark builds a constraint, forces a prefix and times `mask` repeatedly: every call must
    // give the same answer and leave the state alone.
    let schema = json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                        "tags": {"type": "array", "items": {"enum": ["x", "y"]}}}, "required": ["name", "tags"]});
    let mut c = constraint(Grammar::JsonSchema(schema));
    c.commit_all(&bpe().encode("{\"name\": \"Ada Love")).unwrap();
    let first = c.mask().unwrap();
    for _ in 0..5 {
        assert_eq!(c.mask().unwrap(), first);
    }
    let mut copy = c.clone();
    commit_text(&mut copy, "lace\", \"tags\": [\"x\"]}").unwrap();
    assert!(copy.is_finished() && !c.is_finished());
    assert_eq!(c.mask().unwrap(), first);
}

// ---------------------------------------------------------------------------------------------------------------
// Refusals: typed errors, nothing silently ignored.

fn check_unsupported(schema: Value, keyword: &str) {
    let got = Constraint::new(vocab(), &Grammar::JsonSchema(schema.clone()));
    match got {
        Err(Error::UnsupportedSchema { keyword: k, reason }) => {
            assert_eq!(k, keyword, "{schema}: {reason}");
        }
        other => panic!("{schema}: expected UnsupportedSchema `{keyword}`, got {other:?}"),
    }
}

#[test]
fn unsupported_schema_keywords_are_refused_by_name() {
    let s = |k: &str, v: Value| json!({"type": "object", "properties": {"a": {"type": "string", k: v}}});
    check_unsupported(json!({"not": {"type": "string"}}), "not");
    check_unsupported(
        json!({"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}, "else": {}}),
        "if",
    );
    check_unsupported(json!({"$dynamicRef": "#node"}), "$dynamicRef");
    check_unsupported(json!({"type": "array", "uniqueItems": true}), "uniqueItems");
    check_unsupported(json!({"type": "array", "contains": {"const": 1}}), "contains");
    check_unsupported(json!({"type": "object", "propertyNames": {"maxLength": 3}}), "propertyNames");
    check_unsupported(json!({"type": "object", "dependentRequired": {"a": ["b"]}}), "dependentRequired");
    check_unsupported(json!({"type": "object", "unevaluatedProperties": false}), "unevaluatedProperties");
    // Typos and made-up words, which llguidance alone would take for annotations.
    check_unsupported(s("maxLenght", json!(3)), "maxLenght");
    check_unsupported(json!({"type": "object", "requried": ["a"]}), "requried");
    check_unsupported(json!({"anyOf": [{"type": "string"}, {"type": "integer", "minimun": 3}]}), "minimun");
    check_unsupported(json!({"$defs": {"p": {"type": "string", "x-color": "red"}}, "$ref": "#/$defs/p"}), "x-color");
    // Inside a Lark grammar's `%json`, too.
    let lark = "start: \"id: \" %json {\"type\": \"string\", \"maxLenght\": 3}\n";
    match Constraint::new(vocab(), &Grammar::Lark(lark.into())) {
        Err(Error::UnsupportedSchema { keyword, .. }) => assert_eq!(keyword, "maxLenght"),
        other => panic!("{other:?}"),
    }
    // A format no validator table of llguidance knows.
    check_unsupported(s("format", json!("zip-code")), "format");
}

#[test]
fn supported_keywords_compile_including_pattern_properties_and_refs() {
    let ok = [
        json!({"type": "object", "patternProperties": {"^x_": {"type": "integer"}}, "additionalProperties": false}),
        json!({"$defs": {"n": {"type": "integer", "minimum": 0}}, "type": "array", "items": {"$ref": "#/$defs/n"}}),
        json!({"title": "T", "description": "d", "examples": [1], "default": 1, "type": "integer", "deprecated": false}),
        json!({"type": "string", "format": "date"}),
        json!({"anyOf": [{"type": "null"}, {"type": "string", "pattern": "^[a-z]+$"}]}),
        json!(true),
    ];
    for schema in ok {
        Constraint::new(vocab(), &Grammar::JsonSchema(schema.clone())).unwrap_or_else(|e| panic!("{schema}: {e}"));
    }
}

#[test]
fn malformed_grammars_are_grammar_errors() {
    let bad = [
        Grammar::Regex("(ab".into()),
        Grammar::Regex("[z-a]".into()),
        Grammar::Lark("start: (\"a\"".into()),
        Grammar::Lark("start: undefined_rule".into()),
        Grammar::JsonSchema(json!(5)),
        Grammar::JsonSchema(json!({"type": "strnig"})),
        Grammar::JsonSchema(json!({"type": "object", "properties": []})),
        Grammar::JsonSchema(json!({"$ref": "#/$defs/missing"})),
        Grammar::JsonSchema(json!({"type": "integer", "minimum": 5, "maximum": 1})),
    ];
    for g in bad {
        match Constraint::new(vocab(), &g) {
            Err(Error::Grammar(_)) => {}
            other => panic!("{g:?}: expected Error::Grammar, got {other:?}"),
        }
    }
}

#[test]
fn a_token_the_grammar_does_not_allow_is_refused() {
    let mut c = constraint(Grammar::JsonObject);
    let letter = bpe().encode("x")[0];
    assert!(matches!(c.commit(letter), Err(Error::Grammar(_))));
    // The refusal leaves the state as it was.
    c.commit_all(&bpe().encode("{}")).unwrap();
    assert!(c.is_finished());
}

#[test]
fn a_vocabulary_without_its_end_token_is_refused() {
    assert!(matches!(Vocabulary::from_bpe(bpe(), 49_152), Err(Error::Grammar(_))));
}

// ---------------------------------------------------------------------------------------------------------------
// Schema coverage on the real model: every output valid, by Python `jsonschema`.

const SYSTEM: &str = "You are a helpful assistant. Answer with JSON only.";

/// `(what it covers, schema, user prompt)`.
fn coverage_cases() -> Vec<(&'static str, Value, &'static str)> {
    let name = json!({"type": "string", "minLength": 1, "maxLength": 30});
    vec![
        (
            "required and optional properties",
            json!({"type": "object", "properties": {"name": name, "age": {"type": "integer", "minimum": 0, "maximum": 130},
                   "email": {"type": "string", "maxLength": 40}}, "required": ["name", "age"], "additionalProperties": false}),
            "Extract the person: Maria Lopez is 34 years old.",
        ),
        (
            "array with min and max items",
            json!({"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 15}, "minItems": 2, "maxItems": 4}),
            "List three fruits.",
        ),
        (
            "enum",
            json!({"type": "object", "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]}},
                   "required": ["sentiment"], "additionalProperties": false}),
            "Classify the sentiment: I loved this film, it was wonderful.",
        ),
        (
            "const",
            json!({"type": "object", "properties": {"version": {"const": "1.0"}, "valid": {"type": "boolean"}},
                   "required": ["version", "valid"], "additionalProperties": false}),
            "Is 7 a prime number? Answer in the given format.",
        ),
        (
            "string lengths and patterns",
            json!({"type": "object", "properties": {
                "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"},
                "nickname": {"type": "string", "minLength": 3, "maxLength": 8}},
                "required": ["code", "nickname"], "additionalProperties": false}),
            "Make up a product code like ABC-123 and a short nickname for it.",
        ),
        (
            "integer and number bounds",
            json!({"type": "object", "properties": {
                "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                "price": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
                "discount": {"type": "number", "minimum": 0, "maximum": 1}},
                "required": ["rating", "price", "discount"], "additionalProperties": false}),
            "Review: a good toaster for 25 dollars, 10 percent off. Give rating, price and discount.",
        ),
        (
            "nested objects",
            json!({"type": "object", "properties": {"user": {"type": "object", "properties": {
                "name": name, "address": {"type": "object", "properties": {
                    "city": {"type": "string", "maxLength": 20}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                    "required": ["city", "zip"], "additionalProperties": false}},
                "required": ["name", "address"], "additionalProperties": false}},
                "required": ["user"], "additionalProperties": false}),
            "John Smith lives in Boston, zip code 02115. Extract the user.",
        ),
        (
            "anyOf",
            json!({"type": "object", "properties": {"answer": {"anyOf": [
                {"type": "integer", "minimum": 0, "maximum": 100}, {"type": "null"}]},
                "unit": {"anyOf": [{"enum": ["kg", "g"]}, {"type": "string", "maxLength": 5}]}},
                "required": ["answer", "unit"], "additionalProperties": false}),
            "How heavy is a cat in kilograms?",
        ),
        (
            "array of objects",
            json!({"type": "array", "maxItems": 3, "minItems": 1, "items": {"type": "object", "properties": {
                "task": {"type": "string", "maxLength": 25}, "done": {"type": "boolean"}},
                "required": ["task", "done"], "additionalProperties": false}}),
            "Make a to-do list with two tasks: buy milk (done) and call mom (not done).",
        ),
        (
            "Unicode in strings",
            json!({"type": "object", "properties": {"french": {"type": "string", "minLength": 1, "maxLength": 30},
                   "japanese": {"type": "string", "minLength": 1, "maxLength": 12}},
                   "required": ["french", "japanese"], "additionalProperties": false}),
            "Translate 'coffee with milk' into French (café au lait) and Japanese (カフェオレ).",
        ),
        (
            "refs and definitions",
            json!({"$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer", "minimum": -10, "maximum": 10},
                   "y": {"type": "integer", "minimum": -10, "maximum": 10}}, "required": ["x", "y"], "additionalProperties": false}},
                   "type": "object", "properties": {"from": {"$ref": "#/$defs/point"}, "to": {"$ref": "#/$defs/point"}},
                   "required": ["from", "to"], "additionalProperties": false}),
            "A line goes from (1, 2) to (3, 4).",
        ),
    ]
}

#[test]
fn every_constrained_output_is_valid_greedy_and_sampled() {
    let mut checked = Vec::new();
    let mut labels = Vec::new();
    for (what, schema, user) in coverage_cases() {
        let prompt = chat_prompt(SYSTEM, user);
        for seed in [None, Some(1), Some(2), Some(3)] {
            let out = decode(&Grammar::JsonSchema(schema.clone()), &prompt, seed, 160);
            assert!(out.complete, "{what} (seed {seed:?}) was cut at {} tokens: {}", out.tokens.len(), out.text);
            labels.push(format!("{what} (seed {seed:?}): {}", out.text));
            checked.push((schema.clone(), out.text));
        }
    }
    // JSON object mode: any object (validated as {"type": "object"}). Greedy only: nothing bounds a free
    // object's keys, and sampled at 0.8 this model can write one key for hundreds of tokens.
    let prompt = chat_prompt(SYSTEM, "Describe a cat with a few fields.");
    let out = decode(&Grammar::JsonObject, &prompt, None, 200);
    assert!(out.complete, "JSON object mode was cut: {}", out.text);
    labels.push(format!("JSON object mode (seed None): {}", out.text));
    checked.push((json!({"type": "object"}), out.text));
    let results = validate(&checked);
    let valid = results.iter().filter(|r| r.is_ok()).count();
    for (label, r) in labels.iter().zip(&results) {
        eprintln!("{} {label}", if r.is_ok() { "valid  " } else { "INVALID" });
    }
    eprintln!("schema-valid: {valid}/{}", results.len());
    for (label, r) in labels.iter().zip(&results) {
        assert!(r.is_ok(), "{label}: {r:?}");
    }
    // The Unicode case really wrote non-ASCII characters.
    let unicode = labels.iter().find(|l| l.starts_with("Unicode in strings (seed None)")).unwrap();
    assert!(!unicode.is_ascii(), "{unicode}");
}

// ---------------------------------------------------------------------------------------------------------------
// Tool calls.

fn tools() -> Vec<FunctionSpec> {
    vec![
        FunctionSpec {
            name: "get_weather".into(),
            description: Some("Current weather in a city.".into()),
            parameters: json!({"type": "object", "properties": {
                "city": {"type": "string", "minLength": 1, "maxLength": 30},
                "unit": {"enum": ["celsius", "fahrenheit"]}},
                "required": ["city", "unit"], "additionalProperties": false}),
        },
        FunctionSpec {
            name: "add".into(),
            description: Some("Adds two integers.".into()),
            parameters: json!({"type": "object", "properties": {
                "a": {"type": "integer", "minimum": -1000000, "maximum": 1000000},
                "b": {"type": "integer", "minimum": -1000000, "maximum": 1000000}},
                "required": ["a", "b"], "additionalProperties": false}),
        },
        FunctionSpec {
            name: "search".into(),
            description: Some("Searches the web.".into()),
            parameters: json!({"type": "object", "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 60}},
                "required": ["query"], "additionalProperties": false}),
        },
    ]
}

fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
}

#[test]
fn tool_call_blocks_parse_into_calls_and_text() {
    let check = |text: &str, first: usize, want: (&str, Vec<ToolCall>)| {
        let (content, calls) = parse_tool_calls(text, first).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!((content.as_str(), calls), want, "{text:?}");
    };
    check("Paris is sunny.", 0, ("Paris is sunny.", vec![]));
    check(
        "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>",
        0,
        ("", vec![call("call_0", "add", r#"{"a":1,"b":2}"#)]),
    );
    check(
        "Let me look.\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"café ☕\"}}\n</tool_call>\n\
         <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"celsius\", \"city\": \"Köln\"}}\n</tool_call>",
        7,
        (
            "Let me look.",
            vec![
                call("call_7", "search", r#"{"query":"café ☕"}"#),
                call("call_8", "get_weather", r#"{"unit":"celsius","city":"Köln"}"#),
            ],
        ),
    );
}

#[test]
fn malformed_tool_call_blocks_are_grammar_errors() {
    let bad = [
        "<tool_call>\n{\"name\": \"add\", \"arguments\": {}}",
        "<tool_call>{\"name\": \"add\", \"arguments\": {}</tool_call>",
        "<tool_call>[1, 2]</tool_call>",
        "<tool_call>{\"arguments\": {}}</tool_call>",
        "<tool_call>{\"name\": \"\", \"arguments\": {}}</tool_call>",
        "<tool_call>{\"name\": 3, \"arguments\": {}}</tool_call>",
        "<tool_call>{\"name\": \"add\"}</tool_call>",
        "<tool_call>{\"name\": \"add\", \"arguments\": \"{}\"}</tool_call>",
        "<tool_call>{\"name\": \"add\", \"arguments\": {}, \"id\": 1}</tool_call>",
        "<tool_call><tool_call>{\"name\": \"add\", \"arguments\": {}}</tool_call>",
        "text </tool_call>",
    ];
    for text in bad {
        assert!(matches!(parse_tool_calls(text, 0), Err(Error::Grammar(_))), "{text:?}");
    }
}

#[test]
fn calls_of_functions_not_offered_are_refused() {
    let t = tools();
    check_tool_calls(&[call("call_0", "add", r#"{"a":1,"b":2}"#)], &t).unwrap();
    assert!(matches!(check_tool_calls(&[call("call_0", "rm_rf", "{}")], &t), Err(Error::Grammar(_))));
    assert!(matches!(check_tool_calls(&[call("call_0", "add", "[1]")], &t), Err(Error::Grammar(_))));
    // Under the grammar a name outside the tools cannot even be spelled.
    let g = tool_call_grammar(&t, &ToolChoice::Required).unwrap().unwrap();
    let mut c = Constraint::new(vocab(), &g).unwrap();
    assert!(commit_text(&mut c, "<tool_call>\n{\"name\": \"rm_rf\"").is_err());
    let mut c = Constraint::new(vocab(), &g).unwrap();
    commit_text(&mut c, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>").unwrap();
    assert!(c.is_accepting());
}

#[test]
fn tool_choice_shapes_the_grammar() {
    let t = tools();
    assert_eq!(tool_call_grammar(&t, &ToolChoice::None).unwrap(), None);
    assert_eq!(tool_call_grammar(&[], &ToolChoice::Auto).unwrap(), None);
    assert!(matches!(tool_call_grammar(&[], &ToolChoice::Required), Err(Error::Grammar(_))));
    assert!(matches!(tool_call_grammar(&t, &ToolChoice::Function("nope".into())), Err(Error::Grammar(_))));
    let mut twice = t.clone();
    twice.push(t[0].clone());
    assert!(matches!(tool_call_grammar(&twice, &ToolChoice::Auto), Err(Error::Grammar(_))));
    let mut unsupported = t.clone();
    unsupported[1].parameters["properties"]["a"]["not"] = json!({"const": 0});
    match tool_call_grammar(&unsupported, &ToolChoice::Required) {
        Err(Error::UnsupportedSchema { keyword, reason }) => {
            assert_eq!(keyword, "not");
            assert!(reason.contains("`add`"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let add = "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>";
    let weather = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"unit\": \"celsius\"}}\n</tool_call>";
    let accepts = |choice: &ToolChoice, text: &str| {
        let g = tool_call_grammar(&t, choice).unwrap().unwrap();
        let mut c = Constraint::new(vocab(), &g).unwrap();
        commit_text(&mut c, text).is_ok() && c.is_accepting()
    };
    let two = format!("{add}\n{weather}");
    for (choice, text, ok) in [
        (ToolChoice::Auto, "It is sunny in Oslo.", true),
        (ToolChoice::Auto, add, true),
        (ToolChoice::Auto, two.as_str(), true),
        (ToolChoice::Required, "It is sunny in Oslo.", false),
        (ToolChoice::Required, two.as_str(), true),
        (ToolChoice::Function("add".into()), add, true),
        (ToolChoice::Function("add".into()), weather, false),
        (ToolChoice::Function("add".into()), two.as_str(), false),
        // Arguments follow the function's schema.
        (
            ToolChoice::Required,
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"unit\": \"kelvin\"}}\n</tool_call>",
            false,
        ),
    ] {
        assert_eq!(accepts(&choice, text), ok, "{choice:?} {text:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Regex and Lark on the real model, checked by hand-written recognisers.

const DATE_RX: &str = r"[0-9]{4}-[0-9]{2}-[0-9]{2}";
const ANSWER_LARK: &str = "start: \"Answer: \" answer \".\"\nanswer: NUMBER | \"unknown\"\nNUMBER: /[0-9]{1,3}/\n";

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10 && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
}

fn is_answer(s: &str) -> bool {
    let Some(mid) = s.strip_prefix("Answer: ").and_then(|r| r.strip_suffix('.')) else { return false };
    mid == "unknown" || ((1..=3).contains(&mid.len()) && mid.bytes().all(|c| c.is_ascii_digit()))
}

#[test]
fn regex_and_lark_outputs_are_in_their_languages() {
    let date =
        chat_prompt("You are a helpful assistant.", "When did the Second World War end? Give the date as YYYY-MM-DD.");
    let answer = chat_prompt("You are a helpful assistant.", "How many legs does a spider have?");
    for seed in [None, Some(1), Some(2)] {
        let out = decode(&Grammar::Regex(DATE_RX.into()), &date, seed, 30);
        assert!(out.complete && is_date(&out.text), "{seed:?}: {:?}", out.text);
        let out = decode(&Grammar::Lark(ANSWER_LARK.into()), &answer, seed, 30);
        assert!(out.complete && is_answer(&out.text), "{seed:?}: {:?}", out.text);
        eprintln!("{seed:?}: {}", out.text);
    }
    assert!(!is_date("1945-5-08") && !is_answer("Answer: 1234.") && is_answer("Answer: unknown."));
}

// ---------------------------------------------------------------------------------------------------------------
// Masks equal the llguidance wheel's, bit for bit.

/// SplitMix64: the seeded choice of the random walks.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded walk of up to `steps` allowed tokens (never the end token): the masks before each and after the last.
/// Half the picks are uniform over the allowed tokens, half take the longest allowed token, so walks both wander
/// through odd tokenisations and get deep into the structure.
fn random_walk(grammar: &Grammar, seed: u64, steps: usize) -> (Vec<u32>, Vec<TokenMask>) {
    let mut c = Constraint::new(vocab(), grammar).unwrap_or_else(|e| panic!("{grammar:?}: {e}"));
    let mut state = seed;
    let (mut tokens, mut masks) = (Vec::new(), Vec::new());
    loop {
        let mask = c.mask().unwrap();
        let allowed: Vec<u32> = mask.allowed().into_iter().filter(|&t| t != IM_END).collect();
        masks.push(mask);
        if tokens.len() == steps || allowed.is_empty() || c.is_finished() {
            return (tokens, masks);
        }
        let r = splitmix(&mut state);
        let t = if r.is_multiple_of(2) {
            allowed[(r / 2 % allowed.len() as u64) as usize]
        } else {
            *allowed.iter().max_by_key(|&&t| (bpe().token_bytes(t).unwrap().len(), t)).unwrap()
        };
        c.commit(t).unwrap();
        tokens.push(t);
    }
}

#[test]
fn masks_equal_the_llguidance_wheel_bit_for_bit() {
    let mut grammars: Vec<Grammar> = coverage_cases().into_iter().map(|(_, s, _)| Grammar::JsonSchema(s)).collect();
    grammars.push(Grammar::JsonObject);
    grammars.push(Grammar::Regex(DATE_RX.into()));
    grammars.push(Grammar::Lark(ANSWER_LARK.into()));
    for choice in [ToolChoice::Auto, ToolChoice::Required, ToolChoice::Function("get_weather".into())] {
        grammars.push(tool_call_grammar(&tools(), &choice).unwrap().unwrap());
    }
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for (i, g) in grammars.iter().enumerate() {
        for seed in [1, 2] {
            let (tokens, masks) = random_walk(g, seed * 1000 + i as u64, 24);
            cases.push(json!({"grammar": Vocabulary::grammar_json(g).unwrap(), "tokens": tokens}));
            ours.push(masks);
        }
    }
    let answer = peer(json!({"op": "masks", "gguf": gguf_path(), "eos": IM_END, "cases": cases}));
    assert_eq!(answer["vocab_size"], json!(49_152));
    let theirs = answer["masks"].as_array().unwrap();
    let (mut total, mut equal) = (0, 0);
    let mut first_difference = None;
    for (c, (our_case, their_case)) in ours.iter().zip(theirs).enumerate() {
        let their_case = their_case.as_array().unwrap();
        assert_eq!(our_case.len(), their_case.len(), "case {c}: number of steps");
        for (step, (ours, theirs)) in our_case.iter().zip(their_case).enumerate() {
            let theirs: Vec<u32> = theirs.as_array().unwrap().iter().map(|w| w.as_u64().unwrap() as u32).collect();
            total += 1;
            if ours.words() == theirs.as_slice() {
                equal += 1;
            } else if first_difference.is_none() {
                let theirs = TokenMask::from_words(theirs, 49_152).unwrap();
                first_difference = Some(format!(
                    "case {c} ({}) step {step}: ours {} tokens, theirs {}; only ours: {:?}; only theirs: {:?}",
                    cases[c]["grammar"],
                    ours.count(),
                    theirs.count(),
                    ours.allowed().into_iter().filter(|&t| !theirs.is_allowed(t)).take(8).collect::<Vec<_>>(),
                    theirs.allowed().into_iter().filter(|&t| !ours.is_allowed(t)).take(8).collect::<Vec<_>>(),
                ));
            }
        }
    }
    eprintln!("masks equal: {equal}/{total}");
    assert_eq!(equal, total, "{}", first_difference.unwrap_or_default());
    assert!(total >= 300, "{total}");
}

// ---------------------------------------------------------------------------------------------------------------
// Tool calls on the real model.

/// A Hermes-style system prompt listing the tools (what Qwen 2.5's template writes for `tools`).
fn tools_system(tools: &[FunctionSpec]) -> String {
    let list: Vec<Value> = tools
        .iter()
        .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
        .collect();
    format!(
        "You are a function calling AI model. You may call one or more functions to assist with the user query. \
         Here are the available tools: <tools>{}</tools>\nFor each function call return a JSON object with the \
         function name and arguments within <tool_call></tool_call> tags:\n<tool_call>\n\
         {{\"name\": <function-name>, \"arguments\": <args-json-object>}}\n</tool_call>",
        Value::Array(list)
    )
}

#[test]
fn tool_calls_the_model_writes_under_the_grammar_parse_and_follow_their_schemas() {
    let t = tools();
    let system = tools_system(&t);
    let cases = [
        (ToolChoice::Required, "What is the weather in Paris, in celsius?"),
        (ToolChoice::Function("add".into()), "What is 12 plus 30?"),
        (ToolChoice::Function("search".into()), "Find recipes for crêpes."),
        (ToolChoice::Auto, "Search the web for the Rust borrow checker."),
        (ToolChoice::Auto, "Say hello."),
    ];
    let mut to_validate = Vec::new();
    let mut n_calls = 0;
    for (choice, user) in cases {
        let grammar = tool_call_grammar(&t, &choice).unwrap().unwrap();
        for seed in [None, Some(7)] {
            let budget = if choice == ToolChoice::Auto { 60 } else { 160 };
            let out = decode(&grammar, &chat_prompt(&system, user), seed, budget);
            // A free-text answer under `auto` may run to the budget (OpenAI's finish_reason "length"); calls may not.
            let text_answer = choice == ToolChoice::Auto && !out.text.starts_with('<');
            assert!(out.complete || text_answer, "{choice:?} {user:?} was cut: {}", out.text);
            let (content, calls) = parse_tool_calls(&out.text, n_calls).unwrap_or_else(|e| panic!("{}: {e}", out.text));
            eprintln!("{choice:?} {user:?} (seed {seed:?}): {content:?} {calls:?}");
            check_tool_calls(&calls, &t).unwrap();
            match &choice {
                ToolChoice::Required => assert!(!calls.is_empty() && content.is_empty(), "{}", out.text),
                ToolChoice::Function(name) => {
                    assert_eq!(calls.len(), 1, "{}", out.text);
                    assert_eq!(&calls[0].name, name);
                }
                _ => assert!(calls.is_empty() != content.is_empty(), "{}", out.text),
            }
            for (i, c) in calls.iter().enumerate() {
                assert_eq!(c.id, format!("call_{}", n_calls + i));
                let params = &t.iter().find(|f| f.name == c.name).unwrap().parameters;
                to_validate.push((params.clone(), c.arguments.clone()));
            }
            n_calls += calls.len();
        }
    }
    let results = validate(&to_validate);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(n_calls >= 6, "{n_calls}");
}

#[test]
fn the_vocabulary_is_shared_across_threads_and_constraints_move_between_them() {
    fn shared<T: Send + Sync>(_: &T) {}
    fn movable<T: Send>(_: &T) {}
    shared(vocab());
    let c = constraint(Grammar::JsonObject);
    movable(&c);
    let handle = std::thread::spawn(move || {
        let mut c = c;
        c.commit_all(&bpe().encode("{}")).map(|()| c.is_finished())
    });
    assert!(handle.join().unwrap().unwrap());
}
