//! Application prompt templates (`kernels::prompt`) with SmolLM2's real tokenizer.
//!
//! References: hand-written expected renderings; token counts from the tokenizer itself (tested
//! against HF `tokenizers` in `tokenize.rs`); truncation checked by its invariants (within budget,
//! head a prefix and tail a suffix of the document, special-token text never split).

use std::sync::OnceLock;

use kernels::Error;
use kernels::llm::{ChatMessage, ChatTemplate};
use kernels::prompt::{
    MiddleConfig, PromptLibrary, TurnsConfig, count_chat_tokens, count_tokens, drop_oldest_turns, truncate_middle,
};
use kernels::tokenize::Bpe;
use serde_json::json;

fn gguf() -> &'static kernels::formats::Gguf {
    static GGUF: OnceLock<kernels::formats::Gguf> = OnceLock::new();
    GGUF.get_or_init(|| {
        let path = datasets::models::file_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf").unwrap();
        kernels::formats::Gguf::open(path).unwrap()
    })
}

fn bpe() -> &'static Bpe {
    static BPE: OnceLock<Bpe> = OnceLock::new();
    BPE.get_or_init(|| Bpe::from_gguf(gguf()).unwrap())
}

fn library() -> PromptLibrary {
    PromptLibrary::from_sources([
        ("persona", "You are {{ name }}, a {{ style | default(value=\"concise\") }} assistant."),
        (
            "answer",
            "{% include \"persona\" %}\nAnswer from the documents.\n{% for d in docs %}[{{ loop.index }}] {{ d.title }}: {{ d.text }}\n{% endfor %}Question: {{ question }}",
        ),
    ])
    .unwrap()
}

#[test]
fn templates_render_with_variables_and_includes() {
    let check = |name: &str, context: serde_json::Value, expected: &str| {
        assert_eq!(library().render(name, &context).unwrap(), expected, "{name}");
    };
    check("persona", json!({"name": "Ada"}), "You are Ada, a concise assistant.");
    check("persona", json!({"name": "Ada", "style": "friendly"}), "You are Ada, a friendly assistant.");
    check(
        "answer",
        json!({"name": "Ada", "question": "Why <b>?", "docs": [{"title": "A", "text": "x & y"}, {"title": "B", "text": "東京 🌸"}]}),
        "You are Ada, a concise assistant.\nAnswer from the documents.\n[1] A: x & y\n[2] B: 東京 🌸\nQuestion: Why <b>?",
    );
    assert_eq!(library().names(), vec!["answer", "persona"]);
}

#[test]
fn bad_templates_and_contexts_are_typed_errors() {
    let err = |r: kernels::Result<String>| match r {
        Err(Error::PromptTemplate(m)) => m,
        other => panic!("expected a prompt-template error, got {other:?}"),
    };
    let m = err(library().render("persona", &json!({})));
    assert!(m.contains("name"), "{m}");
    let m = err(library().render("missing", &json!({})));
    assert!(m.contains("missing"), "{m}");
    let m = err(library().render("persona", &json!(["not an object"])));
    assert!(m.contains("object"), "{m}");
    assert!(matches!(PromptLibrary::from_sources([("x", "{% if %}")]), Err(Error::PromptTemplate(_))));
    // tera resolves includes when rendering.
    let dangling = PromptLibrary::from_sources([("x", "{% include \"nope\" %}")]).unwrap();
    let m = err(dangling.render("x", &json!({})));
    assert!(m.contains("nope"), "{m}");
    assert!(matches!(PromptLibrary::from_dir("/nonexistent/prompts"), Err(Error::PromptTemplate(_))));
}

#[test]
fn a_library_loads_a_folder_by_relative_names() {
    let dir = std::env::temp_dir().join(format!("kernels-prompt-lib-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("parts")).unwrap();
    std::fs::write(dir.join("parts/greeting.txt"), "Hello {{ who }}").unwrap();
    std::fs::write(dir.join("main.txt"), "{% include \"parts/greeting.txt\" %}, welcome.").unwrap();
    let lib = PromptLibrary::from_dir(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let lib = lib.unwrap();
    assert_eq!(lib.names(), vec!["main.txt", "parts/greeting.txt"]);
    assert_eq!(lib.render("main.txt", &json!({"who": "Grace"})).unwrap(), "Hello Grace, welcome.");
}

#[test]
fn budgets_count_special_token_text_as_one_token() {
    let bpe = bpe();
    let text = "<|im_start|>user\nHi<|im_end|>\n";
    let ids = bpe.encode(text);
    assert_eq!(count_tokens(bpe, text), ids.len());
    assert_eq!(ids.iter().filter(|&&id| id == 1 || id == 2).count(), 2, "{ids:?}");
    assert!(count_tokens(bpe, text) < bpe.encode_ordinary(text).len());
    let (rendered, tokens) = library().render_within("persona", &json!({"name": "Ada"}), bpe, 100).unwrap();
    assert_eq!(tokens, count_tokens(bpe, &rendered));
    match library().render_within("persona", &json!({"name": "Ada"}), bpe, 3) {
        Err(Error::PromptBudget { needed, available: 3, .. }) => assert_eq!(needed, tokens),
        other => panic!("{other:?}"),
    }
}

fn conversation() -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::new("system", "You answer questions about cities.")];
    for (q, a) in [
        ("Where is Zürich?", "In Switzerland, on Lake Zürich."),
        ("And Kyoto?", "In Japan (京都), in the Kansai region."),
        ("What about Porto?", "In northern Portugal, on the Douro 🍷."),
        ("And Quito?", "In Ecuador, high in the Andes."),
    ] {
        messages.push(ChatMessage::new("user", q));
        messages.push(ChatMessage::new("assistant", a));
    }
    messages.push(ChatMessage::new("user", "Which of them is the highest?"));
    messages
}

#[test]
fn dropping_oldest_turns_keeps_the_system_message_and_the_latest_turn() {
    let (bpe, template) = (bpe(), ChatTemplate::from_gguf(gguf()).unwrap());
    let messages = conversation();
    let full = count_chat_tokens(bpe, &template, &messages, true).unwrap();
    let check = |max_tokens: usize, dropped_turns: usize| {
        let fit =
            drop_oldest_turns(bpe, &template, &messages, &TurnsConfig { max_tokens, add_generation_prompt: true })
                .unwrap();
        assert_eq!(fit.dropped_turns, dropped_turns, "budget {max_tokens}");
        assert_eq!(fit.dropped_messages, 2 * dropped_turns);
        assert_eq!(fit.messages[0], messages[0]);
        assert_eq!(fit.messages[1..], messages[1 + 2 * dropped_turns..]);
        assert_eq!(fit.tokens, count_chat_tokens(bpe, &template, &fit.messages, true).unwrap());
        assert!(fit.tokens <= max_tokens);
    };
    check(full, 0);
    check(full + 100, 0);
    // Each budget one token below what keeping k turns needs drops one more turn.
    for k in 1..=4 {
        let kept: Vec<ChatMessage> = messages[..1].iter().chain(&messages[1 + 2 * (k - 1)..]).cloned().collect();
        let needs = count_chat_tokens(bpe, &template, &kept, true).unwrap();
        check(needs - 1, k);
    }
    // Less than the system message and the latest turn: a budget error with both numbers.
    let minimum: Vec<ChatMessage> = vec![messages[0].clone(), messages.last().unwrap().clone()];
    let needed = count_chat_tokens(bpe, &template, &minimum, true).unwrap();
    match drop_oldest_turns(
        bpe,
        &template,
        &messages,
        &TurnsConfig { max_tokens: needed - 1, add_generation_prompt: true },
    ) {
        Err(Error::PromptBudget { needed: n, available, .. }) => assert_eq!((n, available), (needed, needed - 1)),
        other => panic!("{other:?}"),
    }
}

/// A document with special-token text, CJK and emoji (multi-byte characters split over byte-level
/// tokens) all over, so that cuts land next to them.
fn document() -> String {
    let mut doc = String::new();
    for i in 0..40 {
        doc.push_str(&format!("Line {i}: 東京の天気は晴れ 🌸🚀 <|im_end|> ok; "));
        if i % 7 == 0 {
            doc.push_str("<|im_start|>system\n");
        }
    }
    doc
}

#[test]
fn truncating_the_middle_never_splits_special_tokens_or_characters() {
    let (bpe, doc) = (bpe(), document());
    let total = count_tokens(bpe, &doc);
    let config = |max_tokens: usize| MiddleConfig { max_tokens, ..MiddleConfig::default() };
    let fit = truncate_middle(bpe, &doc, &config(total)).unwrap();
    assert_eq!((fit.text.as_str(), fit.tokens, fit.removed_tokens), (doc.as_str(), total, 0));
    let marker = MiddleConfig::default().marker;
    let specials = ["<|im_end|>", "<|im_start|>"];
    // Every budget from just the marker up: each cut position is exercised.
    let marker_tokens = count_tokens(bpe, &marker);
    for max_tokens in marker_tokens..total {
        let fit = truncate_middle(bpe, &doc, &config(max_tokens)).unwrap();
        assert!(fit.tokens <= max_tokens, "{max_tokens}: {} tokens", fit.tokens);
        assert_eq!(fit.tokens, count_tokens(bpe, &fit.text));
        let (head, tail) = fit.text.split_once(&marker).expect("the marker is there");
        assert!(doc.starts_with(head) && doc.ends_with(tail), "{max_tokens}");
        // The cut is outside every special token's text in the document.
        let (cut_head, cut_tail) = (head.len(), doc.len() - tail.len());
        for s in specials {
            for (at, _) in doc.match_indices(s) {
                for cut in [cut_head, cut_tail] {
                    assert!(cut <= at || cut >= at + s.len(), "{max_tokens}: cut at {cut} splits {s} at {at}");
                }
            }
        }
        assert!(fit.removed_tokens > 0);
    }
}

#[test]
fn truncation_errors_are_typed() {
    let bpe = bpe();
    let marker = "\n[… a long marker that alone takes several tokens …]\n";
    let config = MiddleConfig { max_tokens: 3, marker: marker.into(), head_share: 0.5 };
    match truncate_middle(bpe, &document(), &config) {
        Err(Error::PromptBudget { needed, available: 3, .. }) => assert_eq!(needed, count_tokens(bpe, marker)),
        other => panic!("{other:?}"),
    }
    let config = MiddleConfig { head_share: 1.5, ..MiddleConfig::default() };
    assert!(matches!(truncate_middle(bpe, "x", &config), Err(Error::PromptTemplate(_))));
}

#[test]
fn dropping_whole_turns_keeps_roles_alternating_for_strict_templates() {
    // Mistral's template raises unless roles alternate user/assistant: whole turns keep it happy.
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_templates/mistral.jinja"),
    )
    .unwrap();
    let template = ChatTemplate::new(&source, "<s>", "</s>").unwrap();
    let messages: Vec<ChatMessage> = conversation()[1..].to_vec();
    let full = count_chat_tokens(bpe(), &template, &messages, false).unwrap();
    for max_tokens in (full / 4..full).step_by(7) {
        let config = TurnsConfig { max_tokens, add_generation_prompt: false };
        let fit = match drop_oldest_turns(bpe(), &template, &messages, &config) {
            Ok(fit) => fit,
            Err(Error::PromptBudget { .. }) => continue,
            Err(e) => panic!("{max_tokens}: {e}"),
        };
        assert_eq!(fit.messages[0].role, "user");
        assert!(template.render(&fit.messages, None, false).is_ok());
        assert!(fit.tokens <= max_tokens);
    }
}
