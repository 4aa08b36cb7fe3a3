//! Recall/speed sweep of the HNSW index: recall@10 and queries/s per ef on 20k x 128 clustered unit vectors.
//!
//! `cargo run --release -p kernels --example hnsw_sweep [-- --dump DIR]`
//!
//! `--dump DIR` also writes the data and queries as raw little-endian `f32`
//! (`DIR/data.f32`, `DIR/queries.f32`, 128 floats per row) so a peer such as
//! hnswlib can be run on exactly the same vectors.

use std::collections::HashSet;
use std::time::Instant;

use datasets::Tier;
use datasets::vectors::{ClusteredConfig, clustered, queries};
use kernels::ann::{Hnsw, HnswConfig, exact_top_k_batch};

fn main() -> Result<(), kernels::Error> {
    let cfg = ClusteredConfig::tier(Tier::Medium, 7);
    let data = clustered(&cfg);
    let qs = queries(&cfg, 1000);
    let config = HnswConfig { m: 16, ef_construction: 200, ..HnswConfig::default() };
    let k = 10;
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--dump") {
        let dir = std::path::PathBuf::from(args.get(pos + 1).map_or(".", String::as_str));
        let raw = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("data.f32"), raw(&data)))
            .and_then(|()| std::fs::write(dir.join("queries.f32"), raw(&qs)));
        match written {
            Ok(()) => println!("wrote {}/data.f32 and queries.f32", dir.display()),
            Err(e) => eprintln!("could not write to {}: {e}", dir.display()),
        }
    }

    let t = Instant::now();
    let index = Hnsw::build(&data, cfg.dim, config)?;
    let build_s = t.elapsed().as_secs_f64();
    let truth = exact_top_k_batch(&data, cfg.dim, &qs, k, config.metric)?;
    let truth: Vec<HashSet<u32>> = truth.iter().map(|t| t.iter().map(|n| n.id).collect()).collect();

    println!(
        "HNSW {} x {} ({:?}, M {}, efC {}), kernel path {}",
        cfg.n,
        cfg.dim,
        config.metric,
        config.m,
        config.ef_construction,
        kernels::simd::active_path()
    );
    println!(
        "build {build_s:.2} s ({:.0} inserts/s), {:.1} MiB, {} layers",
        cfg.n as f64 / build_s,
        index.memory_bytes() as f64 / (1 << 20) as f64,
        index.max_level() + 1
    );
    println!("search timed by {}", Clock::now().name());
    println!("{:>5} {:>11} {:>12} {:>10}", "ef", "recall@10", "queries/s", "µs/query");
    for ef in [10, 16, 24, 32, 48, 64, 96, 128, 256] {
        // One untimed pass warms caches; then the best of three timed
        // single-threaded passes, timed in this thread's CPU time where the
        // OS reports it (so a busy, shared machine skews the figures less).
        for q in qs.chunks_exact(cfg.dim).take(100) {
            index.search(q, k, ef)?;
        }
        let mut secs = f64::INFINITY;
        let mut results = Vec::with_capacity(truth.len());
        for _ in 0..3 {
            results.clear();
            let t = Clock::now();
            for q in qs.chunks_exact(cfg.dim) {
                results.push(index.search(q, k, ef)?);
            }
            secs = secs.min(t.elapsed());
        }
        let hits: usize = results.iter().zip(&truth).map(|(r, t)| r.iter().filter(|n| t.contains(&n.id)).count()).sum();
        let recall = hits as f64 / (truth.len() * k) as f64;
        let qps = truth.len() as f64 / secs;
        println!("{ef:>5} {recall:>11.4} {qps:>12.0} {:>10.1}", 1e6 / qps);
    }
    Ok(())
}

/// This thread's CPU time (Linux `/proc/thread-self/schedstat`), else wall time.
enum Clock {
    Cpu(u64),
    Wall(Instant),
}

impl Clock {
    fn now() -> Clock {
        match thread_cpu_ns() {
            Some(ns) => Clock::Cpu(ns),
            None => Clock::Wall(Instant::now()),
        }
    }

    fn elapsed(&self) -> f64 {
        match self {
            Clock::Cpu(start) => thread_cpu_ns().map_or(f64::NAN, |now| now.saturating_sub(*start) as f64 * 1e-9),
            Clock::Wall(start) => start.elapsed().as_secs_f64(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Clock::Cpu(_) => "thread CPU time",
            Clock::Wall(_) => "wall-clock time",
        }
    }
}

fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}
