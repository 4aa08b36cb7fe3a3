//! `sovereign rag`: build a hybrid index over a folder of documents, query it with a cited answer from
//! SmolLM2, and evaluate its retrieval against relevance judgements (`kernels::rag`).
//!
//! ```text
//! sovereign rag index --input docs/ --out idx/ [--chunker recursive --max-tokens 200 --overlap 32]
//! sovereign rag query --index idx/ [--k 5 --mode hybrid-rrf --rerank none --json --no-answer] "question"
//! sovereign rag eval  --index idx/ --topics topics.jsonl --qrels qrels.txt [--mode dense --json]
//! ```
//!
//! `index` on a folder that already holds an index updates it: documents whose text changed are
//! re-chunked, unchanged ones are left, and documents no longer under `--input` are deleted (the
//! index mirrors the folder). An index built with another embedding model is refused with the
//! library's `RagIndexMismatch` message.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use kernels::nn::bert::BertModel;
use kernels::rag::answer::{self, AnswerConfig, AnswerModel, millis};
use kernels::rag::chunk::ChunkerConfig;
use kernels::rag::index::{IndexConfig, RagIndex};
use kernels::rag::load::{LoadConfig, load_dir};
use kernels::rag::pack::{PackConfig, PackOrder, budget_for, pack};
use kernels::rag::rerank::{LlmJudge, MiniLmWindows, Reranker};
use kernels::rag::retrieve::{Fusion, Hit, Mode, RetrieveConfig, retrieve};
use kernels::rag::{StageTimings, eval};
use serde_json::{Value, json};

use crate::{DEMO_CHAT, DEMO_EMBEDDING, print_json};

/// Candidates a reranker sees (the best `--k` of them are kept).
const RERANK_DEPTH: usize = 20;

/// `sovereign rag …`
#[derive(Subcommand)]
pub enum RagCommand {
    /// Load, chunk, embed and index a folder of Markdown, HTML and text files (or update an index).
    Index(IndexArgs),
    /// Retrieve the best chunks for a question and answer it with citations.
    Query(QueryArgs),
    /// Evaluate retrieval against judged topics (recall@k, P@k, MRR, nDCG@10, MAP).
    Eval(EvalArgs),
}

/// The chunkers.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum ChunkerArg {
    /// Windows of `--max-tokens` tokens overlapping by `--overlap`.
    Fixed,
    /// Whole sentences up to `--max-tokens`.
    Sentences,
    /// Headings, then blocks, then sentences, until each piece fits `--max-tokens`.
    Recursive,
    /// Sentences grouped until MiniLM similarity of neighbours drops below `--threshold`.
    Semantic,
}

/// The retrievers.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum ModeArg {
    Sparse,
    Dense,
    HybridRrf,
    HybridWeighted,
}

impl ModeArg {
    fn mode(self) -> Mode {
        match self {
            ModeArg::Sparse => Mode::Sparse,
            ModeArg::Dense => Mode::Dense,
            ModeArg::HybridRrf => Mode::Hybrid(Fusion::Rrf { k: 60.0 }),
            ModeArg::HybridWeighted => Mode::Hybrid(Fusion::Weighted { dense_weight: 0.5 }),
        }
    }
}

/// The rerankers.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum RerankArg {
    None,
    /// MiniLM full-precision rescoring.
    Minilm,
    /// SmolLM2 as a relevance judge (query likelihood: how likely the question is given the passage).
    Llm,
}

/// The orderings of packed chunks.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum OrderArg {
    Score,
    Source,
    LostInTheMiddle,
}

#[derive(Args)]
pub struct ModelDirArg {
    /// The MiniLM sentence-encoder folder (default: the one `cargo xtask models` fetched).
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

impl ModelDirArg {
    fn load(&self) -> Result<BertModel> {
        let dir = self.model_dir.clone().unwrap_or_else(|| kernels::cache::model_file(DEMO_EMBEDDING, ""));
        BertModel::load(&dir).with_context(|| format!("loading the embedding model from {}", dir.display()))
    }
}

#[derive(Args)]
pub struct IndexArgs {
    /// The folder of documents.
    #[arg(long)]
    input: PathBuf,
    /// The index folder (created, or updated when it holds an index).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "recursive")]
    chunker: ChunkerArg,
    /// Chunk size limit in the embedder's tokens.
    #[arg(long, default_value_t = 200)]
    max_tokens: usize,
    /// Tokens shared by consecutive windows (fixed chunker).
    #[arg(long, default_value_t = 32)]
    overlap: usize,
    /// Similarity drop threshold (semantic chunker).
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    #[command(flatten)]
    model: ModelDirArg,
    /// Print the counts as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RetrieveArgs {
    /// The index folder.
    #[arg(long)]
    index: PathBuf,
    #[arg(long, value_enum, default_value = "hybrid-rrf")]
    mode: ModeArg,
    /// Hits retrieved.
    #[arg(long, default_value_t = 5)]
    k: usize,
    #[command(flatten)]
    model: ModelDirArg,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct QueryArgs {
    #[command(flatten)]
    retrieve: RetrieveArgs,
    #[arg(long, value_enum, default_value = "none")]
    rerank: RerankArg,
    /// Only retrieve: no packing, no generation.
    #[arg(long)]
    no_answer: bool,
    /// The chat model answering (default: SmolLM2-135M-Instruct from `cargo xtask models`).
    #[arg(long)]
    chat_model: Option<PathBuf>,
    /// Tokens the answer may take.
    #[arg(long, default_value_t = 160)]
    answer_tokens: usize,
    /// Context the generator works in (capped at the model's); the sources get what the prompt and the
    /// answer leave.
    #[arg(long, default_value_t = 2048)]
    context: usize,
    #[arg(long, value_enum, default_value = "lost-in-the-middle")]
    order: OrderArg,
    /// Refuse when the best chunk's MiniLM cosine with the question is below this.
    #[arg(long, default_value_t = answer::DEFAULT_MIN_SCORE)]
    min_score: f32,
    /// Generate without the citation grammar.
    #[arg(long)]
    unconstrained: bool,
    /// The question.
    question: String,
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    retrieve: RetrieveArgs,
    /// Topics, one JSON object a line: {"id", "question", "answer"?}.
    #[arg(long)]
    topics: PathBuf,
    /// TREC qrels: `topic 0 passage grade` a line.
    #[arg(long)]
    qrels: PathBuf,
}

/// Runs `sovereign rag …`.
pub fn run(command: RagCommand) -> Result<()> {
    match command {
        RagCommand::Index(args) => index(args),
        RagCommand::Query(args) => query(args),
        RagCommand::Eval(args) => evaluate(args),
    }
}

fn index(args: IndexArgs) -> Result<()> {
    if !args.input.is_dir() {
        bail!("--input {}: no such folder", args.input.display());
    }
    let chunker = match args.chunker {
        ChunkerArg::Fixed => ChunkerConfig::FixedTokens { size: args.max_tokens, overlap: args.overlap },
        ChunkerArg::Sentences => ChunkerConfig::Sentences { max_tokens: args.max_tokens },
        ChunkerArg::Recursive => ChunkerConfig::Recursive { max_tokens: args.max_tokens },
        ChunkerArg::Semantic => ChunkerConfig::Semantic { max_tokens: args.max_tokens, threshold: args.threshold },
    };
    let started = Instant::now();
    let spinner = crate::spinner(format!("loading {}", args.input.display()));
    let docs =
        load_dir(&args.input, &LoadConfig::default()).with_context(|| format!("loading {}", args.input.display()));
    spinner.finish_and_clear();
    let docs = docs?;
    if docs.is_empty() {
        bail!(
            "--input {}: no documents (looked for {} files)",
            args.input.display(),
            LoadConfig::default().extensions.join(", ")
        );
    }
    let embedder = args.model.load()?;
    let exists = args.out.join("manifest.json").exists()
        || (args.out.is_dir() && std::fs::read_dir(&args.out).map(|mut d| d.next().is_some()).unwrap_or(false));
    let mut idx = if exists {
        RagIndex::open(&args.out, &embedder).with_context(|| format!("opening the index {}", args.out.display()))?
    } else {
        RagIndex::create(&args.out, &embedder, IndexConfig::new(chunker.clone()))
            .with_context(|| format!("creating the index {}", args.out.display()))?
    };
    if exists && idx.chunker() != &chunker {
        eprintln!(
            "note: {} was built with {:?}; new and changed documents are chunked with it too",
            args.out.display(),
            idx.chunker()
        );
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} chunks embedded ({per_sec}, eta {eta})")
    {
        bar.set_style(style);
    }
    let report = idx
        .add_documents(&docs, &embedder, &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .context("indexing")?;
    bar.finish_and_clear();
    let present: std::collections::HashSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    let stale: Vec<String> = idx.document_ids().filter(|id| !present.contains(id)).map(str::to_owned).collect();
    for id in &stale {
        idx.delete_document(id).with_context(|| format!("deleting {id}"))?;
    }
    idx.commit().with_context(|| format!("writing {}", args.out.display()))?;
    let secs = started.elapsed().as_secs_f64();
    let summary = json!({
        "index": args.out.display().to_string(),
        "documents_loaded": docs.len(),
        "documents_indexed": report.documents,
        "unchanged": report.unchanged,
        "replaced": report.replaced,
        "deleted": stale.len(),
        "chunks_added": report.chunks,
        "chunks_total": idx.len(),
        "documents_total": idx.num_documents(),
        "seconds": secs,
        "chunks_per_second": if secs > 0.0 { report.chunks as f64 / secs } else { 0.0 },
    });
    if args.json {
        print_json(&summary);
    } else {
        println!(
            "{}: {} documents loaded; {} indexed ({} replaced), {} unchanged, {} deleted; {} chunks added, {} in the index ({:.1} s, {:.1} chunks/s)",
            args.out.display(),
            docs.len(),
            report.documents,
            report.replaced,
            report.unchanged,
            stale.len(),
            report.chunks,
            idx.len(),
            secs,
            summary["chunks_per_second"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(())
}

/// Opens an index with the embedder, naming both in the error.
fn open_index(args: &RetrieveArgs) -> Result<(RagIndex, BertModel)> {
    if !args.index.is_dir() {
        bail!("--index {}: no such folder (build one with `sovereign rag index`)", args.index.display());
    }
    let embedder = args.model.load()?;
    let idx = RagIndex::open(&args.index, &embedder)
        .with_context(|| format!("opening the index {}", args.index.display()))?;
    Ok((idx, embedder))
}

fn hit_json(rank: usize, hit: &Hit, idx: &RagIndex) -> Value {
    let chunk = idx.chunk(hit.chunk);
    json!({
        "rank": rank,
        "chunk": hit.chunk,
        "doc": chunk.map(|c| c.doc.as_str()),
        "heading_path": chunk.map(|c| c.heading_path.clone()),
        "passage": chunk.map(|c| c.passage.as_str()),
        "span": chunk.map(|c| [c.span.start, c.span.end]),
        "score": hit.score,
        "dense": hit.dense,
        "sparse": hit.sparse,
        "rerank": hit.rerank,
    })
}

fn timings_json(t: &StageTimings, total: Duration) -> Value {
    json!({
        "embed": millis(t.embed), "sparse": millis(t.sparse), "dense": millis(t.dense), "fuse": millis(t.fuse),
        "rerank": millis(t.rerank), "pack": millis(t.pack), "generate": millis(t.generate), "total": millis(total),
    })
}

fn query(args: QueryArgs) -> Result<()> {
    let started = Instant::now();
    if args.question.trim().is_empty() {
        bail!("the question is empty");
    }
    if args.retrieve.k == 0 {
        bail!("--k must be at least 1");
    }
    let (idx, embedder) = open_index(&args.retrieve)?;
    // A reranker reorders a deeper candidate list, then the best k are kept.
    let depth = if args.rerank == RerankArg::None { args.retrieve.k } else { args.retrieve.k.max(RERANK_DEPTH) };
    let config = RetrieveConfig::new(args.retrieve.mode.mode(), depth);
    let retrieved = retrieve(&idx, &embedder, &args.question, &config).context("retrieving")?;
    let mut timings = retrieved.timings;
    let mut hits = retrieved.hits;
    let chat_path = args.chat_model.clone().unwrap_or_else(|| kernels::cache::model_file(DEMO_CHAT.0, DEMO_CHAT.1));
    let needs_llm = !args.no_answer || args.rerank == RerankArg::Llm;
    let llm = if needs_llm {
        Some(AnswerModel::load(&chat_path).with_context(|| format!("loading the chat model {}", chat_path.display()))?)
    } else {
        None
    };
    let rerank_started = Instant::now();
    match (args.rerank, &llm) {
        (RerankArg::None, _) => {}
        (RerankArg::Minilm, _) => {
            MiniLmWindows::new(&embedder).rerank(&idx, &args.question, &mut hits).context("reranking")?
        }
        (RerankArg::Llm, Some(llm)) => LlmJudge::new(llm.model.clone())
            .context("the LLM judge")?
            .rerank(&idx, &args.question, &mut hits)
            .context("reranking")?,
        (RerankArg::Llm, None) => bail!("--rerank llm needs the chat model"),
    }
    if args.rerank != RerankArg::None {
        timings.rerank = rerank_started.elapsed();
    }
    hits.truncate(args.retrieve.k);
    let relevance = answer::relevance(&idx, &embedder, &args.question, &hits).context("scoring relevance")?;
    let mut out = json!({
        "question": args.question,
        "mode": format!("{:?}", args.retrieve.mode),
        "k": args.retrieve.k,
        "relevance": relevance,
        "chunks": hits.iter().enumerate().map(|(i, h)| hit_json(i + 1, h, &idx)).collect::<Vec<_>>(),
    });
    if !args.retrieve.json {
        print_hits(&hits, &idx, relevance);
    }
    if let (false, Some(llm)) = (args.no_answer, &llm) {
        let answer_config = AnswerConfig {
            min_score: args.min_score,
            max_tokens: args.answer_tokens,
            constrained: !args.unconstrained,
        };
        let pack_started = Instant::now();
        let context = args.context.min(llm.context_len());
        let budget = budget_for(context, llm.prompt_overhead(&args.question)?, args.answer_tokens);
        let order = match args.order {
            OrderArg::Score => PackOrder::Score,
            OrderArg::Source => PackOrder::Source,
            OrderArg::LostInTheMiddle => PackOrder::LostInTheMiddle,
        };
        let pack_config = PackConfig { budget_tokens: budget, order, merge_overlaps: true };
        let packed = pack(&idx, &hits, &*llm.tokenizer, &pack_config).context("packing")?;
        timings.pack = pack_started.elapsed();
        let a = answer::answer(llm, &args.question, &packed, relevance, &answer_config).context("answering")?;
        timings.generate = a.timings.generate;
        out["packed"] = json!({
            "budget_tokens": budget,
            "tokens": packed.tokens,
            "chunks": packed.chunks.iter().map(|c| json!({
                "number": c.number, "doc": c.doc, "heading_path": c.heading_path, "passage": c.passage,
                "span": [c.span.start, c.span.end], "score": c.score, "chunk_ids": c.chunk_ids,
            })).collect::<Vec<_>>(),
        });
        out["answer"] = json!({
            "text": a.text, "refused": a.refused, "citations": a.citations, "truncated": a.truncated,
            "out_of_range": a.check.out_of_range, "uncited_sentences": a.check.uncited_sentences,
            "prompt_tokens": a.prompt_tokens, "completion_tokens": a.completion_tokens,
        });
        if !args.retrieve.json {
            let mut so = std::io::stdout().lock();
            let _ = writeln!(so, "\nsources ({} of {budget} tokens):", packed.tokens);
            for c in &packed.chunks {
                let _ = writeln!(
                    so,
                    "  [{}] {} › {} bytes {}..{}",
                    c.number,
                    c.doc,
                    c.heading_path.join(" › "),
                    c.span.start,
                    c.span.end
                );
            }
            let _ = writeln!(so, "\nanswer:\n{}", a.text);
            if !a.refused {
                let _ = writeln!(so, "\ncited {:?}", a.citations);
                if !a.check.out_of_range.is_empty() {
                    let _ = writeln!(so, "warning: citations point at no source: {:?}", a.check.out_of_range);
                }
                if !a.check.uncited_sentences.is_empty() {
                    let _ = writeln!(so, "warning: {} sentence(s) cite nothing", a.check.uncited_sentences.len());
                }
                if a.truncated {
                    let _ = writeln!(so, "warning: cut at {} tokens", args.answer_tokens);
                }
            }
        }
    }
    out["timings_ms"] = timings_json(&timings, started.elapsed());
    if args.retrieve.json {
        print_json(&out);
    } else {
        let t = &out["timings_ms"];
        println!(
            "\ntimings: embed {:.1} ms, sparse {:.1} ms, dense {:.1} ms, fuse {:.1} ms, pack {:.1} ms, generate {:.1} ms, total {:.1} ms",
            t["embed"].as_f64().unwrap_or(0.0),
            t["sparse"].as_f64().unwrap_or(0.0),
            t["dense"].as_f64().unwrap_or(0.0),
            t["fuse"].as_f64().unwrap_or(0.0),
            t["pack"].as_f64().unwrap_or(0.0),
            t["generate"].as_f64().unwrap_or(0.0),
            t["total"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(())
}

fn print_hits(hits: &[Hit], idx: &RagIndex, relevance: Option<f32>) {
    let mut so = std::io::stdout().lock();
    let fmt = |s: Option<f32>| s.map_or_else(|| "-".to_owned(), |s| format!("{s:.4}"));
    for (i, h) in hits.iter().enumerate() {
        let Some(c) = idx.chunk(h.chunk) else { continue };
        let _ = writeln!(
            so,
            "{:>2}. {:.4}  {} › {}  bytes {}..{}  (dense {}, sparse {}, rerank {})",
            i + 1,
            h.score,
            c.doc,
            c.heading_path.join(" › "),
            c.span.start,
            c.span.end,
            fmt(h.dense),
            fmt(h.sparse),
            fmt(h.rerank)
        );
        let preview: String = c.text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(160).collect();
        let _ = writeln!(so, "    {preview}");
    }
    if hits.is_empty() {
        let _ = writeln!(so, "no chunk matched");
    }
    let _ = writeln!(so, "best relevance (MiniLM cosine): {}", fmt(relevance));
}

fn evaluate(args: EvalArgs) -> Result<()> {
    let topics = eval::read_topics(&args.topics).with_context(|| format!("reading {}", args.topics.display()))?;
    let qrels = eval::read_qrels(&args.qrels).with_context(|| format!("reading {}", args.qrels.display()))?;
    let (idx, embedder) = open_index(&args.retrieve)?;
    let config = RetrieveConfig::new(args.retrieve.mode.mode(), args.retrieve.k.max(10));
    let started = Instant::now();
    let report = eval::evaluate_index(&idx, &embedder, &topics, &qrels, &config).context("evaluating")?;
    let secs = started.elapsed().as_secs_f64();
    if args.retrieve.json {
        print_json(&json!({
            "index": args.retrieve.index.display().to_string(),
            "mode": format!("{:?}", args.retrieve.mode),
            "topics": topics.len(),
            "mean": report.mean,
            "per_topic": report.per_topic,
            "seconds": secs,
        }));
    } else {
        println!("{} topics, mode {:?} ({:.1} s)", topics.len(), args.retrieve.mode, secs);
        for (measure, value) in &report.mean {
            println!("  {measure:<14} {value:.4}");
        }
    }
    Ok(())
}
