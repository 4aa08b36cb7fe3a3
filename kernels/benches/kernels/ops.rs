//! Vector ops at transformer sizes (576 and 1536 hidden, 49152 vocabulary): runtime dispatch vs scalar.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use kernels::simd;

const SIZES: [usize; 3] = [576, 1536, 49152];

type InPlace = fn(&mut [f32]);
type Norm = fn(&[f32], &[f32], f32, &mut [f32]);
type Reduce = fn(&[f32]) -> f32;

fn ops(c: &mut Criterion) {
    let softmax: [(&str, InPlace); 2] =
        [("dispatch", simd::softmax_in_place), ("scalar", simd::softmax_in_place_scalar)];
    let rms_norm: [(&str, Norm); 2] = [("dispatch", simd::rms_norm), ("scalar", simd::rms_norm_scalar)];
    let sum: [(&str, Reduce); 2] = [("dispatch", simd::sum), ("scalar", simd::sum_scalar)];

    let mut group = c.benchmark_group("ops/softmax");
    group.warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_millis(600));
    for n in SIZES {
        let x = datasets::vectors::uniform(n, 1);
        let mut buf = x.clone();
        group.throughput(Throughput::Elements(n as u64));
        for (path, f) in softmax {
            group.bench_with_input(BenchmarkId::new(path, n), &n, |bench, _| {
                bench.iter(|| {
                    buf.copy_from_slice(&x);
                    f(black_box(&mut buf))
                })
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("ops/rms_norm");
    group.warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_millis(600));
    for n in SIZES {
        let x = datasets::vectors::uniform(n, 2);
        let w = datasets::vectors::uniform(n, 3);
        let mut out = vec![0.0f32; n];
        group.throughput(Throughput::Elements(n as u64));
        for (path, f) in rms_norm {
            group.bench_with_input(BenchmarkId::new(path, n), &n, |bench, _| {
                bench.iter(|| f(black_box(&x), black_box(&w), 1e-6, &mut out))
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("ops/sum");
    group.warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_millis(600));
    for n in SIZES {
        let x = datasets::vectors::uniform(n, 4);
        group.throughput(Throughput::Elements(n as u64));
        for (path, f) in sum {
            group.bench_with_input(BenchmarkId::new(path, n), &n, |bench, _| bench.iter(|| f(black_box(&x))));
        }
    }
    group.finish();
}

criterion_group!(benches, ops);
