//! GPU (wgpu) vs CPU for the three `kernels::gpu` kernels: GEMM 256² and 1024², top-k
//! (1000 queries × 20000 base × 128 dims, k = 10) and Q8_0 GEMV 1536 × 576.
//!
//! Each GPU figure includes the whole call (upload, dispatch, wait, read back),
//! which is what a caller pays. Without an adapter only the CPU side runs and a
//! line on stderr says why. Run with `cargo bench -p kernels --features gpu -- gpu`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use kernels::gpu::{GpuContext, gemv_q8_0_cpu, top_k_cpu};
use kernels::matmul::{self, GemmShape};
use kernels::simd::Metric;

fn context() -> Option<GpuContext> {
    GpuContext::new().map_err(|e| eprintln!("gpu benches: CPU only: {e}")).ok()
}

fn gemm(c: &mut Criterion) {
    let gpu = context();
    let mut group = c.benchmark_group("gpu/gemm");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for n in [256, 1024] {
        let shape = GemmShape::new(n, n, n);
        let a = datasets::vectors::uniform(n * n, 1);
        let b = datasets::vectors::uniform(n * n, 2);
        let mut out = vec![0.0; n * n];
        group.throughput(Throughput::Elements(shape.flops()));
        group.bench_with_input(BenchmarkId::new("cpu", n), &n, |bench, _| {
            bench.iter(|| matmul::gemm(black_box(&a), black_box(&b), &mut out, shape).unwrap())
        });
        if let Some(g) = &gpu {
            group.bench_with_input(BenchmarkId::new("gpu", n), &n, |bench, _| {
                bench.iter(|| g.gemm(black_box(&a), black_box(&b), &mut out, shape).unwrap())
            });
        }
    }
    group.finish();
}

fn top_k(c: &mut Criterion) {
    let gpu = context();
    let (q, n, dim, k) = (1000, 20000, 128, 10);
    let base = datasets::vectors::uniform(n * dim, 3);
    let queries = datasets::vectors::uniform(q * dim, 4);
    let mut group = c.benchmark_group("gpu/top_k");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements((q * n) as u64));
    let id = format!("{q}x{n}x{dim}_k{k}");
    group.bench_function(BenchmarkId::new("cpu", &id), |bench| {
        bench.iter(|| top_k_cpu(black_box(&base), dim, black_box(&queries), k, Metric::L2).unwrap())
    });
    if let Some(g) = &gpu {
        group.bench_function(BenchmarkId::new("gpu", &id), |bench| {
            bench.iter(|| g.top_k(black_box(&base), dim, black_box(&queries), k, Metric::L2).unwrap())
        });
    }
    group.finish();
}

/// Random Q8_0 blocks: scale max|v|/127 in f16, then the rounded quants.
fn q8_0_bytes(rows: usize, cols: usize) -> Vec<u8> {
    let w = datasets::vectors::uniform(rows * cols, 5);
    let mut out = Vec::with_capacity(rows * cols / 32 * 34);
    for blk in w.chunks_exact(32) {
        let amax = blk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = half::f16::from_f32(amax / 127.0);
        out.extend_from_slice(&d.to_le_bytes());
        out.extend(blk.iter().map(|v| (v / d.to_f32()).round().clamp(-127.0, 127.0) as i8 as u8));
    }
    out
}

fn gemv_q8_0(c: &mut Criterion) {
    let gpu = context();
    let (rows, cols) = (1536, 576);
    let w = q8_0_bytes(rows, cols);
    let x = datasets::vectors::uniform(cols, 6);
    let mut y = vec![0.0; rows];
    let mut group = c.benchmark_group("gpu/gemv_q8_0");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements((rows * cols) as u64));
    let id = format!("{rows}x{cols}");
    group.bench_function(BenchmarkId::new("cpu", &id), |bench| {
        bench.iter(|| gemv_q8_0_cpu(black_box(&w), rows, cols, black_box(&x), &mut y).unwrap())
    });
    if let Some(g) = &gpu {
        group.bench_function(BenchmarkId::new("gpu", &id), |bench| {
            bench.iter(|| g.gemv_q8_0(black_box(&w), rows, cols, black_box(&x), &mut y).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, gemm, top_k, gemv_q8_0);
