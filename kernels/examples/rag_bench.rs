//! The measuring half of `cargo xtask bench rag`: retrieval quality and latency of `kernels::rag` on the
//! judged Rust-documentation questions (`datasets/rust-docs-qa`), printed as one JSON document.
//!
//! Usage: `rag_bench <questions dir> <work dir> [--quick] [--llm-topics N]`
//!
//! 1. Loads the four collections (`kernels::rag::load::rust_docs`), builds the hybrid index with the
//!    recursive chunker at ≤ 126 MiniLM tokens, or reuses the one in
//!    `~/.cache/sovereign-ml/rag-index-<BLAKE3 of the corpus, the chunker and the model>` (the build's
//!    chunks/s are stored next to it in `build.json`).
//! 2. Evaluates BM25, dense, hybrid RRF (k = 60), hybrid weighted (0.5) and MiniLM-window reranking of
//!    the hybrid top-50 (and the SmolLM2 judge on the hybrid top-20 for the first `--llm-topics` topics)
//!    with `kernels::rag::eval` (trec_eval's measures), on the answerable topics (at least one passage
//!    graded ≥ 1); paired bootstrap intervals (B = 10,000) and randomisation p-values against BM25.
//! 3. Times each query's stages (`StageTimings`; the reranker's call is the rerank stage).
//! 4. For the BM25 peer comparison, writes `chunks.jsonl` (id, text, tantivy's distinct terms) and
//!    `bm25_ours.jsonl` (each query's top 10 with scores) to the work dir, after timing a single-threaded
//!    loop of `RagIndex::sparse_search(query, 10)` over all questions (five rounds, the median counts).
//!
//! Progress bars go to stderr, the JSON to stdout.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use kernels::llm::LlamaModel;
use kernels::nn::bert::BertModel;
use kernels::rag::chunk::ChunkerConfig;
use kernels::rag::eval::{self, BootstrapConfig, EvalReport, Measure, Qrels, Run, Topic};
use kernels::rag::index::{IndexConfig, RagIndex};
use kernels::rag::rerank::{JudgeScoring, LlmJudge, MiniLmWindows, Reranker};
use kernels::rag::retrieve::{Fusion, Mode, RetrieveConfig, retrieve};
use kernels::rag::{Embedder, StageTimings};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

const MAX_TOKENS: usize = 126;
const DEPTH: usize = 50;
const CUTOFFS: [usize; 6] = [1, 3, 5, 10, 20, 50];
const BM25_ROUNDS: usize = 5;

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>22} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

fn measures() -> Vec<Measure> {
    let mut m = vec![Measure::RecipRank, Measure::Map, Measure::P(5), Measure::P(10)];
    for k in CUTOFFS {
        m.push(Measure::NdcgCut(k));
        m.push(Measure::Recall(k));
    }
    m
}

/// Every `questions-*.jsonl` with its `qrels-*.txt` in `dir`, merged (a topic id in two files is an error).
fn judged_set(dir: &Path) -> Result<(Vec<Topic>, Qrels, Vec<String>), Error> {
    let mut topics = Vec::new();
    let mut qrels = Qrels::default();
    let mut files = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("questions-") && n.ends_with(".jsonl"))
        })
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(format!("no questions-*.jsonl in {}: the judged set has not landed", dir.display()).into());
    }
    for q in names {
        let half = q
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .trim_start_matches("questions-")
            .trim_end_matches(".jsonl")
            .to_string();
        let qrels_path = dir.join(format!("qrels-{half}.txt"));
        let part = eval::read_qrels(&qrels_path)?;
        for t in eval::read_topics(&q)? {
            if topics.iter().any(|x: &Topic| x.id == t.id) {
                return Err(format!("topic {} appears in two question files", t.id).into());
            }
            topics.push(t);
        }
        for (t, j) in part.judgements {
            if qrels.judgements.insert(t.clone(), j).is_some() {
                return Err(format!("topic {t} is judged in two qrels files").into());
            }
        }
        files.push(format!("{}", q.display()));
        files.push(format!("{}", qrels_path.display()));
    }
    Ok((topics, qrels, files))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentiles(mut xs: Vec<f64>) -> Value {
    xs.sort_by(f64::total_cmp);
    json!({"p50": eval::quantile_sorted(&xs, 0.5), "p99": eval::quantile_sorted(&xs, 0.99),
           "mean": xs.iter().sum::<f64>() / xs.len().max(1) as f64, "n": xs.len()})
}

fn latency(timings: &[StageTimings]) -> Value {
    let stage = |f: &dyn Fn(&StageTimings) -> Duration| percentiles(timings.iter().map(|t| ms(f(t))).collect());
    json!({
        "embed": stage(&|t| t.embed), "sparse": stage(&|t| t.sparse), "dense": stage(&|t| t.dense),
        "fuse": stage(&|t| t.fuse), "rerank": stage(&|t| t.rerank),
        "total": stage(&|t| t.embed + t.sparse + t.dense + t.fuse + t.rerank),
    })
}

/// Retrieves (and reranks) every topic; passages keep their best chunk's rank.
fn run_method(
    index: &RagIndex,
    model: &BertModel,
    topics: &[&Topic],
    config: &RetrieveConfig,
    reranker: Option<&dyn Reranker>,
    name: &str,
) -> Result<(Run, Vec<StageTimings>), Error> {
    let pb = bar(topics.len(), name);
    let began = Instant::now();
    let mut run = Run::default();
    let mut timings = Vec::new();
    for t in topics {
        let mut r = retrieve(index, model, &t.question, config)?;
        if let Some(rr) = reranker {
            let start = Instant::now();
            rr.rerank(index, &t.question, &mut r.hits)?;
            r.timings.rerank = start.elapsed();
        }
        // Rank-based scores keep the system's own order (ties in fused scores would otherwise be
        // re-broken by passage id, as trec_eval breaks them).
        let hits: Vec<(u32, f64)> = r.hits.iter().enumerate().map(|(i, h)| (h.chunk, -(i as f64))).collect();
        run.rankings.insert(t.id.clone(), eval::passages_of(index, &hits)?);
        timings.push(r.timings);
        pb.inc(1);
    }
    pb.finish_and_clear();
    eprintln!("{name}: {} topics in {:.1} s", topics.len(), began.elapsed().as_secs_f64());
    Ok((run, timings))
}

/// BLAKE3 of every document (id and text), the chunker and the model fingerprint: the cache folder's key.
fn corpus_key(docs: &[kernels::rag::Document], chunker: &ChunkerConfig, fingerprint: &str) -> String {
    let mut h = blake3::Hasher::new();
    for d in docs {
        h.update(&(d.id.len() as u64).to_le_bytes());
        h.update(d.id.as_bytes());
        h.update(&(d.text.len() as u64).to_le_bytes());
        h.update(d.text.as_bytes());
    }
    h.update(format!("{chunker:?}|{fingerprint}|{}", kernels::rag::index::FORMAT_VERSION).as_bytes());
    h.finalize().to_hex().to_string()
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, questions_dir, work_dir, rest @ ..] = &args[..] else {
        return Err("usage: rag_bench <questions dir> <work dir> [--quick] [--llm-topics N]".into());
    };
    let quick = rest.iter().any(|a| a == "--quick");
    let llm_topics: usize = rest
        .iter()
        .position(|a| a == "--llm-topics")
        .and_then(|i| rest.get(i + 1))
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(if quick { 0 } else { 40 });
    let work = PathBuf::from(work_dir);
    std::fs::create_dir_all(&work)?;

    let (topics, qrels, judged_files) = judged_set(Path::new(questions_dir))?;
    let model_path = datasets::models::file_path("all-minilm-l6-v2", "model.safetensors")?;
    let model = BertModel::load(model_path.parent().ok_or("model path")?)?;

    eprintln!("loading the Rust documentation…");
    let t = Instant::now();
    let docs = kernels::rag::load::rust_docs(&[])?;
    let load_s = t.elapsed().as_secs_f64();
    let chunker = ChunkerConfig::Recursive { max_tokens: MAX_TOKENS };
    let fingerprint = model.fingerprint();
    let key = corpus_key(&docs, &chunker, &fingerprint);
    let cache = kernels::cache::cache_dir().join(format!("rag-index-{}", &key[..16]));
    let build_record = cache.join("build.json");
    let (index, build) = match RagIndex::open(&cache.join("index"), &model) {
        Ok(index) if build_record.exists() => {
            eprintln!("reusing the index in {}", cache.display());
            let build: Value = serde_json::from_slice(&std::fs::read(&build_record)?)?;
            (index, json!({"reused": true, "dir": cache, "build": build}))
        }
        _ => {
            let tmp = kernels::cache::cache_dir().join(format!("rag-index-{}.tmp-{}", &key[..16], std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp)?;
            let mut index = RagIndex::create(&tmp.join("index"), &model, IndexConfig::new(chunker.clone()))?;
            let pb = bar(0, "indexing chunks");
            let start = Instant::now();
            let quiet = !std::io::stderr().is_terminal();
            let mut next_line = 0;
            let report = index.add_documents(&docs, &model, &mut |done, total| {
                pb.set_length(total as u64);
                pb.set_position(done as u64);
                // Without a terminal the bar is hidden: a line per 10%.
                if quiet && done >= next_line {
                    eprintln!("indexing: {done}/{total} chunks, {:.0} s", start.elapsed().as_secs_f64());
                    next_line = done + total.div_ceil(10).max(1);
                }
            })?;
            index.commit()?;
            let seconds = start.elapsed().as_secs_f64();
            pb.finish_and_clear();
            let build = json!({
                "documents": report.documents, "chunks": report.chunks, "seconds": seconds,
                "chunks_per_second": report.chunks as f64 / seconds,
                "threads": rayon::current_num_threads(), "chunker": format!("{chunker:?}"), "model": fingerprint,
            });
            std::fs::write(tmp.join("build.json"), serde_json::to_vec_pretty(&build)?)?;
            drop(index);
            let _ = std::fs::remove_dir_all(&cache);
            std::fs::rename(&tmp, &cache)?;
            let index = RagIndex::open(&cache.join("index"), &model)?;
            (index, json!({"reused": false, "dir": cache, "build": build}))
        }
    };

    // Answerable topics: at least one passage graded >= 1.
    let mut answerable: Vec<&Topic> = topics.iter().filter(|t| !qrels.relevant(&t.id).is_empty()).collect();
    if quick {
        answerable.truncate(40);
    }
    eprintln!("{} questions, {} answerable evaluated; {} chunks", topics.len(), answerable.len(), index.len());

    // Warm up (page cache, HNSW, the tokenizer).
    for t in answerable.iter().take(3) {
        retrieve(&index, &model, &t.question, &RetrieveConfig::new(Mode::Hybrid(Fusion::Rrf { k: 60.0 }), 10))?;
    }

    let measures = measures();
    let minilm = MiniLmWindows::new(&model);
    let hybrid = Mode::Hybrid(Fusion::Rrf { k: 60.0 });
    let plans: Vec<(&str, RetrieveConfig, Option<&dyn Reranker>)> = vec![
        ("bm25", RetrieveConfig::new(Mode::Sparse, DEPTH), None),
        ("dense", RetrieveConfig::new(Mode::Dense, DEPTH), None),
        ("hybrid-rrf", RetrieveConfig::new(hybrid, DEPTH), None),
        ("hybrid-weighted", RetrieveConfig::new(Mode::Hybrid(Fusion::Weighted { dense_weight: 0.5 }), DEPTH), None),
        ("rerank-minilm", RetrieveConfig::new(hybrid, DEPTH), Some(&minilm)),
    ];
    let mut reports: BTreeMap<String, EvalReport> = BTreeMap::new();
    let mut methods = Vec::new();
    for (name, config, reranker) in &plans {
        let (run, timings) = run_method(&index, &model, &answerable, config, *reranker, name)?;
        run.write(&work.join(format!("run-{name}.txt")), name)?;
        let report = eval::evaluate(&run, &qrels, &measures)?;
        methods.push(json!({"name": name, "config": config, "reranker": reranker.map(|r| r.name()),
                            "mean": report.mean, "latency_ms": latency(&timings)}));
        reports.insert(name.to_string(), report);
    }

    // The SmolLM2 judge on the hybrid top-20, for the first `llm_topics` topics (it is slow on 2 cores).
    let mut llm = Value::Null;
    if llm_topics > 0 {
        let subset: Vec<&Topic> = answerable.iter().take(llm_topics).copied().collect();
        let path = datasets::models::file_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")?;
        let judge_model = LlamaModel::load(&path)?;
        // Query likelihood: the yes/no judge is near chance on a 135M model (recorded earlier at 0.69x the
        // hybrid top-20's nDCG@10); the question's likelihood given the passage is the judge worth timing.
        let judge = LlmJudge::new(&judge_model)?;
        debug_assert_eq!(judge.scoring, JudgeScoring::QueryLikelihood);
        let (run_llm, timings) =
            run_method(&index, &model, &subset, &RetrieveConfig::new(hybrid, 20), Some(&judge), "rerank-llm")?;
        let (run_h20, _) =
            run_method(&index, &model, &subset, &RetrieveConfig::new(hybrid, 20), None, "hybrid-rrf@20")?;
        let (run_bm, _) = run_method(&index, &model, &subset, &RetrieveConfig::new(Mode::Sparse, 20), None, "bm25@20")?;
        let r_llm = eval::evaluate(&run_llm, &qrels, &measures)?;
        let r_h20 = eval::evaluate(&run_h20, &qrels, &measures)?;
        let r_bm = eval::evaluate(&run_bm, &qrels, &measures)?;
        let mut comparisons = Vec::new();
        for m in ["ndcg_cut_10", "recall_10", "recip_rank"] {
            comparisons.push(
                json!({"against": "bm25@20", "c": eval::compare(&r_llm, &r_bm, m, &BootstrapConfig::default())?}),
            );
            comparisons.push(json!({"against": "hybrid-rrf@20", "c": eval::compare(&r_llm, &r_h20, m, &BootstrapConfig::default())?}));
        }
        llm = json!({"topics": subset.len(), "depth": 20, "scoring": "query likelihood", "mean": r_llm.mean, "hybrid_mean": r_h20.mean,
                     "bm25_mean": r_bm.mean, "latency_ms": latency(&timings), "comparisons": comparisons});
    }

    let mut comparisons = Vec::new();
    let base = &reports["bm25"];
    for (name, report) in &reports {
        if name == "bm25" {
            continue;
        }
        for m in ["ndcg_cut_10", "recall_10", "recip_rank", "map"] {
            comparisons.push(json!({"method": name, "against": "bm25",
                                    "comparison": eval::compare(report, base, m, &BootstrapConfig::default())?}));
        }
    }

    // BM25 against bm25s: our single-threaded query loop, and the data the Python side needs.
    let all_questions: Vec<&Topic> = topics.iter().collect();
    let mut ours = std::io::BufWriter::new(std::fs::File::create(work.join("bm25_ours.jsonl"))?);
    // Five rounds over all questions (one round takes a fraction of a second); the median round counts.
    let mut top10 = Vec::new();
    let mut round_qps = Vec::new();
    for _ in 0..BM25_ROUNDS {
        top10.clear();
        let start = Instant::now();
        for t in &all_questions {
            top10.push(index.sparse_search(&t.question, 10)?);
        }
        round_qps.push(all_questions.len() as f64 / start.elapsed().as_secs_f64());
    }
    let mut sorted_qps = round_qps.clone();
    sorted_qps.sort_by(f64::total_cmp);
    let median_qps = eval::quantile_sorted(&sorted_qps, 0.5);
    for (t, hits) in all_questions.iter().zip(&top10) {
        writeln!(
            ours,
            "{}",
            json!({"id": t.id, "question": t.question, "terms": index.query_terms(&t.question), "hits": hits})
        )?;
    }
    ours.flush()?;
    let mut chunks = std::io::BufWriter::new(std::fs::File::create(work.join("chunks.jsonl"))?);
    for (id, c) in index.chunks() {
        writeln!(chunks, "{}", json!({"id": id, "text": c.text, "terms": index.query_terms(&c.text)}))?;
    }
    chunks.flush()?;

    let out = json!({
        "quick": quick,
        "judged_files": judged_files,
        "questions": topics.len(),
        "evaluated_topics": answerable.len(),
        "documents": docs.len(),
        "chunks": index.len(),
        "load_seconds": load_s,
        "index": build,
        "depth": DEPTH,
        "measures": measures.iter().map(Measure::name).collect::<Vec<_>>(),
        "cutoffs": CUTOFFS,
        "methods": methods,
        "comparisons": comparisons,
        "llm_judge": llm,
        "bm25_loop": {"queries": all_questions.len(), "rounds_qps": round_qps, "qps": median_qps, "k": 10, "threads": 1},
        "rayon_threads": rayon::current_num_threads(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
