//! The real-data half of `cargo xtask bench hnsw`: all-MiniLM-L6-v2 embeddings of the toolchain's Rust
//! documentation, cut into chunks, written as vectors for `hnsw_vs_peers` and hnswlib.
//!
//! usage: `minilm_corpus MODEL_DIR OUT_DIR [--n N] [--queries Q] [--max-tokens T]`
//!
//! Loads every English page of `$(rustc --print sysroot)/share/doc/rust/html` with
//! `kernels::rag::load` (the books, the reference, Cargo's guide and the standard library's API
//! pages), chunks each with the recursive chunker at ≤ T MiniLM tokens (64 unless given), keeps the
//! first copy of every distinct chunk text (rustdoc repeats the same blurbs on many pages, and a
//! duplicated vector makes the exact top 10 a matter of tie order), shuffles them with a fixed seed
//! and embeds the first N + Q (100,000 + 1,000 unless given) with `BertModel::embed` in batches of 32.
//! The first N become `OUT_DIR/data.f32`, the next Q `OUT_DIR/queries.f32` (held-out chunks: real
//! text the index has not seen; little-endian rows of 384 unit-norm f32), and `OUT_DIR/meta.json`
//! records the counts, the corpus and how long the embedding took. When the corpus gives fewer
//! than N + Q chunks it uses all of them, Q of them as queries. Progress goes to stderr.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use kernels::nn::bert::BertModel;
use kernels::rag::chunk::{ChunkerConfig, chunk_document};
use kernels::rag::load::{LoadConfig, RUST_DOCS_TRANSLATIONS, load_dir, rust_docs_root};
use rand::SeedableRng;
use rand::seq::SliceRandom;

type Error = Box<dyn std::error::Error>;

const BATCH: usize = 32;
const SEED: u64 = 7;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn number(name: &str, default: usize) -> usize {
    arg(name).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = if std::io::stderr().is_terminal() { ProgressBar::new(len as u64) } else { ProgressBar::hidden() };
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

fn write_rows(path: &std::path::Path, rows: &[Vec<f32>]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for x in rows.iter().flatten() {
        out.write_all(&x.to_le_bytes())?;
    }
    out.flush()
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: minilm_corpus MODEL_DIR OUT_DIR [--n N] [--queries Q] [--max-tokens T]");
        std::process::exit(2);
    }
    let (model_dir, out) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let (n, n_queries, max_tokens) = (number("--n", 100_000), number("--queries", 1_000), number("--max-tokens", 64));
    let model = BertModel::load(&model_dir)?;

    let root = rust_docs_root()?;
    eprintln!("loading the Rust documentation from {}…", root.display());
    let skip_dirs = RUST_DOCS_TRANSLATIONS.map(String::from).to_vec();
    let docs = load_dir(&root, &LoadConfig { extensions: vec!["html".into()], skip_dirs, ..LoadConfig::default() })?;

    let config = ChunkerConfig::Recursive { max_tokens };
    let pb = bar(docs.len(), "chunking");
    let mut seen = std::collections::HashSet::new();
    let mut texts = Vec::new();
    for doc in &docs {
        for chunk in chunk_document(doc, &config, &model, None)? {
            if seen.insert(chunk.text.clone()) {
                texts.push(chunk.text);
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let distinct = texts.len();
    texts.shuffle(&mut rand::rngs::StdRng::seed_from_u64(SEED));
    texts.truncate(n + n_queries);
    let n_queries = n_queries.min(texts.len() / 10);
    let n = texts.len() - n_queries;
    eprintln!("{} documents, {distinct} distinct chunks; embedding {n} + {n_queries} queries", docs.len());

    let pb = bar(texts.len(), "embedding");
    let start = Instant::now();
    let mut vectors = Vec::with_capacity(texts.len());
    let tty = std::io::stderr().is_terminal();
    for (i, batch) in texts.chunks(BATCH).enumerate() {
        vectors.extend(model.embed(batch)?);
        pb.inc(batch.len() as u64);
        // Without a terminal the bar is hidden: a line every 320 batches (about a minute) instead.
        if !tty && (i + 1) % 320 == 0 {
            eprintln!("  embedded {} of {} ({:.0} s)", vectors.len(), texts.len(), start.elapsed().as_secs_f64());
        }
    }
    pb.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();

    std::fs::create_dir_all(&out)?;
    write_rows(&out.join("data.f32"), &vectors[..n])?;
    write_rows(&out.join("queries.f32"), &vectors[n..])?;
    let meta = serde_json::json!({
        "n": n, "queries": n_queries, "dim": model.dim(), "max_tokens": max_tokens, "documents": docs.len(),
        "distinct_chunks": distinct, "model": model_dir.file_name().map(|f| f.to_string_lossy().into_owned()),
        "corpus": root.display().to_string(), "embed_seconds": seconds, "seed": SEED,
    });
    std::fs::write(out.join("meta.json"), serde_json::to_string_pretty(&meta)?)?;
    eprintln!("{n} vectors and {n_queries} queries of {} dimensions in {seconds:.0} s", model.dim());
    Ok(())
}
