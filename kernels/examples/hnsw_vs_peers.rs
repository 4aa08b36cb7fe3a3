//! Measures `kernels::ann::Hnsw` the way `cargo xtask bench hnsw` compares it with hnswlib, and
//! prints JSON rows.
//!
//! `cargo run --release -p kernels --no-default-features --features ann --example hnsw_vs_peers --
//! --out DIR [--n N] [--threads T] [--vectors DIR --dim D]`
//!
//! On `N` clustered unit vectors of 128 dimensions (`datasets::vectors`, seed 7; 100,000 unless
//! given) and 1,000 queries, or on the vectors of `--vectors DIR` (`data.f32` and `queries.f32`
//! of `D` dimensions, as `minilm_corpus` writes them), with M = 16 and efConstruction = 200 under
//! squared L2:
//! - writes `DIR/data.f32`, `DIR/queries.f32` (little-endian rows) and `DIR/truth.i32` (the exact
//!   top 10 of every query) so the peer runs on exactly the same vectors and is scored against
//!   the same truth;
//! - builds with [`Hnsw::build_parallel`] on `T` threads (2 unless given), timing the build and
//!   the resident memory it added;
//! - for each ef: recall@10, single-query speed (one query per call, one thread) and batched
//!   speed (all queries split over the `T` threads), each the best of five rounds over the whole
//!   sweep.
//!
//! Each row: `{"impl", "ef", "recall@10", "single_qps", "batch_qps", "threads", "build_s",
//! "memory_mb", "rss_mb", "n", "dim"}`.

use std::collections::HashSet;
use std::time::Instant;

use datasets::vectors::{ClusteredConfig, clustered, queries};
use kernels::ann::{Hnsw, HnswConfig, exact_top_k_batch};
use rayon::prelude::*;

const K: usize = 10;
const EFS: [usize; 11] = [10, 16, 24, 32, 48, 64, 96, 128, 256, 384, 512];

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// Resident set size of this process in bytes (Linux `/proc/self/statm`), 0 elsewhere.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

fn write_raw(path: &std::path::Path, bytes: impl Iterator<Item = [u8; 4]>) {
    let raw: Vec<u8> = bytes.flatten().collect();
    std::fs::write(path, raw).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The little-endian f32 rows of `path`, checked to be whole rows of `dim`.
fn read_rows(path: &std::path::Path, dim: usize) -> Vec<f32> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(raw.len().is_multiple_of(4 * dim), "{} is not whole rows of {dim} f32", path.display());
    raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn main() -> Result<(), kernels::Error> {
    let out = std::path::PathBuf::from(arg("--out").expect("usage: --out DIR [--n N] [--threads T]"));
    let n: usize = arg("--n").map_or(100_000, |v| v.parse().expect("--n takes a number"));
    let threads: usize = arg("--threads").map_or(2, |v| v.parse().expect("--threads takes a number"));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
    let (dim, data, qs) = match arg("--vectors") {
        Some(dir) => {
            let dim: usize = arg("--dim").expect("--vectors needs --dim").parse().expect("--dim takes a number");
            let dir = std::path::Path::new(&dir);
            (dim, read_rows(&dir.join("data.f32"), dim), read_rows(&dir.join("queries.f32"), dim))
        }
        None => {
            let cfg = ClusteredConfig { n, ..ClusteredConfig::tier(datasets::Tier::Full, 7) };
            (cfg.dim, clustered(&cfg), queries(&cfg, 1000))
        }
    };
    let n = data.len() / dim;
    let config = HnswConfig { m: 16, ef_construction: 200, ..HnswConfig::default() };

    eprintln!("exact top {K} of {} queries over {n} x {dim}…", qs.len() / dim);
    let truth = pool.install(|| exact_top_k_batch(&data, dim, &qs, K, config.metric))?;
    std::fs::create_dir_all(&out).expect("creating the output folder");
    write_raw(&out.join("data.f32"), data.iter().map(|x| x.to_le_bytes()));
    write_raw(&out.join("queries.f32"), qs.iter().map(|x| x.to_le_bytes()));
    write_raw(&out.join("truth.i32"), truth.iter().flatten().map(|h| (h.id as i32).to_le_bytes()));
    let truth: Vec<HashSet<u32>> = truth.iter().map(|t| t.iter().map(|h| h.id).collect()).collect();

    eprintln!("building kernels' HNSW on {threads} threads…");
    let rss_before = rss_bytes();
    let t = Instant::now();
    let index = pool.install(|| Hnsw::build_parallel(&data, dim, config))?;
    let build_s = t.elapsed().as_secs_f64();
    let rss_mb = rss_bytes().saturating_sub(rss_before) as f64 / (1 << 20) as f64;
    let memory_mb = index.memory_bytes() as f64 / (1 << 20) as f64;

    // Five rounds over the whole sweep, the best of each kept: a few seconds of noise on this
    // shared machine then spoil one of an ef's five passes, not all of them (hnswlib_sweep.py
    // measures the same way).
    let mut best = [[f64::INFINITY; 2]; EFS.len()];
    let mut results: Vec<Vec<Vec<kernels::ann::Neighbor>>> = vec![Vec::new(); EFS.len()];
    for round in 0..5 {
        eprintln!("round {} of 5…", round + 1);
        for (i, &ef) in EFS.iter().enumerate() {
            let t = Instant::now();
            results[i] = qs.chunks_exact(dim).map(|q| index.search(q, K, ef).expect("search")).collect();
            best[i][0] = best[i][0].min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let hits: Vec<_> =
                pool.install(|| qs.par_chunks_exact(dim).map(|q| index.search(q, K, ef).expect("search")).collect());
            best[i][1] = best[i][1].min(t.elapsed().as_secs_f64());
            std::hint::black_box(hits);
        }
    }
    let mut rows = Vec::new();
    for ((ef, [single, batch]), results) in EFS.iter().zip(best).zip(&results) {
        let hits: usize = results.iter().zip(&truth).map(|(r, t)| r.iter().filter(|h| t.contains(&h.id)).count()).sum();
        let nq = truth.len() as f64;
        rows.push(format!(
            r#"{{"impl":"kernels","ef":{ef},"recall@10":{},"single_qps":{},"batch_qps":{},"threads":{threads},"build_s":{build_s},"memory_mb":{memory_mb},"rss_mb":{rss_mb},"n":{n},"dim":{dim}}}"#,
            hits as f64 / (nq * K as f64),
            nq / single,
            nq / batch,
        ));
    }
    println!("[{}]", rows.join(","));
    Ok(())
}
