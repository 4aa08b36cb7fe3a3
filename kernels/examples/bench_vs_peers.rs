//! Measures `kernels` on the workloads of `cargo xtask bench kernels` and prints JSON rows.
//!
//! The peers' side is `autograder/peers/kernels_peers.py` (SimSIMD, NumPy); both
//! print rows `{op, dtype, shape, impl, unit, rate}` with rate = work per second,
//! best of five timed passes, so xtask can divide one by the other. Rows with
//! unit `GB/s` are memory-bound kernels and are reported as a fraction of the
//! streaming-read bandwidth this program measures first (`op = "stream_read"`).
//!
//! Run it through `cargo xtask bench kernels`; by hand:
//! `cargo run --release -p kernels --example bench_vs_peers -- [--quick]`.

use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;

/// One measured figure.
struct Row {
    op: &'static str,
    dtype: &'static str,
    shape: String,
    unit: &'static str,
    rate: f64,
    /// Threads the kernel ran on (memory-bound rows are compared with the bandwidth on as many).
    threads: usize,
}

struct Timing {
    min_seconds: f64,
}

impl Timing {
    /// Work per second of `f`, best of five passes of at least `min_seconds` each.
    fn best_rate(&self, work: f64, mut f: impl FnMut()) -> f64 {
        f();
        let mut best = 0.0f64;
        for _ in 0..5 {
            let (mut reps, start) = (0u64, Instant::now());
            let elapsed = loop {
                f();
                reps += 1;
                let e = start.elapsed().as_secs_f64();
                if e >= self.min_seconds {
                    break e;
                }
            };
            best = best.max(work * reps as f64 / elapsed);
        }
        best
    }
}

/// Deterministic pseudo-random floats in [-1, 1) (xorshift; no dependency needed).
fn random_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Q×N distance matrix, one thread, the same shape the peers' `cdist` computes.
fn cdist<T>(q: &[T], b: &[T], d: usize, out: &mut [f32], f: impl Fn(&[T], &[T]) -> f32) {
    for (qi, query) in q.chunks_exact(d).enumerate() {
        let row = &mut out[qi * (b.len() / d)..][..b.len() / d];
        for (o, base) in row.iter_mut().zip(b.chunks_exact(d)) {
            *o = f(query, base);
        }
    }
}

fn distances(t: &Timing, dims: &[usize], rows: &mut Vec<Row>) {
    let (nq, nb) = (16, 1024);
    for &d in dims {
        let q = random_f32(nq * d, 1);
        let b = random_f32(nb * d, 2);
        let mut out = vec![0f32; nq * nb];
        let shape = format!("{nq}x{nb}x{d}");
        let ops: [(&str, fn(&[f32], &[f32]) -> f32); 3] =
            [("dot", kernels::simd::dot), ("l2_sq", kernels::simd::l2_sq), ("cosine", kernels::simd::cosine)];
        for (op, f) in ops {
            let rate = t.best_rate((nq * nb) as f64, || cdist(black_box(&q), &b, d, &mut out, f));
            rows.push(Row { op, dtype: "f32", shape: shape.clone(), unit: "pairs/s", rate, threads: 1 });
        }
    }
}

/// Streaming read bandwidth: a sum over a buffer far larger than the caches, on 1 and on all threads.
fn stream_read(t: &Timing, quick: bool, rows: &mut Vec<Row>) {
    let n = if quick { 32 << 20 } else { 128 << 20 };
    let buf = vec![1.0f32; n];
    let bytes = (n * 4) as f64 / 1e9;
    let one = t.best_rate(bytes, || {
        black_box(kernels::simd::sum(black_box(&buf)));
    });
    rows.push(Row { op: "stream_read", dtype: "f32", shape: "1 thread".into(), unit: "GB/s", rate: one, threads: 1 });
    let threads = rayon::current_num_threads();
    let chunk = n.div_ceil(threads);
    let all = t.best_rate(bytes, || {
        black_box(buf.par_chunks(chunk).map(kernels::simd::sum).sum::<f32>());
    });
    rows.push(Row { op: "stream_read", dtype: "f32", shape: format!("{threads} threads"), unit: "GB/s", rate: all, threads });
}

/// A memory-bound single-thread dot over 16M elements (two 64 MB operands).
fn big_dot(t: &Timing, rows: &mut Vec<Row>) {
    let n = 16 << 20;
    let (a, b) = (random_f32(n, 3), random_f32(n, 4));
    let rate = t.best_rate((n * 8) as f64 / 1e9, || {
        black_box(kernels::simd::dot(black_box(&a), &b));
    });
    rows.push(Row { op: "dot", dtype: "f32", shape: "16M".into(), unit: "GB/s", rate, threads: 1 });
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let t = Timing { min_seconds: if quick { 0.03 } else { 0.2 } };
    let dims: &[usize] = if quick { &[128, 768] } else { &[128, 384, 768, 1536] };
    let mut rows = Vec::new();
    eprintln!("measuring streaming-read bandwidth…");
    stream_read(&t, quick, &mut rows);
    eprintln!("measuring distances…");
    distances(&t, dims, &mut rows);
    big_dot(&t, &mut rows);
    let json: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                r#"{{"op":"{}","dtype":"{}","shape":"{}","impl":"kernels","unit":"{}","rate":{},"threads":{}}}"#,
                r.op, r.dtype, r.shape, r.unit, r.rate, r.threads
            )
        })
        .collect();
    println!("[{}]", json.join(","));
}
