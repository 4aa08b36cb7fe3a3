//! `cargo xtask bench rag [--quick]`: retrieval quality, stage latency and BM25 against `bm25s` for
//! `kernels::rag` on the judged Rust-documentation questions (`datasets/rust-docs-qa`).
//!
//! Runs `kernels/examples/rag_bench.rs` (release): the index (recursive chunker, ≤ 126 MiniLM tokens,
//! cached in `~/.cache/sovereign-ml/rag-index-*` by corpus hash and configuration), nDCG@k, recall@k, MRR
//! and MAP of BM25, dense, hybrid (RRF and weighted) and reranked retrieval with paired bootstrap
//! intervals against BM25, and per-stage latencies. Then the Python peer (`bm25s`, its default `lucene`
//! variant, k1 = 1.2 and b = 0.75 as tantivy uses, on the same tokens) answers the same questions in a
//! single-threaded loop, and a reference BM25 (tantivy's formula, Robertson & Zaragoza 2009, with the
//! document lengths quantised to tantivy's one-byte field norms, Lucene's `SmallFloat.intToByte4`) is
//! computed for every hit we returned: the score check.
//!
//! Writes `rag.json` (the record), `rag.md` (the tables) and, next to them or in `results/`, the plots
//! `rag-metric-by-k.svg` and `rag-latency.svg`. Full runs write the record to
//! `book/src/course4/c4w4/records/` and the plots to `book/src/course4/c4w4/results/`; quick runs
//! (40 questions, no SmolLM2 judge) write everything to `target/bench/rag/`. `--render-only` redraws the
//! table and plots from the `rag.json` in the records folder.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use serde_json::{Value, json};

use crate::plot::{Axis, Chart, Scale, Series, line_chart};

/// The peer, as one script run in the venv: reads the work dir the example wrote, prints JSON.
const PEER: &str = r#"
import json, math, re, sys, time
import numpy as np
import bm25s

work = sys.argv[1]
chunks = [json.loads(l) for l in open(f"{work}/chunks.jsonl", encoding="utf-8")]
ours = [json.loads(l) for l in open(f"{work}/bm25_ours.jsonl", encoding="utf-8")]
K1, B = 1.2, 0.75

# tantivy's default analyzer: split on characters that are not alphanumeric, drop tokens of 40 bytes or
# more, lower-case.
def tokens(text):
    return [t.lower() for t in re.findall(r"[^\W_]+", text) if len(t.encode("utf-8")) < 40]

doc_tokens = [tokens(c["text"]) for c in chunks]
same_terms = sum(1 for c, t in zip(chunks, doc_tokens) if sorted(set(t)) == sorted(set(c["terms"])))
ids = [c["id"] for c in chunks]
row_of = {cid: i for i, cid in enumerate(ids)}

# Lucene SmallFloat.intToByte4 / byte4ToInt: tantivy's FIELD_NORMS_TABLE.
def long_to_int4(i):
    n = i.bit_length()
    if n < 4:
        return i
    shift = n - 4
    return ((i >> shift) & 7) | ((shift + 1) << 3)
def int4_to_long(i):
    bits, shift = i & 7, (i >> 3) - 1
    return bits if shift == -1 else (bits | 8) << shift
FREE = 255 - long_to_int4(2**31 - 1)
TABLE = [b if b < FREE else min(FREE + int4_to_long(b - FREE), 2**31 - 1) for b in range(256)]
def quantised(n):
    lo, hi = 0, 255
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if TABLE[mid] <= n:
            lo = mid
        else:
            hi = mid - 1
    return TABLE[lo]

N = len(doc_tokens)
lengths = [len(t) for t in doc_tokens]
avgdl = sum(lengths) / N
df = {}
tfs = []
for t in doc_tokens:
    counts = {}
    for w in t:
        counts[w] = counts.get(w, 0) + 1
    tfs.append(counts)
    for w in counts:
        df[w] = df.get(w, 0) + 1
def bm25(q_terms, row, quantise):
    dl = quantised(lengths[row]) if quantise else lengths[row]
    s = 0.0
    for w in set(q_terms):
        tf = tfs[row].get(w, 0)
        if tf == 0:
            continue
        idf = math.log(1 + (N - df[w] + 0.5) / (df[w] + 0.5))
        s += idf * (K1 + 1) * tf / (tf + K1 * (1 - B + B * dl / avgdl))
    return s

rel_q, rel_x = [], []
for q in ours:
    for cid, score in q["hits"]:
        row = row_of[cid]
        rq, rx = bm25(q["terms"], row, True), bm25(q["terms"], row, False)
        rel_q.append(abs(score - rq) / rq)
        rel_x.append(abs(score - rx) / rx)

retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
t0 = time.perf_counter()
retriever.index(doc_tokens, show_progress=False)
index_s = time.perf_counter() - t0
queries = [tokens(q["question"]) for q in ours]
for q in queries[:3]:
    retriever.retrieve([q], k=10, n_threads=1, show_progress=False)
rounds = []
for _ in range(5):
    t0 = time.perf_counter()
    results = [retriever.retrieve([q], k=10, n_threads=1, show_progress=False) for q in queries]
    rounds.append(len(queries) / (time.perf_counter() - t0))
overlap, top1 = [], 0
for q, r in zip(ours, results):
    theirs = [ids[int(i)] for i in r.documents[0]]
    mine = [cid for cid, _ in q["hits"]]
    overlap.append(len(set(theirs) & set(mine)) / max(1, min(10, len(mine))))
    top1 += int(bool(mine) and theirs[0] == mine[0])
json.dump({
    "bm25s": bm25s.__version__, "numpy": np.__version__, "chunks": N, "queries": len(queries),
    "terms_agree": same_terms, "avgdl": avgdl,
    "index_seconds": index_s, "rounds_qps": rounds, "qps": float(np.median(rounds)),
    "hits_checked": len(rel_q),
    "max_rel_diff_quantised": max(rel_q) if rel_q else None,
    "median_rel_diff_quantised": float(np.median(rel_q)) if rel_q else None,
    "max_rel_diff_exact_lengths": max(rel_x) if rel_x else None,
    "median_rel_diff_exact_lengths": float(np.median(rel_x)) if rel_x else None,
    "mean_top10_overlap": float(np.mean(overlap)), "same_top1": top1,
}, sys.stdout)
"#;

pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>, render_only: bool) -> Result<()> {
    let (records, results) = match (&out, quick) {
        (Some(dir), _) => (dir.clone(), dir.clone()),
        (None, true) => {
            let d = ws.target_dir().join("bench").join("rag");
            (d.clone(), d)
        }
        (None, false) => (ws.root.join("book/src/course4/c4w4/records"), ws.root.join("book/src/course4/c4w4/results")),
    };
    std::fs::create_dir_all(&records)?;
    std::fs::create_dir_all(&results)?;
    if render_only {
        let record: Value = serde_json::from_slice(
            &std::fs::read(records.join("rag.json")).with_context(|| format!("{}/rag.json", records.display()))?,
        )?;
        return render(&record, &records, &results);
    }
    let questions = ws.root.join("datasets/rust-docs-qa");
    let has_questions = std::fs::read_dir(&questions).into_iter().flatten().flatten().any(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n.starts_with("questions-") && n.ends_with(".jsonl")
    });
    if !has_questions {
        bail!(
            "no judged questions in {} (questions-*.jsonl with qrels-*.txt): nothing to evaluate",
            questions.display()
        );
    }
    let Some(python) = ws.peer_python() else {
        bail!("the peers' venv is missing (bm25s and the reference BM25 run in it): run `cargo xtask peers`")
    };
    let example = crate::bench::build_kernels_example(ws, "rag_bench", "rag")?;
    let work = ws.target_dir().join("bench").join("rag-work");
    std::fs::create_dir_all(&work)?;

    eprintln!("running rag_bench (progress below)…");
    let mut cmd = Command::new(&example);
    cmd.arg(&questions).arg(&work);
    if quick {
        cmd.arg("--quick");
    }
    let output = cmd.stderr(Stdio::inherit()).output().context("running rag_bench")?;
    if !output.status.success() {
        bail!("rag_bench failed ({})", output.status);
    }
    let ours: Value = serde_json::from_slice(&output.stdout).context("reading rag_bench's JSON")?;

    eprintln!("running bm25s and the reference BM25 on the same chunks…");
    let peer = Command::new(&python).arg("-c").arg(PEER).arg(&work).output().context("running the bm25s peer")?;
    if !peer.status.success() {
        bail!("the bm25s peer failed (run `cargo xtask peers`?):\n{}", String::from_utf8_lossy(&peer.stderr));
    }
    let peer: Value = serde_json::from_slice(&peer.stdout).context("reading the peer's JSON")?;

    let machine = crate::bench::machine();
    let rev = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&ws.root)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let ratio = ours["bm25_loop"]["qps"].as_f64().unwrap_or(f64::NAN) / peer["qps"].as_f64().unwrap_or(f64::NAN);
    let record = json!({
        "quick": quick, "git_rev": rev, "machine": machine, "lscpu": lscpu(),
        "kernels": ours, "bm25s": peer, "bm25_qps_ratio_ours_to_bm25s": ratio,
    });
    std::fs::write(records.join("rag.json"), serde_json::to_string_pretty(&record)?)?;
    render(&record, &records, &results)
}

/// Writes the table (`rag.md`) and the plots of a record.
fn render(record: &Value, records: &std::path::Path, results: &std::path::Path) -> Result<()> {
    let ours = &record["kernels"];
    let table = table(record);
    std::fs::write(records.join("rag.md"), &table)?;
    let caption = format!(
        "{} topics of rust-docs-qa · {}",
        ours["evaluated_topics"],
        crate::bench::describe_machine(&record["machine"])
    );
    std::fs::write(results.join("rag-metric-by-k.svg"), metric_by_k(ours, &caption))?;
    std::fs::write(results.join("rag-latency.svg"), latency_chart(ours, &caption))?;
    println!("{table}");
    println!("written to {} and {}", records.display(), results.display());
    Ok(())
}

/// `lscpu`'s model and cache lines, when it runs.
fn lscpu() -> Value {
    let Ok(out) = Command::new("lscpu").output() else { return Value::Null };
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["Model name", "L1d", "L2", "L3", "CPU(s)", "Thread(s)"].iter().any(|k| l.trim_start().starts_with(k))
        })
        .collect();
    json!(lines.iter().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>())
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// The Markdown tables of a record.
fn table(r: &Value) -> String {
    let k = &r["kernels"];
    let p = &r["bm25s"];
    let build = &k["index"]["build"];
    let mut t = format!(
        "rust-docs-qa: {} questions, {} answerable evaluated{}; {} documents, {} chunks (recursive, ≤ 126 MiniLM \
         tokens); {} ({}). git {}.\n\n",
        k["questions"],
        k["evaluated_topics"],
        if r["quick"] == json!(true) { " (quick)" } else { "" },
        k["documents"],
        k["chunks"],
        r["machine"]["cpu"].as_str().unwrap_or("unknown CPU"),
        crate::bench::describe_machine(&r["machine"]),
        r["git_rev"].as_str().unwrap_or("?"),
    );
    t += "| method | nDCG@10 | Δ nDCG@10 vs BM25 (95% CI) | recall@10 | Δ recall@10 (95% CI) | MRR | Δ MRR (95% CI) | MAP |\n";
    t += "|---|---|---|---|---|---|---|---|\n";
    let delta = |method: &str, measure: &str| -> String {
        let c = k["comparisons"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["method"] == json!(method) && c["comparison"]["measure"] == json!(measure));
        match c {
            Some(c) => {
                let i = &c["comparison"]["interval"];
                format!(
                    "{:+.3} \\[{:+.3}, {:+.3}\\] p={:.3}",
                    f(&i["mean_diff"]),
                    f(&i["low"]),
                    f(&i["high"]),
                    f(&c["comparison"]["p_value"])
                )
            }
            None => "–".into(),
        }
    };
    for m in k["methods"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or("?");
        let mean = &m["mean"];
        t += &format!(
            "| {name} | {:.3} | {} | {:.3} | {} | {:.3} | {} | {:.3} |\n",
            f(&mean["ndcg_cut_10"]),
            delta(name, "ndcg_cut_10"),
            f(&mean["recall_10"]),
            delta(name, "recall_10"),
            f(&mean["recip_rank"]),
            delta(name, "recip_rank"),
            f(&mean["map"]),
        );
    }
    let llm = &k["llm_judge"];
    if llm.is_object() {
        t += &format!(
            "\nSmolLM2-135M judge ({}) on the hybrid-RRF top-20, first {} topics: nDCG@10 {:.3} \
             (hybrid-RRF top-20 {:.3}, BM25 top-20 {:.3}); MRR {:.3} ({:.3}, {:.3}); rerank p50 {:.0} ms, p99 {:.0} ms \
             per query.\n",
            llm["scoring"].as_str().unwrap_or("yes/no log-odds"),
            llm["topics"],
            f(&llm["mean"]["ndcg_cut_10"]),
            f(&llm["hybrid_mean"]["ndcg_cut_10"]),
            f(&llm["bm25_mean"]["ndcg_cut_10"]),
            f(&llm["mean"]["recip_rank"]),
            f(&llm["hybrid_mean"]["recip_rank"]),
            f(&llm["bm25_mean"]["recip_rank"]),
            f(&llm["latency_ms"]["rerank"]["p50"]),
            f(&llm["latency_ms"]["rerank"]["p99"]),
        );
    }
    t += "\nLatency per query and stage, ms (p50 / p99):\n\n| method | embed | sparse | dense | fuse | rerank | total |\n|---|---|---|---|---|---|---|\n";
    for m in k["methods"].as_array().into_iter().flatten() {
        let l = &m["latency_ms"];
        let cell = |s: &str| format!("{:.2} / {:.2}", f(&l[s]["p50"]), f(&l[s]["p99"]));
        t += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            m["name"].as_str().unwrap_or("?"),
            cell("embed"),
            cell("sparse"),
            cell("dense"),
            cell("fuse"),
            cell("rerank"),
            cell("total")
        );
    }
    t += &format!(
        "\nIndexing: {:.1} chunks/s ({} chunks in {:.0} s, {} threads{}).\n",
        f(&build["chunks_per_second"]),
        build["chunks"],
        f(&build["seconds"]),
        build["threads"],
        if k["index"]["reused"] == json!(true) { "; measured when the cached index was built" } else { "" },
    );
    t += &format!(
        "\nBM25, single-threaded loop over {} questions, top 10{}: kernels (tantivy) {:.0} queries/s, bm25s {} ({}, \
         numpy, same tokens) {:.0} queries/s: **{:.2}×**. Score check on {} returned hits: max relative \
         difference {:.2e} to the reference formula with tantivy's one-byte quantised lengths (median {:.2e}); \
         {:.2e} to exact-length BM25 (median {:.2e}). Top-10 overlap with bm25s {:.1}%, same top hit on {} of {} \
         questions; tokenisation: {} of {} chunks give the same distinct terms in Python as tantivy's analyzer.\n",
        p["queries"],
        if k["bm25_loop"]["rounds_qps"].is_array() { ", median of 5 rounds" } else { ", one round" },
        f(&k["bm25_loop"]["qps"]),
        p["bm25s"].as_str().unwrap_or("?"),
        "lucene, k1 = 1.2, b = 0.75",
        f(&p["qps"]),
        f(&r["bm25_qps_ratio_ours_to_bm25s"]),
        p["hits_checked"],
        f(&p["max_rel_diff_quantised"]),
        f(&p["median_rel_diff_quantised"]),
        f(&p["max_rel_diff_exact_lengths"]),
        f(&p["median_rel_diff_exact_lengths"]),
        100.0 * f(&p["mean_top10_overlap"]),
        p["same_top1"],
        p["queries"],
        p["terms_agree"],
        p["chunks"],
    );
    t
}

/// nDCG@k and recall@k against k, one line per method and measure.
fn metric_by_k(k: &Value, caption: &str) -> String {
    let cutoffs: Vec<u64> = k["cutoffs"].as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
    let mut series = Vec::new();
    for (measure, label) in [("ndcg_cut", "nDCG"), ("recall", "recall")] {
        for m in k["methods"].as_array().into_iter().flatten() {
            let points = cutoffs
                .iter()
                .map(|&c| (c as f64, f(&m["mean"][format!("{measure}_{c}")])))
                .filter(|p| p.1.is_finite());
            series.push(Series {
                name: format!("{label} {}", m["name"].as_str().unwrap_or("?")),
                points: points.collect(),
            });
        }
    }
    let chart = Chart {
        title: "kernels::rag retrieval on rust-docs-qa: nDCG@k and recall@k",
        x: Axis { label: "cutoff k", unit: "", scale: Scale::LogIfPositive },
        y: Axis { label: "mean over topics", unit: "", scale: Scale::Linear },
        caption,
    };
    line_chart(&chart, &series)
}

/// Stacked horizontal bars: each method's median time per stage (ms), log-free so the stages add up.
fn latency_chart(k: &Value, caption: &str) -> String {
    const STAGES: [(&str, &str); 5] =
        [("embed", "#1f77b4"), ("sparse", "#d62728"), ("dense", "#2ca02c"), ("fuse", "#ff7f0e"), ("rerank", "#9467bd")];
    let methods: Vec<&Value> = k["methods"].as_array().into_iter().flatten().collect();
    let total = |m: &Value| STAGES.iter().map(|(s, _)| f(&m["latency_ms"][*s]["p50"]).max(0.0)).sum::<f64>();
    let max = methods.iter().map(|m| total(m)).fold(0.0f64, f64::max).max(1e-9);
    let (left, top, bar_h, gap, width) = (150.0, 50.0, 26.0, 14.0, 520.0);
    let height = top + methods.len() as f64 * (bar_h + gap) + 110.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"sans-serif\" \
         font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{cx}\" y=\"24\" \
         text-anchor=\"middle\" font-size=\"15\">kernels::rag: median time per query and stage (ms)</text>\n",
        w = left + width + 40.0,
        cx = (left + width + 40.0) / 2.0
    );
    for (i, m) in methods.iter().enumerate() {
        let y = top + i as f64 * (bar_h + gap);
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            left - 8.0,
            y + bar_h / 2.0 + 4.0,
            m["name"].as_str().unwrap_or("?")
        );
        let mut x = left;
        for (stage, colour) in STAGES {
            let v = f(&m["latency_ms"][stage]["p50"]).max(0.0);
            let w = v / max * width;
            if w > 0.0 {
                svg += &format!(
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar_h}\" fill=\"{colour}\"><title>{stage} \
                     {v:.2} ms</title></rect>\n"
                );
            }
            x += w;
        }
        svg += &format!("<text x=\"{:.1}\" y=\"{:.1}\">{:.1}</text>\n", x + 4.0, y + bar_h / 2.0 + 4.0, total(m));
    }
    let axis_y = top + methods.len() as f64 * (bar_h + gap);
    svg += &format!("<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"black\"/>\n", left + width);
    for i in 0..=4 {
        let v = max * i as f64 / 4.0;
        let x = left + width * i as f64 / 4.0;
        svg += &format!(
            "<line x1=\"{x:.1}\" y1=\"{axis_y}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"black\"/><text x=\"{x:.1}\" \
             y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            axis_y + 5.0,
            axis_y + 18.0,
            crate::plot::tick_label(v)
        );
    }
    let legend_y = axis_y + 40.0;
    for (i, (stage, colour)) in STAGES.iter().enumerate() {
        let x = left + i as f64 * 100.0;
        svg += &format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{stage}</text>\n",
            legend_y - 10.0,
            x + 16.0,
            legend_y
        );
    }
    svg += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555\">{}</text>\n</svg>\n",
        (left + width + 40.0) / 2.0,
        legend_y + 30.0,
        xml_escape(caption)
    );
    svg
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
