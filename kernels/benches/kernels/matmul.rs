//! f32 GEMM, GEMV and batched matmul (Goto & van de Geijn 2008 blocking; BLIS micro-kernels):
//! square and LLM shapes, every backend, against the naive scalar twin where it finishes in time.
//!
//! GEMM rates are in FLOP/s (`Throughput::Elements(2·m·n·k)`), GEMV rates in bytes of `A` read
//! per second (it is bound by memory). NumPy/OpenBLAS is the external peer: `cargo xtask bench`
//! and the numbers in the module doc of `kernels::matmul` compare against it.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use kernels::matmul::{self, Backend, BatchShape, GemmShape};

/// `(m, n, k)`: square, then one token and a 64-token prefill through SmolLM-135M's MLP up-projection.
const GEMM_SHAPES: [(usize, usize, usize); 4] = [(256, 256, 256), (1024, 1024, 1024), (1, 1536, 576), (64, 1536, 576)];

/// `(rows, cols)`: the MLP up-projection and the LM head (49152-token vocabulary) at hidden size 576.
const GEMV_SHAPES: [(usize, usize); 2] = [(1536, 576), (49152, 576)];

type GemmFn = fn(&[f32], &[f32], &mut [f32], GemmShape) -> kernels::Result<()>;

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul/gemm");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2)).sample_size(10);
    for (m, n, k) in GEMM_SHAPES {
        let shape = GemmShape::new(m, n, k);
        let a = datasets::vectors::uniform(m * k, 1);
        let b = datasets::vectors::uniform(k * n, 2);
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements(shape.flops()));
        let id = format!("{m}x{n}x{k}");
        let mut paths: Vec<(String, GemmFn)> =
            vec![("dispatch".into(), matmul::gemm), ("dispatch_nt".into(), matmul::gemm_nt)];
        if m * n * k <= 256 * 256 * 256 {
            paths.push(("scalar".into(), matmul::gemm_scalar));
        }
        for (path, f) in paths {
            group.bench_with_input(BenchmarkId::new(path, &id), &shape, |bench, &s| {
                bench.iter(|| f(black_box(&a), black_box(&b), &mut out, s).unwrap())
            });
        }
        if m >= 256 {
            for backend in Backend::available() {
                group.bench_with_input(BenchmarkId::new(backend.name(), &id), &shape, |bench, &s| {
                    bench.iter(|| matmul::gemm_with(backend, black_box(&a), black_box(&b), &mut out, s).unwrap())
                });
            }
        }
    }
    group.finish();
}

fn gemv(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul/gemv");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for (rows, cols) in GEMV_SHAPES {
        let a = datasets::vectors::uniform(rows * cols, 3);
        let x = datasets::vectors::uniform(cols, 4);
        let mut y = vec![0.0f32; rows];
        group.throughput(Throughput::Bytes((rows * cols * size_of::<f32>()) as u64));
        let id = format!("{rows}x{cols}");
        for backend in Backend::available() {
            group.bench_with_input(BenchmarkId::new(backend.name(), &id), &rows, |bench, _| {
                bench.iter(|| matmul::gemv_with(backend, black_box(&a), black_box(&x), &mut y, rows, cols).unwrap())
            });
        }
        group.bench_with_input(BenchmarkId::new("scalar", &id), &rows, |bench, _| {
            bench.iter(|| matmul::gemv_scalar(black_box(&a), black_box(&x), &mut y, rows, cols).unwrap())
        });
    }
    group.finish();
}

fn batched(c: &mut Criterion) {
    // Attention scores Q·Kᵀ: 9 heads of dimension 64 over 128 and 512 tokens.
    let mut group = c.benchmark_group("matmul/batched_nt");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(20);
    for seq in [128, 512] {
        let shape = BatchShape::new(9, seq, seq, 64);
        let q = datasets::vectors::uniform(9 * seq * 64, 5);
        let kt = datasets::vectors::uniform(9 * seq * 64, 6);
        let mut s = vec![0.0f32; 9 * seq * seq];
        group.throughput(Throughput::Elements(9 * shape.gemm.flops()));
        group.bench_with_input(BenchmarkId::new("dispatch", format!("9x{seq}x{seq}x64")), &shape, |bench, &sh| {
            bench.iter(|| matmul::batched_gemm_nt(black_box(&q), black_box(&kt), &mut s, sh).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, gemm, gemv, batched);
