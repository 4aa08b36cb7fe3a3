//! Measures `kernels` on the workloads of `cargo xtask bench kernels` and prints JSON rows.
//!
//! The peers' side is `autograder/peers/kernels_peers.py` (SimSIMD, NumPy); both
//! print rows `{op, dtype, shape, impl, unit, rate}` with rate = work per second,
//! best of five timed passes, so xtask can divide one by the other. Rows with
//! unit `GB/s` are memory-bound kernels and are reported as a fraction of the
//! streaming-read bandwidth this program measures first (`op = "stream_read"`).
//!
//! Run it through `cargo xtask bench kernels`; by hand:
//! `cargo run --release -p kernels --example bench_vs_peers -- [--quick] [--only SECTION]`,
//! where SECTION is `distances`, `gemm`, `exact` or `gemv` (to iterate on one kernel).

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
    /// `kernels` (the CPU) or `gpu` (the wgpu backend).
    imp: &'static str,
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

/// Deterministic i8 codes over the whole range.
fn random_i8(n: usize, seed: u64) -> Vec<i8> {
    random_f32(n, seed).iter().map(|&x| (x * 127.5).floor().clamp(-128.0, 127.0) as i8).collect()
}

/// One distance matrix over one element type: queries, base vectors, dimension, output.
type MatrixFn<T> = Box<dyn Fn(&[T], &[T], usize, &mut [f32])>;

/// Times dot, squared L2 and cosine of one element type as a 16 × 1024 cdist.
fn distance_rows<T: Copy>(
    t: &Timing,
    dtype: &'static str,
    d: usize,
    data: (&[T], &[T]),
    ops: [(&'static str, MatrixFn<T>); 3],
    rows: &mut Vec<Row>,
) {
    let (q, b) = data;
    let (nq, nb) = (q.len() / d, b.len() / d);
    let mut out = vec![0f32; nq * nb];
    for (op, f) in ops {
        let rate = t.best_rate((nq * nb) as f64, || f(black_box(q), b, d, &mut out));
        rows.push(Row {
            op,
            dtype,
            shape: format!("{nq}x{nb}x{d}"),
            unit: "pairs/s",
            rate,
            threads: 1,
            imp: "kernels",
        });
    }
}

/// A `kernels::simd::cdist*` function.
type CdistFn<T> = fn(&[T], &[T], usize, kernels::simd::Metric, &mut [f32]) -> kernels::Result<()>;

/// The three metrics through a `kernels::simd::cdist*` function (dot and cosine as distances, which
/// costs one negation or subtraction per pair).
fn matrix_ops<T: 'static>(cdist: CdistFn<T>) -> [(&'static str, MatrixFn<T>); 3] {
    use kernels::simd::Metric;
    let op = move |m: Metric| -> MatrixFn<T> {
        Box::new(move |q: &[T], b: &[T], d: usize, out: &mut [f32]| cdist(q, b, d, m, out).expect("shapes agree"))
    };
    [("dot", op(Metric::Dot)), ("l2_sq", op(Metric::L2)), ("cosine", op(Metric::Cosine))]
}

fn distances(t: &Timing, dims: &[usize], rows: &mut Vec<Row>) {
    use half::{bf16, f16};
    use kernels::simd;
    let (nq, nb) = (16, 1024);
    for &d in dims {
        let (q, b) = (random_f32(nq * d, 1), random_f32(nb * d, 2));
        distance_rows(t, "f32", d, (&q, &b), matrix_ops(simd::cdist), rows);
        let (qh, bh): (Vec<f16>, Vec<f16>) =
            (q.iter().map(|&x| f16::from_f32(x)).collect(), b.iter().map(|&x| f16::from_f32(x)).collect());
        distance_rows(t, "f16", d, (&qh, &bh), matrix_ops(simd::cdist_f16), rows);
        let (qb, bb): (Vec<bf16>, Vec<bf16>) =
            (q.iter().map(|&x| bf16::from_f32(x)).collect(), b.iter().map(|&x| bf16::from_f32(x)).collect());
        distance_rows(t, "bf16", d, (&qb, &bb), matrix_ops(simd::cdist_bf16), rows);
        let (qi, bi) = (random_i8(nq * d, 1), random_i8(nb * d, 2));
        distance_rows(t, "i8", d, (&qi, &bi), matrix_ops(simd::cdist_i8), rows);
    }
}

/// f32 GEMM on all threads (square sizes, compared with NumPy) and f32 GEMV at LLM shapes.
fn matmul(t: &Timing, quick: bool, rows: &mut Vec<Row>) {
    use kernels::matmul::{GemmShape, gemm, gemv};
    let threads = rayon::current_num_threads();
    let sizes: &[usize] = if quick { &[256] } else { &[256, 1024] };
    for &n in sizes {
        let (a, b) = (random_f32(n * n, 5), random_f32(n * n, 6));
        let mut c = vec![0f32; n * n];
        let rate = t.best_rate(2.0 * (n * n * n) as f64 / 1e9, || {
            gemm(black_box(&a), &b, &mut c, GemmShape { m: n, n, k: n }).expect("square shapes agree");
        });
        rows.push(Row {
            op: "gemm",
            dtype: "f32",
            shape: format!("{n}x{n}x{n}"),
            unit: "GFLOP/s",
            rate,
            threads,
            imp: "kernels",
        });
    }
    for (r, cols) in [(1536, 576), (49152, 576)] {
        let (w, x) = (random_f32(r * cols, 7), random_f32(cols, 8));
        let mut y = vec![0f32; r];
        let rate = t.best_rate((r * cols * 4) as f64 / 1e9, || {
            gemv(black_box(&w), &x, &mut y, r, cols).expect("shapes agree");
        });
        rows.push(Row {
            op: "gemv",
            dtype: "f32",
            shape: format!("{r}x{cols} hot"),
            unit: "GB/s",
            rate,
            threads,
            imp: "kernels",
        });
    }
}

/// Quantised GEMV at SmolLM2's shapes, hot (one matrix, cache-resident after the first pass) and
/// cold (rotating through copies that together exceed the last-level cache several times).
fn quantised_gemv(t: &Timing, quick: bool, rows: &mut Vec<Row>) {
    use kernels::quant::{self, QuantFormat, gemv, quantize};
    let threads = rayon::current_num_threads();
    let cold_bytes: usize = if quick { 256 << 20 } else { 1 << 30 };
    for format in [QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1, QuantFormat::Q4_K, QuantFormat::Q6_K] {
        // K-quants need rows that are whole 256-element super-blocks: 576 is not, so they take
        // the FFN-down shape (576 × 1536) and a 768-wide stand-in for the output projection.
        let k_quant = format.block_len() == 256;
        let shapes = if k_quant { [(576, 1536), (49152, 768)] } else { [(1536, 576), (49152, 576)] };
        for (i, (r, cols)) in shapes.into_iter().enumerate() {
            let w = quantize(format, &random_f32(r * cols, 9)).expect("finite weights quantise");
            let x = random_f32(cols, 10);
            let mut y = vec![0f32; r];
            let bytes = w.len() as f64 / 1e9;
            let mut push = |dtype: &'static str, shape: String, rate: f64| {
                rows.push(Row { op: "gemv", dtype, shape, unit: "GB/s", rate, threads, imp: "kernels" });
            };
            let cold = i == 1;
            let copies = if cold { cold_bytes.div_ceil(w.len()) } else { 0 };
            let rate = t.best_rate(bytes, || gemv(format, black_box(&w), r, cols, &x, &mut y).expect("shapes agree"));
            push(format.name(), format!("{r}x{cols} hot"), rate);
            if cold {
                let copies: Vec<Vec<u8>> = (0..copies).map(|_| w.clone()).collect();
                let rate = rotating_rate(t, bytes, &copies, |w| {
                    gemv(format, black_box(w), r, cols, &x, &mut y).expect("shapes agree");
                });
                push(format.name(), format!("{r}x{cols} cold"), rate);
            }
            // The same matrix interleaved 16 rows at a time (`quant::pack_rows`), as the LLM holds it.
            if quant::packs(format) {
                let pack = |w: &[u8]| quant::pack_rows(format, w, r, cols).expect("whole Q4_1 rows");
                let p = pack(&w);
                let rate = t.best_rate(bytes, || quant::gemv_packed(black_box(&p), &x, &mut y).expect("shapes agree"));
                push(PACKED_Q4_1, format!("{r}x{cols} hot"), rate);
                if cold {
                    drop(p);
                    let copies: Vec<_> = (0..copies).map(|_| pack(&w)).collect();
                    let rate = rotating_rate(t, bytes, &copies, |p| {
                        quant::gemv_packed(black_box(p), &x, &mut y).expect("shapes agree");
                    });
                    push(PACKED_Q4_1, format!("{r}x{cols} cold"), rate);
                }
            }
        }
    }
}

/// [`Timing::best_rate`] of `f` on each of `copies` in turn (together several times the last-level
/// cache, so every call reads its matrix from DRAM).
fn rotating_rate<C>(t: &Timing, gb: f64, copies: &[C], mut f: impl FnMut(&C)) -> f64 {
    let mut next = 0;
    t.best_rate(gb, || {
        f(&copies[next]);
        next = (next + 1) % copies.len();
    })
}

/// The dtype of the rows that time Q4_1 interleaved by `quant::pack_rows`.
const PACKED_Q4_1: &str = "Q4_1 ×16";

/// Streaming read bandwidth: a sum over a buffer far larger than the caches, on 1 and on all threads.
fn stream_read(t: &Timing, quick: bool, rows: &mut Vec<Row>) {
    // 1 GiB (256 MiB quick): several times the 260 MB L3 of this course's machines.
    let n = if quick { 64 << 20 } else { 256 << 20 };
    let buf = vec![1.0f32; n];
    let bytes = (n * 4) as f64 / 1e9;
    let one = t.best_rate(bytes, || {
        black_box(kernels::simd::sum(black_box(&buf)));
    });
    rows.push(Row {
        op: "stream_read",
        dtype: "f32",
        shape: "1 thread".into(),
        unit: "GB/s",
        rate: one,
        threads: 1,
        imp: "kernels",
    });
    let threads = rayon::current_num_threads();
    let chunk = n.div_ceil(threads);
    let all = t.best_rate(bytes, || {
        black_box(buf.par_chunks(chunk).map(kernels::simd::sum).sum::<f32>());
    });
    rows.push(Row {
        op: "stream_read",
        dtype: "f32",
        shape: format!("{threads} threads"),
        unit: "GB/s",
        rate: all,
        threads,
        imp: "kernels",
    });
}

/// Single-thread f32 dot over 16M elements (two 64 MB operands, which a large L3 may hold)
/// and, unless quick, 64M elements (512 MB, certainly streamed from DRAM).
fn big_dot(t: &Timing, quick: bool, rows: &mut Vec<Row>) {
    let sizes: &[usize] = if quick { &[16] } else { &[16, 64] };
    for &m in sizes {
        let n = m << 20;
        let (a, b) = (random_f32(n, 3), random_f32(n, 4));
        let rate = t.best_rate((n * 8) as f64 / 1e9, || {
            black_box(kernels::simd::dot(black_box(&a), &b));
        });
        rows.push(Row {
            op: "dot",
            dtype: "f32",
            shape: format!("{m}M"),
            unit: "GB/s",
            rate,
            threads: 1,
            imp: "kernels",
        });
    }
}

/// Exact k-NN (k = 10, L2) of 1, 16 and 1,000 queries over 100k × 384 vectors on all threads,
/// through [`kernels::ann::FlatIndex`] (the GEMM formulation), as faiss' `IndexFlatL2` does it.
#[cfg(feature = "ann")]
fn exact_knn(t: &Timing, quick: bool, rows: &mut Vec<Row>) {
    use kernels::ann::FlatIndex;
    use kernels::simd::Metric;
    let (n, dim) = (if quick { 20_000 } else { 100_000 }, 384);
    let index = FlatIndex::new(&random_f32(n * dim, 7), dim, Metric::L2).expect("index");
    for nq in [1, 16, 1000] {
        let queries = random_f32(nq * dim, 8 + nq as u64);
        let rate = t.best_rate(nq as f64, || {
            black_box(index.search(black_box(&queries), 10).expect("search"));
        });
        rows.push(Row {
            op: "knn_l2",
            dtype: "f32",
            shape: format!("{nq}q x {n}x{dim} k10"),
            unit: "queries/s",
            rate,
            threads: rayon::current_num_threads(),
            imp: "kernels",
        });
    }
}

/// The wgpu backend against the CPU kernels on the same inputs, transfers included.
#[cfg(feature = "gpu")]
fn gpu(t: &Timing, rows: &mut Vec<Row>) {
    use kernels::gpu::{GpuContext, gemv_q8_0_cpu, top_k_cpu};
    use kernels::matmul::{GemmShape, gemm};
    use kernels::quant::{QuantFormat, quantize};
    use kernels::simd::Metric;
    let ctx = match GpuContext::new() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("GPU rows skipped: {e}");
            return;
        }
    };
    eprintln!("measuring the GPU backend on {}…", ctx.info().name);
    let threads = rayon::current_num_threads();
    for n in [256usize, 1024] {
        let (a, b) = (random_f32(n * n, 5), random_f32(n * n, 6));
        let mut c = vec![0f32; n * n];
        let shape = GemmShape { m: n, n, k: n };
        let rate =
            t.best_rate(2.0 * (n * n * n) as f64 / 1e9, || ctx.gemm(&a, &b, &mut c, shape).expect("GPU GEMM runs"));
        rows.push(Row {
            op: "gemm",
            dtype: "f32",
            shape: format!("{n}x{n}x{n}"),
            unit: "GFLOP/s",
            rate,
            threads,
            imp: "gpu",
        });
        // The CPU row of the same shape comes from `matmul` (unless quick, when it measured 256 only).
        if n == 1024 && !rows.iter().any(|r| r.op == "gemm" && r.shape == "1024x1024x1024") {
            let rate =
                t.best_rate(2.0 * (n * n * n) as f64 / 1e9, || gemm(&a, &b, &mut c, shape).expect("shapes agree"));
            rows.push(Row {
                op: "gemm",
                dtype: "f32",
                shape: format!("{n}x{n}x{n}"),
                unit: "GFLOP/s",
                rate,
                threads,
                imp: "kernels",
            });
        }
    }
    let (nq, nb, d, k) = (1000, 20000, 128, 10);
    let (base, queries) = (random_f32(nb * d, 11), random_f32(nq * d, 12));
    let shape = format!("{nq}x{nb}x{d} k{k}");
    let rate = t.best_rate(nq as f64, || {
        black_box(ctx.top_k(&base, d, &queries, k, Metric::L2).expect("GPU top-k runs"));
    });
    rows.push(Row { op: "top_k", dtype: "f32", shape: shape.clone(), unit: "queries/s", rate, threads, imp: "gpu" });
    let rate = t.best_rate(nq as f64, || {
        black_box(top_k_cpu(&base, d, &queries, k, Metric::L2).expect("CPU top-k runs"));
    });
    rows.push(Row { op: "top_k", dtype: "f32", shape, unit: "queries/s", rate, threads, imp: "kernels" });
    let (r, cols) = (1536, 576);
    let w = quantize(QuantFormat::Q8_0, &random_f32(r * cols, 9)).expect("finite weights quantise");
    let x = random_f32(cols, 10);
    let mut y = vec![0f32; r];
    let bytes = w.len() as f64 / 1e9;
    let rate = t.best_rate(bytes, || ctx.gemv_q8_0(&w, r, cols, &x, &mut y).expect("GPU GEMV runs"));
    rows.push(Row {
        op: "gemv",
        dtype: "Q8_0",
        shape: format!("{r}x{cols} hot"),
        unit: "GB/s",
        rate,
        threads,
        imp: "gpu",
    });
    let _ = gemv_q8_0_cpu; // the CPU row of this shape is the `quantised_gemv` one
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let run = |section: &str| only.as_deref().is_none_or(|o| o == section);
    let t = Timing { min_seconds: if quick { 0.03 } else { 0.2 } };
    let dims: &[usize] = if quick { &[128, 768] } else { &[128, 384, 768, 1536] };
    let mut rows = Vec::new();
    eprintln!("measuring streaming-read bandwidth…");
    stream_read(&t, quick, &mut rows);
    if run("distances") {
        eprintln!("measuring distances…");
        distances(&t, dims, &mut rows);
        big_dot(&t, quick, &mut rows);
    }
    if run("gemm") {
        eprintln!("measuring GEMM and GEMV…");
        matmul(&t, quick, &mut rows);
    }
    #[cfg(feature = "ann")]
    if run("exact") {
        eprintln!("measuring exact k-NN…");
        exact_knn(&t, quick, &mut rows);
    }
    if run("gemv") {
        eprintln!("measuring quantised GEMV…");
        quantised_gemv(&t, quick, &mut rows);
    }
    #[cfg(feature = "gpu")]
    if only.is_none() {
        gpu(&t, &mut rows);
    }
    let json: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                r#"{{"op":"{}","dtype":"{}","shape":"{}","impl":"{}","unit":"{}","rate":{},"threads":{}}}"#,
                r.op, r.dtype, r.shape, r.imp, r.unit, r.rate, r.threads
            )
        })
        .collect();
    println!("[{}]", json.join(","));
}
