//! Distance kernels at embedding sizes: runtime dispatch vs portable `wide` vs scalar.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use kernels::simd;

const DIMS: [usize; 4] = [128, 384, 768, 1536];

type Kernel = fn(&[f32], &[f32]) -> f32;

fn cosine_wide(a: &[f32], b: &[f32]) -> f32 {
    let (ab, aa, bb) = simd::dot_norms_wide(a, b);
    let d = (aa * bb).sqrt();
    if d == 0.0 { 0.0 } else { ab / d }
}

fn distances(c: &mut Criterion) {
    let ops: [(&str, [(&str, Kernel); 3]); 3] = [
        ("dot", [("dispatch", simd::dot), ("wide", simd::dot_wide), ("scalar", simd::dot_scalar)]),
        ("l2_sq", [("dispatch", simd::l2_sq), ("wide", simd::l2_sq_wide), ("scalar", simd::l2_sq_scalar)]),
        ("cosine", [("dispatch", simd::cosine), ("wide", cosine_wide), ("scalar", simd::cosine_scalar)]),
    ];
    for (op, paths) in ops {
        let mut group = c.benchmark_group(format!("distances/{op}"));
        group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
        for d in DIMS {
            let a = datasets::vectors::uniform(d, 1);
            let b = datasets::vectors::uniform(d, 2);
            group.throughput(Throughput::Elements(d as u64));
            for (path, f) in paths {
                group.bench_with_input(BenchmarkId::new(path, d), &d, |bench, _| {
                    bench.iter(|| f(black_box(&a), black_box(&b)))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, distances);
