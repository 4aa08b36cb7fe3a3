//! Visible tests of week c4w2 (the grader runs them too): one or two quick checks per task.

use std::sync::OnceLock;
use std::time::Duration;

use c4w2_prompts::breaker::{BreakerConfig, CircuitBreaker, State};
use c4w2_prompts::budget::{Fit, Outcome, Part, Source, pack};
use c4w2_prompts::mask::TokenTrie;
use c4w2_prompts::rate_limit::{BucketConfig, RateLimiter, Refusal, TokenBucket};
use c4w2_prompts::routing::{Backend, Failure, Health, RouteError, Tier, candidates, send};
use c4w2_prompts::schema::{JsonAutomaton, Schema, accepts};
use c4w2_prompts::tool_calls::{Event, ToolCallParser};
use kernels::tokenize::Bpe;

fn smollm2() -> &'static Bpe {
    static BPE: OnceLock<Bpe> = OnceLock::new();
    BPE.get_or_init(|| c4w2_prompts::smollm2_tokenizer().expect("SmolLM2's tokenizer (run `cargo xtask models`)"))
}

fn part(text: &str, source: Source, fit: Fit, priority: u32) -> Part {
    Part { text: text.to_string(), source, fit, priority }
}

fn person() -> Schema {
    Schema::Object(vec![
        ("name".into(), Schema::String),
        ("age".into(), Schema::Integer),
        ("tags".into(), Schema::Array(Box::new(Schema::Enum(vec!["a".into(), "b".into()])))),
        ("ok".into(), Schema::Boolean),
    ])
}

/// The adjacent texts of `events` merged into one.
fn merged(events: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for e in events {
        match (out.last_mut(), e) {
            (Some(Event::Text(a)), Event::Text(b)) => a.push_str(&b),
            (_, e) => out.push(e),
        }
    }
    out
}

/// A health view that admits everyone except `down` and logs what was recorded.
struct Fake {
    down: Vec<usize>,
    log: Vec<(usize, bool)>,
}

impl Health for Fake {
    fn admit(&mut self, backend: usize) -> bool {
        !self.down.contains(&backend)
    }
    fn record(&mut self, backend: usize, succeeded: bool) {
        self.log.push((backend, succeeded));
    }
}

graded! {
    /// Required parts are kept, then the higher priority; a truncated chunk keeps its first tokens.
    fn pack_keeps_required_parts_and_fills_by_priority() {
        let bpe = smollm2();
        let parts = vec![
            part("<|im_start|>system\nAnswer from the documents.<|im_end|>\n", Source::Template, Fit::Required, 0),
            part("Example: Q: 2+2? A: 4.\n", Source::Template, Fit::Whole, 1),
            part("Paris is the capital and largest city of France, on the Seine.\n", Source::Untrusted, Fit::Truncate, 2),
            part("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n", Source::Template, Fit::Required, 0),
        ];
        let sizes: Vec<usize> = parts.iter().map(|p| c4w2_prompts::budget::encode_part(bpe, p).len()).collect();
        let required = sizes[0] + sizes[3];
        // Room for the chunk minus 3 tokens: the chunk (priority 2) is cut, the example (1) dropped.
        let budget = required + sizes[2] - 3;
        let packed = pack(bpe, &parts, budget).expect("packs");
        assert_eq!(
            packed.outcomes,
            vec![
                Outcome::Kept { tokens: sizes[0] },
                Outcome::Dropped,
                Outcome::Truncated { tokens: sizes[2] - 3, of: sizes[2] },
                Outcome::Kept { tokens: sizes[3] },
            ],
            "budget {budget}, part sizes {sizes:?}"
        );
        assert_eq!(packed.ids.len(), budget, "the packed ids fill the budget");
        let text = bpe.decode(&packed.ids).unwrap();
        assert!(text.starts_with("<|im_start|>system") && text.ends_with("<|im_end|>\n"), "prompt order is kept: {text:?}");
        let err = pack(bpe, &parts, required - 1).unwrap_err();
        assert_eq!(err, c4w2_prompts::Error::BudgetTooSmall { needed: required, budget: required - 1 });
    }

    /// The automaton accepts `json.dumps`-spaced documents of the schema and refuses what breaks it, byte by byte.
    fn automaton_accepts_the_schema_language() {
        let s = person();
        for doc in [r#"{"name": "Ada", "age": 36, "tags": ["a", "b"], "ok": true}"#, r#"{"name": "", "age": -0, "tags": [], "ok": false}"#] {
            assert!(accepts(&s, doc), "should accept {doc}");
        }
        for doc in [
            r#"{"name": "Ada", "age": 36, "tags": ["a", "b"], "ok": true} "#,
            r#"{"name":"Ada", "age": 36, "tags": [], "ok": true}"#,
            r#"{"name": "Ada", "age": 36, "tags": ["a","b"], "ok": true}"#,
            r#"{"age": 36, "name": "Ada", "tags": [], "ok": true}"#,
            r#"{"name": "Ada", "age": 036, "tags": [], "ok": true}"#,
            r#"{"name": "Ada", "age": 36, "tags": ["c"], "ok": true}"#,
            r#"{"name": "Ada", "age": 36, "tags": [], "ok": yes}"#,
            r#"{"name": "Ada", "age": 36, "tags": [], "ok": true"#,
        ] {
            assert!(!accepts(&s, doc), "should refuse {doc}");
        }
        let mut a = JsonAutomaton::new(&s);
        assert!(a.feed(br#"{"name": "Ada", "age": 3"#));
        let allowed: Vec<u8> = (0..=255u8).filter(|&b| a.allowed_bytes()[b as usize]).collect();
        assert_eq!(allowed, b",0123456789".to_vec(), "after an integer's first digit: more digits or the next property");
        assert!(!a.is_complete());
    }

    /// The trie's mask equals checking every token on its own, after a prefix that ends inside a key.
    fn mask_equals_checking_every_token() {
        let bpe = smollm2();
        let eos = c4w2_prompts::smollm2_eos(bpe);
        let trie = TokenTrie::new(bpe, eos).expect("trie");
        let s = person();
        let mut state = JsonAutomaton::new(&s);
        assert!(state.feed(br#"{"na"#));
        let mask = trie.mask(&state);
        for id in 0..bpe.vocab_size() as u32 {
            let bytes = bpe.token_bytes(id).unwrap();
            let want = !bpe.is_special(id) && !bytes.is_empty() && state.clone().feed(bytes);
            assert_eq!(mask.is_allowed(id), want, "token {id} {:?}", String::from_utf8_lossy(bytes));
        }
        let mut after_key = JsonAutomaton::new(&s);
        assert!(after_key.feed(br#"{"name"#));
        let mask = trie.mask(&after_key);
        let token = |text: &str| bpe.token_id(text).unwrap_or_else(|| panic!("SmolLM2 has the token {text:?}"));
        assert!(mask.is_allowed(token("\":")), "`\":` closes the key and writes the colon");
        assert!(!mask.is_allowed(token("\":\"")), "`\":\"` leaves out the space after the colon");
    }

    /// A tool call split across chunks, with text before and after it.
    fn parser_finds_a_call_split_across_chunks() {
        let mut p = ToolCallParser::new();
        let mut events = Vec::new();
        for chunk in ["Let me check. <tool", "_call>{\"name\": \"weather\", \"argu", "ments\": {\"city\": \"Oslo\"}}</tool_", "call> Done."] {
            events.extend(p.push(chunk.as_bytes()));
        }
        events.extend(p.finish());
        let got = merged(events);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], Event::Text("Let me check. ".into()));
        let Event::Call(call) = &got[1] else { panic!("expected a call, got {:?}", got[1]) };
        assert_eq!(call.name, "weather");
        assert_eq!(call.arguments, serde_json::json!({"city": "Oslo"}));
        assert_eq!(got[2], Event::Text(" Done.".into()));
    }

    /// A bucket of 10 refilling at 2/s: a burst of 10, then one every half second.
    fn bucket_allows_a_burst_then_the_rate() {
        let t = Duration::from_millis;
        let mut b = TokenBucket::new(BucketConfig { capacity: 10.0, per_second: 2.0 }, t(0));
        for _ in 0..10 {
            assert_eq!(b.try_take(1.0, t(0)), Ok(()));
        }
        assert_eq!(b.try_take(1.0, t(0)), Err(Refusal::RetryAfter(t(500))));
        assert_eq!(b.try_take(1.0, t(500)), Ok(()));
        assert_eq!(b.try_take(11.0, t(99_000)), Err(Refusal::TooLarge));
        let mut limits = RateLimiter::new(BucketConfig { capacity: 5.0, per_second: 1.0 }, BucketConfig { capacity: 100.0, per_second: 10.0 }, t(0));
        assert_eq!(limits.admit(80, t(0)), Ok(()));
        assert_eq!(limits.admit(40, t(0)), Err(Refusal::RetryAfter(t(2000))));
        assert_eq!(limits.requests.refill(t(0)), 4.0, "a refused request takes no request unit");
    }

    /// Three failures open the breaker; after `open_for` one probe passes and a success closes it.
    fn breaker_opens_probes_and_closes() {
        let t = Duration::from_secs;
        let config = BreakerConfig { failure_threshold: 3, open_for: t(10), half_open_probes: 1, close_after: 1 };
        let mut b = CircuitBreaker::new(config);
        for _ in 0..3 {
            assert_eq!(b.try_acquire(t(0)), Ok(()));
            b.on_failure(t(0));
        }
        assert_eq!(b.state(t(1)), State::Open { until: t(10) });
        assert_eq!(b.try_acquire(t(4)), Err(t(6)));
        assert_eq!(b.try_acquire(t(10)), Ok(()), "the first probe passes");
        assert_eq!(b.try_acquire(t(10)), Err(Duration::ZERO), "one probe at a time");
        b.on_success(t(11));
        assert_eq!(b.state(t(11)), State::Closed { failures: 0 });
    }

    /// A sovereign request skips public backends and fails over from a down sovereign one.
    fn routing_respects_tiers_and_fails_over() {
        let backend = |name: &str, tier, priority| Backend { name: name.into(), tier, priority };
        let backends = vec![
            backend("openai", Tier::Standard, 0),
            backend("onprem-a", Tier::Sovereign, 1),
            backend("vpc", Tier::Private, 0),
            backend("onprem-b", Tier::Sovereign, 2),
        ];
        assert_eq!(candidates(&backends, Tier::Sovereign), vec![1, 3]);
        assert_eq!(candidates(&backends, Tier::Standard), vec![0, 2, 1, 3]);
        let mut health = Fake { down: vec![], log: vec![] };
        let mut called = Vec::new();
        let got = send(&backends, Tier::Sovereign, &mut health, |b| {
            called.push(b);
            if b == 1 { Err(Failure::Unavailable) } else { Ok("answer") }
        });
        assert_eq!(got.map(|r| (r.reply, r.backend)), Ok(("answer", 3)));
        assert_eq!(called, vec![1, 3], "only sovereign backends are called");
        assert_eq!(health.log, vec![(1, false), (3, true)]);
        let mut health = Fake { down: vec![1, 3], log: vec![] };
        let got = send(&backends, Tier::Sovereign, &mut health, |_| Ok::<_, Failure>("never"));
        assert_eq!(got, Err(RouteError::AllFailed { tried: vec![] }));
    }
}
