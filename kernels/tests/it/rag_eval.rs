//! kernels::rag: IR metrics against pytrec_eval, paired bootstrap, answer metrics.
//!
//! The reference values come from `tests/fixtures/rag_eval/make_fixtures.py`: pytrec_eval (trec_eval 9's
//! C code) on seeded random qrels and runs, `scipy.stats.permutation_test` for the randomisation test,
//! the exact bootstrap distribution of a small sample for the bootstrap interval, and the official SQuAD
//! v2.0 functions for exact match and F1. A test reruns the script with `--check` so the fixtures cannot
//! drift from what the references compute.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use kernels::Error;
use kernels::nn::bert::BertModel;
use kernels::rag::eval::{
    self, BootstrapConfig, EvalReport, Measure, Qrels, Run, citation_scores, evaluate, exact_match, faithfulness,
    normalize_answer, paired_bootstrap, randomisation_test, token_f1,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rag_eval")
}

fn cases() -> &'static Value {
    static CASES: OnceLock<Value> = OnceLock::new();
    CASES.get_or_init(|| serde_json::from_slice(&std::fs::read(fixtures().join("cases.json")).unwrap()).unwrap())
}

fn qrels() -> Qrels {
    eval::read_qrels(&fixtures().join("qrels.txt")).unwrap()
}

fn run_of_json(v: &Value) -> Run {
    let mut run = Run::default();
    for (topic, ranking) in v.as_object().unwrap() {
        let ranking = ranking.as_object().unwrap().iter().map(|(p, s)| (p.clone(), s.as_f64().unwrap())).collect();
        run.rankings.insert(topic.clone(), ranking);
    }
    run
}

/// Every topic and measure of `got` equal to `want` (pytrec_eval's per-topic values and their means) to 1e-9.
fn check(got: &EvalReport, want_per_topic: &Value, want_mean: &Value) -> Result<usize, String> {
    let want: BTreeMap<&String, &Value> = want_per_topic.as_object().unwrap().iter().collect();
    let got_topics: Vec<&String> = got.per_topic.keys().collect();
    let want_topics: Vec<&String> = want.keys().copied().collect();
    if got_topics != want_topics {
        return Err(format!("evaluated topics differ:\n ours   {got_topics:?}\n theirs {want_topics:?}"));
    }
    let mut compared = 0;
    for (topic, values) in &want {
        for (name, v) in values.as_object().unwrap() {
            let ours = got.per_topic[*topic].get(name).ok_or_else(|| format!("{topic}: no {name}"))?;
            let theirs = v.as_f64().unwrap();
            if (ours - theirs).abs() > 1e-9 {
                return Err(format!("{topic} {name}: ours {ours}, pytrec_eval {theirs}"));
            }
            compared += 1;
        }
    }
    for (name, v) in want_mean.as_object().unwrap() {
        let ours = got.mean.get(name).ok_or_else(|| format!("no mean {name}"))?;
        if (ours - v.as_f64().unwrap()).abs() > 1e-9 {
            return Err(format!("mean {name}: ours {ours}, reference {v}"));
        }
    }
    Ok(compared)
}

fn measures_of(case: &Value) -> Vec<Measure> {
    let first = case["per_topic"].as_object().unwrap().values().next().unwrap();
    first.as_object().unwrap().keys().map(|n| Measure::parse(n).unwrap_or_else(|| panic!("measure {n}"))).collect()
}

#[test]
fn every_topic_and_measure_equals_pytrec_eval() {
    let qrels = qrels();
    let mut failures = Vec::new();
    let mut total = 0;
    let runs = cases()["runs"].as_array().unwrap();
    for case in runs {
        let name = case["name"].as_str().unwrap();
        // A run with a TREC file is read from it (the reader is under test too); one holding empty
        // rankings (which a file cannot express) is built from the JSON.
        let run = match case["file"].as_str() {
            Some(file) => eval::read_run(&fixtures().join(file)).unwrap(),
            None => run_of_json(&case["run"]),
        };
        if case["file"].is_string() {
            let sorted = |r: &Run| {
                let mut r = r.clone();
                r.rankings.values_mut().for_each(|v| v.sort_by(|x, y| x.0.cmp(&y.0)));
                r
            };
            assert_eq!(sorted(&run), sorted(&run_of_json(&case["run"])), "{name}: the TREC file is not the JSON run");
        }
        let report = evaluate(&run, &qrels, &measures_of(case)).unwrap();
        match check(&report, &case["per_topic"], &case["mean"]) {
            Ok(n) => total += n,
            Err(e) => failures.push(format!("[{name}] {e}")),
        }
    }
    eprintln!("rag eval: {total} topic x measure values equal to pytrec_eval over {} runs", runs.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(total > 1000, "only {total} values compared");
    assert!(runs.iter().any(|c| c["run"].as_object().unwrap().values().any(|r| r.as_object().unwrap().is_empty())));
}

#[test]
fn the_committed_fixtures_are_what_pytrec_eval_computes_now() {
    crate::fixture_check::fixtures_still_match(&fixtures().join("make_fixtures.py"));
}

fn ranking(items: &[(&str, f64)]) -> Vec<(String, f64)> {
    items.iter().map(|(p, s)| (p.to_string(), *s)).collect()
}

fn judged(items: &[(&str, i32)]) -> BTreeMap<String, i32> {
    items.iter().map(|(p, g)| (p.to_string(), *g)).collect()
}

#[test]
fn ties_break_by_passage_id_descending_as_trec_eval_does() {
    // Computed by hand. d scores highest; a, b, c tie and trec_eval orders them c, b, a; d is -1 (unjudged).
    let run = ranking(&[("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 2.0)]);
    let qrels = judged(&[("a", 2), ("b", 0), ("c", 1), ("d", -1)]);
    let order: Vec<String> = eval::trec_order(&run).into_iter().map(|(p, _)| p).collect();
    assert_eq!(order, ["d", "c", "b", "a"]);
    let l2 = |x: f64| x.log2();
    let want = [
        ("P_1", 0.0),
        ("P_5", 2.0 / 5.0),
        ("recall_5", 1.0),
        ("recall_2", 0.5),
        ("recip_rank", 0.5),
        ("map", (1.0 / 2.0 + 2.0 / 4.0) / 2.0),
        ("ndcg_cut_5", (1.0 / l2(3.0) + 2.0 / l2(5.0)) / (2.0 + 1.0 / l2(3.0))),
        ("ndcg_cut_2", (1.0 / l2(3.0)) / (2.0 + 1.0 / l2(3.0))),
    ];
    let measures: Vec<Measure> = want.iter().map(|(n, _)| Measure::parse(n).unwrap()).collect();
    let got = eval::evaluate_topic(&run, &qrels, &measures).unwrap();
    for (name, value) in want {
        assert!((got[name] - value).abs() < 1e-15, "{name}: {} vs {value}", got[name]);
    }
    // -0.0 and 0.0 are equal scores (as in C): the id decides.
    let order: Vec<String> =
        eval::trec_order(&ranking(&[("x", -0.0), ("y", 0.0), ("é", 0.0)])).into_iter().map(|(p, _)| p).collect();
    assert_eq!(order, ["é", "y", "x"]);
}

#[test]
fn a_trec_run_round_trips_through_its_text() {
    let case = &cases()["runs"][0];
    let run = run_of_json(&case["run"]);
    let text = run.to_trec("t");
    let back = Run::parse(&text, "mem").unwrap();
    for (topic, ranking) in &run.rankings {
        let mut a = ranking.clone();
        a.sort_by(|x, y| x.0.cmp(&y.0));
        let mut b = back.rankings.get(topic).cloned().unwrap_or_default();
        b.sort_by(|x, y| x.0.cmp(&y.0));
        let bits = |v: &[(String, f64)]| v.iter().map(|(p, s)| (p.clone(), s.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "{topic}");
    }
    let qrels_text = std::fs::read_to_string(fixtures().join("qrels.txt")).unwrap();
    assert_eq!(qrels().to_trec(), qrels_text);
}

/// Parses `text` with `parse` and expects an `Error::RagEvalFormat` at `line` whose reason contains `needle`.
fn check_format_error<T: std::fmt::Debug>(
    parse: impl Fn(&str, &str) -> kernels::Result<T>,
    text: &str,
    line: usize,
    needle: &str,
) -> Result<(), String> {
    match parse(text, "input.txt") {
        Err(Error::RagEvalFormat { source_name, line: l, reason }) => {
            if source_name != "input.txt" || l != line || !reason.contains(needle) {
                Err(format!("{text:?}: got {source_name}:{l}: {reason}, want line {line} with {needle:?}"))
            } else {
                Ok(())
            }
        }
        other => Err(format!("{text:?}: expected a format error, got {other:?}")),
    }
}

#[test]
fn malformed_lines_are_typed_errors_naming_the_line() {
    let qrels_cases = [
        ("q1 0 a 1\nq1 0 b\n", 2, "expected 4 fields"),
        ("q1 0 a 1\n\nq1 0 b 1.5\n", 3, "not an integer"),
        ("q1 0 a two\n", 1, "not an integer"),
        ("q1 0 a 1\nq2 0 a 1\nq1 0 a 0\n", 3, "first on line 1"),
        ("q1 0 a 1 extra\n", 1, "expected 4 fields"),
    ];
    let run_cases = [
        ("q1 Q0 a 1 0.5 t\nq1 Q0 b 2 0.4\n", 2, "expected 6 fields"),
        ("q1 Q0 a 1 abc t\n", 1, "not a number"),
        ("q1 Q0 a 1 NaN t\n", 1, "not a number"),
        ("q1 Q0 a 1 0.5 t\nq1 Q0 a 2 0.4 t\n", 2, "first on line 1"),
    ];
    let topic_cases = [
        ("{\"id\": \"q1\", \"question\": \"?\"}\n{\"id\": \"q2\"}\n", 2, "not a topic"),
        ("{\"id\": \"q1\", \"question\": \"?\"}\n\n{\"id\": \"q1\", \"question\": \"again\"}\n", 3, "repeats line 1"),
        ("not json\n", 1, "not a topic"),
    ];
    let mut failures = Vec::new();
    for (text, line, needle) in qrels_cases {
        failures.extend(check_format_error(Qrels::parse, text, line, needle).err());
    }
    for (text, line, needle) in run_cases {
        failures.extend(check_format_error(Run::parse, text, line, needle).err());
    }
    for (text, line, needle) in topic_cases {
        failures.extend(check_format_error(eval::parse_topics, text, line, needle).err());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A missing file names its path; valid text with blank lines parses.
    assert!(matches!(eval::read_qrels(&fixtures().join("absent.txt")), Err(Error::RagIo { .. })));
    let topics = eval::parse_topics("{\"id\":\"a\",\"question\":\"x\",\"answer\":\"y\"}\n\n", "t").unwrap();
    assert_eq!(topics[0].answer.as_deref(), Some("y"));
    // A ranking listing a passage twice, a NaN score and a zero cutoff are refused when evaluating.
    let j = judged(&[("a", 1)]);
    assert!(eval::evaluate_topic(&ranking(&[("a", 1.0), ("a", 0.5)]), &j, &[Measure::Map]).is_err());
    assert!(eval::evaluate_topic(&ranking(&[("a", f64::NAN)]), &j, &[Measure::Map]).is_err());
    assert!(eval::evaluate_topic(&ranking(&[("a", 1.0)]), &j, &[Measure::P(0)]).is_err());
    assert_eq!(Measure::parse("P_0"), None);
    assert_eq!(Measure::parse("ndcg_cut_10"), Some(Measure::NdcgCut(10)));
}

#[test]
fn the_randomisation_test_equals_scipys_exact_permutation_test() {
    for (i, case) in cases()["randomisation"].as_array().unwrap().iter().enumerate() {
        let v = |k: &str| case[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>();
        let (a, b) = (v("a"), v("b"));
        let p = randomisation_test(&a, &b, 10_000, 7).unwrap();
        let want = case["p_value"].as_f64().unwrap();
        assert!((p - want).abs() < 1e-12, "case {i} (n = {}): ours {p}, scipy {want}", a.len());
    }
}

#[test]
fn the_random_randomisation_test_agrees_with_the_exact_one() {
    // n = 14: 2^14 = 16384 flips. Exact with that budget, Monte Carlo with 10,000. The Monte Carlo
    // p-value is twice a tail frequency g = p / 2, so its standard error is 2 sqrt(g (1 - g) / B).
    let a: Vec<f64> = (0..14).map(|i| ((i * 37 % 11) as f64) / 10.0).collect();
    for shift in [0.02, 0.25, 0.4] {
        let b: Vec<f64> = (0..14).map(|i| ((i * 53 % 13) as f64) / 12.0 - shift).collect();
        let exact = randomisation_test(&a, &b, 1 << 14, 1).unwrap();
        assert!(exact > 0.0 && exact < 1.0, "{exact}");
        let g = exact / 2.0;
        let se = 2.0 * (g * (1.0 - g) / 10_000.0).sqrt();
        for seed in [1, 2, 3] {
            let mc = randomisation_test(&a, &b, 10_000, seed).unwrap();
            assert!(
                (mc - exact).abs() <= 4.0 * se + 2e-4,
                "shift {shift}, seed {seed}: Monte Carlo {mc}, exact {exact}"
            );
        }
    }
}

#[test]
fn the_bootstrap_interval_sits_at_the_exact_bootstrap_percentiles() {
    let case = &cases()["bootstrap"][0];
    let v = |k: &str| case[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>();
    let (a, b) = (v("a"), v("b"));
    let dist: Vec<(f64, f64)> = case["distribution"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    // P(mean < x) and P(mean <= x) under the exact bootstrap distribution.
    let below = |x: f64| dist.iter().filter(|(m, _)| *m < x - 1e-9).map(|(_, p)| p).sum::<f64>();
    let at_most = |x: f64| dist.iter().filter(|(m, _)| *m <= x + 1e-9).map(|(_, p)| p).sum::<f64>();
    let config = BootstrapConfig::default();
    let ci = paired_bootstrap(&a, &b, &config).unwrap();
    assert!((ci.mean_diff - case["mean_diff"].as_f64().unwrap()).abs() < 1e-12);
    assert_eq!((ci.resamples, ci.topics), (10_000, 6));
    // With B = 10,000 the empirical CDF at a quantile has a standard error of sqrt(q (1 - q) / B) ~ 0.0016.
    let tol = 0.008;
    for (x, q) in [(ci.low, 0.025), (ci.high, 0.975)] {
        assert!(
            below(x) <= q + tol && at_most(x) >= q - tol,
            "{x}: P(<) = {}, P(<=) = {}, q = {q}",
            below(x),
            at_most(x)
        );
    }
    // Seeded: the same seed gives the same interval.
    assert_eq!(paired_bootstrap(&a, &b, &config).unwrap(), ci);
    // A wider confidence gives a wider interval; mismatched lengths and empty input are errors.
    let wide = paired_bootstrap(&a, &b, &BootstrapConfig { confidence: 0.99, ..config }).unwrap();
    assert!(wide.low <= ci.low && wide.high >= ci.high);
    assert!(paired_bootstrap(&a, &b[..5], &config).is_err());
    assert!(paired_bootstrap(&[], &[], &config).is_err());
    assert!(paired_bootstrap(&a, &b, &BootstrapConfig { confidence: 1.0, ..config }).is_err());
}

#[test]
fn comparing_two_reports_pairs_their_topics() {
    let qrels = qrels();
    let runs = cases()["runs"].as_array().unwrap();
    let ties = evaluate(&run_of_json(&runs[0]["run"]), &qrels, &eval::default_measures()).unwrap();
    // The same system against itself: difference 0, interval [0, 0], p = 1.
    let same = eval::compare(&ties, &ties, "ndcg_cut_10", &BootstrapConfig::default()).unwrap();
    assert_eq!((same.interval.mean_diff, same.interval.low, same.interval.high, same.p_value), (0.0, 0.0, 0.0, 1.0));
    // Two systems on different topic sets cannot be paired.
    let fine = evaluate(&run_of_json(&runs[2]["run"]), &qrels, &eval::default_measures()).unwrap();
    assert!(ties.per_topic.keys().ne(fine.per_topic.keys()));
    assert!(eval::compare(&ties, &fine, "map", &BootstrapConfig::default()).is_err());
}

#[test]
fn squad_normalisation_exact_match_and_f1_equal_the_official_script() {
    let mut failures = Vec::new();
    for case in cases()["squad"].as_array().unwrap() {
        let (p, g) = (case["prediction"].as_str().unwrap(), case["gold"].as_str().unwrap());
        let checks = [
            (normalize_answer(p) == case["normalized_prediction"].as_str().unwrap(), "normalized prediction"),
            (normalize_answer(g) == case["normalized_gold"].as_str().unwrap(), "normalized gold"),
            (exact_match(p, g) == (case["exact"].as_i64().unwrap() == 1), "exact match"),
            ((token_f1(p, g) - case["f1"].as_f64().unwrap()).abs() < 1e-12, "F1"),
        ];
        for (ok, what) in checks {
            if !ok {
                failures.push(format!(
                    "{p:?} vs {g:?}: {what} (ours {:?}, F1 {})",
                    normalize_answer(p),
                    token_f1(p, g)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn citation_precision_and_recall_by_hand() {
    let cases: [(&[&str], &[&str], f64, f64); 6] = [
        (&["a", "b"], &["a", "c", "d"], 0.5, 1.0 / 3.0),
        (&["a", "a", "c"], &["a", "c"], 1.0, 1.0),
        (&["x"], &["a"], 0.0, 0.0),
        (&[], &["a"], 0.0, 0.0),
        (&[], &[], 1.0, 1.0),
        (&["a"], &[], 0.0, 1.0),
    ];
    for (cited, gold, p, r) in cases {
        let s = citation_scores(cited, gold);
        assert_eq!((s.precision, s.recall), (p, r), "{cited:?} against {gold:?}");
    }
    let q = Qrels::parse("q 0 a 2\nq 0 b 0\nq 0 c 1\n", "mem").unwrap();
    assert_eq!(q.relevant("q"), ["a", "c"]);
}

#[test]
fn answer_sentences_drop_citation_markers() {
    let cases: [(&str, &[&str]); 4] = [
        (
            "Ownership moves [1]. Borrowing does not [2, 3]!\nA third line",
            &["Ownership moves .", "Borrowing does not !", "A third line"],
        ),
        ("Use v[0] or v.get(0) [1].", &["Use v[0] or v.get(0) ."]),
        ("  [1] \n\n", &[]),
        ("Version 1.75 is out. Done", &["Version 1.75 is out.", "Done"]),
    ];
    for (answer, want) in cases {
        assert_eq!(eval::answer_sentences(answer), want, "{answer:?}");
    }
}

fn model() -> &'static BertModel {
    static MODEL: OnceLock<BertModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path =
            datasets::models::file_path("all-minilm-l6-v2", "model.safetensors").unwrap_or_else(|e| panic!("{e}"));
        BertModel::load(path.parent().unwrap()).unwrap()
    })
}

#[test]
fn faithfulness_supports_copied_and_paraphrased_sentences_not_unrelated_ones() {
    let chunks = [
        "Each value in Rust has an owner. There can only be one owner at a time. When the owner goes out of \
         scope, the value will be dropped.",
        "Cargo is Rust's build system and package manager. cargo build compiles a project and cargo run \
         compiles and runs it.",
    ];
    let answer = "When the owner goes out of scope, the value is dropped [1]. \
                  Cargo builds your project and manages its packages [2]. \
                  The Eiffel tower in Paris was finished in 1889 [1].";
    let f = faithfulness(answer, &chunks, model(), eval::FAITHFULNESS_THRESHOLD).unwrap();
    let verdicts: Vec<(bool, Option<usize>)> = f.sentences.iter().map(|s| (s.supported, s.best_chunk)).collect();
    let cos: Vec<f32> = f.sentences.iter().map(|s| s.best_cosine).collect();
    eprintln!("faithfulness: best cosines {cos:?}, threshold {}", eval::FAITHFULNESS_THRESHOLD);
    assert_eq!(verdicts[..2], [(true, Some(0)), (true, Some(1))], "cosines {cos:?}");
    assert!(!verdicts[2].0, "an unrelated sentence is unsupported: cosines {cos:?}");
    assert!((f.supported_fraction - 2.0 / 3.0).abs() < 1e-12);
    // Nothing cited: nothing supported; no sentence: vacuously faithful.
    let none = faithfulness(answer, &[], model(), eval::FAITHFULNESS_THRESHOLD).unwrap();
    assert_eq!(none.supported_fraction, 0.0);
    assert_eq!(faithfulness(" [1] ", &chunks, model(), 0.5).unwrap().supported_fraction, 1.0);
}

/// A temp folder removed on drop.
struct Tmp(PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A document of two sections (`#a`, `#b`), each made of the given paragraphs, one chunk per paragraph.
fn two_section_doc(id: &str, a: &[&str], b: &[&str]) -> (kernels::rag::Document, Vec<kernels::rag::Chunk>) {
    use kernels::rag::{Chunk, Document, Section};
    let mut text = String::new();
    let mut chunks = Vec::new();
    let mut sections = Vec::new();
    for (anchor, paragraphs) in [("a", a), ("b", b)] {
        let start = text.len();
        for p in paragraphs {
            let at = text.len();
            text.push_str(p);
            chunks.push(Chunk {
                doc: id.into(),
                span: at..at + p.len(),
                text: p.to_string(),
                heading_path: vec![anchor.into()],
                passage: format!("{id}#{anchor}"),
                metadata: BTreeMap::new(),
            });
            text.push('\n');
        }
        sections.push(Section {
            heading_path: vec![anchor.into()],
            anchor: Some(anchor.into()),
            span: start..text.len(),
        });
    }
    let doc =
        Document { id: id.into(), title: id.into(), text, sections, blocks: Vec::new(), metadata: BTreeMap::new() };
    (doc, chunks)
}

#[test]
fn evaluate_index_ranks_passages_by_their_best_chunk_and_equals_pytrec_eval() {
    use kernels::rag::index::{IndexConfig, RagIndex};
    use kernels::rag::retrieve::{Fusion, Mode, RetrieveConfig, retrieve};
    let tmp = Tmp(std::env::temp_dir().join(format!("kernels-rag-eval-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&tmp.0);
    let docs = [
        two_section_doc(
            "own.html",
            &["Ownership moves a value into the new binding.", "After a move the old binding cannot be used."],
            &["Borrowing takes a reference without taking ownership.", "A mutable borrow is exclusive."],
        ),
        two_section_doc(
            "cargo.html",
            &["cargo build compiles the package.", "cargo build --release turns on optimisations."],
            &["Cargo.toml lists dependencies with versions.", "Features switch optional dependencies on."],
        ),
        two_section_doc(
            "life.html",
            &["Lifetimes name how long a reference is valid.", "The borrow checker compares lifetimes."],
            &["Lifetime elision fills in lifetimes of references in function signatures."],
        ),
    ];
    let config = kernels::rag::chunk::ChunkerConfig::Recursive { max_tokens: 126 };
    let mut index = RagIndex::create(&tmp.0, model(), IndexConfig::new(config)).unwrap();
    let pairs: Vec<_> = docs.iter().map(|(d, c)| (d, c.clone())).collect();
    index.add_chunked(&pairs, model(), &mut |_, _| {}).unwrap();
    index.commit().unwrap();

    let topics = eval::parse_topics(
        "{\"id\":\"t1\",\"question\":\"what does a move do to the old binding\"}\n\
         {\"id\":\"t2\",\"question\":\"cargo build release optimisations\"}\n\
         {\"id\":\"t3\",\"question\":\"lifetimes of references\"}\n\
         {\"id\":\"t4\",\"question\":\"a question nobody judged\"}\n",
        "topics",
    )
    .unwrap();
    let qrels = Qrels::parse(
        "t1 0 own.html#a 2\nt1 0 own.html#b 1\nt1 0 cargo.html#a 0\n\
         t2 0 cargo.html#a 2\nt2 0 cargo.html#b 1\n\
         t3 0 life.html#a 2\nt3 0 life.html#b 2\nt3 0 own.html#b 1\n",
        "qrels",
    )
    .unwrap();
    for mode in [Mode::Sparse, Mode::Dense, Mode::Hybrid(Fusion::Rrf { k: 60.0 })] {
        let rc = RetrieveConfig::new(mode, 10);
        let report = eval::evaluate_index(&index, model(), &topics, &qrels, &rc).unwrap();
        assert_eq!(report.per_topic.keys().collect::<Vec<_>>(), ["t1", "t2", "t3"], "{mode:?}");
        let (run, timings) = eval::run_index(&index, model(), &topics, &qrels, &rc, &mut |_, _| {}).unwrap();
        assert_eq!(timings.len(), 3);
        for t in &topics[..3] {
            // Each passage once, at its first (best) chunk, with that chunk's score.
            let hits = retrieve(&index, model(), &t.question, &rc).unwrap().hits;
            let mut want: Vec<(String, f64)> = Vec::new();
            for h in &hits {
                let p = &index.chunk(h.chunk).unwrap().passage;
                if !want.iter().any(|(q, _)| q == p) {
                    want.push((p.clone(), f64::from(h.score)));
                }
            }
            assert_eq!(run.rankings[&t.id], want, "{mode:?} {}", t.id);
            assert!(hits.len() > want.len(), "{mode:?} {}: some passage should come back twice", t.id);
        }
        // The words of t2 are in cargo.html#a only: BM25 ranks it first.
        if mode == Mode::Sparse {
            assert_eq!(report.per_topic["t2"]["recip_rank"], 1.0);
        }
        // The same run and qrels through pytrec_eval.
        let venv = kernels::cache::venv_python();
        if venv.exists() {
            let run_path = tmp.0.join("run.txt");
            let qrels_path = tmp.0.join("qrels.txt");
            run.write(&run_path, "t").unwrap();
            qrels.write(&qrels_path).unwrap();
            let script = "import json, sys, pytrec_eval\n\
                qrels, run = {}, {}\n\
                for l in open(sys.argv[1]):\n    t, _, d, g = l.split(); qrels.setdefault(t, {})[d] = int(g)\n\
                for l in open(sys.argv[2]):\n    t, _, d, _, s, _ = l.split(); run.setdefault(t, {})[d] = float(s)\n\
                m = {'ndcg_cut.10', 'recall.10', 'P.10', 'recip_rank', 'map'}\n\
                print(json.dumps(pytrec_eval.RelevanceEvaluator(qrels, m).evaluate(run)))\n";
            let out = std::process::Command::new(&venv)
                .arg("-c")
                .arg(script)
                .arg(&qrels_path)
                .arg(&run_path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
            let mean: BTreeMap<String, f64> = report.mean.clone();
            let want_mean: Value = serde_json::to_value(&mean).unwrap();
            check(&report, &theirs, &want_mean).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        }
    }
}
