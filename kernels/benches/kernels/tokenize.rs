//! Tokenizer throughput (bytes of text per second, one thread) on the Rust book: SmolLM2's byte-level BPE
//! (Sennrich et al. 2016, GPT-2 byte-level) with a warm word cache and with none, and MiniLM's BERT WordPiece.
//!
//! The peer's figure for the same text comes from `kernels/tests/tokenize/hf_reference.py` (op `bench`), run
//! with `RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false`. Without the models (`cargo xtask models`) or the
//! Rust book (`rustup component add rust-docs`) the group says what it skipped and measures nothing.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use kernels::formats::Gguf;
use kernels::tokenize::{Bpe, BpeConfig, Padding, WordPiece, WordPieceConfig};

/// The Rust book's chapters as plain text (the `<main>` of each page without tags; entities left as they are).
fn rust_book() -> Option<Vec<String>> {
    let out = Command::new("rustc").args(["--print", "sysroot"]).output().ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("share/doc/rust/html/book");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "html") && !p.ends_with("print.html"))
        .collect();
    pages.sort();
    let chapters: Vec<String> = pages
        .iter()
        .filter_map(|p| {
            let html = std::fs::read_to_string(p).ok()?;
            let start = html.find("<main>")? + "<main>".len();
            let end = start + html[start..].find("</main>")?;
            let mut text = String::new();
            let mut in_tag = false;
            for c in html[start..end].chars() {
                match c {
                    '<' => in_tag = true,
                    '>' if in_tag => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            Some(text)
        })
        .collect();
    (!chapters.is_empty()).then_some(chapters)
}

fn tokenize(c: &mut Criterion) {
    let Some(book) = rust_book() else {
        eprintln!("tokenize: skipped, no Rust book (rustup component add rust-docs)");
        return;
    };
    let bytes: usize = book.iter().map(String::len).sum();

    match datasets::models::file_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf") {
        Err(e) => eprintln!("tokenize/bpe: skipped ({e})"),
        Ok(path) => {
            let gguf = Gguf::open(&path).expect("open the SmolLM2 GGUF");
            let bpe = Bpe::from_gguf(&gguf).expect("SmolLM2 tokenizer");
            let uncached = Bpe::new(
                bpe.tokens().to_vec(),
                &merges_of(&bpe),
                BpeConfig { cache_capacity: 0, ..bpe.config().clone() },
            )
            .expect("same parts");
            let mut group = c.benchmark_group("tokenize/bpe_encode");
            group.throughput(Throughput::Bytes(bytes as u64));
            group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
            for (name, tokenizer) in [("smollm2_cached", &bpe), ("smollm2_no_cache", &uncached)] {
                group.bench_function(name, |b| {
                    b.iter(|| book.iter().map(|t| tokenizer.encode(black_box(t)).len()).sum::<usize>())
                });
            }
            group.finish();

            let ids: Vec<Vec<u32>> = book.iter().map(|t| bpe.encode(t)).collect();
            let mut group = c.benchmark_group("tokenize/bpe_decode");
            group.throughput(Throughput::Bytes(bytes as u64));
            group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
            group.bench_function("smollm2", |b| {
                b.iter(|| ids.iter().map(|i| bpe.decode(black_box(i)).map_or(0, |s| s.len())).sum::<usize>())
            });
            group.finish();
        }
    }

    match datasets::models::file_path("all-minilm-l6-v2", "tokenizer.json") {
        Err(e) => eprintln!("tokenize/wordpiece: skipped ({e})"),
        Ok(path) => {
            let shipped = WordPiece::from_tokenizer_json(&path).expect("MiniLM tokenizer");
            let config = WordPieceConfig { max_length: None, padding: Padding::None, ..shipped.config().clone() };
            let wp = WordPiece::new(shipped.tokens().to_vec(), config).expect("same vocabulary");
            let mut group = c.benchmark_group("tokenize/wordpiece_encode");
            group.throughput(Throughput::Bytes(bytes as u64));
            group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
            group.bench_function("minilm", |b| {
                b.iter(|| book.iter().map(|t| wp.encode(black_box(t)).ids.len()).sum::<usize>())
            });
            group.finish();
        }
    }
}

fn merges_of(bpe: &Bpe) -> Vec<(String, String)> {
    bpe.merges().map(|(l, r)| (l.to_string(), r.to_string())).collect()
}

criterion_group!(benches, tokenize);
