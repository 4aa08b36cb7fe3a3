//! Benchmarks of week c4w2: the learner's token mask against `kernels::constrain` (llguidance) on the
//! same schema, the same SmolLM2 vocabulary and the same prefixes.
//!
//! A constrained decoder computes one mask per generated token, then advances its state by the
//! token it sampled. Both sides do exactly that along a document of the schema tokenized by
//! SmolLM2: mask, commit, mask, commit, … Every mask is first checked equal to kernels' mask, then
//! the walks are timed in alternation (lab, kernels, lab, …, best of several passes) so that
//! machine noise hits both alike. The figure is a ratio of masks per second, never an absolute
//! time. `graded!` holds the graded task (`c4w2.mask-bench`); `run` is the sweep behind
//! `cargo xtask bench c4w2`.

use std::sync::Arc;
use std::time::Instant;

use c4w2_prompts as lab;
use kernels::constrain::{Constraint, Grammar, Vocabulary};
use kernels::tokenize::Bpe;
use lab::mask::TokenTrie;
use lab::schema::{JsonAutomaton, Schema};

fn smollm2() -> Bpe {
    let path = datasets::models::file_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
        .unwrap_or_else(|e| panic!("SmolLM2 is missing ({e}): run `cargo xtask models`"));
    let gguf = kernels::formats::Gguf::open(&path).expect("kernels reads SmolLM2");
    Bpe::from_gguf(&gguf).expect("SmolLM2's tokenizer")
}

/// A paper record: strings with prose, CJK and emoji, an integer, enums in an array, nested objects.
fn paper_schema() -> Schema {
    let author = Schema::Object(vec![("name".into(), Schema::String), ("affiliation".into(), Schema::String)]);
    Schema::Object(vec![
        ("title".into(), Schema::String),
        ("year".into(), Schema::Integer),
        ("open_access".into(), Schema::Boolean),
        (
            "fields".into(),
            Schema::Array(Box::new(Schema::Enum(vec![
                "nlp".into(),
                "systems".into(),
                "theory".into(),
                "vision".into(),
            ]))),
        ),
        ("authors".into(), Schema::Array(Box::new(author))),
        ("abstract".into(), Schema::String),
    ])
}

/// A document of [`paper_schema`] with `authors` authors and an abstract of `sentences` sentences.
fn paper_doc(authors: usize, sentences: usize) -> String {
    let people = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "高橋 美咲", "Edsger Dijkstra", "Barbara Liskov"];
    let places =
        ["Analytical Engines Ltd", "University of Manchester", "Harvard 🦀 Lab", "東京大学", "TU Eindhoven", "MIT"];
    let list: Vec<String> = (0..authors)
        .map(|i| {
            format!(r#"{{"name": "{}", "affiliation": "{}"}}"#, people[i % people.len()], places[i % places.len()])
        })
        .collect();
    let prose = [
        "We study constrained decoding of JSON under a token budget.",
        "Masks are computed by walking a trie of the vocabulary's bytes.",
        "日本語の文も含まれます。",
        "Results hold for \\\"quoted\\\" text and emoji 😀👍 alike.",
    ];
    let text: Vec<&str> = (0..sentences).map(|i| prose[i % prose.len()]).collect();
    format!(
        r#"{{"title": "Token masks at scale", "year": 2026, "open_access": true, "fields": ["nlp", "systems"], "authors": [{}], "abstract": "{}"}}"#,
        list.join(", "),
        text.join(" ")
    )
}

/// The ids of `doc` and the lab's automaton before each of them (and after the last).
fn prefixes(bpe: &Bpe, schema: &Schema, doc: &str) -> (Vec<u32>, Vec<JsonAutomaton>) {
    let ids = bpe.encode_ordinary(doc);
    let mut state = JsonAutomaton::new(schema);
    let mut states = vec![state.clone()];
    for &id in &ids {
        assert!(
            state.feed(bpe.token_bytes(id).expect("a token")),
            "the lab's automaton refuses its own document {doc}"
        );
        states.push(state.clone());
    }
    (ids, states)
}

/// Checks every mask along the document against kernels', with the same tokens committed.
fn check_masks(bpe: &Bpe, trie: &TokenTrie, vocab: &Arc<Vocabulary>, schema: &Schema, doc: &str) {
    let (ids, states) = prefixes(bpe, schema, doc);
    let mut reference =
        Constraint::new(vocab, &Grammar::JsonSchema(schema.to_json())).expect("kernels compiles the schema");
    for (step, &id) in ids.iter().enumerate() {
        let mine = trie.mask(&states[step]);
        let theirs = reference.mask().expect("kernels' mask");
        // Where one byte is forced, llguidance allows only the canonical token of the forced bytes
        // (see the hidden tests): the lab's exact mask must contain it.
        let forced = states[step].allowed_bytes().iter().filter(|&&b| b).count() == 1 && theirs.count() == 1;
        let agree = if forced { mine.is_allowed(theirs.allowed()[0]) } else { mine.words() == theirs.words() };
        assert!(
            agree,
            "the lab's mask differs from kernels' after {:?} ({} tokens allowed, kernels {}): fix the mask before timing it",
            bpe.decode(&ids[..step]).unwrap_or_default(),
            mine.count(),
            theirs.count()
        );
        reference.commit(id).expect("kernels takes the token");
    }
}

/// Seconds for one walk along the document with the lab: mask, then advance by the token.
fn walk_lab(bpe: &Bpe, trie: &TokenTrie, schema: &Schema, ids: &[u32]) -> f64 {
    let start = Instant::now();
    let mut state = JsonAutomaton::new(schema);
    let mut allowed = 0usize;
    for &id in ids {
        let mask = trie.mask(&state);
        allowed += mask.count();
        state.feed(bpe.token_bytes(id).expect("a token"));
    }
    std::hint::black_box(allowed);
    start.elapsed().as_secs_f64()
}

/// Seconds for one walk with kernels: mask, then commit the token.
fn walk_kernels(vocab: &Arc<Vocabulary>, schema: &Schema, ids: &[u32]) -> f64 {
    let grammar = Grammar::JsonSchema(schema.to_json());
    let start = Instant::now();
    let mut c = Constraint::new(vocab, &grammar).expect("kernels compiles the schema");
    let mut allowed = 0usize;
    for &id in ids {
        allowed += c.mask().expect("kernels' mask").count();
        c.commit(id).expect("kernels takes the token");
    }
    std::hint::black_box(allowed);
    start.elapsed().as_secs_f64()
}

/// Masks per second of each walker, best of `rounds` passes taken in alternation.
fn interleaved(walkers: &mut [&mut dyn FnMut() -> f64], masks: usize, rounds: usize) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; walkers.len()];
    for _ in 0..rounds {
        for (i, walk) in walkers.iter_mut().enumerate() {
            best[i] = best[i].min(walk());
        }
    }
    best.iter().map(|s| masks as f64 / s).collect()
}

graded! {
    /// The lab's masks along a 3-author paper record equal kernels'; then its masks per second are
    /// compared with kernels' on the same walk (score: the ratio).
    fn mask_throughput_vs_kernels() {
        let bpe = smollm2();
        let eos = bpe.token_id("<|im_end|>").expect("SmolLM2 has <|im_end|>");
        let vocab = Vocabulary::from_bpe(&bpe, eos).expect("kernels' vocabulary");
        let trie = TokenTrie::new(&bpe, eos).expect("the lab's trie");
        let schema = paper_schema();
        let doc = paper_doc(3, 3);
        check_masks(&bpe, &trie, &vocab, &schema, &doc);
        let ids = bpe.encode_ordinary(&doc);
        let mut mine = || walk_lab(&bpe, &trie, &schema, &ids);
        let mut theirs = || walk_kernels(&vocab, &schema, &ids);
        let rates = interleaved(&mut [&mut mine, &mut theirs], ids.len(), 5);
        let ratio = rates[0] / rates[1];
        println!("{} tokens: lab {:.0} masks/s, kernels {:.0} masks/s; ratio {ratio:.3}", ids.len(), rates[0], rates[1]);
        crate::report_metric("mask_ratio", ratio);
        crate::report_metric("lab_masks_per_s", rates[0]);
    }
}

/// `cargo xtask bench c4w2`: masks per second along documents of growing length, written to `args[0]`.
pub fn run(args: &[String]) {
    let out = std::path::PathBuf::from(args.first().expect("usage: bench OUT.json [--quick]"));
    let quick = args.iter().any(|a| a == "--quick");
    let bpe = smollm2();
    let eos = bpe.token_id("<|im_end|>").expect("SmolLM2 has <|im_end|>");
    eprintln!("building kernels' vocabulary and the lab's trie…");
    let start = Instant::now();
    let vocab = Vocabulary::from_bpe(&bpe, eos).expect("kernels' vocabulary");
    let kernels_setup = start.elapsed().as_secs_f64();
    let schema = paper_schema();
    let sizes: &[(usize, usize)] = if quick { &[(1, 1), (3, 3)] } else { &[(1, 1), (2, 2), (3, 4), (6, 8), (12, 16)] };
    let rounds = if quick { 3 } else { 5 };
    let mut rows = Vec::new();
    let mut notes = vec![format!("kernels: vocabulary (token trie + llguidance slices) built in {kernels_setup:.3} s")];
    let start = Instant::now();
    let lab_trie =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| TokenTrie::new(&bpe, eos).expect("the lab's trie")));
    match &lab_trie {
        Ok(_) => notes.push(format!("lab: token trie built in {:.3} s", start.elapsed().as_secs_f64())),
        Err(_) => notes
            .push("lab: the trie could not be built (see the panic above); only the references are measured".into()),
    }
    for &(authors, sentences) in sizes {
        let doc = paper_doc(authors, sentences);
        let ids = bpe.encode_ordinary(&doc);
        eprintln!("{} tokens…", ids.len());
        let mut names: Vec<&str> = vec!["kernels"];
        let mut theirs = || walk_kernels(&vocab, &schema, &ids);
        let mut walkers: Vec<&mut dyn FnMut() -> f64> = vec![&mut theirs];
        let lab_ok = lab_trie.as_ref().ok().filter(|trie| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_masks(&bpe, trie, &vocab, &schema, &doc)))
                .is_ok()
        });
        if lab_ok.is_none() && lab_trie.is_ok() {
            notes.push(format!("lab: masks differ from kernels' on the {}-token document; not timed", ids.len()));
        }
        let (bpe_ref, schema_ref, ids_ref) = (&bpe, &schema, &ids);
        let mut mine = lab_ok.map(|trie| move || walk_lab(bpe_ref, trie, schema_ref, ids_ref));
        if let Some(m) = mine.as_mut() {
            names.push("lab");
            walkers.push(m);
        }
        with_reference_solution! {
            let sol_eos = eos;
            let sol_trie = reference_solution::mask::TokenTrie::new(&bpe, sol_eos).expect("the solution's trie");
            let sol_schema = to_solution(&schema);
            let mut sol = || {
                let start = Instant::now();
                let mut state = reference_solution::schema::JsonAutomaton::new(&sol_schema);
                let mut allowed = 0usize;
                for &id in &ids {
                    allowed += sol_trie.mask(&state).count();
                    state.feed(bpe.token_bytes(id).expect("a token"));
                }
                std::hint::black_box(allowed);
                start.elapsed().as_secs_f64()
            };
            names.push("solution");
            walkers.push(&mut sol);
        }
        let rates = interleaved(&mut walkers, ids.len(), rounds);
        for (name, rate) in names.iter().zip(rates) {
            rows.push(serde_json::json!({
                "impl": name, "document tokens": ids.len(), "masks/s": rate, "µs/mask": 1e6 / rate,
            }));
        }
    }
    let record = serde_json::json!({
        "week": "c4w2",
        "title": "JSON-schema token masks over SmolLM2's 49,152 tokens: masks per second along a document (mask + commit per token, 1 thread)",
        "x": "document tokens",
        "y": "masks/s",
        "reference": "kernels",
        "targets": [100],
        "columns": ["impl", "document tokens", "masks/s", "µs/mask"],
        "rows": rows,
        "notes": notes,
        "peers": [],
    });
    std::fs::write(&out, serde_json::to_string_pretty(&record).expect("json")).expect("writing the record");
}

with_reference_solution! {
    /// The same schema as the solution crate's type (the harness links the lab under the lab's name).
    fn to_solution(s: &Schema) -> reference_solution::schema::Schema {
        use reference_solution::schema::Schema as S;
        match s {
            Schema::String => S::String,
            Schema::Integer => S::Integer,
            Schema::Boolean => S::Boolean,
            Schema::Enum(v) => S::Enum(v.clone()),
            Schema::Array(items) => S::Array(Box::new(to_solution(items))),
            Schema::Object(fields) => S::Object(fields.iter().map(|(n, f)| (n.clone(), to_solution(f))).collect()),
        }
    }
}
