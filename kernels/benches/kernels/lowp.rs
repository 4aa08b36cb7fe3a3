//! Low-precision distance kernels: f32, f16, bf16 and i8 dot / squared L2 / cosine at embedding
//! sizes and at 16M elements (memory bound), throughput in bytes read.
//!
//! Groups:
//! * `lowp/<type>_<op>`: one pair per call, `d ∈ {128, 384, 768, 1536}` and `16M`.
//! * `lowp/allpairs`: all 64 × 64 pairs of two small sets per call (time per call / 4096 = time
//!   per pair), the batched form to compare with SimSIMD's `cdist`, whose per-call Python
//!   overhead would otherwise dominate.
//! * `lowp/stream_sum`: `simd::sum` over as many bytes as a 16M-element pair of each type, the
//!   streaming-read bandwidth the 16M cases are measured against.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use half::{bf16, f16};
use kernels::simd;

const DIMS: [usize; 4] = [128, 384, 768, 1536];
/// The memory-bound case: 16M elements per vector.
const BIG: usize = 1 << 24;
/// Vectors per set in `lowp/allpairs`.
const SET: usize = 64;

type Op<T> = (&'static str, fn(&[T], &[T]) -> f32);

/// One element type: its name, size, conversion from the f32 test data and its three kernels.
struct Type<T> {
    name: &'static str,
    conv: fn(f32) -> T,
    ops: [Op<T>; 3],
}

fn to_i8(x: f32) -> i8 {
    (x * 127.0) as i8
}

const F32: Type<f32> =
    Type { name: "f32", conv: |x| x, ops: [("dot", simd::dot), ("l2_sq", simd::l2_sq), ("cosine", simd::cosine)] };
const F16: Type<f16> = Type {
    name: "f16",
    conv: f16::from_f32,
    ops: [("dot", simd::dot_f16), ("l2_sq", simd::l2_sq_f16), ("cosine", simd::cosine_f16)],
};
const BF16: Type<bf16> = Type {
    name: "bf16",
    conv: bf16::from_f32,
    ops: [("dot", simd::dot_bf16), ("l2_sq", simd::l2_sq_bf16), ("cosine", simd::cosine_bf16)],
};
const I8: Type<i8> = Type {
    name: "i8",
    conv: to_i8,
    ops: [
        ("dot", |a, b| simd::dot_i8(a, b) as f32),
        ("l2_sq", |a, b| simd::l2_sq_i8(a, b) as f32),
        ("cosine", simd::cosine_i8),
    ],
};

fn data<T>(n: usize, seed: u64, conv: fn(f32) -> T) -> Vec<T> {
    datasets::vectors::uniform(n, seed).into_iter().map(conv).collect()
}

fn per_type<T>(c: &mut Criterion, t: &Type<T>) {
    let size = size_of::<T>();
    let big_a = data(BIG, 11, t.conv);
    let big_b = data(BIG, 12, t.conv);
    for (op, f) in t.ops {
        let mut group = c.benchmark_group(format!("lowp/{}_{op}", t.name));
        group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
        for d in DIMS {
            let a = data(d, 1, t.conv);
            let b = data(d, 2, t.conv);
            group.throughput(Throughput::Bytes((2 * d * size) as u64));
            group.bench_with_input(BenchmarkId::new("dispatch", d), &d, |bench, _| {
                bench.iter(|| f(black_box(&a), black_box(&b)))
            });
        }
        group.sample_size(10).measurement_time(Duration::from_secs(2));
        group.throughput(Throughput::Bytes((2 * BIG * size) as u64));
        group.bench_function(BenchmarkId::new("dispatch", "16M"), |bench| {
            bench.iter(|| f(black_box(&big_a), black_box(&big_b)))
        });
        group.finish();
    }
}

fn all_pairs<T>(c: &mut Criterion, t: &Type<T>) {
    let mut group = c.benchmark_group("lowp/allpairs");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    let mut out = vec![0.0f32; SET * SET];
    for d in DIMS {
        let xs = data(SET * d, 3, t.conv);
        let ys = data(SET * d, 4, t.conv);
        group.throughput(Throughput::Elements((SET * SET) as u64));
        for (op, f) in t.ops {
            group.bench_function(BenchmarkId::new(format!("{}_{op}", t.name), d), |bench| {
                bench.iter(|| {
                    for (x, row) in black_box(&xs).chunks_exact(d).zip(out.chunks_exact_mut(SET)) {
                        for (y, o) in black_box(&ys).chunks_exact(d).zip(row.iter_mut()) {
                            *o = f(x, y);
                        }
                    }
                    black_box(&out);
                })
            });
        }
    }
    group.finish();
}

fn stream_sum(c: &mut Criterion) {
    let mut group = c.benchmark_group("lowp/stream_sum");
    group.sample_size(10).measurement_time(Duration::from_secs(2));
    for elem in [1usize, 2, 4] {
        // As many bytes as two BIG-element vectors of an `elem`-byte type.
        let x = datasets::vectors::uniform(2 * BIG * elem / 4, 5);
        group.throughput(Throughput::Bytes((x.len() * 4) as u64));
        group.bench_function(BenchmarkId::new("sum", format!("{}MB", (x.len() * 4) >> 20)), |bench| {
            bench.iter(|| simd::sum(black_box(&x)))
        });
    }
    group.finish();
}

fn lowp(c: &mut Criterion) {
    all_pairs(c, &F32);
    all_pairs(c, &I8);
    all_pairs(c, &F16);
    all_pairs(c, &BF16);
    stream_sum(c);
    per_type(c, &F32);
    per_type(c, &F16);
    per_type(c, &BF16);
    per_type(c, &I8);
}

criterion_group!(benches, lowp);
